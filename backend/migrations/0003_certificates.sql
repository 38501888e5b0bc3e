-- Certificates (D-1): staff can revoke an issued certificate, with a reason;
-- the public verification page then says so.
ALTER TABLE certificates ADD COLUMN revoked_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE certificates ADD COLUMN revoked_by INTEGER REFERENCES staff(id);

-- Service hours (O-7): maintenance windows and suspension periods set by staff;
-- ordering is refused inside them, with a message saying until when.
CREATE TABLE service_breaks (
    id INTEGER PRIMARY KEY,
    university_id INTEGER NOT NULL REFERENCES universities(id),
    kind TEXT NOT NULL CHECK (kind IN ('maintenance', 'suspension')),
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL CHECK (ends_at > starts_at),
    note_ja TEXT NOT NULL DEFAULT '',
    note_en TEXT NOT NULL DEFAULT '',
    created_by INTEGER REFERENCES staff(id),
    created_at INTEGER NOT NULL
);
CREATE INDEX service_breaks_time ON service_breaks(university_id, ends_at);

-- Eligibility (O-1): which faculties (codes, comma-separated; empty = all) and
-- which graduation years may order a type, beside the leaving types
-- ('enrolled' = enrolled students).
ALTER TABLE certificate_types ADD COLUMN faculty_codes TEXT NOT NULL DEFAULT '';
ALTER TABLE certificate_types ADD COLUMN grad_year_from INTEGER;
ALTER TABLE certificate_types ADD COLUMN grad_year_to INTEGER;
