//! The walking skeleton: one certificate from order to printed page, through
//! every real part (SMTP, IPP, PC/SC, the browser).

use crate::harness::*;
use anyhow::{Context, Result};
use fantoccini::Locator;
use std::process::Command;
use std::time::{Duration, Instant};

on_both_screens!(a_graduate_orders_and_prints_a_certificate_at_the_kiosk, a_graduate_orders_and_prints_a_certificate_at_the_kiosk_at_phone_width, a_graduate_orders_and_prints_a_certificate_at_the_kiosk_on);
async fn a_graduate_orders_and_prints_a_certificate_at_the_kiosk_on(screen: Screen) -> Result<()> {
    let peers = Peers::start().await?;
    let browser = Browser::start_on(screen).await?;
    let b = &browser.client;

    // Staff make the station's enrolment code in the admin panel.
    b.goto(&format!("{}/admin", peers.backend.url)).await?;
    b.find(Locator::Id("login")).await?.send_keys(shomei_backend::demo::STAFF_LOGIN).await?;
    b.find(Locator::Id("password")).await?.send_keys(shomei_backend::demo::STAFF_PASSWORD).await?;
    b.find(Locator::Id("code")).await?.send_keys(&peers.backend.staff_code().await?).await?;
    b.find(Locator::Id("staff-login")).await?.click().await?;
    b.wait().for_element(Locator::Css("nav a[href=\"/admin/stations\"]")).await?;
    b.goto(&format!("{}/admin/stations", peers.backend.url)).await?;
    b.wait().for_element(Locator::Id("station_name")).await?.send_keys("Library 1F").await?;
    b.find(Locator::Id("create-code")).await?.click().await?;
    let code = b.wait().for_element(Locator::Id("enrolment-code")).await?.text().await?;
    assert_eq!(code.len(), 34, "seven groups of four (140 bits): {code}");
    let mut rig = Rig::assemble(peers, &code, Tuning::default())?;
    let balance_before = rig.balance()?;

    // The graduate orders on the portal; the number on the page is the one mailed.
    b.goto(&format!("{}/login", rig.backend.url)).await?;
    b.find(Locator::Id("email")).await?.send_keys(shomei_backend::demo::GRADUATE_EMAIL).await?;
    b.find(Locator::Id("password")).await?.send_keys(shomei_backend::demo::GRADUATE_PASSWORD).await?;
    b.find(Locator::Id("second_password")).await?.send_keys(shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    b.find(Locator::Id("login")).await?.click().await?;
    b.wait().for_element(Locator::Id("new-order")).await?.click().await?;
    let copies = b.wait().for_element(Locator::Css("input[name^=copies_]")).await?;
    copies.clear().await?;
    copies.send_keys("1").await?;
    b.find(Locator::Id("to-confirm")).await?.click().await?;
    browser.wait_id("confirm").await?;
    b.find(Locator::Id("place-order")).await?.click().await?;
    let shown = b.wait().for_element(Locator::Id("print-number")).await?.text().await?;
    let page = browser.body_text().await?;
    assert!(page.contains("¥400") && page.contains("印刷期限") && page.contains("Print by"), "{page}");
    let mail = rig.smtp.wait_for_mail(shomei_backend::demo::GRADUATE_EMAIL, Duration::from_secs(15))?;
    let number = print_number_in(&mail).context("print number in the mail")?;
    assert_eq!(shown.replace(' ', ""), number, "page and mail show the same number");
    assert_eq!(shown.len(), 14, "shown in groups of four: {shown}");
    assert!(mail.contains("Print by:") && mail.contains("印刷期限"), "deadline in the mail: {mail}");

    // The station is enrolled and its heartbeats reach the admin panel.
    let stations = wait_page(&rig.backend, "/admin/stations", |p| p.contains("data-online=\"true\" data-level=\"ok\"")).await?;
    assert!(stations.contains("Library 1F") && stations.contains("稼働中 / ready"), "{stations}");
    assert!(stations.contains("data-field=\"printer_reasons\">通知なし"), "printer-state-reasons on the fleet page, in words: {stations}");

    // The kiosk, in a real browser: type the number, see the order, tap the card.
    b.goto(&rig.station.kiosk_url).await?;
    browser.wait_screen("idle", Duration::from_secs(10)).await?;
    let started = Instant::now();
    for d in number.chars() {
        b.find(Locator::Id(&format!("key-{d}"))).await?.click().await?;
    }
    b.find(Locator::Id("ok")).await?.click().await?;
    browser.wait_screen("card", Duration::from_secs(10)).await?;
    let text = browser.body_text().await?;
    assert!(text.contains("卒業証明書"), "certificate shown: {text}");
    assert!(text.contains("¥400"), "amount = fee 300 + system fee 100: {text}");
    assert!(text.contains("System usage fee") && text.contains("¥100"), "the fee is its own row: {text}");
    assert!(text.contains("ICカードをタッチしてください") && text.contains("Tap your IC card"), "{text}");

    rig.card.tap()?;
    browser.wait_screen("done", Duration::from_secs(30)).await?;
    let text = browser.body_text().await?;
    assert!(text.contains("¥2,600"), "balance left shown: {text}");
    eprintln!("kiosk: number typed -> done in {:?}", started.elapsed());
    let png = b.screenshot().await?;
    std::fs::write(std::env::temp_dir().join("shomei-kiosk-done.png"), png)?;
    browser.close().await;

    // The printer received exactly the certificate PDF, with the graduate's name in it.
    let pdfs = rig.printer.spooled_pdfs();
    assert_eq!(pdfs.len(), 1, "one job: {pdfs:?}");
    let printed = std::fs::read(&pdfs[0])?;
    let ours = rig.backend.dir.path().join("order.pdf");
    let order_id = rig.backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
    std::fs::write(&ours, rig.backend.order_pdf(&order_id).await?)?;
    assert_eq!(printed, std::fs::read(&ours)?, "the printer got the certificate PDF byte for byte");
    let text = Command::new("pdftotext").arg(&pdfs[0]).arg("-").output()?;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("山田 花子") && text.contains("YAMADA Hanako"), "name on the certificate: {text}");

    // Paid once, and the backend shows the order printed.
    assert_eq!(rig.balance()?, balance_before - 400);
    let orders = wait_page(&rig.backend, "/admin/orders", |p| p.contains("data-status=\"printed\"")).await?;
    assert!(orders.contains(&format!("•••• •••• {}", &number[8..])), "staff see the number's end");
    assert_no_full_number("the orders page", &orders, &number);
    // nor do operators on the Stations pages and their live data, after the job
    let staff = rig.backend.staff_client().await?;
    for path in ["/admin/stations", "/admin/stations/1", "/admin/stations.json"] {
        let r = staff.get(format!("{}{path}", rig.backend.url)).send().await?;
        assert_eq!(r.status(), 200, "{path}");
        assert_no_full_number(path, &r.text().await?, &number);
    }
    // The QR code on the printed page leads a third party to the public verification page.
    let png = rig.backend.dir.path().join("page");
    // (300 dpi: the resolution a phone camera sees a printed page at, close up; the QR code carries a signed payload too)
    Command::new("pdftoppm").args(["-r", "300", "-png", "-f", "1", "-l", "1"]).arg(&pdfs[0]).arg(&png).status()?;
    let page1 = std::fs::read_dir(rig.backend.dir.path())?.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().contains("page") && p.extension().is_some_and(|x| x == "png")).context("rendered page")?;
    let qr = Command::new("zbarimg").args(["--quiet", "--raw"]).arg(&page1).output()?;
    let link = String::from_utf8_lossy(&qr.stdout).trim().to_string();
    assert!(link.starts_with(&format!("{}/verify?code=", rig.backend.url)), "QR: {link:?}");
    assert!(link.contains("#p="), "the printed QR code carries its signed payload: {link:?}");
    let verdict = reqwest::get(&link).await?.text().await?;
    assert!(element_text(&verdict, "verdict").unwrap_or_default().contains("有効"), "the printed certificate verifies: {verdict}");
    let steps = rig.journal_steps()?;
    assert_eq!(
        steps,
        ["reserved", "charging", "charged", "fetching", "fetched", "submitting", "submitted", "printed"],
        "journal, in order"
    );
    // job-impressions-completed as the printer counted it (this test printer's
    // external engine does not count, so it says 0) is journalled and reported
    let out = std::process::Command::new("sqlite3").arg(rig.station.journal_path()).arg("SELECT detail FROM journal WHERE step = 'printed'").output()?;
    let recorded = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(recorded.strip_prefix("impressions ").is_some_and(|n| n.parse::<u32>().is_ok()), "{recorded}");
    let audit = rig.backend.sql("SELECT detail FROM audit_log WHERE action = 'print.printed'")?;
    assert!(audit.contains(&recorded), "{audit} vs {recorded}");
    // The printer's state reaches the fleet page and the health endpoint.
    // (the heartbeat after the job may still report "processing": wait for the next beats)
    let mut h = serde_json::Value::Null;
    for _ in 0..50 {
        let health = reqwest::get(format!("{}/api/stations/1/health", rig.backend.url)).await?;
        assert_eq!(health.status(), 200);
        h = health.json().await?;
        if h["printer_state"] == "idle" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(h["printer_state"], "idle", "{h}");
    // the station's own Prometheus metrics, on its loopback listener
    let metrics = reqwest::get(format!("{}/metrics", rig.station.kiosk_url)).await?.text().await?;
    for line in ["shomei_station_jobs{state=\"printed\"} 1", "shomei_station_outbox 0", "shomei_station_printer_ready 1", "shomei_station_reader_present 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing:\n{metrics}");
    }
    rig.printer.kill();
    Ok(())
}

/// Every way a 12-digit print number may be written out: plain, in groups of
/// four with spaces, and with hyphens.
pub(crate) fn spellings(number: &str) -> Vec<String> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits.len(), 12, "a print number: {number:?}");
    let groups = [&digits[..4], &digits[4..8], &digits[8..]];
    let (spaced, hyphenated) = (groups.join(" "), groups.join("-"));
    vec![digits, spaced, hyphenated]
}

/// Fails if `text` (a page, a mail, a log) holds the whole number in any spelling.
pub(crate) fn assert_no_full_number(what: &str, text: &str, number: &str) {
    for spelling in spellings(number) {
        assert!(!text.contains(&spelling), "{what} shows the whole number as {spelling:?}: {text}");
    }
}

/// Polls a staff page until `ok` says it shows what we wait for.
pub async fn wait_page(backend: &Backend, path: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let page = backend.staff_page(path).await?;
        if ok(&page) {
            return Ok(page);
        }
        if Instant::now() > end {
            return Err(anyhow::anyhow!("{path} never showed what was expected:\n{page}")).context("wait_page");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
