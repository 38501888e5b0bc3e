//! What a login costs, and how close portal logins come to what the machine
//! allows. Run with `deploy/bench` (the bench profile is release:
//! `codegen-units = 1`, thin LTO, see the workspace Cargo.toml).
//!
//! 1. One Argon2id hash at the configured cost, in this process, by outcome:
//!    a new hash, a right password, a wrong password, and no account (the
//!    dummy hash): every one must cost a full hash (a failure that answers
//!    fast tells an attacker which accounts exist).
//! 2. The floor: the same `argon2` crate, built as the backend is, hashing
//!    the same parameters the fastest way (the 19 MiB of blocks allocated once
//!    per thread and reused: `hash_password_into_with_memory`) on every core
//!    at once for a few seconds: hashes per second the machine allows, and so
//!    logins per second (a portal login checks two passwords: two hashes).
//!    Beside it the backend's own `passwords::verify` the same way (it
//!    allocates the blocks per hash).
//! 3. Portal logins per second through the real backend (HTTP, parallel
//!    clients, each its own account and loopback address so that no login
//!    throttle is involved, 303 to /portal counted), with the hashing pool
//!    sized to the cores and at its configured default; beside the floor
//!    and the ratio (target >= 0.9).
//! 4. One login at a time through HTTP: success, wrong second password, no
//!    such account (all three should cost the same two hashes).
//! 5. A forgotten-password request answers as fast with an account as without.

#[path = "../e2e/harness.rs"]
mod harness;
#[path = "common/mod.rs"]
mod common;

use anyhow::Context as _;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use common::*;
use harness::*;
use shomei_backend::demo::{GRADUATE_EMAIL, GRADUATE_PASSWORD, GRADUATE_SECOND_PASSWORD};
use shomei_backend::accounts::passwords::{dummy_hash, hash_with, verify, HashCost};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 15;
const FLOOR_WINDOW: Duration = Duration::from_secs(4);
const LOGIN_WINDOW: Duration = Duration::from_secs(8);
const SEQUENTIAL: usize = 10;
const TARGET_RATIO: f64 = 0.9;
/// Accounts made for the bench (copies of the demo graduate, same passwords).
const ACCOUNTS: usize = 96;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cores()).enable_all().build()?;
    rt.block_on(bench())
}

fn time(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Stats> {
    let mut v = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed());
    }
    Ok(Stats::of(v))
}

/// Hashes per second on `threads` threads at once for `window`, each thread
/// running `make()`'s closure over and over.
fn all_cores<F>(threads: usize, window: Duration, make: impl Fn() -> anyhow::Result<F>) -> anyhow::Result<f64>
where
    F: FnMut() -> anyhow::Result<()> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    let started = Instant::now();
    for _ in 0..threads {
        let (stop, count, mut f) = (stop.clone(), count.clone(), make()?);
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            while !stop.load(Ordering::Relaxed) {
                f()?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    std::thread::sleep(window);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("hash thread panicked"))??;
    }
    // hashes under way at the stop finish after it: counted over the time they took
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// The fastest way the `argon2` crate computes one hash of these parameters:
/// the memory blocks allocated once and reused.
fn fastest_hasher(cost: &HashCost) -> anyhow::Result<impl FnMut() -> anyhow::Result<()> + Send + 'static> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(32)).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let mut blocks = vec![Block::default(); params.block_count()];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = [0u8; 32];
    Ok(move || {
        argon
            .hash_password_into_with_memory(GRADUATE_PASSWORD.as_bytes(), b"somesaltsomesalt", &mut out, &mut blocks)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
}

#[derive(Default, Debug, Clone, Copy)]
struct Logins {
    ok: u64,
    busy: u64,
    failed: u64,
    other: u64,
}

/// The `shomei_csrf` cookie pair a page set, and the form's token.
async fn csrf(http: &reqwest::Client, url: &str) -> anyhow::Result<(String, String)> {
    let r = http.get(format!("{url}/login")).send().await?;
    let cookie = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.trim_start().starts_with("shomei_csrf=") || v.trim_start().starts_with("__Host-shomei_csrf="))
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_string())
        .context("no csrf cookie on /login")?;
    let page = r.text().await?;
    let token = form_value(&page, "csrf").context("no csrf field on /login")?;
    Ok((cookie, token))
}

/// A client from its own loopback address (the login throttles count per address), following no redirect.
fn client_from(ip: Ipv4Addr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// One portal login POST: its status and time.
async fn login(http: &reqwest::Client, url: &str, (cookie, token): &(String, String), email: &str, second: &str) -> anyhow::Result<(u16, Duration)> {
    let t = Instant::now();
    let r = http
        .post(format!("{url}/login"))
        .header(reqwest::header::COOKIE, cookie.as_str())
        .form(&[("csrf", token.as_str()), ("email", email), ("password", GRADUATE_PASSWORD), ("second_password", second)])
        .send()
        .await?;
    let status = r.status().as_u16();
    let _ = r.bytes().await;
    Ok((status, t.elapsed()))
}

/// `clients` clients logging in over and over for `window`, each as its own account.
async fn login_load(url: &str, accounts: &[String], clients: usize, window: Duration) -> anyhow::Result<(Logins, f64)> {
    let started = Instant::now();
    let end = started + window;
    let mut tasks = Vec::new();
    for (k, email) in accounts.iter().take(clients).cloned().enumerate() {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let http = client_from(Ipv4Addr::new(127, 0, 1, k as u8 + 1))?;
            let form = csrf(&http, &url).await?;
            let mut n = Logins::default();
            while Instant::now() < end {
                match login(&http, &url, &form, &email, GRADUATE_SECOND_PASSWORD).await?.0 {
                    303 => n.ok += 1,
                    429 => {
                        // the hashing pool is full: back off a little instead of spinning on the cores the hashes need
                        n.busy += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    401 => n.failed += 1,
                    _ => n.other += 1,
                }
            }
            anyhow::Ok(n)
        }));
    }
    let mut all = Logins::default();
    for t in tasks {
        let n = t.await??;
        all.ok += n.ok;
        all.busy += n.busy;
        all.failed += n.failed;
        all.other += n.other;
    }
    Ok((all, started.elapsed().as_secs_f64()))
}

async fn bench() -> anyhow::Result<()> {
    let cores = cores();
    let cost = HashCost::default();
    println!("argon2id m={} KiB t={} p={}, {cores} cores (available_parallelism):", cost.memory_kib, cost.iterations, cost.parallelism);

    // 1. one hash by outcome, one thread
    let stored = hash_with(&cost, GRADUATE_PASSWORD)?;
    let new_hash = time(|| hash_with(&cost, GRADUATE_PASSWORD).map(drop))?;
    let right = time(|| {
        anyhow::ensure!(verify(GRADUATE_PASSWORD, &stored), "the right password did not verify");
        Ok(())
    })?;
    let wrong = time(|| {
        anyhow::ensure!(!verify("Hanako2024pasz", &stored), "a wrong password verified");
        Ok(())
    })?;
    let none = time(|| {
        anyhow::ensure!(!verify(GRADUATE_PASSWORD, dummy_hash()), "the dummy hash matched");
        Ok(())
    })?;
    let fastest_one = {
        let mut f = fastest_hasher(&cost)?;
        f()?;
        time(&mut f)?
    };
    println!("  one hash, one thread, {RUNS} each:");
    println!("    new hash (passwords::hash_with)            {}", new_hash.line());
    println!("    verify, right password                     {}", right.line());
    println!("    verify, wrong password                     {}", wrong.line());
    println!("    verify, no such account (dummy hash)       {}", none.line());
    println!("    argon2 crate, blocks reused (the fastest)  {}", fastest_one.line());
    println!(
        "    wrong / right {:.2}x, no account / right {:.2}x (both should be ~1.00: a failure costs a full hash)",
        ms(wrong.p50) / ms(right.p50),
        ms(none.p50) / ms(right.p50)
    );

    // 2. the floor: every core hashing at once
    let floor_hashes = all_cores(cores, FLOOR_WINDOW, || fastest_hasher(&cost))?;
    let backend_hashes = all_cores(cores, FLOOR_WINDOW, || {
        let stored = stored.clone();
        Ok(move || {
            anyhow::ensure!(verify(GRADUATE_PASSWORD, &stored), "the right password did not verify");
            Ok(())
        })
    })?;
    let floor_logins = floor_hashes / 2.0;
    println!("  every core hashing at once for {:.0} s:", FLOOR_WINDOW.as_secs_f64());
    println!(
        "    argon2 crate, blocks reused: {floor_hashes:.1} hashes/s ({:.1} ms per hash per core) -> the floor: {floor_logins:.1} logins/s (2 hashes each)",
        cores as f64 * 1000.0 / floor_hashes
    );
    println!(
        "    backend's passwords::verify: {backend_hashes:.1} hashes/s ({:.1} ms per hash per core), {:.2} of the floor (working memory kept per hashing thread)",
        cores as f64 * 1000.0 / backend_hashes,
        backend_hashes / floor_hashes
    );

    // 3. portal logins through HTTP
    let mut b = Backend::start_with(None, |c| {
        c.security.max_concurrent_hashes = cores;
        c.security.login_delay_ms = 0;
    })
    .await?;
    let default_pool = shomei_backend::config::Config::default().security.max_concurrent_hashes;
    let accounts: Vec<String> = {
        let pool = shomei_backend::store::connect(&b.database_url).await?;
        let mut c = pool.acquire().await?;
        let cols = columns(&mut c, "users").await?;
        let mut v = Vec::with_capacity(ACCOUNTS);
        for k in 0..ACCOUNTS {
            let email = format!("bench{k:03}@example.ac.jp");
            copy_row(&mut c, "users", &cols, "email", SqlValue::Text(GRADUATE_EMAIL.into()), &[("email", SqlValue::Text(email.clone())), ("directory_uid", SqlValue::Null)]).await?;
            v.push(email);
        }
        v
    };
    let clients = (2 * cores).min(ACCOUNTS / 2);
    let (sized, sized_s) = login_load(&b.url, &accounts, clients, LOGIN_WINDOW).await?;
    b.stop().await;
    b.restart_with(|c| c.security.max_concurrent_hashes = default_pool).await?;
    let (default, default_s) = login_load(&b.url, &accounts, clients, LOGIN_WINDOW).await?;
    let row = |what: &str, n: &Logins, secs: f64| {
        let per_s = n.ok as f64 / secs;
        println!(
            "    {what:<34} {per_s:7.1} logins/s   {:.2} of the floor (target >= {TARGET_RATIO}: {})   429 busy {}, 401 {}, other {}",
            per_s / floor_logins,
            met(per_s / floor_logins >= TARGET_RATIO),
            n.busy,
            n.failed,
            n.other
        );
    };
    println!("  portal logins (POST /login -> 303, 2 hashes each), {clients} clients, {:.0} s each, floor {floor_logins:.1} logins/s:", LOGIN_WINDOW.as_secs_f64());
    row(&format!("hashing pool {cores} (= cores)"), &sized, sized_s);
    row(&format!("hashing pool {default_pool} (the default)"), &default, default_s);

    // 4. one login at a time: success and failures should cost the same
    let (mut ok, mut wrong_second, mut nobody) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..SEQUENTIAL {
        let http = client_from(Ipv4Addr::new(127, 0, 2, i as u8 + 1))?;
        let form = csrf(&http, &b.url).await?;
        let (s, t) = login(&http, &b.url, &form, &accounts[ACCOUNTS - 1 - i], GRADUATE_SECOND_PASSWORD).await?;
        anyhow::ensure!(s == 303, "login answered {s}");
        ok.push(t);
        let (s, t) = login(&http, &b.url, &form, &accounts[ACCOUNTS - 1 - SEQUENTIAL - i], "Wrong2024second").await?;
        anyhow::ensure!(s == 401, "a wrong second password answered {s}");
        wrong_second.push(t);
        let (s, t) = login(&http, &b.url, &form, &format!("nobody{i}@example.jp"), GRADUATE_SECOND_PASSWORD).await?;
        anyhow::ensure!(s == 401, "a login without an account answered {s}");
        nobody.push(t);
    }
    let (ok, wrong_second, nobody) = (Stats::of(ok), Stats::of(wrong_second), Stats::of(nobody));
    println!("  one portal login at a time through HTTP, {SEQUENTIAL} each:");
    println!("    success                        {}", ok.line());
    println!("    wrong second password          {}", wrong_second.line());
    println!("    no such account                {}", nobody.line());
    println!(
        "    wrong / success {:.2}x, no account / success {:.2}x (both should be ~1.00)",
        ms(wrong_second.p50) / ms(ok.p50),
        ms(nobody.p50) / ms(ok.p50)
    );

    // 5. a forgotten-password request answers as fast for an address with an
    // account as for one without (the link is written in the background)
    let mut times = std::collections::BTreeMap::new();
    for (label, email) in [("with an account", GRADUATE_EMAIL), ("without one", "nobody.here@example.jp")] {
        let mut samples = Vec::new();
        for _ in 0..5 {
            let c = Backend::client();
            let page = c.get(format!("{}/password/forgot", b.url)).send().await?.text().await?;
            let csrf = form_value(&page, "csrf").unwrap_or_default();
            let t = Instant::now();
            let r = c.post(format!("{}/password/forgot", b.url)).form(&[("csrf", csrf.as_str()), ("email", email)]).send().await?;
            samples.push(t.elapsed());
            anyhow::ensure!(r.status().is_success(), "forgot answered {}", r.status());
        }
        times.insert(label, Stats::of(samples));
    }
    let (with, without) = (times["with an account"], times["without one"]);
    println!(
        "  forgotten password, median of 5: {:.2} ms for an address with an account, {:.2} ms without; ratio {:.2}",
        ms(with.p50),
        ms(without.p50),
        ms(with.p50) / ms(without.p50)
    );
    Ok(())
}
