-- SCIM 2.0 (issue 15). An identity provider's record of each member it
-- provisioned: its own userName, externalId and the attributes it set
-- (name, emails, phoneNumbers, ...), per account. The global user (users)
-- is never changed by it: one person, one identity, many tenants, and no
-- tenant sees another's record. `resource` is the stored attributes as a
-- JSON object; `version` is the ETag's counter.
CREATE TABLE scim_users (
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    user_id         TEXT NOT NULL REFERENCES users(id),
    user_name       TEXT NOT NULL,
    user_name_lower TEXT NOT NULL,
    external_id     TEXT,
    resource        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_modified   BIGINT NOT NULL,
    version         BIGINT NOT NULL,
    PRIMARY KEY (account_id, user_id),
    UNIQUE (account_id, user_name_lower)
);

-- Members provisioned before this table: their address as userName.
INSERT INTO scim_users (account_id, user_id, user_name, user_name_lower, external_id, resource, created_at, last_modified, version)
SELECT m.account_id, m.user_id, u.email, u.email_lower, NULL, '{}', m.created_at, m.created_at, 1
FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.managed_by_idp = 1;

-- Email domains an account proved it owns (R17): its identity provider may
-- provision existing users with addresses there. `verified_by` is the
-- owner who proved it by signing in at the domain, or `operator`
-- (`gatehouse domain verify`).
CREATE TABLE account_domains (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    domain      TEXT NOT NULL,
    verified_by TEXT NOT NULL,
    verified_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, domain)
);
