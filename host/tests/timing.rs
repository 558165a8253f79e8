//! The write path's `Server-Timing` header, and the decision made before
//! the lock: kept when nothing changed meanwhile, made again under the lock
//! when something did (the header shows which).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::json;
use tower::ServiceExt;

/// The phases a change's response names: `(name, ms)`.
async fn phases(t: &common::T, user: &str, path: &str, nickname: &str) -> Vec<(String, f64)> {
    let req = Request::builder()
        .method(Method::PUT)
        .uri(path)
        .header("authorization", format!("Bearer {}", t.token(user).await))
        .header("content-type", "application/json")
        .body(Body::from(json!({ "nickname": nickname }).to_string()))
        .unwrap();
    let res = t.app.clone().oneshot(req).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.headers()
        .get("server-timing")
        .map(|v| {
            v.to_str()
                .unwrap()
                .split(", ")
                .map(|p| {
                    let (n, d) = p.split_once(";dur=").unwrap();
                    (n.to_owned(), d.parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn timed(t: &mut common::T, early: bool) {
    t.host = t.host.clone().with_settings(gatehouse_host::Settings {
        server_timing: true,
        decide_early: early,
        ..gatehouse_host::Settings::default()
    });
    t.app = t.host.router();
}

const SAM: &str = "/v1/accounts/agency/members/sam/nickname";

#[tokio::test]
async fn the_header_is_off_by_default() {
    let t = common::acme().await;
    assert!(phases(&t, "olivia", SAM, "Sammy").await.is_empty());
}

#[tokio::test]
async fn an_early_decision_stands_when_the_facts_under_the_lock_are_equal() {
    let mut t = common::acme().await;
    timed(&mut t, true);
    let p = phases(&t, "olivia", SAM, "Sammy").await;
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    for n in ["early", "wait", "facts", "apply", "commit", "hold"] {
        assert!(names.contains(&n), "{n} missing from {p:?}");
    }
    assert!(
        !names.contains(&"decide"),
        "decided again under the lock although nothing changed: {p:?}"
    );
    let ms = |n: &str| p.iter().find(|(m, _)| m == n).unwrap().1;
    assert!(ms("hold") >= ms("facts") + ms("commit"), "{p:?}");
}

#[tokio::test]
async fn with_early_decisions_off_every_change_is_decided_under_the_lock() {
    let mut t = common::acme().await;
    timed(&mut t, false);
    let p = phases(&t, "olivia", SAM, "Sammy").await;
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"decide") && !names.contains(&"early"),
        "{p:?}"
    );
}

/// The facts move between the early decision and the lock (another
/// writer, holding the lock, changes the target's row and commits): the
/// change is decided again on what it reads under the lock. The early
/// answer is compared, not trusted.
#[tokio::test]
async fn a_decision_is_made_again_when_the_facts_moved() {
    let mut t = common::acme().await;
    timed(&mut t, true);
    t.token("olivia").await; // made now: a new token would wait for the lock
    let store = t.host.store.clone();
    let mut blocker = store.begin_write().await.unwrap();
    // SQLite: the one write lock is held; PostgreSQL: the agency's tree.
    gatehouse_host::store::lock_trees(&mut blocker, store.dialect(), &["agency".to_owned()])
        .await
        .unwrap();
    sqlx::query(
        "UPDATE memberships SET nickname = 'moved' WHERE account_id = 'agency' AND user_id = 'sam'",
    )
    .execute(&mut *blocker)
    .await
    .unwrap();
    let t = std::sync::Arc::new(t);
    let change = {
        let t = t.clone();
        tokio::spawn(async move { phases(&t, "olivia", SAM, "Sammy").await })
    };
    // Let the change decide early on the snapshot (which cannot see the
    // uncommitted row) and queue for the lock; then commit the move.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    blocker.commit().await.unwrap();
    let p = change.await.unwrap();
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"early") && names.contains(&"decide"),
        "the early answer was kept although the facts moved: {p:?}"
    );
}
