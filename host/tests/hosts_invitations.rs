//! Invitations raced across two real `gatehouse serve` processes on one
//! store (see `common::cluster`):
//!
//! * one invitation accepted through both hosts at the same instant makes
//!   one membership; the other acceptance is told the link was already used;
//! * two invitations for an account's last seat, sent through both hosts at
//!   the same instant: exactly one is made (and becomes a membership), the
//!   other is a decided denial with the seats rule's reason (R4).
//!
//! On PostgreSQL only the tree locks order the two hosts; on SQLite the
//! file's write lock does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use axum::http::Method;
use common::cluster::{self, Answer, Cluster, Req};
use serde_json::json;

/// How many invitations are accepted twice at once
/// (`GATEHOUSE_HOSTS_INVITATIONS`).
const INVITATIONS: usize = 30;
/// How many accounts race for their last seat (`GATEHOUSE_HOSTS_SEATS`).
const SEAT_ACCOUNTS: usize = 30;
/// How many moments are in flight at once.
const WORKERS: usize = 8;

fn account_row(id: &str, seats: usize) -> String {
    format!(
        "INSERT INTO accounts (id, name, parent_id, included_seats, extra_seats) VALUES ('{id}', 'Account {id}', NULL, {seats}, 0)"
    )
}

fn owner_row(account: &str, user: &str) -> String {
    format!(
        "INSERT INTO memberships (account_id, user_id, role, status, created_at) VALUES ('{account}', '{user}', 'owner', 'active', 0)"
    )
}

/// `by` invites `invitee@hosts.test` to `account` as standard through `host`.
fn invite(host: usize, token: &str, invitee: &str, account: &str) -> Req {
    Req::new(host, Method::POST, "/v1/invitations")
        .bearer(token)
        .json(json!({
            "emails": [format!("{invitee}@hosts.test")],
            "accounts": [{"account": account, "role": "standard"}],
        }))
}

fn accept(host: usize, token: &str, link: &str) -> Req {
    Req::new(host, Method::POST, "/v1/invitations/accept")
        .bearer(token)
        .json(json!({"token": link}))
}

/// The two answers of a moment, the lower status first.
fn sorted(mut answers: Vec<Answer>) -> [Answer; 2] {
    answers.sort_by_key(|a| a.status);
    answers.try_into().unwrap()
}

/// How many memberships each `(account, user)` has.
async fn memberships(t: &common::T) -> BTreeMap<(String, String), i64> {
    t.rows(
        "SELECT account_id, user_id, COUNT(*) AS n FROM memberships GROUP BY account_id, user_id",
    )
    .await
    .into_iter()
    .map(|r| {
        (
            (
                r["account_id"].as_str().unwrap().to_owned(),
                r["user_id"].as_str().unwrap().to_owned(),
            ),
            r["n"].as_i64().unwrap(),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_invitation_accepted_on_both_hosts_at_once_makes_one_membership() {
    let started = std::time::Instant::now();
    let n = cluster::count_from_env("GATEHOUSE_HOSTS_INVITATIONS", INVITATIONS);
    let t = common::empty().await;
    // Five accounts, so acceptances race both within a tree and across trees.
    let accounts = 5;
    let mut stmts = Vec::new();
    let mut users = Vec::new();
    for k in 0..accounts {
        stmts.push(account_row(&format!("i{k}"), n + 1));
        stmts.push(cluster::user_row(&format!("io{k}")));
        stmts.push(owner_row(&format!("i{k}"), &format!("io{k}")));
        users.push(format!("io{k}"));
    }
    for i in 0..n {
        stmts.push(cluster::user_row(&format!("n{i:02}")));
        users.push(format!("n{i:02}"));
    }
    cluster::seed(&t, &stmts).await;
    let tokens = cluster::api_tokens(&t, &users).await;
    let cluster = Cluster::start(&t.db.location);
    let api = &cluster.api;

    // The invitations, sent through either host.
    let mut moments = Vec::new();
    let mut invited = Vec::new();
    for i in 0..n {
        let (account, invitee) = (format!("i{}", i % accounts), format!("n{i:02}"));
        let a = api
            .send(&invite(
                i % 2,
                &tokens[&format!("io{}", i % accounts)],
                &invitee,
                &account,
            ))
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let link = a.body["result"]["token"].as_str().unwrap().to_owned();
        moments.push(vec![
            accept(0, &tokens[&invitee], &link),
            accept(1, &tokens[&invitee], &link),
        ]);
        invited.push((account, invitee));
    }
    let raced = std::time::Instant::now();
    let answers = api.race(moments, WORKERS).await;
    let race_time = raced.elapsed();

    let mut twice = Vec::new();
    let mut wrong = Vec::new();
    for ((account, invitee), answers) in invited.iter().zip(answers) {
        let [won, lost] = sorted(answers);
        match (won.status, lost.status) {
            (200, 409) if lost.message().contains("already used") && won.audit_id().is_some() => {}
            (200, 200) => twice.push(format!("{invitee} in {account}")),
            _ => wrong.push(format!(
                "{invitee} in {account}: {} {} / {} {}",
                won.status, won.body, lost.status, lost.body
            )),
        }
    }
    let held = memberships(&t).await;
    let joined = invited
        .iter()
        .filter(|(a, u)| held.get(&(a.clone(), u.clone())) == Some(&1))
        .count();
    println!(
        "hosts: {n} invitations accepted on both hosts at once: {joined} memberships, {} answered \"already used\", \
         {} accepted twice, {} other answers; raced in {race_time:.1?}, {:.1?} in all",
        n - twice.len() - wrong.len(),
        twice.len(),
        wrong.len(),
        started.elapsed()
    );
    assert!(
        twice.is_empty(),
        "{} of {n} invitations were accepted twice: {twice:?}",
        twice.len()
    );
    assert!(wrong.is_empty(), "unexpected answers: {wrong:#?}");
    assert_eq!(joined, n, "one membership per invitation");
    assert_eq!(
        t.int("SELECT COUNT(*) FROM memberships").await,
        i64::try_from(accounts + n).unwrap()
    );
    // A used link is the store's to refuse, not a decision: only the
    // acceptances that went through are audited.
    assert_eq!(
        t.int(
            "SELECT COUNT(*) FROM audit WHERE action = 'accept_invitation' AND decision = 'allowed'"
        )
        .await,
        i64::try_from(n).unwrap()
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM audit WHERE action = 'accept_invitation' AND decision <> 'allowed'")
            .await,
        0
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM invitations WHERE status = 'accepted'")
            .await,
        i64::try_from(n).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_invitations_for_the_last_seat_on_two_hosts_make_one_membership() {
    let started = std::time::Instant::now();
    let n = cluster::count_from_env("GATEHOUSE_HOSTS_SEATS", SEAT_ACCOUNTS);
    let t = common::empty().await;
    // Three seats, two owners: one seat left in each account.
    let mut stmts = Vec::new();
    let mut users = Vec::new();
    for i in 0..n {
        let account = format!("l{i:02}");
        stmts.push(account_row(&account, 3));
        for who in ["oa", "ob", "ia", "ib"] {
            let user = format!("{who}{i:02}");
            stmts.push(cluster::user_row(&user));
            if who.starts_with('o') {
                stmts.push(owner_row(&account, &user));
            }
            users.push(user);
        }
    }
    cluster::seed(&t, &stmts).await;
    let tokens = cluster::api_tokens(&t, &users).await;
    let cluster = Cluster::start(&t.db.location);
    let api = &cluster.api;

    // Owner a invites ia through host 1 as owner b invites ib through host 2.
    let moments = (0..n)
        .map(|i| {
            let account = format!("l{i:02}");
            vec![
                invite(
                    0,
                    &tokens[&format!("oa{i:02}")],
                    &format!("ia{i:02}"),
                    &account,
                ),
                invite(
                    1,
                    &tokens[&format!("ob{i:02}")],
                    &format!("ib{i:02}"),
                    &account,
                ),
            ]
        })
        .collect();
    let raced = std::time::Instant::now();
    let answers = api.race(moments, WORKERS).await;
    let race_time = raced.elapsed();

    let (mut both, mut wrong, mut accepts) = (Vec::new(), Vec::new(), Vec::new());
    for (i, answers) in answers.into_iter().enumerate() {
        let account = format!("l{i:02}");
        // Which host's invitation went through: its invitee accepts it
        // through the other host.
        let winner = answers.iter().position(|a| a.status == 201);
        let [won, lost] = sorted(answers);
        match (won.status, lost.status, winner) {
            (201, 403, Some(w))
                if lost.policies().contains(&"R4.seat-limit".to_owned())
                    && lost.audit_id().is_some() =>
            {
                let invitee = format!("{}{i:02}", ["ia", "ib"][w]);
                let link = won.body["result"]["token"].as_str().unwrap();
                accepts.push((
                    account,
                    invitee.clone(),
                    accept(1 - w, &tokens[&invitee], link),
                ));
            }
            (201, 201, _) => both.push(account),
            _ => wrong.push(format!(
                "{account}: {} {} / {} {}",
                won.status, won.body, lost.status, lost.body
            )),
        }
    }
    println!(
        "hosts: {n} accounts, two invitations for the last seat on two hosts at once: {} one invitation and one R4 denial, \
         {} both invited, {} other answers; raced in {race_time:.1?}",
        accepts.len(),
        both.len(),
        wrong.len()
    );
    assert!(
        both.is_empty(),
        "{} of {n} accounts got both invitations for one seat: {both:?}",
        both.len()
    );
    assert!(wrong.is_empty(), "unexpected answers: {wrong:#?}");

    // The invitation that went through becomes the account's third member.
    for (account, invitee, req) in &accepts {
        let a = api.send(req).await;
        assert_eq!(
            a.status, 200,
            "{invitee} accepting in {account}: {}",
            a.body
        );
    }
    let held = memberships(&t).await;
    for (account, invitee, _) in &accepts {
        assert_eq!(held.get(&(account.clone(), invitee.clone())), Some(&1));
    }
    let full = t
        .rows("SELECT account_id, COUNT(*) AS n FROM memberships GROUP BY account_id HAVING COUNT(*) <> 3")
        .await;
    assert!(
        full.is_empty(),
        "accounts without exactly 3 members for 3 seats: {full:?}"
    );
    let n64 = i64::try_from(n).unwrap();
    assert_eq!(
        t.int("SELECT COUNT(*) FROM invitations").await,
        n64,
        "one invitation per account"
    );
    for (decision, count) in [("allowed", n64), ("denied", n64)] {
        assert_eq!(
            t.int(&format!(
                "SELECT CAST(COALESCE(SUM(repeats), 0) AS BIGINT) FROM audit WHERE action = 'invite' AND decision = '{decision}'"
            ))
            .await,
            count,
            "{decision} invitations"
        );
    }
    println!(
        "hosts: {} memberships from the winning invitations; {:.1?} in all",
        accepts.len(),
        started.elapsed()
    );
}
