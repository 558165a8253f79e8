-- The audit log keeps the exact envelope the module decided: `envelope`
-- holds the bytes the host handed the module (`{"op":"authorize",…}`, UTF-8
-- JSON, stored as given), and `gatehouse policy impact` hands those very
-- bytes to the new policies. Rows written before this migration have only
-- `request` (the question re-serialized as JSON, without `op`); they stay
-- readable and are replayed from it. A row has exactly one of the two.
--
-- SQLite cannot drop a NOT NULL constraint in place, so the table is
-- rebuilt (no other table references it; ids are kept).
CREATE TABLE audit_v5 (
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
    request     TEXT,
    job_id      TEXT,
    envelope    TEXT,
    CHECK ((request IS NULL) <> (envelope IS NULL))
);
INSERT INTO audit_v5 (id, at, last_at, repeats, actor, action, account_id, target, decision, outcome,
                      reasons, policy_hash, module_hash, before_state, after_state, source, request, job_id)
SELECT id, at, last_at, repeats, actor, action, account_id, target, decision, outcome,
       reasons, policy_hash, module_hash, before_state, after_state, source, request, job_id
FROM audit;
DROP TABLE audit;
ALTER TABLE audit_v5 RENAME TO audit;
CREATE INDEX audit_account ON audit(account_id, id);
CREATE INDEX audit_actor ON audit(actor, action, target, id);
