//! The embedded SQLite store: opening, migrations, and write transactions.
//!
//! Why `BEGIN IMMEDIATE`: a change reads the facts, asks the module and
//! writes. A deferred transaction could decide on a snapshot another writer
//! has already changed; taking the write lock before the first read makes
//! "re-read the facts, decide, write, commit" one serial step, so invariants
//! that span rows (every account keeps an active owner) hold under races.
//! PostgreSQL will take the same step with `SELECT … FOR UPDATE` on the
//! account rows.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

/// A transaction on the store.
pub type Tx = Transaction<'static, Sqlite>;

/// The store: one SQLite file, a pool of readers and one writer.
///
/// Why one writer connection: SQLite admits one writer at a time anyway, and
/// writers that wait inside SQLite's busy handler poll with sleeps of up to
/// 100 ms, which wrecks tail latency. Waiting for the writer connection in
/// the pool's fair async queue instead costs nothing. Correctness does not
/// rest on this queue: `BEGIN IMMEDIATE` still serialises writers, also
/// across processes (a bulk job run by `gatehouse jobs` beside a server).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    writer: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Store {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Store, sqlx::Error> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Store { pool, writer })
    }

    /// The readers' pool (also fine for single-statement writes outside a change).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction that holds the write lock from its first statement.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// A read transaction: one consistent snapshot.
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }
}

/// `?, ?, ?` for `n` values.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

/// A row as a JSON object: integers stay integers, text stays text.
pub fn row_json(row: &sqlx::sqlite::SqliteRow) -> Value {
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
