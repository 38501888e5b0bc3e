//! The catalogue, orders, issued certificates, service breaks and reports.

use super::*;
use sqlx::FromRow;

// ---------------------------------------------------------------- catalogue

#[derive(Debug, Clone, FromRow)]
pub struct University {
    pub id: i64,
    pub name_ja: String,
    pub name_en: String,
    pub timezone: String,
    pub system_fee: i64,
    /// Postage of a postal order as the registrar set it in the panel; None:
    /// the configured default (`orders.postage_yen`).
    pub postage: Option<i64>,
}

impl University {
    /// The postage a postal order placed now pays: the registrar's, else `default_yen`.
    pub fn postage_or(&self, default_yen: i64) -> i64 {
        self.postage.unwrap_or(default_yen)
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct CertificateType {
    pub id: i64,
    pub code: String,
    pub name_ja: String,
    pub name_en: String,
    pub fee: i64,
    pub max_copies: i64,
    pub leaving_types: String,
    pub faculty_codes: String,
    pub grad_year_from: Option<i64>,
    pub grad_year_to: Option<i64>,
    #[sqlx(try_from = "Flag")]
    pub active: bool,
    /// 'certificate' (one page per copy) or 'transcript'.
    pub layout: String,
    /// 'ja' (Japanese with English beside it) or 'en' (English only).
    pub language: String,
    /// The certifying sentence with placeholders; empty: the built-in wording.
    pub body_ja: String,
    pub body_en: String,
    /// May be delivered as a signed PDF (the "digital" delivery).
    #[sqlx(try_from = "Flag")]
    pub digital: bool,
}

#[derive(Debug, Clone, Default, FromRow)]
pub struct StudentRecord {
    pub id: i64,
    pub user_id: i64,
    pub university_id: i64,
    pub student_no: String,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub birth_date: String,
    pub leaving_type: String,
    pub graduation_date: Option<String>,
    pub faculty_ja: String,
    pub faculty_en: String,
    pub faculty_code: String,
    pub department_ja: String,
    pub department_en: String,
}

/// Every type of a university, active or not (the catalogue editor).
pub async fn all_certificate_types(c: &mut Conn, university_id: i64) -> Result<Vec<CertificateType>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, code, name_ja, name_en, fee, max_copies, leaving_types, faculty_codes, grad_year_from, grad_year_to, active,
         layout, language, body_ja, body_en, digital FROM certificate_types WHERE university_id = $1 ORDER BY id",
    )
    .bind(university_id)
    .fetch_all(c)
    .await
}

/// Inserts (id None) or updates a certificate type of the university
/// (RowNotFound when it has no type `id`).
pub async fn save_certificate_type(c: &mut Conn, university_id: i64, id: Option<i64>, t: &CertificateType) -> Result<i64, sqlx::Error> {
    match id {
        Some(id) => {
            let r = sqlx::query(
                "UPDATE certificate_types SET code = $1, name_ja = $2, name_en = $3, fee = $4, max_copies = $5, leaving_types = $6,
                 faculty_codes = $7, grad_year_from = $8, grad_year_to = $9, active = $10, layout = $11, language = $12, body_ja = $13, body_en = $14,
                 digital = $17
                 WHERE id = $15 AND university_id = $16",
            )
            .bind(&t.code).bind(&t.name_ja).bind(&t.name_en).bind(t.fee).bind(t.max_copies).bind(&t.leaving_types)
            .bind(&t.faculty_codes).bind(t.grad_year_from).bind(t.grad_year_to).bind(i64::from(t.active))
            .bind(&t.layout).bind(&t.language).bind(&t.body_ja).bind(&t.body_en).bind(id).bind(university_id).bind(i64::from(t.digital))
            .execute(c)
            .await?;
            if r.rows_affected() == 0 {
                return Err(sqlx::Error::RowNotFound);
            }
            Ok(id)
        }
        None => {
            sqlx::query_scalar(
                "INSERT INTO certificate_types (university_id, code, name_ja, name_en, fee, max_copies, leaving_types, faculty_codes,
                 grad_year_from, grad_year_to, active, layout, language, body_ja, body_en, digital)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
            )
            .bind(university_id).bind(&t.code).bind(&t.name_ja).bind(&t.name_en).bind(t.fee).bind(t.max_copies).bind(&t.leaving_types)
            .bind(&t.faculty_codes).bind(t.grad_year_from).bind(t.grad_year_to).bind(i64::from(t.active))
            .bind(&t.layout).bind(&t.language).bind(&t.body_ja).bind(&t.body_en).bind(i64::from(t.digital))
            .fetch_one(c)
            .await
        }
    }
}

/// The university's seal image (PNG), if one was uploaded.
pub async fn university_seal(c: &mut Conn, university_id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT seal_png FROM universities WHERE id = $1").bind(university_id).fetch_optional(c).await.map(Option::flatten)
}

pub async fn set_university_seal(c: &mut Conn, university_id: i64, png: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE universities SET seal_png = $1 WHERE id = $2").bind(png).bind(university_id).execute(c).await?;
    Ok(())
}

pub async fn insert_university(c: &mut Conn, name_ja: &str, name_en: &str, timezone: &str, system_fee: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO universities (name_ja, name_en, timezone, system_fee) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(name_ja)
        .bind(name_en)
        .bind(timezone)
        .bind(system_fee)
        .fetch_one(c)
        .await
}

pub async fn university_count(c: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM universities").fetch_one(c).await
}

pub async fn university(c: &mut Conn, id: i64) -> Result<University, sqlx::Error> {
    sqlx::query_as("SELECT id, name_ja, name_en, timezone, system_fee, postage FROM universities WHERE id = $1")
        .bind(id)
        .fetch_one(c)
        .await
}

/// The registrar sets the system usage fee and the postage (None: back to
/// the configured default); orders placed from now on pay them.
pub async fn set_university_fees(c: &mut Conn, university_id: i64, system_fee: i64, postage: Option<i64>) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE universities SET system_fee = $1, postage = $2 WHERE id = $3")
        .bind(system_fee)
        .bind(postage)
        .bind(university_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The university an order was placed at (through its student record).
pub async fn order_university(c: &mut Conn, order_id: i64) -> Result<University, sqlx::Error> {
    RedeemStore::order_university(c, order_id).await
}

pub async fn certificate_types(c: &mut Conn, university_id: i64) -> Result<Vec<CertificateType>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, code, name_ja, name_en, fee, max_copies, leaving_types, faculty_codes, grad_year_from, grad_year_to, active,
         layout, language, body_ja, body_en, digital
         FROM certificate_types WHERE university_id = $1 AND active = 1 ORDER BY id",
    )
    .bind(university_id)
    .fetch_all(c)
    .await
}

const STUDENT_RECORD_SELECT: &str = "SELECT s.id, s.user_id, s.university_id, s.student_no, s.name_kanji,
    s.name_kana, s.name_roman, s.birth_date, s.leaving_type, s.graduation_date,
    f.name_ja AS faculty_ja, f.name_en AS faculty_en, f.code AS faculty_code, d.name_ja AS department_ja, d.name_en AS department_en
    FROM student_records s JOIN faculties f ON f.id = s.faculty_id JOIN departments d ON d.id = s.department_id";

pub async fn student_records(c: &mut Conn, user_id: i64) -> Result<Vec<StudentRecord>, sqlx::Error> {
    sqlx::query_as(&format!("{STUDENT_RECORD_SELECT} WHERE s.user_id = $1 ORDER BY s.id"))
        .bind(user_id)
        .fetch_all(c)
        .await
}

// ---------------------------------------------------------------- orders

#[derive(Debug, Clone, FromRow)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub student_record_id: i64,
    pub delivery: String,
    pub payment_method: String,
    pub status: String,
    pub fees: i64,
    pub system_fee: i64,
    pub total: i64,
    pub print_number: Option<String>,
    pub created_at: i64,
    pub pay_deadline: i64,
    pub print_deadline: i64,
    pub paid_at: Option<i64>,
    pub printed_at: Option<i64>,
    pub pages: i64,
    pub capture_id: Option<String>,
    pub postage: i64,
    pub post_address_sealed: Option<String>,
    pub shipped_at: Option<i64>,
    pub smartpit_number: Option<String>,
    pub store_file_id: Option<String>,
    pub store_user_number: Option<String>,
    pub store_reservation_number: Option<String>,
    pub refunded_at: Option<i64>,
    /// How the refund went back: 'card', 'paypal' or 'office' (None: before migration 0030).
    pub refund_method: Option<String>,
    pub refund_paid_back_at: Option<i64>,
    /// The user's bank account for a refund the office pays back, sealed.
    pub refund_bank_sealed: Option<String>,
    /// A held order: the characters no font could draw.
    pub held_chars: String,
    /// Why the last automatic refund could not be made (until one is).
    pub refund_error: Option<String>,
}

pub(super) const ORDER_SELECT: &str = "SELECT id, user_id, student_record_id, delivery, payment_method, status, fees,
    system_fee, total, print_number, created_at, pay_deadline, print_deadline, paid_at, printed_at, pages, capture_id, postage, post_address_sealed, shipped_at, smartpit_number,
    store_file_id, store_user_number, store_reservation_number, refunded_at, refund_method, refund_paid_back_at, refund_bank_sealed, held_chars, refund_error FROM orders";

#[derive(Debug, Clone, FromRow)]
pub struct OrderLine {
    pub id: i64,
    pub certificate_type_id: i64,
    pub name_ja: String,
    pub name_en: String,
    pub unit_fee: i64,
    pub copies: i64,
    pub amount: i64,
}

pub struct NewOrder<'a> {
    pub user_id: i64,
    pub student_record_id: i64,
    pub delivery: &'a str,
    pub payment_method: &'a str,
    pub fees: i64,
    pub system_fee: i64,
    pub total: i64,
    pub print_number: Option<&'a str>,
    pub created_at: i64,
    pub pay_deadline: i64,
    pub print_deadline: i64,
    pub postage: i64,
}

pub async fn insert_order(c: &mut Conn, o: &NewOrder<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO orders (user_id, student_record_id, delivery, payment_method, status, fees, system_fee,
         total, print_number, created_at, pay_deadline, print_deadline, postage)
         VALUES ($1, $2, $3, $4, 'awaiting_payment', $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(o.user_id)
    .bind(o.student_record_id)
    .bind(o.delivery)
    .bind(o.payment_method)
    .bind(o.fees)
    .bind(o.system_fee)
    .bind(o.total)
    .bind(o.print_number)
    .bind(o.created_at)
    .bind(o.pay_deadline)
    .bind(o.print_deadline)
    .bind(o.postage)
    .fetch_one(c)
    .await
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_order_line(
    c: &mut Conn,
    order_id: i64,
    type_id: i64,
    name_ja: &str,
    name_en: &str,
    unit_fee: i64,
    copies: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO order_lines (order_id, certificate_type_id, name_ja, name_en, unit_fee, copies, amount)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(order_id)
    .bind(type_id)
    .bind(name_ja)
    .bind(name_en)
    .bind(unit_fee)
    .bind(copies)
    .bind(unit_fee * copies)
    .fetch_one(c)
    .await
}

pub async fn insert_certificate(
    c: &mut Conn,
    order_line_id: i64,
    serial: &str,
    verification_code: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO certificates (order_line_id, serial, verification_code, issued_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(order_line_id)
    .bind(serial)
    .bind(verification_code)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn set_order_document(c: &mut Conn, order_id: i64, pdf: &[u8], pages: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO order_documents (order_id, pdf) VALUES ($1, $2) ON CONFLICT (order_id) DO UPDATE SET pdf = excluded.pdf")
        .bind(order_id)
        .bind(pdf)
        .execute(&mut *c)
        .await?;
    sqlx::query("UPDATE orders SET pages = $1 WHERE id = $2").bind(pages).bind(order_id).execute(c).await?;
    Ok(())
}

pub async fn order(c: &mut Conn, id: i64) -> Result<Order, sqlx::Error> {
    RedeemStore::order(c, id).await
}

pub async fn order_by_print_number(c: &mut Conn, number: &str) -> Result<Option<Order>, sqlx::Error> {
    RedeemStore::order_by_print_number(c, number).await
}

pub async fn orders_of_user(c: &mut Conn, user_id: i64) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE user_id = $1 ORDER BY id DESC"))
        .bind(user_id)
        .fetch_all(c)
        .await
}

pub async fn set_order_post_address(c: &mut Conn, order_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET post_address_sealed = $1 WHERE id = $2").bind(sealed).bind(order_id).execute(c).await?;
    Ok(())
}

/// The university of the order `o` (through its student record), for SQL.
const ORDER_UNIVERSITY: &str = "(SELECT sr.university_id FROM student_records sr WHERE sr.id = o.student_record_id)";

/// The university an order belongs to; None for no such order.
pub async fn order_university_id(c: &mut Conn, order_id: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(&format!("SELECT {ORDER_UNIVERSITY} FROM orders o WHERE o.id = $1")).bind(order_id).fetch_optional(c).await
}

/// a university's paid postal orders not posted yet, oldest first.
pub async fn orders_to_post(c: &mut Conn, university_id: i64) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{ORDER_SELECT} WHERE delivery = 'post' AND status = 'paid' AND shipped_at IS NULL
           AND student_record_id IN (SELECT id FROM student_records WHERE university_id = $1) ORDER BY paid_at, id"
    ))
        .bind(university_id)
        .fetch_all(c)
        .await
}

/// Staff posted it: printed and shipped (only once).
pub async fn set_order_shipped(c: &mut Conn, order_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = 'printed', printed_at = $1, shipped_at = $2 WHERE id = $3 AND delivery = 'post' AND status = 'paid' AND shipped_at IS NULL",
    )
    .bind(now)
    .bind(now)
    .bind(order_id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records a refund and how it goes back (`method`: 'card', 'paypal',
/// 'office'): the order is cancelled (its number stops working), once.
/// An automatic refund could not be made: why, for staff (kept until one is).
pub async fn set_refund_error(c: &mut Conn, order_id: i64, error: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET refund_error = $1, refund_error_at = $2 WHERE id = $3 AND refunded_at IS NULL")
        .bind(error)
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn set_order_refunded(c: &mut Conn, order_id: i64, reason: &str, method: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = 'cancelled', refunded_at = $1, refund_reason = $2, refund_method = $3, refund_error = NULL
         WHERE id = $4 AND status IN ('paid', 'printed') AND refunded_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(method)
    .bind(order_id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_order_smartpit(c: &mut Conn, order_id: i64, number: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET smartpit_number = $1 WHERE id = $2 AND smartpit_number IS NULL").bind(number).bind(order_id).execute(c).await?;
    Ok(())
}

pub async fn order_by_smartpit(c: &mut Conn, number: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE smartpit_number = $1")).bind(number).fetch_optional(c).await
}

pub async fn smartpit_notice_seen(c: &mut Conn, notice_id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM smartpit_notices WHERE notice_id = $1").bind(notice_id).fetch_one(c).await? > 0)
}

pub async fn insert_smartpit_notice(c: &mut Conn, notice_id: &str, number: &str, order_id: i64, amount: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO smartpit_notices (notice_id, payment_number, order_id, amount, received_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(notice_id)
        .bind(number)
        .bind(order_id)
        .bind(amount)
        .bind(now)
        .execute(c)
        .await?;
    Ok(())
}

/// Paid convenience-store print orders not yet registered with the service.
pub async fn orders_for_store_print(c: &mut Conn) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE delivery = 'store' AND status = 'paid' AND store_file_id IS NULL ORDER BY paid_at, id"))
        .fetch_all(c)
        .await
}

/// Records the service's registration, once: true the first time.
pub async fn set_order_store(c: &mut Conn, order_id: i64, file_id: &str, user_number: &str, reservation_number: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET store_file_id = $1, store_user_number = $2, store_reservation_number = $3, store_registered_at = $4
         WHERE id = $5 AND delivery = 'store' AND status = 'paid' AND store_file_id IS NULL",
    )
    .bind(file_id)
    .bind(user_number)
    .bind(reservation_number)
    .bind(now)
    .bind(order_id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn order_by_store_file(c: &mut Conn, file_id: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE store_file_id = $1")).bind(file_id).fetch_optional(c).await
}

/// Records a print notice; false when this notice id was recorded before.
pub async fn insert_storeprint_notice(c: &mut Conn, notice_id: &str, order_id: i64, event: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("INSERT INTO storeprint_notices (notice_id, order_id, event, received_at) VALUES ($1, $2, $3, $4) ON CONFLICT (notice_id) DO NOTHING")
        .bind(notice_id)
        .bind(order_id)
        .bind(event)
        .bind(now)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// A store printed it: the order is printed (only from paid).
pub async fn set_store_order_printed(c: &mut Conn, order_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE orders SET status = 'printed', printed_at = $1 WHERE id = $2 AND delivery = 'store' AND status = 'paid'")
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks an order paid offline-of-us (Smart Pit): true only the first time.
pub async fn set_order_paid_cash(c: &mut Conn, order_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE orders SET status = 'paid', paid_at = $1 WHERE id = $2 AND status = 'awaiting_payment'")
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_order_paypal(c: &mut Conn, order_id: i64, paypal_order_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET paypal_order_id = $1 WHERE id = $2").bind(paypal_order_id).bind(order_id).execute(c).await?;
    Ok(())
}

pub async fn order_by_paypal(c: &mut Conn, paypal_order_id: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE paypal_order_id = $1")).bind(paypal_order_id).fetch_optional(c).await
}

/// Marks an order paid by a PayPal capture: true only the first time.
pub async fn set_order_paid_online(c: &mut Conn, order_id: i64, capture_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = 'paid', paid_at = $1, capture_id = $2 WHERE id = $3 AND status = 'awaiting_payment' AND capture_id IS NULL",
    )
    .bind(now)
    .bind(capture_id)
    .bind(order_id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn expire_unpaid_orders(c: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("UPDATE orders SET status = 'expired' WHERE status IN ('awaiting_payment', 'held') AND pay_deadline <= $1")
        .bind(now)
        .execute(c)
        .await?;
    Ok(r.rows_affected())
}

pub async fn cancel_unpaid_order(c: &mut Conn, order_id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('awaiting_payment', 'held')")
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Order search for staff: by order id, the last 4 digits of the print
/// number, the user's e-mail address (part of it), or status.
pub async fn search_orders(c: &mut Conn, q: &str, status: &str, limit: i64) -> Result<Vec<Order>, sqlx::Error> {
    let q = q.trim();
    let id: i64 = q.parse().unwrap_or(-1);
    let like = format!("%{}%", q.replace(['%', '_', '\\'], ""));
    let tail = if q.len() == 4 && q.chars().all(|c| c.is_ascii_digit()) { format!("%{q}") } else { "-".into() };
    sqlx::query_as(&format!(
        "{ORDER_SELECT} WHERE ($1 = '' OR id = $2 OR print_number LIKE $3 OR user_id IN (SELECT id FROM users WHERE lower(email) LIKE lower($4)))
         AND ($5 = '' OR status = $6) ORDER BY id DESC LIMIT $7"
    ))
    .bind(q)
    .bind(id)
    .bind(tail)
    .bind(like)
    .bind(status)
    .bind(status)
    .bind(limit)
    .fetch_all(c)
    .await
}

pub async fn recent_orders(c: &mut Conn, limit: i64) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} ORDER BY id DESC LIMIT $1")).bind(limit).fetch_all(c).await
}

/// An order (alias `o`) whose refund the office still pays back by hand: a
/// refunded order paid in cash at a store (Smart Pit) or at a station's
/// e-money terminal, or an order a terminal took a second payment for.
const REFUND_DUE: &str = "(o.refund_paid_back_at IS NULL AND (
      (o.refunded_at IS NOT NULL AND (o.payment_method = 'smartpit'
         OR EXISTS (SELECT 1 FROM terminal_payments t WHERE t.order_id = o.id AND t.duplicate = 0)))
      OR EXISTS (SELECT 1 FROM terminal_payments t WHERE t.order_id = o.id AND t.duplicate = 1)))";

/// What the staff order list filters by; empty strings and `None` filter nothing.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter<'a> {
    /// The university whose orders these are.
    pub university_id: i64,
    /// An order id, the last 4 digits of the print number, or part of the e-mail address.
    pub q: &'a str,
    pub status: &'a str,
    pub delivery: &'a str,
    pub payment: &'a str,
    /// Only orders whose refund the office still pays back.
    pub refund_due: bool,
    /// Only orders whose automatic refund could not be made.
    pub refund_failing: bool,
    /// Placed in [from, to) (unix seconds).
    pub placed: Option<(i64, i64)>,
}

/// One row of the staff order list: the order, who ordered it, what paid
/// for it and where it printed.
#[derive(Debug, Clone, FromRow)]
pub struct AdminOrderRow {
    pub id: i64,
    pub created_at: i64,
    pub status: String,
    pub delivery: String,
    pub payment_method: String,
    pub total: i64,
    pub print_number: Option<String>,
    pub printed_at: Option<i64>,
    pub shipped_at: Option<i64>,
    pub refunded_at: Option<i64>,
    pub refund_paid_back_at: Option<i64>,
    pub customer: String,
    pub student_no: String,
    pub email: String,
    /// The IC card its stored value was debited from.
    pub card_uid: Option<String>,
    /// The e-money brand a station's terminal took.
    pub terminal_brand: Option<String>,
    pub capture_id: Option<String>,
    /// The station that printed it (online, else offline).
    pub station: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub refund_due: bool,
}

/// The staff order list, newest first.
pub async fn admin_orders(c: &mut Conn, f: &OrderFilter<'_>, limit: i64) -> Result<Vec<AdminOrderRow>, sqlx::Error> {
    let q = f.q.trim();
    let id: i64 = q.parse().unwrap_or(-1);
    let like = format!("%{}%", q.replace(['%', '_', '\\'], ""));
    let tail = if q.len() == 4 && q.chars().all(|c| c.is_ascii_digit()) { format!("%{q}") } else { "-".into() };
    let (from, to) = f.placed.unwrap_or((i64::MIN, i64::MAX));
    sqlx::query_as(&format!(
        "SELECT o.id, o.created_at, o.status, o.delivery, o.payment_method, o.total, o.print_number, o.printed_at, o.shipped_at,
           o.refunded_at, o.refund_paid_back_at, s.name_kanji AS customer, s.student_no, u.email,
           (SELECT l.card_uid FROM ledger l WHERE l.order_id = o.id AND l.kind = 'debit' ORDER BY l.id LIMIT 1) AS card_uid,
           (SELECT t.brand FROM terminal_payments t WHERE t.order_id = o.id AND t.duplicate = 0 ORDER BY t.paid_at, t.idempotency_key LIMIT 1) AS terminal_brand,
           o.capture_id,
           COALESCE(
             (SELECT st.name FROM reservations r JOIN stations st ON st.id = r.station_id
               WHERE r.order_id = o.id AND r.status = 'printed' ORDER BY r.id DESC LIMIT 1),
             (SELECT st.name FROM offline_prints p JOIN stations st ON st.id = p.station_id
               WHERE p.order_id = o.id AND p.outcome = 'printed' ORDER BY p.duplicate, p.printed_at, p.received_at, p.idempotency_key LIMIT 1)) AS station,
           {REFUND_DUE} AS refund_due
         FROM orders o JOIN users u ON u.id = o.user_id JOIN student_records s ON s.id = o.student_record_id
         WHERE ($1 = '' OR o.id = $2 OR o.print_number LIKE $3 OR lower(u.email) LIKE lower($4))
           AND ($5 = '' OR o.status = $6) AND ($7 = '' OR o.delivery = $8) AND ($9 = '' OR o.payment_method = $10)
           AND ($11 = 0 OR {REFUND_DUE}) AND ($12 = 0 OR (o.refund_error IS NOT NULL AND o.refunded_at IS NULL))
           AND o.created_at >= $13 AND o.created_at < $14 AND s.university_id = $16
         ORDER BY o.id DESC LIMIT $15"
    ))
    .bind(q)
    .bind(id)
    .bind(tail)
    .bind(like)
    .bind(f.status)
    .bind(f.status)
    .bind(f.delivery)
    .bind(f.delivery)
    .bind(f.payment)
    .bind(f.payment)
    .bind(i64::from(f.refund_due))
    .bind(i64::from(f.refund_failing))
    .bind(from)
    .bind(to)
    .bind(limit)
    .bind(f.university_id)
    .fetch_all(c)
    .await
}

/// The staff dashboard's counts.
#[derive(Debug, Clone, Default, FromRow)]
pub struct DashboardCounts {
    /// Applications waiting for review.
    pub applications: i64,
    /// Postal orders paid and not posted yet.
    pub to_post: i64,
    /// Orders held for the registrar.
    pub held: i64,
    /// Refunds the office still pays back by hand.
    pub refunds_due: i64,
    /// Automatic refunds the provider refused or could not take.
    pub refunds_failing: i64,
    /// Orders placed in the day asked for...
    pub day_orders: i64,
    /// ... and the yen received for them (paid or printed).
    pub day_received: i64,
}

/// A university's dashboard counts; the day is [day_start, day_end) in unix seconds.
pub async fn dashboard_counts(c: &mut Conn, university_id: i64, day_start: i64, day_end: i64) -> Result<DashboardCounts, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT (SELECT COUNT(*) FROM registrations WHERE status = 'pending' AND university_id = $5) AS applications,
                (SELECT COUNT(*) FROM orders o WHERE delivery = 'post' AND status = 'paid' AND shipped_at IS NULL AND {ORDER_UNIVERSITY} = $5) AS to_post,
                (SELECT COUNT(*) FROM orders o WHERE status = 'held' AND {ORDER_UNIVERSITY} = $5) AS held,
                (SELECT COUNT(*) FROM orders o WHERE {REFUND_DUE} AND {ORDER_UNIVERSITY} = $5) AS refunds_due,
                (SELECT COUNT(*) FROM orders o WHERE refund_error IS NOT NULL AND refunded_at IS NULL AND {ORDER_UNIVERSITY} = $5) AS refunds_failing,
                (SELECT COUNT(*) FROM orders o WHERE created_at >= $1 AND created_at < $2 AND {ORDER_UNIVERSITY} = $5) AS day_orders,
                (SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) FROM orders o WHERE created_at >= $3 AND created_at < $4 AND status IN ('paid', 'printed')
                   AND {ORDER_UNIVERSITY} = $5) AS day_received"
    ))
    .bind(day_start)
    .bind(day_end)
    .bind(day_start)
    .bind(day_end)
    .bind(university_id)
    .fetch_one(c)
    .await
}

/// The office paid a refund back by hand: marked once, only where one is due.
pub async fn set_refund_paid_back(c: &mut Conn, order_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    // the bank details were needed for this payment only: not kept after it
    let r = sqlx::query(&format!("UPDATE orders AS o SET refund_paid_back_at = $1, refund_bank_sealed = NULL WHERE o.id = $2 AND {REFUND_DUE}"))
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// An order's refund: when, why, and when the office paid it back (if it does).
pub async fn order_refund(c: &mut Conn, order_id: i64) -> Result<Option<(i64, String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as("SELECT refunded_at, refund_reason, refund_paid_back_at FROM orders WHERE id = $1 AND refunded_at IS NOT NULL")
        .bind(order_id)
        .fetch_optional(c)
        .await
}

/// Whether the office still pays back a refund of this order.
pub async fn refund_due(c: &mut Conn, order_id: i64) -> Result<bool, sqlx::Error> {
    let due: Option<Flag> = sqlx::query_scalar(&format!("SELECT {REFUND_DUE} FROM orders o WHERE o.id = $1")).bind(order_id).fetch_optional(c).await?;
    Ok(due.is_some_and(bool::from))
}

/// Stores the bank account (sealed) for a refund the office still pays
/// back; false when none is due (paid back already, or no such refund).
pub async fn set_refund_bank(c: &mut Conn, order_id: i64, sealed: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(&format!("UPDATE orders AS o SET refund_bank_sealed = $1, refund_bank_at = $2 WHERE o.id = $3 AND {REFUND_DUE}"))
        .bind(sealed)
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// ST-5: paid on-campus orders past their print deadline, not refunded, of
/// which a print failed at a station (reported online or offline) and that
/// were not printed: the automatic refund's candidates, oldest first.
/// (A paid order never tried at a printer is not among them: O-5.)
pub async fn failed_prints_past_deadline(c: &mut Conn, now: i64) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{ORDER_SELECT} WHERE delivery = 'campus' AND status = 'paid' AND refunded_at IS NULL AND printed_at IS NULL AND print_deadline <= $1
           AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = orders.id AND r.status = 'active' AND r.expires_at > $1)
           AND (EXISTS (SELECT 1 FROM station_reports sr JOIN reservations r ON r.id = sr.reservation_id
                         WHERE r.order_id = orders.id AND sr.outcome = 'failed')
                OR EXISTS (SELECT 1 FROM offline_prints p WHERE p.order_id = orders.id AND p.outcome = 'failed'))
         ORDER BY id"
    ))
    .bind(now)
    .fetch_all(c)
    .await
}

/// Holds an order for staff: no configured font has the characters `chars`.
pub async fn set_order_held(c: &mut Conn, order_id: i64, chars: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET status = 'held', held_chars = $1 WHERE id = $2").bind(chars).bind(order_id).execute(c).await?;
    Ok(())
}

/// A held order whose characters are still missing when staff try to release it.
pub async fn set_held_chars(c: &mut Conn, order_id: i64, chars: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET held_chars = $1 WHERE id = $2 AND status = 'held'").bind(chars).bind(order_id).execute(c).await?;
    Ok(())
}

/// Releases a held order, once: on to awaiting payment (or paid, if it was
/// paid), with its print number (on-campus) and deadlines counted from now.
pub async fn release_held_order(c: &mut Conn, order_id: i64, print_number: Option<&str>, pay_deadline: i64, print_deadline: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = CASE WHEN paid_at IS NULL THEN 'awaiting_payment' ELSE 'paid' END, held_chars = '',
           print_number = $1, pay_deadline = $2, print_deadline = $3
         WHERE id = $4 AND status = 'held'",
    )
    .bind(print_number)
    .bind(pay_deadline)
    .bind(print_deadline)
    .bind(order_id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// An order's certificates in order: (line id, certificate type id, serial, verification code).
pub async fn order_copies(c: &mut Conn, order_id: i64) -> Result<Vec<(i64, i64, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT l.id, l.certificate_type_id, c.serial, c.verification_code FROM certificates c JOIN order_lines l ON l.id = c.order_line_id
         WHERE l.order_id = $1 ORDER BY l.id, c.id",
    )
    .bind(order_id)
    .fetch_all(c)
    .await
}

pub async fn order_lines(c: &mut Conn, order_id: i64) -> Result<Vec<OrderLine>, sqlx::Error> {
    RedeemStore::order_lines(c, order_id).await
}

pub async fn maintenance_done(c: &mut Conn, name: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM maintenance_done WHERE name = $1").bind(name).fetch_one(c).await? > 0)
}

pub async fn mark_maintenance_done(c: &mut Conn, name: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO maintenance_done (name, done_at) VALUES ($1, $2) ON CONFLICT DO NOTHING").bind(name).bind(now).execute(c).await?;
    Ok(())
}

/// Orders whose PDF was stored before PDFs were sealed.
pub async fn orders_with_plain_pdf(c: &mut Conn) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT order_id FROM order_documents WHERE substr(pdf, 1, 4) = $1 ORDER BY order_id").bind(b"%PDF".to_vec()).fetch_all(c).await
}

pub async fn replace_order_document(c: &mut Conn, order_id: i64, stored: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE order_documents SET pdf = $1 WHERE order_id = $2").bind(stored).bind(order_id).execute(c).await?;
    Ok(())
}

pub async fn order_document(c: &mut Conn, order_id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    RedeemStore::order_document(c, order_id).await
}

pub async fn set_order_paid(c: &mut Conn, order_id: i64, now: i64) -> Result<(), sqlx::Error> {
    RedeemStore::set_order_paid(c, order_id, now).await
}

pub async fn set_order_printed(c: &mut Conn, order_id: i64, now: i64) -> Result<(), sqlx::Error> {
    RedeemStore::set_order_printed(c, order_id, now).await
}

// ---------------------------------------------------------------- catalogue lists for forms

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct Named {
    pub id: i64,
    pub parent_id: i64,
    pub code: String,
    pub name_ja: String,
    pub name_en: String,
}

pub async fn universities(c: &mut Conn) -> Result<Vec<Named>, sqlx::Error> {
    sqlx::query_as("SELECT id, 0 AS parent_id, '' AS code, name_ja, name_en FROM universities ORDER BY id").fetch_all(c).await
}

/// The office of a university that users contact, and the sender name on
/// the mails about its orders (each empty: the deployment's defaults).
#[derive(Debug, Clone, Default, PartialEq, FromRow, serde::Deserialize)]
#[serde(default)]
pub struct Office {
    pub mail_sender: String,
    pub desk_ja: String,
    pub desk_en: String,
    pub hours_ja: String,
    pub hours_en: String,
    pub contact_phone: String,
    pub contact_email: String,
}

impl Office {
    /// Every field without surrounding blanks (as typed into the form).
    pub fn trimmed(&self) -> Office {
        let t = |s: &String| s.trim().to_string();
        Office {
            mail_sender: t(&self.mail_sender),
            desk_ja: t(&self.desk_ja),
            desk_en: t(&self.desk_en),
            hours_ja: t(&self.hours_ja),
            hours_en: t(&self.hours_en),
            contact_phone: t(&self.contact_phone),
            contact_email: t(&self.contact_email),
        }
    }
}

const OFFICE_COLUMNS: &str = "u.mail_sender, u.desk_ja, u.desk_en, u.hours_ja, u.hours_en, u.contact_phone, u.contact_email";

pub async fn university_office(c: &mut Conn, university_id: i64) -> Result<Office, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {OFFICE_COLUMNS} FROM universities u WHERE u.id = $1")).bind(university_id).fetch_one(c).await
}

/// The office of the university an order belongs to.
pub async fn order_office(c: &mut Conn, order_id: i64) -> Result<Office, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {OFFICE_COLUMNS} FROM orders o JOIN student_records s ON s.id = o.student_record_id JOIN universities u ON u.id = s.university_id WHERE o.id = $1"
    ))
    .bind(order_id)
    .fetch_one(c)
    .await
}

/// The office of the one university a person belongs to (their student
/// records, their applications), by their e-mail address; None when they
/// belong to none or to several (then the service's desk is the one to name).
pub async fn person_office(c: &mut Conn, email: &str) -> Result<Option<Office>, sqlx::Error> {
    let offices: Vec<Office> = sqlx::query_as(&format!(
        "SELECT {OFFICE_COLUMNS} FROM universities u WHERE u.id IN (
           SELECT r.university_id FROM users p JOIN student_records r ON r.user_id = p.id WHERE p.email = $1
           UNION SELECT g.university_id FROM registrations g WHERE g.email = $1 AND g.university_id IS NOT NULL)"
    ))
    .bind(email)
    .fetch_all(c)
    .await?;
    Ok(the_one(offices))
}

/// The office when there is exactly one (naming one of several would be a guess).
fn the_one(offices: Vec<Office>) -> Option<Office> {
    if offices.len() == 1 { offices.into_iter().next() } else { None }
}

/// As [`person_office`], for the portal user a session belongs to.
pub async fn session_office(c: &mut Conn, token_hash: &str) -> Result<Option<Office>, sqlx::Error> {
    let offices: Vec<Office> = sqlx::query_as(&format!(
        "SELECT {OFFICE_COLUMNS} FROM universities u WHERE u.id IN (
           SELECT r.university_id FROM sessions s JOIN student_records r ON r.user_id = s.user_id WHERE s.token_hash = $1)"
    ))
    .bind(token_hash)
    .fetch_all(c)
    .await?;
    Ok(the_one(offices))
}

pub async fn set_university_office(c: &mut Conn, university_id: i64, o: &Office) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE universities SET mail_sender = $1, desk_ja = $2, desk_en = $3, hours_ja = $4, hours_en = $5, contact_phone = $6, contact_email = $7 WHERE id = $8",
    )
    .bind(&o.mail_sender)
    .bind(&o.desk_ja)
    .bind(&o.desk_en)
    .bind(&o.hours_ja)
    .bind(&o.hours_en)
    .bind(&o.contact_phone)
    .bind(&o.contact_email)
    .bind(university_id)
    .execute(c)
    .await?;
    Ok(())
}

/// A university on the platform, for its operators: what it has set up.
#[derive(Debug, Clone, FromRow)]
pub struct UniversityOverview {
    pub id: i64,
    pub name_ja: String,
    pub name_en: String,
    pub stations: i64,
    pub staff: i64,
    pub types: i64,
    /// 'roster', 'ldap', or None (the deployment's default).
    pub directory_kind: Option<String>,
}

pub async fn university_overview(c: &mut Conn) -> Result<Vec<UniversityOverview>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.name_ja, u.name_en,
           (SELECT COUNT(*) FROM stations s WHERE s.university_id = u.id AND s.status = 'active') AS stations,
           (SELECT COUNT(*) FROM staff f WHERE f.university_id = u.id AND f.active = 1) AS staff,
           (SELECT COUNT(*) FROM certificate_types t WHERE t.university_id = u.id AND t.active = 1) AS types,
           u.directory_kind
         FROM universities u ORDER BY u.id",
    )
    .fetch_all(c)
    .await
}

pub async fn faculties(c: &mut Conn) -> Result<Vec<Named>, sqlx::Error> {
    sqlx::query_as("SELECT id, university_id AS parent_id, code, name_ja, name_en FROM faculties ORDER BY id").fetch_all(c).await
}

pub async fn departments(c: &mut Conn) -> Result<Vec<Named>, sqlx::Error> {
    sqlx::query_as("SELECT id, faculty_id AS parent_id, code, name_ja, name_en FROM departments ORDER BY id").fetch_all(c).await
}

// ---------------------------------------------------------------- certificates (D-1)

/// What the public verification page may say about one certificate.
#[derive(Debug, Clone, FromRow)]
pub struct IssuedCertificate {
    pub id: i64,
    pub order_id: i64,
    pub serial: String,
    pub verification_code: String,
    pub issued_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: String,
    pub type_ja: String,
    pub type_en: String,
    pub name_kanji: String,
    pub name_roman: String,
    pub university_ja: String,
    pub university_en: String,
    pub order_status: String,
    pub printed_at: Option<i64>,
    pub delivery: String,
}

const ISSUED_SELECT: &str = "SELECT c.id, o.id AS order_id, c.serial, c.verification_code, c.issued_at, c.revoked_at,
    c.revoked_reason, l.name_ja AS type_ja, l.name_en AS type_en, s.name_kanji, s.name_roman,
    u.name_ja AS university_ja, u.name_en AS university_en, o.status AS order_status, o.printed_at, o.delivery
    FROM certificates c JOIN order_lines l ON l.id = c.order_line_id JOIN orders o ON o.id = l.order_id
    JOIN student_records s ON s.id = o.student_record_id JOIN universities u ON u.id = s.university_id";

pub async fn certificate_by_code(c: &mut Conn, code: &str) -> Result<Option<IssuedCertificate>, sqlx::Error> {
    sqlx::query_as(&format!("{ISSUED_SELECT} WHERE c.verification_code = $1")).bind(code).fetch_optional(c).await
}

pub async fn certificates_of_order(c: &mut Conn, order_id: i64) -> Result<Vec<IssuedCertificate>, sqlx::Error> {
    sqlx::query_as(&format!("{ISSUED_SELECT} WHERE o.id = $1 ORDER BY c.id")).bind(order_id).fetch_all(c).await
}

pub async fn certificate_order(c: &mut Conn, certificate_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT l.order_id FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE c.id = $1")
        .bind(certificate_id)
        .fetch_one(c)
        .await
}

pub async fn revoke_certificate(c: &mut Conn, id: i64, reason: &str, staff_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE certificates SET revoked_at = $1, revoked_reason = $2, revoked_by = $3 WHERE id = $4 AND revoked_at IS NULL")
        .bind(now)
        .bind(reason)
        .bind(staff_id)
        .bind(id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

// ---------------------------------------------------------------- service breaks (O-7)

#[derive(Debug, Clone, FromRow)]
pub struct ServiceBreak {
    pub id: i64,
    pub university_id: i64,
    pub kind: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub note_ja: String,
    pub note_en: String,
}

/// The break in force at `now` for a university, if any (the one ending last).
pub async fn current_break(c: &mut Conn, university_id: i64, now: i64) -> Result<Option<ServiceBreak>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, university_id, kind, starts_at, ends_at, note_ja, note_en FROM service_breaks
         WHERE university_id = $1 AND starts_at <= $2 AND ends_at > $3 ORDER BY ends_at DESC, id DESC LIMIT 1",
    )
    .bind(university_id)
    .bind(now)
    .bind(now)
    .fetch_optional(c)
    .await
}

pub async fn upcoming_breaks(c: &mut Conn, university_id: i64, now: i64) -> Result<Vec<ServiceBreak>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, university_id, kind, starts_at, ends_at, note_ja, note_en FROM service_breaks WHERE ends_at > $1 AND university_id = $2 ORDER BY starts_at, id",
    )
        .bind(now)
        .bind(university_id)
        .fetch_all(c)
        .await
}

pub struct NewBreak<'a> {
    pub university_id: i64,
    pub kind: &'a str,
    pub starts_at: i64,
    pub ends_at: i64,
    pub note_ja: &'a str,
    pub note_en: &'a str,
    pub staff_id: i64,
    pub now: i64,
}

pub async fn insert_break(c: &mut Conn, b: &NewBreak<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO service_breaks (university_id, kind, starts_at, ends_at, note_ja, note_en, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(b.university_id)
    .bind(b.kind)
    .bind(b.starts_at)
    .bind(b.ends_at)
    .bind(b.note_ja)
    .bind(b.note_en)
    .bind(b.staff_id)
    .bind(b.now)
    .fetch_one(c)
    .await
}

/// Deletes a break of the university; false when it has no such break.
pub async fn delete_break(c: &mut Conn, university_id: i64, id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM service_breaks WHERE id = $1 AND university_id = $2").bind(id).bind(university_id).execute(c).await?;
    Ok(r.rows_affected() == 1)
}

// ---------------------------------------------------------------- reports

/// One row of a report: a key (day, type, method), orders, copies, yen received.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct ReportRow {
    pub key: String,
    pub orders: i64,
    pub copies: i64,
    pub revenue: i64,
}

/// Orders placed in [from, to) (unix seconds), grouped. Revenue counts money
/// received: orders paid or printed. `offset_s` shifts UTC to local days.
pub async fn report(c: &mut Conn, university_id: i64, group: &str, from: i64, to: i64, offset_s: i64) -> Result<Vec<ReportRow>, sqlx::Error> {
    // (the university's orders: $5 in each form)
    let ours = "o.student_record_id IN (SELECT id FROM student_records WHERE university_id = $5)";
    let sql = match group {
        "type" => format!("SELECT l.name_ja || ' / ' || l.name_en AS key, COUNT(DISTINCT o.id) AS orders, CAST(SUM(l.copies) AS BIGINT) AS copies,
                   CAST(SUM(CASE WHEN o.status IN ('paid', 'printed') THEN l.amount ELSE 0 END) AS BIGINT) AS revenue
                   FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.created_at >= $1 AND o.created_at < $2 AND $3 = $4 AND {ours}
                   GROUP BY key ORDER BY key"),
        "method" => format!("SELECT o.payment_method AS key, COUNT(*) AS orders,
                   (SELECT CAST(COALESCE(SUM(copies), 0) AS BIGINT) FROM order_lines WHERE order_id IN (SELECT id FROM orders x WHERE x.payment_method = o.payment_method AND x.created_at >= $1 AND x.created_at < $2
                      AND x.student_record_id IN (SELECT id FROM student_records WHERE university_id = $5))) AS copies,
                   CAST(SUM(CASE WHEN o.status IN ('paid', 'printed') THEN o.total ELSE 0 END) AS BIGINT) AS revenue
                   FROM orders o WHERE o.created_at >= $3 AND o.created_at < $4 AND {ours} GROUP BY key ORDER BY key"),
        // (the local day's number since 1970: each engine writes dates its own way; named in Rust below)
        _ => format!("SELECT CAST((o.created_at + $1) / 86400 AS TEXT) AS key, COUNT(*) AS orders,
                   CAST(SUM((SELECT COALESCE(SUM(copies), 0) FROM order_lines WHERE order_id = o.id)) AS BIGINT) AS copies,
                   CAST(SUM(CASE WHEN o.status IN ('paid', 'printed') THEN o.total ELSE 0 END) AS BIGINT) AS revenue
                   FROM orders o WHERE o.created_at >= $2 AND o.created_at < $3 AND $4 = 0 AND {ours} GROUP BY key ORDER BY key"),
    };
    let q = sqlx::query_as(&sql);
    let q = match group {
        "type" => q.bind(from).bind(to).bind(0).bind(0),
        "method" => q.bind(from).bind(to).bind(from).bind(to),
        _ => q.bind(offset_s).bind(from).bind(to).bind(0),
    };
    let q = q.bind(university_id);
    let mut rows: Vec<ReportRow> = q.fetch_all(c).await?;
    if !matches!(group, "type" | "method") {
        for r in &mut rows {
            let day = r.key.parse::<i64>().ok().and_then(|d| chrono::DateTime::from_timestamp(d * 86400, 0));
            r.key = day.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
        }
        // the numbers sort as text only while they have as many digits
        rows.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(rows)
}

/// Adds a faculty to a university's catalogue; None when the university
/// already has a faculty with this code.
pub async fn insert_faculty(c: &mut Conn, university: i64, code: &str, name_ja: &str, name_en: &str) -> Result<Option<i64>, sqlx::Error> {
    let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM faculties WHERE university_id = $1 AND code = $2").bind(university).bind(code).fetch_one(&mut *c).await?;
    if taken > 0 {
        return Ok(None);
    }
    sqlx::query_scalar("INSERT INTO faculties (university_id, code, name_ja, name_en) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(university)
        .bind(code)
        .bind(name_ja)
        .bind(name_en)
        .fetch_one(c)
        .await
        .map(Some)
}

/// Adds a department to a faculty of the university. Err(RowNotFound): no
/// such faculty in this university; Ok(None): the faculty has this code already.
pub async fn insert_department(c: &mut Conn, university: i64, faculty: i64, code: &str, name_ja: &str, name_en: &str) -> Result<Option<i64>, sqlx::Error> {
    let ours: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM faculties WHERE id = $1 AND university_id = $2").bind(faculty).bind(university).fetch_one(&mut *c).await?;
    if ours == 0 {
        return Err(sqlx::Error::RowNotFound);
    }
    let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM departments WHERE faculty_id = $1 AND code = $2").bind(faculty).bind(code).fetch_one(&mut *c).await?;
    if taken > 0 {
        return Ok(None);
    }
    sqlx::query_scalar("INSERT INTO departments (faculty_id, code, name_ja, name_en) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(faculty)
        .bind(code)
        .bind(name_ja)
        .bind(name_en)
        .fetch_one(c)
        .await
        .map(Some)
}
