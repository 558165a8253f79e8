//! Agency bulk removal as a persistent job (R13).
//!
//! Starting the job is one decided change that writes the job and one item
//! per account where the user has a membership. Each item is then a
//! `remove_member` decided at execution time, and the item's result is
//! written in the same transaction as the removal and its audit record. So a
//! crash anywhere leaves each item either untouched (it runs again) or done
//! with its result: nothing is removed twice or lost from the report.

use gatehouse_policy::facts::UserId;
use gatehouse_policy::{Actor, Source};
use serde_json::{Value, json};
use sqlx::Row;

use crate::Host;
use crate::change::{Attempt, Change};
use crate::error::ApiError;
use crate::store::Tx;

/// Creates a job and its items; returns (job id, item count).
pub(crate) async fn create(
    tx: &mut Tx,
    actor: &str,
    agency: &str,
    user: &str,
    now: i64,
) -> Result<(String, usize), ApiError> {
    let id = crate::token::new_id("job");
    sqlx::query(
        "INSERT INTO jobs (id, kind, actor_id, account_id, user_id, status, created_at) VALUES ($1, 'bulk_remove', $2, $3, $4, 'running', $5)",
    )
    .bind(&id)
    .bind(actor)
    .bind(agency)
    .bind(user)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let n = sqlx::query(
        "INSERT INTO job_items (job_id, account_id, status) \
         WITH RECURSIVE down(id) AS (SELECT id FROM accounts WHERE id = $1 \
           UNION SELECT a.id FROM accounts a JOIN down ON a.parent_id = down.id) \
         SELECT $2, m.account_id, 'pending' FROM memberships m WHERE m.user_id = $3 AND m.account_id IN (SELECT id FROM down)",
    )
    .bind(agency)
    .bind(&id)
    .bind(user)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok((id, usize::try_from(n).unwrap_or(0)))
}

/// Records an item's result. Refuses (rolling the change back) when the
/// item is no longer pending: that would be a second run of it.
pub(crate) async fn finish_item(
    tx: &mut Tx,
    job: &str,
    account: &str,
    status: &str,
    reasons: &Value,
    audit_id: Option<i64>,
    now: i64,
) -> Result<(), ApiError> {
    let done = sqlx::query(
        "UPDATE job_items SET status = $1, reasons = $2, audit_id = $3, done_at = $4 \
         WHERE job_id = $5 AND account_id = $6 AND status = 'pending'",
    )
    .bind(status)
    .bind(reasons.to_string())
    .bind(audit_id)
    .bind(now)
    .bind(job)
    .bind(account)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if done == 1 {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "job {job}: the item for `{account}` is already done"
        )))
    }
}

impl Host {
    /// Runs every unfinished job to completion; returns how many items ran.
    /// Safe to call from several places: an item runs at most once.
    pub async fn run_jobs(&self) -> Result<usize, ApiError> {
        let jobs = sqlx::query("SELECT id, actor_id, user_id FROM jobs WHERE status = 'running' ORDER BY created_at, id")
            .fetch_all(self.store.pool())
            .await?;
        let mut ran = 0;
        for job in jobs {
            let id: String = job.try_get("id")?;
            let actor: String = job.try_get("actor_id")?;
            let user: String = job.try_get("user_id")?;
            let items: Vec<String> = sqlx::query_scalar(
                "SELECT account_id FROM job_items WHERE job_id = $1 AND status = 'pending' ORDER BY account_id",
            )
            .bind(&id)
            .fetch_all(self.store.pool())
            .await?;
            for account in items {
                crate::faults::point("job_item");
                let attempt = Attempt {
                    actor: Actor::User(UserId(actor.clone())),
                    source: Source::Job,
                    session: None,
                    job_item: Some((id.clone(), account.clone())),
                };
                let change = Change::Remove {
                    account: account.clone(),
                    user: user.clone(),
                };
                match self.perform(change, attempt).await {
                    Ok(_)
                    | Err(
                        ApiError::Denied { .. }
                        | ApiError::Inapplicable { .. }
                        | ApiError::NotFound(_)
                        | ApiError::Conflict(_),
                    ) => {
                        ran += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            let mut tx = self.store.begin_write().await?;
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM job_items WHERE job_id = $1 AND status = 'pending'",
            )
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            if left == 0 {
                sqlx::query("UPDATE jobs SET status = 'done', finished_at = $1 WHERE id = $2 AND status = 'running'")
                    .bind(self.clock.now())
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(ran)
    }

    /// A job's progress and per-account report.
    pub async fn job_report(&self, id: &str) -> Result<(String, Value), ApiError> {
        let job = sqlx::query("SELECT id, account_id, user_id, actor_id, status, created_at, finished_at FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.store.pool())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no job `{id}`")))?;
        let account: String = job.try_get("account_id")?;
        let rows = sqlx::query(
            "SELECT account_id, status, reasons, audit_id, done_at FROM job_items WHERE job_id = $1 ORDER BY account_id",
        )
        .bind(id)
        .fetch_all(self.store.pool())
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut done = 0;
        for r in &rows {
            let status: String = r.try_get("status")?;
            if status != "pending" {
                done += 1;
            }
            items.push(json!({
                "account": r.try_get::<String, _>("account_id")?,
                "status": status,
                "reasons": r.try_get::<Option<String>, _>("reasons")?
                    .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                    .unwrap_or(Value::Null),
                "audit_id": r.try_get::<Option<i64>, _>("audit_id")?,
                "done_at": r.try_get::<Option<i64>, _>("done_at")?,
            }));
        }
        Ok((
            account,
            json!({
                "job": id,
                "account": job.try_get::<String, _>("account_id")?,
                "user": job.try_get::<String, _>("user_id")?,
                "started_by": job.try_get::<String, _>("actor_id")?,
                "status": job.try_get::<String, _>("status")?,
                "progress": {"done": done, "total": rows.len()},
                "items": items,
            }),
        ))
    }
}
