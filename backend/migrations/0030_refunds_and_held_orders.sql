-- Issue 14 (Ordering): refunds and held orders.
--
-- How a refund's money went back: 'card' (credited to the IC card's stored
-- value), 'paypal' (PayPal's refund API) or 'office' (paid back by the
-- office by bank transfer: Smart Pit cash, a station's e-money terminal).
-- NULL for refunds made before this column (their payment method says how).
ALTER TABLE orders ADD COLUMN refund_method TEXT CHECK (refund_method IS NULL OR refund_method IN ('card', 'paypal', 'office'));
-- The bank account the user gave for a refund the office pays back
-- (bank, branch, account type and number, holder in katakana), sealed under
-- the data key bound to its order (`order:<id>:refund_bank`), and when.
ALTER TABLE orders ADD COLUMN refund_bank_sealed TEXT;
ALTER TABLE orders ADD COLUMN refund_bank_at INTEGER;
-- A held order (a name no font can draw): the characters that could not be
-- drawn when it was held or when staff last tried to release it.
ALTER TABLE orders ADD COLUMN held_chars TEXT NOT NULL DEFAULT '';
-- Background jobs (the automatic refund of failed prints): how often each
-- has run and when it last did, so operators and tests see that it runs.
CREATE TABLE job_runs (
    name TEXT PRIMARY KEY,
    runs INTEGER NOT NULL DEFAULT 0,
    last_run_at INTEGER NOT NULL
);
