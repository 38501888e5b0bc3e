//! All of the station's SQL: its credential, the job journal and the outbox.
//! SQLite with `synchronous=FULL`: a step is on disk before the next starts.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};
use std::path::Path;
use std::time::Duration;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The crash tests' failpoint at a step (ST-5): the station dies right after
/// the journal has committed `step`, before the next side effect.
fn failpoint(step: &str) {
    crate::failpoint::crash(step);
}

/// Job states after which nothing more happens to a job.
pub const FINAL_STATES: [&str; 3] = ["printed", "failed", "abandoned"];

#[derive(Clone)]
pub struct Journal {
    pool: SqlitePool,
}

impl Journal {
    /// The journal answers a query (readiness).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct Credential {
    pub station_id: i64,
    pub name: String,
    pub token: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct Job {
    pub id: i64,
    pub reservation_id: i64,
    pub print_number: String,
    pub amount: i64,
    pub paid_online: bool,
    pub state: String,
    pub card_uid: Option<String>,
    pub charge_key: String,
    pub ipp_job_id: Option<i64>,
    pub error: Option<String>,
    /// Printed from the offline copy (P-3), for this order.
    pub offline: bool,
    pub order_id: Option<i64>,
}

/// The backend's last offline bundle, with when the station asked for it and
/// when it came (the station's clock).
#[derive(Debug, Clone, FromRow)]
pub struct StoredBundle {
    pub bundle: String,
    pub signature: String,
    pub requested_at: i64,
    pub fetched_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct OutboxItem {
    pub id: i64,
    pub reservation_id: i64,
    pub idempotency_key: String,
    pub body: String,
    pub attempts: i64,
    /// `report` (POST /reservations/{id}/report) or `offline` (POST /offline/prints).
    pub kind: String,
}

impl Journal {
    pub async fn open(dir: &Path) -> Result<Journal, sqlx::Error> {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("journal.sqlite"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Journal { pool })
    }

    pub async fn credential(&self) -> Result<Option<Credential>, sqlx::Error> {
        sqlx::query_as("SELECT station_id, name, token FROM credential WHERE id = 1").fetch_optional(&self.pool).await
    }

    /// The token moved to the secrets directory: the journal keeps none, not
    /// even in freed pages or the write-ahead log.
    pub async fn forget_token(&self) -> Result<(), sqlx::Error> {
        let mut c = self.pool.acquire().await?;
        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *c).await?;
        sqlx::query("UPDATE credential SET token = '' WHERE id = 1").execute(&mut *c).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *c).await?;
        sqlx::query("VACUUM").execute(&mut *c).await?;
        Ok(())
    }

    pub async fn save_credential(&self, station_id: i64, name: &str, token: &str) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT OR REPLACE INTO credential (id, station_id, name, token, enrolled_at) VALUES (1, ?, ?, ?, ?)")
            .bind(station_id)
            .bind(name)
            .bind(token)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A new job, journalled as `reserved`.
    pub async fn start_job(
        &self,
        reservation_id: i64,
        print_number: &str,
        amount: i64,
        paid_online: bool,
        charge_key: &str,
    ) -> Result<i64, sqlx::Error> {
        let t = now();
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (reservation_id, print_number, amount, paid_online, state, charge_key, created_at, updated_at)
             VALUES (?, ?, ?, ?, 'reserved', ?, ?, ?) RETURNING id",
        )
        .bind(reservation_id)
        .bind(print_number)
        .bind(amount)
        .bind(paid_online)
        .bind(charge_key)
        .bind(t)
        .bind(t)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO journal (job_id, step, detail, at) VALUES (?, 'reserved', ?, ?)")
            .bind(id)
            .bind(format!("reservation {reservation_id}"))
            .bind(t)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        failpoint("reserved");
        Ok(id)
    }

    /// Moves a job to `step` and writes the journal line, in one transaction.
    pub async fn step(&self, job_id: i64, step: &str, detail: &str) -> Result<(), sqlx::Error> {
        if crate::failpoint::refuses_write(step) {
            return Err(sqlx::Error::Protocol(format!("failpoint: the journal refuses to write {step}")));
        }
        let t = now();
        let mut tx = self.pool.begin().await?;
        write_step(&mut tx, job_id, step, detail, t).await?;
        tx.commit().await?;
        failpoint(step);
        Ok(())
    }

    pub async fn set_card(&self, job_id: i64, uid: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET card_uid = ? WHERE id = ?").bind(uid).bind(job_id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn set_ipp_job(&self, job_id: i64, ipp_job_id: i32) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET ipp_job_id = ? WHERE id = ?")
            .bind(ipp_job_id)
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_error(&self, job_id: i64, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET error = ? WHERE id = ?").bind(error).bind(job_id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn job(&self, job_id: i64) -> Result<Job, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, reservation_id, print_number, amount, paid_online, state, card_uid, charge_key, ipp_job_id, error, offline, order_id
             FROM jobs WHERE id = ?",
        )
        .bind(job_id)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn steps(&self, job_id: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT step FROM journal WHERE job_id = ? ORDER BY id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await
    }

    /// Writes the job's final step and its report for the backend together.
    pub async fn finish_job(
        &self,
        job_id: i64,
        step: &str,
        detail: &str,
        reservation_id: i64,
        key: &str,
        body: &str,
    ) -> Result<(), sqlx::Error> {
        self.finish_job_as(job_id, step, detail, reservation_id, key, body, "report").await
    }

    /// [`Journal::finish_job`] with the outbox entry's kind (`report` or `offline`).
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_job_as(
        &self,
        job_id: i64,
        step: &str,
        detail: &str,
        reservation_id: i64,
        key: &str,
        body: &str,
        kind: &str,
    ) -> Result<(), sqlx::Error> {
        let t = now();
        let mut tx = self.pool.begin().await?;
        write_step(&mut tx, job_id, step, detail, t).await?;
        queue(&mut tx, job_id, reservation_id, key, body, kind, t).await?;
        tx.commit().await?;
        failpoint(step);
        Ok(())
    }

    /// Jobs a restart interrupted: not in a final state, oldest first.
    pub async fn unfinished_jobs(&self) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, reservation_id, print_number, amount, paid_online, state, card_uid, charge_key, ipp_job_id, error, offline, order_id
             FROM jobs WHERE state NOT IN ('printed', 'failed', 'abandoned') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Marks a job as printed from the offline cache, for order `order_id`.
    pub async fn set_offline(&self, job_id: i64, order_id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET offline = 1, order_id = ? WHERE id = ?").bind(order_id).bind(job_id).execute(&self.pool).await?;
        Ok(())
    }

    /// True when this station already printed `print_number` (e.g. offline, not yet synced).
    pub async fn printed_here(&self, print_number: &str) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE print_number = ? AND state = 'printed'").bind(print_number).fetch_one(&self.pool).await? > 0)
    }

    /// Keeps the bundle asked for at `requested_at` (the station's clock).
    pub async fn save_bundle(&self, bundle: &str, signature: &str, requested_at: i64) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT OR REPLACE INTO offline_bundle (id, bundle, signature, fetched_at, requested_at) VALUES (1, ?, ?, ?, ?)")
            .bind(bundle)
            .bind(signature)
            .bind(now())
            .bind(requested_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The last bundle as stored.
    pub async fn bundle(&self) -> Result<Option<StoredBundle>, sqlx::Error> {
        sqlx::query_as("SELECT bundle, signature, requested_at, fetched_at FROM offline_bundle WHERE id = 1").fetch_optional(&self.pool).await
    }

    /// P-3 (b): a stored-value payment taken offline. The job's `charged`
    /// step, the debit and its outbox entry are one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_offline_debit(&self, job_id: i64, uid: &str, order_id: i64, amount: i64, key: &str, body: &str) -> Result<(), sqlx::Error> {
        let t = now();
        let mut tx = self.pool.begin().await?;
        write_step(&mut tx, job_id, "charged", &format!("offline card {uid} {amount} key {key}"), t).await?;
        sqlx::query("UPDATE jobs SET card_uid = ? WHERE id = ?").bind(uid).bind(job_id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO offline_debits (job_id, card_uid, order_id, amount, outbox_key, at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(job_id)
            .bind(uid)
            .bind(order_id)
            .bind(amount)
            .bind(key)
            .bind(t)
            .execute(&mut *tx)
            .await?;
        queue(&mut tx, job_id, 0, key, body, "offline_debit", t).await?;
        tx.commit().await?;
        failpoint("charged");
        Ok(())
    }

    /// P-5: the terminal took the payment. The job's `charged` step and the
    /// payment's outbox entry (kind `terminal`) are one transaction.
    pub async fn record_terminal_payment(&self, job_id: i64, reservation_id: i64, key: &str, body: &str, detail: &str) -> Result<(), sqlx::Error> {
        self.finish_job_as(job_id, "charged", detail, reservation_id, key, body, "terminal").await
    }

    /// The terminal transaction a job started, if it was paid at the terminal.
    pub async fn terminal_txn(&self, job_id: i64) -> Result<Option<String>, sqlx::Error> {
        let d: Option<String> = sqlx::query_scalar("SELECT detail FROM journal WHERE job_id = ? AND step = 'charging' AND detail LIKE 'terminal txn %' ORDER BY id DESC LIMIT 1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(d.map(|d| d.trim_start_matches("terminal txn ").to_string()))
    }

    /// Offline debits of `uid` the last bundle's balance may not include: not
    /// yet acknowledged by the backend, or acknowledged after `since`.
    pub async fn offline_debits_of(&self, uid: &str, since: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COALESCE(SUM(d.amount), 0) FROM offline_debits d JOIN outbox o ON o.idempotency_key = d.outbox_key
             WHERE d.card_uid = ? AND (o.sent_at IS NULL OR o.sent_at >= ?)",
        )
        .bind(uid)
        .bind(since)
        .fetch_one(&self.pool)
        .await
    }

    /// The station's offline debits not yet acknowledged by the backend.
    pub async fn offline_debits_unsynced(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COALESCE(SUM(d.amount), 0) FROM offline_debits d JOIN outbox o ON o.idempotency_key = d.outbox_key WHERE o.sent_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Cached documents: (order id, sha256).
    pub async fn cached_documents(&self) -> Result<Vec<(i64, String)>, sqlx::Error> {
        sqlx::query_as("SELECT order_id, sha256 FROM offline_documents").fetch_all(&self.pool).await
    }

    pub async fn put_document(&self, order_id: i64, sha256: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT OR REPLACE INTO offline_documents (order_id, sha256, nonce, ciphertext) VALUES (?, ?, ?, ?)")
            .bind(order_id)
            .bind(sha256)
            .bind(nonce)
            .bind(ciphertext)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (sha256, nonce, ciphertext) of a cached document.
    pub async fn document(&self, order_id: i64) -> Result<Option<(String, Vec<u8>, Vec<u8>)>, sqlx::Error> {
        sqlx::query_as("SELECT sha256, nonce, ciphertext FROM offline_documents WHERE order_id = ?").bind(order_id).fetch_optional(&self.pool).await
    }

    pub async fn drop_document(&self, order_id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM offline_documents WHERE order_id = ?").bind(order_id).execute(&self.pool).await?;
        Ok(())
    }

    /// A consistent copy of the journal into `dest` (a new file), while the station runs.
    pub async fn backup_into(&self, dest: &Path) -> Result<(), sqlx::Error> {
        sqlx::query("VACUUM INTO ?").bind(dest.to_string_lossy().into_owned()).execute(&self.pool).await?;
        Ok(())
    }

    /// `PRAGMA integrity_check` (the crash tests expect "ok").
    pub async fn integrity_check(&self) -> Result<String, sqlx::Error> {
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&self.pool).await
    }

    pub async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxItem>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, reservation_id, idempotency_key, body, attempts, kind FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Jobs per state (metrics).
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state").fetch_all(&self.pool).await
    }

    /// Jobs printed (the heartbeat reports it; the fleet page charts it).
    pub async fn printed_count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'printed'").fetch_one(&self.pool).await
    }

    pub async fn outbox_len(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetch_one(&self.pool).await
    }

    pub async fn outbox_sent(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn outbox_failed(&self, id: i64, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?")
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Moves a job to `step` and writes its journal line, inside `tx`.
async fn write_step(tx: &mut sqlx::SqliteConnection, job_id: i64, step: &str, detail: &str, t: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?").bind(step).bind(t).bind(job_id).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO journal (job_id, step, detail, at) VALUES (?, ?, ?, ?)")
        .bind(job_id)
        .bind(step)
        .bind(detail)
        .bind(t)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Queues a message for the backend (once per key), inside `tx`.
#[allow(clippy::too_many_arguments)]
async fn queue(tx: &mut sqlx::SqliteConnection, job_id: i64, reservation_id: i64, key: &str, body: &str, kind: &str, t: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT OR IGNORE INTO outbox (job_id, reservation_id, idempotency_key, body, created_at, kind) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(job_id)
        .bind(reservation_id)
        .bind(key)
        .bind(body)
        .bind(t)
        .bind(kind)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// `shomei-station backup DIR`: the journal (credential, jobs, outbox,
/// offline copy) and the station's key into a new directory.
pub async fn backup(state_dir: &Path, dest: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    if dest.exists() {
        anyhow::bail!("{} exists already: back up into a new directory", dest.display());
    }
    std::fs::create_dir_all(dest)?;
    let j = Journal::open(state_dir).await.with_context(|| format!("opening the journal in {}", state_dir.display()))?;
    // the journal only: the credential and keys stay in secrets_dir
    j.backup_into(&dest.join("journal.sqlite")).await.context("copying the journal")?;
    let copy = Journal::open(dest).await?;
    let ok = copy.integrity_check().await?;
    anyhow::ensure!(ok == "ok", "the backup fails its integrity check: {ok}");
    let jobs = copy.job_counts().await?.iter().map(|(_, n)| n).sum::<i64>();
    let unsent = copy.outbox_len().await?;
    // closed, so the copy is one file (no -wal / -shm beside it)
    copy.pool.close().await;
    Ok(format!("backup written to {} ({jobs} jobs, {unsent} reports not yet sent); the credential and keys in secrets_dir are not in it", dest.display()))
}

/// `shomei-station restore DIR` (the station stopped): checks the backup,
/// then puts the journal and key back; the next start migrates it if older.
pub async fn restore(state_dir: &Path, src: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let copy = Journal::open(src).await.with_context(|| format!("{} holds no station journal", src.display()))?;
    let ok = copy.integrity_check().await?;
    anyhow::ensure!(ok == "ok", "{} fails its integrity check ({ok}): not restored", src.display());
    anyhow::ensure!(copy.credential().await?.is_some(), "{} holds no station credential: not restored", src.display());
    copy.pool.close().await;
    std::fs::create_dir_all(state_dir)?;
    let target = state_dir.join("journal.sqlite");
    let tmp = state_dir.join("journal.sqlite.restoring");
    std::fs::copy(src.join("journal.sqlite"), &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    for side in ["journal.sqlite-wal", "journal.sqlite-shm"] {
        let _ = std::fs::remove_file(state_dir.join(side));
    }
    std::fs::rename(&tmp, &target)?;
    Ok(format!("restored {} into {}", src.display(), state_dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_are_journalled_in_order_and_reports_queued_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::open(dir.path()).await.expect("open");
        let id = j.start_job(7, "123456789012", 400, false, "k1").await.expect("job");
        j.step(id, "charged", "").await.expect("step");
        j.finish_job(id, "printed", "", 7, "k1-report", "{}").await.expect("finish");
        j.finish_job(id, "printed", "", 7, "k1-report", "{}").await.expect("finish again");
        assert_eq!(j.steps(id).await.expect("steps"), ["reserved", "charged", "printed", "printed"]);
        assert_eq!(j.outbox_len().await.expect("len"), 1);
        assert_eq!(j.job(id).await.expect("job").state, "printed");
        // survives a reopen (the file is the journal)
        drop(j);
        let j = Journal::open(dir.path()).await.expect("reopen");
        assert_eq!(j.pending_outbox(10).await.expect("outbox").len(), 1);
    }
}
