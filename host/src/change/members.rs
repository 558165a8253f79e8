//! Members: change a role, step down, edit a nickname, suspend, unsuspend,
//! remove, leave, reassign resources, and the bulk removal that starts a job.

use super::*;

/// Resolves a members change to its plan.
pub(super) async fn plan(
    tx: &mut Tx,
    change: &Change,
    attempt: &Attempt,
) -> Result<Plan, ApiError> {
    let me = attempt.user_id().unwrap_or_default().to_owned();
    Ok(match change {
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
        _ => return Err(ApiError::internal("not a members change")),
    })
}

/// Applies an allowed members change.
pub(super) async fn apply(cx: &Ctx<'_>, tx: &mut Tx, change: &Change) -> Result<Effect, ApiError> {
    let plan = cx.plan;
    let check = cx.check;
    let now = cx.now;
    let me = cx.me.clone();
    let account_name = |id: &str| cx.account_name(id);
    let mut fx = Effect::default();
    match change {
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
        Change::Suspend { user, .. } | Change::ScimDeactivate { user, .. } => {
            let account = plan.account.clone().unwrap_or_default();
            set_status(tx, &account, user, "suspended").await?;
            crate::auth::sign_out_of_account(tx, user, &account, now).await?;
            fx.result = json!({"account": account, "user": user, "status": "suspended"});
        }
        Change::Unsuspend { user, .. } | Change::ScimActivate { user, .. } => {
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
        _ => return Err(ApiError::internal("not a members change")),
    }
    Ok(fx)
}

/// The nearest ancestor of `account` where `user` still has a membership.
fn inherited_access(check: &Check, account: &str, user: &str) -> Option<String> {
    let lineage = facts::lineage(&check.facts, account);
    facts::first_membership(&check.facts, &lineage[1..], user).map(str::to_owned)
}

pub(super) async fn set_role(
    tx: &mut Tx,
    account: &str,
    user: &str,
    role: &str,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE memberships SET role = $1 WHERE account_id = $2 AND user_id = $3")
        .bind(role)
        .bind(account)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn set_status(
    tx: &mut Tx,
    account: &str,
    user: &str,
    status: &str,
) -> Result<(), ApiError> {
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
pub(super) async fn remove_membership(
    tx: &mut Tx,
    account: &str,
    user: &str,
    now: i64,
) -> Result<(), ApiError> {
    // The identity provider's record of them goes with the membership.
    sqlx::query("DELETE FROM scim_users WHERE account_id = $1 AND user_id = $2")
        .bind(account)
        .bind(user)
        .execute(&mut **tx)
        .await?;
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
