-- D-3: the registrar's academic records (courses, credits, grades), imported
-- from CSV and kept by version: every import is a version; for a student, the
-- newest import that has them is current; an order records the version its
-- transcript was made from, and keeps the PDF it printed.
CREATE TABLE academic_imports (
    id INTEGER PRIMARY KEY,
    file_name TEXT NOT NULL DEFAULT '',
    row_count INTEGER NOT NULL,
    imported_by INTEGER REFERENCES staff(id),
    imported_at INTEGER NOT NULL
);

CREATE TABLE course_results (
    id INTEGER PRIMARY KEY,
    import_id INTEGER NOT NULL REFERENCES academic_imports(id),
    student_no TEXT NOT NULL,
    year INTEGER NOT NULL,
    term TEXT NOT NULL,
    code TEXT NOT NULL,
    name_ja TEXT NOT NULL,
    name_en TEXT NOT NULL,
    credits_tenths INTEGER NOT NULL,
    grade TEXT NOT NULL
);
CREATE INDEX course_results_student ON course_results(student_no, import_id);

ALTER TABLE orders ADD COLUMN academic_import_id INTEGER REFERENCES academic_imports(id);
