//! Enrolled students (S-1..S-3, manual 001): the university directory (the
//! roster the registrar imports, and a real OpenLDAP slapd); the first login
//! registers an e-mail address whose link completes it ("メールアドレス設定完了"),
//! the next login with the second password empty sets a service-only second
//! password; a forgotten second password by mail to the registered address;
//! the roster's campus card linked at the first login.

use crate::accounts::*;
use crate::harness::*;
use anyhow::{Context, Result};
use fantoccini::Locator;
use shomei_backend::demo;

async fn student_login(b: &Backend, c: &reqwest::Client, uid: &str, pw: &str, second: &str) -> Result<(u16, String, String)> {
    student_login_at(b, c, "", uid, pw, second).await
}

/// The login at a chosen university ("": none chosen).
async fn student_login_at(b: &Backend, c: &reqwest::Client, university: &str, uid: &str, pw: &str, second: &str) -> Result<(u16, String, String)> {
    let mut form = vec![("user_id", uid), ("password", pw), ("second_password", second)];
    if !university.is_empty() {
        form.push(("university", university));
    }
    post_form(c, &format!("{}/student/login", b.url), &format!("{}/student/login", b.url), &form).await
}

/// First login -> address -> mail link; returns the link.
async fn first_login_link(b: &Backend, smtp: &Smtp, c: &reqwest::Client, uid: &str, pw: &str, email: &str) -> Result<String> {
    first_login_link_at(b, smtp, c, "", uid, pw, email).await
}

async fn first_login_link_at(b: &Backend, smtp: &Smtp, c: &reqwest::Client, university: &str, uid: &str, pw: &str, email: &str) -> Result<String> {
    let (s, path, page) = student_login_at(b, c, university, uid, pw, "").await?;
    anyhow::ensure!(s == 200 && path == "/student/email", "first login: {s} {path} {page}");
    let url = format!("{}/student/email", b.url);
    let (s, _, page) = post_form(c, &url, &url, &[("email", email), ("email_confirm", email)]).await?;
    anyhow::ensure!(s == 200, "{page}");
    let mail = smtp.wait_for_mail_with(email, "/student/email/confirm", MAIL_WAIT)?;
    link_in(&mail, &format!("{}/student/email/confirm?t=", b.url)).context("link")
}

/// The link completes the address (manual 001, 2.1 steps 7-8): its page's
/// button, then "メールアドレス設定完了" with a way to the login page.
async fn complete_address(c: &reqwest::Client, link: &str) -> Result<String> {
    let (s, _, page) = post_form(c, link, link, &[]).await?;
    anyhow::ensure!(s == 200 && page.contains("メールアドレス設定完了") && page.contains("E-mail address set"), "completion: {s} {page}");
    Ok(page)
}

/// The next login with the second password empty leads to setting it (2.2); returns the page after.
async fn set_second_at_next_login(b: &Backend, c: &reqwest::Client, uid: &str, pw: &str, second: &str) -> Result<(u16, String)> {
    set_second_at_next_login_at(b, c, "", uid, pw, second).await
}

async fn set_second_at_next_login_at(b: &Backend, c: &reqwest::Client, university: &str, uid: &str, pw: &str, second: &str) -> Result<(u16, String)> {
    let (s, path, page) = student_login_at(b, c, university, uid, pw, "").await?;
    anyhow::ensure!(s == 200 && path == "/student/second-password/setup", "login to the second-password setting: {s} {path} {page}");
    let url = format!("{}/student/second-password/setup", b.url);
    let (s, _, page) = post_form(c, &url, &url, &[("second_password", second), ("second_password_confirm", second)]).await?;
    Ok((s, page))
}

/// A student's whole first-login path by HTTP: address, link, completion, login, second password.
pub async fn register_student(b: &Backend, smtp: &Smtp, uid: &str, pw: &str, email: &str, second: &str) -> Result<()> {
    register_student_at(b, smtp, "", uid, pw, email, second).await
}

async fn register_student_at(b: &Backend, smtp: &Smtp, university: &str, uid: &str, pw: &str, email: &str, second: &str) -> Result<()> {
    let c = Backend::client();
    let link = first_login_link_at(b, smtp, &c, university, uid, pw, email).await?;
    complete_address(&c, &link).await?;
    let (s, page) = set_second_at_next_login_at(b, &c, university, uid, pw, second).await?;
    anyhow::ensure!(s == 200 && page.contains("Your second password is set"), "second password: {s} {page}");
    Ok(())
}

/// The first-login path in the browser as manual 001 walks it, each screen
/// checked: user ID + password with the second password empty -> the address
/// twice -> the mail's link -> "メールアドレス設定完了" -> the login page ->
/// user ID + password, second password still empty -> the second password
/// twice (the university password refused) -> done -> a login with all three.
async fn first_login_in_browser(browser: &Browser, b: &Backend, smtp: &Smtp, uid: &str, pw: &str, email: &str, second: &str) -> Result<()> {
    let w = &browser.client;
    let login = |with_second: Option<String>| {
        let (browser, uid, pw) = (browser, uid.to_string(), pw.to_string());
        async move {
            browser.wait_id("user_id").await?.send_keys(&uid).await?;
            browser.client.find(Locator::Id("password")).await?.send_keys(&pw).await?;
            if let Some(s) = with_second {
                browser.client.find(Locator::Id("second_password")).await?.send_keys(&s).await?;
            }
            browser.client.find(Locator::Id("login")).await?.click().await?;
            anyhow::Ok(())
        }
    };
    // 2.1: the first login asks for an address, typed twice
    w.goto(&format!("{}/login", b.url)).await?;
    browser.wait_id("student-login").await?.click().await?;
    login(None).await?;
    browser.wait_id("email_confirm").await?;
    browser.check_page().await.context("the student's e-mail page")?;
    w.find(Locator::Id("email")).await?.send_keys(email).await?;
    w.find(Locator::Id("email_confirm")).await?.send_keys(email).await?;
    w.find(Locator::Id("send")).await?.click().await?;
    browser.wait_id("message").await?;
    let mail = smtp.wait_for_mail_with(email, "/student/email/confirm", MAIL_WAIT)?;
    assert!(mail.contains("メールアドレスの登録が完了") && mail.contains("finish registering your e-mail address"), "{mail}");
    let link = link_in(&mail, &format!("{}/student/email/confirm?t=", b.url)).context("link")?;
    // the link's page completes the address: "メールアドレス設定完了", to the login page
    w.goto(&link).await?;
    browser.wait_id("send").await?;
    browser.check_page().await.context("the e-mail link's page")?;
    w.find(Locator::Id("send")).await?.click().await?;
    let done = browser.wait_id("message").await?.text().await?;
    assert!(done.contains("メールアドレス設定完了") && done.contains("E-mail address set"), "{done}");
    let account = b.sql(&format!("SELECT email || '|' || kind || '|' || (CASE WHEN second_password_hash IS NULL THEN 1 ELSE 0 END) FROM users WHERE directory_uid = '{}'", uid.to_lowercase()))?;
    assert_eq!(account, format!("{email}|student|1"), "the address is the account's; no second password yet");
    w.find(Locator::Id("next")).await?.click().await?;
    // 2.2: the next login, second password still empty, leads to setting it
    login(None).await?;
    browser.wait_id("second_password_confirm").await?;
    browser.check_page().await.context("the second password's first setting")?;
    assert_eq!(w.current_url().await?.path(), "/student/second-password/setup");
    assert!(w.execute("return document.getElementById('university_password') === null", vec![]).await?.as_bool() == Some(true), "the university password is not asked again");
    // not the university password (the directory says it is)
    w.find(Locator::Id("second_password")).await?.send_keys(pw).await?;
    w.find(Locator::Id("second_password_confirm")).await?.send_keys(pw).await?;
    w.find(Locator::Id("save")).await?.click().await?;
    let err = browser.wait_id("second_password-error").await?.text().await?;
    assert!(err.contains("大学") && err.contains("university account"), "{err}");
    w.find(Locator::Id("second_password")).await?.send_keys(second).await?;
    w.find(Locator::Id("second_password_confirm")).await?.send_keys(second).await?;
    w.find(Locator::Id("save")).await?.click().await?;
    let set = browser.wait_id("message").await?.text().await?;
    assert!(set.contains("第2パスワードの設定が完了しました") && set.contains("Your second password is set"), "{set}");
    assert_eq!(b.sql(&format!("SELECT CASE WHEN second_password_hash LIKE '$argon2id$%' THEN 1 ELSE 0 END FROM users WHERE email = '{email}'"))?, "1");
    // 2.3: from now on user ID + password + second password
    w.find(Locator::Id("next")).await?.click().await?;
    login(Some(second.to_string())).await?;
    browser.wait_id("new-order").await?;
    Ok(())
}

/// The registrar imports a roster CSV on the panel; (status, page).
async fn import_roster(b: &Backend, csv: String) -> Result<(u16, String)> {
    import_roster_as(b, &b.staff_client().await?, csv).await
}

async fn import_roster_as(b: &Backend, staff: &reqwest::Client, csv: String) -> Result<(u16, String)> {
    let url = format!("{}/admin/roster", b.url);
    let csrf = csrf_of(&staff, &url).await?;
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .part("file", reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("roster.csv"));
    let r = staff.post(&url).multipart(form).send().await?;
    let s = r.status().as_u16();
    Ok((s, r.text().await?))
}

fn screen_tag(screen: Screen) -> &'static str {
    if screen == Screen::Phone {
        "phone"
    } else {
        "desk"
    }
}

on_both_screens!(
    a_students_first_login_is_mail_link_then_completion_page_then_login_then_second_password_in_the_browser,
    a_students_first_login_is_mail_link_then_completion_page_then_login_then_second_password_in_the_browser_at_phone_width,
    a_students_first_login_is_mail_link_then_completion_page_then_login_then_second_password_in_the_browser_on
);
async fn a_students_first_login_is_mail_link_then_completion_page_then_login_then_second_password_in_the_browser_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let browser = Browser::start_on(screen).await?;
    let email = format!("jiro.sato.{}@campus.example.jp", screen_tag(screen));
    // S-1/S-2, manual 001 2.1-2.3, every screen in Chromium
    first_login_in_browser(&browser, &b, &smtp, demo::STUDENT_ID, demo::STUDENT_PASSWORD, &email, "Service2024jr").await?;
    let text = browser.body_text().await?;
    assert!(text.contains("佐藤 次郎"), "[{screen:?}] the directory's name: {text}");
    browser.close().await;

    // S-3: later logins need all three
    let c = Backend::client();
    let (s, _, _) = student_login(&b, &c, demo::STUDENT_ID, demo::STUDENT_PASSWORD, "").await?;
    assert_eq!(s, 401, "once set, the second password is required");
    let (s, path, _) = student_login(&b, &c, demo::STUDENT_ID, demo::STUDENT_PASSWORD, "Service2024jr").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    let order_page = c.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(order_page.contains("L24-0101"), "the directory's student number is the student ID: {order_page}");
    assert!(order_page.contains("Certificate of Enrolment") && !order_page.contains("Certificate of Graduation"), "a student is offered what students may order: {order_page}");
    // the address link was used once
    let mail = smtp.wait_for_mail_with(&email, "/student/email/confirm", MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/student/email/confirm?t=", b.url)).context("link")?;
    let r = Backend::client().get(&link).send().await?;
    assert_eq!(r.status(), 400, "the link is used up");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roster_imports_whole_or_not_at_all() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let head = "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code,email\n";
    // one bad column in row 3 and a duplicate in row 4: nothing is imported, both are named
    let bad = format!("{head}t001,Initial2024a,田中 一,タナカ ハジメ,TANAKA Hajime,S24-0011,LET,JLIT,\nt002,short,山本 二,ヤマモト ジ,YAMAMOTO Ji,S24-0012,LET,JLIT,\nt001,Initial2024b,田中 三,タナカ サン,TANAKA San,S24-0013,LET,JLIT,\n");
    let (s, page) = import_roster(&b, bad).await?;
    assert_eq!(s, 400);
    assert!(page.contains("line 3 (password)") && page.contains("line 4 (user_id)") && page.contains("the same as line 2"), "{page}");
    assert_eq!(b.sql("SELECT count(*) FROM directory_roster")?, "1", "only the demo student: nothing half-imported");
    // a file without the optional columns, as before
    let (s, page) = import_roster(&b, format!("\u{feff}{head}t001,Initial2024a,田中 一,タナカ ハジメ,TANAKA Hajime,S24-0011,LET,JLIT,\n")).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(element_text(&page, "roster-count").as_deref(), Some("2"));
    let hash = b.sql("SELECT password_hash FROM directory_roster WHERE user_id = 't001'")?;
    assert!(hash.starts_with("$argon2id$"), "plain initial passwords are hashed on import");
    assert_eq!(b.sql("SELECT card_uid FROM directory_roster WHERE user_id = 't001'")?, "", "no card column, no card");

    // wrong password and unknown ID: one message
    let c = Backend::client();
    let (s1, _, p1) = student_login(&b, &c, "t001", "Wrong2024aa", "").await?;
    let (s2, _, p2) = student_login(&b, &c, "nobody", "Wrong2024aa", "").await?;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(element_text(&p1, "error"), element_text(&p2, "error"));
    // the imported student's first login
    register_student(&b, &smtp, "t001", "Initial2024a", "hajime@campus.example.jp", "Second2024hj").await?;
    let (s, path, _) = student_login(&b, &Backend::client(), "t001", "Initial2024a", "Second2024hj").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_log_in_against_a_real_ldap_directory() -> Result<()> {
    let smtp = Smtp::start()?;
    let mut ldap = Ldap::start()?;
    let url = ldap.url.clone();
    let b = Backend::start_with(Some(smtp.port), |c| {
        c.directory.kind = "ldap".into();
        c.directory.ldap.url = url;
        c.directory.ldap.base_dn = LDAP_BASE.into();
    })
    .await?;
    let c = Backend::client();
    for (uid, pw) in [("alice", "wrongpw"), ("alice", ""), ("*", "alicepw"), ("alice)(uid=*", "alicepw"), ("carol", "alicepw")] {
        let (s, _, page) = student_login(&b, &Backend::client(), uid, pw, "").await?;
        assert_eq!(s, 401, "{uid}/{pw}: {page}");
    }
    let link = first_login_link(&b, &smtp, &c, "alice", "alicepw", "alice@campus.test").await?;
    complete_address(&c, &link).await?;
    // the next login, second password empty, sets it (the directory is asked it is not the university password)
    let (s, page) = set_second_at_next_login(&b, &c, "alice", "alicepw", "Alice2024svc").await?;
    assert_eq!(s, 200, "{page}");
    let (s, path, page) = student_login(&b, &Backend::client(), "alice", "alicepw", "Alice2024svc").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"), "{page}");
    assert!(page.contains("有栖 花子"), "the name comes from the directory: {page}");
    // the directory down: a clear "cannot be reached", not "wrong password"
    ldap.stop();
    let (s, _, page) = student_login(&b, &Backend::client(), "alice", "alicepw", "Alice2024svc").await?;
    assert_eq!(s, 401);
    assert!(page.contains("cannot be reached"), "{page}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_ldaps_and_starttls_a_student_id_typed_in_another_case_reaches_the_same_account_not_a_second_one() -> Result<()> {
    let smtp = Smtp::start()?;
    let ca = TestCa::new()?;
    let mut ldap = Ldap::start_with_tls(Some(&ca))?;
    let (ldaps, ca_file) = (ldap.ldaps_url.clone(), ca.cert.clone());
    let mut b = Backend::start_with(Some(smtp.port), |c| {
        c.directory.kind = "ldap".into();
        c.directory.ldap.url = ldaps;
        c.directory.ldap.ca_file = Some(ca_file);
        c.directory.ldap.base_dn = LDAP_BASE.into();
    })
    .await?;
    // over ldaps://, with the university's CA
    let c = Backend::client();
    let link = first_login_link(&b, &smtp, &c, "alice", "alicepw", "alice@campus.test").await?;
    complete_address(&c, &link).await?;
    let (s, page) = set_second_at_next_login(&b, &c, "alice", "alicepw", "Alice2024svc").await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(b.sql("SELECT directory_uid FROM users WHERE directory_uid IS NOT NULL")?, "alice");
    // the same student typed in capitals: her university password with an empty
    // second password is no "first login" (that would open a second account)
    let (s, path, page) = student_login(&b, &Backend::client(), "ALICE", "alicepw", "").await?;
    assert_eq!((s, path.as_str()), (401, "/student/login"), "{page}");
    let (s, path, _) = student_login(&b, &Backend::client(), "Alice", "alicepw", "Alice2024svc").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"), "the same account, however the ID is typed");
    assert_eq!(b.sql("SELECT COUNT(*) FROM users WHERE directory_uid IS NOT NULL")?, "1");

    // StartTLS on ldap://: without the university's CA the directory is not trusted...
    b.stop().await;
    let starttls = ldap.url.replace("127.0.0.1", "localhost");
    let plain_url = starttls.clone();
    b.restart_with(|c| {
        c.directory.ldap.url = plain_url;
        c.directory.ldap.starttls = true;
        c.directory.ldap.ca_file = None;
    })
    .await?;
    let (s, _, page) = student_login(&b, &Backend::client(), "alice", "alicepw", "Alice2024svc").await?;
    assert_eq!(s, 401);
    assert!(page.contains("cannot be reached"), "an untrusted certificate is no directory: {page}");
    // ...with it, the student logs in
    b.stop().await;
    let ca_file = ca.cert.clone();
    b.restart_with(|c| c.directory.ldap.ca_file = Some(ca_file)).await?;
    let (s, path, _) = student_login(&b, &Backend::client(), "alice", "alicepw", "Alice2024svc").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    ldap.stop();

    // a directory on another host over plain ldap:// is refused at start, naming the key
    let mut cfg = shomei_backend::config::Config::default();
    cfg.directory.kind = "ldap".into();
    cfg.directory.ldap.url = "ldap://ldap.campus.example.ac.jp:389".into();
    let err = cfg.validate().expect_err("plain LDAP to another host");
    assert!(err.contains("directory.ldap.url"), "{err}");
    cfg.directory.ldap.starttls = true;
    assert!(cfg.validate().is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_students_first_login_leaves_another_students_onboarding_open() -> Result<()> {
    let smtp = Smtp::start()?;
    let ldap = Ldap::start()?;
    let url = ldap.url.clone();
    let b = Backend::start_with(Some(smtp.port), |c| {
        c.directory.kind = "ldap".into();
        c.directory.ldap.url = url;
        c.directory.ldap.base_dn = LDAP_BASE.into();
    })
    .await?;
    // alice logs in for the first time and is asked for an address...
    let alice = Backend::client();
    let (s, path, page) = student_login(&b, &alice, "alice", "alicepw", "").await?;
    assert_eq!((s, path.as_str()), (200, "/student/email"), "{page}");
    // ...meanwhile bob does the same at another computer
    let bob = Backend::client();
    let (s, path, _) = student_login(&b, &bob, "bob", "bobpw", "").await?;
    assert_eq!((s, path.as_str()), (200, "/student/email"));
    // alice's step still works: her link arrives
    let email_url = format!("{}/student/email", b.url);
    let (s, _, page) = post_form(&alice, &email_url, &email_url, &[("email", "alice@campus.test"), ("email_confirm", "alice@campus.test")]).await?;
    assert_eq!(s, 200, "{page}");
    let mail = smtp.wait_for_mail_with("alice@campus.test", "/student/email/confirm", MAIL_WAIT)?;
    assert!(link_in(&mail, &format!("{}/student/email/confirm?t=", b.url)).is_some());
    let (s, _, page) = post_form(&bob, &email_url, &email_url, &[("email", "bob@campus.test"), ("email_confirm", "bob@campus.test")]).await?;
    assert_eq!(s, 200, "{page}");
    smtp.wait_for_mail_with("bob@campus.test", "/student/email/confirm", MAIL_WAIT)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_logins_hash_in_the_one_pool_and_a_burst_is_told_to_retry() -> Result<()> {
    let b = Backend::start_with(None, |c| c.security.max_concurrent_hashes = 1).await?;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let url = b.url.clone();
        tasks.push(tokio::spawn(async move {
            let c = Backend::client();
            let login = format!("{url}/student/login");
            let page = c.get(&login).send().await?.text().await?;
            let csrf = form_value(&page, "csrf").context("csrf")?;
            // a different ID each, so the login throttle stays out of it (an unknown ID costs a hash too)
            let uid = if i == 0 { demo::STUDENT_ID.to_string() } else { format!("nobody{i}") };
            let r = c
                .post(&login)
                .form(&[("csrf", csrf.as_str()), ("user_id", uid.as_str()), ("password", "Wrong2024pass"), ("second_password", "")])
                .send()
                .await?;
            anyhow::Ok((r.status().as_u16(), r.headers().get("retry-after").is_some()))
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let (s, retry) = t.await??;
        assert!(s == 401 || (s == 429 && retry), "{s} retry-after {retry}");
        statuses.push(s);
    }
    assert!(statuses.contains(&429), "with one hashing slot, six directory checks at once are not all run: {statuses:?}");
    assert!(statuses.contains(&401), "{statuses:?}");
    Ok(())
}

on_both_screens!(
    a_forgotten_second_password_is_reset_by_mail_to_the_registered_address_the_old_one_stops_the_new_one_works_and_the_link_works_once,
    a_forgotten_second_password_is_reset_by_mail_to_the_registered_address_the_old_one_stops_the_new_one_works_and_the_link_works_once_at_phone_width,
    a_forgotten_second_password_is_reset_by_mail_to_the_registered_address_the_old_one_stops_the_new_one_works_and_the_link_works_once_on
);
async fn a_forgotten_second_password_is_reset_by_mail_to_the_registered_address_the_old_one_stops_the_new_one_works_and_the_link_works_once_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let email = format!("forgetful.{}@campus.example.jp", screen_tag(screen));
    register_student(&b, &smtp, demo::STUDENT_ID, demo::STUDENT_PASSWORD, &email, "Service2024jr").await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    // manual 001 2.4 (c): "第2パスワードを忘れた場合" on the student login page, the registered address
    w.goto(&format!("{}/student/login", b.url)).await?;
    browser.wait_id("forgot").await?.click().await?;
    browser.wait_id("email").await?.send_keys(&email).await?;
    w.find(Locator::Id("send")).await?.click().await?;
    browser.wait_id("message").await?;
    let mail = smtp.wait_for_mail_with(&email, "/student/second-password/reset", MAIL_WAIT)?;
    assert!(mail.contains("第2パスワードの再設定") && mail.contains("Reset your second password"), "{mail}");
    let link = link_in(&mail, &format!("{}/student/second-password/reset?t=", b.url)).context("reset link")?;
    // the link: the new second password twice, not the university password again
    w.goto(&link).await?;
    browser.wait_id("second_password_confirm").await?;
    browser.check_page().await.context("the second password's reset page")?;
    let asked = w.execute("return document.getElementById('university_password') === null", vec![]).await?;
    assert_eq!(asked.as_bool(), Some(true), "[{screen:?}] the university password is not asked");
    w.find(Locator::Id("second_password")).await?.send_keys(demo::STUDENT_PASSWORD).await?;
    w.find(Locator::Id("second_password_confirm")).await?.send_keys(demo::STUDENT_PASSWORD).await?;
    w.find(Locator::Id("save")).await?.click().await?;
    let err = browser.wait_id("second_password-error").await?.text().await?;
    assert!(err.contains("university account"), "the university password is refused as a second password: {err}");
    w.find(Locator::Id("second_password")).await?.send_keys("Renewed2025jr").await?;
    w.find(Locator::Id("second_password_confirm")).await?.send_keys("Renewed2025jr").await?;
    w.find(Locator::Id("save")).await?.click().await?;
    let done = browser.wait_id("message").await?.text().await?;
    assert!(done.contains("第2パスワードの設定が完了しました") && done.contains("Your second password is set"), "{done}");
    browser.close().await;

    // the old second password stops working; the new one works
    let (s, _, _) = student_login(&b, &Backend::client(), demo::STUDENT_ID, demo::STUDENT_PASSWORD, "Service2024jr").await?;
    assert_eq!(s, 401, "the old second password no longer logs in");
    let (s, path, _) = student_login(&b, &Backend::client(), demo::STUDENT_ID, demo::STUDENT_PASSWORD, "Renewed2025jr").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    // the link works once: its page and its form refuse it now
    let r = Backend::client().get(&link).send().await?;
    assert_eq!(r.status(), 400);
    assert!(r.text().await?.contains("already been used"), "clear message");
    let c = Backend::client();
    let csrf = csrf_of(&c, &format!("{}/student/login", b.url)).await?;
    let t = link.split("t=").nth(1).unwrap_or("").to_string();
    let r = c
        .post(format!("{}/student/second-password/reset", b.url))
        .form(&[("csrf", csrf.as_str()), ("t", t.as_str()), ("second_password", "Again2026jrx"), ("second_password_confirm", "Again2026jrx")])
        .send()
        .await?;
    assert_eq!(r.status(), 400, "a used link sets nothing");
    let (s, path, _) = student_login(&b, &Backend::client(), demo::STUDENT_ID, demo::STUDENT_PASSWORD, "Renewed2025jr").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"), "still the second password the link set");
    assert_eq!(b.sql("SELECT count(*) FROM one_time_tokens WHERE purpose = 'second_password_reset' AND used_at IS NOT NULL")?, "1");

    // no enumeration: an address no student has gets the same answer
    let url = format!("{}/student/second-password/forgot", b.url);
    let (s1, _, known) = post_form(&Backend::client(), &url, &url, &[("email", email.as_str())]).await?;
    let (s2, _, unknown) = post_form(&Backend::client(), &url, &url, &[("email", "nobody@campus.example.jp")]).await?;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(element_text(&known, "message"), element_text(&unknown, "message"), "no enumeration");
    Ok(())
}

on_both_screens!(
    the_rosters_campus_card_is_linked_at_the_first_login_and_a_card_another_account_holds_is_left_alone,
    the_rosters_campus_card_is_linked_at_the_first_login_and_a_card_another_account_holds_is_left_alone_at_phone_width,
    the_rosters_campus_card_is_linked_at_the_first_login_and_a_card_another_account_holds_is_left_alone_on
);
async fn the_rosters_campus_card_is_linked_at_the_first_login_and_a_card_another_account_holds_is_left_alone_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let graduate = b.sql(&format!("SELECT user_id FROM ic_cards WHERE uid = '{}' AND unlinked_at IS NULL", demo::CARD_UID))?;
    assert!(!graduate.is_empty(), "the demo graduate holds the demo card");
    // the roster with its optional card_id column (as printed on the card, spaces and all)
    let head = "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code,email,card_id\n";
    let csv = format!(
        "{head}t101,Initial2024c,田中 一,タナカ ハジメ,TANAKA Hajime,S24-0101,LET,JLIT,,01 14 a2 b3 c4 d5 e6 f7\n\
         t102,Initial2024d,山本 二,ヤマモト ジ,YAMAMOTO Ji,S24-0102,LET,JLIT,,{}\n",
        demo::CARD_UID
    );
    let (s, page) = import_roster(&b, csv).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(b.sql("SELECT card_uid FROM directory_roster WHERE user_id = 't101'")?, "0114A2B3C4D5E6F7");
    assert_eq!(b.sql("SELECT count(*) FROM ic_cards WHERE uid = '0114A2B3C4D5E6F7'")?, "0", "not linked before the student's first login");

    // the first login in the browser links the roster's card to the new account
    let browser = Browser::start_on(screen).await?;
    first_login_in_browser(&browser, &b, &smtp, "t101", "Initial2024c", "hajime.tanaka@campus.example.jp", "Second2024hj").await?;
    browser.close().await;
    let user = b.sql("SELECT id FROM users WHERE directory_uid = 't101'")?;
    assert_eq!(
        b.sql("SELECT user_id || '|' || status || '|' || label FROM ic_cards WHERE uid = '0114A2B3C4D5E6F7' AND unlinked_at IS NULL")?,
        format!("{user}|active|学生証 / Student card")
    );
    assert_eq!(b.sql(&format!("SELECT count(*) FROM audit_log WHERE actor = 'user:{user}' AND action = 'card.link_roster'"))?, "1");

    // a card another account holds stays with it; the audit log says why the student got none
    register_student(&b, &smtp, "t102", "Initial2024d", "ji.yamamoto@campus.example.jp", "Second2024yj").await?;
    let other = b.sql("SELECT id FROM users WHERE directory_uid = 't102'")?;
    assert_eq!(b.sql(&format!("SELECT user_id FROM ic_cards WHERE uid = '{}' AND unlinked_at IS NULL", demo::CARD_UID))?, graduate);
    assert_eq!(
        b.sql(&format!("SELECT count(*) FROM audit_log WHERE actor = 'user:{other}' AND action = 'card.roster_taken' AND target = 'card:{}'", demo::CARD_UID))?,
        "1"
    );
    assert_eq!(b.sql(&format!("SELECT count(*) FROM ic_cards WHERE user_id = {other}"))?, "0");
    // the student still logs in (the taken card stops nothing)
    let (s, path, _) = student_login(&b, &Backend::client(), "t102", "Initial2024d", "Second2024yj").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    Ok(())
}

/// Each university checks its own students. Kita, added in the panel, adds
/// its faculty and department and imports its own roster, in which the
/// first university's demo student ID is someone else: the login page asks
/// which university, each university's password works at its own only, and
/// the same ID becomes two students, each on their own university's record.
/// The platform operator then sets Kita's directory to its LDAP server in
/// the panel (the search account's password sealed, never stored in clear):
/// the next login at Kita asks that server, Kita's roster no longer lets
/// anyone in, the first university's roster is untouched, and Kita's own
/// administrator may not change where its students are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_university_checks_its_own_students_against_its_own_roster_or_ldap_server() -> Result<()> {
    use crate::staff::{first_login, panel_login, plain_client};
    let smtp = Smtp::start()?;
    let ldap = Ldap::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let platform = plain_client();
    panel_login(&b, &platform, demo::STAFF_LOGIN, demo::STAFF_PASSWORD, demo::STAFF_TOTP_SECRET).await?;
    // with one university there is nothing to choose
    let login_page = Backend::client().get(format!("{}/student/login", b.url)).send().await?.text().await?;
    assert!(!login_page.contains("id=\"university\""), "{login_page}");

    let unis_url = format!("{}/admin/universities", b.url);
    let (s, _, page) = post_form(&platform, &unis_url, &unis_url, &[("name_ja", "北大学"), ("name_en", "Kita University"), ("timezone", "Asia/Tokyo"), ("admin_login", "kita-admin")]).await?;
    assert_eq!(s, 200, "{page}");
    let kita_admin = first_login(&b, "kita-admin", &element_text(&page, "new-password").context("password")?, &element_text(&page, "totp-secret").context("secret")?).await?;
    let kita = b.sql("SELECT id FROM universities WHERE name_en = 'Kita University'")?;

    // Kita's faculty and department, with the codes its directory uses (the first university has the same codes)
    let cat_url = format!("{}/admin/catalogue", b.url);
    let faculties = format!("{cat_url}/faculties");
    let (s, _, page) = post_form(&kita_admin, &cat_url, &faculties, &[("faculty", "0"), ("code", "LET"), ("name_ja", "北大学文学部"), ("name_en", "Kita Faculty of Letters")]).await?;
    assert_eq!(s, 303, "{page}");
    let faculty = b.sql(&format!("SELECT id FROM faculties WHERE university_id = {kita} AND code = 'LET'"))?;
    let (s, _, page) = post_form(&kita_admin, &cat_url, &faculties, &[("faculty", faculty.as_str()), ("code", "JLIT"), ("name_ja", "北大学国文学科"), ("name_en", "Kita Japanese Literature")]).await?;
    assert_eq!(s, 303, "{page}");
    let (s, _, page) = post_form(&kita_admin, &cat_url, &faculties, &[("faculty", "0"), ("code", "LET"), ("name_ja", "二重"), ("name_en", "Twice")]).await?;
    assert!(s == 400 && page.contains("This code is already in use."), "{s} {page}");
    // a department under the first university's faculty is no faculty of Kita's
    let (s, _, _) = post_form(&kita_admin, &cat_url, &faculties, &[("faculty", "1"), ("code", "X"), ("name_ja", "乗っ取り"), ("name_en", "Taken over")]).await?;
    assert_eq!(s, 404);
    let page = kita_admin.get(&cat_url).send().await?.text().await?;
    assert!(page.contains("北大学文学部") && page.contains("北大学国文学科") && !page.contains("日本文学科"), "Kita's own faculties only: {page}");

    // Kita's own roster: the first university's demo student ID is a Kita student too
    let first_roster = b.sql("SELECT COUNT(*) FROM directory_roster WHERE university_id = 1")?;
    let csv = format!(
        "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code\n{},Kita2024pass,北 太郎,キタ タロウ,KITA Taro,K24-0007,LET,JLIT\n",
        demo::STUDENT_ID
    );
    let (s, page) = import_roster_as(&b, &kita_admin, csv).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(element_text(&page, "roster-count").as_deref(), Some("1"), "Kita's roster holds its one student");
    assert_eq!(element_text(&page, "login-link").map(|l| l.replace("&#x2f;", "/")), Some(format!("{}/student/login?university={kita}", b.url)));
    assert_eq!(b.sql("SELECT COUNT(*) FROM directory_roster WHERE university_id = 1")?, first_roster, "the first university's roster is untouched");

    // the login page now asks which university; Kita's own link preselects it
    let login_page = Backend::client().get(format!("{}/student/login?university={kita}", b.url)).send().await?.text().await?;
    assert!(login_page.contains("id=\"university\""), "{login_page}");
    assert!(login_page.contains(&format!("<option value=\"{kita}\" selected>北大学 / Kita University</option>")), "{login_page}");
    let (s, _, page) = student_login(&b, &Backend::client(), demo::STUDENT_ID, "Kita2024pass", "").await?;
    assert!(s == 400 && element_text(&page, "error").is_some_and(|e| e.ends_with("Choose your university.")), "{s} {page}");
    // each password at its own university only
    let (s, _, _) = student_login_at(&b, &Backend::client(), &kita, demo::STUDENT_ID, demo::STUDENT_PASSWORD, "").await?;
    assert_eq!(s, 401, "the first university's password at Kita");
    let (s, _, _) = student_login_at(&b, &Backend::client(), "1", demo::STUDENT_ID, "Kita2024pass", "").await?;
    assert_eq!(s, 401, "Kita's password at the first university");

    // the same ID, two students: one at Kita...
    let kita_student = Backend::client();
    let link = first_login_link_at(&b, &smtp, &kita_student, &kita, demo::STUDENT_ID, "Kita2024pass", "taro@kita.example.ac.jp").await?;
    complete_address(&kita_student, &link).await?;
    let (s, page) = set_second_at_next_login_at(&b, &kita_student, &kita, demo::STUDENT_ID, "Kita2024pass", "KitaSecond24").await?;
    assert!(s == 200 && page.contains("Your second password is set"), "{s} {page}");
    let (s, path, page) = student_login_at(&b, &Backend::client(), &kita, demo::STUDENT_ID, "Kita2024pass", "KitaSecond24").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"), "{page}");
    assert!(page.contains("北 太郎"), "Kita's record: {page}");
    // ...and one at the first university, a separate account on the first university's record
    register_student_at(&b, &smtp, "1", demo::STUDENT_ID, demo::STUDENT_PASSWORD, "jiro@campus.example.jp", "FirstSecond24").await?;
    let (s, path, page) = student_login_at(&b, &Backend::client(), "1", demo::STUDENT_ID, demo::STUDENT_PASSWORD, "FirstSecond24").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"), "{page}");
    assert!(page.contains("佐藤 次郎") && !page.contains("北 太郎"), "the first university's record: {page}");
    // Kita's second password does not open the first university's account
    let (s, _, _) = student_login_at(&b, &Backend::client(), "1", demo::STUDENT_ID, demo::STUDENT_PASSWORD, "KitaSecond24").await?;
    assert_eq!(s, 401);
    let accounts = b.sql(&format!(
        "SELECT u.email || '|' || u.directory_university_id || '|' || r.university_id || '|' || f.code || '|' || f.university_id
         FROM users u JOIN student_records r ON r.user_id = u.id JOIN faculties f ON f.id = r.faculty_id WHERE lower(u.directory_uid) = '{}' ORDER BY u.id",
        demo::STUDENT_ID
    ))?;
    assert_eq!(accounts, format!("taro@kita.example.ac.jp|{kita}|{kita}|LET|{kita}\njiro@campus.example.jp|1|1|LET|1"));

    // the platform operator sets Kita's directory to its LDAP server
    let dir_url = format!("{}/admin/universities/{kita}/directory", b.url);
    let r = kita_admin.get(&dir_url).send().await?;
    let (s, body) = (r.status().as_u16(), r.text().await?);
    assert!(s == 403 && body.contains(crate::staff::NO_ROLE_WORDS), "Kita's own administrator may not: {s}");
    let ldap_form = |url: &'static str| {
        vec![("kind", "ldap"), ("url", url), ("base_dn", LDAP_BASE), ("user_filter", "(uid={user})"), ("bind_dn", "cn=admin,dc=campus,dc=test"), ("bind_password", "secret"),
             ("attr_uid", "uid"), ("attr_name_kanji", "cn"), ("attr_name_kana", "displayName"), ("attr_name_roman", "cn"), ("attr_student_no", "employeeNumber"),
             ("attr_faculty", "ou"), ("attr_department", "departmentNumber"), ("attr_email", "mail"), ("attr_card_id", ""), ("timeout_s", "5")]
    };
    // plain LDAP to another host is refused, in words, and nothing changes
    let (s, _, page) = post_form(&platform, &dir_url, &dir_url, &ldap_form("ldap://ldap.kita.example.ac.jp:389")).await?;
    assert!(s == 400 && element_text(&page, "error").is_some_and(|e| e.ends_with("Give the server as ldaps:&#x2f;&#x2f;, or ldap:&#x2f;&#x2f; with StartTLS (plain ldap:&#x2f;&#x2f; only to a server on this machine).")), "{s} {page}");
    assert_eq!(b.sql(&format!("SELECT coalesce(directory_kind, '-') FROM universities WHERE id = {kita}"))?, "-");
    let url: &'static str = Box::leak(ldap.url.clone().into_boxed_str());
    let (s, _, page) = post_form(&platform, &dir_url, &dir_url, &ldap_form(url)).await?;
    assert!(s == 200 && page.contains("id=\"notice\""), "{s} {page}");
    let stored = b.sql(&format!("SELECT directory_kind || '|' || directory_ldap || '|' || directory_bind_sealed FROM universities WHERE id = {kita}"))?;
    assert!(stored.starts_with("ldap|") && stored.contains(url) && !stored.contains("secret"), "the bind password is sealed: {stored}");
    let list = platform.get(&unis_url).send().await?.text().await?;
    assert!(list.contains(&format!("id=\"directory-{kita}\">LDAP</a>")) && list.contains("id=\"directory-1\">設定ファイル &#x2f; configuration file</a>"), "{list}");
    let page = kita_admin.get(format!("{}/admin/roster", b.url)).send().await?.text().await?;
    assert!(page.contains("id=\"directory-ldap\""), "Kita's staff are told the roster is not used: {page}");
    let page = platform.get(format!("{}/admin/roster", b.url)).send().await?.text().await?;
    assert!(!page.contains("id=\"directory-ldap\""), "{page}");

    // the next login at Kita asks its LDAP server (through the sealed search account): its roster no longer lets anyone in
    let (s, _, _) = student_login_at(&b, &Backend::client(), &kita, demo::STUDENT_ID, "Kita2024pass", "KitaSecond24").await?;
    assert_eq!(s, 401, "Kita's roster is not asked any more");
    let (s, path, page) = student_login_at(&b, &Backend::client(), &kita, "alice", "alicepw", "").await?;
    assert_eq!((s, path.as_str()), (200, "/student/email"), "alice's first login at Kita: {page}");
    let (s, _, _) = student_login_at(&b, &Backend::client(), "1", "alice", "alicepw", "").await?;
    assert_eq!(s, 401, "the first university's roster knows no alice");
    // the first university's students are still checked against its roster
    let (s, path, _) = student_login_at(&b, &Backend::client(), "1", demo::STUDENT_ID, demo::STUDENT_PASSWORD, "FirstSecond24").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    let audit = platform.get(format!("{}/admin/audit", b.url)).send().await?.text().await?;
    assert!(audit.contains("university.directory") && !audit.contains("secret"), "{audit}");
    Ok(())
}

/// With two universities on the service the student login page asks which
/// one, in the browser: the choice is labelled in both languages (and the
/// page passes the accessibility checks), a university's own link preselects
/// it, the other university's directory does not know the user (a clear
/// message, the choice kept), and the right one leads on to the first login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_universities_a_student_picks_theirs_on_the_login_page_in_the_browser() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let kita = b.sql("INSERT INTO universities (name_ja, name_en, timezone, system_fee) VALUES ('北大学', 'Kita University', 'Asia/Tokyo', 100) RETURNING id")?;
    let browser = Browser::start().await?;
    let w = &browser.client;
    let login = |university: String| {
        let browser = &browser;
        async move {
            browser.wait_id("university").await?.select_by_value(&university).await?;
            browser.client.find(Locator::Id("user_id")).await?.clear().await?;
            browser.client.find(Locator::Id("user_id")).await?.send_keys(demo::STUDENT_ID).await?;
            browser.client.find(Locator::Id("password")).await?.send_keys(demo::STUDENT_PASSWORD).await?;
            browser.client.find(Locator::Id("login")).await?.click().await?;
            anyhow::Ok(())
        }
    };
    w.goto(&format!("{}/student/login?university={kita}", b.url)).await?;
    let label = browser.wait_id("university").await?;
    let options = label.text().await?;
    assert!(options.contains("北大学 / Kita University") && options.contains("証明大学 / Shomei University"), "{options}");
    assert_eq!(label.prop("value").await?.as_deref(), Some(kita.as_str()), "Kita's link preselects Kita");
    let said = w.find(Locator::Css("label[for=university]")).await?.text().await?;
    assert!(said.contains("大学") && said.contains("University"), "the choice is labelled in both languages: {said:?}");
    browser.check_page().await.context("the student login page with two universities")?;
    // Kita's directory does not know the first university's student
    login(kita.clone()).await?;
    let error = browser.wait_text("error", "not correct").await?;
    assert!(error.contains("ユーザID、パスワード、または第2パスワードが正しくありません。"), "{error}");
    assert_eq!(browser.wait_id("university").await?.prop("value").await?.as_deref(), Some(kita.as_str()), "the choice is kept");
    // their own university: on to the first login's e-mail address
    login("1".into()).await?;
    browser.wait_id("email_confirm").await?;
    assert_eq!(w.current_url().await?.path(), "/student/email");
    Ok(())
}
