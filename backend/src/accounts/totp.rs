//! Staff second factor: time-based one-time passwords (TOTP, RFC 6238) as
//! shown by authenticator apps, and one-time recovery codes for staff who
//! have lost their phone.
//!
//! Parameters are the ones every authenticator app supports: HMAC-SHA1, a
//! 30-second step, 6 digits. [`verify`] accepts the previous, current and
//! next step (clock drift) and refuses any step not later than the last one
//! used, so a code cannot be replayed. The caller stores the step returned by
//! [`verify`] with the account.
//!
//! Secrets and recovery codes are produced here; hashing recovery codes and
//! storing secrets is done by the caller.

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha1::Sha1;
use std::collections::HashSet;
use subtle::ConstantTimeEq;

/// Length of a generated secret in bytes (160 bits, the HMAC-SHA1 block
/// size recommended by RFC 4226).
pub const SECRET_LEN: usize = 20;
/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Symbols of recovery codes: digits and lower-case letters without the
/// easily confused `0`, `o`, `1`, `l` and `i`.
pub const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// RFC 4648 base32 alphabet.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new random secret of [`SECRET_LEN`] bytes from the operating system's
/// random source.
pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_LEN];
    OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret in RFC 4648 base32, upper case, without `=` padding, as
/// authenticator apps expect it (typed in by hand or inside the QR code).
pub fn secret_base32(secret: &[u8]) -> String {
    let mut out = String::with_capacity(secret.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in secret {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 0x1f) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 0x1f) as usize]));
    }
    out
}

/// Decodes an RFC 4648 base32 secret as typed by a person: case does not
/// matter, white space anywhere is ignored, trailing `=` padding is allowed.
///
/// `None` for an empty secret, a character outside the alphabet, `=` in the
/// middle, or a length no base32 encoding can have.
pub fn parse_base32(s: &str) -> Option<Vec<u8>> {
    let cleaned: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let end = cleaned.iter().rposition(|&b| b != b'=').map_or(0, |p| p + 1);
    let symbols = cleaned.get(..end)?;
    if symbols.is_empty() || !s.is_ascii() {
        return None;
    }
    // 5 bytes make 8 symbols; a final group of 1, 3 or 6 symbols cannot occur.
    if matches!(symbols.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for &symbol in symbols {
        let value = match symbol.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// The time step that `unix_time` (seconds) falls in.
pub fn step_at(unix_time: i64) -> i64 {
    unix_time.div_euclid(STEP_SECONDS)
}

/// HOTP (RFC 4226) value for one counter: HMAC-SHA1 and dynamic truncation,
/// reduced to `digits` decimal digits (1 to 9).
fn hotp(secret: &[u8], counter: i64, digits: u32) -> Option<u32> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).ok()?;
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash.last().copied()? & 0x0f);
    let word: [u8; 4] = hash.get(offset..offset + 4)?.try_into().ok()?;
    let binary = u32::from_be_bytes(word) & 0x7fff_ffff;
    Some(binary % 10u32.pow(digits.clamp(1, 9)))
}

/// The code of `digits` digits for the step `unix_time` falls in.
fn code_at_digits(secret: &[u8], unix_time: i64, digits: u32) -> String {
    let digits = digits.clamp(1, 9);
    match hotp(secret, step_at(unix_time), digits) {
        Some(value) => format!("{value:0width$}", width = digits as usize),
        None => String::new(),
    }
}

/// The 6-digit code an authenticator app shows at `unix_time` (seconds).
pub fn code_at(secret: &[u8], unix_time: i64) -> String {
    code_at_digits(secret, unix_time, DIGITS)
}

/// Checks a code typed by a staff member at `now` (Unix seconds).
///
/// Spaces are removed (apps show "123 456"), and full-width digits as
/// typed with a Japanese input method are read as digits. Anything else
/// than exactly 6 digits is refused. The code may belong to the previous,
/// current or next step; a step at or before `last_used_step` is refused, so
/// that a code already used (or an older one) cannot be replayed. Codes are
/// compared in constant time. An empty secret never verifies.
///
/// Returns the matched step, which the caller stores as the new
/// `last_used_step`.
pub fn verify(secret: &[u8], code: &str, now: i64, last_used_step: Option<i64>) -> Option<i64> {
    if secret.is_empty() {
        return None;
    }
    let mut typed = String::with_capacity(DIGITS as usize);
    for c in code.chars() {
        match c {
            ' ' | '\t' | '\u{3000}' => {}
            '0'..='9' => typed.push(c),
            '０'..='９' => typed.push(char::from(b'0' + (u32::from(c) - u32::from('０')) as u8)),
            _ => return None,
        }
    }
    if typed.len() != DIGITS as usize {
        return None;
    }
    let current = step_at(now);
    let mut matched = None;
    // Every candidate step is computed and compared, without stopping early.
    for step in [current - 1, current, current + 1] {
        if step < 0 || last_used_step.is_some_and(|last| step <= last) {
            continue;
        }
        let Some(value) = hotp(secret, step, DIGITS) else {
            continue;
        };
        let expected = format!("{value:0width$}", width = DIGITS as usize);
        if bool::from(expected.as_bytes().ct_eq(typed.as_bytes())) {
            matched = Some(step);
        }
    }
    matched
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `otpauth://` URI to put in the QR code that authenticator apps scan
/// ("Key Uri Format"): label `Issuer:account`, both percent-encoded (a
/// Japanese university name becomes UTF-8 percent escapes).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        account = percent_encode(account),
        secret = secret_base32(secret),
    )
}

/// `n` distinct random recovery codes such as `k7p2-9xq4-m3tz`: three groups
/// of four symbols from [`RECOVERY_ALPHABET`] (about 59 bits each).
pub fn recovery_codes(n: usize) -> Vec<String> {
    let mut seen = HashSet::with_capacity(n);
    let mut codes = Vec::with_capacity(n);
    while codes.len() < n {
        let mut code = String::with_capacity(14);
        for i in 0..12 {
            if i > 0 && i % 4 == 0 {
                code.push('-');
            }
            let index = OsRng.gen_range(0..RECOVERY_ALPHABET.len());
            code.push(char::from(RECOVERY_ALPHABET[index]));
        }
        if seen.insert(code.clone()) {
            codes.push(code);
        }
    }
    codes
}

/// A recovery code as typed by a person, in the form [`recovery_codes`]
/// produces once dashes are removed: lower case, without white space and
/// dashes. Full-width letters and digits are read as ASCII, and the dash-like
/// characters a Japanese input method produces (`ー`, `－`, `‐`, `−`) are
/// removed like `-`.
pub fn normalize_recovery(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            // Full-width ASCII block (！ to ～) to ASCII.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | 'ー' | '‐' | '−' | '–' | '—'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238 Appendix B, SHA1 column.
    const RFC_VECTORS: [(i64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_sha1_vectors_8_digits() {
        for (t, expected) in RFC_VECTORS {
            assert_eq!(code_at_digits(RFC_SECRET, t, 8), expected, "t = {t}");
        }
    }

    #[test]
    fn six_digit_codes_are_last_six_of_rfc_vectors() {
        for (t, expected) in RFC_VECTORS {
            let code = code_at(RFC_SECRET, t);
            assert_eq!(code.len(), 6);
            assert_eq!(code, &expected[2..], "t = {t}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        // RFC 4226 Appendix D, counters 0..9.
        let expected = [755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489];
        for (counter, value) in expected.into_iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as i64, 6), Some(value));
        }
    }

    #[test]
    fn leading_zeros_are_kept() {
        // 07081804 in the RFC: the 6-digit code is 081804.
        assert_eq!(code_at(RFC_SECRET, 1_111_111_109), "081804");
    }

    #[test]
    fn generated_secret_is_20_random_bytes() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn base32_rfc4648_vectors() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(secret_base32(raw), encoded);
            if !raw.is_empty() {
                assert_eq!(parse_base32(encoded).as_deref(), Some(raw));
            }
        }
        assert_eq!(secret_base32(RFC_SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn base32_round_trip_of_random_secrets() {
        for _ in 0..50 {
            let secret = generate_secret();
            let encoded = secret_base32(&secret);
            assert_eq!(encoded.len(), 32);
            assert!(!encoded.contains('='));
            assert_eq!(parse_base32(&encoded), Some(secret));
        }
    }

    #[test]
    fn base32_parsing_is_loose_about_case_spaces_and_padding() {
        let expected = Some(b"foobar".to_vec());
        assert_eq!(parse_base32("mzxw6ytboi"), expected);
        assert_eq!(parse_base32("MZXW 6YTB OI"), expected);
        assert_eq!(parse_base32(" mzxw\t6ytb oi \n"), expected);
        assert_eq!(parse_base32("MZXW6YTBOI======"), expected);
    }

    #[test]
    fn base32_parsing_refuses_bad_input() {
        assert_eq!(parse_base32(""), None);
        assert_eq!(parse_base32("   "), None);
        assert_eq!(parse_base32("===="), None);
        assert_eq!(parse_base32("MZXW0YTB"), None); // 0 is not base32
        assert_eq!(parse_base32("MZXW1YTB"), None); // nor 1
        assert_eq!(parse_base32("MZ=XW6YTB"), None); // padding inside
        assert_eq!(parse_base32("MZXW6YTBO"), None); // 9 symbols: impossible length
        assert_eq!(parse_base32("ＭＺＸＷ６ＹＴＢ"), None);
    }

    #[test]
    fn verify_accepts_current_and_neighbouring_steps() {
        let secret = generate_secret();
        let now = 1_700_000_015;
        let step = step_at(now);
        assert_eq!(verify(&secret, &code_at(&secret, now), now, None), Some(step));
        assert_eq!(verify(&secret, &code_at(&secret, now - 30), now, None), Some(step - 1));
        assert_eq!(verify(&secret, &code_at(&secret, now + 30), now, None), Some(step + 1));
    }

    #[test]
    fn verify_refuses_steps_outside_the_window() {
        let secret = RFC_SECRET;
        let now = 1_234_567_890;
        for other in [now - 60, now + 60, now - 3600] {
            let code = code_at(secret, other);
            // Skip the (one in a million) chance of a coincidence inside the window.
            if [-30, 0, 30].iter().any(|d| code_at(secret, now + d) == code) {
                continue;
            }
            assert_eq!(verify(secret, &code, now, None), None);
        }
    }

    #[test]
    fn verify_refuses_replay_and_older_steps() {
        let secret = generate_secret();
        let now = 1_700_000_000;
        let code = code_at(&secret, now);
        let step = verify(&secret, &code, now, None);
        assert_eq!(step, Some(step_at(now)));
        // The same code again, a few seconds later in the same step.
        assert_eq!(verify(&secret, &code, now + 5, step), None);
        // The previous step's code is older than the one used.
        assert_eq!(verify(&secret, &code_at(&secret, now - 30), now, step), None);
        // The next step's code is still fine.
        let next = code_at(&secret, now + 30);
        assert_eq!(verify(&secret, &next, now + 30, step), Some(step_at(now) + 1));
    }

    #[test]
    fn verify_trims_spaces_and_reads_full_width_digits() {
        let now = 59;
        // RFC: 94287082, 6 digits 287082.
        assert_eq!(verify(RFC_SECRET, "287082", now, None), Some(1));
        assert_eq!(verify(RFC_SECRET, " 287 082 ", now, None), Some(1));
        assert_eq!(verify(RFC_SECRET, "２８７０８２", now, None), Some(1));
        assert_eq!(verify(RFC_SECRET, "２８７\u{3000}０８２", now, None), Some(1));
    }

    #[test]
    fn verify_refuses_malformed_codes() {
        let now = 59;
        for bad in ["", "      ", "28708", "2870821", "94287082", "28708a", "-87082", "287-082", "+28708", "٢٨٧٠٨٢"]
        {
            assert_eq!(verify(RFC_SECRET, bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn verify_refuses_an_empty_secret() {
        let code = code_at(b"", 1_000);
        assert_eq!(code.len(), 6);
        assert_eq!(verify(b"", &code, 1_000, None), None);
    }

    #[test]
    fn verify_near_the_epoch_does_not_use_negative_steps() {
        // At t = 10 the window is steps -1, 0, 1; -1 is never valid.
        assert_eq!(verify(RFC_SECRET, &code_at(RFC_SECRET, 10), 10, None), Some(0));
        assert_eq!(verify(RFC_SECRET, &code_at(RFC_SECRET, 10), 10, Some(0)), None);
    }

    #[test]
    fn otpauth_uri_format() {
        let uri = otpauth_uri("Shomei Univ", "staff@example.ac.jp", RFC_SECRET);
        assert_eq!(
            uri,
            "otpauth://totp/Shomei%20Univ:staff%40example.ac.jp?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Shomei%20Univ&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn otpauth_uri_encodes_japanese_and_reserved_characters() {
        let uri = otpauth_uri("証明大学", "a:b&c=d?", b"x");
        assert!(uri.starts_with("otpauth://totp/%E8%A8%BC%E6%98%8E%E5%A4%A7%E5%AD%A6:a%3Ab%26c%3Dd%3F?secret=PA&"));
        assert!(uri.contains("&issuer=%E8%A8%BC%E6%98%8E%E5%A4%A7%E5%AD%A6&"));
        assert!(uri.is_ascii());
    }

    #[test]
    fn recovery_codes_shape_and_alphabet() {
        let codes = recovery_codes(10);
        assert_eq!(codes.len(), 10);
        let distinct: HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            let groups: Vec<_> = code.split('-').collect();
            assert_eq!(groups.len(), 3);
            for group in groups {
                assert_eq!(group.len(), 4);
                assert!(group.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)), "{code}");
            }
            assert!(!code.contains(['0', 'o', '1', 'l', 'i']));
            assert_eq!(normalize_recovery(code), code.replace('-', ""));
        }
        assert!(recovery_codes(0).is_empty());
    }

    #[test]
    fn recovery_alphabet_has_no_ambiguous_symbols() {
        assert_eq!(RECOVERY_ALPHABET.len(), 31);
        for b in b"0o1li" {
            assert!(!RECOVERY_ALPHABET.contains(b));
        }
        let distinct: HashSet<_> = RECOVERY_ALPHABET.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_ALPHABET.len());
    }

    #[test]
    fn normalize_recovery_accepts_loose_typing() {
        for typed in [
            "k7p2-9xq4-m3tz",
            "K7P2-9XQ4-M3TZ",
            "k7p2 9xq4 m3tz",
            " k7p29xq4m3tz ",
            "k7p2 - 9xq4 - m3tz",
            "Ｋ７Ｐ２－９ＸＱ４－Ｍ３ＴＺ",
            "k7p2ー9xq4ーm3tz",
            "k7p2\u{3000}9xq4\u{3000}m3tz",
        ] {
            assert_eq!(normalize_recovery(typed), "k7p29xq4m3tz", "{typed:?}");
        }
        assert_ne!(normalize_recovery("k7p2-9xq4-m3ty"), "k7p29xq4m3tz");
    }
}
