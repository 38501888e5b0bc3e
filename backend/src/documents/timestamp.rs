//! RFC 3161 time-stamps: the client that asks the configured authority
//! for a token over a signature value, and the checks made on what comes
//! back (trust nothing across a boundary): the token stamps exactly what
//! was asked with our nonce, it is signed by a certificate for
//! time-stamping whose signature over the token verifies, and, with trust
//! anchors configured, that certificate is one of them or issued by one.

use std::time::Duration;

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{Int, OctetString};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use super::signing::SigningError;

/// id-sha256.
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
/// id-ct-TSTInfo.
const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// An RFC 3161 time-stamp authority over HTTP.
#[derive(Debug, Clone)]
pub struct TimeStamper {
    url: String,
    http: reqwest::Client,
    /// The certificates a token's signer must be (or be issued by); empty:
    /// any certificate for time-stamping whose signature verifies.
    anchors: Vec<Certificate>,
}

impl TimeStamper {
    pub fn new(url: &str, timeout: Duration) -> TimeStamper {
        let http = reqwest::Client::builder().timeout(timeout).build().unwrap_or_default();
        TimeStamper { url: url.to_string(), http, anchors: Vec::new() }
    }

    /// Tokens are taken only from a signer that is one of `anchors` or
    /// issued by one (through the certificates the token carries).
    pub fn trusting(mut self, anchors: Vec<Certificate>) -> TimeStamper {
        self.anchors = anchors;
        self
    }

    /// [`Self::trusting`] the certificates of a PEM file.
    pub fn trusting_file(self, file: &std::path::Path) -> Result<TimeStamper, String> {
        let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        // (x509-cert's reader panics on input without a PEM block)
        if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(format!("{}: no certificate in it", file.display()));
        }
        let anchors = Certificate::load_pem_chain(&pem).map_err(|e| format!("{}: not PEM certificates: {e}", file.display()))?;
        if anchors.is_empty() {
            return Err(format!("{}: no certificate in it", file.display()));
        }
        Ok(self.trusting(anchors))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether tokens are taken only from configured anchors' authorities.
    pub fn has_anchors(&self) -> bool {
        !self.anchors.is_empty()
    }

    /// A time-stamp token (DER ContentInfo) over `data`, checked to stamp
    /// exactly the SHA-256 of `data` with the nonce asked for, and signed as
    /// [`verify_token`] requires.
    pub async fn stamp(&self, data: &[u8]) -> Result<Stamp, SigningError> {
        use rand::Rng;
        let err = |m: String| SigningError::TimeStamp(m);
        let imprint = x509_tsp::MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned { oid: SHA256, parameters: None },
            hashed_message: OctetString::new(Sha256::digest(data).to_vec()).map_err(|e| err(e.to_string()))?,
        };
        let nonce = positive_int(rand::thread_rng().gen::<u64>()).map_err(|e| err(e.to_string()))?;
        let req = x509_tsp::TimeStampReq {
            version: x509_tsp::TspVersion::V1,
            message_imprint: imprint.clone(),
            req_policy: None,
            nonce: Some(nonce.clone()),
            cert_req: true,
            extensions: None,
        };
        let body = req.to_der().map_err(|e| err(e.to_string()))?;
        let resp = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/timestamp-query")
            .body(body)
            .send()
            .await
            .map_err(|e| err(format!("{}: {e}", self.url)))?;
        if !resp.status().is_success() {
            return Err(err(format!("{} answered {}", self.url, resp.status())));
        }
        let bytes = resp.bytes().await.map_err(|e| err(e.to_string()))?;
        let resp = x509_tsp::TimeStampResp::from_der(&bytes).map_err(|e| err(format!("not a time-stamp response: {e}")))?;
        use cmpv2::status::PkiStatus;
        if !matches!(resp.status.status, PkiStatus::Accepted | PkiStatus::GrantedWithMods) {
            return Err(err(format!("the request was refused ({:?})", resp.status.status)));
        }
        let token = resp.time_stamp_token.ok_or_else(|| err("granted without a token".into()))?;
        let info = tst_info(&token).map_err(|e| err(format!("the token cannot be read: {e}")))?;
        if info.message_imprint != imprint {
            return Err(err("the token stamps something else than was asked".into()));
        }
        if info.nonce.as_ref() != Some(&nonce) {
            return Err(err("the token does not carry the request's nonce".into()));
        }
        let path = verify_token(&token, &self.anchors).map_err(err)?;
        let trusted = !self.anchors.is_empty();
        Ok(Stamp { token: token.to_der().map_err(|e| err(e.to_string()))?, path: trusted.then_some(path) })
    }
}

/// A time-stamp token (DER ContentInfo), checked.
pub struct Stamp {
    pub token: Vec<u8>,
    /// Its signer's path up to a configured anchor (None without anchors:
    /// then nothing says the authority's certificates are to be trusted,
    /// and no revocation data is fetched for them).
    pub path: Option<Vec<Certificate>>,
}

/// `v` as a DER INTEGER: minimal (no leading zero bytes) and positive (a
/// zero byte before a high bit). A nonce encoded otherwise is not DER and
/// the authority refuses the request.
fn positive_int(v: u64) -> Result<Int, der::Error> {
    let bytes = v.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
    let mut minimal = bytes[first..].to_vec();
    if minimal[0] & 0x80 != 0 {
        minimal.insert(0, 0);
    }
    Int::new(&minimal)
}

/// The TSTInfo a time-stamp token carries.
pub fn tst_info(token: &ContentInfo) -> Result<x509_tsp::TstInfo, der::Error> {
    let sd: SignedData = token.content.decode_as()?;
    let content = sd.encap_content_info.econtent.ok_or(der::ErrorKind::Failed)?;
    let octets: OctetString = content.decode_as()?;
    x509_tsp::TstInfo::from_der(octets.as_bytes())
}


fn digest(alg: &ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>, String> {
    match *alg {
        SHA256 => Ok(Sha256::digest(data).to_vec()),
        SHA384 => Ok(sha2::Sha384::digest(data).to_vec()),
        SHA512 => Ok(sha2::Sha512::digest(data).to_vec()),
        _ => Err(format!("digest algorithm {alg} is not supported")),
    }
}

/// Whether `signature` over `prehash` (made with digest `alg`) verifies with
/// the key of `cert` (ECDSA P-256 or RSA PKCS#1 v1.5).
fn key_verifies(cert: &Certificate, alg: &ObjectIdentifier, prehash: &[u8], signature: &[u8]) -> Result<bool, String> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let spki_der = spki.to_der().map_err(|e| e.to_string())?;
    match spki.algorithm.oid {
        EC_PUBLIC_KEY => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            use p256::pkcs8::DecodePublicKey;
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            if curve != Some(P256) {
                return Err("the time-stamp authority's EC key is not P-256".into());
            }
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der).map_err(|e| e.to_string())?;
            let Ok(sig) = p256::ecdsa::Signature::from_der(signature) else { return Ok(false) };
            Ok(key.verify_prehash(prehash, &sig).is_ok())
        }
        RSA => {
            use rsa::pkcs8::DecodePublicKey;
            let key = rsa::RsaPublicKey::from_public_key_der(&spki_der).map_err(|e| e.to_string())?;
            let scheme = match *alg {
                SHA256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
                SHA384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                SHA512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                _ => return Err(format!("digest algorithm {alg} is not supported")),
            };
            Ok(key.verify(scheme, prehash, signature).is_ok())
        }
        other => Err(format!("key algorithm {other} is not supported")),
    }
}

/// The digest a certificate's signature algorithm uses.
fn signature_digest(alg: &ObjectIdentifier) -> Option<ObjectIdentifier> {
    match alg.to_string().as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => Some(SHA256),
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => Some(SHA384),
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => Some(SHA512),
        _ => None,
    }
}

const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");

/// Whether `cert` is a CA certificate (basic constraints, cA).
fn is_ca(cert: &Certificate) -> bool {
    cert.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == BASIC_CONSTRAINTS).is_some_and(|e| {
        x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()).is_ok_and(|b| b.ca)
    })
}

/// Whether `cert` is within its validity period now.
fn valid_now(cert: &Certificate) -> bool {
    let now = std::time::SystemTime::now();
    let v = &cert.tbs_certificate.validity;
    v.not_before.to_system_time() <= now && now <= v.not_after.to_system_time()
}

/// Whether `issuer` (a CA) signed `cert`.
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if !is_ca(issuer) {
        return false;
    }
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return false;
    }
    let (Some(alg), Ok(tbs)) = (signature_digest(&cert.signature_algorithm.oid), cert.tbs_certificate.to_der()) else { return false };
    let Ok(prehash) = digest(&alg, &tbs) else { return false };
    key_verifies(issuer, &alg, &prehash, cert.signature.raw_bytes()).unwrap_or(false)
}

/// A time-stamp token's own signature, checked: one signer, for
/// time-stamping (extended key usage), within its validity, whose signature
/// over the signed attributes verifies and whose message digest is the
/// TSTInfo's; with `anchors`, the signer is one of them or issued by one, up
/// to four CA certificates up through the token's own. Returns the signer's
/// path: its certificate, the CAs above it and the anchor reached (the
/// signer's alone without anchors).
pub fn verify_token(token: &ContentInfo, anchors: &[Certificate]) -> Result<Vec<Certificate>, String> {
    let bad = |what: &str| format!("the token's signature: {what}");
    let sd: SignedData = token.content.decode_as().map_err(|e| bad(&e.to_string()))?;
    if sd.encap_content_info.econtent_type != TST_INFO {
        return Err(bad("it does not hold a TSTInfo"));
    }
    let content: OctetString = sd.encap_content_info.econtent.as_ref().ok_or_else(|| bad("no content"))?.decode_as().map_err(|e| bad(&e.to_string()))?;
    let [signer] = sd.signer_infos.0.as_slice() else { return Err(bad("not exactly one signer")) };
    let alg = signer.digest_alg.oid;
    let attrs = signer.signed_attrs.as_ref().ok_or_else(|| bad("no signed attributes"))?;
    let value_of = |oid: ObjectIdentifier| attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.get(0));
    let claimed: OctetString = value_of(MESSAGE_DIGEST).ok_or_else(|| bad("no message digest"))?.decode_as().map_err(|e| bad(&e.to_string()))?;
    if claimed.as_bytes() != digest(&alg, content.as_bytes())?.as_slice() {
        return Err(bad("the message digest is not the TSTInfo's"));
    }
    let kind: ObjectIdentifier = value_of(CONTENT_TYPE).ok_or_else(|| bad("no content type"))?.decode_as().map_err(|e| bad(&e.to_string()))?;
    if kind != TST_INFO {
        return Err(bad("the signed content type is not TSTInfo"));
    }
    let certs: Vec<Certificate> = sd
        .certificates
        .as_ref()
        .map(|set| set.0.iter().filter_map(|c| match c { cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()), _ => None }).collect())
        .unwrap_or_default();
    let is_signer = |c: &Certificate| match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(i) => c.tbs_certificate.issuer == i.issuer && c.tbs_certificate.serial_number == i.serial_number,
        SignerIdentifier::SubjectKeyIdentifier(k) => c
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == SUBJECT_KEY_ID)
            .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|v| v.as_bytes() == k.0.as_bytes()),
    };
    let cert = certs.iter().find(|c| is_signer(c)).ok_or_else(|| bad("the signer's certificate is not in the token (it was asked for)"))?;
    let for_stamping = cert.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == EXTENDED_KEY_USAGE).is_some_and(|e| {
        x509_cert::ext::pkix::ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).is_ok_and(|u| u.0.contains(&TIME_STAMPING))
    });
    if !for_stamping {
        return Err(bad("the signer's certificate is not for time-stamping"));
    }
    if !valid_now(cert) {
        return Err(bad("the signer's certificate is expired or not yet valid"));
    }
    let signed = attrs.to_der().map_err(|e| bad(&e.to_string()))?;
    if !key_verifies(cert, &alg, &digest(&alg, &signed)?, signer.signature.as_bytes())? {
        return Err(bad("it does not verify with the signer's certificate"));
    }
    if anchors.is_empty() {
        return Ok(vec![cert.clone()]);
    }
    let mut path = vec![cert.clone()];
    for _ in 0..4 {
        let at = path.last().cloned().unwrap_or_else(|| cert.clone());
        if anchors.contains(&at) {
            return Ok(path);
        }
        if let Some(anchor) = anchors.iter().find(|a| issued_by(&at, a)) {
            path.push(anchor.clone());
            return Ok(path);
        }
        match certs.iter().find(|c| **c != at && valid_now(c) && issued_by(&at, c)) {
            Some(up) => path.push(up.clone()),
            None => break,
        }
    }
    Err(bad("the time-stamp authority's certificate is not issued by a trusted one (documents.signing.tsa_trust_file)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every nonce is a DER INTEGER a strict decoder reads back as the same
    /// number: small, with leading zero bytes, with the high bit set.
    #[test]
    fn nonces_are_minimal_positive_der_integers() {
        for v in [0u64, 1, 0x7f, 0x80, 0xff, 0x0100, 0x00ff_ffff, 0x0080_0000_0000_0000, 0x7fff_ffff_ffff_ffff, u64::MAX] {
            let der = positive_int(v).and_then(|i| i.to_der()).expect("encodes");
            let back = Int::from_der(&der).expect("a strict DER decoder reads it");
            let mut bytes = [0u8; 9];
            let b = back.as_bytes();
            bytes[9 - b.len()..].copy_from_slice(b);
            assert_eq!(u128::from_be_bytes([[0u8; 7].as_slice(), &bytes].concat().try_into().unwrap()), v as u128, "{v:#x}: {der:02x?}");
            assert!(b.len() == 1 || b[0] != 0 || b[1] & 0x80 != 0, "{v:#x}: minimal: {der:02x?}");
        }
    }
}
