//! The members list pages (issue 14, large accounts): `GET
//! /v1/accounts/{a}/members?limit=N&after=CURSOR` walks every member of a
//! 250-member account exactly once in user id order, the batch decides only
//! the page's rows and the handed-out question decides them like the
//! server, a cursor survives a member removed meanwhile, and bad query
//! values are a 400 in the API's error shape.

// Helpers outside `#[test]` functions unwrap and panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::T;
use serde_json::Value;

const MEMBERS: usize = 250;

/// Acme plus the `large` sub-account of 250 generated members.
async fn large() -> T {
    let t = common::empty().await;
    let facts =
        gatehouse_host::demo::with_large_account(gatehouse_host::demo::acme().unwrap(), MEMBERS);
    assert!(gatehouse_host::demo::seed(&t.host, &facts).await.unwrap());
    t
}

fn ids(body: &Value) -> Vec<String> {
    body["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members: {body}"))
        .iter()
        .map(|m| m["user"].as_str().unwrap().to_owned())
        .collect()
}

/// Every member of `account` in the store, in id order.
async fn stored(t: &T, account: &str) -> Vec<String> {
    t.rows(&format!(
        "SELECT user_id FROM memberships WHERE account_id = '{account}' ORDER BY user_id"
    ))
    .await
    .iter()
    .map(|r| r["user_id"].as_str().unwrap().to_owned())
    .collect()
}

/// The page's own module asks the handed-out question: its targets are the
/// page's rows, and its cells are the server's answers, cell for cell.
fn decides_like_the_server(runner: &gatehouse_runner::Runner, body: &Value) {
    let question = &body["question"];
    let targets: Vec<&str> = question["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["membership"]["user"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ids(body),
        "the batch asks about the page's rows only"
    );
    let out = runner.call(question.to_string().as_bytes()).unwrap();
    let answer: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(answer["type"], "success", "{answer}");
    let cells = answer["batch"]["cells"].as_array().unwrap();
    let keys = body["action_keys"].as_array().unwrap();
    assert_eq!(cells.len(), targets.len());
    for (m, row) in body["members"].as_array().unwrap().iter().zip(cells) {
        for (key, cell) in keys.iter().zip(row.as_array().unwrap()) {
            let server = &m["actions"][key.as_str().unwrap()];
            assert_eq!(
                (&server["allowed"], &server["reasons"]),
                (&cell["allowed"], &cell["reasons"]),
                "{} {key}",
                m["user"]
            );
        }
    }
}

#[tokio::test]
async fn paging_walks_every_member_exactly_once_in_id_order() {
    let t = large().await;
    let runner = gatehouse_runner::Runner::from_file(&common::module_path()).unwrap();
    let mut seen = Vec::new();
    let mut path = "/v1/accounts/large/members?limit=60".to_owned();
    let mut pages = 0;
    loop {
        let (s, body) = t.get("olivia", &path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
        pages += 1;
        let page = ids(&body);
        assert!(page.len() <= 60, "{path}: {} rows", page.len());
        assert_eq!(body["total"], MEMBERS, "{path}");
        let actions = body["action_keys"].as_array().unwrap().len();
        assert_eq!(body["decisions"], page.len() * actions, "{path}");
        decides_like_the_server(&runner, &body);
        seen.extend(page);
        match body["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), seen.last().map(String::as_str), "{path}");
                path = format!("/v1/accounts/large/members?limit=60&after={next}");
            }
            None => {
                assert!(body["next"].is_null(), "{body}");
                break;
            }
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 5, "250 members in pages of 60");
    assert_eq!(
        seen,
        stored(&t, "large").await,
        "every member once, in id order"
    );
}

#[tokio::test]
async fn the_default_page_holds_100_and_the_largest_500() {
    let t = large().await;
    let (s, body) = t.get("ada", "/v1/accounts/large/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let all = stored(&t, "large").await;
    assert_eq!(ids(&body), all[..100], "the first 100 by id");
    assert_eq!(body["next"], all[99]);
    assert_eq!(body["total"], MEMBERS);
    let (s, body) = t.get("ada", "/v1/accounts/large/members?limit=500").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), all);
    assert!(body["next"].is_null(), "the last page has no next: {body}");
    // The seats still count the whole account, not the page.
    assert_eq!(body["seats"]["in_use"], MEMBERS);
    // A small account fits one default page, as before paging.
    let (s, body) = t.get("olivia", "/v1/accounts/agency/members").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), stored(&t, "agency").await);
    assert!(body["next"].is_null());
}

#[tokio::test]
async fn a_cursor_survives_a_member_removed_between_pages() {
    let t = large().await;
    let (_, first) = t.get("olivia", "/v1/accounts/large/members?limit=10").await;
    let first = ids(&first);
    assert_eq!(first.last().unwrap(), "m0010");
    // Someone on the page just read, and the cursor's own member, leave.
    for gone in ["m0004", "m0010"] {
        let (s, body) = t
            .call(
                Some("olivia"),
                Method::DELETE,
                &format!("/v1/accounts/large/members/{gone}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{gone}: {body}");
    }
    let (s, second) = t
        .get("olivia", "/v1/accounts/large/members?limit=10&after=m0010")
        .await;
    assert_eq!(s, StatusCode::OK, "{second}");
    assert_eq!(second["total"], MEMBERS - 2);
    assert_eq!(ids(&second).first().unwrap(), "m0011", "nothing skipped");
    assert_eq!(ids(&second).len(), 10);
}

#[tokio::test]
async fn bad_page_queries_are_400_with_a_clear_message() {
    let t = large().await;
    for (query, says) in [
        ("limit=0", "limit is 1 to 500"),
        ("limit=501", "limit is 1 to 500"),
        ("limit=-3", "limit is 1 to 500"),
        ("limit=ten", "limit is 1 to 500"),
        ("limit=", "limit is 1 to 500"),
        ("after=", "after"),
        ("offset=20", "offset"),
    ] {
        let path = format!("/v1/accounts/large/members?{query}");
        let (s, body) = t.get("olivia", &path).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
    // A stranger learns nothing more from a good query than from a missing account.
    let (s, hidden) = t
        .get("stranger", "/v1/accounts/large/members?limit=5")
        .await;
    let (s2, missing) = t.get("stranger", "/v1/accounts/nope/members?limit=5").await;
    assert_eq!((s, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(
        hidden["error"]["code"], missing["error"]["code"],
        "{hidden} {missing}"
    );
}
