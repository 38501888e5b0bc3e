//! The registrar's school register (D-3): for each student number, the names
//! as in school, faculty and department, degree, admission and graduation
//! dates and leaving type, imported from CSV (every bad row named by line and
//! column, nothing half-imported), kept by version. Certificates print from
//! the current version; staff reviewing an application see where it differs.

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult};
use crate::sealed::SealKey;
use crate::store;
use crate::time::now;
use crate::store::Pool;

pub const COLUMNS: [&str; 12] = [
    "student_no", "name_kanji", "name_kana", "name_roman", "birth_date", "faculty_code", "department_code", "degree_ja", "degree_en",
    "admission_date", "graduation_date", "leaving_type",
];
const LEAVING: [&str; 4] = ["graduated", "withdrew", "removed", "enrolled"];

/// One student number's entry in a version of the register (birth date open).
pub use crate::store::RegisterEntry as Entry;

/// An entry with its faculty and department names, as certificates print them.
#[derive(Debug, Clone)]
pub struct Record {
    pub entry: Entry,
    pub faculty_ja: String,
    pub faculty_en: String,
    pub department_ja: String,
    pub department_en: String,
}

fn err(line: usize, col: &str, ja: &str, en: &str) -> String {
    format!("{line}行目（{col}）: {ja} / line {line} ({col}): {en}")
}

fn real_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10
}

/// Parses and checks the CSV against the faculty and department codes
/// (`(faculty, department)` pairs that exist). Any error: nothing is imported.
pub fn parse(text: &str, departments: &[(String, String)]) -> Result<Vec<Entry>, Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rd = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = match rd.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(_) => return Err(vec!["1行目: 見出し行を読めません。 / line 1: the header row cannot be read".into()]),
    };
    let missing: Vec<String> = COLUMNS.iter().filter(|c| !headers.iter().any(|h| h == *c)).map(|c| err(1, c, "列がありません。", "column missing")).collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let col = |n: &str| headers.iter().position(|h| h == n);
    let (mut rows, mut errors) = (Vec::<Entry>::new(), Vec::new());
    let mut seen = std::collections::HashMap::new();
    for rec in rd.records() {
        let Ok(rec) = rec else {
            errors.push("行を読めません（引用符を確認してください）。 / a row cannot be read (check quotes)".into());
            continue;
        };
        let line = rec.position().map(|p| crate::accounts::directory::line_at(text, p.byte() as usize)).unwrap_or(0);
        if rec.len() != headers.len() {
            errors.push(format!("{line}行目: 列の数が{}個です（見出しは{}個）。 / line {line}: {} columns where the header has {}", rec.len(), headers.len(), rec.len(), headers.len()));
            continue;
        }
        let get = |n: &str| col(n).and_then(|i| rec.get(i)).map(|s| s.trim().to_string()).unwrap_or_default();
        let e = Entry {
            student_no: get("student_no"),
            name_kanji: get("name_kanji"),
            name_kana: get("name_kana"),
            name_roman: get("name_roman"),
            birth_date: get("birth_date"),
            faculty_code: get("faculty_code"),
            department_code: get("department_code"),
            degree_ja: get("degree_ja"),
            degree_en: get("degree_en"),
            admission_date: get("admission_date"),
            graduation_date: get("graduation_date"),
            leaving_type: get("leaving_type"),
        };
        let before = errors.len();
        for (c, v) in [("student_no", &e.student_no), ("name_kanji", &e.name_kanji), ("name_kana", &e.name_kana), ("name_roman", &e.name_roman), ("faculty_code", &e.faculty_code), ("department_code", &e.department_code), ("admission_date", &e.admission_date), ("leaving_type", &e.leaving_type)] {
            if v.is_empty() {
                errors.push(err(line, c, "値がありません。", "no value"));
            }
        }
        for (c, v) in [("birth_date", &e.birth_date), ("admission_date", &e.admission_date), ("graduation_date", &e.graduation_date)] {
            if !v.is_empty() && !real_date(v) {
                errors.push(err(line, c, "日付は YYYY-MM-DD の実在する日にしてください。", "a real date as YYYY-MM-DD"));
            }
        }
        if !e.leaving_type.is_empty() && !LEAVING.contains(&e.leaving_type.as_str()) {
            errors.push(err(line, "leaving_type", "graduated, withdrew, removed, enrolled のいずれかです。", "one of graduated, withdrew, removed, enrolled"));
        }
        if e.leaving_type != "enrolled" && !e.leaving_type.is_empty() && e.graduation_date.is_empty() {
            errors.push(err(line, "graduation_date", "在学生以外は卒業（退学・除籍）日が必要です。", "needed unless the student is enrolled"));
        }
        if real_date(&e.admission_date) && real_date(&e.graduation_date) && e.graduation_date <= e.admission_date {
            errors.push(err(line, "graduation_date", "入学日より後にしてください。", "must come after the admission date"));
        }
        if !e.faculty_code.is_empty() && !departments.iter().any(|(f, d)| *f == e.faculty_code && *d == e.department_code) {
            let what = if departments.iter().any(|(f, _)| *f == e.faculty_code) { "department_code" } else { "faculty_code" };
            errors.push(err(line, what, "学部・学科のコードが見つかりません（学科は学部に属するもの）。", "no such faculty / department (the department must belong to the faculty)"));
        }
        if let Some(first) = seen.insert(e.student_no.clone(), line).filter(|_| !e.student_no.is_empty()) {
            errors.push(err(line, "student_no", &format!("{first}行目と同じ学籍番号です。"), &format!("the same student number as line {first}")));
        }
        if errors.len() == before {
            rows.push(e);
        }
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

fn birth_aad(import_id: i64, student_no: &str) -> String {
    format!("school_register:{import_id}:{student_no}:birth_date")
}

/// Writes checked rows as a new version of the register (birth dates sealed); returns its id.
pub async fn insert_version(c: &mut store::Conn, seal: &SealKey, file_name: &str, rows: &[Entry], staff: &store::Staff) -> AppResult<i64> {
    let id = store::insert_school_register_import(c, staff.university_id, file_name, rows.len() as i64, staff.id, now()).await?;
    for e in rows {
        let sealed = seal.seal_str(&e.birth_date, &birth_aad(id, &e.student_no)).map_err(|e| AppError::Internal(anyhow::anyhow!("sealing: {e}")))?;
        store::insert_school_register_entry(c, id, e, &sealed).await?;
    }
    Ok(id)
}

/// One import = one version; returns (version, rows) or the errors.
pub async fn import(pool: &Pool, seal: &SealKey, staff: &store::Staff, client: Client<'_>, file_name: &str, text: &str) -> AppResult<Result<(i64, usize), Vec<String>>> {
    let mut c = pool.acquire().await?;
    // the importing university's faculties and departments only
    let faculties: Vec<store::Named> = store::faculties(&mut c).await?.into_iter().filter(|f| f.parent_id == staff.university_id).collect();
    let departments: Vec<(String, String)> = store::departments(&mut c)
        .await?
        .into_iter()
        .filter_map(|d| faculties.iter().find(|f| f.id == d.parent_id).map(|f| (f.code.clone(), d.code)))
        .collect();
    drop(c);
    let rows = match parse(text, &departments) {
        Ok(r) if r.is_empty() => return Ok(Err(vec!["データ行がありません。 / The file has no rows.".into()])),
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let mut tx = store::begin_write(pool).await?;
    let id = insert_version(&mut tx, seal, file_name, &rows, staff).await?;
    accounts::audit(&mut tx, &format!("staff:{}", staff.login), "school_register.import", &format!("import:{id} rows:{}", rows.len()), client).await?;
    tx.commit().await?;
    tracing::info!(import_id = id, rows = rows.len(), "school register imported");
    Ok(Ok((id, rows.len())))
}

/// The current version's record for a student number, names of faculty and department included.
pub async fn current(c: &mut store::Conn, seal: &SealKey, university_id: i64, student_no: &str) -> AppResult<Option<(i64, Record)>> {
    let Some((import_id, mut entry, sealed)) = store::school_register_entry(c, university_id, student_no).await? else { return Ok(None) };
    entry.birth_date = seal.open_str(&sealed, &birth_aad(import_id, student_no)).map_err(|e| AppError::Internal(anyhow::anyhow!("sealed birth date: {e}")))?;
    let faculties: Vec<store::Named> = store::faculties(c).await?.into_iter().filter(|f| f.parent_id == university_id).collect();
    let departments = store::departments(c).await?;
    let fac = faculties.iter().find(|f| f.code == entry.faculty_code);
    let dep = departments.iter().find(|d| d.code == entry.department_code && fac.is_some_and(|f| f.id == d.parent_id));
    Ok(Some((
        import_id,
        Record {
            faculty_ja: fac.map(|f| f.name_ja.clone()).unwrap_or_default(),
            faculty_en: fac.map(|f| f.name_en.clone()).unwrap_or_default(),
            department_ja: dep.map(|d| d.name_ja.clone()).unwrap_or_default(),
            department_en: dep.map(|d| d.name_en.clone()).unwrap_or_default(),
            entry,
        },
    )))
}

/// Spaces (half- and full-width) do not count when names are compared.
fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '\u{3000}').collect::<String>().to_uppercase()
}

/// One line of the review aid: (field ja, field en, application, register, same?).
pub type Comparison = (&'static str, &'static str, String, String, bool);

/// Compares what an applicant wrote with the register.
#[allow(clippy::too_many_arguments)]
pub fn compare(record: &Record, name_kanji: &str, name_kana: &str, name_roman: &str, birth_date: &str, faculty_code: &str, department_code: &str, graduation_ym: &str, leaving_type: &str) -> Vec<Comparison> {
    let e = &record.entry;
    let line = |ja: &'static str, en: &'static str, a: String, r: String, same: bool| (ja, en, a, r, same);
    vec![
        line("在学時氏名", "Name in school", name_kanji.into(), e.name_kanji.clone(), squeeze(name_kanji) == squeeze(&e.name_kanji)),
        line("在学時氏名（カナ）", "Name in kana", name_kana.into(), e.name_kana.clone(), squeeze(name_kana) == squeeze(&e.name_kana)),
        line("在学時氏名（ローマ字）", "Name in roman letters", name_roman.into(), e.name_roman.clone(), squeeze(name_roman) == squeeze(&e.name_roman)),
        line("生年月日", "Birth date", birth_date.into(), e.birth_date.clone(), birth_date.trim() == e.birth_date),
        line("学部", "Faculty", faculty_code.into(), format!("{} {}", e.faculty_code, record.faculty_ja), faculty_code == e.faculty_code),
        line("学科", "Department", department_code.into(), format!("{} {}", e.department_code, record.department_ja), department_code == e.department_code),
        line("卒業年月", "Graduation", graduation_ym.into(), e.graduation_date.clone(), !graduation_ym.is_empty() && e.graduation_date.starts_with(graduation_ym.trim())),
        line("区分", "Leaving type", leaving_type.into(), e.leaving_type.clone(), leaving_type == e.leaving_type),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "student_no,name_kanji,name_kana,name_roman,birth_date,faculty_code,department_code,degree_ja,degree_en,admission_date,graduation_date,leaving_type\n";

    fn deps() -> Vec<(String, String)> {
        vec![("LET".into(), "JLIT".into()), ("LET".into(), "HIST".into()), ("SCI".into(), "MATH".into())]
    }

    #[test]
    fn every_bad_row_is_named_and_nothing_is_half_imported() {
        let csv = format!(
            "{HEAD}L1,山田 花子,ヤマダ ハナコ,YAMADA Hanako,2001-04-02,LET,JLIT,学士（文学）,Bachelor of Arts,2020-04-01,2024-03-25,graduated\n\
             L2,佐藤 一郎,サトウ イチロウ,SATO Ichiro,2001-02-30,LET,MATH,,,2020-04-01,2019-03-25,graduated\n\
             L1,重複,ジュウフク,JUFUKU,2000-01-01,SCI,MATH,,,2020-04-01,,enrolled\n\
             L4,,ナシ,NASHI,2000-01-01,XXX,JLIT,,,2020-04-01,,left\n"
        );
        let e = parse(&csv, &deps()).expect_err("bad rows");
        let all = e.join("\n");
        for needle in ["line 3 (birth_date)", "line 3 (department_code)", "line 3 (graduation_date)", "line 4 (student_no): the same student number as line 2", "line 5 (name_kanji)", "line 5 (faculty_code)", "line 5 (leaving_type)"] {
            assert!(all.contains(needle), "{needle} missing:\n{all}");
        }
        let ok = parse(&format!("\u{feff}{HEAD}L1,山田 花子,ヤマダ ハナコ,YAMADA Hanako,2001-04-02,LET,JLIT,学士（文学）,Bachelor of Arts,2020-04-01,2024-03-25,graduated\n"), &deps()).expect("good");
        assert_eq!(ok[0].degree_en, "Bachelor of Arts");
    }

    #[test]
    fn applications_are_compared_ignoring_spaces() {
        let record = Record {
            entry: Entry { name_kanji: "山田 花子".into(), name_kana: "ヤマダ ハナコ".into(), name_roman: "YAMADA Hanako".into(), birth_date: "2001-04-02".into(), faculty_code: "LET".into(), department_code: "JLIT".into(), graduation_date: "2024-03-25".into(), leaving_type: "graduated".into(), ..Entry::default() },
            faculty_ja: "文学部".into(), faculty_en: String::new(), department_ja: "日本文学科".into(), department_en: String::new(),
        };
        let c = compare(&record, "山田　花子", "ヤマダハナコ", "yamada hanako", "2001-04-03", "LET", "JLIT", "2024-03", "graduated");
        let differs: Vec<&str> = c.iter().filter(|l| !l.4).map(|l| l.1).collect();
        assert_eq!(differs, vec!["Birth date"]);
    }
}
