//! O-3 convenience-store print: after payment the order's PDF is registered
//! with the stores' network-print service (the `shomei-storeprint` simulator
//! of the API in docs/storeprint-api.md), the user number is mailed and shown,
//! a store prints it once and says so, and a refund withdraws it.

use crate::accounts::*;
use crate::harness::*;
use anyhow::{Context, Result};
use base64::Engine;
use shomei_backend::demo;
use std::time::{Duration, Instant};

/// The demo graduate orders one graduation certificate for `delivery`, paid by `payment`.
async fn order(b: &Backend, user: &reqwest::Client, delivery: &str, payment: &str) -> Result<(u16, String)> {
    let id = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let field = format!("copies_{id}");
    let (s, _, page) = post_form(
        user,
        &format!("{}/orders/new", b.url),
        &format!("{}/orders", b.url),
        &[("student_record_id", "1"), (field.as_str(), "1"), ("delivery", delivery), ("payment_method", payment)],
    )
    .await?;
    Ok((s, page))
}

/// Pays order `id` in cash through Smart Pit (payment number, then the store's notice).
async fn pay_cash(b: &Backend, user: &reqwest::Client, smartpit: &HttpSim, id: i64) -> Result<()> {
    let order_url = format!("{}/orders/{id}", b.url);
    let (s, _, page) = post_form(user, &order_url, &format!("{order_url}/smartpit"), &[]).await?;
    anyhow::ensure!(s == 200, "payment number: {s} {page}");
    let number = element_text(&page, "smartpit-number").context("payment number")?;
    let r = smartpit.knob("/sim/pay", serde_json::json!({ "payment_number": number, "url": format!("{}/smartpit/notice", b.url) })).await?;
    anyhow::ensure!(r["delivered_status"] == 200, "notice: {r}");
    Ok(())
}

fn wait_until(what: &str, mut ok: impl FnMut() -> Result<bool>) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if ok()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("timed out waiting for {what}")
}

/// What the stores' service simulator saw: `refused` (API calls answered 503
/// during an outage) and `documents` (registered).
async fn service_state(stores: &HttpSim) -> Result<serde_json::Value> {
    Ok(reqwest::get(format!("{}/sim/state", stores.url)).await?.json().await?)
}

/// The store-print mails (user number and reservation number) in the backend's outbox, sent or not.
const STORE_MAILS: &str = "SELECT count(*) FROM outbox WHERE subject LIKE '%Your number for printing at a convenience store%'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_print_order_is_registered_once_paid_printed_once_and_withdrawn_on_refund() -> Result<()> {
    let smtp = Smtp::start()?;
    let smartpit = HttpSim::smartpit()?;
    let stores = HttpSim::start_named("shomei-storeprint")?;
    let (sp_url, st_url) = (smartpit.url.clone(), stores.url.clone());
    let b = Backend::start_with(Some(smtp.port), move |c| {
        c.smartpit.base_url = sp_url;
        c.storeprint.base_url = st_url;
        c.storeprint.retry_s = 1;
    })
    .await?;
    let user = Backend::client();
    portal_login(&b, &user, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;

    // the order form offers the stores; an IC card cannot pay for them
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(form.contains("value=\"store\"") && form.contains("Print at a convenience store"), "{form}");
    let (s, page) = order(&b, &user, "store", "card").await?;
    assert_eq!(s, 400);
    assert!(page.contains("IC card payment is only for on-campus printing"), "{page}");
    assert_eq!(b.sql("SELECT count(*) FROM orders")?, "0", "nothing half-written");

    let (s, page) = order(&b, &user, "store", "smartpit").await?;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("id=\"pay-cash\"") && !page.contains("id=\"print-number\""), "{page}");
    assert_eq!(b.sql("SELECT coalesce(print_number, 'none') FROM orders WHERE id = 1")?, "none", "no on-campus number for a store order");

    // paid while the stores' service is down: the order waits, the user is told, staff see it
    stores.knob("/sim/outage", serde_json::json!({ "down": true })).await?;
    pay_cash(&b, &user, &smartpit, 1).await?;
    let page = user.get(format!("{}/orders/1", b.url)).send().await?.text().await?;
    assert!(page.contains("id=\"store-pending\""), "{page}");
    let staff_page = b.staff_page("/admin/orders/1").await?;
    assert!(element_text(&staff_page, "store-state").unwrap_or_default().contains("retried automatically") || staff_page.contains("retried automatically"), "{staff_page}");
    // the backend tried at once and again at its retry, and was refused both times: nothing registered, nothing mailed
    let end = Instant::now() + Duration::from_secs(15);
    while service_state(&stores).await?["refused"].as_i64().unwrap_or(0) < 2 {
        anyhow::ensure!(Instant::now() < end, "the registration was not tried twice during the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.sql("SELECT coalesce(store_user_number, 'none') FROM orders WHERE id = 1")?, "none");
    assert_eq!(service_state(&stores).await?["documents"], 0);
    assert_eq!(b.sql(STORE_MAILS)?, "0", "no store number mailed before it exists");

    // back up: registered by the retry, once, and the numbers are mailed and shown
    stores.knob("/sim/outage", serde_json::json!({ "down": false })).await?;
    wait_until("the registration", || Ok(b.sql("SELECT count(*) FROM orders WHERE store_user_number IS NOT NULL")? == "1"))?;
    let user_number = b.sql("SELECT store_user_number FROM orders WHERE id = 1")?;
    let reservation = b.sql("SELECT store_reservation_number FROM orders WHERE id = 1")?;
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, &user_number, MAIL_WAIT)?;
    assert!(mail.contains(&reservation) && mail.contains("Network Print") && mail.contains("ネットワークプリント") && mail.contains("Print by"), "{mail}");
    let page = user.get(format!("{}/orders/1", b.url)).send().await?.text().await?;
    assert_eq!(element_text(&page, "store-user-number").as_deref(), Some(user_number.as_str()), "{page}");
    assert_eq!(service_state(&stores).await?["documents"], 1, "registered once");
    assert_eq!(b.sql(STORE_MAILS)?, "1", "mailed once");

    // the cash payment has its receipt
    let r = user.get(format!("{}/orders/1/receipt", b.url)).send().await?;
    assert_eq!(r.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/pdf"));
    let path = b.dir.path().join("receipt.pdf");
    std::fs::write(&path, r.bytes().await?)?;
    let text = String::from_utf8_lossy(&std::process::Command::new("pdftotext").arg(&path).arg("-").output()?.stdout).into_owned();
    let paid_with = b.sql("SELECT smartpit_number FROM orders WHERE id = 1")?;
    assert!(text.contains("Cash at a convenience store (Smart Pit)") && text.contains(&paid_with) && text.contains("¥400"), "{text}");

    // at the store: the reservation number prints the order's own PDF, once
    let notice_url = format!("{}/storeprint/notice", b.url);
    let r = stores.knob("/sim/print", serde_json::json!({ "number": reservation, "notice_url": notice_url, "notice_id": "P-1" })).await?;
    assert_eq!(r["result"], "printed", "{r}");
    assert_eq!(r["delivered_status"], 200, "{r}");
    let printed = base64::engine::general_purpose::STANDARD.decode(r["pdf_base64"].as_str().context("pdf")?)?;
    assert_eq!(printed, b.order_pdf(1).await?, "the store prints the order's PDF");
    assert_eq!(b.sql("SELECT status FROM orders WHERE id = 1")?, "printed");
    let r = stores.knob("/sim/print", serde_json::json!({ "number": user_number, "notice_url": notice_url })).await?;
    assert_eq!((r["result"].as_str(), r["status"].as_str()), (Some("refused"), Some("printed")), "{r}");

    // the service's notices: a replay is acknowledged once, a forged one refused
    let body = serde_json::json!({ "notice_id": "P-1", "file_id": b.sql("SELECT store_file_id FROM orders WHERE id = 1")?, "event": "printed" }).to_string();
    let sig = |body: &str| {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"shomei-storeprint-secret").expect("key");
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let post = |body: String, sig: String| reqwest::Client::new().post(&notice_url).header("content-type", "application/json").header("x-storeprint-signature", sig).body(body).send();
    assert_eq!(post(body.clone(), sig(&body)).await?.status(), 200);
    assert_eq!(b.sql("SELECT count(*) FROM storeprint_notices")?, "1");
    assert_eq!(post(body.replace("P-1", "P-2"), sig(&body)).await?.status(), 400, "signature of another body");
    let unknown = serde_json::json!({ "notice_id": "P-3", "file_id": "Fnothing", "event": "printed" }).to_string();
    assert_eq!(post(unknown.clone(), sig(&unknown)).await?.status(), 404);

    // a second store order, refunded by staff: its numbers stop working at the stores
    order(&b, &user, "store", "smartpit").await?;
    pay_cash(&b, &user, &smartpit, 2).await?;
    wait_until("the second registration", || Ok(b.sql("SELECT count(*) FROM orders WHERE store_user_number IS NOT NULL")? == "2"))?;
    let second = b.sql("SELECT store_user_number FROM orders WHERE id = 2")?;
    // the registration has run again since the first order's: that one is still registered and mailed once
    assert_eq!(service_state(&stores).await?["documents"], 2, "one document per order");
    assert_eq!(b.sql("SELECT count(*) FROM audit_log WHERE action = 'order.store_registered' AND detail LIKE 'order 1 %'")?, "1");
    assert_eq!(b.sql(STORE_MAILS)?, "2", "one mail per order");
    let staff = b.staff_client().await?;
    let detail = format!("{}/admin/orders/2", b.url);
    // while the service is down the refund is refused and nothing changes
    stores.knob("/sim/outage", serde_json::json!({ "down": true })).await?;
    let (s, _, page) = post_form(&staff, &detail, &format!("{detail}/refund"), &[("reason", "Ordered twice by mistake")]).await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("could not be withdrawn and nothing was refunded"), "{page}");
    assert_eq!(b.sql("SELECT status FROM orders WHERE id = 2")?, "paid");
    stores.knob("/sim/outage", serde_json::json!({ "down": false })).await?;
    let (s, _, page) = post_form(&staff, &detail, &format!("{detail}/refund"), &[("reason", "Ordered twice by mistake")]).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(b.sql("SELECT status FROM orders WHERE id = 2")?, "cancelled");
    assert!(b.sql("SELECT target FROM audit_log WHERE action = 'order.refund'")?.contains("order:2 smartpit (to be paid back by the office)"), "cash is paid back by the office, not by Smart Pit");
    let r = stores.knob("/sim/print", serde_json::json!({ "number": second, "notice_url": notice_url })).await?;
    assert_eq!((r["result"].as_str(), r["status"].as_str()), (Some("refused"), Some("withdrawn")), "{r}");
    Ok(())
}
