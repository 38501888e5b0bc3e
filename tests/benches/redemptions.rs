//! Backend redemption throughput: N simulated stations at once, each
//! redeeming print numbers as a station does — reserve -> charge (IC card)
//! -> fetch the document -> report printed — through real HTTP: one backend
//! on SQLite, then two backends on one PostgreSQL (stations spread over
//! both), side by side. Prints redemptions per second, p50/p99 per redemption
//! and per call, failures counted apart. Targets (printed beside the figures,
//! not asserted): >= 2,000 redemptions/s on 2 cores, p99 < 50 ms per
//! redemption. On SQLite it prints how many calls the station desk ran per
//! commit (from the backend's metrics). Run with `deploy/bench`.
//!
//! Orders: one is placed through the portal as the demo graduate (login,
//! render with the seal, sealed PDF stored); the others are copies of it
//! written straight into the database before the run (each its own id,
//! print number and its PDF sealed again for that id, as `orders::place`
//! stores it), since placing thousands through the portal would take
//! minutes of Argon2 and rendering. Each station pays with its own card
//! (a copy of the demo card, topped up), enrolled through the enrolment-code
//! API as staff and stations do.
//!
//! The backend runs in this process on as many threads as the machine has
//! cores; the stations run in a separate process (this binary started again
//! with `SHOMEI_BENCH_ROLE=redeem-load`), so that the figure is the server's.
//! `SHOMEI_BENCH_STATIONS` (default 32) and `SHOMEI_BENCH_REDEMPTIONS`
//! (default 4000, after a warm-up of 5 per station) change the run.

#[path = "../e2e/harness.rs"]
mod harness;
#[path = "common/mod.rs"]
mod common;

use common::*;
use harness::*;
use shomei_shared::PrintNumber;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STATIONS: usize = 32;
const REDEMPTIONS: usize = 4000;
const WARMUP_PER_STATION: usize = 5;
const TARGET_PER_S: f64 = 2000.0;
const TARGET_CORES: usize = 2;
const TARGET_P99_MS: f64 = 50.0;

const LOAD_ROLE: &str = "redeem-load";
const URL_ENV: &str = "SHOMEI_BENCH_URL";
/// A file: one line per station, "token card_uid".
const STATIONS_FILE_ENV: &str = "SHOMEI_BENCH_STATIONS_FILE";
/// A file: one print number per line, the warm-up's first.
const NUMBERS_FILE_ENV: &str = "SHOMEI_BENCH_NUMBERS_FILE";
const WARMUP_ENV: &str = "SHOMEI_BENCH_WARMUP";
const STATIONS_ENV: &str = "SHOMEI_BENCH_STATIONS";
const REDEMPTIONS_ENV: &str = "SHOMEI_BENCH_REDEMPTIONS";
/// Worker threads of the load generator (default: half the cores, at least 1).
const LOAD_THREADS_ENV: &str = "SHOMEI_BENCH_LOAD_THREADS";
/// On PostgreSQL: the database, whose own work over the measured run the load process reads.
const DATABASE_ENV: &str = "SHOMEI_BENCH_DATABASE_URL";

fn main() -> anyhow::Result<()> {
    // PostgreSQL servers started by this bench count their statements
    harness::TRACK_STATEMENTS.store(true, Ordering::Relaxed);
    if role().as_deref() == Some(LOAD_ROLE) {
        let threads = env_or(LOAD_THREADS_ENV, (cores() / 2).max(1)).max(1);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
        return rt.block_on(load());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cores()).enable_all().build()?;
    rt.block_on(bench())
}

// ------------------------------------------------------------------ the stations (child process)

const STEPS: [&str; 4] = ["reserve", "charge", "document", "report"];

#[derive(Default)]
struct Tally {
    redemption: Vec<Duration>,
    steps: [Vec<Duration>; 4],
    failed: BTreeMap<String, u64>,
    document_bytes: u64,
}

/// What one call came back with: its time, and its status and JSON (or the PDF's length).
async fn call(rb: reqwest::RequestBuilder, pdf: bool) -> (Duration, Result<(u16, serde_json::Value, usize), String>) {
    let t0 = Instant::now();
    let out = exchange(rb, pdf).await;
    (t0.elapsed(), out)
}

async fn exchange(rb: reqwest::RequestBuilder, pdf: bool) -> Result<(u16, serde_json::Value, usize), String> {
    let r = rb.send().await.map_err(|e| if e.is_timeout() { "timeout".to_string() } else if e.is_connect() { "connect".into() } else { "transport".into() })?;
    let status = r.status().as_u16();
    // the body is read whole: a call is over once its answer has fully arrived
    let bytes = r.bytes().await.map_err(|_| "body".to_string())?;
    if pdf && status == 200 {
        if !bytes.starts_with(b"%PDF") {
            return Err("document is not a PDF".to_string());
        }
        return Ok((status, serde_json::Value::Null, bytes.len()));
    }
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null), bytes.len()))
}

/// One redemption as a station does it; Err(which step and why).
async fn redeem(http: &reqwest::Client, base: &str, token: &str, card: &str, number: &str, tally: &mut Tally) -> Result<(), String> {
    let fail = |step: &str, what: String| format!("{step}: {what}");
    let status_of = |r: &Result<(u16, serde_json::Value, usize), String>, step: &str| -> Result<(serde_json::Value, usize), String> {
        match r {
            Ok((200, v, n)) => Ok((v.clone(), *n)),
            Ok((s, v, _)) => Err(fail(step, format!("HTTP {s} {}", v["code"].as_str().unwrap_or("")))),
            Err(e) => Err(fail(step, e.clone())),
        }
    };
    // reserve
    let (t, r) = call(http.post(format!("{base}/reservations")).bearer_auth(token).json(&serde_json::json!({ "print_number": number })), false).await;
    let (v, _) = status_of(&r, STEPS[0])?;
    tally.steps[0].push(t);
    let id = v["reservation_id"].as_i64().ok_or_else(|| fail(STEPS[0], "no reservation_id".into()))?;
    // charge (the order is a card order)
    let body = serde_json::json!({ "card_uid": card, "idempotency_key": format!("bench-charge-{id}") });
    let (t, r) = call(http.post(format!("{base}/reservations/{id}/charge")).bearer_auth(token).json(&body), false).await;
    status_of(&r, STEPS[1])?;
    tally.steps[1].push(t);
    // document
    let (t, r) = call(http.get(format!("{base}/reservations/{id}/document")).bearer_auth(token), true).await;
    let (_, n) = status_of(&r, STEPS[2])?;
    tally.steps[2].push(t);
    tally.document_bytes += n as u64;
    // report printed
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let body = serde_json::json!({ "idempotency_key": format!("bench-report-{id}"), "outcome": { "kind": "printed" }, "ipp_job_id": 1, "at": at, "impressions": 1 });
    let (t, r) = call(http.post(format!("{base}/reservations/{id}/report")).bearer_auth(token).json(&body), false).await;
    let (v, _) = status_of(&r, STEPS[3])?;
    tally.steps[3].push(t);
    if v["order_status"] != "printed" {
        return Err(fail(STEPS[3], format!("order is {}", v["order_status"])));
    }
    Ok(())
}

/// The floor the HTTP layer sets: one round of four authenticated calls that
/// touch no order (heartbeats, kept in memory), as a redemption makes four.
async fn floor_round(http: &reqwest::Client, base: &str, token: &str, round: usize) -> Result<(), String> {
    for k in 0..4 {
        let body = serde_json::json!({ "version": "bench", "uptime_s": 60, "reader_present": true, "outbox_len": 0,
            "station_time": 0, "jobs_printed": round * 4 + k, "disk_free_mb": 1000,
            "printer": { "reachable": true, "state": "idle", "reasons": ["none"], "message": "", "markers": [], "media_ready": ["iso_a4_210x297mm"] } });
        match exchange(http.post(format!("{base}/heartbeat")).bearer_auth(token).json(&body), false).await {
            Ok((200, _, _)) => {}
            Ok((s, _, _)) => return Err(format!("heartbeat: HTTP {s}")),
            Err(e) => return Err(format!("heartbeat: {e}")),
        }
    }
    Ok(())
}

/// Every station works through `numbers` (shared, each taken once) until none is left.
/// (With several backends, station `i` talks to backend `i mod n`, as behind a proxy.)
async fn run_stations(bases: &Arc<Vec<String>>, stations: &Arc<Vec<(String, String)>>, numbers: Arc<Vec<String>>, floor: bool) -> anyhow::Result<Tally> {
    let next = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for (i, (token, card)) in stations.iter().cloned().enumerate() {
        let base = bases[i % bases.len()].clone();
        let (numbers, next, total) = (numbers.clone(), next.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            // one connection per station, as each station is its own machine
            let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
            let mut tally = Tally::default();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(number) = numbers.get(k) else { break };
                let t0 = Instant::now();
                let done = if floor { floor_round(&http, &base, &token, k).await } else { redeem(&http, &base, &token, &card, number, &mut tally).await };
                match done {
                    Ok(()) => tally.redemption.push(t0.elapsed()),
                    Err(why) => *tally.failed.entry(why).or_default() += 1,
                }
            }
            let mut t = total.lock().unwrap_or_else(|p| p.into_inner());
            t.redemption.extend(tally.redemption);
            for (all, mine) in t.steps.iter_mut().zip(tally.steps) {
                all.extend(mine);
            }
            for (k, n) in tally.failed {
                *t.failed.entry(k).or_default() += n;
            }
            t.document_bytes += tally.document_bytes;
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut t = total.lock().unwrap_or_else(|p| p.into_inner());
    Ok(std::mem::take(&mut *t))
}

async fn load() -> anyhow::Result<()> {
    let bases: Arc<Vec<String>> = Arc::new(env(URL_ENV)?.split(',').map(|u| format!("{u}/api/station/v1")).collect());
    let stations: Arc<Vec<(String, String)>> = Arc::new(
        std::fs::read_to_string(env(STATIONS_FILE_ENV)?)?
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(t, c)| (t.to_string(), c.to_string())))
            .collect(),
    );
    let numbers: Vec<String> = std::fs::read_to_string(env(NUMBERS_FILE_ENV)?)?.lines().map(str::to_string).filter(|n| !n.is_empty()).collect();
    let warmup = env_or(WARMUP_ENV, 0usize).min(numbers.len());
    anyhow::ensure!(!stations.is_empty() && numbers.len() > warmup, "nothing to redeem");
    let (warm, measured) = numbers.split_at(warmup);
    let warm_tally = run_stations(&bases, &stations, Arc::new(warm.to_vec()), false).await?;
    let database = match std::env::var(DATABASE_ENV).ok().filter(|u| !u.is_empty()) {
        Some(url) => Some(DatabaseWatch::start(&url).await?),
        None => None,
    };
    let cpu0 = cpu_seconds("self");
    let started = Instant::now();
    let t = run_stations(&bases, &stations, Arc::new(measured.to_vec()), false).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self") - cpu0;
    let database = match database {
        Some(w) => w.finish().await?,
        None => serde_json::Value::Null,
    };
    // the same number of rounds of four calls that do no order work: the HTTP layer's floor
    let floor_started = Instant::now();
    let f = run_stations(&bases, &stations, Arc::new(measured.to_vec()), true).await?;
    let floor_elapsed = floor_started.elapsed().as_secs_f64();
    let ok = t.redemption.len();
    let bytes_avg = if ok > 0 { t.document_bytes / ok as u64 } else { 0 };
    let steps: serde_json::Map<String, serde_json::Value> =
        STEPS.iter().zip(t.steps).map(|(name, v)| (name.to_string(), Stats::of(v).to_json())).collect();
    println!(
        "{}",
        serde_json::json!({
            "ok": ok, "elapsed_s": elapsed, "failed": t.failed, "warmup_ok": warm_tally.redemption.len(),
            "warmup_failed": warm_tally.failed, "redemption": Stats::of(t.redemption).to_json(), "steps": steps,
            "document_bytes_avg": bytes_avg, "cpu_s": cpu, "database": database,
            "floor_ok": f.redemption.len(), "floor_failed": f.failed, "floor_elapsed_s": floor_elapsed, "floor": Stats::of(f.redemption).to_json(),
        })
    );
    Ok(())
}

/// What PostgreSQL itself did over the measured run, read by the load
/// process at the run's edges: the CPU time of all its processes (the
/// postmaster and its children, from /proc) and, from pg_stat_statements,
/// the statements it ran and the time it spent executing them.
struct DatabaseWatch {
    conn: sqlx::PgConnection,
    postmaster: u32,
    cpu0: f64,
}

impl DatabaseWatch {
    async fn start(url: &str) -> anyhow::Result<DatabaseWatch> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&mut conn).await?;
        let me: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await?;
        let postmaster = parent_of(me as u32).ok_or_else(|| anyhow::anyhow!("PostgreSQL's postmaster not found"))?;
        sqlx::query("SELECT pg_stat_statements_reset()").execute(&mut conn).await?;
        let cpu0 = family_cpu_seconds(postmaster);
        Ok(DatabaseWatch { conn, postmaster, cpu0 })
    }

    async fn finish(mut self) -> anyhow::Result<serde_json::Value> {
        // (the CPU first: what follows is the bench's own work)
        let cpu = family_cpu_seconds(self.postmaster) - self.cpu0;
        let (statements, exec_ms, locks, lock_ms): (i64, f64, i64, f64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT), CAST(COALESCE(SUM(total_exec_time), 0) AS DOUBLE PRECISION),
                    CAST(COALESCE(SUM(calls) FILTER (WHERE query LIKE '%pg_advisory_xact_lock%'), 0) AS BIGINT),
                    CAST(COALESCE(SUM(total_exec_time) FILTER (WHERE query LIKE '%pg_advisory_xact_lock%'), 0) AS DOUBLE PRECISION)
             FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_backend_pid%'",
        )
        .fetch_one(&mut self.conn)
        .await?;
        // the statements that took most of that time (those that wait for locks left out)
        let top: Vec<(String, i64, f64)> = sqlx::query_as(
            "SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, total_exec_time FROM pg_stat_statements
             WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_backend_pid%' AND query NOT LIKE '%pg_advisory_xact_lock%'
             ORDER BY total_exec_time DESC LIMIT 8",
        )
        .fetch_all(&mut self.conn)
        .await?;
        let top: Vec<serde_json::Value> = top.into_iter().map(|(q, calls, ms)| serde_json::json!({ "query": q, "calls": calls, "ms": ms })).collect();
        Ok(serde_json::json!({ "cpu_s": cpu, "statements": statements, "exec_ms": exec_ms, "lock_statements": locks, "lock_ms": lock_ms, "top": top }))
    }
}

// ------------------------------------------------------------------ the bench (server process)

/// The SQLite desk's calls and commits so far, from the backend's metrics (None on PostgreSQL).
async fn desk_tally(url: &str) -> anyhow::Result<Option<(u64, u64)>> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    let value = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok());
    Ok(value("shomei_station_desk_calls_total ").zip(value("shomei_station_desk_commits_total ")))
}

/// The same run on the embedded default and on the platform's setup, side by side.
async fn bench() -> anyhow::Result<()> {
    each_setup(run).await
}

async fn run(engine: shomei_backend::store::Engine, n_backends: usize) -> anyhow::Result<()> {
    let n_stations = env_or(STATIONS_ENV, STATIONS).max(1);
    let n_measured = env_or(REDEMPTIONS_ENV, REDEMPTIONS).max(1);
    let n_warmup = WARMUP_PER_STATION * n_stations;
    let n_orders = n_warmup + n_measured;

    let (b, _others, urls) = Backend::start_service(engine, n_backends).await?;
    let pool = shomei_backend::store::connect(&b.database_url).await?;
    // the data key the backend made beside its database (no key configured)
    let key = shomei_backend::sealed::SealKey::from_config("", Some(&b.dir.path().join("backend.key"))).map_err(|e| anyhow::anyhow!("data key: {e}"))?;

    // 1. one order through the portal: login, render with the seal, sealed PDF stored
    let t = Instant::now();
    let page = b.order_as_graduate(1).await?;
    let portal_order = t.elapsed();
    let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    let template: i64 = sqlx::query_scalar("SELECT id FROM orders WHERE print_number = $1").bind(&number).fetch_one(&pool).await?;
    let pdf = {
        let mut c = pool.acquire().await?;
        shomei_backend::orders::stored_pdf(&mut c, &key, template)
            .await
            .map_err(|e| anyhow::anyhow!("the template order's PDF: {e:?}"))?
            .ok_or_else(|| anyhow::anyhow!("the template order has no PDF"))?
    };
    let (total, payment): (i64, String) = sqlx::query_as("SELECT total, payment_method FROM orders WHERE id = $1").bind(template).fetch_one(&pool).await?;
    anyhow::ensure!(payment == "card", "the template order is paid by {payment}, not by card");

    // 2. copies of it, written straight into the database
    let t = Instant::now();
    let order_cols = columns(&mut *pool.acquire().await?, "orders").await?;
    let line_cols = columns(&mut *pool.acquire().await?, "order_lines").await?;
    let mut seen: HashSet<String> = HashSet::from([number.clone()]);
    let mut numbers = Vec::with_capacity(n_orders);
    let mut next_id: i64 = sqlx::query_scalar("SELECT MAX(id) + 1 FROM orders").fetch_one(&pool).await?;
    for chunk in 0..n_orders.div_ceil(500) {
        let mut tx = pool.begin().await?;
        for _ in (chunk * 500)..((chunk + 1) * 500).min(n_orders) {
            let n = loop {
                let n = PrintNumber::generate(&mut rand::rngs::OsRng).as_str().to_string();
                if seen.insert(n.clone()) {
                    break n;
                }
            };
            let id = next_id;
            next_id += 1;
            let sealed = shomei_backend::orders::seal_pdf(&key, id, &pdf).map_err(|e| anyhow::anyhow!("sealing: {e:?}"))?;
            copy_row(&mut tx, "orders", &order_cols, "id", SqlValue::Int(template), &[("id", SqlValue::Int(id)), ("print_number", SqlValue::Text(n.clone()))]).await?;
            sqlx::query("INSERT INTO order_documents (order_id, pdf) VALUES ($1, $2)").bind(id).bind(sealed).execute(&mut *tx).await?;
            copy_row(&mut tx, "order_lines", &line_cols, "order_id", SqlValue::Int(template), &[("order_id", SqlValue::Int(id))]).await?;
            numbers.push(n);
        }
        tx.commit().await?;
    }
    let copy_time = t.elapsed();

    // 3. the stations, enrolled with codes from the backend's own function, over HTTP; a card each
    let t = Instant::now();
    let card_cols = columns(&mut *pool.acquire().await?, "ic_cards").await?;
    let http = reqwest::Client::new();
    let mut station_lines = Vec::with_capacity(n_stations);
    for i in 0..n_stations {
        let (_, code) = shomei_backend::stations::create_enrolment(&pool, 1, &format!("Redeem {i:03}"), None, 3600).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let r: serde_json::Value = http.post(format!("{}/api/station/v1/enroll", b.url)).json(&serde_json::json!({ "code": code, "version": "bench" })).send().await?.json().await?;
        let token = r["token"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(!token.is_empty(), "station {i} not enrolled: {r}");
        let card = format!("BE{i:014X}");
        let mut c = pool.acquire().await?;
        copy_row(&mut c, "ic_cards", &card_cols, "uid", SqlValue::Text(shomei_backend::demo::CARD_UID.into()), &[("uid", SqlValue::Text(card.clone()))]).await?;
        sqlx::query("INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ($1, $2, 'topup', 0)")
            .bind(&card)
            .bind(total * (n_orders as i64 + 1))
            .execute(&mut *c)
            .await?;
        station_lines.push(format!("{token} {card}"));
    }
    let enrol_time = t.elapsed();

    let work = tempfile::tempdir()?;
    let (stations_file, numbers_file) = (work.path().join("stations"), work.path().join("numbers"));
    std::fs::write(&stations_file, station_lines.join("\n"))?;
    std::fs::write(&numbers_file, numbers.join("\n"))?;

    // 4. the run
    let desk0 = desk_tally(&b.url).await?;
    let server_cpu0 = cpu_seconds("self");
    let wall = Instant::now();
    let (r, status) = run_load_process(
        LOAD_ROLE,
        &[
            (URL_ENV, urls.join(",")),
            (STATIONS_FILE_ENV, stations_file.display().to_string()),
            (NUMBERS_FILE_ENV, numbers_file.display().to_string()),
            (WARMUP_ENV, n_warmup.to_string()),
            (DATABASE_ENV, if engine == shomei_backend::store::Engine::Postgres { b.database_url.clone() } else { String::new() }),
        ],
    )
    .await?;
    let wall = wall.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds("self") - server_cpu0;
    let desk = desk_tally(&b.url).await?.zip(desk0).map(|((calls, commits), (calls0, commits0))| (calls - calls0, commits - commits0));
    anyhow::ensure!(status.success(), "the station process failed: {status} {r}");

    let ok = r["ok"].as_u64().unwrap_or(0);
    let elapsed = r["elapsed_s"].as_f64().unwrap_or(f64::NAN);
    let per_s = ok as f64 / elapsed;
    let whole = Stats::from_json(&r["redemption"]);
    let failed = |k: &str| -> Vec<(String, u64)> { r[k].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()).unwrap_or_default() };
    let (failed_run, failed_warm) = (failed("failed"), failed("warmup_failed"));
    let printed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'printed'").fetch_one(&pool).await?;
    let debits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'").fetch_one(&pool).await?;

    println!(
        "backend redemptions (reserve -> charge -> document -> report) on {}, {n_backends} backend process(es), {n_stations} stations at once in a separate process, {} cores:",
        if engine == shomei_backend::store::Engine::Postgres { "PostgreSQL" } else { "SQLite" },
        cores()
    );
    println!(
        "  setup: 1 order placed through the portal in {:.2} s (login, render with the seal, sealed PDF); {n_orders} orders copied from it into the database in {:.2} s; {n_stations} stations enrolled and given a card in {:.2} s",
        portal_order.as_secs_f64(),
        copy_time.as_secs_f64(),
        enrol_time.as_secs_f64()
    );
    println!(
        "  warm-up: {} redemptions ({} failed), not counted",
        r["warmup_ok"].as_u64().unwrap_or(0),
        failed_warm.iter().map(|(_, n)| n).sum::<u64>()
    );
    println!(
        "  {ok} redemptions in {elapsed:.2} s: {per_s:.0} per second   (target >= {TARGET_PER_S:.0}/s on {TARGET_CORES} cores: {}{})",
        met(per_s >= TARGET_PER_S),
        if cores() == TARGET_CORES { String::new() } else { format!("; this machine has {} cores", cores()) }
    );
    println!("  per redemption (4 calls):  {}", whole.line());
    println!("    p99 {:.2} ms   (target < {TARGET_P99_MS} ms: {})", ms(whole.p99), met(ms(whole.p99) < TARGET_P99_MS));
    for step in STEPS {
        println!("  {step:<9} {}", Stats::from_json(&r["steps"][step]).line());
    }
    println!("  document: {} bytes on average (sealed in the database, opened per fetch)", r["document_bytes_avg"].as_u64().unwrap_or(0));
    let n_failed: u64 = failed_run.iter().map(|(_, n)| n).sum();
    println!("  failures (not counted above): {n_failed}");
    for (why, n) in failed_run.iter().chain(failed_warm.iter()) {
        println!("    {n:>6}  {why}");
    }
    println!(
        "  CPU over the run ({wall:.1} s wall, warm-up included): server process {server_cpu:.1} s ({:.2} cores), stations process {:.1} s in the measured {elapsed:.1} s",
        server_cpu / wall,
        r["cpu_s"].as_f64().unwrap_or(0.0)
    );
    if let Some((calls, commits)) = desk {
        println!(
            "  the SQLite desk (warm-up included): {calls} calls in {commits} commits, {:.1} calls per commit (reserve, charge and report; documents are read beside it)",
            calls as f64 / commits.max(1) as f64
        );
    }
    if let Some(db) = r["database"].as_object() {
        let n = ok.max(1) as f64;
        let f = |k: &str| db.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let cpu_ms = f("cpu_s") * 1000.0 / n;
        let exec_ms = (f("exec_ms") - f("lock_ms")) / n;
        println!(
            "  PostgreSQL itself over the measured run (all its processes, those that ended too, from /proc; the backends' own jobs included): {:.1} s CPU ({:.2} cores), {cpu_ms:.2} ms per redemption",
            f("cpu_s"),
            f("cpu_s") / elapsed
        );
        println!(
            "    {:.1} statements per redemption (BEGIN and COMMIT counted; {:.1} of them take locks), {exec_ms:.2} ms per redemption executing them (pg_stat_statements, wall time; the statements that wait for locks left out)",
            f("statements") / n,
            f("lock_statements") / n
        );
        println!(
            "    the bound this sets: {TARGET_CORES} cores give at most {:.0} redemptions/s at {cpu_ms:.2} ms of the database's CPU each, with no backend and no stations on them; at most {:.0}/s at {exec_ms:.2} ms each, if every statement ran inside the database with no protocol at all (stored procedures)",
            TARGET_CORES as f64 * 1000.0 / cpu_ms,
            TARGET_CORES as f64 * 1000.0 / exec_ms
        );
        println!("    the statements that took most of that time (calls per redemption, mean, share of the time without lock waits):");
        for q in db.get("top").and_then(|t| t.as_array()).into_iter().flatten() {
            let (calls, total) = (q["calls"].as_f64().unwrap_or(0.0), q["ms"].as_f64().unwrap_or(0.0));
            let text: String = q["query"].as_str().unwrap_or("").chars().take(110).collect();
            println!("      {:>4.2} x {:>7.1} us {:>5.1}%  {text}", calls / n, total * 1000.0 / calls.max(1.0), 100.0 * total / (f("exec_ms") - f("lock_ms")).max(1e-9));
        }
    }
    let floor_ok = r["floor_ok"].as_u64().unwrap_or(0);
    let floor_per_s = floor_ok as f64 / r["floor_elapsed_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "  the floor, same stations and connections: {floor_ok} rounds of 4 authenticated calls that do no order work (heartbeats, kept in memory): {floor_per_s:.0} rounds per second, {}; failures {}",
        Stats::from_json(&r["floor"]).line(),
        r["floor_failed"].as_object().map(|m| m.values().filter_map(|v| v.as_u64()).sum::<u64>()).unwrap_or(0)
    );
    println!("    redemptions / floor: {:.2}   (the target {TARGET_PER_S:.0}/s is {:.2} of this floor)", per_s / floor_per_s, TARGET_PER_S / floor_per_s);
    println!("  the database says: {printed} orders printed, {debits} card debits (of {n_orders} orders)");
    Ok(())
}
