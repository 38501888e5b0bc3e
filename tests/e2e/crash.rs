//! ST-5 exactly-once: the station dies (abort right after the journal
//! committed a step, like a power cut) at every step of a job, is started
//! again, and settles the job itself. Then the invariants are checked against
//! the backend's ledger and the printer's spool: the card is debited at most
//! once for the order, every debit ends printed or reprintable (and the
//! reprint takes no second debit), at most one Print-Job per payment, the
//! station's and the backend's views agree, and the journal is intact.

use crate::harness::*;
use anyhow::{Context, Result};
use std::process::Command;
use std::time::{Duration, Instant};

/// One query on the rig station's journal with the sqlite3 CLI.
fn journal(rig: &Rig, sql: &str) -> Result<String> {
    journal_of(&rig.station, sql)
}

/// The station's charges for print number `number`: its `charged` journal steps.
fn station_charges(st: &Station, number: &str) -> Result<i64> {
    Ok(journal_of(st, &format!("SELECT count(*) FROM journal l JOIN jobs j ON j.id = l.job_id WHERE l.step = 'charged' AND j.print_number = '{number}'"))?.parse()?)
}

/// One query on a station's journal with the sqlite3 CLI.
fn journal_of(st: &Station, sql: &str) -> Result<String> {
    let out = Command::new("sqlite3").args(["-cmd", ".timeout 5000"]).arg(st.journal_path()).arg(sql).output()?;
    anyhow::ensure!(out.status.success(), "sqlite3: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Reservations of an order the backend still holds for some station.
fn active_reservations(rig: &Rig, order_id: &str) -> Result<i64> {
    Ok(rig.backend.sql(&format!("SELECT count(*) FROM reservations WHERE order_id = {order_id} AND status = 'active'"))?.parse()?)
}

/// Checks the invariants for order `order_id`; returns (debits, order status, new spooled PDFs).
fn invariants(rig: &Rig, order_id: &str, number: &str, spool_before: usize) -> Result<(i64, String, usize)> {
    let debits: i64 = rig.backend.sql(&format!("SELECT count(*) FROM ledger WHERE order_id = {order_id} AND kind = 'debit'"))?.parse()?;
    assert!(debits <= 1, "order {order_id} debited {debits} times");
    assert_eq!(station_charges(&rig.station, number)?, debits, "the station's charged steps for order {order_id} are the ledger's debits");
    let status = rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))?;
    let spooled = rig.printer.spooled_pdfs().len() - spool_before;
    assert!(spooled <= 1, "order {order_id}: {spooled} Print-Jobs");
    assert_eq!(status == "printed", spooled == 1, "printed at the backend exactly when the printer got it (status {status}, {spooled} spooled)");
    if debits == 1 {
        assert!(matches!(status.as_str(), "paid" | "printed"), "a debit is printed or reprintable, not {status}");
    }
    assert_eq!(active_reservations(rig, order_id)?, 0, "no reservation of order {order_id} is left active after settlement");
    assert_eq!(journal(rig, "PRAGMA integrity_check")?, "ok");
    Ok((debits, status, spooled))
}

/// Where the station dies: every journal step, and the two moments between
/// a side effect and its journal line (the backend's charge answered, the
/// printer's Print-Job answered), with what must follow: (debits, order
/// status, Print-Jobs).
const CRASH_POINTS: [(&str, (i64, &str, usize)); 10] = [
    ("reserved", (0, "awaiting_payment", 0)),
    ("charging", (0, "awaiting_payment", 0)),
    // the backend took the money; the station died before journalling `charged`
    ("charge-answered", (1, "paid", 0)),
    ("charged", (1, "paid", 0)),
    ("fetching", (1, "paid", 0)),
    ("fetched", (1, "paid", 0)),
    ("submitting", (1, "paid", 0)),
    // the printer took the job; the station died before journalling `submitted`: found by its name
    ("print-job-answered", (1, "printed", 1)),
    ("submitted", (1, "printed", 1)),
    ("printed", (1, "printed", 1)),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_killed_at_any_step_settles_the_job_without_a_second_charge_or_print() -> Result<()> {
    let mut rig = Rig::start_tuned(Tuning { idle_timeout_s: 60, job_timeout_s: 20 }).await?;
    // reprints happen at a second station: a reservation the recovery left active would refuse them
    let code = rig.backend.enrolment_code("Crash test, second station").await?;
    let second = Station::start(&StationOptions { backend_url: &rig.backend.url, enrolment_code: &code, printer_uri: &rig.printer.uri, pcsc: &rig.pcsc, tuning: Tuning { idle_timeout_s: 60, job_timeout_s: 20 } })?;
    // enough stored value for every round
    rig.backend.sql(&format!("INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', 10000, 'adjustment', {})", shomei_backend::demo::CARD_UID, shomei_backend::time::now()))?;
    for (point, expected) in CRASH_POINTS {
        rig.station.restart(&[("SHOMEI_FAILPOINT", point)])?;
        let page = rig.backend.order_as_graduate(1).await?;
        let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
        let order_id = rig.backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
        let spool_before = rig.printer.spooled_pdfs().len();
        let balance_before = rig.balance()?;
        let get_jobs_before = rig.printer.log().matches("Get-Jobs").count();

        // the user types the number and taps; the station dies right after `point`
        let _ = rig.kiosk_number(&number).await; // (no answer when it dies at "reserved")
        if point != "reserved" {
            rig.wait_kiosk("card", Duration::from_secs(10)).await?;
            rig.card.tap()?;
        }
        assert!(rig.station.wait_exit(Duration::from_secs(30)), "the station should have died at {point}:\n{}", rig.station.log());
        rig.card.remove()?;

        // power back: the station settles the job by itself
        rig.station.restart(&[])?;
        wait_for(&format!("the job interrupted at {point} to be settled and reported"), Duration::from_secs(40), || {
            Ok(journal(&rig, "SELECT count(*) FROM jobs WHERE state NOT IN ('printed', 'failed', 'abandoned')")? == "0"
                && journal(&rig, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")
        })
        .await?;
        let (debits, status, spooled) = invariants(&rig, &order_id, &number, spool_before)?;
        assert_eq!((debits, status.as_str(), spooled), expected, "after a crash at {point}");
        assert_eq!(rig.balance()?, balance_before - 400 * debits, "after a crash at {point}");
        let final_state = journal(&rig, &format!("SELECT state FROM jobs WHERE print_number = '{number}' ORDER BY id DESC LIMIT 1"))?;
        assert_eq!(final_state == "printed", status == "printed", "station and backend agree after {point}");
        if point == "print-job-answered" {
            // no job-id was journalled: the restart found the job by its name (Get-Jobs) and followed it
            assert!(rig.printer.log().matches("Get-Jobs").count() > get_jobs_before, "the recovery asked the printer for the job by name:\n{}", rig.printer.log());
            let steps = journal(&rig, &format!("SELECT group_concat(step, ' ') FROM (SELECT l.step FROM journal l JOIN jobs j ON j.id = l.job_id WHERE j.print_number = '{number}' ORDER BY l.id)"))?;
            assert!(steps.ends_with("submitting printed"), "{steps}");
        }
        if point == "charge-answered" {
            let detail = journal(&rig, &format!("SELECT l.detail FROM journal l JOIN jobs j ON j.id = l.job_id WHERE j.print_number = '{number}' AND l.step = 'charged'"))?;
            assert!(detail.contains("confirmed by the backend"), "the recovery asked the backend what became of the charge: {detail}");
        }

        // not printed: the same number prints at the second station, and a paid one takes no second debit
        if status != "printed" {
            let s = second.kiosk_number(&number).await?;
            if status == "awaiting_payment" {
                assert_eq!(s["screen"], "card", "{s}");
                rig.card.tap()?;
            } else {
                assert!(s["screen"] == "printing" || s["screen"] == "done", "a paid order skips the card at the second station: {s}");
            }
            second.wait_kiosk("done", Duration::from_secs(30)).await?;
            rig.card.remove()?;
            wait_for("the reprint's report", Duration::from_secs(10), || Ok(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))? == "printed")).await?;
            let debits: i64 = rig.backend.sql(&format!("SELECT count(*) FROM ledger WHERE order_id = {order_id} AND kind = 'debit'"))?.parse()?;
            let charges = station_charges(&rig.station, &number)? + station_charges(&second, &number)?;
            assert_eq!((debits, charges, rig.printer.spooled_pdfs().len() - spool_before), (1, 1, 1), "after the reprint following a crash at {point}: (debits, the stations' charges, Print-Jobs)");
            assert_eq!(active_reservations(&rig, &order_id)?, 0, "no reservation left after the reprint");
            assert_eq!(rig.balance()?, balance_before - 400);
            second.kiosk_reset().await?;
        }
    }
    // station and backend totals agree: what the stations' `charged` steps say is what the ledger debited
    let charged = "SELECT coalesce(sum(j.amount), 0) FROM journal l JOIN jobs j ON j.id = l.job_id WHERE l.step = 'charged'";
    let station_total: i64 = journal(&rig, charged)?.parse::<i64>()? + journal_of(&second, charged)?.parse::<i64>()?;
    let backend_total: i64 = rig.backend.sql("SELECT -coalesce(sum(amount), 0) FROM ledger WHERE kind = 'debit'")?.parse()?;
    assert_eq!(station_total, backend_total, "the stations' charges and the ledger's debits");
    assert_eq!(backend_total, 400 * CRASH_POINTS.len() as i64, "one debit per order, {} orders", CRASH_POINTS.len());
    Ok(())
}

/// A new order by the demo graduate; its print number as the order page shows it.
async fn new_order(rig: &Rig) -> Result<String> {
    let page = rig.backend.order_as_graduate(1).await?;
    Ok(element_text(&page, "print-number").context("print number")?.replace(' ', ""))
}

/// Steps of the jobs for `number`, in order, space-separated.
fn steps_of(st: &Station, number: &str) -> Result<String> {
    journal_of(st, &format!("SELECT coalesce(group_concat(step, ' '), '') FROM (SELECT l.step FROM journal l JOIN jobs j ON j.id = l.job_id WHERE j.print_number = '{number}' ORDER BY l.id)"))
}

/// The screen's words in both languages.
fn said(s: &serde_json::Value) -> String {
    format!("{} {} {} {}", s["title_en"], s["message_en"], s["title_ja"], s["message_ja"])
}

/// A second station beside the rig's, on the same printer and reader.
async fn second_station(rig: &Rig, name: &str) -> Result<Station> {
    let code = rig.backend.enrolment_code(name).await?;
    Station::start(&StationOptions { backend_url: &rig.backend.url, enrolment_code: &code, printer_uri: &rig.printer.uri, pcsc: &rig.pcsc, tuning: Tuning { idle_timeout_s: 60, job_timeout_s: 20 } })
}

fn debits(rig: &Rig, order_id: &str) -> Result<i64> {
    Ok(rig.backend.sql(&format!("SELECT count(*) FROM ledger WHERE order_id = {order_id} AND kind = 'debit'"))?.parse()?)
}

fn order_status(rig: &Rig, order_id: &str) -> Result<String> {
    rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))
}

/// Money taken, then the journal cannot write `charged` (a disk error at that
/// moment): a journal that cannot record the payment cannot record a print,
/// so nothing prints there; the job is settled failed, the user is told the
/// payment went through and the number prints elsewhere, and it then prints
/// once at another station with no second debit. Then the printer took a
/// job and the journal cannot write `submitted`: the job is followed to its
/// end anyway and reported printed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_write_failures_after_money_or_paper_moved_never_print_twice_or_charge_twice() -> Result<()> {
    let mut rig = Rig::start_tuned(Tuning { idle_timeout_s: 60, job_timeout_s: 20 }).await?;
    let second = second_station(&rig, "Journal faults, second station").await?;

    // 1. `charged` cannot be written
    rig.station.restart(&[("SHOMEI_FAILPOINT", "fail-write-charged")])?;
    let number = new_order(&rig).await?;
    let order_id = rig.backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
    let (spool_before, balance_before) = (rig.printer.spooled_pdfs().len(), rig.balance()?);
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    let s = rig.wait_kiosk("error", Duration::from_secs(20)).await?;
    rig.card.remove()?;
    for words in ["Your payment went through", "another station", "お支払いは完了しましたが", "他の発行機で"] {
        assert!(said(&s).contains(words), "{words:?} missing: {}", said(&s));
    }
    wait_for("the job settled failed and reported", Duration::from_secs(20), || {
        Ok(journal(&rig, &format!("SELECT state FROM jobs WHERE print_number = '{number}'"))? == "failed" && journal(&rig, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")
    })
    .await?;
    assert_eq!(steps_of(&rig.station, &number)?, "reserved charging failed", "nothing fetched or sent to the printer");
    assert_eq!((debits(&rig, &order_id)?, order_status(&rig, &order_id)?, active_reservations(&rig, &order_id)?), (1, "paid".to_string(), 0));
    assert_eq!(rig.printer.spooled_pdfs().len(), spool_before, "no Print-Job");
    let s = second.kiosk_number(&number).await?;
    assert!(s["screen"] == "printing" || s["screen"] == "done", "paid: no card at the other station: {s}");
    second.wait_kiosk("done", Duration::from_secs(30)).await?;
    wait_for("printed", Duration::from_secs(10), || Ok(order_status(&rig, &order_id)? == "printed")).await?;
    assert_eq!((debits(&rig, &order_id)?, rig.printer.spooled_pdfs().len() - spool_before, rig.balance()?), (1, 1, balance_before - 400));
    second.kiosk_reset().await?;

    // 2. `submitted` cannot be written: the printer has the job, which is followed to its end
    rig.station.restart(&[("SHOMEI_FAILPOINT", "fail-write-submitted")])?;
    let number = new_order(&rig).await?;
    let order_id = rig.backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
    let spool_before = rig.printer.spooled_pdfs().len();
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    rig.card.remove()?;
    wait_for("printed", Duration::from_secs(10), || Ok(order_status(&rig, &order_id)? == "printed")).await?;
    assert_eq!(steps_of(&rig.station, &number)?, "reserved charging charged fetching fetched submitting printed");
    assert_eq!((debits(&rig, &order_id)?, rig.printer.spooled_pdfs().len() - spool_before, active_reservations(&rig, &order_id)?), (1, 1, 0));
    Ok(())
}

/// The printer holds a job and Cancel-Job does not get through, live and in
/// the recovery after a crash: the job is not reported failed while it may
/// still print (the number stays held at this station, another station
/// refuses it, the user is told to ask staff), and once the printer lets it
/// go the station settles it as it ended, with one Print-Job and one debit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_printer_will_not_cancel_is_not_reported_failed_until_the_printer_lets_it_go() -> Result<()> {
    let mut rig = Rig::start_tuned(Tuning { idle_timeout_s: 60, job_timeout_s: 2 }).await?;
    let second = second_station(&rig, "Cancel faults, second station").await?;
    for when in ["live", "after a crash"] {
        rig.printer.set_mode("hold")?;
        if when == "live" {
            rig.station.restart(&[("SHOMEI_FAILPOINT", "cancel-job-fails")])?;
        } else {
            rig.station.restart(&[("SHOMEI_FAILPOINT", "submitted,cancel-job-fails")])?;
        }
        let number = new_order(&rig).await?;
        let order_id = rig.backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
        let (spool_before, balance_before) = (rig.printer.spooled_pdfs().len(), rig.balance()?);
        let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
        rig.card.tap()?;
        if when == "live" {
            let s = rig.wait_kiosk("error", Duration::from_secs(30)).await?;
            for words in ["did not finish", "Please tell the staff", "Your payment is kept", "係員にお知らせください"] {
                assert!(said(&s).contains(words), "{when}: {words:?} missing: {}", said(&s));
            }
        } else {
            assert!(rig.station.wait_exit(Duration::from_secs(30)), "the station should have died at submitted");
            rig.station.restart(&[("SHOMEI_FAILPOINT", "cancel-job-fails")])?;
        }
        rig.card.remove()?;
        wait_for(&format!("{when}: the job left unsettled"), Duration::from_secs(40), || Ok(journal(&rig, &format!("SELECT state FROM jobs WHERE print_number = '{number}'"))? == "unsettled")).await?;
        // not reported: the number stays held here, and another station does not print it
        let reports: i64 = rig.backend.sql(&format!("SELECT count(*) FROM station_reports r JOIN reservations v ON v.id = r.reservation_id WHERE v.order_id = {order_id}"))?.parse()?;
        assert_eq!((reports, order_status(&rig, &order_id)?, active_reservations(&rig, &order_id)?), (0, "paid".to_string(), 1), "{when}");
        let s = second.kiosk_number(&number).await?;
        assert_eq!(s["screen"], "error", "{when}: {s}");
        assert!(said(&s).contains("in use at another printer"), "{when}: {}", said(&s));
        second.kiosk_reset().await?;
        assert_eq!(rig.printer.spooled_pdfs().len() - spool_before, 1, "{when}: one Print-Job only");
        // the printer lets it go (it completes): settled as printed, once
        rig.printer.set_mode("ok")?;
        rig.printer.release_held_job()?;
        wait_for(&format!("{when}: settled printed"), Duration::from_secs(30), || Ok(order_status(&rig, &order_id)? == "printed")).await?;
        assert_eq!(journal(&rig, &format!("SELECT state FROM jobs WHERE print_number = '{number}'"))?, "printed", "{when}");
        assert_eq!((debits(&rig, &order_id)?, rig.printer.spooled_pdfs().len() - spool_before, active_reservations(&rig, &order_id)?, rig.balance()?), (1, 1, 0, balance_before - 400), "{when}");
        rig.station_reset().await?;
    }
    Ok(())
}

/// One randomized fault: a failpoint at a random journal step, or SIGKILL
/// after a random delay once the card is down.
#[derive(Debug, Clone)]
enum Fault {
    Failpoint(&'static str),
    Kill { after_ms: u64 },
}

/// How a soak run ended: the rounds it ran, the first round's violations
/// (empty: none), and the tallies it kept itself.
struct Soak {
    rounds_run: usize,
    violations: Vec<String>,
    /// Stored value the test put on the card.
    topped_up: i64,
    /// Orders the test saw end paid (by card) or printed.
    paid_orders: i64,
}

/// Runs up to `rounds` orders, each hit by a random fault, and stops at the
/// first round that breaks an invariant.
async fn fault_rounds(rig: &mut Rig, rounds: usize, seed: u64) -> Result<Soak> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let points = ["reserved", "charging", "charge-answered", "charged", "fetching", "fetched", "submitting", "print-job-answered", "submitted", "printed"];
    let user = Backend::client();
    crate::accounts::portal_login(&rig.backend, &user, shomei_backend::demo::GRADUATE_EMAIL, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    let grad = rig.backend.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let copies = format!("copies_{grad}");
    let mut soak = Soak { rounds_run: 0, violations: Vec::new(), topped_up: 0, paid_orders: 0 };
    for round in 0..rounds {
        soak.rounds_run = round + 1;
        if rig.balance()? < 1000 {
            rig.backend.sql(&format!("INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', 20000, 'adjustment', {})", shomei_backend::demo::CARD_UID, shomei_backend::time::now()))?;
            soak.topped_up += 20000;
        }
        let fault = if rng.gen_bool(0.5) { Fault::Failpoint(points[rng.gen_range(0..points.len())]) } else { Fault::Kill { after_ms: rng.gen_range(0..1200) } };
        match &fault {
            Fault::Failpoint(point) => rig.station.restart(&[("SHOMEI_FAILPOINT", point)])?,
            Fault::Kill { .. } => {}
        }
        let (s, _, page) = crate::accounts::post_form(&user, &format!("{}/orders/new", rig.backend.url), &format!("{}/orders", rig.backend.url),
            &[("student_record_id", "1"), (copies.as_str(), "1"), ("delivery", "campus"), ("payment_method", "card")]).await?;
        anyhow::ensure!(s == 200, "order in round {round}: {s}");
        // this round's order: the number on the page the user saw
        let number = element_text(&page, "print-number").with_context(|| format!("round {round}: no print number on the order page"))?.replace(' ', "");
        let order_id = rig.backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
        anyhow::ensure!(!order_id.is_empty(), "round {round}: the number on the page {number} is no order's");
        let spool_before = rig.printer.spooled_pdfs().len();
        let balance_before = rig.balance()?;
        let _ = rig.kiosk_number(&number).await;
        if rig.kiosk_state().await.map(|s| s["screen"] == "card").unwrap_or(false) {
            rig.card.tap()?;
        }
        match fault {
            Fault::Failpoint(_) => {
                // the point may not be reached (e.g. "charging" skipped by nothing): wait for death or the end
                let end = Instant::now() + Duration::from_secs(20);
                while Instant::now() < end && !rig.station.wait_exit(Duration::from_millis(100)) {
                    if rig.kiosk_state().await.map(|s| s["screen"] == "done").unwrap_or(false) {
                        break;
                    }
                }
            }
            Fault::Kill { after_ms } => {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                rig.station.kill9();
            }
        }
        rig.card.remove()?;
        rig.station.restart(&[])?;
        let settled = wait_for("settlement", Duration::from_secs(40), || {
            Ok(journal(rig, "SELECT count(*) FROM jobs WHERE state NOT IN ('printed', 'failed', 'abandoned')")? == "0"
                && journal(rig, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")
        })
        .await;
        let mut broken = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                broken.push(format!("round {round} ({fault:?}, number {number}): {what}"));
            }
        };
        check(settled.is_ok(), "the interrupted job was not settled and reported within 40 s".into());
        let debits: i64 = rig.backend.sql(&format!("SELECT count(*) FROM ledger WHERE order_id = {order_id} AND kind = 'debit'"))?.parse()?;
        let status = rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))?;
        let spooled = rig.printer.spooled_pdfs().len() - spool_before;
        check(debits <= 1, format!("{debits} debits"));
        check(station_charges(&rig.station, &number)? == debits, format!("the station's charged steps {} vs {debits} debits", station_charges(&rig.station, &number)?));
        check(spooled <= 1, format!("{spooled} Print-Jobs"));
        check((status == "printed") == (spooled == 1), format!("status {status} with {spooled} spooled"));
        check(debits == 0 || matches!(status.as_str(), "paid" | "printed"), format!("debited but {status}"));
        check(rig.balance()? == balance_before - 400 * debits, "balance does not match the debits".into());
        check(journal(rig, "PRAGMA integrity_check")? == "ok", "journal integrity_check".into());
        if settled.is_ok() {
            check(active_reservations(rig, &order_id)? == 0, "a reservation is left active after settlement".into());
        }
        let station_state = journal(rig, &format!("SELECT state FROM jobs WHERE print_number = '{number}' ORDER BY id DESC LIMIT 1"))?;
        check((station_state == "printed") == (status == "printed"), format!("station says {station_state}, backend {status}"));
        // an unprinted order still prints, without a second debit for a paid one
        if status != "printed" && settled.is_ok() {
            // (a card lifted and put back within the reader's poll counts as never lifted)
            tokio::time::sleep(Duration::from_millis(900)).await;
            let s = rig.kiosk_number(&number).await?;
            if s["screen"] == "card" {
                rig.card.tap()?;
            }
            let done = match rig.wait_kiosk("done", Duration::from_secs(30)).await {
                Ok(_) => true,
                Err(e) => {
                    check(false, format!("reprint screens: first {s}, then {e}"));
                    false
                }
            };
            rig.card.remove()?;
            let printed = wait_for("reprint", Duration::from_secs(10), || Ok(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))? == "printed")).await.is_ok();
            let debits: i64 = rig.backend.sql(&format!("SELECT count(*) FROM ledger WHERE order_id = {order_id} AND kind = 'debit'"))?.parse()?;
            check(done && printed, "the number did not print after the restart".into());
            check(debits == 1, format!("{debits} debits after the reprint"));
            check(station_charges(&rig.station, &number)? == 1, "the station's charged steps after the reprint are not 1".into());
            check(rig.balance()? == balance_before - 400, format!("balance {} after the reprint, {} expected", rig.balance()?, balance_before - 400));
            check(rig.printer.spooled_pdfs().len() - spool_before == 1, "not exactly one Print-Job after the reprint".into());
            rig.station_reset().await?;
        }
        if matches!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"))?.as_str(), "paid" | "printed") {
            soak.paid_orders += 1;
        }
        if !broken.is_empty() {
            soak.violations = broken;
            break;
        }
    }
    Ok(soak)
}

/// After the last round, once nothing moves: every debit is an order paid by
/// card, every spooled document an order printed, and the card's balance is
/// what the test put on it minus one fee per order the test saw paid.
async fn global_tallies(rig: &Rig, soak: &Soak, start_balance: i64) -> Result<Vec<String>> {
    wait_for("quiescence", Duration::from_secs(40), || {
        Ok(journal(rig, "SELECT count(*) FROM jobs WHERE state NOT IN ('printed', 'failed', 'abandoned')")? == "0"
            && journal(rig, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")? == "0")
    })
    .await?;
    let n = |sql: &str| -> Result<i64> { Ok(rig.backend.sql(sql)?.parse()?) };
    let debits = n("SELECT count(*) FROM ledger WHERE kind = 'debit'")?;
    let paid_by_card = n("SELECT count(*) FROM orders WHERE payment_method = 'card' AND status IN ('paid', 'printed')")?;
    let printed = n("SELECT count(*) FROM orders WHERE status = 'printed'")?;
    let spooled = rig.printer.spooled_pdfs().len() as i64;
    let balance = rig.balance()?;
    let expected_balance = start_balance + soak.topped_up - 400 * soak.paid_orders;
    println!("SOAK TALLIES debits={debits} orders_paid_by_card={paid_by_card} spooled={spooled} orders_printed={printed} balance={balance} topped_up={} charged={}", soak.topped_up, 400 * soak.paid_orders);
    let mut broken = Vec::new();
    if debits != paid_by_card {
        broken.push(format!("tally: {debits} debits but {paid_by_card} orders paid by card"));
    }
    if spooled != printed {
        broken.push(format!("tally: {spooled} documents at the printer but {printed} orders printed"));
    }
    if balance != expected_balance {
        broken.push(format!("tally: balance {balance}, top-ups minus charges {expected_balance}"));
    }
    Ok(broken)
}

/// CI's short randomized round; `deploy/soak` runs the same with
/// SHOMEI_CRASH_ROUNDS=1000. Stops at the first violation, prints its seed
/// and round, and keeps the rig's files (backend, station, printer) under
/// target/soak-failures/ for reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_crashes_break_no_invariant() -> Result<()> {
    let rounds: usize = std::env::var("SHOMEI_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("SHOMEI_CRASH_SEED").ok().and_then(|r| r.parse().ok()).unwrap_or_else(rand::random);
    let mut rig = Rig::start_tuned(Tuning { idle_timeout_s: 60, job_timeout_s: 20 }).await?;
    let start_balance = rig.balance()?;
    let started = Instant::now();
    let soak = fault_rounds(&mut rig, rounds, seed).await?;
    let mut violations = soak.violations.clone();
    if violations.is_empty() {
        violations = global_tallies(&rig, &soak, start_balance).await?;
    }
    println!("SOAK rounds={} of {rounds} seed={seed} violations={} elapsed={:.1}s", soak.rounds_run, violations.len(), started.elapsed().as_secs_f64());
    for v in &violations {
        println!("VIOLATION seed={seed} {v}");
    }
    if !violations.is_empty() {
        let keep = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/soak-failures/seed-{seed}-round-{}", soak.rounds_run - 1));
        std::fs::create_dir_all(&keep)?;
        for (name, dir) in [("backend", rig.backend.dir.path()), ("station", rig.station.dir.path()), ("printer", rig.printer.dir.path())] {
            let _ = Command::new("cp").arg("-a").arg(dir).arg(keep.join(name)).status();
        }
        println!("SOAK kept the rig's files in {}", keep.display());
    }
    assert!(violations.is_empty(), "{} violations (seed {seed}, round {}):\n{}", violations.len(), soak.rounds_run - 1, violations.join("\n"));
    Ok(())
}
