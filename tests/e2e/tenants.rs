//! Universities are tenants (issue 15): what belongs to one university never
//! reaches another's stations.

use crate::harness::*;
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
    let faculty = b.sql(&format!("INSERT INTO faculties (university_id, code, name_ja, name_en) VALUES ({kita}, 'ENG', '工学部', 'Faculty of Engineering') RETURNING id"))?;
    let department = b.sql(&format!("INSERT INTO departments (faculty_id, code, name_ja, name_en) VALUES ({faculty}, 'MECH', '機械工学科', 'Department of Mechanical Engineering') RETURNING id"))?;
    let user = b.sql(&format!("SELECT id FROM users WHERE email = '{}'", demo::GRADUATE_EMAIL))?;
    let record = b.sql(&format!(
        "INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji, name_kana, name_roman, birth_date, leaving_type, graduation_date)
         VALUES ({user}, {kita}, {faculty}, {department}, 'K20-0001', '山田 花子', 'ヤマダ ハナコ', 'YAMADA Hanako', '', 'graduated', '2022-03-25') RETURNING id"
    ))?;
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
    Ok(())
}
