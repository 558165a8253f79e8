//! Host benchmark: real `gatehouse serve` processes over loopback, a mixed
//! write workload, and where each change's time goes.
//!
//! `cargo xtask bench-host` builds the release binary and runs this; by hand:
//! `cargo run --release -p gatehouse-host --example bench -- --bin target/release/gatehouse [--changes N --clients C --pg postgres://…/test --only sqlite|postgres]`
//!
//! For each store (SQLite × 1 host, PostgreSQL × 1 host, PostgreSQL × 2
//! hosts) and each spread (writes over 100 accounts, or all on 1 account)
//! it seeds a new store, starts the hosts with `--server-timing`, and has
//! the clients send changes round-robin over the hosts: nickname edits, role
//! changes, suspend and unsuspend, seat purchases, and denials (removing an
//! owner). It prints changes/s, latency and the lock's wait and hold time
//! per change (from the hosts' `Server-Timing` headers), and checks that the
//! audit holds one record per decided request.
//!
//! A benchmark, not a test: it prints figures with the targets beside them
//! (SQLite >= 2,000 applied changes/s with p99 <= 10 ms, PostgreSQL >=
//! 1,000/s on a 2-core machine) and never fails on them. The clients run on
//! the same two cores as the hosts and the database.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use gatehouse_host::{Clock, Gate, Host, Store};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const ACCOUNTS: usize = 100;
const MEMBERS: usize = 12;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// One answer: status and the host's `Server-Timing` phases (ms).
struct Answer {
    status: u16,
    phases: Vec<(String, f64)>,
}

async fn send(
    client: &Http,
    url: String,
    token: &str,
    method: &str,
    body: Option<String>,
) -> Answer {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let failed = Answer {
        status: 0,
        phases: Vec::new(),
    };
    let Ok(req) = req.body(Full::new(Bytes::from(body.unwrap_or_default()))) else {
        return failed;
    };
    let Ok(res) = client.request(req).await else {
        return failed;
    };
    let status = res.status().as_u16();
    let phases = res
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .map(parse_timing)
        .unwrap_or_default();
    let _ = res.into_body().collect().await;
    Answer { status, phases }
}

/// `a;dur=1.5, b;dur=2` → [("a", 1.5), ("b", 2.0)].
fn parse_timing(header: &str) -> Vec<(String, f64)> {
    header
        .split(',')
        .filter_map(|p| {
            let (name, dur) = p.trim().split_once(";dur=")?;
            Some((name.to_owned(), dur.parse().ok()?))
        })
        .collect()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn seed(store: &Store) -> Result<(), String> {
    let mut tx = store.pool().begin().await.map_err(|e| e.to_string())?;
    let mut stmts = Vec::new();
    for a in 0..ACCOUNTS {
        stmts.push(format!(
            "INSERT INTO accounts (id, name, included_seats, extra_seats) VALUES ('a{a}', 'Account {a}', 100, 0)"
        ));
        for m in 0..MEMBERS {
            let role = match m {
                0 | 1 => "owner",
                2 => "admin",
                _ if m % 2 == 0 => "standard",
                _ => "basic",
            };
            stmts.push(format!(
                "INSERT INTO users (id, email, email_lower, name, created_at) VALUES ('u{a}_{m}', 'u{a}_{m}@bench.test', 'u{a}_{m}@bench.test', 'User {a}.{m}', 0)"
            ));
            stmts.push(format!(
                "INSERT INTO memberships (account_id, user_id, role, status, created_at) VALUES ('a{a}', 'u{a}_{m}', '{role}', 'active', 0)"
            ));
        }
    }
    for s in stmts {
        sqlx::query(&s)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

/// A `gatehouse serve` process, killed when dropped.
struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(setup: &Setup<'_>, db: &str) -> Result<Served, String> {
    let (bin, module) = (setup.bin, setup.module);
    let mut child = Command::new(bin)
        .args(["serve", "--db", db, "--module"])
        .arg(module)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--www",
            "/nonexistent",
            "--server-timing",
        ])
        .args(&setup.host_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .ok_or("the host exited before it listened")?
            .map_err(|e| e.to_string())?;
        if let Some(rest) = line.strip_prefix("gatehouse listening on ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Ok(Served { child, base })
}

/// One line of the table.
struct Row {
    store: &'static str,
    hosts: usize,
    accounts: usize,
    requests: usize,
    applied: usize,
    denied: usize,
    /// 409: decided inapplicable (suspending a suspended member …).
    inapplicable: usize,
    other: usize,
    secs: f64,
    /// CPU time per request (ms): the hosts, the database server, this
    /// process (the clients).
    cpu: [f64; 3],
    latency: Vec<f64>,
    phases: Vec<(String, Vec<f64>)>,
    audit: i64,
}

struct Setup<'a> {
    bin: &'a PathBuf,
    module: &'a PathBuf,
    changes: usize,
    clients: usize,
    host_args: Vec<String>,
}

async fn scenario(
    setup: &Setup<'_>,
    store_name: &'static str,
    db: &str,
    hosts: usize,
    accounts: usize,
) -> Result<Row, String> {
    let store = Store::connect(db).await.map_err(|e| e.to_string())?;
    seed(&store).await?;
    let host = Host::new(
        store.clone(),
        Gate::from_file(setup.module)?,
        Clock::system(),
    );
    let mut tokens = Vec::new();
    for a in 0..ACCOUNTS {
        let s = gatehouse_host::auth::create_session(&host, &format!("u{a}_0"), "api", "bench")
            .await
            .map_err(|e| e.to_string())?;
        tokens.push(s.token);
    }
    let served = (0..hosts)
        .map(|_| serve(setup, db))
        .collect::<Result<Vec<_>, _>>()?;
    let bases: Vec<String> = served.iter().map(|s| s.base.clone()).collect();
    let client: Http = Client::builder(TokioExecutor::new()).build_http();
    // Warm up every host: connections, instances, the members page.
    for base in &bases {
        for (a, t) in tokens.iter().enumerate().take(accounts.max(8)) {
            send(
                &client,
                format!("{base}/v1/accounts/a{a}/members"),
                t,
                "GET",
                None,
            )
            .await;
        }
    }
    let per_client = setup.changes / setup.clients;
    let host_pids: Vec<u32> = served.iter().map(|s| s.child.id()).collect();
    let cpu_before = cpu_now(&host_pids);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..setup.clients {
        let client = client.clone();
        let base = bases[c % bases.len()].clone();
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(c as u64);
            let mut answers = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let a = rng.random_range(0..accounts);
                let m = rng.random_range(3..MEMBERS);
                let member = format!("{base}/v1/accounts/a{a}/members/u{a}_{m}");
                let (method, url, body) = match rng.random_range(0..10) {
                    0..=3 => (
                        "PUT",
                        format!("{member}/nickname"),
                        Some(json!({"nickname": format!("n{c}-{i}")})),
                    ),
                    4 | 5 => (
                        "PUT",
                        format!("{member}/role"),
                        Some(
                            json!({"role": if rng.random_bool(0.5) { "standard" } else { "basic" }}),
                        ),
                    ),
                    6 => ("POST", format!("{member}/suspend"), None),
                    7 => ("POST", format!("{member}/unsuspend"), None),
                    8 => (
                        "POST",
                        format!("{base}/v1/accounts/a{a}/seats/buy"),
                        Some(json!({"quantity": 1})),
                    ),
                    _ => (
                        "DELETE",
                        format!("{base}/v1/accounts/a{a}/members/u{a}_1"),
                        None,
                    ),
                };
                let t0 = Instant::now();
                let answer = send(
                    &client,
                    url,
                    &tokens[a],
                    method,
                    body.map(|b| b.to_string()),
                )
                .await;
                answers.push((t0.elapsed(), answer));
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.map_err(|e| e.to_string())?);
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_after = cpu_now(&host_pids);
    drop(served);
    let audit: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(repeats), 0) AS BIGINT) FROM audit")
            .fetch_one(store.pool())
            .await
            .map_err(|e| e.to_string())?;
    store.pool().close().await;
    let mut row = Row {
        store: store_name,
        hosts,
        accounts,
        requests: answers.len(),
        applied: 0,
        denied: 0,
        inapplicable: 0,
        other: 0,
        secs,
        cpu: [0.0; 3],
        latency: Vec::new(),
        phases: [
            "wait", "hold", "facts", "decide", "apply", "commit", "early",
        ]
        .iter()
        .map(|n| ((*n).to_owned(), Vec::new()))
        .collect(),
        audit,
    };
    for (lat, a) in answers {
        row.latency.push(lat.as_secs_f64() * 1000.0);
        match a.status {
            200 | 201 => row.applied += 1,
            403 => row.denied += 1,
            409 => row.inapplicable += 1,
            _ => row.other += 1,
        }
        for (name, ms) in a.phases {
            if let Some((_, v)) = row.phases.iter_mut().find(|(n, _)| *n == name) {
                v.push(ms);
            }
        }
    }
    for (i, c) in row.cpu.iter_mut().enumerate() {
        *c = (cpu_after[i] - cpu_before[i]) / row.requests.max(1) as f64;
    }
    row.latency.sort_by(f64::total_cmp);
    for (_, v) in &mut row.phases {
        v.sort_by(f64::total_cmp);
    }
    Ok(row)
}

/// CPU time used so far (ms, user + system) by `hosts`, by every
/// `postgres` process, and by this process: from `/proc` (Linux).
fn cpu_now(hosts: &[u32]) -> [f64; 3] {
    let ticks = |pid: &str| -> Option<(String, f64)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, rest) = stat.rsplit_once(") ")?;
        let name = head.split_once(" (")?.1.to_owned();
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of the file (utime, stime), in clock ticks.
        let t: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some((name, t * 10.0)) // 100 ticks per second on Linux
    };
    let mut out = [0.0; 3];
    for h in hosts {
        out[0] += ticks(&h.to_string()).map_or(0.0, |(_, t)| t);
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let pid = e.file_name().to_string_lossy().into_owned();
            if pid.chars().all(|c| c.is_ascii_digit())
                && let Some((name, t)) = ticks(&pid)
                && name.starts_with("postgres")
            {
                out[1] += t;
            }
        }
    }
    out[2] = ticks("self").map_or(0.0, |(_, t)| t);
    out
}

/// A new PostgreSQL database beside `base`'s, dropped by [`drop_pg`].
async fn create_pg(base: &str, name: &str) -> Result<String, String> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(base).await.map_err(|e| {
        format!("cannot reach PostgreSQL at {base}: {e} (pass --pg URL, or --only sqlite)")
    })?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    let (head, _) = base
        .rsplit_once('/')
        .ok_or("a --pg URL ends in /DATABASE")?;
    Ok(format!("{head}/{name}"))
}

async fn drop_pg(base: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(base).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await;
    }
}

fn print(rows: &[Row], setup: &Setup<'_>) {
    println!(
        "\nGatehouse hosts over loopback (release, {} changes per line, {} clients round-robin over the hosts, {ACCOUNTS} accounts x {MEMBERS} members, host args `{}`)",
        setup.changes,
        setup.clients,
        setup.host_args.join(" ")
    );
    println!(
        "| store | hosts | accounts written | requests: applied / denied / inapplicable / other | audit records | applied/s | decided/s | p50 ms | p99 ms | lock wait p50/p99 ms | lock hold p50/p99 ms | in the hold: facts / decide / apply / commit p50 ms | decided under the lock | CPU ms per request: hosts / database / clients | target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let p = |name: &str, q: f64| {
            r.phases
                .iter()
                .find(|(n, _)| n == name)
                .map_or(f64::NAN, |(_, v)| pct(v, q))
        };
        let count = |name: &str| {
            r.phases
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, v)| v.len())
        };
        let decided = r.applied + r.denied + r.inapplicable;
        let under = 100.0 * count("decide") as f64 / count("hold").max(1) as f64;
        let target = if r.store == "SQLite" {
            ">= 2,000 applied/s, p99 <= 10 ms"
        } else {
            ">= 1,000 applied/s"
        };
        println!(
            "| {} | {} | {} | {}: {} / {} / {} / {} | {}{} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} / {:.2} / {:.2} | {under:.0}% | {:.2} / {:.2} / {:.2} | {target} |",
            r.store,
            r.hosts,
            r.accounts,
            r.requests,
            r.applied,
            r.denied,
            r.inapplicable,
            r.other,
            r.audit,
            if r.audit == decided as i64 {
                " (= decided)"
            } else {
                " (≠ decided!)"
            },
            r.applied as f64 / r.secs,
            decided as f64 / r.secs,
            pct(&r.latency, 0.5),
            pct(&r.latency, 0.99),
            p("wait", 0.5),
            p("wait", 0.99),
            p("hold", 0.5),
            p("hold", 0.99),
            p("facts", 0.5),
            p("decide", 0.5),
            p("apply", 0.5),
            p("commit", 0.5),
            r.cpu[0],
            r.cpu[1],
            r.cpu[2],
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let module = arg("--module").map_or_else(|| root.join("dist/gatehouse.wasm"), PathBuf::from);
    let bin = arg("--bin").map_or_else(|| root.join("target/release/gatehouse"), PathBuf::from);
    if !bin.is_file() {
        return Err(format!(
            "no host binary at {} (`cargo xtask bench-host` builds it; or pass --bin)",
            bin.display()
        ));
    }
    let setup = Setup {
        bin: &bin,
        module: &module,
        changes: arg("--changes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000),
        clients: arg("--clients").and_then(|v| v.parse().ok()).unwrap_or(8),
        // e.g. `--host-args --decide-in-lock`
        host_args: arg("--host-args")
            .map(|a| a.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    let pg = arg("--pg")
        .or_else(|| std::env::var("GATEHOUSE_TEST_PG").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    // `--only sqlite` or `--only postgres` (a prefix of either).
    let only = arg("--only");
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut n = 0;
    for (store, hosts) in [("SQLite", 1), ("PostgreSQL", 1), ("PostgreSQL", 2)] {
        if only
            .as_deref()
            .is_some_and(|o| !store.to_lowercase().starts_with(o))
        {
            continue;
        }
        for accounts in [ACCOUNTS, 1] {
            n += 1;
            eprintln!("bench: {store} x {hosts} host(s), writes over {accounts} account(s) …");
            let row = if store == "SQLite" {
                let db = dir.join(format!("bench-{n}.db"));
                scenario(&setup, store, &db.to_string_lossy(), hosts, accounts).await
            } else {
                let name = format!("gatehouse_bench_{}_{n}", std::process::id());
                let db = create_pg(&pg, &name).await?;
                let row = scenario(&setup, store, &db, hosts, accounts).await;
                drop_pg(&pg, &name).await;
                row
            };
            rows.push(row?);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    print(&rows, &setup);
    Ok(())
}
