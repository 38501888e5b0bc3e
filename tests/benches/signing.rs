//! Digital certificates signed per second (issue 16: "signed (and
//! timestamped) certificates per second and the time for 10,000; target
//! >= 100 per second on 2 cores"). Run with `deploy/bench --bench signing`.
//!
//! What is timed, on one certificate PDF rendered as production renders it
//! (the demo university's seal, IPAex Mincho):
//! - the PAdES signature alone (underskrift's B-B: parse, incremental update,
//!   CMS with an ECDSA P-256 key), sequential;
//! - one RFC 3161 time-stamp from `shomei-tsa` (a real TSA on loopback:
//!   `openssl ts -reply` per request), sequential;
//! - the whole B-T signing as the backend does it (`PdfSealer::sign`),
//!   sequential and with as many in flight as the machine has cores x 4;
//! - the credential attached before signing (`credential::attach`);
//! - graduation day end to end: a backend (SQLite, the demo university)
//!   issues one run's cohort of graduates with accounts, each rendered,
//!   signed B-T, kept and mailed (queued), timed from the registrar's press
//!   to the run's end.
//!
//! Reference side by side: pyHanko (`pyhanko sign addsig` with the same key,
//! chain and TSA; a process per PDF, as its command line works, so Python's
//! start-up is in its figure) signing the same PDF. Prints figures, the
//! target and ratios; asserts nothing.

#[path = "../e2e/harness.rs"]
mod harness;

use anyhow::{Context, Result};
use harness::*;
use shomei_backend::documents::{render_order_with, CertificateCopy, DocumentCopy, FontSet, SealImage};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const IPAEX_MINCHO: &str = "/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf";
const DEJAVU_SERIF: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf";
const RUNS: usize = 200;
const TARGET_PER_S: f64 = 100.0;
const PYHANKO_RUNS: usize = 10;
/// Graduates in the graduation-day run.
const COHORT: usize = 300;

fn certificate() -> Result<Vec<u8>> {
    let fonts = FontSet::new(vec![(IPAEX_MINCHO.into(), std::fs::read(IPAEX_MINCHO)?), (DEJAVU_SERIF.into(), std::fs::read(DEJAVU_SERIF)?)])?;
    let seal = SealImage::from_png(&shomei_backend::demo::demo_seal_png()?).map_err(anyhow::Error::msg)?;
    let copy = CertificateCopy {
        title_ja: "卒業証明書".into(),
        title_en: "Certificate of Graduation".into(),
        university_ja: "国立証明大学".into(),
        university_en: "Shomei University".into(),
        faculty_ja: "文学部".into(),
        department_ja: "日本文学科".into(),
        faculty_en: "Faculty of Letters".into(),
        department_en: "Department of Japanese Literature".into(),
        english_only: false,
        holder_name_kanji: "山田 花子".into(),
        holder_name_roman: "YAMADA Hanako".into(),
        birth_date: "2001-04-02".into(),
        body_ja: "上記の者は、2023年3月25日 本学文学部日本文学科を卒業したことを証明する。".into(),
        body_en: "This is to certify that the above-named person graduated from the Department of Japanese Literature, Faculty of Letters, of this University on March 25, 2023.".into(),
        issue_date: "2026-12-07".into(),
        serial: "SH-2026-000123-1".into(),
        verification_code: "K7QF-2M9X-PL3D".into(),
        verify_url: "https://shomei.example.ac.jp/verify".into(),
        offline_proof: String::new(),
        submitted_to: String::new(),
    };
    Ok(render_order_with(&fonts, Some(&seal), &[DocumentCopy::Certificate(copy)])?.0)
}

fn per_s(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    ms(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    shomei_backend::install_tls_provider();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let pdf = certificate()?;
    let pki = TestPki::make()?;
    let sealer = Arc::new(pki.sealer()?);
    println!("signing: one certificate PDF of {} bytes, ECDSA P-256, TSA {} ({cores} cores)", pdf.len(), pki.tsa.url);

    // warm-up (the TSA's first answers, the key, the allocator)
    for _ in 0..5 {
        sealer.sign(&pdf, "bench", "Shomei University").await?;
    }

    // the signature alone (B-B, underskrift)
    let options = || underskrift::SigningOptions { content_size: 24 * 1024, ..Default::default() };
    let start = Instant::now();
    for _ in 0..RUNS {
        underskrift::PdfSigner::new().options(options()).sign(&pdf, sealer.signer.as_ref()).await?;
    }
    let bb = start.elapsed();
    println!("  PAdES B-B signature alone      {:>8.1} /s  ({:.2} ms each)", per_s(RUNS, bb), ms(bb) / RUNS as f64);

    // one time-stamp
    let mut stamps = Vec::with_capacity(RUNS);
    let start = Instant::now();
    for i in 0..RUNS {
        let t = Instant::now();
        sealer.stamper.stamp(format!("signature value {i}").as_bytes()).await?;
        stamps.push(t.elapsed());
    }
    let ts = start.elapsed();
    stamps.sort();
    println!("  RFC 3161 time-stamp (TSA)      {:>8.1} /s  (p50 {:.2} ms, p99 {:.2} ms)", per_s(RUNS, ts), percentile(&stamps, 0.5), percentile(&stamps, 0.99));

    // the credential attached (lopdf load + save)
    let jwt = "eyJhbGciOiJFZERTQSJ9.e30.".to_string() + &"A".repeat(86);
    let start = Instant::now();
    for _ in 0..RUNS {
        shomei_backend::documents::credential::attach(&pdf, &[("SH-2026-000123-1".into(), jwt.clone())]).map_err(anyhow::Error::msg)?;
    }
    let att = start.elapsed();
    println!("  credential attached            {:>8.1} /s  ({:.2} ms each)", per_s(RUNS, att), ms(att) / RUNS as f64);

    // the whole B-T signing, one at a time
    let mut each = Vec::with_capacity(RUNS);
    let start = Instant::now();
    for _ in 0..RUNS {
        let t = Instant::now();
        sealer.sign(&pdf, "bench", "Shomei University").await?;
        each.push(t.elapsed());
    }
    let seq = start.elapsed();
    each.sort();
    println!("  PAdES B-T, one at a time       {:>8.1} /s  (p50 {:.2} ms, p99 {:.2} ms)", per_s(RUNS, seq), percentile(&each, 0.5), percentile(&each, 0.99));

    // many in flight, as a cohort's issuance runs
    let in_flight = cores * 4;
    let total = RUNS * 2;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..in_flight {
        let (sealer, pdf) = (sealer.clone(), pdf.clone());
        let n = total / in_flight + usize::from(w < total % in_flight);
        tasks.spawn(async move {
            for _ in 0..n {
                sealer.sign(&pdf, "bench", "Shomei University").await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let par = start.elapsed();
    let rate = per_s(total, par);
    println!("  PAdES B-T, {in_flight} in flight         {rate:>8.1} /s  -> 10,000 certificates in {:.0} s (target >= {TARGET_PER_S:.0}/s: {})",
             10_000.0 / rate, if rate >= TARGET_PER_S { "met" } else { "NOT met" });
    println!("    bound: the time-stamp authority (one openssl process per stamp: {:.0}/s one at a time); one stamp per signature (a signature time-stamp covers its own signature value: it cannot be shared across a batch)",
             per_s(RUNS, ts));

    graduation_day(&pki).await?;

    // reference: pyHanko, a process per PDF, the same key, chain and TSA
    let exe = std::env::var("SHOMEI_PYHANKO").unwrap_or_else(|_| "/opt/shomei/pyhanko/bin/pyhanko".into());
    let d = pki.dir.path();
    std::fs::write(d.join("in.pdf"), &pdf)?;
    std::fs::write(d.join("signing.key"), &pki.key_pem)?;
    let mut ok = 0;
    let start = Instant::now();
    for i in 0..PYHANKO_RUNS {
        let out = Command::new(&exe)
            .args(["sign", "addsig", "--field", "Sig1", "--timestamp-url"])
            .arg(&pki.tsa.url)
            .args(["pemder", "--key", "signing.key", "--cert", "signer.pem", "--chain", "root.pem", "--no-pass"])
            .arg("in.pdf")
            .arg(format!("out{i}.pdf"))
            .current_dir(d)
            .output()
            .with_context(|| format!("{exe} (deploy/install-pyhanko)"))?;
        if out.status.success() {
            ok += 1;
        } else if i == 0 {
            println!("  pyHanko: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default());
        }
    }
    let py = start.elapsed();
    if ok > 0 {
        let py_each = ms(py) / PYHANKO_RUNS as f64;
        println!("  reference: pyHanko B-T, a process per PDF  {:>6.1} /s  ({py_each:.0} ms each); shomei one at a time is {:.1}x, in flight {:.1}x",
                 1e3 / py_each, (1e3 / py_each).recip() * per_s(RUNS, seq), (1e3 / py_each).recip() * rate);
    }
    Ok(())
}

/// One graduation-day run of [`COHORT`] graduates through a backend: the
/// register imported, an account per graduate, the registrar's press, and
/// the time until the run has issued (rendered, signed, kept, mail queued) them all.
async fn graduation_day(pki: &TestPki) -> Result<()> {
    let signing = pki.signing_config()?;
    let b = Backend::start_with(None, move |c| c.documents.signing = signing).await?;
    let staff = b.staff_client().await?;
    let csrf_of = |page: &str| form_value(page, "csrf").context("csrf");
    // the register: COHORT graduates of the Faculty of Letters, graduated on 2025-03-25
    let mut csv = String::from("student_no,name_kanji,name_kana,name_roman,birth_date,faculty_code,department_code,degree_ja,degree_en,admission_date,graduation_date,leaving_type\n");
    for i in 0..COHORT {
        csv += &format!("B21-{i:04},試験 太郎{i},シケン タロウ,SHIKEN Taro {i},2003-04-0{},LET,JLIT,学士（文学）,Bachelor of Arts,2021-04-01,2025-03-25,graduated\n", 1 + i % 9);
    }
    let url = format!("{}/admin/school-register", b.url);
    let csrf = csrf_of(&staff.get(&url).send().await?.text().await?)?;
    let form = reqwest::multipart::Form::new().text("csrf", csrf).part("file", reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("register.csv"));
    anyhow::ensure!(staff.post(&url).multipart(form).send().await?.status() == 200, "register import");
    // an account per graduate (as approved registrations leave them)
    let users: Vec<String> = (0..COHORT).map(|i| format!("('b{i}@example.ac.jp', 'graduate', 'x', 0)")).collect();
    b.sql(&format!("INSERT INTO users (email, kind, password_hash, created_at) VALUES {}", users.join(", ")))?;
    b.sql("INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji, name_kana, name_roman, birth_date, leaving_type, graduation_date)
           SELECT id, 1, 1, 1, 'B21-' || substr('0000' || (CAST(substr(email, 2, instr(email, '@') - 2) AS INTEGER)), -4), 'x', 'x', 'x', '', 'graduated', '2025-03-25'
           FROM users WHERE email LIKE 'b%@example.ac.jp'")?;
    let english = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation_en'")?;
    let url = format!("{}/admin/graduation", b.url);
    let csrf = csrf_of(&staff.get(&url).send().await?.text().await?)?;
    let start = Instant::now();
    let r = staff.post(&url).form(&[("csrf", csrf.as_str()), ("certificate_type_id", english.as_str()), ("graduation_date", "2025-03-25"), ("faculty_code", "LET")]).send().await?;
    anyhow::ensure!(r.status() == 200, "the run started");
    let run = b.sql("SELECT MAX(id) FROM cohort_runs")?;
    while b.sql(&format!("SELECT finished_at IS NOT NULL FROM cohort_runs WHERE id = {run}"))? != "1" {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(600), "the run did not finish in 10 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = start.elapsed();
    let issued: usize = b.sql(&format!("SELECT COUNT(*) FROM cohort_items WHERE run_id = {run} AND state = 'issued'"))?.parse()?;
    let mailed: usize = b.sql("SELECT COUNT(*) FROM outbox WHERE subject LIKE '%issued as a digital certificate%'")?.parse()?;
    let rate = per_s(issued, took);
    println!("  graduation day, end to end: {issued} of {COHORT} graduates issued (rendered, signed B-T, kept, {mailed} mails queued) in {:.1} s: {rate:.1} /s -> 10,000 graduates in {:.0} s ({} in flight; SQLite)",
             took.as_secs_f64(), 10_000.0 / rate, shomei_backend::orders::cohort::IN_FLIGHT);
    Ok(())
}
