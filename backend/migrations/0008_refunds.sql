-- A-4: staff refund a paid order with a reason (audit-logged): back to the IC
-- card's stored value, or through PayPal's refund API.
ALTER TABLE orders ADD COLUMN refunded_at INTEGER;
ALTER TABLE orders ADD COLUMN refund_reason TEXT NOT NULL DEFAULT '';
