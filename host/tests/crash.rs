//! R13 survives crashes: an agency bulk removal over a deep and wide tree of
//! sub-accounts is run by the real `gatehouse jobs` binary, which is aborted
//! (injected `abort()` between items or just before a removal commits) or
//! SIGKILLed mid-work again and again, then run to the end. Every item ends
//! with exactly one result, decided exactly once (one audit record, one
//! mail), and the victim keeps exactly the memberships whose removal was
//! blocked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Everyone's memberships but the victim's.
const OTHERS: &str =
    "SELECT * FROM memberships WHERE user_id <> 'victim' ORDER BY account_id, user_id";

/// Runs of the binary that are meant to die.
const FAULTY_RUNS: usize = 22;

/// Hosts killed while they hold the job, in the two-host test.
const KILLS: usize = 22;

/// The job lease of the processes here (ms): short, so that a dead
/// holder's job is taken over soon.
const LEASE_MS: &str = "400";

/// Why an item is expected to end as it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Removed,
    /// The victim owns resources there (R8).
    OwnsResources,
    /// The victim is its last active owner (R12).
    LastOwner,
    /// The victim is an owner, another active owner remains (R8: owners go
    /// through an owner-removal request).
    Owner,
    /// Someone else removed the victim after the job was created.
    AlreadyRemoved,
}

/// The tree: ids in depth-first order, with their parents.
fn tree() -> Vec<(String, Option<String>)> {
    let mut out = vec![("agency".to_owned(), None)];
    for a in 1..=5 {
        let l1 = format!("n{a}");
        out.push((l1.clone(), Some("agency".to_owned())));
        for b in 1..=5 {
            let l2 = format!("{l1}-{b}");
            out.push((l2.clone(), Some(l1.clone())));
            for c in 1..=4 {
                let l3 = format!("{l2}-{c}");
                out.push((l3.clone(), Some(l2.clone())));
            }
        }
    }
    // One deep chain under a leaf.
    let mut parent = "n3-2-4".to_owned();
    for d in 1..=12 {
        let id = format!("n3-2-4-d{d}");
        out.push((id.clone(), Some(parent)));
        parent = id;
    }
    out
}

async fn exec(t: &common::T, sql: &str, binds: &[&str]) {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(t.host.store.pool()).await.unwrap();
}

async fn user(t: &common::T, id: &str) {
    exec(
        t,
        "INSERT INTO users (id, email, email_lower, name, created_at) VALUES ($1, $2, $3, $4, 1767225600)",
        &[id, &format!("{id}@crash.test"), &format!("{id}@crash.test"), id],
    )
    .await;
}

async fn member(t: &common::T, account: &str, user: &str, role: &str, status: &str) {
    exec(
        t,
        "INSERT INTO memberships (account_id, user_id, role, status, created_at) VALUES ($1, $2, $3, $4, 1767225600)",
        &[account, user, role, status],
    )
    .await;
}

/// Seeds the tree; returns what each of the victim's accounts should end as.
async fn seed(t: &common::T) -> BTreeMap<String, Expect> {
    for u in ["boss", "victim", "carol", "dave"] {
        user(t, u).await;
    }
    let accounts = tree();
    let mut expect = BTreeMap::new();
    for (i, (id, parent)) in accounts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO accounts (id, name, parent_id, included_seats, extra_seats) VALUES ($1, $2, $3, 20, 0)",
        )
        .bind(id)
        .bind(format!("Account {id}"))
        .bind(parent.as_deref())
        .execute(t.host.store.pool())
        .await
        .unwrap();
        if i == 0 {
            member(t, id, "boss", "owner", "active").await;
            member(t, id, "victim", "basic", "active").await;
            expect.insert(id.clone(), Expect::Removed);
            continue;
        }
        // The victim is in most accounts, with a mix of roles and statuses.
        // Where the victim is an owner, the account is a leaf: an owner of an
        // account is an owner of its sub-accounts too (and not removable
        // there by R8).
        let victim = match id.as_str() {
            "n1-3-3" | "n3-2-4-d12" => Some(Expect::LastOwner),
            "n2-3-1" => Some(Expect::Owner),
            "n1-2-1" | "n2-2" | "n4-2-4" | "n5-4" => Some(Expect::OwnsResources),
            "n3-1" => Some(Expect::AlreadyRemoved),
            _ if i % 9 == 4 => None,
            _ => Some(Expect::Removed),
        };
        match victim {
            Some(Expect::LastOwner) if id == "n1-3-3" => {
                // The only owner.
                member(t, id, "victim", "owner", "active").await;
                member(t, id, "dave", "admin", "active").await;
            }
            Some(Expect::LastOwner) => {
                // The other owner is suspended: not an active owner.
                member(t, id, "victim", "owner", "active").await;
                member(t, id, "carol", "owner", "suspended").await;
            }
            Some(Expect::Owner) => {
                member(t, id, "victim", "owner", "active").await;
                member(t, id, "carol", "owner", "active").await;
            }
            Some(e) => {
                member(t, id, "carol", "owner", "active").await;
                let role = ["basic", "standard", "admin"][i % 3];
                let status = if i % 7 == 0 { "suspended" } else { "active" };
                member(t, id, "victim", role, status).await;
                if i % 5 == 0 {
                    member(t, id, "dave", "standard", "active").await;
                }
                if e == Expect::OwnsResources {
                    for (n, kind) in ["number", "flow", "routing_rule"]
                        .iter()
                        .enumerate()
                        .take(1 + i % 3)
                    {
                        exec(
                            t,
                            "INSERT INTO resources (id, account_id, kind, name, owner_id) VALUES ($1, $2, $3, $4, 'victim')",
                            &[&format!("res-{id}-{n}"), id, kind, &format!("{kind} {n} of {id}")],
                        )
                        .await;
                    }
                }
            }
            None => member(t, id, "carol", "owner", "active").await,
        }
        if let Some(e) = victim {
            expect.insert(id.clone(), e);
        }
    }
    // An account outside the agency: the job never touches it.
    exec(
        t,
        "INSERT INTO accounts (id, name, parent_id, included_seats, extra_seats) VALUES ('elsewhere', 'Elsewhere', NULL, 5, 0)",
        &[],
    )
    .await;
    member(t, "elsewhere", "carol", "owner", "active").await;
    member(t, "elsewhere", "victim", "standard", "active").await;
    expect
}

fn seed_value() -> u64 {
    match std::env::var("GATEHOUSE_CRASH_SEED") {
        Ok(s) => s.parse().expect("GATEHOUSE_CRASH_SEED is a number"),
        Err(_) => {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).unwrap();
            u64::from_le_bytes(b)
        }
    }
}

async fn done_items(t: &common::T, job: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM job_items WHERE job_id = $1 AND status <> 'pending'")
        .bind(job)
        .fetch_one(t.host.store.pool())
        .await
        .unwrap()
}

fn jobs_command(db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    c.args(["jobs", "--db"])
        .arg(db)
        .arg("--module")
        .arg(common::module_path())
        // A killed run holds the job this long; the next run waits it out.
        .args(["--job-lease-ms", LEASE_MS])
        .env_remove("GATEHOUSE_ABORT_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A bulk removal started through the API over the seeded tree, not yet run.
struct Scene {
    t: common::T,
    job: String,
    expect: BTreeMap<String, Expect>,
    /// Accounts the victim was removed from by hand after the job started.
    gone: Vec<String>,
    /// Everyone else's memberships before.
    others: Vec<Value>,
    started: Instant,
}

/// Seeds a store, calls `before` on it (to start hosts), then starts the job.
async fn start<R>(before: impl FnOnce(&common::T) -> R) -> (Scene, R) {
    let started = Instant::now();
    let t = common::empty().await;
    let expect = seed(&t).await;
    let others = t.rows(OTHERS).await;
    let r = before(&t);

    // Start the job through the API, as the agency's owner.
    let (s, body) = t
        .post(
            "boss",
            "/v1/accounts/agency/bulk-removals",
            json!({"user": "victim"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let job = body["result"]["job"].as_str().unwrap().to_owned();
    assert_eq!(
        body["result"]["accounts"].as_u64(),
        Some(expect.len() as u64),
        "one item per account of the tree the victim is in"
    );
    // Someone else removes the victim from one account after the job started.
    let gone: Vec<String> = expect
        .iter()
        .filter(|(_, e)| **e == Expect::AlreadyRemoved)
        .map(|(a, _)| a.clone())
        .collect();
    for a in &gone {
        let (s, body) = t
            .call(
                Some("boss"),
                axum::http::Method::DELETE,
                &format!("/v1/accounts/{a}/members/victim"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    (
        Scene {
            t,
            job,
            expect,
            gone,
            others,
            started,
        },
        r,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_removal_survives_aborts_and_kills() {
    let seed_u64 = seed_value();
    println!("crash: seed {seed_u64} (rerun with GATEHOUSE_CRASH_SEED={seed_u64})");
    let mut rng = StdRng::seed_from_u64(seed_u64);
    let (scene, ()) = start(|_| ()).await;
    // Nothing runs the job in this process: the test host has no worker.
    assert_eq!(done_items(&scene.t, &scene.job).await, 0);
    let (t, job) = (&scene.t, &scene.job);
    let db = t.db.location.clone();

    // ---- Faulty runs of the real binary. ----
    let mut aborted = 0usize;
    let mut injected = 0usize;
    let mut killed = 0usize;
    let mut run_time = Duration::ZERO;
    for run in 0..FAULTY_RUNS {
        let mode = rng.random_range(0..3u8); // 0: injected abort, 1: kill, 2: both
        let abort_at = (mode != 1).then(|| {
            if rng.random_bool(0.5) {
                format!("job_item:{}", rng.random_range(1..=4u32))
            } else {
                format!("before_commit:{}", rng.random_range(1..=3u32))
            }
        });
        // Kill after this many more items are done, plus a short delay.
        let kill_after =
            (mode != 0).then(|| (rng.random_range(1..=3i64), rng.random_range(0..5u64)));
        let before = done_items(t, job).await;
        let mut cmd = jobs_command(&db);
        if let Some(p) = &abort_at {
            cmd.env("GATEHOUSE_ABORT_AT", p);
        }
        let spawned = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let mut sent_kill = false;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if let Some((n, delay)) = kill_after
                && !sent_kill
                && (done_items(t, job).await >= before + n
                    || spawned.elapsed() > Duration::from_secs(120))
            {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let _ = child.kill();
                sent_kill = true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let after = done_items(t, job).await;
        run_time += spawned.elapsed();
        if !status.success() {
            // Dying is the point; failing with an error is not.
            assert!(
                status.code().is_none(),
                "run {run} failed instead of being aborted: {status}\n{stderr}"
            );
            aborted += 1;
            match status.signal() {
                Some(6) => {
                    assert!(stderr.contains("injected abort"), "{stderr}");
                    injected += 1;
                }
                Some(9) => killed += 1,
                s => panic!("run {run} died of signal {s:?}\n{stderr}"),
            }
        }
        println!(
            "crash: run {run:2}: abort_at {:<16} kill {:<10} -> {status} ({} items done in {:.1?})",
            abort_at.as_deref().unwrap_or("-"),
            kill_after.map_or("-".to_owned(), |(n, d)| format!("+{n}/{d}ms")),
            after - before,
            spawned.elapsed()
        );
    }

    // ---- A clean run finishes the job. ----
    let before = done_items(t, job).await;
    let out = jobs_command(&db).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "crash: clean run: {} items ({})",
        done_items(t, job).await - before,
        String::from_utf8_lossy(&out.stdout).trim()
    );
    println!(
        "crash: {aborted} of {FAULTY_RUNS} faulty runs aborted ({injected} injected aborts, {killed} kills); {:.1?} per run on average",
        run_time / u32::try_from(FAULTY_RUNS.max(1)).unwrap()
    );
    assert!(aborted >= 20, "only {aborted} runs were aborted");

    verify(scene).await;
}

/// A `gatehouse serve` on the scene's store that holds jobs for [`LEASE_MS`].
fn host(db: &str, name: &'static str) -> common::Server {
    common::serve_api(name, db, &["--job-lease-ms", LEASE_MS])
}

/// Who holds the job's lease now, and until when (unix ms).
async fn lease(t: &common::T, job: &str) -> (String, Option<String>, Option<i64>) {
    let r = &t
        .rows(&format!(
            "SELECT status, lease_owner, lease_until FROM jobs WHERE id = '{job}'"
        ))
        .await[0];
    (
        r["status"].as_str().unwrap().to_owned(),
        r["lease_owner"].as_str().map(str::to_owned),
        r["lease_until"].as_i64(),
    )
}

/// Many hosts, one store: two `gatehouse serve` processes work the bulk
/// removal; whichever holds the job is SIGKILLed at a random point (after
/// 1–3 more items and 0–1 ms), again and again, and a new host is started in
/// its place. The other host takes the job over when the dead one's lease
/// runs out. In the end the job is done exactly as in one uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_host_takes_over_the_job_of_a_killed_host() {
    let seed_u64 = seed_value();
    println!("takeover: seed {seed_u64} (rerun with GATEHOUSE_CRASH_SEED={seed_u64})");
    let mut rng = StdRng::seed_from_u64(seed_u64);
    let names = ["host-a", "host-b", "host-c", "host-d"];
    let (scene, mut hosts) = start(|t| {
        vec![
            host(&t.db.location, names[0]),
            host(&t.db.location, names[1]),
        ]
    })
    .await;
    let (t, job) = (&scene.t, scene.job.clone());
    let db = t.db.location.clone();
    let mut started_hosts = 2usize;
    let total = i64::try_from(scene.expect.len()).unwrap();
    let mut kills = Vec::new();
    let mut holders = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    // Replacements start in the background: a start can take longer than a
    // lease on a loaded machine, and a test blocked on it would find the
    // survivor far into the job before it could aim the next kill.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let mut pending = 0usize;
    while kills.len() < KILLS {
        assert!(Instant::now() < deadline, "the job stalled: {kills:?}");
        while let Ok(h) = started_rx.try_recv() {
            hosts.push(h);
            pending -= 1;
        }
        // Wait for a live host to hold the job.
        let (status, owner, _) = lease(t, &job).await;
        if status != "running" {
            break;
        }
        let Some(holder) = owner
            .as_deref()
            .and_then(|o| hosts.iter().position(|h| h.instance == o))
        else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        holders.insert(hosts[holder].instance.clone());
        let n = rng.random_range(1..=3i64);
        // An item takes about a millisecond: a delay within one lands the
        // kill at a random point of an item (std's sleep: tokio's timer
        // rounds up to a millisecond).
        let delay = rng.random_range(0..=1000u64);
        let before = done_items(t, &job).await;
        while done_items(t, &job).await < (before + n).min(total) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        std::thread::sleep(Duration::from_micros(delay));
        let victim = hosts.remove(holder);
        let who = victim.instance.clone();
        victim.kill();
        let at = done_items(t, &job).await;
        let (db, name, started) = (
            db.clone(),
            names[started_hosts % names.len()],
            started_tx.clone(),
        );
        std::thread::spawn(move || started.send(host(&db, name)));
        started_hosts += 1;
        pending += 1;
        kills.push(at);
        println!(
            "takeover: kill {:2}: host {who} found holding it at {before}, killed after +{n} items +{delay} µs, {at}/{total} done",
            kills.len()
        );
    }
    for _ in 0..pending {
        hosts.push(started_rx.recv().unwrap());
    }
    // The survivors finish it.
    while lease(t, &job).await.0 == "running" {
        assert!(Instant::now() < deadline, "the job never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(hosts);
    let mid = kills.iter().filter(|&&k| k > 0 && k < total).count();
    println!(
        "takeover: {} kills of the host holding the job ({mid} with the job part done), {} hosts held it, {total} items; {:.1?}",
        kills.len(),
        holders.len(),
        scene.started.elapsed()
    );
    assert!(
        mid >= 20,
        "only {mid} kills landed mid-job: {kills:?} of {total}"
    );
    verify(scene).await;
}

/// Checks the finished job: one result per item, each decided once (one
/// audit record, one mail), the report complete, nobody else touched.
async fn verify(scene: Scene) {
    let Scene {
        t,
        job,
        mut expect,
        gone,
        others,
        started,
    } = scene;
    let accounts_in_tree = tree().len();
    // ---- The job and its items. ----
    let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(&job)
        .fetch_one(t.host.store.pool())
        .await
        .unwrap();
    assert_eq!(status, "done");
    let items = t
        .rows(&format!(
            "SELECT account_id, status, reasons, audit_id FROM job_items WHERE job_id = '{job}' ORDER BY account_id"
        ))
        .await;
    let item_accounts: BTreeSet<String> = items
        .iter()
        .map(|r| r["account_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(item_accounts.len(), items.len());
    assert_eq!(
        item_accounts,
        expect.keys().cloned().collect::<BTreeSet<_>>(),
        "the items are the victim's accounts in the tree"
    );
    let victim_in: BTreeSet<String> = t
        .rows("SELECT account_id FROM memberships WHERE user_id = 'victim'")
        .await
        .iter()
        .map(|r| r["account_id"].as_str().unwrap().to_owned())
        .collect();
    let job_audit = t
        .rows(&format!(
            "SELECT id, account_id, action, target, decision, repeats, source FROM audit WHERE job_id = '{job}' ORDER BY id"
        ))
        .await;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &items {
        let account = item["account_id"].as_str().unwrap();
        let status = item["status"].as_str().unwrap();
        *counts.entry(status).or_default() += 1;
        let e = expect[account];
        let want = match e {
            Expect::Removed => "removed",
            Expect::AlreadyRemoved => "already_removed",
            _ => "blocked",
        };
        assert_eq!(status, want, "{account} ({e:?}): {item}");
        // The membership exists iff the removal was blocked.
        assert_eq!(
            victim_in.contains(account),
            status == "blocked",
            "{account}: {status}"
        );
        // Decided exactly once: one audit record of this job for it.
        let rows: Vec<&Value> = job_audit
            .iter()
            .filter(|r| r["account_id"] == account)
            .collect();
        let reasons: Value = serde_json::from_str(item["reasons"].as_str().unwrap()).unwrap();
        match status {
            "already_removed" => {
                assert!(rows.is_empty(), "{account}: {rows:?}");
                assert_eq!(item["audit_id"], Value::Null);
            }
            _ => {
                assert_eq!(rows.len(), 1, "{account}: {rows:?}");
                let r = rows[0];
                assert_eq!(r["action"], "remove_member");
                assert_eq!(r["target"], format!("membership:{account}/victim"));
                assert_eq!(r["repeats"], 1);
                assert_eq!(r["source"], "job");
                assert_eq!(item["audit_id"], r["id"], "{account}");
                assert_eq!(
                    r["decision"],
                    if status == "removed" {
                        "allowed"
                    } else {
                        "denied"
                    },
                    "{account}"
                );
            }
        }
        let policies: Vec<&str> = reasons
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["policy"].as_str())
            .collect();
        match e {
            Expect::OwnsResources => assert!(policies.contains(&"R8.owned-resources"), "{reasons}"),
            Expect::LastOwner => assert!(policies.contains(&"R12.last-owner"), "{reasons}"),
            Expect::Owner => {
                assert!(policies.contains(&"R8.owner-target"), "{reasons}");
                assert!(!policies.contains(&"R12.last-owner"), "{reasons}");
            }
            Expect::Removed | Expect::AlreadyRemoved => {
                assert!(policies.is_empty(), "{account}: {reasons}");
            }
        }
    }
    assert_eq!(
        job_audit.len(),
        counts.get("removed").unwrap_or(&0) + counts.get("blocked").unwrap_or(&0),
        "audit records of the job that belong to no item"
    );
    assert_eq!(
        t.int("SELECT COUNT(*) FROM audit WHERE decision = 'failed'")
            .await,
        0
    );
    // One "you no longer have access" mail per removal (the job's and the
    // one made by hand), never two.
    let mails = t
        .int(
            "SELECT COUNT(*) FROM outbox WHERE to_email = 'victim@crash.test' AND subject LIKE 'You no longer have access%'",
        )
        .await;
    assert_eq!(
        usize::try_from(mails).unwrap(),
        counts.get("removed").unwrap_or(&0) + gone.len()
    );
    // Nobody else lost anything; the account outside the agency is untouched.
    assert!(victim_in.contains("elsewhere"));
    assert_eq!(
        t.rows(OTHERS).await,
        others,
        "memberships of other users changed"
    );
    let blocked: Vec<&String> = expect
        .iter()
        .filter(|(_, e)| !matches!(e, Expect::Removed | Expect::AlreadyRemoved))
        .map(|(a, _)| a)
        .collect();

    // ---- The report, as the agency's owner sees it. ----
    let (s, report) = t.get("boss", &format!("/v1/jobs/{job}")).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "done");
    assert_eq!(report["progress"]["done"], items.len());
    assert_eq!(report["progress"]["total"], items.len());
    let listed: Vec<&str> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["account"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(listed.len(), unique.len(), "an account listed twice");
    assert_eq!(
        unique,
        expect.keys().map(String::as_str).collect::<BTreeSet<_>>()
    );
    for i in report["items"].as_array().unwrap() {
        let account = i["account"].as_str().unwrap();
        if blocked.iter().any(|b| b.as_str() == account) {
            assert_eq!(i["status"], "blocked");
            let reasons = i["reasons"].as_array().unwrap();
            assert!(!reasons.is_empty(), "{i}");
            assert!(
                reasons
                    .iter()
                    .all(|r| r["message"].as_str().is_some_and(|m| !m.is_empty())),
                "{i}"
            );
        }
    }
    expect.retain(|_, e| *e != Expect::Removed);
    println!(
        "crash: {} accounts in the tree, {} items: {counts:?}; not removed: {expect:?}; {:.1?} in all",
        accounts_in_tree,
        items.len(),
        started.elapsed()
    );
}
