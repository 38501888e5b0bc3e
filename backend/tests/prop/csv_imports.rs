//! The registrar's CSV imports: the roster (`directory::parse_roster`), the
//! school register (`school_register::parse`) and the courses
//! (`academic::parse`). The admin pages refuse a file that is not UTF-8 and
//! give the text to these functions; nothing is imported unless the whole
//! file parses.
//!
//! For any input: no panic, and either rows that each satisfy the import's
//! rules or a list of errors that each name a line. For a generated valid
//! file (any column order, BOM or not, LF or CRLF, quoted or padded fields):
//! exactly its rows. For a valid file with one field blanked: an error
//! naming that row's line and that column.

use crate::support;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use shomei_backend::registrar::academic::{self, CourseResult, GRADES};
use shomei_backend::accounts::directory::{parse_roster, RosterRow, RowError};
use shomei_backend::registrar::school_register::{self, Entry};

const CASES: u32 = 256;

/// The school register's leaving types (private in school_register.rs).
const LEAVING: [&str; 4] = ["graduated", "withdrew", "removed", "enrolled"];

/// An Argon2id hash in PHC form (the roster's unit tests use the same).
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$2uBtH4x2YbJ0c5oG0r1V6Pq3hHkqLJrNnbDS0hC9kQk";

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// "line N" with N >= 1 somewhere in the message.
fn names_a_line(msg: &str) -> bool {
    msg.match_indices("line ").any(|(i, m)| {
        let digits: String = msg[i + m.len()..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<usize>().is_ok_and(|n| n >= 1)
    })
}

// ------------------------------------------------------------------ writing CSV the ways spreadsheets do

#[derive(Debug, Clone)]
struct Layout {
    bom: bool,
    crlf: bool,
    quote_all: bool,
    pad: bool,
    final_newline: bool,
}

fn layout() -> impl Strategy<Value = Layout> {
    (any::<bool>(), any::<bool>(), prop::bool::weighted(0.2), prop::bool::weighted(0.2), prop::bool::weighted(0.8))
        .prop_map(|(bom, crlf, quote_all, pad, final_newline)| Layout { bom, crlf, quote_all, pad, final_newline })
}

fn field(v: &str, l: &Layout) -> String {
    if l.quote_all || v.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else if l.pad {
        format!(" {v} ")
    } else {
        v.to_string()
    }
}

fn write_csv(header: &[&str], rows: &[Vec<String>], l: &Layout) -> String {
    let nl = if l.crlf { "\r\n" } else { "\n" };
    let mut lines = vec![header.iter().map(|h| field(h, l)).collect::<Vec<_>>().join(",")];
    lines.extend(rows.iter().map(|r| r.iter().map(|f| field(f, l)).collect::<Vec<_>>().join(",")));
    let mut out = String::new();
    if l.bom {
        out.push('\u{feff}');
    }
    out.push_str(&lines.join(nl));
    if l.final_newline {
        out.push_str(nl);
    }
    out
}

/// A non-empty value without surrounding spaces: letters, digits, kana and
/// kanji, with spaces, commas and quotes inside.
fn cell() -> impl Strategy<Value = String> {
    "[A-Za-z0-9ァ-ヶ一-龥]([A-Za-z0-9ァ-ヶ一-龥 ,\"・]{0,10}[A-Za-z0-9ァ-ヶ一-龥])?"
}

fn maybe_cell() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), cell()]
}

/// The column order of `all`, shuffled, keeping those `keep` says.
fn ordered(all: &[&'static str], keep: impl Fn(&str) -> bool) -> Vec<&'static str> {
    all.iter().copied().filter(|c| keep(c)).collect()
}

fn row_of(columns: &[&str], value: impl Fn(&str) -> String) -> Vec<String> {
    columns.iter().map(|c| value(c)).collect()
}

// ------------------------------------------------------------------ arbitrary input

/// Text that looks like a CSV import: known and unknown column names,
/// values good and bad, quotes, separators and line ends in odd places.
fn csvish(columns: &'static [&'static str]) -> impl Strategy<Value = String> {
    let head = proptest::collection::vec(
        prop_oneof![4 => proptest::sample::select(columns.to_vec()).prop_map(str::to_string), 1 => "[a-z_ ]{0,10}", 1 => Just("password".to_string())],
        0..14,
    );
    let value = prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        Just("\"".to_string()),
        Just("\"\"".to_string()),
        Just("\"a,b\"".to_string()),
        Just("\u{feff}".to_string()),
        Just("2020-04-01".to_string()),
        Just("2001-02-30".to_string()),
        Just("2020".to_string()),
        Just("1.5".to_string()),
        Just("2.25".to_string()),
        Just("A".to_string()),
        Just("z".to_string()),
        Just("graduated".to_string()),
        Just("enrolled".to_string()),
        Just("a@b.jp".to_string()),
        Just(HASH.to_string()),
        Just("Initial2024".to_string()),
        Just("LET".to_string()),
        Just("JLIT".to_string()),
        "\\PC{0,12}",
        "[ -~]{0,12}",
    ];
    let sep = prop_oneof![8 => Just(","), 1 => Just("\n"), 1 => Just("\r\n"), 1 => Just("\r"), 1 => Just("\"")];
    let row = proptest::collection::vec((value, sep), 0..14);
    let end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("")];
    (any::<bool>(), head, proptest::collection::vec((row, end.clone()), 0..8), end).prop_map(|(bom, head, rows, head_end)| {
        let mut s = if bom { "\u{feff}".to_string() } else { String::new() };
        s.push_str(&head.join(","));
        s.push_str(head_end);
        for (cells, end) in rows {
            for (v, sep) in cells {
                s.push_str(&v);
                s.push_str(sep);
            }
            s.push_str(end);
        }
        s
    })
}

/// What the admin page does with an upload: refuse it unless it is UTF-8.
fn upload_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(|b| String::from_utf8(b).ok()),
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(|b| Some(String::from_utf8_lossy(&b).into_owned())),
    ]
}

fn roster_is_valid(rows: &[RosterRow]) -> Result<(), TestCaseError> {
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        prop_assert!(!r.user_id.is_empty() && r.user_id.len() <= 64 && !r.user_id.chars().any(|c| c.is_whitespace() || c.is_control()), "user_id {:?}", r.user_id);
        prop_assert!(seen.insert(r.user_id.clone()), "user_id {:?} twice", r.user_id);
        for v in [&r.name_kanji, &r.name_kana, &r.name_roman, &r.student_no, &r.faculty_code, &r.department_code] {
            prop_assert!(!v.is_empty() && v.trim() == v.as_str(), "{:?} in {:?}", v, r);
        }
        prop_assert!(r.password_hash.is_some() != r.password.is_some(), "{:?}", r);
        if let Some(p) = &r.password {
            prop_assert!(p.chars().count() >= 8, "password {:?}", p);
        }
        if let Some(e) = &r.email {
            prop_assert!(shomei_backend::accounts::valid_email(e), "email {:?}", e);
        }
    }
    Ok(())
}

fn roster_errors_name_lines(errs: &[RowError]) -> Result<(), TestCaseError> {
    prop_assert!(!errs.is_empty(), "refused without a reason");
    for e in errs {
        prop_assert!(e.line >= 1, "{:?}", e);
        let shown = e.to_string();
        prop_assert!(shown.contains(&format!("line {}", e.line)), "{}", shown);
    }
    Ok(())
}

fn courses_are_valid(rows: &[CourseResult]) -> Result<(), TestCaseError> {
    for r in rows {
        prop_assert!((1950..=2100).contains(&r.year), "{:?}", r);
        prop_assert!((0..=300).contains(&r.credits_tenths), "{:?}", r);
        prop_assert!(GRADES.contains(&r.grade.as_str()), "{:?}", r);
        for v in [&r.student_no, &r.code, &r.name_ja] {
            prop_assert!(!v.is_empty() && v.trim() == v.as_str(), "{:?}", r);
        }
    }
    Ok(())
}

fn real_date(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn register_is_valid(rows: &[Entry], departments: &[(String, String)]) -> Result<(), TestCaseError> {
    let mut seen = std::collections::HashSet::new();
    for e in rows {
        prop_assert!(seen.insert(e.student_no.clone()), "student_no {:?} twice", e.student_no);
        for v in [&e.student_no, &e.name_kanji, &e.name_kana, &e.name_roman, &e.faculty_code, &e.department_code, &e.admission_date, &e.leaving_type] {
            prop_assert!(!v.is_empty() && v.trim() == v.as_str(), "{:?}", e);
        }
        prop_assert!(LEAVING.contains(&e.leaving_type.as_str()), "{:?}", e);
        prop_assert!(real_date(&e.admission_date), "{:?}", e);
        for d in [&e.birth_date, &e.graduation_date] {
            prop_assert!(d.is_empty() || real_date(d), "{:?}", e);
        }
        prop_assert!(e.leaving_type == "enrolled" || !e.graduation_date.is_empty(), "{:?}", e);
        prop_assert!(e.graduation_date.is_empty() || e.graduation_date > e.admission_date, "{:?}", e);
        prop_assert!(departments.iter().any(|(f, d)| *f == e.faculty_code && *d == e.department_code), "{:?}", e);
    }
    Ok(())
}

fn string_errors_name_lines(errs: &[String]) -> Result<(), TestCaseError> {
    prop_assert!(!errs.is_empty(), "refused without a reason");
    for e in errs {
        prop_assert!(names_a_line(e), "no line named: {}", e);
    }
    Ok(())
}

fn fixed_departments() -> Vec<(String, String)> {
    vec![("LET".into(), "JLIT".into()), ("LET".into(), "HIST".into()), ("SCI".into(), "MATH".into())]
}

fn check_all_three(text: &str) -> Result<(), TestCaseError> {
    match parse_roster(text) {
        Ok(rows) => roster_is_valid(&rows)?,
        Err(errs) => roster_errors_name_lines(&errs)?,
    }
    match academic::parse(text) {
        Ok(rows) => courses_are_valid(&rows)?,
        Err(errs) => string_errors_name_lines(&errs)?,
    }
    let deps = fixed_departments();
    match school_register::parse(text, &deps) {
        Ok(rows) => register_is_valid(&rows, &deps)?,
        Err(errs) => string_errors_name_lines(&errs)?,
    }
    Ok(())
}

#[test]
fn any_upload_imports_valid_rows_or_names_the_lines_at_fault() {
    support::check("any_upload_imports_valid_rows_or_names_the_lines_at_fault", support::cases(CASES), upload_text(), |text| match text {
        Some(t) => check_all_three(&t),
        None => Ok(()),
    });
}

#[test]
fn csv_like_text_imports_valid_rows_or_names_the_lines_at_fault() {
    const ALL: &[&str] = &[
        "user_id", "password_hash", "name_kanji", "name_kana", "name_roman", "student_no", "faculty_code", "department_code", "email", "birth_date",
        "degree_ja", "degree_en", "admission_date", "graduation_date", "leaving_type", "year", "term", "code", "name_ja", "name_en", "credits", "grade",
    ];
    support::check("csv_like_text_imports_valid_rows_or_names_the_lines_at_fault", support::cases(CASES), csvish(ALL), |t| check_all_three(&t));
}

// ------------------------------------------------------------------ the roster

const ROSTER_ALL: [&str; 10] =
    ["user_id", "password_hash", "password", "name_kanji", "name_kana", "name_roman", "student_no", "faculty_code", "department_code", "email"];
const ROSTER_REQUIRED: [&str; 7] = ["user_id", "name_kanji", "name_kana", "name_roman", "student_no", "faculty_code", "department_code"];

#[derive(Debug, Clone)]
struct RosterCase {
    columns: Vec<&'static str>,
    rows: Vec<RosterRow>,
    layout: Layout,
}

impl RosterCase {
    fn text(&self) -> String {
        let rows: Vec<Vec<String>> = self.rows.iter().map(|r| row_of(&self.columns, |c| roster_value(r, c))).collect();
        write_csv(&self.columns, &rows, &self.layout)
    }
}

fn roster_value(r: &RosterRow, column: &str) -> String {
    match column {
        "user_id" => r.user_id.clone(),
        "password_hash" => r.password_hash.clone().unwrap_or_default(),
        "password" => r.password.clone().unwrap_or_default(),
        "name_kanji" => r.name_kanji.clone(),
        "name_kana" => r.name_kana.clone(),
        "name_roman" => r.name_roman.clone(),
        "student_no" => r.student_no.clone(),
        "faculty_code" => r.faculty_code.clone(),
        "department_code" => r.department_code.clone(),
        "email" => r.email.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

fn roster_case(rows: std::ops::Range<usize>) -> impl Strategy<Value = RosterCase> {
    let row = (
        "[a-z][a-z0-9._-]{0,8}",
        cell(),
        cell(),
        cell(),
        "[A-Z0-9-]{1,10}",
        "[A-Z]{2,4}",
        "[A-Z]{2,5}",
        "[A-Za-z0-9!#%&]{8,16}",
        prop_oneof![Just(String::new()), "[a-z]{1,8}@[a-z]{1,8}\\.jp"],
    );
    (any::<bool>(), any::<bool>(), Just(ROSTER_ALL.to_vec()).prop_shuffle(), proptest::collection::vec(row, rows), layout()).prop_map(
        |(hashed, with_email, all, parts, layout)| {
            let columns = ordered(&all, |c| match c {
                "password_hash" => hashed,
                "password" => !hashed,
                "email" => with_email,
                _ => true,
            });
            let rows = parts
                .into_iter()
                .enumerate()
                .map(|(i, (uid, name_kanji, name_kana, name_roman, student_no, faculty_code, department_code, plain, email))| RosterRow {
                    // base + one digit: unique whatever the bases
                    user_id: format!("{uid}{i}"),
                    password_hash: hashed.then(|| HASH.to_string()),
                    password: (!hashed).then_some(plain),
                    name_kanji,
                    name_kana,
                    name_roman,
                    student_no,
                    faculty_code,
                    department_code,
                    email: Some(email).filter(|e| with_email && !e.is_empty()),
                    // the campus card column is optional and left out here
                    card_id: None,
                })
                .collect();
            RosterCase { columns, rows, layout }
        },
    )
}

#[test]
fn a_valid_roster_imports_exactly_its_rows() {
    support::check("a_valid_roster_imports_exactly_its_rows", support::cases(CASES), roster_case(0..7), |case| {
        let text = case.text();
        let rows = parse_roster(&text).map_err(|e| fail(format!("{e:?}\n{text}")))?;
        prop_assert_eq!(rows, case.rows);
        Ok(())
    });
}

#[test]
fn a_blank_required_roster_field_is_reported_at_its_line_and_column() {
    let strategy = (roster_case(1..7), any::<prop::sample::Index>(), proptest::sample::select(ROSTER_REQUIRED.to_vec()));
    support::check("a_blank_required_roster_field_is_reported_at_its_line_and_column", support::cases(CASES), strategy, |(case, k, column)| {
        let k = k.index(case.rows.len());
        let rows: Vec<Vec<String>> = case
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| row_of(&case.columns, |c| if i == k && c == column { String::new() } else { roster_value(r, c) }))
            .collect();
        let text = write_csv(&case.columns, &rows, &case.layout);
        let errs = parse_roster(&text).err().ok_or_else(|| fail(format!("a blank {column} passed\n{text}")))?;
        let at: Vec<(usize, Option<&str>)> = errs.iter().map(|e| (e.line, e.column.as_deref())).collect();
        // the header is line 1; no field holds a line break
        prop_assert_eq!(at, vec![(k + 2, Some(column))], "{}", text);
        Ok(())
    });
}

// ------------------------------------------------------------------ courses

#[derive(Debug, Clone)]
struct CoursesCase {
    columns: Vec<&'static str>,
    rows: Vec<(CourseResult, String, String)>, // (result, credits as written, grade as written)
    layout: Layout,
}

impl CoursesCase {
    fn written(&self, blank: Option<(usize, &str)>) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, (r, credits, grade))| {
                row_of(&self.columns, |c| {
                    if blank == Some((i, c)) {
                        return String::new();
                    }
                    match c {
                        "student_no" => r.student_no.clone(),
                        "year" => r.year.to_string(),
                        "term" => r.term.clone(),
                        "code" => r.code.clone(),
                        "name_ja" => r.name_ja.clone(),
                        "name_en" => r.name_en.clone(),
                        "credits" => credits.clone(),
                        "grade" => grade.clone(),
                        _ => "memo".to_string(),
                    }
                })
            })
            .collect();
        write_csv(&self.columns, &rows, &self.layout)
    }
}

fn courses_case(rows: std::ops::Range<usize>) -> impl Strategy<Value = CoursesCase> {
    let row = (
        "[A-Z0-9-]{1,10}",
        1950i64..=2100,
        proptest::sample::select(vec!["前期", "後期", "通年", ""]),
        "[A-Z]{2,4}[0-9]{3}",
        cell(),
        maybe_cell(),
        0i64..=300,
        any::<bool>(),
        proptest::sample::select(GRADES.to_vec()),
        any::<bool>(),
    );
    let mut all = academic::COLUMNS.to_vec();
    all.push("note"); // a column the import does not know: ignored
    (Just(all).prop_shuffle(), any::<bool>(), proptest::collection::vec(row, rows), layout()).prop_map(|(all, with_note, parts, layout)| {
        let columns = ordered(&all, |c| c != "note" || with_note);
        let rows = parts
            .into_iter()
            .map(|(student_no, year, term, code, name_ja, name_en, tenths, whole_as_integer, grade, lower)| {
                let credits = if tenths % 10 == 0 && whole_as_integer { (tenths / 10).to_string() } else { format!("{}.{}", tenths / 10, tenths % 10) };
                let written_grade = if lower { grade.to_lowercase() } else { grade.to_string() };
                let r = CourseResult { student_no, year, term: term.to_string(), code, name_ja, name_en, credits_tenths: tenths, grade: grade.to_string() };
                (r, credits, written_grade)
            })
            .collect();
        CoursesCase { columns, rows, layout }
    })
}

#[test]
fn a_valid_course_file_imports_exactly_its_rows() {
    support::check("a_valid_course_file_imports_exactly_its_rows", support::cases(CASES), courses_case(0..7), |case| {
        let text = case.written(None);
        let rows = academic::parse(&text).map_err(|e| fail(format!("{e:?}\n{text}")))?;
        let expected: Vec<CourseResult> = case.rows.iter().map(|(r, _, _)| r.clone()).collect();
        prop_assert_eq!(rows, expected);
        Ok(())
    });
}

#[test]
fn a_blank_required_course_field_is_reported_at_its_line_and_column() {
    let required = vec!["student_no", "year", "code", "name_ja", "credits", "grade"];
    let strategy = (courses_case(1..7), any::<prop::sample::Index>(), proptest::sample::select(required));
    support::check("a_blank_required_course_field_is_reported_at_its_line_and_column", support::cases(CASES), strategy, |(case, k, column)| {
        let k = k.index(case.rows.len());
        let text = case.written(Some((k, column)));
        let errs = academic::parse(&text).err().ok_or_else(|| fail(format!("a blank {column} passed\n{text}")))?;
        let want = format!("line {} ({})", k + 2, column);
        prop_assert!(errs.iter().any(|e| e.contains(&want)), "{:?} lacks {:?}\n{}", errs, want, text);
        prop_assert!(errs.iter().all(|e| names_a_line(e)), "{:?}", errs);
        Ok(())
    });
}

// ------------------------------------------------------------------ the school register

#[derive(Debug, Clone)]
struct RegisterCase {
    departments: Vec<(String, String)>,
    columns: Vec<&'static str>,
    rows: Vec<Entry>,
    layout: Layout,
}

fn entry_value(e: &Entry, column: &str) -> String {
    match column {
        "student_no" => e.student_no.clone(),
        "name_kanji" => e.name_kanji.clone(),
        "name_kana" => e.name_kana.clone(),
        "name_roman" => e.name_roman.clone(),
        "birth_date" => e.birth_date.clone(),
        "faculty_code" => e.faculty_code.clone(),
        "department_code" => e.department_code.clone(),
        "degree_ja" => e.degree_ja.clone(),
        "degree_en" => e.degree_en.clone(),
        "admission_date" => e.admission_date.clone(),
        "graduation_date" => e.graduation_date.clone(),
        "leaving_type" => e.leaving_type.clone(),
        _ => String::new(),
    }
}

impl RegisterCase {
    fn written(&self, blank: Option<(usize, &str)>) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, e)| row_of(&self.columns, |c| if blank == Some((i, c)) { String::new() } else { entry_value(e, c) }))
            .collect();
        write_csv(&self.columns, &rows, &self.layout)
    }
}

fn date() -> impl Strategy<Value = (i32, u32, u32)> {
    (1950i32..2030, 1u32..=12, 1u32..=28)
}

fn ymd((y, m, d): (i32, u32, u32)) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

fn register_case(rows: std::ops::Range<usize>) -> impl Strategy<Value = RegisterCase> {
    let departments = proptest::collection::vec(("[A-Z]{2,4}", "[A-Z]{2,5}"), 1..4);
    let row = (
        "[A-Z][0-9]{1,6}",
        (cell(), cell(), cell()),
        proptest::option::of(date()),
        any::<prop::sample::Index>(),
        (maybe_cell(), maybe_cell()),
        date(),
        proptest::sample::select(LEAVING.to_vec()),
        (1i32..=6, 1u32..=12, 1u32..=28, any::<bool>()),
    );
    (departments, Just(school_register::COLUMNS.to_vec()).prop_shuffle(), proptest::collection::vec(row, rows), layout()).prop_map(
        |(departments, columns, parts, layout)| {
            let rows = parts
                .into_iter()
                .enumerate()
                .map(|(i, (no, (name_kanji, name_kana, name_roman), birth, dep, (degree_ja, degree_en), admitted, leaving, (years, m, d, left)))| {
                    let (faculty_code, department_code) = departments[dep.index(departments.len())].clone();
                    // after admission; needed unless the student is still enrolled
                    let graduation = if leaving != "enrolled" || left { ymd((admitted.0 + years, m, d)) } else { String::new() };
                    Entry {
                        student_no: format!("{no}-{i}"),
                        name_kanji,
                        name_kana,
                        name_roman,
                        birth_date: birth.map(ymd).unwrap_or_default(),
                        faculty_code,
                        department_code,
                        degree_ja,
                        degree_en,
                        admission_date: ymd(admitted),
                        graduation_date: graduation,
                        leaving_type: leaving.to_string(),
                    }
                })
                .collect();
            RegisterCase { departments, columns, rows, layout }
        },
    )
}

#[test]
fn a_valid_school_register_imports_exactly_its_rows() {
    support::check("a_valid_school_register_imports_exactly_its_rows", support::cases(CASES), register_case(0..7), |case| {
        let text = case.written(None);
        let rows = school_register::parse(&text, &case.departments).map_err(|e| fail(format!("{e:?}\n{text}")))?;
        prop_assert_eq!(rows, case.rows);
        Ok(())
    });
}

#[test]
fn a_blank_required_register_field_is_reported_at_its_line_and_column() {
    let required = vec!["student_no", "name_kanji", "name_kana", "name_roman", "faculty_code", "department_code", "admission_date", "leaving_type"];
    let strategy = (register_case(1..7), any::<prop::sample::Index>(), proptest::sample::select(required));
    support::check("a_blank_required_register_field_is_reported_at_its_line_and_column", support::cases(CASES), strategy, |(case, k, column)| {
        let k = k.index(case.rows.len());
        let text = case.written(Some((k, column)));
        let errs = school_register::parse(&text, &case.departments).err().ok_or_else(|| fail(format!("a blank {column} passed\n{text}")))?;
        let want = format!("line {} ({})", k + 2, column);
        // (with CRLF line ends too: spreadsheets on Windows write them)
        prop_assert!(errs.iter().any(|e| e.contains(&want)), "{:?} lacks {:?} (crlf: {})\n{}", errs, want, case.layout.crlf, text);
        prop_assert!(errs.iter().all(|e| names_a_line(e)), "{:?}", errs);
        Ok(())
    });
}
