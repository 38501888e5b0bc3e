//! Registration as graduates walk it (issue 14, "Registration"), in Chromium
//! through the real SMTP server: attached ID images survive a form error;
//! graduation month and dates as the manual writes them ("2015/03",
//! "1999/09/09"); the workplace address split like the home address; adding
//! a student ID goes straight to its form, its approval mail quotes the
//! number, and its refusal has a mail of its own.

use crate::accounts::*;
use crate::harness::*;
use anyhow::{bail, Context, Result};
use fantoccini::Locator;
use std::time::{Duration, Instant};

fn tag(screen: Screen) -> &'static str {
    if screen == Screen::Phone {
        "phone"
    } else {
        "desk"
    }
}

/// Chooses an option of a select as a person does (the change event runs the
/// page's own script: faculty follows university, department follows faculty).
async fn choose(browser: &Browser, id: &str, value: &str) -> Result<()> {
    let v = browser
        .client
        .execute(
            "const s = document.getElementById(arguments[0]); s.value = arguments[1]; s.dispatchEvent(new Event('change')); return s.value",
            vec![serde_json::json!(id), serde_json::json!(value)],
        )
        .await?;
    anyhow::ensure!(v.as_str() == Some(value), "#{id} does not offer {value:?}");
    Ok(())
}

/// Waits (10 s) until `script` returns `expect` (a state of the page, e.g. images loaded).
async fn wait_js(browser: &Browser, script: &str, expect: &str) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let v = browser.client.execute(script, vec![]).await?;
        let got = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        if got == expect {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("{script} gave {got:?}, not {expect:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_into(browser: &Browser, id: &str, text: &str) -> Result<()> {
    let e = browser.wait_id(id).await?;
    e.clear().await?;
    e.send_keys(text).await?;
    Ok(())
}

/// The applicant of [`APPLICANT_REGISTER_LINE`] on the form, with these dates.
async fn fill_applicant(browser: &Browser, birth: &str, graduation: &str) -> Result<()> {
    type_into(browser, "name_kanji", "試験 太郎").await?;
    type_into(browser, "name_kana", "シケン タロウ").await?;
    type_into(browser, "name_roman", "SHIKEN Taro").await?;
    type_into(browser, "birth_date", birth).await?;
    choose(browser, "university_id", "1").await?;
    choose(browser, "faculty_id", "1").await?;
    choose(browser, "department_id", "1").await?;
    type_into(browser, "student_no", "L15-0909").await?;
    type_into(browser, "graduation_ym", graduation).await?;
    choose(browser, "leaving_type", "graduated").await?;
    type_into(browser, "postal_code", "100-0001").await?;
    type_into(browser, "city", "千代田区").await?;
    choose(browser, "id_document_type", "driving_licence").await?;
    Ok(())
}

/// From a registration link: the terms agreed, the form open.
async fn open_form(browser: &Browser, link: &str) -> Result<()> {
    browser.client.goto(link).await?;
    browser.wait_id("agree").await?.click().await?;
    browser.client.find(Locator::Id("agree-button")).await?.click().await?;
    browser.wait_id("name_kanji").await?;
    Ok(())
}

async fn staff_login_in_browser(browser: &Browser, b: &Backend) -> Result<()> {
    browser.log_in_as_demo_staff(b).await
}

/// Writes an ID image file to attach.
fn image_file(dir: &std::path::Path, name: &str, format: image::ImageFormat) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, id_image(format))?;
    Ok(path.display().to_string())
}

const THUMBS: &str = "return Array.from(document.querySelectorAll('img.thumb')).map(i => i.complete ? i.naturalWidth : 0).join(',')";

on_both_screens!(a_form_error_keeps_the_attached_images_shown_as_attached_sending_again_without_them_succeeds_and_staff_see_both, a_form_error_keeps_the_attached_images_shown_as_attached_sending_again_without_them_succeeds_and_staff_see_both_at_phone_width, a_form_error_keeps_the_attached_images_shown_as_attached_sending_again_without_them_succeeds_and_staff_see_both_on);
async fn a_form_error_keeps_the_attached_images_shown_as_attached_sending_again_without_them_succeeds_and_staff_see_both_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let email = format!("images.kept.{}@example.jp", tag(screen));
    let link = registration_link(&b, &smtp, &Backend::client(), &email).await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    open_form(&browser, &link).await?;
    fill_applicant(&browser, "1999/09/09", "2015/03").await?;
    // a mistake in the katakana name, and both sides of the licence attached
    type_into(&browser, "name_kana", "しけん たろう").await?;
    let dir = tempfile::tempdir()?;
    w.find(Locator::Id("image_front")).await?.send_keys(&image_file(dir.path(), "licence-front.jpg", image::ImageFormat::Jpeg)?).await?;
    w.find(Locator::Id("image_back")).await?.send_keys(&image_file(dir.path(), "licence-back.png", image::ImageFormat::Png)?).await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    let err = browser.wait_id("name_kana-error").await?.text().await?;
    assert!(err.contains("katakana"), "[{screen:?}] {err}");

    // both images are kept in the draft...
    let id = b.sql(&format!("SELECT id FROM registrations WHERE email = '{email}'"))?;
    let kept = || -> Result<String> {
        let rows = b.sql(&format!(
            "SELECT ordinal || ':' || original_name FROM registration_images WHERE registration_id = {id} AND deleted_at IS NULL ORDER BY ordinal"
        ))?;
        Ok(rows.lines().collect::<Vec<_>>().join(","))
    };
    assert_eq!(kept()?, "0:licence-front.jpg,1:licence-back.png");
    // ...and shown as attached: the file name and a thumbnail, with a way to replace each
    assert_eq!(browser.wait_id("attached-name-image_front").await?.text().await?, "licence-front.jpg");
    assert_eq!(w.find(Locator::Id("attached-name-image_back")).await?.text().await?, "licence-back.png");
    wait_js(&browser, THUMBS, "320,320").await?;
    let label = w.find(Locator::Css("label[for=image_front]")).await?.text().await?;
    assert!(label.contains("Replace the image"), "{label}");
    let chosen = w.execute("return document.getElementById('image_front').files.length + document.getElementById('image_back').files.length", vec![]).await?;
    assert_eq!(chosen.as_i64(), Some(0), "nothing is chosen again");

    // corrected and sent again without attaching anything: accepted
    type_into(&browser, "name_kana", "シケン タロウ").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    let summary = browser.wait_id("summary").await?.text().await?;
    assert!(summary.contains("licence-front.jpg") && summary.contains("licence-back.png"), "{summary}");
    w.find(Locator::Id("apply")).await?.click().await?;
    browser.wait_id("message").await?;
    assert_eq!(b.sql(&format!("SELECT status FROM registrations WHERE id = {id}"))?, "pending");
    assert_eq!(kept()?, "0:licence-front.jpg,1:licence-back.png", "the same two images went with the application");

    // the staff's review page shows both images
    staff_login_in_browser(&browser, &b).await?;
    w.goto(&format!("{}/admin/registrations/{id}", b.url)).await?;
    browser.wait_id("approve").await?;
    wait_js(&browser, "return Array.from(document.querySelectorAll('img.id-image')).map(i => i.complete ? i.naturalWidth : 0).join(',')", "320,320").await?;
    let captions = w.execute("return Array.from(document.querySelectorAll('figcaption')).map(f => f.textContent).join('|')", vec![]).await?;
    let captions = captions.as_str().unwrap_or_default().to_string();
    assert!(captions.contains("licence-front.jpg") && captions.contains("licence-back.png"), "{captions}");
    browser.close().await;
    Ok(())
}

on_both_screens!(graduation_2015_03_and_birth_date_1999_09_09_as_the_manual_writes_them_are_accepted_and_stored_as_those_dates, graduation_2015_03_and_birth_date_1999_09_09_as_the_manual_writes_them_are_accepted_and_stored_as_those_dates_at_phone_width, graduation_2015_03_and_birth_date_1999_09_09_as_the_manual_writes_them_are_accepted_and_stored_as_those_dates_on);
async fn graduation_2015_03_and_birth_date_1999_09_09_as_the_manual_writes_them_are_accepted_and_stored_as_those_dates_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    register_knows_applicant(&b).await?;
    let email = "manual.dates@example.jp";
    let link = registration_link(&b, &smtp, &Backend::client(), email).await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    open_form(&browser, &link).await?;
    // text fields that say the format; a wrong one is named next to its field with the format
    let hints = w.execute("return [document.getElementById('birth_date').type, document.getElementById('graduation_ym').type, document.getElementById('birth_date-hint').textContent, document.getElementById('graduation_ym-hint').textContent].join('|')", vec![]).await?;
    assert_eq!(hints.as_str(), Some("text|text|例 / e.g. 1999/09/09|例 / e.g. 2015/03"));
    fill_applicant(&browser, "1999/13/09", "March 2015").await?;
    let dir = tempfile::tempdir()?;
    w.find(Locator::Id("image_front")).await?.send_keys(&image_file(dir.path(), "front.jpg", image::ImageFormat::Jpeg)?).await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    let birth_err = browser.wait_id("birth_date-error").await?.text().await?;
    assert!(birth_err.contains("1999/09/09") && birth_err.contains("year/month/day"), "{birth_err}");
    let grad_err = w.find(Locator::Id("graduation_ym-error")).await?.text().await?;
    assert!(grad_err.contains("2015/03") && grad_err.contains("year/month"), "{grad_err}");
    // as the manual writes them
    type_into(&browser, "birth_date", "1999/09/09").await?;
    type_into(&browser, "graduation_ym", "2015/03").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    let summary = browser.wait_id("summary").await?.text().await?;
    assert!(summary.contains("1999-09-09") && summary.contains("2015-03"), "{summary}");
    w.find(Locator::Id("apply")).await?.click().await?;
    browser.wait_id("message").await?;
    browser.close().await;

    // stored as those dates: the application's month, its (sealed) birth date as staff
    // read it, both matching the school register; the approved record's graduation date
    let id: i64 = b.sql(&format!("SELECT id FROM registrations WHERE email = '{email}'"))?.parse()?;
    assert_eq!(b.sql(&format!("SELECT graduation_ym FROM registrations WHERE id = {id}"))?, "2015-03");
    let page = b.staff_page(&format!("/admin/registrations/{id}")).await?;
    assert!(page.contains("Birth date</span></th><td>1999-09-09</td>"), "{page}");
    assert!(element_text(&page, "register-summary").unwrap_or_default().contains("学籍記録と一致"), "the dates match the register's: {page}");
    let (s, page) = decide(&b, id, "approve", "", "").await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(b.sql("SELECT graduation_date FROM student_records WHERE student_no = 'L15-0909'")?, "2015-03-01");

    // the other ways of writing them: 1999-9-9, full-width digits
    let mut fields = applicant("試験 次郎", "シケン ジロウ", "SHIKEN Jiro");
    for (k, v) in fields.iter_mut() {
        match k.as_str() {
            "birth_date" => *v = "1999-9-9".into(),
            "graduation_ym" => *v = "２０１５／３".into(),
            _ => {}
        }
    }
    let other = apply_as(&b, &smtp, "fullwidth.dates@example.jp", &fields).await?;
    assert_eq!(b.sql(&format!("SELECT graduation_ym FROM registrations WHERE id = {other}"))?, "2015-03");
    let page = b.staff_page(&format!("/admin/registrations/{other}")).await?;
    assert!(page.contains("Birth date</span></th><td>1999-09-09</td>"), "{page}");
    Ok(())
}

on_both_screens!(the_workplace_address_is_split_like_the_home_address_and_shown_to_staff_part_by_part, the_workplace_address_is_split_like_the_home_address_and_shown_to_staff_part_by_part_at_phone_width, the_workplace_address_is_split_like_the_home_address_and_shown_to_staff_part_by_part_on);
async fn the_workplace_address_is_split_like_the_home_address_and_shown_to_staff_part_by_part_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let email = "workplace.split@example.jp";
    let link = registration_link(&b, &smtp, &Backend::client(), email).await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    open_form(&browser, &link).await?;
    // the same parts as the home address: postal code, prefecture, city, street, building
    let parts = w.execute(
        "return ['work_postal_code','work_prefecture','work_city','work_street','work_building'].map(f => !!document.getElementById(f)).join(',') + '|' + (document.getElementById('work_address') === null)",
        vec![],
    )
    .await?;
    assert_eq!(parts.as_str(), Some("true,true,true,true,true|true"));
    fill_applicant(&browser, "1999/09/09", "2015/03").await?;
    let work = [
        ("work_name", "梅田商事"),
        ("work_postal_code", "530-0001"),
        ("work_prefecture", "大阪府"),
        ("work_city", "大阪市北区"),
        ("work_street", "梅田1-1-1"),
        ("work_building", "梅田ビル5階"),
        ("work_phone", "06-1234-5678"),
    ];
    for (id, v) in work {
        type_into(&browser, id, v).await?;
    }
    let dir = tempfile::tempdir()?;
    w.find(Locator::Id("image_front")).await?.send_keys(&image_file(dir.path(), "front.jpg", image::ImageFormat::Jpeg)?).await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    let summary = browser.wait_id("summary").await?.text().await?;
    assert!(summary.contains("530-0001 大阪府 大阪市北区 梅田1-1-1 梅田ビル5階"), "{summary}");
    w.find(Locator::Id("apply")).await?.click().await?;
    browser.wait_id("message").await?;

    // staff see each part in its own row
    let id = b.sql(&format!("SELECT id FROM registrations WHERE email = '{email}'"))?;
    staff_login_in_browser(&browser, &b).await?;
    w.goto(&format!("{}/admin/registrations/{id}", b.url)).await?;
    browser.wait_id("details").await?;
    // each row as staff read it: its heading and its value
    let rows = w
        .execute("return Array.from(document.querySelectorAll('#details tr')).map(r => [(r.querySelector('th') || {}).textContent || '', (r.querySelector('td') || {}).textContent || ''])", vec![])
        .await?;
    let rows: Vec<(String, String)> = rows
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| (r[0].as_str().unwrap_or_default().trim().to_string(), r[1].as_str().unwrap_or_default().trim().to_string()))
        .collect();
    for (en, v) in [
        ("Workplace name", "梅田商事"),
        ("Workplace postal code", "530-0001"),
        ("Workplace prefecture", "大阪府"),
        ("Workplace city", "大阪市北区"),
        ("Workplace street and number", "梅田1-1-1"),
        ("Workplace building and room", "梅田ビル5階"),
        ("Workplace phone", "06-1234-5678"),
    ] {
        assert!(rows.iter().any(|(th, td)| th.ends_with(en) && td == v), "{en} = {v}: {rows:?}");
    }
    browser.close().await;
    Ok(())
}

on_both_screens!(adding_a_student_id_goes_straight_to_the_form_without_the_terms_and_its_approval_mail_quotes_the_number, adding_a_student_id_goes_straight_to_the_form_without_the_terms_and_its_approval_mail_quotes_the_number_at_phone_width, adding_a_student_id_goes_straight_to_the_form_without_the_terms_and_its_approval_mail_quotes_the_number_on);
async fn adding_a_student_id_goes_straight_to_the_form_without_the_terms_and_its_approval_mail_quotes_the_number_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let email = format!("second.id.{}@example.jp", tag(screen));
    graduate(&b, &smtp, &email, "Twoids2024pw", "Second2024ti").await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    w.goto(&format!("{}/login", b.url)).await?;
    browser.wait_id("email").await?.send_keys(&email).await?;
    w.find(Locator::Id("password")).await?.send_keys("Twoids2024pw").await?;
    w.find(Locator::Id("second_password")).await?.send_keys("Second2024ti").await?;
    w.find(Locator::Id("login")).await?.click().await?;
    browser.wait_id("new-order").await?;
    w.goto(&format!("{}/account", b.url)).await?;
    browser.wait_id("add-student-id").await?.click().await?;
    browser.wait_id("notice").await?;
    let mail = smtp.wait_for_mail_with(&email, "add_student_id", MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/register/open?purpose=add_student_id", b.url)).context("link")?;

    // the link opens the in-school form itself: no terms again
    w.goto(&link).await?;
    browser.wait_id("student_no").await?;
    let page = w.execute("return [document.getElementById('agree') === null, document.getElementById('name_kanji') === null, document.title].join('|')", vec![]).await?;
    let page = page.as_str().unwrap_or_default().to_string();
    assert!(page.starts_with("true|true|") && page.contains("Add a student ID"), "[{screen:?}] {page}");
    choose(&browser, "university_id", "1").await?;
    choose(&browser, "faculty_id", "2").await?;
    choose(&browser, "department_id", "3").await?;
    type_into(&browser, "student_no", "G19-0007").await?;
    type_into(&browser, "graduation_ym", "2021/03").await?;
    choose(&browser, "leaving_type", "graduated").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    let summary = browser.wait_id("summary").await?.text().await?;
    assert!(summary.contains("G19-0007") && summary.contains("2021-03"), "{summary}");
    w.find(Locator::Id("apply")).await?.click().await?;
    browser.wait_id("message").await?;
    browser.close().await;
    let id: i64 = b.sql("SELECT id FROM registrations WHERE kind = 'add_student_id' AND status = 'pending'")?.parse()?;
    assert_eq!(b.sql("SELECT count(*) FROM one_time_tokens WHERE purpose = 'add_student_id' AND used_at IS NOT NULL")?, "1", "the link was used by the form");

    // staff approve: the mail says which number was added
    let (s, page) = decide(&b, id, "approve", "", "").await?;
    assert_eq!(s, 200, "{page}");
    let mail = smtp.wait_for_mail_with(&email, "additional student ID was approved", MAIL_WAIT)?;
    assert!(mail.contains("追加した学籍番号: G19-0007") && mail.contains("Student ID added: G19-0007"), "{mail}");
    Ok(())
}

on_both_screens!(refusing_an_added_student_id_sends_a_refusal_mail_of_its_own_with_the_number_and_reason, refusing_an_added_student_id_sends_a_refusal_mail_of_its_own_with_the_number_and_reason_at_phone_width, refusing_an_added_student_id_sends_a_refusal_mail_of_its_own_with_the_number_and_reason_on);
async fn refusing_an_added_student_id_sends_a_refusal_mail_of_its_own_with_the_number_and_reason_on(screen: Screen) -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let email = "refused.id@example.jp";
    let c = graduate(&b, &smtp, email, "Refused2024pw", "Second2024rf").await?;
    let (s, path, _) = post_form(&c, &format!("{}/account", b.url), &format!("{}/account/student-ids", b.url), &[]).await?;
    assert_eq!((s, path.as_str()), (200, "/account"));
    let mail = smtp.wait_for_mail_with(email, "add_student_id", MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/register/open?purpose=add_student_id", b.url)).context("link")?;
    // the form straight from the link; its first sending uses the link
    let page = c.get(&link).send().await?.text().await?;
    let (csrf, t) = (form_value(&page, "csrf").context("csrf")?, form_value(&page, "t").context("the link's token on the form")?);
    let mut form = reqwest::multipart::Form::new().text("csrf", csrf).text("t", t).text("purpose", "add_student_id");
    for (k, v) in [("university_id", "1"), ("faculty_id", "2"), ("department_id", "3"), ("student_no", "G19-0008"), ("graduation_ym", "2021/03"), ("leaving_type", "graduated")] {
        form = form.text(k, v);
    }
    let r = c.post(format!("{}/register/form", b.url)).multipart(form).send().await?;
    let path = r.url().path().to_string();
    let body = r.text().await?;
    assert_eq!(path, "/register/confirm", "{body}");
    apply(&b, &c).await?;
    let id = b.sql("SELECT id FROM registrations WHERE kind = 'add_student_id'")?;

    // staff refuse it on the panel, with a reason
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    staff_login_in_browser(&browser, &b).await?;
    w.goto(&format!("{}/admin/registrations/{id}", b.url)).await?;
    browser.wait_id("reason").await?.send_keys("No enrolment under G19-0008 in our records.").await?;
    w.find(Locator::Id("reject")).await?.click().await?;
    browser.wait_id("empty").await?;
    browser.close().await;
    assert_eq!(b.sql(&format!("SELECT status FROM registrations WHERE id = {id}"))?, "rejected");

    // its own mail: a refused student ID (number, reason, the account unchanged),
    // neither the approval's text nor the refused application's
    let mail = smtp.wait_for_mail_with(email, "Your request to add a student ID was refused", MAIL_WAIT)?;
    assert!(mail.contains("学籍番号の追加は承認されませんでした") && mail.contains("学籍番号の追加申請は承認されませんでした"), "{mail}");
    assert!(mail.contains("申請した学籍番号: G19-0008") && mail.contains("Student ID requested: G19-0008"), "{mail}");
    assert!(mail.contains("No enrolment under G19-0008 in our records."), "{mail}");
    assert!(mail.contains("student IDs already on it are unchanged"), "{mail}");
    let approval = shomei_backend::mail::student_id_approved(&shomei_backend::mail::APPLICANT, "G19-0008");
    let generic = shomei_backend::mail::application_rejected(&shomei_backend::mail::APPLICANT, "No enrolment under G19-0008 in our records.");
    for other in [&approval, &generic] {
        for part in other.subject.split(" / ") {
            assert!(!part.is_empty() && !mail.contains(part), "not {part:?}: {mail}");
        }
    }
    Ok(())
}
