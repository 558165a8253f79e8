//! Demo data: the Acme fixture the shared vectors use (an agency with nested
//! sub-accounts, members of every role and status, owned resources, pending
//! and expired invitations, an owner-removal request, an IdP-managed member),
//! shifted so that its "now" is the host's now.

use gatehouse_policy::Facts;
use gatehouse_policy::facts::{
    Account, AccountId, Membership, MembershipStatus, OwnedResource, ResourceId, ResourceKind,
    Role, User, UserId,
};

use crate::Host;
use crate::error::ApiError;
use crate::facts::to_word;
use crate::token;

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
pub async fn seed(host: &Host, facts: &Facts) -> Result<bool, ApiError> {
    let now = host.clock.now();
    let shift = now - facts.now;
    let mut tx = host.store.begin_write().await?;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *tx)
        .await?;
    if users > 0 {
        return Ok(false);
    }
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
            .execute(&mut *tx)
            .await?;
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
        .execute(&mut *tx)
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
        .execute(&mut *tx)
        .await?;
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
        .execute(&mut *tx)
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
        .execute(&mut *tx)
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
        .execute(&mut *tx)
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
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}
