//! The network between a station and the backend fails (issue 6, faults):
//! packets dropped (connections hang, like iptables DROP), connections
//! refused (like REJECT), and an outage of 30 minutes in simulated time.
//! Paid numbers keep printing from the offline copy, nothing is charged
//! without the backend, and the outbox drains exactly once afterwards.

use crate::harness::*;
use crate::offline::{journal, order};
use anyhow::Result;
use std::time::{Duration, Instant};

fn rig_behind(p: Peers, station_backend_url: &str, code: &str) -> Result<Rig> {
    let station = Station::start(&StationOptions { backend_url: station_backend_url, enrolment_code: code, printer_uri: &p.printer.uri, pcsc: &p.pcsc, tuning: Tuning::default() })?;
    Ok(Rig { smtp: p.smtp, backend: p.backend, printer: p.printer, pcsc: p.pcsc, card: p.card, station })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_packets_dropped_or_refused_paid_numbers_print_offline_and_sync_once() -> Result<()> {
    let p = Peers::start().await?;
    let link = NetLink::start(&p.backend.url).await?;
    let code = p.backend.enrolment_code("Library 1F").await?;
    let rig = rig_behind(p, &link.url, &code)?;
    let (first_order, first) = order(&rig.backend, true).await?;
    let (second_order, second) = order(&rig.backend, true).await?;
    let (card_order, card_number) = order(&rig.backend, false).await?;
    let balance = rig.balance()?;
    // the two paid numbers are handed out for offline use; the unpaid one (policy a) is not
    wait_for("the offline copy", Duration::from_secs(20), || Ok(journal(&rig.station, "SELECT count(*) FROM offline_documents")? == "2")).await?;

    // DROP: the backend's packets vanish; the station gives up on it within its timeouts and prints from its copy
    link.set(Link::Drop);
    let t = Instant::now();
    let s = rig.kiosk_number(&first).await?;
    let waited = t.elapsed();
    assert!(s["screen"] == "printing" || s["screen"] == "done", "{s}");
    assert!(waited < Duration::from_secs(15), "the user waited {waited:?}");
    eprintln!("DROP: number -> printing from the offline copy in {waited:?}");
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.printer.spooled_pdfs().len(), 1);
    // a number still to be paid: paused in words, nothing charged
    rig.station_reset().await?;
    let s = rig.kiosk_number(&card_number).await?;
    assert!(s["message_en"].as_str().unwrap_or("").contains("IC card payment is paused"), "{s}");

    // REJECT: refused at once, so the offline copy is used at once
    link.set(Link::Reject);
    rig.station_reset().await?;
    let t = Instant::now();
    let s = rig.kiosk_number(&second).await?;
    let waited = t.elapsed();
    assert!(s["screen"] == "printing" || s["screen"] == "done", "{s}");
    assert!(waited < Duration::from_secs(3), "refused connections are not waited for: {waited:?}");
    eprintln!("REJECT: number -> printing from the offline copy in {waited:?}");
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.printer.spooled_pdfs().len(), 2);
    assert_eq!(rig.backend.sql("SELECT count(*) FROM offline_prints")?, "0", "nothing got through");
    assert!(journal(&rig.station, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")?.parse::<i64>()? >= 2);

    // the link is back: each print is applied once, the fleet page shows the station online
    link.set(Link::Up);
    wait_for("the outbox to drain", Duration::from_secs(30), || Ok(journal(&rig.station, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    assert_eq!(rig.backend.sql("SELECT count(*) || ' ' || sum(duplicate) FROM offline_prints")?, "2 0");
    for (o, want) in [(&first_order, "printed"), (&second_order, "printed"), (&card_order, "awaiting_payment")] {
        assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {o}"))?, want, "order {o}");
    }
    assert_eq!(rig.balance()?, balance, "nothing charged");
    crate::print_flow::wait_page(&rig.backend, "/admin/stations", |p| p.contains("data-online=\"true\"")).await?;
    Ok(())
}

/// The backend is gone for 30 minutes of simulated time: while it is
/// stopped its clock-dependent state is aged by 30 minutes (the station's
/// last heartbeat, the reservation that lapsed), as if the outage had lasted
/// that long. The station's queued report and its offline print are applied
/// once when the backend is back, and operators are told the station was
/// offline and is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_30_minute_outage_in_simulated_time_the_outbox_drains_exactly_once() -> Result<()> {
    const OPS: &str = "ops@example.ac.jp";
    let p = Peers::start_with(|c| {
        c.stations.alert_emails = vec![OPS.into()];
        c.stations.alert_check_s = 1;
    })
    .await?;
    let code = p.backend.enrolment_code("Library 1F").await?;
    let url = p.backend.url.clone();
    let mut rig = rig_behind(p, &url, &code)?;
    let (paid_order, paid) = order(&rig.backend, true).await?;
    let (_, number) = order(&rig.backend, false).await?;
    let paid_in_copy = format!("\"order_id\":{paid_order},");
    wait_for("the offline copy", Duration::from_secs(20), || Ok(journal(&rig.station, "SELECT bundle FROM offline_bundle")?.contains(&paid_in_copy))).await?;
    // a card payment whose print finishes after the backend went away
    rig.printer.set_mode("hold")?;
    rig.kiosk_number(&number).await?;
    rig.card.tap()?;
    wait_for("the Print-Job", Duration::from_secs(20), || Ok(journal(&rig.station, "SELECT count(*) FROM journal WHERE step = 'submitted'")? == "1")).await?;
    rig.backend.stop().await;
    rig.printer.set_mode("ok")?;
    rig.printer.release_held_job()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    rig.card.remove()?;
    // and a paid number printed from the offline copy during the outage
    rig.station_reset().await?;
    rig.kiosk_number(&paid).await?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    wait_for("both reports queued", Duration::from_secs(10), || Ok(journal(&rig.station, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "2")).await?;

    // 30 minutes pass for the backend
    rig.backend.sql("UPDATE reservations SET created_at = created_at - 1800, expires_at = expires_at - 1800")?;
    rig.backend.sql("UPDATE stations SET last_seen = last_seen - 1800")?;
    assert_eq!(rig.backend.sql(&format!("SELECT count(*) FROM reservations WHERE expires_at < {}", shomei_backend::time::now()))?, "1", "the reservation lapsed meanwhile");
    rig.backend.restart().await?;

    wait_for("the outbox to drain", Duration::from_secs(30), || Ok(journal(&rig.station, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))?, "printed", "the late report is applied to the lapsed reservation");
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {paid_order}"))?, "printed");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM station_reports")?, "1", "applied once");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM offline_prints")?, "1", "applied once");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM ledger WHERE kind = 'debit'")?, "1", "charged once");
    assert_eq!(rig.printer.spooled_pdfs().len(), 2);
    // delivered again (a lost acknowledgement): nothing changes
    journal(&rig.station, "UPDATE outbox SET sent_at = NULL")?;
    wait_for("the outbox to drain again", Duration::from_secs(30), || Ok(journal(&rig.station, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    assert_eq!(rig.backend.sql("SELECT (SELECT count(*) FROM station_reports) || ' ' || (SELECT count(*) FROM offline_prints) || ' ' || (SELECT count(*) FROM ledger WHERE kind = 'debit')")?, "1 1 1");
    crate::print_flow::wait_page(&rig.backend, "/admin/stations", |p| p.contains("data-online=\"true\"")).await?;
    // the operators heard: the station was seen offline (30 minutes silent), then back to normal
    let offline = rig.smtp.wait_for_mail_with(OPS, "offline (last seen", Duration::from_secs(20))?;
    assert!(offline.contains("Library 1F") && offline.contains("オフライン"), "{offline}");
    let back = rig.smtp.wait_for_mail_with(OPS, "back to normal", Duration::from_secs(20))?;
    assert!(back.contains("Library 1F") && back.contains("復旧"), "{back}");
    Ok(())
}

/// A station prints a paid number but cannot report it (its link is cut);
/// the reservation lapses and the number is printed again at a second
/// station. When the first report arrives it is applied once and the double
/// print is listed for staff (nothing was charged: the order was paid online).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_report_after_a_reprint_elsewhere_is_shown_to_staff() -> Result<()> {
    let p = Peers::start().await?;
    let link = NetLink::start(&p.backend.url).await?;
    let code = p.backend.enrolment_code("Library 1F").await?;
    let code2 = p.backend.enrolment_code("Library 2F").await?;
    let rig = rig_behind(p, &link.url, &code)?;
    let second = Station::start(&StationOptions { backend_url: &rig.backend.url, enrolment_code: &code2, printer_uri: &rig.printer.uri, pcsc: &rig.pcsc, tuning: Tuning::default() })?;
    let (order_id, number) = order(&rig.backend, true).await?;

    rig.printer.set_mode("hold")?;
    let s = rig.kiosk_number(&number).await?;
    assert!(s["screen"] == "printing", "{s}");
    wait_for("the Print-Job", Duration::from_secs(20), || Ok(journal(&rig.station, "SELECT count(*) FROM journal WHERE step = 'submitted'")? == "1")).await?;
    link.set(Link::Reject);
    rig.printer.set_mode("ok")?;
    rig.printer.release_held_job()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))?, "paid", "the backend has not heard");

    // the reservation lapses; the graduate tries the number at another station, which prints it
    rig.backend.sql("UPDATE reservations SET expires_at = expires_at - 1800")?;
    let r: serde_json::Value = reqwest::Client::new().post(format!("{}/kiosk/number", second.kiosk_url)).json(&serde_json::json!({ "number": number })).send().await?.json().await?;
    assert!(r["screen"] == "printing" || r["screen"] == "done", "{r}");
    wait_for("the second print", Duration::from_secs(30), || Ok(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))? == "printed")).await?;

    // the first report arrives: applied once, listed for staff
    link.set(Link::Up);
    wait_for("the late report", Duration::from_secs(30), || Ok(journal(&rig.station, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    assert_eq!(rig.backend.sql("SELECT count(*) || ' ' || sum(duplicate) FROM station_reports WHERE outcome = 'printed'")?, "2 1");
    assert_eq!(rig.printer.spooled_pdfs().len(), 2);
    let page = rig.backend.staff_page("/admin/stations").await?;
    let dup = page.split("id=\"duplicates\"").nth(1).unwrap_or_default();
    assert!(dup.contains(&format!("/admin/orders/{order_id}")), "listed for staff: {page}");
    Ok(())
}

/// Issue 15: a station given several addresses of the backend uses one that
/// answers, and when it stops answering (nothing listens there any more)
/// goes on through another: numbers print, each paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_with_two_backend_addresses_fails_over_when_one_stops_answering() -> Result<()> {
    let p = Peers::start().await?;
    // the first address: nothing listens there yet; the second: a way to the backend
    let first_port = free_port();
    let second = NetLink::start(&p.backend.url).await?;
    let code = p.backend.enrolment_code("Library 1F").await?;
    let urls = format!("http://127.0.0.1:{first_port}, {}", second.url);
    let mut rig = rig_behind(p, &urls, &code)?;
    let debits = |order: &str| rig.backend.sql(&format!("SELECT COUNT(*) FROM ledger WHERE kind = 'debit' AND order_id = {order}"));

    // enrolled, and a number printed, through the second address
    let (first_order, first_number) = order(&rig.backend, false).await?;
    rig.kiosk_number(&first_number).await?;
    rig.wait_kiosk("card", Duration::from_secs(15)).await?;
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(60)).await?;
    rig.card.remove()?;
    wait_for("the first order printed", Duration::from_secs(30), || Ok(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {first_order}"))? == "printed")).await?;
    assert_eq!(debits(&first_order)?, "1");
    assert_eq!(rig.station.log().matches("failed over to another backend address").count(), 1, "the station says it failed over");

    // the second address goes away, the first comes up: the next number goes through the first
    let first = NetLink::start_at(first_port, &rig.backend.url).await?;
    second.set(Link::Reject); // open connections through it are reset...
    drop(second); // ...and nothing listens there any more
    // the station's next call (a heartbeat) finds the second address gone and the first up
    wait_for("the station back on the first address", Duration::from_secs(30), || {
        Ok(rig.station.log().matches("failed over to another backend address").count() == 2)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; station log:\n{}", rig.station.log()))?;
    rig.station_reset().await?;
    let (second_order, second_number) = order(&rig.backend, false).await?;
    rig.kiosk_number(&second_number).await?;
    rig.wait_kiosk("card", Duration::from_secs(15)).await?;
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(60)).await?;
    wait_for("the second order printed", Duration::from_secs(30), || Ok(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {second_order}"))? == "printed")).await?;
    assert_eq!(debits(&second_order)?, "1");
    assert_eq!(rig.printer.spooled_pdfs().len(), 2, "two certificates, one each");
    assert_eq!(rig.station.log().matches("failed over to another backend address").count(), 2, "and back");
    drop(first);
    Ok(())
}
