//! The caller's own profile: update it, notifications, sign out a device,
//! mint an API token, delete the profile.

use super::*;

/// Resolves a profile change to its plan.
pub(super) async fn plan(
    tx: &mut Tx,
    change: &Change,
    attempt: &Attempt,
) -> Result<Plan, ApiError> {
    let me = attempt.user_id().unwrap_or_default().to_owned();
    let on_self = |action: &'static str| super::on_self(action, &me);
    Ok(match change {
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
        _ => return Err(ApiError::internal("not a profile change")),
    })
}

/// Applies an allowed profile change.
pub(super) async fn apply(cx: &Ctx<'_>, tx: &mut Tx, change: &Change) -> Result<Effect, ApiError> {
    let now = cx.now;
    let me = cx.me.clone();
    let mut fx = Effect::default();
    match change {
        Change::DeleteProfile => {
            let accounts: Vec<String> =
                sqlx::query_scalar("SELECT account_id FROM memberships WHERE user_id = $1")
                    .bind(&me)
                    .fetch_all(&mut **tx)
                    .await?;
            for a in &accounts {
                members::remove_membership(tx, a, &me, now).await?;
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
        _ => return Err(ApiError::internal("not a profile change")),
    }
    Ok(fx)
}
