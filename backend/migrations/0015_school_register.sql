-- D-3 the registrar's school register (学籍記録): names as in school, faculty
-- and department, degree, admission and graduation dates, per student number,
-- imported from CSV as versions (earlier versions kept). Birth dates are
-- sealed like every other. Certificates print from the current version; the
-- review page compares applications with it.
CREATE TABLE school_register_imports (
    id INTEGER PRIMARY KEY,
    file_name TEXT NOT NULL,
    row_count INTEGER NOT NULL,
    imported_by INTEGER REFERENCES staff(id),
    imported_at INTEGER NOT NULL
);
CREATE TABLE school_register (
    import_id INTEGER NOT NULL REFERENCES school_register_imports(id),
    student_no TEXT NOT NULL,
    name_kanji TEXT NOT NULL,
    name_kana TEXT NOT NULL,
    name_roman TEXT NOT NULL,
    birth_date_sealed TEXT NOT NULL,
    faculty_code TEXT NOT NULL,
    department_code TEXT NOT NULL,
    degree_ja TEXT NOT NULL,
    degree_en TEXT NOT NULL,
    admission_date TEXT NOT NULL,
    graduation_date TEXT NOT NULL,
    leaving_type TEXT NOT NULL,
    PRIMARY KEY (import_id, student_no)
) WITHOUT ROWID;
CREATE INDEX school_register_student ON school_register(student_no, import_id);
