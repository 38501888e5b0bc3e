//! Every page of the portal and the admin panel, as a person with a screen
//! reader, low vision or only a phone meets it (issue 14, "The portal as a
//! whole" and "Kiosk"): axe-core's WCAG 2.x A/AA rules find nothing and no
//! page is wider than a 390 px phone screen. The pages are the router's own
//! GET routes (read from its source, so a new page is checked the day it is
//! added), each opened in Chromium at desktop and at phone size, logged out,
//! as the demo graduate and as staff. The kiosk's screens are checked in
//! kiosk.rs, where a real card and printer walk them.

use crate::accounts::*;
use crate::harness::*;
use crate::staff::{closing_paren, method_routers};
use anyhow::{Context, Result};
use fantoccini::Locator;
use shomei_backend::demo;

/// Who may open a page: anyone, a logged-in graduate, or staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anyone,
    Graduate,
    Staff,
}

/// The GET routes of the router that answer with a page (not a file, a
/// feed or an API), each with who opens it.
fn pages_of_router(src: &str) -> Result<Vec<(String, Who)>> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find(".route(") {
        let call = &rest[i + ".route(".len()..];
        let end = closing_paren(call).context("a .route( that does not close")?;
        let args = &call[..end];
        rest = &call[end..];
        let path = args.split('"').nth(1).context("a .route( without its path")?.to_string();
        if !method_routers(args).iter().any(|m| m == "GET") {
            continue;
        }
        let not_a_page = args.contains("station_api::")
            || path.starts_with("/api/")
            || path.starts_with("/static/")
            || [".json", ".csv", ".js", "/pdf", ".pdf", "/seal"].iter().any(|end| path.ends_with(end))
            || path.contains("/images/")
            || path.contains("/credentials/")
            || path.starts_with("/verify/status")
            || path.starts_with("/verify/issuers/")
            || path.ends_with("/progress")
            || ["/metrics", "/healthz", "/readyz"].contains(&path.as_str());
        if not_a_page {
            continue;
        }
        let who = if path.starts_with("/admin") && path != "/admin/login" {
            Who::Staff
        } else if ["/portal", "/orders", "/cards", "/account"].iter().any(|p| path.starts_with(p)) {
            Who::Graduate
        } else {
            Who::Anyone
        };
        out.push((path, who));
    }
    anyhow::ensure!(out.len() > 30, "only {} pages read from the router", out.len());
    Ok(out)
}

/// Real objects for the pages' path parameters.
struct Ids {
    order: String,
    refunded: String,
    /// the applicant's status page with its key
    status: String,
    topup: String,
    station: String,
    registration: String,
    graduation_run: String,
}

fn fill(pattern: &str, ids: &Ids) -> Result<String> {
    let first_university = "1".to_string();
    let id = match pattern {
        "/register/status" => return Ok(ids.status.clone()),
        // a recipient's page is reached by the mailed link only: here, a link that never was
        "/shared/{token}" => return Ok(format!("/shared/{}", "0".repeat(64))),
        p if !p.contains('{') => return Ok(p.to_string()),
        "/orders/{id}/refund-bank" => &ids.refunded,
        p if p.starts_with("/orders/{id}") || p.starts_with("/admin/orders/{id}") => &ids.order,
        p if p.starts_with("/cards/topups/{id}") => &ids.topup,
        p if p.starts_with("/admin/stations/{id}") => &ids.station,
        p if p.starts_with("/admin/registrations/{id}") => &ids.registration,
        p if p.starts_with("/admin/graduation/{id}") => &ids.graduation_run,
        p if p.starts_with("/admin/universities/{id}") => &first_university,
        p => anyhow::bail!("no real object for the page {p}: give it one in a11y.rs"),
    };
    let path = pattern.replace("{id}", id);
    anyhow::ensure!(!path.contains('{'), "no value for a parameter of {pattern}");
    Ok(path)
}

/// Pages opened only through a mailed one-time link or in the middle of a
/// flow (here they show the "link no longer valid" page, checked as such):
/// the flow test named beside each checks the page itself with axe-core.
const REACHED_BY_A_LINK: [(&str, &str); 10] = [
    ("/shared/{token}", "digital::a_graduate_orders_a_signed_pdf_and_sends_it_to_a_recipient_who_opens_and_checks_it_in_the_browser"),
    ("/register/open", "accounts::a_graduate_registers_is_approved_and_sets_passwords_in_the_browser"),
    ("/register/form", "accounts::a_graduate_registers_is_approved_and_sets_passwords_in_the_browser"),
    ("/register/confirm", "accounts::a_graduate_registers_is_approved_and_sets_passwords_in_the_browser"),
    ("/password/reset", "accounts::a_graduate_keeps_the_account_up_to_date_in_the_browser"),
    ("/account/email/confirm", "accounts::a_graduate_keeps_the_account_up_to_date_in_the_browser"),
    ("/student/email", "students::a_students_first_login_is_mail_link_then_completion_page_then_login_then_second_password_in_the_browser"),
    ("/student/email/confirm", "students::a_students_first_login_is_mail_link_then_completion_page_then_login_then_second_password_in_the_browser"),
    ("/student/second-password/setup", "students::a_students_first_login_is_mail_link_then_completion_page_then_login_then_second_password_in_the_browser"),
    ("/student/second-password/reset", "students::a_forgotten_second_password_is_reset_by_mail_to_the_registered_address_the_old_one_stops_the_new_one_works_and_the_link_works_once"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_meets_wcag_aa_and_fits_a_phone_screen() -> Result<()> {
    let pages = pages_of_router(include_str!("../../backend/src/http/mod.rs"))?;
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    // the objects the pages show: an order paid by card with its top-up, a station, an application
    let page = b.order_as_graduate(1).await?;
    let order = b.sql("SELECT MAX(id) FROM orders")?;
    let number = element_text(&page, "print-number").context("print number")?;
    anyhow::ensure!(!number.is_empty(), "the order has a number");
    // a paid order (its receipt), a cash order refunded by the office (the bank form), a top-up (its receipt)
    b.sql(&format!("UPDATE orders SET status = 'paid', paid_at = {} WHERE id = {}", shomei_backend::time::now(), b.sql("SELECT MAX(id) FROM orders")?))?;
    b.order_as_graduate(1).await?;
    let refunded = b.sql("SELECT MAX(id) FROM orders")?;
    let now = shomei_backend::time::now();
    b.sql(&format!(
        "UPDATE orders SET payment_method = 'smartpit', status = 'cancelled', paid_at = {now}, refunded_at = {now}, refund_method = 'office' WHERE id = {refunded}"
    ))?;
    b.sql(&format!(
        "INSERT INTO topups (user_id, card_uid, amount, paypal_order_id, capture_id, status, created_at, captured_at)
         SELECT user_id, uid, 1000, 'A11Y-ORDER', 'A11Y-CAPTURE', 'captured', {now}, {now} FROM ic_cards WHERE uid = '{}'",
        demo::CARD_UID
    ))?;
    let topup = b.sql("SELECT MAX(id) FROM topups")?;
    let code = b.enrolment_code("a11y station").await?;
    let (s, body) = crate::station_api::Api::enroll(&b, &code).await?;
    anyhow::ensure!(s == 200, "station enrols: {body}");
    let station = body["station_id"].as_i64().context("station id")?.to_string();
    let registration = apply_as(&b, &smtp, "a11y@example.jp", &applicant("確認 花子", "カクニン ハナコ", "KAKUNIN Hanako")).await?.to_string();
    // the applicant's status page, by the link in the receipt mail
    let receipt = smtp.wait_for_mail_with("a11y@example.jp", "/register/status?k=", MAIL_WAIT)?;
    let status = link_in(&receipt, &format!("{}/register/status?k=", b.url)).context("status link")?;
    let status = status.trim_start_matches(b.url.as_str()).to_string();
    let graduation_run = crate::staff::graduation_run(&b)?;
    let ids = Ids { order, refunded, topup, station, registration, status, graduation_run };

    // each page answers as itself (200), not with an error page, for whom it is for
    let anyone = Backend::client();
    let graduate = Backend::client();
    let (s, path, _) = portal_login(&b, &graduate, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    anyhow::ensure!(s == 200 && path == "/portal", "the graduate logs in");
    let staff = b.staff_client().await?;
    let mut not_themselves = Vec::new();
    for (pattern, who) in &pages {
        let c = match who {
            Who::Anyone => &anyone,
            Who::Graduate => &graduate,
            Who::Staff => &staff,
        };
        let r = c.get(format!("{}{}", b.url, fill(pattern, &ids)?)).send().await?;
        let (status, landed) = (r.status().as_u16(), r.url().path().to_string());
        if status != 200 && !REACHED_BY_A_LINK.iter().any(|(p, _)| p == pattern) {
            not_themselves.push(format!("{pattern} {status} {landed}"));
        }
    }
    assert_eq!(not_themselves, Vec::<String>::new(), "pages that answered with an error page instead of themselves");

    let mut problems: Vec<String> = Vec::new();
    let mut seen = 0;
    for screen in Screen::BOTH {
        let browser = Browser::start_on(screen).await?;
        let w = &browser.client;
        for who in [Who::Anyone, Who::Graduate, Who::Staff] {
            match who {
                Who::Anyone => {}
                Who::Graduate => {
                    browser.log_in_as_demo_graduate(&b).await?;
                    browser.wait_id("new-order").await?;
                }
                Who::Staff => {
                    w.goto(&format!("{}/admin/login", b.url)).await?;
                    browser.wait_id("login").await?.send_keys(demo::STAFF_LOGIN).await?;
                    w.find(Locator::Id("password")).await?.send_keys(demo::STAFF_PASSWORD).await?;
                    w.find(Locator::Id("code")).await?.send_keys(&b.totp_code_for(demo::STAFF_TOTP_SECRET).await?).await?;
                    w.find(Locator::Id("staff-login")).await?.click().await?;
                    browser.wait_id("dashboard").await?;
                }
            }
            for (pattern, _) in pages.iter().filter(|(_, p)| *p == who) {
                let path = fill(pattern, &ids)?;
                w.goto(&format!("{}{path}", b.url)).await?;
                browser.wait_for(Locator::Css("body")).await?;
                seen += 1;
                for p in browser.page_problems().await? {
                    problems.push(format!("[{screen:?}] {pattern} ({}) {}", p.page, p.what));
                }
                // the desk and the manual at the foot of every page
                let foot = browser.wait_id("contact").await?.text().await?;
                if !(foot.contains("教務課 証明書窓口") && foot.contains("Registrar's Office") && foot.contains("9:00") && foot.contains("Help")) {
                    problems.push(format!("[{screen:?}] {pattern}: the contact block says {foot:?}"));
                }
            }
        }
        if screen == Screen::Phone {
            // the checks can fail: an image with no text, grey on grey, a box wider than the phone
            w.execute(
                "document.body.insertAdjacentHTML('beforeend', '<img src=\"/help\"><p style=\"color:#777;background:#888\">faint</p><div style=\"width:900px\">wide</div>')",
                vec![],
            )
            .await?;
            let planted: Vec<String> = browser.page_problems().await?.into_iter().map(|p| p.what).collect();
            for rule in ["image-alt", "color-contrast", "900px"] {
                assert!(planted.iter().any(|p| p.contains(rule)), "a planted {rule} problem is found: {planted:?}");
            }
        }
        browser.close().await;
    }
    // the help page walks the manuals' steps, in both languages
    let help = reqwest::get(format!("{}/help", b.url)).await?.text().await?;
    for needle in ["利用申請", "第2パスワード", "学内印刷番号", "スマートピット", "印刷予約完了", "カードIDと確認用の番号", "翌日に自動で返金",
                   "print reservation completed", "second password", "refunded automatically the next day"] {
        assert!(help.contains(needle), "the help page says {needle:?}");
    }
    assert_eq!(seen, 2 * pages.len(), "every page opened at both sizes");
    assert!(problems.is_empty(), "{} problems on the pages:\n{}", problems.len(), problems.join("\n"));
    Ok(())
}
