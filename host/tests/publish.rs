//! Changing the rules on a live system: `gatehouse policy impact` against
//! decisions recorded through the HTTP API (checked against a brute-force
//! re-evaluation in wasmtime), `publish` / `history` / `rollback`, and a
//! hot swap under load with a real server process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gatehouse_policy::Reason;
use gatehouse_policy::json::Answer;
use serde_json::{Value, json};

/// "Admins may no longer suspend": R7.suspend keeps owners for both and
/// admins only for unsuspend.
fn admins_may_not_suspend() -> std::path::PathBuf {
    common::policies_with("no-admin-suspend", "r07_suspend.cedar", |t| {
        t.replacen(
            "when { principal in resource.account.admins };",
            "when {\n  principal in resource.account.owners ||\n  (action == Action::\"unsuspend\" && principal in resource.account.admins)\n};",
            1,
        )
    })
}

/// The module with `dir`'s policies baked into the built engine (loaded in
/// wasmtime below: the path a server takes, not the native engine `impact`
/// uses).
fn baked(dir: &std::path::Path) -> Vec<u8> {
    let bundle = gatehouse_bake::read_policies(dir).unwrap();
    let engine = std::fs::read(common::module_path()).unwrap();
    gatehouse_bake::bake_bytes(&engine, &bundle).unwrap().module
}

fn sorted(reasons: &[Reason]) -> Vec<(String, String)> {
    let mut v: Vec<_> = reasons
        .iter()
        .map(|r| (r.policy.clone(), r.message.clone()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn impact_reports_exactly_the_decisions_that_flip() {
    let t = common::acme().await;
    // Real decisions through the API: allowed and denied, by admins and owners.
    let attempts = [
        ("ada", "bea", "suspend"),     // admin: allowed, flips
        ("ada", "bea", "unsuspend"),   // admin unsuspend: allowed, stays
        ("ada", "sam", "suspend"),     // admin: allowed, flips
        ("olivia", "rita", "suspend"), // owner: allowed, stays
        ("olivia", "rita", "unsuspend"),
        ("bea", "sam", "unsuspend"),  // basic member: denied, stays
        ("ada", "olivia", "suspend"), // admin on an owner: denied
        ("ada", "ada", "suspend"),    // herself: denied
        ("ada", "bob", "suspend"),    // admin: allowed, flips
    ];
    for (who, whom, what) in attempts {
        let (s, body) = t
            .post(
                who,
                &format!("/v1/accounts/agency/members/{whom}/{what}"),
                json!({}),
            )
            .await;
        assert!(
            s.as_u16() == 200 || s.as_u16() == 403,
            "{who} {what} {whom}: {s} {body}"
        );
    }
    let (s, body) = t
        .call(
            Some("olivia"),
            axum::http::Method::PUT,
            "/v1/accounts/agency/members/sam/nickname",
            Some(json!({"nickname": "Sammy"})),
        )
        .await;
    assert!(s.is_success() || s.as_u16() == 403, "{s} {body}");
    let audit = t
        .rows("SELECT id, actor, action, decision, reasons, envelope FROM audit ORDER BY id")
        .await;
    assert!(audit.len() >= attempts.len(), "{audit:#?}");

    let dir = admins_may_not_suspend();
    let store = if t.db.is_postgres() {
        t.db.location.clone()
    } else {
        format!("sqlite://{}", t.db.location)
    };
    let (code, out) = common::gatehouse(&[
        "policy",
        "impact",
        dir.to_str().unwrap(),
        "--store",
        &store,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let reported: BTreeSet<(i64, String)> = report["flips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["audit_id"].as_i64().unwrap(),
                f["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    // Brute force: every recorded envelope handed as is to the baked module
    // in wasmtime, and compared with what was recorded.
    let runner = gatehouse_runner::Runner::new(&baked(&dir)).unwrap();
    let mut expected = BTreeSet::new();
    for row in &audit {
        let envelope = row["envelope"].as_str().unwrap();
        let answer: Answer =
            serde_json::from_slice(&runner.call(envelope.as_bytes()).unwrap()).unwrap();
        let Answer::Success {
            decision: Some(now),
            ..
        } = answer
        else {
            panic!("audit row {}: {answer:?}", row["id"]);
        };
        let was_allowed = row["decision"] != "denied";
        let was: Vec<Reason> = serde_json::from_str(row["reasons"].as_str().unwrap()).unwrap();
        let kind = match (was_allowed, now.allowed) {
            (true, false) => "allow_to_deny",
            (false, true) => "deny_to_allow",
            _ if sorted(&was) != sorted(&now.reasons) => "reasons_changed",
            _ => continue,
        };
        expected.insert((row["id"].as_i64().unwrap(), kind.to_owned()));
    }
    assert_eq!(reported, expected, "{out}");
    assert_eq!(report["replayed"].as_u64().unwrap() as usize, audit.len());

    // And what the scenario says: every suspension by the admin changes and
    // nothing else does. Her allowed ones are denied now; her denied ones
    // (an owner, herself) stay denied but now also name the permit she no
    // longer meets.
    let admin_suspends: BTreeSet<(i64, String)> = audit
        .iter()
        .filter(|r| r["actor"] == "user:ada" && r["action"] == "suspend")
        .map(|r| {
            let kind = if r["decision"] == "allowed" {
                "allow_to_deny"
            } else {
                "reasons_changed"
            };
            (r["id"].as_i64().unwrap(), kind.to_owned())
        })
        .collect();
    assert_eq!(admin_suspends.len(), 5);
    assert_eq!(reported, admin_suspends, "{out}");
    let group = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["kind"] == "allow_to_deny")
        .unwrap();
    assert_eq!(group["action"], "suspend");
    assert_eq!(group["rule"], "R7.suspend");
    assert_eq!(group["decisions"], 3);

    // For people: the summary and the group.
    let (code, text) =
        common::gatehouse(&["policy", "impact", dir.to_str().unwrap(), "--store", &store]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("5 would change: 3 allow → deny, 0 deny → allow, 2 reasons changed"),
        "{text}"
    );
    assert!(
        text.contains("suspend · R7.suspend · allow → deny: 3 decisions"),
        "{text}"
    );
    // Each row by audit id, time, account and policy ids, never by whom.
    let first = reported.iter().next().unwrap().0;
    assert!(
        text.contains(&format!("#{first} ")) && text.contains(" in agency: was "),
        "{text}"
    );
    assert!(text.contains("now denied [R7.suspend]"), "{text}");
    for who in ["ada", "bea", "Ada Admin", "Bea Basic", "@acme"] {
        assert!(!text.contains(who), "the report names `{who}`: {text}");
    }

    // The policies they were decided under flip nothing.
    let (code, text) = common::gatehouse(&["policy", "impact", "policies", "--store", &store]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no decision would change"), "{text}");

    // Symbolically, for every possible request: only suspend differs.
    let (code, text) = common::gatehouse(&[
        "policy",
        "impact",
        dir.to_str().unwrap(),
        "--symbolic",
        "--against",
        "policies",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("FAILS equivalent suspend"), "{text}");
    assert!(text.contains("ALLOW by [R7.suspend]"), "{text}");
    assert!(
        text.contains("actions decided differently for some request: suspend"),
        "{text}"
    );

    // --since after every record: nothing replayed.
    let (code, text) = common::gatehouse(&[
        "policy",
        "impact",
        dir.to_str().unwrap(),
        "--store",
        &store,
        "--since",
        "2100-01-01",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("replayed 0 recorded decisions"), "{text}");
}

fn published_version(out: &str) -> i64 {
    let rest = out
        .split("published version ")
        .nth(1)
        .unwrap_or_else(|| panic!("no version in: {out}"));
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn publish_records_versions_refuses_broken_policies_and_rolls_back() {
    let tmp = common::TempDir::new();
    // A mistyped store file is not silently created empty.
    let missing = tmp.0.join("missing.db");
    let (code, out) = common::gatehouse(&["policy", "history", "--db", missing.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no store at"), "{out}");
    let store = common::TestDb::new(&tmp, "store.db");
    let db = store.location.as_str();
    // A server's store, before anything is published.
    let (code, out) = common::gatehouse(&["outbox", "--db", db]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = common::gatehouse(&["policy", "history", "--db", db]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing published yet"), "{out}");

    let (code, out) = common::gatehouse(&[
        "policy", "publish", "--db", db, "-m", "first", "--author", "pat",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(published_version(&out), 1);
    println!("{out}");
    let (code, out) = common::gatehouse(&["policy", "publish", "--db", db, "-m", "again"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("nothing to publish: version 1 already has these policies"),
        "{out}"
    );

    let changed = admins_may_not_suspend();
    let (code, out) = common::gatehouse(&[
        "policy",
        "publish",
        changed.to_str().unwrap(),
        "--db",
        db,
        "-m",
        "admins no longer suspend",
        "--author",
        "pat",
    ]);
    // The tables encode "admins suspend members": the change must be
    // refused by them, and nothing recorded.
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL"), "{out}");

    // A change that decides the same passes the tables and is published.
    let reworded = common::policies_with("reworded", "r06_nickname.cedar", |t| {
        t.replacen("// ", "// (reworded) ", 1)
    });
    let (code, out) = common::gatehouse(&[
        "policy",
        "publish",
        reworded.to_str().unwrap(),
        "--db",
        db,
        "-m",
        "reword",
        "--author",
        "pat",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(published_version(&out), 2);
    let newest = 2;

    // A property that fails is refused even when every table passes.
    let unproven = common::policies_with("unproven", "r16_leave.cedar", |t| t.to_owned() + "\n");
    std::fs::write(
        unproven.join("properties/p9_leave.cedar"),
        "@property(\"no-leave-while-owning\")\n@holds(\"never\")\n@says(\"nobody leaves while owning resources\")\n\
         permit (principal, action == Action::\"leave\", resource is Membership)\nwhen { resource.owned_resources > 0 };\n",
    )
    .unwrap();
    let (code, out) = common::gatehouse(&[
        "policy",
        "publish",
        unproven.to_str().unwrap(),
        "--db",
        db,
        "-m",
        "unproven",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILS no-leave-while-owning"), "{out}");

    // Broken policies are refused before anything is baked.
    let parse = common::policies_with("parse", "r05_roles.cedar", |t| {
        t.replacen("permit (", "permit (principal is User,,", 1)
    });
    let (code, out) = common::gatehouse(&[
        "policy",
        "publish",
        parse.to_str().unwrap(),
        "--db",
        db,
        "-m",
        "broken",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("r05_roles.cedar:7:27"), "{out}");

    let (code, out) =
        common::gatehouse(&["policy", "rollback", "1", "--db", db, "--author", "pat"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(published_version(&out), newest + 1);
    let (code, out) = common::gatehouse(&["policy", "rollback", "99", "--db", db]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("there is no version 99"), "{out}");

    let (code, out) = common::gatehouse(&["policy", "history", "--db", db]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(" v")).collect();
    assert_eq!(lines.len() as i64, newest + 1, "{out}");
    assert!(lines[0].starts_with("* v"), "{out}");
    assert!(lines[0].contains("(rollback to v1)"), "{out}");
    assert!(lines.last().unwrap().contains("pat"), "{out}");
    // The rollback serves version 1's bytes.
    let sha = |l: &str| l.split("module ").nth(1).unwrap()[..12].to_owned();
    assert_eq!(sha(lines[0]), sha(lines.last().unwrap()), "{out}");
}

/// A demo host on `db`. On PostgreSQL it polls for new versions only
/// every 10 minutes, so switching within the test's deadline is NOTIFY's
/// doing; SQLite has no notifications and polls every 100 ms.
fn serve(db: &str, name: &'static str) -> common::Server {
    let poll = if db.starts_with("postgres") {
        "600000"
    } else {
        "100"
    };
    common::serve(
        name,
        &[
            "--db",
            db,
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--www",
            "/nonexistent",
            "--policy-poll-ms",
            poll,
        ],
    )
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<axum::body::Bytes>,
>;

/// One request: status, the policy hash the response announces, and the
/// audit record its body names.
async fn send(
    client: &Client,
    method: &str,
    url: &str,
    token: &str,
) -> Result<(u16, String, Option<i64>), String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(axum::body::Bytes::from_static(
            b"{}",
        )))
        .map_err(|e| e.to_string())?;
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let hash = res
        .headers()
        .get("x-gatehouse-policy-hash")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    use http_body_util::BodyExt as _;
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let audit = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["audit_id"].as_i64());
    Ok((status, hash, audit))
}

/// Until `server` announces `hash`; how long that took.
async fn until_serving(
    client: &Client,
    server: &common::Server,
    token: &str,
    hash: &str,
) -> Duration {
    let t0 = Instant::now();
    // A debug build compiles the module slowly; a release host takes ~1 s.
    let deadline = t0 + Duration::from_secs(180);
    loop {
        let (_, h, _) = send(client, "GET", &format!("{}/health", server.base), token)
            .await
            .unwrap();
        if h == hash {
            return t0.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{} never switched to {hash}",
            server.base
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A publish under load on two hosts of one store: every request of the
/// load succeeds, both hosts switch (on PostgreSQL by NOTIFY: they poll
/// only every 10 minutes), and each host's decisions switch policy hash
/// exactly once, old to new.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_published_module_is_hot_swapped_under_load_on_two_hosts_without_a_failed_request() {
    let tmp = common::TempDir::new();
    let db = common::TestDb::new(&tmp, "live.db");
    let db_s = db.location.clone();
    let servers = Arc::new([serve(&db_s, "host1"), serve(&db_s, "host2")]);
    let (code, token) = common::gatehouse(&["token", "--db", &db_s, "--email", "olivia@acme.test"]);
    assert_eq!(code, 0, "{token}");
    let token = token.trim().to_owned();
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let (_, old_hash, _) = send(
        &client,
        "GET",
        &format!("{}/health", servers[0].base),
        &token,
    )
    .await
    .unwrap();
    assert_eq!(old_hash.len(), 64);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // (host, audit id, policy hash announced) of every decided change.
    let decided = Arc::new(std::sync::Mutex::new(Vec::<(usize, i64, String)>::new()));
    let mut tasks = Vec::new();
    // Writers: the owner suspends and unsuspends four members, one task each
    // (so no toggle races another), alternating hosts; readers list the
    // members on both.
    for (i, whom) in ["bea", "sam", "rita", "bob", "", "", ""]
        .into_iter()
        .enumerate()
    {
        let (client, token, servers) = (client.clone(), token.clone(), servers.clone());
        let (stop, ok, failures, decided) =
            (stop.clone(), ok.clone(), failures.clone(), decided.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let host = (i + n) % 2;
                let base = &servers[host].base;
                let (method, url) = if whom.is_empty() {
                    ("GET", format!("{base}/v1/accounts/agency/members"))
                } else {
                    let what = if n.is_multiple_of(2) {
                        "suspend"
                    } else {
                        "unsuspend"
                    };
                    (
                        "POST",
                        format!("{base}/v1/accounts/agency/members/{whom}/{what}"),
                    )
                };
                match send(&client, method, &url, &token).await {
                    Ok((200, hash, audit)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if let Some(id) = audit {
                            decided.lock().unwrap().push((host, id, hash));
                        }
                    }
                    other => failures
                        .lock()
                        .unwrap()
                        .push(format!("task {i}: {method} {url}: {other:?}")),
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = ok.load(Ordering::Relaxed);

    // Publish while the load runs: a reworded reason, so every decision
    // stays the same but the policy hash changes.
    let reworded = common::policies_with("hot-swap", "r01_members.cedar", |t| {
        t.replacen("// ", "// (reworded) ", 1)
    });
    let published = tokio::task::spawn_blocking({
        let db = db_s.clone();
        move || {
            common::gatehouse(&[
                "policy",
                "publish",
                reworded.to_str().unwrap(),
                "--db",
                &db,
                "-m",
                "hot swap under load",
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(published.0, 0, "{}", published.1);
    let new_hash = published
        .1
        .split("policy hash ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(new_hash, old_hash);

    // Until both servers announce the new module, then a while longer.
    for (i, server) in servers.iter().enumerate() {
        let took = until_serving(&client, server, &token, &new_hash).await;
        println!(
            "host {}: serving the new policies {:.0?} after the publish returned",
            i + 1,
            took
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let total = ok.load(Ordering::Relaxed);
    println!(
        "{total} requests succeeded ({before} before the publish), {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(total > before + 20, "the load kept going after the publish");

    // Each host's audit rows switch hash once, from the old to the new.
    let store = db.open().await;
    let mut decided = decided.lock().unwrap().clone();
    decided.sort_by_key(|d| d.1);
    for host in 0..2 {
        let mut hashes = Vec::new();
        let mut misnamed = Vec::new();
        for (_, id, announced) in decided.iter().filter(|d| d.0 == host) {
            let h: String = sqlx::query_scalar("SELECT policy_hash FROM audit WHERE id = $1")
                .bind(id)
                .fetch_one(store.pool())
                .await
                .unwrap();
            // A response names the policies its decision was made under.
            if *announced != h {
                misnamed.push((*id, announced.clone(), h.clone()));
            }
            hashes.push(h);
        }
        assert!(
            misnamed.is_empty(),
            "host {}: responses announcing another hash than their decision's: {misnamed:?}",
            host + 1
        );
        let switches = hashes.windows(2).filter(|w| w[0] != w[1]).count();
        assert_eq!(
            switches,
            1,
            "host {}: hashes {:?}",
            host + 1,
            hashes.iter().collect::<BTreeSet<_>>()
        );
        assert_eq!(hashes.first(), Some(&old_hash));
        assert_eq!(hashes.last(), Some(&new_hash));
        let old_rows = hashes.iter().filter(|h| **h == old_hash).count();
        println!(
            "host {}: audit {old_rows} rows under {}…, then {} under {}…",
            host + 1,
            &old_hash[..12],
            hashes.len() - old_rows,
            &new_hash[..12]
        );
    }
    let all: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        usize::try_from(all).unwrap(),
        decided.len(),
        "every audit row is named by a response"
    );
    drop(servers);
}

/// A publish is a change: two `gatehouse policy publish` started at once
/// from the same newest version (each bakes and checks for seconds) cannot
/// both land; the second is refused, naming the first, and nothing of it
/// is recorded.
#[test]
fn two_publishes_from_the_same_version_do_not_both_land() {
    let tmp = common::TempDir::new();
    let store = common::TestDb::new(&tmp, "two.db");
    let db = store.location.clone();
    let (code, out) = common::gatehouse(&["policy", "publish", "--db", &db, "-m", "first"]);
    assert_eq!(code, 0, "{out}");
    let dirs = ["r01_members.cedar", "r06_nickname.cedar"].map(|file| {
        common::policies_with(&format!("two-{}", &file[..3]), file, |t| {
            t.replacen("// ", "// (reworded) ", 1)
        })
    });
    let runs: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let (db, dir) = (db.clone(), dir.clone());
            std::thread::spawn(move || {
                common::gatehouse(&[
                    "policy",
                    "publish",
                    dir.to_str().unwrap(),
                    "--db",
                    &db,
                    "-m",
                    &format!("publish {i}"),
                ])
            })
        })
        .collect();
    let outs: Vec<(i32, String)> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    let landed = outs.iter().filter(|(c, _)| *c == 0).count();
    println!(
        "two publishes at once: exit codes {:?}",
        outs.iter().map(|o| o.0).collect::<Vec<_>>()
    );
    let (code, history) = common::gatehouse(&["policy", "history", "--db", &db]);
    assert_eq!(code, 0, "{history}");
    println!("{history}");
    assert_eq!(
        landed, 1,
        "{outs:#?}
{history}"
    );
    let refused = &outs.iter().find(|(c, _)| *c != 0).unwrap().1;
    assert!(refused.contains("was published meanwhile by"), "{refused}");
    let versions: Vec<&str> = history.lines().filter(|l| l.contains("module ")).collect();
    assert_eq!(versions.len(), 2, "version 1 and one of the two: {history}");
    assert!(versions[0].starts_with("* v2"), "{history}");
}
