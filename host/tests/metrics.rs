//! Observability: `GET /metrics` (Prometheus text) counts decisions by
//! action, outcome and policy, times the write path, names the live module
//! and counts hot swaps; it answers loopback peers with no proxy header, or
//! the `--metrics-token` bearer; `serve --log-format json` logs one JSON
//! line per decision. In process through the router, and a real `gatehouse
//! serve` over sockets (SQLite, or PostgreSQL with `GATEHOUSE_TEST_PG`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use gatehouse_host::{Clock, Gate, Host, Settings};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "metrics-test-token-7f3a";

fn with_token(host: Host) -> Host {
    host.with_settings(Settings {
        metrics_token: Some(TOKEN.into()),
        ..Settings::default()
    })
}

/// `GET /metrics` through the router (no socket: no loopback peer) with
/// these headers: (status, content type, body).
async fn scrape(app: &axum::Router, headers: &[(&str, &str)]) -> (StatusCode, String, String) {
    let mut req = Request::builder().method(Method::GET).uri("/metrics");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

async fn metrics_text(app: &axum::Router) -> String {
    let bearer = format!("Bearer {TOKEN}");
    let (s, ct, body) = scrape(app, &[("authorization", &bearer)]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    body
}

/// The value of the sample `name{labels}` (labels in the order the host
/// writes them), if the text has it.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{}}} ", labels.join(","))
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn decisions_and_changes_are_counted_by_action_outcome_and_policy() {
    let mut t = common::acme().await;
    t.host = with_token(t.host.clone());
    t.app = t.host.router();

    // Denied (Rita owns resources; a basic member removes nobody), allowed,
    // and one whose ids name no row.
    for (user, path, want) in [
        (
            "olivia",
            "/v1/accounts/agency/members/rita",
            StatusCode::FORBIDDEN,
        ),
        (
            "bea",
            "/v1/accounts/agency/members/ada",
            StatusCode::FORBIDDEN,
        ),
        ("olivia", "/v1/accounts/agency/members/bea", StatusCode::OK),
    ] {
        let (s, body) = t.call(Some(user), Method::DELETE, path, None).await;
        assert_eq!(s, want, "{user} DELETE {path}: {body}");
    }
    let (s, body) = t
        .call(
            Some("olivia"),
            Method::DELETE,
            "/v1/accounts/agency/members/nobody-here",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    t.host.metrics().rate_limited("/v1/auth/sign-in");

    let text = metrics_text(&t.app).await;

    // Every audited decision is counted once under each determining policy.
    let mut want: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    let audited = t
        .rows("SELECT action, decision, outcome, reasons, repeats FROM audit ORDER BY id")
        .await;
    assert_eq!(audited.len(), 3, "{audited:?}");
    for row in &audited {
        let outcome = match (row["decision"].as_str().unwrap(), row["outcome"].as_str()) {
            ("allowed", _) => "allow",
            (_, Some("error")) => "error",
            _ => "deny",
        };
        let reasons: Value = match &row["reasons"] {
            Value::String(s) => serde_json::from_str(s).unwrap(),
            v => v.clone(),
        };
        let mut policies: Vec<String> = reasons
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["policy"].as_str().unwrap().to_owned())
            .collect();
        policies.dedup();
        if policies.is_empty() {
            policies.push(String::new());
        }
        let repeats = row["repeats"].as_f64().unwrap_or(1.0);
        for p in policies {
            *want
                .entry((
                    row["action"].as_str().unwrap().to_owned(),
                    outcome.to_owned(),
                    p,
                ))
                .or_default() += repeats;
        }
    }
    assert!(want.keys().any(|(_, o, _)| o == "deny"), "{want:?}");
    assert!(want.keys().any(|(_, o, _)| o == "allow"), "{want:?}");
    for ((action, outcome, policy), n) in &want {
        let got = sample(
            &text,
            "gatehouse_decisions_total",
            &[("action", action), ("outcome", outcome), ("policy", policy)],
        );
        assert_eq!(
            got,
            Some(*n),
            "gatehouse_decisions_total for {action} {outcome} {policy:?}:\n{text}"
        );
    }

    // The write path's histogram: two denials, one applied change, one
    // whose ids named no row.
    let action = audited[0]["action"].as_str().unwrap();
    for (action, outcome, n) in [
        (action, "deny", 2.0),
        (action, "allow", 1.0),
        ("unresolved", "error", 1.0),
    ] {
        assert_eq!(
            sample(
                &text,
                "gatehouse_change_seconds_count",
                &[("action", action), ("outcome", outcome)]
            ),
            Some(n),
            "gatehouse_change_seconds_count {action} {outcome}:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("gatehouse_change_seconds_bucket{")
                && l.contains("le=\"0.0005\"")),
        "{text}"
    );

    // The live module, swaps, the rate limit's counter, requests by route
    // template (never a raw path with ids).
    let (module, policy) = t.host.gate.hashes();
    assert_eq!(
        sample(
            &text,
            "gatehouse_module_info",
            &[("module_sha256", &module), ("policy_sha256", &policy)]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "gatehouse_hot_swaps_total", &[]), Some(0.0));
    assert_eq!(
        sample(
            &text,
            "gatehouse_rate_limited_total",
            &[("route", "/v1/auth/sign-in")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "gatehouse_http_requests_total",
            &[
                ("route", "/v1/accounts/{account}/members/{user}"),
                ("method", "DELETE"),
                ("status", "403")
            ]
        ),
        Some(2.0),
        "{text}"
    );
    for id in ["rita", "nobody-here", "olivia"] {
        assert!(!text.contains(id), "`{id}` in the metrics:\n{text}");
    }
}

#[tokio::test]
async fn metrics_refuse_a_peer_that_is_not_local_without_the_token() {
    let mut t = common::acme().await;
    t.host = with_token(t.host.clone());
    t.app = t.host.router();
    // In process there is no socket, so no loopback peer.
    for headers in [
        vec![],
        vec![("authorization", "Bearer not-the-token")],
        vec![("authorization", "Bearer ")],
        vec![("authorization", TOKEN)],
    ] {
        let (s, _, body) = scrape(&t.app, &headers).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "loopback_only", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("--metrics-token") && message.contains("loopback"),
            "{message}"
        );
    }
    metrics_text(&t.app).await;
    // Without a token set, no bearer opens it.
    let plain = common::acme().await;
    let (s, _, body) = scrape(&plain.app, &[("authorization", "Bearer ")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn a_hot_swap_is_counted_and_the_module_info_follows_it() {
    let dir = common::TempDir::new();
    let db = common::TestDb::new(&dir, "swap.db");
    let store = db.open().await;
    // A gate of its own: this test swaps it.
    let gate = Gate::from_file(&common::module_path()).unwrap();
    let host = with_token(Host::new(
        store.clone(),
        gate.clone(),
        Clock::manual(common::NOW),
    ));
    let app = host.router();
    let (old_module, old_policy) = gate.hashes();

    let text = metrics_text(&app).await;
    assert_eq!(sample(&text, "gatehouse_hot_swaps_total", &[]), Some(0.0));
    assert_eq!(
        sample(
            &text,
            "gatehouse_module_info",
            &[
                ("module_sha256", &old_module),
                ("policy_sha256", &old_policy)
            ]
        ),
        Some(1.0),
        "{text}"
    );

    // Another policy set, published; the host picks it up as its watcher does.
    let policies = common::policies_with("metrics-swap", "r16_leave.cedar", |t| {
        format!("// Reviewed for the metrics test.\n{t}")
    });
    let bundle = gatehouse_bake::read_policies(&policies).unwrap();
    let old = std::fs::read(common::module_path()).unwrap();
    let baked = gatehouse_bake::bake_bytes(&old, &bundle).unwrap();
    gatehouse_host::versions::record(
        &store,
        &gatehouse_host::versions::NewVersion {
            module: &baked.module,
            module_sha256: &baked.module_sha256,
            policy_hash: &baked.policy_hash,
            author: "metrics test",
            message: "a comment",
            at: common::NOW,
            rollback_of: None,
            precompressed: None,
            seen: gatehouse_host::versions::Seen::Version(None),
        },
    )
    .await
    .unwrap();
    let v = gatehouse_host::versions::refresh(&gate, &store, None)
        .await
        .unwrap();
    assert_eq!(
        v.map(|v| v.module_sha256),
        Some(baked.module_sha256.clone())
    );

    let text = metrics_text(&app).await;
    assert_eq!(sample(&text, "gatehouse_hot_swaps_total", &[]), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "gatehouse_module_info",
            &[
                ("module_sha256", &baked.module_sha256),
                ("policy_sha256", &baked.policy_hash)
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains(&old_module),
        "the old module is gone:\n{text}"
    );
    assert_eq!(
        text.matches("gatehouse_module_info{").count(),
        1,
        "one live module:\n{text}"
    );
}

/// This machine's address toward the outside, if it has one that is not
/// loopback (no packet is sent: a UDP `connect` only picks a route).
fn outside_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// A `gatehouse serve` whose standard error (its log) is kept, line by line.
struct Logged {
    child: std::process::Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_logged(args: &[&str]) -> Logged {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("serve")
        .args(args)
        .current_dir(common::root())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let keep = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            println!("[serve stderr] {line}");
            keep.lock().unwrap().push(line);
        }
    });
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("the server exited").unwrap();
        if let Some(rest) = line.strip_prefix("gatehouse listening on http://") {
            let addr = rest.split_whitespace().next().unwrap();
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Logged { child, port, log }
}

#[tokio::test]
async fn serve_answers_metrics_to_loopback_or_the_token_and_logs_decisions_as_json() {
    let t = common::acme().await;
    // A token made as the operator makes one (the server's clock is the
    // system's, not the test's).
    let (code, out) = common::gatehouse(&[
        "token",
        "--db",
        &t.db.location,
        "--email",
        "olivia@acme.test",
    ]);
    assert_eq!(code, 0, "{out}");
    let olivia = format!("Bearer {}", out.trim());
    let module = common::module_path();
    let server = serve_logged(&[
        "--db",
        &t.db.location,
        "--module",
        module.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
        "--www",
        "/nonexistent",
        "--log-format",
        "json",
        "--metrics-token",
        TOKEN,
    ]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let (s, _, body) = common::http(
        Method::DELETE,
        &format!("{base}/v1/accounts/agency/members/rita"),
        &[("authorization", &olivia)],
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );

    // Loopback, no proxy header: open.
    let metrics = format!("{base}/metrics");
    let (s, h, body) = common::http(Method::GET, &metrics, &[], None).await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(
        h[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        text.contains("gatehouse_decisions_total{action=\"remove_member\",outcome=\"deny\""),
        "{text}"
    );
    assert!(
        text.contains(
            "gatehouse_change_seconds_count{action=\"remove_member\",outcome=\"deny\"} 1"
        ),
        "{text}"
    );

    // Through a proxy: only with the token.
    let bearer = format!("Bearer {TOKEN}");
    for (headers, want) in [
        (
            vec![("x-forwarded-for", "198.51.100.7")],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![("forwarded", "for=198.51.100.7")],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![
                ("x-real-ip", "198.51.100.7"),
                ("authorization", "Bearer wrong"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![
                ("x-forwarded-for", "198.51.100.7"),
                ("authorization", bearer.as_str()),
            ],
            StatusCode::OK,
        ),
    ] {
        let (s, _, body) = common::http(Method::GET, &metrics, &headers, None).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(s, want, "{headers:?}: {body}");
        if want == StatusCode::FORBIDDEN {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["code"], "loopback_only", "{v}");
        } else {
            assert!(body.contains("gatehouse_module_info{"), "{body}");
        }
    }

    // From another address of this machine: only with the token.
    if let Some(ip) = outside_address() {
        let outside = format!("http://{}/metrics", SocketAddr::new(ip, server.port));
        let (s, _, body) = common::http(Method::GET, &outside, &[], None).await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "from {ip}: {}",
            String::from_utf8_lossy(&body)
        );
        let (s, _, _) =
            common::http(Method::GET, &outside, &[("authorization", &bearer)], None).await;
        assert_eq!(s, StatusCode::OK, "from {ip} with the token");
    } else {
        println!("no non-loopback address on this machine: the proxy headers stand for it");
    }

    // The log: JSON lines, one of them the decision, in its request's span.
    let deadline = Instant::now() + Duration::from_secs(10);
    let decision = loop {
        let found = server.log.lock().unwrap().iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["target"] == "gatehouse::decision" && v["action"] == "remove_member").then_some(v)
        });
        if let Some(v) = found {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no JSON decision line in the log: {:?}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(decision["level"], "INFO", "{decision}");
    assert_eq!(decision["message"], "decision", "{decision}");
    assert_eq!(decision["outcome"], "deny", "{decision}");
    assert!(decision["module_outcome"].is_string(), "{decision}");
    assert!(
        decision["policies"].as_str().is_some_and(|p| !p.is_empty()),
        "{decision}"
    );
    assert!(decision["duration_us"].is_u64(), "{decision}");
    assert!(decision["timestamp"].is_string(), "{decision}");
    assert_eq!(
        decision["span"]["route"], "/v1/accounts/{account}/members/{user}",
        "{decision}"
    );
    assert_eq!(
        decision["span"]["path"], "/v1/accounts/agency/members/rita",
        "{decision}"
    );
    // Every line on standard error is JSON, the access lines among them.
    let log = server.log.lock().unwrap().clone();
    for line in &log {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    assert!(
        log.iter().any(
            |l| l.contains("\"target\":\"tower_http::trace::on_response\"")
                && l.contains("\"status\":403")
        ),
        "{log:?}"
    );
}
