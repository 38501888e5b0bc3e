-- A-5 fleet: what each heartbeat adds (supplies, loaded media, the payment
-- terminal, free disk, uptime, jobs printed), what operators were last alerted
-- about, and one sample per station and minute for the 24-hour charts.
ALTER TABLE stations ADD COLUMN markers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE stations ADD COLUMN media_ready TEXT NOT NULL DEFAULT '';
ALTER TABLE stations ADD COLUMN terminal_present INTEGER;
ALTER TABLE stations ADD COLUMN disk_free_mb INTEGER;
ALTER TABLE stations ADD COLUMN uptime_s INTEGER;
ALTER TABLE stations ADD COLUMN jobs_printed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stations ADD COLUMN alert TEXT NOT NULL DEFAULT '';
CREATE TABLE station_samples (
    station_id INTEGER NOT NULL REFERENCES stations(id),
    at INTEGER NOT NULL,
    printer_ready INTEGER NOT NULL,
    printer_state TEXT NOT NULL,
    reasons TEXT NOT NULL,
    -- lowest known supply level, per cent (NULL: the printer does not say)
    supply_level INTEGER,
    jobs_printed INTEGER NOT NULL,
    PRIMARY KEY (station_id, at)
) WITHOUT ROWID;
