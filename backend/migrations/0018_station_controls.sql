-- Operators' controls of a station (issue 6): take it out of service for
-- maintenance (the kiosk says so and takes no money) and ask it to print a
-- test page; the station picks both up with its next heartbeat and reports
-- the test page's outcome.
ALTER TABLE stations ADD COLUMN in_service INTEGER NOT NULL DEFAULT 1;
ALTER TABLE stations ADD COLUMN test_page_wanted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stations ADD COLUMN test_page_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stations ADD COLUMN test_page_result TEXT NOT NULL DEFAULT '';
ALTER TABLE stations ADD COLUMN test_page_at INTEGER;
