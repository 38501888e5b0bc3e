-- O-3 postal mail: the delivery address (sealed personal data), the postage
-- added to the total, and when staff posted it (A-4's mail work list).
ALTER TABLE orders ADD COLUMN postage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN post_address_sealed TEXT;
ALTER TABLE orders ADD COLUMN shipped_at INTEGER;
