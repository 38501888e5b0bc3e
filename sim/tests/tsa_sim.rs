//! The time-stamp authority (`shomei-tsa`) as a child process: a timestamp
//! query made with `openssl ts -query` is answered over HTTP, and the answer
//! verifies with `openssl ts -verify` against the TSA's CA and covers the
//! queried data; an answer checked against other data fails; a body that is
//! no query is refused with a clear error.

use std::process::Command;

use anyhow::{ensure, Result};

mod common;

fn start(dir: &std::path::Path) -> Result<common::Sim> {
    common::start(env!("CARGO_BIN_EXE_shomei-tsa"), &["--listen".as_ref(), "127.0.0.1:0".as_ref(), "--dir".as_ref(), dir.as_os_str()])
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new("openssl").args(args).current_dir(dir).output()?)
}

#[tokio::test]
async fn a_timestamp_is_answered_and_verifies_against_the_tsa_ca_for_the_stamped_data_only() -> Result<()> {
    let work = tempfile::tempdir()?;
    let sim = start(&work.path().join("tsa"))?;
    let dir = work.path();
    std::fs::write(dir.join("doc.bin"), b"the signature value to stamp")?;
    std::fs::write(dir.join("other.bin"), b"something else")?;
    let q = openssl(dir, &["ts", "-query", "-data", "doc.bin", "-sha256", "-cert", "-out", "doc.tsq"])?;
    ensure!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let answer = reqwest::Client::new()
        .post(&sim.base)
        .header("content-type", "application/timestamp-query")
        .body(std::fs::read(dir.join("doc.tsq"))?)
        .send()
        .await?;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/timestamp-reply");
    std::fs::write(dir.join("doc.tsr"), answer.bytes().await?)?;
    let ca = work.path().join("tsa/ca.pem").display().to_string();
    let ok = openssl(dir, &["ts", "-verify", "-data", "doc.bin", "-in", "doc.tsr", "-CAfile", &ca])?;
    assert!(ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("Verification: OK"), "{}{}", String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
    let text = openssl(dir, &["ts", "-reply", "-in", "doc.tsr", "-text"])?;
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("Status: Granted") && text.contains("Hash Algorithm: sha256"), "{text}");
    let other = openssl(dir, &["ts", "-verify", "-data", "other.bin", "-in", "doc.tsr", "-CAfile", &ca])?;
    assert!(!other.status.success(), "the stamp covers the stamped data only");
    // not a query: refused, with words
    let bad = reqwest::Client::new().post(&sim.base).header("content-type", "text/plain").body("hello").send().await?;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await?.contains("application/timestamp-query"));
    Ok(())
}

/// Answers made at once (16 queries in flight) each verify, for their own
/// data, and each carries its own serial number (RFC 3161: unique per token).
#[tokio::test]
async fn answers_made_at_once_all_verify_and_never_share_a_serial_number() -> Result<()> {
    let work = tempfile::tempdir()?;
    let sim = start(&work.path().join("tsa"))?;
    let dir = work.path();
    let ca = work.path().join("tsa/ca.pem").display().to_string();
    let mut queries = Vec::new();
    for i in 0..16 {
        std::fs::write(dir.join(format!("d{i}.bin")), format!("signature value {i}"))?;
        let q = openssl(dir, &["ts", "-query", "-data", &format!("d{i}.bin"), "-sha256", "-cert", "-out", &format!("d{i}.tsq")])?;
        ensure!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
        queries.push(std::fs::read(dir.join(format!("d{i}.tsq")))?);
    }
    let client = reqwest::Client::new();
    let answers = futures_join_all(queries.into_iter().map(|q| {
        let (client, url) = (client.clone(), sim.base.clone());
        async move { client.post(url).header("content-type", "application/timestamp-query").body(q).send().await?.bytes().await }
    }))
    .await;
    let mut serials = std::collections::BTreeSet::new();
    for (i, a) in answers.into_iter().enumerate() {
        std::fs::write(dir.join(format!("d{i}.tsr")), a?)?;
        let ok = openssl(dir, &["ts", "-verify", "-data", &format!("d{i}.bin"), "-in", &format!("d{i}.tsr"), "-CAfile", &ca])?;
        assert!(ok.status.success(), "answer {i}: {}", String::from_utf8_lossy(&ok.stderr));
        let text = openssl(dir, &["ts", "-reply", "-in", &format!("d{i}.tsr"), "-text"])?;
        let text = String::from_utf8_lossy(&text.stdout).to_string();
        let serial = text.lines().find_map(|l| l.trim().strip_prefix("Serial number: ")).map(str::to_string).ok_or_else(|| anyhow::anyhow!("no serial: {text}"))?;
        serials.insert(serial);
    }
    assert_eq!(serials.len(), 16, "every answer its own serial number: {serials:?}");
    Ok(())
}

/// Runs the futures concurrently and collects their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
