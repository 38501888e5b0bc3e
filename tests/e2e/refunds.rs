//! Refunds and held orders (issue 14, "Ordering"), through the real peers.
//! A paid print that failed at a station and was not reprinted by its
//! deadline is refunded by itself the next day, once: stored value back to
//! the card at once, PayPal through its API, Smart Pit cash by the office to
//! the bank account the user gives in the portal; every refund is mailed. A
//! paid order never tried at a printer is not refunded (O-5). A held order (a
//! name no font can draw) shows staff which characters, and is released once
//! fixed: the user is mailed and the order prints and pays as any other.

use crate::accounts::{csrf_of, portal_login, post_form, MAIL_WAIT};
use crate::harness::*;
use crate::station_api::Api;
use anyhow::{Context, Result};
use fantoccini::Locator;
use serde_json::json;
use shomei_backend::demo;
use std::time::{Duration, Instant};

/// Passes the automatic refund has made so far.
fn refund_passes(b: &Backend) -> Result<i64> {
    Ok(b.sql(&format!("SELECT COALESCE((SELECT runs FROM job_runs WHERE name = '{}'), 0)", shomei_backend::payments::refunds::JOB))?.parse()?)
}

/// Waits until the automatic refund has made two more passes than when
/// called: at least one whole pass began after whatever the test did before.
async fn two_more_passes(b: &Backend) -> Result<()> {
    let start = refund_passes(b)?;
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if refund_passes(b)? >= start + 2 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < end, "the automatic refund made no two passes in 30 s (passes: {start})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn now_s() -> Result<i64> {
    Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64)
}

/// The order's print deadline two days ago: its last day is over.
fn past_deadline(b: &Backend, id: i64) -> Result<()> {
    b.sql(&format!("UPDATE orders SET print_deadline = {} - 2 * 86400 WHERE id = {id}", now_s()?))?;
    Ok(())
}

/// The demo graduate, logged in on a client of its own.
async fn graduate_client(b: &Backend) -> Result<reqwest::Client> {
    let c = Backend::client();
    let (s, path, page) = portal_login(b, &c, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    anyhow::ensure!(s == 200 && path == "/portal", "the graduate logs in: {s} {path} {page}");
    Ok(c)
}

/// The graduate orders one graduation certificate (¥300 + system fee ¥100)
/// for on-campus printing, paid by `payment`; returns the order's id.
async fn place(b: &Backend, user: &reqwest::Client, payment: &str) -> Result<i64> {
    let copies = format!("copies_{}", b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?);
    let fields = [("student_record_id", "1"), (copies.as_str(), "1"), ("delivery", "campus"), ("payment_method", payment)];
    let (s, path, page) = post_form(user, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url), &fields).await?;
    anyhow::ensure!(s == 200 && path.starts_with("/orders/"), "order ({payment}): {s} {path} {page}");
    Ok(path.trim_start_matches("/orders/").parse()?)
}

/// Pays order `id` through PayPal: off to PayPal, approved there, back, "Pay".
async fn pay_paypal(b: &Backend, user: &reqwest::Client, sim: &PayPalSim, id: i64) -> Result<()> {
    let csrf = csrf_of(user, &format!("{}/orders/{id}", b.url)).await?;
    let r = user.post(format!("{}/orders/{id}/pay", b.url)).form(&[("csrf", csrf.as_str())]).send().await?;
    anyhow::ensure!(r.url().as_str().starts_with(&sim.url), "sent to PayPal: {}", r.url());
    let paypal_id = b.sql(&format!("SELECT paypal_order_id FROM orders WHERE id = {id}"))?;
    sim.knob(&format!("/sim/approve/{paypal_id}"), json!({})).await?;
    let ret = format!("{}/paypal/return?token={paypal_id}", b.url);
    let (s, path, page) = post_form(user, &ret, &format!("{}/paypal/capture?token={paypal_id}", b.url), &[]).await?;
    anyhow::ensure!(s == 200 && path == format!("/orders/{id}"), "captured: {s} {path} {page}");
    anyhow::ensure!(b.sql(&format!("SELECT status FROM orders WHERE id = {id}"))? == "paid", "order {id} paid");
    Ok(())
}

/// Pays order `id` in cash at a store through Smart Pit (its number came with the order).
async fn pay_cash(b: &Backend, user: &reqwest::Client, smartpit: &HttpSim, id: i64) -> Result<()> {
    let page = user.get(format!("{}/orders/{id}", b.url)).send().await?.text().await?;
    let number = element_text(&page, "smartpit-number").with_context(|| format!("the payment number on the order page: {page}"))?;
    let r = smartpit.knob("/sim/pay", json!({ "payment_number": number, "url": format!("{}/smartpit/notice", b.url) })).await?;
    anyhow::ensure!(r["delivered_status"] == 200, "the store's notice: {r}");
    anyhow::ensure!(b.sql(&format!("SELECT status FROM orders WHERE id = {id}"))? == "paid", "order {id} paid");
    Ok(())
}

/// Order `id` (paid) at a station: its number reserved, and the print fails.
async fn fail_print(b: &Backend, api: &Api, id: i64) -> Result<()> {
    let number = b.sql(&format!("SELECT print_number FROM orders WHERE id = {id}"))?;
    let (s, res) = api.post("/reservations", json!({ "print_number": number })).await?;
    anyhow::ensure!(s == 200 && res["paid"] == true, "reserved, paid already: {s} {res}");
    let rid = res["reservation_id"].as_i64().context("reservation id")?;
    let at = now_s()?;
    let report = json!({ "idempotency_key": format!("fail-{id}"), "outcome": { "kind": "failed", "reason": "media-jam" }, "ipp_job_id": 9, "at": at });
    let (s, r) = api.post(&format!("/reservations/{rid}/report"), report).await?;
    anyhow::ensure!(s == 200 && r["order_status"] == "paid", "the failure reported, the order still paid: {s} {r}");
    Ok(())
}

/// A count on the staff dashboard.
async fn dashboard_count(b: &Backend, item: &str) -> Result<i64> {
    let page = b.staff_page("/admin").await?;
    let at = page.find(&format!("id=\"dash-{item}\"")).with_context(|| format!("dash-{item} on the dashboard: {page}"))?;
    let rest = &page[at..];
    let v = rest.find("data-count=\"").context("the count")? + "data-count=\"".len();
    let end = rest[v..].find('"').context("the count's end")?;
    Ok(rest[v..v + end].parse()?)
}

/// Mails queued for the graduate whose subject says `what`.
fn mails_about(b: &Backend, what: &str) -> Result<String> {
    b.sql(&format!("SELECT COUNT(*) FROM outbox WHERE to_addr = '{}' AND subject LIKE '%{what}%'", demo::GRADUATE_EMAIL))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_paid_print_that_failed_is_refunded_to_the_card_once_the_next_day_and_a_print_never_tried_is_not() -> Result<()> {
    let peers = Peers::start_with(|c| c.orders.refund_check_s = 1).await?;
    let code = peers.backend.enrolment_code("Library 1F").await?;
    let mut rig = Rig::assemble(peers, &code, Tuning::default())?;
    let b = &rig.backend;

    // paid with the IC card at the kiosk; the printer fails the job
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
    let failed: i64 = b.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?.parse()?;
    rig.printer.set_mode("fail")?;
    let s = rig.kiosk_number(&number).await?;
    assert_eq!(s["screen"], "card", "{s}");
    rig.card.tap()?;
    rig.wait_kiosk("error", Duration::from_secs(30)).await?;
    rig.card.remove()?;
    wait_until("the failure report", Duration::from_secs(15), || {
        rig.backend.sql("SELECT COUNT(*) FROM station_reports WHERE outcome = 'failed'").is_ok_and(|n| n == "1")
    })?;
    let b = &rig.backend;
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {failed}"))?, "paid", "paid and reprintable until the deadline");

    // another order paid at a station and never tried at a printer
    let page = b.order_as_graduate(1).await?;
    let other = element_text(&page, "print-number").context("print number")?.replace(' ', "");
    let never: i64 = b.sql(&format!("SELECT id FROM orders WHERE print_number = '{other}'"))?.parse()?;
    let api = Api::new(b).await?;
    let (s, res) = api.post("/reservations", json!({ "print_number": other })).await?;
    assert_eq!(s, 200, "{res}");
    let rid = res["reservation_id"].as_i64().context("reservation id")?;
    let (s, r) = api.post(&format!("/reservations/{rid}/charge"), json!({ "card_uid": demo::CARD_UID, "idempotency_key": "never-printed" })).await?;
    assert_eq!(s, 200, "{r}");
    let (s, _) = api.post(&format!("/reservations/{rid}/release"), json!({})).await?;
    assert_eq!(s, 204);
    assert_eq!(rig.balance()?, 2200, "3000 - 400 - 400");

    // both deadlines are over: the next pass refunds the failed print, and only it
    two_more_passes(b).await?;
    assert_eq!(b.sql("SELECT COUNT(*) FROM ledger WHERE kind = 'refund'")?, "0", "not before the deadline");
    past_deadline(b, failed)?;
    past_deadline(b, never)?;
    two_more_passes(b).await?;
    assert_eq!(b.sql(&format!("SELECT COUNT(*) || '|' || SUM(amount) FROM ledger WHERE kind = 'refund' AND order_id = {failed}"))?, "1|400");
    assert_eq!(b.sql(&format!("SELECT status || ' ' || refund_method FROM orders WHERE id = {failed}"))?, "cancelled card");
    assert_eq!(rig.balance()?, 2600, "back on the card at once");
    assert_eq!(b.sql(&format!("SELECT status || ' ' || (CASE WHEN refunded_at IS NULL THEN 1 ELSE 0 END) FROM orders WHERE id = {never}"))?, "paid 1", "never tried at a printer: no refund (O-5)");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM ledger WHERE order_id = {never} AND kind = 'refund'"))?, "0");

    // the user is told: the order, the amount, back on the card
    let mail = rig.smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "Your order has been refunded", MAIL_WAIT)?;
    assert!(mail.contains("返金のお知らせ") && mail.contains(&format!("Order no.: {failed}")) && mail.contains(&format!("申込番号: {failed}")), "{mail}");
    assert!(mail.contains("Amount refunded: ¥400") && mail.contains("返金額: ¥400"), "{mail}");
    assert!(mail.contains("credited back to the IC card") && mail.contains("ICカードの残高に戻しました"), "{mail}");
    assert!(mail.contains("refunded automatically"), "{mail}");
    // the order page says refunded, how
    let user = graduate_client(b).await?;
    let page = user.get(format!("{}/orders/{failed}", b.url)).send().await?.text().await?;
    let status = element_text(&page, "status").context("status")?;
    assert!(status.contains("返金済み") && page.contains("refunded (to the IC card"), "{page}");
    assert!(!page.contains("id=\"refund-bank-link\""), "nothing for the office to pay back: {page}");

    // more passes change nothing: money moves once
    two_more_passes(b).await?;
    assert_eq!(b.sql("SELECT COUNT(*) || '|' || SUM(amount) FROM ledger WHERE kind = 'refund'")?, "1|400");
    assert_eq!(rig.balance()?, 2600);
    assert_eq!(b.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'order.refund.auto'")?, "1");
    assert_eq!(mails_about(b, "has been refunded")?, "1", "one refund mail");
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {never}"))?, "paid");
    rig.printer.set_mode("ok")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paypal_paid_print_that_failed_is_refunded_through_paypal_once_and_a_refused_refund_is_shown_to_staff_and_retried() -> Result<()> {
    let smtp = Smtp::start()?;
    let sim = PayPalSim::start()?;
    let sim_url = sim.url.clone();
    let b = Backend::start_with(Some(smtp.port), move |c| {
        c.paypal.base_url = sim_url;
        c.paypal.return_url = format!("{}/paypal/return", c.http.public_url);
        c.paypal.cancel_url = format!("{}/paypal/cancel", c.http.public_url);
        c.orders.refund_check_s = 1;
    })
    .await?;
    let user = graduate_client(&b).await?;
    let id = place(&b, &user, "paypal").await?;
    pay_paypal(&b, &user, &sim, id).await?;
    let api = Api::new(&b).await?;
    fail_print(&b, &api, id).await?;

    // not before the deadline's day is over
    two_more_passes(&b).await?;
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {id}"))?, "paid", "reprintable until the deadline");
    // PayPal refuses the refund for a while: staff see it on the dashboard and the order, the next passes try again
    sim.knob("/sim/fail-next-refund", json!({ "times": 1000 })).await?;
    past_deadline(&b, id)?;
    two_more_passes(&b).await?;
    assert_eq!(b.sql(&format!("SELECT status || ' ' || (CASE WHEN refund_error IS NOT NULL THEN 1 ELSE 0 END) FROM orders WHERE id = {id}"))?, "paid 1", "not refunded, and why is kept");
    assert_eq!(dashboard_count(&b, "refunds-failing").await?, 1);
    let page = b.staff_page(&format!("/admin/orders/{id}")).await?;
    assert!(page.contains("id=\"refund-error\"") && page.contains("The automatic refund could not be made"), "{page}");
    let listed = b.staff_page("/admin/orders?refund=failing").await?;
    assert!(listed.contains(&format!("id=\"order-{id}\"")) && listed.contains("id=\"filter-refund-failing\""), "{listed}");
    assert_eq!(mails_about(&b, "has been refunded")?, "0", "nothing told the user yet");
    // PayPal takes refunds again: the next pass refunds it, once
    sim.knob("/sim/fail-next-refund", json!({ "times": 0 })).await?;
    two_more_passes(&b).await?;
    assert_eq!(b.sql(&format!("SELECT CASE WHEN refund_error IS NULL THEN 1 ELSE 0 END FROM orders WHERE id = {id}"))?, "1");
    assert_eq!(dashboard_count(&b, "refunds-failing").await?, 0);
    let state: serde_json::Value = reqwest::get(format!("{}/sim/state", sim.url)).await?.json().await?;
    assert_eq!(state["refunds_performed"], 1, "PayPal refunded it: {state}");
    assert_eq!(b.sql(&format!("SELECT status || ' ' || refund_method FROM orders WHERE id = {id}"))?, "cancelled paypal");
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "Your order has been refunded", MAIL_WAIT)?;
    assert!(mail.contains(&format!("Order no.: {id}")) && mail.contains("Amount refunded: ¥400") && mail.contains("返金額: ¥400"), "{mail}");
    assert!(mail.contains("refunded through PayPal") && mail.contains("PayPal（お支払いに使ったクレジットカード等）に返金しました"), "{mail}");
    let page = user.get(format!("{}/orders/{id}", b.url)).send().await?.text().await?;
    assert!(page.contains("refunded (through PayPal)"), "{page}");
    // the number no longer prints
    let number = b.sql(&format!("SELECT print_number FROM orders WHERE id = {id}"))?;
    let (s, r) = api.post("/reservations", json!({ "print_number": number })).await?;
    assert_eq!(s, 410, "{r}");

    // more passes: PayPal is not asked again
    two_more_passes(&b).await?;
    let state: serde_json::Value = reqwest::get(format!("{}/sim/state", sim.url)).await?.json().await?;
    assert_eq!(state["refunds_performed"], 1, "once: {state}");
    assert_eq!(mails_about(&b, "has been refunded")?, "1");
    Ok(())
}

on_both_screens!(
    a_smart_pit_failed_print_is_paid_back_by_the_office_to_the_account_the_user_gives,
    a_smart_pit_failed_print_is_paid_back_by_the_office_to_the_account_the_user_gives_at_phone_width,
    a_smart_pit_failed_print_is_paid_back_by_the_office_to_the_account_the_user_gives_on
);
async fn a_smart_pit_failed_print_is_paid_back_by_the_office_to_the_account_the_user_gives_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let smartpit = HttpSim::smartpit()?;
    let sp_url = smartpit.url.clone();
    let b = Backend::start_with(Some(smtp.port), move |c| {
        c.smartpit.base_url = sp_url;
        c.orders.refund_check_s = 1;
    })
    .await?;
    let user = graduate_client(&b).await?;
    let id = place(&b, &user, "smartpit").await?;
    pay_cash(&b, &user, &smartpit, id).await?;
    let api = Api::new(&b).await?;
    fail_print(&b, &api, id).await?;
    past_deadline(&b, id)?;
    two_more_passes(&b).await?;

    // cash cannot go back by an API: a task for the office, and the user is asked for a bank account
    assert_eq!(b.sql(&format!("SELECT status || ' ' || refund_method FROM orders WHERE id = {id}"))?, "cancelled office");
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "Your order has been refunded", MAIL_WAIT)?;
    assert!(mail.contains(&format!("Order no.: {id}")) && mail.contains("Amount refunded: ¥400") && mail.contains("返金額: ¥400"), "{mail}");
    assert!(mail.contains("by bank transfer") && mail.contains("銀行振込") && mail.contains("口座名義（カタカナ）"), "{mail}");
    let link = link_in(&mail, &format!("{}/orders/{id}/refund-bank", b.url)).context("the link to give the bank account")?;
    assert_eq!(link, format!("{}/orders/{id}/refund-bank", b.url));
    assert_eq!(dashboard_count(&b, "refunds").await?, 1, "a refund to pay back");
    let page = b.staff_page(&format!("/admin/orders/{id}")).await?;
    assert!(page.contains("id=\"refund-bank-missing\"") && page.contains("id=\"mark-paid-back\""), "{page}");

    // the user gives the account in the portal, from the order page
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser.log_in_as_demo_graduate(&b).await?;
    browser.wait_id("new-order").await?;
    w.goto(&format!("{}/orders/{id}", b.url)).await?;
    let status = browser.wait_id("status").await?.text().await?;
    assert!(status.contains("返金済み"), "{status}");
    browser.wait_id("refund-bank-link").await?.click().await?;
    browser.wait_id("bank").await?.send_keys("証明銀行").await?;
    w.find(Locator::Id("branch")).await?.send_keys("本店").await?;
    w.find(Locator::Id("account_type-ordinary")).await?.click().await?;
    w.find(Locator::Id("number")).await?.send_keys("12345").await?;
    w.find(Locator::Id("holder")).await?.send_keys("ヤマダ ハナコ").await?;
    w.find(Locator::Id("save-bank")).await?.click().await?;
    // a mistake is told next to its field, and what was typed stays
    let error = browser.wait_id("number-error").await?.text().await?;
    assert!(error.contains("7 digits") && error.contains("7桁"), "{error}");
    assert_eq!(w.find(Locator::Id("bank")).await?.prop("value").await?.as_deref(), Some("証明銀行"));
    assert_eq!(w.find(Locator::Id("holder")).await?.prop("value").await?.as_deref(), Some("ヤマダ ハナコ"));
    browser.check_page().await?;
    let number = w.find(Locator::Id("number")).await?;
    number.clear().await?;
    number.send_keys("1234567").await?;
    w.find(Locator::Id("save-bank")).await?.click().await?;
    browser.wait_text("notice", "pays the refund to this account").await?;
    let sealed = b.sql(&format!("SELECT refund_bank_sealed FROM orders WHERE id = {id}"))?;
    assert!(!sealed.is_empty() && !sealed.contains("1234567") && !sealed.contains("ヤマダ"), "sealed at rest: {sealed}");

    // staff see it on the order page, pay it and record it: the user is told
    let page = b.staff_page(&format!("/admin/orders/{id}")).await?;
    assert_eq!(element_text(&page, "bank-name").as_deref(), Some("証明銀行"), "{page}");
    assert_eq!(element_text(&page, "bank-branch").as_deref(), Some("本店"));
    assert_eq!(element_text(&page, "bank-number").as_deref(), Some("1234567"));
    assert_eq!(element_text(&page, "bank-holder").as_deref(), Some("ヤマダ ハナコ"));
    assert!(page.contains("普通") && page.contains("by bank transfer from the university"), "{page}");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM audit_log WHERE action = 'personal_data.view' AND target = 'refund bank details order:{id}'"))?, "1");
    let staff = b.staff_client().await?;
    let detail = format!("{}/admin/orders/{id}", b.url);
    let (s, _, page) = post_form(&staff, &detail, &format!("{detail}/paid-back"), &[]).await?;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("id=\"paid-back\""), "{page}");
    assert_eq!(b.sql(&format!("SELECT CASE WHEN refund_bank_sealed IS NULL THEN 1 ELSE 0 END FROM orders WHERE id = {id}"))?, "1", "the bank details are not kept once paid");
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "Your refund has been paid", MAIL_WAIT)?;
    assert!(mail.contains("¥400") && mail.contains(&format!("order {id}")) && mail.contains("返金のお支払いが完了しました"), "{mail}");
    assert_eq!(dashboard_count(&b, "refunds").await?, 0);
    w.goto(&format!("{}/orders/{id}", b.url)).await?;
    let status = browser.wait_id("status").await?.text().await?;
    assert!(status.contains("お支払い済み"), "{status}");
    assert!(w.find(Locator::Id("refund-bank-link")).await.is_err(), "nothing more to give");
    browser.close().await;
    // the office paid once; nothing further is refunded
    two_more_passes(&b).await?;
    assert_eq!(mails_about(&b, "has been refunded")?, "1");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_order_shows_staff_why_and_once_released_the_user_is_mailed_and_it_pays_and_prints() -> Result<()> {
    held_order_on(Screen::Desktop).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_order_shows_staff_why_and_once_released_the_user_is_mailed_and_it_pays_and_prints_at_phone_width() -> Result<()> {
    held_order_on(Screen::Phone).await
}

async fn held_order_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    // the register's name has a character no installed font has (𠮷, "tsuchi-yoshi")
    let name = b.sql("SELECT name_kanji FROM school_register WHERE student_no = 'L19-0042' LIMIT 1")?;
    b.sql("UPDATE school_register SET name_kanji = '𠮷田 花子' WHERE student_no = 'L19-0042'")?;
    b.order_as_graduate(1).await?;
    let id: i64 = b.sql("SELECT MAX(id) FROM orders")?.parse()?;
    assert_eq!(b.sql(&format!("SELECT status || '|' || COALESCE(print_number, '-') FROM orders WHERE id = {id}"))?, "held|-");
    let serial = b.sql(&format!("SELECT c.serial FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE l.order_id = {id}"))?;
    assert_eq!(dashboard_count(&b, "held").await?, 1);

    // staff, in the panel: the dashboard's held orders lead to the order, which says why, with the characters
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser.log_in_as_demo_staff(&b).await?;
    browser.wait_id("dash-held").await?.click().await?;
    browser.wait_id(&format!("order-{id}")).await?;
    w.goto(&format!("{}/admin/orders/{id}", b.url)).await?;
    assert_eq!(browser.wait_id("held-chars").await?.text().await?, "𠮷");
    browser.check_page().await?;
    // "release" asks first; answered no, nothing happens
    browser.wait_id("release").await?.click().await?;
    w.dismiss_alert().await?;
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'order.release%' AND target LIKE '%{id}%'"))?, "0");

    // released too early: it stays held and says which characters still cannot be printed
    w.find(fantoccini::Locator::Id("release")).await?.click().await?;
    w.accept_alert().await?;
    let notice = browser.wait_id("release-notice").await?;
    assert_eq!(notice.attr("data-outcome").await?.as_deref(), Some("still-held"), "{}", notice.text().await?);
    assert_eq!(browser.wait_id("held-chars").await?.text().await?, "𠮷");
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {id}"))?, "held");
    assert_eq!(b.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'order.release_refused'")?, "1");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM outbox WHERE to_addr = '{}'", demo::GRADUATE_EMAIL))?, "0", "nothing mailed yet");

    // the registrar corrects the record: released, with a number, and the user is mailed
    b.sql(&format!("UPDATE school_register SET name_kanji = '{name}' WHERE student_no = 'L19-0042'"))?;
    browser.wait_id("release").await?.click().await?;
    w.accept_alert().await?;
    let end = std::time::Instant::now() + MAIL_WAIT;
    loop {
        let outcome = match w.find(fantoccini::Locator::Id("release-notice")).await {
            Ok(n) => n.attr("data-outcome").await?.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if outcome == "released" {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < end, "the release was not told: {}", browser.body_text().await?);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(w.find(fantoccini::Locator::Id("held-chars")).await.is_err(), "no characters left to show");
    browser.close().await;
    let staff = b.staff_client().await?;
    let detail = format!("{}/admin/orders/{id}", b.url);
    assert_eq!(b.sql(&format!("SELECT status || '|' || held_chars FROM orders WHERE id = {id}"))?, "awaiting_payment|");
    assert_eq!(dashboard_count(&b, "held").await?, 0);
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "Your order can go ahead", MAIL_WAIT)?;
    assert!(mail.contains("お申し込みの確認が済みました") && mail.contains(&format!("order {id}")) && mail.contains(&format!("申込番号 {id}")), "{mail}");
    assert!(mail.contains(&format!("{}/orders/{id}", b.url)), "{mail}");
    let number_mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "On-campus print number", MAIL_WAIT)?;
    let number = print_number_in(&number_mail).context("the print number in the mail")?;
    assert_eq!(b.sql(&format!("SELECT print_number FROM orders WHERE id = {id}"))?, number);
    // the PDF made again carries the certificate issued with the order
    let pdf = b.order_pdf(id).await?;
    let path = b.dir.path().join(format!("released-{id}.pdf"));
    std::fs::write(&path, &pdf)?;
    let out = std::process::Command::new("pdftotext").arg(&path).arg("-").output()?;
    let text = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains(&serial) && text.contains("YAMADA Hanako"), "{serial} in:\n{text}");

    // then it is paid and printed as any order
    let api = Api::new(&b).await?;
    let (s, res) = api.post("/reservations", json!({ "print_number": number })).await?;
    assert_eq!((s, res["paid"].clone()), (200, json!(false)), "{res}");
    let rid = res["reservation_id"].as_i64().context("reservation id")?;
    let (s, r) = api.post(&format!("/reservations/{rid}/charge"), json!({ "card_uid": demo::CARD_UID, "idempotency_key": "released-1" })).await?;
    assert_eq!(s, 200, "{r}");
    let at = now_s()?;
    let report = json!({ "idempotency_key": "released-print", "outcome": { "kind": "printed" }, "ipp_job_id": 4, "at": at });
    let (s, r) = api.post(&format!("/reservations/{rid}/report"), report).await?;
    assert_eq!((s, r["order_status"].clone()), (200, json!("printed")), "{r}");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) || '|' || SUM(amount) FROM ledger WHERE kind = 'debit' AND order_id = {id}"))?, "1|-400");
    // and it is released once
    let (s, _, page) = post_form(&staff, &detail, &format!("{detail}/release"), &[]).await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("This order is not held"), "{page}");
    Ok(())
}
