//! Digital certificates (issue 16). Paper that verifies offline: the QR code
//! on a certificate carries its contents signed with the university's key;
//! the verification page checks them itself, with the network cut.

use crate::accounts::MAIL_WAIT;
use crate::harness::*;
use anyhow::{Context, Result};
use std::process::Command;
use std::time::Duration;

/// The link a PDF's first page's QR code holds, read as a phone reads it (rendered, then scanned).
fn scanned_link(dir: &std::path::Path, pdf: &[u8]) -> Result<String> {
    let file = dir.join("certificate.pdf");
    std::fs::write(&file, pdf)?;
    let prefix = dir.join("scanned");
    let ok = Command::new("pdftoppm").args(["-r", "300", "-png", "-singlefile", "-f", "1", "-l", "1"]).arg(&file).arg(&prefix).status()?;
    anyhow::ensure!(ok.success(), "pdftoppm");
    let out = Command::new("zbarimg").args(["--quiet", "--raw"]).arg(dir.join("scanned.png")).output()?;
    anyhow::ensure!(out.status.success(), "zbarimg: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A graduate's certificate printed at a station (charged by card, reported
/// printed): the order's id and the PDF the station fetched and printed.
async fn printed_certificate(b: &Backend, key: &str) -> Result<(String, Vec<u8>)> {
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
    let order = b.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
    let api = crate::station_api::Api::new(b).await?;
    let (s, res) = api.post("/reservations", serde_json::json!({ "print_number": number })).await?;
    anyhow::ensure!(s == 200, "{res}");
    let id = res["reservation_id"].as_i64().context("reservation")?;
    let (s, res) = api.post(&format!("/reservations/{id}/charge"), serde_json::json!({ "card_uid": shomei_backend::demo::CARD_UID, "idempotency_key": key })).await?;
    anyhow::ensure!(s == 200, "{res}");
    let pdf = reqwest::Client::new().get(format!("{}/api/station/v1/reservations/{id}/document", b.url)).bearer_auth(api.token()).send().await?.bytes().await?;
    anyhow::ensure!(pdf.starts_with(b"%PDF"), "the order's PDF");
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let report = serde_json::json!({ "idempotency_key": format!("{key}-printed"), "outcome": { "kind": "printed" }, "ipp_job_id": 1, "at": at, "impressions": 1 });
    let (s, res) = api.post(&format!("/reservations/{id}/report"), report).await?;
    anyhow::ensure!(s == 200 && res["order_status"] == "printed", "{res}");
    Ok((order, pdf.to_vec()))
}

/// The printed certificate's QR code holds the verification link and, in its
/// fragment, the certificate's contents signed with the university's key. A
/// third party's browser opening it is told who issued it for whom (the
/// registrar's records), that the signature holds and, from the server, that
/// it is not revoked. With the backend gone (the network cut), the page the
/// browser kept checks the same QR code all the same and says revocation could
/// not be checked; one character of the payload changed is caught as altered,
/// and a payload signed by a key no university on the service holds is not genuine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificates_qr_code_proves_who_issued_it_for_whom_in_the_browser_with_the_network_cut() -> Result<()> {
    let mut b = Backend::start(None).await?;
    let (order, pdf) = printed_certificate(&b, "qr-offline").await?;
    let link = scanned_link(b.dir.path(), &pdf)?;
    let (serial, code, name) = {
        let row = b.sql(&format!(
            "SELECT c.serial || '|' || c.verification_code FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE l.order_id = {order}"
        ))?;
        let (s, c) = row.split_once('|').context("certificate")?;
        let name = b.sql(&format!("SELECT r.name_kanji FROM orders o JOIN student_records r ON r.id = o.student_record_id WHERE o.id = {order}"))?;
        (s.to_string(), c.to_string(), name)
    };
    let (page_link, proof) = link.split_once("#p=").with_context(|| format!("a signed payload in the QR code: {link}"))?;
    assert_eq!(page_link, format!("{}/verify?code={code}", b.url));
    assert_eq!(proof.split('.').count(), 3, "a compact JWS: {proof}");

    // the university's key, published for machines too: the payload checks out against it
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks: serde_json::Value = reqwest::get(format!("{}/verify/keys.json", b.url)).await?.json().await?;
        let keys = jwks["keys"].as_array().context("keys")?;
        assert_eq!(keys.len(), 1, "one university, one key: {jwks}");
        let k = &keys[0];
        assert_eq!((k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str(), k["name_en"].as_str()), (Some("OKP"), Some("Ed25519"), Some("EdDSA"), Some("Shomei University")));
        let (h, rest) = proof.split_once('.').context("header")?;
        let (p, sig) = rest.split_once('.').context("payload")?;
        let header: serde_json::Value = serde_json::from_slice(&b64.decode(h)?)?;
        assert_eq!(header["kid"], k["kid"], "the payload names the published key");
        let x: [u8; 32] = b64.decode(k["x"].as_str().context("x")?)?.try_into().map_err(|_| anyhow::anyhow!("x is not 32 bytes"))?;
        let public = ed25519_dalek::VerifyingKey::from_bytes(&x)?;
        let sig = ed25519_dalek::Signature::from_slice(&b64.decode(sig)?)?;
        public.verify_strict(format!("{h}.{p}").as_bytes(), &sig).context("the payload's signature against the published key")?;
        let claims: serde_json::Value = serde_json::from_slice(&b64.decode(p)?)?;
        assert_eq!((claims["s"].as_str(), claims["c"].as_str(), claims["n"].as_str()), (Some(serial.as_str()), Some(code.as_str()), Some(name.as_str())), "{claims}");
    }

    let browser = Browser::start().await?;
    browser.client.goto(&link).await?;
    let verdict = browser.wait_text("offline-verdict", "signature checked").await?;
    assert!(verdict.contains("証明大学 が発行した証明書です") && verdict.contains("Issued by Shomei University"), "{verdict}");
    let claims = browser.wait_text("offline-claims", &serial).await?;
    assert!(claims.contains(&name) && claims.contains("卒業証明書"), "the registrar's records: {claims}");
    browser.wait_text("revocation", "Not revoked (checked with the server just now)").await?;
    // the page is kept for offline use once its service worker controls it
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while browser.client.execute("return !!navigator.serviceWorker.controller", vec![]).await?.as_bool() != Some(true) {
        anyhow::ensure!(std::time::Instant::now() < end, "the verification page's service worker never took over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // the network cut: the backend is gone, the kept page checks the QR code itself
    b.stop().await;
    anyhow::ensure!(reqwest::get(&link).await.is_err(), "the backend still answers");
    browser.client.goto("about:blank").await?;
    browser.client.goto(&link).await?;
    browser.wait_text("offline-verdict", "signature checked").await?;
    browser.wait_text("offline-claims", &serial).await?;
    browser.wait_text("revocation", "No connection: revocation is not checked.").await?;

    // one character of the payload changed: altered, not genuine
    let (h, rest) = proof.split_once('.').context("header")?;
    let (p, s) = rest.split_once('.').context("payload")?;
    let mut altered: Vec<char> = p.chars().collect();
    altered[10] = if altered[10] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    browser.client.goto("about:blank").await?;
    browser.client.goto(&format!("{page_link}#p={h}.{altered}.{s}")).await?;
    browser.wait_text("offline-verdict", "the contents were altered").await?;
    // the same payload under a header naming a key no university here holds
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(h)?)?;
    assert_eq!(header["alg"], "EdDSA");
    let forged = b64.encode(serde_json::to_vec(&serde_json::json!({ "alg": "EdDSA", "kid": "000000000000" }))?);
    let stranger = format!("{page_link}#p={forged}.{p}.{s}");
    browser.client.goto("about:blank").await?;
    browser.client.goto(&stranger).await?;
    let said = browser.wait_text("offline-verdict", "not genuine").await?;
    assert!(!said.contains("signature checked"), "{said}");
    Ok(())
}

// ------------------------------------------------------------------ signed PDFs

/// The station's certificate, signed PAdES B-T with the university's key
/// and time-stamped by the TSA, is accepted by both independent validators:
/// poppler's pdfsig (signature valid, certificate trusted, the whole
/// document signed) and pyHanko (intact, trusted, untouched, the
/// time-stamp valid). The signed copy is the printed document (the same
/// pages, the same QR link). One byte changed after signing: both report
/// it broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_certificate_is_valid_trusted_and_timestamped_for_two_validators_and_a_changed_byte_breaks_it() -> Result<()> {
    let b = Backend::start(None).await?;
    let (_, pdf) = printed_certificate(&b, "signed-pdf").await?;
    let pki = TestPki::make()?;
    let signed = pki.sealer()?.sign(&pdf, "Certificate issued by the registrar", "Shomei University").await?;
    assert!(signed.starts_with(&pdf), "the signature is an incremental update: the printed document, unchanged, is its first revision");

    let said = pki.pdfsig(&signed)?;
    for line in ["Signature Type: ETSI.CAdES.detached", "Total document signed", "Signature Validation: Signature is Valid.", "Certificate Validation: Certificate is Trusted.",
                 "Signer Certificate Common Name: Shomei University Registrar"] {
        assert!(said.contains(line), "pdfsig: {line:?} missing in: {said}");
    }
    let (ok, report) = pki.pyhanko(&signed)?;
    assert!(ok, "pyHanko: {report}");
    for line in ["The signature is judged VALID", "The signer's certificate is trusted", "The signature is cryptographically sound", "Signature timestamp token:",
                 "The timestamp token is cryptographically sound", "The TSA certificate is trusted", "The signature covers the entire file"] {
        assert!(report.contains(line), "pyHanko: {line:?} missing in: {report}");
    }
    // the signed copy shows what the paper shows: its QR code is the printed one's
    let dir = tempfile::tempdir()?;
    assert_eq!(scanned_link(dir.path(), &signed)?, scanned_link(dir.path(), &pdf)?);

    // one byte of the signed content changed (inside the first signed range)
    let mut altered = signed.clone();
    let at = altered.windows(7).position(|w| w == b"/MediaB").context("a page")?;
    altered[at + 1] = b'N';
    let said = pki.pdfsig(&altered)?;
    assert!(!said.contains("Signature is Valid.") && said.contains("Signature Validation:"), "pdfsig must call it broken: {said}");
    let (ok, report) = pki.pyhanko(&altered)?;
    assert!(!ok && !report.contains("judged VALID"), "pyHanko must call it broken: {report}");
    Ok(())
}


/// The demo graduate orders the graduation certificate (one copy) for `delivery`, paid by `payment`.
async fn order_graduation(b: &Backend, user: &reqwest::Client, delivery: &str, payment: &str) -> Result<(u16, String)> {
    let id = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;
    let field = format!("copies_{id}");
    let (s, _, page) = crate::accounts::post_form(
        user,
        &format!("{}/orders/new", b.url),
        &format!("{}/orders", b.url),
        &[("student_record_id", "1"), (field.as_str(), "1"), ("delivery", delivery), ("payment_method", payment)],
    )
    .await?;
    Ok((s, page))
}

/// The signed PDF is a fourth way to receive a certificate. Offered only for
/// a type the registrar delivers so (the catalogue says, per type), paid
/// online (Smart Pit here); once paid the graduate is mailed, downloads
/// their own copy (valid and time-stamped for both validators) and shares
/// copies: each names its recipient in the PDF, its link goes to the
/// recipient's mail, and the recipient's page (no account) says who issued
/// it for whom and that it is valid, in both languages. The graduate sees
/// each share opened, with its downloads counted; a share's cap and expiry
/// end it, the graduate withdraws one, and staff revoking the certificate
/// ends every share at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graduate_receives_a_signed_pdf_and_shares_copies_each_naming_its_recipient_until_withdrawn_used_up_expired_or_revoked() -> Result<()> {
    use crate::accounts::post_form;
    let pki = TestPki::make()?;
    let smtp = Smtp::start()?;
    let smartpit = HttpSim::smartpit()?;
    let b = signing_backend(&pki, Some(smtp.port), &smartpit).await?;
    let user = Backend::client();
    crate::accounts::portal_login(&b, &user, shomei_backend::demo::GRADUATE_EMAIL, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    let type_id = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation'")?;

    // the demo catalogue delivers only the English certificate of graduation digitally: the
    // form offers the signed PDF, says for which type, and refuses it for the Japanese one with words
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(form.contains("value=\"digital\""), "{form}");
    assert_eq!(form.matches("also as a signed PDF").count(), 1, "one type says it: {form}");
    let (s, page) = order_graduation(&b, &user, "digital", "smartpit").await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("is not delivered as a digital certificate (PDF)"), "{page}");
    assert_eq!(b.sql("SELECT count(*) FROM orders")?, "0", "nothing half-written");

    // the registrar allows it for the graduation certificate in the catalogue
    let staff = b.staff_client().await?;
    let catalogue = staff.get(format!("{}/admin/catalogue", b.url)).send().await?.text().await?;
    let fields = catalogue_fields(&catalogue, &type_id)?;
    let mut with_digital: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    with_digital.push(("digital", "1"));
    let r = staff.post(format!("{}/admin/catalogue", b.url)).form(&with_digital).send().await?;
    assert!(r.status().is_success(), "{}", r.text().await?);
    assert_eq!(b.sql(&format!("SELECT digital FROM certificate_types WHERE id = {type_id}"))?, "1");
    let form = user.get(format!("{}/orders/new", b.url)).send().await?.text().await?;
    assert!(form.contains("Digital certificate (a PDF signed by the university") && form.matches("also as a signed PDF").count() == 2, "{form}");
    // one copy per type: the recipients get copies of it
    let id_field = format!("copies_{type_id}");
    let (s, _, page) = post_form(&user, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url),
        &[("student_record_id", "1"), (id_field.as_str(), "2"), ("delivery", "digital"), ("payment_method", "smartpit")]).await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("one copy per type"), "{page}");

    let (s, page) = order_graduation(&b, &user, "digital", "smartpit").await?;
    assert_eq!(s, 200, "{page}");
    let order = b.sql("SELECT id FROM orders WHERE delivery = 'digital'")?;
    assert_eq!(b.sql(&format!("SELECT coalesce(print_number, 'none') FROM orders WHERE id = {order}"))?, "none");
    // unpaid: nothing to download
    let r = user.get(format!("{}/orders/{order}/digital.pdf", b.url)).send().await?;
    assert_eq!(r.status(), 400);
    assert!(r.text().await?.contains("once the payment is in"));

    // paid in cash: the graduate is mailed that it is ready
    let order_url = format!("{}/orders/{order}", b.url);
    let (s, _, page) = post_form(&user, &order_url, &format!("{order_url}/smartpit"), &[]).await?;
    assert_eq!(s, 200, "{page}");
    let number = element_text(&page, "smartpit-number").context("payment number")?;
    let r = smartpit.knob("/sim/pay", serde_json::json!({ "payment_number": number, "url": format!("{}/smartpit/notice", b.url) })).await?;
    assert_eq!(r["delivered_status"], 200, "{r}");
    let mail = smtp.wait_for_mail_with(shomei_backend::demo::GRADUATE_EMAIL, "Your digital certificate is ready", MAIL_WAIT)?;
    assert!(mail.contains("電子証明書をダウンロードできます") && mail.contains(&order_url), "{mail}");

    // the graduate's own copy: the order's document, signed; valid for both validators
    let page = user.get(&order_url).send().await?.text().await?;
    assert!(page.contains("id=\"digital-download\"") && page.contains("id=\"share-form\""), "{page}");
    let own = user.get(format!("{order_url}/digital.pdf")).send().await?;
    assert_eq!(own.status(), 200);
    assert_eq!(own.headers()["content-type"], "application/pdf");
    let own = own.bytes().await?.to_vec();
    let said = pki.pdfsig(&own)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted.") && said.contains("Total document signed"), "{said}");
    let (ok, report) = pki.pyhanko(&own)?;
    assert!(ok && report.contains("The timestamp token is cryptographically sound") && report.contains("The TSA certificate is trusted"), "{report}");
    let again = user.get(format!("{order_url}/digital.pdf")).send().await?.bytes().await?;
    assert_eq!(again.to_vec(), own, "signed once and kept: the same file every time");
    let dir = tempfile::tempdir()?;
    let code = b.sql(&format!("SELECT c.verification_code FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE l.order_id = {order}"))?;
    assert!(scanned_link(dir.path(), &own)?.starts_with(&format!("{}/verify?code={code}#p=", b.url)), "the QR code of the printed certificate");
    // logged out: the login page, not the PDF
    let stranger = Backend::client();
    let r = stranger.get(format!("{order_url}/digital.pdf")).send().await?;
    assert_eq!(r.url().path(), "/login");
    assert!(r.headers()["content-type"].to_str()?.starts_with("text/html"));

    // a share: refused with words for a bad address, kept what was typed
    let share = |org: &'static str, name: &'static str, email: &'static str, downloads: &'static str| {
        let (user, order_url) = (user.clone(), order_url.clone());
        async move {
            post_form(&user, &order_url, &format!("{order_url}/shares"),
                &[("recipient_org", org), ("recipient_name", name), ("recipient_email", email), ("days", ""), ("downloads", downloads)]).await
        }
    };
    let (s, _, page) = share("北商事株式会社", "鈴木 一郎", "not-an-address", "").await?;
    assert_eq!(s, 400, "{page}");
    let said = element_text(&page, "share-error").unwrap_or_default();
    assert!(said.contains("メールアドレスを正しく入力") && said.contains("e-mail address"), "{said}");
    assert_eq!(form_value_by_id(&page, "recipient_org").as_deref(), Some("北商事株式会社"), "what was typed is kept");
    let (s, _, page) = share("北商事株式会社", "鈴木 一郎", "hr@kita-shoji.example", "2").await?;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("A copy for the recipient was made"), "{page}");
    let mail = smtp.wait_for_mail_with("hr@kita-shoji.example", "A digital certificate was submitted to you", MAIL_WAIT)?;
    assert!(mail.contains("電子証明書が提出されました") && mail.contains("Downloads allowed: 2"), "{mail}");
    let link = link_in(&mail, &format!("{}/shared/", b.url)).context("the share link in the mail")?;
    // the link's token is kept only as its hash
    let token = link.rsplit('/').next().unwrap_or_default().to_string();
    assert_eq!(b.sql(&format!("SELECT count(*) FROM digital_copies WHERE token_hash = '{token}'"))?, "0");

    // the recipient's page: valid, who issued it for whom, both languages
    let holder = b.sql(&format!("SELECT r.name_kanji FROM orders o JOIN student_records r ON r.id = o.student_record_id WHERE o.id = {order}"))?;
    let recipient = Backend::client();
    let page = recipient.get(&link).send().await?;
    assert_eq!(page.status(), 200);
    let page = page.text().await?;
    assert_eq!(element_attr(&page, "share-state", "data-state").as_deref(), Some("valid"), "{page}");
    assert!(page.contains("有効な証明書です") && page.contains("Valid certificate"), "{page}");
    assert!(element_inner_text(&page, "holder").unwrap_or_default().contains(&holder), "{page}");
    assert!(element_inner_text(&page, "issuer").unwrap_or_default().contains("Shomei University"), "{page}");
    assert!(element_inner_text(&page, "recipient").unwrap_or_default().contains("北商事株式会社"), "{page}");
    // the graduate sees it opened, not yet downloaded
    let page = user.get(&order_url).send().await?.text().await?;
    let share_id = b.sql(&format!("SELECT id FROM digital_copies WHERE order_id = {order} AND recipient_email = 'hr@kita-shoji.example'"))?;
    let row = element_inner_text(&page, &format!("share-{share_id}")).context("the share's row")?;
    assert!(!row.contains("Not opened yet") && row.contains("0 / 2"), "{row}");

    // the download's address opened as a link (a mail scanner following what it finds): the
    // page, no download counted; only the page's button (a POST) downloads
    let scanned = recipient.get(format!("{link}/certificate.pdf")).send().await?;
    assert_eq!((scanned.status().as_u16(), scanned.url().path().to_string()), (200, link.trim_start_matches(b.url.as_str()).to_string()));
    assert!(scanned.text().await?.contains("id=\"download\""), "the page with its download button");
    assert_eq!(b.sql(&format!("SELECT downloads FROM digital_copies WHERE recipient_email = 'hr@kita-shoji.example'"))?, "0");
    // the recipient's copy: signed, valid for both validators, names the recipient, the same QR link
    let copy = recipient.post(format!("{link}/certificate.pdf")).send().await?;
    assert_eq!(copy.status(), 200);
    let copy = copy.bytes().await?.to_vec();
    let said = pki.pdfsig(&copy)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted."), "{said}");
    let (ok, report) = pki.pyhanko(&copy)?;
    assert!(ok && report.contains("The timestamp token is cryptographically sound") && report.contains("The TSA certificate is trusted"), "{report}");
    let text = pdf_text(dir.path(), &copy)?;
    assert!(text.contains("北商事株式会社") && text.contains("鈴木 一郎") && text.contains("Issued for submission to"), "{text}");
    assert!(!pdf_text(dir.path(), &own)?.contains("Issued for submission to"), "the graduate's own copy names nobody");
    assert!(scanned_link(dir.path(), &copy)?.starts_with(&format!("{}/verify?code={code}#p=", b.url)));
    // dropped on the verification page by anyone: recognised, unchanged, valid, for whom
    let (s, result, page) = drop_pdf(&b, &own).await?;
    assert_eq!((s, result.as_str()), (200, "genuine"), "{page}");
    assert!(element_inner_text(&page, "pdf-holder").unwrap_or_default().contains(&holder) && element_inner_text(&page, "pdf-status").unwrap_or_default().contains("valid"), "{page}");
    assert!(page.contains("unchanged since it was issued") && page.contains("発行後に変更されていません"), "{page}");
    let (s, result, page) = drop_pdf(&b, &copy).await?;
    assert_eq!((s, result.as_str()), (200, "genuine"), "{page}");
    assert!(element_inner_text(&page, "pdf-recipient").unwrap_or_default().contains("北商事株式会社"), "{page}");
    // something appended after the signature (an incremental update): not the file as issued
    let mut appended = copy.clone();
    appended.extend_from_slice(b"\n% an annotation added later\n");
    let (s, result, page) = drop_pdf(&b, &appended).await?;
    assert_eq!((s, result.as_str()), (422, "changed"), "{page}");
    // one byte of what was signed changed: not a certificate issued here
    let mut altered = copy.clone();
    let at = altered.windows(7).position(|w| w == b"/MediaB").context("a page")?;
    altered[at + 1] = b'N';
    let (s, result, page) = drop_pdf(&b, &altered).await?;
    assert_eq!((s, result.as_str()), (422, "unknown"), "{page}");
    let (s, _, page) = drop_pdf(&b, b"not a pdf").await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("Choose a PDF file"), "{page}");

    // its cap: the second download is the last
    assert_eq!(recipient.post(format!("{link}/certificate.pdf")).send().await?.status(), 200);
    let used = recipient.post(format!("{link}/certificate.pdf")).send().await?;
    assert_eq!(used.status(), 410);
    let used = used.text().await?;
    assert_eq!(element_attr(&used, "share-state", "data-state").as_deref(), Some("used_up"), "{used}");
    assert_eq!(b.sql(&format!("SELECT downloads FROM digital_copies WHERE id = {share_id}"))?, "2", "downloads counted exactly");

    // a second recipient, withdrawn by the graduate
    let (s, _, page) = share("南大学大学院", "田中 花子", "admissions@minami.example", "").await?;
    assert_eq!(s, 200, "{page}");
    let mail = smtp.wait_for_mail_with("admissions@minami.example", "A digital certificate was submitted to you", MAIL_WAIT)?;
    let second = link_in(&mail, &format!("{}/shared/", b.url)).context("second link")?;
    let second_id = b.sql(&format!("SELECT id FROM digital_copies WHERE recipient_email = 'admissions@minami.example'"))?;
    let (s, _, page) = post_form(&user, &order_url, &format!("{order_url}/shares/{second_id}/withdraw"), &[]).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(element_attr(&page, &format!("share-{second_id}"), "data-state").as_deref(), Some("withdrawn"), "{page}");
    let gone = recipient.post(format!("{second}/certificate.pdf")).send().await?;
    assert_eq!(gone.status(), 410);
    assert!(gone.text().await?.contains("The sender withdrew this link"));

    // a third, expired (its expiry passed: set in the past)
    let (s, _, page) = share("東銀行", "佐藤 次郎", "jinji@higashi-bank.example", "").await?;
    assert_eq!(s, 200, "{page}");
    let mail = smtp.wait_for_mail_with("jinji@higashi-bank.example", "A digital certificate was submitted to you", MAIL_WAIT)?;
    let third = link_in(&mail, &format!("{}/shared/", b.url)).context("third link")?;
    b.sql("UPDATE digital_copies SET expires_at = 1 WHERE recipient_email = 'jinji@higashi-bank.example'")?;
    let expired = recipient.get(&third).send().await?;
    assert_eq!(expired.status(), 410);
    assert_eq!(element_attr(&expired.text().await?, "share-state", "data-state").as_deref(), Some("expired"));
    assert_eq!(recipient.post(format!("{third}/certificate.pdf")).send().await?.status(), 410);

    // a fourth, then staff revoke the certificate: every share ends, the graduate's too
    let (s, _, page) = share("西工業", "高橋 三郎", "saiyo@nishi.example", "").await?;
    assert_eq!(s, 200, "{page}");
    let mail = smtp.wait_for_mail_with("saiyo@nishi.example", "A digital certificate was submitted to you", MAIL_WAIT)?;
    let fourth = link_in(&mail, &format!("{}/shared/", b.url)).context("fourth link")?;
    let certificate = b.sql(&format!("SELECT c.id FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE l.order_id = {order}"))?;
    let detail = format!("{}/admin/orders/{order}", b.url);
    let (s, _, page) = post_form(&staff, &detail, &format!("{}/admin/certificates/{certificate}/revoke", b.url), &[("reason", "issued in error")]).await?;
    assert!(s == 200, "{page}");
    let revoked = recipient.get(&fourth).send().await?;
    assert_eq!(revoked.status(), 410);
    let revoked = revoked.text().await?;
    assert_eq!(element_attr(&revoked, "share-state", "data-state").as_deref(), Some("revoked"), "{revoked}");
    assert!(revoked.contains("この証明書は大学により失効されています") && revoked.contains("revoked by the university"), "{revoked}");
    assert_eq!(recipient.post(format!("{fourth}/certificate.pdf")).send().await?.status(), 410);
    // a copy dropped on the verification page now: genuine, but revoked
    let (s, result, page) = drop_pdf(&b, &own).await?;
    assert_eq!((s, result.as_str()), (200, "genuine"), "{page}");
    assert!(page.contains("But this certificate has been revoked") && element_inner_text(&page, "pdf-status").unwrap_or_default().contains("revoked"), "{page}");
    let r = user.get(format!("{order_url}/digital.pdf")).send().await?;
    assert_eq!(r.status(), 400);
    assert!(r.text().await?.contains("The university has revoked this certificate"));
    // a link that never was
    assert_eq!(recipient.get(format!("{}/shared/{}", b.url, "0".repeat(64))).send().await?.status(), 404);
    Ok(())
}

/// What the verification page says of a dropped PDF: (status, data-result, page).
async fn drop_pdf(b: &Backend, pdf: &[u8]) -> Result<(u16, String, String)> {
    let form = reqwest::multipart::Form::new().part("pdf", reqwest::multipart::Part::bytes(pdf.to_vec()).file_name("certificate.pdf").mime_str("application/pdf")?);
    let r = reqwest::Client::new().post(format!("{}/verify/pdf", b.url)).multipart(form).send().await?;
    let status = r.status().as_u16();
    let page = r.text().await?;
    let result = element_attr(&page, "pdf-result", "data-result").unwrap_or_default();
    Ok((status, result, page))
}

/// The value attribute of the input with this id.
fn form_value_by_id(page: &str, id: &str) -> Option<String> {
    element_attr(page, id, "value")
}

/// The text of a PDF (pdftotext).
fn pdf_text(dir: &std::path::Path, pdf: &[u8]) -> Result<String> {
    let file = dir.join("text.pdf");
    std::fs::write(&file, pdf)?;
    let out = Command::new("pdftotext").arg(&file).arg("-").output()?;
    anyhow::ensure!(out.status.success(), "pdftotext");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The catalogue form's fields for type `id`, as the page fills them.
fn catalogue_fields(page: &str, id: &str) -> Result<Vec<(String, String)>> {
    let start = page.find(&format!("id=\"type-{id}\"")).context("the type's form")?;
    let form = &page[start..start + page[start..].find("</form>").context("form end")?];
    let mut out = Vec::new();
    let csrf = form_value(page, "csrf").context("csrf")?;
    out.push(("csrf".into(), csrf));
    for tag in form.split('<').skip(1) {
        let attr = |name: &str| tag.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next()).map(str::to_string);
        let Some(name) = attr("name") else { continue };
        if name == "csrf" {
            continue;
        }
        if tag.starts_with("input") {
            let checkbox = tag.contains("type=\"checkbox\"");
            if checkbox && !tag.contains(" checked") {
                continue;
            }
            out.push((name, attr("value").unwrap_or_default()));
        } else if tag.starts_with("select") {
            let rest = &form[form.find(tag).unwrap_or(0)..];
            let options = &rest[..rest.find("</select").unwrap_or(rest.len())];
            let chosen = options.split("<option").skip(1).find(|o| o.contains(" selected")).or_else(|| options.split("<option").nth(1));
            let value = chosen.and_then(|o| o.split("value=\"").nth(1)).and_then(|r| r.split('"').next()).unwrap_or_default();
            out.push((name, value.to_string()));
        } else if tag.starts_with("textarea") {
            let body = tag.split_once('>').map(|(_, b)| b).unwrap_or_default();
            out.push((name, body.to_string()));
        }
    }
    Ok(out)
}

on_both_screens!(
    a_graduate_orders_a_signed_pdf_and_sends_it_to_a_recipient_who_opens_and_checks_it_in_the_browser,
    a_graduate_orders_a_signed_pdf_and_sends_it_to_a_recipient_who_opens_and_checks_it_in_the_browser_at_phone_width,
    a_graduate_orders_a_signed_pdf_and_sends_it_to_a_recipient_who_opens_and_checks_it_in_the_browser_on
);
/// In the browser, at desktop and phone size: the graduate picks the
/// English certificate of graduation as a signed PDF, pays in cash (Smart
/// Pit), finds the download and the share form on the order page, sends a
/// copy to an employer (a wrong address first: told beside the form, what
/// was typed kept), and sees it "not opened yet"; the employer opens the
/// mailed link in their own browser (no account): the page says in both
/// languages that it is valid, who issued it for whom, and offers the
/// download, and the copy dropped on the verification page is recognised as
/// issued there, unchanged and valid, for them; the graduate then sees it
/// opened. Every page passes axe-core's WCAG AA checks and fits the screen.
async fn a_graduate_orders_a_signed_pdf_and_sends_it_to_a_recipient_who_opens_and_checks_it_in_the_browser_on(screen: Screen) -> Result<()> {
    use fantoccini::Locator;
    let pki = TestPki::make()?;
    let smtp = Smtp::start()?;
    let smartpit = HttpSim::smartpit()?;
    let b = signing_backend(&pki, Some(smtp.port), &smartpit).await?;
    let english = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation_en'")?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    browser.log_in_as_demo_graduate(&b).await?;
    browser.wait_id("new-order").await?.click().await?;
    let copies = browser.wait_id(&format!("copies_{english}")).await?;
    copies.clear().await?;
    copies.send_keys("1").await?;
    w.find(Locator::Id("delivery")).await?.select_by_value("digital").await?;
    w.find(Locator::Id("payment_method")).await?.select_by_value("smartpit").await?;
    w.find(Locator::Id("to-confirm")).await?.click().await?;
    browser.wait_id("confirm").await?;
    let confirm = w.source().await?;
    assert!(confirm.contains("Digital certificate (signed PDF)"), "the confirmation names the delivery");
    w.find(Locator::Id("place-order")).await?.click().await?;
    // the payment number is issued with the order (and mailed)
    browser.wait_id("pay-cash").await?;
    let number = browser.wait_id("smartpit-number").await?.text().await?;
    let r = smartpit.knob("/sim/pay", serde_json::json!({ "payment_number": number.trim(), "url": format!("{}/smartpit/notice", b.url) })).await?;
    assert_eq!(r["delivered_status"], 200, "{r}");
    w.refresh().await?;
    browser.wait_id("digital-download").await?;
    let problems = browser.page_problems().await?;
    assert!(problems.is_empty(), "the order page with its digital section: {problems:?}");

    // a wrong address: told beside the form, the rest kept
    browser.wait_id("recipient_org").await?.send_keys("Kita Trading Co., Ltd.").await?;
    w.find(Locator::Id("recipient_name")).await?.send_keys("Ichiro Suzuki").await?;
    // (the browser's own check of type=email is bypassed: the server's is the one that counts)
    w.execute("document.getElementById('recipient_email').type = 'text'", vec![]).await?;
    w.find(Locator::Id("recipient_email")).await?.send_keys("hr-at-kita").await?;
    w.find(Locator::Id("share-send")).await?.click().await?;
    let said = browser.wait_id("share-error").await?.text().await?;
    assert!(said.contains("Give the recipient's e-mail address") && said.contains("メールアドレス"), "{said}");
    assert_eq!(browser.wait_id("recipient_org").await?.prop("value").await?.as_deref(), Some("Kita Trading Co., Ltd."));
    let email = w.find(Locator::Id("recipient_email")).await?;
    email.clear().await?;
    email.send_keys("hr@kita-trading.example").await?;
    w.find(Locator::Id("share-send")).await?.click().await?;
    browser.wait_text("notice", "A copy for the recipient was made").await?;
    let share = b.sql("SELECT id FROM digital_copies WHERE recipient_email = 'hr@kita-trading.example'")?;
    let row = browser.wait_id(&format!("share-{share}")).await?.text().await?;
    assert!(row.contains("Kita Trading Co., Ltd.") && row.contains("Not opened yet") && row.contains("0 / 5"), "{row}");
    let problems = browser.page_problems().await?;
    assert!(problems.is_empty(), "the order page with a share: {problems:?}");

    // the employer opens the mailed link in their own browser
    let mail = smtp.wait_for_mail_with("hr@kita-trading.example", "A digital certificate was submitted to you", MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/shared/", b.url)).context("the link")?;
    let employer = Browser::start_on(screen).await?;
    employer.client.goto(&link).await?;
    let state = employer.wait_id("share-state").await?.text().await?;
    assert!(state.contains("有効な証明書です") && state.contains("Valid certificate"), "{state}");
    let recipient = employer.wait_id("recipient").await?.text().await?;
    assert!(recipient.contains("Kita Trading Co., Ltd.") && recipient.contains("Ichiro Suzuki"), "{recipient}");
    let issuer = employer.wait_id("issuer").await?.text().await?;
    assert!(issuer.contains("Shomei University"), "{issuer}");
    employer.wait_id("download").await?;
    let problems = employer.page_problems().await?;
    assert!(problems.is_empty(), "the recipient's page: {problems:?}");
    // the employer's copy (downloaded as the link does), dropped on the verification page
    let copy = reqwest::Client::new().post(format!("{link}/certificate.pdf")).send().await?.bytes().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("certificate.pdf");
    std::fs::write(&file, &copy)?;
    employer.client.goto(&format!("{}/verify", b.url)).await?;
    employer.wait_id("pdf").await?.send_keys(&file.display().to_string()).await?;
    employer.client.find(Locator::Id("check-pdf")).await?.click().await?;
    let verdict = employer.wait_text("pdf-verdict", "unchanged since it was issued").await?;
    assert!(verdict.contains("It is still valid") && verdict.contains("発行後に変更されていません"), "{verdict}");
    let recipient = employer.wait_id("pdf-recipient").await?.text().await?;
    assert!(recipient.contains("Kita Trading Co., Ltd."), "{recipient}");
    let problems = employer.page_problems().await?;
    assert!(problems.is_empty(), "the verification page's answer: {problems:?}");
    employer.close().await;

    // the graduate sees it opened
    w.refresh().await?;
    let row = browser.wait_id(&format!("share-{share}")).await?.text().await?;
    assert!(!row.contains("Not opened yet"), "{row}");
    browser.close().await;
    Ok(())
}

/// The university's key may come as a PKCS#12 file with its password file:
/// one exported with the classic encryption signs (valid for pdfsig); one
/// with OpenSSL 3's default (AES, PBKDF2) or a wrong password stops the
/// backend's start naming the key and saying how to convert it; a key
/// without its chain, or a chain that is not the key's, is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_comes_from_pem_or_pkcs12_and_a_file_that_cannot_be_used_stops_the_start_with_words() -> Result<()> {
    use shomei_backend::documents::signing::{FileSigner, PdfSealer, Sealers, SigningConfig, SigningKeyConfig, TimeStamper};
    let pki = TestPki::make()?;
    let d = pki.dir.path();
    openssl_in(d, &["pkcs12", "-export", "-legacy", "-inkey", "signer.key", "-in", "signer.pem", "-certfile", "root.pem", "-out", "legacy.p12", "-passout", "pass:p12-secret"])?;
    openssl_in(d, &["pkcs12", "-export", "-inkey", "signer.key", "-in", "signer.pem", "-certfile", "root.pem", "-out", "modern.p12", "-passout", "pass:p12-secret"])?;
    std::fs::write(d.join("p12.pass"), "p12-secret\n")?;
    std::fs::write(d.join("wrong.pass"), "not-it\n")?;
    let p12 = |file: &str, pass: &str| SigningKeyConfig { university: 1, pkcs12_file: Some(d.join(file)), pkcs12_password_file: Some(d.join(pass)), ..Default::default() };
    let config = |key: SigningKeyConfig| SigningConfig { keys: vec![key], ..pki.signing_config().expect("the test PKI's configuration") };

    // the classic PKCS#12 signs, and pdfsig trusts it
    let sealers = Sealers::load(&config(p12("legacy.p12", "p12.pass"))).map_err(anyhow::Error::msg)?;
    let sealer: &PdfSealer = sealers.of(1).context("university 1 has a key")?;
    let b = Backend::start(None).await?;
    let (_, pdf) = printed_certificate(&b, "p12").await?;
    let signed = sealer.sign(&pdf, "test", "Shomei University").await?;
    let said = pki.pdfsig(&signed)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted."), "{said}");
    let (ok, report) = pki.pyhanko(&signed)?;
    assert!(ok && report.contains("The signature is judged VALID."), "{report}");

    // what cannot be used stops the start, naming the key and what to do
    let modern = Sealers::load(&config(p12("modern.p12", "p12.pass"))).err().context("an AES PKCS#12 is refused")?;
    assert!(modern.contains("documents.signing.keys[0] (university 1)") && modern.contains("-legacy"), "{modern}");
    let wrong = Sealers::load(&config(p12("legacy.p12", "wrong.pass"))).err().context("a wrong password is refused")?;
    assert!(wrong.contains("password is wrong"), "{wrong}");
    let no_chain = SigningKeyConfig { university: 1, key_file: pki.key_config()?.key_file, ..Default::default() };
    let said = Sealers::load(&config(no_chain)).err().context("a key without its chain")?;
    assert!(said.contains("key_file and chain_file"), "{said}");
    let foreign = std::fs::read_to_string(d.join("root.pem"))?;
    let said = FileSigner::from_pem(&pki.key_pem, &foreign).err().context("a chain that is not the key's")?.to_string();
    assert!(said.contains("no certificate in the chain is the key's own"), "{said}");
    let said = Sealers::load(&SigningConfig { tsa_url: String::new(), keys: vec![pki.key_config()?], ..Default::default() }).err().context("no TSA")?;
    assert!(said.contains("documents.signing.tsa_url"), "{said}");
    // (a TSA that cannot be reached: the signing says so, nothing is signed)
    let away = PdfSealer { signer: sealer.signer.clone(), stamper: TimeStamper::new(&format!("http://127.0.0.1:{}/", free_port()), Duration::from_secs(2)) };
    let err = away.sign(&pdf, "test", "Shomei University").await.err().context("no TSA, no signature")?;
    assert!(err.to_string().contains("time-stamp authority"), "{err}");
    Ok(())
}

/// PAdES B-LT: where the chains name their certificate revocation lists
/// (here the test root's, served on loopback), the graduate's signed copy
/// carries them with the chains' certificates in its document security
/// store, after the signature. With the CA's service gone, pyHanko's AdES
/// validation (revocation data required for both chains) finds the
/// signature and its time-stamp valid from what the PDF carries, pdfsig
/// still finds it valid and trusted, and the verification page recognises
/// the file as issued and unchanged. The same certificate signed where no
/// list is named stays B-T, which the AdES validation refuses for want of
/// revocation data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_certificate_carries_its_revocation_data_and_validates_for_the_long_term_with_the_cas_service_gone() -> Result<()> {
    let (pki, crl) = TestPki::make_with(Revocation::Crl).await?;
    let smartpit = HttpSim::smartpit()?;
    let (b, user, order) = paid_digital_order(&pki, None, &smartpit).await?;
    let signed = user.get(format!("{}/orders/{order}/digital.pdf", b.url)).send().await?.bytes().await?.to_vec();
    // fetched once while signing: the time-stamp authority's certificate names the same list, kept meanwhile
    assert_eq!(crl.served.load(std::sync::atomic::Ordering::SeqCst), 1, "the list was fetched while signing, once");
    let tail = String::from_utf8_lossy(&signed[signed.len() - 4000.min(signed.len())..]).to_string();
    assert!(tail.contains("/Type /DSS") && tail.contains("/CRLs [") && tail.contains("/Certs ["), "a document security store after the signature");
    crl.stop();
    anyhow::ensure!(reqwest::get(&crl.url).await.is_err(), "the CA's service still answers");
    let (ok, report) = pki.pyhanko_ades(&signed)?;
    assert!(ok && report.contains("The signature is judged VALID.") && report.contains("The TSA certificate is trusted."), "long-term validation from what the PDF carries: {report}");
    assert!(report.contains("All modifications relate to signature maintenance"), "the store is an update pyHanko accepts: {report}");
    let said = pki.pdfsig(&signed)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted."), "{said}");
    let (s, result, page) = drop_pdf(&b, &signed).await?;
    assert_eq!((s, result.as_str()), (200, "genuine"), "{page}");
    assert!(page.contains("unchanged since it was issued"), "{page}");

    // without revocation lists named: B-T, which the AdES validation refuses
    let plain = TestPki::make()?;
    let (_, pdf) = printed_certificate(&b, "ltv").await?;
    let bt = plain.sealer()?.sign(&pdf, "test", "Shomei University").await?;
    assert!(!String::from_utf8_lossy(&bt).contains("/Type /DSS"));
    let (ok, report) = plain.pyhanko_ades(&bt)?;
    assert!(!ok && report.contains("no revocation information could be found"), "no revocation data, no long-term validation: {report}");
    let (ok, report) = plain.pyhanko(&bt)?;
    assert!(ok, "a valid B-T signature all the same: {report}");
    Ok(())
}

/// PAdES B-LT from OCSP: where the certificates name an OCSP responder
/// (OpenSSL's own, answering from the test CA's index) and no list, the
/// signed certificate carries the responder's answers (the signer's asked
/// before signing, the time-stamp authority's after), checked when asked
/// (the responder's signature, our nonce), in its document security store.
/// With the responder gone, pyHanko's AdES validation at the time of
/// signing finds the signature and its time-stamp valid from those answers,
/// and the same validation after the answers' next update (five minutes)
/// refuses it, so the answers are what carried it. pdfsig, which asks the
/// responder itself (it reads no store), finds it valid and trusted while
/// the responder answers. (pyHanko's validation as of now asks more of an OCSP
/// answer than one made at the signing: that the revocation data postdate
/// the signature by its own freshness window, which a CA's responder
/// answers given later, or a document time-stamp, provide.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_certificate_carries_ocsp_answers_where_its_ca_runs_a_responder() -> Result<()> {
    let (pki, responder) = TestPki::make_with(Revocation::Ocsp).await?;
    let b = Backend::start(None).await?;
    let (_, pdf) = printed_certificate(&b, "ocsp").await?;
    let signed = pki.sealer()?.sign(&pdf, "test", "Shomei University").await?;
    let signed_at = chrono::Utc::now();
    assert_eq!(responder.served.load(std::sync::atomic::Ordering::SeqCst), 2, "the signer's and the authority's status were asked, once each");
    let tail = String::from_utf8_lossy(&signed[signed.len() - 4000.min(signed.len())..]).to_string();
    assert!(tail.contains("/Type /DSS") && tail.contains("/OCSPs [") && !tail.contains("/CRLs ["), "OCSP answers, no list: {tail}");
    // pdfsig (NSS) asks the responder itself, while it answers
    let said = pki.pdfsig(&signed)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted."), "{said}");
    responder.stop();
    let at = |d: chrono::Duration| (signed_at + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (ok, report) = pki.pyhanko_ades_at(&signed, &at(chrono::Duration::seconds(1)))?;
    assert!(ok && report.contains("The signature is judged VALID.") && report.contains("The TSA certificate is trusted."), "{report}");
    let (ok, report) = pki.pyhanko_ades_at(&signed, &at(chrono::Duration::minutes(10)))?;
    assert!(!ok && report.contains("revocation"), "past the answers' next update: {report}");
    Ok(())
}

/// The time-stamp authority's answer is checked, not trusted: a token
/// whose signature does not verify (the authority's answer altered on the
/// way) is refused, and so is a well-signed token from an authority the
/// configuration does not trust (documents.signing.tsa_trust_file names the
/// document CA, not the TSA's); nothing is signed either way. A trust file
/// with no certificate stops the start with words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_stamp_that_does_not_verify_or_comes_from_an_untrusted_authority_is_refused_and_nothing_is_signed() -> Result<()> {
    use shomei_backend::documents::signing::{PdfSealer, Sealers, SigningConfig, TimeStamper};
    let pki = TestPki::make()?;
    let b = Backend::start(None).await?;
    let (_, pdf) = printed_certificate(&b, "tsa-check").await?;
    let sealer = pki.sealer()?;
    let signed = sealer.sign(&pdf, "test", "Shomei University").await?;
    let said = pki.pdfsig(&signed)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted."), "the trusted authority: {said}");
    let (ok, report) = pki.pyhanko(&signed)?;
    assert!(ok && report.contains("The signature is judged VALID."), "{report}");

    // the answer altered on the way: its signature does not verify
    let r = pki.tsa.knob("/sim/tamper", serde_json::json!({ "on": true })).await?;
    assert_eq!(r["tamper"], true, "{r}");
    let err = sealer.sign(&pdf, "test", "Shomei University").await.err().context("an altered token is refused")?;
    assert!(err.to_string().contains("does not verify with the signer's certificate"), "{err}");
    pki.tsa.knob("/sim/tamper", serde_json::json!({ "on": false })).await?;
    sealer.sign(&pdf, "test", "Shomei University").await.context("the authority's own answers are taken again")?;

    // a well-signed token from an authority not trusted here
    let strangers = PdfSealer {
        signer: sealer.signer.clone(),
        stamper: TimeStamper::new(&pki.tsa.url, Duration::from_secs(10)).trusting_file(&pki.dir.path().join("root.pem")).map_err(anyhow::Error::msg)?,
    };
    let err = strangers.sign(&pdf, "test", "Shomei University").await.err().context("an untrusted authority is refused")?;
    assert!(err.to_string().contains("is not issued by a trusted one"), "{err}");

    // a trust file with no certificate in it stops the start
    let empty = pki.dir.path().join("empty.pem");
    std::fs::write(&empty, "")?;
    let said = Sealers::load(&SigningConfig { tsa_trust_file: Some(empty), ..pki.signing_config()? }).err().context("an empty trust file is refused")?;
    assert!(said.contains("documents.signing.tsa_trust_file") && said.contains("no certificate"), "{said}");
    Ok(())
}

/// A backend that signs digital certificates for the first university with
/// the test PKI's key and its TSA, Smart Pit simulated.
async fn signing_backend(pki: &TestPki, smtp: Option<u16>, smartpit: &HttpSim) -> Result<Backend> {
    let (sp_url, signing) = (smartpit.url.clone(), pki.signing_config()?);
    Backend::start_with(smtp, move |c| {
        c.smartpit.base_url = sp_url;
        c.documents.signing = signing;
    })
    .await
}

/// A backend that signs digital certificates (the test PKI's key, its TSA),
/// the demo graduate logged in, and their English certificate of graduation
/// ordered as a signed PDF and paid in cash: (backend, the graduate's client, order id).
async fn paid_digital_order(pki: &TestPki, smtp: Option<u16>, smartpit: &HttpSim) -> Result<(Backend, reqwest::Client, String)> {
    let b = signing_backend(pki, smtp, &smartpit).await?;
    let user = Backend::client();
    crate::accounts::portal_login(&b, &user, shomei_backend::demo::GRADUATE_EMAIL, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    let english = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation_en'")?;
    let field = format!("copies_{english}");
    let (s, _, page) = crate::accounts::post_form(&user, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url),
        &[("student_record_id", "1"), (field.as_str(), "1"), ("delivery", "digital"), ("payment_method", "smartpit")]).await?;
    anyhow::ensure!(s == 200, "{page}");
    let number = element_text(&page, "smartpit-number").context("payment number")?;
    let r = smartpit.knob("/sim/pay", serde_json::json!({ "payment_number": number, "url": format!("{}/smartpit/notice", b.url) })).await?;
    anyhow::ensure!(r["delivered_status"] == 200, "{r}");
    let order = b.sql("SELECT id FROM orders WHERE delivery = 'digital' AND status = 'paid'")?;
    Ok((b, user, order))
}

/// An Ed25519 signature checked by OpenSSL (an implementation independent of
/// the backend's): whether `sig` signs `input` under the raw public key `x`.
fn openssl_ed25519_verifies(dir: &std::path::Path, x: &[u8], input: &[u8], sig: &[u8]) -> Result<bool> {
    use base64::Engine as _;
    let mut der = hex::decode("302a300506032b6570032100")?;
    der.extend_from_slice(x);
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", base64::engine::general_purpose::STANDARD.encode(&der));
    std::fs::write(dir.join("issuer.pem"), pem)?;
    std::fs::write(dir.join("input.bin"), input)?;
    std::fs::write(dir.join("sig.bin"), sig)?;
    let out = Command::new("openssl").args(["pkeyutl", "-verify", "-pubin", "-inkey", "issuer.pem", "-rawin", "-in", "input.bin", "-sigfile", "sig.bin"]).current_dir(dir).output()?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"))
}

/// The machine-readable twin: each digital certificate is also a W3C
/// Verifiable Credential 2.0 (an Open Badges 3.0 OpenBadgeCredential) stating
/// the registrar's records, secured as a vc+jwt with the university's
/// published Ed25519 key. It is attached inside the signed PDF (poppler's
/// pdfdetach finds it; the PDF signature, over it too, stays valid) and
/// downloadable, the same bytes; OpenSSL verifies its signature against the
/// key the verification page and the issuer profile publish, and refuses it
/// once altered; its status link says valid, then revoked once staff revoke
/// the certificate. A recipient's copy carries its own, naming the recipient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_machine_readable_twin_is_a_verifiable_credential_in_the_signed_pdf_that_openssl_verifies_with_the_published_key() -> Result<()> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pki = TestPki::make()?;
    let smartpit = HttpSim::smartpit()?;
    let smtp = Smtp::start()?;
    let (b, user, order) = paid_digital_order(&pki, Some(smtp.port), &smartpit).await?;
    let order_url = format!("{}/orders/{order}", b.url);
    let own = user.get(format!("{order_url}/digital.pdf")).send().await?.bytes().await?.to_vec();
    let said = pki.pdfsig(&own)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Total document signed"), "the signature covers the attachment: {said}");
    let (ok, report) = pki.pyhanko(&own)?;
    assert!(ok && report.contains("The signature is judged VALID."), "{report}");
    let (serial, code, holder) = {
        let row = b.sql(&format!(
            "SELECT c.serial || '|' || c.verification_code || '|' || r.name_roman FROM certificates c JOIN order_lines l ON l.id = c.order_line_id
             JOIN orders o ON o.id = l.order_id JOIN student_records r ON r.id = o.student_record_id WHERE o.id = {order}"
        ))?;
        let v: Vec<&str> = row.split('|').collect();
        anyhow::ensure!(v.len() == 3, "{row}");
        (v[0].to_string(), v[1].to_string(), v[2].to_string())
    };

    // attached in the PDF, as poppler sees it
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("own.pdf"), &own)?;
    let list = Command::new("pdfdetach").arg("-list").arg(dir.path().join("own.pdf")).output()?;
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.contains("1 embedded files") && list.contains(&format!("{serial}.vc.jwt")), "{list}");
    let saved = dir.path().join("attached.jwt");
    let ok = Command::new("pdfdetach").args(["-save", "1", "-o"]).arg(&saved).arg(dir.path().join("own.pdf")).status()?;
    anyhow::ensure!(ok.success(), "pdfdetach -save");
    let attached = std::fs::read_to_string(&saved)?;
    // and downloadable: the same bytes
    let r = user.get(format!("{order_url}/credentials/{serial}")).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vc+jwt");
    assert_eq!(r.text().await?, attached);

    // a compact JWS: its header names the published key, its payload the registrar's records
    let parts: Vec<&str> = attached.split('.').collect();
    assert_eq!(parts.len(), 3, "{attached}");
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(parts[0])?)?;
    assert_eq!((header["alg"].as_str(), header["typ"].as_str(), header["cty"].as_str()), (Some("EdDSA"), Some("vc+jwt"), Some("vc")), "{header}");
    let vc: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1])?)?;
    assert_eq!(vc["@context"][0], "https://www.w3.org/ns/credentials/v2", "{vc}");
    assert_eq!(vc["type"], serde_json::json!(["VerifiableCredential", "OpenBadgeCredential"]));
    assert_eq!(vc["credentialSubject"]["name"].as_str(), Some(holder.as_str()));
    assert_eq!(vc["credentialSubject"]["achievement"]["name"].as_str(), Some("Certificate of Graduation (English)"));
    assert_eq!(vc["id"].as_str(), Some(format!("urn:shomei:certificate:{serial}").as_str()));
    assert!(vc.get("termsOfUse").is_none(), "the graduate's own names no recipient");
    let jwks: serde_json::Value = reqwest::get(format!("{}/verify/keys.json", b.url)).await?.json().await?;
    let key = jwks["keys"].as_array().and_then(|k| k.iter().find(|k| k["kid"] == header["kid"])).context("the header's key is published")?.clone();
    let issuer: serde_json::Value = reqwest::get(vc["issuer"]["id"].as_str().context("issuer id")?).await?.json().await?;
    assert_eq!(issuer["name"], "Shomei University");
    assert_eq!(issuer["verificationMethod"][0]["publicKeyJwk"]["x"], key["x"], "the issuer profile publishes the same key");

    // OpenSSL verifies the signature with the published key, and refuses an altered credential
    let x = b64.decode(key["x"].as_str().context("x")?)?;
    let input = format!("{}.{}", parts[0], parts[1]);
    let sig = b64.decode(parts[2])?;
    assert!(openssl_ed25519_verifies(dir.path(), &x, input.as_bytes(), &sig)?, "OpenSSL verifies the credential");
    let mut forged = vc.clone();
    forged["credentialSubject"]["name"] = serde_json::json!("SOMEONE Else");
    let forged_input = format!("{}.{}", parts[0], b64.encode(serde_json::to_vec(&forged)?));
    assert!(!openssl_ed25519_verifies(dir.path(), &x, forged_input.as_bytes(), &sig)?, "an altered credential does not verify");

    // its status is the certificate's
    let status_url = vc["credentialStatus"]["id"].as_str().context("status")?.to_string();
    assert_eq!(status_url, format!("{}/verify/status?code={code}", b.url));
    let status: serde_json::Value = reqwest::get(&status_url).await?.json().await?;
    assert_eq!(status["status"], "valid", "{status}");

    // a recipient's copy carries its own credential, naming the recipient
    let (s, _, page) = crate::accounts::post_form(&user, &order_url, &format!("{order_url}/shares"),
        &[("recipient_org", "Kita Trading"), ("recipient_name", "Ichiro Suzuki"), ("recipient_email", "hr@kita-trading.example"), ("days", ""), ("downloads", "")]).await?;
    assert_eq!(s, 200, "{page}");
    let mail = smtp.wait_for_mail_with("hr@kita-trading.example", "A digital certificate was submitted to you", MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/shared/", b.url)).context("the share link")?;
    let theirs = reqwest::get(format!("{link}/credentials/{serial}")).await?;
    assert_eq!(theirs.status(), 200);
    let theirs = theirs.text().await?;
    let p: Vec<&str> = theirs.split('.').collect();
    anyhow::ensure!(p.len() == 3, "{theirs}");
    let their_vc: serde_json::Value = serde_json::from_slice(&b64.decode(p[1])?)?;
    assert_eq!(their_vc["termsOfUse"][0]["submittedTo"].as_str(), Some("Kita Trading\u{3000}Ichiro Suzuki"), "{their_vc}");
    assert!(openssl_ed25519_verifies(dir.path(), &x, format!("{}.{}", p[0], p[1]).as_bytes(), &b64.decode(p[2])?)?, "OpenSSL verifies the recipient's credential");
    let copy = reqwest::Client::new().post(format!("{link}/certificate.pdf")).send().await?.bytes().await?;
    std::fs::write(dir.path().join("copy.pdf"), &copy)?;
    let ok = Command::new("pdfdetach").args(["-save", "1", "-o"]).arg(dir.path().join("theirs.jwt")).arg(dir.path().join("copy.pdf")).status()?;
    anyhow::ensure!(ok.success(), "pdfdetach -save on the recipient's copy");
    assert_eq!(std::fs::read_to_string(dir.path().join("theirs.jwt"))?, theirs, "the recipient's PDF carries the recipient's credential");

    // staff revoke the certificate: the status says so
    let staff = b.staff_client().await?;
    let certificate = b.sql(&format!("SELECT c.id FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE l.order_id = {order}"))?;
    let (s, _, page) = crate::accounts::post_form(&staff, &format!("{}/admin/orders/{order}", b.url), &format!("{}/admin/certificates/{certificate}/revoke", b.url), &[("reason", "issued in error")]).await?;
    assert_eq!(s, 200, "{page}");
    let status: serde_json::Value = reqwest::get(&status_url).await?.json().await?;
    assert_eq!(status["status"], "revoked", "{status}");
    Ok(())
}

/// Stored value pays a digital certificate too: ordered "IC card", the order
/// page offers the graduate's linked cards with their balances; a balance
/// too low is told (how much is missing) and nothing is debited; paid, the
/// card is debited the order's total exactly once, the order is paid, the
/// graduate is mailed, and the signed PDF can be downloaded; paying again
/// debits nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digital_certificate_is_paid_from_a_cards_balance_once_and_a_short_balance_is_told_with_nothing_debited() -> Result<()> {
    use shomei_backend::demo;
    let pki = TestPki::make()?;
    let signing = pki.signing_config()?;
    let b = Backend::start_with(None, move |c| {
        c.documents.signing = signing;
    })
    .await?;
    let user = Backend::client();
    crate::accounts::portal_login(&b, &user, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    let english = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation_en'")?;
    let field = format!("copies_{english}");
    let (s, path, page) = crate::accounts::post_form(&user, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url),
        &[("student_record_id", "1"), (field.as_str(), "1"), ("delivery", "digital"), ("payment_method", "card")]).await?;
    assert_eq!(s, 200, "{page}");
    let order = path.trim_start_matches("/orders/").to_string();
    let total: i64 = b.sql(&format!("SELECT total FROM orders WHERE id = {order}"))?.parse()?;
    assert!(page.contains("id=\"pay-balance-form\"") && page.contains(demo::CARD_UID) && page.contains("From an IC card"), "{page}");
    let balance = |b: &Backend| -> Result<i64> { Ok(b.sql(&format!("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE card_uid = '{}'", demo::CARD_UID))?.parse()?) };
    let before = balance(&b)?;
    let order_url = format!("{}/orders/{order}", b.url);
    let pay_url = format!("{order_url}/pay-balance");
    let pay = || crate::accounts::post_form(&user, &order_url, &pay_url, &[("card_uid", demo::CARD_UID)]);

    // the balance made short (spent elsewhere): told, nothing debited, still unpaid
    let spend = before - total + 100;
    b.sql(&format!("INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', {}, 'debit', 1)", demo::CARD_UID, -spend))?;
    let (s, _, page) = pay().await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("balance is too low") && page.contains("¥100 short"), "{page}");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM ledger WHERE order_id = {order}"))?, "0");
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {order}"))?, "awaiting_payment");
    // someone else's card number: refused with words
    let (s, _, page) = crate::accounts::post_form(&user, &order_url, &format!("{order_url}/pay-balance"), &[("card_uid", "0000000000000000")]).await?;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("Choose one of your linked, usable IC cards"), "{page}");

    // topped up again (the spending undone): paid once, the total debited exactly
    b.sql(&format!("DELETE FROM ledger WHERE card_uid = '{}' AND created_at = 1", demo::CARD_UID))?;
    let (s, _, page) = pay().await?;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Paid from your card") && page.contains("id=\"digital-download\""), "{page}");
    assert_eq!(balance(&b)?, before - total, "debited the order's total");
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {order}"))?, "paid");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM outbox WHERE to_addr = '{}' AND subject LIKE '%Your digital certificate is ready%'", demo::GRADUATE_EMAIL))?, "1");
    let (s, _, page) = pay().await?;
    assert_eq!(s, 400, "paying again is refused: {page}");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM ledger WHERE order_id = {order}"))?, "1", "one debit");
    assert_eq!(balance(&b)?, before - total);
    let pdf = user.get(format!("{order_url}/digital.pdf")).send().await?.bytes().await?;
    let said = pki.pdfsig(&pdf)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted."), "{said}");
    let (ok, report) = pki.pyhanko(&pdf)?;
    assert!(ok && report.contains("The signature is judged VALID."), "{report}");
    Ok(())
}

/// Each share mails someone outside the service: a graduate sends at most
/// 20 copies an hour. The 21st is refused with words (when to try again),
/// and nothing is made or mailed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graduate_sends_at_most_twenty_copies_an_hour_and_the_next_is_refused_with_words() -> Result<()> {
    let pki = TestPki::make()?;
    let smartpit = HttpSim::smartpit()?;
    let (b, user, order) = paid_digital_order(&pki, None, &smartpit).await?;
    let order_url = format!("{}/orders/{order}", b.url);
    let share_url = format!("{order_url}/shares");
    for i in 0..20 {
        let email = format!("hr{i}@example.com");
        let (s, _, page) = crate::accounts::post_form(&user, &order_url, &share_url,
            &[("recipient_org", "Kita Trading"), ("recipient_name", "Ichiro Suzuki"), ("recipient_email", email.as_str()), ("days", ""), ("downloads", "")]).await?;
        assert_eq!(s, 200, "share {i}: {page}");
    }
    let (s, _, page) = crate::accounts::post_form(&user, &order_url, &share_url,
        &[("recipient_org", "Kita Trading"), ("recipient_name", "Ichiro Suzuki"), ("recipient_email", "hr20@example.com"), ("days", ""), ("downloads", "")]).await?;
    assert_eq!(s, 429, "{page}");
    assert!(page.contains("at most 20 copies an hour") && page.contains("1時間に作れる写しは20件まで"), "{page}");
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM digital_copies WHERE order_id = {order} AND recipient_email IS NOT NULL"))?, "20");
    assert_eq!(b.sql("SELECT COUNT(*) FROM outbox WHERE to_addr = 'hr20@example.com'")?, "0");
    assert_eq!(b.sql("SELECT COUNT(*) FROM outbox WHERE to_addr LIKE 'hr%@example.com'")?, "20");
    Ok(())
}

/// A digital order refunded by staff ends every share at once: the
/// recipient's page says so and no longer shows whose certificate it was,
/// the copy cannot be downloaded, and a copy downloaded before, dropped on
/// the verification page, is told apart as issued here but no longer valid.
/// A hostile PDF (a byte range built to overflow) is answered, not crashed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_ends_every_share_and_a_dropped_copy_is_no_longer_valid() -> Result<()> {
    let pki = TestPki::make()?;
    let smartpit = HttpSim::smartpit()?;
    let smtp = Smtp::start()?;
    let (b, user, order) = paid_digital_order(&pki, Some(smtp.port), &smartpit).await?;
    let order_url = format!("{}/orders/{order}", b.url);
    let (s, _, page) = crate::accounts::post_form(&user, &order_url, &format!("{order_url}/shares"),
        &[("recipient_org", "Kita Trading"), ("recipient_name", "Ichiro Suzuki"), ("recipient_email", "hr@kita-trading.example"), ("days", ""), ("downloads", "")]).await?;
    assert_eq!(s, 200, "{page}");
    let mail = smtp.wait_for_mail_with("hr@kita-trading.example", "A digital certificate was submitted to you", MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/shared/", b.url)).context("the link")?;
    let copy = reqwest::Client::new().post(format!("{link}/certificate.pdf")).send().await?.bytes().await?.to_vec();
    let (s, result, _) = drop_pdf(&b, &copy).await?;
    assert_eq!((s, result.as_str()), (200, "genuine"));
    let holder = b.sql(&format!("SELECT r.name_roman FROM orders o JOIN student_records r ON r.id = o.student_record_id WHERE o.id = {order}"))?;
    assert!(reqwest::get(&link).await?.text().await?.contains(&holder), "while valid, the page says whose it is");

    // staff refund the order
    let staff = b.staff_client().await?;
    let (s, _, page) = crate::accounts::post_form(&staff, &format!("{}/admin/orders/{order}", b.url), &format!("{}/admin/orders/{order}/refund", b.url), &[("reason", "Ordered by mistake")]).await?;
    assert_eq!(s, 200, "{page}");
    assert_eq!(b.sql(&format!("SELECT status FROM orders WHERE id = {order}"))?, "cancelled");
    let ended = reqwest::get(&link).await?;
    assert_eq!(ended.status(), 410);
    let ended = ended.text().await?;
    assert_eq!(element_attr(&ended, "share-state", "data-state").as_deref(), Some("revoked"), "{ended}");
    assert!(!ended.contains(&holder) && !ended.contains("id=\"download\""), "an ended link shows whose it was no more: {ended}");
    assert_eq!(reqwest::Client::new().post(format!("{link}/certificate.pdf")).send().await?.status(), 410);
    let (s, result, page) = drop_pdf(&b, &copy).await?;
    assert_eq!((s, result.as_str()), (200, "genuine"), "{page}");
    assert!(page.contains("But this certificate has been revoked"), "{page}");

    // hostile files: an answer, never a crash
    for hostile in [&b"%PDF /ByteRange ] [0 1 2 3"[..], b"%PDF /ByteRange [0 18446744073709551615 0 5] <>", b"%PDF-1.7\n/ByteRange [0 0 0 0]"] {
        let (s, result, page) = drop_pdf(&b, hostile).await?;
        assert_eq!((s, result.as_str()), (422, "unknown"), "{page}");
    }
    Ok(())
}

// ------------------------------------------------------------------ graduation day

/// The registrar's register lines of a cohort graduating on 2024-03-25 in
/// the Faculty of Letters (the demo graduate, L19-0042, graduated that day
/// too): four with accounts here, one without, and one of the same day in
/// the Faculty of Science.
const COHORT: &[(&str, &str, &str, Option<&str>)] = &[
    ("L19-0101", "青木 一郎", "AOKI Ichiro", Some("aoki@example.ac.jp")),
    ("L19-0102", "石川 二郎", "ISHIKAWA Jiro", Some("ishikawa@example.ac.jp")),
    ("L19-0103", "上田 三奈", "UEDA Mina", Some("ueda@example.ac.jp")),
    ("L19-0104", "遠藤 四季", "ENDO Shiki", None),
];

fn cohort_register_lines() -> String {
    let mut lines: Vec<String> = COHORT
        .iter()
        .map(|(no, kanji, roman, _)| format!("{no},{kanji},カナ,{roman},2001-05-05,LET,JLIT,学士（文学）,Bachelor of Arts,2020-04-01,2024-03-25,graduated"))
        .collect();
    lines.push("S19-0201,北村 理子,キタムラ リコ,KITAMURA Riko,2001-06-06,SCI,MATH,学士（理学）,Bachelor of Science,2020-04-01,2024-03-25,graduated".into());
    lines.join("\n")
}

/// An account for a graduate holding `student_no` (as an approved registration leaves it).
fn account_for(b: &Backend, email: &str, student_no: &str, kanji: &str, roman: &str) -> Result<String> {
    let user = b.sql(&format!("INSERT INTO users (email, kind, password_hash, created_at) VALUES ('{email}', 'graduate', 'x', 0) RETURNING id"))?;
    b.sql(&format!(
        "INSERT INTO student_records (user_id, university_id, faculty_id, department_id, student_no, name_kanji, name_kana, name_roman, birth_date, leaving_type, graduation_date)
         VALUES ({user}, 1, 1, 1, '{student_no}', '{kanji}', 'カナ', '{roman}', '', 'graduated', '2024-03-25')"
    ))?;
    Ok(user)
}

/// A backend that signs (a graduate whose try failed is tried again after
/// `retry_s`, or the default), the cohort's register imported and an
/// account for each graduate of [`COHORT`] who has one: (backend, their
/// addresses with the demo graduate's, the English certificate's type id).
async fn cohort_backend(pki: &TestPki, smtp: &Smtp, retry_s: Option<u64>) -> Result<(Backend, Vec<String>, String)> {
    let signing = pki.signing_config()?;
    let b = Backend::start_with(Some(smtp.port), move |c| {
        c.documents.signing = signing;
        if let Some(s) = retry_s {
            c.orders.cohort_retry_s = s;
        }
    })
    .await?;
    let (s, page) = crate::accounts::import_register(&b, &cohort_register_lines()).await?;
    anyhow::ensure!(s == 200, "the register import: {page}");
    let mut emails = vec![shomei_backend::demo::GRADUATE_EMAIL.to_string()];
    for (no, kanji, roman, email) in COHORT {
        if let Some(email) = email {
            account_for(&b, email, no, kanji, roman)?;
            emails.push(email.to_string());
        }
    }
    let english = b.sql("SELECT id FROM certificate_types WHERE code = 'graduation_en'")?;
    Ok((b, emails, english))
}

/// The registrar (`staff`, logged in) issues the English certificate
/// (`english`) to the Faculty of Letters' graduates of 2024-03-25 (the panel's form, posted): the new
/// run's id and the page it was followed to.
async fn issue_to_cohort(b: &Backend, staff: &reqwest::Client, english: &str) -> Result<(String, String)> {
    let url = format!("{}/admin/graduation", b.url);
    let csrf = crate::accounts::csrf_of(&staff, &url).await?;
    let r = staff.post(&url).form(&[("csrf", csrf.as_str()), ("certificate_type_id", english), ("graduation_date", "2024-03-25"), ("faculty_code", "LET")]).send().await?;
    anyhow::ensure!(r.status() == 200, "followed to the run's page: {}", r.status());
    let page = r.url().to_string();
    Ok((b.sql("SELECT MAX(id) FROM cohort_runs")?, page))
}

/// Waits until the run has nothing left to issue.
fn run_finished(b: &Backend, run: &str) -> Result<()> {
    wait_until("the run finished", Duration::from_secs(60), || {
        b.sql(&format!("SELECT finished_at IS NOT NULL FROM cohort_runs WHERE id = {run}")).is_ok_and(|f| f == "1" || f == "t")
    })
}

/// Waits until every mail queued has been handed to the SMTP server.
fn mail_all_sent(b: &Backend) -> Result<()> {
    wait_until("the outbox sent", MAIL_WAIT, || b.sql("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").is_ok_and(|n| n == "0"))
}

/// Graduation day in the registrar's browser: they choose the English
/// certificate of graduation, the date and the Faculty of Letters, and issue
/// in one action. The run's page shows a progress bar that reaches every
/// graduate with an account (4 of 4: the demo graduate and three more) and
/// lists the one with no account; the Faculty of Science graduate of the
/// same day is not in the run. Each graduate gets exactly one mail, and the
/// demo graduate downloads their certificate from the mailed link, a PDF
/// signed by the university that pdfsig finds valid and trusted, at no
/// charge. Issuing the cohort again issues no one twice (no second order,
/// no second mail); once the fifth graduate has an account, the next run
/// issues theirs alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrar_issues_a_cohorts_certificates_in_one_action_with_a_progress_bar_and_each_graduate_is_mailed_once() -> Result<()> {
    use fantoccini::Locator;
    let pki = TestPki::make()?;
    let smtp = Smtp::start()?;
    let (b, mut emails, english) = cohort_backend(&pki, &smtp, None).await?;
    account_for(&b, "kitamura@example.ac.jp", "S19-0201", "北村 理子", "KITAMURA Riko")?;

    let browser = Browser::start().await?;
    let w = &browser.client;
    browser.log_in_as_demo_staff(&b).await?;
    w.find(Locator::Css("nav.menu a[href='/admin/graduation']")).await?.click().await?;
    let cohorts = browser.wait_id("cohorts").await?.text().await?;
    assert!(cohorts.contains("2024-03-25") && cohorts.contains("Science"), "the register's cohorts: {cohorts}");
    browser.check_page().await?;
    w.find(Locator::Id("certificate_type_id")).await?.select_by_value(&english).await?;
    w.find(Locator::Id("graduation_date")).await?.select_by_value("2024-03-25").await?;
    w.find(Locator::Id("faculty_code")).await?.select_by_value("LET").await?;
    w.find(Locator::Id("issue")).await?.click().await?;
    w.accept_alert().await?;
    // the run's page follows the run by itself to the end
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = browser.wait_id("run-status").await?.text().await.unwrap_or_default();
        if status.contains("Finished") {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < end, "the run did not finish: {}", browser.body_text().await?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bar = w.execute("const p = document.getElementById('progress'); return [p.value, p.max];", vec![]).await?;
    assert_eq!(bar, serde_json::json!([4, 4]), "the bar is full: every graduate with an account");
    assert_eq!(browser.wait_id("issued").await?.text().await?, "4");
    assert_eq!(browser.wait_id("count-no-account").await?.text().await?, "1");
    assert_eq!(browser.wait_id("count-failed").await?.text().await?, "0");
    let not_issued = browser.wait_id("not-issued").await?.text().await?;
    assert!(not_issued.contains("L19-0104") && not_issued.contains("No account here") && !not_issued.contains("L19-0101"), "{not_issued}");
    browser.check_page().await?;
    let run = b.sql("SELECT MAX(id) FROM cohort_runs")?;
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM cohort_items WHERE run_id = {run} AND student_no = 'S19-0201'"))?, "0", "another faculty's graduate");
    assert_eq!(b.sql("SELECT COUNT(*) FROM orders o JOIN student_records r ON r.id = o.student_record_id WHERE r.student_no = 'S19-0201'")?, "0");
    // one order each, digital, at no charge to the graduate, paid by the university
    assert_eq!(
        b.sql("SELECT COUNT(*) || '|' || SUM(total) || '|' || MIN(status) || MAX(status) || '|' || MIN(payment_method) || '|' || MIN(delivery) FROM orders WHERE payment_method = 'university'")?,
        "4|0|paidpaid|university|digital"
    );

    // each graduate is mailed once, with the link to their certificate
    mail_all_sent(&b)?;
    for email in &emails {
        let mails: Vec<String> = smtp.all_to(email).into_iter().filter(|m| m.contains("issued as a digital certificate")).collect();
        assert_eq!(mails.len(), 1, "{email}: {mails:?}");
    }
    let mail = smtp.wait_for_mail_with(shomei_backend::demo::GRADUATE_EMAIL, "issued as a digital certificate", MAIL_WAIT)?;
    assert!(mail.contains("free of charge") && mail.contains("料金はかかりません"), "{mail}");
    let link = link_in(&mail, &format!("{}/orders/", b.url)).context("the order link")?;
    let graduate = Backend::client();
    let (s, _, _) = crate::accounts::portal_login(&b, &graduate, shomei_backend::demo::GRADUATE_EMAIL, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!(s, 200);
    let order_page = graduate.get(&link).send().await?.text().await?;
    assert!(order_page.contains("Issued by the university (no charge)"), "the order page says who paid");
    let pdf = graduate.get(format!("{link}/digital.pdf")).send().await?.bytes().await?;
    let said = pki.pdfsig(&pdf)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted."), "{said}");
    let (ok, report) = pki.pyhanko(&pdf)?;
    assert!(ok && report.contains("The signature is judged VALID."), "{report}");

    // the same cohort again: no one is issued twice; the graduate with no account is listed again
    let staff = b.staff_client().await?;
    let (second, _) = issue_to_cohort(&b, &staff, &english).await?;
    assert_eq!(b.sql(&format!("SELECT state || ':' || student_no FROM cohort_items WHERE run_id = {second}"))?, "no_account:L19-0104");
    // once L19-0104 has an account, a third run issues theirs, and only theirs
    account_for(&b, "endo@example.ac.jp", "L19-0104", "遠藤 四季", "ENDO Shiki")?;
    let (third, _) = issue_to_cohort(&b, &staff, &english).await?;
    run_finished(&b, &third)?;
    assert_eq!(b.sql(&format!("SELECT state || ':' || student_no FROM cohort_items WHERE run_id = {third}"))?, "issued:L19-0104");
    assert_eq!(b.sql("SELECT COUNT(*) FROM orders WHERE payment_method = 'university'")?, "5");
    mail_all_sent(&b)?;
    emails.push("endo@example.ac.jp".into());
    for email in &emails {
        let mails = smtp.all_to(email).into_iter().filter(|m| m.contains("issued as a digital certificate")).count();
        assert_eq!(mails, 1, "{email}");
    }
    browser.close().await;
    Ok(())
}

// ------------------------------------------------------------------ digital transcripts


/// A transcript delivered digitally: the registrar allows it in the
/// catalogue; the graduate orders it as a signed PDF and pays in cash. Their
/// copy is the transcript (every course of the register's version, page n
/// of m) signed by the university: pdfsig and pyHanko find it valid, trusted
/// and time-stamped. A copy shared with an employer says on its last page
/// whom it was issued for, and is as valid; the graduate's own says no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_is_delivered_as_a_signed_pdf_and_a_recipients_copy_names_them_on_its_last_page() -> Result<()> {
    use crate::accounts::post_form;
    let pki = TestPki::make()?;
    let smtp = Smtp::start()?;
    let smartpit = HttpSim::smartpit()?;
    let b = signing_backend(&pki, Some(smtp.port), &smartpit).await?;
    let transcript = b.sql("SELECT id FROM certificate_types WHERE code = 'transcript'")?;
    // the registrar allows the transcript as a signed PDF in the catalogue
    let staff = b.staff_client().await?;
    let catalogue = staff.get(format!("{}/admin/catalogue", b.url)).send().await?.text().await?;
    let mut fields: Vec<(String, String)> = catalogue_fields(&catalogue, &transcript)?;
    fields.push(("digital".into(), "1".into()));
    let r = staff.post(format!("{}/admin/catalogue", b.url)).form(&fields).send().await?;
    assert!(r.status().is_success(), "{}", r.text().await?);
    assert_eq!(b.sql(&format!("SELECT digital || layout FROM certificate_types WHERE id = {transcript}"))?, "1transcript");

    let user = Backend::client();
    crate::accounts::portal_login(&b, &user, shomei_backend::demo::GRADUATE_EMAIL, shomei_backend::demo::GRADUATE_PASSWORD, shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
    let field = format!("copies_{transcript}");
    let (s, _, page) = post_form(&user, &format!("{}/orders/new", b.url), &format!("{}/orders", b.url),
        &[("student_record_id", "1"), (field.as_str(), "1"), ("delivery", "digital"), ("payment_method", "smartpit")]).await?;
    assert_eq!(s, 200, "{page}");
    let number = element_text(&page, "smartpit-number").context("payment number")?;
    let r = smartpit.knob("/sim/pay", serde_json::json!({ "payment_number": number, "url": format!("{}/smartpit/notice", b.url) })).await?;
    assert_eq!(r["delivered_status"], 200, "{r}");
    let order = b.sql("SELECT id FROM orders WHERE delivery = 'digital' AND status = 'paid'")?;
    let order_url = format!("{}/orders/{order}", b.url);
    let serial = b.sql(&format!("SELECT c.serial FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE l.order_id = {order}"))?;
    let courses: Vec<String> = b.sql("SELECT name_en FROM course_results WHERE student_no = 'L19-0042' ORDER BY name_en")?.lines().map(str::to_string).collect();
    assert!(courses.len() > 20, "the demo transcript's courses");

    let dir = tempfile::tempdir()?;
    let own = user.get(format!("{order_url}/digital.pdf")).send().await?.bytes().await?.to_vec();
    let said = pki.pdfsig(&own)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted.") && said.contains("Signature Validation: Signature is Valid"), "{said}");
    let (ok, report) = pki.pyhanko(&own)?;
    assert!(ok, "{report}");
    let text = pdf_text(dir.path(), &own)?;
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("Transcript") && flat.contains(&serial) && flat.contains("Page 1 of"), "{flat}");
    for course in &courses {
        assert!(flat.contains(course.as_str()), "the transcript lists {course}");
    }
    assert!(!flat.contains("Issued for submission to"), "the graduate's own copy names no recipient");

    // a copy for an employer: its last page names them, and it is as valid
    let (s, _, page) = post_form(&user, &order_url, &format!("{order_url}/shares"),
        &[("recipient_org", "Kita Trading Co., Ltd."), ("recipient_name", "Ichiro Suzuki"), ("recipient_email", "hr@kita-trading.example"), ("days", ""), ("downloads", "")]).await?;
    assert_eq!(s, 200, "{page}");
    let mail = smtp.wait_for_mail_with("hr@kita-trading.example", "A digital certificate was submitted to you", MAIL_WAIT)?;
    let link = link_in(&mail, &format!("{}/shared/", b.url)).context("the link")?;
    let copy = reqwest::Client::new().post(format!("{link}/certificate.pdf")).send().await?.bytes().await?.to_vec();
    let said = pki.pdfsig(&copy)?;
    assert!(said.contains("Signature is Valid.") && said.contains("Certificate is Trusted."), "{said}");
    let (ok, report) = pki.pyhanko(&copy)?;
    assert!(ok, "{report}");
    let text = pdf_text(dir.path(), &copy)?;
    let pages: Vec<&str> = text.split('\u{c}').filter(|p| !p.trim().is_empty()).collect();
    let last = pages.last().context("pages")?.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(last.contains("Issued for submission to") && last.contains("Kita Trading Co., Ltd. Ichiro Suzuki"), "the last page: {last}");
    assert!(pages.len() > 1 && !pages[0].contains("Issued for submission to"), "said once, on the last page");
    Ok(())
}

/// Graduation day while the time-stamp authority is out of service: the
/// run's graduates wait (their orders placed, nothing signed, nothing
/// mailed) and the run's page says why; they are tried again, and again,
/// without a second order. Once the authority answers, every graduate is
/// issued with one order and one mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graduation_day_waits_out_a_time_stamp_authority_outage_and_then_issues_each_graduate_once() -> Result<()> {
    let pki = TestPki::make()?;
    let smtp = Smtp::start()?;
    let (b, emails, english) = cohort_backend(&pki, &smtp, Some(1)).await?;
    let r = pki.tsa.knob("/sim/refuse", serde_json::json!({ "on": true })).await?;
    assert_eq!(r["refuse"], true, "{r}");

    let staff = b.staff_client().await?;
    let (run, run_url) = issue_to_cohort(&b, &staff, &english).await?;
    // tried twice each, still waiting: the orders placed once, nothing signed or mailed
    let tried_twice = format!("SELECT COUNT(*) FROM cohort_items WHERE run_id = {run} AND state = 'pending' AND attempts >= 2");
    wait_until("every graduate tried twice", Duration::from_secs(60), || b.sql(&tried_twice).is_ok_and(|n| n == "4"))?;
    assert_eq!(b.sql("SELECT COUNT(*) FROM orders WHERE payment_method = 'university'")?, "4", "one order each, not one per try");
    assert_eq!(b.sql("SELECT COUNT(*) FROM digital_copies")?, "0");
    assert_eq!(b.sql("SELECT COUNT(*) FROM outbox WHERE subject LIKE '%issued as a digital certificate%'")?, "0");
    let page = staff.get(&run_url).send().await?.text().await?;
    let why = element_inner_text(&page, "not-issued").context("the graduates waiting")?;
    assert!(why.contains("Waiting") && why.contains("cannot be signed (time-stamped) right now") && why.contains("L19-0042"), "{why}");
    assert_eq!(element_inner_text(&page, "count-pending").as_deref(), Some("4"));

    // the authority answers again: each graduate issued once
    pki.tsa.knob("/sim/refuse", serde_json::json!({ "on": false })).await?;
    run_finished(&b, &run)?;
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM cohort_items WHERE run_id = {run} AND state = 'issued'"))?, "4");
    assert_eq!(b.sql("SELECT COUNT(*) FROM orders WHERE payment_method = 'university'")?, "4");
    assert_eq!(b.sql("SELECT COUNT(*) FROM digital_copies")?, "4");
    mail_all_sent(&b)?;
    for email in &emails {
        let mails = smtp.all_to(email).into_iter().filter(|m| m.contains("issued as a digital certificate")).count();
        assert_eq!(mails, 1, "{email}");
    }
    Ok(())
}

/// Graduation day during a service break (maintenance): the run's graduates
/// wait, the run's page says why, and the wait is not counted as a try (no
/// graduate is given up on however long the break lasts); nothing is placed
/// or mailed. Once the break is over, every graduate is issued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graduation_day_waits_out_a_service_break_without_counting_it_as_tries() -> Result<()> {
    let pki = TestPki::make()?;
    let smtp = Smtp::start()?;
    let (b, _, english) = cohort_backend(&pki, &smtp, Some(1)).await?;
    // the run is started, then maintenance begins before its graduates are issued
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    b.sql(&format!(
        "INSERT INTO service_breaks (university_id, kind, starts_at, ends_at, note_ja, note_en, created_at) VALUES (1, 'maintenance', {}, {}, '', '', {now})",
        now - 60,
        now + 3600
    ))?;
    let staff = b.staff_client().await?;
    let (run, run_url) = issue_to_cohort(&b, &staff, &english).await?;
    let waiting = format!("SELECT COUNT(*) FROM cohort_items WHERE run_id = {run} AND state = 'pending' AND error IS NOT NULL AND attempts = 0");
    wait_until("every graduate waiting for the break", Duration::from_secs(60), || b.sql(&waiting).is_ok_and(|n| n == "4"))?;
    // more passes run (the job's lease renewed at each, seconds apart) and none counts as a try
    let lease = "SELECT expires_at FROM job_leases WHERE name = 'graduation-day'";
    let first: i64 = b.sql(lease)?.parse()?;
    wait_until("two more passes", Duration::from_secs(30), || b.sql(lease).ok().and_then(|e| e.parse::<i64>().ok()).is_some_and(|e| e >= first + 2))?;
    let page = staff.get(&run_url).send().await?.text().await?;
    let why = element_inner_text(&page, "not-issued").context("the graduates waiting")?;
    assert!(why.contains("Waiting") && why.contains("maintenance") , "{why}");
    assert_eq!(b.sql("SELECT COUNT(*) FROM orders WHERE payment_method = 'university'")?, "0");
    assert_eq!(b.sql(&format!("SELECT MAX(attempts) FROM cohort_items WHERE run_id = {run}"))?, "0", "a break is not a try");
    // the break ends: each graduate issued once
    b.sql("DELETE FROM service_breaks")?;
    run_finished(&b, &run)?;
    assert_eq!(b.sql(&format!("SELECT COUNT(*) FROM cohort_items WHERE run_id = {run} AND state = 'issued'"))?, "4");
    assert_eq!(b.sql("SELECT COUNT(*) FROM orders WHERE payment_method = 'university'")?, "4");
    mail_all_sent(&b)?;
    assert_eq!(b.sql("SELECT COUNT(*) FROM outbox WHERE subject LIKE '%issued as a digital certificate%'")?, "4");
    Ok(())
}
