//! Personal data encrypted at rest with XChaCha20-Poly1305.
//!
//! A sealed value is `1 version byte (1) ‖ 24-byte random nonce ‖ ciphertext ‖
//! 16-byte tag`. The random 192-bit nonce makes reuse practically impossible
//! however many values one key seals.
//!
//! Every value is sealed with "additional authenticated data" naming where it
//! lives, e.g. `registration:42:birth_date`: the AAD is not stored, but opening
//! needs the same AAD, so a ciphertext copied into another row or column (by
//! someone with write access to the database but not the key) fails to open
//! instead of showing one applicant's data as another's.
//!
//! [`SealKey::seal_str`] and [`SealKey::open_str`] carry the sealed bytes as
//! standard base64 for `TEXT` columns.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use std::fmt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The only format so far.
const VERSION: u8 = 1;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Base64 (standard alphabet) with or without the trailing `=`, for keys.
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What went wrong loading a key or opening a value. No variant ever contains
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Neither an inline key nor a key file was configured.
    #[error("no encryption key configured: set the key (64 hex digits or base64 of 32 bytes) or a key file")]
    NoKey,
    /// Both were configured, so which one is meant is unclear.
    #[error("both an inline encryption key and a key file are configured; set only one")]
    BothKeyAndFile,
    /// The key file could not be read.
    #[error("cannot read encryption key file {path}: {source}")]
    KeyFile {
        /// The file named in the configuration.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The key is neither 64 hex digits nor base64.
    #[error("encryption key{origin} is neither 64 hex digits nor standard base64 ({len} characters given)")]
    KeyEncoding {
        /// `""` or `" in file <path>"`.
        origin: String,
        /// Characters given (after trimming whitespace).
        len: usize,
    },
    /// The key decodes to other than 32 bytes.
    #[error("encryption key{origin} decodes to {got} bytes; it must be 32 bytes (64 hex digits, or 44 base64 characters)")]
    KeyLength {
        /// `""` or `" in file <path>"`.
        origin: String,
        /// Bytes it decoded to.
        got: usize,
    },
    /// Shorter than version, nonce and tag together: not a sealed value.
    #[error("sealed value is too short ({0} bytes)")]
    TooShort(usize),
    /// The version byte is not one this code writes.
    #[error("sealed value has unknown format version {0}")]
    UnknownVersion(u8),
    /// Wrong key, wrong AAD, or the value was altered.
    #[error("sealed value does not open: wrong key or AAD, or altered")]
    Open,
    /// Encryption failed (only for plaintexts of hundreds of gigabytes).
    #[error("sealing failed")]
    Seal,
    /// A sealed text value is not valid base64.
    #[error("sealed text is not valid base64")]
    Base64,
    /// The opened value is not UTF-8 text (it was sealed as bytes).
    #[error("opened value is not UTF-8 text")]
    NotUtf8,
}

/// The key that seals and opens personal data. Its `Debug` shows nothing of
/// the key; its memory is wiped when dropped.
#[derive(Clone)]
pub struct SealKey {
    cipher: XChaCha20Poly1305,
    /// Derived from the data key: keys the hashes of short secrets (recovery codes).
    mac_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// Loads the key from configuration: `key` inline, or the contents of
    /// `key_file`; exactly one of them must be set (an empty or blank `key`
    /// counts as unset). Either is 32 bytes written as 64 hex digits or as
    /// standard base64 (padding optional); surrounding whitespace is ignored.
    pub fn from_config(key: &str, key_file: Option<&Path>) -> Result<SealKey, SealError> {
        let inline = key.trim();
        match (inline.is_empty(), key_file) {
            (true, None) => Err(SealError::NoKey),
            (false, Some(_)) => Err(SealError::BothKeyAndFile),
            (false, None) => Self::parse(inline, String::new()),
            (true, Some(path)) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
                    SealError::KeyFile {
                        path: path.to_path_buf(),
                        source,
                    }
                })?);
                Self::parse(text.trim(), format!(" in file {}", path.display()))
            }
        }
    }

    /// Parses 64 hex digits or base64 of 32 bytes.
    fn parse(text: &str, origin: String) -> Result<SealKey, SealError> {
        let bytes: Zeroizing<Vec<u8>> =
            if text.len() == 2 * KEY_LEN && text.bytes().all(|c| c.is_ascii_hexdigit()) {
                Zeroizing::new(hex::decode(text).map_err(|_| SealError::KeyEncoding {
                    origin: origin.clone(),
                    len: text.len(),
                })?)
            } else {
                Zeroizing::new(BASE64_ANY_PADDING.decode(text).map_err(|_| {
                    SealError::KeyEncoding {
                        origin: origin.clone(),
                        len: text.len(),
                    }
                })?)
            };
        if bytes.len() != KEY_LEN {
            return Err(SealError::KeyLength {
                origin,
                got: bytes.len(),
            });
        }
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> SealKey {
        use sha2::Digest;
        let derived = sha2::Sha256::new().chain_update(b"shomei keyed hash\0").chain_update(bytes).finalize();
        let mut mac_key = Zeroizing::new([0u8; 32]);
        mac_key.copy_from_slice(&derived);
        SealKey {
            cipher: XChaCha20Poly1305::new(Key::from_slice(bytes)),
            mac_key,
        }
    }

    /// hex HMAC-SHA256 of `value` for `purpose`, under a key derived from the
    /// data key: a stolen database alone cannot test guesses against it (a
    /// plain SHA-256 of a short code can be).
    pub fn keyed_hash(&self, purpose: &str, value: &str) -> String {
        use hmac::Mac;
        match <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(self.mac_key.as_ref()) {
            Ok(mut mac) => {
                mac.update(purpose.as_bytes());
                mac.update(b"\0");
                mac.update(value.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// A new random key, and its 64 hex digits to put in the configuration or
    /// key file.
    pub fn generate() -> (SealKey, String) {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut());
        (
            Self::from_bytes(bytes.as_ref()),
            hex::encode(bytes.as_ref()),
        )
    }

    /// Encrypts `plaintext` bound to `aad` (e.g. `registration:42:birth_date`).
    /// Sealing the same value twice gives different bytes.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Decrypts a value from [`SealKey::seal`] given the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(SealError::TooShort(sealed.len()));
        }
        let (version, rest) = sealed.split_at(1);
        if version[0] != VERSION {
            return Err(SealError::UnknownVersion(version[0]));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| {
                tracing::warn!(aad = %String::from_utf8_lossy(aad), "sealed value failed to open");
                SealError::Open
            })
    }

    /// [`SealKey::seal`] for text, as standard base64 for a `TEXT` column.
    pub fn seal_str(&self, plaintext: &str, aad: &str) -> Result<String, SealError> {
        Ok(STANDARD.encode(self.seal(plaintext.as_bytes(), aad.as_bytes())?))
    }

    /// Opens a value from [`SealKey::seal_str`] given the same `aad`.
    pub fn open_str(&self, sealed: &str, aad: &str) -> Result<String, SealError> {
        let bytes = STANDARD
            .decode(sealed.trim())
            .map_err(|_| SealError::Base64)?;
        let plain = self.open(&bytes, aad.as_bytes())?;
        String::from_utf8(plain).map_err(|_| SealError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key() -> SealKey {
        SealKey::from_config(HEX_KEY, None).unwrap()
    }

    #[test]
    fn roundtrip_bytes_and_text() {
        let k = key();
        let sealed = k
            .seal(b"1990-04-01", b"registration:42:birth_date")
            .unwrap();
        assert_eq!(sealed[0], 1);
        assert_eq!(sealed.len(), 1 + 24 + 10 + 16);
        assert_eq!(
            k.open(&sealed, b"registration:42:birth_date").unwrap(),
            b"1990-04-01"
        );

        let text = k.seal_str("山田 太郎", "registration:42:name").unwrap();
        assert!(!text.contains("山田"));
        assert_eq!(
            k.open_str(&text, "registration:42:name").unwrap(),
            "山田 太郎"
        );

        let empty = k.seal(b"", b"x").unwrap();
        assert_eq!(k.open(&empty, b"x").unwrap(), b"");
    }

    #[test]
    fn nonces_differ_each_time() {
        let k = key();
        let a = k.seal(b"same", b"aad").unwrap();
        let b = k.seal(b"same", b"aad").unwrap();
        assert_ne!(a[1..25], b[1..25]);
        assert_ne!(a, b);
    }

    #[test]
    fn tampering_is_detected() {
        let k = key();
        let sealed = k.seal(b"secret value", b"aad").unwrap();
        for i in 1..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(
                matches!(k.open(&t, b"aad"), Err(SealError::Open)),
                "byte {i}"
            );
        }
        let mut v = sealed.clone();
        v[0] = 2;
        assert!(matches!(
            k.open(&v, b"aad"),
            Err(SealError::UnknownVersion(2))
        ));
        assert!(matches!(
            k.open(&sealed[..40], b"aad"),
            Err(SealError::TooShort(40))
        ));
        assert!(matches!(
            k.open(&sealed[..sealed.len() - 1], b"aad"),
            Err(SealError::Open)
        ));
        assert!(matches!(
            k.open_str("not base64!", "aad"),
            Err(SealError::Base64)
        ));
    }

    #[test]
    fn ciphertext_cannot_move_between_rows_or_columns() {
        let k = key();
        let sealed = k
            .seal_str("1990-04-01", "registration:42:birth_date")
            .unwrap();
        assert!(matches!(
            k.open_str(&sealed, "registration:43:birth_date"),
            Err(SealError::Open)
        ));
        assert!(matches!(
            k.open_str(&sealed, "registration:42:phone"),
            Err(SealError::Open)
        ));
        assert!(matches!(k.open_str(&sealed, ""), Err(SealError::Open)));
        assert!(k.open_str(&sealed, "registration:42:birth_date").is_ok());
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = key().seal(b"data", b"aad").unwrap();
        let (other, _) = SealKey::generate();
        assert!(matches!(other.open(&sealed, b"aad"), Err(SealError::Open)));
    }

    #[test]
    fn generated_key_reloads_from_its_hex() {
        let (k, hex_text) = SealKey::generate();
        assert_eq!(hex_text.len(), 64);
        let sealed = k.seal(b"data", b"aad").unwrap();
        let reloaded = SealKey::from_config(&hex_text, None).unwrap();
        assert_eq!(reloaded.open(&sealed, b"aad").unwrap(), b"data");
        assert_ne!(SealKey::generate().1, hex_text);
    }

    #[test]
    fn hex_and_base64_give_the_same_key() {
        let bytes = hex::decode(HEX_KEY).unwrap();
        let b64 = STANDARD.encode(&bytes);
        assert_eq!(b64.len(), 44);
        let sealed = key().seal(b"x", b"a").unwrap();
        for text in [
            b64.clone(),
            b64.trim_end_matches('=').to_owned(),
            format!("  {b64}\n"),
            HEX_KEY.to_uppercase(),
            format!("\t{HEX_KEY}\r\n"),
        ] {
            let k = SealKey::from_config(&text, None).unwrap();
            assert_eq!(k.open(&sealed, b"a").unwrap(), b"x", "{text:?}");
        }
    }

    #[test]
    fn key_from_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{HEX_KEY}").unwrap();
        let k = SealKey::from_config("", Some(f.path())).unwrap();
        let sealed = key().seal(b"x", b"a").unwrap();
        assert_eq!(k.open(&sealed, b"a").unwrap(), b"x");
        // Blank inline key plus a file is fine; a real inline key plus a file is not.
        assert!(SealKey::from_config("  ", Some(f.path())).is_ok());
        assert!(matches!(
            SealKey::from_config(HEX_KEY, Some(f.path())),
            Err(SealError::BothKeyAndFile)
        ));

        let missing = Path::new("/nonexistent/seal.key");
        let e = SealKey::from_config("", Some(missing)).unwrap_err();
        assert!(matches!(e, SealError::KeyFile { .. }));
        assert!(e.to_string().contains("/nonexistent/seal.key"));

        let mut short = tempfile::NamedTempFile::new().unwrap();
        write!(short, "{}", &HEX_KEY[..32]).unwrap();
        let e = SealKey::from_config("", Some(short.path())).unwrap_err();
        assert!(matches!(e, SealError::KeyLength { got: 24, .. }), "{e}");
        assert!(e.to_string().contains("in file"));
    }

    #[test]
    fn bad_keys_are_clear_errors() {
        assert!(matches!(
            SealKey::from_config("", None),
            Err(SealError::NoKey)
        ));
        assert!(matches!(
            SealKey::from_config(" \n", None),
            Err(SealError::NoKey)
        ));
        // 32 hex digits = 16 bytes, read as base64 that is 24 bytes: wrong length either way.
        let e = SealKey::from_config(&HEX_KEY[..32], None).unwrap_err();
        assert!(matches!(e, SealError::KeyLength { got: 24, .. }));
        assert!(e.to_string().contains("must be 32 bytes"));
        // Base64 of 16 bytes.
        let e = SealKey::from_config(&STANDARD.encode([7u8; 16]), None).unwrap_err();
        assert!(matches!(e, SealError::KeyLength { got: 16, .. }));
        // 64 characters, not all hex, not base64.
        let bad = format!("{}zz!!", &HEX_KEY[..60]);
        let e = SealKey::from_config(&bad, None).unwrap_err();
        assert!(matches!(e, SealError::KeyEncoding { len: 64, .. }));
        // An error never repeats the key.
        assert!(!e.to_string().contains(&HEX_KEY[..60]));
        assert!(matches!(
            SealKey::from_config("change me", None),
            Err(SealError::KeyEncoding { .. })
        ));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", key()), "SealKey(..)");
    }
}
