//! The registrar's academic records (D-3): courses, credits and grades
//! imported from CSV (every bad row reported by line, nothing half-imported),
//! kept by version, and the GPA a transcript prints.

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult};
use crate::store;
use crate::time::now;
use crate::store::Pool;

pub const COLUMNS: [&str; 8] = ["student_no", "year", "term", "code", "name_ja", "name_en", "credits", "grade"];
pub const GRADES: [&str; 8] = ["S", "A", "B", "C", "D", "F", "P", "N"];

/// One course result (a row of the registrar's import): kept with the store's rows.
pub use crate::store::CourseResult;

/// Grade points: S 4, A 3, B 2, C 1, D and F 0; P (pass) and N (not graded) do not count.
pub fn points(grade: &str) -> Option<i64> {
    match grade {
        "S" => Some(4),
        "A" => Some(3),
        "B" => Some(2),
        "C" => Some(1),
        "D" | "F" => Some(0),
        _ => None,
    }
}

/// Credits earned (passed courses) and the GPA over graded courses.
pub fn totals(courses: &[CourseResult]) -> (f32, f32) {
    let earned: i64 = courses.iter().filter(|c| !matches!(c.grade.as_str(), "D" | "F" | "N")).map(|c| c.credits_tenths).sum();
    let (mut weighted, mut graded) = (0i64, 0i64);
    for c in courses {
        if let Some(p) = points(&c.grade) {
            weighted += p * c.credits_tenths;
            graded += c.credits_tenths;
        }
    }
    let gpa = if graded == 0 { 0.0 } else { weighted as f32 / graded as f32 };
    (earned as f32 / 10.0, (gpa * 100.0).round() / 100.0)
}

fn err(line: usize, col: &str, ja: &str, en: &str) -> String {
    format!("{line}行目（{col}）: {ja} / line {line} ({col}): {en}")
}

/// Parses the course CSV; every bad row is reported, any error means nothing is imported.
pub fn parse(text: &str) -> Result<Vec<CourseResult>, Vec<String>> {
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
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
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
        let before = errors.len();
        for c in ["student_no", "year", "code", "name_ja", "credits", "grade"] {
            if get(c).is_empty() {
                errors.push(err(line, c, "値がありません。", "no value"));
            }
        }
        let year: i64 = get("year").parse().unwrap_or(0);
        if !get("year").is_empty() && !(1950..=2100).contains(&year) {
            errors.push(err(line, "year", "年度は西暦4桁で入力してください。", "a four-digit year"));
        }
        let credits = get("credits");
        let tenths = credits.parse::<f64>().ok().filter(|c| (0.0..=30.0).contains(c) && (c * 10.0).fract().abs() < 1e-9).map(|c| (c * 10.0).round() as i64);
        if !credits.is_empty() && tenths.is_none() {
            errors.push(err(line, "credits", "単位数は0〜30（小数1桁まで）にしてください。", "credits from 0 to 30, one decimal at most"));
        }
        let grade = get("grade").to_uppercase();
        if !grade.is_empty() && !GRADES.contains(&grade.as_str()) {
            errors.push(err(line, "grade", "評価は S, A, B, C, D, F, P, N のいずれかです。", "grade is one of S, A, B, C, D, F, P, N"));
        }
        if errors.len() > before {
            continue;
        }
        rows.push(CourseResult {
            student_no: get("student_no"),
            year,
            term: get("term"),
            code: get("code"),
            name_ja: get("name_ja"),
            name_en: get("name_en"),
            credits_tenths: tenths.unwrap_or(0),
            grade,
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// One import = one version; returns (import id, rows).
pub async fn import(pool: &Pool, staff: Option<&store::Staff>, client: Client<'_>, file_name: &str, text: &str) -> AppResult<Result<(i64, usize), Vec<String>>> {
    let rows = match parse(text) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    if rows.is_empty() {
        return Ok(Err(vec!["データ行がありません。 / The file has no rows.".into()]));
    }
    let mut tx = store::begin_write(pool).await?;
    // (an import without a staff member, the demo's, is the first university's)
    let university_id = staff.map_or(1, |s| s.university_id);
    let id = store::insert_academic_import(&mut tx, university_id, file_name, rows.len() as i64, staff.map(|s| s.id), now()).await?;
    for r in &rows {
        store::insert_course_result(&mut tx, id, r).await?;
    }
    let actor = staff.map(|s| format!("staff:{}", s.login)).unwrap_or_else(|| "system".into());
    accounts::audit(&mut tx, &actor, "academic.import", &format!("import:{id} rows:{}", rows.len()), client).await?;
    tx.commit().await?;
    Ok(Ok((id, rows.len())))
}

/// The current version of a student's courses at a university: (import id, courses).
pub async fn current(c: &mut store::Conn, university_id: i64, student_no: &str) -> AppResult<Option<(i64, Vec<CourseResult>)>> {
    let Some(id) = store::latest_import_for(c, university_id, student_no).await? else { return Ok(None) };
    Ok(Some((id, store::course_results(c, id, student_no).await?)))
}

/// The courses an order's transcript printed (the version it was placed
/// with); None when the order printed none.
pub async fn of_order(c: &mut store::Conn, order_id: i64, student_no: &str) -> AppResult<Option<Vec<CourseResult>>> {
    let Some(id) = store::order_academic_import(c, order_id).await? else { return Ok(None) };
    Ok(Some(store::course_results(c, id, student_no).await?))
}

pub fn no_record() -> AppError {
    AppError::Page("成績の記録がないため、成績証明書を発行できません。窓口にお問い合わせください。 / There is no academic record for this student ID, so a transcript cannot be issued: please contact the office.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "student_no,year,term,code,name_ja,name_en,credits,grade\n";

    #[test]
    fn gpa_counts_graded_courses_and_credits_count_passes() {
        let c = |credits, grade: &str| CourseResult { credits_tenths: credits, grade: grade.into(), student_no: "x".into(), year: 2020, term: String::new(), code: "c".into(), name_ja: "n".into(), name_en: String::new() };
        let (earned, gpa) = totals(&[c(20, "S"), c(20, "B"), c(10, "F"), c(20, "P")]);
        assert_eq!(earned, 6.0);
        assert!((gpa - 2.4).abs() < 1e-6, "(4*2 + 2*2 + 0*1) / 5 credits graded: {gpa}");
    }

    #[test]
    fn every_bad_row_is_named_by_line_and_column() {
        let csv = format!("{HEAD}L1,2020,前期,LIT101,日本文学概論,Intro to Japanese Literature,2,A\nL1,20x0,前期,LIT102,古典,Classics,2,A\nL1,2020,後期,LIT103,近代,Modern,2.25,B\nL1,2020,後期,LIT104,演習,Seminar,2,Z\nL1,2020,後期,,演習,Seminar,2,A\n");
        let e = parse(&csv).expect_err("bad rows");
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("line 3 (year)") && e[1].contains("line 4 (credits)") && e[2].contains("line 5 (grade)") && e[3].contains("line 6 (code)"), "{e:?}");
        let ok = parse(&format!("\u{feff}{HEAD}L1,2020,前期,LIT101,\"日本文学概論, 入門\",Intro,1.5,a\n")).expect("good");
        assert_eq!((ok[0].credits_tenths, ok[0].grade.as_str(), ok[0].name_ja.as_str()), (15, "A", "日本文学概論, 入門"));
    }
}
