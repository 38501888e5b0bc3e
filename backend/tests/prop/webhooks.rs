//! What payment providers post to the backend: Smart Pit payment notices
//! and store-print notices (HMAC-signed bodies), and PayPal webhooks
//! (verified by asking PayPal; here a scripted PayPal on loopback that
//! signs and checks transmissions with its own key).

use crate::support;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shomei_backend::payments::paypal::{parse_webhook_event, PayPalClient, PayPalConfig, SIMULATOR_WEBHOOK_ID};
use shomei_backend::payments::{smartpit, storeprint};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const CASES: u32 = 256;
/// Loopback round trips per case: fewer cases.
const LOOPBACK_CASES: u32 = 64;

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn hmac_hex(key: &[u8], data: &[u8]) -> Result<String, TestCaseError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(fail)?;
    mac.update(data);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

// ------------------------------------------------------------------ Smart Pit and store-print notices

/// Both notice checks: hex(HMAC-SHA256(secret, body)), constant time.
fn verifiers() -> [(&'static str, fn(&str, &[u8], &str) -> bool); 2] {
    [("smartpit", smartpit::verify), ("storeprint", storeprint::verify)]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        ("[A-Z0-9-]{1,12}", "[0-9]{13}", any::<i64>())
            .prop_map(|(id, number, amount)| json!({ "notice_id": id, "payment_number": number, "amount": amount }).to_string().into_bytes()),
    ]
}

/// A different hex digit (not the same digit in the other case).
fn other_hex_digit(c: char, bump: u8) -> char {
    let v = c.to_digit(16).unwrap_or(0) as u8;
    let w = (v + 1 + bump % 15) % 16;
    char::from_digit(u32::from(w), 16).unwrap_or('0')
}

#[test]
fn a_signed_notice_verifies_and_any_change_does_not() {
    let strategy = (".{0,24}", body(), any::<prop::sample::Index>(), 1u8..=255, any::<prop::sample::Index>(), any::<u8>());
    support::check("a_signed_notice_verifies_and_any_change_does_not", support::cases(CASES), strategy, |(secret, body, at, xor, sig_at, bump)| {
        let sig = hmac_hex(secret.as_bytes(), &body)?;
        for (name, verify) in verifiers() {
            prop_assert!(verify(&secret, &body, &sig), "{}: the right signature refused", name);
            prop_assert!(verify(&secret, &body, &sig.to_uppercase()), "{}: upper-case hex refused", name);
            prop_assert!(verify(&secret, &body, &format!(" {sig}\r\n")), "{}: a signature with spaces around refused", name);
            if !body.is_empty() {
                let mut changed = body.clone();
                changed[at.index(body.len())] ^= xor;
                prop_assert!(!verify(&secret, &changed, &sig), "{}: a changed body verified", name);
                prop_assert!(!verify(&secret, &body[..body.len() - 1], &sig), "{}: a shortened body verified", name);
            }
            let mut longer = body.clone();
            longer.push(b' ');
            prop_assert!(!verify(&secret, &longer, &sig), "{}: a lengthened body verified", name);
            let i = sig_at.index(sig.len());
            let wrong: String = sig.chars().enumerate().map(|(j, c)| if j == i { other_hex_digit(c, bump) } else { c }).collect();
            prop_assert!(!verify(&secret, &body, &wrong), "{}: a changed signature verified", name);
            prop_assert!(!verify(&secret, &body, &sig[..sig.len() - 2]), "{}: a cut signature verified", name);
            prop_assert!(!verify(&format!("{secret}x"), &body, &sig), "{}: another secret verified", name);
            prop_assert!(!verify(&secret, &body, ""), "{}: no signature verified", name);
        }
        Ok(())
    });
}

#[test]
fn arbitrary_notices_never_verify() {
    let signature = prop_oneof![".{0,80}", "[0-9a-fA-F]{64}", "[0-9a-f]{0,130}"];
    let strategy = (".{0,24}", body(), signature);
    support::check("arbitrary_notices_never_verify", support::cases(CASES), strategy, |(secret, body, sig)| {
        // (a random string is the right HMAC with probability 2^-256)
        for (name, verify) in verifiers() {
            prop_assert!(!verify(&secret, &body, &sig), "{}: {:?} verified", name, sig);
        }
        // what a handler does after the check, on anything: no panic
        let _ = serde_json::from_slice::<smartpit::Notice>(&body);
        let _ = serde_json::from_slice::<storeprint::Notice>(&body);
        Ok(())
    });
}

#[test]
fn notices_parse_to_what_was_sent() {
    let strategy = ("\\PC{0,16}", "[0-9]{13}", any::<i64>(), "\\PC{0,16}", "[a-z]{1,10}", proptest::option::of(any::<i64>()));
    support::check("notices_parse_to_what_was_sent", support::cases(CASES), strategy, |(id, number, amount, file, event, pages)| {
        let n: smartpit::Notice = serde_json::from_value(json!({ "notice_id": id, "payment_number": number, "amount": amount, "extra": [1, 2] })).map_err(fail)?;
        prop_assert_eq!((n.notice_id.as_str(), n.payment_number.as_str(), n.amount), (id.as_str(), number.as_str(), amount));
        let mut v = json!({ "notice_id": id, "file_id": file, "event": event });
        if let Some(p) = pages {
            v["pages"] = json!(p);
        }
        let s: storeprint::Notice = serde_json::from_value(v).map_err(fail)?;
        prop_assert_eq!((s.notice_id.as_str(), s.file_id.as_str(), s.event.as_str(), s.pages), (id.as_str(), file.as_str(), event.as_str(), pages.unwrap_or(0)));
        Ok(())
    });
}

// ------------------------------------------------------------------ PayPal webhook events

#[derive(Debug, Clone)]
struct Amount {
    currency: String,
    value: String,
    /// Whole yen, or None when the amount must be refused.
    yen: Option<i64>,
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        4 => (0i64..100_000_000, proptest::sample::select(vec!["", ".0", ".00"]))
            .prop_map(|(n, tail)| Amount { currency: "JPY".into(), value: format!("{n}{tail}"), yen: Some(n) }),
        1 => (0i64..100_000, proptest::sample::select(vec!["USD", "EUR", "jpy", ""]))
            .prop_map(|(n, c)| Amount { currency: c.into(), value: n.to_string(), yen: None }),
        1 => prop_oneof![Just("12.5"), Just("1,500"), Just("abc"), Just(""), Just("99999999999999999999")]
            .prop_map(|v| Amount { currency: "JPY".into(), value: v.into(), yen: None }),
    ]
}

fn pp_id() -> impl Strategy<Value = String> {
    "[A-Z0-9]{8,17}"
}

#[derive(Debug, Clone)]
enum Event {
    Capture { id: String, capture: String, order: String, custom: String, status: String, amount: Amount },
    Order { id: String, order: String, capture: Option<String>, custom: String, amount: Amount },
    Refund { id: String, refund: String, capture: String, amount: Amount },
}

fn event() -> impl Strategy<Value = Event> {
    let status = proptest::sample::select(vec!["COMPLETED", "PENDING", "DECLINED"]).prop_map(str::to_string);
    prop_oneof![
        (pp_id(), pp_id(), pp_id(), "[a-z0-9:-]{1,20}", status, amount())
            .prop_map(|(id, capture, order, custom, status, amount)| Event::Capture { id, capture, order, custom, status, amount }),
        (pp_id(), pp_id(), proptest::option::of(pp_id()), "[a-z0-9:-]{1,20}", amount())
            .prop_map(|(id, order, capture, custom, amount)| Event::Order { id, order, capture, custom, amount }),
        (pp_id(), pp_id(), pp_id(), amount()).prop_map(|(id, refund, capture, amount)| Event::Refund { id, refund, capture, amount }),
    ]
}

fn money(a: &Amount) -> Value {
    json!({ "currency_code": a.currency, "value": a.value })
}

impl Event {
    fn json(&self) -> Value {
        match self {
            Event::Capture { id, capture, order, custom, status, amount } => json!({
                "id": id,
                "event_type": "PAYMENT.CAPTURE.COMPLETED",
                "resource_type": "capture",
                "resource": {
                    "id": capture,
                    "status": status,
                    "custom_id": custom,
                    "amount": money(amount),
                    "supplementary_data": { "related_ids": { "order_id": order } },
                    "links": [{ "href": format!("https://api-m.paypal.com/v2/checkout/orders/{order}"), "rel": "up" }],
                },
            }),
            Event::Order { id, order, capture, custom, amount } => {
                let mut unit = json!({ "custom_id": custom, "amount": money(amount) });
                if let Some(c) = capture {
                    unit["payments"] = json!({ "captures": [{ "id": c, "status": "COMPLETED" }] });
                }
                json!({
                    "id": id,
                    "event_type": "CHECKOUT.ORDER.APPROVED",
                    "resource_type": "checkout-order",
                    "resource": { "id": order, "status": "APPROVED", "purchase_units": [unit] },
                })
            }
            Event::Refund { id, refund, capture, amount } => json!({
                "id": id,
                "event_type": "PAYMENT.CAPTURE.REFUNDED",
                "resource_type": "refund",
                "resource": {
                    "id": refund,
                    "status": "COMPLETED",
                    "amount": money(amount),
                    "links": [
                        { "href": format!("https://api-m.paypal.com/v2/payments/captures/{capture}?x=1"), "rel": "up" },
                        { "href": format!("https://api-m.paypal.com/v2/payments/refunds/{refund}"), "rel": "self" },
                    ],
                },
            }),
        }
    }

    fn amount(&self) -> &Amount {
        match self {
            Event::Capture { amount, .. } | Event::Order { amount, .. } | Event::Refund { amount, .. } => amount,
        }
    }
}

#[test]
fn webhook_events_read_as_paypal_sent_them() {
    let strategy = (event(), any::<bool>());
    support::check("webhook_events_read_as_paypal_sent_them", support::cases(CASES), strategy, |(e, pretty)| {
        let v = e.json();
        let body = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.map_err(fail)?;
        let got = parse_webhook_event(&body);
        let Some(yen) = e.amount().yen else {
            prop_assert!(got.is_err(), "amount {:?} read as {:?}", e.amount(), got.map(|g| g.amount_yen));
            return Ok(());
        };
        let ev = got.map_err(fail)?;
        prop_assert_eq!(ev.amount_yen, Some(yen));
        prop_assert_eq!(&ev.raw, &v);
        fn s(x: &str) -> Option<String> {
            Some(x.to_string())
        }
        match &e {
            Event::Capture { id, capture, order, custom, status, .. } => {
                prop_assert_eq!(&ev.id, id);
                prop_assert_eq!(ev.event_type.as_str(), "PAYMENT.CAPTURE.COMPLETED");
                prop_assert_eq!(ev.resource_type.as_str(), "capture");
                prop_assert_eq!(&ev.resource_id, &s(capture));
                prop_assert_eq!(&ev.order_id, &s(order));
                prop_assert_eq!(&ev.capture_id, &s(capture));
                prop_assert_eq!(&ev.custom_id, &s(custom));
                prop_assert_eq!(&ev.status, &s(status));
            }
            Event::Order { id, order, capture, custom, .. } => {
                prop_assert_eq!(&ev.id, id);
                prop_assert_eq!(&ev.order_id, &s(order));
                prop_assert_eq!(&ev.capture_id, capture);
                prop_assert_eq!(&ev.custom_id, &s(custom));
                prop_assert_eq!(&ev.status, &s("APPROVED"));
            }
            Event::Refund { id, refund, capture, .. } => {
                prop_assert_eq!(&ev.id, id);
                prop_assert_eq!(&ev.resource_id, &s(refund));
                prop_assert_eq!(&ev.capture_id, &s(capture));
                prop_assert_eq!(&ev.order_id, &None);
                prop_assert_eq!(&ev.custom_id, &None);
            }
        }
        Ok(())
    });
}

/// One change to a byte string.
fn damage(mut b: Vec<u8>, (at, op, byte): (usize, u8, u8)) -> Vec<u8> {
    let n = b.len();
    if n == 0 {
        b.push(byte);
        return b;
    }
    let i = at % n;
    match op % 4 {
        0 => b[i] ^= byte | 1,
        1 => b.insert(i, byte),
        2 => {
            b.remove(i);
        }
        _ => b.truncate(i),
    }
    b
}

#[test]
fn any_webhook_body_is_read_or_refused_without_panic() {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        (event(), proptest::collection::vec((any::<usize>(), any::<u8>(), prop_oneof![Just(b'"'), Just(b'{'), Just(b'}'), Just(b'/'), Just(b'.'), any::<u8>()]), 1..4))
            .prop_map(|(e, ds)| ds.into_iter().fold(e.json().to_string().into_bytes(), damage)),
    ];
    support::check("any_webhook_body_is_read_or_refused_without_panic", support::cases(CASES), bytes, |b| {
        if let Ok(ev) = parse_webhook_event(&b) {
            prop_assert_eq!(ev.raw.get("id").and_then(Value::as_str), Some(ev.id.as_str()));
            prop_assert_eq!(ev.raw.get("event_type").and_then(Value::as_str), Some(ev.event_type.as_str()));
        }
        Ok(())
    });
}

// ------------------------------------------------------------------ PayPal verification, against a scripted PayPal

/// The scripted PayPal's signing key (PayPal's own is a certificate; the
/// simulator and this stub use an HMAC).
const STUB_KEY: &[u8] = b"scripted paypal key";
const AUTH_ALGO: &str = "SHA256withRSA";

fn transmission_sig(id: &str, time: &str, webhook_id: &str, event: &[u8]) -> Result<String, TestCaseError> {
    hmac_hex(STUB_KEY, format!("{id}|{time}|{webhook_id}|{}", hex::encode(Sha256::digest(event))).as_bytes())
}

/// SUCCESS only for a transmission signed over the event exactly as sent.
fn stub_verdict(request: &[u8]) -> &'static str {
    const MARK: &str = ",\"webhook_event\":";
    let Ok(text) = std::str::from_utf8(request) else { return "FAILURE" };
    // the event is the last member, inserted byte for byte; a quote inside
    // the other members' strings is escaped, so MARK first appears as the key
    let Some(i) = text.find(MARK) else { return "FAILURE" };
    let Some(event) = text[i + MARK.len()..].strip_suffix('}') else { return "FAILURE" };
    let Ok(fields) = serde_json::from_str::<Value>(&format!("{}}}", &text[..i])) else { return "FAILURE" };
    let f = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match transmission_sig(&f("transmission_id"), &f("transmission_time"), &f("webhook_id"), event.as_bytes()) {
        Ok(sig) if f("auth_algo") == AUTH_ALGO && f("transmission_sig") == sig => "SUCCESS",
        _ => "FAILURE",
    }
}

struct PayPalStub {
    rt: tokio::runtime::Runtime,
    client: PayPalClient,
    verify_calls: Arc<AtomicUsize>,
}

fn paypal_stub() -> PayPalStub {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let verify_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&verify_calls);
    let base = rt
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let base = format!("http://{}", listener.local_addr()?);
            let app = axum::Router::new()
                .route(
                    "/v1/oauth2/token",
                    axum::routing::post(|| async { axum::Json(json!({ "access_token": "stub-token", "token_type": "Bearer", "expires_in": 3600 })) }),
                )
                .route(
                    "/v1/notifications/verify-webhook-signature",
                    axum::routing::post(move |body: axum::body::Bytes| {
                        let calls = Arc::clone(&calls);
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            axum::Json(json!({ "verification_status": stub_verdict(&body) }))
                        }
                    }),
                );
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Ok::<String, std::io::Error>(base)
        })
        .expect("a loopback listener");
    let client = PayPalClient::new(PayPalConfig { base_url: base, timeout_s: 10, ..PayPalConfig::default() }).expect("PayPal client");
    PayPalStub { rt, client, verify_calls }
}

const HEADERS: [&str; 5] = ["paypal-auth-algo", "paypal-cert-url", "paypal-transmission-id", "paypal-transmission-sig", "paypal-transmission-time"];

fn headers(values: &[(&'static str, String)]) -> Result<HeaderMap, TestCaseError> {
    let mut h = HeaderMap::new();
    for (name, v) in values {
        h.insert(HeaderName::from_static(*name), HeaderValue::from_str(v).map_err(fail)?);
    }
    Ok(h)
}

fn signed_headers(id: &str, time: &str, event: &[u8]) -> Result<HeaderMap, TestCaseError> {
    headers(&[
        ("paypal-auth-algo", AUTH_ALGO.to_string()),
        ("paypal-cert-url", "https://api-m.paypal.com/v1/notifications/certs/CERT-1".to_string()),
        ("paypal-transmission-id", id.to_string()),
        ("paypal-transmission-sig", transmission_sig(id, time, SIMULATOR_WEBHOOK_ID, event)?),
        ("paypal-transmission-time", time.to_string()),
    ])
}

#[test]
fn a_signed_webhook_verifies_and_any_changed_byte_does_not() {
    let stub = paypal_stub();
    let strategy = (event(), any::<bool>(), "[A-Za-z0-9-]{8,36}", "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z", any::<prop::sample::Index>(), 1u8..=255);
    support::check("a_signed_webhook_verifies_and_any_changed_byte_does_not", support::loopback_cases(LOOPBACK_CASES), strategy, |(e, pretty, id, time, at, xor)| {
        let v = e.json();
        let body = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.map_err(fail)?;
        let h = signed_headers(&id, &time, &body)?;
        let genuine = stub.rt.block_on(stub.client.verify_webhook(&h, &body)).map_err(fail)?;
        prop_assert!(genuine, "a correctly signed webhook was not verified");
        // one byte changed: refused here or by PayPal, never verified
        let mut changed = body.clone();
        changed[at.index(body.len())] ^= xor;
        let forged = stub.rt.block_on(stub.client.verify_webhook(&h, &changed)).map_err(fail)?;
        prop_assert!(!forged, "a webhook with a changed byte was verified");
        Ok(())
    });
}

#[test]
fn webhooks_without_a_genuine_transmission_never_verify() {
    let stub = paypal_stub();
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        event().prop_map(|e| e.json().to_string().into_bytes()),
        Just(b"[]".to_vec()),
        Just(b"\"{}\"".to_vec()),
    ];
    let header_values = proptest::collection::vec(proptest::option::of("[ -~]{0,40}"), 5);
    support::check("webhooks_without_a_genuine_transmission_never_verify", support::loopback_cases(LOOPBACK_CASES), (body, header_values), |(body, values)| {
        let present: Vec<(&'static str, String)> = HEADERS.iter().zip(values).filter_map(|(n, v)| v.map(|v| (*n, v))).collect();
        let h = headers(&present)?;
        let before = stub.verify_calls.load(Ordering::SeqCst);
        let got = stub.rt.block_on(stub.client.verify_webhook(&h, &body));
        let asked = stub.verify_calls.load(Ordering::SeqCst) - before;
        prop_assert!(!matches!(got, Ok(true)), "verified without a genuine signature");
        let is_object = std::str::from_utf8(&body).ok().and_then(|t| serde_json::from_str::<Value>(t).ok()).is_some_and(|v| v.is_object());
        if present.len() < HEADERS.len() || !is_object {
            // refused here: PayPal's quota is not spent on it
            prop_assert!(matches!(got, Ok(false)), "{:?}", got.map_err(|e| e.to_string()));
            prop_assert_eq!(asked, 0);
        } else {
            prop_assert!(matches!(got, Ok(false)), "{:?}", got.map_err(|e| e.to_string()));
        }
        Ok(())
    });
}
