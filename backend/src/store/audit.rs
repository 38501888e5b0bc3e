//! The audit trail every domain writes to, and staff read.

use super::*;
use sqlx::FromRow;

// ---------------------------------------------------------------- audit

pub async fn audit(c: &mut Conn, actor: &str, action: &str, detail: &str, now: i64) -> Result<(), sqlx::Error> {
    audit_event(c, &AuditEvent { actor, action, target: "", ip: "", detail }, now).await
}

/// One line of the append-only audit log: who, what, on what, from where. Never a secret.
pub struct AuditEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub ip: &'a str,
    pub detail: &'a str,
}

pub async fn audit_event(c: &mut Conn, e: &AuditEvent<'_>, now: i64) -> Result<(), sqlx::Error> {
    RedeemStore::audit_event(c, e, now).await
}

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub ip: String,
    pub detail: String,
}

/// The newest lines of one university (`Some`), or of all (`None`: a platform operator).
pub async fn recent_audit(c: &mut Conn, university_id: Option<i64>, limit: i64) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as("SELECT at, actor, action, target, ip, detail FROM audit_log WHERE ($1 IS NULL OR university_id = $1) ORDER BY id DESC LIMIT $2")
        .bind(university_id)
        .bind(limit)
        .fetch_all(c)
        .await
}
