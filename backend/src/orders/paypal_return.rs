//! A PayPal payment coming back (the buyer's return to our page, PayPal's
//! webhook) is for a certificate order or for an IC card top-up: this finds
//! which, captures, and marks the order paid ([`crate::orders::paid_by_paypal`])
//! or credits the card ([`crate::payments::topup::credit`]). It sits in
//! `orders`, above `payments`, because it reaches both.

use crate::error::{AppError, AppResult};
use crate::orders;
use crate::payments::paypal::{CaptureStatus, PayPalClient, PayPalError};
use crate::payments::topup;
use crate::store;
use shomei_shared::Yen;
use crate::store::Pool;

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
        let capture = paypal.capture(paypal_order_id, &format!("capture-{paypal_order_id}")).await.map_err(topup::paypal_err)?;
        return match capture.status {
            CaptureStatus::Completed => {
                orders::paid_by_paypal(pool, seal, public_url, paypal_order_id, &capture.capture_id, capture.amount_yen).await.map(Paid::Order)
            }
            _ => Err(AppError::Page(topup::PENDING.into())),
        };
    }
    let t = store::topup_by_paypal_order(&mut c, paypal_order_id).await?.filter(|t| t.user_id == user_id).ok_or(AppError::PageNotFound)?;
    drop(c);
    if t.status == "captured" {
        return Ok(Paid::Topup);
    }
    // the card was unlinked while PayPal waited: nothing is taken for it
    if !store::card(&mut *pool.acquire().await?, &t.card_uid).await?.is_some_and(|k| k.user_id == user_id) {
        return Err(AppError::Page(topup::CARD_NOT_LINKED.into()));
    }
    let capture = match paypal.capture(paypal_order_id, &format!("capture-{paypal_order_id}")).await {
        Ok(c) => c,
        Err(e @ PayPalError::Declined { .. }) => {
            let mut c = pool.acquire().await?;
            store::set_topup_status(&mut c, t.id, "declined").await?;
            return Err(topup::paypal_err(e));
        }
        Err(e) => return Err(topup::paypal_err(e)),
    };
    match capture.status {
        CaptureStatus::Completed => topup::credit(pool, paypal_order_id, &capture.capture_id, capture.amount_yen).await.map(|_| Paid::Topup),
        _ => Err(AppError::Page(topup::PENDING.into())),
    }
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
    let Ok(event) = crate::payments::paypal::parse_webhook_event(body) else { return 400 };
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
        orders::paid_by_paypal(pool, seal, public_url, &order_id, &capture_id, amount).await.map(|_| 0)
    } else {
        topup::credit(pool, &order_id, &capture_id, amount).await
    };
    match applied {
        Ok(_) | Err(AppError::PageNotFound) => 200,
        Err(e) => {
            tracing::warn!(error = %e, "PayPal webhook not applied");
            500
        }
    }
}
