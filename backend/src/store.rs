//! All of the backend's SQL. Functions take a connection so that domain code
//! can run several of them in one transaction; no business rule lives here.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::FromRow;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

pub use flags::{Flag, MaybeFlag};

/// The backend's database: SQLite (the embedded default, a `sqlite:` URL) or
/// PostgreSQL (a `postgres:` URL), chosen by the URL at start. Every query
/// below is written once, in the SQL both engines read: `$N` parameters,
/// integers (BIGINT on PostgreSQL) for numbers, times (epoch seconds) and
/// 0/1 flags, `RETURNING` for new ids.
pub type Pool = sqlx::AnyPool;
pub type Conn = sqlx::AnyConnection;

/// The database engines the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine a database URL names.
    pub fn of_url(url: &str) -> Result<Engine, sqlx::Error> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Engine::Postgres)
        } else {
            Err(sqlx::Error::Configuration(format!("database URL {:?}: shomei runs on sqlite: or postgres: URLs", redact_url(url)).into()))
        }
    }
}

/// A database URL fit for a log line: any password replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The engine `pool` runs on.
pub fn engine(pool: &Pool) -> Engine {
    Engine::of_url(&pool.connect_options().database_url.to_string()).unwrap_or(Engine::Sqlite)
}

/// Opens (creating if needed) and migrates the database.
pub async fn connect(url: &str) -> Result<Pool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let pool = match Engine::of_url(url)? {
        Engine::Sqlite => {
            // the file is made here, with the options the Any driver cannot pass
            let opts = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
            SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?.close().await;
            let pool = pool_options(8)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;").await?;
                        Ok(())
                    })
                })
                .connect_with(AnyConnectOptions::from_str(url)?)
                .await?;
            sqlx::migrate!("./migrations").run(&pool).await?;
            pool
        }
        Engine::Postgres => {
            let pool = pool_options(16).connect_with(AnyConnectOptions::from_str(url)?).await?;
            sqlx::migrate!("./migrations_pg").run(&pool).await?;
            pool
        }
    };
    Ok(pool)
}

/// The pool's options: a connection handed back still inside a transaction
/// (its end never reached the database: a request abandoned at the wrong
/// moment) is closed rather than lent again, where every later write on it
/// would fail ("begin_with at non-zero transaction depth"; the crash soak
/// found a backend answering 500 to a station for good after a kill).
fn pool_options(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new().max_connections(max_connections).before_acquire(|conn, _meta| {
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
/// with `VACUUM INTO` while the backend keeps serving. SQLite only: a
/// PostgreSQL deployment is backed up with its own tools (pg_dump).
pub async fn backup_into(pool: &Pool, dest: &std::path::Path) -> Result<(), sqlx::Error> {
    if engine(pool) != Engine::Sqlite {
        return Err(sqlx::Error::Configuration("this backup copies a SQLite database; back a PostgreSQL one up with pg_dump".into()));
    }
    sqlx::query("VACUUM INTO $1").bind(dest.to_string_lossy().into_owned()).execute(pool).await?;
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

/// A write transaction: writers take turns, so two requests that
/// read-then-write (a balance before a debit, a live reservation before a
/// new one) queue behind each other instead of interleaving.
///
/// On SQLite, `BEGIN IMMEDIATE` takes the database's write lock at the
/// start (with WAL, a deferred one would fail with SQLITE_BUSY instead). On
/// PostgreSQL, the transaction takes one transaction-scoped advisory lock
/// first, so writers of every backend process on that database take turns
/// the same way (the lock ends with the transaction, also when a backend dies).
///
/// Writers of one database take turns in this process first (a fair queue),
/// so a waiting writer starts the moment the last one ends instead of
/// sleeping in SQLite's busy handler (1, 2, 5 ... 100 ms between tries) or
/// holding a connection while it waits for the lock.
pub async fn begin_write(pool: &Pool) -> Result<WriteTx, sqlx::Error> {
    let gate = write_gate(pool);
    // as long as SQLite's own busy timeout: a writer that waits longer gets an error, never hangs
    let turn = tokio::time::timeout(Duration::from_secs(10), gate.acquire_owned())
        .await
        .map_err(|_| sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "waited 10 s for the database's write turn")))?
        .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?;
    let tx = match engine(pool) {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Engine::Postgres => {
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await?;
            tx
        }
    };
    Ok(WriteTx { tx, _turn: turn })
}

/// The advisory lock key writers take on PostgreSQL ("shomei" in ASCII).
pub const WRITE_LOCK: i64 = 0x73686f6d6569;

/// The write queue of the database `pool` opens (one per database, in this process).
fn write_gate(pool: &Pool) -> std::sync::Arc<tokio::sync::Semaphore> {
    static GATES: std::sync::OnceLock<std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>> = std::sync::OnceLock::new();
    let key = pool.connect_options().database_url.to_string();
    let key = match engine(pool) {
        Engine::Sqlite => database_file(&key).map(|f| f.to_string_lossy().into_owned()).unwrap_or(key),
        Engine::Postgres => key,
    };
    let mut gates = GATES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    gates.entry(key).or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(1))).clone()
}

/// A write transaction holding this process's turn to write until it ends.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: tokio::sync::OwnedSemaphorePermit,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.tx
    }
}

/// Flags (0/1 integers in both engines' tables, booleans from comparisons
/// on PostgreSQL) read as Rust booleans.
mod flags {
    use sqlx::any::{Any, AnyTypeInfo, AnyTypeInfoKind, AnyValueRef};
    use sqlx::{Decode, Type, Value, ValueRef};

    /// A flag read from the database.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Flag(pub bool);

    /// A flag that may be NULL.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MaybeFlag(pub Option<bool>);

    impl From<Flag> for bool {
        fn from(f: Flag) -> bool {
            f.0
        }
    }

    impl From<MaybeFlag> for Option<bool> {
        fn from(f: MaybeFlag) -> Option<bool> {
            f.0
        }
    }

    fn readable(ty: &AnyTypeInfo) -> bool {
        matches!(ty.kind(), AnyTypeInfoKind::Bool | AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt | AnyTypeInfoKind::Null)
    }

    fn read(value: AnyValueRef<'_>) -> Result<Option<bool>, sqlx::error::BoxDynError> {
        if value.is_null() {
            return Ok(None);
        }
        let owned = ValueRef::to_owned(&value);
        if owned.type_info().kind() == AnyTypeInfoKind::Bool {
            return Ok(Some(owned.try_decode::<bool>()?));
        }
        Ok(Some(owned.try_decode::<i64>()? != 0))
    }

    impl Type<Any> for Flag {
        fn type_info() -> AnyTypeInfo {
            <i64 as Type<Any>>::type_info()
        }
        fn compatible(ty: &AnyTypeInfo) -> bool {
            readable(ty)
        }
    }

    impl<'r> Decode<'r, Any> for Flag {
        fn decode(value: AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
            read(value)?.map(Flag).ok_or_else(|| "a flag was NULL".into())
        }
    }

    impl Type<Any> for MaybeFlag {
        fn type_info() -> AnyTypeInfo {
            <i64 as Type<Any>>::type_info()
        }
        fn compatible(ty: &AnyTypeInfo) -> bool {
            readable(ty)
        }
    }

    impl<'r> Decode<'r, Any> for MaybeFlag {
        fn decode(value: AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
            Ok(MaybeFlag(read(value)?))
        }
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
    #[sqlx(try_from = "Flag")]
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
         layout, language, body_ja, body_en FROM certificate_types WHERE university_id = $1 ORDER BY id",
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
                "UPDATE certificate_types SET code = $1, name_ja = $2, name_en = $3, fee = $4, max_copies = $5, leaving_types = $6,
                 faculty_codes = $7, grad_year_from = $8, grad_year_to = $9, active = $10, layout = $11, language = $12, body_ja = $13, body_en = $14
                 WHERE id = $15 AND university_id = $16",
            )
            .bind(&t.code).bind(&t.name_ja).bind(&t.name_en).bind(t.fee).bind(t.max_copies).bind(&t.leaving_types)
            .bind(&t.faculty_codes).bind(t.grad_year_from).bind(t.grad_year_to).bind(i64::from(t.active))
            .bind(&t.layout).bind(&t.language).bind(&t.body_ja).bind(&t.body_en).bind(id).bind(university_id)
            .execute(c)
            .await?;
            Ok(id)
        }
        None => {
            sqlx::query_scalar(
                "INSERT INTO certificate_types (university_id, code, name_ja, name_en, fee, max_copies, leaving_types, faculty_codes,
                 grad_year_from, grad_year_to, active, layout, language, body_ja, body_en)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
            )
            .bind(university_id).bind(&t.code).bind(&t.name_ja).bind(&t.name_en).bind(t.fee).bind(t.max_copies).bind(&t.leaving_types)
            .bind(&t.faculty_codes).bind(t.grad_year_from).bind(t.grad_year_to).bind(i64::from(t.active))
            .bind(&t.layout).bind(&t.language).bind(&t.body_ja).bind(&t.body_en)
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

pub async fn signing_key_sealed(c: &mut Conn) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT ed25519_sealed FROM signing_keys WHERE id = 1").fetch_optional(c).await
}

pub async fn insert_signing_key(c: &mut Conn, sealed: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO signing_keys (id, ed25519_sealed, created_at) VALUES (1, $1, $2)").bind(sealed).bind(now).execute(c).await?;
    Ok(())
}

/// Whether this database was created as a demo (None: not decided yet, an empty database).
pub async fn deployment_is_demo(c: &mut Conn) -> Result<Option<bool>, sqlx::Error> {
    let demo: Option<Flag> = sqlx::query_scalar("SELECT demo FROM deployment WHERE id = 1").fetch_optional(c).await?;
    Ok(demo.map(bool::from))
}

pub async fn set_deployment(c: &mut Conn, demo: bool, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO deployment (id, demo, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(i64::from(demo))
        .bind(now)
        .execute(c)
        .await?;
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
    sqlx::query_as(
        "SELECT u.id, u.name_ja, u.name_en, u.timezone, u.system_fee, u.postage FROM orders o
         JOIN student_records s ON s.id = o.student_record_id JOIN universities u ON u.id = s.university_id
         WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_one(c)
    .await
}

pub async fn certificate_types(c: &mut Conn, university_id: i64) -> Result<Vec<CertificateType>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, code, name_ja, name_en, fee, max_copies, leaving_types, faculty_codes, grad_year_from, grad_year_to, active,
         layout, language, body_ja, body_en
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
    #[sqlx(try_from = "Flag")]
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
    #[sqlx(try_from = "Flag")]
    pub active: bool,
    #[sqlx(try_from = "Flag")]
    pub must_set_password: bool,
    /// When the current (initial) password was issued.
    pub password_issued_at: i64,
}

const STAFF_SELECT: &str = "SELECT id, login, display_name, password_hash, role, totp_sealed, totp_last_step, active, must_set_password,
    COALESCE(password_issued_at, created_at) AS password_issued_at FROM staff";

pub async fn user_by_email(c: &mut Conn, email: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("{USER_SELECT} WHERE email = $1"))
    .bind(email)
    .fetch_optional(c)
    .await
}

/// The language the user reads the portal in: "both", "ja" or "en".
pub async fn user_language(c: &mut Conn, user_id: i64) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT display_language FROM users WHERE id = $1").bind(user_id).fetch_one(c).await
}

/// Sets the portal's language; one language chosen also comes first in the user's mails.
pub async fn set_user_language(c: &mut Conn, user_id: i64, language: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET display_language = $1, language = CASE WHEN $1 = 'both' THEN language ELSE $1 END WHERE id = $2")
        .bind(language)
        .bind(user_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn user(c: &mut Conn, id: i64) -> Result<User, sqlx::Error> {
    sqlx::query_as(&format!("{USER_SELECT} WHERE id = $1"))
    .bind(id)
    .fetch_one(c)
    .await
}

pub async fn staff_by_login(c: &mut Conn, login: &str) -> Result<Option<Staff>, sqlx::Error> {
    sqlx::query_as(&format!("{STAFF_SELECT} WHERE login = $1"))
        .bind(login)
        .fetch_optional(c)
        .await
}

pub async fn staff(c: &mut Conn, id: i64) -> Result<Staff, sqlx::Error> {
    sqlx::query_as(&format!("{STAFF_SELECT} WHERE id = $1"))
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
    sqlx::query("INSERT INTO sessions (token_hash, user_id, staff_id, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)")
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
        "SELECT user_id, staff_id, created_at, expires_at, last_seen_at FROM sessions WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(c)
    .await
}

pub async fn touch_session(c: &mut Conn, token_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2").bind(now).bind(token_hash).execute(c).await?;
    Ok(())
}

/// Ends every session of a user (password change, address change).
pub async fn delete_user_sessions(c: &mut Conn, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn delete_staff_sessions(c: &mut Conn, staff_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE staff_id = $1").bind(staff_id).execute(c).await?;
    Ok(())
}

pub async fn delete_session(c: &mut Conn, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(c).await?;
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
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE id = $1")).bind(id).fetch_one(c).await
}

pub async fn order_by_print_number(c: &mut Conn, number: &str) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE print_number = $1"))
        .bind(number)
        .fetch_optional(c)
        .await
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

/// A-4: paid postal orders not posted yet, oldest first.
pub async fn orders_to_post(c: &mut Conn) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!("{ORDER_SELECT} WHERE delivery = 'post' AND status = 'paid' AND shipped_at IS NULL ORDER BY paid_at, id"))
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

/// Order search for staff (A-4): by order id, the last 4 digits of the print
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

/// The staff order list (A-4), newest first.
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
           AND o.created_at >= $13 AND o.created_at < $14
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
                (SELECT COUNT(*) FROM orders WHERE created_at >= $1 AND created_at < $2) AS day_orders,
                (SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) FROM orders WHERE created_at >= $3 AND created_at < $4 AND status IN ('paid', 'printed')) AS day_received"
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

// ---------------------------------------------------------------- throttles

/// The times (ms) `key` failed since `since_ms`, oldest first.
pub async fn throttle_failures(c: &mut Conn, key: &str, since_ms: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT at_ms FROM throttle_failures WHERE key = $1 AND at_ms > $2 ORDER BY at_ms, id")
        .bind(key)
        .bind(since_ms)
        .fetch_all(c)
        .await
}

pub async fn add_throttle_failure(c: &mut Conn, key: &str, at_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO throttle_failures (key, at_ms) VALUES ($1, $2)").bind(key).bind(at_ms).execute(c).await?;
    Ok(())
}

/// Forgets the latest failure of `key` (an attempt that no longer counts).
pub async fn drop_last_throttle_failure(c: &mut Conn, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM throttle_failures WHERE id = (SELECT MAX(id) FROM throttle_failures WHERE key = $1)").bind(key).execute(c).await?;
    Ok(())
}

pub async fn clear_throttle(c: &mut Conn, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM throttle_failures WHERE key = $1").bind(key).execute(c).await?;
    Ok(())
}

pub async fn prune_throttle_failures(c: &mut Conn, before_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM throttle_failures WHERE at_ms < $1").bind(before_ms).execute(c).await?.rows_affected())
}

/// Takes, or renews, the lease on background job `name` for `holder` until
/// `until`: true when `holder` has it now (it was free, lapsed at `now`, or
/// already `holder`'s).
pub async fn take_lease(c: &mut Conn, name: &str, holder: &str, now: i64, until: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4",
    )
    .bind(name)
    .bind(holder)
    .bind(until)
    .bind(now)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Gives the lease on `name` up, if `holder` has it (a process stopping).
pub async fn release_lease(c: &mut Conn, name: &str, holder: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM job_leases WHERE name = $1 AND holder = $2").bind(name).bind(holder).execute(c).await?;
    Ok(())
}

/// Who holds the lease on `name` and until when.
pub async fn lease_holder(c: &mut Conn, name: &str) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT holder, expires_at FROM job_leases WHERE name = $1").bind(name).fetch_optional(c).await
}

/// Counts one run of the background job `name`.
pub async fn record_job_run(c: &mut Conn, name: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_runs (name, runs, last_run_at) VALUES ($1, 1, $2)
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
    sqlx::query_as(
        "SELECT id, certificate_type_id, name_ja, name_en, unit_fee, copies, amount FROM order_lines
         WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(c)
    .await
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
    sqlx::query_scalar("SELECT pdf FROM order_documents WHERE order_id = $1").bind(order_id).fetch_optional(c).await
}

pub async fn set_order_paid(c: &mut Conn, order_id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET status = 'paid', paid_at = $1 WHERE id = $2")
        .bind(now)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn set_order_printed(c: &mut Conn, order_id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET status = 'printed', printed_at = $1 WHERE id = $2")
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
    sqlx::query_as("SELECT uid, user_id, status FROM ic_cards WHERE uid = $1 AND unlinked_at IS NULL").bind(uid).fetch_optional(c).await
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
        "SELECT k.uid, k.label, k.status, k.linked_at, COALESCE((SELECT CAST(SUM(amount) AS BIGINT) FROM ledger WHERE card_uid = k.uid), 0) AS balance
         FROM ic_cards k WHERE k.user_id = $1 AND k.unlinked_at IS NULL ORDER BY k.linked_at, k.uid",
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
            WHERE k.user_id = $1 AND k.unlinked_at IS NULL AND l.created_at >= k.history_from
           UNION
           SELECT l.id, l.card_uid, l.amount, l.kind, l.order_id, l.created_at FROM ledger l JOIN card_unlinks u ON u.card_uid = l.card_uid
            WHERE u.user_id = $2 AND l.created_at >= u.history_from AND l.created_at <= u.unlinked_at
         ) AS lines ORDER BY id DESC LIMIT $3",
    )
    .bind(user_id)
    .bind(user_id)
    .bind(limit)
    .fetch_all(c)
    .await
}

/// Blocks a card of this user (lost): true when it was theirs and active.
pub async fn block_card(c: &mut Conn, uid: &str, user_id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE ic_cards SET status = 'blocked' WHERE uid = $1 AND user_id = $2 AND status = 'active' AND unlinked_at IS NULL")
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
        "INSERT INTO ic_cards (uid, user_id, label, linked_at) VALUES ($1, $2, $3, $4)
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
         SELECT uid, user_id, history_from, $1 FROM ic_cards WHERE uid = $2 AND user_id = $3 AND status = 'active' AND unlinked_at IS NULL",
    )
    .bind(now)
    .bind(uid)
    .bind(user_id)
    .execute(&mut *c)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("UPDATE ic_cards SET unlinked_at = $1 WHERE uid = $2").bind(now).bind(uid).execute(c).await?;
    Ok(true)
}

/// A one-time code that links `card_uid` (its keyed hash only).
pub async fn insert_card_link_code(c: &mut Conn, code_hash: &str, card_uid: &str, station_id: i64, now: i64, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO card_link_codes (code_hash, card_uid, station_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
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
    sqlx::query("UPDATE card_link_codes SET expires_at = $1 WHERE card_uid = $2 AND used_at IS NULL AND expires_at > $3")
        .bind(now)
        .bind(card_uid)
        .bind(now)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM card_link_codes WHERE expires_at < $1").bind(forget_before).execute(c).await?;
    Ok(())
}

/// True when a live (unused, unexpired) code has this hash.
pub async fn card_link_code_live(c: &mut Conn, code_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM card_link_codes WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2")
        .bind(code_hash)
        .bind(now)
        .fetch_one(c)
        .await?;
    Ok(n > 0)
}

/// Uses a live code once: the card it links, or None (unknown, used, expired).
pub async fn use_card_link_code(c: &mut Conn, code_hash: &str, user_id: i64, now: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE card_link_codes SET used_at = $1, used_by = $2
         WHERE used_at IS NULL AND id = (SELECT id FROM card_link_codes WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $4 ORDER BY id DESC LIMIT 1)
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
    sqlx::query_scalar("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger WHERE card_uid = $1")
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
    sqlx::query_as("SELECT id, card_uid, amount, kind, order_id FROM ledger WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(c)
        .await
}

pub async fn ledger_for_order(c: &mut Conn, order_id: i64) -> Result<Vec<LedgerEntry>, sqlx::Error> {
    sqlx::query_as("SELECT id, card_uid, amount, kind, order_id FROM ledger WHERE order_id = $1 ORDER BY id")
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
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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

const STATION_SELECT: &str = "SELECT id, name, status, created_at, enrolled_at, last_seen, version,
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

pub async fn insert_station(c: &mut Conn, name: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO stations (name, created_at) VALUES ($1, $2) RETURNING id")
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
    sqlx::query_as(&format!("{STATION_SELECT} WHERE token_hash = $1"))
        .bind(token_hash)
        .fetch_optional(c)
        .await
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
    sqlx::query_as(
        "SELECT id, order_id, station_id, created_at, expires_at, status FROM reservations
         WHERE order_id = $1 AND status = 'active' AND expires_at > $2",
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
    sqlx::query_scalar(
        "INSERT INTO reservations (order_id, station_id, created_at, expires_at, status) VALUES ($1, $2, $3, $4, 'active') RETURNING id",
    )
    .bind(order_id)
    .bind(station_id)
    .bind(now)
    .bind(expires_at)
    .fetch_one(c)
    .await
}

pub async fn reservation(c: &mut Conn, id: i64) -> Result<Option<ReservationRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, order_id, station_id, created_at, expires_at, status FROM reservations WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await
}

pub async fn set_reservation_status(c: &mut Conn, id: i64, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reservations SET status = $1 WHERE id = $2").bind(status).bind(id).execute(c).await?;
    Ok(())
}

pub async fn extend_reservation(c: &mut Conn, id: i64, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reservations SET expires_at = CASE WHEN expires_at > $1 THEN expires_at ELSE $1 END WHERE id = $2")
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
    sqlx::query_as("SELECT outcome FROM station_reports WHERE idempotency_key = $1")
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
         station_time, received_at, duplicate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(key)
    .bind(station_id)
    .bind(reservation_id)
    .bind(outcome)
    .bind(detail)
    .bind(ipp_job_id)
    .bind(station_time)
    .bind(now)
    .bind(i64::from(duplicate))
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
    sqlx::query_scalar("INSERT INTO outbox (to_addr, subject, body, body_html, sealed, created_at, next_attempt_at) VALUES ($1, $2, '', '', $3, $4, $5) RETURNING id")
        .bind(to)
        .bind(subject)
        .bind(sealed)
        .bind(now)
        .bind(now)
        .fetch_one(c)
    .await
}

/// Rows from before bodies were sealed: (id, to, body, html, sent).
pub async fn plain_mails(c: &mut Conn) -> Result<Vec<(i64, String, String, String, bool)>, sqlx::Error> {
    let rows: Vec<(i64, String, String, String, Flag)> =
        sqlx::query_as("SELECT id, to_addr, body, body_html, sent_at IS NOT NULL FROM outbox WHERE sealed IS NULL AND (body <> '' OR body_html <> '')")
            .fetch_all(c)
            .await?;
    Ok(rows.into_iter().map(|(id, to, body, html, sent)| (id, to, body, html, sent.into())).collect())
}

pub async fn set_mail_sealed(c: &mut Conn, id: i64, sealed: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET sealed = $1, body = '', body_html = '' WHERE id = $2").bind(sealed).bind(id).execute(c).await?;
    Ok(())
}

pub async fn due_mails(c: &mut Conn, now: i64, limit: i64) -> Result<Vec<Mail>, sqlx::Error> {
    sqlx::query_as(
        &format!("{MAIL_SELECT} WHERE sent_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2"),
    )
    .bind(now)
    .bind(limit)
    .fetch_all(c)
    .await
}

pub async fn recent_mails(c: &mut Conn, limit: i64) -> Result<Vec<Mail>, sqlx::Error> {
    sqlx::query_as(
        &format!("{MAIL_SELECT} ORDER BY id DESC LIMIT $1"),
    )
    .bind(limit)
    .fetch_all(c)
    .await
}

pub async fn mark_mail_sent(c: &mut Conn, id: i64, now: i64) -> Result<(), sqlx::Error> {
    // delivered: the body is not kept
    sqlx::query("UPDATE outbox SET sent_at = $1, attempts = attempts + 1, last_error = NULL, sealed = NULL, body = '', body_html = '' WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn mark_mail_failed(c: &mut Conn, id: i64, error: &str, next_attempt_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3")
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
    sqlx::query("INSERT INTO audit_log (at, actor, action, target, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)")
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
    sqlx::query_as("SELECT at, actor, action, target, ip, detail FROM audit_log ORDER BY id DESC LIMIT $1")
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
    sqlx::query("UPDATE one_time_tokens SET voided_at = $1 WHERE purpose = $2 AND email = $3 AND subject = $4 AND used_at IS NULL AND voided_at IS NULL")
        .bind(now)
        .bind(purpose)
        .bind(email)
        .bind(subject)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "INSERT INTO one_time_tokens (token_hash, purpose, email, user_id, subject, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        "UPDATE one_time_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL
         AND voided_at IS NULL AND expires_at > $4 RETURNING id, purpose, email, user_id, subject, expires_at",
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
        "SELECT id, purpose, email, user_id, subject, expires_at FROM one_time_tokens WHERE token_hash = $1 AND purpose = $2
         AND used_at IS NULL AND voided_at IS NULL AND expires_at > $3",
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
        "INSERT INTO registrations (kind, email, user_id, status, draft_key_hash, created_at) VALUES ($1, $2, $3, 'draft', $4, $5) RETURNING id",
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
    let r = sqlx::query("UPDATE registrations SET status = 'draft', draft_key_hash = $1 WHERE id = $2 AND status = 'resubmit'")
        .bind(draft_key_hash)
        .bind(id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn registration_by_draft(c: &mut Conn, draft_key_hash: &str) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE draft_key_hash = $1 AND status = 'draft'"))
        .bind(draft_key_hash)
        .fetch_optional(c)
        .await
}

pub async fn registration_by_status_key(c: &mut Conn, key_hash: &str) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE status_key_hash = $1")).bind(key_hash).fetch_optional(c).await
}

pub async fn registration(c: &mut Conn, id: i64) -> Result<Option<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE id = $1")).bind(id).fetch_optional(c).await
}

pub async fn registrations_by_status(c: &mut Conn, status: &str, limit: i64) -> Result<Vec<Registration>, sqlx::Error> {
    sqlx::query_as(&format!("{REGISTRATION_SELECT} WHERE status = $1 ORDER BY COALESCE(submitted_at, created_at), id LIMIT $2"))
        .bind(status)
        .bind(limit)
        .fetch_all(c)
        .await
}

pub async fn save_registration_form(c: &mut Conn, r: &Registration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE registrations SET language = $1, name_kanji = $2, name_kana = $3, name_roman = $4, sex = $5, school_name_kanji = $6,
         school_name_kana = $7, school_name_roman = $8, university_id = $9, faculty_id = $10, department_id = $11, student_no = $12,
         graduation_ym = $13, leaving_type = $14, id_document_type = $15, personal_sealed = $16, kind = $17 WHERE id = $18 AND status = 'draft'",
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
        "UPDATE registrations SET status = 'pending', submitted_at = $1, draft_key_hash = NULL, reason = '', status_key_hash = $2
         WHERE id = $3 AND status = 'draft'",
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
        "UPDATE registrations SET status = $1, reason = $2, user_id = COALESCE($3, user_id), decided_at = $4, decided_by = $5
         WHERE id = $6 AND status = 'pending'",
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(registration_id)
    .bind(ordinal)
    .bind(file_name)
    .bind(original_name)
    .bind(mime)
    .bind(i64::from(width))
    .bind(i64::from(height))
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn registration_images(c: &mut Conn, registration_id: i64) -> Result<Vec<RegistrationImage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, registration_id, ordinal, file_name, mime, width, height, original_name FROM registration_images
         WHERE registration_id = $1 AND deleted_at IS NULL ORDER BY ordinal, id",
    )
    .bind(registration_id)
    .fetch_all(c)
    .await
}

/// Marks a draft's image of one side (0 front, 1 back) as replaced; returns the file names to delete.
pub async fn drop_registration_image(c: &mut Conn, registration_id: i64, ordinal: i64, now: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE registration_images SET deleted_at = $1 WHERE registration_id = $2 AND ordinal = $3 AND deleted_at IS NULL RETURNING file_name",
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
        "UPDATE registration_images SET deleted_at = $1 WHERE registration_id = $2 AND deleted_at IS NULL RETURNING file_name",
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
        "UPDATE registration_images SET deleted_at = $1 WHERE deleted_at IS NULL AND (
           registration_id IN (SELECT id FROM registrations WHERE status IN ('approved', 'rejected', 'resubmit') AND decided_at < $2)
           OR registration_id IN (SELECT id FROM registrations WHERE status = 'pending' AND submitted_at < $3)
           OR (created_at < $4 AND registration_id IN (SELECT id FROM registrations WHERE status = 'draft')))
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
         WHERE u.kind = 'graduate' AND (replace(s.name_kana, ' ', '') = replace($1, ' ', '') OR (s.student_no <> '' AND s.student_no = $2))
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
         directory_uid, personal_sealed, language, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(u.email)
    .bind(u.kind)
    .bind(u.password_hash)
    .bind(u.second_password_hash)
    .bind(i64::from(u.must_set_password))
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
         name_roman, birth_date, leaving_type, graduation_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
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
        "UPDATE users SET password_hash = $1, second_password_hash = $2, must_set_password = 0, initial_password_expires_at = NULL WHERE id = $3",
    )
    .bind(password_hash)
    .bind(second_hash)
    .bind(user_id)
    .execute(c)
    .await?;
    Ok(())
}

pub async fn set_password_hash(c: &mut Conn, user_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn set_second_password_hash(c: &mut Conn, user_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET second_password_hash = $1 WHERE id = $2").bind(hash).bind(user_id).execute(c).await?;
    Ok(())
}

/// A new initial password (re-application, G-9): the account must set its own again.
pub async fn set_initial_password(c: &mut Conn, user_id: i64, email: &str, hash: &str, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email = $1, password_hash = $2, second_password_hash = NULL, must_set_password = 1,
         initial_password_expires_at = $3 WHERE id = $4",
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
        "SELECT id, user_id, birth_date FROM student_records WHERE birth_date LIKE '____-__-__'",
    )
    .fetch_all(c)
    .await
}

pub async fn set_record_birth_date(c: &mut Conn, record_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE student_records SET birth_date = $1 WHERE id = $2").bind(sealed).bind(record_id).execute(c).await?;
    Ok(())
}

pub async fn set_birth_dates(c: &mut Conn, user_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE student_records SET birth_date = $1 WHERE user_id = $2").bind(sealed).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn set_user_email(c: &mut Conn, user_id: i64, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email = $1 WHERE id = $2").bind(email).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn set_user_personal(c: &mut Conn, user_id: i64, sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET personal_sealed = $1 WHERE id = $2").bind(sealed).bind(user_id).execute(c).await?;
    Ok(())
}

pub async fn user_by_directory_uid(c: &mut Conn, uid: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("{USER_SELECT} WHERE directory_uid = $1")).bind(uid).fetch_optional(c).await
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
        "INSERT INTO staff (login, display_name, password_hash, role, totp_sealed, created_at, must_set_password, password_issued_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7) RETURNING id",
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
    sqlx::query("UPDATE staff SET password_hash = $1, must_set_password = 1, password_issued_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(staff_id)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn set_staff_totp(c: &mut Conn, staff_id: i64, totp_sealed: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET totp_sealed = $1, totp_last_step = NULL WHERE id = $2").bind(totp_sealed).bind(staff_id).execute(c).await?;
    Ok(())
}

/// Records the TOTP step just used; refuses (false) a step not newer than the last.
pub async fn use_totp_step(c: &mut Conn, staff_id: i64, step: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE staff SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $3)")
        .bind(step)
        .bind(staff_id)
        .bind(step)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_staff_password_hash(c: &mut Conn, staff_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET password_hash = $1 WHERE id = $2").bind(hash).bind(staff_id).execute(c).await?;
    Ok(())
}

/// The staff member's own password replaces the initial one.
pub async fn set_staff_own_password(c: &mut Conn, staff_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET password_hash = $1, must_set_password = 0 WHERE id = $2").bind(hash).bind(staff_id).execute(c).await?;
    Ok(())
}

pub async fn set_staff_active(c: &mut Conn, staff_id: i64, active: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff SET active = $1 WHERE id = $2").bind(i64::from(active)).bind(staff_id).execute(c).await?;
    Ok(())
}

pub async fn replace_recovery_codes(c: &mut Conn, staff_id: i64, hashes: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_recovery_codes WHERE staff_id = $1").bind(staff_id).execute(&mut *c).await?;
    for h in hashes {
        sqlx::query("INSERT INTO staff_recovery_codes (code_hash, staff_id) VALUES ($1, $2)").bind(h).bind(staff_id).execute(&mut *c).await?;
    }
    Ok(())
}

pub async fn use_recovery_code(c: &mut Conn, staff_id: i64, code_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE staff_recovery_codes SET used_at = $1 WHERE code_hash = $2 AND staff_id = $3 AND used_at IS NULL")
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
         FROM directory_roster WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(c)
    .await
}

/// Inserts or replaces one roster row (the caller holds the import's transaction).
pub async fn upsert_roster_entry(c: &mut Conn, e: &RosterEntry, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO directory_roster (user_id, password_hash, name_kanji, name_kana, name_roman, student_no, faculty_code,
         department_code, email, card_uid, imported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
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
         WHERE f.code = $1 AND d.code = $2 LIMIT 1",
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

pub async fn upcoming_breaks(c: &mut Conn, now: i64) -> Result<Vec<ServiceBreak>, sqlx::Error> {
    sqlx::query_as("SELECT id, university_id, kind, starts_at, ends_at, note_ja, note_en FROM service_breaks WHERE ends_at > $1 ORDER BY starts_at, id")
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

pub async fn delete_break(c: &mut Conn, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM service_breaks WHERE id = $1").bind(id).execute(c).await?;
    Ok(())
}

// ---------------------------------------------------------------- academic records (D-3)

pub async fn insert_academic_import(c: &mut Conn, file_name: &str, rows: i64, staff_id: Option<i64>, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO academic_imports (file_name, row_count, imported_by, imported_at) VALUES ($1, $2, $3, $4) RETURNING id")
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
    sqlx::query_scalar("SELECT max(import_id) FROM course_results WHERE student_no = $1").bind(student_no).fetch_one(c).await
}

pub async fn course_results(c: &mut Conn, import_id: i64, student_no: &str) -> Result<Vec<CourseResult>, sqlx::Error> {
    sqlx::query_as(
        "SELECT student_no, year, term, code, name_ja, name_en, credits_tenths, grade FROM course_results
         WHERE import_id = $1 AND student_no = $2 ORDER BY year, term, code, id",
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
    sqlx::query("UPDATE orders SET academic_import_id = $1 WHERE id = $2").bind(import_id).bind(order_id).execute(c).await?;
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
    sqlx::query_scalar("INSERT INTO topups (user_id, card_uid, amount, status, created_at) VALUES ($1, $2, $3, 'created', $4) RETURNING id")
        .bind(user_id)
        .bind(uid)
        .bind(amount)
        .bind(now)
        .fetch_one(c)
        .await
}

pub async fn set_topup_paypal_order(c: &mut Conn, id: i64, paypal_order_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE topups SET paypal_order_id = $1 WHERE id = $2").bind(paypal_order_id).bind(id).execute(c).await?;
    Ok(())
}

pub async fn topup_by_paypal_order(c: &mut Conn, paypal_order_id: &str) -> Result<Option<Topup>, sqlx::Error> {
    sqlx::query_as("SELECT id, user_id, card_uid, amount, status FROM topups WHERE paypal_order_id = $1")
        .bind(paypal_order_id)
        .fetch_optional(c)
        .await
}

/// A user's completed top-ups, newest first: (id, card, amount, capture id, captured at).
pub async fn captured_topups(c: &mut Conn, user_id: i64) -> Result<Vec<(i64, String, i64, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, card_uid, amount, coalesce(capture_id, ''), coalesce(captured_at, created_at) FROM topups
         WHERE user_id = $1 AND status = 'captured' ORDER BY id DESC LIMIT 50",
    )
    .bind(user_id)
    .fetch_all(c)
    .await
}

/// Top-ups of a card started since `since` and not settled yet (the buyer may still be at PayPal).
pub async fn pending_topups(c: &mut Conn, uid: &str, since: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM topups WHERE card_uid = $1 AND status = 'created' AND created_at >= $2")
        .bind(uid)
        .bind(since)
        .fetch_one(c)
        .await
}

pub async fn set_topup_status(c: &mut Conn, id: i64, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE topups SET status = $1 WHERE id = $2 AND status <> 'captured'").bind(status).bind(id).execute(c).await?;
    Ok(())
}

pub async fn set_topup_captured(c: &mut Conn, id: i64, capture_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE topups SET status = 'captured', capture_id = $1, captured_at = $2 WHERE id = $3")
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
        "type" => "SELECT l.name_ja || ' / ' || l.name_en AS key, COUNT(DISTINCT o.id) AS orders, CAST(SUM(l.copies) AS BIGINT) AS copies,
                   CAST(SUM(CASE WHEN o.status IN ('paid', 'printed') THEN l.amount ELSE 0 END) AS BIGINT) AS revenue
                   FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.created_at >= $1 AND o.created_at < $2 AND $3 = $4
                   GROUP BY key ORDER BY key",
        "method" => "SELECT o.payment_method AS key, COUNT(*) AS orders,
                   (SELECT CAST(COALESCE(SUM(copies), 0) AS BIGINT) FROM order_lines WHERE order_id IN (SELECT id FROM orders x WHERE x.payment_method = o.payment_method AND x.created_at >= $1 AND x.created_at < $2)) AS copies,
                   CAST(SUM(CASE WHEN o.status IN ('paid', 'printed') THEN o.total ELSE 0 END) AS BIGINT) AS revenue
                   FROM orders o WHERE o.created_at >= $3 AND o.created_at < $4 GROUP BY key ORDER BY key",
        // (the local day's number since 1970: each engine writes dates its own way; named in Rust below)
        _ => "SELECT CAST((o.created_at + $1) / 86400 AS TEXT) AS key, COUNT(*) AS orders,
                   CAST(SUM((SELECT COALESCE(SUM(copies), 0) FROM order_lines WHERE order_id = o.id)) AS BIGINT) AS copies,
                   CAST(SUM(CASE WHEN o.status IN ('paid', 'printed') THEN o.total ELSE 0 END) AS BIGINT) AS revenue
                   FROM orders o WHERE o.created_at >= $2 AND o.created_at < $3 GROUP BY key ORDER BY key",
    };
    let q = sqlx::query_as(sql);
    let q = match group {
        "type" => q.bind(from).bind(to).bind(0).bind(0),
        "method" => q.bind(from).bind(to).bind(from).bind(to),
        _ => q.bind(offset_s).bind(from).bind(to),
    };
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

/// After rows were written with ids of their own: the ids PostgreSQL hands
/// out next follow the largest one (SQLite's always do).
async fn ids_follow_rows(c: &mut Conn, tables: &[&str]) -> Result<(), sqlx::Error> {
    if c.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    for t in tables {
        sqlx::query(&format!("SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM {t}))")).execute(&mut *c).await?;
    }
    Ok(())
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
    ids_follow_rows(c, &["universities", "faculties", "departments"]).await?;
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
        "INSERT INTO users (email, kind, password_hash, second_password_hash, created_at) VALUES ($1, 'graduate', $2, $3, $4) RETURNING id",
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
         VALUES ($1, 1, 1, 1, 'L19-0042', '山田 花子', 'ヤマダ ハナコ', 'YAMADA Hanako', '', 'graduated', '2024-03-25')",
    )
    .bind(user_id)
    .execute(&mut *c)
    .await?;
    sqlx::query("INSERT INTO staff (login, display_name, password_hash, role, created_at) VALUES ($1, 'Demo Staff', $2, 'admin', $3)")
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
    sqlx::query_scalar("SELECT token_hash FROM stations WHERE id = $1").bind(station_id).fetch_optional(c).await.map(Option::flatten)
}

/// On-campus orders a station may print offline: a live number, paid or to
/// be paid by IC card, before its deadline.
pub async fn offline_orders(c: &mut Conn, now: i64) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{ORDER_SELECT} WHERE delivery = 'campus' AND print_number IS NOT NULL AND print_deadline > $1
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

pub async fn duplicate_prints(c: &mut Conn) -> Result<Vec<DuplicatePrint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, print_number, station, printed_at FROM (
           SELECT p.order_id, o.print_number, s.name AS station, p.printed_at, p.received_at FROM offline_prints p
           JOIN orders o ON o.id = p.order_id JOIN stations s ON s.id = p.station_id WHERE p.duplicate = 1
           UNION ALL
           SELECT r.order_id, o.print_number, s.name AS station, sr.station_time AS printed_at, sr.received_at FROM station_reports sr
           JOIN reservations r ON r.id = sr.reservation_id JOIN orders o ON o.id = r.order_id JOIN stations s ON s.id = sr.station_id
           WHERE sr.duplicate = 1) AS prints
         ORDER BY received_at DESC, order_id DESC LIMIT 100",
    )
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

/// Every active card's balance (the offline snapshot).
pub async fn active_card_balances(c: &mut Conn) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.uid, COALESCE((SELECT CAST(SUM(l.amount) AS BIGINT) FROM ledger l WHERE l.card_uid = k.uid), 0) FROM ic_cards k
         WHERE k.status = 'active' AND k.unlinked_at IS NULL ORDER BY k.uid",
    )
    .fetch_all(c)
    .await
}

pub async fn active_station_count(c: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM stations WHERE status = 'active'").fetch_one(c).await
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

pub async fn duplicate_debits(c: &mut Conn) -> Result<Vec<DuplicateDebit>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.order_id, o.print_number, s.name AS station, d.card_uid, d.amount, d.debited_at FROM offline_debits d
         JOIN orders o ON o.id = d.order_id JOIN stations s ON s.id = d.station_id
         WHERE d.duplicate = 1 ORDER BY d.received_at DESC, d.idempotency_key DESC LIMIT 100",
    )
    .fetch_all(c)
    .await
}

// ---------------------------------------------------------------- terminal payments (P-5)

pub async fn terminal_payment_seen(c: &mut Conn, key: &str) -> Result<Option<bool>, sqlx::Error> {
    let dup: Option<Flag> = sqlx::query_scalar("SELECT duplicate FROM terminal_payments WHERE idempotency_key = $1").bind(key).fetch_optional(c).await?;
    Ok(dup.map(bool::from))
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(key)
    .bind(station_id)
    .bind(order_id)
    .bind(transaction_id)
    .bind(amount)
    .bind(brand)
    .bind(paid_at)
    .bind(now)
    .bind(i64::from(duplicate))
    .execute(c)
    .await?;
    Ok(())
}

/// How an order was paid at a station's terminal, if it was: (brand, transaction id, amount).
pub async fn order_terminal_payment(c: &mut Conn, order_id: i64) -> Result<Option<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT brand, transaction_id, amount FROM terminal_payments WHERE order_id = $1 AND duplicate = 0")
        .bind(order_id)
        .fetch_optional(c)
        .await
}

// ---------------------------------------------------------------- school register (D-3)

pub async fn insert_school_register_import(c: &mut Conn, file_name: &str, rows: i64, staff_id: i64, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO school_register_imports (file_name, row_count, imported_by, imported_at) VALUES ($1, $2, $3, $4) RETURNING id")
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
         degree_ja, degree_en, admission_date, graduation_date, leaving_type) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
         FROM school_register WHERE student_no = $1 ORDER BY import_id DESC LIMIT 1",
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

// ---------------------------------------------------------------- copying a deployment between engines

/// A table of the source database, as [`copy_database`] copies it.
#[derive(Debug, Clone)]
pub struct CopiedTable {
    pub table: String,
    pub rows: i64,
    /// SHA-256 over the rows read from the source, in key order.
    pub source_sum: String,
    /// The same over the rows read back from the target after the copy.
    pub target_sum: String,
}

/// The tables of the SQLite database `c` (the migrator's own left out),
/// each after the tables it refers to, with its primary key's columns.
async fn sqlite_tables_in_order(c: &mut Conn) -> Result<Vec<(String, Vec<String>)>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *c)
    .await?;
    let mut parents: HashMap<String, Vec<String>> = HashMap::new();
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    for t in &names {
        let refs: Vec<String> = sqlx::query_scalar(&format!("SELECT \"table\" FROM pragma_foreign_key_list('{t}')")).fetch_all(&mut *c).await?;
        parents.insert(t.clone(), refs.into_iter().filter(|r| r != t).collect());
        let pk: Vec<String> = sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{t}') WHERE pk > 0 ORDER BY pk")).fetch_all(&mut *c).await?;
        keys.insert(t.clone(), pk);
    }
    let mut ordered: Vec<(String, Vec<String>)> = Vec::new();
    let mut placed = std::collections::HashSet::new();
    while ordered.len() < names.len() {
        let before = ordered.len();
        for t in &names {
            if !placed.contains(t) && parents[t].iter().all(|p| placed.contains(p) || !names.contains(p)) {
                placed.insert(t.clone());
                ordered.push((t.clone(), keys[t].clone()));
            }
        }
        if ordered.len() == before {
            return Err(sqlx::Error::Protocol("the tables refer to each other in a circle: no order to copy them in".into()));
        }
    }
    Ok(ordered)
}

/// The columns of `table` in the PostgreSQL database `c` and their types, in order.
async fn postgres_columns(c: &mut Conn, table: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(c)
    .await
}

/// One value of a copied row, read as the target column's type.
enum CopyValue {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Real(Option<f64>),
}

impl CopyValue {
    fn read(row: &sqlx::any::AnyRow, i: usize, pg_type: &str) -> Result<CopyValue, sqlx::Error> {
        use sqlx::Row;
        Ok(match pg_type {
            "bigint" | "integer" | "smallint" => CopyValue::Int(row.try_get(i)?),
            "text" => CopyValue::Text(row.try_get(i)?),
            "bytea" => CopyValue::Bytes(row.try_get(i)?),
            "double precision" | "real" => CopyValue::Real(row.try_get(i)?),
            other => return Err(sqlx::Error::Protocol(format!("no copy for the column type {other}"))),
        })
    }

    /// Feeds the value to a checksum: a tag, then its bytes (lengths first).
    fn digest(&self, h: &mut sha2::Sha256) {
        use sha2::Digest;
        let mut put = |tag: u8, bytes: &[u8]| {
            h.update([tag]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        match self {
            CopyValue::Int(Some(v)) => put(1, &v.to_le_bytes()),
            CopyValue::Text(Some(v)) => put(2, v.as_bytes()),
            CopyValue::Bytes(Some(v)) => put(3, v),
            CopyValue::Real(Some(v)) => put(4, &v.to_bits().to_le_bytes()),
            _ => put(0, &[]),
        }
    }
}

/// Rows `offset..offset + COPY_PAGE` of `table` in key order, as the target's column types.
async fn copy_page(c: &mut Conn, table: &str, cols: &[(String, String)], key: &[String], offset: i64) -> Result<Vec<Vec<CopyValue>>, sqlx::Error> {
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    let order = if key.is_empty() { (1..=cols.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", ") } else { key.join(", ") };
    let sql = format!("SELECT {} FROM {table} ORDER BY {order} LIMIT $1 OFFSET $2", names.join(", "));
    let rows = sqlx::query(&sql).bind(COPY_PAGE).bind(offset).fetch_all(&mut *c).await?;
    rows.iter().map(|row| cols.iter().enumerate().map(|(i, (_, t))| CopyValue::read(row, i, t)).collect()).collect()
}

/// Rows read and written at a time (a table never sits in memory whole).
const COPY_PAGE: i64 = 500;

/// Copies every row of the SQLite database `src` into the empty PostgreSQL
/// database `dst` (both migrated to this version), in one transaction on
/// the target: all of it or nothing. Refuses a target with any row in any
/// table. Each table is read back after the copy and its checksum compared
/// with the source's; identity columns then continue after the largest id.
pub async fn copy_database(src: &Pool, dst: &Pool) -> Result<Vec<CopiedTable>, sqlx::Error> {
    use sha2::Digest;
    if engine(src) != Engine::Sqlite || engine(dst) != Engine::Postgres {
        return Err(sqlx::Error::Configuration("copies a SQLite database into a PostgreSQL one".into()));
    }
    // one read transaction: a consistent picture of the source
    let mut from = src.begin().await?;
    let tables = sqlite_tables_in_order(&mut from).await?;
    let mut to = dst.begin().await?;
    for (t, _) in &tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {t}")).fetch_one(&mut *to).await?;
        if n > 0 {
            return Err(sqlx::Error::Configuration(format!("the target is not empty ({t} has {n} rows): nothing copied").into()));
        }
    }
    let mut copied = Vec::new();
    for (t, key) in &tables {
        let cols = postgres_columns(&mut to, t).await?;
        if cols.is_empty() {
            return Err(sqlx::Error::Protocol(format!("the target has no table {t}: is it migrated to this version?")));
        }
        let insert = format!(
            "INSERT INTO {t} ({}) VALUES ({})",
            cols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
            (1..=cols.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
        );
        let (mut sum, mut count, mut offset) = (sha2::Sha256::new(), 0i64, 0i64);
        loop {
            let page = copy_page(&mut from, t, &cols, key, offset).await?;
            let last = (page.len() as i64) < COPY_PAGE;
            for values in page {
                values.iter().for_each(|v| v.digest(&mut sum));
                let mut q = sqlx::query(&insert);
                for v in values {
                    q = match v {
                        CopyValue::Int(v) => q.bind(v),
                        CopyValue::Text(v) => q.bind(v),
                        CopyValue::Bytes(v) => q.bind(v),
                        CopyValue::Real(v) => q.bind(v),
                    };
                }
                q.execute(&mut *to).await?;
                count += 1;
            }
            if last {
                break;
            }
            offset += COPY_PAGE;
        }
        let (mut back, mut offset) = (sha2::Sha256::new(), 0i64);
        loop {
            let page = copy_page(&mut to, t, &cols, key, offset).await?;
            page.iter().flatten().for_each(|v| v.digest(&mut back));
            if (page.len() as i64) < COPY_PAGE {
                break;
            }
            offset += COPY_PAGE;
        }
        let (source_sum, target_sum) = (hex::encode(sum.finalize()), hex::encode(back.finalize()));
        if source_sum != target_sum {
            return Err(sqlx::Error::Protocol(format!("{t}: the rows read back differ from the source's (checksums {source_sum} and {target_sum}): nothing copied")));
        }
        let identity: Option<String> = sqlx::query_scalar(
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
        )
        .bind(t)
        .fetch_optional(&mut *to)
        .await?;
        if let Some(col) = identity {
            if count > 0 {
                sqlx::query(&format!("SELECT setval(pg_get_serial_sequence('{t}', '{col}'), (SELECT MAX({col}) FROM {t}))")).execute(&mut *to).await?;
            }
        }
        copied.push(CopiedTable { table: t.clone(), rows: count, source_sum, target_sum });
    }
    to.commit().await?;
    from.rollback().await?;
    Ok(copied)
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
        sqlx::any::install_default_drivers();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("t.sqlite").display());
        let pool = pool_options(1).connect_with(AnyConnectOptions::from_str(&url)?).await?;
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
