//! The portal and admin panel through real HTTP: login that tells nobody which
//! part was wrong, throttling, CSRF, role checks, headers, held orders.

use crate::harness::*;
use anyhow::Result;
use shomei_backend::demo;

async fn login(c: &reqwest::Client, url: &str, email: &str, pw: &str, second: &str) -> Result<(u16, String)> {
    let page = c.get(format!("{url}/login")).send().await?.text().await?;
    let csrf = form_value(&page, "csrf").unwrap_or_default();
    let r = c
        .post(format!("{url}/login"))
        .form(&[("csrf", csrf.as_str()), ("email", email), ("password", pw), ("second_password", second)])
        .send()
        .await?;
    Ok((r.status().as_u16(), r.text().await?))
}

fn error_of(page: &str) -> String {
    element_text(page, "error").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_never_tells_which_part_was_wrong_and_is_throttled() -> Result<()> {
    // the production delay (1 s, doubling): the harness's 300 ms could lapse within one
    // login's round trip on a loaded machine, letting "too soon" through
    let b = Backend::start_with(None, |c| c.security.login_delay_ms = 1000).await?;
    let c = Backend::client();
    let (s1, wrong_pw) = login(&c, &b.url, demo::GRADUATE_EMAIL, "Wrong2024pass", demo::GRADUATE_SECOND_PASSWORD).await?;
    let (s2, wrong_second) = login(&c, &b.url, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, "Wrong2024pass").await?;
    let (s3, nobody) = login(&c, &b.url, "nobody@example.ac.jp", "Whatever2024", "Whatever2024").await?;
    assert_eq!((s1, s2, s3), (401, 401, 401));
    assert!(error_of(&wrong_pw).contains("not correct"), "{wrong_pw}");
    assert_eq!(error_of(&wrong_pw), error_of(&wrong_second));
    assert_eq!(error_of(&wrong_pw), error_of(&nobody), "no user enumeration");
    assert!(wrong_pw.contains(demo::GRADUATE_EMAIL), "the address typed is kept in the form");

    // a third failure: from now on each attempt waits longer (1 s, then 2 s, 4 s)
    let (s, _) = login(&c, &b.url, demo::GRADUATE_EMAIL, "Wrong2024pass", "x").await?;
    assert_eq!(s, 401);
    let (s, page) = login(&c, &b.url, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!(s, 429, "too soon, even with the right password: {page}");
    assert!(error_of(&page).contains("wait 1 second ") && error_of(&page).contains("秒待って"), "{page}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, _) = login(&c, &b.url, demo::GRADUATE_EMAIL, "Wrong2024pass", "x").await?;
    assert_eq!(s, 401, "after the wait the attempt is checked again");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, _) = login(&c, &b.url, demo::GRADUATE_EMAIL, "Wrong2024pass", "x").await?;
    assert_eq!(s, 401);
    // five failures: blocked for the window, whatever is typed
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    let (s, page) = login(&c, &b.url, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!(s, 429);
    assert!(error_of(&page).contains("wait 15 minutes"), "{page}");
    // another account from the same address is not blocked by it
    let (s, _) = login(&c, &b.url, "someone@example.ac.jp", "Whatever2024", "Whatever2024").await?;
    assert_eq!(s, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_their_csrf_token_and_pages_their_login() -> Result<()> {
    let b = Backend::start(None).await?;
    let c = Backend::client();
    // a login POST without the form's token is refused before the password is looked at
    c.get(format!("{}/login", b.url)).send().await?;
    let r = c
        .post(format!("{}/login", b.url))
        .form(&[("csrf", "0".repeat(64).as_str()), ("email", demo::GRADUATE_EMAIL), ("password", demo::GRADUATE_PASSWORD), ("second_password", demo::GRADUATE_SECOND_PASSWORD)])
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    assert!(error_of(&r.text().await?).contains("This form has expired"));

    // pages need a login; the portal's login is not a staff login
    let r = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?.get(format!("{}/portal", b.url)).send().await?;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let (s, _) = login(&c, &b.url, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!(s, 200);
    let r = c.get(format!("{}/admin/stations", b.url)).send().await?;
    assert_eq!(r.url().path(), "/admin/login", "a graduate's session opens no admin page");

    // headers every page carries; unknown pages answer in both languages
    let r = c.get(format!("{}/portal", b.url)).send().await?;
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-security-policy"].to_str()?.contains("frame-ancestors 'none'"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = c.get(format!("{}/no-such-page", b.url)).send().await?;
    assert_eq!(r.status(), 404);
    let t = r.text().await?;
    assert!(t.contains("ページが見つかりません") && t.contains("This page does not exist"));
    Ok(())
}

/// A name no configured font can draw never prints as a blank box: the order
/// is held for staff with a clear reason, and no print number is issued.
/// (The name printed is the school register's, so that is where it is.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_no_font_can_draw_holds_the_order() -> Result<()> {
    let b = Backend::start(None).await?;
    b.sql("UPDATE school_register SET name_kanji = '𠮷田 花子' WHERE student_no = 'L19-0042'")?;
    let page = b.order_as_graduate(1).await?;
    assert!(page.contains("held for the registrar") && page.contains("事務局の確認待ち"), "{page}");
    assert!(element_text(&page, "print-number").is_none(), "no number for a held order");
    assert_eq!(b.sql("SELECT status || '|' || COALESCE(print_number, '-') FROM orders")?, "held|-");
    assert_eq!(b.sql("SELECT COUNT(*) FROM outbox")?, "0", "no number mailed");
    Ok(())
}

/// The yen amount in a text like "¥1,234".
fn yen(text: &str) -> i64 {
    text.chars().filter(char::is_ascii_digit).collect::<String>().parse().unwrap_or(-1)
}

on_both_screens!(ordering_confirms_everything_before_placing_and_keeps_what_was_typed, ordering_confirms_everything_before_placing_and_keeps_what_was_typed_at_phone_width, ordering_confirms_everything_before_placing_and_keeps_what_was_typed_on);
/// Ordering as a graduate walks it (issue 14), in Chromium: the most copies
/// beside each certificate; only the payments the delivery takes; the postal
/// address only for post, prefilled from the registered one; a mistake told
/// next to its field with everything typed kept; a confirmation step with
/// every fee, the delivery, payment, address, deadline and the no-refund rule;
/// "back" keeps every field; and the order placed is what was confirmed.
async fn ordering_confirms_everything_before_placing_and_keeps_what_was_typed_on(screen: Screen) -> Result<()> {
    use fantoccini::Locator;
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser.log_in_as_demo_graduate(&b).await?;
    browser.wait_id("new-order").await?.click().await?;

    let grad = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let (fee, max): (i64, i64) = {
        let row = b.sql("SELECT fee || ' ' || max_copies FROM certificate_types WHERE code = 'graduation'")?;
        let mut it = row.split(' ').map(|v| v.parse::<i64>().unwrap_or(-1));
        (it.next().unwrap_or(-1), it.next().unwrap_or(-1))
    };
    let system_fee: i64 = b.sql("SELECT system_fee FROM universities WHERE id = 1")?.parse()?;
    let beside = browser.wait_id(&format!("max_{grad}")).await?.text().await?;
    assert!(beside.contains(&format!("up to {max}")) && beside.contains(&format!("{max}通まで")), "{beside}");

    // only the payments the delivery takes; the address only for post, prefilled
    let offered = || async {
        let v = w.execute("return Array.from(document.getElementById('payment_method').options).map(o => o.value).join(',')", vec![]).await?;
        anyhow::Ok(v.as_str().unwrap_or_default().to_string())
    };
    let post_hidden = || async { anyhow::Ok(w.execute("return document.getElementById('post-fields').offsetParent === null", vec![]).await? == serde_json::json!(true)) };
    assert_eq!(offered().await?, "card,paypal,smartpit");
    assert!(post_hidden().await?, "no postal address for on-campus print");
    w.find(Locator::Id("delivery")).await?.select_by_value("post").await?;
    assert_eq!(offered().await?, "paypal,smartpit", "no IC card for postal delivery");
    assert!(!post_hidden().await?, "the postal address for post");
    let value = |id: &'static str| async move { anyhow::Ok(w.find(Locator::Id(id)).await?.prop("value").await?.unwrap_or_default()) };
    assert_eq!(value("post_postal_code").await?, "100-0001", "the registered address");
    assert!(value("post_address").await?.contains("千代田区"));
    assert_eq!(value("post_name").await?, "山田 花子");

    // a mistake is told beside its field, and everything typed stays
    let copies = w.find(Locator::Id(&format!("copies_{grad}"))).await?;
    copies.clear().await?;
    copies.send_keys("2").await?;
    w.find(Locator::Id("payment_method")).await?.select_by_value("smartpit").await?;
    let code = w.find(Locator::Id("post_postal_code")).await?;
    code.clear().await?;
    code.send_keys("12").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    let said = browser.wait_id("error-post").await?.text().await?;
    assert!(said.contains("7-digit postal code") && said.contains("郵便番号を7桁"), "{said}");
    assert_eq!(value_of(w, &format!("copies_{grad}")).await?, "2");
    assert_eq!((value("delivery").await?, value("payment_method").await?, value("post_postal_code").await?), ("post".into(), "smartpit".into(), "12".into()));
    assert_eq!(b.sql("SELECT count(*) FROM orders")?, "0", "nothing placed");

    // fixed: the confirmation says everything
    let code = w.find(Locator::Id("post_postal_code")).await?;
    code.clear().await?;
    code.send_keys("100-0001").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    browser.wait_id("confirm").await?;
    let text = |id: &'static str| async move { anyhow::Ok(w.find(Locator::Id(id)).await?.text().await?) };
    let lines = text("confirm-lines").await?;
    assert!(lines.contains("卒業証明書") && lines.contains(&shomei_shared::Yen(fee * 2).to_string()), "{lines}");
    assert_eq!(yen(&text("confirm-system-fee").await?), system_fee);
    let postage = yen(&text("confirm-postage").await?);
    assert!(postage > 0, "postage shown");
    let total = yen(&text("confirm-total").await?);
    assert_eq!(total, fee * 2 + system_fee + postage, "the total adds up");
    assert!(text("confirm-delivery").await?.contains("郵送") && browser.body_text().await?.contains("By post"));
    assert!(text("confirm-payment").await?.contains("Smart Pit"));
    let address = text("confirm-address").await?;
    assert!(address.contains("100-0001") && address.contains("千代田区") && address.contains("山田 花子"), "{address}");
    assert!(text("confirm-deadline").await?.contains("Pay by"));
    let rule = text("no-refund").await?;
    assert!(rule.contains("返金されません") || rule.contains("lapses"), "{rule}");
    assert_eq!(b.sql("SELECT count(*) FROM orders")?, "0", "not placed before the confirmation");

    // back keeps every field; then placed as confirmed
    w.find(Locator::Id("back")).await?.click().await?;
    browser.wait_id("to-confirm").await?;
    assert_eq!(value_of(w, &format!("copies_{grad}")).await?, "2");
    assert_eq!((value("delivery").await?, value("payment_method").await?, value("post_postal_code").await?), ("post".into(), "smartpit".into(), "100-0001".into()));
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    browser.wait_id("confirm").await?;
    w.find(Locator::Id("place-order")).await?.click().await?;
    browser.wait_id("status").await?;
    assert_eq!(
        b.sql("SELECT total || ' ' || postage || ' ' || delivery || ' ' || payment_method FROM orders")?,
        format!("{total} {postage} post smartpit"),
        "the order is what was confirmed"
    );
    Ok(())
}

async fn value_of(w: &fantoccini::Client, id: &str) -> Result<String> {
    Ok(w.find(fantoccini::Locator::Id(id)).await?.prop("value").await?.unwrap_or_default())
}

/// The order page as a graduate reads it for each delivery (issue 14): the
/// order's number, date, student ID, delivery, payment and its deadline, the
/// postal address, and the state in words; "print number" wording and "mail
/// the number again" only for an on-campus order; an order paid online never
/// says "pay with your IC card", on the page or in the mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_page_says_each_deliverys_state_in_words() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let c = Backend::client();
    let (s, _) = login(&c, &b.url, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!(s, 200);
    let grad = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let copies = format!("copies_{grad}");
    let mut ids = Vec::new();
    for (delivery, payment) in [("campus", "paypal"), ("store", "smartpit"), ("post", "smartpit")] {
        let mut fields = vec![("student_record_id", "1"), (copies.as_str(), "1"), ("delivery", delivery), ("payment_method", payment)];
        if delivery == "post" {
            fields.extend([("post_name", "山田 花子"), ("post_postal_code", "100-0001"), ("post_address", "東京都千代田区千代田1-1"), ("post_phone", "090-1234-5678")]);
        }
        let (s, _, page) = crate::accounts::post_form(&c, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url), &fields).await?;
        assert_eq!(s, 200, "{page}");
        ids.push(b.sql("SELECT max(id) FROM orders")?);
    }
    let page = |id: String| {
        let c = c.clone();
        let url = format!("{}/orders/{id}", b.url);
        async move { anyhow::Ok(c.get(url).send().await?.text().await?) }
    };
    let status = |p: &str| element_text(p, "status").unwrap_or_default() + " " + p.split("id=\"status\"").nth(1).and_then(|r| r.split("</p>").next()).unwrap_or_default();

    // on-campus, paid by PayPal: awaiting payment, then printable with no IC card
    let (campus, store, post) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let p = page(campus.clone()).await?;
    assert_eq!(element_text(&p, "order-id").as_deref(), Some(campus.as_str()));
    assert!(p.contains("L19-0042") && element_text(&p, "order-delivery").unwrap_or_default().contains("学内印刷"), "{p}");
    assert!(status(&p).contains("awaiting payment (pay by"), "{}", status(&p));
    assert!(!p.contains("pay with your IC card") && !p.contains("id=\"resend\""), "{p}");
    b.sql(&format!("UPDATE orders SET status = 'paid', paid_at = {} WHERE id = {campus}", shomei_backend::time::now()))?;
    let p = page(campus.clone()).await?;
    assert!(status(&p).contains("paid: print at an on-campus printer by"), "{}", status(&p));
    let how = p.split("id=\"number-how\"").nth(1).and_then(|r| r.split("</p>").next()).unwrap_or_default();
    assert!(how.contains("prints with no further payment") && how.contains("そのまま印刷されます") && !p.contains("pay with your IC card"), "{how}");
    assert!(p.contains("id=\"resend\""), "the number can be mailed again");
    let csrf = form_value(&p, "csrf").unwrap_or_default();
    let r = c.post(format!("{}/orders/{campus}/resend", b.url)).form(&[("csrf", csrf.as_str())]).send().await?;
    assert!(r.status().is_success(), "{}", r.status());
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "print number", std::time::Duration::from_secs(15))?;
    assert!(mail.contains("Your payment is in") && mail.contains("お支払いは済んでいます") && !mail.contains("pay with your IC card"), "{mail}");
    assert!(mail.contains(&format!("order no. {campus}")) && mail.contains("not refunded"), "{mail}");

    // convenience-store print: no print number wording, nothing to mail again
    let p = page(store.clone()).await?;
    assert!(!p.contains("On-campus print number") && !p.contains("id=\"print-number\"") && !p.contains("id=\"resend\""), "{p}");
    b.sql(&format!("UPDATE orders SET status = 'paid', paid_at = {} WHERE id = {store}", shomei_backend::time::now()))?;
    let p = page(store.clone()).await?;
    assert!(status(&p).contains("being registered at the stores"), "{}", status(&p));
    assert!(!p.contains("id=\"resend\""));

    // post: the address, waiting to be posted, then posted
    b.sql(&format!("UPDATE orders SET status = 'paid', paid_at = {} WHERE id = {post}", shomei_backend::time::now()))?;
    let p = page(post.clone()).await?;
    let address = p.split("id=\"order-address\"").nth(1).and_then(|r| r.split("</td>").next()).unwrap_or_default().to_string();
    assert!(address.contains("100-0001") && address.contains("千代田区"), "{address}");
    assert!(status(&p).contains("waiting to be posted") && !p.contains("On-campus print number") && !p.contains("id=\"resend\""), "{}", status(&p));
    b.sql(&format!("UPDATE orders SET shipped_at = {} WHERE id = {post}", shomei_backend::time::now()))?;
    assert!(status(&page(post.clone()).await?).contains("posted ("));
    Ok(())
}

on_both_screens!(
    with_two_student_ids_the_certificates_offered_are_those_of_the_id_chosen,
    with_two_student_ids_the_certificates_offered_are_those_of_the_id_chosen_at_phone_width,
    two_student_ids_on
);
/// A graduate with two student IDs (a science degree first, then letters):
/// the order form offers the certificates of the ID chosen, not the first
/// one's whichever is chosen; the order placed is for the ID chosen.
async fn two_student_ids_on(screen: Screen) -> Result<()> {
    use fantoccini::Locator;
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    // the register knows both; the English graduation certificate is for the Faculty of Letters only
    let (s, page) = crate::accounts::import_register(&b, "S17-0300,山田 花子,ヤマダ ハナコ,YAMADA Hanako,2001-04-02,SCI,MATH,学士（理学）,Bachelor of Science,2016-04-01,2020-03-25,graduated").await?;
    assert_eq!(s, 200, "{page}");
    let user = b.sql(&format!("SELECT id FROM users WHERE email = '{}'", demo::GRADUATE_EMAIL))?;
    b.sql(&format!(
        "INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji, name_kana, name_roman, birth_date, leaving_type, graduation_date)
         VALUES ({user}, 1, 2, 3, 'S17-0300', '山田 花子', 'ヤマダ ハナコ', 'YAMADA Hanako', '', 'graduated', '2020-03-25')"
    ))?;
    let science = b.sql("SELECT id FROM student_records WHERE student_no = 'S17-0300'")?;
    let letters = b.sql("SELECT id FROM student_records WHERE student_no = 'L19-0042'")?;
    b.sql("UPDATE certificate_types SET faculty_codes = 'LET' WHERE code = 'graduation_en'")?;
    let grad = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let grad_en = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation_en'")?;

    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser.log_in_as_demo_graduate(&b).await?;
    browser.wait_id("new-order").await?.click().await?;
    let offered = || async {
        let v = w.execute("return Array.from(document.querySelectorAll('input[id^=copies_]')).map(e => e.id).join(',')", vec![]).await?;
        anyhow::Ok(v.as_str().unwrap_or_default().to_string())
    };
    let chosen = || async { anyhow::Ok(w.find(Locator::Id("student_record_id")).await?.prop("value").await?.unwrap_or_default()) };
    browser.wait_id(&format!("copies_{grad}")).await?;
    let first = chosen().await?;
    // each ID in turn: its own certificates (the English one only with the letters degree)
    for (record, has_en) in [(science.as_str(), false), (letters.as_str(), true), (science.as_str(), false)] {
        if chosen().await? != record {
            w.find(Locator::Id("student_record_id")).await?.select_by_value(record).await?;
            let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while chosen().await.unwrap_or_default() != record && std::time::Instant::now() < end {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        browser.wait_id(&format!("copies_{grad}")).await?;
        assert_eq!(chosen().await?, record, "the ID chosen stays chosen (first was {first})");
        let ids = offered().await?;
        assert_eq!(ids.split(',').any(|i| i == format!("copies_{grad_en}")), has_en, "record {record}: {ids}");
        assert!(ids.split(',').any(|i| i == format!("copies_{grad}")), "record {record}: {ids}");
    }
    // ordered with the science ID chosen: the order is that ID's
    let copies = w.find(Locator::Id(&format!("copies_{grad}"))).await?;
    copies.clear().await?;
    copies.send_keys("1").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    browser.wait_id("place-order").await?.click().await?;
    browser.wait_id("print-number").await?;
    assert_eq!(b.sql("SELECT student_record_id FROM orders ORDER BY id DESC LIMIT 1")?, science);
    browser.close().await;
    Ok(())
}
