//! Routing only: every handler parses, authorises and calls a domain function.

pub mod account;
pub mod admin;
pub mod admin_accounts;
pub mod client;
pub mod digital;
pub mod graduation;
mod errors;
pub mod pages;
pub mod portal;
pub mod register;
pub mod roles;
pub mod serve;
pub mod station_api;
pub mod student;
pub mod web;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;
use shomei_shared::api::API_PREFIX;
use axum::http::{header, HeaderValue};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub fn router(state: AppState) -> Router {
    pages::set_contact(&state.config.contact);
    // forms post to us only; a top-up's form is answered with a redirect to
    // PayPal's approval page, which form-action must allow
    let paypal_origin: String = {
        let u = state.config.paypal.base_url.trim_end_matches('/');
        u.split('/').take(3).collect::<Vec<_>>().join("/")
    };
    let csp = HeaderValue::from_str(&format!(
        "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; \
         form-action 'self' {paypal_origin} https://www.paypal.com https://www.sandbox.paypal.com; base-uri 'none'; object-src 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; form-action 'self'; frame-ancestors 'none'"));
    // HSTS means something only over https; sent on every response of an https origin
    let hsts = if state.secure_cookies {
        HeaderValue::from_static("max-age=31536000; includeSubDomains")
    } else {
        HeaderValue::from_static("max-age=0")
    };
    let station_api = Router::new()
        .route("/enroll", post(station_api::enroll))
        .route("/heartbeat", post(station_api::heartbeat))
        .route("/offline/bundle", get(station_api::offline_bundle))
        .route("/offline/key", get(station_api::offline_key))
        .route("/offline/documents/{order_id}", get(station_api::offline_document))
        .route("/offline/prints", post(station_api::offline_print))
        .route("/offline/debits", post(station_api::offline_debit))
        .route("/test-page", get(station_api::test_page))
        .route("/test-page/{request}", post(station_api::test_page_report))
        .route("/reservations", post(station_api::reserve))
        .route("/reservations/{id}/charge", post(station_api::charge))
        .route("/reservations/{id}/charges/{key}", get(station_api::charge_status))
        .route("/reservations/{id}/terminal-payment", post(station_api::terminal_payment))
        .route("/reservations/{id}/document", get(station_api::document))
        .route("/reservations/{id}/report", post(station_api::report))
        .route("/reservations/{id}/release", post(station_api::release))
        .route("/card-links", post(station_api::card_link));
    Router::new()
        .route("/", get(portal::home))
        .route("/login", get(portal::login_page).post(portal::login))
        .route("/logout", post(portal::logout))
        .route("/register", get(register::email_form).post(register::request_link))
        .route("/register/open", get(register::open_page).post(register::open))
        .route(
            "/register/form",
            get(register::form)
                .post(register::save_form)
                // two ID images at the upload limit and the text fields
                .layer(axum::extract::DefaultBodyLimit::max(state.config.accounts.upload_max_bytes * 4 + 64 * 1024)),
        )
        .route("/register/images/{ordinal}", get(register::draft_image))
        .route("/register/confirm", get(register::confirm))
        .route("/register/apply", post(register::apply))
        .route("/register/status", get(register::status))
        .route("/password/setup", get(account::setup_page).post(account::setup))
        .route("/password/forgot", get(account::forgot_page).post(account::forgot))
        .route("/password/reset", get(account::reset_page).post(account::reset))
        .route("/account", get(account::menu))
        .route("/account/personal", get(account::personal_page).post(account::personal))
        .route("/account/email", get(account::email_change_page).post(account::email_change))
        .route("/account/email/confirm", get(account::email_confirm_page).post(account::email_confirm))
        .route("/account/password", get(account::password_change_page).post(account::password_change))
        .route("/account/second-password", get(account::second_change_page).post(account::second_change))
        .route("/account/student-ids", post(account::add_student_id))
        .route("/student/login", get(student::login_page).post(student::login))
        .route("/student/email", get(student::email_page).post(student::email))
        .route("/student/email/confirm", get(student::confirm_page).post(student::confirm))
        .route("/student/second-password/setup", get(student::setup_page).post(student::setup))
        .route("/student/second-password/forgot", get(student::forgot_page).post(student::forgot))
        .route("/student/second-password/reset", get(student::reset_page).post(student::reset))
        .route("/static/fleet.js", get(|| async {
            ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
             include_str!("../../static/fleet.js"))
        }))
        .route("/static/confirm.js", get(|| async {
            ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
             include_str!("../../static/confirm.js"))
        }))
        .route("/static/verify.js", get(|| async {
            ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
             include_str!("../../static/verify.js"))
        }))
        // the verification page's service worker (scope /verify: the page works offline once loaded)
        .route("/verify-sw.js", get(|| async {
            ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
             include_str!("../../static/verify-sw.js"))
        }))
        .route("/static/portal.js", get(|| async {
            ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
             include_str!("../../static/portal.js"))
        }))
        .route("/portal", get(portal::menu))
        .route("/orders/new", get(portal::new_order).post(portal::order_form_back))
        .route("/orders/confirm", post(portal::confirm_order))
        .route("/orders", post(portal::place_order))
        .route("/orders/{id}", get(portal::order))
        .route("/orders/{id}/cancel", post(portal::cancel_order))
        .route("/orders/{id}/pay", post(portal::pay_order))
        .route("/orders/{id}/smartpit", post(portal::pay_order))
        .route("/orders/{id}/receipt", get(portal::order_receipt))
        .route("/orders/{id}/digital.pdf", get(digital::own_copy))
        .route("/orders/{id}/credentials/{serial}", get(digital::own_credential))
        .route("/shared/{token}/credentials/{serial}", get(digital::shared_credential))
        .route("/verify/status", get(digital::certificate_status))
        .route("/verify/issuers/{id}", get(digital::issuer_profile))
        .route("/orders/{id}/shares", post(digital::share))
        .route("/orders/{id}/pay-balance", post(digital::pay_from_card))
        .route("/orders/{id}/shares/{share_id}/withdraw", post(digital::withdraw))
        .route("/verify/pdf", post(digital::verify_pdf).layer(axum::extract::DefaultBodyLimit::max(10 * 1024 * 1024)))
        .route("/shared/{token}", get(digital::shared_page))
        .route("/shared/{token}/certificate.pdf", get(digital::shared_download_link).post(digital::shared_download))
        .route("/cards/topups/{id}/receipt", get(portal::topup_receipt))
        .route("/smartpit/notice", post(portal::smartpit_notice))
        .route("/storeprint/notice", post(portal::storeprint_notice))
        .route("/cards", get(portal::cards).post(portal::link_card))
        .route("/cards/link-code", post(portal::link_card_by_code))
        .route("/cards/{uid}/unlink", post(portal::unlink_card))
        .route("/cards/{uid}/lost", post(portal::report_card_lost))
        .route("/cards/{uid}/topup", post(portal::start_topup))
        .route("/paypal/return", get(portal::paypal_return))
        .route("/paypal/capture", post(portal::paypal_capture))
        .route("/paypal/cancel", get(portal::paypal_cancel))
        .route("/paypal/webhook", post(portal::paypal_webhook))
        .route("/orders/{id}/resend", post(portal::resend_number))
        .route("/orders/{id}/refund-bank", get(portal::refund_bank_page).post(portal::save_refund_bank))
        .route("/admin", get(admin::home))
        .route("/admin/login", get(admin::login_page).post(admin::login))
        .route("/admin/logout", post(admin::logout))
        .route("/admin/stations", get(admin::stations))
        .route("/admin/stations.json", get(admin::stations_json))
        .route("/admin/stations/{id}", get(admin::station_detail))
        .route("/admin/stations/enrolment-codes", post(admin::create_enrolment_code))
        .route("/admin/stations/alert-emails", post(admin::save_alert_emails))
        .route("/admin/stations/{id}/revoke", post(admin::revoke_station))
        .route("/admin/stations/{id}/service", post(admin::station_service))
        .route("/admin/stations/{id}/test-page", post(admin::station_test_page))
        .route("/admin/orders", get(admin::orders))
        .route("/admin/orders/{id}", get(admin::order_detail))
        .route("/admin/reports", get(admin::reports))
        .route("/admin/mail", get(admin::mail_work_list))
        .route("/admin/orders/{id}/pdf", get(admin::order_pdf))
        .route("/admin/orders/{id}/shipped", post(admin::mark_shipped))
        .route("/admin/orders/{id}/refund", post(admin::refund_order))
        .route("/admin/orders/{id}/paid-back", post(admin::refund_paid_back))
        .route("/admin/orders/{id}/release", post(admin::release_order))
        .route("/admin/reports.csv", get(admin::reports_csv))
        .route("/admin/certificates/{id}/revoke", post(admin::revoke_certificate))
        .route(
            "/admin/academic",
            get(admin::academic).post(admin::import_academic).layer(axum::extract::DefaultBodyLimit::max(20 * 1024 * 1024)),
        )
        .route(
            "/admin/school-register",
            get(admin::school_register).post(admin::import_school_register).layer(axum::extract::DefaultBodyLimit::max(20 * 1024 * 1024)),
        )
        .route("/admin/catalogue", get(admin::catalogue).post(admin::save_catalogue))
        .route(
            "/admin/catalogue/seal",
            get(admin::seal_image).post(admin::upload_seal).layer(axum::extract::DefaultBodyLimit::max(3 * 1024 * 1024)),
        )
        .route("/admin/catalogue/offline-policy", post(admin::save_offline_policy))
        .route("/admin/catalogue/fees", post(admin::save_fees))
        .route("/admin/catalogue/office", post(admin::save_office))
        .route("/admin/catalogue/faculties", post(admin::save_faculty))
        .route("/admin/graduation", get(graduation::page).post(graduation::start))
        .route("/admin/graduation/{id}", get(graduation::run_page))
        .route("/admin/graduation/{id}/progress", get(graduation::progress))
        .route("/static/graduation.js", get(|| async {
            ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
             include_str!("../../static/graduation.js"))
        }))
        .route("/admin/service", get(admin::service_breaks).post(admin::add_service_break))
        .route("/admin/service/{id}/delete", post(admin::remove_service_break))
        .route("/verify", get(portal::verify))
        .route("/verify/keys.json", get(portal::verify_keys))
        .route("/help", get(portal::help))
        .route("/language", get(portal::language))
        .route("/static/lang.js", get(|| async {
            ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
             include_str!("../../static/lang.js"))
        }))
        .route("/admin/outbox", get(admin::outbox))
        .route("/admin/registrations", get(admin_accounts::registrations))
        .route("/admin/registrations/{id}", get(admin_accounts::registration))
        .route("/admin/registrations/{id}/images/{image_id}", get(admin_accounts::registration_image))
        .route("/admin/registrations/{id}/decide", post(admin_accounts::decide))
        .route("/admin/staff", get(admin_accounts::staff_list).post(admin_accounts::create_staff))
        .route("/admin/staff/{id}/totp", post(admin_accounts::reset_factor))
        .route("/admin/staff/{id}/password", post(admin_accounts::reissue_password))
        .route("/admin/staff/{id}/disable", post(admin_accounts::disable_staff))
        .route("/admin/audit", get(admin_accounts::audit_log))
        .route("/admin/universities", get(admin::universities).post(admin::add_university))
        .route("/admin/universities/{id}/directory", get(admin::university_directory).post(admin::save_university_directory))
        .route("/admin/password", get(admin_accounts::password_page).post(admin_accounts::change_password))
        .route(
            "/admin/roster",
            get(admin_accounts::roster).post(admin_accounts::import_roster).layer(axum::extract::DefaultBodyLimit::max(20 * 1024 * 1024)),
        )
        .route("/api/stations/{id}/health", get(station_api::health))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(web::readyz))
        .route("/metrics", get(web::metrics))
        .nest(API_PREFIX, station_api)
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                axum::response::Html(pages::error_page(crate::messages::NOT_FOUND)),
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::university_desk))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            // pages carry their own <style>; the one script is ours; image previews are blob: URLs
            csp,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::STRICT_TRANSPORT_SECURITY, hsts))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        // a request that takes too long (a client trickling its body) is cut off
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(state.config.http.request_timeout_s),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let path = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| req.uri().path().to_owned());
            tracing::info_span!("http", method = %req.method(), path)
        }))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::same_origin))
        // outermost: every layer and handler below sees the client, not the proxy
        .layer(axum::middleware::from_fn_with_state(state.clone(), client::resolve))
        .with_state(state)
}
