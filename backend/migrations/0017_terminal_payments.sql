-- P-5: payments the transit e-money terminal beside a station took, applied
-- once per key. A payment for an order paid already is kept for staff (the
-- terminal's money is refunded at the desk, not by us).
CREATE TABLE terminal_payments (
    idempotency_key TEXT PRIMARY KEY,
    station_id INTEGER NOT NULL REFERENCES stations(id),
    order_id INTEGER NOT NULL REFERENCES orders(id),
    transaction_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    brand TEXT NOT NULL DEFAULT '',
    paid_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    duplicate INTEGER NOT NULL DEFAULT 0
);
