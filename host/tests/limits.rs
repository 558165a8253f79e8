//! Holding under abuse, over real TCP connections to an in-process host:
//! per-address budgets (429 with `Retry-After`, and the budget comes back),
//! one sign-in mail a minute per address, the time limit, the sign-in
//! link's confirm step and its binding to the browser that asked, and an
//! unauthenticated flood beside an owner's changes.

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode};
use gatehouse_host::limits::{Budget, RateLimits};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The Acme host with `settings`, served on a loopback port: (host, base).
async fn serve(settings: gatehouse_host::Settings) -> (common::T, String) {
    let mut t = common::acme().await;
    t.host = t.host.clone().with_settings(settings);
    t.app = t.host.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = t
        .app
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (t, base)
}

/// Budgets small enough to spend in a test: 3 at once, then one a second.
fn small() -> RateLimits {
    let b = Budget {
        burst: 3,
        every: Duration::from_secs(1),
    };
    RateLimits {
        sign_in: b,
        redeem: b,
        token: b,
        scim: b,
    }
}

async fn post(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, HeaderMap, Value) {
    let (s, h, b) = common::http(Method::POST, &format!("{base}{path}"), headers, Some(body)).await;
    (s, h, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn ask(base: &str, email: &str) -> (StatusCode, HeaderMap, Value) {
    post(base, "/v1/auth/sign-in", &[], json!({"email": email})).await
}

#[tokio::test]
async fn a_burst_gets_429_with_retry_after_and_the_budget_comes_back() {
    let (t, base) = serve(gatehouse_host::Settings {
        rate_limits: Some(small()),
        ..Default::default()
    })
    .await;
    let mails = t.int("SELECT COUNT(*) FROM outbox").await;
    for i in 0..3 {
        let (s, _, b) = ask(&base, &format!("nobody{i}@acme.test")).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    let (s, h, b) = ask(&base, "olivia@acme.test").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert_eq!(b["error"]["code"], "rate_limited", "{b}");
    assert_eq!(h["retry-after"], "1", "{h:?}");
    // Refused before any work: no mail for olivia.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.int("SELECT COUNT(*) FROM outbox").await, mails);

    // Other doors have their own budget; SCIM answers in its own shape.
    for _ in 0..3 {
        let (s, _, _) =
            common::http(Method::GET, &format!("{base}/scim/v2/Users"), &[], None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, h, b) = common::http(Method::GET, &format!("{base}/scim/v2/Users"), &[], None).await;
    let b: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert_eq!(
        b["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{b}"
    );
    assert_eq!(b["status"], "429", "{b}");
    assert_eq!(h["content-type"], "application/scim+json", "{h:?}");
    assert!(h.contains_key("retry-after"), "{h:?}");

    // After the wait it says, the door opens again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, b) = ask(&base, "olivia@acme.test").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    common::sign_in_link(&t.host.store, "olivia@acme.test").await;
    assert_eq!(t.host.limiter().limited(), 2);
    // Counted for the operator, by route template.
    let metrics = t.host.metrics().encode().unwrap();
    for route in ["/v1/auth/sign-in", "/scim/v2/Users"] {
        let line = format!("gatehouse_rate_limited_total{{route=\"{route}\"}} 1");
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn one_sign_in_mail_a_minute_per_address_to_the_address_stored() {
    let (t, base) = serve(gatehouse_host::Settings::default()).await;
    let to_olivia = "SELECT COUNT(*) FROM outbox WHERE to_email = 'olivia@acme.test'";
    // Typed in capitals: the mail goes to the address she gave.
    ask(&base, "OLIVIA@ACME.TEST").await;
    ask(&base, "olivia@acme.test").await;
    // The mailer takes requests in order: once ada's mail is out, both of
    // olivia's requests were handled.
    ask(&base, "ada@acme.test").await;
    common::sign_in_link(&t.host.store, "ada@acme.test").await;
    assert_eq!(t.int(to_olivia).await, 1);
    assert_eq!(
        t.int("SELECT COUNT(*) FROM outbox WHERE to_email <> lower(to_email)")
            .await,
        0
    );
    // A minute later, another.
    t.clock.advance(61);
    ask(&base, "olivia@acme.test").await;
    ask(&base, "bea@acme.test").await;
    common::sign_in_link(&t.host.store, "bea@acme.test").await;
    assert_eq!(t.int(to_olivia).await, 2);
}

#[tokio::test]
async fn a_link_signs_in_only_the_browser_that_asked_after_a_confirm_step() {
    let (t, base) = serve(gatehouse_host::Settings::default()).await;
    let (s, h, _) = ask(&base, "bea@acme.test").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let set = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(
        set.iter().any(|c| c.starts_with("gh_sign_in=")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Strict")
            && c.contains("Max-Age=900")),
        "{set:?}"
    );
    let mine = common::binding_cookie(&h).unwrap();
    let link = common::sign_in_link(&t.host.store, "bea@acme.test").await;
    // Another browser: one that asked for a link of its own, and one that
    // asked for nothing.
    let (_, h, _) = ask(&base, "nobody@acme.test").await;
    let theirs = common::binding_cookie(&h).unwrap();
    assert_ne!(mine, theirs);
    for cookie in [Some(theirs.as_str()), None] {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        for path in ["/v1/auth/link", "/v1/auth/redeem"] {
            let (s, h, b) = post(&base, path, &headers, json!({"token": link})).await;
            assert_eq!(
                (s, b["error"]["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("other_browser")),
                "{path}: {b}"
            );
            assert!(
                b["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("another browser"),
                "{b}"
            );
            assert!(!h.contains_key("set-cookie"), "{path}: {h:?}");
        }
    }
    // The confirm step: whose link it is, and nothing used up (twice).
    for _ in 0..2 {
        let (s, _, b) = post(
            &base,
            "/v1/auth/link",
            &[("cookie", &mine)],
            json!({"token": link}),
        )
        .await;
        assert_eq!(
            (s, &b),
            (StatusCode::OK, &json!({"email": "bea@acme.test"}))
        );
    }
    assert_eq!(
        t.int("SELECT COUNT(*) FROM sessions WHERE user_id = 'bea' AND kind = 'browser'")
            .await,
        0
    );
    // Then the asking browser signs in, once.
    let (s, h, b) = post(
        &base,
        "/v1/auth/redeem",
        &[("cookie", &mine)],
        json!({"token": link}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["user"], "bea");
    let set = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(set.iter().any(|c| c.starts_with("gh_session=")), "{set:?}");
    assert!(
        set.iter()
            .any(|c| c.starts_with("gh_sign_in=;") && c.contains("Max-Age=0")),
        "{set:?}"
    );
    let (s, _, b) = post(
        &base,
        "/v1/auth/redeem",
        &[("cookie", &mine)],
        json!({"token": link}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown, used or expired"),
        "{b}"
    );
}

#[tokio::test]
async fn known_and_unknown_addresses_get_the_same_answer() {
    let (_t, base) = serve(gatehouse_host::Settings {
        rate_limits: None,
        ..Default::default()
    })
    .await;
    let shape = |s: StatusCode, h: &HeaderMap, b: &Value| {
        let cookies: Vec<String> = h
            .get_all("set-cookie")
            .iter()
            .map(|v| {
                let v = v.to_str().unwrap();
                let (name, rest) = v.split_once('=').unwrap();
                format!("{name}=…{}", &rest[rest.find(';').unwrap()..])
            })
            .collect();
        (s, b.clone(), cookies)
    };
    let mut times = [Vec::new(), Vec::new()];
    let mut shapes = Vec::new();
    for round in 0..40 {
        for (i, email) in ["olivia@acme.test", "nobody@acme.test"].iter().enumerate() {
            let email = if round % 2 == 0 {
                email.to_string()
            } else {
                email.to_uppercase()
            };
            let started = Instant::now();
            let (s, h, b) = ask(&base, &email).await;
            times[i].push(started.elapsed());
            shapes.push(shape(s, &h, &b));
        }
    }
    assert!(
        shapes.windows(2).all(|w| w[0] == w[1]),
        "{:?}",
        &shapes[..2]
    );
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (known, unknown) = (median(&mut times[0]), median(&mut times[1]));
    println!("sign-in answer, median of 40: known address {known:?}, unknown address {unknown:?}");
}

#[tokio::test]
async fn a_slow_request_times_out_and_changes_nothing() {
    let (t, base) = serve(gatehouse_host::Settings {
        request_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let token = t.token("olivia").await;
    let before = t.state().await;
    // A body promised and never finished.
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/invitations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"emails\""
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
    println!("a body that never came: 503 after {waited:?} (limit 1 s)");
    assert_eq!(t.state().await, before);
}

#[tokio::test]
async fn an_unauthenticated_flood_does_not_hold_up_an_owner() {
    // Budgets off: the flood must be served, not refused, to show it never
    // waits on (or holds) the write lock.
    let (t, base) = serve(gatehouse_host::Settings {
        rate_limits: None,
        ..Default::default()
    })
    .await;
    let token = t.token("olivia").await;
    let auth = format!("Bearer {token}");
    let changes = |n: usize| {
        let (base, auth) = (base.clone(), auth.clone());
        async move {
            let mut took = Vec::new();
            for i in 0..n {
                let verb = if i % 2 == 0 { "suspend" } else { "unsuspend" };
                let started = Instant::now();
                let (s, _, b) = post(
                    &base,
                    &format!("/v1/accounts/agency/members/bea/{verb}"),
                    &[("authorization", &auth)],
                    Value::Null,
                )
                .await;
                took.push(started.elapsed());
                assert_eq!(s, StatusCode::OK, "{b}");
            }
            took.sort();
            took
        }
    };
    let p = |v: &[Duration], q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    // The flood alone takes the write lock not once.
    let writes = t.host.store.writes_begun();
    for i in 0..100 {
        ask(&base, &format!("alone{i}@nowhere.test")).await;
        post(
            &base,
            "/v1/auth/redeem",
            &[],
            json!({"token": format!("ghl_{i}")}),
        )
        .await;
    }
    // (the mailer handled the asks in order: a known address's mail
    // after them marks the end, and that one does take the lock)
    ask(&base, "oscar@acme.test").await;
    common::sign_in_link(&t.host.store, "oscar@acme.test").await;
    assert_eq!(
        t.host.store.writes_begun(),
        writes + 1,
        "unauthenticated requests took the write lock"
    );
    let alone = changes(60).await;
    let links = t.int("SELECT COUNT(*) FROM sign_in_links").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for w in 0..8 {
        let (base, stop) = (base.clone(), stop.clone());
        flood.push(tokio::spawn(async move {
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (s, _, _) = if sent.is_multiple_of(2) {
                    ask(&base, &format!("flood{w}-{sent}@nowhere.test")).await
                } else {
                    post(
                        &base,
                        "/v1/auth/redeem",
                        &[("cookie", "gh_sign_in=00000000000000000000000000000000")],
                        json!({"token": format!("ghl_{w}x{sent}")}),
                    )
                    .await
                };
                assert!(matches!(s.as_u16(), 202 | 401), "{s}");
                sent += 1;
            }
            sent
        }));
    }
    let flooded = changes(60).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = 0;
    for f in flood {
        sent += f.await.unwrap();
    }
    assert_eq!(
        t.int("SELECT COUNT(*) FROM sign_in_links").await,
        links,
        "the flood wrote"
    );
    println!(
        "owner changes, 60 each: alone p50 {:?} p99 {:?}; beside {sent} unauthenticated requests (8 clients) p50 {:?} p99 {:?}",
        p(&alone, 0.5),
        p(&alone, 0.99),
        p(&flooded, 0.5),
        p(&flooded, 0.99)
    );
}
