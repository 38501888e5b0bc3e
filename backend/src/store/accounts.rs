//! People and their sign-in: users, staff, sessions, throttles, one-time URLs, account changes, the student roster.

use super::*;
use sqlx::FromRow;

// ---------------------------------------------------------------- people

#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub kind: String,
    pub password_hash: String,
    pub second_password_hash: Option<String>,
    pub status: String,
    pub language: String,
    #[sqlx(try_from = "Flag")]
    pub must_set_password: bool,
    pub initial_password_expires_at: Option<i64>,
    pub directory_uid: Option<String>,
    /// The university whose directory `directory_uid` is in (enrolled students).
    pub directory_university_id: Option<i64>,
    pub personal_sealed: Option<String>,
}

const USER_SELECT: &str = "SELECT id, email, kind, password_hash, second_password_hash, status, language,
    must_set_password, initial_password_expires_at, directory_uid, directory_university_id, personal_sealed FROM users";

#[derive(Debug, Clone, FromRow)]
pub struct Staff {
    pub id: i64,
    /// The university this staff member works for.
    pub university_id: i64,
    pub login: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: String,
    pub totp_sealed: Option<String>,
    pub totp_last_step: Option<i64>,
    #[sqlx(try_from = "Flag")]
    pub active: bool,
    #[sqlx(try_from = "Flag")]
    pub must_set_password: bool,
    /// When the current (initial) password was issued.
    pub password_issued_at: i64,
    /// A platform operator: manages the universities and sees every one's stations.
    #[sqlx(try_from = "Flag")]
    pub platform: bool,
}

const STAFF_SELECT: &str = "SELECT id, university_id, login, display_name, password_hash, role, totp_sealed, totp_last_step, active, must_set_password,
    COALESCE(password_issued_at, created_at) AS password_issued_at, platform FROM staff";

pub async fn user_by_email(c: &mut Conn, email: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("{USER_SELECT} WHERE email = $1"))
    .bind(email)
    .fetch_optional(c)
    .await
}

/// The language the user reads the portal in: "both", "ja" or "en".
pub async fn user_language(c: &mut Conn, user_id: i64) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT display_language FROM users WHERE id = $1").bind(user_id).fetch_one(c).await
}

/// Sets the portal's language; one language chosen also comes first in the user's mails.
pub async fn set_user_language(c: &mut Conn, user_id: i64, language: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET display_language = $1, language = CASE WHEN $1 = 'both' THEN language ELSE $1 END WHERE id = $2")
        .bind(language)
        .bind(user_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn user(c: &mut Conn, id: i64) -> Result<User, sqlx::Error> {
    sqlx::query_as(&format!("{USER_SELECT} WHERE id = $1"))
    .bind(id)
    .fetch_one(c)
    .await
}

pub async fn staff_by_login(c: &mut Conn, login: &str) -> Result<Option<Staff>, sqlx::Error> {
    sqlx::query_as(&format!("{STAFF_SELECT} WHERE login = $1"))
        .bind(login)
        .fetch_optional(c)
        .await
}

pub async fn staff(c: &mut Conn, id: i64) -> Result<Staff, sqlx::Error> {
    sqlx::query_as(&format!("{STAFF_SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_one(c)
        .await
}

// ---------------------------------------------------------------- sessions

#[derive(Debug, Clone, FromRow)]
pub struct Session {
    pub user_id: Option<i64>,
    pub staff_id: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

pub async fn create_session(
    c: &mut Conn,
    token_hash: &str,
    user_id: Option<i64>,
    staff_id: Option<i64>,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sessions (token_hash, user_id, staff_id, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(token_hash)
        .bind(user_id)
        .bind(staff_id)
        .bind(now)
        .bind(expires_at)
        .bind(now)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn session(c: &mut Conn, token_hash: &str, now: i64) -> Result<Option<Session>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, staff_id, created_at, expires_at, last_seen_at FROM sessions WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(c)
    .await
}

pub async fn touch_session(c: &mut Conn, token_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2").bind(now).bind(token_hash).execute(c).await?;
    Ok(())
}

/// Ends every session of a user (password change, address change).
pub async fn delete_user_sessions(c: &mut Conn, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn delete_staff_sessions(c: &mut Conn, staff_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE staff_id = $1").bind(staff_id).execute(c).await?;
    Ok(())
}

pub async fn delete_session(c: &mut Conn, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(c).await?;
    Ok(())
}

// ---------------------------------------------------------------- throttles

/// The times (ms) `key` failed since `since_ms`, oldest first.
pub async fn throttle_failures(c: &mut Conn, key: &str, since_ms: i64) -> Result<Vec<i64>, sqlx::Error> {
    RedeemStore::throttle_failures(c, key, since_ms).await
}

pub async fn add_throttle_failure(c: &mut Conn, key: &str, at_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO throttle_failures (key, at_ms) VALUES ($1, $2)").bind(key).bind(at_ms).execute(c).await?;
    Ok(())
}

/// Forgets the latest failure of `key` (an attempt that no longer counts).
pub async fn drop_last_throttle_failure(c: &mut Conn, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM throttle_failures WHERE id = (SELECT MAX(id) FROM throttle_failures WHERE key = $1)").bind(key).execute(c).await?;
    Ok(())
}

pub async fn clear_throttle(c: &mut Conn, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM throttle_failures WHERE key = $1").bind(key).execute(c).await?;
    Ok(())
}

pub async fn prune_throttle_failures(c: &mut Conn, before_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM throttle_failures WHERE at_ms < $1").bind(before_ms).execute(c).await?.rows_affected())
}

// ---------------------------------------------------------------- one-time URLs

#[derive(Debug, Clone, FromRow)]
pub struct OneTimeToken {
    pub id: i64,
    pub purpose: String,
    pub email: String,
    pub user_id: Option<i64>,
    pub subject: String,
    pub expires_at: i64,
}

/// Stores a new token and voids every older live one of the same purpose for the same address.
pub async fn insert_token(
    c: &mut Conn,
    token_hash: &str,
    purpose: &str,
    email: &str,
    user_id: Option<i64>,
    subject: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    // a new link voids the older ones of the same purpose for the same person
    // (address and subject), never anyone else's
    sqlx::query("UPDATE one_time_tokens SET voided_at = $1 WHERE purpose = $2 AND email = $3 AND subject = $4 AND used_at IS NULL AND voided_at IS NULL")
        .bind(now)
        .bind(purpose)
        .bind(email)
        .bind(subject)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "INSERT INTO one_time_tokens (token_hash, purpose, email, user_id, subject, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token_hash)
    .bind(purpose)
    .bind(email)
    .bind(user_id)
    .bind(subject)
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await?;
    Ok(())
}

/// Uses a token: one UPDATE, so of two concurrent opens exactly one gets the row.
pub async fn consume_token(c: &mut Conn, token_hash: &str, purpose: &str, now: i64) -> Result<Option<OneTimeToken>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE one_time_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL
         AND voided_at IS NULL AND expires_at > $4 RETURNING id, purpose, email, user_id, subject, expires_at",
    )
    .bind(now)
    .bind(token_hash)
    .bind(purpose)
    .bind(now)
    .fetch_optional(c)
    .await
}

/// Looks at a token without using it (to show the page whose button uses it).
pub async fn peek_token(c: &mut Conn, token_hash: &str, purpose: &str, now: i64) -> Result<Option<OneTimeToken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, purpose, email, user_id, subject, expires_at FROM one_time_tokens WHERE token_hash = $1 AND purpose = $2
         AND used_at IS NULL AND voided_at IS NULL AND expires_at > $3",
    )
    .bind(token_hash)
    .bind(purpose)
    .bind(now)
    .fetch_optional(c)
    .await
}

// ---------------------------------------------------------------- account changes

pub struct NewUser<'a> {
    pub email: &'a str,
    pub kind: &'a str,
    pub password_hash: &'a str,
    pub second_password_hash: Option<&'a str>,
    pub must_set_password: bool,
    pub initial_password_expires_at: Option<i64>,
    /// (university, user ID) in that university's directory (enrolled students).
    pub directory: Option<(i64, &'a str)>,
    pub personal_sealed: Option<&'a str>,
    pub language: &'a str,
    pub now: i64,
}

pub async fn insert_user(c: &mut Conn, u: &NewUser<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO users (email, kind, password_hash, second_password_hash, must_set_password, initial_password_expires_at,
         directory_university_id, directory_uid, personal_sealed, language, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(u.email)
    .bind(u.kind)
    .bind(u.password_hash)
    .bind(u.second_password_hash)
    .bind(i64::from(u.must_set_password))
    .bind(u.initial_password_expires_at)
    .bind(u.directory.map(|d| d.0))
    .bind(u.directory.map(|d| d.1))
    .bind(u.personal_sealed)
    .bind(u.language)
    .bind(u.now)
    .fetch_one(c)
    .await
}

pub struct NewStudentRecord<'a> {
    pub user_id: i64,
    pub university_id: i64,
    pub faculty_id: i64,
    pub department_id: i64,
    pub student_no: &'a str,
    pub name_kanji: &'a str,
    pub name_kana: &'a str,
    pub name_roman: &'a str,
    pub birth_date: &'a str,
    pub leaving_type: &'a str,
    pub graduation_date: Option<&'a str>,
}

pub async fn insert_student_record(c: &mut Conn, r: &NewStudentRecord<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji, name_kana,
         name_roman, birth_date, leaving_type, graduation_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(r.user_id)
    .bind(r.university_id)
    .bind(r.faculty_id)
    .bind(r.department_id)
    .bind(r.student_no)
    .bind(r.name_kanji)
    .bind(r.name_kana)
    .bind(r.name_roman)
    .bind(r.birth_date)
    .bind(r.leaving_type)
    .bind(r.graduation_date)
    .fetch_one(c)
    .await
}

/// Sets both passwords and ends the initial-password state.
pub async fn set_passwords(c: &mut Conn, user_id: i64, password_hash: &str, second_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, second_password_hash = $2, must_set_password = 0, initial_password_expires_at = NULL WHERE id = $3",
    )
    .bind(password_hash)
    .bind(second_hash)
    .bind(user_id)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn set_password_hash(c: &mut Conn, user_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn set_second_password_hash(c: &mut Conn, user_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET second_password_hash = $1 WHERE id = $2").bind(hash).bind(user_id).execute(c).await?;
    Ok(())
}

/// A new initial password (re-application, G-9): the account must set its own again.
pub async fn set_initial_password(c: &mut Conn, user_id: i64, email: &str, hash: &str, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email = $1, password_hash = $2, second_password_hash = NULL, must_set_password = 1,
         initial_password_expires_at = $3 WHERE id = $4",
    )
    .bind(email)
    .bind(hash)
    .bind(expires_at)
    .bind(user_id)
    .execute(c)
    .await?;
    Ok(())
}

/// Student records whose birth date is still plain text (from before it was sealed).
pub async fn plain_birth_dates(c: &mut Conn) -> Result<Vec<(i64, i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, birth_date FROM student_records WHERE birth_date LIKE '____-__-__'",
    )
    .fetch_all(c)
    .await
}

pub async fn set_record_birth_date(c: &mut Conn, record_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE student_records SET birth_date = $1 WHERE id = $2").bind(sealed).bind(record_id).execute(c).await?;
    Ok(())
}

pub async fn set_birth_dates(c: &mut Conn, user_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE student_records SET birth_date = $1 WHERE user_id = $2").bind(sealed).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn set_user_email(c: &mut Conn, user_id: i64, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email = $1 WHERE id = $2").bind(email).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn set_user_personal(c: &mut Conn, user_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET personal_sealed = $1 WHERE id = $2").bind(sealed).bind(user_id).execute(c).await?;
    Ok(())
}

/// The account of a user ID in a university's directory.
pub async fn user_by_directory_uid(c: &mut Conn, university: i64, uid: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("{USER_SELECT} WHERE directory_university_id = $1 AND directory_uid = $2")).bind(university).bind(uid).fetch_optional(c).await
}

// ---------------------------------------------------------------- staff accounts

/// Makes a staff member a platform operator (the first install's administrator).
pub async fn set_staff_platform(c: &mut Conn, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET platform = 1 WHERE id = $1").bind(id).execute(c).await?;
    Ok(())
}

/// The staff of one university.
pub async fn staff_list(c: &mut Conn, university_id: i64) -> Result<Vec<Staff>, sqlx::Error> {
    sqlx::query_as(&format!("{STAFF_SELECT} WHERE university_id = $1 ORDER BY id")).bind(university_id).fetch_all(c).await
}

/// A staff member of `university_id` (who must set a password at first login).
#[allow(clippy::too_many_arguments)]
pub async fn insert_staff(c: &mut Conn, university_id: i64, login: &str, name: &str, hash: &str, role: &str, totp_sealed: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO staff (university_id, login, display_name, password_hash, role, totp_sealed, created_at, must_set_password, password_issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8) RETURNING id",
    )
    .bind(university_id)
    .bind(login)
    .bind(name)
    .bind(hash)
    .bind(role)
    .bind(totp_sealed)
    .bind(now)
    .bind(now)
    .fetch_one(c)
    .await
}

/// A new initial password: to be replaced at the next login, valid from `now` for a while.
pub async fn set_staff_initial_password(c: &mut Conn, staff_id: i64, hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET password_hash = $1, must_set_password = 1, password_issued_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(staff_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn set_staff_totp(c: &mut Conn, staff_id: i64, totp_sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET totp_sealed = $1, totp_last_step = NULL WHERE id = $2").bind(totp_sealed).bind(staff_id).execute(c).await?;
    Ok(())
}

/// Records the TOTP step just used; refuses (false) a step not newer than the last.
pub async fn use_totp_step(c: &mut Conn, staff_id: i64, step: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE staff SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $3)")
        .bind(step)
        .bind(staff_id)
        .bind(step)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_staff_password_hash(c: &mut Conn, staff_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET password_hash = $1 WHERE id = $2").bind(hash).bind(staff_id).execute(c).await?;
    Ok(())
}

/// The staff member's own password replaces the initial one.
pub async fn set_staff_own_password(c: &mut Conn, staff_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET password_hash = $1, must_set_password = 0 WHERE id = $2").bind(hash).bind(staff_id).execute(c).await?;
    Ok(())
}

pub async fn set_staff_active(c: &mut Conn, staff_id: i64, active: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET active = $1 WHERE id = $2").bind(i64::from(active)).bind(staff_id).execute(c).await?;
    Ok(())
}

pub async fn replace_recovery_codes(c: &mut Conn, staff_id: i64, hashes: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_recovery_codes WHERE staff_id = $1").bind(staff_id).execute(&mut *c).await?;
    for h in hashes {
        sqlx::query("INSERT INTO staff_recovery_codes (code_hash, staff_id) VALUES ($1, $2)").bind(h).bind(staff_id).execute(&mut *c).await?;
    }
    Ok(())
}

pub async fn use_recovery_code(c: &mut Conn, staff_id: i64, code_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE staff_recovery_codes SET used_at = $1 WHERE code_hash = $2 AND staff_id = $3 AND used_at IS NULL")
        .bind(now)
        .bind(code_hash)
        .bind(staff_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

// ---------------------------------------------------------------- student roster (S-1)

#[derive(Debug, Clone, FromRow)]
pub struct RosterEntry {
    pub user_id: String,
    pub password_hash: String,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub student_no: String,
    pub faculty_code: String,
    pub department_code: String,
    pub email: String,
    /// The student's campus card (IDm / UID, upper-case hex), '' when the roster has none.
    pub card_uid: String,
}

/// A user ID in one university's roster.
pub async fn roster_entry(c: &mut Conn, university: i64, user_id: &str) -> Result<Option<RosterEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, password_hash, name_kanji, name_kana, name_roman, student_no, faculty_code, department_code, email, card_uid
         FROM directory_roster WHERE university_id = $1 AND user_id = $2",
    )
    .bind(university)
    .bind(user_id)
    .fetch_optional(c)
    .await
}

/// Inserts or replaces one row of a university's roster (the caller holds the import's transaction).
pub async fn upsert_roster_entry(c: &mut Conn, university: i64, e: &RosterEntry, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO directory_roster (user_id, password_hash, name_kanji, name_kana, name_roman, student_no, faculty_code,
         department_code, email, card_uid, imported_at, university_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT(university_id, user_id) DO UPDATE SET password_hash = excluded.password_hash, name_kanji = excluded.name_kanji,
         name_kana = excluded.name_kana, name_roman = excluded.name_roman, student_no = excluded.student_no,
         faculty_code = excluded.faculty_code, department_code = excluded.department_code, email = excluded.email,
         card_uid = excluded.card_uid, imported_at = excluded.imported_at",
    )
    .bind(&e.user_id)
    .bind(&e.password_hash)
    .bind(&e.name_kanji)
    .bind(&e.name_kana)
    .bind(&e.name_roman)
    .bind(&e.student_no)
    .bind(&e.faculty_code)
    .bind(&e.department_code)
    .bind(&e.email)
    .bind(&e.card_uid)
    .bind(now)
    .bind(university)
    .execute(c)
    .await?;
    Ok(())
}

/// The demo catalogue from before faculties had codes gets its codes.
pub async fn set_faculty_codes_if_empty(c: &mut Conn) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE faculties SET code = 'LET' WHERE id = 1 AND code = ''").execute(&mut *c).await?;
    sqlx::query("UPDATE departments SET code = 'JLIT' WHERE id = 1 AND code = ''").execute(&mut *c).await?;
    Ok(())
}

pub async fn roster_count(c: &mut Conn, university: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM directory_roster WHERE university_id = $1").bind(university).fetch_one(c).await
}

/// Faculty and department of a university by their codes (a directory entry's).
pub async fn department_by_codes(c: &mut Conn, university: i64, faculty_code: &str, department_code: &str) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT f.id, d.id FROM faculties f JOIN departments d ON d.faculty_id = f.id
         WHERE f.university_id = $1 AND f.code = $2 AND d.code = $3 LIMIT 1",
    )
    .bind(university)
    .bind(faculty_code)
    .bind(department_code)
    .fetch_optional(c)
    .await
}

/// How a university checks its students' user IDs and passwords, as stored
/// (`directory_kind` None: the deployment's default).
#[derive(Debug, Clone, Default, FromRow)]
pub struct DirectorySettings {
    pub directory_kind: Option<String>,
    /// LDAP settings as JSON, without the bind password.
    pub directory_ldap: String,
    pub directory_bind_sealed: Option<String>,
}

/// None: no such university.
pub async fn university_directory(c: &mut Conn, university: i64) -> Result<Option<DirectorySettings>, sqlx::Error> {
    sqlx::query_as("SELECT directory_kind, directory_ldap, directory_bind_sealed FROM universities WHERE id = $1").bind(university).fetch_optional(c).await
}

/// Sets a university's directory; false when there is no such university.
pub async fn set_university_directory(c: &mut Conn, university: i64, s: &DirectorySettings) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE universities SET directory_kind = $1, directory_ldap = $2, directory_bind_sealed = $3 WHERE id = $4")
        .bind(&s.directory_kind)
        .bind(&s.directory_ldap)
        .bind(&s.directory_bind_sealed)
        .bind(university)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}
