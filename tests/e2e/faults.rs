//! Faults of issue 6 through the real peers: the backend gone while a job
//! prints (the report waits in the outbox and is applied exactly once when it
//! is back), a job the printer aborts half-way (reprintable, no second
//! charge), a printer that does not answer (no charge), two cards on the
//! reader (asked for one, charged once).

use crate::harness::*;
use crate::print_flow::wait_page;
use anyhow::Result;
use std::process::Command;
use std::time::{Duration, Instant};

fn journal(rig: &Rig, sql: &str) -> Result<String> {
    let out = Command::new("sqlite3").args(["-cmd", ".timeout 5000"]).arg(rig.station.journal_path()).arg(sql).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_backend_gone_for_30_s_the_print_report_is_applied_once_when_it_returns() -> Result<()> {
    let mut rig = Rig::start().await?;
    let number = new_order(&rig).await?;
    // the engine holds the job, so that the backend can go away while it prints
    rig.printer.set_mode("hold")?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    wait_for("the Print-Job", Duration::from_secs(20), || Ok(journal(&rig, "SELECT count(*) FROM journal WHERE step = 'submitted'")? == "1")).await?;
    rig.backend.stop().await;
    rig.printer.set_mode("ok")?;
    rig.printer.release_held_job()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    rig.card.remove()?;
    wait_for("the report queued", Duration::from_secs(10), || Ok(journal(&rig, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "1")).await?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let attempts: i64 = journal(&rig, "SELECT attempts FROM outbox")?.parse()?;
    assert!(attempts >= 10, "retried with every heartbeat while the backend was gone: {attempts}");
    assert_eq!(journal(&rig, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")?, "1", "still waiting");

    rig.backend.restart().await?;
    wait_for("the outbox to drain", Duration::from_secs(15), || Ok(journal(&rig, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))?, "printed");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM station_reports")?, "1", "applied once");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM ledger WHERE kind = 'debit'")?, "1");
    assert_eq!(rig.printer.spooled_pdfs().len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_printer_aborts_is_reprinted_without_a_second_charge() -> Result<()> {
    let mut rig = Rig::start().await?;
    let number = new_order(&rig).await?;
    rig.printer.set_mode("fail")?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    let s = rig.wait_kiosk("error", Duration::from_secs(30)).await?;
    assert!(s["message_en"].as_str().unwrap_or("").contains("reprint") || s["title_en"] == "Printing failed", "{s}");
    rig.card.remove()?;
    wait_for("the failure report", Duration::from_secs(10), || Ok(rig.backend.sql("SELECT count(*) FROM station_reports WHERE outcome = 'failed'")? == "1")).await?;
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))?, "paid", "paid and reprintable");
    // the printer works again: the same number prints, and nothing more is charged
    rig.printer.set_mode("ok")?;
    rig.station_reset().await?;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let s = rig.kiosk_number(&number).await?;
    assert!(s["screen"] == "printing" || s["screen"] == "done", "a paid order prints without a tap: {s}");
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    wait_for("printed", Duration::from_secs(10), || Ok(rig.backend.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))? == "printed")).await?;
    assert_eq!(rig.backend.sql("SELECT count(*) FROM ledger WHERE kind = 'debit'")?, "1", "charged once");
    assert_eq!(rig.balance()?, 2600);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_that_does_not_answer_takes_no_money() -> Result<()> {
    let mut rig = Rig::start().await?;
    let number = new_order(&rig).await?;
    rig.printer.kill();
    let s = rig.wait_kiosk("out_of_service", Duration::from_secs(10)).await?;
    assert!(s["message_en"].as_str().unwrap_or("").contains("does not respond"), "{s}");
    let s = rig.kiosk_number(&number).await?;
    assert_ne!(s["screen"], "card", "{s}");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM reservations")?, "0", "nothing reserved");
    assert_eq!(rig.balance()?, 3000);
    let page = wait_page(&rig.backend, "/admin/stations", |p| p.contains("the printer does not respond")).await?;
    assert!(page.contains("data-level=\"bad\""));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cards_on_the_reader_are_refused_until_one_is_left() -> Result<()> {
    let mut rig = Rig::start().await?;
    let number = new_order(&rig).await?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    // a second card in the field: the reader answers with an error status word
    rig.card.command("sw 6A81", "sw 6A81")?;
    rig.card.tap()?;
    let s = rig.wait_notice().await?;
    assert!(s["notice_en"].as_str().unwrap_or("").contains("Place one card only"), "{s}");
    assert_eq!(rig.balance()?, 3000, "nothing charged");
    rig.card.remove()?;
    rig.card.command("ok", "ok")?;
    tokio::time::sleep(Duration::from_millis(900)).await;
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.balance()?, 2600, "charged once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_reader_stops_the_station_until_it_is_back() -> Result<()> {
    let mut rig = Rig::start().await?;
    let number = new_order(&rig).await?;
    rig.pcsc.stop();
    let s = rig.wait_kiosk("out_of_service", Duration::from_secs(15)).await?;
    assert!(s["message_en"].as_str().unwrap_or("").contains("the card reader is not connected"), "{s}");
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "out_of_service", "{s}");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM reservations")?, "0", "nothing reserved");
    let page = wait_page(&rig.backend, "/admin/stations", |p| p.contains("the card reader is missing")).await?;
    assert!(page.contains("data-level=\"bad\""));
    // plugged back: the station serves again and the card pays once
    rig.pcsc.restart()?;
    rig.wait_kiosk("idle", Duration::from_secs(20)).await?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.balance()?, 2600);
    Ok(())
}

/// A small tmpfs for the station's journal (unmounted when dropped).
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<SmallDisk> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state");
        std::fs::create_dir(&path)?;
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"]).arg(&path).output()?;
        anyhow::ensure!(
            out.status.success(),
            "this test mounts a small tmpfs for the station's journal and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(SmallDisk { path, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_journals_disk_full_the_station_takes_no_one_and_loses_nothing() -> Result<()> {
    let disk = SmallDisk::mount("8m")?;
    let p = Peers::start().await?;
    let code = p.backend.enrolment_code("Library 1F").await?;
    let state = disk.path.display().to_string();
    let station = Station::start_with_env(
        &StationOptions { backend_url: &p.backend.url, enrolment_code: &code, printer_uri: &p.printer.uri, pcsc: &p.pcsc, tuning: Tuning::default() },
        &[("SHOMEI_STATION_STATE_DIR", state.as_str())],
    )?;
    let mut rig = Rig { smtp: p.smtp, backend: p.backend, printer: p.printer, pcsc: p.pcsc, card: p.card, station };
    let jpath = disk.path.join("journal.sqlite");
    let jq = |sql: &str| -> Result<String> {
        let out = Command::new("sqlite3").args(["-readonly", "-cmd", ".timeout 5000"]).arg(&jpath).arg(sql).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let balance = rig.balance()?;

    // one print, committed and reported
    let (first, _) = rig.order_and_read_mail(1).await?;
    rig.kiosk_number(&first).await?;
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    rig.card.remove()?;
    wait_for("the report", Duration::from_secs(10), || Ok(jq("SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;

    // the disk fills up (something else on the station wrote a big file)
    let _ = Command::new("dd").args(["if=/dev/zero", "bs=64k", "status=none"]).arg(format!("of={}", disk.path.join("filler").display())).status();
    rig.station_reset().await?;
    let s = {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let s = rig.kiosk_state().await?;
            if s["screen"] == "out_of_service" || Instant::now() > end {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(s["screen"], "out_of_service", "{s}");
    assert!(s["message_en"].as_str().unwrap_or("").contains("storage is full") && s["message_ja"].as_str().unwrap_or("").contains("記録領域"), "{s}");
    let second = crate::offline::order(&rig.backend, false).await?.1;
    let s = rig.kiosk_number(&second).await?;
    assert_eq!(s["screen"], "out_of_service", "no user is taken: {s}");
    assert_eq!(rig.backend.sql("SELECT count(*) FROM reservations")?, "1", "nothing reserved");
    assert_eq!(rig.balance()?, balance - 400, "nothing charged");
    // what was committed is intact
    assert_eq!(jq("PRAGMA integrity_check")?, "ok");
    assert_eq!(jq("SELECT state FROM jobs")?, "printed");
    assert_eq!(jq("SELECT count(*) FROM outbox WHERE sent_at IS NULL")?, "0");

    // even without the free-space check, a journal that cannot be written takes no money
    // and gives the number back at once
    rig.station.restart(&[("SHOMEI_STATION_STATE_DIR", state.as_str()), ("SHOMEI_STATION_MIN_FREE_DISK_MB", "0")])?;
    rig.wait_kiosk("idle", Duration::from_secs(10)).await?;
    let s = rig.kiosk_number(&second).await?;
    assert_eq!(s["screen"], "error", "{s}");
    assert!(s["message_en"].as_str().unwrap_or("").contains("Nothing was charged"), "{s}");
    assert_eq!(rig.backend.sql("SELECT status FROM reservations ORDER BY id DESC LIMIT 1")?, "released", "the number is free for another station");
    assert_eq!(rig.balance()?, balance - 400, "nothing charged");
    assert_eq!(jq("PRAGMA integrity_check")?, "ok");
    assert_eq!(jq("SELECT group_concat(state) FROM jobs")?, "printed");
    rig.station.restart(&[("SHOMEI_STATION_STATE_DIR", state.as_str())])?;

    // room again: the station serves again
    std::fs::remove_file(disk.path.join("filler"))?;
    rig.wait_kiosk("idle", Duration::from_secs(10)).await?;
    let s = rig.kiosk_number(&second).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    rig.card.remove()?;
    assert_eq!(rig.balance()?, balance - 800);
    assert_eq!(rig.printer.spooled_pdfs().len(), 2);
    drop(rig);
    Ok(())
}

/// The printer stops under a paid job (the tray runs empty, an operator
/// pauses it, paper jams): the kiosk says so within seconds, in both
/// languages, long before the job timeout, keeps the payment and sends the
/// user elsewhere; the job is cancelled, reported failed, and the same number
/// then prints once with no second charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_stopped_mid_job_is_seen_at_once_and_the_paid_number_prints_once_afterwards() -> Result<()> {
    // a job timeout of three minutes: only the stop itself can end the wait early
    let mut rig = Rig::start_tuned(Tuning { idle_timeout_s: 60, job_timeout_s: 180 }).await?;
    rig.backend.sql(&format!("INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', 10000, 'adjustment', {})", shomei_backend::demo::CARD_UID, shomei_backend::time::now()))?;
    for (how, en, ja) in [("media empty", "out of paper", "用紙切れ"), ("paused", "paused", "一時停止中"), ("jammed", "paper jam", "紙づまり")] {
        let number = new_order(&rig).await?;
        let order = rig.backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
        let balance_before = rig.balance()?;
        // the engine reports the stop while it holds the job, until released
        rig.printer.set_mode(match how {
            "media empty" => "stop media-empty",
            "paused" => "stop paused",
            _ => "stop media-jam",
        })?;
        let s = rig.kiosk_number(&number).await?;
        assert_eq!(s["screen"], "card", "{how}: {s}");
        rig.card.tap()?;
        rig.wait_kiosk("printing", Duration::from_secs(15)).await?;
        let error = rig.wait_kiosk("error", Duration::from_secs(60)).await.map_err(|e| anyhow::anyhow!("{how}: the stop was not told before the job timeout: {e}"))?;
        let said = format!("{} {} {} {}", error["title_en"], error["message_en"], error["title_ja"], error["message_ja"]);
        for words in ["The printer stopped", en, "Your payment is kept", "another station", "プリンタが止まりました", ja, "お支払いは保持されています"] {
            assert!(said.contains(words), "{how}: {words:?} missing from {said}");
        }
        rig.card.remove()?;
        // cancelled at the printer, reported failed: paid, charged once, reprintable
        wait_for(&format!("{how}: Cancel-Job"), Duration::from_secs(20), || Ok(rig.printer.log().matches("Cancel-Job").count() >= 1)).await?;
        rig.printer.set_mode("ok")?;
        rig.printer.release_held_job()?;
        wait_for(&format!("{how}: the failed print reported"), Duration::from_secs(40), || {
            Ok(rig.backend.sql(&format!("SELECT count(*) FROM station_reports r JOIN reservations v ON v.id = r.reservation_id WHERE v.order_id = {order} AND r.outcome = 'failed'"))? == "1")
        })
        .await?;
        assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order}"))?, "paid", "{how}");
        assert_eq!(rig.backend.sql(&format!("SELECT count(*) FROM reservations WHERE order_id = {order} AND status = 'active'"))?, "0", "{how}");
        assert_eq!(rig.balance()?, balance_before - 400, "{how}: charged once");

        // the printer is back: the same number prints, with no second charge
        rig.station_reset().await?;
        let s = wait_number_taken(&rig, &number).await?;
        assert!(s["screen"] == "printing" || s["screen"] == "done", "{how}: paid orders skip the card: {s}");
        rig.wait_kiosk("done", Duration::from_secs(30)).await?;
        wait_for(&format!("{how}: printed"), Duration::from_secs(10), || Ok(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order}"))? == "printed")).await?;
        assert_eq!(journal(&rig, &format!("SELECT count(*) FROM jobs WHERE print_number = '{number}' AND state = 'printed'"))?, "1", "{how}: printed once");
        assert_eq!(rig.balance()?, balance_before - 400, "{how}: no second charge");
        rig.station_reset().await?;
    }
    Ok(())
}

/// A new order by the demo graduate; its print number as the order page shows it.
async fn new_order(rig: &Rig) -> Result<String> {
    let page = rig.backend.order_as_graduate(1).await?;
    Ok(anyhow::Context::context(element_text(&page, "print-number"), "print number")?.replace(' ', ""))
}

/// Enters `number` once the kiosk takes numbers again (the printer reports
/// ready after a poll); returns the screen.
async fn wait_number_taken(rig: &Rig, number: &str) -> Result<serde_json::Value> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s = rig.kiosk_number(number).await?;
        if s["screen"] != "out_of_service" && s["screen"] != "idle" {
            return Ok(s);
        }
        anyhow::ensure!(Instant::now() < end, "the kiosk does not take the number again: {s}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
