//! The policy editor's API over HTTP: who may use it (a policy decides),
//! the strict check with places, a publish refused by the decision tables
//! that changes nothing, and a publish whose version and audit record land
//! together and that the host decides with before it answers.

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::{T, editor};
use serde_json::{Value, json};

/// `POST /v1/policies/check` as olivia.
async fn check(t: &T, policies: &Value) -> Value {
    let (s, body) = t
        .post(
            "olivia",
            "/v1/policies/check",
            json!({ "policies": policies }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

/// `POST /v1/policies/publish` as `user`, from a browser session signed
/// in just now.
async fn publish(t: &T, user: &str, policies: &Value, message: &str) -> (StatusCode, Value) {
    let session = t.browser(user).await;
    t.call_browser(
        &session,
        Method::POST,
        "/v1/policies/publish",
        Some(json!({ "policies": policies, "message": message })),
    )
    .await
}

/// `POST /v1/policies/publish-requests/{id}/{verb}` as `user`, from a
/// browser session signed in just now.
async fn answer(t: &T, user: &str, id: &str, verb: &str) -> (StatusCode, Value) {
    let session = t.browser(user).await;
    t.call_browser(
        &session,
        Method::POST,
        &format!("/v1/policies/publish-requests/{id}/{verb}"),
        None,
    )
    .await
}

/// A denial's policy ids.
fn reason_ids(body: &Value) -> Vec<String> {
    body["error"]["reasons"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|r| r["policy"].as_str().unwrap().to_owned())
        .collect()
}

/// The live files with `file` edited.
fn edited(live: &Value, file: &str, edit: impl Fn(&str) -> String) -> Value {
    let mut found = false;
    let files: Vec<Value> = live["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let text = f["text"].as_str().unwrap();
            if f["file"] == file {
                found = true;
                let new = edit(text);
                assert_ne!(new, text, "the edit of {file} changed nothing");
                json!({"file": file, "text": new})
            } else {
                f.clone()
            }
        })
        .collect();
    assert!(found, "no {file}");
    Value::Array(files)
}

#[tokio::test]
async fn only_owners_of_the_policy_account_may_open_the_editor() {
    let t = editor().await;
    let (s, live) = t.get("olivia", "/v1/policies").await;
    assert_eq!(s, StatusCode::OK, "{live}");
    assert_eq!(live["account"], "agency");
    assert_eq!(live["policies"].as_array().unwrap().len(), 21);
    assert!(
        live["schema"]
            .as_str()
            .unwrap()
            .contains("action author_policies")
    );
    let tables = live["tables"].as_array().unwrap();
    assert!(tables.len() > 300, "{} tables", tables.len());
    assert!(
        tables
            .iter()
            .all(|t| t["input"].is_string() && t["expect"].is_object())
    );
    assert_eq!(live["policy_hash"], t.host.gate.policy_hash());

    // An admin is told which policy says no.
    let (s, body) = t.get("ada", "/v1/policies").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let reasons = &body["error"]["reasons"];
    assert_eq!(reasons[0]["policy"], "PA.author-policies", "{body}");
    assert!(
        reasons[0]["message"]
            .as_str()
            .unwrap()
            .contains("only owners of Acme Agency may edit or publish the policies")
    );
    // The owner of another account learns nothing about this one.
    let (s, _) = t.get("sola", "/v1/policies").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The account list carries the question's second column for the page.
    let (_, accounts) = t.get("olivia", "/v1/accounts").await;
    assert_eq!(accounts["policy_account"], "agency");
    let actions: Vec<&str> = accounts["question"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["switch_account", "author_policies"]);

    // Without --policy-account the editor is off, and says how to turn it on.
    let off = common::acme().await;
    let (s, body) = off.get("olivia", "/v1/policies").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--policy-account")
    );
    let (_, accounts) = off.get("olivia", "/v1/accounts").await;
    assert_eq!(accounts["policy_account"], Value::Null);
}

#[tokio::test]
async fn the_strict_check_points_at_type_and_parse_errors() {
    let t = editor().await;
    let (_, live) = t.get("olivia", "/v1/policies").await;
    let ok = check(&t, &live["policies"]).await;
    assert_eq!(ok["type"], "valid", "{ok}");
    assert_eq!(ok["report"]["actions"], 43);

    // An attribute the schema does not have: found by type validation, at
    // the attribute.
    let policies = edited(&live, "r18_audit.cedar", |t| {
        t.replace(
            "principal in resource.admins",
            "principal in resource.auditors",
        )
    });
    let bad = check(&t, &policies).await;
    assert_eq!(bad["type"], "invalid", "{bad}");
    let p = &bad["problems"][0];
    assert_eq!(p["location"], "R18.read-audit", "{bad}");
    let text = policies
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "r18_audit.cedar")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = p["offset"].as_u64().unwrap() as usize;
    assert!(
        text[at..].starts_with("resource.auditors"),
        "{}",
        &text[at..]
    );

    // A parse error names its file and where in it.
    let policies = edited(&live, "r16_leave.cedar", |t| {
        format!("{t}\npermit (principal,")
    });
    let bad = check(&t, &policies).await;
    assert_eq!(bad["type"], "invalid", "{bad}");
    assert_eq!(bad["problems"][0]["location"], "r16_leave.cedar", "{bad}");
    assert!(bad["problems"][0]["offset"].as_u64().unwrap() > 300);
}

#[tokio::test]
async fn a_publish_the_tables_refuse_changes_nothing() {
    let t = editor().await;
    let (_, live) = t.get("olivia", "/v1/policies").await;
    let hash = t.host.gate.policy_hash();
    let state = t.state().await;
    // Admins may no longer suspend: R7's tables fail.
    let policies = edited(&live, "r07_suspend.cedar", |t| {
        t.replacen(
            "when { principal in resource.account.admins };",
            "when { principal in resource.account.owners };",
            1,
        )
    });
    let (s, body) = publish(&t, "olivia", &policies, "admins stop suspending").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("not published:"), "{message}");
    assert!(message.contains("FAIL r07_suspend"), "{message}");
    assert!(
        !message.contains("/tmp/"),
        "the draft is not named by a temporary path: {message}"
    );
    assert_eq!(t.int("SELECT count(*) FROM policy_versions").await, 0);
    assert_eq!(
        t.int("SELECT count(*) FROM audit WHERE action = 'author_policies'")
            .await,
        0
    );
    assert_eq!(t.host.gate.policy_hash(), hash);
    assert_eq!(t.state().await, state);

    // A message is required (it is the version's record of why).
    let (s, _) = publish(&t, "olivia", &live["policies"], "  ").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_publish_records_the_version_and_its_audit_together_and_the_host_decides_with_it() {
    let t = editor().await;
    let (_, live) = t.get("olivia", "/v1/policies").await;
    let before = t.host.gate.policy_hash();

    // An admin's attempt is refused and audited; nothing is published.
    let (s, _) = publish(&t, "ada", &live["policies"], "mine").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let denied = t.last_audit().await;
    assert_eq!(denied["action"], "publish_policies");
    assert_eq!(denied["decision"], "denied");
    assert_eq!(t.int("SELECT count(*) FROM policy_versions").await, 0);

    let policies = edited(&live, "r16_leave.cedar", |t| format!("// Reviewed.\n{t}"));
    let (s, pending) = publish(&t, "olivia", &policies, "R16 reviewed").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{pending}");
    let id = pending["pending"]["id"].as_str().unwrap().to_owned();
    // Pending: nothing is live yet; the other owner is mailed.
    assert_eq!(t.int("SELECT count(*) FROM policy_versions").await, 0);
    assert_eq!(t.host.gate.policy_hash(), before);
    assert_eq!(
        t.int("SELECT count(*) FROM outbox WHERE to_email = 'oscar@acme.test' AND subject LIKE '%asks to publish%'")
            .await,
        1
    );
    let log = pending["log"].as_array().unwrap();
    assert!(
        log.iter()
            .any(|l| l.as_str().unwrap().contains("properties: 8 hold, 0 fail")),
        "{pending}"
    );
    // The author cannot approve their own publish.
    let (s, body) = answer(&t, "olivia", &id, "approve").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(reason_ids(&body), ["PA.approve"], "{body}");
    assert_eq!(t.int("SELECT count(*) FROM policy_versions").await, 0);
    // The list shows it pending, with the module's answers for the viewer.
    let session = t.browser("oscar").await;
    let (_, list) = t
        .call_browser(&session, Method::GET, "/v1/policies/publish-requests", None)
        .await;
    let row = &list["requests"][0];
    assert_eq!(row["status"], "pending", "{list}");
    assert_eq!(
        row["decisions"]["approve_publish"]["allowed"], true,
        "{list}"
    );
    assert_eq!(
        row["decisions"]["cancel_publish"]["allowed"], false,
        "{list}"
    );
    // A second owner approves: the version lands and every owner is mailed.
    let (s, body) = answer(&t, "oscar", &id, "approve").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 1);
    for owner in ["olivia@acme.test", "oscar@acme.test"] {
        assert_eq!(
            t.int(&format!(
                "SELECT count(*) FROM outbox WHERE to_email = '{owner}' AND subject LIKE 'New policies are live%'"
            ))
            .await,
            1,
            "{owner}"
        );
    }
    let hash = body["policy_hash"].as_str().unwrap();
    assert_ne!(hash, before);
    // This host answers under the new policies before it answered.
    assert_eq!(t.host.gate.policy_hash(), hash);
    let v = &t
        .rows("SELECT version, author, message, policy_hash FROM policy_versions")
        .await[0];
    assert_eq!(v["author"], "olivia@acme.test");
    assert_eq!(v["message"], "R16 reviewed (approved by oscar@acme.test)");
    assert_eq!(v["policy_hash"], hash);
    let audit = t.last_audit().await;
    assert_eq!(audit["id"], body["audit_id"]);
    assert_eq!(audit["decision"], "allowed");
    assert_eq!(audit["action"], "approve_publish");
    assert_eq!(audit["actor"], "user:oscar");
    let after: Value = serde_json::from_str(audit["after_state"].as_str().unwrap()).unwrap();
    assert_eq!(after["version"], 1);
    assert_eq!(after["policy_hash"], hash);

    // A draft begun on the old policies is refused: it would undo this one.
    let session = t.browser("olivia").await;
    let (s, body) = t
        .call_browser(
            &session,
            Method::POST,
            "/v1/policies/publish",
            Some(json!({"policies": live["policies"], "message": "stale", "base": before})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("changed since this draft was begun")
    );
    assert_eq!(t.host.gate.policy_hash(), hash);

    // The same policies again: nothing to publish.
    let (s, _) = publish(&t, "olivia", &policies, "again").await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(t.int("SELECT count(*) FROM policy_versions").await, 1);
}

#[tokio::test]
async fn a_token_or_a_stale_sign_in_never_publishes_and_requests_are_declined_cancelled_or_expire()
{
    let t = editor().await;
    let (_, live) = t.get("olivia", "/v1/policies").await;
    let policies = edited(&live, "r16_leave.cedar", |t| {
        format!("// Reviewed by two owners.\n{t}")
    });
    let body = json!({ "policies": policies, "message": "R16 reviewed" });
    // An API token never publishes, an owner's neither.
    let (s, b) = t.post("olivia", "/v1/policies/publish", body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(reason_ids(&b), ["PA.publish-from-session"], "{b}");
    // A sign-in older than 15 minutes is refused with its reason.
    let stale = t.browser("olivia").await;
    t.clock.advance(15 * 60 + 1);
    let (s, b) = t
        .call_browser(
            &stale,
            Method::POST,
            "/v1/policies/publish",
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(reason_ids(&b), ["PA.publish-fresh-sign-in"], "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{b}"
    );
    assert_eq!(t.int("SELECT count(*) FROM publish_requests").await, 0);

    // Declined by the other owner: nothing lands, the author is mailed.
    let (s, p) = publish(&t, "olivia", &policies, "first").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{p}");
    let first = p["pending"]["id"].as_str().unwrap().to_owned();
    // A token cannot answer either.
    let (s, b) = t
        .post(
            "oscar",
            &format!("/v1/policies/publish-requests/{first}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(reason_ids(&b), ["PA.publish-from-session"], "{b}");
    // An admin is not a second owner.
    let (s, b) = answer(&t, "ada", &first, "approve").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(reason_ids(&b), ["PA.approve"], "{b}");
    let (s, b) = answer(&t, "oscar", &first, "decline").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "declined");
    let (s, b) = answer(&t, "oscar", &first, "approve").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(reason_ids(&b), ["PA.publish-not-pending"], "{b}");
    assert_eq!(
        t.int("SELECT count(*) FROM outbox WHERE to_email = 'olivia@acme.test' AND subject LIKE '%declined%'")
            .await,
        1
    );

    // Cancelled by its author; only its author cancels.
    t.clock.advance(1);
    let (s, p) = publish(&t, "olivia", &policies, "second").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{p}");
    let second = p["pending"]["id"].as_str().unwrap().to_owned();
    let (s, b) = answer(&t, "oscar", &second, "cancel").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(reason_ids(&b), ["PA.cancel"], "{b}");
    let (s, b) = answer(&t, "olivia", &second, "cancel").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "cancelled");

    // Expired after 7 days: refused, shown as expired.
    t.clock.advance(1);
    let (s, p) = publish(&t, "olivia", &policies, "third").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{p}");
    let third = p["pending"]["id"].as_str().unwrap().to_owned();
    t.clock.advance(7 * 24 * 3600);
    let (s, b) = answer(&t, "oscar", &third, "approve").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(reason_ids(&b), ["PA.publish-expired"], "{b}");
    let session = t.browser("oscar").await;
    let (_, list) = t
        .call_browser(&session, Method::GET, "/v1/policies/publish-requests", None)
        .await;
    let statuses: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["expired", "cancelled", "declined"], "{list}");
    assert_eq!(t.int("SELECT count(*) FROM policy_versions").await, 0);
    // A stranger to the policy account learns nothing of the request.
    let (s, _) = answer(&t, "sola", &third, "approve").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
