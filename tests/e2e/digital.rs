//! Digital certificates (issue 16). Paper that verifies offline: the QR code
//! on a certificate carries its contents signed with the university's key;
//! the verification page checks them itself, with the network cut.

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
    // a certificate printed at a station: the PDF the station fetched is the one that was printed
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
    let order = b.sql("SELECT MAX(id) FROM orders")?;
    let api = crate::station_api::Api::new(&b).await?;
    let (s, res) = api.post("/reservations", serde_json::json!({ "print_number": number })).await?;
    anyhow::ensure!(s == 200, "{res}");
    let id = res["reservation_id"].as_i64().context("reservation")?;
    let (s, res) = api.post(&format!("/reservations/{id}/charge"), serde_json::json!({ "card_uid": shomei_backend::demo::CARD_UID, "idempotency_key": "qr-offline" })).await?;
    anyhow::ensure!(s == 200, "{res}");
    let pdf = reqwest::Client::new().get(format!("{}/api/station/v1/reservations/{id}/document", b.url)).bearer_auth(api.token()).send().await?.bytes().await?;
    anyhow::ensure!(pdf.starts_with(b"%PDF"), "the order's PDF");
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let report = serde_json::json!({ "idempotency_key": "qr-offline-printed", "outcome": { "kind": "printed" }, "ipp_job_id": 1, "at": at, "impressions": 1 });
    let (s, res) = api.post(&format!("/reservations/{id}/report"), report).await?;
    anyhow::ensure!(s == 200 && res["order_status"] == "printed", "{res}");
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
