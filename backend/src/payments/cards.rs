//! Stored value (P-2): IC cards linked to a user (a student card, or the
//! user's own card linked once in the portal by its IDm / UID), the balance as
//! the sum of the ledger, the history, and a lost card blocked at once.

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult};
use crate::sealed::SealKey;
use crate::store;
use crate::time::now;
use shomei_shared::api::CardLinkCode;
use shomei_shared::ErrorCode;
use crate::store::Pool;

pub use shomei_shared::api::normalize_card_uid as normalize_uid;

pub const BAD_UID: &str = "カードのID（IDm）は16桁の英数字（0-9、A-F）で入力してください。 / Enter the card ID (IDm) as 16 characters 0-9 and A-F.";
pub const TAKEN: &str = "このカードは別のアカウントに登録されています。ご自身のカードであれば窓口にご相談ください。 / This card is linked to another account; if it is yours, ask the office.";

/// Links a card to the user; a card already theirs is a no-op.
pub async fn link(pool: &Pool, user_id: i64, client: Client<'_>, input: &str, label: &str) -> AppResult<String> {
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
pub async fn report_lost(pool: &Pool, user_id: i64, client: Client<'_>, uid: &str) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    if !store::block_card(&mut tx, uid, user_id).await? {
        return Err(AppError::PageNotFound);
    }
    accounts::audit(&mut tx, &format!("user:{user_id}"), "card.block", &format!("card:{uid}"), client).await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- linking by a code from a station

/// How long a link code works: long enough to log in on a phone beside the printer.
pub const LINK_CODE_TTL_S: i64 = 15 * 60;
/// Characters of a link code: Crockford's base32 (no I, L, O, U to misread).
const CODE_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_LEN: usize = 6;
/// Codes issued per station in the throttle's window before it slows down, and at most.
const CODES_PER_STATION_FREE: usize = 60;
const CODES_PER_STATION_MAX: usize = 120;

pub const CODE_INVALID: &str = "この登録コードは使えません（入力の誤り、使用済み、または有効期限切れ）。発行機でカードをもう一度タッチすると新しいコードが表示されます。 / This link code cannot be used: it is mistyped, used already or expired. Tap the card at a campus printer again for a new code.";
pub const CODE_FORMAT: &str = "登録コードは発行機に表示された6文字（英数字）で入力してください。 / Enter the link code as the 6 letters and digits the printer shows.";
pub const UNLINK_BALANCE: &str = "残高が残っているカードは登録を解除できません。証明書の支払いで使い切るか、証明書窓口にご相談ください（残高の返金、または別のカードへの移し替え）。 / A card with money on it cannot be unlinked: use the balance up on certificates, or ask the certificate office to refund it or move it to another of your cards.";
pub const UNLINK_BLOCKED: &str = "利用停止（紛失）のカードは、見つけた人が登録できないよう登録を解除できません。見つかった場合は証明書窓口にご相談ください。 / A blocked (lost) card stays linked so that nobody who finds it can link it; if you find it again, ask the certificate office.";

pub const UNLINK_TOPUP_PENDING: &str = "このカードへの入金の手続きが終わっていません。入金が完了するか取り消されてから登録を解除してください。 / A top-up of this card is still being paid: unlink it once the top-up is complete or cancelled.";

/// A new link code, e.g. `7KQ2M9` (30 random bits).
pub fn new_link_code() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..CODE_LEN).map(|_| char::from(CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())])).collect()
}

/// A link code as typed: spaces and dashes dropped, upper case, and the
/// letters Crockford's base32 reads as digits (O as 0, I and L as 1).
pub fn normalize_link_code(input: &str) -> String {
    input
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

fn link_code_hash(seal: &SealKey, code: &str) -> String {
    seal.keyed_hash("card-link-code", &normalize_link_code(code))
}

/// A station read a card no account holds: a one-time code (shown once, kept
/// as its keyed hash) that links this card to whoever enters it in the
/// portal. A newer code for the card ends the older ones.
pub async fn issue_link_code(
    pool: &Pool,
    seal: &SealKey,
    throttle: &accounts::Throttle,
    station: &store::Station,
    card_uid: &str,
) -> AppResult<CardLinkCode> {
    let uid = normalize_uid(card_uid).ok_or_else(|| AppError::api(ErrorCode::BadRequest, "card_uid must be 8, 14 or 16 hex digits"))?;
    let key = format!("card-link-codes:{}", station.id);
    throttle
        .check_with(&key, CODES_PER_STATION_MAX, CODES_PER_STATION_FREE).await
        .map_err(|_| AppError::api(ErrorCode::Throttled, "too many link codes from this station; wait a few minutes"))?;
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    match store::card(&mut tx, &uid).await? {
        Some(c) if c.status == "blocked" => return Err(AppError::api(ErrorCode::CardBlocked, "this card is blocked")),
        Some(_) => return Err(AppError::api(ErrorCode::Conflict, "this card is linked already")),
        None => {}
    }
    store::retire_card_link_codes(&mut tx, &uid, t, t - 86_400).await?;
    // a live code of another card with the same hash would be ambiguous: draw again
    let mut code = new_link_code();
    for _ in 0..5 {
        if !store::card_link_code_live(&mut tx, &link_code_hash(seal, &code), t).await? {
            break;
        }
        code = new_link_code();
    }
    store::insert_card_link_code(&mut tx, &link_code_hash(seal, &code), &uid, station.id, t, t + LINK_CODE_TTL_S).await?;
    store::audit(&mut tx, &format!("station:{}", station.id), "card.link_code", &format!("card:{uid}"), t).await?;
    tx.commit().await?;
    throttle.fail(&key).await;
    // neither the card nor the code is logged
    tracing::info!(station_id = station.id, "link code issued for a card no account holds");
    Ok(CardLinkCode { code, expires_at: t + LINK_CODE_TTL_S, valid_s: LINK_CODE_TTL_S })
}

/// Links the card behind a station's one-time code to the user (the code is
/// then used up). A card linked to them already: done; to someone else: refused.
pub async fn link_by_code(pool: &Pool, seal: &SealKey, user_id: i64, client: Client<'_>, code: &str, label: &str) -> AppResult<String> {
    if normalize_link_code(code).len() != CODE_LEN {
        return Err(AppError::Page(CODE_FORMAT.into()));
    }
    let label: String = label.trim().chars().take(40).collect();
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    let uid = store::use_card_link_code(&mut tx, &link_code_hash(seal, code), user_id, t)
        .await?
        .ok_or_else(|| AppError::Page(CODE_INVALID.into()))?;
    match store::card(&mut tx, &uid).await? {
        Some(c) if c.user_id == user_id => {}
        Some(_) => return Err(AppError::Page(TAKEN.into())),
        None => store::link_card(&mut tx, &uid, user_id, &label, t).await?,
    }
    accounts::audit(&mut tx, &format!("user:{user_id}"), "card.link", &format!("card:{uid} by station code"), client).await?;
    tx.commit().await?;
    Ok(uid)
}

/// Unlinks one of the user's cards. Only an active card with a balance of
/// zero: money on a card stays the holder's (used up, or refunded or moved
/// by the office), and a blocked card stays blocked so that whoever finds it
/// cannot link it. The ledger keeps the card's history.
pub async fn unlink(pool: &Pool, user_id: i64, client: Client<'_>, uid: &str) -> AppResult<()> {
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    let card = store::card(&mut tx, uid).await?.filter(|c| c.user_id == user_id).ok_or(AppError::PageNotFound)?;
    if card.status != "active" {
        return Err(AppError::Page(UNLINK_BLOCKED.into()));
    }
    if store::card_balance(&mut tx, uid).await? != 0 {
        return Err(AppError::Page(UNLINK_BALANCE.into()));
    }
    // a top-up still at PayPal (approval lasts about three hours) would land on a card nobody holds
    if store::pending_topups(&mut tx, uid, t - 3 * 3600).await? > 0 {
        return Err(AppError::Page(UNLINK_TOPUP_PENDING.into()));
    }
    if !store::unlink_card(&mut tx, uid, user_id, t).await? {
        return Err(AppError::PageNotFound);
    }
    accounts::audit(&mut tx, &format!("user:{user_id}"), "card.unlink", &format!("card:{uid}"), client).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_codes_are_short_unambiguous_and_read_loosely() {
        for _ in 0..50 {
            let code = new_link_code();
            assert_eq!(code.len(), 6, "{code}");
            assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
            assert_eq!(normalize_link_code(&code), code);
        }
        assert_eq!(normalize_link_code(" 7kq-2m9 "), "7KQ2M9");
        assert_eq!(normalize_link_code("o1l iO"), "01110", "read as Crockford's base32 reads them");
        let seal = SealKey::generate().0;
        assert_eq!(link_code_hash(&seal, "7kq 2m9"), link_code_hash(&seal, "7KQ2M9"));
        assert_ne!(link_code_hash(&seal, "7KQ2M9"), crate::accounts::token_hash("7KQ2M9"), "keyed, not a plain hash");
    }

    #[test]
    fn card_ids_are_read_loosely_and_checked() {
        assert_eq!(normalize_uid("01 2e 4c d8 a1 b2 c3 d4").as_deref(), Some("012E4CD8A1B2C3D4"));
        assert_eq!(normalize_uid("04:A1:B2:C3").as_deref(), Some("04A1B2C3"));
        for bad in ["", "12345", "012E4CD8A1B2C3DZ", "012E4CD8A1B2C3D4FF"] {
            assert_eq!(normalize_uid(bad), None, "{bad}");
        }
    }
}
