//! Every membership change, through one path, the kernel here: lock → read
//! the facts → decide → allowed: apply, audit and queue mail; denied: audit
//! only and answer 403 with the reasons → commit.
//!
//! With `--decide-early` the decision is first made on a read snapshot,
//! outside the lock; under the lock the facts are read again and the early
//! answer stands only when they are equal (otherwise the module is asked
//! again), so the lock is held to read, compare, write and commit, not to
//! decide. Each family of changes
//! ([`members`], [`invitations`], [`owner_removal`], [`profile`], [`seats`],
//! [`scim`]) has its own file with its plan (which rows it names, what to
//! ask, which trees to lock) and its apply (the writes, from the facts the
//! decision was made on).
//!
//! Why one enum and one function: most real privilege escalations came from
//! one path that skipped the shared check. UI, API, invitation links,
//! approvals, bulk-job items and SCIM all become a [`Change`] and go through
//! [`Host::perform`]; there is no other way to write a membership.
//!
//! The host checks only data integrity here (a row exists, a link was not
//! used); every "who may" question is the module's.

use gatehouse_policy::facts::{RequestedRole, Role};
use gatehouse_policy::{Actor, Check, Decision, Outcome, Params, Source, Target};
use serde_json::{Value, json};
use sqlx::Row;
use std::time::Instant;

use crate::Host;
use crate::audit::{self, AuditEntry};
use crate::error::{ApiError, not_found_account};
use crate::facts::{self, Scope};
use crate::outbox::{self, Mail};
use crate::store::Tx;
use crate::timing::{self, Hold};
use crate::token;

mod invitations;
mod members;
mod owner_removal;
mod profile;
mod scim;

pub use scim::ScimRecord;
mod seats;

/// Invitations and owner-removal requests last this long.
pub const FOURTEEN_DAYS: i64 = 14 * 24 * 3600;

/// How often a change runs when the store keeps rolling it back to break
/// deadlocks (PostgreSQL) before the caller gets 503 `busy`.
const MAX_TRIES: u64 = 5;

/// A change someone asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Invite one address to one account with one role (R2, R3, R4).
    Invite {
        /// Account.
        account: String,
        /// Address.
        email: String,
        /// Offered role.
        role: Role,
    },
    /// Accept an invitation by its link token (R3).
    AcceptInvitation {
        /// The secret from the link.
        token: String,
    },
    /// Resend: rotate the token, reset the expiry (R3).
    ResendInvitation {
        /// Invitation id.
        id: String,
    },
    /// Revoke: the link dies (R3).
    RevokeInvitation {
        /// Invitation id.
        id: String,
    },
    /// Buy extra seats (R4).
    BuySeats {
        /// Account.
        account: String,
        /// How many.
        quantity: i64,
    },
    /// Remove unused extra seats (R4).
    RemoveSeats {
        /// Account.
        account: String,
        /// How many.
        quantity: i64,
    },
    /// Change a member's role (R5).
    ChangeRole {
        /// Account.
        account: String,
        /// Member.
        user: String,
        /// New role.
        role: Role,
    },
    /// Step down from owner (R11).
    StepDown {
        /// Account.
        account: String,
        /// The lower role.
        role: Role,
    },
    /// Set or clear a per-account nickname (R6).
    EditNickname {
        /// Account.
        account: String,
        /// Member.
        user: String,
        /// New nickname; `None` clears it.
        nickname: Option<String>,
    },
    /// Suspend a member (R7).
    Suspend {
        /// Account.
        account: String,
        /// Member.
        user: String,
    },
    /// Lift a suspension (R7).
    Unsuspend {
        /// Account.
        account: String,
        /// Member.
        user: String,
    },
    /// Remove a member from one account (R8); also each bulk-job item (R13).
    Remove {
        /// Account.
        account: String,
        /// Member.
        user: String,
    },
    /// Leave an account (R16).
    Leave {
        /// Account.
        account: String,
    },
    /// Delete one's own global profile (R9).
    DeleteProfile,
    /// Update one's own profile (R15).
    UpdateProfile {
        /// Display name.
        name: Option<String>,
        /// Phone.
        phone: Option<String>,
        /// Default sending country.
        country: Option<String>,
    },
    /// Update one's notification preferences (R15).
    UpdateNotifications {
        /// Email notifications.
        email: bool,
        /// SMS notifications.
        sms: bool,
    },
    /// Sign out one of one's devices (R15).
    SignOutDevice {
        /// Device (session) id.
        device: String,
    },
    /// Mint an API token for oneself (R15): `R15.*` decide from the
    /// credential making the request and the lifetime asked.
    MintToken {
        /// What the token is for.
        label: String,
        /// The accounts it may be used on.
        accounts: Vec<String>,
        /// Reads only.
        read_only: bool,
        /// Its lifetime, in days.
        lifetime_days: i64,
        /// The credential asking.
        credential: gatehouse_policy::Credential,
    },
    /// Ask that an owner lose the owner role (R10).
    RequestOwnerRemoval {
        /// Account.
        account: String,
        /// The owner.
        target: String,
        /// What they drop to; `none` removes them.
        new_role: RequestedRole,
    },
    /// The target owner approves (R10).
    ApproveOwnerRemoval {
        /// Request id.
        id: String,
    },
    /// The target owner declines (R10).
    DeclineOwnerRemoval {
        /// Request id.
        id: String,
    },
    /// The requester cancels (R10).
    CancelOwnerRemoval {
        /// Request id.
        id: String,
    },
    /// Start removing a user from an agency and all its sub-accounts (R13).
    BulkRemove {
        /// The agency.
        account: String,
        /// The user.
        user: String,
    },
    /// Move a member's resources to another member (R14).
    Reassign {
        /// Account.
        account: String,
        /// Current owner.
        from: String,
        /// New owner.
        to: String,
    },
    /// Verify an email domain for an account (R17), proven by the caller's
    /// signed-in address being at it.
    VerifyDomain {
        /// Account.
        account: String,
        /// The domain, lower case.
        domain: String,
        /// The caller signed in by a link mailed to an address at `domain`.
        proven: bool,
    },
    /// SCIM: create (or re-provision, or take over an accepted member of)
    /// a member of the identity provider's account (R17).
    ScimProvision {
        /// The address that names the global identity.
        email: String,
        /// The name a new global user starts with (an existing user's is
        /// never changed).
        name: String,
        /// The identity provider's record of them.
        record: ScimRecord,
        /// Created active, or suspended (`active: false`).
        active: bool,
    },
    /// SCIM `active=false` (R17), with the record's other changes.
    ScimDeactivate {
        /// Member.
        user: String,
        /// The record after the request, when it changed.
        record: Option<ScimRecord>,
    },
    /// SCIM `active=true` (R17), with the record's other changes.
    ScimActivate {
        /// Member.
        user: String,
        /// The record after the request, when it changed.
        record: Option<ScimRecord>,
    },
    /// SCIM PUT or PATCH of anything but `active` (R17).
    ScimUpdate {
        /// Member.
        user: String,
        /// The record after the request.
        record: ScimRecord,
    },
    /// SCIM DELETE (R17).
    ScimDelete {
        /// Member.
        user: String,
    },
}

/// Who attempts a change, from where.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The actor.
    pub actor: Actor,
    /// Where it comes from.
    pub source: Source,
    /// The signed-in session, if any: a session signed out of the account is refused.
    pub session: Option<String>,
    /// A bulk-job item (job id, account) recorded in the same transaction.
    pub job_item: Option<(String, String)>,
}

impl Attempt {
    /// A signed-in user acting through the API.
    pub fn user(user: &str, source: Source, session: Option<String>) -> Attempt {
        Attempt {
            actor: Actor::User(gatehouse_policy::facts::UserId(user.to_owned())),
            source,
            session,
            job_item: None,
        }
    }

    fn user_id(&self) -> Option<&str> {
        match &self.actor {
            Actor::User(u) => Some(u.as_str()),
            Actor::IdentityProvider(_) => None,
        }
    }

    fn idp_account(&self) -> Option<&str> {
        match &self.actor {
            Actor::IdentityProvider(a) => Some(a.as_str()),
            Actor::User(_) => None,
        }
    }

    fn label(&self) -> String {
        match &self.actor {
            Actor::User(u) => format!("user:{u}"),
            Actor::IdentityProvider(a) => format!("idp:{a}"),
        }
    }
}

/// An applied change.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The audit record.
    pub audit_id: i64,
    /// What the caller gets back (ids, one-time tokens, notes).
    pub result: Value,
    /// The determining policies (why it was allowed).
    pub decision: Decision,
}

/// A change resolved against the stored rows: the question to ask.
struct Plan {
    action: &'static str,
    target: Target,
    params: Params,
    account: Option<String>,
    scope: Scope,
}

fn membership(account: &str, user: &str) -> Target {
    Target::Membership {
        account: gatehouse_policy::facts::AccountId(account.to_owned()),
        user: gatehouse_policy::facts::UserId(user.to_owned()),
    }
}

fn target_label(t: &Target) -> String {
    match t {
        Target::Account(a) => format!("account:{a}"),
        Target::User(u) => format!("user:{u}"),
        Target::Membership { account, user } => format!("membership:{account}/{user}"),
        Target::Invitation(i) => format!("invitation:{i}"),
        Target::OwnerRemovalRequest(r) => format!("owner_removal_request:{r}"),
        Target::Device(d) => format!("device:{d}"),
    }
}

async fn require_member(tx: &mut Tx, account: &str, user: &str) -> Result<(), ApiError> {
    let found = sqlx::query("SELECT 1 FROM memberships WHERE account_id = $1 AND user_id = $2")
        .bind(account)
        .bind(user)
        .fetch_optional(&mut **tx)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!(
            "`{user}` is not a member of `{account}`"
        ))),
    }
}

async fn require_account(tx: &mut Tx, account: &str) -> Result<(), ApiError> {
    if facts::account_exists(tx, account).await? {
        Ok(())
    } else {
        Err(not_found_account(account))
    }
}

fn role_param(role: RequestedRole) -> Params {
    Params {
        role: Some(role),
        ..Params::default()
    }
}

fn requested(role: Role) -> RequestedRole {
    match role {
        Role::Owner => RequestedRole::Owner,
        Role::Admin => RequestedRole::Admin,
        Role::Standard => RequestedRole::Standard,
        Role::Basic => RequestedRole::Basic,
    }
}

/// Resolves ids to rows (data integrity) and says what to ask: the
/// change's family does it.
async fn plan(tx: &mut Tx, change: &Change, attempt: &Attempt) -> Result<Plan, ApiError> {
    match change.family() {
        Family::Members => members::plan(tx, change, attempt).await,
        Family::Invitations => invitations::plan(tx, change, attempt).await,
        Family::OwnerRemoval => owner_removal::plan(tx, change, attempt).await,
        Family::Profile => profile::plan(tx, change, attempt).await,
        Family::Seats => seats::plan(tx, change, attempt).await,
        Family::Scim => scim::plan(tx, change, attempt).await,
    }
}

/// A plan on one membership: its account's tree, and the member.
fn on_member(action: &'static str, account: &str, user: &str, params: Params) -> Plan {
    Plan {
        action,
        target: membership(account, user),
        params,
        account: Some(account.to_owned()),
        scope: Scope::account(account).with_user(user),
    }
}

/// A plan on one account: its tree.
fn on_account(action: &'static str, account: &str, params: Params) -> Plan {
    Plan {
        action,
        target: Target::Account(gatehouse_policy::facts::AccountId(account.to_owned())),
        params,
        account: Some(account.to_owned()),
        scope: Scope::account(account),
    }
}

/// A plan on the caller's own profile: no account's tree.
fn on_self(action: &'static str, me: &str) -> Plan {
    Plan {
        action,
        target: Target::User(gatehouse_policy::facts::UserId(me.to_owned())),
        params: Params::default(),
        account: None,
        scope: Scope::default(),
    }
}

/// What one change came to, for its metrics: the action it asked (once
/// its ids resolved) and the decision's outcome (once decided).
#[derive(Debug, Default)]
struct Seen {
    action: Option<&'static str>,
    outcome: Option<&'static str>,
}

/// A decision made on a read snapshot and the question it answered.
struct Early {
    check: Check,
    decided: crate::gate::Decided<Decision>,
}

/// Whether two scopes read the same agency trees.
fn same_trees(a: &Scope, b: &Scope) -> bool {
    a.accounts == b.accounts && a.accounts_of == b.accounts_of && a.subtree_of == b.subtree_of
}

/// The stored row a target names, as JSON (for before/after in the audit).
pub(crate) async fn snapshot(tx: &mut Tx, target: &Target) -> Result<Value, ApiError> {
    let (sql, binds): (&str, Vec<&str>) = match target {
        Target::Account(a) => (
            "SELECT id, name, parent_id, included_seats, extra_seats FROM accounts WHERE id = $1",
            vec![a.as_str()],
        ),
        Target::User(u) => (
            "SELECT id, email, name, phone, country, notify_email, notify_sms FROM users WHERE id = $1",
            vec![u.as_str()],
        ),
        Target::Membership { account, user } => (
            "SELECT account_id, user_id, role, status, nickname, managed_by_idp FROM memberships WHERE account_id = $1 AND user_id = $2",
            vec![account.as_str(), user.as_str()],
        ),
        Target::Invitation(i) => (
            "SELECT id, account_id, email, role, invited_by, sent_at, expires_at, status FROM invitations WHERE id = $1",
            vec![i.as_str()],
        ),
        Target::OwnerRemovalRequest(r) => (
            "SELECT id, account_id, requested_by, target_id, new_role, status, created_at, expires_at FROM owner_removal_requests WHERE id = $1",
            vec![r.as_str()],
        ),
        Target::Device(d) => (
            "SELECT id, user_id, kind, label FROM sessions WHERE id = $1",
            vec![d.as_str()],
        ),
    };
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(b);
    }
    Ok(match q.fetch_optional(&mut **tx).await? {
        Some(row) => crate::store::row_json(&row),
        None => Value::Null,
    })
}

impl Change {
    /// The account a change names in its request, if any.
    fn named_account(&self) -> Option<&str> {
        match self {
            Change::Invite { account, .. }
            | Change::BuySeats { account, .. }
            | Change::RemoveSeats { account, .. }
            | Change::ChangeRole { account, .. }
            | Change::StepDown { account, .. }
            | Change::EditNickname { account, .. }
            | Change::Suspend { account, .. }
            | Change::Unsuspend { account, .. }
            | Change::Remove { account, .. }
            | Change::Leave { account }
            | Change::RequestOwnerRemoval { account, .. }
            | Change::BulkRemove { account, .. }
            | Change::Reassign { account, .. } => Some(account),
            _ => None,
        }
    }
}

impl Host {
    /// Performs a change: decide in the module, then apply and audit
    /// atomically, or audit the denial and change nothing else.
    ///
    /// On PostgreSQL a transaction the store rolled back to break a
    /// deadlock runs again, a bounded number of times.
    ///
    /// The whole path, retries included, is timed into
    /// `gatehouse_change_seconds{action,outcome}` ([`crate::metrics`]).
    pub async fn perform(&self, change: Change, attempt: Attempt) -> Result<Applied, ApiError> {
        let started = Instant::now();
        let mut seen = Seen::default();
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match self.perform_once(&change, &attempt, &mut seen).await {
                Err(ApiError::Busy) if tries < MAX_TRIES => {
                    tokio::time::sleep(std::time::Duration::from_millis(2 * tries)).await;
                }
                result => break result,
            }
        };
        let outcome = match (&result, seen.outcome) {
            (Ok(_), _) => "allow",
            (Err(_), Some("deny")) => "deny",
            (Err(_), _) => "error",
        };
        self.metrics().changed(
            seen.action.unwrap_or("unresolved"),
            outcome,
            started.elapsed(),
        );
        result
    }

    async fn perform_once(
        &self,
        change: &Change,
        attempt: &Attempt,
        seen: &mut Seen,
    ) -> Result<Applied, ApiError> {
        // One instant for the whole attempt: the early decision and the one
        // under the lock see the same `now`, so equal rows are equal facts.
        let now = self.clock.now();
        let early = if self.settings.decide_early {
            timing::timed("early", self.decide_on_snapshot(change, attempt, now)).await
        } else {
            None
        };
        let mut tx = timing::timed("wait", self.store.begin_write()).await?;
        let mut hold = Hold::now();
        let plan = match self.plan_locked(&mut tx, change, attempt, &mut hold).await {
            Ok(p) => p,
            Err(e) => {
                // Nothing to decide (a row is missing, a link was used): a
                // bulk-job item records that in its report; nothing else changes.
                if let Some((job, account)) = &attempt.job_item {
                    let status = if matches!(e, ApiError::NotFound(_)) {
                        "already_removed"
                    } else {
                        "failed"
                    };
                    crate::jobs::finish_item(&mut tx, job, account, status, &json!([]), None, now)
                        .await?;
                    timing::timed("commit", tx.commit()).await?;
                    hold.end();
                } else if matches!(e, ApiError::NotFound(_) | ApiError::BadRequest(_))
                    && let (Some(user), Some(account)) = (attempt.user_id(), change.named_account())
                    && self.conceals(&mut tx, user, account).await?
                {
                    // A stranger learns nothing from the error either: not
                    // that the account exists, nor who is a member of it.
                    return Err(not_found_account(account));
                }
                return Err(e);
            }
        };
        seen.action = Some(plan.action);
        // Accepting an invitation is how a removed member rejoins: a session
        // signed out of the account may do that (and regains the account).
        if let (Some(session), Some(account)) = (&attempt.session, &plan.account)
            && !matches!(change, Change::AcceptInvitation { .. })
        {
            crate::auth::check_not_signed_out(&mut tx, session, account).await?;
            crate::auth::check_token_scope(&mut tx, session, account).await?;
        }
        let facts = timing::timed(
            "facts",
            facts::load(&mut tx, now, &plan.scope, attempt.user_id()),
        )
        .await?;
        let check = Check {
            facts,
            actor: attempt.actor.clone(),
            action: plan.action.to_owned(),
            target: plan.target.clone(),
            params: plan.params.clone(),
            source: attempt.source,
        };
        // The answer made before the lock stands when the facts read under
        // the lock are the very same and the same policies are live: the
        // module is a function of the question.
        let decided = match early {
            Some(e) if e.check == check && e.decided.policy_hash == self.gate.policy_hash() => {
                self.metrics()
                    .decided(&check.action, Some(&e.decided.answer));
                e.decided
            }
            _ => {
                let deciding = Instant::now();
                let d = self.authorize(&check)?;
                timing::record("decide", deciding.elapsed());
                d
            }
        };
        let decision = decided.answer;
        seen.outcome = Some(crate::metrics::outcome(&decision));
        let mut entry = AuditEntry {
            at: now,
            actor: attempt.label(),
            action: plan.action.to_owned(),
            account: plan.account.clone(),
            target: target_label(&plan.target),
            decision: &decision,
            policy_hash: decided.policy_hash,
            module_hash: decided.module_hash,
            before: Value::Null,
            after: Value::Null,
            source: attempt.source,
            envelope: decided.envelope,
            job: attempt.job_item.as_ref().map(|(j, _)| j.clone()),
        };
        if !decision.allowed {
            let hidden = decision.outcome == Outcome::Hidden;
            if hidden {
                // A stranger's attempt is the host's to record, not the
                // account's: its log shows its members' doings only.
                entry.account = None;
            }
            let audit_id = audit::record(&mut tx, &entry).await?;
            if let Some((job, account)) = &attempt.job_item {
                let reasons =
                    serde_json::to_value(&decision.reasons).map_err(ApiError::internal)?;
                crate::jobs::finish_item(
                    &mut tx,
                    job,
                    account,
                    "blocked",
                    &reasons,
                    Some(audit_id),
                    now,
                )
                .await?;
            }
            timing::timed("commit", tx.commit()).await?;
            hold.end();
            if hidden && let Some(account) = &plan.account {
                // The same answer as for an id that does not exist.
                return Err(match &plan.target {
                    Target::Invitation(_) => ApiError::NotFound("no such invitation".into()),
                    Target::OwnerRemovalRequest(r) => {
                        ApiError::NotFound(format!("no owner-removal request `{r}`"))
                    }
                    _ => not_found_account(account),
                });
            }
            return Err(ApiError::refused(decision, Some(audit_id)));
        }
        let applying = Instant::now();
        entry.before = snapshot(&mut tx, &plan.target).await?;
        let applied = match self.apply(&mut tx, change, &plan, &check, now).await {
            Ok(a) => a,
            Err(ApiError::Busy) => return Err(ApiError::Busy),
            Err(e) => {
                // Roll back whatever was written, then record the failed attempt.
                drop(tx);
                self.record_failure(&entry, &e).await;
                return Err(e);
            }
        };
        entry.after = match &applied.after_target {
            Some(t) => snapshot(&mut tx, t).await?,
            None => snapshot(&mut tx, &plan.target).await?,
        };
        let audit_id = audit::record(&mut tx, &entry).await?;
        for mail in &applied.mails {
            outbox::enqueue(&mut tx, mail, now).await?;
        }
        if let Some((job, account)) = &attempt.job_item {
            crate::jobs::finish_item(
                &mut tx,
                job,
                account,
                "removed",
                &json!([]),
                Some(audit_id),
                now,
            )
            .await?;
        }
        timing::record("apply", applying.elapsed());
        crate::faults::point("before_commit");
        timing::timed("commit", tx.commit()).await?;
        hold.end();
        Ok(Applied {
            audit_id,
            result: applied.result,
            decision,
        })
    }

    /// Decides the change on a read snapshot, before taking the write lock,
    /// so that the lock is held only to read the facts again, compare, apply
    /// and commit (`perform_once` keeps this answer only when the facts it
    /// reads under the lock are equal). `None` when anything is missing: the
    /// decision is then made under the lock, with its proper error.
    async fn decide_on_snapshot(
        &self,
        change: &Change,
        attempt: &Attempt,
        now: i64,
    ) -> Option<Early> {
        let mut tx = self.store.begin_read().await.ok()?;
        let plan = plan(&mut tx, change, attempt).await.ok()?;
        let facts = facts::load(&mut tx, now, &plan.scope, attempt.user_id())
            .await
            .ok()?;
        drop(tx);
        let check = Check {
            facts,
            actor: attempt.actor.clone(),
            action: plan.action.to_owned(),
            target: plan.target,
            params: plan.params,
            source: attempt.source,
        };
        let decided = self.gate.authorize(&check).ok()?;
        Some(Early { check, decided })
    }

    /// Resolves the change to its plan with every agency tree the plan
    /// reads locked (PostgreSQL; see [`crate::store`]). The plan is made
    /// once to learn what to lock, then again under the lock, so the rows it
    /// resolved (a target member, an invitation) are the ones the decision
    /// sees. SQLite's write transaction already holds the one lock.
    async fn plan_locked(
        &self,
        tx: &mut Tx,
        change: &Change,
        attempt: &Attempt,
        hold: &mut Hold,
    ) -> Result<Plan, ApiError> {
        let dialect = self.store.dialect();
        let mut planned = plan(tx, change, attempt).await?;
        if dialect == crate::store::Dialect::Sqlite {
            return Ok(planned);
        }
        let mut locked: Option<Scope> = None;
        // A plan's scope comes from the request and from rows that never
        // move between trees, so the second plan locks nothing new; the
        // bound only guards against a loop.
        for _ in 0..3 {
            if locked
                .as_ref()
                .is_some_and(|l| same_trees(l, &planned.scope))
            {
                return Ok(planned);
            }
            timing::timed("wait", facts::lock(tx, dialect, &planned.scope)).await?;
            // The hold starts when the trees are locked.
            *hold = Hold::now();
            locked = Some(planned.scope.clone());
            planned = plan(tx, change, attempt).await?;
        }
        Err(ApiError::Busy)
    }

    async fn record_failure(&self, entry: &AuditEntry<'_>, error: &ApiError) {
        let failed = Decision {
            allowed: false,
            outcome: entry.decision.outcome,
            reasons: vec![gatehouse_policy::Reason {
                policy: "host.apply".into(),
                message: error.to_string(),
            }],
        };
        let e = AuditEntry {
            decision: &failed,
            ..entry.clone()
        };
        let result = async {
            let mut tx = self.store.begin_write().await?;
            audit::record_failed(&mut tx, &e).await?;
            tx.commit().await?;
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(e) = result {
            crate::logging::error(&format!("could not audit a failed change: {e}"));
        }
    }

    /// Applies an allowed change (its family does it) from the facts the
    /// decision was made on.
    async fn apply(
        &self,
        tx: &mut Tx,
        change: &Change,
        plan: &Plan,
        check: &Check,
        now: i64,
    ) -> Result<Effect, ApiError> {
        let cx = Ctx {
            host: self,
            plan,
            check,
            now,
            me: match &check.actor {
                Actor::User(u) => u.0.clone(),
                Actor::IdentityProvider(a) => format!("idp:{a}"),
            },
        };
        match change.family() {
            Family::Members => members::apply(&cx, tx, change).await,
            Family::Invitations => invitations::apply(&cx, tx, change).await,
            Family::OwnerRemoval => owner_removal::apply(&cx, tx, change).await,
            Family::Profile => profile::apply(&cx, tx, change).await,
            Family::Seats => seats::apply(&cx, tx, change).await,
            Family::Scim => scim::apply(&cx, tx, change).await,
        }
    }
}

/// What a family's apply works from: the plan, the decided question (its
/// facts name accounts and users, so mails need no second read) and the
/// instant.
struct Ctx<'a> {
    host: &'a Host,
    plan: &'a Plan,
    check: &'a Check,
    now: i64,
    /// The actor as the rows name it (`user id`, or `idp:ACCOUNT`).
    me: String,
}

impl Ctx<'_> {
    /// The invitation the decision was made on (the plan's target).
    fn invitation(&self) -> Result<&gatehouse_policy::facts::Invitation, ApiError> {
        let Target::Invitation(id) = &self.plan.target else {
            return Err(ApiError::internal("not a change to an invitation"));
        };
        self.check
            .facts
            .invitations
            .iter()
            .find(|i| &i.id == id)
            .ok_or_else(|| ApiError::internal("the invitation is not in the facts"))
    }

    /// The owner-removal request the decision was made on.
    fn request(&self) -> Result<&gatehouse_policy::facts::OwnerRemovalRequest, ApiError> {
        let Target::OwnerRemovalRequest(id) = &self.plan.target else {
            return Err(ApiError::internal(
                "not a change to an owner-removal request",
            ));
        };
        self.check
            .facts
            .owner_removal_requests
            .iter()
            .find(|r| &r.id == id)
            .ok_or_else(|| ApiError::internal("the request is not in the facts"))
    }

    /// Whether the facts hold a membership row of `user` in `account` (any
    /// status).
    fn is_member(&self, account: &str, user: &str) -> bool {
        self.check
            .facts
            .memberships
            .iter()
            .any(|m| m.account.as_str() == account && m.user.as_str() == user)
    }

    /// An account's name from the facts (its id when the facts lack it).
    fn account_name(&self, id: &str) -> String {
        self.check
            .facts
            .accounts
            .iter()
            .find(|a| a.id.as_str() == id)
            .map_or_else(|| id.to_owned(), |a| a.name.clone())
    }
}

/// The families of changes, each in its own file with its plan and apply.
#[derive(Debug, Clone, Copy)]
enum Family {
    Members,
    Invitations,
    OwnerRemoval,
    Profile,
    Seats,
    Scim,
}

impl Change {
    fn family(&self) -> Family {
        match self {
            Change::ChangeRole { .. }
            | Change::StepDown { .. }
            | Change::EditNickname { .. }
            | Change::Suspend { .. }
            | Change::Unsuspend { .. }
            | Change::Remove { .. }
            | Change::Leave { .. }
            | Change::BulkRemove { .. }
            | Change::Reassign { .. } => Family::Members,
            Change::Invite { .. }
            | Change::AcceptInvitation { .. }
            | Change::ResendInvitation { .. }
            | Change::RevokeInvitation { .. } => Family::Invitations,
            Change::RequestOwnerRemoval { .. }
            | Change::ApproveOwnerRemoval { .. }
            | Change::DeclineOwnerRemoval { .. }
            | Change::CancelOwnerRemoval { .. } => Family::OwnerRemoval,
            Change::DeleteProfile
            | Change::UpdateProfile { .. }
            | Change::UpdateNotifications { .. }
            | Change::SignOutDevice { .. }
            | Change::MintToken { .. } => Family::Profile,
            Change::BuySeats { .. } | Change::RemoveSeats { .. } | Change::VerifyDomain { .. } => {
                Family::Seats
            }
            Change::ScimProvision { .. }
            | Change::ScimDeactivate { .. }
            | Change::ScimActivate { .. }
            | Change::ScimUpdate { .. }
            | Change::ScimDelete { .. } => Family::Scim,
        }
    }
}

/// What applying did.
#[derive(Debug, Default)]
struct Effect {
    result: Value,
    mails: Vec<Mail>,
    /// The row to snapshot as "after" when it is not the decision's target.
    after_target: Option<Target>,
}

fn user_email(check: &Check, user: &str) -> String {
    facts::user(&check.facts, user).map_or_else(String::new, |u| u.email.clone())
}

fn user_name(check: &Check, user: &str) -> String {
    facts::user(&check.facts, user).map_or_else(|| user.to_owned(), |u| u.name.clone())
}
