//! All of the backend's SQL. Functions take a connection so that domain code
//! can run several of them in one transaction; no business rule lives here.
//!
//! This file is the engine plumbing (the pool, write transactions, flags,
//! backup, copying a deployment between engines); the queries live in one
//! submodule per domain, re-exported here, so callers name them `store::xyz`.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

pub use flags::{Flag, MaybeFlag};

mod accounts;
mod audit;
mod cohorts;
mod demo;
mod desk;
mod digital;
mod jobs;
mod mail;
mod orders;
mod payments;
mod redeem;
mod registrar;
mod registration;
mod stations;

pub use accounts::*;
pub use audit::*;
pub use cohorts::*;
pub use demo::*;
pub use desk::{Desk, DeskConn};
pub use digital::*;
pub use jobs::*;
pub use mail::*;
pub use orders::*;
pub use payments::*;
pub use redeem::{NewLedger, NewStationReport, RedeemStore};
pub use registrar::*;
pub use registration::*;
pub use stations::*;

/// The backend's database: SQLite (the embedded default, a `sqlite:` URL) or
/// PostgreSQL (a `postgres:` URL), chosen by the URL at start. Every query
/// of the store is written once, in the SQL both engines read: `$N` parameters,
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
            let pool = pool_options(Engine::Sqlite, 8)
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
            let pool = pool_options(Engine::Postgres, 16).connect_with(AnyConnectOptions::from_str(url)?).await?;
            sqlx::migrate!("./migrations_pg").run(&pool).await?;
            pool
        }
    };
    Ok(pool)
}

/// The pool's options: a connection handed back still inside a transaction
/// (its end never reached the database: a request or job abandoned at the
/// wrong moment) is closed at once rather than lent again. Kept, it would
/// hold SQLite's write lock for nobody until lent (sqlx runs a custom
/// `BEGIN IMMEDIATE` and then checks it in a second step: a future dropped
/// between the two leaves the transaction open with no `Transaction` to roll
/// it back; a stop that cut the background jobs short once left a backend's
/// database locked for good, CI), and every later write on it would fail
/// ("begin_with at non-zero transaction depth"; the crash soak found a
/// backend answering 500 to a station for good after a kill).
///
/// sqlx itself pings a connection handed back (after `after_release`), which
/// sends a dropped transaction's queued rollback, and pings one before lending
/// it (a server restarted or a link cut meanwhile). On PostgreSQL the driver
/// knows at once whether a connection is still in a transaction, so nothing
/// is added there; SQLite's worker thread is asked with a ping first.
fn pool_options(engine: Engine, max_connections: u32) -> AnyPoolOptions {
    fn still_in_transaction(conn: &sqlx::AnyConnection, when: &'static str) -> bool {
        use sqlx::Connection;
        let open = conn.is_in_transaction();
        if open {
            tracing::error!(when, "a pooled database connection was still inside a transaction: closed, not reused");
        }
        open
    }
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .after_release(move |conn, _meta| {
            Box::pin(async move {
                if engine == Engine::Sqlite {
                    // a transaction dropped unfinished has its rollback queued on the
                    // connection: let it run first, then only a transaction nobody
                    // can end any more is left
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(!still_in_transaction(conn, "handed back"))
            })
        })
        .before_acquire(|conn, _meta| Box::pin(async move { Ok(!still_in_transaction(conn, "lent")) }))
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
            sqlx::query(&format!("SELECT pg_advisory_xact_lock($1) {LOCK_TIMEOUT}")).bind(WRITE_LOCK).execute(&mut *tx).await?;
            tx
        }
    };
    Ok(WriteTx { tx, _turn: Some(turn) })
}

/// What a station's write on one order locks (with the card it pays with)
/// instead of the whole database.
#[derive(Debug, Clone, Copy)]
pub enum WriteKey<'a> {
    Order(i64),
    /// A card by its UID (upper-case hex).
    Card(&'a str),
}

impl WriteKey<'_> {
    /// The two-key advisory lock (class, id) on PostgreSQL: orders are class
    /// 1, cards class 2 (a card's UID hashed: two cards sharing a lock only
    /// take turns).
    fn lock(&self) -> (i32, i32) {
        match self {
            // (order ids past 2^31 share locks with smaller ones: they only take turns)
            WriteKey::Order(id) => (1, *id as i32),
            WriteKey::Card(uid) => {
                // FNV-1a
                let h = uid.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193));
                (2, h as i32)
            }
        }
    }
}

/// A write on one order (and the card paying for it) only: a station's
/// reservation, charge or print report. On PostgreSQL it takes the
/// service-wide write lock shared and the order's (and card's) lock
/// exclusively, so stations' writes on different orders and cards run at
/// once, on every backend, while every other writer (which takes the
/// service-wide lock exclusively) still takes turns with all of them. On
/// SQLite, which has one writer, it is `begin_write`.
pub async fn begin_write_on(pool: &Pool, keys: &[WriteKey<'_>]) -> Result<WriteTx, sqlx::Error> {
    if engine(pool) == Engine::Sqlite {
        return begin_write(pool).await;
    }
    begin_write_on_held(pool.acquire().await?, keys).await
}

/// [`begin_write_on`] on a connection of a PostgreSQL pool the caller holds
/// already (it read on it what to lock): no second connection is taken.
pub async fn begin_write_on_held(conn: sqlx::pool::PoolConnection<sqlx::Any>, keys: &[WriteKey<'_>]) -> Result<WriteTx, sqlx::Error> {
    let mut locks: Vec<(i32, i32)> = keys.iter().map(WriteKey::lock).collect();
    // always in the same order: two writers never wait for each other's second lock
    locks.sort_unstable();
    locks.dedup();
    // (sqlx's own way to begin on a pooled connection it does not lend again meanwhile)
    let mut tx = sqlx::Transaction::begin(conn, None).await?;
    let mut sql = String::from("SELECT pg_advisory_xact_lock_shared($1)");
    for i in 0..locks.len() {
        sql.push_str(&format!(", pg_advisory_xact_lock(${}, ${})", 2 + 2 * i, 3 + 2 * i));
    }
    sql.push(' ');
    sql.push_str(LOCK_TIMEOUT);
    let mut q = sqlx::query(&sql).bind(WRITE_LOCK);
    for (class, id) in &locks {
        q = q.bind(*class).bind(*id);
    }
    q.execute(&mut *tx).await?;
    Ok(WriteTx { tx, _turn: None })
}

/// The end of a PostgreSQL statement taking write locks: the transaction
/// waits at most 10 s for them (set first, in the same round trip: the FROM
/// clause is read before the locks are taken).
const LOCK_TIMEOUT: &str = "FROM (SELECT set_config('lock_timeout', '10s', true)) AS waits_at_most";

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
    /// This process's write turn (None: a write on one order, see `begin_write_on`).
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
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
/// each after the tables it refers to (in its schema or the PostgreSQL target's), with its primary key's columns.
async fn sqlite_tables_in_order(c: &mut Conn, target: &mut Conn) -> Result<Vec<(String, Vec<String>)>, sqlx::Error> {
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
    // and the references only the target's schema has (SQLite cannot add a
    // referencing column with a default to a table, PostgreSQL can)
    let target_refs: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(child.relname AS TEXT), CAST(parent.relname AS TEXT) FROM pg_constraint k
         JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid
         WHERE k.contype = 'f' AND child.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())",
    )
    .fetch_all(&mut *target)
    .await?;
    for (child, parent) in target_refs {
        if let Some(p) = parents.get_mut(&child) {
            if parent != child && !p.contains(&parent) {
                p.push(parent);
            }
        }
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
    let mut to = dst.begin().await?;
    let tables = sqlite_tables_in_order(&mut from, &mut to).await?;
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
        let pool = pool_options(Engine::Sqlite, 1).connect_with(AnyConnectOptions::from_str(&url)?).await?;
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

    /// A transaction dropped unfinished (an error path) is rolled back and
    /// its connection lent again as it is: not closed as if abandoned.
    #[tokio::test]
    async fn a_transaction_dropped_unfinished_is_rolled_back_and_its_connection_kept() -> Result<(), sqlx::Error> {
        let dir = tempfile::tempdir().map_err(sqlx::Error::Io)?;
        sqlx::any::install_default_drivers();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("t.sqlite").display());
        let pool = pool_options(Engine::Sqlite, 1).connect_with(AnyConnectOptions::from_str(&url)?).await?;
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&pool).await?;
        // a mark only this connection has
        sqlx::query("CREATE TEMP TABLE this_connection (x INTEGER)").execute(&pool).await?;
        {
            let mut tx = begin_write(&pool).await?;
            sqlx::query("INSERT INTO t (x) VALUES (1)").execute(&mut *tx).await?;
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&pool).await?;
        assert_eq!(n, 0, "rolled back");
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM temp.sqlite_master WHERE name = 'this_connection'").fetch_one(&pool).await?;
        assert_eq!(kept, 1, "the same connection serves on");
        Ok(())
    }

    /// A connection handed back inside a write transaction (`BEGIN
    /// IMMEDIATE`, as begin_write takes it, its `Transaction` lost) gives
    /// SQLite's write lock up at once, not when the pool next lends it: a
    /// second process on the file writes while this pool sits idle.
    #[tokio::test]
    async fn a_write_transaction_left_on_a_returned_connection_does_not_lock_the_database() -> Result<(), sqlx::Error> {
        let dir = tempfile::tempdir().map_err(sqlx::Error::Io)?;
        sqlx::any::install_default_drivers();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("t.sqlite").display());
        let pool = pool_options(Engine::Sqlite, 2)
            .after_connect(|c, _| Box::pin(async move { sqlx::Executor::execute(c, "PRAGMA journal_mode = WAL").await.map(|_| ()) }))
            .connect_with(AnyConnectOptions::from_str(&url)?)
            .await?;
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&pool).await?;
        {
            let mut conn = pool.acquire().await?;
            std::mem::forget(sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?);
            sqlx::query("INSERT INTO t (x) VALUES (1)").execute(&mut *conn).await?;
        }
        // another process's writer, which waits up to 5 s for the lock
        let other = pool_options(Engine::Sqlite, 1).connect_with(AnyConnectOptions::from_str(&url)?).await?;
        sqlx::query("PRAGMA busy_timeout = 5000").execute(&other).await?;
        sqlx::query("INSERT INTO t (x) VALUES (2)").execute(&other).await?;
        let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(&other).await?;
        assert_eq!(xs, [2], "the abandoned transaction's row was rolled back, the other writer's is in");
        Ok(())
    }
}
