-- Accounts (SPEC G-*, S-*, A-1, A-2): registration with staff review, one-time
-- URLs, staff second factor, sessions with idle and absolute limits, and an
-- append-only audit log. Personal data (birth date, address, phones, workplace,
-- ID images) is stored sealed with the data key, which never enters the database.

-- Personal data of the account holder, sealed (JSON: address, phones, workplace).
ALTER TABLE users ADD COLUMN personal_sealed TEXT;
-- 1 while the initial password must be replaced (G-5): every page leads there.
ALTER TABLE users ADD COLUMN must_set_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN initial_password_expires_at INTEGER;
-- Students log in with the university's user ID (S-1).
ALTER TABLE users ADD COLUMN directory_uid TEXT;
CREATE UNIQUE INDEX users_directory_uid ON users(directory_uid) WHERE directory_uid IS NOT NULL;

ALTER TABLE faculties ADD COLUMN code TEXT NOT NULL DEFAULT '';
ALTER TABLE departments ADD COLUMN code TEXT NOT NULL DEFAULT '';

-- One-time URLs: only the SHA-256 of the token is stored; single use, expiring,
-- and a newer one of the same purpose for the same address voids the older.
CREATE TABLE one_time_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    purpose TEXT NOT NULL CHECK (purpose IN (
        'register', 'resubmit', 'add_student_id', 'email_change', 'password_reset',
        'student_onboard', 'student_email', 'second_password_reset')),
    email TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id),
    -- what the link acts on: a registration id, a directory uid, a new address
    subject TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    voided_at INTEGER
);
CREATE INDEX one_time_tokens_email ON one_time_tokens(purpose, email);

-- Applications to use the service (G-3, G-6, G-9) and their review (G-4).
CREATE TABLE registrations (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('new', 'reapply', 'add_student_id')),
    email TEXT NOT NULL,
    -- the account it adds a student ID to (add_student_id) or was moved onto (reapply)
    user_id INTEGER REFERENCES users(id),
    status TEXT NOT NULL CHECK (status IN ('draft', 'pending', 'approved', 'rejected', 'resubmit')),
    language TEXT NOT NULL DEFAULT 'ja',
    name_kanji TEXT NOT NULL DEFAULT '',
    name_kana TEXT NOT NULL DEFAULT '',
    name_roman TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT '',
    school_name_kanji TEXT NOT NULL DEFAULT '',
    school_name_kana TEXT NOT NULL DEFAULT '',
    school_name_roman TEXT NOT NULL DEFAULT '',
    university_id INTEGER REFERENCES universities(id),
    faculty_id INTEGER REFERENCES faculties(id),
    department_id INTEGER REFERENCES departments(id),
    student_no TEXT NOT NULL DEFAULT '',
    graduation_ym TEXT NOT NULL DEFAULT '',
    leaving_type TEXT NOT NULL DEFAULT '',
    id_document_type TEXT NOT NULL DEFAULT '',
    -- sealed JSON: birth date, address, phones, workplace
    personal_sealed TEXT,
    -- the browser session that fills in the draft (hash of a cookie value)
    draft_key_hash TEXT UNIQUE,
    -- the applicant's read-only status link (hash), from the receipt mail
    status_key_hash TEXT UNIQUE,
    reason TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    submitted_at INTEGER,
    decided_at INTEGER,
    decided_by INTEGER REFERENCES staff(id)
);
CREATE INDEX registrations_status ON registrations(status, submitted_at);

-- Identity document images: files under generated names outside any served
-- folder, sealed; deleted after the retention period following the decision.
CREATE TABLE registration_images (
    id INTEGER PRIMARY KEY,
    registration_id INTEGER NOT NULL REFERENCES registrations(id),
    ordinal INTEGER NOT NULL,
    file_name TEXT NOT NULL UNIQUE,
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);

-- Staff second factor (A-1): the TOTP secret is sealed; the last step used
-- refuses a replayed code; recovery codes are stored hashed and used once.
ALTER TABLE staff ADD COLUMN totp_sealed TEXT;
ALTER TABLE staff ADD COLUMN totp_last_step INTEGER;
ALTER TABLE staff ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
-- a staff member given an initial password sets their own at the first login
ALTER TABLE staff ADD COLUMN must_set_password INTEGER NOT NULL DEFAULT 0;
CREATE TABLE staff_recovery_codes (
    code_hash TEXT PRIMARY KEY,
    staff_id INTEGER NOT NULL REFERENCES staff(id),
    used_at INTEGER
);

-- Sessions end after an idle period (30 min portal, 15 min staff) and at an
-- absolute limit (12 h), on logout and on a password change.
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sessions_user ON sessions(user_id);

-- Mails carry an HTML part beside the text.
ALTER TABLE outbox ADD COLUMN body_html TEXT NOT NULL DEFAULT '';

-- The audit log grows a target and the client address, and is append-only.
ALTER TABLE audit_log ADD COLUMN target TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN ip TEXT NOT NULL DEFAULT '';
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- The enrolled students' roster the registrar imports (S-1, built-in directory).
CREATE TABLE directory_roster (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    name_kanji TEXT NOT NULL,
    name_kana TEXT NOT NULL,
    name_roman TEXT NOT NULL,
    student_no TEXT NOT NULL,
    faculty_code TEXT NOT NULL,
    department_code TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    imported_at INTEGER NOT NULL
);
