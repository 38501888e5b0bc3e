//! D-3: the registrar's school register: imported from CSV whole or not at
//! all as versions, printed on certificates (names as in school, dates,
//! degree), and set beside applications for the staff who review them.

use crate::accounts::*;
use crate::harness::*;
use anyhow::{Context, Result};

const HEAD: &str = "student_no,name_kanji,name_kana,name_roman,birth_date,faculty_code,department_code,degree_ja,degree_en,admission_date,graduation_date,leaving_type\n";

async fn import(b: &Backend, csv: &str) -> Result<(u16, String)> {
    let staff = b.staff_client().await?;
    let url = format!("{}/admin/school-register", b.url);
    let csrf = csrf_of(&staff, &url).await?;
    let form = reqwest::multipart::Form::new().text("csrf", csrf).part("file", reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("register.csv"));
    let r = staff.post(&url).multipart(form).send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

async fn pdf_text(b: &Backend, order_id: &str) -> Result<String> {
    let path = b.dir.path().join(format!("register-{order_id}.pdf"));
    std::fs::write(&path, b.order_pdf(&order_id).await?)?;
    let out = std::process::Command::new("pdftotext").arg(&path).arg("-").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_school_register_is_imported_as_versions_printed_and_checked_against_applications() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    // the demo's register (the registrar's first import) is there from the start
    assert_eq!(b.sql("SELECT count(*) FROM school_register")?, "2", "the demo register");
    // bad rows: every one named, nothing imported
    let (s, page) = import(&b, &format!("{HEAD}L19-0042,鈴木 花子,スズキ ハナコ,SUZUKI Hanako,2001-02-30,LET,MATH,,,2019-04-01,2018-03-25,graduated\nL19-0042,x,x,x,2001-01-01,LET,JLIT,,,2019-04-01,,enrolled\n")).await?;
    assert_eq!(s, 400);
    for needle in ["line 2 (birth_date)", "line 2 (department_code)", "line 2 (graduation_date)", "line 3 (student_no): the same student number as line 2"] {
        assert!(page.contains(needle), "{needle} missing: {page}");
    }
    assert_eq!(b.sql("SELECT count(*) FROM school_register")?, "2", "nothing half-imported");

    // version 1: the demo graduate's name as in school was her maiden name
    let v1 = format!(
        "{HEAD}L19-0042,鈴木 花子,スズキ ハナコ,SUZUKI Hanako,2001-04-02,LET,JLIT,学士（文学）,Bachelor of Arts,2019-04-01,2024-03-25,graduated\n\
         L15-0909,試験 太郎,シケン タロウ,SHIKEN Taro,1999-09-09,LET,JLIT,学士（文学）,Bachelor of Arts,2011-04-01,2015-03-25,graduated\n"
    );
    let (s, page) = import(&b, &v1).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(element_text(&page, "import-count").as_deref(), Some("2"), "the demo's version and this one");
    // (read by a child process: closing a file of the database in this process would drop the backend's locks)
    // the rows may still be in the write-ahead log: both files, and the rows themselves through SQL
    assert_eq!(b.sql("SELECT COUNT(*) FROM school_register")?, "4", "the rows are there");
    assert_eq!(b.sql("SELECT COUNT(*) FROM school_register WHERE birth_date_sealed LIKE '%2001-04-02%' OR birth_date_sealed LIKE '%1999-09-09%'")?, "0", "birth dates are sealed");
    assert!(!b.stored_in_clear("2001-04-02")?, "no birth date in clear in the database's files");

    // certificates print the register: name as in school, and a transcript its admission date
    let (_, _, order) = order_lines_as_demo(&b, &[("graduation", 1), ("transcript", 1)]).await?;
    let text = pdf_text(&b, &order.to_string()).await?;
    assert!(text.contains("鈴木 花子") && text.contains("SUZUKI Hanako") && !text.contains("山田"), "{text}");
    assert!(text.contains("2024年3月25日") && text.contains("2019年4月1日"), "graduation and admission dates: {text}");

    // version 2 keeps version 1
    let (s, _) = import(&b, &v1.replace("鈴木 花子", "鈴木 華子")).await?;
    assert_eq!(s, 200);
    assert_eq!(b.sql("SELECT count(*) FROM school_register")?, "6");

    // an application that matches the register, and one that does not
    let ok = apply_as(&b, &smtp, "match@example.jp", &applicant("試験 太郎", "シケン タロウ", "SHIKEN Taro")).await?;
    let mut fields = applicant("試験 太郎", "シケン タロウ", "SHIKEN Taro");
    for f in fields.iter_mut().filter(|f| f.0 == "birth_date") {
        f.1 = "1999-09-10".into();
    }
    let off = apply_as(&b, &smtp, "differs@example.jp", &fields).await?;
    let page = b.staff_page(&format!("/admin/registrations/{ok}")).await?;
    assert!(element_text(&page, "register-summary").unwrap_or_default().contains("✓") && page.contains("matches the school register"), "{}", page.split("id=\"register-check\"").nth(1).unwrap_or(&page));
    let page = b.staff_page(&format!("/admin/registrations/{off}")).await?;
    assert!(page.contains("1 fields differ from the school register"), "{page}");
    let rows = page.split("id=\"register-rows\"").nth(1).context("comparison table")?;
    let differing: Vec<&str> = rows.split("<tr data-same=\"false\">").skip(1).collect();
    assert_eq!(differing.len(), 1);
    assert!(differing[0].contains("Birth date") && differing[0].contains("1999-09-10") && differing[0].contains("1999-09-09"), "{}", differing[0]);
    Ok(())
}

/// The demo graduate orders (catalogue code, copies) for on-campus print by IC card; returns the order id.
async fn order_lines_as_demo(b: &Backend, lines: &[(&str, u32)]) -> Result<(u16, String, i64)> {
    let c = Backend::client();
    portal_login(b, &c, shomei_backend::demo::GRADUATE_EMAIL, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    let mut fields: Vec<(String, String)> = vec![("student_record_id".into(), "1".into()), ("delivery".into(), "campus".into()), ("payment_method".into(), "card".into())];
    for (code, n) in lines {
        let id = b.sql(&format!("SELECT id FROM certificate_types WHERE code = '{code}'"))?;
        fields.push((format!("copies_{id}"), n.to_string()));
    }
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, _, page) = post_form(&c, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url), &refs).await?;
    anyhow::ensure!(s == 200, "order: {s} {page}");
    let id = b.sql("SELECT coalesce(max(id), 0) FROM orders")?.parse()?;
    anyhow::ensure!(id > 0, "no order: {page}");
    Ok((s, page, id))
}

/// D-3: an applicant whose student number the register does not know. The
/// review page warns, and approving needs the warning acknowledged; the
/// approved graduate is refused at ordering in both languages (contact the
/// registrar), with no order made. Once the registrar records the number,
/// the certificate states the register's graduation date, never the
/// applicant's "2017-03" (nor a day the code made up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_states_only_the_registers_facts_and_none_without_a_register_entry() -> Result<()> {
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let email = "kakuu.ichiro@example.jp";
    let mut fields = applicant("架空 一郎", "カクウ イチロウ", "KAKUU Ichiro");
    for (k, v) in fields.iter_mut() {
        match k.as_str() {
            "student_no" => *v = "L17-7777".into(),
            "graduation_ym" => *v = "2017-03".into(),
            _ => {}
        }
    }
    let id = apply_as(&b, &smtp, email, &fields).await?;

    // the review page warns; approving without acknowledging it is refused
    let staff = b.staff_client().await?;
    let review = staff.get(format!("{}/admin/registrations/{id}", b.url)).send().await?.text().await?;
    assert!(review.contains("id=\"register-warning\"") && review.contains("not in the school register") && review.contains("学籍記録にありません"), "{review}");
    let (s, _, page) = post_form(&staff, &format!("{}/admin/registrations/{id}", b.url), &format!("{}/admin/registrations/{id}/decide", b.url), &[("action", "approve"), ("reason", ""), ("target_user", "")]).await?;
    assert!(s == 400 && page.contains("I checked the school register warning"), "{s} {page}");
    assert_eq!(b.sql(&format!("SELECT status FROM registrations WHERE id = {id}"))?, "pending");
    let initial = approve(&b, &smtp, id, email).await?;
    let c = Backend::client();
    portal_login(&b, &c, email, &initial, "").await?;
    let (s, _, _) = post_form(&c, &format!("{}/password/setup", b.url), &format!("{}/password/setup", b.url),
        &[("password", "Kakuu2024pass"), ("password_confirm", "Kakuu2024pass"), ("second_password", "Second2024kk"), ("second_password_confirm", "Second2024kk")]).await?;
    assert_eq!(s, 200);

    // ordering: told at the form and refused at the order, nothing made
    let form = c.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(form.contains("id=\"not-in-register\"") && form.contains("no entry for this student number") && form.contains("教務課にお問い合わせください"), "{form}");
    assert!(!form.contains("name=\"copies_"), "nothing offered without a register entry: {form}");
    let grad = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let copies = format!("copies_{grad}");
    let order = [("student_record_id", "0"), (copies.as_str(), "1"), ("delivery", "campus"), ("payment_method", "card")];
    let record = b.sql(&format!("SELECT r.id FROM student_records r JOIN users u ON u.id = r.user_id WHERE u.email = '{email}'"))?;
    let order: Vec<(&str, &str)> = order.iter().map(|(k, v)| if *k == "student_record_id" { (*k, record.as_str()) } else { (*k, *v) }).collect();
    let (s, _, page) = post_form(&c, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url), &order).await?;
    assert!(s == 400 && page.contains("no entry for this student number") && page.contains("学籍簿にこの学籍番号の記録がない"), "{s} {page}");
    let user_orders = format!("SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id WHERE u.email = '{email}'");
    assert_eq!(b.sql(&user_orders)?, "0", "no order, not even half-made");

    // the registrar records the number: the certificate states the register's date
    let (s, page) = import_register(&b, "L17-7777,架空 一郎,カクウ イチロウ,KAKUU Ichiro,1999-09-09,LET,JLIT,学士（文学）,Bachelor of Arts,2013-04-01,2018-09-20,graduated").await?;
    assert_eq!(s, 200, "{page}");
    let (s, _, page) = post_form(&c, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url), &order).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(b.sql(&user_orders)?, "1");
    let order_id = b.sql(&format!("SELECT o.id FROM orders o JOIN users u ON u.id = o.user_id WHERE u.email = '{email}'"))?;
    let text = pdf_text(&b, &order_id).await?;
    assert!(text.contains("2018年9月20日") && text.contains("September 20, 2018"), "the register's graduation date: {text}");
    for made_up in ["2017年3月", "March 1, 2017", "2017"] {
        assert!(!text.contains(made_up), "{made_up:?} from the application printed: {text}");
    }
    Ok(())
}
