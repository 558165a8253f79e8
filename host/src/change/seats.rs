//! An account's settings: buy and remove extra seats (R4), verify an
//! email domain for its identity provider (R17).

use super::*;

/// Resolves a seats change to its plan.
pub(super) async fn plan(
    tx: &mut Tx,
    change: &Change,
    _attempt: &Attempt,
) -> Result<Plan, ApiError> {
    Ok(match change {
        Change::BuySeats { account, quantity } | Change::RemoveSeats { account, quantity } => {
            require_account(tx, account).await?;
            let action = if matches!(change, Change::BuySeats { .. }) {
                "buy_seats"
            } else {
                "remove_seats"
            };
            on_account(
                action,
                account,
                Params {
                    quantity: Some(*quantity),
                    ..Params::default()
                },
            )
        }
        Change::VerifyDomain {
            account,
            domain,
            proven,
        } => {
            require_account(tx, account).await?;
            on_account(
                "verify_domain",
                account,
                Params {
                    domain: Some(Box::new(gatehouse_policy::DomainClaim {
                        name: domain.clone(),
                        proven: *proven,
                    })),
                    ..Params::default()
                },
            )
        }
        _ => return Err(ApiError::internal("not a seats change")),
    })
}

/// Applies an allowed seats change.
pub(super) async fn apply(cx: &Ctx<'_>, tx: &mut Tx, change: &Change) -> Result<Effect, ApiError> {
    let mut fx = Effect::default();
    match change {
        Change::VerifyDomain {
            account, domain, ..
        } => {
            sqlx::query(
                "INSERT INTO account_domains (account_id, domain, verified_by, verified_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (account_id, domain) DO NOTHING",
            )
            .bind(account)
            .bind(domain)
            .bind(&cx.me)
            .bind(cx.now)
            .execute(&mut **tx)
            .await?;
            fx.result = json!({"account": account, "domain": domain, "verified": true});
        }
        Change::BuySeats { account, quantity } | Change::RemoveSeats { account, quantity } => {
            let delta = if matches!(change, Change::BuySeats { .. }) {
                *quantity
            } else {
                -*quantity
            };
            sqlx::query("UPDATE accounts SET extra_seats = extra_seats + $1 WHERE id = $2")
                .bind(delta)
                .bind(account)
                .execute(&mut **tx)
                .await?;
            fx.result = json!({"account": account});
        }
        _ => return Err(ApiError::internal("not a seats change")),
    }
    Ok(fx)
}
