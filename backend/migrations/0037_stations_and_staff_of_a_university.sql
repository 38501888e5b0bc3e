-- Universities are tenants (issue 15): a station serves one university (its
-- numbers and PDFs only), a staff member works for one. Existing rows belong
-- to the first university, the only one a deployment had so far.
-- (SQLite cannot add a column with both REFERENCES and a non-NULL default
-- while foreign keys are on: the PostgreSQL form carries the reference.)
ALTER TABLE stations ADD COLUMN university_id INTEGER NOT NULL DEFAULT 1;
ALTER TABLE staff ADD COLUMN university_id INTEGER NOT NULL DEFAULT 1;
