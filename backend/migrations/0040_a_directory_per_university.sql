-- Each university checks its own students (issue 15): the roster rows belong
-- to a university, and a student's account to the directory of the
-- university it logged in at (the same user ID at two universities is two
-- students). A university's directory is its roster or its own LDAP server:
-- directory_kind NULL = the deployment's [directory] for the first
-- university, the roster for the others; 'roster' or 'ldap' as the platform
-- operator set it. directory_ldap holds the LDAP settings as JSON without the
-- bind password, which is sealed apart (directory_bind_sealed).
CREATE TABLE directory_roster_new (
    university_id INTEGER NOT NULL DEFAULT 1 REFERENCES universities(id),
    user_id TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    name_kanji TEXT NOT NULL,
    name_kana TEXT NOT NULL,
    name_roman TEXT NOT NULL,
    student_no TEXT NOT NULL,
    faculty_code TEXT NOT NULL,
    department_code TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    imported_at INTEGER NOT NULL,
    card_uid TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (university_id, user_id)
);
INSERT INTO directory_roster_new (university_id, user_id, password_hash, name_kanji, name_kana, name_roman, student_no,
    faculty_code, department_code, email, imported_at, card_uid)
SELECT 1, user_id, password_hash, name_kanji, name_kana, name_roman, student_no, faculty_code, department_code, email, imported_at, card_uid
FROM directory_roster;
DROP TABLE directory_roster;
ALTER TABLE directory_roster_new RENAME TO directory_roster;

ALTER TABLE users ADD COLUMN directory_university_id INTEGER REFERENCES universities(id);
UPDATE users SET directory_university_id = 1 WHERE directory_uid IS NOT NULL;
DROP INDEX IF EXISTS users_directory_uid;
CREATE UNIQUE INDEX users_directory_uid ON users(directory_university_id, directory_uid COLLATE NOCASE) WHERE directory_uid IS NOT NULL;

ALTER TABLE universities ADD COLUMN directory_kind TEXT CHECK (directory_kind IS NULL OR directory_kind IN ('roster', 'ldap'));
ALTER TABLE universities ADD COLUMN directory_ldap TEXT NOT NULL DEFAULT '';
ALTER TABLE universities ADD COLUMN directory_bind_sealed TEXT;
