-- O-3 convenience-store print: once a store-print order is paid its PDF is
-- registered with the stores' network-print service; the numbers the user
-- types at a store printer, and the service's print notices (de-duplicated by
-- their notice id).
ALTER TABLE orders ADD COLUMN store_file_id TEXT;
ALTER TABLE orders ADD COLUMN store_user_number TEXT;
ALTER TABLE orders ADD COLUMN store_reservation_number TEXT;
ALTER TABLE orders ADD COLUMN store_registered_at INTEGER;
CREATE UNIQUE INDEX orders_store_file ON orders(store_file_id) WHERE store_file_id IS NOT NULL;
CREATE INDEX orders_store_pending ON orders(status) WHERE delivery = 'store' AND store_file_id IS NULL;
CREATE TABLE storeprint_notices (
    notice_id TEXT PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    event TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
