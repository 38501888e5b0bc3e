-- A station resends what it has not had accepted: a refused claim is kept
-- (and mailed) once per station and idempotency key.
ALTER TABLE refused_claims ADD COLUMN claim_key TEXT;
CREATE UNIQUE INDEX refused_claims_key ON refused_claims (station_id, claim_key);
