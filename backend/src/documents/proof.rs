//! Paper that verifies offline (issue 16): the QR code on every certificate
//! carries, besides the link to the verification page, a compact payload —
//! the holder's name, the certificate, its serial and issue date, as the
//! registrar's records state them — signed with the university's Ed25519
//! key as a JWS (RFC 7515 compact serialisation, `alg` EdDSA, RFC 8037).
//! The verification page publishes every university's public key and checks
//! a payload itself, in the browser, so a phone that loaded it once checks a
//! printed certificate with the network cut; only revocation needs the
//! network. The payload rides in the link's fragment (`#p=`), which a
//! browser never sends to a server.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// What a certificate's QR payload states (short keys: the QR code stays small).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The holder's name in kanji and in roman letters, as in school.
    #[serde(rename = "n")]
    pub name_kanji: String,
    #[serde(rename = "r")]
    pub name_roman: String,
    /// The certificate (its title as printed first).
    #[serde(rename = "t")]
    pub title: String,
    #[serde(rename = "s")]
    pub serial: String,
    /// `YYYY-MM-DD`.
    #[serde(rename = "d")]
    pub issue_date: String,
    /// The verification code (for the revocation check online).
    #[serde(rename = "c")]
    pub code: String,
}

/// The JWS header: the algorithm and the key (no more: the QR code stays small).
#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

/// `kid` of a public key: the first 12 hex digits of its SHA-256.
pub fn kid_of(public: &VerifyingKey) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(public.as_bytes()))[..12].to_string()
}

/// The compact JWS of `claims` under `key`.
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    let header = Header { alg: "EdDSA".into(), kid: kid_of(&key.verifying_key()) };
    let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
    let p = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let input = format!("{h}.{p}");
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

/// The claims of a compact JWS signed by `public`, or None (malformed, another key, altered).
pub fn verify(public: &VerifyingKey, jws: &str) -> Option<Claims> {
    let mut parts = jws.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Header = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
    if header.alg != "EdDSA" || header.kid != kid_of(public) {
        return None;
    }
    let sig = Signature::from_slice(&B64.decode(s).ok()?).ok()?;
    public.verify(format!("{h}.{p}").as_bytes(), &sig).ok()?;
    serde_json::from_slice(&B64.decode(p).ok()?).ok()
}

/// The public key as the verification page publishes it: a JWK's `x`.
pub fn jwk_x(public_hex: &str) -> String {
    B64.encode(hex::decode(public_hex).unwrap_or_default())
}

/// A university's signing key, made on its first certificate and kept
/// sealed under the data key.
pub struct ProofSigner {
    key: SigningKey,
}

impl ProofSigner {
    pub async fn for_university(pool: &crate::store::Pool, seal: &crate::sealed::SealKey, university_id: i64) -> anyhow::Result<ProofSigner> {
        use crate::store;
        let aad = format!("proof-key:{university_id}");
        let open = |k: &store::ProofKey| -> anyhow::Result<ProofSigner> {
            let hex_key = seal.open_str(&k.ed25519_sealed, &aad).map_err(|e| anyhow::anyhow!("university {university_id}'s proof key does not open: {e}"))?;
            let bytes: [u8; 32] = hex::decode(hex_key.trim())?.try_into().map_err(|_| anyhow::anyhow!("a proof key is not 32 bytes"))?;
            Ok(ProofSigner { key: SigningKey::from_bytes(&bytes) })
        };
        let mut c = pool.acquire().await?;
        if let Some(k) = store::proof_key(&mut c, university_id).await? {
            return open(&k);
        }
        drop(c);
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let public = key.verifying_key();
        let made = store::ProofKey {
            university_id,
            kid: kid_of(&public),
            public_hex: hex::encode(public.as_bytes()),
            ed25519_sealed: seal.seal_str(&hex::encode(key.to_bytes()), &aad).map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        let mut tx = store::begin_write(pool).await?;
        let fresh = store::insert_proof_key(&mut tx, &made, crate::time::now()).await?;
        let stored = store::proof_key(&mut tx, university_id).await?.ok_or_else(|| anyhow::anyhow!("the proof key was not stored"))?;
        tx.commit().await?;
        if fresh {
            tracing::info!(university_id, kid = %made.kid, "made the university's key for the signed QR payloads");
        }
        open(&stored)
    }

    /// A signer with a given key (benchmarks and tests; production keys come from `for_university`).
    pub fn from_key_bytes(bytes: [u8; 32]) -> ProofSigner {
        ProofSigner { key: SigningKey::from_bytes(&bytes) }
    }

    /// The key's `kid` (as published on the verification page).
    pub fn kid(&self) -> String {
        kid_of(&self.key.verifying_key())
    }

    /// An Ed25519 signature of `message` (the credential's JWS).
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Each copy's QR code carries its signed payload from now on.
    pub fn stamp(&self, copies: &mut [super::DocumentCopy]) {
        for copy in copies {
            let (claims, proof) = match copy {
                super::DocumentCopy::Certificate(c) => (
                    Claims {
                        name_kanji: c.holder_name_kanji.clone(),
                        name_roman: c.holder_name_roman.clone(),
                        title: if c.english_only { c.title_en.clone() } else { c.title_ja.clone() },
                        serial: c.serial.clone(),
                        issue_date: c.issue_date.clone(),
                        code: c.verification_code.clone(),
                    },
                    &mut c.offline_proof,
                ),
                super::DocumentCopy::Transcript(t) => (
                    Claims {
                        name_kanji: t.holder_name_kanji.clone(),
                        name_roman: t.holder_name_roman.clone(),
                        title: t.title_ja.clone(),
                        serial: t.serial.clone(),
                        issue_date: t.issue_date.clone(),
                        code: t.verification_code.clone(),
                    },
                    &mut t.offline_proof,
                ),
            };
            *proof = sign(&self.key, &claims);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            name_kanji: "山田 花子".into(),
            name_roman: "YAMADA Hanako".into(),
            title: "卒業証明書".into(),
            serial: "SH-2026-000123-1".into(),
            issue_date: "2026-12-06".into(),
            code: "K7QF-2M9X-PL3D".into(),
        }
    }

    #[test]
    fn a_payload_verifies_with_its_universitys_key_only_and_not_once_altered() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let jws = sign(&key, &claims());
        assert_eq!(verify(&key.verifying_key(), &jws), Some(claims()));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(verify(&other.verifying_key(), &jws), None, "another university's key");
        // one character of the payload changed
        let (h, rest) = jws.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let mut p: Vec<u8> = p.bytes().collect();
        p[5] = if p[5] == b'A' { b'B' } else { b'A' };
        let altered = format!("{h}.{}.{s}", String::from_utf8(p).unwrap());
        assert_eq!(verify(&key.verifying_key(), &altered), None);
        // it fits a certificate's QR code with the link beside it
        assert!(jws.len() < 360, "{} characters", jws.len());
    }
}
