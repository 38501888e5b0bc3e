//! Certificate and transcript PDF rendering.
//!
//! Renders official certificates (one A4 page per copy, [`render`]) and
//! academic transcripts (as many A4 pages as the course table needs,
//! [`render_transcript`]) as PDF with [`lopdf`]. Text is set in embedded,
//! *subsetted* TrueType fonts so that Japanese (kanji, kana) as well as
//! Latin text is drawn exactly as the font designer intended and can be read
//! back by text extractors.
//!
//! lopdf has no support for CID-keyed fonts, so this module builds them from
//! plain PDF objects:
//!
//! ```text
//! Type0 font (Encoding /Identity-H, ToUnicode CMap)
//! └─ CIDFontType2 (CIDSystemInfo Adobe-Identity-0, W widths, CIDToGIDMap /Identity)
//!    └─ FontDescriptor (FontFile2 = subset TrueType program)
//! ```
//!
//! Glyphs are looked up with [`ttf_parser`]; the fonts are subset with
//! [`subsetter`], which renumbers the kept glyphs. Because CIDToGIDMap is
//! `/Identity`, the two-byte codes written in the content streams are the
//! *new* glyph ids of the subset font.
//!
//! Fonts are tried in the order given to [`FontSet::new`]: a character the
//! first font lacks is drawn with the next font that has it. Each font that
//! ends up being used becomes its own Type0 font resource. When no font can
//! draw a character, rendering fails with [`DocumentError::MissingGlyphs`]
//! naming the characters: an official document must never show a blank box
//! or a `.notdef` glyph in place of a name.
//!
//! Every certificate page, and the last page of a transcript, carries a QR
//! code for [`verification_link`] (the public verification page with the
//! document's code), drawn as filled rectangles in the content stream: it
//! stays sharp at any zoom and in any print resolution.

pub mod credential;
pub mod proof;
mod receipt;
mod seal;
pub mod ltv;
pub mod signing;
pub mod timestamp;
mod transcript;
pub mod wording;

pub use receipt::{render_receipt, render_test_page, ReceiptData, ReceiptLine};
pub use seal::SealImage;
pub use transcript::{render_transcript, CourseRow, TranscriptData};

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lopdf::{dictionary, Dictionary, Document, Object, ObjectId, Stream, StringFormat};
use qrcodegen::{QrCode, QrCodeEcc};
use subsetter::GlyphRemapper;
use ttf_parser::Face;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Everything that can go wrong while loading fonts or rendering a document.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// A font could not be parsed, is not usable for embedding, or could not
    /// be subset.
    #[error("font error: {0}")]
    Font(String),
    /// None of the fonts in the [`FontSet`] can draw these characters (in
    /// order of first appearance, without duplicates).
    #[error("no font can draw {}", describe_chars(.0))]
    MissingGlyphs(Vec<char>),
    /// A field of a [`CertificateCopy`] has a value that cannot be rendered
    /// (e.g. a date that is not `YYYY-MM-DD`).
    #[error("invalid {field}: {value:?}")]
    InvalidField {
        /// Name of the offending field.
        field: &'static str,
        /// The value as given.
        value: String,
    },
    /// The content does not fit on the page, or there is nothing to render.
    #[error("layout error: {0}")]
    Layout(String),
    /// Writing the PDF failed.
    #[error("PDF error: {0}")]
    Pdf(String),
}

impl From<lopdf::Error> for DocumentError {
    fn from(err: lopdf::Error) -> Self {
        DocumentError::Pdf(err.to_string())
    }
}

fn describe_chars(chars: &[char]) -> String {
    chars
        .iter()
        .map(|c| format!("'{c}' (U+{:04X})", u32::from(*c)))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Fonts
// ---------------------------------------------------------------------------

/// An ordered list of TrueType fonts; the first is preferred, the others are
/// fallbacks for characters the earlier ones lack.
pub struct FontSet {
    fonts: Vec<FontEntry>,
}

impl std::fmt::Debug for FontSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.fonts.iter().map(|font| &font.name)).finish()
    }
}

/// One parsed and validated font. The bytes are owned; `ttf_parser::Face`
/// borrows, so faces are re-parsed (cheap: only the table directory) when
/// needed.
struct FontEntry {
    name: String,
    data: Vec<u8>,
    /// PostScript name, sanitised for use as a PDF name.
    ps_name: String,
    /// Font-descriptor values, already scaled to 1000 units per em.
    descriptor: DescriptorMetrics,
}

struct DescriptorMetrics {
    flags: i64,
    bbox: [i64; 4],
    italic_angle: f32,
    ascent: i64,
    descent: i64,
    cap_height: i64,
    stem_v: i64,
}

impl FontSet {
    /// `fonts` are (display name, TrueType bytes), first = preferred.
    pub fn new(fonts: Vec<(String, Vec<u8>)>) -> Result<FontSet, DocumentError> {
        if fonts.is_empty() {
            return Err(DocumentError::Font("the font set is empty".into()));
        }
        let mut entries = Vec::with_capacity(fonts.len());
        for (index, (name, data)) in fonts.into_iter().enumerate() {
            let (ps_name, descriptor) = {
                let face = Face::parse(&data, 0)
                    .map_err(|e| DocumentError::Font(format!("{name}: cannot parse font: {e}")))?;
                validate_face(&name, &face)?;
                (postscript_name(&face, &name, index), descriptor_metrics(&face))
            };
            entries.push(FontEntry { name, data, ps_name, descriptor });
        }
        Ok(FontSet { fonts: entries })
    }

    /// Characters of `text` that no font in the set can draw.
    ///
    /// Each character is reported once, in order of first appearance.
    /// Control characters and variation selectors are not drawn on their
    /// own and so are never reported.
    pub fn missing_chars(&self, text: &str) -> Vec<char> {
        let faces: Vec<Face<'_>> =
            self.fonts.iter().filter_map(|f| Face::parse(&f.data, 0).ok()).collect();
        let mut missing = Vec::new();
        for c in text.chars() {
            if is_ignorable(c) || missing.contains(&c) {
                continue;
            }
            if find_glyph(&faces, c).is_none() {
                missing.push(c);
            }
        }
        missing
    }

    /// The display names of the fonts, in order of preference.
    pub fn font_names(&self) -> Vec<&str> {
        self.fonts.iter().map(|f| f.name.as_str()).collect()
    }

    fn faces(&self) -> Result<Vec<Face<'_>>, DocumentError> {
        self.fonts
            .iter()
            .map(|f| {
                Face::parse(&f.data, 0)
                    .map_err(|e| DocumentError::Font(format!("{}: cannot parse font: {e}", f.name)))
            })
            .collect()
    }
}

fn validate_face(name: &str, face: &Face<'_>) -> Result<(), DocumentError> {
    if face.tables().glyf.is_none() {
        return Err(DocumentError::Font(format!(
            "{name}: only TrueType (glyf) outlines are supported, not CFF/OpenType-CFF"
        )));
    }
    let has_unicode_cmap = face
        .tables()
        .cmap
        .is_some_and(|cmap| cmap.subtables.into_iter().any(|s| s.is_unicode()));
    if !has_unicode_cmap {
        return Err(DocumentError::Font(format!("{name}: font has no Unicode cmap")));
    }
    if face.tables().os2.is_some() {
        if face.permissions() == Some(ttf_parser::Permissions::Restricted) {
            return Err(DocumentError::Font(format!(
                "{name}: the font licence forbids embedding (OS/2 fsType restricted)"
            )));
        }
        if !face.is_subsetting_allowed() || !face.is_outline_embedding_allowed() {
            return Err(DocumentError::Font(format!(
                "{name}: the font licence forbids embedding a subset of its outlines"
            )));
        }
    }
    Ok(())
}

/// The PostScript name (name id 6), reduced to characters that are safe in
/// a PDF name; falls back to the display name, then to `FontN`.
fn postscript_name(face: &Face<'_>, display: &str, index: usize) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_graphic() && !"()<>[]{}/%#".contains(*c))
            .take(63)
            .collect()
    };
    let from_table = face
        .names()
        .into_iter()
        .filter(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
        .filter_map(|n| n.to_string())
        .map(|s| clean(&s))
        .find(|s| !s.is_empty());
    from_table
        .or_else(|| Some(clean(display)).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("Font{index}"))
}

fn descriptor_metrics(face: &Face<'_>) -> DescriptorMetrics {
    let scale = 1000.0 / f32::from(face.units_per_em());
    let s = |v: i16| (f32::from(v) * scale).round() as i64;
    let bbox = face.global_bounding_box();
    // Flags: 4 = symbolic (required for CID fonts whose glyphs are not in
    // the standard Latin set), 1 = fixed pitch, 64 = italic.
    let mut flags = 4;
    if face.is_monospaced() {
        flags |= 1;
    }
    if face.is_italic() {
        flags |= 64;
    }
    // No font stores StemV; this is the usual estimate from the weight class.
    let weight = f32::from(face.weight().to_number());
    let stem_v = (10.0 + 220.0 * ((weight - 50.0) / 900.0).powi(2)).round() as i64;
    DescriptorMetrics {
        flags,
        bbox: [s(bbox.x_min), s(bbox.y_min), s(bbox.x_max), s(bbox.y_max)],
        italic_angle: face.italic_angle(),
        ascent: s(face.ascender()),
        descent: s(face.descender()),
        cap_height: s(face.capital_height().unwrap_or(face.ascender())),
        stem_v,
    }
}

/// Characters that are never drawn on their own.
fn is_ignorable(c: char) -> bool {
    c.is_control() || is_variation_selector(c)
}

fn is_variation_selector(c: char) -> bool {
    matches!(u32::from(c), 0xFE00..=0xFE0F | 0xE0100..=0xE01EF | 0x180B..=0x180D)
}

/// First font (index, glyph id) that has a real glyph for `c`.
fn find_glyph(faces: &[Face<'_>], c: char) -> Option<(usize, u16)> {
    faces.iter().enumerate().find_map(|(i, face)| {
        face.glyph_index(c).filter(|g| g.0 != 0).map(|g| (i, g.0))
    })
}

// ---------------------------------------------------------------------------
// Shaping: text -> positioned glyphs (no kerning or ligatures; none are
// needed for Japanese and for the short Latin lines of a certificate).
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Glyph {
    font: usize,
    /// Glyph id in the original font.
    gid: u16,
    /// Advance in em, rounded to the 1/1000 em used in the PDF `W` array so
    /// that our layout and the viewer's agree exactly.
    adv: f32,
    /// The character this glyph was chosen for.
    ch: char,
    /// The text it represents (`ch` plus a variation selector, if any).
    text: String,
}

/// Glyphs of one font that made it onto a page.
struct UsedFont {
    remapper: GlyphRemapper,
    /// Widths in 1000 units/em, indexed by new glyph id.
    widths: Vec<i64>,
    /// Unicode text per new glyph id (for the ToUnicode CMap).
    unicode: BTreeMap<u16, String>,
}

struct Shaper<'f> {
    faces: Vec<Face<'f>>,
    used: Vec<Option<UsedFont>>,
    missing: Vec<char>,
}

impl<'f> Shaper<'f> {
    fn new(faces: Vec<Face<'f>>) -> Self {
        let used = faces.iter().map(|_| None).collect();
        Shaper { faces, used, missing: Vec::new() }
    }

    fn advance_units(&self, font: usize, gid: u16) -> i64 {
        let face = &self.faces[font];
        let adv = face.glyph_hor_advance(ttf_parser::GlyphId(gid)).unwrap_or(0);
        (f32::from(adv) * 1000.0 / f32::from(face.units_per_em())).round() as i64
    }

    /// Map text to glyphs. Characters that no font has are recorded in
    /// `self.missing` and left out; the caller turns them into an error.
    fn shape(&mut self, text: &str) -> Vec<Glyph> {
        let mut out = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let c = if c == '\t' { ' ' } else { c };
            if is_ignorable(c) {
                continue;
            }
            let selector = chars.peek().copied().filter(|n| is_variation_selector(*n));
            if selector.is_some() {
                chars.next();
            }
            let Some((font, mut gid)) = find_glyph(&self.faces, c) else {
                if !self.missing.contains(&c) {
                    self.missing.push(c);
                }
                continue;
            };
            let mut glyph_text = String::from(c);
            if let Some(vs) = selector {
                // Ideographic variation sequences (e.g. 葛 + U+E0100), common
                // in names from the family register: use the variant glyph if
                // the font has it, otherwise the base character's glyph.
                if let Some(v) = self.faces[font].glyph_variation_index(c, vs) {
                    gid = v.0;
                    glyph_text.push(vs);
                } else {
                    tracing::debug!(
                        "font {font} has no variant U+{:04X}+U+{:04X}; using the base glyph",
                        u32::from(c),
                        u32::from(vs)
                    );
                }
            }
            let adv = self.advance_units(font, gid) as f32 / 1000.0;
            out.push(Glyph { font, gid, adv, ch: c, text: glyph_text });
        }
        out
    }

    /// Register a glyph for embedding and return its CID (= new glyph id).
    fn cid(&mut self, g: &Glyph) -> u16 {
        let notdef_width = self.advance_units(g.font, 0);
        let width = self.advance_units(g.font, g.gid);
        let used = self.used[g.font].get_or_insert_with(|| UsedFont {
            remapper: GlyphRemapper::new(),
            widths: vec![notdef_width],
            unicode: BTreeMap::new(),
        });
        let new = used.remapper.remap(g.gid);
        if usize::from(new) == used.widths.len() {
            used.widths.push(width);
        }
        used.unicode.entry(new).or_insert_with(|| g.text.clone());
        new
    }
}

/// Width in points of a run of glyphs with character spacing `tc` between
/// glyphs (not after the last one).
fn width(glyphs: &[Glyph], size: f32, tc: f32) -> f32 {
    let adv: f32 = glyphs.iter().map(|g| g.adv).sum();
    adv * size + tc * glyphs.len().saturating_sub(1) as f32
}

// ---------------------------------------------------------------------------
// Line breaking
// ---------------------------------------------------------------------------

/// Characters after which a line may break anywhere (CJK ideographs, kana,
/// CJK punctuation, full-width forms).
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x11FF
        | 0x2E80..=0x2FFF
        | 0x3000..=0x30FF
        | 0x3130..=0x318F
        | 0x31F0..=0x31FF
        | 0x3200..=0x9FFF
        | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFFEF
        | 0x20000..=0x3FFFF)
}

/// Kinsoku: characters that must not start a line.
fn no_line_start(c: char) -> bool {
    "、。，．・：；？！‼⁇⁈⁉゛゜ヽヾゝゞ々〻ー）〕］｝〉》」』】〙〗〟’”｠»ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ…‥〜～,.:;!?)]}%％"
        .contains(c)
}

/// Kinsoku: characters that must not end a line.
fn no_line_end(c: char) -> bool {
    "（〔［｛〈《「『【〘〖〝‘“｟«([{".contains(c)
}

#[derive(Debug)]
struct Line {
    glyphs: Vec<Glyph>,
    /// Last line of its paragraph (never justified).
    last: bool,
}

/// Break `text` into lines no wider than `max_width` points.
///
/// Spaces are break opportunities; CJK text may break between any two
/// characters, except where kinsoku rules forbid it; Latin words are kept
/// whole unless a single word is wider than the line (a long URL), which is
/// then broken between characters. `\n` forces a break.
fn wrap(shaper: &mut Shaper<'_>, text: &str, size: f32, max_width: f32) -> Vec<Line> {
    enum Token {
        Space(Vec<Glyph>),
        Word(Vec<Glyph>),
    }
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let glyphs = shaper.shape(paragraph);
        // Tokenise.
        let mut tokens: Vec<Token> = Vec::new();
        let mut glue_next = false;
        for g in glyphs {
            let c = g.ch;
            if c == ' ' {
                match tokens.last_mut() {
                    Some(Token::Space(s)) => s.push(g),
                    _ => tokens.push(Token::Space(vec![g])),
                }
                glue_next = false;
                continue;
            }
            let attach_to_previous = glue_next
                || no_line_start(c)
                || match tokens.last() {
                    // Latin letters/digits continue the current word.
                    Some(Token::Word(w)) => {
                        !is_cjk(c) && w.last().is_some_and(|p| !is_cjk(p.ch))
                    }
                    _ => false,
                };
            match tokens.last_mut() {
                Some(Token::Word(w)) if attach_to_previous => w.push(g),
                _ => tokens.push(Token::Word(vec![g])),
            }
            glue_next = no_line_end(c);
        }

        // Fill lines greedily.
        let mut line: Vec<Glyph> = Vec::new();
        let mut pending_space: Vec<Glyph> = Vec::new();
        for token in tokens {
            match token {
                Token::Space(s) => pending_space = s,
                Token::Word(word) => {
                    let space_w = if line.is_empty() { 0.0 } else { width(&pending_space, size, 0.0) };
                    let word_w = width(&word, size, 0.0);
                    let line_w = width(&line, size, 0.0);
                    if line.is_empty() || line_w + space_w + word_w <= max_width {
                        if !line.is_empty() {
                            line.append(&mut pending_space);
                        }
                        line.extend(word);
                    } else {
                        lines.push(Line { glyphs: std::mem::take(&mut line), last: false });
                        line = word;
                    }
                    pending_space.clear();
                    // A single word wider than the line: break it anywhere.
                    while width(&line, size, 0.0) > max_width && line.len() > 1 {
                        let mut fit = 1;
                        while fit < line.len() && width(&line[..=fit], size, 0.0) <= max_width {
                            fit += 1;
                        }
                        let rest = line.split_off(fit);
                        lines.push(Line { glyphs: std::mem::replace(&mut line, rest), last: false });
                    }
                }
            }
        }
        lines.push(Line { glyphs: line, last: true });
    }
    lines
}

// ---------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------

/// Format a number for a content stream: at most two decimals, no trailing
/// zeros.
fn num(v: f32) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Where and how [`Canvas::paragraph`] sets wrapped lines.
#[derive(Clone, Copy)]
struct Block {
    /// Left edge.
    x: f32,
    /// Baseline of the first line.
    top: f32,
    size: f32,
    /// Baseline-to-baseline distance.
    leading: f32,
    max_w: f32,
    justify: bool,
}

/// Builds one page's content stream.
struct Canvas<'a, 'f> {
    shaper: &'a mut Shaper<'f>,
    ops: String,
}

impl Canvas<'_, '_> {
    /// Draw glyphs with their baseline starting at (x, y).
    fn glyphs(&mut self, glyphs: &[Glyph], x: f32, y: f32, size: f32, tc: f32) {
        if glyphs.is_empty() {
            return;
        }
        let mut ops = format!("BT {} Tc {} {} Td", num(tc), num(x), num(y));
        let mut current_font = None;
        for g in glyphs {
            if current_font != Some(g.font) {
                if current_font.is_some() {
                    ops.push_str("> Tj");
                }
                let _ = write!(ops, " /F{} {} Tf <", g.font, num(size));
                current_font = Some(g.font);
            }
            let cid = self.shaper.cid(g);
            let _ = write!(ops, "{cid:04X}");
        }
        ops.push_str("> Tj ET\n");
        self.ops.push_str(&ops);
    }

    /// Draw text left-aligned at x, shrinking it if it is wider than `max_w`.
    fn text(&mut self, text: &str, x: f32, y: f32, size: f32, max_w: f32) {
        let glyphs = self.shaper.shape(text);
        let size = fit(&glyphs, size, 0.0, max_w);
        self.glyphs(&glyphs, x, y, size, 0.0);
    }

    /// Draw text right-aligned so it ends at x.
    fn text_right(&mut self, text: &str, x: f32, y: f32, size: f32, max_w: f32) {
        let glyphs = self.shaper.shape(text);
        let size = fit(&glyphs, size, 0.0, max_w);
        let w = width(&glyphs, size, 0.0);
        self.glyphs(&glyphs, x - w, y, size, 0.0);
    }

    /// Draw text centred on the page, with `tracking` em of extra space
    /// between characters.
    fn centered(&mut self, text: &str, y: f32, size: f32, tracking: f32, max_w: f32) {
        let glyphs = self.shaper.shape(text);
        let size = fit(&glyphs, size, tracking, max_w);
        let tc = tracking * size;
        let w = width(&glyphs, size, tc);
        self.glyphs(&glyphs, (PAGE_W - w) / 2.0, y, size, tc);
    }

    /// Draw wrapped lines from baseline `block.top` downwards; justify
    /// non-final lines when `block.justify` (used for Japanese, where the glyphs are all
    /// full-width and inter-character spacing is the natural way to fill a
    /// line). Returns the baseline of the last line drawn.
    fn paragraph(&mut self, lines: &[Line], block: Block) -> f32 {
        let Block { x, top, size, leading, max_w, justify } = block;
        let mut baseline = top;
        for (i, line) in lines.iter().enumerate() {
            baseline = top - leading * i as f32;
            let mut tc = 0.0;
            if justify && !line.last && line.glyphs.len() > 1 {
                let slack = max_w - width(&line.glyphs, size, 0.0);
                let per_gap = slack / (line.glyphs.len() - 1) as f32;
                // Only stretch a little; a short line stays ragged.
                if slack > 0.0 && per_gap < 0.25 * size {
                    tc = per_gap;
                }
            }
            self.glyphs(&line.glyphs, x, baseline, size, tc);
        }
        baseline
    }

    /// Draw text centred on `cx`, shrinking it if it is wider than `max_w`.
    fn text_center(&mut self, text: &str, cx: f32, y: f32, size: f32, max_w: f32) {
        let glyphs = self.shaper.shape(text);
        let size = fit(&glyphs, size, 0.0, max_w);
        let w = width(&glyphs, size, 0.0);
        self.glyphs(&glyphs, cx - w / 2.0, y, size, 0.0);
    }

    /// Fill a rectangle with a grey level (0 = black, 1 = white); the fill
    /// colour is black again afterwards.
    fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, gray: f32) {
        let _ = writeln!(self.ops, "{} g {} {} {} {} re f 0 g", num(gray), num(x), num(y), num(w), num(h));
    }

    fn vline(&mut self, x: f32, y0: f32, y1: f32, line_width: f32) {
        let _ = writeln!(self.ops, "{} w {} {} m {} {} l S", num(line_width), num(x), num(y0), num(x), num(y1));
    }

    /// Draw a QR code for `link` whose symbol (without the quiet zone) has
    /// its lower-left corner at (x, y) and is at most `side` points wide.
    /// The caller keeps a quiet zone of 4 modules around it free. Returns
    /// the symbol's actual width.
    ///
    /// Each run of dark modules in a row becomes one rectangle; all of them
    /// are filled as one path in a coordinate system of one unit per module,
    /// so adjacent modules share exact edges (no hairline seams).
    fn qr(&mut self, link: &str, x: f32, y: f32, side: f32) -> Result<f32, DocumentError> {
        let code = QrCode::encode_text(link, QrCodeEcc::Medium)
            .map_err(|e| DocumentError::Layout(format!("verification link is too long for a QR code: {e}")))?;
        let n = code.size();
        // Module size in whole 1/100 pt, as written to the content stream.
        let module = (side / n as f32 * 100.0).floor() / 100.0;
        if module < QR_MIN_MODULE {
            return Err(DocumentError::Layout(format!(
                "verification link is too long: its QR code ({n}×{n} modules) does not fit in {side} pt"
            )));
        }
        let _ = writeln!(self.ops, "q 0 0 0 rg {m} 0 0 {m} {} {} cm", num(x), num(y), m = num(module));
        for row in 0..n {
            let mut col = 0;
            while col < n {
                if !code.get_module(col, row) {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < n && code.get_module(col, row) {
                    col += 1;
                }
                // Row 0 is the top row of the symbol.
                let _ = writeln!(self.ops, "{start} {} {} 1 re", n - 1 - row, col - start);
            }
        }
        self.ops.push_str("f Q\n");
        Ok(module * n as f32)
    }

    fn stroke_rect(&mut self, x: f32, y: f32, w: f32, h: f32, line_width: f32) {
        let _ = writeln!(self.ops, "{} w {} {} {} {} re S", num(line_width), num(x), num(y), num(w), num(h));
    }

    fn hline(&mut self, x0: f32, x1: f32, y: f32, line_width: f32) {
        let _ = writeln!(self.ops, "{} w {} {} m {} {} l S", num(line_width), num(x0), num(y), num(x1), num(y));
    }
}

/// The font size at which `glyphs` fit into `max_w` (never larger than
/// `size`).
fn fit(glyphs: &[Glyph], size: f32, tracking: f32, max_w: f32) -> f32 {
    let w = width(glyphs, size, tracking * size);
    if w > max_w && w > 0.0 {
        size * max_w / w
    } else {
        size
    }
}

// ---------------------------------------------------------------------------
// Verification QR code
// ---------------------------------------------------------------------------

/// Quiet zone around a QR symbol, in modules (ISO/IEC 18004 asks for 4);
/// the layouts keep it free, the tests check that they do.
#[cfg(test)]
const QR_QUIET: f32 = 4.0;
/// Smallest module drawn, in points (0.21 mm); below this a phone camera
/// struggles with a printed code.
const QR_MIN_MODULE: f32 = 0.6;
/// Width of the QR symbol on certificates and transcripts (about 24.7 mm
/// without the quiet zone).
const QR_SIDE: f32 = 70.0;
/// Caption next to every QR code.
const QR_CAPTION: &str = "真偽確認 / Verify";

/// The link encoded in a document's QR code: the public verification page
/// (`verify_url`, e.g. `https://host/verify`) with the document's code as
/// its `code` query parameter, e.g.
/// `https://host/verify?code=K7QF-2M9X-PL3D`.
pub fn verification_link(verify_url: &str, verification_code: &str) -> String {
    let url = verify_url.trim();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}code={}", urlencoding::encode(verification_code.trim()))
}

/// What a document's QR code holds: the [`verification_link`], and after it
/// the signed payload in the fragment (`#p=...`, never sent to a server)
/// when there is one.
pub fn printed_link(verify_url: &str, verification_code: &str, offline_proof: &str) -> String {
    let link = verification_link(verify_url, verification_code);
    if offline_proof.is_empty() {
        link
    } else {
        format!("{link}#p={offline_proof}")
    }
}

// ---------------------------------------------------------------------------
// Certificate layout
// ---------------------------------------------------------------------------

/// A4 portrait, in points.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
/// Left/right margin of the text area.
const MARGIN: f32 = 72.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// x of the value column in the holder block.
const VALUE_X: f32 = MARGIN + 100.0;
/// Top baseline and lowest allowed baseline of the body text.
const BODY_TOP: f32 = 452.0;
const BODY_BOTTOM: f32 = 318.0;
/// The issuer block (university, "教務部長 / Registrar") at the lower right.
const ISSUER_X: f32 = PAGE_W / 2.0 + 10.0;
const ISSUER_W: f32 = PAGE_W - MARGIN - ISSUER_X;

/// Fixed wording on every certificate.
const LABEL_NAME: (&str, &str) = ("氏名", "Name");
const LABEL_BIRTH: (&str, &str) = ("生年月日", "Date of Birth");
const LABEL_AFFILIATION: (&str, &str) = ("所属", "Faculty / Department");
const LABEL_ISSUED: (&str, &str) = ("発行日", "Date of Issue");
pub(super) const LABEL_SUBMITTED: (&str, &str) = ("提出先", "Issued for submission to");
const REGISTRAR: (&str, &str) = ("教務部長", "Registrar");
const FOOT_SERIAL: &str = "証明書番号 Serial No.";
const FOOT_CODE: &str = "照合コード Verification Code";
const FOOT_VERIFY: &str =
    "本証明書の真正性は、照合コードにより次のページで確認できます。 The authenticity of this certificate can be verified with the code at:";

/// The foot of an English certificate: caption, serial, code, where to verify.
const FOOT_EN: (&str, &str, &str, &str) = (
    "Verify",
    "Serial No.",
    "Verification Code",
    "The authenticity of this certificate can be verified with the code at:",
);

/// One certificate copy = one page.
#[derive(Clone, Debug)]
pub struct CertificateCopy {
    /// e.g. "卒業証明書".
    pub title_ja: String,
    /// e.g. "Certificate of Graduation".
    pub title_en: String,
    /// University name in Japanese, e.g. "国立証明大学".
    pub university_ja: String,
    /// University name in English.
    pub university_en: String,
    /// Faculty (学部), e.g. "文学部"; may be empty.
    pub faculty_ja: String,
    /// Department (学科), e.g. "日本文学科"; may be empty.
    pub department_ja: String,
    /// The same in English, for an English certificate; may be empty.
    pub faculty_en: String,
    pub department_en: String,
    /// An English certificate (英文証明書): every line in English only.
    /// Otherwise Japanese, with English under each line.
    pub english_only: bool,
    /// Name when in school, e.g. "山田 花子".
    pub holder_name_kanji: String,
    /// e.g. "YAMADA Hanako".
    pub holder_name_roman: String,
    /// `YYYY-MM-DD`; shown as "2000年4月1日" and "April 1, 2000".
    pub birth_date: String,
    /// Japanese body text, e.g. "上記の者は、2023年3月25日 本学文学部日本文学科を卒業したことを証明する。".
    /// Wrapped per character (with kinsoku); `\n` forces a line break.
    pub body_ja: String,
    /// English body text.
    pub body_en: String,
    /// `YYYY-MM-DD`.
    pub issue_date: String,
    /// e.g. "SH-2026-000123-1".
    pub serial: String,
    /// e.g. "K7QF-2M9X-PL3D".
    pub verification_code: String,
    /// Public page where the code can be checked.
    pub verify_url: String,
    /// The signed payload the QR code carries besides the link (see
    /// [`proof`]); empty: the link alone.
    pub offline_proof: String,
    /// Whom a digital copy was issued for ("organisation　name"), printed
    /// under the date of issue; empty on paper and on the graduate's own copy.
    pub submitted_to: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Date {
    year: u32,
    month: u32,
    day: u32,
}

const MONTHS_EN: [&str; 12] = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
];

impl Date {
    /// Parse a strict `YYYY-MM-DD` date.
    fn parse(field: &'static str, value: &str) -> Result<Date, DocumentError> {
        let invalid = || DocumentError::InvalidField { field, value: value.to_string() };
        let parts: Vec<&str> = value.split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            return Err(invalid());
        };
        let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(y, 4) || !digits(m, 2) || !digits(d, 2) {
            return Err(invalid());
        }
        let parse = |s: &str| s.parse::<u32>().map_err(|_| invalid());
        let (year, month, day) = (parse(y)?, parse(m)?, parse(d)?);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(invalid()),
        };
        if day == 0 || day > days {
            return Err(invalid());
        }
        Ok(Date { year, month, day })
    }

    fn ja(&self) -> String {
        format!("{}年{}月{}日", self.year, self.month, self.day)
    }

    fn en(&self) -> String {
        // month is validated to be 1..=12.
        let month = MONTHS_EN.get(self.month as usize - 1).copied().unwrap_or("");
        format!("{month} {}, {}", self.day, self.year)
    }
}

/// Draw one certificate page.
fn draw_certificate(canvas: &mut Canvas<'_, '_>, copy: &CertificateCopy) -> Result<(), DocumentError> {
    // the directory may not know an enrolled student's birth date: the line is then left out
    let birth = if copy.birth_date.is_empty() { None } else { Some(Date::parse("birth_date", &copy.birth_date)?) };
    let issued = Date::parse("issue_date", &copy.issue_date)?;
    let en = copy.english_only;

    // Border: a thin frame with a hairline inside it.
    canvas.ops.push_str("0.25 0.25 0.25 RG\n");
    canvas.stroke_rect(28.0, 28.0, PAGE_W - 56.0, PAGE_H - 56.0, 0.8);
    canvas.stroke_rect(32.5, 32.5, PAGE_W - 65.0, PAGE_H - 65.0, 0.3);
    canvas.ops.push_str("0 0 0 RG 0 0 0 rg\n");

    // Title.
    if en {
        canvas.centered(copy.title_en.trim(), 706.0, 24.0, 0.06, CONTENT_W);
    } else {
        canvas.centered(copy.title_ja.trim(), 712.0, 28.0, 0.25, CONTENT_W);
        canvas.centered(copy.title_en.trim(), 684.0, 13.0, 0.04, CONTENT_W);
    }
    canvas.hline(PAGE_W / 2.0 - 110.0, PAGE_W / 2.0 + 110.0, 668.0, 0.5);

    // Holder block: label column (Japanese over English, or English alone) and value column.
    let value_w = PAGE_W - MARGIN - VALUE_X;
    let label = |canvas: &mut Canvas<'_, '_>, (ja, en_label): (&str, &str), y: f32| {
        if en {
            canvas.text(en_label, MARGIN, y, 10.0, VALUE_X - MARGIN - 8.0);
        } else {
            canvas.text(ja, MARGIN, y, 10.5, VALUE_X - MARGIN - 8.0);
            canvas.text(en_label, MARGIN, y - 11.0, 7.0, VALUE_X - MARGIN - 8.0);
        }
    };
    label(canvas, LABEL_NAME, 612.0);
    if en {
        canvas.text(copy.holder_name_roman.trim(), VALUE_X, 612.0, 20.0, value_w);
    } else {
        canvas.text(copy.holder_name_kanji.trim(), VALUE_X, 612.0, 22.0, value_w);
        canvas.text(copy.holder_name_roman.trim(), VALUE_X, 592.0, 12.0, value_w);
    }

    if let Some(birth) = &birth {
        label(canvas, LABEL_BIRTH, 556.0);
        if en {
            canvas.text(&birth.en(), VALUE_X, 556.0, 12.0, value_w);
        } else {
            canvas.text(&birth.ja(), VALUE_X, 556.0, 12.0, value_w);
            canvas.text(&birth.en(), VALUE_X, 542.0, 10.0, value_w);
        }
    }

    let (faculty, department, sep) = if en {
        (copy.faculty_en.trim(), copy.department_en.trim(), ", ")
    } else {
        (copy.faculty_ja.trim(), copy.department_ja.trim(), "\u{3000}")
    };
    let affiliation = [department, faculty].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let affiliation = if en { affiliation.join(sep) } else { [faculty, department].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(sep) };
    if !affiliation.is_empty() {
        label(canvas, LABEL_AFFILIATION, 506.0);
        canvas.text(&affiliation, VALUE_X, 506.0, 12.0, value_w);
    }

    // Body: Japanese, then English; shrink both together until they fit.
    let mut scale = 1.0_f32;
    let (ja_lines, en_lines, ja_size, en_size) = loop {
        let ja_size = 13.0 * scale;
        // an English certificate sets its body at the size of a Japanese one
        let en_size = if en { 12.5 * scale } else { 10.5 * scale };
        let ja_lines = if en { Vec::new() } else { wrap(canvas.shaper, copy.body_ja.trim(), ja_size, CONTENT_W) };
        let en_lines = wrap(canvas.shaper, copy.body_en.trim(), en_size, CONTENT_W);
        let height = if en {
            (en_lines.len() as f32 - 1.0) * en_size * 1.6
        } else {
            (ja_lines.len() as f32 - 1.0) * ja_size * 1.9 + en_size * 2.8 + (en_lines.len() as f32 - 1.0) * en_size * 1.45
        };
        if BODY_TOP - height >= BODY_BOTTOM {
            break (ja_lines, en_lines, ja_size, en_size);
        }
        scale -= 0.05;
        if scale < 0.6 {
            return Err(DocumentError::Layout(format!(
                "certificate {}: body text does not fit on the page",
                copy.serial
            )));
        }
    };
    let body = Block { x: MARGIN, top: BODY_TOP, size: ja_size, leading: ja_size * 1.9, max_w: CONTENT_W, justify: true };
    let last = canvas.paragraph(&ja_lines, body);
    let (en_top, en_leading) = if en { (BODY_TOP, en_size * 1.6) } else { (last - en_size * 2.8, en_size * 1.45) };
    let body_en = Block { top: en_top, size: en_size, leading: en_leading, justify: false, ..body };
    canvas.paragraph(&en_lines, body_en);

    // Date of issue.
    label(canvas, LABEL_ISSUED, 286.0);
    if en {
        canvas.text(&issued.en(), VALUE_X, 286.0, 12.0, value_w);
    } else {
        canvas.text(&issued.ja(), VALUE_X, 286.0, 12.0, value_w);
        canvas.text(&issued.en(), VALUE_X, 272.0, 10.0, value_w);
    }

    // A digital copy shared with a recipient: whom it was issued for.
    if !copy.submitted_to.trim().is_empty() {
        label(canvas, LABEL_SUBMITTED, 250.0);
        canvas.text(copy.submitted_to.trim(), VALUE_X, 250.0, 11.0, value_w);
    }

    // Issuer.
    let issuer_x = ISSUER_X;
    let issuer_w = ISSUER_W;
    if en {
        canvas.text(copy.university_en.trim(), issuer_x, 214.0, 14.0, issuer_w);
        canvas.text(REGISTRAR.1, issuer_x, 178.0, 12.0, issuer_w);
    } else {
        canvas.text(copy.university_ja.trim(), issuer_x, 222.0, 17.0, issuer_w);
        canvas.text(copy.university_en.trim(), issuer_x, 204.0, 10.5, issuer_w);
        canvas.text(REGISTRAR.0, issuer_x, 178.0, 12.0, issuer_w);
        canvas.text(REGISTRAR.1, issuer_x, 165.0, 9.0, issuer_w);
    }

    // QR code for the verification page, bottom left above the serial and
    // code (its quiet zone ends above the foot rule at 118).
    let qr_y = 134.0;
    let qr_w = canvas.qr(&printed_link(&copy.verify_url, &copy.verification_code, &copy.offline_proof), MARGIN, qr_y, QR_SIDE)?;
    let caption_x = MARGIN + qr_w + 10.0;
    let (caption, foot_serial, foot_code, foot_verify) =
        if en { (FOOT_EN.0, FOOT_EN.1, FOOT_EN.2, FOOT_EN.3) } else { (QR_CAPTION, FOOT_SERIAL, FOOT_CODE, FOOT_VERIFY) };
    canvas.text(caption, caption_x, qr_y + 3.0, 8.5, issuer_x - caption_x - 10.0);

    // Foot: serial, verification code and where to check it.
    canvas.ops.push_str("0.25 0.25 0.25 RG\n");
    canvas.hline(MARGIN, PAGE_W - MARGIN, 118.0, 0.4);
    canvas.ops.push_str("0 0 0 RG\n");
    canvas.text(foot_serial, MARGIN, 102.0, 7.5, 120.0);
    canvas.text(copy.serial.trim(), MARGIN + 120.0, 102.0, 9.0, CONTENT_W / 2.0 - 125.0);
    canvas.text(foot_code, PAGE_W / 2.0, 102.0, 7.5, 120.0);
    canvas.text_right(copy.verification_code.trim(), PAGE_W - MARGIN, 102.0, 9.0, CONTENT_W / 2.0 - 125.0);
    let verify_lines = wrap(canvas.shaper, foot_verify, 7.0, CONTENT_W);
    let foot = Block { x: MARGIN, top: 86.0, size: 7.0, leading: 9.5, max_w: CONTENT_W, justify: false };
    let last = canvas.paragraph(&verify_lines, foot);
    // The URL gets at most two lines above the border; shrink it if needed.
    let mut url_size = 8.5_f32;
    let url_lines = loop {
        let lines = wrap(canvas.shaper, copy.verify_url.trim(), url_size, CONTENT_W);
        if lines.len() <= 2 {
            break lines;
        }
        url_size -= 0.5;
        if url_size < 5.0 {
            return Err(DocumentError::Layout(format!(
                "certificate {}: verify_url is too long for the page foot",
                copy.serial
            )));
        }
    };
    canvas.paragraph(&url_lines, Block { top: last - 11.0, size: url_size, leading: url_size * 1.2, ..foot });
    Ok(())
}

// ---------------------------------------------------------------------------
// PDF assembly
// ---------------------------------------------------------------------------

/// One page per copy (each copy has its own serial and code). A4 portrait.
pub fn render(fonts: &FontSet, copies: &[CertificateCopy]) -> Result<Vec<u8>, DocumentError> {
    let docs: Vec<DocumentCopy> = copies.iter().cloned().map(DocumentCopy::Certificate).collect();
    render_order(fonts, &docs).map(|(pdf, _)| pdf)
}

/// One copy of what an order prints: a one-page certificate or a transcript
/// of as many pages as its course table needs.
#[derive(Clone, Debug)]
pub enum DocumentCopy {
    Certificate(CertificateCopy),
    Transcript(transcript::TranscriptData),
}

impl DocumentCopy {
    fn title(&self) -> (&str, &str) {
        match self {
            DocumentCopy::Certificate(c) => (&c.title_ja, &c.title_en),
            DocumentCopy::Transcript(t) => (&t.title_ja, &t.title_en),
        }
    }
}

/// Everything an order prints, in order, as one PDF (one font subset shared
/// by all copies); returns the PDF and its page count.
pub fn render_order(fonts: &FontSet, docs: &[DocumentCopy]) -> Result<(Vec<u8>, usize), DocumentError> {
    render_order_with(fonts, None, docs)
}

/// The square the seal is stamped into, in points (lower-left corner and
/// side).
#[derive(Clone, Copy, Debug, PartialEq)]
struct SealBox {
    x: f32,
    y: f32,
    side: f32,
}

/// How much of the seal lies left of the end of the issuer's title: a
/// Japanese seal (公印) is stamped over the title's last character, not
/// beside it.
const SEAL_OVERLAP: f32 = 0.3;
/// The seal on a certificate: 62 pt, its bottom well above the foot rule
/// (118) and its top below the descenders of the university's English name
/// (baseline 204), so that it covers the title and nothing else.
const SEAL_SIDE: f32 = 62.0;
const SEAL_BOTTOM: f32 = 139.0;

/// The seal's square over the right end of the issuer's title, whose lines
/// (`(text, size)`, as drawn from `x`, at most `max_w` wide) are given:
/// [`SEAL_OVERLAP`] of the seal left of the longest line's end, never past
/// the issuer column's right edge.
fn seal_over_title(shaper: &mut Shaper<'_>, title: &[(&str, f32)], x: f32, max_w: f32, bottom: f32, side: f32) -> SealBox {
    let end = title
        .iter()
        .map(|(text, size)| {
            let glyphs = shaper.shape(text);
            x + width(&glyphs, fit(&glyphs, *size, 0.0, max_w), 0.0)
        })
        .fold(x, f32::max);
    let left = (end - SEAL_OVERLAP * side).min(x + max_w - side).max(x);
    SealBox { x: left, y: bottom, side }
}

/// Where a certificate's seal goes: over the end of 教務部長 / Registrar
/// (only "Registrar" on an English certificate), as drawn by
/// `draw_certificate`.
fn certificate_seal_box(shaper: &mut Shaper<'_>, copy: &CertificateCopy) -> SealBox {
    let title: &[(&str, f32)] =
        if copy.english_only { &[(REGISTRAR.1, 12.0)] } else { &[(REGISTRAR.0, 12.0), (REGISTRAR.1, 9.0)] };
    seal_over_title(shaper, title, ISSUER_X, ISSUER_W, SEAL_BOTTOM, SEAL_SIDE)
}

/// Ops stamping `seal` into `place`, its aspect ratio kept: a wide seal is
/// centred vertically, a tall one stays at the left (over the title).
fn stamp_seal(seal: &SealImage, place: SealBox) -> String {
    let height = if seal.aspect() >= 1.0 { place.side / seal.aspect() } else { place.side };
    seal::stamp(seal, place.x, place.y + (place.side - height) / 2.0, place.side)
}

/// [`render_order`] with the university's seal stamped on every certificate
/// and on the last page of every transcript (one image in the PDF).
pub fn render_order_with(fonts: &FontSet, seal: Option<&SealImage>, docs: &[DocumentCopy]) -> Result<(Vec<u8>, usize), DocumentError> {
    let Some(first) = docs.first() else {
        return Err(DocumentError::Layout("no certificate copies to render".into()));
    };
    let mut shaper = Shaper::new(fonts.faces()?);
    let mut contents = Vec::with_capacity(docs.len());
    for doc in docs {
        match doc {
            DocumentCopy::Certificate(copy) => {
                let mut canvas = Canvas { shaper: &mut shaper, ops: String::new() };
                draw_certificate(&mut canvas, copy)?;
                contents.push(canvas.ops);
            }
            DocumentCopy::Transcript(data) => contents.extend(transcript::transcript_pages(&mut shaper, data)?),
        }
        // on the certificate's page, on the transcript's last page
        if let (Some(seal), Some(last)) = (seal, contents.last_mut()) {
            let place = match doc {
                DocumentCopy::Certificate(copy) => certificate_seal_box(&mut shaper, copy),
                DocumentCopy::Transcript(_) => transcript::seal_box(&mut shaper),
            };
            last.push_str(&stamp_seal(seal, place));
        }
    }
    let (ja, en) = first.title();
    let title = format!("{} / {}", ja.trim(), en.trim());
    let pages = contents.len();
    let out = assemble_with(fonts, shaper, contents, &title, seal)?;
    tracing::debug!(copies = docs.len(), pages, bytes = out.len(), sealed = seal.is_some(), "rendered order PDF");
    Ok((out, pages))
}

/// A stream compressed with Flate at the fastest level: most of a render's
/// time went into deflating the font subset at the default level, for a few
/// per cent of size.
fn fast_flate(dict: lopdf::Dictionary, data: Vec<u8>) -> Result<Stream, DocumentError> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::with_capacity(data.len() / 2), flate2::Compression::fast());
    z.write_all(&data).map_err(|e| DocumentError::Layout(format!("compressing a stream: {e}")))?;
    let packed = z.finish().map_err(|e| DocumentError::Layout(format!("compressing a stream: {e}")))?;
    let mut stream = Stream::new(dict, packed);
    stream.dict.set("Filter", "FlateDecode");
    stream.allows_compression = false;
    Ok(stream)
}

/// Build the PDF from page content streams (A4 portrait) and embed the
/// glyphs `shaper` has used. Fails with [`DocumentError::MissingGlyphs`] if
/// any text could not be shaped.
fn assemble(fonts: &FontSet, shaper: Shaper<'_>, contents: Vec<String>, title: &str) -> Result<Vec<u8>, DocumentError> {
    assemble_with(fonts, shaper, contents, title, None)
}

/// [`assemble`], with the seal image in the shared resources when given.
fn assemble_with(fonts: &FontSet, shaper: Shaper<'_>, contents: Vec<String>, title: &str, seal: Option<&SealImage>) -> Result<Vec<u8>, DocumentError> {
    if !shaper.missing.is_empty() {
        return Err(DocumentError::MissingGlyphs(shaper.missing));
    }

    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let resources_id = doc.new_object_id();

    let mut kids = Vec::with_capacity(contents.len());
    for ops in contents {
        let stream = fast_flate(dictionary! {}, ops.into_bytes())?;
        let content_id = doc.add_object(stream);
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => resources_id,
        });
        kids.push(Object::Reference(page_id));
    }

    let mut font_resources = Dictionary::new();
    for (index, used) in shaper.used.iter().enumerate() {
        if let Some(used) = used {
            let entry = &fonts.fonts[index];
            let font_id = embed_font(&mut doc, entry, used)?;
            font_resources.set(format!("F{index}"), font_id);
        }
    }
    let mut resources = dictionary! {
        "Font" => font_resources,
        "ProcSet" => vec![Object::from("PDF"), Object::from("Text")],
    };
    if let Some(seal) = seal {
        let image = seal.embed(&mut doc);
        resources.set("XObject", dictionary! { "Seal" => image });
        resources.set("ProcSet", vec![Object::from("PDF"), Object::from("Text"), Object::from("ImageC")]);
    }
    doc.objects.insert(resources_id, Object::Dictionary(resources));

    let page_count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => page_count,
            "MediaBox" => vec![Object::from(0), Object::from(0), Object::Real(PAGE_W), Object::Real(PAGE_H)],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
        "Lang" => Object::string_literal("ja-JP"),
    });
    let info_id = doc.add_object(dictionary! {
        "Title" => pdf_text_string(title),
        "Creator" => Object::string_literal("shomei"),
        "Producer" => Object::string_literal("shomei (lopdf)"),
    });
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set("Info", info_id);

    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| DocumentError::Pdf(e.to_string()))?;
    Ok(out)
}

/// A PDF text string: UTF-16BE with byte-order mark.
fn pdf_text_string(text: &str) -> Object {
    let mut bytes = vec![0xFE, 0xFF];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_be_bytes());
    }
    Object::String(bytes, StringFormat::Hexadecimal)
}

/// Six upper-case letters derived from the font and its glyph set, as the
/// subset prefix of the font name (PDF 32000-1, 9.6.4).
fn subset_tag(ps_name: &str, gids: impl Iterator<Item = u16>) -> String {
    // FNV-1a; any stable hash will do.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: u8| {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    ps_name.bytes().for_each(&mut feed);
    for gid in gids {
        gid.to_be_bytes().into_iter().for_each(&mut feed);
    }
    (0..6)
        .map(|i| char::from(b'A' + ((hash >> (i * 8)) % 26) as u8))
        .collect()
}

/// Embed the used glyphs of one font as a Type0/CIDFontType2 font and
/// return the Type0 font's object id.
fn embed_font(doc: &mut Document, entry: &FontEntry, used: &UsedFont) -> Result<ObjectId, DocumentError> {
    let subset = subsetter::subset(&entry.data, 0, &used.remapper)
        .map_err(|e| DocumentError::Font(format!("{}: subsetting failed: {e}", entry.name)))?;
    tracing::debug!(
        font = %entry.name,
        glyphs = used.remapper.num_gids(),
        original = entry.data.len(),
        subset = subset.len(),
        "subset font"
    );
    let base_font = format!("{}+{}", subset_tag(&entry.ps_name, used.remapper.remapped_gids()), entry.ps_name);

    let subset_len = subset.len() as i64;
    let font_file = fast_flate(dictionary! { "Length1" => subset_len }, subset)?;
    let font_file_id = doc.add_object(font_file);

    let d = &entry.descriptor;
    let descriptor_id = doc.add_object(dictionary! {
        "Type" => "FontDescriptor",
        "FontName" => base_font.clone(),
        "Flags" => d.flags,
        "FontBBox" => d.bbox.iter().map(|v| Object::Integer(*v)).collect::<Vec<_>>(),
        "ItalicAngle" => Object::Real(d.italic_angle),
        "Ascent" => d.ascent,
        "Descent" => d.descent,
        "CapHeight" => d.cap_height,
        "StemV" => d.stem_v,
        "FontFile2" => font_file_id,
    });

    // Widths of CIDs 0..n (CID = new glyph id).
    let widths: Vec<Object> = used.widths.iter().map(|w| Object::Integer(*w)).collect();
    let cid_font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "CIDFontType2",
        "BaseFont" => base_font.clone(),
        "CIDSystemInfo" => dictionary! {
            "Registry" => Object::string_literal("Adobe"),
            "Ordering" => Object::string_literal("Identity"),
            "Supplement" => 0,
        },
        "FontDescriptor" => descriptor_id,
        "DW" => 1000,
        "W" => vec![Object::Integer(0), Object::Array(widths)],
        "CIDToGIDMap" => "Identity",
    });

    let to_unicode = fast_flate(dictionary! {}, to_unicode_cmap(&used.unicode).into_bytes())?;
    let to_unicode_id = doc.add_object(to_unicode);

    Ok(doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type0",
        "BaseFont" => base_font,
        "Encoding" => "Identity-H",
        "DescendantFonts" => vec![Object::Reference(cid_font_id)],
        "ToUnicode" => to_unicode_id,
    }))
}

/// ToUnicode CMap mapping two-byte CIDs to UTF-16BE text.
fn to_unicode_cmap(map: &BTreeMap<u16, String>) -> String {
    let mut cmap = String::from(
        "/CIDInit /ProcSet findresource begin\n\
         12 dict begin\n\
         begincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n\
         /CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(&u16, &String)> = map.iter().filter(|(_, text)| !text.is_empty()).collect();
    // At most 100 entries per bfchar block.
    for chunk in entries.chunks(100) {
        let _ = writeln!(cmap, "{} beginbfchar", chunk.len());
        for (cid, text) in chunk {
            let _ = write!(cmap, "<{cid:04X}> <");
            for unit in text.encode_utf16() {
                let _ = write!(cmap, "{unit:04X}");
            }
            cmap.push_str(">\n");
        }
        cmap.push_str("endbfchar\n");
    }
    cmap.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    cmap
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Debian package fonts-ipaexfont-mincho.
    pub(super) const IPAEX_MINCHO: &str = "/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf";
    /// Debian package fonts-dejavu-core (Latin fallback in one test).
    const DEJAVU_SERIF: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf";

    pub(super) fn font_bytes(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e} (font package not installed?)"))
    }

    pub(super) fn ipaex_set() -> FontSet {
        FontSet::new(vec![("IPAex Mincho".into(), font_bytes(IPAEX_MINCHO))]).expect("IPAex Mincho loads")
    }

    pub(super) fn sample(serial: &str, code: &str) -> CertificateCopy {
        CertificateCopy {
            title_ja: "卒業証明書".into(),
            title_en: "Certificate of Graduation".into(),
            university_ja: "国立証明大学".into(),
            university_en: "Shomei National University".into(),
            faculty_ja: "文学部".into(),
            department_ja: "日本文学科".into(),
            faculty_en: "Faculty of Letters".into(),
            department_en: "Department of Japanese Literature".into(),
            english_only: false,
            holder_name_kanji: "山田 花子".into(),
            holder_name_roman: "YAMADA Hanako".into(),
            birth_date: "2000-04-01".into(),
            body_ja: "上記の者は、2023年3月25日 本学文学部日本文学科を卒業し、学士（文学）の学位を授与されたことを証明する。".into(),
            body_en: "This is to certify that the above-named person graduated from the Department of Japanese Literature, Faculty of Letters, of this University on March 25, 2023, and was awarded the degree of Bachelor of Arts.".into(),
            issue_date: "2026-11-23".into(),
            serial: serial.into(),
            verification_code: code.into(),
            verify_url: "https://shomei.example.ac.jp/verify".into(),
            offline_proof: String::new(),
            submitted_to: String::new(),
        }
    }

    #[test]
    fn an_english_certificate_has_no_japanese_on_it() {
        let mut copy = sample("SH-EN-1", "K7QF-2M9X-PL3D");
        copy.english_only = true;
        let pdf = render(&ipaex_set(), &[copy]).expect("render");
        let file = write_temp(&pdf);
        assert!(run("qpdf", &["--check"], file.path()).contains("No syntax or stream encoding errors"));
        let text = pdftotext(file.path());
        for needle in ["Certificate of Graduation", "YAMADA Hanako", "April 1, 2000", "Department of Japanese Literature, Faculty of Letters", "Date of Issue", "Shomei National University", "Registrar", "Serial No.", "K7QF-2M9X-PL3D", "verified with the code"] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        let japanese: Vec<char> = text.chars().filter(|c| is_cjk(*c) || ('\u{3040}'..='\u{30ff}').contains(c)).collect();
        assert!(japanese.is_empty(), "Japanese on an English certificate: {japanese:?}\n{text}");
    }

    fn two_copies() -> Vec<CertificateCopy> {
        vec![sample("SH-2026-000123-1", "K7QF-2M9X-PL3D"), sample("SH-2026-000123-2", "Q4RT-8ZV2-MN6C")]
    }

    pub(super) fn write_temp(pdf: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".pdf").tempfile().expect("temp file");
        std::io::Write::write_all(&mut file, pdf).expect("write PDF");
        file
    }

    /// Run a command, assert it succeeded and return its stdout.
    pub(super) fn run(program: &str, args: &[&str], path: &Path) -> String {
        let output = Command::new(program)
            .args(args)
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    pub(super) fn pdftotext(path: &Path) -> String {
        let output = Command::new("pdftotext")
            .arg("-enc")
            .arg("UTF-8")
            .arg(path)
            .arg("-")
            .output()
            .expect("run pdftotext");
        assert!(output.status.success(), "pdftotext failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("UTF-8 text")
    }

    /// The QR symbol drawn on a page: module size, lower-left corner (pt)
    /// and the dark modules as (column, row from the top), parsed back from
    /// the content stream.
    pub(super) struct DrawnQr {
        pub(super) module: f32,
        pub(super) x: f32,
        pub(super) y: f32,
        pub(super) dark: std::collections::BTreeSet<(i32, i32)>,
    }

    /// Parse the QR code on page `page` (1-based); None if it has none.
    pub(super) fn drawn_qr(pdf: &[u8], page: u32) -> Option<DrawnQr> {
        let doc = Document::load_mem(pdf).expect("lopdf reads the PDF back");
        let page_id = *doc.get_pages().get(&page).expect("page exists");
        let content = String::from_utf8(doc.get_page_content(page_id).expect("content")).expect("ASCII content");
        let start = content.find("q 0 0 0 rg ")?;
        let end = start + content[start..].find("f Q").expect("QR path is filled");
        let mut lines = content[start..end].lines();
        let cm: Vec<f32> = lines
            .next()
            .expect("cm line")
            .trim_start_matches("q 0 0 0 rg ")
            .trim_end_matches(" cm")
            .split(' ')
            .map(|v| v.parse().expect("number"))
            .collect();
        assert_eq!(cm.len(), 6);
        assert_eq!((cm[0], cm[1], cm[2]), (cm[3], 0.0, 0.0), "square modules, no rotation");
        let mut rects = Vec::new();
        for line in lines {
            let v: Vec<i32> =
                line.trim_end_matches(" re").split(' ').map(|v| v.parse().expect("integer module coordinates")).collect();
            assert_eq!(v.len(), 4, "{line}");
            assert_eq!(v[3], 1, "one rectangle per row run");
            rects.push((v[0], v[1], v[2]));
        }
        let rows = rects.iter().map(|r| r.1).max().unwrap_or(0) + 1;
        let mut dark = std::collections::BTreeSet::new();
        for (x, y, w) in rects {
            for col in x..x + w {
                assert!(dark.insert((col, rows - 1 - y)), "overlapping rectangles");
            }
        }
        Some(DrawnQr { module: cm[0], x: cm[4], y: cm[5], dark })
    }

    /// Assert the drawn symbol is exactly what the encoder produces for `link`.
    pub(super) fn assert_qr_matches(qr: &DrawnQr, link: &str) {
        let code = QrCode::encode_text(link, QrCodeEcc::Medium).expect("encodable");
        let n = code.size();
        let expected: std::collections::BTreeSet<(i32, i32)> =
            (0..n).flat_map(|r| (0..n).map(move |c| (c, r))).filter(|&(c, r)| code.get_module(c, r)).collect();
        assert_eq!(qr.dark, expected, "drawn modules differ from the encoder's matrix");
        let side_mm = qr.module * n as f32 / 72.0 * 25.4;
        assert!(side_mm >= 22.0, "QR symbol is only {side_mm:.1} mm wide");
    }

    /// Rasterise page `page` at 150 dpi, check that the quiet zone around the
    /// QR symbol is blank and decode the symbol with zbarimg.
    pub(super) fn decode_qr(pdf: &[u8], page: u32) -> String {
        let qr = drawn_qr(pdf, page).expect("page has a QR code");
        let file = write_temp(pdf);
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = dir.path().join("page");
        let page_arg = page.to_string();
        let status = Command::new("pdftoppm")
            .args(["-r", "150", "-png", "-singlefile", "-f", &page_arg, "-l", &page_arg])
            .arg(file.path())
            .arg(&prefix)
            .status()
            .expect("run pdftoppm");
        assert!(status.success());
        let png = dir.path().join("page.png");

        // Quiet zone: nothing else may be drawn within 4 modules of the symbol.
        let image = image::open(&png).expect("read PNG").to_luma8();
        let scale = 150.0 / 72.0;
        let n = (qr.dark.iter().map(|d| d.0).max().unwrap_or(0) + 1) as f32;
        let side = qr.module * n;
        let quiet = QR_QUIET * qr.module;
        let (x0, x1) = (qr.x - quiet, qr.x + side + quiet);
        let (y0, y1) = (qr.y - quiet, qr.y + side + quiet);
        let px = |v: f32| (v * scale).round() as u32;
        let mut dirty = 0;
        for row in px(PAGE_H - y1)..px(PAGE_H - y0) {
            for col in px(x0)..px(x1) {
                let (x, y) = (col as f32 / scale, PAGE_H - row as f32 / scale);
                let inside = x > qr.x - 1.0 && x < qr.x + side + 1.0 && y > qr.y - 1.0 && y < qr.y + side + 1.0;
                if !inside && image.get_pixel(col, row).0[0] < 240 {
                    dirty += 1;
                }
            }
        }
        assert_eq!(dirty, 0, "{dirty} dark pixels in the QR quiet zone on page {page}");

        let output = Command::new("zbarimg")
            .args(["--raw", "-q"])
            .arg(&png)
            .output()
            .unwrap_or_else(|e| panic!("cannot run zbarimg (Debian package zbar-tools): {e}"));
        assert!(output.status.success(), "zbarimg found no code: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8(output.stdout).expect("UTF-8");
        let symbols: Vec<&str> = text.lines().collect();
        assert_eq!(symbols.len(), 1, "exactly one symbol on the page: {symbols:?}");
        symbols[0].to_string()
    }

    #[test]
    fn verification_link_appends_the_code() {
        assert_eq!(
            verification_link("https://shomei.example.ac.jp/verify", "K7QF-2M9X-PL3D"),
            "https://shomei.example.ac.jp/verify?code=K7QF-2M9X-PL3D"
        );
        assert_eq!(verification_link(" https://h/verify?lang=en ", " A B "), "https://h/verify?lang=en&code=A%20B");
    }

    #[test]
    fn every_certificate_page_has_a_scannable_qr_code() {
        let copies = two_copies();
        let pdf = render(&ipaex_set(), &copies).expect("render");
        for (page, copy) in (1..).zip(&copies) {
            let link = verification_link(&copy.verify_url, &copy.verification_code);
            assert_eq!(link, format!("https://shomei.example.ac.jp/verify?code={}", copy.verification_code));
            let qr = drawn_qr(&pdf, page).expect("QR code on every page");
            assert_qr_matches(&qr, &link);
            assert_eq!(decode_qr(&pdf, page), link);
        }
        let text = pdftotext(write_temp(&pdf).path());
        assert_eq!(text.matches("真偽確認 / Verify").count(), 2, "{text}");
    }

    #[test]
    fn long_verify_url_still_gives_a_matching_qr_code() {
        let mut copy = sample("SH-2026-000128-1", "LONG-QRQR-0001");
        copy.verify_url = format!("https://shomei.example.ac.jp/verify/{}", "x".repeat(120));
        let pdf = render(&ipaex_set(), &[copy.clone()]).expect("render");
        let qr = drawn_qr(&pdf, 1).expect("QR code");
        assert_qr_matches(&qr, &verification_link(&copy.verify_url, &copy.verification_code));
    }

    #[test]
    fn the_signed_payload_rides_in_the_qr_code_and_a_phone_reads_it_back() {
        let mut docs = [DocumentCopy::Certificate(sample("SH-2026-000129-1", "SIGN-QRQR-0001"))];
        proof::ProofSigner::from_key_bytes([3; 32]).stamp(&mut docs);
        let DocumentCopy::Certificate(copy) = &docs[0] else { unreachable!() };
        assert!(!copy.offline_proof.is_empty());
        let pdf = render(&ipaex_set(), &[copy.clone()]).expect("render");
        let link = printed_link(&copy.verify_url, &copy.verification_code, &copy.offline_proof);
        assert_qr_matches(&drawn_qr(&pdf, 1).expect("QR code"), &link);
        // scanned from the page as printed, the payload verifies with the key and states the copy
        let scanned = decode_qr(&pdf, 1);
        let (_, jws) = scanned.split_once("#p=").expect("a payload in the fragment");
        let public = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
        let claims = proof::verify(&public, jws).expect("the payload verifies");
        assert_eq!((claims.serial.as_str(), claims.code.as_str(), claims.name_kanji.as_str()), ("SH-2026-000129-1", "SIGN-QRQR-0001", copy.holder_name_kanji.as_str()));
    }

    #[test]
    fn two_copies_render_two_pages_with_readable_text() {
        let pdf = render(&ipaex_set(), &two_copies()).expect("render");
        assert!(pdf.starts_with(b"%PDF"), "not a PDF header");
        let file = write_temp(&pdf);

        let info = run("pdfinfo", &[], file.path());
        let pages = info
            .lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .map(|v| v.trim().to_string())
            .expect("pdfinfo prints Pages");
        assert_eq!(pages, "2", "pdfinfo:\n{info}");
        assert!(info.contains("A4"), "page size is A4:\n{info}");

        let text = pdftotext(file.path());
        for needle in [
            "山田 花子",
            "YAMADA Hanako",
            "SH-2026-000123-1",
            "SH-2026-000123-2",
            "K7QF-2M9X-PL3D",
            "Q4RT-8ZV2-MN6C",
            "卒業証明書",
            "2000年4月1日",
            "April 1, 2000",
            "2026年11月23日",
            "国立証明大学",
            "https://shomei.example.ac.jp/verify",
        ] {
            assert!(text.contains(needle), "pdftotext output lacks {needle:?}:\n{text}");
        }
        // Each page carries its own serial: the first page only the first.
        let first_page = text.split('\u{c}').next().unwrap_or_default();
        assert!(first_page.contains("SH-2026-000123-1") && !first_page.contains("SH-2026-000123-2"));
    }

    #[test]
    fn embedded_font_is_a_small_subset() {
        let pdf = render(&ipaex_set(), &two_copies()).expect("render");
        let font_size = font_bytes(IPAEX_MINCHO).len();
        assert!(font_size > 4_000_000, "the full font is several MB ({font_size})");
        assert!(pdf.len() < 300_000, "PDF is {} bytes; the font is not subset?", pdf.len());

        // Exactly one embedded font program, marked as a subset (TAG+Name),
        // and poppler agrees it is an embedded CID TrueType subset.
        let doc = Document::load_mem(&pdf).expect("lopdf reads the PDF back");
        let font_files: Vec<&Stream> = doc
            .objects
            .values()
            .filter_map(|o| o.as_dict().ok())
            .filter(|d| d.has_type(b"FontDescriptor"))
            .filter_map(|d| d.get(b"FontFile2").and_then(Object::as_reference).ok())
            .filter_map(|id| doc.get_object(id).and_then(Object::as_stream).ok())
            .collect();
        assert_eq!(font_files.len(), 1);
        let length1 = font_files[0].dict.get(b"Length1").and_then(Object::as_i64).expect("Length1");
        assert!(length1 < 200_000, "subset font program is {length1} bytes");

        let file = write_temp(&pdf);
        let fonts = run("pdffonts", &[], file.path());
        let line = fonts.lines().find(|l| l.contains("IPAexMincho")).expect("pdffonts lists IPAexMincho");
        assert!(line.contains("CID TrueType") && line.contains("Identity-H"), "{line}");
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(name.len() == 6 + 1 + "IPAexMincho".len() && name.as_bytes()[6] == b'+', "{name}");
        assert!(line.contains("yes yes yes"), "emb/sub/uni: {line}");
    }

    #[test]
    fn character_missing_from_every_font_is_an_error() {
        let kichi = '\u{20BB7}'; // 𠮷 (tsuchi-yoshi), not in IPAex
        let data = font_bytes(IPAEX_MINCHO);
        let face = Face::parse(&data, 0).expect("parse");
        assert!(face.glyph_index(kichi).is_none(), "IPAex unexpectedly has U+20BB7; pick another character");

        let fonts = ipaex_set();
        assert_eq!(fonts.missing_chars("𠮷田 太郎"), vec![kichi]);
        assert!(fonts.missing_chars("山田 花子 YAMADA\n").is_empty());

        let mut copy = sample("SH-2026-000124-1", "AAAA-BBBB-CCCC");
        copy.holder_name_kanji = "𠮷田 太郎".into();
        match render(&fonts, &[copy]) {
            Err(DocumentError::MissingGlyphs(chars)) => assert_eq!(chars, vec![kichi]),
            Err(other) => panic!("expected MissingGlyphs, got {other}"),
            Ok(_) => panic!("rendered a name with a character no font has"),
        }
        let message = DocumentError::MissingGlyphs(vec![kichi]).to_string();
        assert!(message.contains('𠮷') && message.contains("U+20BB7"), "{message}");
    }

    #[test]
    fn qpdf_check_passes() {
        let pdf = render(&ipaex_set(), &two_copies()).expect("render");
        let file = write_temp(&pdf);
        let report = run("qpdf", &["--check"], file.path());
        assert!(report.contains("No syntax or stream encoding errors"), "{report}");
    }

    #[test]
    fn fallback_font_draws_what_the_first_font_lacks() {
        // IPAex has no Vietnamese/Turkish letters such as Ễ or ğ; DejaVu
        // Serif has them but no kanji. Together they draw the whole page.
        let mincho = font_bytes(IPAEX_MINCHO);
        let face = Face::parse(&mincho, 0).expect("parse");
        assert!(face.glyph_index('Ễ').is_none() && face.glyph_index('ğ').is_none());
        let roman = "NGUYỄN Thị Doğan";
        assert_eq!(ipaex_set().missing_chars(roman), vec!['Ễ', 'ị', 'ğ']);

        let fonts = FontSet::new(vec![
            ("IPAex Mincho".into(), mincho),
            ("DejaVu Serif".into(), font_bytes(DEJAVU_SERIF)),
        ])
        .expect("font set");
        assert_eq!(fonts.font_names(), vec!["IPAex Mincho", "DejaVu Serif"]);
        assert!(fonts.missing_chars(roman).is_empty());

        let mut copy = sample("SH-2026-000125-1", "ZZZZ-YYYY-XXXX");
        copy.holder_name_roman = roman.into();
        let pdf = render(&fonts, &[copy]).expect("render with fallback");
        let file = write_temp(&pdf);
        let text = pdftotext(file.path());
        assert!(text.contains(roman), "{text}");
        assert!(text.contains("山田 花子"), "{text}");
        let fonts_out = run("pdffonts", &[], file.path());
        assert!(fonts_out.contains("IPAexMincho") && fonts_out.contains("DejaVuSerif"), "{fonts_out}");
        run("qpdf", &["--check"], file.path());
    }

    #[test]
    fn unused_fallback_font_is_not_embedded() {
        let fonts = FontSet::new(vec![
            ("IPAex Mincho".into(), font_bytes(IPAEX_MINCHO)),
            ("DejaVu Serif".into(), font_bytes(DEJAVU_SERIF)),
        ])
        .expect("font set");
        let pdf = render(&fonts, &two_copies()).expect("render");
        let file = write_temp(&pdf);
        let fonts_out = run("pdffonts", &[], file.path());
        assert!(!fonts_out.contains("DejaVu"), "{fonts_out}");
    }

    #[test]
    fn japanese_wraps_per_character_with_kinsoku() {
        let data = font_bytes(IPAEX_MINCHO);
        let mut shaper = Shaper::new(vec![Face::parse(&data, 0).expect("parse")]);
        // Five characters per line would put "、" at the start of line 2;
        // kinsoku pushes "は" down with it instead.
        let lines = wrap(&mut shaper, "上記の者は、本学", 13.0, 66.0);
        let texts: Vec<String> = lines.iter().map(|l| l.glyphs.iter().map(|g| g.ch).collect()).collect();
        assert_eq!(texts, vec!["上記の者", "は、本学"]);
        // "（" may not end a line and "）" may not start one.
        let lines = wrap(&mut shaper, "学士（文学）", 13.0, 40.0);
        let texts: Vec<String> = lines.iter().map(|l| l.glyphs.iter().map(|g| g.ch).collect()).collect();
        assert_eq!(texts, vec!["学士", "（文", "学）"], "brackets stay with their neighbours");

        let text = "上記の者は、本学文学部日本文学科を卒業したことを証明する。".repeat(4);
        for max in [100.0, 113.0, 130.0, 156.0, 200.0] {
            let lines = wrap(&mut shaper, &text, 13.0, max);
            assert!(lines.len() > 1);
            let joined: String = lines.iter().flat_map(|l| l.glyphs.iter().map(|g| g.ch)).collect();
            assert_eq!(joined, text, "no character lost or added");
            for line in &lines {
                let first = line.glyphs.first().map(|g| g.ch).expect("no empty line");
                assert!(!"、。".contains(first), "line starts with {first} at width {max}");
                // Lines are full except where a closing mark was pushed along.
                assert!(width(&line.glyphs, 13.0, 0.0) <= max + 1e-3, "line too wide at {max}");
            }
        }
    }

    #[test]
    fn english_wraps_per_word_and_breaks_overlong_words() {
        let data = font_bytes(IPAEX_MINCHO);
        let mut shaper = Shaper::new(vec![Face::parse(&data, 0).expect("parse")]);
        let text = "This is to certify that the above-named person graduated from this University.";
        let lines = wrap(&mut shaper, text, 10.0, 120.0);
        assert!(lines.len() > 2);
        let words: Vec<String> = lines
            .iter()
            .map(|l| l.glyphs.iter().map(|g| g.ch).collect::<String>())
            .collect();
        assert_eq!(words.join(" "), text, "breaks only at spaces: {words:?}");
        assert!(lines.iter().all(|l| width(&l.glyphs, 10.0, 0.0) <= 120.0));

        let url = "https://shomei.example.ac.jp/verify/a-very-long-path-that-cannot-fit-on-one-line";
        let lines = wrap(&mut shaper, url, 10.0, 100.0);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| width(&l.glyphs, 10.0, 0.0) <= 100.0));
        let joined: String = lines.iter().flat_map(|l| l.glyphs.iter().map(|g| g.ch)).collect();
        assert_eq!(joined, url);
    }

    #[test]
    fn long_text_shrinks_to_fit_or_fails_cleanly() {
        let fonts = ipaex_set();
        let mut copy = sample("SH-2026-000127-1", "LONG-TEXT-0001");
        copy.body_ja = copy.body_ja.repeat(4);
        copy.body_en = copy.body_en.repeat(3);
        copy.holder_name_roman = "WOLFESCHLEGELSTEINHAUSENBERGERDORFF Hubert Blaine Adolph Charles David Earl".into();
        copy.verify_url = format!("https://shomei.example.ac.jp/verify?code={}", "X".repeat(120));
        let pdf = render(&fonts, &[copy.clone()]).expect("long text still fits on one page");
        let file = write_temp(&pdf);
        let info = run("pdfinfo", &[], file.path());
        assert!(info.lines().any(|l| l.starts_with("Pages:") && l.trim_end().ends_with(" 1")), "{info}");
        let text = pdftotext(file.path());
        assert!(text.contains("SH-2026-000127-1") && text.contains("WOLFESCHLEGELSTEINHAUSENBERGERDORFF"));
        run("qpdf", &["--check"], file.path());

        let mut absurd_url = copy.clone();
        absurd_url.verify_url = format!("https://shomei.example.ac.jp/verify?code={}", "X".repeat(600));
        assert!(matches!(render(&fonts, &[absurd_url]), Err(DocumentError::Layout(_))));

        copy.body_ja = copy.body_ja.repeat(10);
        assert!(matches!(render(&fonts, &[copy]), Err(DocumentError::Layout(_))));
    }

    #[test]
    fn dates_are_validated_and_formatted() {
        let d = Date::parse("birth_date", "2000-04-01").expect("valid");
        assert_eq!(d.ja(), "2000年4月1日");
        assert_eq!(d.en(), "April 1, 2000");
        assert_eq!(Date::parse("x", "2024-02-29").expect("leap day").en(), "February 29, 2024");
        for bad in ["2023-02-29", "2000-4-1", "2000/04/01", "2000-13-01", "2000-00-10", "", "２０００-04-01"] {
            assert!(Date::parse("birth_date", bad).is_err(), "{bad:?} accepted");
        }
        let mut copy = sample("SH-1", "C");
        copy.issue_date = "23.11.2026".into();
        match render(&ipaex_set(), &[copy]) {
            Err(DocumentError::InvalidField { field, .. }) => assert_eq!(field, "issue_date"),
            other => panic!("expected InvalidField, got {:?}", other.map(|b| b.len())),
        }
    }

    #[test]
    fn bad_font_sets_are_rejected() {
        assert!(matches!(FontSet::new(vec![]), Err(DocumentError::Font(_))));
        assert!(matches!(
            FontSet::new(vec![("junk".into(), b"not a font".to_vec())]),
            Err(DocumentError::Font(_))
        ));
        assert!(matches!(render(&ipaex_set(), &[]), Err(DocumentError::Layout(_))));
    }

    #[test]
    fn variation_selector_uses_variant_glyph_and_is_not_missing() {
        // 葛 + VS17 (U+E0100): IPAex has this ideographic variation sequence.
        let name = "葛\u{E0100}西 花子";
        let fonts = ipaex_set();
        assert!(fonts.missing_chars(name).is_empty());
        let mut copy = sample("SH-2026-000126-1", "VVVV-SSSS-1717");
        copy.holder_name_kanji = name.into();
        let pdf = render(&fonts, &[copy]).expect("render");
        let file = write_temp(&pdf);
        assert!(pdftotext(file.path()).contains("西 花子"));
    }

    // -- the university's seal ------------------------------------------

    /// A red round seal (a ring and a bar, like a stamped character),
    /// transparent outside the circle and between the strokes, as PNG.
    pub(super) fn red_seal_png(side: u32) -> Vec<u8> {
        let c = side as f32 / 2.0;
        let img = image::RgbaImage::from_fn(side, side, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - c, y as f32 + 0.5 - c);
            let d = (dx * dx + dy * dy).sqrt();
            let ink = d < c - 2.0 && (d > c * 0.8 || dx.abs() < c * 0.1);
            if ink { image::Rgba([200, 20, 20, 255]) } else { image::Rgba([0, 0, 0, 0]) }
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).expect("encode PNG");
        out.into_inner()
    }

    /// A box in points from the top left of the page: x0, y0, x1, y1.
    pub(super) type PageBox = [f32; 4];

    /// Where the reddish pixels of `page` are (rendered at 72 dpi, so one
    /// pixel is one point); None when there are none.
    pub(super) fn red_box(pdf: &[u8], page: usize) -> Option<PageBox> {
        let file = write_temp(pdf);
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = dir.path().join("page");
        let page = page.to_string();
        let status = Command::new("pdftoppm")
            .args(["-r", "72", "-png", "-singlefile", "-f", &page, "-l", &page])
            .arg(file.path())
            .arg(&prefix)
            .status()
            .unwrap_or_else(|e| panic!("cannot run pdftoppm (Debian package poppler-utils): {e}"));
        assert!(status.success(), "pdftoppm failed");
        let image = image::open(prefix.with_extension("png")).expect("read the rendered page").to_rgb8();
        let mut found: Option<PageBox> = None;
        for (x, y, p) in image.enumerate_pixels() {
            let [r, g, b] = p.0;
            if r > 150 && g < 100 && b < 100 {
                let (x, y) = (x as f32, y as f32);
                found = Some(match found {
                    None => [x, y, x + 1.0, y + 1.0],
                    Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x + 1.0), y1.max(y + 1.0)],
                });
            }
        }
        found
    }

    /// The words of `page` and their boxes, as `pdftotext -bbox` sees them.
    pub(super) fn words(pdf: &[u8], page: usize) -> Vec<(String, PageBox)> {
        let file = write_temp(pdf);
        let page = page.to_string();
        let output = Command::new("pdftotext")
            .args(["-enc", "UTF-8", "-bbox", "-f", &page, "-l", &page])
            .arg(file.path())
            .arg("-")
            .output()
            .expect("run pdftotext");
        assert!(output.status.success(), "pdftotext failed: {}", String::from_utf8_lossy(&output.stderr));
        let html = String::from_utf8(output.stdout).expect("UTF-8 text");
        html.lines()
            .filter_map(|line| {
                let line = line.trim().strip_prefix("<word ")?;
                let (attrs, rest) = line.split_once('>')?;
                let text = rest.strip_suffix("</word>")?.to_string();
                let attr = |name: &str| -> Option<f32> {
                    let (_, after) = attrs.split_once(&format!("{name}=\""))?;
                    after.split('"').next()?.parse().ok()
                };
                Some((text, [attr("xMin")?, attr("yMin")?, attr("xMax")?, attr("yMax")?]))
            })
            .collect()
    }

    /// The seal on `page` is `side` points square, in the lower half, and
    /// stamped as in Japan: over the right end of the issuer's title (the
    /// first of `title`), not covering all of it, and over no word but the
    /// title's.
    pub(super) fn assert_seal_over_title(pdf: &[u8], page: usize, title: &[&str], side: f32) {
        let seal = red_box(pdf, page).unwrap_or_else(|| panic!("no seal on page {page}"));
        let (w, h) = (seal[2] - seal[0], seal[3] - seal[1]);
        assert!((w - side).abs() < 4.0 && (h - side).abs() < 4.0, "seal {w}x{h} pt on page {page}, wanted about {side}");
        assert!(seal[1] > PAGE_H / 2.0, "red in the top half of page {page}: {seal:?}");
        let overlaps = |b: &PageBox| b[0] < seal[2] && seal[0] < b[2] && b[1] < seal[3] && seal[1] < b[3];
        let words = words(pdf, page);
        let (_, end) = words
            .iter()
            .find(|(text, _)| text == title[0])
            .unwrap_or_else(|| panic!("{} not on page {page}: {words:?}", title[0]));
        assert!(overlaps(end), "the seal {seal:?} misses {} {end:?}", title[0]);
        assert!(end[0] < seal[0] && seal[0] < end[2] && end[2] < seal[2], "the seal {seal:?} should cover the end of {} {end:?}", title[0]);
        for (text, b) in &words {
            assert!(title.contains(&text.as_str()) || !overlaps(b), "the seal {seal:?} covers {text:?} {b:?} on page {page}");
        }
    }

    /// The decoded content stream of every page.
    pub(super) fn page_contents(pdf: &[u8]) -> Vec<Vec<u8>> {
        let doc = Document::load_mem(pdf).expect("lopdf reads the PDF back");
        doc.get_pages().values().map(|id| doc.get_page_content(*id).expect("page content")).collect()
    }

    /// `sealed` is `plain` with the seal stamped on the pages `stamped`
    /// (from 1) and nothing else changed on any page.
    pub(super) fn assert_only_the_seal_was_added(sealed: &[u8], plain: &[u8], stamped: &[usize]) {
        let (sealed, plain) = (page_contents(sealed), page_contents(plain));
        assert_eq!(sealed.len(), plain.len());
        for (page, (s, p)) in (1..).zip(sealed.iter().zip(&plain)) {
            if !stamped.contains(&page) {
                assert_eq!(s, p, "page {page} has no seal and is unchanged");
                continue;
            }
            let extra = s.strip_prefix(p.as_slice()).map(String::from_utf8_lossy);
            let extra = extra.unwrap_or_else(|| panic!("page {page}: the page's own content changed"));
            assert!(extra.starts_with("q ") && extra.ends_with(" cm /Seal Do Q\n") && extra.lines().count() == 1, "page {page}: {extra:?}");
        }
    }

    #[test]
    fn the_seal_is_stamped_over_the_end_of_the_registrar_line() {
        let fonts = ipaex_set();
        let seal = SealImage::from_png(&red_seal_png(200)).expect("seal");
        let ja = sample("SH-2026-000130-1", "K7QF-2M9X-PL3D");
        let mut en = sample("SH-2026-000130-2", "Q4RT-8ZV2-MN6C");
        en.english_only = true;
        let mut long = sample("SH-2026-000130-3", "LONG-NAME-0001");
        long.university_ja = "国立大学法人東京証明科学技術大学".into();
        long.university_en = "Tokyo National University of Certification Science and Technology".into();
        let copies = vec![ja, en, long];
        let docs: Vec<DocumentCopy> = copies.iter().cloned().map(DocumentCopy::Certificate).collect();

        let (pdf, pages) = render_order_with(&fonts, Some(&seal), &docs).expect("render");
        assert_eq!(pages, 3);
        let file = write_temp(&pdf);
        assert!(run("qpdf", &["--check"], file.path()).contains("No syntax or stream encoding errors"));
        let list = run("pdfimages", &["-list"], file.path());
        let images: Vec<Vec<&str>> = list.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
        let pages_shown: Vec<&str> = images.iter().filter(|f| f.get(2) == Some(&"image")).map(|f| f[0]).collect();
        assert_eq!(pages_shown, ["1", "2", "3"], "{list}");
        assert!(images.iter().all(|f| f.get(10) == images[0].get(10)), "one image object:\n{list}");

        assert_seal_over_title(&pdf, 1, &["教務部長", "Registrar"], SEAL_SIDE);
        assert_seal_over_title(&pdf, 2, &["Registrar"], SEAL_SIDE);
        assert_seal_over_title(&pdf, 3, &["教務部長", "Registrar"], SEAL_SIDE);
        assert_only_the_seal_was_added(&pdf, &render(&fonts, &copies).expect("plain"), &[1, 2, 3]);

        // without a seal: exactly what render() gives, and nothing red
        let (plain, _) = render_order_with(&fonts, None, &docs).expect("render without a seal");
        assert_eq!(plain, render(&fonts, &copies).expect("plain"));
        assert!(!String::from_utf8_lossy(&plain).contains("/XObject"));
        assert_eq!(red_box(&plain, 1), None);
    }

    #[test]
    fn a_seal_that_is_not_a_small_png_is_refused() {
        let refused = |bytes: &[u8], what: &str| match SealImage::from_png(bytes) {
            Err(DocumentError::InvalidField { field: "seal_png", value }) => {
                assert!(value.contains(what), "{value:?} should say {what:?}");
                let message = DocumentError::InvalidField { field: "seal_png", value }.to_string();
                assert!(message.starts_with("invalid seal_png: "), "{message}");
            }
            other => panic!("expected InvalidField for {what}, got {other:?}"),
        };
        let encode = |img: image::DynamicImage, format: image::ImageFormat| {
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, format).expect("encode");
            out.into_inner()
        };
        let jpeg = encode(image::DynamicImage::ImageRgb8(image::RgbImage::new(64, 64)), image::ImageFormat::Jpeg);
        refused(&jpeg, "not a PNG");
        let huge = encode(image::DynamicImage::ImageLuma8(image::GrayImage::new(3000, 3000)), image::ImageFormat::Png);
        assert!(huge.len() < 1_000_000, "small file, too many pixels");
        refused(&huge, "3000x3000");
        let mut noise = Vec::with_capacity(4096);
        let mut state: u32 = 0x1234_5678;
        for _ in 0..4096 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            noise.push((state >> 24) as u8);
        }
        refused(&noise, "not a PNG");
        let mut noisy_png = b"\x89PNG\r\n\x1a\n".to_vec();
        noisy_png.extend_from_slice(&noise);
        refused(&noisy_png, "unreadable PNG");
        let mut truncated = red_seal_png(200);
        truncated.truncate(truncated.len() / 2);
        refused(&truncated, "unreadable PNG");
        let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
        big.resize(2 * 1024 * 1024 + 1, 0);
        refused(&big, "bytes");
        refused(&[], "not a PNG");

        // the limits themselves are allowed; an opaque seal needs no soft mask
        let largest = encode(image::DynamicImage::ImageRgb8(image::RgbImage::new(2000, 2000)), image::ImageFormat::Png);
        let seal = SealImage::from_png(&largest).expect("2000 x 2000 is allowed");
        assert!(format!("{seal:?}").contains("2000x2000, alpha: false"), "{seal:?}");
    }
}
