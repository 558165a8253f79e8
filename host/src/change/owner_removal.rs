//! Removing an owner goes through a request the owner approves (R12):
//! request, approve, decline, cancel.

use super::*;

/// Resolves an owner-removal change to its plan.
pub(super) async fn plan(
    tx: &mut Tx,
    change: &Change,
    _attempt: &Attempt,
) -> Result<Plan, ApiError> {
    Ok(match change {
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
        _ => return Err(ApiError::internal("not an owner-removal change")),
    })
}

/// Applies an allowed owner-removal change.
pub(super) async fn apply(cx: &Ctx<'_>, tx: &mut Tx, change: &Change) -> Result<Effect, ApiError> {
    let check = cx.check;
    let now = cx.now;
    let me = cx.me.clone();
    let account_name = |id: &str| cx.account_name(id);
    let mut fx = Effect::default();
    match change {
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
            let request = cx.request()?;
            let (account, target) = (request.account.as_str(), request.target.as_str());
            let new_role = request.new_role.as_str();
            sqlx::query("UPDATE owner_removal_requests SET status = 'approved' WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            if new_role == "none" {
                members::remove_membership(tx, account, target, now).await?;
            } else {
                members::set_role(tx, account, target, new_role).await?;
            }
            // The account's other owners, as the decision saw them.
            let mut owners: Vec<String> = facts::owners(&check.facts, account)
                .filter(|m| m.user.as_str() != target)
                .map(|m| user_email(check, m.user.as_str()))
                .collect();
            owners.sort();
            for to in owners {
                fx.mails.push(Mail {
                    to,
                    subject: format!("{} is no longer an owner of {}", user_name(check, target), account_name(account)),
                    body: format!(
                        "{} approved the request to remove their owner role on {} (now: {new_role}).",
                        user_name(check, target),
                        account_name(account)
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
        _ => return Err(ApiError::internal("not an owner-removal change")),
    }
    Ok(fx)
}

async fn request_row(tx: &mut Tx, id: &str) -> Result<(String, String), ApiError> {
    let row = sqlx::query("SELECT account_id, status FROM owner_removal_requests WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no owner-removal request `{id}`")))?;
    Ok((row.try_get("account_id")?, row.try_get("status")?))
}
