//! Admin panel, accounts side: the review queue (A-2, G-4) with ID images,
//! staff accounts with their second factor, the audit log, and the
//! enrolled students' roster import (S-1).

use super::pages::render;
use super::web::{check_csrf, client_ip, Csrf, CsrfForm, CurrentStaff};
use crate::accounts::{self, directory, passwords, Client};
use crate::error::{AppError, AppResult};
use crate::registration::{self, Decision, Decider, ID_DOCUMENTS, KINDS, LEAVING_TYPES, SEXES};
use crate::{store, time, AppState};
use axum::extract::{ConnectInfo, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use std::net::SocketAddr;

const REVIEWERS: &[&str] = &["registrar"];

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct StatusQuery {
    status: String,
}

const STATUSES: [(&str, &str, &str); 4] =
    [("pending", "審査待ち", "to review"), ("resubmit", "再提出待ち", "awaiting resubmission"), ("approved", "承認済", "approved"), ("rejected", "不承認", "rejected")];

fn label(list: &[(&str, &str, &str)], v: &str) -> String {
    list.iter().find(|x| x.0 == v).map(|x| format!("{} / {}", x.1, x.2)).unwrap_or_else(|| v.to_string())
}

/// An application (not a draft) to the staff member's university, else "not found".
async fn own_registration(c: &mut store::Conn, staff: &CurrentStaff, id: i64) -> AppResult<store::Registration> {
    store::registration(c, id)
        .await?
        .filter(|r| r.status != "draft" && r.university_id == Some(staff.university()))
        .ok_or(AppError::PageNotFound)
}

/// A staff member of the same university, else "not found".
async fn own_staff(c: &mut store::Conn, staff: &CurrentStaff, id: i64) -> AppResult<store::Staff> {
    match store::staff(c, id).await {
        Ok(s) if s.university_id == staff.university() => Ok(s),
        Ok(_) | Err(sqlx::Error::RowNotFound) => Err(AppError::PageNotFound),
        Err(e) => Err(e.into()),
    }
}

pub async fn registrations(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff, Query(q): Query<StatusQuery>) -> AppResult<Response> {
    staff.require(REVIEWERS)?;
    let status = if STATUSES.iter().any(|s| s.0 == q.status) { q.status.as_str() } else { "pending" };
    let mut c = state.pool.acquire().await?;
    let list = store::registrations_by_status(&mut c, staff.university(), status, 500).await?;
    let rows: Vec<_> = list
        .iter()
        .map(|r| {
            context! { id => r.id, submitted => r.submitted_at.map(time::jst_text).unwrap_or_default(),
                       kind => label(&[KINDS[0], KINDS[1], ("add_student_id", "学籍番号追加", "additional student ID")], &r.kind),
                       name => format!("{} {}", r.name_kanji, r.name_roman).trim().to_string(), student_no => &r.student_no, email => &r.email }
        })
        .collect();
    let statuses: Vec<[&str; 3]> = STATUSES.iter().map(|s| [s.0, s.1, s.2]).collect();
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("admin_registrations.html", context! { csrf => &csrf.token, rows, status, statuses }));
    Ok(csrf.respond(page))
}

async fn view_personal(state: &AppState, staff: &CurrentStaff, ip: &str, target: &str) -> AppResult<()> {
    let mut c = state.pool.acquire().await?;
    accounts::audit(&mut c, &format!("staff:{}", staff.staff.login), "personal_data.view", target, Client { ip }).await
}

pub async fn registration(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    staff.require(REVIEWERS)?;
    let mut c = state.pool.acquire().await?;
    let r = own_registration(&mut c, &staff, id).await?;
    let images = store::registration_images(&mut c, id).await?;
    let (unis, facs, deps) = (store::universities(&mut c).await?, store::faculties(&mut c).await?, store::departments(&mut c).await?);
    let candidates = if r.kind == "reapply" { store::reapply_candidates(&mut c, staff.university(), &r.name_kana, &r.student_no).await? } else { Vec::new() };
    drop(c);
    view_personal(&state, &staff, &client_ip(&addr), &format!("registration:{id}")).await?;
    let p = personal_of(&state, &r)?;
    let name = |l: &[store::Named], v: Option<i64>| l.iter().find(|n| Some(n.id) == v).map(|n| format!("{} / {}", n.name_ja, n.name_en)).unwrap_or_default();
    let rows: Vec<(&str, &str, String)> = vec![
        ("区分", "Type", label(&[KINDS[0], KINDS[1], ("add_student_id", "学籍番号追加", "additional student ID")], &r.kind)),
        ("メールアドレス", "E-mail", r.email.clone()),
        ("受付", "Received", r.submitted_at.map(time::jst_text).unwrap_or_default()),
        ("氏名", "Name", format!("{} / {} / {}", r.name_kanji, r.name_kana, r.name_roman)),
        ("生年月日", "Birth date", p.birth_date.clone()),
        ("性別", "Sex", label(&SEXES, &r.sex)),
        ("在学時氏名", "Name in school", format!("{} {} {}", r.school_name_kanji, r.school_name_kana, r.school_name_roman)),
        ("大学", "University", name(&unis, r.university_id)),
        ("学部・研究科", "Faculty", name(&facs, r.faculty_id)),
        ("学科・専攻", "Department", name(&deps, r.department_id)),
        ("学籍番号", "Student ID", r.student_no.clone()),
        ("卒業（修了）年月", "Graduation", r.graduation_ym.clone()),
        ("区分", "Leaving type", label(&LEAVING_TYPES, &r.leaving_type)),
        ("住所", "Address", p.home_address_line()),
        ("電話", "Phones", format!("{} {}", p.home_phone, p.mobile_phone)),
        // the workplace address as the applicant gave it, part by part like the home address
        ("勤務先名", "Workplace name", p.work_name.clone()),
        ("勤務先郵便番号", "Workplace postal code", p.work_postal_code.clone()),
        ("勤務先都道府県", "Workplace prefecture", p.work_prefecture.clone()),
        ("勤務先市区町村", "Workplace city", p.work_city.clone()),
        ("勤務先番地", "Workplace street and number", p.work_street.clone()),
        ("勤務先建物名・部屋番号", "Workplace building and room", p.work_building.clone()),
        ("勤務先電話番号", "Workplace phone", p.work_phone.clone()),
        ("本人確認書類", "Identity document", label(&ID_DOCUMENTS, &r.id_document_type)),
    ];
    let images: Vec<_> = images.iter().map(|i| context! { id => i.id, width => i.width, height => i.height, name => &i.original_name }).collect();
    // D-3 review aid: the application beside the registrar's school register
    let check = register_check(&state, &r, &p, &facs, &deps).await?;
    let register_found = check.is_some();
    let lines = check.unwrap_or_default();
    let differing = lines.iter().filter(|l| !l.4).count();
    let register_rows: Vec<_> = lines.into_iter().map(|(ja, en, a, reg, same)| context! { ja, en, application => a, register => reg, same }).collect();
    // a missing or differing record is a warning staff acknowledge before approving
    let register_warning = !register_found || differing > 0;
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render(
        "admin_registration.html",
        context! { csrf => &csrf.token, id, rows, images, status => label(&STATUSES, &r.status), pending => r.status == "pending",
                   kind => &r.kind, candidates, reason => &r.reason, register_found, register_rows, differing, register_warning },
    ));
    Ok(csrf.respond(page))
}

/// An ID image: only to staff who review, each view logged, never cached.
pub async fn registration_image(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    staff: CurrentStaff,
    Path((id, image_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    staff.require(REVIEWERS)?;
    let mut c = state.pool.acquire().await?;
    own_registration(&mut c, &staff, id).await?;
    let img = store::registration_images(&mut c, id).await?.into_iter().find(|i| i.id == image_id).ok_or(AppError::PageNotFound)?;
    drop(c);
    view_personal(&state, &staff, &client_ip(&addr), &format!("registration:{id}:image:{image_id}")).await?;
    let bytes = registration::read_image(&state.config.accounts.upload_dir, &state.seal, &img.file_name)?;
    Ok((
        [
            (header::CONTENT_TYPE, img.mime.clone()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::CONTENT_DISPOSITION, "inline".to_string()),
        ],
        bytes,
    )
        .into_response())
}

/// An application's sealed personal data (an added student ID carries none).
fn personal_of(state: &AppState, r: &store::Registration) -> AppResult<registration::Personal> {
    if r.kind == "add_student_id" {
        return Ok(Default::default());
    }
    registration::Personal::open(&state.seal, r.personal_sealed.as_deref(), &registration::registration_aad(r.id))
}

/// D-3: the application beside the registrar's school register: None when
/// the register has no entry for its student number, else each compared
/// field (an added student ID compares the number alone: found or not).
async fn register_check(
    state: &AppState,
    r: &store::Registration,
    p: &registration::Personal,
    facs: &[store::Named],
    deps: &[store::Named],
) -> AppResult<Option<Vec<crate::registrar::school_register::Comparison>>> {
    let code = |l: &[store::Named], v: Option<i64>| l.iter().find(|n| Some(n.id) == v).map(|n| n.code.clone()).unwrap_or_default();
    let mut c = state.pool.acquire().await?;
    let register = match r.university_id {
        Some(u) => crate::registrar::school_register::current(&mut c, &state.seal, u, &r.student_no).await?,
        None => None,
    };
    drop(c);
    Ok(register.map(|(_, rec)| {
        if r.kind == "add_student_id" {
            return Vec::new();
        }
        crate::registrar::school_register::compare(
            &rec,
            // the name in school, or the name itself when the applicant left it empty (unchanged since)
            if r.school_name_kanji.trim().is_empty() { &r.name_kanji } else { &r.school_name_kanji },
            if r.school_name_kana.trim().is_empty() { &r.name_kana } else { &r.school_name_kana },
            if r.school_name_roman.trim().is_empty() { &r.name_roman } else { &r.school_name_roman },
            &p.birth_date,
            &code(facs, r.faculty_id),
            &code(deps, r.department_id),
            &r.graduation_ym,
            &r.leaving_type,
        )
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DecideForm {
    csrf: String,
    action: String,
    reason: String,
    target_user: String,
    /// "1": the reviewer acknowledged that the school register has no entry or differs.
    acknowledge_register: String,
}

pub async fn decide(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<DecideForm>,
) -> AppResult<Response> {
    staff.require(REVIEWERS)?;
    check_csrf(&state, &headers, &f.csrf)?;
    own_registration(&mut *state.pool.acquire().await?, &staff, id).await?;
    let reason = f.reason.trim().to_string();
    if reason.chars().count() > 500 {
        return Err(AppError::Page("理由は500文字以内にしてください。 / Keep the reason within 500 characters.".into()));
    }
    let need_reason = || AppError::Page("不承認・再提出には理由を入力してください。 / Give a reason to reject or to ask for resubmission.".into());
    let decision = match f.action.as_str() {
        "approve" => Decision::Approve { reapply_user: f.target_user.parse().ok() },
        "reject" if !reason.is_empty() => Decision::Reject(reason),
        "resubmit" if !reason.is_empty() => Decision::Resubmit(reason),
        "reject" | "resubmit" => return Err(need_reason()),
        _ => return Err(AppError::Page(crate::messages::CHECK_INPUT.into())),
    };
    if matches!(decision, Decision::Approve { .. }) && f.acknowledge_register != "1" {
        // D-3: approving past a missing or differing register record is a choice staff make knowingly
        let mut c = state.pool.acquire().await?;
        let r = own_registration(&mut c, &staff, id).await?;
        let (facs, deps) = (store::faculties(&mut c).await?, store::departments(&mut c).await?);
        drop(c);
        let p = personal_of(&state, &r)?;
        let warned = match register_check(&state, &r, &p, &facs, &deps).await? {
            None => true,
            Some(lines) => lines.iter().any(|l| !l.4),
        };
        if warned {
            return Err(AppError::Page(crate::messages::ACKNOWLEDGE_REGISTER.into()));
        }
    }
    let ip = client_ip(&addr);
    let cfg = &state.config;
    let d = Decider {
        pool: &state.pool,
        hasher: &state.hasher,
        seal: &state.seal,
        public_url: &cfg.http.public_url,
        link_ttl_s: cfg.accounts.registration_link_ttl_s,
        initial_password_ttl_s: cfg.accounts.initial_password_ttl_s,
    };
    registration::decide(&d, &staff.staff, Client { ip: &ip }, id, decision).await?;
    state.mail_wake.notify_one();
    Ok(Redirect::to("/admin/registrations").into_response())
}

// ---------------------------------------------------------------- staff accounts (admin only)

const ADMINS: &[&str] = &[];

/// What a new second factor looks like the one time it is shown.
#[derive(serde::Serialize)]
struct NewFactor {
    login: String,
    password: Option<String>,
    secret: String,
    uri: String,
    codes: Vec<String>,
}

async fn staff_page(state: &AppState, headers: &HeaderMap, staff: &CurrentStaff, created: Option<NewFactor>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let list = store::staff_list(&mut c, staff.university()).await?;
    let staff: Vec<_> = list
        .iter()
        .map(|s| context! { id => s.id, login => &s.login, display_name => &s.display_name, role => &s.role, active => s.active })
        .collect();
    let csrf = Csrf::get(state, headers);
    let page = Html(render("admin_staff.html", context! { csrf => &csrf.token, staff, created }));
    Ok(csrf.respond(page))
}

pub async fn staff_list(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(ADMINS)?;
    staff_page(&state, &headers, &staff, None).await
}

/// A fresh second factor for a staff member, stored; returns what to show once.
async fn new_factor(state: &AppState, c: &mut store::Conn, staff_id: i64, login: &str) -> AppResult<NewFactor> {
    let f = accounts::new_second_factor(&state.seal, c, staff_id, login).await?;
    Ok(NewFactor { login: login.to_string(), password: None, secret: f.secret_b32, uri: f.uri, codes: f.recovery_codes })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewStaffForm {
    csrf: String,
    login: String,
    display_name: String,
    role: String,
}

pub async fn create_staff(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<NewStaffForm>,
) -> AppResult<Response> {
    staff.require(ADMINS)?;
    check_csrf(&state, &headers, &f.csrf)?;
    let login = f.login.trim();
    if login.is_empty() || login.len() > 40 || !login.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(AppError::Page("ログインIDは40文字以内の英数字（. _ - 可）にしてください。 / The login ID is up to 40 letters, digits, dots, dashes or underscores.".into()));
    }
    if !super::roles::STAFF_ROLES.contains(&f.role.as_str()) || f.display_name.trim().is_empty() {
        return Err(AppError::Page(crate::messages::CHECK_INPUT.into()));
    }
    let password = passwords::initial_password();
    let hash = state.hasher.hash(&password).await?;
    let mut tx = store::begin_write(&state.pool).await?;
    if store::staff_by_login(&mut tx, login).await?.is_some() {
        return Err(AppError::Page("このログインIDはすでに使われています。 / This login ID is taken.".into()));
    }
    let id = store::insert_staff(&mut tx, staff.university(), login, f.display_name.trim(), &hash, &f.role, "", time::now()).await?;
    let mut factor = new_factor(&state, &mut tx, id, login).await?;
    factor.password = Some(password);
    let ip = client_ip(&addr);
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "staff.create", &format!("staff:{login} role:{}", f.role), Client { ip: &ip }).await?;
    tx.commit().await?;
    staff_page(&state, &headers, &staff, Some(factor)).await
}

/// A new initial password for a staff member who lost theirs (or let it
/// expire): shown once, replaced at the next login; their sessions end.
pub async fn reissue_password(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    staff.require(ADMINS)?;
    check_csrf(&state, &headers, &f.csrf)?;
    let password = passwords::initial_password();
    let hash = state.hasher.hash(&password).await?;
    let mut tx = store::begin_write(&state.pool).await?;
    let target = own_staff(&mut tx, &staff, id).await?;
    store::set_staff_initial_password(&mut tx, id, &hash, time::now()).await?;
    store::delete_staff_sessions(&mut tx, id).await?;
    let ip = client_ip(&addr);
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "staff.password_reissued", &format!("staff:{}", target.login), Client { ip: &ip }).await?;
    tx.commit().await?;
    let shown = NewFactor { login: target.login.clone(), password: Some(password), secret: String::new(), uri: String::new(), codes: Vec::new() };
    staff_page(&state, &headers, &staff, Some(shown)).await
}

pub async fn reset_factor(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    staff.require(ADMINS)?;
    check_csrf(&state, &headers, &f.csrf)?;
    let mut tx = store::begin_write(&state.pool).await?;
    let target = own_staff(&mut tx, &staff, id).await?;
    let factor = new_factor(&state, &mut tx, id, &target.login).await?;
    store::delete_staff_sessions(&mut tx, id).await?;
    let ip = client_ip(&addr);
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "staff.totp_reset", &format!("staff:{}", target.login), Client { ip: &ip }).await?;
    tx.commit().await?;
    staff_page(&state, &headers, &staff, Some(factor)).await
}

pub async fn disable_staff(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    staff.require(ADMINS)?;
    check_csrf(&state, &headers, &f.csrf)?;
    if id == staff.staff.id {
        return Err(AppError::Page("自分自身は停止できません。 / You cannot disable yourself.".into()));
    }
    let mut tx = store::begin_write(&state.pool).await?;
    let target = own_staff(&mut tx, &staff, id).await?;
    store::set_staff_active(&mut tx, id, false).await?;
    store::delete_staff_sessions(&mut tx, id).await?;
    let ip = client_ip(&addr);
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "staff.disable", &format!("staff:{}", target.login), Client { ip: &ip }).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/staff").into_response())
}

pub async fn audit_log(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(ADMINS)?;
    let mut c = state.pool.acquire().await?;
    let rows: Vec<_> = store::recent_audit(&mut c, staff.fleet(), 500)
        .await?
        .into_iter()
        .map(|a| {
            context! { at => chrono::DateTime::from_timestamp(a.at, 0).map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
                       actor => a.actor, action => a.action, target => a.target, ip => a.ip, detail => a.detail }
        })
        .collect();
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("admin_audit.html", context! { csrf => &csrf.token, rows }));
    Ok(csrf.respond(page))
}

// ---------------------------------------------------------------- roster (S-1)

/// The staff member's university's roster: how many students it holds, and
/// whether the university's students are checked against it or its LDAP server.
async fn roster_page(state: &AppState, headers: &HeaderMap, staff: &CurrentStaff, imported: Option<usize>, row_errors: Vec<String>) -> AppResult<Response> {
    let university = staff.university();
    let mut c = state.pool.acquire().await?;
    let count = store::roster_count(&mut c, university).await?;
    drop(c);
    let ldap = match state.directories.source(university).await {
        Ok(Some(directory::DirectorySource::Ldap(_))) => true,
        Ok(Some(directory::DirectorySource::Config(cfg))) => cfg.kind == "ldap",
        Ok(_) => false,
        Err(e) => return Err(accounts::directory_failed(e)),
    };
    let login_link = format!("{}/student/login?university={university}", state.config.http.public_url);
    let csrf = Csrf::get(state, headers);
    let status = if row_errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let page = Html(render(
        "admin_roster.html",
        context! { csrf => &csrf.token, count, imported, row_errors, ldap, login_link, columns => directory::ROSTER_COLUMNS.join(",") },
    ));
    Ok((status, csrf.respond(page)).into_response())
}

pub async fn roster(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(REVIEWERS)?;
    roster_page(&state, &headers, &staff, None, Vec::new()).await
}

/// All rows or none: every bad row is reported with its line number.
pub async fn import_roster(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    mut mp: Multipart,
) -> AppResult<Response> {
    staff.require(REVIEWERS)?;
    let mut csrf = String::new();
    let mut file = Vec::new();
    let bad = |_| AppError::Page(crate::messages::CHECK_INPUT.into());
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(bad)?,
            Some("file") => file = field.bytes().await.map_err(bad)?.to_vec(),
            _ => {}
        }
    }
    check_csrf(&state, &headers, &csrf)?;
    let Ok(text) = String::from_utf8(file) else {
        return roster_page(&state, &headers, &staff, None, vec!["ファイルが UTF-8 ではありません。 / The file is not UTF-8.".into()]).await;
    };
    let rows = match directory::parse_roster(&text) {
        Ok(rows) => rows,
        Err(errors) => {
            let lines = errors.iter().map(|e| e.to_string()).collect();
            return roster_page(&state, &headers, &staff, None, lines).await;
        }
    };
    // plain initial passwords in the file are hashed here, off the runtime
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        let hash = match (&r.password_hash, &r.password) {
            (Some(h), _) => h.clone(),
            (None, Some(p)) => state.hasher.hash(p).await?,
            (None, None) => return Err(AppError::Page(crate::messages::CHECK_INPUT.into())),
        };
        entries.push(store::RosterEntry {
            user_id: r.user_id,
            password_hash: hash,
            name_kanji: r.name_kanji,
            name_kana: r.name_kana,
            name_roman: r.name_roman,
            student_no: r.student_no,
            faculty_code: r.faculty_code,
            department_code: r.department_code,
            email: r.email.unwrap_or_default(),
            card_uid: r.card_id.unwrap_or_default(),
        });
    }
    let n = entries.len();
    let mut tx = store::begin_write(&state.pool).await?;
    for e in &entries {
        store::upsert_roster_entry(&mut tx, staff.university(), e, time::now()).await?;
    }
    let ip = client_ip(&addr);
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "roster.import", &format!("{n} rows"), Client { ip: &ip }).await?;
    tx.commit().await?;
    roster_page(&state, &headers, &staff, Some(n), Vec::new()).await
}

// ---------------------------------------------------------------- a staff member's own password

fn staff_password_form() -> super::account::PasswordPage<'static> {
    super::account::PasswordPage {
        title: ("職員パスワードの変更", "Change your staff password"),
        intro: Some(("初期パスワードでログインした場合は、ここで自分のパスワードを設定してください。", "After logging in with an initial password, set your own here.")),
        action: "/admin/password",
        token: "",
        fields: super::account::PasswordFields { current: true, password: true, ..Default::default() },
        button: "変更 / Change",
    }
}

pub async fn password_page(State(state): State<AppState>, headers: HeaderMap, _staff: CurrentStaff) -> Response {
    super::account::password_page(&state, &headers, &staff_password_form(), &Default::default())
}

pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<super::account::PasswordForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client_ip(&addr);
    let key = format!("staff-change:{}", staff.staff.id);
    state.login_throttle.gate(&key, &ip).await?;
    match crate::accounts::credentials::change_staff_password(
        &state.pool,
        &state.hasher,
        &state.config.accounts.password_policy,
        &staff.staff,
        Client { ip: &ip },
        &f.current_password,
        (&f.password, &f.password_confirm),
    )
    .await
    {
        Ok(()) => {
            // all sessions ended: log in again with the new password
            let mut r = Redirect::to("/admin/login").into_response();
            r.headers_mut().append(header::SET_COOKIE, super::web::set_cookie(&state, super::web::STAFF_COOKIE, "", 0, "Strict"));
            Ok(r)
        }
        Err(crate::accounts::credentials::Form::Fields(e)) => {
            if e.contains_key("current_password") {
                state.login_throttle.fail_both(&key, &ip).await;
            }
            Ok(super::account::password_page(&state, &headers, &staff_password_form(), &e))
        }
        Err(crate::accounts::credentials::Form::Error(e)) => Err(e),
    }
}
