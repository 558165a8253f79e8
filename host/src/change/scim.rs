//! SCIM: an identity provider provisions, updates, deactivates, activates
//! and deletes its account's users (R17).
//!
//! Its record of each member (`scim_users`: its userName, externalId and
//! the attributes it sent) is written in the same transaction as the
//! membership and the audit row. The global user is created when the
//! address is new and never changed otherwise: its name and address are
//! the person's, shared by every account they belong to.

use super::*;

/// An identity provider's record of one member: what it sent, per account.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimRecord {
    /// SCIM `userName`: unique in the account, compared without case.
    pub user_name: String,
    /// SCIM `externalId`: the identity provider's own id, compared exactly.
    pub external_id: Option<String>,
    /// Every other stored attribute, as a JSON object (`name`, `emails`, …).
    pub attributes: serde_json::Map<String, Value>,
    /// The version this record was made from: writing it fails with
    /// [`ApiError::PreconditionFailed`] when the stored one moved on since
    /// (`If-Match`, and no PATCH lost to a concurrent one).
    pub based_on: Option<i64>,
}

/// Resolves a SCIM change to its plan.
pub(super) async fn plan(
    tx: &mut Tx,
    change: &Change,
    attempt: &Attempt,
) -> Result<Plan, ApiError> {
    let idp = || {
        attempt
            .idp_account()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::internal("SCIM change without an identity provider"))
    };
    Ok(match change {
        Change::ScimProvision { email, .. } => {
            let account = idp()?;
            let mut plan = on_account(
                "scim_provision",
                &account,
                Params {
                    email: Some(email.clone()),
                    ..Params::default()
                },
            );
            // Only this account's verified domains, and only here.
            plan.scope.domains_of = Some(account);
            plan
        }
        Change::ScimDeactivate { user, .. }
        | Change::ScimActivate { user, .. }
        | Change::ScimUpdate { user, .. }
        | Change::ScimDelete { user } => {
            let account = idp()?;
            require_member(tx, &account, user).await?;
            let action = match change {
                Change::ScimDeactivate { .. } => "scim_deactivate",
                Change::ScimActivate { .. } => "scim_activate",
                Change::ScimUpdate { .. } => "scim_update",
                _ => "scim_delete",
            };
            on_member(action, &account, user, Params::default())
        }
        _ => return Err(ApiError::internal("not a SCIM change")),
    })
}

/// Applies an allowed SCIM change.
pub(super) async fn apply(cx: &Ctx<'_>, tx: &mut Tx, change: &Change) -> Result<Effect, ApiError> {
    let plan = cx.plan;
    let now = cx.now;
    let account = plan.account.clone().unwrap_or_default();
    let mut fx = Effect::default();
    match change {
        // Deactivating is suspending, activating unsuspending.
        Change::ScimDeactivate { user, record } | Change::ScimActivate { user, record } => {
            match record {
                Some(record) => write_record(tx, &account, user, record, now).await?,
                // `active` is part of the resource: a new version.
                None => {
                    sqlx::query(
                        "UPDATE scim_users SET version = version + 1, last_modified = $1 WHERE account_id = $2 AND user_id = $3",
                    )
                    .bind(now)
                    .bind(&account)
                    .bind(user)
                    .execute(&mut **tx)
                    .await?;
                }
            }
            return members::apply(cx, tx, change).await;
        }
        Change::ScimUpdate { user, record } => {
            write_record(tx, &account, user, record, now).await?;
            fx.result = json!({"account": account, "user": user, "updated": true});
        }
        Change::ScimDelete { user } => {
            members::remove_membership(tx, &account, user, now).await?;
            fx.result = json!({"account": account, "user": user, "removed": true});
        }
        Change::ScimProvision {
            email,
            name,
            record,
            active,
        } => {
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
            let taken: Option<String> = sqlx::query_scalar(
                "SELECT user_id FROM scim_users WHERE account_id = $1 AND (user_name_lower = $2 OR user_id = $3)",
            )
            .bind(&account)
            .bind(record.user_name.to_lowercase())
            .bind(&user)
            .fetch_optional(&mut **tx)
            .await?;
            if taken.is_some() {
                return Err(ApiError::Conflict(format!(
                    "a user with the userName `{}` or the address {email} is already provisioned here",
                    record.user_name
                )));
            }
            let status = if *active { "active" } else { "suspended" };
            let member =
                sqlx::query("SELECT 1 FROM memberships WHERE account_id = $1 AND user_id = $2")
                    .bind(&account)
                    .bind(&user)
                    .fetch_optional(&mut **tx)
                    .await?;
            if member.is_some() {
                // A member who accepted an invitation: the identity
                // provider manages them from now on. Their role and status
                // stay (`active: false` is a deactivation of its own,
                // decided as one: see scim::create).
                sqlx::query(
                    "UPDATE memberships SET managed_by_idp = 1 WHERE account_id = $1 AND user_id = $2",
                )
                .bind(&account)
                .bind(&user)
                .execute(&mut **tx)
                .await?;
            } else {
                sqlx::query(
                    "INSERT INTO memberships (account_id, user_id, role, status, managed_by_idp, created_at) VALUES ($1, $2, 'basic', $3, 1, $4)",
                )
                .bind(&account)
                .bind(&user)
                .bind(status)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                if *active {
                    // Re-provisioned after a DELETE: the user's sessions may use the account again.
                    crate::auth::restore_account(tx, &user, &account).await?;
                } else {
                    crate::auth::sign_out_of_account(tx, &user, &account, now).await?;
                }
            }
            sqlx::query(
                "INSERT INTO scim_users (account_id, user_id, user_name, user_name_lower, external_id, resource, created_at, last_modified, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1)",
            )
            .bind(&account)
            .bind(&user)
            .bind(&record.user_name)
            .bind(record.user_name.to_lowercase())
            .bind(&record.external_id)
            .bind(Value::Object(record.attributes.clone()).to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
            fx.after_target = Some(membership(&account, &user));
            fx.result = json!({"account": account, "user": user});
        }
        _ => return Err(ApiError::internal("not a SCIM change")),
    }
    Ok(fx)
}

/// Replaces the identity provider's record of a member (a new version).
async fn write_record(
    tx: &mut Tx,
    account: &str,
    user: &str,
    record: &ScimRecord,
    now: i64,
) -> Result<(), ApiError> {
    let clash: Option<String> = sqlx::query_scalar(
        "SELECT user_id FROM scim_users WHERE account_id = $1 AND user_name_lower = $2 AND user_id <> $3",
    )
    .bind(account)
    .bind(record.user_name.to_lowercase())
    .bind(user)
    .fetch_optional(&mut **tx)
    .await?;
    if clash.is_some() {
        return Err(ApiError::Conflict(format!(
            "another user here already has the userName `{}`",
            record.user_name
        )));
    }
    let sql = if record.based_on.is_some() {
        "UPDATE scim_users SET user_name = $1, user_name_lower = $2, external_id = $3, resource = $4, \
         last_modified = $5, version = version + 1 WHERE account_id = $6 AND user_id = $7 AND version = $8"
    } else {
        "UPDATE scim_users SET user_name = $1, user_name_lower = $2, external_id = $3, resource = $4, \
         last_modified = $5, version = version + 1 WHERE account_id = $6 AND user_id = $7"
    };
    let mut q = sqlx::query(sql)
        .bind(&record.user_name)
        .bind(record.user_name.to_lowercase())
        .bind(&record.external_id)
        .bind(Value::Object(record.attributes.clone()).to_string())
        .bind(now)
        .bind(account)
        .bind(user);
    if let Some(v) = record.based_on {
        q = q.bind(v);
    }
    if q.execute(&mut **tx).await?.rows_affected() == 0 {
        return Err(ApiError::PreconditionFailed(format!(
            "user `{user}` changed since version {}: read it again",
            record.based_on.unwrap_or_default()
        )));
    }
    Ok(())
}
