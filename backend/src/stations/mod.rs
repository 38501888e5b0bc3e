//! Print stations (SPEC ST-2..ST-6): enrolment with one-time codes, the
//! station credential, heartbeats, and the redeem flow (reserve -> charge ->
//! document -> report).

pub mod claims;
pub mod fleet;
pub mod offline;
pub mod signing;

use crate::accounts::{random_token, token_hash};
use crate::error::{AppError, AppResult};
use crate::payments;
use crate::store::{self, RedeemStore, Station};
use crate::time::{self, now};
use shomei_shared::api::{
    AppliedOnce, ChargeResponse, EnrollResponse, Heartbeat, PrintOutcome, PrintReport, Reservation, ReservationLine, TerminalPayment,
};
use shomei_shared::{ErrorCode, PrintNumber, Yen};
use crate::store::Pool;
use std::collections::HashMap;
use std::sync::Mutex;

/// An enrolment code as staff type it on the station: 28 characters of
/// Crockford's base32 (140 random bits; no I, L, O, U to misread), in groups of 4.
pub fn new_enrolment_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> = (0..28).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect();
    chars.chunks(4).map(|g| g.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

fn normalise_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_uppercase()
}

/// Creates a station record and its one-time enrolment code (shown once).
pub async fn create_enrolment(
    pool: &Pool,
    university_id: i64,
    name: &str,
    staff_id: Option<i64>,
    ttl_s: i64,
) -> AppResult<(i64, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(AppError::Page(crate::messages::STATION_NAME.into()));
    }
    let code = new_enrolment_code();
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    let id = store::insert_station(&mut tx, university_id, name, t).await?;
    store::insert_enrolment_code(&mut tx, &token_hash(&normalise_code(&code)), id, staff_id, t, t + ttl_s).await?;
    let actor = staff_id.map(|s| format!("staff:{s}")).unwrap_or_else(|| "system".into());
    store::audit(&mut tx, &actor, "station.enrolment_code", &format!("station {id} {name}"), t).await?;
    tx.commit().await?;
    Ok((id, code))
}

/// Enrols a pending station with its one-time code. A code of a revoked
/// station, a used, expired or unknown one: refused alike.
pub async fn enroll(pool: &Pool, code: &str, version: &str, bundle_key: &str) -> AppResult<EnrollResponse> {
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    let station_id = store::consume_enrolment_code(&mut tx, &token_hash(&normalise_code(code)), t)
        .await?
        .ok_or_else(|| AppError::api(ErrorCode::EnrolmentCodeInvalid, "enrolment code unknown, used or expired"))?;
    let token = random_token();
    store::activate_station(&mut tx, station_id, &token_hash(&token), version, t).await?;
    let station = store::station(&mut tx, station_id).await?.ok_or(sqlx::Error::RowNotFound)?;
    store::audit(&mut tx, &format!("station:{station_id}"), "station.enrolled", version, t).await?;
    tx.commit().await?;
    tracing::info!(station_id, "station enrolled");
    Ok(EnrollResponse { station_id, name: station.name, token, bundle_key: bundle_key.to_string() })
}

/// Revokes a station, pending or active: its credential and every unused
/// enrolment code stop working at once.
pub async fn revoke(pool: &Pool, station_id: i64, actor: &str) -> AppResult<()> {
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    store::station(&mut tx, station_id).await?.ok_or_else(|| AppError::api(ErrorCode::NotFound, "no such station"))?;
    store::revoke_station(&mut tx, station_id).await?;
    store::audit(&mut tx, actor, "station.revoke", &station_id.to_string(), t).await?;
    tx.commit().await?;
    tracing::info!(station_id, "station revoked");
    Ok(())
}

/// The station behind a bearer token, if it is active.
/// (On SQLite, read on one of the desk's reader connections: a station's every call asks.)
pub async fn authenticate(pool: &Pool, desk: Option<&store::Desk>, token: &str) -> AppResult<Station> {
    match desk {
        Some(desk) => desk.read(|db| at_once(authenticate_in(db, token))),
        None => authenticate_in(&mut *pool.acquire().await?, token).await,
    }
}

async fn authenticate_in<S: RedeemStore>(c: &mut S, token: &str) -> AppResult<Station> {
    let s = c
        .station_by_token(&token_hash(token))
        .await?
        .ok_or_else(|| AppError::api(ErrorCode::Unauthorized, "unknown station credential"))?;
    if s.status != "active" {
        return Err(AppError::api(ErrorCode::StationRevoked, "this station was revoked"));
    }
    Ok(s)
}

/// The result of work on the desk's connection, which never waits (its store
/// answers each query in the calling thread).
fn at_once<T, E: From<AppError>>(work: impl std::future::Future<Output = Result<T, E>>) -> Result<T, E> {
    futures_util::FutureExt::now_or_never(work).unwrap_or_else(|| Err(AppError::Internal(anyhow::anyhow!("the station desk's store waited")).into()))
}

/// The universities' names (ja, en) that stations show, read from the
/// database at most once a minute: they seldom change, and a station's
/// heartbeat should not cost a query for them.
#[derive(Default)]
pub struct UniversityNames {
    cache: Mutex<(i64, HashMap<i64, (String, String)>)>,
}

impl UniversityNames {
    const FRESH_S: i64 = 60;

    pub async fn of(&self, pool: &Pool, university_id: i64) -> AppResult<(String, String)> {
        {
            let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if now() - c.0 < Self::FRESH_S {
                if let Some(n) = c.1.get(&university_id) {
                    return Ok(n.clone());
                }
            }
        }
        let mut conn = pool.acquire().await?;
        let names: HashMap<i64, (String, String)> = store::universities(&mut conn).await?.into_iter().map(|u| (u.id, (u.name_ja, u.name_en))).collect();
        let found = names.get(&university_id).cloned().unwrap_or_default();
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = (now(), names);
        Ok(found)
    }
}

/// Heartbeats are telemetry: each is kept in memory (the latest per station)
/// and written in one transaction per flush, so a thousand stations beating
/// every few seconds cost one commit a second, not one fsync each.
#[derive(Default)]
pub struct HeartbeatBuffer {
    pending: Mutex<HashMap<i64, (Heartbeat, i64)>>,
}

impl HeartbeatBuffer {
    pub fn push(&self, station_id: i64, hb: Heartbeat, at: i64) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(station_id, (hb, at));
    }

    /// Writes what arrived since the last flush; returns how many stations.
    pub async fn flush(&self, pool: &Pool) -> AppResult<usize> {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(0);
        }
        let mut tx = store::begin_write(pool).await?;
        for (station_id, (hb, t)) in &batch {
            record(&mut tx, *station_id, hb, *t).await?;
        }
        tx.commit().await?;
        Ok(batch.len())
    }
}

/// A heartbeat (ST-4): answered at once with the server's clock, stored by
/// the next flush of `buffer`.
pub fn heartbeat(buffer: &HeartbeatBuffer, station: &Station, hb: Heartbeat) -> i64 {
    let t = now();
    buffer.push(station.id, hb, t);
    t
}

async fn record(c: &mut store::Conn, station_id: i64, hb: &Heartbeat, t: i64) -> AppResult<()> {
    let reasons = hb.printer.reasons.join(",");
    let markers = serde_json::to_string(&hb.printer.markers).unwrap_or_else(|_| "[]".into());
    let supply_level = hb.printer.markers.iter().filter(|m| m.level >= 0).map(|m| i64::from(m.level)).min();
    store::record_heartbeat(
        c,
        station_id,
        &store::HeartbeatRow {
            version: &hb.version,
            printer_reachable: hb.printer.reachable,
            printer_state: &hb.printer.state,
            printer_reasons: &reasons,
            printer_message: &hb.printer.message,
            reader_present: hb.reader_present,
            outbox_len: hb.outbox_len as i64,
            clock_skew_s: hb.station_time - t,
            markers: &markers,
            media_ready: &hb.printer.media_ready.join(","),
            terminal_present: hb.terminal_present,
            disk_free_mb: hb.disk_free_mb.map(|d| d.min(i64::MAX as u64) as i64),
            uptime_s: hb.uptime_s.min(i64::MAX as u64) as i64,
            jobs_printed: hb.jobs_printed.min(i64::MAX as u64) as i64,
            printer_ready: hb.printer.can_print(),
            supply_level,
        },
        t,
    )
    .await?;
    Ok(())
}

/// Wrong print numbers per station and minute (O-6: guesses are throttled),
/// counted in the database like every throttle (one count across backends).
pub struct GuessThrottle(crate::accounts::Throttle);

impl GuessThrottle {
    const SCOPE: &'static str = "wrong-number";

    pub fn new(pool: Pool) -> GuessThrottle {
        GuessThrottle(crate::accounts::Throttle::new(pool, Self::SCOPE, 0))
    }
    /// The throttle's key of a station's wrong numbers (read in the call's transaction).
    fn key(station_id: i64) -> String {
        crate::accounts::Throttle::key_in(Self::SCOPE, &station_id.to_string())
    }
    async fn wrong(&self, station_id: i64) {
        self.0.fail(&station_id.to_string()).await
    }
}

/// Online health of a station for monitoring (ST-4).
pub fn is_online(s: &Station, offline_after_s: i64) -> bool {
    s.status == "active" && s.last_seen.is_some_and(|seen| now() - seen <= offline_after_s)
}

pub fn printer_ready(s: &Station) -> bool {
    let status = shomei_shared::api::PrinterStatus {
        reachable: s.printer_reachable.unwrap_or(false),
        state: s.printer_state.clone().unwrap_or_default(),
        reasons: s.printer_reasons.clone().unwrap_or_default().split(',').map(str::to_string).collect(),
        ..Default::default()
    };
    status.can_print()
}

/// A station's call on the redemption path (ST-2), run with the caller's
/// authentication in one write transaction: the desk's on SQLite, a pooled
/// one locking the order (and card) on PostgreSQL.
pub enum Call {
    Reserve { number: PrintNumber, wrong_per_minute: u32, reservation_s: i64 },
    Charge { reservation_id: i64, card_uid: String, idempotency_key: String, reservation_s: i64 },
    Document { reservation_id: i64 },
    Report { reservation_id: i64, report: PrintReport },
}

/// What a [`Call`] answers.
pub enum Answer {
    Reserved(Reservation),
    Charged(ChargeResponse),
    /// The order's PDF as stored (sealed; opened outside the transaction).
    Document { order_id: i64, stored: Vec<u8> },
    /// The order's status after the report.
    Reported(String),
}

/// Why a call stopped. Its transaction is undone; a wrong number or a
/// refused claim is then recorded in a transaction of its own.
pub enum Stop {
    Error(AppError),
    /// A print number no order of this station's university has: counted as a guess.
    WrongNumber { station_id: i64 },
    Claim { station: Box<Station>, key: String, order_id: Option<i64>, refused: claims::Refused },
}

impl<E: Into<AppError>> From<E> for Stop {
    fn from(e: E) -> Stop {
        Stop::Error(e.into())
    }
}

/// Runs a station's `call` as `station`, authenticated with `token` (on
/// SQLite checked again in the call's transaction).
pub async fn redeem(pool: &Pool, desk: Option<&store::Desk>, guesses: &GuessThrottle, station: Station, token: String, call: Call) -> AppResult<Answer> {
    let t = now();
    let station_id = station.id;
    let reads_only = matches!(call, Call::Document { .. });
    let done = match desk {
        Some(desk) => {
            let job = move |db: &mut store::DeskConn| at_once(answer_as(db, &token, &call, t));
            if reads_only {
                desk.read(job)
            } else {
                desk.run(job).await
            }
        }
        None => pooled(pool, &station, &call, t).await,
    };
    match done {
        Ok(done) => Ok(done.logged(station_id)),
        Err(Stop::Error(e)) => Err(e),
        Err(Stop::WrongNumber { station_id }) => {
            guesses.wrong(station_id).await;
            Err(AppError::api(ErrorCode::PrintNumberUnknown, "no order has this print number"))
        }
        Err(Stop::Claim { station, key, order_id, refused }) => Err(claims::refuse(pool, &station, &key, order_id, refused).await),
    }
}

/// A call's answer and what an operator reads of it in the log (written once its transaction has ended).
struct Done {
    answer: Answer,
    news: Option<News>,
}

/// What a call did that the log says, with its order.
enum News {
    Reserved(i64),
    Paid(i64),
    /// A charge asked again with its key (its first answer lost: perhaps
    /// after the payment was committed), answered as the first time.
    PaidBefore(Option<i64>),
}

impl Done {
    /// The answer, after the log line an operator reads for it: written
    /// once the call's transaction is committed (never for a payment whose
    /// commit failed), and outside the desk's transaction.
    fn logged(self, station_id: i64) -> Answer {
        match (&self.answer, self.news) {
            (Answer::Reserved(r), Some(News::Reserved(order_id))) => {
                tracing::info!(station_id, order_id, reservation_id = r.reservation_id, "print number reserved")
            }
            (_, Some(News::Paid(order_id))) => tracing::info!(station_id, order_id, "paid by IC card"),
            (_, Some(News::PaidBefore(order_id))) => tracing::info!(station_id, order_id, "an IC card charge asked again: answered as the first time"),
            _ => {}
        }
        self.answer
    }
}

async fn answer_as<S: RedeemStore>(s: &mut S, token: &str, call: &Call, t: i64) -> Result<Done, Stop> {
    let station = authenticate_in(s, token).await?;
    answer(s, &station, call, t).await
}

/// A call on a pooled connection: on PostgreSQL its transaction locks the
/// order (and card) it writes, read first (they never change), so stations'
/// writes on different orders run at once; a document is only read.
async fn pooled(pool: &Pool, station: &Station, call: &Call, t: i64) -> Result<Done, Stop> {
    let mut c = pool.acquire().await?;
    if matches!(call, Call::Document { .. }) {
        return answer(&mut *c, station, call, t).await;
    }
    let mut tx = match store::engine(pool) {
        store::Engine::Sqlite => {
            drop(c);
            store::begin_write(pool).await?
        }
        store::Engine::Postgres => {
            let (order, card) = locks(&mut c, station, call).await?;
            let keys: Vec<store::WriteKey<'_>> =
                order.map(store::WriteKey::Order).into_iter().chain(card.as_deref().map(store::WriteKey::Card)).collect();
            store::begin_write_on_held(c, &keys).await?
        }
    };
    let a = answer(&mut *tx, station, call, t).await?;
    tx.commit().await?;
    Ok(a)
}

/// The order (and card) a call writes.
async fn locks(c: &mut store::Conn, station: &Station, call: &Call) -> Result<(Option<i64>, Option<String>), Stop> {
    let of_reservation = |r: Option<store::ReservationRow>| r.filter(|r| r.station_id == station.id).map(|r| r.order_id);
    Ok(match call {
        Call::Reserve { number, .. } => (c.order_by_print_number(number.as_str()).await?.map(|o| o.id), None),
        Call::Charge { reservation_id, card_uid, .. } => (of_reservation(c.reservation(*reservation_id).await?), Some(card_uid.trim().to_uppercase())),
        Call::Report { reservation_id, .. } => (of_reservation(c.reservation(*reservation_id).await?), None),
        Call::Document { .. } => (None, None),
    })
}

async fn answer<S: RedeemStore>(s: &mut S, station: &Station, call: &Call, t: i64) -> Result<Done, Stop> {
    let (answer, news) = match call {
        Call::Reserve { number, wrong_per_minute, reservation_s } => {
            let (r, order_id) = reserve(s, station, number, *wrong_per_minute, *reservation_s, t).await?;
            (Answer::Reserved(r), Some(News::Reserved(order_id)))
        }
        Call::Charge { reservation_id, card_uid, idempotency_key, reservation_s } => {
            let (r, news) = charge(s, *reservation_s, station, *reservation_id, card_uid, idempotency_key, t).await?;
            (Answer::Charged(r), Some(news))
        }
        Call::Document { reservation_id } => {
            let (order_id, stored) = document(s, station, *reservation_id, t).await?;
            (Answer::Document { order_id, stored }, None)
        }
        Call::Report { reservation_id, report: r } => (Answer::Reported(report(s, station, *reservation_id, r, t).await?), None),
    };
    Ok(Done { answer, news })
}

/// Reserves a print number for this station (ST-2).
async fn reserve<S: RedeemStore>(
    s: &mut S,
    station: &Station,
    number: &PrintNumber,
    wrong_per_minute: u32,
    reservation_s: i64,
    t: i64,
) -> Result<(Reservation, i64), Stop> {
    let wrong = s.throttle_failures(&GuessThrottle::key(station.id), crate::accounts::Throttle::now_ms() - 60_000).await?;
    if wrong.len() >= wrong_per_minute as usize {
        return Err(AppError::api(ErrorCode::Throttled, "too many wrong print numbers; wait a minute").into());
    }
    // a number of another university is no number at this station: refused
    // as unknown and counted as a guess
    let Some(order) = s.order_by_print_number(number.as_str()).await? else {
        return Err(Stop::WrongNumber { station_id: station.id });
    };
    let university = s.order_university(order.id).await?;
    if university.id != station.university_id {
        return Err(Stop::WrongNumber { station_id: station.id });
    }
    match order.status.as_str() {
        "printed" => return Err(AppError::api(ErrorCode::PrintNumberUsed, "this number was printed already").into()),
        "cancelled" | "expired" => return Err(AppError::api(ErrorCode::PrintNumberExpired, "this number is no longer valid").into()),
        "held" => return Err(AppError::api(ErrorCode::NotFound, "this order is held by the registrar").into()),
        "awaiting_payment" if order.payment_method != "card" => {
            return Err(AppError::api(ErrorCode::NotPaid, "this order is paid online and the payment is not in yet").into())
        }
        _ => {}
    }
    if t >= order.print_deadline {
        return Err(AppError::api(ErrorCode::PrintNumberExpired, "the print deadline has passed").into());
    }
    let live = s.live_reservations(order.id, t).await?;
    if live.iter().any(|r| r.station_id != station.id) {
        return Err(AppError::api(ErrorCode::PrintNumberBusy, "this number is being used at another station").into());
    }
    for r in &live {
        // the same station asking again (a retry): release the old hold
        s.set_reservation_status(r.id, "released").await?;
    }
    let expires_at = t + reservation_s;
    let reservation_id = s.insert_reservation(order.id, station.id, t, expires_at).await?;
    let lines = s.order_lines(order.id).await?;
    let reservation = Reservation {
        reservation_id,
        print_number: number.clone(),
        lines: lines
            .iter()
            .map(|l| ReservationLine {
                name_ja: l.name_ja.clone(),
                name_en: l.name_en.clone(),
                copies: l.copies as u32,
                amount: Yen(l.amount),
            })
            .collect(),
        system_fee: Yen(order.system_fee),
        amount: Yen(order.total),
        paid: order.status == "paid",
        payment_method: order.payment_method.clone(),
        print_deadline: order.print_deadline,
        print_deadline_text: time::deadline_text(order.print_deadline, time::tz(&university.timezone)),
        expires_at,
        pages: order.pages as u32,
        print: shomei_shared::api::PrintSettings::default(),
    };
    Ok((reservation, order.id))
}

/// One of this station's reservations, in whatever state.
async fn station_reservation<S: RedeemStore>(c: &mut S, station: &Station, reservation_id: i64) -> AppResult<store::ReservationRow> {
    c.reservation(reservation_id)
        .await?
        .filter(|r| r.station_id == station.id)
        .ok_or_else(|| AppError::api(ErrorCode::NotFound, "no such reservation at this station"))
}

/// The station's own live reservation, or a clear error.
async fn own_reservation<S: RedeemStore>(c: &mut S, station: &Station, reservation_id: i64, t: i64) -> AppResult<store::ReservationRow> {
    let r = station_reservation(c, station, reservation_id).await?;
    if r.status == "released" || (r.status == "active" && r.expires_at <= t) {
        return Err(AppError::api(ErrorCode::ReservationExpired, "the reservation ran out; enter the number again"));
    }
    Ok(r)
}

/// Takes the payment for a reserved number from an IC card's stored value
/// (or answers a retry with the same key as the first time).
async fn charge<S: RedeemStore>(
    s: &mut S,
    reservation_s: i64,
    station: &Station,
    reservation_id: i64,
    card_uid: &str,
    idempotency_key: &str,
    t: i64,
) -> Result<(ChargeResponse, News), Stop> {
    let uid = card_uid.trim().to_uppercase();
    if uid.is_empty() || uid.len() > 32 || !uid.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AppError::api(ErrorCode::BadRequest, "card_uid must be hex").into());
    }
    // A retried charge (same key) answers the same, even after the reservation moved on.
    if let Some(prior) = s.ledger_by_key(idempotency_key).await? {
        if prior.card_uid != uid {
            return Err(AppError::api(ErrorCode::Conflict, "idempotency key reused for another card").into());
        }
        let balance = Yen(s.card_balance(&uid).await?);
        return Ok((ChargeResponse { charged: Yen(-prior.amount), balance_after: balance }, News::PaidBefore(prior.order_id)));
    }
    let r = own_reservation(s, station, reservation_id, t).await?;
    let order = s.order(r.order_id).await?;
    if order.payment_method != "card" {
        return Err(AppError::api(ErrorCode::Conflict, "this order is paid online, not by card").into());
    }
    if order.status != "awaiting_payment" {
        return Err(AppError::api(ErrorCode::Conflict, "this order is paid already").into());
    }
    let balance = payments::debit_card(s, &uid, Yen(order.total), order.id, Some(station.id), idempotency_key, t).await?;
    s.set_order_paid(order.id, t).await?;
    // paid now: keep the hold for as long as printing may take
    s.extend_reservation(r.id, t + reservation_s).await?;
    let (actor, what) = (format!("station:{}", station.id), format!("order {} card {uid}", order.id));
    s.audit_event(&store::AuditEvent { actor: &actor, action: "order.paid.card", target: "", ip: "", detail: &what }, t).await?;
    Ok((ChargeResponse { charged: Yen(order.total), balance_after: balance }, News::Paid(order.id)))
}

/// The debit a charge with `idempotency_key` made for this station's
/// reservation, if any (read only: recovery asks after a lost answer).
pub async fn charge_status(pool: &Pool, station: &Station, reservation_id: i64, idempotency_key: &str) -> AppResult<shomei_shared::api::ChargeStatus> {
    let mut c = pool.acquire().await?;
    let r = station_reservation(&mut *c, station, reservation_id).await?;
    let charged = store::ledger_by_key(&mut c, idempotency_key)
        .await?
        .filter(|l| l.kind == "debit" && l.order_id == Some(r.order_id))
        .map(|l| Yen(-l.amount));
    Ok(shomei_shared::api::ChargeStatus { charged })
}

/// A payment the station's transit e-money terminal took (P-5), once per
/// key. The order becomes paid (from its reservation at this station, even
/// if that lapsed meanwhile: the money was taken); a payment for an order
/// paid already is kept and shown to staff, who refund it at the desk.
pub async fn terminal_payment(pool: &Pool, reservation_s: i64, station: &Station, reservation_id: i64, p: &TerminalPayment) -> AppResult<AppliedOnce> {
    if p.transaction_id.len() != 16 || !p.transaction_id.is_ascii() || p.amount.0 <= 0 || p.brand.len() > 40 {
        return Err(AppError::api(ErrorCode::BadRequest, "transaction_id is 16 characters, amount positive"));
    }
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    let r = station_reservation(&mut *tx, station, reservation_id).await?;
    let order = store::order(&mut tx, r.order_id).await?;
    if let Some(duplicate) = store::terminal_payment_seen(&mut tx, &p.idempotency_key).await? {
        return Ok(AppliedOnce { order_status: order.status, duplicate });
    }
    if let Err(refused) = crate::stations::claims::station_payment("terminal_payment", &order, p.amount) {
        drop(tx);
        return Err(crate::stations::claims::refuse(pool, station, &p.idempotency_key, Some(order.id), refused).await);
    }
    let duplicate = !matches!(order.status.as_str(), "awaiting_payment" | "expired");
    let at = p.at.min(t);
    store::insert_terminal_payment(&mut tx, &p.idempotency_key, station.id, order.id, &p.transaction_id, p.amount.0, &p.brand, at, t, duplicate).await?;
    let actor = format!("station:{}", station.id);
    let what = format!("order {} {} {} txn {}", order.id, p.brand, p.amount, p.transaction_id);
    if duplicate {
        store::audit(&mut tx, &actor, "order.paid.terminal.duplicate", &what, t).await?;
        tracing::warn!(order_id = order.id, "a terminal payment for an order paid already: staff refund it");
    } else {
        store::set_order_paid(&mut tx, order.id, at).await?;
        if r.status == "active" {
            store::extend_reservation(&mut tx, r.id, t + reservation_s).await?;
        }
        store::audit(&mut tx, &actor, "order.paid.terminal", &what, t).await?;
        tracing::info!(station_id = station.id, order_id = order.id, "paid by e-money terminal");
    }
    let status = store::order(&mut tx, order.id).await?.status;
    tx.commit().await?;
    Ok(AppliedOnce { order_status: status, duplicate })
}

/// The certificate PDF of a paid, reserved order, as stored (sealed).
async fn document<S: RedeemStore>(s: &mut S, station: &Station, reservation_id: i64, t: i64) -> Result<(i64, Vec<u8>), Stop> {
    let r = own_reservation(s, station, reservation_id, t).await?;
    let order = s.order(r.order_id).await?;
    if order.status != "paid" && order.status != "printed" {
        return Err(AppError::api(ErrorCode::NotPaid, "the order is not paid").into());
    }
    let stored = s.order_document(order.id).await?.ok_or_else(|| AppError::api(ErrorCode::NotFound, "the order has no document"))?;
    Ok((order.id, stored))
}

/// Lets go of a reservation the user walked away from (cancel, idle timeout),
/// so the number works at another station at once instead of after it lapses.
pub async fn release(pool: &Pool, station: &Station, reservation_id: i64) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let r = station_reservation(&mut *tx, station, reservation_id).await?;
    if r.status == "active" {
        store::set_reservation_status(&mut tx, r.id, "released").await?;
        tracing::info!(station_id = station.id, reservation_id, "reservation released");
    }
    tx.commit().await?;
    Ok(())
}

/// Records what became of a print, once per idempotency key.
async fn report<S: RedeemStore>(s: &mut S, station: &Station, reservation_id: i64, report: &PrintReport, t: i64) -> Result<String, Stop> {
    let r = station_reservation(s, station, reservation_id).await?;
    let order = s.order(r.order_id).await?;
    if s.station_report(&report.idempotency_key).await?.is_some() {
        return Ok(order.status);
    }
    // printed, but the order was printed already through another reservation:
    // this report came late (an outage) and the number was reprinted elsewhere
    if matches!(report.outcome, PrintOutcome::Printed) {
        if let Err(refused) = claims::print("print_report", &order) {
            return Err(Stop::Claim { station: Box::new(station.clone()), key: report.idempotency_key.clone(), order_id: Some(order.id), refused });
        }
    }
    let duplicate = matches!(report.outcome, PrintOutcome::Printed) && order.status == "printed" && r.status != "printed";
    if duplicate {
        tracing::warn!(order_id = order.id, station = %station.name, "a number was printed twice: a late report after a reprint elsewhere");
    }
    let (outcome, detail) = match &report.outcome {
        PrintOutcome::Printed => ("printed", report.impressions.map(|n| format!("impressions {n}")).unwrap_or_default()),
        PrintOutcome::Failed { reason } => ("failed", reason.clone()),
    };
    s.insert_station_report(&store::NewStationReport {
        key: &report.idempotency_key,
        station_id: station.id,
        reservation_id: r.id,
        outcome,
        detail: &detail,
        ipp_job_id: report.ipp_job_id,
        station_time: report.at,
        now: t,
        duplicate,
    })
    .await?;
    let status = match &report.outcome {
        PrintOutcome::Printed => {
            s.set_reservation_status(r.id, "printed").await?;
            if order.status != "printed" {
                s.set_order_printed(order.id, report.at.min(t)).await?;
            }
            "printed".to_string()
        }
        PrintOutcome::Failed { .. } => {
            // paid and not printed: stays reprintable at any station (ST-2)
            s.set_reservation_status(r.id, "failed").await?;
            order.status.clone()
        }
    };
    let (actor, action, what) = (format!("station:{}", station.id), format!("print.{outcome}"), format!("order {} {detail}", order.id));
    s.audit_event(&store::AuditEvent { actor: &actor, action: &action, target: "", ip: "", detail: &what }, t).await?;
    Ok(status)
}
