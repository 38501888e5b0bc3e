//! The deployment's kind and the demo data.

use super::*;

// ---------------------------------------------------------------- deployment

/// Whether this database was created as a demo (None: not decided yet, an empty database).
pub async fn deployment_is_demo(c: &mut Conn) -> Result<Option<bool>, sqlx::Error> {
    let demo: Option<Flag> = sqlx::query_scalar("SELECT demo FROM deployment WHERE id = 1").fetch_optional(c).await?;
    Ok(demo.map(bool::from))
}

pub async fn set_deployment(c: &mut Conn, demo: bool, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO deployment (id, demo, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(i64::from(demo))
        .bind(now)
        .execute(c)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- demo data

pub struct DemoSeed<'a> {
    pub graduate_email: &'a str,
    pub graduate_password_hash: &'a str,
    pub graduate_second_hash: &'a str,
    pub staff_login: &'a str,
    pub staff_password_hash: &'a str,
    pub card_uid: &'a str,
    pub card_balance: i64,
    pub now: i64,
}

/// After rows were written with ids of their own: the ids PostgreSQL hands
/// out next follow the largest one (SQLite's always do).
async fn ids_follow_rows(c: &mut Conn, tables: &[&str]) -> Result<(), sqlx::Error> {
    if c.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    for t in tables {
        sqlx::query(&format!("SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM {t}))")).execute(&mut *c).await?;
    }
    Ok(())
}

/// One university with a faculty and department, two certificate types, a
/// system usage fee, a staff account, an approved graduate and their IC card.
pub async fn seed_demo(c: &mut Conn, s: &DemoSeed<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO universities (id, name_ja, name_en, timezone, system_fee) VALUES (1, '証明大学', 'Shomei University', 'Asia/Tokyo', 100)")
        .execute(&mut *c).await?;
    sqlx::query("INSERT INTO faculties (id, university_id, code, name_ja, name_en) VALUES (1, 1, 'LET', '文学部', 'Faculty of Letters'), (2, 1, 'SCI', '理学部', 'Faculty of Science')")
        .execute(&mut *c).await?;
    sqlx::query("INSERT INTO departments (id, faculty_id, code, name_ja, name_en) VALUES (1, 1, 'JLIT', '日本文学科', 'Department of Japanese Literature'), (2, 1, 'HIST', '史学科', 'Department of History'), (3, 2, 'MATH', '数学科', 'Department of Mathematics')")
        .execute(&mut *c).await?;
    ids_follow_rows(c, &["universities", "faculties", "departments"]).await?;
    sqlx::query(
        "INSERT INTO certificate_types (university_id, code, name_ja, name_en, fee, max_copies, leaving_types, layout, language, digital) VALUES
         (1, 'graduation', '卒業証明書', 'Certificate of Graduation', 300, 10, 'graduated', 'certificate', 'ja', 0),
         (1, 'graduation_en', '卒業証明書（英文）', 'Certificate of Graduation (English)', 500, 10, 'graduated', 'certificate', 'en', 1),
         (1, 'enrolment', '在学証明書', 'Certificate of Enrolment', 200, 10, 'enrolled', 'certificate', 'ja', 0),
         (1, 'transcript', '成績証明書', 'Transcript of Academic Record', 300, 5, 'graduated,withdrew,removed,enrolled', 'transcript', 'ja', 0)",
    )
    .execute(&mut *c)
    .await?;
    let user_id: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, kind, password_hash, second_password_hash, created_at) VALUES ($1, 'graduate', $2, $3, $4) RETURNING id",
    )
    .bind(s.graduate_email)
    .bind(s.graduate_password_hash)
    .bind(s.graduate_second_hash)
    .bind(s.now)
    .fetch_one(&mut *c)
    .await?;
    sqlx::query(
        "INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji,
         name_kana, name_roman, birth_date, leaving_type, graduation_date)
         VALUES ($1, 1, 1, 1, 'L19-0042', '山田 花子', 'ヤマダ ハナコ', 'YAMADA Hanako', '', 'graduated', '2024-03-25')",
    )
    .bind(user_id)
    .execute(&mut *c)
    .await?;
    // the demo's administrator runs the platform too (universities, the whole fleet)
    sqlx::query("INSERT INTO staff (login, display_name, password_hash, role, created_at, platform) VALUES ($1, 'Demo Staff', $2, 'admin', $3, 1)")
        .bind(s.staff_login)
        .bind(s.staff_password_hash)
        .bind(s.now)
        .execute(&mut *c)
        .await?;
    link_card(c, s.card_uid, user_id, "demo card", s.now).await?;
    insert_ledger(c, s.card_uid, s.card_balance, "topup", None, None, None, s.now).await?;
    Ok(())
}
