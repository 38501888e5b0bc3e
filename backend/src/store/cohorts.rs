//! Graduation day: runs that issue a cohort's digital certificates, and
//! their graduates (the rules are in the orders domain, `orders/cohort.rs`).

use super::*;
use sqlx::FromRow;

/// The newest register version of each student number of a university (D-3).
const CURRENT_REGISTER: &str = "SELECT r.student_no, r.faculty_code, r.graduation_date, r.leaving_type FROM school_register r
    JOIN (SELECT s.student_no, MAX(s.import_id) AS import_id FROM school_register s
          JOIN school_register_imports i ON i.id = s.import_id WHERE i.university_id = $1 GROUP BY s.student_no) cur
      ON cur.student_no = r.student_no AND cur.import_id = r.import_id";

/// Graduates of one graduation date and faculty in the current register.
#[derive(Debug, Clone, FromRow)]
pub struct CohortSize {
    pub graduation_date: String,
    pub faculty_code: String,
    pub graduates: i64,
}

/// The university's cohorts: graduates per graduation date and faculty, the newest first.
pub async fn cohort_sizes(c: &mut Conn, university_id: i64) -> Result<Vec<CohortSize>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT g.graduation_date, g.faculty_code, COUNT(*) AS graduates FROM ({CURRENT_REGISTER}) g
         WHERE g.leaving_type = 'graduated' AND g.graduation_date <> ''
         GROUP BY g.graduation_date, g.faculty_code ORDER BY g.graduation_date DESC, g.faculty_code"
    ))
    .bind(university_id)
    .fetch_all(c)
    .await
}

/// A new run: its id. Its graduates are added by [`insert_cohort_items`].
pub async fn insert_cohort_run(c: &mut Conn, university_id: i64, type_id: i64, graduation_date: &str, faculty_code: &str, staff_id: i64, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO cohort_runs (university_id, certificate_type_id, graduation_date, faculty_code, started_by, started_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(university_id)
    .bind(type_id)
    .bind(graduation_date)
    .bind(faculty_code)
    .bind(staff_id)
    .bind(now)
    .fetch_one(c)
    .await
}

/// Adds the run's graduates: each graduate of the cohort in the current
/// register not issued the type (nor being issued it) by an earlier run, with the account's
/// student record holding the number (pending), or none (no_account).
/// Returns how many were added.
pub async fn insert_cohort_items(c: &mut Conn, run_id: i64, university_id: i64, type_id: i64, graduation_date: &str, faculty_code: &str) -> Result<u64, sqlx::Error> {
    let record = "(SELECT MIN(sr.id) FROM student_records sr WHERE sr.university_id = $1 AND sr.student_no = g.student_no)";
    let r = sqlx::query(&format!(
        "INSERT INTO cohort_items (run_id, certificate_type_id, student_no, student_record_id, state)
         SELECT $2, $3, g.student_no, {record}, CASE WHEN {record} IS NULL THEN 'no_account' ELSE 'pending' END
         FROM ({CURRENT_REGISTER}) g
         WHERE g.leaving_type = 'graduated' AND g.graduation_date = $4 AND ($5 = '' OR g.faculty_code = $5)
           AND NOT EXISTS (SELECT 1 FROM cohort_items x WHERE x.certificate_type_id = $3 AND x.student_no = g.student_no AND x.state IN ('pending', 'issued'))
         ORDER BY g.student_no"
    ))
    .bind(university_id)
    .bind(run_id)
    .bind(type_id)
    .bind(graduation_date)
    .bind(faculty_code)
    .execute(c)
    .await?;
    Ok(r.rows_affected())
}

/// A run as the panel shows it, with its graduates counted by state.
#[derive(Debug, Clone, FromRow)]
pub struct CohortRun {
    pub id: i64,
    pub university_id: i64,
    pub certificate_type_id: i64,
    pub type_ja: String,
    pub type_en: String,
    pub graduation_date: String,
    pub faculty_code: String,
    pub started_by: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub issued: i64,
    pub pending: i64,
    pub no_account: i64,
    pub failed: i64,
}

const RUN_SELECT: &str = "SELECT r.id, r.university_id, r.certificate_type_id, t.name_ja AS type_ja, t.name_en AS type_en, r.graduation_date,
    r.faculty_code, s.display_name AS started_by, r.started_at, r.finished_at,
    (SELECT COUNT(*) FROM cohort_items i WHERE i.run_id = r.id AND i.state = 'issued') AS issued,
    (SELECT COUNT(*) FROM cohort_items i WHERE i.run_id = r.id AND i.state = 'pending') AS pending,
    (SELECT COUNT(*) FROM cohort_items i WHERE i.run_id = r.id AND i.state = 'no_account') AS no_account,
    (SELECT COUNT(*) FROM cohort_items i WHERE i.run_id = r.id AND i.state = 'failed') AS failed
    FROM cohort_runs r JOIN certificate_types t ON t.id = r.certificate_type_id JOIN staff s ON s.id = r.started_by";

/// One run of the university (None: no such run there).
pub async fn cohort_run(c: &mut Conn, university_id: i64, run_id: i64) -> Result<Option<CohortRun>, sqlx::Error> {
    sqlx::query_as(&format!("{RUN_SELECT} WHERE r.id = $1 AND r.university_id = $2")).bind(run_id).bind(university_id).fetch_optional(c).await
}

/// The university's runs, the newest first.
pub async fn cohort_runs(c: &mut Conn, university_id: i64, limit: i64) -> Result<Vec<CohortRun>, sqlx::Error> {
    sqlx::query_as(&format!("{RUN_SELECT} WHERE r.university_id = $1 ORDER BY r.id DESC LIMIT $2")).bind(university_id).bind(limit).fetch_all(c).await
}

/// A graduate of a run, as the run's page lists those not issued.
#[derive(Debug, Clone, FromRow)]
pub struct CohortItem {
    pub id: i64,
    pub run_id: i64,
    pub certificate_type_id: i64,
    pub student_no: String,
    pub student_record_id: Option<i64>,
    pub state: String,
    pub order_id: Option<i64>,
    pub attempts: i64,
    pub error: Option<String>,
}

const ITEM_SELECT: &str = "SELECT id, run_id, certificate_type_id, student_no, student_record_id, state, order_id, attempts, error FROM cohort_items";

/// The run's graduates in `states`, by student number.
pub async fn cohort_items_in(c: &mut Conn, run_id: i64, states: &[&str], limit: i64) -> Result<Vec<CohortItem>, sqlx::Error> {
    let states = states.iter().map(|s| format!("'{}'", s.replace('\'', ""))).collect::<Vec<_>>().join(", ");
    sqlx::query_as(&format!("{ITEM_SELECT} WHERE run_id = $1 AND state IN ({states}) ORDER BY student_no LIMIT $2")).bind(run_id).bind(limit).fetch_all(c).await
}

/// Graduates still to issue after `after` (an item id), the oldest first:
/// a pass pages through them, so those waiting for a retry never hide the rest.
pub async fn pending_cohort_items(c: &mut Conn, after: i64, limit: i64) -> Result<Vec<CohortItem>, sqlx::Error> {
    sqlx::query_as(&format!("{ITEM_SELECT} WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2")).bind(after).bind(limit).fetch_all(c).await
}

/// One graduate of a run.
pub async fn cohort_item(c: &mut Conn, item_id: i64) -> Result<CohortItem, sqlx::Error> {
    sqlx::query_as(&format!("{ITEM_SELECT} WHERE id = $1")).bind(item_id).fetch_one(c).await
}

/// Ties the order placed for a pending graduate to it; false when it had one
/// already (another pass placed it first: the caller rolls back).
pub async fn set_cohort_item_order(c: &mut Conn, item_id: i64, order_id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE cohort_items SET order_id = $1 WHERE id = $2 AND state = 'pending' AND order_id IS NULL")
        .bind(order_id)
        .bind(item_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// A pending graduate is done: 'issued' or 'failed' (with why). False when
/// it was not pending any more (its mail must not be queued twice).
pub async fn finish_cohort_item(c: &mut Conn, item_id: i64, state: &str, error: Option<&str>, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE cohort_items SET state = $1, error = $2, done_at = $3 WHERE id = $4 AND state = 'pending'")
        .bind(state)
        .bind(error)
        .bind(now)
        .bind(item_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// A try that failed and will be made again: why, counted.
pub async fn cohort_item_retry(c: &mut Conn, item_id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cohort_items SET attempts = attempts + 1, error = $1 WHERE id = $2 AND state = 'pending'").bind(error).bind(item_id).execute(c).await?;
    Ok(())
}

/// A graduate waits (a service break): why, not counted as a try.
pub async fn cohort_item_waiting(c: &mut Conn, item_id: i64, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cohort_items SET error = $1 WHERE id = $2 AND state = 'pending'").bind(why).bind(item_id).execute(c).await?;
    Ok(())
}

/// Marks the runs with nothing left to issue as finished.
pub async fn finish_cohort_runs(c: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE cohort_runs SET finished_at = $1 WHERE finished_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM cohort_items i WHERE i.run_id = cohort_runs.id AND i.state = 'pending')",
    )
    .bind(now)
    .execute(c)
    .await?;
    Ok(r.rows_affected())
}

/// The account a student record belongs to.
pub async fn student_record_user(c: &mut Conn, record_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT user_id FROM student_records WHERE id = $1").bind(record_id).fetch_one(c).await
}

/// The university a run issues for.
pub async fn cohort_run_university(c: &mut Conn, run_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT university_id FROM cohort_runs WHERE id = $1").bind(run_id).fetch_one(c).await
}
