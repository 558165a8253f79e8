-- Published policy modules. The newest version is the one every host
-- serves; a rollback publishes an older version's bytes again as a new
-- version, so the history only grows.
CREATE TABLE policy_versions (
    version       INTEGER PRIMARY KEY,
    module_sha256 TEXT NOT NULL,
    policy_hash   TEXT NOT NULL,
    author        TEXT NOT NULL,
    message       TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    rollback_of   BIGINT REFERENCES policy_versions(version),
    module        BLOB NOT NULL
);
