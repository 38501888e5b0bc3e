//! What a login costs: Argon2id time per hash at the configured cost, and
//! portal logins per second through the real HTTP stack (password + second
//! password = two hashes per login), with the hashing pool's bound. Run with
//! `deploy/bench`.
//!
//! Reference side by side: the `argon2` command-line tool (the reference C
//! implementation, Debian package `argon2`) hashing with the same parameters.

#[path = "../e2e/harness.rs"]
mod harness;

use harness::*;
use shomei_backend::passwords::{hash_with, HashCost};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The tool's own timing of the hash (it prints "0.034 seconds"), without process start.
fn reference_hash(cost: &HashCost) -> Option<Duration> {
    let mut child = Command::new("argon2")
        .args(["somesaltsomesalt", "-id", "-t", &cost.iterations.to_string(), "-k", &cost.memory_kib.to_string(), "-p", &cost.parallelism.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child.stdin.take()?.write_all(b"Hanako2024pass").ok()?;
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text.lines().find_map(|l| l.strip_suffix(" seconds").and_then(|n| n.trim().parse().ok()))?;
    Some(Duration::from_secs_f64(secs))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cost = HashCost::default();
    let runs = 15;
    let ours = median((0..runs).map(|_| {
        let t = Instant::now();
        let _ = hash_with(&cost, "Hanako2024pass");
        t.elapsed()
    }).collect());
    println!("argon2id m={} KiB t={} p={}: {:.1} ms per hash (median of {runs})", cost.memory_kib, cost.iterations, cost.parallelism, ms(ours));
    let reference: Vec<Duration> = (0..runs).filter_map(|_| reference_hash(&cost)).collect();
    if reference.is_empty() {
        println!("reference: the `argon2` tool is not installed (apt-get install argon2)");
    } else {
        let r = median(reference);
        println!("reference `argon2` CLI, same parameters: {:.1} ms per hash (the tool's own timing); ours / reference = {:.2}", ms(r), ours.as_secs_f64() / r.as_secs_f64());
    }

    // logins per second: 8 clients logging in over and over for a few seconds
    let b = Backend::start_with(None, |c| {
        c.security.max_concurrent_hashes = 2;
        c.security.login_delay_ms = 0;
    })
    .await?;
    let clients = 8;
    let window = Duration::from_secs(6);
    let end = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let url = b.url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut busy) = (0u32, 0u32);
            while Instant::now() < end {
                let c = Backend::client();
                let page = c.get(format!("{url}/login")).send().await?.text().await?;
                let csrf = form_value(&page, "csrf").unwrap_or_default();
                let r = c
                    .post(format!("{url}/login"))
                    .form(&[("csrf", csrf.as_str()), ("email", shomei_backend::demo::GRADUATE_EMAIL),
                            ("password", shomei_backend::demo::GRADUATE_PASSWORD), ("second_password", shomei_backend::demo::GRADUATE_SECOND_PASSWORD)])
                    .send()
                    .await?;
                match r.status().as_u16() {
                    200 => ok += 1,
                    429 => {
                        busy += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    s => anyhow::bail!("login answered {s}"),
                }
            }
            anyhow::Ok((ok, busy))
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let (o, b) = t.await??;
        ok += o;
        busy += b;
    }
    println!(
        "portal logins (2 hashes each), {clients} clients, hashing pool 2, 2 cores: {:.1} logins/s; {busy} answered 429 busy at once (none timed out)",
        ok as f64 / window.as_secs_f64()
    );

    // a forgotten-password request answers as fast for an address with an
    // account as for one without (the link is written in the background)
    let mut times = std::collections::BTreeMap::new();
    for (label, email) in [("with an account", shomei_backend::demo::GRADUATE_EMAIL), ("without one", "nobody.here@example.jp")] {
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
        times.insert(label, median(samples));
    }
    let (with, without) = (times["with an account"], times["without one"]);
    println!(
        "forgotten password, median of 5: {:.2} ms for an address with an account, {:.2} ms without; ratio {:.2}",
        ms(with),
        ms(without),
        with.as_secs_f64() / without.as_secs_f64()
    );
    Ok(())
}
