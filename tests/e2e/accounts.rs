//! Graduates' registration and first login (G-1..G-5) and the staff review
//! (G-4, A-2), through the real SMTP server, in Chromium and over HTTP.

use crate::harness::*;
use anyhow::{bail, Context, Result};
use fantoccini::Locator;
use std::time::Duration;

pub const MAIL_WAIT: Duration = Duration::from_secs(15);

/// A small real photo-like JPEG (and PNG) made here, as an ID image.
pub fn id_image(format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(320, 200, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    let _ = image::DynamicImage::ImageRgb8(img).write_to(&mut out, format);
    out.into_inner()
}

pub async fn csrf_of(c: &reqwest::Client, url: &str) -> Result<String> {
    let page = c.get(url).send().await?.text().await?;
    form_value(&page, "csrf").with_context(|| format!("csrf on {url}: {page}"))
}

/// POSTs a form after GETting its page for the token; returns (status, final URL path, body).
pub async fn post_form(c: &reqwest::Client, page_url: &str, action_url: &str, fields: &[(&str, &str)]) -> Result<(u16, String, String)> {
    let csrf = csrf_of(c, page_url).await?;
    let mut f: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    f.extend_from_slice(fields);
    let r = c.post(action_url).form(&f).send().await?;
    let (s, path) = (r.status().as_u16(), r.url().path().to_string());
    Ok((s, path, r.text().await?))
}

pub fn field_error(page: &str, field: &str) -> String {
    element_text(page, &format!("{field}-error")).unwrap_or_default()
}

/// G-1: asks for a registration link and returns it from the mail.
pub async fn registration_link(b: &Backend, smtp: &Smtp, c: &reqwest::Client, email: &str) -> Result<String> {
    let before = smtp.all_to(email).len();
    let (s, _, page) = post_form(c, &format!("{}/register", b.url), &format!("{}/register", b.url), &[("email", email), ("email_confirm", email)]).await?;
    if s != 200 {
        bail!("register: {s} {page}");
    }
    let mut mail = String::new();
    wait_until("registration mail", MAIL_WAIT, || {
        let all = smtp.all_to(email);
        if all.len() > before {
            mail = all[before].clone();
            true
        } else {
            false
        }
    })?;
    link_in(&mail, &format!("{}/register/open", b.url)).with_context(|| format!("link in {mail}"))
}

/// G-2: opens the link and agrees to the terms; the client then holds the draft.
pub async fn open_and_agree(c: &reqwest::Client, link: &str) -> Result<(u16, String)> {
    let page = c.get(link).send().await?.text().await?;
    let csrf = form_value(&page, "csrf").unwrap_or_default();
    let t = form_value(&page, "t").unwrap_or_default();
    let purpose = form_value(&page, "purpose").unwrap_or_default();
    let base = link.split("/register/open").next().unwrap_or_default();
    let r = c
        .post(format!("{base}/register/open"))
        .form(&[("csrf", csrf.as_str()), ("t", t.as_str()), ("purpose", purpose.as_str()), ("agree", "1")])
        .send()
        .await?;
    let s = r.status().as_u16();
    Ok((s, r.text().await?))
}

/// The applicant data of G-3 for one person, as form fields.
pub fn applicant(kanji: &str, kana: &str, roman: &str) -> Vec<(String, String)> {
    [
        ("kind", "new"),
        ("name_kanji", kanji),
        ("name_kana", kana),
        ("name_roman", roman),
        ("birth_date", "1999-09-09"),
        ("sex", "male"),
        ("university_id", "1"),
        ("faculty_id", "1"),
        ("department_id", "1"),
        ("student_no", "L15-0909"),
        ("graduation_ym", "2015-03"),
        ("leaving_type", "graduated"),
        ("postal_code", "100-0001"),
        ("prefecture", "東京都"),
        ("city", "千代田区"),
        ("street", "千代田1-1"),
        ("mobile_phone", "090-1234-5678"),
        ("id_document_type", "driving_licence"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// G-3: sends the form (multipart) with images; returns (status, body).
pub async fn send_form(b: &Backend, c: &reqwest::Client, fields: &[(String, String)], images: Vec<(&str, &str, Vec<u8>)>) -> Result<(u16, String)> {
    let csrf = csrf_of(c, &format!("{}/register/form", b.url)).await?;
    let mut form = reqwest::multipart::Form::new().text("csrf", csrf);
    for (k, v) in fields {
        form = form.text(k.clone(), v.clone());
    }
    for (field, name, bytes) in images {
        form = form.part(field.to_string(), reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()));
    }
    let r = c.post(format!("{}/register/form", b.url)).multipart(form).send().await?;
    let s = r.status().as_u16();
    Ok((s, r.text().await?))
}

/// Confirmation page -> "Apply" -> "Application accepted".
pub async fn apply(b: &Backend, c: &reqwest::Client) -> Result<String> {
    let (s, _, page) = post_form(c, &format!("{}/register/confirm", b.url), &format!("{}/register/apply", b.url), &[]).await?;
    if s != 200 || !page.contains("Application accepted") {
        bail!("apply: {s} {page}");
    }
    Ok(page)
}

/// A whole application by HTTP, up to "accepted"; returns its id.
pub async fn apply_as(b: &Backend, smtp: &Smtp, email: &str, fields: &[(String, String)]) -> Result<i64> {
    let c = Backend::client();
    let link = registration_link(b, smtp, &c, email).await?;
    let (s, page) = open_and_agree(&c, &link).await?;
    if s != 200 {
        bail!("open: {s} {page}");
    }
    let (s, page) = send_form(b, &c, fields, vec![("image_front", "front.jpg", id_image(image::ImageFormat::Jpeg))]).await?;
    if s != 200 || !page.contains("Check your application") {
        bail!("form: {s} {page}");
    }
    apply(b, &c).await?;
    let id = b.sql(&format!("SELECT id FROM registrations WHERE email = '{email}' ORDER BY id DESC LIMIT 1"))?;
    Ok(id.parse()?)
}

/// Staff decide an application on the panel (having read any school register
/// warning, which they acknowledge); returns the page after it.
pub async fn decide(b: &Backend, id: i64, action: &str, reason: &str, target_user: &str) -> Result<(u16, String)> {
    let staff = b.staff_client().await?;
    let (s, _, page) = post_form(
        &staff,
        &format!("{}/admin/registrations/{id}", b.url),
        &format!("{}/admin/registrations/{id}/decide", b.url),
        &[("action", action), ("reason", reason), ("target_user", target_user), ("acknowledge_register", "1")],
    )
    .await?;
    Ok((s, page))
}

/// The registrar's school register line for the applicant of [`applicant`]
/// (student number L15-0909), as a real registrar's records would have it.
pub const APPLICANT_REGISTER_LINE: &str = "L15-0909,試験 太郎,シケン タロウ,SHIKEN Taro,1999-09-09,LET,JLIT,学士（文学）,Bachelor of Arts,2011-04-01,2015-03-25,graduated";

/// The registrar imports `lines` (school register CSV rows) on the panel.
pub async fn import_register(b: &Backend, lines: &str) -> Result<(u16, String)> {
    let staff = b.staff_client().await?;
    let url = format!("{}/admin/school-register", b.url);
    let csrf = csrf_of(&staff, &url).await?;
    let csv = format!("student_no,name_kanji,name_kana,name_roman,birth_date,faculty_code,department_code,degree_ja,degree_en,admission_date,graduation_date,leaving_type\n{lines}\n");
    let form = reqwest::multipart::Form::new().text("csrf", csrf).part("file", reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("register.csv"));
    let r = staff.post(&url).multipart(form).send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// Makes sure the school register records the applicant of [`applicant`].
pub async fn register_knows_applicant(b: &Backend) -> Result<()> {
    if b.sql("SELECT count(*) FROM school_register WHERE student_no = 'L15-0909'")? == "0" {
        let (s, page) = import_register(b, APPLICANT_REGISTER_LINE).await?;
        anyhow::ensure!(s == 200, "register import: {s} {page}");
    }
    Ok(())
}

pub fn initial_password_in(mail: &str) -> Option<String> {
    let i = mail.find("初期パスワード: ")? + "初期パスワード: ".len();
    Some(mail[i..].split_whitespace().next()?.to_string())
}

/// Approves and returns the initial password from the approval mail.
pub async fn approve(b: &Backend, smtp: &Smtp, id: i64, email: &str) -> Result<String> {
    let (s, page) = decide(b, id, "approve", "", "").await?;
    if s != 200 {
        bail!("approve: {s} {page}");
    }
    let mail = smtp.wait_for_mail_with(email, "Initial password", MAIL_WAIT)?;
    initial_password_in(&mail).context("initial password in the mail")
}

pub async fn portal_login(b: &Backend, c: &reqwest::Client, email: &str, pw: &str, second: &str) -> Result<(u16, String, String)> {
    post_form(c, &format!("{}/login", b.url), &format!("{}/login", b.url), &[("email", email), ("password", pw), ("second_password", second)]).await
}

/// A registered graduate with their own passwords, logged in on `c`.
pub async fn graduate(b: &Backend, smtp: &Smtp, email: &str, pw: &str, second: &str) -> Result<reqwest::Client> {
    register_knows_applicant(b).await?;
    let id = apply_as(b, smtp, email, &applicant("試験 太郎", "シケン タロウ", "SHIKEN Taro")).await?;
    let initial = approve(b, smtp, id, email).await?;
    let c = Backend::client();
    let (_, path, _) = portal_login(b, &c, email, &initial, "").await?;
    if path != "/password/setup" {
        bail!("first login landed on {path}");
    }
    let (s, path, page) = post_form(
        &c,
        &format!("{}/password/setup", b.url),
        &format!("{}/password/setup", b.url),
        &[("password", pw), ("password_confirm", pw), ("second_password", second), ("second_password_confirm", second)],
    )
    .await?;
    if s != 200 || path != "/portal" {
        bail!("password setup: {s} {path} {page}");
    }
    Ok(c)
}

on_both_screens!(a_graduate_registers_is_approved_and_sets_passwords_in_the_browser, a_graduate_registers_is_approved_and_sets_passwords_in_the_browser_at_phone_width, a_graduate_registers_is_approved_and_sets_passwords_in_the_browser_on);
async fn a_graduate_registers_is_approved_and_sets_passwords_in_the_browser_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let backend = Backend::start(Some(smtp.port)).await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    let email = "denden.taro@example.jp";

    // G-1: from the login page, "New registration", the address twice.
    w.goto(&format!("{}/login", backend.url)).await?;
    w.find(Locator::Id("register")).await?.click().await?;
    browser.wait_id("email").await?.send_keys(email).await?;
    w.find(Locator::Id("email_confirm")).await?.send_keys(email).await?;
    w.find(Locator::Id("send")).await?.click().await?;
    browser.wait_id("message").await?;
    assert!(browser.body_text().await?.contains("Check your mail"));
    let mail = smtp.wait_for_mail(email, MAIL_WAIT)?;
    assert!(mail.contains("利用申請") && mail.contains("application"), "both languages: {mail}");
    assert!(mail.contains("--- html ---") && mail.contains("<a href=\""), "an HTML part with the link: {mail}");
    let link = link_in(&mail, &format!("{}/register/open?t=", backend.url)).context("one-time URL")?;

    // G-2: the link opens the terms; "agree" must be ticked.
    w.goto(&link).await?;
    browser.wait_id("agree").await?;
    browser.check_page().await.context("the terms page")?;
    w.find(Locator::Id("agree")).await?.click().await?;
    w.find(Locator::Id("agree-button")).await?.click().await?;

    // G-3: applicant data; the department list follows the faculty chosen.
    browser.wait_id("name_kanji").await?;
    browser.check_page().await.context("the application form")?;
    w.find(Locator::Id("name_kanji")).await?.send_keys("電電 太郎").await?;
    w.find(Locator::Id("name_kana")).await?.send_keys("デンデン タロウ").await?;
    w.find(Locator::Id("name_roman")).await?.send_keys("DENDEN Tarou").await?;
    w.execute("document.getElementById('birth_date').value = '1999-09-09'", vec![]).await?;
    w.find(Locator::Id("university_id")).await?.select_by_value("1").await?;
    w.find(Locator::Id("faculty_id")).await?.select_by_value("2").await?;
    let deps = w.execute("return Array.from(document.getElementById('department_id').options).map(o => o.value).join(',')", vec![]).await?;
    assert_eq!(deps.as_str(), Some(",3"), "only the Faculty of Science's department is offered");
    w.find(Locator::Id("faculty_id")).await?.select_by_value("1").await?;
    w.find(Locator::Id("department_id")).await?.select_by_value("1").await?;
    w.find(Locator::Id("student_no")).await?.send_keys("L15-0909").await?;
    w.find(Locator::Id("leaving_type")).await?.select_by_value("graduated").await?;
    w.find(Locator::Id("postal_code")).await?.send_keys("100-0001").await?;
    w.find(Locator::Id("city")).await?.send_keys("千代田区").await?;
    w.find(Locator::Id("id_document_type")).await?.select_by_value("driving_licence").await?;
    let dir = tempfile::tempdir()?;
    let front = dir.path().join("licence-front.jpg");
    std::fs::write(&front, id_image(image::ImageFormat::Jpeg))?;
    w.find(Locator::Id("image_front")).await?.send_keys(&front.display().to_string()).await?;
    let shown = w.execute("return !document.getElementById('preview-image_front').hidden", vec![]).await?;
    assert_eq!(shown.as_bool(), Some(true), "the chosen image is previewed before sending");
    w.find(Locator::Id("to-confirm")).await?.click().await?;

    // Confirmation page, then "Apply", then "Application accepted".
    browser.wait_id("summary").await?;
    browser.check_page().await.context("the confirmation page")?;
    let summary = browser.body_text().await?;
    assert!(summary.contains("電電 太郎") && summary.contains("1999-09-09") && summary.contains("文学部"), "{summary}");
    w.find(Locator::Id("apply")).await?.click().await?;
    browser.wait_id("message").await?;
    let text = browser.body_text().await?;
    assert!(text.contains("申請を受け付けました") && text.contains("Application accepted"), "{text}");
    smtp.wait_for_mail_with(email, "received your application", MAIL_WAIT)?;

    // G-4: staff see it in the queue with the ID image, and approve.
    w.goto(&format!("{}/admin/login", backend.url)).await?;
    browser.wait_id("login").await?.send_keys(shomei_backend::demo::STAFF_LOGIN).await?;
    w.find(Locator::Id("password")).await?.send_keys(shomei_backend::demo::STAFF_PASSWORD).await?;
    w.find(Locator::Id("code")).await?.send_keys(&backend.staff_code().await?).await?;
    w.find(Locator::Id("staff-login")).await?.click().await?;
    // the dashboard after login: the applications waiting lead to the queue
    browser.wait_id("dash-applications").await?.click().await?;
    browser.wait_for(Locator::Css("#registrations a")).await?.click().await?;
    browser.wait_id("approve").await?;
    let loaded = w
        .execute("const i = document.querySelector('img.id-image'); return i && i.complete && i.naturalWidth", vec![])
        .await?;
    assert_eq!(loaded.as_i64(), Some(320), "the ID image is shown to staff");
    assert!(browser.body_text().await?.contains("DENDEN Tarou"));
    // D-3: the student number is not in the school register: a warning the reviewer
    // must acknowledge; approving without ticking it is refused in words
    let warning = browser.wait_id("register-warning").await?.text().await?;
    assert!(warning.contains("not in the school register") && warning.contains("学籍記録にありません"), "{warning}");
    // approving asks first: "no" changes nothing
    w.find(Locator::Id("approve")).await?.click().await?;
    let asked = w.get_alert_text().await?;
    assert!(asked.contains("Approve this application?") && asked.contains("承認しますか"), "{asked}");
    w.dismiss_alert().await?;
    assert_eq!(backend.sql("SELECT status FROM registrations ORDER BY id DESC LIMIT 1")?, "pending", "not approved after \"no\"");
    w.find(Locator::Id("approve")).await?.click().await?;
    w.accept_alert().await?;
    browser.wait_id("error").await?;
    let refused = browser.body_text().await?;
    assert!(refused.contains("I checked the school register warning"), "{refused}");
    w.back().await?;
    browser.wait_id("acknowledge-register").await?.click().await?;
    w.find(Locator::Id("approve")).await?.click().await?;
    w.accept_alert().await?;
    browser.wait_id("empty").await?;
    let mail = smtp.wait_for_mail_with(email, "Initial password", MAIL_WAIT)?;
    let initial = initial_password_in(&mail).context("initial password")?;
    assert!(mail.contains(&format!("{}/login", backend.url)), "the login URL: {mail}");
    assert!(initial.len() >= 12, "{initial}");

    // G-5: first login with the initial password, second password empty -> password setting.
    w.goto(&format!("{}/login", backend.url)).await?;
    browser.wait_id("email").await?.send_keys(email).await?;
    w.find(Locator::Id("password")).await?.send_keys(&initial).await?;
    w.find(Locator::Id("login")).await?.click().await?;
    browser.wait_id("password_confirm").await?;
    w.goto(&format!("{}/orders/new", backend.url)).await?;
    assert_eq!(w.current_url().await?.path(), "/password/setup", "every page leads to password setting first");
    // a rule broken: the message sits next to the field
    browser.wait_id("password").await?.send_keys("Tarou2024pw").await?;
    w.find(Locator::Id("password_confirm")).await?.send_keys("Tarou2024pw").await?;
    w.find(Locator::Id("second_password")).await?.send_keys("Tarou2024pw").await?;
    w.find(Locator::Id("second_password_confirm")).await?.send_keys("Tarou2024pw").await?;
    w.find(Locator::Id("save")).await?.click().await?;
    let err = browser.wait_id("second_password-error").await?.text().await?;
    assert!(err.contains("パスワードと第2パスワード") && err.contains("different"), "{err}");
    w.find(Locator::Id("password")).await?.send_keys("Tarou2024pw").await?;
    w.find(Locator::Id("password_confirm")).await?.send_keys("Tarou2024pw").await?;
    w.find(Locator::Id("second_password")).await?.send_keys("Second2024tw").await?;
    w.find(Locator::Id("second_password_confirm")).await?.send_keys("Second2024tw").await?;
    w.find(Locator::Id("save")).await?.click().await?;
    browser.wait_id("new-order").await?;
    let text = browser.body_text().await?;
    assert!(text.contains("電電 太郎") && text.contains("Your passwords are set"), "{text}");
    browser.close().await;

    // The initial password is spent; the new ones work.
    let c = Backend::client();
    let (s, _, _) = portal_login(&backend, &c, email, &initial, "").await?;
    assert_eq!(s, 401, "the initial password works once");
    let (s, path, _) = portal_login(&backend, &c, email, "Tarou2024pw", "Second2024tw").await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    // the personal data is sealed at rest, the image file too
    let sealed = backend.sql(&format!("SELECT personal_sealed FROM users WHERE email = '{email}'"))?;
    assert!(!sealed.is_empty() && !sealed.contains("千代田") && !sealed.contains("1999-09-09"), "{sealed}");
    let birth = backend.sql("SELECT birth_date FROM student_records WHERE student_no = 'L15-0909'")?;
    assert!(!birth.is_empty() && !birth.contains("1999"), "the student record's birth date is sealed too: {birth}");
    let files: Vec<_> = std::fs::read_dir(backend.dir.path().join("uploads"))?.flatten().collect();
    assert_eq!(files.len(), 1);
    let stored = std::fs::read(files[0].path())?;
    assert!(!stored.starts_with(&[0xFF, 0xD8]), "the stored image is not a plain JPEG");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_links_are_single_use_expiring_and_say_nothing_about_accounts() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let c = Backend::client();

    // bad addresses: the message sits next to the field, the address typed stays
    let url = format!("{}/register", b.url);
    let (s, _, page) = post_form(&c, &url, &url, &[("email", "not-an-address"), ("email_confirm", "not-an-address")]).await?;
    assert_eq!(s, 400);
    assert!(field_error(&page, "email").contains("not an e-mail address"), "{page}");
    let (s, _, page) = post_form(&c, &url, &url, &[("email", "a@example.jp"), ("email_confirm", "b@example.jp")]).await?;
    assert_eq!(s, 400);
    assert!(field_error(&page, "email_confirm").contains("do not match"), "{page}");
    assert!(page.contains("value=\"a@example.jp\""), "kept what was typed");

    // a known address: the same page, and an "already registered" mail instead of a link
    let (s, _, known) = post_form(&c, &url, &url, &[("email", shomei_backend::demo::GRADUATE_EMAIL), ("email_confirm", shomei_backend::demo::GRADUATE_EMAIL)]).await?;
    let (s2, _, unknown) = post_form(&c, &url, &url, &[("email", "new.person@example.jp"), ("email_confirm", "new.person@example.jp")]).await?;
    assert_eq!((s, s2), (200, 200));
    assert_eq!(element_text(&known, "message"), element_text(&unknown, "message"));
    let m = smtp.wait_for_mail(shomei_backend::demo::GRADUATE_EMAIL, MAIL_WAIT)?;
    assert!(m.contains("already has an account") && !m.contains("/register/open"), "{m}");
    smtp.wait_for_mail("new.person@example.jp", MAIL_WAIT)?;

    // the link: built from the configured origin, single use, and a newer one voids the older
    let first = registration_link(&b, &smtp, &c, "new.person@example.jp").await?;
    let second = registration_link(&b, &smtp, &c, "new.person@example.jp").await?;
    assert!(first.starts_with(&b.url) && first != second);
    let token = second.split("t=").nth(1).context("token")?;
    assert!(token.len() >= 32, "at least 128 bits: {token}");
    let stored = b.sql("SELECT token_hash FROM one_time_tokens")?;
    assert!(!stored.contains(token), "only the hash is stored");
    let r = c.get(&first).send().await?;
    assert_eq!(r.status(), 400, "the older link was voided by the newer");
    assert!(r.text().await?.contains("has already been used"), "clear message");
    let r = c.get(&second).send().await?;
    assert_eq!(r.status(), 200, "the newest link opens");
    assert_eq!(r.headers().get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"));
    // two tabs open it at once: exactly one goes on
    let (c1, c2) = (Backend::client(), Backend::client());
    let ((s1, _), (s2, _)) = tokio::try_join!(open_and_agree(&c1, &second), open_and_agree(&c2, &second))?;
    let mut both = [s1, s2];
    both.sort();
    assert_eq!(both, [200, 400], "one wins");
    let (s, page) = open_and_agree(&Backend::client(), &second).await?;
    assert_eq!(s, 400, "used: {page}");
    // an expired link
    let third = registration_link(&b, &smtp, &c, "late.person@example.jp").await?;
    b.sql("UPDATE one_time_tokens SET expires_at = expires_at - 90000 WHERE email = 'late.person@example.jp'")?;
    let (s, page) = open_and_agree(&Backend::client(), &third).await?;
    assert_eq!(s, 400);
    assert!(page.contains("expired"), "{page}");
    // the Host header does not make the link: the configured origin does
    let csrf = csrf_of(&c, &format!("{}/register", b.url)).await?;
    let r = c
        .post(format!("{}/register", b.url))
        .header("Host", "evil.example")
        .form(&[("csrf", csrf.as_str()), ("email", "host.test@example.jp"), ("email_confirm", "host.test@example.jp")])
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let m = smtp.wait_for_mail("host.test@example.jp", MAIL_WAIT)?;
    assert!(link_in(&m, &format!("{}/register/open?t=", b.url)).is_some() && !m.contains("evil.example"), "{m}");
    Ok(())
}

/// A PNG whose header claims 60000 x 60000 pixels (a decompression bomb's shape).
fn huge_png_header() -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
    v.extend_from_slice(&60000u32.to_be_bytes());
    v.extend_from_slice(&60000u32.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_form_names_each_bad_field_and_keeps_the_rest() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let c = Backend::client();
    let link = registration_link(&b, &smtp, &c, "form.tester@example.jp").await?;
    open_and_agree(&c, &link).await?;
    let good = applicant("形式 試験", "ケイシキ シケン", "KEISHIKI Shiken");
    let jpeg = || vec![("image_front", "front.jpg", id_image(image::ImageFormat::Jpeg))];
    let with = |k: &str, v: &str| -> Vec<(String, String)> {
        good.iter().map(|(a, b)| if a == k { (a.clone(), v.to_string()) } else { (a.clone(), b.clone()) }).collect()
    };

    // no image at all (none attached yet): named
    let (s, page) = send_form(&b, &c, &good, vec![]).await?;
    assert_eq!(s, 400);
    assert!(field_error(&page, "image_front").contains("Attach an image"), "{page}");
    // a required field left out: named, and the other fields keep what was typed
    let (s, page) = send_form(&b, &c, &with("name_kana", ""), jpeg()).await?;
    assert_eq!(s, 400);
    assert!(field_error(&page, "name_kana").contains("Enter your name in katakana"), "{page}");
    assert!(page.contains("value=\"形式 試験\"") && page.contains("value=\"千代田区\""), "kept");
    assert!(page.contains("aria-invalid=\"true\" aria-describedby=\"name_kana-error"), "tied to the field");
    // a birth date in the future
    let (s, page) = send_form(&b, &c, &with("birth_date", "2999-01-01"), jpeg()).await?;
    assert_eq!(s, 400);
    assert!(field_error(&page, "birth_date").contains("in the future"), "{page}");
    // a department that is not in the chosen faculty
    let (_, page) = send_form(&b, &c, &with("department_id", "3"), jpeg()).await?;
    assert!(field_error(&page, "department_id").contains("Choose your department"), "{page}");
    // images: decided by content, limits before decoding
    let mut jpeg_bytes = id_image(image::ImageFormat::Jpeg);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("licence.jpg", b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF".to_vec(), "JPEG, PNG or GIF"),
        ("licence.png", b"<!doctype html><script>alert(1)</script>".to_vec(), "JPEG, PNG or GIF"),
        ("bomb.png", huge_png_header(), "pixels"),
        ("big.jpg", vec![0xFF; 30 * 1024 * 1024], "10 MB"),
        ("cut.jpg", { jpeg_bytes.truncate(jpeg_bytes.len() / 2); jpeg_bytes.clone() }, "damaged"),
    ];
    for (name, bytes, expect) in cases {
        let (s, page) = send_form(&b, &c, &good, vec![("image_front", name, bytes)]).await?;
        assert_eq!(s, 400, "{name}");
        let e = field_error(&page, "image_front");
        assert!(e.contains(expect) && !e.split(" / ").next().unwrap_or("").is_ascii(), "{name}: {e}");
    }
    // a good image sent with a wrong field is kept in the draft; no bad image ever is
    assert_eq!(b.sql("SELECT count(*) || '|' || MIN(original_name) FROM registration_images WHERE deleted_at IS NULL")?, "1|front.jpg");
    assert_eq!(b.sql("SELECT status FROM registrations")?, "draft");
    // and then a good one goes through to the confirmation page
    let (s, page) = send_form(&b, &c, &good, vec![("image_front", "front.png", id_image(image::ImageFormat::Png))]).await?;
    assert_eq!(s, 200);
    assert!(page.contains("Check your application"), "{page}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_reject_or_ask_for_resubmission_and_the_applicant_hears_each_outcome() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let id = apply_as(&b, &smtp, "resubmit.me@example.jp", &applicant("再提 出子", "サイテイ デコ", "SAITEI Deko")).await?;
    let receipt = smtp.wait_for_mail_with("resubmit.me@example.jp", "received your application", MAIL_WAIT)?;
    let status = link_in(&receipt, &format!("{}/register/status?k=", b.url)).context("status link in the receipt")?;
    let page = Backend::client().get(&status).send().await?.text().await?;
    assert!(page.contains("Being reviewed"), "{page}");
    let r = Backend::client().get(format!("{}/register/status?k={}", b.url, "0".repeat(64))).send().await?;
    assert_eq!(r.status(), 404, "a wrong key shows nothing");

    // a decision that needs a reason says so, and changes nothing
    let (s, page) = decide(&b, id, "resubmit", "", "").await?;
    assert_eq!(s, 400);
    assert!(page.contains("Give a reason"), "{page}");
    let (s, _) = decide(&b, id, "resubmit", "The image is blurred: please photograph the licence again.", "").await?;
    assert_eq!(s, 200);
    let mail = smtp.wait_for_mail_with("resubmit.me@example.jp", "purpose=resubmit", MAIL_WAIT)?;
    assert!(mail.contains("The image is blurred") && mail.contains("再提出"), "{mail}");
    let link = link_in(&mail, &format!("{}/register/open?purpose=resubmit", b.url)).context("resubmission link")?;

    // the link reopens the application with what was typed, and a new image replaces the old
    let c = Backend::client();
    let (s, _) = open_and_agree(&c, &link).await?;
    assert_eq!(s, 200);
    let form = c.get(format!("{}/register/form", b.url)).send().await?.text().await?;
    assert!(form.contains("The image is blurred") && form.contains("value=\"再提 出子\""), "prefilled with the reason: {form}");
    assert!(form.contains("id=\"images-kept\""), "says an image is attached");
    let (s, _) = send_form(&b, &c, &applicant("再提 出子", "サイテイ デコ", "SAITEI Deko"), vec![("image_front", "again.png", id_image(image::ImageFormat::Png))]).await?;
    assert_eq!(s, 200);
    apply(&b, &c).await?;
    assert_eq!(b.sql(&format!("SELECT status FROM registrations WHERE id = {id}"))?, "pending");
    assert_eq!(b.sql(&format!("SELECT count(*) FROM registration_images WHERE registration_id = {id} AND deleted_at IS NULL"))?, "1");
    assert_eq!(std::fs::read_dir(b.dir.path().join("uploads"))?.count(), 1, "the replaced image file is gone");

    // staff reject: the reason reaches the applicant; a second decision is refused
    let (s, _) = decide(&b, id, "reject", "Not a graduate of this university.", "").await?;
    assert_eq!(s, 200);
    let mail = smtp.wait_for_mail_with("resubmit.me@example.jp", "not approved", MAIL_WAIT)?;
    assert!(mail.contains("Not a graduate of this university."), "{mail}");
    // the receipt of the corrected application carries the link that now counts
    let receipts: Vec<String> = smtp.all_to("resubmit.me@example.jp").into_iter().filter(|m| m.contains("received your application")).collect();
    assert_eq!(receipts.len(), 2, "a receipt for each submission");
    let status = link_in(&receipts[1], &format!("{}/register/status?k=", b.url)).context("second status link")?;
    let page = Backend::client().get(&status).send().await?.text().await?;
    assert!(page.contains("Not approved") && page.contains("Not a graduate of this university."), "the status page follows: {page}");
    let (s, page) = decide(&b, id, "approve", "", "").await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("already been decided"));
    assert_eq!(b.sql("SELECT count(*) FROM users WHERE email = 'resubmit.me@example.jp'")?, "0");

    // every view of the personal data is in the audit log, with who and from where
    let views = b.sql(&format!("SELECT actor || ' ' || ip FROM audit_log WHERE action = 'personal_data.view' AND target = 'registration:{id}'"))?;
    assert!(views.contains("staff:staff 127.0.0.1"), "{views}");
    // retention: images of decided applications go after the configured days
    b.sql(&format!("UPDATE registrations SET decided_at = decided_at - 100 * 86400 WHERE id = {id}"))?;
    let cfg_dir = b.dir.path().join("uploads");
    let pool = sqlx_pool(&b).await?;
    let gone = shomei_backend::registration::expire_images(&pool, &cfg_dir, 90).await?;
    assert_eq!(gone, 1);
    assert_eq!(std::fs::read_dir(&cfg_dir)?.count(), 0, "the file is deleted");
    Ok(())
}

/// A pool on the backend's database file (for calling a scheduled job directly).
pub async fn sqlx_pool(b: &Backend) -> Result<shomei_backend::store::Pool> {
    Ok(shomei_backend::store::connect(&b.database_url).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graduate_adds_a_second_student_id_and_orders_for_either() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let email = "two.ids@example.jp";
    let c = graduate(&b, &smtp, email, "Twoids2024pw", "Second2024ti").await?;
    // G-6: from the account menu, a link by mail, the in-school data only
    let (s, path, _) = post_form(&c, &format!("{}/account", b.url), &format!("{}/account/student-ids", b.url), &[]).await?;
    assert_eq!((s, path.as_str()), (200, "/account"));
    let mail = smtp.wait_for_mail_with(email, "add_student_id", MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/register/open?purpose=add_student_id", b.url)).context("link")?;
    let (s, _) = open_and_agree(&c, &link).await?;
    assert_eq!(s, 200);
    let form = c.get(format!("{}/register/form", b.url)).send().await?.text().await?;
    assert!(!form.contains("id=\"name_kanji\"") && !form.contains("image_front") && form.contains("id=\"student_no\""), "only the in-school part");
    let fields: Vec<(String, String)> = [("university_id", "1"), ("faculty_id", "2"), ("department_id", "3"), ("student_no", "G19-0007"),
        ("graduation_ym", "2021-03"), ("leaving_type", "graduated")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let (s, page) = send_form(&b, &c, &fields, vec![]).await?;
    assert_eq!(s, 200, "{page}");
    apply(&b, &c).await?;
    let id: i64 = b.sql("SELECT id FROM registrations WHERE kind = 'add_student_id'")?.parse()?;
    // staff approve; the user hears of it and can choose either student ID when ordering
    let (s, _) = decide(&b, id, "approve", "", "").await?;
    assert_eq!(s, 200);
    smtp.wait_for_mail_with(email, "additional student ID was approved", MAIL_WAIT)?;
    let order = c.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(order.contains("L15-0909") && order.contains("G19-0007"), "{order}");
    let account = c.get(format!("{}/account", b.url)).send().await?.text().await?;
    assert!(account.contains("G19-0007") && account.contains("数学科"), "{account}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reapplication_moves_a_lost_address_onto_the_existing_account() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let old = "lost.mailbox@example.jp";
    graduate(&b, &smtp, old, "Lostbox2024p", "Second2024lb").await?;
    let user_id = b.sql(&format!("SELECT id FROM users WHERE email = '{old}'"))?;
    b.sql(&format!("INSERT INTO orders (user_id, student_record_id, delivery, payment_method, status, fees, system_fee, total, created_at, pay_deadline, print_deadline) SELECT {user_id}, id, 'campus', 'card', 'printed', 300, 100, 400, 1, 2, 3 FROM student_records WHERE user_id = {user_id}"))?;
    // G-9: a new registration from the new address, application type "re-application"
    let new = "new.mailbox@example.jp";
    let mut fields = applicant("試験 太郎", "シケン タロウ", "SHIKEN Taro");
    for f in fields.iter_mut() {
        if f.0 == "kind" {
            f.1 = "reapply".into();
        }
    }
    let id = apply_as(&b, &smtp, new, &fields).await?;
    // staff see the account it may belong to, and must choose it
    let staff = b.staff_client().await?;
    let page = staff.get(format!("{}/admin/registrations/{id}", b.url)).send().await?.text().await?;
    assert!(page.contains(&format!("<option value=\"{user_id}\">")) && page.contains(old), "candidate shown: {page}");
    let (s, page) = decide(&b, id, "approve", "", "").await?;
    assert_eq!(s, 400, "no account chosen: {page}");
    // an account the application does not match (any id posted): refused, nothing moves
    let other = b.sql(&format!("SELECT id FROM users WHERE email = '{}'", shomei_backend::demo::GRADUATE_EMAIL))?;
    let (s, page) = decide(&b, id, "approve", "", &other).await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("not one this re-application matches"), "{page}");
    assert_eq!(b.sql(&format!("SELECT email FROM users WHERE id = {other}"))?, shomei_backend::demo::GRADUATE_EMAIL);
    let (s, _) = decide(&b, id, "approve", "", &user_id).await?;
    assert_eq!(s, 200);
    let mail = smtp.wait_for_mail_with(new, "Initial password", MAIL_WAIT)?;
    let initial = initial_password_in(&mail).context("initial password")?;
    smtp.wait_for_mail_with(old, "was changed to n****@example.jp", MAIL_WAIT)?;
    // the same account, its history kept, now at the new address with a new initial password
    assert_eq!(b.sql(&format!("SELECT email FROM users WHERE id = {user_id}"))?, new);
    assert_eq!(b.sql("SELECT count(*) FROM users")?, "2", "the demo graduate and this one: no new account");
    let c = Backend::client();
    let (_, path, _) = portal_login(&b, &c, new, &initial, "").await?;
    assert_eq!(path, "/password/setup");
    let (s, _, _) = portal_login(&b, &Backend::client(), old, "Lostbox2024p", "Second2024lb").await?;
    assert_eq!(s, 401, "the old address no longer logs in");
    let (s, path, _) = post_form(&c, &format!("{}/password/setup", b.url), &format!("{}/password/setup", b.url),
        &[("password", "Found2024box"), ("password_confirm", "Found2024box"), ("second_password", "Second2024fb"), ("second_password_confirm", "Second2024fb")]).await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    let menu = c.get(format!("{}/portal", b.url)).send().await?.text().await?;
    assert!(menu.contains("¥400"), "the order history stayed with the account: {menu}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_login_password_rules_each_give_their_own_message() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let email = "rules@example.jp";
    let id = apply_as(&b, &smtp, email, &applicant("規則 守", "キソク マモル", "KISOKU Mamoru")).await?;
    let initial = approve(&b, &smtp, id, email).await?;
    let c = Backend::client();
    portal_login(&b, &c, email, &initial, "").await?;
    let url = format!("{}/password/setup", b.url);
    let good_second = "Second2024km";
    let cases: Vec<(String, String, &str, &str)> = vec![
        ("Ab1".into(), "Ab1".into(), "password", "at least 8"),
        ("abcdefgh12".into(), "abcdefgh12".into(), "password", "upper"),
        ("ABCDEFGH12".into(), "ABCDEFGH12".into(), "password", "lower"),
        ("Abcdefghij".into(), "Abcdefghij".into(), "password", "digit"),
        ("Passw0rd".into(), "Passw0rd".into(), "password", "common"),
        ("Ｐａｓｓ１２３４ａ".into(), "Ｐａｓｓ１２３４ａ".into(), "password", "single-byte"),
        (format!("A1{}", "b".repeat(127)), format!("A1{}", "b".repeat(127)), "password", "128"),
        ("Kisoku2024mm".into(), "Kisoku2024mx".into(), "password_confirm", "do not match"),
        (initial.clone(), initial.clone(), "password", "current"),
    ];
    for (pw, confirm, field, expect) in cases {
        let (s, _, page) = post_form(&c, &url, &url, &[("password", &pw), ("password_confirm", &confirm), ("second_password", good_second), ("second_password_confirm", good_second)]).await?;
        assert_eq!(s, 400, "{pw}");
        let e = field_error(&page, field);
        assert!(e.to_lowercase().contains(expect), "{pw:?} -> {field}: {e:?}");
    }
    assert_eq!(b.sql(&format!("SELECT must_set_password FROM users WHERE email = '{email}'"))?, "1", "nothing changed");
    // an expired initial password says so (only to someone who typed it right)
    b.sql(&format!("UPDATE users SET initial_password_expires_at = 1 WHERE email = '{email}'"))?;
    let (s, _, page) = portal_login(&b, &Backend::client(), email, &initial, "").await?;
    assert_eq!(s, 401);
    assert!(page.contains("initial password has expired"), "{page}");
    Ok(())
}

on_both_screens!(a_graduate_keeps_the_account_up_to_date_in_the_browser, a_graduate_keeps_the_account_up_to_date_in_the_browser_at_phone_width, a_graduate_keeps_the_account_up_to_date_in_the_browser_on);
async fn a_graduate_keeps_the_account_up_to_date_in_the_browser_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let (email, pw, second) = ("keeper@example.jp", "Keeper2024pw", "Second2024kp");
    graduate(&b, &smtp, email, pw, second).await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    let login = |email: &'static str, pw: &'static str, second: &'static str| {
        let (browser, url) = (&browser, b.url.clone());
        async move {
            browser.client.goto(&format!("{url}/login")).await?;
            browser.wait_id("email").await?.send_keys(email).await?;
            browser.client.find(Locator::Id("password")).await?.send_keys(pw).await?;
            browser.client.find(Locator::Id("second_password")).await?.send_keys(second).await?;
            browser.client.find(Locator::Id("login")).await?.click().await?;
            browser.wait_id("account").await?.click().await?;
            anyhow::Ok(())
        }
    };
    login(email, pw, second).await?;

    // G-7: personal data: edit -> confirm -> change
    browser.wait_id("personal").await?.click().await?;
    let street = browser.wait_id("street").await?;
    street.clear().await?;
    street.send_keys("丸の内2-2").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    assert!(browser.wait_id("summary").await?.text().await?.contains("丸の内2-2"));
    w.find(Locator::Id("save")).await?.click().await?;
    browser.wait_text("notice", "Your details were changed").await?;

    // G-10: password change
    browser.wait_id("change-password").await?.click().await?;
    browser.wait_id("current_password").await?.send_keys(pw).await?;
    w.find(Locator::Id("password")).await?.send_keys("Keeper2025pw").await?;
    w.find(Locator::Id("password_confirm")).await?.send_keys("Keeper2025pw").await?;
    w.find(Locator::Id("save")).await?.click().await?;
    browser.wait_text("notice", "Your password was changed").await?;
    smtp.wait_for_mail_with(email, "Your password was changed", MAIL_WAIT)?;

    // G-8: e-mail change, confirmed from the new mailbox
    let new = "keeper.new@example.jp";
    browser.wait_id("change-email").await?.click().await?;
    browser.wait_id("current_password").await?.send_keys("Keeper2025pw").await?;
    w.find(Locator::Id("email")).await?.send_keys(new).await?;
    w.find(Locator::Id("email_confirm")).await?.send_keys(new).await?;
    w.find(Locator::Id("send")).await?.click().await?;
    browser.wait_text("notice", "open the link").await?;
    let mail = smtp.wait_for_mail(new, MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/account/email/confirm?t=", b.url)).context("confirm link")?;
    w.goto(&link).await?;
    browser.wait_id("send").await?;
    browser.check_page().await.context("the e-mail confirmation page")?;
    w.find(Locator::Id("send")).await?.click().await?;
    assert!(browser.wait_id("message").await?.text().await?.contains("Your e-mail address was changed"));
    smtp.wait_for_mail_with(email, "k****@example.jp", MAIL_WAIT)?;

    // G-11: forgotten password, from the login page, by mail to the new address
    w.goto(&format!("{}/login", b.url)).await?;
    browser.wait_id("forgot").await?.click().await?;
    browser.wait_id("email").await?.send_keys(new).await?;
    w.find(Locator::Id("send")).await?.click().await?;
    browser.wait_id("message").await?;
    let mail = smtp.wait_for_mail_with(new, "/password/reset", MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/password/reset?t=", b.url)).context("reset link")?;
    w.goto(&link).await?;
    browser.wait_id("password").await?;
    browser.check_page().await.context("the password reset page")?;
    w.find(Locator::Id("password")).await?.send_keys("Reborn2026pw").await?;
    w.find(Locator::Id("password_confirm")).await?.send_keys("Reborn2026pw").await?;
    w.find(Locator::Id("second_password")).await?.send_keys("Second2026rb").await?;
    w.find(Locator::Id("second_password_confirm")).await?.send_keys("Second2026rb").await?;
    w.find(Locator::Id("save")).await?.click().await?;
    assert!(browser.wait_id("message").await?.text().await?.contains("Your passwords are set"));
    login(new, "Reborn2026pw", "Second2026rb").await?;
    assert_eq!(browser.wait_id("current-email").await?.text().await?, new);
    browser.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_images_of_stale_drafts_unreviewed_and_sent_back_applications_are_deleted_too() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let image = || vec![("image_front", "front.jpg", id_image(image::ImageFormat::Jpeg))];
    // two drafts with an image, never sent: one old, one from today
    let mut drafts = Vec::new();
    for email in ["old.draft@example.jp", "new.draft@example.jp"] {
        let c = Backend::client();
        let link = registration_link(&b, &smtp, &c, email).await?;
        open_and_agree(&c, &link).await?;
        let (s, page) = send_form(&b, &c, &applicant("下書 太郎", "シタガキ タロウ", "SHITAGAKI Taro"), image()).await?;
        assert_eq!(s, 200, "{page}");
        drafts.push(b.sql(&format!("SELECT id FROM registrations WHERE email = '{email}'"))?);
    }
    // an application nobody reviewed, and one sent back that never came again
    let unreviewed = apply_as(&b, &smtp, "unreviewed@example.jp", &applicant("未審 査子", "ミシンサ サコ", "MISHINSA Sako")).await?;
    let sent_back = apply_as(&b, &smtp, "sent.back@example.jp", &applicant("差戻 次郎", "サシモドシ ジロウ", "SASHIMODOSHI Jiro")).await?;
    let (s, page) = decide(&b, sent_back, "resubmit", "the photo is blurred", "").await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(b.sql(&format!("SELECT status FROM registrations WHERE id = {sent_back}"))?, "resubmit");
    // time passes: the old draft 8 days, the other two 100 days
    b.sql(&format!("UPDATE registration_images SET created_at = created_at - 8 * 86400 WHERE registration_id = {}", drafts[0]))?;
    b.sql(&format!("UPDATE registrations SET submitted_at = submitted_at - 100 * 86400 WHERE id = {unreviewed}"))?;
    b.sql(&format!("UPDATE registrations SET decided_at = decided_at - 100 * 86400 WHERE id = {sent_back}"))?;
    let dir = b.dir.path().join("uploads");
    assert_eq!(std::fs::read_dir(&dir)?.count(), 4);
    let pool = sqlx_pool(&b).await?;
    let gone = shomei_backend::registration::expire_images(&pool, &dir, 90).await?;
    assert_eq!(gone, 3);
    let live = |id: &str| b.sql(&format!("SELECT count(*) FROM registration_images WHERE registration_id = {id} AND deleted_at IS NULL"));
    assert_eq!(live(&drafts[0])?, "0");
    assert_eq!(live(&unreviewed.to_string())?, "0");
    assert_eq!(live(&sent_back.to_string())?, "0");
    assert_eq!(live(&drafts[1])?, "1", "today's draft keeps its image");
    assert_eq!(std::fs::read_dir(&dir)?.count(), 1, "the files are deleted");
    Ok(())
}
