//! PayPal REST client (SPEC O-4, P-4): card payments through PayPal Checkout,
//! never charging twice.
//!
//! The subset of PayPal's documented REST API that shomei uses:
//!
//! | call                                              | method                        |
//! |---------------------------------------------------|-------------------------------|
//! | `POST /v1/oauth2/token` (client credentials)      | internal, cached until expiry |
//! | `POST /v2/checkout/orders`                        | [`PayPalClient::create_order`] |
//! | `GET  /v2/checkout/orders/{id}`                   | [`PayPalClient::get_order`]    |
//! | `POST /v2/checkout/orders/{id}/capture`           | [`PayPalClient::capture`]      |
//! | `POST /v2/payments/captures/{id}/refund`          | [`PayPalClient::refund`]       |
//! | `POST /v1/notifications/verify-webhook-signature` | [`PayPalClient::verify_webhook`] |
//!
//! `base_url` is `https://api-m.sandbox.paypal.com` (sandbox) or
//! `https://api-m.paypal.com` (live) in production, and the local simulator
//! (`shomei-paypal`, default `http://127.0.0.1:8097`) in tests and the demo.
//! https needs reqwest's `rustls` feature in the crate that compiles this file.
//!
//! Never charging twice:
//! - every mutating call carries `PayPal-Request-Id`; a retry with the same id
//!   returns the first answer instead of a second order / capture / refund.
//!   PayPal keeps these ids for hours, not forever: the caller must also store
//!   the PayPal order id against its own order and reuse it.
//! - [`PayPalClient::capture`] of an order that is already captured answers with
//!   that order's existing capture (PayPal's `ORDER_ALREADY_CAPTURED`), so the
//!   return page, a retry and a webhook can race without harm if the caller
//!   credits by the (unique) capture id.
//! - a 5xx, a timeout or a lost connection is [`PayPalError::Unknown`]: the
//!   payment may or may not have happened; ask again (same request id, or
//!   [`PayPalClient::get_order`]), never treat it as declined.
//!
//! Nothing secret (client secret, access token) is ever logged. This file uses
//! no `crate::` items so the simulator's tests can compile it on its own.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// PayPal's sandbox API.
pub const SANDBOX_BASE_URL: &str = "https://api-m.sandbox.paypal.com";
/// PayPal's live API.
pub const LIVE_BASE_URL: &str = "https://api-m.paypal.com";
/// The local simulator `shomei-paypal` with its default `--listen`.
pub const SIMULATOR_BASE_URL: &str = "http://127.0.0.1:8097";
/// The simulator's default `--client-id`, `--client-secret` and `--webhook-id`.
pub const SIMULATOR_CLIENT_ID: &str = "shomei-sim-client";
pub const SIMULATOR_CLIENT_SECRET: &str = "shomei-sim-secret";
pub const SIMULATOR_WEBHOOK_ID: &str = "SIMWEBHOOK0001";

/// The only currency shomei charges in. JPY has no minor unit: "1500" is ¥1,500.
pub const CURRENCY: &str = "JPY";

/// Longest `PayPal-Request-Id` PayPal accepts.
pub const MAX_REQUEST_ID_LEN: usize = 108;
/// Longest `custom_id` PayPal accepts (the `reference_id` is sent in it too).
pub const MAX_CUSTOM_ID_LEN: usize = 127;

/// Issues (`details[].issue`) that mean "the buyer's card or account said no":
/// send the buyer back to PayPal to choose another card.
const DECLINE_ISSUES: &[&str] = &[
    "INSTRUMENT_DECLINED",
    "TRANSACTION_REFUSED",
    "CARD_EXPIRED",
    "PAYER_CANNOT_PAY",
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
    "PAYER_ACCOUNT_RESTRICTED",
    "PAYER_ACCOUNT_LOCKED_OR_CLOSED",
    "COMPLIANCE_VIOLATION",
];

/// Configuration (`[paypal]` in the backend's file).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PayPalConfig {
    /// API origin without a trailing path, e.g. `https://api-m.sandbox.paypal.com`.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Read the client secret from this file instead (trailing newline ignored).
    pub client_secret_file: Option<std::path::PathBuf>,
    /// The id PayPal gave the webhook subscription (Developer Dashboard).
    pub webhook_id: String,
    /// Where PayPal sends the buyer after approving; PayPal appends
    /// `?token={order id}&PayerID=...`.
    pub return_url: String,
    /// Where PayPal sends the buyer who cancels; PayPal appends `?token={order id}`.
    pub cancel_url: String,
    /// Whole-request time limit; past it the outcome is [`PayPalError::Unknown`].
    pub timeout_s: u64,
}

impl Default for PayPalConfig {
    fn default() -> Self {
        PayPalConfig {
            base_url: SIMULATOR_BASE_URL.into(),
            client_id: SIMULATOR_CLIENT_ID.into(),
            client_secret: SIMULATOR_CLIENT_SECRET.into(),
            client_secret_file: None,
            webhook_id: SIMULATOR_WEBHOOK_ID.into(),
            return_url: "http://localhost:8080/paypal/return".into(),
            cancel_url: "http://localhost:8080/paypal/cancel".into(),
            timeout_s: 30,
        }
    }
}

impl fmt::Debug for PayPalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayPalConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("client_secret_file", &self.client_secret_file)
            .field("webhook_id", &self.webhook_id)
            .field("return_url", &self.return_url)
            .field("cancel_url", &self.cancel_url)
            .field("timeout_s", &self.timeout_s)
            .finish()
    }
}

impl PayPalConfig {
    /// Checks what can be checked without calling PayPal.
    pub fn validate(&self) -> Result<(), String> {
        let url_ok = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        if !url_ok(&self.base_url) {
            return Err(format!("paypal.base_url: {:?} must start with http:// or https://", self.base_url));
        }
        if self.client_id.is_empty() || (self.client_secret.is_empty() && self.client_secret_file.is_none()) {
            return Err("paypal.client_id and paypal.client_secret (or paypal.client_secret_file) must be set".into());
        }
        if !url_ok(&self.return_url) || !url_ok(&self.cancel_url) {
            return Err("paypal.return_url and paypal.cancel_url must be absolute http(s) URLs".into());
        }
        if self.timeout_s == 0 {
            return Err("paypal.timeout_s must be at least 1".into());
        }
        Ok(())
    }
}

/// What went wrong. [`PayPalError::Unknown`] is the one case where money may
/// have moved without our knowing: ask again, never treat it as a decline.
#[derive(Debug, thiserror::Error)]
pub enum PayPalError {
    /// Our configuration or arguments are wrong (nothing was sent).
    #[error("PayPal client: {0}")]
    Invalid(String),
    /// PayPal refused our credentials (after one token refresh).
    #[error("PayPal refused the API credentials (HTTP {status})")]
    Auth { status: u16 },
    /// The buyer has not approved the order on PayPal's page yet
    /// (`ORDER_NOT_APPROVED`): send them to the approve URL.
    #[error("the buyer has not approved PayPal order {order_id} yet")]
    NotApproved { order_id: String },
    /// The card or PayPal account was declined; nothing was charged. The buyer
    /// may choose another card at `retry_url` (PayPal's "redirect" link).
    #[error("payment declined by PayPal ({issue})")]
    Declined { issue: String, description: String, retry_url: Option<String> },
    /// The order, capture or refund does not exist (404).
    #[error("PayPal resource not found: {what}")]
    NotFound { what: String },
    /// PayPal answered with an error that is neither of the above (4xx).
    #[error("PayPal rejected the request: HTTP {status} {name} {issue:?}: {message} (debug_id {debug_id:?})")]
    Rejected { status: u16, name: String, issue: Option<String>, message: String, debug_id: Option<String> },
    /// PayPal answered something this client cannot use (e.g. another currency).
    #[error("unexpected answer from PayPal: {0}")]
    Protocol(String),
    /// No usable answer (timeout, connection lost, 5xx, 429, unreadable
    /// body): the call may or may not have taken effect. Ask again.
    #[error("PayPal outcome unknown, ask again: {reason}")]
    Unknown { reason: String },
}

impl PayPalError {
    /// True when the outcome is unknown and the call should be repeated
    /// (with the same request id) or the order looked up.
    pub fn is_unknown(&self) -> bool {
        matches!(self, PayPalError::Unknown { .. })
    }

    /// PayPal's `details[0].issue`, if the error carries one.
    pub fn issue(&self) -> Option<&str> {
        match self {
            PayPalError::Declined { issue, .. } => Some(issue),
            PayPalError::Rejected { issue, .. } => issue.as_deref(),
            PayPalError::NotApproved { .. } => Some("ORDER_NOT_APPROVED"),
            _ => None,
        }
    }
}

pub type PayPalResult<T> = Result<T, PayPalError>;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $($variant,)*
            /// A status this client does not know (kept verbatim).
            Other(String),
        }
        impl $name {
            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// `order.status`.
    OrderStatus {
        Created = "CREATED",
        Saved = "SAVED",
        Approved = "APPROVED",
        Voided = "VOIDED",
        Completed = "COMPLETED",
        PayerActionRequired = "PAYER_ACTION_REQUIRED",
    }
);

string_enum!(
    /// `purchase_units[].payments.captures[].status`. Only `Completed` means paid;
    /// `Pending` becomes paid with the `PAYMENT.CAPTURE.COMPLETED` webhook.
    CaptureStatus {
        Completed = "COMPLETED",
        Pending = "PENDING",
        Declined = "DECLINED",
        Failed = "FAILED",
        PartiallyRefunded = "PARTIALLY_REFUNDED",
        Refunded = "REFUNDED",
    }
);

string_enum!(
    /// `refund.status`.
    RefundStatus {
        Completed = "COMPLETED",
        Pending = "PENDING",
        Failed = "FAILED",
        Cancelled = "CANCELLED",
    }
);

/// A new PayPal order: send the buyer to `approve_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedOrder {
    pub id: String,
    pub status: OrderStatus,
    pub approve_url: String,
}

/// A capture: money taken (when `status` is `Completed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub order_id: String,
    /// Unique per payment: the key to credit by.
    pub capture_id: String,
    pub status: CaptureStatus,
    pub amount_yen: i64,
    pub custom_id: Option<String>,
}

/// An order as PayPal has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub status: OrderStatus,
    pub reference_id: Option<String>,
    pub custom_id: Option<String>,
    pub amount_yen: Option<i64>,
    /// Present while the buyer still has to approve.
    pub approve_url: Option<String>,
    /// Present once captured (or a capture was attempted and recorded).
    pub capture: Option<Capture>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub status: RefundStatus,
    pub amount_yen: Option<i64>,
}

/// The parts of a webhook event shomei acts on (see [`parse_webhook_event`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub id: String,
    /// e.g. `PAYMENT.CAPTURE.COMPLETED`, `CHECKOUT.ORDER.APPROVED`, `PAYMENT.CAPTURE.REFUNDED`.
    pub event_type: String,
    /// `capture`, `checkout-order`, `refund`, ...
    pub resource_type: String,
    /// The resource's own id (a capture id for `PAYMENT.CAPTURE.*`).
    pub resource_id: Option<String>,
    /// The PayPal order id (from `supplementary_data.related_ids.order_id`, or
    /// the resource id for `CHECKOUT.ORDER.*`).
    pub order_id: Option<String>,
    /// The capture id (resource id of a capture event; the "up" link of a refund).
    pub capture_id: Option<String>,
    pub custom_id: Option<String>,
    pub status: Option<String>,
    pub amount_yen: Option<i64>,
    pub raw: Value,
}

// ---- wire types (lenient: PayPal adds fields freely) ----

#[derive(Debug, Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    name: Option<String>,
    message: Option<String>,
    debug_id: Option<String>,
    details: Vec<ErrorDetail>,
    links: Vec<Link>,
    /// OAuth endpoints answer `{"error": ..., "error_description": ...}`.
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorDetail {
    issue: String,
    description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Link {
    href: String,
    rel: String,
}

#[derive(Debug, Deserialize)]
struct Money {
    currency_code: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct OrderBody {
    id: String,
    status: String,
    #[serde(default)]
    purchase_units: Vec<PurchaseUnitBody>,
    #[serde(default)]
    links: Vec<Link>,
}

#[derive(Debug, Deserialize)]
struct PurchaseUnitBody {
    reference_id: Option<String>,
    custom_id: Option<String>,
    amount: Option<Money>,
    payments: Option<PaymentsBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PaymentsBody {
    captures: Vec<CaptureBody>,
}

#[derive(Debug, Deserialize)]
struct CaptureBody {
    id: String,
    status: String,
    amount: Option<Money>,
    custom_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RefundBody {
    id: String,
    status: String,
    amount: Option<Money>,
}

#[derive(Debug, Deserialize)]
struct VerifyBody {
    verification_status: String,
}

/// Whole yen from a PayPal money object; JPY only.
fn yen(m: &Money) -> PayPalResult<i64> {
    if m.currency_code != CURRENCY {
        return Err(PayPalError::Protocol(format!("expected {CURRENCY}, PayPal answered {}", m.currency_code)));
    }
    // PayPal writes JPY without decimals; accept a ".0"/".00" tail to be lenient.
    let v = m.value.trim();
    let whole = match v.split_once('.') {
        Some((w, frac)) if frac.chars().all(|c| c == '0') => w,
        Some(_) => return Err(PayPalError::Unknown { reason: format!("fractional JPY amount {v:?}") }),
        None => v,
    };
    whole.parse::<i64>().map_err(|_| PayPalError::Unknown { reason: format!("unreadable amount {v:?}") })
}

fn link(links: &[Link], rels: &[&str]) -> Option<String> {
    rels.iter().find_map(|rel| links.iter().find(|l| l.rel == *rel).map(|l| l.href.clone()))
}

fn order_from_body(b: OrderBody) -> PayPalResult<Order> {
    let unit = b.purchase_units.into_iter().next();
    let (reference_id, custom_id, amount_yen, captures) = match unit {
        Some(u) => {
            let amount = match &u.amount {
                Some(m) => Some(yen(m)?),
                None => None,
            };
            (u.reference_id, u.custom_id, amount, u.payments.map(|p| p.captures).unwrap_or_default())
        }
        None => (None, None, None, Vec::new()),
    };
    // One purchase unit, intent CAPTURE: at most one capture. Prefer a completed one.
    let chosen =
        captures.iter().position(|c| c.status == "COMPLETED").or(if captures.is_empty() { None } else { Some(0) });
    let capture = match chosen.and_then(|i| captures.into_iter().nth(i)) {
        Some(c) => {
            let amount = match (&c.amount, amount_yen) {
                (Some(m), _) => yen(m)?,
                (None, Some(a)) => a,
                (None, None) => {
                    return Err(PayPalError::Unknown { reason: format!("capture {} without amount", c.id) })
                }
            };
            Some(Capture {
                order_id: b.id.clone(),
                capture_id: c.id,
                status: CaptureStatus::parse(&c.status),
                amount_yen: amount,
                custom_id: c.custom_id.or_else(|| custom_id.clone()),
            })
        }
        None => None,
    };
    Ok(Order {
        approve_url: link(&b.links, &["payer-action", "approve"]),
        id: b.id,
        status: OrderStatus::parse(&b.status),
        reference_id,
        custom_id,
        amount_yen,
        capture,
    })
}

/// Decodes a 2xx body; an unreadable one leaves the outcome unknown.
fn decode<T: for<'de> Deserialize<'de>>(what: &str, body: &[u8]) -> PayPalResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| PayPalError::Unknown { reason: format!("unreadable {what} answer from PayPal: {e}") })
}

/// Maps a non-2xx answer to an error (the caller handles its special cases first).
fn api_error(status: StatusCode, body: &[u8], what: &str) -> PayPalError {
    let e: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let issue = e.details.first().map(|d| d.issue.clone());
    let description = e
        .details
        .first()
        .and_then(|d| d.description.clone())
        .or_else(|| e.message.clone())
        .or_else(|| e.error_description.clone())
        .unwrap_or_default();
    if status == StatusCode::UNAUTHORIZED {
        return PayPalError::Auth { status: status.as_u16() };
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        return PayPalError::Unknown {
            reason: format!("HTTP {} {} (debug_id {:?})", status.as_u16(), e.name.unwrap_or_default(), e.debug_id),
        };
    }
    if status == StatusCode::NOT_FOUND {
        return PayPalError::NotFound { what: what.to_string() };
    }
    if let Some(i) = issue.as_deref() {
        if DECLINE_ISSUES.contains(&i) {
            return PayPalError::Declined {
                issue: i.to_string(),
                description,
                retry_url: link(&e.links, &["redirect", "payer-action", "approve"]),
            };
        }
    }
    PayPalError::Rejected {
        status: status.as_u16(),
        name: e.name.or(e.error).unwrap_or_default(),
        issue,
        message: description,
        debug_id: e.debug_id,
    }
}

fn transport_error(e: &reqwest::Error) -> PayPalError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "answer cut off"
    } else {
        "request failed"
    };
    // reqwest's Display holds the URL (no secrets: they travel in headers and body).
    PayPalError::Unknown { reason: format!("{kind}: {e}") }
}

fn check_request_id(request_id: &str) -> PayPalResult<()> {
    if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID_LEN || !request_id.is_ascii() {
        return Err(PayPalError::Invalid(format!(
            "PayPal-Request-Id must be 1..={MAX_REQUEST_ID_LEN} ASCII characters, got {} bytes",
            request_id.len()
        )));
    }
    Ok(())
}

fn check_amount(amount_yen: i64) -> PayPalResult<()> {
    if amount_yen <= 0 {
        return Err(PayPalError::Invalid(format!("amount must be positive, got {amount_yen}")));
    }
    Ok(())
}

fn path_segment(id: &str) -> PayPalResult<&str> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(PayPalError::Invalid(format!("not a PayPal id: {id:?}")));
    }
    Ok(id)
}

struct CachedToken {
    value: String,
    refresh_at: Instant,
}

/// One client per backend; cheap to share behind an `Arc`.
pub struct PayPalClient {
    config: PayPalConfig,
    base: String,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl fmt::Debug for PayPalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayPalClient").field("config", &self.config).finish_non_exhaustive()
    }
}

struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl PayPalClient {
    pub fn new(mut config: PayPalConfig) -> PayPalResult<Self> {
        config.validate().map_err(PayPalError::Invalid)?;
        if let Some(path) = &config.client_secret_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| PayPalError::Invalid(format!("paypal.client_secret_file {}: {e}", path.display())))?;
            config.client_secret = text.trim_end_matches(['\r', '\n']).to_string();
            if config.client_secret.is_empty() {
                return Err(PayPalError::Invalid(format!("paypal.client_secret_file {} is empty", path.display())));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_s))
            .connect_timeout(Duration::from_secs(config.timeout_s.min(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PayPalError::Invalid(format!("building the HTTP client: {e}")))?;
        let base = config.base_url.trim_end_matches('/').to_string();
        Ok(PayPalClient { config, base, http, token: tokio::sync::Mutex::new(None) })
    }

    pub fn config(&self) -> &PayPalConfig {
        &self.config
    }

    /// A valid access token, from the cache or `POST /v1/oauth2/token`.
    async fn access_token(&self) -> PayPalResult<String> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if Instant::now() < t.refresh_at {
                return Ok(t.value.clone());
            }
        }
        let started = Instant::now();
        let resp = self
            .http
            .post(format!("{}/v1/oauth2/token", self.base))
            .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
            .header(ACCEPT, "application/json")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
        if !status.is_success() {
            tracing::warn!(status = status.as_u16(), "paypal: access token refused");
            return Err(api_error(status, &body, "access token"));
        }
        let t: TokenBody = decode("token", &body)?;
        // Refresh a little before PayPal's expiry (half the lifetime for short ones).
        let margin = (t.expires_in / 2).min(60);
        let refresh_at = started + Duration::from_secs(t.expires_in.saturating_sub(margin));
        tracing::info!(expires_in = t.expires_in, "paypal: new access token");
        let value = t.access_token;
        *slot = Some(CachedToken { value: value.clone(), refresh_at });
        Ok(value)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// Sends one API call with a bearer token; a 401 drops the cached token and
    /// retries once (nothing happens at PayPal on a 401, so this is safe).
    async fn call(
        &self,
        method: Method,
        path: &str,
        request_id: Option<&str>,
        json_body: Option<String>,
    ) -> PayPalResult<Answer> {
        let url = format!("{}{}", self.base, path);
        for attempt in 0..2 {
            let token = self.access_token().await?;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .header(ACCEPT, "application/json")
                .header("Prefer", "return=representation");
            if let Some(id) = request_id {
                req = req.header("PayPal-Request-Id", id);
            }
            if method == Method::POST {
                req = req.header(CONTENT_TYPE, "application/json");
                if let Some(b) = &json_body {
                    req = req.body(b.clone());
                }
            }
            let resp = req.send().await.map_err(|e| transport_error(&e))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| transport_error(&e))?.to_vec();
            tracing::debug!(%method, path, request_id, status = status.as_u16(), "paypal: call");
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                tracing::info!(path, "paypal: token refused, fetching a new one");
                self.forget_token().await;
                continue;
            }
            return Ok(Answer { status, body });
        }
        Err(PayPalError::Auth { status: StatusCode::UNAUTHORIZED.as_u16() })
    }

    /// `POST /v2/checkout/orders`: an order for `amount_yen`, intent CAPTURE.
    /// `reference_id` (shomei's own order or top-up reference, also sent as
    /// `custom_id` so it comes back in captures and webhooks) must fit
    /// [`MAX_CUSTOM_ID_LEN`]. The same `request_id` returns the same order.
    pub async fn create_order(
        &self,
        amount_yen: i64,
        reference_id: &str,
        request_id: &str,
    ) -> PayPalResult<CreatedOrder> {
        check_amount(amount_yen)?;
        check_request_id(request_id)?;
        if reference_id.is_empty() || reference_id.len() > MAX_CUSTOM_ID_LEN {
            return Err(PayPalError::Invalid(format!("reference_id must be 1..={MAX_CUSTOM_ID_LEN} bytes")));
        }
        let body = json!({
            "intent": "CAPTURE",
            "purchase_units": [{
                "reference_id": reference_id,
                "custom_id": reference_id,
                "amount": { "currency_code": CURRENCY, "value": amount_yen.to_string() },
            }],
            "payment_source": { "paypal": { "experience_context": {
                "return_url": self.config.return_url,
                "cancel_url": self.config.cancel_url,
                "user_action": "PAY_NOW",
                "shipping_preference": "NO_SHIPPING",
                // Card entry first (SPEC O-4: credit card through PayPal); a
                // buyer with a PayPal account can still log in instead.
                "landing_page": "GUEST_CHECKOUT",
            } } },
        });
        let a = self.call(Method::POST, "/v2/checkout/orders", Some(request_id), Some(body.to_string())).await?;
        if !a.status.is_success() {
            let err = api_error(a.status, &a.body, "order");
            tracing::warn!(reference_id, request_id, error = %err, "paypal: create order failed");
            return Err(err);
        }
        let b: OrderBody = decode("create order", &a.body)?;
        let approve_url = link(&b.links, &["payer-action", "approve"])
            .ok_or_else(|| PayPalError::Unknown { reason: format!("order {} has no approve link", b.id) })?;
        tracing::info!(order_id = %b.id, reference_id, request_id, amount_yen, status = %b.status, "paypal: order created");
        Ok(CreatedOrder { id: b.id, status: OrderStatus::parse(&b.status), approve_url })
    }

    /// `GET /v2/checkout/orders/{id}`.
    pub async fn get_order(&self, order_id: &str) -> PayPalResult<Order> {
        let id = path_segment(order_id)?;
        let a = self.call(Method::GET, &format!("/v2/checkout/orders/{id}"), None, None).await?;
        if !a.status.is_success() {
            return Err(api_error(a.status, &a.body, &format!("order {id}")));
        }
        let order = order_from_body(decode("order", &a.body)?)?;
        tracing::debug!(order_id = id, status = %order.status, "paypal: order fetched");
        Ok(order)
    }

    /// `POST /v2/checkout/orders/{id}/capture`: takes the approved payment.
    ///
    /// Returns the capture; only [`CaptureStatus::Completed`] means paid
    /// (`Pending` is settled by a later webhook). An order already captured
    /// returns its existing capture. A capture PayPal records as DECLINED or
    /// FAILED is [`PayPalError::Declined`]. On [`PayPalError::Unknown`] call
    /// again with the same `request_id`.
    pub async fn capture(&self, order_id: &str, request_id: &str) -> PayPalResult<Capture> {
        let id = path_segment(order_id)?;
        check_request_id(request_id)?;
        let a = self.call(Method::POST, &format!("/v2/checkout/orders/{id}/capture"), Some(request_id), None).await?;
        if a.status.is_success() {
            let order = order_from_body(decode("capture", &a.body)?)?;
            let capture = order
                .capture
                .ok_or_else(|| PayPalError::Unknown { reason: format!("capture answer for {id} holds no capture") })?;
            return capture_outcome(capture, request_id, "captured");
        }
        let err_body: ErrorBody = serde_json::from_slice(&a.body).unwrap_or_default();
        let issue = err_body.details.first().map(|d| d.issue.as_str()).unwrap_or_default();
        match (a.status, issue) {
            (StatusCode::UNPROCESSABLE_ENTITY, "ORDER_ALREADY_CAPTURED") => {
                tracing::info!(order_id = id, request_id, "paypal: order already captured, fetching its capture");
                let order = self.get_order(id).await?;
                let capture = order.capture.ok_or_else(|| PayPalError::Unknown {
                    reason: format!("order {id} is said to be captured but shows no capture"),
                })?;
                capture_outcome(capture, request_id, "already captured")
            }
            (StatusCode::UNPROCESSABLE_ENTITY, "ORDER_NOT_APPROVED" | "PAYER_ACTION_REQUIRED") => {
                tracing::info!(order_id = id, request_id, "paypal: capture before approval");
                Err(PayPalError::NotApproved { order_id: id.to_string() })
            }
            _ => {
                let err = api_error(a.status, &a.body, &format!("order {id}"));
                tracing::warn!(order_id = id, request_id, error = %err, "paypal: capture failed");
                Err(err)
            }
        }
    }

    /// `POST /v2/payments/captures/{id}/refund` of `amount_yen` (the whole
    /// capture or part of it). The same `request_id` returns the same refund.
    pub async fn refund(&self, capture_id: &str, amount_yen: i64, request_id: &str) -> PayPalResult<Refund> {
        let id = path_segment(capture_id)?;
        check_amount(amount_yen)?;
        check_request_id(request_id)?;
        let body = json!({ "amount": { "currency_code": CURRENCY, "value": amount_yen.to_string() } });
        let a = self
            .call(Method::POST, &format!("/v2/payments/captures/{id}/refund"), Some(request_id), Some(body.to_string()))
            .await?;
        if !a.status.is_success() {
            let err = api_error(a.status, &a.body, &format!("capture {id}"));
            tracing::warn!(capture_id = id, request_id, error = %err, "paypal: refund failed");
            return Err(err);
        }
        let b: RefundBody = decode("refund", &a.body)?;
        let amount = match &b.amount {
            Some(m) => Some(yen(m)?),
            None => None,
        };
        tracing::info!(capture_id = id, refund_id = %b.id, request_id, amount_yen, status = %b.status, "paypal: refunded");
        Ok(Refund { id: b.id, status: RefundStatus::parse(&b.status), amount_yen: amount })
    }

    /// Asks PayPal whether a received webhook is genuine
    /// (`POST /v1/notifications/verify-webhook-signature`), passing the
    /// `PAYPAL-*` transmission headers, our `webhook_id` and the body exactly as
    /// received. `Ok(false)`: not genuine (or not a PayPal transmission at all);
    /// answer the sender 400. `Err(Unknown)`: could not ask; answer 5xx so
    /// PayPal delivers it again.
    pub async fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> PayPalResult<bool> {
        if self.config.webhook_id.is_empty() {
            return Err(PayPalError::Invalid("paypal.webhook_id is not set".into()));
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (Some(auth_algo), Some(cert_url), Some(transmission_id), Some(transmission_sig), Some(transmission_time)) = (
            header("paypal-auth-algo"),
            header("paypal-cert-url"),
            header("paypal-transmission-id"),
            header("paypal-transmission-sig"),
            header("paypal-transmission-time"),
        ) else {
            tracing::warn!("paypal: webhook without the PAYPAL-* transmission headers");
            return Ok(false);
        };
        // The event goes to PayPal byte for byte: re-serialising it (key order,
        // number formats) would make a genuine signature fail.
        let Ok(event_text) = std::str::from_utf8(body) else {
            tracing::warn!(transmission_id, "paypal: webhook body is not UTF-8");
            return Ok(false);
        };
        match serde_json::from_str::<Value>(event_text) {
            Ok(Value::Object(_)) => {}
            _ => {
                tracing::warn!(transmission_id, "paypal: webhook body is not a JSON object");
                return Ok(false);
            }
        }
        let s = |v: &str| Value::String(v.to_string()).to_string();
        let request = format!(
            "{{\"auth_algo\":{},\"cert_url\":{},\"transmission_id\":{},\"transmission_sig\":{},\"transmission_time\":{},\"webhook_id\":{},\"webhook_event\":{}}}",
            s(&auth_algo),
            s(&cert_url),
            s(&transmission_id),
            s(&transmission_sig),
            s(&transmission_time),
            s(&self.config.webhook_id),
            event_text.trim(),
        );
        let a = self.call(Method::POST, "/v1/notifications/verify-webhook-signature", None, Some(request)).await?;
        if a.status == StatusCode::BAD_REQUEST || a.status == StatusCode::UNPROCESSABLE_ENTITY {
            // PayPal found the transmission malformed (e.g. forged headers).
            let err = api_error(a.status, &a.body, "webhook");
            tracing::warn!(transmission_id, error = %err, "paypal: webhook verification refused");
            return Ok(false);
        }
        if !a.status.is_success() {
            return Err(api_error(a.status, &a.body, "webhook verification"));
        }
        let v: VerifyBody = decode("webhook verification", &a.body)?;
        let ok = v.verification_status == "SUCCESS";
        tracing::info!(transmission_id, verification_status = %v.verification_status, "paypal: webhook verified");
        Ok(ok)
    }
}

fn capture_outcome(capture: Capture, request_id: &str, how: &str) -> PayPalResult<Capture> {
    match capture.status {
        CaptureStatus::Declined | CaptureStatus::Failed => {
            tracing::warn!(order_id = %capture.order_id, capture_id = %capture.capture_id, request_id, status = %capture.status, "paypal: capture declined");
            Err(PayPalError::Declined {
                issue: capture.status.as_str().to_string(),
                description: format!("capture {} is {}", capture.capture_id, capture.status),
                retry_url: None,
            })
        }
        _ => {
            tracing::info!(order_id = %capture.order_id, capture_id = %capture.capture_id, request_id, amount_yen = capture.amount_yen, status = %capture.status, "paypal: {how}");
            Ok(capture)
        }
    }
}

/// Reads the fields shomei needs from a webhook body. Call only after
/// [`PayPalClient::verify_webhook`] said `true`.
pub fn parse_webhook_event(body: &[u8]) -> PayPalResult<WebhookEvent> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| PayPalError::Invalid(format!("webhook body: {e}")))?;
    let text = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_str).map(str::to_string);
    let id = text(&raw, "/id").ok_or_else(|| PayPalError::Invalid("webhook event without id".into()))?;
    let event_type =
        text(&raw, "/event_type").ok_or_else(|| PayPalError::Invalid("webhook event without event_type".into()))?;
    let resource_type = text(&raw, "/resource_type").unwrap_or_default();
    let resource = raw.get("resource").cloned().unwrap_or(Value::Null);
    let resource_id = text(&resource, "/id");
    let links: Vec<Link> =
        resource.get("links").and_then(|l| serde_json::from_value(l.clone()).ok()).unwrap_or_default();
    let id_from_link = |rel: &str, marker: &str| {
        link(&links, &[rel]).and_then(|href| {
            let (_, rest) = href.split_once(marker)?;
            Some(rest.split(['/', '?']).next().unwrap_or_default().to_string()).filter(|s| !s.is_empty())
        })
    };
    let is_order = event_type.starts_with("CHECKOUT.ORDER.") || resource_type == "checkout-order";
    let is_refund = resource_type == "refund";
    let order_id = if is_order {
        resource_id.clone()
    } else {
        text(&resource, "/supplementary_data/related_ids/order_id")
            .or_else(|| id_from_link("up", "/v2/checkout/orders/"))
    };
    let capture_id = if is_refund {
        id_from_link("up", "/v2/payments/captures/")
    } else if resource_type == "capture" || event_type.starts_with("PAYMENT.CAPTURE.") {
        resource_id.clone()
    } else {
        text(&resource, "/purchase_units/0/payments/captures/0/id")
    };
    let amount = resource
        .get("amount")
        .or_else(|| resource.pointer("/purchase_units/0/amount"))
        .and_then(|m| serde_json::from_value::<Money>(m.clone()).ok());
    let amount_yen = match amount {
        Some(m) => Some(yen(&m)?),
        None => None,
    };
    Ok(WebhookEvent {
        id,
        event_type,
        resource_type,
        resource_id,
        order_id,
        capture_id,
        custom_id: text(&resource, "/custom_id").or_else(|| text(&resource, "/purchase_units/0/custom_id")),
        status: text(&resource, "/status"),
        amount_yen,
        raw,
    })
}
