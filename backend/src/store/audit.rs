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
    // the university a line concerns: its staff member's or its station's (a
    // user's own actions and the platform's name none: platform operators see those)
    let staff_login = e.actor.strip_prefix("staff:");
    let station_id = e.actor.strip_prefix("station:").and_then(|s| s.parse::<i64>().ok());
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, ip, detail, university_id) VALUES ($1, $2, $3, $4, $5, $6,
         COALESCE((SELECT university_id FROM staff WHERE login = $7), (SELECT university_id FROM stations WHERE id = $8)))",
    )
        .bind(now)
        .bind(e.actor)
        .bind(e.action)
        .bind(e.target)
        .bind(e.ip)
        .bind(e.detail)
        .bind(staff_login)
        .bind(station_id)
        .execute(c)
        .await?;
    Ok(())
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
