//! Two real `gatehouse serve` processes on one store race mutual
//! demotions: in each of many accounts, its two owners suspend each other,
//! step down and leave at the same instant, one owner through each host.
//! Every account must keep an active owner, and every attempt that reached
//! a decision has exactly one audit record (identical denials counted in
//! one record's `repeats`).
//!
//! On PostgreSQL (`GATEHOUSE_TEST_PG`) the two hosts share nothing but the
//! database, so only the store's locks keep R12; on SQLite the two
//! processes share the file and its write lock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use gatehouse_host::{Clock, Host};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::Value;

/// How many accounts race.
const ACCOUNTS: usize = 60;
/// How many moments are in flight at once.
const WORKERS: usize = 8;
/// The fixed seed of the shuffles.
const SEED: u64 = 0x2b05_75e5_0fd3_1100;

fn serve(db: &str, name: &'static str) -> common::Server {
    let module = common::module_path();
    common::serve(
        name,
        &[
            "--db",
            db,
            "--module",
            module.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--www",
            "/nonexistent",
        ],
    )
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<axum::body::Bytes>,
>;

/// One attempt: who, through which host, what.
#[derive(Debug, Clone)]
struct Act {
    account: usize,
    actor: String,
    token: String,
    host: usize,
    kind: &'static str,
    path: String,
    body: &'static str,
}

#[derive(Debug)]
struct Outcome {
    act: Act,
    status: u16,
    body: Value,
}

async fn fire(client: &Client, bases: &[String], act: Act) -> Outcome {
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("{}{}", bases[act.host], act.path))
        .header("authorization", format!("Bearer {}", act.token))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(axum::body::Bytes::from_static(
            act.body.as_bytes(),
        )))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    use http_body_util::BodyExt as _;
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Outcome { act, status, body }
}

fn audit_id(o: &Outcome) -> Option<i64> {
    o.body["audit_id"]
        .as_i64()
        .or_else(|| o.body["error"]["audit_id"].as_i64())
}

async fn seed(t: &common::T) -> BTreeMap<String, String> {
    let mut stmts = Vec::new();
    for i in 0..ACCOUNTS {
        stmts.push(format!(
            "INSERT INTO accounts (id, name, parent_id, included_seats, extra_seats) VALUES ('h{i:03}', 'Account {i}', NULL, 10, 0)"
        ));
        for who in ["a", "b"] {
            stmts.push(format!(
                "INSERT INTO users (id, email, email_lower, name, created_at) VALUES ('o{who}{i:03}', 'o{who}{i:03}@hosts.test', 'o{who}{i:03}@hosts.test', 'Owner {who}{i}', 0)"
            ));
            stmts.push(format!(
                "INSERT INTO memberships (account_id, user_id, role, status, created_at) VALUES ('h{i:03}', 'o{who}{i:03}', 'owner', 'active', 0)"
            ));
        }
    }
    let mut tx = t.host.store.pool().begin().await.unwrap();
    for s in &stmts {
        sqlx::query(s).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    // API tokens the servers accept: made on the system clock, as theirs.
    let minting = Host::new(t.host.store.clone(), common::gate(), Clock::system());
    let mut tokens = BTreeMap::new();
    for i in 0..ACCOUNTS {
        for who in ["a", "b"] {
            let user = format!("o{who}{i:03}");
            let s = gatehouse_host::auth::create_session(&minting, &user, "api", "hosts")
                .await
                .unwrap();
            tokens.insert(user, s.token);
        }
    }
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_racing_mutual_demotions_keep_an_owner_in_every_account() {
    let started = std::time::Instant::now();
    let t = common::empty().await;
    let tokens = seed(&t).await;
    let servers = [
        serve(&t.db.location, "host1"),
        serve(&t.db.location, "host2"),
    ];
    let bases: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.base.clone()).collect());

    // Per account three rounds; in each, both owners fire at the same
    // instant, owner a through host 1 and owner b through host 2, each
    // trying to take an owner away (the other, or themselves).
    let mut rng = StdRng::seed_from_u64(SEED);
    let kinds: [(&'static str, &'static str, &'static str); 3] = [
        ("suspend_other", "/members/{other}/suspend", "{}"),
        ("step_down", "/step-down", r#"{"role":"admin"}"#),
        ("leave", "/leave", "{}"),
    ];
    let mut moments: Vec<Vec<Act>> = Vec::new();
    for i in 0..ACCOUNTS {
        let mut ka: Vec<usize> = (0..kinds.len()).collect();
        let mut kb = ka.clone();
        ka.shuffle(&mut rng);
        kb.shuffle(&mut rng);
        for (ra, rb) in ka.into_iter().zip(kb) {
            let mut moment = Vec::new();
            for (host, me, other, k) in [(0, "a", "b", ra), (1, "b", "a", rb)] {
                let (kind, path, body) = kinds[k];
                let me = format!("o{me}{i:03}");
                let other = format!("o{other}{i:03}");
                moment.push(Act {
                    account: i,
                    token: tokens[&me].clone(),
                    actor: me,
                    host,
                    kind,
                    path: format!("/v1/accounts/h{i:03}{}", path.replace("{other}", &other)),
                    body,
                });
            }
            moments.push(moment);
        }
    }
    moments.shuffle(&mut rng);
    let attempts = moments.iter().map(Vec::len).sum::<usize>();

    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let queue = Arc::new(Mutex::new(VecDeque::from(moments)));
    let results = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (queue, results, client, bases) = (
            queue.clone(),
            results.clone(),
            client.clone(),
            bases.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let Some(moment) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let barrier = Arc::new(tokio::sync::Barrier::new(moment.len()));
                let mut fired = Vec::new();
                for act in moment {
                    let (barrier, client, bases) = (barrier.clone(), client.clone(), bases.clone());
                    fired.push(tokio::spawn(async move {
                        barrier.wait().await;
                        fire(&client, &bases, act).await
                    }));
                }
                for f in fired {
                    let o = f.await.unwrap();
                    results.lock().unwrap().push(o);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let outcomes = std::mem::take(&mut *results.lock().unwrap());
    assert_eq!(outcomes.len(), attempts);
    let race_time = started.elapsed();

    // ---- Every answer is an expected one; nothing broke (no 5xx). ----
    let mut decided = 0usize;
    let mut allowed: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    let mut unexpected: Vec<String> = Vec::new();
    for o in &outcomes {
        let message = o.body["error"]["message"].as_str().unwrap_or_default();
        let what = match o.status {
            200 | 201 => {
                decided += 1;
                assert!(audit_id(o).is_some(), "{}", o.body);
                allowed.entry(o.act.account).or_default().push(format!(
                    "{} by {} via host {}",
                    o.act.kind,
                    o.act.actor,
                    o.act.host + 1
                ));
                "allowed"
            }
            403 | 409 => {
                decided += 1;
                assert!(
                    audit_id(o).is_some(),
                    "a denial names its audit record: {}",
                    o.body
                );
                assert!(
                    !o.body["error"]["reasons"].as_array().unwrap().is_empty(),
                    "a denial has reasons: {}",
                    o.body
                );
                "denied"
            }
            // Suspended: the session was signed out of the account first.
            401 if message.contains("signed out of") => "signed out",
            // Gone from the account: a stranger now, answered as one.
            404 if message.contains("that you can see")
                || message.contains("is not a member of") =>
            {
                "gone"
            }
            s => {
                unexpected.push(format!(
                    "{} by {} via host {}: {s} {}",
                    o.act.kind,
                    o.act.actor,
                    o.act.host + 1,
                    o.body
                ));
                "unexpected"
            }
        };
        *by.entry(format!("{} {what}", o.act.kind)).or_default() += 1;
    }
    println!(
        "hosts: {ACCOUNTS} accounts, {attempts} attempts over 2 hosts ({WORKERS} moments at once): {decided} decided; {by:?}; {race_time:.1?}"
    );

    // ---- R12 across hosts: every account keeps an active owner. ----
    let ownerless = t
        .rows(
            "SELECT a.id FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM memberships m \
             WHERE m.account_id = a.id AND m.role = 'owner' AND m.status = 'active') ORDER BY a.id",
        )
        .await;
    println!(
        "hosts: {} of {ACCOUNTS} accounts without an active owner, {} unexpected answers",
        ownerless.len(),
        unexpected.len()
    );
    assert!(
        ownerless.is_empty(),
        "{} of {ACCOUNTS} accounts left without an active owner: {ownerless:?}",
        ownerless.len()
    );
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:#?}");
    // And exactly one: the first round of each account has both owners
    // taking an owner away at once; one of them goes through, then the
    // other is the last owner and R12 refuses every later loss.
    let counts = t
        .rows(
            "SELECT account_id, COUNT(*) AS owners FROM memberships \
             WHERE role = 'owner' AND status = 'active' GROUP BY account_id HAVING COUNT(*) <> 1",
        )
        .await;
    assert!(
        counts.is_empty(),
        "accounts without exactly one active owner: {counts:?}"
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM memberships WHERE role = 'owner' AND status = 'active'")
            .await,
        i64::try_from(ACCOUNTS).unwrap()
    );
    assert!(
        allowed.len() == ACCOUNTS,
        "every account saw an allowed change"
    );

    // ---- One audit record per decided attempt, from both hosts. ----
    assert_eq!(
        t.int("SELECT COUNT(*) FROM audit WHERE decision NOT IN ('allowed', 'denied')")
            .await,
        0,
        "failed changes were recorded"
    );
    assert_eq!(
        t.int("SELECT CAST(COALESCE(SUM(repeats), 0) AS BIGINT) FROM audit")
            .await,
        i64::try_from(decided).unwrap(),
        "SUM(repeats) over the audit log vs attempts that reached a decision"
    );
    let mut ids: Vec<i64> = outcomes.iter().filter_map(audit_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        usize::try_from(t.int("SELECT COUNT(*) FROM audit").await).unwrap(),
        ids.len(),
        "every audit record is named by an answer"
    );
    assert!(
        by.keys().any(|k| k.ends_with(" denied")),
        "nothing was refused: the race did not race ({by:?})"
    );
    drop(servers);
    println!("hosts: done in {:.1?}", started.elapsed());
}
