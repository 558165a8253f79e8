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
