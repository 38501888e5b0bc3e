//! Applications to use the service and their ID images.

use super::*;
use sqlx::FromRow;

// ---------------------------------------------------------------- registrations

#[derive(Debug, Clone, Default, FromRow, serde::Serialize)]
pub struct Registration {
    pub id: i64,
    pub kind: String,
    pub email: String,
    pub user_id: Option<i64>,
    pub status: String,
    pub language: String,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub sex: String,
    pub school_name_kanji: String,
    pub school_name_kana: String,
    pub school_name_roman: String,
    pub university_id: Option<i64>,
    pub faculty_id: Option<i64>,
    pub department_id: Option<i64>,
    pub student_no: String,
    pub graduation_ym: String,
    pub leaving_type: String,
    pub id_document_type: String,
    pub personal_sealed: Option<String>,
    pub reason: String,
    pub created_at: i64,
    pub submitted_at: Option<i64>,
    pub decided_at: Option<i64>,
}

const REGISTRATION_SELECT: &str = "SELECT id, kind, email, user_id, status, language, name_kanji, name_kana, name_roman, sex,
    school_name_kanji, school_name_kana, school_name_roman, university_id, faculty_id, department_id, student_no,
    graduation_ym, leaving_type, id_document_type, personal_sealed, reason, created_at, submitted_at, decided_at
    FROM registrations";

pub async fn insert_registration_draft(
    c: &mut Conn,
    kind: &str,
    email: &str,
    user_id: Option<i64>,
    draft_key_hash: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO registrations (kind, email, user_id, status, draft_key_hash, created_at) VALUES ($1, $2, $3, 'draft', $4, $5) RETURNING id",
    )
    .bind(kind)
    .bind(email)
    .bind(user_id)
    .bind(draft_key_hash)
    .bind(now)
    .fetch_one(c)
    .await
}

/// Reopens an application sent back for corrections as a draft of this browser.
pub async fn reopen_registration(c: &mut Conn, id: i64, draft_key_hash: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE registrations SET status = 'draft', draft_key_hash = $1 WHERE id = $2 AND status = 'resubmit'")
        .bind(draft_key_hash)
        .bind(id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn registration_by_draft(c: &mut Conn, draft_key_hash: &str) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE draft_key_hash = $1 AND status = 'draft'"))
        .bind(draft_key_hash)
        .fetch_optional(c)
        .await
}

pub async fn registration_by_status_key(c: &mut Conn, key_hash: &str) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE status_key_hash = $1")).bind(key_hash).fetch_optional(c).await
}

pub async fn registration(c: &mut Conn, id: i64) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE id = $1")).bind(id).fetch_optional(c).await
}

/// A university's applications in a status, oldest first.
pub async fn registrations_by_status(c: &mut Conn, university_id: i64, status: &str, limit: i64) -> Result<Vec<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE status = $1 AND university_id = $3 ORDER BY COALESCE(submitted_at, created_at), id LIMIT $2"))
        .bind(status)
        .bind(limit)
        .bind(university_id)
        .fetch_all(c)
        .await
}

pub async fn save_registration_form(c: &mut Conn, r: &Registration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE registrations SET language = $1, name_kanji = $2, name_kana = $3, name_roman = $4, sex = $5, school_name_kanji = $6,
         school_name_kana = $7, school_name_roman = $8, university_id = $9, faculty_id = $10, department_id = $11, student_no = $12,
         graduation_ym = $13, leaving_type = $14, id_document_type = $15, personal_sealed = $16, kind = $17 WHERE id = $18 AND status = 'draft'",
    )
    .bind(&r.language)
    .bind(&r.name_kanji)
    .bind(&r.name_kana)
    .bind(&r.name_roman)
    .bind(&r.sex)
    .bind(&r.school_name_kanji)
    .bind(&r.school_name_kana)
    .bind(&r.school_name_roman)
    .bind(r.university_id)
    .bind(r.faculty_id)
    .bind(r.department_id)
    .bind(&r.student_no)
    .bind(&r.graduation_ym)
    .bind(&r.leaving_type)
    .bind(&r.id_document_type)
    .bind(&r.personal_sealed)
    .bind(&r.kind)
    .bind(r.id)
    .execute(c)
    .await?;
    Ok(())
}

/// Draft -> pending; the draft key dies with it, a status key is set.
pub async fn submit_registration(c: &mut Conn, id: i64, status_key_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE registrations SET status = 'pending', submitted_at = $1, draft_key_hash = NULL, reason = '', status_key_hash = $2
         WHERE id = $3 AND status = 'draft'",
    )
    .bind(now)
    .bind(status_key_hash)
    .bind(id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records staff's decision on a pending application (only once).
pub async fn decide_registration(
    c: &mut Conn,
    id: i64,
    status: &str,
    reason: &str,
    user_id: Option<i64>,
    staff_id: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE registrations SET status = $1, reason = $2, user_id = COALESCE($3, user_id), decided_at = $4, decided_by = $5
         WHERE id = $6 AND status = 'pending'",
    )
    .bind(status)
    .bind(reason)
    .bind(user_id)
    .bind(now)
    .bind(staff_id)
    .bind(id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct RegistrationImage {
    pub id: i64,
    pub registration_id: i64,
    pub ordinal: i64,
    pub file_name: String,
    pub mime: String,
    pub width: i64,
    pub height: i64,
    /// The file name it was attached under ('' before migration 0032).
    pub original_name: String,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_registration_image(
    c: &mut Conn,
    registration_id: i64,
    ordinal: i64,
    file_name: &str,
    original_name: &str,
    mime: &str,
    width: u32,
    height: u32,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO registration_images (registration_id, ordinal, file_name, original_name, mime, width, height, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(registration_id)
    .bind(ordinal)
    .bind(file_name)
    .bind(original_name)
    .bind(mime)
    .bind(i64::from(width))
    .bind(i64::from(height))
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn registration_images(c: &mut Conn, registration_id: i64) -> Result<Vec<RegistrationImage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, registration_id, ordinal, file_name, mime, width, height, original_name FROM registration_images
         WHERE registration_id = $1 AND deleted_at IS NULL ORDER BY ordinal, id",
    )
    .bind(registration_id)
    .fetch_all(c)
    .await
}

/// Marks a draft's image of one side (0 front, 1 back) as replaced; returns the file names to delete.
pub async fn drop_registration_image(c: &mut Conn, registration_id: i64, ordinal: i64, now: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE registration_images SET deleted_at = $1 WHERE registration_id = $2 AND ordinal = $3 AND deleted_at IS NULL RETURNING file_name",
    )
    .bind(now)
    .bind(registration_id)
    .bind(ordinal)
    .fetch_all(c)
    .await
}

/// Marks the images of a draft as replaced; returns their file names to delete.
pub async fn drop_registration_images(c: &mut Conn, registration_id: i64, now: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE registration_images SET deleted_at = $1 WHERE registration_id = $2 AND deleted_at IS NULL RETURNING file_name",
    )
    .bind(now)
    .bind(registration_id)
    .fetch_all(c)
    .await
}

/// Images of applications decided before `cutoff`: past their retention.
/// ID images no longer needed: of applications decided (or sent back for
/// resubmission) before `cutoff`, of applications left unreviewed since
/// before `cutoff`, and of drafts whose images are older than `draft_cutoff`.
pub async fn expire_registration_images(c: &mut Conn, cutoff: i64, draft_cutoff: i64, now: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE registration_images SET deleted_at = $1 WHERE deleted_at IS NULL AND (
           registration_id IN (SELECT id FROM registrations WHERE status IN ('approved', 'rejected', 'resubmit') AND decided_at < $2)
           OR registration_id IN (SELECT id FROM registrations WHERE status = 'pending' AND submitted_at < $3)
           OR (created_at < $4 AND registration_id IN (SELECT id FROM registrations WHERE status = 'draft')))
         RETURNING file_name",
    )
    .bind(now)
    .bind(cutoff)
    .bind(cutoff)
    .bind(draft_cutoff)
    .fetch_all(c)
    .await
}

/// Accounts that may be the one a re-application (G-9) belongs to: same name in kana and student ID, or same kana.
/// Graduates of the university who may be the one reapplying (same kana name or student ID).
pub async fn reapply_candidates(c: &mut Conn, university_id: i64, name_kana: &str, student_no: &str) -> Result<Vec<(i64, String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT u.id, u.email, s.name_kanji, s.student_no FROM users u JOIN student_records s ON s.user_id = u.id
         WHERE u.kind = 'graduate' AND s.university_id = $3
           AND (replace(s.name_kana, ' ', '') = replace($1, ' ', '') OR (s.student_no <> '' AND s.student_no = $2))
         ORDER BY u.id LIMIT 20",
    )
    .bind(name_kana)
    .bind(student_no)
    .bind(university_id)
    .fetch_all(c)
    .await
}
