//! Agency bulk removal as a persistent job (R13).
//!
//! Starting the job is one decided change that writes the job and one item
//! per account where the user has a membership. Each item is then a
//! `remove_member` decided at execution time, and the item's result is
//! written in the same transaction as the removal and its audit record. So a
//! crash anywhere leaves each item either untouched (it runs again) or done
//! with its result: nothing is removed twice or lost from the report.
//!
//! **Many hosts.** A running job is worked by one host at a time, the one
//! holding its lease (`jobs.lease_owner`, renewed by a heartbeat every third
//! of [`crate::Settings::job_lease`]). A host that dies (SIGKILL, lost
//! machine) stops renewing; when its lease runs out the next host's worker
//! claims the job and runs the items still pending. The lease is for
//! liveness and for not doing the work twice over, not for correctness: two
//! hosts that both believed they held a job (a host paused past its lease)
//! would still run each item once, because an item's result commits in the
//! transaction that removes and audits, and refuses an item already done.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gatehouse_policy::facts::UserId;
use gatehouse_policy::{Actor, Source};
use serde_json::Value;
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

/// How long a claim on a job lasts unless renewed, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// Wall-clock unix milliseconds: what leases are measured in. Leases are
/// the hosts' bookkeeping, not facts of a decision, so they read the
/// system clock (hosts keep their clocks in step, as NTP does, to well
/// within a lease) and never the host's decision [`crate::Clock`].
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A running job as the worker sees it.
struct Running {
    id: String,
    actor: String,
    user: String,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
}

/// This host's claim on one job, renewed in the background (every third
/// of the lease) until dropped. `lost()` turns true when a renewal finds
/// another host holding the job: this host stops before its next item.
struct Lease {
    lost: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl Host {
    /// Claims `job` for this host unless another live host holds it (its
    /// lease has not run out). One conditional `UPDATE`: on PostgreSQL the
    /// second of two racing claims re-reads the row after the first commits
    /// and no longer matches; SQLite has one writer.
    async fn claim(&self, job: &str) -> Result<Option<Lease>, ApiError> {
        let lease = millis(self.settings.job_lease);
        let now = wall_ms();
        let claimed = sqlx::query(
            "UPDATE jobs SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND status = 'running' \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $4)",
        )
        .bind(self.instance())
        .bind(now.saturating_add(lease))
        .bind(job)
        .bind(now)
        .execute(self.store.pool())
        .await?
        .rows_affected();
        if claimed != 1 {
            return Ok(None);
        }
        let lost = Arc::new(AtomicBool::new(false));
        let (store, me, id, flag) = (
            self.store.clone(),
            self.instance.clone(),
            job.to_owned(),
            lost.clone(),
        );
        let every = (self.settings.job_lease / 3).max(Duration::from_millis(10));
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let renewed = sqlx::query(
                    "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
                )
                .bind(wall_ms().saturating_add(lease))
                .bind(&id)
                .bind(&*me)
                .execute(store.pool())
                .await;
                match renewed {
                    Ok(r) if r.rows_affected() == 1 => {}
                    // Another host holds it now (or it is done): stop.
                    Ok(_) => {
                        flag.store(true, Ordering::Relaxed);
                        return;
                    }
                    // A store hiccup: try again; the lease may run out.
                    Err(e) => crate::logging::warn(&format!("renewing the lease on job {id}: {e}")),
                }
            }
        });
        Ok(Some(Lease { lost, heartbeat }))
    }

    /// Runs every unfinished job this host can claim to completion; returns
    /// how many items ran. Jobs another live host holds are left to it.
    /// Safe to call from several places and several hosts: an item runs at
    /// most once, because its result commits with its removal.
    pub async fn run_jobs(&self) -> Result<usize, ApiError> {
        Ok(self.run_claimable().await?.0)
    }

    /// [`Host::run_jobs`], and how many running jobs other hosts hold.
    async fn run_claimable(&self) -> Result<(usize, usize), ApiError> {
        let rows = sqlx::query(
            "SELECT id, actor_id, user_id, lease_owner, lease_until FROM jobs WHERE status = 'running' ORDER BY created_at, id",
        )
        .fetch_all(self.store.pool())
        .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for r in &rows {
            jobs.push(Running {
                id: r.try_get("id")?,
                actor: r.try_get("actor_id")?,
                user: r.try_get("user_id")?,
                lease_owner: r.try_get("lease_owner")?,
                lease_until: r.try_get("lease_until")?,
            });
        }
        let (mut ran, mut elsewhere) = (0, 0);
        for job in jobs {
            let Some(lease) = self.claim(&job.id).await? else {
                elsewhere += 1;
                continue;
            };
            if let Some(other) = job.lease_owner.as_deref().filter(|o| *o != self.instance()) {
                println!(
                    "gatehouse: took over job {} from host {other} (its lease ran out {} ms ago)",
                    job.id,
                    wall_ms() - job.lease_until.unwrap_or(0)
                );
            }
            ran += self.work(&job, &lease).await?;
            if lease.lost() {
                elsewhere += 1;
            }
        }
        Ok((ran, elsewhere))
    }

    /// Runs the pending items of a job this host holds, then marks it done
    /// when none is left.
    async fn work(&self, job: &Running, lease: &Lease) -> Result<usize, ApiError> {
        let items: Vec<String> = sqlx::query_scalar(
            "SELECT account_id FROM job_items WHERE job_id = $1 AND status = 'pending' ORDER BY account_id",
        )
        .bind(&job.id)
        .fetch_all(self.store.pool())
        .await?;
        let mut ran = 0;
        for account in items {
            if lease.lost() {
                return Ok(ran);
            }
            crate::faults::point("job_item");
            let attempt = Attempt {
                actor: Actor::User(UserId(job.actor.clone())),
                source: Source::Job,
                session: None,
                job_item: Some((job.id.clone(), account.clone())),
            };
            let change = Change::Remove {
                account: account.clone(),
                user: job.user.clone(),
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
        .bind(&job.id)
        .fetch_one(&mut *tx)
        .await?;
        if left == 0 {
            sqlx::query("UPDATE jobs SET status = 'done', finished_at = $1 WHERE id = $2 AND status = 'running'")
                .bind(self.clock.now())
                .bind(&job.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(ran)
    }

    /// Runs jobs until none is left running, waiting for the ones other
    /// hosts hold (a host that died holds its jobs until its lease runs
    /// out; then this one takes them over). What `gatehouse jobs` does.
    pub async fn run_jobs_to_completion(&self) -> Result<usize, ApiError> {
        let mut ran = 0;
        let mut said = false;
        loop {
            let (n, elsewhere) = self.run_claimable().await?;
            ran += n;
            if elsewhere == 0 {
                return Ok(ran);
            }
            if !said {
                println!(
                    "{elsewhere} running job(s) held by another host: waiting until it finishes them or its lease runs out (at most {} ms)",
                    self.settings.job_lease.as_millis()
                );
                said = true;
            }
            tokio::time::sleep((self.settings.job_lease / 4).max(Duration::from_millis(10))).await;
        }
    }

    /// Runs jobs whenever woken, and at least every second (jobs left by a
    /// crash, or by a host that died, resume here). Never returns.
    pub async fn job_worker(self) {
        loop {
            if let Err(e) = self.run_jobs().await {
                crate::logging::warn(&format!("bulk job paused: {e}"));
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), self.jobs_wake.notified()).await;
        }
    }

    /// A job's progress and per-account report.
    pub async fn job_report(&self, id: &str) -> Result<(String, gatehouse_api::Job), ApiError> {
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
            items.push(gatehouse_api::JobItem {
                account: r.try_get::<String, _>("account_id")?,
                status,
                reasons: r
                    .try_get::<Option<String>, _>("reasons")?
                    .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                    .unwrap_or(Value::Null),
                audit_id: r.try_get::<Option<i64>, _>("audit_id")?,
                done_at: r.try_get::<Option<i64>, _>("done_at")?,
            });
        }
        let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        Ok((
            account,
            gatehouse_api::Job {
                job: id.to_owned(),
                account: job.try_get::<String, _>("account_id")?,
                user: job.try_get::<String, _>("user_id")?,
                started_by: job.try_get::<String, _>("actor_id")?,
                status: job.try_get::<String, _>("status")?,
                progress: gatehouse_api::Progress { done, total },
                items,
            },
        ))
    }
}
