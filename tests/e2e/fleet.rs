//! A-5 / ST-4: the operator sees every station's condition at a glance (colour
//! and words), the page updates itself without a reload, operators are mailed
//! once when a station's printer needs attention or the station goes offline
//! and once when it is fine again, and a station's page charts its last 24 h.

use crate::harness::*;
use anyhow::{Context, Result};
use fantoccini::Locator;
use std::time::{Duration, Instant};

const OPS: &str = "printers@example.ac.jp";

on_both_screens!(operators_see_each_station_live_and_are_mailed_when_one_needs_attention, operators_see_each_station_live_and_are_mailed_when_one_needs_attention_at_phone_width, operators_see_each_station_live_and_are_mailed_when_one_needs_attention_on);
async fn operators_see_each_station_live_and_are_mailed_when_one_needs_attention_on(screen: Screen) -> Result<()> {
    let peers = Peers::start_with(|c| {
        c.stations.alert_emails = vec![OPS.into()];
        c.stations.alert_check_s = 1;
        c.stations.offline_after_s = 4;
    })
    .await?;
    let code = peers.backend.enrolment_code("Library 1F").await?;
    let mut rig = Rig::assemble(peers, &code, Tuning::default())?;

    // the operator's fleet page, in a browser
    let browser = Browser::start_on(screen).await?;
    let b = &browser.client;
    b.goto(&format!("{}/admin/login", rig.backend.url)).await?;
    browser.wait_id("login").await?.send_keys(shomei_backend::demo::STAFF_LOGIN).await?;
    b.find(Locator::Id("password")).await?.send_keys(shomei_backend::demo::STAFF_PASSWORD).await?;
    b.find(Locator::Id("code")).await?.send_keys(&rig.backend.staff_code().await?).await?;
    b.find(Locator::Id("staff-login")).await?.click().await?;
    b.wait().for_element(Locator::Css("nav a[href=\"/admin/stations\"]")).await?;
    b.goto(&format!("{}/admin/stations", rig.backend.url)).await?;
    let cond = || async { browser.wait_for(Locator::Css("#station-1 [data-field=condition]")).await?.text().await.map_err(anyhow::Error::from) };
    let end = Instant::now() + Duration::from_secs(10);
    while !cond().await?.contains("ready") {
        anyhow::ensure!(Instant::now() < end, "never ready: {}", cond().await?);
        b.refresh().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let class = browser.wait_for(Locator::Css("#station-1 [data-field=condition]")).await?.attr("class").await?.unwrap_or_default();
    assert!(class.contains("cond-ok"), "{class}");
    // mark this page: a reload would lose the mark
    b.execute("window.__notReloaded = true", vec![]).await?;

    // out of paper: the row turns red and says so, by itself
    rig.printer.set_paper(0)?;
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let text = cond().await?;
        if text.contains("out of paper") {
            assert!(text.contains("用紙切れ"), "{text}");
            break;
        }
        anyhow::ensure!(Instant::now() < end, "the row did not change: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let class = browser.wait_for(Locator::Css("#station-1 [data-field=condition]")).await?.attr("class").await?.unwrap_or_default();
    assert!(class.contains("cond-bad"), "{class}");
    assert_eq!(b.execute("return window.__notReloaded === true", vec![]).await?, serde_json::json!(true), "updated without a reload");
    let mail = rig.smtp.wait_for_mail_with(OPS, "out of paper", Duration::from_secs(15))?;
    assert!(mail.contains("Library 1F") && mail.contains("用紙切れ") && mail.contains("/admin/stations/1"), "{mail}");

    // refilled: one "back to normal" mail, and no repeat of the alert
    rig.printer.set_paper(250)?;
    rig.smtp.wait_for_mail_with(OPS, "back to normal", Duration::from_secs(15))?;
    // the pass that queued it remembered the station as fine; once a heartbeat
    // since says the printer is fine too, no pass has anything more to mail
    let ops_mails = |kind: &str| rig.backend.sql(&format!("SELECT count(*) FROM outbox WHERE to_addr = '{OPS}' AND subject LIKE '%{kind}%'"));
    let recovered_at = rig.backend.sql(&format!("SELECT max(created_at) FROM outbox WHERE to_addr = '{OPS}' AND subject LIKE '%back to normal%'"))?;
    let fine_since = format!(
        "SELECT count(*) FROM stations WHERE id = 1 AND last_seen > {recovered_at} \
         AND COALESCE(printer_reasons, '') NOT LIKE '%media-empty%' AND COALESCE(printer_reasons, '') NOT LIKE '%media-needed%'"
    );
    // (the alerts pass that follows that heartbeat clears the station's alert)
    let end = Instant::now() + Duration::from_secs(10);
    while rig.backend.sql(&fine_since)? != "1" || rig.backend.sql("SELECT alert FROM stations WHERE id = 1")? != "" {
        anyhow::ensure!(
            Instant::now() < end,
            "no heartbeat with paper in the printer and no pass clearing the alert after the recovery mail: alert {:?}",
            rig.backend.sql("SELECT alert FROM stations WHERE id = 1")?
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let subjects = rig.backend.sql(&format!("SELECT subject FROM outbox WHERE to_addr = '{OPS}' ORDER BY id"))?.lines().collect::<Vec<_>>().join(" | ");
    assert_eq!(ops_mails("out of paper")?, "1", "one mail per incident: {subjects}");
    assert_eq!(ops_mails("back to normal")?, "1", "{subjects}");

    // the station's own page: condition and four 24-hour charts
    b.goto(&format!("{}/admin/stations/1", rig.backend.url)).await?;
    browser.wait_id("chart-online").await?;
    for id in ["chart-online", "chart-jobs", "chart-supply", "chart-blocked"] {
        let svg = b.find(Locator::Css(&format!("#{id} svg[role=img]"))).await?;
        assert!(svg.attr("aria-label").await?.is_some_and(|l| !l.is_empty()), "{id} has a label");
    }
    let bars = b.find_all(Locator::Css("#chart-online rect")).await?;
    let mut heights = Vec::new();
    for r in &bars {
        heights.push(r.attr("height").await?.unwrap_or_default().parse::<i64>().unwrap_or(0));
    }
    assert_eq!(heights.len(), 24);
    assert!(heights.last().copied().unwrap_or(0) > 0, "this hour shows the station online: {heights:?}");
    let blocked = b.find(Locator::Css("#chart-blocked rect:last-of-type")).await?.attr("height").await?.unwrap_or_default();
    assert_ne!(blocked, "0", "the minutes out of paper show in this hour");

    // the station goes away: offline in words, and a mail
    rig.station.kill9();
    b.goto(&format!("{}/admin/stations", rig.backend.url)).await?;
    let end = Instant::now() + Duration::from_secs(20);
    while !cond().await?.contains("offline") {
        anyhow::ensure!(Instant::now() < end, "never offline: {}", cond().await?);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(cond().await?.contains("オフライン"));
    let mail = rig.smtp.wait_for_mail_with(OPS, "offline", Duration::from_secs(15)).context("offline alert")?;
    assert!(mail.contains("Library 1F"), "{mail}");
    browser.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_station_shows_out_of_service_and_takes_no_money() -> Result<()> {
    let rig = Rig::start().await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    let staff = rig.backend.staff_client().await?;
    let list = format!("{}/admin/stations", rig.backend.url);
    let (s, _, _) = crate::accounts::post_form(&staff, &list, &format!("{list}/1/revoke"), &[]).await?;
    assert_eq!(s, 200);
    // the next heartbeat is refused: the kiosk says so and takes nobody
    let screen = rig.wait_kiosk("out_of_service", Duration::from_secs(10)).await?;
    assert!(screen["message_en"].as_str().unwrap_or("").contains("taken out of service"), "{screen}");
    assert!(screen["message_ja"].as_str().unwrap_or("").contains("使用を停止"), "{screen}");
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "out_of_service", "{s}");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM reservations")?, "0", "nothing reserved");
    assert_eq!(rig.balance()?, 3000, "nothing charged");
    let page = rig.backend.staff_page("/admin/stations").await?;
    assert!(page.contains("revoked: out of service") && page.contains("data-level=\"off\""), "{page}");
    Ok(())
}

/// Operators take a station out of service for maintenance (its kiosk says so
/// in both languages and takes no one), print a test page on its printer
/// from the panel, and put it back in service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_take_a_station_out_of_service_and_print_a_test_page() -> Result<()> {
    let mut rig = Rig::start().await?;
    let staff = rig.backend.staff_client().await?;
    let page_url = format!("{}/admin/stations/1", rig.backend.url);
    let (status, _, _) = crate::accounts::post_form(&staff, &page_url, &format!("{page_url}/service"), &[("in_service", "0")]).await?;
    assert_eq!(status, 200);
    let end = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = rig.kiosk_state().await?;
        if s["screen"] == "out_of_service" || Instant::now() > end {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(s["message_en"].as_str().unwrap_or("").contains("maintenance") && s["message_ja"].as_str().unwrap_or("").contains("保守"), "{s}");
    let (number, _) = rig.order_and_read_mail(1).await?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "out_of_service", "no one is taken: {s}");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM reservations")?, "0");
    let page = staff.get(&page_url).send().await?.text().await?;
    assert!(page.contains("Out of service (maintenance)") && page.contains("put-in-service"), "{page}");

    // a test page, printed by the station on its printer
    crate::accounts::post_form(&staff, &page_url, &format!("{page_url}/test-page"), &[]).await?;
    crate::print_flow::wait_page(&rig.backend, "/admin/stations/1", |p| p.contains("): printed")).await?;
    let pdfs = rig.printer.spooled_pdfs();
    assert_eq!(pdfs.len(), 1);
    let text = std::process::Command::new("pdftotext").arg(&pdfs[0]).arg("-").output()?;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Test page") && text.contains("テストページ") && text.contains("Library 1F") && text.contains("証明大学 Shomei University"), "the page, the station and its university: {text}");

    // back in service: the number prints
    crate::accounts::post_form(&staff, &page_url, &format!("{page_url}/service"), &[("in_service", "1")]).await?;
    rig.wait_kiosk("idle", Duration::from_secs(10)).await?;
    let end = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = rig.kiosk_number(&number).await?;
        if s["screen"] == "card" || Instant::now() > end {
            break s;
        }
        rig.station_reset().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.printer.spooled_pdfs().len(), 2);
    let audit = rig.backend.sql("SELECT action FROM audit_log WHERE action LIKE 'station.%' ORDER BY id")?;
    assert!(audit.contains("station.out_of_service") && audit.contains("station.test_page") && audit.contains("station.in_service"), "{audit}");
    Ok(())
}
