//! Prometheus text metrics on the kiosk listener's `/metrics` (A-5; loopback
//! only, like the kiosk): jobs by journal state, unsynced reports, printer
//! readiness and supplies, the card reader, free disk and uptime.

use crate::health::Health;
use crate::journal::Journal;
use crate::sync::HealthSource;
use std::fmt::Write;
use std::path::Path;

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The metrics page, text exposition format 0.0.4.
pub async fn render(journal: &Journal, health: &Health, state_dir: &Path, uptime_s: u64) -> Result<String, sqlx::Error> {
    let mut out = String::with_capacity(2048);
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(&mut out, "shomei_station_build_info", "gauge", "Version of the running station.");
    let _ = writeln!(out, "shomei_station_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    family(&mut out, "shomei_station_uptime_seconds", "gauge", "Seconds since the station started.");
    let _ = writeln!(out, "shomei_station_uptime_seconds {uptime_s}");
    family(&mut out, "shomei_station_jobs", "gauge", "Jobs in the journal by state.");
    for (state, n) in journal.job_counts().await? {
        let _ = writeln!(out, "shomei_station_jobs{{state=\"{}\"}} {n}", label(&state));
    }
    family(&mut out, "shomei_station_outbox", "gauge", "Reports not yet delivered to the backend.");
    let _ = writeln!(out, "shomei_station_outbox {}", journal.outbox_len().await?);
    let printer = health.printer();
    family(&mut out, "shomei_station_printer_ready", "gauge", "1 when the printer can print.");
    let _ = writeln!(out, "shomei_station_printer_ready {}", u8::from(printer.can_print()));
    family(&mut out, "shomei_station_printer_reachable", "gauge", "1 when the printer answers IPP.");
    let _ = writeln!(out, "shomei_station_printer_reachable {}", u8::from(printer.reachable));
    family(&mut out, "shomei_station_supply_level_percent", "gauge", "Supply levels as the printer reports them (negative: unknown).");
    for m in &printer.markers {
        let _ = writeln!(out, "shomei_station_supply_level_percent{{supply=\"{}\",kind=\"{}\"}} {}", label(&m.name), label(&m.kind), m.level);
    }
    family(&mut out, "shomei_station_reader_present", "gauge", "1 when the card reader is connected.");
    let _ = writeln!(out, "shomei_station_reader_present {}", u8::from(health.reader_present()));
    if let Some(mb) = crate::sync::disk_free_mb(state_dir) {
        family(&mut out, "shomei_station_disk_free_bytes", "gauge", "Free space where the journal lives.");
        let _ = writeln!(out, "shomei_station_disk_free_bytes {}", mb * 1024 * 1024);
    }
    Ok(out)
}
