//! Published policy modules in the store, and the watcher that hot-swaps
//! them into a running host.
//!
//! Why the store: every host already reads it, so publishing is one insert
//! and there is nothing else to deploy. The newest version is the one hosts
//! serve; a rollback publishes an older version's bytes again as a new
//! version, so the history only grows and says who went back, and when.

use std::time::Duration;

use gatehouse_bake::Precompressed;
use sqlx::Row;

use crate::gate::Gate;
use crate::store::Store;

/// One published version, without its bytes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Version {
    /// 1, 2, 3… in publishing order.
    pub version: i64,
    /// sha256 of the module bytes.
    pub module_sha256: String,
    /// sha256 of the policy bundle: what every decision and audit row names.
    pub policy_hash: String,
    /// Who published it.
    pub author: String,
    /// Why.
    pub message: String,
    /// When (unix seconds).
    pub published_at: i64,
    /// The version whose bytes a rollback published again.
    pub rollback_of: Option<i64>,
    /// Module size in bytes.
    pub size: i64,
}

const COLUMNS: &str = "version, module_sha256, policy_hash, author, message, published_at, rollback_of, length(module) AS size";

fn version(row: &crate::store::StoreRow) -> Result<Version, sqlx::Error> {
    Ok(Version {
        version: row.try_get("version")?,
        module_sha256: row.try_get("module_sha256")?,
        policy_hash: row.try_get("policy_hash")?,
        author: row.try_get("author")?,
        message: row.try_get("message")?,
        published_at: row.try_get("published_at")?,
        rollback_of: row.try_get("rollback_of")?,
        size: row.try_get("size")?,
    })
}

/// What a new version is made of.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// The baked module.
    pub module: &'a [u8],
    /// Its sha256.
    pub module_sha256: &'a str,
    /// The policy bundle's sha256.
    pub policy_hash: &'a str,
    /// Who publishes.
    pub author: &'a str,
    /// Why.
    pub message: &'a str,
    /// When (unix seconds).
    pub at: i64,
    /// Set by [`rollback`].
    pub rollback_of: Option<i64>,
    /// The module's brotli and gzip copies, made when it was baked.
    pub precompressed: Option<&'a Precompressed>,
    /// What the publisher saw live: the version lands only if that is still
    /// the newest when it commits.
    pub seen: Seen<'a>,
}

/// What a publisher saw as the newest version when it prepared a publish.
/// A publish is a change like any other: it checks what it depends on and
/// writes under one lock, so of two publishes made from the same newest
/// version only the first lands; the second is refused ([`Refused::Moved`])
/// instead of silently undoing the first.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a> {
    /// This version was the newest (`None`: nothing was published yet).
    Version(Option<i64>),
    /// The live policies had this hash (the base of a publish request). With
    /// nothing published, the caller has checked it against its own module.
    PolicyHash(&'a str),
}

/// Why a version was not recorded.
#[derive(Debug)]
pub enum Refused {
    /// Someone else published since the publisher looked: this is now the
    /// newest version.
    Moved(Box<Version>),
    /// The store failed.
    Store(sqlx::Error),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Refused {
        Refused::Store(e)
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Moved(v) => write!(
                f,
                "version {} was published meanwhile by {} (\"{}\", policy hash {}): nothing was published; look at it and publish again",
                v.version, v.author, v.message, v.policy_hash
            ),
            Refused::Store(e) => write!(f, "the store: {e}"),
        }
    }
}

/// The channel hosts `LISTEN` on (PostgreSQL) for newly published versions.
pub const CHANNEL: &str = "gatehouse_versions";

/// Records a new version; it becomes the newest.
pub async fn record(store: &Store, new: &NewVersion<'_>) -> Result<Version, Refused> {
    let mut tx = store.begin_write().await?;
    let v = insert(&mut tx, new).await?;
    tx.commit().await?;
    Ok(v)
}

/// Records a new version in `tx` (with what else must commit with it, such
/// as the audit record of a publish from the editor): takes the publish
/// lock, checks that what the publisher saw is still the newest, inserts,
/// and (PostgreSQL) notifies the hosts listening on [`CHANNEL`] when the
/// transaction commits.
pub async fn insert(tx: &mut crate::store::Tx, new: &NewVersion<'_>) -> Result<Version, Refused> {
    crate::store::lock_named(tx, "publish").await?;
    let newest = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM policy_versions ORDER BY version DESC LIMIT 1"
    ))
    .fetch_optional(&mut **tx)
    .await?
    .as_ref()
    .map(version)
    .transpose()?;
    let current = match (new.seen, &newest) {
        (Seen::Version(v), n) => v == n.as_ref().map(|n| n.version),
        (Seen::PolicyHash(_), None) => true,
        (Seen::PolicyHash(h), Some(n)) => n.policy_hash == h,
    };
    if !current && let Some(n) = newest {
        return Err(Refused::Moved(Box::new(n)));
    }
    let row = sqlx::query(&format!(
        "INSERT INTO policy_versions (module_sha256, policy_hash, author, message, published_at, rollback_of, module, module_br, module_gz) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    ))
    .bind(new.module_sha256)
    .bind(new.policy_hash)
    .bind(new.author)
    .bind(new.message)
    .bind(new.at)
    .bind(new.rollback_of)
    .bind(new.module)
    .bind(new.precompressed.map(|p| p.br.as_slice()))
    .bind(new.precompressed.map(|p| p.gz.as_slice()))
    .fetch_one(&mut **tx)
    .await?;
    let v = version(&row)?;
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(v.version.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(v)
}

/// Every version, newest first.
pub async fn history(store: &Store) -> Result<Vec<Version>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM policy_versions ORDER BY version DESC"
    ))
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(version)
    .collect()
}

/// The newest version, if anything was published.
pub async fn newest(store: &Store) -> Result<Option<Version>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM policy_versions ORDER BY version DESC LIMIT 1"
    ))
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(version)
    .transpose()
}

/// One version's module bytes.
pub async fn module(store: &Store, version: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT module FROM policy_versions WHERE version = $1")
        .bind(version)
        .fetch_optional(store.pool())
        .await
}

/// A module as stored: its bytes and, when they were made, its
/// precompressed copies.
pub type Stored = (Vec<u8>, Option<Precompressed>);

/// A row's `module`, `module_br` and `module_gz`.
pub(crate) fn stored(row: &crate::store::StoreRow) -> Result<Stored, sqlx::Error> {
    let br: Option<Vec<u8>> = row.try_get("module_br")?;
    let gz: Option<Vec<u8>> = row.try_get("module_gz")?;
    Ok((
        row.try_get("module")?,
        br.zip(gz).map(|(br, gz)| Precompressed { br, gz }),
    ))
}

/// One version's module with its precompressed copies.
pub async fn stored_module(store: &Store, version: i64) -> Result<Option<Stored>, sqlx::Error> {
    sqlx::query("SELECT module, module_br, module_gz FROM policy_versions WHERE version = $1")
        .bind(version)
        .fetch_optional(store.pool())
        .await?
        .as_ref()
        .map(stored)
        .transpose()
}

/// The module whose sha256 is `sha256`, if a version published it (what
/// its hash URL serves).
pub async fn module_by_sha256(store: &Store, sha256: &str) -> Result<Option<Stored>, sqlx::Error> {
    sqlx::query(
        "SELECT module, module_br, module_gz FROM policy_versions WHERE module_sha256 = $1 \
         ORDER BY module_br IS NULL, version DESC LIMIT 1",
    )
    .bind(sha256)
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(stored)
    .transpose()
}

/// Publishes the bytes of `version` again as a new version (with its
/// precompressed copies; made now for a version recorded without them).
pub async fn rollback(
    store: &Store,
    to: i64,
    author: &str,
    message: &str,
    at: i64,
) -> Result<Version, String> {
    let old = sqlx::query(&format!(
        "SELECT {COLUMNS}, module, module_br, module_gz FROM policy_versions WHERE version = $1"
    ))
    .bind(to)
    .fetch_optional(store.pool())
    .await
    .map_err(|e| e.to_string())?
    .ok_or_else(|| format!("there is no version {to}; `gatehouse policy history` lists them"))?;
    let (bytes, precompressed) = stored(&old).map_err(|e| e.to_string())?;
    let v = version(&old).map_err(|e| e.to_string())?;
    let seen = newest(store)
        .await
        .map_err(|e| e.to_string())?
        .map(|n| n.version);
    let (bytes, precompressed) = match precompressed {
        Some(p) => (bytes, p),
        None => tokio::task::spawn_blocking(move || {
            gatehouse_bake::precompress(&bytes).map(|p| (bytes, p))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?,
    };
    record(
        store,
        &NewVersion {
            module: &bytes,
            module_sha256: &v.module_sha256,
            policy_hash: &v.policy_hash,
            author,
            message,
            at,
            rollback_of: Some(to),
            precompressed: Some(&precompressed),
            seen: Seen::Version(seen),
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// Why [`refresh`] did not switch.
#[derive(Debug)]
pub enum Refresh {
    /// Reading the store failed; worth retrying.
    Store(String),
    /// The newest version's module (`sha`) does not load.
    Load {
        /// Its sha256.
        sha: String,
        /// Why.
        message: String,
    },
}

impl std::fmt::Display for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refresh::Store(m) | Refresh::Load { message: m, .. } => f.write_str(m),
        }
    }
}

/// Makes the gate serve the newest published version if it is not already
/// serving it (nor is it the module `skip`, one that failed to load).
/// Returns the version it switched to.
pub async fn refresh(
    gate: &Gate,
    store: &Store,
    skip: Option<&str>,
) -> Result<Option<Version>, Refresh> {
    let Some(newest) = newest(store)
        .await
        .map_err(|e| Refresh::Store(e.to_string()))?
    else {
        return Ok(None);
    };
    let sha = newest.module_sha256.clone();
    if sha == gate.module_sha256() || Some(sha.as_str()) == skip {
        return Ok(None);
    }
    let (bytes, precompressed) = stored_module(store, newest.version)
        .await
        .map_err(|e| Refresh::Store(e.to_string()))?
        .ok_or_else(|| Refresh::Store(format!("version {} vanished", newest.version)))?;
    let g = gate.clone();
    tokio::task::spawn_blocking(move || g.swap(bytes, precompressed))
        .await
        .map_err(|e| Refresh::Store(e.to_string()))?
        .map_err(|e| Refresh::Load {
            sha: sha.clone(),
            message: format!(
                "version {} (module {}) does not load: {e}; still serving module {}",
                newest.version,
                newest.module_sha256,
                gate.module_sha256()
            ),
        })?;
    Ok(Some(newest))
}

/// Hot-swaps newly published versions: at once when PostgreSQL notifies
/// a publish ([`CHANNEL`], sent when the publishing transaction commits, to
/// every host), and by polling the store every `every` as well (SQLite has no
/// notifications, and a notification sent while the listening connection
/// was down is lost). A version that fails to load is reported once and
/// skipped until a newer one is published.
pub async fn watch(gate: Gate, store: Store, every: Duration) {
    let mut listener = match store.listen(CHANNEL).await {
        None => None,
        Some(Ok(l)) => {
            println!(
                "gatehouse: listening for published versions (PostgreSQL NOTIFY {CHANNEL}), polling every {} ms as well",
                every.as_millis()
            );
            Some(l)
        }
        Some(Err(e)) => {
            crate::logging::warn(&format!(
                "cannot LISTEN for published versions ({e}): polling every {} ms",
                every.as_millis()
            ));
            None
        }
    };
    let mut failed: Option<String> = None;
    let mut said: Option<String> = None;
    loop {
        match listener.as_mut() {
            Some(l) => {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    n = l.recv() => {
                        if let Err(e) = n {
                            // It reconnects on the next call; the poll
                            // covers what was missed meanwhile.
                            crate::logging::warn(&format!("listening for published versions: {e}"));
                            tokio::time::sleep(every.min(Duration::from_secs(1))).await;
                        }
                    }
                }
            }
            None => tokio::time::sleep(every).await,
        }
        match refresh(&gate, &store, failed.as_deref()).await {
            Ok(Some(v)) => {
                failed = None;
                said = None;
                println!(
                    "gatehouse: now serving policy version {} (module sha256 {}, policy hash {}) published by {}: {}",
                    v.version, v.module_sha256, v.policy_hash, v.author, v.message
                );
            }
            Ok(None) => {}
            Err(e) => {
                // A store hiccup is retried; a module that does not load is
                // skipped until a newer version is published.
                let e = match e {
                    Refresh::Store(e) => e,
                    Refresh::Load { sha, message } => {
                        failed = Some(sha);
                        message
                    }
                };
                if said.as_deref() != Some(e.as_str()) {
                    crate::logging::error(&e);
                    said = Some(e);
                }
            }
        }
    }
}
