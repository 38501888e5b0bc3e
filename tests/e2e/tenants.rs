//! Universities are tenants (issue 15): what belongs to one university never
//! reaches another's stations.

use crate::harness::*;
use crate::staff::first_login;
use crate::station_api::Api;
use anyhow::{Context, Result};
use serde_json::json;
use shomei_backend::demo;

/// The orders a station's offline bundle hands it, by id.
async fn bundled_orders(api: &Api) -> Result<Vec<i64>> {
    let (s, signed) = api.get("/offline/bundle").await?;
    anyhow::ensure!(s == 200, "bundle: {s} {signed}");
    let bundle: serde_json::Value = serde_json::from_str(signed["bundle"].as_str().context("bundle")?)?;
    let mut ids: Vec<i64> = bundle["jobs"].as_array().context("jobs")?.iter().filter_map(|j| j["order_id"].as_i64()).collect();
    ids.sort();
    Ok(ids)
}

/// The demo graduate also studied at `university` (a faculty and
/// department of it, and a student record there): (faculty, department, record).
fn studied_at(b: &Backend, university: i64) -> Result<(String, String, String)> {
    let faculty = b.sql(&format!("INSERT INTO faculties (university_id, code, name_ja, name_en) VALUES ({university}, 'ENG', '工学部', 'Faculty of Engineering') RETURNING id"))?;
    let department = b.sql(&format!("INSERT INTO departments (faculty_id, code, name_ja, name_en) VALUES ({faculty}, 'MECH', '機械工学科', 'Department of Mechanical Engineering') RETURNING id"))?;
    let user = b.sql(&format!("SELECT id FROM users WHERE email = '{}'", demo::GRADUATE_EMAIL))?;
    let record = b.sql(&format!(
        "INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji, name_kana, name_roman, birth_date, leaving_type, graduation_date)
         VALUES ({user}, {university}, {faculty}, {department}, 'K20-0001', '山田 花子', 'ヤマダ ハナコ', 'YAMADA Hanako', '', 'graduated', '2022-03-25') RETURNING id"
    ))?;
    Ok((faculty, department, record))
}

/// A station serves its own university: another university's print number
/// is refused at it exactly as a number nobody has, and counted as a wrong
/// guess, while that university's station reserves it; each station's
/// offline bundle holds its own university's orders only, and the other's
/// PDF is refused to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_never_receives_another_universitys_numbers_or_pdfs() -> Result<()> {
    let b = Backend::start(None).await?;
    // a second university, where the demo graduate also studied
    let kita: i64 = b.sql("INSERT INTO universities (name_ja, name_en, timezone, system_fee) VALUES ('北大学', 'Kita University', 'Asia/Tokyo', 100) RETURNING id")?.parse()?;
    let (faculty, department, record) = studied_at(&b, kita)?;
    // two paid orders: one of each university
    let mut orders = Vec::new();
    for _ in 0..2 {
        let page = b.order_as_graduate(1).await?;
        let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
        let id: i64 = b.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?.parse()?;
        orders.push((id, number));
    }
    let now = shomei_backend::time::now();
    b.sql(&format!("UPDATE orders SET status = 'paid', paid_at = {now}"))?;
    let ((shomei_order, shomei_number), (kita_order, kita_number)) = (orders[0].clone(), orders[1].clone());
    b.sql(&format!("UPDATE orders SET student_record_id = {record} WHERE id = {kita_order}"))?;

    // a station of each: the demo university's enrolled by its staff, Kita's from the console's function
    let shomei = Api::new(&b).await?;
    let pool = crate::accounts::sqlx_pool(&b).await?;
    let (kita_station, code) = shomei_backend::stations::create_enrolment(&pool, kita, "Kita Library 1F", None, 3600).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let kita_api = Api::enrolled_with(&b, &code).await?;
    assert_eq!(b.sql(&format!("SELECT university_id FROM stations WHERE id = {kita_station}"))?, kita.to_string());

    // the other university's number is no number here, as one nobody has
    let nobody = shomei_shared::PrintNumber::generate(&mut rand::thread_rng());
    let (s1, r1) = shomei.post("/reservations", json!({ "print_number": kita_number })).await?;
    let (s2, r2) = shomei.post("/reservations", json!({ "print_number": nobody.as_str() })).await?;
    assert_eq!((s1, r1["code"].clone()), (404, json!("print_number_unknown")), "{r1}");
    assert_eq!((s1, &r1), (s2, &r2), "told apart from a number nobody has");
    let station: i64 = b.sql("SELECT id FROM stations WHERE name = 'API test station'")?.parse()?;
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM throttle_failures WHERE key = 'wrong-number/{station}'"))?, "2", "both count as wrong guesses");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM reservations WHERE order_id = {kita_order}"))?, "0");
    // its own station reserves it; the first university's number is unknown there
    let (s, r) = kita_api.post("/reservations", json!({ "print_number": kita_number })).await?;
    assert_eq!(s, 200, "{r}");
    let kita_reservation = r["reservation_id"].as_i64().context("reservation")?;
    let (s, _) = kita_api.get(&format!("/reservations/{kita_reservation}/document")).await?;
    assert_eq!(s, 200, "the paid order's PDF, to its own university's station");
    let (s, _) = shomei.get(&format!("/reservations/{kita_reservation}/document")).await?;
    assert!(s == 403 || s == 404, "another station's reservation gives no PDF: {s}");
    let (s, r) = kita_api.post("/reservations", json!({ "print_number": shomei_number })).await?;
    assert_eq!((s, r["code"].clone()), (404, json!("print_number_unknown")), "{r}");

    // offline copies: each station its own university's orders, and only those PDFs
    assert_eq!(bundled_orders(&shomei).await?, vec![shomei_order]);
    assert_eq!(bundled_orders(&kita_api).await?, vec![kita_order]);
    let (s, _) = shomei.get(&format!("/offline/documents/{kita_order}")).await?;
    assert_eq!(s, 404, "the other university's PDF");
    let (s, _) = kita_api.get(&format!("/offline/documents/{shomei_order}")).await?;
    assert_eq!(s, 404, "the other university's PDF");

    // offline card payment (policy b) at both universities: the balance snapshot each station
    // is handed holds the cards of its own university's students only
    b.sql("UPDATE universities SET offline_cards = 1")?;
    for record_of in ["", &format!("UPDATE orders SET student_record_id = {record} WHERE id = ")] {
        let page = b.order_as_graduate(1).await?;
        let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
        if !record_of.is_empty() {
            b.sql(&format!("{record_of}(SELECT id FROM orders WHERE print_number = '{number}')"))?;
        }
    }
    let kita_only = b.sql("INSERT INTO users (email, kind, password_hash, created_at) VALUES ('kita-only@example.jp', 'graduate', 'x', 0) RETURNING id")?;
    b.sql(&format!(
        "INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji, name_kana, name_roman, birth_date, leaving_type, graduation_date)
         VALUES ({kita_only}, {kita}, {faculty}, {department}, 'K21-0002', '北 一郎', 'キタ イチロウ', 'KITA Ichiro', '', 'graduated', '2023-03-25')"
    ))?;
    b.sql(&format!("INSERT INTO ic_cards (uid, user_id, linked_at) VALUES ('0123456789ABCDEF', {kita_only}, 0)"))?;
    let snapshot = |bundle: serde_json::Value| -> Vec<String> {
        let mut uids: Vec<String> = bundle["balances"].as_array().map(|a| a.iter().filter_map(|c| c["uid"].as_str().map(str::to_string)).collect()).unwrap_or_default();
        uids.sort();
        uids
    };
    let bundle_of = |signed: serde_json::Value| -> Result<serde_json::Value> { Ok(serde_json::from_str(signed["bundle"].as_str().context("bundle")?)?) };
    let (_, signed) = shomei.get("/offline/bundle").await?;
    assert_eq!(snapshot(bundle_of(signed)?), vec![demo::CARD_UID.to_string()], "the first university's station: its student's card only");
    let (_, signed) = kita_api.get("/offline/bundle").await?;
    let mut both = vec![demo::CARD_UID.to_string(), "0123456789ABCDEF".to_string()];
    both.sort();
    assert_eq!(snapshot(bundle_of(signed)?), both, "Kita's station: the cards of both its students");

    // the graduate's portal names each order's university, in the list and on the order's page
    let portal = crate::staff::plain_client();
    let (s, _, page) = crate::accounts::portal_login(&b, &portal, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    anyhow::ensure!(s == 303, "the graduate logs in: {s} {page}");
    let menu = portal.get(format!("{}/portal", b.url)).send().await?.text().await?;
    let university_in_list = |order: i64| {
        menu.split(&format!("href=\"/orders/{order}\"")).nth(1).and_then(|row| row.split("class=\"university\">").nth(1)).and_then(|c| c.split("</td>").next()).map(str::to_string)
    };
    assert_eq!(university_in_list(kita_order).as_deref(), Some("北大学 <span class=\"en\" lang=\"en\">Kita University</span>"), "{menu}");
    assert_eq!(university_in_list(shomei_order).as_deref(), Some("証明大学 <span class=\"en\" lang=\"en\">Shomei University</span>"), "{menu}");
    let page = portal.get(format!("{}/orders/{kita_order}", b.url)).send().await?.text().await?;
    assert_eq!(element_text(&page, "university").as_deref(), Some("北大学"), "{page}");
    Ok(())
}

/// What the first university has, as its staff would see it changed: fees,
/// policy and seal, catalogue, service breaks, stations, orders,
/// applications, staff, certificates, imports.
fn first_universitys_state(b: &Backend) -> Result<String> {
    let mut out = String::new();
    for q in [
        "SELECT system_fee, postage, offline_cards, offline_floor_limit, offline_station_total, length(seal_png), mail_sender, desk_ja, contact_email, alert_emails FROM universities WHERE id = 1",
        "SELECT id, code, name_ja, fee, active, body_ja FROM certificate_types WHERE university_id = 1 ORDER BY id",
        "SELECT id, starts_at, ends_at FROM service_breaks WHERE university_id = 1 ORDER BY id",
        "SELECT id, name, status, in_service, test_page_wanted FROM stations WHERE university_id = 1 ORDER BY id",
        "SELECT id, status, refunded_at, shipped_at, refund_reason FROM orders ORDER BY id",
        "SELECT id, status, reason FROM registrations ORDER BY id",
        "SELECT id, login, active, password_hash, totp_sealed, must_set_password FROM staff WHERE university_id = 1 ORDER BY id",
        "SELECT id, revoked_at FROM certificates ORDER BY id",
        "SELECT COUNT(*) FROM school_register_imports WHERE university_id = 1",
        "SELECT COUNT(*) FROM academic_imports WHERE university_id = 1",
        "SELECT COUNT(*) FROM directory_roster WHERE university_id = 1",
        "SELECT coalesce(directory_kind, '-'), directory_ldap FROM universities WHERE id = 1",
        "SELECT f.id, f.code, f.name_ja, d.id, d.code, d.name_ja FROM faculties f LEFT JOIN departments d ON d.faculty_id = f.id WHERE f.university_id = 1 ORDER BY f.id, d.id",
    ] {
        out.push_str(&b.sql(q)?);
        out.push('\n');
    }
    Ok(out)
}

/// Isolation in the panel. A platform operator adds a university in the
/// panel and it is usable at once: its administrator logs in (no restart)
/// and enrols its station. That administrator then walks every admin route
/// against the first university's objects: each one is "not found" (404),
/// no list, report or export shows any of them, the forms change nothing
/// of them, and the platform's routes are refused. The platform operator
/// sees both universities' stations, each named with its university; a
/// university added by the console command is usable at once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_of_one_university_never_see_change_or_export_anothers_and_a_new_one_is_usable_at_once() -> Result<()> {
    use crate::accounts::post_form;
    use crate::staff::{answer_of, panel_login, plain_client, walk_path, walk_request, Answer, FORM_EXPIRED_WORDS};
    use shomei_backend::http::roles::{Rule, ADMIN_ROUTES};
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let platform = plain_client();
    panel_login(&b, &platform, demo::STAFF_LOGIN, demo::STAFF_PASSWORD, demo::STAFF_TOTP_SECRET).await?;

    // 1. the first university's objects, one of each kind a route acts on
    let (ids, _, _) = crate::staff::walk_objects(&b, &smtp, &platform).await?;
    let order = ids.order.clone();
    let stations_url = format!("{}/admin/stations", b.url);
    let first_type = b.sql("SELECT MIN(id) FROM certificate_types WHERE university_id = 1")?;

    // 2. a platform operator adds a university in the panel: its administrator's credentials, once
    let unis_url = format!("{}/admin/universities", b.url);
    let add = [("name_ja", "北大学"), ("name_en", "Kita University"), ("timezone", "Asia/Tokyo"), ("admin_login", "kita-admin")];
    let (s, _, page) = post_form(&platform, &unis_url, &unis_url, &add).await?;
    assert_eq!(s, 200, "{page}");
    let secret = element_text(&page, "totp-secret").context("the new administrator's second factor")?;
    let initial = element_text(&page, "new-password").context("the new administrator's initial password")?;
    let kita: i64 = b.sql("SELECT id FROM universities WHERE name_en = 'Kita University'")?.parse()?;
    assert!(page.contains("<td>北大学 <span class=\"en\" lang=\"en\">Kita University</span></td>"), "listed: {page}");
    // the same login again is refused, with words, and adds nothing
    let (s, _, again) = post_form(&platform, &unis_url, &unis_url, &[("name_ja", "西大学"), ("name_en", "Nishi University"), ("timezone", "Asia/Tokyo"), ("admin_login", "kita-admin")]).await?;
    assert_eq!(s, 400);
    assert!(element_text(&again, "error").is_some_and(|e| e.ends_with("This login ID is taken.")), "{again}");
    assert_eq!(b.sql("SELECT COUNT(*) FROM universities")?, "2");

    // usable at once: its administrator logs in and enrols the university's station
    let kita_admin = first_login(&b, "kita-admin", &initial, &secret).await?;
    assert_eq!(b.sql("SELECT university_id || '|' || role || '|' || platform FROM staff WHERE login = 'kita-admin'")?, format!("{kita}|admin|0"));
    let (s, _, page) = post_form(&kita_admin, &stations_url, &format!("{stations_url}/enrolment-codes"), &[("name", "Kita Library")]).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(b.sql("SELECT university_id FROM stations WHERE name = 'Kita Library'")?, kita.to_string());

    // Kita's office and sender name, set by its administrator, sign the mails about Kita's orders
    let cat_url = format!("{}/admin/catalogue", b.url);
    let office = [("mail_sender", "北大学 証明書窓口"), ("desk_ja", "北大学 学務課"), ("desk_en", "Kita University Student Affairs"), ("hours_ja", "平日 9:00〜16:00"),
        ("hours_en", "Weekdays 9:00-16:00"), ("contact_phone", "011-000-0000"), ("contact_email", "shomei@kita.example.ac.jp")];
    let (s, _, page) = post_form(&kita_admin, &cat_url, &format!("{cat_url}/office"), &[("contact_email", "not an address")]).await?;
    assert!(s == 400 && page.contains("give a valid e-mail address"), "{s} {page}");
    let (s, _, page) = post_form(&kita_admin, &cat_url, &format!("{cat_url}/office"), &office).await?;
    assert_eq!(s, 303, "{page}");
    // the demo graduate also studied at Kita: an order there, its number sent again
    let (_, _, record) = studied_at(&b, kita)?;
    let number = element_text(&b.order_as_graduate(1).await?, "print-number").context("print number")?.replace(' ', "");
    let kita_order = b.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
    b.sql(&format!("UPDATE orders SET student_record_id = {record} WHERE id = {kita_order}"))?;
    let graduate = plain_client();
    crate::accounts::portal_login(&b, &graduate, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    let order_url = format!("{}/orders/{kita_order}", b.url);
    let (s, _, page) = post_form(&graduate, &order_url, &format!("{order_url}/resend"), &[]).await?;
    assert!(s < 400, "{s} {page}");
    let signed = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "北大学 学務課", std::time::Duration::from_secs(15))?;
    assert!(signed.starts_with("From: 北大学 証明書窓口 <"), "Kita's sender name: {signed}");
    assert!(signed.contains("お問い合わせは次の窓口へお願いします: 北大学 学務課　011-000-0000 / shomei@kita.example.ac.jp　平日 9:00〜16:00"), "{signed}");
    assert!(signed.contains("For questions, contact: Kita University Student Affairs, 011-000-0000 / shomei@kita.example.ac.jp, Weekdays 9:00-16:00"), "{signed}");
    // the first university (no office set) signs its mails as before: no sender name, the general words
    let first = smtp.all_to(demo::GRADUATE_EMAIL).into_iter().next().context("the first order's mail")?;
    assert!(first.starts_with("From: <") && first.contains("お問い合わせは大学の担当窓口へお願いします。") && !first.contains("北大学"), "{first}");
    // and the order's page names Kita's office
    let page = graduate.get(&order_url).send().await?.text().await?;
    assert!(page.contains("<td id=\"office\">北大学 学務課（平日 9:00〜16:00）"), "{page}");

    let before = first_universitys_state(&b)?;
    // with real input: the first university's certificate type is not there to edit
    let cat_url = format!("{}/admin/catalogue", b.url);
    let (s, _, _) = post_form(&kita_admin, &cat_url, &cat_url, &[("id", first_type.as_str()), ("code", "taken-over"), ("name_ja", "乗っ取り"), ("name_en", "Taken over"),
        ("fee", "1"), ("max_copies", "1"), ("leaving_graduated", "1"), ("layout", "certificate"), ("language", "ja"), ("active", "1")]).await?;
    assert_eq!(s, 404);
    assert_eq!(first_universitys_state(&b)?, before);
    // what Kita's administrator does see is Kita's: its station, its own audit lines, an empty report
    let page = kita_admin.get(format!("{}/admin/stations", b.url)).send().await?.text().await?;
    assert!(page.contains("Kita Library") && !page.contains("walk kept"), "{page}");
    let json: serde_json::Value = kita_admin.get(format!("{}/admin/stations.json", b.url)).send().await?.json().await?;
    let names: Vec<&str> = json["stations"].as_array().context("stations")?.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, vec!["Kita Library"]);
    let audit = kita_admin.get(format!("{}/admin/audit", b.url)).send().await?.text().await?;
    assert!(audit.contains("staff:kita-admin") && !audit.contains("staff:staff"), "{audit}");
    for group in ["day", "type", "method"] {
        let csv = kita_admin.get(format!("{}/admin/reports.csv?group={group}&from=2000-01-01&to=2099-12-31", b.url)).send().await?.bytes().await?;
        // Kita's one order (unpaid, one copy), none of the first university's
        let csv = String::from_utf8_lossy(&csv).to_string();
        let rows: Vec<&str> = csv.strip_prefix("\u{feff}key,orders,copies,revenue_yen\r\n").context("the CSV's header")?.lines().collect();
        assert!(rows.len() == 1 && rows[0].ends_with(",1,1,0"), "Kita's {group} report: {csv}");
    }
    let dash = kita_admin.get(format!("{}/admin", b.url)).send().await?.text().await?;
    // the first university's application waits there, not here; Kita's one order is today's
    assert!(dash.contains("class=\"tile\" id=\"dash-applications\"") && dash.contains("class=\"tile waiting\" id=\"dash-today\""), "{dash}");
    assert!(!dash.contains("dash-universities"), "the platform's page is not on a university administrator's dashboard");

    // 3. the walk: every admin route, as Kita's administrator, against the first university's objects
    // (logging out last: it ends the session the rest need)
    // what shows the first university's objects, each seen where its own staff look
    let markers = [
        ("役割 確認".to_string(), "/admin/registrations"),
        ("walk kept".to_string(), "/admin/stations"),
        ("walk-spare".to_string(), "/admin/staff"),
        ("staff:staff".to_string(), "/admin/audit"),
        ("2099-01-01".to_string(), "/admin/service"),
        (format!("href=\"/admin/orders/{order}\""), "/admin/orders"),
        (format!("id=\"code-{first_type}\""), "/admin/catalogue"),
    ];
    for (m, page) in &markers {
        let own = platform.get(format!("{}{page}", b.url)).send().await?.text().await?;
        assert!(own.contains(m.as_str()), "the first university's staff see {m:?} on {page}");
    }
    let csrf = crate::accounts::csrf_of(&kita_admin, &format!("{}/admin/login", b.url)).await?;
    let mut routes: Vec<_> = ADMIN_ROUTES.iter().collect();
    routes.sort_by_key(|r| r.1 == "/admin/logout");
    for (method, pattern, rule) in routes {
        let path = walk_path(pattern, &ids)?;
        let url = format!("{}{path}", b.url);
        let (got, body) = answer_of(walk_request(&kita_admin, method, &url, pattern, &csrf).await?).await?;
        let said = element_text(&body, "error").unwrap_or_else(|| body.chars().take(300).collect());
        assert!(!body.contains(FORM_EXPIRED_WORDS), "{method} {path}: the walk's CSRF token was refused");
        if *rule == Rule::Platform {
            assert_eq!(got, Answer::NoRole, "{method} {path}: the platform's route refused to a university's administrator: {said}");
        } else if pattern.contains('{') {
            assert_eq!(got, Answer::Passed(404), "{method} {path}: another university's object is not found: {said}");
        } else {
            assert!(matches!(got, Answer::Passed(s) if s < 500), "{method} {path}: {got:?} {said}");
        }
        for (m, _) in &markers {
            assert!(!body.contains(m.as_str()), "{method} {path} shows the other university's {m:?}");
        }
    }
    assert_eq!(first_universitys_state(&b)?, before, "the walk changed nothing of the first university");

    // 4. the platform operator sees the whole fleet, each station with its university
    let dash = platform.get(format!("{}/admin", b.url)).send().await?.text().await?;
    assert!(dash.contains("id=\"dash-universities\" href=\"&#x2f;admin&#x2f;universities\""), "the universities, from the platform operator's dashboard: {dash}");
    let page = platform.get(format!("{}/admin/stations", b.url)).send().await?.text().await?;
    assert!(page.contains("Kita Library") && page.contains("walk kept"), "{page}");
    // (the page escapes the slash between the names)
    assert!(page.contains("北大学 &#x2f; Kita University") && page.contains("証明大学 &#x2f; Shomei University"), "{page}");
    let audit = platform.get(format!("{}/admin/audit", b.url)).send().await?.text().await?;
    assert!(audit.contains("university.add") && audit.contains("staff:kita-admin"), "the platform operator reads every university's lines");

    // 5. a university added by the console command is usable at once as well
    let out = b.cli(&["add-university", "--name-ja", "南大学", "--name-en", "Minami University", "--admin", "minami-admin"])?;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said} {}", String::from_utf8_lossy(&out.stderr));
    let field = |prefix: &str| said.lines().find_map(|l| l.split_once(prefix).map(|(_, v)| v.trim().to_string())).unwrap_or_default();
    let (password, secret) = (field("change it at the first login): "), field("TOTP secret: "));
    let minami = first_login(&b, "minami-admin", &password, &secret).await?;
    let page = minami.get(format!("{}/admin/stations", b.url)).send().await?.text().await?;
    assert!(page.contains("id=\"no-stations\""), "its own (empty) fleet: {page}");
    let out = b.cli(&["add-university", "--name-ja", "東大学", "--name-en", "Higashi University", "--admin", "minami-admin"])?;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("This login ID is taken"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(b.sql("SELECT COUNT(*) FROM universities")?, "3");
    Ok(())
}

/// Each university's operators name who is mailed about its stations: an
/// alert (a station offline) goes to its own university's addresses only,
/// never to another university's; a bad address is refused in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_universitys_operators_are_mailed_about_its_own_stations_only() -> Result<()> {
    use crate::accounts::post_form;
    use crate::staff::{panel_login, plain_client};
    let smtp = Smtp::start()?;
    let b = Backend::start_with(Some(smtp.port), |c| c.stations.alert_check_s = 1).await?;
    let platform = plain_client();
    panel_login(&b, &platform, demo::STAFF_LOGIN, demo::STAFF_PASSWORD, demo::STAFF_TOTP_SECRET).await?;
    let unis_url = format!("{}/admin/universities", b.url);
    let (s, _, page) = post_form(&platform, &unis_url, &unis_url, &[("name_ja", "北大学"), ("name_en", "Kita University"), ("timezone", "Asia/Tokyo"), ("admin_login", "kita-admin")]).await?;
    assert_eq!(s, 200, "{page}");
    let kita_admin = first_login(&b, "kita-admin", &element_text(&page, "new-password").context("password")?, &element_text(&page, "totp-secret").context("secret")?).await?;

    // each university's operators give their addresses, and enrol a station
    let stations_url = format!("{}/admin/stations", b.url);
    let (s, _, page) = post_form(&kita_admin, &stations_url, &format!("{stations_url}/alert-emails"), &[("alert_emails", "ops@kita.example, not an address")]).await?;
    assert!(s == 400 && page.contains("Give up to 20 valid e-mail addresses"), "{s} {page}");
    for (who, addresses, station) in [(&platform, "ops@shomei.example", "Shomei Library"), (&kita_admin, "ops@kita.example, night@kita.example", "Kita Library")] {
        let (s, _, page) = post_form(who, &stations_url, &format!("{stations_url}/alert-emails"), &[("alert_emails", addresses)]).await?;
        assert_eq!(s, 303, "{page}");
        let (s, _, page) = post_form(who, &stations_url, &format!("{stations_url}/enrolment-codes"), &[("name", station)]).await?;
        assert_eq!(s, 200, "{page}");
    }
    let page = kita_admin.get(&stations_url).send().await?.text().await?;
    assert!(page.contains("value=\"ops@kita.example, night@kita.example\""), "the form shows the list: {page}");
    // both stations in use and never heard from: offline, an alert each
    b.sql("UPDATE stations SET status = 'active'")?;
    wait_for("both alerts decided", std::time::Duration::from_secs(15), || Ok(b.sql("SELECT COUNT(*) FROM stations WHERE alert = 'offline'")? == "2")).await?;
    wait_for("the alert mails delivered", std::time::Duration::from_secs(15), || Ok(b.sql("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")? == "0")).await?;
    let about = |to: &str| -> Vec<String> {
        smtp.all_to(to).iter().map(|m| if m.contains("Kita Library") { "Kita Library".to_string() } else if m.contains("Shomei Library") { "Shomei Library".to_string() } else { m.clone() }).collect()
    };
    assert_eq!(about("ops@shomei.example"), vec!["Shomei Library"]);
    assert_eq!(about("ops@kita.example"), vec!["Kita Library"]);
    assert_eq!(about("night@kita.example"), vec!["Kita Library"]);
    Ok(())
}

/// A person of one university reads its office wherever the service names
/// a desk: at the foot of their portal pages and in the mails about their
/// account, under its sender name. Someone of two universities (and anyone
/// not signed in) gets the service's own desk: which office to name would
/// be a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_of_one_university_is_shown_and_mailed_its_office_and_a_person_of_two_the_services() -> Result<()> {
    use crate::accounts::post_form;
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let registrar = crate::staff::plain_client();
    crate::staff::panel_login(&b, &registrar, demo::STAFF_LOGIN, demo::STAFF_PASSWORD, demo::STAFF_TOTP_SECRET).await?;
    let cat_url = format!("{}/admin/catalogue", b.url);
    let office = [("mail_sender", "証明大学 証明書窓口"), ("desk_ja", "証明大学 学生課"), ("desk_en", "Shomei Student Office"), ("hours_ja", "平日 10:00〜15:00"),
        ("hours_en", "Weekdays 10:00-15:00"), ("contact_phone", "03-0000-1111"), ("contact_email", "desk@shomei.example.ac.jp")];
    let (s, _, page) = post_form(&registrar, &cat_url, &format!("{cat_url}/office"), &office).await?;
    assert_eq!(s, 303, "{page}");
    let desk = |page: &str| page.split_once("<footer id=\"contact\"").and_then(|(_, f)| f.split_once("</footer>")).map(|(f, _)| f.to_string()).unwrap_or_default();

    // the graduate studied at the first university only: its office at the foot of their pages
    let graduate = crate::staff::plain_client();
    crate::accounts::portal_login(&b, &graduate, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    for path in ["/portal", "/account", "/cards"] {
        let page = graduate.get(format!("{}{path}", b.url)).send().await?.text().await?;
        let foot = desk(&page);
        assert!(foot.contains("証明大学 学生課") && foot.contains("Shomei Student Office") && foot.contains("03-0000-1111") && foot.contains("平日 10:00〜15:00"), "{path}: {foot}");
    }
    // nobody signed in: the service's desk
    let anon = Backend::client().get(format!("{}/login", b.url)).send().await?.text().await?;
    let services = desk(&anon);
    assert!(services.contains("教務課 証明書窓口") && !services.contains("学生課"), "{services}");
    // a mail about their account: signed by the office, under its sender name
    let forgot = format!("{}/password/forgot", b.url);
    let (s, _, _) = post_form(&Backend::client(), &forgot, &forgot, &[("email", demo::GRADUATE_EMAIL)]).await?;
    assert_eq!(s, 200);
    let mail = smtp.wait_for_mail_with(demo::GRADUATE_EMAIL, "/password/reset", crate::accounts::MAIL_WAIT)?;
    assert!(mail.starts_with("From: 証明大学 証明書窓口 <"), "{mail}");
    assert!(mail.contains("For questions, contact: Shomei Student Office, 03-0000-1111 / desk@shomei.example.ac.jp, Weekdays 10:00-15:00"), "{mail}");

    // the graduate also studied at Kita: two offices, so the service's desk and an unsigned mail
    let kita: i64 = b.sql("INSERT INTO universities (name_ja, name_en, timezone, system_fee, desk_ja, desk_en) VALUES ('北大学', 'Kita University', 'Asia/Tokyo', 100, '北大学 学務課', 'Kita Student Affairs') RETURNING id")?.parse()?;
    studied_at(&b, kita)?;
    let page = graduate.get(format!("{}/portal", b.url)).send().await?.text().await?;
    assert_eq!(desk(&page), services, "two universities: the service's desk");
    let sent = smtp.all_to(demo::GRADUATE_EMAIL).len();
    let (s, _, _) = post_form(&Backend::client(), &forgot, &forgot, &[("email", demo::GRADUATE_EMAIL)]).await?;
    assert_eq!(s, 200);
    wait_until(&format!("a second reset mail to {}", demo::GRADUATE_EMAIL), crate::accounts::MAIL_WAIT, || smtp.all_to(demo::GRADUATE_EMAIL).len() > sent)?;
    let mail = smtp.all_to(demo::GRADUATE_EMAIL).into_iter().last().context("the second mail")?;
    assert!(mail.starts_with("From: <") && mail.contains("For questions, contact the university office."), "{mail}");
    Ok(())
}
