//! Digital certificates (issue 16) on the web: the graduate's download and
//! shares on the order page, and the recipient's page (no account).

use super::pages::render;
use super::web::{check_csrf, CsrfForm, CurrentUser};
use crate::error::{AppError, AppResult};
use crate::orders::digital::{self, Desk, ShareRequest, ShareState};
use crate::orders::FormProblem;
use crate::{store, time, AppState};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use std::collections::HashMap;
use std::net::SocketAddr;

fn desk(state: &AppState) -> Desk<'_> {
    state.desk()
}

/// A file to save (never cached: each is someone's certificate).
fn attachment(name: &str, content_type: &str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

fn pdf(name: &str, bytes: Vec<u8>) -> Response {
    attachment(name, "application/pdf", bytes)
}

/// The order page's digital section: the download, the share form (with
/// what was typed and its problem, when sent back) and the shares made.
pub(super) async fn order_section(
    c: &mut store::Conn,
    order: &store::Order,
    university: &store::University,
    share: Option<(&ShareRequest, &FormProblem)>,
) -> AppResult<minijinja::Value> {
    let zone = time::tz(&university.timezone);
    let t = time::now();
    let certificates = store::certificates_of_order(c, order.id).await?;
    let revoked = certificates.iter().any(|c| c.revoked_at.is_some());
    let credentials: Vec<_> = certificates.iter().map(|c| context! { serial => &c.serial, type_ja => &c.type_ja, type_en => &c.type_en }).collect();
    let shares: Vec<_> = store::shares_of_order(c, order.id)
        .await?
        .into_iter()
        .map(|s| {
            let state = ShareState::of(&s, revoked, t);
            let (state_ja, state_en) = state.words();
            context! { id => s.id, name => s.recipient_name, org => s.recipient_org, email => s.recipient_email,
                       made => time::local_text(s.created_at, zone), until => s.expires_at.map(|e| time::local_text(e, zone)),
                       downloads => s.downloads, max => s.max_downloads,
                       first_opened => s.first_opened_at.map(|o| time::local_text(o, zone)), last_opened => s.last_opened_at.map(|o| time::local_text(o, zone)),
                       state => state, state_ja, state_en, can_withdraw => state == ShareState::Valid }
        })
        .collect();
    let days = store::university_share_days(c, university.id).await?;
    let (typed, problem) = match share {
        Some((r, p)) => (Some(context! { name => &r.name, org => &r.org, email => &r.email, days => &r.days, downloads => &r.downloads }), Some(context! { field => &p.field, message => &p.message })),
        None => (None, None),
    };
    Ok(context! { revoked, shares, credentials, default_days => days, default_downloads => digital::DEFAULT_DOWNLOADS, max_days => digital::MAX_SHARE_DAYS,
                  max_downloads => digital::MAX_DOWNLOADS, typed, problem })
}

/// The graduate's own signed copy.
pub async fn own_copy(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    let bytes = digital::own_copy(&desk(&state), user.user.id, id).await?;
    Ok(pdf(&format!("certificate-{id}.pdf"), bytes))
}

/// A new share (a copy for one recipient, its link mailed to them).
pub async fn share(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, f.get("csrf").map(String::as_str).unwrap_or(""))?;
    // each share signs a document and mails someone outside: at most so many an hour per graduate
    if let Err(wait_ms) = state.request_throttle.admit(&format!("share:{}", user.user.id), digital::SHARES_PER_HOUR, 3_600_000).await? {
        return Err(AppError::Throttled(crate::messages::shares_throttled(digital::SHARES_PER_HOUR, (wait_ms + 59_999) / 60_000)));
    }
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let req = ShareRequest { name: get("recipient_name"), org: get("recipient_org"), email: get("recipient_email"), days: get("days"), downloads: get("downloads") };
    match digital::share(&desk(&state), user.user.id, id, &req).await? {
        Ok(_) => {
            state.mail_wake.notify_one();
            Ok(Redirect::to(&format!("/orders/{id}?notice=shared")).into_response())
        }
        Err(problem) => super::portal::order_page(&state, &headers, &user, id, "", Some((&req, &problem))).await,
    }
}

/// The graduate withdraws a share.
pub async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: CurrentUser,
    Path((id, share_id)): Path<(i64, i64)>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    digital::withdraw(&state.pool, user.user.id, id, share_id).await?;
    Ok(Redirect::to(&format!("/orders/{id}?notice=withdrawn")).into_response())
}

/// The recipient's page: the certificate's state, who issued it for whom, the download.
pub async fn shared_page(State(state): State<AppState>, Path(token): Path<String>) -> AppResult<Response> {
    let Some(v) = digital::view(&state.pool, &token).await? else {
        let page = Html(render("shared.html", context! { gone => true }));
        return Ok((StatusCode::NOT_FOUND, page).into_response());
    };
    // opened while it stands (a link opened after it ended is not "opened")
    if v.state == ShareState::Valid {
        let mut tx = store::begin_write(&state.pool).await?;
        store::mark_share_opened(&mut tx, v.share.id, time::now()).await?;
        tx.commit().await?;
    }
    Ok(page(&v, &token, None).into_response())
}

fn page(v: &digital::ShareView, token: &str, refused: Option<ShareState>) -> (StatusCode, Html<String>) {
    let zone = time::tz(&v.university.timezone);
    let state = refused.unwrap_or(v.state);
    let (state_ja, state_en) = state.words();
    let first = v.certificates.first();
    let certificates: Vec<_> = v
        .certificates
        .iter()
        .map(|c| context! { type_ja => &c.type_ja, type_en => &c.type_en, serial => &c.serial, issued => time::local_date(c.issued_at, zone),
                            credential => format!("/shared/{token}/credentials/{}", c.serial) })
        .collect();
    let left = v.share.max_downloads.map(|m| (m - v.share.downloads).max(0));
    let html = Html(render(
        "shared.html",
        context! { gone => false, state, state_ja, state_en, valid => state == ShareState::Valid,
                   university_ja => &v.university.name_ja, university_en => &v.university.name_en,
                   holder_kanji => first.map(|c| c.name_kanji.clone()), holder_roman => first.map(|c| c.name_roman.clone()),
                   recipient_name => &v.share.recipient_name, recipient_org => &v.share.recipient_org,
                   certificates, until => v.share.expires_at.map(|e| time::local_text(e, zone)), left,
                   download => format!("/shared/{token}/certificate.pdf"),
                   verify_code => first.map(|c| c.verification_code.clone()) },
    ));
    (if state == ShareState::Valid { StatusCode::OK } else { StatusCode::GONE }, html)
}

/// The download's address opened as a link (a mail scanner, a bookmark):
/// the recipient's page, nothing counted. Downloading is the page's button.
pub async fn shared_download_link(Path(token): Path<String>) -> Response {
    Redirect::to(&format!("/shared/{token}")).into_response()
}

/// The recipient downloads the copy with the page's button (a POST: only a
/// person's press counts a download; refused with the reason once not valid).
pub async fn shared_download(State(state): State<AppState>, Path(token): Path<String>) -> AppResult<Response> {
    match digital::download(&state.pool, &state.seal, &token).await {
        Ok(Ok(bytes)) => Ok(pdf("certificate.pdf", bytes)),
        Ok(Err(refused)) => {
            let v = digital::view(&state.pool, &token).await?.ok_or(AppError::PageNotFound)?;
            Ok(page(&v, &token, Some(refused)).into_response())
        }
        Err(e) => Err(e),
    }
}

/// PDFs one address may have checked in a minute.
const PDF_CHECKS_PER_MINUTE: usize = 20;

/// Anyone drops a PDF on the verification page: is it a certificate issued
/// here, unchanged, still valid?
pub async fn verify_pdf(State(state): State<AppState>, ConnectInfo(client): ConnectInfo<SocketAddr>, mut mp: axum::extract::Multipart) -> AppResult<Response> {
    let key = format!("verify:{}", client.ip());
    state.request_throttle.check_with(&key, 60, 20).await.map_err(|w| AppError::Throttled(w.message()))?;
    // every upload is counted (each costs a read of up to 10 MB): so many a minute per address
    if let Err(wait_ms) = state.request_throttle.admit(&format!("verify-pdf:{}", client.ip()), PDF_CHECKS_PER_MINUTE, 60_000).await? {
        return Err(AppError::Throttled(crate::messages::throttled(Some((wait_ms + 999) / 1000))));
    }
    let mut file = axum::body::Bytes::new();
    while let Some(field) = mp.next_field().await.map_err(|_| AppError::Page(crate::messages::PDF_TOO_BIG.into()))? {
        if field.name() == Some("pdf") {
            file = field.bytes().await.map_err(|_| AppError::Page(crate::messages::PDF_TOO_BIG.into()))?;
        }
    }
    if !file.starts_with(b"%PDF") {
        return Err(AppError::Page(crate::messages::NOT_A_PDF.into()));
    }
    let keys = serde_json::to_string(&super::portal::published_keys(&state).await?).unwrap_or_else(|_| "{}".into());
    let found = digital::recognise(&state.pool, &file).await?;
    let (state_name, check) = match &found {
        digital::Dropped::Genuine(c) => ("genuine", Some(c)),
        digital::Dropped::ChangedAfterSigning(c) => ("changed", Some(c)),
        digital::Dropped::Unknown => ("unknown", None),
    };
    let pdf = match check {
        Some(check) => {
            let mut c = state.pool.acquire().await?;
            let certificates = store::certificates_of_order(&mut c, check.order_id).await?;
            let university = store::order_university(&mut c, check.order_id).await?;
            let first = certificates.first();
            let listed: Vec<_> = certificates.iter().map(|c| context! { type_ja => &c.type_ja, type_en => &c.type_en, serial => &c.serial }).collect();
            context! { state => state_name, revoked => check.revoked, university_ja => university.name_ja, university_en => university.name_en,
                       holder_kanji => first.map(|c| c.name_kanji.clone()), holder_roman => first.map(|c| c.name_roman.clone()),
                       certificates => listed, recipient => check.recipient.as_ref().map(|(org, name)| format!("{org}\u{3000}{name}")) }
        }
        None => {
            state.request_throttle.fail(&key).await;
            context! { state => state_name }
        }
    };
    let status = if state_name == "genuine" { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, Html(render("verify.html", context! { code => "", keys, pdf }))).into_response())
}

fn jwt(serial: &str, token: String) -> Response {
    attachment(&format!("{serial}.vc.jwt"), crate::documents::credential::MEDIA_TYPE, token)
}

/// The graduate's own credential (the machine-readable twin) for one certificate.
pub async fn own_credential(State(state): State<AppState>, user: CurrentUser, Path((id, serial)): Path<(i64, String)>) -> AppResult<Response> {
    let token = digital::own_credential(&desk(&state), user.user.id, id, &serial).await?;
    Ok(jwt(&serial, token))
}

/// A recipient's credential for one certificate of the shared copy.
pub async fn shared_credential(State(state): State<AppState>, Path((token, serial)): Path<(String, String)>) -> AppResult<Response> {
    match digital::shared_credential(&desk(&state), &token, &serial).await? {
        Ok(t) => Ok(jwt(&serial, t)),
        Err(refused) => {
            let v = digital::view(&state.pool, &token).await?.ok_or(AppError::PageNotFound)?;
            Ok(page(&v, &token, Some(refused)).into_response())
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct StatusQuery {
    code: String,
}

/// A certificate's status for machines (a credential's `credentialStatus`):
/// valid or revoked (with when), or unknown; lookups of unknown codes are
/// throttled as on the verification page.
pub async fn certificate_status(State(state): State<AppState>, ConnectInfo(client): ConnectInfo<SocketAddr>, axum::extract::Query(q): axum::extract::Query<StatusQuery>) -> AppResult<Response> {
    use crate::orders::certificates::Verification;
    let key = format!("verify:{}", client.ip());
    state.request_throttle.check_with(&key, 60, 20).await.map_err(|w| AppError::Throttled(w.message()))?;
    let body = match crate::orders::certificates::verify(&state.pool, &q.code).await? {
        Verification::Valid(c) => serde_json::json!({ "code": q.code, "status": "valid", "serial": c.serial }),
        Verification::Revoked(c) => serde_json::json!({ "code": q.code, "status": "revoked", "serial": c.serial, "revoked_at": c.revoked_at }),
        Verification::NotFound => {
            state.request_throttle.fail(&key).await;
            return Ok((StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "code": q.code, "status": "unknown" }))).into_response());
        }
    };
    Ok(axum::Json(body).into_response())
}

/// A university as the issuer of credentials: its names and its public key (a JWK).
pub async fn issuer_profile(State(state): State<AppState>, Path(id): Path<i64>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let university = store::university(&mut c, id).await.map_err(|_| AppError::PageNotFound)?;
    let key = store::proof_key(&mut c, id).await?;
    let public_url = &state.config.http.public_url;
    let methods: Vec<_> = key
        .iter()
        .map(|k| serde_json::json!({ "id": format!("{}#{}", crate::documents::credential::issuer_id(public_url, id), k.kid), "type": "JsonWebKey",
                                      "publicKeyJwk": { "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": k.kid, "x": crate::documents::proof::jwk_x(&k.public_hex) } }))
        .collect();
    Ok(axum::Json(serde_json::json!({
        "id": crate::documents::credential::issuer_id(public_url, id),
        "type": ["Profile"],
        "name": university.name_en,
        "otherName": university.name_ja,
        "verificationMethod": methods,
    }))
    .into_response())
}

/// A digital order paid from one of the user's cards' stored value.
pub async fn pay_from_card(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, f.get("csrf").map(String::as_str).unwrap_or(""))?;
    let uid = f.get("card_uid").cloned().unwrap_or_default();
    digital::pay_from_card(&state.pool, &state.seal, &state.config.http.public_url, user.user.id, id, &uid).await?;
    state.mail_wake.notify_one();
    Ok(Redirect::to(&format!("/orders/{id}?notice=paid-balance")).into_response())
}
