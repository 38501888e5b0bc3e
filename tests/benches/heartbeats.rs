//! Backend heartbeat throughput: 1,000 enrolled stations, 64 clients
//! sending heartbeats as fast as the backend answers for 10 s, through real
//! HTTP to the backend and its SQLite file. Prints heartbeats per second and
//! latency percentiles. Targets: >= 5,000/s, p99 < 50 ms. `deploy/bench`.

#[path = "../e2e/harness.rs"]
mod harness;

use harness::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STATIONS: usize = 1000;
const CLIENTS: usize = 64;
const SECONDS: u64 = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let b = Backend::start(None).await?;
    // 1,000 stations: enrolment codes straight from the backend's own function, enrolled over HTTP
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", b.dir.path().join("backend.sqlite").display())).await?;
    let http = reqwest::Client::new();
    let mut tokens = Vec::with_capacity(STATIONS);
    for i in 0..STATIONS {
        let (_, code) = shomei_backend::stations::create_enrolment(&pool, &format!("Station {i:04}"), None, 3600).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let r: serde_json::Value = http.post(format!("{}/api/station/v1/enroll", b.url)).json(&serde_json::json!({ "code": code, "version": "bench" })).send().await?.json().await?;
        tokens.push(r["token"].as_str().unwrap_or_default().to_string());
    }
    let tokens = Arc::new(tokens);
    let url = Arc::new(format!("{}/api/station/v1/heartbeat", b.url));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (tokens, url, stop) = (tokens.clone(), url.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::json!({ "version": "bench", "uptime_s": 60, "reader_present": true, "outbox_len": 0,
                    "station_time": 0, "jobs_printed": i, "disk_free_mb": 1000,
                    "printer": { "reachable": true, "state": "idle", "reasons": ["none"], "message": "",
                                 "markers": [{ "name": "Black Toner", "kind": "toner", "level": 60, "low": 10 }], "media_ready": ["iso_a4_210x297mm"] } });
                let t0 = Instant::now();
                let ok = http.post(url.as_str()).bearer_auth(&tokens[i % tokens.len()]).json(&body).send().await.map(|r| r.status().is_success()).unwrap_or(false);
                lat.push(t0.elapsed());
                if !ok {
                    errors += 1;
                }
                i += CLIENTS;
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    // wait for the last flush, then check the stored state
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stations WHERE last_seen IS NOT NULL").fetch_one(&pool).await?;
    println!("backend heartbeats: {STATIONS} stations, {CLIENTS} concurrent clients, {elapsed:.1} s");
    println!("  {} heartbeats, {:.0} per second, {errors} errors", all.len(), all.len() as f64 / elapsed);
    println!("  latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms", pct(0.5), pct(0.9), pct(0.99), pct(1.0));
    println!("  stations with a stored heartbeat: {stored} of {STATIONS}");
    Ok(())
}
