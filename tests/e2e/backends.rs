//! Several backend processes on one database are one service (issue 15):
//! a station's calls and a user's requests may land on either; throttles
//! count across them; background work (the mail sender, order expiry, ...)
//! runs in one of them at a time and moves to another when it dies. Each
//! test runs on the engine of the run (SQLite file or private PostgreSQL).

use crate::harness::*;
use crate::station_api::Api;
use anyhow::{Context, Result};
use serde_json::json;
use std::time::Duration;

/// A login attempt from the client `c` on `b`; the status.
async fn log_in(c: &reqwest::Client, b: &Backend, password: &str) -> Result<u16> {
    let page = c.get(format!("{}/login", b.url)).send().await?.text().await?;
    let csrf = form_value(&page, "csrf").context("csrf")?;
    let r = c
        .post(format!("{}/login", b.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", shomei_backend::demo::GRADUATE_EMAIL),
            ("password", password),
            ("second_password", shomei_backend::demo::GRADUATE_SECOND_PASSWORD),
        ])
        .send()
        .await?;
    Ok(r.status().as_u16())
}

/// A station's redemption alternates between two backends (reserve on one,
/// charge on the other, the PDF from the first, the report to the second)
/// and is one redemption: one debit, printed once. A portal session opened
/// on one serves on the other, and failed logins on one count on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backends_on_one_database_are_one_service_for_stations_sessions_and_throttles() -> Result<()> {
    // (a long first delay: the failure that starts it makes the very next try wait, on either backend)
    let a = Backend::start_with(None, |c| c.security.login_delay_ms = 60_000).await?;
    let b = a.start_beside(|_| {}).await?;
    let on_a = Api::new(&a).await?;
    let on_b = on_a.on(&b);

    // ordered through one backend, redeemed across both
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
    let (s, res) = on_a.post("/reservations", json!({ "print_number": number })).await?;
    assert_eq!(s, 200, "{res}");
    let id = res["reservation_id"].as_i64().context("reservation")?;
    let amount = res["amount"].as_i64().context("amount")?;
    let charge = json!({ "card_uid": shomei_backend::demo::CARD_UID, "idempotency_key": "two-backends" });
    let (s, first) = on_b.post(&format!("/reservations/{id}/charge"), charge.clone()).await?;
    assert_eq!(s, 200, "{first}");
    // the station's retry lands on the other backend: the same answer, no second debit
    let (s, again) = on_a.post(&format!("/reservations/{id}/charge"), charge).await?;
    assert_eq!((s, &again), (200, &first));
    let pdf = reqwest::Client::new()
        .get(format!("{}/api/station/v1/reservations/{id}/document", a.url))
        .bearer_auth(on_a.token())
        .send()
        .await?;
    assert_eq!(pdf.status(), 200);
    assert!(pdf.bytes().await?.starts_with(b"%PDF"));
    let report = json!({ "idempotency_key": "two-backends-r", "outcome": { "kind": "printed" }, "ipp_job_id": 7, "at": 0 });
    let (s, r) = on_b.post(&format!("/reservations/{id}/report"), report).await?;
    assert_eq!((s, r["order_status"].clone()), (200, json!("printed")), "{r}");
    assert_eq!(a.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))?, "printed");
    assert_eq!(b.sql("SELECT COUNT(*) || '|' || SUM(amount) FROM ledger WHERE kind = 'debit'")?, format!("1|{}", -amount));

    // a session opened on one backend serves on the other
    let c = Backend::client();
    assert_eq!(log_in(&c, &a, shomei_backend::demo::GRADUATE_PASSWORD).await?, 200);
    let menu = c.get(format!("{}/portal", b.url)).send().await?;
    assert_eq!(menu.status(), 200);
    let menu = menu.text().await?;
    assert!(menu.contains("/logout") && !menu.contains("name=\"password\""), "logged in on the other backend too: {menu}");

    // failed logins count on both: two free failures, one on each, then a third
    // starts the delay, and the next try waits whichever backend it reaches
    let c = Backend::client();
    assert_eq!(log_in(&c, &a, "wrong-1").await?, 401);
    assert_eq!(log_in(&c, &b, "wrong-2").await?, 401);
    assert_eq!(log_in(&c, &a, "wrong-3").await?, 401);
    assert_eq!(log_in(&c, &b, "wrong-4").await?, 429, "the failures on the other backend count here");
    assert_eq!(log_in(&c, &a, shomei_backend::demo::GRADUATE_PASSWORD).await?, 429, "and there: even the right password waits");
    Ok(())
}

/// Background work runs in one backend at a time: with two backends up,
/// every mail goes out once, sent by the backend holding the mail job's
/// lease; when that backend dies (its lease kept, as a killed process keeps
/// it), the other takes the job over once the lease lapses: the mails
/// queued since go out, each once, and an unpaid order past its deadline is
/// expired by the survivor in one pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_work_runs_in_one_backend_at_a_time_and_moves_to_the_other_when_it_dies() -> Result<()> {
    let smtp = Smtp::start()?;
    let mut a = Backend::start_with(Some(smtp.port), |c| {
        c.database.job_lease_s = 4;
        c.orders.expiry_check_s = 1;
    })
    .await?;
    // a holds the jobs before b starts
    let holder = |job: &str| a.sql(&format!("SELECT holder FROM job_leases WHERE name = '{job}'"));
    wait_until("the first backend to take the mail and expiry jobs", Duration::from_secs(20), || {
        holder("mail").is_ok_and(|h| !h.is_empty()) && holder("order-expiry").is_ok_and(|h| !h.is_empty())
    })?;
    let (first_mail, first_expiry) = (holder("mail")?, holder("order-expiry")?);
    let b = a.start_beside(|_| {}).await?;

    let request = |backend: &Backend, to: String| {
        let url = backend.url.clone();
        async move {
            let c = Backend::client();
            let page = c.get(format!("{url}/register")).send().await?.text().await?;
            let csrf = form_value(&page, "csrf").context("csrf on /register")?;
            let r = c.post(format!("{url}/register")).form(&[("csrf", csrf.as_str()), ("email", &to), ("email_confirm", &to)]).send().await?;
            anyhow::ensure!(r.status() == 200, "registration link to {to}: {}", r.status());
            anyhow::Ok(())
        }
    };
    let to = |i: usize| format!("twice{i}@example.jp");
    // both up: requests through either, every mail out once
    for i in 0..4 {
        request(if i % 2 == 0 { &a } else { &b }, to(i)).await?;
    }
    for i in 0..4 {
        smtp.wait_for_mail(&to(i), Duration::from_secs(30))?;
    }
    assert_eq!(holder("mail")?, first_mail, "the mail job stayed with the backend that held it");
    // an unpaid order, placed through b
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
    assert_eq!(a.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))?, "awaiting_payment");

    // a dies holding its jobs
    a.kill().await?;
    request(&b, to(4)).await?;
    let now = shomei_backend::time::now();
    b.sql(&format!("UPDATE orders SET pay_deadline = {} WHERE print_number = '{number}'", now - 10))?;
    smtp.wait_for_mail(&to(4), Duration::from_secs(30))?;
    wait_until("the survivor to expire the order", Duration::from_secs(30), || {
        b.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'")).is_ok_and(|s| s == "expired")
    })?;
    let (mail_now, expiry_now) = (b.sql("SELECT holder FROM job_leases WHERE name = 'mail'")?, b.sql("SELECT holder FROM job_leases WHERE name = 'order-expiry'")?);
    assert!(mail_now != first_mail && expiry_now != first_expiry, "the jobs moved: {mail_now} {expiry_now}");
    // nothing twice: every mail sent, each delivered once; one expiry pass did it
    wait_until("the outbox to be sent", Duration::from_secs(30), || b.sql("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").is_ok_and(|n| n == "0"))?;
    for i in 0..5 {
        assert_eq!(smtp.all_to(&to(i)).len(), 1, "mail to {} delivered once", to(i));
    }
    assert_eq!(b.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'order.expire'")?, "1");
    Ok(())
}
