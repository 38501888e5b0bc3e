//! Graduation day (issue 16): the registrar issues the digital certificates
//! (a degree certificate, say) of a whole cohort in one action.
//!
//! A run names a graduation date, a faculty (or all) and a certificate type
//! the university delivers digitally. Its graduates are those of the date
//! in the current school register (D-3) who were not issued the type by an
//! earlier run. A graduate whose student number an account holds gets an
//! order "issued by the university" (no charge), signed (PAdES B-T) and one
//! mail; one with no account is listed so (a later run, once they have one,
//! issues theirs). A background job ([`crate::jobs::COHORTS`]) does the work
//! a graduate at a time, several in flight, and the panel shows the run's
//! progress. Each step is a transaction that first checks the graduate is
//! still pending, so a pass cut short (or run twice) never places a second
//! order or sends a second mail.

use futures_util::StreamExt;

use crate::accounts::Client;
use crate::error::{AppError, AppResult};
use crate::store::{self, Pool};
use crate::time::now;
use crate::{mail, messages};

use super::{digital, problem, Desk, FormProblem, LineRequest, OrderRequest, Payer};

/// Graduates issued at once (signing waits mostly on the time-stamp authority).
pub const IN_FLIGHT: usize = 8;

/// What the registrar asks for.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub certificate_type_id: i64,
    pub graduation_date: String,
    /// Empty: every faculty.
    pub faculty_code: String,
}

/// The certificate types a run may issue: the university's active types
/// delivered digitally (a degree certificate, a final transcript).
pub fn issuable(types: &[store::CertificateType]) -> Vec<store::CertificateType> {
    types.iter().filter(|t| t.active && t.digital).cloned().collect()
}

/// Starts a run: its id, with its graduates listed. Ok(Err(problem)) for
/// what the registrar can fix on the form.
pub async fn start(
    pool: &Pool,
    sealers: &crate::documents::signing::Sealers,
    staff: &store::Staff,
    university_id: i64,
    client: Client<'_>,
    req: &RunRequest,
) -> AppResult<Result<i64, FormProblem>> {
    let mut c = pool.acquire().await?;
    let types = issuable(&store::certificate_types(&mut c, university_id).await?);
    if !types.iter().any(|t| t.id == req.certificate_type_id) {
        return Ok(Err(problem("certificate_type_id", messages::COHORT_TYPE)));
    }
    if sealers.of(university_id).is_none() {
        return Ok(Err(problem("certificate_type_id", messages::DIGITAL_NOT_OFFERED)));
    }
    let cohorts = store::cohort_sizes(&mut c, university_id).await?;
    let known = cohorts.iter().any(|k| k.graduation_date == req.graduation_date && (req.faculty_code.is_empty() || k.faculty_code == req.faculty_code));
    if !known {
        return Ok(Err(problem("graduation_date", messages::COHORT_DATE)));
    }
    drop(c);
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    let run_id = store::insert_cohort_run(&mut tx, university_id, req.certificate_type_id, &req.graduation_date, &req.faculty_code, staff.id, t).await?;
    let added = store::insert_cohort_items(&mut tx, run_id, university_id, req.certificate_type_id, &req.graduation_date, &req.faculty_code).await?;
    if added == 0 {
        return Ok(Err(problem("graduation_date", messages::COHORT_ALL_DONE)));
    }
    let what = format!("run {run_id}: type {} to the graduates of {} {} ({added})", req.certificate_type_id, req.graduation_date, req.faculty_code);
    crate::accounts::audit(&mut tx, &format!("staff:{}", staff.login), "graduation.start", &what, client).await?;
    tx.commit().await?;
    tracing::info!(run_id, added, "graduation-day run started");
    Ok(Ok(run_id))
}

/// Tries a graduate that failed for a passing reason this many times, then
/// gives up on them with the reason (a later run of the cohort tries again).
pub const MAX_ATTEMPTS: i64 = 20;
/// Graduates a batch takes: one round of those in flight, so a batch runs
/// well inside the job's lease (renewed before each).
const BATCH: i64 = IN_FLIGHT as i64;

/// One batch: the next pending graduates after `after` (an item id), each
/// tried once. Returns how many were issued and where the next batch
/// starts (None: nothing is left after this one; the runs with nothing
/// pending are marked finished).
pub async fn pass(desk: &Desk<'_>, after: i64) -> AppResult<(usize, Option<i64>)> {
    let mut c = desk.pool.acquire().await?;
    let batch = store::pending_cohort_items(&mut c, after, BATCH).await?;
    drop(c);
    let last = batch.iter().map(|i| i.id).max();
    let full = batch.len() as i64 == BATCH;
    let results: Vec<bool> = futures_util::stream::iter(batch).map(|item| issue_one(desk, item)).buffer_unordered(IN_FLIGHT).collect().await;
    let issued = results.into_iter().filter(|done| *done).count();
    if full {
        return Ok((issued, last));
    }
    let mut tx = store::begin_write(desk.pool).await?;
    store::finish_cohort_runs(&mut tx, now()).await?;
    tx.commit().await?;
    Ok((issued, None))
}

/// Issues one graduate (placed, signed, mailed): true when done now. A step
/// that fails for a passing reason is noted on the graduate and tried on
/// the next pass ([`MAX_ATTEMPTS`] at most); one the register decides (not
/// orderable, a name no font prints) fails the graduate with the reason.
async fn issue_one(desk: &Desk<'_>, item: store::CohortItem) -> bool {
    let (id, attempts) = (item.id, item.attempts);
    match try_issue(desk, item).await {
        Ok(Step::Issued) => true,
        Ok(Step::Gone) => false,
        Ok(Step::Held(why)) => {
            // a service break: waited out, not counted as a try
            let r = async {
                let mut tx = store::begin_write(desk.pool).await?;
                store::cohort_item_waiting(&mut tx, id, &why).await?;
                tx.commit().await
            };
            if let Err(e) = r.await {
                tracing::warn!(item = id, error = %e, "could not note a graduate waiting");
            }
            false
        }
        Ok(Step::Failed(why)) => {
            note(desk.pool, id, Some(&why)).await;
            false
        }
        Err(e) => {
            tracing::warn!(item = id, attempts, error = %e, "a graduate of a graduation-day run was not issued yet; tried again on the next pass");
            let why = match e {
                AppError::Page(m) => m,
                _ => messages::SIGNING_UNAVAILABLE.to_string(),
            };
            if attempts + 1 >= MAX_ATTEMPTS {
                note(desk.pool, id, Some(&messages::cohort_gave_up(MAX_ATTEMPTS, &why))).await;
            } else {
                retry(desk.pool, id, &why).await;
            }
            false
        }
    }
}

enum Step {
    Issued,
    /// No longer pending (another pass took it).
    Gone,
    /// Ordering is closed for the university (a service break): wait.
    Held(String),
    Failed(String),
}

async fn note(pool: &Pool, item_id: i64, failed: Option<&str>) {
    let r = async {
        let mut tx = store::begin_write(pool).await?;
        store::finish_cohort_item(&mut tx, item_id, "failed", failed, now()).await?;
        tx.commit().await
    };
    if let Err(e) = r.await {
        tracing::warn!(item = item_id, error = %e, "could not note a graduate's failure");
    }
}

async fn retry(pool: &Pool, item_id: i64, why: &str) {
    let r = async {
        let mut tx = store::begin_write(pool).await?;
        store::cohort_item_retry(&mut tx, item_id, why).await?;
        tx.commit().await
    };
    if let Err(e) = r.await {
        tracing::warn!(item = item_id, error = %e, "could not note a graduate's retry");
    }
}

async fn try_issue(desk: &Desk<'_>, item: store::CohortItem) -> AppResult<Step> {
    let record_id = item.student_record_id.ok_or_else(|| AppError::Internal(anyhow::anyhow!("graduate {} has no account", item.id)))?;
    let mut c = desk.pool.acquire().await?;
    let user_id = store::student_record_user(&mut c, record_id).await?;
    let run = store::cohort_run_university(&mut c, item.run_id).await?;
    // a service break holds graduation day too: waited out
    if let Err(AppError::Page(closed)) = super::service::check_open(&mut c, run).await {
        return Ok(Step::Held(closed));
    }
    let order_id = match item.order_id {
        Some(order_id) => order_id,
        None => {
            drop(c);
            let req = OrderRequest {
                student_record_id: record_id,
                lines: vec![LineRequest { certificate_type_id: item.certificate_type_id, copies: 1 }],
                delivery: "digital".into(),
                payment_method: "university".into(),
                post: None,
            };
            // what the register decides (not orderable, a name no font prints) comes back as a
            // Page; so does a service break that began just now, which is waited out instead
            match super::place_as(desk, 0, user_id, &req, Payer::University { cohort_item: item.id }, None).await {
                Ok(placed) => placed.order_id,
                Err(AppError::Page(m)) => {
                    let mut c = desk.pool.acquire().await?;
                    if let Err(AppError::Page(closed)) = super::service::check_open(&mut c, run).await {
                        return Ok(Step::Held(closed));
                    }
                    return Ok(Step::Failed(m));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let signed = digital::sign_own(desk, order_id).await?;
    let mut tx = store::begin_write(desk.pool).await?;
    if digital::withdrawn_for_everyone(&mut tx, order_id).await? {
        // revoked (or refunded) by staff while it was being signed: not announced
        drop(tx);
        return Ok(Step::Failed(messages::DIGITAL_REVOKED.to_string()));
    }
    if !store::finish_cohort_item(&mut tx, item.id, "issued", None, now()).await? {
        // another pass issued this graduate first: nothing is kept or mailed twice
        return Ok(Step::Gone);
    }
    digital::keep_own(&mut tx, desk, order_id, &signed, &format!("graduation-day:{}", item.id)).await?;
    let user = store::user(&mut tx, user_id).await?;
    let order = store::order(&mut tx, order_id).await?;
    let record = store::student_records(&mut tx, user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
    let line = store::order_lines(&mut tx, order_id).await?.into_iter().next().ok_or(AppError::PageNotFound)?;
    let university = store::order_university(&mut tx, order_id).await?;
    let to = mail::Recipient { name_ja: &record.name_kanji, name_en: &record.name_roman, language: &user.language };
    let url = format!("{}/orders/{order_id}", desk.public_url);
    mail::cohort_issued_mail(&to, &line.name_ja, &line.name_en, &university.name_ja, &university.name_en, &url)
        .enqueue_for_order(&mut tx, desk.seal, &user.email, order_id)
        .await?;
    tx.commit().await?;
    tracing::info!(item = item.id, order_id, "graduation-day certificate issued and mailed");
    Ok(Step::Issued)
}
