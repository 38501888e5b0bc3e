-- Mail bodies hold live one-time links, initial passwords and print numbers:
-- sealed at rest (XChaCha20-Poly1305 under the data key, bound to the
-- recipient) and dropped once delivered. The subject stays readable: it says
-- what kind of mail it is, never a secret. Rows from before are sealed (or,
-- if sent, emptied) by the backend at start.
ALTER TABLE outbox ADD COLUMN sealed TEXT;
