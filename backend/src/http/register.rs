//! Registration pages (G-1..G-3, G-6 form, resubmission): e-mail twice ->
//! one-time URL -> terms -> applicant data with ID images -> confirmation ->
//! "application accepted".

use super::pages::{message_page, render};
use super::web::{check_csrf, client_ip, cookie, cookie_name, set_cookie, Csrf, CsrfForm, DRAFT_COOKIE};
use crate::accounts;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::registration::{self, ApplicationForm, ID_DOCUMENTS, KINDS, LEAVING_TYPES, SEXES};
use crate::store::{self, Registration};
use crate::registration::uploads;
use crate::AppState;
use axum::extract::{ConnectInfo, Multipart, Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use std::net::SocketAddr;

fn email_page(state: &AppState, csrf: &str, email: &str, confirm: &str, errors: &FieldErrors) -> Html<String> {
    Html(render(
        "register_email.html",
        context! { csrf, email, email_confirm => confirm, errors, ttl_h => state.config.accounts.registration_link_ttl_s / 3600 },
    ))
}

pub async fn email_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::get(&state, &headers);
    let page = email_page(&state, &csrf.token, "", "", &FieldErrors::new());
    csrf.respond(page)
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    email_confirm: String,
}

/// Checks an address typed twice; the messages name the field.
pub fn check_email_pair(email: &str, confirm: &str, errors: &mut FieldErrors) {
    if email.trim().is_empty() {
        errors.insert("email".into(), "メールアドレスを入力してください。 / Enter your e-mail address.".into());
    } else if !crate::mail::valid_email(email) {
        errors.insert("email".into(), "メールアドレスの形式が正しくありません（例: name@example.jp）。 / This is not an e-mail address (e.g. name@example.jp).".into());
    } else if email.trim().to_lowercase() != confirm.trim().to_lowercase() {
        errors.insert("email_confirm".into(), "確認のため入力したメールアドレスが一致しません。 / The two addresses do not match.".into());
    }
}

/// G-1: the same answer whether or not the address is registered.
pub async fn request_link(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<EmailForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let mut errors = FieldErrors::new();
    check_email_pair(&f.email, &f.email_confirm, &mut errors);
    if !errors.is_empty() {
        let csrf = Csrf::get(&state, &headers);
        let page = email_page(&state, &csrf.token, &f.email, &f.email_confirm, &errors);
        return Ok((StatusCode::BAD_REQUEST, csrf.respond(page)).into_response());
    }
    let ip = client_ip(&addr);
    let key = format!("register:{}", f.email.trim().to_lowercase());
    state.request_throttle.gate(&key, &ip).await?;
    state.request_throttle.fail_both(&key, &ip).await;
    registration::request_link(&state.pool, &state.seal, &state.config.http.public_url, state.config.accounts.registration_link_ttl_s, &f.email).await?;
    state.mail_wake.notify_one();
    Ok(Html(message_page(
        ("メールを送信しました", "Check your mail"),
        &[(
            "入力したメールアドレスにご案内を送信しました。メールに記載のURLから手続きを続けてください。",
            "We have sent a mail to the address you entered. Follow the link in it to continue.",
        ), (
            "メールが届かない場合は、アドレスを確認してもう一度お試しください。",
            "If no mail arrives, check the address and try again.",
        )],
        None,
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    t: String,
    #[serde(default)]
    purpose: String,
}

fn link_purpose(p: &str) -> &'static str {
    match p {
        "resubmit" => "resubmit",
        "add_student_id" => "add_student_id",
        _ => "register",
    }
}

/// The page a registration link opens: the terms, whose "agree" button uses
/// the link (GET changes nothing: mail scanners may open links). A link to
/// add a student ID (G-6) opens the form itself: the account agreed to the
/// terms when it registered; the form's first sending uses the link.
pub async fn open_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LinkQuery>) -> AppResult<Response> {
    let purpose = link_purpose(&q.purpose);
    let mut c = state.pool.acquire().await?;
    accounts::peek_token(&mut c, purpose, &q.t).await?;
    drop(c);
    if purpose == "add_student_id" {
        let f = ApplicationForm { kind: "add_student_id".into(), ..Default::default() };
        let shown = FormFor { registration_id: None, in_school_only: true, reason: "", link_token: &q.t };
        return render_form(&state, &headers, &shown, &f, &FieldErrors::new()).await;
    }
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("register_terms.html", context! { csrf => &csrf.token, token => &q.t, purpose }));
    Ok(IntoResponse::into_response(csrf.respond(page)))
}

#[derive(Deserialize)]
pub struct OpenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    t: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    agree: String,
}

pub async fn open(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<OpenForm>) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let purpose = link_purpose(&f.purpose);
    if f.agree != "1" {
        let csrf = Csrf::get(&state, &headers);
        let page = Html(render(
            "register_terms.html",
            context! { csrf => &csrf.token, token => &f.t, purpose,
                       error => "続けるには「上記に同意する」にチェックしてください。 / Tick \"I agree\" to continue." },
        ));
        return Ok(IntoResponse::into_response((StatusCode::BAD_REQUEST, csrf.respond(page))));
    }
    let draft = registration::open_link(&state.pool, purpose, &f.t).await?;
    let mut r = Redirect::to("/register/form").into_response();
    r.headers_mut().append(SET_COOKIE, set_cookie(&state, DRAFT_COOKIE, &draft, 24 * 3600, "Lax"));
    Ok(IntoResponse::into_response(r))
}

async fn draft(state: &AppState, headers: &HeaderMap) -> AppResult<Registration> {
    let key = cookie(headers, &cookie_name(state, DRAFT_COOKIE)).unwrap_or_default();
    let mut c = state.pool.acquire().await?;
    store::registration_by_draft(&mut c, &accounts::token_hash(&key)).await?.ok_or_else(|| {
        AppError::Page("申請の手続きが見つかりません。メールのURLからやり直してください。 / No application is in progress here: start again from the link in your mail.".into())
    })
}

fn options(list: &[store::Named]) -> Vec<Vec<String>> {
    list.iter().map(|n| vec![n.id.to_string(), n.name_ja.clone(), n.name_en.clone(), n.parent_id.to_string()]).collect()
}

fn choices(list: &[(&str, &str, &str)]) -> Vec<Vec<String>> {
    list.iter().map(|(v, ja, en)| vec![v.to_string(), ja.to_string(), en.to_string()]).collect()
}

/// What the form is shown for: a draft, or (G-6) a link that opened it before any draft exists.
struct FormFor<'a> {
    registration_id: Option<i64>,
    in_school_only: bool,
    reason: &'a str,
    /// The link's token while no draft exists (the first sending uses the link).
    link_token: &'a str,
}

/// The side an image field is for (0 front, 1 back); other fields are no images.
fn image_ordinal(field: &str) -> Option<i64> {
    match field {
        "image_front" => Some(0),
        "image_back" => Some(1),
        _ => None,
    }
}

fn image_field(ordinal: i64) -> &'static str {
    if ordinal == 1 {
        "image_back"
    } else {
        "image_front"
    }
}

/// A file's name as the applicant's computer gave it, fit to show back: its
/// last path part, no control characters, at most 80 characters.
fn shown_file_name(name: &str) -> String {
    let base = name.rsplit(|c: char| c == '/' || c == '\\').next().unwrap_or_default();
    base.chars().filter(|c| !c.is_control()).take(80).collect::<String>().trim().to_string()
}

async fn form_page(state: &AppState, headers: &HeaderMap, r: &Registration, f: &ApplicationForm, errors: &FieldErrors) -> AppResult<Response> {
    let shown = FormFor { registration_id: Some(r.id), in_school_only: r.kind == "add_student_id", reason: &r.reason, link_token: "" };
    render_form(state, headers, &shown, f, errors).await
}

async fn render_form(state: &AppState, headers: &HeaderMap, shown: &FormFor<'_>, f: &ApplicationForm, errors: &FieldErrors) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let (unis, facs, deps) = (store::universities(&mut c).await?, store::faculties(&mut c).await?, store::departments(&mut c).await?);
    let images = match shown.registration_id {
        Some(id) => store::registration_images(&mut c, id).await?,
        None => Vec::new(),
    };
    drop(c);
    let image_count = images.len();
    // the images the draft keeps, by the field that replaces them: shown as attached (name, thumbnail)
    let attached: std::collections::BTreeMap<&str, minijinja::Value> = images
        .iter()
        .map(|i| {
            let name = if i.original_name.is_empty() { format!("{}×{}", i.width, i.height) } else { i.original_name.clone() };
            (image_field(i.ordinal), context! { name, url => format!("/register/images/{}", i.ordinal), width => i.width, height => i.height })
        })
        .collect();
    // personal fields sit flattened in the template's `f`
    let mut fv = serde_json::to_value(f).map_err(|e| AppError::Internal(e.into()))?;
    if let Some(o) = fv.as_object_mut() {
        if let Ok(serde_json::Value::Object(p)) = serde_json::to_value(&f.personal) {
            o.extend(p);
        }
    }
    let csrf = Csrf::get(state, headers);
    let page = Html(render(
        "register_form.html",
        context! { csrf => &csrf.token, f => fv, errors, in_school_only => shown.in_school_only, link_token => shown.link_token,
                   universities => options(&unis), faculties => options(&facs), departments => options(&deps),
                   kinds => choices(&KINDS), sexes => choices(&SEXES), leaving_types => choices(&LEAVING_TYPES),
                   id_documents => choices(&ID_DOCUMENTS), image_count, attached,
                   languages => choices(&[("ja", "日本語", "Japanese"), ("en", "英語", "English")]), reason => shown.reason,
                   max_mb => state.config.accounts.upload_max_bytes / (1024 * 1024) },
    ));
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Ok(IntoResponse::into_response((status, csrf.respond(page))))
}

pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    let r = draft(&state, &headers).await?;
    let f = registration::form_of(&r, &state.seal)?;
    form_page(&state, &headers, &r, &f, &FieldErrors::new()).await
}

/// One uploaded file, read with a byte limit (beyond it, the rest is drained, not kept).
struct Upload {
    field: String,
    /// Its name on the applicant's computer (shown back while the draft keeps it).
    file_name: String,
    bytes: Vec<u8>,
    too_large: bool,
}

/// Takes the multipart form: text fields into the form, files checked by
/// content. Images that pass the checks are kept in the draft at once, even
/// when another field is wrong: the form shows them as attached and they
/// need not be attached again (a side sent again replaces that side only).
pub async fn save_form(State(state): State<AppState>, headers: HeaderMap, mut mp: Multipart) -> AppResult<Response> {
    let max = state.config.accounts.upload_max_bytes;
    let mut fields = serde_json::Map::new();
    let mut uploads_in: Vec<Upload> = Vec::new();
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        tracing::info!(error = %e, "registration form not readable");
        AppError::Page(crate::messages::CHECK_INPUT.into())
    };
    while let Some(mut field) = mp.next_field().await.map_err(bad_form)? {
        let name = field.name().unwrap_or_default().to_string();
        if name.starts_with("image_") {
            let file_name = shown_file_name(field.file_name().unwrap_or_default());
            let mut u = Upload { field: name, file_name, bytes: Vec::new(), too_large: false };
            while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                if u.bytes.len() + chunk.len() > max {
                    u.too_large = true;
                    u.bytes.clear();
                } else if !u.too_large {
                    u.bytes.extend_from_slice(&chunk);
                }
            }
            if image_ordinal(&u.field).is_some() && (u.too_large || !u.bytes.is_empty()) {
                uploads_in.push(u);
            }
        } else {
            let text = field.text().await.map_err(bad_form)?;
            if text.len() > 1000 {
                return Err(AppError::Page(crate::messages::CHECK_INPUT.into()));
            }
            fields.insert(name, serde_json::Value::String(text));
        }
    }
    let csrf = fields.get("csrf").and_then(|v| v.as_str()).unwrap_or("").to_string();
    check_csrf(&state, &headers, &csrf)?;
    // G-6: a link that opened the form itself is used by its first sending, which starts the draft
    let link = fields.get("t").and_then(|v| v.as_str()).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
    let (mut r, new_cookie) = match link {
        Some(t) => match registration::open_link(&state.pool, "add_student_id", &t).await {
            Ok(key) => {
                let mut c = state.pool.acquire().await?;
                let r = store::registration_by_draft(&mut c, &accounts::token_hash(&key)).await?.ok_or(AppError::PageNotFound)?;
                (r, Some(set_cookie(&state, DRAFT_COOKIE, &key, 24 * 3600, "Lax")))
            }
            // the link was used by an earlier sending of this form (back, send again): its draft
            Err(e) => match draft(&state, &headers).await {
                Ok(r) if r.kind == "add_student_id" => (r, None),
                _ => return Err(e),
            },
        },
        None => (draft(&state, &headers).await?, None),
    };
    let with_cookie = |mut resp: Response| {
        if let Some(c) = &new_cookie {
            resp.headers_mut().append(SET_COOKIE, c.clone());
        }
        resp
    };
    let mut f: ApplicationForm = serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| AppError::Internal(e.into()))?;
    let in_school_only = r.kind == "add_student_id";
    if in_school_only {
        f.kind = "add_student_id".into();
        // the in-school form carries no images
        uploads_in.clear();
    }
    // the manual's "2015/03" and "1999/09/09" (and 2015-3, full-width digits) are stored one way
    registration::normalize_dates(&mut f);
    let mut c = state.pool.acquire().await?;
    let (facs, deps) = (store::faculties(&mut c).await?, store::departments(&mut c).await?);
    let kept = store::registration_images(&mut c, r.id).await?.len();
    drop(c);
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Tokyo).date_naive();
    let mut errors = registration::validate(&f, &facs, &deps, in_school_only, today);
    // images: decided by content, re-encoded; checked on the blocking pool
    let limits = uploads::Limits { max_bytes: max, max_pixels: state.config.accounts.upload_max_pixels, ..Default::default() };
    // a few images at a time: a burst of uploads is asked to send again, its text kept
    let _slot = if uploads_in.iter().any(|u| !u.too_large) {
        match state.image_slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                errors.insert("image_front".into(), crate::messages::IMAGES_BUSY.into());
                let mut page = form_page(&state, &headers, &r, &f, &errors).await?;
                *page.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
                page.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("2"));
                return Ok(with_cookie(page));
            }
        }
    } else {
        None
    };
    let hold = state.config.accounts.failpoint_hold_image.clone();
    let mut clean = Vec::new();
    for u in uploads_in {
        if u.too_large {
            let (ja, en) = uploads::UploadError::TooLarge { size: max + 1, max }.message();
            errors.insert(u.field, format!("{ja} / {en}"));
            continue;
        }
        let limits = limits.clone();
        let hold = hold.clone();
        let bytes = u.bytes;
        let res = tokio::task::spawn_blocking(move || {
            crate::failpoint::hold(hold.as_deref());
            uploads::sanitize(&bytes, &limits)
        })
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("image task: {e}")))?;
        match res {
            Ok(img) => clean.push((u.field, img, u.file_name)),
            Err(e) => {
                let (ja, en) = e.message();
                errors.insert(u.field, format!("{ja} / {en}"));
            }
        }
    }
    if !clean.is_empty() {
        let dir = &state.config.accounts.upload_dir;
        let mut names = Vec::new();
        for (_, img, _) in &clean {
            names.push(registration::store_image(dir, &state.seal, img)?);
        }
        let t = crate::time::now();
        let mut tx = store::begin_write(&state.pool).await?;
        let mut replaced = Vec::new();
        for ((field, img, original), name) in clean.iter().zip(&names) {
            let ordinal = image_ordinal(field).unwrap_or(0);
            replaced.extend(store::drop_registration_image(&mut tx, r.id, ordinal, t).await?);
            store::insert_registration_image(&mut tx, r.id, ordinal, name, original, img.mime, img.width, img.height, t).await?;
        }
        tx.commit().await?;
        registration::delete_files(dir, &replaced);
    }
    if !in_school_only && clean.is_empty() && kept == 0 && !errors.contains_key("image_front") {
        errors.insert(
            "image_front".into(),
            "本人確認書類の画像を添付してください。 / Attach an image of your identity document.".into(),
        );
    }
    if !errors.is_empty() {
        return Ok(with_cookie(form_page(&state, &headers, &r, &f, &errors).await?));
    }
    registration::apply_form(&mut r, &f, &state.seal)?;
    let mut tx = store::begin_write(&state.pool).await?;
    store::save_registration_form(&mut tx, &r).await?;
    tx.commit().await?;
    Ok(with_cookie(IntoResponse::into_response(Redirect::to("/register/confirm"))))
}

/// An ID image of this browser's own draft, for its thumbnail on the form: never cached.
pub async fn draft_image(State(state): State<AppState>, headers: HeaderMap, Path(ordinal): Path<i64>) -> AppResult<Response> {
    let r = draft(&state, &headers).await?;
    let mut c = state.pool.acquire().await?;
    let img = store::registration_images(&mut c, r.id).await?.into_iter().find(|i| i.ordinal == ordinal).ok_or(AppError::PageNotFound)?;
    drop(c);
    let bytes = registration::read_image(&state.config.accounts.upload_dir, &state.seal, &img.file_name)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, img.mime.clone()),
            (axum::http::header::CACHE_CONTROL, "no-store".to_string()),
            (axum::http::header::CONTENT_DISPOSITION, "inline".to_string()),
        ],
        bytes,
    )
        .into_response())
}

fn label<'a>(list: &'a [(&str, &'a str, &'a str)], v: &str) -> String {
    list.iter().find(|x| x.0 == v).map(|x| format!("{} / {}", x.1, x.2)).unwrap_or_default()
}

pub async fn confirm(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    let r = draft(&state, &headers).await?;
    let f = registration::form_of(&r, &state.seal)?;
    let mut c = state.pool.acquire().await?;
    let images = store::registration_images(&mut c, r.id).await?;
    let (unis, facs, deps) = (store::universities(&mut c).await?, store::faculties(&mut c).await?, store::departments(&mut c).await?);
    let name = |l: &[store::Named], id: Option<i64>| l.iter().find(|n| Some(n.id) == id).map(|n| format!("{} / {}", n.name_ja, n.name_en)).unwrap_or_default();
    if r.faculty_id.is_none() || (r.kind != "add_student_id" && images.is_empty()) {
        return Ok(Redirect::to("/register/form").into_response());
    }
    let p = &f.personal;
    let mut rows: Vec<(&str, &str, String)> = Vec::new();
    if r.kind != "add_student_id" {
        rows.extend([
            ("申請区分", "Application type", label(&KINDS, &r.kind)),
            ("氏名（漢字）", "Name (kanji)", r.name_kanji.clone()),
            ("氏名（カナ）", "Name (katakana)", r.name_kana.clone()),
            ("氏名（ローマ字）", "Name (roman letters)", r.name_roman.clone()),
            ("生年月日", "Birth date", p.birth_date.clone()),
            ("性別", "Sex", label(&SEXES, &r.sex)),
        ]);
    }
    rows.extend([
        ("在学時氏名", "Name in school", format!("{} {} {}", r.school_name_kanji, r.school_name_kana, r.school_name_roman).trim().to_string()),
        ("大学", "University", name(&unis, r.university_id)),
        ("学部・研究科", "Faculty", name(&facs, r.faculty_id)),
        ("学科・専攻", "Department", name(&deps, r.department_id)),
        ("学籍番号", "Student ID number", r.student_no.clone()),
        ("卒業（修了）年月", "Graduation", r.graduation_ym.clone()),
        ("卒業・退学・除籍", "Leaving type", label(&LEAVING_TYPES, &r.leaving_type)),
    ]);
    if r.kind != "add_student_id" {
        rows.extend([
            ("住所", "Address", p.home_address_line()),
            ("電話番号", "Phone", p.home_phone.clone()),
            ("携帯電話番号", "Mobile phone", p.mobile_phone.clone()),
            ("勤務先名", "Workplace name", p.work_name.clone()),
            ("勤務先住所", "Workplace address", p.work_address_line()),
            ("勤務先電話番号", "Workplace phone", p.work_phone.clone()),
            ("本人確認書類", "Identity document", label(&ID_DOCUMENTS, &r.id_document_type)),
            ("添付画像", "Images attached", {
                let names: Vec<&str> = images.iter().map(|i| i.original_name.as_str()).filter(|n| !n.is_empty()).collect();
                format!("{}枚 / {} {}", images.len(), images.len(), names.join(", ")).trim().to_string()
            }),
        ]);
    }
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("register_confirm.html", context! { csrf => &csrf.token, rows }));
    Ok(IntoResponse::into_response(csrf.respond(page)))
}

pub async fn apply(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let r = draft(&state, &headers).await?;
    registration::submit(&state.pool, &state.seal, &state.config.http.public_url, &r).await?;
    state.mail_wake.notify_one();
    let mut resp = Html(message_page(
        ("申請を受け付けました", "Application accepted"),
        &[(
            "大学で申請内容を確認し、結果をメールでお知らせします。確認には数日かかることがあります。",
            "The university will check your application and mail you the result. This may take a few days.",
        )],
        Some(("/login", "ログイン画面へ / To the login page")),
    ))
    .into_response();
    resp.headers_mut().append(SET_COOKIE, set_cookie(&state, DRAFT_COOKIE, "", 0, "Lax"));
    Ok(resp)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct StatusQuery {
    k: String,
}

/// Where an application stands (from the receipt mail's link; read-only).
pub async fn status(State(state): State<AppState>, Query(q): Query<StatusQuery>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let r = store::registration_by_status_key(&mut c, &accounts::token_hash(q.k.trim())).await?.ok_or(AppError::PageNotFound)?;
    let reason = r.reason.clone();
    let (title, text): ((&str, &str), (String, String)) = match r.status.as_str() {
        "pending" => (("審査中", "Being reviewed"), (
            "大学で申請内容を確認しています。結果はメールでお知らせします。".into(),
            "The university is checking your application; the result will come by mail.".into())),
        "approved" => (("承認されました", "Approved"), (
            "承認されました。初期パスワードをメールでお送りしています。".into(),
            "Approved: your initial password was sent by mail.".into())),
        "rejected" => (("承認されませんでした", "Not approved"), (
            format!("理由: {reason}"), format!("Reason: {reason}"))),
        "resubmit" | "draft" => (("再提出をお願いしています", "Please correct and resubmit"), (
            format!("理由: {reason}　メールのURLから修正してください。"), format!("Reason: {reason}. Use the link in the mail to correct it."))),
        _ => return Err(AppError::PageNotFound),
    };
    let submitted = r.submitted_at.map(crate::time::jst_text).unwrap_or_default();
    Ok(Html(message_page(
        title,
        &[(&text.0, &text.1), (&format!("受付日時: {submitted}"), &format!("Received: {submitted}"))],
        None,
    ))
    .into_response())
}
