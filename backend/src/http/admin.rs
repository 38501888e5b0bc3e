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

/// An order of the staff member's university, else "not found": another
/// university's orders do not exist for them.
async fn own_order(c: &mut store::Conn, staff: &CurrentStaff, id: i64) -> AppResult<()> {
    match store::order_university_id(c, id).await? {
        Some(u) if u == staff.university() => Ok(()),
        _ => Err(crate::error::AppError::PageNotFound),
    }
}

/// A station the staff member may see (their university's; any for a
/// platform operator), else "not found".
async fn own_station(c: &mut store::Conn, staff: &CurrentStaff, id: i64) -> AppResult<store::Station> {
    store::station(c, id).await?.filter(|s| staff.fleet().is_none_or(|u| u == s.university_id)).ok_or(crate::error::AppError::PageNotFound)
}

/// Whether `role` may open the page `path` (a GET route of the role table).
fn may_open(staff: &store::Staff, path: &str) -> bool {
    super::roles::rule(&axum::http::Method::GET, path).is_some_and(|r| r.allows(&staff.role, staff.platform))
}

/// Today in Japan: its date and its [start, end) in unix seconds.
fn japan_today() -> (chrono::NaiveDate, i64, i64) {
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Tokyo).date_naive();
    let (start, end) = japan_day(today);
    (today, start, end)
}

/// A day in Japan as [start, end) in unix seconds.
fn japan_day(day: chrono::NaiveDate) -> (i64, i64) {
    let start = day.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp() - JST_OFFSET_S).unwrap_or(0);
    (start, start + 86_400)
}

/// The dashboard after login: the work waiting, each a link to its list.
/// Each staff member sees the items whose lists their role may open.
pub async fn home(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    let role = &staff.staff;
    let (today, start, end) = japan_today();
    let mut c = state.pool.acquire().await?;
    let n = store::dashboard_counts(&mut c, staff.university(), start, end).await?;
    let mut items = Vec::new();
    let mut item = |id: &str, href: String, count: i64, ja: &str, en: &str, extra: Option<(String, String)>| {
        let (extra_ja, extra_en) = extra.unzip();
        items.push(context! { id, href, count, ja, en, extra_ja, extra_en, waiting => count > 0 });
    };
    if may_open(role, "/admin/registrations") {
        item("applications", "/admin/registrations?status=pending".into(), n.applications, "審査待ちの利用申請", "applications waiting for review", None);
    }
    if may_open(role, "/admin/orders") {
        item("to-post", "/admin/orders?status=paid&delivery=post".into(), n.to_post, "郵送待ちの申込（支払済・未発送）", "postal orders to post (paid, not posted)", None);
        item("held", "/admin/orders?status=held".into(), n.held, "確認待ちで止めている申込", "orders held for the registrar", None);
        item("refunds", "/admin/orders?refund=due".into(), n.refunds_due, "窓口で返金する申込", "refunds to pay back at the office", None);
        item("refunds-failing", "/admin/orders?refund=failing".into(), n.refunds_failing, "自動返金ができていない申込", "automatic refunds that could not be made", None);
    }
    let mut stations = Vec::new();
    if may_open(role, "/admin/stations") {
        let offline_after_s = state.config.stations.offline_after_s;
        let mut list: Vec<(store::Station, crate::stations::fleet::Condition)> = store::stations_of(&mut c, staff.fleet())
            .await?
            .into_iter()
            .map(|s| {
                let cond = crate::stations::fleet::condition(&s, offline_after_s);
                (s, cond)
            })
            .filter(|(_, cond)| crate::stations::fleet::needs_attention(cond.level))
            .collect();
        list.sort_by_key(|(s, cond)| (crate::stations::fleet::urgency(cond.level), s.id));
        stations = list.iter().map(|(s, cond)| context! { id => s.id, name => &s.name, level => cond.level, ja => &cond.ja, en => &cond.en }).collect();
        item("stations", "/admin/stations?show=attention".into(), i64::try_from(stations.len()).unwrap_or(i64::MAX), "対応が必要な発行機", "stations needing attention", None);
    }
    if may_open(role, "/admin/orders") {
        let received = Yen(n.day_received).to_string();
        item("today", format!("/admin/orders?day={today}"), n.day_orders, "本日の申込", "orders placed today",
             Some((format!("入金済 {received}"), format!("{received} received"))));
    }
    // platform operators: the universities on the service (their page is not in every staff member's menu)
    if may_open(role, "/admin/universities") {
        let count = store::university_count(&mut c).await?;
        items.push(context! { id => "universities", href => "/admin/universities", count, ja => "このサービスの大学", en => "universities on this service",
                              extra_ja => None::<String>, extra_en => None::<String>, waiting => false });
    }
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("admin_dashboard.html", context! { csrf => &csrf.token, items, stations, today => today.to_string(), name => &staff.staff.display_name }));
    Ok(csrf.respond(page))
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
        // every role lands on the dashboard, which shows what their role may open
        Ok(LoggedIn { user_id: None, staff_id: Some(id), redirect: "/admin" })
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
fn station_row(s: &store::Station, offline_after_s: i64, universities: &Universities) -> minijinja::Value {
    let zone = time::tz("Asia/Tokyo");
    let c = crate::stations::fleet::condition(s, offline_after_s);
    let markers: Vec<shomei_shared::api::Marker> = serde_json::from_str(&s.markers).unwrap_or_default();
    let supplies = markers.iter().map(|m| if m.level >= 0 { format!("{} {}%", m.name, m.level) } else { format!("{} ?", m.name) }).collect::<Vec<_>>().join(", ");
    context! {
        id => s.id, name => &s.name, status => &s.status, university => universities.name(s.university_id), version => s.version.clone().unwrap_or_default(),
        online => stations::is_online(s, offline_after_s),
        level => c.level, condition_ja => c.ja, condition_en => c.en,
        // the printer's state and reasons in words, never its keywords (`media-empty-report`)
        printer_state => printer_state_text(s),
        printer_reasons => printer_reasons_text(s),
        supplies, media => media_text(&s.media_ready),
        no_a4 => crate::stations::fleet::lacks_a4(&s.media_ready),
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

/// The universities' names, for a platform operator's fleet view (which
/// shows every university's stations); empty for a university's own staff.
struct Universities(Vec<store::Named>);

impl Universities {
    async fn load(c: &mut store::Conn, staff: &CurrentStaff) -> AppResult<Universities> {
        Ok(Universities(if staff.fleet().is_none() { store::universities(c).await? } else { Vec::new() }))
    }
    fn name(&self, id: i64) -> String {
        self.0.iter().find(|u| u.id == id).map(|u| format!("{} / {}", u.name_ja, u.name_en)).unwrap_or_default()
    }
}

/// The printer's state in words ("待機中 / idle").
fn printer_state_text(s: &store::Station) -> String {
    match crate::stations::fleet::state_words(s.printer_state.as_deref()) {
        ("-", _) => "-".into(),
        (ja, en) => format!("{ja} / {en}"),
    }
}

/// The printer's reasons in words ("用紙切れ / out of paper"); "-" before its first report.
fn printer_reasons_text(s: &store::Station) -> String {
    match &s.printer_reasons {
        None => "-".into(),
        Some(r) => {
            let (ja, en) = crate::stations::fleet::reasons_words(r);
            format!("{ja} / {en}")
        }
    }
}

/// The paper loaded in words ("A4・封筒 / A4, envelope").
fn media_text(media_ready: &str) -> String {
    match crate::stations::fleet::media_words(media_ready) {
        // "-" (not reported) and "A4" read the same in both languages
        (ja, en) if ja == en => ja,
        (ja, en) => format!("{ja} / {en}"),
    }
}

/// A print number as staff see it: only its last four digits (`•••• •••• 9012`).
/// The number prints the certificate for whoever types it, and the order's
/// link already tells staff which one it is.
fn masked_number(n: Option<&str>) -> String {
    n.and_then(|n| PrintNumber::parse(n).ok()).map(|n| n.masked()).unwrap_or_default()
}

/// What a station claimed, in words (its claims are refused by `claims`).
fn claim_words(kind: &str) -> &'static str {
    match kind {
        "terminal_payment" => "電子マネー端末の支払 / e-money terminal payment",
        "offline_print" => "通信断中の印刷 / print while offline",
        "offline_debit" => "通信断中のICカード支払 / IC card payment while offline",
        "print_report" => "印刷の報告 / print report",
        _ => "その他の申告 / other claim",
    }
}

/// The fleet page's filter: `attention` (bad or warn) or everything.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct StationsQuery {
    show: String,
}

async fn stations_page(state: &AppState, headers: &HeaderMap, staff: &CurrentStaff, new: Option<(String, String)>, show: &str) -> AppResult<Response> {
    let csrf = Csrf::get(state, headers);
    let mut c = state.pool.acquire().await?;
    let universities = Universities::load(&mut c, staff).await?;
    let offline_after_s = state.config.stations.offline_after_s;
    // most urgent first: bad, then warn, then ok, then out of service
    let mut list: Vec<(store::Station, &'static str)> =
        store::stations_of(&mut c, staff.fleet()).await?.into_iter().map(|s| { let level = crate::stations::fleet::condition(&s, offline_after_s).level; (s, level) }).collect();
    list.sort_by_key(|(s, level)| (crate::stations::fleet::urgency(level), s.id));
    let attention = list.iter().filter(|(_, level)| crate::stations::fleet::needs_attention(level)).count();
    let total = list.len();
    let show = if show == "attention" { "attention" } else { "all" };
    let rows: Vec<_> = list
        .iter()
        .filter(|(_, level)| show == "all" || crate::stations::fleet::needs_attention(level))
        .map(|(s, _)| station_row(s, offline_after_s, &universities))
        .collect();
    let zone = time::tz("Asia/Tokyo");
    let duplicates: Vec<_> = store::duplicate_prints(&mut c, staff.fleet())
        .await?
        .iter()
        .map(|d| context! { order_id => d.order_id, number => masked_number(d.print_number.as_deref()), station => &d.station, at => time::local_text(d.printed_at, zone) })
        .collect();
    let paid_twice: Vec<_> = store::duplicate_debits(&mut c, staff.fleet())
        .await?
        .iter()
        .map(|d| context! { order_id => d.order_id, number => masked_number(d.print_number.as_deref()), station => &d.station,
                            card => &d.card_uid, amount => shomei_shared::Yen(d.amount).to_string(), at => time::local_text(d.debited_at, zone) })
        .collect();
    let refused: Vec<_> = store::refused_claims(&mut c, staff.fleet())
        .await?
        .iter()
        .map(|r| context! { at => time::local_text(r.received_at, zone), station => &r.station, kind => claim_words(&r.kind), order_id => r.order_id, reason => &r.reason })
        .collect();
    let alert_emails = store::university_alert_emails(&mut c, staff.university()).await?;
    let (new_name, new_code) = new.unzip();
    let page = Html(render(
        "admin_stations.html",
        context! { csrf => &csrf.token, stations => rows, duplicates, paid_twice, refused, show, attention, total,
                   new_name, new_code, code_ttl_h => state.config.stations.enrolment_code_ttl_s / 3600, alert_emails },
    ));
    Ok(csrf.respond(page))
}

/// The fleet page's live data (polled by its script every few seconds).
pub async fn stations_json(State(state): State<AppState>, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["operator"])?;
    let mut c = state.pool.acquire().await?;
    let universities = Universities::load(&mut c, &staff).await?;
    let rows: Vec<_> = store::stations_of(&mut c, staff.fleet()).await?.iter().map(|s| station_row(s, state.config.stations.offline_after_s, &universities)).collect();
    Ok(axum::Json(serde_json::json!({ "stations": rows, "at": time::now() })).into_response())
}

/// One station: its condition and the last 24 hours as charts.
pub async fn station_detail(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff, Path(id): Path<i64>) -> AppResult<Response> {
    staff.require(&["operator"])?;
    let mut c = state.pool.acquire().await?;
    let s = own_station(&mut c, &staff, id).await?;
    let universities = Universities::load(&mut c, &staff).await?;
    drop(c);
    let ch = crate::stations::fleet::charts(&state.pool, id).await?;
    let supply: Vec<i64> = ch.supply.iter().map(|l| l.unwrap_or(0)).collect();
    let charts = [
        ("online", "稼働（1時間あたりの分） / Online minutes per hour", crate::stations::fleet::bar_svg("Online minutes per hour, last 24 hours", &ch.online_minutes, 60, "#2a7d4f")),
        ("jobs", "印刷数（1時間ごと） / Jobs printed per hour", crate::stations::fleet::bar_svg("Jobs printed per hour, last 24 hours", &ch.jobs, ch.jobs.iter().copied().max().unwrap_or(1).max(5), "#2456a6")),
        ("supply", "トナー・用紙の残量（%） / Lowest supply level (%)", crate::stations::fleet::bar_svg("Lowest supply level per hour, per cent", &supply, 100, "#8a5a00")),
        ("blocked", "印刷不可の時間（分） / Minutes unable to print", crate::stations::fleet::bar_svg("Minutes per hour the printer could not print", &ch.blocked_minutes, 60, "#b3261e")),
    ];
    let charts: Vec<_> = charts.into_iter().map(|(id, title, svg)| context! { id, title, svg }).collect();
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render("admin_station.html", context! { csrf => &csrf.token, s => station_row(&s, state.config.stations.offline_after_s, &universities), charts }));
    Ok(csrf.respond(page))
}

pub async fn stations(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: CurrentStaff,
    axum::extract::Query(q): axum::extract::Query<StationsQuery>,
) -> AppResult<Response> {
    staff.require(&["operator"])?;
    stations_page(&state, &headers, &staff, None, &q.show).await
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
        stations::create_enrolment(&state.pool, staff.staff.university_id, &f.name, Some(staff.staff.id), state.config.stations.enrolment_code_ttl_s).await?;
    stations_page(&state, &headers, &staff, Some((f.name.trim().to_string(), code)), "all").await
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
    own_station(&mut *state.pool.acquire().await?, &staff, id).await?;
    stations::revoke(&state.pool, id, &format!("staff:{}", staff.staff.login)).await?;
    Ok(Redirect::to("/admin/stations").into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AlertsForm {
    csrf: String,
    alert_emails: String,
}

/// Operators set who is mailed about their university's stations.
pub async fn save_alert_emails(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<AlertsForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let list = crate::stations::fleet::split_addresses(&f.alert_emails);
    if list.len() > 20 || list.iter().any(|a| !crate::mail::valid_email(a)) {
        return Err(crate::error::AppError::Page(
            "メールアドレスを正しい形式で、カンマ区切りで20件まで入力してください。 / Give up to 20 valid e-mail addresses, separated by commas.".into(),
        ));
    }
    let joined = list.join(", ");
    let mut tx = store::begin_write(&state.pool).await?;
    store::set_university_alert_emails(&mut tx, staff.university(), &joined).await?;
    let ip = client.ip().to_string();
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "stations.alert_emails", &format!("{} addresses", list.len()), accounts::Client { ip: &ip }).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/stations?show=all").into_response())
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
    own_station(&mut c, &staff, id).await?;
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
    own_station(&mut c, &staff, id).await?;
    let n = store::request_test_page(&mut c, id).await?.ok_or(crate::error::AppError::PageNotFound)?;
    store::audit(&mut c, &format!("staff:{}", staff.staff.login), "station.test_page.request", &format!("{id} #{n}"), time::now()).await?;
    Ok(Redirect::to(&format!("/admin/stations/{id}")).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OrderSearch {
    q: String,
    status: String,
    delivery: String,
    payment: String,
    /// `due`: refunds the office still pays back.
    refund: String,
    /// A day in Japan, YYYY-MM-DD: orders placed that day.
    day: String,
}

const ORDER_STATUSES: [&str; 6] = ["awaiting_payment", "paid", "printed", "held", "expired", "cancelled"];
const DELIVERIES: [(&str, &str, &str); 4] =
    [("campus", "学内で印刷", "print on campus"), ("store", "コンビニで印刷", "print at a store"), ("post", "郵送", "by post"), ("digital", "電子証明書（PDF）", "digital (signed PDF)")];
const PAYMENTS: [(&str, &str, &str); 4] = [
    ("card", "ICカード", "IC card"),
    ("paypal", "クレジットカード（PayPal）", "credit card (PayPal)"),
    ("smartpit", "コンビニ払い（Smart Pit）", "cash at a store (Smart Pit)"),
    ("university", "大学が発行（卒業日）", "issued by the university (graduation day)"),
];

/// A keyword of one of the lists above in words; an unknown one as "unknown".
fn words_of(list: &[(&'static str, &'static str, &'static str)], key: &str) -> (&'static str, &'static str) {
    list.iter().find(|x| x.0 == key).map(|x| (x.1, x.2)).unwrap_or(("不明", "unknown"))
}

/// An order's status as staff read it, by its delivery: a paid postal order
/// waits to be posted, a refunded one is refunded rather than "cancelled".
fn status_words(status: &str, delivery: &str, refunded: bool) -> (&'static str, &'static str) {
    match (status, delivery) {
        ("paid", "post") => ("支払済・発送待ち", "paid, waiting to be posted"),
        ("printed", "post") => ("発送済", "posted"),
        ("paid", "store") => ("支払済・コンビニ印刷待ち", "paid, to print at a store"),
        ("printed", "store") => ("コンビニで印刷済", "printed at a store"),
        ("paid", "digital") => ("支払済・電子証明書を交付", "paid, delivered as a signed PDF"),
        ("cancelled", _) if refunded => ("返金済", "refunded"),
        _ => order_status(status),
    }
}

/// What paid for an order, in words: the IC card (its last four), the
/// station's e-money terminal, PayPal or Smart Pit; "-" while unpaid.
fn paid_with(o: &store::AdminOrderRow) -> (String, String) {
    let paid = matches!(o.status.as_str(), "paid" | "printed") || o.refunded_at.is_some();
    if let Some(brand) = &o.terminal_brand {
        return (format!("電子マネー端末（{brand}）"), format!("e-money terminal ({brand})"));
    }
    if !paid {
        return ("-".into(), "-".into());
    }
    match o.payment_method.as_str() {
        "card" => match &o.card_uid {
            Some(uid) => {
                let last4: String = uid.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
                (format!("ICカード …{last4}"), format!("IC card …{last4}"))
            }
            None => ("ICカード".into(), "IC card".into()),
        },
        "paypal" => ("PayPal".into(), "PayPal".into()),
        "smartpit" => ("Smart Pit（コンビニ）".into(), "Smart Pit (store)".into()),
        _ => ("-".into(), "-".into()),
    }
}

pub async fn orders(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: CurrentStaff,
    axum::extract::Query(search): axum::extract::Query<OrderSearch>,
) -> AppResult<Response> {
    staff.require(&["registrar", "operator"])?;
    // an unknown filter value filters nothing rather than everything away
    let pick = |list: &[&'static str], v: &str| list.iter().copied().find(|x| *x == v).unwrap_or("");
    let status = pick(&ORDER_STATUSES, &search.status);
    let delivery = pick(&DELIVERIES.map(|d| d.0), &search.delivery);
    let payment = pick(&PAYMENTS.map(|p| p.0), &search.payment);
    let refund_due = search.refund == "due";
    let refund_failing = search.refund == "failing";
    let day = chrono::NaiveDate::parse_from_str(search.day.trim(), "%Y-%m-%d").ok();
    let filter = store::OrderFilter { university_id: staff.university(), q: &search.q, status, delivery, payment, refund_due, refund_failing, placed: day.map(japan_day) };
    let csrf = Csrf::get(&state, &headers);
    let mut c = state.pool.acquire().await?;
    let zone = time::tz("Asia/Tokyo");
    let rows: Vec<_> = store::admin_orders(&mut c, &filter, 200)
        .await?
        .iter()
        .map(|o| {
            let (ja, en) = status_words(&o.status, &o.delivery, o.refunded_at.is_some());
            let (delivery_ja, delivery_en) = words_of(&DELIVERIES, &o.delivery);
            let (payment_ja, payment_en) = words_of(&PAYMENTS, &o.payment_method);
            let (paid_ja, paid_en) = paid_with(o);
            context! { id => o.id, created => time::local_text(o.created_at, zone),
                // the number and any funded card print the certificate: staff see only its end
                number => masked_number(o.print_number.as_deref()),
                customer => &o.customer, student_no => &o.student_no, email => &o.email,
                delivery_ja, delivery_en, payment_ja, payment_en, paid_ja, paid_en,
                station => o.station.clone().unwrap_or_default(),
                total => Yen(o.total).to_string(), status => &o.status, status_ja => ja, status_en => en,
                refund_due => o.refund_due,
                printed => o.printed_at.map(|t| time::local_text(t, zone)).unwrap_or_default() }
        })
        .collect();
    let options = |list: &[(&'static str, &'static str, &'static str)]| list.iter().map(|x| [x.0, x.1, x.2]).collect::<Vec<_>>();
    let statuses: Vec<[&str; 3]> = ORDER_STATUSES.iter().map(|s| { let (ja, en) = order_status(s); [*s, ja, en] }).collect();
    let page = Html(render(
        "admin_orders.html",
        context! { csrf => &csrf.token, orders => rows, q => &search.q, status, delivery, payment, refund_due, refund_failing,
                   day => day.map(|d| d.to_string()), statuses, deliveries => options(&DELIVERIES), payments => options(&PAYMENTS) },
    ));
    Ok(csrf.respond(page))
}

pub async fn outbox(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    let csrf = Csrf::get(&state, &headers);
    let mut c = state.pool.acquire().await?;
    let zone = time::tz("Asia/Tokyo");
    // (platform operators only, by the role table: the outbox holds every university's mail)
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

/// What the order page was sent back with: `release` = `released` or `still-held`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OrderPageQuery {
    release: String,
}

pub async fn order_detail(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    axum::extract::Query(q): axum::extract::Query<OrderPageQuery>,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let mut c = state.pool.acquire().await?;
    own_order(&mut c, &staff, id).await?;
    let order = store::order(&mut c, id).await.map_err(|_| crate::error::AppError::PageNotFound)?;
    // a refund the office pays back: the bank account the user gave (personal data: each view is logged)
    let bank = crate::payments::refunds::open_bank_details(&state.seal, &order)?.map(|b| {
        let (type_ja, type_en) = b.account_type_words();
        context! { bank => b.bank, branch => b.branch, type_ja, type_en, number => b.number, holder => b.holder }
    });
    if bank.is_some() {
        let ip = client.ip().to_string();
        accounts::audit(&mut c, &format!("staff:{}", staff.staff.login), "personal_data.view", &format!("refund bank details order:{id}"), accounts::Client { ip: &ip }).await?;
    }
    let (way_ja, way_en) = crate::payments::refunds::Way::of(&order).words();
    let release_notice = match q.release.as_str() {
        "released" => Some(("released", "確認待ちを解除しました。利用者にメールで知らせました。", "Released: the order goes ahead and the user was mailed.")),
        "still-held" => Some(("still-held", "まだ印刷できない文字があるため、確認待ちのままです。", "Still held: some characters still cannot be printed.")),
        _ => None,
    };
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
    let refund = store::order_refund(&mut c, id).await?;
    let (ja, en) = status_words(&order.status, &order.delivery, refund.is_some());
    let refund_due = store::refund_due(&mut c, id).await?;
    let refund = refund.map(|(at, reason, paid_back)| {
        context! { at => time::local_text(at, zone), reason, paid_back => paid_back.map(|t| time::local_text(t, zone)), way_ja, way_en }
    });
    // P-5: paid at a station's e-money terminal rather than from stored value
    let payment = match store::order_terminal_payment(&mut c, id).await? {
        Some((brand, txn, amount)) => format!("電子マネー端末 / e-money terminal: {brand} {} (txn {txn})", Yen(amount)),
        None => {
            let (ja, en) = words_of(&PAYMENTS, &order.payment_method);
            format!("{ja} / {en}")
        }
    };
    let (delivery_ja, delivery_en) = words_of(&DELIVERIES, &order.delivery);
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render(
        "admin_order.html",
        context! { csrf => &csrf.token, id, lines, certificates, status => &order.status, status_ja => ja, status_en => en,
                   can_refund => matches!(order.status.as_str(), "paid" | "printed"), payment, refund_due, refund, bank,
                   held => order.status == "held", held_chars => &order.held_chars, release_notice,
                   refund_error => &order.refund_error,
                   delivery => &order.delivery, delivery_ja, delivery_en, store_user_number => &order.store_user_number,
                   postage => (order.postage > 0).then(|| Yen(order.postage).to_string()),
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
    {
        let mut c = state.pool.acquire().await?;
        let order_id = store::certificate_order(&mut c, id).await.map_err(|_| crate::error::AppError::PageNotFound)?;
        own_order(&mut c, &staff, order_id).await?;
    }
    let ip = client.ip().to_string();
    crate::orders::certificates::revoke(&state.pool, &staff.staff, accounts::Client { ip: &ip }, id, &f.reason).await?;
    let mut c = state.pool.acquire().await?;
    let order_id: i64 = store::certificate_order(&mut c, id).await?;
    Ok(Redirect::to(&format!("/admin/orders/{order_id}")).into_response())
}

pub async fn service_breaks(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let mut c = state.pool.acquire().await?;
    let zone = time::tz("Asia/Tokyo");
    let breaks: Vec<_> = store::upcoming_breaks(&mut c, staff.university(), time::now())
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
    crate::orders::service::add_break(&state.pool, &staff.staff, accounts::Client { ip: &ip }, &f.kind, &f.starts, &f.ends, &f.note_ja, &f.note_en).await?;
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
    crate::orders::service::remove_break(&state.pool, &staff.staff, accounts::Client { ip: &ip }, id).await?;
    Ok(Redirect::to("/admin/service").into_response())
}

const LEAVING: [(&str, &str, &str); 4] =
    [("graduated", "卒業・修了", "graduated"), ("withdrew", "退学", "withdrew"), ("removed", "除籍", "removed"), ("enrolled", "在学生", "enrolled students")];

pub async fn catalogue(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    let mut c = state.pool.acquire().await?;
    let mut types: Vec<_> = store::all_certificate_types(&mut c, staff.university())
        .await?
        .iter()
        .map(|t| {
            context! { id => t.id, code => &t.code, name_ja => &t.name_ja, name_en => &t.name_en, fee => t.fee, max_copies => t.max_copies,
                       leaving => t.leaving_types.split(',').map(str::trim).collect::<Vec<_>>(), faculty_codes => &t.faculty_codes,
                       grad_year_from => t.grad_year_from, grad_year_to => t.grad_year_to, active => t.active,
                       layout => &t.layout, language => &t.language, body_ja => &t.body_ja, body_en => &t.body_en, digital => t.digital }
        })
        .collect();
    types.push(context! { id => 0, code => "", name_ja => "", name_en => "", fee => 0, max_copies => 10, leaving => vec!["graduated"],
                          faculty_codes => "", active => true, layout => "certificate", language => "ja", body_ja => "", body_en => "" });
    let placeholders: Vec<String> = crate::documents::wording::PLACEHOLDERS.iter().map(|p| format!("{{{}}} {} / {}", p.0, p.1, p.2)).collect();
    let leaving: Vec<[&str; 3]> = LEAVING.iter().map(|l| [l.0, l.1, l.2]).collect();
    let csrf = Csrf::get(&state, &headers);
    let has_seal = store::university_seal(&mut c, staff.university()).await?.is_some();
    let p = store::offline_card_policy(&mut c, staff.university()).await?;
    let stations = store::active_station_count(&mut c, staff.university()).await?;
    let policy = context! { offline_cards => p.offline_cards, floor_limit => p.offline_floor_limit, station_total => p.offline_station_total,
                            stations, floor_text => shomei_shared::Yen(p.offline_floor_limit).to_string(),
                            worst_case => shomei_shared::Yen(stations * p.offline_floor_limit).to_string() };
    let university = store::university(&mut c, staff.university()).await?;
    let default_postage = state.config.orders.postage_yen;
    let fees = context! { system_fee => university.system_fee, postage => university.postage_or(default_postage),
                          default_postage, default_text => Yen(default_postage).to_string(), postage_is_default => university.postage.is_none(),
                          system_fee_text => Yen(university.system_fee).to_string(), postage_text => Yen(university.postage_or(default_postage)).to_string() };
    let office = store::university_office(&mut c, staff.university()).await?;
    let office = context! { mail_sender => office.mail_sender, desk_ja => office.desk_ja, desk_en => office.desk_en, hours_ja => office.hours_ja,
                            hours_en => office.hours_en, contact_phone => office.contact_phone, contact_email => office.contact_email };
    let faculties = store::faculties(&mut c).await?;
    let departments = store::departments(&mut c).await?;
    let faculties: Vec<_> = faculties
        .iter()
        .filter(|f| f.parent_id == staff.university())
        .map(|f| {
            let deps: Vec<_> = departments.iter().filter(|d| d.parent_id == f.id).map(|d| context! { code => &d.code, name_ja => &d.name_ja, name_en => &d.name_en }).collect();
            context! { id => f.id, code => &f.code, name_ja => &f.name_ja, name_en => &f.name_en, departments => deps }
        })
        .collect();
    let page = Html(render("admin_catalogue.html", context! { csrf => &csrf.token, types, leaving, placeholders, has_seal, policy, fees, office, faculties }));
    Ok(csrf.respond(page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct FeesForm {
    csrf: String,
    system_fee: String,
    postage: String,
}

const FEES_REFUSED: &str = "システム利用料と送料は0〜100,000円の整数で入力してください。 / The system usage fee and the postage are whole numbers of yen from 0 to 100,000.";

/// The registrar sets the system usage fee and the postage of postal orders;
/// orders placed from now on pay them (placed orders keep their price).
pub async fn save_fees(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<FeesForm>,
) -> AppResult<Response> {
    use crate::error::AppError;
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    let yen = |v: &str| v.trim().replace([',', '¥', '円'], "").parse::<i64>().ok().filter(|v| (0..=100_000).contains(v));
    let (Some(system_fee), Some(postage)) = (yen(&f.system_fee), yen(&f.postage)) else {
        return Err(AppError::Page(FEES_REFUSED.into()));
    };
    let mut tx = store::begin_write(&state.pool).await?;
    if !store::set_university_fees(&mut tx, staff.university(), system_fee, Some(postage)).await? {
        return Err(AppError::PageNotFound);
    }
    let ip = client.ip().to_string();
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "university.fees", &format!("system_fee:{system_fee} postage:{postage}"), accounts::Client { ip: &ip }).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/catalogue?fees=saved").into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OfficeForm {
    csrf: String,
    #[serde(flatten)]
    office: store::Office,
}

const OFFICE_REFUSED: &str = "窓口の各項目は100文字以内（記号 < > \" なし）、メールアドレスは正しい形式で入力してください。 / Keep each office field within 100 characters (no < > \"), and give a valid e-mail address.";

/// The registrar sets the university's office (named at the end of the mails
/// about its orders and on their pages) and the mails' sender name.
pub async fn save_office(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<OfficeForm>,
) -> AppResult<Response> {
    use crate::error::AppError;
    check_csrf(&state, &headers, &f.csrf)?;
    let o = f.office.trimmed();
    let fields = [&o.mail_sender, &o.desk_ja, &o.desk_en, &o.hours_ja, &o.hours_en, &o.contact_phone];
    let plain = |s: &String| s.chars().count() <= 100 && !s.chars().any(|c| c.is_control() || "<>\"".contains(c));
    if !fields.iter().all(|s| plain(s)) || !(o.contact_email.is_empty() || crate::mail::valid_email(&o.contact_email)) {
        return Err(AppError::Page(OFFICE_REFUSED.into()));
    }
    let mut tx = store::begin_write(&state.pool).await?;
    store::set_university_office(&mut tx, staff.university(), &o).await?;
    let ip = client.ip().to_string();
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "university.office", &o.desk_en, accounts::Client { ip: &ip }).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/catalogue?office=saved").into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct FacultyForm {
    csrf: String,
    /// 0: a new faculty; else a new department of this faculty.
    faculty: i64,
    code: String,
    name_ja: String,
    name_en: String,
}

const FACULTY_REFUSED: &str = "コードは英数字（- _ 可）20文字以内、名称は日本語と英語で各100文字以内で入力してください。 / The code is up to 20 letters, digits, - or _; the names up to 100 characters each, in Japanese and in English.";
const CODE_TAKEN: &str = "このコードはすでに使われています。 / This code is already in use.";

/// A university's faculties and departments, with the codes its directory
/// and school register use (a new university adds its own here).
pub async fn save_faculty(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<FacultyForm>,
) -> AppResult<Response> {
    use crate::error::AppError;
    check_csrf(&state, &headers, &f.csrf)?;
    let (code, ja, en) = (f.code.trim(), f.name_ja.trim(), f.name_en.trim());
    let code_ok = !code.is_empty() && code.len() <= 20 && code.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    let name_ok = |n: &str| !n.is_empty() && n.chars().count() <= 100 && !n.chars().any(|c| c.is_control() || "<>\"".contains(c));
    if !code_ok || !name_ok(ja) || !name_ok(en) {
        return Err(AppError::Page(FACULTY_REFUSED.into()));
    }
    let mut tx = store::begin_write(&state.pool).await?;
    let added = if f.faculty == 0 {
        store::insert_faculty(&mut tx, staff.university(), code, ja, en).await?
    } else {
        match store::insert_department(&mut tx, staff.university(), f.faculty, code, ja, en).await {
            Err(sqlx::Error::RowNotFound) => return Err(AppError::PageNotFound),
            r => r?,
        }
    };
    if added.is_none() {
        return Err(AppError::Page(CODE_TAKEN.into()));
    }
    let ip = client.ip().to_string();
    let what = if f.faculty == 0 { "catalogue.faculty" } else { "catalogue.department" };
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), what, code, accounts::Client { ip: &ip }).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/catalogue?faculty=saved#faculties").into_response())
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
        crate::documents::wording::check(body).map_err(|e| bad(&e))?;
    }
    let mut tx = store::begin_write(&state.pool).await?;
    let known: Vec<String> = store::faculties(&mut tx).await?.into_iter().filter(|f| f.parent_id == staff.university()).map(|f| f.code).collect();
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
        digital: f.contains_key("digital"),
    };
    let saved = store::save_certificate_type(&mut tx, staff.university(), id, &t).await.map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => bad("このコードはすでに使われています。 / This code is taken."),
        // another university's type (or none): not there for this registrar
        sqlx::Error::RowNotFound => AppError::PageNotFound,
        e => e.into(),
    })?;
    let ip = client.ip().to_string();
    accounts::audit(&mut tx, &format!("staff:{}", staff.staff.login), "catalogue.save", &format!("certificate_type:{saved} fee:{fee}"), accounts::Client { ip: &ip }).await?;
    tx.commit().await?;
    Ok(Redirect::to("/admin/catalogue").into_response())
}

async fn academic_page(state: &AppState, headers: &HeaderMap, staff: &CurrentStaff, imported: Option<usize>, row_errors: Vec<String>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let count = store::academic_import_count(&mut c, staff.university()).await?;
    let csrf = Csrf::get(state, headers);
    let status = if row_errors.is_empty() { axum::http::StatusCode::OK } else { axum::http::StatusCode::BAD_REQUEST };
    let page = Html(render(
        "admin_academic.html",
        context! { csrf => &csrf.token, count, imported, row_errors, columns => crate::registrar::academic::COLUMNS.join(",") },
    ));
    Ok((status, csrf.respond(page)).into_response())
}

pub async fn academic(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    academic_page(&state, &headers, &staff, None, Vec::new()).await
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
        return academic_page(&state, &headers, &staff, None, vec!["ファイルが UTF-8 ではありません。 / The file is not UTF-8.".into()]).await;
    };
    let ip = client.ip().to_string();
    match crate::registrar::academic::import(&state.pool, Some(&staff.staff), accounts::Client { ip: &ip }, &name, &text).await? {
        Ok((_, n)) => academic_page(&state, &headers, &staff, Some(n), Vec::new()).await,
        Err(errors) => academic_page(&state, &headers, &staff, None, errors).await,
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
        let rows: Vec<_> = store::report(&mut c, staff.university(), group, start, end, JST_OFFSET_S)
            .await?
            .into_iter()
            .map(|r| {
                // payment methods in words, not their keywords
                let key = if group == "method" { let (ja, en) = words_of(&PAYMENTS, &r.key); format!("{ja} / {en}") } else { r.key };
                context! { key, orders => r.orders, copies => r.copies, revenue_text => Yen(r.revenue).to_string() }
            })
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
    let rows = store::report(&mut c, staff.university(), group, start, end, JST_OFFSET_S).await?;
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
    for o in store::orders_to_post(&mut c, staff.university()).await? {
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
    own_order(&mut c, &staff, id).await?;
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
    own_order(&mut *state.pool.acquire().await?, &staff, id).await?;
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
    own_order(&mut *state.pool.acquire().await?, &staff, id).await?;
    let ip = client.ip().to_string();
    let providers = state.payment_providers();
    let refunds = crate::payments::refunds::Refunds {
        pool: &state.pool,
        seal: &state.seal,
        providers: &providers,
        storeprint: state.storeprint.as_ref(),
        public_url: &state.config.http.public_url,
    };
    crate::payments::refunds::refund(&refunds, &staff.staff, accounts::Client { ip: &ip }, id, &f.reason).await?;
    state.mail_wake.notify_one();
    Ok(Redirect::to(&format!("/admin/orders/{id}")).into_response())
}

/// The office paid a refund back by hand (Smart Pit cash, an e-money
/// terminal's payment): marked once, so it leaves the dashboard's count;
/// the user is mailed.
pub async fn refund_paid_back(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    own_order(&mut *state.pool.acquire().await?, &staff, id).await?;
    let ip = client.ip().to_string();
    crate::payments::refunds::mark_paid_back(&state.pool, &state.seal, &staff.staff, accounts::Client { ip: &ip }, id).await?;
    state.mail_wake.notify_one();
    Ok(Redirect::to(&format!("/admin/orders/{id}")).into_response())
}

/// A held order (a name no font could draw) released by staff once it is
/// fixed: its PDF is made again; if a character still cannot be drawn it
/// stays held and the order page says which.
pub async fn release_order(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    check_csrf(&state, &headers, &f.csrf)?;
    own_order(&mut *state.pool.acquire().await?, &staff, id).await?;
    let ip = client.ip().to_string();
    let providers = state.payment_providers();
    let released = crate::orders::release_held(
        &state.pool,
        &state.fonts,
        &state.seal,
        &providers,
        &state.config.http.public_url,
        &staff.staff,
        accounts::Client { ip: &ip },
        id,
    )
    .await?;
    state.mail_wake.notify_one();
    state.store_wake.notify_one();
    let outcome = match released {
        crate::orders::Released::Released => "released",
        crate::orders::Released::StillMissing(_) => "still-held",
    };
    Ok(Redirect::to(&format!("/admin/orders/{id}?release={outcome}")).into_response())
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
    store::set_university_seal(&mut tx, staff.university(), &file).await?;
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
    store::set_offline_card_policy(&mut tx, staff.university(), &p).await?;
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
    let png = store::university_seal(&mut c, staff.university()).await?.ok_or(crate::error::AppError::PageNotFound)?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/png")], png).into_response())
}

async fn school_register_page(state: &AppState, headers: &HeaderMap, staff: &CurrentStaff, imported: Option<usize>, row_errors: Vec<String>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let count = store::school_register_versions(&mut c, staff.university()).await?;
    let csrf = Csrf::get(state, headers);
    let status = if row_errors.is_empty() { axum::http::StatusCode::OK } else { axum::http::StatusCode::BAD_REQUEST };
    let page = Html(render(
        "admin_school_register.html",
        context! { csrf => &csrf.token, count, imported, row_errors, columns => crate::registrar::school_register::COLUMNS.join(",") },
    ));
    Ok((status, csrf.respond(page)).into_response())
}

/// D-3: the registrar's school register page.
pub async fn school_register(State(state): State<AppState>, headers: HeaderMap, staff: CurrentStaff) -> AppResult<Response> {
    staff.require(&["registrar"])?;
    school_register_page(&state, &headers, &staff, None, Vec::new()).await
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
        return school_register_page(&state, &headers, &staff, None, vec!["ファイルが UTF-8 ではありません。 / The file is not UTF-8.".into()]).await;
    };
    let ip = client.ip().to_string();
    match crate::registrar::school_register::import(&state.pool, &state.seal, &staff.staff, accounts::Client { ip: &ip }, &name, &text).await? {
        Ok((_, n)) => school_register_page(&state, &headers, &staff, Some(n), Vec::new()).await,
        Err(errors) => school_register_page(&state, &headers, &staff, None, errors).await,
    }
}

// ---------------------------------------------------------------- the platform's universities

async fn universities_page(state: &AppState, headers: &HeaderMap, created: Option<minijinja::Value>, error: Option<&str>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let universities: Vec<_> = store::university_overview(&mut c)
        .await?
        .iter()
        .map(|u| {
            let directory = match (u.directory_kind.as_deref(), u.id) {
                (Some("ldap"), _) => "LDAP",
                (None, crate::accounts::directory::FIRST_UNIVERSITY) => "設定ファイル / configuration file",
                _ => "名簿 / roster",
            };
            context! { id => u.id, name_ja => &u.name_ja, name_en => &u.name_en, stations => u.stations, staff => u.staff, types => u.types, directory }
        })
        .collect();
    let csrf = Csrf::get(state, headers);
    let status = if error.is_some() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    let page = Html(render("admin_universities.html", context! { csrf => &csrf.token, universities, created, error }));
    Ok((status, csrf.respond(page)).into_response())
}

/// Platform operators: the universities on the service.
pub async fn universities(State(state): State<AppState>, headers: HeaderMap, _staff: CurrentStaff) -> AppResult<Response> {
    universities_page(&state, &headers, None, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UniversityForm {
    csrf: String,
    name_ja: String,
    name_en: String,
    timezone: String,
    admin_login: String,
}

/// Platform operators add a university: usable at once, its administrator's
/// credentials shown once.
pub async fn add_university(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Form(f): Form<UniversityForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let u = crate::install::NewUniversity { name_ja: &f.name_ja, name_en: &f.name_en, timezone: f.timezone.trim(), admin_login: &f.admin_login };
    let actor = format!("staff:{}", staff.staff.login);
    match crate::install::add_university(&state, &u, &actor).await {
        Ok(a) => {
            let ip = client.ip().to_string();
            tracing::info!(university_id = a.university_id, by = %actor, ip, "university added in the panel");
            let created = context! { name => f.name_ja.trim(), name_en => f.name_en.trim(), login => &a.login, password => &a.initial_password,
                                     secret => &a.factor.secret_b32, uri => &a.factor.uri, codes => &a.factor.recovery_codes };
            universities_page(&state, &headers, Some(created), None).await
        }
        Err(crate::install::AddError::Refused(m)) => universities_page(&state, &headers, None, Some(m)).await,
        Err(crate::install::AddError::Other(e)) => Err(crate::error::AppError::Internal(e)),
    }
}

// ---------------------------------------------------------------- a university's directory

/// The directory settings page of one university (platform operators).
async fn directory_page(state: &AppState, headers: &HeaderMap, university: i64, saved: bool, error: Option<&str>) -> AppResult<Response> {
    use crate::accounts::directory::DirectorySource;
    let mut c = state.pool.acquire().await?;
    let Some(u) = store::universities(&mut c).await?.into_iter().find(|u| u.id == university) else { return Err(crate::error::AppError::PageNotFound) };
    drop(c);
    let source = state.directories.source(university).await.map_err(accounts::directory_failed)?.ok_or(crate::error::AppError::PageNotFound)?;
    let (kind, cfg, from_config) = match source {
        DirectorySource::Roster => ("roster", crate::accounts::directory::LdapConfig::default(), false),
        DirectorySource::Ldap(cfg) => ("ldap", cfg, false),
        DirectorySource::Config(d) => (if d.kind == "ldap" { "ldap" } else { "roster" }, d.ldap, true),
    };
    let has_bind_password = !cfg.bind_password.is_empty();
    let fields: Vec<_> = ldap_fields(&cfg).into_iter().map(|(name, ja, en, value)| context! { name, ja, en, value }).collect();
    let csrf = Csrf::get(state, headers);
    let status = if error.is_some() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    let page = Html(render(
        "admin_university_directory.html",
        context! { csrf => &csrf.token, id => university, name_ja => &u.name_ja, name_en => &u.name_en, kind, from_config, starttls => cfg.starttls,
                   ca_pem => &cfg.ca_pem, timeout_s => cfg.timeout_s, has_bind_password, fields, saved, error },
    ));
    Ok((status, csrf.respond(page)).into_response())
}

/// The LDAP settings a form shows and reads back: (field, label ja, label en, value).
fn ldap_fields(c: &crate::accounts::directory::LdapConfig) -> Vec<(&'static str, &'static str, &'static str, String)> {
    vec![
        ("url", "サーバURL", "Server URL", c.url.clone()),
        ("base_dn", "検索ベース", "Search base", c.base_dn.clone()),
        ("user_filter", "検索フィルタ（{user} がユーザID）", "Filter ({user} is the user ID)", c.user_filter.clone()),
        ("bind_dn", "検索用アカウントのDN（空欄: 匿名）", "Search account DN (empty: anonymous)", c.bind_dn.clone()),
        ("attr_uid", "ユーザIDの属性", "User ID attribute", c.attr_uid.clone()),
        ("attr_name_kanji", "氏名（漢字）の属性", "Name (kanji) attribute", c.attr_name_kanji.clone()),
        ("attr_name_kana", "氏名（カナ）の属性", "Name (kana) attribute", c.attr_name_kana.clone()),
        ("attr_name_roman", "氏名（ローマ字）の属性", "Name (roman) attribute", c.attr_name_roman.clone()),
        ("attr_student_no", "学籍番号の属性", "Student ID attribute", c.attr_student_no.clone()),
        ("attr_faculty", "学部コードの属性", "Faculty code attribute", c.attr_faculty.clone()),
        ("attr_department", "学科コードの属性", "Department code attribute", c.attr_department.clone()),
        ("attr_email", "メールアドレスの属性", "E-mail attribute", c.attr_email.clone()),
        ("attr_card_id", "学生証カードIDの属性（空欄: なし）", "Campus card ID attribute (empty: none)", c.attr_card_id.clone()),
    ]
}

pub async fn university_directory(State(state): State<AppState>, headers: HeaderMap, _staff: CurrentStaff, Path(id): Path<i64>) -> AppResult<Response> {
    directory_page(&state, &headers, id, false, None).await
}

/// Platform operators set a university's directory: its roster or its LDAP
/// server. The next login uses it, on every backend.
pub async fn save_university_directory(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    staff: CurrentStaff,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    use crate::accounts::directory::{DirectoryChoice, LdapConfig};
    let f: std::collections::HashMap<String, String> = pairs.into_iter().collect();
    let field = |name: &str| f.get(name).map(|v| v.trim().to_string()).unwrap_or_default();
    check_csrf(&state, &headers, &field("csrf"))?;
    let kind = field("kind");
    let choice = match kind.as_str() {
        "roster" => DirectoryChoice::Roster,
        "ldap" => {
            let cfg = LdapConfig {
                url: field("url"),
                starttls: f.contains_key("starttls"),
                ca_pem: field("ca_pem"),
                base_dn: field("base_dn"),
                user_filter: field("user_filter"),
                bind_dn: field("bind_dn"),
                attr_uid: field("attr_uid"),
                attr_name_kanji: field("attr_name_kanji"),
                attr_name_kana: field("attr_name_kana"),
                attr_name_roman: field("attr_name_roman"),
                attr_student_no: field("attr_student_no"),
                attr_faculty: field("attr_faculty"),
                attr_department: field("attr_department"),
                attr_email: field("attr_email"),
                attr_card_id: field("attr_card_id"),
                timeout_s: field("timeout_s").parse().unwrap_or(0),
                ..LdapConfig::default()
            };
            // empty: keep the stored one; "clear": an anonymous search from now on
            let typed = f.get("bind_password").cloned().unwrap_or_default();
            let bind_password = if f.contains_key("clear_bind_password") { Some(String::new()) } else { Some(typed).filter(|p| !p.is_empty()) };
            DirectoryChoice::Ldap { cfg, bind_password }
        }
        _ => return directory_page(&state, &headers, id, false, Some(crate::messages::CHECK_INPUT)).await,
    };
    match crate::accounts::directory::save_directory(&state.pool, &state.seal, id, choice).await? {
        Ok(true) => {
            let mut c = state.pool.acquire().await?;
            let ip = client.ip().to_string();
            accounts::audit(&mut c, &format!("staff:{}", staff.staff.login), "university.directory", &format!("university:{id} {kind}"), accounts::Client { ip: &ip }).await?;
            drop(c);
            directory_page(&state, &headers, id, true, None).await
        }
        Ok(false) => Err(crate::error::AppError::PageNotFound),
        Err(message) => directory_page(&state, &headers, id, false, Some(&message)).await,
    }
}
