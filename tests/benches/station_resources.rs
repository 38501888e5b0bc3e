//! The station as firmware (ST-7) and its printer client: cold start to
//! ready (spawn to systemd's READY=1), resident memory at rest and after 100
//! jobs, and the station's own Print-Job submit time beside `ipptool` sending
//! the same PDF to the same ippeveprinter. Targets: ready <= 1 s, RSS <= 25 MB,
//! submit ratio <= 1.1. Run with `deploy/bench` (release builds).

#[path = "../e2e/harness.rs"]
mod harness;

use harness::*;
use shomei_station::printer::Printer as _;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
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

    // Print-Job: the station's IPP client vs ipptool, same PDF, same printer, alternating
    let pdf_path = rig.printer.spooled_pdfs().into_iter().next().ok_or_else(|| anyhow::anyhow!("no pdf"))?;
    let pdf = std::fs::read(&pdf_path)?;
    let printer = shomei_station::printer::IppPrinter::new(&rig.printer.uri).map_err(|e| anyhow::anyhow!("{e}"))?;
    let settings = shomei_shared::api::PrintSettings::default();
    let (mut ours, mut reference) = (Vec::new(), Vec::new());
    for i in 0..30 {
        // wait for the printer to be idle (it has no queue)
        while printer.status().await.state != "idle" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t0 = Instant::now();
        printer.submit(pdf.clone(), &format!("bench-{i}"), &settings).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        ours.push(t0.elapsed());
        while printer.status().await.state != "idle" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t0 = Instant::now();
        let ok = Command::new("ipptool").args(["-q", "-f"]).arg(&pdf_path).arg(&rig.printer.uri).arg("print-job.test").status()?.success();
        reference.push(t0.elapsed());
        anyhow::ensure!(ok, "ipptool print-job failed");
    }
    let (o, r) = (median(ours), median(reference));

    let starts_sorted = {
        let mut s = starts.clone();
        s.sort();
        s
    };
    println!("station cold start to ready (spawn -> READY=1), 10 starts: median {:.0} ms, max {:.0} ms", ms(median(starts)), ms(starts_sorted[starts_sorted.len() - 1]));
    println!("station RSS at rest: {:.1} MB; after 100 jobs: {:.1} MB (100 jobs took {:.1} s)", rest as f64 / 1024.0, after as f64 / 1024.0, jobs_time.as_secs_f64());
    println!("Print-Job submit of the same {} KB PDF, 30 each, medians: station {:.2} ms, ipptool {:.2} ms, ratio {:.2}", pdf.len() / 1024, ms(o), ms(r), ms(o) / ms(r));
    Ok(())
}
