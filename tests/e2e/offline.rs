//! P-3 / ST-2: while the backend cannot be reached, a station prints numbers
//! already paid from its encrypted offline copy, pauses IC card payment with a
//! clear message, never prints the same number twice itself, and reports what
//! it printed once the backend is back. The same number printed at two
//! offline stations is caught at sync and shown to staff.

use crate::harness::*;
use anyhow::{Context, Result};
use std::process::Command;
use std::time::{Duration, Instant};

fn journal(station: &Station, sql: &str) -> Result<String> {
    let out = Command::new("sqlite3").args(["-cmd", ".timeout 5000"]).arg(station.journal_path()).arg(sql).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> Result<bool>) -> Result<()> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if ok()? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

/// A new order by the demo graduate, paid online when `paid`; returns (order id, number).
async fn order(b: &Backend, paid: bool) -> Result<(String, String)> {
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("number")?.replace(' ', "");
    if paid {
        b.sql(&format!("UPDATE orders SET status = 'paid', payment_method = 'paypal', paid_at = strftime('%s','now') WHERE print_number = '{number}'"))?;
    }
    Ok((b.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?, number))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_a_paid_number_prints_from_the_encrypted_copy_and_syncs_once() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (card_order, card_number) = order(&rig.backend, false).await?;
    let (paid_order, paid_number) = order(&rig.backend, true).await?;
    wait_for("the offline copy", Duration::from_secs(15), || Ok(journal(&rig.station, "SELECT count(*) FROM offline_documents")? == "2")).await?;
    // the PDFs are encrypted at rest: no PDF header anywhere in the journal's files
    for f in ["journal.sqlite", "journal.sqlite-wal"] {
        let bytes = std::fs::read(rig.station.dir.path().join(f)).unwrap_or_default();
        assert!(!bytes.windows(5).any(|w| w == b"%PDF-"), "{f} holds a plain PDF");
    }

    rig.backend.stop().await;
    // paid: prints from the copy
    let s = rig.kiosk_number(&paid_number).await?;
    assert!(s["screen"] == "printing" || s["screen"] == "done", "{s}");
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.printer.spooled_pdfs().len(), 1);
    assert_eq!(journal(&rig.station, &format!("SELECT offline || state FROM jobs WHERE print_number = '{paid_number}'"))?, "1printed");
    // the same number again at this station: refused, not printed twice
    rig.station_reset().await?;
    let s = rig.kiosk_number(&paid_number).await?;
    assert!(s["message_en"].as_str().unwrap_or("").contains("printed already"), "{s}");
    // to be paid by IC card: paused, with words, nothing charged
    rig.station_reset().await?;
    let s = rig.kiosk_number(&card_number).await?;
    assert_eq!(s["screen"], "error", "{s}");
    assert!(s["message_en"].as_str().unwrap_or("").contains("IC card payment is paused") && s["message_ja"].as_str().unwrap_or("").contains("一時停止"), "{s}");
    assert_eq!(rig.printer.spooled_pdfs().len(), 1);

    // back: the offline print is applied once
    rig.backend.restart().await?;
    wait_for("the offline print to sync", Duration::from_secs(15), || Ok(journal(&rig.station, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {paid_order}"))?, "printed");
    assert_eq!(rig.backend.sql("SELECT count(*) || ' ' || sum(duplicate) FROM offline_prints")?, "1 0");
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {card_order}"))?, "awaiting_payment");
    assert_eq!(rig.balance()?, 3000, "nothing charged offline");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_number_printed_at_two_offline_stations_is_shown_to_staff() -> Result<()> {
    let mut rig = Rig::start().await?;
    let code = rig.backend.enrolment_code("Library 2F").await?;
    let second = Station::start(&StationOptions { backend_url: &rig.backend.url, enrolment_code: &code, printer_uri: &rig.printer.uri, pcsc: &rig.pcsc, tuning: Tuning::default() })?;
    let (order_id, number) = order(&rig.backend, true).await?;
    for s in [&rig.station, &second] {
        wait_for("the offline copy", Duration::from_secs(15), || Ok(journal(s, "SELECT count(*) FROM offline_documents")? == "1")).await?;
    }
    rig.backend.stop().await;
    for s in [&rig.station, &second] {
        let r: serde_json::Value = reqwest::Client::new().post(format!("{}/kiosk/number", s.kiosk_url)).json(&serde_json::json!({ "number": number })).send().await?.json().await?;
        assert!(r["screen"] == "printing" || r["screen"] == "done", "{r}");
        wait_for("the offline print", Duration::from_secs(30), || Ok(journal(s, "SELECT count(*) FROM jobs WHERE state = 'printed'")? == "1")).await?;
    }
    rig.backend.restart().await?;
    for s in [&rig.station, &second] {
        wait_for("sync", Duration::from_secs(15), || Ok(journal(s, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    }
    assert_eq!(rig.backend.sql("SELECT count(*) || ' ' || sum(duplicate) FROM offline_prints")?, "2 1", "one of the two is the duplicate");
    let page = rig.backend.staff_page("/admin/stations").await?;
    let dup = page.split("id=\"duplicates\"").nth(1).context("duplicates shown to staff")?;
    assert!(dup.contains(&format!("/admin/orders/{order_id}")) && dup.contains(&number) && dup.contains("Printed twice while offline") || page.contains("Printed twice while offline"), "{dup}");
    Ok(())
}
