//! Stored value (P-2): IC cards linked to a user (a student card, or the
//! user's own card linked once in the portal by its IDm / UID), the balance as
//! the sum of the ledger, the history, and a lost card blocked at once.

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult};
use crate::store;
use crate::time::now;
use sqlx::SqlitePool;

/// A card ID as printed or read: FeliCa IDm (16 hex digits) or a MIFARE UID
/// (8 or 14), spaces and colons allowed; upper-case hex back.
pub fn normalize_uid(input: &str) -> Option<String> {
    let hex: String = input.chars().filter(|c| !c.is_whitespace() && *c != ':' && *c != '-').collect::<String>().to_uppercase();
    (matches!(hex.len(), 8 | 14 | 16) && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

pub const BAD_UID: &str = "カードのID（IDm）は16桁の英数字（0-9、A-F）で入力してください。 / Enter the card ID (IDm) as 16 characters 0-9 and A-F.";
pub const TAKEN: &str = "このカードは別のアカウントに登録されています。ご自身のカードであれば窓口にご相談ください。 / This card is linked to another account; if it is yours, ask the office.";

/// Links a card to the user; a card already theirs is a no-op.
pub async fn link(pool: &SqlitePool, user_id: i64, client: Client<'_>, input: &str, label: &str) -> AppResult<String> {
    let uid = normalize_uid(input).ok_or_else(|| AppError::Page(BAD_UID.into()))?;
    let label: String = label.trim().chars().take(40).collect();
    let mut tx = store::begin_write(pool).await?;
    match store::card(&mut tx, &uid).await? {
        Some(c) if c.user_id == user_id => return Ok(uid),
        Some(_) => return Err(AppError::Page(TAKEN.into())),
        None => store::link_card(&mut tx, &uid, user_id, &label, now()).await?,
    }
    accounts::audit(&mut tx, &format!("user:{user_id}"), "card.link", &format!("card:{uid}"), client).await?;
    tx.commit().await?;
    Ok(uid)
}

/// A lost card: blocked at once (stations refuse it), its balance kept for the office.
pub async fn report_lost(pool: &SqlitePool, user_id: i64, client: Client<'_>, uid: &str) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    if !store::block_card(&mut tx, uid, user_id).await? {
        return Err(AppError::PageNotFound);
    }
    accounts::audit(&mut tx, &format!("user:{user_id}"), "card.block", &format!("card:{uid}"), client).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_ids_are_read_loosely_and_checked() {
        assert_eq!(normalize_uid("01 2e 4c d8 a1 b2 c3 d4").as_deref(), Some("012E4CD8A1B2C3D4"));
        assert_eq!(normalize_uid("04:A1:B2:C3").as_deref(), Some("04A1B2C3"));
        for bad in ["", "12345", "012E4CD8A1B2C3DZ", "012E4CD8A1B2C3D4FF"] {
            assert_eq!(normalize_uid(bad), None, "{bad}");
        }
    }
}
