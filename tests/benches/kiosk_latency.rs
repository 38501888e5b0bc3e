//! Kiosk latency: from a print number typed (POST /kiosk/number, as the page
//! does on OK) to the IPP job accepted by the printer, through the real peers,
//! in two steps around the card tap. Run with `deploy/bench`.
//!
//! Reference side by side: `ipptool` submitting the same PDF to the same
//! printer (the bare IPP Print-Job round trip the station cannot beat).

#[path = "../e2e/harness.rs"]
mod harness;

use harness::*;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 50;

/// (min, p50, p99, max)
fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration, Duration) {
    v.sort();
    let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)];
    (v[0], v[v.len() / 2], p99, v[v.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut rig = Rig::start().await?;
    rig.backend.sql(&format!(
        "INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', 100000, 'topup', 0)",
        shomei_backend::demo::CARD_UID
    ))?;
    let mut to_card = Vec::with_capacity(RUNS);
    let mut to_job = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let page = rig.backend.order_as_graduate(1).await?;
        let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
        let before = rig.printer.spooled_pdfs().len();
        let t0 = Instant::now();
        let s = rig.kiosk_number(&number).await?;
        anyhow::ensure!(s["screen"] == "card", "run {i}: {s}");
        to_card.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(300)); // the kiosk checks the reader is empty first
        rig.card.tap()?;
        let t1 = Instant::now();
        // the document is in the spool once the printer has accepted the job
        loop {
            if rig.printer.spooled_pdfs().len() > before {
                break;
            }
            anyhow::ensure!(t1.elapsed() < Duration::from_secs(30), "run {i}: no job at the printer");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        to_job.push(t1.elapsed());
        rig.wait_kiosk("done", Duration::from_secs(30)).await?;
        rig.card.remove()?;
        rig.station_reset().await?;
        std::thread::sleep(Duration::from_millis(500)); // let pcscd see the card go
    }
    let kiosk: Vec<Duration> = to_card.iter().zip(&to_job).map(|(a, b)| *a + *b).collect();

    // reference: ipptool's Print-Job of the same certificate PDF
    let pdf = rig.printer.spooled_pdfs().into_iter().next().ok_or_else(|| anyhow::anyhow!("no pdf"))?;
    let mut reference = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let ok = Command::new("ipptool")
            .args(["-q", "-f"])
            .arg(&pdf)
            .arg(&rig.printer.uri)
            .arg("print-job.test")
            .status()?
            .success();
        reference.push(t0.elapsed());
        anyhow::ensure!(ok, "ipptool print-job failed");
        std::thread::sleep(Duration::from_millis(100)); // let the job finish (no queue)
    }

    let (cmin, cmed, cp99, cmax) = stats(to_card);
    let (jmin, jmed, jp99, jmax) = stats(to_job);
    let (kmin, kmed, kp99, kmax) = stats(kiosk);
    let (rmin, rmed, rp99, rmax) = stats(reference);
    println!("kiosk latency ({RUNS} runs; the person's own time between the two steps excluded):");
    println!("  number typed -> card screen      min {:7.1} ms  p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms", ms(cmin), ms(cmed), ms(cp99), ms(cmax));
    println!("  card tapped -> IPP job accepted  min {:7.1} ms  p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms", ms(jmin), ms(jmed), ms(jp99), ms(jmax));
    println!("    (includes pcscd noticing the card: it polls vpcd about every 400 ms)");
    println!("number typed -> IPP job accepted, sum of the two:");
    println!("  shomei station  min {:7.1} ms  p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms", ms(kmin), ms(kmed), ms(kp99), ms(kmax));
    println!("  ipptool (ref.)  min {:7.1} ms  p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms", ms(rmin), ms(rmed), ms(rp99), ms(rmax));
    println!("  ratio of p50s station / ipptool: {:.1}", ms(kmed) / ms(rmed));
    Ok(())
}
