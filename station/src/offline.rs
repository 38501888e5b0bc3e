//! Offline printing (P-3, ST-2), the station's side. While the backend is
//! reachable the station keeps a copy of the backend's signed bundle (live
//! on-campus numbers, the block list) and of the PDFs it names, encrypted at
//! rest with the station's own key. When the backend cannot be reached, a
//! number already paid prints from that copy; paying by stored value pauses
//! (the default policy of SPEC P-3) with a clear message. What was printed
//! offline goes through the outbox once the backend is back.

use crate::journal::{now, Journal};
use crate::sync::{Backend, SyncError};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use crate::secrets::Secrets;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use shomei_shared::api::{OfflineBundle, OfflineCardPolicy, OfflineJob, SignedBundle};
use shomei_shared::Yen;
use std::path::Path;

/// What the kiosk needs to print offline.
pub struct Offline {
    pub cipher: Cipher,
    /// SHA-256 of the station's credential: the key of the numbers' MACs.
    pub credential_hash: String,
    pub station_id: i64,
    /// Where the backend's bundle-signing key is pinned.
    pub secrets: Secrets,
}

impl Offline {
    /// The pinned Ed25519 key that signs bundles, if the station has it.
    pub fn bundle_key(&self) -> Option<VerifyingKey> {
        let hex_key = self.secrets.bundle_key().ok().flatten()?;
        let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok()
    }
}

/// The station's data key for the offline cache: 32 random bytes in
/// `secrets_dir/station.key` (0600), made on first use.
pub struct Cipher(ChaCha20Poly1305);

impl Cipher {
    /// The key in `secrets`; one left in `state_dir` by an older release moves there.
    pub fn load_or_create(secrets: &Secrets, state_dir: &Path) -> std::io::Result<Cipher> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = secrets.path("station.key");
        let old = state_dir.join("station.key");
        if !path.exists() && old.exists() {
            std::fs::rename(&old, &path)?;
        }
        let key = match std::fs::read(&path) {
            Ok(k) if k.len() == 32 => k,
            Ok(_) => return Err(std::io::Error::other(format!("{} is not a 32-byte key", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k: [u8; 32] = rand::random();
                let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
                f.write_all(&k)?;
                f.sync_all()?;
                k.to_vec()
            }
            Err(e) => return Err(e),
        };
        Ok(Cipher(ChaCha20Poly1305::new(Key::from_slice(&key))))
    }

    fn seal(&self, order_id: i64, plain: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let nonce: [u8; 12] = rand::random();
        let aad = format!("order:{order_id}");
        let ct = self.0.encrypt(Nonce::from_slice(&nonce), chacha20poly1305::aead::Payload { msg: plain, aad: aad.as_bytes() }).ok()?;
        Some((nonce.to_vec(), ct))
    }

    fn open(&self, order_id: i64, nonce: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
        if nonce.len() != 12 {
            return None;
        }
        let aad = format!("order:{order_id}");
        self.0.decrypt(Nonce::from_slice(nonce), chacha20poly1305::aead::Payload { msg: ct, aad: aad.as_bytes() }).ok()
    }
}

/// The bundle, if the signature is the backend's (Ed25519, the pinned key).
pub fn verify(key: &VerifyingKey, signed: &SignedBundle) -> Option<OfflineBundle> {
    let sig: [u8; 64] = hex::decode(signed.signature.trim()).ok()?.try_into().ok()?;
    key.verify(signed.bundle.as_bytes(), &Signature::from_bytes(&sig)).ok()?;
    serde_json::from_str(&signed.bundle).ok()
}

/// Fetches the bundle and every document it names that is not cached yet
/// (checked against its hash), and drops documents no longer named. Returns
/// the number of jobs the station can now print offline.
pub async fn prefetch(backend: &Backend, journal: &Journal, offline: &Offline) -> Result<usize, String> {
    let cipher = &offline.cipher;
    // a station enrolled before bundles were signed with the backend's key pins it once
    if offline.bundle_key().is_none() {
        let k = backend.offline_key().await.map_err(|e| e.to_string())?;
        offline.secrets.save_bundle_key(&k.ed25519).map_err(|e| e.to_string())?;
        tracing::info!("pinned the backend's bundle signing key");
    }
    let key = offline.bundle_key().ok_or("the pinned bundle key is not an Ed25519 key")?;
    let requested_at = now();
    let signed = backend.offline_bundle().await.map_err(|e| e.to_string())?;
    let bundle = verify(&key, &signed).ok_or("the offline bundle's signature does not match")?;
    let cached: std::collections::HashMap<i64, String> = journal.cached_documents().await.map_err(|e| e.to_string())?.into_iter().collect();
    for job in &bundle.jobs {
        if cached.get(&job.order_id) == Some(&job.document_sha256) {
            continue;
        }
        let pdf = match backend.offline_document(job.order_id).await {
            Ok(p) => p,
            Err(SyncError::Refused(e)) => {
                tracing::info!(order_id = job.order_id, error = %e, "document not available for offline printing");
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        if hex::encode(Sha256::digest(&pdf)) != job.document_sha256 {
            tracing::warn!(order_id = job.order_id, "document does not match the bundle's hash; not cached");
            continue;
        }
        let (nonce, ct) = cipher.seal(job.order_id, &pdf).ok_or("encryption failed")?;
        journal.put_document(job.order_id, &job.document_sha256, &nonce, &ct).await.map_err(|e| e.to_string())?;
    }
    for order_id in cached.keys().filter(|id| !bundle.jobs.iter().any(|j| j.order_id == **id)) {
        journal.drop_document(*order_id).await.map_err(|e| e.to_string())?;
    }
    journal.save_bundle(&signed.bundle, &signed.signature, requested_at).await.map_err(|e| e.to_string())?;
    Ok(bundle.jobs.len())
}

/// What the offline copy says about a number.
#[derive(Debug)]
pub enum Lookup {
    /// No bundle yet, or its signature does not match (tampered on disk).
    NoBundle,
    /// The bundle is older than its maximum age.
    TooOld,
    /// The number is not in the bundle (unknown, printed or expired when it was made).
    Unknown,
    Found(Box<OfflineJob>),
}

pub async fn lookup(journal: &Journal, offline: &Offline, print_number: &str) -> Result<Lookup, sqlx::Error> {
    let Some(stored) = journal.bundle().await? else { return Ok(Lookup::NoBundle) };
    let Some(b) = offline.bundle_key().and_then(|k| verify(&k, &SignedBundle { bundle: stored.bundle, signature: stored.signature })) else {
        tracing::error!("the stored offline bundle fails its signature check");
        return Ok(Lookup::NoBundle);
    };
    if now() > b.issued_at + b.max_age_s {
        return Ok(Lookup::TooOld);
    }
    let mac = shomei_shared::offline::number_mac(&offline.credential_hash, print_number);
    Ok(match b.jobs.into_iter().find(|j| j.number_mac == mac) {
        Some(j) => Lookup::Found(Box::new(j)),
        None => Lookup::Unknown,
    })
}

/// The station's clock may differ from the backend's by this much before
/// offline payment is refused (DECISIONS: refused when the clock is unsure).
pub const MAX_CLOCK_SKEW_S: i64 = 120;

/// Why a card payment cannot be taken offline (P-3 policy b).
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// No valid, fresh bundle.
    NoBundle,
    /// The station's clock disagreed with the backend's when the bundle came,
    /// or has gone backwards since: limits and ages cannot be trusted.
    ClockUnsure,
    /// The station's unsynced offline debits would pass the station total.
    StationTotal,
    Blocked,
    /// Not in the balance snapshot (not linked, or linked after it was made).
    Unknown,
    /// The card would go further below zero than the floor limit.
    Floor { balance: Yen },
}

/// The verified bundle and when it was asked for, if it is fresh and the clock can be trusted.
async fn trusted_bundle(journal: &Journal, key: Option<&VerifyingKey>) -> Result<Result<(OfflineBundle, i64), Refusal>, sqlx::Error> {
    let Some(stored) = journal.bundle().await? else { return Ok(Err(Refusal::NoBundle)) };
    let (requested_at, fetched_at) = (stored.requested_at, stored.fetched_at);
    let Some(b) = key.and_then(|k| verify(k, &SignedBundle { bundle: stored.bundle, signature: stored.signature })) else { return Ok(Err(Refusal::NoBundle)) };
    let t = now();
    if (fetched_at - b.issued_at).abs() > MAX_CLOCK_SKEW_S || t + MAX_CLOCK_SKEW_S < fetched_at {
        tracing::warn!(skew_s = fetched_at - b.issued_at, "station clock unsure: no offline payment");
        return Ok(Err(Refusal::ClockUnsure));
    }
    if t > b.issued_at + b.max_age_s {
        return Ok(Err(Refusal::NoBundle));
    }
    Ok(Ok((b, requested_at)))
}

/// Before asking for a card: may this station take `amount` offline at all?
pub async fn may_take(journal: &Journal, key: Option<&VerifyingKey>, amount: Yen, policy: &OfflineCardPolicy) -> Result<Result<(), Refusal>, sqlx::Error> {
    if let Err(r) = trusted_bundle(journal, key).await? {
        return Ok(Err(r));
    }
    if journal.offline_debits_unsynced().await? + amount.0 > policy.station_total.0 {
        return Ok(Err(Refusal::StationTotal));
    }
    Ok(Ok(()))
}

/// May `uid` pay `amount` offline? Ok(the balance left, as far as this
/// station knows). The snapshot's balance less this station's debits it
/// does not include may go at most `floor_limit` below zero.
pub async fn authorize_card(journal: &Journal, key: Option<&VerifyingKey>, uid: &str, amount: Yen, policy: &OfflineCardPolicy) -> Result<Result<Yen, Refusal>, sqlx::Error> {
    let (b, requested_at) = match trusted_bundle(journal, key).await? {
        Ok(found) => found,
        Err(r) => return Ok(Err(r)),
    };
    if b.blocked_cards.iter().any(|c| c.eq_ignore_ascii_case(uid)) {
        return Ok(Err(Refusal::Blocked));
    }
    let Some(snapshot) = b.balances.iter().find(|c| c.uid.eq_ignore_ascii_case(uid)) else { return Ok(Err(Refusal::Unknown)) };
    if journal.offline_debits_unsynced().await? + amount.0 > policy.station_total.0 {
        return Ok(Err(Refusal::StationTotal));
    }
    let balance = Yen(snapshot.balance.0 - journal.offline_debits_of(&snapshot.uid, requested_at).await?);
    let after = Yen(balance.0 - amount.0);
    if after.0 < -policy.floor_limit.0 {
        return Ok(Err(Refusal::Floor { balance }));
    }
    Ok(Ok(after))
}

/// The cached PDF of an order, decrypted and checked against `sha256`.
pub async fn document(journal: &Journal, cipher: &Cipher, order_id: i64, sha256: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let Some((stored_sha, nonce, ct)) = journal.document(order_id).await? else { return Ok(None) };
    Ok(cipher.open(order_id, &nonce, &ct).filter(|pdf| stored_sha == sha256 && hex::encode(Sha256::digest(pdf)) == sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing_key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn bundles_verify_only_with_the_backends_key_and_unchanged() {
        use ed25519_dalek::Signer;
        let b = OfflineBundle { station_id: 1, issued_at: 0, max_age_s: 60, jobs: vec![], blocked_cards: vec!["AA".into()], balances: vec![] };
        let body = serde_json::to_string(&b).expect("json");
        let signed = SignedBundle { signature: hex::encode(signing_key(1).sign(body.as_bytes()).to_bytes()), bundle: body.clone() };
        assert_eq!(verify(&signing_key(1).verifying_key(), &signed), Some(b));
        assert!(verify(&signing_key(2).verifying_key(), &signed).is_none(), "another key");
        assert!(verify(&signing_key(1).verifying_key(), &SignedBundle { bundle: body.replace("AA", "BB"), ..signed }).is_none());
    }

    #[test]
    fn documents_are_sealed_per_order() {
        let dir = tempfile::tempdir().expect("dir");
        let secrets = Secrets::open(&dir.path().join("secrets")).expect("secrets");
        std::fs::write(dir.path().join("station.key"), [7u8; 32]).expect("an older release's key");
        let c = Cipher::load_or_create(&secrets, dir.path()).expect("key");
        assert!(!dir.path().join("station.key").exists() && secrets.path("station.key").exists(), "moved into secrets_dir");
        let (n, ct) = c.seal(7, b"%PDF-1.7 secret").expect("seal");
        assert!(!ct.windows(4).any(|w| w == b"%PDF"));
        assert_eq!(c.open(7, &n, &ct).as_deref(), Some(&b"%PDF-1.7 secret"[..]));
        assert!(c.open(8, &n, &ct).is_none(), "bound to its order");
        let again = Cipher::load_or_create(&secrets, dir.path()).expect("reload");
        assert!(again.open(7, &n, &ct).is_some(), "the key file is reused");
    }

    fn signed(_station: &str, b: &OfflineBundle) -> SignedBundle {
        use ed25519_dalek::Signer;
        let body = serde_json::to_string(b).expect("json");
        SignedBundle { signature: hex::encode(signing_key(1).sign(body.as_bytes()).to_bytes()), bundle: body }
    }

    #[tokio::test]
    async fn offline_card_payments_stay_within_the_floor_limit_and_the_station_total() {
        use shomei_shared::api::CardBalance;
        let dir = tempfile::tempdir().expect("dir");
        let j = Journal::open(dir.path()).await.expect("journal");
        let policy = OfflineCardPolicy { floor_limit: Yen(1000), station_total: Yen(2500) };
        let pay = |uid: &'static str, amount: i64| {
            let j = j.clone();
            let policy = policy.clone();
            async move { authorize_card(&j, Some(&signing_key(1).verifying_key()), uid, Yen(amount), &policy).await.expect("journal") }
        };
        assert_eq!(pay("C1", 400).await, Err(Refusal::NoBundle), "no bundle yet");

        let mut b = OfflineBundle {
            station_id: 1,
            issued_at: now(),
            max_age_s: 3600,
            jobs: vec![],
            blocked_cards: vec!["B1".into()],
            balances: vec![CardBalance { uid: "C1".into(), balance: Yen(300) }, CardBalance { uid: "C2".into(), balance: Yen(5000) }],
        };
        let s = signed("tok", &b);
        j.save_bundle(&s.bundle, &s.signature, now()).await.expect("save");
        assert_eq!(pay("B1", 400).await, Err(Refusal::Blocked));
        assert_eq!(pay("ZZ", 400).await, Err(Refusal::Unknown), "not in the snapshot");
        // 300 - 1,400 = -1,100: past the floor of -1,000
        assert_eq!(pay("C1", 1400).await, Err(Refusal::Floor { balance: Yen(300) }));
        assert_eq!(pay("c1", 1300).await, Ok(Yen(-1000)), "exactly at the floor, the UID in any case");

        // debits taken here count until the backend has them in a later snapshot
        let debit = |job: i64, uid: &'static str, amount: i64| {
            let j = j.clone();
            async move {
                let id = j.start_job(0, &format!("{job:012}"), amount, false, &format!("k{job}")).await.expect("job");
                j.record_offline_debit(id, uid, 9, amount, &format!("1-{id}-debit"), "{}").await.expect("debit");
            }
        };
        debit(1, "C1", 800).await;
        assert_eq!(pay("C1", 600).await, Err(Refusal::Floor { balance: Yen(-500) }), "300 - 800 already taken offline");
        assert_eq!(pay("C1", 500).await, Ok(Yen(-1000)));
        // station total 2,500: 800 taken, 1,800 more would pass it whichever card pays
        assert_eq!(pay("C2", 1800).await, Err(Refusal::StationTotal));
        assert_eq!(may_take(&j, Some(&signing_key(1).verifying_key()), Yen(1800), &policy).await.expect("j"), Err(Refusal::StationTotal));
        assert_eq!(may_take(&j, Some(&signing_key(1).verifying_key()), Yen(1700), &policy).await.expect("j"), Ok(()));
        debit(2, "C2", 1700).await;
        assert_eq!(pay("C2", 1).await, Err(Refusal::StationTotal), "2,500 taken: nothing more until synced");

        // the backend acknowledges both; a snapshot asked for later includes them
        for item in j.pending_outbox(10).await.expect("outbox") {
            j.outbox_sent(item.id).await.expect("sent");
        }
        assert_eq!(pay("C2", 1000).await, Ok(Yen(2300)), "synced debits no longer count against the station total");
        assert_eq!(pay("C1", 600).await, Err(Refusal::Floor { balance: Yen(-500) }), "but still against the old snapshot");
        b.balances[0].balance = Yen(-500);
        b.issued_at = now();
        let s = signed("tok", &b);
        j.save_bundle(&s.bundle, &s.signature, now() + 1).await.expect("save");
        assert_eq!(pay("C1", 500).await, Ok(Yen(-1000)), "the new snapshot has the debit; it is not counted twice");

        // a clock that disagreed with the backend's when the bundle came: no offline payment
        b.issued_at = now() - 3600;
        let s = signed("tok", &b);
        j.save_bundle(&s.bundle, &s.signature, now()).await.expect("save");
        assert_eq!(pay("C2", 100).await, Err(Refusal::ClockUnsure));
        // a bundle past its age, the clock agreeing (issued 100 s ago, within the skew allowed)
        b.issued_at = now() - 100;
        b.max_age_s = 60;
        let s = signed("tok", &b);
        j.save_bundle(&s.bundle, &s.signature, now()).await.expect("save");
        assert_eq!(pay("C2", 100).await, Err(Refusal::NoBundle), "too old to be trusted");
        // the same bundle within its age pays
        b.max_age_s = 3600;
        let s = signed("tok", &b);
        j.save_bundle(&s.bundle, &s.signature, now()).await.expect("save");
        assert!(pay("C2", 100).await.is_ok());
    }
}
