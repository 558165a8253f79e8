//! Host benchmark over loopback: applied changes/s with p50/p99 latency for
//! a mixed workload, and decisions/s for the members list.
//!
//! `cargo run --release -p gatehouse-host --example bench [-- --module M --changes N --clients C --db postgres://…]`
//!
//! A benchmark, not a test: it prints figures and the targets beside them
//! (>= 2,000 changes/s, p99 <= 10 ms on a 2-core machine) and never fails on them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gatehouse_host::{Clock, Gate, Host, Store};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const ACCOUNTS: usize = 100;
const MEMBERS: usize = 12;
const LIST_MEMBERS: usize = 50;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn send(
    client: &Http,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"));
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Full::new(Bytes::from(b.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    let Ok(req) = req.body(body) else {
        return (0, Value::Null);
    };
    match client.request(req).await {
        Ok(res) => {
            let status = res.status().as_u16();
            let bytes = res
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }
        Err(_) => (0, Value::Null),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn seed(host: &Host) -> Result<(), String> {
    let pool = host.store.pool();
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    let mut stmts = Vec::new();
    for a in 0..=ACCOUNTS {
        let members = if a == ACCOUNTS { LIST_MEMBERS } else { MEMBERS };
        stmts.push(format!(
            "INSERT INTO accounts (id, name, included_seats, extra_seats) VALUES ('a{a}', 'Account {a}', 100, 0)"
        ));
        for m in 0..members {
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

#[tokio::main]
async fn main() -> Result<(), String> {
    let module = arg("--module").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/gatehouse.wasm"),
        PathBuf::from,
    );
    let changes: usize = arg("--changes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let clients: usize = arg("--clients").and_then(|v| v.parse().ok()).unwrap_or(8);
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // `--db postgres://…` benches a PostgreSQL database (which must be
    // empty); the default is a new SQLite file.
    let location =
        arg("--db").unwrap_or_else(|| dir.join("bench.db").to_string_lossy().into_owned());
    let store_kind = if location.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite WAL"
    };
    let store = Store::connect(&location).await.map_err(|e| e.to_string())?;
    let host = Host::new(store, Gate::from_file(&module)?, Clock::system());
    seed(&host).await?;
    let mut tokens = Vec::new();
    for a in 0..=ACCOUNTS {
        let s = gatehouse_host::auth::create_session(&host, &format!("u{a}_0"), "api", "bench")
            .await
            .map_err(|e| e.to_string())?;
        tokens.push(s.token);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let app = host.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client: Http = Client::builder(TokioExecutor::new()).build_http();

    // Warm up: one request per account (first connection, first instance).
    for (a, t) in tokens.iter().enumerate() {
        send(
            &client,
            &base,
            t,
            "GET",
            &format!("/v1/accounts/a{a}/members"),
            None,
        )
        .await;
    }

    // Mixed changes: nickname edits, role changes, suspend/unsuspend,
    // seat purchases, and denials (removing an owner), spread over accounts.
    let per_client = changes / clients;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let base = base.clone();
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(c as u64);
            let mut lat = Vec::with_capacity(per_client);
            let (mut applied, mut denied, mut other) = (0usize, 0usize, 0usize);
            for i in 0..per_client {
                let a = rng.random_range(0..ACCOUNTS);
                let m = rng.random_range(3..MEMBERS);
                let member = format!("/v1/accounts/a{a}/members/u{a}_{m}");
                let (method, path, body) = match rng.random_range(0..10) {
                    0..=3 => ("PUT", format!("{member}/nickname"), Some(json!({"nickname": format!("n{c}-{i}")}))),
                    4 | 5 => ("PUT", format!("{member}/role"), Some(json!({"role": if rng.random_bool(0.5) { "standard" } else { "basic" }}))),
                    6 => ("POST", format!("{member}/suspend"), None),
                    7 => ("POST", format!("{member}/unsuspend"), None),
                    8 => ("POST", format!("/v1/accounts/a{a}/seats/buy"), Some(json!({"quantity": 1}))),
                    _ => ("DELETE", format!("/v1/accounts/a{a}/members/u{a}_1"), None),
                };
                let t0 = Instant::now();
                let (status, _) = send(&client, &base, &tokens[a], method, &path, body).await;
                lat.push(t0.elapsed());
                match status {
                    200 | 201 => applied += 1,
                    403 => denied += 1,
                    _ => other += 1,
                }
            }
            (lat, applied, denied, other)
        }));
    }
    let mut lat = Vec::new();
    let (mut applied, mut denied, mut other) = (0, 0, 0);
    for t in tasks {
        let (l, a, d, o) = t.await.map_err(|e| e.to_string())?;
        lat.extend(l);
        applied += a;
        denied += d;
        other += o;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    let audit: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(repeats), 0) AS BIGINT) FROM audit")
            .fetch_one(host.store.pool())
            .await
            .map_err(|e| e.to_string())?;

    // Members list: 50 members x 11 actions in one batch call per request.
    let list_token = tokens[ACCOUNTS].clone();
    let rounds = 200;
    let t0 = Instant::now();
    let mut decisions = 0u64;
    let mut list_lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let (status, body) = send(
            &client,
            &base,
            &list_token,
            "GET",
            &format!("/v1/accounts/a{ACCOUNTS}/members"),
            None,
        )
        .await;
        list_lat.push(t.elapsed());
        if status == 200 {
            decisions += body["decisions"].as_u64().unwrap_or(0);
        }
    }
    let list_secs = t0.elapsed().as_secs_f64();
    list_lat.sort();

    println!(
        "\nGatehouse host over loopback (release build, {store_kind}, {clients} clients, {ACCOUNTS} accounts x {MEMBERS} members)"
    );
    println!("module sha256 {}", host.gate.module_sha256());
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| requests (mixed changes) | {} ({applied} applied, {denied} denied, {other} other) | |",
        lat.len()
    );
    println!("| audit records (sum of counts) | {audit} | = requests |");
    println!(
        "| applied changes/s | {:.0} | >= 2,000 |",
        applied as f64 / elapsed
    );
    println!(
        "| all decided changes/s | {:.0} | |",
        lat.len() as f64 / elapsed
    );
    println!("| p50 latency | {:.2} ms | |", pct(&lat, 0.50));
    println!("| p99 latency | {:.2} ms | <= 10 ms |", pct(&lat, 0.99));
    println!(
        "| members list ({LIST_MEMBERS} members x 11 actions) | {:.0} decisions/s, p50 {:.2} ms | |",
        decisions as f64 / list_secs,
        pct(&list_lat, 0.5)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
