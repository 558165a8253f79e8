//! Demo data: the Acme fixture the shared vectors use (an agency with nested
//! sub-accounts, members of every role and status, owned resources, pending
//! and expired invitations, an owner-removal request, an IdP-managed member),
//! shifted so that its "now" is the host's now.
//!
//! **The fence.** Demo mode reads the outbox out loud (`GET
//! /v1/demo/mailbox`: every sign-in link), so it must never reach real
//! people's data or a stranger. `gatehouse serve --demo` serves only a store
//! that `--demo` itself seeded ([`prepare`]: a `demo` row in `store_meta`,
//! written in the seeding transaction) and refuses any other; the mailbox
//! answers only such a host, and only a peer on loopback with no proxy in
//! between ([`mailbox_open`]).

use std::net::SocketAddr;

use axum::http::HeaderMap;
use gatehouse_policy::Facts;
use gatehouse_policy::facts::{
    Account, AccountId, Membership, MembershipStatus, OwnedResource, ResourceId, ResourceKind,
    Role, User, UserId,
};

use crate::Host;
use crate::error::ApiError;
use crate::facts::to_word;
use crate::store::Tx;
use crate::token;

/// The `store_meta` key that marks a store `--demo` created.
pub const MARKER: &str = "demo";

/// What [`prepare`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// The store was empty: the demo data and the marker are in it now.
    Seeded,
    /// The store is one `--demo` created before: served as it is.
    Reused,
}

/// Why `--demo` will not serve a store.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The store has data that `--demo` did not seed.
    #[error(
        "`--demo` refuses this store: it has data that `--demo` did not create (users: {users}), and demo mode shows every sign-in link in its mailbox. \
         Serve it without --demo, or give --demo a new store of its own (e.g. `--db gatehouse-demo.db`; a demo store made by a gatehouse older than this check has no marker: delete it and start again)"
    )]
    NotADemoStore {
        /// How many users the store holds.
        users: i64,
    },
    /// The store could not be read or written.
    #[error("{0}")]
    Store(#[from] ApiError),
}

impl From<sqlx::Error> for DemoError {
    fn from(e: sqlx::Error) -> DemoError {
        DemoError::Store(e.into())
    }
}

/// What `gatehouse serve --demo` does before it serves: seeds the Acme
/// fixture and the marker into an empty store, or accepts a store that
/// carries the marker; refuses a store with any other data (one user is
/// data) and changes nothing in it.
pub async fn prepare(host: &Host, facts: &Facts) -> Result<Prepared, DemoError> {
    let mut tx = host.store.begin_write().await?;
    crate::store::lock_named(&mut tx, "demo").await?;
    if is_demo_store(&mut tx).await? {
        return Ok(Prepared::Reused);
    }
    let mut data = 0;
    for table in ["users", "accounts"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await?;
        data += n;
    }
    if data > 0 {
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *tx)
            .await?;
        return Err(DemoError::NotADemoStore { users });
    }
    seed_in(&mut tx, host.clock.now(), facts).await?;
    sqlx::query("INSERT INTO store_meta (key, value) VALUES ($1, $2)")
        .bind(MARKER)
        .bind(format!(
            "seeded by gatehouse serve --demo at {}",
            host.clock.now()
        ))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Prepared::Seeded)
}

/// Whether the store carries the marker [`prepare`] writes.
async fn is_demo_store(tx: &mut Tx) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM store_meta WHERE key = $1")
        .bind(MARKER)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

pub use crate::peer::is_loopback_peer;

/// Whether the demo mailbox may answer this request: the host was started
/// with `--demo` (which checked the store), the store still carries the
/// marker, and the peer is on loopback with no proxy in between. 404
/// without demo mode, 403 (`loopback_only`) from anywhere else.
pub async fn mailbox_open(
    host: &Host,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if !host.settings.demo {
        return Err(ApiError::NotFound(
            "the demo mailbox exists only in demo mode (`gatehouse serve --demo`)".into(),
        ));
    }
    if !crate::peer::is_local(peer, headers) {
        return Err(ApiError::LoopbackOnly(
            "the demo mailbox answers only loopback peers, with no proxy in between: open the demo on the machine that runs it, at 127.0.0.1 or ::1".into(),
        ));
    }
    let mut tx = host.store.begin_read().await?;
    let marked = is_demo_store(&mut tx).await?;
    tx.commit().await?;
    if !marked {
        return Err(ApiError::NotFound(
            "the demo mailbox exists only on a store that `gatehouse serve --demo` created".into(),
        ));
    }
    Ok(())
}

/// The fixture, as the vectors use it.
pub const ACME: &str = include_str!("../../tests/vectors/fixtures/acme.json");

/// The fixture's facts.
pub fn acme() -> Result<Facts, ApiError> {
    serde_json::from_str(ACME).map_err(ApiError::internal)
}

/// The id of the large sub-account [`with_large_account`] adds.
pub const LARGE: &str = "large";

/// `facts` with one more sub-account of the agency, [`LARGE`] ("Acme
/// Large"), of `members` generated members (`m0001`, `m0002`, … in id
/// order): two owners, then admins, standard and basic members in turn,
/// every ninth suspended, every eleventh managed by the identity
/// provider, every seventh owning a number. What a large account's Users
/// page and its paging are tried on (`serve --demo --demo-members N`).
pub fn with_large_account(mut facts: Facts, members: usize) -> Facts {
    let account = AccountId(LARGE.to_owned());
    facts.accounts.push(Account {
        id: account.clone(),
        name: "Acme Large".into(),
        parent: Some(AccountId("agency".into())),
        included_seats: i64::try_from(members)
            .unwrap_or(i64::MAX)
            .saturating_add(10),
        extra_seats: 0,
        verified_domains: Vec::new(),
    });
    for i in 1..=members {
        let user = UserId(format!("m{i:04}"));
        facts.users.push(User {
            id: user.clone(),
            email: format!("m{i:04}@large.acme.test"),
            name: format!("Member {i:04}"),
        });
        let role = match i {
            1 | 2 => Role::Owner,
            _ => [Role::Admin, Role::Standard, Role::Basic][i % 3],
        };
        facts.memberships.push(Membership {
            user: user.clone(),
            account: account.clone(),
            role,
            status: if i % 9 == 0 {
                MembershipStatus::Suspended
            } else {
                MembershipStatus::Active
            },
            nickname: None,
            managed_by_idp: i % 11 == 0,
        });
        if i % 7 == 0 {
            facts.resources.push(OwnedResource {
                id: ResourceId(format!("large-n{i:04}")),
                kind: ResourceKind::Number,
                name: format!("+1 555 01{i:04}"),
                account: account.clone(),
                owner: user,
            });
        }
    }
    facts
}

/// Seeds `facts` into an empty store, shifting times so the fixture's `now`
/// is the host's now. Returns false (and writes nothing) when the store
/// already has users.
/// It writes no marker: a store seeded this way is not one `--demo` made.
pub async fn seed(host: &Host, facts: &Facts) -> Result<bool, ApiError> {
    let mut tx = host.store.begin_write().await?;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *tx)
        .await?;
    if users > 0 {
        return Ok(false);
    }
    seed_in(&mut tx, host.clock.now(), facts).await?;
    tx.commit().await?;
    Ok(true)
}

/// Writes `facts` in `tx`, times shifted so the fixture's `now` is `now`.
async fn seed_in(tx: &mut Tx, now: i64, facts: &Facts) -> Result<(), ApiError> {
    let shift = now - facts.now;
    // Parents before children (the parent column is a foreign key).
    let depth = |id: &str| {
        let mut d = 0;
        let mut cur = facts.accounts.iter().find(|a| a.id.as_str() == id);
        while let Some(a) = cur.and_then(|a| a.parent.as_ref()) {
            d += 1;
            cur = facts.accounts.iter().find(|x| x.id == *a);
            if d > 64 {
                break;
            }
        }
        d
    };
    let mut accounts: Vec<_> = facts.accounts.iter().collect();
    accounts.sort_by_key(|a| (depth(a.id.as_str()), a.id.clone()));
    for a in accounts {
        sqlx::query("INSERT INTO accounts (id, name, parent_id, included_seats, extra_seats) VALUES ($1, $2, $3, $4, $5)")
            .bind(a.id.as_str())
            .bind(&a.name)
            .bind(a.parent.as_ref().map(|p| p.0.clone()))
            .bind(a.included_seats)
            .bind(a.extra_seats)
            .execute(&mut **tx)
            .await?;
        for d in &a.verified_domains {
            sqlx::query(
                "INSERT INTO account_domains (account_id, domain, verified_by, verified_at) VALUES ($1, $2, 'operator', $3)",
            )
            .bind(a.id.as_str())
            .bind(d.to_lowercase())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    for u in &facts.users {
        sqlx::query(
            "INSERT INTO users (id, email, email_lower, name, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(u.id.as_str())
        .bind(&u.email)
        .bind(u.email.to_lowercase())
        .bind(&u.name)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    for m in &facts.memberships {
        sqlx::query(
            "INSERT INTO memberships (account_id, user_id, role, status, nickname, managed_by_idp, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(m.account.as_str())
        .bind(m.user.as_str())
        .bind(to_word(&m.role))
        .bind(to_word(&m.status))
        .bind(&m.nickname)
        .bind(i64::from(m.managed_by_idp))
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if m.managed_by_idp {
            // The identity provider's record of them: their address as userName.
            let email = facts
                .users
                .iter()
                .find(|u| u.id == m.user)
                .map(|u| u.email.clone())
                .unwrap_or_default();
            sqlx::query(
                "INSERT INTO scim_users (account_id, user_id, user_name, user_name_lower, external_id, resource, created_at, last_modified, version) \
                 VALUES ($1, $2, $3, $4, NULL, '{}', $5, $5, 1)",
            )
            .bind(m.account.as_str())
            .bind(m.user.as_str())
            .bind(&email)
            .bind(email.to_lowercase())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    for i in &facts.invitations {
        sqlx::query(
            "INSERT INTO invitations (id, account_id, email, email_lower, role, invited_by, token_hash, sent_at, expires_at, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(i.id.as_str())
        .bind(i.account.as_str())
        .bind(&i.email)
        .bind(i.email.to_lowercase())
        .bind(to_word(&i.role))
        .bind(i.invited_by.as_str())
        .bind(token::hash(&token::new_secret("ghi")))
        .bind(i.sent_at + shift)
        .bind(i.expires_at + shift)
        .bind(to_word(&i.status))
        .execute(&mut **tx)
        .await?;
    }
    for r in &facts.resources {
        sqlx::query(
            "INSERT INTO resources (id, account_id, kind, name, owner_id) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(r.id.as_str())
        .bind(r.account.as_str())
        .bind(to_word(&r.kind))
        .bind(&r.name)
        .bind(r.owner.as_str())
        .execute(&mut **tx)
        .await?;
    }
    for r in &facts.owner_removal_requests {
        sqlx::query(
            "INSERT INTO owner_removal_requests (id, account_id, requested_by, target_id, new_role, status, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.id.as_str())
        .bind(r.account.as_str())
        .bind(r.requested_by.as_str())
        .bind(r.target.as_str())
        .bind(r.new_role.as_str())
        .bind(to_word(&r.status))
        .bind(r.created_at + shift)
        .bind(r.expires_at + shift)
        .execute(&mut **tx)
        .await?;
    }
    // Devices become sessions nobody holds the secret of: they show in the
    // device list and can be signed out.
    for d in &facts.devices {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, kind, label, token_hash, csrf, created_at, expires_at) VALUES ($1, $2, 'browser', $3, $4, $5, $6, $7)",
        )
        .bind(d.id.as_str())
        .bind(d.user.as_str())
        .bind(&d.label)
        .bind(token::hash(&token::new_secret("ghs")))
        .bind(token::random_hex(16))
        .bind(now)
        .bind(now + crate::auth::SESSION_SECONDS)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
