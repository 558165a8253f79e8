//! Every membership change, through one path: open a write transaction →
//! load the facts → ask the module → allowed: apply and audit; denied: audit
//! only and answer 403 with the reasons → commit.
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

use crate::Host;
use crate::audit::{self, AuditEntry};
use crate::error::{ApiError, not_found_account};
use crate::facts::{self, Scope};
use crate::outbox::{self, Mail};
use crate::store::Tx;
use crate::token;

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
    /// SCIM: create (or re-provision) a member of the identity provider's account (R17).
    ScimProvision {
        /// Address (SCIM `userName`).
        email: String,
        /// Display name.
        name: String,
    },
    /// SCIM `active=false` (R17).
    ScimDeactivate {
        /// Member.
        user: String,
    },
    /// SCIM `active=true` (R17).
    ScimActivate {
        /// Member.
        user: String,
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

struct InvitationRow {
    id: String,
    account: String,
    status: String,
}

async fn invitation_row(tx: &mut Tx, column: &str, value: &str) -> Result<InvitationRow, ApiError> {
    let sql = format!("SELECT id, account_id, status FROM invitations WHERE {column} = $1");
    let row = sqlx::query(&sql)
        .bind(value)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such invitation".into()))?;
    Ok(InvitationRow {
        id: row.try_get("id")?,
        account: row.try_get("account_id")?,
        status: row.try_get("status")?,
    })
}

async fn request_row(tx: &mut Tx, id: &str) -> Result<(String, String), ApiError> {
    let row = sqlx::query("SELECT account_id, status FROM owner_removal_requests WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no owner-removal request `{id}`")))?;
    Ok((row.try_get("account_id")?, row.try_get("status")?))
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

/// Resolves ids to rows (data integrity) and says what to ask.
async fn plan(tx: &mut Tx, change: &Change, attempt: &Attempt) -> Result<Plan, ApiError> {
    let me = attempt.user_id().unwrap_or_default().to_owned();
    let on_member = |action: &'static str, account: &str, user: &str, params: Params| Plan {
        action,
        target: membership(account, user),
        params,
        account: Some(account.to_owned()),
        scope: Scope::account(account).with_user(user),
    };
    let on_account = |action: &'static str, account: &str, params: Params| Plan {
        action,
        target: Target::Account(gatehouse_policy::facts::AccountId(account.to_owned())),
        params,
        account: Some(account.to_owned()),
        scope: Scope::account(account),
    };
    let on_self = |action: &'static str| Plan {
        action,
        target: Target::User(gatehouse_policy::facts::UserId(me.clone())),
        params: Params::default(),
        account: None,
        scope: Scope::default(),
    };
    let idp = || {
        attempt
            .idp_account()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::internal("SCIM change without an identity provider"))
    };
    Ok(match change {
        Change::Invite {
            account,
            email,
            role,
        } => {
            require_account(tx, account).await?;
            on_account(
                "invite",
                account,
                Params {
                    role: Some(requested(*role)),
                    email: Some(email.clone()),
                    ..Params::default()
                },
            )
        }
        Change::AcceptInvitation { token } => {
            let inv = invitation_row(tx, "token_hash", &token::hash(token)).await?;
            // Data integrity: an accepted link was used, there is nothing
            // left to accept (a revoked or expired one is R3's to refuse).
            if inv.status == "accepted" {
                return Err(ApiError::Conflict(
                    "this invitation was already used".into(),
                ));
            }
            invitation_plan("accept_invitation", inv)
        }
        Change::ResendInvitation { id } | Change::RevokeInvitation { id } => {
            let inv = invitation_row(tx, "id", id).await?;
            let action = if matches!(change, Change::ResendInvitation { .. }) {
                "resend_invitation"
            } else {
                "revoke_invitation"
            };
            invitation_plan(action, inv)
        }
        Change::BuySeats { account, quantity } | Change::RemoveSeats { account, quantity } => {
            require_account(tx, account).await?;
            let action = if matches!(change, Change::BuySeats { .. }) {
                "buy_seats"
            } else {
                "remove_seats"
            };
            on_account(
                action,
                account,
                Params {
                    quantity: Some(*quantity),
                    ..Params::default()
                },
            )
        }
        Change::ChangeRole {
            account,
            user,
            role,
        } => {
            require_member(tx, account, user).await?;
            on_member("change_role", account, user, role_param(requested(*role)))
        }
        Change::StepDown { account, role } => {
            require_member(tx, account, &me).await?;
            on_member("step_down", account, &me, role_param(requested(*role)))
        }
        Change::EditNickname { account, user, .. } => {
            require_member(tx, account, user).await?;
            on_member("edit_nickname", account, user, Params::default())
        }
        Change::Suspend { account, user } => {
            require_member(tx, account, user).await?;
            on_member("suspend", account, user, Params::default())
        }
        Change::Unsuspend { account, user } => {
            require_member(tx, account, user).await?;
            on_member("unsuspend", account, user, Params::default())
        }
        Change::Remove { account, user } => {
            require_member(tx, account, user).await?;
            on_member("remove_member", account, user, Params::default())
        }
        Change::Leave { account } => {
            require_member(tx, account, &me).await?;
            on_member("leave", account, &me, Params::default())
        }
        Change::DeleteProfile => {
            let mut p = on_self("delete_profile");
            p.scope.accounts_of = Some(me.clone());
            p
        }
        Change::UpdateProfile { .. } => on_self("update_profile"),
        Change::UpdateNotifications { .. } => on_self("update_notifications"),
        Change::SignOutDevice { device } => {
            let found = sqlx::query("SELECT 1 FROM sessions WHERE id = $1")
                .bind(device)
                .fetch_optional(&mut **tx)
                .await?;
            if found.is_none() {
                return Err(ApiError::NotFound(format!("no device `{device}`")));
            }
            let mut p = on_self("sign_out_device");
            p.target = Target::Device(gatehouse_policy::facts::DeviceId(device.clone()));
            p.scope.devices.insert(device.clone());
            p
        }
        Change::MintToken {
            lifetime_days,
            credential,
            ..
        } => {
            let mut p = on_self("mint_token");
            p.params = Params {
                credential: Some(*credential),
                lifetime_days: Some(*lifetime_days),
                ..Params::default()
            };
            p
        }
        Change::RequestOwnerRemoval {
            account,
            target,
            new_role,
        } => {
            require_member(tx, account, target).await?;
            on_member(
                "request_owner_removal",
                account,
                target,
                role_param(*new_role),
            )
        }
        Change::ApproveOwnerRemoval { id }
        | Change::DeclineOwnerRemoval { id }
        | Change::CancelOwnerRemoval { id } => {
            let (account, _status) = request_row(tx, id).await?;
            let action = match change {
                Change::ApproveOwnerRemoval { .. } => "approve_owner_removal",
                Change::DeclineOwnerRemoval { .. } => "decline_owner_removal",
                _ => "cancel_owner_removal",
            };
            Plan {
                action,
                target: Target::OwnerRemovalRequest(gatehouse_policy::facts::RequestId(id.clone())),
                params: Params::default(),
                account: Some(account.clone()),
                scope: Scope::account(&account),
            }
        }
        Change::BulkRemove { account, user } => {
            require_account(tx, account).await?;
            let mut p = on_account(
                "bulk_remove",
                account,
                Params {
                    user: Some(gatehouse_policy::facts::UserId(user.clone())),
                    ..Params::default()
                },
            );
            p.scope.users.insert(user.clone());
            // The module tells an agency by its sub-accounts (R13.agency-only):
            // without them every agency looks like a plain account.
            p.scope.subtree_of = Some(account.clone());
            p
        }
        Change::Reassign { account, from, to } => {
            require_member(tx, account, from).await?;
            require_member(tx, account, to).await.map_err(|_| {
                ApiError::BadRequest(format!(
                    "`{to}` is not a member of `{account}`: resources go to a member of the same account"
                ))
            })?;
            let mut p = on_member(
                "reassign_resources",
                account,
                from,
                Params {
                    to: Some(gatehouse_policy::facts::UserId(to.clone())),
                    ..Params::default()
                },
            );
            p.scope.users.insert(to.clone());
            p
        }
        Change::ScimProvision { email, .. } => {
            let account = idp()?;
            on_account(
                "scim_provision",
                &account,
                Params {
                    email: Some(email.clone()),
                    ..Params::default()
                },
            )
        }
        Change::ScimDeactivate { user }
        | Change::ScimActivate { user }
        | Change::ScimDelete { user } => {
            let account = idp()?;
            require_member(tx, &account, user).await?;
            let action = match change {
                Change::ScimDeactivate { .. } => "scim_deactivate",
                Change::ScimActivate { .. } => "scim_activate",
                _ => "scim_delete",
            };
            on_member(action, &account, user, Params::default())
        }
    })
}

fn invitation_plan(action: &'static str, inv: InvitationRow) -> Plan {
    Plan {
        action,
        target: Target::Invitation(gatehouse_policy::facts::InvitationId(inv.id)),
        params: Params::default(),
        account: Some(inv.account.clone()),
        scope: Scope::account(&inv.account),
    }
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
    pub async fn perform(&self, change: Change, attempt: Attempt) -> Result<Applied, ApiError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.perform_once(&change, &attempt).await {
                Err(ApiError::Busy) if tries < MAX_TRIES => {
                    tokio::time::sleep(std::time::Duration::from_millis(2 * tries)).await;
                }
                result => return result,
            }
        }
    }

    async fn perform_once(&self, change: &Change, attempt: &Attempt) -> Result<Applied, ApiError> {
        let mut tx = self.store.begin_write().await?;
        let now = self.clock.now();
        let plan = match self.plan_locked(&mut tx, change, attempt).await {
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
                    tx.commit().await?;
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
        // Accepting an invitation is how a removed member rejoins: a session
        // signed out of the account may do that (and regains the account).
        if let (Some(session), Some(account)) = (&attempt.session, &plan.account)
            && !matches!(change, Change::AcceptInvitation { .. })
        {
            crate::auth::check_not_signed_out(&mut tx, session, account).await?;
            crate::auth::check_token_scope(&mut tx, session, account).await?;
        }
        let facts = facts::load(&mut tx, now, &plan.scope, attempt.user_id()).await?;
        let check = Check {
            facts,
            actor: attempt.actor.clone(),
            action: plan.action.to_owned(),
            target: plan.target.clone(),
            params: plan.params.clone(),
            source: attempt.source,
        };
        let decided = self.gate.authorize(&check)?;
        let decision = decided.answer;
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
            tx.commit().await?;
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
        crate::faults::point("before_commit");
        tx.commit().await?;
        Ok(Applied {
            audit_id,
            result: applied.result,
            decision,
        })
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
            facts::lock(tx, dialect, &planned.scope).await?;
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
            eprintln!("gatehouse: could not audit a failed change: {e}");
        }
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        change: &Change,
        plan: &Plan,
        check: &Check,
        now: i64,
    ) -> Result<Effect, ApiError> {
        let me = match &check.actor {
            gatehouse_policy::Actor::User(u) => u.0.clone(),
            gatehouse_policy::Actor::IdentityProvider(a) => format!("idp:{a}"),
        };
        let account_name = |id: &str| {
            check
                .facts
                .accounts
                .iter()
                .find(|a| a.id.as_str() == id)
                .map_or_else(|| id.to_owned(), |a| a.name.clone())
        };
        let mut fx = Effect::default();
        match change {
            Change::Invite {
                account,
                email,
                role,
            } => {
                let id = token::new_id("inv");
                let secret = token::new_secret("ghi");
                sqlx::query(
                    "INSERT INTO invitations (id, account_id, email, email_lower, role, invited_by, token_hash, sent_at, expires_at, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')",
                )
                .bind(&id)
                .bind(account)
                .bind(email)
                .bind(email.to_lowercase())
                .bind(role.as_str())
                .bind(&me)
                .bind(token::hash(&secret))
                .bind(now)
                .bind(now + FOURTEEN_DAYS)
                .execute(&mut **tx)
                .await?;
                fx.mails.push(invitation_mail(
                    &self.settings.public_url,
                    email,
                    &account_name(account),
                    *role,
                    &secret,
                ));
                fx.after_target = Some(Target::Invitation(gatehouse_policy::facts::InvitationId(
                    id.clone(),
                )));
                fx.result =
                    json!({"invitation": id, "token": secret, "expires_at": now + FOURTEEN_DAYS});
            }
            Change::AcceptInvitation { .. } => {
                let Target::Invitation(id) = &plan.target else {
                    return Err(ApiError::internal("accept without an invitation"));
                };
                let row = sqlx::query("SELECT account_id, role FROM invitations WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_one(&mut **tx)
                    .await?;
                let account: String = row.try_get("account_id")?;
                let role: String = row.try_get("role")?;
                let exists =
                    sqlx::query("SELECT 1 FROM memberships WHERE account_id = $1 AND user_id = $2")
                        .bind(&account)
                        .bind(&me)
                        .fetch_optional(&mut **tx)
                        .await?;
                if exists.is_some() {
                    return Err(ApiError::Conflict(format!(
                        "you are already a member of {}",
                        account_name(&account)
                    )));
                }
                sqlx::query(
                    "INSERT INTO memberships (account_id, user_id, role, status, managed_by_idp, created_at) VALUES ($1, $2, $3, 'active', 0, $4)",
                )
                .bind(&account)
                .bind(&me)
                .bind(&role)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE invitations SET status = 'accepted', accepted_by = $1 WHERE id = $2",
                )
                .bind(&me)
                .bind(id.as_str())
                .execute(&mut **tx)
                .await?;
                crate::auth::restore_account(tx, &me, &account).await?;
                fx.result = json!({"account": account, "role": role});
            }
            Change::ResendInvitation { id } => {
                let secret = token::new_secret("ghi");
                sqlx::query(
                    "UPDATE invitations SET token_hash = $1, sent_at = $2, expires_at = $3 WHERE id = $4",
                )
                .bind(token::hash(&secret))
                .bind(now)
                .bind(now + FOURTEEN_DAYS)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                let row =
                    sqlx::query("SELECT email, account_id, role FROM invitations WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut **tx)
                        .await?;
                let email: String = row.try_get("email")?;
                let account: String = row.try_get("account_id")?;
                let role: Role = facts::word(&row.try_get::<String, _>("role")?)?;
                fx.mails.push(invitation_mail(
                    &self.settings.public_url,
                    &email,
                    &account_name(&account),
                    role,
                    &secret,
                ));
                fx.result =
                    json!({"invitation": id, "token": secret, "expires_at": now + FOURTEEN_DAYS});
            }
            Change::RevokeInvitation { id } => {
                sqlx::query("UPDATE invitations SET status = 'revoked' WHERE id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                fx.result = json!({"invitation": id, "status": "revoked"});
            }
            Change::BuySeats { account, quantity } | Change::RemoveSeats { account, quantity } => {
                let delta = if matches!(change, Change::BuySeats { .. }) {
                    *quantity
                } else {
                    -*quantity
                };
                sqlx::query("UPDATE accounts SET extra_seats = extra_seats + $1 WHERE id = $2")
                    .bind(delta)
                    .bind(account)
                    .execute(&mut **tx)
                    .await?;
                fx.result = json!({"account": account});
            }
            Change::ChangeRole {
                account,
                user,
                role,
            } => {
                set_role(tx, account, user, role.as_str()).await?;
                fx.result = json!({"account": account, "user": user, "role": role});
            }
            Change::StepDown { account, role } => {
                set_role(tx, account, &me, role.as_str()).await?;
                fx.result = json!({"account": account, "user": me, "role": role});
            }
            Change::EditNickname {
                account,
                user,
                nickname,
            } => {
                sqlx::query(
                    "UPDATE memberships SET nickname = $1 WHERE account_id = $2 AND user_id = $3",
                )
                .bind(nickname)
                .bind(account)
                .bind(user)
                .execute(&mut **tx)
                .await?;
                fx.result = json!({"account": account, "user": user, "nickname": nickname});
            }
            Change::Suspend { user, .. } | Change::ScimDeactivate { user } => {
                let account = plan.account.clone().unwrap_or_default();
                set_status(tx, &account, user, "suspended").await?;
                crate::auth::sign_out_of_account(tx, user, &account, now).await?;
                fx.result = json!({"account": account, "user": user, "status": "suspended"});
            }
            Change::Unsuspend { user, .. } | Change::ScimActivate { user } => {
                let account = plan.account.clone().unwrap_or_default();
                set_status(tx, &account, user, "active").await?;
                crate::auth::restore_account(tx, user, &account).await?;
                fx.result = json!({"account": account, "user": user, "status": "active"});
            }
            Change::Remove { account, user } => {
                remove_membership(tx, account, user, now).await?;
                fx.mails.push(Mail {
                    to: user_email(check, user),
                    subject: format!("You no longer have access to {}", account_name(account)),
                    body: format!(
                        "Your access to {} was removed. Your other accounts are not affected.",
                        account_name(account)
                    ),
                });
                fx.result = json!({"account": account, "user": user, "removed": true});
                if let Some(via) = inherited_access(check, account, user) {
                    fx.result["note"] = json!(format!(
                        "{} still has access to {} through {}: remove them there to end it",
                        user_name(check, user),
                        account_name(account),
                        account_name(&via)
                    ));
                }
            }
            Change::Leave { account } => {
                remove_membership(tx, account, &me, now).await?;
                fx.result = json!({"account": account, "left": true});
            }
            Change::ScimDelete { user } => {
                let account = plan.account.clone().unwrap_or_default();
                remove_membership(tx, &account, user, now).await?;
                fx.result = json!({"account": account, "user": user, "removed": true});
            }
            Change::DeleteProfile => {
                let accounts: Vec<String> =
                    sqlx::query_scalar("SELECT account_id FROM memberships WHERE user_id = $1")
                        .bind(&me)
                        .fetch_all(&mut **tx)
                        .await?;
                for a in &accounts {
                    remove_membership(tx, a, &me, now).await?;
                }
                sqlx::query("DELETE FROM session_revocations WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)")
                    .bind(&me)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(&me)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(&me)
                    .execute(&mut **tx)
                    .await?;
                fx.result = json!({"user": me, "deleted": true, "left_accounts": accounts});
            }
            Change::UpdateProfile {
                name,
                phone,
                country,
            } => {
                sqlx::query(
                    "UPDATE users SET name = COALESCE($1, name), phone = COALESCE($2, phone), country = COALESCE($3, country) WHERE id = $4",
                )
                .bind(name)
                .bind(phone)
                .bind(country)
                .bind(&me)
                .execute(&mut **tx)
                .await?;
                fx.result = json!({"user": me});
            }
            Change::UpdateNotifications { email, sms } => {
                sqlx::query("UPDATE users SET notify_email = $1, notify_sms = $2 WHERE id = $3")
                    .bind(i64::from(*email))
                    .bind(i64::from(*sms))
                    .bind(&me)
                    .execute(&mut **tx)
                    .await?;
                fx.result = json!({"email": email, "sms": sms});
            }
            Change::SignOutDevice { device } => {
                sqlx::query("DELETE FROM session_revocations WHERE session_id = $1")
                    .bind(device)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM sessions WHERE id = $1")
                    .bind(device)
                    .execute(&mut **tx)
                    .await?;
                fx.result = json!({"device": device, "signed_out": true});
            }
            Change::MintToken {
                label,
                accounts,
                read_only,
                lifetime_days,
                ..
            } => {
                let scope = crate::auth::TokenScope {
                    accounts: accounts.clone(),
                    read_only: *read_only,
                };
                let expires_at = now + lifetime_days * 24 * 3600;
                let s = crate::auth::insert_token(tx, &me, label, &scope, now, expires_at).await?;
                fx.result = json!({
                    "id": s.id,
                    "token": s.token,
                    "accounts": accounts,
                    "access": if *read_only { "read" } else { "write" },
                    "expires_at": expires_at,
                    "note": "shown once: store it now",
                });
                fx.after_target = Some(Target::Device(gatehouse_policy::facts::DeviceId(s.id)));
            }
            Change::RequestOwnerRemoval {
                account,
                target,
                new_role,
            } => {
                let id = token::new_id("orr");
                sqlx::query(
                    "INSERT INTO owner_removal_requests (id, account_id, requested_by, target_id, new_role, status, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
                )
                .bind(&id)
                .bind(account)
                .bind(&me)
                .bind(target)
                .bind(new_role.as_str())
                .bind(now)
                .bind(now + FOURTEEN_DAYS)
                .execute(&mut **tx)
                .await?;
                fx.mails.push(Mail {
                    to: user_email(check, target),
                    subject: format!("{} asks you to give up ownership of {}", user_name(check, &me), account_name(account)),
                    body: format!(
                        "{} asked that your owner role on {} become `{}`. Approve or decline within 14 days.",
                        user_name(check, &me),
                        account_name(account),
                        new_role.as_str()
                    ),
                });
                fx.after_target = Some(Target::OwnerRemovalRequest(
                    gatehouse_policy::facts::RequestId(id.clone()),
                ));
                fx.result = json!({"request": id, "expires_at": now + FOURTEEN_DAYS});
            }
            Change::ApproveOwnerRemoval { id } => {
                let row = sqlx::query("SELECT account_id, target_id, new_role, requested_by FROM owner_removal_requests WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut **tx)
                    .await?;
                let account: String = row.try_get("account_id")?;
                let target: String = row.try_get("target_id")?;
                let new_role: String = row.try_get("new_role")?;
                sqlx::query("UPDATE owner_removal_requests SET status = 'approved' WHERE id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                if new_role == "none" {
                    remove_membership(tx, &account, &target, now).await?;
                } else {
                    set_role(tx, &account, &target, &new_role).await?;
                }
                let owners: Vec<String> = sqlx::query_scalar(
                    "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.account_id = $1 AND m.role = 'owner' AND m.user_id <> $2 ORDER BY u.email",
                )
                .bind(&account)
                .bind(&target)
                .fetch_all(&mut **tx)
                .await?;
                for to in owners {
                    fx.mails.push(Mail {
                        to,
                        subject: format!("{} is no longer an owner of {}", user_name(check, &target), account_name(&account)),
                        body: format!(
                            "{} approved the request to remove their owner role on {} (now: {new_role}).",
                            user_name(check, &target),
                            account_name(&account)
                        ),
                    });
                }
                fx.result = json!({"request": id, "status": "approved", "target": target, "new_role": new_role});
            }
            Change::DeclineOwnerRemoval { id } | Change::CancelOwnerRemoval { id } => {
                let status = if matches!(change, Change::DeclineOwnerRemoval { .. }) {
                    "declined"
                } else {
                    "cancelled"
                };
                sqlx::query("UPDATE owner_removal_requests SET status = $1 WHERE id = $2")
                    .bind(status)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                fx.result = json!({"request": id, "status": status});
            }
            Change::BulkRemove { account, user } => {
                let job = crate::jobs::create(tx, &me, account, user, now).await?;
                fx.result = json!({"job": job.0, "accounts": job.1});
            }
            Change::Reassign { account, from, to } => {
                let moved: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM resources WHERE account_id = $1 AND owner_id = $2 ORDER BY id",
                )
                .bind(account)
                .bind(from)
                .fetch_all(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE resources SET owner_id = $1 WHERE account_id = $2 AND owner_id = $3",
                )
                .bind(to)
                .bind(account)
                .bind(from)
                .execute(&mut **tx)
                .await?;
                fx.result = json!({"account": account, "from": from, "to": to, "moved": moved});
            }
            Change::ScimProvision { email, name } => {
                let account = plan.account.clone().unwrap_or_default();
                let existing: Option<String> =
                    sqlx::query_scalar("SELECT id FROM users WHERE email_lower = $1")
                        .bind(email.to_lowercase())
                        .fetch_optional(&mut **tx)
                        .await?;
                let user = match existing {
                    Some(u) => u,
                    None => {
                        let id = token::new_id("usr");
                        sqlx::query(
                            "INSERT INTO users (id, email, email_lower, name, created_at) VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&id)
                        .bind(email)
                        .bind(email.to_lowercase())
                        .bind(name)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                        id
                    }
                };
                let member =
                    sqlx::query("SELECT 1 FROM memberships WHERE account_id = $1 AND user_id = $2")
                        .bind(&account)
                        .bind(&user)
                        .fetch_optional(&mut **tx)
                        .await?;
                if member.is_some() {
                    return Err(ApiError::Conflict(format!(
                        "{email} is already a member of {}",
                        account_name(&account)
                    )));
                }
                sqlx::query(
                    "INSERT INTO memberships (account_id, user_id, role, status, managed_by_idp, created_at) VALUES ($1, $2, 'basic', 'active', 1, $3)",
                )
                .bind(&account)
                .bind(&user)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                // Re-provisioned after a DELETE: the user's sessions may use the account again.
                crate::auth::restore_account(tx, &user, &account).await?;
                fx.after_target = Some(membership(&account, &user));
                fx.result = json!({"account": account, "user": user});
            }
        }
        Ok(fx)
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

fn invitation_mail(base: &str, email: &str, account: &str, role: Role, secret: &str) -> Mail {
    Mail {
        to: email.to_owned(),
        subject: format!("You are invited to {account}"),
        body: format!(
            "You are invited to {account} as {}. The invitation expires in 14 days.\n\
             Accept it while signed in with this address: {base}/#/accept/{secret}\n\
             (API: POST /v1/invitations/accept {{\"token\": \"{secret}\"}})",
            role.as_str()
        ),
    }
}

fn user_email(check: &Check, user: &str) -> String {
    check
        .facts
        .users
        .iter()
        .find(|u| u.id.as_str() == user)
        .map_or_else(String::new, |u| u.email.clone())
}

fn user_name(check: &Check, user: &str) -> String {
    check
        .facts
        .users
        .iter()
        .find(|u| u.id.as_str() == user)
        .map_or_else(|| user.to_owned(), |u| u.name.clone())
}

/// The nearest ancestor of `account` where `user` still has a membership.
fn inherited_access(check: &Check, account: &str, user: &str) -> Option<String> {
    let lineage = facts::lineage(&check.facts, account);
    facts::first_membership(&check.facts, &lineage[1..], user).map(str::to_owned)
}

async fn set_role(tx: &mut Tx, account: &str, user: &str, role: &str) -> Result<(), ApiError> {
    sqlx::query("UPDATE memberships SET role = $1 WHERE account_id = $2 AND user_id = $3")
        .bind(role)
        .bind(account)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn set_status(tx: &mut Tx, account: &str, user: &str, status: &str) -> Result<(), ApiError> {
    sqlx::query("UPDATE memberships SET status = $1 WHERE account_id = $2 AND user_id = $3")
        .bind(status)
        .bind(account)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Deletes a membership with its consequences: invitations the user sent
/// there are revoked, and their sessions lose the account at once.
async fn remove_membership(
    tx: &mut Tx,
    account: &str,
    user: &str,
    now: i64,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM memberships WHERE account_id = $1 AND user_id = $2")
        .bind(account)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE invitations SET status = 'revoked' WHERE account_id = $1 AND invited_by = $2 AND status = 'pending'",
    )
    .bind(account)
    .bind(user)
    .execute(&mut **tx)
    .await?;
    crate::auth::sign_out_of_account(tx, user, account, now).await?;
    Ok(())
}
