//! On-campus print numbers (SPEC O-6, DECISIONS "Print number").
//!
//! 12 digits: 11 random digits followed by a Damm check digit. The Damm
//! algorithm (a totally anti-symmetric quasigroup of order 10) detects every
//! single wrong digit and every swap of two neighbouring digits, which Luhn
//! does not (it misses 09 <-> 90).

use rand::Rng;
use std::fmt;
use std::str::FromStr;

/// Number of digits in a print number, check digit included.
pub const LEN: usize = 12;

const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/// The Damm interim digit of a digit sequence; 0 means "valid" when the
/// sequence already ends with its check digit.
pub fn damm(digits: &[u8]) -> u8 {
    digits.iter().fold(0u8, |interim, &d| DAMM[interim as usize][d as usize])
}

/// A syntactically valid print number (right length, digits only, check digit correct).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrintNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrintNumberError {
    #[error("a print number has {LEN} digits, this one has {0}")]
    WrongLength(usize),
    #[error("a print number has digits only")]
    NotDigits,
    #[error("the check digit does not match: a digit is wrong or two are swapped")]
    CheckDigit,
}

impl PrintNumber {
    /// A fresh random number: 11 random digits and the check digit.
    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut digits: Vec<u8> = (0..LEN - 1).map(|_| rng.gen_range(0..10u8)).collect();
        digits.push(damm(&digits));
        PrintNumber(digits.iter().map(|d| char::from(b'0' + d)).collect())
    }

    /// Parses what a person typed: spaces and hyphens between digits are ignored,
    /// full-width digits (as typed with a Japanese IME) are accepted.
    pub fn parse(input: &str) -> Result<Self, PrintNumberError> {
        let mut digits = Vec::with_capacity(LEN);
        for c in input.chars() {
            match c {
                ' ' | '-' | '\u{3000}' | '\u{2010}'..='\u{2015}' | '\u{30FC}' | '\u{FF0D}' => continue,
                '0'..='9' => digits.push(c as u8 - b'0'),
                '\u{FF10}'..='\u{FF19}' => digits.push((c as u32 - 0xFF10) as u8),
                _ => return Err(PrintNumberError::NotDigits),
            }
        }
        if digits.len() != LEN {
            return Err(PrintNumberError::WrongLength(digits.len()));
        }
        if damm(&digits) != 0 {
            return Err(PrintNumberError::CheckDigit);
        }
        Ok(PrintNumber(digits.iter().map(|d| char::from(b'0' + d)).collect()))
    }

    /// The bare 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Grouped in fours for people: `1234 5678 9012`.
    pub fn grouped(&self) -> String {
        let b = self.0.as_bytes();
        b.chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl PrintNumber {
    /// Only the last four digits, for people who must not be able to print it: `•••• •••• 9012`.
    pub fn masked(&self) -> String {
        format!("•••• •••• {}", &self.0[LEN - 4..])
    }
}

impl fmt::Display for PrintNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.grouped())
    }
}

impl fmt::Debug for PrintNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrintNumber({})", self.grouped())
    }
}

impl FromStr for PrintNumber {
    type Err = PrintNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for PrintNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PrintNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PrintNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_numbers_validate_and_have_twelve_digits() {
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            let n = PrintNumber::generate(&mut rng);
            assert_eq!(n.as_str().len(), LEN);
            assert_eq!(PrintNumber::parse(n.as_str()), Ok(n.clone()));
            assert_eq!(PrintNumber::parse(&n.grouped()), Ok(n));
        }
    }

    #[test]
    fn every_single_wrong_digit_is_caught() {
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let n = PrintNumber::generate(&mut rng);
            let digits: Vec<u8> = n.as_str().bytes().map(|b| b - b'0').collect();
            for pos in 0..LEN {
                for wrong in 0..10u8 {
                    if wrong == digits[pos] {
                        continue;
                    }
                    let mut d = digits.clone();
                    d[pos] = wrong;
                    let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
                    assert_eq!(PrintNumber::parse(&s), Err(PrintNumberError::CheckDigit), "{s}");
                }
            }
        }
    }

    #[test]
    fn every_neighbour_swap_is_caught() {
        // Exhaustive over all digit pairs at every position of a fixed prefix.
        for a in 0..10u8 {
            for b in 0..10u8 {
                if a == b {
                    continue;
                }
                for pos in 0..LEN - 2 {
                    let mut d = vec![3u8; LEN - 1];
                    d[pos] = a;
                    d[pos + 1] = b;
                    d.push(damm(&d));
                    d.swap(pos, pos + 1);
                    assert_ne!(damm(&d), 0, "swap {a}{b} at {pos} undetected");
                }
                // swapping the last data digit with the check digit
                let mut d = vec![5u8; LEN - 2];
                d.push(a);
                let c = damm(&d);
                d.push(c);
                if a != c {
                    d.swap(LEN - 2, LEN - 1);
                    assert_ne!(damm(&d), 0);
                }
            }
        }
    }

    #[test]
    fn what_people_type_is_understood() {
        let n = PrintNumber::generate(&mut rand::thread_rng());
        let full_width: String = n
            .as_str()
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap_or(c))
            .collect();
        assert_eq!(PrintNumber::parse(&full_width), Ok(n.clone()));
        let hyphens = format!("{}-{}-{}", &n.as_str()[..4], &n.as_str()[4..8], &n.as_str()[8..]);
        assert_eq!(PrintNumber::parse(&hyphens), Ok(n));
        assert_eq!(PrintNumber::parse("1234"), Err(PrintNumberError::WrongLength(4)));
        assert_eq!(PrintNumber::parse("12345678901a"), Err(PrintNumberError::NotDigits));
    }
}
