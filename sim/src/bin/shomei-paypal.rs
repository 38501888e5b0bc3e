//! `shomei-paypal`: a local, in-memory simulator of the part of PayPal's REST
//! API that shomei uses (OAuth2 client credentials, Orders v2 create / get /
//! capture, Payments v2 capture refund, webhook signature verification), plus
//! the buyer's approval page and knobs for tests and the demo.
//!
//! ```text
//! shomei-paypal [--listen 127.0.0.1:8097] [--public-url URL]
//!               [--client-id shomei-sim-client] [--client-secret shomei-sim-secret]
//!               [--webhook-id SIMWEBHOOK0001] [--webhook-url URL]
//!               [--token-ttl 32400] [--verbose]
//! ```
//!
//! Prints `READY listening on http://ADDR` on stdout once it accepts
//! connections (`--listen 127.0.0.1:0` picks a free port; the line tells which).
//! `--public-url` is the origin put in links (approve URL, self links); default
//! `http://ADDR`. With `--webhook-url`, events are also POSTed there by
//! themselves, as PayPal does: `CHECKOUT.ORDER.APPROVED` on approval,
//! `PAYMENT.CAPTURE.COMPLETED` after a capture, `PAYMENT.CAPTURE.REFUNDED`
//! after a refund (3 attempts).
//!
//! ## PayPal API (bearer token required on all but the token call; 401 otherwise)
//!
//! | endpoint | notes |
//! |---|---|
//! | `POST /v1/oauth2/token` | HTTP Basic client id:secret, form `grant_type=client_credentials`; `expires_in` = `--token-ttl` |
//! | `POST /v2/checkout/orders` | intent CAPTURE, one purchase unit, JPY whole numbers (`"1500"`; decimals → 422 `DECIMALS_NOT_SUPPORTED`). With `payment_source.paypal.experience_context` the order is `PAYER_ACTION_REQUIRED` with a `payer-action` link, else (`application_context`) `CREATED` with an `approve` link |
//! | `GET /v2/checkout/orders/{id}` | the order, with `purchase_units[0].payments.captures` once captured |
//! | `POST /v2/checkout/orders/{id}/capture` | 201 `COMPLETED`; 422 `ORDER_NOT_APPROVED`, `ORDER_ALREADY_CAPTURED`, `INSTRUMENT_DECLINED` (with a `redirect` link; the order then needs approving again); 404 `RESOURCE_NOT_FOUND` |
//! | `GET /v2/payments/captures/{id}` | the capture |
//! | `POST /v2/payments/captures/{id}/refund` | optional `amount` (default: what is left); 422 `CAPTURE_FULLY_REFUNDED`, `REFUND_AMOUNT_EXCEEDED` |
//! | `POST /v1/notifications/verify-webhook-signature` | `verification_status` `SUCCESS` only for a transmission this process signed, with the body unchanged and the same `webhook_id` |
//!
//! `PayPal-Request-Id` on a POST: the same id on the same path returns the first
//! successful (2xx) answer again, byte for byte, and does nothing else (no second
//! order, capture or refund). Error answers are not remembered, so a capture
//! refused with `ORDER_NOT_APPROVED` can be retried with the same id after approval.
//!
//! ## Buyer's pages (what PayPal's checkout page does)
//!
//! - `GET /checkoutnow?token={order id}`: the approve URL. Amount, reference, a
//!   card field and the buttons `#pay` ("Pay"), `#pay-declined` ("Pay with a
//!   card that will be declined": the capture then answers `INSTRUMENT_DECLINED`)
//!   and `#cancel` ("Cancel").
//! - `POST /checkoutnow/approve` (form `token`, `outcome`=`pay`|`decline`): marks
//!   the order APPROVED and redirects (303) to `return_url?token={id}&PayerID={payer}`.
//! - `POST /checkoutnow/cancel` (form `token`): redirects (303) to `cancel_url?token={id}`.
//!
//! ## Knobs (no token needed)
//!
//! | endpoint | effect |
//! |---|---|
//! | `POST /sim/approve/{order_id}` | as the Pay button; JSON body optional `{"payer_id": "...", "decline": true}`; answers `{"id","status","return_url"}` (the redirect the buyer would follow) |
//! | `POST /sim/fail-next-refund` | the next refunds answer 422; JSON body optional `{"issue": "TRANSACTION_REFUSED", "times": 1}` (the defaults; `times: 0` clears it) |
//! | `POST /sim/fail-next-capture` | the next capture that would succeed answers 422; JSON body optional `{"issue": "INSTRUMENT_DECLINED"}` (the default) |
//! | `POST /sim/drop-next-capture-response` | the next capture is performed, but its answer is lost: 500 at once (`{"mode": "500"}`, default) or after a delay (`{"mode": "delay", "delay_ms": 5000}`, to hit the client's timeout). The same `PayPal-Request-Id` then returns the real 201 |
//! | `POST /sim/send-webhook` | JSON `{"order_id", "event_type"?, "url"?, "webhook_id"?, "tamper"?}`: builds the event (`PAYMENT.CAPTURE.COMPLETED` default; also `CHECKOUT.ORDER.APPROVED`, `CHECKOUT.ORDER.COMPLETED`, `PAYMENT.CAPTURE.PENDING`, `PAYMENT.CAPTURE.DENIED`, `PAYMENT.CAPTURE.REFUNDED`), signs it and POSTs it to `url` (default `--webhook-url`; none: not sent). `tamper: true` changes the body after signing. Answers `{"event","body","headers","url","delivered_status","delivery_error"}` |
//! | `POST /sim/expire-tokens` | every issued access token stops working (tests the client's refresh) |
//! | `GET /sim/state` | JSON: orders, counters (`orders_created`, `captures_performed`, `refunds_performed`, `verifications`), webhooks sent, pending knobs |
//! | `GET /` | HTML list of orders with their approve links (demo) |
//! | `GET /sim/cert` | text: how transmissions are signed (the `PAYPAL-CERT-URL`) |
//!
//! ## Webhook signatures
//!
//! Real PayPal signs `transmission_id|transmission_time|webhook_id|crc32(body)`
//! with RSA (`SHA256withRSA`) and its certificate. The simulator signs
//! `transmission_id|transmission_time|webhook_id|hex(sha256(body))` with
//! HMAC-SHA256 under a random key made at start (never shown), base64 in
//! `PAYPAL-TRANSMISSION-SIG`, `PAYPAL-AUTH-ALGO: HMACSHA256`. Bodies are compact
//! JSON; verification re-serialises the received `webhook_event` the same way, so
//! a client that passes the body through unchanged gets `SUCCESS`, and a changed
//! body, other headers or another `webhook_id` get `FAILURE`. Only this process
//! can sign, so only transmissions it sent verify.
//!
//! Only JPY and intent CAPTURE are simulated; answers are always the full
//! representation (as with `Prefer: return=representation`); data lives in
//! memory only.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use clap::Parser;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const DEFAULT_LISTEN: &str = "127.0.0.1:8097";
const DEFAULT_CLIENT_ID: &str = "shomei-sim-client";
const DEFAULT_CLIENT_SECRET: &str = "shomei-sim-secret";
const DEFAULT_WEBHOOK_ID: &str = "SIMWEBHOOK0001";
const DEFAULT_TOKEN_TTL: u64 = 32400;
const AUTH_ALGO: &str = "HMACSHA256";
const CURRENCY: &str = "JPY";

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------- state

struct Cfg {
    public_url: String,
    client_id: String,
    client_secret: String,
    webhook_id: String,
    webhook_url: Option<String>,
    token_ttl: u64,
    /// The signing key for webhook transmissions; never leaves the process.
    secret: [u8; 32],
}

#[derive(Clone)]
struct App {
    cfg: Arc<Cfg>,
    sim: Arc<Mutex<Sim>>,
    http: reqwest::Client,
}

impl App {
    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Clone, Copy, Debug)]
enum DropMode {
    Error500,
    Delay(Duration),
}

#[derive(Default)]
struct Sim {
    tokens: HashMap<String, Instant>,
    orders: HashMap<String, SimOrder>,
    order_ids: Vec<String>,
    /// capture id -> order id
    captures: HashMap<String, String>,
    refunds: HashMap<String, SimRefund>,
    /// ("POST /path", PayPal-Request-Id) -> first successful answer
    idem: HashMap<(String, String), (StatusCode, Value)>,
    fail_next_capture: Option<String>,
    /// The issue the next refunds answer with, and how many more.
    fail_next_refund: Option<(String, u32)>,
    drop_next_capture: Option<DropMode>,
    orders_created: u64,
    /// Calls to verify-webhook-signature (a merchant that calls for anything can be made to spend PayPal's quota).
    verifications: u64,
    captures_performed: u64,
    refunds_performed: u64,
    webhooks: Vec<Value>,
}

struct SimOrder {
    id: String,
    status: String,
    /// The status the order goes back to when a capture is declined.
    initial_status: String,
    reference_id: String,
    custom_id: Option<String>,
    invoice_id: Option<String>,
    description: Option<String>,
    amount: i64,
    return_url: Option<String>,
    cancel_url: Option<String>,
    payer_id: Option<String>,
    decline_on_capture: bool,
    capture: Option<SimCapture>,
    create_time: String,
    update_time: String,
}

struct SimCapture {
    id: String,
    status: String,
    amount: i64,
    refunded: i64,
    create_time: String,
    update_time: String,
}

struct SimRefund {
    id: String,
    capture_id: String,
    amount: i64,
    status: String,
    create_time: String,
}

// ---------------------------------------------------------------- helpers

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A PayPal-looking id: `len` characters of upper-case letters and digits.
fn paypal_id(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())])).collect()
}

fn debug_id() -> String {
    hex::encode(rand::thread_rng().gen::<[u8; 7]>())
}

fn money(amount: i64) -> Value {
    json!({ "currency_code": CURRENCY, "value": amount.to_string() })
}

fn link(href: String, rel: &str, method: &str) -> Value {
    json!({ "href": href, "rel": rel, "method": method })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn yen_text(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let groups: Vec<&str> = digits.as_bytes().rchunks(3).rev().map(|g| std::str::from_utf8(g).unwrap_or("")).collect();
    format!("{}¥{}", if amount < 0 { "-" } else { "" }, groups.join(","))
}

/// `url` with `params` appended as a query (after any query it already has).
fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let mut out = url.to_string();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&urlencode(v));
        sep = '&';
    }
    out
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

type Answer = (StatusCode, Value);

fn api_error(status: StatusCode, issue: Option<(&str, &str)>, links: Vec<Value>) -> Answer {
    let (name, message) = match status {
        StatusCode::BAD_REQUEST => {
            ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema.")
        }
        StatusCode::UNAUTHORIZED => (
            "AUTHENTICATION_FAILURE",
            "Authentication failed due to invalid authentication credentials or a missing Authorization header.",
        ),
        StatusCode::NOT_FOUND => ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "UNPROCESSABLE_ENTITY",
            "The requested action could not be performed, semantically incorrect, or failed business validation.",
        ),
        _ => ("INTERNAL_SERVER_ERROR", "An internal server error has occurred."),
    };
    let mut body = json!({ "name": name, "message": message, "debug_id": debug_id() });
    if let Some((issue, description)) = issue {
        body["details"] = json!([{ "issue": issue, "description": description }]);
        let mut all = links;
        all.push(link(
            format!("https://developer.paypal.com/docs/api/orders/v2/#error-{issue}"),
            "information_link",
            "GET",
        ));
        body["links"] = Value::Array(all);
    }
    (status, body)
}

fn respond((status, body): Answer) -> Response {
    (status, Json(body)).into_response()
}

fn bearer_ok(sim: &mut Sim, headers: &HeaderMap) -> bool {
    let now = Instant::now();
    sim.tokens.retain(|_, exp| *exp > now);
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| sim.tokens.contains_key(t.trim()))
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get("paypal-request-id").and_then(|v| v.to_str().ok()).map(str::to_string).filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------- JSON views

fn approve_url(cfg: &Cfg, id: &str) -> String {
    format!("{}/checkoutnow?token={id}", cfg.public_url)
}

fn capture_json(cfg: &Cfg, o: &SimOrder, c: &SimCapture) -> Value {
    let base = &cfg.public_url;
    let mut v = json!({
        "id": c.id,
        "status": c.status,
        "amount": money(c.amount),
        "final_capture": true,
        "seller_protection": { "status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"] },
        "seller_receivable_breakdown": {
            "gross_amount": money(c.amount),
            "paypal_fee": money(0),
            "net_amount": money(c.amount),
        },
        "supplementary_data": { "related_ids": { "order_id": o.id } },
        "create_time": c.create_time,
        "update_time": c.update_time,
        "links": [
            link(format!("{base}/v2/payments/captures/{}", c.id), "self", "GET"),
            link(format!("{base}/v2/payments/captures/{}/refund", c.id), "refund", "POST"),
            link(format!("{base}/v2/checkout/orders/{}", o.id), "up", "GET"),
        ],
    });
    if let Some(custom) = &o.custom_id {
        v["custom_id"] = json!(custom);
    }
    if let Some(inv) = &o.invoice_id {
        v["invoice_id"] = json!(inv);
    }
    if c.status == "PENDING" {
        v["status_details"] = json!({ "reason": "PENDING_REVIEW" });
    }
    v
}

fn order_json(cfg: &Cfg, o: &SimOrder) -> Value {
    let base = &cfg.public_url;
    let mut unit = json!({
        "reference_id": o.reference_id,
        "amount": money(o.amount),
        "payee": { "email_address": "merchant@example.com", "merchant_id": "SIMMERCHANT01" },
    });
    if let Some(custom) = &o.custom_id {
        unit["custom_id"] = json!(custom);
    }
    if let Some(inv) = &o.invoice_id {
        unit["invoice_id"] = json!(inv);
    }
    if let Some(d) = &o.description {
        unit["description"] = json!(d);
    }
    if let Some(c) = &o.capture {
        unit["payments"] = json!({ "captures": [capture_json(cfg, o, c)] });
    }
    let mut links = vec![link(format!("{base}/v2/checkout/orders/{}", o.id), "self", "GET")];
    match o.status.as_str() {
        "CREATED" => {
            links.push(link(approve_url(cfg, &o.id), "approve", "GET"));
            links.push(link(format!("{base}/v2/checkout/orders/{}", o.id), "update", "PATCH"));
            links.push(link(format!("{base}/v2/checkout/orders/{}/capture", o.id), "capture", "POST"));
        }
        "PAYER_ACTION_REQUIRED" => links.push(link(approve_url(cfg, &o.id), "payer-action", "GET")),
        "APPROVED" => {
            links.push(link(format!("{base}/v2/checkout/orders/{}", o.id), "update", "PATCH"));
            links.push(link(format!("{base}/v2/checkout/orders/{}/capture", o.id), "capture", "POST"));
        }
        _ => {}
    }
    let mut v = json!({
        "id": o.id,
        "intent": "CAPTURE",
        "status": o.status,
        "purchase_units": [unit],
        "create_time": o.create_time,
        "update_time": o.update_time,
        "links": links,
    });
    if let Some(payer) = &o.payer_id {
        let payer_v = json!({
            "name": { "given_name": "Taro", "surname": "Buyer" },
            "email_address": "buyer@example.com",
            "payer_id": payer,
            "address": { "country_code": "JP" },
        });
        v["payer"] = payer_v.clone();
        v["payment_source"] = json!({ "paypal": {
            "email_address": "buyer@example.com",
            "account_id": payer,
            "account_status": "VERIFIED",
            "name": payer_v["name"],
            "address": { "country_code": "JP" },
        } });
    } else if o.initial_status == "PAYER_ACTION_REQUIRED" {
        v["payment_source"] = json!({ "paypal": {} });
    }
    v
}

fn refund_json(cfg: &Cfg, r: &SimRefund) -> Value {
    let base = &cfg.public_url;
    json!({
        "id": r.id,
        "status": r.status,
        "amount": money(r.amount),
        "seller_payable_breakdown": { "gross_amount": money(r.amount), "net_amount": money(r.amount), "total_refunded_amount": money(r.amount) },
        "create_time": r.create_time,
        "update_time": r.create_time,
        "links": [
            link(format!("{base}/v2/payments/refunds/{}", r.id), "self", "GET"),
            link(format!("{base}/v2/payments/captures/{}", r.capture_id), "up", "GET"),
        ],
    })
}

// ---------------------------------------------------------------- OAuth

async fn oauth_token(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let creds = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let valid = creds
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(id, secret)| id == app.cfg.client_id && secret == app.cfg.client_secret);
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client", "error_description": "Client Authentication failed" })),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "unsupported_grant_type", "error_description": "Grant Type is NULL or not supported" })),
        )
            .into_response();
    }
    let token = format!("A21AA{}", paypal_id(60));
    app.lock().tokens.insert(token.clone(), Instant::now() + Duration::from_secs(app.cfg.token_ttl));
    Json(json!({
        "scope": "https://uri.paypal.com/services/payments/payment https://uri.paypal.com/services/payments/refund https://uri.paypal.com/services/applications/webhooks",
        "access_token": token,
        "token_type": "Bearer",
        "app_id": "APP-SIMULATOR0000",
        "expires_in": app.cfg.token_ttl,
        "nonce": format!("{}{}", now(), paypal_id(20)),
    }))
    .into_response()
}

// ---------------------------------------------------------------- orders

fn bad_param(issue: &str, description: &str) -> Answer {
    api_error(StatusCode::BAD_REQUEST, Some((issue, description)), Vec::new())
}

struct NewOrder {
    amount: i64,
    reference_id: String,
    custom_id: Option<String>,
    invoice_id: Option<String>,
    description: Option<String>,
    return_url: Option<String>,
    cancel_url: Option<String>,
    /// `payment_source.paypal` given: the order starts PAYER_ACTION_REQUIRED.
    uses_payment_source: bool,
}

fn parse_create(body: &Value) -> Result<NewOrder, Answer> {
    if body.get("intent").and_then(Value::as_str) != Some("CAPTURE") {
        return Err(bad_param(
            "INVALID_PARAMETER_VALUE",
            "intent must be CAPTURE (the simulator supports only CAPTURE)",
        ));
    }
    let units = body.get("purchase_units").and_then(Value::as_array).cloned().unwrap_or_default();
    let [unit] = units.as_slice() else {
        return Err(bad_param("MISSING_REQUIRED_PARAMETER", "exactly one purchase unit is required (simulator)"));
    };
    let currency = unit.pointer("/amount/currency_code").and_then(Value::as_str);
    let value = unit.pointer("/amount/value").and_then(Value::as_str);
    let (Some(currency), Some(value)) = (currency, value) else {
        return Err(bad_param(
            "MISSING_REQUIRED_PARAMETER",
            "purchase_units[0].amount.currency_code and value are required",
        ));
    };
    if currency != CURRENCY {
        return Err(api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(("CURRENCY_NOT_SUPPORTED", "Currency code is not supported by the simulator (JPY only).")),
            Vec::new(),
        ));
    }
    if value.contains('.') {
        return Err(api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(("DECIMALS_NOT_SUPPORTED", "Currency does not support decimals.")),
            Vec::new(),
        ));
    }
    let amount = match value.parse::<i64>() {
        Ok(a) if a > 0 && value.chars().all(|c| c.is_ascii_digit()) => a,
        _ => {
            return Err(bad_param(
                "INVALID_PARAMETER_VALUE",
                "purchase_units[0].amount.value must be a positive whole number",
            ))
        }
    };
    let text = |key: &str, max: usize| -> Result<Option<String>, Answer> {
        match unit.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= max => Ok(Some(s.clone())),
            Some(_) => {
                Err(bad_param("INVALID_STRING_LENGTH", &format!("purchase_units[0].{key} must be 1..{max} characters")))
            }
        }
    };
    let reference_id = text("reference_id", 256)?.unwrap_or_else(|| "default".into());
    let custom_id = text("custom_id", 127)?;
    let invoice_id = text("invoice_id", 127)?;
    let description = text("description", 127)?;
    let ctx = body.pointer("/payment_source/paypal/experience_context");
    let uses_payment_source = body.pointer("/payment_source/paypal").is_some();
    let ctx = ctx.or_else(|| body.get("application_context"));
    let url = |key: &str| ctx.and_then(|c| c.get(key)).and_then(Value::as_str).map(str::to_string);
    Ok(NewOrder {
        amount,
        reference_id,
        custom_id,
        invoice_id,
        description,
        return_url: url("return_url"),
        cancel_url: url("cancel_url"),
        uses_payment_source,
    })
}

async fn create_order(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let mut sim = app.lock();
    if !bearer_ok(&mut sim, &headers) {
        return respond(api_error(StatusCode::UNAUTHORIZED, None, Vec::new()));
    }
    let key = request_id(&headers).map(|r| ("POST /v2/checkout/orders".to_string(), r));
    if let Some(hit) = key.as_ref().and_then(|k| sim.idem.get(k)) {
        return respond(hit.clone());
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return respond(bad_param("MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")),
    };
    let n = match parse_create(&parsed) {
        Ok(n) => n,
        Err(e) => return respond(e),
    };
    let id = paypal_id(17);
    let status = if n.uses_payment_source { "PAYER_ACTION_REQUIRED" } else { "CREATED" };
    let t = now();
    let order = SimOrder {
        id: id.clone(),
        status: status.into(),
        initial_status: status.into(),
        reference_id: n.reference_id,
        custom_id: n.custom_id,
        invoice_id: n.invoice_id,
        description: n.description,
        amount: n.amount,
        return_url: n.return_url,
        cancel_url: n.cancel_url,
        payer_id: None,
        decline_on_capture: false,
        capture: None,
        create_time: t.clone(),
        update_time: t,
    };
    let answer = (StatusCode::OK, order_json(&app.cfg, &order));
    sim.orders.insert(id.clone(), order);
    sim.order_ids.push(id);
    sim.orders_created += 1;
    if let Some(k) = key {
        sim.idem.insert(k, answer.clone());
    }
    respond(answer)
}

async fn get_order(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut sim = app.lock();
    if !bearer_ok(&mut sim, &headers) {
        return respond(api_error(StatusCode::UNAUTHORIZED, None, Vec::new()));
    }
    match sim.orders.get(&id) {
        Some(o) => respond((StatusCode::OK, order_json(&app.cfg, o))),
        None => respond(api_error(
            StatusCode::NOT_FOUND,
            Some((
                "INVALID_RESOURCE_ID",
                "Specified resource ID does not exist. Please check the resource ID and try again.",
            )),
            Vec::new(),
        )),
    }
}

async fn capture_order(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (answer, drop_mode, event) = {
        let mut sim = app.lock();
        if !bearer_ok(&mut sim, &headers) {
            return respond(api_error(StatusCode::UNAUTHORIZED, None, Vec::new()));
        }
        let key = request_id(&headers).map(|r| (format!("POST /v2/checkout/orders/{id}/capture"), r));
        if let Some(hit) = key.as_ref().and_then(|k| sim.idem.get(k)) {
            return respond(hit.clone());
        }
        let fail_knob = sim.fail_next_capture.clone();
        let Some(order) = sim.orders.get_mut(&id) else {
            return respond(api_error(
                StatusCode::NOT_FOUND,
                Some((
                    "INVALID_RESOURCE_ID",
                    "Specified resource ID does not exist. Please check the resource ID and try again.",
                )),
                Vec::new(),
            ));
        };
        match order.status.as_str() {
            "COMPLETED" => {
                return respond(api_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some((
                        "ORDER_ALREADY_CAPTURED",
                        "Order already captured. If 'intent=CAPTURE' only one capture per order is allowed.",
                    )),
                    Vec::new(),
                ))
            }
            "APPROVED" => {}
            _ => {
                return respond(api_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some((
                        "ORDER_NOT_APPROVED",
                        "Payer has not yet approved the Order for payment. Please redirect the payer to the 'rel':'approve' url returned as part of the HATEOAS links within the Create Order call or provide a valid payment_source in the request.",
                    )),
                    Vec::new(),
                ))
            }
        }
        let (decline, knob_used) = match (order.decline_on_capture, fail_knob) {
            (true, _) => (Some("INSTRUMENT_DECLINED".to_string()), false),
            (false, Some(issue)) => (Some(issue), true),
            (false, None) => (None, false),
        };
        if let Some(issue) = decline {
            order.status = order.initial_status.clone();
            order.payer_id = None;
            order.decline_on_capture = false;
            order.update_time = now();
            let redirect = link(approve_url(&app.cfg, &id), "redirect", "GET");
            if knob_used {
                sim.fail_next_capture = None;
            }
            return respond(api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some((
                    issue.as_str(),
                    "The instrument presented was either declined by the processor or bank, or it can't be used for this payment.",
                )),
                vec![redirect],
            ));
        }
        let t = now();
        let capture = SimCapture {
            id: paypal_id(17),
            status: "COMPLETED".into(),
            amount: order.amount,
            refunded: 0,
            create_time: t.clone(),
            update_time: t.clone(),
        };
        let capture_id = capture.id.clone();
        order.capture = Some(capture);
        order.status = "COMPLETED".into();
        order.update_time = t;
        let answer = (StatusCode::CREATED, order_json(&app.cfg, order));
        let event = build_event(&app.cfg, order, "PAYMENT.CAPTURE.COMPLETED").ok();
        sim.captures.insert(capture_id, id.clone());
        sim.captures_performed += 1;
        if let Some(k) = key {
            sim.idem.insert(k, answer.clone());
        }
        (answer, sim.drop_next_capture.take(), event)
    };
    if let Some(e) = event {
        auto_webhook(&app, e);
    }
    match drop_mode {
        None => respond(answer),
        Some(mode) => {
            if let DropMode::Delay(d) = mode {
                tokio::time::sleep(d).await;
            }
            eprintln!("shomei-paypal: capture of {id} performed, answer dropped ({mode:?})");
            respond(api_error(StatusCode::INTERNAL_SERVER_ERROR, None, Vec::new()))
        }
    }
}

fn capture_not_found() -> Answer {
    api_error(
        StatusCode::NOT_FOUND,
        Some((
            "INVALID_RESOURCE_ID",
            "Specified resource ID does not exist. Please check the resource ID and try again.",
        )),
        Vec::new(),
    )
}

async fn get_capture(State(app): State<App>, headers: HeaderMap, Path(cid): Path<String>) -> Response {
    let mut sim = app.lock();
    if !bearer_ok(&mut sim, &headers) {
        return respond(api_error(StatusCode::UNAUTHORIZED, None, Vec::new()));
    }
    let found = sim
        .captures
        .get(&cid)
        .and_then(|oid| sim.orders.get(oid))
        .and_then(|o| o.capture.as_ref().map(|c| capture_json(&app.cfg, o, c)));
    match found {
        Some(v) => respond((StatusCode::OK, v)),
        None => respond(capture_not_found()),
    }
}

async fn refund_capture(State(app): State<App>, headers: HeaderMap, Path(cid): Path<String>, body: Bytes) -> Response {
    let (answer, event) = {
        let mut sim = app.lock();
        if !bearer_ok(&mut sim, &headers) {
            return respond(api_error(StatusCode::UNAUTHORIZED, None, Vec::new()));
        }
        let key = request_id(&headers).map(|r| (format!("POST /v2/payments/captures/{cid}/refund"), r));
        if let Some(hit) = key.as_ref().and_then(|k| sim.idem.get(k)) {
            return respond(hit.clone());
        }
        let parsed: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) => return respond(bad_param("MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")),
            }
        };
        let Some(oid) = sim.captures.get(&cid).cloned() else {
            return respond(capture_not_found());
        };
        if let Some((issue, left)) = sim.fail_next_refund.take() {
            if left > 1 {
                sim.fail_next_refund = Some((issue.clone(), left - 1));
            }
            return respond(api_error(StatusCode::UNPROCESSABLE_ENTITY, Some((issue.as_str(), "The refund was refused.")), Vec::new()));
        }
        let Some(order) = sim.orders.get_mut(&oid) else {
            return respond(capture_not_found());
        };
        let Some(capture) = order.capture.as_mut() else {
            return respond(capture_not_found());
        };
        let left = capture.amount - capture.refunded;
        if left <= 0 {
            return respond(api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(("CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded")),
                Vec::new(),
            ));
        }
        let amount = match parsed.get("amount") {
            None | Some(Value::Null) => left,
            Some(m) => {
                if m.get("currency_code").and_then(Value::as_str) != Some(CURRENCY) {
                    return respond(api_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Some(("CURRENCY_MISMATCH", "Refund must be in the same currency as the capture")),
                        Vec::new(),
                    ));
                }
                match m.get("value").and_then(Value::as_str).map(|v| (v, v.parse::<i64>())) {
                    Some((v, Ok(a))) if a > 0 && v.chars().all(|c| c.is_ascii_digit()) => a,
                    Some((v, _)) if v.contains('.') => {
                        return respond(api_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            Some(("DECIMALS_NOT_SUPPORTED", "Currency does not support decimals.")),
                            Vec::new(),
                        ))
                    }
                    _ => {
                        return respond(bad_param(
                            "INVALID_PARAMETER_VALUE",
                            "amount.value must be a positive whole number",
                        ))
                    }
                }
            }
        };
        if amount > left {
            return respond(api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(("REFUND_AMOUNT_EXCEEDED", "The refund amount must be less than or equal to the capture amount that has not yet been refunded.")),
                Vec::new(),
            ));
        }
        let t = now();
        capture.refunded += amount;
        capture.status = if capture.refunded >= capture.amount { "REFUNDED" } else { "PARTIALLY_REFUNDED" }.into();
        capture.update_time = t.clone();
        let refund = SimRefund {
            id: paypal_id(17),
            capture_id: cid.clone(),
            amount,
            status: "COMPLETED".into(),
            create_time: t,
        };
        let answer = (StatusCode::CREATED, refund_json(&app.cfg, &refund));
        let event = refund_event(&app.cfg, order, &refund);
        sim.refunds.insert(refund.id.clone(), refund);
        sim.refunds_performed += 1;
        if let Some(k) = key {
            sim.idem.insert(k, answer.clone());
        }
        (answer, event)
    };
    auto_webhook(&app, event);
    respond(answer)
}

// ---------------------------------------------------------------- webhooks

fn envelope(cfg: &Cfg, event_type: &str, resource_type: &str, summary: String, resource: Value) -> Value {
    let id = format!("WH-{}-{}", paypal_id(17), paypal_id(17));
    json!({
        "id": id,
        "event_version": "1.0",
        "create_time": now(),
        "resource_type": resource_type,
        "resource_version": "2.0",
        "event_type": event_type,
        "summary": summary,
        "resource": resource,
        "links": [
            link(format!("{}/v1/notifications/webhooks-events/{id}", cfg.public_url), "self", "GET"),
            link(format!("{}/v1/notifications/webhooks-events/{id}/resend", cfg.public_url), "resend", "POST"),
        ],
    })
}

fn refund_event(cfg: &Cfg, _order: &SimOrder, r: &SimRefund) -> Value {
    envelope(
        cfg,
        "PAYMENT.CAPTURE.REFUNDED",
        "refund",
        format!("A {} {CURRENCY} capture payment was refunded", r.amount),
        refund_json(cfg, r),
    )
}

/// The event of `event_type` for `order` as it is now.
fn build_event(cfg: &Cfg, order: &SimOrder, event_type: &str) -> Result<Value, String> {
    match event_type {
        "CHECKOUT.ORDER.APPROVED" | "CHECKOUT.ORDER.COMPLETED" => Ok(envelope(
            cfg,
            event_type,
            "checkout-order",
            format!(
                "An order has been {}",
                if event_type.ends_with("APPROVED") { "approved by buyer" } else { "completed" }
            ),
            order_json(cfg, order),
        )),
        "PAYMENT.CAPTURE.COMPLETED" | "PAYMENT.CAPTURE.PENDING" | "PAYMENT.CAPTURE.DENIED" => {
            let status = event_type.rsplit('.').next().unwrap_or("COMPLETED");
            let status = if status == "DENIED" { "DECLINED" } else { status };
            let capture = match &order.capture {
                Some(c) => {
                    if event_type == "PAYMENT.CAPTURE.COMPLETED" && c.status != "COMPLETED" && c.refunded == 0 {
                        return Err(format!("order {}'s capture is {}", order.id, c.status));
                    }
                    let mut v = capture_json(cfg, order, c);
                    v["status"] = json!(status);
                    v
                }
                None if event_type == "PAYMENT.CAPTURE.COMPLETED" => {
                    return Err(format!("order {} has no capture (capture it first)", order.id))
                }
                None => {
                    let t = now();
                    let synthetic = SimCapture {
                        id: paypal_id(17),
                        status: status.into(),
                        amount: order.amount,
                        refunded: 0,
                        create_time: t.clone(),
                        update_time: t,
                    };
                    capture_json(cfg, order, &synthetic)
                }
            };
            let verb = match status {
                "COMPLETED" => "completed",
                "PENDING" => "pending",
                _ => "denied",
            };
            Ok(envelope(cfg, event_type, "capture", format!("Payment {verb} for {} {CURRENCY}", order.amount), capture))
        }
        other => Err(format!("event_type {other:?} is not simulated")),
    }
}

struct Transmission {
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn signed_string(transmission_id: &str, time: &str, webhook_id: &str, body: &[u8]) -> String {
    format!("{transmission_id}|{time}|{webhook_id}|{}", hex::encode(Sha256::digest(body)))
}

fn mac(secret: &[u8], text: &str) -> Result<HmacSha256, String> {
    let mut m = HmacSha256::new_from_slice(secret).map_err(|e| e.to_string())?;
    m.update(text.as_bytes());
    Ok(m)
}

/// Signs `event` for `webhook_id`; the body is compact JSON.
fn sign(cfg: &Cfg, event: &Value, webhook_id: &str) -> Result<Transmission, String> {
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let transmission_id = format!(
        "{}-{}-{}-{}-{}",
        hex::encode(rand::thread_rng().gen::<[u8; 4]>()),
        hex::encode(rand::thread_rng().gen::<[u8; 2]>()),
        hex::encode(rand::thread_rng().gen::<[u8; 2]>()),
        hex::encode(rand::thread_rng().gen::<[u8; 2]>()),
        hex::encode(rand::thread_rng().gen::<[u8; 6]>()),
    );
    let time = now();
    let sig = mac(&cfg.secret, &signed_string(&transmission_id, &time, webhook_id, &body))?.finalize().into_bytes();
    Ok(Transmission {
        headers: vec![
            ("PAYPAL-AUTH-ALGO", AUTH_ALGO.to_string()),
            ("PAYPAL-CERT-URL", format!("{}/sim/cert", cfg.public_url)),
            ("PAYPAL-TRANSMISSION-ID", transmission_id),
            ("PAYPAL-TRANSMISSION-SIG", base64::engine::general_purpose::STANDARD.encode(sig)),
            ("PAYPAL-TRANSMISSION-TIME", time),
        ],
        body,
    })
}

async fn deliver(http: &reqwest::Client, url: &str, t: &Transmission) -> Result<u16, String> {
    let mut req = http
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "PayPal/AUHD-214.0-58843797");
    for (name, value) in &t.headers {
        req = req.header(*name, value);
    }
    let resp = req.body(t.body.clone()).send().await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

fn record(app: &App, event: &Value, url: &str, t: &Transmission, result: &Result<u16, String>) {
    let transmission_id = t.headers.iter().find(|(n, _)| *n == "PAYPAL-TRANSMISSION-ID").map(|(_, v)| v.clone());
    let entry = json!({
        "event_id": event.get("id"),
        "event_type": event.get("event_type"),
        "transmission_id": transmission_id,
        "url": url,
        "status": result.as_ref().ok(),
        "error": result.as_ref().err(),
        "time": now(),
    });
    app.lock().webhooks.push(entry);
}

/// Sends `event` to `--webhook-url` in the background (3 attempts), as PayPal does.
fn auto_webhook(app: &App, event: Value) {
    let Some(url) = app.cfg.webhook_url.clone() else { return };
    let app = app.clone();
    tokio::spawn(async move {
        let t = match sign(&app.cfg, &event, &app.cfg.webhook_id) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("shomei-paypal: cannot sign webhook: {e}");
                return;
            }
        };
        for attempt in 1..=3u64 {
            let result = deliver(&app.http, &url, &t).await;
            record(&app, &event, &url, &t, &result);
            match result {
                Ok(s) if (200..300).contains(&s) => return,
                Ok(s) => eprintln!("shomei-paypal: webhook to {url} answered {s} (attempt {attempt})"),
                Err(e) => eprintln!("shomei-paypal: webhook to {url} failed: {e} (attempt {attempt})"),
            }
            tokio::time::sleep(Duration::from_secs(attempt)).await;
        }
    });
}

#[derive(Deserialize)]
struct SendWebhook {
    order_id: String,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    webhook_id: Option<String>,
    #[serde(default)]
    tamper: bool,
}

async fn send_webhook(State(app): State<App>, body: Bytes) -> Response {
    let req: SendWebhook = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, Json(json!({ "error": format!("body: {e}") }))).into_response(),
    };
    let event_type = req.event_type.unwrap_or_else(|| "PAYMENT.CAPTURE.COMPLETED".into());
    let event = {
        let sim = app.lock();
        let Some(order) = sim.orders.get(&req.order_id) else {
            return (StatusCode::NOT_FOUND, Json(json!({ "error": format!("no order {}", req.order_id) })))
                .into_response();
        };
        if event_type == "PAYMENT.CAPTURE.REFUNDED" {
            let cid = order.capture.as_ref().map(|c| c.id.clone());
            let latest = sim
                .refunds
                .values()
                .filter(|r| Some(&r.capture_id) == cid.as_ref())
                .max_by(|a, b| a.create_time.cmp(&b.create_time));
            match latest {
                Some(r) => Ok(refund_event(&app.cfg, order, r)),
                None => Err(format!("order {} has no refund (refund it first)", order.id)),
            }
        } else {
            build_event(&app.cfg, order, &event_type)
        }
    };
    let event = match event {
        Ok(e) => e,
        Err(e) => return (StatusCode::CONFLICT, Json(json!({ "error": e }))).into_response(),
    };
    let webhook_id = req.webhook_id.unwrap_or_else(|| app.cfg.webhook_id.clone());
    let mut t = match sign(&app.cfg, &event, &webhook_id) {
        Ok(t) => t,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e }))).into_response(),
    };
    if req.tamper {
        let mut changed = event.clone();
        changed["summary"] = json!("tampered after signing");
        if changed.pointer("/resource/amount/value").is_some() {
            changed["resource"]["amount"]["value"] = json!("1");
        }
        t.body = serde_json::to_vec(&changed).unwrap_or_default();
    }
    let url = req.url.or_else(|| app.cfg.webhook_url.clone());
    let (status, error) = match &url {
        Some(u) => {
            let result = deliver(&app.http, u, &t).await;
            record(&app, &event, u, &t, &result);
            match result {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            }
        }
        None => (None, None),
    };
    let headers: serde_json::Map<String, Value> = t.headers.iter().map(|(n, v)| (n.to_string(), json!(v))).collect();
    Json(json!({
        "event": event,
        "body": String::from_utf8_lossy(&t.body),
        "headers": headers,
        "url": url,
        "delivered_status": status,
        "delivery_error": error,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct VerifyRequest {
    auth_algo: Option<String>,
    cert_url: Option<String>,
    transmission_id: Option<String>,
    transmission_sig: Option<String>,
    transmission_time: Option<String>,
    webhook_id: Option<String>,
    webhook_event: Option<Value>,
}

async fn verify_webhook(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    app.lock().verifications += 1;
    if !bearer_ok(&mut app.lock(), &headers) {
        return respond(api_error(StatusCode::UNAUTHORIZED, None, Vec::new()));
    }
    let Ok(req) = serde_json::from_slice::<VerifyRequest>(&body) else {
        return respond(bad_param("MALFORMED_REQUEST_JSON", "The request JSON is not well formed."));
    };
    let (Some(algo), Some(_cert), Some(tid), Some(sig), Some(time), Some(wid), Some(event)) = (
        req.auth_algo,
        req.cert_url,
        req.transmission_id,
        req.transmission_sig,
        req.transmission_time,
        req.webhook_id,
        req.webhook_event,
    ) else {
        return respond(bad_param("MISSING_REQUIRED_PARAMETER", "auth_algo, cert_url, transmission_id, transmission_sig, transmission_time, webhook_id and webhook_event are required"));
    };
    let ok = algo == AUTH_ALGO
        && serde_json::to_vec(&event).ok().is_some_and(|canonical| {
            let sig = base64::engine::general_purpose::STANDARD.decode(sig.trim()).unwrap_or_default();
            mac(&app.cfg.secret, &signed_string(&tid, &time, &wid, &canonical))
                .is_ok_and(|m| m.verify_slice(&sig).is_ok())
        });
    Json(json!({ "verification_status": if ok { "SUCCESS" } else { "FAILURE" } })).into_response()
}

async fn cert() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "shomei-paypal simulator: no certificate. Transmissions are signed with HMAC-SHA256 under a key known only to \
         this process, over transmission_id|transmission_time|webhook_id|hex(sha256(body)). Verify them with \
         POST /v1/notifications/verify-webhook-signature.\n",
    )
}

// ---------------------------------------------------------------- buyer's pages

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#111}}\
.note{{background:#fff4cc;border:1px solid #c9a400;padding:.5rem}}button{{font-size:1.1rem;padding:.6rem 1.2rem;margin:.3rem 0;\
display:block;width:100%}}#pay{{background:#0a5bd3;color:#fff;border:0}}label{{display:block;margin-top:1rem}}\
input{{font-size:1.1rem;width:100%;padding:.4rem}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2rem .4rem}}</style>\
</head><body><main>{}</main></body></html>",
        html_escape(title),
        body
    )
}

fn page_response(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(page(title, body))).into_response()
}

async fn checkout_page(State(app): State<App>, Query(q): Query<TokenQuery>) -> Response {
    let sim = app.lock();
    let Some(o) = q.token.as_deref().and_then(|t| sim.orders.get(t)) else {
        return page_response(
            StatusCode::NOT_FOUND,
            "PayPal (simulator)",
            "<h1>Unknown order</h1><p>This checkout link is not valid.</p>",
        );
    };
    let id = html_escape(&o.id);
    let head = format!(
        "<h1>PayPal checkout (simulator)</h1><p class=\"note\">Local PayPal simulator: no real money moves.</p>\
<p>Amount: <strong id=\"amount\">{}</strong></p><p>Reference: <span id=\"reference\">{}</span></p><p>Order: <code id=\"order\">{id}</code></p>",
        yen_text(o.amount),
        html_escape(o.custom_id.as_deref().unwrap_or(&o.reference_id)),
    );
    if !matches!(o.status.as_str(), "CREATED" | "PAYER_ACTION_REQUIRED" | "APPROVED") {
        let body = format!("{head}<p id=\"status\">This order is {}; nothing to pay.</p>", html_escape(&o.status));
        return page_response(StatusCode::OK, "PayPal (simulator)", &body);
    }
    let body = format!(
        "{head}<form method=\"post\" action=\"/checkoutnow/approve\"><input type=\"hidden\" name=\"token\" value=\"{id}\">\
<label for=\"card\">Card number</label><input id=\"card\" name=\"card\" value=\"4111 1111 1111 1111\" inputmode=\"numeric\" autocomplete=\"off\">\
<label for=\"expiry\">Expiry</label><input id=\"expiry\" name=\"expiry\" value=\"12/30\" autocomplete=\"off\">\
<p><button id=\"pay\" type=\"submit\" name=\"outcome\" value=\"pay\">Pay</button>\
<button id=\"pay-declined\" type=\"submit\" name=\"outcome\" value=\"decline\">Pay with a card that will be declined</button></p></form>\
<form method=\"post\" action=\"/checkoutnow/cancel\"><input type=\"hidden\" name=\"token\" value=\"{id}\">\
<button id=\"cancel\" type=\"submit\">Cancel</button></form>"
    );
    page_response(StatusCode::OK, &format!("PayPal (simulator): pay {}", yen_text(o.amount)), &body)
}

enum ApproveOutcome {
    /// Approved; where the buyer goes next (return_url?token=..&PayerID=..), if anywhere.
    Approved {
        redirect: Option<String>,
        event: Option<Value>,
    },
    NotFound,
    Closed(String),
}

fn approve(app: &App, id: &str, payer_id: Option<String>, decline: bool) -> ApproveOutcome {
    let mut sim = app.lock();
    let Some(o) = sim.orders.get_mut(id) else { return ApproveOutcome::NotFound };
    if !matches!(o.status.as_str(), "CREATED" | "PAYER_ACTION_REQUIRED" | "APPROVED") {
        return ApproveOutcome::Closed(o.status.clone());
    }
    let first = o.status != "APPROVED";
    let payer = payer_id.or_else(|| o.payer_id.clone()).unwrap_or_else(|| paypal_id(13));
    o.status = "APPROVED".into();
    o.payer_id = Some(payer.clone());
    o.decline_on_capture = decline;
    o.update_time = now();
    let redirect = o.return_url.as_deref().map(|u| with_query(u, &[("token", id), ("PayerID", &payer)]));
    let event = if first { build_event(&app.cfg, o, "CHECKOUT.ORDER.APPROVED").ok() } else { None };
    ApproveOutcome::Approved { redirect, event }
}

#[derive(Deserialize)]
struct ApproveForm {
    token: String,
    #[serde(default)]
    outcome: Option<String>,
}

fn see_other(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => {
            page_response(StatusCode::BAD_REQUEST, "PayPal (simulator)", "<p>The shop's return URL is not valid.</p>")
        }
    }
}

async fn checkout_approve(State(app): State<App>, Form(f): Form<ApproveForm>) -> Response {
    let decline = f.outcome.as_deref() == Some("decline");
    match approve(&app, &f.token, None, decline) {
        ApproveOutcome::Approved { redirect, event } => {
            if let Some(e) = event {
                auto_webhook(&app, e);
            }
            match redirect {
                Some(url) => see_other(&url),
                None => page_response(
                    StatusCode::OK,
                    "PayPal (simulator)",
                    "<h1>Approved</h1><p id=\"status\">You can close this window.</p>",
                ),
            }
        }
        ApproveOutcome::NotFound => {
            page_response(StatusCode::NOT_FOUND, "PayPal (simulator)", "<h1>Unknown order</h1>")
        }
        ApproveOutcome::Closed(s) => page_response(
            StatusCode::CONFLICT,
            "PayPal (simulator)",
            &format!("<p id=\"status\">This order is {}; nothing to pay.</p>", html_escape(&s)),
        ),
    }
}

async fn checkout_cancel(State(app): State<App>, Form(f): Form<ApproveForm>) -> Response {
    let cancel = {
        let sim = app.lock();
        match sim.orders.get(&f.token) {
            Some(o) => o.cancel_url.as_deref().map(|u| with_query(u, &[("token", &o.id)])),
            None => return page_response(StatusCode::NOT_FOUND, "PayPal (simulator)", "<h1>Unknown order</h1>"),
        }
    };
    match cancel {
        Some(url) => see_other(&url),
        None => page_response(
            StatusCode::OK,
            "PayPal (simulator)",
            "<h1>Cancelled</h1><p id=\"status\">You can close this window.</p>",
        ),
    }
}

// ---------------------------------------------------------------- knobs

#[derive(Deserialize, Default)]
struct ApproveKnob {
    #[serde(default)]
    payer_id: Option<String>,
    #[serde(default)]
    decline: bool,
}

/// An optional JSON body: empty means `T::default()`.
fn optional_json<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("body: {e}"))
}

fn bad_body(e: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response()
}

async fn knob_approve(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    let k: ApproveKnob = match optional_json(&body) {
        Ok(k) => k,
        Err(e) => return bad_body(e),
    };
    match approve(&app, &id, k.payer_id, k.decline) {
        ApproveOutcome::Approved { redirect, event } => {
            if let Some(e) = event {
                auto_webhook(&app, e);
            }
            Json(json!({ "id": id, "status": "APPROVED", "return_url": redirect })).into_response()
        }
        ApproveOutcome::NotFound => {
            (StatusCode::NOT_FOUND, Json(json!({ "error": format!("no order {id}") }))).into_response()
        }
        ApproveOutcome::Closed(s) => {
            (StatusCode::CONFLICT, Json(json!({ "error": format!("order {id} is {s}"), "status": s }))).into_response()
        }
    }
}

#[derive(Deserialize, Default)]
struct FailKnob {
    #[serde(default)]
    issue: Option<String>,
}

#[derive(Deserialize, Default)]
struct RefundKnob {
    #[serde(default)]
    issue: Option<String>,
    /// How many refunds fail (default 1; 0 clears the knob).
    #[serde(default)]
    times: Option<u32>,
}

async fn knob_fail_next_refund(State(app): State<App>, body: Bytes) -> Response {
    let k: RefundKnob = match optional_json(&body) {
        Ok(k) => k,
        Err(e) => return bad_body(e),
    };
    let issue = k.issue.unwrap_or_else(|| "TRANSACTION_REFUSED".into());
    let times = k.times.unwrap_or(1);
    app.lock().fail_next_refund = (times > 0).then(|| (issue.clone(), times));
    Json(json!({ "fail_next_refund": issue, "times": times })).into_response()
}

async fn knob_fail_next_capture(State(app): State<App>, body: Bytes) -> Response {
    let k: FailKnob = match optional_json(&body) {
        Ok(k) => k,
        Err(e) => return bad_body(e),
    };
    let issue = k.issue.unwrap_or_else(|| "INSTRUMENT_DECLINED".into());
    app.lock().fail_next_capture = Some(issue.clone());
    Json(json!({ "fail_next_capture": issue })).into_response()
}

#[derive(Deserialize, Default)]
struct DropKnob {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    delay_ms: Option<u64>,
}

async fn knob_drop_next_capture(State(app): State<App>, body: Bytes) -> Response {
    let k: DropKnob = match optional_json(&body) {
        Ok(k) => k,
        Err(e) => return bad_body(e),
    };
    let mode = match k.mode.as_deref() {
        None | Some("500") => DropMode::Error500,
        Some("delay") => DropMode::Delay(Duration::from_millis(k.delay_ms.unwrap_or(5000))),
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("mode {other:?}: use \"500\" or \"delay\"") })),
            )
                .into_response()
        }
    };
    app.lock().drop_next_capture = Some(mode);
    Json(json!({ "drop_next_capture_response": format!("{mode:?}") })).into_response()
}

async fn knob_expire_tokens(State(app): State<App>) -> Response {
    let n = {
        let mut sim = app.lock();
        let n = sim.tokens.len();
        sim.tokens.clear();
        n
    };
    Json(json!({ "expired": n })).into_response()
}

async fn sim_state(State(app): State<App>) -> Response {
    let sim = app.lock();
    let orders: Vec<Value> =
        sim.order_ids.iter().filter_map(|id| sim.orders.get(id)).map(|o| order_json(&app.cfg, o)).collect();
    Json(json!({
        "orders": orders,
        "orders_created": sim.orders_created,
        "verifications": sim.verifications,
        "captures_performed": sim.captures_performed,
        "refunds_performed": sim.refunds_performed,
        "webhooks": sim.webhooks,
        "fail_next_capture": sim.fail_next_capture,
        "fail_next_refund": sim.fail_next_refund.as_ref().map(|(issue, times)| json!({ "issue": issue, "times": times })),
        "drop_next_capture_response": sim.drop_next_capture.map(|m| format!("{m:?}")),
    }))
    .into_response()
}

async fn index(State(app): State<App>) -> Response {
    let sim = app.lock();
    let mut rows = String::new();
    for o in sim.order_ids.iter().rev().filter_map(|id| sim.orders.get(id)) {
        let ref_text = o.custom_id.as_deref().unwrap_or(&o.reference_id);
        let action = if matches!(o.status.as_str(), "CREATED" | "PAYER_ACTION_REQUIRED" | "APPROVED") {
            format!("<a href=\"/checkoutnow?token={0}\">approve page</a>", html_escape(&o.id))
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            html_escape(&o.id),
            html_escape(ref_text),
            yen_text(o.amount),
            html_escape(&o.status),
            o.capture.as_ref().map(|c| html_escape(&format!("{} {}", c.id, c.status))).unwrap_or_default(),
        ));
    }
    let body = format!(
        "<h1>PayPal simulator</h1><p class=\"note\">Local simulator for shomei's tests and demo: no real money moves.</p>\
<p>Orders created: {}, captures: {}, refunds: {}.</p>\
<table><thead><tr><th>order</th><th>reference</th><th>amount</th><th>status</th><th>capture</th><th></th></tr></thead><tbody>{rows}</tbody></table>\
<p>Knobs: <code>POST /sim/fail-next-capture</code>, <code>POST /sim/drop-next-capture-response</code>, \
<code>POST /sim/send-webhook</code>, <code>POST /sim/approve/{{id}}</code>, <code>POST /sim/expire-tokens</code>, <code>GET /sim/state</code>.</p>",
        sim.orders_created, sim.captures_performed, sim.refunds_performed,
    );
    page_response(StatusCode::OK, "PayPal simulator", &body)
}

async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let rid = req.headers().get("paypal-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let resp = next.run(req).await;
    eprintln!(
        "shomei-paypal: {method} {path}{} -> {}",
        rid.map(|r| format!(" (PayPal-Request-Id {r})")).unwrap_or_default(),
        resp.status().as_u16()
    );
    resp
}

fn router(app: App, verbose: bool) -> Router {
    let r = Router::new()
        .route("/v1/oauth2/token", post(oauth_token))
        .route("/v2/checkout/orders", post(create_order))
        .route("/v2/checkout/orders/{id}", get(get_order))
        .route("/v2/checkout/orders/{id}/capture", post(capture_order))
        .route("/v2/payments/captures/{id}", get(get_capture))
        .route("/v2/payments/captures/{id}/refund", post(refund_capture))
        .route("/v1/notifications/verify-webhook-signature", post(verify_webhook))
        .route("/checkoutnow", get(checkout_page))
        .route("/checkoutnow/approve", post(checkout_approve))
        .route("/checkoutnow/cancel", post(checkout_cancel))
        .route("/sim/approve/{id}", post(knob_approve))
        .route("/sim/fail-next-capture", post(knob_fail_next_capture))
        .route("/sim/fail-next-refund", post(knob_fail_next_refund))
        .route("/sim/drop-next-capture-response", post(knob_drop_next_capture))
        .route("/sim/send-webhook", post(send_webhook))
        .route("/sim/expire-tokens", post(knob_expire_tokens))
        .route("/sim/state", get(sim_state))
        .route("/sim/cert", get(cert))
        .route("/", get(index))
        .with_state(app);
    if verbose {
        r.layer(axum::middleware::from_fn(log_requests))
    } else {
        r
    }
}

// ---------------------------------------------------------------- main

#[derive(Parser)]
#[command(
    name = "shomei-paypal",
    version,
    about = "Local in-memory simulator of the PayPal REST API shomei uses (OAuth2, Orders v2, refunds, webhooks), with the buyer's approval page",
    args_override_self = true
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the READY line tells which)
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Origin put in links (approve URL, self links) [default: http://ADDR]
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// OAuth2 client id accepted by POST /v1/oauth2/token
    #[arg(long, value_name = "ID", default_value = DEFAULT_CLIENT_ID)]
    client_id: String,
    /// OAuth2 client secret accepted by POST /v1/oauth2/token
    #[arg(long, value_name = "SECRET", default_value = DEFAULT_CLIENT_SECRET)]
    client_secret: String,
    /// Webhook id that transmissions are signed for
    #[arg(long, value_name = "ID", default_value = DEFAULT_WEBHOOK_ID)]
    webhook_id: String,
    /// POST webhook events here by themselves, as PayPal does
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// Access token lifetime (`expires_in`), in whole seconds
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TOKEN_TTL)]
    token_ttl: u64,
    /// Log every request on stderr
    #[arg(short, long)]
    verbose: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = match args.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{addr}"),
    };
    let cfg = Cfg {
        public_url: public_url.clone(),
        client_id: args.client_id,
        client_secret: args.client_secret,
        webhook_id: args.webhook_id,
        webhook_url: args.webhook_url,
        token_ttl: args.token_ttl,
        secret: rand::thread_rng().gen(),
    };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().context("HTTP client")?;
    let app = App { cfg: Arc::new(cfg), sim: Arc::default(), http };
    eprintln!(
        "shomei-paypal: PayPal simulator (no real money). client id {:?}, webhook id {:?}, webhooks to {}",
        app.cfg.client_id,
        app.cfg.webhook_id,
        app.cfg.webhook_url.as_deref().unwrap_or("(only on POST /sim/send-webhook)"),
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY listening on http://{addr} (public {public_url})")?;
    out.flush()?;
    drop(out);
    axum::serve(listener, router(app, args.verbose)).await.context("serving")?;
    Ok(())
}
