-- What this database was created as: a demo (its demo data may be topped up
-- at start) or a real deployment (never seeded). One row, written on the
-- first start of an empty database.
CREATE TABLE deployment (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    demo INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
-- databases from before this table: a demo if they hold the demo staff member
INSERT INTO deployment (id, demo, created_at)
    SELECT 1, 1, CAST(strftime('%s', 'now') AS INTEGER)
    WHERE EXISTS (SELECT 1 FROM staff WHERE login = 'staff' AND display_name = 'Demo Staff');
INSERT INTO deployment (id, demo, created_at)
    SELECT 1, 0, CAST(strftime('%s', 'now') AS INTEGER)
    WHERE NOT EXISTS (SELECT 1 FROM deployment) AND EXISTS (SELECT 1 FROM universities);
