//! Gathering the facts a decision needs, inside the change's transaction.
//!
//! The host reads rows and hands them over raw; every derivation (effective
//! role through agencies, owner counts, seats in use) happens in the module.
//! A [`Scope`] names what a change touches; the loader closes it over
//! ancestors (agency inheritance) and over the users the rows mention.

use std::collections::BTreeSet;

use gatehouse_policy::facts::{
    Account, AccountId, Device, DeviceId, Facts, Invitation, InvitationId, Membership,
    OwnedResource, OwnerRemovalRequest, RequestId, ResourceId, User, UserId,
};
use serde::de::DeserializeOwned;
use sqlx::Row;

use crate::error::ApiError;
use crate::store::{Dialect, Tx, placeholders};

/// What a decision is about; the loader adds ancestors and mentioned users.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Accounts the change is in.
    pub accounts: BTreeSet<String>,
    /// Users the change is about (the actor is added by the caller).
    pub users: BTreeSet<String>,
    /// Also every account this user is a member of (profile deletion).
    pub accounts_of: Option<String>,
    /// Also every descendant of this account (agency bulk removal).
    pub subtree_of: Option<String>,
    /// Devices the change is about, besides the actor's own.
    pub devices: BTreeSet<String>,
    /// Also the verified email domains of this account (SCIM provisioning):
    /// no other decision reads them, so no other answer carries them.
    pub domains_of: Option<String>,
}

impl Scope {
    /// A scope of one account.
    pub fn account(account: &str) -> Scope {
        let mut s = Scope::default();
        s.accounts.insert(account.to_owned());
        s
    }

    /// Adds a user.
    pub fn with_user(mut self, user: &str) -> Scope {
        self.users.insert(user.to_owned());
        self
    }
}

/// Parses a stored enum word (`owner`, `active`, …).
pub(crate) fn word<T: DeserializeOwned>(s: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| ApiError::internal(format!("stored value `{s}`: {e}")))
}

/// The stored word of an enum value.
pub(crate) fn to_word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    values: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for v in values {
        q = q.bind(v);
    }
    q
}

/// Locks every agency tree `scope` reads, before its facts are read
/// (PostgreSQL; SQLite's write transaction already holds the one lock).
/// See [`crate::store`] for why.
///
/// A profile-wide scope (`accounts_of`) reads every tree its user is a
/// member of; the memberships are read again once the trees are locked,
/// and a tree joined meanwhile is locked too.
pub async fn lock(tx: &mut Tx, dialect: Dialect, scope: &Scope) -> Result<(), ApiError> {
    if dialect == Dialect::Sqlite {
        return Ok(());
    }
    let mut seeds: Vec<String> = scope.accounts.iter().cloned().collect();
    seeds.extend(scope.subtree_of.iter().cloned());
    let mut locked = BTreeSet::new();
    loop {
        let mut wanted = seeds.clone();
        if let Some(user) = &scope.accounts_of {
            wanted.extend(member_of(tx, user).await?);
        }
        wanted.sort();
        wanted.dedup();
        wanted.retain(|a| !locked.contains(a));
        if wanted.is_empty() {
            return Ok(());
        }
        let roots = crate::store::lock_trees(tx, dialect, &wanted).await?;
        locked.extend(wanted);
        locked.extend(roots);
        if scope.accounts_of.is_none() {
            return Ok(());
        }
    }
}

/// The accounts `user` has a membership row in (any status).
async fn member_of(tx: &mut Tx, user: &str) -> Result<Vec<String>, ApiError> {
    let rows = sqlx::query("SELECT account_id FROM memberships WHERE user_id = $1")
        .bind(user)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| r.try_get("account_id").map_err(ApiError::from))
        .collect()
}

/// Loads the facts for `scope` (plus `actor`, a user id) at time `now`.
pub async fn load(
    tx: &mut Tx,
    now: i64,
    scope: &Scope,
    actor: Option<&str>,
) -> Result<Facts, ApiError> {
    let mut seeds: Vec<String> = scope.accounts.iter().cloned().collect();
    if let Some(user) = &scope.accounts_of {
        seeds.extend(member_of(tx, user).await?);
    }
    if let Some(root) = &scope.subtree_of {
        let rows = sqlx::query(
            "WITH RECURSIVE down(id) AS (SELECT id FROM accounts WHERE id = $1 \
             UNION SELECT a.id FROM accounts a JOIN down ON a.parent_id = down.id) SELECT id FROM down",
        )
        .bind(root)
        .fetch_all(&mut **tx)
        .await?;
        for r in rows {
            seeds.push(r.try_get("id")?);
        }
    }
    seeds.sort();
    seeds.dedup();

    // Accounts and every ancestor.
    let sql = format!(
        "WITH RECURSIVE up(id) AS (SELECT id FROM accounts WHERE id IN ({}) \
         UNION SELECT a.parent_id FROM accounts a JOIN up ON a.id = up.id WHERE a.parent_id IS NOT NULL) \
         SELECT id, name, parent_id, included_seats, extra_seats FROM accounts WHERE id IN (SELECT id FROM up) ORDER BY id",
        placeholders(1, seeds.len())
    );
    let rows = bind_all(sqlx::query(&sql), &seeds)
        .fetch_all(&mut **tx)
        .await?;
    let mut accounts = Vec::with_capacity(rows.len());
    for r in rows {
        accounts.push(Account {
            id: AccountId(r.try_get("id")?),
            name: r.try_get("name")?,
            parent: r.try_get::<Option<String>, _>("parent_id")?.map(AccountId),
            included_seats: r.try_get("included_seats")?,
            extra_seats: r.try_get("extra_seats")?,
            verified_domains: Vec::new(),
        });
    }
    if let Some(id) = &scope.domains_of
        && let Some(account) = accounts.iter_mut().find(|a| &a.id.0 == id)
    {
        account.verified_domains = sqlx::query_scalar(
            "SELECT domain FROM account_domains WHERE account_id = $1 ORDER BY domain",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    }
    let ids: Vec<String> = accounts.iter().map(|a| a.id.0.clone()).collect();
    let inlist = placeholders(1, ids.len());

    let sql = format!(
        "SELECT account_id, user_id, role, status, nickname, managed_by_idp FROM memberships \
         WHERE account_id IN ({inlist}) ORDER BY account_id, user_id"
    );
    let rows = bind_all(sqlx::query(&sql), &ids)
        .fetch_all(&mut **tx)
        .await?;
    let mut users: BTreeSet<String> = scope.users.clone();
    if let Some(a) = actor {
        users.insert(a.to_owned());
    }
    if let Some(u) = &scope.accounts_of {
        users.insert(u.clone());
    }
    let mut memberships = Vec::with_capacity(rows.len());
    for r in rows {
        let user: String = r.try_get("user_id")?;
        users.insert(user.clone());
        memberships.push(Membership {
            user: UserId(user),
            account: AccountId(r.try_get("account_id")?),
            role: word(&r.try_get::<String, _>("role")?)?,
            status: word(&r.try_get::<String, _>("status")?)?,
            nickname: r.try_get("nickname")?,
            managed_by_idp: r.try_get::<i64, _>("managed_by_idp")? != 0,
        });
    }

    // Every status: the policies decide what an accepted or revoked
    // invitation allows (R3); seats and the one-pending rule count only
    // pending, unexpired ones (the module derives them from the status).
    let sql = format!(
        "SELECT id, account_id, email, role, invited_by, sent_at, expires_at, status FROM invitations \
         WHERE account_id IN ({inlist}) ORDER BY id"
    );
    let rows = bind_all(sqlx::query(&sql), &ids)
        .fetch_all(&mut **tx)
        .await?;
    let mut invitations = Vec::with_capacity(rows.len());
    for r in rows {
        let by: String = r.try_get("invited_by")?;
        users.insert(by.clone());
        invitations.push(invitation(&r, by)?);
    }

    let mut sql = format!(
        "SELECT id, account_id, kind, name, owner_id FROM resources WHERE account_id IN ({inlist})"
    );
    let mut binds = ids.clone();
    if let Some(u) = &scope.accounts_of {
        sql.push_str(&format!(" OR owner_id = ${}", binds.len() + 1));
        binds.push(u.clone());
    }
    sql.push_str(" ORDER BY id");
    let rows = bind_all(sqlx::query(&sql), &binds)
        .fetch_all(&mut **tx)
        .await?;
    let mut resources = Vec::with_capacity(rows.len());
    let mut extra_accounts = BTreeSet::new();
    for r in rows {
        let account: String = r.try_get("account_id")?;
        if !ids.contains(&account) {
            extra_accounts.insert(account.clone());
        }
        resources.push(OwnedResource {
            id: ResourceId(r.try_get("id")?),
            kind: word(&r.try_get::<String, _>("kind")?)?,
            name: r.try_get("name")?,
            account: AccountId(account),
            owner: UserId(r.try_get("owner_id")?),
        });
    }
    // A user's resources in accounts outside the scope count towards their
    // total (profile deletion); those accounts come in without members.
    if !extra_accounts.is_empty() {
        let extra: Vec<String> = extra_accounts.into_iter().collect();
        let sql = format!(
            "WITH RECURSIVE up(id) AS (SELECT id FROM accounts WHERE id IN ({}) \
             UNION SELECT a.parent_id FROM accounts a JOIN up ON a.id = up.id WHERE a.parent_id IS NOT NULL) \
             SELECT id, name, parent_id, included_seats, extra_seats FROM accounts WHERE id IN (SELECT id FROM up) ORDER BY id",
            placeholders(1, extra.len())
        );
        for r in bind_all(sqlx::query(&sql), &extra)
            .fetch_all(&mut **tx)
            .await?
        {
            let id: String = r.try_get("id")?;
            if ids.contains(&id) {
                continue;
            }
            accounts.push(Account {
                id: AccountId(id),
                name: r.try_get("name")?,
                parent: r.try_get::<Option<String>, _>("parent_id")?.map(AccountId),
                included_seats: r.try_get("included_seats")?,
                extra_seats: r.try_get("extra_seats")?,
                verified_domains: Vec::new(),
            });
        }
    }

    let sql = format!(
        "SELECT id, account_id, requested_by, target_id, new_role, status, created_at, expires_at \
         FROM owner_removal_requests WHERE account_id IN ({inlist}) ORDER BY id"
    );
    let rows = bind_all(sqlx::query(&sql), &ids)
        .fetch_all(&mut **tx)
        .await?;
    let mut owner_removal_requests = Vec::with_capacity(rows.len());
    for r in rows {
        owner_removal_requests.push(request(&r)?);
    }

    let mut devices = Vec::new();
    let mut device_ids: Vec<String> = scope.devices.iter().cloned().collect();
    let mut device_sql = format!(
        "SELECT id, user_id, label FROM sessions WHERE id IN ({})",
        placeholders(1, device_ids.len())
    );
    if let Some(a) = actor {
        device_sql.push_str(&format!(" OR user_id = ${}", device_ids.len() + 1));
        device_ids.push(a.to_owned());
    }
    device_sql.push_str(" ORDER BY id");
    for r in bind_all(sqlx::query(&device_sql), &device_ids)
        .fetch_all(&mut **tx)
        .await?
    {
        let user: String = r.try_get("user_id")?;
        users.insert(user.clone());
        devices.push(Device {
            id: DeviceId(r.try_get("id")?),
            user: UserId(user),
            label: r.try_get("label")?,
        });
    }

    let user_ids: Vec<String> = users.into_iter().collect();
    let sql = format!(
        "SELECT id, email, name FROM users WHERE id IN ({}) ORDER BY id",
        placeholders(1, user_ids.len())
    );
    let mut out_users = Vec::with_capacity(user_ids.len());
    for r in bind_all(sqlx::query(&sql), &user_ids)
        .fetch_all(&mut **tx)
        .await?
    {
        out_users.push(User {
            id: UserId(r.try_get("id")?),
            email: r.try_get("email")?,
            name: r.try_get("name")?,
        });
    }

    Ok(Facts {
        now,
        users: out_users,
        accounts,
        memberships,
        invitations,
        resources,
        owner_removal_requests,
        devices,
        derived: Default::default(),
    })
}

/// An invitation row.
pub(crate) fn invitation(
    r: &crate::store::StoreRow,
    invited_by: String,
) -> Result<Invitation, ApiError> {
    Ok(Invitation {
        id: InvitationId(r.try_get("id")?),
        email: r.try_get("email")?,
        account: AccountId(r.try_get("account_id")?),
        role: word(&r.try_get::<String, _>("role")?)?,
        invited_by: UserId(invited_by),
        sent_at: r.try_get("sent_at")?,
        expires_at: r.try_get("expires_at")?,
        status: word(&r.try_get::<String, _>("status")?)?,
    })
}

/// An owner-removal request row.
pub(crate) fn request(r: &crate::store::StoreRow) -> Result<OwnerRemovalRequest, ApiError> {
    Ok(OwnerRemovalRequest {
        id: RequestId(r.try_get("id")?),
        account: AccountId(r.try_get("account_id")?),
        requested_by: UserId(r.try_get("requested_by")?),
        target: UserId(r.try_get("target_id")?),
        new_role: word(&r.try_get::<String, _>("new_role")?)?,
        status: word(&r.try_get::<String, _>("status")?)?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// `account` and its ancestors as the facts hold them, nearest first.
/// (Facts are checked for cycles by the module; the walk stops at 64 anyway.)
pub(crate) fn lineage<'f>(facts: &'f Facts, account: &'f str) -> Vec<&'f str> {
    let mut out = vec![account];
    let mut cur = account;
    while let Some(parent) = facts
        .accounts
        .iter()
        .find(|a| a.id.as_str() == cur)
        .and_then(|a| a.parent.as_ref())
    {
        if out.len() > 64 {
            break;
        }
        cur = parent.as_str();
        out.push(cur);
    }
    out
}

/// `account` and every descendant the facts hold.
pub(crate) fn subtree<'f>(facts: &'f Facts, account: &'f str) -> BTreeSet<&'f str> {
    let mut out = BTreeSet::from([account]);
    // Each pass adds the children of what is in; depth is small and bounded.
    for _ in 0..64 {
        let before = out.len();
        for a in &facts.accounts {
            if a.parent.as_ref().is_some_and(|p| out.contains(p.as_str())) {
                out.insert(a.id.as_str());
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}

/// Does the account row exist? (Data integrity: whether the caller may know
/// it exists is the module's to say.)
pub(crate) async fn account_exists(tx: &mut Tx, account: &str) -> Result<bool, ApiError> {
    let found = sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
        .bind(account)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

/// The user `id` as the facts hold them (mails and names for the host's
/// replies; not who may).
pub(crate) fn user<'f>(facts: &'f Facts, id: &str) -> Option<&'f User> {
    facts.users.iter().find(|u| u.id.as_str() == id)
}

/// The owner memberships of `account` in the facts, of any status.
pub(crate) fn owners<'f>(
    facts: &'f Facts,
    account: &'f str,
) -> impl Iterator<Item = &'f Membership> {
    facts.memberships.iter().filter(move |m| {
        m.account.as_str() == account && m.role == gatehouse_policy::facts::Role::Owner
    })
}

/// The nearest of `accounts` where `user` has a membership of any status.
pub(crate) fn first_membership<'a>(
    facts: &Facts,
    accounts: &[&'a str],
    user: &str,
) -> Option<&'a str> {
    accounts.iter().copied().find(|a| {
        facts
            .memberships
            .iter()
            .any(|m| m.account.as_str() == *a && m.user.as_str() == user)
    })
}
