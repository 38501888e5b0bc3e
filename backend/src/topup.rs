//! IC card online charge (P-4, S-4): the user tops up a linked card's stored
//! value through PayPal. Create the PayPal order (its request id is the
//! top-up's id, so a retry makes no second order), send the buyer to approve,
//! capture on return by POST, and credit the ledger keyed by the capture id,
//! so the return page, a retry and the webhook credit the card exactly once.

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult};
use crate::paypal::{CaptureStatus, PayPalClient, PayPalError};
use crate::store;
use crate::time::now;
use shomei_shared::Yen;
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

/// What a completed return from PayPal paid for.
pub enum Paid {
    Topup,
    Order(i64),
}

/// What a PayPal payment of this user is for: an order (its id and total) or a top-up (its amount).
pub enum Purpose {
    Order { id: i64, total: Yen },
    Topup { amount: Yen },
}

pub async fn purpose(pool: &Pool, user_id: i64, paypal_order_id: &str) -> AppResult<Option<Purpose>> {
    let mut c = pool.acquire().await?;
    if let Some(order) = store::order_by_paypal(&mut c, paypal_order_id).await?.filter(|o| o.user_id == user_id) {
        return Ok(Some(Purpose::Order { id: order.id, total: Yen(order.total) }));
    }
    Ok(store::topup_by_paypal_order(&mut c, paypal_order_id).await?.filter(|t| t.user_id == user_id).map(|t| Purpose::Topup { amount: Yen(t.amount) }))
}

/// The buyer came back from PayPal (POST from our return page): capture, then
/// credit the card or mark the order paid.
pub async fn complete(pool: &Pool, seal: &crate::sealed::SealKey, paypal: &PayPalClient, public_url: &str, user_id: i64, paypal_order_id: &str) -> AppResult<Paid> {
    let mut c = pool.acquire().await?;
    if let Some(order) = store::order_by_paypal(&mut c, paypal_order_id).await? {
        drop(c);
        if order.user_id != user_id {
            return Err(AppError::PageNotFound);
        }
        if order.capture_id.is_some() {
            return Ok(Paid::Order(order.id));
        }
        let capture = paypal.capture(paypal_order_id, &format!("capture-{paypal_order_id}")).await.map_err(paypal_err)?;
        return match capture.status {
            CaptureStatus::Completed => {
                crate::orders::paid_by_paypal(pool, seal, public_url, paypal_order_id, &capture.capture_id, capture.amount_yen).await.map(Paid::Order)
            }
            _ => Err(AppError::Page(PENDING.into())),
        };
    }
    let t = store::topup_by_paypal_order(&mut c, paypal_order_id).await?.filter(|t| t.user_id == user_id).ok_or(AppError::PageNotFound)?;
    drop(c);
    if t.status == "captured" {
        return Ok(Paid::Topup);
    }
    // the card was unlinked while PayPal waited: nothing is taken for it
    if !store::card(&mut *pool.acquire().await?, &t.card_uid).await?.is_some_and(|k| k.user_id == user_id) {
        return Err(AppError::Page(CARD_NOT_LINKED.into()));
    }
    let capture = match paypal.capture(paypal_order_id, &format!("capture-{paypal_order_id}")).await {
        Ok(c) => c,
        Err(e @ PayPalError::Declined { .. }) => {
            let mut c = pool.acquire().await?;
            store::set_topup_status(&mut c, t.id, "declined").await?;
            return Err(paypal_err(e));
        }
        Err(e) => return Err(paypal_err(e)),
    };
    match capture.status {
        CaptureStatus::Completed => credit(pool, paypal_order_id, &capture.capture_id, capture.amount_yen).await.map(|_| Paid::Topup),
        _ => Err(AppError::Page(PENDING.into())),
    }
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

/// PayPal's webhook: verified with PayPal, then a completed capture is credited (once).
/// Returns the HTTP status to answer.
/// Anyone can post to it: only an event that could matter (a completed
/// capture of a PayPal order this backend created, with PayPal's transmission
/// headers) is sent to PayPal's verify API, and an address whose events fail
/// verification is throttled, so nobody can spend PayPal's quota or our time.
pub async fn webhook(
    pool: &Pool,
    seal: &crate::sealed::SealKey,
    paypal: &PayPalClient,
    public_url: &str,
    throttle: &crate::accounts::Throttle,
    client_ip: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> u16 {
    let Ok(event) = crate::paypal::parse_webhook_event(body) else { return 400 };
    if event.event_type != "PAYMENT.CAPTURE.COMPLETED" {
        return 200; // nothing is done with it, so nothing needs verifying
    }
    let (Some(order_id), Some(capture_id), Some(amount)) = (event.order_id, event.capture_id, event.amount_yen) else { return 400 };
    if !["paypal-transmission-id", "paypal-transmission-sig", "paypal-transmission-time", "paypal-cert-url", "paypal-auth-algo"]
        .iter()
        .all(|h| headers.contains_key(*h))
    {
        return 400;
    }
    // a certificate order or a top-up this backend created; anything else is acknowledged and ignored
    let (is_order, is_topup) = match pool.acquire().await {
        Ok(mut c) => (
            store::order_by_paypal(&mut c, &order_id).await.ok().flatten().is_some(),
            store::topup_by_paypal_order(&mut c, &order_id).await.ok().flatten().is_some(),
        ),
        Err(_) => return 503,
    };
    if !is_order && !is_topup {
        tracing::info!("PayPal webhook for an order this backend did not create: ignored, not verified");
        return 200;
    }
    let key = format!("paypal-webhook:{client_ip}");
    if throttle.check_with(&key, 20, 3).await.is_err() {
        return 429;
    }
    match paypal.verify_webhook(headers, body).await {
        Ok(true) => {}
        Ok(false) => {
            throttle.fail(&key).await;
            tracing::warn!("PayPal webhook with a bad signature refused");
            return 400;
        }
        Err(e) => {
            tracing::warn!(error = %e, "PayPal webhook could not be verified now");
            return 503;
        }
    }
    let applied = if is_order {
        crate::orders::paid_by_paypal(pool, seal, public_url, &order_id, &capture_id, amount).await.map(|_| 0)
    } else {
        credit(pool, &order_id, &capture_id, amount).await
    };
    match applied {
        Ok(_) | Err(AppError::PageNotFound) => 200,
        Err(e) => {
            tracing::warn!(error = %e, "PayPal webhook not applied");
            500
        }
    }
}
