-- Many hosts, one store. A running bulk job is worked by one host at a
-- time: the one holding its lease (`lease_owner`, a host's instance id),
-- which it renews while it works; `lease_until` is wall-clock unix
-- milliseconds. When a host dies its lease runs out and another host takes
-- the job over. Exactly-once rests on the items (an item's result commits
-- with its removal), not on the lease.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT COLLATE "C";
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;

-- Named rows that serialise writers of one kind by a row lock
-- (`SELECT … FOR UPDATE` on PostgreSQL; SQLite's one write lock already
-- does): 'publish' makes "check the newest version, then add one" atomic.
CREATE TABLE store_locks (name TEXT COLLATE "C" PRIMARY KEY);
INSERT INTO store_locks (name) VALUES ('publish');
