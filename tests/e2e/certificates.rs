//! Issued certificates (D-1): the public verification page, staff revoking a
//! certificate; service hours (O-7): ordering refused in a maintenance window.

use crate::accounts::*;
use crate::harness::*;
use anyhow::{Context, Result};
use fantoccini::Locator;

/// A placed order's first certificate code, and the order id.
async fn ordered_certificate(b: &Backend) -> Result<(i64, String)> {
    b.order_as_graduate(2).await?;
    let order: i64 = b.sql("SELECT max(id) FROM orders")?.parse()?;
    let code = b.sql(&format!(
        "SELECT c.verification_code FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE l.order_id = {order} ORDER BY c.id LIMIT 1"
    ))?;
    Ok((order, code))
}

on_both_screens!(a_third_party_verifies_a_certificate_and_sees_it_revoked_in_the_browser, a_third_party_verifies_a_certificate_and_sees_it_revoked_in_the_browser_at_phone_width, a_third_party_verifies_a_certificate_and_sees_it_revoked_in_the_browser_on);
async fn a_third_party_verifies_a_certificate_and_sees_it_revoked_in_the_browser_on(screen: Screen) -> Result<()> {
    let b = Backend::start(None).await?;
    let (order, code) = ordered_certificate(&b).await?;
    let c = Backend::client();
    // not printed yet: the code verifies nothing, exactly like a wrong one
    let r = c.get(format!("{}/verify?code={code}", b.url)).send().await?;
    assert_eq!(r.status(), 404);
    let unprinted = element_text(&r.text().await?, "verdict");
    let r = c.get(format!("{}/verify?code=ABCD-EFGH-JKMN", b.url)).send().await?;
    assert_eq!(element_text(&r.text().await?, "verdict"), unprinted);
    b.sql(&format!("UPDATE orders SET status = 'printed', printed_at = {} WHERE id = {order}", shomei_backend::time::now()))?;

    // a third party, no login: type the code as printed (loosely), see what was issued to whom
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    w.goto(&format!("{}/verify", b.url)).await?;
    browser.wait_id("code").await?.send_keys(&code.to_lowercase().replace('-', " ")).await?;
    w.find(Locator::Id("check")).await?.click().await?;
    let verdict = browser.wait_id("verdict").await?.text().await?;
    assert!(verdict.contains("有効") && verdict.contains("valid"), "{verdict}");
    let text = browser.body_text().await?;
    assert!(text.contains("山田 花子") && text.contains("卒業証明書") && text.contains("Shomei University"), "{text}");

    // staff revoke it (a reason is required) on the order's page
    w.goto(&format!("{}/admin/login", b.url)).await?;
    browser.wait_id("login").await?.send_keys(shomei_backend::demo::STAFF_LOGIN).await?;
    w.find(Locator::Id("password")).await?.send_keys(shomei_backend::demo::STAFF_PASSWORD).await?;
    w.find(Locator::Id("code")).await?.send_keys(&b.staff_code().await?).await?;
    w.find(Locator::Id("staff-login")).await?.click().await?;
    browser.wait_for(Locator::Css("nav a[href=\"/admin/orders\"]")).await?.click().await?;
    browser.wait_for(Locator::Css(&format!("a[href=\"/admin/orders/{order}\"]"))).await?.click().await?;
    let cert_id = b.sql(&format!("SELECT id FROM certificates WHERE verification_code = '{code}'"))?;
    browser.wait_id(&format!("reason-{cert_id}")).await?.send_keys("Issued with a wrong graduation date").await?;
    // revoking asks first: "no" leaves the certificate valid, "yes" revokes it
    w.find(Locator::Id(&format!("revoke-{cert_id}"))).await?.click().await?;
    let asked = w.get_alert_text().await?;
    assert!(asked.contains("Revoke this certificate?") && asked.contains("失効させますか"), "{asked}");
    w.dismiss_alert().await?;
    assert_eq!(b.sql(&format!("SELECT CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END FROM certificates WHERE id = {cert_id}"))?, "1", "not revoked after \"no\"");
    w.find(Locator::Id(&format!("revoke-{cert_id}"))).await?.click().await?;
    w.accept_alert().await?;
    browser.wait_for(Locator::Css(&format!("#certificate-{cert_id} .bad"))).await?;
    let row = browser.wait_id(&format!("certificate-{cert_id}")).await?.text().await?;
    assert!(row.contains("revoked") && row.contains("wrong graduation date"), "{row}");

    w.goto(&format!("{}/verify?code={code}", b.url)).await?;
    let verdict = browser.wait_id("verdict").await?.text().await?;
    assert!(verdict.contains("失効") && verdict.contains("revoked"), "{verdict}");
    browser.close().await;
    assert!(b.sql("SELECT actor || ' ' || action || ' ' || target FROM audit_log")?.contains(&format!("staff:staff certificate.revoke certificate:{cert_id}")));
    // the other copy of the order is still valid
    let other = b.sql(&format!("SELECT verification_code FROM certificates WHERE verification_code <> '{code}' ORDER BY id DESC LIMIT 1"))?;
    let page = c.get(format!("{}/verify?code={other}", b.url)).send().await?.text().await?;
    assert!(element_text(&page, "verdict").unwrap_or_default().contains("有効"), "{page}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_codes_on_the_verification_page_is_slowed() -> Result<()> {
    let b = Backend::start(None).await?;
    let c = Backend::client();
    let mut statuses = Vec::new();
    for i in 0..22 {
        let r = c.get(format!("{}/verify?code=ABCD-EFGH-{:04}", b.url, 2222 + i)).send().await?;
        statuses.push(r.status().as_u16());
    }
    assert!(statuses[..20].iter().all(|&s| s == 404), "{statuses:?}");
    assert_eq!(statuses[21], 429, "{statuses:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_is_refused_in_a_maintenance_window_with_until_when() -> Result<()> {
    let b = Backend::start(None).await?;
    let staff = b.staff_client().await?;
    let jst = |secs: i64| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0) + secs + 9 * 3600;
        let days = t.div_euclid(86400);
        // civil date from days since 1970 (Howard Hinnant's algorithm)
        let z = days + 719468;
        let era = z.div_euclid(146097);
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
        let sod = t.rem_euclid(86400);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}", sod / 3600, sod % 3600 / 60)
    };
    // a graduate has the order form open when the window starts
    let user = Backend::client();
    portal_login(&b, &user, shomei_backend::demo::GRADUATE_EMAIL, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    let csrf = form_value(&form, "csrf").context("csrf")?;
    let copies = form.split("name=\"copies_").nth(1).and_then(|r| r.split('"').next()).context("copies field")?.to_string();
    let url = format!("{}/admin/service", b.url);
    let (s, _, page) = post_form(&staff, &url, &url, &[("kind", "maintenance"), ("starts", &jst(-600)), ("ends", &jst(600)), ("note_ja", "システム更新"), ("note_en", "System update")]).await?;
    assert_eq!(s, 200, "{page}");
    let until = jst(600).replace('T', " ");
    // sending the order and opening the form both say the service is closed, and until when
    let r = user
        .post(format!("{}/orders", b.url))
        .form(&[("csrf", csrf.as_str()), ("student_record_id", "1"), (&format!("copies_{copies}"), "1"), ("delivery", "campus"), ("payment_method", "card")])
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let err = r.text().await?;
    assert!(err.contains("under maintenance") && err.contains(&until) && err.contains("System update") && err.contains("メンテナンス中"), "{err}");
    let page = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(page.contains("under maintenance") && !page.contains("place-order"), "{page}");
    assert_eq!(b.sql("SELECT count(*) FROM orders")?, "0", "nothing half-written");
    // a bad window is refused with a message
    let (s, _, page) = post_form(&staff, &url, &url, &[("kind", "maintenance"), ("starts", &jst(600)), ("ends", &jst(-600))]).await?;
    assert_eq!(s, 400);
    assert!(page.contains("The end must come after the start"), "{page}");
    // removing the window opens ordering again
    let id = b.sql("SELECT id FROM service_breaks")?;
    post_form(&staff, &url, &format!("{}/admin/service/{id}/delete", b.url), &[]).await?;
    b.order_as_graduate(1).await?;
    assert_eq!(b.sql("SELECT count(*) FROM orders")?, "1");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_decides_who_may_order_what_and_prices_are_frozen_at_ordering() -> Result<()> {
    let b = Backend::start(None).await?;
    let staff = b.staff_client().await?;
    let cat = format!("{}/admin/catalogue", b.url);
    b.order_as_graduate(1).await?;
    assert_eq!(b.sql("SELECT total FROM orders")?, "400", "¥300 + system fee ¥100");
    let grad_id = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let save = |fields: Vec<(&'static str, String)>| {
        let (staff, cat, grad_id) = (staff.clone(), cat.clone(), grad_id.clone());
        async move {
            let mut f: Vec<(&str, String)> = vec![("id", grad_id), ("code", "graduation".into()), ("name_ja", "卒業証明書".into()),
                ("name_en", "Certificate of Graduation".into()), ("max_copies", "10".into()), ("leaving_graduated", "1".into()), ("active", "1".into()),
                ("layout", "certificate".into()), ("language", "ja".into())];
            f.extend(fields);
            let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(&staff, &cat, &cat, &refs).await
        }
    };
    // bad input is refused with a message, nothing changes
    let (s, _, page) = save(vec![("fee", "-5".into())]).await?;
    assert_eq!(s, 400);
    assert!(page.contains("The fee is a whole number"), "{page}");
    let (s, _, page) = save(vec![("fee", "350".into()), ("faculty_codes", "NOPE".into())]).await?;
    assert_eq!(s, 400);
    assert!(page.contains("no faculty with the code NOPE"), "{page}");
    let (s, _, page) = save(vec![("fee", "350".into()), ("body_ja", "{grad_date}に卒業".into())]).await?;
    assert_eq!(s, 400);
    assert!(page.contains("{grad_date} is not a placeholder") && page.contains("{graduation_date}"), "{page}");
    // a new fee and the type's own wording: the placed order keeps its price and text, a new one gets both
    let (s, _, page) = save(vec![
        ("fee", "350".into()),
        ("body_ja", "上記の者は、{graduation_date}に{university}{faculty}を卒業し、学士（文学）の学位を授与されたことを証明する。".into()),
        ("body_en", "This is to certify that {name} graduated from the {faculty} on {graduation_date} with the degree of Bachelor of Arts.".into()),
    ])
    .await?;
    assert_eq!(s, 200, "{page}");
    b.order_as_graduate(1).await?;
    assert_eq!(b.sql("SELECT total FROM orders ORDER BY id")?.lines().collect::<Vec<_>>().join(","), "400,450");
    let text = order_pdf_text(&b, 2).await?.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("2024年3月25日に証明大学文学部を卒業し、学士（文学）の") && text.contains("YAMADA Hanako graduated from the Faculty of Letters on March 25, 2024 with the degree of Bachelor of Arts"), "{text}");
    assert!(!order_pdf_text(&b, 1).await?.contains("学士"), "the first order kept its text");
    // only the Faculty of Science may order it now: the graduate (Letters) no longer sees it, and cannot order it anyway
    let user = Backend::client();
    portal_login(&b, &user, shomei_backend::demo::GRADUATE_EMAIL, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    let csrf = form_value(&form, "csrf").context("csrf")?;
    save(vec![("fee", "350".into()), ("faculty_codes", "SCI".into())]).await?;
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(!form.contains(&format!("copies_{grad_id}\"")) && form.contains("Certificate of Graduation (English)"), "{form}");
    let r = user
        .post(format!("{}/orders", b.url))
        .form(&[("csrf", csrf.as_str()), ("student_record_id", "1"), (&format!("copies_{grad_id}"), "1"), ("delivery", "campus"), ("payment_method", "card")])
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    assert!(r.text().await?.contains("cannot be ordered"));
    // a graduation-year range that excludes 2024 hides it too
    save(vec![("fee", "350".into()), ("grad_year_from", "2000".into()), ("grad_year_to", "2010".into())]).await?;
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(!form.contains(&format!("copies_{grad_id}\"")));
    save(vec![("fee", "350".into()), ("grad_year_from", "2020".into()), ("grad_year_to", "2030".into())]).await?;
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(form.contains(&format!("copies_{grad_id}\"")), "2024 is inside 2020-2030");
    assert!(!form.contains("Certificate of Enrolment"), "enrolled students' certificate is not offered to a graduate");
    assert!(b.sql("SELECT count(*) FROM audit_log WHERE action = 'catalogue.save'")?.parse::<i64>()? >= 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_orders_can_be_cancelled_resent_and_expire_by_themselves() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let email = shomei_backend::demo::GRADUATE_EMAIL;
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("number")?;
    let first: i64 = b.sql("SELECT max(id) FROM orders")?.parse()?;
    smtp.wait_for_mail_with(email, &number, MAIL_WAIT)?;
    let user = Backend::client();
    portal_login(&b, &user, email, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    let order_url = format!("{}/orders/{first}", b.url);
    let menu = user.get(format!("{}/portal", b.url)).send().await?.text().await?;
    assert!(menu.contains(&number) && menu.contains("until"), "the menu shows the number with its deadline: {menu}");

    // a lost mail: the number is sent again, with its deadline
    let (s, _, page) = post_form(&user, &order_url, &format!("{order_url}/resend"), &[]).await?;
    assert_eq!(s, 200);
    assert!(element_text(&page, "notice").unwrap_or_default().contains("sent to you again"));
    wait_until("second number mail", MAIL_WAIT, || smtp.all_to(email).iter().filter(|m| m.contains(&number)).count() == 2)?;

    // someone else, logged in with their own account, can neither see this
    // order, its receipt, nor cancel it or have its number resent while it is
    // still open (both work for the owner here): each is "not found", like an
    // order that does not exist
    let other = graduate(&b, &smtp, "someone.else@example.jp", "Someone2024pw", "Second2024se").await?;
    let other_portal = format!("{}/portal", b.url);
    let outbox_before = b.sql(&format!("SELECT COUNT(*) FROM outbox WHERE to_addr = '{email}'"))?;
    let audit_before = b.sql("SELECT COUNT(*) FROM audit_log WHERE action IN ('order.cancel', 'order.resend_number')")?;
    let r = other.get(&order_url).send().await?;
    assert_eq!(r.status(), 404, "someone else's order page");
    let theirs = r.text().await?;
    crate::print_flow::assert_no_full_number("someone else's order page", &theirs, &number);
    let r = other.get(format!("{}/orders/999999", b.url)).send().await?;
    assert_eq!((r.status().as_u16(), r.text().await?), (404, theirs), "nothing tells someone else's order from one that does not exist");
    assert_eq!(other.get(format!("{order_url}/receipt")).send().await?.status(), 404, "someone else's receipt");
    for action in ["cancel", "resend"] {
        let (s, _, page) = post_form(&other, &other_portal, &format!("{order_url}/{action}"), &[]).await?;
        assert_eq!(s, 404, "someone else's order: {action}: {page}");
    }
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {first}"))?, "awaiting_payment", "still open");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM outbox WHERE to_addr = '{email}'"))?, outbox_before, "no number mailed for them");
    assert_eq!(b.sql("SELECT COUNT(*) FROM audit_log WHERE action IN ('order.cancel', 'order.resend_number')")?, audit_before, "nothing done");
    // the owner still sees it
    assert_eq!(user.get(&order_url).send().await?.status(), 200, "the owner's order page");

    // cancelled: the status says so, a second cancel is refused clearly
    let (s, _, page) = post_form(&user, &order_url, &format!("{order_url}/cancel"), &[]).await?;
    assert_eq!(s, 200);
    assert!(element_text(&page, "status").unwrap_or_default().contains("取消"), "{page}");
    let r = user.post(format!("{order_url}/cancel")).form(&[("csrf", csrf_of(&user, &format!("{}/portal", b.url)).await?.as_str())]).send().await?;
    assert_eq!(r.status(), 400);
    assert!(r.text().await?.contains("Only an order not paid yet can be cancelled"));
    // and without a session, nothing but the login page
    let r = Backend::client().post(format!("{order_url}/cancel")).form(&[("csrf", "x")]).send().await?;
    assert_eq!(r.url().path(), "/login");

    // O-5: unpaid past the payment deadline -> expired by the scheduled job, once
    b.order_as_graduate(1).await?;
    let second: i64 = b.sql("SELECT max(id) FROM orders")?.parse()?;
    b.sql(&format!("UPDATE orders SET pay_deadline = {} - 1 WHERE id = {second}", shomei_backend::time::now()))?;
    let pool = sqlx_pool(&b).await?;
    assert_eq!(shomei_backend::orders::expire_unpaid(&pool).await?, 1);
    assert_eq!(shomei_backend::orders::expire_unpaid(&pool).await?, 0, "idempotent");
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {second}"))?, "expired");
    let page = user.get(format!("{}/orders/{second}", b.url)).send().await?.text().await?;
    assert!(page.contains("期限切れ") && !page.contains("id=\"resend\"") && !page.contains("id=\"cancel\""), "{page}");
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {first}"))?, "cancelled", "the job leaves other orders alone");
    Ok(())
}

on_both_screens!(a_graduate_links_cards_sees_the_balance_and_blocks_a_lost_one_in_the_browser, a_graduate_links_cards_sees_the_balance_and_blocks_a_lost_one_in_the_browser_at_phone_width, a_graduate_links_cards_sees_the_balance_and_blocks_a_lost_one_in_the_browser_on);
async fn a_graduate_links_cards_sees_the_balance_and_blocks_a_lost_one_in_the_browser_on(screen: Screen) -> Result<()> {
    use shomei_backend::demo;
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser.log_in_as_demo_graduate(&b).await?;
    browser.wait_id("cards").await?.click().await?;
    let row = browser.wait_id(&format!("card-{}", demo::CARD_UID)).await?.text().await?;
    assert!(row.contains("¥3,000") && row.contains("active"), "{row}");

    // a mistyped ID is refused next to the field; a good one (typed with spaces) is linked
    browser.wait_id("uid").await?.send_keys("0123 4567 89AB CDEZ").await?;
    w.find(Locator::Id("link")).await?.click().await?;
    assert!(browser.wait_id("uid-error").await?.text().await?.contains("16 characters"));
    let uid = browser.wait_id("uid").await?;
    uid.clear().await?;
    uid.send_keys("01 23 45 67 89 ab cd ef").await?;
    w.find(Locator::Id("label")).await?.send_keys("Suica").await?;
    w.find(Locator::Id("link")).await?.click().await?;
    browser.wait_text("notice", "linked").await?;
    let row = browser.wait_id("card-0123456789ABCDEF").await?.text().await?;
    assert!(row.contains("Suica") && row.contains("¥0"), "{row}");

    // the demo card is lost: blocked at once, and a station refuses it
    browser.wait_id(&format!("lost-{}", demo::CARD_UID)).await?.click().await?;
    browser.wait_text("notice", "blocked").await?;
    let row = browser.wait_id(&format!("card-{}", demo::CARD_UID)).await?.text().await?;
    assert!(row.contains("blocked") && row.contains("¥3,000"), "the balance is kept: {row}");
    browser.close().await;
    let api = crate::station_api::Api::new(&b).await?;
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    let (_, res) = api.post("/reservations", serde_json::json!({ "print_number": number })).await?;
    let id = res["reservation_id"].as_i64().unwrap_or_default();
    let (s, r) = api.post(&format!("/reservations/{id}/charge"), serde_json::json!({ "card_uid": demo::CARD_UID, "idempotency_key": "lost-1" })).await?;
    assert_eq!((s, r["code"].clone()), (402, serde_json::json!("card_blocked")), "{r}");
    assert_eq!(b.sql(&format!("SELECT sum(amount) FROM ledger WHERE card_uid = '{}'", demo::CARD_UID))?, "3000", "nothing debited");

    // someone else cannot link a card that is already linked, nor block it
    let other = graduate(&b, &smtp, "other.holder@example.jp", "Holder2024pw", "Second2024hd").await?;
    let cards = format!("{}/cards", b.url);
    let (s, _, page) = post_form(&other, &cards, &cards, &[("uid", "0123456789ABCDEF")]).await?;
    assert_eq!(s, 400);
    assert!(page.contains("linked to another account"), "{page}");
    let (s, _, _) = post_form(&other, &cards, &format!("{cards}/0123456789ABCDEF/lost"), &[]).await?;
    assert_eq!(s, 404);
    assert_eq!(b.sql("SELECT status FROM ic_cards WHERE uid = '0123456789ABCDEF'")?, "active");
    let page = other.get(&cards).send().await?.text().await?;
    assert!(page.contains("id=\"no-cards\"") && !page.contains(demo::CARD_UID), "nobody else's cards or history: {page}");
    Ok(())
}

on_both_screens!(a_card_is_topped_up_through_paypal_once_in_the_browser, a_card_is_topped_up_through_paypal_once_in_the_browser_at_phone_width, a_card_is_topped_up_through_paypal_once_in_the_browser_on);
async fn a_card_is_topped_up_through_paypal_once_in_the_browser_on(screen: Screen) -> Result<()> {
    use shomei_backend::demo;
    let sim = PayPalSim::start()?;
    let sim_url = sim.url.clone();
    let b = Backend::start_with(None, move |c| {
        c.paypal.base_url = sim_url;
        c.paypal.return_url = format!("{}/paypal/return", c.http.public_url);
        c.paypal.cancel_url = format!("{}/paypal/cancel", c.http.public_url);
    })
    .await?;
    let balance = || b.sql(&format!("SELECT sum(amount) FROM ledger WHERE card_uid = '{}'", demo::CARD_UID));
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser.log_in_as_demo_graduate(&b).await?;
    browser.wait_id("cards").await?.click().await?;
    // ¥1,000 through PayPal: approve on PayPal's page, back to ours, press "Pay"
    browser.wait_id(&format!("amount-{}", demo::CARD_UID)).await?.select_by_value("1000").await?;
    w.find(Locator::Id(&format!("topup-{}", demo::CARD_UID))).await?.click().await?;
    browser.wait_id("pay").await?.click().await.context("pay at PayPal")?;
    browser.wait_for(Locator::Css("form[action^='/paypal/capture']")).await?;
    browser.wait_id("send").await?.click().await.context("complete the payment")?;
    browser.wait_for(Locator::Css(&format!("#card-{} .balance", demo::CARD_UID))).await?;
    browser.wait_text("notice", "topped up").await?;
    let row = browser.wait_id(&format!("card-{}", demo::CARD_UID)).await?.text().await?;
    assert!(row.contains("¥4,000"), "{row}");
    assert_eq!(balance()?, "4000");
    // the top-up has a receipt (PDF), fetched with the browser's session
    let link = browser.wait_id("receipt-topup-1").await?.attr("href").await?.context("receipt link")?;
    let cookies: Vec<String> = w.get_all_cookies().await?.iter().map(|c| format!("{}={}", c.name(), c.value())).collect();
    let r = reqwest::Client::new().get(format!("{}{link}", b.url)).header("cookie", cookies.join("; ")).send().await?;
    assert_eq!(r.status(), 200);
    let text = pdf_text(b.dir.path(), "topup.pdf", &r.bytes().await?)?;
    for needle in ["R-T-000001", "¥1,000", "IC card top-up", "Credit card (PayPal)"] {
        assert!(text.contains(needle), "{needle} missing from the top-up receipt:\n{text}");
    }
    // PayPal's webhook for the same capture (and a replay of it) credits nothing more
    let order_id = b.sql("SELECT paypal_order_id FROM topups")?;
    for _ in 0..2 {
        let r = sim.knob("/sim/send-webhook", serde_json::json!({ "order_id": order_id, "event_type": "PAYMENT.CAPTURE.COMPLETED", "url": format!("{}/paypal/webhook", b.url) })).await?;
        assert_eq!(r["delivered_status"], 200, "{r}");
    }
    assert_eq!(balance()?, "4000", "credited once");
    // a webhook with a tampered body is refused
    let r = sim.knob("/sim/send-webhook", serde_json::json!({ "order_id": order_id, "url": format!("{}/paypal/webhook", b.url), "tamper": true })).await?;
    assert_eq!(r["delivered_status"], 400, "{r}");

    // a declined card: a clear message, nothing credited
    browser.client.goto(&format!("{}/cards", b.url)).await?;
    browser.wait_id(&format!("topup-{}", demo::CARD_UID)).await?.click().await?;
    browser.wait_id("pay-declined").await?.click().await.context("decline at PayPal")?;
    browser.wait_for(Locator::Css("form[action^='/paypal/capture']")).await?;
    browser.wait_id("send").await?.click().await?;
    browser.wait_id("error").await?;
    let text = browser.body_text().await?;
    assert!(text.contains("declined") && text.contains("nothing was charged"), "{text}");
    assert_eq!(balance()?, "4000");
    browser.close().await;
    Ok(())
}

/// The registrar uploads a course CSV on the admin panel; returns (status, page).
async fn import_courses(b: &Backend, csv: &str) -> Result<(u16, String)> {
    let staff = b.staff_client().await?;
    let csrf = csrf_of(&staff, &format!("{}/admin/academic", b.url)).await?;
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .part("file", reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("courses.csv"));
    let r = staff.post(format!("{}/admin/academic", b.url)).multipart(form).send().await?;
    let s = r.status().as_u16();
    Ok((s, r.text().await?))
}

/// The order's PDF as text (pdftotext), after `qpdf --check` passed on it.
async fn order_pdf_text(b: &Backend, order_id: i64) -> Result<String> {
    let path = b.dir.path().join(format!("order-{order_id}.pdf"));
    std::fs::write(&path, b.order_pdf(&order_id).await?)?;
    let check = std::process::Command::new("qpdf").arg("--check").arg(&path).output()?;
    anyhow::ensure!(check.status.success(), "qpdf --check: {}", String::from_utf8_lossy(&check.stdout));
    let out = std::process::Command::new("pdftotext").args(["-layout"]).arg(&path).arg("-").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registrars_course_data_is_imported_whole_or_not_at_all_as_versions() -> Result<()> {
    let b = Backend::start(None).await?;
    let head = "student_no,year,term,code,name_ja,name_en,credits,grade\n";
    let (s, page) = import_courses(&b, &format!("{head}L19-0042,2023,後期,LIT999,特別講義,Special Lecture,2,A\nL19-0042,2023,後期,LIT998,特別演習,Special Seminar,two,A\nL19-0042,1800,後期,LIT997,古い講義,Old Lecture,2,Q\n")).await?;
    assert_eq!(s, 400);
    assert!(page.contains("line 3 (credits)") && page.contains("line 4 (year)") && page.contains("line 4 (grade)"), "{page}");
    assert_eq!(b.sql("SELECT count(*) FROM academic_imports")?, "1", "only the demo's first version");
    let (s, page) = import_courses(&b, &format!("{head}L19-0042,2023,後期,LIT999,特別講義,Special Lecture,2,S\n")).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(element_text(&page, "import-count").as_deref(), Some("2"));
    assert_eq!(b.sql("SELECT count(*) FROM course_results WHERE import_id = 1")?, "40", "the first version is kept");
    assert!(b.sql("SELECT detail FROM audit_log WHERE action = 'academic.import'")?.is_empty(), "target, not detail");
    assert!(b.sql("SELECT target FROM audit_log WHERE action = 'academic.import'")?.contains("rows:1"));
    Ok(())
}

/// The demo graduate orders on-campus print paid by IC card: `lines` are
/// (catalogue code, copies). Returns the new order's id.
async fn order_lines(b: &Backend, lines: &[(&str, u32)]) -> Result<(u16, String, i64)> {
    let c = Backend::client();
    let (s, _, _) = portal_login(b, &c, shomei_backend::demo::GRADUATE_EMAIL, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    anyhow::ensure!(s == 200, "login {s}");
    let record = b.sql("SELECT id FROM student_records WHERE student_no = 'L19-0042'")?;
    let mut fields: Vec<(String, String)> = vec![("student_record_id".into(), record), ("delivery".into(), "campus".into()), ("payment_method".into(), "card".into())];
    for (code, n) in lines {
        let id = b.sql(&format!("SELECT id FROM certificate_types WHERE code = '{code}'"))?;
        fields.push((format!("copies_{id}"), n.to_string()));
    }
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, _, page) = post_form(&c, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url), &refs).await?;
    let id = b.sql("SELECT coalesce(max(id), 0) FROM orders")?.parse()?;
    Ok((s, page, id))
}

/// An order's document as the database keeps it (sealed), byte for byte.
async fn stored_document(b: &Backend, order: i64) -> Result<Vec<u8>> {
    let pool = sqlx_pool(b).await?;
    let doc = shomei_backend::store::order_document(&mut *pool.acquire().await?, order).await?;
    pool.close().await;
    doc.with_context(|| format!("order {order} has no document"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_prints_the_course_version_it_was_ordered_with() -> Result<()> {
    let b = Backend::start(None).await?;
    // the portal offers the transcript beside the certificates
    let (s, _, first) = order_lines(&b, &[("graduation", 1), ("transcript", 1)]).await?;
    assert_eq!(s, 200);
    assert_eq!(b.sql(&format!("SELECT academic_import_id FROM orders WHERE id = {first}"))?, "1");
    let pages: usize = b.sql(&format!("SELECT pages FROM orders WHERE id = {first}"))?.parse()?;
    assert!(pages >= 3, "one certificate page + a transcript over 2+ pages: {pages}");
    let text = order_pdf_text(&b, first).await?;
    for needle in ["卒業証明書", "成績証明書", "Transcript of Academic Record", "山田 花子", "YAMADA Hanako", "L19-0042", "Cumulative GPA", "以下余白"] {
        assert!(text.contains(needle), "{needle} missing from the order PDF:\n{text}");
    }
    assert!(text.contains(&format!("1 / {}", pages - 1)), "page n of m on the transcript:\n{text}");
    let original = stored_document(&b, first).await?;

    // the registrar imports a new version with a new course and a changed grade
    let head = "student_no,year,term,code,name_ja,name_en,credits,grade\n";
    let (s, page) = import_courses(&b, &format!("{head}L19-0042,2019,前期,LIT101,日本文学概論,Introduction to Japanese Literature,2,S\nL19-0042,2023,後期,LIT999,特別講義 現代詩,Special Lecture on Modern Poetry,2,A\n")).await?;
    assert_eq!(s, 200, "{page}");
    // the first order keeps its PDF (a reprint is the same document)
    assert!(stored_document(&b, first).await? == original, "the first order's stored document is unchanged");
    let (s, _, second) = order_lines(&b, &[("transcript", 1)]).await?;
    assert_eq!(s, 200);
    assert_eq!(b.sql(&format!("SELECT academic_import_id FROM orders WHERE id = {second}"))?, "2");
    let text = order_pdf_text(&b, second).await?;
    assert!(text.contains("特別講義 現代詩") && text.contains("Special Lecture on Modern Poetry"), "{text}");
    assert!(text.contains("1 / 1"), "two courses fit on one page: {text}");
    let gpa = text.lines().find(|l| l.contains("Cumulative GPA")).context("GPA line")?;
    assert!(gpa.contains("3.50"), "(4x2 + 3x2) / 4 credits: {gpa}");
    assert!(!order_pdf_text(&b, first).await?.contains("特別講義 現代詩"));

    // a student ID with no course record gets a clear message and no order
    b.sql("DELETE FROM course_results")?;
    let before = b.sql("SELECT count(*) FROM orders")?;
    let (s, page, _) = order_lines(&b, &[("transcript", 1)]).await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("no academic record"), "{page}");
    assert_eq!(b.sql("SELECT count(*) FROM orders")?, before, "nothing half-written");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_add_up_orders_and_revenue_and_export_csv() -> Result<()> {
    let b = Backend::start(None).await?;
    b.order_as_graduate(2).await?; // 2 x ¥300 + ¥100, will be paid
    b.order_as_graduate(1).await?; // ¥400, left unpaid
    b.sql("UPDATE orders SET status = 'printed' WHERE id = 1")?;
    let staff = b.staff_client().await?;
    let page = staff.get(format!("{}/admin/reports", b.url)).send().await?.text().await?;
    let day = page.split("id=\"report-day\"").nth(1).context("day table")?;
    assert!(day.contains("<td>2</td><td>3</td><td>¥700</td>"), "2 orders, 3 copies, ¥700 received (the unpaid one counts as an order only): {day}");
    let method = page.split("id=\"report-method\"").nth(1).context("method table")?;
    assert!(method.contains("IC card</td><td>2</td>"), "the method in words: {method}");
    let r = staff.get(format!("{}/admin/reports.csv?group=type", b.url)).send().await?;
    assert_eq!(r.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/csv; charset=utf-8"));
    let bytes = r.bytes().await?;
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "a BOM so that Excel reads UTF-8");
    let csv = String::from_utf8_lossy(&bytes[3..]).into_owned();
    assert!(csv.starts_with("key,orders,copies,revenue_yen"), "{csv}");
    assert!(csv.contains("卒業証明書 / Certificate of Graduation,2,3,600"), "{csv}");
    let r = staff.get(format!("{}/admin/reports?from=2026-12-31&to=2026-01-01", b.url)).send().await?;
    assert_eq!(r.status(), 400);
    assert!(r.text().await?.contains("The end date comes after the start date"));
    Ok(())
}

on_both_screens!(an_order_paid_by_credit_card_through_paypal_gets_its_number_once_paid, an_order_paid_by_credit_card_through_paypal_gets_its_number_once_paid_at_phone_width, an_order_paid_by_credit_card_through_paypal_gets_its_number_once_paid_on);
async fn an_order_paid_by_credit_card_through_paypal_gets_its_number_once_paid_on(screen: Screen) -> Result<()> {
    use shomei_backend::demo;
    let smtp = Smtp::start()?;
    let sim = PayPalSim::start()?;
    let sim_url = sim.url.clone();
    let b = Backend::start_with(Some(smtp.port), move |c| {
        c.paypal.base_url = sim_url;
        c.paypal.return_url = format!("{}/paypal/return", c.http.public_url);
        c.paypal.cancel_url = format!("{}/paypal/cancel", c.http.public_url);
    })
    .await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser.log_in_as_demo_graduate(&b).await?;
    browser.wait_id("new-order").await?.click().await?;
    let copies = browser.wait_for(Locator::Css("input[name^=copies_]")).await?;
    copies.clear().await?;
    copies.send_keys("1").await?;
    w.find(Locator::Id("payment_method")).await?.select_by_value("paypal").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    browser.wait_id("confirm").await?;
    w.find(Locator::Id("place-order")).await?.click().await?;
    // not paid yet: no number to use, and a station refuses it
    browser.wait_id("pay-first").await?;
    assert!(w.find(Locator::Id("print-number")).await.is_err(), "no number before payment");
    let number = b.sql("SELECT print_number FROM orders")?;
    let api = crate::station_api::Api::new(&b).await?;
    let (s, r) = api.post("/reservations", serde_json::json!({ "print_number": number })).await?;
    assert_eq!((s, r["code"].clone()), (402, serde_json::json!("not_paid")), "{r}");
    // the order is placed (its page and the station's refusal say so) with no mail in the outbox
    let mails_to_graduate = format!("SELECT COUNT(*) FROM outbox WHERE to_addr = '{}'", demo::GRADUATE_EMAIL);
    assert_eq!(b.sql(&mails_to_graduate)?, "0", "no number mailed before payment");

    // pay: PayPal's page, back to ours, "Pay"
    w.find(Locator::Id("pay-paypal")).await?.click().await?;
    browser.wait_id("pay").await?.click().await?;
    browser.wait_for(Locator::Css("form[action^='/paypal/capture']")).await?;
    browser.wait_id("send").await?.click().await?;
    browser.wait_id("print-number").await?;
    browser.wait_text("notice", "Payment received").await?;
    browser.close().await;
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "On-campus print number", MAIL_WAIT)?;
    let grouped = shomei_shared::PrintNumber::parse(&number).map(|n| n.grouped()).unwrap_or_default();
    assert!(mail.contains(&grouped), "{mail}");
    assert_eq!(b.sql("SELECT status FROM orders")?, "paid");
    // the station now prints it without a charge
    let (s, r) = api.post("/reservations", serde_json::json!({ "print_number": number })).await?;
    assert_eq!((s, r["paid"].clone()), (200, serde_json::json!(true)), "{r}");
    // PayPal's webhook for the same capture changes nothing, mails nothing more
    let order_id = b.sql("SELECT paypal_order_id FROM orders")?;
    let r = sim.knob("/sim/send-webhook", serde_json::json!({ "order_id": order_id, "url": format!("{}/paypal/webhook", b.url) })).await?;
    // (the webhook is answered once it is handled: what it did is in the database now)
    assert_eq!(r["delivered_status"], 200, "{r}");
    assert_eq!(b.sql("SELECT count(*) FROM audit_log WHERE action = 'order.paid.paypal'")?, "1");
    assert_eq!(b.sql(&mails_to_graduate)?, "1", "one number mail");
    assert_eq!(
        b.sql(&format!("SELECT COUNT(*) FROM outbox WHERE to_addr = '{}' AND subject LIKE '%on-campus print number%'", demo::GRADUATE_EMAIL))?,
        "1",
        "and it is the number mail"
    );
    // staff refund it through PayPal; the number stops working
    let staff = b.staff_client().await?;
    let (s, _, page) = post_form(&staff, &format!("{}/admin/orders/1", b.url), &format!("{}/admin/orders/1/refund", b.url), &[("reason", "Ordered twice by mistake")]).await?;
    assert_eq!(s, 200, "{page}");
    let state: serde_json::Value = reqwest::get(format!("{}/sim/state", sim.url)).await?.json().await?;
    assert_eq!(state["refunds_performed"], 1, "PayPal refunded it, once: {state}");
    assert_eq!(b.sql("SELECT status || ' ' || refund_reason FROM orders")?, "cancelled Ordered twice by mistake");
    let (s, r) = api.post("/reservations", serde_json::json!({ "print_number": number })).await?;
    assert_eq!(s, 410, "{r}");
    Ok(())
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postal_order_is_paid_online_posted_by_staff_and_the_user_is_told() -> Result<()> {
    use shomei_backend::demo;
    let smtp = Smtp::start()?;
    let sim = PayPalSim::start()?;
    let sim_url = sim.url.clone();
    let b = Backend::start_with(Some(smtp.port), move |c| {
        c.paypal.base_url = sim_url;
        c.paypal.return_url = format!("{}/paypal/return", c.http.public_url);
    })
    .await?;
    let user = Backend::client();
    portal_login(&b, &user, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    let copies = form.split("name=\"copies_").nth(1).and_then(|r| r.split('"').next()).context("copies field")?.to_string();
    let copies_field = format!("copies_{copies}");
    let place = |payment: &'static str, postal: &'static str, address: &'static str| {
        let (user, url, copies_field) = (user.clone(), b.url.clone(), copies_field.clone());
        async move {
            let csrf = csrf_of(&user, &format!("{url}/orders/new")).await?;
            let r = user
                .post(format!("{url}/orders"))
                .form(&[("csrf", csrf.as_str()), ("student_record_id", "1"), (copies_field.as_str(), "2"), ("delivery", "post"), ("payment_method", payment),
                        ("post_name", "山田 花子"), ("post_postal_code", postal), ("post_address", address), ("post_phone", "090-1234-5678")])
                .send()
                .await?;
            let s = r.status().as_u16();
            anyhow::Ok((s, r.url().path().to_string(), r.text().await?))
        }
    };
    let (s, _, page) = place("card", "100-0001", "東京都千代田区千代田1-1").await?;
    assert_eq!(s, 400);
    assert!(page.contains("pay for postal delivery or convenience-store print by credit card"), "{page}");
    let (s, _, page) = place("paypal", "100-0001", "").await?;
    assert_eq!(s, 400);
    assert!(page.contains("Give the name and address"), "{page}");
    let (s, _, page) = place("paypal", "12-34", "東京都千代田区千代田1-1").await?;
    assert_eq!(s, 400);
    assert!(page.contains("7-digit postal code"), "{page}");
    assert_eq!(b.sql("SELECT count(*) FROM orders")?, "0", "nothing half-written");
    let (s, path, page) = place("paypal", "100-0001", "東京都千代田区千代田1-1 証明マンション101").await?;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("¥840") && page.contains("id=\"postage\">¥140"), "2 x ¥300 + ¥100 + postage ¥140: {page}");
    let id: i64 = path.trim_start_matches("/orders/").parse()?;
    assert_eq!(b.sql(&format!("SELECT COALESCE(print_number, '-') FROM orders WHERE id = {id}"))?, "-", "no print number for post");
    let sealed = b.sql(&format!("SELECT post_address_sealed FROM orders WHERE id = {id}"))?;
    assert!(!sealed.is_empty() && !sealed.contains("千代田"), "the address is sealed at rest");

    // paid through PayPal (the buyer approves on PayPal's side)
    let csrf = csrf_of(&user, &format!("{}/orders/{id}", b.url)).await?;
    let r = user.post(format!("{}/orders/{id}/pay", b.url)).form(&[("csrf", csrf.as_str())]).send().await?;
    assert!(r.url().as_str().starts_with(&sim.url), "sent to PayPal: {}", r.url());
    let paypal_id = b.sql(&format!("SELECT paypal_order_id FROM orders WHERE id = {id}"))?;
    sim.knob(&format!("/sim/approve/{paypal_id}"), serde_json::json!({})).await?;
    let ret = format!("{}/paypal/return?token={paypal_id}", b.url);
    // PayPal's return page speaks of this order and its amount, not of a card top-up
    let back = user.get(&ret).send().await?.text().await?;
    assert!(back.contains(&format!("order no. {id}")) && back.contains("¥840") && !back.contains("balance"), "{back}");
    let (s, path, _) = post_form(&user, &ret, &format!("{}/paypal/capture?token={paypal_id}", b.url), &[]).await?;
    assert_eq!((s, path), (200, format!("/orders/{id}")));
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {id}"))?, "paid");
    // the manual's "print reservation completed" mail, with where it goes
    let booked = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "booked for posting", MAIL_WAIT)?;
    assert!(booked.contains("印刷予約が完了しました") && booked.contains(&format!("order {id}")) && booked.contains("証明マンション101"), "{booked}");

    // staff: the postal work list shows it with its address; print the PDF; mark it posted
    let staff = b.staff_client().await?;
    let list = staff.get(format!("{}/admin/mail", b.url)).send().await?.text().await?;
    assert!(list.contains(&format!("id=\"post-{id}\"")) && list.contains("証明マンション101") && list.contains("100-0001"), "{list}");
    let pdf = staff.get(format!("{}/admin/orders/{id}/pdf", b.url)).send().await?;
    assert_eq!(pdf.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/pdf"));
    assert!(pdf.bytes().await?.starts_with(b"%PDF"));
    let (s, _, list) = post_form(&staff, &format!("{}/admin/mail", b.url), &format!("{}/admin/orders/{id}/shipped", b.url), &[]).await?;
    assert_eq!(s, 200);
    assert!(list.contains("nothing-to-post"), "{list}");
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "in the post", MAIL_WAIT)?;
    assert!(mail.contains("発送しました") && mail.contains(&format!("order {id}")), "{mail}");
    let page = user.get(format!("{}/orders/{id}", b.url)).send().await?.text().await?;
    assert!(page.contains("id=\"shipped\""), "{page}");
    let (s, _, page) = post_form(&staff, &format!("{}/admin/mail", b.url), &format!("{}/admin/orders/{id}/shipped", b.url), &[]).await?;
    assert_eq!(s, 400, "posted once: {page}");
    assert!(b.sql("SELECT count(*) FROM audit_log WHERE action = 'personal_data.view' AND target = 'postal work list'")?.parse::<i64>()? >= 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_refund_a_card_paid_order_back_to_the_card_once_and_the_user_is_mailed() -> Result<()> {
    use shomei_backend::demo;
    let b = Backend::start(None).await?;
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    let api = crate::station_api::Api::new(&b).await?;
    let (_, res) = api.post("/reservations", serde_json::json!({ "print_number": number })).await?;
    let rid = res["reservation_id"].as_i64().unwrap_or_default();
    let (s, _) = api.post(&format!("/reservations/{rid}/charge"), serde_json::json!({ "card_uid": demo::CARD_UID, "idempotency_key": "refund-test" })).await?;
    assert_eq!(s, 200);
    let balance = || b.sql(&format!("SELECT sum(amount) FROM ledger WHERE card_uid = '{}'", demo::CARD_UID));
    assert_eq!(balance()?, "2600");
    let staff = b.staff_client().await?;
    let detail = format!("{}/admin/orders/1", b.url);
    let (s, _, page) = post_form(&staff, &detail, &format!("{detail}/refund"), &[("reason", "")]).await?;
    assert_eq!(s, 400);
    assert!(page.contains("Give the reason for the refund"), "{page}");
    let (s, _, page) = post_form(&staff, &detail, &format!("{detail}/refund"), &[("reason", "The printer jammed; the graduate left")]).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(balance()?, "3000", "back on the card");
    assert_eq!(b.sql("SELECT kind || ' ' || amount FROM ledger WHERE kind = 'refund'")?, "refund 400");
    let (s, _, _) = post_form(&staff, &detail, &format!("{detail}/refund"), &[("reason", "again")]).await?;
    assert_eq!(s, 400, "refunded once");
    assert_eq!(balance()?, "3000");
    assert!(b.sql("SELECT target FROM audit_log WHERE action = 'order.refund'")?.contains("order:1 card"));
    // the user is told, once
    let mails = b.sql(&format!("SELECT COUNT(*) FROM outbox WHERE to_addr = '{}' AND subject LIKE '%Your order has been refunded%'", demo::GRADUATE_EMAIL))?;
    assert_eq!(mails, "1", "one refund mail");
    Ok(())
}

/// GETs a receipt: (status, content type, body bytes).
async fn receipt(c: &reqwest::Client, url: &str) -> Result<(u16, String, Vec<u8>)> {
    let r = c.get(url).send().await?;
    let s = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    Ok((s, ct, r.bytes().await?.to_vec()))
}

/// `qpdf --check` passes and pdftotext's text of a PDF.
fn pdf_text(dir: &std::path::Path, name: &str, pdf: &[u8]) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, pdf)?;
    let check = std::process::Command::new("qpdf").arg("--check").arg(&path).output()?;
    anyhow::ensure!(check.status.success(), "qpdf --check: {}", String::from_utf8_lossy(&check.stdout));
    let out = std::process::Command::new("pdftotext").arg(&path).arg("-").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_has_a_receipt_for_its_owner_until_it_is_refunded() -> Result<()> {
    use shomei_backend::demo;
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let user = Backend::client();
    portal_login(&b, &user, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    let grad = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let field = format!("copies_{grad}");
    let (s, _, page) = post_form(&user, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url), &[("student_record_id", "1"), (field.as_str(), "1"), ("delivery", "campus"), ("payment_method", "card")]).await?;
    assert_eq!(s, 200);
    assert!(!page.contains("id=\"receipt\""), "no receipt before payment: {page}");
    let url = format!("{}/orders/1/receipt", b.url);
    let (s, _, body) = receipt(&user, &url).await?;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains("A receipt is available once the order is paid"));

    // paid at a station by IC card
    let api = crate::station_api::Api::new(&b).await?;
    let number = b.sql("SELECT print_number FROM orders WHERE id = 1")?;
    let (_, res) = api.post("/reservations", serde_json::json!({ "print_number": number })).await?;
    let rid = res["reservation_id"].as_i64().unwrap_or_default();
    let (s, _) = api.post(&format!("/reservations/{rid}/charge"), serde_json::json!({ "card_uid": demo::CARD_UID, "idempotency_key": "receipt-test" })).await?;
    assert_eq!(s, 200);
    let page = user.get(format!("{}/orders/1", b.url)).send().await?.text().await?;
    assert!(page.contains("href=\"/orders/1/receipt\""), "{page}");
    let (s, ct, pdf) = receipt(&user, &url).await?;
    assert_eq!((s, ct.as_str()), (200, "application/pdf"));
    let text = pdf_text(b.dir.path(), "receipt.pdf", &pdf)?;
    for needle in ["Receipt", "R-O-000001", "山田 花子", "YAMADA Hanako", "¥400", "卒業証明書", "System usage fee", "IC card (campus certificate printer)", "Shomei University"] {
        assert!(text.contains(needle), "{needle} missing from the receipt:\n{text}");
    }
    // the same receipt again (same number), and nobody else's
    let (_, _, again) = receipt(&user, &url).await?;
    assert!(pdf_text(b.dir.path(), "again.pdf", &again)?.contains("R-O-000001"));
    let other = graduate(&b, &smtp, "other@example.jp", "Other2024pass", "OtherSecond2024").await?;
    assert_eq!(receipt(&other, &url).await?.0, 404, "another user's receipt does not exist for them");
    let r = Backend::client().get(&url).send().await?;
    assert_eq!(r.url().path(), "/login", "no session: to the login page");

    // refunded: no receipt any more, and it says why
    let staff = b.staff_client().await?;
    let detail = format!("{}/admin/orders/1", b.url);
    let (s, _, _) = post_form(&staff, &detail, &format!("{detail}/refund"), &[("reason", "Printed twice by mistake")]).await?;
    assert_eq!(s, 200);
    let (s, _, body) = receipt(&user, &url).await?;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains("This order was refunded"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_find_orders_by_number_tail_email_and_status() -> Result<()> {
    let b = Backend::start(None).await?;
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    b.order_as_graduate(1).await?;
    b.sql("UPDATE orders SET status = 'cancelled' WHERE id = 2")?;
    let staff = b.staff_client().await?;
    let get = |q: String| {
        let (staff, url) = (staff.clone(), b.url.clone());
        async move { anyhow::Ok(staff.get(format!("{url}/admin/orders?{q}")).send().await?.text().await?) }
    };
    let by_tail = get(format!("q={}", &number[8..])).await?;
    assert!(by_tail.contains("id=\"order-1\"") && !by_tail.contains("id=\"order-2\""), "{by_tail}");
    let by_mail = get("q=hanako%40example".into()).await?;
    assert!(by_mail.contains("id=\"order-1\"") && by_mail.contains("id=\"order-2\""));
    let by_status = get("status=cancelled".into()).await?;
    assert!(!by_status.contains("id=\"order-1\"") && by_status.contains("id=\"order-2\""));
    let none = get("q=nobody%40nowhere".into()).await?;
    assert!(!none.contains("id=\"order-1\"") && !none.contains("id=\"order-2\""), "{none}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_paid_in_cash_through_smart_pit_is_paid_by_the_notice_once() -> Result<()> {
    use shomei_backend::demo;
    let smtp = Smtp::start()?;
    let sim = HttpSim::smartpit()?;
    let sim_url = sim.url.clone();
    let b = Backend::start_with(Some(smtp.port), move |c| c.smartpit.base_url = sim_url).await?;
    let user = Backend::client();
    portal_login(&b, &user, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    let copies = form.split("name=\"copies_").nth(1).and_then(|r| r.split('"').next()).context("copies field")?.to_string();
    let csrf = form_value(&form, "csrf").context("csrf")?;
    let r = user
        .post(format!("{}/orders", b.url))
        .form(&[("csrf", csrf.as_str()), ("student_record_id", "1"), (&format!("copies_{copies}"), "1"), ("delivery", "campus"), ("payment_method", "smartpit")])
        .send()
        .await?;
    let page = r.text().await?;
    // the payment number comes with the order (the manual's "receive a Smart Pit number by e-mail")
    assert!(page.contains("id=\"pay-cash\"") && !page.contains("id=\"print-number\""), "{page}");
    let number = element_text(&page, "smartpit-number").context("payment number shown with the order")?;
    assert_eq!(number.len(), 13);
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, &number, MAIL_WAIT)?;
    assert!(mail.contains("¥400") && mail.contains("Pay by"), "{mail}");
    assert!(mail.contains("Lawson") && mail.contains("ローソン") && mail.contains("Steps:") && mail.contains("手順"), "the stores and the steps: {mail}");
    let order_url = format!("{}/orders/1", b.url);
    // asking again shows the same number, and issues (and mails) no second one
    let (s, _, again) = post_form(&user, &order_url, &format!("{order_url}/smartpit"), &[]).await?;
    assert_eq!(s, 200, "{again}");
    assert_eq!(element_text(&again, "smartpit-number").as_deref(), Some(number.as_str()));
    assert_eq!(b.sql("SELECT COUNT(*) FROM outbox WHERE subject LIKE '%Smart Pit%' OR subject LIKE '%convenience%'")?, "1", "one payment-number mail queued");
    let notice = |body: serde_json::Value| sim.knob("/sim/pay", body);
    let url = format!("{}/smartpit/notice", b.url);
    // a notice for a number we never issued, and a tampered one, change nothing
    let r = notice(serde_json::json!({ "payment_number": "9999999999999", "amount": 400, "url": url })).await?;
    assert_eq!(r["delivered_status"], 404, "{r}");
    let r = notice(serde_json::json!({ "payment_number": number, "url": url, "tamper": true })).await?;
    assert_eq!(r["delivered_status"], 400, "{r}");
    assert_eq!(b.sql("SELECT status FROM orders WHERE id = 1")?, "awaiting_payment");
    // the real notice pays it; the same notice again is acknowledged and changes nothing
    for _ in 0..2 {
        let r = notice(serde_json::json!({ "payment_number": number, "url": url, "notice_id": "N-777" })).await?;
        assert_eq!(r["delivered_status"], 200, "{r}");
    }
    assert_eq!(b.sql("SELECT status FROM orders WHERE id = 1")?, "paid");
    assert_eq!(b.sql("SELECT count(*) FROM smartpit_notices")?, "1");
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "On-campus print number", MAIL_WAIT)?;
    assert!(mail.contains("印刷期限"), "the print number follows the payment: {mail}");
    Ok(())
}

/// `pdfimages -list` of order `id`'s PDF: (page, type, width, height) per image use.
async fn order_images(b: &Backend, id: i64) -> Result<Vec<(u32, String, u32, u32)>> {
    let path = b.dir.path().join(format!("images-{id}.pdf"));
    std::fs::write(&path, b.order_pdf(&id).await?)?;
    let out = std::process::Command::new("pdfimages").arg("-list").arg(&path).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(2)?.to_string(), f.get(3)?.parse().ok()?, f.get(4)?.parse().ok()?))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registrar_uploads_the_seal_and_new_certificates_carry_it() -> Result<()> {
    let b = Backend::start(None).await?;
    b.order_as_graduate(1).await?;
    let images = order_images(&b, 1).await?;
    assert_eq!(images.iter().filter(|i| i.1 == "image").map(|i| (i.0, i.2, i.3)).collect::<Vec<_>>(), vec![(1, 240, 240)], "the demo seal on the certificate: {images:?}");

    let staff = b.staff_client().await?;
    let cat = format!("{}/admin/catalogue", b.url);
    let upload = |bytes: Vec<u8>| {
        let (staff, cat) = (staff.clone(), cat.clone());
        async move {
            let csrf = csrf_of(&staff, &cat).await?;
            let form = reqwest::multipart::Form::new().text("csrf", csrf).part("seal", reqwest::multipart::Part::bytes(bytes).file_name("seal.png"));
            let r = staff.post(format!("{cat}/seal")).multipart(form).send().await?;
            anyhow::Ok((r.status().as_u16(), r.text().await?))
        }
    };
    // not a PNG: refused with a message, the old seal stays
    let (s, page) = upload(b"\xff\xd8\xff\xe0 a jpeg".to_vec()).await?;
    assert_eq!(s, 400);
    assert!(page.contains("must be a PNG"), "{page}");
    // a new seal: stored as sent, shown to the registrar, stamped on new orders only
    let img = image::RgbaImage::from_fn(150, 100, |x, _| if x % 7 < 4 { image::Rgba([190, 20, 20, 255]) } else { image::Rgba([0, 0, 0, 0]) });
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)?;
    let png = png.into_inner();
    let (s, page) = upload(png.clone()).await?;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("id=\"seal-image\""), "{page}");
    assert_eq!(staff.get(format!("{cat}/seal")).send().await?.bytes().await?.to_vec(), png);
    b.order_as_graduate(1).await?;
    let images = order_images(&b, 2).await?;
    assert_eq!(images.iter().filter(|i| i.1 == "image").map(|i| (i.2, i.3)).collect::<Vec<_>>(), vec![(150, 100)], "{images:?}");
    assert_eq!(order_images(&b, 1).await?.iter().filter(|i| i.1 == "image").map(|i| i.2).collect::<Vec<_>>(), vec![240], "the first order keeps its PDF");
    // not for anyone else
    let r = Backend::client().get(format!("{cat}/seal")).send().await?;
    assert_ne!(r.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
    assert!(b.sql("SELECT action FROM audit_log WHERE action = 'university.seal'")?.contains("university.seal"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_english_certificate_is_in_english_only() -> Result<()> {
    let b = Backend::start(None).await?;
    let (s, _, id) = order_lines(&b, &[("graduation_en", 1)]).await?;
    assert_eq!(s, 200);
    let text = order_pdf_text(&b, id).await?;
    for needle in ["Certificate of Graduation", "YAMADA Hanako", "April 2, 2001", "Department of Japanese Literature, Faculty of Letters",
                   "graduated from the Department of Japanese Literature, Faculty of Letters, Shomei University on March 25, 2024", "Registrar"] {
        assert!(text.split_whitespace().collect::<Vec<_>>().join(" ").contains(needle), "{needle} missing:\n{text}");
    }
    assert!(!text.contains("(English)"), "the menu's marker is not printed: {text}");
    let japanese: Vec<char> = text.chars().filter(|c| ('\u{3040}'..='\u{30ff}').contains(c) || ('\u{4e00}'..='\u{9fff}').contains(c)).collect();
    assert!(japanese.is_empty(), "{japanese:?}\n{text}");
    Ok(())
}
