-- What the backend handed each station for offline use: an order the first
-- time it was in that station's bundle, and whether it could be paid by card
-- offline then. A station's later offline claims are checked against it.
CREATE TABLE offline_issued (
    station_id INTEGER NOT NULL REFERENCES stations(id),
    order_id INTEGER NOT NULL REFERENCES orders(id),
    card_payment INTEGER NOT NULL DEFAULT 0,
    first_issued_at INTEGER NOT NULL,
    PRIMARY KEY (station_id, order_id)
);

-- Claims a station made that the backend refused (an amount that is not the
-- order's total, a print of an unpaid order, an offline debit beyond the
-- policy, ...): kept and shown to staff, never applied.
CREATE TABLE refused_claims (
    id INTEGER PRIMARY KEY,
    station_id INTEGER NOT NULL REFERENCES stations(id),
    kind TEXT NOT NULL,
    order_id INTEGER,
    reason TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    -- mailed to the operators' alert addresses
    alerted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refused_claims_received ON refused_claims (received_at);
