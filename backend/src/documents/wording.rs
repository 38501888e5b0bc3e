//! The certifying sentence of a certificate (D-2): each certificate type may
//! carry its own wording in Japanese and English with placeholders such as
//! `{graduation_date}`, filled from the holder's record when the order is
//! placed; a type without its own wording gets the built-in sentence for the
//! holder's leaving type.

/// Placeholders a wording may use, with what they become.
pub const PLACEHOLDERS: [(&str, &str, &str); 8] = [
    ("name", "氏名", "the holder's name"),
    ("student_no", "学籍番号", "student number"),
    ("university", "大学名", "university"),
    ("faculty", "学部", "faculty"),
    ("department", "学科", "department"),
    ("degree", "学位", "degree"),
    ("admission_date", "入学年月日", "date of admission"),
    ("graduation_date", "卒業年月日", "date of graduation"),
];

/// What fills the placeholders, per language.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub name: String,
    pub student_no: String,
    pub university: String,
    pub faculty: String,
    pub department: String,
    pub degree: String,
    pub admission_date: String,
    pub graduation_date: String,
}

impl Values {
    fn get(&self, key: &str) -> Option<&str> {
        Some(match key {
            "name" => &self.name,
            "student_no" => &self.student_no,
            "university" => &self.university,
            "faculty" => &self.faculty,
            "department" => &self.department,
            "degree" => &self.degree,
            "admission_date" => &self.admission_date,
            "graduation_date" => &self.graduation_date,
            _ => return None,
        })
    }
}

/// The placeholders of `template` in order; an error names an unknown one or
/// an unclosed brace (in both languages).
fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("「{」が閉じていません。 / A \"{\" is not closed.".into());
        };
        let key = &after[..close];
        if !PLACEHOLDERS.iter().any(|p| p.0 == key) {
            let known: Vec<String> = PLACEHOLDERS.iter().map(|p| format!("{{{}}}", p.0)).collect();
            return Err(format!("{{{key}}} は使えません。使えるのは {} です。 / {{{key}}} is not a placeholder: use {}.", known.join(" "), known.join(" ")));
        }
        out.push(key);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("「}」に対応する「{」がありません。 / A \"}\" has no \"{\".".into());
    }
    Ok(out)
}

/// Checks a wording typed in the catalogue editor.
pub fn check(template: &str) -> Result<(), String> {
    if template.chars().count() > 600 {
        return Err("文言は600文字以内にしてください。 / Keep the wording within 600 characters.".into());
    }
    placeholders(template).map(|_| ())
}

/// The wording with its placeholders filled (an unknown one is left as it is:
/// [`check`] refuses those before they are saved).
pub fn fill(template: &str, values: &Values) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| values.get(&after[..close]).map(|v| (close, v))) {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/// `YYYY-MM-DD` as "2023年3月25日" (empty stays empty).
pub fn date_ja(date: &str) -> String {
    match parts(date) {
        Some((y, m, d)) => format!("{y}年{m}月{d}日"),
        None => date.to_string(),
    }
}

/// `YYYY-MM-DD` as "March 25, 2023" (empty stays empty).
pub fn date_en(date: &str) -> String {
    match parts(date) {
        Some((y, m, d)) => format!("{} {d}, {y}", MONTHS.get(m as usize - 1).copied().unwrap_or("")),
        None => date.to_string(),
    }
}

fn parts(date: &str) -> Option<(u32, u32, u32)> {
    let mut it = date.trim().split('-').map(|p| p.parse::<u32>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    (1..=12).contains(&m).then_some((y, m, d))
}

/// The built-in sentence for a leaving type, with placeholders.
pub fn default_for(leaving_type: &str) -> (&'static str, &'static str) {
    match leaving_type {
        "enrolled" => (
            "上記の者は、{university}{faculty}{department}に在学していることを証明する。",
            "This is to certify that the above-named person is enrolled in the {department}, {faculty}, {university}.",
        ),
        "withdrew" => (
            "上記の者は、{university}{faculty}{department}に在籍し、{graduation_date}に退学したことを証明する。",
            "This is to certify that the above-named person was enrolled in the {department}, {faculty}, {university}, and withdrew on {graduation_date}.",
        ),
        "removed" => (
            "上記の者は、{university}{faculty}{department}に在籍し、{graduation_date}に除籍されたことを証明する。",
            "This is to certify that the above-named person was enrolled in the {department}, {faculty}, {university}, and was removed from the register on {graduation_date}.",
        ),
        _ => (
            "上記の者は、{graduation_date} {university}{faculty}{department}を卒業したことを証明する。",
            "This is to certify that the above-named person graduated from the {department}, {faculty}, {university} on {graduation_date}.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values { name: "山田 花子".into(), university: "証明大学".into(), faculty: "文学部".into(), department: "日本文学科".into(), graduation_date: "2023年3月25日".into(), ..Values::default() }
    }

    #[test]
    fn placeholders_are_filled_and_text_is_kept() {
        let (ja, _) = default_for("graduated");
        assert_eq!(fill(ja, &values()), "上記の者は、2023年3月25日 証明大学文学部日本文学科を卒業したことを証明する。");
        assert_eq!(fill("{name}様 {{x} }", &values()), "山田 花子様 {{x} }");
    }

    #[test]
    fn unknown_or_broken_placeholders_are_named() {
        assert!(check("{university}を{graduation_date}に").is_ok());
        let e = check("{grad_date}に卒業").expect_err("unknown");
        assert!(e.contains("{grad_date} is not a placeholder") && e.contains("{graduation_date}"), "{e}");
        assert!(check("{university").expect_err("open").contains("not closed"));
        assert!(check("university}").expect_err("close").contains("has no"));
        assert!(check(&"あ".repeat(601)).is_err());
        for l in ["graduated", "withdrew", "removed", "enrolled"] {
            let (ja, en) = default_for(l);
            assert!(check(ja).is_ok() && check(en).is_ok(), "{l}");
        }
    }

    #[test]
    fn dates_read_naturally_in_each_language() {
        assert_eq!(date_ja("2023-03-05"), "2023年3月5日");
        assert_eq!(date_en("2023-03-05"), "March 5, 2023");
        assert_eq!(date_en(""), "");
    }
}
