-- P-3 / ST-2 offline printing: what stations printed (or failed to print)
-- while the backend could not be reached, applied once per idempotency key;
-- a number printed at two stations is kept as a duplicate for staff.
CREATE TABLE offline_prints (
    idempotency_key TEXT PRIMARY KEY,
    station_id INTEGER NOT NULL REFERENCES stations(id),
    order_id INTEGER NOT NULL REFERENCES orders(id),
    outcome TEXT NOT NULL CHECK (outcome IN ('printed', 'failed')),
    detail TEXT NOT NULL DEFAULT '',
    ipp_job_id INTEGER,
    printed_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    duplicate INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX offline_prints_duplicates ON offline_prints(duplicate) WHERE duplicate = 1;
