//! The staff panel as the registrar's desk uses it (issue 14, "Staff"): a
//! dashboard after login whose counts are the work waiting and lead to their
//! lists, the stations most urgent first and in words (a printer without A4
//! flagged before anyone pays), the orders in words with filters, the system
//! usage fee and postage set in the panel, and a menu on one line that marks
//! the page. In Chromium, through the real peers.

use crate::accounts::*;
use crate::harness::*;
use anyhow::{Context, Result};
use fantoccini::Locator;
use serde_json::json;
use shomei_backend::demo;

/// The demo graduate, logged in on a client of its own.
async fn graduate_client(b: &Backend) -> Result<reqwest::Client> {
    let c = Backend::client();
    let (s, path, page) = portal_login(b, &c, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    anyhow::ensure!(s == 200 && path == "/portal", "the graduate logs in: {s} {path} {page}");
    Ok(c)
}

/// The graduate orders one graduation certificate (by post to their address
/// when `delivery` is post); returns the order's id.
async fn place(b: &Backend, user: &reqwest::Client, delivery: &str, payment: &str) -> Result<i64> {
    let copies = format!("copies_{}", b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?);
    let mut fields = vec![("student_record_id", "1"), (copies.as_str(), "1"), ("delivery", delivery), ("payment_method", payment)];
    if delivery == "post" {
        fields.extend([("post_name", "山田 花子"), ("post_postal_code", "100-0001"), ("post_address", "東京都千代田区千代田1-1"), ("post_phone", "090-1234-5678")]);
    }
    let (s, path, page) = post_form(user, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url), &fields).await?;
    anyhow::ensure!(s == 200 && path.starts_with("/orders/"), "order ({delivery}, {payment}): {s} {path} {page}");
    Ok(path.trim_start_matches("/orders/").parse()?)
}

/// Pays order `id` in cash at a store through Smart Pit (its number, then the store's notice).
async fn pay_cash(b: &Backend, user: &reqwest::Client, smartpit: &HttpSim, id: i64) -> Result<()> {
    let order_url = format!("{}/orders/{id}", b.url);
    // the number is issued with the order, or when asked for
    let page = user.get(&order_url).send().await?.text().await?;
    let number = match element_text(&page, "smartpit-number") {
        Some(n) => n,
        None => {
            let (s, _, page) = post_form(user, &order_url, &format!("{order_url}/smartpit"), &[]).await?;
            anyhow::ensure!(s == 200, "payment number: {s} {page}");
            element_text(&page, "smartpit-number").context("payment number")?
        }
    };
    let r = smartpit.knob("/sim/pay", json!({ "payment_number": number, "url": format!("{}/smartpit/notice", b.url) })).await?;
    anyhow::ensure!(r["delivered_status"] == 200, "the store's notice: {r}");
    anyhow::ensure!(b.sql(&format!("SELECT status FROM orders WHERE id = {id}"))? == "paid", "order {id} paid");
    Ok(())
}

/// A station enrolled through the API that sends one heartbeat: an idle,
/// reachable printer with `media_ready` loaded.
async fn station_beating_once(b: &Backend, name: &str, media_ready: &[&str]) -> Result<i64> {
    let code = b.enrolment_code(name).await?;
    let (s, body) = crate::station_api::Api::enroll(b, &code).await?;
    anyhow::ensure!(s == 200, "{name} enrols: {body}");
    let token = body["token"].as_str().context("station token")?.to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let beat = json!({ "version": "test", "uptime_s": 60, "reader_present": true, "outbox_len": 0, "station_time": now,
                       "printer": { "reachable": true, "state": "idle", "reasons": ["none"], "message": "", "markers": [], "media_ready": media_ready } });
    let r = reqwest::Client::new().post(format!("{}/api/station/v1/heartbeat", b.url)).bearer_auth(&token).json(&beat).send().await?;
    anyhow::ensure!(r.status() == 200, "{name}'s heartbeat: {}", r.status());
    body["station_id"].as_i64().context("station id")
}

/// An administrator adds a staff member of `role`, who logs in with the
/// initial password and sets their own: (own password, TOTP secret).
async fn new_staff(b: &Backend, login: &str, role: &str) -> Result<(String, String)> {
    let admin = b.staff_client().await?;
    let url = format!("{}/admin/staff", b.url);
    let (s, _, page) = post_form(&admin, &url, &url, &[("login", login), ("display_name", login), ("role", role)]).await?;
    anyhow::ensure!(s == 200, "{login} added: {s} {page}");
    let secret = element_text(&page, "totp-secret").context("TOTP secret")?;
    let initial = element_text(&page, "new-password").context("initial password")?;
    let (c, status, page) = b.staff_login(login, &initial, &b.totp_code_for(&secret).await?).await?;
    anyhow::ensure!(status.is_success(), "{login}'s first login: {status} {page}");
    let own = "Desk2024ownPw";
    let url = format!("{}/admin/password", b.url);
    let (s, _, page) = post_form(&c, &url, &url, &[("current_password", initial.as_str()), ("password", own), ("password_confirm", own)]).await?;
    anyhow::ensure!(s == 200, "{login}'s own password: {s} {page}");
    Ok((own.to_string(), secret))
}

/// Logs the browser into the panel; it lands on the dashboard.
async fn browser_login(browser: &Browser, b: &Backend, login: &str, password: &str, secret: &str) -> Result<()> {
    let w = &browser.client;
    w.goto(&format!("{}/admin/login", b.url)).await?;
    browser.wait_id("login").await?.send_keys(login).await?;
    w.find(Locator::Id("password")).await?.send_keys(password).await?;
    w.find(Locator::Id("code")).await?.send_keys(&b.totp_code_for(secret).await?).await?;
    w.find(Locator::Id("staff-login")).await?.click().await?;
    browser.wait_id("dashboard").await?;
    Ok(())
}

/// The path and query the browser is on.
async fn here(browser: &Browser) -> Result<String> {
    let url = browser.client.current_url().await?;
    Ok(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    })
}

/// A dashboard count as shown.
async fn count(browser: &Browser, item: &str) -> Result<String> {
    Ok(browser.wait_for(Locator::Css(&format!("#dash-{item} .count"))).await?.text().await?)
}

/// The ids of the elements `css` finds, in page order.
async fn ids(browser: &Browser, css: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in browser.client.find_all(Locator::Css(css)).await? {
        out.push(e.attr("id").await?.unwrap_or_default());
    }
    Ok(out)
}

/// The order rows of the orders list shown.
async fn order_rows(browser: &Browser) -> Result<Vec<String>> {
    browser.wait_id("orders").await?;
    ids(browser, "#orders tr[id^='order-']").await
}

/// From the dashboard, follows the count `item`; waits for `marker` on the page it opens; returns where it is.
async fn follow(browser: &Browser, b: &Backend, item: &str, marker: &str) -> Result<String> {
    browser.client.goto(&format!("{}/admin", b.url)).await?;
    browser.wait_id(&format!("dash-{item}")).await?.click().await?;
    browser.wait_id(marker).await?;
    here(browser).await
}

/// The menu links marked as the current page (their hrefs).
async fn current_menu(browser: &Browser) -> Result<Vec<String>> {
    let v = browser
        .client
        .execute("return [...document.querySelectorAll('header nav.menu a[aria-current=\"page\"]')].map(a => a.getAttribute('href'))", vec![])
        .await?;
    Ok(serde_json::from_value(v)?)
}

/// The menu's layout at the browser's width: (links, rows of links, overflowing, right edge, window width),
/// and whether the marked link looks different from the others.
async fn menu_layout(browser: &Browser) -> Result<serde_json::Value> {
    Ok(browser
        .client
        .execute(
            "const nav = document.querySelector('header nav.menu'); const links = [...nav.querySelectorAll('a')];
             const cur = nav.querySelector('a[aria-current=\"page\"]'); const other = nav.querySelector('a:not([aria-current])');
             const bg = e => getComputedStyle(e).backgroundColor;
             return { links: links.length, rows: new Set(links.map(a => Math.round(a.getBoundingClientRect().top))).size,
                      overflow: nav.scrollWidth > nav.clientWidth, right: Math.ceil(links[links.length - 1].getBoundingClientRect().right),
                      width: window.innerWidth, marked_looks_different: !!cur && !!other && bg(cur) !== bg(other) };",
            vec![],
        )
        .await?)
}

/// Today in Japan, as the panel's filters spell a day.
fn japan_today() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive().format("%Y-%m-%d").to_string()
}

on_both_screens!(the_dashboard_counts_the_work_waiting_and_each_count_opens_its_list, the_dashboard_counts_the_work_waiting_and_each_count_opens_its_list_at_phone_width, the_dashboard_counts_the_work_waiting_and_each_count_opens_its_list_on);
async fn the_dashboard_counts_the_work_waiting_and_each_count_opens_its_list_on(screen: Screen) -> Result<()> {
    let smartpit = HttpSim::smartpit()?;
    let sp_url = smartpit.url.clone();
    let peers = Peers::start_with(move |c| {
        c.smartpit.base_url = sp_url;
        // the API stations below beat once: they stay online through the test
        c.stations.offline_after_s = 600;
    })
    .await?;
    // stations: one fine, one whose printer holds US Letter only (the demo
    // printer's default), and the real one, enrolled last, which runs out of paper
    let cafeteria = station_beating_once(&peers.backend, "Cafeteria", &["iso_a4_210x297mm", "na_number-10_4.125x9.5in"]).await?;
    let gym = station_beating_once(&peers.backend, "Gym", &["na_letter_8.5x11in", "na_number-10_4.125x9.5in"]).await?;
    let code = peers.backend.enrolment_code("Library 1F").await?;
    let rig = Rig::assemble(peers, &code, Tuning::default())?;
    let b = &rig.backend;
    let library: i64 = b.sql("SELECT id FROM stations WHERE name = 'Library 1F'")?.parse()?;
    assert!(cafeteria < gym && gym < library, "the out-of-paper station is not first by id: {cafeteria} {gym} {library}");
    crate::print_flow::wait_page(b, "/admin/stations", |p| p.contains(&format!("id=\"station-{library}\" data-online=\"true\" data-level=\"ok\""))).await?;
    rig.printer.set_paper(0)?;

    // the work: an application waiting, a held order, a paid postal order, a cash refund to pay back
    apply_as(b, &rig.smtp, "waiting@example.jp", &applicant("待合 太郎", "マチアイ タロウ", "MACHIAI Taro")).await?;
    let name = b.sql("SELECT name_kanji FROM school_register WHERE student_no = 'L19-0042' LIMIT 1")?;
    b.sql("UPDATE school_register SET name_kanji = '𠮷田 花子' WHERE student_no = 'L19-0042'")?;
    b.order_as_graduate(1).await?;
    let held = b.sql("SELECT MAX(id) FROM orders")?;
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {held}"))?, "held");
    b.sql(&format!("UPDATE school_register SET name_kanji = '{name}' WHERE student_no = 'L19-0042'"))?;
    let user = graduate_client(b).await?;
    let postal = place(b, &user, "post", "smartpit").await?;
    pay_cash(b, &user, &smartpit, postal).await?;
    let refunded = place(b, &user, "campus", "smartpit").await?;
    pay_cash(b, &user, &smartpit, refunded).await?;
    let staff = b.staff_client().await?;
    let detail = format!("{}/admin/orders/{refunded}", b.url);
    let (s, _, page) = post_form(&staff, &detail, &format!("{detail}/refund"), &[("reason", "Ordered twice by mistake")]).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(b.sql(&format!("SELECT total FROM orders WHERE id = {postal}"))?, "540", "300 + system fee 100 + postage 140");
    // the stations have reported what they are
    crate::print_flow::wait_page(b, "/admin/stations", |p| {
        p.contains(&format!("id=\"station-{library}\" data-online=\"true\" data-level=\"bad\""))
            && p.contains(&format!("id=\"station-{gym}\" data-online=\"true\" data-level=\"warn\""))
            && p.contains(&format!("id=\"station-{cafeteria}\" data-online=\"true\" data-level=\"ok\""))
    })
    .await?;

    // the registrar's desk in the browser: the dashboard after login
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser_login(&browser, b, demo::STAFF_LOGIN, demo::STAFF_PASSWORD, demo::STAFF_TOTP_SECRET).await?;
    assert_eq!(here(&browser).await?, "/admin", "login leads to the dashboard");
    assert_eq!(current_menu(&browser).await?, ["/admin"]);
    assert_eq!(count(&browser, "applications").await?, "1");
    assert_eq!(count(&browser, "held").await?, "1");
    assert_eq!(count(&browser, "to-post").await?, "1");
    assert_eq!(count(&browser, "refunds").await?, "1");
    assert_eq!(count(&browser, "stations").await?, "2", "out of paper, and no A4");
    assert_eq!(count(&browser, "today").await?, "3");
    let extra = browser.wait_id("dash-today-extra").await?.text().await?;
    assert_eq!(extra, "入金済 ¥540 ¥540 received", "only the paid postal order's money came in (the refunded one went back)");
    let listed = browser.wait_id("dash-stations-list").await?.text().await?;
    let (at_library, at_gym) = (listed.find("Library 1F").context("Library 1F listed")?, listed.find("Gym").context("Gym listed")?);
    assert!(at_library < at_gym && listed.contains("用紙切れ / out of paper") && listed.contains("A4 用紙が入っていません / no A4 paper loaded"), "{listed}");
    assert!(!listed.contains("Cafeteria"), "a station that is fine needs no attention: {listed}");

    // each count leads to its list, filtered to exactly those
    assert_eq!(follow(&browser, b, "applications", "registrations").await?, "/admin/registrations?status=pending");
    assert_eq!(w.find_all(Locator::Css("#registrations a[href^='/admin/registrations/']")).await?.len(), 1);
    assert!(browser.body_text().await?.contains("待合 太郎"));
    assert_eq!(follow(&browser, b, "held", "orders").await?, "/admin/orders?status=held");
    assert_eq!(order_rows(&browser).await?, [format!("order-{held}")]);
    assert_eq!(follow(&browser, b, "to-post", "orders").await?, "/admin/orders?status=paid&delivery=post");
    assert_eq!(order_rows(&browser).await?, [format!("order-{postal}")]);
    let status = w.find(Locator::Css(&format!("#order-{postal} td.status"))).await?.text().await?;
    assert_eq!(status, "支払済・発送待ち paid, waiting to be posted");
    assert_eq!(follow(&browser, b, "refunds", "orders").await?, "/admin/orders?refund=due");
    assert_eq!(order_rows(&browser).await?, [format!("order-{refunded}")]);
    let status = w.find(Locator::Css(&format!("#order-{refunded} td.status"))).await?.text().await?;
    assert_eq!(status, "返金済 refunded\n窓口で返金 / to pay back");
    assert_eq!(follow(&browser, b, "today", "orders").await?, format!("/admin/orders?day={}", japan_today()));
    assert_eq!(order_rows(&browser).await?, [format!("order-{refunded}"), format!("order-{postal}"), format!("order-{held}")]);
    assert_eq!(follow(&browser, b, "stations", "stations").await?, "/admin/stations?show=attention");
    assert_eq!(ids(&browser, "#stations tr[id^='station-']").await?, [format!("station-{library}"), format!("station-{gym}")]);
    assert_eq!(current_menu(&browser).await?, ["/admin/stations"]);

    // all stations: most urgent first, conditions in words, no A4 flagged, never a printer keyword
    w.find(Locator::Id("show-all")).await?.click().await?;
    browser.wait_for(Locator::Css("#show-all[aria-current='page']")).await?;
    assert_eq!(
        ids(&browser, "#stations tr[id^='station-']").await?,
        [format!("station-{library}"), format!("station-{gym}"), format!("station-{cafeteria}")]
    );
    let condition = |id: i64| {
        let w = w.clone();
        async move { anyhow::Ok(w.find(Locator::Css(&format!("#station-{id} [data-field=condition]"))).await?.text().await?) }
    };
    assert_eq!(condition(library).await?, "用紙切れ / out of paper");
    assert_eq!(condition(gym).await?, "A4 用紙が入っていません / no A4 paper loaded");
    assert_eq!(condition(cafeteria).await?, "稼働中 / ready");
    assert!(w.find(Locator::Css(&format!("#station-{gym} [data-field=no_a4]"))).await?.is_displayed().await?, "the no-A4 flag shows");
    assert!(!w.find(Locator::Css(&format!("#station-{cafeteria} [data-field=no_a4]"))).await?.is_displayed().await?);
    assert_eq!(w.find(Locator::Css(&format!("#station-{gym} [data-field=media]"))).await?.text().await?, "レター（米国）・封筒 / US Letter, envelope");
    let reasons = w.find(Locator::Css(&format!("#station-{library} [data-field=printer_reasons]"))).await?.text().await?;
    assert_eq!(reasons, "用紙切れ / out of paper");
    let html = w.source().await?;
    for keyword in ["media-empty", "-report", "na_letter", "iso_a4", "na_number"] {
        assert!(!html.contains(keyword), "the stations page shows the keyword {keyword}");
    }

    // the office pays the cash back and records it: the count goes down, once
    let (s, _, page) = post_form(&staff, &detail, &format!("{detail}/paid-back"), &[]).await?;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("id=\"paid-back\""), "{page}");
    let (s, _, page) = post_form(&staff, &detail, &format!("{detail}/paid-back"), &[]).await?;
    assert_eq!(s, 400, "recorded once: {page}");
    assert_eq!(b.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'order.refund_paid_back'")?, "1");
    w.goto(&format!("{}/admin", b.url)).await?;
    assert_eq!(count(&browser, "refunds").await?, "0");

    // the real printer with US Letter loaded (as the demo printer starts): flagged in words before anyone pays
    rig.printer.load_paper("na_letter_8.5x11in", 250)?;
    let page = crate::print_flow::wait_page(b, "/admin/stations", |p| p.contains(&format!("id=\"station-{library}\" data-online=\"true\" data-level=\"warn\""))).await?;
    assert!(page.contains("A4 用紙が入っていません / no A4 paper loaded"), "{page}");
    w.goto(&format!("{}/admin", b.url)).await?;
    assert_eq!(count(&browser, "stations").await?, "2", "the library now lacks A4, the gym still does");
    browser.close().await;
    Ok(())
}

on_both_screens!(a_registrar_reads_and_filters_orders_in_words_sets_the_fees_and_the_menu_marks_the_page, a_registrar_reads_and_filters_orders_in_words_sets_the_fees_and_the_menu_marks_the_page_at_phone_width, a_registrar_reads_and_filters_orders_in_words_sets_the_fees_and_the_menu_marks_the_page_on);
async fn a_registrar_reads_and_filters_orders_in_words_sets_the_fees_and_the_menu_marks_the_page_on(screen: Screen) -> Result<()> {
    let b = Backend::start(None).await?;
    // an order paid from the demo card and printed at a station
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
    let printed = b.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
    let api = crate::station_api::Api::new(&b).await?;
    let (s, res) = api.post("/reservations", json!({ "print_number": number })).await?;
    assert_eq!(s, 200, "{res}");
    let rid = res["reservation_id"].as_i64().context("reservation id")?;
    let (s, r) = api.post(&format!("/reservations/{rid}/charge"), json!({ "card_uid": demo::CARD_UID, "idempotency_key": "dash-charge" })).await?;
    assert_eq!(s, 200, "{r}");
    let (s, _) = api.get(&format!("/reservations/{rid}/document")).await?;
    assert_eq!(s, 200);
    let (s, r) = api.post(&format!("/reservations/{rid}/report"), json!({ "idempotency_key": "dash-report", "outcome": { "kind": "printed" }, "ipp_job_id": 1, "at": 0 })).await?;
    assert_eq!((s, r["order_status"].clone()), (200, json!("printed")));
    // and a postal order not paid yet
    let user = graduate_client(&b).await?;
    let postal = place(&b, &user, "post", "paypal").await?;

    // a registrar of the office, in the browser
    let (password, secret) = new_staff(&b, "madoguchi", "registrar").await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser_login(&browser, &b, "madoguchi", &password, &secret).await?;
    assert_eq!(count(&browser, "today").await?, "2");
    assert_eq!(count(&browser, "to-post").await?, "0", "the postal order is not paid");
    assert_eq!(count(&browser, "applications").await?, "0");
    assert!(w.find(Locator::Id("dash-stations")).await.is_err(), "stations are the operators' pages: not on a registrar's dashboard");
    // the menu: one line at 1024 px, the page marked in markup and in looks
    // (on a phone: one line that scrolls sideways inside itself, the page not)
    let layout = menu_layout(&browser).await?;
    let width = if screen == Screen::Phone { 390 } else { 1024 };
    assert_eq!(layout["width"], width, "{layout}");
    assert_eq!((layout["links"].as_i64(), layout["rows"].as_i64(), layout["overflow"].as_bool()), (Some(15), Some(1), Some(screen == Screen::Phone)), "{layout}");
    if screen == Screen::Desktop {
        assert!(layout["right"].as_i64().is_some_and(|r| r <= 1024), "{layout}");
    }
    browser.check_page().await?;
    assert_eq!(layout["marked_looks_different"], true, "{layout}");

    // the orders list, reached from the menu: who, how delivered, how paid, with what, where printed, in words
    w.find(Locator::Css("header nav.menu a[href='/admin/orders']")).await?.click().await?;
    assert_eq!(order_rows(&browser).await?, [format!("order-{postal}"), format!("order-{printed}")]);
    assert_eq!(current_menu(&browser).await?, ["/admin/orders"]);
    let cell = |order: String, field: &'static str| {
        let w = w.clone();
        async move { anyhow::Ok(w.find(Locator::Css(&format!("#order-{order} [data-field={field}]"))).await?.text().await?) }
    };
    assert_eq!(cell(printed.clone(), "customer").await?, format!("山田 花子\nL19-0042 · {}", demo::GRADUATE_EMAIL));
    assert_eq!(cell(printed.clone(), "delivery").await?, "学内で印刷 print on campus");
    assert_eq!(cell(printed.clone(), "payment").await?, "ICカード IC card");
    let last4 = &demo::CARD_UID[demo::CARD_UID.len() - 4..];
    assert_eq!(cell(printed.clone(), "paid-with").await?, format!("ICカード …{last4} IC card …{last4}"));
    assert!(cell(printed.clone(), "printed").await?.contains("API test station"), "the station that printed it");
    assert_eq!(w.find(Locator::Css(&format!("#order-{printed} td.status"))).await?.text().await?, "印刷済 printed");
    assert_eq!(cell(postal.to_string(), "delivery").await?, "郵送 by post");
    assert_eq!(cell(postal.to_string(), "payment").await?, "クレジットカード（PayPal） credit card (PayPal)");
    assert_eq!(cell(postal.to_string(), "paid-with").await?, "-", "nothing paid yet");
    assert_eq!(w.find(Locator::Css(&format!("#order-{postal} td.status"))).await?.text().await?, "支払待ち awaiting payment");
    let text = browser.body_text().await?;
    for keyword in ["awaiting_payment", "paypal", "smartpit"] {
        assert!(!text.contains(keyword), "the orders page says {keyword}: {text}");
    }
    // the filters, in words, narrow the list
    let br = &browser;
    let filter = |status: &'static str, delivery: &'static str, payment: &'static str| async move {
        let w = &br.client;
        w.find(Locator::Id("status")).await?.select_by_value(status).await?;
        w.find(Locator::Id("delivery")).await?.select_by_value(delivery).await?;
        w.find(Locator::Id("payment")).await?.select_by_value(payment).await?;
        w.find(Locator::Id("search")).await?.click().await?;
        let want = format!("/admin/orders?q=&status={status}&delivery={delivery}&payment={payment}");
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while here(br).await? != want {
            anyhow::ensure!(std::time::Instant::now() < end, "the filter did not load {want}: {}", here(br).await?);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        order_rows(br).await
    };
    assert_eq!(filter("", "post", "").await?, [format!("order-{postal}")]);
    assert_eq!(filter("printed", "", "").await?, [format!("order-{printed}")]);
    assert_eq!(filter("", "", "card").await?, [format!("order-{printed}")]);
    assert_eq!(filter("awaiting_payment", "campus", "").await?, Vec::<String>::new());
    let options = w.find(Locator::Id("status")).await?.text().await?;
    assert!(options.contains("支払待ち / awaiting payment") && !options.contains("awaiting_payment"), "{options}");

    // the system usage fee and the postage, set in the panel (menu: Fees)
    w.find(Locator::Css("header nav.menu a[href='/admin/catalogue']")).await?.click().await?;
    assert_eq!(browser.wait_id("current-system-fee").await?.text().await?, "¥100");
    assert_eq!(w.find(Locator::Id("current-postage")).await?.text().await?, "¥140");
    assert_eq!(current_menu(&browser).await?, ["/admin/catalogue"]);
    let fee = w.find(Locator::Id("system-fee")).await?;
    fee.clear().await?;
    fee.send_keys("150").await?;
    let postage = w.find(Locator::Id("postage")).await?;
    postage.clear().await?;
    postage.send_keys("200").await?;
    w.find(Locator::Id("save-fees")).await?.click().await?;
    browser.wait_text("current-system-fee", "¥150").await?;
    assert_eq!(w.find(Locator::Id("current-postage")).await?.text().await?, "¥200");
    assert_eq!(b.sql("SELECT system_fee || ' ' || postage FROM universities WHERE id = 1")?, "150 200");
    assert_eq!(b.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'university.fees' AND actor = 'staff:madoguchi'")?, "1");
    // the next orders pay them; placed orders keep their price
    let next = place(&b, &user, "post", "paypal").await?;
    assert_eq!(b.sql(&format!("SELECT fees || ' ' || system_fee || ' ' || postage || ' ' || total FROM orders WHERE id = {next}"))?, "300 150 200 650");
    b.order_as_graduate(1).await?;
    assert_eq!(b.sql("SELECT system_fee || ' ' || postage || ' ' || total FROM orders WHERE id = (SELECT MAX(id) FROM orders)")?, "150 0 450");
    assert_eq!(b.sql(&format!("SELECT total FROM orders WHERE id = {postal}"))?, "540");
    w.find(Locator::Css("header nav.menu a[href='/admin/orders']")).await?.click().await?;
    browser.wait_id("orders").await?;
    assert!(w.find(Locator::Id(&format!("order-{next}"))).await?.text().await?.contains("¥650"));
    let layout = menu_layout(&browser).await?;
    assert_eq!((layout["rows"].as_i64(), layout["overflow"].as_bool()), (Some(1), Some(screen == Screen::Phone)), "one line on the wide orders page too: {layout}");
    browser.close().await;

    // an operator's dashboard shows the stations and the orders list, not the review queue
    let (own, secret) = new_staff(&b, "unyou", "operator").await?;
    let (_, status, page) = b.staff_login("unyou", &own, &b.totp_code_for(&secret).await?).await?;
    assert!(status.is_success(), "{page}");
    assert!(page.contains("id=\"dash-stations\"") && page.contains("id=\"dash-held\"") && !page.contains("id=\"dash-applications\""), "{page}");
    Ok(())
}
