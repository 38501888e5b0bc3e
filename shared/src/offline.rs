//! The offline copy names no print number (a number is a bearer credential):
//! each job carries `number_mac`, an HMAC of its number under a key only the
//! station's credential gives, and the station finds a typed number by its
//! MAC. A stolen journal without the station's secrets shows no number.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// hex SHA-256 of a station credential: what the backend keeps of it.
pub fn credential_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// hex HMAC-SHA256 of a print number (12 digits) under the key derived from
/// the station credential's hash.
pub fn number_mac(credential_hash_hex: &str, number: &str) -> String {
    let key = Sha256::new().chain_update(b"shomei offline print numbers\0").chain_update(credential_hash_hex.as_bytes()).finalize();
    match Hmac::<Sha256>::new_from_slice(&key) {
        Ok(mut mac) => {
            mac.update(number.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_depends_on_the_number_and_the_station() {
        let h = credential_hash("token-a");
        assert_eq!(h.len(), 64);
        let m = number_mac(&h, "123456789012");
        assert_eq!(m.len(), 64);
        assert_eq!(m, number_mac(&h, "123456789012"));
        assert_ne!(m, number_mac(&h, "123456789013"));
        assert_ne!(m, number_mac(&credential_hash("token-b"), "123456789012"));
        assert!(!m.contains("123456789012"));
    }
}
