//! ST-1 in headless Chromium: the kiosk's keypad checks the number as it is
//! typed (digits left, then the check digit), targets are large enough for a
//! finger, Japanese and English switch, and a user who walks away is
//! forgotten (number and language) when the idle timeout brings the start
//! screen back.

use crate::harness::*;
use anyhow::{Context, Result};
use fantoccini::Locator;
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
