-- P-3 policy (b), set per university: stored value accepted offline up to a
-- per-card floor limit and a station-wide offline total (defaults from
-- DECISIONS: 1,000 and 20,000 yen); off by default (policy a).
ALTER TABLE universities ADD COLUMN offline_cards INTEGER NOT NULL DEFAULT 0;
ALTER TABLE universities ADD COLUMN offline_floor_limit INTEGER NOT NULL DEFAULT 1000;
ALTER TABLE universities ADD COLUMN offline_station_total INTEGER NOT NULL DEFAULT 20000;

-- Debits a station took offline, applied once each when it syncs. A debit
-- for an order that was paid already (online meanwhile, or at a second
-- offline station) is refunded to the card at once and kept for staff.
CREATE TABLE offline_debits (
    idempotency_key TEXT PRIMARY KEY,
    station_id INTEGER NOT NULL REFERENCES stations(id),
    order_id INTEGER NOT NULL REFERENCES orders(id),
    card_uid TEXT NOT NULL,
    amount INTEGER NOT NULL,
    debited_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    duplicate INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX offline_debits_duplicates ON offline_debits(duplicate) WHERE duplicate = 1;
