//! The demo data an empty database gets when `demo_data = true`.

use crate::accounts::passwords::{hash_with, HashCost};
use crate::sealed::SealKey;
use crate::store;
use crate::time::now;
use crate::store::Pool;

pub const GRADUATE_EMAIL: &str = "hanako@example.ac.jp";
pub const GRADUATE_PASSWORD: &str = "Hanako2024pass";
pub const GRADUATE_SECOND_PASSWORD: &str = "Second2024pass";
pub const STAFF_LOGIN: &str = "staff";
pub const STAFF_PASSWORD: &str = "Staff2024pass";
/// The demo staff member's TOTP secret (base32), printed at start so a
/// newcomer can add it to an authenticator app or ask `shomei-backend totp`.
pub const STAFF_TOTP_SECRET: &str = "SHOMEIDEMOTOTPSECRETKEY234567ABC";
/// An enrolled student on the demo roster (S-1): university user ID and password.
pub const STUDENT_ID: &str = "s2401234";
pub const STUDENT_PASSWORD: &str = "Campus2024pass";
/// The demo IC card (FeliCa IDm) linked to the graduate.
pub const CARD_UID: &str = "012E4CD8A1B2C3D4";
pub const CARD_BALANCE: i64 = 3000;

/// Records on the first start of an empty database whether it is a demo.
/// Returns whether it is one: only a database created as a demo ever gets
/// demo data, whatever `demo_data` says later.
pub async fn record_deployment(pool: &Pool, demo_data: bool) -> anyhow::Result<bool> {
    let mut tx = store::begin_write(pool).await?;
    let demo = match store::deployment_is_demo(&mut tx).await? {
        Some(d) => d,
        None => {
            let demo = demo_data && store::university_count(&mut tx).await? == 0;
            store::set_deployment(&mut tx, demo, now()).await?;
            demo
        }
    };
    tx.commit().await?;
    if demo_data && !demo {
        tracing::warn!("demo_data is on, but this database was not created as a demo: nothing is seeded");
    }
    Ok(demo)
}

/// Seeds (or tops up) the demo data of a database created as a demo.
pub async fn seed_if_empty(pool: &Pool, seal: &SealKey) -> anyhow::Result<()> {
    let hash_password = |p: &str| hash_with(&HashCost::default(), p);
    let mut tx = store::begin_write(pool).await?;
    if store::deployment_is_demo(&mut tx).await? != Some(true) {
        anyhow::bail!("not a demo database");
    }
    if store::university_count(&mut tx).await? > 0 {
        // a demo database from before staff had a second factor gets the demo one
        // (and the enrolled student on the roster)
        if let Some(s) = store::staff_by_login(&mut tx, STAFF_LOGIN).await?.filter(|s| s.totp_sealed.is_none()) {
            crate::accounts::set_second_factor(seal, &mut tx, s.id, STAFF_TOTP_SECRET).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        if store::academic_import_count(&mut tx, 1).await? == 0 {
            seed_courses(&mut tx).await?;
        }
        if store::roster_count(&mut tx, 1).await? == 0 {
            seed_roster(&mut tx).await?;
            store::set_faculty_codes_if_empty(&mut tx).await?;
        }
        if store::university_seal(&mut tx, 1).await?.is_none() {
            store::set_university_seal(&mut tx, 1, &demo_seal_png()?).await?;
        }
        if store::school_register_versions(&mut tx, 1).await? == 0 {
            seed_register(&mut tx, seal).await?;
        }
        tx.commit().await?;
        return Ok(());
    }
    store::seed_demo(
        &mut tx,
        &store::DemoSeed {
            graduate_email: GRADUATE_EMAIL,
            graduate_password_hash: &hash_password(GRADUATE_PASSWORD)?,
            graduate_second_hash: &hash_password(GRADUATE_SECOND_PASSWORD)?,
            staff_login: STAFF_LOGIN,
            staff_password_hash: &hash_password(STAFF_PASSWORD)?,
            card_uid: CARD_UID,
            card_balance: CARD_BALANCE,
            now: now(),
        },
    )
    .await?;
    // the graduate's birth date is sealed like every other
    let graduate = store::user_by_email(&mut tx, GRADUATE_EMAIL).await?.ok_or_else(|| anyhow::anyhow!("demo graduate missing"))?;
    let birth = crate::registration::seal_birth_date(seal, graduate.id, "2001-04-02").map_err(|e| anyhow::anyhow!("{e}"))?;
    store::set_birth_dates(&mut tx, graduate.id, &birth).await?;
    // and her registered address (postal orders start from it)
    let personal = crate::registration::Personal {
        birth_date: "2001-04-02".into(),
        postal_code: "100-0001".into(),
        prefecture: "東京都".into(),
        city: "千代田区".into(),
        street: "千代田1-1".into(),
        mobile_phone: "090-1234-5678".into(),
        ..Default::default()
    };
    let sealed = personal.seal(seal, &crate::registration::user_aad(graduate.id)).map_err(|e| anyhow::anyhow!("{e}"))?;
    store::set_user_personal(&mut tx, graduate.id, &sealed).await?;
    // the staff member's second factor, sealed like every other
    let staff = store::staff_by_login(&mut tx, STAFF_LOGIN).await?.ok_or_else(|| anyhow::anyhow!("demo staff missing"))?;
    crate::accounts::set_second_factor(seal, &mut tx, staff.id, STAFF_TOTP_SECRET).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    seed_roster(&mut tx).await?;
    seed_courses(&mut tx).await?;
    seed_register(&mut tx, seal).await?;
    store::set_university_seal(&mut tx, 1, &demo_seal_png()?).await?;
    tx.commit().await?;
    tracing::info!("demo data loaded");
    Ok(())
}

async fn seed_roster(c: &mut store::Conn) -> anyhow::Result<()> {
    store::upsert_roster_entry(
        c,
        1,
        &store::RosterEntry {
            user_id: STUDENT_ID.into(),
            password_hash: hash_with(&HashCost::default(), STUDENT_PASSWORD)?,
            name_kanji: "佐藤 次郎".into(),
            name_kana: "サトウ ジロウ".into(),
            name_roman: "SATO Jiro".into(),
            student_no: "L24-0101".into(),
            faculty_code: "LET".into(),
            department_code: "JLIT".into(),
            email: String::new(),
            card_uid: String::new(),
        },
        now(),
    )
    .await?;
    Ok(())
}

/// The registrar's school register for the demo graduate and student (D-3:
/// certificates state only what it says), as the demo staff's first import.
pub const DEMO_REGISTER_CSV: &str = "student_no,name_kanji,name_kana,name_roman,birth_date,faculty_code,department_code,degree_ja,degree_en,admission_date,graduation_date,leaving_type
L19-0042,山田 花子,ヤマダ ハナコ,YAMADA Hanako,2001-04-02,LET,JLIT,学士（文学）,Bachelor of Arts,2020-04-01,2024-03-25,graduated
L24-0101,佐藤 次郎,サトウ ジロウ,SATO Jiro,2005-06-15,LET,JLIT,,,2024-04-01,,enrolled
";

async fn seed_register(c: &mut store::Conn, seal: &SealKey) -> anyhow::Result<()> {
    store::set_faculty_codes_if_empty(c).await?;
    let faculties = store::faculties(c).await?;
    let departments: Vec<(String, String)> = store::departments(c)
        .await?
        .into_iter()
        .filter_map(|d| faculties.iter().find(|f| f.id == d.parent_id).map(|f| (f.code.clone(), d.code)))
        .collect();
    let rows = crate::registrar::school_register::parse(DEMO_REGISTER_CSV, &departments).map_err(|e| anyhow::anyhow!("demo register: {e:?}"))?;
    let staff = store::staff_by_login(c, STAFF_LOGIN).await?.ok_or_else(|| anyhow::anyhow!("demo staff missing"))?;
    crate::registrar::school_register::insert_version(c, seal, "demo-register.csv", &rows, &staff).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The demo graduate's courses: four years of Japanese literature, each
/// course taken once, from general education in the first year to the
/// graduation thesis in the fourth, as the registrar's first import.
pub const DEMO_COURSES: [[(&str, &str, &str, u8, &str); 5]; 8] = [
    // 2020 前期 / spring
    [("LIT101", "日本文学概論", "Introduction to Japanese Literature", 2, "A"), ("LIN101", "日本語学概論", "Introduction to Japanese Linguistics", 2, "B"),
     ("ENG101", "英語コミュニケーションⅠ", "English Communication I", 2, "A"), ("INF101", "情報リテラシー", "Information Literacy", 2, "S"),
     ("GEN101", "大学での学び方", "Academic Skills for University Study", 2, "A")],
    // 2020 後期 / autumn
    [("LIT102", "日本文学史（古代・中世）", "History of Japanese Literature: Ancient and Medieval", 2, "B"), ("LIN102", "日本語の音声と文字", "Sounds and Scripts of Japanese", 2, "A"),
     ("ENG102", "英語コミュニケーションⅡ", "English Communication II", 2, "B"), ("HIS101", "日本史概説", "Survey of Japanese History", 2, "A"),
     ("PHI101", "哲学入門", "Introduction to Philosophy", 2, "C")],
    // 2021 前期
    [("LIT201", "日本文学史（近世・近代）", "History of Japanese Literature: Early Modern and Modern", 2, "A"), ("LIT211", "古典文学講読Ⅰ", "Reading Classical Literature I", 2, "A"),
     ("LIN201", "日本語文法論", "Japanese Grammar", 2, "B"), ("CUL201", "日本文化論", "Japanese Culture", 2, "A"),
     ("LAN201", "中国語Ⅰ", "Chinese I", 2, "B")],
    // 2021 後期
    [("LIT212", "古典文学講読Ⅱ", "Reading Classical Literature II", 2, "S"), ("LIT221", "近代文学講読", "Reading Modern Literature", 2, "A"),
     ("LIT231", "漢文学入門", "Introduction to Classical Chinese Literature", 2, "B"), ("LIN202", "日本語史", "History of the Japanese Language", 2, "A"),
     ("LAN202", "中国語Ⅱ", "Chinese II", 2, "B")],
    // 2022 前期
    [("LIT301", "源氏物語演習", "Seminar: The Tale of Genji", 4, "S"), ("LIT311", "近世文学演習", "Seminar: Early Modern Literature", 4, "A"),
     ("LIT321", "近現代詩論", "Modern and Contemporary Poetry", 2, "A"), ("EDU301", "国語科教育法Ⅰ", "Teaching Japanese I", 2, "B"),
     ("LIB301", "書誌学", "Bibliography", 2, "A")],
    // 2022 後期
    [("LIT302", "平安文学演習", "Seminar: Heian Literature", 4, "A"), ("LIT322", "近代小説演習", "Seminar: The Modern Novel", 4, "S"),
     ("LIT331", "比較文学", "Comparative Literature", 2, "B"), ("EDU302", "国語科教育法Ⅱ", "Teaching Japanese II", 2, "A"),
     ("LIB302", "古文書学", "Paleography", 2, "B")],
    // 2023 前期
    [("LIT401", "卒業研究演習Ⅰ", "Graduation Research Seminar I", 4, "A"), ("LIT411", "文学理論", "Literary Theory", 2, "A"),
     ("LIT421", "日本語表現法", "Japanese Writing and Expression", 2, "S"), ("CUL401", "出版文化論", "Publishing and Print Culture", 2, "B"),
     ("CAR401", "キャリアデザイン", "Career Design", 2, "A")],
    // 2023 後期
    [("LIT402", "卒業研究演習Ⅱ", "Graduation Research Seminar II", 4, "S"), ("LIT499", "卒業論文", "Graduation Thesis", 8, "S"),
     ("LIT431", "現代文学特講", "Special Lecture: Contemporary Literature", 2, "A"), ("LIN431", "社会言語学", "Sociolinguistics", 2, "A"),
     ("CUL431", "日本の芸能", "Japanese Performing Arts", 2, "B")],
];

async fn seed_courses(c: &mut store::Conn) -> anyhow::Result<()> {
    let mut csv = String::from("student_no,year,term,code,name_ja,name_en,credits,grade\n");
    for (k, term_courses) in DEMO_COURSES.iter().enumerate() {
        let (year, term) = (2020 + k / 2, if k % 2 == 0 { "前期" } else { "後期" });
        for (code, ja, en, credits, grade) in term_courses {
            csv.push_str(&format!("L19-0042,{year},{term},{code},{ja},{en},{credits},{grade}\n"));
        }
    }
    let rows = crate::registrar::academic::parse(&csv).map_err(|e| anyhow::anyhow!("demo courses: {e:?}"))?;
    let id = store::insert_academic_import(c, 1, "demo.csv", rows.len() as i64, None, now()).await?;
    for r in &rows {
        store::insert_course_result(c, id, r).await?;
    }
    Ok(())
}

/// The font the demo seal's characters are cut from (installed by
/// deploy/install-deps; the certificate PDFs' font too).
const SEAL_FONT: &str = "/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf";

/// The characters of the demo university's seal, column by column from the
/// right, top to bottom: 証明大学長印, as a university president's 公印 reads.
pub const SEAL_TEXT: [[char; 2]; 3] = [['証', '明'], ['大', '学'], ['長', '印']];

/// The demo university's seal as a registrar's scan of a 公印 looks: a red
/// square frame with 証明大学長印 in three columns read from the right, each
/// character stretched to its cell as seal engravers do, transparent
/// around it. Without the font, a plain red frame and cross.
pub fn demo_seal_png() -> anyhow::Result<Vec<u8>> {
    let img = match std::fs::read(SEAL_FONT) {
        Ok(font) => engraved_seal(&font)?,
        Err(e) => {
            tracing::warn!(font = SEAL_FONT, error = %e, "demo seal drawn without characters");
            plain_seal()
        }
    };
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

const SEAL_SIDE: u32 = 240;
const SEAL_RED: [u8; 3] = [200, 30, 30];

fn plain_seal() -> image::RgbaImage {
    let c = SEAL_SIDE as f32 / 2.0;
    image::RgbaImage::from_fn(SEAL_SIDE, SEAL_SIDE, |x, y| {
        let (dx, dy) = ((x as f32 - c).abs(), (y as f32 - c).abs());
        let frame = dx.max(dy) > c - 14.0 && dx.max(dy) < c - 3.0;
        let cross = (dx < 3.0 || dy < 3.0) && dx.max(dy) < c - 14.0;
        let [r, g, b] = SEAL_RED;
        image::Rgba([r, g, b, if frame || cross { 235 } else { 0 }])
    })
}

/// Glyph outlines flattened to line segments (font units, y up).
#[derive(Default)]
struct Segments {
    lines: Vec<((f32, f32), (f32, f32))>,
    at: (f32, f32),
    start: (f32, f32),
}

impl ttf_parser::OutlineBuilder for Segments {
    fn move_to(&mut self, x: f32, y: f32) {
        self.at = (x, y);
        self.start = (x, y);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        self.lines.push((self.at, (x, y)));
        self.at = (x, y);
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let p0 = self.at;
        for i in 1..=8 {
            let t = i as f32 / 8.0;
            let u = 1.0 - t;
            self.line_to(u * u * p0.0 + 2.0 * u * t * x1 + t * t * x, u * u * p0.1 + 2.0 * u * t * y1 + t * t * y);
        }
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let p0 = self.at;
        for i in 1..=12 {
            let t = i as f32 / 12.0;
            let u = 1.0 - t;
            let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
            self.line_to(a * p0.0 + b * x1 + c * x2 + d * x, a * p0.1 + b * y1 + c * y2 + d * y);
        }
    }
    fn close(&mut self) {
        if self.at != self.start {
            self.lines.push((self.at, self.start));
        }
        self.at = self.start;
    }
}

/// The frame and the six characters, drawn 4x larger and averaged down (anti-aliased).
fn engraved_seal(font: &[u8]) -> anyhow::Result<image::RgbaImage> {
    const SS: u32 = 4;
    let face = ttf_parser::Face::parse(font, 0).map_err(|e| anyhow::anyhow!("seal font: {e}"))?;
    let big = SEAL_SIDE * SS;
    let mut ink = vec![0u8; (big * big) as usize];
    let b = big as f32;
    // the frame: a thick outer line
    let (outer, inner) = (0.015 * b, 0.075 * b);
    for y in 0..big {
        for x in 0..big {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let edge = fx.min(fy).min(b - fx).min(b - fy);
            if edge > outer && edge < inner {
                ink[(y * big + x) as usize] = 1;
            }
        }
    }
    // three columns of two characters inside it, right to left
    let area = (inner + 0.02 * b, b - inner - 0.02 * b);
    let (cell_w, cell_h) = ((area.1 - area.0) / 3.0, (area.1 - area.0) / 2.0);
    for (col, chars) in SEAL_TEXT.iter().enumerate() {
        for (row, ch) in chars.iter().enumerate() {
            let glyph = face.glyph_index(*ch).ok_or_else(|| anyhow::anyhow!("the seal font has no {ch}"))?;
            let mut seg = Segments::default();
            let bbox = face.outline_glyph(glyph, &mut seg).ok_or_else(|| anyhow::anyhow!("no outline for {ch}"))?;
            let x0 = area.1 - (col as f32 + 1.0) * cell_w;
            let y0 = area.0 + row as f32 * cell_h;
            let pad = 0.04 * cell_w;
            // stretched to fill its cell, as a seal's characters are
            let sx = (cell_w - 2.0 * pad) / (bbox.x_max - bbox.x_min).max(1) as f32;
            let sy = (cell_h - 2.0 * pad) / (bbox.y_max - bbox.y_min).max(1) as f32;
            let map = |(x, y): (f32, f32)| (x0 + pad + (x - bbox.x_min as f32) * sx, y0 + pad + (bbox.y_max as f32 - y) * sy);
            let lines: Vec<_> = seg.lines.iter().map(|(a, b)| (map(*a), map(*b))).collect();
            fill_nonzero(&mut ink, big, &lines);
        }
    }
    let [r, g, bl] = SEAL_RED;
    Ok(image::RgbaImage::from_fn(SEAL_SIDE, SEAL_SIDE, |x, y| {
        let mut n = 0u32;
        for dy in 0..SS {
            for dx in 0..SS {
                n += ink[((y * SS + dy) * big + x * SS + dx) as usize] as u32;
            }
        }
        image::Rgba([r, g, bl, (n * 235 / (SS * SS)) as u8])
    }))
}

/// Fills the shape `lines` outline (nonzero winding) into `ink` (side x side).
fn fill_nonzero(ink: &mut [u8], side: u32, lines: &[((f32, f32), (f32, f32))]) {
    let mut crossings: Vec<(f32, i32)> = Vec::new();
    for y in 0..side {
        let fy = y as f32 + 0.5;
        crossings.clear();
        for &((x1, y1), (x2, y2)) in lines {
            if (y1 <= fy && y2 > fy) || (y2 <= fy && y1 > fy) {
                let x = x1 + (fy - y1) * (x2 - x1) / (y2 - y1);
                crossings.push((x, if y2 > y1 { 1 } else { -1 }));
            }
        }
        crossings.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut winding = 0;
        for pair in crossings.windows(2) {
            winding += pair[0].1;
            if winding != 0 {
                let from = (pair[0].0 + 0.5).max(0.0) as u32;
                let to = ((pair[1].0 + 0.5).max(0.0) as u32).min(side);
                for x in from..to {
                    ink[(y * side + x) as usize] = 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo seal is a framed 公印 with a character in each of its six
    /// cells (red ink, transparent paper), not an empty grid.
    #[test]
    fn the_demo_seal_has_its_six_characters_in_a_frame() {
        let png = demo_seal_png().expect("seal");
        let img = image::load_from_memory(&png).expect("a PNG").to_rgba8();
        assert_eq!(img.dimensions(), (SEAL_SIDE, SEAL_SIDE));
        let inked = |x0: u32, y0: u32, w: u32, h: u32| {
            let mut n = 0;
            for y in y0..y0 + h {
                for x in x0..x0 + w {
                    let p = img.get_pixel(x, y);
                    if p[3] > 128 {
                        assert_eq!([p[0], p[1], p[2]], SEAL_RED, "red ink only");
                        n += 1;
                    }
                }
            }
            n as f32 / (w * h) as f32
        };
        assert!(std::path::Path::new(SEAL_FONT).exists(), "{SEAL_FONT} (deploy/install-deps installs it)");
        // the frame: the outer band is ink all round
        assert!(inked(6, 6, SEAL_SIDE - 12, 8) > 0.9 && inked(6, SEAL_SIDE - 14, SEAL_SIDE - 12, 8) > 0.9, "frame");
        // six cells inside, each holding a character: some ink, far from full
        let (lo, hi) = (24u32, SEAL_SIDE - 24);
        let (cw, ch) = ((hi - lo) / 3, (hi - lo) / 2);
        for col in 0..3 {
            for row in 0..2 {
                let share = inked(lo + col * cw + 4, lo + row * ch + 4, cw - 8, ch - 8);
                assert!((0.12..0.75).contains(&share), "cell {col},{row} is {share:.2} ink");
            }
        }
        // the paper around the frame is transparent
        assert_eq!(img.get_pixel(1, 1)[3], 0);
    }

    /// The demo transcript reads like a real one: each course taken once,
    /// five a term over eight terms.
    #[test]
    fn the_demo_transcript_takes_each_course_once() {
        let all: Vec<_> = DEMO_COURSES.iter().flatten().collect();
        assert_eq!(all.len(), 40);
        let codes: std::collections::HashSet<_> = all.iter().map(|c| c.0).collect();
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.1).collect();
        let english: std::collections::HashSet<_> = all.iter().map(|c| c.2).collect();
        assert_eq!((codes.len(), names.len(), english.len()), (40, 40, 40));
        assert!(DEMO_REGISTER_CSV.contains("2020-04-01"), "the admission date is the register's");
    }
}
