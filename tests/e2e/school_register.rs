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
    // bad rows: every one named, nothing imported
    let (s, page) = import(&b, &format!("{HEAD}L19-0042,鈴木 花子,スズキ ハナコ,SUZUKI Hanako,2001-02-30,LET,MATH,,,2019-04-01,2018-03-25,graduated\nL19-0042,x,x,x,2001-01-01,LET,JLIT,,,2019-04-01,,enrolled\n")).await?;
    assert_eq!(s, 400);
    for needle in ["line 2 (birth_date)", "line 2 (department_code)", "line 2 (graduation_date)", "line 3 (student_no): the same student number as line 2"] {
        assert!(page.contains(needle), "{needle} missing: {page}");
    }
    assert_eq!(b.sql("SELECT count(*) FROM school_register")?, "0", "nothing half-imported");

    // version 1: the demo graduate's name as in school was her maiden name
    let v1 = format!(
        "{HEAD}L19-0042,鈴木 花子,スズキ ハナコ,SUZUKI Hanako,2001-04-02,LET,JLIT,学士（文学）,Bachelor of Arts,2019-04-01,2024-03-25,graduated\n\
         L15-0909,試験 太郎,シケン タロウ,SHIKEN Taro,1999-09-09,LET,JLIT,学士（文学）,Bachelor of Arts,2011-04-01,2015-03-25,graduated\n"
    );
    let (s, page) = import(&b, &v1).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(element_text(&page, "import-count").as_deref(), Some("1"));
    // (read by a child process: closing a file of the database in this process would drop the backend's locks)
    // the rows may still be in the write-ahead log: both files, and the rows themselves through SQL
    assert_eq!(b.sql("SELECT COUNT(*) FROM school_register")?, "2", "the rows are there");
    assert_eq!(b.sql("SELECT COUNT(*) FROM school_register WHERE birth_date_sealed LIKE '%2001-04-02%' OR birth_date_sealed LIKE '%1999-09-09%'")?, "0", "birth dates are sealed");
    for f in ["backend.sqlite", "backend.sqlite-wal"] {
        let path = b.dir.path().join(f);
        if path.exists() {
            let plain = std::process::Command::new("grep").args(["-c", "-a", "2001-04-02"]).arg(&path).output()?;
            assert_eq!(String::from_utf8_lossy(&plain.stdout).trim(), "0", "no birth date in clear in {f}");
        }
    }

    // certificates print the register: name as in school, and a transcript its admission date
    let (_, _, order) = order_lines_as_demo(&b, &[("graduation", 1), ("transcript", 1)]).await?;
    let text = pdf_text(&b, &order.to_string()).await?;
    assert!(text.contains("鈴木 花子") && text.contains("SUZUKI Hanako") && !text.contains("山田"), "{text}");
    assert!(text.contains("2024年3月25日") && text.contains("2019年4月1日"), "graduation and admission dates: {text}");

    // version 2 keeps version 1
    let (s, _) = import(&b, &v1.replace("鈴木 花子", "鈴木 華子")).await?;
    assert_eq!(s, 200);
    assert_eq!(b.sql("SELECT count(*) FROM school_register")?, "4");

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
