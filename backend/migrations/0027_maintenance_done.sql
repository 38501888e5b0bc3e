-- One-off passes the backend runs at start (sealing what an older release
-- stored in clear), recorded once done so that later starts skip them
-- instead of reading every mail and PDF again.
CREATE TABLE maintenance_done (
    name TEXT PRIMARY KEY,
    done_at INTEGER NOT NULL
);
