-- (migrations/0040_a_directory_per_university.sql for PostgreSQL)
-- Each university checks its own students (issue 15): the roster rows belong
-- to a university, and a student's account to the directory of the
-- university it logged in at. directory_kind NULL = the deployment's
-- [directory] for the first university, the roster for the others.
ALTER TABLE directory_roster ADD COLUMN university_id BIGINT NOT NULL DEFAULT 1 REFERENCES universities(id);
ALTER TABLE directory_roster DROP CONSTRAINT directory_roster_pkey;
ALTER TABLE directory_roster ADD PRIMARY KEY (university_id, user_id);

ALTER TABLE users ADD COLUMN directory_university_id BIGINT REFERENCES universities(id);
UPDATE users SET directory_university_id = 1 WHERE directory_uid IS NOT NULL;
DROP INDEX IF EXISTS users_directory_uid;
CREATE UNIQUE INDEX users_directory_uid ON users (directory_university_id, lower(directory_uid)) WHERE directory_uid IS NOT NULL;

ALTER TABLE universities ADD COLUMN directory_kind TEXT COLLATE "C" CHECK (directory_kind IS NULL OR directory_kind IN ('roster', 'ldap'));
ALTER TABLE universities ADD COLUMN directory_ldap TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE universities ADD COLUMN directory_bind_sealed TEXT COLLATE "C";
