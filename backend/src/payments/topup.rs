//! IC card online charge (P-4, S-4): the user tops up a linked card's stored
//! value through PayPal. Create the PayPal order (its request id is the
//! top-up's id, so a retry makes no second order), send the buyer to approve,
//! capture on return by POST, and credit the ledger keyed by the capture id,
//! so the return page, a retry and the webhook credit the card exactly once.
//! The return and the webhook, which serve orders too, are in
//! `orders::paypal_return` (above payments).

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult};
use crate::payments::paypal::{PayPalClient, PayPalError};
use crate::store;
use crate::time::now;
use crate::store::Pool;

/// The amounts offered (yen).
pub const AMOUNTS: [i64; 5] = [1000, 2000, 3000, 5000, 10000];

pub const DECLINED: &str = "カード会社に支払いを断られました。料金はかかっていません。別のカードでお試しください。 / The payment was declined: nothing was charged. Please try another card.";
pub const NOT_APPROVED: &str = "PayPal での支払いが完了していません。もう一度お試しください。 / The payment was not completed at PayPal: please try again.";
/// A top-up returned from PayPal for a card its owner unlinked meanwhile.
pub const CARD_NOT_LINKED: &str = "このカードはアカウントに登録されていないため、入金していません（代金もいただいていません）。 / This card is no longer linked to your account: it was not topped up and you were not charged.";
pub const PENDING: &str = "支払いを確認中です。二重に支払わないでください。確認でき次第、残高に反映されます。 / We are confirming the payment: please do not pay again. The balance updates once it is confirmed.";

pub fn paypal_err(e: PayPalError) -> AppError {
    match e {
        PayPalError::Declined { .. } => AppError::Page(DECLINED.into()),
        PayPalError::NotApproved { .. } => AppError::Page(NOT_APPROVED.into()),
        PayPalError::Unknown { .. } => AppError::Page(PENDING.into()),
        other => AppError::Internal(anyhow::anyhow!("paypal: {other}")),
    }
}

/// Starts a top-up; returns where to send the buyer.
pub async fn start(pool: &Pool, paypal: &PayPalClient, user_id: i64, client: Client<'_>, uid: &str, amount: i64) -> AppResult<String> {
    if !AMOUNTS.contains(&amount) {
        return Err(AppError::Page(crate::messages::CHECK_INPUT.into()));
    }
    let mut tx = store::begin_write(pool).await?;
    match store::card(&mut tx, uid).await? {
        Some(c) if c.user_id == user_id && c.status == "active" => {}
        _ => return Err(AppError::PageNotFound),
    }
    let id = store::insert_topup(&mut tx, user_id, uid, amount, now()).await?;
    accounts::audit(&mut tx, &format!("user:{user_id}"), "topup.start", &format!("topup:{id} card:{uid} amount:{amount}"), client).await?;
    tx.commit().await?;
    let created = paypal.create_order(amount, &format!("topup-{id}"), &format!("create-topup-{id}")).await.map_err(paypal_err)?;
    let mut c = pool.acquire().await?;
    store::set_topup_paypal_order(&mut c, id, &created.id).await?;
    Ok(created.approve_url)
}

/// Credits a completed capture once (the capture id is the ledger's idempotency key).
pub async fn credit(pool: &Pool, paypal_order_id: &str, capture_id: &str, amount: i64) -> AppResult<i64> {
    let mut tx = store::begin_write(pool).await?;
    let t = store::topup_by_paypal_order(&mut tx, paypal_order_id).await?.ok_or(AppError::PageNotFound)?;
    if amount != t.amount {
        tracing::error!(topup = t.id, expected = t.amount, captured = amount, "captured amount differs: not credited");
        return Err(AppError::Internal(anyhow::anyhow!("captured amount differs from the top-up")));
    }
    let key = format!("paypal:{capture_id}");
    if store::ledger_by_key(&mut tx, &key).await?.is_none() {
        store::insert_ledger(&mut tx, &t.card_uid, amount, "topup", None, None, Some(&key), now()).await?;
        store::set_topup_captured(&mut tx, t.id, capture_id, now()).await?;
        store::audit(&mut tx, &format!("user:{}", t.user_id), "topup.credit", &format!("topup:{} capture:{capture_id}", t.id), now()).await?;
        tracing::info!(topup = t.id, amount, "stored value topped up");
    }
    tx.commit().await?;
    Ok(amount)
}
