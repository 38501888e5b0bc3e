//! Graduation day in the panel (issue 16): the registrar picks a cohort and
//! a digital certificate type and issues them in one action, then watches
//! the run's progress bar ([`crate::orders::cohort`]).

use super::pages::render;
use super::web::{check_csrf, Csrf, CurrentStaff};
use crate::error::{AppError, AppResult};
use crate::orders::cohort::{self, RunRequest};
use crate::{accounts, store, time, AppState};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use minijinja::context;
use std::collections::HashMap;
use std::net::SocketAddr;

const ROLES: &[&str] = &["registrar"];

/// A faculty's name in both languages ("every faculty" for the empty code).
fn faculty_words(faculties: &[store::Named], code: &str) -> (String, String) {
    if code.is_empty() {
        return ("全学部".into(), "every faculty".into());
    }
    faculties.iter().find(|f| f.code == code).map(|f| (f.name_ja.clone(), f.name_en.clone())).unwrap_or_else(|| (code.into(), code.into()))
}

/// Why a graduate of a run is not issued (yet), in both languages.
fn why_not(item: &store::CohortItem) -> String {
    match (item.state.as_str(), &item.error) {
        ("no_account", _) => "アカウントなし / No account here".into(),
        ("pending", Some(e)) => format!("発行待ち / Waiting（{e}）"),
        ("pending", None) => "発行待ち / Waiting".into(),
        (_, e) => e.clone().unwrap_or_default(),
    }
}

/// The run's graduates not issued, by student number.
async fn not_issued(state: &AppState, run_id: i64) -> AppResult<Vec<(String, String)>> {
    let mut c = state.pool.acquire().await?;
    Ok(store::cohort_items_in(&mut c, run_id, &["no_account", "failed", "pending"], 1000).await?.iter().map(|i| (i.student_no.clone(), why_not(i))).collect())
}

fn run_view(run: &store::CohortRun, faculties: &[store::Named]) -> minijinja::Value {
    let (faculty_ja, faculty_en) = faculty_words(faculties, &run.faculty_code);
    let total = run.issued + run.pending + run.failed;
    context! {
        id => run.id, type_ja => &run.type_ja, type_en => &run.type_en, graduation_date => &run.graduation_date,
        faculty_ja, faculty_en, started_by => &run.started_by, started_at => time::jst_text(run.started_at),
        finished => run.finished_at.is_some(), issued => run.issued, pending => run.pending, failed => run.failed,
        no_account => run.no_account, total, max => total.max(1),
    }
}

async fn university_faculties(c: &mut store::Conn, university_id: i64) -> AppResult<Vec<store::Named>> {
    Ok(store::faculties(c).await?.into_iter().filter(|f| f.parent_id == university_id).collect())
}

async fn form_page(state: &AppState, headers: &HeaderMap, staff: &CurrentStaff, form: &HashMap<String, String>, error: Option<(String, String)>) -> AppResult<Response> {
    let university = staff.university();
    let mut c = state.pool.acquire().await?;
    let faculties = university_faculties(&mut c, university).await?;
    let types = cohort::issuable(&store::certificate_types(&mut c, university).await?);
    let sizes = store::cohort_sizes(&mut c, university).await?;
    // graduation dates with their graduates (every faculty), the newest first
    let mut dates: Vec<(String, i64)> = Vec::new();
    for s in &sizes {
        match dates.iter_mut().find(|(d, _)| *d == s.graduation_date) {
            Some((_, n)) => *n += s.graduates,
            None => dates.push((s.graduation_date.clone(), s.graduates)),
        }
    }
    let cohorts: Vec<minijinja::Value> = sizes
        .iter()
        .map(|s| {
            let (faculty_ja, faculty_en) = faculty_words(&faculties, &s.faculty_code);
            context! { graduation_date => &s.graduation_date, faculty_ja, faculty_en, graduates => s.graduates }
        })
        .collect();
    let runs: Vec<minijinja::Value> = store::cohort_runs(&mut c, university, 20).await?.iter().map(|r| run_view(r, &faculties)).collect();
    drop(c);
    let offered = state.sealers.of(university).is_some();
    let csrf = Csrf::get(state, headers);
    let value = |k: &str| form.get(k).cloned().unwrap_or_default();
    let status = if error.is_some() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    let (error_field, error) = error.unzip();
    let page = Html(render(
        "admin_graduation.html",
        context! {
            csrf => &csrf.token, offered, runs, cohorts,
            types => types.iter().map(|t| context! { id => t.id, name_ja => &t.name_ja, name_en => &t.name_en }).collect::<Vec<_>>(),
            dates => dates.iter().map(|(d, n)| context! { date => d, graduates => n }).collect::<Vec<_>>(),
            faculties => faculties.iter().map(|f| context! { code => &f.code, name_ja => &f.name_ja, name_en => &f.name_en }).collect::<Vec<_>>(),
            chosen_type => value("certificate_type_id"), chosen_date => value("graduation_date"), chosen_faculty => value("faculty_code"),
            error, error_field,
        },
    ));
    Ok((status, csrf.respond(page)).into_response())
}

/// The graduation-day page: the form and the runs so far.
pub async fn page(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(ROLES)?;
    form_page(&state, &headers, &staff, &HashMap::new(), None).await
}

/// "Issue": a run starts, and the registrar goes to its progress.
pub async fn start(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(form): Form<HashMap<String, String>>,
) -> AppResult<Response> {
    staff.require(ROLES)?;
    check_csrf(&state, &headers, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    let req = RunRequest {
        certificate_type_id: form.get("certificate_type_id").and_then(|v| v.trim().parse().ok()).unwrap_or(0),
        graduation_date: form.get("graduation_date").map(|v| v.trim().to_string()).unwrap_or_default(),
        faculty_code: form.get("faculty_code").map(|v| v.trim().to_string()).unwrap_or_default(),
    };
    let ip = client.ip().to_string();
    match cohort::start(&state.pool, &state.sealers, &staff.staff, staff.university(), accounts::Client { ip: &ip }, &req).await? {
        Ok(run_id) => {
            state.cohort_wake.notify_one();
            Ok(Redirect::to(&format!("/admin/graduation/{run_id}")).into_response())
        }
        Err(p) => form_page(&state, &headers, &staff, &form, Some((p.field, p.message))).await,
    }
}

async fn own_run(state: &AppState, staff: &CurrentStaff, id: i64) -> AppResult<(store::CohortRun, Vec<store::Named>)> {
    let mut c = state.pool.acquire().await?;
    let run = store::cohort_run(&mut c, staff.university(), id).await?.ok_or(AppError::PageNotFound)?;
    let faculties = university_faculties(&mut c, staff.university()).await?;
    Ok((run, faculties))
}

/// A run's progress: the bar, the counts, and the graduates not issued (why).
pub async fn run_page(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff, Path(id): Path<i64>) -> AppResult<Response> {
    staff.require(ROLES)?;
    let (run, faculties) = own_run(&state, &staff, id).await?;
    let others: Vec<minijinja::Value> = not_issued(&state, id).await?.into_iter().map(|(student_no, why)| context! { student_no, why }).collect();
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("admin_graduation_run.html", context! { csrf => &csrf.token, run => run_view(&run, &faculties), others }));
    Ok(csrf.respond(page).into_response())
}

/// A run's counts, for its page to follow without reloading.
pub async fn progress(State(state): State<AppState>, staff: CurrentStaff, Path(id): Path<i64>) -> AppResult<Response> {
    staff.require(ROLES)?;
    let (run, _) = own_run(&state, &staff, id).await?;
    let others: Vec<serde_json::Value> = not_issued(&state, id).await?.into_iter().map(|(student_no, why)| serde_json::json!({ "student_no": student_no, "why": why })).collect();
    Ok(Json(serde_json::json!({
        "issued": run.issued, "pending": run.pending, "failed": run.failed, "no_account": run.no_account,
        "total": run.issued + run.pending + run.failed, "finished": run.finished_at.is_some(), "not_issued": others,
    }))
    .into_response())
}
