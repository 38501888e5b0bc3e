//! Money: stored value on IC cards, top-ups and terminal payments.

use super::*;
use sqlx::FromRow;

// ---------------------------------------------------------------- stored value

#[derive(Debug, Clone, FromRow)]
pub struct Card {
    pub uid: String,
    pub user_id: i64,
    pub status: String,
}

/// A linked card (active or blocked); a card its holder unlinked is no card here.
pub async fn card(c: &mut Conn, uid: &str) -> Result<Option<Card>, sqlx::Error> {
    RedeemStore::card(c, uid).await
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
    RedeemStore::card_balance(c, uid).await
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
    RedeemStore::ledger_by_key(c, key).await
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
    RedeemStore::insert_ledger(c, &NewLedger { uid, amount, kind, order_id, station_id, key, now }).await
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
