//! `shomei-storeprint [--listen ADDR] [--api-key K] [--secret S]`: a local
//! simulator of the convenience-store network-print API shomei assumes
//! (docs/storeprint-api.md): documents registered with a bearer key
//! (idempotent by key) get a user number and a print reservation number;
//! withdrawing one makes its numbers stop working.
//!
//! Knobs (what a user at a store's printer and an outage would do):
//! - `POST /sim/print {"number", "notice_url", "notice_id"?, "tamper"?}`: the
//!   user types a user number or reservation number at a store printer: the
//!   document prints once (the answer carries its bytes as `pdf_base64`) and a
//!   signed print notice goes to `notice_url` (`delivered_status` in the answer).
//! - `POST /sim/outage {"down": bool}`: while down, the API answers 503.
//! - `GET /sim/state`: what the service saw: `refused` (API calls answered
//!   503 during outages, i.e. a client's tries) and `documents` (registered).
//!
//! Prints `READY listening on http://ADDR` once it accepts connections.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use clap::Parser;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct Doc {
    file_id: String,
    pdf: Vec<u8>,
    pages: i64,
    user_number: String,
    reservation_number: String,
    expires_on: String,
    status: &'static str,
}

#[derive(Default)]
struct Sim {
    api_key: String,
    secret: String,
    down: AtomicBool,
    /// API calls refused during an outage.
    refused: AtomicU64,
    docs: Mutex<Vec<Doc>>,
    by_key: Mutex<HashMap<String, String>>,
}

type Answer = (StatusCode, Json<Value>);

fn refuse(status: StatusCode, error: &str, message: &str) -> Answer {
    (status, Json(json!({ "error": error, "message": message })))
}

impl Sim {
    /// The API's gate: an outage, then the bearer key.
    fn gate(&self, headers: &HeaderMap) -> Option<Answer> {
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Some(refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "maintenance"));
        }
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        (auth != format!("Bearer {}", self.api_key)).then(|| refuse(StatusCode::UNAUTHORIZED, "unauthorized", "bad API key"))
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn answer(d: &Doc) -> Value {
    json!({ "file_id": d.file_id, "user_number": d.user_number, "reservation_number": d.reservation_number,
            "expires_on": d.expires_on, "pages": d.pages, "status": d.status })
}

fn random(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())])).collect()
}

async fn register(State(sim): State<Arc<Sim>>, headers: HeaderMap, Json(req): Json<Value>) -> Answer {
    if let Some(refused) = sim.gate(&headers) {
        return refused;
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut docs = sim.docs.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(id) = sim.by_key.lock().unwrap_or_else(|p| p.into_inner()).get(&key).filter(|_| !key.is_empty()) {
        if let Some(d) = docs.iter().find(|d| &d.file_id == id) {
            return (StatusCode::CREATED, Json(answer(d)));
        }
    }
    let pdf = match base64::engine::general_purpose::STANDARD.decode(req["content_base64"].as_str().unwrap_or("")) {
        Ok(b) if b.starts_with(b"%PDF-") => b,
        _ => return refuse(StatusCode::BAD_REQUEST, "bad_request", "content_base64 is not a PDF"),
    };
    let pages = req["pages"].as_i64().unwrap_or(0);
    let expires_on = req["expires_on"].as_str().unwrap_or("").to_string();
    if !(1..=100).contains(&pages) || expires_on.len() != 10 || req["reference"].as_str().unwrap_or("").is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "reference, pages (1-100) and expires_on are required");
    }
    let doc = Doc {
        file_id: format!("F{}", random(b"0123456789abcdef", 16)),
        pdf,
        pages,
        user_number: random(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 10),
        reservation_number: random(b"0123456789", 8),
        expires_on,
        status: "registered",
    };
    let out = answer(&doc);
    if !key.is_empty() {
        sim.by_key.lock().unwrap_or_else(|p| p.into_inner()).insert(key, doc.file_id.clone());
    }
    docs.push(doc);
    (StatusCode::CREATED, Json(out))
}

async fn withdraw(State(sim): State<Arc<Sim>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    if let Some(refused) = sim.gate(&headers) {
        return refused;
    }
    let mut docs = sim.docs.lock().unwrap_or_else(|p| p.into_inner());
    match docs.iter_mut().find(|d| d.file_id == id) {
        None => refuse(StatusCode::NOT_FOUND, "not_found", "no such document"),
        Some(d) if d.status == "printed" => refuse(StatusCode::CONFLICT, "printed", "already printed"),
        Some(d) => {
            d.status = "withdrawn";
            (StatusCode::OK, Json(answer(d)))
        }
    }
}

async fn status(State(sim): State<Arc<Sim>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    if let Some(refused) = sim.gate(&headers) {
        return refused;
    }
    let docs = sim.docs.lock().unwrap_or_else(|p| p.into_inner());
    match docs.iter().find(|d| d.file_id == id) {
        Some(d) => (StatusCode::OK, Json(answer(d))),
        None => refuse(StatusCode::NOT_FOUND, "not_found", "no such document"),
    }
}

async fn print(State(sim): State<Arc<Sim>>, Json(req): Json<Value>) -> Json<Value> {
    let number = req["number"].as_str().unwrap_or("").trim().to_uppercase();
    let doc = {
        let mut docs = sim.docs.lock().unwrap_or_else(|p| p.into_inner());
        match docs.iter_mut().find(|d| d.user_number == number || d.reservation_number == number) {
            None => return Json(json!({ "result": "unknown_number" })),
            Some(d) if d.status != "registered" => return Json(json!({ "result": "refused", "status": d.status })),
            Some(d) => {
                d.status = "printed";
                d.clone()
            }
        }
    };
    let notice_id = req["notice_id"].as_str().map(str::to_string).unwrap_or_else(|| format!("P-{}", random(b"0123456789", 8)));
    let body = json!({ "notice_id": notice_id, "file_id": doc.file_id, "event": "printed", "pages": doc.pages,
                       "printed_at": chrono::Utc::now().to_rfc3339() })
    .to_string();
    let signature = sign(&sim.secret, body.as_bytes());
    let sent = if req["tamper"].as_bool().unwrap_or(false) { body.replace("printed", "PRINTED") } else { body };
    let url = req["notice_url"].as_str().unwrap_or("");
    let delivered = match reqwest::Client::new().post(url).header("content-type", "application/json").header("x-storeprint-signature", signature).body(sent).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    Json(json!({ "result": "printed", "pages": doc.pages, "pdf_base64": base64::engine::general_purpose::STANDARD.encode(&doc.pdf),
                 "notice_id": notice_id, "delivered_status": delivered }))
}

async fn outage(State(sim): State<Arc<Sim>>, Json(req): Json<Value>) -> Json<Value> {
    let down = req["down"].as_bool().unwrap_or(false);
    sim.down.store(down, Ordering::SeqCst);
    Json(json!({ "down": down }))
}

async fn state(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let documents = sim.docs.lock().unwrap_or_else(|p| p.into_inner()).len();
    Json(json!({ "refused": sim.refused.load(Ordering::SeqCst), "documents": documents }))
}

#[derive(Parser)]
#[command(
    name = "shomei-storeprint",
    version,
    about = "Local simulator of the convenience stores' network-print API (document registration, user and reservation numbers, print notices)",
    args_override_self = true
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the READY line tells which)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8096")]
    listen: String,
    /// Bearer API key the API accepts
    #[arg(long, value_name = "KEY", default_value = "shomei-storeprint-key")]
    api_key: String,
    /// HMAC secret for print notice signatures
    #[arg(long, value_name = "SECRET", default_value = "shomei-storeprint-secret")]
    secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { listen, api_key, secret } = Args::parse();
    let sim = Arc::new(Sim { api_key, secret, ..Default::default() });
    let app = Router::new()
        .route("/v1/documents", post(register))
        .route("/v1/documents/{id}", delete(withdraw).get(status))
        .route("/sim/print", post(print))
        .route("/sim/outage", post(outage))
        .route("/sim/state", get(state))
        .layer(axum::extract::DefaultBodyLimit::max(40 * 1024 * 1024))
        .with_state(sim);
    shomei_sim::serve_ready(&listen, app).await
}
