-- (migrations/0041_university_proof_keys.sql for PostgreSQL)
-- Each university's Ed25519 key for the signed payload in its certificates'
-- QR codes; the secret sealed under the data key, the public half published.
CREATE TABLE university_proof_keys (
    university_id BIGINT PRIMARY KEY REFERENCES universities(id),
    kid TEXT COLLATE "C" NOT NULL UNIQUE,
    public_hex TEXT COLLATE "C" NOT NULL,
    ed25519_sealed TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);
