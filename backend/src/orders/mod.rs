//! Ordering (SPEC O-1, O-2, O-3, O-5, O-6): the catalogue a user may order
//! from, fixed prices, print numbers, and the certificate PDF made at order time.

pub mod certificates;
pub mod cohort;
pub mod digital;
pub mod paypal_return;
pub mod receipts;
pub mod service;

pub use crate::payments::Started;
use crate::payments::{PaymentProvider, PaymentRequest};
use crate::documents::{self, CertificateCopy, CourseRow, DocumentCopy, FontSet, TranscriptData};
use crate::error::{AppError, AppResult};
use crate::mail;
use crate::messages;
use crate::store::{self, NewOrder};
use crate::time::{self, now};
use rand::Rng;
use shomei_shared::{PrintNumber, Yen};
use crate::store::Pool;

/// Days (counting the application day as day 1) in which to pay and print.
pub const PAY_DAYS: i64 = 7;

#[derive(Debug, Clone)]
pub struct LineRequest {
    pub certificate_type_id: i64,
    pub copies: i64,
}

#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub student_record_id: i64,
    pub lines: Vec<LineRequest>,
    pub delivery: String,
    pub payment_method: String,
    /// For delivery by post: where to (name, postal code, address, phone).
    pub post: Option<PostAddress>,
}

/// A postal delivery address (O-3), sealed at rest with the order.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PostAddress {
    pub name: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
}

impl PostAddress {
    /// Every field is needed for the envelope; the message names what is missing.
    pub fn check(&self) -> Result<(), AppError> {
        let digits: String = self.postal_code.chars().filter(|c| c.is_ascii_digit()).collect();
        if self.name.trim().is_empty() || self.address.trim().is_empty() {
            return Err(page_err(messages::POST_ADDRESS));
        }
        if digits.len() != 7 || self.postal_code.chars().any(|c| !c.is_ascii_digit() && c != '-') {
            return Err(page_err(messages::POST_POSTAL_CODE));
        }
        if self.name.chars().count() > 60 || self.address.chars().count() > 200 || self.phone.chars().count() > 20 {
            return Err(page_err(messages::CHECK_INPUT));
        }
        Ok(())
    }
}

fn post_aad(order_id: i64) -> String {
    format!("order:{order_id}:post_address")
}

pub fn open_post_address(seal: &crate::sealed::SealKey, order: &store::Order) -> AppResult<PostAddress> {
    let Some(s) = &order.post_address_sealed else { return Ok(PostAddress::default()) };
    let json = seal.open_str(s, &post_aad(order.id)).map_err(|e| AppError::Internal(anyhow::anyhow!("sealed address: {e}")))?;
    serde_json::from_str(&json).map_err(|e| AppError::Internal(e.into()))
}

/// Orders each user may place per minute (every order renders its PDFs):
/// more are refused with 429 until the minute has passed.
pub struct OrderRate(crate::accounts::Throttle);

impl OrderRate {
    pub fn new(pool: Pool) -> OrderRate {
        OrderRate(crate::accounts::Throttle::new(pool, "orders", 0))
    }

    /// Counts an attempt to order, or says how long to wait.
    pub async fn admit(&self, user_id: i64, per_minute: u32) -> AppResult<()> {
        match self.0.admit(&user_id.to_string(), per_minute as usize, 60_000).await? {
            Ok(()) => Ok(()),
            Err(wait_ms) => Err(AppError::Throttled(crate::messages::orders_too_fast(((wait_ms + 999) / 1000).max(1)))),
        }
    }
}

/// Certificate PDFs state birth dates and grades: kept sealed under the data
/// key (bound to their order), opened only to be sent to a printer or shown to staff.
const SEALED_PDF: &[u8] = b"SHOMEI-SEALED-PDF-1\n";

fn pdf_aad(order_id: i64) -> String {
    format!("order:{order_id}:pdf")
}

pub fn seal_pdf(seal: &crate::sealed::SealKey, order_id: i64, pdf: &[u8]) -> AppResult<Vec<u8>> {
    let sealed = seal.seal(pdf, pdf_aad(order_id).as_bytes()).map_err(|e| AppError::Internal(anyhow::anyhow!("sealing a PDF: {e}")))?;
    Ok([SEALED_PDF, sealed.as_slice()].concat())
}

/// An order's PDF, opened (a PDF stored before sealing is returned as is).
pub async fn stored_pdf(c: &mut store::Conn, seal: &crate::sealed::SealKey, order_id: i64) -> AppResult<Option<Vec<u8>>> {
    let Some(bytes) = store::order_document(c, order_id).await? else { return Ok(None) };
    open_pdf(seal, order_id, bytes).map(Some)
}

/// An order's PDF from its stored form (sealed, or plain from before PDFs were sealed).
pub fn open_pdf(seal: &crate::sealed::SealKey, order_id: i64, stored: Vec<u8>) -> AppResult<Vec<u8>> {
    match stored.strip_prefix(SEALED_PDF) {
        Some(sealed) => seal.open(sealed, pdf_aad(order_id).as_bytes()).map_err(|e| AppError::Internal(anyhow::anyhow!("opening order {order_id}'s PDF: {e}"))),
        None => Ok(stored),
    }
}

/// Seals the PDFs stored before they were sealed. Idempotent; run at start.
pub async fn seal_plain_pdfs(pool: &Pool, seal: &crate::sealed::SealKey) -> AppResult<usize> {
    const PASS: &str = "seal-pdfs";
    let mut c = pool.acquire().await?;
    if store::maintenance_done(&mut c, PASS).await? {
        return Ok(0);
    }
    let ids = store::orders_with_plain_pdf(&mut c).await?;
    drop(c);
    for id in &ids {
        let mut tx = store::begin_write(pool).await?;
        if let Some(pdf) = store::order_document(&mut tx, *id).await?.filter(|b| b.starts_with(b"%PDF")) {
            store::replace_order_document(&mut tx, *id, &seal_pdf(seal, *id, &pdf)?).await?;
        }
        tx.commit().await?;
    }
    let mut tx = store::begin_write(pool).await?;
    store::mark_maintenance_done(&mut tx, PASS, now()).await?;
    tx.commit().await?;
    Ok(ids.len())
}

pub struct Placed {
    pub order_id: i64,
    pub print_number: Option<PrintNumber>,
    /// Held for staff (a name no font can draw): nothing to pay yet.
    pub held: bool,
}

/// D-3: `record` as the registrar's school register states it (names as in
/// school, faculty, department, leaving type, dates), with the register
/// entry; None when the register has no entry for its student number. What
/// the applicant typed at registration is never used for a certificate.
pub async fn registrar_record(
    c: &mut store::Conn,
    seal: &crate::sealed::SealKey,
    mut record: store::StudentRecord,
) -> AppResult<Option<(store::StudentRecord, crate::registrar::school_register::Record)>> {
    let Some((_, reg)) = crate::registrar::school_register::current(c, seal, record.university_id, &record.student_no).await? else { return Ok(None) };
    let e = &reg.entry;
    record.name_kanji = e.name_kanji.clone();
    record.name_kana = e.name_kana.clone();
    record.name_roman = e.name_roman.clone();
    (record.faculty_ja, record.faculty_en) = (reg.faculty_ja.clone(), reg.faculty_en.clone());
    (record.department_ja, record.department_en) = (reg.department_ja.clone(), reg.department_en.clone());
    record.leaving_type = e.leaving_type.clone();
    record.graduation_date = (!e.graduation_date.is_empty()).then(|| e.graduation_date.clone());
    record.birth_date = String::new();
    Ok(Some((record, reg)))
}

/// What the certificates of `types` would state that the register entry
/// does not say (field names in both languages); empty when nothing lacks.
fn register_lacks<'a>(reg: &crate::registrar::school_register::Record, types: impl Iterator<Item = &'a store::CertificateType>) -> Vec<(&'static str, &'static str)> {
    let e = &reg.entry;
    let mut lacking = Vec::new();
    let mut need = |ok: bool, field: (&'static str, &'static str)| {
        if !ok && !lacking.contains(&field) {
            lacking.push(field);
        }
    };
    need(!e.birth_date.is_empty(), ("生年月日", "date of birth"));
    need(!reg.faculty_ja.is_empty() && !reg.department_ja.is_empty(), ("学部・学科", "faculty and department"));
    for t in types {
        let (default_ja, default_en) = crate::documents::wording::default_for(&e.leaving_type);
        let ja = if t.body_ja.trim().is_empty() { default_ja } else { t.body_ja.as_str() };
        let en = if t.body_en.trim().is_empty() { default_en } else { t.body_en.as_str() };
        let says = |placeholder: &str| ja.contains(placeholder) || en.contains(placeholder);
        need(!says("{graduation_date}") || !e.graduation_date.is_empty(), ("卒業（退学・除籍）日", "date of graduation or leaving"));
        need(!says("{degree}") || !e.degree_ja.is_empty(), ("学位", "degree"));
        need(!(says("{admission_date}") || is_transcript(t)) || !e.admission_date.is_empty(), ("入学日", "date of admission"));
    }
    lacking
}

/// Certificate types this enrolment may order (O-1): by leaving type
/// ('enrolled' for enrolled students), faculty and graduation year. Others are
/// not shown, and an order for one is refused.
pub fn orderable(types: &[store::CertificateType], record: &store::StudentRecord) -> Vec<store::CertificateType> {
    let grad_year: Option<i64> = record.graduation_date.as_deref().and_then(|d| d.get(0..4)).and_then(|y| y.parse().ok());
    types
        .iter()
        .filter(|t| t.active)
        .filter(|t| t.leaving_types.split(',').any(|l| l.trim() == record.leaving_type))
        .filter(|t| t.faculty_codes.trim().is_empty() || t.faculty_codes.split(',').any(|f| f.trim() == record.faculty_code))
        .filter(|t| match (t.grad_year_from, t.grad_year_to) {
            (None, None) => true,
            (from, to) => grad_year.is_some_and(|y| from.is_none_or(|f| y >= f) && to.is_none_or(|l| y <= l)),
        })
        .cloned()
        .collect()
}

fn page_err(message: &str) -> AppError {
    AppError::Page(message.to_string())
}

/// A 12-character verification code in an alphabet without look-alikes, grouped by 4.
fn verification_code<R: Rng>(rng: &mut R) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let raw: Vec<u8> = (0..12).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())]).collect();
    raw.chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

/// The certifying sentence of a certificate of type `t`: the type's own
/// wording, or the built-in one for the holder's leaving type, filled in.
fn body_text(t: &store::CertificateType, record: &store::StudentRecord, university: &store::University, register: Option<&crate::registrar::school_register::Record>) -> (String, String) {
    use crate::documents::wording::{self, Values};
    let (default_ja, default_en) = wording::default_for(&record.leaving_type);
    let template_ja = if t.body_ja.trim().is_empty() { default_ja } else { t.body_ja.as_str() };
    let template_en = if t.body_en.trim().is_empty() { default_en } else { t.body_en.as_str() };
    let date = record.graduation_date.clone().unwrap_or_default();
    let ja = Values {
        name: record.name_kanji.clone(),
        student_no: record.student_no.clone(),
        university: university.name_ja.clone(),
        faculty: record.faculty_ja.clone(),
        department: record.department_ja.clone(),
        degree: register.map(|r| r.entry.degree_ja.clone()).unwrap_or_default(),
        admission_date: register.map(|r| wording::date_ja(&r.entry.admission_date)).unwrap_or_default(),
        graduation_date: wording::date_ja(&date),
    };
    let en = Values {
        name: record.name_roman.clone(),
        university: university.name_en.clone(),
        faculty: record.faculty_en.clone(),
        department: record.department_en.clone(),
        degree: register.map(|r| r.entry.degree_en.clone()).unwrap_or_default(),
        admission_date: register.map(|r| wording::date_en(&r.entry.admission_date)).unwrap_or_default(),
        graduation_date: wording::date_en(&date),
        ..ja.clone()
    };
    (wording::fill(template_ja, &ja), wording::fill(template_en, &en))
}

/// Types printed with the transcript layout (D-2: the catalogue says which).
fn is_transcript(t: &store::CertificateType) -> bool {
    t.layout == "transcript"
}

#[allow(clippy::too_many_arguments)]
fn transcript_data(
    t: &store::CertificateType,
    record: &store::StudentRecord,
    university: &store::University,
    courses: &[crate::registrar::academic::CourseResult],
    birth_date: &str,
    admission_date: &str,
    issue_date: &str,
    serial: String,
    verification_code: String,
    verify_url: String,
) -> TranscriptData {
    let (total_credits, gpa) = crate::registrar::academic::totals(courses);
    TranscriptData {
        title_ja: t.name_ja.clone(),
        title_en: t.name_en.clone(),
        university_ja: university.name_ja.clone(),
        university_en: university.name_en.clone(),
        faculty_ja: record.faculty_ja.clone(),
        department_ja: record.department_ja.clone(),
        holder_name_kanji: record.name_kanji.clone(),
        holder_name_roman: record.name_roman.clone(),
        student_no: record.student_no.clone(),
        birth_date: birth_date.to_string(),
        admission_date: admission_date.to_string(),
        graduation_date: record.graduation_date.clone().unwrap_or_default(),
        courses: courses
            .iter()
            .map(|c| CourseRow {
                year: u16::try_from(c.year).unwrap_or(0),
                term: c.term.clone(),
                code: c.code.clone(),
                name_ja: c.name_ja.clone(),
                name_en: c.name_en.clone(),
                credits: c.credits_tenths as f32 / 10.0,
                grade: c.grade.clone(),
            })
            .collect(),
        total_credits,
        gpa,
        serial,
        verification_code,
        verify_url,
        offline_proof: String::new(),
        issue_date: issue_date.to_string(),
        submitted_to: String::new(),
    }
}

/// A problem with an order form, told next to its field: the field's name
/// ("copies_<type id>", "delivery", "payment_method", "post", "student_record_id",
/// or "" for the whole form) and the message in both languages.
#[derive(Debug, Clone, PartialEq)]
pub struct FormProblem {
    pub field: String,
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> FormProblem {
    FormProblem { field: field.into(), message: message.into() }
}

/// An order checked against the catalogue, the register (D-3) and the
/// rules of delivery and payment, priced, before anything is written.
pub struct Quote {
    pub record: store::StudentRecord,
    pub register: crate::registrar::school_register::Record,
    pub university: store::University,
    /// The certificate types chosen, with their copies.
    pub chosen: Vec<(store::CertificateType, i64)>,
    pub fees: i64,
    pub system_fee: i64,
    pub postage: i64,
    pub total: i64,
}

/// Which payment methods a delivery takes (O-2): the IC card pays only at an on-campus printer.
pub fn payments_for(delivery: &str) -> &'static [&'static str] {
    match delivery {
        "campus" => &["card", "paypal", "smartpit"],
        "digital" => &["card", "paypal", "smartpit"],
        "store" | "post" => &["paypal", "smartpit"],
        _ => &[],
    }
}

/// Checks and prices an order without writing anything: Ok(Err(problem)) for
/// what the user can fix on the form.
pub async fn quote(
    c: &mut store::Conn,
    seal: &crate::sealed::SealKey,
    sealers: &crate::documents::signing::Sealers,
    postage_yen: i64,
    user_id: i64,
    req: &OrderRequest,
) -> AppResult<Result<Quote, FormProblem>> {
    quote_as(c, seal, sealers, postage_yen, user_id, req, Payer::Graduate).await
}

/// Who pays for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payer {
    /// The graduate, by the request's payment method.
    Graduate,
    /// The university, on graduation day ([`cohort`]): a digital
    /// certificate at no charge, paid when placed, tied to the run's graduate.
    University { cohort_item: i64 },
}

async fn quote_as(
    c: &mut store::Conn,
    seal: &crate::sealed::SealKey,
    sealers: &crate::documents::signing::Sealers,
    postage_yen: i64,
    user_id: i64,
    req: &OrderRequest,
    payer: Payer,
) -> AppResult<Result<Quote, FormProblem>> {
    let Some(record) = store::student_records(c, user_id).await?.into_iter().find(|r| r.id == req.student_record_id) else {
        return Ok(Err(problem("student_record_id", messages::CHOOSE_STUDENT_ID)));
    };
    let university = store::university(c, record.university_id).await?;
    crate::orders::service::check_open(c, university.id).await?;
    // D-3: a certificate states only what the registrar's school register
    // says, never what the applicant typed: no register entry, no certificate
    let Some((record, register)) = registrar_record(c, seal, record).await? else {
        return Ok(Err(problem("", messages::NOT_IN_REGISTER)));
    };
    let types = orderable(&store::certificate_types(c, university.id).await?, &record);
    let lines: Vec<&LineRequest> = req.lines.iter().filter(|l| l.copies > 0).collect();
    if lines.is_empty() {
        return Ok(Err(problem("", messages::NO_COPIES)));
    }
    let mut fees = 0i64;
    let mut chosen = Vec::new();
    for l in &lines {
        let field = format!("copies_{}", l.certificate_type_id);
        let Some(t) = types.iter().find(|t| t.id == l.certificate_type_id) else {
            return Ok(Err(problem(field, messages::CERTIFICATE_NOT_ORDERABLE)));
        };
        if l.copies > t.max_copies {
            return Ok(Err(problem(field, messages::too_many_copies(&t.name_ja, &t.name_en, t.max_copies))));
        }
        let mut t = t.clone();
        if payer != Payer::Graduate {
            t.fee = 0;
        }
        fees += t.fee * l.copies;
        chosen.push((t, l.copies));
    }
    let lacking = register_lacks(&register, chosen.iter().map(|(t, _)| t));
    if !lacking.is_empty() {
        return Ok(Err(problem("", messages::register_lacks(&lacking))));
    }
    if !["campus", "store", "post", "digital"].contains(&req.delivery.as_str()) {
        return Ok(Err(problem("delivery", messages::CHECK_INPUT)));
    }
    if req.delivery == "digital" {
        // a signed PDF: the university signs with its own key, and only the types it delivers so
        if sealers.of(university.id).is_none() {
            return Ok(Err(problem("delivery", messages::DIGITAL_NOT_OFFERED)));
        }
        if let Some((t, _)) = chosen.iter().find(|(t, _)| !t.digital) {
            return Ok(Err(problem(format!("copies_{}", t.id), messages::not_digital(&t.name_ja, &t.name_en))));
        }
        if let Some((t, _)) = chosen.iter().find(|(_, n)| *n > 1) {
            return Ok(Err(problem(format!("copies_{}", t.id), messages::DIGITAL_ONE_COPY)));
        }
    }
    let methods: &[&str] = match payer {
        Payer::Graduate => payments_for(&req.delivery),
        Payer::University { .. } if req.delivery == "digital" => &["university"],
        Payer::University { .. } => &[],
    };
    if !methods.contains(&req.payment_method.as_str()) {
        let message = if req.payment_method == "card" { messages::CARD_ONLY_ON_CAMPUS } else { messages::ONLY_CAMPUS_CARD };
        return Ok(Err(problem("payment_method", message)));
    }
    let by_post = req.delivery == "post";
    if by_post {
        match req.post.as_ref().map(PostAddress::check) {
            Some(Ok(())) => {}
            Some(Err(AppError::Page(m))) => return Ok(Err(problem("post", m))),
            Some(Err(e)) => return Err(e),
            None => return Ok(Err(problem("post", messages::POST_ADDRESS))),
        }
    }
    let system_fee = if payer == Payer::Graduate { university.system_fee } else { 0 };
    // the registrar's postage (set in the panel), else the configured default
    let postage = if by_post { university.postage_or(postage_yen) } else { 0 };
    Ok(Ok(Quote { record, register, university, chosen, fees, system_fee, postage, total: fees + system_fee + postage }))
}

/// The characters of the holder's name (and of the course names a
/// transcript prints) that no configured font can draw: such an order is held.
fn unprintable(fonts: &FontSet, record: &store::StudentRecord, academic: Option<&[crate::registrar::academic::CourseResult]>) -> Vec<char> {
    let course_text: String = academic.into_iter().flatten().map(|c| format!("{}{}", c.name_ja, c.name_en)).collect();
    fonts.missing_chars(&format!("{}{}{course_text}", record.name_kanji, record.name_roman))
}

/// The copies an order's PDF holds, stating what the register says (D-3):
/// `chosen` is each type ordered with the (serial, verification code) of
/// each of its copies. The same for a new order and a held one released.
#[allow(clippy::too_many_arguments)]
fn document_copies(
    chosen: &[(store::CertificateType, Vec<(String, String)>)],
    record: &store::StudentRecord,
    university: &store::University,
    register: Option<&crate::registrar::school_register::Record>,
    academic: Option<&[crate::registrar::academic::CourseResult]>,
    issue_date: &str,
    public_url: &str,
) -> Vec<DocumentCopy> {
    let birth_date = register.map(|r| r.entry.birth_date.clone()).unwrap_or_default();
    let admission_date = register.map(|r| r.entry.admission_date.as_str()).unwrap_or("");
    let verify_url = format!("{public_url}/verify");
    let mut copies = Vec::new();
    for (t, codes) in chosen {
        for (serial, code) in codes {
            copies.push(match academic {
                Some(courses) if is_transcript(t) => DocumentCopy::Transcript(transcript_data(
                    t, record, university, courses, &birth_date, admission_date, issue_date, serial.clone(), code.clone(), verify_url.clone(),
                )),
                _ => {
                    let (body_ja, body_en) = body_text(t, record, university, register);
                    DocumentCopy::Certificate(CertificateCopy {
                        title_ja: t.name_ja.clone(),
                        // menus say "... (English)"; the English certificate itself does not
                        title_en: if t.language == "en" { t.name_en.trim().trim_end_matches("(English)").trim_end().to_string() } else { t.name_en.clone() },
                        university_ja: university.name_ja.clone(),
                        university_en: university.name_en.clone(),
                        faculty_ja: record.faculty_ja.clone(),
                        department_ja: record.department_ja.clone(),
                        faculty_en: record.faculty_en.clone(),
                        department_en: record.department_en.clone(),
                        english_only: t.language == "en",
                        holder_name_kanji: record.name_kanji.clone(),
                        holder_name_roman: record.name_roman.clone(),
                        birth_date: birth_date.clone(),
                        body_ja,
                        body_en,
                        issue_date: issue_date.to_string(),
                        serial: serial.clone(),
                        verification_code: code.clone(),
                        verify_url: verify_url.clone(),
                        offline_proof: String::new(),
                        submitted_to: String::new(),
                    })
                }
            });
        }
    }
    copies
}

/// The university's seal for its PDFs, when the registrar uploaded one (checked on upload).
async fn seal_image_of(c: &mut store::Conn, university_id: i64) -> AppResult<Option<documents::SealImage>> {
    Ok(match store::university_seal(c, university_id).await? {
        Some(png) => documents::SealImage::from_png(&png)
            .map_err(|e| tracing::error!(error = %e, "the stored seal image cannot be used; printing without it"))
            .ok(),
        None => None,
    })
}

/// Renders an order's PDF on the blocking pool: no async thread and no
/// write lock is held meanwhile. Returns the PDF and its pages.
async fn render_pdf(
    fonts: &std::sync::Arc<FontSet>,
    seal_image: Option<documents::SealImage>,
    copies: Vec<DocumentCopy>,
    hold: Option<&std::path::Path>,
) -> AppResult<(Vec<u8>, usize)> {
    let fonts = fonts.clone();
    let hold = hold.map(std::path::Path::to_path_buf);
    tokio::task::spawn_blocking(move || {
        crate::failpoint::hold(hold.as_deref());
        documents::render_order_with(&fonts, seal_image.as_ref(), &copies)
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("certificate PDF: {e}")))?
    .map_err(|e| AppError::Internal(anyhow::anyhow!("certificate PDF: {e}")))
}

/// Places an order: checks it against the catalogue, fixes its prices, makes
/// one certificate per copy and the PDF holding them all, issues the print
/// number and queues the mail, all in one transaction.
pub async fn place(
    pool: &Pool,
    fonts: &std::sync::Arc<FontSet>,
    seal: &crate::sealed::SealKey,
    sealers: &crate::documents::signing::Sealers,
    public_url: &str,
    postage_yen: i64,
    user_id: i64,
    req: &OrderRequest,
    hold_render: Option<&std::path::Path>,
) -> AppResult<Placed> {
    let desk = Desk { pool, fonts, seal, sealers, public_url };
    place_as(&desk, postage_yen, user_id, req, Payer::Graduate, hold_render).await
}

/// What making orders' documents and signed copies needs.
pub struct Desk<'a> {
    pub pool: &'a Pool,
    pub fonts: &'a std::sync::Arc<FontSet>,
    pub seal: &'a crate::sealed::SealKey,
    pub sealers: &'a crate::documents::signing::Sealers,
    pub public_url: &'a str,
}

/// [`place`], paid by `payer`.
async fn place_as(desk: &Desk<'_>, postage_yen: i64, user_id: i64, req: &OrderRequest, payer: Payer, hold_render: Option<&std::path::Path>) -> AppResult<Placed> {
    let Desk { pool, fonts, seal, sealers, public_url } = *desk;
    // 1. what the order will state, read without the write lock
    let mut c = pool.acquire().await?;
    let user = store::user(&mut c, user_id).await?;
    let Quote { record, register, university, chosen, fees, system_fee, postage, total } = match quote_as(&mut c, seal, sealers, postage_yen, user_id, req, payer).await? {
        Ok(q) => q,
        Err(problem) => return Err(AppError::Page(problem.message)),
    };
    let by_post = req.delivery == "post";
    let zone = time::tz(&university.timezone);
    let register = Some(register);
    let created_at = now();
    let print_deadline = time::print_deadline(created_at, zone);

    // a transcript prints the registrar's current version of the courses; the
    // order keeps which version it printed (D-3)
    let academic = if chosen.iter().any(|(t, _)| is_transcript(t)) {
        Some(crate::registrar::academic::current(&mut c, record.university_id, &record.student_no).await?.ok_or_else(crate::registrar::academic::no_record)?)
    } else {
        None
    };
    let academic_import = academic.as_ref().map(|(id, _)| *id);
    let academic = academic.map(|(_, courses)| courses);
    // course names are the registrar's text: a character no font has holds the order too
    let missing = unprintable(fonts, &record, academic.as_deref());
    let held = !missing.is_empty();
    if held && payer != Payer::Graduate {
        // graduation day: the registrar is told, and issues this one by hand once a font can draw it
        return Err(AppError::Page(messages::unprintable_name(&missing.iter().collect::<String>())));
    }

    let issue_date = time::local_date(created_at, zone);
    // every copy is its own certificate: its serial and verification code are made here
    let order_mark = verification_code(&mut rand::rngs::OsRng).replace('-', "");
    let mut issued: Vec<Vec<(String, String)>> = Vec::new();
    for (line, (_, n)) in chosen.iter().enumerate() {
        let line_copies = (1..=*n)
            .map(|k| (format!("SH-{}-{}-{}-{}", &issue_date[..4], order_mark, line + 1, k), verification_code(&mut rand::rngs::OsRng)))
            .collect();
        issued.push(line_copies);
    }
    let with_codes: Vec<(store::CertificateType, Vec<(String, String)>)> = chosen.iter().zip(&issued).map(|((t, _), codes)| (t.clone(), codes.clone())).collect();
    let mut copies = document_copies(&with_codes, &record, &university, register.as_ref(), academic.as_deref(), &issue_date, public_url);
    let seal_image = seal_image_of(&mut c, university.id).await?;
    drop(c);
    if !held {
        documents::proof::ProofSigner::for_university(pool, seal, university.id).await.map_err(AppError::Internal)?.stamp(&mut copies);
    }

    // 2. the PDF, rendered on the blocking pool: no async thread and no write lock is held meanwhile
    let document = if held { None } else { Some(render_pdf(fonts, seal_image, copies, hold_render).await?) };

    // 3. the order, its certificates, document and mail: one short transaction
    let mut tx = store::begin_write(pool).await?;
    crate::orders::service::check_open(&mut tx, university.id).await?;
    // A fresh random number, retried in the unlikely case it is taken (only
    // on-campus print has one: the store's service gives its own, post none).
    let mut number = None;
    if !held && req.delivery == "campus" {
        number = Some(free_print_number(&mut tx).await?);
    }
    let order_id = store::insert_order(
        &mut tx,
        &NewOrder {
            user_id,
            student_record_id: record.id,
            delivery: &req.delivery,
            payment_method: &req.payment_method,
            fees,
            system_fee,
            total,
            print_number: number.as_ref().map(|n| n.as_str()),
            created_at,
            pay_deadline: print_deadline,
            print_deadline,
            postage,
        },
    )
    .await?;
    if let Payer::University { cohort_item } = payer {
        store::set_order_paid(&mut tx, order_id, created_at).await?;
        if !store::set_cohort_item_order(&mut tx, cohort_item, order_id).await? {
            return Err(AppError::Internal(anyhow::anyhow!("graduate {cohort_item} of a graduation-day run has an order already")));
        }
    }
    if let (true, Some(a)) = (by_post, &req.post) {
        let json = serde_json::to_string(a).map_err(|e| AppError::Internal(e.into()))?;
        let sealed = seal.seal_str(&json, &post_aad(order_id)).map_err(|e| AppError::Internal(anyhow::anyhow!("sealing: {e}")))?;
        store::set_order_post_address(&mut tx, order_id, &sealed).await?;
    }
    if let Some(import_id) = academic_import {
        store::set_order_academic_import(&mut tx, order_id, import_id).await?;
    }
    for ((t, n), line_copies) in chosen.iter().zip(&issued) {
        let line_id = store::insert_order_line(&mut tx, order_id, t.id, &t.name_ja, &t.name_en, t.fee, *n).await?;
        for (serial, code) in line_copies {
            store::insert_certificate(&mut tx, line_id, serial, code, created_at).await?;
        }
    }
    match &document {
        None => {
            store::set_order_held(&mut tx, order_id, &missing.iter().collect::<String>()).await?;
            tracing::warn!(order_id, ?missing, "order held: no font has these characters");
        }
        Some((pdf, pages)) => {
            store::set_order_document(&mut tx, order_id, &seal_pdf(seal, order_id, pdf)?, *pages as i64).await?;
            // paid online: the number is mailed once the payment is in (number_mail)
            if let (Some(n), "card") = (&number, req.payment_method.as_str()) {
                let lines_text: Vec<(String, String, i64)> =
                    chosen.iter().map(|(t, n)| (t.name_ja.clone(), t.name_en.clone(), *n)).collect();
                let to = mail::Recipient { name_ja: &record.name_kanji, name_en: &record.name_roman, language: &user.language };
                let m = mail::print_number_mail(
                    &to,
                    n,
                    &lines_text,
                    Yen(total),
                    &time::deadline_text(print_deadline, zone),
                    &format!("{public_url}/orders/{order_id}"),
                    order_id,
                    false,
                );
                m.enqueue_for_order(&mut tx, seal, &user.email, order_id).await?;
            }
        }
    }
    let actor = match payer {
        Payer::Graduate => format!("user:{user_id}"),
        Payer::University { cohort_item } => format!("graduation-day:{cohort_item}"),
    };
    store::audit(&mut tx, &actor, "order.place", &format!("order {order_id}"), created_at).await?;
    tx.commit().await?;
    tracing::info!(order_id, total, held, "order placed");
    Ok(Placed { order_id, print_number: number, held })
}

/// O-4: starts paying an order online through its provider (PayPal: the
/// approval page to send the payer to; Smart Pit: the payment number, issued
/// once and mailed). Asking again for a Smart Pit order shows the same number.
pub async fn start_payment(pool: &Pool, seal: &crate::sealed::SealKey, provider: &dyn PaymentProvider, user_id: i64, order_id: i64) -> AppResult<Started> {
    let mut c = pool.acquire().await?;
    let order = store::order(&mut c, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if order.user_id != user_id || order.payment_method != provider.method() {
        return Err(AppError::PageNotFound);
    }
    if let Some(n) = order.smartpit_number.clone() {
        return Ok(Started::PayNumber(n));
    }
    if order.status != "awaiting_payment" || order.pay_deadline <= now() {
        return Err(page_err(messages::CANNOT_PAY));
    }
    let record = store::student_records(&mut c, user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
    let university = store::university(&mut c, record.university_id).await?;
    let user = store::user(&mut c, user_id).await?;
    drop(c);
    let zone = time::tz(&university.timezone);
    let due = time::local_date(order.pay_deadline - 1, zone);
    let reference = format!("order-{order_id}");
    let key = format!("start-{}-order-{order_id}", provider.method());
    let req = PaymentRequest { reference: &reference, amount: Yen(order.total), due: &due, payer_kana: &record.name_kana, key: &key };
    let started = provider.start(req).await.map_err(|e| {
        tracing::warn!(error = %e, order_id, method = provider.method(), "payment not started");
        page_err(match provider.method() {
            "smartpit" => messages::SMARTPIT_UNAVAILABLE,
            _ => messages::PAYMENT_UNAVAILABLE,
        })
    })?;
    let mut tx = store::begin_write(pool).await?;
    match &started {
        Started::Redirect { reference, .. } => store::set_order_paypal(&mut tx, order_id, reference).await?,
        Started::PayNumber(number) => {
            store::set_order_smartpit(&mut tx, order_id, number).await?;
            let to = mail::Recipient { name_ja: &record.name_kanji, name_en: &record.name_roman, language: &user.language };
            mail::smartpit_mail(&to, number, Yen(order.total), &time::deadline_text(order.pay_deadline, zone), order_id).enqueue_for_order(&mut tx, seal, &user.email, order_id).await?;
            store::audit(&mut tx, &format!("user:{user_id}"), "order.smartpit_number", &format!("order {order_id}"), now()).await?;
        }
    }
    tx.commit().await?;
    Ok(started)
}

/// What a Smart Pit notice did.
pub enum NoticeOutcome {
    Paid,
    Duplicate,
    UnknownNumber,
    AmountDiffers,
}

/// A payment notice from Smart Pit (already verified): the order is paid once.
pub async fn smartpit_notice(pool: &Pool, seal: &crate::sealed::SealKey, public_url: &str, n: &crate::payments::smartpit::Notice) -> AppResult<NoticeOutcome> {
    let mut tx = store::begin_write(pool).await?;
    if store::smartpit_notice_seen(&mut tx, &n.notice_id).await? {
        return Ok(NoticeOutcome::Duplicate);
    }
    let Some(order) = store::order_by_smartpit(&mut tx, &n.payment_number).await? else {
        tracing::warn!(notice = %n.notice_id, "Smart Pit notice for a payment number we never issued");
        return Ok(NoticeOutcome::UnknownNumber);
    };
    if n.amount != order.total {
        tracing::error!(order_id = order.id, expected = order.total, paid = n.amount, "Smart Pit notice amount differs");
        return Ok(NoticeOutcome::AmountDiffers);
    }
    store::insert_smartpit_notice(&mut tx, &n.notice_id, &n.payment_number, order.id, n.amount, now()).await?;
    let first = store::set_order_paid_cash(&mut tx, order.id, now()).await?;
    if first {
        store::audit(&mut tx, "smartpit", "order.paid.smartpit", &format!("order {} notice {}", order.id, n.notice_id), now()).await?;
    }
    tx.commit().await?;
    if first && order.print_number.is_some() {
        resend_number(pool, seal, public_url, order.user_id, order.id).await?;
    } else if first && order.delivery == "post" {
        mail_post_reserved(pool, seal, order.id).await?;
    } else if first && order.delivery == "digital" {
        digital::mail_ready(pool, seal, public_url, order.id).await?;
    }
    Ok(NoticeOutcome::Paid)
}

/// O-3: registers every paid convenience-store print order that is not yet
/// registered with the stores' service and mails its numbers. Run after each
/// payment and by a timer, so an order paid while the service was down is
/// registered once it is back (the idempotency key makes a retry harmless).
/// Returns how many were registered.
pub async fn register_store_prints(pool: &Pool, seal: &crate::sealed::SealKey, storeprint: &dyn crate::payments::storeprint::StorePrintService, public_url: &str) -> AppResult<usize> {
    let mut c = pool.acquire().await?;
    let pending = store::orders_for_store_print(&mut c).await?;
    drop(c);
    let mut done = 0;
    for order in pending {
        if order.print_deadline <= now() {
            continue; // past its deadline: nothing to print (staff may refund)
        }
        let mut c = pool.acquire().await?;
        let Some(pdf) = stored_pdf(&mut c, seal, order.id).await? else { continue };
        let record = store::student_records(&mut c, order.user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
        let university = store::university(&mut c, record.university_id).await?;
        drop(c);
        let zone = time::tz(&university.timezone);
        let last_day = time::local_date(order.print_deadline - 1, zone);
        let reg = match storeprint.register(&format!("order-{}", order.id), &pdf, order.pages, &last_day, &format!("store-order-{}", order.id)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, order_id = order.id, "store print registration failed; retried later");
                continue;
            }
        };
        let mut tx = store::begin_write(pool).await?;
        if store::set_order_store(&mut tx, order.id, &reg.file_id, &reg.user_number, &reg.reservation_number, now()).await? {
            let user = store::user(&mut tx, order.user_id).await?;
            let to = mail::Recipient { name_ja: &record.name_kanji, name_en: &record.name_roman, language: &user.language };
            mail::store_print_mail(&to, &reg.user_number, &reg.reservation_number, &time::deadline_text(order.print_deadline, zone), order.pages, &format!("{public_url}/orders/{}", order.id))
                .enqueue_for_order(&mut tx, seal, &user.email, order.id)
                .await?;
            store::audit(&mut tx, "storeprint", "order.store_registered", &format!("order {} file {}", order.id, reg.file_id), now()).await?;
            done += 1;
        }
        tx.commit().await?;
    }
    if done > 0 {
        tracing::info!(count = done, "orders registered for convenience-store print");
    }
    Ok(done)
}

/// What a store print notice did.
pub enum StoreNoticeOutcome {
    Printed,
    Duplicate,
    UnknownDocument,
}

/// A print notice from the stores' service (already verified): the order is printed, once.
pub async fn storeprint_notice(pool: &Pool, n: &crate::payments::storeprint::Notice) -> AppResult<StoreNoticeOutcome> {
    let mut tx = store::begin_write(pool).await?;
    let Some(order) = store::order_by_store_file(&mut tx, &n.file_id).await? else {
        tracing::warn!(notice = %n.notice_id, "store print notice for a document we never registered");
        return Ok(StoreNoticeOutcome::UnknownDocument);
    };
    if !store::insert_storeprint_notice(&mut tx, &n.notice_id, order.id, &n.event, now()).await? {
        return Ok(StoreNoticeOutcome::Duplicate);
    }
    if n.event == "printed" && store::set_store_order_printed(&mut tx, order.id, now()).await? {
        store::audit(&mut tx, "storeprint", "order.printed.store", &format!("order {} notice {}", order.id, n.notice_id), now()).await?;
    }
    tx.commit().await?;
    Ok(StoreNoticeOutcome::Printed)
}

/// A completed PayPal capture marks the order paid (once) and mails the number.
pub async fn paid_by_paypal(pool: &Pool, seal: &crate::sealed::SealKey, public_url: &str, paypal_order_id: &str, capture_id: &str, amount: i64) -> AppResult<i64> {
    let mut tx = store::begin_write(pool).await?;
    let order = store::order_by_paypal(&mut tx, paypal_order_id).await?.ok_or(AppError::PageNotFound)?;
    if amount != order.total {
        tracing::error!(order_id = order.id, expected = order.total, captured = amount, "captured amount differs: order not marked paid");
        return Err(AppError::Internal(anyhow::anyhow!("captured amount differs from the order")));
    }
    if store::set_order_paid_online(&mut tx, order.id, capture_id, now()).await? {
        store::audit(&mut tx, &format!("user:{}", order.user_id), "order.paid.paypal", &format!("order {} capture {capture_id}", order.id), now()).await?;
        tx.commit().await?;
        if order.print_number.is_some() {
            resend_number(pool, seal, public_url, order.user_id, order.id).await?;
        } else if order.delivery == "post" {
            mail_post_reserved(pool, seal, order.id).await?;
        } else if order.delivery == "digital" {
            digital::mail_ready(pool, seal, public_url, order.id).await?;
        }
        tracing::info!(order_id = order.id, "order paid through PayPal");
    }
    Ok(order.id)
}

// Refunds (staff's and the automatic refund of failed prints) are in `crate::payments::refunds`.

/// What releasing a held order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// It goes ahead (awaiting payment, or paid if it was) and the user is mailed.
    Released,
    /// A character still cannot be drawn: it stays held; these are the characters.
    StillMissing(String),
}

/// An order's certificates, by line, with the serials and codes issued when
/// it was placed.
async fn order_certificates(c: &mut store::Conn, university_id: i64, order_id: i64) -> AppResult<Vec<(store::CertificateType, Vec<(String, String)>)>> {
    let types = store::all_certificate_types(c, university_id).await?;
    let mut chosen: Vec<(store::CertificateType, Vec<(String, String)>)> = Vec::new();
    let mut lines_seen: Vec<i64> = Vec::new();
    for (line_id, type_id, serial, code) in store::order_copies(c, order_id).await? {
        if lines_seen.last() != Some(&line_id) {
            let t = types.iter().find(|t| t.id == type_id).cloned().ok_or(AppError::PageNotFound)?;
            chosen.push((t, Vec::new()));
            lines_seen.push(line_id);
        }
        if let Some((_, codes)) = chosen.last_mut() {
            codes.push((serial, code));
        }
    }
    Ok(chosen)
}

/// A paid order's document rendered again, each certificate saying whom
/// it was issued for (a digital copy shared with a recipient): the same
/// serials, codes and date of issue, the registrar's records as they are
/// now (D-3), the QR payloads signed afresh.
pub async fn render_for_recipient(
    pool: &Pool,
    fonts: &std::sync::Arc<FontSet>,
    seal: &crate::sealed::SealKey,
    public_url: &str,
    order: &store::Order,
    submitted_to: &str,
) -> AppResult<Vec<u8>> {
    let mut c = pool.acquire().await?;
    let record = store::student_records(&mut c, order.user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
    let university = store::university(&mut c, record.university_id).await?;
    let Some((record, register)) = registrar_record(&mut c, seal, record).await? else {
        return Err(page_err(messages::NOT_IN_REGISTER));
    };
    let chosen = order_certificates(&mut c, university.id, order.id).await?;
    let issue_date = time::local_date(order.created_at, time::tz(&university.timezone));
    // a transcript states the version of the courses its order printed (D-3)
    let academic = match crate::registrar::academic::of_order(&mut c, order.id, &record.student_no).await? {
        Some(courses) => Some(courses),
        None if chosen.iter().any(|(t, _)| is_transcript(t)) => return Err(crate::registrar::academic::no_record()),
        None => None,
    };
    let mut copies = document_copies(&chosen, &record, &university, Some(&register), academic.as_deref(), &issue_date, public_url);
    for copy in &mut copies {
        match copy {
            DocumentCopy::Certificate(cert) => cert.submitted_to = submitted_to.to_string(),
            DocumentCopy::Transcript(t) => t.submitted_to = submitted_to.to_string(),
        }
    }
    let seal_image = seal_image_of(&mut c, university.id).await?;
    drop(c);
    documents::proof::ProofSigner::for_university(pool, seal, university.id).await.map_err(AppError::Internal)?.stamp(&mut copies);
    Ok(render_pdf(fonts, seal_image, copies, None).await?.0)
}

/// Held orders (a name no font can draw): staff release one once it is
/// fixed (a font installed, the register corrected). Its PDF is made again
/// as an order's is, from the register as it is now, with the certificates'
/// own serials and codes. If every character can be drawn, the order moves
/// on to awaiting payment (or paid, if it was) with its print number
/// (on-campus) and its deadlines counted from now, and the user is mailed
/// (with the number mail of an on-campus order paid at the printer, as when
/// ordering). Otherwise it stays held and staff see which characters.
#[allow(clippy::too_many_arguments)]
pub async fn release_held(
    pool: &Pool,
    fonts: &std::sync::Arc<FontSet>,
    seal: &crate::sealed::SealKey,
    providers: &[&dyn PaymentProvider],
    public_url: &str,
    staff: &store::Staff,
    client: crate::accounts::Client<'_>,
    order_id: i64,
) -> AppResult<Released> {
    let actor = format!("staff:{}", staff.login);
    let mut c = pool.acquire().await?;
    let order = store::order(&mut c, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if order.status != "held" {
        return Err(page_err(messages::NOT_HELD));
    }
    let user = store::user(&mut c, order.user_id).await?;
    let record = store::student_records(&mut c, order.user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
    let university = store::university(&mut c, record.university_id).await?;
    // D-3: what the register says now (the registrar may have corrected the name)
    let Some((record, register)) = registrar_record(&mut c, seal, record).await? else {
        return Err(page_err(messages::NOT_IN_REGISTER));
    };
    let chosen = order_certificates(&mut c, university.id, order_id).await?;
    if chosen.is_empty() {
        return Err(AppError::Internal(anyhow::anyhow!("held order {order_id} has no certificates")));
    }
    let lacking = register_lacks(&register, chosen.iter().map(|(t, _)| t));
    if !lacking.is_empty() {
        return Err(page_err(&messages::register_lacks(&lacking)));
    }
    let academic = if chosen.iter().any(|(t, _)| is_transcript(t)) {
        Some(crate::registrar::academic::current(&mut c, record.university_id, &record.student_no).await?.ok_or_else(crate::registrar::academic::no_record)?)
    } else {
        None
    };
    let academic_import = academic.as_ref().map(|(id, _)| *id);
    let academic = academic.map(|(_, courses)| courses);
    let missing: String = unprintable(fonts, &record, academic.as_deref()).into_iter().collect();
    if !missing.is_empty() {
        drop(c);
        let mut tx = store::begin_write(pool).await?;
        store::set_held_chars(&mut tx, order_id, &missing).await?;
        crate::accounts::audit(&mut tx, &actor, "order.release_refused", &format!("order:{order_id}"), client).await?;
        tx.commit().await?;
        tracing::warn!(order_id, %missing, "held order not released: no font has these characters yet");
        return Ok(Released::StillMissing(missing));
    }
    let zone = time::tz(&university.timezone);
    let t = now();
    let issue_date = time::local_date(t, zone);
    let mut copies = document_copies(&chosen, &record, &university, Some(&register), academic.as_deref(), &issue_date, public_url);
    let seal_image = seal_image_of(&mut c, university.id).await?;
    drop(c);
    documents::proof::ProofSigner::for_university(pool, seal, university.id).await.map_err(AppError::Internal)?.stamp(&mut copies);
    let (pdf, pages) = render_pdf(fonts, seal_image, copies, None).await?;

    // the user's days to pay and print start now, not when the order was held
    let print_deadline = time::print_deadline(t, zone);
    let mut tx = store::begin_write(pool).await?;
    let mut number = None;
    if order.delivery == "campus" {
        number = Some(free_print_number(&mut tx).await?);
    }
    if !store::release_held_order(&mut tx, order_id, number.as_ref().map(|n| n.as_str()), print_deadline, print_deadline).await? {
        return Err(page_err(messages::NOT_HELD));
    }
    store::set_order_document(&mut tx, order_id, &seal_pdf(seal, order_id, &pdf)?, pages as i64).await?;
    if let Some(import_id) = academic_import {
        store::set_order_academic_import(&mut tx, order_id, import_id).await?;
    }
    let paid = order.paid_at.is_some();
    let deadline = time::deadline_text(print_deadline, zone);
    let (next_ja, next_en) = match (order.payment_method.as_str(), paid) {
        (_, true) => ("お支払いは済んでいます。次のお知らせを別のメールでお送りします。", "Your payment is in: the next step comes in a separate mail."),
        ("card", false) => (
            "学内印刷番号を別のメールでお送りします。学内の証明書発行機でその番号を入力し、ICカードでお支払いください。",
            "Your on-campus print number comes in a separate mail: enter it at an on-campus certificate printer and pay with your IC card.",
        ),
        ("paypal", false) => ("申込内容のページからクレジットカード（PayPal）でお支払いください。", "Please pay by credit card (PayPal) on your order's page."),
        _ => ("コンビニ払いの支払番号を別のメールでお送りします。", "The payment number to pay at a convenience store comes in a separate mail."),
    };
    let next = (format!("{next_ja}\n期限: {deadline}"), format!("{next_en}\nDeadline: {deadline}"));
    let to = mail::Recipient { name_ja: &record.name_kanji, name_en: &record.name_roman, language: &user.language };
    let order_url = format!("{public_url}/orders/{order_id}");
    mail::order_released_mail(&to, order_id, (next.0.as_str(), next.1.as_str()), &order_url).enqueue_for_order(&mut tx, seal, &user.email, order_id).await?;
    // the number mail, as when an on-campus order is placed (paid online: once paid)
    if let (Some(n), true) = (&number, order.payment_method == "card" || paid) {
        let lines: Vec<(String, String, i64)> = store::order_lines(&mut tx, order_id).await?.into_iter().map(|l| (l.name_ja, l.name_en, l.copies)).collect();
        mail::print_number_mail(&to, n, &lines, Yen(order.total), &deadline, &order_url, order_id, paid).enqueue_for_order(&mut tx, seal, &user.email, order_id).await?;
    }
    crate::accounts::audit(&mut tx, &actor, "order.release", &format!("order:{order_id}"), client).await?;
    tx.commit().await?;
    tracing::info!(order_id, "held order released");
    // after the commit, as for a new order: Smart Pit's payment number, a paid postal order's booking
    if order.payment_method == "smartpit" && !paid {
        if let Some(provider) = providers.iter().find(|p| p.method() == "smartpit") {
            if let Err(e) = start_payment(pool, seal, *provider, order.user_id, order_id).await {
                tracing::warn!(order_id, error = %e, "Smart Pit number not issued with the release: the order page offers it");
            }
        }
    } else if paid && order.delivery == "post" {
        mail_post_reserved(pool, seal, order_id).await?;
    } else if paid && order.delivery == "digital" {
        digital::mail_ready(pool, seal, public_url, order_id).await?;
    }
    Ok(Released::Released)
}

/// A fresh random print number no order has, retried in the unlikely case
/// one is taken.
async fn free_print_number(c: &mut store::Conn) -> AppResult<PrintNumber> {
    for _ in 0..5 {
        let candidate = PrintNumber::generate(&mut rand::rngs::OsRng);
        if store::order_by_print_number(c, candidate.as_str()).await?.is_none() {
            return Ok(candidate);
        }
    }
    Err(AppError::Internal(anyhow::anyhow!("no free print number after 5 tries")))
}

/// staff posted a postal order; the user is mailed.
pub async fn mark_shipped(pool: &Pool, seal: &crate::sealed::SealKey, staff: &store::Staff, client: crate::accounts::Client<'_>, order_id: i64) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if !store::set_order_shipped(&mut tx, order_id, now()).await? {
        return Err(page_err(messages::NOT_TO_POST));
    }
    let user = store::user(&mut tx, order.user_id).await?;
    let record = store::student_records(&mut tx, order.user_id).await?.into_iter().find(|r| r.id == order.student_record_id);
    let (ja, en) = record.map(|r| (r.name_kanji, r.name_roman)).unwrap_or_default();
    mail::shipped_mail(&mail::Recipient { name_ja: &ja, name_en: &en, language: &user.language }, order_id).enqueue_for_order(&mut tx, seal, &user.email, order_id).await?;
    crate::accounts::audit(&mut tx, &format!("staff:{}", staff.login), "order.shipped", &format!("order:{order_id}"), client).await?;
    tx.commit().await?;
    Ok(())
}

/// O-5: unpaid orders past their payment deadline expire by themselves (a
/// scheduled job; running it twice changes nothing more). Returns how many.
pub async fn expire_unpaid(pool: &Pool) -> AppResult<u64> {
    let mut tx = store::begin_write(pool).await?;
    let n = store::expire_unpaid_orders(&mut tx, now()).await?;
    if n > 0 {
        store::audit(&mut tx, "system", "order.expire", &format!("{n} orders"), now()).await?;
    }
    tx.commit().await?;
    if n > 0 {
        tracing::info!(count = n, "unpaid orders past their deadline expired");
    }
    Ok(n)
}

/// The user cancels an order not paid yet; its number stops working at once.
pub async fn cancel(pool: &Pool, user_id: i64, order_id: i64) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if order.user_id != user_id {
        return Err(AppError::PageNotFound);
    }
    if !store::cancel_unpaid_order(&mut tx, order_id).await? {
        return Err(page_err(messages::CANNOT_CANCEL));
    }
    store::audit(&mut tx, &format!("user:{user_id}"), "order.cancel", &format!("order {order_id}"), now()).await?;
    tx.commit().await?;
    Ok(())
}

/// Mails the print number again (a lost mail), while the order can still be printed.
/// Mails a paid postal order's "print reservation completed" (O-3).
async fn mail_post_reserved(pool: &Pool, seal: &crate::sealed::SealKey, order_id: i64) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, order_id).await?;
    let user = store::user(&mut tx, order.user_id).await?;
    let record = store::student_records(&mut tx, order.user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
    let post = open_post_address(seal, &order)?;
    let to = mail::Recipient { name_ja: &record.name_kanji, name_en: &record.name_roman, language: &user.language };
    let address = format!("{} 〒{} {}", post.name, post.postal_code, post.address);
    mail::post_reserved_mail(&to, order_id, &address).enqueue_for_order(&mut tx, seal, &user.email, order_id).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn resend_number(pool: &Pool, seal: &crate::sealed::SealKey, public_url: &str, user_id: i64, order_id: i64) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let order = store::order(&mut tx, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if order.user_id != user_id {
        return Err(AppError::PageNotFound);
    }
    let Some(number) = order.print_number.as_deref().and_then(|n| PrintNumber::parse(n).ok()) else { return Err(AppError::PageNotFound) };
    if !matches!(order.status.as_str(), "awaiting_payment" | "paid") || order.print_deadline <= now() {
        return Err(page_err(messages::CANNOT_RESEND));
    }
    let user = store::user(&mut tx, user_id).await?;
    let record = store::student_records(&mut tx, user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
    let university = store::university(&mut tx, record.university_id).await?;
    let lines: Vec<(String, String, i64)> = store::order_lines(&mut tx, order_id).await?.into_iter().map(|l| (l.name_ja, l.name_en, l.copies)).collect();
    let to = mail::Recipient { name_ja: &record.name_kanji, name_en: &record.name_roman, language: &user.language };
    let paid = order.status == "paid";
    mail::print_number_mail(&to, &number, &lines, Yen(order.total), &time::deadline_text(order.print_deadline, time::tz(&university.timezone)), &format!("{public_url}/orders/{order_id}"), order_id, paid)
        .enqueue_for_order(&mut tx, seal, &user.email, order_id)
        .await?;
    store::audit(&mut tx, &format!("user:{user_id}"), "order.resend_number", &format!("order {order_id}"), now()).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_codes_avoid_look_alikes() {
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let c = verification_code(&mut rng);
            assert_eq!(c.len(), 14);
            assert!(!c.contains(['0', 'O', '1', 'I']));
        }
    }
}
