//! Errors and edges of the HTTP API: malformed bodies, unknown ids and
//! endpoints, what answers without sign-in, the cookie session with its CSRF
//! header, one-time sign-in links, no existence leaks to strangers, instant
//! sign-out of a suspended member, and error bodies that never show
//! internals.

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// Sends a request and returns status, headers and raw body.
/// The session's `Set-Cookie` value among an answer's.
fn session_cookie(headers: &HeaderMap) -> String {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gh_session="))
        .unwrap_or_else(|| panic!("no session cookie in {headers:?}"))
        .to_owned()
}

async fn raw(t: &common::T, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let res = t.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes)
}

/// A request as `user` (API token) with a raw body and content type.
async fn with_body(
    t: &common::T,
    user: &str,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path).header(
        header::AUTHORIZATION,
        format!("Bearer {}", t.token(user).await),
    );
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    t.send(req.body(body.into()).unwrap()).await
}

/// Asserts an error in the API's shape and returns its message.
#[track_caller]
fn error(status: StatusCode, body: &Value, want: StatusCode, code: &str) -> String {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.trim().is_empty(), "{body}");
    no_internals(body);
    message.to_owned()
}

/// No error body shows the store, SQL or source paths.
#[track_caller]
fn no_internals(body: &Value) {
    let text = body.to_string();
    for leak in [
        "sqlx",
        "SQLx",
        "SELECT",
        "INSERT",
        "UPDATE ",
        "no such table",
        "/work/",
        "/tmp/",
        "/root/",
        ".rs:",
        "src/",
        "panicked",
    ] {
        assert!(!text.contains(leak), "`{leak}` in an error body: {text}");
    }
}

#[tokio::test]
async fn malformed_bodies_are_refused_and_change_nothing() {
    let t = common::acme().await;
    let before = t.state().await;
    let path = "/v1/accounts/agency/seats/buy";

    // Not JSON.
    let (s, b) = with_body(
        &t,
        "olivia",
        Method::POST,
        path,
        Some("application/json"),
        "{\"quantity\": ",
    )
    .await;
    let m = error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    assert!(m.contains("JSON"), "{m}");
    // Wrong type.
    let (s, b) = with_body(
        &t,
        "olivia",
        Method::POST,
        path,
        Some("application/json"),
        r#"{"quantity": "two"}"#,
    )
    .await;
    error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    // Missing field.
    let (s, b) = with_body(
        &t,
        "olivia",
        Method::POST,
        path,
        Some("application/json"),
        "{}",
    )
    .await;
    let m = error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    assert!(m.contains("quantity"), "{m}");
    // Unknown field.
    let (s, b) = with_body(
        &t,
        "olivia",
        Method::POST,
        path,
        Some("application/json"),
        r#"{"quantity": 1, "price": 0}"#,
    )
    .await;
    let m = error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    assert!(m.contains("unknown field") && m.contains("price"), "{m}");
    let (s, b) = t
        .call(
            Some("olivia"),
            Method::PUT,
            "/v1/me/notifications",
            Some(json!({"email": true, "sms": false, "push": true})),
        )
        .await;
    error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    // A bad value the host checks.
    let (s, b) = t.post("olivia", path, json!({"quantity": 0})).await;
    error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = t
        .post(
            "olivia",
            "/v1/invitations",
            json!({"emails": ["not an address"], "accounts": [{"account": "agency", "role": "basic"}]}),
        )
        .await;
    error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = t
        .post(
            "olivia",
            "/v1/accounts/agency/members/bea/reassign",
            json!({"to": "sam", "also": "rita"}),
        )
        .await;
    error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    // An unknown role.
    let (s, b) = t
        .call(
            Some("olivia"),
            Method::PUT,
            "/v1/accounts/agency/members/bea/role",
            Some(json!({"role": "superuser"})),
        )
        .await;
    error(s, &b, StatusCode::BAD_REQUEST, "bad_request");

    // Wrong or missing content type.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let (s, b) = with_body(&t, "olivia", Method::POST, path, ct, r#"{"quantity": 1}"#).await;
        let m = error(
            s,
            &b,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
        assert!(m.contains("application/json"), "{m}");
    }

    // Oversize (more than 64 KiB).
    let big = json!({"label": "x".repeat(gatehouse_host::api::MAX_BODY + 1024)}).to_string();
    let (s, b) = with_body(
        &t,
        "olivia",
        Method::POST,
        "/v1/tokens",
        Some("application/json"),
        big.clone(),
    )
    .await;
    error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    // ... also when the length is not announced up front.
    let stream = futures_body(big);
    let (s, b) = with_body(
        &t,
        "olivia",
        Method::POST,
        "/v1/tokens",
        Some("application/json"),
        stream,
    )
    .await;
    error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    assert_eq!(
        t.int("SELECT COUNT(*) FROM sessions WHERE label LIKE 'xxx%'")
            .await,
        0
    );

    // A path segment that is not UTF-8 is a JSON 400, not plain text.
    let (s, b) = t.get("olivia", "/v1/accounts/%FF/members").await;
    error(s, &b, StatusCode::BAD_REQUEST, "bad_request");

    assert_eq!(t.state().await, before, "a refused request changed data");

    // Media types are case-insensitive, parameters allowed: this one works.
    let (s, b) = with_body(
        &t,
        "olivia",
        Method::POST,
        path,
        Some("Application/JSON; charset=utf-8"),
        r#"{"quantity": 1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        t.int("SELECT extra_seats FROM accounts WHERE id = 'agency'")
            .await,
        1
    );
}

/// A body without a known length (chunked), in two pieces.
fn futures_body(s: String) -> Body {
    let (a, b) = s.split_at(s.len() / 2);
    Body::new(Chunked(
        [Bytes::from(a.to_owned()), Bytes::from(b.to_owned())].into(),
    ))
}

struct Chunked(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Chunked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[tokio::test]
async fn unknown_ids_are_404_with_clear_messages() {
    let t = common::acme().await;
    let before = t.state().await;
    let cases: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (
            Method::DELETE,
            "/v1/accounts/agency/members/nobody",
            None,
            "`nobody` is not a member of `agency`",
        ),
        (
            Method::PUT,
            "/v1/accounts/agency/members/nobody/role",
            Some(json!({"role": "basic"})),
            "`nobody` is not a member of `agency`",
        ),
        (
            Method::POST,
            "/v1/accounts/agency/members/nobody/suspend",
            None,
            "`nobody` is not a member of `agency`",
        ),
        (
            Method::PUT,
            "/v1/accounts/agency/members/nobody/nickname",
            Some(json!({"nickname": "N"})),
            "`nobody` is not a member of `agency`",
        ),
        (
            Method::POST,
            "/v1/invitations/inv-nope/resend",
            None,
            "no such invitation",
        ),
        (
            Method::POST,
            "/v1/invitations/inv-nope/revoke",
            None,
            "no such invitation",
        ),
        (
            Method::POST,
            "/v1/invitations/accept",
            Some(json!({"token": "ghi_nope"})),
            "no such invitation",
        ),
        (
            Method::POST,
            "/v1/owner-removal-requests/req-nope/approve",
            None,
            "no owner-removal request `req-nope`",
        ),
        (
            Method::POST,
            "/v1/owner-removal-requests/req-nope/decline",
            None,
            "no owner-removal request `req-nope`",
        ),
        (
            Method::POST,
            "/v1/owner-removal-requests/req-nope/cancel",
            None,
            "no owner-removal request `req-nope`",
        ),
        (Method::GET, "/v1/jobs/job-nope", None, "no job `job-nope`"),
        (
            Method::DELETE,
            "/v1/me/devices/dev-nope",
            None,
            "no device `dev-nope`",
        ),
        (
            Method::GET,
            "/v1/accounts/nope/members",
            None,
            "no account `nope`",
        ),
        (
            Method::POST,
            "/v1/accounts/nope/seats/buy",
            Some(json!({"quantity": 1})),
            "no account `nope`",
        ),
        (
            Method::POST,
            "/v1/invitations",
            Some(
                json!({"emails": ["x@acme.test"], "accounts": [{"account": "nope", "role": "basic"}]}),
            ),
            "no account `nope`",
        ),
    ];
    for (method, path, body, want) in cases {
        let (s, b) = t.call(Some("olivia"), method.clone(), path, body).await;
        let m = error(s, &b, StatusCode::NOT_FOUND, "not_found");
        assert!(
            m.contains(want),
            "{method} {path}: `{m}` does not say `{want}`"
        );
    }
    assert_eq!(t.state().await, before);
}

#[tokio::test]
async fn unknown_endpoints_and_wrong_methods_answer_json() {
    let t = common::acme().await;
    for path in ["/v1/nope", "/v2/accounts", "/", "/v1/accounts/agency/nope"] {
        let (s, b) = t.call(None, Method::GET, path, None).await;
        let m = error(s, &b, StatusCode::NOT_FOUND, "not_found");
        assert!(m.contains("no such endpoint"), "{m}");
        let (s, b) = t
            .call(Some("olivia"), Method::POST, path, Some(json!({})))
            .await;
        error(s, &b, StatusCode::NOT_FOUND, "not_found");
    }
    for (method, path) in [
        (Method::DELETE, "/health"),
        (Method::POST, "/v1/accounts"),
        (Method::GET, "/v1/auth/sign-in"),
        (Method::PUT, "/v1/accounts/agency/members"),
        (Method::GET, "/v1/accounts/agency/members/bea/suspend"),
    ] {
        let (s, b) = t.call(Some("olivia"), method.clone(), path, None).await;
        let m = error(s, &b, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert!(m.contains("method"), "{method} {path}: {m}");
    }
    // Under /scim/v2 the same refusal is a SCIM error (scim_rfc.rs).
    let (s, b) = t
        .call(Some("olivia"), Method::PATCH, "/scim/v2/Users", None)
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{b}");
    assert_eq!(b["status"], "405", "{b}");
}

#[tokio::test]
async fn what_answers_without_sign_in() {
    let t = common::acme().await;
    for path in [
        "/v1/accounts",
        "/v1/me",
        "/v1/me/devices",
        "/v1/accounts/agency/members",
        "/v1/accounts/agency/audit",
        "/v1/jobs/x",
    ] {
        let (s, b) = t.call(None, Method::GET, path, None).await;
        error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // A token that is not one, and a wrong scheme.
    for auth in ["Bearer ght_nope", "Basic b2xpdmlhOng="] {
        let req = Request::builder()
            .uri("/v1/accounts")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap();
        let (s, b) = t.send(req).await;
        error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let before = t.state().await;
    let (s, b) = t
        .call(
            None,
            Method::POST,
            "/v1/accounts/agency/members/bea/suspend",
            None,
        )
        .await;
    error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(t.state().await, before);

    let (s, health) = t.call(None, Method::GET, "/health", None).await;
    assert_eq!(s, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "ok");

    let (s, headers, bytes) = raw(
        &t,
        Request::builder()
            .uri("/v1/module")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
    assert!(bytes.starts_with(b"\0asm"), "not a WebAssembly module");
    let sha = gatehouse_policy::engine::hex(&Sha256::digest(&bytes));
    assert_eq!(headers["x-gatehouse-module-sha256"], sha.as_str());
    assert_eq!(health["module_sha256"], sha.as_str());
    assert_eq!(
        std::fs::read(common::module_path()).unwrap(),
        bytes.as_ref(),
        "the served module is not the loaded file"
    );

    let (s, headers, bytes) = raw(
        &t,
        Request::builder()
            .uri("/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
}

/// Asks for a sign-in link for `email` and returns the binding cookie the
/// request set (`gh_sign_in=…`) and the new link's token from the outbox.
async fn link_for(t: &common::T, email: &str) -> (String, String) {
    let sql = format!("SELECT COUNT(*) FROM outbox WHERE to_email = '{email}'");
    let before = t.int(&sql).await;
    let (s, headers, bytes) = raw(
        t,
        Request::builder()
            .method(Method::POST)
            .uri("/v1/auth/sign-in")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"email": email}).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let binding = common::binding_cookie(&headers).expect("a binding cookie");
    // The mailer sends after the answer.
    for _ in 0..200 {
        if t.int(&sql).await > before {
            return (binding, common::sign_in_link(&t.host.store, email).await);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no new sign-in mail to {email}")
}

/// A signed-in browser: the cookie pair to send and the CSRF value.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn sign_in(t: &common::T, email: &str) -> Browser {
    let (binding, token) = link_for(t, email).await;
    let (s, headers, bytes) = raw(
        t,
        Request::builder()
            .method(Method::POST)
            .uri("/v1/auth/redeem")
            .header(header::COOKIE, binding)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"token": token}).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let set = session_cookie(&headers);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    let cookie = set.split(';').next().unwrap().trim().to_owned();
    assert!(cookie.starts_with("gh_session="), "{set}");
    Browser {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_owned(),
    }
}

async fn browser_call(
    t: &common::T,
    b: &Browser,
    csrf: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, format!("theme=dark; {}", b.cookie));
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    let req = match body {
        Some(v) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    t.send(req).await
}

#[tokio::test]
async fn cookie_session_needs_the_csrf_header_and_links_work_once() {
    let mut t = common::acme().await;
    // More sign-in requests than one address may make at once.
    let limits = gatehouse_host::limits::RateLimits {
        sign_in: gatehouse_host::limits::Budget {
            burst: 20,
            every: std::time::Duration::from_secs(1),
        },
        ..gatehouse_host::limits::RateLimits::STANDARD
    };
    t.host = t.host.clone().with_settings(gatehouse_host::Settings {
        rate_limits: Some(limits),
        ..Default::default()
    });
    t.app = t.host.router();
    let mails = t.int("SELECT COUNT(*) FROM outbox").await;

    // The same answer whatever the address: no enumeration.
    let mut answers = Vec::new();
    for email in ["olivia@acme.test", "nobody@acme.test", "OLIVIA@acme.test"] {
        let (s, b) = t
            .call(
                None,
                Method::POST,
                "/v1/auth/sign-in",
                Some(json!({"email": email})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        answers.push(b);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // A mail only for the real user (once: one a minute per address), to
    // the address stored for her, none for the unknown address.
    common::sign_in_link(&t.host.store, "olivia@acme.test").await;
    assert_eq!(t.int("SELECT COUNT(*) FROM outbox").await, mails + 1);
    assert_eq!(
        t.int("SELECT COUNT(*) FROM outbox WHERE to_email = 'olivia@acme.test'")
            .await,
        1
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM outbox WHERE lower(to_email) = 'nobody@acme.test'")
            .await,
        0
    );
    let (s, b) = t
        .call(
            None,
            Method::POST,
            "/v1/auth/sign-in",
            Some(json!({"email": "not-an-address"})),
        )
        .await;
    error(s, &b, StatusCode::BAD_REQUEST, "bad_request");

    // A minute later, a link from this client.
    t.clock.advance(61);
    let (binding, token) = link_for(&t, "olivia@acme.test").await;

    // Redeem: an HttpOnly, SameSite=Strict cookie and a csrf value.
    let redeem = || {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/auth/redeem")
            .header(header::COOKIE, &binding)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"token": token, "label": "Firefox"}).to_string(),
            ))
            .unwrap()
    };
    let (s, headers, bytes) = raw(&t, redeem()).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let set = session_cookie(&headers);
    assert!(set.starts_with("gh_session="), "{set}");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    let session: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(session["user"], "olivia");
    let csrf = session["csrf"].as_str().unwrap().to_owned();
    assert!(csrf.len() >= 16, "{session}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let secret = &cookie["gh_session=".len()..];
    assert!(secret.len() >= 32, "{set}");
    assert!(
        !String::from_utf8_lossy(&bytes).contains(secret),
        "the cookie secret is also in the body"
    );
    let browser = Browser { cookie, csrf };

    // The link works once.
    let (s, _, bytes) = raw(&t, redeem()).await;
    let b: Value = serde_json::from_slice(&bytes).unwrap();
    let m = error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(m.contains("used"), "{m}");
    let (s, b) = t
        .call(
            None,
            Method::POST,
            "/v1/auth/redeem",
            Some(json!({"token": "ghl_forged"})),
        )
        .await;
    error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");

    // Reads need no CSRF header.
    let (s, b) = browser_call(&t, &browser, None, Method::GET, "/v1/accounts", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // A change without (or with a wrong) X-CSRF-Token is refused; nothing changes.
    let before = t.state().await;
    let audits = t.int("SELECT COUNT(*) FROM audit").await;
    let suspend = "/v1/accounts/agency/members/bea/suspend";
    for csrf in [None, Some("0123456789abcdef0123456789abcdef"), Some("")] {
        let (s, b) = browser_call(&t, &browser, csrf, Method::POST, suspend, None).await;
        let m = error(s, &b, StatusCode::FORBIDDEN, "csrf");
        assert!(m.contains("X-CSRF-Token"), "{m}");
    }
    let (s, b) = browser_call(
        &t,
        &browser,
        None,
        Method::PUT,
        "/v1/me/notifications",
        Some(json!({"email": false, "sms": true})),
    )
    .await;
    error(s, &b, StatusCode::FORBIDDEN, "csrf");
    let (s, b) = browser_call(&t, &browser, None, Method::POST, "/v1/auth/sign-out", None).await;
    error(s, &b, StatusCode::FORBIDDEN, "csrf");
    assert_eq!(t.state().await, before);
    assert_eq!(t.int("SELECT COUNT(*) FROM audit").await, audits);
    assert_eq!(
        t.int("SELECT notify_sms FROM users WHERE id = 'olivia'")
            .await,
        0
    );

    // With it, it works, recorded as coming from the UI.
    let (s, b) = browser_call(
        &t,
        &browser,
        Some(&browser.csrf),
        Method::POST,
        suspend,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        t.rows("SELECT status FROM memberships WHERE account_id = 'agency' AND user_id = 'bea'")
            .await[0]["status"],
        "suspended"
    );
    let audit = t.last_audit().await;
    assert_eq!(audit["action"], "suspend");
    assert_eq!(audit["source"], "ui");
    assert_eq!(audit["actor"], "user:olivia");

    // Another session's CSRF value does not fit this one (a minute later:
    // one sign-in mail a minute per address).
    t.clock.advance(61);
    let other = sign_in(&t, "olivia@acme.test").await;
    let (s, b) = browser_call(
        &t,
        &browser,
        Some(&other.csrf),
        Method::POST,
        "/v1/accounts/agency/members/bea/unsuspend",
        None,
    )
    .await;
    error(s, &b, StatusCode::FORBIDDEN, "csrf");

    // An API token (bearer) needs no CSRF header.
    let (s, b) = t
        .post(
            "olivia",
            "/v1/accounts/agency/members/bea/unsuspend",
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Sign out clears the cookie; the session is gone.
    let (s, headers, bytes) = raw(
        &t,
        Request::builder()
            .method(Method::POST)
            .uri("/v1/auth/sign-out")
            .header(header::COOKIE, &browser.cookie)
            .header("x-csrf-token", &browser.csrf)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.contains("Max-Age=0"), "{set}");
    let (s, b) = browser_call(&t, &browser, None, Method::GET, "/v1/accounts", None).await;
    error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, b) = browser_call(&t, &other, None, Method::GET, "/v1/accounts", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// Replaces every `from` with a placeholder, so two answers about
/// different ids can be compared.
fn masked(v: &Value, from: &[&str]) -> String {
    let mut s = v.to_string();
    for f in from {
        s = s.replace(&format!("`{f}`"), "`?`");
    }
    s
}

#[tokio::test]
async fn strangers_learn_nothing_about_accounts() {
    let t = common::acme().await;
    let before = t.state().await;
    let mut answers: Vec<(String, Value)> = Vec::new();
    let mut ask = async |method: Method, path: &str, body: Option<Value>| {
        let (s, b) = t.call(Some("stranger"), method, path, body).await;
        error(s, &b, StatusCode::NOT_FOUND, "not_found");
        answers.push((path.to_owned(), b));
    };
    // Reads.
    for tail in ["members", "invitations", "owner-removal-requests", "audit"] {
        ask(Method::GET, &format!("/v1/accounts/agency/{tail}"), None).await;
        ask(Method::GET, &format!("/v1/accounts/nope/{tail}"), None).await;
    }
    // Changes on a member who exists, one who does not, and an account that does not.
    for (account, user) in [("agency", "bea"), ("agency", "nobody"), ("nope", "bea")] {
        let m = format!("/v1/accounts/{account}/members/{user}");
        ask(Method::DELETE, &m, None).await;
        ask(Method::POST, &format!("{m}/suspend"), None).await;
        ask(
            Method::PUT,
            &format!("{m}/role"),
            Some(json!({"role": "basic"})),
        )
        .await;
    }
    for account in ["agency", "nope"] {
        ask(
            Method::POST,
            &format!("/v1/accounts/{account}/seats/buy"),
            Some(json!({"quantity": 1})),
        )
        .await;
        ask(
            Method::POST,
            &format!("/v1/accounts/{account}/owner-removal-requests"),
            Some(json!({"target": "olivia", "new_role": "none"})),
        )
        .await;
    }
    let accountish: Vec<String> = answers
        .iter()
        .map(|(_, b)| masked(b, &["agency", "nope"]))
        .collect();
    assert!(
        accountish.windows(2).all(|w| w[0] == w[1]),
        "a stranger can tell these apart: {answers:#?}"
    );

    // Invitations and owner-removal requests of an account the caller cannot
    // see answer like ones that do not exist.
    let mut by_id = Vec::new();
    for id in ["inv-pending", "inv-nope"] {
        for verb in ["resend", "revoke"] {
            let (s, b) = t
                .call(
                    Some("stranger"),
                    Method::POST,
                    &format!("/v1/invitations/{id}/{verb}"),
                    None,
                )
                .await;
            error(s, &b, StatusCode::NOT_FOUND, "not_found");
            by_id.push(masked(&b, &[id]));
        }
    }
    for id in ["req-pending", "req-nope"] {
        for verb in ["approve", "decline", "cancel"] {
            let (s, b) = t
                .call(
                    Some("stranger"),
                    Method::POST,
                    &format!("/v1/owner-removal-requests/{id}/{verb}"),
                    None,
                )
                .await;
            error(s, &b, StatusCode::NOT_FOUND, "not_found");
            by_id.push(masked(&b, &[id]));
        }
    }
    assert_eq!(by_id[0], by_id[2], "{by_id:#?}");
    assert_eq!(by_id[1], by_id[3], "{by_id:#?}");
    assert_eq!(by_id[4], by_id[7], "{by_id:#?}");
    assert_eq!(by_id[5], by_id[8], "{by_id:#?}");
    assert_eq!(by_id[6], by_id[9], "{by_id:#?}");
    for b in &by_id {
        assert!(!b.contains("agency"), "{b}");
    }
    assert_eq!(t.state().await, before);

    // The account switcher shows the stranger nothing.
    let (s, b) = t.get("stranger", "/v1/accounts").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accounts"], json!([]));
}

#[tokio::test]
async fn suspension_signs_out_of_that_account_only() {
    let t = common::acme().await;
    // Bob: basic on the agency, admin on its sub-account east; an API token
    // and a browser session.
    let browser = sign_in(&t, "bob@acme.test").await;
    let (s, b) = t.get("bob", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = browser_call(
        &t,
        &browser,
        None,
        Method::GET,
        "/v1/accounts/agency/members",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let (s, b) = t
        .post(
            "olivia",
            "/v1/accounts/agency/members/bob/suspend",
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // At once: every session of Bob has lost the agency.
    let before = t.state().await;
    let is_out = |s: StatusCode, b: &Value| {
        assert!(
            s == StatusCode::UNAUTHORIZED || s == StatusCode::NOT_FOUND,
            "{s} {b}"
        );
        no_internals(b);
    };
    let (s, b) = t.get("bob", "/v1/accounts/agency/members").await;
    is_out(s, &b);
    let (s, b) = browser_call(
        &t,
        &browser,
        None,
        Method::GET,
        "/v1/accounts/agency/members",
        None,
    )
    .await;
    is_out(s, &b);
    let (s, b) = t
        .call(
            Some("bob"),
            Method::PUT,
            "/v1/accounts/agency/members/bob/nickname",
            Some(json!({"nickname": "Bobby"})),
        )
        .await;
    is_out(s, &b);
    let (s, b) = browser_call(
        &t,
        &browser,
        Some(&browser.csrf),
        Method::POST,
        "/v1/accounts/agency/leave",
        None,
    )
    .await;
    is_out(s, &b);
    let (s, b) = t
        .post(
            "bob",
            "/v1/invitations",
            json!({"emails": ["friend@acme.test"], "accounts": [{"account": "agency", "role": "basic"}]}),
        )
        .await;
    is_out(s, &b);
    assert_eq!(t.state().await, before, "a signed-out session changed data");

    // The other account still works, from both sessions.
    let (s, b) = t.get("bob", "/v1/accounts/east/members").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = browser_call(
        &t,
        &browser,
        None,
        Method::GET,
        "/v1/accounts/east/members",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = browser_call(
        &t,
        &browser,
        Some(&browser.csrf),
        Method::PUT,
        "/v1/accounts/east/members/bob/nickname",
        Some(json!({"nickname": "Bob E."})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        t.rows("SELECT nickname FROM memberships WHERE account_id = 'east' AND user_id = 'bob'")
            .await[0]["nickname"],
        "Bob E."
    );
    let (s, b) = t.get("bob", "/v1/me").await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn a_broken_store_is_an_opaque_500() {
    let t = common::acme().await;
    sqlx::query("DROP TABLE outbox")
        .execute(t.host.store.pool())
        .await
        .unwrap();
    // Asking for a sign-in link answers the same, whatever the mailer
    // then meets: a known and an unknown address, and a broken outbox,
    // cannot be told apart (the mailer logs its failure).
    for email in ["olivia@acme.test", "nobody@acme.test"] {
        let (s, b) = t
            .call(
                None,
                Method::POST,
                "/v1/auth/sign-in",
                Some(json!({"email": email})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    // The mailer rolled the link back with its mail (given time to try).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        t.int("SELECT COUNT(*) FROM sign_in_links").await,
        0,
        "a link without its mail"
    );

    sqlx::query("DROP TABLE audit")
        .execute(t.host.store.pool())
        .await
        .unwrap();
    let before = t.state().await;
    let (s, b) = t
        .post(
            "olivia",
            "/v1/accounts/agency/members/bea/suspend",
            json!(null),
        )
        .await;
    let m = error(s, &b, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(!m.contains("audit"), "{m}");
    assert_eq!(t.state().await, before, "applied without its audit record");
}
