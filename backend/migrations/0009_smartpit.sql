-- O-4 Smart Pit (convenience-store cash): the payment number issued for an
-- order, and the payment notices received, de-duplicated by their notice id.
ALTER TABLE orders ADD COLUMN smartpit_number TEXT;
CREATE UNIQUE INDEX orders_smartpit ON orders(smartpit_number) WHERE smartpit_number IS NOT NULL;
CREATE TABLE smartpit_notices (
    notice_id TEXT PRIMARY KEY,
    payment_number TEXT NOT NULL,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    amount INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
