//! What a decided change must leave behind, checked the same way by every
//! test file: an allowed change is applied with one "allowed" audit row; a
//! denied, inapplicable or hidden one changes nothing but one "denied" audit
//! row whose reasons are the ones the response carried.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::T;

/// What a denial must leave untouched: the state, and the audit log but for
/// the one record of the attempt.
pub struct Before {
    /// [`T::state`] before the attempt.
    pub state: String,
    /// The newest audit id before the attempt.
    pub audit: i64,
}

/// Takes the [`Before`] of the next attempt.
pub async fn before(t: &T) -> Before {
    Before {
        state: t.state().await,
        audit: t.int("SELECT COALESCE(MAX(id), 0) FROM audit").await,
    }
}

/// The audit rows after `id`, oldest first.
pub async fn audit_since(t: &T, id: i64) -> Vec<Value> {
    t.rows(&format!("SELECT * FROM audit WHERE id > {id} ORDER BY id"))
        .await
}

/// Runs one SQL statement on the store (test setup).
pub async fn exec(t: &T, sql: &str) {
    sqlx::query(sql).execute(t.host.store.pool()).await.unwrap();
}

/// A signed-up user who is a member of nothing yet.
pub async fn new_user(t: &T, id: &str, email: &str) {
    exec(
        t,
        &format!(
            "INSERT INTO users (id, email, email_lower, name, created_at) VALUES ('{id}', '{email}', '{}', 'New {id}', 0)",
            email.to_lowercase()
        ),
    )
    .await;
}

/// Asks to invite `email` to `account` as `role`.
pub async fn try_invite(
    t: &T,
    by: &str,
    email: &str,
    account: &str,
    role: &str,
) -> (StatusCode, Value) {
    t.post(
        by,
        "/v1/invitations",
        json!({"emails": [email], "accounts": [{"account": account, "role": role}]}),
    )
    .await
}

/// Invites and returns (invitation id, token).
pub async fn invite(t: &T, by: &str, email: &str, account: &str, role: &str) -> (String, String) {
    let (s, body) = try_invite(t, by, email, account, role).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    (
        body["result"]["invitation"].as_str().unwrap().to_owned(),
        body["result"]["token"].as_str().unwrap().to_owned(),
    )
}

/// The policy ids of a reasons array.
pub fn policies(reasons: &Value) -> Vec<String> {
    reasons
        .as_array()
        .unwrap_or_else(|| panic!("reasons is not an array: {reasons}"))
        .iter()
        .map(|r| r["policy"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A JSON document stored as text.
pub fn parse(text: &Value) -> Value {
    serde_json::from_str(text.as_str().unwrap_or_else(|| panic!("not text: {text}"))).unwrap()
}

/// The audit row's `envelope` is the whole question: action and facts, at
/// the host's `now`.
pub fn assert_request_has_facts(t: &T, row: &Value, action: &str) -> Value {
    let req = parse(&row["envelope"]);
    assert_eq!(req["action"], action, "{req}");
    assert_eq!(req["facts"]["now"], t.clock.now(), "{req}");
    assert!(
        req["facts"]["users"]
            .as_array()
            .is_some_and(|u| !u.is_empty()),
        "the recorded request carries no facts: {req}"
    );
    assert!(req["facts"]["accounts"].is_array(), "{req}");
    assert!(req["facts"]["memberships"].is_array(), "{req}");
    req
}

/// The newest audit row is an allowed `action` on `target` by `actor`,
/// from the API, whose reasons name `permit`. Returns the row.
pub async fn assert_audited(t: &T, actor: &str, action: &str, target: &str, permit: &str) -> Value {
    let row = t.last_audit().await;
    assert_eq!(row["actor"], format!("user:{actor}"), "{row}");
    assert_eq!(row["action"], action, "{row}");
    assert_eq!(row["target"], target, "{row}");
    assert_eq!(row["decision"], "allowed", "{row}");
    assert_eq!(row["source"], "api", "{row}");
    assert!(
        row["policy_hash"].as_str().is_some_and(|h| !h.is_empty()),
        "{row}"
    );
    assert!(
        row["module_hash"].as_str().is_some_and(|h| h.len() == 64),
        "{row}"
    );
    let reasons = parse(&row["reasons"]);
    assert!(
        policies(&reasons).iter().any(|p| p == permit),
        "expected {permit} among {reasons}"
    );
    assert_request_has_facts(t, &row, action);
    row
}

/// An allowed change: a success status naming the audit row
/// [`assert_audited`] checks. Returns the row.
pub async fn assert_allowed(
    t: &T,
    resp: &(StatusCode, Value),
    actor: &str,
    action: &str,
    target: &str,
    permit: &str,
) -> Value {
    let (status, body) = resp;
    assert!(status.is_success(), "{status}: {body}");
    let row = assert_audited(t, actor, action, target, permit).await;
    if let Some(id) = body["audit_id"].as_i64() {
        assert_eq!(row["id"], id, "the response names another audit row");
    }
    row
}

/// Nothing but one "denied" audit row by `actor` (`user:…`, `idp:…`)
/// changed; its reasons name `policy`. Returns the row.
pub async fn assert_denial_recorded(
    t: &T,
    b: &Before,
    actor: &str,
    action: &str,
    target: &str,
    policy: &str,
) -> Value {
    assert!(
        t.state().await == b.state,
        "a denied change changed the stored state"
    );
    let rows = audit_since(t, b.audit).await;
    assert_eq!(
        rows.len(),
        1,
        "expected exactly one new audit row: {rows:?}"
    );
    let row = rows[0].clone();
    assert_eq!(row["decision"], "denied", "{row}");
    assert_eq!(row["actor"], actor, "{row}");
    assert_eq!(row["action"], action, "{row}");
    assert_eq!(row["target"], target, "{row}");
    assert!(
        row["policy_hash"].as_str().is_some_and(|h| !h.is_empty()),
        "{row}"
    );
    assert!(row["after_state"].is_null(), "{row}");
    let reasons = parse(&row["reasons"]);
    assert!(
        policies(&reasons).iter().any(|p| p == policy),
        "expected {policy} among the recorded reasons {reasons}"
    );
    assert_request_has_facts(t, &row, action);
    row
}

/// A refusal the module decided and the response explains: `status` and
/// `code`, reasons that name `policy` each with a message, the same reasons
/// in the one audit row, nothing else changed. Returns the audit row.
async fn assert_explained(
    t: &T,
    b: &Before,
    resp: &(StatusCode, Value),
    (status, code): (StatusCode, &str),
    (actor, action, target, policy): (&str, &str, &str, &str),
) -> Value {
    let body = &resp.1;
    assert_eq!(resp.0, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let reasons = &body["error"]["reasons"];
    assert!(
        policies(reasons).iter().any(|p| p == policy),
        "expected {policy} among {reasons}"
    );
    for r in reasons.as_array().unwrap() {
        assert!(
            r["message"].as_str().is_some_and(|m| !m.is_empty()),
            "a reason without a message: {r}"
        );
    }
    let row = assert_denial_recorded(t, b, &format!("user:{actor}"), action, target, policy).await;
    assert_eq!(body["error"]["audit_id"], row["id"], "{body}");
    assert_eq!(parse(&row["reasons"]), *reasons);
    row
}

/// A denial: 403 `denied` whose reasons name `policy` (each with a message),
/// recorded as one audit row, nothing else changed. Returns the body.
pub async fn assert_denied(
    t: &T,
    b: &Before,
    resp: &(StatusCode, Value),
    actor: &str,
    action: &str,
    target: &str,
    policy: &str,
) -> Value {
    let why = (actor, action, target, policy);
    let row = assert_explained(t, b, resp, (StatusCode::FORBIDDEN, "denied"), why).await;
    assert_ne!(row["outcome"], "inapplicable", "{row}");
    resp.1.clone()
}

/// A change that does not apply to its target as it stands (outcome
/// `inapplicable`): 409 `inapplicable` whose only reason is `policy`,
/// recorded as one denied audit row whose outcome says so, nothing else
/// changed. Returns the body.
pub async fn assert_inapplicable(
    t: &T,
    b: &Before,
    resp: &(StatusCode, Value),
    actor: &str,
    action: &str,
    target: &str,
    policy: &str,
) -> Value {
    let why = (actor, action, target, policy);
    let row = assert_explained(t, b, resp, (StatusCode::CONFLICT, "inapplicable"), why).await;
    assert_eq!(
        policies(&resp.1["error"]["reasons"]),
        vec![policy.to_owned()],
        "{}",
        resp.1
    );
    assert_eq!(row["outcome"], "inapplicable", "{row}");
    resp.1.clone()
}

/// A denial hidden from a stranger: the 404 of a missing id (no reasons),
/// recorded, nothing changed.
pub async fn assert_hidden(
    t: &T,
    b: &Before,
    resp: &(StatusCode, Value),
    actor: &str,
    action: &str,
    target: &str,
    policy: &str,
) {
    let (status, body) = resp;
    assert_eq!(*status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert!(body["error"]["reasons"].is_null(), "{body}");
    assert_denial_recorded(t, b, &format!("user:{actor}"), action, target, policy).await;
}

/// A read denied with a 403 and reasons naming `policy`; reads change nothing.
pub async fn assert_read_denied(t: &T, b: &Before, resp: &(StatusCode, Value), policy: &str) {
    let (status, body) = resp;
    assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "denied", "{body}");
    assert!(
        policies(&body["error"]["reasons"])
            .iter()
            .any(|p| p == policy),
        "expected {policy} in {body}"
    );
    assert!(t.state().await == b.state);
}
