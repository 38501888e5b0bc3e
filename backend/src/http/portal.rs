//! The graduates' and students' portal pages.

use super::pages::{order_status, render};
use super::web::{check_csrf, login_flow, set_cookie, Csrf, CsrfForm, CurrentUser, LoggedIn, LoginTarget, USER_COOKIE};
use crate::error::{AppError, AppResult};
use crate::orders::{self, LineRequest, OrderRequest};
use crate::{accounts, messages, store, time, AppState};
use axum::extract::{ConnectInfo, Path, State};
use std::net::SocketAddr;
use axum::http::header::SET_COOKIE;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use shomei_shared::{PrintNumber, Yen};
use std::collections::HashMap;

#[derive(Deserialize)]
pub struct LanguageQuery {
    #[serde(default)]
    to: String,
    #[serde(default)]
    back: String,
}

/// The language switch on every page: Japanese and English, Japanese only or
/// English only, for this browser (a cookie) and, for a logged-in user
/// clicking on our own page (the browser's Sec-Fetch-Site says so: another
/// site's link cannot change an account), for the account: the next login
/// anywhere shows the same. Back to the page it was chosen on.
pub async fn language(State(state): State<AppState>, headers: HeaderMap, axum::extract::Query(q): axum::extract::Query<LanguageQuery>) -> AppResult<Response> {
    let lang = super::web::display_language(&q.to).unwrap_or("both");
    let back = if q.back.starts_with('/') && !q.back.starts_with("//") && q.back.chars().all(|c| c.is_ascii_alphanumeric() || "/_-.?=&%+~".contains(c)) {
        q.back.as_str()
    } else {
        "/"
    };
    let own_page = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("same-origin");
    if own_page {
        if let Some(token) = super::web::cookie(&headers, &super::web::cookie_name(&state, USER_COOKIE)) {
            if let Some(user_id) = accounts::session(&state.pool, &state.sessions, &token).await?.and_then(|s| s.user_id) {
                let mut tx = store::begin_write(&state.pool).await?;
                store::set_user_language(&mut tx, user_id, lang).await?;
                tx.commit().await?;
            }
        }
    }
    let mut r = Redirect::to(back).into_response();
    r.headers_mut().append(SET_COOKIE, super::web::lang_cookie(&state, lang));
    Ok(r)
}

/// The manual's steps for graduates and students, and the desk (the manual's "マニュアル").
pub async fn help() -> Html<String> {
    Html(render("help.html", context! {}))
}

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Redirect {
    if super::web::cookie(&headers, &super::web::cookie_name(&state, USER_COOKIE)).is_some() {
        Redirect::to("/portal")
    } else {
        Redirect::to("/login")
    }
}

fn login_html(csrf: &str, email: &str, error: Option<&str>) -> Html<String> {
    Html(render(
        "login.html",
        context! { csrf, email, error },
    ))
}

pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::get(&state, &headers);
    let page = login_html(&csrf.token, "", None);
    csrf.respond(page)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    email: String,
    password: String,
    #[serde(default)]
    second_password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let ip = client.ip().to_string();
    let check = async {
        let login = accounts::login_user(
            &state.pool,
            &state.login_throttle,
            &state.hasher,
            accounts::Client { ip: &ip },
            &f.email,
            &f.password,
            &f.second_password,
        )
        .await?;
        Ok(match login {
            accounts::PortalLogin::Ok(id) => LoggedIn { user_id: Some(id), staff_id: None, redirect: "/portal" },
            accounts::PortalLogin::MustSetPassword(id) => LoggedIn { user_id: Some(id), staff_id: None, redirect: "/password/setup" },
        })
    };
    let target = LoginTarget { cookie: USER_COOKIE, same_site: "Lax" };
    login_flow(&state, &headers, &f.csrf, check, target, |t, msg| login_html(t, &f.email, Some(msg))).await
}


pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    accounts::logout(&state.pool, &user.token, &format!("user:{}", user.user.id), accounts::Client { ip: &ip }).await?;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(SET_COOKIE, set_cookie(&state, USER_COOKIE, "", 0, "Lax"));
    Ok(r)
}

fn number_text(n: &Option<String>) -> String {
    n.as_deref().and_then(|n| PrintNumber::parse(n).ok()).map(|n| n.grouped()).unwrap_or_default()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct MenuQuery {
    notice: String,
}

pub async fn menu(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: CurrentUser,
    axum::extract::Query(q): axum::extract::Query<MenuQuery>,
) -> AppResult<Response> {
    let csrf = Csrf::get(&state, &headers);
    let mut c = state.pool.acquire().await?;
    let records = store::student_records(&mut c, user.user.id).await?;
    let orders = store::orders_of_user(&mut c, user.user.id).await?;
    // one account may hold student IDs of several universities: each order names its own
    let universities = store::universities(&mut c).await?;
    let university_of = |record_id: i64| {
        let u = records.iter().find(|r| r.id == record_id).and_then(|r| universities.iter().find(|u| u.id == r.university_id));
        u.map(|u| (u.name_ja.clone(), u.name_en.clone())).unwrap_or_default()
    };
    let zone = time::tz("Asia/Tokyo");
    let rows: Vec<_> = orders
        .iter()
        .map(|o| {
            let (ja, en) = if o.refunded_at.is_some() { ("返金済", "refunded") } else { order_status(&o.status) };
            // an order paid online shows its number once the payment is in
            let usable = o.payment_method == "card" || o.status != "awaiting_payment";
            let live = matches!(o.status.as_str(), "awaiting_payment" | "paid") && o.print_number.is_some() && usable;
            let (university_ja, university_en) = university_of(o.student_record_id);
            context! { id => o.id, created => time::local_text(o.created_at, zone), university_ja, university_en,
                       number => if usable { number_text(&o.print_number) } else { String::new() },
                       deadline => live.then(|| time::deadline_text(o.print_deadline, zone)),
                       total => Yen(o.total).to_string(), status_ja => ja, status_en => en }
        })
        .collect();
    let name = records.first().map(|r| r.name_kanji.clone()).unwrap_or_default();
    let page = Html(render(
        "portal.html",
        context! { csrf => &csrf.token, name, email => &user.user.email, orders => rows,
                   student => user.user.kind == "student",
                   notice => match q.notice.as_str() {
                       "registered" => Some("登録が完了しました。 / You are registered."),
                       other => super::account::notice_text(other),
                   } },
    ));
    Ok(csrf.respond(page))
}

/// The order form (O-1): for the student ID chosen, its certificates with fee and
/// most copies, delivery, the payments that delivery takes, the postal address
/// (prefilled from the registered one). `values` are what the user typed (kept
/// on every error and on "back"), `problem` is shown next to its field.
async fn order_form(state: &AppState, headers: &HeaderMap, user: &CurrentUser, values: &HashMap<String, String>, problem: Option<orders::FormProblem>) -> AppResult<Response> {
    let csrf = Csrf::get(state, headers);
    let mut c = state.pool.acquire().await?;
    let records = store::student_records(&mut c, user.user.id).await?;
    let Some(first) = records.first() else {
        return Err(AppError::Page(messages::NO_STUDENT_RECORD.into()));
    };
    // the certificates offered are those of the student ID chosen
    let chosen = values
        .get("student_record_id")
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|id| records.iter().find(|r| r.id == id))
        .unwrap_or(first)
        .clone();
    let university = store::university(&mut c, chosen.university_id).await?;
    crate::orders::service::check_open(&mut c, university.id).await?;
    // D-3: what may be ordered follows the registrar's register, not the application
    let registrar = orders::registrar_record(&mut c, &state.seal, chosen.clone()).await?;
    let types = match &registrar {
        Some((record, _)) => orders::orderable(&store::certificate_types(&mut c, university.id).await?, record),
        None => Vec::new(),
    };
    drop(c);
    // a problem whose field is not on the form (a certificate no longer offered) is told at the top
    let on_form = |field: &str| field.is_empty() || ["delivery", "payment_method", "post", "student_record_id"].contains(&field) || types.iter().any(|t| format!("copies_{}", t.id) == field);
    let problem = problem.map(|p| if on_form(&p.field) { p } else { orders::FormProblem { field: String::new(), ..p } });
    let error_at = |field: &str| problem.as_ref().filter(|p| p.field == field).map(|p| p.message.clone());
    let value = |k: &str, default: String| values.get(k).cloned().unwrap_or(default);
    let types: Vec<_> = types
        .iter()
        .map(|t| {
            let field = format!("copies_{}", t.id);
            context! { id => t.id, name_ja => &t.name_ja, name_en => &t.name_en, fee => Yen(t.fee).to_string(), max_copies => t.max_copies,
                       copies => value(&field, "0".into()), error => error_at(&field), digital => t.digital }
        })
        .collect();
    let records: Vec<_> = records
        .iter()
        .map(|r| context! { id => r.id, student_no => &r.student_no, faculty_ja => &r.faculty_ja, department_ja => &r.department_ja, selected => r.id == chosen.id })
        .collect();
    // postal delivery goes to the registered address unless the user changes it
    let p = crate::registration::Personal::open(&state.seal, user.user.personal_sealed.as_deref(), &crate::registration::user_aad(user.user.id))?;
    let name = registrar.as_ref().map(|(r, _)| r.name_kanji.clone()).unwrap_or_else(|| chosen.name_kanji.clone());
    let address = [p.prefecture.as_str(), p.city.as_str(), p.street.as_str(), p.building.as_str()].iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    let phone = if p.mobile_phone.trim().is_empty() { p.home_phone.clone() } else { p.mobile_phone.clone() };
    let postage = university.postage_or(store_postage(state));
    // a signed PDF is offered where the university has a signing key and delivers a type so
    let digital = state.sealers.of(university.id).is_some() && types.iter().any(|t| t.get_attr("digital").is_ok_and(|d| d.is_true()));
    let page = Html(render(
        "order_new.html",
        context! { csrf => &csrf.token, records, types, digital,
                   not_in_register => registrar.is_none().then_some(messages::NOT_IN_REGISTER),
                   system_fee => Yen(university.system_fee).to_string(), postage => Yen(postage).to_string(),
                   delivery => value("delivery", "campus".into()), payment => value("payment_method", "card".into()),
                   post_name => value("post_name", name), post_postal_code => value("post_postal_code", p.postal_code.clone()),
                   post_address => value("post_address", address), post_phone => value("post_phone", phone),
                   form_error => problem.as_ref().filter(|p| p.field.is_empty()).map(|p| p.message.clone()),
                   delivery_error => error_at("delivery"), payment_error => error_at("payment_method"), post_error => error_at("post"),
                   record_error => error_at("student_record_id") },
    ));
    let status = if problem.is_some() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    Ok(csrf.respond((status, page)))
}

/// Postage for delivery by post (O-3).
fn store_postage(state: &AppState) -> i64 {
    state.config.orders.postage_yen
}

pub async fn new_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: CurrentUser,
    axum::extract::Query(values): axum::extract::Query<HashMap<String, String>>,
) -> AppResult<Response> {
    // only the student ID may come in the address (the page of another ID's certificates)
    let values: HashMap<String, String> = values.into_iter().filter(|(k, _)| k == "student_record_id").collect();
    order_form(&state, &headers, &user, &values, None).await
}

/// "Back" on the confirmation step: the form again, with everything as typed.
pub async fn order_form_back(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser, Form(form): Form<HashMap<String, String>>) -> AppResult<Response> {
    check_csrf(&state, &headers, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    order_form(&state, &headers, &user, &form, None).await
}

/// The order as the form describes it, or the field at fault.
fn order_request(form: &HashMap<String, String>) -> Result<OrderRequest, orders::FormProblem> {
    let at = |field: &str, message: &str| orders::FormProblem { field: field.to_string(), message: message.to_string() };
    let student_record_id = form.get("student_record_id").and_then(|v| v.parse().ok()).ok_or_else(|| at("student_record_id", messages::CHOOSE_STUDENT_ID))?;
    let mut lines = Vec::new();
    for (k, v) in form {
        if let Some(id) = k.strip_prefix("copies_") {
            let certificate_type_id = id.parse().map_err(|_| at("", messages::CHECK_INPUT))?;
            let copies: i64 = if v.trim().is_empty() { 0 } else { v.trim().parse().map_err(|_| at(k, messages::COPIES_NOT_A_NUMBER))? };
            if copies < 0 {
                return Err(at(k, messages::COPIES_NOT_A_NUMBER));
            }
            lines.push(LineRequest { certificate_type_id, copies });
        }
    }
    lines.sort_by_key(|l| l.certificate_type_id);
    let delivery = form.get("delivery").cloned().unwrap_or_default();
    let field = |k: &str| form.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let post = (delivery == "post").then(|| orders::PostAddress {
        name: field("post_name"),
        postal_code: field("post_postal_code"),
        address: field("post_address"),
        phone: field("post_phone"),
    });
    Ok(OrderRequest { student_record_id, lines, delivery, payment_method: form.get("payment_method").cloned().unwrap_or_default(), post })
}

/// Words for a delivery and a payment method, as the confirmation and the order page say them.
pub fn delivery_words(delivery: &str) -> (&'static str, &'static str) {
    match delivery {
        "campus" => ("学内印刷", "On-campus print"),
        "store" => ("コンビニ印刷", "Print at a convenience store"),
        "post" => ("郵送", "By post"),
        "digital" => ("電子証明書（署名付きPDF）", "Digital certificate (signed PDF)"),
        _ => ("", ""),
    }
}

pub fn payment_words(method: &str, delivery: &str) -> (&'static str, &'static str) {
    match method {
        "card" if delivery == "digital" => ("ICカードの残高から", "From an IC card's balance"),
        "card" => ("ICカード（学内の発行機で）", "IC card (at the on-campus printer)"),
        "paypal" => ("クレジットカード（PayPal）", "Credit card (PayPal)"),
        "smartpit" => ("コンビニ払い（Smart Pit）", "Cash at a convenience store (Smart Pit)"),
        "university" => ("大学が発行（料金なし）", "Issued by the university (no charge)"),
        _ => ("", ""),
    }
}

/// The confirmation step: everything the order will be, before it is placed.
pub async fn confirm_order(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser, Form(form): Form<HashMap<String, String>>) -> AppResult<Response> {
    check_csrf(&state, &headers, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    let req = match order_request(&form) {
        Ok(r) => r,
        Err(p) => return order_form(&state, &headers, &user, &form, Some(p)).await,
    };
    let mut c = state.pool.acquire().await?;
    let q = match orders::quote(&mut c, &state.seal, &state.sealers, store_postage(&state), user.user.id, &req).await? {
        Ok(q) => q,
        Err(p) => {
            drop(c);
            return order_form(&state, &headers, &user, &form, Some(p)).await;
        }
    };
    // IC card payment: said before ordering which linked cards could pay it at the printer
    let cards = if req.payment_method == "card" { store::cards_of_user(&mut c, user.user.id).await? } else { Vec::new() };
    drop(c);
    let card_rows: Vec<_> = cards
        .iter()
        .filter(|k| k.status == "active")
        .map(|k| context! { tail => shomei_shared::api::card_id_tail(&k.uid), balance => Yen(k.balance).to_string(), enough => k.balance >= q.total })
        .collect();
    let card_enough = cards.iter().any(|k| k.status == "active" && k.balance >= q.total);
    let zone = time::tz(&q.university.timezone);
    let deadline = time::deadline_text(time::print_deadline(time::now(), zone), zone);
    let lines: Vec<_> = q
        .chosen
        .iter()
        .map(|(t, n)| context! { name_ja => &t.name_ja, name_en => &t.name_en, copies => n, fee => Yen(t.fee).to_string(), amount => Yen(t.fee * n).to_string() })
        .collect();
    let (delivery_ja, delivery_en) = delivery_words(&req.delivery);
    let (payment_ja, payment_en) = payment_words(&req.payment_method, &req.delivery);
    let hidden: Vec<_> = form.iter().filter(|(k, _)| k.as_str() != "csrf").map(|(k, v)| context! { name => k, value => v }).collect();
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render(
        "order_confirm.html",
        context! { csrf => &csrf.token, hidden, lines, student_no => &q.record.student_no,
                   system_fee => Yen(q.system_fee).to_string(), postage => (q.postage > 0).then(|| Yen(q.postage).to_string()),
                   total => Yen(q.total).to_string(), delivery => &req.delivery, delivery_ja, delivery_en, payment => &req.payment_method, payment_ja, payment_en,
                   post => req.post.as_ref().map(|p| context! { name => &p.name, postal_code => &p.postal_code, address => &p.address, phone => &p.phone }),
                   deadline, card_rows, card_enough },
    ));
    Ok(csrf.respond(page))
}

pub async fn place_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: CurrentUser,
    Form(form): Form<HashMap<String, String>>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    let req = match order_request(&form) {
        Ok(r) => r,
        Err(p) => return order_form(&state, &headers, &user, &form, Some(p)).await,
    };
    {
        // anything the user can fix goes back to the form, as typed
        let mut c = state.pool.acquire().await?;
        if let Err(p) = orders::quote(&mut c, &state.seal, &state.sealers, store_postage(&state), user.user.id, &req).await? {
            drop(c);
            return order_form(&state, &headers, &user, &form, Some(p)).await;
        }
    }
    state.order_rate.admit(user.user.id, state.config.orders.per_user_per_minute).await?;
    let placed = orders::place(&state.pool, &state.fonts, &state.seal, &state.sealers, &state.config.http.public_url, store_postage(&state), user.user.id, &req, state.config.documents.failpoint_hold_render.as_deref()).await?;
    // Smart Pit: the payment number is issued and mailed with the order (the
    // manual's "receive a Smart Pit number by e-mail"); if the service cannot
    // be reached now, the order page offers to get it later
    let mut notice = "";
    if req.payment_method == "smartpit" && !placed.held {
        if let Some(provider) = state.payment_provider("smartpit") {
            match orders::start_payment(&state.pool, &state.seal, provider, user.user.id, placed.order_id).await {
                Ok(_) => notice = "?notice=smartpit",
                Err(e) => {
                    tracing::warn!(order_id = placed.order_id, error = %e, "Smart Pit number not issued with the order");
                    notice = "?notice=smartpit-later";
                }
            }
        }
    }
    state.mail_wake.notify_one();
    Ok(Redirect::to(&format!("/orders/{}{notice}", placed.order_id)).into_response())
}

/// An order's state in words for its delivery (O-3): awaiting payment, paid and
/// printable by ..., registered at the stores, waiting to be posted, posted.
pub fn order_state_words(order: &store::Order, zone: chrono_tz::Tz) -> (String, String) {
    let deadline = time::deadline_text(order.print_deadline, zone);
    let pay_by = time::deadline_text(order.pay_deadline, zone);
    // refunded (by staff, or a failed print by itself): how the money goes back
    if order.refunded_at.is_some() {
        let (how_ja, how_en) = crate::payments::refunds::Way::of(order).words();
        return match order.refund_paid_back_at {
            Some(at) => {
                let on = time::local_text(at, zone);
                (format!("返金済み（{how_ja}、{on} お支払い済み）"), format!("refunded ({how_en}, paid on {on})"))
            }
            None => (format!("返金済み（{how_ja}）"), format!("refunded ({how_en})")),
        };
    }
    match (order.delivery.as_str(), order.status.as_str()) {
        (_, "awaiting_payment") => (format!("お支払い待ち（期限 {pay_by}）"), format!("awaiting payment (pay by {pay_by})")),
        ("campus", "paid") => (format!("支払済み：{deadline}までに学内の発行機で印刷してください"), format!("paid: print at an on-campus printer by {deadline}")),
        ("store", "paid") if order.store_user_number.as_deref().is_some_and(|n| !n.is_empty()) => {
            (format!("コンビニに登録済み：{deadline}までに印刷してください"), format!("registered at the stores: print by {deadline}"))
        }
        ("store", "paid") => ("支払済み：コンビニ印刷サービスに登録中".into(), "paid: being registered at the stores".into()),
        ("digital", "paid") => ("支払済み：電子証明書をダウンロード・提出できます".into(), "paid: download your digital certificate and send it".into()),
        ("post", "paid") if order.shipped_at.is_none() => ("支払済み：発送待ち".into(), "paid: waiting to be posted".into()),
        ("post", "paid") | ("post", "printed") => {
            let on = order.shipped_at.map(|t| time::local_text(t, zone)).unwrap_or_default();
            (format!("発送済み（{on}）"), format!("posted ({on})"))
        }
        (_, status) => {
            let (ja, en) = order_status(status);
            (ja.to_string(), en.to_string())
        }
    }
}

pub async fn order(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::extract::Query(q): axum::extract::Query<MenuQuery>,
) -> AppResult<Response> {
    order_page(&state, &headers, &user, id, &q.notice, None).await
}

/// The order page; `share`: a share form sent back with its problem.
pub(super) async fn order_page(
    state: &AppState,
    headers: &HeaderMap,
    user: &CurrentUser,
    id: i64,
    notice: &str,
    share: Option<(&orders::digital::ShareRequest, &orders::FormProblem)>,
) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let order = match store::order(&mut c, id).await {
        Ok(o) if o.user_id == user.user.id => o,
        Ok(_) | Err(sqlx::Error::RowNotFound) => return Err(AppError::PageNotFound),
        Err(e) => return Err(e.into()),
    };
    let lines = store::order_lines(&mut c, id).await?;
    let record = store::student_records(&mut c, user.user.id).await?.into_iter().find(|r| r.id == order.student_record_id);
    let university = store::order_university(&mut c, id).await?;
    let office = store::order_office(&mut c, id).await?;
    // a refund the office pays back by bank transfer: the user gives the account here
    let wants_bank = crate::payments::refunds::wants_bank_details(&mut c, &order).await?;
    // a digital order paid from a card's stored value: the user's usable cards
    let must_pay_balance = order.delivery == "digital" && order.payment_method == "card" && order.status == "awaiting_payment" && order.pay_deadline > time::now();
    let pay_cards: Vec<_> = if must_pay_balance {
        store::cards_of_user(&mut c, user.user.id)
            .await?
            .into_iter()
            .filter(|k| k.status == "active")
            .map(|k| context! { uid => k.uid, label => k.label, balance => Yen(k.balance).to_string(), enough => k.balance >= order.total })
            .collect()
    } else {
        Vec::new()
    };
    let digital = if order.delivery == "digital" && order.status == "paid" {
        Some(super::digital::order_section(&mut c, &order, &university, share).await?)
    } else {
        None
    };
    drop(c);
    let zone = time::tz("Asia/Tokyo");
    let (ja, en) = order_state_words(&order, zone);
    let (delivery_ja, delivery_en) = delivery_words(&order.delivery);
    let (payment_ja, payment_en) = payment_words(&order.payment_method, &order.delivery);
    let post = if order.delivery == "post" { Some(orders::open_post_address(&state.seal, &order)?) } else { None };
    let lines: Vec<_> = lines
        .iter()
        .map(|l| context! { name_ja => &l.name_ja, name_en => &l.name_en, copies => l.copies, amount => Yen(l.amount).to_string() })
        .collect();
    let csrf = Csrf::get(state, headers);
    let page = Html(render(
        "order.html",
        context! { number => if order.delivery == "campus" { number_text(&order.print_number) } else { String::new() },
                   created => time::local_text(order.created_at, zone),
                   student_no => record.as_ref().map(|r| r.student_no.clone()).unwrap_or_default(),
                   university_ja => &university.name_ja, university_en => &university.name_en,
                   office => (!office.desk_ja.is_empty() || !office.desk_en.is_empty()).then(|| context! {
                       desk_ja => &office.desk_ja, desk_en => &office.desk_en, hours_ja => &office.hours_ja, hours_en => &office.hours_en,
                       phone => &office.contact_phone, email => &office.contact_email }),
                   delivery => &order.delivery, delivery_ja, delivery_en, payment_ja, payment_en,
                   pay_deadline => (order.status == "awaiting_payment").then(|| time::deadline_text(order.pay_deadline, zone)),
                   paid_online => order.status == "paid" && order.payment_method != "card",
                   post => post.map(|p| context! { name => p.name, postal_code => p.postal_code, address => p.address, phone => p.phone }),
                   deadline => time::deadline_text(order.print_deadline, zone), lines,
                   system_fee => Yen(order.system_fee).to_string(), total => Yen(order.total).to_string(),
                   postage => (order.postage > 0).then(|| Yen(order.postage).to_string()),
                   shipped => order.shipped_at.map(|t| time::local_text(t, zone)),
                   status_ja => ja, status_en => en, status => &order.status,
                   receipt => order.paid_at.is_some() && order.total > 0 && matches!(order.status.as_str(), "paid" | "printed"), held => order.status == "held", id,
                   refunded => order.refunded_at.is_some(), wants_bank, bank_given => order.refund_bank_sealed.is_some(),
                   must_pay_online => order.payment_method == "paypal" && order.status == "awaiting_payment" && order.pay_deadline > time::now(),
                   must_pay_cash => order.payment_method == "smartpit" && order.status == "awaiting_payment" && order.pay_deadline > time::now(),
                   smartpit_number => &order.smartpit_number,
                   store => order.delivery == "store",
                   store_user_number => &order.store_user_number,
                   store_reservation_number => &order.store_reservation_number,
                   digital, digital_order => order.delivery == "digital", must_pay_balance, pay_cards,
                   csrf => &csrf.token, can_cancel => matches!(order.status.as_str(), "awaiting_payment" | "held"),
                   // only an on-campus order has a number to mail again
                   can_resend => order.delivery == "campus" && order.print_number.is_some()
                       && matches!(order.status.as_str(), "awaiting_payment" | "paid") && order.print_deadline > time::now(),
                   notice => match notice {
                       "cancelled" => Some("申込を取り消しました。 / The order was cancelled."),
                       "resent" => Some("番号をもう一度メールで送りました。 / The number was sent to you again."),
                       "smartpit" => Some("支払番号をメールでもお送りしました。 / The payment number was also sent to you by e-mail."),
                       "paid" => Some("お支払いを受け付けました。学内印刷番号をメールでもお送りしました。 / Payment received: the print number was also sent to you by e-mail."),
                       "smartpit-later" => Some("支払番号をまだ発行できませんでした。しばらくしてから「支払番号を発行」を押してください。 / The payment number could not be issued yet: press \"Get a payment number\" in a while."),
                       "paypal-cancelled" => Some("PayPal での支払いを取り消しました。申込は支払期限までこのまま残ります。 / The PayPal payment was cancelled: the order waits for payment until its deadline."),
                       "bank-saved" => Some("返金の振込先を受け付けました。大学からお振込みします。済みましたらメールでお知らせします。 / Thank you: the university pays the refund to this account and mails you once it is paid."),
                       "paid-balance" => Some("カードの残高からお支払いしました。電子証明書をダウンロード・提出できます。 / Paid from your card's balance: your digital certificate can now be downloaded and sent."),
                       "shared" => Some("提出先あての写しを作り、リンクをメールで送りました。 / A copy for the recipient was made and its link e-mailed to them."),
                       "withdrawn" => Some("リンクを取り消しました。提出先はもうダウンロードできません。 / The link was withdrawn: the recipient can no longer download the copy."),
                       _ => None,
                   } },
    ));
    let status = if share.is_some() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    Ok((status, csrf.respond(page)).into_response())
}

/// The refund's bank account form (a refund the office pays back), with what
/// was typed and the fields at fault.
fn refund_bank_html(csrf: &str, order: &store::Order, d: &crate::payments::refunds::BankDetails, errors: &crate::error::FieldErrors) -> Html<String> {
    let types: Vec<[&str; 3]> = crate::payments::refunds::ACCOUNT_TYPES.iter().map(|t| [t.0, t.1, t.2]).collect();
    Html(render(
        "refund_bank.html",
        context! { csrf, id => order.id, total => Yen(order.total).to_string(), d, errors, types, given => order.refund_bank_sealed.is_some() },
    ))
}

/// The order's refund goes back by bank transfer: the account to pay it to,
/// asked for by mail (prefilled with what the user gave before, if anything).
pub async fn refund_bank_page(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let order = match store::order(&mut c, id).await {
        Ok(o) if o.user_id == user.user.id => o,
        Ok(_) | Err(sqlx::Error::RowNotFound) => return Err(AppError::PageNotFound),
        Err(e) => return Err(e.into()),
    };
    if !crate::payments::refunds::wants_bank_details(&mut c, &order).await? {
        return Err(AppError::Page(messages::NOTHING_TO_PAY_BACK.into()));
    }
    drop(c);
    let d = crate::payments::refunds::open_bank_details(&state.seal, &order)?.unwrap_or_default();
    let csrf = Csrf::get(&state, &headers);
    let page = refund_bank_html(&csrf.token, &order, &d, &crate::error::FieldErrors::new());
    Ok(csrf.respond(page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RefundBankForm {
    csrf: String,
    bank: String,
    branch: String,
    account_type: String,
    number: String,
    holder: String,
}

pub async fn save_refund_bank(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(f): Form<RefundBankForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let d = crate::payments::refunds::BankDetails { bank: f.bank, branch: f.branch, account_type: f.account_type, number: f.number, holder: f.holder }.normalised();
    let errors = d.check();
    if !errors.is_empty() {
        let mut c = state.pool.acquire().await?;
        let order = match store::order(&mut c, id).await {
            Ok(o) if o.user_id == user.user.id => o,
            Ok(_) | Err(sqlx::Error::RowNotFound) => return Err(AppError::PageNotFound),
            Err(e) => return Err(e.into()),
        };
        drop(c);
        let csrf = Csrf::get(&state, &headers);
        let page = refund_bank_html(&csrf.token, &order, &d, &errors);
        return Ok((axum::http::StatusCode::BAD_REQUEST, csrf.respond(page)).into_response());
    }
    let ip = client.ip().to_string();
    crate::payments::refunds::save_bank_details(&state.pool, &state.seal, user.user.id, accounts::Client { ip: &ip }, id, &d).await?;
    Ok(Redirect::to(&format!("/orders/{id}?notice=bank-saved")).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct VerifyQuery {
    code: String,
}

/// Every university's public key for the signed payloads in its
/// certificates' QR codes, as a JWK Set (RFC 7517, keys of RFC 8037), each
/// named with its university.
pub(super) async fn published_keys(state: &AppState) -> AppResult<serde_json::Value> {
    let mut c = state.pool.acquire().await?;
    let keys: Vec<_> = store::published_proof_keys(&mut c)
        .await?
        .into_iter()
        .map(|k| {
            serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid,
                                "x": crate::documents::proof::jwk_x(&k.public_hex), "name_ja": k.name_ja, "name_en": k.name_en })
        })
        .collect();
    Ok(serde_json::json!({ "keys": keys }))
}

/// The same keys for machines (anyone checking a certificate's QR payload
/// with their own software): `/verify/keys.json`.
pub async fn verify_keys(State(state): State<AppState>) -> AppResult<Response> {
    Ok(axum::Json(published_keys(&state).await?).into_response())
}

/// D-1: the public verification page (no login). Lookups of codes that match
/// nothing are throttled per address; a wrong code reveals nothing.
pub async fn verify(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    axum::extract::Query(q): axum::extract::Query<VerifyQuery>,
) -> AppResult<Response> {
    use crate::orders::certificates::Verification;
    // every university's public key, for the page's own check of a QR code's signed payload
    let keys = serde_json::to_string(&published_keys(&state).await?).unwrap_or_else(|_| "{}".into());
    if q.code.trim().is_empty() {
        return Ok(Html(render("verify.html", context! { code => "", keys })).into_response());
    }
    let key = format!("verify:{}", client.ip());
    state
        .request_throttle
        .check_with(&key, 60, 20).await
        .map_err(|w| AppError::Throttled(w.message()))?;
    let zone = time::tz("Asia/Tokyo");
    let (result, c) = match crate::orders::certificates::verify(&state.pool, &q.code).await? {
        Verification::Valid(c) => ("valid", c),
        Verification::Revoked(c) => ("revoked", c),
        Verification::NotFound => {
            state.request_throttle.fail(&key).await;
            return Ok((axum::http::StatusCode::NOT_FOUND, Html(render("verify.html", context! { code => &q.code, result => "none", keys }))).into_response());
        }
    };
    let page = render(
        "verify.html",
        context! { code => &q.code, result, keys, issued => time::local_date(c.issued_at, zone),
                   revoked => c.revoked_at.map(|t| time::local_date(t, zone)).unwrap_or_default(),
                   c => context! { type_ja => c.type_ja, type_en => c.type_en, name_kanji => c.name_kanji, name_roman => c.name_roman,
                                   university_ja => c.university_ja, university_en => c.university_en, serial => c.serial } },
    );
    Ok(Html(page).into_response())
}

pub async fn cancel_order(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    orders::cancel(&state.pool, user.user.id, id).await?;
    Ok(Redirect::to(&format!("/orders/{id}?notice=cancelled")).into_response())
}

pub async fn resend_number(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let key = format!("resend:{id}");
    let ip = client.ip().to_string();
    state.request_throttle.gate(&key, &ip).await?;
    state.request_throttle.fail_both(&key, &ip).await;
    orders::resend_number(&state.pool, &state.seal, &state.config.http.public_url, user.user.id, id).await?;
    state.mail_wake.notify_one();
    Ok(Redirect::to(&format!("/orders/{id}?notice=resent")).into_response())
}

/// What the cards page shows besides the cards: what was typed into its
/// forms, and what went wrong where.
#[derive(Default)]
struct CardsView<'a> {
    uid: &'a str,
    label: &'a str,
    error: Option<&'a str>,
    code: &'a str,
    code_label: &'a str,
    code_error: Option<&'a str>,
    unlink_error: Option<&'a str>,
    notice: Option<&'a str>,
}

async fn cards_page(state: &AppState, headers: &HeaderMap, user: &CurrentUser, v: CardsView<'_>) -> AppResult<Response> {
    use shomei_shared::api::{card_id_grouped, card_id_tail};
    let mut c = state.pool.acquire().await?;
    let cards: Vec<_> = store::cards_of_user(&mut c, user.user.id)
        .await?
        .iter()
        .map(|k| context! { uid => &k.uid, grouped => card_id_grouped(&k.uid), label => &k.label, balance => Yen(k.balance).to_string(),
                            blocked => k.status == "blocked", empty => k.balance == 0 })
        .collect();
    let zone = time::tz("Asia/Tokyo");
    let history: Vec<_> = store::ledger_of_user(&mut c, user.user.id, 50)
        .await?
        .iter()
        .map(|h| {
            let (ja, en) = match h.kind.as_str() {
                "topup" => ("入金", "top-up"),
                "debit" => ("証明書の支払", "certificate payment"),
                "refund" => ("返金", "refund"),
                _ => ("調整", "adjustment"),
            };
            context! { at => time::local_text(h.created_at, zone), uid => &h.card_uid, tail => card_id_tail(&h.card_uid), kind_ja => ja, kind_en => en,
                       order => h.order_id, amount => Yen(h.amount).to_string() }
        })
        .collect();
    let topups: Vec<_> = store::captured_topups(&mut c, user.user.id)
        .await?
        .iter()
        .map(|(id, uid, amount, _, at)| context! { id, uid, tail => card_id_tail(uid), amount => Yen(*amount).to_string(), at => time::local_text(*at, zone) })
        .collect();
    let csrf = Csrf::get(state, headers);
    let failed = v.error.is_some() || v.code_error.is_some() || v.unlink_error.is_some();
    let status = if failed { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    let page = Html(render(
        "cards.html",
        context! { csrf => &csrf.token, cards, history, topups, uid => v.uid, label => v.label, error => v.error, notice => v.notice,
                   code => v.code, code_label => v.code_label, code_error => v.code_error, unlink_error => v.unlink_error,
                   code_minutes => crate::payments::cards::LINK_CODE_TTL_S / 60,
                   amounts => crate::payments::topup::AMOUNTS.iter().map(|a| (a, Yen(*a).to_string())).collect::<Vec<_>>() },
    ));
    Ok((status, csrf.respond(page)).into_response())
}

pub async fn cards(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser, axum::extract::Query(q): axum::extract::Query<MenuQuery>) -> AppResult<Response> {
    let notice = match q.notice.as_str() {
        "linked" => Some("カードを登録しました。入金すると証明書発行機で支払えます。 / The card is linked. Top it up to pay with it at the campus printers."),
        "topped-up" => Some("入金しました。 / The card was topped up."),
        "topup-cancelled" => Some("入金を取り消しました。料金はかかっていません。 / The top-up was cancelled: nothing was charged."),
        "blocked" => Some("カードを利用停止にしました。証明書発行機では使えません。 / The card is blocked: campus printers will refuse it."),
        "unlinked" => Some("カードの登録を解除しました。利用履歴は残ります。 / The card is unlinked. Its history stays below."),
        _ => None,
    };
    cards_page(&state, &headers, &user, CardsView { notice, ..CardsView::default() }).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LinkForm {
    csrf: String,
    uid: String,
    label: String,
}

pub async fn link_card(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Form(f): Form<LinkForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    let key = format!("card-link:{}", user.user.id);
    state.request_throttle.gate(&key, &ip).await?;
    match crate::payments::cards::link(&state.pool, user.user.id, accounts::Client { ip: &ip }, &f.uid, &f.label).await {
        Ok(_) => Ok(Redirect::to("/cards?notice=linked").into_response()),
        Err(AppError::Page(msg)) => {
            // trying other people's cards counts against the throttle
            state.request_throttle.fail_both(&key, &ip).await;
            cards_page(&state, &headers, &user, CardsView { uid: &f.uid, label: &f.label, error: Some(&msg), ..CardsView::default() }).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LinkCodeForm {
    csrf: String,
    code: String,
    label: String,
}

/// Links the card a campus printer showed a one-time code for. Wrong, used
/// and expired codes count against the user's and the address's throttle.
pub async fn link_card_by_code(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Form(f): Form<LinkCodeForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    let key = format!("card-code:{}", user.user.id);
    state.request_throttle.gate(&key, &ip).await?;
    match crate::payments::cards::link_by_code(&state.pool, &state.seal, user.user.id, accounts::Client { ip: &ip }, &f.code, &f.label).await {
        Ok(_) => Ok(Redirect::to("/cards?notice=linked").into_response()),
        Err(AppError::Page(msg)) => {
            state.request_throttle.fail_both(&key, &ip).await;
            cards_page(&state, &headers, &user, CardsView { code: &f.code, code_label: &f.label, code_error: Some(&msg), ..CardsView::default() }).await
        }
        Err(e) => Err(e),
    }
}

/// Unlinks a card of the user whose balance is zero (the page says why others cannot be).
pub async fn unlink_card(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Path(uid): Path<String>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    match crate::payments::cards::unlink(&state.pool, user.user.id, accounts::Client { ip: &ip }, &uid).await {
        Ok(()) => Ok(Redirect::to("/cards?notice=unlinked").into_response()),
        Err(AppError::Page(msg)) => cards_page(&state, &headers, &user, CardsView { unlink_error: Some(&msg), ..CardsView::default() }).await,
        Err(e) => Err(e),
    }
}

pub async fn report_card_lost(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Path(uid): Path<String>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    crate::payments::cards::report_lost(&state.pool, user.user.id, accounts::Client { ip: &ip }, &uid).await?;
    Ok(Redirect::to("/cards?notice=blocked").into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TopupForm {
    csrf: String,
    amount: String,
}

/// P-4: top up a card; off to PayPal (the simulator in the demo and tests).
pub async fn start_topup(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Path(uid): Path<String>,
    Form(f): Form<TopupForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    let amount: i64 = f.amount.parse().map_err(|_| AppError::Page(messages::CHECK_INPUT.into()))?;
    let url = crate::payments::topup::start(&state.pool, &state.paypal, user.user.id, accounts::Client { ip: &ip }, &uid, amount).await?;
    Ok(Redirect::to(&url).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PayPalReturn {
    token: String,
}

/// PayPal sends the buyer back here: a page whose button captures (GET changes nothing).
pub async fn paypal_return(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser, axum::extract::Query(q): axum::extract::Query<PayPalReturn>) -> AppResult<Response> {
    use crate::orders::paypal_return::Purpose;
    // the page speaks of what is being paid: an order (its number and amount) or a top-up
    let intro = match crate::orders::paypal_return::purpose(&state.pool, user.user.id, &q.token).await?.ok_or(AppError::PageNotFound)? {
        Purpose::Order { id, total } => [
            format!("PayPal での承認を受け付けました。「支払う」を押すと、申込番号 {id} の {total} の支払いが確定します。"),
            format!("PayPal approved the payment. Press \"Pay\" to pay {total} for order no. {id}."),
        ],
        Purpose::Topup { amount } => [
            format!("PayPal での承認を受け付けました。「支払う」を押すと支払いが確定し、{amount} が残高に入金されます。"),
            format!("PayPal approved the payment. Press \"Pay\" to complete it and add {amount} to your balance."),
        ],
    };
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render(
        "email_form.html",
        context! { csrf => &csrf.token, title_ja => "支払いの確定", title_en => "Complete the payment",
                   action => format!("/paypal/capture?token={}", urlencoding::encode(&q.token)),
                   intro, errors => std::collections::BTreeMap::<String, String>::new(), button => "支払う / Pay" },
    ));
    Ok(csrf.respond(page))
}

pub async fn paypal_capture(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: CurrentUser,
    axum::extract::Query(q): axum::extract::Query<PayPalReturn>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    match crate::orders::paypal_return::complete(&state.pool, &state.seal, &state.paypal, &state.config.http.public_url, user.user.id, &q.token).await? {
        crate::orders::paypal_return::Paid::Topup => Ok(Redirect::to("/cards?notice=topped-up").into_response()),
        crate::orders::paypal_return::Paid::Order(id) => {
            state.mail_wake.notify_one();
            state.store_wake.notify_one();
            Ok(Redirect::to(&format!("/orders/{id}?notice=paid")).into_response())
        }
    }
}

/// PayPal sends the buyer back here when they cancel: back to the order, or to the cards for a top-up.
pub async fn paypal_cancel(State(state): State<AppState>, user: CurrentUser, axum::extract::Query(q): axum::extract::Query<PayPalReturn>) -> AppResult<Response> {
    Ok(match crate::orders::paypal_return::purpose(&state.pool, user.user.id, &q.token).await? {
        Some(crate::orders::paypal_return::Purpose::Order { id, .. }) => Redirect::to(&format!("/orders/{id}?notice=paypal-cancelled")).into_response(),
        _ => Redirect::to("/cards?notice=topup-cancelled").into_response(),
    })
}

/// PayPal's webhook (no session, no CSRF: PayPal verifies it).
pub async fn paypal_webhook(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let ip = client.ip().to_string();
    let code = crate::orders::paypal_return::webhook(&state.pool, &state.seal, &state.paypal, &state.config.http.public_url, &state.request_throttle, &ip, &headers, &body).await;
    state.mail_wake.notify_one();
    state.store_wake.notify_one();
    axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// O-4: pay this order online through its provider: off to PayPal's
/// approval page, or (Smart Pit) the convenience-store payment number, issued
/// once, shown on the order page and mailed.
pub async fn pay_order(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let mut c = state.pool.acquire().await?;
    let method = store::order(&mut c, id).await.map_err(|_| AppError::PageNotFound)?.payment_method;
    drop(c);
    let provider = state.payment_provider(&method).ok_or(AppError::PageNotFound)?;
    match orders::start_payment(&state.pool, &state.seal, provider, user.user.id, id).await? {
        orders::Started::Redirect { url, .. } => Ok(Redirect::to(&url).into_response()),
        orders::Started::PayNumber(_) => {
            state.mail_wake.notify_one();
            Ok(Redirect::to(&format!("/orders/{id}?notice=smartpit")).into_response())
        }
    }
}

/// Smart Pit's payment notice (signed; no session, no CSRF).
pub async fn smartpit_notice(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    use axum::http::StatusCode;
    use axum::Json;
    let sig = headers.get("x-smartpit-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !crate::payments::smartpit::verify(state.smartpit.secret(), &body, sig) {
        tracing::warn!("Smart Pit notice with a bad signature refused");
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "result": "bad_signature" }))).into_response();
    }
    let Ok(notice) = serde_json::from_slice::<crate::payments::smartpit::Notice>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "result": "bad_request" }))).into_response();
    };
    match orders::smartpit_notice(&state.pool, &state.seal, &state.config.http.public_url, &notice).await {
        Ok(orders::NoticeOutcome::Paid) | Ok(orders::NoticeOutcome::Duplicate) => {
            state.mail_wake.notify_one();
            state.store_wake.notify_one();
            (StatusCode::OK, Json(serde_json::json!({ "result": "ok" }))).into_response()
        }
        Ok(orders::NoticeOutcome::UnknownNumber) => (StatusCode::NOT_FOUND, Json(serde_json::json!({ "result": "unknown_payment_number" }))).into_response(),
        Ok(orders::NoticeOutcome::AmountDiffers) => (StatusCode::CONFLICT, Json(serde_json::json!({ "result": "amount_differs" }))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The store print service's notice that a document was printed (signed; no session, no CSRF).
pub async fn storeprint_notice(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    use axum::http::StatusCode;
    use axum::Json;
    let sig = headers.get("x-storeprint-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !crate::payments::storeprint::verify(state.storeprint.notice_secret(), &body, sig) {
        tracing::warn!("store print notice with a bad signature refused");
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "result": "bad_signature" }))).into_response();
    }
    let Ok(notice) = serde_json::from_slice::<crate::payments::storeprint::Notice>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "result": "bad_request" }))).into_response();
    };
    match orders::storeprint_notice(&state.pool, &notice).await {
        Ok(orders::StoreNoticeOutcome::Printed | orders::StoreNoticeOutcome::Duplicate) => (StatusCode::OK, Json(serde_json::json!({ "result": "ok" }))).into_response(),
        Ok(orders::StoreNoticeOutcome::UnknownDocument) => (StatusCode::NOT_FOUND, Json(serde_json::json!({ "result": "unknown_document" }))).into_response(),
        Err(e) => e.into_response(),
    }
}

fn pdf_download(name: &str, pdf: Vec<u8>) -> Response {
    use axum::http::header;
    (
        [(header::CONTENT_TYPE, "application/pdf".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
        pdf,
    )
        .into_response()
}

/// A receipt (PDF) for a paid order.
pub async fn order_receipt(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    let (name, pdf) = crate::orders::receipts::for_order(&state.pool, &state.fonts, user.user.id, id).await?;
    Ok(pdf_download(&name, pdf))
}

/// A receipt (PDF) for a completed IC card top-up.
pub async fn topup_receipt(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    let (name, pdf) = crate::orders::receipts::for_topup(&state.pool, &state.fonts, user.user.id, id).await?;
    Ok(pdf_download(&name, pdf))
}
