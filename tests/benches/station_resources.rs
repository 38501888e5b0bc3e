//! The station as firmware (ST-7) and its printer client: cold start to
//! ready (spawn to systemd's READY=1), resident memory at rest and after 100
//! jobs, and the station's Print-Job compared like with like, the same PDF
//! to the same ippeveprinter, alternating, each waiting for an idle printer:
//!
//! - in-process: the station's `IppPrinter::submit` (its one kept-alive
//!   connection) beside a minimal in-process IPP client (the same Print-Job
//!   built with the `ipp` crate's `IppOperationBuilder`, POSTed over one
//!   reused `reqwest` connection, the answer parsed), and, for the record,
//!   the `ipp` crate's `AsyncIppClient` (a new HTTP client and connection per
//!   request, which the station used before);
//! - as a process: the station's submit path started as a process (this
//!   binary again with `SHOMEI_BENCH_SUBMIT_ONCE`: runtime, `IppPrinter::new`,
//!   `submit`, exit) beside `ipptool -f pdf uri print-job.test`; and the two
//!   start-up costs measured alone (this binary exiting at once,
//!   `ipptool --version`) so that both can be compared without them.
//!
//! Prints p50/p99 and the ratios. Targets: ready <= 1 s, RSS <= 25 MB, the
//! station's in-process submit <= 1.1x the minimal client. Run with
//! `deploy/bench` (release builds). Asserts no timing.

#[path = "../e2e/harness.rs"]
mod harness;
#[path = "common/mod.rs"]
mod common;

use anyhow::Context as _;
use common::*;
use harness::*;
use ipp::attribute::{IppAttribute, IppAttributeName};
use ipp::model::DelimiterTag;
use ipp::operation::builder::IppOperationBuilder;
use ipp::operation::IppOperation as _;
use ipp::payload::IppPayload;
use ipp::prelude::Uri;
use ipp::value::IppValue;
use shomei_shared::api::PrintSettings;
use shomei_station::printer::Printer as _;
use std::io::{Cursor, Read as _};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 50;
const TARGET_READY_MS: f64 = 1000.0;
const TARGET_RSS_MB: f64 = 25.0;
const TARGET_SUBMIT_RATIO: f64 = 1.1;

/// This binary started again only to exit: the cost of starting it.
const NOOP_ENV: &str = "SHOMEI_BENCH_NOOP";
/// This binary started again to submit one PDF with the station's client: the printer URI.
const SUBMIT_ONCE_ENV: &str = "SHOMEI_BENCH_SUBMIT_ONCE";
const PDF_ENV: &str = "SHOMEI_BENCH_PDF";
const JOB_ENV: &str = "SHOMEI_BENCH_JOB";

fn main() -> anyhow::Result<()> {
    if std::env::var_os(NOOP_ENV).is_some() {
        return Ok(());
    }
    if let Ok(uri) = std::env::var(SUBMIT_ONCE_ENV) {
        return submit_once(&uri);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cores().max(2)).enable_all().build()?;
    rt.block_on(bench())
}

/// The station's submit path as a process of its own: what a process must
/// do to print one PDF with the station's client.
fn submit_once(uri: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let pdf = std::fs::read(env(PDF_ENV)?)?;
        let printer = shomei_station::printer::IppPrinter::new(uri).map_err(|e| anyhow::anyhow!("{e}"))?;
        let id = printer.submit(pdf, &env(JOB_ENV)?, &PrintSettings::default()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{id}");
        anyhow::Ok(())
    })
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

// ------------------------------------------------------------------ a minimal in-process IPP client

/// The least an in-process client must do for a Print-Job: build it with
/// the `ipp` crate, POST it over one kept-alive connection, parse the answer.
struct MinimalIpp {
    http: reqwest::Client,
    url: String,
    printer_uri: Uri,
}

impl MinimalIpp {
    fn new(uri: &str) -> anyhow::Result<MinimalIpp> {
        let parsed: Uri = uri.parse()?;
        let url = uri.replacen("ipp://", "http://", 1);
        let http = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        Ok(MinimalIpp { http, url, printer_uri: ipp::util::canonicalize_uri(&parsed) })
    }

    /// The same request the station sends (the same operation and job attributes).
    fn request(&self, pdf: &Arc<[u8]>, name: &str, s: &PrintSettings) -> anyhow::Result<ipp::request::IppRequestResponse> {
        let kw = |v: &str| IppValue::new_keyword(v).map_err(|e| anyhow::anyhow!("{e}"));
        Ok(IppOperationBuilder::print_job(self.printer_uri.clone(), IppPayload::new(Cursor::new(Arc::clone(pdf))))
            .user_name("shomei")
            .job_title(name)
            .document_format("application/pdf")
            .attribute(IppAttribute::new(IppAttributeName::COPIES, IppValue::Integer(s.copies.max(1) as i32)))
            .attribute(IppAttribute::new(IppAttributeName::SIDES, kw(&s.sides)?))
            .attribute(IppAttribute::new(IppAttributeName::MEDIA, kw(&s.media)?))
            .build()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_ipp_request())
    }

    async fn print_job(&self, pdf: &Arc<[u8]>, name: &str, s: &PrintSettings) -> anyhow::Result<i32> {
        let mut body = Vec::new();
        self.request(pdf, name, s)?.into_read().read_to_end(&mut body)?;
        let r = self.http.post(&self.url).header("content-type", "application/ipp").body(body).send().await?;
        anyhow::ensure!(r.status().is_success(), "HTTP {}", r.status());
        let bytes = r.bytes().await?;
        let answer = ipp::parser::IppParser::new(Cursor::new(bytes)).parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        job_id(&answer)
    }
}

fn job_id(answer: &ipp::request::IppRequestResponse) -> anyhow::Result<i32> {
    let status = answer.header().status_code();
    anyhow::ensure!(status.is_success(), "Print-Job answered {status}");
    match answer.attributes().groups_of(DelimiterTag::JobAttributes).find_map(|g| g.get(IppAttribute::JOB_ID)).map(IppAttribute::value) {
        Some(IppValue::Integer(id)) => Ok(*id),
        other => anyhow::bail!("no job-id in the answer: {other:?}"),
    }
}

/// The `ipp` crate's own client: it builds a new HTTP client (and so opens a
/// new connection) for every request, as the station's `call` did before.
async fn crate_client_print_job(m: &MinimalIpp, uri: &str, pdf: &Arc<[u8]>, name: &str, s: &PrintSettings) -> anyhow::Result<i32> {
    let client = ipp::client::non_blocking::AsyncIppClient::builder(uri.parse()?).request_timeout(Duration::from_secs(60)).build();
    let answer = client.send(m.request(pdf, name, s)?).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    job_id(&answer)
}

// ------------------------------------------------------------------ the bench

/// Runs a process to its end; its wall time.
fn timed_process(cmd: &mut Command) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let out = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let took = t0.elapsed();
    anyhow::ensure!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(took)
}

async fn bench() -> anyhow::Result<()> {
    let mut rig = Rig::start().await?;

    // cold start to ready: from spawn to READY=1 on the notify socket (the journal exists, enrolled)
    let dir = tempfile::tempdir()?;
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path)?;
    let notify = sock_path.display().to_string();
    let mut starts = Vec::new();
    for _ in 0..10 {
        rig.station.kill9();
        let t0 = Instant::now();
        let waiter = {
            let sock = sock.try_clone()?;
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                loop {
                    match sock.recv(&mut buf) {
                        Ok(n) if buf[..n].starts_with(b"READY=1") => return Some(Instant::now()),
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            })
        };
        rig.station.restart(&[("NOTIFY_SOCKET", notify.as_str())])?;
        let ready = waiter.join().map_err(|_| anyhow::anyhow!("waiter"))?.ok_or_else(|| anyhow::anyhow!("no READY"))?;
        starts.push(ready - t0);
    }
    std::thread::sleep(Duration::from_secs(3));
    let rest = rss_kb(rig.station.pid());

    // 100 jobs (orders paid online, so the kiosk prints at once)
    let started = Instant::now();
    for i in 0..100 {
        let page = rig.backend.order_as_graduate(1).await?;
        let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
        rig.backend.sql(&format!("UPDATE orders SET status = 'paid', payment_method = 'paypal', paid_at = 0 WHERE print_number = '{number}'"))?;
        let s = rig.kiosk_number(&number).await?;
        anyhow::ensure!(s["screen"] == "printing" || s["screen"] == "done", "job {i}: {s}");
        rig.wait_kiosk("done", Duration::from_secs(30)).await?;
        rig.station_reset().await?;
    }
    let jobs_time = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kb(rig.station.pid());

    // Print-Job, the same PDF to the same printer, every way in turn
    let pdf_path = rig.printer.spooled_pdfs().into_iter().next().context("no pdf in the spool")?;
    let pdf = std::fs::read(&pdf_path)?;
    let pdf_arc: Arc<[u8]> = pdf.clone().into();
    let uri = rig.printer.uri.clone();
    let settings = PrintSettings::default();
    let printer = shomei_station::printer::IppPrinter::new(&uri).map_err(|e| anyhow::anyhow!("{e}"))?;
    let minimal = MinimalIpp::new(&uri)?;
    let exe = std::env::current_exe()?;
    // the printer has no queue: every Print-Job waits until it is idle again
    let watch = &printer;
    let idle = move || async move {
        while watch.status().await.state != "idle" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // warm-up, untimed: connections opened, code paged in
    for i in 0..3 {
        idle().await;
        printer.submit(pdf.clone(), &format!("warm-station-{i}"), &settings).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        idle().await;
        minimal.print_job(&pdf_arc, &format!("warm-minimal-{i}"), &settings).await?;
    }
    let (mut station, mut small, mut crate_client) = (Vec::new(), Vec::new(), Vec::new());
    let (mut station_proc, mut ipptool, mut own_start, mut ipptool_start) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        idle().await;
        let t0 = Instant::now();
        printer.submit(pdf.clone(), &format!("bench-station-{i}"), &settings).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        station.push(t0.elapsed());

        idle().await;
        let t0 = Instant::now();
        minimal.print_job(&pdf_arc, &format!("bench-minimal-{i}"), &settings).await?;
        small.push(t0.elapsed());

        idle().await;
        let t0 = Instant::now();
        crate_client_print_job(&minimal, &uri, &pdf_arc, &format!("bench-crate-{i}"), &settings).await?;
        crate_client.push(t0.elapsed());

        idle().await;
        station_proc.push(timed_process(
            Command::new(&exe).env(SUBMIT_ONCE_ENV, &uri).env(PDF_ENV, &pdf_path).env(JOB_ENV, format!("bench-process-{i}")),
        )?);

        idle().await;
        ipptool.push(timed_process(Command::new("ipptool").args(["-q", "-f"]).arg(&pdf_path).arg(&uri).arg("print-job.test"))?);

        own_start.push(timed_process(Command::new(&exe).env(NOOP_ENV, "1"))?);
        ipptool_start.push(timed_process(Command::new("ipptool").arg("--version"))?);
    }
    idle().await;
    let (station, small, crate_client) = (Stats::of(station), Stats::of(small), Stats::of(crate_client));
    let (station_proc, ipptool, own_start, ipptool_start) = (Stats::of(station_proc), Stats::of(ipptool), Stats::of(own_start), Stats::of(ipptool_start));

    let starts = Stats::of(starts);
    println!(
        "station cold start to ready (spawn -> READY=1), 10 starts: p50 {:.0} ms, max {:.0} ms   (target <= {TARGET_READY_MS:.0} ms: {})",
        ms(starts.p50),
        ms(starts.max),
        met(ms(starts.max) <= TARGET_READY_MS)
    );
    let (rest_mb, after_mb) = (rest as f64 / 1024.0, after as f64 / 1024.0);
    println!(
        "station RSS at rest: {rest_mb:.1} MB; after 100 jobs: {after_mb:.1} MB (100 jobs took {:.1} s)   (target <= {TARGET_RSS_MB} MB: {})",
        jobs_time.as_secs_f64(),
        met(rest_mb.max(after_mb) <= TARGET_RSS_MB)
    );
    println!("Print-Job of the same {} KB PDF to the same ippeveprinter, {RUNS} each, alternating, {} cores:", pdf.len() / 1024, cores());
    println!("  in-process");
    println!("    station IppPrinter::submit (kept-alive)      {}", station.line());
    println!("    minimal client (ipp builder + one reqwest)   {}", small.line());
    println!("    ipp crate AsyncIppClient (new client each)   {}", crate_client.line());
    let ratio = ms(station.p50) / ms(small.p50);
    println!(
        "    station / minimal: p50 {ratio:.2}x, p99 {:.2}x   (target <= {TARGET_SUBMIT_RATIO}x: {})",
        ms(station.p99) / ms(small.p99),
        met(ratio <= TARGET_SUBMIT_RATIO)
    );
    println!("    AsyncIppClient / minimal: p50 {:.2}x (what a new HTTP client per request costs)", ms(crate_client.p50) / ms(small.p50));
    println!("  as a process (start, submit, exit)");
    println!("    station submit path (this binary)            {}", station_proc.line());
    println!("    ipptool -f pdf uri print-job.test            {}", ipptool.line());
    println!("    start alone: this binary exiting at once     {}", own_start.line());
    println!("    start alone: ipptool --version               {}", ipptool_start.line());
    let (sp, ip) = (ms(station_proc.p50) - ms(own_start.p50), ms(ipptool.p50) - ms(ipptool_start.p50));
    println!(
        "    station / ipptool: p50 {:.2}x, p99 {:.2}x; without their start-up (p50 minus p50 of the start alone): station {sp:.2} ms, ipptool {ip:.2} ms, {:.2}x",
        ms(station_proc.p50) / ms(ipptool.p50),
        ms(station_proc.p99) / ms(ipptool.p99),
        sp / ip
    );
    Ok(())
}
