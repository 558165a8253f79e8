//! Every rule of PRODUCT.md (R1–R18) through the HTTP API: for each rule at
//! least one allowed path (the stored state changed as the rule says, and an
//! "allowed" audit record carries the question asked, facts included) and
//! one denied path (403 with the determining policy — or 404 where the
//! product forbids an existence leak —, nothing changed but exactly one
//! "denied" audit record with the reasons).

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::T;
use common::verdict::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

async fn audit_count(t: &T) -> i64 {
    t.int("SELECT COUNT(*) FROM audit").await
}

async fn put(t: &T, user: &str, path: &str, body: Value) -> (StatusCode, Value) {
    t.call(Some(user), Method::PUT, path, Some(body)).await
}

async fn delete(t: &T, user: &str, path: &str) -> (StatusCode, Value) {
    t.call(Some(user), Method::DELETE, path, None).await
}

async fn post_empty(t: &T, user: &str, path: &str) -> (StatusCode, Value) {
    t.call(Some(user), Method::POST, path, None).await
}

/// The membership of `user` in `account` as the recorded facts saw it.
fn fact_membership(req: &Value, account: &str, user: &str) -> Value {
    req["facts"]["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["account"] == account && m["user"] == user)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn role_of(t: &T, account: &str, user: &str) -> Option<String> {
    t.rows(&format!(
        "SELECT role FROM memberships WHERE account_id = '{account}' AND user_id = '{user}'"
    ))
    .await
    .first()
    .map(|r| r["role"].as_str().unwrap().to_owned())
}

async fn status_of(t: &T, account: &str, user: &str) -> Option<String> {
    t.rows(&format!(
        "SELECT status FROM memberships WHERE account_id = '{account}' AND user_id = '{user}'"
    ))
    .await
    .first()
    .map(|r| r["status"].as_str().unwrap().to_owned())
}

async fn is_member(t: &T, account: &str, user: &str) -> bool {
    t.int(&format!(
        "SELECT COUNT(*) FROM memberships WHERE account_id = '{account}' AND user_id = '{user}'"
    ))
    .await
        == 1
}

async fn active_owners(t: &T, account: &str) -> i64 {
    t.int(&format!(
        "SELECT COUNT(*) FROM memberships WHERE account_id = '{account}' AND role = 'owner' AND status = 'active'"
    ))
    .await
}

async fn mails_to(t: &T, email: &str) -> Vec<Value> {
    t.rows(&format!(
        "SELECT subject, body FROM outbox WHERE to_email = '{email}' ORDER BY id"
    ))
    .await
}

/// Sessions of `user` signed out of `account`.
async fn revoked_sessions(t: &T, user: &str, account: &str) -> i64 {
    t.int(&format!(
        "SELECT COUNT(*) FROM session_revocations r JOIN sessions s ON s.id = r.session_id \
         WHERE s.user_id = '{user}' AND r.account_id = '{account}'"
    ))
    .await
}

// ---------------------------------------------------------------- R1

#[tokio::test]
async fn r01_view_members_allowed_active_basic_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let (s, body) = t.get("bea", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let users: Vec<&str> = body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 9, "{users:?}");
    assert!(users.contains(&"olivia") && users.contains(&"sue"));
    // Inherited through the agency: bea may view a sub-account.
    let (s, body) = t.get("bea", "/v1/accounts/east/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // The switcher: agency and its sub-accounts, each switchable.
    let (s, body) = t.get("bea", "/v1/accounts").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let accounts = body["accounts"].as_array().unwrap();
    for id in ["agency", "east", "east-1"] {
        let a = accounts.iter().find(|a| a["id"] == id).unwrap();
        assert_eq!(a["switch"]["allowed"], true, "{a}");
        assert_eq!(
            policies(&a["switch"]["reasons"]),
            vec!["R1.view-and-switch"]
        );
    }
    assert!(!accounts.iter().any(|a| a["id"] == "solo"));
    assert!(t.state().await == b.state);
}

#[tokio::test]
async fn r01_view_members_denied_suspended_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t.get("sue", "/v1/accounts/agency/members").await;
    assert_read_denied(&t, &b, &resp, "R7.suspended-actor").await;
    let (s, body) = t.get("sue", "/v1/accounts").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let agency = body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "agency")
        .unwrap();
    assert_eq!(agency["status"], "suspended");
    assert_eq!(agency["switch"]["allowed"], false, "{agency}");
    assert!(policies(&agency["switch"]["reasons"]).contains(&"R7.suspended-actor".to_owned()));
}

#[tokio::test]
async fn r01_view_members_denied_stranger_gets_404_like_a_missing_account() {
    let t = common::acme().await;
    let b = before(&t).await;
    let (s, hidden) = t.get("stranger", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{hidden}");
    let (s2, missing) = t.get("stranger", "/v1/accounts/no-such/members").await;
    assert_eq!(s2, StatusCode::NOT_FOUND);
    assert_eq!(hidden["error"]["code"], missing["error"]["code"]);
    assert!(hidden["error"]["reasons"].is_null());
    // A member of a sub-account only is a stranger to the agency above it.
    let (s, _) = t.get("eve", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = t.get("stranger", "/v1/accounts").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["accounts"], json!([]));
    assert!(t.state().await == b.state);
}

// ---------------------------------------------------------------- R2

#[tokio::test]
async fn r02_invite_allowed_admin_invites_to_sub_account() {
    let t = common::acme().await;
    let resp = t
        .post(
            "ada",
            "/v1/invitations",
            json!({"emails": ["carl@new.test"], "accounts": [{"account": "east", "role": "admin"}]}),
        )
        .await;
    assert_eq!(resp.0, StatusCode::CREATED, "{}", resp.1);
    let id = resp.1["result"]["invitation"].as_str().unwrap().to_owned();
    let row = assert_allowed(&t, &resp, "ada", "invite", "account:east", "R2.invite").await;
    assert_eq!(row["account_id"], "east");
    let inv = &t
        .rows(&format!("SELECT * FROM invitations WHERE id = '{id}'"))
        .await[0];
    assert_eq!(inv["account_id"], "east");
    assert_eq!(inv["email"], "carl@new.test");
    assert_eq!(inv["role"], "admin");
    assert_eq!(inv["invited_by"], "ada");
    assert_eq!(inv["status"], "pending");
    assert_eq!(inv["sent_at"], t.clock.now());
    assert_eq!(inv["expires_at"], t.clock.now() + 14 * 24 * 3600);
    // The after-state in the audit is the new invitation.
    assert_eq!(parse(&row["after_state"])["id"], id.as_str());
    let req = parse(&row["envelope"]);
    assert_eq!(req["params"]["email"], "carl@new.test");
    assert_eq!(mails_to(&t, "carl@new.test").await.len(), 1);
}

#[tokio::test]
async fn r02_invite_allowed_owner_invites_several_addresses_to_several_accounts() {
    let t = common::acme().await;
    let (s, body) = t
        .post(
            "olivia",
            "/v1/invitations",
            json!({
                "emails": ["x@new.test", "y@new.test"],
                "accounts": [{"account": "east", "role": "owner"}, {"account": "east-1", "role": "basic"}]
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{body}");
    assert!(results.iter().all(|r| r["status"] == 201), "{body}");
    assert_eq!(
        t.int("SELECT COUNT(*) FROM invitations WHERE account_id = 'east' AND role = 'owner' AND status = 'pending'")
            .await,
        2
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM invitations WHERE account_id = 'east-1' AND role = 'basic' AND status = 'pending'")
            .await,
        2
    );
    let rows = t
        .rows("SELECT * FROM audit WHERE action = 'invite' ORDER BY id")
        .await;
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r["decision"], "allowed");
        assert_eq!(r["actor"], "user:olivia");
        assert_request_has_facts(&t, r, "invite");
    }
}

#[tokio::test]
async fn r02_invite_denied_only_owners_invite_owners() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "ada",
            "/v1/invitations",
            json!({"emails": ["carl@new.test"], "accounts": [{"account": "east", "role": "owner"}]}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "invite",
        "account:east",
        "R2.owner-by-owner",
    )
    .await;
}

#[tokio::test]
async fn r02_invite_denied_standard_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "sam",
            "/v1/invitations",
            json!({"emails": ["carl@new.test"], "accounts": [{"account": "east", "role": "basic"}]}),
        )
        .await;
    assert_denied(&t, &b, &resp, "sam", "invite", "account:east", "R2.invite").await;
}

#[tokio::test]
async fn r02_invite_denied_already_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "eve",
            "/v1/invitations",
            json!({"emails": ["Bob@Acme.test"], "accounts": [{"account": "east", "role": "basic"}]}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "eve",
        "invite",
        "account:east",
        "R2.already-member",
    )
    .await;
}

#[tokio::test]
async fn r02_invite_denied_stranger_gets_404() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "stranger",
            "/v1/invitations",
            json!({"emails": ["carl@new.test"], "accounts": [{"account": "east", "role": "basic"}]}),
        )
        .await;
    assert_hidden(
        &t,
        &b,
        &resp,
        "stranger",
        "invite",
        "account:east",
        "R1.stranger",
    )
    .await;
}

// ---------------------------------------------------------------- R3

#[tokio::test]
async fn r03_accept_allowed_with_matching_email() {
    let t = common::acme().await;
    let (id, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    let resp = t
        .post("dan", "/v1/invitations/accept", json!({"token": token}))
        .await;
    assert_eq!(resp.0, StatusCode::OK, "{}", resp.1);
    let row = assert_allowed(
        &t,
        &resp,
        "dan",
        "accept_invitation",
        &format!("invitation:{id}"),
        "R3.accept",
    )
    .await;
    assert_eq!(
        role_of(&t, "east", "dan").await.as_deref(),
        Some("standard")
    );
    assert_eq!(
        status_of(&t, "east", "dan").await.as_deref(),
        Some("active")
    );
    let inv = &t
        .rows(&format!(
            "SELECT status, accepted_by FROM invitations WHERE id = '{id}'"
        ))
        .await[0];
    assert_eq!(inv["status"], "accepted");
    assert_eq!(inv["accepted_by"], "dan");
    assert_eq!(parse(&row["before_state"])["status"], "pending");
    // The new member may now view the account (R1).
    let (s, _) = t.get("dan", "/v1/accounts/east/members").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn r03_accept_denied_email_mismatch() {
    let t = common::acme().await;
    let (id, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    let b = before(&t).await;
    let resp = t
        .post("bea", "/v1/invitations/accept", json!({"token": token}))
        .await;
    let body = assert_denied(
        &t,
        &b,
        &resp,
        "bea",
        "accept_invitation",
        &format!("invitation:{id}"),
        "R3.accept",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dan@new.test"),
        "{body}"
    );
}

// ---------------------------------------------------------------- R4

#[tokio::test]
async fn r04_buy_seats_allowed_owner_and_frees_room_to_invite() {
    let t = common::acme().await;
    // 9 members + 1 pending invitation = all 10 seats (the expired one is free).
    let b = before(&t).await;
    let resp = t
        .post(
            "olivia",
            "/v1/invitations",
            json!({"emails": ["carl@new.test"], "accounts": [{"account": "agency", "role": "basic"}]}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "invite",
        "account:agency",
        "R4.seat-limit",
    )
    .await;
    let resp = t
        .post(
            "olivia",
            "/v1/accounts/agency/seats/buy",
            json!({"quantity": 2}),
        )
        .await;
    let row = assert_allowed(
        &t,
        &resp,
        "olivia",
        "buy_seats",
        "account:agency",
        "R4.seats",
    )
    .await;
    assert_eq!(
        t.int("SELECT extra_seats FROM accounts WHERE id = 'agency'")
            .await,
        2
    );
    assert_eq!(parse(&row["before_state"])["extra_seats"], 0);
    assert_eq!(parse(&row["after_state"])["extra_seats"], 2);
    invite(&t, "olivia", "carl@new.test", "agency", "basic").await;
}

#[tokio::test]
async fn r04_expired_invitation_does_not_hold_a_seat() {
    let t = common::acme().await;
    // Revoking the one live invitation frees a seat: with 9 members and only
    // the expired invitation left, an invitation fits in 10 seats.
    let resp = post_empty(&t, "ada", "/v1/invitations/inv-pending/revoke").await;
    assert_allowed(
        &t,
        &resp,
        "ada",
        "revoke_invitation",
        "invitation:inv-pending",
        "R3.manage",
    )
    .await;
    invite(&t, "ada", "carl@new.test", "agency", "basic").await;
    // Now all 10 are in use again.
    let b = before(&t).await;
    let resp = t
        .post(
            "ada",
            "/v1/invitations",
            json!({"emails": ["dora@new.test"], "accounts": [{"account": "agency", "role": "basic"}]}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "invite",
        "account:agency",
        "R4.seat-limit",
    )
    .await;
}

#[tokio::test]
async fn r04_buy_seats_denied_admin() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "ada",
            "/v1/accounts/agency/seats/buy",
            json!({"quantity": 1}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "buy_seats",
        "account:agency",
        "R4.seats",
    )
    .await;
}

#[tokio::test]
async fn r04_remove_seats_allowed_unused_extra() {
    let t = common::acme().await;
    let resp = t
        .post(
            "eve",
            "/v1/accounts/east/seats/remove",
            json!({"quantity": 2}),
        )
        .await;
    assert_allowed(&t, &resp, "eve", "remove_seats", "account:east", "R4.seats").await;
    assert_eq!(
        t.int("SELECT extra_seats FROM accounts WHERE id = 'east'")
            .await,
        0
    );
}

#[tokio::test]
async fn r04_remove_seats_denied_below_included() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "eve",
            "/v1/accounts/east/seats/remove",
            json!({"quantity": 3}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "eve",
        "remove_seats",
        "account:east",
        "R4.keep-included",
    )
    .await;
}

#[tokio::test]
async fn r04_remove_seats_denied_below_seats_in_use() {
    let t = common::acme().await;
    let (s, body) = t
        .post(
            "olivia",
            "/v1/accounts/agency/seats/buy",
            json!({"quantity": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    invite(&t, "olivia", "carl@new.test", "agency", "basic").await;
    // 11 seats, 11 in use (9 members, 2 live invitations).
    let b = before(&t).await;
    let resp = t
        .post(
            "olivia",
            "/v1/accounts/agency/seats/remove",
            json!({"quantity": 1}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "remove_seats",
        "account:agency",
        "R4.keep-used",
    )
    .await;
}

// ---------------------------------------------------------------- R5

#[tokio::test]
async fn r05_change_role_allowed_admin_up_to_own_role() {
    let t = common::acme().await;
    let resp = put(
        &t,
        "ada",
        "/v1/accounts/agency/members/sam/role",
        json!({"role": "admin"}),
    )
    .await;
    let row = assert_allowed(
        &t,
        &resp,
        "ada",
        "change_role",
        "membership:agency/sam",
        "R5.change-role",
    )
    .await;
    assert_eq!(role_of(&t, "agency", "sam").await.as_deref(), Some("admin"));
    assert_eq!(parse(&row["before_state"])["role"], "standard");
    assert_eq!(parse(&row["after_state"])["role"], "admin");
    let req = parse(&row["envelope"]);
    assert_eq!(fact_membership(&req, "agency", "sam")["role"], "standard");
    assert_eq!(req["params"]["role"], "admin");
}

#[tokio::test]
async fn r05_change_role_allowed_owner_grants_owner() {
    let t = common::acme().await;
    let resp = put(
        &t,
        "olivia",
        "/v1/accounts/agency/members/sam/role",
        json!({"role": "owner"}),
    )
    .await;
    assert_allowed(
        &t,
        &resp,
        "olivia",
        "change_role",
        "membership:agency/sam",
        "R5.change-role",
    )
    .await;
    assert_eq!(role_of(&t, "agency", "sam").await.as_deref(), Some("owner"));
    assert_eq!(active_owners(&t, "agency").await, 3);
}

#[tokio::test]
async fn r05_change_role_denied_admin_grants_owner() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = put(
        &t,
        "ada",
        "/v1/accounts/agency/members/sam/role",
        json!({"role": "owner"}),
    )
    .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "change_role",
        "membership:agency/sam",
        "R5.owner-by-owner",
    )
    .await;
}

#[tokio::test]
async fn r05_change_role_denied_owner_target_is_r10() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = put(
        &t,
        "olivia",
        "/v1/accounts/agency/members/oscar/role",
        json!({"role": "admin"}),
    )
    .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "change_role",
        "membership:agency/oscar",
        "R5.owner-target",
    )
    .await;
}

#[tokio::test]
async fn r05_change_role_denied_own_role() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = put(
        &t,
        "ada",
        "/v1/accounts/agency/members/ada/role",
        json!({"role": "standard"}),
    )
    .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "change_role",
        "membership:agency/ada",
        "R5.not-self",
    )
    .await;
}

#[tokio::test]
async fn r05_change_role_to_the_same_role_is_inapplicable_whoever_asks() {
    let t = common::acme().await;
    for actor in ["ada", "bea"] {
        let b = before(&t).await;
        let resp = put(
            &t,
            actor,
            "/v1/accounts/agency/members/sam/role",
            json!({"role": "standard"}),
        )
        .await;
        let body = assert_inapplicable(
            &t,
            &b,
            &resp,
            actor,
            "change_role",
            "membership:agency/sam",
            "R5.same-role",
        )
        .await;
        assert_eq!(
            body["error"]["message"], "Sam Standard is already standard in Acme Agency",
            "{body}"
        );
    }
}

#[tokio::test]
async fn r05_change_role_denied_basic_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = put(
        &t,
        "bea",
        "/v1/accounts/agency/members/sam/role",
        json!({"role": "basic"}),
    )
    .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "bea",
        "change_role",
        "membership:agency/sam",
        "R5.change-role",
    )
    .await;
}

// ---------------------------------------------------------------- R6

#[tokio::test]
async fn r06_nickname_allowed_own() {
    let t = common::acme().await;
    let resp = put(
        &t,
        "bea",
        "/v1/accounts/agency/members/bea/nickname",
        json!({"nickname": " Bee "}),
    )
    .await;
    assert_allowed(
        &t,
        &resp,
        "bea",
        "edit_nickname",
        "membership:agency/bea",
        "R6.nickname-own",
    )
    .await;
    assert_eq!(
        t.rows("SELECT nickname FROM memberships WHERE account_id = 'agency' AND user_id = 'bea'")
            .await[0]["nickname"],
        "Bee"
    );
}

#[tokio::test]
async fn r06_nickname_allowed_admin_for_others() {
    let t = common::acme().await;
    let resp = put(
        &t,
        "ada",
        "/v1/accounts/agency/members/sam/nickname",
        json!({"nickname": "Sammy"}),
    )
    .await;
    assert_allowed(
        &t,
        &resp,
        "ada",
        "edit_nickname",
        "membership:agency/sam",
        "R6.nickname-admin",
    )
    .await;
    assert_eq!(
        t.rows("SELECT nickname FROM memberships WHERE account_id = 'agency' AND user_id = 'sam'")
            .await[0]["nickname"],
        "Sammy"
    );
}

#[tokio::test]
async fn r06_nickname_denied_other_members_nickname() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = put(
        &t,
        "bea",
        "/v1/accounts/agency/members/ada/nickname",
        json!({"nickname": "Boss"}),
    )
    .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "bea",
        "edit_nickname",
        "membership:agency/ada",
        "R6.nickname-admin",
    )
    .await;
}

// ---------------------------------------------------------------- R7

#[tokio::test]
async fn r07_suspend_allowed_and_signs_out_at_once() {
    let t = common::acme().await;
    // bea is signed in before she is suspended.
    let (s, _) = t.get("bea", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK);
    let resp = post_empty(&t, "ada", "/v1/accounts/agency/members/bea/suspend").await;
    let row = assert_allowed(
        &t,
        &resp,
        "ada",
        "suspend",
        "membership:agency/bea",
        "R7.suspend",
    )
    .await;
    assert_eq!(
        status_of(&t, "agency", "bea").await.as_deref(),
        Some("suspended")
    );
    // Keeps role.
    assert_eq!(role_of(&t, "agency", "bea").await.as_deref(), Some("basic"));
    assert_eq!(parse(&row["after_state"])["status"], "suspended");
    assert_eq!(revoked_sessions(&t, "bea", "agency").await, 1);
    let (s, body) = t.get("bea", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn r07_unsuspend_allowed() {
    let t = common::acme().await;
    let resp = post_empty(&t, "olivia", "/v1/accounts/agency/members/sue/unsuspend").await;
    assert_allowed(
        &t,
        &resp,
        "olivia",
        "unsuspend",
        "membership:agency/sue",
        "R7.suspend",
    )
    .await;
    assert_eq!(
        status_of(&t, "agency", "sue").await.as_deref(),
        Some("active")
    );
    assert_eq!(role_of(&t, "agency", "sue").await.as_deref(), Some("admin"));
    // Her powers are back: she may view the members again.
    let (s, body) = t.get("sue", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn r07_suspend_allowed_owner_suspends_other_owner() {
    let t = common::acme().await;
    let resp = post_empty(&t, "olivia", "/v1/accounts/agency/members/oscar/suspend").await;
    assert_allowed(
        &t,
        &resp,
        "olivia",
        "suspend",
        "membership:agency/oscar",
        "R7.suspend",
    )
    .await;
    assert_eq!(
        status_of(&t, "agency", "oscar").await.as_deref(),
        Some("suspended")
    );
}

#[tokio::test]
async fn r07_suspend_denied_admin_suspends_owner() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "ada", "/v1/accounts/agency/members/oscar/suspend").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "suspend",
        "membership:agency/oscar",
        "R7.owner-by-owner",
    )
    .await;
}

#[tokio::test]
async fn r07_suspending_a_suspended_member_is_inapplicable() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "olivia", "/v1/accounts/agency/members/sue/suspend").await;
    assert_inapplicable(
        &t,
        &b,
        &resp,
        "olivia",
        "suspend",
        "membership:agency/sue",
        "R7.already-suspended",
    )
    .await;
}

#[tokio::test]
async fn r07_unsuspending_an_active_member_is_inapplicable() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "ada", "/v1/accounts/agency/members/bea/unsuspend").await;
    assert_inapplicable(
        &t,
        &b,
        &resp,
        "ada",
        "unsuspend",
        "membership:agency/bea",
        "R7.not-suspended",
    )
    .await;
}

#[tokio::test]
async fn r07_suspend_denied_self() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "ada", "/v1/accounts/agency/members/ada/suspend").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "suspend",
        "membership:agency/ada",
        "R7.not-self",
    )
    .await;
}

#[tokio::test]
async fn r07_suspended_admin_has_no_powers() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "sue", "/v1/accounts/agency/members/bea/suspend").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "sue",
        "suspend",
        "membership:agency/bea",
        "R7.suspended-actor-member",
    )
    .await;
}

// ---------------------------------------------------------------- R8

#[tokio::test]
async fn r08_remove_allowed_frees_seat_signs_out_mails_and_keeps_other_accounts() {
    let t = common::acme().await;
    let (s, _) = t.get("bob", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK);
    let resp = delete(&t, "olivia", "/v1/accounts/agency/members/bob").await;
    let row = assert_allowed(
        &t,
        &resp,
        "olivia",
        "remove_member",
        "membership:agency/bob",
        "R8.remove",
    )
    .await;
    assert!(!is_member(&t, "agency", "bob").await);
    assert_eq!(parse(&row["before_state"])["role"], "basic");
    assert!(row["after_state"].is_null(), "{row}");
    let req = parse(&row["envelope"]);
    assert_eq!(fact_membership(&req, "agency", "bob")["role"], "basic");
    // Other accounts untouched.
    assert_eq!(role_of(&t, "east", "bob").await.as_deref(), Some("admin"));
    // Signed out of the agency at once, not of east.
    assert_eq!(revoked_sessions(&t, "bob", "agency").await, 1);
    assert_eq!(revoked_sessions(&t, "bob", "east").await, 0);
    let (s, _) = t.get("bob", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = t.get("bob", "/v1/accounts/east/members").await;
    assert_eq!(s, StatusCode::OK);
    // The user is told.
    let mails = mails_to(&t, "bob@acme.test").await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    // The seat is free: an invitation to the full agency now fits.
    invite(&t, "olivia", "carl@new.test", "agency", "basic").await;
}

#[tokio::test]
async fn r08_remove_allowed_cancels_invitations_the_member_sent() {
    let t = common::acme().await;
    let resp = delete(&t, "olivia", "/v1/accounts/agency/members/ada").await;
    assert_allowed(
        &t,
        &resp,
        "olivia",
        "remove_member",
        "membership:agency/ada",
        "R8.remove",
    )
    .await;
    let rows = t
        .rows("SELECT id, status FROM invitations ORDER BY id")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"id": "inv-accepted", "status": "accepted"}),
            json!({"id": "inv-expired", "status": "revoked"}),
            json!({"id": "inv-pending", "status": "revoked"}),
        ]
    );
}

#[tokio::test]
async fn r08_remove_from_sub_account_says_inherited_access_remains() {
    let t = common::acme().await;
    let resp = delete(&t, "eve", "/v1/accounts/east/members/bob").await;
    assert_allowed(
        &t,
        &resp,
        "eve",
        "remove_member",
        "membership:east/bob",
        "R8.remove",
    )
    .await;
    assert!(!is_member(&t, "east", "bob").await);
    assert!(is_member(&t, "agency", "bob").await);
    let note = resp.1["result"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("Acme Agency"), "{}", resp.1);
}

#[tokio::test]
async fn r08_remove_denied_owns_resources() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "olivia", "/v1/accounts/agency/members/rita").await;
    let body = assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "remove_member",
        "membership:agency/rita",
        "R8.owned-resources",
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2 numbers") && message.contains("1 flow"),
        "the denial lists the resources: {message}"
    );
}

#[tokio::test]
async fn r08_remove_denied_admin_removes_owner() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "ada", "/v1/accounts/agency/members/oscar").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "remove_member",
        "membership:agency/oscar",
        "R8.owner-target",
    )
    .await;
}

#[tokio::test]
async fn r08_remove_denied_self() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "ada", "/v1/accounts/agency/members/ada").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "remove_member",
        "membership:agency/ada",
        "R8.not-self",
    )
    .await;
}

#[tokio::test]
async fn r08_remove_denied_basic_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "bea", "/v1/accounts/agency/members/sam").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "bea",
        "remove_member",
        "membership:agency/sam",
        "R8.remove",
    )
    .await;
}

#[tokio::test]
async fn r08_remove_denied_stranger_gets_404() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "stranger", "/v1/accounts/agency/members/bea").await;
    assert_hidden(
        &t,
        &b,
        &resp,
        "stranger",
        "remove_member",
        "membership:agency/bea",
        "R1.stranger-to-member",
    )
    .await;
}

// ---------------------------------------------------------------- R9

#[tokio::test]
async fn r09_delete_profile_allowed_own() {
    let t = common::acme().await;
    let resp = delete(&t, "bea", "/v1/me").await;
    let row = assert_allowed(
        &t,
        &resp,
        "bea",
        "delete_profile",
        "user:bea",
        "R9.delete-own-profile",
    )
    .await;
    assert_eq!(
        t.int("SELECT COUNT(*) FROM users WHERE id = 'bea'").await,
        0
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM memberships WHERE user_id = 'bea'")
            .await,
        0
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM sessions WHERE user_id = 'bea'")
            .await,
        0
    );
    assert_eq!(parse(&row["before_state"])["email"], "bea@acme.test");
    // History stays attributed to the former user.
    assert_eq!(
        t.int("SELECT COUNT(*) FROM audit WHERE actor = 'user:bea'")
            .await,
        1
    );
}

#[tokio::test]
async fn r09_delete_profile_denied_owns_resources() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "rita", "/v1/me").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "rita",
        "delete_profile",
        "user:rita",
        "R9.owns-resources",
    )
    .await;
}

// ---------------------------------------------------------------- R10

#[tokio::test]
async fn r10_request_allowed_owner_asks_about_another_owner() {
    let t = common::acme().await;
    // olivia owns the agency, so she is an owner of its sub-account east too.
    let resp = t
        .post(
            "olivia",
            "/v1/accounts/east/owner-removal-requests",
            json!({"target": "eve", "new_role": "admin"}),
        )
        .await;
    assert_eq!(resp.0, StatusCode::CREATED, "{}", resp.1);
    let row = assert_allowed(
        &t,
        &resp,
        "olivia",
        "request_owner_removal",
        "membership:east/eve",
        "R10.request",
    )
    .await;
    let id = resp.1["result"]["request"].as_str().unwrap();
    let r = &t
        .rows(&format!(
            "SELECT * FROM owner_removal_requests WHERE id = '{id}'"
        ))
        .await[0];
    assert_eq!(r["requested_by"], "olivia");
    assert_eq!(r["target_id"], "eve");
    assert_eq!(r["new_role"], "admin");
    assert_eq!(r["status"], "pending");
    assert_eq!(r["expires_at"], t.clock.now() + 14 * 24 * 3600);
    assert_eq!(parse(&row["after_state"])["id"], id);
    // Nothing changes before the target approves.
    assert_eq!(role_of(&t, "east", "eve").await.as_deref(), Some("owner"));
    assert_eq!(mails_to(&t, "eve@acme.test").await.len(), 1);
}

#[tokio::test]
async fn r10_approve_allowed_by_target_applies_and_mails_other_owners() {
    let t = common::acme().await;
    let resp = post_empty(
        &t,
        "oscar",
        "/v1/owner-removal-requests/req-pending/approve",
    )
    .await;
    assert_allowed(
        &t,
        &resp,
        "oscar",
        "approve_owner_removal",
        "owner_removal_request:req-pending",
        "R10.answer",
    )
    .await;
    assert_eq!(
        role_of(&t, "agency", "oscar").await.as_deref(),
        Some("admin")
    );
    assert_eq!(
        t.rows("SELECT status FROM owner_removal_requests WHERE id = 'req-pending'")
            .await[0]["status"],
        "approved"
    );
    assert_eq!(mails_to(&t, "olivia@acme.test").await.len(), 1);
    assert_eq!(mails_to(&t, "oscar@acme.test").await.len(), 0);
}

#[tokio::test]
async fn r10_approve_to_none_removes_the_owner() {
    let t = common::acme().await;
    let (s, body) = post_empty(
        &t,
        "olivia",
        "/v1/owner-removal-requests/req-pending/cancel",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = t
        .post(
            "olivia",
            "/v1/accounts/agency/owner-removal-requests",
            json!({"target": "oscar", "new_role": "none"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let id = body["result"]["request"].as_str().unwrap().to_owned();
    let resp = post_empty(
        &t,
        "oscar",
        &format!("/v1/owner-removal-requests/{id}/approve"),
    )
    .await;
    assert_allowed(
        &t,
        &resp,
        "oscar",
        "approve_owner_removal",
        &format!("owner_removal_request:{id}"),
        "R10.answer",
    )
    .await;
    assert!(!is_member(&t, "agency", "oscar").await);
}

#[tokio::test]
async fn r10_decline_allowed_by_target() {
    let t = common::acme().await;
    let resp = post_empty(
        &t,
        "oscar",
        "/v1/owner-removal-requests/req-pending/decline",
    )
    .await;
    assert_allowed(
        &t,
        &resp,
        "oscar",
        "decline_owner_removal",
        "owner_removal_request:req-pending",
        "R10.answer",
    )
    .await;
    assert_eq!(
        t.rows("SELECT status FROM owner_removal_requests WHERE id = 'req-pending'")
            .await[0]["status"],
        "declined"
    );
    assert_eq!(
        role_of(&t, "agency", "oscar").await.as_deref(),
        Some("owner")
    );
}

#[tokio::test]
async fn r10_cancel_allowed_by_requester() {
    let t = common::acme().await;
    let resp = post_empty(
        &t,
        "olivia",
        "/v1/owner-removal-requests/req-pending/cancel",
    )
    .await;
    assert_allowed(
        &t,
        &resp,
        "olivia",
        "cancel_owner_removal",
        "owner_removal_request:req-pending",
        "R10.cancel",
    )
    .await;
    assert_eq!(
        t.rows("SELECT status FROM owner_removal_requests WHERE id = 'req-pending'")
            .await[0]["status"],
        "cancelled"
    );
}

#[tokio::test]
async fn r10_request_denied_admin() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "ada",
            "/v1/accounts/agency/owner-removal-requests",
            json!({"target": "olivia", "new_role": "admin"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "request_owner_removal",
        "membership:agency/olivia",
        "R10.request",
    )
    .await;
}

#[tokio::test]
async fn r10_request_denied_already_pending() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "olivia",
            "/v1/accounts/agency/owner-removal-requests",
            json!({"target": "oscar", "new_role": "none"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "request_owner_removal",
        "membership:agency/oscar",
        "R10.already-pending",
    )
    .await;
}

#[tokio::test]
async fn r10_request_about_a_non_owner_is_inapplicable() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "olivia",
            "/v1/accounts/agency/owner-removal-requests",
            json!({"target": "ada", "new_role": "standard"}),
        )
        .await;
    assert_inapplicable(
        &t,
        &b,
        &resp,
        "olivia",
        "request_owner_removal",
        "membership:agency/ada",
        "R10.target-owner",
    )
    .await;
}

#[tokio::test]
async fn r10_approve_denied_not_the_target() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(
        &t,
        "olivia",
        "/v1/owner-removal-requests/req-pending/approve",
    )
    .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "approve_owner_removal",
        "owner_removal_request:req-pending",
        "R10.answer",
    )
    .await;
}

#[tokio::test]
async fn r10_cancel_denied_not_the_requester() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "oscar", "/v1/owner-removal-requests/req-pending/cancel").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "oscar",
        "cancel_owner_removal",
        "owner_removal_request:req-pending",
        "R10.cancel",
    )
    .await;
}

#[tokio::test]
async fn r10_approve_denied_after_expiry() {
    let t = common::acme().await;
    // req-pending was made 7 days before the fixture's now; it lasts 14 days.
    t.clock.advance(7 * 24 * 3600 - 1);
    let (s, body) = t
        .get("olivia", "/v1/accounts/agency/owner-removal-requests")
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["requests"][0]["status"], "pending", "{body}");
    t.clock.advance(1);
    let (_, body) = t
        .get("olivia", "/v1/accounts/agency/owner-removal-requests")
        .await;
    assert_eq!(body["requests"][0]["status"], "expired", "{body}");
    let b = before(&t).await;
    let resp = post_empty(
        &t,
        "oscar",
        "/v1/owner-removal-requests/req-pending/approve",
    )
    .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "oscar",
        "approve_owner_removal",
        "owner_removal_request:req-pending",
        "R10.expired",
    )
    .await;
}

// ---------------------------------------------------------------- R11

#[tokio::test]
async fn r11_step_down_allowed_when_another_owner_remains() {
    let t = common::acme().await;
    let resp = t
        .post(
            "olivia",
            "/v1/accounts/agency/step-down",
            json!({"role": "admin"}),
        )
        .await;
    let row = assert_allowed(
        &t,
        &resp,
        "olivia",
        "step_down",
        "membership:agency/olivia",
        "R11.step-down",
    )
    .await;
    assert_eq!(
        role_of(&t, "agency", "olivia").await.as_deref(),
        Some("admin")
    );
    assert_eq!(parse(&row["before_state"])["role"], "owner");
    assert_eq!(parse(&row["after_state"])["role"], "admin");
    assert_eq!(active_owners(&t, "agency").await, 1);
}

#[tokio::test]
async fn r11_step_down_denied_not_an_owner() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "ada",
            "/v1/accounts/agency/step-down",
            json!({"role": "standard"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "step_down",
        "membership:agency/ada",
        "R11.step-down",
    )
    .await;
}

#[tokio::test]
async fn r11_step_down_denied_to_owner() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "olivia",
            "/v1/accounts/agency/step-down",
            json!({"role": "owner"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "step_down",
        "membership:agency/olivia",
        "R11.lower-role",
    )
    .await;
}

// ---------------------------------------------------------------- R12

#[tokio::test]
async fn r12_step_down_denied_last_active_owner() {
    let t = common::acme().await;
    let (s, body) = t
        .post(
            "olivia",
            "/v1/accounts/agency/step-down",
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let b = before(&t).await;
    let resp = t
        .post(
            "oscar",
            "/v1/accounts/agency/step-down",
            json!({"role": "admin"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "oscar",
        "step_down",
        "membership:agency/oscar",
        "R12.last-owner-self",
    )
    .await;
    assert_eq!(active_owners(&t, "agency").await, 1);
}

#[tokio::test]
async fn r12_suspend_denied_last_active_owner_of_sub_account() {
    // An agency owner is an owner of east by inheritance, but only east's own
    // active owners count: eve is the last one.
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "olivia", "/v1/accounts/east/members/eve/suspend").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "suspend",
        "membership:east/eve",
        "R12.last-owner",
    )
    .await;
}

#[tokio::test]
async fn r12_suspend_allowed_while_another_owner_remains_then_suspended_owner_does_not_count() {
    let t = common::acme().await;
    let resp = post_empty(&t, "olivia", "/v1/accounts/agency/members/oscar/suspend").await;
    assert_allowed(
        &t,
        &resp,
        "olivia",
        "suspend",
        "membership:agency/oscar",
        "R7.suspend",
    )
    .await;
    // oscar is still an owner, but suspended: olivia is the last active one.
    assert_eq!(
        role_of(&t, "agency", "oscar").await.as_deref(),
        Some("owner")
    );
    let b = before(&t).await;
    let resp = post_empty(&t, "olivia", "/v1/accounts/agency/leave").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "leave",
        "membership:agency/olivia",
        "R12.last-owner-self",
    )
    .await;
    let b = before(&t).await;
    let resp = t
        .post(
            "olivia",
            "/v1/accounts/agency/step-down",
            json!({"role": "admin"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "step_down",
        "membership:agency/olivia",
        "R12.last-owner-self",
    )
    .await;
}

#[tokio::test]
async fn r12_change_role_of_last_owner_denied() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = put(
        &t,
        "olivia",
        "/v1/accounts/east/members/eve/role",
        json!({"role": "admin"}),
    )
    .await;
    let body = assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "change_role",
        "membership:east/eve",
        "R12.last-owner",
    )
    .await;
    // Demoting an owner is never a role change either (R5 → R10).
    assert!(policies(&body["error"]["reasons"]).contains(&"R5.owner-target".to_owned()));
}

#[tokio::test]
async fn r12_remove_last_owner_denied() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "olivia", "/v1/accounts/east/members/eve").await;
    let body = assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "remove_member",
        "membership:east/eve",
        "R12.last-owner",
    )
    .await;
    assert!(policies(&body["error"]["reasons"]).contains(&"R8.owner-target".to_owned()));
}

#[tokio::test]
async fn r12_leave_denied_last_owner() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "eve", "/v1/accounts/east/leave").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "eve",
        "leave",
        "membership:east/eve",
        "R12.last-owner-self",
    )
    .await;
}

#[tokio::test]
async fn r12_approve_owner_removal_denied_for_last_owner() {
    let t = common::acme().await;
    let (s, body) = t
        .post(
            "olivia",
            "/v1/accounts/east/owner-removal-requests",
            json!({"target": "eve", "new_role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let id = body["result"]["request"].as_str().unwrap().to_owned();
    let b = before(&t).await;
    let resp = post_empty(
        &t,
        "eve",
        &format!("/v1/owner-removal-requests/{id}/approve"),
    )
    .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "eve",
        "approve_owner_removal",
        &format!("owner_removal_request:{id}"),
        "R12.last-owner-approval",
    )
    .await;
    assert_eq!(role_of(&t, "east", "eve").await.as_deref(), Some("owner"));
}

#[tokio::test]
async fn r12_profile_deletion_denied_for_last_owner() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "nina", "/v1/me").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "nina",
        "delete_profile",
        "user:nina",
        "R12.last-owner-profile",
    )
    .await;
}

#[tokio::test]
async fn r12_racing_step_downs_leave_one_owner() {
    let t = common::acme().await;
    // Tokens first, so both requests only race on the change itself.
    t.token("olivia").await;
    t.token("oscar").await;
    let body = json!({"role": "admin"});
    let (a, b) = tokio::join!(
        t.post("olivia", "/v1/accounts/agency/step-down", body.clone()),
        t.post("oscar", "/v1/accounts/agency/step-down", body.clone()),
    );
    let ok = [&a, &b].iter().filter(|r| r.0 == StatusCode::OK).count();
    assert_eq!(ok, 1, "{a:?} {b:?}");
    let loser = if a.0 == StatusCode::OK { &b } else { &a };
    assert_eq!(loser.0, StatusCode::FORBIDDEN, "{loser:?}");
    assert!(policies(&loser.1["error"]["reasons"]).contains(&"R12.last-owner-self".to_owned()));
    assert_eq!(active_owners(&t, "agency").await, 1);
}

#[tokio::test]
async fn r12_racing_owners_suspending_each_other_leave_one_active_owner() {
    let t = common::acme().await;
    t.token("olivia").await;
    t.token("oscar").await;
    let (a, b) = tokio::join!(
        post_empty(&t, "olivia", "/v1/accounts/agency/members/oscar/suspend"),
        post_empty(&t, "oscar", "/v1/accounts/agency/members/olivia/suspend"),
    );
    let ok = [&a, &b].iter().filter(|r| r.0 == StatusCode::OK).count();
    assert_eq!(ok, 1, "{a:?} {b:?}");
    assert_eq!(active_owners(&t, "agency").await, 1);
}

#[tokio::test]
async fn r12_bulk_job_item_blocked_for_last_owner() {
    let t = common::acme().await;
    let (s, body) = t
        .post(
            "olivia",
            "/v1/accounts/agency/bulk-removals",
            json!({"user": "eve"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let job = body["result"]["job"].as_str().unwrap().to_owned();
    assert_eq!(t.host.run_jobs().await.unwrap(), 1);
    let (s, report) = t.get("olivia", &format!("/v1/jobs/{job}")).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "done");
    let item = &report["items"][0];
    assert_eq!(item["account"], "east");
    assert_eq!(item["status"], "blocked");
    assert!(policies(&item["reasons"]).contains(&"R12.last-owner".to_owned()));
    assert!(is_member(&t, "east", "eve").await);
    let row = t.last_audit().await;
    assert_eq!(row["decision"], "denied");
    assert_eq!(row["source"], "job");
    assert_eq!(row["job_id"], job.as_str());
    assert_eq!(row["id"], item["audit_id"]);
}

// ---------------------------------------------------------------- R13

async fn start_bulk(t: &T, by: &str, user: &str) -> String {
    let resp = t
        .post(
            by,
            "/v1/accounts/agency/bulk-removals",
            json!({"user": user}),
        )
        .await;
    assert_eq!(resp.0, StatusCode::ACCEPTED, "{}", resp.1);
    assert_allowed(
        t,
        &resp,
        by,
        "bulk_remove",
        "account:agency",
        "R13.bulk-remove",
    )
    .await;
    resp.1["result"]["job"].as_str().unwrap().to_owned()
}

fn item<'a>(report: &'a Value, account: &str) -> &'a Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["account"] == account)
        .unwrap_or_else(|| panic!("no item for {account}: {report}"))
}

#[tokio::test]
async fn r13_bulk_remove_allowed_removes_from_agency_and_sub_accounts() {
    let t = common::acme().await;
    let job = start_bulk(&t, "ada", "bob").await;
    // Nothing is removed at enqueue: each account is decided when it runs.
    assert!(is_member(&t, "agency", "bob").await);
    let (s, report) = t.get("ada", &format!("/v1/jobs/{job}")).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "running");
    assert_eq!(report["progress"], json!({"done": 0, "total": 2}));
    assert_eq!(t.host.run_jobs().await.unwrap(), 2);
    let (s, report) = t.get("ada", &format!("/v1/jobs/{job}")).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "done");
    assert_eq!(report["progress"], json!({"done": 2, "total": 2}));
    assert_eq!(report["user"], "bob");
    assert_eq!(report["started_by"], "ada");
    for account in ["agency", "east"] {
        assert_eq!(item(&report, account)["status"], "removed", "{report}");
        assert!(!is_member(&t, account, "bob").await);
    }
    // Each item is a remove_member decided and audited at execution time.
    let rows = t
        .rows(&format!(
            "SELECT * FROM audit WHERE job_id = '{job}' ORDER BY id"
        ))
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r["action"], "remove_member");
        assert_eq!(r["decision"], "allowed");
        assert_eq!(r["source"], "job");
        assert_eq!(r["actor"], "user:ada");
        assert!(policies(&parse(&r["reasons"])).contains(&"R8.remove".to_owned()));
        assert_request_has_facts(&t, r, "remove_member");
    }
    assert_eq!(
        item(&report, "east")["audit_id"],
        rows.iter().find(|r| r["account_id"] == "east").unwrap()["id"]
    );
}

#[tokio::test]
async fn r13_bulk_remove_reports_blocked_accounts_and_proceeds_with_the_rest() {
    let t = common::acme().await;
    exec(
        &t,
        "INSERT INTO resources (id, account_id, kind, name, owner_id) VALUES ('n9', 'east', 'number', '+1 555 0199', 'bob')",
    )
    .await;
    let job = start_bulk(&t, "olivia", "bob").await;
    assert_eq!(t.host.run_jobs().await.unwrap(), 2);
    let (s, report) = t.get("olivia", &format!("/v1/jobs/{job}")).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "done");
    assert_eq!(item(&report, "agency")["status"], "removed");
    let east = item(&report, "east");
    assert_eq!(east["status"], "blocked", "{report}");
    assert!(policies(&east["reasons"]).contains(&"R8.owned-resources".to_owned()));
    assert!(!is_member(&t, "agency", "bob").await);
    assert!(is_member(&t, "east", "bob").await);
}

#[tokio::test]
async fn r13_bulk_remove_reports_membership_already_removed_by_someone_else() {
    let t = common::acme().await;
    let job = start_bulk(&t, "olivia", "bob").await;
    let (s, body) = delete(&t, "eve", "/v1/accounts/east/members/bob").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    t.host.run_jobs().await.unwrap();
    let (_, report) = t.get("olivia", &format!("/v1/jobs/{job}")).await;
    assert_eq!(item(&report, "agency")["status"], "removed");
    assert_eq!(
        item(&report, "east")["status"],
        "already_removed",
        "{report}"
    );
}

#[tokio::test]
async fn r13_bulk_remove_denied_standard_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "sam",
            "/v1/accounts/agency/bulk-removals",
            json!({"user": "bob"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "sam",
        "bulk_remove",
        "account:agency",
        "R13.bulk-remove",
    )
    .await;
}

#[tokio::test]
async fn r13_bulk_remove_denied_account_without_sub_accounts() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "sola",
            "/v1/accounts/solo/bulk-removals",
            json!({"user": "sola"}),
        )
        .await;
    let body = assert_denied(
        &t,
        &b,
        &resp,
        "sola",
        "bulk_remove",
        "account:solo",
        "R13.agency-only",
    )
    .await;
    assert!(policies(&body["error"]["reasons"]).contains(&"R13.not-self".to_owned()));
}

/// A bulk removal of a user id that names nobody: a 404 (the module has
/// no such entity to decide on; it was an internal error, HTTP 500), told
/// as "no such user" only to a caller the module lets see the subtree's
/// members (`view_bulk_candidates`). Anyone else gets, word for word, what
/// a stranger gets for the account, so nothing is learnt about who is a
/// member; nothing starts and nothing is audited.
#[tokio::test]
async fn r13_bulk_remove_of_a_user_that_does_not_exist_is_a_404() {
    let t = common::acme().await;
    let state = t.state().await;
    let audited = || t.int("SELECT COUNT(*) FROM audit");
    let unknown = json!({"user": "nobody-here"});
    let (s, body) = t
        .post(
            "olivia",
            "/v1/accounts/agency/bulk-removals",
            unknown.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no user `nobody-here`"),
        "{body}"
    );
    // A stranger to the agency asking about a real member: hidden.
    let stranger = t
        .post(
            "sola",
            "/v1/accounts/agency/bulk-removals",
            json!({"user": "ada"}),
        )
        .await;
    assert_eq!(stranger.0, StatusCode::NOT_FOUND, "{}", stranger.1);
    let rows = audited().await;
    for who in ["sola", "bea"] {
        let resp = t
            .post(who, "/v1/accounts/agency/bulk-removals", unknown.clone())
            .await;
        assert_eq!(resp, stranger, "{who}");
    }
    assert_eq!(
        audited().await,
        rows,
        "an id that names nobody is not decided"
    );
    assert_eq!(t.int("SELECT COUNT(*) FROM jobs").await, 0);
    assert_eq!(t.state().await, state);
}

#[tokio::test]
async fn r13_job_report_denied_to_basic_member_and_hidden_from_strangers() {
    let t = common::acme().await;
    let job = start_bulk(&t, "olivia", "bob").await;
    let (s, body) = t.get("bea", &format!("/v1/jobs/{job}")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(policies(&body["error"]["reasons"]), ["R13.view-jobs"]);
    assert!(
        body["error"]["reasons"]
            .to_string()
            .contains("follow its bulk removals")
    );
    let (s, body) = t.get("ada", &format!("/v1/jobs/{job}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    for who in ["stranger", "nina"] {
        let (s, body) = t.get(who, &format!("/v1/jobs/{job}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["message"], format!("no job `{job}`"));
    }
}

#[tokio::test]
async fn r13_bulk_candidates_only_for_those_who_may_start_a_removal() {
    let t = common::acme().await;
    let (s, body) = t.get("ada", "/v1/accounts/agency/bulk-removals").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body["candidates"].as_array().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    let (s, body) = t.get("bea", "/v1/accounts/agency/bulk-removals").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(policies(&body["error"]["reasons"]), ["R13.view-candidates"]);
    assert!(body.get("candidates").is_none(), "{body}");
    let (s, _) = t.get("nina", "/v1/accounts/agency/bulk-removals").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- R14

#[tokio::test]
async fn r14_reassign_allowed_then_removal_unblocked() {
    let t = common::acme().await;
    let resp = t
        .post(
            "ada",
            "/v1/accounts/agency/members/rita/reassign",
            json!({"to": "sam"}),
        )
        .await;
    assert_allowed(
        &t,
        &resp,
        "ada",
        "reassign_resources",
        "membership:agency/rita",
        "R14.reassign",
    )
    .await;
    assert_eq!(resp.1["result"]["moved"], json!(["f1", "n1", "n2"]));
    assert_eq!(
        t.int("SELECT COUNT(*) FROM resources WHERE owner_id = 'sam'")
            .await,
        3
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM resources WHERE owner_id = 'rita'")
            .await,
        0
    );
    let (s, body) = delete(&t, "ada", "/v1/accounts/agency/members/rita").await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn r14_reassign_denied_to_suspended_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "ada",
            "/v1/accounts/agency/members/rita/reassign",
            json!({"to": "sue"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "reassign_resources",
        "membership:agency/rita",
        "R14.active-recipient",
    )
    .await;
}

#[tokio::test]
async fn r14_reassign_denied_standard_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "sam",
            "/v1/accounts/agency/members/rita/reassign",
            json!({"to": "sam"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "sam",
        "reassign_resources",
        "membership:agency/rita",
        "R14.reassign",
    )
    .await;
}

#[tokio::test]
async fn r14_reassign_denied_nothing_owned() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post(
            "ada",
            "/v1/accounts/agency/members/bea/reassign",
            json!({"to": "sam"}),
        )
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "reassign_resources",
        "membership:agency/bea",
        "R14.nothing-owned",
    )
    .await;
}

#[tokio::test]
async fn r14_reassign_refused_to_member_of_another_account() {
    let t = common::acme().await;
    let b = before(&t).await;
    let (s, body) = t
        .post(
            "ada",
            "/v1/accounts/agency/members/rita/reassign",
            json!({"to": "eve"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(t.state().await == b.state);
}

// ---------------------------------------------------------------- R15

#[tokio::test]
async fn r15_update_own_profile_and_notifications_allowed() {
    let t = common::acme().await;
    let resp = t
        .call(
            Some("bea"),
            Method::PATCH,
            "/v1/me",
            Some(json!({"name": "Bea Basic-Smith", "country": "GB"})),
        )
        .await;
    let row = assert_allowed(
        &t,
        &resp,
        "bea",
        "update_profile",
        "user:bea",
        "R15.own-profile",
    )
    .await;
    assert_eq!(parse(&row["after_state"])["name"], "Bea Basic-Smith");
    let u = &t
        .rows("SELECT name, country, email FROM users WHERE id = 'bea'")
        .await[0];
    assert_eq!(
        *u,
        json!({"name": "Bea Basic-Smith", "country": "GB", "email": "bea@acme.test"})
    );
    let resp = put(
        &t,
        "bea",
        "/v1/me/notifications",
        json!({"email": false, "sms": true}),
    )
    .await;
    assert_allowed(
        &t,
        &resp,
        "bea",
        "update_notifications",
        "user:bea",
        "R15.own-profile",
    )
    .await;
    let (s, me) = t.get("bea", "/v1/me").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["notifications"], json!({"email": false, "sms": true}));
}

#[tokio::test]
async fn r15_sign_out_own_device_allowed() {
    let t = common::acme().await;
    let (s, body) = t.get("olivia", "/v1/me/devices").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"dev-olivia"), "{body}");
    assert!(!ids.contains(&"dev-ada"), "{body}");
    let resp = delete(&t, "olivia", "/v1/me/devices/dev-olivia").await;
    assert_allowed(
        &t,
        &resp,
        "olivia",
        "sign_out_device",
        "device:dev-olivia",
        "R15.own-device",
    )
    .await;
    assert_eq!(
        t.int("SELECT COUNT(*) FROM sessions WHERE id = 'dev-olivia'")
            .await,
        0
    );
}

#[tokio::test]
async fn r15_sign_out_other_users_device_denied() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "olivia", "/v1/me/devices/dev-ada").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "sign_out_device",
        "device:dev-ada",
        "R15.own-device",
    )
    .await;
    // Sessions are not in `state()`: check the device directly.
    assert_eq!(
        t.int("SELECT COUNT(*) FROM sessions WHERE id = 'dev-ada'")
            .await,
        1
    );
}

// ---------------------------------------------------------------- R16

#[tokio::test]
async fn r16_leave_allowed_member() {
    let t = common::acme().await;
    t.token("bea").await;
    let resp = post_empty(&t, "bea", "/v1/accounts/agency/leave").await;
    let row = assert_allowed(
        &t,
        &resp,
        "bea",
        "leave",
        "membership:agency/bea",
        "R16.leave",
    )
    .await;
    assert!(!is_member(&t, "agency", "bea").await);
    assert!(row["after_state"].is_null());
    assert_eq!(revoked_sessions(&t, "bea", "agency").await, 1);
}

#[tokio::test]
async fn r16_leave_allowed_owner_when_another_owner_remains() {
    let t = common::acme().await;
    let resp = post_empty(&t, "oscar", "/v1/accounts/agency/leave").await;
    assert_allowed(
        &t,
        &resp,
        "oscar",
        "leave",
        "membership:agency/oscar",
        "R16.leave",
    )
    .await;
    assert!(!is_member(&t, "agency", "oscar").await);
    assert_eq!(active_owners(&t, "agency").await, 1);
}

#[tokio::test]
async fn r16_leave_denied_last_owner() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "nina", "/v1/accounts/east-1/leave").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "nina",
        "leave",
        "membership:east-1/nina",
        "R12.last-owner-self",
    )
    .await;
}

// ---------------------------------------------------------------- R17

#[tokio::test]
async fn r17_remove_idp_managed_member_denied_with_idp_reason() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = delete(&t, "olivia", "/v1/accounts/agency/members/ivan").await;
    let body = assert_denied(
        &t,
        &b,
        &resp,
        "olivia",
        "remove_member",
        "membership:agency/ivan",
        "R17.idp-managed",
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("identity provider"), "{message}");
}

#[tokio::test]
async fn r17_suspend_idp_managed_member_denied() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = post_empty(&t, "ada", "/v1/accounts/agency/members/ivan/suspend").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "suspend",
        "membership:agency/ivan",
        "R17.idp-managed",
    )
    .await;
}

async fn scim(t: &T, token: &str, method: Method, path: &str, body: Option<Value>) -> StatusCode {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    let req = match body {
        Some(b) => req
            .header("content-type", "application/scim+json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    t.send(req).await.0
}

#[tokio::test]
async fn r17_identity_provider_deactivates_its_member_allowed() {
    let t = common::acme().await;
    let token = gatehouse_host::scim::create_token(&t.host, "agency")
        .await
        .unwrap();
    let s = scim(
        &t,
        &token,
        Method::PATCH,
        "/scim/v2/Users/ivan",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}]
        })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        status_of(&t, "agency", "ivan").await.as_deref(),
        Some("suspended")
    );
    let row = t.last_audit().await;
    assert_eq!(row["actor"], "idp:agency");
    assert_eq!(row["action"], "scim_deactivate");
    assert_eq!(row["target"], "membership:agency/ivan");
    assert_eq!(row["decision"], "allowed");
    assert_eq!(row["source"], "scim");
    assert!(policies(&parse(&row["reasons"])).contains(&"R17.scim-members".to_owned()));
    assert_request_has_facts(&t, &row, "scim_deactivate");
}

#[tokio::test]
async fn r17_identity_provider_denied_on_member_it_did_not_provision() {
    let t = common::acme().await;
    let token = gatehouse_host::scim::create_token(&t.host, "agency")
        .await
        .unwrap();
    let b = before(&t).await;
    let s = scim(&t, &token, Method::DELETE, "/scim/v2/Users/bea", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_denial_recorded(
        &t,
        &b,
        "idp:agency",
        "scim_delete",
        "membership:agency/bea",
        "R17.scim-members",
    )
    .await;
}

// ---------------------------------------------------------------- R18

#[tokio::test]
async fn r18_audit_log_allowed_for_admin_with_reasons_and_sub_accounts() {
    let t = common::acme().await;
    let (s, _) = delete(&t, "olivia", "/v1/accounts/agency/members/bea").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = delete(&t, "olivia", "/v1/accounts/agency/members/rita").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = put(
        &t,
        "eve",
        "/v1/accounts/east/members/bob/nickname",
        json!({"nickname": "B"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let b = before(&t).await;
    let (s, log) = t.get("ada", "/v1/accounts/agency/audit").await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let events = log["events"].as_array().unwrap();
    // Newest first; the agency's log includes its sub-account east.
    assert_eq!(events.len(), 3, "{log}");
    assert_eq!(events[0]["account"], "east");
    assert_eq!(events[0]["action"], "edit_nickname");
    let denied = &events[1];
    assert_eq!(denied["decision"], "denied");
    assert_eq!(denied["actor"], "user:olivia");
    assert_eq!(denied["target"], "membership:agency/rita");
    assert_eq!(denied["source"], "api");
    assert!(policies(&denied["reasons"]).contains(&"R8.owned-resources".to_owned()));
    assert!(
        denied["policy_hash"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );
    let allowed = &events[2];
    assert_eq!(allowed["decision"], "allowed");
    assert_eq!(allowed["before"]["user_id"], "bea");
    assert!(allowed["after"].is_null());
    assert!(allowed["at"].as_i64().is_some());
    // Filters.
    let (s, log) = t
        .get("ada", "/v1/accounts/agency/audit?decision=denied")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(log["events"].as_array().unwrap().len(), 1);
    // An admin of the sub-account only reads the sub-account's log.
    let (s, log) = t.get("bob", "/v1/accounts/east/audit").await;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log["events"].as_array().unwrap().len(), 1);
    assert!(t.state().await == b.state);
}

#[tokio::test]
async fn r18_audit_log_denied_basic_member() {
    let t = common::acme().await;
    let b = before(&t).await;
    let audits = audit_count(&t).await;
    let resp = t.get("bea", "/v1/accounts/agency/audit").await;
    assert_read_denied(&t, &b, &resp, "R18.read-audit").await;
    // bob administers east, not the agency above it.
    let resp = t.get("bob", "/v1/accounts/agency/audit").await;
    assert_read_denied(&t, &b, &resp, "R18.read-audit").await;
    // Reading is not a change: nothing is recorded.
    assert_eq!(audit_count(&t).await, audits);
}

#[tokio::test]
async fn r18_audit_log_hidden_from_strangers() {
    let t = common::acme().await;
    let (s, body) = t.get("stranger", "/v1/accounts/agency/audit").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    let (s, body) = t.get("eve", "/v1/accounts/agency/audit").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
}

// ---------------------------------------------------------------- no existence leaks

/// A stranger gets the same 404 for an existing account (whether or not the
/// member asked about exists) as for an account that does not exist.
#[tokio::test]
async fn strangers_get_the_same_404_for_existing_and_missing_accounts() {
    let t = common::acme().await;
    let b = before(&t).await;
    let hidden = |body: &Value, account: &str| {
        body["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&format!("`{account}`"), "`X`")
    };
    let mut seen = Vec::new();
    for (method, path, body) in [
        (Method::DELETE, "/v1/accounts/{a}/members/bea", None),
        (Method::DELETE, "/v1/accounts/{a}/members/nobody", None),
        (Method::POST, "/v1/accounts/{a}/members/bea/suspend", None),
        (Method::POST, "/v1/accounts/{a}/members/zed/suspend", None),
        (Method::POST, "/v1/accounts/{a}/leave", None),
        (
            Method::POST,
            "/v1/accounts/{a}/members/rita/reassign",
            Some(json!({"to": "zed"})),
        ),
        (
            Method::PUT,
            "/v1/accounts/{a}/members/sam/role",
            Some(json!({"role": "basic"})),
        ),
        (
            Method::POST,
            "/v1/accounts/{a}/seats/buy",
            Some(json!({"quantity": 1})),
        ),
        (Method::GET, "/v1/accounts/{a}/members", None),
        (Method::GET, "/v1/accounts/{a}/audit", None),
    ] {
        for account in ["agency", "no-such-account"] {
            let (s, resp) = t
                .call(
                    Some("stranger"),
                    method.clone(),
                    &path.replace("{a}", account),
                    body.clone(),
                )
                .await;
            assert_eq!(
                s,
                StatusCode::NOT_FOUND,
                "{method} {path} on {account}: {resp}"
            );
            assert_eq!(resp["error"]["code"], "not_found");
            seen.push((format!("{method} {path}"), hidden(&resp, account)));
        }
    }
    let first = &seen[0].1;
    for (what, message) in &seen {
        assert_eq!(message, first, "{what} answers differently");
    }
    assert!(t.state().await == b.state);
}
