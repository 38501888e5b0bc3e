//! Academic transcript (成績証明書) layout: a course table that flows over
//! as many A4 pages as it needs.
//!
//! Every page repeats the header (title, university, holder, student
//! number, affiliation and dates) and the table head, and carries the
//! serial, the verification code and "n / m ページ Page n of m" in its foot,
//! so that a page cannot be swapped in from another transcript unnoticed.
//! The last page adds the totals (credits, GPA) after the last row,
//! "以下余白" (nothing follows), the certifying statement, the date of issue,
//! the issuer and the verification QR code.

use super::{
    assemble, seal_over_title, wrap, Canvas, Date, DocumentError, FontSet, Line, SealBox, Shaper,
    LABEL_AFFILIATION, LABEL_BIRTH, LABEL_ISSUED, LABEL_NAME, PAGE_W, QR_CAPTION, QR_SIDE, REGISTRAR,
};

/// One course on a transcript.
#[derive(Clone, Debug)]
pub struct CourseRow {
    /// Academic year in which the course was taken, e.g. 2019.
    pub year: u16,
    /// Term, e.g. "前期", "後期", "通年", "集中"; may be empty.
    pub term: String,
    /// Course code, e.g. "LIT101"; may be empty.
    pub code: String,
    /// Course title in Japanese, e.g. "日本文学概論". Wrapped (and if need
    /// be set smaller) to stay inside its column.
    pub name_ja: String,
    /// Course title in English, printed under the Japanese one; may be empty.
    pub name_en: String,
    /// Credits, e.g. 2.0 or 0.5; shown as "2" or "0.5".
    pub credits: f32,
    /// Grade as it is to be printed, e.g. "S", "A", "B", "C", "F", "P", "認定".
    pub grade: String,
}

/// Everything printed on one transcript.
#[derive(Clone, Debug)]
pub struct TranscriptData {
    /// e.g. "成績証明書".
    pub title_ja: String,
    /// e.g. "Academic Transcript".
    pub title_en: String,
    /// University name in Japanese, e.g. "国立証明大学".
    pub university_ja: String,
    /// University name in English.
    pub university_en: String,
    /// Faculty (学部); may be empty.
    pub faculty_ja: String,
    /// Department (学科); may be empty.
    pub department_ja: String,
    /// Name when in school, e.g. "山田 花子".
    pub holder_name_kanji: String,
    /// e.g. "YAMADA Hanako".
    pub holder_name_roman: String,
    /// Student number (学籍番号).
    pub student_no: String,
    /// `YYYY-MM-DD`, or empty when unknown (printed as "―").
    pub birth_date: String,
    /// `YYYY-MM-DD`, or empty when the records do not have it (printed as
    /// "―").
    pub admission_date: String,
    /// `YYYY-MM-DD`, or empty for a student who has not graduated (printed
    /// as "―").
    pub graduation_date: String,
    /// In the order they are to be printed (usually year, term, code).
    pub courses: Vec<CourseRow>,
    /// Total credits earned, as stated by the student records (not summed
    /// here: failed courses and transfers are the registrar's business).
    pub total_credits: f32,
    /// Cumulative GPA, printed with two decimals.
    pub gpa: f32,
    /// e.g. "SH-2026-000123-1".
    pub serial: String,
    /// e.g. "K7QF-2M9X-PL3D".
    pub verification_code: String,
    /// Public page where the code can be checked, e.g. "https://host/verify".
    pub verify_url: String,
    /// The signed payload the QR code carries besides the link; empty: none.
    pub offline_proof: String,
    /// `YYYY-MM-DD`.
    pub issue_date: String,
    /// A digital copy shared with a recipient: whom it was issued for
    /// (printed on the last page); empty: none.
    pub submitted_to: String,
}

// ---------------------------------------------------------------------------
// Geometry (points; y grows upwards)
// ---------------------------------------------------------------------------

const MARGIN: f32 = 42.0;
const RIGHT: f32 = PAGE_W - MARGIN;
const WIDTH: f32 = PAGE_W - 2.0 * MARGIN;

/// Left edges of the table columns.
const COL_TERM: f32 = MARGIN;
const COL_CODE: f32 = MARGIN + 66.0;
const COL_NAME: f32 = MARGIN + 128.0;
const COL_CREDITS: f32 = RIGHT - 92.0;
const COL_GRADE: f32 = RIGHT - 46.0;
const NAME_W: f32 = COL_CREDITS - COL_NAME;
const CELL_PAD: f32 = 4.0;

/// Info box under the title.
const INFO_TOP: f32 = 756.0;
const INFO_BOTTOM: f32 = 684.0;
/// Table head band and the body below it.
const HEAD_TOP: f32 = 676.0;
const TABLE_TOP: f32 = 652.0;
/// No row may reach below this (room for "continued" above the foot).
const TABLE_BOTTOM: f32 = 74.0;
/// The closing block (statement, issuer, QR) sits at a fixed place at the
/// bottom of the last page, below this line.
const CLOSING_TOP: f32 = 214.0;
/// Foot rule; serial, code and page number are set below it.
const FOOT_RULE: f32 = 56.0;

/// Vertical padding above and below the text of a row.
const ROW_PAD: f32 = 3.0;
const JA_SIZE: f32 = 9.0;
const JA_MIN: f32 = 7.0;
const EN_SIZE: f32 = 7.0;
const EN_MIN: f32 = 5.5;
/// Baseline-to-baseline distance as a multiple of the font size.
const LEADING: f32 = 1.22;
/// The other cells of a row.
const CELL_SIZE: f32 = 8.0;
/// Height of one totals row, and the space below the totals for "以下余白".
const TOTAL_ROW_H: f32 = 17.0;
const TOTALS_H: f32 = 2.0 * TOTAL_ROW_H + 16.0;

const LABEL_STUDENT_NO: (&str, &str) = ("学籍番号", "Student No.");
const LABEL_ADMISSION: (&str, &str) = ("入学年月日", "Date of Admission");
const LABEL_GRADUATION: (&str, &str) = ("卒業年月日", "Date of Graduation");
const HEAD_TERM: (&str, &str) = ("年度・学期", "Year / Term");
const HEAD_CODE: (&str, &str) = ("科目コード", "Code");
const HEAD_NAME: (&str, &str) = ("授業科目名", "Course Title");
const HEAD_CREDITS: (&str, &str) = ("単位", "Credits");
const HEAD_GRADE: (&str, &str) = ("評価", "Grade");
const TOTAL_CREDITS: &str = "修得単位数合計 Total Credits Earned";
const TOTAL_GPA: &str = "累積GPA Cumulative GPA";
const END_OF_RECORD: &str = "以下余白 / End of Record";
const CONTINUED: &str = "次ページへ続く / Continued on next page";
const NO_COURSES: (&str, &str) = ("履修科目なし", "No courses recorded");
const STATEMENT: (&str, &str) =
    ("上記のとおり相違ないことを証明する。", "This is to certify that the above is a true and correct record.");
const FOOT_SERIAL: &str = "証明書番号 Serial No.";
const FOOT_CODE: &str = "照合コード Verification Code";
/// Printed for an empty optional date.
const NO_DATE: &str = "―";

// ---------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------

/// A table row, wrapped and measured.
struct RowLayout<'c> {
    /// None for the "no courses" placeholder.
    course: Option<&'c CourseRow>,
    ja: Vec<Line>,
    ja_size: f32,
    en: Vec<Line>,
    en_size: f32,
    height: f32,
}

/// Wrap `text` into `max_w`: at `size` if it then takes at most two lines,
/// else at the largest size down to `min` at which it does, else at `min`
/// on as many lines as it needs. Empty text has no lines.
fn wrap_cell(shaper: &mut Shaper<'_>, text: &str, size: f32, min: f32, max_w: f32) -> (Vec<Line>, f32) {
    let text = text.trim();
    if text.is_empty() {
        return (Vec::new(), size);
    }
    let mut s = size;
    loop {
        let lines = wrap(shaper, text, s, max_w);
        if lines.len() <= 2 || s <= min {
            return (lines, s);
        }
        s = (s - 0.5).max(min);
    }
}

fn layout_row<'c>(
    shaper: &mut Shaper<'_>,
    course: Option<&'c CourseRow>,
    name_ja: &str,
    name_en: &str,
) -> RowLayout<'c> {
    let text_w = NAME_W - 2.0 * CELL_PAD;
    let (ja, ja_size) = wrap_cell(shaper, name_ja, JA_SIZE, JA_MIN, text_w);
    let (en, en_size) = wrap_cell(shaper, name_en, EN_SIZE, EN_MIN, text_w);
    let text_h = ja.len() as f32 * ja_size * LEADING + en.len() as f32 * en_size * LEADING;
    // A row is at least as high as one line of the other cells.
    let height = 2.0 * ROW_PAD + text_h.max(CELL_SIZE * LEADING);
    RowLayout { course, ja, ja_size, en, en_size, height }
}

/// Distribute rows (by height) over pages. The totals and the closing block
/// must fit below the rows of the last page; if they do not, the last row
/// moves on to a new page with them so that they do not stand alone.
fn paginate(heights: &[f32]) -> Result<Vec<Vec<usize>>, DocumentError> {
    let room = TABLE_TOP - TABLE_BOTTOM;
    let mut pages: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 0.0_f32;
    for (i, &h) in heights.iter().enumerate() {
        if h > room {
            return Err(DocumentError::Layout(format!("transcript: row {} is taller than a page", i + 1)));
        }
        if used + h > room + 0.01 {
            pages.push(Vec::new());
            used = 0.0;
        }
        if let Some(page) = pages.last_mut() {
            page.push(i);
        }
        used += h;
    }
    let closing_room = TABLE_TOP - CLOSING_TOP - TOTALS_H;
    if used > closing_room {
        // Carry the last row along unless it is the page's only row or too
        // tall to share a page with the closing block; then the totals
        // start the new page.
        let carried = match pages.last_mut() {
            Some(page) if page.len() > 1 && page.last().is_some_and(|&i| heights[i] <= closing_room) => page.pop(),
            _ => None,
        };
        pages.push(carried.into_iter().collect());
    }
    Ok(pages)
}

/// "2", "0.5", "124" (one decimal at most).
fn format_credits(field: &'static str, value: f32) -> Result<String, DocumentError> {
    if !value.is_finite() || !(0.0..10_000.0).contains(&value) {
        return Err(DocumentError::InvalidField { field, value: value.to_string() });
    }
    let tenths = (value * 10.0).round() as u32;
    let (whole, tenth) = (tenths / 10, tenths % 10);
    Ok(if tenth == 0 { whole.to_string() } else { format!("{whole}.{tenth}") })
}

/// Values checked and formatted once for all pages.
struct Prepared {
    birth: Option<Date>,
    admission: Option<Date>,
    graduation: Option<Date>,
    issued: Date,
    credits: Vec<String>,
    total_credits: String,
    gpa: String,
}

fn prepare(data: &TranscriptData) -> Result<Prepared, DocumentError> {
    let optional = |field: &'static str, value: &str| -> Result<Option<Date>, DocumentError> {
        if value.trim().is_empty() {
            Ok(None)
        } else {
            Date::parse(field, value.trim()).map(Some)
        }
    };
    if !data.gpa.is_finite() || !(0.0..100.0).contains(&data.gpa) {
        return Err(DocumentError::InvalidField { field: "gpa", value: data.gpa.to_string() });
    }
    Ok(Prepared {
        birth: optional("birth_date", &data.birth_date)?,
        admission: optional("admission_date", &data.admission_date)?,
        graduation: optional("graduation_date", &data.graduation_date)?,
        issued: Date::parse("issue_date", data.issue_date.trim())?,
        credits: data.courses.iter().map(|c| format_credits("credits", c.credits)).collect::<Result<_, _>>()?,
        total_credits: format_credits("total_credits", data.total_credits)?,
        gpa: format!("{:.2}", data.gpa),
    })
}

// ---------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------

/// Baseline of a line of `size` in a line box of `size * LEADING` whose top
/// is `top` (ascent taken as 0.88 em, as in most Japanese fonts).
fn baseline(top: f32, size: f32) -> f32 {
    top - 0.5 * (LEADING - 1.0) * size - 0.88 * size
}

fn draw_header(canvas: &mut Canvas<'_, '_>, data: &TranscriptData, p: &Prepared) {
    canvas.centered(data.title_ja.trim(), 798.0, 18.0, 0.3, WIDTH);
    canvas.centered(data.title_en.trim(), 782.0, 10.0, 0.04, WIDTH);
    let university = format!("{}　{}", data.university_ja.trim(), data.university_en.trim());
    canvas.centered(university.trim(), 766.0, 8.5, 0.0, WIDTH);

    canvas.ops.push_str("0.4 0.4 0.4 RG\n");
    canvas.stroke_rect(MARGIN, INFO_BOTTOM, WIDTH, INFO_TOP - INFO_BOTTOM, 0.5);
    canvas.vline(PAGE_W / 2.0, INFO_BOTTOM, INFO_TOP, 0.3);
    canvas.ops.push_str("0 0 0 RG\n");

    let left = MARGIN + 6.0;
    let right = PAGE_W / 2.0 + 6.0;
    let value_dx = 84.0;
    let left_w = PAGE_W / 2.0 - (left + value_dx) - 6.0;
    let right_w = RIGHT - (right + value_dx) - 6.0;
    let label = |canvas: &mut Canvas<'_, '_>, (ja, en): (&str, &str), x: f32, y: f32| {
        canvas.text(ja, x, y, 7.5, value_dx - 6.0);
        canvas.text(en, x, y - 8.0, 5.5, value_dx - 6.0);
    };
    let date = |canvas: &mut Canvas<'_, '_>, d: Option<&Date>, x: f32, y: f32, w: f32| match d {
        Some(d) => {
            canvas.text(&d.ja(), x, y, 9.0, w);
            canvas.text(&d.en(), x, y - 9.0, 7.0, w);
        }
        None => canvas.text(NO_DATE, x, y, 9.0, w),
    };

    let (row1, row2, row3) = (743.0, 721.0, 699.0);
    label(canvas, LABEL_NAME, left, row1);
    canvas.text(data.holder_name_kanji.trim(), left + value_dx, row1, 11.0, left_w);
    canvas.text(data.holder_name_roman.trim(), left + value_dx, row1 - 9.5, 7.5, left_w);
    label(canvas, LABEL_STUDENT_NO, right, row1);
    canvas.text(data.student_no.trim(), right + value_dx, row1, 10.0, right_w);

    let affiliation = [data.faculty_ja.trim(), data.department_ja.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\u{3000}");
    label(canvas, LABEL_AFFILIATION, left, row2);
    canvas.text(&affiliation, left + value_dx, row2, 9.0, left_w);
    label(canvas, LABEL_BIRTH, right, row2);
    date(canvas, p.birth.as_ref(), right + value_dx, row2, right_w);

    label(canvas, LABEL_ADMISSION, left, row3);
    date(canvas, p.admission.as_ref(), left + value_dx, row3, left_w);
    label(canvas, LABEL_GRADUATION, right, row3);
    date(canvas, p.graduation.as_ref(), right + value_dx, row3, right_w);

    // Table head.
    canvas.fill_rect(MARGIN, TABLE_TOP, WIDTH, HEAD_TOP - TABLE_TOP, 0.9);
    let heads = [
        (HEAD_TERM, COL_TERM, COL_CODE),
        (HEAD_CODE, COL_CODE, COL_NAME),
        (HEAD_NAME, COL_NAME, COL_CREDITS),
        (HEAD_CREDITS, COL_CREDITS, COL_GRADE),
        (HEAD_GRADE, COL_GRADE, RIGHT),
    ];
    for ((ja, en), x0, x1) in heads {
        let cx = (x0 + x1) / 2.0;
        let w = x1 - x0 - 2.0 * CELL_PAD;
        canvas.text_center(ja, cx, TABLE_TOP + 13.0, 7.5, w);
        canvas.text_center(en, cx, TABLE_TOP + 4.5, 6.0, w);
    }
}

fn draw_row(canvas: &mut Canvas<'_, '_>, row: &RowLayout<'_>, credits: Option<&str>, top: f32) {
    let mut line_top = top - ROW_PAD;
    let mut first_baseline = None;
    for (lines, size) in [(&row.ja, row.ja_size), (&row.en, row.en_size)] {
        for line in lines {
            let y = baseline(line_top, size);
            canvas.glyphs(&line.glyphs, COL_NAME + CELL_PAD, y, size, 0.0);
            first_baseline.get_or_insert(y);
            line_top -= size * LEADING;
        }
    }
    let Some(course) = row.course else { return };
    let y = first_baseline.unwrap_or_else(|| baseline(top - ROW_PAD, CELL_SIZE));
    let term = format!("{} {}", course.year, course.term.trim());
    canvas.text(term.trim(), COL_TERM + CELL_PAD, y, CELL_SIZE, COL_CODE - COL_TERM - 2.0 * CELL_PAD);
    canvas.text(course.code.trim(), COL_CODE + CELL_PAD, y, CELL_SIZE, COL_NAME - COL_CODE - 2.0 * CELL_PAD);
    if let Some(credits) = credits {
        canvas.text_center(credits, (COL_CREDITS + COL_GRADE) / 2.0, y, CELL_SIZE, COL_GRADE - COL_CREDITS - 2.0 * CELL_PAD);
    }
    canvas.text_center(course.grade.trim(), (COL_GRADE + RIGHT) / 2.0, y, CELL_SIZE, RIGHT - COL_GRADE - 2.0 * CELL_PAD);
}

/// Totals rows directly under the table (whose rows end at `top`), then
/// "以下余白".
fn draw_totals(canvas: &mut Canvas<'_, '_>, p: &Prepared, top: f32) {
    let bottom = top - 2.0 * TOTAL_ROW_H;
    canvas.ops.push_str("0.4 0.4 0.4 RG\n");
    canvas.stroke_rect(MARGIN, bottom, WIDTH, 2.0 * TOTAL_ROW_H, 0.5);
    canvas.hline(MARGIN, RIGHT, top - TOTAL_ROW_H, 0.3);
    canvas.vline(COL_CREDITS, bottom, top, 0.3);
    canvas.vline(COL_GRADE, top - TOTAL_ROW_H, top, 0.3);
    // A double rule between the courses and the totals.
    canvas.hline(MARGIN, RIGHT, top - 1.5, 0.3);
    canvas.ops.push_str("0 0 0 RG\n");

    let label_w = COL_CREDITS - MARGIN - 2.0 * CELL_PAD;
    let y1 = top - 12.0;
    canvas.text_right(TOTAL_CREDITS, COL_CREDITS - CELL_PAD, y1, 8.0, label_w);
    canvas.text_center(&p.total_credits, (COL_CREDITS + COL_GRADE) / 2.0, y1, 9.0, COL_GRADE - COL_CREDITS - 2.0 * CELL_PAD);
    let y2 = y1 - TOTAL_ROW_H;
    canvas.text_right(TOTAL_GPA, COL_CREDITS - CELL_PAD, y2, 8.0, label_w);
    canvas.text_center(&p.gpa, (COL_CREDITS + RIGHT) / 2.0, y2, 9.0, RIGHT - COL_CREDITS - 2.0 * CELL_PAD);

    canvas.text_center(END_OF_RECORD, PAGE_W / 2.0, bottom - 12.0, 8.0, WIDTH);
}

/// Statement, date of issue, issuer and the verification QR code at the
/// bottom of the last page.
fn draw_closing(canvas: &mut Canvas<'_, '_>, data: &TranscriptData, p: &Prepared) -> Result<(), DocumentError> {
    canvas.text(STATEMENT.0, MARGIN, 200.0, 10.0, WIDTH);
    canvas.text(STATEMENT.1, MARGIN, 188.0, 8.0, WIDTH);
    // a digital copy shared with a recipient: whom it was issued for, left
    // of the issuer, between the statement and the QR code
    if !data.submitted_to.trim().is_empty() {
        let (ja, en) = super::LABEL_SUBMITTED;
        canvas.text(&format!("{ja} {en}"), MARGIN, 174.0, 6.5, ISSUER_X - MARGIN - 10.0);
        canvas.text(data.submitted_to.trim(), MARGIN, 163.0, 9.0, ISSUER_X - MARGIN - 10.0);
    }

    let issuer_x = ISSUER_X;
    let issuer_w = RIGHT - issuer_x;
    let value_x = issuer_x + 76.0;
    canvas.text(LABEL_ISSUED.0, issuer_x, 162.0, 7.5, 70.0);
    canvas.text(LABEL_ISSUED.1, issuer_x, 154.0, 5.5, 70.0);
    canvas.text(&p.issued.ja(), value_x, 162.0, 9.5, RIGHT - value_x);
    canvas.text(&p.issued.en(), value_x, 152.0, 7.5, RIGHT - value_x);
    canvas.text(data.university_ja.trim(), issuer_x, 126.0, 14.0, issuer_w);
    canvas.text(data.university_en.trim(), issuer_x, 112.0, 8.5, issuer_w);
    canvas.text(REGISTRAR.0, issuer_x, 92.0, 10.0, issuer_w);
    canvas.text(REGISTRAR.1, issuer_x, 81.0, 8.0, issuer_w);

    // QR symbol at the left; its quiet zone stays above the foot rule and
    // below the statement.
    let qr_y = 84.0;
    let link = super::printed_link(&data.verify_url, &data.verification_code, &data.offline_proof);
    let qr_w = canvas.qr(&link, MARGIN, qr_y, QR_SIDE)?;
    let x = MARGIN + qr_w + 10.0;
    let w = issuer_x - x - 10.0;
    canvas.text(FOOT_SERIAL, x, 146.0, 6.5, w);
    canvas.text(data.serial.trim(), x, 136.0, 9.0, w);
    canvas.text(FOOT_CODE, x, 122.0, 6.5, w);
    canvas.text(data.verification_code.trim(), x, 112.0, 9.0, w);
    canvas.text(QR_CAPTION, x, 96.0, 8.5, w);
    canvas.text(data.verify_url.trim(), x, 86.0, 6.5, w);
    Ok(())
}

/// The issuer block of the last page starts here.
const ISSUER_X: f32 = 318.0;

/// Where the seal goes on the last page: over the end of 教務部長 /
/// Registrar as `draw_closing` draws them, 50 pt, between the foot rule
/// (56) and the university's English name (baseline 112).
pub(super) fn seal_box(shaper: &mut Shaper<'_>) -> SealBox {
    seal_over_title(shaper, &[(REGISTRAR.0, 10.0), (REGISTRAR.1, 8.0)], ISSUER_X, RIGHT - ISSUER_X, FOOT_RULE + 2.0, 50.0)
}

fn draw_foot(canvas: &mut Canvas<'_, '_>, data: &TranscriptData, page: usize, pages: usize) {
    canvas.ops.push_str("0.4 0.4 0.4 RG\n");
    canvas.hline(MARGIN, RIGHT, FOOT_RULE, 0.4);
    canvas.ops.push_str("0 0 0 RG\n");
    let ids = format!(
        "{FOOT_SERIAL} {}　{FOOT_CODE} {}",
        data.serial.trim(),
        data.verification_code.trim()
    );
    canvas.text(&ids, MARGIN, 45.0, 7.0, WIDTH - 170.0);
    let number = format!("{page} / {pages} ページ　Page {page} of {pages}");
    canvas.text_right(&number, RIGHT, 45.0, 7.5, 160.0);
}

/// Render a transcript as PDF: A4 portrait, as many pages as the course
/// table needs.
///
/// Every page repeats the header and the table head and has the serial,
/// the verification code and the page number ("1 / 3 ページ Page 1 of 3")
/// in its foot; the totals, the certifying statement, the issuer and the
/// verification QR code are on the last page. Fails like [`super::render`]:
/// [`DocumentError::MissingGlyphs`] when a character cannot be drawn,
/// [`DocumentError::InvalidField`] for a malformed date or number.
pub fn render_transcript(fonts: &FontSet, data: &TranscriptData) -> Result<Vec<u8>, DocumentError> {
    let mut shaper = Shaper::new(fonts.faces()?);
    let contents = transcript_pages(&mut shaper, data)?;
    let page_count = contents.len();
    let title = format!("{} / {}", data.title_ja.trim(), data.title_en.trim());
    let out = assemble(fonts, shaper, contents, &title)?;
    tracing::debug!(pages = page_count, courses = data.courses.len(), bytes = out.len(), "rendered transcript PDF");
    Ok(out)
}

/// The content streams of a transcript's pages, drawn with `shaper` (so
/// that one PDF can hold transcripts and certificates with one font subset).
pub(super) fn transcript_pages(shaper: &mut Shaper<'_>, data: &TranscriptData) -> Result<Vec<String>, DocumentError> {
    let prepared = prepare(data)?;
    let rows: Vec<RowLayout<'_>> = if data.courses.is_empty() {
        vec![layout_row(shaper, None, NO_COURSES.0, NO_COURSES.1)]
    } else {
        data.courses.iter().map(|c| layout_row(shaper, Some(c), &c.name_ja, &c.name_en)).collect()
    };
    let heights: Vec<f32> = rows.iter().map(|r| r.height).collect();
    let pages = paginate(&heights)?;

    let mut contents = Vec::with_capacity(pages.len());
    for (index, page_rows) in pages.iter().enumerate() {
        let last = index + 1 == pages.len();
        let mut canvas = Canvas { shaper: &mut *shaper, ops: String::new() };
        draw_header(&mut canvas, data, &prepared);
        let mut y = TABLE_TOP;
        for &i in page_rows {
            let credits = data.courses.get(i).and(prepared.credits.get(i)).map(String::as_str);
            draw_row(&mut canvas, &rows[i], credits, y);
            y -= rows[i].height;
            if page_rows.last() != Some(&i) {
                canvas.ops.push_str("0.7 0.7 0.7 RG\n");
                canvas.hline(MARGIN, RIGHT, y, 0.25);
            }
        }
        // Table frame and column rules from the head to the last row.
        canvas.ops.push_str("0.4 0.4 0.4 RG\n");
        canvas.stroke_rect(MARGIN, y, WIDTH, HEAD_TOP - y, 0.5);
        canvas.hline(MARGIN, RIGHT, TABLE_TOP, 0.4);
        for x in [COL_CODE, COL_NAME, COL_CREDITS, COL_GRADE] {
            canvas.vline(x, y, HEAD_TOP, 0.3);
        }
        canvas.ops.push_str("0 0 0 RG\n");
        if last {
            draw_totals(&mut canvas, &prepared, y);
            draw_closing(&mut canvas, data, &prepared)?;
        } else {
            canvas.text_right(CONTINUED, RIGHT, y - 11.0, 7.0, WIDTH);
        }
        draw_foot(&mut canvas, data, index + 1, pages.len());
        contents.push(canvas.ops);
    }
    Ok(contents)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::super::tests::{
        assert_qr_matches, decode_qr, drawn_qr, font_bytes, ipaex_set, pdftotext, run, write_temp, IPAEX_MINCHO,
    };
    use super::super::width;
    use super::super::verification_link;
    use super::*;
    use std::path::Path;
    use std::process::Command;
    use std::time::Instant;
    use ttf_parser::Face;

    const LONG_JA: &str = "現代日本文学における都市空間の表象と記憶に関する比較文化論的研究演習（卒業論文指導を含む）";
    const LONG_EN: &str = "Seminar in Comparative Cultural Studies on the Representation and Memory of Urban Space in Modern Japanese Literature (including Graduation Thesis Supervision)";

    const NAMES: [(&str, &str); 12] = [
        ("日本文学概論", "Introduction to Japanese Literature"),
        ("古典文法", "Classical Japanese Grammar"),
        ("英語コミュニケーションI", "English Communication I"),
        ("情報リテラシー", "Information Literacy"),
        ("近代文学講読", "Readings in Modern Literature"),
        ("言語学入門", "Introduction to Linguistics"),
        ("書道", "Calligraphy"),
        ("日本語史", "History of the Japanese Language"),
        ("比較文学特論", "Advanced Topics in Comparative Literature"),
        ("統計学基礎", "Basic Statistics"),
        ("体育実技", "Physical Education"),
        ("漢文学演習", "Seminar in Classical Chinese Literature"),
    ];
    const GRADES: [&str; 6] = ["S", "A", "B", "C", "F", "P"];

    fn course(i: usize) -> CourseRow {
        let (ja, en) = NAMES[i % NAMES.len()];
        CourseRow {
            year: 2019 + (i / 18) as u16,
            term: ["前期", "後期"][i % 2].into(),
            code: format!("LIT{:03}", 100 + i),
            name_ja: ja.into(),
            name_en: en.into(),
            credits: [2.0, 2.0, 1.0, 4.0, 0.5][i % 5],
            grade: GRADES[i % GRADES.len()].into(),
        }
    }

    fn transcript(courses: usize) -> TranscriptData {
        let mut list: Vec<CourseRow> = (0..courses).map(course).collect();
        if courses > 5 {
            list[5].name_ja = LONG_JA.into();
            list[5].name_en = LONG_EN.into();
            list[5].grade = "認定".into();
        }
        TranscriptData {
            title_ja: "成績証明書".into(),
            title_en: "Academic Transcript".into(),
            university_ja: "国立証明大学".into(),
            university_en: "Shomei National University".into(),
            faculty_ja: "文学部".into(),
            department_ja: "日本文学科".into(),
            holder_name_kanji: "山田 花子".into(),
            holder_name_roman: "YAMADA Hanako".into(),
            student_no: "19L1234".into(),
            birth_date: "2000-04-01".into(),
            admission_date: "2019-04-01".into(),
            graduation_date: "2023-03-25".into(),
            courses: list,
            total_credits: 124.0,
            gpa: 3.214,
            serial: "SH-2026-000200-1".into(),
            verification_code: "T7RN-SC2P-4XQM".into(),
            verify_url: "https://shomei.example.ac.jp/verify".into(),
            offline_proof: String::new(),
            submitted_to: String::new(),
            issue_date: "2026-11-23".into(),
        }
    }

    fn page_count(path: &Path) -> usize {
        let info = run("pdfinfo", &[], path);
        info.lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("pdfinfo prints Pages:\n{info}"))
    }

    /// pdftotext -layout, one string per page.
    fn layout_pages(path: &Path) -> Vec<String> {
        let output = Command::new("pdftotext")
            .args(["-layout", "-enc", "UTF-8"])
            .arg(path)
            .arg("-")
            .output()
            .expect("run pdftotext");
        assert!(output.status.success());
        let text = String::from_utf8(output.stdout).expect("UTF-8");
        let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
        if pages.last().is_some_and(|p| p.trim().is_empty()) {
            pages.pop();
        }
        pages
    }

    #[test]
    fn seventy_courses_flow_over_pages_with_header_and_numbers() {
        let data = transcript(70);
        let started = Instant::now();
        let pdf = render_transcript(&ipaex_set(), &data).expect("render");
        let elapsed = started.elapsed();
        let file = write_temp(&pdf);
        let pages = page_count(file.path());
        eprintln!("70-course transcript: {pages} pages, {} bytes, rendered in {elapsed:?}", pdf.len());
        assert!(pages >= 3, "{pages} pages");
        assert!(pdf.len() < 300_000, "{} bytes", pdf.len());
        let report = run("qpdf", &["--check"], file.path());
        assert!(report.contains("No syntax or stream encoding errors"), "{report}");

        let text = pdftotext(file.path());
        for needle in [
            "日本文学概論",
            "Introduction to Japanese Literature",
            "古典文法",
            "Classical Japanese Grammar",
            "漢文学演習",
            "Seminar in Classical Chinese Literature",
            "LIT169",
            "認定",
            "124",
            "3.21",
            "累積GPA Cumulative GPA",
            "以下余白",
            "上記のとおり相違ないことを証明する。",
            "2026年11月23日",
            "2023年3月25日",
            "April 1, 2000",
        ] {
            assert!(text.contains(needle), "pdftotext output lacks {needle:?}:\n{text}");
        }

        let by_page = layout_pages(file.path());
        assert_eq!(by_page.len(), pages);
        for (n, page) in (1..).zip(&by_page) {
            for needle in [
                format!("{n} / {pages} ページ"),
                format!("Page {n} of {pages}"),
                "成績証明書".to_string(),
                "国立証明大学".to_string(),
                "山田 花子".to_string(),
                "YAMADA Hanako".to_string(),
                "19L1234".to_string(),
                "SH-2026-000200-1".to_string(),
                "T7RN-SC2P-4XQM".to_string(),
                "授業科目名".to_string(),
            ] {
                assert!(page.contains(&needle), "page {n} lacks {needle:?}:\n{page}");
            }
            let last = n == pages;
            assert_eq!(page.contains("以下余白"), last, "page {n}");
            assert_eq!(page.contains("次ページへ続く"), !last, "page {n}");
            assert_eq!(drawn_qr(&pdf, n as u32).is_some(), last, "QR code only on the last page");
        }
        // Each course row reads: year term, code, name, credits, grade.
        let all = by_page.concat();
        for i in [0, 1, 2, 3, 4, 17, 40, 69] {
            let c = course(i);
            let line = all
                .lines()
                .find(|l| l.contains(&c.code))
                .unwrap_or_else(|| panic!("no row for {}", c.code));
            let cells: Vec<&str> = line.split_whitespace().collect();
            let credits = format_credits("credits", c.credits).expect("valid");
            assert_eq!(
                cells,
                vec![&c.year.to_string(), c.term.as_str(), c.code.as_str(), c.name_ja.as_str(), &credits, c.grade.as_str()],
                "{line}"
            );
        }
        // Every row made it, each exactly once.
        for i in 0..70 {
            assert_eq!(all.matches(&format!("LIT{:03}", 100 + i)).count(), 1, "LIT{:03}", 100 + i);
        }

        let link = verification_link(&data.verify_url, &data.verification_code);
        let qr = drawn_qr(&pdf, pages as u32).expect("QR on the last page");
        assert_qr_matches(&qr, &link);
        assert_eq!(decode_qr(&pdf, pages as u32), link);
    }

    #[test]
    fn single_course_is_one_page() {
        let data = transcript(1);
        let pdf = render_transcript(&ipaex_set(), &data).expect("render");
        let file = write_temp(&pdf);
        assert_eq!(page_count(file.path()), 1);
        run("qpdf", &["--check"], file.path());
        let text = pdftotext(file.path());
        for needle in ["1 / 1 ページ", "Page 1 of 1", "日本文学概論", "3.21", "124", "以下余白", "真偽確認 / Verify"] {
            assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
        }
        assert!(!text.contains("次ページへ続く"));
        assert_eq!(decode_qr(&pdf, 1), verification_link(&data.verify_url, &data.verification_code));
    }

    #[test]
    fn no_courses_and_unknown_dates_still_render() {
        let mut data = transcript(0);
        data.birth_date = String::new();
        data.graduation_date = " ".into();
        data.total_credits = 0.0;
        data.gpa = 0.0;
        let pdf = render_transcript(&ipaex_set(), &data).expect("render");
        let file = write_temp(&pdf);
        assert_eq!(page_count(file.path()), 1);
        let text = pdftotext(file.path());
        assert!(text.contains("履修科目なし") && text.contains("0.00"), "{text}");
        assert_eq!(text.matches(NO_DATE).count(), 2, "{text}");
    }

    #[test]
    fn long_course_names_stay_inside_their_column() {
        let data = font_bytes(IPAEX_MINCHO);
        let mut shaper = Shaper::new(vec![Face::parse(&data, 0).expect("parse")]);
        let max = NAME_W - 2.0 * CELL_PAD;
        let fonts_check = |row: &RowLayout<'_>| {
            for line in &row.ja {
                assert!(width(&line.glyphs, row.ja_size, 0.0) <= max + 1e-3);
            }
            for line in &row.en {
                assert!(width(&line.glyphs, row.en_size, 0.0) <= max + 1e-3);
            }
        };
        let short = layout_row(&mut shaper, None, "書道", "Calligraphy");
        assert_eq!((short.ja.len(), short.ja_size, short.en.len(), short.en_size), (1, JA_SIZE, 1, EN_SIZE));

        // A long name takes two lines, smaller if need be, never more width.
        let long = layout_row(&mut shaper, None, LONG_JA, LONG_EN);
        fonts_check(&long);
        assert_eq!((long.ja.len(), long.en.len()), (2, 2));
        assert!(long.ja_size >= JA_MIN && long.en_size >= EN_MIN);
        let joined: String = long.ja.iter().flat_map(|l| l.glyphs.iter().map(|g| g.ch)).collect();
        assert_eq!(joined, LONG_JA);

        // An absurd one wraps onto more lines at the smallest size.
        let absurd = layout_row(&mut shaper, None, &LONG_JA.repeat(3), &LONG_EN.repeat(3));
        fonts_check(&absurd);
        assert!(absurd.ja.len() > 2 && absurd.ja_size == JA_MIN && absurd.en_size == EN_MIN);
        assert!(absurd.height > long.height);

        let mut t = transcript(3);
        t.courses[1].name_ja = LONG_JA.repeat(3);
        t.courses[1].name_en = LONG_EN.repeat(3);
        t.courses[2].code = "VERY-LONG-COURSE-CODE-2019-XYZ".into();
        let pdf = render_transcript(&ipaex_set(), &t).expect("render");
        let text = pdftotext(write_temp(&pdf).path());
        assert!(text.contains("VERY-LONG-COURSE-CODE-2019-XYZ"), "{text}");
    }

    #[test]
    fn pagination_keeps_the_totals_with_a_row() {
        let room = TABLE_TOP - TABLE_BOTTOM;
        let closing_room = TABLE_TOP - CLOSING_TOP - TOTALS_H;
        // Rows that fill the first page completely: the totals need a new
        // page and the last row moves along with them.
        let h = room / 20.0;
        let pages = paginate(&[h; 20]).expect("paginate");
        assert_eq!(pages.len(), 2);
        assert_eq!(pages, vec![(0..19).collect::<Vec<_>>(), vec![19]]);
        // Room for the totals: one page.
        let fits = (closing_room / h).floor() as usize;
        assert_eq!(paginate(&vec![h; fits]).expect("paginate").len(), 1);
        assert_eq!(paginate(&vec![h; fits + 1]).expect("paginate").len(), 2);
        // 45 rows: page 1 takes 20, page 2 takes 20, page 3 the rest.
        let pages = paginate(&[h; 45]).expect("paginate");
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![20, 20, 5]);
        assert!(matches!(paginate(&[room + 1.0]), Err(DocumentError::Layout(_))));
        // A row too tall to share a page with the closing block stays where
        // it is; the totals get a page of their own.
        assert_eq!(paginate(&[closing_room + 1.0]).expect("paginate"), vec![vec![0], vec![]]);
        assert_eq!(paginate(&[h, closing_room + 1.0]).expect("paginate"), vec![vec![0, 1], vec![]]);
    }

    #[test]
    fn bad_input_is_rejected() {
        let fonts = ipaex_set();
        let kichi = '\u{20BB7}';
        let mut t = transcript(3);
        t.courses[2].name_ja = "𠮷田先生の文学演習".into();
        match render_transcript(&fonts, &t) {
            Err(DocumentError::MissingGlyphs(chars)) => assert_eq!(chars, vec![kichi]),
            other => panic!("expected MissingGlyphs, got {:?}", other.map(|b| b.len())),
        }
        let mut t = transcript(3);
        t.holder_name_kanji = "𠮷田 太郎".into();
        assert!(matches!(render_transcript(&fonts, &t), Err(DocumentError::MissingGlyphs(_))));

        for (field, mutate) in [
            ("admission_date", Box::new(|t: &mut TranscriptData| t.admission_date = "2019-4-1".into()) as Box<dyn Fn(&mut TranscriptData)>),
            ("graduation_date", Box::new(|t: &mut TranscriptData| t.graduation_date = "2023/03/25".into())),
            ("issue_date", Box::new(|t: &mut TranscriptData| t.issue_date = "2026-02-30".into())),
            ("credits", Box::new(|t: &mut TranscriptData| t.courses[0].credits = f32::NAN)),
            ("total_credits", Box::new(|t: &mut TranscriptData| t.total_credits = -1.0)),
            ("gpa", Box::new(|t: &mut TranscriptData| t.gpa = f32::INFINITY)),
        ] {
            let mut t = transcript(2);
            mutate(&mut t);
            match render_transcript(&fonts, &t) {
                Err(DocumentError::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected InvalidField, got {:?}", other.map(|b| b.len())),
            }
        }
    }

    #[test]
    fn an_order_prints_certificates_and_a_transcript_in_one_pdf() {
        use super::super::{render_order, tests::sample, DocumentCopy};
        let docs = vec![
            DocumentCopy::Certificate(sample("SH-2026-000123-1-1", "K7QF-2M9X-PL3D")),
            DocumentCopy::Transcript(transcript(70)),
            DocumentCopy::Certificate(sample("SH-2026-000123-3-1", "Q4RT-8ZV2-MN6C")),
        ];
        let alone = render_transcript(&ipaex_set(), &transcript(70)).expect("transcript");
        let alone_pages = page_count(write_temp(&alone).path());
        let (pdf, pages) = render_order(&ipaex_set(), &docs).expect("render");
        let file = write_temp(&pdf);
        assert_eq!(pages, alone_pages + 2, "two certificate pages around the transcript");
        assert_eq!(page_count(file.path()), pages);
        let report = run("qpdf", &["--check"], file.path());
        assert!(report.contains("No syntax or stream encoding errors"), "{report}");
        let text = layout_pages(file.path());
        assert!(text[0].contains("卒業証明書") && text[0].contains("K7QF-2M9X-PL3D"), "{}", text[0]);
        assert!(text[1].contains("日本文学概論") && text[1].contains(&format!("1 / {alone_pages}")), "{}", text[1]);
        assert!(text[pages - 1].contains("Q4RT-8ZV2-MN6C"), "{}", text[pages - 1]);
        // one font subset serves every page: the order is smaller than its parts
        let cert = super::super::render(&ipaex_set(), &[sample("SH-1", "K7QF-2M9X-PL3D")]).expect("certificate");
        assert!(pdf.len() < alone.len() + 2 * cert.len(), "{} vs {} + 2 x {}", pdf.len(), alone.len(), cert.len());
        assert!(matches!(render_order(&ipaex_set(), &[]), Err(DocumentError::Layout(_))));
    }

    #[test]
    fn credits_are_formatted_with_at_most_one_decimal() {
        assert_eq!(format_credits("c", 2.0).expect("ok"), "2");
        assert_eq!(format_credits("c", 0.5).expect("ok"), "0.5");
        assert_eq!(format_credits("c", 124.0).expect("ok"), "124");
        assert_eq!(format_credits("c", 1.25).expect("ok"), "1.3");
        assert!(format_credits("c", -0.5).is_err());
    }

    #[test]
    fn the_seal_goes_once_into_an_order_and_onto_each_transcripts_last_page() {
        use super::super::tests::{assert_only_the_seal_was_added, assert_seal_over_title, red_box, red_seal_png, sample};
        use super::super::{render_order, render_order_with, DocumentCopy, SealImage};
        let fonts = ipaex_set();
        let seal = SealImage::from_png(&red_seal_png(200)).expect("seal");
        let mut data = transcript(45);
        data.university_en = "Tokyo University of Marine Science and Technology".into();
        let docs = vec![
            DocumentCopy::Certificate(sample("SH-2026-000131-1-1", "K7QF-2M9X-PL3D")),
            DocumentCopy::Transcript(data),
            DocumentCopy::Certificate(sample("SH-2026-000131-3-1", "Q4RT-8ZV2-MN6C")),
        ];
        let (pdf, pages) = render_order_with(&fonts, Some(&seal), &docs).expect("render");
        assert_eq!(pages, 5, "a certificate, a three-page transcript, a certificate");
        let file = write_temp(&pdf);
        assert!(run("qpdf", &["--check"], file.path()).contains("No syntax or stream encoding errors"));

        // one image (and its soft mask) in the file, shown on pages 1, 4 and 5
        let list = run("pdfimages", &["-list"], file.path());
        let rows: Vec<Vec<&str>> = list.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
        let shown = |kind: &str| -> Vec<&str> { rows.iter().filter(|f| f.get(2) == Some(&kind)).map(|f| f[0]).collect() };
        assert_eq!(shown("image"), ["1", "4", "5"], "{list}");
        assert_eq!(shown("smask"), ["1", "4", "5"], "the seal keeps its transparency:\n{list}");
        assert!(rows.iter().all(|f| f.get(10) == rows[0].get(10)), "one image object:\n{list}");
        let doc = lopdf::Document::load_mem(&pdf).expect("lopdf reads the PDF back");
        let images = doc.objects.values().filter_map(|o| o.as_stream().ok()).filter(|s| s.dict.has_type(b"XObject")).count();
        assert_eq!(images, 2, "the image and its soft mask, each stored once");

        // on the transcript, over the end of the issuer's title, nowhere before its last page
        for page in [2, 3] {
            assert_eq!(red_box(&pdf, page), None, "no seal on page {page}");
        }
        assert_seal_over_title(&pdf, 4, &["教務部長", "Registrar"], 50.0);
        assert_only_the_seal_was_added(&pdf, &render_order(&fonts, &docs).expect("plain").0, &[1, 4, 5]);
    }
}
