//! The mail outbox.

use super::*;
use sqlx::FromRow;

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
    /// The sender's display name it goes out with (empty: the address alone).
    pub sender_name: String,
}

const MAIL_SELECT: &str = "SELECT id, to_addr, subject, sealed, created_at, attempts, sent_at, last_error, sender_name FROM outbox";

pub async fn enqueue_mail(c: &mut Conn, to: &str, subject: &str, sealed: &str, sender_name: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO outbox (to_addr, subject, body, body_html, sealed, created_at, next_attempt_at, sender_name) VALUES ($1, $2, '', '', $3, $4, $5, $6) RETURNING id",
    )
        .bind(to)
        .bind(subject)
        .bind(sealed)
        .bind(now)
        .bind(now)
        .bind(sender_name)
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
