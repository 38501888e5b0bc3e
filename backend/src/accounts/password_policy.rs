//! Password rules from the universities' manuals, configurable per
//! university: "at least 8 single-byte characters, letters and digits, upper
//! and lower case mixed", plus an upper limit of 128 characters, a list of
//! common passwords, and checks that a new password differs from the old or
//! initial one and from the other password of the account.
//!
//! [`PasswordPolicy::check`] and [`PasswordPolicy::check_new`] return every
//! rule broken, so that a form can show all of them at once; each [`Rule`]
//! has its message in Japanese and English. Nothing here trims, truncates or
//! otherwise changes a password: what is checked is what the caller hashes.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

/// Well-known common passwords, one a line; `#` starts a comment line.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// One university's password rules. Missing fields in configuration take
/// the defaults, which are the manuals' rules; unknown fields are refused so
/// that a misspelt setting is not silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values, not bytes). Default 8.
    pub min_len: usize,
    /// Most characters. Longer passwords are refused, never truncated.
    /// Default 128.
    pub max_len: usize,
    /// At least one upper-case letter. Default true.
    pub require_upper: bool,
    /// At least one lower-case letter. Default true.
    pub require_lower: bool,
    /// At least one digit. Default true.
    pub require_digit: bool,
    /// Only "single-byte characters": printable ASCII from `!` to `~`
    /// (0x21 to 0x7E), so no spaces and no full-width characters.
    /// Default true.
    pub ascii_only: bool,
    /// Refuse well-known common passwords, compared case-insensitively.
    /// Default true.
    pub reject_common: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len: 8,
            max_len: 128,
            require_upper: true,
            require_lower: true,
            require_digit: true,
            ascii_only: true,
            reject_common: true,
        }
    }
}

/// A password rule that a candidate breaks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// Fewer than `min` characters.
    TooShort {
        /// The policy's minimum.
        min: usize,
    },
    /// More than `max` characters.
    TooLong {
        /// The policy's maximum.
        max: usize,
    },
    /// A character outside printable ASCII (a space, a full-width or other
    /// multi-byte character, a control character).
    NotAscii,
    /// No upper-case letter.
    NoUpper,
    /// No lower-case letter.
    NoLower,
    /// No digit.
    NoDigit,
    /// On the list of common passwords.
    Common,
    /// Equal to the current (or initial) password.
    SameAsOld,
    /// Equal to the account's other password (the password when setting the
    /// second password, and the other way round).
    SameAsOtherPassword,
    /// Equal to the password of the person's university account.
    SameAsUniversityPassword,
    /// The confirmation entry differs from the new password.
    Mismatch,
}

impl Rule {
    /// The message in Japanese.
    pub fn ja(&self) -> String {
        match self {
            Rule::TooShort { min } => format!("パスワードは{min}文字以上にしてください。"),
            Rule::TooLong { max } => format!("パスワードは{max}文字以内にしてください。"),
            Rule::NotAscii => {
                "パスワードには半角の英字・数字・記号だけを使ってください（空白や全角文字は使えません）。".to_string()
            }
            Rule::NoUpper => "英大文字（A〜Z）を1文字以上含めてください。".to_string(),
            Rule::NoLower => "英小文字（a〜z）を1文字以上含めてください。".to_string(),
            Rule::NoDigit => "数字（0〜9）を1文字以上含めてください。".to_string(),
            Rule::Common => "よく使われていて推測されやすいパスワードです。別のパスワードにしてください。".to_string(),
            Rule::SameAsOld => "現在のパスワードとは別のパスワードにしてください。".to_string(),
            Rule::SameAsOtherPassword => "パスワードと第2パスワードには別々の値を設定してください。".to_string(),
            Rule::SameAsUniversityPassword => {
                "大学のアカウントと同じパスワードは使えません。別のパスワードにしてください。".to_string()
            }
            Rule::Mismatch => "確認のため入力した値が一致しません。".to_string(),
        }
    }

    /// The message in English (ASCII only).
    pub fn en(&self) -> String {
        match self {
            Rule::TooShort { min } => format!("Use at least {min} characters."),
            Rule::TooLong { max } => format!("Use at most {max} characters."),
            Rule::NotAscii => {
                "Use only single-byte (half-width) letters, digits and symbols: no spaces or full-width characters."
                    .to_string()
            }
            Rule::NoUpper => "Include at least one upper-case letter (A-Z).".to_string(),
            Rule::NoLower => "Include at least one lower-case letter (a-z).".to_string(),
            Rule::NoDigit => "Include at least one digit (0-9).".to_string(),
            Rule::Common => "This password is too common and easy to guess: choose another one.".to_string(),
            Rule::SameAsOld => "Choose a password different from your current one.".to_string(),
            Rule::SameAsOtherPassword => "The password and the second password must be different.".to_string(),
            Rule::SameAsUniversityPassword => {
                "Do not use the password of your university account: choose another one.".to_string()
            }
            Rule::Mismatch => "The two entries do not match.".to_string(),
        }
    }

    /// Both languages in the backend's catalogue style, "日本語 / English".
    pub fn message(&self) -> String {
        format!("{} / {}", self.ja(), self.en())
    }
}

impl fmt::Display for Rule {
    /// Same as [`Rule::message`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.ja(), self.en())
    }
}

/// The common-password list, lower-cased.
fn common_passwords() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_lowercase)
            .collect()
    })
}

/// Whether `candidate` is on the common-password list, ignoring case.
pub fn is_common(candidate: &str) -> bool {
    common_passwords().contains(&candidate.to_lowercase())
}

impl PasswordPolicy {
    /// Every rule of this policy that `candidate` breaks, in a fixed order
    /// (length, characters, upper, lower, digit, common); empty when the
    /// password is acceptable. Length counts characters, not bytes.
    pub fn check(&self, candidate: &str) -> Vec<Rule> {
        let mut broken = Vec::new();
        let len = candidate.chars().count();
        if len < self.min_len {
            broken.push(Rule::TooShort { min: self.min_len });
        }
        if len > self.max_len {
            broken.push(Rule::TooLong { max: self.max_len });
        }
        if self.ascii_only && !candidate.chars().all(|c| matches!(c, '\x21'..='\x7e')) {
            broken.push(Rule::NotAscii);
        }
        // Letters and digits are recognised beyond ASCII, so that someone who
        // typed "Ｐａｓｓ１２３４" is told about full-width characters only,
        // not also that upper case and digits are missing.
        if self.require_upper && !candidate.chars().any(char::is_uppercase) {
            broken.push(Rule::NoUpper);
        }
        if self.require_lower && !candidate.chars().any(char::is_lowercase) {
            broken.push(Rule::NoLower);
        }
        if self.require_digit && !candidate.chars().any(char::is_numeric) {
            broken.push(Rule::NoDigit);
        }
        if self.reject_common && is_common(candidate) {
            broken.push(Rule::Common);
        }
        broken
    }

    /// Checks a new password entered twice: the rules of [`check`], then
    /// [`Rule::Mismatch`] when `confirm` differs, then, for each pair of
    /// `forbidden_equal`, its rule when `new` equals the given value, e.g.
    /// `[(old_pw, Rule::SameAsOld), (second_pw, Rule::SameAsOtherPassword)]`.
    ///
    /// Comparisons are exact (case and spaces count). Empty forbidden values
    /// stand for "not set" and are skipped; a rule is reported once even if
    /// several values give it.
    ///
    /// [`check`]: PasswordPolicy::check
    pub fn check_new(&self, new: &str, confirm: &str, forbidden_equal: &[(&str, Rule)]) -> Vec<Rule> {
        let mut broken = self.check(new);
        if new != confirm {
            broken.push(Rule::Mismatch);
        }
        for (value, rule) in forbidden_equal {
            if !value.is_empty() && new == *value && !broken.contains(rule) {
                broken.push(rule.clone());
            }
        }
        broken
    }

    /// A one-sentence description of this policy in Japanese, for the hint
    /// next to a password field.
    pub fn hint_ja(&self) -> String {
        let mut kinds = Vec::new();
        if self.require_upper {
            kinds.push("英大文字");
        }
        if self.require_lower {
            kinds.push("英小文字");
        }
        if self.require_digit {
            kinds.push("数字");
        }
        let mut hint = format!("{}〜{}文字", self.min_len, self.max_len);
        if self.ascii_only {
            hint.push_str("の半角英数字・記号");
        }
        hint.push('で');
        match kinds.as_slice() {
            [] => {}
            [one] => hint.push_str(&format!("、{one}を1文字以上含めて")),
            _ => hint.push_str(&format!("、{}をそれぞれ1文字以上含めて", kinds.join("・"))),
        }
        hint.push_str("設定してください。");
        hint
    }

    /// A one-sentence description of this policy in English, for the hint
    /// next to a password field.
    pub fn hint_en(&self) -> String {
        let mut kinds = Vec::new();
        if self.require_upper {
            kinds.push("an upper-case letter");
        }
        if self.require_lower {
            kinds.push("a lower-case letter");
        }
        if self.require_digit {
            kinds.push("a digit");
        }
        let chars = if self.ascii_only { "single-byte characters" } else { "characters" };
        let mut hint = format!("Use {} to {} {chars}", self.min_len, self.max_len);
        match kinds.as_slice() {
            [] => {}
            [one] => hint.push_str(&format!(", including at least {one}")),
            [init @ .., last] => hint.push_str(&format!(", including at least {} and {last}", init.join(", "))),
        }
        hint.push('.');
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "Hanako2024pass";

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    #[test]
    fn defaults_are_the_manuals_rules() {
        let p = policy();
        assert_eq!((p.min_len, p.max_len), (8, 128));
        assert!(p.require_upper && p.require_lower && p.require_digit && p.ascii_only && p.reject_common);
    }

    #[test]
    fn good_password_passes() {
        assert_eq!(policy().check(GOOD), vec![]);
        assert_eq!(policy().check_new(GOOD, GOOD, &[("Old2023pass", Rule::SameAsOld)]), vec![]);
    }

    #[test]
    fn each_rule_broken_alone() {
        let p = policy();
        let cases: [(&str, Rule); 8] = [
            ("Hana20p", Rule::TooShort { min: 8 }),
            ("hanako2024pass", Rule::NoUpper),
            ("HANAKO2024PASS", Rule::NoLower),
            ("HanakoYamadaPass", Rule::NoDigit),
            ("Hanako 2024pass", Rule::NotAscii),
            ("Hanako2024pass\u{3000}", Rule::NotAscii),
            ("Hanako2024päss", Rule::NotAscii),
            ("Passw0rd", Rule::Common),
        ];
        for (candidate, rule) in cases {
            assert_eq!(p.check(candidate), vec![rule], "{candidate:?}");
        }
        let long = format!("Aa1{}", "x".repeat(126));
        assert_eq!(long.chars().count(), 129);
        assert_eq!(p.check(&long), vec![Rule::TooLong { max: 128 }]);
    }

    #[test]
    fn length_limits_are_inclusive() {
        let p = policy();
        assert_eq!(p.check("Hanako20"), vec![]);
        let max = format!("Aa1{}", "x".repeat(125));
        assert_eq!(max.chars().count(), 128);
        assert_eq!(p.check(&max), vec![]);
    }

    #[test]
    fn each_equality_rule_alone() {
        let p = policy();
        let forbidden = [
            ("Old2023pass", Rule::SameAsOld),
            ("Initial9xyz", Rule::SameAsOld),
            ("Second2024pw", Rule::SameAsOtherPassword),
            ("Campus2024pw", Rule::SameAsUniversityPassword),
        ];
        for (value, rule) in &forbidden {
            assert_eq!(p.check_new(value, value, &forbidden), vec![rule.clone()], "{value}");
        }
        assert_eq!(p.check_new(GOOD, "Hanako2024Pass", &forbidden), vec![Rule::Mismatch]);
    }

    #[test]
    fn equality_is_exact() {
        let p = policy();
        let forbidden = [("Old2023pass", Rule::SameAsOld)];
        assert_eq!(p.check_new("old2023Pass", "old2023Pass", &forbidden), vec![]);
        assert_eq!(p.check_new("Old2023pass!", "Old2023pass!", &forbidden), vec![]);
    }

    #[test]
    fn confirmation_is_not_trimmed() {
        let p = PasswordPolicy { ascii_only: false, ..policy() };
        assert_eq!(p.check_new(GOOD, &format!("{GOOD} "), &[]), vec![Rule::Mismatch]);
        assert_eq!(p.check_new(&format!(" {GOOD}"), GOOD, &[]), vec![Rule::Mismatch]);
    }

    #[test]
    fn empty_forbidden_values_are_skipped_and_rules_not_repeated() {
        let p = policy();
        assert_eq!(p.check_new("", "", &[("", Rule::SameAsOtherPassword)]), p.check(""));
        let forbidden = [(GOOD, Rule::SameAsOld), (GOOD, Rule::SameAsOld)];
        assert_eq!(p.check_new(GOOD, GOOD, &forbidden), vec![Rule::SameAsOld]);
    }

    #[test]
    fn all_broken_rules_are_returned() {
        let p = policy();
        assert_eq!(p.check("abc"), vec![Rule::TooShort { min: 8 }, Rule::NoUpper, Rule::NoDigit]);
        assert_eq!(p.check(""), vec![Rule::TooShort { min: 8 }, Rule::NoUpper, Rule::NoLower, Rule::NoDigit]);
        assert_eq!(
            p.check_new("password", "passw0rd", &[("password", Rule::SameAsOld)]),
            vec![Rule::NoUpper, Rule::NoDigit, Rule::Common, Rule::Mismatch, Rule::SameAsOld]
        );
    }

    #[test]
    fn too_long_is_reported_not_truncated() {
        let p = policy();
        let mut a: Vec<char> = format!("Aa1{}", "x".repeat(197)).chars().collect();
        assert_eq!(a.len(), 200);
        assert_eq!(p.check(&a.iter().collect::<String>()), vec![Rule::TooLong { max: 128 }]);
        let first: String = a.iter().collect();
        a[149] = 'y';
        let second: String = a.iter().collect();
        assert_ne!(first, second);
        // The two differ in the confirmation check: nothing is cut off.
        let loose = PasswordPolicy { max_len: 1000, ..policy() };
        assert_eq!(loose.check_new(&first, &second, &[]), vec![Rule::Mismatch]);
        assert_eq!(loose.check_new(&first, &first, &[(&second, Rule::SameAsOld)]), vec![]);
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let p = PasswordPolicy { ascii_only: false, ..policy() };
        // 8 characters, 20 bytes.
        assert_eq!(p.check("Aa1はなこさん"), vec![]);
        assert_eq!(p.check("Aa1はなこさ"), vec![Rule::TooShort { min: 8 }]);
        let long = format!("Aa1{}", "あ".repeat(126));
        assert_eq!(p.check(&long), vec![Rule::TooLong { max: 128 }]);
    }

    #[test]
    fn full_width_is_not_ascii() {
        assert_eq!(policy().check("Ｐａｓｓ１２３４ａ"), vec![Rule::NotAscii]);
    }

    #[test]
    fn control_characters_and_spaces_are_not_ascii() {
        let p = policy();
        for bad in ["Hanako2024pass\n", "Hanako\t2024pass", "\u{7f}Hanako2024pass", " Hanako2024pass"] {
            assert_eq!(p.check(bad), vec![Rule::NotAscii], "{bad:?}");
        }
        // All printable ASCII symbols are fine.
        assert_eq!(p.check("Aa1!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), vec![]);
    }

    #[test]
    fn requirements_can_be_switched_off() {
        let no_upper = PasswordPolicy { require_upper: false, ..policy() };
        assert_eq!(no_upper.check("hanako2024pass"), vec![]);
        let no_lower = PasswordPolicy { require_lower: false, ..policy() };
        assert_eq!(no_lower.check("HANAKO2024PASS"), vec![]);
        let no_digit = PasswordPolicy { require_digit: false, ..policy() };
        assert_eq!(no_digit.check("HanakoYamadaPass"), vec![]);
        let unicode = PasswordPolicy { ascii_only: false, ..policy() };
        assert_eq!(unicode.check("Hanako 2024 pass"), vec![]);
        let common_ok = PasswordPolicy { reject_common: false, ..policy() };
        assert_eq!(common_ok.check("Passw0rd"), vec![]);
        let longer = PasswordPolicy { min_len: 12, max_len: 64, ..policy() };
        assert_eq!(longer.check("Hanako2024p"), vec![Rule::TooShort { min: 12 }]);
        assert_eq!(longer.check(&format!("Aa1{}", "x".repeat(62))), vec![Rule::TooLong { max: 64 }]);
    }

    #[test]
    fn common_passwords_that_pass_composition_are_caught() {
        let p = policy();
        for candidate in [
            "Password1",
            "Passw0rd",
            "Qwerty123",
            "Abc12345",
            "Welcome1",
            "P@ssw0rd",
            "Aa123456",
            "Abcd1234",
            "Password123",
            "Zaq12wsx",
            "1Qaz2wsx",
            "Iloveyou1",
            "Sakura123",
        ] {
            assert_eq!(p.check(candidate), vec![Rule::Common], "{candidate}");
        }
    }

    #[test]
    fn common_check_ignores_case() {
        let p = PasswordPolicy { require_upper: false, require_lower: false, require_digit: false, ..policy() };
        for candidate in ["password", "PASSWORD", "PassWord", "12345678", "qwerty123", "ILOVEYOU", "pAsSw0Rd"] {
            assert_eq!(p.check(candidate), vec![Rule::Common], "{candidate}");
        }
        assert!(!is_common(GOOD));
        assert!(!is_common(""));
    }

    #[test]
    fn common_list_is_well_formed() {
        let set = common_passwords();
        assert!((200..=600).contains(&set.len()), "{} entries", set.len());
        for line in COMMON_PASSWORDS.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            assert!(line.chars().all(|c| matches!(c, '\x21'..='\x7e')), "{line:?}");
        }
        // The list must not catch the example of a good password.
        assert!(!set.contains("hanako2024pass"));
    }

    #[test]
    fn messages_in_both_languages() {
        let rules = [
            Rule::TooShort { min: 8 },
            Rule::TooLong { max: 128 },
            Rule::NotAscii,
            Rule::NoUpper,
            Rule::NoLower,
            Rule::NoDigit,
            Rule::Common,
            Rule::SameAsOld,
            Rule::SameAsOtherPassword,
            Rule::SameAsUniversityPassword,
            Rule::Mismatch,
        ];
        for rule in &rules {
            let (ja, en) = (rule.ja(), rule.en());
            assert!(!ja.is_ascii() && ja.ends_with('。'), "{ja}");
            assert!(en.is_ascii() && en.ends_with('.'), "{en}");
            assert_eq!(rule.message(), format!("{ja} / {en}"));
            assert_eq!(rule.to_string(), rule.message());
            let (ja2, en2) = rule.message().split_once(" / ").map(|(a, b)| (a.to_string(), b.to_string())).unwrap();
            assert_eq!((ja2, en2), (ja, en));
        }
        assert_eq!(Rule::TooShort { min: 8 }.ja(), "パスワードは8文字以上にしてください。");
        assert_eq!(Rule::TooShort { min: 8 }.en(), "Use at least 8 characters.");
        assert_eq!(Rule::TooShort { min: 12 }.en(), "Use at least 12 characters.");
        assert_eq!(Rule::Mismatch.ja(), "確認のため入力した値が一致しません。");
        assert_eq!(Rule::Mismatch.en(), "The two entries do not match.");
    }

    #[test]
    fn hints_describe_the_policy() {
        assert_eq!(
            policy().hint_ja(),
            "8〜128文字の半角英数字・記号で、英大文字・英小文字・数字をそれぞれ1文字以上含めて設定してください。"
        );
        assert_eq!(
            policy().hint_en(),
            "Use 8 to 128 single-byte characters, including at least an upper-case letter, a lower-case letter and a digit."
        );
        let loose = PasswordPolicy { require_upper: false, require_lower: false, ascii_only: false, ..policy() };
        assert_eq!(loose.hint_ja(), "8〜128文字で、数字を1文字以上含めて設定してください。");
        assert_eq!(loose.hint_en(), "Use 8 to 128 characters, including at least a digit.");
    }

    #[test]
    fn serde_defaults_and_unknown_fields() {
        let p: PasswordPolicy = serde_json::from_str(r#"{"min_len": 12, "require_upper": false}"#).unwrap();
        assert_eq!(p, PasswordPolicy { min_len: 12, require_upper: false, ..policy() });
        let empty: PasswordPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, policy());
        assert!(serde_json::from_str::<PasswordPolicy>(r#"{"min_length": 12}"#).is_err());
        let round: PasswordPolicy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(round, p);
    }
}
