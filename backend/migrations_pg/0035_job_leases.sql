-- (migrations/0035_job_leases.sql for PostgreSQL)
-- Background work runs once across every backend process on one database:
-- a job's pass runs only in the process holding its lease (taken or renewed
-- at each pass, lapsing when its holder stops renewing it).
CREATE TABLE job_leases (
    name TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);
