//! Backend heartbeat throughput: 1,000 enrolled stations, 64 clients
//! sending heartbeats as fast as the backend answers for 10 s, through real
//! HTTP: one backend on SQLite, then two backends on one PostgreSQL (the
//! clients spread over both). Targets: >= 5,000/s, p99 < 50 ms, either engine.
//! Run with `deploy/bench`.
//!
//! The backend runs in this process (on a runtime with as many threads as
//! the machine has cores); the 64 clients run in a separate process (this
//! binary started again with `SHOMEI_BENCH_ROLE=heartbeat-load`), so the
//! figure is the server's. Only answered-2xx heartbeats count as throughput;
//! failures (HTTP status or transport error) are counted apart and printed.
//! Both processes share the machine's cores: the CPU each used is printed.

#[path = "../e2e/harness.rs"]
mod harness;
#[path = "common/mod.rs"]
mod common;

use common::*;
use harness::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STATIONS: usize = 1000;
const CLIENTS: usize = 64;
const SECONDS: u64 = 10;
const TARGET_PER_S: f64 = 5000.0;
const TARGET_P99_MS: f64 = 50.0;

const LOAD_ROLE: &str = "heartbeat-load";
const URL_ENV: &str = "SHOMEI_BENCH_URL";
const TOKENS_ENV: &str = "SHOMEI_BENCH_TOKENS";
const CLIENTS_ENV: &str = "SHOMEI_BENCH_CLIENTS";
const SECONDS_ENV: &str = "SHOMEI_BENCH_SECONDS";
/// Worker threads of the load generator (default 1: it should use little CPU).
const LOAD_THREADS_ENV: &str = "SHOMEI_BENCH_LOAD_THREADS";

fn main() -> anyhow::Result<()> {
    if role().as_deref() == Some(LOAD_ROLE) {
        let threads = env_or(LOAD_THREADS_ENV, 1usize).max(1);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
        return rt.block_on(load());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cores()).enable_all().build()?;
    rt.block_on(bench())
}

// ------------------------------------------------------------------ the load generator (child process)

/// CLIENTS tasks, one HTTP connection each, heartbeating round-robin over the
/// stations' tokens for SECONDS; prints one JSON line with what came back.
async fn load() -> anyhow::Result<()> {
    // (with several backends, client c talks to backend c mod n, as behind a proxy)
    let urls: Arc<Vec<String>> = Arc::new(env(URL_ENV)?.split(',').map(|u| format!("{u}/api/station/v1/heartbeat")).collect());
    let tokens: Arc<Vec<String>> = Arc::new(std::fs::read_to_string(env(TOKENS_ENV)?)?.lines().map(str::to_string).filter(|t| !t.is_empty()).collect());
    anyhow::ensure!(!tokens.is_empty(), "no station tokens");
    let clients = env_or(CLIENTS_ENV, CLIENTS);
    let seconds = env_or(SECONDS_ENV, SECONDS);
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_seconds("self");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (tokens, url, stop) = (tokens.clone(), urls[c % urls.len()].clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
            let mut ok_lat = Vec::new();
            let mut failed: BTreeMap<String, u64> = BTreeMap::new();
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::json!({ "version": "bench", "uptime_s": 60, "reader_present": true, "outbox_len": 0,
                    "station_time": 0, "jobs_printed": i, "disk_free_mb": 1000,
                    "printer": { "reachable": true, "state": "idle", "reasons": ["none"], "message": "",
                                 "markers": [{ "name": "Black Toner", "kind": "toner", "level": 60, "low": 10 }], "media_ready": ["iso_a4_210x297mm"] } });
                let t0 = Instant::now();
                let outcome = match http.post(url.as_str()).bearer_auth(&tokens[i % tokens.len()]).json(&body).send().await {
                    // the body is read whole: an answer counts once it has fully arrived
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(_) if status.is_success() => None,
                            Ok(_) => Some(format!("HTTP {}", status.as_u16())),
                            Err(e) => Some(format!("body: {}", if e.is_timeout() { "timeout" } else { "error" })),
                        }
                    }
                    Err(e) => Some(if e.is_timeout() { "timeout".into() } else if e.is_connect() { "connect".into() } else { "transport".into() }),
                };
                let took = t0.elapsed();
                match outcome {
                    None => ok_lat.push(took),
                    Some(kind) => *failed.entry(kind).or_default() += 1,
                }
                i += clients;
            }
            (ok_lat, failed)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ok = Vec::new();
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let (lat, f) = t.await?;
        ok.extend(lat);
        for (k, n) in f {
            *failed.entry(k).or_default() += n;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n_ok = ok.len();
    println!(
        "{}",
        serde_json::json!({
            "ok": n_ok, "failed": failed, "elapsed_s": elapsed, "clients": clients,
            "latency_ok": Stats::of(ok).to_json(), "cpu_s": cpu_seconds("self") - cpu0,
        })
    );
    Ok(())
}

// ------------------------------------------------------------------ the bench (server process)

/// The same run on the embedded default and on the platform's setup, side by side.
async fn bench() -> anyhow::Result<()> {
    each_setup(run).await
}

async fn run(engine: shomei_backend::store::Engine, n_backends: usize) -> anyhow::Result<()> {
    let (b, _others, urls) = Backend::start_service(engine, n_backends).await?;
    // 1,000 stations: enrolment codes straight from the backend's own function, enrolled over HTTP
    let pool = shomei_backend::store::connect(&b.database_url).await?;
    let http = reqwest::Client::new();
    let mut tokens = Vec::with_capacity(STATIONS);
    for i in 0..STATIONS {
        let (_, code) = shomei_backend::stations::create_enrolment(&pool, 1, &format!("Station {i:04}"), None, 3600).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let r: serde_json::Value = http.post(format!("{}/api/station/v1/enroll", b.url)).json(&serde_json::json!({ "code": code, "version": "bench" })).send().await?.json().await?;
        let token = r["token"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(!token.is_empty(), "station {i} not enrolled: {r}");
        tokens.push(token);
    }
    let work = tempfile::tempdir()?;
    let tokens_file = work.path().join("tokens");
    std::fs::write(&tokens_file, tokens.join("\n"))?;

    let server_cpu0 = cpu_seconds("self");
    let wall = Instant::now();
    let (r, status) = run_load_process(
        LOAD_ROLE,
        &[
            (URL_ENV, urls.join(",")),
            (TOKENS_ENV, tokens_file.display().to_string()),
            (CLIENTS_ENV, CLIENTS.to_string()),
            (SECONDS_ENV, SECONDS.to_string()),
        ],
    )
    .await?;
    let wall = wall.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds("self") - server_cpu0;
    anyhow::ensure!(status.success(), "the load generator failed: {status} {r}");

    let ok = r["ok"].as_u64().unwrap_or(0);
    let elapsed = r["elapsed_s"].as_f64().unwrap_or(f64::NAN);
    let lat = Stats::from_json(&r["latency_ok"]);
    let failed: BTreeMap<String, u64> = r["failed"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()).unwrap_or_default();
    let n_failed: u64 = failed.values().sum();
    let per_s = ok as f64 / elapsed;

    // wait for the last flush, then check the stored state
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stations WHERE last_seen IS NOT NULL").fetch_one(&pool).await?;

    println!(
        "backend heartbeats on {}, {n_backends} backend process(es): {STATIONS} stations, {CLIENTS} concurrent clients in a separate process, {elapsed:.1} s, {} cores",
        if engine == shomei_backend::store::Engine::Postgres { "PostgreSQL" } else { "SQLite" },
        cores()
    );
    println!(
        "  {ok} heartbeats answered 2xx: {per_s:.0} per second   (target >= {TARGET_PER_S:.0}/s: {})",
        met(per_s >= TARGET_PER_S)
    );
    println!(
        "  failures (not counted above): {n_failed}{}",
        if failed.is_empty() { String::new() } else { format!("  {}", failed.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")) }
    );
    println!("  latency of the 2xx answers: {}", lat.line());
    println!("    p99 {:.2} ms   (target < {TARGET_P99_MS} ms: {})", ms(lat.p99), met(ms(lat.p99) < TARGET_P99_MS));
    println!(
        "  CPU over the run ({wall:.1} s wall): server process {server_cpu:.1} s ({:.2} cores), load generator {:.1} s ({:.2} cores)",
        server_cpu / wall,
        r["cpu_s"].as_f64().unwrap_or(0.0),
        r["cpu_s"].as_f64().unwrap_or(0.0) / elapsed
    );
    println!("  stations with a stored heartbeat: {stored} of {STATIONS}");
    Ok(())
}
