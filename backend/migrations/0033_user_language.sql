-- The language a user reads the portal in: both (Japanese and English, the
-- default), Japanese only or English only; remembered for the account and
-- given to the browser at each login. (users.language is the language a
-- user's mails put first; choosing one language here sets it too.)
ALTER TABLE users ADD COLUMN display_language TEXT NOT NULL DEFAULT 'both' CHECK (display_language IN ('both', 'ja', 'en'));
