-- An automatic refund the provider refused or could not be reached for:
-- the order keeps the last error (shown to staff, counted on the dashboard)
-- until a later pass, or staff, refund it.
ALTER TABLE orders ADD COLUMN refund_error TEXT;
ALTER TABLE orders ADD COLUMN refund_error_at INTEGER;
