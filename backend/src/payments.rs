//! Payments. First cut: stored value on IC cards (SPEC P-1, P-2). A balance
//! is the sum of the card's ledger rows; every debit carries an idempotency key.

use crate::error::{AppError, AppResult};
use crate::store::{self, Conn};
use shomei_shared::{ApiError, ErrorCode, Yen};

/// Debits `amount` from the card for `order_id` in the caller's transaction;
/// the idempotency key is unique in the ledger, so a replay cannot debit twice. Returns the balance after the debit.
pub async fn debit_card(
    c: &mut Conn,
    uid: &str,
    amount: Yen,
    order_id: i64,
    station_id: i64,
    idempotency_key: &str,
    now: i64,
) -> AppResult<Yen> {
    let card = store::card(c, uid)
        .await?
        .ok_or_else(|| AppError::api(ErrorCode::CardUnknown, "this card is not linked to any account"))?;
    if card.status != "active" {
        return Err(AppError::api(ErrorCode::CardBlocked, "this card is blocked"));
    }
    let balance = Yen(store::card_balance(c, uid).await?);
    if balance < amount {
        let mut e = ApiError::new(ErrorCode::InsufficientBalance, "the card's balance is too low");
        e.balance = Some(balance);
        e.missing = Some(amount - balance);
        return Err(AppError::Api(e));
    }
    store::insert_ledger(c, uid, -amount.0, "debit", Some(order_id), Some(station_id), Some(idempotency_key), now)
        .await?;
    Ok(balance - amount)
}
