-- Universities are tenants (issue 15), second part: what staff see is their
-- own university's. A platform operator (staff.platform = 1) manages the
-- universities and sees the whole fleet; the administrators a deployment had
-- so far ran all of it, so they become platform operators. Audit lines name
-- the university they concern (NULL: the platform's own, or before this
-- migration: only platform operators see those). Registrar imports belong to
-- the university that imported them; existing ones to the first.
-- (SQLite cannot add a column with both REFERENCES and a non-NULL default
-- while foreign keys are on: the PostgreSQL form carries the references.)
ALTER TABLE staff ADD COLUMN platform INTEGER NOT NULL DEFAULT 0;
UPDATE staff SET platform = 1 WHERE role = 'admin';
ALTER TABLE audit_log ADD COLUMN university_id INTEGER REFERENCES universities(id);
CREATE INDEX audit_log_university ON audit_log(university_id, id);
ALTER TABLE academic_imports ADD COLUMN university_id INTEGER NOT NULL DEFAULT 1;
ALTER TABLE school_register_imports ADD COLUMN university_id INTEGER NOT NULL DEFAULT 1;
