//! Mail the rules require is written to the outbox with its change and
//! delivered over real SMTP (Python's standard-library `smtpd` debugging
//! server listening on loopback prints what it receives).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use axum::http::{Method, StatusCode};
use gatehouse_host::outbox::{self, Smtp};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn removal_mail_is_queued_with_the_change_and_delivered_over_smtp() {
    let t = common::acme().await;
    let (s, body) = t
        .call(
            Some("olivia"),
            Method::DELETE,
            "/v1/accounts/agency/members/bea",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let queued = t
        .rows("SELECT to_email, subject, sent_at FROM outbox")
        .await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["to_email"], "bea@acme.test");
    assert!(queued[0]["sent_at"].is_null());

    // A denied change queues nothing.
    let (s, _) = t
        .call(
            Some("olivia"),
            Method::DELETE,
            "/v1/accounts/agency/members/rita",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(t.int("SELECT COUNT(*) FROM outbox").await, 1);

    let port = free_port();
    let mut server = Command::new("python3")
        .args(["-W", "ignore", "-u", "-c", &format!(
            "import smtpd, asyncore\nsmtpd.DebuggingServer(('127.0.0.1', {port}), None)\nasyncore.loop()"
        )])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs the SMTP server");
    // Wait until it listens.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let smtp = Smtp {
        url: format!("smtp://127.0.0.1:{port}"),
        from: "Gatehouse <noreply@gatehouse.test>".into(),
    };
    let sent = outbox::deliver(&t.host.store, &smtp, common::NOW)
        .await
        .unwrap();
    assert_eq!(sent, 1);
    assert_eq!(
        t.int("SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL")
            .await,
        1
    );
    // Delivered once: a second pass sends nothing.
    assert_eq!(
        outbox::deliver(&t.host.store, &smtp, common::NOW)
            .await
            .unwrap(),
        0
    );
    server.kill().unwrap();
    let mut printed = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    let _ = server.wait();
    assert!(printed.contains("To: bea@acme.test"), "{printed}");
    assert!(
        printed.contains("You no longer have access to Acme Agency"),
        "{printed}"
    );
}

/// Several hosts deliver from one outbox on PostgreSQL: two stores (two
/// pools, as two hosts have) deliver at the same time, and every mail goes
/// out exactly once. SQLite has one host per file: nothing to race there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_delivering_at_once_send_each_mail_once() {
    const MAILS: i64 = 30;
    let t = common::empty().await;
    if !t.db.is_postgres() {
        println!("outbox: two hosts share an outbox on PostgreSQL only (GATEHOUSE_TEST_PG)");
        return;
    }
    for i in 0..MAILS {
        sqlx::query(
            "INSERT INTO outbox (created_at, to_email, subject, body) VALUES ($1, $2, $3, 'hello')",
        )
        .bind(common::NOW)
        .bind(format!("m{i}@hosts.test"))
        .bind(format!("mail {i}"))
        .execute(t.host.store.pool())
        .await
        .unwrap();
    }
    let port = free_port();
    let mut server = Command::new("python3")
        .args(["-W", "ignore", "-u", "-c", &format!(
            "import smtpd, asyncore\nsmtpd.DebuggingServer(('127.0.0.1', {port}), None)\nasyncore.loop()"
        )])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs the SMTP server");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let smtp = Smtp {
        url: format!("smtp://127.0.0.1:{port}"),
        from: "Gatehouse <noreply@gatehouse.test>".into(),
    };
    let (one, two) = (t.db.open().await, t.db.open().await);
    let (a, b) = tokio::join!(
        outbox::deliver(&one, &smtp, common::NOW),
        outbox::deliver(&two, &smtp, common::NOW)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    println!("outbox: host one sent {a}, host two sent {b}");
    assert_eq!(i64::try_from(a + b).unwrap(), MAILS);
    assert_eq!(
        t.int("SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL AND attempts = 1")
            .await,
        MAILS
    );
    // Give the server a moment to print the last message, then count.
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.kill().unwrap();
    let mut printed = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    let _ = server.wait();
    let received = printed.matches("MESSAGE FOLLOWS").count();
    assert_eq!(
        i64::try_from(received).unwrap(),
        MAILS,
        "the SMTP server received {received} messages for {MAILS} mails"
    );
}
