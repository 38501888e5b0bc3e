//! Prometheus text metrics on `/metrics`: what an operator's
//! monitoring needs to see at a glance, read from the database at scrape
//! time (nothing to keep in step): orders by status, stations by state with
//! each station's printer and outbox, mails waiting, store-print
//! registrations waiting, applications waiting for review.
//!
//! Served to loopback clients, or to anyone presenting
//! `Authorization: Bearer <http.metrics_token>` when a token is configured.

use crate::error::AppResult;
use crate::store;
use crate::time::now;
use std::fmt::Write;

/// Label values are escaped as the text format asks (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The metrics page, in Prometheus text exposition format 0.0.4.
pub async fn render(pool: &crate::store::Pool, desk: Option<&crate::store::Desk>, offline_after_s: i64, started_at: i64) -> AppResult<String> {
    let mut c = pool.acquire().await?;
    let mut out = String::with_capacity(4096);
    let t = now();

    family(&mut out, "shomei_build_info", "gauge", "Version of the running backend.");
    let _ = writeln!(out, "shomei_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    family(&mut out, "shomei_uptime_seconds", "gauge", "Seconds since the backend started.");
    let _ = writeln!(out, "shomei_uptime_seconds {}", (t - started_at).max(0));

    family(&mut out, "shomei_orders", "gauge", "Orders by status.");
    for (status, n) in store::order_counts_by_status(&mut c).await? {
        let _ = writeln!(out, "shomei_orders{{status=\"{}\"}} {n}", label(&status));
    }
    let (mails, store_prints, registrations) = store::work_waiting(&mut c).await?;
    family(&mut out, "shomei_mail_outbox_pending", "gauge", "Mails not sent yet.");
    let _ = writeln!(out, "shomei_mail_outbox_pending {mails}");
    family(&mut out, "shomei_store_print_pending", "gauge", "Paid convenience-store print orders not yet registered with the service.");
    let _ = writeln!(out, "shomei_store_print_pending {store_prints}");
    family(&mut out, "shomei_registrations_pending", "gauge", "Applications waiting for staff review.");
    let _ = writeln!(out, "shomei_registrations_pending {registrations}");

    let stations = store::stations(&mut c).await?;
    family(&mut out, "shomei_station_up", "gauge", "1 when the station's last heartbeat is recent, else 0.");
    family(&mut out, "shomei_station_printer_ready", "gauge", "1 when the station's printer reports it can print.");
    family(&mut out, "shomei_station_outbox", "gauge", "Journal entries the station has not synced yet.");
    family(&mut out, "shomei_station_last_seen_seconds", "gauge", "Seconds since the station's last heartbeat.");
    for s in stations.iter().filter(|s| s.status != "revoked") {
        let name = label(&s.name);
        let up = crate::stations::is_online(s, offline_after_s);
        let ready = up && crate::stations::printer_ready(s);
        let _ = writeln!(out, "shomei_station_up{{station=\"{name}\"}} {}", u8::from(up));
        let _ = writeln!(out, "shomei_station_printer_ready{{station=\"{name}\"}} {}", u8::from(ready));
        let _ = writeln!(out, "shomei_station_outbox{{station=\"{name}\"}} {}", s.outbox_len.unwrap_or(0));
        if let Some(seen) = s.last_seen {
            let _ = writeln!(out, "shomei_station_last_seen_seconds{{station=\"{name}\"}} {}", (t - seen).max(0));
        }
    }
    if let Some(desk) = desk {
        family(&mut out, "shomei_station_desk_calls_total", "counter", "Stations' calls run in the SQLite desk's transactions.");
        let _ = writeln!(out, "shomei_station_desk_calls_total {}", desk.calls());
        family(&mut out, "shomei_station_desk_commits_total", "counter", "Transactions the SQLite desk committed (each holds the calls that were waiting).");
        let _ = writeln!(out, "shomei_station_desk_commits_total {}", desk.commits());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
