//! Issued certificates (D-1): the public verification of a code, and staff
//! revoking a certificate. The verification page says only what a third party
//! needs (what, to whom as in school, when, still valid or not) and nothing at
//! all for a code that does not belong to an issued certificate.

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult};
use crate::store::{self, IssuedCertificate};
use crate::time::now;
use crate::store::Pool;

const ALPHABET: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// "abcd efgh-jkmn" -> "ABCD-EFGH-JKMN"; None when it cannot be a code.
pub fn normalize_code(input: &str) -> Option<String> {
    let raw: String = input.chars().filter(|c| !c.is_whitespace() && *c != '-' && *c != 'ー').collect::<String>().to_uppercase();
    if raw.chars().count() != 12 || !raw.chars().all(|c| ALPHABET.contains(c)) {
        return None;
    }
    Some(format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12]))
}

pub enum Verification {
    Valid(IssuedCertificate),
    Revoked(IssuedCertificate),
    NotFound,
}

/// A certificate counts as issued once it was printed (or handed over: a
/// digital certificate once paid, when its signed PDF can be had); before
/// that its code verifies nothing.
fn issued(c: &IssuedCertificate) -> bool {
    c.order_status == "printed" || c.printed_at.is_some() || (c.delivery == "digital" && c.order_status == "paid")
}

pub async fn verify(pool: &Pool, input: &str) -> AppResult<Verification> {
    let Some(code) = normalize_code(input) else { return Ok(Verification::NotFound) };
    let mut c = pool.acquire().await?;
    Ok(match store::certificate_by_code(&mut c, &code).await?.filter(issued) {
        Some(cert) if cert.revoked_at.is_some() => Verification::Revoked(cert),
        Some(cert) => Verification::Valid(cert),
        None => Verification::NotFound,
    })
}

/// Staff revoke one certificate with a reason (audit-logged).
pub async fn revoke(pool: &Pool, staff: &store::Staff, client: Client<'_>, id: i64, reason: &str) -> AppResult<()> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 300 {
        return Err(AppError::Page("失効の理由を300文字以内で入力してください。 / Give the reason for revoking (at most 300 characters).".into()));
    }
    let mut tx = store::begin_write(pool).await?;
    if !store::revoke_certificate(&mut tx, id, reason, staff.id, now()).await? {
        return Err(AppError::Page("この証明書はすでに失効しています。 / This certificate is already revoked.".into()));
    }
    accounts::audit(&mut tx, &format!("staff:{}", staff.login), "certificate.revoke", &format!("certificate:{id}"), client).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalised_loosely_and_checked_strictly() {
        assert_eq!(normalize_code("abcd-efgh-jkmn").as_deref(), Some("ABCD-EFGH-JKMN"));
        assert_eq!(normalize_code(" ABCD EFGH JKMN ").as_deref(), Some("ABCD-EFGH-JKMN"));
        assert_eq!(normalize_code("ABCDEFGHJKMN").as_deref(), Some("ABCD-EFGH-JKMN"));
        for bad in ["", "ABCD-EFGH", "ABCD-EFGH-JKMN-P", "ABCD-EFGH-JKM0", "ABCD-EFGH-JKMI", "'; DROP TABLE--"] {
            assert_eq!(normalize_code(bad), None, "{bad}");
        }
    }
}
