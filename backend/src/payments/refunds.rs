//! Refunds (O-5, ST-5, A-4). Staff refund a paid order with a reason, and a
//! paid on-campus print that failed at a station and was not reprinted by its
//! deadline is refunded by itself from the next day (a background job). Both
//! go through one function: the money goes back the way it came, once:
//! stored value to the IC card's ledger at once (an idempotency key per
//! debit), PayPal through its refund API (the request id is the order's),
//! cash (Smart Pit at a store, a station's e-money terminal) by the office,
//! by bank transfer to the account the user gives in the portal. Every refund
//! is mailed to the user, and so is the office's paying back.

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::mail;
use crate::messages;
use crate::payments::{PaymentProvider, Refunded};
use crate::sealed::SealKey;
use crate::store;
use crate::time::{self, now};
use shomei_shared::Yen;
use crate::store::Pool;

/// What refunding needs.
pub struct Refunds<'a> {
    pub pool: &'a Pool,
    pub seal: &'a SealKey,
    /// The online payment providers (PayPal, Smart Pit).
    pub providers: &'a [&'a dyn PaymentProvider],
    pub storeprint: &'a dyn crate::payments::storeprint::StorePrintService,
    /// The portal's address: the mail asking for bank details links to it.
    pub public_url: &'a str,
}

/// How a refund's money goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Credited to the IC card's stored value, at once.
    Card,
    /// Refunded through PayPal's API.
    PayPal,
    /// Paid back by the office by bank transfer (cash taken at a store or at a station's terminal).
    Office,
}

impl Way {
    /// As stored in `orders.refund_method` and said to the mail.
    pub fn key(self) -> &'static str {
        match self {
            Way::Card => "card",
            Way::PayPal => "paypal",
            Way::Office => "office",
        }
    }

    /// How an order's refund went: as recorded, else (a refund made before
    /// it was recorded) by the order's payment method.
    pub fn of(order: &store::Order) -> Way {
        let fallback = match order.payment_method.as_str() {
            "card" => "card",
            "paypal" => "paypal",
            _ => "office",
        };
        match order.refund_method.as_deref().unwrap_or(fallback) {
            "card" => Way::Card,
            "paypal" => Way::PayPal,
            _ => Way::Office,
        }
    }

    /// The way in words, both languages ("refunded ..." for the user, "how" for staff).
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            Way::Card => ("ICカードの残高へ", "to the IC card's balance"),
            Way::PayPal => ("PayPal へ", "through PayPal"),
            Way::Office => ("大学から銀行振込で", "by bank transfer from the university"),
        }
    }
}

/// Who refunds: a staff member, or the automatic refund of failed prints.
enum By<'a> {
    Staff { staff: &'a store::Staff, client: Client<'a> },
    Auto,
}

/// The reason recorded for an automatic refund (staff read it on the order page).
pub const AUTO_REASON: &str =
    "印刷に失敗し、印刷期限までに印刷されなかったため自動返金 / Printing failed and the order was not printed by its deadline: refunded automatically";

/// How long into the day after the deadline the automatic refund waits.
pub const REFUND_GRACE_S: i64 = 6 * 3600;

/// The automatic refund's name in `job_runs`.
pub const JOB: &str = "refund_failed_prints";

fn page(message: &str) -> AppError {
    AppError::Page(message.to_string())
}

/// Where the user gives the bank account for a refund the office pays back.
pub fn bank_details_url(public_url: &str, order_id: i64) -> String {
    format!("{public_url}/orders/{order_id}/refund-bank")
}

/// The one refund staff and the automatic refund share. The provider first
/// (if it refuses, nothing here changes), then, in one transaction, the order
/// marked refunded (once), stored value credited back, the audit line and the
/// user's mail. Ok(None) when the order was refunded already: nothing moves twice.
async fn refund_order(r: &Refunds<'_>, order: &store::Order, reason: &str, by: By<'_>) -> AppResult<Option<Way>> {
    let order_id = order.id;
    if !matches!(order.status.as_str(), "paid" | "printed") || order.refunded_at.is_some() {
        return Ok(None);
    }
    if order.payment_method == "university" {
        // issued on graduation day at no charge: nothing to give back (staff revoke it instead)
        return Err(page(messages::NOTHING_TO_REFUND));
    }
    // the store's numbers stop working first, so nothing prints after the refund
    if let Some(file_id) = &order.store_file_id {
        r.storeprint.withdraw(file_id).await.map_err(|e| {
            tracing::warn!(error = %e, order_id, "store print document not withdrawn: refund not made");
            page(messages::STOREPRINT_UNAVAILABLE)
        })?;
    }
    // the provider first: if it refuses, nothing here changes (its request id
    // is the order's, so a retry after a lost answer refunds once)
    let mut by_office = false;
    if let Some(provider) = r.providers.iter().find(|p| p.method() == order.payment_method) {
        let payment_ref = order.capture_id.clone().unwrap_or_default();
        if provider.method() == "paypal" && payment_ref.is_empty() {
            return Err(page(messages::CANNOT_REFUND));
        }
        by_office = provider.refund(&payment_ref, Yen(order.total), &format!("refund-order-{order_id}")).await.map_err(|e| {
            tracing::warn!(error = %e, order_id, "provider refused the refund");
            page(messages::PAYMENT_UNAVAILABLE)
        })? == Refunded::ByStaff;
    }
    let mut tx = store::begin_write(r.pool).await?;
    // paid at a station's e-money terminal (P-5): the office pays it back, not the ledger
    if store::order_terminal_payment(&mut tx, order_id).await?.is_some() {
        by_office = true;
    }
    // stored value: what each card paid for this order net of what already
    // came back (a second offline debit is refunded when it syncs), credited
    // back only to a card the user still holds; a card unlinked since (or
    // someone else's now) is paid back by the office instead
    let mut credits: Vec<(String, i64)> = Vec::new();
    if order.payment_method == "card" && !by_office {
        let mut net: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for l in store::ledger_for_order(&mut tx, order_id).await?.into_iter().filter(|l| l.kind == "debit" || l.kind == "refund") {
            *net.entry(l.card_uid).or_default() += l.amount;
        }
        for (uid, sum) in net.into_iter().filter(|(_, sum)| *sum < 0) {
            match store::card(&mut tx, &uid).await? {
                Some(card) if card.user_id == order.user_id => credits.push((uid, -sum)),
                _ => by_office = true,
            }
        }
    }
    let way = if by_office {
        Way::Office
    } else if order.payment_method == "card" {
        Way::Card
    } else {
        Way::PayPal
    };
    if !store::set_order_refunded(&mut tx, order_id, reason, way.key(), now()).await? {
        return Ok(None);
    }
    if way == Way::Card {
        for (uid, amount) in &credits {
            store::insert_ledger(&mut tx, uid, *amount, "refund", Some(order_id), None, Some(&format!("refund:order:{order_id}:{uid}")), now()).await?;
        }
    }
    let how = if way == Way::Office { " (to be paid back by the office)" } else { "" };
    let what = format!("order:{order_id} {}{how}", order.payment_method);
    let automatic = matches!(by, By::Auto);
    match by {
        By::Staff { staff, client } => accounts::audit(&mut tx, &format!("staff:{}", staff.login), "order.refund", &what, client).await?,
        By::Auto => store::audit(&mut tx, "system", "order.refund.auto", &what, now()).await?,
    }
    let user = store::user(&mut tx, order.user_id).await?;
    let record = store::student_records(&mut tx, order.user_id).await?.into_iter().find(|s| s.id == order.student_record_id);
    let (name_ja, name_en) = record.map(|s| (s.name_kanji, s.name_roman)).unwrap_or_default();
    let to = mail::Recipient { name_ja: &name_ja, name_en: &name_en, language: &user.language };
    mail::refund_mail(&to, order_id, Yen(order.total), way.key(), automatic, &bank_details_url(r.public_url, order_id))
        .enqueue_for_order(&mut tx, r.seal, &user.email, order_id)
        .await?;
    tx.commit().await?;
    tracing::info!(order_id, way = way.key(), automatic, "order refunded");
    Ok(Some(way))
}

/// staff refund a paid order with a reason: stored value back to the
/// card it was paid with, PayPal's refund of the capture, or (cash) a task
/// for the office. The order is cancelled and the user mailed.
pub async fn refund(r: &Refunds<'_>, staff: &store::Staff, client: Client<'_>, order_id: i64, reason: &str) -> AppResult<Way> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 300 {
        return Err(page(messages::REFUND_REASON));
    }
    let mut c = r.pool.acquire().await?;
    let order = store::order(&mut c, order_id).await.map_err(|_| AppError::PageNotFound)?;
    drop(c);
    if !matches!(order.status.as_str(), "paid" | "printed") {
        return Err(page(messages::CANNOT_REFUND));
    }
    refund_order(r, &order, reason, By::Staff { staff, client }).await?.ok_or_else(|| page(messages::CANNOT_REFUND))
}

/// ST-5, O-5: a paid on-campus print that failed at a station and was not
/// reprinted by its deadline is refunded, from the start of the day after
/// the deadline's last day in the university's time zone. A paid order never
/// tried at a printer is not refunded (the no-refund rule). Run by a timer;
/// each pass is idempotent and counted in `job_runs`. Returns how many were refunded.
pub async fn refund_failed_prints(r: &Refunds<'_>) -> AppResult<usize> {
    let t = now();
    let mut c = r.pool.acquire().await?;
    let mut due = Vec::new();
    for order in store::failed_prints_past_deadline(&mut c, t).await? {
        let zone = time::tz(&store::order_university(&mut c, order.id).await?.timezone);
        // the day after the last printable day, a few hours in: a print
        // started at the last minute, or made offline and synced late, counts
        if t >= time::start_of_next_day(order.print_deadline - 1, zone) + REFUND_GRACE_S {
            due.push(order);
        }
    }
    drop(c);
    let mut done = 0;
    for order in &due {
        match refund_order(r, order, AUTO_REASON, By::Auto).await {
            Ok(Some(_)) => done += 1,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, order_id = order.id, "automatic refund not made: tried again at the next pass");
                // staff see why on the order and the dashboard until a pass (or they) refund it
                let mut tx = store::begin_write(r.pool).await?;
                store::set_refund_error(&mut tx, order.id, &e.to_string(), now()).await?;
                tx.commit().await?;
            }
        }
    }
    let mut tx = store::begin_write(r.pool).await?;
    store::record_job_run(&mut tx, JOB, now()).await?;
    tx.commit().await?;
    if done > 0 {
        tracing::info!(count = done, "failed prints refunded automatically");
    }
    Ok(done)
}

/// The office paid a refund back by hand (bank transfer or cash at the
/// desk): marked once, so it leaves the dashboard's count, and the user is told.
pub async fn mark_paid_back(pool: &Pool, seal: &SealKey, staff: &store::Staff, client: Client<'_>, order_id: i64) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if !store::set_refund_paid_back(&mut tx, order_id, now()).await? {
        return Err(page(messages::NOTHING_TO_PAY_BACK));
    }
    accounts::audit(&mut tx, &format!("staff:{}", staff.login), "order.refund_paid_back", &format!("order:{order_id}"), client).await?;
    let user = store::user(&mut tx, order.user_id).await?;
    let record = store::student_records(&mut tx, order.user_id).await?.into_iter().find(|s| s.id == order.student_record_id);
    let (name_ja, name_en) = record.map(|s| (s.name_kanji, s.name_roman)).unwrap_or_default();
    let to = mail::Recipient { name_ja: &name_ja, name_en: &name_en, language: &user.language };
    mail::refund_paid_back_mail(&to, order_id, Yen(order.total)).enqueue_for_order(&mut tx, seal, &user.email, order_id).await?;
    tx.commit().await?;
    tracing::info!(order_id, "refund paid back by the office");
    Ok(())
}

// ---------------------------------------------------------------- bank details

/// The account a refund the office pays back goes to, as the user gives it
/// in the portal: sealed at rest, bound to its order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BankDetails {
    pub bank: String,
    pub branch: String,
    /// "ordinary" (普通) or "current" (当座).
    pub account_type: String,
    pub number: String,
    /// The account holder's name in katakana, as the bank has it.
    pub holder: String,
}

/// The account types a user may choose: (key, Japanese, English).
pub const ACCOUNT_TYPES: [(&str, &str, &str); 2] = [("ordinary", "普通", "ordinary"), ("current", "当座", "current")];

impl BankDetails {
    /// As typed, trimmed; full-width digits of the number as ASCII, without spaces or dashes.
    pub fn normalised(self) -> BankDetails {
        let number = self
            .number
            .chars()
            .filter_map(|c| match c {
                '０'..='９' => char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')),
                ' ' | '-' | '\u{3000}' | '－' | 'ー' => None,
                c => Some(c),
            })
            .collect();
        BankDetails {
            bank: self.bank.trim().to_string(),
            branch: self.branch.trim().to_string(),
            account_type: self.account_type.trim().to_string(),
            number,
            holder: self.holder.trim().to_string(),
        }
    }

    /// Each field at fault with its message, both languages.
    pub fn check(&self) -> FieldErrors {
        let mut e = FieldErrors::new();
        let sized = |s: &str, max: usize| !s.is_empty() && s.chars().count() <= max;
        if !sized(&self.bank, 40) {
            e.insert("bank".into(), messages::BANK_NAME.into());
        }
        if !sized(&self.branch, 40) {
            e.insert("branch".into(), messages::BANK_BRANCH.into());
        }
        if !ACCOUNT_TYPES.iter().any(|t| t.0 == self.account_type) {
            e.insert("account_type".into(), messages::BANK_ACCOUNT_TYPE.into());
        }
        if self.number.len() != 7 || !self.number.chars().all(|c| c.is_ascii_digit()) {
            e.insert("number".into(), messages::BANK_ACCOUNT_NUMBER.into());
        }
        let katakana = |c: char| ('\u{30A1}'..='\u{30FC}').contains(&c);
        let allowed = |c: char| katakana(c) || matches!(c, ' ' | '\u{3000}' | '（' | '）' | '．' | '－' | '・');
        if !sized(&self.holder, 60) || !self.holder.chars().all(allowed) || !self.holder.chars().any(katakana) {
            e.insert("holder".into(), messages::BANK_HOLDER.into());
        }
        e
    }

    /// The account type in words, both languages.
    pub fn account_type_words(&self) -> (&'static str, &'static str) {
        ACCOUNT_TYPES.iter().find(|t| t.0 == self.account_type).map(|t| (t.1, t.2)).unwrap_or(("", ""))
    }
}

fn bank_aad(order_id: i64) -> String {
    format!("order:{order_id}:refund_bank")
}

/// The bank account the user gave for this order's refund, opened (None: not given).
pub fn open_bank_details(seal: &SealKey, order: &store::Order) -> AppResult<Option<BankDetails>> {
    let Some(s) = &order.refund_bank_sealed else { return Ok(None) };
    let json = seal.open_str(s, &bank_aad(order.id)).map_err(|e| AppError::Internal(anyhow::anyhow!("sealed bank details: {e}")))?;
    Ok(Some(serde_json::from_str(&json).map_err(|e| AppError::Internal(e.into()))?))
}

/// Whether the user may give bank details for this order now: a refund of
/// theirs the office still pays back.
pub async fn wants_bank_details(c: &mut store::Conn, order: &store::Order) -> AppResult<bool> {
    Ok(order.refunded_at.is_some() && Way::of(order) == Way::Office && store::refund_due(c, order.id).await?)
}

/// The user gives (or corrects) the bank account for a refund the office
/// pays back; checked first by the caller ([`BankDetails::check`]). Sealed, audited.
pub async fn save_bank_details(pool: &Pool, seal: &SealKey, user_id: i64, client: Client<'_>, order_id: i64, details: &BankDetails) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if order.user_id != user_id {
        return Err(AppError::PageNotFound);
    }
    if !wants_bank_details(&mut tx, &order).await? {
        return Err(page(messages::NOTHING_TO_PAY_BACK));
    }
    let json = serde_json::to_string(details).map_err(|e| AppError::Internal(e.into()))?;
    let sealed = seal.seal_str(&json, &bank_aad(order_id)).map_err(|e| AppError::Internal(anyhow::anyhow!("sealing: {e}")))?;
    if !store::set_refund_bank(&mut tx, order_id, &sealed, now()).await? {
        return Err(page(messages::NOTHING_TO_PAY_BACK));
    }
    accounts::audit(&mut tx, &format!("user:{user_id}"), "order.refund_bank", &format!("order:{order_id}"), client).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_details_are_checked_field_by_field() {
        let ok = BankDetails {
            bank: " 証明銀行 ".into(),
            branch: "本店".into(),
            account_type: "ordinary".into(),
            number: "１２３-４５６７".into(),
            holder: "ヤマダ ハナコ".into(),
        }
        .normalised();
        assert_eq!(ok.number, "1234567");
        assert_eq!(ok.bank, "証明銀行");
        assert!(ok.check().is_empty(), "{:?}", ok.check());
        let bad = BankDetails { number: "12345".into(), holder: "Yamada Hanako".into(), account_type: "savings".into(), ..ok.clone() };
        let e = bad.check();
        assert_eq!(e.keys().map(String::as_str).collect::<Vec<_>>(), ["account_type", "holder", "number"]);
        assert!(BankDetails { holder: "やまだ".into(), ..ok }.check().contains_key("holder"), "hiragana is not katakana");
    }
}
