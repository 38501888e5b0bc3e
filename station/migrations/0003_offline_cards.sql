-- P-3 policy (b): stored-value payments taken while offline. Each is written
-- with its outbox entry (kind 'offline_debit') in the same transaction as the
-- job's 'charged' step; what is not yet acknowledged by the backend counts
-- against the card's snapshot balance and the station's offline total.
CREATE TABLE offline_debits (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
    card_uid TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    outbox_key TEXT NOT NULL UNIQUE,
    at INTEGER NOT NULL
);
-- when the station asked for the bundle (its own clock): a debit the backend
-- acknowledged before then is in the bundle's balances
ALTER TABLE offline_bundle ADD COLUMN requested_at INTEGER NOT NULL DEFAULT 0;
