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
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use shomei_shared::api::{OfflineBundle, OfflineJob, SignedBundle};
use std::path::Path;

/// What the kiosk needs to print offline.
pub struct Offline {
    pub cipher: Cipher,
    /// The station's credential (the bundle's signing key is derived from it).
    pub token: String,
    pub station_id: i64,
}

/// The station's data key for the offline cache: 32 random bytes in
/// `state_dir/station.key` (0600), made on first use.
pub struct Cipher(ChaCha20Poly1305);

impl Cipher {
    pub fn load_or_create(state_dir: &Path) -> std::io::Result<Cipher> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = state_dir.join("station.key");
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

/// The key both sides sign the bundle with: the SHA-256 (hex) of the
/// station's token (the backend keeps exactly that).
fn signing_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The bundle, if the signature is the backend's.
pub fn verify(token: &str, signed: &SignedBundle) -> Option<OfflineBundle> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(signing_key(token).as_bytes()).ok()?;
    mac.update(signed.bundle.as_bytes());
    let sig = hex::decode(signed.signature.trim()).ok()?;
    mac.verify_slice(&sig).ok()?;
    serde_json::from_str(&signed.bundle).ok()
}

/// Fetches the bundle and every document it names that is not cached yet
/// (checked against its hash), and drops documents no longer named. Returns
/// the number of jobs the station can now print offline.
pub async fn prefetch(backend: &Backend, journal: &Journal, cipher: &Cipher, token: &str) -> Result<usize, String> {
    let signed = backend.offline_bundle().await.map_err(|e| e.to_string())?;
    let bundle = verify(token, &signed).ok_or("the offline bundle's signature does not match")?;
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
    journal.save_bundle(&signed.bundle, &signed.signature).await.map_err(|e| e.to_string())?;
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

pub async fn lookup(journal: &Journal, token: &str, print_number: &str) -> Result<Lookup, sqlx::Error> {
    let Some((bundle, signature)) = journal.bundle().await? else { return Ok(Lookup::NoBundle) };
    let Some(b) = verify(token, &SignedBundle { bundle, signature }) else {
        tracing::error!("the stored offline bundle fails its signature check");
        return Ok(Lookup::NoBundle);
    };
    if now() > b.issued_at + b.max_age_s {
        return Ok(Lookup::TooOld);
    }
    Ok(match b.jobs.into_iter().find(|j| j.print_number.as_str() == print_number) {
        Some(j) => Lookup::Found(Box::new(j)),
        None => Lookup::Unknown,
    })
}

/// The cached PDF of an order, decrypted and checked against `sha256`.
pub async fn document(journal: &Journal, cipher: &Cipher, order_id: i64, sha256: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let Some((stored_sha, nonce, ct)) = journal.document(order_id).await? else { return Ok(None) };
    Ok(cipher.open(order_id, &nonce, &ct).filter(|pdf| stored_sha == sha256 && hex::encode(Sha256::digest(pdf)) == sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_verify_only_with_the_stations_token_and_unchanged() {
        let b = OfflineBundle { station_id: 1, issued_at: 0, max_age_s: 60, jobs: vec![], blocked_cards: vec!["AA".into()] };
        let body = serde_json::to_string(&b).expect("json");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(signing_key("tok").as_bytes()).expect("key");
        mac.update(body.as_bytes());
        let signed = SignedBundle { signature: hex::encode(mac.finalize().into_bytes()), bundle: body.clone() };
        assert_eq!(verify("tok", &signed), Some(b));
        assert!(verify("other", &signed).is_none());
        assert!(verify("tok", &SignedBundle { bundle: body.replace("AA", "BB"), ..signed }).is_none());
    }

    #[test]
    fn documents_are_sealed_per_order() {
        let dir = tempfile::tempdir().expect("dir");
        let c = Cipher::load_or_create(dir.path()).expect("key");
        let (n, ct) = c.seal(7, b"%PDF-1.7 secret").expect("seal");
        assert!(!ct.windows(4).any(|w| w == b"%PDF"));
        assert_eq!(c.open(7, &n, &ct).as_deref(), Some(&b"%PDF-1.7 secret"[..]));
        assert!(c.open(8, &n, &ct).is_none(), "bound to its order");
        let again = Cipher::load_or_create(dir.path()).expect("reload");
        assert!(again.open(7, &n, &ct).is_some(), "the key file is reused");
    }
}
