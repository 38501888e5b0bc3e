//! The admin web panel (first cut: login, stations, orders, outbox).

use super::pages::{order_status, render};
use super::web::{check_csrf, login_flow, set_cookie, Csrf, CsrfForm, CurrentStaff, LoggedIn, LoginTarget, STAFF_COOKIE};
use crate::error::AppResult;
use crate::{accounts, stations, store, time, AppState};
use axum::extract::{ConnectInfo, Path, State};
use std::net::SocketAddr;
use axum::http::header::SET_COOKIE;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use shomei_shared::{PrintNumber, Yen};

pub async fn home(staff: CurrentStaff) -> Redirect {
    if staff.staff.role == "operator" {
        Redirect::to("/admin/stations")
    } else {
        Redirect::to("/admin/registrations")
    }
}

fn login_html(csrf: &str, error: Option<&str>) -> Html<String> {
    Html(render("admin_login.html", context! { csrf, error }))
}

pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::get(&state, &headers);
    let page = login_html(&csrf.token, None);
    csrf.respond(page)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    login: String,
    password: String,
    #[serde(default)]
    code: String,
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let ip = client.ip().to_string();
    let check = async {
        let id = accounts::login_staff(
            &state.pool,
            &state.login_throttle,
            &state.hasher,
            &state.seal,
            accounts::Client { ip: &ip },
            &f.login,
            &f.password,
            &f.code,
            state.config.accounts.initial_password_ttl_s,
        )
        .await?;
        let mut c = state.pool.acquire().await?;
        let role = store::staff(&mut c, id).await?.role;
        let redirect = if role == "operator" { "/admin/stations" } else { "/admin/registrations" };
        Ok(LoggedIn { user_id: None, staff_id: Some(id), redirect })
    };
    let target = LoginTarget { cookie: STAFF_COOKIE, same_site: "Strict" };
    login_flow(&state, &headers, &f.csrf, check, target, |t, msg| login_html(t, Some(msg))).await
}


pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    accounts::logout(&state.pool, &staff.token, &format!("staff:{}", staff.staff.login), accounts::Client { ip: &ip }).await?;
    let mut r = Redirect::to("/admin/login").into_response();
    r.headers_mut().append(SET_COOKIE, set_cookie(&state, STAFF_COOKIE, "", 0, "Strict"));
    Ok(r)
}

/// One station as the fleet page (and its live updates) show it.
fn station_row(s: &store::Station, offline_after_s: i64) -> minijinja::Value {
    let zone = time::tz("Asia/Tokyo");
    let c = crate::fleet::condition(s, offline_after_s);
    let markers: Vec<shomei_shared::api::Marker> = serde_json::from_str(&s.markers).unwrap_or_default();
    let supplies = markers.iter().map(|m| if m.level >= 0 { format!("{} {}%", m.name, m.level) } else { format!("{} ?", m.name) }).collect::<Vec<_>>().join(", ");
    context! {
        id => s.id, name => &s.name, status => &s.status, version => s.version.clone().unwrap_or_default(),
        online => stations::is_online(s, offline_after_s),
        level => c.level, condition_ja => c.ja, condition_en => c.en,
        printer_state => s.printer_state.clone().unwrap_or_else(|| "-".into()),
        printer_reasons => s.printer_reasons.clone().unwrap_or_default(),
        supplies, media => &s.media_ready,
        reader_present => s.reader_present.unwrap_or(false),
        terminal => s.terminal_present.map(|t| if t { "OK" } else { "なし / missing" }).unwrap_or("-"),
        outbox => s.outbox_len.unwrap_or(0), jobs => s.jobs_printed,
        disk => s.disk_free_mb.map(|d| format!("{d} MB")).unwrap_or_else(|| "-".into()),
        uptime => s.uptime_s.map(|u| format!("{}h{:02}m", u / 3600, (u % 3600) / 60)).unwrap_or_else(|| "-".into()),
        last_seen => s.last_seen.map(|t| time::local_text(t, zone)).unwrap_or_else(|| "-".into()),
        in_service => s.in_service,
        clock_skew => s.clock_skew_s.map(|k| format!("{k:+} s")).unwrap_or_else(|| "-".into()),
        clock_unsure => s.clock_skew_s.is_some_and(|k| k.abs() > 120),
        test_page_pending => s.test_page_wanted > s.test_page_done,
        test_page_result => &s.test_page_result,
        test_page_at => s.test_page_at.map(|t| time::local_text(t, zone)).unwrap_or_default(),
    }
}

/// A print number as staff see it: only its last four digits (`•••• •••• 9012`).
/// The number prints the certificate for whoever types it, and the order's
/// link already tells staff which one it is.
fn masked_number(n: Option<&str>) -> String {
    n.and_then(|n| PrintNumber::parse(n).ok()).map(|n| n.masked()).unwrap_or_default()
}

async fn stations_page(state: &AppState, headers: &HeaderMap, new: Option<(String, String)>) -> AppResult<Response> {
    let csrf = Csrf::get(state, headers);
    let mut c = state.pool.acquire().await?;
    let list = store::stations(&mut c).await?;
    let rows: Vec<_> = list.iter().map(|s| station_row(s, state.config.stations.offline_after_s)).collect();
    let zone = time::tz("Asia/Tokyo");
    let duplicates: Vec<_> = store::duplicate_prints(&mut c)
        .await?
        .iter()
        .map(|d| context! { order_id => d.order_id, number => masked_number(d.print_number.as_deref()), station => &d.station, at => time::local_text(d.printed_at, zone) })
        .collect();
    let paid_twice: Vec<_> = store::duplicate_debits(&mut c)
        .await?
        .iter()
        .map(|d| context! { order_id => d.order_id, number => masked_number(d.print_number.as_deref()), station => &d.station,
                            card => &d.card_uid, amount => shomei_shared::Yen(d.amount).to_string(), at => time::local_text(d.debited_at, zone) })
        .collect();
    let refused: Vec<_> = store::refused_claims(&mut c)
        .await?
        .iter()
        .map(|r| context! { at => time::local_text(r.received_at, zone), station => &r.station, kind => &r.kind, order_id => r.order_id, reason => &r.reason })
        .collect();
    let (new_name, new_code) = new.unzip();
    let page = Html(render(
        "admin_stations.html",
        context! { csrf => &csrf.token, stations => rows, duplicates, paid_twice, refused,
                   new_name, new_code, code_ttl_h => state.config.stations.enrolment_code_ttl_s / 3600 },
    ));
    Ok(csrf.respond(page))
}

/// The fleet page's live data (polled by its script every few seconds).
pub async fn stations_json(State(state): State<AppState>, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["operator"])?;
    let mut c = state.pool.acquire().await?;
    let rows: Vec<_> = store::stations(&mut c).await?.iter().map(|s| station_row(s, state.config.stations.offline_after_s)).collect();
    Ok(axum::Json(serde_json::json!({ "stations": rows, "at": time::now() })).into_response())
}

/// One station: its condition and the last 24 hours as charts.
pub async fn station_detail(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff, Path(id): Path<i64>) -> AppResult<Response> {
    staff.require(&["operator"])?;
    let mut c = state.pool.acquire().await?;
    let s = store::stations(&mut c).await?.into_iter().find(|s| s.id == id).ok_or(crate::error::AppError::PageNotFound)?;
    drop(c);
    let ch = crate::fleet::charts(&state.pool, id).await?;
    let supply: Vec<i64> = ch.supply.iter().map(|l| l.unwrap_or(0)).collect();
    let charts = [
        ("online", "稼働（1時間あたりの分） / Online minutes per hour", crate::fleet::bar_svg("Online minutes per hour, last 24 hours", &ch.online_minutes, 60, "#2a7d4f")),
        ("jobs", "印刷数（1時間ごと） / Jobs printed per hour", crate::fleet::bar_svg("Jobs printed per hour, last 24 hours", &ch.jobs, ch.jobs.iter().copied().max().unwrap_or(1).max(5), "#2456a6")),
        ("supply", "トナー・用紙の残量（%） / Lowest supply level (%)", crate::fleet::bar_svg("Lowest supply level per hour, per cent", &supply, 100, "#8a5a00")),
        ("blocked", "印刷不可の時間（分） / Minutes unable to print", crate::fleet::bar_svg("Minutes per hour the printer could not print", &ch.blocked_minutes, 60, "#b3261e")),
    ];
    let charts: Vec<_> = charts.into_iter().map(|(id, title, svg)| context! { id, title, svg }).collect();
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("admin_station.html", context! { csrf => &csrf.token, s => station_row(&s, state.config.stations.offline_after_s), charts }));
    Ok(csrf.respond(page))
}

pub async fn stations(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["operator"])?;
    stations_page(&state, &headers, None).await
}

#[derive(Deserialize)]
pub struct EnrolForm {
    #[serde(default)]
    csrf: String,
    name: String,
}

pub async fn create_enrolment_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<EnrolForm>,
) -> AppResult<Response> {
    staff.require(&["operator"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    let (_, code) =
        stations::create_enrolment(&state.pool, &f.name, Some(staff.staff.id), state.config.stations.enrolment_code_ttl_s).await?;
    stations_page(&state, &headers, Some((f.name.trim().to_string(), code))).await
}

pub async fn revoke_station(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    staff.require(&["operator"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    stations::revoke(&state.pool, id, &format!("staff:{}", staff.staff.login)).await?;
    Ok(Redirect::to("/admin/stations").into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ServiceForm {
    csrf: String,
    in_service: String,
}

/// Operators take a station out of service for maintenance (its kiosk says
/// so and takes no money) or put it back; it follows at its next heartbeat.
pub async fn station_service(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<ServiceForm>,
) -> AppResult<Response> {
    staff.require(&["operator"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    let on = f.in_service == "1";
    let mut c = state.pool.acquire().await?;
    if !store::set_station_in_service(&mut c, id, on).await? {
        return Err(crate::error::AppError::PageNotFound);
    }
    let what = if on { "station.in_service" } else { "station.out_of_service" };
    store::audit(&mut c, &format!("staff:{}", staff.staff.login), what, &id.to_string(), time::now()).await?;
    Ok(Redirect::to(&format!("/admin/stations/{id}")).into_response())
}

/// Operators ask a station to print a test page (at its next heartbeat).
pub async fn station_test_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    staff.require(&["operator"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    let mut c = state.pool.acquire().await?;
    let n = store::request_test_page(&mut c, id).await?.ok_or(crate::error::AppError::PageNotFound)?;
    store::audit(&mut c, &format!("staff:{}", staff.staff.login), "station.test_page.request", &format!("{id} #{n}"), time::now()).await?;
    Ok(Redirect::to(&format!("/admin/stations/{id}")).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OrderSearch {
    q: String,
    status: String,
}

pub async fn orders(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: CurrentStaff,
    axum::extract::Query(search): axum::extract::Query<OrderSearch>,
) -> AppResult<Response> {
    staff.require(&["registrar", "operator"])?;
    let csrf = Csrf::get(&state, &headers);
    let mut c = state.pool.acquire().await?;
    let zone = time::tz("Asia/Tokyo");
    let rows: Vec<_> = store::search_orders(&mut c, &search.q, &search.status, 200)
        .await?
        .iter()
        .map(|o| {
            let (ja, en) = order_status(&o.status);
            context! { id => o.id, created => time::local_text(o.created_at, zone),
                // the number and any funded card print the certificate: staff see only its end
                number => masked_number(o.print_number.as_deref()),
                total => Yen(o.total).to_string(), payment => &o.payment_method, status => &o.status, status_ja => ja, status_en => en,
                printed => o.printed_at.map(|t| time::local_text(t, zone)).unwrap_or_default() }
        })
        .collect();
    let page = Html(render("admin_orders.html", context! { csrf => &csrf.token, orders => rows, q => &search.q, status => &search.status }));
    Ok(csrf.respond(page))
}

pub async fn outbox(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&[])?;
    let csrf = Csrf::get(&state, &headers);
    let mut c = state.pool.acquire().await?;
    let zone = time::tz("Asia/Tokyo");
    // staff see what kind of mail went to whom and whether it left; bodies
    // (one-time links, initial passwords, print numbers) only in the demo,
    // where the outbox stands in for a mailbox, and each view is audited
    let demo = store::deployment_is_demo(&mut c).await? == Some(true);
    let rows = store::recent_mails(&mut c, 100).await?;
    let mails: Vec<_> = rows
        .iter()
        .map(|m| {
            let body = if demo { crate::mail::open_body(&state.seal, m).map(|(text, _)| text).unwrap_or_default() } else { String::new() };
            context! { subject => &m.subject, to => &m.to_addr, body, created => time::local_text(m.created_at, zone),
                       sent => m.sent_at.is_some(), attempts => m.attempts, error => m.last_error.clone().unwrap_or_default() }
        })
        .collect();
    if demo {
        store::audit(&mut c, &format!("staff:{}", staff.staff.login), "outbox.view_bodies", "demo outbox", time::now()).await?;
    }
    let page = Html(render("admin_outbox.html", context! { csrf => &csrf.token, mails, demo }));
    Ok(csrf.respond(page))
}

pub async fn order_detail(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff, Path(id): Path<i64>) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let mut c = state.pool.acquire().await?;
    let order = store::order(&mut c, id).await.map_err(|_| crate::error::AppError::PageNotFound)?;
    let lines: Vec<_> = store::order_lines(&mut c, id)
        .await?
        .iter()
        .map(|l| context! { name_ja => &l.name_ja, name_en => &l.name_en, copies => l.copies, amount => Yen(l.amount).to_string() })
        .collect();
    let zone = time::tz("Asia/Tokyo");
    let certificates: Vec<_> = store::certificates_of_order(&mut c, id)
        .await?
        .iter()
        .map(|x| {
            context! { id => x.id, serial => &x.serial, code => &x.verification_code,
                       revoked => x.revoked_at.map(|t| time::local_text(t, zone)), reason => &x.revoked_reason }
        })
        .collect();
    let (ja, en) = order_status(&order.status);
    // P-5: paid at a station's e-money terminal rather than from stored value
    let payment = match store::order_terminal_payment(&mut c, id).await? {
        Some((brand, txn, amount)) => format!("電子マネー端末 / e-money terminal: {brand} {} (txn {txn})", Yen(amount)),
        None => order.payment_method.clone(),
    };
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render(
        "admin_order.html",
        context! { csrf => &csrf.token, id, lines, certificates, status_ja => ja, status_en => en,
                   can_refund => matches!(order.status.as_str(), "paid" | "printed"), payment,
                   delivery => &order.delivery, store_user_number => &order.store_user_number,
                   system_fee => Yen(order.system_fee).to_string(), total => Yen(order.total).to_string() },
    ));
    Ok(csrf.respond(page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ReasonForm {
    csrf: String,
    reason: String,
}

pub async fn revoke_certificate(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<ReasonForm>,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    crate::certificates::revoke(&state.pool, &staff.staff, accounts::Client { ip: &ip }, id, &f.reason).await?;
    let mut c = state.pool.acquire().await?;
    let order_id: i64 = store::certificate_order(&mut c, id).await?;
    Ok(Redirect::to(&format!("/admin/orders/{order_id}")).into_response())
}

pub async fn service_breaks(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let mut c = state.pool.acquire().await?;
    let zone = time::tz("Asia/Tokyo");
    let breaks: Vec<_> = store::upcoming_breaks(&mut c, time::now())
        .await?
        .iter()
        .map(|b| {
            context! { id => b.id, kind => &b.kind, starts => time::local_text(b.starts_at, zone), ends => time::local_text(b.ends_at, zone),
                       note_ja => &b.note_ja, note_en => &b.note_en }
        })
        .collect();
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("admin_service.html", context! { csrf => &csrf.token, breaks }));
    Ok(csrf.respond(page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct BreakForm {
    csrf: String,
    kind: String,
    starts: String,
    ends: String,
    note_ja: String,
    note_en: String,
}

pub async fn add_service_break(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<BreakForm>,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    crate::service::add_break(&state.pool, &staff.staff, accounts::Client { ip: &ip }, &f.kind, &f.starts, &f.ends, &f.note_ja, &f.note_en).await?;
    Ok(Redirect::to("/admin/service").into_response())
}

pub async fn remove_service_break(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    crate::service::remove_break(&state.pool, &staff.staff, accounts::Client { ip: &ip }, id).await?;
    Ok(Redirect::to("/admin/service").into_response())
}

const LEAVING: [(&str, &str, &str); 4] =
    [("graduated", "卒業・修了", "graduated"), ("withdrew", "退学", "withdrew"), ("removed", "除籍", "removed"), ("enrolled", "在学生", "enrolled students")];

pub async fn catalogue(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let mut c = state.pool.acquire().await?;
    let mut types: Vec<_> = store::all_certificate_types(&mut c, 1)
        .await?
        .iter()
        .map(|t| {
            context! { id => t.id, code => &t.code, name_ja => &t.name_ja, name_en => &t.name_en, fee => t.fee, max_copies => t.max_copies,
                       leaving => t.leaving_types.split(',').map(str::trim).collect::<Vec<_>>(), faculty_codes => &t.faculty_codes,
                       grad_year_from => t.grad_year_from, grad_year_to => t.grad_year_to, active => t.active,
                       layout => &t.layout, language => &t.language, body_ja => &t.body_ja, body_en => &t.body_en }
        })
        .collect();
    types.push(context! { id => 0, code => "", name_ja => "", name_en => "", fee => 0, max_copies => 10, leaving => vec!["graduated"],
                          faculty_codes => "", active => true, layout => "certificate", language => "ja", body_ja => "", body_en => "" });
    let placeholders: Vec<String> = crate::wording::PLACEHOLDERS.iter().map(|p| format!("{{{}}} {} / {}", p.0, p.1, p.2)).collect();
    let leaving: Vec<[&str; 3]> = LEAVING.iter().map(|l| [l.0, l.1, l.2]).collect();
    let csrf = Csrf::get(&state, &headers);
    let has_seal = store::university_seal(&mut c, 1).await?.is_some();
    let p = store::offline_card_policy(&mut c, 1).await?;
    let stations = store::active_station_count(&mut c).await?;
    let policy = context! { offline_cards => p.offline_cards, floor_limit => p.offline_floor_limit, station_total => p.offline_station_total,
                            stations, floor_text => shomei_shared::Yen(p.offline_floor_limit).to_string(),
                            worst_case => shomei_shared::Yen(stations * p.offline_floor_limit).to_string() };
    let page = Html(render("admin_catalogue.html", context! { csrf => &csrf.token, types, leaving, placeholders, has_seal, policy }));
    Ok(csrf.respond(page))
}

/// one certificate type saved from the editor, checked field by field.
pub async fn save_catalogue(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<std::collections::HashMap<String, String>>,
) -> AppResult<Response> {
    use crate::error::AppError;
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, f.get("csrf").map(String::as_str).unwrap_or(""))?;
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let bad = |m: &str| AppError::Page(m.to_string());
    let id: Option<i64> = get("id").parse().ok().filter(|&i| i > 0);
    let fee: i64 = get("fee").parse().ok().filter(|f| (0..=100_000).contains(f)).ok_or_else(|| bad("手数料は0〜100,000円の整数にしてください。 / The fee is a whole number of yen from 0 to 100,000."))?;
    let max_copies: i64 = get("max_copies").parse().ok().filter(|m| (1..=100).contains(m)).ok_or_else(|| bad("最大通数は1〜100にしてください。 / Max copies is 1 to 100."))?;
    let year = |k: &str| -> Result<Option<i64>, AppError> {
        let v = get(k);
        if v.is_empty() {
            return Ok(None);
        }
        v.parse().ok().filter(|y| (1900..=2200).contains(y)).map(Some).ok_or_else(|| bad("卒業年は西暦4桁で入力してください。 / Give graduation years as four-digit years."))
    };
    let (from, to) = (year("grad_year_from")?, year("grad_year_to")?);
    if let (Some(a), Some(b)) = (from, to) {
        if a > b {
            return Err(bad("卒業年の範囲が逆です。 / The graduation year range is reversed."));
        }
    }
    let leaving: Vec<&str> = LEAVING.iter().filter(|l| f.contains_key(&format!("leaving_{}", l.0))).map(|l| l.0).collect();
    if leaving.is_empty() {
        return Err(bad("申込できる区分を1つ以上選んでください。 / Choose who may order it."));
    }
    let (code, name_ja, name_en) = (get("code"), get("name_ja"), get("name_en"));
    if code.is_empty() || name_ja.is_empty() || name_en.is_empty() || code.len() > 40 {
        return Err(bad("コードと名称（日本語・英語）を入力してください。 / Give a code and both names."));
    }
    let layout = match get("layout").as_str() {
        l @ ("certificate" | "transcript") => l.to_string(),
        _ => return Err(bad("様式を選んでください。 / Choose a layout.")),
    };
    let language = match get("language").as_str() {
        l @ ("ja" | "en") => l.to_string(),
        _ => return Err(bad("言語を選んでください。 / Choose a language.")),
    };
    let (body_ja, body_en) = (get("body_ja"), get("body_en"));
    for body in [&body_ja, &body_en] {
        crate::wording::check(body).map_err(|e| bad(&e))?;
    }
    let mut tx = store::begin_write(&state.pool).await?;
    let known: Vec<String> = store::faculties(&mut tx).await?.into_iter().map(|f| f.code).collect();
    let faculty_codes: Vec<String> = get("faculty_codes").split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if let Some(unknown) = faculty_codes.iter().find(|c| !known.contains(c)) {
        return Err(bad(&format!("学部コード {unknown} はありません。 / There is no faculty with the code {unknown}.")));
    }
    let t = store::CertificateType {
        id: id.unwrap_or(0),
        code,
        name_ja,
        name_en,
        fee,
        max_copies,
        leaving_types: leaving.join(","),
        faculty_codes: faculty_codes.join(","),
        grad_year_from: from,
        grad_year_to: to,
        active: f.contains_key("active"),
        layout,
        language,
        body_ja,
        body_en,
    };
    let saved = store::save_certificate_type(&mut tx, 1, id, &t).await.map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => bad("このコードはすでに使われています。 / This code is taken."),
        e => e.into(),
    })?;
    let ip = client.ip().to_string();
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "catalogue.save", &format!("certificate_type:{saved} fee:{fee}"), accounts::Client { ip: &ip }).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/catalogue").into_response())
}

async fn academic_page(state: &AppState, headers: &HeaderMap, imported: Option<usize>, row_errors: Vec<String>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let count = store::academic_import_count(&mut c).await?;
    let csrf = Csrf::get(state, headers);
    let status = if row_errors.is_empty() { axum::http::StatusCode::OK } else { axum::http::StatusCode::BAD_REQUEST };
    let page = Html(render(
        "admin_academic.html",
        context! { csrf => &csrf.token, count, imported, row_errors, columns => crate::academic::COLUMNS.join(",") },
    ));
    Ok((status, csrf.respond(page)).into_response())
}

pub async fn academic(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    academic_page(&state, &headers, None, Vec::new()).await
}

/// D-3: a course CSV becomes a new version, whole or not at all.
pub async fn import_academic(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    mut mp: axum::extract::Multipart,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let (mut csrf, mut file, mut name) = (String::new(), Vec::new(), String::new());
    let bad = |_| crate::error::AppError::Page(crate::messages::CHECK_INPUT.into());
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(bad)?,
            Some("file") => {
                name = field.file_name().unwrap_or_default().chars().take(100).collect();
                file = field.bytes().await.map_err(bad)?.to_vec();
            }
            _ => {}
        }
    }
    check_csrf(&state, &headers, &csrf)?;
    let Ok(text) = String::from_utf8(file) else {
        return academic_page(&state, &headers, None, vec!["ファイルが UTF-8 ではありません。 / The file is not UTF-8.".into()]).await;
    };
    let ip = client.ip().to_string();
    match crate::academic::import(&state.pool, Some(&staff.staff), accounts::Client { ip: &ip }, &name, &text).await? {
        Ok((_, n)) => academic_page(&state, &headers, Some(n), Vec::new()).await,
        Err(errors) => academic_page(&state, &headers, None, errors).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ReportQuery {
    from: String,
    to: String,
    group: String,
}

const JST_OFFSET_S: i64 = 9 * 3600;

/// The period asked for, as unix seconds [from, to) over Japan days; default: this month.
fn report_period(q: &ReportQuery) -> AppResult<(String, String, i64, i64)> {
    use chrono::Datelike as _;
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Tokyo).date_naive();
    let parse = |s: &str, default: chrono::NaiveDate| {
        if s.is_empty() {
            Ok(default)
        } else {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| crate::error::AppError::Page("日付は YYYY-MM-DD で入力してください。 / Give dates as YYYY-MM-DD.".into()))
        }
    };
    let from = parse(&q.from, today.with_day(1).unwrap_or(today))?;
    let to = parse(&q.to, today)?;
    if to < from {
        return Err(crate::error::AppError::Page("終了日は開始日以降にしてください。 / The end date comes after the start date.".into()));
    }
    let start = from.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp() - JST_OFFSET_S).unwrap_or(0);
    let end = (to + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp() - JST_OFFSET_S).unwrap_or(0);
    Ok((from.to_string(), to.to_string(), start, end))
}

const GROUPS: [(&str, &str, &str, &str, &str); 3] = [
    ("day", "日別", "By day", "日付", "Day"),
    ("type", "証明書の種類別", "By certificate type", "種類", "Type"),
    ("method", "支払方法別", "By payment method", "支払方法", "Method"),
];

/// orders and revenue by day, type and payment method.
pub async fn reports(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff, axum::extract::Query(q): axum::extract::Query<ReportQuery>) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let (from, to, start, end) = report_period(&q)?;
    let mut c = state.pool.acquire().await?;
    let mut out = Vec::new();
    for (group, tj, te, kj, ke) in GROUPS {
        let rows: Vec<_> = store::report(&mut c, group, start, end, JST_OFFSET_S)
            .await?
            .into_iter()
            .map(|r| context! { key => r.key, orders => r.orders, copies => r.copies, revenue_text => Yen(r.revenue).to_string() })
            .collect();
        out.push(context! { group, title_ja => tj, title_en => te, key_ja => kj, key_en => ke, rows });
    }
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("admin_reports.html", context! { csrf => &csrf.token, from, to, reports => out }));
    Ok(csrf.respond(page))
}

/// The same report as CSV (UTF-8 with BOM, so Excel in Japan opens it right).
pub async fn reports_csv(State(state): State<AppState>, staff: CurrentStaff, axum::extract::Query(q): axum::extract::Query<ReportQuery>) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let (from, to, start, end) = report_period(&q)?;
    let group = GROUPS.iter().find(|g| g.0 == q.group).map(|g| g.0).unwrap_or("day");
    let mut c = state.pool.acquire().await?;
    let rows = store::report(&mut c, group, start, end, JST_OFFSET_S).await?;
    let mut out = String::from("\u{feff}key,orders,copies,revenue_yen\r\n");
    for r in rows {
        let key = if r.key.contains([',', '"', '\n']) { format!("\"{}\"", r.key.replace('"', "\"\"")) } else { r.key };
        out.push_str(&format!("{key},{},{},{}\r\n", r.orders, r.copies, r.revenue));
    }
    let name = format!("attachment; filename=\"shomei-{group}-{from}-{to}.csv\"");
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (axum::http::header::CONTENT_DISPOSITION, name)],
        out,
    )
        .into_response())
}

/// the postal work list (addresses are personal data: each view is logged).
pub async fn mail_work_list(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let mut c = state.pool.acquire().await?;
    let zone = time::tz("Asia/Tokyo");
    let mut rows = Vec::new();
    for o in store::orders_to_post(&mut c).await? {
        let a = crate::orders::open_post_address(&state.seal, &o)?;
        rows.push(context! { id => o.id, paid => o.paid_at.map(|t| time::local_text(t, zone)), name => a.name, postal_code => a.postal_code,
                             address => a.address, phone => a.phone });
    }
    if !rows.is_empty() {
        let ip = client.ip().to_string();
        accounts::audit(&mut c, &format!("staff:{}", staff.staff.login), "personal_data.view", "postal work list", accounts::Client { ip: &ip }).await?;
    }
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("admin_mail.html", context! { csrf => &csrf.token, rows }));
    Ok(csrf.respond(page))
}

/// The order's PDF, for staff to print a postal order.
pub async fn order_pdf(State(state): State<AppState>, staff: CurrentStaff, Path(id): Path<i64>) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let mut c = state.pool.acquire().await?;
    let pdf = crate::orders::stored_pdf(&mut c, &state.seal, id).await?.ok_or(crate::error::AppError::PageNotFound)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/pdf".to_string()), (axum::http::header::CONTENT_DISPOSITION, format!("inline; filename=\"order-{id}.pdf\""))],
        pdf,
    )
        .into_response())
}

pub async fn mark_shipped(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    crate::orders::mark_shipped(&state.pool, &state.seal, &staff.staff, accounts::Client { ip: &ip }, id).await?;
    state.mail_wake.notify_one();
    Ok(Redirect::to("/admin/mail").into_response())
}

pub async fn refund_order(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<ReasonForm>,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client.ip().to_string();
    crate::orders::refund(&state.pool, &state.payment_providers(), state.storeprint.as_ref(), &staff.staff, accounts::Client { ip: &ip }, id, &f.reason).await?;
    Ok(Redirect::to(&format!("/admin/orders/{id}")).into_response())
}

/// D-2: the registrar uploads the university's seal (PNG); it is checked as
/// the PDFs will use it, and stamped on certificates ordered from now on.
pub async fn upload_seal(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    mut mp: axum::extract::Multipart,
) -> AppResult<Response> {
    use crate::error::AppError;
    staff.require(&["registrar"])?;
    let (mut csrf, mut file) = (String::new(), Vec::new());
    let too_big = |_| AppError::Page(SEAL_REFUSED.into());
    while let Some(field) = mp.next_field().await.map_err(too_big)? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(too_big)?,
            Some("seal") => file = field.bytes().await.map_err(too_big)?.to_vec(),
            _ => {}
        }
    }
    check_csrf(&state, &headers, &csrf)?;
    if let Err(e) = crate::documents::SealImage::from_png(&file) {
        tracing::info!(error = %e, "seal image refused");
        return Err(AppError::Page(SEAL_REFUSED.into()));
    }
    let mut tx = store::begin_write(&state.pool).await?;
    store::set_university_seal(&mut tx, 1, &file).await?;
    let ip = client.ip().to_string();
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "university.seal", &format!("{} bytes", file.len()), accounts::Client { ip: &ip }).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/catalogue?seal=saved").into_response())
}

/// P-3: the registrar sets whether stored value is accepted while a station
/// is offline, and its limits (policy b); stations get it with their next bundle.
pub async fn save_offline_policy(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<std::collections::HashMap<String, String>>,
) -> AppResult<Response> {
    use crate::error::AppError;
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, f.get("csrf").map(String::as_str).unwrap_or(""))?;
    let amount = |k: &str, max: i64| f.get(k).and_then(|v| v.trim().parse::<i64>().ok()).filter(|v| (0..=max).contains(v));
    let floor = amount("floor_limit", 100_000)
        .ok_or_else(|| AppError::Page("カード1枚の下限は0〜100,000円の整数にしてください。 / The floor limit is a whole number of yen from 0 to 100,000.".into()))?;
    let total = amount("station_total", 10_000_000)
        .ok_or_else(|| AppError::Page("発行機1台の合計上限は0〜10,000,000円の整数にしてください。 / The station total is a whole number of yen from 0 to 10,000,000.".into()))?;
    let p = store::OfflineCardPolicy { offline_cards: f.get("offline_cards").is_some_and(|v| v == "1"), offline_floor_limit: floor, offline_station_total: total };
    let mut tx = store::begin_write(&state.pool).await?;
    store::set_offline_card_policy(&mut tx, 1, &p).await?;
    let ip = client.ip().to_string();
    let what = format!("cards {} floor {floor} total {total}", if p.offline_cards { "on" } else { "off" });
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "university.offline_policy", &what, accounts::Client { ip: &ip }).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/catalogue?offline=saved").into_response())
}

const SEAL_REFUSED: &str = "公印の画像は PNG（2 MB以下、一辺2000ピクセル以下）にしてください。 / The seal image must be a PNG of at most 2 MB and 2000 pixels a side.";

/// The current seal image, for the registrar to see.
pub async fn seal_image(State(state): State<AppState>, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let mut c = state.pool.acquire().await?;
    let png = store::university_seal(&mut c, 1).await?.ok_or(crate::error::AppError::PageNotFound)?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/png")], png).into_response())
}

async fn school_register_page(state: &AppState, headers: &HeaderMap, imported: Option<usize>, row_errors: Vec<String>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let count = store::school_register_versions(&mut c).await?;
    let csrf = Csrf::get(state, headers);
    let status = if row_errors.is_empty() { axum::http::StatusCode::OK } else { axum::http::StatusCode::BAD_REQUEST };
    let page = Html(render(
        "admin_school_register.html",
        context! { csrf => &csrf.token, count, imported, row_errors, columns => crate::school_register::COLUMNS.join(",") },
    ));
    Ok((status, csrf.respond(page)).into_response())
}

/// D-3: the registrar's school register page.
pub async fn school_register(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    school_register_page(&state, &headers, None, Vec::new()).await
}

/// D-3: a school register CSV, imported whole as a new version or not at all.
pub async fn import_school_register(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    mut mp: axum::extract::Multipart,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let (mut csrf, mut file, mut name) = (String::new(), Vec::new(), String::new());
    let bad = |_| crate::error::AppError::Page(crate::messages::CHECK_INPUT.into());
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(bad)?,
            Some("file") => {
                name = field.file_name().unwrap_or_default().chars().take(100).collect();
                file = field.bytes().await.map_err(bad)?.to_vec();
            }
            _ => {}
        }
    }
    check_csrf(&state, &headers, &csrf)?;
    let Ok(text) = String::from_utf8(file) else {
        return school_register_page(&state, &headers, None, vec!["ファイルが UTF-8 ではありません。 / The file is not UTF-8.".into()]).await;
    };
    let ip = client.ip().to_string();
    match crate::school_register::import(&state.pool, &state.seal, &staff.staff, accounts::Client { ip: &ip }, &name, &text).await? {
        Ok((_, n)) => school_register_page(&state, &headers, Some(n), Vec::new()).await,
        Err(errors) => school_register_page(&state, &headers, None, errors).await,
    }
}
