-- Issue 14, students (manual 001) and registration.
--
-- S-2: the e-mail link completes the address; the next login (second password
-- empty) leads to setting the second password, under a short-lived one-time key
-- of its own purpose, 'student_second_setup'. SQLite cannot change a CHECK, so
-- the table is rebuilt with the same columns and rows.
CREATE TABLE one_time_tokens_new (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    purpose TEXT NOT NULL CHECK (purpose IN (
        'register', 'resubmit', 'add_student_id', 'email_change', 'password_reset',
        'student_onboard', 'student_email', 'second_password_reset', 'student_second_setup')),
    email TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id),
    -- what the link acts on: a registration id, a directory uid, a new address
    subject TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    voided_at INTEGER
);
INSERT INTO one_time_tokens_new (id, token_hash, purpose, email, user_id, subject, created_at, expires_at, used_at, voided_at)
    SELECT id, token_hash, purpose, email, user_id, subject, created_at, expires_at, used_at, voided_at FROM one_time_tokens;
DROP TABLE one_time_tokens;
ALTER TABLE one_time_tokens_new RENAME TO one_time_tokens;
CREATE INDEX one_time_tokens_email ON one_time_tokens(purpose, email);

-- The student's campus card as the registrar's roster gives it (optional
-- column card_id of the roster CSV; '' = none): linked at first login.
ALTER TABLE directory_roster ADD COLUMN card_uid TEXT NOT NULL DEFAULT '';

-- The name an ID image was attached under, shown back to the applicant while
-- the draft keeps it (a form error no longer loses the images).
ALTER TABLE registration_images ADD COLUMN original_name TEXT NOT NULL DEFAULT '';
