-- Graduation day (issue 16): the registrar issues the digital degree
-- certificates of a whole cohort in one action. Each graduate's is an order
-- "issued by the university" (no charge to the graduate), signed and mailed
-- once by a background job; the panel shows the run's progress.
--
-- orders.payment_method gains 'university' (the same documented in-place
-- widening of a CHECK as migration 0042; the rows stored all satisfy it).
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, 'payment_method IN (''card'', ''paypal'', ''smartpit'')', 'payment_method IN (''card'', ''paypal'', ''smartpit'', ''university'')')
 WHERE type = 'table' AND name = 'orders';
PRAGMA writable_schema = OFF;

-- One press of "issue" by the registrar: a cohort (graduation date, one
-- faculty or all) and the certificate type issued to it.
CREATE TABLE cohort_runs (
    id INTEGER PRIMARY KEY,
    university_id INTEGER NOT NULL REFERENCES universities(id),
    certificate_type_id INTEGER NOT NULL REFERENCES certificate_types(id),
    graduation_date TEXT NOT NULL,
    -- '' is every faculty
    faculty_code TEXT NOT NULL,
    started_by INTEGER NOT NULL REFERENCES staff(id),
    started_at INTEGER NOT NULL,
    finished_at INTEGER
);

-- One graduate of a run. pending: to issue (order_id once placed; error
-- says why the last try failed, and it is tried again); issued: signed and
-- mailed; no_account: no shomei account holds the student number; failed:
-- cannot be issued as the register stands (error says why). A later run
-- takes the no_account and failed ones again.
CREATE TABLE cohort_items (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES cohort_runs(id),
    certificate_type_id INTEGER NOT NULL REFERENCES certificate_types(id),
    student_no TEXT NOT NULL,
    student_record_id INTEGER REFERENCES student_records(id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'issued', 'no_account', 'failed')),
    order_id INTEGER REFERENCES orders(id),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    done_at INTEGER
);
CREATE INDEX cohort_items_run ON cohort_items(run_id, state);
-- a graduate is issued a type by graduation day once, whatever runs overlap
CREATE UNIQUE INDEX cohort_items_once ON cohort_items(certificate_type_id, student_no) WHERE state IN ('pending', 'issued');
