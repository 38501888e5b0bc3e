//! The SQLite desk: where stations' calls (reserve, charge, document,
//! report) run on a SQLite deployment.
//!
//! SQLite has one writer at a time, and each commit waits for the disk. A
//! station's call through the pool would take the write turn, cross to the
//! pool's worker thread and back for each of its dozen statements, and wait
//! for its own fsync. The desk is one thread with a connection of its own:
//! it takes the calls waiting in its queue together, runs each in a
//! savepoint of one transaction (a call that fails is undone alone), and
//! commits them with one fsync. Each call is answered once its transaction
//! has ended, so a station is never told of a reservation, payment or print
//! that a crash could lose (nor given the id of a row a failed commit would
//! hand out again), nor refused on the strength of one; if the transaction
//! is lost, every call in it is answered with the error.
//! Calls that only read (a document, who is calling) run at once on a reader
//! connection of their own, beside the writer (SQLite's readers see the last
//! commit and never wait for it).
//! It takes the process's write turn like every pooled write transaction
//! (see [`super::begin_write`]), so the two do not wait for each other in
//! SQLite's busy handler.

use super::redeem::*;
use super::*;
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Row};
use std::sync::mpsc;
use std::sync::Arc;

/// Calls taken into one transaction at most.
const MAX_BATCH: usize = 256;
/// As long as the pooled writers wait for their turn.
const TURN_WAIT: Duration = Duration::from_secs(10);

type Delivery = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A call: run on the desk's connection (None: no transaction could be
/// begun), it says whether its writes stay and how its answer is delivered.
type Job = Box<dyn FnOnce(Option<&mut DeskConn>) -> Option<Outcome> + Send>;

struct Outcome {
    /// Its writes stay (else they are undone).
    keep: bool,
    deliver: Delivery,
}

/// The queue of the desk's thread (cloned freely; the thread ends with the last clone).
#[derive(Clone)]
pub struct Desk {
    jobs: mpsc::Sender<Job>,
    tally: Arc<Tally>,
    /// Connections for calls that only read, lent one at a time.
    readers: Arc<std::sync::Mutex<Vec<DeskConn>>>,
    file: Arc<std::path::PathBuf>,
}

/// What the desk has done since it opened.
#[derive(Default)]
struct Tally {
    commits: std::sync::atomic::AtomicU64,
    calls: std::sync::atomic::AtomicU64,
}

/// The desk's own connection: what its calls read and write through.
pub struct DeskConn {
    db: Connection,
}

fn desk_error(what: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Protocol(format!("station desk: {what}"))
}

fn err(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::QueryReturnedNoRows => sqlx::Error::RowNotFound,
        e => desk_error(e),
    }
}

impl Desk {
    /// Opens the desk of the SQLite database `pool` opens (already migrated).
    pub fn open(pool: &Pool) -> Result<Desk, sqlx::Error> {
        let file = database_file(&pool.connect_options().database_url.to_string())?;
        let db = DeskConn::open(&file, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        db.db.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(err)?;
        let gate = write_gate(pool);
        let rt = tokio::runtime::Handle::try_current().map_err(desk_error)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let tally = Arc::new(Tally::default());
        let counted = tally.clone();
        std::thread::Builder::new()
            .name("station-desk".into())
            .spawn(move || serve(db, &queue, &gate, &rt, &counted))
            .map_err(desk_error)?;
        Ok(Desk { jobs, tally, readers: Arc::default(), file: Arc::new(file) })
    }

    /// Runs `f`, which only reads, at once on a reader connection (in the caller's thread: a few statements).
    pub fn read<T, E: From<sqlx::Error>>(&self, f: impl FnOnce(&mut DeskConn) -> Result<T, E>) -> Result<T, E> {
        let lent = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut reader = match lent {
            Some(r) => r,
            None => DeskConn::open(&self.file, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        };
        let out = f(&mut reader);
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).push(reader);
        out
    }

    /// Transactions the desk has committed so far (each holds every call that was waiting).
    pub fn commits(&self) -> u64 {
        self.tally.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Calls the desk's transactions have run so far (kept or undone; reads on reader connections not counted).
    pub fn calls(&self) -> u64 {
        self.tally.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` in the desk's next transaction: its writes are kept when it
    /// returns Ok, undone when it returns Err (or panics). It is answered
    /// once the transaction has ended; if that transaction is lost (its
    /// commit failed), with the error that lost it.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: FnOnce(&mut DeskConn) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |db| {
            let Some(db) = db else {
                let _ = answer.send(Err(E::from(desk_error("no transaction could be begun"))));
                return None;
            };
            let (keep, deliver): (bool, Delivery) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(db))) {
                Ok(Ok(v)) => (true, Box::new(move |ended: Result<(), String>| drop(answer.send(ended.map(|()| v).map_err(|e| E::from(desk_error(e))))))),
                Ok(Err(e)) => (false, Box::new(move |ended: Result<(), String>| drop(answer.send(Err(ended.map_or_else(|lost| E::from(desk_error(lost)), |()| e)))))),
                Err(_) => (false, Box::new(move |ended: Result<(), String>| drop(answer.send(Err(E::from(desk_error(ended.err().unwrap_or_else(|| "a call panicked".into())))))))),
            };
            Some(Outcome { keep, deliver })
        });
        self.jobs.send(job).map_err(|_| E::from(desk_error("stopped")))?;
        answered.await.map_err(|_| E::from(desk_error("a call was dropped")))?
    }
}

/// The desk's thread: once a call is queued and the write turn is its, takes
/// every call queued by then, runs them in one transaction, commits once, answers.
fn serve(mut conn: DeskConn, queue: &mpsc::Receiver<Job>, gate: &Arc<tokio::sync::Semaphore>, rt: &tokio::runtime::Handle, tally: &Tally) {
    while let Ok(first) = queue.recv() {
        let turn = rt.block_on(async { tokio::time::timeout(TURN_WAIT, gate.clone().acquire_owned()).await });
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let begun = match turn {
            Ok(Ok(turn)) => match conn.db.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => Some(turn),
                Err(e) => {
                    tracing::error!(error = %e, "the station desk could not begin a transaction");
                    None
                }
            },
            _ => {
                tracing::error!("the station desk waited too long for the write turn");
                None
            }
        };
        let Some(turn) = begun else {
            batch.into_iter().for_each(|job| drop(job(None)));
            continue;
        };
        let mut deliveries = Vec::with_capacity(batch.len());
        let mut lost = None;
        let mut jobs = batch.into_iter();
        for job in jobs.by_ref() {
            if let Err(e) = conn.db.execute_batch("SAVEPOINT call") {
                job(None);
                lost = Some(e.to_string());
                break;
            }
            tally.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(outcome) = job(Some(&mut conn)) else { continue };
            let ended = conn.db.execute_batch(if outcome.keep { "RELEASE call" } else { "ROLLBACK TO call; RELEASE call" });
            deliveries.push(outcome.deliver);
            // an error SQLite answers by rolling the whole transaction back
            // (a full disk, I/O) leaves no transaction to go on with
            match ended {
                Ok(()) if !conn.db.is_autocommit() => {}
                Ok(()) => lost = Some("the transaction was rolled back".to_string()),
                Err(e) => lost = Some(e.to_string()),
            }
            if lost.is_some() {
                break;
            }
        }
        let ended = match lost {
            None => conn.db.execute_batch("COMMIT").map_err(|e| e.to_string()),
            Some(why) => {
                jobs.for_each(|job| drop(job(None)));
                Err(why)
            }
        };
        match &ended {
            Ok(()) => {
                tally.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, "the station desk lost a transaction: every call in it is answered with the error");
                if !conn.db.is_autocommit() {
                    let _ = conn.db.execute_batch("ROLLBACK");
                }
            }
        }
        drop(turn);
        // every answer once the transaction has ended: a refusal may rest on
        // an earlier call of the same transaction, lost with it
        for d in deliveries {
            d(ended.clone());
        }
    }
}

/// `$1`..`$9` as SQLite names them (the store's SQL is written with `$N`).
const PARAMETERS: [&str; 9] = ["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9"];

impl DeskConn {
    fn open(file: &std::path::Path, mode: OpenFlags) -> Result<DeskConn, sqlx::Error> {
        let db = Connection::open_with_flags(file, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(err)?;
        db.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        db.set_prepared_statement_cache_capacity(64);
        Ok(DeskConn { db })
    }

    fn prepared(&self, sql: &str, args: &[&dyn ToSql]) -> Result<rusqlite::CachedStatement<'_>, sqlx::Error> {
        let mut st = self.db.prepare_cached(sql).map_err(err)?;
        for (name, arg) in PARAMETERS.iter().zip(args) {
            if let Some(i) = st.parameter_index(name).map_err(err)? {
                st.raw_bind_parameter(i, arg).map_err(err)?;
            }
        }
        Ok(st)
    }

    fn rows<T>(&self, sql: &str, args: &[&dyn ToSql], map: impl Fn(&Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>, sqlx::Error> {
        let mut st = self.prepared(sql, args)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            out.push(map(row).map_err(err)?);
        }
        Ok(out)
    }

    fn row<T>(&self, sql: &str, args: &[&dyn ToSql], map: impl Fn(&Row<'_>) -> rusqlite::Result<T>) -> Result<Option<T>, sqlx::Error> {
        let mut st = self.prepared(sql, args)?;
        let mut rows = st.raw_query();
        rows.next().map_err(err)?.map(map).transpose().map_err(err)
    }

    fn execute(&self, sql: &str, args: &[&dyn ToSql]) -> Result<(), sqlx::Error> {
        self.prepared(sql, args)?.raw_execute().map(drop).map_err(err)
    }
}

/// Where each column of a SELECT constant comes in its rows, read once from
/// the constant's text, so that a wide row (a station's or an order's, some
/// thirty columns) is read by position: rusqlite finds a column by name by
/// comparing it with every column's name in turn. The name at that position
/// is checked all the same (one comparison), and read by name if it differs.
struct Columns(HashMap<&'static str, usize>);

impl Columns {
    fn of(select: &'static str) -> Columns {
        let list = select.split_once("SELECT").map_or("", |(_, l)| l);
        let list = list.rsplit_once(" FROM ").map_or(list, |(l, _)| l);
        Columns(list.split(',').map(str::trim).enumerate().map(|(i, c)| (c, i)).collect())
    }

    fn get<T: rusqlite::types::FromSql>(&self, r: &Row<'_>, name: &str) -> rusqlite::Result<T> {
        match self.0.get(name) {
            Some(&i) if r.as_ref().column_name(i).is_ok_and(|n| n == name) => r.get(i),
            _ => r.get(name),
        }
    }

    fn flag(&self, r: &Row<'_>, name: &str) -> rusqlite::Result<Option<bool>> {
        Ok(self.get::<Option<i64>>(r, name)?.map(|v| v != 0))
    }
}

static STATION_COLUMNS: std::sync::LazyLock<Columns> = std::sync::LazyLock::new(|| Columns::of(STATION_SELECT));
static ORDER_COLUMNS: std::sync::LazyLock<Columns> = std::sync::LazyLock::new(|| Columns::of(ORDER_SELECT));

fn station(r: &Row<'_>) -> rusqlite::Result<Station> {
    let c = &*STATION_COLUMNS;
    Ok(Station {
        id: c.get(r, "id")?,
        university_id: c.get(r, "university_id")?,
        name: c.get(r, "name")?,
        status: c.get(r, "status")?,
        created_at: c.get(r, "created_at")?,
        enrolled_at: c.get(r, "enrolled_at")?,
        last_seen: c.get(r, "last_seen")?,
        version: c.get(r, "version")?,
        printer_reachable: c.flag(r, "printer_reachable")?,
        printer_state: c.get(r, "printer_state")?,
        printer_reasons: c.get(r, "printer_reasons")?,
        printer_message: c.get(r, "printer_message")?,
        reader_present: c.flag(r, "reader_present")?,
        outbox_len: c.get(r, "outbox_len")?,
        clock_skew_s: c.get(r, "clock_skew_s")?,
        markers: c.get(r, "markers")?,
        media_ready: c.get(r, "media_ready")?,
        terminal_present: c.flag(r, "terminal_present")?,
        disk_free_mb: c.get(r, "disk_free_mb")?,
        uptime_s: c.get(r, "uptime_s")?,
        jobs_printed: c.get(r, "jobs_printed")?,
        alert: c.get(r, "alert")?,
        in_service: c.flag(r, "in_service")?.unwrap_or(false),
        test_page_wanted: c.get(r, "test_page_wanted")?,
        test_page_done: c.get(r, "test_page_done")?,
        test_page_result: c.get(r, "test_page_result")?,
        test_page_at: c.get(r, "test_page_at")?,
    })
}

fn order(r: &Row<'_>) -> rusqlite::Result<Order> {
    let c = &*ORDER_COLUMNS;
    Ok(Order {
        id: c.get(r, "id")?,
        user_id: c.get(r, "user_id")?,
        student_record_id: c.get(r, "student_record_id")?,
        delivery: c.get(r, "delivery")?,
        payment_method: c.get(r, "payment_method")?,
        status: c.get(r, "status")?,
        fees: c.get(r, "fees")?,
        system_fee: c.get(r, "system_fee")?,
        total: c.get(r, "total")?,
        print_number: c.get(r, "print_number")?,
        created_at: c.get(r, "created_at")?,
        pay_deadline: c.get(r, "pay_deadline")?,
        print_deadline: c.get(r, "print_deadline")?,
        paid_at: c.get(r, "paid_at")?,
        printed_at: c.get(r, "printed_at")?,
        pages: c.get(r, "pages")?,
        capture_id: c.get(r, "capture_id")?,
        postage: c.get(r, "postage")?,
        post_address_sealed: c.get(r, "post_address_sealed")?,
        shipped_at: c.get(r, "shipped_at")?,
        smartpit_number: c.get(r, "smartpit_number")?,
        store_file_id: c.get(r, "store_file_id")?,
        store_user_number: c.get(r, "store_user_number")?,
        store_reservation_number: c.get(r, "store_reservation_number")?,
        refunded_at: c.get(r, "refunded_at")?,
        refund_method: c.get(r, "refund_method")?,
        refund_paid_back_at: c.get(r, "refund_paid_back_at")?,
        refund_bank_sealed: c.get(r, "refund_bank_sealed")?,
        held_chars: c.get(r, "held_chars")?,
        refund_error: c.get(r, "refund_error")?,
    })
}

fn reservation(r: &Row<'_>) -> rusqlite::Result<ReservationRow> {
    Ok(ReservationRow {
        id: r.get("id")?,
        order_id: r.get("order_id")?,
        station_id: r.get("station_id")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        status: r.get("status")?,
    })
}

fn first<T: rusqlite::types::FromSql>(r: &Row<'_>) -> rusqlite::Result<T> {
    r.get(0)
}

impl RedeemStore for DeskConn {
    async fn station_by_token(&mut self, token_hash: &str) -> R<Option<Station>> {
        self.row(&format!("{STATION_SELECT} {STATION_BY_TOKEN}"), &[&token_hash], station)
    }
    async fn throttle_failures(&mut self, key: &str, since_ms: i64) -> R<Vec<i64>> {
        self.rows(THROTTLE_FAILURES, &[&key, &since_ms], first)
    }
    async fn order(&mut self, id: i64) -> R<Order> {
        self.row(&format!("{ORDER_SELECT} {ORDER_BY_ID}"), &[&id], order)?.ok_or(sqlx::Error::RowNotFound)
    }
    async fn order_by_print_number(&mut self, number: &str) -> R<Option<Order>> {
        self.row(&format!("{ORDER_SELECT} {ORDER_BY_NUMBER}"), &[&number], order)
    }
    async fn order_university(&mut self, order_id: i64) -> R<University> {
        self.row(ORDER_UNIVERSITY, &[&order_id], |r| {
            Ok(University {
                id: r.get("id")?,
                name_ja: r.get("name_ja")?,
                name_en: r.get("name_en")?,
                timezone: r.get("timezone")?,
                system_fee: r.get("system_fee")?,
                postage: r.get("postage")?,
            })
        })?
        .ok_or(sqlx::Error::RowNotFound)
    }
    async fn order_lines(&mut self, order_id: i64) -> R<Vec<OrderLine>> {
        self.rows(ORDER_LINES, &[&order_id], |r| {
            Ok(OrderLine {
                id: r.get("id")?,
                certificate_type_id: r.get("certificate_type_id")?,
                name_ja: r.get("name_ja")?,
                name_en: r.get("name_en")?,
                unit_fee: r.get("unit_fee")?,
                copies: r.get("copies")?,
                amount: r.get("amount")?,
            })
        })
    }
    async fn order_document(&mut self, order_id: i64) -> R<Option<Vec<u8>>> {
        self.row(ORDER_DOCUMENT, &[&order_id], first)
    }
    async fn set_order_paid(&mut self, order_id: i64, now: i64) -> R<()> {
        self.execute(SET_ORDER_PAID, &[&now, &order_id])
    }
    async fn set_order_printed(&mut self, order_id: i64, now: i64) -> R<()> {
        self.execute(SET_ORDER_PRINTED, &[&now, &order_id])
    }
    async fn live_reservations(&mut self, order_id: i64, now: i64) -> R<Vec<ReservationRow>> {
        self.rows(LIVE_RESERVATIONS, &[&order_id, &now], reservation)
    }
    async fn insert_reservation(&mut self, order_id: i64, station_id: i64, now: i64, expires_at: i64) -> R<i64> {
        self.row(INSERT_RESERVATION, &[&order_id, &station_id, &now, &expires_at], first)?.ok_or(sqlx::Error::RowNotFound)
    }
    async fn reservation(&mut self, id: i64) -> R<Option<ReservationRow>> {
        self.row(RESERVATION, &[&id], reservation)
    }
    async fn set_reservation_status(&mut self, id: i64, status: &str) -> R<()> {
        self.execute(SET_RESERVATION_STATUS, &[&status, &id])
    }
    async fn extend_reservation(&mut self, id: i64, expires_at: i64) -> R<()> {
        self.execute(EXTEND_RESERVATION, &[&expires_at, &id])
    }
    async fn station_report(&mut self, key: &str) -> R<Option<StationReport>> {
        self.row(STATION_REPORT, &[&key], |r| Ok(StationReport { outcome: r.get("outcome")? }))
    }
    async fn insert_station_report(&mut self, r: &NewStationReport<'_>) -> R<()> {
        let duplicate = i64::from(r.duplicate);
        self.execute(
            INSERT_STATION_REPORT,
            &[&r.key, &r.station_id, &r.reservation_id, &r.outcome, &r.detail, &r.ipp_job_id, &r.station_time, &r.now, &duplicate],
        )
    }
    async fn card(&mut self, uid: &str) -> R<Option<Card>> {
        self.row(CARD, &[&uid], |r| Ok(Card { uid: r.get("uid")?, user_id: r.get("user_id")?, status: r.get("status")? }))
    }
    async fn card_balance(&mut self, uid: &str) -> R<i64> {
        self.row(CARD_BALANCE, &[&uid], first)?.ok_or(sqlx::Error::RowNotFound)
    }
    async fn ledger_by_key(&mut self, key: &str) -> R<Option<LedgerEntry>> {
        self.row(LEDGER_BY_KEY, &[&key], |r| {
            Ok(LedgerEntry { id: r.get("id")?, card_uid: r.get("card_uid")?, amount: r.get("amount")?, kind: r.get("kind")?, order_id: r.get("order_id")? })
        })
    }
    async fn insert_ledger(&mut self, l: &NewLedger<'_>) -> R<()> {
        self.execute(INSERT_LEDGER, &[&l.uid, &l.amount, &l.kind, &l.order_id, &l.station_id, &l.key, &l.now])
    }
    async fn audit_event(&mut self, e: &AuditEvent<'_>, now: i64) -> R<()> {
        let (staff_login, station_id) = audit_owner(e.actor);
        self.execute(AUDIT, &[&now, &e.actor, &e.action, &e.target, &e.ip, &e.detail, &staff_login, &station_id])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    async fn desk() -> Result<(tempfile::TempDir, Pool, Desk), sqlx::Error> {
        let dir = tempfile::tempdir().map_err(sqlx::Error::Io)?;
        let pool = connect(&format!("sqlite:{}", dir.path().join("t.sqlite").display())).await?;
        let desk = Desk::open(&pool)?;
        Ok((dir, pool, desk))
    }

    /// A call that writes one audit line with `action`, then fails if told to.
    async fn write(desk: &Desk, action: &'static str, fail: bool) -> Result<(), sqlx::Error> {
        desk.run(move |db| {
            let line = AuditEvent { actor: "test", action, target: "", ip: "", detail: "" };
            db.audit_event(&line, 0).now_or_never().unwrap_or(Err(sqlx::Error::PoolTimedOut))?;
            if fail {
                return Err(sqlx::Error::RowNotFound);
            }
            Ok(())
        })
        .await
    }

    async fn lines(pool: &Pool, action: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1").bind(action).fetch_one(pool).await
    }

    /// A station's and an order's row are read by position: the position
    /// each column name gets from the SELECT's text is the one SQLite gives
    /// it in the prepared statement, for every column of both.
    #[tokio::test]
    async fn wide_rows_are_read_by_the_positions_their_select_gives_its_columns() -> Result<(), sqlx::Error> {
        let (dir, _pool, _desk) = desk().await?;
        let db = Connection::open(dir.path().join("t.sqlite")).map_err(err)?;
        for (select, columns, n) in [(STATION_SELECT, &*STATION_COLUMNS, 27), (ORDER_SELECT, &*ORDER_COLUMNS, 30)] {
            let st = db.prepare(select).map_err(err)?;
            assert_eq!(st.column_count(), n);
            assert_eq!(columns.0.len(), n);
            for i in 0..n {
                let name = st.column_name(i).map_err(err)?;
                assert_eq!(columns.0.get(name), Some(&i), "{name}");
            }
        }
        Ok(())
    }

    /// Calls that queued while another writer had the turn run in one
    /// transaction with one commit; the one that failed is undone alone; each
    /// answer comes once its writes are committed (another connection reads them).
    #[tokio::test]
    async fn calls_waiting_together_commit_once_and_a_failed_one_is_undone_alone() -> Result<(), sqlx::Error> {
        let (_dir, pool, desk) = desk().await?;
        let before = desk.commits();
        let other_writer = begin_write(&pool).await?;
        let calls: Vec<_> = [("kept-1", false), ("undone", true), ("kept-2", false)]
            .into_iter()
            .map(|(action, fail)| {
                let desk = desk.clone();
                tokio::spawn(async move { write(&desk, action, fail).await })
            })
            .collect();
        // (each spawned call queues on its first poll, here, while the turn is taken)
        tokio::task::yield_now().await;
        other_writer.commit().await?;
        let answers: Vec<bool> = futures_util::future::join_all(calls).await.into_iter().map(|r| matches!(r, Ok(Ok(())))).collect();
        assert_eq!(answers, vec![true, false, true]);
        assert_eq!((lines(&pool, "kept-1").await?, lines(&pool, "undone").await?, lines(&pool, "kept-2").await?), (1, 0, 1));
        assert_eq!(desk.commits() - before, 1, "the three calls were committed in one transaction");
        Ok(())
    }

    /// A commit that fails loses every call of its transaction, and each is
    /// answered with its error once the transaction has ended, a call that
    /// was refused too (its refusal may have rested on a lost call): none
    /// was told anything before.
    #[tokio::test]
    async fn a_commit_that_fails_answers_each_of_its_calls_with_the_error_and_keeps_none() -> Result<(), sqlx::Error> {
        let (_dir, pool, desk) = desk().await?;
        let other_writer = begin_write(&pool).await?;
        #[derive(Clone, Copy)]
        enum Then {
            Succeed,
            Refuse,
            BreakTheCommit,
        }
        let call = |action: &'static str, then: Then| {
            let desk = desk.clone();
            tokio::spawn(async move {
                desk.run(move |db| {
                    let line = AuditEvent { actor: "test", action, target: "", ip: "", detail: "" };
                    db.audit_event(&line, 0).now_or_never().unwrap_or(Err(sqlx::Error::PoolTimedOut))?;
                    match then {
                        Then::Succeed => Ok(()),
                        Then::Refuse => Err(sqlx::Error::RowNotFound),
                        // a row whose order does not exist, its check deferred to the commit
                        Then::BreakTheCommit => db
                            .db
                            .execute_batch("PRAGMA defer_foreign_keys = ON; INSERT INTO reservations (order_id, station_id, created_at, expires_at, status) VALUES (999999, 999999, 0, 0, 'active')")
                            .map_err(err),
                    }
                })
                .await
            })
        };
        let (payment, refused, breaker) = (call("payment", Then::Succeed), call("refused", Then::Refuse), call("breaker", Then::BreakTheCommit));
        tokio::task::yield_now().await;
        other_writer.commit().await?;
        let lost = |r: Result<Result<(), sqlx::Error>, tokio::task::JoinError>| matches!(r, Ok(Err(sqlx::Error::Protocol(m))) if m.contains("FOREIGN KEY"));
        assert_eq!((lost(payment.await), lost(refused.await), lost(breaker.await)), (true, true, true));
        for action in ["payment", "refused", "breaker"] {
            assert_eq!(lines(&pool, action).await?, 0, "{action}");
        }
        assert_eq!(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM reservations").fetch_one(&pool).await?, 0);
        Ok(())
    }

    /// A call that panics is undone and answered with an error; the desk goes on serving.
    #[tokio::test]
    async fn a_call_that_panics_is_undone_and_the_desk_serves_the_next() -> Result<(), sqlx::Error> {
        let (_dir, pool, desk) = desk().await?;
        let panicked = desk
            .run(|db| -> Result<(), sqlx::Error> {
                let line = AuditEvent { actor: "test", action: "before-panic", target: "", ip: "", detail: "" };
                db.audit_event(&line, 0).now_or_never().unwrap_or(Err(sqlx::Error::PoolTimedOut))?;
                panic!("a bug in a call")
            })
            .await;
        assert!(matches!(&panicked, Err(sqlx::Error::Protocol(m)) if m.contains("panicked")), "{panicked:?}");
        write(&desk, "after-panic", false).await?;
        assert_eq!((lines(&pool, "before-panic").await?, lines(&pool, "after-panic").await?), (0, 1));
        Ok(())
    }
}
