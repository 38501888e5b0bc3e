-- Paper that verifies offline (issue 16): the QR code on each certificate
-- carries a compact payload (name, certificate, serial, issue date) signed
-- with its university's Ed25519 key. The secret half is sealed under the
-- data key; the public half is published on the verification page, which
-- checks a payload itself, with the network cut.
CREATE TABLE university_proof_keys (
    university_id INTEGER PRIMARY KEY REFERENCES universities(id),
    kid TEXT NOT NULL UNIQUE,
    public_hex TEXT NOT NULL,
    ed25519_sealed TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
