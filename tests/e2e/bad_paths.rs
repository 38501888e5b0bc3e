//! Bad paths at the kiosk, each through the real peers, each with a clear
//! message and nothing lost: no reservation, no debit, no print.

use crate::harness::*;
use crate::print_flow::wait_page;
use anyhow::Result;
use std::time::Duration;

fn text(screen: &serde_json::Value) -> String {
    format!("{} {} {} {} {} {}", screen["title_ja"], screen["title_en"], screen["message_ja"], screen["message_en"], screen["notice_ja"], screen["notice_en"])
}

/// One wrong digit or two swapped: "check the number", and the backend is
/// never asked (it is stopped here, and the kiosk still answers so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_number_is_caught_by_the_check_digit() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    rig.backend.stop().await;
    let mut wrong: Vec<u8> = number.bytes().collect();
    wrong[5] = if wrong[5] == b'9' { b'0' } else { wrong[5] + 1 };
    let s = rig.kiosk_number(std::str::from_utf8(&wrong)?).await?;
    assert_eq!(s["screen"], "error");
    assert!(text(&s).contains("Please check the number") && text(&s).contains("A digit is wrong"), "{s}");
    assert!(text(&s).contains("番号をご確認ください"), "{s}");
    assert!(!s["contact_en"].as_str().unwrap_or_default().is_empty(), "contact details on error screens");
    // the first pair of unequal neighbours, swapped
    let mut swapped: Vec<u8> = number.bytes().collect();
    let i = (0..11).find(|&i| swapped[i] != swapped[i + 1]).unwrap_or(0);
    swapped.swap(i, i + 1);
    let s = rig.kiosk_number(std::str::from_utf8(&swapped)?).await?;
    assert_eq!(s["screen"], "error");
    assert!(text(&s).contains("two digits are swapped"), "{s}");
    let s = rig.kiosk_number(&number[..11]).await?;
    assert!(text(&s).contains("It has 11 digits instead of 12"), "{s}");
    Ok(())
}

/// A valid-looking number nobody ordered, one already printed, one expired, one not paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_printed_and_expired_numbers_are_refused_clearly() -> Result<()> {
    let mut rig = Rig::start().await?;
    // unknown: a fresh random number with a correct check digit
    let unknown = shomei_shared::PrintNumber::generate(&mut rand::thread_rng());
    let s = rig.kiosk_number(unknown.as_str()).await?;
    assert_eq!(s["screen"], "error");
    assert!(text(&s).contains("No order has this number"), "{s}");

    // printed: print it once, then try again
    let (number, _) = rig.order_and_read_mail(1).await?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    rig.card.remove()?;
    wait_page(&rig.backend, "/admin/orders", |p| p.contains("data-status=\"printed\"")).await?;
    let balance = rig.balance()?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "error");
    assert!(text(&s).contains("printed already"), "{s}");
    assert_eq!(rig.balance()?, balance, "no second charge");

    // expired: a second order whose print deadline has passed
    rig.smtp.messages(); // (first mail already read)
    let page = rig.backend.order_as_graduate(1).await?;
    let second = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    rig.backend.sql(&format!("UPDATE orders SET print_deadline = {} - 1 WHERE print_number = '{second}'", shomei_backend::time::now()))?;
    let s = rig.kiosk_number(&second).await?;
    assert_eq!(s["screen"], "error");
    assert!(text(&s).contains("passed its print deadline"), "{s}");

    // not paid: an order to be paid by credit card whose payment has not come in
    let page = rig.backend.order_as_graduate(1).await?;
    let third = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    rig.backend.sql(&format!("UPDATE orders SET payment_method = 'paypal' WHERE print_number = '{third}'"))?;
    let s = rig.kiosk_number(&third).await?;
    assert_eq!(s["screen"], "error");
    assert!(text(&s).contains("not paid yet") && text(&s).contains("お支払いが済んでいません"), "{s}");
    assert_eq!(rig.printer.spooled_pdfs().len(), 1, "only the first order printed");
    Ok(())
}

/// A card without enough stored value: no debit, the missing amount shown,
/// and another tap with enough balance still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_with_too_little_balance_is_not_charged() -> Result<()> {
    let mut rig = Rig::start().await?;
    rig.backend.sql(&format!(
        "INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', -2750, 'adjustment', 0)",
        shomei_backend::demo::CARD_UID
    ))?;
    assert_eq!(rig.balance()?, 250);
    let (number, _) = rig.order_and_read_mail(1).await?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card");
    rig.card.tap()?;
    let s = rig.wait_notice().await?;
    assert_eq!(s["screen"], "card", "still waiting for a card: {s}");
    assert!(text(&s).contains("¥150 missing"), "missing amount shown: {s}");
    assert!(text(&s).contains("不足 ¥150"), "{s}");
    assert_eq!(rig.balance()?, 250, "no debit");
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))?, "awaiting_payment");
    assert!(rig.printer.spooled_pdfs().is_empty(), "nothing printed");

    // topped up meanwhile: lift the card, tap again, it prints
    rig.backend.sql(&format!(
        "INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', 1000, 'topup', 0)",
        shomei_backend::demo::CARD_UID
    ))?;
    rig.card.remove()?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.balance()?, 850);
    Ok(())
}

/// The card leaves the reader mid-read: asked to tap again, nothing charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_pulled_away_mid_read_is_asked_for_again() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card");
    rig.card.command("remove-on-read", "remove-on-read")?;
    rig.card.tap()?;
    let s = rig.wait_notice().await?;
    assert_eq!(s["screen"], "card", "{s}");
    assert!(text(&s).contains("tap it again"), "{s}");
    assert_eq!(rig.balance()?, 3000, "no debit");
    tokio::time::sleep(Duration::from_millis(600)).await;
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.balance()?, 2600, "charged exactly once");
    Ok(())
}

/// Out of paper: the station refuses new users before any money is taken,
/// and staff see why on the fleet page and the health endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_out_of_paper_turns_users_away_before_payment() -> Result<()> {
    let rig = Rig::start().await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    rig.printer.set_paper(0)?;
    let s = rig.wait_kiosk("out_of_service", Duration::from_secs(10)).await?;
    assert!(text(&s).contains("out of paper"), "{s}");
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "out_of_service", "{s}");
    assert!(text(&s).contains("Nothing was charged"), "{s}");
    assert_eq!(rig.backend.sql("SELECT COUNT(*) FROM reservations")?, "0", "nothing reserved");
    assert_eq!(rig.balance()?, 3000);
    let page = wait_page(&rig.backend, "/admin/stations", |p| p.contains("用紙切れ / out of paper")).await?;
    assert!(page.contains("data-field=\"printer_reasons\">用紙切れ") && page.contains("data-level=\"bad\""), "reason and condition on the fleet page, in words");
    assert!(!page.contains("media-empty"), "never the printer's keyword: {page}");
    let health = reqwest::get(format!("{}/api/stations/1/health", rig.backend.url)).await?;
    assert_eq!(health.status(), 503);
    let h: serde_json::Value = health.json().await?;
    assert_eq!(h["printer_ready"], false);

    // refilled: users are welcome again
    rig.printer.set_paper(250)?;
    rig.wait_kiosk("idle", Duration::from_secs(10)).await?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    Ok(())
}

/// The backend is down when the number is typed: "try again later", nothing charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_unreachable_means_try_again_later() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    rig.backend.stop().await;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "error", "{s}");
    assert!(text(&s).contains("try again later"), "{s}");
    assert!(text(&s).contains("Nothing was charged"), "{s}");
    assert_eq!(rig.balance()?, 3000);
    assert!(rig.printer.spooled_pdfs().is_empty());
    Ok(())
}

/// A user who walks away (or presses cancel): the kiosk returns to the start,
/// forgets them, and gives the number back at once; nothing is charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_kiosk_returns_to_the_start_and_gives_the_number_back() -> Result<()> {
    let rig = Rig::start_tuned(Tuning { idle_timeout_s: 5, ..Tuning::default() }).await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card");
    let s = rig.wait_kiosk("idle", Duration::from_secs(15)).await?;
    assert_eq!(s["number"], "", "the user is forgotten: {s}");
    assert!(s["lines"].as_array().is_some_and(|l| l.is_empty()), "{s}");
    let released = || rig.backend.sql("SELECT status FROM reservations ORDER BY id");
    wait_until("reservation released", Duration::from_secs(5), || released().is_ok_and(|s| s == "released"))?;

    // the cancel button does the same
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "the number works again at once: {s}");
    let s = rig.station_reset().await?;
    assert_eq!(s["screen"], "idle");
    wait_until("both released", Duration::from_secs(5), || released().is_ok_and(|s| s.lines().collect::<Vec<_>>() == ["released", "released"]))?;
    assert_eq!(rig.balance()?, 3000);
    Ok(())
}

/// A card left on the reader (the last user's) pays for nothing: the kiosk
/// asks for a fresh tap and charges only the card put down after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_left_on_the_reader_is_not_charged_without_a_fresh_tap() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    rig.card.tap()?; // lying there before the user even typed the number
    tokio::time::sleep(Duration::from_millis(600)).await;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card");
    // the notice proves the station looked at the reader, found the card, and
    // now waits for it to be lifted: it has read nothing, so charged nothing
    let s = rig.wait_notice().await?;
    assert!(text(&s).contains("already lying on the reader"), "{s}");
    assert_eq!(rig.journal_steps()?, ["reserved"], "no card read, no charge started");
    let order = rig.backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
    let debits = || rig.backend.sql(&format!("SELECT count(*) FROM ledger WHERE order_id = {order} AND kind = 'debit'"));
    assert_eq!(debits()?, "0", "nothing charged while it just lies there");
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE id = {order}"))?, "awaiting_payment");
    assert_eq!(rig.balance()?, 3000);
    rig.card.remove()?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    // lifted (the station sees the reader empty before the fresh tap): still nothing charged for the whole time it lay there
    assert_eq!(rig.journal_steps()?, ["reserved"], "the lying card was never read");
    assert_eq!(debits()?, "0");
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(debits()?, "1", "charged once, for the fresh tap");
    assert_eq!(rig.balance()?, 2600);
    Ok(())
}

/// The paper runs out while the user is looking for their card: the tap
/// takes no money, and the kiosk says the station is out of service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_running_out_before_the_tap_takes_no_money() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card");
    rig.printer.set_paper(0)?;
    rig.card.tap()?;
    let s = rig.wait_kiosk("out_of_service", Duration::from_secs(10)).await?;
    assert!(text(&s).contains("out of paper") && text(&s).contains("Nothing was charged"), "{s}");
    assert_eq!(rig.balance()?, 3000);
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))?, "awaiting_payment");
    Ok(())
}

/// A paid print that never finishes (a jammed engine): the station cancels
/// the job so it cannot come out later, says the payment is kept, and the same
/// number then prints without a second charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_job_is_cancelled_and_the_paid_order_reprints_without_a_second_charge() -> Result<()> {
    let mut rig = Rig::start_tuned(Tuning { job_timeout_s: 2, ..Tuning::default() }).await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    rig.printer.set_mode("hold")?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card");
    rig.card.tap()?;
    rig.wait_kiosk("printing", Duration::from_secs(10)).await?;
    wait_until("Cancel-Job at the printer", Duration::from_secs(15), || rig.printer.log().contains("Cancel-Job"))?;
    rig.printer.set_mode("ok")?;
    rig.printer.release_held_job()?; // the engine stops; the job ends canceled
    let s = rig.wait_kiosk("error", Duration::from_secs(40)).await?;
    assert!(text(&s).contains("Your payment is kept"), "{s}");
    rig.card.remove()?;
    assert_eq!(rig.balance()?, 2600, "charged once");
    let status = || rig.backend.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"));
    wait_until("failed print reported", Duration::from_secs(10), || {
        rig.backend.sql("SELECT outcome FROM station_reports").is_ok_and(|o| o == "failed")
    })?;
    assert_eq!(status()?, "paid", "paid and not printed: reprintable");

    // back at the kiosk: no card needed, it prints
    rig.station_reset().await?;
    let s = rig.kiosk_number(&number).await?;
    assert!(s["screen"] == "printing" || s["screen"] == "done", "paid orders skip the card: {s}");
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.balance()?, 2600, "no second charge");
    wait_until("order printed", Duration::from_secs(10), || status().is_ok_and(|s| s == "printed"))?;
    Ok(())
}
