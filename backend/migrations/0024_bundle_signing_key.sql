-- The backend's Ed25519 key that signs stations' offline bundles (sealed
-- under the data key, so a reader of this database cannot forge a bundle;
-- stations pin its public half when they enrol).
CREATE TABLE signing_keys (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ed25519_sealed TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
