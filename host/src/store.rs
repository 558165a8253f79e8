//! The store: an embedded SQLite file or a PostgreSQL database, behind one
//! interface.
//!
//! **One interface, two dialects.** Every query goes through sqlx's `Any`
//! driver ([`Tx`] is `Transaction<'static, Any>`), so the ~120 queries of the
//! host are written once: `$1, $2, …` placeholders (SQLite reads `$N` as the
//! N-th parameter too), integers as `BIGINT` on both sides (so every integer
//! decodes as `i64`, flags included: `0`/`1`), text as `TEXT` (PostgreSQL's
//! columns collate `"C"`, byte order like SQLite's), bytes as `BLOB`/`BYTEA`.
//! The `Any` driver only carries `bool`, integers, floats, text and bytes,
//! which is all the schema uses; a query that would produce another
//! PostgreSQL type (`NUMERIC` from `SUM`, `BOOLEAN` from a comparison) must
//! cast. Migrations are per dialect, equal in meaning:
//! `migrations/sqlite` (the history that existing files were made with) and
//! `migrations/postgres`.
//!
//! **Why the write lock comes before the facts.** A change reads the facts,
//! asks the module and writes. If it decided on rows another writer was
//! changing, two owners demoting each other at the same instant could each
//! see two owners and both succeed. So a change takes its lock before the
//! first fact is read, and "read the facts, decide, write, commit" is one
//! serial step for everything the decision depends on:
//!
//! * SQLite: `BEGIN IMMEDIATE` takes the database's one write lock (also
//!   across processes: `gatehouse jobs` beside a server).
//! * PostgreSQL: transactions are `READ COMMITTED`, and a change locks the
//!   root account rows of the agency trees its decision reads
//!   (`SELECT … FOR UPDATE`, in id order, so two changes never wait on each
//!   other in a cycle) before it reads the facts ([`lock_trees`]). Every
//!   decision reads whole agency trees, so changes in different trees run in
//!   parallel, and changes in one tree queue. A deadlock or serialization
//!   failure (SQLSTATE `40P01`, `40001`) is retried by the caller a bounded
//!   number of times ([`is_retryable`]).
//!
//! A conditional `UPDATE … WHERE (SELECT count(*) …) > 1` is no substitute:
//! under `READ COMMITTED` both racers still see the old count.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

/// A transaction on the store.
pub type Tx = Transaction<'static, Any>;

/// A pool of connections to the store.
pub type Pool = AnyPool;

/// A row read from the store.
pub type StoreRow = sqlx::any::AnyRow;

/// Which database a [`Store`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One embedded SQLite file.
    Sqlite,
    /// A PostgreSQL database (several hosts may share it).
    Postgres,
}

/// The store: a pool of readers and the writers' pool.
///
/// SQLite: one writer connection. SQLite admits one writer at a time
/// anyway, and writers that wait inside SQLite's busy handler poll with
/// sleeps of up to 100 ms, which wrecks tail latency; waiting for the
/// writer connection in the pool's fair async queue instead costs nothing.
/// Correctness does not rest on this queue: `BEGIN IMMEDIATE` still
/// serialises writers, also across processes.
///
/// PostgreSQL: one pool for both; writers serialise on row locks
/// ([`lock_trees`]).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    writer: AnyPool,
    dialect: Dialect,
    /// The PostgreSQL URL, for [`Store::listen`].
    url: Option<std::sync::Arc<str>>,
    /// Write transactions begun by this handle and its clones.
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections a PostgreSQL host keeps open at most.
const PG_CONNECTIONS: u32 = 12;

/// Whether `location` names a PostgreSQL database (`postgres://…` or
/// `postgresql://…`) rather than a SQLite file.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

impl Store {
    /// Opens (creating if needed) a SQLite database file and applies the
    /// migrations.
    pub async fn open(path: &Path) -> Result<Store, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let url = sqlite_url(path)?;
        let options = AnyConnectOptions::from_str(&url)?;
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(sqlite_pragmas)
            .connect_with(options.clone())
            .await?;
        SQLITE.run(&writer).await?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(sqlite_pragmas)
            .connect_with(options)
            .await?;
        Ok(Store {
            writes: Default::default(),
            pool,
            writer,
            dialect: Dialect::Sqlite,
            url: None,
        })
    }

    /// Opens the store `location` names: a `postgres://` URL (the database
    /// must exist; its tables are made by the migrations) or a SQLite file
    /// path (`sqlite://FILE` says the same; created when missing).
    pub async fn connect(location: &str) -> Result<Store, sqlx::Error> {
        if !is_postgres(location) {
            let path = location.strip_prefix("sqlite://").unwrap_or(location);
            return Store::open(Path::new(path)).await;
        }
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(location)?;
        let pool = AnyPoolOptions::new()
            .max_connections(PG_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        // Two hosts starting at once must not both migrate: the migrator
        // takes PostgreSQL's advisory lock around the whole run.
        POSTGRES.run(&pool).await?;
        Ok(Store {
            writes: Default::default(),
            writer: pool.clone(),
            pool,
            dialect: Dialect::Postgres,
            url: Some(location.into()),
        })
    }

    /// PostgreSQL: a connection listening on `channel` (`LISTEN`), which
    /// reconnects by itself when the connection drops (notifications sent
    /// meanwhile are lost: callers poll too). SQLite has no notifications:
    /// `None`.
    pub async fn listen(
        &self,
        channel: &str,
    ) -> Option<Result<sqlx::postgres::PgListener, sqlx::Error>> {
        let url = self.url.as_deref()?;
        Some(
            async {
                let mut l = sqlx::postgres::PgListener::connect(url).await?;
                l.listen(channel).await?;
                Ok(l)
            }
            .await,
        )
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The readers' pool (also fine for single-statement writes outside a change).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A write transaction. SQLite: it holds the write lock from its first
    /// statement. PostgreSQL: `READ COMMITTED`; a change locks its agency
    /// trees with [`lock_trees`] before it reads the facts.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.writer.begin().await,
        }
    }

    /// How many write transactions this store (and its clones) began: what
    /// shows that a kind of request never takes the write lock.
    pub fn writes_begun(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A read transaction: one consistent snapshot.
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin().await,
            Dialect::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    .await
            }
        }
    }
}

/// SQLite's session settings, run on every new connection: the `Any`
/// driver takes SQLite's options from the URL only.
fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
        )
        .await?;
        Ok(())
    })
}

/// The `sqlite://` URL of a file, absolute and percent-encoded (the URL
/// parser would otherwise fold `a/../b` and misread `?` or `#`).
fn sqlite_url(path: &Path) -> Result<String, sqlx::Error> {
    let name = path.file_name().ok_or_else(|| {
        sqlx::Error::Configuration(format!("`{}` names no file", path.display()).into())
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = std::fs::canonicalize(&parent).map_err(|e| {
        sqlx::Error::Configuration(
            format!("the directory `{}` of the store: {e}", parent.display()).into(),
        )
    })?;
    let full = parent.join(name);
    let mut encoded = String::new();
    for b in full.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(format!("sqlite://{encoded}?mode=rwc"))
}

/// `$from, $from+1, …` for `n` values (`NULL` for none: `IN (NULL)` matches
/// nothing on either store).
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    if n == 0 {
        return "NULL".into();
    }
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Locks the agency trees of `accounts` for the rest of the transaction
/// (PostgreSQL; a no-op on SQLite, whose `BEGIN IMMEDIATE` already holds
/// the one write lock): the root account row of each, in id order, with
/// `SELECT … FOR UPDATE`. Returns the roots it locked.
///
/// Accounts are never moved between trees, so the roots may be found
/// before the lock is held.
pub async fn lock_trees(
    tx: &mut Tx,
    dialect: Dialect,
    accounts: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    if dialect == Dialect::Sqlite || accounts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM accounts WHERE id IN ({}) \
         UNION SELECT a.id, a.parent_id FROM accounts a JOIN up ON a.id = up.parent_id) \
         SELECT id FROM up WHERE parent_id IS NULL",
        placeholders(1, accounts.len())
    );
    let mut q = sqlx::query(&sql);
    for a in accounts {
        q = q.bind(a);
    }
    let mut roots: Vec<String> = q
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    roots.sort();
    roots.dedup();
    if roots.is_empty() {
        return Ok(roots);
    }
    let sql = format!(
        "SELECT id FROM accounts WHERE id IN ({}) ORDER BY id FOR UPDATE",
        placeholders(1, roots.len())
    );
    let mut q = sqlx::query(&sql);
    for r in &roots {
        q = q.bind(r);
    }
    q.fetch_all(&mut **tx).await?;
    Ok(roots)
}

/// Takes the named row lock of `store_locks` for the rest of the
/// transaction (PostgreSQL `SELECT … FOR UPDATE`; a no-op on SQLite, whose
/// `BEGIN IMMEDIATE` already holds the one write lock). Serialises writers
/// of one kind that check before they write, such as two publishes.
pub async fn lock_named(tx: &mut Tx, name: &str) -> Result<(), sqlx::Error> {
    if tx.backend_name() == "SQLite" {
        return Ok(());
    }
    let locked = sqlx::query("SELECT name FROM store_locks WHERE name = $1 FOR UPDATE")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    match locked {
        Some(_) => Ok(()),
        None => Err(sqlx::Error::Protocol(format!(
            "the store has no lock named `{name}`: its migrations are older than this host"
        ))),
    }
}

/// Whether `e` is a deadlock or serialization failure (SQLSTATE `40P01`,
/// `40001`): the transaction was rolled back and may simply run again.
pub fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001" | "40P01")))
}

/// A row as a JSON object: integers stay integers, text stays text.
pub fn row_json(row: &StoreRow) -> Value {
    use sqlx::Column;
    let mut out = serde_json::Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let v = if let Ok(n) = row.try_get::<Option<i64>, _>(i) {
            n.map_or(Value::Null, Value::from)
        } else if let Ok(s) = row.try_get::<Option<String>, _>(i) {
            s.map_or(Value::Null, Value::from)
        } else {
            Value::Null
        };
        out.insert(col.name().to_owned(), v);
    }
    Value::Object(out)
}
