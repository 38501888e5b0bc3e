-- The station's own journal (ST-5): every step is written before the next starts.

CREATE TABLE credential (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    station_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    token TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    reservation_id INTEGER NOT NULL,
    print_number TEXT NOT NULL,
    amount INTEGER NOT NULL,
    paid_online INTEGER NOT NULL,
    state TEXT NOT NULL,
    card_uid TEXT,
    charge_key TEXT NOT NULL UNIQUE,
    ipp_job_id INTEGER,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE journal (
    id INTEGER PRIMARY KEY,
    job_id INTEGER REFERENCES jobs(id),
    step TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    at INTEGER NOT NULL
);

-- Reports for the backend, delivered at least once; the backend dedupes by key.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    job_id INTEGER REFERENCES jobs(id),
    reservation_id INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at INTEGER,
    last_error TEXT
);

CREATE INDEX journal_job ON journal(job_id);
CREATE INDEX outbox_pending ON outbox(sent_at);
