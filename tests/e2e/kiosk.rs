//! ST-1 in headless Chromium: the kiosk's keypad checks the number as it is
//! typed (digits left, then the check digit), targets are large enough for a
//! finger, Japanese and English switch, and a user who walks away is
//! forgotten (number and language) when the idle timeout brings the start
//! screen back. And the kiosk as the eye meets it (issue 14, Kiosk): every
//! text readable against what is behind it (WCAG 2.2 AA), drawn in the sans
//! font the project installs, a backspace key, the steps 1-2-3 and the amount
//! in the lower part of the screen, "take your card" and "take your
//! certificates" at the end, and one name for the code on the paper and on
//! the verification page.

use crate::harness::*;
use anyhow::{Context, Result};
use fantoccini::Locator;
use std::process::Command;
use std::time::Duration;

fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{3040}'..='\u{30ff}').contains(&c) || ('\u{4e00}'..='\u{9fff}').contains(&c))
}

async fn type_digits(b: &fantoccini::Client, digits: &str) -> Result<()> {
    for d in digits.chars() {
        b.find(Locator::Id(&format!("key-{d}"))).await?.click().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_checks_digits_as_typed_switches_language_and_forgets_the_user() -> Result<()> {
    let rig = Rig::start_tuned(Tuning { idle_timeout_s: 6, job_timeout_s: 60 }).await?;
    let page = rig.backend.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("number")?.replace(' ', "");
    let browser = Browser::start().await?;
    let b = &browser.client;
    b.goto(&rig.station.kiosk_url).await?;
    browser.wait_screen("idle", Duration::from_secs(10)).await?;

    // every button is at least 56 CSS pixels high: a finger, not a mouse
    let smallest = b
        .execute("return Math.min(...[...document.querySelectorAll('button')].filter(x => x.offsetParent).map(x => x.getBoundingClientRect().height))", vec![])
        .await?;
    assert!(smallest.as_f64().unwrap_or(0.0) >= 56.0, "smallest button {smallest}");

    // as typed: digits left; a wrong check digit is caught before OK, and OK is disabled
    type_digits(b, &number[..11]).await?;
    browser.wait_text("hint", "1 more digits").await?;
    let wrong = (number.as_bytes()[11] - b'0' + 1) % 10;
    type_digits(b, &wrong.to_string()).await?;
    let hint = browser.wait_text("hint", "swapped").await?;
    assert!(hint.contains("入れ替わり"), "both languages: {hint}");
    assert_eq!(b.find(Locator::Id("ok")).await?.attr("disabled").await?.as_deref(), Some("true"), "OK is disabled for a wrong number");
    b.find(Locator::Id("clear")).await?.click().await?;
    type_digits(b, &number).await?;
    browser.wait_text("hint", "looks right").await?;

    // English only, then the order in English
    b.find(Locator::Id("lang")).await?.click().await?;
    assert_eq!(b.execute("return document.documentElement.lang", vec![]).await?, "en");
    let title = b.find(Locator::Id("title")).await?.text().await?;
    assert!(!has_cjk(&title) && !title.is_empty(), "{title}");
    assert_eq!(b.find(Locator::Id("lang")).await?.text().await?, "日本語", "the way back is in Japanese");
    b.find(Locator::Id("ok")).await?.click().await?;
    browser.wait_screen("card", Duration::from_secs(10)).await?;
    for id in ["title", "message", "lines", "amount-row", "actions"] {
        let text = b.find(Locator::Id(id)).await?.text().await?;
        assert!(!has_cjk(&text), "#{id} in English only: {text}");
    }
    let text = browser.body_text().await?;
    assert!(text.contains("Tap your IC card") && text.contains("¥400") && text.contains("System usage fee"), "{text}");

    // the user walks away: after the idle timeout the start screen is back, in Japanese, empty
    browser.wait_screen("idle", Duration::from_secs(15)).await?;
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while b.execute("return document.documentElement.lang", vec![]).await? != "ja" {
        anyhow::ensure!(std::time::Instant::now() < end, "the language was not reset");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let title = b.find(Locator::Id("title")).await?.text().await?;
    assert!(has_cjk(&title), "{title}");
    assert_eq!(b.find(Locator::Id("number")).await?.prop("value").await?.as_deref(), Some(""), "the number is forgotten");
    assert_eq!(rig.kiosk_state().await?["screen"], "idle");
    browser.close().await;
    Ok(())
}

/// WCAG 2.x contrast of every visible text on the page (text nodes and input
/// values) against what is painted behind it: the element's and its
/// ancestors' background colours composited, as the eye sees them. Needs
/// 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold); faded (opacity)
/// text fails. `arguments[0]`: selectors whose ratio is reported by name.
const CONTRAST_JS: &str = r##"
const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return [0, 0, 0, 0];
  const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
const over = (top, under) => { const a = top[3]; return [0, 1, 2].map(i => top[i] * a + under[i] * (1 - a)).concat([1]); };
const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
function background(el) {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const cs = getComputedStyle(e);
    if (cs.backgroundImage !== 'none') throw new Error('a background image behind ' + e.tagName + '#' + e.id + ': extend the check');
    const c = parse(cs.backgroundColor);
    if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255, 1]);
}
function opacity(el) { let o = 1; for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity); return o; }
function check(el, text) {
  const cs = getComputedStyle(el);
  const bg = background(el), fg = over(parse(cs.color), bg);
  const px = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
  const need = px >= 24 || (bold && px >= 18.66) ? 3 : 4.5;
  return {text: text.trim().slice(0, 40), fg: cs.color, bg: 'rgb(' + bg.slice(0, 3).map(Math.round).join(',') + ')',
          ratio: Math.round(ratio(fg, bg) * 100) / 100, need, faded: opacity(el) < 1};
}
const shown = (el) => el.checkVisibility({visibilityProperty: true, opacityProperty: true});
const results = [];
const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walk.nextNode(); n; n = walk.nextNode()) {
  const el = n.parentElement;
  if (!n.nodeValue.trim() || !el || ['SCRIPT', 'STYLE'].includes(el.tagName) || !shown(el)) continue;
  results.push(check(el, n.nodeValue));
}
for (const el of document.querySelectorAll('input')) if (el.value && shown(el)) results.push(check(el, el.value));
const labels = {};
for (const sel of arguments[0] || []) {
  const el = document.querySelector(sel);
  if (el && shown(el)) labels[sel] = check(el, el.textContent).ratio;
}
return {checked: results.length, failures: results.filter(r => r.ratio < r.need || r.faded), labels};
"##;

/// Which face the kiosk's Japanese is drawn in, as pixels: the same words
/// drawn on a canvas in the page's computed font stack, in IPAex Gothic
/// alone, in IPAex Mincho alone and in a family that does not exist (any
/// missing family falls back alike). Equal pixels: the same face.
const FONT_JS: &str = r##"
const sample = '証明書をお取りください 学内印刷番号';
function draw(family) {
  const c = document.createElement('canvas'); c.width = 900; c.height = 70;
  const x = c.getContext('2d');
  x.fillStyle = '#fff'; x.fillRect(0, 0, c.width, c.height);
  x.fillStyle = '#000'; x.textBaseline = 'top'; x.font = '48px ' + family;
  x.fillText(sample, 4, 8);
  return x.getImageData(0, 0, c.width, c.height).data;
}
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const stack = getComputedStyle(document.getElementById('title')).fontFamily;
const page = draw(stack), gothic = draw('"IPAexGothic"'), mincho = draw('"IPAexMincho"'), missing = draw('"No Such Font Shomei"');
const buttons = [...document.querySelectorAll('button')].filter(b => b.checkVisibility()).map(b => getComputedStyle(b).fontFamily);
const bold = [...document.querySelectorAll('body *')]
  .filter(e => e.checkVisibility() && [...e.childNodes].some(n => n.nodeType === 3 && n.nodeValue.trim()))
  .filter(e => Number(getComputedStyle(e).fontWeight) >= 600)
  .map(e => e.tagName + '#' + e.id + ' ' + e.textContent.trim().slice(0, 20));
return {stack, gothic_installed: !same(gothic, missing), page_is_gothic: same(page, gothic),
        gothic_is_not_mincho: !same(gothic, mincho), buttons_inherit: buttons.every(f => f === stack), bold};
"##;

/// The steps indicator: which step is marked current (aria-current), whether
/// it looks different from the others, and where it sits on the screen.
const STEPS_JS: &str = r##"
const steps = document.getElementById('steps'), cur = steps.querySelector('[aria-current=step]');
const r = steps.getBoundingClientRect(), bg = (e) => getComputedStyle(e).backgroundColor;
return {visible: steps.checkVisibility(), current: cur ? Number(cur.dataset.step) : 0, label: cur ? cur.innerText : '',
        stands_out: !!cur && [...steps.children].every(li => li === cur || bg(li) !== bg(cur)),
        top: r.top, bottom: r.bottom, vh: innerHeight};
"##;

/// The amount due as shown: its text, size and place on the screen.
const AMOUNT_JS: &str = r##"
const el = document.getElementById('amount'), r = el.getBoundingClientRect();
return {text: el.innerText, visible: el.checkVisibility(), px: parseFloat(getComputedStyle(el).fontSize),
        message_px: parseFloat(getComputedStyle(document.getElementById('message')).fontSize),
        top: r.top, bottom: r.bottom, vh: innerHeight};
"##;

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Every visible text on `screen` meets WCAG 2.2 AA contrast, and each of
/// `labels` (CSS selectors) is shown with at least 4.5:1.
async fn assert_contrast(b: &fantoccini::Client, screen: &str, labels: &[&str]) -> Result<()> {
    let r = b.execute(CONTRAST_JS, vec![serde_json::json!(labels)]).await?;
    assert_eq!(r["failures"], serde_json::json!([]), "{screen}: text below WCAG 2.2 AA contrast: {r}");
    assert!(r["checked"].as_u64().unwrap_or(0) >= 5, "{screen}: the texts were found: {r}");
    for label in labels {
        let ratio = r["labels"][*label].as_f64().with_context(|| format!("{screen}: {label} is not shown: {r}"))?;
        assert!(ratio >= 4.5, "{screen}: {label} has contrast {ratio}:1, not 4.5:1: {r}");
    }
    Ok(())
}

/// The steps 1-2-3 mark `step` as current, visibly, in the lower third of the screen.
async fn assert_step(b: &fantoccini::Client, screen: &str, step: u64, ja: &str, en: &str) -> Result<()> {
    let s = b.execute(STEPS_JS, vec![]).await?;
    assert_eq!(s["visible"], true, "{screen}: the steps are shown: {s}");
    assert_eq!(s["current"].as_u64(), Some(step), "{screen}: step {step} is the current one: {s}");
    assert_eq!(s["stands_out"], true, "{screen}: the current step looks different from the others: {s}");
    let label = s["label"].as_str().unwrap_or_default();
    assert!(label.contains(ja) && label.contains(en), "{screen}: the current step says {ja} / {en}: {label:?}");
    let (top, bottom, vh) = (num(&s["top"]), num(&s["bottom"]), num(&s["vh"]));
    assert!(top >= vh * 2.0 / 3.0 && bottom <= vh, "{screen}: the steps sit in the lower third of the screen, in view: {s}");
    Ok(())
}

async fn number_value(b: &fantoccini::Client) -> Result<String> {
    Ok(b.find(Locator::Id("number")).await?.prop("value").await?.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_reads_clearly_and_walks_the_user_to_card_and_certificates_in_hand() -> Result<()> {
    // a station with the e-money terminal, so the card screen offers it (the navy button)
    let p = Peers::start().await?;
    let mut terminal = Terminal::start()?;
    let code = p.backend.enrolment_code("Library 1F").await?;
    let port = terminal.port.display().to_string();
    let station = Station::start_with_env(
        &StationOptions { backend_url: &p.backend.url, enrolment_code: &code, printer_uri: &p.printer.uri, pcsc: &p.pcsc, tuning: Tuning::default() },
        &[("SHOMEI_STATION_TERMINAL_PORT", port.as_str())],
    )?;
    let mut rig = Rig { smtp: p.smtp, backend: p.backend, printer: p.printer, pcsc: p.pcsc, card: p.card, station };
    let first = element_text(&rig.backend.order_as_graduate(1).await?, "print-number").context("number")?.replace(' ', "");
    let second = element_text(&rig.backend.order_as_graduate(1).await?, "print-number").context("number")?.replace(' ', "");
    let browser = Browser::start().await?;
    let b = &browser.client;
    b.goto(&rig.station.kiosk_url).await?;
    browser.wait_screen("idle", Duration::from_secs(10)).await?;
    // the heading names the university the station serves (from the backend, at its next heartbeat)
    let end = std::time::Instant::now() + Duration::from_secs(20);
    let mut named = serde_json::Value::Null;
    while std::time::Instant::now() < end {
        named = b.execute("return document.getElementById('university').textContent", vec![]).await?;
        if named.as_str().is_some_and(|t| !t.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(named, serde_json::json!("証明大学Shomei University"), "the kiosk's heading");

    // the font: IPAex Gothic (installed by deploy/install-deps) draws the page, not the Mincho; no faked bold
    let f = b.execute(FONT_JS, vec![]).await?;
    assert!(f["stack"].as_str().unwrap_or_default().trim_start_matches('"').starts_with("IPAexGothic"), "IPAex Gothic comes first: {f}");
    assert_eq!(f["gothic_installed"], true, "IPAex Gothic is installed (fonts-ipaexfont-gothic): {f}");
    assert_eq!(f["gothic_is_not_mincho"], true, "{f}");
    assert_eq!(f["page_is_gothic"], true, "the kiosk's Japanese is drawn in IPAex Gothic: {f}");
    assert_eq!(f["buttons_inherit"], true, "the buttons use the page's font too: {f}");
    assert_eq!(f["bold"], serde_json::json!([]), "nothing asks for a bold the one-weight font would fake: {f}");

    // the start screen: readable, step 1 of 3
    assert_step(b, "idle", 1, "番号入力", "Enter number").await?;
    assert_contrast(b, "idle", &["#ok .ja", "#ok .en", "#clear .en", "#backspace .en", "#lang"]).await?;
    // every screen: axe-core's WCAG 2.x A/AA rules find nothing, nothing wider than the screen
    browser.check_page().await.context("the idle screen")?;

    // the backspace key takes the last digit away, and is a finger's size
    let size = b.execute("const r = document.getElementById('backspace').getBoundingClientRect(); return [r.width, r.height]", vec![]).await?;
    assert!(num(&size[0]) >= 56.0 && num(&size[1]) >= 56.0, "backspace {size}");
    type_digits(b, "123").await?;
    browser.wait_text("hint", "9 more digits").await?;
    b.find(Locator::Id("backspace")).await?.click().await?;
    browser.wait_text("hint", "10 more digits").await?;
    assert_eq!(number_value(b).await?, "12", "the last digit is gone, the others stay");
    b.find(Locator::Id("clear")).await?.click().await?;
    // a wrong last digit: OK disabled (still readable), one backspace and the right digit mend it
    type_digits(b, &first[..11]).await?;
    let wrong = (first.as_bytes()[11] - b'0' + 1) % 10;
    type_digits(b, &wrong.to_string()).await?;
    browser.wait_text("hint", "swapped").await?;
    assert_eq!(b.find(Locator::Id("ok")).await?.attr("disabled").await?.as_deref(), Some("true"));
    assert_contrast(b, "idle, OK disabled", &["#ok .en", "#hint .en"]).await?;
    b.find(Locator::Id("backspace")).await?.click().await?;
    browser.wait_text("hint", "1 more digits").await?;
    assert_eq!(number_value(b).await?, &first[..11]);
    assert_eq!(b.find(Locator::Id("ok")).await?.attr("disabled").await?, None, "OK is enabled again");
    type_digits(b, &first[11..]).await?;
    browser.wait_text("hint", "looks right").await?;
    assert_eq!(number_value(b).await?, first);

    // the card screen: step 2, the amount large in the lower part, the navy e-money button readable
    rig.printer.set_mode("hold")?; // the job waits at the printer, so the printing screen can be looked at
    b.find(Locator::Id("ok")).await?.click().await?;
    browser.wait_screen("card", Duration::from_secs(10)).await?;
    browser.wait_id("emoney").await?;
    assert_step(b, "card", 2, "お支払い", "Pay").await?;
    assert_contrast(b, "card", &["#emoney .ja", "#emoney .en", "#cancel .en"]).await?;
    browser.check_page().await.context("the card screen")?;
    let a = b.execute(AMOUNT_JS, vec![]).await?;
    assert_eq!((a["text"].as_str(), a["visible"].as_bool()), (Some("¥400"), Some(true)), "the amount due: {a}");
    assert!(num(&a["px"]) >= 48.0 && num(&a["px"]) >= 2.0 * num(&a["message_px"]), "the amount is large: {a}");
    let (bottom, vh) = (num(&a["bottom"]), num(&a["vh"]));
    assert!(bottom <= vh && bottom >= vh * 2.0 / 3.0, "the amount is in the lower part of the screen, in view: {a}");

    // paid by IC card: printing is step 3
    rig.card.tap()?;
    browser.wait_screen("printing", Duration::from_secs(30)).await?;
    assert_step(b, "printing", 3, "印刷", "Print").await?;
    assert_contrast(b, "printing", &[]).await?;
    browser.check_page().await.context("the printing screen")?;
    rig.printer.set_mode("ok")?;
    rig.printer.release_held_job()?;

    // the end: take the certificates and the card, in both languages, readable
    browser.wait_screen("done", Duration::from_secs(30)).await?;
    let text = browser.body_text().await?;
    for words in ["証明書をお取りください", "Please take your certificates", "カードをお取りください", "Please take your card"] {
        assert!(text.contains(words), "the done screen says {words:?}: {text}");
    }
    assert_step(b, "done", 3, "印刷", "Print").await?;
    assert_contrast(b, "done", &["#notice .en", "#message .en"]).await?;
    browser.check_page().await.context("the done screen")?;
    rig.card.remove()?;

    // the paper and the verification page call the code by the same name
    let pdfs = rig.printer.spooled_pdfs();
    assert_eq!(pdfs.len(), 1, "{pdfs:?}");
    let paper = Command::new("pdftotext").arg(&pdfs[0]).arg("-").output()?;
    let paper = String::from_utf8_lossy(&paper.stdout);
    assert!(paper.contains("照合コード"), "the certificate names its 照合コード: {paper}");

    // paying at the e-money terminal ends with the card reminder as well
    rig.station_reset().await?;
    browser.wait_screen("idle", Duration::from_secs(10)).await?;
    assert_eq!(number_value(b).await?, "", "the last user's number is gone");
    type_digits(b, &second).await?;
    browser.wait_text("hint", "looks right").await?;
    b.find(Locator::Id("ok")).await?.click().await?;
    browser.wait_screen("card", Duration::from_secs(10)).await?;
    browser.wait_id("emoney").await?.click().await?;
    browser.wait_screen("done", Duration::from_secs(30)).await?;
    let notice = browser.wait_text("notice", "カードをお取りください").await?;
    assert!(notice.contains("Please take your card") && notice.contains("¥2,600"), "{notice}");
    let message = browser.wait_text("message", "証明書をお取りください").await?;
    assert!(message.contains("Please take your certificates"), "{message}");
    assert_eq!(terminal.control("state")?, "state balance=2600 charges=1", "paid once at the terminal");

    b.goto(&format!("{}/verify", rig.backend.url)).await?;
    browser.wait_id("code").await?;
    let page = browser.body_text().await?;
    assert!(page.contains("照合コード") && page.contains("Verification code"), "the verification page asks for the 照合コード: {page}");
    assert!(!page.contains("確認コード"), "one name for the code, as on the paper: {page}");
    browser.close().await;
    Ok(())
}
