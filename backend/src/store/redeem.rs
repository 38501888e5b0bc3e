//! The queries of a station's redemption (who is calling, reserve, charge,
//! document, report), behind one interface with two implementations: a
//! pooled connection (PostgreSQL, and any caller on SQLite that is not a
//! station) and the SQLite desk ([`super::desk`]), which runs stations'
//! calls on one connection of its own and commits them in groups. The SQL
//! is written once, here, and both read it.

use super::*;
use std::future::Future;

pub(super) const STATION_BY_TOKEN: &str = "WHERE token_hash = $1";
pub(super) const ORDER_BY_ID: &str = "WHERE id = $1";
pub(super) const ORDER_BY_NUMBER: &str = "WHERE print_number = $1";
pub(super) const ORDER_UNIVERSITY: &str = "SELECT u.id, u.name_ja, u.name_en, u.timezone, u.system_fee, u.postage FROM orders o
     JOIN student_records s ON s.id = o.student_record_id JOIN universities u ON u.id = s.university_id
     WHERE o.id = $1";
pub(super) const ORDER_LINES: &str = "SELECT id, certificate_type_id, name_ja, name_en, unit_fee, copies, amount FROM order_lines
     WHERE order_id = $1 ORDER BY id";
pub(super) const ORDER_DOCUMENT: &str = "SELECT pdf FROM order_documents WHERE order_id = $1";
pub(super) const SET_ORDER_PAID: &str = "UPDATE orders SET status = 'paid', paid_at = $1 WHERE id = $2";
pub(super) const SET_ORDER_PRINTED: &str = "UPDATE orders SET status = 'printed', printed_at = $1 WHERE id = $2";
pub(super) const THROTTLE_FAILURES: &str = "SELECT at_ms FROM throttle_failures WHERE key = $1 AND at_ms > $2 ORDER BY at_ms, id";
pub(super) const LIVE_RESERVATIONS: &str = "SELECT id, order_id, station_id, created_at, expires_at, status FROM reservations
     WHERE order_id = $1 AND status = 'active' AND expires_at > $2";
pub(super) const INSERT_RESERVATION: &str =
    "INSERT INTO reservations (order_id, station_id, created_at, expires_at, status) VALUES ($1, $2, $3, $4, 'active') RETURNING id";
pub(super) const RESERVATION: &str = "SELECT id, order_id, station_id, created_at, expires_at, status FROM reservations WHERE id = $1";
pub(super) const SET_RESERVATION_STATUS: &str = "UPDATE reservations SET status = $1 WHERE id = $2";
pub(super) const EXTEND_RESERVATION: &str =
    "UPDATE reservations SET expires_at = CASE WHEN expires_at > $1 THEN expires_at ELSE $1 END WHERE id = $2";
pub(super) const STATION_REPORT: &str = "SELECT outcome FROM station_reports WHERE idempotency_key = $1";
pub(super) const INSERT_STATION_REPORT: &str = "INSERT INTO station_reports (idempotency_key, station_id, reservation_id, outcome, detail, ipp_job_id,
     station_time, received_at, duplicate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(super) const CARD: &str = "SELECT uid, user_id, status FROM ic_cards WHERE uid = $1 AND unlinked_at IS NULL";
pub(super) const CARD_BALANCE: &str = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger WHERE card_uid = $1";
pub(super) const LEDGER_BY_KEY: &str = "SELECT id, card_uid, amount, kind, order_id FROM ledger WHERE idempotency_key = $1";
pub(super) const INSERT_LEDGER: &str = "INSERT INTO ledger (card_uid, amount, kind, order_id, station_id, idempotency_key, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(super) const AUDIT: &str = "INSERT INTO audit_log (at, actor, action, target, ip, detail, university_id) VALUES ($1, $2, $3, $4, $5, $6,
     COALESCE((SELECT university_id FROM staff WHERE login = $7), (SELECT university_id FROM stations WHERE id = $8)))";

/// A station's print report, as stored.
pub struct NewStationReport<'a> {
    pub key: &'a str,
    pub station_id: i64,
    pub reservation_id: i64,
    pub outcome: &'a str,
    pub detail: &'a str,
    pub ipp_job_id: Option<i32>,
    pub station_time: i64,
    pub now: i64,
    pub duplicate: bool,
}

/// A card debit or credit, as stored in the ledger.
pub struct NewLedger<'a> {
    pub uid: &'a str,
    pub amount: i64,
    pub kind: &'a str,
    pub order_id: Option<i64>,
    pub station_id: Option<i64>,
    pub key: Option<&'a str>,
    pub now: i64,
}

pub(super) type R<T> = Result<T, sqlx::Error>;

/// What a station's redemption reads and writes. Each call is one statement.
pub trait RedeemStore: Send {
    fn station_by_token(&mut self, token_hash: &str) -> impl Future<Output = R<Option<Station>>> + Send;
    fn throttle_failures(&mut self, key: &str, since_ms: i64) -> impl Future<Output = R<Vec<i64>>> + Send;
    fn order(&mut self, id: i64) -> impl Future<Output = R<Order>> + Send;
    fn order_by_print_number(&mut self, number: &str) -> impl Future<Output = R<Option<Order>>> + Send;
    fn order_university(&mut self, order_id: i64) -> impl Future<Output = R<University>> + Send;
    fn order_lines(&mut self, order_id: i64) -> impl Future<Output = R<Vec<OrderLine>>> + Send;
    fn order_document(&mut self, order_id: i64) -> impl Future<Output = R<Option<Vec<u8>>>> + Send;
    fn set_order_paid(&mut self, order_id: i64, now: i64) -> impl Future<Output = R<()>> + Send;
    fn set_order_printed(&mut self, order_id: i64, now: i64) -> impl Future<Output = R<()>> + Send;
    fn live_reservations(&mut self, order_id: i64, now: i64) -> impl Future<Output = R<Vec<ReservationRow>>> + Send;
    fn insert_reservation(&mut self, order_id: i64, station_id: i64, now: i64, expires_at: i64) -> impl Future<Output = R<i64>> + Send;
    fn reservation(&mut self, id: i64) -> impl Future<Output = R<Option<ReservationRow>>> + Send;
    fn set_reservation_status(&mut self, id: i64, status: &str) -> impl Future<Output = R<()>> + Send;
    fn extend_reservation(&mut self, id: i64, expires_at: i64) -> impl Future<Output = R<()>> + Send;
    fn station_report(&mut self, key: &str) -> impl Future<Output = R<Option<StationReport>>> + Send;
    fn insert_station_report(&mut self, r: &NewStationReport<'_>) -> impl Future<Output = R<()>> + Send;
    fn card(&mut self, uid: &str) -> impl Future<Output = R<Option<Card>>> + Send;
    fn card_balance(&mut self, uid: &str) -> impl Future<Output = R<i64>> + Send;
    fn ledger_by_key(&mut self, key: &str) -> impl Future<Output = R<Option<LedgerEntry>>> + Send;
    fn insert_ledger(&mut self, l: &NewLedger<'_>) -> impl Future<Output = R<()>> + Send;
    fn audit_event(&mut self, e: &AuditEvent<'_>, now: i64) -> impl Future<Output = R<()>> + Send;
}

/// The university an audit line concerns: its staff member's login or its station's id (from the actor).
pub(super) fn audit_owner<'a>(actor: &'a str) -> (Option<&'a str>, Option<i64>) {
    (actor.strip_prefix("staff:"), actor.strip_prefix("station:").and_then(|s| s.parse::<i64>().ok()))
}

impl RedeemStore for Conn {
    async fn station_by_token(&mut self, token_hash: &str) -> R<Option<Station>> {
        sqlx::query_as(&format!("{STATION_SELECT} {STATION_BY_TOKEN}")).bind(token_hash).fetch_optional(self).await
    }
    async fn throttle_failures(&mut self, key: &str, since_ms: i64) -> R<Vec<i64>> {
        sqlx::query_scalar(THROTTLE_FAILURES).bind(key).bind(since_ms).fetch_all(self).await
    }
    async fn order(&mut self, id: i64) -> R<Order> {
        sqlx::query_as(&format!("{ORDER_SELECT} {ORDER_BY_ID}")).bind(id).fetch_one(self).await
    }
    async fn order_by_print_number(&mut self, number: &str) -> R<Option<Order>> {
        sqlx::query_as(&format!("{ORDER_SELECT} {ORDER_BY_NUMBER}")).bind(number).fetch_optional(self).await
    }
    async fn order_university(&mut self, order_id: i64) -> R<University> {
        sqlx::query_as(ORDER_UNIVERSITY).bind(order_id).fetch_one(self).await
    }
    async fn order_lines(&mut self, order_id: i64) -> R<Vec<OrderLine>> {
        sqlx::query_as(ORDER_LINES).bind(order_id).fetch_all(self).await
    }
    async fn order_document(&mut self, order_id: i64) -> R<Option<Vec<u8>>> {
        sqlx::query_scalar(ORDER_DOCUMENT).bind(order_id).fetch_optional(self).await
    }
    async fn set_order_paid(&mut self, order_id: i64, now: i64) -> R<()> {
        sqlx::query(SET_ORDER_PAID).bind(now).bind(order_id).execute(self).await.map(drop)
    }
    async fn set_order_printed(&mut self, order_id: i64, now: i64) -> R<()> {
        sqlx::query(SET_ORDER_PRINTED).bind(now).bind(order_id).execute(self).await.map(drop)
    }
    async fn live_reservations(&mut self, order_id: i64, now: i64) -> R<Vec<ReservationRow>> {
        sqlx::query_as(LIVE_RESERVATIONS).bind(order_id).bind(now).fetch_all(self).await
    }
    async fn insert_reservation(&mut self, order_id: i64, station_id: i64, now: i64, expires_at: i64) -> R<i64> {
        sqlx::query_scalar(INSERT_RESERVATION).bind(order_id).bind(station_id).bind(now).bind(expires_at).fetch_one(self).await
    }
    async fn reservation(&mut self, id: i64) -> R<Option<ReservationRow>> {
        sqlx::query_as(RESERVATION).bind(id).fetch_optional(self).await
    }
    async fn set_reservation_status(&mut self, id: i64, status: &str) -> R<()> {
        sqlx::query(SET_RESERVATION_STATUS).bind(status).bind(id).execute(self).await.map(drop)
    }
    async fn extend_reservation(&mut self, id: i64, expires_at: i64) -> R<()> {
        sqlx::query(EXTEND_RESERVATION).bind(expires_at).bind(id).execute(self).await.map(drop)
    }
    async fn station_report(&mut self, key: &str) -> R<Option<StationReport>> {
        sqlx::query_as(STATION_REPORT).bind(key).fetch_optional(self).await
    }
    async fn insert_station_report(&mut self, r: &NewStationReport<'_>) -> R<()> {
        sqlx::query(INSERT_STATION_REPORT)
            .bind(r.key)
            .bind(r.station_id)
            .bind(r.reservation_id)
            .bind(r.outcome)
            .bind(r.detail)
            .bind(r.ipp_job_id)
            .bind(r.station_time)
            .bind(r.now)
            .bind(i64::from(r.duplicate))
            .execute(self)
            .await
            .map(drop)
    }
    async fn card(&mut self, uid: &str) -> R<Option<Card>> {
        sqlx::query_as(CARD).bind(uid).fetch_optional(self).await
    }
    async fn card_balance(&mut self, uid: &str) -> R<i64> {
        sqlx::query_scalar(CARD_BALANCE).bind(uid).fetch_one(self).await
    }
    async fn ledger_by_key(&mut self, key: &str) -> R<Option<LedgerEntry>> {
        sqlx::query_as(LEDGER_BY_KEY).bind(key).fetch_optional(self).await
    }
    async fn insert_ledger(&mut self, l: &NewLedger<'_>) -> R<()> {
        sqlx::query(INSERT_LEDGER)
            .bind(l.uid)
            .bind(l.amount)
            .bind(l.kind)
            .bind(l.order_id)
            .bind(l.station_id)
            .bind(l.key)
            .bind(l.now)
            .execute(self)
            .await
            .map(drop)
    }
    async fn audit_event(&mut self, e: &AuditEvent<'_>, now: i64) -> R<()> {
        let (staff_login, station_id) = audit_owner(e.actor);
        sqlx::query(AUDIT)
            .bind(now)
            .bind(e.actor)
            .bind(e.action)
            .bind(e.target)
            .bind(e.ip)
            .bind(e.detail)
            .bind(staff_login)
            .bind(station_id)
            .execute(self)
            .await
            .map(drop)
    }
}
