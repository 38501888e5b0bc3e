//! A station is a machine in a public place: the backend takes none of its
//! claims on trust. Every payment and print a station reports is checked
//! against the backend's own records (the order's total, delivery, payment
//! method and status; what the station was handed for offline use; the
//! university's offline policy) before it is applied. A claim that fails is
//! refused with [`ErrorCode::ClaimRefused`], recorded for staff (Stations
//! page) and mailed to the operators by the alert pass; nothing of it is applied.

use crate::error::{AppError, AppResult};
use crate::store::{self, Order, Station};
use crate::time::now;
use shomei_shared::{ErrorCode, Yen};
use crate::store::Pool;

/// A claim that failed a check: what it was, and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub kind: &'static str,
    pub reason: String,
}

fn refused(kind: &'static str, reason: impl Into<String>) -> Refused {
    Refused { kind, reason: reason.into() }
}

/// Records a refused claim (in its own transaction: the claim's was rolled
/// back) and answers the station with a clear API error.
/// A claim sent again (the station retries what was not accepted) is
/// recorded, audited and mailed once, by its idempotency key.
pub async fn refuse(pool: &Pool, station: &Station, claim_key: &str, order_id: Option<i64>, r: Refused) -> AppError {
    let t = now();
    let recorded = async {
        let mut tx = store::begin_write(pool).await?;
        if store::insert_refused_claim(&mut tx, station.id, claim_key, r.kind, order_id, &r.reason, t).await? {
            store::audit(&mut tx, &format!("station:{}", station.id), "station.claim_refused", &format!("{} order {order_id:?}: {}", r.kind, r.reason), t).await?;
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = recorded {
        return AppError::Db(e);
    }
    tracing::warn!(station = %station.name, kind = r.kind, ?order_id, reason = %r.reason, "station claim refused");
    AppError::api(ErrorCode::ClaimRefused, format!("refused: {}", r.reason))
}

/// A payment at the station (IC card online, e-money terminal) must be for
/// an on-campus order paid at the station, of exactly its total.
pub fn station_payment(kind: &'static str, order: &Order, amount: Yen) -> Result<(), Refused> {
    if order.delivery != "campus" || order.payment_method != "card" {
        return Err(refused(kind, format!("order {} is not paid at a station ({} / {})", order.id, order.delivery, order.payment_method)));
    }
    if amount.0 != order.total {
        return Err(refused(kind, format!("amount {} is not the order's total {}", amount, Yen(order.total))));
    }
    Ok(())
}

/// `printed` only for a paid order.
pub fn print(kind: &'static str, order: &Order) -> Result<(), Refused> {
    if !matches!(order.status.as_str(), "paid" | "printed") {
        return Err(refused(kind, format!("order {} is {}, not paid: it cannot have been printed", order.id, order.status)));
    }
    Ok(())
}

/// An offline print or debit names an order this station was handed for
/// offline use before the moment it claims.
pub async fn offline_issue(c: &mut store::Conn, kind: &'static str, station: &Station, order: &Order, at: i64) -> AppResult<Result<bool, Refused>> {
    Ok(match store::offline_issue(c, station.id, order.id).await? {
        // a station's clock may be up to 2 minutes off (it takes no card offline beyond that)
        Some((first, card_payment)) if first <= at + 120 => Ok(card_payment),
        Some(_) | None => Err(refused(kind, format!("order {} was never in this station's offline copy", order.id))),
    })
}

/// The offline policy of the order's university, as the station had to apply
/// it: card payment allowed for this order, the card within its floor limit
/// (its balance as the backend knew it then, less this station's debits not
/// delivered yet), and the station's undelivered total within its limit.
/// A second payment of an order paid already (`refunded_at_once`) moves no
/// money, so its balance is not checked.
pub async fn offline_debit(
    c: &mut store::Conn,
    station: &Station,
    order: &Order,
    card_uid: &str,
    amount: Yen,
    at: i64,
    refunded_at_once: bool,
) -> AppResult<Result<(), Refused>> {
    const KIND: &str = "offline_debit";
    if let Err(r) = station_payment(KIND, order, amount) {
        return Ok(Err(r));
    }
    match offline_issue(c, KIND, station, order, at).await? {
        Err(r) => return Ok(Err(r)),
        Ok(false) => return Ok(Err(refused(KIND, format!("order {} could not be paid by card offline (policy a when it was handed out)", order.id)))),
        Ok(true) => {}
    }
    let university = store::order_university(c, order.id).await?;
    let policy = store::offline_card_policy(c, university.id).await?;
    let card = store::card(c, card_uid).await?;
    if card.is_none() {
        return Ok(Err(refused(KIND, format!("card {card_uid} is not linked to any account"))));
    }
    if refunded_at_once {
        return Ok(Ok(()));
    }
    let balance = store::card_balance_at(c, card_uid, at).await? - store::unsynced_offline_debits(c, station.id, at, Some(card_uid)).await?;
    if balance - amount.0 < -policy.offline_floor_limit {
        return Ok(Err(refused(
            KIND,
            format!("card {card_uid} had {} then; {} goes below the floor limit {}", Yen(balance), amount, Yen(policy.offline_floor_limit)),
        )));
    }
    let station_total = store::unsynced_offline_debits(c, station.id, at, None).await?;
    if station_total + amount.0 > policy.offline_station_total {
        return Ok(Err(refused(
            KIND,
            format!("the station held {} undelivered; {} more exceeds its offline total {}", Yen(station_total), amount, Yen(policy.offline_station_total)),
        )));
    }
    Ok(Ok(()))
}
