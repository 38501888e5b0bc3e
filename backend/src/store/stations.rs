//! Stations, their reservations and offline printing, and the bundle signing key.

use super::*;
use super::orders::ORDER_SELECT;
use sqlx::FromRow;

// ---------------------------------------------------------------- the bundle signing key

pub async fn signing_key_sealed(c: &mut Conn) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT ed25519_sealed FROM signing_keys WHERE id = 1").fetch_optional(c).await
}

pub async fn insert_signing_key(c: &mut Conn, sealed: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO signing_keys (id, ed25519_sealed, created_at) VALUES (1, $1, $2)").bind(sealed).bind(now).execute(c).await?;
    Ok(())
}

// ---------------------------------------------------------------- stations

#[derive(Debug, Clone, FromRow)]
pub struct Station {
    pub id: i64,
    /// The university it serves: only its numbers, PDFs and cards' orders.
    pub university_id: i64,
    pub name: String,
    pub status: String,
    pub created_at: i64,
    pub enrolled_at: Option<i64>,
    pub last_seen: Option<i64>,
    pub version: Option<String>,
    #[sqlx(try_from = "MaybeFlag")]
    pub printer_reachable: Option<bool>,
    pub printer_state: Option<String>,
    pub printer_reasons: Option<String>,
    pub printer_message: Option<String>,
    #[sqlx(try_from = "MaybeFlag")]
    pub reader_present: Option<bool>,
    pub outbox_len: Option<i64>,
    pub clock_skew_s: Option<i64>,
    pub markers: String,
    pub media_ready: String,
    #[sqlx(try_from = "MaybeFlag")]
    pub terminal_present: Option<bool>,
    pub disk_free_mb: Option<i64>,
    pub uptime_s: Option<i64>,
    pub jobs_printed: i64,
    pub alert: String,
    #[sqlx(try_from = "Flag")]
    pub in_service: bool,
    pub test_page_wanted: i64,
    pub test_page_done: i64,
    pub test_page_result: String,
    pub test_page_at: Option<i64>,
}

pub(super) const STATION_SELECT: &str = "SELECT id, university_id, name, status, created_at, enrolled_at, last_seen, version,
    printer_reachable, printer_state, printer_reasons, printer_message, reader_present, outbox_len,
    clock_skew_s, markers, media_ready, terminal_present, disk_free_mb, uptime_s, jobs_printed, alert,
    in_service, test_page_wanted, test_page_done, test_page_result, test_page_at FROM stations";

/// Operators take a station out of service (maintenance) or back.
pub async fn set_station_in_service(c: &mut Conn, id: i64, in_service: bool) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE stations SET in_service = $1 WHERE id = $2 AND status = 'active'").bind(i64::from(in_service)).bind(id).execute(c).await?;
    Ok(r.rows_affected() == 1)
}

/// Operators ask for a test page: the request's number.
pub async fn request_test_page(c: &mut Conn, id: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("UPDATE stations SET test_page_wanted = test_page_wanted + 1 WHERE id = $1 AND status = 'active' RETURNING test_page_wanted")
        .bind(id)
        .fetch_optional(c)
        .await
}

/// The station printed (or failed to print) test page `request`.
pub async fn test_page_done(c: &mut Conn, id: i64, request: i64, result: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stations SET test_page_done = $1, test_page_result = $2, test_page_at = $3 WHERE id = $4 AND test_page_done < $5")
        .bind(request)
        .bind(result)
        .bind(now)
        .bind(id)
        .bind(request)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn insert_station(c: &mut Conn, university_id: i64, name: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO stations (university_id, name, created_at) VALUES ($1, $2, $3) RETURNING id")
        .bind(university_id)
        .bind(name)
        .bind(now)
        .fetch_one(c)
        .await
}

pub async fn insert_enrolment_code(
    c: &mut Conn,
    code_hash: &str,
    station_id: i64,
    staff_id: Option<i64>,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO enrolment_codes (code_hash, station_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(code_hash)
    .bind(station_id)
    .bind(staff_id)
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await?;
    Ok(())
}

/// Marks an unused, unexpired code used and returns its station, atomically.
pub async fn consume_enrolment_code(c: &mut Conn, code_hash: &str, now: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE enrolment_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $3
           AND station_id IN (SELECT id FROM stations WHERE status = 'pending')
         RETURNING station_id",
    )
    .bind(now)
    .bind(code_hash)
    .bind(now)
    .fetch_optional(c)
    .await
}

pub async fn activate_station(
    c: &mut Conn,
    id: i64,
    token_hash: &str,
    version: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stations SET token_hash = $1, status = 'active', enrolled_at = $2, version = $3 WHERE id = $4")
        .bind(token_hash)
        .bind(now)
        .bind(version)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn station_by_token(c: &mut Conn, token_hash: &str) -> Result<Option<Station>, sqlx::Error> {
    RedeemStore::station_by_token(c, token_hash).await
}

pub async fn station(c: &mut Conn, id: i64) -> Result<Option<Station>, sqlx::Error> {
    sqlx::query_as(&format!("{STATION_SELECT} WHERE id = $1")).bind(id).fetch_optional(c).await
}

/// Orders per status (metrics).
pub async fn order_counts_by_status(c: &mut Conn) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status").fetch_all(c).await
}

/// Work waiting (metrics): unsent mails, unregistered store prints, applications to review.
pub async fn work_waiting(c: &mut Conn) -> Result<(i64, i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL),
                (SELECT COUNT(*) FROM orders WHERE delivery = 'store' AND status = 'paid' AND store_file_id IS NULL),
                (SELECT COUNT(*) FROM registrations WHERE status = 'pending')",
    )
    .fetch_one(c)
    .await
}

pub async fn stations(c: &mut Conn) -> Result<Vec<Station>, sqlx::Error> {
    sqlx::query_as(&format!("{STATION_SELECT} ORDER BY id")).fetch_all(c).await
}

/// The stations of one university (`Some`), or the whole fleet (`None`: a platform operator).
pub async fn stations_of(c: &mut Conn, university_id: Option<i64>) -> Result<Vec<Station>, sqlx::Error> {
    sqlx::query_as(&format!("{STATION_SELECT} WHERE ($1 IS NULL OR university_id = $1) ORDER BY id")).bind(university_id).fetch_all(c).await
}

/// Revokes a station and deletes its unused enrolment codes.
pub async fn revoke_station(c: &mut Conn, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stations SET status = 'revoked', token_hash = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM enrolment_codes WHERE station_id = $1 AND used_at IS NULL").bind(id).execute(&mut *c).await?;
    Ok(())
}

pub struct HeartbeatRow<'a> {
    pub version: &'a str,
    pub printer_reachable: bool,
    pub printer_state: &'a str,
    pub printer_reasons: &'a str,
    pub printer_message: &'a str,
    pub reader_present: bool,
    pub outbox_len: i64,
    pub clock_skew_s: i64,
    pub markers: &'a str,
    pub media_ready: &'a str,
    pub terminal_present: Option<bool>,
    pub disk_free_mb: Option<i64>,
    pub uptime_s: i64,
    pub jobs_printed: i64,
    pub printer_ready: bool,
    pub supply_level: Option<i64>,
}

pub async fn record_heartbeat(c: &mut Conn, id: i64, h: &HeartbeatRow<'_>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE stations SET last_seen = $1, version = $2, printer_reachable = $3, printer_state = $4,
         printer_reasons = $5, printer_message = $6, reader_present = $7, outbox_len = $8, clock_skew_s = $9,
         markers = $10, media_ready = $11, terminal_present = $12, disk_free_mb = $13, uptime_s = $14, jobs_printed = $15
         WHERE id = $16",
    )
    .bind(now)
    .bind(h.version)
    .bind(i64::from(h.printer_reachable))
    .bind(h.printer_state)
    .bind(h.printer_reasons)
    .bind(h.printer_message)
    .bind(i64::from(h.reader_present))
    .bind(h.outbox_len)
    .bind(h.clock_skew_s)
    .bind(h.markers)
    .bind(h.media_ready)
    .bind(h.terminal_present.map(i64::from))
    .bind(h.disk_free_mb)
    .bind(h.uptime_s)
    .bind(h.jobs_printed)
    .bind(id)
    .execute(&mut *c)
    .await?;
    // one sample per station and minute for the 24-hour charts, keeping the
    // worst of the minute (not ready at any beat = not ready that minute)
    sqlx::query(
        "INSERT INTO station_samples (station_id, at, printer_ready, printer_state, reasons, supply_level, jobs_printed)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (station_id, at) DO UPDATE SET
           printer_ready = CASE WHEN excluded.printer_ready < station_samples.printer_ready THEN excluded.printer_ready ELSE station_samples.printer_ready END,
           printer_state = CASE WHEN excluded.printer_ready = 1 THEN station_samples.printer_state ELSE excluded.printer_state END,
           reasons = CASE WHEN excluded.printer_ready = 1 THEN station_samples.reasons ELSE excluded.reasons END,
           supply_level = CASE WHEN excluded.supply_level < station_samples.supply_level OR station_samples.supply_level IS NULL
                               THEN excluded.supply_level ELSE station_samples.supply_level END,
           jobs_printed = CASE WHEN excluded.jobs_printed > station_samples.jobs_printed THEN excluded.jobs_printed ELSE station_samples.jobs_printed END",
    )
    .bind(id)
    .bind(now - now % 60)
    .bind(i64::from(h.printer_ready))
    .bind(h.printer_state)
    .bind(h.printer_reasons)
    .bind(h.supply_level)
    .bind(h.jobs_printed)
    .execute(c)
    .await?;
    Ok(())
}

/// A sample for the station charts.
#[derive(Debug, Clone, FromRow)]
pub struct StationSample {
    pub at: i64,
    #[sqlx(try_from = "Flag")]
    pub printer_ready: bool,
    pub printer_state: String,
    pub reasons: String,
    pub supply_level: Option<i64>,
    pub jobs_printed: i64,
}

pub async fn station_samples(c: &mut Conn, station_id: i64, since: i64) -> Result<Vec<StationSample>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, printer_ready, printer_state, reasons, supply_level, jobs_printed FROM station_samples
         WHERE station_id = $1 AND at >= $2 ORDER BY at",
    )
    .bind(station_id)
    .bind(since)
    .fetch_all(c)
    .await
}

/// Samples older than `before` go (kept: two days).
pub async fn prune_station_samples(c: &mut Conn, before: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM station_samples WHERE at < $1").bind(before).execute(c).await?.rows_affected())
}

/// Remembers what operators were last alerted about for a station.
pub async fn set_station_alert(c: &mut Conn, id: i64, alert: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stations SET alert = $1 WHERE id = $2").bind(alert).bind(id).execute(c).await?;
    Ok(())
}

// ---------------------------------------------------------------- reservations

#[derive(Debug, Clone, FromRow)]
pub struct ReservationRow {
    pub id: i64,
    pub order_id: i64,
    pub station_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub status: String,
}

pub async fn live_reservations(c: &mut Conn, order_id: i64, now: i64) -> Result<Vec<ReservationRow>, sqlx::Error> {
    RedeemStore::live_reservations(c, order_id, now).await
}

pub async fn insert_reservation(
    c: &mut Conn,
    order_id: i64,
    station_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<i64, sqlx::Error> {
    RedeemStore::insert_reservation(c, order_id, station_id, now, expires_at).await
}

pub async fn reservation(c: &mut Conn, id: i64) -> Result<Option<ReservationRow>, sqlx::Error> {
    RedeemStore::reservation(c, id).await
}

pub async fn set_reservation_status(c: &mut Conn, id: i64, status: &str) -> Result<(), sqlx::Error> {
    RedeemStore::set_reservation_status(c, id, status).await
}

pub async fn extend_reservation(c: &mut Conn, id: i64, expires_at: i64) -> Result<(), sqlx::Error> {
    RedeemStore::extend_reservation(c, id, expires_at).await
}

#[derive(Debug, Clone, FromRow)]
pub struct StationReport {
    pub outcome: String,
}

pub async fn station_report(c: &mut Conn, key: &str) -> Result<Option<StationReport>, sqlx::Error> {
    RedeemStore::station_report(c, key).await
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_station_report(
    c: &mut Conn,
    key: &str,
    station_id: i64,
    reservation_id: i64,
    outcome: &str,
    detail: &str,
    ipp_job_id: Option<i32>,
    station_time: i64,
    now: i64,
    duplicate: bool,
) -> Result<(), sqlx::Error> {
    RedeemStore::insert_station_report(c, &NewStationReport { key, station_id, reservation_id, outcome, detail, ipp_job_id, station_time, now, duplicate }).await
}

// ---------------------------------------------------------------- offline printing

pub async fn station_token_hash(c: &mut Conn, station_id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT token_hash FROM stations WHERE id = $1").bind(station_id).fetch_optional(c).await.map(Option::flatten)
}

/// On-campus orders of `university_id` a station may print offline: a live
/// number, paid or to be paid by IC card, before its deadline.
pub async fn offline_orders(c: &mut Conn, university_id: i64, now: i64) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{ORDER_SELECT} WHERE delivery = 'campus' AND print_number IS NOT NULL AND print_deadline > $1
         AND (status = 'paid' OR (status = 'awaiting_payment' AND payment_method = 'card'))
         AND student_record_id IN (SELECT id FROM student_records WHERE university_id = $2) ORDER BY id"
    ))
    .bind(now)
    .bind(university_id)
    .fetch_all(c)
    .await
}

/// Records that `order_id` went out in `station_id`'s offline bundle (the
/// first time, and whether it could be paid by card offline).
pub async fn record_offline_issue(c: &mut Conn, station_id: i64, order_id: i64, card_payment: bool, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO offline_issued (station_id, order_id, card_payment, first_issued_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (station_id, order_id) DO UPDATE SET card_payment = excluded.card_payment
         WHERE excluded.card_payment > offline_issued.card_payment",
    )
    .bind(station_id)
    .bind(order_id)
    .bind(i64::from(card_payment))
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// (first issued at, card payment allowed) of an order in a station's bundles.
pub async fn offline_issue(c: &mut Conn, station_id: i64, order_id: i64) -> Result<Option<(i64, bool)>, sqlx::Error> {
    let row: Option<(i64, Flag)> = sqlx::query_as("SELECT first_issued_at, card_payment FROM offline_issued WHERE station_id = $1 AND order_id = $2")
        .bind(station_id)
        .bind(order_id)
        .fetch_optional(c)
        .await?;
    Ok(row.map(|(at, card)| (at, card.into())))
}

/// A card's balance as the backend knew it at `at` (ledger rows written by then).
pub async fn card_balance_at(c: &mut Conn, uid: &str, at: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger WHERE card_uid = $1 AND created_at <= $2")
        .bind(uid)
        .bind(at)
        .fetch_one(c)
        .await
}

/// A station's offline debits (kept, not refunded) that it still held at
/// `at`: taken by then, delivered after. `card` narrows them to one card.
pub async fn unsynced_offline_debits(c: &mut Conn, station_id: i64, at: i64, card: Option<&str>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM offline_debits WHERE station_id = $1 AND duplicate = 0
           AND debited_at <= $2 AND received_at >= $3 AND ($4 IS NULL OR card_uid = $5)",
    )
    .bind(station_id)
    .bind(at)
    .bind(at)
    .bind(card)
    .bind(card)
    .fetch_one(c)
    .await
}

/// Records a refused claim once per station and key; true when it is new.
pub async fn insert_refused_claim(c: &mut Conn, station_id: i64, claim_key: &str, kind: &str, order_id: Option<i64>, reason: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("INSERT INTO refused_claims (station_id, claim_key, kind, order_id, reason, received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
        .bind(station_id)
        .bind(claim_key)
        .bind(kind)
        .bind(order_id)
        .bind(reason)
        .bind(now)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct RefusedClaim {
    pub station: String,
    /// The university of the station.
    pub university_id: i64,
    pub kind: String,
    pub order_id: Option<i64>,
    pub reason: String,
    pub received_at: i64,
}

/// Refused claims not mailed to operators yet; marks them mailed.
pub async fn take_unalerted_claims(c: &mut Conn) -> Result<Vec<RefusedClaim>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT s.name AS station, s.university_id, r.kind, r.order_id, r.reason, r.received_at FROM refused_claims r
         JOIN stations s ON s.id = r.station_id WHERE r.alerted = 0 ORDER BY r.id",
    )
    .fetch_all(&mut *c)
    .await?;
    sqlx::query("UPDATE refused_claims SET alerted = 1 WHERE alerted = 0").execute(&mut *c).await?;
    Ok(rows)
}

pub async fn refused_claims(c: &mut Conn, university_id: Option<i64>) -> Result<Vec<RefusedClaim>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.name AS station, s.university_id, r.kind, r.order_id, r.reason, r.received_at FROM refused_claims r
         JOIN stations s ON s.id = r.station_id WHERE ($1 IS NULL OR s.university_id = $1) ORDER BY r.id DESC LIMIT 100",
    )
    .bind(university_id)
    .fetch_all(c)
    .await
}

pub async fn blocked_cards(c: &mut Conn) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT uid FROM ic_cards WHERE status = 'blocked' ORDER BY uid").fetch_all(c).await
}

pub async fn offline_print_seen(c: &mut Conn, key: &str) -> Result<Option<bool>, sqlx::Error> {
    let dup: Option<Flag> = sqlx::query_scalar("SELECT duplicate FROM offline_prints WHERE idempotency_key = $1").bind(key).fetch_optional(c).await?;
    Ok(dup.map(bool::from))
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_offline_print(
    c: &mut Conn,
    key: &str,
    station_id: i64,
    order_id: i64,
    outcome: &str,
    detail: &str,
    ipp_job_id: Option<i32>,
    printed_at: i64,
    now: i64,
    duplicate: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO offline_prints (idempotency_key, station_id, order_id, outcome, detail, ipp_job_id, printed_at, received_at, duplicate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(key)
    .bind(station_id)
    .bind(order_id)
    .bind(outcome)
    .bind(detail)
    .bind(ipp_job_id)
    .bind(printed_at)
    .bind(now)
    .bind(i64::from(duplicate))
    .execute(c)
    .await?;
    Ok(())
}

/// A number printed offline at more than one station (staff follow it up).
#[derive(Debug, Clone, FromRow)]
pub struct DuplicatePrint {
    pub order_id: i64,
    pub print_number: Option<String>,
    pub station: String,
    pub printed_at: i64,
}

pub async fn duplicate_prints(c: &mut Conn, university_id: Option<i64>) -> Result<Vec<DuplicatePrint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, print_number, station, printed_at FROM (
           SELECT p.order_id, o.print_number, s.name AS station, p.printed_at, p.received_at FROM offline_prints p
           JOIN orders o ON o.id = p.order_id JOIN stations s ON s.id = p.station_id WHERE p.duplicate = 1 AND ($1 IS NULL OR s.university_id = $1)
           UNION ALL
           SELECT r.order_id, o.print_number, s.name AS station, sr.station_time AS printed_at, sr.received_at FROM station_reports sr
           JOIN reservations r ON r.id = sr.reservation_id JOIN orders o ON o.id = r.order_id JOIN stations s ON s.id = sr.station_id
           WHERE sr.duplicate = 1 AND ($2 IS NULL OR s.university_id = $2)) AS prints
         ORDER BY received_at DESC, order_id DESC LIMIT 100",
    )
    .bind(university_id)
    .bind(university_id)
    .fetch_all(c)
    .await
}

/// A university's offline payment policy (P-3).
#[derive(Debug, Clone, FromRow)]
pub struct OfflineCardPolicy {
    #[sqlx(try_from = "Flag")]
    pub offline_cards: bool,
    pub offline_floor_limit: i64,
    pub offline_station_total: i64,
}

pub async fn offline_card_policy(c: &mut Conn, university_id: i64) -> Result<OfflineCardPolicy, sqlx::Error> {
    sqlx::query_as("SELECT offline_cards, offline_floor_limit, offline_station_total FROM universities WHERE id = $1")
        .bind(university_id)
        .fetch_one(c)
        .await
}

pub async fn set_offline_card_policy(c: &mut Conn, university_id: i64, p: &OfflineCardPolicy) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE universities SET offline_cards = $1, offline_floor_limit = $2, offline_station_total = $3 WHERE id = $4")
        .bind(i64::from(p.offline_cards))
        .bind(p.offline_floor_limit)
        .bind(p.offline_station_total)
        .bind(university_id)
        .execute(c)
        .await?;
    Ok(())
}

/// The balances of the active cards whose holders have a student ID at the
/// university (the offline snapshot of its stations: nobody else has an
/// order there to pay).
pub async fn active_card_balances(c: &mut Conn, university_id: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.uid, COALESCE((SELECT CAST(SUM(l.amount) AS BIGINT) FROM ledger l WHERE l.card_uid = k.uid), 0) FROM ic_cards k
         WHERE k.status = 'active' AND k.unlinked_at IS NULL
           AND k.user_id IN (SELECT s.user_id FROM student_records s WHERE s.university_id = $1) ORDER BY k.uid",
    )
    .bind(university_id)
    .fetch_all(c)
    .await
}

/// Where a university's operators want alerts about its stations (comma-separated addresses).
pub async fn university_alert_emails(c: &mut Conn, university_id: i64) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT alert_emails FROM universities WHERE id = $1").bind(university_id).fetch_one(c).await
}

pub async fn set_university_alert_emails(c: &mut Conn, university_id: i64, emails: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE universities SET alert_emails = $1 WHERE id = $2").bind(emails).bind(university_id).execute(c).await?;
    Ok(())
}

pub async fn active_station_count(c: &mut Conn, university_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM stations WHERE status = 'active' AND university_id = $1").bind(university_id).fetch_one(c).await
}

pub async fn offline_debit_seen(c: &mut Conn, key: &str) -> Result<Option<bool>, sqlx::Error> {
    let dup: Option<Flag> = sqlx::query_scalar("SELECT duplicate FROM offline_debits WHERE idempotency_key = $1").bind(key).fetch_optional(c).await?;
    Ok(dup.map(bool::from))
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_offline_debit(
    c: &mut Conn,
    key: &str,
    station_id: i64,
    order_id: i64,
    card_uid: &str,
    amount: i64,
    debited_at: i64,
    now: i64,
    duplicate: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO offline_debits (idempotency_key, station_id, order_id, card_uid, amount, debited_at, received_at, duplicate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(key)
    .bind(station_id)
    .bind(order_id)
    .bind(card_uid)
    .bind(amount)
    .bind(debited_at)
    .bind(now)
    .bind(i64::from(duplicate))
    .execute(c)
    .await?;
    Ok(())
}

/// An order paid twice while offline (the second debit was refunded).
#[derive(Debug, Clone, FromRow)]
pub struct DuplicateDebit {
    pub order_id: i64,
    pub print_number: Option<String>,
    pub station: String,
    pub card_uid: String,
    pub amount: i64,
    pub debited_at: i64,
}

pub async fn duplicate_debits(c: &mut Conn, university_id: Option<i64>) -> Result<Vec<DuplicateDebit>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.order_id, o.print_number, s.name AS station, d.card_uid, d.amount, d.debited_at FROM offline_debits d
         JOIN orders o ON o.id = d.order_id JOIN stations s ON s.id = d.station_id
         WHERE d.duplicate = 1 AND ($1 IS NULL OR s.university_id = $1) ORDER BY d.received_at DESC, d.idempotency_key DESC LIMIT 100",
    )
    .bind(university_id)
    .fetch_all(c)
    .await
}
