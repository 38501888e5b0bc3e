//! After a restart (a crash, a power cut, SIGKILL) the station finishes what
//! the journal says it left half-done, without a second charge or a second
//! Print-Job for the same payment (ST-5):
//!
//! * reserved / declined (no money taken): the reservation is given back;
//! * charging / charge_unknown with a card (the charge's answer may be lost):
//!   the backend is asked whether it took the money under the job's key, and
//!   a `charged` step records it when it did; then as below;
//! * charged / fetching / fetched (money may have been taken, nothing sent to
//!   the printer): reported failed, so the backend keeps a paid order
//!   reprintable at any station and an unpaid one usable;
//! * submitting (a Print-Job was sent, its answer not recorded): the printer is
//!   asked for a job of that name (Get-Jobs); if it has one, it is followed
//!   like `submitted`, else the job is reported failed;
//! * submitted (the printer's job-id is saved): the printer is asked about
//!   that job instead of printing again; completed -> printed, ended or
//!   unknown to the printer -> failed; still going -> Cancel-Job, and if the
//!   printer still holds it after that, `unsettled`: never reported failed
//!   while it may print, asked again every few seconds until it ends.
//!
//! * charging / charge_unknown at the e-money terminal (P-5): the terminal is
//!   asked the transaction's status first; approved -> the payment is queued
//!   for the backend and the job reported failed (paid, reprintable);
//!   declined -> nothing was taken; no answer -> left for the next try.
//!
//! Every outcome goes through the journal's outbox like a live job's.

use crate::journal::{Job, Journal};
use crate::printer::{follow_job, JobState, Printer, PrinterError};
use crate::sync::Backend;
use crate::terminal::{ChargeOutcome, SerialTerminal};
use shomei_shared::api::{PrintOutcome, PrintReport, TerminalPayment};
use shomei_shared::Yen;
use std::time::Duration;

/// The IPP job-name the station gives a job (also how a restart finds it).
pub fn job_name(print_number: &str, job_id: i64) -> String {
    format!("shomei-{print_number}-{job_id}")
}

/// Settles every unfinished job; returns how many it settled.
pub async fn recover<P: Printer>(
    journal: &Journal,
    backend: &Backend,
    printer: &P,
    job_timeout: Duration,
    station_id: i64,
    terminal: Option<&SerialTerminal>,
) -> Result<usize, sqlx::Error> {
    let jobs = journal.unfinished_jobs().await?;
    if !jobs.is_empty() {
        tracing::warn!(count = jobs.len(), "settling jobs a restart interrupted");
    }
    let mut settled = 0;
    for job in &jobs {
        if matches!(job.state.as_str(), "charging" | "charge_unknown") {
            if let Some(txn) = journal.terminal_txn(job.id).await? {
                if settle_terminal(journal, backend, terminal, job, &txn).await? {
                    settled += 1;
                }
                continue;
            }
        }
        if settle(journal, backend, printer, job, job_timeout, station_id).await? {
            settled += 1;
        }
    }
    Ok(settled)
}

/// Jobs the station could not settle when they ended and that no task owns
/// any more: `unsettled` (the printer held the job after Cancel-Job, or could
/// not be asked) and `charge_unknown` for a card (the backend could not be
/// reached to say whether it took the money). Asked again; returns how many
/// were settled now.
pub async fn settle_later<P: Printer>(journal: &Journal, backend: &Backend, printer: &P, station_id: i64) -> Result<usize, sqlx::Error> {
    let mut settled = 0;
    for job in journal.unfinished_jobs().await? {
        let ours = match job.state.as_str() {
            "unsettled" => true,
            "charge_unknown" => journal.terminal_txn(job.id).await?.is_none(),
            _ => false,
        };
        if ours && settle(journal, backend, printer, &job, Duration::from_secs(2), station_id).await? {
            settled += 1;
        }
    }
    Ok(settled)
}

/// A card charge whose answer the journal never got (the station died or the
/// line broke after sending it): the backend says whether it took the money,
/// and the journal records it, so the station's `charged` steps match the
/// ledger. False when the backend could not be asked.
async fn confirm_card_charge(journal: &Journal, backend: &Backend, job: &Job) -> Result<bool, sqlx::Error> {
    match backend.charge_status(job.reservation_id, &job.charge_key).await {
        Ok(status) => {
            if let Some(amount) = status.charged {
                tracing::warn!(job_id = job.id, %amount, "the backend took the payment before the restart: recorded");
                journal.step(job.id, "charged", &format!("{amount} (confirmed by the backend after the answer was lost)")).await?;
            } else {
                tracing::info!(job_id = job.id, "the backend took no payment for this job");
            }
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(job_id = job.id, error = %e, "the backend cannot say yet whether it took the payment");
            Ok(false)
        }
    }
}

/// A job whose terminal charge has no known outcome: asks the terminal.
/// Returns false when the terminal could not say (the job stays as it is).
pub async fn settle_terminal(journal: &Journal, backend: &Backend, terminal: Option<&SerialTerminal>, job: &Job, txn: &str) -> Result<bool, sqlx::Error> {
    let Some(terminal) = terminal else {
        tracing::error!(job_id = job.id, txn, "a terminal charge is unsettled but no terminal is configured");
        return Ok(false);
    };
    match terminal.status(txn).await {
        Ok(Some(ChargeOutcome::Approved { brand, .. })) => {
            tracing::warn!(job_id = job.id, txn, "the terminal says the charge went through: recorded, reprintable");
            let key = format!("{}-terminal", job.charge_key);
            let p = TerminalPayment { idempotency_key: key.clone(), transaction_id: txn.to_string(), amount: Yen(job.amount), brand, at: crate::journal::now() };
            let body = serde_json::to_string(&p).unwrap_or_default();
            journal.record_terminal_payment(job.id, job.reservation_id, &key, &body, &format!("terminal txn {txn} approved (asked after)")).await?;
            fail(journal, 0, job, None, "the terminal's answer was lost: paid, not printed").await?;
            Ok(true)
        }
        Ok(Some(outcome)) => {
            tracing::info!(job_id = job.id, txn, ?outcome, "the terminal took nothing");
            journal.step(job.id, "abandoned", &format!("terminal txn {txn}: {outcome:?}")).await?;
            if let Err(e) = backend.release(job.reservation_id).await {
                tracing::info!(error = %e, "reservation not released; it lapses by itself");
            }
            Ok(true)
        }
        Ok(None) | Err(_) => {
            tracing::warn!(job_id = job.id, txn, "the terminal cannot say yet what became of the charge");
            Ok(false)
        }
    }
}

/// Settles one job; false when it cannot be settled yet (asked again later).
async fn settle<P: Printer>(journal: &Journal, backend: &Backend, printer: &P, job: &Job, job_timeout: Duration, station_id: i64) -> Result<bool, sqlx::Error> {
    tracing::info!(job_id = job.id, state = %job.state, "recovering job");
    match job.state.as_str() {
        "reserved" | "declined" => {
            journal.step(job.id, "abandoned", "station restarted before payment").await?;
            if let Err(e) = backend.release(job.reservation_id).await {
                tracing::info!(error = %e, "reservation not released; it lapses by itself");
            }
            Ok(true)
        }
        "submitting" | "submitted" | "unsettled" => {
            let ipp_id = match job.ipp_job_id.and_then(|id| i32::try_from(id).ok()) {
                Some(id) => Some(id),
                None => match printer.find_job(&job_name(&job.print_number, job.id)).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(job_id = job.id, error = %e, "printer not asked about the lost job");
                        None
                    }
                },
            };
            let Some(ipp_id) = ipp_id else {
                fail(journal, station_id, job, None, "station restarted: the printer has no job for this print").await?;
                return Ok(true);
            };
            if job.ipp_job_id.is_none() {
                // found by its name (Get-Jobs): keep the id for the next question
                journal.set_ipp_job(job.id, ipp_id).await?;
            }
            let outcome = follow_job(printer, ipp_id, Duration::from_millis(500), job_timeout).await;
            let ended = match outcome {
                Ok((state, reasons)) if state.is_terminal() => Some((state, reasons)),
                Err(PrinterError::Rejected(e)) => Some((JobState::Aborted, vec![format!("unknown to the printer: {e}")])),
                other => {
                    // still not done: cancel it so that it cannot print later behind the user's back
                    tracing::warn!(ipp_id, ?other, "recovered job did not finish: cancelling it");
                    if let Err(e) = printer.cancel(ipp_id).await {
                        tracing::warn!(ipp_id, error = %e, "Cancel-Job refused");
                    }
                    match follow_job(printer, ipp_id, Duration::from_millis(500), Duration::from_secs(10)).await {
                        Ok((state, reasons)) if state.is_terminal() => Some((state, reasons)),
                        Err(PrinterError::Rejected(e)) => Some((JobState::Aborted, vec![format!("unknown to the printer: {e}")])),
                        other => {
                            // The printer still holds it: reporting it failed would let the
                            // number print elsewhere while this one may still come out.
                            tracing::error!(job_id = job.id, ipp_id, ?other, "the printer would not give up the job: left unsettled");
                            if job.state != "unsettled" {
                                journal.step(job.id, "unsettled", &format!("ipp job {ipp_id} not ended after Cancel-Job")).await?;
                            }
                            None
                        }
                    }
                }
            };
            match ended {
                Some((JobState::Completed, _)) => finish(journal, station_id, job, Some(ipp_id), PrintOutcome::Printed, "printed (confirmed after restart)").await?,
                Some((state, reasons)) => fail(journal, station_id, job, Some(ipp_id), &format!("job {ipp_id} ended {state:?} {}", reasons.join(","))).await?,
                None => return Ok(false),
            }
            Ok(true)
        }
        "charging" | "charge_unknown" if !job.offline => {
            // a card charge whose answer was lost: ask the backend what it did first
            if !confirm_card_charge(journal, backend, job).await? && job.state == "charge_unknown" {
                return Ok(false);
            }
            fail(journal, station_id, job, None, "station restarted before printing").await?;
            Ok(true)
        }
        // charged, fetching, fetched: nothing printed yet
        _ => {
            fail(journal, station_id, job, None, "station restarted before printing").await?;
            Ok(true)
        }
    }
}

async fn fail(journal: &Journal, station_id: i64, job: &Job, ipp_id: Option<i32>, reason: &str) -> Result<(), sqlx::Error> {
    finish(journal, station_id, job, ipp_id, PrintOutcome::Failed { reason: reason.to_string() }, reason).await
}

async fn finish(journal: &Journal, station_id: i64, job: &Job, ipp_id: Option<i32>, outcome: PrintOutcome, detail: &str) -> Result<(), sqlx::Error> {
    let step = match outcome {
        PrintOutcome::Printed => "printed",
        PrintOutcome::Failed { .. } => "failed",
    };
    if let (true, Some(order_id)) = (job.offline, job.order_id) {
        // printed from the offline copy: reported as an offline print, keyed like the live one
        let key = format!("{station_id}-{}", job.id);
        let p = shomei_shared::api::OfflinePrint { idempotency_key: key.clone(), order_id, outcome, ipp_job_id: ipp_id, at: crate::journal::now() };
        let body = serde_json::to_string(&p).unwrap_or_default();
        tracing::info!(job_id = job.id, step, detail, "recovered offline job settled");
        return journal.finish_job_as(job.id, step, detail, 0, &key, &body, "offline").await;
    }
    let key = format!("{}-{step}", job.charge_key);
    let report = PrintReport { idempotency_key: key.clone(), outcome, ipp_job_id: ipp_id, at: crate::journal::now(), impressions: None };
    let body = serde_json::to_string(&report).unwrap_or_default();
    tracing::info!(job_id = job.id, step, detail, "recovered job settled");
    journal.finish_job(job.id, step, detail, job.reservation_id, &key, &body).await
}
