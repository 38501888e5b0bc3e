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
    let b = Backend::start(None).await?;
    let c = Backend::client();
    let (s1, wrong_pw) = login(&c, &b.url, demo::GRADUATE_EMAIL, "Wrong2024pass", demo::GRADUATE_SECOND_PASSWORD).await?;
    let (s2, wrong_second) = login(&c, &b.url, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, "Wrong2024pass").await?;
    let (s3, nobody) = login(&c, &b.url, "nobody@example.ac.jp", "Whatever2024", "Whatever2024").await?;
    assert_eq!((s1, s2, s3), (401, 401, 401));
    assert!(error_of(&wrong_pw).contains("not correct"), "{wrong_pw}");
    assert_eq!(error_of(&wrong_pw), error_of(&wrong_second));
    assert_eq!(error_of(&wrong_pw), error_of(&nobody), "no user enumeration");
    assert!(wrong_pw.contains(demo::GRADUATE_EMAIL), "the address typed is kept in the form");

    // a third failure: from now on each attempt waits longer (300 ms, then 600 ms in tests)
    let (s, _) = login(&c, &b.url, demo::GRADUATE_EMAIL, "Wrong2024pass", "x").await?;
    assert_eq!(s, 401);
    let (s, page) = login(&c, &b.url, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!(s, 429, "too soon, even with the right password: {page}");
    assert!(error_of(&page).contains("wait 1 second ") && error_of(&page).contains("秒待って"), "{page}");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (s, _) = login(&c, &b.url, demo::GRADUATE_EMAIL, "Wrong2024pass", "x").await?;
    assert_eq!(s, 401, "after the wait the attempt is checked again");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (s, _) = login(&c, &b.url, demo::GRADUATE_EMAIL, "Wrong2024pass", "x").await?;
    assert_eq!(s, 401);
    // five failures: blocked for the window, whatever is typed
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
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
    assert_eq!(b.sql("SELECT status || '|' || IFNULL(print_number, '-') FROM orders")?, "held|-");
    assert_eq!(b.sql("SELECT COUNT(*) FROM outbox")?, "0", "no number mailed");
    Ok(())
}
