//! Applications to use the service (G-1..G-4, G-6, G-9): the applicant's data,
//! checked field by field; ID images sanitised and sealed on disk; staff's
//! decision, which creates or changes the account and mails the outcome.

pub mod uploads;

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::mail::{self, Recipient};
use crate::accounts::passwords;
use crate::sealed::SealKey;
use crate::store::{self, Registration};
use crate::time::{self, now};
use chrono::Datelike;
use serde::{Deserialize, Serialize};
use crate::store::Pool;
use std::path::Path;

/// The personal data of an applicant that is sealed at rest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Personal {
    pub birth_date: String,
    pub postal_code: String,
    pub prefecture: String,
    pub city: String,
    pub street: String,
    pub building: String,
    pub home_phone: String,
    pub mobile_phone: String,
    pub work_postal_code: String,
    /// The workplace address, split like the home address.
    pub work_prefecture: String,
    pub work_city: String,
    pub work_street: String,
    pub work_building: String,
    /// The workplace address as one line, as kept before it was split: read
    /// only (opening moves it to `work_street`), never written again.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub work_address: String,
    pub work_phone: String,
    pub work_name: String,
}

impl Personal {
    pub fn seal(&self, key: &SealKey, aad: &str) -> AppResult<String> {
        let json = serde_json::to_string(self).map_err(|e| AppError::Internal(e.into()))?;
        key.seal_str(&json, aad).map_err(|e| AppError::Internal(anyhow::anyhow!("sealing: {e}")))
    }

    pub fn open(key: &SealKey, sealed: Option<&str>, aad: &str) -> AppResult<Personal> {
        match sealed {
            None => Ok(Personal::default()),
            Some(s) => {
                let json = key.open_str(s, aad).map_err(|e| AppError::Internal(anyhow::anyhow!("sealed data: {e}")))?;
                let p: Personal = serde_json::from_str(&json).map_err(|e| AppError::Internal(e.into()))?;
                Ok(p.upgraded())
            }
        }
    }

    /// A workplace address kept as one line (before it was split) reads as its street line.
    pub fn upgraded(mut self) -> Personal {
        let old = std::mem::take(&mut self.work_address);
        let split_empty = [&self.work_prefecture, &self.work_city, &self.work_street, &self.work_building].iter().all(|v| v.trim().is_empty());
        if split_empty && !old.trim().is_empty() {
            self.work_street = old;
        }
        self
    }

    /// The home address on one line (postal code first), for reading.
    pub fn home_address_line(&self) -> String {
        join_nonempty(&[&self.postal_code, &self.prefecture, &self.city, &self.street, &self.building])
    }

    /// The workplace address on one line (postal code first), for reading.
    pub fn work_address_line(&self) -> String {
        join_nonempty(&[&self.work_postal_code, &self.work_prefecture, &self.work_city, &self.work_street, &self.work_building, &self.work_address])
    }
}

fn join_nonempty(parts: &[&String]) -> String {
    parts.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The associated data binding a registration's sealed data to its row.
pub fn registration_aad(id: i64) -> String {
    format!("registration:{id}:personal")
}

pub fn user_aad(id: i64) -> String {
    format!("user:{id}:personal")
}

/// A student record's birth date is sealed too (empty stays empty: unknown).
pub fn seal_birth_date(key: &SealKey, user_id: i64, birth_date: &str) -> AppResult<String> {
    if birth_date.is_empty() {
        return Ok(String::new());
    }
    key.seal_str(birth_date, &format!("user:{user_id}:birth_date")).map_err(|e| AppError::Internal(anyhow::anyhow!("sealing: {e}")))
}

pub fn open_birth_date(key: &SealKey, user_id: i64, sealed: &str) -> AppResult<String> {
    if sealed.is_empty() {
        return Ok(String::new());
    }
    key.open_str(sealed, &format!("user:{user_id}:birth_date")).map_err(|e| AppError::Internal(anyhow::anyhow!("sealed birth date: {e}")))
}

/// On upgrade from a release that kept birth dates in plain text: seals them
/// (at start, once the key is loaded; idempotent).
pub async fn seal_plain_birth_dates(pool: &Pool, key: &SealKey) -> AppResult<usize> {
    let mut tx = store::begin_write(pool).await?;
    let rows = store::plain_birth_dates(&mut tx).await?;
    for (id, user_id, plain) in &rows {
        store::set_record_birth_date(&mut tx, *id, &seal_birth_date(key, *user_id, plain)?).await?;
    }
    tx.commit().await?;
    if !rows.is_empty() {
        tracing::info!(count = rows.len(), "plain-text birth dates sealed");
    }
    Ok(rows.len())
}

pub fn image_aad(file_name: &str) -> String {
    format!("id-image:{file_name}")
}

/// Everything the applicant types on the form (G-3), as typed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApplicationForm {
    pub kind: String,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub sex: String,
    pub school_name_kanji: String,
    pub school_name_kana: String,
    pub school_name_roman: String,
    pub university_id: String,
    pub faculty_id: String,
    pub department_id: String,
    pub student_no: String,
    pub graduation_ym: String,
    pub leaving_type: String,
    pub id_document_type: String,
    pub language: String,
    #[serde(flatten)]
    pub personal: Personal,
}

pub const LEAVING_TYPES: [(&str, &str, &str); 3] =
    [("graduated", "卒業・修了", "Graduated"), ("withdrew", "退学", "Withdrew"), ("removed", "除籍", "Removed from the register")];
pub const SEXES: [(&str, &str, &str); 3] = [("male", "男", "Male"), ("female", "女", "Female"), ("unstated", "回答しない", "Prefer not to say")];
pub const ID_DOCUMENTS: [(&str, &str, &str); 5] = [
    ("driving_licence", "運転免許証", "Driving licence"),
    ("passport", "パスポート", "Passport"),
    ("mynumber", "マイナンバーカード（表面のみ）", "My Number card (front only)"),
    ("residence_card", "在留カード", "Residence card"),
    ("insurance_card", "健康保険証", "Health insurance card"),
];
pub const KINDS: [(&str, &str, &str); 2] =
    [("new", "新規", "New"), ("reapply", "再申請（メールアドレスの変更）", "Re-application (new e-mail address)")];

fn required(ja: &str, en: &str) -> String {
    format!("{ja}を入力してください。 / Enter your {en}.")
}

fn choose(ja: &str, en: &str) -> String {
    format!("{ja}を選んでください。 / Choose your {en}.")
}

fn has_name_space(s: &str) -> bool {
    let t = s.trim();
    t.contains(' ') || t.contains('\u{3000}')
}

fn katakana_only(s: &str) -> bool {
    s.chars().all(|c| matches!(c, '\u{30A0}'..='\u{30FF}' | ' ' | '\u{3000}'))
}

fn roman_only(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphabetic() || matches!(c, ' ' | '-' | '\'' | '.'))
}

fn phone_ok(s: &str) -> bool {
    s.is_empty() || (s.len() <= 20 && s.chars().all(|c| c.is_ascii_digit() || c == '-') && s.chars().filter(|c| c.is_ascii_digit()).count() >= 10)
}

fn postal_ok(s: &str) -> bool {
    let d: String = s.chars().filter(|c| *c != '-').collect();
    s.is_empty() || (d.len() == 7 && d.chars().all(|c| c.is_ascii_digit()))
}

/// Full-width digits and signs (as a Japanese keyboard types them) as ASCII.
fn half_width(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect()
}

/// The numbers of a date as typed: "1999/09/09", "1999-9-9", "1999.9.9",
/// "1999年9月9日", in full-width digits too. None unless digits between separators.
fn date_parts(s: &str) -> Option<Vec<u32>> {
    let t = half_width(s);
    let parts: Vec<&str> = t.split(|c: char| matches!(c, '/' | '-' | '.' | ' ' | '年' | '月' | '日')).filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| p.len() > 4 || !p.chars().all(|c| c.is_ascii_digit())) {
        return None;
    }
    parts.iter().map(|p| p.parse().ok()).collect()
}

/// A date as the manual writes it ("1999/09/09"; also 1999-9-9, full-width
/// digits, 1999年9月9日) in the stored form "1999-09-09"; None if it is no date.
pub fn normalize_date(s: &str) -> Option<String> {
    let parts = date_parts(s)?;
    let [y, m, d] = parts[..] else { return None };
    if !(1000..=9999).contains(&y) {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// A year and month as the manual writes it ("2015/03"; also 2015-3,
/// full-width digits, 2015年3月) in the stored form "2015-03"; None otherwise.
pub fn normalize_year_month(s: &str) -> Option<String> {
    let parts = date_parts(s)?;
    let [y, m] = parts[..] else { return None };
    ((1000..=9999).contains(&y) && (1..=12).contains(&m)).then(|| format!("{y:04}-{m:02}"))
}

/// The form's dates as stored ("1999-09-09", "2015-03") when they are dates
/// in any accepted way of writing them; left as typed otherwise (the check names them).
pub fn normalize_dates(f: &mut ApplicationForm) {
    if let Some(d) = normalize_date(&f.personal.birth_date) {
        f.personal.birth_date = d;
    }
    if let Some(ym) = normalize_year_month(&f.graduation_ym) {
        f.graduation_ym = ym;
    }
}

pub const BIRTH_DATE_FORMAT: &str =
    "生年月日を西暦の年/月/日で入力してください（例: 1999/09/09）。 / Enter your birth date in the western calendar as year/month/day, e.g. 1999/09/09.";
pub const GRADUATION_FORMAT: &str =
    "卒業（修了）年月を西暦の年/月で入力してください（例: 2015/03）。 / Enter the year and month of graduation as year/month, e.g. 2015/03.";

/// A birth date in the western calendar, not in the future.
pub fn parse_birth_date(s: &str, today: chrono::NaiveDate) -> Result<chrono::NaiveDate, String> {
    let d = normalize_date(s)
        .and_then(|n| chrono::NaiveDate::parse_from_str(&n, "%Y-%m-%d").ok())
        .ok_or_else(|| BIRTH_DATE_FORMAT.to_string())?;
    if d > today {
        return Err("生年月日が未来の日付になっています。 / The birth date is in the future.".into());
    }
    if d.year() < 1900 {
        return Err("生年月日を確認してください。 / Please check the birth date.".into());
    }
    Ok(d)
}

/// Field-by-field check of the applicant data (G-3). `in_school_only` is the
/// shorter form of an additional student ID (G-6).
pub fn validate(
    f: &ApplicationForm,
    faculties: &[store::Named],
    departments: &[store::Named],
    in_school_only: bool,
    today: chrono::NaiveDate,
) -> FieldErrors {
    let mut e = FieldErrors::new();
    let mut put = |k: &str, m: String| {
        e.entry(k.to_string()).or_insert(m);
    };
    let names = [("kanji", &f.name_kanji, &f.school_name_kanji), ("kana", &f.name_kana, &f.school_name_kana), ("roman", &f.name_roman, &f.school_name_roman)];
    if !in_school_only {
        if !KINDS.iter().any(|k| k.0 == f.kind) {
            put("kind", choose("申請区分", "application type"));
        }
        for (script, name, _) in names {
            let key = format!("name_{script}");
            let (ja, en) = match script {
                "kanji" => ("氏名（漢字）", "name in kanji"),
                "kana" => ("氏名（カナ）", "name in katakana"),
                _ => ("氏名（ローマ字）", "name in roman letters"),
            };
            if name.trim().is_empty() {
                put(&key, required(ja, en));
            } else if name.chars().count() > 60 {
                put(&key, format!("{ja}は60文字以内で入力してください。 / At most 60 characters for your {en}."));
            } else if !has_name_space(name) {
                put(&key, "姓と名の間にスペースを入れてください。 / Put a space between family name and given name.".into());
            }
        }
        if !f.name_kana.trim().is_empty() && !katakana_only(&f.name_kana) {
            put("name_kana", "カタカナで入力してください。 / Use katakana.".into());
        }
        if !f.name_roman.trim().is_empty() && !roman_only(&f.name_roman) {
            put("name_roman", "ローマ字（半角英字）で入力してください。 / Use roman letters (A-Z).".into());
        }
        if f.personal.birth_date.trim().is_empty() {
            put("birth_date", required("生年月日", "birth date"));
        } else if let Err(m) = parse_birth_date(&f.personal.birth_date, today) {
            put("birth_date", m);
        }
        if !f.sex.is_empty() && !SEXES.iter().any(|s| s.0 == f.sex) {
            put("sex", choose("性別", "sex"));
        }
        for (k, v) in [("postal_code", &f.personal.postal_code), ("work_postal_code", &f.personal.work_postal_code)] {
            if !postal_ok(v) {
                put(k, "郵便番号は7桁の数字で入力してください（例: 100-0001）。 / Enter a 7-digit postal code, e.g. 100-0001.".into());
            }
        }
        for (k, v) in [("home_phone", &f.personal.home_phone), ("mobile_phone", &f.personal.mobile_phone), ("work_phone", &f.personal.work_phone)] {
            if !phone_ok(v) {
                put(k, "電話番号は数字とハイフンで入力してください（例: 03-1234-5678）。 / Enter the phone number in digits and hyphens, e.g. 03-1234-5678.".into());
            }
        }
        for (k, v) in [("prefecture", &f.personal.prefecture), ("city", &f.personal.city), ("street", &f.personal.street),
                       ("building", &f.personal.building), ("work_prefecture", &f.personal.work_prefecture), ("work_city", &f.personal.work_city),
                       ("work_street", &f.personal.work_street), ("work_building", &f.personal.work_building),
                       ("work_address", &f.personal.work_address), ("work_name", &f.personal.work_name)] {
            if v.chars().count() > 100 {
                put(k, "100文字以内で入力してください。 / At most 100 characters.".into());
            }
        }
        if !ID_DOCUMENTS.iter().any(|d| d.0 == f.id_document_type) {
            put("id_document_type", choose("本人確認書類の種類", "type of identity document"));
        }
    }
    for (script, _, school) in names {
        if school.chars().count() > 60 {
            put(&format!("school_name_{script}"), "60文字以内で入力してください。 / At most 60 characters.".into());
        }
    }
    if !f.school_name_kana.trim().is_empty() && !katakana_only(&f.school_name_kana) {
        put("school_name_kana", "カタカナで入力してください。 / Use katakana.".into());
    }
    if !f.school_name_roman.trim().is_empty() && !roman_only(&f.school_name_roman) {
        put("school_name_roman", "ローマ字（半角英字）で入力してください。 / Use roman letters (A-Z).".into());
    }
    // university / faculty / department: each chosen, and each inside the one above
    let uni: Option<i64> = f.university_id.parse().ok();
    let fac = f.faculty_id.parse::<i64>().ok().and_then(|id| faculties.iter().find(|x| x.id == id));
    let dep = f.department_id.parse::<i64>().ok().and_then(|id| departments.iter().find(|x| x.id == id));
    if uni.is_none() {
        put("university_id", choose("大学", "university"));
    }
    match fac {
        Some(x) if Some(x.parent_id) == uni => {}
        _ => put("faculty_id", choose("学部・研究科", "faculty")),
    }
    match (dep, fac) {
        (Some(d), Some(x)) if d.parent_id == x.id => {}
        // a wrong faculty is the one message; the department follows it
        (_, Some(x)) if Some(x.parent_id) == uni => put("department_id", choose("学科・専攻", "department")),
        _ => {}
    }
    if f.student_no.chars().count() > 20 || !f.student_no.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        put("student_no", "学籍番号は20文字以内の英数字で入力してください。 / The student ID is at most 20 letters and digits.".into());
    }
    if !f.graduation_ym.trim().is_empty() && normalize_year_month(&f.graduation_ym).is_none() {
        put("graduation_ym", GRADUATION_FORMAT.into());
    }
    if !LEAVING_TYPES.iter().any(|l| l.0 == f.leaving_type) {
        put("leaving_type", choose("卒業・退学・除籍の区分", "leaving type"));
    }
    e
}

/// Copies the checked form into a registration row (personal data sealed).
pub fn apply_form(r: &mut Registration, f: &ApplicationForm, key: &SealKey) -> AppResult<()> {
    if r.kind != "add_student_id" {
        r.kind = f.kind.clone();
        r.name_kanji = f.name_kanji.trim().to_string();
        r.name_kana = f.name_kana.trim().to_string();
        r.name_roman = f.name_roman.trim().to_string();
        r.sex = f.sex.clone();
        r.id_document_type = f.id_document_type.clone();
        let mut personal = f.personal.clone().upgraded();
        if let Some(d) = normalize_date(&personal.birth_date) {
            personal.birth_date = d;
        }
        r.personal_sealed = Some(personal.seal(key, &registration_aad(r.id))?);
    }
    r.language = if f.language == "en" { "en".into() } else { "ja".into() };
    r.school_name_kanji = f.school_name_kanji.trim().to_string();
    r.school_name_kana = f.school_name_kana.trim().to_string();
    r.school_name_roman = f.school_name_roman.trim().to_string();
    r.university_id = f.university_id.parse().ok();
    r.faculty_id = f.faculty_id.parse().ok();
    r.department_id = f.department_id.parse().ok();
    r.student_no = f.student_no.trim().to_string();
    r.graduation_ym = normalize_year_month(&f.graduation_ym).unwrap_or_else(|| f.graduation_ym.trim().to_string());
    r.leaving_type = f.leaving_type.clone();
    Ok(())
}

/// The form as it was saved (to show it again for corrections).
pub fn form_of(r: &Registration, key: &SealKey) -> AppResult<ApplicationForm> {
    Ok(ApplicationForm {
        kind: r.kind.clone(),
        name_kanji: r.name_kanji.clone(),
        name_kana: r.name_kana.clone(),
        name_roman: r.name_roman.clone(),
        sex: r.sex.clone(),
        school_name_kanji: r.school_name_kanji.clone(),
        school_name_kana: r.school_name_kana.clone(),
        school_name_roman: r.school_name_roman.clone(),
        university_id: r.university_id.map(|v| v.to_string()).unwrap_or_default(),
        faculty_id: r.faculty_id.map(|v| v.to_string()).unwrap_or_default(),
        department_id: r.department_id.map(|v| v.to_string()).unwrap_or_default(),
        student_no: r.student_no.clone(),
        graduation_ym: r.graduation_ym.clone(),
        leaving_type: r.leaving_type.clone(),
        id_document_type: r.id_document_type.clone(),
        language: r.language.clone(),
        personal: Personal::open(key, r.personal_sealed.as_deref(), &registration_aad(r.id))?,
    })
}

/// Stores one sanitised image, sealed, under a generated name in `dir`.
pub fn store_image(dir: &Path, key: &SealKey, img: &uploads::CleanImage) -> AppResult<String> {
    std::fs::create_dir_all(dir).map_err(|e| AppError::Internal(anyhow::anyhow!("upload_dir {}: {e}", dir.display())))?;
    let name = uploads::generated_name();
    let sealed = key.seal(&img.bytes, image_aad(&name).as_bytes()).map_err(|e| AppError::Internal(anyhow::anyhow!("sealing: {e}")))?;
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, sealed)
        .and_then(|_| std::fs::rename(&tmp, dir.join(&name)))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("writing an upload: {e}")))?;
    Ok(name)
}

pub fn read_image(dir: &Path, key: &SealKey, file_name: &str) -> AppResult<Vec<u8>> {
    if !file_name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AppError::PageNotFound);
    }
    let sealed = std::fs::read(dir.join(file_name)).map_err(|_| AppError::PageNotFound)?;
    key.open(&sealed, image_aad(file_name).as_bytes()).map_err(|e| AppError::Internal(anyhow::anyhow!("sealed image: {e}")))
}

pub fn delete_files(dir: &Path, names: &[String]) {
    for n in names {
        if let Err(e) = std::fs::remove_file(dir.join(n)) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %n, error = %e, "could not delete an upload");
            }
        }
    }
}

/// G-1: mails a registration link, or (address known) an "already registered"
/// mail. The caller shows the same page either way.
pub async fn request_link(pool: &Pool, seal: &crate::sealed::SealKey, public_url: &str, ttl_s: i64, email: &str) -> AppResult<()> {
    let email = email.trim().to_lowercase();
    let mut tx = store::begin_write(pool).await?;
    if let Some(u) = store::user_by_email(&mut tx, &email).await? {
        let r = Recipient { name_ja: "", name_en: "", language: &u.language };
        mail::already_registered(&r, &format!("{public_url}/login"), &format!("{public_url}/password/forgot")).enqueue(&mut tx, seal, &email).await?;
    } else {
        let (token, until) = accounts::issue_token(&mut tx, "register", &email, None, "", ttl_s).await?;
        let url = format!("{public_url}/register/open?t={token}");
        mail::registration_link(&url, &time::jst_text(until)).enqueue(&mut tx, seal, &email).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Opens a registration (or resubmission) link: uses the token once and gives
/// the browser a draft key for the form. Returns the draft key.
pub async fn open_link(pool: &Pool, purpose: &str, token: &str) -> AppResult<String> {
    let mut tx = store::begin_write(pool).await?;
    let t = accounts::consume_token(&mut tx, purpose, token).await?;
    let draft = accounts::random_token();
    match purpose {
        "register" => {
            store::insert_registration_draft(&mut tx, "new", &t.email, None, &accounts::token_hash(&draft), now()).await?;
        }
        "add_student_id" => {
            store::insert_registration_draft(&mut tx, "add_student_id", &t.email, t.user_id, &accounts::token_hash(&draft), now()).await?;
        }
        _ => {
            let id: i64 = t.subject.parse().map_err(|_| AppError::Page(crate::messages::LINK_INVALID.into()))?;
            if !store::reopen_registration(&mut tx, id, &accounts::token_hash(&draft)).await? {
                return Err(AppError::Page(crate::messages::LINK_INVALID.into()));
            }
        }
    }
    tx.commit().await?;
    Ok(draft)
}

/// Draft -> pending, and the receipt mail with a link to follow the application.
pub async fn submit(pool: &Pool, seal: &crate::sealed::SealKey, public_url: &str, r: &Registration) -> AppResult<()> {
    let key = accounts::random_token();
    let mut tx = store::begin_write(pool).await?;
    if !store::submit_registration(&mut tx, r.id, &accounts::token_hash(&key), now()).await? {
        return Err(AppError::Page(crate::messages::LINK_INVALID.into()));
    }
    let (name_ja, name_en) = if r.kind == "add_student_id" {
        let recs = store::student_records(&mut tx, r.user_id.unwrap_or(0)).await?;
        recs.first().map(|x| (x.name_kanji.clone(), x.name_roman.clone())).unwrap_or_default()
    } else {
        (r.name_kanji.clone(), r.name_roman.clone())
    };
    let to = Recipient { name_ja: &name_ja, name_en: &name_en, language: &r.language };
    mail::application_received(&to, &format!("{public_url}/register/status?k={key}")).enqueue(&mut tx, seal, &r.email).await?;
    tx.commit().await?;
    Ok(())
}

/// Staff's decision on an application (G-4, G-6, G-9).
pub enum Decision {
    Approve { reapply_user: Option<i64> },
    Reject(String),
    Resubmit(String),
}

pub struct Decider<'a> {
    pub pool: &'a Pool,
    pub hasher: &'a passwords::Hasher,
    pub seal: &'a SealKey,
    pub public_url: &'a str,
    pub link_ttl_s: i64,
    pub initial_password_ttl_s: i64,
}

pub async fn decide(d: &Decider<'_>, staff: &store::Staff, client: Client<'_>, id: i64, decision: Decision) -> AppResult<()> {
    let seal = d.seal;
    // hash before the write transaction: Argon2 takes a while and needs no lock
    let initial = passwords::initial_password();
    let initial_hash = match decision {
        Decision::Approve { .. } => Some(d.hasher.hash(&initial).await?),
        _ => None,
    };
    let mut tx = store::begin_write(d.pool).await?;
    let r = store::registration(&mut tx, id).await?.filter(|r| r.status == "pending").ok_or_else(|| {
        AppError::Page("この申請はすでに処理されています。 / This application has already been decided.".into())
    })?;
    // an additional student ID is addressed by the account's own name and language
    let account = match r.user_id {
        Some(uid) => Some(store::user(&mut tx, uid).await?),
        None => None,
    };
    let to_email = account.as_ref().map(|u| u.email.clone()).unwrap_or_else(|| r.email.clone());
    let language = account.as_ref().map(|u| u.language.clone()).unwrap_or_else(|| r.language.clone());
    let (name_ja, name_en) = if r.kind == "add_student_id" {
        let recs = store::student_records(&mut tx, r.user_id.unwrap_or(0)).await?;
        recs.first().map(|x| (x.name_kanji.clone(), x.name_roman.clone())).unwrap_or_default()
    } else {
        (r.name_kanji.clone(), r.name_roman.clone())
    };
    let to = Recipient { name_ja: &name_ja, name_en: &name_en, language: &language };
    let t = now();
    let actor = format!("staff:{}", staff.login);
    let target = format!("registration:{id}");
    match decision {
        Decision::Approve { reapply_user } => {
            let hash = initial_hash.unwrap_or_default();
            let expires = t + d.initial_password_ttl_s;
            let user_id = match r.kind.as_str() {
                "add_student_id" => {
                    let uid = r.user_id.ok_or_else(|| AppError::Internal(anyhow::anyhow!("add_student_id without a user")))?;
                    insert_record(&mut tx, d.seal, &r, uid).await?;
                    mail::student_id_approved(&to, &r.student_no).enqueue(&mut tx, seal, &to_email).await?;
                    uid
                }
                "reapply" => {
                    let uid = reapply_user.ok_or_else(|| {
                        AppError::Page("再申請を移すアカウントを選んでください。 / Choose the account this re-application belongs to.".into())
                    })?;
                    // only an account the application matches (as listed to staff), never any id posted
                    if !store::reapply_candidates(&mut tx, staff.university_id, &r.name_kana, &r.student_no).await?.iter().any(|(id, ..)| *id == uid) {
                        return Err(AppError::Page(
                            "選んだアカウントはこの申請の候補ではありません。 / That account is not one this re-application matches.".into(),
                        ));
                    }
                    let old = store::user(&mut tx, uid).await?;
                    if store::user_by_email(&mut tx, &r.email).await?.is_some_and(|u| u.id != uid) {
                        return Err(AppError::Page("このメールアドレスは別のアカウントで使われています。 / This address belongs to another account.".into()));
                    }
                    store::set_initial_password(&mut tx, uid, &r.email, &hash, expires).await?;
                    store::delete_user_sessions(&mut tx, uid).await?;
                    let personal = Personal::open(d.seal, r.personal_sealed.as_deref(), &registration_aad(r.id))?;
                    store::set_user_personal(&mut tx, uid, &personal.seal(d.seal, &user_aad(uid))?).await?;
                    mail::application_approved(&to, &initial, &format!("{}/login", d.public_url), &time::jst_text(expires))
                        .enqueue(&mut tx, seal, &r.email)
                        .await?;
                    mail::email_changed_notice(&Recipient { language: &old.language, ..to }, &accounts::mask_email(&r.email))
                        .enqueue(&mut tx, seal, &old.email)
                        .await?;
                    uid
                }
                _ => {
                    if store::user_by_email(&mut tx, &r.email).await?.is_some() {
                        return Err(AppError::Page("このメールアドレスはすでに登録されています。「再申請」として扱ってください。 / This address is already registered: treat it as a re-application.".into()));
                    }
                    let personal = Personal::open(d.seal, r.personal_sealed.as_deref(), &registration_aad(r.id))?;
                    let uid = store::insert_user(
                        &mut tx,
                        &store::NewUser {
                            email: &r.email,
                            kind: "graduate",
                            password_hash: &hash,
                            second_password_hash: None,
                            must_set_password: true,
                            initial_password_expires_at: Some(expires),
                            directory: None,
                            personal_sealed: None,
                            language: &r.language,
                            now: t,
                        },
                    )
                    .await?;
                    store::set_user_personal(&mut tx, uid, &personal.seal(d.seal, &user_aad(uid))?).await?;
                    insert_record(&mut tx, d.seal, &r, uid).await?;
                    mail::application_approved(&to, &initial, &format!("{}/login", d.public_url), &time::jst_text(expires))
                        .enqueue(&mut tx, seal, &r.email)
                        .await?;
                    uid
                }
            };
            store::decide_registration(&mut tx, id, "approved", "", Some(user_id), staff.id, t).await?;
            accounts::audit(&mut tx, &actor, "registration.approve", &target, client).await?;
        }
        Decision::Reject(reason) => {
            store::decide_registration(&mut tx, id, "rejected", &reason, None, staff.id, t).await?;
            let m = if r.kind == "add_student_id" { mail::student_id_refused(&to, &r.student_no, &reason) } else { mail::application_rejected(&to, &reason) };
            m.enqueue(&mut tx, seal, &to_email).await?;
            accounts::audit(&mut tx, &actor, "registration.reject", &target, client).await?;
        }
        Decision::Resubmit(reason) => {
            store::decide_registration(&mut tx, id, "resubmit", &reason, None, staff.id, t).await?;
            let (token, until) = accounts::issue_token(&mut tx, "resubmit", &r.email, r.user_id, &id.to_string(), d.link_ttl_s).await?;
            let url = format!("{}/register/open?purpose=resubmit&t={token}", d.public_url);
            mail::application_resubmit(&to, &reason, &url, &time::jst_text(until)).enqueue(&mut tx, seal, &r.email).await?;
            accounts::audit(&mut tx, &actor, "registration.resubmit", &target, client).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_record(c: &mut store::Conn, seal: &SealKey, r: &Registration, user_id: i64) -> AppResult<()> {
    let (Some(university_id), Some(faculty_id), Some(department_id)) = (r.university_id, r.faculty_id, r.department_id) else {
        return Err(AppError::Page("申請の大学・学部・学科が未入力です。 / The application has no university, faculty or department.".into()));
    };
    // names as in school when given, else today's (for another student ID: the first record's);
    // the birth date is sealed to the account (another student ID copies the sealed value)
    let pick = |school: &str, now: &str| if school.trim().is_empty() { now.to_string() } else { school.to_string() };
    let (birth_date, kanji, kana, roman) = if r.kind == "add_student_id" {
        let first = store::student_records(c, user_id).await?.into_iter().next().unwrap_or_default();
        (first.birth_date, pick(&r.school_name_kanji, &first.name_kanji), pick(&r.school_name_kana, &first.name_kana), pick(&r.school_name_roman, &first.name_roman))
    } else {
        let birth = Personal::open(seal, r.personal_sealed.as_deref(), &registration_aad(r.id))?.birth_date;
        (seal_birth_date(seal, user_id, &birth)?, pick(&r.school_name_kanji, &r.name_kanji), pick(&r.school_name_kana, &r.name_kana), pick(&r.school_name_roman, &r.name_roman))
    };
    let graduation = (!r.graduation_ym.is_empty()).then(|| format!("{}-01", r.graduation_ym));
    store::insert_student_record(
        c,
        &store::NewStudentRecord {
            user_id,
            university_id,
            faculty_id,
            department_id,
            student_no: &r.student_no,
            name_kanji: &kanji,
            name_kana: &kana,
            name_roman: &roman,
            birth_date: &birth_date,
            leaving_type: &r.leaving_type,
            graduation_date: graduation.as_deref(),
        },
    )
    .await?;
    Ok(())
}

/// Deletes ID images kept past their retention after the decision; returns how many.
/// Days the images of a draft that was never sent are kept.
pub const DRAFT_IMAGE_DAYS: i64 = 7;

pub async fn expire_images(pool: &Pool, dir: &Path, retention_days: i64) -> AppResult<usize> {
    let t = now();
    let mut tx = store::begin_write(pool).await?;
    // a draft never sent keeps its images a week; an application nobody
    // decided, or one sent back and never resubmitted, as long as a decided one
    let names = store::expire_registration_images(&mut tx, t - retention_days * 86400, t - DRAFT_IMAGE_DAYS * 86400, t).await?;
    tx.commit().await?;
    delete_files(dir, &names);
    if !names.is_empty() {
        tracing::info!(count = names.len(), "ID images past their retention deleted");
    }
    Ok(names.len())
}

/// G-7: a user's own personal data (address, phones, workplace), checked like the registration form.
pub fn check_personal(p: &Personal) -> FieldErrors {
    let form = ApplicationForm {
        kind: "new".into(),
        name_kanji: "x x".into(),
        name_kana: "ア ア".into(),
        name_roman: "x x".into(),
        university_id: "1".into(),
        faculty_id: "1".into(),
        department_id: "1".into(),
        leaving_type: "graduated".into(),
        id_document_type: "passport".into(),
        personal: Personal { birth_date: "2000-01-01".into(), ..p.clone() },
        ..Default::default()
    };
    let one = store::Named { id: 1, parent_id: 1, code: String::new(), name_ja: String::new(), name_en: String::new() };
    let today = chrono::Utc::now().date_naive();
    validate(&form, std::slice::from_ref(&one), std::slice::from_ref(&one), false, today)
}

/// G-7: saves a user's own personal data, sealed.
pub async fn save_personal(pool: &Pool, seal: &SealKey, user: &store::User, client: Client<'_>, p: &Personal) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let uid = user.id;
    let sealed = p.seal(seal, &user_aad(uid))?;
    store::set_user_personal(&mut tx, uid, &sealed).await?;
    accounts::audit(&mut tx, &format!("user:{uid}"), "personal.change", "", client).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> (Vec<store::Named>, Vec<store::Named>) {
        let n = |id, parent_id| store::Named { id, parent_id, code: String::new(), name_ja: String::new(), name_en: String::new() };
        (vec![n(1, 1), n(2, 1)], vec![n(1, 1), n(2, 2)])
    }

    fn good() -> ApplicationForm {
        ApplicationForm {
            kind: "new".into(),
            name_kanji: "電電 太郎".into(),
            name_kana: "デンデン タロウ".into(),
            name_roman: "DENDEN Tarou".into(),
            university_id: "1".into(),
            faculty_id: "1".into(),
            department_id: "1".into(),
            leaving_type: "graduated".into(),
            id_document_type: "passport".into(),
            personal: Personal { birth_date: "1999-09-09".into(), ..Default::default() },
            ..Default::default()
        }
    }

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap_or_default()
    }

    #[test]
    fn a_complete_form_passes_and_each_broken_field_is_named() {
        let (f, d) = lists();
        assert!(validate(&good(), &f, &d, false, today()).is_empty());
        type Breaker = Box<dyn Fn(&mut ApplicationForm)>;
        let cases: Vec<(&str, Breaker)> = vec![
            ("name_kanji", Box::new(|x| x.name_kanji.clear())),
            ("name_kanji", Box::new(|x| x.name_kanji = "電電太郎".into())),
            ("name_kana", Box::new(|x| x.name_kana = "でんでん たろう".into())),
            ("name_roman", Box::new(|x| x.name_roman = "電電 Tarou".into())),
            ("birth_date", Box::new(|x| x.personal.birth_date = "2099-01-01".into())),
            ("birth_date", Box::new(|x| x.personal.birth_date = "1999/13/01".into())),
            ("department_id", Box::new(|x| x.department_id = "2".into())),
            ("faculty_id", Box::new(|x| x.faculty_id = "9".into())),
            ("leaving_type", Box::new(|x| x.leaving_type.clear())),
            ("id_document_type", Box::new(|x| x.id_document_type = "library_card".into())),
            ("postal_code", Box::new(|x| x.personal.postal_code = "12-34".into())),
            ("mobile_phone", Box::new(|x| x.personal.mobile_phone = "call me".into())),
            ("graduation_ym", Box::new(|x| x.graduation_ym = "2015-13".into())),
            ("kind", Box::new(|x| x.kind = "other".into())),
        ];
        for (field, break_it) in cases {
            let mut x = good();
            break_it(&mut x);
            let e = validate(&x, &f, &d, false, today());
            assert_eq!(e.keys().collect::<Vec<_>>(), vec![field], "{e:?}");
            let m = &e[field];
            assert!(m.contains(" / ") && !m.split(" / ").next().unwrap_or("").is_ascii(), "{m}");
        }
    }

    #[test]
    fn the_manuals_date_formats_are_read_and_stored_one_way() {
        for typed in ["1999/09/09", "1999-9-9", "１９９９／０９／０９", "1999.09.09", "1999年9月9日", " 1999/9/09 "] {
            assert_eq!(normalize_date(typed).as_deref(), Some("1999-09-09"), "{typed}");
        }
        for typed in ["2015/03", "2015-3", "２０１５／０３", "2015年3月", "2015-03"] {
            assert_eq!(normalize_year_month(typed).as_deref(), Some("2015-03"), "{typed}");
        }
        for bad in ["", "1999/02/30", "99/09/09", "1999/09", "abc", "1999/9/9/9"] {
            assert_eq!(normalize_date(bad), None, "{bad}");
        }
        for bad in ["", "2015/13", "2015", "15/03", "2015/03/01"] {
            assert_eq!(normalize_year_month(bad), None, "{bad}");
        }
        let (f, d) = lists();
        let mut x = good();
        x.personal.birth_date = "1999/09/09".into();
        x.graduation_ym = "2015/03".into();
        assert!(validate(&x, &f, &d, false, today()).is_empty());
        normalize_dates(&mut x);
        assert_eq!((x.personal.birth_date.as_str(), x.graduation_ym.as_str()), ("1999-09-09", "2015-03"));
        x.graduation_ym = "March 2015".into();
        let e = validate(&x, &f, &d, false, today());
        assert!(e["graduation_ym"].contains("2015/03"), "the message names the expected format: {e:?}");
    }

    #[test]
    fn a_workplace_address_kept_on_one_line_reads_as_its_street() {
        let old = Personal { work_address: "大阪市北区梅田1-1".into(), ..Default::default() }.upgraded();
        assert_eq!((old.work_street.as_str(), old.work_address.as_str()), ("大阪市北区梅田1-1", ""));
        let json = serde_json::to_string(&old).unwrap_or_default();
        assert!(!json.contains("work_address"), "never written again: {json}");
    }

    #[test]
    fn future_birth_date_is_refused_with_its_own_message() {
        let m = parse_birth_date("2027-01-01", today()).expect_err("future");
        assert!(m.contains("future"));
        assert!(parse_birth_date("2026-11-23", today()).is_ok());
    }
}
