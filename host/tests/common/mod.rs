//! Shared test harness: a real host (a SQLite file in a temp dir, or a fresh
//! PostgreSQL database when `$GATEHOUSE_TEST_PG` names a server; the built
//! module in wasmtime, a manual clock) seeded with the Acme fixture, driven
//! through the HTTP router with `oneshot` (no socket).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use gatehouse_host::{Clock, Gate, Host, Store};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::Mutex;
use tower::ServiceExt;

pub mod cluster;
pub mod verdict;

/// The module the tests ask: `$GATEHOUSE_MODULE` or `dist/gatehouse.wasm`
/// (built by `cargo xtask wasm`; `cargo xtask test` builds it first).
pub fn module_path() -> PathBuf {
    std::env::var_os("GATEHOUSE_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/gatehouse.wasm"))
}

/// One compiled module per test binary.
pub fn gate() -> Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        Gate::from_file(&module_path()).unwrap_or_else(|e| panic!("{e} (run `cargo xtask wasm`)"))
    })
    .clone()
}

/// A fresh temp directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let p = std::env::temp_dir().join(format!(
            "gatehouse-test-{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL server the suite runs on instead of SQLite, when
/// `$GATEHOUSE_TEST_PG` names one (`postgres://postgres@127.0.0.1:5432/test`).
pub fn pg_server() -> Option<String> {
    std::env::var("GATEHOUSE_TEST_PG")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Runs `f` on a runtime of its own, on a thread of its own: usable from
/// sync tests, async tests and `Drop` alike.
fn block_on<F, Fut>(f: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future,
    Fut::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
    .join()
    .unwrap()
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    format!("{base}/{db}{query}")
}

/// The store a test runs on: a SQLite file, or a PostgreSQL database of
/// its own (created with a unique name, dropped when this is dropped, also
/// when the test panics).
pub struct TestDb {
    /// What `--db` and [`Store::connect`] take: a file path or a URL.
    pub location: String,
    /// (server URL, database name) of a PostgreSQL database to drop.
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A new, empty store: `dir/file` on SQLite, a new database on the
    /// PostgreSQL server `$GATEHOUSE_TEST_PG` names. Panics, saying what
    /// to start, when that server cannot be reached.
    pub fn new(dir: &TempDir, file: &str) -> TestDb {
        let Some(server) = pg_server() else {
            return TestDb {
                location: dir.0.join(file).to_string_lossy().into_owned(),
                pg: None,
            };
        };
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).unwrap();
        let name = format!(
            "gatehouse_test_{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        );
        let (s, n) = (server.clone(), name.clone());
        let created = block_on(move || async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&s).await?;
            sqlx::raw_sql(&format!("CREATE DATABASE {n}"))
                .execute(&mut conn)
                .await?;
            conn.close().await
        });
        if let Err(e) = created {
            panic!(
                "GATEHOUSE_TEST_PG=`{server}`: cannot create a test database there: {e}. \
                 Start PostgreSQL (e.g. `pg_ctlcluster 15 main start`) or unset GATEHOUSE_TEST_PG to test on SQLite"
            );
        }
        TestDb {
            location: with_database(&server, &name),
            pg: Some((server, name)),
        }
    }

    /// Whether this store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Opens the store (a new pool each time).
    pub async fn open(&self) -> Store {
        Store::connect(&self.location)
            .await
            .unwrap_or_else(|e| panic!("cannot open the test store `{}`: {e}", self.location))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.pg.take() {
            let dropped = block_on(move || async move {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&server).await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            });
            if let Err(e) = dropped {
                eprintln!("could not drop a test database: {e}");
            }
        }
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A copy of `policies/` in a fresh directory with `file` edited by `edit`
/// (which must change something).
pub fn policies_with(name: &str, file: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gatehouse-policies-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    copy_dir(&root().join("policies/properties"), &dir.join("properties"));
    for entry in std::fs::read_dir(root().join("policies")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let text = if entry.file_name() == file {
            let edited = edit(&text);
            assert_ne!(edited, text, "the edit of {file} changed nothing");
            edited
        } else {
            text
        };
        std::fs::write(dir.join(entry.file_name()), text).unwrap();
    }
    dir
}

/// Copies the files of `from` into a new directory `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Runs `gatehouse ARGS` from the repository root: (exit code, stdout + stderr).
pub fn gatehouse(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The Acme fixture's "now".
pub const NOW: i64 = 1_767_225_600;

pub struct T {
    pub host: Host,
    pub app: Router,
    pub clock: Clock,
    /// The store (its `location` is what `gatehouse --db` takes).
    pub db: TestDb,
    pub dir: TempDir,
    tokens: Mutex<HashMap<String, String>>,
}

/// A host on an empty store.
pub async fn empty() -> T {
    let dir = TempDir::new();
    let db = TestDb::new(&dir, "test.db");
    let store = db.open().await;
    let clock = Clock::manual(NOW);
    let host = Host::new(store, gate(), clock.clone());
    T {
        app: host.router(),
        host,
        clock,
        db,
        dir,
        tokens: Mutex::new(HashMap::new()),
    }
}

/// A host seeded with the Acme fixture at its own "now".
pub async fn acme() -> T {
    let t = empty().await;
    let facts = gatehouse_host::demo::acme().unwrap();
    assert!(gatehouse_host::demo::seed(&t.host, &facts).await.unwrap());
    t
}

/// The Acme host with the policy editor open to the agency's owners.
pub async fn editor() -> T {
    let mut t = acme().await;
    t.host = t.host.clone().with_settings(gatehouse_host::Settings {
        authoring: Some(gatehouse_host::editor::Authoring {
            account: "agency".into(),
            policies: root().join("policies"),
            tables: root().join("tests/vectors"),
        }),
        // A publish proves every property with cvc5 and bakes the module:
        // on a loaded 2-core machine, with the other tests running beside
        // it, that passes the 30 s production limit.
        request_timeout: std::time::Duration::from_secs(180),
        ..gatehouse_host::Settings::default()
    });
    t.app = t.host.router();
    t
}

impl T {
    /// An API token for `user` (created once, then reused).
    pub async fn token(&self, user: &str) -> String {
        let mut tokens = self.tokens.lock().await;
        if let Some(t) = tokens.get(user) {
            return t.clone();
        }
        let s = gatehouse_host::auth::create_session(&self.host, user, "api", "test")
            .await
            .unwrap();
        tokens.insert(user.to_owned(), s.token.clone());
        s.token
    }

    /// Sends a request as `user` (None: unauthenticated) and returns the
    /// status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        user: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(u) = user {
            req = req.header("authorization", format!("Bearer {}", self.token(u).await));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    /// A new browser session for `user`, signed in now (the clock's now):
    /// (cookie secret, CSRF value).
    pub async fn browser(&self, user: &str) -> (String, String) {
        let s = gatehouse_host::auth::create_session(&self.host, user, "browser", "test browser")
            .await
            .unwrap();
        (s.token, s.csrf)
    }

    /// Sends a request with a browser session's cookie and CSRF header.
    pub async fn call_browser(
        &self,
        session: &(String, String),
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("cookie", format!("gh_session={}", session.0))
            .header("x-csrf-token", &session.1);
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    /// Sends a request with a bearer token.
    pub async fn call_bearer(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    /// Sends a prepared request.
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, v)
    }

    pub async fn get(&self, user: &str, path: &str) -> (StatusCode, Value) {
        self.call(Some(user), Method::GET, path, None).await
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Some(user), Method::POST, path, Some(body)).await
    }

    /// One integer from SQL.
    pub async fn int(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.host.store.pool())
            .await
            .unwrap()
    }

    /// Rows as JSON objects.
    pub async fn rows(&self, sql: &str) -> Vec<Value> {
        let rows = sqlx::query(sql)
            .fetch_all(self.host.store.pool())
            .await
            .unwrap();
        rows.iter().map(gatehouse_host::store::row_json).collect()
    }

    /// Everything but the audit log, the outbox and sessions, as text: a
    /// denied change must leave this unchanged.
    pub async fn state(&self) -> String {
        let mut out = String::new();
        for (table, order) in [
            ("accounts", "id"),
            ("users", "id"),
            ("memberships", "account_id, user_id"),
            ("invitations", "id"),
            ("resources", "id"),
            ("owner_removal_requests", "id"),
            ("jobs", "id"),
            ("job_items", "job_id, account_id"),
            ("session_revocations", "session_id, account_id"),
        ] {
            let sql = format!("SELECT * FROM {table} ORDER BY {order}");
            for r in self.rows(&sql).await {
                out.push_str(table);
                out.push(' ');
                out.push_str(&r.to_string());
                out.push('\n');
            }
        }
        out
    }

    /// The newest audit row.
    pub async fn last_audit(&self) -> Value {
        self.rows("SELECT * FROM audit ORDER BY id DESC LIMIT 1")
            .await
            .into_iter()
            .next()
            .unwrap_or(Value::Null)
    }
}

/// A `gatehouse serve` process on a port the system picks, killed on drop.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub base: String,
    /// Its instance id (what its job leases name), as it printed it.
    pub instance: String,
}

impl Server {
    /// SIGKILL: no cleanup, no last words, as a lost machine.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gatehouse serve` on `db` with the test module, the API only, on a port
/// the system picks, plus `extra` flags.
pub fn serve_api(name: &'static str, db: &str, extra: &[&str]) -> Server {
    let module = module_path();
    let mut args = vec![
        "--db",
        db,
        "--module",
        module.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--www",
        "/nonexistent",
    ];
    args.extend_from_slice(extra);
    serve(name, &args)
}

/// Starts `gatehouse serve ARGS` from the repository root and waits until it
/// listens; its later output goes to the test's, each line prefixed `[name]`
/// (drained, so the server never blocks on a full pipe).
pub fn serve(name: &'static str, args: &[&str]) -> Server {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("serve")
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (base, instance) = loop {
        let line = lines.next().expect("the server exited").unwrap();
        if let Some(rest) = line.strip_prefix("gatehouse listening on ") {
            let instance = rest
                .rsplit_once(", host ")
                .map(|(_, h)| h.trim_end_matches(')').to_owned())
                .unwrap_or_default();
            break (rest.split_whitespace().next().unwrap().to_owned(), instance);
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("[{name}] {line}");
        }
    });
    Server {
        child,
        base,
        instance,
    }
}

/// One HTTP request over a socket to a real server: (status, headers, body).
pub async fn http(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, axum::http::HeaderMap, axum::body::Bytes) {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<axum::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut req = hyper::Request::builder().method(method.clone()).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            axum::body::Bytes::from(b.to_string())
        }
        None => axum::body::Bytes::new(),
    };
    let res = client
        .request(req.body(http_body_util::Full::new(bytes)).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = res.status();
    let h = res.headers().clone();
    (
        status,
        h,
        res.into_body().collect().await.unwrap().to_bytes(),
    )
}

/// Asks the real server at `base` to mail `email` a sign-in link (202).
pub async fn ask_sign_in(base: &str, email: &str) -> String {
    let (s, h, body) = http(
        Method::POST,
        &format!("{base}/v1/auth/sign-in"),
        &[],
        Some(serde_json::json!({ "email": email })),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "sign-in: {}",
        String::from_utf8_lossy(&body)
    );
    binding_cookie(&h).expect("the sign-in request sets the binding cookie")
}

/// The `name=value` of the sign-in binding cookie an answer sets.
pub fn binding_cookie(h: &axum::http::HeaderMap) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|v| v.contains("gh_sign_in=") && !v.ends_with('='))
        .map(str::to_owned)
}

/// Asks for a sign-in link for `email` and redeems it at `base` from the
/// same client (with the binding cookie): (status, headers, body) of the
/// redeem.
pub async fn sign_in(
    base: &str,
    store: &Store,
    email: &str,
) -> (StatusCode, axum::http::HeaderMap, axum::body::Bytes) {
    let binding = ask_sign_in(base, email).await;
    let link = sign_in_link(store, email).await;
    http(
        Method::POST,
        &format!("{base}/v1/auth/redeem"),
        &[("cookie", &binding)],
        Some(serde_json::json!({ "token": link })),
    )
    .await
}

/// The newest sign-in link's secret mailed to `email`, from the outbox.
pub async fn sign_in_link(store: &Store, email: &str) -> String {
    // The mailer sends after the answer: wait for it (a few seconds at most).
    for _ in 0..200 {
        if let Some(link) = try_sign_in_link(store, email).await {
            return link;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let mails = gatehouse_host::outbox::list(store, 50).await.unwrap();
    panic!("no sign-in link to {email} in the outbox after 5 s: {mails:?}")
}

/// The newest sign-in link's secret mailed to `email`, if one is there yet.
pub async fn try_sign_in_link(store: &Store, email: &str) -> Option<String> {
    let mails = gatehouse_host::outbox::list(store, 50).await.unwrap();
    mails
        .iter()
        .filter(|m| m["to"].as_str() == Some(email))
        .find_map(|m| {
            let body = m["body"].as_str()?;
            let at = body.find("ghl_")?;
            Some(
                body[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>(),
            )
        })
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
