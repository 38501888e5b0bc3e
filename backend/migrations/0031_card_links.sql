-- IC cards as a graduate meets them (issue 14): a card no account holds,
-- tapped at a station, gets a short one-time code the graduate enters in the
-- portal to link it; and a card can be unlinked again.

-- One-time link codes: only the keyed hash of the code is kept (a stolen
-- database cannot test guesses); each works once, until expires_at. A newer
-- code for the same card ends the older ones; codes are deleted a day after
-- they lapse.
CREATE TABLE card_link_codes (
    id INTEGER PRIMARY KEY,
    code_hash TEXT NOT NULL,
    card_uid TEXT NOT NULL,
    station_id INTEGER NOT NULL REFERENCES stations(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    used_by INTEGER REFERENCES users(id)
);
CREATE INDEX card_link_codes_hash ON card_link_codes(code_hash);
CREATE INDEX card_link_codes_card ON card_link_codes(card_uid);

-- Unlinking keeps the card's row (the ledger and top-ups point at it): an
-- unlinked card is unknown to stations and may be linked again. Whoever
-- links it next sees its ledger only from their link on (history_from); the
-- holder who unlinked it keeps seeing their own part of it (card_unlinks).
ALTER TABLE ic_cards ADD COLUMN unlinked_at INTEGER;
ALTER TABLE ic_cards ADD COLUMN history_from INTEGER NOT NULL DEFAULT 0;

CREATE TABLE card_unlinks (
    id INTEGER PRIMARY KEY,
    card_uid TEXT NOT NULL REFERENCES ic_cards(uid),
    user_id INTEGER NOT NULL REFERENCES users(id),
    history_from INTEGER NOT NULL,
    unlinked_at INTEGER NOT NULL
);
CREATE INDEX card_unlinks_user ON card_unlinks(user_id);
