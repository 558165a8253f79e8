//! SCIM: an identity provider provisions, deactivates, activates and
//! deletes its account's users (R15).

use super::*;

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
        _ => return Err(ApiError::internal("not a SCIM change")),
    })
}

/// Applies an allowed SCIM change.
pub(super) async fn apply(cx: &Ctx<'_>, tx: &mut Tx, change: &Change) -> Result<Effect, ApiError> {
    let plan = cx.plan;
    let now = cx.now;
    let account_name = |id: &str| cx.account_name(id);
    let mut fx = Effect::default();
    match change {
        // Deactivating is suspending, activating unsuspending.
        Change::ScimDeactivate { .. } | Change::ScimActivate { .. } => {
            return members::apply(cx, tx, change).await;
        }
        Change::ScimDelete { user } => {
            let account = plan.account.clone().unwrap_or_default();
            members::remove_membership(tx, &account, user, now).await?;
            fx.result = json!({"account": account, "user": user, "removed": true});
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
        _ => return Err(ApiError::internal("not a SCIM change")),
    }
    Ok(fx)
}
