//! The README's first steps through the router: health, 401, sign-in link,
//! members list with allowed actions, removal with an audit row.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn health_is_open_and_accounts_need_sign_in() {
    let t = common::acme().await;
    let (s, body) = t.call(None, Method::GET, "/health", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["module_sha256"].as_str().map(str::len), Some(64));
    let (s, body) = t.call(None, Method::GET, "/v1/accounts", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn members_list_carries_allowed_actions_and_removal_is_audited() {
    let t = common::acme().await;
    let (s, body) = t.get("olivia", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let rita = body["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"] == "rita")
        .unwrap();
    assert_eq!(rita["actions"]["remove_member"]["allowed"], false);
    assert_eq!(
        rita["actions"]["remove_member"]["reasons"][0]["policy"],
        "R8.owned-resources"
    );
    let (s, body) = t
        .call(
            Some("olivia"),
            Method::DELETE,
            "/v1/accounts/agency/members/bea",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        t.int("SELECT COUNT(*) FROM memberships WHERE user_id = 'bea'")
            .await,
        0
    );
    let audit = t.last_audit().await;
    assert_eq!(audit["action"], "remove_member");
    assert_eq!(audit["decision"], "allowed");
    assert_eq!(audit["target"], "membership:agency/bea");
    let _ = json!({});
}

#[tokio::test]
async fn module_download_revalidates_by_its_sha256() {
    use axum::body::Body;
    use axum::http::Request;
    let t = common::acme().await;
    let (s, _) = t
        .send(Request::get("/v1/module").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    let sha = t.host.gate.module_sha256();
    let etag = format!("\"{sha}\"");
    let req = Request::get("/v1/module")
        .header("if-none-match", &etag)
        .body(Body::empty())
        .unwrap();
    let (s, body) = t.send(req).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(body.is_null());
    let req = Request::get("/v1/module")
        .header("if-none-match", "\"0000\"")
        .body(Body::empty())
        .unwrap();
    let (s, _) = t.send(req).await;
    assert_eq!(s, StatusCode::OK, "another hash gets the bytes");
}
