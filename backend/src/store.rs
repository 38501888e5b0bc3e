//! All of the backend's SQL. Functions take a connection so that domain code
//! can run several of them in one transaction; no business rule lives here.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqliteConnection, SqlitePool};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

pub type Conn = SqliteConnection;

/// Opens (creating if needed) and migrates the database.
pub async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = pool_options(8).connect_with(opts).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

/// The pool's options: a connection handed back still inside a transaction
/// (its end never reached the database: a request abandoned at the wrong
/// moment) is closed rather than lent again, where every later write on it
/// would fail ("begin_with at non-zero transaction depth"; the crash soak
/// found a backend answering 500 to a station for good after a kill).
fn pool_options(max_connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new().max_connections(max_connections).before_acquire(|conn, _meta| {
        Box::pin(async move {
            use sqlx::Connection;
            if conn.is_in_transaction() {
                tracing::error!("a pooled database connection was still inside a transaction: closed, not reused");
                return Ok(false);
            }
            Ok(true)
        })
    })
}

// ---------------------------------------------------------------- backup and restore

/// A consistent copy of the live database in `dest` (a new file), taken
/// with `VACUUM INTO` while the backend keeps serving.
pub async fn backup_into(pool: &SqlitePool, dest: &std::path::Path) -> Result<(), sqlx::Error> {
    sqlx::query("VACUUM INTO ?").bind(dest.to_string_lossy().into_owned()).execute(pool).await?;
    Ok(())
}

/// Checks that `file` is a whole shomei backend database: (integrity_check, migrations applied, orders).
pub async fn inspect_backup(file: &std::path::Path) -> Result<(String, i64, i64), sqlx::Error> {
    let opts = SqliteConnectOptions::new().filename(file).read_only(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&pool).await?;
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1").fetch_one(&pool).await?;
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&pool).await?;
    pool.close().await;
    Ok((integrity, migrations, orders))
}

/// The database file a `sqlite:` URL names.
pub fn database_file(url: &str) -> Result<std::path::PathBuf, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str(url)?.get_filename().to_path_buf())
}

/// A write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock at the
/// start, so two requests that read-then-write (a balance before a debit, a
/// live reservation before a new one) queue behind each other instead of
/// interleaving; with WAL, a deferred one would fail with SQLITE_BUSY instead.
///
/// Writers of one database take turns in this process first (a fair queue),
/// so a waiting writer starts the moment the last one ends instead of
/// sleeping in SQLite's busy handler (1, 2, 5 ... 100 ms between tries).
pub async fn begin_write(pool: &SqlitePool) -> Result<WriteTx, sqlx::Error> {
    let gate = write_gate(pool);
    // as long as SQLite's own busy timeout: a writer that waits longer gets an error, never hangs
    let turn = tokio::time::timeout(Duration::from_secs(10), gate.acquire_owned())
        .await
        .map_err(|_| sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "waited 10 s for the database's write turn")))?
        .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?;
    let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    Ok(WriteTx { tx, _turn: turn })
}

/// The write queue of the database `pool` opens (one per file, in this process).
fn write_gate(pool: &SqlitePool) -> std::sync::Arc<tokio::sync::Semaphore> {
    static GATES: std::sync::OnceLock<std::sync::Mutex<HashMap<std::path::PathBuf, std::sync::Arc<tokio::sync::Semaphore>>>> = std::sync::OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut gates = GATES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    gates.entry(file).or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(1))).clone()
}

/// A write transaction holding this process's turn to write until it ends.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: tokio::sync::OwnedSemaphorePermit,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

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
    pub active: bool,
    /// 'certificate' (one page per copy) or 'transcript'.
    pub layout: String,
    /// 'ja' (Japanese with English beside it) or 'en' (English only).
    pub language: String,
    /// The certifying sentence with placeholders; empty: the built-in wording.
    pub body_ja: String,
    pub body_en: String,
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
         layout, language, body_ja, body_en FROM certificate_types WHERE university_id = ? ORDER BY id",
    )
    .bind(university_id)
    .fetch_all(c)
    .await
}

/// Inserts (id None) or updates a certificate type.
pub async fn save_certificate_type(c: &mut Conn, university_id: i64, id: Option<i64>, t: &CertificateType) -> Result<i64, sqlx::Error> {
    match id {
        Some(id) => {
            sqlx::query(
                "UPDATE certificate_types SET code = ?, name_ja = ?, name_en = ?, fee = ?, max_copies = ?, leaving_types = ?,
                 faculty_codes = ?, grad_year_from = ?, grad_year_to = ?, active = ?, layout = ?, language = ?, body_ja = ?, body_en = ?
                 WHERE id = ? AND university_id = ?",
            )
            .bind(&t.code).bind(&t.name_ja).bind(&t.name_en).bind(t.fee).bind(t.max_copies).bind(&t.leaving_types)
            .bind(&t.faculty_codes).bind(t.grad_year_from).bind(t.grad_year_to).bind(t.active)
            .bind(&t.layout).bind(&t.language).bind(&t.body_ja).bind(&t.body_en).bind(id).bind(university_id)
            .execute(c)
            .await?;
            Ok(id)
        }
        None => {
            sqlx::query_scalar(
                "INSERT INTO certificate_types (university_id, code, name_ja, name_en, fee, max_copies, leaving_types, faculty_codes,
                 grad_year_from, grad_year_to, active, layout, language, body_ja, body_en)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(university_id).bind(&t.code).bind(&t.name_ja).bind(&t.name_en).bind(t.fee).bind(t.max_copies).bind(&t.leaving_types)
            .bind(&t.faculty_codes).bind(t.grad_year_from).bind(t.grad_year_to).bind(t.active)
            .bind(&t.layout).bind(&t.language).bind(&t.body_ja).bind(&t.body_en)
            .fetch_one(c)
            .await
        }
    }
}

/// The university's seal image (PNG), if one was uploaded.
pub async fn university_seal(c: &mut Conn, university_id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT seal_png FROM universities WHERE id = ?").bind(university_id).fetch_optional(c).await.map(Option::flatten)
}

pub async fn set_university_seal(c: &mut Conn, university_id: i64, png: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE universities SET seal_png = ? WHERE id = ?").bind(png).bind(university_id).execute(c).await?;
    Ok(())
}

pub async fn signing_key_sealed(c: &mut Conn) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT ed25519_sealed FROM signing_keys WHERE id = 1").fetch_optional(c).await
}

pub async fn insert_signing_key(c: &mut Conn, sealed: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO signing_keys (id, ed25519_sealed, created_at) VALUES (1, ?, ?)").bind(sealed).bind(now).execute(c).await?;
    Ok(())
}

/// Whether this database was created as a demo (None: not decided yet, an empty database).
pub async fn deployment_is_demo(c: &mut Conn) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT demo FROM deployment WHERE id = 1").fetch_optional(c).await
}

pub async fn set_deployment(c: &mut Conn, demo: bool, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO deployment (id, demo, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING")
        .bind(demo)
        .bind(now)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn insert_university(c: &mut Conn, name_ja: &str, name_en: &str, timezone: &str, system_fee: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO universities (name_ja, name_en, timezone, system_fee) VALUES (?, ?, ?, ?) RETURNING id")
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
    sqlx::query_as("SELECT id, name_ja, name_en, timezone, system_fee, postage FROM universities WHERE id = ?")
        .bind(id)
        .fetch_one(c)
        .await
}

/// The registrar sets the system usage fee and the postage (None: back to
/// the configured default); orders placed from now on pay them.
pub async fn set_university_fees(c: &mut Conn, university_id: i64, system_fee: i64, postage: Option<i64>) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE universities SET system_fee = ?, postage = ? WHERE id = ?")
        .bind(system_fee)
        .bind(postage)
        .bind(university_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The university an order was placed at (through its student record).
pub async fn order_university(c: &mut Conn, order_id: i64) -> Result<University, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.name_ja, u.name_en, u.timezone, u.system_fee, u.postage FROM orders o
         JOIN student_records s ON s.id = o.student_record_id JOIN universities u ON u.id = s.university_id
         WHERE o.id = ?",
    )
    .bind(order_id)
    .fetch_one(c)
    .await
}

pub async fn certificate_types(c: &mut Conn, university_id: i64) -> Result<Vec<CertificateType>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, code, name_ja, name_en, fee, max_copies, leaving_types, faculty_codes, grad_year_from, grad_year_to, active,
         layout, language, body_ja, body_en
         FROM certificate_types WHERE university_id = ? AND active = 1 ORDER BY id",
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
    sqlx::query_as(&format!("{STUDENT_RECORD_SELECT} WHERE s.user_id = ? ORDER BY s.id"))
        .bind(user_id)
        .fetch_all(c)
        .await
}

// ---------------------------------------------------------------- people

#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub kind: String,
    pub password_hash: String,
    pub second_password_hash: Option<String>,
    pub status: String,
    pub language: String,
    pub must_set_password: bool,
    pub initial_password_expires_at: Option<i64>,
    pub directory_uid: Option<String>,
    pub personal_sealed: Option<String>,
}

const USER_SELECT: &str = "SELECT id, email, kind, password_hash, second_password_hash, status, language,
    must_set_password, initial_password_expires_at, directory_uid, personal_sealed FROM users";

#[derive(Debug, Clone, FromRow)]
pub struct Staff {
    pub id: i64,
    pub login: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: String,
    pub totp_sealed: Option<String>,
    pub totp_last_step: Option<i64>,
    pub active: bool,
    pub must_set_password: bool,
    /// When the current (initial) password was issued.
    pub password_issued_at: i64,
}

const STAFF_SELECT: &str = "SELECT id, login, display_name, password_hash, role, totp_sealed, totp_last_step, active, must_set_password,
    COALESCE(password_issued_at, created_at) AS password_issued_at FROM staff";

pub async fn user_by_email(c: &mut Conn, email: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("{USER_SELECT} WHERE email = ?"))
    .bind(email)
    .fetch_optional(c)
    .await
}

/// The language the user reads the portal in: "both", "ja" or "en".
pub async fn user_language(c: &mut Conn, user_id: i64) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT display_language FROM users WHERE id = ?").bind(user_id).fetch_one(c).await
}

/// Sets the portal's language; one language chosen also comes first in the user's mails.
pub async fn set_user_language(c: &mut Conn, user_id: i64, language: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET display_language = ?1, language = CASE WHEN ?1 = 'both' THEN language ELSE ?1 END WHERE id = ?2")
        .bind(language)
        .bind(user_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn user(c: &mut Conn, id: i64) -> Result<User, sqlx::Error> {
    sqlx::query_as(&format!("{USER_SELECT} WHERE id = ?"))
    .bind(id)
    .fetch_one(c)
    .await
}

pub async fn staff_by_login(c: &mut Conn, login: &str) -> Result<Option<Staff>, sqlx::Error> {
    sqlx::query_as(&format!("{STAFF_SELECT} WHERE login = ?"))
        .bind(login)
        .fetch_optional(c)
        .await
}

pub async fn staff(c: &mut Conn, id: i64) -> Result<Staff, sqlx::Error> {
    sqlx::query_as(&format!("{STAFF_SELECT} WHERE id = ?"))
        .bind(id)
        .fetch_one(c)
        .await
}

// ---------------------------------------------------------------- sessions

#[derive(Debug, Clone, FromRow)]
pub struct Session {
    pub user_id: Option<i64>,
    pub staff_id: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

pub async fn create_session(
    c: &mut Conn,
    token_hash: &str,
    user_id: Option<i64>,
    staff_id: Option<i64>,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sessions (token_hash, user_id, staff_id, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(token_hash)
        .bind(user_id)
        .bind(staff_id)
        .bind(now)
        .bind(expires_at)
        .bind(now)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn session(c: &mut Conn, token_hash: &str, now: i64) -> Result<Option<Session>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, staff_id, created_at, expires_at, last_seen_at FROM sessions WHERE token_hash = ? AND expires_at > ?",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(c)
    .await
}

pub async fn touch_session(c: &mut Conn, token_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?").bind(now).bind(token_hash).execute(c).await?;
    Ok(())
}

/// Ends every session of a user (password change, address change).
pub async fn delete_user_sessions(c: &mut Conn, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE user_id = ?").bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn delete_staff_sessions(c: &mut Conn, staff_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE staff_id = ?").bind(staff_id).execute(c).await?;
    Ok(())
}

pub async fn delete_session(c: &mut Conn, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = ?").bind(token_hash).execute(c).await?;
    Ok(())
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

const ORDER_SELECT: &str = "SELECT id, user_id, student_record_id, delivery, payment_method, status, fees,
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
    let r = sqlx::query(
        "INSERT INTO orders (user_id, student_record_id, delivery, payment_method, status, fees, system_fee,
         total, print_number, created_at, pay_deadline, print_deadline, postage)
         VALUES (?, ?, ?, ?, 'awaiting_payment', ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .execute(c)
    .await?;
    Ok(r.last_insert_rowid())
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
    let r = sqlx::query(
        "INSERT INTO order_lines (order_id, certificate_type_id, name_ja, name_en, unit_fee, copies, amount)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(order_id)
    .bind(type_id)
    .bind(name_ja)
    .bind(name_en)
    .bind(unit_fee)
    .bind(copies)
    .bind(unit_fee * copies)
    .execute(c)
    .await?;
    Ok(r.last_insert_rowid())
}

pub async fn insert_certificate(
    c: &mut Conn,
    order_line_id: i64,
    serial: &str,
    verification_code: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO certificates (order_line_id, serial, verification_code, issued_at) VALUES (?, ?, ?, ?)",
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
    sqlx::query("INSERT INTO order_documents (order_id, pdf) VALUES (?, ?) ON CONFLICT (order_id) DO UPDATE SET pdf = excluded.pdf")
        .bind(order_id)
        .bind(pdf)
        .execute(&mut *c)
        .await?;
    sqlx::query("UPDATE orders SET pages = ? WHERE id = ?").bind(pages).bind(order_id).execute(c).await?;
    Ok(())
}

pub async fn order(c: &mut Conn, id: i64) -> Result<Order, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE id = ?")).bind(id).fetch_one(c).await
}

pub async fn order_by_print_number(c: &mut Conn, number: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE print_number = ?"))
        .bind(number)
        .fetch_optional(c)
        .await
}

pub async fn orders_of_user(c: &mut Conn, user_id: i64) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE user_id = ? ORDER BY id DESC"))
        .bind(user_id)
        .fetch_all(c)
        .await
}

pub async fn set_order_post_address(c: &mut Conn, order_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET post_address_sealed = ? WHERE id = ?").bind(sealed).bind(order_id).execute(c).await?;
    Ok(())
}

/// A-4: paid postal orders not posted yet, oldest first.
pub async fn orders_to_post(c: &mut Conn) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE delivery = 'post' AND status = 'paid' AND shipped_at IS NULL ORDER BY paid_at, id"))
        .fetch_all(c)
        .await
}

/// Staff posted it: printed and shipped (only once).
pub async fn set_order_shipped(c: &mut Conn, order_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = 'printed', printed_at = ?, shipped_at = ? WHERE id = ? AND delivery = 'post' AND status = 'paid' AND shipped_at IS NULL",
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
    sqlx::query("UPDATE orders SET refund_error = ?, refund_error_at = ? WHERE id = ? AND refunded_at IS NULL")
        .bind(error)
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn set_order_refunded(c: &mut Conn, order_id: i64, reason: &str, method: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = 'cancelled', refunded_at = ?, refund_reason = ?, refund_method = ?, refund_error = NULL
         WHERE id = ? AND status IN ('paid', 'printed') AND refunded_at IS NULL",
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
    sqlx::query("UPDATE orders SET smartpit_number = ? WHERE id = ? AND smartpit_number IS NULL").bind(number).bind(order_id).execute(c).await?;
    Ok(())
}

pub async fn order_by_smartpit(c: &mut Conn, number: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE smartpit_number = ?")).bind(number).fetch_optional(c).await
}

pub async fn smartpit_notice_seen(c: &mut Conn, notice_id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM smartpit_notices WHERE notice_id = ?").bind(notice_id).fetch_one(c).await? > 0)
}

pub async fn insert_smartpit_notice(c: &mut Conn, notice_id: &str, number: &str, order_id: i64, amount: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO smartpit_notices (notice_id, payment_number, order_id, amount, received_at) VALUES (?, ?, ?, ?, ?)")
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
        "UPDATE orders SET store_file_id = ?, store_user_number = ?, store_reservation_number = ?, store_registered_at = ?
         WHERE id = ? AND delivery = 'store' AND status = 'paid' AND store_file_id IS NULL",
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
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE store_file_id = ?")).bind(file_id).fetch_optional(c).await
}

/// Records a print notice; false when this notice id was recorded before.
pub async fn insert_storeprint_notice(c: &mut Conn, notice_id: &str, order_id: i64, event: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("INSERT INTO storeprint_notices (notice_id, order_id, event, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (notice_id) DO NOTHING")
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
    let r = sqlx::query("UPDATE orders SET status = 'printed', printed_at = ? WHERE id = ? AND delivery = 'store' AND status = 'paid'")
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks an order paid offline-of-us (Smart Pit): true only the first time.
pub async fn set_order_paid_cash(c: &mut Conn, order_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE orders SET status = 'paid', paid_at = ? WHERE id = ? AND status = 'awaiting_payment'")
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_order_paypal(c: &mut Conn, order_id: i64, paypal_order_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET paypal_order_id = ? WHERE id = ?").bind(paypal_order_id).bind(order_id).execute(c).await?;
    Ok(())
}

pub async fn order_by_paypal(c: &mut Conn, paypal_order_id: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE paypal_order_id = ?")).bind(paypal_order_id).fetch_optional(c).await
}

/// Marks an order paid by a PayPal capture: true only the first time.
pub async fn set_order_paid_online(c: &mut Conn, order_id: i64, capture_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = 'paid', paid_at = ?, capture_id = ? WHERE id = ? AND status = 'awaiting_payment' AND capture_id IS NULL",
    )
    .bind(now)
    .bind(capture_id)
    .bind(order_id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn expire_unpaid_orders(c: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("UPDATE orders SET status = 'expired' WHERE status IN ('awaiting_payment', 'held') AND pay_deadline <= ?")
        .bind(now)
        .execute(c)
        .await?;
    Ok(r.rows_affected())
}

pub async fn cancel_unpaid_order(c: &mut Conn, order_id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE orders SET status = 'cancelled' WHERE id = ? AND status IN ('awaiting_payment', 'held')")
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Order search for staff (A-4): by order id, the last 4 digits of the print
/// number, the user's e-mail address (part of it), or status.
pub async fn search_orders(c: &mut Conn, q: &str, status: &str, limit: i64) -> Result<Vec<Order>, sqlx::Error> {
    let q = q.trim();
    let id: i64 = q.parse().unwrap_or(-1);
    let like = format!("%{}%", q.replace(['%', '_'], ""));
    let tail = if q.len() == 4 && q.chars().all(|c| c.is_ascii_digit()) { format!("%{q}") } else { "-".into() };
    sqlx::query_as(&format!(
        "{ORDER_SELECT} WHERE (? = '' OR id = ? OR print_number LIKE ? OR user_id IN (SELECT id FROM users WHERE email LIKE ?))
         AND (? = '' OR status = ?) ORDER BY id DESC LIMIT ?"
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
    sqlx::query_as(&format!("{ORDER_SELECT} ORDER BY id DESC LIMIT ?")).bind(limit).fetch_all(c).await
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
    pub refund_due: bool,
}

/// The staff order list (A-4), newest first.
pub async fn admin_orders(c: &mut Conn, f: &OrderFilter<'_>, limit: i64) -> Result<Vec<AdminOrderRow>, sqlx::Error> {
    let q = f.q.trim();
    let id: i64 = q.parse().unwrap_or(-1);
    let like = format!("%{}%", q.replace(['%', '_'], ""));
    let tail = if q.len() == 4 && q.chars().all(|c| c.is_ascii_digit()) { format!("%{q}") } else { "-".into() };
    let (from, to) = f.placed.unwrap_or((i64::MIN, i64::MAX));
    sqlx::query_as(&format!(
        "SELECT o.id, o.created_at, o.status, o.delivery, o.payment_method, o.total, o.print_number, o.printed_at, o.shipped_at,
           o.refunded_at, o.refund_paid_back_at, s.name_kanji AS customer, s.student_no, u.email,
           (SELECT l.card_uid FROM ledger l WHERE l.order_id = o.id AND l.kind = 'debit' ORDER BY l.id LIMIT 1) AS card_uid,
           (SELECT t.brand FROM terminal_payments t WHERE t.order_id = o.id AND t.duplicate = 0 ORDER BY t.paid_at LIMIT 1) AS terminal_brand,
           o.capture_id,
           COALESCE(
             (SELECT st.name FROM reservations r JOIN stations st ON st.id = r.station_id
               WHERE r.order_id = o.id AND r.status = 'printed' ORDER BY r.id DESC LIMIT 1),
             (SELECT st.name FROM offline_prints p JOIN stations st ON st.id = p.station_id
               WHERE p.order_id = o.id AND p.outcome = 'printed' ORDER BY p.duplicate, p.printed_at LIMIT 1)) AS station,
           {REFUND_DUE} AS refund_due
         FROM orders o JOIN users u ON u.id = o.user_id JOIN student_records s ON s.id = o.student_record_id
         WHERE (? = '' OR o.id = ? OR o.print_number LIKE ? OR u.email LIKE ?)
           AND (? = '' OR o.status = ?) AND (? = '' OR o.delivery = ?) AND (? = '' OR o.payment_method = ?)
           AND (? = 0 OR {REFUND_DUE}) AND (? = 0 OR (o.refund_error IS NOT NULL AND o.refunded_at IS NULL))
           AND o.created_at >= ? AND o.created_at < ?
         ORDER BY o.id DESC LIMIT ?"
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
    .bind(f.refund_due)
    .bind(f.refund_failing)
    .bind(from)
    .bind(to)
    .bind(limit)
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

/// The dashboard's counts; the day is [day_start, day_end) in unix seconds.
pub async fn dashboard_counts(c: &mut Conn, day_start: i64, day_end: i64) -> Result<DashboardCounts, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT (SELECT COUNT(*) FROM registrations WHERE status = 'pending') AS applications,
                (SELECT COUNT(*) FROM orders WHERE delivery = 'post' AND status = 'paid' AND shipped_at IS NULL) AS to_post,
                (SELECT COUNT(*) FROM orders WHERE status = 'held') AS held,
                (SELECT COUNT(*) FROM orders o WHERE {REFUND_DUE}) AS refunds_due,
                (SELECT COUNT(*) FROM orders WHERE refund_error IS NOT NULL AND refunded_at IS NULL) AS refunds_failing,
                (SELECT COUNT(*) FROM orders WHERE created_at >= ? AND created_at < ?) AS day_orders,
                (SELECT COALESCE(SUM(total), 0) FROM orders WHERE created_at >= ? AND created_at < ? AND status IN ('paid', 'printed')) AS day_received"
    ))
    .bind(day_start)
    .bind(day_end)
    .bind(day_start)
    .bind(day_end)
    .fetch_one(c)
    .await
}

/// The office paid a refund back by hand: marked once, only where one is due.
pub async fn set_refund_paid_back(c: &mut Conn, order_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    // the bank details were needed for this payment only: not kept after it
    let r = sqlx::query(&format!("UPDATE orders AS o SET refund_paid_back_at = ?, refund_bank_sealed = NULL WHERE o.id = ? AND {REFUND_DUE}"))
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// An order's refund: when, why, and when the office paid it back (if it does).
pub async fn order_refund(c: &mut Conn, order_id: i64) -> Result<Option<(i64, String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as("SELECT refunded_at, refund_reason, refund_paid_back_at FROM orders WHERE id = ? AND refunded_at IS NOT NULL")
        .bind(order_id)
        .fetch_optional(c)
        .await
}

/// Whether the office still pays back a refund of this order.
pub async fn refund_due(c: &mut Conn, order_id: i64) -> Result<bool, sqlx::Error> {
    let due: Option<bool> = sqlx::query_scalar(&format!("SELECT {REFUND_DUE} FROM orders o WHERE o.id = ?")).bind(order_id).fetch_optional(c).await?;
    Ok(due.unwrap_or(false))
}

/// Stores the bank account (sealed) for a refund the office still pays
/// back; false when none is due (paid back already, or no such refund).
pub async fn set_refund_bank(c: &mut Conn, order_id: i64, sealed: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(&format!("UPDATE orders AS o SET refund_bank_sealed = ?, refund_bank_at = ? WHERE o.id = ? AND {REFUND_DUE}"))
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
        "{ORDER_SELECT} WHERE delivery = 'campus' AND status = 'paid' AND refunded_at IS NULL AND printed_at IS NULL AND print_deadline <= ?1
           AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = orders.id AND r.status = 'active' AND r.expires_at > ?1)
           AND (EXISTS (SELECT 1 FROM station_reports sr JOIN reservations r ON r.id = sr.reservation_id
                         WHERE r.order_id = orders.id AND sr.outcome = 'failed')
                OR EXISTS (SELECT 1 FROM offline_prints p WHERE p.order_id = orders.id AND p.outcome = 'failed'))
         ORDER BY id"
    ))
    .bind(now)
    .fetch_all(c)
    .await
}

/// Counts one run of the background job `name`.
pub async fn record_job_run(c: &mut Conn, name: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_runs (name, runs, last_run_at) VALUES (?, 1, ?)
         ON CONFLICT (name) DO UPDATE SET runs = job_runs.runs + 1, last_run_at = excluded.last_run_at",
    )
    .bind(name)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// Holds an order for staff: no configured font has the characters `chars`.
pub async fn set_order_held(c: &mut Conn, order_id: i64, chars: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET status = 'held', held_chars = ? WHERE id = ?").bind(chars).bind(order_id).execute(c).await?;
    Ok(())
}

/// A held order whose characters are still missing when staff try to release it.
pub async fn set_held_chars(c: &mut Conn, order_id: i64, chars: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET held_chars = ? WHERE id = ? AND status = 'held'").bind(chars).bind(order_id).execute(c).await?;
    Ok(())
}

/// Releases a held order, once: on to awaiting payment (or paid, if it was
/// paid), with its print number (on-campus) and deadlines counted from now.
pub async fn release_held_order(c: &mut Conn, order_id: i64, print_number: Option<&str>, pay_deadline: i64, print_deadline: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE orders SET status = CASE WHEN paid_at IS NULL THEN 'awaiting_payment' ELSE 'paid' END, held_chars = '',
           print_number = ?, pay_deadline = ?, print_deadline = ?
         WHERE id = ? AND status = 'held'",
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
         WHERE l.order_id = ? ORDER BY l.id, c.id",
    )
    .bind(order_id)
    .fetch_all(c)
    .await
}

pub async fn order_lines(c: &mut Conn, order_id: i64) -> Result<Vec<OrderLine>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, certificate_type_id, name_ja, name_en, unit_fee, copies, amount FROM order_lines
         WHERE order_id = ? ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(c)
    .await
}

pub async fn maintenance_done(c: &mut Conn, name: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM maintenance_done WHERE name = ?").bind(name).fetch_one(c).await? > 0)
}

pub async fn mark_maintenance_done(c: &mut Conn, name: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT OR IGNORE INTO maintenance_done (name, done_at) VALUES (?, ?)").bind(name).bind(now).execute(c).await?;
    Ok(())
}

/// Orders whose PDF was stored before PDFs were sealed.
pub async fn orders_with_plain_pdf(c: &mut Conn) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT order_id FROM order_documents WHERE substr(pdf, 1, 4) = CAST('%PDF' AS BLOB) ORDER BY order_id").fetch_all(c).await
}

pub async fn replace_order_document(c: &mut Conn, order_id: i64, stored: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE order_documents SET pdf = ? WHERE order_id = ?").bind(stored).bind(order_id).execute(c).await?;
    Ok(())
}

pub async fn order_document(c: &mut Conn, order_id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT pdf FROM order_documents WHERE order_id = ?").bind(order_id).fetch_optional(c).await
}

pub async fn set_order_paid(c: &mut Conn, order_id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET status = 'paid', paid_at = ? WHERE id = ?")
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn set_order_printed(c: &mut Conn, order_id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET status = 'printed', printed_at = ? WHERE id = ?")
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- stored value

#[derive(Debug, Clone, FromRow)]
pub struct Card {
    pub uid: String,
    pub user_id: i64,
    pub status: String,
}

/// A linked card (active or blocked); a card its holder unlinked is no card here.
pub async fn card(c: &mut Conn, uid: &str) -> Result<Option<Card>, sqlx::Error> {
    sqlx::query_as("SELECT uid, user_id, status FROM ic_cards WHERE uid = ? AND unlinked_at IS NULL").bind(uid).fetch_optional(c).await
}

#[derive(Debug, Clone, FromRow)]
pub struct CardSummary {
    pub uid: String,
    pub label: String,
    pub status: String,
    pub linked_at: i64,
    pub balance: i64,
}

pub async fn cards_of_user(c: &mut Conn, user_id: i64) -> Result<Vec<CardSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.uid, k.label, k.status, k.linked_at, COALESCE((SELECT SUM(amount) FROM ledger WHERE card_uid = k.uid), 0) AS balance
         FROM ic_cards k WHERE k.user_id = ? AND k.unlinked_at IS NULL ORDER BY k.linked_at",
    )
    .bind(user_id)
    .fetch_all(c)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct LedgerLine {
    pub card_uid: String,
    pub amount: i64,
    pub kind: String,
    pub order_id: Option<i64>,
    pub created_at: i64,
}

/// The user's ledger lines, newest first: of the cards they hold (from their
/// link on), and of cards they held and unlinked (while they held them).
pub async fn ledger_of_user(c: &mut Conn, user_id: i64, limit: i64) -> Result<Vec<LedgerLine>, sqlx::Error> {
    sqlx::query_as(
        "SELECT card_uid, amount, kind, order_id, created_at FROM (
           SELECT l.id, l.card_uid, l.amount, l.kind, l.order_id, l.created_at FROM ledger l JOIN ic_cards k ON k.uid = l.card_uid
            WHERE k.user_id = ? AND k.unlinked_at IS NULL AND l.created_at >= k.history_from
           UNION
           SELECT l.id, l.card_uid, l.amount, l.kind, l.order_id, l.created_at FROM ledger l JOIN card_unlinks u ON u.card_uid = l.card_uid
            WHERE u.user_id = ? AND l.created_at >= u.history_from AND l.created_at <= u.unlinked_at
         ) ORDER BY id DESC LIMIT ?",
    )
    .bind(user_id)
    .bind(user_id)
    .bind(limit)
    .fetch_all(c)
    .await
}

/// Blocks a card of this user (lost): true when it was theirs and active.
pub async fn block_card(c: &mut Conn, uid: &str, user_id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE ic_cards SET status = 'blocked' WHERE uid = ? AND user_id = ? AND status = 'active' AND unlinked_at IS NULL")
        .bind(uid)
        .bind(user_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Links a card no one holds: a new row, or the row of a card its last
/// holder unlinked (its ledger stays; the new holder's history starts now).
pub async fn link_card(c: &mut Conn, uid: &str, user_id: i64, label: &str, now: i64) -> Result<(), sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO ic_cards (uid, user_id, label, linked_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(uid) DO UPDATE SET user_id = excluded.user_id, label = excluded.label, status = 'active',
           linked_at = excluded.linked_at, history_from = excluded.linked_at, unlinked_at = NULL
         WHERE ic_cards.unlinked_at IS NOT NULL",
    )
    .bind(uid)
    .bind(user_id)
    .bind(label)
    .bind(now)
    .execute(c)
    .await?;
    if r.rows_affected() != 1 {
        // linked meanwhile: the caller checked, so this is a race it loses
        return Err(sqlx::Error::RowNotFound);
    }
    Ok(())
}

/// Unlinks a card of this user that is active: the row stays (the ledger
/// points at it), the holding is kept in `card_unlinks`. False when the card
/// is not theirs, not linked, or blocked.
pub async fn unlink_card(c: &mut Conn, uid: &str, user_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO card_unlinks (card_uid, user_id, history_from, unlinked_at)
         SELECT uid, user_id, history_from, ? FROM ic_cards WHERE uid = ? AND user_id = ? AND status = 'active' AND unlinked_at IS NULL",
    )
    .bind(now)
    .bind(uid)
    .bind(user_id)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("UPDATE ic_cards SET unlinked_at = ? WHERE uid = ?").bind(now).bind(uid).execute(c).await?;
    Ok(true)
}

/// A one-time code that links `card_uid` (its keyed hash only).
pub async fn insert_card_link_code(c: &mut Conn, code_hash: &str, card_uid: &str, station_id: i64, now: i64, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO card_link_codes (code_hash, card_uid, station_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
        .bind(code_hash)
        .bind(card_uid)
        .bind(station_id)
        .bind(now)
        .bind(expires_at)
        .execute(c)
        .await?;
    Ok(())
}

/// The card's codes not used yet stop working (a newer one replaces them);
/// codes that lapsed before `forget_before` are deleted.
pub async fn retire_card_link_codes(c: &mut Conn, card_uid: &str, now: i64, forget_before: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE card_link_codes SET expires_at = ? WHERE card_uid = ? AND used_at IS NULL AND expires_at > ?")
        .bind(now)
        .bind(card_uid)
        .bind(now)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM card_link_codes WHERE expires_at < ?").bind(forget_before).execute(c).await?;
    Ok(())
}

/// True when a live (unused, unexpired) code has this hash.
pub async fn card_link_code_live(c: &mut Conn, code_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM card_link_codes WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?")
        .bind(code_hash)
        .bind(now)
        .fetch_one(c)
        .await?;
    Ok(n > 0)
}

/// Uses a live code once: the card it links, or None (unknown, used, expired).
pub async fn use_card_link_code(c: &mut Conn, code_hash: &str, user_id: i64, now: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE card_link_codes SET used_at = ?, used_by = ?
         WHERE id = (SELECT id FROM card_link_codes WHERE code_hash = ? AND used_at IS NULL AND expires_at > ? ORDER BY id DESC LIMIT 1)
         RETURNING card_uid",
    )
    .bind(now)
    .bind(user_id)
    .bind(code_hash)
    .bind(now)
    .fetch_optional(c)
    .await
}

pub async fn card_balance(c: &mut Conn, uid: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE card_uid = ?")
        .bind(uid)
        .fetch_one(c)
        .await
}

#[derive(Debug, Clone, FromRow)]
pub struct LedgerEntry {
    pub id: i64,
    pub card_uid: String,
    pub amount: i64,
    pub kind: String,
    pub order_id: Option<i64>,
}

pub async fn ledger_by_key(c: &mut Conn, key: &str) -> Result<Option<LedgerEntry>, sqlx::Error> {
    sqlx::query_as("SELECT id, card_uid, amount, kind, order_id FROM ledger WHERE idempotency_key = ?")
        .bind(key)
        .fetch_optional(c)
        .await
}

pub async fn ledger_for_order(c: &mut Conn, order_id: i64) -> Result<Vec<LedgerEntry>, sqlx::Error> {
    sqlx::query_as("SELECT id, card_uid, amount, kind, order_id FROM ledger WHERE order_id = ? ORDER BY id")
        .bind(order_id)
        .fetch_all(c)
        .await
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_ledger(
    c: &mut Conn,
    uid: &str,
    amount: i64,
    kind: &str,
    order_id: Option<i64>,
    station_id: Option<i64>,
    key: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ledger (card_uid, amount, kind, order_id, station_id, idempotency_key, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(uid)
    .bind(amount)
    .bind(kind)
    .bind(order_id)
    .bind(station_id)
    .bind(key)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- stations

#[derive(Debug, Clone, FromRow)]
pub struct Station {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub created_at: i64,
    pub enrolled_at: Option<i64>,
    pub last_seen: Option<i64>,
    pub version: Option<String>,
    pub printer_reachable: Option<bool>,
    pub printer_state: Option<String>,
    pub printer_reasons: Option<String>,
    pub printer_message: Option<String>,
    pub reader_present: Option<bool>,
    pub outbox_len: Option<i64>,
    pub clock_skew_s: Option<i64>,
    pub markers: String,
    pub media_ready: String,
    pub terminal_present: Option<bool>,
    pub disk_free_mb: Option<i64>,
    pub uptime_s: Option<i64>,
    pub jobs_printed: i64,
    pub alert: String,
    pub in_service: bool,
    pub test_page_wanted: i64,
    pub test_page_done: i64,
    pub test_page_result: String,
    pub test_page_at: Option<i64>,
}

const STATION_SELECT: &str = "SELECT id, name, status, created_at, enrolled_at, last_seen, version,
    printer_reachable, printer_state, printer_reasons, printer_message, reader_present, outbox_len,
    clock_skew_s, markers, media_ready, terminal_present, disk_free_mb, uptime_s, jobs_printed, alert,
    in_service, test_page_wanted, test_page_done, test_page_result, test_page_at FROM stations";

/// Operators take a station out of service (maintenance) or back.
pub async fn set_station_in_service(c: &mut Conn, id: i64, in_service: bool) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE stations SET in_service = ? WHERE id = ? AND status = 'active'").bind(in_service).bind(id).execute(c).await?;
    Ok(r.rows_affected() == 1)
}

/// Operators ask for a test page: the request's number.
pub async fn request_test_page(c: &mut Conn, id: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("UPDATE stations SET test_page_wanted = test_page_wanted + 1 WHERE id = ? AND status = 'active' RETURNING test_page_wanted")
        .bind(id)
        .fetch_optional(c)
        .await
}

/// The station printed (or failed to print) test page `request`.
pub async fn test_page_done(c: &mut Conn, id: i64, request: i64, result: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stations SET test_page_done = ?, test_page_result = ?, test_page_at = ? WHERE id = ? AND test_page_done < ?")
        .bind(request)
        .bind(result)
        .bind(now)
        .bind(id)
        .bind(request)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn insert_station(c: &mut Conn, name: &str, now: i64) -> Result<i64, sqlx::Error> {
    let r = sqlx::query("INSERT INTO stations (name, created_at) VALUES (?, ?)")
        .bind(name)
        .bind(now)
        .execute(c)
        .await?;
    Ok(r.last_insert_rowid())
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
        "INSERT INTO enrolment_codes (code_hash, station_id, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
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
        "UPDATE enrolment_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?
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
    sqlx::query("UPDATE stations SET token_hash = ?, status = 'active', enrolled_at = ?, version = ? WHERE id = ?")
        .bind(token_hash)
        .bind(now)
        .bind(version)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn station_by_token(c: &mut Conn, token_hash: &str) -> Result<Option<Station>, sqlx::Error> {
    sqlx::query_as(&format!("{STATION_SELECT} WHERE token_hash = ?"))
        .bind(token_hash)
        .fetch_optional(c)
        .await
}

pub async fn station(c: &mut Conn, id: i64) -> Result<Option<Station>, sqlx::Error> {
    sqlx::query_as(&format!("{STATION_SELECT} WHERE id = ?")).bind(id).fetch_optional(c).await
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

/// Revokes a station and deletes its unused enrolment codes.
pub async fn revoke_station(c: &mut Conn, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stations SET status = 'revoked', token_hash = NULL WHERE id = ?")
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM enrolment_codes WHERE station_id = ? AND used_at IS NULL").bind(id).execute(&mut *c).await?;
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
        "UPDATE stations SET last_seen = ?, version = ?, printer_reachable = ?, printer_state = ?,
         printer_reasons = ?, printer_message = ?, reader_present = ?, outbox_len = ?, clock_skew_s = ?,
         markers = ?, media_ready = ?, terminal_present = ?, disk_free_mb = ?, uptime_s = ?, jobs_printed = ?
         WHERE id = ?",
    )
    .bind(now)
    .bind(h.version)
    .bind(h.printer_reachable)
    .bind(h.printer_state)
    .bind(h.printer_reasons)
    .bind(h.printer_message)
    .bind(h.reader_present)
    .bind(h.outbox_len)
    .bind(h.clock_skew_s)
    .bind(h.markers)
    .bind(h.media_ready)
    .bind(h.terminal_present)
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
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (station_id, at) DO UPDATE SET
           printer_ready = min(printer_ready, excluded.printer_ready),
           printer_state = CASE WHEN excluded.printer_ready THEN printer_state ELSE excluded.printer_state END,
           reasons = CASE WHEN excluded.printer_ready THEN reasons ELSE excluded.reasons END,
           supply_level = coalesce(min(supply_level, excluded.supply_level), supply_level, excluded.supply_level),
           jobs_printed = max(jobs_printed, excluded.jobs_printed)",
    )
    .bind(id)
    .bind(now - now % 60)
    .bind(h.printer_ready)
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
    pub printer_ready: bool,
    pub printer_state: String,
    pub reasons: String,
    pub supply_level: Option<i64>,
    pub jobs_printed: i64,
}

pub async fn station_samples(c: &mut Conn, station_id: i64, since: i64) -> Result<Vec<StationSample>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, printer_ready, printer_state, reasons, supply_level, jobs_printed FROM station_samples
         WHERE station_id = ? AND at >= ? ORDER BY at",
    )
    .bind(station_id)
    .bind(since)
    .fetch_all(c)
    .await
}

/// Samples older than `before` go (kept: two days).
pub async fn prune_station_samples(c: &mut Conn, before: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM station_samples WHERE at < ?").bind(before).execute(c).await?.rows_affected())
}

/// Remembers what operators were last alerted about for a station.
pub async fn set_station_alert(c: &mut Conn, id: i64, alert: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stations SET alert = ? WHERE id = ?").bind(alert).bind(id).execute(c).await?;
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
    sqlx::query_as(
        "SELECT id, order_id, station_id, created_at, expires_at, status FROM reservations
         WHERE order_id = ? AND status = 'active' AND expires_at > ?",
    )
    .bind(order_id)
    .bind(now)
    .fetch_all(c)
    .await
}

pub async fn insert_reservation(
    c: &mut Conn,
    order_id: i64,
    station_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<i64, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO reservations (order_id, station_id, created_at, expires_at, status) VALUES (?, ?, ?, ?, 'active')",
    )
    .bind(order_id)
    .bind(station_id)
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await?;
    Ok(r.last_insert_rowid())
}

pub async fn reservation(c: &mut Conn, id: i64) -> Result<Option<ReservationRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, order_id, station_id, created_at, expires_at, status FROM reservations WHERE id = ?")
        .bind(id)
        .fetch_optional(c)
        .await
}

pub async fn set_reservation_status(c: &mut Conn, id: i64, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reservations SET status = ? WHERE id = ?").bind(status).bind(id).execute(c).await?;
    Ok(())
}

pub async fn extend_reservation(c: &mut Conn, id: i64, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reservations SET expires_at = MAX(expires_at, ?) WHERE id = ?")
        .bind(expires_at)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct StationReport {
    pub outcome: String,
}

pub async fn station_report(c: &mut Conn, key: &str) -> Result<Option<StationReport>, sqlx::Error> {
    sqlx::query_as("SELECT outcome FROM station_reports WHERE idempotency_key = ?")
        .bind(key)
        .fetch_optional(c)
        .await
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
    sqlx::query(
        "INSERT INTO station_reports (idempotency_key, station_id, reservation_id, outcome, detail, ipp_job_id,
         station_time, received_at, duplicate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key)
    .bind(station_id)
    .bind(reservation_id)
    .bind(outcome)
    .bind(detail)
    .bind(ipp_job_id)
    .bind(station_time)
    .bind(now)
    .bind(duplicate)
    .execute(c)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- mail outbox

#[derive(Debug, Clone, FromRow)]
pub struct Mail {
    pub id: i64,
    pub to_addr: String,
    pub subject: String,
    /// The text and HTML bodies, sealed (None once delivered).
    pub sealed: Option<String>,
    pub created_at: i64,
    pub attempts: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

const MAIL_SELECT: &str = "SELECT id, to_addr, subject, sealed, created_at, attempts, sent_at, last_error FROM outbox";

pub async fn enqueue_mail(c: &mut Conn, to: &str, subject: &str, sealed: &str, now: i64) -> Result<i64, sqlx::Error> {
    let r = sqlx::query("INSERT INTO outbox (to_addr, subject, body, body_html, sealed, created_at, next_attempt_at) VALUES (?, ?, '', '', ?, ?, ?)")
        .bind(to)
        .bind(subject)
        .bind(sealed)
        .bind(now)
        .bind(now)
        .execute(c)
        .await?;
    Ok(r.last_insert_rowid())
}

/// Rows from before bodies were sealed: (id, to, body, html, sent).
pub async fn plain_mails(c: &mut Conn) -> Result<Vec<(i64, String, String, String, bool)>, sqlx::Error> {
    sqlx::query_as("SELECT id, to_addr, body, body_html, sent_at IS NOT NULL FROM outbox WHERE sealed IS NULL AND (body <> '' OR body_html <> '')")
        .fetch_all(c)
        .await
}

pub async fn set_mail_sealed(c: &mut Conn, id: i64, sealed: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET sealed = ?, body = '', body_html = '' WHERE id = ?").bind(sealed).bind(id).execute(c).await?;
    Ok(())
}

pub async fn due_mails(c: &mut Conn, now: i64, limit: i64) -> Result<Vec<Mail>, sqlx::Error> {
    sqlx::query_as(
        &format!("{MAIL_SELECT} WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?"),
    )
    .bind(now)
    .bind(limit)
    .fetch_all(c)
    .await
}

pub async fn recent_mails(c: &mut Conn, limit: i64) -> Result<Vec<Mail>, sqlx::Error> {
    sqlx::query_as(
        &format!("{MAIL_SELECT} ORDER BY id DESC LIMIT ?"),
    )
    .bind(limit)
    .fetch_all(c)
    .await
}

pub async fn mark_mail_sent(c: &mut Conn, id: i64, now: i64) -> Result<(), sqlx::Error> {
    // delivered: the body is not kept
    sqlx::query("UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL, sealed = NULL, body = '', body_html = '' WHERE id = ?")
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn mark_mail_failed(c: &mut Conn, id: i64, error: &str, next_attempt_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?")
        .bind(error)
        .bind(next_attempt_at)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- audit

pub async fn audit(c: &mut Conn, actor: &str, action: &str, detail: &str, now: i64) -> Result<(), sqlx::Error> {
    audit_event(c, &AuditEvent { actor, action, target: "", ip: "", detail }, now).await
}

/// One line of the append-only audit log: who, what, on what, from where. Never a secret.
pub struct AuditEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub ip: &'a str,
    pub detail: &'a str,
}

pub async fn audit_event(c: &mut Conn, e: &AuditEvent<'_>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, target, ip, detail) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(now)
        .bind(e.actor)
        .bind(e.action)
        .bind(e.target)
        .bind(e.ip)
        .bind(e.detail)
        .execute(c)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub ip: String,
    pub detail: String,
}

pub async fn recent_audit(c: &mut Conn, limit: i64) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as("SELECT at, actor, action, target, ip, detail FROM audit_log ORDER BY id DESC LIMIT ?")
        .bind(limit)
        .fetch_all(c)
        .await
}

// ---------------------------------------------------------------- one-time URLs

#[derive(Debug, Clone, FromRow)]
pub struct OneTimeToken {
    pub id: i64,
    pub purpose: String,
    pub email: String,
    pub user_id: Option<i64>,
    pub subject: String,
    pub expires_at: i64,
}

/// Stores a new token and voids every older live one of the same purpose for the same address.
pub async fn insert_token(
    c: &mut Conn,
    token_hash: &str,
    purpose: &str,
    email: &str,
    user_id: Option<i64>,
    subject: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    // a new link voids the older ones of the same purpose for the same person
    // (address and subject), never anyone else's
    sqlx::query("UPDATE one_time_tokens SET voided_at = ? WHERE purpose = ? AND email = ? AND subject = ? AND used_at IS NULL AND voided_at IS NULL")
        .bind(now)
        .bind(purpose)
        .bind(email)
        .bind(subject)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "INSERT INTO one_time_tokens (token_hash, purpose, email, user_id, subject, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(token_hash)
    .bind(purpose)
    .bind(email)
    .bind(user_id)
    .bind(subject)
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await?;
    Ok(())
}

/// Uses a token: one UPDATE, so of two concurrent opens exactly one gets the row.
pub async fn consume_token(c: &mut Conn, token_hash: &str, purpose: &str, now: i64) -> Result<Option<OneTimeToken>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE one_time_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? AND used_at IS NULL
         AND voided_at IS NULL AND expires_at > ? RETURNING id, purpose, email, user_id, subject, expires_at",
    )
    .bind(now)
    .bind(token_hash)
    .bind(purpose)
    .bind(now)
    .fetch_optional(c)
    .await
}

/// Looks at a token without using it (to show the page whose button uses it).
pub async fn peek_token(c: &mut Conn, token_hash: &str, purpose: &str, now: i64) -> Result<Option<OneTimeToken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, purpose, email, user_id, subject, expires_at FROM one_time_tokens WHERE token_hash = ? AND purpose = ?
         AND used_at IS NULL AND voided_at IS NULL AND expires_at > ?",
    )
    .bind(token_hash)
    .bind(purpose)
    .bind(now)
    .fetch_optional(c)
    .await
}

// ---------------------------------------------------------------- registrations

#[derive(Debug, Clone, Default, FromRow, serde::Serialize)]
pub struct Registration {
    pub id: i64,
    pub kind: String,
    pub email: String,
    pub user_id: Option<i64>,
    pub status: String,
    pub language: String,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub sex: String,
    pub school_name_kanji: String,
    pub school_name_kana: String,
    pub school_name_roman: String,
    pub university_id: Option<i64>,
    pub faculty_id: Option<i64>,
    pub department_id: Option<i64>,
    pub student_no: String,
    pub graduation_ym: String,
    pub leaving_type: String,
    pub id_document_type: String,
    pub personal_sealed: Option<String>,
    pub reason: String,
    pub created_at: i64,
    pub submitted_at: Option<i64>,
    pub decided_at: Option<i64>,
}

const REGISTRATION_SELECT: &str = "SELECT id, kind, email, user_id, status, language, name_kanji, name_kana, name_roman, sex,
    school_name_kanji, school_name_kana, school_name_roman, university_id, faculty_id, department_id, student_no,
    graduation_ym, leaving_type, id_document_type, personal_sealed, reason, created_at, submitted_at, decided_at
    FROM registrations";

pub async fn insert_registration_draft(
    c: &mut Conn,
    kind: &str,
    email: &str,
    user_id: Option<i64>,
    draft_key_hash: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO registrations (kind, email, user_id, status, draft_key_hash, created_at) VALUES (?, ?, ?, 'draft', ?, ?) RETURNING id",
    )
    .bind(kind)
    .bind(email)
    .bind(user_id)
    .bind(draft_key_hash)
    .bind(now)
    .fetch_one(c)
    .await
}

/// Reopens an application sent back for corrections as a draft of this browser.
pub async fn reopen_registration(c: &mut Conn, id: i64, draft_key_hash: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE registrations SET status = 'draft', draft_key_hash = ? WHERE id = ? AND status = 'resubmit'")
        .bind(draft_key_hash)
        .bind(id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn registration_by_draft(c: &mut Conn, draft_key_hash: &str) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE draft_key_hash = ? AND status = 'draft'"))
        .bind(draft_key_hash)
        .fetch_optional(c)
        .await
}

pub async fn registration_by_status_key(c: &mut Conn, key_hash: &str) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE status_key_hash = ?")).bind(key_hash).fetch_optional(c).await
}

pub async fn registration(c: &mut Conn, id: i64) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE id = ?")).bind(id).fetch_optional(c).await
}

pub async fn registrations_by_status(c: &mut Conn, status: &str, limit: i64) -> Result<Vec<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE status = ? ORDER BY COALESCE(submitted_at, created_at), id LIMIT ?"))
        .bind(status)
        .bind(limit)
        .fetch_all(c)
        .await
}

pub async fn save_registration_form(c: &mut Conn, r: &Registration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE registrations SET language = ?, name_kanji = ?, name_kana = ?, name_roman = ?, sex = ?, school_name_kanji = ?,
         school_name_kana = ?, school_name_roman = ?, university_id = ?, faculty_id = ?, department_id = ?, student_no = ?,
         graduation_ym = ?, leaving_type = ?, id_document_type = ?, personal_sealed = ?, kind = ? WHERE id = ? AND status = 'draft'",
    )
    .bind(&r.language)
    .bind(&r.name_kanji)
    .bind(&r.name_kana)
    .bind(&r.name_roman)
    .bind(&r.sex)
    .bind(&r.school_name_kanji)
    .bind(&r.school_name_kana)
    .bind(&r.school_name_roman)
    .bind(r.university_id)
    .bind(r.faculty_id)
    .bind(r.department_id)
    .bind(&r.student_no)
    .bind(&r.graduation_ym)
    .bind(&r.leaving_type)
    .bind(&r.id_document_type)
    .bind(&r.personal_sealed)
    .bind(&r.kind)
    .bind(r.id)
    .execute(c)
    .await?;
    Ok(())
}

/// Draft -> pending; the draft key dies with it, a status key is set.
pub async fn submit_registration(c: &mut Conn, id: i64, status_key_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE registrations SET status = 'pending', submitted_at = ?, draft_key_hash = NULL, reason = '', status_key_hash = ?
         WHERE id = ? AND status = 'draft'",
    )
    .bind(now)
    .bind(status_key_hash)
    .bind(id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records staff's decision on a pending application (only once).
pub async fn decide_registration(
    c: &mut Conn,
    id: i64,
    status: &str,
    reason: &str,
    user_id: Option<i64>,
    staff_id: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE registrations SET status = ?, reason = ?, user_id = COALESCE(?, user_id), decided_at = ?, decided_by = ?
         WHERE id = ? AND status = 'pending'",
    )
    .bind(status)
    .bind(reason)
    .bind(user_id)
    .bind(now)
    .bind(staff_id)
    .bind(id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct RegistrationImage {
    pub id: i64,
    pub registration_id: i64,
    pub ordinal: i64,
    pub file_name: String,
    pub mime: String,
    pub width: i64,
    pub height: i64,
    /// The file name it was attached under ('' before migration 0032).
    pub original_name: String,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_registration_image(
    c: &mut Conn,
    registration_id: i64,
    ordinal: i64,
    file_name: &str,
    original_name: &str,
    mime: &str,
    width: u32,
    height: u32,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO registration_images (registration_id, ordinal, file_name, original_name, mime, width, height, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(registration_id)
    .bind(ordinal)
    .bind(file_name)
    .bind(original_name)
    .bind(mime)
    .bind(width)
    .bind(height)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn registration_images(c: &mut Conn, registration_id: i64) -> Result<Vec<RegistrationImage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, registration_id, ordinal, file_name, mime, width, height, original_name FROM registration_images
         WHERE registration_id = ? AND deleted_at IS NULL ORDER BY ordinal, id",
    )
    .bind(registration_id)
    .fetch_all(c)
    .await
}

/// Marks a draft's image of one side (0 front, 1 back) as replaced; returns the file names to delete.
pub async fn drop_registration_image(c: &mut Conn, registration_id: i64, ordinal: i64, now: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE registration_images SET deleted_at = ? WHERE registration_id = ? AND ordinal = ? AND deleted_at IS NULL RETURNING file_name",
    )
    .bind(now)
    .bind(registration_id)
    .bind(ordinal)
    .fetch_all(c)
    .await
}

/// Marks the images of a draft as replaced; returns their file names to delete.
pub async fn drop_registration_images(c: &mut Conn, registration_id: i64, now: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE registration_images SET deleted_at = ? WHERE registration_id = ? AND deleted_at IS NULL RETURNING file_name",
    )
    .bind(now)
    .bind(registration_id)
    .fetch_all(c)
    .await
}

/// Images of applications decided before `cutoff`: past their retention.
/// ID images no longer needed: of applications decided (or sent back for
/// resubmission) before `cutoff`, of applications left unreviewed since
/// before `cutoff`, and of drafts whose images are older than `draft_cutoff`.
pub async fn expire_registration_images(c: &mut Conn, cutoff: i64, draft_cutoff: i64, now: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE registration_images SET deleted_at = ? WHERE deleted_at IS NULL AND (
           registration_id IN (SELECT id FROM registrations WHERE status IN ('approved', 'rejected', 'resubmit') AND decided_at < ?)
           OR registration_id IN (SELECT id FROM registrations WHERE status = 'pending' AND submitted_at < ?)
           OR (created_at < ? AND registration_id IN (SELECT id FROM registrations WHERE status = 'draft')))
         RETURNING file_name",
    )
    .bind(now)
    .bind(cutoff)
    .bind(cutoff)
    .bind(draft_cutoff)
    .fetch_all(c)
    .await
}

/// Accounts that may be the one a re-application (G-9) belongs to: same name in kana and student ID, or same kana.
pub async fn reapply_candidates(c: &mut Conn, name_kana: &str, student_no: &str) -> Result<Vec<(i64, String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT u.id, u.email, s.name_kanji, s.student_no FROM users u JOIN student_records s ON s.user_id = u.id
         WHERE u.kind = 'graduate' AND (replace(s.name_kana, ' ', '') = replace(?, ' ', '') OR (s.student_no <> '' AND s.student_no = ?))
         ORDER BY u.id LIMIT 20",
    )
    .bind(name_kana)
    .bind(student_no)
    .fetch_all(c)
    .await
}

// ---------------------------------------------------------------- account changes

pub struct NewUser<'a> {
    pub email: &'a str,
    pub kind: &'a str,
    pub password_hash: &'a str,
    pub second_password_hash: Option<&'a str>,
    pub must_set_password: bool,
    pub initial_password_expires_at: Option<i64>,
    pub directory_uid: Option<&'a str>,
    pub personal_sealed: Option<&'a str>,
    pub language: &'a str,
    pub now: i64,
}

pub async fn insert_user(c: &mut Conn, u: &NewUser<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO users (email, kind, password_hash, second_password_hash, must_set_password, initial_password_expires_at,
         directory_uid, personal_sealed, language, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(u.email)
    .bind(u.kind)
    .bind(u.password_hash)
    .bind(u.second_password_hash)
    .bind(u.must_set_password)
    .bind(u.initial_password_expires_at)
    .bind(u.directory_uid)
    .bind(u.personal_sealed)
    .bind(u.language)
    .bind(u.now)
    .fetch_one(c)
    .await
}

pub struct NewStudentRecord<'a> {
    pub user_id: i64,
    pub university_id: i64,
    pub faculty_id: i64,
    pub department_id: i64,
    pub student_no: &'a str,
    pub name_kanji: &'a str,
    pub name_kana: &'a str,
    pub name_roman: &'a str,
    pub birth_date: &'a str,
    pub leaving_type: &'a str,
    pub graduation_date: Option<&'a str>,
}

pub async fn insert_student_record(c: &mut Conn, r: &NewStudentRecord<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji, name_kana,
         name_roman, birth_date, leaving_type, graduation_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(r.user_id)
    .bind(r.university_id)
    .bind(r.faculty_id)
    .bind(r.department_id)
    .bind(r.student_no)
    .bind(r.name_kanji)
    .bind(r.name_kana)
    .bind(r.name_roman)
    .bind(r.birth_date)
    .bind(r.leaving_type)
    .bind(r.graduation_date)
    .fetch_one(c)
    .await
}

/// Sets both passwords and ends the initial-password state.
pub async fn set_passwords(c: &mut Conn, user_id: i64, password_hash: &str, second_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = ?, second_password_hash = ?, must_set_password = 0, initial_password_expires_at = NULL WHERE id = ?",
    )
    .bind(password_hash)
    .bind(second_hash)
    .bind(user_id)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn set_password_hash(c: &mut Conn, user_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?").bind(hash).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn set_second_password_hash(c: &mut Conn, user_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET second_password_hash = ? WHERE id = ?").bind(hash).bind(user_id).execute(c).await?;
    Ok(())
}

/// A new initial password (re-application, G-9): the account must set its own again.
pub async fn set_initial_password(c: &mut Conn, user_id: i64, email: &str, hash: &str, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email = ?, password_hash = ?, second_password_hash = NULL, must_set_password = 1,
         initial_password_expires_at = ? WHERE id = ?",
    )
    .bind(email)
    .bind(hash)
    .bind(expires_at)
    .bind(user_id)
    .execute(c)
    .await?;
    Ok(())
}

/// Student records whose birth date is still plain text (from before it was sealed).
pub async fn plain_birth_dates(c: &mut Conn) -> Result<Vec<(i64, i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, birth_date FROM student_records WHERE birth_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'",
    )
    .fetch_all(c)
    .await
}

pub async fn set_record_birth_date(c: &mut Conn, record_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE student_records SET birth_date = ? WHERE id = ?").bind(sealed).bind(record_id).execute(c).await?;
    Ok(())
}

pub async fn set_birth_dates(c: &mut Conn, user_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE student_records SET birth_date = ? WHERE user_id = ?").bind(sealed).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn set_user_email(c: &mut Conn, user_id: i64, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email = ? WHERE id = ?").bind(email).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn set_user_personal(c: &mut Conn, user_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET personal_sealed = ? WHERE id = ?").bind(sealed).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn user_by_directory_uid(c: &mut Conn, uid: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("{USER_SELECT} WHERE directory_uid = ?")).bind(uid).fetch_optional(c).await
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

pub async fn faculties(c: &mut Conn) -> Result<Vec<Named>, sqlx::Error> {
    sqlx::query_as("SELECT id, university_id AS parent_id, code, name_ja, name_en FROM faculties ORDER BY id").fetch_all(c).await
}

pub async fn departments(c: &mut Conn) -> Result<Vec<Named>, sqlx::Error> {
    sqlx::query_as("SELECT id, faculty_id AS parent_id, code, name_ja, name_en FROM departments ORDER BY id").fetch_all(c).await
}

// ---------------------------------------------------------------- staff accounts

pub async fn staff_list(c: &mut Conn) -> Result<Vec<Staff>, sqlx::Error> {
    sqlx::query_as(&format!("{STAFF_SELECT} ORDER BY id")).fetch_all(c).await
}

pub async fn insert_staff(c: &mut Conn, login: &str, name: &str, hash: &str, role: &str, totp_sealed: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO staff (login, display_name, password_hash, role, totp_sealed, created_at, must_set_password, password_issued_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?) RETURNING id",
    )
    .bind(login)
    .bind(name)
    .bind(hash)
    .bind(role)
    .bind(totp_sealed)
    .bind(now)
    .bind(now)
    .fetch_one(c)
    .await
}

/// A new initial password: to be replaced at the next login, valid from `now` for a while.
pub async fn set_staff_initial_password(c: &mut Conn, staff_id: i64, hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET password_hash = ?, must_set_password = 1, password_issued_at = ? WHERE id = ?")
        .bind(hash)
        .bind(now)
        .bind(staff_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn set_staff_totp(c: &mut Conn, staff_id: i64, totp_sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET totp_sealed = ?, totp_last_step = NULL WHERE id = ?").bind(totp_sealed).bind(staff_id).execute(c).await?;
    Ok(())
}

/// Records the TOTP step just used; refuses (false) a step not newer than the last.
pub async fn use_totp_step(c: &mut Conn, staff_id: i64, step: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE staff SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)")
        .bind(step)
        .bind(staff_id)
        .bind(step)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_staff_password_hash(c: &mut Conn, staff_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET password_hash = ? WHERE id = ?").bind(hash).bind(staff_id).execute(c).await?;
    Ok(())
}

/// The staff member's own password replaces the initial one.
pub async fn set_staff_own_password(c: &mut Conn, staff_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET password_hash = ?, must_set_password = 0 WHERE id = ?").bind(hash).bind(staff_id).execute(c).await?;
    Ok(())
}

pub async fn set_staff_active(c: &mut Conn, staff_id: i64, active: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET active = ? WHERE id = ?").bind(active).bind(staff_id).execute(c).await?;
    Ok(())
}

pub async fn replace_recovery_codes(c: &mut Conn, staff_id: i64, hashes: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_recovery_codes WHERE staff_id = ?").bind(staff_id).execute(&mut *c).await?;
    for h in hashes {
        sqlx::query("INSERT INTO staff_recovery_codes (code_hash, staff_id) VALUES (?, ?)").bind(h).bind(staff_id).execute(&mut *c).await?;
    }
    Ok(())
}

pub async fn use_recovery_code(c: &mut Conn, staff_id: i64, code_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE staff_recovery_codes SET used_at = ? WHERE code_hash = ? AND staff_id = ? AND used_at IS NULL")
        .bind(now)
        .bind(code_hash)
        .bind(staff_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

// ---------------------------------------------------------------- student roster (S-1)

#[derive(Debug, Clone, FromRow)]
pub struct RosterEntry {
    pub user_id: String,
    pub password_hash: String,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub student_no: String,
    pub faculty_code: String,
    pub department_code: String,
    pub email: String,
    /// The student's campus card (IDm / UID, upper-case hex), '' when the roster has none.
    pub card_uid: String,
}

pub async fn roster_entry(c: &mut Conn, user_id: &str) -> Result<Option<RosterEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, password_hash, name_kanji, name_kana, name_roman, student_no, faculty_code, department_code, email, card_uid
         FROM directory_roster WHERE user_id = ?",
    )
    .bind(user_id)
    .fetch_optional(c)
    .await
}

/// Inserts or replaces one roster row (the caller holds the import's transaction).
pub async fn upsert_roster_entry(c: &mut Conn, e: &RosterEntry, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO directory_roster (user_id, password_hash, name_kanji, name_kana, name_roman, student_no, faculty_code,
         department_code, email, card_uid, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(user_id) DO UPDATE SET password_hash = excluded.password_hash, name_kanji = excluded.name_kanji,
         name_kana = excluded.name_kana, name_roman = excluded.name_roman, student_no = excluded.student_no,
         faculty_code = excluded.faculty_code, department_code = excluded.department_code, email = excluded.email,
         card_uid = excluded.card_uid, imported_at = excluded.imported_at",
    )
    .bind(&e.user_id)
    .bind(&e.password_hash)
    .bind(&e.name_kanji)
    .bind(&e.name_kana)
    .bind(&e.name_roman)
    .bind(&e.student_no)
    .bind(&e.faculty_code)
    .bind(&e.department_code)
    .bind(&e.email)
    .bind(&e.card_uid)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// The demo catalogue from before faculties had codes gets its codes.
pub async fn set_faculty_codes_if_empty(c: &mut Conn) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE faculties SET code = 'LET' WHERE id = 1 AND code = ''").execute(&mut *c).await?;
    sqlx::query("UPDATE departments SET code = 'JLIT' WHERE id = 1 AND code = ''").execute(&mut *c).await?;
    Ok(())
}

pub async fn roster_count(c: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM directory_roster").fetch_one(c).await
}

/// Faculty and department of a university by their codes (a directory entry's).
pub async fn department_by_codes(c: &mut Conn, faculty_code: &str, department_code: &str) -> Result<Option<(i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT f.university_id, f.id, d.id FROM faculties f JOIN departments d ON d.faculty_id = f.id
         WHERE f.code = ? AND d.code = ? LIMIT 1",
    )
    .bind(faculty_code)
    .bind(department_code)
    .fetch_optional(c)
    .await
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
}

const ISSUED_SELECT: &str = "SELECT c.id, o.id AS order_id, c.serial, c.verification_code, c.issued_at, c.revoked_at,
    c.revoked_reason, l.name_ja AS type_ja, l.name_en AS type_en, s.name_kanji, s.name_roman,
    u.name_ja AS university_ja, u.name_en AS university_en, o.status AS order_status, o.printed_at
    FROM certificates c JOIN order_lines l ON l.id = c.order_line_id JOIN orders o ON o.id = l.order_id
    JOIN student_records s ON s.id = o.student_record_id JOIN universities u ON u.id = s.university_id";

pub async fn certificate_by_code(c: &mut Conn, code: &str) -> Result<Option<IssuedCertificate>, sqlx::Error> {
    sqlx::query_as(&format!("{ISSUED_SELECT} WHERE c.verification_code = ?")).bind(code).fetch_optional(c).await
}

pub async fn certificates_of_order(c: &mut Conn, order_id: i64) -> Result<Vec<IssuedCertificate>, sqlx::Error> {
    sqlx::query_as(&format!("{ISSUED_SELECT} WHERE o.id = ? ORDER BY c.id")).bind(order_id).fetch_all(c).await
}

pub async fn certificate_order(c: &mut Conn, certificate_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT l.order_id FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE c.id = ?")
        .bind(certificate_id)
        .fetch_one(c)
        .await
}

pub async fn revoke_certificate(c: &mut Conn, id: i64, reason: &str, staff_id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE certificates SET revoked_at = ?, revoked_reason = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL")
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
         WHERE university_id = ? AND starts_at <= ? AND ends_at > ? ORDER BY ends_at DESC LIMIT 1",
    )
    .bind(university_id)
    .bind(now)
    .bind(now)
    .fetch_optional(c)
    .await
}

pub async fn upcoming_breaks(c: &mut Conn, now: i64) -> Result<Vec<ServiceBreak>, sqlx::Error> {
    sqlx::query_as("SELECT id, university_id, kind, starts_at, ends_at, note_ja, note_en FROM service_breaks WHERE ends_at > ? ORDER BY starts_at")
        .bind(now)
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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

pub async fn delete_break(c: &mut Conn, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM service_breaks WHERE id = ?").bind(id).execute(c).await?;
    Ok(())
}

// ---------------------------------------------------------------- academic records (D-3)

pub async fn insert_academic_import(c: &mut Conn, file_name: &str, rows: i64, staff_id: Option<i64>, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO academic_imports (file_name, row_count, imported_by, imported_at) VALUES (?, ?, ?, ?) RETURNING id")
        .bind(file_name)
        .bind(rows)
        .bind(staff_id)
        .bind(now)
        .fetch_one(c)
        .await
}

/// One course result of an academic import (a transcript's line).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CourseResult {
    pub student_no: String,
    pub year: i64,
    pub term: String,
    pub code: String,
    pub name_ja: String,
    pub name_en: String,
    pub credits_tenths: i64,
    pub grade: String,
}

pub async fn insert_course_result(c: &mut Conn, import_id: i64, r: &CourseResult) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO course_results (import_id, student_no, year, term, code, name_ja, name_en, credits_tenths, grade)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(import_id)
    .bind(&r.student_no)
    .bind(r.year)
    .bind(&r.term)
    .bind(&r.code)
    .bind(&r.name_ja)
    .bind(&r.name_en)
    .bind(r.credits_tenths)
    .bind(&r.grade)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn latest_import_for(c: &mut Conn, student_no: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(import_id) FROM course_results WHERE student_no = ?").bind(student_no).fetch_one(c).await
}

pub async fn course_results(c: &mut Conn, import_id: i64, student_no: &str) -> Result<Vec<CourseResult>, sqlx::Error> {
    sqlx::query_as(
        "SELECT student_no, year, term, code, name_ja, name_en, credits_tenths, grade FROM course_results
         WHERE import_id = ? AND student_no = ? ORDER BY year, term, code, id",
    )
    .bind(import_id)
    .bind(student_no)
    .fetch_all(c)
    .await
}

pub async fn academic_import_count(c: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM academic_imports").fetch_one(c).await
}

pub async fn set_order_academic_import(c: &mut Conn, order_id: i64, import_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET academic_import_id = ? WHERE id = ?").bind(import_id).bind(order_id).execute(c).await?;
    Ok(())
}

// ---------------------------------------------------------------- top-ups (P-4)

#[derive(Debug, Clone, FromRow)]
pub struct Topup {
    pub id: i64,
    pub user_id: i64,
    pub card_uid: String,
    pub amount: i64,
    pub status: String,
}

pub async fn insert_topup(c: &mut Conn, user_id: i64, uid: &str, amount: i64, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO topups (user_id, card_uid, amount, status, created_at) VALUES (?, ?, ?, 'created', ?) RETURNING id")
        .bind(user_id)
        .bind(uid)
        .bind(amount)
        .bind(now)
        .fetch_one(c)
        .await
}

pub async fn set_topup_paypal_order(c: &mut Conn, id: i64, paypal_order_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE topups SET paypal_order_id = ? WHERE id = ?").bind(paypal_order_id).bind(id).execute(c).await?;
    Ok(())
}

pub async fn topup_by_paypal_order(c: &mut Conn, paypal_order_id: &str) -> Result<Option<Topup>, sqlx::Error> {
    sqlx::query_as("SELECT id, user_id, card_uid, amount, status FROM topups WHERE paypal_order_id = ?")
        .bind(paypal_order_id)
        .fetch_optional(c)
        .await
}

/// A user's completed top-ups, newest first: (id, card, amount, capture id, captured at).
pub async fn captured_topups(c: &mut Conn, user_id: i64) -> Result<Vec<(i64, String, i64, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, card_uid, amount, coalesce(capture_id, ''), coalesce(captured_at, created_at) FROM topups
         WHERE user_id = ? AND status = 'captured' ORDER BY id DESC LIMIT 50",
    )
    .bind(user_id)
    .fetch_all(c)
    .await
}

/// Top-ups of a card started since `since` and not settled yet (the buyer may still be at PayPal).
pub async fn pending_topups(c: &mut Conn, uid: &str, since: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM topups WHERE card_uid = ? AND status = 'created' AND created_at >= ?")
        .bind(uid)
        .bind(since)
        .fetch_one(c)
        .await
}

pub async fn set_topup_status(c: &mut Conn, id: i64, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE topups SET status = ? WHERE id = ? AND status <> 'captured'").bind(status).bind(id).execute(c).await?;
    Ok(())
}

pub async fn set_topup_captured(c: &mut Conn, id: i64, capture_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE topups SET status = 'captured', capture_id = ?, captured_at = ? WHERE id = ?")
        .bind(capture_id)
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- reports (A-6)

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
pub async fn report(c: &mut Conn, group: &str, from: i64, to: i64, offset_s: i64) -> Result<Vec<ReportRow>, sqlx::Error> {
    let sql = match group {
        "type" => "SELECT l.name_ja || ' / ' || l.name_en AS key, COUNT(DISTINCT o.id) AS orders, SUM(l.copies) AS copies,
                   SUM(CASE WHEN o.status IN ('paid', 'printed') THEN l.amount ELSE 0 END) AS revenue
                   FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.created_at >= ? AND o.created_at < ? AND ? = ?
                   GROUP BY key ORDER BY key",
        "method" => "SELECT o.payment_method AS key, COUNT(*) AS orders,
                   (SELECT COALESCE(SUM(copies), 0) FROM order_lines WHERE order_id IN (SELECT id FROM orders x WHERE x.payment_method = o.payment_method AND x.created_at >= ? AND x.created_at < ?)) AS copies,
                   SUM(CASE WHEN o.status IN ('paid', 'printed') THEN o.total ELSE 0 END) AS revenue
                   FROM orders o WHERE o.created_at >= ? AND o.created_at < ? GROUP BY key ORDER BY key",
        _ => "SELECT date(o.created_at + ?, 'unixepoch') AS key, COUNT(*) AS orders,
                   SUM((SELECT COALESCE(SUM(copies), 0) FROM order_lines WHERE order_id = o.id)) AS copies,
                   SUM(CASE WHEN o.status IN ('paid', 'printed') THEN o.total ELSE 0 END) AS revenue
                   FROM orders o WHERE o.created_at >= ? AND o.created_at < ? GROUP BY key ORDER BY key",
    };
    let q = sqlx::query_as(sql);
    let q = match group {
        "type" => q.bind(from).bind(to).bind(0).bind(0),
        "method" => q.bind(from).bind(to).bind(from).bind(to),
        _ => q.bind(offset_s).bind(from).bind(to),
    };
    q.fetch_all(c).await
}

// ---------------------------------------------------------------- demo data

pub struct DemoSeed<'a> {
    pub graduate_email: &'a str,
    pub graduate_password_hash: &'a str,
    pub graduate_second_hash: &'a str,
    pub staff_login: &'a str,
    pub staff_password_hash: &'a str,
    pub card_uid: &'a str,
    pub card_balance: i64,
    pub now: i64,
}

/// One university with a faculty and department, two certificate types, a
/// system usage fee, a staff account, an approved graduate and their IC card.
pub async fn seed_demo(c: &mut Conn, s: &DemoSeed<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO universities (id, name_ja, name_en, timezone, system_fee) VALUES (1, '証明大学', 'Shomei University', 'Asia/Tokyo', 100)")
        .execute(&mut *c).await?;
    sqlx::query("INSERT INTO faculties (id, university_id, code, name_ja, name_en) VALUES (1, 1, 'LET', '文学部', 'Faculty of Letters'), (2, 1, 'SCI', '理学部', 'Faculty of Science')")
        .execute(&mut *c).await?;
    sqlx::query("INSERT INTO departments (id, faculty_id, code, name_ja, name_en) VALUES (1, 1, 'JLIT', '日本文学科', 'Department of Japanese Literature'), (2, 1, 'HIST', '史学科', 'Department of History'), (3, 2, 'MATH', '数学科', 'Department of Mathematics')")
        .execute(&mut *c).await?;
    sqlx::query(
        "INSERT INTO certificate_types (university_id, code, name_ja, name_en, fee, max_copies, leaving_types, layout, language) VALUES
         (1, 'graduation', '卒業証明書', 'Certificate of Graduation', 300, 10, 'graduated', 'certificate', 'ja'),
         (1, 'graduation_en', '卒業証明書（英文）', 'Certificate of Graduation (English)', 500, 10, 'graduated', 'certificate', 'en'),
         (1, 'enrolment', '在学証明書', 'Certificate of Enrolment', 200, 10, 'enrolled', 'certificate', 'ja'),
         (1, 'transcript', '成績証明書', 'Transcript of Academic Record', 300, 5, 'graduated,withdrew,removed,enrolled', 'transcript', 'ja')",
    )
    .execute(&mut *c)
    .await?;
    let user_id: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, kind, password_hash, second_password_hash, created_at) VALUES (?, 'graduate', ?, ?, ?) RETURNING id",
    )
    .bind(s.graduate_email)
    .bind(s.graduate_password_hash)
    .bind(s.graduate_second_hash)
    .bind(s.now)
    .fetch_one(&mut *c)
    .await?;
    sqlx::query(
        "INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji,
         name_kana, name_roman, birth_date, leaving_type, graduation_date)
         VALUES (?, 1, 1, 1, 'L19-0042', '山田 花子', 'ヤマダ ハナコ', 'YAMADA Hanako', '2001-04-02', 'graduated', '2024-03-25')",
    )
    .bind(user_id)
    .execute(&mut *c)
    .await?;
    sqlx::query("INSERT INTO staff (login, display_name, password_hash, role, created_at) VALUES (?, 'Demo Staff', ?, 'admin', ?)")
        .bind(s.staff_login)
        .bind(s.staff_password_hash)
        .bind(s.now)
        .execute(&mut *c)
        .await?;
    link_card(c, s.card_uid, user_id, "demo card", s.now).await?;
    insert_ledger(c, s.card_uid, s.card_balance, "topup", None, None, None, s.now).await?;
    Ok(())
}

// ---------------------------------------------------------------- offline printing

pub async fn station_token_hash(c: &mut Conn, station_id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT token_hash FROM stations WHERE id = ?").bind(station_id).fetch_optional(c).await.map(Option::flatten)
}

/// On-campus orders a station may print offline: a live number, paid or to
/// be paid by IC card, before its deadline.
pub async fn offline_orders(c: &mut Conn, now: i64) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{ORDER_SELECT} WHERE delivery = 'campus' AND print_number IS NOT NULL AND print_deadline > ?
         AND (status = 'paid' OR (status = 'awaiting_payment' AND payment_method = 'card')) ORDER BY id"
    ))
    .bind(now)
    .fetch_all(c)
    .await
}

/// Records that `order_id` went out in `station_id`'s offline bundle (the
/// first time, and whether it could be paid by card offline).
pub async fn record_offline_issue(c: &mut Conn, station_id: i64, order_id: i64, card_payment: bool, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO offline_issued (station_id, order_id, card_payment, first_issued_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (station_id, order_id) DO UPDATE SET card_payment = MAX(card_payment, excluded.card_payment)
         WHERE excluded.card_payment > offline_issued.card_payment",
    )
    .bind(station_id)
    .bind(order_id)
    .bind(card_payment)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// (first issued at, card payment allowed) of an order in a station's bundles.
pub async fn offline_issue(c: &mut Conn, station_id: i64, order_id: i64) -> Result<Option<(i64, bool)>, sqlx::Error> {
    sqlx::query_as("SELECT first_issued_at, card_payment FROM offline_issued WHERE station_id = ? AND order_id = ?")
        .bind(station_id)
        .bind(order_id)
        .fetch_optional(c)
        .await
}

/// A card's balance as the backend knew it at `at` (ledger rows written by then).
pub async fn card_balance_at(c: &mut Conn, uid: &str, at: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE card_uid = ? AND created_at <= ?")
        .bind(uid)
        .bind(at)
        .fetch_one(c)
        .await
}

/// A station's offline debits (kept, not refunded) that it still held at
/// `at`: taken by then, delivered after. `card` narrows them to one card.
pub async fn unsynced_offline_debits(c: &mut Conn, station_id: i64, at: i64, card: Option<&str>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(SUM(amount), 0) FROM offline_debits WHERE station_id = ? AND duplicate = 0
           AND debited_at <= ? AND received_at >= ? AND (? IS NULL OR card_uid = ?)",
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
    let r = sqlx::query("INSERT OR IGNORE INTO refused_claims (station_id, claim_key, kind, order_id, reason, received_at) VALUES (?, ?, ?, ?, ?, ?)")
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
    pub kind: String,
    pub order_id: Option<i64>,
    pub reason: String,
    pub received_at: i64,
}

/// Refused claims not mailed to operators yet; marks them mailed.
pub async fn take_unalerted_claims(c: &mut Conn) -> Result<Vec<RefusedClaim>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT s.name AS station, r.kind, r.order_id, r.reason, r.received_at FROM refused_claims r
         JOIN stations s ON s.id = r.station_id WHERE r.alerted = 0 ORDER BY r.id",
    )
    .fetch_all(&mut *c)
    .await?;
    sqlx::query("UPDATE refused_claims SET alerted = 1 WHERE alerted = 0").execute(&mut *c).await?;
    Ok(rows)
}

pub async fn refused_claims(c: &mut Conn) -> Result<Vec<RefusedClaim>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.name AS station, r.kind, r.order_id, r.reason, r.received_at FROM refused_claims r
         JOIN stations s ON s.id = r.station_id ORDER BY r.id DESC LIMIT 100",
    )
    .fetch_all(c)
    .await
}

pub async fn blocked_cards(c: &mut Conn) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT uid FROM ic_cards WHERE status = 'blocked' ORDER BY uid").fetch_all(c).await
}

pub async fn offline_print_seen(c: &mut Conn, key: &str) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT duplicate FROM offline_prints WHERE idempotency_key = ?").bind(key).fetch_optional(c).await
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key)
    .bind(station_id)
    .bind(order_id)
    .bind(outcome)
    .bind(detail)
    .bind(ipp_job_id)
    .bind(printed_at)
    .bind(now)
    .bind(duplicate)
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

pub async fn duplicate_prints(c: &mut Conn) -> Result<Vec<DuplicatePrint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, print_number, station, printed_at FROM (
           SELECT p.order_id, o.print_number, s.name AS station, p.printed_at, p.received_at FROM offline_prints p
           JOIN orders o ON o.id = p.order_id JOIN stations s ON s.id = p.station_id WHERE p.duplicate = 1
           UNION ALL
           SELECT r.order_id, o.print_number, s.name AS station, sr.station_time AS printed_at, sr.received_at FROM station_reports sr
           JOIN reservations r ON r.id = sr.reservation_id JOIN orders o ON o.id = r.order_id JOIN stations s ON s.id = sr.station_id
           WHERE sr.duplicate = 1)
         ORDER BY received_at DESC LIMIT 100",
    )
    .fetch_all(c)
    .await
}

/// A university's offline payment policy (P-3).
#[derive(Debug, Clone, FromRow)]
pub struct OfflineCardPolicy {
    pub offline_cards: bool,
    pub offline_floor_limit: i64,
    pub offline_station_total: i64,
}

pub async fn offline_card_policy(c: &mut Conn, university_id: i64) -> Result<OfflineCardPolicy, sqlx::Error> {
    sqlx::query_as("SELECT offline_cards, offline_floor_limit, offline_station_total FROM universities WHERE id = ?")
        .bind(university_id)
        .fetch_one(c)
        .await
}

pub async fn set_offline_card_policy(c: &mut Conn, university_id: i64, p: &OfflineCardPolicy) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE universities SET offline_cards = ?, offline_floor_limit = ?, offline_station_total = ? WHERE id = ?")
        .bind(p.offline_cards)
        .bind(p.offline_floor_limit)
        .bind(p.offline_station_total)
        .bind(university_id)
        .execute(c)
        .await?;
    Ok(())
}

/// Every active card's balance (the offline snapshot).
pub async fn active_card_balances(c: &mut Conn) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.uid, COALESCE((SELECT SUM(l.amount) FROM ledger l WHERE l.card_uid = k.uid), 0) FROM ic_cards k
         WHERE k.status = 'active' AND k.unlinked_at IS NULL ORDER BY k.uid",
    )
    .fetch_all(c)
    .await
}

pub async fn active_station_count(c: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM stations WHERE status = 'active'").fetch_one(c).await
}

pub async fn offline_debit_seen(c: &mut Conn, key: &str) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT duplicate FROM offline_debits WHERE idempotency_key = ?").bind(key).fetch_optional(c).await
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key)
    .bind(station_id)
    .bind(order_id)
    .bind(card_uid)
    .bind(amount)
    .bind(debited_at)
    .bind(now)
    .bind(duplicate)
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

pub async fn duplicate_debits(c: &mut Conn) -> Result<Vec<DuplicateDebit>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.order_id, o.print_number, s.name AS station, d.card_uid, d.amount, d.debited_at FROM offline_debits d
         JOIN orders o ON o.id = d.order_id JOIN stations s ON s.id = d.station_id
         WHERE d.duplicate = 1 ORDER BY d.received_at DESC LIMIT 100",
    )
    .fetch_all(c)
    .await
}

// ---------------------------------------------------------------- terminal payments (P-5)

pub async fn terminal_payment_seen(c: &mut Conn, key: &str) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT duplicate FROM terminal_payments WHERE idempotency_key = ?").bind(key).fetch_optional(c).await
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_terminal_payment(
    c: &mut Conn,
    key: &str,
    station_id: i64,
    order_id: i64,
    transaction_id: &str,
    amount: i64,
    brand: &str,
    paid_at: i64,
    now: i64,
    duplicate: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO terminal_payments (idempotency_key, station_id, order_id, transaction_id, amount, brand, paid_at, received_at, duplicate)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key)
    .bind(station_id)
    .bind(order_id)
    .bind(transaction_id)
    .bind(amount)
    .bind(brand)
    .bind(paid_at)
    .bind(now)
    .bind(duplicate)
    .execute(c)
    .await?;
    Ok(())
}

/// How an order was paid at a station's terminal, if it was: (brand, transaction id, amount).
pub async fn order_terminal_payment(c: &mut Conn, order_id: i64) -> Result<Option<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT brand, transaction_id, amount FROM terminal_payments WHERE order_id = ? AND duplicate = 0")
        .bind(order_id)
        .fetch_optional(c)
        .await
}

// ---------------------------------------------------------------- school register (D-3)

pub async fn insert_school_register_import(c: &mut Conn, file_name: &str, rows: i64, staff_id: i64, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO school_register_imports (file_name, row_count, imported_by, imported_at) VALUES (?, ?, ?, ?) RETURNING id")
        .bind(file_name)
        .bind(rows)
        .bind(staff_id)
        .bind(now)
        .fetch_one(c)
        .await
}

/// One student number's entry in a version of the register (birth date open).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterEntry {
    pub student_no: String,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub birth_date: String,
    pub faculty_code: String,
    pub department_code: String,
    pub degree_ja: String,
    pub degree_en: String,
    pub admission_date: String,
    pub graduation_date: String,
    pub leaving_type: String,
}

pub async fn insert_school_register_entry(c: &mut Conn, import_id: i64, e: &RegisterEntry, birth_sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO school_register (import_id, student_no, name_kanji, name_kana, name_roman, birth_date_sealed, faculty_code, department_code,
         degree_ja, degree_en, admission_date, graduation_date, leaving_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(import_id)
    .bind(&e.student_no)
    .bind(&e.name_kanji)
    .bind(&e.name_kana)
    .bind(&e.name_roman)
    .bind(birth_sealed)
    .bind(&e.faculty_code)
    .bind(&e.department_code)
    .bind(&e.degree_ja)
    .bind(&e.degree_en)
    .bind(&e.admission_date)
    .bind(&e.graduation_date)
    .bind(&e.leaving_type)
    .execute(c)
    .await?;
    Ok(())
}

/// The newest version's entry for a student number: (version, entry with the birth date empty, sealed birth date).
pub async fn school_register_entry(c: &mut Conn, student_no: &str) -> Result<Option<(i64, RegisterEntry, String)>, sqlx::Error> {
    type Row = (i64, String, String, String, String, String, String, String, String, String, String, String, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT import_id, student_no, name_kanji, name_kana, name_roman, birth_date_sealed, faculty_code, department_code,
                degree_ja, degree_en, admission_date, graduation_date, leaving_type
         FROM school_register WHERE student_no = ? ORDER BY import_id DESC LIMIT 1",
    )
    .bind(student_no)
    .fetch_optional(c)
    .await?;
    Ok(row.map(|r| {
        let e = RegisterEntry {
            student_no: r.1,
            name_kanji: r.2,
            name_kana: r.3,
            name_roman: r.4,
            birth_date: String::new(),
            faculty_code: r.6,
            department_code: r.7,
            degree_ja: r.8,
            degree_en: r.9,
            admission_date: r.10,
            graduation_date: r.11,
            leaving_type: r.12,
        };
        (r.0, e, r.5)
    }))
}

pub async fn school_register_versions(c: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM school_register_imports").fetch_one(c).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that went back to the pool with a transaction nobody can
    /// end any more (its `Transaction` lost) is not lent again: the next
    /// write transaction gets a clean connection and works.
    #[tokio::test]
    async fn a_connection_left_inside_a_transaction_is_never_lent_again() -> Result<(), sqlx::Error> {
        let dir = tempfile::tempdir().map_err(sqlx::Error::Io)?;
        let opts = SqliteConnectOptions::new().filename(dir.path().join("t.sqlite")).create_if_missing(true).journal_mode(SqliteJournalMode::Wal);
        let pool = pool_options(1).connect_with(opts).await?;
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&pool).await?;
        {
            let mut conn = pool.acquire().await?;
            // the transaction's end is lost (as when its owner vanished at the wrong moment)
            std::mem::forget(sqlx::Connection::begin(&mut *conn).await?);
            assert!(sqlx::Connection::is_in_transaction(&*conn));
        }
        // the only connection of the pool was that one: a new one serves instead
        let mut tx = begin_write(&pool).await?;
        sqlx::query("INSERT INTO t (x) VALUES (1)").execute(&mut *tx).await?;
        tx.commit().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&pool).await?;
        assert_eq!(n, 1);
        Ok(())
    }
}
