//! `shomei-smartpit [--listen ADDR] [--secret S]`: a local simulator of the
//! Smart Pit API shomei assumes (docs/smartpit-api.md): issuing payment
//! numbers (idempotent by key, HMAC-signed requests) and, on a knob, the
//! payment notice a convenience store's cash payment would send.
//!
//! Knob: `POST /sim/pay {"payment_number", "url", "notice_id"?, "amount"?, "tamper"?}`
//! sends a signed notice to `url` and answers `{"delivered_status", "body"}`.
//! Prints `READY listening on http://ADDR` once it accepts connections.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Sim {
    secret: String,
    by_key: Mutex<HashMap<String, Value>>,
    payments: Mutex<HashMap<String, i64>>,
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn create(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: axum::body::Bytes) -> (StatusCode, Json<Value>) {
    let sig = headers.get("x-smartpit-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if sig != sign(&sim.secret, &body) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthorized", "message": "bad signature"})));
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "bad_request", "message": "not JSON"})));
    };
    let amount = req["amount"].as_i64().unwrap_or(0);
    if amount <= 0 || req["reference"].as_str().unwrap_or("").is_empty() || req["due"].as_str().unwrap_or("").len() != 10 {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "bad_request", "message": "amount, reference and due are required"})));
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut by_key = sim.by_key.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(prev) = by_key.get(&key).filter(|_| !key.is_empty()) {
        return (StatusCode::CREATED, Json(prev.clone()));
    }
    let number: String = (0..13).map(|_| char::from(b'0' + rand::thread_rng().gen_range(0..10u8))).collect();
    let answer = json!({"payment_number": number, "due": req["due"]});
    sim.payments.lock().unwrap_or_else(|p| p.into_inner()).insert(number, amount);
    if !key.is_empty() {
        by_key.insert(key, answer.clone());
    }
    (StatusCode::CREATED, Json(answer))
}

async fn pay(State(sim): State<Arc<Sim>>, Json(req): Json<Value>) -> Json<Value> {
    let number = req["payment_number"].as_str().unwrap_or("").to_string();
    let known = sim.payments.lock().unwrap_or_else(|p| p.into_inner()).get(&number).copied();
    let amount = req["amount"].as_i64().or(known).unwrap_or(0);
    let notice_id = req["notice_id"].as_str().map(str::to_string).unwrap_or_else(|| format!("N-{}", rand::thread_rng().gen_range(100000..999999)));
    let body = json!({"notice_id": notice_id, "payment_number": number, "amount": amount, "paid_at": chrono::Utc::now().to_rfc3339()}).to_string();
    let signature = sign(&sim.secret, body.as_bytes());
    let sent = if req["tamper"].as_bool().unwrap_or(false) { body.replace(&format!("\"amount\":{amount}"), "\"amount\":1") } else { body.clone() };
    let url = req["url"].as_str().unwrap_or("");
    let status = match reqwest::Client::new().post(url).header("content-type", "application/json").header("x-smartpit-signature", signature).body(sent).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    Json(json!({"delivered_status": status, "body": body, "notice_id": notice_id}))
}

#[derive(Parser)]
#[command(
    name = "shomei-smartpit",
    version,
    about = "Local simulator of the Smart Pit API (convenience-store cash payment numbers and payment notices)",
    args_override_self = true
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the READY line tells which)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8098")]
    listen: String,
    /// HMAC secret for request signatures and payment notices
    #[arg(long, value_name = "SECRET", default_value = "shomei-smartpit-secret")]
    secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { listen, secret } = Args::parse();
    let sim = Arc::new(Sim { secret, ..Default::default() });
    let app = Router::new().route("/v1/payments", post(create)).route("/sim/pay", post(pay)).with_state(sim);
    shomei_sim::serve_ready(&listen, app).await
}
