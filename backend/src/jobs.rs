//! Background work that must run once across every backend process on one
//! database (the mail sender, order expiry, store-print registration,
//! automatic refunds, station alerts, retention): each pass runs only in the
//! process that holds the job's lease. A pass takes or renews the lease
//! (`database.job_lease_s`); when its holder stops (or dies) the lease lapses
//! and the next process to try takes the job over. Passes are idempotent and
//! each write is a transaction, so a pass cut short is finished by the next.
//! Heartbeats are flushed by every process (each holds its own).

use crate::store::{self, Pool};
use crate::time::now;

/// This process's claim on background jobs.
#[derive(Debug, Clone)]
pub struct Leases {
    pool: Pool,
    /// Who this process is in the lease table (host, process, a random part:
    /// two backends in one process are two holders).
    holder: String,
    lease_s: i64,
}

impl Leases {
    pub fn new(pool: Pool, lease_s: i64) -> Leases {
        use rand::Rng;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
        let tag: u32 = rand::thread_rng().gen();
        Leases { pool, holder: format!("{host}:{}:{tag:08x}", std::process::id()), lease_s: lease_s.max(1) }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this process may run a pass of `job` now (taking or renewing its lease).
    pub async fn hold(&self, job: &str) -> bool {
        let t = now();
        let held = match self.pool.acquire().await {
            Ok(mut c) => store::take_lease(&mut c, job, &self.holder, t, t + self.lease_s).await,
            Err(e) => Err(e),
        };
        match held {
            Ok(true) => true,
            Ok(false) => {
                tracing::trace!(job, "another backend holds this job");
                false
            }
            Err(e) => {
                tracing::warn!(job, error = %e, "could not take the job's lease; skipping this pass");
                false
            }
        }
    }

    /// Gives every job this process holds up (a clean stop: the others take over at once).
    pub async fn release_all(&self) {
        if let Ok(mut c) = self.pool.acquire().await {
            if let Err(e) = store::release_leases(&mut c, &self.holder).await {
                tracing::warn!(error = %e, "could not give the job leases up: they lapse by themselves");
            }
        }
    }
}

/// The jobs that run once across processes.
pub const MAIL: &str = "mail";
pub const STORE_PRINTS: &str = "store-prints";
pub const STATION_ALERTS: &str = "station-alerts";
pub const REFUNDS: &str = "refunds";
pub const ORDER_EXPIRY: &str = "order-expiry";
pub const IMAGE_RETENTION: &str = "image-retention";
pub const COHORTS: &str = "graduation-day";
