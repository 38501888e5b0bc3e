//! PAdES signatures on digital certificates.
//!
//! A digital certificate is the printed document (same serial, verification
//! code, QR and seal) signed as the last step after rendering: a PAdES
//! baseline B-T signature (ETSI EN 319 142-1), that is a CMS signature of
//! subfilter `ETSI.CAdES.detached` carrying the signing certificate's hash
//! (ESS signing-certificate-v2), plus an RFC 3161 time-stamp over the
//! signature value from the configured time-stamp authority, in the
//! signer's unsigned attributes (`id-aa-signatureTimeStampToken`).
//!
//! The PDF side (signature field, incremental update, byte range) and the
//! CMS signed data come from the `underskrift` crate (BSD-2-Clause, used
//! without its network features). It makes B-B signatures only, so the
//! time-stamp is added here with RustCrypto's `cms` and `x509-tsp` types:
//! the token is an unsigned attribute, outside what the signature covers,
//! so the signature stays valid and only the `/Contents` hex is rewritten.
//!
//! Keys live behind [`DocumentSigner`] (underskrift's `CryptoSigner`: sign a
//! hash, give the certificate chain), which an HSM or a cloud KMS can
//! implement later; [`FileSigner`] holds a key read from a PKCS#12 or PEM
//! file (ECDSA P-256 or RSA).

use std::sync::Arc;
use std::time::Duration;

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{Any, SetOfVec};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::Sha256;
use underskrift::crypto::algorithm::{DigestAlgorithm, SignatureAlgorithm};
use underskrift::error::CryptoError;
use x509_cert::attr::Attribute;

/// A document-signing key and its certificate chain (signer first).
pub use underskrift::CryptoSigner as DocumentSigner;

/// id-aa-signatureTimeStampToken (RFC 3161 appendix A).
const SIGNATURE_TIME_STAMP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
/// id-signedData.
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// Room for the CMS in `/Contents` (bytes; the PDF holds twice as many hex
/// digits): the signature, its chain and the time-stamp token with the
/// authority's chain.
const CONTENTS_BYTES: usize = 24 * 1024;

/// What can go wrong while signing a document.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("signing key: {0}")]
    Key(String),
    #[error("signing the PDF: {0}")]
    Pdf(String),
    #[error("time-stamp authority: {0}")]
    TimeStamp(String),
}

// ---------------------------------------------------------------- configuration

/// `[documents.signing]`: digital certificates are offered once the time-stamp
/// authority is set and the university has a key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// The RFC 3161 time-stamp authority (an http or https URL) that stamps
    /// every signature; empty: no digital certificates.
    pub tsa_url: String,
    /// How long to wait for a time-stamp.
    pub tsa_timeout_s: u64,
    /// The time-stamp authority's certificate, or the CA that issues it
    /// (PEM, one or more): a token signed by anyone else is refused. Unset:
    /// any certificate for time-stamping whose signature over the token
    /// verifies is taken (a warning at start).
    pub tsa_trust_file: Option<std::path::PathBuf>,
    /// Each university's document-signing key.
    pub keys: Vec<SigningKeyConfig>,
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig { tsa_url: String::new(), tsa_timeout_s: 20, tsa_trust_file: None, keys: Vec::new() }
    }
}

/// One university's document-signing key: a PKCS#8 key file (PEM) with its
/// certificate chain (PEM), or a PKCS#12 file with a password file. Key and
/// password files are secrets (relative names are systemd credentials).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningKeyConfig {
    pub university: i64,
    pub key_file: Option<std::path::PathBuf>,
    pub chain_file: Option<std::path::PathBuf>,
    pub pkcs12_file: Option<std::path::PathBuf>,
    pub pkcs12_password_file: Option<std::path::PathBuf>,
}

/// Every university's signer, loaded at start (a key that cannot be read
/// stops the start, naming it).
#[derive(Clone, Default)]
pub struct Sealers {
    by_university: std::collections::HashMap<i64, PdfSealer>,
}

impl Sealers {
    pub fn load(config: &SigningConfig) -> Result<Sealers, String> {
        let mut by_university = std::collections::HashMap::new();
        if config.keys.is_empty() {
            return Ok(Sealers { by_university });
        }
        if !(config.tsa_url.starts_with("http://") || config.tsa_url.starts_with("https://")) {
            return Err("documents.signing.tsa_url: every signature is time-stamped: set the time-stamp authority's http(s) URL".into());
        }
        let mut stamper = TimeStamper::new(&config.tsa_url, Duration::from_secs(config.tsa_timeout_s.max(1)));
        match &config.tsa_trust_file {
            Some(file) => stamper = stamper.trusting_file(file).map_err(|e| format!("documents.signing.tsa_trust_file: {e}"))?,
            None => tracing::warn!("documents.signing.tsa_trust_file is not set: a time-stamp is taken from any certificate for time-stamping whose signature verifies"),
        }
        for (i, k) in config.keys.iter().enumerate() {
            let name = format!("documents.signing.keys[{i}] (university {})", k.university);
            let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{name}: {}: {e}", p.display()));
            let signer = match (&k.key_file, &k.chain_file, &k.pkcs12_file) {
                (Some(key), Some(chain), None) => {
                    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| format!("{name}: not PEM text"));
                    FileSigner::from_pem(&text(read(key)?)?, &text(read(chain)?)?)
                }
                (None, None, Some(p12)) => {
                    let password = match &k.pkcs12_password_file {
                        Some(p) => String::from_utf8(read(p)?).map_err(|_| format!("{name}: the password file is not text"))?.trim_end_matches(['\r', '\n']).to_string(),
                        None => String::new(),
                    };
                    FileSigner::from_pkcs12(&read(p12)?, &password)
                }
                _ => return Err(format!("{name}: give key_file and chain_file (PEM), or pkcs12_file (with pkcs12_password_file)")),
            }
            .map_err(|e| format!("{name}: {e}"))?;
            tracing::info!(university = k.university, subject = signer.subject(), "document-signing key loaded");
            if by_university.insert(k.university, PdfSealer { signer: Arc::new(signer), stamper: stamper.clone() }).is_some() {
                return Err(format!("{name}: a second key for the same university"));
            }
        }
        Ok(Sealers { by_university })
    }

    /// The university's signer, when it has a key (digital certificates offered).
    pub fn of(&self, university: i64) -> Option<&PdfSealer> {
        self.by_university.get(&university)
    }
}

// ---------------------------------------------------------------- keys

enum Key {
    P256(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

/// A document-signing key read from files.
pub struct FileSigner {
    key: Key,
    /// DER certificates, the signer's first.
    chain: Vec<Vec<u8>>,
    /// The signer's subject, for logs and pages.
    subject: String,
}

impl std::fmt::Debug for FileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSigner").field("subject", &self.subject).finish_non_exhaustive()
    }
}

impl FileSigner {
    /// A PKCS#8 private key (PEM, unencrypted: it comes from a secret file)
    /// and its certificate chain (PEM, in any order; the one matching the
    /// key is the signer's).
    pub fn from_pem(key_pem: &str, chain_pem: &str) -> Result<FileSigner, SigningError> {
        let (label, key_der) = pem_rfc7468_decode(key_pem)?;
        if label != "PRIVATE KEY" {
            return Err(SigningError::Key(format!("the key file holds a {label:?}, not a PKCS#8 \"PRIVATE KEY\" (convert it with openssl pkcs8 -topk8 -nocrypt)")));
        }
        let certs = x509_cert::Certificate::load_pem_chain(chain_pem.as_bytes())
            .map_err(|e| SigningError::Key(format!("the certificate chain is not PEM certificates: {e}")))?
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SigningError::Key(e.to_string()))?;
        FileSigner::new(&key_der, certs)
    }

    /// A PKCS#12 file (key and chain) and its password. The file must use
    /// the classic PKCS#12 encryption (3DES or RC2; OpenSSL 3 writes it
    /// with `-legacy`).
    pub fn from_pkcs12(data: &[u8], password: &str) -> Result<FileSigner, SigningError> {
        let pfx = p12::PFX::parse(data).map_err(|e| SigningError::Key(format!("not a PKCS#12 file: {e:?}")))?;
        // the p12 crate reads the classic format only (SHA-1 MAC, 3DES or RC2)
        if pfx.mac_data.as_ref().is_some_and(|m| m.mac.digest_algorithm != p12::AlgorithmIdentifier::Sha1) {
            return Err(SigningError::Key(
                "the PKCS#12 file uses OpenSSL 3's default encryption (AES, PBKDF2): export it with openssl pkcs12 -export -legacy, or give the key and chain as PEM".into(),
            ));
        }
        if !pfx.verify_mac(password) {
            return Err(SigningError::Key("the PKCS#12 password is wrong (or the file uses AES and PBKDF2: export it with openssl pkcs12 -export -legacy, or give the key and chain as PEM)".into()));
        }
        let key = pfx.key_bags(password).map_err(|e| SigningError::Key(format!("the PKCS#12 key cannot be read: {e:?}")))?;
        let key = key.into_iter().next().ok_or_else(|| SigningError::Key("the PKCS#12 file holds no private key (export it with openssl pkcs12 -export -legacy, or give the key and chain as PEM)".into()))?;
        let certs = pfx.cert_x509_bags(password).map_err(|e| SigningError::Key(format!("the PKCS#12 certificates cannot be read: {e:?}")))?;
        FileSigner::new(&key, certs)
    }

    fn new(key_der: &[u8], certs: Vec<Vec<u8>>) -> Result<FileSigner, SigningError> {
        use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
        let key = if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(key_der) {
            Key::P256(k)
        } else if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(key_der) {
            Key::Rsa(Box::new(k))
        } else {
            return Err(SigningError::Key("the private key is neither ECDSA P-256 nor RSA (PKCS#8)".into()));
        };
        let matches = |cert: &[u8]| -> bool {
            let Ok(c) = x509_cert::Certificate::from_der(cert) else { return false };
            let Ok(spki) = c.tbs_certificate.subject_public_key_info.to_der() else { return false };
            match &key {
                Key::P256(k) => p256::ecdsa::VerifyingKey::from_public_key_der(&spki).is_ok_and(|v| &v == k.verifying_key()),
                Key::Rsa(k) => rsa::RsaPublicKey::from_public_key_der(&spki).is_ok_and(|v| v == k.to_public_key()),
            }
        };
        let at = certs.iter().position(|c| matches(c)).ok_or_else(|| SigningError::Key("no certificate in the chain is the key's own".into()))?;
        let mut chain = certs;
        let own = chain.remove(at);
        chain.insert(0, own);
        let subject = x509_cert::Certificate::from_der(&chain[0]).map(|c| c.tbs_certificate.subject.to_string()).unwrap_or_default();
        Ok(FileSigner { key, chain, subject })
    }

    /// The signing certificate's subject (RFC 4514).
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// Decodes one PEM block: its label and DER.
fn pem_rfc7468_decode(pem: &str) -> Result<(String, Vec<u8>), SigningError> {
    let (label, der) = der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| SigningError::Key(format!("the key file is not PEM: {e}")))?;
    Ok((label.to_string(), der))
}

impl DocumentSigner for FileSigner {
    fn sign_hash(&self, hash: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.key {
            Key::P256(k) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner;
                let sig: p256::ecdsa::Signature = k.sign_prehash(hash).map_err(|e| CryptoError::SigningFailed(e.to_string()))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Key::Rsa(k) => k.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), hash).map_err(|e| CryptoError::SigningFailed(e.to_string())),
        }
    }

    fn certificate_der(&self) -> &[u8] {
        &self.chain[0]
    }

    fn certificate_chain_der(&self) -> Vec<&[u8]> {
        self.chain.iter().map(Vec::as_slice).collect()
    }

    fn digest_algorithm(&self) -> DigestAlgorithm {
        DigestAlgorithm::Sha256
    }

    fn signature_algorithm(&self) -> SignatureAlgorithm {
        match self.key {
            Key::P256(_) => SignatureAlgorithm::EcdsaP256,
            Key::Rsa(_) => SignatureAlgorithm::RsaPkcs1v15,
        }
    }
}

pub use super::timestamp::{tst_info, TimeStamper};

// ---------------------------------------------------------------- signing

/// Who signs and stamps: a university's key and the time-stamp authority.
#[derive(Clone)]
pub struct PdfSealer {
    pub signer: Arc<dyn DocumentSigner>,
    pub stamper: TimeStamper,
}

impl PdfSealer {
    /// `pdf` signed PAdES B-T: the signature (reason and location as given)
    /// and a time-stamp over it; B-LT (the chains' certificates and
    /// revocation lists in a document security store, see [`super::ltv`])
    /// when the certificates name lists that can be fetched.
    pub async fn sign(&self, pdf: &[u8], reason: &str, location: &str) -> Result<Vec<u8>, SigningError> {
        let options = underskrift::SigningOptions {
            sub_filter: underskrift::SubFilter::Pades,
            pades_level: underskrift::PadesLevel::BT,
            digest_algorithm: DigestAlgorithm::Sha256,
            field_name: "UniversitySignature".into(),
            reason: Some(reason.to_string()),
            location: Some(location.to_string()),
            content_size: CONTENTS_BYTES,
            ..Default::default()
        };
        // the signer's chain's revocation data is had before signing: an
        // answer given before the signature's time is valid at that time
        // (only with the authority's path trusted: B-LT needs it too), within a budget
        let own_data = if self.stamper.has_anchors() {
            let own: Vec<x509_cert::Certificate> = self.signer.certificate_chain_der().iter().filter_map(|c| x509_cert::Certificate::from_der(c).ok()).collect();
            super::ltv::within_budget(super::ltv::validation_data(&own, super::ltv::FETCH_TIMEOUT)).await
        } else {
            Ok(None)
        };
        let mut signed = underskrift::PdfSigner::new()
            .options(options)
            .sign(pdf, self.signer.as_ref())
            .await
            .map_err(|e| SigningError::Pdf(e.to_string()))?;
        let (start, end) = contents_span(&signed)?;
        let cms = hex::decode(trim_padding(&signed[start..end])).map_err(|e| SigningError::Pdf(format!("the signature's hex: {e}")))?;
        let (stamped, tsa_path) = self.add_signature_time_stamp(&cms).await?;
        let hex = hex::encode_upper(&stamped);
        if hex.len() > end - start {
            return Err(SigningError::Pdf(format!("the signature needs {} bytes, {} are reserved", stamped.len(), (end - start) / 2)));
        }
        signed[start..start + hex.len()].copy_from_slice(hex.as_bytes());
        signed[start + hex.len()..end].fill(b'0');
        // B-LT where the trusted chains name their revocation data and it can be had
        let Some(tsa_path) = tsa_path else {
            return Ok(signed);
        };
        let theirs = super::ltv::within_budget(super::ltv::validation_data(&tsa_path, super::ltv::FETCH_TIMEOUT)).await;
        let data = match (own_data, theirs) {
            (Ok(Some(a)), Ok(b)) => a.merge(b.unwrap_or_default()),
            (Ok(None), Ok(Some(b))) => b,
            _ => return Ok(signed),
        };
        match super::ltv::append_dss(&signed, &data) {
            Ok(with_dss) => Ok(with_dss),
            Err(e) => {
                tracing::warn!(error = %e, "the validation data could not be added: the signature stays B-T");
                Ok(signed)
            }
        }
    }

    /// The CMS with a time-stamp token over its (one) signature value, and
    /// the authority's trusted path (see [`super::timestamp::Stamp`]).
    async fn add_signature_time_stamp(&self, cms: &[u8]) -> Result<(Vec<u8>, Option<Vec<x509_cert::Certificate>>), SigningError> {
        let pdf = |e: der::Error| SigningError::Pdf(format!("the CMS signature: {e}"));
        let info = ContentInfo::from_der(cms).map_err(pdf)?;
        let mut sd: SignedData = info.content.decode_as().map_err(pdf)?;
        let mut signers: Vec<cms::signed_data::SignerInfo> = sd.signer_infos.0.into_vec();
        let [signer] = signers.as_mut_slice() else {
            return Err(SigningError::Pdf(format!("{} signers in the CMS, one expected", signers.len())));
        };
        let super::timestamp::Stamp { token, path } = self.stamper.stamp(signer.signature.as_bytes()).await?;
        let value = Any::from_der(&token).map_err(pdf)?;
        let attr = Attribute { oid: SIGNATURE_TIME_STAMP, values: SetOfVec::try_from(vec![value]).map_err(pdf)? };
        signer.unsigned_attrs = Some(SetOfVec::try_from(vec![attr]).map_err(pdf)?);
        sd.signer_infos = cms::signed_data::SignerInfos::try_from(signers).map_err(pdf)?;
        let out = ContentInfo { content_type: SIGNED_DATA, content: Any::encode_from(&sd).map_err(pdf)? };
        Ok((out.to_der().map_err(pdf)?, path))
    }
}

/// The hex digits of the last signature's `/Contents` (between `<` and
/// `>`), found from its `/ByteRange`: the gap between the two signed ranges.
pub fn contents_span(pdf: &[u8]) -> Result<(usize, usize), SigningError> {
    let key = b"/ByteRange";
    let at = pdf.windows(key.len()).rposition(|w| w == key).ok_or_else(|| SigningError::Pdf("no /ByteRange".into()))?;
    let [a, b, c, _] = byte_range_at(pdf, at + key.len()).ok_or_else(|| SigningError::Pdf("a /ByteRange that is not four numbers".into()))?;
    // the gap is "<hex>" (any file: the arithmetic is checked, a hostile one only gets an error)
    let frame = || -> Option<(usize, usize)> {
        let start = a.checked_add(b)?.checked_add(1)?;
        let end = c.checked_sub(1)?;
        (a == 0 && start <= end && end < pdf.len() && pdf[start - 1] == b'<' && pdf[end] == b'>').then_some((start, end))
    };
    frame().ok_or_else(|| SigningError::Pdf("the /ByteRange does not frame the signature".into()))
}

/// The four numbers of the `[a b c d]` array that follows offset `from`.
pub fn byte_range_at(pdf: &[u8], from: usize) -> Option<[usize; 4]> {
    let rest = pdf.get(from..)?;
    let open = rest.iter().position(|&b| b == b'[')?;
    let close = open + rest[open..].iter().position(|&b| b == b']')?;
    let nums: Vec<usize> = std::str::from_utf8(&rest[open + 1..close]).ok()?.split_ascii_whitespace().map(|n| n.parse().ok()).collect::<Option<_>>()?;
    nums.try_into().ok()
}

/// The CMS hex without the zero padding after it (the DER's own length
/// says where it ends; an even number of digits is kept).
fn trim_padding(hex: &[u8]) -> &[u8] {
    let mut end = hex.len();
    while end >= 2 && &hex[end - 2..end] == b"00" {
        end -= 2;
    }
    // a DER structure may itself end in zero bytes: parse its length instead
    match der_len(hex) {
        Some(n) if n * 2 <= hex.len() => &hex[..n * 2],
        _ => &hex[..end],
    }
}

/// The total length of the DER structure whose hex starts `hex`.
fn der_len(hex: &[u8]) -> Option<usize> {
    let byte = |i: usize| -> Option<usize> { std::str::from_utf8(hex.get(i * 2..i * 2 + 2)?).ok().and_then(|s| usize::from_str_radix(s, 16).ok()) };
    let first = byte(1)?;
    if first < 0x80 {
        return Some(2 + first);
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | byte(2 + i)?;
    }
    Some(2 + n + len)
}

#[cfg(test)]
mod tests {
    use super::*;


    #[test]
    fn the_contents_span_is_the_hex_between_the_two_signed_ranges() {
        // bytes 0..35 and 43..48 are signed; 35..43 is "<00ab00>"
        let doc = b"%PDF /ByteRange [0 0035 0043 0005] <00ab00>tail!";
        assert_eq!(doc.len(), 48);
        let (start, end) = contents_span(doc).expect("found");
        assert_eq!((start, end), (36, 42));
        assert_eq!(&doc[start..end], b"00ab00");
        // a byte range that does not frame a hex string is refused
        assert!(contents_span(b"%PDF /ByteRange [0 0034 0043 0005] <00ab00>tail!").is_err());
        assert_eq!(trim_padding(b"3003020100000000"), b"3003020100");
        // hostile files get an error, never a panic
        for bad in [&b"%PDF /ByteRange ] [0 1 2 3"[..], b"%PDF /ByteRange [0 18446744073709551615 0 5] <>", b"%PDF /ByteRange [0 0 0 0]", b"%PDF /ByteRange [0 1 2", b"%PDF /ByteRange [0 99 200 5] <00>"] {
            assert!(contents_span(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
