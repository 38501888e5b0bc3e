//! Payments. First cut: stored value on IC cards (SPEC P-1, P-2). A balance
//! is the sum of the card's ledger rows; every debit carries an idempotency key.

pub mod cards;
pub mod paypal;
pub mod refunds;
pub mod smartpit;
pub mod storeprint;
pub mod topup;

use crate::error::{AppError, AppResult};
use crate::store;
use shomei_shared::{ApiError, ErrorCode, Yen};

/// Debits `amount` from the card for `order_id` in the caller's transaction
/// (at a station, or online from the balance: no station); the idempotency
/// key is unique in the ledger, so a replay cannot debit twice. Returns the
/// balance after the debit.
pub async fn debit_card<S: store::RedeemStore>(
    c: &mut S,
    uid: &str,
    amount: Yen,
    order_id: i64,
    station_id: Option<i64>,
    idempotency_key: &str,
    now: i64,
) -> AppResult<Yen> {
    let card = c.card(uid).await?.ok_or_else(|| AppError::api(ErrorCode::CardUnknown, "this card is not linked to any account"))?;
    if card.status != "active" {
        return Err(AppError::api(ErrorCode::CardBlocked, "this card is blocked"));
    }
    let balance = Yen(c.card_balance(uid).await?);
    if balance < amount {
        let mut e = ApiError::new(ErrorCode::InsufficientBalance, "the card's balance is too low");
        e.balance = Some(balance);
        e.missing = Some(amount - balance);
        return Err(AppError::Api(e));
    }
    c.insert_ledger(&store::NewLedger { uid, amount: -amount.0, kind: "debit", order_id: Some(order_id), station_id, key: Some(idempotency_key), now }).await?;
    Ok(balance - amount)
}

// ---------------------------------------------------------------------------
// Online payment providers (O-4)
// ---------------------------------------------------------------------------

use std::future::Future;
use std::pin::Pin;

/// A future a provider returns (boxed so that providers can sit behind `dyn`).
pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// What an order's payment is started with.
#[derive(Debug, Clone)]
pub struct PaymentRequest<'a> {
    /// Our reference, e.g. "order-42".
    pub reference: &'a str,
    pub amount: Yen,
    /// Last day it can be paid, `YYYY-MM-DD` (university time).
    pub due: &'a str,
    /// The payer's name in katakana (convenience-store slips print it).
    pub payer_kana: &'a str,
    /// Idempotency key: the same key never starts a second payment.
    pub key: &'a str,
}

/// How the payer goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Off to the provider's page (PayPal's approval), `reference` is the provider's id for it.
    Redirect { url: String, reference: String },
    /// A number to pay at a store's till (Smart Pit).
    PayNumber(String),
}

/// How a refund went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refunded {
    /// The provider returned the money to the payer's card or account.
    ByProvider,
    /// The provider cannot return cash: staff pay it back themselves (bank transfer).
    ByStaff,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider did not answer; nothing is known to have happened.
    #[error("payment service unavailable: {0}")]
    Unavailable(String),
    /// The provider answered no.
    #[error("payment service refused: {0}")]
    Refused(String),
}

/// An online payment service an order can be paid through. Each has a real
/// client written to the provider's API (PayPal's published REST API; Smart
/// Pit's assumed API in docs/smartpit-api.md) and a local simulator of that
/// API in `sim/`; configuration (`paypal.base_url`, `smartpit.base_url`)
/// picks which one answers.
pub trait PaymentProvider: Send + Sync {
    /// The order's `payment_method` it serves: "paypal" or "smartpit".
    fn method(&self) -> &'static str;
    /// Starts paying an order (idempotent by `req.key`).
    fn start<'a>(&'a self, req: PaymentRequest<'a>) -> ProviderFuture<'a, Started>;
    /// Gives back `amount` of the payment `payment_ref` (the capture id for
    /// PayPal); idempotent by `key`.
    fn refund<'a>(&'a self, payment_ref: &'a str, amount: Yen, key: &'a str) -> ProviderFuture<'a, Refunded>;
}

impl PaymentProvider for crate::payments::paypal::PayPalClient {
    fn method(&self) -> &'static str {
        "paypal"
    }

    fn start<'a>(&'a self, req: PaymentRequest<'a>) -> ProviderFuture<'a, Started> {
        Box::pin(async move {
            let created = self.create_order(req.amount.0, req.reference, req.key).await.map_err(paypal_error)?;
            Ok(Started::Redirect { url: created.approve_url, reference: created.id })
        })
    }

    fn refund<'a>(&'a self, payment_ref: &'a str, amount: Yen, key: &'a str) -> ProviderFuture<'a, Refunded> {
        Box::pin(async move {
            let r = crate::payments::paypal::PayPalClient::refund(self, payment_ref, amount.0, key).await.map_err(paypal_error)?;
            // a refund PayPal answers FAILED or CANCELLED gave nothing back: not refunded
            if matches!(r.status, crate::payments::paypal::RefundStatus::Failed | crate::payments::paypal::RefundStatus::Cancelled) {
                return Err(ProviderError::Refused(format!("PayPal refund {} is {:?}", r.id, r.status)));
            }
            Ok(Refunded::ByProvider)
        })
    }
}

fn paypal_error(e: crate::payments::paypal::PayPalError) -> ProviderError {
    if e.is_unknown() {
        ProviderError::Unavailable(e.to_string())
    } else {
        ProviderError::Refused(e.to_string())
    }
}

impl PaymentProvider for crate::payments::smartpit::SmartPitClient {
    fn method(&self) -> &'static str {
        "smartpit"
    }

    fn start<'a>(&'a self, req: PaymentRequest<'a>) -> ProviderFuture<'a, Started> {
        Box::pin(async move {
            let number = self.issue(req.reference, req.amount.0, req.due, req.payer_kana, req.key).await.map_err(|e| match e {
                crate::payments::smartpit::SmartPitError::Unavailable(m) => ProviderError::Unavailable(m),
                crate::payments::smartpit::SmartPitError::Refused(m) => ProviderError::Refused(m),
            })?;
            Ok(Started::PayNumber(number))
        })
    }

    fn refund<'a>(&'a self, _payment_ref: &'a str, _amount: Yen, _key: &'a str) -> ProviderFuture<'a, Refunded> {
        // cash taken at a store's till goes back by bank transfer from the office
        Box::pin(async { Ok(Refunded::ByStaff) })
    }
}
