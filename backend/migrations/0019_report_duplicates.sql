-- A print reported for an order another station had printed already (its
-- report came late, e.g. after an outage, and the number was reprinted
-- elsewhere meanwhile): kept and shown to staff like offline duplicates.
ALTER TABLE station_reports ADD COLUMN duplicate INTEGER NOT NULL DEFAULT 0;
