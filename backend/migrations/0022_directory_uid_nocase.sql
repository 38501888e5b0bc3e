-- Enrolled students' accounts are keyed by the directory's user ID without
-- regard to case (directories match IDs so): stored lower-cased, unique
-- whatever the case. (A database holding the same ID in two cases must be
-- sorted out by hand before this migration runs.)
UPDATE users SET directory_uid = lower(trim(directory_uid)) WHERE directory_uid IS NOT NULL;
DROP INDEX IF EXISTS users_directory_uid;
CREATE UNIQUE INDEX users_directory_uid ON users(directory_uid COLLATE NOCASE) WHERE directory_uid IS NOT NULL;
