//! Money is an integer number of yen.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Mul, Neg, Sub};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Yen(pub i64);

impl Yen {
    pub const ZERO: Yen = Yen(0);
}

impl fmt::Display for Yen {
    /// `¥1,234` (and `-¥1,234`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let digits = self.0.unsigned_abs().to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        write!(f, "{sign}¥{grouped}")
    }
}

impl Add for Yen {
    type Output = Yen;
    fn add(self, o: Yen) -> Yen {
        Yen(self.0 + o.0)
    }
}
impl AddAssign for Yen {
    fn add_assign(&mut self, o: Yen) {
        self.0 += o.0;
    }
}
impl Sub for Yen {
    type Output = Yen;
    fn sub(self, o: Yen) -> Yen {
        Yen(self.0 - o.0)
    }
}
impl Neg for Yen {
    type Output = Yen;
    fn neg(self) -> Yen {
        Yen(-self.0)
    }
}
impl Mul<i64> for Yen {
    type Output = Yen;
    fn mul(self, n: i64) -> Yen {
        Yen(self.0 * n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn displays_with_thousands_separators() {
        assert_eq!(Yen(0).to_string(), "¥0");
        assert_eq!(Yen(300).to_string(), "¥300");
        assert_eq!(Yen(1000).to_string(), "¥1,000");
        assert_eq!(Yen(1234567).to_string(), "¥1,234,567");
        assert_eq!(Yen(-4500).to_string(), "-¥4,500");
    }
}
