//! R12 under a real race: two owners of each of many accounts demote,
//! suspend, remove each other, step down, leave and approve owner-removal
//! requests at the same instant, through the HTTP router, from several
//! worker threads. Every account must keep an active owner, at most one of
//! the two owners may lose ownership, and every attempt that reached a
//! decision has exactly one audit record (identical denials counted in one
//! record's `repeats`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

/// How many accounts race.
const ACCOUNTS: usize = 120;
/// How many tasks fire moments at once (each moment is two or more requests).
const WORKERS: usize = 10;
/// The fixed seed of the shuffles.
const SEED: u64 = 0x6a7e_4005_e12a_ce01;

fn acc(i: usize) -> String {
    format!("acc{i:03}")
}
fn owner_a(i: usize) -> String {
    format!("oa{i:03}")
}
fn owner_b(i: usize) -> String {
    format!("ob{i:03}")
}
fn admin(i: usize) -> String {
    format!("ad{i:03}")
}

/// One request someone makes.
#[derive(Debug, Clone)]
struct Act {
    account: usize,
    actor: String,
    /// A short name, for counting.
    kind: &'static str,
    /// Whose active owner role it takes away when allowed and they still
    /// had one (read from the facts the decision was made on).
    affects: Option<String>,
    method: Method,
    path: String,
    body: Option<Value>,
}

/// What came back.
#[derive(Debug, Clone)]
struct Outcome {
    act: Act,
    status: StatusCode,
    body: Value,
}

async fn seed(t: &common::T) {
    let pool = t.host.store.pool();
    let mut tx = pool.begin().await.unwrap();
    for i in 0..ACCOUNTS {
        sqlx::query("INSERT INTO accounts (id, name, parent_id, included_seats, extra_seats) VALUES ($1, $2, NULL, 10, 0)")
            .bind(acc(i))
            .bind(format!("Account {i}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        for (user, role) in [
            (owner_a(i), "owner"),
            (owner_b(i), "owner"),
            (admin(i), "admin"),
        ] {
            sqlx::query("INSERT INTO users (id, email, email_lower, name, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&user)
                .bind(format!("{user}@race.test"))
                .bind(format!("{user}@race.test"))
                .bind(format!("User {user}"))
                .bind(common::NOW)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO memberships (account_id, user_id, role, status, created_at) VALUES ($1, $2, $3, 'active', $4)")
                .bind(acc(i))
                .bind(&user)
                .bind(role)
                .bind(common::NOW)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

async fn fire(t: &common::T, act: Act) -> Outcome {
    let (status, body) = t
        .call(
            Some(&act.actor),
            act.method.clone(),
            &act.path,
            act.body.clone(),
        )
        .await;
    Outcome { act, status, body }
}

/// What an owner `me` of account `i` tries against the other owner `other`.
fn script(
    i: usize,
    me: &str,
    other: &str,
    request: Option<(&str, bool)>,
    admin_act: bool,
) -> Vec<Act> {
    let a = acc(i);
    let act = |kind, affects: Option<&str>, method, path: String, body| Act {
        account: i,
        actor: me.to_owned(),
        kind,
        affects: affects.map(str::to_owned),
        method,
        path,
        body,
    };
    let mut v = vec![
        act(
            "suspend_owner",
            Some(other),
            Method::POST,
            format!("/v1/accounts/{a}/members/{other}/suspend"),
            None,
        ),
        act(
            "step_down",
            Some(me),
            Method::POST,
            format!("/v1/accounts/{a}/step-down"),
            Some(json!({"role": "admin"})),
        ),
        act(
            "leave",
            Some(me),
            Method::POST,
            format!("/v1/accounts/{a}/leave"),
            None,
        ),
        // Demoting an owner by a role change: R5 refuses it (an owner-removal
        // request is the way), and R12 too once they are the last owner.
        act(
            "demote_owner",
            None,
            Method::PUT,
            format!("/v1/accounts/{a}/members/{other}/role"),
            Some(json!({"role": "admin"})),
        ),
        act(
            "remove_owner",
            None,
            Method::DELETE,
            format!("/v1/accounts/{a}/members/{other}"),
            None,
        ),
    ];
    if admin_act {
        v.push(act(
            "demote_admin",
            None,
            Method::PUT,
            format!("/v1/accounts/{a}/members/{}/role", admin(i)),
            Some(json!({"role": "standard"})),
        ));
    } else {
        v.push(act(
            "suspend_admin",
            None,
            Method::POST,
            format!("/v1/accounts/{a}/members/{}/suspend", admin(i)),
            None,
        ));
    }
    match request {
        // I am the target: approving takes my owner role away.
        Some((id, true)) => v.push(act(
            "approve",
            Some(me),
            Method::POST,
            format!("/v1/owner-removal-requests/{id}/approve"),
            None,
        )),
        // I asked: cancelling races the target's approval.
        Some((id, false)) => v.push(act(
            "cancel",
            None,
            Method::POST,
            format!("/v1/owner-removal-requests/{id}/cancel"),
            None,
        )),
        None => {}
    }
    v
}

/// The audit id an answer names, if any.
fn audit_id(o: &Outcome) -> Option<i64> {
    o.body["audit_id"]
        .as_i64()
        .or_else(|| o.body["error"]["audit_id"].as_i64())
}

fn policies(o: &Outcome) -> Vec<String> {
    o.body["error"]["reasons"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["policy"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_racing_each_other_never_leave_an_account_ownerless() {
    race(false).await;
}

/// The same race with each decision made first on a snapshot outside the
/// lock (`--decide-early`): kept only when the facts under the lock agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_racing_with_early_decisions_never_leave_an_account_ownerless() {
    race(true).await;
}

async fn race(early: bool) {
    let started = std::time::Instant::now();
    let mut t = common::empty().await;
    t.host = t.host.clone().with_settings(gatehouse_host::Settings {
        decide_early: early,
        ..gatehouse_host::Settings::default()
    });
    t.app = t.host.router();
    let t = Arc::new(t);
    seed(&t).await;
    // Tokens first, so the race itself writes only through `perform`.
    for i in 0..ACCOUNTS {
        for u in [owner_a(i), owner_b(i), admin(i)] {
            t.token(&u).await;
        }
    }

    let mut outcomes: Vec<Outcome> = Vec::new();

    // Owner-removal requests for two accounts in three (counted attempts too).
    let mut requests: HashMap<usize, (String, String)> = HashMap::new(); // account -> (id, target)
    for i in 0..ACCOUNTS {
        let (by, target) = match i % 3 {
            0 => (owner_a(i), owner_b(i)),
            1 => (owner_b(i), owner_a(i)),
            _ => continue,
        };
        let new_role = if i % 2 == 0 { "admin" } else { "none" };
        let o = fire(
            &t,
            Act {
                account: i,
                actor: by.clone(),
                kind: "request_removal",
                affects: None,
                method: Method::POST,
                path: format!("/v1/accounts/{}/owner-removal-requests", acc(i)),
                body: Some(json!({"target": target, "new_role": new_role})),
            },
        )
        .await;
        assert_eq!(o.status, StatusCode::CREATED, "{}", o.body);
        let id = o.body["result"]["request"].as_str().unwrap().to_owned();
        requests.insert(i, (id, target));
        outcomes.push(o);
    }

    // Each owner's script, shuffled; round k pairs the two owners' k-th
    // attempts so they are fired at the same instant.
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut moments: Vec<Vec<Act>> = Vec::new();
    for i in 0..ACCOUNTS {
        let (a, b) = (owner_a(i), owner_b(i));
        let req = requests.get(&i);
        let role_in = |me: &str| {
            req.map(|(id, target)| (id.as_str(), target == me))
                // The requester cancels in half of the accounts only, so that
                // approvals get their chance.
                .filter(|(_, is_target)| *is_target || (i / 3) % 2 == 0)
        };
        let mut sa = script(i, &a, &b, role_in(&a), true);
        let mut sb = script(i, &b, &a, role_in(&b), false);
        sa.shuffle(&mut rng);
        sb.shuffle(&mut rng);
        // In one account in four the admin tries, twice, to suspend an owner:
        // identical denials, which the audit log may count in one record.
        let rounds = sa.len().max(sb.len());
        let mut sc: Vec<Option<Act>> = (0..rounds).map(|_| None).collect();
        if i % 4 == 0 {
            for slot in sc.iter_mut().take(2) {
                *slot = Some(Act {
                    account: i,
                    actor: admin(i),
                    kind: "admin_suspends_owner",
                    affects: Some(a.clone()),
                    method: Method::POST,
                    path: format!("/v1/accounts/{}/members/{a}/suspend", acc(i)),
                    body: None,
                });
            }
            sc.shuffle(&mut rng);
        }
        let (mut ia, mut ib) = (sa.into_iter(), sb.into_iter());
        for c in sc {
            let moment: Vec<Act> = ia.next().into_iter().chain(ib.next()).chain(c).collect();
            moments.push(moment);
        }
    }
    moments.shuffle(&mut rng);
    let attempts_in_race: usize = moments.iter().map(Vec::len).sum();
    let queue = Arc::new(Mutex::new(VecDeque::from(moments)));
    let results = Arc::new(Mutex::new(Vec::<Outcome>::new()));

    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let t = t.clone();
        let queue = queue.clone();
        let results = results.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let Some(moment) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                // Every request of the moment in its own task, released together.
                let barrier = Arc::new(tokio::sync::Barrier::new(moment.len()));
                let mut fired = Vec::new();
                for act in moment {
                    let t = t.clone();
                    let barrier = barrier.clone();
                    fired.push(tokio::spawn(async move {
                        barrier.wait().await;
                        fire(&t, act).await
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
    let race: Vec<Outcome> = std::mem::take(&mut *results.lock().unwrap());
    assert_eq!(race.len(), attempts_in_race);
    outcomes.extend(race);
    let race_time = started.elapsed();

    // ---- Every answer is an expected one; nothing broke (no 5xx). ----
    let mut allowed: Vec<&Outcome> = Vec::new();
    let mut denied: Vec<&Outcome> = Vec::new();
    let mut undecided: BTreeMap<String, usize> = BTreeMap::new();
    for o in &outcomes {
        assert!(
            !o.status.is_server_error(),
            "{} by {} on {}: {} {}",
            o.act.kind,
            o.act.actor,
            o.act.path,
            o.status,
            o.body
        );
        let message = o.body["error"]["message"].as_str().unwrap_or_default();
        match o.status {
            StatusCode::OK | StatusCode::CREATED => {
                assert_eq!(o.body["ok"], true, "{}", o.body);
                allowed.push(o);
            }
            // Denied, or inapplicable to the target as it now stands (the
            // other owner was demoted first: R5.same-role): decided and audited.
            StatusCode::FORBIDDEN | StatusCode::CONFLICT => {
                let code = if o.status == StatusCode::FORBIDDEN {
                    "denied"
                } else {
                    "inapplicable"
                };
                assert_eq!(o.body["error"]["code"], code, "{}", o.body);
                assert!(
                    audit_id(o).is_some(),
                    "a denial names its audit record: {}",
                    o.body
                );
                assert!(!policies(o).is_empty(), "a denial has reasons: {}", o.body);
                denied.push(o);
            }
            // Suspended or gone: their sessions were signed out of the account
            // before anything was decided.
            StatusCode::UNAUTHORIZED if message.contains("signed out of") => {
                *undecided.entry(format!("401 {}", o.act.kind)).or_default() += 1;
            }
            // Gone from the account (a stranger now, answered as one) or
            // the target is gone: nothing to decide. A stranger cannot reach
            // a decision here: every way out of an account (leave, removal,
            // approved removal) signs the member's sessions out of it first.
            StatusCode::NOT_FOUND
                if message.contains("that you can see")
                    || message.contains("is not a member of") =>
            {
                assert!(audit_id(o).is_none(), "{}", o.body);
                *undecided.entry(format!("404 {}", o.act.kind)).or_default() += 1;
            }
            s => panic!(
                "unexpected answer to {} by {} on {}: {s} {}",
                o.act.kind, o.act.actor, o.act.path, o.body
            ),
        }
    }
    let decided = allowed.len() + denied.len();
    let r12_denied = denied
        .iter()
        .filter(|o| policies(o).iter().any(|p| p.starts_with("R12.")))
        .count();
    let mut by_kind: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for o in &allowed {
        *by_kind.entry((o.act.kind, "allowed")).or_default() += 1;
    }
    for o in &denied {
        *by_kind.entry((o.act.kind, "denied")).or_default() += 1;
    }
    println!(
        "race: {} accounts, {} attempts ({} in the race, {} workers): {} allowed, {} denied ({} with an R12 reason), {} not decided {:?}; {:.1?}",
        ACCOUNTS,
        outcomes.len(),
        attempts_in_race,
        WORKERS,
        allowed.len(),
        denied.len(),
        r12_denied,
        undecided.values().sum::<usize>(),
        undecided,
        race_time
    );
    println!("race: by kind {by_kind:?}");

    // ---- R12: every account keeps an active owner. ----
    let ownerless = t
        .rows(
            "SELECT a.id FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM memberships m \
             WHERE m.account_id = a.id AND m.role = 'owner' AND m.status = 'active')",
        )
        .await;
    assert!(
        ownerless.is_empty(),
        "accounts left without an active owner: {ownerless:?}"
    );
    // With two owners at the start, at most one of them may lose ownership.
    // An allowed attempt takes an active owner away when the user it affects
    // was an active owner in the facts it was decided on (a suspension of an
    // owner who had already stepped down takes nothing away).
    let mut losses: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut total_losses = 0usize;
    for o in &allowed {
        let Some(user) = &o.act.affects else { continue };
        let id = audit_id(o).unwrap();
        let row = t
            .rows(&format!("SELECT envelope FROM audit WHERE id = {id}"))
            .await;
        let request: Value = serde_json::from_str(row[0]["envelope"].as_str().unwrap()).unwrap();
        let was_active_owner = request["facts"]["memberships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| {
                m["account"] == acc(o.act.account)
                    && m["user"] == user.as_str()
                    && m["role"] == "owner"
                    && m["status"] == "active"
            });
        if was_active_owner {
            total_losses += 1;
            losses
                .entry(o.act.account)
                .or_default()
                .push(format!("{} by {}", o.act.kind, o.act.actor));
        }
    }
    for (i, l) in &losses {
        assert!(
            l.len() <= 1,
            "{}: two owners lost ownership: {l:?}",
            acc(*i)
        );
    }
    let owners_left = t
        .int("SELECT COUNT(*) FROM memberships WHERE role = 'owner' AND status = 'active'")
        .await;
    assert_eq!(
        usize::try_from(owners_left).unwrap(),
        2 * ACCOUNTS - total_losses,
        "each allowed owner loss took exactly one active owner away"
    );

    // ---- Not vacuous: changes went through and R12 refused some. ----
    assert!(
        losses.len() >= ACCOUNTS / 2,
        "only {} accounts lost an owner: the race did not race",
        losses.len()
    );
    assert!(r12_denied > 0, "no attempt was refused by R12");
    // An admin may suspend a former owner, never an active one.
    assert!(
        losses
            .values()
            .flatten()
            .all(|l| !l.starts_with("admin_suspends_owner")),
        "an admin suspended an active owner: {losses:?}"
    );
    assert!(
        by_kind.contains_key(&("approve", "allowed")),
        "no owner-removal approval went through: {by_kind:?}"
    );

    // ---- One audit record per decided attempt. ----
    assert_eq!(
        t.int("SELECT COUNT(*) FROM audit WHERE decision NOT IN ('allowed', 'denied')")
            .await,
        0,
        "failed changes were recorded"
    );
    let total_repeats = t
        .int("SELECT CAST(COALESCE(SUM(repeats), 0) AS BIGINT) FROM audit")
        .await;
    assert_eq!(
        usize::try_from(total_repeats).unwrap(),
        decided,
        "SUM(repeats) over the audit log vs attempts that reached a decision"
    );
    // Each allowed attempt has its own record, of its own action, allowed.
    let allowed_rows = t
        .rows("SELECT id, repeats, actor FROM audit WHERE decision = 'allowed' ORDER BY id")
        .await;
    assert_eq!(allowed_rows.len(), allowed.len());
    let mut allowed_ids: Vec<i64> = allowed.iter().map(|o| audit_id(o).unwrap()).collect();
    allowed_ids.sort_unstable();
    allowed_ids.dedup();
    assert_eq!(
        allowed_ids.len(),
        allowed.len(),
        "two allowed attempts share a record"
    );
    let row_ids: Vec<i64> = allowed_rows
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(row_ids, allowed_ids);
    for (r, o) in allowed_rows.iter().zip({
        let mut v = allowed.clone();
        v.sort_by_key(|o| audit_id(o).unwrap());
        v
    }) {
        assert_eq!(r["repeats"], 1);
        assert_eq!(r["actor"], format!("user:{}", o.act.actor));
    }
    // Each denied record counts exactly the denials that name it.
    let mut named: HashMap<i64, usize> = HashMap::new();
    for o in &denied {
        *named.entry(audit_id(o).unwrap()).or_default() += 1;
    }
    let denied_rows = t
        .rows("SELECT id, repeats FROM audit WHERE decision = 'denied' ORDER BY id")
        .await;
    for r in &denied_rows {
        let id = r["id"].as_i64().unwrap();
        let repeats = usize::try_from(r["repeats"].as_i64().unwrap()).unwrap();
        assert_eq!(named.remove(&id), Some(repeats), "audit record {r}");
    }
    assert!(
        named.is_empty(),
        "denials name records that are not denied ones: {named:?}"
    );
    println!(
        "race: {} audit records ({} allowed, {} denied, {} of them aggregating {} attempts); {:.1?} in all",
        allowed_rows.len() + denied_rows.len(),
        allowed_rows.len(),
        denied_rows.len(),
        denied_rows
            .iter()
            .filter(|r| r["repeats"].as_i64().unwrap() > 1)
            .count(),
        denied_rows
            .iter()
            .filter(|r| r["repeats"].as_i64().unwrap() > 1)
            .map(|r| r["repeats"].as_i64().unwrap())
            .sum::<i64>(),
        started.elapsed()
    );
}
