//! Kiosk latency, part by part, through the real peers (backend, station,
//! pcscd with the emulated card, ippeveprinter), 50 runs, p50/p99 of each:
//!
//! 1. number typed -> card screen: POST /kiosk/number (as the page does on
//!    OK) until its answer shows the card screen (the backend's reserve
//!    included);
//! 2. card tapped -> card read by the station: the rig's card detection —
//!    pcscd polls the virtual reader (vpcd) about every 400 ms, then the
//!    station's PC/SC wait and GET DATA — measured, not asserted: a real
//!    reader signals a card in tens of milliseconds;
//! 3. card read -> job accepted by the printer: the station's own work
//!    (charge at the backend, document fetch, journal, Print-Job), from its
//!    log: the "card read" event to the printer client's "job accepted"
//!    event; and of that, the Print-Job itself (its `elapsed_ms`, whole ms).
//!
//! The station runs with `SHOMEI_LOG_FORMAT=json` and the printer client's
//! debug events on, so that the two events carry microsecond timestamps.
//! As a cross-check, card tapped -> document in the printer's spool, seen
//! from the bench. Run with `deploy/bench`.

#[path = "../e2e/harness.rs"]
mod harness;
#[path = "common/mod.rs"]
mod common;

use anyhow::Context as _;
use common::*;
use harness::*;
use std::time::{Duration, Instant};

const RUNS: usize = 50;

/// One event of the station's JSON log: when, what (its message), its fields.
struct Event {
    at: chrono::DateTime<chrono::Utc>,
    message: String,
    fields: serde_json::Value,
}

/// The events the station logged from byte `from` of its log on.
fn events_since(log: &std::path::Path, from: u64) -> anyhow::Result<Vec<Event>> {
    use std::io::{Read as _, Seek as _};
    let mut f = std::fs::File::open(log)?;
    f.seek(std::io::SeekFrom::Start(from))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let at = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str()?).ok()?.with_timezone(&chrono::Utc);
            let message = v["fields"]["message"].as_str().unwrap_or_default().to_string();
            Some(Event { at, message, fields: v["fields"].clone() })
        })
        .collect())
}

/// b - a, as a std Duration (zero if b is earlier).
fn between(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> Duration {
    (b - a).to_std().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut rig = Rig::start().await?;
    rig.backend.sql(&format!(
        "INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', 100000, 'topup', 0)",
        shomei_backend::demo::CARD_UID
    ))?;
    // the station again, logging JSON (microsecond timestamps) with the printer client's "job accepted"
    rig.station.restart(&[("SHOMEI_LOG_FORMAT", "json"), ("RUST_LOG", "info,sqlx=warn,shomei_station::printer=debug")])?;
    let log = rig.station.dir.path().join("station-err.log");

    let (mut to_card, mut detect, mut to_job, mut print_job, mut to_spool) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        let page = rig.backend.order_as_graduate(1).await?;
        let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
        let before = rig.printer.spooled_pdfs().len();
        let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);

        // 1. number typed -> card screen
        let t0 = Instant::now();
        let s = rig.kiosk_number(&number).await?;
        anyhow::ensure!(s["screen"] == "card", "run {i}: {s}");
        to_card.push(t0.elapsed());

        std::thread::sleep(Duration::from_millis(300)); // the kiosk checks the reader is empty first
        rig.card.tap()?;
        // the card is on the (virtual) reader from here on
        let tapped = chrono::Utc::now();
        let t1 = Instant::now();
        // the document is in the spool once the printer has taken the job
        loop {
            if rig.printer.spooled_pdfs().len() > before {
                break;
            }
            anyhow::ensure!(t1.elapsed() < Duration::from_secs(30), "run {i}: no job at the printer");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        to_spool.push(t1.elapsed());
        rig.wait_kiosk("done", Duration::from_secs(30)).await?;

        // 2. and 3. from the station's log
        let events = events_since(&log, from)?;
        let read = events.iter().find(|e| e.message == "card read").with_context(|| format!("run {i}: no \"card read\" in the station's log"))?;
        let accepted = events
            .iter()
            .find(|e| e.message == "job accepted" && e.at >= read.at)
            .with_context(|| format!("run {i}: no \"job accepted\" in the station's log (is shomei_station::printer=debug on?)"))?;
        detect.push(between(tapped, read.at));
        to_job.push(between(read.at, accepted.at));
        if let Some(whole_ms) = accepted.fields["elapsed_ms"].as_u64() {
            print_job.push(Duration::from_millis(whole_ms));
        }

        rig.card.remove()?;
        rig.station_reset().await?;
        std::thread::sleep(Duration::from_millis(500)); // let pcscd see the card go
    }

    println!("kiosk latency, {RUNS} runs, part by part (the person's own time between the parts excluded):");
    println!("  1. number typed -> card screen                 {}", Stats::of(to_card).line());
    println!("  2. card tapped -> card read by the station      {}", Stats::of(detect).line());
    println!("       (the rig's card detection: pcscd polls vpcd about every 400 ms; measured, not a station cost)");
    println!("  3. card read -> job accepted by the printer     {}", Stats::of(to_job).line());
    println!("       of which the Print-Job (station's submit)  {}   (whole ms, from its log)", Stats::of(print_job).line());
    println!("  cross-check: card tapped -> PDF in the spool    {}   (bench side: 2 + 3 + the printer's write)", Stats::of(to_spool).line());
    Ok(())
}
