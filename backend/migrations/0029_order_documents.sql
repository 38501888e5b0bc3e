-- Certificate PDFs leave the orders table. A sealed PDF (~40 KB) stored
-- inline sat before every column added later, so each read of an order's
-- status walked its overflow pages and each status change (paid, printed)
-- rewrote the whole PDF into the WAL: a redemption wrote ~80 KB for a few
-- integers. Now one row per order in a table of its own, written once.
CREATE TABLE order_documents (
    order_id INTEGER PRIMARY KEY REFERENCES orders(id),
    pdf BLOB NOT NULL
);
INSERT INTO order_documents (order_id, pdf) SELECT id, pdf FROM orders WHERE pdf IS NOT NULL;
ALTER TABLE orders DROP COLUMN pdf;
