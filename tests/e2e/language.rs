//! The portal in the language the user reads (issue 14, "The portal as a
//! whole"): Japanese and English by default, Japanese only or English only
//! from the switch on every page, remembered for the account so that the
//! next login in another browser shows the same; English marked lang="en".
//! In Chromium, through the real backend.

use crate::harness::*;
use anyhow::Result;
use fantoccini::Locator;
use shomei_backend::demo;

/// Visible text of `main` with Japanese characters in it, and with Latin words.
const SHOWN_JS: &str = r#"
const text = document.querySelector('main').innerText;
const cjk = /[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]/;
const shownEn = Array.from(document.querySelectorAll('main [lang=en]')).filter(e => e.offsetParent !== null).length;
const shownJa = Array.from(document.querySelectorAll('main [lang=ja]')).filter(e => e.offsetParent !== null).length;
const shownCjk = [];
const walk = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT, null);
while (walk.nextNode()) { const t = walk.currentNode; if (cjk.test(t.nodeValue) && t.parentElement.offsetParent !== null) shownCjk.push(t.nodeValue.trim()); }
return { cjk: cjk.test(text), cjk_text: shownCjk, latin: /[A-Za-z]{3,}/.test(text), show: document.documentElement.dataset.show,
         lang: document.documentElement.lang, shown_en: shownEn, shown_ja: shownJa };
"#;

async fn shown(browser: &Browser) -> Result<serde_json::Value> {
    browser.wait_for(Locator::Css("main")).await?;
    Ok(browser.client.execute(SHOWN_JS, vec![]).await?)
}

async fn log_in(browser: &Browser, b: &Backend) -> Result<()> {
    browser.log_in_as_demo_graduate(b).await?;
    browser.wait_id("new-order").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_language_chosen_is_shown_alone_and_follows_the_account_to_another_browser() -> Result<()> {
    let b = Backend::start(None).await?;
    let browser = Browser::start().await?;
    let w = &browser.client;

    // by default both languages, each half of a bilingual text marked with its language
    w.goto(&format!("{}/login", b.url)).await?;
    let s = shown(&browser).await?;
    assert_eq!((s["show"].as_str(), s["cjk"].as_bool(), s["latin"].as_bool(), s["lang"].as_str()), (Some("both"), Some(true), Some(true), Some("ja")), "{s}");
    // a message in both languages: the English half is marked lang="en"
    browser.wait_id("email").await?.send_keys(demo::GRADUATE_EMAIL).await?;
    w.find(Locator::Id("password")).await?.send_keys("not the password").await?;
    w.find(Locator::Id("second_password")).await?.send_keys("nor this").await?;
    w.find(Locator::Id("login")).await?.click().await?;
    let error = browser.wait_id("error").await?;
    let halves = w.execute("const e = document.getElementById('error'); return [e.querySelector('[lang=ja]')?.textContent || '', e.querySelector('[lang=en]')?.textContent || '']", vec![]).await?;
    assert!(halves[0].as_str().is_some_and(|t| !t.is_empty() && !t.contains('/')), "the Japanese half: {halves} ({})", error.text().await?);
    assert!(halves[1].as_str().is_some_and(|t| t.chars().any(|c| c.is_ascii_alphabetic()) && !t.chars().any(|c| c as u32 > 0x3000)), "the English half: {halves}");

    // English only, on this browser (not logged in)
    w.find(Locator::Id("lang-en")).await?.click().await?;
    browser.wait_id("email").await?;
    let s = shown(&browser).await?;
    assert_eq!((s["show"].as_str(), s["lang"].as_str(), s["cjk"].as_bool(), s["latin"].as_bool(), s["shown_ja"].as_u64()), (Some("en"), Some("en"), Some(false), Some(true), Some(0)), "English only: {s}");
    assert!(w.current_url().await?.path().ends_with("/login"), "back on the page it was chosen on");

    // logged in (the account never chose: the browser's choice stays), then Japanese only, for the account
    log_in(&browser, &b).await?;
    assert_eq!(shown(&browser).await?["show"], "en");
    w.find(Locator::Id("lang-ja")).await?.click().await?;
    browser.wait_id("new-order").await?;
    let s = shown(&browser).await?;
    assert_eq!((s["show"].as_str(), s["cjk"].as_bool(), s["shown_en"].as_u64()), (Some("ja"), Some(true), Some(0)), "Japanese only: {s}");
    assert_eq!(b.sql(&format!("SELECT display_language FROM users WHERE email = '{}'", demo::GRADUATE_EMAIL))?, "ja", "remembered for the account");
    browser.close().await;

    // another browser (a phone, nothing remembered on it): the login brings the account's choice
    let phone = Browser::start_on(Screen::Phone).await?;
    phone.client.goto(&format!("{}/login", b.url)).await?;
    assert_eq!(shown(&phone).await?["show"], "both", "a new browser shows both before anyone logs in");
    log_in(&phone, &b).await?;
    let s = shown(&phone).await?;
    assert_eq!((s["show"].as_str(), s["shown_en"].as_u64()), (Some("ja"), Some(0)), "the account's choice: {s}");
    phone.close().await;

    // the switch goes back only to our own pages, and another site's link changes no account
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    for back in ["//evil.example/x", "https://evil.example/", "/\\evil"] {
        let r = c.get(format!("{}/language", b.url)).query(&[("to", "en"), ("back", back)]).send().await?;
        assert_eq!(r.headers().get("location").and_then(|v| v.to_str().ok()), Some("/"), "{back}");
    }
    let user = Backend::client();
    let (s, path, _) = crate::accounts::portal_login(&b, &user, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    // a request the browser does not say came from our own page (a link on another site)
    let r = user.get(format!("{}/language?to=en&back=/portal", b.url)).header("sec-fetch-site", "cross-site").send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(b.sql(&format!("SELECT display_language FROM users WHERE email = '{}'", demo::GRADUATE_EMAIL))?, "ja", "another site's link changes no account");
    let r = user.get(format!("{}/language?to=en&back=/portal", b.url)).header("sec-fetch-site", "same-origin").send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(b.sql(&format!("SELECT display_language FROM users WHERE email = '{}'", demo::GRADUATE_EMAIL))?, "en", "our own page's switch does");
    Ok(())
}
