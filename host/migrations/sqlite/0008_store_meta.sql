-- Facts about the store itself, one row per key. `demo` is written by
-- `gatehouse serve --demo` in the transaction that seeds a fresh store with
-- the demo data: only such a store may be served with `--demo` (its
-- mailbox shows every sign-in link), never one with data of its own.
CREATE TABLE store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Two hosts started with --demo on one new database at once: the second
-- waits for the first's seed and finds the marker.
INSERT INTO store_locks (name) VALUES ('demo');
