-- D-2 per-type, per-language templates: each certificate type says which
-- layout prints it (a one-page certificate or a transcript), in which
-- language (a Japanese certificate with English beside it, or an English
-- one), and optionally its own certifying sentence with placeholders
-- (empty: the built-in wording for the holder's leaving type). The
-- university's seal image (PNG) is stamped beside the issuer.
ALTER TABLE certificate_types ADD COLUMN layout TEXT NOT NULL DEFAULT 'certificate' CHECK (layout IN ('certificate', 'transcript'));
ALTER TABLE certificate_types ADD COLUMN language TEXT NOT NULL DEFAULT 'ja' CHECK (language IN ('ja', 'en'));
ALTER TABLE certificate_types ADD COLUMN body_ja TEXT NOT NULL DEFAULT '';
ALTER TABLE certificate_types ADD COLUMN body_en TEXT NOT NULL DEFAULT '';
UPDATE certificate_types SET layout = 'transcript' WHERE code LIKE 'transcript%';
UPDATE certificate_types SET language = 'en' WHERE code LIKE '%\_en' ESCAPE '\';
ALTER TABLE universities ADD COLUMN seal_png BLOB;
