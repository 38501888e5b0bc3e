-- P-3 offline printing: the backend's last signed bundle, the order PDFs it
-- names (encrypted with the station's key), which jobs ran offline, and
-- outbox entries for offline prints (a different backend endpoint).
CREATE TABLE offline_bundle (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    bundle TEXT NOT NULL,
    signature TEXT NOT NULL,
    fetched_at INTEGER NOT NULL
);
CREATE TABLE offline_documents (
    order_id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL
);
ALTER TABLE jobs ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN order_id INTEGER;
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'report';
