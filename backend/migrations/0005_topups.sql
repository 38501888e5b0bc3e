-- IC card online charge (P-4, S-4): a top-up paid through PayPal. The capture id
-- is the ledger entry's idempotency key, so the return page and the webhook
-- (or a retry) credit the card once.
CREATE TABLE topups (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    card_uid TEXT NOT NULL REFERENCES ic_cards(uid),
    amount INTEGER NOT NULL CHECK (amount > 0),
    paypal_order_id TEXT UNIQUE,
    capture_id TEXT UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('created', 'captured', 'declined', 'cancelled')),
    created_at INTEGER NOT NULL,
    captured_at INTEGER
);
