//! The registrar's data: academic records and the school register.

use super::*;

// ---------------------------------------------------------------- academic records (D-3)

pub async fn insert_academic_import(c: &mut Conn, university_id: i64, file_name: &str, rows: i64, staff_id: Option<i64>, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO academic_imports (university_id, file_name, row_count, imported_by, imported_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
        .bind(university_id)
        .bind(file_name)
        .bind(rows)
        .bind(staff_id)
        .bind(now)
        .fetch_one(c)
        .await
}

/// One course result of an academic import (a transcript's line).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CourseResult {
    pub student_no: String,
    pub year: i64,
    pub term: String,
    pub code: String,
    pub name_ja: String,
    pub name_en: String,
    pub credits_tenths: i64,
    pub grade: String,
}

pub async fn insert_course_result(c: &mut Conn, import_id: i64, r: &CourseResult) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO course_results (import_id, student_no, year, term, code, name_ja, name_en, credits_tenths, grade)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(import_id)
    .bind(&r.student_no)
    .bind(r.year)
    .bind(&r.term)
    .bind(&r.code)
    .bind(&r.name_ja)
    .bind(&r.name_en)
    .bind(r.credits_tenths)
    .bind(&r.grade)
    .execute(c)
    .await?;
    Ok(())
}

/// The newest of a university's imports that has courses of this student number.
pub async fn latest_import_for(c: &mut Conn, university_id: i64, student_no: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT max(r.import_id) FROM course_results r JOIN academic_imports i ON i.id = r.import_id WHERE r.student_no = $1 AND i.university_id = $2",
    )
    .bind(student_no)
    .bind(university_id)
    .fetch_one(c)
    .await
}

pub async fn course_results(c: &mut Conn, import_id: i64, student_no: &str) -> Result<Vec<CourseResult>, sqlx::Error> {
    sqlx::query_as(
        "SELECT student_no, year, term, code, name_ja, name_en, credits_tenths, grade FROM course_results
         WHERE import_id = $1 AND student_no = $2 ORDER BY year, term, code, id",
    )
    .bind(import_id)
    .bind(student_no)
    .fetch_all(c)
    .await
}

pub async fn academic_import_count(c: &mut Conn, university_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM academic_imports WHERE university_id = $1").bind(university_id).fetch_one(c).await
}

/// The version of the courses an order's transcript printed.
pub async fn order_academic_import(c: &mut Conn, order_id: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT academic_import_id FROM orders WHERE id = $1").bind(order_id).fetch_one(c).await
}

pub async fn set_order_academic_import(c: &mut Conn, order_id: i64, import_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET academic_import_id = $1 WHERE id = $2").bind(import_id).bind(order_id).execute(c).await?;
    Ok(())
}

// ---------------------------------------------------------------- school register (D-3)

pub async fn insert_school_register_import(c: &mut Conn, university_id: i64, file_name: &str, rows: i64, staff_id: i64, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO school_register_imports (university_id, file_name, row_count, imported_by, imported_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
        .bind(university_id)
        .bind(file_name)
        .bind(rows)
        .bind(staff_id)
        .bind(now)
        .fetch_one(c)
        .await
}

/// One student number's entry in a version of the register (birth date open).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterEntry {
    pub student_no: String,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub birth_date: String,
    pub faculty_code: String,
    pub department_code: String,
    pub degree_ja: String,
    pub degree_en: String,
    pub admission_date: String,
    pub graduation_date: String,
    pub leaving_type: String,
}

pub async fn insert_school_register_entry(c: &mut Conn, import_id: i64, e: &RegisterEntry, birth_sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO school_register (import_id, student_no, name_kanji, name_kana, name_roman, birth_date_sealed, faculty_code, department_code,
         degree_ja, degree_en, admission_date, graduation_date, leaving_type) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(import_id)
    .bind(&e.student_no)
    .bind(&e.name_kanji)
    .bind(&e.name_kana)
    .bind(&e.name_roman)
    .bind(birth_sealed)
    .bind(&e.faculty_code)
    .bind(&e.department_code)
    .bind(&e.degree_ja)
    .bind(&e.degree_en)
    .bind(&e.admission_date)
    .bind(&e.graduation_date)
    .bind(&e.leaving_type)
    .execute(c)
    .await?;
    Ok(())
}

/// The newest version's entry for a student number of a university: (version, entry with the birth date empty, sealed birth date).
pub async fn school_register_entry(c: &mut Conn, university_id: i64, student_no: &str) -> Result<Option<(i64, RegisterEntry, String)>, sqlx::Error> {
    type Row = (i64, String, String, String, String, String, String, String, String, String, String, String, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT import_id, student_no, name_kanji, name_kana, name_roman, birth_date_sealed, faculty_code, department_code,
                degree_ja, degree_en, admission_date, graduation_date, leaving_type
         FROM school_register WHERE student_no = $1
           AND import_id IN (SELECT id FROM school_register_imports WHERE university_id = $2) ORDER BY import_id DESC LIMIT 1",
    )
    .bind(student_no)
    .bind(university_id)
    .fetch_optional(c)
    .await?;
    Ok(row.map(|r| {
        let e = RegisterEntry {
            student_no: r.1,
            name_kanji: r.2,
            name_kana: r.3,
            name_roman: r.4,
            birth_date: String::new(),
            faculty_code: r.6,
            department_code: r.7,
            degree_ja: r.8,
            degree_en: r.9,
            admission_date: r.10,
            graduation_date: r.11,
            leaving_type: r.12,
        };
        (r.0, e, r.5)
    }))
}

pub async fn school_register_versions(c: &mut Conn, university_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM school_register_imports WHERE university_id = $1").bind(university_id).fetch_one(c).await
}

// ---------------------------------------------------------------- keys of the signed QR payloads

/// A university's key for the payloads its certificates' QR codes carry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProofKey {
    pub university_id: i64,
    pub kid: String,
    pub public_hex: String,
    pub ed25519_sealed: String,
}

pub async fn proof_key(c: &mut Conn, university_id: i64) -> Result<Option<ProofKey>, sqlx::Error> {
    sqlx::query_as("SELECT university_id, kid, public_hex, ed25519_sealed FROM university_proof_keys WHERE university_id = $1")
        .bind(university_id)
        .fetch_optional(c)
        .await
}

/// Stores a university's first key; false when one is there already (made meanwhile).
pub async fn insert_proof_key(c: &mut Conn, k: &ProofKey, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO university_proof_keys (university_id, kid, public_hex, ed25519_sealed, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (university_id) DO NOTHING",
    )
    .bind(k.university_id)
    .bind(&k.kid)
    .bind(&k.public_hex)
    .bind(&k.ed25519_sealed)
    .bind(now)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The public keys the verification page publishes, with their universities' names.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct PublishedKey {
    pub kid: String,
    pub public_hex: String,
    pub name_ja: String,
    pub name_en: String,
}

pub async fn published_proof_keys(c: &mut Conn) -> Result<Vec<PublishedKey>, sqlx::Error> {
    sqlx::query_as("SELECT k.kid, k.public_hex, u.name_ja, u.name_en FROM university_proof_keys k JOIN universities u ON u.id = k.university_id ORDER BY k.university_id")
        .fetch_all(c)
        .await
}
