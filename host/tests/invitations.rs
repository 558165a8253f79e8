//! R3 (with R2 and R4 where they meet it) through the HTTP API, on the
//! injected clock: the token is shown once and stored hashed, accepting needs
//! the signed-in email, invitations expire 14 days after they were sent,
//! resend rotates the token and resets the expiry, revoke kills the link,
//! a used link answers "already used", one pending invitation per
//! (account, email).

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::T;
use common::verdict::*;
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;
const FOURTEEN_DAYS: i64 = 14 * DAY;

// ---------------------------------------------------------------- helpers

/// A refusal the store answers (no such link, already used): nothing changes.
async fn assert_refused(t: &T, b: &Before, resp: &(StatusCode, Value), status: StatusCode) {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert!(t.state().await == b.state, "a refused change changed state");
}

async fn accept(t: &T, user: &str, token: &str) -> (StatusCode, Value) {
    t.post(user, "/v1/invitations/accept", json!({"token": token}))
        .await
}

async fn invitation(t: &T, id: &str) -> Value {
    t.rows(&format!("SELECT * FROM invitations WHERE id = '{id}'"))
        .await
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

/// The invitation as the account's list shows it.
async fn listed(t: &T, viewer: &str, account: &str, id: &str) -> Value {
    let (s, body) = t
        .get(viewer, &format!("/v1/accounts/{account}/invitations"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {body}"))
}

async fn membership(t: &T, account: &str, user: &str) -> Vec<Value> {
    t.rows(&format!(
        "SELECT role, status FROM memberships WHERE account_id = '{account}' AND user_id = '{user}'"
    ))
    .await
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn invite_returns_the_token_once_and_stores_only_its_hash() {
    let t = common::acme().await;
    let (s, body) = try_invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let id = body["result"]["invitation"].as_str().unwrap().to_owned();
    let token = body["result"]["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32, "{token}");
    assert_eq!(body["result"]["expires_at"], t.clock.now() + FOURTEEN_DAYS);
    assert_audited(&t, "olivia", "invite", "account:east", "R2.invite").await;

    // Stored hashed: the token appears in no column of the invitations table.
    let inv = invitation(&t, &id).await;
    assert_eq!(
        inv["token_hash"],
        gatehouse_host::token::hash(&token).as_str()
    );
    let table = t.rows("SELECT * FROM invitations").await;
    assert!(
        !json!(table).to_string().contains(&token),
        "the token is stored in clear"
    );
    assert_eq!(inv["sent_at"], t.clock.now());
    assert_eq!(inv["expires_at"], t.clock.now() + FOURTEEN_DAYS);
    assert_eq!(inv["status"], "pending");
    // Not in the audit log either (its request and after-state included).
    let audit = t.rows("SELECT * FROM audit").await;
    assert!(!json!(audit).to_string().contains(&token));

    // Never returned by the list: neither the token nor its hash.
    let (s, list) = t.get("olivia", "/v1/accounts/east/invitations").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let text = list.to_string();
    assert!(!text.contains(&token), "{text}");
    assert!(
        !text.contains(inv["token_hash"].as_str().unwrap()),
        "{text}"
    );
    let shown = listed(&t, "olivia", "east", &id).await;
    assert_eq!(shown["status"], "pending");
    assert_eq!(shown["email"], "dan@new.test");
    assert_eq!(shown["actions"]["revoke_invitation"]["allowed"], true);

    // The only copy goes to the invitee.
    let mails = t
        .rows("SELECT body FROM outbox WHERE to_email = 'dan@new.test'")
        .await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0]["body"].as_str().unwrap().contains(&token));
}

#[tokio::test]
async fn accept_with_matching_signed_in_email_creates_the_membership() {
    let t = common::acme().await;
    let (id, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "Dan@New.test").await;
    let (s, body) = accept(&t, "dan", &token).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["result"],
        json!({"account": "east", "role": "standard"})
    );
    let row = assert_audited(
        &t,
        "dan",
        "accept_invitation",
        &format!("invitation:{id}"),
        "R3.accept",
    )
    .await;
    assert_eq!(body["audit_id"], row["id"]);
    assert_eq!(
        membership(&t, "east", "dan").await,
        vec![json!({"role": "standard", "status": "active"})]
    );
    let inv = invitation(&t, &id).await;
    assert_eq!(inv["status"], "accepted");
    assert_eq!(inv["accepted_by"], "dan");
    assert_eq!(
        listed(&t, "olivia", "east", &id).await["status"],
        "accepted"
    );
}

#[tokio::test]
async fn accept_by_an_existing_user_invited_by_their_email() {
    let t = common::acme().await;
    let (id, token) = invite(&t, "eve", "SOLA@solo.test", "east", "basic").await;
    let (s, body) = accept(&t, "sola", &token).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_audited(
        &t,
        "sola",
        "accept_invitation",
        &format!("invitation:{id}"),
        "R3.accept",
    )
    .await;
    assert_eq!(
        membership(&t, "east", "sola").await,
        vec![json!({"role": "basic", "status": "active"})]
    );
    // Her own account is untouched.
    assert_eq!(
        membership(&t, "solo", "sola").await,
        vec![json!({"role": "owner", "status": "active"})]
    );
}

#[tokio::test]
async fn accept_by_a_user_whose_email_differs_is_denied() {
    let t = common::acme().await;
    let (id, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    let b = before(&t).await;
    let resp = accept(&t, "bea", &token).await;
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
    // The rightful invitee still can.
    let (s, body) = accept(&t, "dan", &token).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn invitation_is_still_valid_one_second_before_14_days() {
    let t = common::acme().await;
    let (id, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    t.clock.advance(FOURTEEN_DAYS - 1);
    assert_eq!(listed(&t, "olivia", "east", &id).await["status"], "pending");
    let (s, body) = accept(&t, "dan", &token).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn invitation_expires_14_days_after_it_was_sent() {
    let t = common::acme().await;
    let (id, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    t.clock.advance(FOURTEEN_DAYS + 1);
    let shown = listed(&t, "olivia", "east", &id).await;
    assert_eq!(shown["status"], "expired", "{shown}");
    // Still visible, and it can be re-sent.
    assert_eq!(
        shown["actions"]["resend_invitation"]["allowed"], true,
        "{shown}"
    );
    let b = before(&t).await;
    let resp = accept(&t, "dan", &token).await;
    assert_denied(
        &t,
        &b,
        &resp,
        "dan",
        "accept_invitation",
        &format!("invitation:{id}"),
        "R3.accept-expired",
    )
    .await;
    assert!(membership(&t, "east", "dan").await.is_empty());
}

#[tokio::test]
async fn resend_rotates_the_token_and_resets_the_expiry() {
    let t = common::acme().await;
    let (id, old) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    let old_hash = invitation(&t, &id).await["token_hash"].clone();
    new_user(&t, "dan", "dan@new.test").await;
    t.clock.advance(10 * DAY);
    let (s, body) = t
        .post("olivia", &format!("/v1/invitations/{id}/resend"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let new = body["result"]["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(body["result"]["expires_at"], t.clock.now() + FOURTEEN_DAYS);
    let row = assert_audited(
        &t,
        "olivia",
        "resend_invitation",
        &format!("invitation:{id}"),
        "R3.manage",
    )
    .await;
    assert_eq!(parse(&row["before_state"])["sent_at"], common::NOW);
    assert_eq!(parse(&row["after_state"])["sent_at"], t.clock.now());
    let inv = invitation(&t, &id).await;
    assert_eq!(inv["sent_at"], t.clock.now());
    assert_eq!(inv["expires_at"], t.clock.now() + FOURTEEN_DAYS);
    assert_ne!(inv["token_hash"], old_hash);
    assert_eq!(
        inv["token_hash"],
        gatehouse_host::token::hash(&new).as_str()
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM outbox WHERE to_email = 'dan@new.test'")
            .await,
        2
    );

    // The old link is dead.
    let b = before(&t).await;
    let resp = accept(&t, "dan", &old).await;
    assert_refused(&t, &b, &resp, StatusCode::NOT_FOUND).await;

    // Past the first expiry (day 14), within the new one (day 24): works.
    t.clock.advance(10 * DAY);
    let (s, body) = accept(&t, "dan", &new).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(membership(&t, "east", "dan").await.len(), 1);
}

#[tokio::test]
async fn resend_of_an_expired_invitation_makes_it_pending_again() {
    let t = common::acme().await;
    let (id, _) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    t.clock.advance(20 * DAY);
    assert_eq!(listed(&t, "olivia", "east", &id).await["status"], "expired");
    let (s, body) = t
        .post("eve", &format!("/v1/invitations/{id}/resend"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let token = body["result"]["token"].as_str().unwrap().to_owned();
    assert_eq!(listed(&t, "olivia", "east", &id).await["status"], "pending");
    let (s, body) = accept(&t, "dan", &token).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn resend_of_an_expired_invitation_needs_a_free_seat() {
    let t = common::acme().await;
    // The agency's 10 seats: 9 members and inv-pending. inv-expired freed its seat.
    assert_eq!(
        listed(&t, "ada", "agency", "inv-expired").await["status"],
        "expired"
    );
    let b = before(&t).await;
    let resp = t
        .post("ada", "/v1/invitations/inv-expired/resend", json!({}))
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "ada",
        "resend_invitation",
        "invitation:inv-expired",
        "R4.resend-seat-limit",
    )
    .await;
    let (s, body) = t
        .post(
            "olivia",
            "/v1/accounts/agency/seats/buy",
            json!({"quantity": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = t
        .post("ada", "/v1/invitations/inv-expired/resend", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        listed(&t, "ada", "agency", "inv-expired").await["status"],
        "pending"
    );
}

#[tokio::test]
async fn revoke_kills_the_link() {
    let t = common::acme().await;
    let (id, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    let (s, body) = t
        .post("eve", &format!("/v1/invitations/{id}/revoke"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let row = assert_audited(
        &t,
        "eve",
        "revoke_invitation",
        &format!("invitation:{id}"),
        "R3.manage",
    )
    .await;
    assert_eq!(parse(&row["after_state"])["status"], "revoked");
    assert_eq!(invitation(&t, &id).await["status"], "revoked");
    assert_eq!(listed(&t, "eve", "east", &id).await["status"], "revoked");
    // The dead link is R3's to refuse (409, audited), with what to do.
    let target = format!("invitation:{id}");
    let b = before(&t).await;
    let resp = accept(&t, "dan", &token).await;
    let body = assert_inapplicable(
        &t,
        &b,
        &resp,
        "dan",
        "accept_invitation",
        &target,
        "R3.accept-revoked",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked: ask an owner or admin of Acme East for a new one"),
        "{body}"
    );
    assert!(membership(&t, "east", "dan").await.is_empty());
    // A revoked invitation is not re-sent nor revoked again: send a new one.
    for verb in ["resend", "revoke"] {
        let b = before(&t).await;
        let resp = t
            .post("eve", &format!("/v1/invitations/{id}/{verb}"), json!({}))
            .await;
        let body = assert_inapplicable(
            &t,
            &b,
            &resp,
            "eve",
            &format!("{verb}_invitation"),
            &target,
            "R3.revoked",
        )
        .await;
        assert_eq!(
            body["error"]["message"], "this invitation was revoked: send a new one",
            "{body}"
        );
    }
    // It no longer holds the (account, email) pair.
    invite(&t, "eve", "dan@new.test", "east", "standard").await;
}

#[tokio::test]
async fn revoking_an_accepted_invitation_is_a_409_decided_by_r3() {
    let t = common::acme().await;
    for verb in ["revoke", "resend"] {
        let b = before(&t).await;
        let resp = t
            .post(
                "olivia",
                &format!("/v1/invitations/inv-accepted/{verb}"),
                json!({}),
            )
            .await;
        let body = assert_inapplicable(
            &t,
            &b,
            &resp,
            "olivia",
            &format!("{verb}_invitation"),
            "invitation:inv-accepted",
            "R3.accepted",
        )
        .await;
        assert_eq!(
            body["error"]["message"],
            "this invitation was already accepted: manage the member instead",
            "{body}"
        );
    }
    // Also for one accepted through the API.
    let (id, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    assert_eq!(accept(&t, "dan", &token).await.0, StatusCode::OK);
    let b = before(&t).await;
    let resp = t
        .post("olivia", &format!("/v1/invitations/{id}/revoke"), json!({}))
        .await;
    assert_inapplicable(
        &t,
        &b,
        &resp,
        "olivia",
        "revoke_invitation",
        &format!("invitation:{id}"),
        "R3.accepted",
    )
    .await;
    assert_eq!(invitation(&t, &id).await["status"], "accepted");
    // Someone who may not manage invitations learns only that.
    let b = before(&t).await;
    let resp = t
        .post("bea", &format!("/v1/invitations/{id}/revoke"), json!({}))
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "bea",
        "revoke_invitation",
        &format!("invitation:{id}"),
        "R3.manage",
    )
    .await;
}

#[tokio::test]
async fn accepting_twice_answers_already_used() {
    let t = common::acme().await;
    let (_, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    assert_eq!(accept(&t, "dan", &token).await.0, StatusCode::OK);
    let b = before(&t).await;
    let resp = accept(&t, "dan", &token).await;
    assert_refused(&t, &b, &resp, StatusCode::CONFLICT).await;
    assert_eq!(resp.1["error"]["code"], "conflict");
    assert!(
        resp.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{}",
        resp.1
    );
    assert_eq!(membership(&t, "east", "dan").await.len(), 1);
    // A used link is data integrity, not a decision: nothing is audited.
    assert_eq!(
        t.int("SELECT COALESCE(MAX(id), 0) FROM audit").await,
        b.audit
    );
}

#[tokio::test]
async fn the_list_answers_every_invitation_with_the_modules_reasons() {
    let t = common::acme().await;
    // A revoked one besides the fixture's pending, expired and accepted ones.
    let (revoked, _) = invite(&t, "olivia", "gone@new.test", "east", "basic").await;
    assert_eq!(
        t.post(
            "olivia",
            &format!("/v1/invitations/{revoked}/revoke"),
            json!({})
        )
        .await
        .0,
        StatusCode::OK
    );
    let cell = |v: &Value, action: &str| v["actions"][action].clone();
    let ids = |v: &Value| policies(&v["reasons"]);
    let pending = listed(&t, "olivia", "agency", "inv-pending").await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(
        cell(&pending, "resend_invitation")["allowed"],
        true,
        "{pending}"
    );
    assert_eq!(
        cell(&pending, "revoke_invitation")["allowed"],
        true,
        "{pending}"
    );
    // Expired: visible for resend (all agency seats are in use: R4 says so), revocable.
    let expired = listed(&t, "olivia", "agency", "inv-expired").await;
    assert_eq!(expired["status"], "expired");
    assert_eq!(
        ids(&cell(&expired, "resend_invitation")),
        ["R4.resend-seat-limit"],
        "{expired}"
    );
    assert_eq!(
        cell(&expired, "revoke_invitation")["allowed"],
        true,
        "{expired}"
    );
    let accepted = listed(&t, "olivia", "agency", "inv-accepted").await;
    assert_eq!(accepted["status"], "accepted");
    for action in ["resend_invitation", "revoke_invitation"] {
        assert_eq!(ids(&cell(&accepted, action)), ["R3.accepted"], "{accepted}");
    }
    let gone = listed(&t, "olivia", "east", &revoked).await;
    assert_eq!(gone["status"], "revoked");
    for action in ["resend_invitation", "revoke_invitation"] {
        assert_eq!(ids(&cell(&gone, action)), ["R3.revoked"], "{gone}");
    }
    // The page's question names every listed row, in the list's order.
    let (_, body) = t.get("olivia", "/v1/accounts/agency/invitations").await;
    let listed_ids: Vec<Value> = body["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    let asked: Vec<Value> = body["question"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["invitation"].clone())
        .collect();
    assert_eq!(listed_ids, asked, "{body}");
    assert_eq!(listed_ids.len(), 3, "{body}");
    // Every status is loaded, yet seats count only the live invitation:
    // 9 memberships and inv-pending fill the agency's 10 seats.
    let (_, members) = t.get("olivia", "/v1/accounts/agency/members").await;
    assert_eq!(members["seats"]["in_use"], 10, "{members}");
}

#[tokio::test]
async fn racing_accepts_make_one_membership() {
    let t = common::acme().await;
    let (_, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    t.token("dan").await;
    let (a, b) = tokio::join!(accept(&t, "dan", &token), accept(&t, "dan", &token));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let loser = if a.0 == StatusCode::OK { &b } else { &a };
    assert!(
        loser.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{loser:?}"
    );
    assert_eq!(membership(&t, "east", "dan").await.len(), 1);
    assert_eq!(
        t.int(
            "SELECT COUNT(*) FROM audit WHERE action = 'accept_invitation' AND decision = 'allowed'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn one_pending_invitation_per_account_and_email() {
    let t = common::acme().await;
    let (first, _) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    let b = before(&t).await;
    let resp = try_invite(&t, "eve", "DAN@new.test", "east", "basic").await;
    assert_denied(
        &t,
        &b,
        &resp,
        "eve",
        "invite",
        "account:east",
        "R3.one-pending",
    )
    .await;
    // Another account is another pair.
    invite(&t, "olivia", "dan@new.test", "east-1", "basic").await;
    // Once the first has expired, a new invitation may be sent; the expired
    // one may then not be re-sent beside it.
    t.clock.advance(FOURTEEN_DAYS);
    let (second, _) = invite(&t, "eve", "dan@new.test", "east", "basic").await;
    assert_ne!(first, second);
    let b = before(&t).await;
    let resp = t
        .post("eve", &format!("/v1/invitations/{first}/resend"), json!({}))
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "eve",
        "resend_invitation",
        &format!("invitation:{first}"),
        "R3.one-pending-resend",
    )
    .await;
}

#[tokio::test]
async fn accept_rechecks_the_inviters_role() {
    let t = common::acme().await;
    let (id, token) = invite(&t, "ada", "carl@new.test", "east", "admin").await;
    new_user(&t, "carl", "carl@new.test").await;
    // ada is demoted before carl accepts: she can no longer grant admin.
    let (s, body) = t
        .call(
            Some("olivia"),
            Method::PUT,
            "/v1/accounts/agency/members/ada/role",
            Some(json!({"role": "standard"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let b = before(&t).await;
    let resp = accept(&t, "carl", &token).await;
    assert_denied(
        &t,
        &b,
        &resp,
        "carl",
        "accept_invitation",
        &format!("invitation:{id}"),
        "R3.accept-inviter-ceiling",
    )
    .await;
    assert!(membership(&t, "east", "carl").await.is_empty());
}

#[tokio::test]
async fn accept_is_a_post_never_a_get() {
    let t = common::acme().await;
    let (_, token) = invite(&t, "olivia", "dan@new.test", "east", "standard").await;
    new_user(&t, "dan", "dan@new.test").await;
    let b = before(&t).await;
    let (s, _) = t
        .get("dan", &format!("/v1/invitations/accept?token={token}"))
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(t.state().await == b.state);
}

#[tokio::test]
async fn resend_and_revoke_denied_to_basic_members_and_hidden_from_strangers() {
    let t = common::acme().await;
    let b = before(&t).await;
    let resp = t
        .post("bea", "/v1/invitations/inv-pending/revoke", json!({}))
        .await;
    assert_denied(
        &t,
        &b,
        &resp,
        "bea",
        "revoke_invitation",
        "invitation:inv-pending",
        "R3.manage",
    )
    .await;
    let b = before(&t).await;
    let (s, body) = t
        .post("stranger", "/v1/invitations/inv-pending/resend", json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert!(t.state().await == b.state);
    assert_eq!(invitation(&t, "inv-pending").await["status"], "pending");
}

#[tokio::test]
async fn a_removed_member_rejoins_by_accepting_with_the_same_session() {
    let t = common::acme().await;
    // bob is signed in, then removed from the agency: signed out of it.
    let (s, _) = t.get("bob", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = t
        .call(
            Some("olivia"),
            Method::DELETE,
            "/v1/accounts/agency/members/bob",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _) = t.get("bob", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Re-invited, he accepts from the same session and may use the account again.
    let (id, token) = invite(&t, "olivia", "bob@acme.test", "agency", "basic").await;
    let (s, body) = accept(&t, "bob", &token).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_audited(
        &t,
        "bob",
        "accept_invitation",
        &format!("invitation:{id}"),
        "R3.accept",
    )
    .await;
    assert_eq!(
        membership(&t, "agency", "bob").await,
        vec![json!({"role": "basic", "status": "active"})]
    );
    let (s, body) = t.get("bob", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");
}
