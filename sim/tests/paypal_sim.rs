//! The PayPal simulator (`shomei-paypal`) as a child process, exercised with raw
//! HTTP, and the backend's PayPal client (`backend/src/payments/paypal.rs`, compiled
//! here by path) against it.

#[allow(dead_code)]
#[path = "../../backend/src/payments/paypal.rs"]
mod paypal;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use axum::body::Bytes;
use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CLIENT_ID: &str = "shomei-sim-client";
const CLIENT_SECRET: &str = "shomei-sim-secret";
const RETURN_URL: &str = "http://shop.example/paypal/return";
const CANCEL_URL: &str = "http://shop.example/paypal/cancel";

mod common;
use common::Sim;

/// Starts the simulator on a free port (`--listen 127.0.0.1:0`) and reads its address
/// from the READY line.
fn start_sim(extra: &[&str]) -> Result<Sim> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--listen".as_ref(), "127.0.0.1:0".as_ref()];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(a)));
    common::start(env!("CARGO_BIN_EXE_shomei-paypal"), &args)
}

fn http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?)
}

async fn token(c: &reqwest::Client, base: &str) -> Result<String> {
    let r = c
        .post(format!("{base}/v1/oauth2/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    ensure!(r.status() == StatusCode::OK, "token: {}", r.status());
    let v: Value = r.json().await?;
    ensure!(v["token_type"] == "Bearer" && v["expires_in"].as_u64().unwrap_or(0) > 0, "token answer {v}");
    Ok(v["access_token"].as_str().context("no access_token")?.to_string())
}

fn order_body(amount: &str, reference: &str) -> Value {
    json!({
        "intent": "CAPTURE",
        "purchase_units": [{ "reference_id": reference, "custom_id": reference,
            "amount": { "currency_code": "JPY", "value": amount } }],
        "payment_source": { "paypal": { "experience_context": {
            "return_url": RETURN_URL, "cancel_url": CANCEL_URL, "user_action": "PAY_NOW" } } },
    })
}

async fn post_json(
    c: &reqwest::Client,
    url: String,
    tok: &str,
    rid: Option<&str>,
    body: Option<Value>,
) -> Result<(StatusCode, Value)> {
    let mut req = c.post(url).bearer_auth(tok).header("Content-Type", "application/json");
    if let Some(r) = rid {
        req = req.header("PayPal-Request-Id", r);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

async fn get_json(c: &reqwest::Client, url: String, tok: &str) -> Result<(StatusCode, Value)> {
    let r = c.get(url).bearer_auth(tok).send().await?;
    Ok((r.status(), r.json().await?))
}

async fn state(c: &reqwest::Client, base: &str) -> Result<Value> {
    Ok(c.get(format!("{base}/sim/state")).send().await?.json().await?)
}

async fn knob(c: &reqwest::Client, base: &str, path: &str, body: Value) -> Result<Value> {
    let r = c.post(format!("{base}{path}")).json(&body).send().await?;
    ensure!(r.status().is_success(), "{path}: {}", r.status());
    Ok(r.json().await?)
}

async fn create(c: &reqwest::Client, base: &str, tok: &str, rid: &str) -> Result<String> {
    let (s, v) =
        post_json(c, format!("{base}/v2/checkout/orders"), tok, Some(rid), Some(order_body("1500", "ord-1"))).await?;
    ensure!(s == StatusCode::OK, "create: {s} {v}");
    Ok(v["id"].as_str().context("no id")?.to_string())
}

fn issue(v: &Value) -> &str {
    v["details"][0]["issue"].as_str().unwrap_or_default()
}

/// A webhook receiver: every POST /hook is kept (headers, body) and answered 200.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

fn lock(got: &Received) -> std::sync::MutexGuard<'_, Vec<(HeaderMap, Bytes)>> {
    got.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn receiver() -> Result<(String, Received)> {
    let got: Received = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                lock(&keep).push((headers, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, got))
}

async fn wait_for(got: &Received, n: usize) -> Result<Vec<(HeaderMap, Bytes)>> {
    for _ in 0..100 {
        if lock(got).len() >= n {
            return Ok(lock(got).clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{n} webhooks expected, {} received", lock(got).len())
}

fn verify_request(headers: &HeaderMap, webhook_id: &str, event: Value) -> Result<Value> {
    let h =
        |n: &str| -> Result<String> { Ok(headers.get(n).with_context(|| format!("no {n}"))?.to_str()?.to_string()) };
    Ok(json!({
        "auth_algo": h("paypal-auth-algo")?,
        "cert_url": h("paypal-cert-url")?,
        "transmission_id": h("paypal-transmission-id")?,
        "transmission_sig": h("paypal-transmission-sig")?,
        "transmission_time": h("paypal-transmission-time")?,
        "webhook_id": webhook_id,
        "webhook_event": event,
    }))
}

// ------------------------------------------------------------ raw HTTP

#[tokio::test]
async fn api_calls_need_a_valid_token() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let r = c.post(format!("{b}/v2/checkout/orders")).json(&order_body("1500", "x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "AUTHENTICATION_FAILURE");
    let (s, _) =
        post_json(&c, format!("{b}/v2/checkout/orders"), "A21AAnonsense", None, Some(order_body("1500", "x"))).await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = c.get(format!("{b}/v2/checkout/orders/NOPE")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = c
        .post(format!("{b}/v1/oauth2/token"))
        .basic_auth(CLIENT_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");

    let tok = token(&c, b).await?;
    let (s, _) = get_json(&c, format!("{b}/v2/checkout/orders/NOPE"), &tok).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    knob(&c, b, "/sim/expire-tokens", json!({})).await?;
    let (s, _) = get_json(&c, format!("{b}/v2/checkout/orders/NOPE"), &tok).await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn same_request_id_creates_one_order() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let tok = token(&c, b).await?;
    let (s1, v1) =
        post_json(&c, format!("{b}/v2/checkout/orders"), &tok, Some("create-1"), Some(order_body("1500", "ord-1")))
            .await?;
    let (s2, v2) =
        post_json(&c, format!("{b}/v2/checkout/orders"), &tok, Some("create-1"), Some(order_body("1500", "ord-1")))
            .await?;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(v1, v2, "a replay returns the first answer");
    assert_eq!(v1["status"], "PAYER_ACTION_REQUIRED");
    let action = v1["links"].as_array().unwrap().iter().find(|l| l["rel"] == "payer-action").unwrap();
    assert_eq!(action["href"], format!("{b}/checkoutnow?token={}", v1["id"].as_str().unwrap()));
    assert_eq!(state(&c, b).await?["orders_created"], 1);

    let (_, v3) =
        post_json(&c, format!("{b}/v2/checkout/orders"), &tok, Some("create-2"), Some(order_body("1500", "ord-1")))
            .await?;
    assert_ne!(v3["id"], v1["id"]);
    assert_eq!(state(&c, b).await?["orders_created"], 2);

    // application_context (older style): CREATED with an "approve" link.
    let body = json!({ "intent": "CAPTURE",
        "purchase_units": [{ "amount": { "currency_code": "JPY", "value": "800" } }],
        "application_context": { "return_url": RETURN_URL, "cancel_url": CANCEL_URL } });
    let (s, v) = post_json(&c, format!("{b}/v2/checkout/orders"), &tok, None, Some(body)).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "CREATED");
    assert!(v["links"].as_array().unwrap().iter().any(|l| l["rel"] == "approve"));

    // JPY has no decimals; bad JSON is a 400.
    let (s, v) = post_json(&c, format!("{b}/v2/checkout/orders"), &tok, None, Some(order_body("15.00", "x"))).await?;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(issue(&v), "DECIMALS_NOT_SUPPORTED");
    let r = c.post(format!("{b}/v2/checkout/orders")).bearer_auth(&tok).body("{").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn capture_needs_approval_and_happens_once() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let tok = token(&c, b).await?;
    let id = create(&c, b, &tok, "c-1").await?;
    let cap = format!("{b}/v2/checkout/orders/{id}/capture");

    let (s, v) = post_json(&c, cap.clone(), &tok, Some("cap-1"), None).await?;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(issue(&v), "ORDER_NOT_APPROVED");

    let a = knob(&c, b, &format!("/sim/approve/{id}"), json!({ "payer_id": "PAYER1" })).await?;
    assert_eq!(a["return_url"], format!("{RETURN_URL}?token={id}&PayerID=PAYER1"));
    let (_, o) = get_json(&c, format!("{b}/v2/checkout/orders/{id}"), &tok).await?;
    assert_eq!(o["status"], "APPROVED");

    // The same request id that was refused before approval may be used now.
    let (s, v) = post_json(&c, cap.clone(), &tok, Some("cap-1"), None).await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "COMPLETED");
    let capture = &v["purchase_units"][0]["payments"]["captures"][0];
    assert_eq!(capture["status"], "COMPLETED");
    assert_eq!(capture["amount"], json!({ "currency_code": "JPY", "value": "1500" }));
    assert_eq!(capture["custom_id"], "ord-1");
    let capture_id = capture["id"].as_str().unwrap().to_string();

    let (s, v2) = post_json(&c, cap.clone(), &tok, Some("cap-2"), None).await?;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(issue(&v2), "ORDER_ALREADY_CAPTURED");

    let (s, v3) = post_json(&c, cap.clone(), &tok, Some("cap-1"), None).await?;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v3, v, "replay of the successful capture");

    let (_, o) = get_json(&c, format!("{b}/v2/checkout/orders/{id}"), &tok).await?;
    assert_eq!(o["status"], "COMPLETED");
    assert_eq!(o["purchase_units"][0]["payments"]["captures"][0]["id"], capture_id.as_str());
    let (s, cv) = get_json(&c, format!("{b}/v2/payments/captures/{capture_id}"), &tok).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cv["supplementary_data"]["related_ids"]["order_id"], id.as_str());
    assert_eq!(state(&c, b).await?["captures_performed"], 1);

    let (s, _) =
        post_json(&c, format!("{b}/v2/checkout/orders/NOSUCHORDER/capture"), &tok, Some("cap-3"), None).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn declined_capture_sends_the_buyer_back() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let tok = token(&c, b).await?;
    let id = create(&c, b, &tok, "d-1").await?;
    let cap = format!("{b}/v2/checkout/orders/{id}/capture");
    knob(&c, b, &format!("/sim/approve/{id}"), json!({})).await?;
    knob(&c, b, "/sim/fail-next-capture", json!({})).await?;
    let (s, v) = post_json(&c, cap.clone(), &tok, Some("d-cap"), None).await?;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(issue(&v), "INSTRUMENT_DECLINED");
    let redirect = v["links"].as_array().unwrap().iter().find(|l| l["rel"] == "redirect").unwrap();
    assert_eq!(redirect["href"], format!("{b}/checkoutnow?token={id}"));
    // The buyer must approve again (another card).
    let (s, v) = post_json(&c, cap.clone(), &tok, Some("d-cap"), None).await?;
    assert_eq!((s, issue(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "ORDER_NOT_APPROVED"));
    knob(&c, b, &format!("/sim/approve/{id}"), json!({})).await?;
    let (s, _) = post_json(&c, cap, &tok, Some("d-cap"), None).await?;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(state(&c, b).await?["captures_performed"], 1);
    Ok(())
}

#[tokio::test]
async fn lost_capture_answer_is_recovered_by_retry() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let tok = token(&c, b).await?;
    let id = create(&c, b, &tok, "l-1").await?;
    let cap = format!("{b}/v2/checkout/orders/{id}/capture");
    knob(&c, b, &format!("/sim/approve/{id}"), json!({})).await?;
    knob(&c, b, "/sim/drop-next-capture-response", json!({})).await?;
    let (s, _) = post_json(&c, cap.clone(), &tok, Some("l-cap"), None).await?;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(state(&c, b).await?["captures_performed"], 1, "the capture happened");
    let (s, v) = post_json(&c, cap.clone(), &tok, Some("l-cap"), None).await?;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["status"], "COMPLETED");
    assert_eq!(state(&c, b).await?["captures_performed"], 1, "no second capture");
    Ok(())
}

#[tokio::test]
async fn approval_page_redirects_like_paypal() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let tok = token(&c, b).await?;
    let id = create(&c, b, &tok, "p-1").await?;

    let r = c.get(format!("{b}/checkoutnow?token={id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"pay\"") && html.contains("id=\"cancel\"") && html.contains("¥1,500"), "{html}");

    let r = c.post(format!("{b}/checkoutnow/cancel")).form(&[("token", id.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("{CANCEL_URL}?token={id}").as_str());

    let r = c
        .post(format!("{b}/checkoutnow/approve"))
        .form(&[("token", id.as_str()), ("outcome", "pay")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&format!("{RETURN_URL}?token={id}&PayerID=")), "{loc}");
    let (_, o) = get_json(&c, format!("{b}/v2/checkout/orders/{id}"), &tok).await?;
    assert_eq!(o["status"], "APPROVED");
    assert!(o["payer"]["payer_id"].as_str().is_some_and(|p| loc.ends_with(p)));

    // The "declined card" button: approval succeeds, the capture is declined.
    let id2 = create(&c, b, &tok, "p-2").await?;
    let r = c
        .post(format!("{b}/checkoutnow/approve"))
        .form(&[("token", id2.as_str()), ("outcome", "decline")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (s, v) = post_json(&c, format!("{b}/v2/checkout/orders/{id2}/capture"), &tok, Some("p2"), None).await?;
    assert_eq!((s, issue(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "INSTRUMENT_DECLINED"));

    let r = c.get(format!("{b}/checkoutnow?token=UNKNOWN")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn webhook_signatures_verify_only_unchanged_transmissions() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let tok = token(&c, b).await?;
    let (url, got) = receiver().await?;
    let id = create(&c, b, &tok, "w-1").await?;
    knob(&c, b, &format!("/sim/approve/{id}"), json!({})).await?;
    let (s, _) = post_json(&c, format!("{b}/v2/checkout/orders/{id}/capture"), &tok, Some("w-cap"), None).await?;
    assert_eq!(s, StatusCode::CREATED);

    let sent = knob(&c, b, "/sim/send-webhook", json!({ "order_id": id, "url": url })).await?;
    assert_eq!(sent["delivered_status"], 200);
    let received = wait_for(&got, 1).await?;
    let (headers, body) = &received[0];
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["event_type"], "PAYMENT.CAPTURE.COMPLETED");
    assert_eq!(event["resource"]["supplementary_data"]["related_ids"]["order_id"], id.as_str());
    assert_eq!(event["resource"]["amount"]["value"], "1500");
    let verify = format!("{b}/v1/notifications/verify-webhook-signature");

    let (s, v) =
        post_json(&c, verify.clone(), &tok, None, Some(verify_request(headers, "SIMWEBHOOK0001", event.clone())?))
            .await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["verification_status"], "SUCCESS");

    let mut tampered = event.clone();
    tampered["resource"]["amount"]["value"] = json!("150000");
    let (_, v) =
        post_json(&c, verify.clone(), &tok, None, Some(verify_request(headers, "SIMWEBHOOK0001", tampered)?)).await?;
    assert_eq!(v["verification_status"], "FAILURE");

    let (_, v) =
        post_json(&c, verify.clone(), &tok, None, Some(verify_request(headers, "OTHERWEBHOOK", event.clone())?))
            .await?;
    assert_eq!(v["verification_status"], "FAILURE");

    // tamper: true delivers a body that differs from the signed one.
    let sent = knob(&c, b, "/sim/send-webhook", json!({ "order_id": id, "url": url, "tamper": true })).await?;
    assert_eq!(sent["delivered_status"], 200);
    let received = wait_for(&got, 2).await?;
    let (h2, b2) = &received[1];
    let e2: Value = serde_json::from_slice(b2).unwrap();
    let (_, v) = post_json(&c, verify.clone(), &tok, None, Some(verify_request(h2, "SIMWEBHOOK0001", e2)?)).await?;
    assert_eq!(v["verification_status"], "FAILURE");

    // Without delivery the transmission is still returned; incomplete requests are 400.
    let built =
        knob(&c, b, "/sim/send-webhook", json!({ "order_id": id, "event_type": "CHECKOUT.ORDER.APPROVED" })).await?;
    assert!(built["delivered_status"].is_null());
    assert_eq!(built["event"]["resource_type"], "checkout-order");
    let (s, _) = post_json(&c, verify.clone(), &tok, None, Some(json!({ "webhook_id": "SIMWEBHOOK0001" }))).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let r = c.post(&verify).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn refunds_are_idempotent_and_bounded() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let tok = token(&c, b).await?;
    let id = create(&c, b, &tok, "r-1").await?;
    knob(&c, b, &format!("/sim/approve/{id}"), json!({})).await?;
    let (_, v) = post_json(&c, format!("{b}/v2/checkout/orders/{id}/capture"), &tok, Some("r-cap"), None).await?;
    let cid = v["purchase_units"][0]["payments"]["captures"][0]["id"].as_str().unwrap().to_string();
    let refund = format!("{b}/v2/payments/captures/{cid}/refund");
    let part = json!({ "amount": { "currency_code": "JPY", "value": "500" } });
    let (s, r1) = post_json(&c, refund.clone(), &tok, Some("ref-1"), Some(part.clone())).await?;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(r1["status"], "COMPLETED");
    let (_, r1b) = post_json(&c, refund.clone(), &tok, Some("ref-1"), Some(part)).await?;
    assert_eq!(r1b["id"], r1["id"]);
    let (s, v) = post_json(
        &c,
        refund.clone(),
        &tok,
        Some("ref-2"),
        Some(json!({ "amount": { "currency_code": "JPY", "value": "2000" } })),
    )
    .await?;
    assert_eq!((s, issue(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "REFUND_AMOUNT_EXCEEDED"));
    let (s, r2) = post_json(&c, refund.clone(), &tok, Some("ref-3"), None).await?;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(r2["amount"]["value"], "1000");
    let (s, v) = post_json(&c, refund, &tok, Some("ref-4"), None).await?;
    assert_eq!((s, issue(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "CAPTURE_FULLY_REFUNDED"));
    assert_eq!(state(&c, b).await?["refunds_performed"], 2);
    let (_, cv) = get_json(&c, format!("{b}/v2/payments/captures/{cid}"), &tok).await?;
    assert_eq!(cv["status"], "REFUNDED");
    Ok(())
}

#[tokio::test]
async fn events_are_pushed_to_the_webhook_url() -> Result<()> {
    let (url, got) = receiver().await?;
    let sim = start_sim(&["--webhook-url", &url])?;
    let c = http()?;
    let b = &sim.base;
    let tok = token(&c, b).await?;
    let id = create(&c, b, &tok, "a-1").await?;
    knob(&c, b, &format!("/sim/approve/{id}"), json!({})).await?;
    let (s, _) = post_json(&c, format!("{b}/v2/checkout/orders/{id}/capture"), &tok, Some("a-cap"), None).await?;
    assert_eq!(s, StatusCode::CREATED);
    let received = wait_for(&got, 2).await?;
    let types: Vec<String> = received
        .iter()
        .map(|(_, body)| serde_json::from_slice::<Value>(body).unwrap()["event_type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.contains(&"CHECKOUT.ORDER.APPROVED".to_string()), "{types:?}");
    assert!(types.contains(&"PAYMENT.CAPTURE.COMPLETED".to_string()), "{types:?}");
    Ok(())
}

// ------------------------------------------------------------ the backend's client

fn client_for(sim: &Sim) -> Result<paypal::PayPalClient> {
    Ok(paypal::PayPalClient::new(paypal::PayPalConfig {
        base_url: sim.base.clone(),
        return_url: RETURN_URL.into(),
        cancel_url: CANCEL_URL.into(),
        timeout_s: 2,
        ..Default::default()
    })?)
}

#[tokio::test]
async fn client_pays_once() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let pp = client_for(&sim)?;

    let o1 = pp.create_order(1500, "order-42", "create-order-42").await.unwrap();
    let o2 = pp.create_order(1500, "order-42", "create-order-42").await.unwrap();
    assert_eq!(o1, o2);
    assert_eq!(o1.status, paypal::OrderStatus::PayerActionRequired);
    assert_eq!(o1.approve_url, format!("{b}/checkoutnow?token={}", o1.id));
    assert_eq!(state(&c, b).await?["orders_created"], 1);

    let err = pp.capture(&o1.id, "capture-order-42").await.unwrap_err();
    assert!(matches!(err, paypal::PayPalError::NotApproved { .. }), "{err:?}");

    knob(&c, b, &format!("/sim/approve/{}", o1.id), json!({})).await?;
    let order = pp.get_order(&o1.id).await.unwrap();
    assert_eq!(order.status, paypal::OrderStatus::Approved);
    assert_eq!(order.amount_yen, Some(1500));
    assert_eq!(order.custom_id.as_deref(), Some("order-42"));

    let cap = pp.capture(&o1.id, "capture-order-42").await.unwrap();
    assert_eq!(cap.status, paypal::CaptureStatus::Completed);
    assert_eq!(cap.amount_yen, 1500);
    assert_eq!(cap.order_id, o1.id);
    assert_eq!(cap.custom_id.as_deref(), Some("order-42"));

    // Another request id (e.g. the webhook path or a second tab): ORDER_ALREADY_CAPTURED -> the same capture.
    let again = pp.capture(&o1.id, "capture-order-42-b").await.unwrap();
    assert_eq!(again, cap);
    assert_eq!(state(&c, b).await?["captures_performed"], 1);

    let order = pp.get_order(&o1.id).await.unwrap();
    assert_eq!(order.status, paypal::OrderStatus::Completed);
    assert_eq!(order.capture.as_ref(), Some(&cap));
    assert!(order.approve_url.is_none());

    let r1 = pp.refund(&cap.capture_id, 1500, "refund-order-42").await.unwrap();
    let r2 = pp.refund(&cap.capture_id, 1500, "refund-order-42").await.unwrap();
    assert_eq!(r1, r2);
    assert_eq!(r1.status, paypal::RefundStatus::Completed);
    assert_eq!(r1.amount_yen, Some(1500));
    let err = pp.refund(&cap.capture_id, 1500, "refund-order-42-b").await.unwrap_err();
    assert_eq!(err.issue(), Some("CAPTURE_FULLY_REFUNDED"), "{err:?}");

    let err = pp.get_order("NOSUCHORDER").await.unwrap_err();
    assert!(matches!(err, paypal::PayPalError::NotFound { .. }), "{err:?}");
    assert!(matches!(pp.create_order(0, "x", "y").await, Err(paypal::PayPalError::Invalid(_))));
    assert!(matches!(pp.capture("../x", "y").await, Err(paypal::PayPalError::Invalid(_))));
    Ok(())
}

#[tokio::test]
async fn client_tells_declined_from_unknown() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let pp = client_for(&sim)?;

    let o = pp.create_order(2000, "topup-7", "create-topup-7").await.unwrap();
    knob(&c, b, &format!("/sim/approve/{}", o.id), json!({})).await?;
    knob(&c, b, "/sim/fail-next-capture", json!({ "issue": "INSTRUMENT_DECLINED" })).await?;
    let err = pp.capture(&o.id, "capture-topup-7").await.unwrap_err();
    match &err {
        paypal::PayPalError::Declined { issue, retry_url, .. } => {
            assert_eq!(issue, "INSTRUMENT_DECLINED");
            assert_eq!(retry_url.as_deref(), Some(o.approve_url.as_str()));
        }
        other => panic!("expected Declined, got {other:?}"),
    }
    assert!(!err.is_unknown());

    // Approved again; the capture happens but its answer is lost (500).
    knob(&c, b, &format!("/sim/approve/{}", o.id), json!({})).await?;
    knob(&c, b, "/sim/drop-next-capture-response", json!({ "mode": "500" })).await?;
    let err = pp.capture(&o.id, "capture-topup-7").await.unwrap_err();
    assert!(err.is_unknown(), "{err:?}");
    let cap = pp.capture(&o.id, "capture-topup-7").await.unwrap();
    assert_eq!((cap.status.clone(), cap.amount_yen), (paypal::CaptureStatus::Completed, 2000));

    // Same again, answer later than the client waits (timeout_s = 2).
    let o2 = pp.create_order(900, "topup-8", "create-topup-8").await.unwrap();
    knob(&c, b, &format!("/sim/approve/{}", o2.id), json!({})).await?;
    knob(&c, b, "/sim/drop-next-capture-response", json!({ "mode": "delay", "delay_ms": 4000 })).await?;
    let err = pp.capture(&o2.id, "capture-topup-8").await.unwrap_err();
    assert!(err.is_unknown(), "{err:?}");
    // Asking with a new request id also finds the one capture.
    let cap2 = pp.capture(&o2.id, "capture-topup-8-retry").await.unwrap();
    assert_eq!(cap2.amount_yen, 900);
    assert_eq!(state(&c, b).await?["captures_performed"], 2);
    Ok(())
}

#[tokio::test]
async fn client_verifies_webhooks() -> Result<()> {
    let sim = start_sim(&[])?;
    let c = http()?;
    let b = &sim.base;
    let pp = client_for(&sim)?;
    let (url, got) = receiver().await?;

    let o = pp.create_order(1500, "order-9", "create-order-9").await.unwrap();
    knob(&c, b, &format!("/sim/approve/{}", o.id), json!({})).await?;
    let cap = pp.capture(&o.id, "capture-order-9").await.unwrap();
    knob(&c, b, "/sim/send-webhook", json!({ "order_id": o.id, "url": url })).await?;
    let received = wait_for(&got, 1).await?;
    let (headers, body) = &received[0];

    assert!(pp.verify_webhook(headers, body).await.unwrap());
    let event = paypal::parse_webhook_event(body).unwrap();
    assert_eq!(event.event_type, "PAYMENT.CAPTURE.COMPLETED");
    assert_eq!(event.order_id.as_deref(), Some(o.id.as_str()));
    assert_eq!(event.capture_id.as_deref(), Some(cap.capture_id.as_str()));
    assert_eq!(event.custom_id.as_deref(), Some("order-9"));
    assert_eq!(event.amount_yen, Some(1500));
    assert_eq!(event.status.as_deref(), Some("COMPLETED"));

    let text = String::from_utf8(body.to_vec()).unwrap();
    let tampered = text.replace("\"value\":\"1500\"", "\"value\":\"15\"");
    assert_ne!(tampered, text);
    assert!(!pp.verify_webhook(headers, tampered.as_bytes()).await.unwrap());
    assert!(!pp.verify_webhook(&HeaderMap::new(), body).await.unwrap());
    assert!(!pp.verify_webhook(headers, b"not json").await.unwrap());

    // A client configured with another webhook id rejects it.
    let other = paypal::PayPalClient::new(paypal::PayPalConfig {
        base_url: sim.base.clone(),
        webhook_id: "ANOTHERWEBHOOK".into(),
        ..Default::default()
    })
    .unwrap();
    assert!(!other.verify_webhook(headers, body).await.unwrap());

    // A refund event names the capture through its "up" link.
    pp.refund(&cap.capture_id, 500, "refund-order-9").await.unwrap();
    knob(&c, b, "/sim/send-webhook", json!({ "order_id": o.id, "url": url, "event_type": "PAYMENT.CAPTURE.REFUNDED" }))
        .await?;
    let received = wait_for(&got, 2).await?;
    let (h2, b2) = &received[1];
    assert!(pp.verify_webhook(h2, b2).await.unwrap());
    let refund = paypal::parse_webhook_event(b2).unwrap();
    assert_eq!(refund.resource_type, "refund");
    assert_eq!(refund.capture_id.as_deref(), Some(cap.capture_id.as_str()));
    assert_eq!(refund.amount_yen, Some(500));
    Ok(())
}

#[tokio::test]
async fn client_refreshes_tokens_and_reports_bad_credentials() -> Result<()> {
    let sim = start_sim(&["--token-ttl", "1"])?;
    let c = http()?;
    let b = &sim.base;
    let pp = client_for(&sim)?;
    let o = pp.create_order(1500, "order-1", "create-1").await.unwrap();
    // Tokens revoked under the client: one 401, a new token, success.
    knob(&c, b, "/sim/expire-tokens", json!({})).await?;
    assert_eq!(pp.get_order(&o.id).await.unwrap().id, o.id);
    // Tokens that expire (ttl 1 s): refreshed before use.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(pp.get_order(&o.id).await.unwrap().id, o.id);

    let wrong = paypal::PayPalClient::new(paypal::PayPalConfig {
        base_url: sim.base.clone(),
        client_secret: "wrong".into(),
        ..Default::default()
    })
    .unwrap();
    let err = wrong.get_order(&o.id).await.unwrap_err();
    assert!(matches!(err, paypal::PayPalError::Auth { status: 401 }), "{err:?}");

    // Nobody listening: unknown (ask again), not a refusal.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone = paypal::PayPalClient::new(paypal::PayPalConfig {
        base_url: format!("http://127.0.0.1:{port}"),
        timeout_s: 2,
        ..Default::default()
    })
    .unwrap();
    let err = gone.create_order(1500, "x", "y").await.unwrap_err();
    assert!(err.is_unknown(), "{err:?}");

    // The secret from a file (as deployments keep it).
    let secret_file = std::env::temp_dir().join(format!("shomei-paypal-secret-{}", std::process::id()));
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    let from_file = paypal::PayPalClient::new(paypal::PayPalConfig {
        base_url: sim.base.clone(),
        client_secret: String::new(),
        client_secret_file: Some(secret_file.clone()),
        ..Default::default()
    });
    let _ = std::fs::remove_file(&secret_file);
    assert_eq!(from_file.unwrap().get_order(&o.id).await.unwrap().id, o.id);

    let cfg = paypal::PayPalConfig { client_secret: "s3cret-value".into(), ..Default::default() };
    assert!(!format!("{cfg:?}").contains("s3cret-value"));
    assert!(paypal::PayPalConfig { base_url: "ftp://x".into(), ..Default::default() }.validate().is_err());
    Ok(())
}
