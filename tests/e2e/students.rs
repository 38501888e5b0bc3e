//! Enrolled students (S-1..S-3): the university directory (the roster the
//! registrar imports, and a real OpenLDAP slapd), first login with e-mail
//! registration and a service-only second password, forgotten second password.

use crate::accounts::*;
use crate::harness::*;
use anyhow::{Context, Result};
use fantoccini::Locator;
use shomei_backend::demo;

async fn student_login(b: &Backend, c: &reqwest::Client, uid: &str, pw: &str, second: &str) -> Result<(u16, String, String)> {
    post_form(c, &format!("{}/student/login", b.url), &format!("{}/student/login", b.url), &[("user_id", uid), ("password", pw), ("second_password", second)]).await
}

/// First login -> address -> mail link; returns the link.
async fn first_login_link(b: &Backend, smtp: &Smtp, c: &reqwest::Client, uid: &str, pw: &str, email: &str) -> Result<String> {
    let (s, path, page) = student_login(b, c, uid, pw, "").await?;
    anyhow::ensure!(s == 200 && path == "/student/email", "first login: {s} {path} {page}");
    let url = format!("{}/student/email", b.url);
    let (s, _, page) = post_form(c, &url, &url, &[("email", email), ("email_confirm", email)]).await?;
    anyhow::ensure!(s == 200, "{page}");
    let mail = smtp.wait_for_mail_with(email, "/student/email/confirm", MAIL_WAIT)?;
    link_in(&mail, &format!("{}/student/email/confirm?t=", b.url)).context("link")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_logs_in_with_the_university_id_and_registers_in_the_browser() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let browser = Browser::start().await?;
    let w = &browser.client;
    let email = "jiro.sato@campus.example.jp";

    // S-1/S-2: user ID + university password, second password empty the first time
    w.goto(&format!("{}/login", b.url)).await?;
    w.find(Locator::Id("student-login")).await?.click().await?;
    browser.wait_id("user_id").await?.send_keys(demo::STUDENT_ID).await?;
    w.find(Locator::Id("password")).await?.send_keys(demo::STUDENT_PASSWORD).await?;
    w.find(Locator::Id("login")).await?.click().await?;
    browser.wait_id("email_confirm").await?;
    w.find(Locator::Id("email")).await?.send_keys(email).await?;
    w.find(Locator::Id("email_confirm")).await?.send_keys(email).await?;
    w.find(Locator::Id("send")).await?.click().await?;
    browser.wait_id("message").await?;
    let mail = smtp.wait_for_mail(email, MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/student/email/confirm?t=", b.url)).context("link")?;

    // the link: university password again, and a second password that is not it
    w.goto(&link).await?;
    browser.wait_id("university_password").await?.send_keys(demo::STUDENT_PASSWORD).await?;
    w.find(Locator::Id("second_password")).await?.send_keys(demo::STUDENT_PASSWORD).await?;
    w.find(Locator::Id("second_password_confirm")).await?.send_keys(demo::STUDENT_PASSWORD).await?;
    w.find(Locator::Id("save")).await?.click().await?;
    let err = browser.wait_id("second_password-error").await?.text().await?;
    assert!(err.contains("大学") && err.contains("university account"), "{err}");
    w.find(Locator::Id("university_password")).await?.send_keys(demo::STUDENT_PASSWORD).await?;
    w.find(Locator::Id("second_password")).await?.send_keys("Service2024jr").await?;
    w.find(Locator::Id("second_password_confirm")).await?.send_keys("Service2024jr").await?;
    w.find(Locator::Id("save")).await?.click().await?;
    browser.wait_id("new-order").await?;
    let text = browser.body_text().await?;
    assert!(text.contains("佐藤 次郎") && text.contains("You are registered"), "{text}");
    browser.close().await;

    // S-3: later logins need all three
    let c = Backend::client();
    let (s, _, _) = student_login(&b, &c, demo::STUDENT_ID, demo::STUDENT_PASSWORD, "").await?;
    assert_eq!(s, 401, "once registered, the second password is required");
    let (s, path, _) = student_login(&b, &c, demo::STUDENT_ID, demo::STUDENT_PASSWORD, "Service2024jr").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    let order_page = c.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(order_page.contains("L24-0101"), "the directory's student number is the student ID: {order_page}");
    assert!(order_page.contains("Certificate of Enrolment") && !order_page.contains("Certificate of Graduation"), "a student is offered what students may order: {order_page}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roster_imports_whole_or_not_at_all_and_the_second_password_can_be_reset() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let staff = b.staff_client().await?;
    let import = |csv: String| {
        let staff = staff.clone();
        let url = b.url.clone();
        async move {
            let csrf = csrf_of(&staff, &format!("{url}/admin/roster")).await?;
            let form = reqwest::multipart::Form::new()
                .text("csrf", csrf)
                .part("file", reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("roster.csv"));
            let r = staff.post(format!("{url}/admin/roster")).multipart(form).send().await?;
            let s = r.status().as_u16();
            anyhow::Ok((s, r.text().await?))
        }
    };
    let head = "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code,email\n";
    // one bad column in row 3 and a duplicate in row 4: nothing is imported, both are named
    let bad = format!("{head}t001,Initial2024a,田中 一,タナカ ハジメ,TANAKA Hajime,S24-0011,LET,JLIT,\nt002,short,山本 二,ヤマモト ジ,YAMAMOTO Ji,S24-0012,LET,JLIT,\nt001,Initial2024b,田中 三,タナカ サン,TANAKA San,S24-0013,LET,JLIT,\n");
    let (s, page) = import(bad).await?;
    assert_eq!(s, 400);
    assert!(page.contains("line 3 (password)") && page.contains("line 4 (user_id)") && page.contains("the same as line 2"), "{page}");
    assert_eq!(b.sql("SELECT count(*) FROM directory_roster")?, "1", "only the demo student: nothing half-imported");
    let (s, page) = import(format!("\u{feff}{head}t001,Initial2024a,田中 一,タナカ ハジメ,TANAKA Hajime,S24-0011,LET,JLIT,\n")).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(element_text(&page, "roster-count").as_deref(), Some("2"));
    let hash = b.sql("SELECT password_hash FROM directory_roster WHERE user_id = 't001'")?;
    assert!(hash.starts_with("$argon2id$"), "plain initial passwords are hashed on import");

    // wrong password and unknown ID: one message
    let c = Backend::client();
    let (s1, _, p1) = student_login(&b, &c, "t001", "Wrong2024aa", "").await?;
    let (s2, _, p2) = student_login(&b, &c, "nobody", "Wrong2024aa", "").await?;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(element_text(&p1, "error"), element_text(&p2, "error"));

    // the imported student registers, then forgets the second password (S-3)
    let email = "hajime@campus.example.jp";
    let link = first_login_link(&b, &smtp, &c, "t001", "Initial2024a", email).await?;
    let (s, path, page) = post_form(&c, &link, &format!("{}/student/email/confirm", b.url), &[
        ("t", link.split("t=").nth(1).unwrap_or("")), ("university_password", "Initial2024a"),
        ("second_password", "Second2024hj"), ("second_password_confirm", "Second2024hj"),
    ]).await?;
    assert_eq!((s, path.as_str()), (200, "/portal"), "{page}");
    let url = format!("{}/student/second-password/forgot", b.url);
    let (s, _, known) = post_form(&Backend::client(), &url, &url, &[("user_id", "t001")]).await?;
    let (s2, _, unknown) = post_form(&Backend::client(), &url, &url, &[("user_id", "zz999")]).await?;
    assert_eq!((s, s2), (200, 200));
    assert_eq!(element_text(&known, "message"), element_text(&unknown, "message"), "no enumeration");
    let mail = smtp.wait_for_mail_with(email, "second-password/reset", MAIL_WAIT)?;
    let reset = link_in(&mail, &format!("{}/student/second-password/reset?t=", b.url)).context("reset link")?;
    let t = reset.split("t=").nth(1).unwrap_or("").to_string();
    let action = format!("{}/student/second-password/reset", b.url);
    let (s, _, page) = post_form(&Backend::client(), &reset, &action, &[("t", &t), ("university_password", "Wrong2024aa"), ("second_password", "Newer2024hj"), ("second_password_confirm", "Newer2024hj")]).await?;
    assert_eq!(s, 400);
    assert!(field_error(&page, "university_password").contains("not correct"), "{page}");
    let (s, _, page) = post_form(&Backend::client(), &reset, &action, &[("t", &t), ("university_password", "Initial2024a"), ("second_password", "Newer2024hj"), ("second_password_confirm", "Newer2024hj")]).await?;
    assert_eq!(s, 200, "{page}");
    let r = c.get(format!("{}/portal", b.url)).send().await?;
    assert_eq!(r.url().path(), "/login", "the reset ended the old session");
    let (s, path, _) = student_login(&b, &Backend::client(), "t001", "Initial2024a", "Newer2024hj").await?;
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
    let t = link.split("t=").nth(1).unwrap_or("").to_string();
    let (s, path, page) = post_form(&c, &link, &format!("{}/student/email/confirm", b.url), &[
        ("t", &t), ("university_password", "alicepw"), ("second_password", "Alice2024svc"), ("second_password_confirm", "Alice2024svc"),
    ]).await?;
    assert_eq!((s, path.as_str()), (200, "/portal"), "{page}");
    assert!(page.contains("有栖 花子"), "the name comes from the directory: {page}");
    let (s, path, _) = student_login(&b, &Backend::client(), "alice", "alicepw", "Alice2024svc").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
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
    let t = link.split("t=").nth(1).unwrap_or("").to_string();
    let (s, path, page) = post_form(&c, &link, &format!("{}/student/email/confirm", b.url), &[
        ("t", &t), ("university_password", "alicepw"), ("second_password", "Alice2024svc"), ("second_password_confirm", "Alice2024svc"),
    ]).await?;
    assert_eq!((s, path.as_str()), (200, "/portal"), "{page}");
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
