//! Background jobs: leases (one holder across backends) and runs.

use super::*;

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

/// Gives every lease `holder` has up (a process stopping).
pub async fn release_leases(c: &mut Conn, holder: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM job_leases WHERE holder = $1").bind(holder).execute(c).await?;
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
