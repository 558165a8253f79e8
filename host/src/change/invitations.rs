//! Invitations: invite an address, accept a link, resend, revoke (R2, R3, R4).

use super::*;

/// Resolves an invitation change to its plan.
pub(super) async fn plan(
    tx: &mut Tx,
    change: &Change,
    _attempt: &Attempt,
) -> Result<Plan, ApiError> {
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
        _ => return Err(ApiError::internal("not an invitation change")),
    })
}

/// Applies an allowed invitation change.
pub(super) async fn apply(cx: &Ctx<'_>, tx: &mut Tx, change: &Change) -> Result<Effect, ApiError> {
    let now = cx.now;
    let me = cx.me.clone();
    let account_name = |id: &str| cx.account_name(id);
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
                &cx.host.settings.public_url,
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
            let inv = cx.invitation()?;
            let (id, account, role) = (&inv.id, inv.account.as_str(), inv.role.as_str());
            if cx.is_member(account, &me) {
                return Err(ApiError::Conflict(format!(
                    "you are already a member of {}",
                    account_name(account)
                )));
            }
            sqlx::query(
                "INSERT INTO memberships (account_id, user_id, role, status, managed_by_idp, created_at) VALUES ($1, $2, $3, 'active', 0, $4)",
            )
            .bind(account)
            .bind(&me)
            .bind(role)
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
            crate::auth::restore_account(tx, &me, account).await?;
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
            let inv = cx.invitation()?;
            let (email, account, role) = (&inv.email, inv.account.as_str(), inv.role);
            fx.mails.push(invitation_mail(
                &cx.host.settings.public_url,
                email,
                &account_name(account),
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
        _ => return Err(ApiError::internal("not an invitation change")),
    }
    Ok(fx)
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

fn invitation_plan(action: &'static str, inv: InvitationRow) -> Plan {
    Plan {
        action,
        target: Target::Invitation(gatehouse_policy::facts::InvitationId(inv.id)),
        params: Params::default(),
        account: Some(inv.account.clone()),
        scope: Scope::account(&inv.account),
    }
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
