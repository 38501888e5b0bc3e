//! The demo data an empty database gets when `demo_data = true`.

use crate::passwords::{hash_with, HashCost};
use crate::sealed::SealKey;
use crate::store;
use crate::time::now;
use sqlx::SqlitePool;

pub const GRADUATE_EMAIL: &str = "hanako@example.ac.jp";
pub const GRADUATE_PASSWORD: &str = "Hanako2024pass";
pub const GRADUATE_SECOND_PASSWORD: &str = "Second2024pass";
pub const STAFF_LOGIN: &str = "staff";
pub const STAFF_PASSWORD: &str = "Staff2024pass";
/// The demo staff member's TOTP secret (base32), printed at start so a
/// newcomer can add it to an authenticator app or ask `shomei-backend totp`.
pub const STAFF_TOTP_SECRET: &str = "SHOMEIDEMOTOTPSECRETKEY234567ABC";
/// An enrolled student on the demo roster (S-1): university user ID and password.
pub const STUDENT_ID: &str = "s2401234";
pub const STUDENT_PASSWORD: &str = "Campus2024pass";
/// The demo IC card (FeliCa IDm) linked to the graduate.
pub const CARD_UID: &str = "012E4CD8A1B2C3D4";
pub const CARD_BALANCE: i64 = 3000;

/// Records on the first start of an empty database whether it is a demo.
/// Returns whether it is one: only a database created as a demo ever gets
/// demo data, whatever `demo_data` says later.
pub async fn record_deployment(pool: &SqlitePool, demo_data: bool) -> anyhow::Result<bool> {
    let mut tx = store::begin_write(pool).await?;
    let demo = match store::deployment_is_demo(&mut tx).await? {
        Some(d) => d,
        None => {
            let demo = demo_data && store::university_count(&mut tx).await? == 0;
            store::set_deployment(&mut tx, demo, now()).await?;
            demo
        }
    };
    tx.commit().await?;
    if demo_data && !demo {
        tracing::warn!("demo_data is on, but this database was not created as a demo: nothing is seeded");
    }
    Ok(demo)
}

/// Seeds (or tops up) the demo data of a database created as a demo.
pub async fn seed_if_empty(pool: &SqlitePool, seal: &SealKey) -> anyhow::Result<()> {
    let hash_password = |p: &str| hash_with(&HashCost::default(), p);
    let mut tx = store::begin_write(pool).await?;
    if store::deployment_is_demo(&mut tx).await? != Some(true) {
        anyhow::bail!("not a demo database");
    }
    if store::university_count(&mut tx).await? > 0 {
        // a demo database from before staff had a second factor gets the demo one
        // (and the enrolled student on the roster)
        if let Some(s) = store::staff_by_login(&mut tx, STAFF_LOGIN).await?.filter(|s| s.totp_sealed.is_none()) {
            crate::accounts::set_second_factor(seal, &mut tx, s.id, STAFF_TOTP_SECRET).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        if store::academic_import_count(&mut tx).await? == 0 {
            seed_courses(&mut tx).await?;
        }
        if store::roster_count(&mut tx).await? == 0 {
            seed_roster(&mut tx).await?;
            store::set_faculty_codes_if_empty(&mut tx).await?;
        }
        if store::university_seal(&mut tx, 1).await?.is_none() {
            store::set_university_seal(&mut tx, 1, &demo_seal_png()?).await?;
        }
        if store::school_register_versions(&mut tx).await? == 0 {
            seed_register(&mut tx, seal).await?;
        }
        tx.commit().await?;
        return Ok(());
    }
    store::seed_demo(
        &mut tx,
        &store::DemoSeed {
            graduate_email: GRADUATE_EMAIL,
            graduate_password_hash: &hash_password(GRADUATE_PASSWORD)?,
            graduate_second_hash: &hash_password(GRADUATE_SECOND_PASSWORD)?,
            staff_login: STAFF_LOGIN,
            staff_password_hash: &hash_password(STAFF_PASSWORD)?,
            card_uid: CARD_UID,
            card_balance: CARD_BALANCE,
            now: now(),
        },
    )
    .await?;
    // the graduate's birth date is sealed like every other
    let graduate = store::user_by_email(&mut tx, GRADUATE_EMAIL).await?.ok_or_else(|| anyhow::anyhow!("demo graduate missing"))?;
    let birth = crate::registration::seal_birth_date(seal, graduate.id, "2001-04-02").map_err(|e| anyhow::anyhow!("{e}"))?;
    store::set_birth_dates(&mut tx, graduate.id, &birth).await?;
    // and her registered address (postal orders start from it)
    let personal = crate::registration::Personal {
        birth_date: "2001-04-02".into(),
        postal_code: "100-0001".into(),
        prefecture: "東京都".into(),
        city: "千代田区".into(),
        street: "千代田1-1".into(),
        mobile_phone: "090-1234-5678".into(),
        ..Default::default()
    };
    let sealed = personal.seal(seal, &crate::registration::user_aad(graduate.id)).map_err(|e| anyhow::anyhow!("{e}"))?;
    store::set_user_personal(&mut tx, graduate.id, &sealed).await?;
    // the staff member's second factor, sealed like every other
    let staff = store::staff_by_login(&mut tx, STAFF_LOGIN).await?.ok_or_else(|| anyhow::anyhow!("demo staff missing"))?;
    crate::accounts::set_second_factor(seal, &mut tx, staff.id, STAFF_TOTP_SECRET).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    seed_roster(&mut tx).await?;
    seed_courses(&mut tx).await?;
    seed_register(&mut tx, seal).await?;
    store::set_university_seal(&mut tx, 1, &demo_seal_png()?).await?;
    tx.commit().await?;
    tracing::info!("demo data loaded");
    Ok(())
}

async fn seed_roster(c: &mut store::Conn) -> anyhow::Result<()> {
    store::upsert_roster_entry(
        c,
        &store::RosterEntry {
            user_id: STUDENT_ID.into(),
            password_hash: hash_with(&HashCost::default(), STUDENT_PASSWORD)?,
            name_kanji: "佐藤 次郎".into(),
            name_kana: "サトウ ジロウ".into(),
            name_roman: "SATO Jiro".into(),
            student_no: "L24-0101".into(),
            faculty_code: "LET".into(),
            department_code: "JLIT".into(),
            email: String::new(),
        },
        now(),
    )
    .await?;
    Ok(())
}

/// The registrar's school register for the demo graduate and student (D-3:
/// certificates state only what it says), as the demo staff's first import.
pub const DEMO_REGISTER_CSV: &str = "student_no,name_kanji,name_kana,name_roman,birth_date,faculty_code,department_code,degree_ja,degree_en,admission_date,graduation_date,leaving_type
L19-0042,山田 花子,ヤマダ ハナコ,YAMADA Hanako,2001-04-02,LET,JLIT,学士（文学）,Bachelor of Arts,2020-04-01,2024-03-25,graduated
L24-0101,佐藤 次郎,サトウ ジロウ,SATO Jiro,2005-06-15,LET,JLIT,,,2024-04-01,,enrolled
";

async fn seed_register(c: &mut store::Conn, seal: &SealKey) -> anyhow::Result<()> {
    store::set_faculty_codes_if_empty(c).await?;
    let faculties = store::faculties(c).await?;
    let departments: Vec<(String, String)> = store::departments(c)
        .await?
        .into_iter()
        .filter_map(|d| faculties.iter().find(|f| f.id == d.parent_id).map(|f| (f.code.clone(), d.code)))
        .collect();
    let rows = crate::school_register::parse(DEMO_REGISTER_CSV, &departments).map_err(|e| anyhow::anyhow!("demo register: {e:?}"))?;
    let staff = store::staff_by_login(c, STAFF_LOGIN).await?.ok_or_else(|| anyhow::anyhow!("demo staff missing"))?;
    crate::school_register::insert_version(c, seal, "demo-register.csv", &rows, staff.id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The demo graduate's courses (four years of Japanese literature), as the
/// registrar's first import.
async fn seed_courses(c: &mut store::Conn) -> anyhow::Result<()> {
    const COURSES: [(&str, &str, &str); 12] = [
        ("LIT101", "日本文学概論", "Introduction to Japanese Literature"),
        ("LIT110", "古典文学講読", "Reading Classical Literature"),
        ("LIT120", "近代文学史", "History of Modern Literature"),
        ("LIN100", "日本語学概論", "Introduction to Japanese Linguistics"),
        ("ENG101", "英語コミュニケーション", "English Communication"),
        ("HIS100", "日本史概説", "Survey of Japanese History"),
        ("PHI100", "哲学入門", "Introduction to Philosophy"),
        ("LIT210", "源氏物語演習", "Seminar: The Tale of Genji"),
        ("LIT220", "近現代詩論", "Modern and Contemporary Poetry"),
        ("INF100", "情報リテラシー", "Information Literacy"),
        ("LIT300", "卒業研究演習", "Graduation Research Seminar"),
        ("LIT400", "卒業論文", "Graduation Thesis"),
    ];
    const GRADES: [&str; 5] = ["S", "A", "A", "B", "S"];
    let mut csv = String::from("student_no,year,term,code,name_ja,name_en,credits,grade\n");
    let mut i = 0;
    for year in 2020..2024 {
        for term in ["前期", "後期"] {
            for k in 0..5 {
                let (code, ja, en) = COURSES[(i + k) % COURSES.len()];
                csv.push_str(&format!("L19-0042,{year},{term},{code}-{year}{k},{ja},{en},2,{}\n", GRADES[(i + k) % GRADES.len()]));
            }
            i += 1;
        }
    }
    let rows = crate::academic::parse(&csv).map_err(|e| anyhow::anyhow!("demo courses: {e:?}"))?;
    let id = store::insert_academic_import(c, "demo.csv", rows.len() as i64, None, now()).await?;
    for r in &rows {
        store::insert_course_result(c, id, r).await?;
    }
    Ok(())
}

/// The demo university's seal: a red double ring with a square inside, as a
/// registrar's scan of a real 公印 would be (transparent around it).
pub fn demo_seal_png() -> anyhow::Result<Vec<u8>> {
    let side = 240u32;
    let c = side as f32 / 2.0;
    let red = image::Rgba([196, 24, 24, 235]);
    let img = image::RgbaImage::from_fn(side, side, |x, y| {
        let (dx, dy) = (x as f32 - c, y as f32 - c);
        let d = (dx * dx + dy * dy).sqrt();
        let ring = (d > c - 10.0 && d < c - 3.0) || (d > c - 20.0 && d < c - 16.0);
        let square = dx.abs().max(dy.abs());
        let inner = (square > 52.0 && square < 58.0) || (dx.abs() < 3.0 && dy.abs() < 52.0) || (dy.abs() < 3.0 && dx.abs() < 52.0);
        if ring || inner { red } else { image::Rgba([0, 0, 0, 0]) }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}
