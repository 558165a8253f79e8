//! Seats: buy and remove extra seats (R4).

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
        _ => return Err(ApiError::internal("not a seats change")),
    })
}

/// Applies an allowed seats change.
pub(super) async fn apply(_cx: &Ctx<'_>, tx: &mut Tx, change: &Change) -> Result<Effect, ApiError> {
    let mut fx = Effect::default();
    match change {
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
