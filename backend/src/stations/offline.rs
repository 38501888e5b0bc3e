//! Offline printing (P-3, ST-2), the backend's side: the signed bundle a
//! station prefetches (live on-campus numbers with their PDFs' hashes, and the
//! block list), the PDFs themselves, and the prints stations report after
//! an outage, applied once each; a number printed at two stations while both
//! were offline is recorded as a duplicate and shown to staff.

use crate::error::{AppError, AppResult};
use crate::store::{self, Station};
use crate::time::{self, now};
use sha2::{Digest, Sha256};
use shomei_shared::api::{
    CardBalance, OfflineBundle, OfflineCardPolicy, OfflineDebit, AppliedOnce, OfflineJob, OfflinePrint, PrintOutcome,
    PrintSettings, ReservationLine, SignedBundle,
};
use shomei_shared::{ErrorCode, PrintNumber, Yen};
use crate::store::Pool;

/// The station's bundle, signed.
/// Only numbers a station may print offline: paid ones, and unpaid IC-card
/// ones only where the university opted in to policy (b). Each is named by
/// its MAC under this station's key, never in clear; the bundle is signed
/// with the backend's Ed25519 key.
pub async fn bundle(pool: &Pool, seal: &crate::sealed::SealKey, signer: &crate::stations::signing::BundleSigner, station: &Station, max_age_s: i64) -> AppResult<SignedBundle> {
    let mut c = pool.acquire().await?;
    let key = store::station_token_hash(&mut c, station.id).await?.ok_or_else(|| AppError::api(ErrorCode::Unauthorized, "no credential"))?;
    // read (and PDFs opened and hashed) without the write lock
    let t = now();
    let mut jobs = Vec::new();
    for o in store::offline_orders(&mut c, station.university_id, t).await? {
        let Some(number) = o.print_number.as_deref().and_then(|n| PrintNumber::parse(n).ok()) else { continue };
        let university = store::order_university(&mut c, o.id).await?;
        let zone = time::tz(&university.timezone);
        // policy (b): an unpaid IC-card order may be paid offline if its university says so
        let policy = store::offline_card_policy(&mut c, university.id).await?;
        let card_payment = (o.status == "awaiting_payment" && o.payment_method == "card" && policy.offline_cards)
            .then_some(OfflineCardPolicy { floor_limit: Yen(policy.offline_floor_limit), station_total: Yen(policy.offline_station_total) });
        if o.status != "paid" && card_payment.is_none() {
            continue; // not printable offline: it is not handed out
        }
        let Some(pdf) = crate::orders::stored_pdf(&mut c, seal, o.id).await? else { continue };
        let lines = store::order_lines(&mut c, o.id)
            .await?
            .into_iter()
            .map(|l| ReservationLine { name_ja: l.name_ja, name_en: l.name_en, copies: l.copies as u32, amount: Yen(l.amount) })
            .collect();
        jobs.push(OfflineJob {
            order_id: o.id,
            number_mac: shomei_shared::offline::number_mac(&key, number.as_str()),
            lines,
            system_fee: Yen(o.system_fee),
            amount: Yen(o.total),
            paid: o.status == "paid",
            print_deadline: o.print_deadline,
            print_deadline_text: time::deadline_text(o.print_deadline, zone),
            pages: o.pages as u32,
            document_sha256: hex::encode(Sha256::digest(&pdf)),
            print: PrintSettings::default(),
            card_payment,
        });
    }
    // the balance snapshot only goes out when some number may be paid offline
    let balances = if jobs.iter().any(|j| j.card_payment.is_some()) {
        store::active_card_balances(&mut c, station.university_id).await?.into_iter().map(|(uid, b)| CardBalance { uid, balance: Yen(b) }).collect()
    } else {
        Vec::new()
    };
    let b = OfflineBundle { station_id: station.id, issued_at: t, max_age_s, jobs, blocked_cards: store::blocked_cards(&mut c).await?, balances };
    drop(c);
    // what this station is handed is recorded (one short write), so its offline claims can be checked later
    let mut tx = store::begin_write(pool).await?;
    for j in &b.jobs {
        store::record_offline_issue(&mut tx, station.id, j.order_id, j.card_payment.is_some(), t).await?;
    }
    tx.commit().await?;
    let body = serde_json::to_string(&b).map_err(|e| AppError::Internal(e.into()))?;
    Ok(SignedBundle { signature: signer.sign(body.as_bytes()), bundle: body })
}

/// An order's PDF for the offline cache, if the order is in the bundle.
pub async fn document(pool: &Pool, seal: &crate::sealed::SealKey, station: &Station, order_id: i64) -> AppResult<Vec<u8>> {
    let mut c = pool.acquire().await?;
    // only a document of an order this station was handed, and still printable offline
    if store::offline_issue(&mut c, station.id, order_id).await?.is_none() || !store::offline_orders(&mut c, station.university_id, now()).await?.iter().any(|o| o.id == order_id) {
        return Err(AppError::api(ErrorCode::NotFound, "not an order for offline printing"));
    }
    crate::orders::stored_pdf(&mut c, seal, order_id).await?.ok_or_else(|| AppError::api(ErrorCode::NotFound, "no document"))
}

/// A print made offline: applied once per key. A paid order printed offline
/// becomes printed; if another station had printed it already, the print is
/// kept as a duplicate for staff.
pub async fn apply(pool: &Pool, station: &Station, p: &OfflinePrint) -> AppResult<AppliedOnce> {
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, p.order_id).await.map_err(|_| AppError::api(ErrorCode::NotFound, "no such order"))?;
    if let Some(duplicate) = store::offline_print_seen(&mut tx, &p.idempotency_key).await? {
        return Ok(AppliedOnce { order_status: order.status, duplicate });
    }
    // only an order handed to this station for offline use, and printed only if paid
    let checked = match crate::stations::claims::offline_issue(&mut tx, "offline_print", station, &order, p.at).await? {
        Ok(_) if matches!(p.outcome, PrintOutcome::Printed) => crate::stations::claims::print("offline_print", &order),
        other => other.map(drop),
    };
    if let Err(refused) = checked {
        drop(tx);
        return Err(crate::stations::claims::refuse(pool, station, &p.idempotency_key, Some(order.id), refused).await);
    }
    let (outcome, detail) = match &p.outcome {
        PrintOutcome::Printed => ("printed", String::new()),
        PrintOutcome::Failed { reason } => ("failed", reason.clone()),
    };
    let duplicate = outcome == "printed" && order.status == "printed";
    store::insert_offline_print(&mut tx, &p.idempotency_key, station.id, order.id, outcome, &detail, p.ipp_job_id, p.at, t, duplicate).await?;
    if outcome == "printed" && order.status == "paid" {
        store::set_order_printed(&mut tx, order.id, p.at.min(t)).await?;
    }
    let what = if duplicate { "print.offline.duplicate" } else { "print.offline" };
    store::audit(&mut tx, &format!("station:{}", station.id), what, &format!("order {} {outcome} {detail}", order.id), t).await?;
    if duplicate {
        tracing::warn!(order_id = order.id, station = %station.name, "a number was printed offline at a second station");
    }
    let status = store::order(&mut tx, order.id).await?.status;
    tx.commit().await?;
    Ok(AppliedOnce { order_status: status, duplicate })
}

/// A stored-value payment a station took offline (policy b): applied once
/// per key, before that print's own report. The order becomes paid; if it
/// was paid already (online meanwhile, or at another offline station) the
/// debit is refunded to the card at once and shown to staff, so nobody pays
/// twice. The ledger keeps both entries.
pub async fn apply_debit(pool: &Pool, station: &Station, d: &OfflineDebit) -> AppResult<AppliedOnce> {
    let t = now();
    let uid = d.card_uid.trim().to_uppercase();
    if uid.is_empty() || uid.len() > 32 || !uid.chars().all(|c| c.is_ascii_hexdigit()) || d.amount.0 <= 0 {
        return Err(AppError::api(ErrorCode::BadRequest, "card_uid must be hex and amount positive"));
    }
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, d.order_id).await.map_err(|_| AppError::api(ErrorCode::NotFound, "no such order"))?;
    if let Some(duplicate) = store::offline_debit_seen(&mut tx, &d.idempotency_key).await? {
        return Ok(AppliedOnce { order_status: order.status, duplicate });
    }
    let duplicate = !matches!(order.status.as_str(), "awaiting_payment" | "expired");
    if let Err(refused) = crate::stations::claims::offline_debit(&mut tx, station, &order, &uid, d.amount, d.at.min(t), duplicate).await? {
        drop(tx);
        return Err(crate::stations::claims::refuse(pool, station, &d.idempotency_key, Some(order.id), refused).await);
    }
    let at = d.at.min(t);
    store::insert_offline_debit(&mut tx, &d.idempotency_key, station.id, order.id, &uid, d.amount.0, at, t, duplicate).await?;
    store::insert_ledger(&mut tx, &uid, -d.amount.0, "debit", Some(order.id), Some(station.id), Some(&d.idempotency_key), t).await?;
    let actor = format!("station:{}", station.id);
    if duplicate {
        let refund_key = format!("{}-refund", d.idempotency_key);
        store::insert_ledger(&mut tx, &uid, d.amount.0, "refund", Some(order.id), Some(station.id), Some(&refund_key), t).await?;
        store::audit(&mut tx, &actor, "order.paid.offline.duplicate", &format!("order {} card {uid} {} refunded", order.id, d.amount), t).await?;
        tracing::warn!(order_id = order.id, station = %station.name, "an order paid offline was paid already: debit refunded");
    } else {
        store::set_order_paid(&mut tx, order.id, at).await?;
        store::audit(&mut tx, &actor, "order.paid.card.offline", &format!("order {} card {uid} {}", order.id, d.amount), t).await?;
    }
    let status = store::order(&mut tx, order.id).await?.status;
    tx.commit().await?;
    Ok(AppliedOnce { order_status: status, duplicate })
}
