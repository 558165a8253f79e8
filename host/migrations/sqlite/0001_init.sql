-- Gatehouse store, first version.
-- Portable SQL on purpose (PostgreSQL comes next): no triggers, no
-- SQLite-only functions; invariants are kept by transactions that re-read the
-- facts and ask the module, never by in-process locks.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    email_lower TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    phone       TEXT,
    country     TEXT,
    notify_email INTEGER NOT NULL DEFAULT 1,
    notify_sms   INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    parent_id      TEXT REFERENCES accounts(id),
    included_seats BIGINT NOT NULL,
    extra_seats    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX accounts_parent ON accounts(parent_id);

CREATE TABLE memberships (
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    user_id        TEXT NOT NULL REFERENCES users(id),
    role           TEXT NOT NULL,
    status         TEXT NOT NULL,
    nickname       TEXT,
    managed_by_idp INTEGER NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (account_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    email       TEXT NOT NULL,
    email_lower TEXT NOT NULL,
    role        TEXT NOT NULL,
    invited_by  TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    sent_at     BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    status      TEXT NOT NULL,
    accepted_by TEXT
);
CREATE INDEX invitations_account ON invitations(account_id);

CREATE TABLE resources (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users(id)
);
CREATE INDEX resources_account_owner ON resources(account_id, owner_id);
CREATE INDEX resources_owner ON resources(owner_id);

CREATE TABLE owner_removal_requests (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    requested_by TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    new_role     TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX requests_account ON owner_removal_requests(account_id);

-- Signed-in browsers (kind 'browser') and API tokens (kind 'api').
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    kind       TEXT NOT NULL,
    label      TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

-- A session loses one account at once when its user is suspended or removed there.
CREATE TABLE session_revocations (
    session_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (session_id, account_id)
);

CREATE TABLE sign_in_links (
    token_hash TEXT PRIMARY KEY,
    email_lower TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE TABLE scim_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    created_at BIGINT NOT NULL
);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    repeats     BIGINT NOT NULL DEFAULT 1,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    account_id  TEXT,
    target      TEXT NOT NULL,
    decision    TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reasons     TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    module_hash TEXT NOT NULL,
    before_state TEXT,
    after_state  TEXT,
    source      TEXT NOT NULL,
    request     TEXT NOT NULL,
    job_id      TEXT
);
CREATE INDEX audit_account ON audit(account_id, id);
CREATE INDEX audit_actor ON audit(actor, action, target, id);

CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    created_at BIGINT NOT NULL,
    to_email   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    sent_at    BIGINT,
    attempts   BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE TABLE jobs (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    account_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);

-- One row per account the job must visit; 'pending' until decided.
CREATE TABLE job_items (
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    account_id TEXT NOT NULL,
    status     TEXT NOT NULL,
    reasons    TEXT,
    audit_id   BIGINT,
    done_at    BIGINT,
    PRIMARY KEY (job_id, account_id)
);
