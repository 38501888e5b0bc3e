-- Digital certificates (issue 16). "digital" is a fourth delivery: the
-- order's document is signed (PAdES, time-stamped) once paid, and the
-- graduate downloads their own copy and shares copies with recipients.
--
-- The orders table's CHECK on delivery is widened in place (SQLite's
-- documented procedure for changing a CHECK constraint: the rows already
-- stored all satisfy the wider one); the CREATE TABLE below changes the
-- schema version, so every connection reads the new definition.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, 'delivery IN (''campus'', ''store'', ''post'')', 'delivery IN (''campus'', ''store'', ''post'', ''digital'')')
 WHERE type = 'table' AND name = 'orders';
PRAGMA writable_schema = OFF;

-- which certificate types a university delivers as signed PDFs
ALTER TABLE certificate_types ADD COLUMN digital INTEGER NOT NULL DEFAULT 0;
-- how long a share link lives unless the graduate says otherwise (days)
ALTER TABLE universities ADD COLUMN share_days INTEGER NOT NULL DEFAULT 90;

-- The signed copies of a digital order: the graduate's own (no recipient)
-- and one per share. A share's link is a random token kept only as its
-- SHA-256; its copy says in the PDF whom it was issued for.
CREATE TABLE digital_copies (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    recipient_name TEXT,
    recipient_org TEXT,
    recipient_email TEXT,
    token_hash TEXT UNIQUE,
    expires_at INTEGER,
    max_downloads INTEGER,
    downloads INTEGER NOT NULL DEFAULT 0,
    first_opened_at INTEGER,
    last_opened_at INTEGER,
    revoked_at INTEGER,
    pdf_sealed BLOB,
    signed_at INTEGER,
    -- SHA-256 (hex) of the signed file as handed out: a PDF dropped on the
    -- verification page is recognised by it
    signed_sha256 TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX digital_copies_order ON digital_copies(order_id);
CREATE UNIQUE INDEX digital_copies_own ON digital_copies(order_id) WHERE recipient_email IS NULL;
CREATE INDEX digital_copies_sha256 ON digital_copies(signed_sha256);
