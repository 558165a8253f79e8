//! `POST /v1/tokens` over HTTP (R15): minting is `mint_token`'s question,
//! decided from the credential making the request. A fresh browser session
//! mints a scoped token; a stale session, another token and a lifetime
//! beyond 90 days are refused with 403 and the policies' ids and reasons,
//! changing nothing but the audit log; the minted token is held to its
//! accounts and its access, and dies at its expiry. The clock is set, never
//! slept on.

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

fn mint(accounts: &[&str], access: &str, days: i64) -> Value {
    json!({"label": "ci", "accounts": accounts, "access": access, "lifetime_days": days})
}

/// A 403 naming exactly `ids` among its reasons, with messages.
#[track_caller]
fn denied(status: StatusCode, body: &Value, ids: &[&str]) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "denied", "{body}");
    let mut got: Vec<&str> = body["error"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(!r["message"].as_str().unwrap().is_empty(), "{body}");
            r["policy"].as_str().unwrap()
        })
        .collect();
    got.sort_unstable();
    let mut want = ids.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{body}");
    assert!(body["error"]["audit_id"].is_i64(), "{body}");
}

async fn api_tokens(t: &common::T) -> i64 {
    t.int("SELECT COUNT(*) FROM sessions WHERE kind = 'api'")
        .await
}

#[tokio::test]
async fn a_fresh_browser_session_mints_a_scoped_token() {
    let t = common::acme().await;
    let olivia = t.browser("olivia").await;
    t.clock.advance(14 * 60);
    let (s, body) = t
        .call_browser(
            &olivia,
            Method::POST,
            "/v1/tokens",
            Some(mint(&["agency"], "write", 90)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["accounts"], json!(["agency"]));
    assert_eq!(body["access"], "write");
    assert_eq!(
        body["expires_at"],
        common::NOW + 14 * 60 + 90 * 24 * 3600,
        "{body}"
    );
    let token = body["token"].as_str().unwrap().to_owned();
    let id = body["id"].as_str().unwrap();
    let row = t
        .rows(&format!(
            "SELECT kind, scope_accounts, access, expires_at FROM sessions WHERE id = '{id}'"
        ))
        .await;
    assert_eq!(row[0]["kind"], "api");
    assert_eq!(row[0]["scope_accounts"], "[\"agency\"]");
    assert_eq!(row[0]["access"], "write");
    let audit = t.last_audit().await;
    assert_eq!(audit["action"], "mint_token");
    assert_eq!(audit["decision"], "allowed");
    assert!(
        !audit.to_string().contains(&token),
        "the secret is not audited"
    );

    // The token works on its account ...
    let (s, body) = t
        .call_bearer(&token, Method::GET, "/v1/accounts/agency/members", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // ... nowhere else, though olivia may read east through the agency ...
    let (s, body) = t
        .call_bearer(&token, Method::GET, "/v1/accounts/east/members", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "token_scope", "{body}");
    let before = t.state().await;
    let (s, body) = t
        .call_bearer(
            &token,
            Method::POST,
            "/v1/accounts/east/members/bob/suspend",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "token_scope", "{body}");
    assert_eq!(t.state().await, before);
    // ... and its account switcher lists its one account, not all olivia's.
    let (s, body) = t
        .call_bearer(&token, Method::GET, "/v1/accounts", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let listed: Vec<&str> = body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["agency"], "{body}");
    let question = body["question"].to_string();
    assert!(!question.contains("east"), "{question}");
    // ... and it dies at its expiry.
    t.clock.advance(90 * 24 * 3600);
    let (s, body) = t
        .call_bearer(&token, Method::GET, "/v1/accounts/agency/members", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn a_read_token_only_reads() {
    let t = common::acme().await;
    let ada = t.browser("ada").await;
    let (s, body) = t
        .call_browser(
            &ada,
            Method::POST,
            "/v1/tokens",
            Some(mint(&["agency"], "read", 7)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (s, body) = t
        .call_bearer(&token, Method::GET, "/v1/accounts/agency/members", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let before = t.state().await;
    let (s, body) = t
        .call_bearer(
            &token,
            Method::POST,
            "/v1/accounts/agency/members/bea/suspend",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "token_scope", "{body}");
    assert_eq!(t.state().await, before);
}

#[tokio::test]
async fn a_token_never_mints_its_successor() {
    let t = common::acme().await;
    // A token the operator made, and one minted from a fresh session.
    let (s, body) = t
        .post("olivia", "/v1/tokens", mint(&["agency"], "write", 30))
        .await;
    denied(s, &body, &["R15.token-from-token"]);
    let olivia = t.browser("olivia").await;
    let (_, body) = t
        .call_browser(
            &olivia,
            Method::POST,
            "/v1/tokens",
            Some(mint(&["agency"], "write", 30)),
        )
        .await;
    let minted = body["token"].as_str().unwrap().to_owned();
    let tokens = api_tokens(&t).await;
    let (s, body) = t
        .call_bearer(
            &minted,
            Method::POST,
            "/v1/tokens",
            Some(mint(&["agency"], "write", 30)),
        )
        .await;
    denied(s, &body, &["R15.token-from-token"]);
    assert_eq!(api_tokens(&t).await, tokens, "nothing was minted");
    // Both denials are audited (identical ones within a minute share a record).
    assert_eq!(
        t.int("SELECT CAST(SUM(repeats) AS BIGINT) FROM audit WHERE action = 'mint_token' AND decision = 'denied'")
            .await,
        2
    );
}

#[tokio::test]
async fn a_stale_sign_in_is_refused_with_its_reason() {
    let t = common::acme().await;
    let bea = t.browser("bea").await;
    t.clock.advance(15 * 60 + 1);
    let tokens = api_tokens(&t).await;
    let (s, body) = t
        .call_browser(
            &bea,
            Method::POST,
            "/v1/tokens",
            Some(mint(&["agency"], "read", 30)),
        )
        .await;
    denied(s, &body, &["R15.token-fresh-sign-in"]);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{body}"
    );
    assert_eq!(api_tokens(&t).await, tokens);
    // Signing in again is the way.
    let fresh = t.browser("bea").await;
    let (s, body) = t
        .call_browser(
            &fresh,
            Method::POST,
            "/v1/tokens",
            Some(mint(&["agency"], "read", 30)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn ninety_one_days_is_refused() {
    let t = common::acme().await;
    let olivia = t.browser("olivia").await;
    let (s, body) = t
        .call_browser(
            &olivia,
            Method::POST,
            "/v1/tokens",
            Some(mint(&["agency"], "write", 91)),
        )
        .await;
    denied(s, &body, &["R15.token-lifetime"]);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("91"),
        "{body}"
    );
    // A token asking for a year, from a day-old session, hears every reason.
    t.clock.advance(24 * 3600);
    let (s, body) = t
        .call_browser(
            &olivia,
            Method::POST,
            "/v1/tokens",
            Some(mint(&["agency"], "write", 365)),
        )
        .await;
    denied(s, &body, &["R15.token-fresh-sign-in", "R15.token-lifetime"]);
}

#[tokio::test]
async fn a_token_needs_its_scope() {
    let t = common::acme().await;
    let olivia = t.browser("olivia").await;
    for body in [
        json!({"label": "ci", "access": "write"}),
        json!({"label": "ci", "accounts": [], "access": "write"}),
        json!({"label": "ci", "accounts": ["agency"]}),
        json!({"label": "ci", "accounts": ["agency"], "access": "admin"}),
    ] {
        let (s, b) = t
            .call_browser(&olivia, Method::POST, "/v1/tokens", Some(body))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    }
}
