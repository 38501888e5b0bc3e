//! Certificate PDF rendering: one-page certificates rendered per second, the
//! PDF's size and the memory a render needs, with the backend's own renderer
//! as production calls it (`shomei_backend::documents::render_order_with`,
//! as `orders::place` does, with the university's seal stamped over the
//! registrar's title: the demo university's seal, `demo::demo_seal_png`;
//! fonts as configured in production: IPAex Mincho with DejaVu Serif as
//! fallback). Production decodes the stored seal PNG for every order
//! (`SealImage::from_png` in `orders::place`): that is timed too, alone and
//! with the render. Run with `deploy/bench`.
//!
//! Reference side by side: headless Chromium printing the same certificate
//! from an equivalent HTML page (same text, A4, IPAex Mincho through
//! `local()`, the same QR code as inline SVG, the same seal PNG as an image
//! at the same place):
//! - warm: a browser already running (chromedriver + chromium, the harness's
//!   `Browser`), the page loaded, printed with WebDriver's Print Page command
//!   (chromedriver runs CDP `Page.printToPDF`); also load + print per PDF;
//! - cold: one `chromium --headless --print-to-pdf` process per PDF.
//!
//! Peak memory: the bench binary re-runs itself with `SHOMEI_BENCH_RENDER_ONCE`
//! set; that child loads the fonts and the seal, renders one sealed
//! certificate and reports its `VmHWM` (RSS high-water mark) from
//! /proc/self/status at each step.
//!
//! Prints figures and the issue's targets (>= 50x faster than the warm
//! browser, <= 1/3 of its size, <= 5 ms and <= 20 MB for one page); it
//! asserts nothing.

#[path = "../e2e/harness.rs"]
mod harness;

use anyhow::{bail, Context, Result};
use fantoccini::wd::{PrintConfiguration, PrintMargins, PrintSize};
use harness::*;
use qrcodegen::{QrCode, QrCodeEcc};
use shomei_backend::documents::{printed_link, render_order_with, CertificateCopy, DocumentCopy, FontSet, SealImage};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IPAEX_MINCHO: &str = "/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf";
const DEJAVU_SERIF: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Set in the child process that renders one certificate and reports its memory.
const ONCE_ENV: &str = "SHOMEI_BENCH_RENDER_ONCE";
/// If set, a directory where the HTML page and the three PDFs are kept for a look.
const KEEP_ENV: &str = "SHOMEI_BENCH_PDF_DIR";

const WARMUP: usize = 20;
const RUNS: usize = 200;
const BROWSER_WARMUP: usize = 3;
const BROWSER_RUNS: usize = 20;
const COLD_RUNS: usize = 3;

// Targets from the issue.
const TARGET_SPEEDUP_WARM: f64 = 50.0;
const TARGET_SIZE_RATIO: f64 = 1.0 / 3.0;
const TARGET_MS: f64 = 5.0;
const TARGET_PEAK_MB: f64 = 20.0;

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration, Duration) {
    v.sort();
    let p90 = v[(v.len() * 9 / 10).min(v.len() - 1)];
    (v[0], v[v.len() / 2], p90, v[v.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The certificate of the backend's document tests: a graduate with a Japanese name,
/// its QR code carrying the signed payload as production prints it.
fn certificate() -> CertificateCopy {
    let mut docs = [DocumentCopy::Certificate(CertificateCopy {
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
        serial: "SH-2026-000123-1".into(),
        verification_code: "K7QF-2M9X-PL3D".into(),
        verify_url: "https://shomei.example.ac.jp/verify".into(),
        offline_proof: String::new(),
        submitted_to: String::new(),
    })];
    shomei_backend::documents::proof::ProofSigner::from_key_bytes([7; 32]).stamp(&mut docs);
    match docs {
        [DocumentCopy::Certificate(c)] => c,
        _ => unreachable!("one certificate"),
    }
}

/// The fonts as the backend loads them by default (config.rs): IPAex Mincho, then DejaVu Serif.
fn load_fonts() -> Result<FontSet> {
    let ipaex = std::fs::read(IPAEX_MINCHO).with_context(|| format!("{IPAEX_MINCHO} (fonts-ipaexfont-mincho)"))?;
    let dejavu = std::fs::read(DEJAVU_SERIF).with_context(|| format!("{DEJAVU_SERIF} (fonts-dejavu-core)"))?;
    FontSet::new(vec![("IPAex Mincho".into(), ipaex), ("DejaVu Serif".into(), dejavu)]).map_err(|e| anyhow::anyhow!("fonts: {e}"))
}

/// The seal as production stamps it: the demo university's PNG, decoded as
/// `orders::place` decodes the stored one.
fn seal_png() -> Result<Vec<u8>> {
    shomei_backend::demo::demo_seal_png().context("the demo seal")
}

fn decode_seal(png: &[u8]) -> Result<SealImage> {
    SealImage::from_png(png).map_err(|e| anyhow::anyhow!("seal: {e}"))
}

/// One sealed certificate, as `orders::place` renders an order of one copy.
fn render_sealed(fonts: &FontSet, seal: &SealImage, docs: &[DocumentCopy]) -> Result<Vec<u8>> {
    render_order_with(fonts, Some(seal), docs).map(|(pdf, _)| pdf).map_err(|e| anyhow::anyhow!("render: {e}"))
}

// ------------------------------------------------------------------ peak memory (child process)

/// A `kB` field of /proc/self/status, e.g. `VmHWM`.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

/// The child: load the fonts and the seal, render one sealed certificate,
/// report VmHWM after each step.
fn render_once() -> Result<()> {
    println!("start {} {}", status_kib("VmHWM"), status_kib("VmRSS"));
    let t0 = Instant::now();
    let fonts = load_fonts()?;
    let seal = decode_seal(&seal_png()?)?;
    let fonts_time = t0.elapsed();
    println!("fonts {} {} {}", status_kib("VmHWM"), status_kib("VmRSS"), ms(fonts_time));
    let t1 = Instant::now();
    let pdf = render_sealed(&fonts, &seal, &[DocumentCopy::Certificate(certificate())])?;
    let render_time = t1.elapsed();
    println!("render {} {} {} {}", status_kib("VmHWM"), status_kib("VmRSS"), ms(render_time), pdf.len());
    Ok(())
}

struct Memory {
    start_hwm: u64,
    fonts_hwm: u64,
    fonts_ms: f64,
    render_hwm: u64,
    first_render_ms: f64,
}

fn measure_memory() -> Result<Memory> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe).env(ONCE_ENV, "1").stdin(Stdio::null()).output()?;
    if !out.status.success() {
        bail!("render-once child failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |tag: &str| -> Vec<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(tag)?.strip_prefix(' '))
            .map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default()
    };
    let (start, fonts, rendered) = (line("start"), line("fonts"), line("render"));
    if start.len() < 2 || fonts.len() < 3 || rendered.len() < 4 {
        bail!("unexpected child output: {text}");
    }
    Ok(Memory {
        start_hwm: start[0] as u64,
        fonts_hwm: fonts[0] as u64,
        fonts_ms: fonts[2],
        render_hwm: rendered[0] as u64,
        first_render_ms: rendered[2],
    })
}

// ------------------------------------------------------------------ the same certificate as HTML

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn date_ja(iso: &str) -> String {
    let p: Vec<u32> = iso.split('-').filter_map(|n| n.parse().ok()).collect();
    format!("{}年{}月{}日", p[0], p[1], p[2])
}

fn date_en(iso: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
        "November", "December",
    ];
    let p: Vec<u32> = iso.split('-').filter_map(|n| n.parse().ok()).collect();
    format!("{} {}, {}", MONTHS[p[1] as usize - 1], p[2], p[0])
}

/// An HTML page drawing the same certificate as `render_order_with` (same
/// text, sizes and positions in pt, frame, rules, QR code and the seal PNG),
/// A4 with no margins.
fn certificate_html(c: &CertificateCopy, seal_png: &[u8]) -> String {
    const PAGE_W: f32 = 595.28;
    const PAGE_H: f32 = 841.89;
    const MARGIN: f32 = 72.0;
    const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
    const VALUE_X: f32 = MARGIN + 100.0;
    // one line of text whose baseline is at y (PDF coordinates, from the bottom)
    let top = |y: f32, size: f32| PAGE_H - y - 0.88 * size;
    let mut body = String::new();
    let mut text = |x: f32, y: f32, size: f32, style: &str, s: &str| {
        let _ = writeln!(body, r#"<div class="t" style="left:{x:.2}pt;top:{:.2}pt;font-size:{size}pt;{style}">{}</div>"#, top(y, size), esc(s));
    };
    let center = format!("width:{CONTENT_W:.2}pt;text-align:center;");
    text(MARGIN, 712.0, 28.0, &format!("{center}letter-spacing:0.25em;text-indent:0.25em"), &c.title_ja);
    text(MARGIN, 684.0, 13.0, &format!("{center}letter-spacing:0.04em"), &c.title_en);
    let labels = [("氏名", "Name", 612.0), ("生年月日", "Date of Birth", 556.0), ("所属", "Faculty / Department", 506.0), ("発行日", "Date of Issue", 286.0)];
    for (ja, en, y) in labels {
        text(MARGIN, y, 10.5, "", ja);
        text(MARGIN, y - 11.0, 7.0, "", en);
    }
    text(VALUE_X, 612.0, 22.0, "", &c.holder_name_kanji);
    text(VALUE_X, 592.0, 12.0, "", &c.holder_name_roman);
    text(VALUE_X, 556.0, 12.0, "", &date_ja(&c.birth_date));
    text(VALUE_X, 542.0, 10.0, "", &date_en(&c.birth_date));
    text(VALUE_X, 506.0, 12.0, "", &format!("{}\u{3000}{}", c.faculty_ja, c.department_ja));
    text(VALUE_X, 286.0, 12.0, "", &date_ja(&c.issue_date));
    text(VALUE_X, 272.0, 10.0, "", &date_en(&c.issue_date));
    let issuer_x = PAGE_W / 2.0 + 10.0;
    text(issuer_x, 222.0, 17.0, "", &c.university_ja);
    text(issuer_x, 204.0, 10.5, "", &c.university_en);
    text(issuer_x, 178.0, 12.0, "", "教務部長");
    text(issuer_x, 165.0, 9.0, "", "Registrar");
    text(MARGIN, 102.0, 7.5, "", "証明書番号 Serial No.");
    text(MARGIN + 120.0, 102.0, 9.0, "", &c.serial);
    text(PAGE_W / 2.0, 102.0, 7.5, "", "照合コード Verification Code");
    text(PAGE_W / 2.0, 102.0, 9.0, &format!("width:{:.2}pt;text-align:right", PAGE_W / 2.0 - MARGIN), &c.verification_code);

    // the same QR code: one rectangle per run of dark modules, as the PDF draws it
    let link = printed_link(&c.verify_url, &c.verification_code, &c.offline_proof);
    let qr = QrCode::encode_text(&link, QrCodeEcc::Medium).ok();
    let (qr_side, qr_svg) = match &qr {
        Some(code) => {
            let n = code.size();
            let module = (70.0 / n as f32 * 100.0).floor() / 100.0;
            let side = module * n as f32;
            let mut path = String::new();
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
                    let _ = write!(path, "M{start} {row}h{}v1h-{}z", col - start, col - start);
                }
            }
            let svg = format!(
                r#"<svg class="qr" style="left:{MARGIN}pt;top:{:.2}pt;width:{side:.2}pt;height:{side:.2}pt" viewBox="0 0 {n} {n}" shape-rendering="crispEdges"><path d="{path}"/></svg>"#,
                PAGE_H - 134.0 - side
            );
            (side, svg)
        }
        None => (70.0, String::new()),
    };
    let caption_x = MARGIN + qr_side + 10.0;
    text(caption_x, 137.0, 8.5, "", "真偽確認 / Verify");

    // the seal, where the renderer stamps it: 62 pt square, its bottom at 139 pt,
    // 30 % of it left of the end of 教務部長 (12 pt, 4 full-width characters)
    let (seal_side, seal_bottom) = (62.0_f32, 139.0_f32);
    let seal_left = (issuer_x + 4.0 * 12.0 - 0.3 * seal_side).min(PAGE_W - MARGIN - seal_side).max(issuer_x);
    let seal_img = {
        use base64::Engine as _;
        format!(
            r#"<img class="seal" alt="" style="left:{seal_left:.2}pt;top:{:.2}pt;width:{seal_side}pt;height:{seal_side}pt" src="data:image/png;base64,{}">"#,
            PAGE_H - seal_bottom - seal_side,
            base64::engine::general_purpose::STANDARD.encode(seal_png)
        )
    };

    // body (wrapped, Japanese justified) and the foot's note with the URL
    let body_top = top(452.0, 13.0) - 0.45 * 13.0;
    let foot_top = top(86.0, 7.0) - 0.18 * 7.0;
    format!(
        r#"<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>{title_ja} / {title_en}</title>
<style>
@font-face {{ font-family: "Cert Mincho"; src: local("IPAexMincho"), local("IPAex明朝"); }}
@font-face {{ font-family: "Cert Serif"; src: local("DejaVu Serif"), local("DejaVuSerif"); }}
@page {{ size: A4; margin: 0; }}
html, body {{ margin: 0; padding: 0; }}
body {{ font-family: "Cert Mincho", "Cert Serif", serif; color: #000; }}
.page {{ position: relative; width: {PAGE_W}pt; height: 841pt; overflow: hidden; }}
.t {{ position: absolute; line-height: 1; white-space: nowrap; }}
.frame {{ position: absolute; box-sizing: border-box; border-style: solid; border-color: #404040; }}
.rule {{ position: absolute; height: 0; border-top-style: solid; }}
.qr {{ position: absolute; }}
.seal {{ position: absolute; }}
.body {{ position: absolute; left: {MARGIN}pt; width: {CONTENT_W:.2}pt; top: {body_top:.2}pt; }}
.body p {{ margin: 0; }}
.ja {{ font-size: 13pt; line-height: 1.9; text-align: justify; }}
.en {{ font-size: 10.5pt; line-height: 1.45; margin-top: 1.1em !important; }}
.foot {{ position: absolute; left: {MARGIN}pt; width: {CONTENT_W:.2}pt; top: {foot_top:.2}pt; font-size: 7pt; line-height: 9.5pt; }}
.foot .url {{ font-size: 8.5pt; line-height: 10.2pt; margin-top: 1.5pt; overflow-wrap: anywhere; }}
</style></head>
<body><div class="page">
<div class="frame" style="left:28pt;top:28pt;width:{fw1:.2}pt;height:{fh1:.2}pt;border-width:0.8pt"></div>
<div class="frame" style="left:32.5pt;top:32.5pt;width:{fw2:.2}pt;height:{fh2:.2}pt;border-width:0.3pt"></div>
<div class="rule" style="left:{r1x:.2}pt;width:220pt;top:{r1y:.2}pt;border-top-width:0.5pt"></div>
<div class="rule" style="left:{MARGIN}pt;width:{CONTENT_W:.2}pt;top:{r2y:.2}pt;border-top-width:0.4pt;border-color:#404040"></div>
{body}{qr_svg}
{seal_img}
<div class="body"><p class="ja">{body_ja}</p><p class="en">{body_en}</p></div>
<div class="foot"><p style="margin:0">本証明書の真正性は、照合コードにより次のページで確認できます。 The authenticity of this certificate can be verified with the code at:</p><p class="url">{url}</p></div>
</div></body></html>
"#,
        title_ja = esc(&c.title_ja),
        title_en = esc(&c.title_en),
        fw1 = PAGE_W - 56.0,
        fh1 = PAGE_H - 56.0,
        fw2 = PAGE_W - 65.0,
        fh2 = PAGE_H - 65.0,
        r1x = PAGE_W / 2.0 - 110.0,
        r1y = PAGE_H - 668.0,
        r2y = PAGE_H - 118.0,
        body_ja = esc(&c.body_ja),
        body_en = esc(&c.body_en),
        url = esc(&c.verify_url),
    )
}

// ------------------------------------------------------------------ PDF facts for the table

/// Pages (pdfinfo), embedded fonts (pdffonts) and images (pdfimages, soft
/// masks not counted) of a PDF, for the reader to check that both sides
/// produced one page set in IPAex Mincho with the seal on it.
fn pdf_facts(pdf: &[u8], dir: &Path, name: &str) -> (String, String, String) {
    let path = dir.join(name);
    if std::fs::write(&path, pdf).is_err() {
        return ("?".into(), "?".into(), "?".into());
    }
    if let Some(keep) = std::env::var_os(KEEP_ENV) {
        let _ = std::fs::create_dir_all(&keep).and_then(|()| std::fs::write(Path::new(&keep).join(name), pdf));
    }
    let run = |tool: &str| {
        Command::new(tool)
            .args(if tool == "pdfimages" { &["-list"][..] } else { &[][..] })
            .arg(&path)
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let pages = run("pdfinfo")
        .lines()
        .find_map(|l| l.strip_prefix("Pages:").map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "?".into());
    let fonts: Vec<String> = run("pdffonts")
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let listing = run("pdfimages");
    let images = if listing.is_empty() {
        "?".into()
    } else {
        // page num type width height ...: rows of type "image" (an "smask" row is the seal's alpha)
        listing.lines().skip(2).filter(|l| l.split_whitespace().nth(2) == Some("image")).count().to_string()
    };
    (pages, if fonts.is_empty() { "?".into() } else { fonts.join(", ") }, images)
}

// ------------------------------------------------------------------ Chromium

fn print_config() -> Result<PrintConfiguration> {
    PrintConfiguration::builder()
        .size(PrintSize::A4)
        .margins(PrintMargins { top: 0.0, bottom: 0.0, left: 0.0, right: 0.0 })
        .build()
        .map_err(|e| anyhow::anyhow!("print configuration: {e:?}"))
}

/// One cold `chromium --headless --print-to-pdf` run, fresh profile: (wall time, PDF).
fn cold_print(url: &str) -> Result<(Duration, Vec<u8>)> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out.pdf");
    let t0 = Instant::now();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chromium")?;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("chromium --print-to-pdf did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = t0.elapsed();
    if !status.success() {
        bail!("chromium --print-to-pdf failed: {status}");
    }
    Ok((elapsed, std::fs::read(&out).context("chromium wrote no PDF")?))
}

// ------------------------------------------------------------------ main

fn main() -> Result<()> {
    if std::env::var_os(ONCE_ENV).is_some() {
        return render_once();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(bench())
}

async fn bench() -> Result<()> {
    let work = tempfile::tempdir()?;
    let copy = certificate();
    let docs = [DocumentCopy::Certificate(copy.clone())];
    let png = seal_png()?;

    // 1. ours: peak memory in a fresh process, then the render loops
    let mem = measure_memory()?;
    let fonts = load_fonts()?;
    let seal = decode_seal(&png)?;
    let mut pdf = Vec::new();
    for _ in 0..WARMUP {
        pdf = render_sealed(&fonts, &seal, &docs)?;
    }
    // the render, the seal decoded once (as a warm browser has the page loaded)
    let mut times = Vec::with_capacity(RUNS);
    let all = Instant::now();
    for _ in 0..RUNS {
        let t = Instant::now();
        pdf = render_sealed(&fonts, &seal, &docs)?;
        times.push(t.elapsed());
    }
    let ours_total = all.elapsed();
    let ours = stats(times);
    // the seal's PNG decoded (and its pixels deflated) alone, and with the render: what orders::place does per order
    let mut decode_times = Vec::with_capacity(RUNS);
    let mut both_times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let s = decode_seal(&png)?;
        decode_times.push(t.elapsed());
        let _ = render_sealed(&fonts, &s, &docs)?;
        both_times.push(t.elapsed());
    }
    let decode = stats(decode_times);
    let per_order = stats(both_times);
    let ours_size = pdf.len();
    let (ours_pages, ours_fonts, ours_images) = pdf_facts(&pdf, work.path(), "ours.pdf");

    // 2. the same certificate as HTML
    let html = work.path().join("certificate.html");
    std::fs::write(&html, certificate_html(&copy, &png))?;
    if let Some(keep) = std::env::var_os(KEEP_ENV) {
        std::fs::create_dir_all(&keep)?;
        std::fs::copy(&html, Path::new(&keep).join("certificate.html"))?;
    }
    let url = format!("file://{}", html.display());

    // warm browser: started once, page loaded, Print Page over WebDriver
    let browser = Browser::start().await?;
    browser.client.goto(&url).await?;
    let mut warm_pdf = Vec::new();
    for _ in 0..BROWSER_WARMUP {
        warm_pdf = browser.client.print(print_config()?).await?;
    }
    let mut times = Vec::with_capacity(BROWSER_RUNS);
    for _ in 0..BROWSER_RUNS {
        let cfg = print_config()?;
        let t = Instant::now();
        warm_pdf = browser.client.print(cfg).await?;
        times.push(t.elapsed());
    }
    let warm = stats(times);
    // warm browser, a fresh page load per PDF (as a server printing a new certificate would)
    let mut times = Vec::with_capacity(BROWSER_RUNS);
    for i in 0..BROWSER_RUNS {
        let cfg = print_config()?;
        let t = Instant::now();
        browser.client.goto(&format!("{url}?copy={i}")).await?;
        let _ = browser.client.print(cfg).await?;
        times.push(t.elapsed());
    }
    let warm_load = stats(times);
    browser.close().await;
    let (warm_pages, warm_fonts, warm_images) = pdf_facts(&warm_pdf, work.path(), "warm.pdf");

    // cold: one chromium process per PDF
    let mut times = Vec::with_capacity(COLD_RUNS);
    let mut cold_pdf = Vec::new();
    for _ in 0..COLD_RUNS {
        let (t, p) = cold_print(&url)?;
        times.push(t);
        cold_pdf = p;
    }
    let cold = stats(times);
    let (cold_pages, cold_fonts, cold_images) = pdf_facts(&cold_pdf, work.path(), "cold.pdf");

    // 3. the table
    let row = |name: &str, runs: usize, (min, med, p90, max): (Duration, Duration, Duration, Duration), size: Option<usize>, pages: &str, images: &str| {
        let size = size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "  {name:<42} {runs:>4} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10.1} {size:>10} {pages:>5} {images:>6}",
            ms(min), ms(med), ms(p90), ms(max), 1000.0 / ms(med)
        );
    };
    println!("one-page certificate with the university's seal (山田 花子 / YAMADA Hanako, 卒業証明書, A4, QR code, seal {} bytes of PNG):", png.len());
    println!(
        "  {:<42} {:>4} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>5} {:>6}",
        "", "runs", "min ms", "median", "p90 ms", "max ms", "PDFs/s", "bytes", "pages", "images"
    );
    row("shomei render_order_with (seal decoded once)", RUNS, ours, Some(ours_size), &ours_pages, &ours_images);
    row("shomei seal decode + render (per order)", RUNS, per_order, None, "", "");
    row("  of which SealImage::from_png alone", RUNS, decode, None, "", "");
    row("chromium warm, Print Page (loaded)", BROWSER_RUNS, warm, Some(warm_pdf.len()), &warm_pages, &warm_images);
    row("chromium warm, page load + Print Page", BROWSER_RUNS, warm_load, None, "", "");
    row("chromium cold, --print-to-pdf", COLD_RUNS, cold, Some(cold_pdf.len()), &cold_pages, &cold_images);
    println!(
        "  shomei throughput over the {RUNS} runs: {:.1} PDFs/s ({:.3} ms each, one thread, seal decoded once)",
        RUNS as f64 / ours_total.as_secs_f64(),
        ms(ours_total) / RUNS as f64
    );
    println!("  embedded fonts: shomei [{ours_fonts}]  warm [{warm_fonts}]  cold [{cold_fonts}]");

    let ours_ms = ms(ours.1);
    let per_order_ms = ms(per_order.1);
    let warm_ratio = ms(warm.1) / ours_ms;
    let warm_load_ratio = ms(warm_load.1) / per_order_ms;
    let cold_ratio = ms(cold.1) / per_order_ms;
    let size_ratio = ours_size as f64 / warm_pdf.len() as f64;
    let cold_size_ratio = ours_size as f64 / cold_pdf.len() as f64;
    println!("ratios (medians; like with like: a loaded page against the seal decoded once, a page load against decode + render):");
    println!("  time  warm Print Page / shomei render           {warm_ratio:>8.1}x   target >= {TARGET_SPEEDUP_WARM}x: {}", met(warm_ratio >= TARGET_SPEEDUP_WARM));
    println!("  time  warm load + print / shomei decode+render  {warm_load_ratio:>8.1}x");
    println!("  time  cold --print-to-pdf / shomei decode+render {cold_ratio:>7.1}x");
    println!(
        "  size  shomei / warm                             {size_ratio:>8.3}    target <= 1/3: {}",
        met(size_ratio <= TARGET_SIZE_RATIO)
    );
    println!("  size  shomei / cold                             {cold_size_ratio:>8.3}");
    println!("one page in <= {TARGET_MS} ms: median {ours_ms:.3} ms (seal decoded once): {}; per order with the seal decoded {per_order_ms:.3} ms: {}", met(ours_ms <= TARGET_MS), met(per_order_ms <= TARGET_MS));
    println!(
        "peak memory (VmHWM of a fresh process rendering one sealed certificate; the bench binary itself):"
    );
    println!("  at start                       {:>8.1} MB", mb(mem.start_hwm));
    println!(
        "  after loading fonts and seal   {:>8.1} MB  (+{:.1} MB; IPAex Mincho is {:.1} MB on disk; {:.1} ms)",
        mb(mem.fonts_hwm),
        mb(mem.fonts_hwm.saturating_sub(mem.start_hwm)),
        std::fs::metadata(IPAEX_MINCHO).map(|m| m.len() as f64 / 1048576.0).unwrap_or(0.0),
        mem.fonts_ms
    );
    println!(
        "  after rendering one page       {:>8.1} MB  (+{:.1} MB for the render; first render in the process {:.2} ms)",
        mb(mem.render_hwm),
        mb(mem.render_hwm.saturating_sub(mem.fonts_hwm)),
        mem.first_render_ms
    );
    println!(
        "  peak <= {TARGET_PEAK_MB} MB: {:.1} MB: {}",
        mb(mem.render_hwm),
        met(mb(mem.render_hwm) <= TARGET_PEAK_MB)
    );
    Ok(())
}
