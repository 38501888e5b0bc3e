//! Digital certificates: the signed copies of a digital order (the
//! graduate's own, and one per recipient share).

use super::*;
use sqlx::FromRow;

#[derive(Debug, Clone, FromRow)]
pub struct DigitalCopy {
    pub id: i64,
    pub order_id: i64,
    pub recipient_name: Option<String>,
    pub recipient_org: Option<String>,
    pub recipient_email: Option<String>,
    pub expires_at: Option<i64>,
    pub max_downloads: Option<i64>,
    pub downloads: i64,
    pub first_opened_at: Option<i64>,
    pub last_opened_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub signed_at: Option<i64>,
    pub created_at: i64,
}

const COPY_SELECT: &str = "SELECT id, order_id, recipient_name, recipient_org, recipient_email, expires_at, max_downloads, downloads,
    first_opened_at, last_opened_at, revoked_at, signed_at, created_at FROM digital_copies";

/// The graduate's own signed copy of the order, once made.
pub async fn own_digital_pdf(c: &mut Conn, order_id: i64) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT id, pdf_sealed FROM digital_copies WHERE order_id = $1 AND recipient_email IS NULL AND pdf_sealed IS NOT NULL")
        .bind(order_id)
        .fetch_optional(c)
        .await
}

/// Keeps the graduate's own signed copy (the first one made stays, if two
/// were made at once): its id.
pub async fn insert_own_digital_copy(c: &mut Conn, order_id: i64, pdf_sealed: &[u8], sha256: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query("INSERT INTO digital_copies (order_id, pdf_sealed, signed_sha256, signed_at, created_at) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (order_id) WHERE recipient_email IS NULL DO NOTHING")
        .bind(order_id)
        .bind(pdf_sealed)
        .bind(sha256)
        .bind(now)
        .execute(&mut *c)
        .await?;
    sqlx::query_scalar("SELECT id FROM digital_copies WHERE order_id = $1 AND recipient_email IS NULL").bind(order_id).fetch_one(c).await
}

/// A share's fields as the graduate gave them.
pub struct NewShare<'a> {
    pub order_id: i64,
    pub name: &'a str,
    pub org: &'a str,
    pub email: &'a str,
    pub token_hash: &'a str,
    pub expires_at: i64,
    pub max_downloads: i64,
    pub now: i64,
}

/// A share and its signed copy (sealed; the AAD names the share, so its id comes first).
pub async fn insert_share(c: &mut Conn, s: &NewShare<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO digital_copies (order_id, recipient_name, recipient_org, recipient_email, token_hash, expires_at, max_downloads, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(s.order_id)
    .bind(s.name)
    .bind(s.org)
    .bind(s.email)
    .bind(s.token_hash)
    .bind(s.expires_at)
    .bind(s.max_downloads)
    .bind(s.now)
    .fetch_one(c)
    .await
}

pub async fn set_share_pdf(c: &mut Conn, id: i64, pdf_sealed: &[u8], sha256: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE digital_copies SET pdf_sealed = $1, signed_sha256 = $2, signed_at = $3 WHERE id = $4")
        .bind(pdf_sealed)
        .bind(sha256)
        .bind(now)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

/// The signed copy whose file hashes to `sha256` (hex), if shomei made one.
pub async fn digital_copy_by_sha256(c: &mut Conn, sha256: &str) -> Result<Option<DigitalCopy>, sqlx::Error> {
    sqlx::query_as(&format!("{COPY_SELECT} WHERE signed_sha256 = $1 ORDER BY id LIMIT 1")).bind(sha256).fetch_optional(c).await
}

/// The order's shares, newest first.
pub async fn shares_of_order(c: &mut Conn, order_id: i64) -> Result<Vec<DigitalCopy>, sqlx::Error> {
    sqlx::query_as(&format!("{COPY_SELECT} WHERE order_id = $1 AND recipient_email IS NOT NULL ORDER BY id DESC")).bind(order_id).fetch_all(c).await
}

pub async fn share_by_token(c: &mut Conn, token_hash: &str) -> Result<Option<DigitalCopy>, sqlx::Error> {
    sqlx::query_as(&format!("{COPY_SELECT} WHERE token_hash = $1")).bind(token_hash).fetch_optional(c).await
}

pub async fn share_pdf(c: &mut Conn, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT pdf_sealed FROM digital_copies WHERE id = $1").bind(id).fetch_optional(c).await.map(Option::flatten)
}

/// Counts one download of a share, if it may still be downloaded (not
/// revoked, not expired, under its cap): whether it was counted.
pub async fn count_share_download(c: &mut Conn, id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE digital_copies SET downloads = downloads + 1, first_opened_at = COALESCE(first_opened_at, $1), last_opened_at = $1
         WHERE id = $2 AND revoked_at IS NULL AND expires_at > $1 AND downloads < max_downloads",
    )
    .bind(now)
    .bind(id)
    .execute(c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The graduate revokes one of their shares: whether it was theirs and open.
pub async fn revoke_share(c: &mut Conn, order_id: i64, id: i64, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE digital_copies SET revoked_at = $1 WHERE id = $2 AND order_id = $3 AND recipient_email IS NOT NULL AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .bind(order_id)
        .execute(c)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// How long a share lives by default at the university (days).
pub async fn university_share_days(c: &mut Conn, university_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT share_days FROM universities WHERE id = $1").bind(university_id).fetch_one(c).await
}

/// The recipient opened the share's page.
pub async fn mark_share_opened(c: &mut Conn, id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE digital_copies SET first_opened_at = COALESCE(first_opened_at, $1), last_opened_at = $1 WHERE id = $2").bind(now).bind(id).execute(c).await?;
    Ok(())
}
