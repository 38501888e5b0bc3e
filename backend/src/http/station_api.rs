//! The API stations sync with (`/api/station/v1`), and per-station health.

use crate::error::{AppError, AppResult};
use crate::stations;
use crate::store::{self, Station};
use crate::AppState;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shomei_shared::api::{
    ChargeRequest, ChargeResponse, EnrollRequest, EnrollResponse, Heartbeat, HeartbeatResponse, PrintReport,
    ReportResponse, ReserveRequest, Reservation,
};
use shomei_shared::ErrorCode;

/// The calling station, from `Authorization: Bearer <token>`.
pub struct StationAuth(pub Station);

impl FromRequestParts<AppState> for StationAuth {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(StationAuth(StationCaller::from_request_parts(parts, state).await?.station))
    }
}

/// The calling station with the credential it sent: checked before its
/// request is read, and on SQLite checked again inside its call's
/// transaction (a station revoked in between is refused).
pub struct StationCaller {
    station: Station,
    token: String,
}

impl FromRequestParts<AppState> for StationCaller {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| AppError::api(ErrorCode::Unauthorized, "station credential missing"))?
            .trim()
            .to_string();
        let station = stations::authenticate(&state.pool, state.desk.as_ref(), &token).await?;
        Ok(StationCaller { station, token })
    }
}

/// A call on the redemption path, as the calling station.
async fn redeem(state: &AppState, caller: StationCaller, call: stations::Call) -> AppResult<stations::Answer> {
    stations::redeem(&state.pool, state.desk.as_ref(), &state.guesses, caller.station, caller.token, call).await
}

/// An answer of another call than the one made: cannot happen.
fn mismatched() -> AppError {
    AppError::Internal(anyhow::anyhow!("a station call was answered for another call"))
}

/// JSON bodies that fail to parse become a clear API error, not axum's text.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(AppError::api(ErrorCode::BadRequest, e.body_text())),
        }
    }
}

/// Enrolment: wrong codes are throttled per client address (a few free,
/// then waits, then refused for the window).
pub async fn enroll(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<std::net::SocketAddr>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> AppResult<Json<EnrollResponse>> {
    let key = format!("enrol:{}", client.ip());
    state
        .request_throttle
        .check_with(&key, 10, 3).await
        .map_err(|_| AppError::api(ErrorCode::Throttled, "too many wrong enrolment codes from this address; wait and try again"))?;
    match stations::enroll(&state.pool, &req.code, &req.version, &state.bundle_signer.public_hex()).await {
        Err(e) => {
            state.request_throttle.fail(&key).await;
            Err(e)
        }
        ok => Ok(Json(ok?)),
    }
}

pub async fn heartbeat(
    State(state): State<AppState>,
    StationAuth(station): StationAuth,
    ApiJson(hb): ApiJson<Heartbeat>,
) -> AppResult<Json<HeartbeatResponse>> {
    let server_time = stations::heartbeat(&state.heartbeats, &station, hb);
    let test_page = (station.test_page_wanted > station.test_page_done).then_some(station.test_page_wanted);
    let (university_ja, university_en) = state.university_names.of(&state.pool, station.university_id).await?;
    Ok(Json(HeartbeatResponse { server_time, out_of_service: !station.in_service, test_page, university_ja, university_en }))
}

pub async fn reserve(State(state): State<AppState>, caller: StationCaller, ApiJson(req): ApiJson<ReserveRequest>) -> AppResult<Json<Reservation>> {
    let cfg = &state.config.stations;
    let call = stations::Call::Reserve { number: req.print_number, wrong_per_minute: cfg.wrong_numbers_per_minute, reservation_s: cfg.reservation_s };
    match redeem(&state, caller, call).await? {
        stations::Answer::Reserved(r) => Ok(Json(r)),
        _ => Err(mismatched()),
    }
}

pub async fn charge(
    State(state): State<AppState>,
    caller: StationCaller,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<ChargeRequest>,
) -> AppResult<Json<ChargeResponse>> {
    let call = stations::Call::Charge {
        reservation_id: id,
        card_uid: req.card_uid,
        idempotency_key: req.idempotency_key,
        reservation_s: state.config.stations.reservation_s,
    };
    match redeem(&state, caller, call).await? {
        stations::Answer::Charged(r) => Ok(Json(r)),
        _ => Err(mismatched()),
    }
}

/// A card no account holds was tapped: a one-time code that links it in the portal.
pub async fn card_link(
    State(state): State<AppState>,
    StationAuth(station): StationAuth,
    ApiJson(req): ApiJson<shomei_shared::api::CardLinkRequest>,
) -> AppResult<Json<shomei_shared::api::CardLinkCode>> {
    Ok(Json(crate::payments::cards::issue_link_code(&state.pool, &state.seal, &state.request_throttle, &station, &req.card_uid).await?))
}

/// What became of a charge the station sent but never heard the answer of.
pub async fn charge_status(
    State(state): State<AppState>,
    StationAuth(station): StationAuth,
    Path((id, key)): Path<(i64, String)>,
) -> AppResult<Json<shomei_shared::api::ChargeStatus>> {
    Ok(Json(stations::charge_status(&state.pool, &station, id, &key).await?))
}

pub async fn document(State(state): State<AppState>, caller: StationCaller, Path(id): Path<i64>) -> AppResult<Response> {
    let stations::Answer::Document { order_id, stored } = redeem(&state, caller, stations::Call::Document { reservation_id: id }).await? else {
        return Err(mismatched());
    };
    let pdf = crate::orders::open_pdf(&state.seal, order_id, stored)?;
    Ok(([(CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

pub async fn release(State(state): State<AppState>, StationAuth(station): StationAuth, Path(id): Path<i64>) -> AppResult<StatusCode> {
    stations::release(&state.pool, &station, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn report(
    State(state): State<AppState>,
    caller: StationCaller,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<PrintReport>,
) -> AppResult<Json<ReportResponse>> {
    match redeem(&state, caller, stations::Call::Report { reservation_id: id, report: req }).await? {
        stations::Answer::Reported(order_status) => Ok(Json(ReportResponse { order_status })),
        _ => Err(mismatched()),
    }
}

/// Machine-readable health of one station for the university's monitoring:
/// 200 when it is online and its printer can print, 503 otherwise. It needs
/// no login, so it says only what monitoring needs (no name, place, version);
/// stations not in service are not found.
pub async fn health(State(state): State<AppState>, Path(id): Path<i64>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let s = store::station(&mut c, id)
        .await?
        .filter(|s| s.status == "active")
        .ok_or_else(|| AppError::api(ErrorCode::NotFound, "no such station"))?;
    let online = stations::is_online(&s, state.config.stations.offline_after_s);
    let printer_ready = stations::printer_ready(&s);
    let healthy = online && printer_ready;
    let body = serde_json::json!({
        "station_id": s.id, "healthy": healthy, "online": online, "last_seen": s.last_seen,
        "printer_ready": printer_ready, "printer_state": s.printer_state,
        "printer_state_reasons": s.printer_reasons.as_deref().map(|r| r.split(',').collect::<Vec<_>>()).unwrap_or_default(),
        "reader_present": s.reader_present,
    });
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((code, Json(body)).into_response())
}

/// P-3: what this station may print while the backend is out of reach (signed).
pub async fn offline_bundle(State(state): State<AppState>, StationAuth(station): StationAuth) -> AppResult<Json<shomei_shared::api::SignedBundle>> {
    Ok(Json(crate::stations::offline::bundle(&state.pool, &state.seal, &state.bundle_signer, &station, state.config.stations.offline_max_age_s).await?))
}

/// The key that signs offline bundles, for a station enrolled before stations pinned it at enrolment.
pub async fn offline_key(State(state): State<AppState>, StationAuth(_station): StationAuth) -> Json<shomei_shared::api::BundleKey> {
    Json(shomei_shared::api::BundleKey { ed25519: state.bundle_signer.public_hex() })
}

/// P-3: an order's PDF for the station's encrypted offline cache.
pub async fn offline_document(State(state): State<AppState>, StationAuth(station): StationAuth, axum::extract::Path(order_id): axum::extract::Path<i64>) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let pdf = crate::stations::offline::document(&state.pool, &state.seal, &station, order_id).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

/// P-3: a print made while offline, reported after the outage (applied once).
pub async fn offline_print(
    State(state): State<AppState>,
    StationAuth(station): StationAuth,
    ApiJson(p): ApiJson<shomei_shared::api::OfflinePrint>,
) -> AppResult<Json<shomei_shared::api::AppliedOnce>> {
    Ok(Json(crate::stations::offline::apply(&state.pool, &station, &p).await?))
}

/// P-3 policy (b): a stored-value payment taken offline, synced after the outage (applied once).
pub async fn offline_debit(
    State(state): State<AppState>,
    StationAuth(station): StationAuth,
    ApiJson(d): ApiJson<shomei_shared::api::OfflineDebit>,
) -> AppResult<Json<shomei_shared::api::AppliedOnce>> {
    Ok(Json(crate::stations::offline::apply_debit(&state.pool, &station, &d).await?))
}

/// P-5: a payment the station's e-money terminal took (applied once).
pub async fn terminal_payment(
    State(state): State<AppState>,
    StationAuth(station): StationAuth,
    Path(id): Path<i64>,
    ApiJson(p): ApiJson<shomei_shared::api::TerminalPayment>,
) -> AppResult<Json<shomei_shared::api::AppliedOnce>> {
    Ok(Json(stations::terminal_payment(&state.pool, state.config.stations.reservation_s, &station, id, &p).await?))
}

/// Operators' test page: a one-page PDF naming the station and the time.
pub async fn test_page(State(state): State<AppState>, StationAuth(station): StationAuth) -> AppResult<Response> {
    let zone = crate::time::tz("Asia/Tokyo");
    let when = crate::time::local_text(crate::time::now(), zone);
    let (ja, en) = state.university_names.of(&state.pool, station.university_id).await?;
    let pdf = crate::documents::render_test_page(&state.fonts, (&ja, &en), &station.name, &when).map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    Ok(([(CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

/// What became of test page `request`.
pub async fn test_page_report(
    State(state): State<AppState>,
    StationAuth(station): StationAuth,
    Path(request): Path<i64>,
    ApiJson(r): ApiJson<shomei_shared::api::TestPageReport>,
) -> AppResult<StatusCode> {
    let mut c = state.pool.acquire().await?;
    let result = if r.printed { "printed".to_string() } else { format!("failed: {}", r.detail.chars().take(200).collect::<String>()) };
    store::test_page_done(&mut c, station.id, request, &result, crate::time::now()).await?;
    store::audit(&mut c, &format!("station:{}", station.id), "station.test_page", &result, crate::time::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
