//! Digital delivery (issue 16): a paid digital order's certificate as a
//! signed PDF (PAdES B-T, see [`crate::documents::signing`]).
//!
//! The graduate downloads their own copy (the order's document, signed the
//! first time it is asked for, then kept) and shares copies with the
//! people who need one: per recipient a copy that says in the PDF whom it
//! was issued for, its own link (mailed to the recipient; a random token
//! kept only as its hash), an expiry and a cap on downloads. The graduate
//! sees whether and when each was opened and can withdraw it; staff revoke
//! a certificate for everyone (the recipient's page then says so).


use crate::error::{AppError, AppResult};
use crate::sealed::SealKey;
use crate::store::{self, Pool};
use crate::time::{self, now};
use crate::{mail, messages};

use super::{page_err, problem, FormProblem};

/// The longest a share may last (days) and the most downloads it may allow.
pub const MAX_SHARE_DAYS: i64 = 365;
pub const MAX_DOWNLOADS: i64 = 20;
/// Copies a graduate may send in an hour (each mails someone outside).
pub const SHARES_PER_HOUR: usize = 20;
/// Downloads a share allows unless the graduate says otherwise.
pub const DEFAULT_DOWNLOADS: i64 = 5;

pub use super::Desk;

fn own_aad(order_id: i64) -> String {
    format!("order:{order_id}:digital")
}

fn share_aad(copy_id: i64) -> String {
    format!("share:{copy_id}:pdf")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn seal_pdf(seal: &SealKey, aad: &str, pdf: &[u8]) -> AppResult<Vec<u8>> {
    seal.seal(pdf, aad.as_bytes()).map_err(|e| AppError::Internal(anyhow::anyhow!("sealing a signed PDF: {e}")))
}

fn open_pdf(seal: &SealKey, aad: &str, sealed: &[u8]) -> AppResult<Vec<u8>> {
    seal.open(sealed, aad.as_bytes()).map_err(|e| AppError::Internal(anyhow::anyhow!("opening a signed PDF: {e}")))
}

/// The user's paid digital order (else not found, or "not ready yet").
async fn paid_digital_order(c: &mut store::Conn, user_id: i64, order_id: i64) -> AppResult<store::Order> {
    let order = store::order(c, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if order.user_id != user_id || order.delivery != "digital" {
        return Err(AppError::PageNotFound);
    }
    if order.status != "paid" {
        return Err(page_err(messages::DIGITAL_NOT_READY));
    }
    if store::certificates_of_order(c, order_id).await?.iter().any(|cert| cert.revoked_at.is_some()) {
        return Err(page_err(messages::DIGITAL_REVOKED));
    }
    Ok(order)
}

/// The order's certificates as Verifiable Credentials secured with the
/// university's key: (serial, compact JWS), the recipient named for a
/// recipient's copy. Deterministic (Ed25519): made again, the same bytes.
pub async fn credentials(desk: &Desk<'_>, order_id: i64, submitted_to: Option<&str>) -> AppResult<Vec<(String, String)>> {
    use crate::documents::credential;
    let mut c = desk.pool.acquire().await?;
    let certificates = store::certificates_of_order(&mut c, order_id).await?;
    let university = store::order_university(&mut c, order_id).await?;
    drop(c);
    let signer = crate::documents::proof::ProofSigner::for_university(desk.pool, desk.seal, university.id).await.map_err(AppError::Internal)?;
    let zone = time::tz(&university.timezone);
    Ok(certificates
        .iter()
        .map(|cert| {
            let facts = credential::Facts {
                university_id: university.id,
                university_ja: cert.university_ja.clone(),
                university_en: cert.university_en.clone(),
                holder_kanji: cert.name_kanji.clone(),
                holder_roman: cert.name_roman.clone(),
                title_ja: cert.type_ja.clone(),
                title_en: cert.type_en.clone(),
                serial: cert.serial.clone(),
                code: cert.verification_code.clone(),
                issued_at: {
                    use chrono::TimeZone;
                    zone.timestamp_opt(cert.issued_at, 0).single().map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)).unwrap_or_default()
                },
                submitted_to: submitted_to.map(str::to_string),
            };
            (cert.serial.clone(), credential::secure(&signer, &credential::credential(desk.public_url, &facts)))
        })
        .collect())
}

/// `pdf` with the order's credentials attached (before it is signed).
async fn with_credentials(desk: &Desk<'_>, order_id: i64, submitted_to: Option<&str>, pdf: &[u8]) -> AppResult<Vec<u8>> {
    let files: Vec<(String, String)> = credentials(desk, order_id, submitted_to).await?;
    crate::documents::credential::attach(pdf, &files).map_err(|e| AppError::Internal(anyhow::anyhow!("attaching the credentials: {e}")))
}

/// Inside the write that hands a copy out: the order is still paid and
/// nothing revoked (staff may have acted while it was being signed).
async fn still_valid(tx: &mut store::Conn, order_id: i64) -> AppResult<()> {
    if withdrawn_for_everyone(tx, order_id).await? {
        return Err(page_err(messages::DIGITAL_REVOKED));
    }
    Ok(())
}

/// `pdf` signed with the order's university's key.
async fn sign(desk: &Desk<'_>, university: &store::University, pdf: &[u8]) -> AppResult<Vec<u8>> {
    let sealer = desk.sealers.of(university.id).ok_or_else(|| page_err(messages::DIGITAL_NOT_OFFERED))?;
    let reason = format!("{} 証明書の発行 / Certificate issued by {}", university.name_ja, university.name_en);
    sealer.sign(pdf, &reason, &university.name_en).await.map_err(|e| {
        tracing::error!(university = university.id, error = %e, "a digital certificate could not be signed");
        page_err(messages::SIGNING_UNAVAILABLE)
    })
}

/// The graduate's own signed copy: made (signed and kept) the first time.
pub async fn own_copy(desk: &Desk<'_>, user_id: i64, order_id: i64) -> AppResult<Vec<u8>> {
    let mut c = desk.pool.acquire().await?;
    paid_digital_order(&mut c, user_id, order_id).await?;
    if let Some((_, sealed)) = store::own_digital_pdf(&mut c, order_id).await? {
        return open_pdf(desk.seal, &own_aad(order_id), &sealed);
    }
    drop(c);
    let signed = sign_own(desk, order_id).await?;
    let mut tx = store::begin_write(desk.pool).await?;
    still_valid(&mut tx, order_id).await?;
    let kept = keep_own(&mut tx, desk, order_id, &signed, &format!("user:{user_id}")).await?;
    tx.commit().await?;
    Ok(kept)
}

/// The order's document with its credentials attached, signed with its
/// university's key (nothing is written).
pub(super) async fn sign_own(desk: &Desk<'_>, order_id: i64) -> AppResult<Vec<u8>> {
    let mut c = desk.pool.acquire().await?;
    let pdf = super::stored_pdf(&mut c, desk.seal, order_id).await?.ok_or_else(|| page_err(messages::DIGITAL_NOT_READY))?;
    let university = store::order_university(&mut c, order_id).await?;
    drop(c);
    let pdf = with_credentials(desk, order_id, None, &pdf).await?;
    sign(desk, &university, &pdf).await
}

/// Keeps `signed` as the order's own copy inside the write `tx`, unless one
/// was kept first (two first downloads at once): the copy kept.
pub(super) async fn keep_own(tx: &mut store::Conn, desk: &Desk<'_>, order_id: i64, signed: &[u8], actor: &str) -> AppResult<Vec<u8>> {
    store::insert_own_digital_copy(tx, order_id, &seal_pdf(desk.seal, &own_aad(order_id), signed)?, &sha256_hex(signed), now()).await?;
    store::audit(tx, actor, "order.digital_signed", &format!("order {order_id}"), now()).await?;
    let (_, kept) = store::own_digital_pdf(tx, order_id).await?.ok_or_else(|| AppError::Internal(anyhow::anyhow!("the signed copy of order {order_id} was not kept")))?;
    open_pdf(desk.seal, &own_aad(order_id), &kept)
}

/// A recipient the graduate shares a copy with, as typed.
#[derive(Debug, Clone, Default)]
pub struct ShareRequest {
    pub name: String,
    pub org: String,
    pub email: String,
    /// Empty: the university's default.
    pub days: String,
    /// Empty: [`DEFAULT_DOWNLOADS`].
    pub downloads: String,
}

/// A share made: its id and the link the recipient was mailed.
pub struct Shared {
    pub id: i64,
    pub link: String,
}

/// A new share: its own signed copy saying whom it was issued for, its link
/// mailed to the recipient. Ok(Err(problem)) for what the graduate can fix.
pub async fn share(desk: &Desk<'_>, user_id: i64, order_id: i64, req: &ShareRequest) -> AppResult<Result<Shared, FormProblem>> {
    let mut c = desk.pool.acquire().await?;
    let order = paid_digital_order(&mut c, user_id, order_id).await?;
    let university = store::order_university(&mut c, order_id).await?;
    let (name, org, email) = (req.name.trim(), req.org.trim(), req.email.trim());
    if name.is_empty() || org.is_empty() || name.chars().count() > 100 || org.chars().count() > 100 || name.contains(['\n', '\r']) || org.contains(['\n', '\r']) {
        return Ok(Err(problem("recipient_name", messages::SHARE_NAME)));
    }
    if !mail::valid_email(email) {
        return Ok(Err(problem("recipient_email", messages::SHARE_EMAIL)));
    }
    let days = if req.days.trim().is_empty() {
        store::university_share_days(&mut c, university.id).await?
    } else {
        match req.days.trim().parse::<i64>() {
            Ok(d) if (1..=MAX_SHARE_DAYS).contains(&d) => d,
            _ => return Ok(Err(problem("days", messages::SHARE_DAYS))),
        }
    };
    let downloads = if req.downloads.trim().is_empty() {
        DEFAULT_DOWNLOADS
    } else {
        match req.downloads.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_DOWNLOADS).contains(&n) => n,
            _ => return Ok(Err(problem("downloads", messages::SHARE_DOWNLOADS))),
        }
    };
    let user = store::user(&mut c, user_id).await?;
    let record = store::student_records(&mut c, user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
    drop(c);

    // the copy: the order's document again, saying whom it is for, signed
    let submitted_to = format!("{org}\u{3000}{name}");
    let pdf = super::render_for_recipient(desk.pool, desk.fonts, desk.seal, desk.public_url, &order, &submitted_to).await?;
    let pdf = with_credentials(desk, order_id, Some(&submitted_to), &pdf).await?;
    let signed = sign(desk, &university, &pdf).await?;
    let token = crate::accounts::passwords::random_token();
    let t = now();
    let expires_at = t + days * 86_400;
    let link = format!("{}/shared/{token}", desk.public_url);
    let mut tx = store::begin_write(desk.pool).await?;
    still_valid(&mut tx, order_id).await?;
    let id = store::insert_share(
        &mut tx,
        &store::NewShare { order_id, name, org, email, token_hash: &crate::accounts::token_hash(&token), expires_at, max_downloads: downloads, now: t },
    )
    .await?;
    store::set_share_pdf(&mut tx, id, &seal_pdf(desk.seal, &share_aad(id), &signed)?, &sha256_hex(&signed), t).await?;
    let to = mail::Recipient { name_ja: name, name_en: name, language: &user.language };
    let until = time::local_text(expires_at, time::tz(&university.timezone));
    mail::share_mail(&to, &record.name_kanji, &record.name_roman, &university.name_ja, &university.name_en, &link, &until, downloads)
        .enqueue_for_order(&mut tx, desk.seal, email, order_id)
        .await?;
    store::audit(&mut tx, &format!("user:{user_id}"), "order.digital_share", &format!("order {order_id} share {id}"), t).await?;
    tx.commit().await?;
    tracing::info!(order_id, share = id, "digital certificate shared");
    Ok(Ok(Shared { id, link }))
}

/// The graduate withdraws one of their shares.
pub async fn withdraw(pool: &Pool, user_id: i64, order_id: i64, share_id: i64) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if order.user_id != user_id || order.delivery != "digital" {
        return Err(AppError::PageNotFound);
    }
    if store::revoke_share(&mut tx, order_id, share_id, now()).await? {
        store::audit(&mut tx, &format!("user:{user_id}"), "order.digital_withdraw", &format!("order {order_id} share {share_id}"), now()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What a recipient's link says of its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareState {
    Valid,
    /// The university revoked the certificate (for everyone).
    Revoked,
    /// The graduate withdrew this share.
    Withdrawn,
    Expired,
    /// Every download it allowed was made.
    UsedUp,
}

impl ShareState {
    /// What a share stands as at `now`; `revoked`: its certificates no
    /// longer stand for anyone (revoked, or the order refunded).
    pub fn of(share: &store::DigitalCopy, revoked: bool, now: i64) -> ShareState {
        if revoked {
            ShareState::Revoked
        } else if share.revoked_at.is_some() {
            ShareState::Withdrawn
        } else if share.expires_at.is_some_and(|e| e <= now) {
            ShareState::Expired
        } else if share.max_downloads.is_some_and(|m| share.downloads >= m) {
            ShareState::UsedUp
        } else {
            ShareState::Valid
        }
    }

    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            ShareState::Valid => ("有効な証明書です", "Valid certificate"),
            ShareState::Revoked => ("この証明書は大学により失効されています", "This certificate has been revoked by the university"),
            ShareState::Withdrawn => ("提出者がこのリンクを取り消しました", "The sender withdrew this link"),
            ShareState::Expired => ("このリンクの有効期限が切れています", "This link has expired"),
            ShareState::UsedUp => ("このリンクでダウンロードできる回数を使い切りました", "This link's downloads are used up"),
        }
    }
}

/// A recipient's view of a share.
pub struct ShareView {
    pub share: store::DigitalCopy,
    pub state: ShareState,
    pub certificates: Vec<store::IssuedCertificate>,
    pub university: store::University,
}

/// The share a link's token names (None: no such link).
pub async fn view(pool: &Pool, token: &str) -> AppResult<Option<ShareView>> {
    let mut c = pool.acquire().await?;
    let Some(share) = store::share_by_token(&mut c, &crate::accounts::token_hash(token)).await? else {
        return Ok(None);
    };
    let certificates = store::certificates_of_order(&mut c, share.order_id).await?;
    let university = store::order_university(&mut c, share.order_id).await?;
    let revoked = withdrawn_for_everyone(&mut c, share.order_id).await?;
    let t = now();
    let state = ShareState::of(&share, revoked, t);
    Ok(Some(ShareView { share, state, certificates, university }))
}

/// A recipient downloads the shared copy: counted, while the share is
/// valid (else what the page says instead).
pub async fn download(pool: &Pool, seal: &SealKey, token: &str) -> AppResult<Result<Vec<u8>, ShareState>> {
    let Some(v) = view(pool, token).await? else { return Err(page_err(messages::SHARE_LINK_GONE)) };
    if v.state != ShareState::Valid {
        return Ok(Err(v.state));
    }
    let mut tx = store::begin_write(pool).await?;
    // (the count checks the share again inside the write: two last downloads at once get one;
    // a revocation or refund made meanwhile is seen too)
    if withdrawn_for_everyone(&mut tx, v.share.order_id).await? || !store::count_share_download(&mut tx, v.share.id, now()).await? {
        drop(tx);
        let state = view(pool, token).await?.map(|v| v.state).unwrap_or(ShareState::Withdrawn);
        return Ok(Err(if state == ShareState::Valid { ShareState::UsedUp } else { state }));
    }
    let sealed = store::share_pdf(&mut tx, v.share.id).await?.ok_or_else(|| AppError::Internal(anyhow::anyhow!("share {} has no PDF", v.share.id)))?;
    tx.commit().await?;
    Ok(Ok(open_pdf(seal, &share_aad(v.share.id), &sealed)?))
}

/// Mails the graduate that a paid digital order's PDF is ready.
pub async fn mail_ready(pool: &Pool, seal: &SealKey, public_url: &str, order_id: i64) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, order_id).await?;
    let user = store::user(&mut tx, order.user_id).await?;
    let record = store::student_records(&mut tx, order.user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
    let to = mail::Recipient { name_ja: &record.name_kanji, name_en: &record.name_roman, language: &user.language };
    mail::digital_ready_mail(&to, order_id, &format!("{public_url}/orders/{order_id}")).enqueue_for_order(&mut tx, seal, &user.email, order_id).await?;
    tx.commit().await?;
    Ok(())
}

/// What the verification page says of a PDF dropped on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Not a signed copy shomei made (or changed in what was signed).
    Unknown,
    /// A copy shomei signed, with something appended after the signature
    /// (an incremental update): the signed part is genuine, the file is not as issued.
    ChangedAfterSigning(ShareCheck),
    /// A copy shomei signed, byte for byte as it was handed out.
    Genuine(ShareCheck),
}

/// The certificate a dropped copy is, and what holds for it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareCheck {
    pub order_id: i64,
    /// The recipient the copy was made for (None: the graduate's own).
    pub recipient: Option<(String, String)>,
    /// Revoked by the university (for everyone).
    pub revoked: bool,
}

/// Recognises a PDF: each signed revision (the file up to the end of a
/// signature's byte range, the last first) hashed and looked up among the
/// copies shomei signed. The signature is not re-checked: the bytes are the
/// ones shomei made, which is stronger. A copy signed again later (a
/// countersignature) is found by its earlier revision: changed after signing.
pub async fn recognise(pool: &Pool, pdf: &[u8]) -> AppResult<Dropped> {
    // where the file may have been handed out: the end of each signed range,
    // and the end of each of the last revisions (a copy with its validation
    // data, B-LT, ends with an update after its signature). A hostile file
    // may hold thousands of either: only the last few are tried.
    const CANDIDATES: usize = 8;
    let key = b"/ByteRange";
    let mut ends: Vec<usize> = pdf
        .windows(key.len())
        .enumerate()
        .filter(|(_, w)| *w == key)
        .filter_map(|(at, _)| crate::documents::signing::byte_range_at(pdf, at + key.len()))
        .filter_map(|[_, _, c, d]| c.checked_add(d).filter(|&end| end <= pdf.len()))
        .collect();
    ends.sort_unstable_by(|a, b| b.cmp(a));
    ends.dedup();
    ends.truncate(CANDIDATES);
    let eof = b"%%EOF";
    let mut revisions = Vec::new();
    let mut upto = pdf.len();
    while revisions.len() < CANDIDATES {
        let Some(at) = pdf[..upto].windows(eof.len()).rposition(|w| w == eof) else { break };
        let mut end = at + eof.len();
        while end < pdf.len() && matches!(pdf[end], b'\r' | b'\n') {
            end += 1;
        }
        revisions.push(end);
        upto = at;
    }
    ends.extend(revisions);
    ends.sort_unstable();
    ends.dedup();
    // every prefix hashed in one pass (the hash state kept at each end), off the async threads
    let owned = pdf.to_vec();
    let hashes: Vec<(usize, String)> = tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let mut from = 0;
        ends.into_iter()
            .map(|end| {
                hasher.update(&owned[from..end]);
                from = end;
                (end, hex::encode(hasher.clone().finalize()))
            })
            .collect()
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("hashing a dropped PDF: {e}")))?;
    let mut c = pool.acquire().await?;
    for (signed_end, sha) in hashes.iter().rev() {
        let Some(copy) = store::digital_copy_by_sha256(&mut c, sha).await? else { continue };
        let revoked = withdrawn_for_everyone(&mut c, copy.order_id).await?;
        let recipient = copy.recipient_org.clone().zip(copy.recipient_name.clone());
        let check = ShareCheck { order_id: copy.order_id, recipient, revoked };
        return Ok(if *signed_end == pdf.len() { Dropped::Genuine(check) } else { Dropped::ChangedAfterSigning(check) });
    }
    Ok(Dropped::Unknown)
}

/// Whether an order's certificates no longer stand for anyone: a certificate
/// revoked by staff, or the order itself no longer paid (refunded).
pub(super) async fn withdrawn_for_everyone(c: &mut store::Conn, order_id: i64) -> AppResult<bool> {
    let order = store::order(c, order_id).await?;
    Ok(order.status != "paid" || store::certificates_of_order(c, order_id).await?.iter().any(|cert| cert.revoked_at.is_some()))
}

/// The graduate's own credential for one certificate of a paid digital order.
pub async fn own_credential(desk: &Desk<'_>, user_id: i64, order_id: i64, serial: &str) -> AppResult<String> {
    let mut c = desk.pool.acquire().await?;
    paid_digital_order(&mut c, user_id, order_id).await?;
    drop(c);
    credentials(desk, order_id, None).await?.into_iter().find(|(s, _)| s == serial).map(|(_, jwt)| jwt).ok_or(AppError::PageNotFound)
}

/// A recipient's credential for one certificate, while the share is valid.
pub async fn shared_credential(desk: &Desk<'_>, token: &str, serial: &str) -> AppResult<Result<String, ShareState>> {
    let Some(v) = view(desk.pool, token).await? else { return Err(page_err(messages::SHARE_LINK_GONE)) };
    if v.state != ShareState::Valid {
        return Ok(Err(v.state));
    }
    let to = v.share.recipient_org.clone().zip(v.share.recipient_name.clone()).map(|(org, name)| format!("{org}\u{3000}{name}"));
    let found = credentials(desk, v.share.order_id, to.as_deref()).await?.into_iter().find(|(s, _)| s == serial).map(|(_, jwt)| jwt);
    found.map(Ok).ok_or(AppError::PageNotFound)
}

/// A digital order paid online from the stored value of one of the user's
/// linked cards: one debit of the order's total (the order and the card
/// locked, as a station's charge locks them), the order paid, the graduate
/// mailed. A second payment finds it paid and debits nothing.
pub async fn pay_from_card(pool: &Pool, seal: &SealKey, public_url: &str, user_id: i64, order_id: i64, uid: &str) -> AppResult<()> {
    use shomei_shared::Yen;
    let uid = uid.trim().to_ascii_uppercase();
    let t = now();
    let mut tx = store::begin_write_on(pool, &[store::WriteKey::Order(order_id), store::WriteKey::Card(&uid)]).await?;
    let order = store::order(&mut tx, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if order.user_id != user_id || order.delivery != "digital" || order.payment_method != "card" {
        return Err(AppError::PageNotFound);
    }
    if order.status != "awaiting_payment" || order.pay_deadline <= t {
        return Err(page_err(messages::CANNOT_PAY));
    }
    match store::card(&mut tx, &uid).await? {
        Some(card) if card.user_id == user_id && card.status == "active" => {}
        _ => return Err(page_err(messages::CHOOSE_CARD)),
    }
    let balance = store::card_balance(&mut tx, &uid).await?;
    if balance < order.total {
        return Err(AppError::Page(messages::balance_too_low(&Yen(balance).to_string(), &Yen(order.total - balance).to_string())));
    }
    crate::payments::debit_card(&mut *tx, &uid, Yen(order.total), order_id, None, &format!("balance:order:{order_id}"), t).await?;
    store::set_order_paid(&mut tx, order_id, t).await?;
    store::audit(&mut tx, &format!("user:{user_id}"), "order.paid.balance", &format!("order {order_id} card {uid}"), t).await?;
    tx.commit().await?;
    tracing::info!(order_id, "digital order paid from a card's balance");
    // paid is paid: a mail that cannot be queued now is logged, not shown as a failed payment
    if let Err(e) = mail_ready(pool, seal, public_url, order_id).await {
        tracing::error!(order_id, error = %e, "the 'digital certificate ready' mail was not queued");
    }
    Ok(())
}
