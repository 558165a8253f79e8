//! SCIM 2.0 (R17) through the router with an account's SCIM token:
//! provisioning, reads, filter and paging, `active` both ways in both PATCH
//! forms, DELETE, re-provisioning with the same identity, the last-owner
//! rule (R12) as a SCIM error with an audit row, token checks and account
//! scoping.

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const DENIAL_SCHEMA: &str = "urn:gatehouse:params:scim:api:messages:1.0:Denial";

/// One SCIM response: status, content type, JSON body (Null when empty).
struct Res {
    status: StatusCode,
    content_type: String,
    body: Value,
}

/// Sends a SCIM request with `Authorization: <auth>` (None: no header) and
/// a body as `application/scim+json`.
async fn scim(
    t: &common::T,
    auth: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Res {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/scim+json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let res = t.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Res {
        status,
        content_type,
        body,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts a SCIM error body with `status`, and returns its detail.
fn scim_error(r: &Res, status: StatusCode) -> String {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(
        r.content_type.starts_with("application/scim+json"),
        "content type {} for {}",
        r.content_type,
        r.body
    );
    assert!(
        r.body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == ERROR_SCHEMA)),
        "{}",
        r.body
    );
    assert_eq!(r.body["status"], status.as_u16().to_string(), "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap_or_default().to_owned();
    assert!(!detail.is_empty(), "{}", r.body);
    for leak in ["sqlx", "SELECT", "/work/", "/tmp/", ".rs:"] {
        assert!(!r.body.to_string().contains(leak), "{}", r.body);
    }
    detail
}

fn patch_active_path(active: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "active", "value": active}]})
}

fn patch_active_value(active: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "value": {"active": active}}]})
}

async fn membership(t: &common::T, account: &str, user: &str) -> Vec<Value> {
    t.rows(&format!(
        "SELECT role, status, managed_by_idp FROM memberships WHERE account_id = '{account}' AND user_id = '{user}'"
    ))
    .await
}

/// Makes room: the Acme agency uses all 10 of its seats.
async fn free_seats(t: &common::T) {
    sqlx::query("UPDATE accounts SET extra_seats = 5 WHERE id = 'agency'")
        .execute(t.host.store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn provision_read_filter_deactivate_activate_delete_and_reprovision() {
    let t = common::acme().await;
    free_seats(&t).await;
    let token = gatehouse_host::scim::create_token(&t.host, "agency")
        .await
        .unwrap();
    let auth = bearer(&token);
    let auth = Some(auth.as_str());

    // Create: a user and an IdP-managed basic membership, audited as scim.
    let r = scim(
        &t,
        auth,
        Method::POST,
        "/scim/v2/Users",
        Some(json!({
            "schemas": [USER_SCHEMA],
            "userName": "Zoe.Zed@acme.test",
            "externalId": "00u1",
            "name": {"givenName": "Zoe", "familyName": "Zed"},
            "emails": [{"value": "Zoe.Zed@acme.test", "primary": true}],
            "active": true
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.content_type.starts_with("application/scim+json"));
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());
    assert_eq!(r.body["userName"], "Zoe.Zed@acme.test");
    assert_eq!(r.body["active"], true);
    // The record is what the identity provider sent (no displayName);
    // the new person's name comes from it.
    assert_eq!(r.body["name"]["givenName"], "Zoe");
    assert_eq!(
        t.rows(&format!("SELECT name FROM users WHERE id = '{id}'"))
            .await,
        vec![json!({"name": "Zoe Zed"})]
    );
    assert!(
        r.body["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == USER_SCHEMA)
    );
    assert_eq!(
        membership(&t, "agency", &id).await,
        vec![json!({"role": "basic", "status": "active", "managed_by_idp": 1})]
    );
    let audit = t.last_audit().await;
    assert_eq!(audit["action"], "scim_provision");
    assert_eq!(audit["source"], "scim");
    assert_eq!(audit["decision"], "allowed");
    assert_eq!(audit["actor"], "idp:agency");
    assert_eq!(audit["account_id"], "agency");

    // The new member signs in (an API token) and sees the account.
    let (s, body) = t.get(&id, "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // Read back by id.
    let path = format!("/scim/v2/Users/{id}");
    let r = scim(&t, auth, Method::GET, &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["userName"], "Zoe.Zed@acme.test");
    assert_eq!(r.body["active"], true);

    // Filter by userName (case-insensitive value, URL-encoded).
    let filter = |v: &str| {
        format!(
            "/scim/v2/Users?filter={}",
            common::enc(&format!("userName eq \"{v}\""))
        )
    };
    let r = scim(&t, auth, Method::GET, &filter("zoe.zed@ACME.test"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == LIST_SCHEMA)
    );
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert_eq!(r.body["Resources"][0]["id"], id.as_str());
    let r = scim(&t, auth, Method::GET, &filter("nobody@acme.test"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));
    // The same filter with the schema's URN, operators in capitals, a JSON
    // escape in the value and more spaces: the same user.
    for f in [
        "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"zoe.zed@acme.test\"",
        "USERNAME EQ \"Zoe.Zed\\u0040acme.test\"",
        "  (userName   eq \"zoe.zed@acme.test\")  ",
    ] {
        let uri = format!("/scim/v2/Users?filter={}", common::enc(f));
        let r = scim(&t, auth, Method::GET, &uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{f}: {}", r.body);
        assert_eq!(r.body["totalResults"], 1, "{f}: {}", r.body);
        assert_eq!(r.body["Resources"][0]["id"], id.as_str());
    }

    // Paging: pages of 3 cover every member of the account exactly once.
    let all: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM scim_users WHERE account_id = 'agency' ORDER BY user_id",
    )
    .fetch_all(t.host.store.pool())
    .await
    .unwrap();
    assert!(all.len() >= 2, "{all:?}");
    let mut seen = Vec::new();
    let mut start = 1;
    while start <= all.len() {
        let r = scim(
            &t,
            auth,
            Method::GET,
            &format!("/scim/v2/Users?startIndex={start}&count=3"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["totalResults"], all.len(), "{}", r.body);
        assert_eq!(r.body["startIndex"], start);
        let page = r.body["Resources"].as_array().unwrap();
        assert_eq!(page.len(), 3.min(all.len() + 1 - start));
        assert_eq!(r.body["itemsPerPage"], page.len());
        seen.extend(page.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        start += 3;
    }
    assert_eq!(seen, all);
    let r = scim(
        &t,
        auth,
        Method::GET,
        &format!("/scim/v2/Users?startIndex={}&count=3", all.len() + 1),
        None,
    )
    .await;
    assert_eq!(r.body["Resources"], json!([]), "{}", r.body);
    assert_eq!(r.body["totalResults"], all.len());

    // active=false (path form) suspends; the user still reads back, inactive.
    let r = scim(
        &t,
        auth,
        Method::PATCH,
        &path,
        Some(patch_active_path(json!(false))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert_eq!(
        membership(&t, "agency", &id).await[0]["status"],
        "suspended"
    );
    let audit = t.last_audit().await;
    assert_eq!(audit["action"], "scim_deactivate");
    assert_eq!(audit["source"], "scim");
    assert_eq!(audit["decision"], "allowed");
    let r = scim(&t, auth, Method::GET, &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert_eq!(r.body["userName"], "Zoe.Zed@acme.test");
    let r = scim(&t, auth, Method::GET, &filter("zoe.zed@acme.test"), None).await;
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["active"], false);
    // ... and the suspended member is signed out of the account at once.
    let (s, body) = t.get(&id, "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");

    // active=true (path form, as a string as some IdPs send it) unsuspends.
    let r = scim(
        &t,
        auth,
        Method::PATCH,
        &path,
        Some(json!({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "Replace", "path": "active", "value": "True"}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(membership(&t, "agency", &id).await[0]["status"], "active");
    assert_eq!(t.last_audit().await["action"], "scim_activate");
    let (s, body) = t.get(&id, "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // The value-object form, both ways.
    let r = scim(
        &t,
        auth,
        Method::PATCH,
        &path,
        Some(patch_active_value(json!(false))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert_eq!(
        membership(&t, "agency", &id).await[0]["status"],
        "suspended"
    );
    let r = scim(
        &t,
        auth,
        Method::PATCH,
        &path,
        Some(patch_active_value(json!(true))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], true);
    assert_eq!(membership(&t, "agency", &id).await[0]["status"], "active");

    // A second POST of the same address while a member is a conflict.
    let r = scim(
        &t,
        auth,
        Method::POST,
        "/scim/v2/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "zoe.zed@acme.test"})),
    )
    .await;
    scim_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["scimType"], "uniqueness");

    // DELETE removes the membership (204, no body); the user row stays.
    let r = scim(&t, auth, Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    assert!(membership(&t, "agency", &id).await.is_empty());
    let audit = t.last_audit().await;
    assert_eq!(audit["action"], "scim_delete");
    assert_eq!(audit["source"], "scim");
    assert_eq!(audit["decision"], "allowed");
    let r = scim(&t, auth, Method::GET, &path, None).await;
    scim_error(&r, StatusCode::NOT_FOUND);
    let r = scim(&t, auth, Method::GET, &filter("zoe.zed@acme.test"), None).await;
    assert_eq!(r.body["totalResults"], 0);
    let (s, body) = t.get(&id, "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    let r = scim(&t, auth, Method::DELETE, &path, None).await;
    scim_error(&r, StatusCode::NOT_FOUND);

    // Re-provisioning the same address reuses the same identity, and the
    // user's existing session may use the account again.
    let r = scim(
        &t,
        auth,
        Method::POST,
        "/scim/v2/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "ZOE.ZED@acme.test"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["active"], true);
    assert_eq!(
        t.int("SELECT COUNT(*) FROM users WHERE email_lower = 'zoe.zed@acme.test'")
            .await,
        1
    );
    assert_eq!(
        membership(&t, "agency", &id).await,
        vec![json!({"role": "basic", "status": "active", "managed_by_idp": 1})]
    );
    let (s, body) = t.get(&id, "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn last_owner_rule_holds_for_scim() {
    let t = common::acme().await;
    // Solo's only owner is managed by Solo's identity provider.
    for sql in [
        "UPDATE memberships SET managed_by_idp = 1 WHERE account_id = 'solo' AND user_id = 'sola'",
        "INSERT INTO scim_users (account_id, user_id, user_name, user_name_lower, resource, created_at, last_modified, version) \
         VALUES ('solo', 'sola', 'sola@solo.test', 'sola@solo.test', '{}', 0, 0, 1)",
    ] {
        sqlx::query(sql).execute(t.host.store.pool()).await.unwrap();
    }
    let token = gatehouse_host::scim::create_token(&t.host, "solo")
        .await
        .unwrap();
    let auth = bearer(&token);
    let auth = Some(auth.as_str());
    let before = t.state().await;

    for body in [
        patch_active_path(json!(false)),
        patch_active_value(json!(false)),
    ] {
        let r = scim(&t, auth, Method::PATCH, "/scim/v2/Users/sola", Some(body)).await;
        let detail = scim_error(&r, StatusCode::FORBIDDEN);
        assert!(detail.contains("last active owner"), "{detail}");
        assert_eq!(
            r.body[DENIAL_SCHEMA]["reasons"][0]["policy"],
            "R12.last-owner"
        );
        assert_eq!(
            t.state().await,
            before,
            "a refused SCIM change changed data"
        );
        let audit = t.last_audit().await;
        assert_eq!(audit["action"], "scim_deactivate");
        assert_eq!(audit["decision"], "denied");
        assert_eq!(audit["source"], "scim");
        assert_eq!(audit["actor"], "idp:solo");
        assert_eq!(audit["target"], "membership:solo/sola");
        assert!(
            audit["reasons"]
                .as_str()
                .unwrap()
                .contains("R12.last-owner")
        );
    }
    // Both attempts are on record (identical denials may share one row with a count).
    assert_eq!(
        t.int("SELECT CAST(SUM(repeats) AS BIGINT) FROM audit WHERE action = 'scim_deactivate' AND decision = 'denied'")
            .await,
        2
    );

    // DELETE is refused the same way.
    let r = scim(&t, auth, Method::DELETE, "/scim/v2/Users/sola", None).await;
    let detail = scim_error(&r, StatusCode::FORBIDDEN);
    assert!(detail.contains("last active owner"), "{detail}");
    assert_eq!(t.state().await, before);
    let audit = t.last_audit().await;
    assert_eq!(audit["action"], "scim_delete");
    assert_eq!(audit["decision"], "denied");
    assert_eq!(audit["source"], "scim");

    // Sola still reads back active.
    let r = scim(&t, auth, Method::GET, "/scim/v2/Users/sola", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], true);
}

#[tokio::test]
async fn idp_manages_only_what_it_provisioned_and_the_seat_limit_holds() {
    let t = common::acme().await;
    let token = gatehouse_host::scim::create_token(&t.host, "agency")
        .await
        .unwrap();
    let auth = bearer(&token);
    let auth = Some(auth.as_str());
    let before = t.state().await;

    // Bea was invited, not provisioned: the identity provider has no
    // record of her to edit, and may not remove her (decided and audited).
    let r = scim(
        &t,
        auth,
        Method::PATCH,
        "/scim/v2/Users/bea",
        Some(patch_active_path(json!(false))),
    )
    .await;
    scim_error(&r, StatusCode::NOT_FOUND);
    assert_eq!(t.state().await, before);
    let r = scim(&t, auth, Method::DELETE, "/scim/v2/Users/bea", None).await;
    scim_error(&r, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body[DENIAL_SCHEMA]["reasons"][0]["policy"],
        "R17.scim-members"
    );
    assert_eq!(t.state().await, before);
    assert_eq!(t.last_audit().await["decision"], "denied");

    // All 10 seats of the agency are in use: no new user.
    let users = t.int("SELECT COUNT(*) FROM users").await;
    let r = scim(
        &t,
        auth,
        Method::POST,
        "/scim/v2/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "full@acme.test"})),
    )
    .await;
    let detail = scim_error(&r, StatusCode::FORBIDDEN);
    assert!(detail.contains("seats"), "{detail}");
    assert_eq!(
        r.body[DENIAL_SCHEMA]["reasons"][0]["policy"],
        "R4.seat-limit"
    );
    assert_eq!(t.int("SELECT COUNT(*) FROM users").await, users);
    assert_eq!(t.state().await, before);
    let audit = t.last_audit().await;
    assert_eq!(audit["action"], "scim_provision");
    assert_eq!(audit["decision"], "denied");
    assert_eq!(audit["source"], "scim");

    // Ivan (IdP-managed) can be deactivated.
    let r = scim(
        &t,
        auth,
        Method::PATCH,
        "/scim/v2/Users/ivan",
        Some(patch_active_path(json!(false))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], false);
}

#[tokio::test]
async fn wrong_or_missing_token_is_401() {
    let t = common::acme().await;
    free_seats(&t).await;
    let good = gatehouse_host::scim::create_token(&t.host, "agency")
        .await
        .unwrap();
    let api = t.token("olivia").await;
    let before = t.state().await;
    let users = t.int("SELECT COUNT(*) FROM users").await;
    let create = json!({"schemas": [USER_SCHEMA], "userName": "mallory@acme.test"});
    let wrong = [
        None,
        Some("Bearer ghscim_000000000000000000000000000000000000000000000000".to_owned()),
        Some(format!("Bearer {good}x")),
        Some(format!("Basic {good}")),
        Some(good.clone()),
        // A user's API token is not a SCIM token.
        Some(format!("Bearer {api}")),
    ];
    for auth in &wrong {
        let auth = auth.as_deref();
        for (method, path, body) in [
            (Method::GET, "/scim/v2/Users", None),
            (Method::POST, "/scim/v2/Users", Some(create.clone())),
            (Method::GET, "/scim/v2/Users/ivan", None),
            (
                Method::PATCH,
                "/scim/v2/Users/ivan",
                Some(patch_active_path(json!(false))),
            ),
            (Method::DELETE, "/scim/v2/Users/ivan", None),
        ] {
            let r = scim(&t, auth, method.clone(), path, body).await;
            scim_error(&r, StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(t.state().await, before);
    assert_eq!(t.int("SELECT COUNT(*) FROM users").await, users);

    // A SCIM token is not an API token either.
    let (s, body) = t
        .send(
            Request::builder()
                .uri("/v1/accounts")
                .header(header::AUTHORIZATION, bearer(&good))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");

    // The right one works.
    let r = scim(
        &t,
        Some(&bearer(&good)),
        Method::GET,
        "/scim/v2/Users",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_token_sees_only_its_own_account() {
    let t = common::acme().await;
    let solo = gatehouse_host::scim::create_token(&t.host, "solo")
        .await
        .unwrap();
    let agency = gatehouse_host::scim::create_token(&t.host, "agency")
        .await
        .unwrap();
    let solo = bearer(&solo);
    let agency = bearer(&agency);
    // Ivan (and now Olivia) are IdP-managed in the agency: Solo's provider
    // must not see or touch them.
    sqlx::query("UPDATE memberships SET managed_by_idp = 1 WHERE user_id = 'olivia'")
        .execute(t.host.store.pool())
        .await
        .unwrap();
    let before = t.state().await;

    for user in ["ivan", "olivia", "nobody"] {
        let path = format!("/scim/v2/Users/{user}");
        let r = scim(&t, Some(&solo), Method::GET, &path, None).await;
        scim_error(&r, StatusCode::NOT_FOUND);
        let r = scim(
            &t,
            Some(&solo),
            Method::PATCH,
            &path,
            Some(patch_active_path(json!(false))),
        )
        .await;
        scim_error(&r, StatusCode::NOT_FOUND);
        let r = scim(&t, Some(&solo), Method::DELETE, &path, None).await;
        scim_error(&r, StatusCode::NOT_FOUND);
    }
    assert_eq!(t.state().await, before);

    let r = scim(&t, Some(&solo), Method::GET, "/scim/v2/Users", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Sola was not provisioned by it: its record set is empty.
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    let r = scim(
        &t,
        Some(&solo),
        Method::GET,
        &format!(
            "/scim/v2/Users?filter={}",
            common::enc("userName eq \"ivan@acme.test\"")
        ),
        None,
    )
    .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);

    // And the other way round.
    let r = scim(&t, Some(&agency), Method::GET, "/scim/v2/Users/sola", None).await;
    scim_error(&r, StatusCode::NOT_FOUND);
    let r = scim(&t, Some(&agency), Method::GET, "/scim/v2/Users/ivan", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn bad_requests_are_scim_errors() {
    let t = common::acme().await;
    let token = gatehouse_host::scim::create_token(&t.host, "agency")
        .await
        .unwrap();
    let authorization = bearer(&token);
    let auth = Some(authorization.as_str());
    let before = t.state().await;

    // No Operations.
    let r = scim(
        &t,
        auth,
        Method::PATCH,
        "/scim/v2/Users/ivan",
        Some(json!({"schemas": [PATCH_SCHEMA]})),
    )
    .await;
    scim_error(&r, StatusCode::BAD_REQUEST);
    // An operation other than replace/add.
    let r = scim(
        &t,
        auth,
        Method::PATCH,
        "/scim/v2/Users/ivan",
        Some(json!({"Operations": [{"op": "remove", "path": "active"}]})),
    )
    .await;
    scim_error(&r, StatusCode::BAD_REQUEST);
    // active must be a boolean.
    let r = scim(
        &t,
        auth,
        Method::PATCH,
        "/scim/v2/Users/ivan",
        Some(patch_active_path(json!("maybe"))),
    )
    .await;
    scim_error(&r, StatusCode::BAD_REQUEST);
    // Not JSON.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/scim/v2/Users")
        .header(header::AUTHORIZATION, &authorization)
        .header(header::CONTENT_TYPE, "application/scim+json")
        .body(Body::from("{\"userName\": "))
        .unwrap();
    let res = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["schemas"][0], ERROR_SCHEMA, "{v}");
    // userName is not an address.
    let r = scim(
        &t,
        auth,
        Method::POST,
        "/scim/v2/Users",
        Some(json!({"userName": "not-an-address"})),
    )
    .await;
    scim_error(&r, StatusCode::BAD_REQUEST);
    // Wrong content type.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/scim/v2/Users")
        .header(header::AUTHORIZATION, &authorization)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(json!({"userName": "x@acme.test"}).to_string()))
        .unwrap();
    let res = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["schemas"][0], ERROR_SCHEMA, "{v}");
    assert_eq!(v["status"], "415");
    // Unsupported filter and a bad paging value.
    for q in [
        format!("filter={}", common::enc("shoeSize co \"x\"")),
        format!("filter={}", common::enc("userName eq x")),
        "count=many".to_owned(),
        "startIndex=first".to_owned(),
    ] {
        let r = scim(&t, auth, Method::GET, &format!("/scim/v2/Users?{q}"), None).await;
        scim_error(&r, StatusCode::BAD_REQUEST);
    }
    // Filters in the SCIM grammar on what the User schema lacks, or with a
    // value of the wrong type, are invalid; a filter that is not in the
    // grammar says where it breaks.
    for (filter, says) in [
        ("shoeSize co \"x\"", "no attribute `shoeSize`"),
        (
            "userName eq \"a@acme.test\" and active eq 1",
            "`active` is boolean",
        ),
        ("emails[shoe eq \"work\"]", "no sub-attribute `shoe`"),
        ("name.shoe ne \"a\"", "no sub-attribute `shoe`"),
        ("userName eq 42", "`userName` compares strings"),
        ("userName eq x", "at character 13: expected a value"),
        (
            "userName eq \"a@acme.test",
            "at character 13: this string has no closing",
        ),
        (
            "(userName eq \"a@acme.test\"",
            "at character 27: `)` missing",
        ),
        (
            "userName eq \"a\" userName eq \"b\"",
            "at character 17: expected `and`, `or`",
        ),
    ] {
        let r = scim(
            &t,
            auth,
            Method::GET,
            &format!("/scim/v2/Users?filter={}", common::enc(filter)),
            None,
        )
        .await;
        let detail = scim_error(&r, StatusCode::BAD_REQUEST);
        assert!(detail.contains(says), "{filter}: {detail}");
    }
    assert_eq!(t.state().await, before);
}

#[tokio::test]
async fn a_broken_store_is_an_opaque_scim_error() {
    let t = common::acme().await;
    let token = gatehouse_host::scim::create_token(&t.host, "agency")
        .await
        .unwrap();
    sqlx::query("DROP TABLE scim_tokens")
        .execute(t.host.store.pool())
        .await
        .unwrap();
    let r = scim(
        &t,
        Some(&bearer(&token)),
        Method::GET,
        "/scim/v2/Users",
        None,
    )
    .await;
    let detail = scim_error(&r, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!detail.contains("scim_tokens"), "{detail}");
    assert!(!detail.contains("no such table"), "{detail}");
}
