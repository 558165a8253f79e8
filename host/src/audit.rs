//! The audit log: every attempted change, allowed, denied or failed, with
//! the exact envelope the module decided (the whole question, facts
//! included, byte for byte as the module got it), so the decision can be
//! replayed under another policy version later (see [`crate::impact`]).
//!
//! A burst of identical denials from one actor within a minute becomes one
//! record with a count; the first attempt's inputs are the ones kept.

use gatehouse_policy::{Decision, Source};
use serde_json::Value;
use sqlx::Row;

use crate::error::ApiError;
use crate::store::{Tx, placeholders};

/// Identical denials within this many seconds share a record.
pub const AGGREGATE_SECONDS: i64 = 60;

/// One attempt, as recorded.
#[derive(Debug, Clone)]
pub struct AuditEntry<'d> {
    /// When (the host's clock).
    pub at: i64,
    /// `user:<id>` or `idp:<account>`.
    pub actor: String,
    /// The action's name.
    pub action: String,
    /// The account it is in, if any.
    pub account: Option<String>,
    /// `membership:<account>/<user>` and the like.
    pub target: String,
    /// The module's answer.
    pub decision: &'d Decision,
    /// Policy bundle hash.
    pub policy_hash: String,
    /// Module bytes hash.
    pub module_hash: String,
    /// The target row before.
    pub before: Value,
    /// The target row after.
    pub after: Value,
    /// Where it came from.
    pub source: Source,
    /// The envelope the module decided, byte for byte
    /// ([`crate::gate::Decided::envelope`]).
    pub envelope: String,
    /// The bulk job it belongs to.
    pub job: Option<String>,
}

async fn insert(tx: &mut Tx, e: &AuditEntry<'_>, decision: &str) -> Result<i64, ApiError> {
    let reasons = serde_json::to_string(&e.decision.reasons).map_err(ApiError::internal)?;
    let outcome = crate::facts::to_word(&e.decision.outcome);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit (at, last_at, repeats, actor, action, account_id, target, decision, outcome, reasons, \
         policy_hash, module_hash, before_state, after_state, source, envelope, job_id) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
    )
    .bind(e.at)
    .bind(e.at)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.account)
    .bind(&e.target)
    .bind(decision)
    .bind(outcome)
    .bind(reasons)
    .bind(&e.policy_hash)
    .bind(&e.module_hash)
    .bind(json_text(&e.before))
    .bind(json_text(&e.after))
    .bind(e.source.as_str())
    .bind(e.envelope.as_str())
    .bind(&e.job)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

fn json_text(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}

/// Records an allowed or denied attempt in the change's transaction and
/// returns the record's id. Identical denials are aggregated.
pub async fn record(tx: &mut Tx, e: &AuditEntry<'_>) -> Result<i64, ApiError> {
    if e.decision.allowed {
        return insert(tx, e, "allowed").await;
    }
    let reasons = serde_json::to_string(&e.decision.reasons).map_err(ApiError::internal)?;
    let previous: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM audit WHERE actor = $1 AND action = $2 AND target = $3 AND decision = 'denied' \
         AND reasons = $4 AND source = $5 AND last_at >= $6 AND job_id IS NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&reasons)
    .bind(e.source.as_str())
    .bind(e.at - AGGREGATE_SECONDS)
    .fetch_optional(&mut **tx)
    .await?;
    match previous {
        Some(id) if e.job.is_none() => {
            sqlx::query("UPDATE audit SET repeats = repeats + 1, last_at = $1 WHERE id = $2")
                .bind(e.at)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            Ok(id)
        }
        _ => insert(tx, e, "denied").await,
    }
}

/// Records an allowed change that failed to apply (and was rolled back).
pub async fn record_failed(tx: &mut Tx, e: &AuditEntry<'_>) -> Result<i64, ApiError> {
    insert(tx, e, "failed").await
}

/// Filters for reading the log.
pub use gatehouse_api::AuditQuery;

/// Reads the log of some accounts, newest first.
pub async fn read(
    pool: &crate::store::Pool,
    accounts: &[String],
    q: &AuditQuery,
) -> Result<gatehouse_api::AuditLog, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let mut sql = format!(
        "SELECT id, at, last_at, repeats, actor, action, account_id, target, decision, outcome, reasons, \
         policy_hash, module_hash, before_state, after_state, source, job_id FROM audit WHERE account_id IN ({})",
        placeholders(1, accounts.len())
    );
    let mut binds: Vec<String> = accounts.to_vec();
    if let Some(a) = &q.action {
        sql.push_str(&format!(" AND action = ${}", binds.len() + 1));
        binds.push(a.clone());
    }
    if let Some(a) = &q.actor {
        sql.push_str(&format!(" AND actor = ${}", binds.len() + 1));
        binds.push(if a.contains(':') {
            a.clone()
        } else {
            format!("user:{a}")
        });
    }
    if let Some(d) = &q.decision {
        sql.push_str(&format!(" AND decision = ${}", binds.len() + 1));
        binds.push(d.clone());
    }
    if let Some(b) = q.before {
        // An integer, written into the text: it compares with an integer
        // column on every store (PostgreSQL refuses `bigint < text`).
        sql.push_str(&format!(" AND id < {b}"));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(pool).await?;
    let mut events = Vec::with_capacity(rows.len());
    let parse = |s: Option<String>| {
        s.and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .unwrap_or(Value::Null)
    };
    for r in &rows {
        events.push(gatehouse_api::AuditEvent {
            id: r.try_get::<i64, _>("id")?,
            at: r.try_get::<i64, _>("at")?,
            last_at: r.try_get::<i64, _>("last_at")?,
            count: r.try_get::<i64, _>("repeats")?,
            actor: r.try_get::<String, _>("actor")?,
            action: r.try_get::<String, _>("action")?,
            account: r.try_get::<Option<String>, _>("account_id")?,
            target: r.try_get::<String, _>("target")?,
            decision: r.try_get::<String, _>("decision")?,
            outcome: r.try_get::<String, _>("outcome")?,
            reasons: parse(r.try_get("reasons")?),
            policy_hash: r.try_get::<String, _>("policy_hash")?,
            module_sha256: r.try_get::<String, _>("module_hash")?,
            before: parse(r.try_get("before_state")?),
            after: parse(r.try_get("after_state")?),
            source: r.try_get::<String, _>("source")?,
            job: r.try_get::<Option<String>, _>("job_id")?,
        });
    }
    let next = events
        .last()
        .filter(|_| i64::try_from(events.len()).unwrap_or(0) == limit)
        .map(|e| e.id);
    Ok(gatehouse_api::AuditLog {
        events,
        next_before: next,
    })
}
