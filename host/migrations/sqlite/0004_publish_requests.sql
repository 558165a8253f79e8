-- Publishing the rules is a two-person act: a publish from the editor is a
-- pending request holding the baked module, and becomes a policy version
-- only when a second owner of the policy account approves it. Status:
-- pending | approved | declined | cancelled (expired: pending with
-- expires_at <= now; the policies refuse to answer it).
CREATE TABLE publish_requests (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    author           TEXT NOT NULL,
    message          TEXT NOT NULL,
    base_policy_hash TEXT NOT NULL,
    module           BLOB NOT NULL,
    module_sha256    TEXT NOT NULL,
    policy_hash      TEXT NOT NULL,
    log              TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    decided_by       TEXT,
    decided_at       BIGINT,
    version          BIGINT
);
CREATE INDEX publish_requests_account ON publish_requests(account_id, created_at);
