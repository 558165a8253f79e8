//! Reads that show what a caller may do: the members list with every
//! member's allowed actions (one batch call into the module), the account
//! switcher, invitations, owner-removal requests, devices and the audit log.
//! Reads are decided like changes (view_members, view_invitations,
//! view_owner_removal_requests, view_bulk_candidates, view_jobs, read_audit,
//! view_devices) but not audited.
//!
//! Each read that lists actions also hands out its `question`: the batch
//! envelope it asked, minimized by the module to what its cells need (need
//! to know: no roster, invitee or resource of an account the viewer may
//! not see, ancestors reduced to derived counts and inherited roles). The
//! browser asks its own copy of the module that question and gets the
//! server's very answers; the server still enforces.

use std::collections::BTreeSet;

use gatehouse_api as wire;
use gatehouse_policy::facts::{AccountId, RequestedRole, UserId};
use gatehouse_policy::{
    ActionCall, Actor, Batch, Check, Decision, Facts, Outcome, Params, Source, Target,
};
use sqlx::Row;

use crate::Host;
use crate::error::{ApiError, not_found_account};
use crate::facts::{self, Scope};

/// The member actions the members list asks about, as `(key, call)`.
pub fn member_actions() -> Vec<(String, ActionCall)> {
    let plain = |a: &str| ActionCall {
        action: a.to_owned(),
        params: Params::default(),
    };
    let with_role = |a: &str, r: RequestedRole| ActionCall {
        action: a.to_owned(),
        params: Params {
            role: Some(r),
            ..Params::default()
        },
    };
    let mut out = vec![("edit_nickname".to_owned(), plain("edit_nickname"))];
    for r in [
        RequestedRole::Owner,
        RequestedRole::Admin,
        RequestedRole::Standard,
        RequestedRole::Basic,
    ] {
        out.push((
            format!("change_role:{}", r.as_str()),
            with_role("change_role", r),
        ));
    }
    for a in ["suspend", "unsuspend", "remove_member"] {
        out.push((a.to_owned(), plain(a)));
    }
    for r in [
        RequestedRole::Admin,
        RequestedRole::Standard,
        RequestedRole::Basic,
        RequestedRole::None,
    ] {
        out.push((
            format!("request_owner_removal:{}", r.as_str()),
            with_role("request_owner_removal", r),
        ));
    }
    out.push((
        "step_down:admin".to_owned(),
        with_role("step_down", RequestedRole::Admin),
    ));
    out.push(("leave".to_owned(), plain("leave")));
    out
}

/// How many members one page of the members list holds when the caller
/// names no `limit`.
pub const MEMBERS_PAGE_DEFAULT: usize = 100;
/// The most members one page of the members list holds.
pub const MEMBERS_PAGE_MAX: usize = 500;

/// Which members one answer of the members list holds: at most `limit`,
/// those whose user id sorts after `after` (the previous page's `next`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersPage {
    /// At most this many members (1 to [`MEMBERS_PAGE_MAX`]).
    pub limit: usize,
    /// Only members whose user id sorts after this one (byte order).
    pub after: Option<String>,
}

impl Default for MembersPage {
    fn default() -> MembersPage {
        MembersPage {
            limit: MEMBERS_PAGE_DEFAULT,
            after: None,
        }
    }
}

/// A page's batch: `user` asks, from the UI, about every target × action.
fn ui_batch(user: &str, facts: Facts, targets: Vec<Target>, actions: Vec<ActionCall>) -> Batch {
    Batch {
        facts,
        actor: Actor::User(UserId(user.to_owned())),
        targets,
        actions,
        source: Source::Ui,
    }
}

fn plain(action: &str) -> ActionCall {
    ActionCall {
        action: action.to_owned(),
        params: Params::default(),
    }
}

fn cell(d: &Decision) -> wire::Cell {
    crate::shapes::cell(d)
}

impl Host {
    /// The question a read hands out: `batch` minimized by the module to
    /// what its cells need, so a page holds no row its viewer may not see
    /// and still decides exactly as the server did on the full facts.
    ///
    /// Debug builds (every host and browser test) also ask both questions
    /// and refuse the read unless the answers are the same bytes: each read
    /// of every test checks the minimization, not only the shared vectors.
    fn hand_out(&self, batch: &Batch) -> Result<wire::Question, ApiError> {
        let small = self.gate.minimize(batch)?;
        if cfg!(debug_assertions) {
            let bytes = |b: &Batch| -> Result<Vec<u8>, ApiError> {
                serde_json::to_vec(&self.gate.batch(b)?.answer).map_err(ApiError::internal)
            };
            if bytes(batch)? != bytes(&small)? {
                return Err(ApiError::internal(
                    "the minimized question answers unlike the full facts: not handed out",
                ));
            }
        }
        crate::gate::question(&small).map(wire::Question)
    }

    /// The accounts of `facts` on which `user` may do `action` (one batch
    /// call: which rows a viewer sees is the policies' answer).
    fn allowed_accounts(
        &self,
        user: &str,
        facts: &Facts,
        action: &str,
        accounts: &[&str],
    ) -> Result<BTreeSet<String>, ApiError> {
        let batch = ui_batch(
            user,
            facts.clone(),
            accounts
                .iter()
                .map(|a| Target::Account(AccountId((*a).to_owned())))
                .collect(),
            vec![plain(action)],
        );
        let decided = self.gate.batch(&batch)?;
        Ok(accounts
            .iter()
            .zip(&decided.answer.cells)
            .filter(|(_, cells)| cells.first().is_some_and(|d| d.allowed))
            .map(|(a, _)| (*a).to_owned())
            .collect())
    }

    /// The facts for `scope` (and `user`), read in a transaction of their own.
    async fn read_facts(&self, scope: &Scope, user: &str) -> Result<Facts, ApiError> {
        let mut tx = self.store.begin_read().await?;
        let facts = facts::load(&mut tx, self.clock.now(), scope, Some(user)).await?;
        tx.commit().await?;
        Ok(facts)
    }

    /// Decides a read about `account` for `user`: an account the module
    /// hides from them (`Outcome::Hidden`: R1.stranger) gets the same 404
    /// as one that does not exist; members who may not get 403 with the
    /// reasons.
    pub async fn ask(
        &self,
        user: &str,
        action: &str,
        account: &str,
        scope: Scope,
    ) -> Result<Facts, ApiError> {
        let mut tx = self.store.begin_read().await?;
        if !facts::account_exists(&mut tx, account).await? {
            return Err(not_found_account(account));
        }
        let mut scope = scope;
        scope.accounts.insert(account.to_owned());
        let facts = facts::load(&mut tx, self.clock.now(), &scope, Some(user)).await?;
        tx.commit().await?;
        let check = Check {
            facts,
            actor: Actor::User(UserId(user.to_owned())),
            action: action.to_owned(),
            target: Target::Account(AccountId(account.to_owned())),
            params: Params::default(),
            source: Source::Api,
        };
        let decided = self.authorize(&check)?;
        match decided.answer.outcome {
            _ if decided.answer.allowed => Ok(check.facts),
            Outcome::Hidden => Err(not_found_account(account)),
            _ => Err(ApiError::refused(decided.answer, None)),
        }
    }

    /// Does the module hide `account` from `user` (or is there no such
    /// account)? For an answer that must not tell a stranger more than a
    /// missing id would (a change that failed before it was decided).
    pub(crate) async fn conceals(
        &self,
        tx: &mut crate::store::Tx,
        user: &str,
        account: &str,
    ) -> Result<bool, ApiError> {
        if !facts::account_exists(tx, account).await? {
            return Ok(true);
        }
        let facts = facts::load(tx, self.clock.now(), &Scope::account(account), Some(user)).await?;
        let check = Check {
            facts,
            actor: Actor::User(UserId(user.to_owned())),
            action: "switch_account".into(),
            target: Target::Account(AccountId(account.to_owned())),
            params: Params::default(),
            source: Source::Api,
        };
        Ok(self.authorize(&check)?.answer.outcome == Outcome::Hidden)
    }

    /// One page of the members list of an account, in user id order, with
    /// each listed member's allowed actions: the batch asks about the
    /// page's rows only (on the full facts), and the question handed out
    /// decides those rows.
    pub async fn members(
        &self,
        user: &str,
        account: &str,
        page: &MembersPage,
    ) -> Result<wire::Members, ApiError> {
        let facts = self
            .ask(user, "view_members", account, Scope::default())
            .await?;
        let mut all: Vec<_> = facts
            .memberships
            .iter()
            .filter(|m| m.account.as_str() == account)
            .collect();
        all.sort_by(|a, b| a.user.cmp(&b.user));
        let total = all.len();
        let mut members: Vec<_> = all
            .into_iter()
            .filter(|m| {
                page.after
                    .as_deref()
                    .is_none_or(|after| m.user.as_str() > after)
            })
            .take(page.limit + 1)
            .cloned()
            .collect();
        let next = if members.len() > page.limit {
            members.truncate(page.limit);
            members.last().map(|m| m.user.clone())
        } else {
            None
        };
        let actions = member_actions();
        let batch = ui_batch(
            user,
            facts,
            members
                .iter()
                .map(|m| Target::Membership {
                    account: m.account.clone(),
                    user: m.user.clone(),
                })
                .collect(),
            actions.iter().map(|(_, c)| c.clone()).collect(),
        );
        let decided = self.gate.batch(&batch)?;
        let mut rows = Vec::with_capacity(members.len());
        for (m, cells) in members.iter().zip(&decided.answer.cells) {
            let u = batch.facts.users.iter().find(|u| u.id == m.user);
            let owned = batch
                .facts
                .resources
                .iter()
                .filter(|r| r.account.as_str() == account && r.owner == m.user)
                .count();
            let allowed = actions
                .iter()
                .zip(cells)
                .map(|((key, _), d)| (key.clone(), cell(d)))
                .collect();
            rows.push(wire::Member {
                user: m.user.to_string(),
                name: u.map(|u| u.name.clone()),
                email: u.map(|u| u.email.clone()),
                role: crate::shapes::role(m.role),
                status: crate::shapes::status(m.status),
                nickname: m.nickname.clone(),
                managed_by_idp: m.managed_by_idp,
                owned_resources: count(owned),
                actions: allowed,
            });
        }
        let acc = batch
            .facts
            .accounts
            .iter()
            .find(|a| a.id.as_str() == account)
            .ok_or_else(|| ApiError::internal(format!("`{account}` is not in its own facts")))?;
        Ok(wire::Members {
            account: wire::Account {
                id: acc.id.to_string(),
                name: acc.name.clone(),
                parent: acc.parent.as_ref().map(ToString::to_string),
                included_seats: acc.included_seats,
                extra_seats: acc.extra_seats,
            },
            policy_hash: decided.policy_hash.clone(),
            module_sha256: decided.module_hash.clone(),
            decisions: count(members.len() * actions.len()),
            members: rows,
            total: count(total),
            next: next.map(|n| n.to_string()),
            seats: wire::Seats {
                in_use: count(gatehouse_policy::seats_in_use(&batch.facts, account)),
                total: acc.included_seats + acc.extra_seats,
            },
            action_keys: actions.iter().map(|(k, _)| k.clone()).collect(),
            question: self.hand_out(&batch)?,
        })
    }

    /// The account switcher: every account the user belongs to, directly or
    /// through an agency, with whether they may switch into it and why not.
    pub async fn accounts(
        &self,
        user: &str,
        token: Option<&crate::auth::TokenScope>,
    ) -> Result<wire::Accounts, ApiError> {
        let mut tx = self.store.begin_read().await?;
        let mut ids: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE down(id) AS (SELECT account_id FROM memberships WHERE user_id = $1 \
             UNION SELECT a.id FROM accounts a JOIN down ON a.parent_id = down.id) SELECT id FROM down ORDER BY id",
        )
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        // An API token scoped to some accounts lists only those: the
        // credential is limited, as on every path that names an account.
        if let Some(token) = token {
            ids.retain(|a| token.accounts.contains(a));
        }
        let scope = Scope {
            accounts: ids.iter().cloned().collect::<BTreeSet<_>>(),
            ..Scope::default()
        };
        let facts = facts::load(&mut tx, self.clock.now(), &scope, Some(user)).await?;
        tx.commit().await?;
        let batch = ui_batch(
            user,
            facts,
            ids.iter()
                .map(|a| Target::Account(AccountId(a.clone())))
                .collect(),
            // With the editor on, a second column: may the user author
            // policies (asked on every account; the page reads the policy
            // account's cell to show its link).
            std::iter::once("switch_account")
                .chain(self.settings.authoring.as_ref().map(|_| "author_policies"))
                .map(|action| ActionCall {
                    action: action.into(),
                    params: Params::default(),
                })
                .collect(),
        );
        let decided = self.gate.batch(&batch)?;
        let mut out = Vec::with_capacity(ids.len());
        let mut listed = Vec::with_capacity(ids.len());
        for (id, cells) in ids.iter().zip(&decided.answer.cells) {
            let Some(d) = cells.first() else { continue };
            let a = batch.facts.accounts.iter().find(|a| a.id.as_str() == id);
            let own = batch
                .facts
                .memberships
                .iter()
                .find(|m| m.account.as_str() == id && m.user.as_str() == user);
            // An account is the user's to see when they hold a membership of
            // it (whatever its status: they see that status) or the policies
            // let them switch into it (inherited access). Of an account they
            // may not switch into they see its name and their own status.
            if own.is_none() && !d.allowed {
                continue;
            }
            listed.push(Target::Account(AccountId(id.clone())));
            out.push(wire::AccountSummary {
                id: id.clone(),
                name: a.map(|a| a.name.clone()),
                parent: a
                    .and_then(|a| a.parent.as_ref().map(ToString::to_string))
                    .filter(|_| d.allowed),
                role: own.map(|m| crate::shapes::role(m.role)),
                status: own.map(|m| crate::shapes::status(m.status)),
                inherited: own.is_none(),
                seats: a.filter(|_| d.allowed).map(|a| wire::Seats {
                    in_use: count(gatehouse_policy::seats_in_use(&batch.facts, id)),
                    total: a.included_seats + a.extra_seats,
                }),
                switch: cell(d),
            });
        }
        // The invite dialog's question: the same accounts with an invite
        // column, so its facts hold the members and invitations of exactly
        // the accounts whose invitations the user may see (it checks typed
        // addresses on them); the page puts its own columns in.
        let invite = Batch {
            targets: listed.clone(),
            actions: vec![ActionCall {
                action: "invite".into(),
                params: Params {
                    role: Some(RequestedRole::Basic),
                    email: Some("someone@example.invalid".into()),
                    ..Params::default()
                },
            }],
            ..batch.clone()
        };
        let switcher = Batch {
            targets: listed,
            ..batch
        };
        Ok(wire::Accounts {
            accounts: out,
            policy_account: self.settings.authoring.as_ref().map(|a| a.account.clone()),
            policy_hash: decided.policy_hash.clone(),
            question: self.hand_out(&switcher)?,
            invite_question: self.hand_out(&invite)?,
        })
    }

    /// Invitations of an account, every status, newest first, with derived
    /// status and the module's resend/revoke answer for each row (an
    /// accepted or revoked one is `inapplicable`, with R3's reason).
    pub async fn invitations(
        &self,
        user: &str,
        account: &str,
    ) -> Result<wire::Invitations, ApiError> {
        let facts = self
            .ask(user, "view_invitations", account, Scope::default())
            .await?;
        let now = facts.now;
        let mut listed: Vec<_> = facts
            .invitations
            .iter()
            .filter(|i| i.account.as_str() == account)
            .cloned()
            .collect();
        listed.sort_by(|a, b| b.sent_at.cmp(&a.sent_at).then_with(|| a.id.cmp(&b.id)));
        let actions: Vec<ActionCall> = ["resend_invitation", "revoke_invitation"]
            .iter()
            .map(|a| ActionCall {
                action: (*a).to_owned(),
                params: Params::default(),
            })
            .collect();
        let batch = ui_batch(
            user,
            facts,
            listed
                .iter()
                .map(|i| Target::Invitation(i.id.clone()))
                .collect(),
            actions,
        );
        let decided = self.gate.batch(&batch)?;
        let mut out = Vec::with_capacity(listed.len());
        for (i, c) in listed.iter().zip(&decided.answer.cells) {
            out.push(wire::Invitation {
                id: i.id.to_string(),
                email: i.email.clone(),
                role: crate::shapes::role(i.role),
                invited_by: i.invited_by.to_string(),
                sent_at: i.sent_at,
                expires_at: i.expires_at,
                status: crate::shapes::invitation_status(i.status, i.expires_at <= now),
                actions: wire::InvitationActions {
                    resend_invitation: c.first().map(cell),
                    revoke_invitation: c.get(1).map(cell),
                },
            });
        }
        Ok(wire::Invitations {
            invitations: out,
            action_keys: vec!["resend_invitation".into(), "revoke_invitation".into()],
            question: self.hand_out(&batch)?,
        })
    }

    /// Owner-removal requests of an account, expiry derived from the clock.
    pub async fn owner_removal_requests(
        &self,
        user: &str,
        account: &str,
    ) -> Result<wire::OwnerRemovalRequests, ApiError> {
        let facts = self
            .ask(
                user,
                "view_owner_removal_requests",
                account,
                Scope::default(),
            )
            .await?;
        let now = facts.now;
        let keys = [
            "approve_owner_removal",
            "decline_owner_removal",
            "cancel_owner_removal",
        ];
        let requests: Vec<_> = facts
            .owner_removal_requests
            .iter()
            .filter(|r| r.account.as_str() == account)
            .cloned()
            .collect();
        let batch = ui_batch(
            user,
            facts,
            requests
                .iter()
                .map(|r| Target::OwnerRemovalRequest(r.id.clone()))
                .collect(),
            keys.iter().map(|a| plain(a)).collect(),
        );
        let decided = self.gate.batch(&batch)?;
        let mut out = Vec::new();
        for (r, cells) in requests.iter().zip(&decided.answer.cells) {
            out.push(wire::OwnerRemovalRequest {
                id: r.id.to_string(),
                account: r.account.to_string(),
                requested_by: r.requested_by.to_string(),
                target: r.target.to_string(),
                new_role: crate::shapes::requested(r.new_role),
                status: crate::shapes::request_status(r.status, r.expires_at <= now),
                created_at: r.created_at,
                expires_at: r.expires_at,
                actions: keys
                    .iter()
                    .zip(cells)
                    .map(|(key, d)| ((*key).to_owned(), cell(d)))
                    .collect(),
            });
        }
        Ok(wire::OwnerRemovalRequests {
            requests: out,
            action_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            question: self.hand_out(&batch)?,
        })
    }

    /// The audit log of an account (and, for agency admins, its sub-accounts).
    pub async fn audit_log(
        &self,
        user: &str,
        account: &str,
        q: &crate::audit::AuditQuery,
    ) -> Result<wire::AuditLog, ApiError> {
        self.ask(user, "read_audit", account, Scope::default())
            .await?;
        let accounts: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE down(id) AS (SELECT id FROM accounts WHERE id = $1 \
             UNION SELECT a.id FROM accounts a JOIN down ON a.parent_id = down.id) SELECT id FROM down",
        )
        .bind(account)
        .fetch_all(self.store.pool())
        .await?;
        crate::audit::read(self.store.pool(), &accounts, q).await
    }

    /// Who could be removed from an agency and all its sub-accounts: every
    /// member of the subtree, with the `bulk_remove` question asked on the
    /// facts the job's start is decided on (the whole subtree).
    pub async fn bulk_candidates(
        &self,
        user: &str,
        account: &str,
    ) -> Result<wire::BulkCandidates, ApiError> {
        let scope = Scope {
            subtree_of: Some(account.to_owned()),
            ..Scope::default()
        };
        let facts = self
            .ask(user, "view_bulk_candidates", account, scope)
            .await?;
        // Only the sub-accounts whose members the user may see (a
        // suspension on one of them hides it).
        let subtree: Vec<&str> = facts::subtree(&facts, account).into_iter().collect();
        let seen = self.allowed_accounts(user, &facts, "view_members", &subtree)?;
        let subtree: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
        let mut people: Vec<&gatehouse_policy::facts::User> = facts
            .users
            .iter()
            .filter(|u| {
                facts
                    .memberships
                    .iter()
                    .any(|m| m.user == u.id && subtree.contains(m.account.as_str()))
            })
            .collect();
        people.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        let rows: Vec<wire::BulkCandidate> = people
            .iter()
            .map(|u| {
                let accounts = facts
                    .memberships
                    .iter()
                    .filter(|m| m.user == u.id && subtree.contains(m.account.as_str()))
                    .map(|m| m.account.to_string())
                    .collect();
                wire::BulkCandidate {
                    user: u.id.to_string(),
                    name: u.name.clone(),
                    email: u.email.clone(),
                    accounts,
                }
            })
            .collect();
        let actions = people
            .iter()
            .map(|u| ActionCall {
                action: "bulk_remove".into(),
                params: Params {
                    user: Some(u.id.clone()),
                    ..Params::default()
                },
            })
            .collect();
        let batch = ui_batch(
            user,
            facts,
            vec![Target::Account(AccountId(account.to_owned()))],
            actions,
        );
        Ok(wire::BulkCandidates {
            candidates: rows,
            question: self.hand_out(&batch)?,
        })
    }

    /// Before a bulk removal of `target` from `account`'s subtree: a user
    /// id that names nobody is a 404, but only to a caller the module lets
    /// see the subtree's members (`view_bulk_candidates`, R13): anyone else
    /// gets the answer a stranger gets for an account hidden from them
    /// (R1), so a 404 tells them nothing about who is a member. (An
    /// existing user goes on to the module's `bulk_remove` decision.)
    pub async fn check_bulk_user(
        &self,
        user: &str,
        account: &str,
        target: &str,
    ) -> Result<(), ApiError> {
        let exists = sqlx::query("SELECT 1 FROM users WHERE id = $1")
            .bind(target)
            .fetch_optional(self.store.pool())
            .await?
            .is_some();
        if exists {
            return Ok(());
        }
        let scope = Scope {
            subtree_of: Some(account.to_owned()),
            ..Scope::default()
        };
        match self.ask(user, "view_bulk_candidates", account, scope).await {
            Ok(_) => Err(ApiError::NotFound(format!(
                "no user `{target}` in `{account}` or its sub-accounts"
            ))),
            Err(
                ApiError::Denied { .. } | ApiError::Inapplicable { .. } | ApiError::NotFound(_),
            ) => Err(not_found_account(account)),
            Err(other) => Err(other),
        }
    }

    /// The caller's own profile.
    pub async fn me(
        &self,
        user: &str,
        csrf: Option<String>,
        session: &str,
    ) -> Result<wire::Me, ApiError> {
        let row = sqlx::query("SELECT id, email, name, phone, country, notify_email, notify_sms FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(self.store.pool())
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("this user no longer exists".into()))?;
        let keys = ["update_profile", "update_notifications", "delete_profile"];
        let scope = Scope {
            accounts_of: Some(user.to_owned()),
            ..Scope::default()
        };
        let facts = self.read_facts(&scope, user).await?;
        let batch = ui_batch(
            user,
            facts,
            vec![Target::User(UserId(user.to_owned()))],
            keys.iter().map(|a| plain(a)).collect(),
        );
        Ok(wire::Me {
            id: row.try_get::<String, _>("id")?,
            email: row.try_get::<String, _>("email")?,
            name: row.try_get::<String, _>("name")?,
            phone: row.try_get::<Option<String>, _>("phone")?,
            country: row.try_get::<Option<String>, _>("country")?,
            notifications: wire::Notifications {
                email: row.try_get::<i64, _>("notify_email")? != 0,
                sms: row.try_get::<i64, _>("notify_sms")? != 0,
            },
            action_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            question: self.hand_out(&batch)?,
            csrf,
            session: session.to_owned(),
        })
    }

    /// The caller's devices (view_devices decides).
    pub async fn devices(&self, user: &str, current: &str) -> Result<wire::Devices, ApiError> {
        let facts = self.read_facts(&Scope::default(), user).await?;
        let check = Check {
            facts,
            actor: Actor::User(UserId(user.to_owned())),
            action: "view_devices".into(),
            target: Target::User(UserId(user.to_owned())),
            params: Params::default(),
            source: Source::Api,
        };
        let decided = self.authorize(&check)?;
        if !decided.answer.allowed {
            return Err(ApiError::refused(decided.answer, None));
        }
        let rows = sqlx::query("SELECT id, kind, label, created_at, expires_at FROM sessions WHERE user_id = $1 ORDER BY created_at, id")
            .bind(user)
            .fetch_all(self.store.pool())
            .await?;
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<Result<_, _>>()?;
        let mut scope = Scope::default();
        scope.devices.extend(ids.iter().cloned());
        let facts = self.read_facts(&scope, user).await?;
        let batch = ui_batch(
            user,
            facts,
            ids.iter()
                .map(|d| Target::Device(gatehouse_policy::facts::DeviceId(d.clone())))
                .collect(),
            vec![plain("sign_out_device")],
        );
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id")?;
            out.push(wire::Device {
                current: id == current,
                id,
                kind: r.try_get::<String, _>("kind")?,
                label: r.try_get::<String, _>("label")?,
                created_at: r.try_get::<i64, _>("created_at")?,
                expires_at: r.try_get::<i64, _>("expires_at")?,
            });
        }
        Ok(wire::Devices {
            devices: out,
            action_keys: vec!["sign_out_device".into()],
            question: self.hand_out(&batch)?,
        })
    }
}

/// A count on the wire.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
