-- (migrations/0037_stations_and_staff_of_a_university.sql for PostgreSQL)
-- Universities are tenants (issue 15): a station serves one university (its
-- numbers and PDFs only), a staff member works for one. Existing rows belong
-- to the first university, the only one a deployment had so far.
ALTER TABLE stations ADD COLUMN university_id BIGINT NOT NULL DEFAULT 1 REFERENCES universities(id);
ALTER TABLE staff ADD COLUMN university_id BIGINT NOT NULL DEFAULT 1 REFERENCES universities(id);
