//! The demo fence: the demo mailbox (`GET /v1/demo/mailbox`, every sign-in
//! link in the outbox) answers only a host started with `--demo`, on a store
//! that `--demo` created, to a peer on loopback; `--demo` on a store with
//! other data refuses to start and says what to do. Real `gatehouse serve`
//! processes over sockets (SQLite, or PostgreSQL with `GATEHOUSE_TEST_PG`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};

use axum::http::{Method, StatusCode};
use serde_json::Value;

/// `gatehouse serve --demo` on `db`, listening on `listen`.
fn serve_demo(db: &str, listen: &str) -> common::Server {
    let module = common::module_path();
    common::serve(
        "demo",
        &[
            "--db",
            db,
            "--module",
            module.to_str().unwrap(),
            "--listen",
            listen,
            "--www",
            "/nonexistent",
            "--demo",
        ],
    )
}

/// Asks for a sign-in link for olivia, then reads the mailbox at `base`
/// from wherever this process connects from: (status, body).
async fn mailbox(base: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    common::ask_sign_in(base, "olivia@acme.test").await;
    // The mailer sends after the answer: an open mailbox is read until the
    // link is there (5 s at most).
    for _ in 0..200 {
        let (s, _, body) = common::http(
            Method::GET,
            &format!("{base}/v1/demo/mailbox?to=olivia@acme.test"),
            headers,
            None,
        )
        .await;
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if s != StatusCode::OK || holds_a_link(&body) {
            return (s, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no sign-in link in the mailbox at {base} after 5 s")
}

fn holds_a_link(body: &Value) -> bool {
    body["mails"].as_array().is_some_and(|m| {
        m.iter()
            .any(|m| m["body"].as_str().unwrap_or_default().contains("ghl_"))
    })
}

#[tokio::test]
async fn the_mailbox_is_not_there_without_demo() {
    let t = common::acme().await;
    let server = common::serve_api("plain", &t.db.location, &[]);
    let (s, body) = mailbox(&server.base, &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert!(!holds_a_link(&body), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--demo"),
        "{body}"
    );
}

/// A query the mailbox does not take is the API's JSON 400 (it was axum's
/// text/plain rejection, a status and a content type the document did not
/// list); behind the fence, so elsewhere it is still the fence's answer.
#[tokio::test]
async fn the_mailbox_answers_a_bad_query_in_the_api_error_shape() {
    let dir = common::TempDir::new();
    let db = common::TestDb::new(&dir, "demo.db");
    let server = serve_demo(&db.location, "127.0.0.1:0");
    let (s, headers, body) = common::http(
        Method::GET,
        &format!("{}/v1/demo/mailbox?nope=1", server.base),
        &[],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/json",
        "{}",
        String::from_utf8_lossy(&body)
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("nope"),
        "{body}"
    );
    let (s, _, _) = common::http(
        Method::GET,
        &format!("{}/v1/demo/mailbox?nope=1", server.base),
        &[("x-forwarded-for", "198.51.100.7")],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the fence answers first");
}

#[tokio::test]
async fn a_demo_store_serves_the_mailbox_on_loopback_and_starts_again() {
    let dir = common::TempDir::new();
    let db = common::TestDb::new(&dir, "demo.db");
    let first = serve_demo(&db.location, "127.0.0.1:0");
    let (s, body) = mailbox(&first.base, &[]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(holds_a_link(&body), "{body}");
    first.kill();
    // `cargo xtask run` again on the same demo store: it starts, the
    // mailbox still answers.
    let again = serve_demo(&db.location, "127.0.0.1:0");
    let (s, body) = mailbox(&again.base, &[]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(holds_a_link(&body), "{body}");
    // A request a proxy forwarded came from elsewhere, whatever the socket says.
    for forwarded in [
        ("x-forwarded-for", "198.51.100.7"),
        ("forwarded", "for=198.51.100.7"),
        ("x-real-ip", "198.51.100.7"),
    ] {
        let (s, body) = mailbox(&again.base, &[forwarded]).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{forwarded:?}: {body}");
        assert!(!holds_a_link(&body), "{body}");
        assert_eq!(body["error"]["code"], "loopback_only", "{body}");
    }
}

/// This machine's address toward the outside, if it has one that is not
/// loopback (no packet is sent: a UDP `connect` only picks a route).
fn outside_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn the_mailbox_refuses_a_peer_that_is_not_on_loopback() {
    let Some(ip) = outside_address() else {
        // The decision itself is tested below on SocketAddrs.
        println!("no non-loopback address on this machine: only the loopback decision is tested");
        return;
    };
    let dir = common::TempDir::new();
    let db = common::TestDb::new(&dir, "demo.db");
    let server = serve_demo(&db.location, "0.0.0.0:0");
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let outside = format!("http://{}", SocketAddr::new(ip, port.parse().unwrap()));
    let (s, body) = mailbox(&outside, &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "from {ip}: {body}");
    assert!(!holds_a_link(&body), "{body}");
    assert_eq!(body["error"]["code"], "loopback_only", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("loopback"),
        "{body}"
    );
    // The same host answers on loopback.
    let (s, body) = mailbox(&format!("http://127.0.0.1:{port}"), &[]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[test]
fn only_loopback_peers_are_loopback() {
    use gatehouse_host::demo::is_loopback_peer;
    for (addr, loopback) in [
        ("127.0.0.1:5000", true),
        ("127.3.2.1:5000", true),
        ("[::1]:5000", true),
        ("[::ffff:127.0.0.1]:5000", true),
        ("192.0.2.2:5000", false),
        ("10.0.0.1:5000", false),
        ("0.0.0.0:5000", false),
        ("[::ffff:192.0.2.2]:5000", false),
        ("[fd00::2]:5000", false),
        ("[::]:5000", false),
    ] {
        let addr: SocketAddr = addr.parse().unwrap();
        assert_eq!(is_loopback_peer(Some(addr)), loopback, "{addr}");
    }
    // No peer address (a router driven in process): not loopback.
    assert!(!is_loopback_peer(None));
}

/// `gatehouse serve --demo` on `db` until it listens or exits:
/// (exit code, everything it printed).
fn demo_refusal(db: &str) -> (Option<i32>, String) {
    let module = common::module_path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--www",
            "/nonexistent",
        ])
        .args(["--db", db, "--module", module.to_str().unwrap()])
        .current_dir(common::root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut listening = false;
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap())) {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        listening = line.starts_with("gatehouse listening on");
        if listening {
            break;
        }
    }
    if listening {
        child.kill().unwrap();
    }
    let status = child.wait().unwrap();
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap_or_default();
    (
        (!listening).then(|| status.code()).flatten(),
        format!("{out}{err}"),
    )
}

#[tokio::test]
async fn demo_refuses_a_store_it_did_not_create() {
    // A store with data of its own (the Acme accounts, seeded as an
    // operator's import would be, without --demo).
    let t = common::acme().await;
    let users_before = t.int("SELECT COUNT(*) FROM users").await;
    let (code, text) = demo_refusal(&t.db.location);
    assert_eq!(
        code,
        Some(1),
        "--demo must refuse to serve this store:\n{text}"
    );
    assert!(
        text.contains("--demo") && text.contains("did not create"),
        "the refusal should say why:\n{text}"
    );
    assert!(
        text.contains("without --demo") && text.contains("new store"),
        "the refusal should say what to do:\n{text}"
    );
    assert_eq!(t.int("SELECT COUNT(*) FROM users").await, users_before);

    // One user is data too.
    let dir = common::TempDir::new();
    let db = common::TestDb::new(&dir, "one.db");
    let store = db.open().await;
    sqlx::query(
        "INSERT INTO users (id, email, email_lower, name, created_at) VALUES ('u1', 'u1@x.test', 'u1@x.test', 'U', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let (code, text) = demo_refusal(&db.location);
    assert_eq!(code, Some(1), "{text}");
}
