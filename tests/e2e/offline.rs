//! P-3 / ST-2: while the backend cannot be reached, a station prints numbers
//! already paid from its encrypted offline copy, pauses IC card payment with a
//! clear message, never prints the same number twice itself, and reports what
//! it printed once the backend is back. The same number printed at two
//! offline stations is caught at sync and shown to staff.

use crate::harness::*;
use anyhow::{Context, Result};
use std::process::Command;
use std::time::Duration;

pub(crate) fn journal(station: &Station, sql: &str) -> Result<String> {
    let out = Command::new("sqlite3").args(["-cmd", ".timeout 5000"]).arg(station.journal_path()).arg(sql).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A new order by the demo graduate, paid online when `paid`; returns (order id, number).
pub(crate) async fn order(b: &Backend, paid: bool) -> Result<(String, String)> {
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("number")?.replace(' ', "");
    if paid {
        b.sql(&format!("UPDATE orders SET status = 'paid', payment_method = 'paypal', paid_at = {} WHERE print_number = '{number}'", shomei_backend::time::now()))?;
    }
    Ok((b.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?, number))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_a_paid_number_prints_from_the_encrypted_copy_and_syncs_once() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (card_order, card_number) = order(&rig.backend, false).await?;
    let (paid_order, paid_number) = order(&rig.backend, true).await?;
    // only the paid number is handed out for offline use (policy a: unpaid ones wait for the backend)
    wait_for("the offline copy", Duration::from_secs(15), || Ok(journal(&rig.station, "SELECT count(*) FROM offline_documents")? == "1")).await?;
    assert!(!journal(&rig.station, "SELECT bundle FROM offline_bundle")?.contains(&format!("\"order_id\":{card_order},")));
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
    assert!(page.contains("Printed twice while offline"), "the list is headed in words");
    assert!(dup.contains(&format!("/admin/orders/{order_id}")) && dup.contains(&number[8..]), "the order and its number (its last digits) are listed: {dup}");
    // only the last four digits: the whole number would print the certificate again
    assert!(dup.contains(&format!("•••• •••• {}", &number[8..])), "{dup}");
    let staff = rig.backend.staff_client().await?;
    for path in ["/admin/stations", "/admin/stations/1", "/admin/stations/2", "/admin/stations.json"] {
        let r = staff.get(format!("{}{path}", rig.backend.url)).send().await?;
        assert_eq!(r.status(), 200, "{path}");
        crate::print_flow::assert_no_full_number(path, &r.text().await?, &number);
    }
    Ok(())
}

/// P-3 policy (b), opted in by the registrar: offline, an unpaid number is
/// paid by stored value against the signed snapshot, a card going at most
/// the floor limit below zero at one station; the debit syncs once. The same
/// number paid again at a second offline station is refunded at sync and
/// shown to staff: nobody pays twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_a_card_pays_offline_within_its_floor_limit_and_the_debit_syncs_once() -> Result<()> {
    let mut rig = Rig::start().await?;
    let code = rig.backend.enrolment_code("Library 2F").await?;
    let second = Station::start(&StationOptions { backend_url: &rig.backend.url, enrolment_code: &code, printer_uri: &rig.printer.uri, pcsc: &rig.pcsc, tuning: Tuning::default() })?;
    let (first_order, first) = order(&rig.backend, false).await?;
    let (second_order, other) = order(&rig.backend, false).await?;
    let amount: i64 = rig.backend.sql(&format!("SELECT total FROM orders WHERE id = {first_order}"))?.parse()?;
    // the card holds half an order; the floor limit is one order's amount
    rig.backend.sql(&format!(
        "INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', {}, 'adjustment', {})",
        shomei_backend::demo::CARD_UID,
        amount / 2 - 3000,
        shomei_backend::time::now()
    ))?;
    let start_balance = amount / 2;
    assert_eq!(rig.balance()?, start_balance);

    // the registrar opts in on the catalogue page, which shows the worst case
    let staff = rig.backend.staff_client().await?;
    let page_url = format!("{}/admin/catalogue", rig.backend.url);
    let floor = amount.to_string();
    let (status, _, _) = crate::accounts::post_form(&staff, &page_url, &format!("{}/admin/catalogue/offline-policy", rig.backend.url), &[("offline_cards", "1"), ("floor_limit", &floor), ("station_total", "20000")]).await?;
    assert_eq!(status, 200);
    let (status, _, body) = crate::accounts::post_form(&staff, &page_url, &format!("{}/admin/catalogue/offline-policy", rig.backend.url), &[("offline_cards", "1"), ("floor_limit", "-5"), ("station_total", "20000")]).await?;
    assert!(status == 400 && body.contains("floor limit is a whole number"), "{status} {body}");

    let uid = shomei_backend::demo::CARD_UID;
    for s in [&rig.station, &second] {
        wait_for("a snapshot with the card's balance", Duration::from_secs(15), || {
            Ok(journal(s, "SELECT bundle FROM offline_bundle")?.contains(&format!("\"uid\":\"{uid}\",\"balance\":{start_balance}")))
        })
        .await?;
    }
    let page = staff.get(&page_url).send().await?.text().await?;
    let worst = page.split("id=\"worst-case\"").nth(1).and_then(|p| p.split("</p>").next()).context("worst case shown")?;
    assert!(worst.contains("2 active stations") && worst.contains(&format!("¥{}", group(2 * amount))), "{worst}");
    rig.backend.stop().await;

    // offline: the first number is paid by the card (half an order below zero: within the floor)
    let s = rig.kiosk_number(&first).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    let done = rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert!(done["notice_en"].as_str().unwrap_or("").contains(&format!("-¥{}", group(amount - start_balance))), "{done}");
    rig.card.remove()?;
    assert_eq!(rig.printer.spooled_pdfs().len(), 1);
    // the second number would take the card past its floor: refused in words, nothing printed
    rig.station_reset().await?;
    let s = rig.kiosk_number(&other).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    let refused = rig.wait_notice_saying("cannot pay this amount").await?;
    assert!(refused["notice_en"].as_str().unwrap_or("").contains("cannot pay this amount") && refused["notice_ja"].as_str().unwrap_or("").contains("引き落とされていません"), "{refused}");
    rig.card.remove()?;
    rig.station_reset().await?;
    assert_eq!(rig.printer.spooled_pdfs().len(), 1);

    // the same first number at the second offline station: it cannot know, so it takes the card again
    let r: serde_json::Value = reqwest::Client::new().post(format!("{}/kiosk/number", second.kiosk_url)).json(&serde_json::json!({ "number": first })).send().await?.json().await?;
    assert_eq!(r["screen"], "card", "{r}");
    rig.card.tap()?;
    wait_for("the second station's print", Duration::from_secs(30), || Ok(journal(&second, "SELECT count(*) FROM jobs WHERE state = 'printed'")? == "1")).await?;
    rig.card.remove()?;

    // back: each debit applied once, the order paid once, the second payment refunded
    rig.backend.restart().await?;
    for s in [&rig.station, &second] {
        wait_for("sync", Duration::from_secs(15), || Ok(journal(s, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    }
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {first_order}"))?, "printed");
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {second_order}"))?, "awaiting_payment");
    assert_eq!(rig.backend.sql("SELECT count(*) || ' ' || sum(duplicate) FROM offline_debits")?, "2 1");
    assert_eq!(rig.balance()?, start_balance - amount, "charged once: the second debit was refunded");
    // delivering the outbox again changes nothing (idempotency keys)
    journal(&rig.station, "UPDATE outbox SET sent_at = NULL")?;
    wait_for("resync", Duration::from_secs(20), || Ok(journal(&rig.station, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    assert_eq!(rig.backend.sql("SELECT count(*) FROM offline_debits")?, "2");
    assert_eq!(rig.balance()?, start_balance - amount);
    let page = rig.backend.staff_page("/admin/stations").await?;
    let twice = page.split("id=\"paid-twice\"").nth(1).context("paid twice shown to staff")?;
    assert!(twice.contains(&format!("/admin/orders/{first_order}")) && twice.contains("refunded to the card"), "{twice}");
    assert!(twice.contains(&format!("•••• •••• {}", &first[8..])), "the number's last four digits: {twice}");
    crate::print_flow::assert_no_full_number("the Stations page", &page, &first);
    Ok(())
}

fn group(n: i64) -> String {
    shomei_shared::Yen(n).to_string().trim_start_matches(['-', '¥']).to_string()
}

/// Policy (b) and a power cut: the station dies right after it journalled an
/// offline card payment (debit and outbox entry committed), before printing.
/// Restarted, it settles the job as not printed; when the backend is back the
/// debit is applied once, the order is paid and reprints without a second charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_killed_after_an_offline_card_payment_charges_once_and_reprints() -> Result<()> {
    let p = Peers::start().await?;
    let code = p.backend.enrolment_code("Library 1F").await?;
    let opts = StationOptions { backend_url: &p.backend.url, enrolment_code: &code, printer_uri: &p.printer.uri, pcsc: &p.pcsc, tuning: Tuning::default() };
    let station = Station::start_with_env(&opts, &[("SHOMEI_FAILPOINT", "charged")])?;
    let mut rig = Rig { smtp: p.smtp, backend: p.backend, printer: p.printer, pcsc: p.pcsc, card: p.card, station };
    let (order_id, number) = order(&rig.backend, false).await?;
    let staff = rig.backend.staff_client().await?;
    let page_url = format!("{}/admin/catalogue", rig.backend.url);
    crate::accounts::post_form(&staff, &page_url, &format!("{}/admin/catalogue/offline-policy", rig.backend.url), &[("offline_cards", "1"), ("floor_limit", "1000"), ("station_total", "20000")]).await?;
    wait_for("a snapshot with balances", Duration::from_secs(15), || Ok(journal(&rig.station, "SELECT bundle FROM offline_bundle")?.contains("\"balances\":[{"))).await?;
    let balance = rig.balance()?;
    rig.backend.stop().await;

    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    assert!(rig.station.wait_exit(Duration::from_secs(20)), "the failpoint after the offline debit");
    rig.card.remove()?;
    rig.station.restart(&[])?;
    wait_for("the job settled", Duration::from_secs(20), || Ok(journal(&rig.station, "SELECT state FROM jobs")? == "failed")).await?;
    assert_eq!(rig.printer.spooled_pdfs().len(), 0, "nothing printed");

    rig.backend.restart().await?;
    wait_for("sync", Duration::from_secs(20), || Ok(journal(&rig.station, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))?, "paid", "paid, not printed: reprintable");
    assert_eq!(rig.balance()?, balance - 400, "charged once");
    // the number prints now without a second charge
    rig.station_reset().await?;
    let s = rig.kiosk_number(&number).await?;
    assert!(s["screen"] == "printing" || s["screen"] == "done", "{s}");
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    wait_for("printed", Duration::from_secs(10), || Ok(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))? == "printed")).await?;
    assert_eq!(rig.balance()?, balance - 400, "still charged once");
    assert_eq!(rig.printer.spooled_pdfs().len(), 1);
    Ok(())
}

/// What a stolen station disk gives (issue 12): no print number, no
/// credential, no key beside the journal; a backup holds the journal alone;
/// the offline copy carries only paid numbers (unpaid ones only under policy
/// b), each as a MAC, and is signed with the backend's Ed25519 key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_station_disk_holds_no_print_number_credential_or_key_and_the_copy_is_signed_by_the_backend() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (paid_id, paid) = order(&rig.backend, true).await?;
    let (unpaid_id, unpaid) = order(&rig.backend, false).await?;
    wait_for("the paid order in the offline copy", Duration::from_secs(15), || {
        Ok(journal(&rig.station, "SELECT bundle FROM offline_bundle")?.contains(&format!("\"order_id\":{paid_id},")))
    })
    .await?;
    let bundle = journal(&rig.station, "SELECT bundle FROM offline_bundle")?;
    assert!(!bundle.contains(&format!("\"order_id\":{unpaid_id},")), "policy (a): an unpaid number is not handed out: {bundle}");
    assert!(bundle.contains("\"number_mac\":\"") && !bundle.contains(&paid), "{bundle}");
    // the journal's files hold neither number nor the credential
    let state = rig.station.journal_path().parent().context("state dir")?.to_path_buf();
    let token = std::fs::read_to_string(state.join("secrets/token"))?;
    assert_eq!(token.len(), 64, "the credential lives in secrets_dir");
    assert_eq!(journal(&rig.station, "SELECT token FROM credential")?, "", "the journal keeps no credential");
    for f in ["journal.sqlite", "journal.sqlite-wal"] {
        let bytes = std::fs::read(state.join(f)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&paid) && !text.contains(&unpaid) && !text.contains(token.trim()), "{f} holds a number or the credential");
    }
    assert!(!state.join("station.key").exists() && state.join("secrets/station.key").exists(), "the cache key is a secret too");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(state.join("secrets"))?.permissions().mode() & 0o777, 0o700);
    // the signature is the backend's Ed25519 key, pinned at enrolment (the database holds it sealed only)
    let signature = journal(&rig.station, "SELECT signature FROM offline_bundle")?;
    assert_eq!(signature.len(), 128, "64-byte Ed25519 signature: {signature}");
    let pinned = std::fs::read_to_string(state.join("secrets/bundle.pub"))?;
    assert_eq!(pinned.trim().len(), 64);
    let sealed = rig.backend.sql("SELECT ed25519_sealed FROM signing_keys")?;
    assert!(!sealed.is_empty() && !sealed.contains(pinned.trim()), "{sealed}");
    // a backup holds the journal alone
    let backups = tempfile::tempdir()?;
    let dest = backups.path().join("station");
    let out = Command::new(bin("shomei-station")).arg("backup").arg(&dest).env("SHOMEI_STATION_STATE_DIR", &state).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&dest)?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names.first().map(String::as_str), Some("journal.sqlite"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("journal.sqlite")), "nothing but the journal: {names:?}");
    for n in &names {
        let text = String::from_utf8_lossy(&std::fs::read(dest.join(n))?).to_string();
        assert!(!text.contains(token.trim()) && !text.contains(&paid), "{n} holds a secret");
    }
    // a journal from an older release, with the credential in it: moved out at start, and gone from the file
    rig.station.kill9();
    journal(&rig.station, &format!("UPDATE credential SET token = '{}'", token.trim()))?;
    std::fs::remove_file(state.join("secrets/token"))?;
    rig.station.restart(&[])?;
    wait_until("the credential moved to secrets_dir", Duration::from_secs(20), || state.join("secrets/token").exists())?;
    assert_eq!(std::fs::read_to_string(state.join("secrets/token"))?.trim(), token.trim());
    assert_eq!(journal(&rig.station, "SELECT token FROM credential")?, "");
    for f in ["journal.sqlite", "journal.sqlite-wal"] {
        let bytes = std::fs::read(state.join(f)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(token.trim()), "{f} still holds the old credential");
    }
    // and the copy still prints a paid number offline, found by its MAC
    rig.backend.stop().await;
    let s = rig.kiosk_number(&paid).await?;
    assert!(s["screen"] == "printing" || s["screen"] == "done", "{s}");
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.printer.spooled_pdfs().len(), 1);
    Ok(())
}

/// Offline the backend's guess throttle cannot be asked: the station slows
/// guessing itself, a few unknown numbers a minute, then a wait in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_guessing_numbers_is_slowed_at_the_station() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (paid_id, paid) = order(&rig.backend, true).await?;
    wait_for("the paid number in the copy", Duration::from_secs(15), || {
        Ok(journal(&rig.station, "SELECT bundle FROM offline_bundle")?.contains(&format!("\"order_id\":{paid_id},")))
    })
    .await?;
    rig.backend.stop().await;
    for _ in 0..5 {
        let guess = shomei_shared::PrintNumber::generate(&mut rand::rngs::OsRng);
        let s = rig.kiosk_number(guess.as_str()).await?;
        assert!(s["message_en"].as_str().unwrap_or("").contains("IC card payment is paused"), "{s}");
        rig.station_reset().await?;
    }
    // the sixth within the minute waits, even a right one
    let s = rig.kiosk_number(&paid).await?;
    assert!(s["message_en"].as_str().unwrap_or("").contains("please wait") || s["message_en"].as_str().unwrap_or("").contains("Please wait"), "{s}");
    assert!(s["message_ja"].as_str().unwrap_or("").contains("秒待って"), "{s}");
    assert_eq!(rig.printer.spooled_pdfs().len(), 0);
    Ok(())
}
