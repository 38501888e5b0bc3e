//! P-5 at the kiosk: a graduate pays at the certified transit e-money
//! terminal beside the station (the emulator on a socat pseudo-terminal
//! pair) instead of with stored value. The payment is journalled with its
//! outbox entry, reaches the backend once, and the certificate prints; a
//! declined card leaves the user on the card screen with words; a lost
//! answer is settled by asking the terminal, not by charging again; a
//! terminal switched off is shown to operators and not offered to users.

use crate::harness::*;
use anyhow::{Context, Result};
use std::time::Duration;

async fn press(station: &Station, path: &str) -> Result<serde_json::Value> {
    Ok(reqwest::Client::new().post(format!("{}{path}", station.kiosk_url)).send().await?.json().await?)
}

async fn number(b: &Backend) -> Result<String> {
    let page = b.order_as_graduate(1).await?;
    Ok(element_text(&page, "print-number").context("number")?.replace(' ', ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graduate_pays_at_the_e_money_terminal_once_and_the_certificate_prints() -> Result<()> {
    let p = Peers::start().await?;
    let mut terminal = Terminal::start()?;
    let code = p.backend.enrolment_code("Library 1F").await?;
    let port = terminal.port.display().to_string();
    let station = Station::start_with_env(
        &StationOptions { backend_url: &p.backend.url, enrolment_code: &code, printer_uri: &p.printer.uri, pcsc: &p.pcsc, tuning: Tuning::default() },
        &[("SHOMEI_STATION_TERMINAL_PORT", port.as_str()), ("SHOMEI_STATION_TERMINAL_CHARGE_TIMEOUT_S", "4")],
    )?;
    let mut rig = Rig { smtp: p.smtp, backend: p.backend, printer: p.printer, pcsc: p.pcsc, card: p.card, station };
    let card_balance = rig.balance()?;

    // operators see the terminal in the heartbeat
    crate::print_flow::wait_page(&rig.backend, "/admin/stations/1", |page| page.contains("Payment terminal</span></th><td>OK")).await?;

    // pay at the terminal instead of the IC card reader
    let first = number(&rig.backend).await?;
    let s = rig.kiosk_number(&first).await?;
    assert_eq!((s["screen"].as_str(), s["terminal"].as_bool()), (Some("card"), Some(true)), "the terminal is offered: {s}");
    press(&rig.station, "/kiosk/emoney").await?;
    let done = rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert!(done["notice_en"].as_str().unwrap_or("").contains("¥2,600"), "the e-money balance left: {done}");
    assert_eq!(rig.printer.spooled_pdfs().len(), 1);
    assert_eq!(terminal.control("state")?, "state balance=2600 charges=1");
    assert_eq!(rig.balance()?, card_balance, "stored value untouched");
    let order = format!("(SELECT id FROM orders WHERE print_number = '{first}')");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order}"))? != "printed" {
        anyhow::ensure!(std::time::Instant::now() < end, "the order is not printed at the backend");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rig.backend.sql(&format!("SELECT brand || ' ' || amount || ' ' || duplicate FROM terminal_payments WHERE order_id = {order}"))?, "Suica 400 0");
    assert_eq!(rig.journal_steps()?, ["reserved", "charging", "charged", "fetching", "fetched", "submitting", "submitted", "printed"]);
    // staff see how it was paid; a refund is paid back at the desk, stored value untouched
    let order_id = rig.backend.sql(&format!("SELECT {order}"))?;
    let staff = rig.backend.staff_client().await?;
    let detail = format!("{}/admin/orders/{order_id}", rig.backend.url);
    let page = staff.get(&detail).send().await?.text().await?;
    assert!(page.contains("e-money terminal: Suica ¥400"), "{page}");
    let (status, _, _) = crate::accounts::post_form(&staff, &detail, &format!("{detail}/refund"), &[("reason", "Printed the wrong certificate")]).await?;
    assert_eq!(status, 200);
    assert_eq!(rig.backend.sql(&format!("SELECT status || ' ' || (CASE WHEN refunded_at IS NOT NULL THEN 1 ELSE 0 END) FROM orders WHERE id = {order_id}"))?, "cancelled 1");
    assert!(rig.backend.sql("SELECT target FROM audit_log WHERE action = 'order.refund'")?.contains("paid back by the office"));
    assert_eq!(rig.balance()?, card_balance);

    // too little e-money: told so on the card screen, nothing taken; the IC card still pays
    rig.station_reset().await?;
    terminal.control("balance 100")?;
    let second = number(&rig.backend).await?;
    rig.kiosk_number(&second).await?;
    press(&rig.station, "/kiosk/emoney").await?;
    let s = rig.wait_notice_saying("Not enough e-money").await?;
    assert_eq!(s["screen"], "card", "{s}");
    assert!(s["notice_en"].as_str().unwrap_or("").contains("Not enough e-money") && s["notice_ja"].as_str().unwrap_or("").contains("残高が足りません"), "{s}");
    assert_eq!(terminal.control("state")?, "state balance=100 charges=1");
    rig.card.tap()?;
    rig_wait_done(&rig.station).await?;
    rig.card.remove()?;
    assert_eq!(rig.printer.spooled_pdfs().len(), 2);

    // the terminal's answer is lost: the station asks its status and prints once, charged once
    rig.station_reset().await?;
    terminal.control("balance 3000")?;
    terminal.control("mode lose_next_result")?;
    let third = number(&rig.backend).await?;
    rig.kiosk_number(&third).await?;
    press(&rig.station, "/kiosk/emoney").await?;
    rig_wait_done(&rig.station).await?;
    assert_eq!(terminal.control("state")?, "state balance=2600 charges=2");
    assert_eq!(rig.printer.spooled_pdfs().len(), 3);
    assert_eq!(rig.backend.sql("SELECT count(*) FROM terminal_payments")?, "2");

    // the station dies right after the terminal approved, before its journal says so: the
    // restart asks the terminal, records the payment once (paid, not printed), and the
    // number then prints with no second charge
    rig.station_reset().await?;
    let env = [("SHOMEI_STATION_TERMINAL_PORT", port.as_str()), ("SHOMEI_STATION_TERMINAL_CHARGE_TIMEOUT_S", "4")];
    rig.station.restart(&[env[0], env[1], ("SHOMEI_FAILPOINT", "terminal-answered")])?;
    let fifth = number(&rig.backend).await?;
    let order5 = rig.backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{fifth}'"))?;
    let spool = rig.printer.spooled_pdfs().len();
    let s = rig.kiosk_number(&fifth).await?;
    assert_eq!((s["screen"].as_str(), s["terminal"].as_bool()), (Some("card"), Some(true)), "{s}");
    press(&rig.station, "/kiosk/emoney").await?;
    anyhow::ensure!(rig.station.wait_exit(Duration::from_secs(30)), "the station should have died after the terminal's answer:\n{}", rig.station.log());
    rig.station.restart(&env)?;
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while rig.backend.sql(&format!("SELECT count(*) FROM terminal_payments WHERE order_id = {order5}"))? != "1"
        || rig.journal_steps()?.last().map(String::as_str) != Some("failed")
    {
        anyhow::ensure!(std::time::Instant::now() < end, "the restart did not settle the terminal payment: {:?}\n{}", rig.journal_steps()?, rig.station.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(terminal.control("state")?, "state balance=2200 charges=3", "the terminal charged once");
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order5}"))?, "paid");
    assert_eq!(rig.printer.spooled_pdfs().len(), spool, "paid, not printed");
    let s = rig.kiosk_number(&fifth).await?;
    assert!(s["screen"] == "printing" || s["screen"] == "done", "paid: no payment asked again: {s}");
    rig_wait_done(&rig.station).await?;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order5}"))? != "printed" {
        anyhow::ensure!(std::time::Instant::now() < end, "the reprint is not reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(terminal.control("state")?, "state balance=2200 charges=3", "no second charge");
    assert_eq!(rig.backend.sql(&format!("SELECT count(*) FROM terminal_payments WHERE order_id = {order5}"))?, "1");
    assert_eq!(rig.printer.spooled_pdfs().len(), spool + 1, "one Print-Job");

    // switched off: operators see it missing and the kiosk no longer offers it
    rig.station_reset().await?;
    terminal.power_off();
    crate::print_flow::wait_page(&rig.backend, "/admin/stations/1", |page| page.contains("Payment terminal</span></th><td>なし &#x2f; missing")).await?;
    let fourth = number(&rig.backend).await?;
    let s = rig.kiosk_number(&fourth).await?;
    assert_eq!((s["screen"].as_str(), s["terminal"].as_bool()), (Some("card"), Some(false)), "{s}");
    Ok(())
}

async fn rig_wait_done(station: &Station) -> Result<()> {
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s: serde_json::Value = reqwest::get(format!("{}/kiosk/state", station.kiosk_url)).await?.json().await?;
        if s["screen"] == "done" {
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < end, "kiosk shows {s}\n{}", station.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
