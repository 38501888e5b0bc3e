//! Routing only: every handler parses, authorises and calls a domain function.

pub mod admin;
pub mod pages;
pub mod portal;
pub mod station_api;
pub mod web;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;
use shomei_shared::api::API_PREFIX;
use axum::http::{header, HeaderValue};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub fn router(state: AppState) -> Router {
    let station_api = Router::new()
        .route("/enroll", post(station_api::enroll))
        .route("/heartbeat", post(station_api::heartbeat))
        .route("/reservations", post(station_api::reserve))
        .route("/reservations/{id}/charge", post(station_api::charge))
        .route("/reservations/{id}/document", get(station_api::document))
        .route("/reservations/{id}/report", post(station_api::report))
        .route("/reservations/{id}/release", post(station_api::release));
    Router::new()
        .route("/", get(portal::home))
        .route("/login", get(portal::login_page).post(portal::login))
        .route("/logout", post(portal::logout))
        .route("/portal", get(portal::menu))
        .route("/orders/new", get(portal::new_order))
        .route("/orders", post(portal::place_order))
        .route("/orders/{id}", get(portal::order))
        .route("/admin", get(admin::home))
        .route("/admin/login", get(admin::login_page).post(admin::login))
        .route("/admin/logout", post(admin::logout))
        .route("/admin/stations", get(admin::stations))
        .route("/admin/stations/enrolment-codes", post(admin::create_enrolment_code))
        .route("/admin/stations/{id}/revoke", post(admin::revoke_station))
        .route("/admin/orders", get(admin::orders))
        .route("/admin/outbox", get(admin::outbox))
        .route("/api/stations/{id}/health", get(station_api::health))
        .route("/healthz", get(|| async { "ok" }))
        .nest(API_PREFIX, station_api)
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                axum::response::Html(pages::error_page(crate::messages::NOT_FOUND)),
            )
        })
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            // pages carry their own <style>; no page runs a script
            HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'none'; frame-ancestors 'none'; form-action 'self'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let path = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| req.uri().path().to_owned());
            tracing::info_span!("http", method = %req.method(), path)
        }))
        .with_state(state)
}
