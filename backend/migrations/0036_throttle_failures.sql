-- Throttles (failed logins, requests per address, wrong print numbers per
-- station, orders per user) count in the database, so every backend process
-- on it sees the same counts: alternating between backends gains nothing.
CREATE TABLE throttle_failures (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX throttle_failures_key ON throttle_failures(key, at_ms);
CREATE INDEX throttle_failures_at ON throttle_failures(at_ms);
