//! IC cards as a graduate meets them (issue 14), in Chromium through the
//! real peers: ordering with IC-card payment says beforehand what the card
//! needs; a card no account holds, tapped at the kiosk, shows its ID and a
//! short one-time code with the steps, while the number stays on the screen;
//! the graduate enters the code on the portal's cards page (desktop and a
//! 390 px phone) and the card is theirs; a wrong code is refused in words and
//! the right one works once; topped up, the same card pays at the kiosk and
//! the done screen names only its last four and the exact balance left;
//! unlinked (balance ¥0, asked first), it is gone from the page and the
//! database, its history kept.

use crate::harness::*;
use anyhow::Result;
use fantoccini::Locator;
use shomei_backend::demo;
use shomei_shared::Yen;
use std::time::{Duration, Instant};

/// The card the graduate has not linked yet (the emulated card answers this ID).
const NEW_CARD: &str = "0A1B2C3D4E5F6071";
const NEW_CARD_GROUPED: &str = "0A1B 2C3D 4E5F 6071";

/// Polls the kiosk until its screen satisfies `ok`.
async fn kiosk_until(rig: &Rig, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> Result<serde_json::Value> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s = rig.kiosk_state().await?;
        if ok(&s) {
            return Ok(s);
        }
        if Instant::now() > end {
            anyhow::bail!("the kiosk never showed {what}: {s}\nstation log:\n{}", rig.station.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing on the page is wider than the window (a phone's 390 px included).
async fn assert_fits(w: &fantoccini::Client, what: &str) -> Result<()> {
    let r = w.execute("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]", vec![]).await?;
    let (wide, window) = (r[0].as_f64().unwrap_or(f64::NAN), r[1].as_f64().unwrap_or(0.0));
    assert!(wide <= window, "{what}: the page is {wide}px wide in a {window}px window");
    Ok(())
}

/// The code with its first character changed (still a well-formed code).
fn wrong_code(code: &str) -> String {
    let first = code.chars().next().unwrap_or('0');
    let other = if first == 'Z' { 'Y' } else { 'Z' };
    std::iter::once(other).chain(code.chars().skip(1)).collect()
}

on_both_screens!(
    an_unlinked_card_tapped_at_the_kiosk_is_linked_with_its_code_pays_and_is_unlinked,
    an_unlinked_card_tapped_at_the_kiosk_is_linked_with_its_code_pays_and_is_unlinked_at_phone_width,
    an_unlinked_card_tapped_at_the_kiosk_is_linked_with_its_code_pays_and_is_unlinked_on
);
async fn an_unlinked_card_tapped_at_the_kiosk_is_linked_with_its_code_pays_and_is_unlinked_on(screen: Screen) -> Result<()> {
    // the kiosk's usual idle timeout; the screen with the link code waits longer
    let mut rig = Rig::start_tuned(Tuning { idle_timeout_s: 60, job_timeout_s: 60 }).await?;
    rig.card.command(&format!("uid {NEW_CARD}"), &format!("uid {NEW_CARD}"))?;
    let b = &rig.backend;

    // ordering with IC-card payment says beforehand what the card needs
    let portal = Browser::start_on(screen).await?;
    let w = &portal.client;
    portal.log_in_as_demo_graduate(&b).await?;
    portal.wait_id("new-order").await?.click().await?;
    let hint = portal.wait_id("card-hint").await?.text().await?;
    assert!(hint.contains("link the card") && hint.contains("top it up") && hint.contains("e-money terminal") && hint.contains("登録"), "{hint}");
    let grad = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let copies = w.find(Locator::Id(&format!("copies_{grad}"))).await?;
    copies.clear().await?;
    copies.send_keys("1").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    let note = portal.wait_id("card-payment-note").await?.text().await?;
    assert!(note.contains("linked to your account") && note.contains("transit e-money terminal") && note.contains("交通系"), "{note}");
    assert!(note.contains(&format!("…{}", &demo::CARD_UID[12..])) && note.contains("¥3,000"), "the linked card and its balance: {note}");
    assert_fits(w, "the order's confirmation").await?;
    w.find(Locator::Id("place-order")).await?.click().await?;
    let number = portal.wait_id("print-number").await?.text().await?.replace(' ', "");
    assert_eq!(number.len(), 12, "{number}");
    let total: i64 = b.sql("SELECT total FROM orders ORDER BY id DESC LIMIT 1")?.parse()?;

    // at the kiosk: the number, then a card no account holds
    let kiosk = Browser::start().await?;
    let k = &kiosk.client;
    k.goto(&rig.station.kiosk_url).await?;
    kiosk.wait_screen("idle", Duration::from_secs(10)).await?;
    for d in number.chars() {
        k.find(Locator::Id(&format!("key-{d}"))).await?.click().await?;
    }
    kiosk.wait_text("hint", "looks right").await?;
    k.find(Locator::Id("ok")).await?.click().await?;
    kiosk.wait_screen("card", Duration::from_secs(10)).await?;
    rig.card.tap()?;
    let shown = kiosk_until(&rig, "a link code", |s| !s["link_code"].as_str().unwrap_or_default().is_empty()).await?;
    // lifted at once, so it is not read again meanwhile (the screen stays as it is)
    rig.card.remove()?;
    assert_eq!(shown["screen"], "card", "the number stays: another card, or Cancel: {shown}");
    assert_eq!(shown["card_id"], NEW_CARD_GROUPED, "{shown}");
    // while the graduate links the card on their phone, the screen waits five minutes, not the usual one
    assert_eq!(shown["idle_timeout_s"], shomei_station::kiosk::LINK_SCREEN_S, "{shown}");
    assert_eq!(rig.kiosk_state().await?["idle_timeout_s"], 300);
    let code = shown["link_code"].as_str().unwrap_or_default().to_string();
    assert!(code.len() == 7 && code.replace(' ', "").chars().all(|c| c.is_ascii_alphanumeric()), "six characters, easy to type: {code:?}");
    assert_eq!(kiosk.wait_text("link-card-id", NEW_CARD_GROUPED).await?, NEW_CARD_GROUPED);
    assert_eq!(kiosk.wait_text("link-code", &code).await?, code);
    let steps = kiosk.wait_text("notice", "IC cards").await?;
    for words in ["ポータルにログイン", "「ICカード」", "入金", "Log in to the portal", "enter the link code", "top the card up", "Cancel"] {
        assert!(steps.contains(words), "the kiosk says {words:?}: {steps}");
    }
    assert!(k.find(Locator::Id("cancel")).await.is_ok(), "Cancel is offered");
    // the code is kept only as a keyed hash, live once, and neither it nor the card is in the station's log
    let typed = code.replace(' ', "");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM card_link_codes WHERE card_uid = '{NEW_CARD}' AND used_at IS NULL AND expires_at > {}", shomei_backend::time::now()))?, "1");
    let stored = b.sql(&format!("SELECT code_hash FROM card_link_codes WHERE used_at IS NULL AND expires_at > {}", shomei_backend::time::now()))?;
    assert!(!stored.contains(&typed) && stored.len() == 64, "hashed: {stored}");
    let log = rig.station.log();
    assert!(!log.contains(NEW_CARD) && !log.contains(&typed), "no card ID or code in the station's log");

    // in the portal: the cards page says a linked card pays like cash, and fits the screen
    w.goto(&format!("{}/cards", b.url)).await?;
    let cash = portal.wait_id("pays-like-cash").await?.text().await?;
    assert!(cash.contains("any order") && cash.contains("like cash") && cash.contains("現金"), "{cash}");
    assert_fits(w, "the cards page").await?;

    // a wrong code: refused beside the field, in words; nothing linked
    portal.wait_id("code").await?.send_keys(&wrong_code(&typed)).await?;
    w.find(Locator::Id("link-code")).await?.click().await?;
    let refused = portal.wait_text("code-error", "cannot be used").await?;
    assert!(refused.contains("使えません") && refused.contains("Tap the card at a campus printer again"), "{refused}");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM ic_cards WHERE uid = '{NEW_CARD}'"))?, "0", "a wrong code links nothing");
    assert_fits(w, "the cards page with an error").await?;

    // the code as shown (any case, with its space): the card is the graduate's
    let field = portal.wait_id("code").await?;
    field.clear().await?;
    field.send_keys(&code.to_lowercase()).await?;
    w.find(Locator::Id("code_label")).await?.send_keys("My Suica").await?;
    w.find(Locator::Id("link-code")).await?.click().await?;
    portal.wait_text("notice", "linked").await?;
    let row = portal.wait_id(&format!("card-{NEW_CARD}")).await?.text().await?;
    assert!(row.contains(NEW_CARD_GROUPED) && row.contains("My Suica") && row.contains("¥0") && row.contains("active"), "{row}");
    assert_eq!(
        b.sql(&format!("SELECT u.email || ' ' || k.status FROM ic_cards k JOIN users u ON u.id = k.user_id WHERE k.uid = '{NEW_CARD}' AND k.unlinked_at IS NULL"))?,
        format!("{} active", demo::GRADUATE_EMAIL)
    );
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM card_link_codes WHERE card_uid = '{NEW_CARD}' AND used_at IS NOT NULL"))?, "1");

    // the code works once
    portal.wait_id("code").await?.send_keys(&code).await?;
    w.find(Locator::Id("link-code")).await?.click().await?;
    portal.wait_text("code-error", "used already").await?;

    // topped up (as a top-up's capture writes it), the same card pays at the kiosk
    b.sql(&format!("INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{NEW_CARD}', 5000, 'topup', {})", shomei_backend::time::now()))?;
    let before = rig.kiosk_state().await?;
    assert_eq!(before["screen"], "card", "the number is still on the card screen: {before}");
    rig.card.tap()?;
    kiosk.wait_screen("done", Duration::from_secs(30)).await?;
    let left = Yen(5000 - total).to_string();
    let done = rig.kiosk_state().await?;
    assert_eq!((done["card_tail"].as_str(), done["balance"].as_str()), (Some("6071"), Some(left.as_str())), "{done}");
    let said = kiosk.wait_text("notice", &left).await?;
    assert!(said.contains("末尾 6071") && said.contains("…6071") && said.contains("Please take your card"), "{said}");
    let screen_text = kiosk.body_text().await?;
    assert!(!screen_text.contains(NEW_CARD_GROUPED) && !screen_text.contains(NEW_CARD), "only the last four: {screen_text}");
    assert_eq!(b.sql(&format!("SELECT SUM(amount) FROM ledger WHERE card_uid = '{NEW_CARD}'"))?, (5000 - total).to_string());
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM ledger WHERE card_uid = '{NEW_CARD}' AND kind = 'debit' AND amount = -{total}"))?, "1");
    rig.card.remove()?;
    kiosk.close().await;

    // money on the card: no unlinking, and the page says why
    w.goto(&format!("{}/cards", b.url)).await?;
    let why = portal.wait_id(&format!("unlink-hint-{NEW_CARD}")).await?.text().await?;
    assert!(why.contains("cannot be unlinked"), "{why}");
    let policy = portal.wait_id("unlink-policy").await?.text().await?;
    assert!(policy.contains("refund") && policy.contains("history stays") && policy.contains("返金"), "{policy}");

    // the office paid the balance back at the desk: ¥0, and the card can go (asked first)
    b.sql(&format!("INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{NEW_CARD}', -{}, 'adjustment', {})", 5000 - total, shomei_backend::time::now()))?;
    w.goto(&format!("{}/cards", b.url)).await?;
    portal.wait_id(&format!("unlink-{NEW_CARD}")).await?.click().await?;
    let asked = w.get_alert_text().await?;
    assert!(asked.contains("Unlink this card?") && asked.contains("解除しますか"), "{asked}");
    w.dismiss_alert().await?;
    assert_eq!(b.sql(&format!("SELECT CASE WHEN unlinked_at IS NULL THEN 1 ELSE 0 END FROM ic_cards WHERE uid = '{NEW_CARD}'"))?, "1", "still linked after \"no\"");
    w.find(Locator::Id(&format!("unlink-{NEW_CARD}"))).await?.click().await?;
    w.accept_alert().await?;
    portal.wait_text("notice", "unlinked").await?;
    assert_eq!(
        b.sql(&format!("SELECT (CASE WHEN k.unlinked_at IS NOT NULL THEN 1 ELSE 0 END) || ' ' || u.user_id FROM ic_cards k JOIN card_unlinks u ON u.card_uid = k.uid WHERE k.uid = '{NEW_CARD}'"))?,
        format!("1 {}", b.sql(&format!("SELECT id FROM users WHERE email = '{}'", demo::GRADUATE_EMAIL))?)
    );
    let page = w.source().await?;
    assert!(!page.contains(&format!("id=\"card-{NEW_CARD}\"")), "the card is gone from the page");
    assert!(page.contains(&format!("id=\"card-{}\"", demo::CARD_UID)), "the other card stays");
    let history = portal.wait_id("history").await?.text().await?;
    assert!(history.contains("…6071") && history.contains("certificate payment"), "the ledger keeps its history: {history}");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM ledger WHERE card_uid = '{NEW_CARD}'"))?, "3", "nothing deleted");
    assert_fits(w, "the cards page after unlinking").await?;
    portal.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_codes_are_for_cards_nobody_holds_and_unlinking_keeps_money_and_history_where_they_belong() -> Result<()> {
    use crate::accounts::{graduate, portal_login, post_form};
    use serde_json::json;
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;

    // only a station, with its credential, asks for link codes
    let r = Backend::client().post(format!("{}/api/station/v1/card-links", b.url)).json(&json!({ "card_uid": NEW_CARD })).send().await?;
    assert_eq!(r.status(), 401);
    let api = crate::station_api::Api::new(&b).await?;
    let (s, r) = api.post("/card-links", json!({ "card_uid": "not hex" })).await?;
    assert_eq!((s, r["code"].clone()), (400, json!("bad_request")), "{r}");
    // a card someone holds gets no code
    let (s, r) = api.post("/card-links", json!({ "card_uid": demo::CARD_UID })).await?;
    assert_eq!((s, r["code"].clone()), (409, json!("conflict")), "{r}");

    // a card nobody holds: a code; tapped again: a new one, and only that one is live
    let (s, first) = api.post("/card-links", json!({ "card_uid": NEW_CARD.to_lowercase() })).await?;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["valid_s"], 900, "{first}");
    let (s, second) = api.post("/card-links", json!({ "card_uid": NEW_CARD })).await?;
    assert_eq!(s, 200, "{second}");
    let live = format!("SELECT COUNT(*) FROM card_link_codes WHERE card_uid = '{NEW_CARD}' AND used_at IS NULL AND expires_at > {}", shomei_backend::time::now());
    assert_eq!(b.sql(&live)?, "1", "the newer code ends the older");

    // the graduate: the older code is refused, the newer links the card
    let c = Backend::client();
    portal_login(&b, &c, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    let cards = format!("{}/cards", b.url);
    let code_of = |v: &serde_json::Value| v["code"].as_str().unwrap_or_default().to_string();
    if code_of(&first) != code_of(&second) {
        let (s, _, page) = post_form(&c, &cards, &format!("{cards}/link-code"), &[("code", code_of(&first).as_str())]).await?;
        assert_eq!(s, 400);
        assert!(page.contains("cannot be used"), "{page}");
    }
    let (s, path, _) = post_form(&c, &cards, &format!("{cards}/link-code"), &[("code", code_of(&second).as_str())]).await?;
    assert_eq!((s, path.as_str()), (200, "/cards"));
    let (s, r) = api.post("/card-links", json!({ "card_uid": NEW_CARD })).await?;
    assert_eq!((s, r["code"].clone()), (409, json!("conflict")), "linked now: {r}");

    // money on a card keeps it linked
    let (s, _, page) = post_form(&c, &cards, &format!("{cards}/{}/unlink", demo::CARD_UID), &[]).await?;
    assert_eq!(s, 400);
    assert!(page.contains("id=\"unlink-error\"") && page.contains("cannot be unlinked") && page.contains("refund"), "{page}");
    assert_eq!(b.sql(&format!("SELECT CASE WHEN unlinked_at IS NULL THEN 1 ELSE 0 END FROM ic_cards WHERE uid = '{}'", demo::CARD_UID))?, "1");

    // the graduate's own use of the new card, then ¥0 again, then unlinked
    let earlier = shomei_backend::time::now() - 100;
    b.sql(&format!("INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{NEW_CARD}', 1000, 'topup', {earlier}), ('{NEW_CARD}', -1000, 'adjustment', {earlier})"))?;
    let other = graduate(&b, &smtp, "second.holder@example.jp", "Holder2024pw", "Second2024hd").await?;
    let (s, _, _) = post_form(&other, &cards, &format!("{cards}/{NEW_CARD}/unlink"), &[]).await?;
    assert_eq!(s, 404, "not their card");
    let (s, path, page) = post_form(&c, &cards, &format!("{cards}/{NEW_CARD}/unlink"), &[]).await?;
    assert_eq!((s, path.as_str()), (200, "/cards"), "{page}");
    assert!(page.contains("The card is unlinked") && !page.contains(&format!("id=\"card-{NEW_CARD}\"")), "{page}");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM card_unlinks WHERE card_uid = '{NEW_CARD}'"))?, "1");
    // unlinked, it pays for nothing at a station
    let order = b.order_as_graduate(1).await?;
    let number = element_text(&order, "print-number").unwrap_or_default().replace(' ', "");
    let (s, res) = api.post("/reservations", json!({ "print_number": number })).await?;
    assert_eq!(s, 200, "{res}");
    let id = res["reservation_id"].as_i64().unwrap_or_default();
    let (s, r) = api.post(&format!("/reservations/{id}/charge"), json!({ "card_uid": NEW_CARD, "idempotency_key": "after-unlink" })).await?;
    assert_eq!((s, r["code"].clone()), (402, json!("card_unknown")), "{r}");

    // the card is free again: its next holder links it with a fresh code and sees only their own history
    let (s, third) = api.post("/card-links", json!({ "card_uid": NEW_CARD })).await?;
    assert_eq!(s, 200, "an unlinked card gets a code again: {third}");
    let (s, path, page) = post_form(&other, &cards, &format!("{cards}/link-code"), &[("code", code_of(&third).as_str())]).await?;
    assert_eq!((s, path.as_str()), (200, "/cards"), "{page}");
    assert!(page.contains(&format!("id=\"card-{NEW_CARD}\"")), "{page}");
    let history_of = |page: &str| page[page.find("id=\"history\"").unwrap_or(0)..].to_string();
    assert!(!history_of(&page).contains("…6071"), "the last holder's history is not the next one's: {}", history_of(&page));
    assert_eq!(
        b.sql(&format!("SELECT u.email FROM ic_cards k JOIN users u ON u.id = k.user_id WHERE k.uid = '{NEW_CARD}' AND k.unlinked_at IS NULL"))?,
        "second.holder@example.jp"
    );
    let mine = c.get(&cards).send().await?.text().await?;
    assert!(history_of(&mine).contains("…6071") && !mine.contains(&format!("id=\"card-{NEW_CARD}\"")), "the first holder keeps their history of it: {mine}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_code_lapses_after_its_time_and_guessing_codes_is_slowed() -> Result<()> {
    use crate::accounts::{portal_login, post_form};
    use serde_json::json;
    let b = Backend::start(None).await?;
    let api = crate::station_api::Api::new(&b).await?;
    let c = Backend::client();
    let (s, path, _) = portal_login(&b, &c, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    let cards = format!("{}/cards", b.url);
    let linked = || b.sql(&format!("SELECT COUNT(*) FROM ic_cards WHERE uid = '{NEW_CARD}' AND unlinked_at IS NULL"));

    // a code past its 15 minutes links nothing
    let (s, issued) = api.post("/card-links", json!({ "card_uid": NEW_CARD })).await?;
    assert_eq!(s, 200, "{issued}");
    b.sql(&format!("UPDATE card_link_codes SET expires_at = {} - 1", shomei_backend::time::now()))?;
    let (s, _, page) = post_form(&c, &cards, &format!("{cards}/link-code"), &[("code", issued["code"].as_str().unwrap_or_default())]).await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("cannot be used"), "{page}");
    assert_eq!(linked()?, "0");

    // guessing: wrong codes are answered until the throttle makes the guesser wait
    let mut tries = 0;
    let throttled_at = loop {
        tries += 1;
        anyhow::ensure!(tries <= 30, "30 wrong codes and no wait");
        let (s, _, page) = post_form(&c, &cards, &format!("{cards}/link-code"), &[("code", "2345AB")]).await?;
        match s {
            400 => assert!(page.contains("cannot be used"), "{page}"),
            429 => break tries,
            other => anyhow::bail!("a wrong code answered {other}: {page}"),
        }
    };
    assert!(throttled_at > 1, "the first wrong code is only refused");
    // while the guesser waits, even a right code links nothing
    let (s, fresh) = api.post("/card-links", json!({ "card_uid": NEW_CARD })).await?;
    assert_eq!(s, 200, "{fresh}");
    let (s, _, page) = post_form(&c, &cards, &format!("{cards}/link-code"), &[("code", fresh["code"].as_str().unwrap_or_default())]).await?;
    assert_eq!(s, 429, "{page}");
    assert_eq!(linked()?, "0");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM card_link_codes WHERE card_uid = '{NEW_CARD}' AND used_at IS NULL AND expires_at > {}", shomei_backend::time::now()))?, "1", "the code stays usable once the wait is over");
    Ok(())
}
