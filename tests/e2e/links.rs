//! Every link can run TLS (issue 12): mail to an SMTP relay that demands
//! STARTTLS or implicit TLS and AUTH; a station reaching the backend over
//! https with the university's own CA, and refusing plain http to another host.

use crate::harness::*;
use anyhow::{Context, Result};
use std::time::Duration;

const MAIL_WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_out_over_starttls_or_implicit_tls_with_auth_and_a_wrong_password_keeps_it_queued() -> Result<()> {
    let ca = TestCa::new()?;
    for mode in ["starttls", "tls"] {
        let smtp = Smtp::start_secure(&ca, mode, "shomei-mailer", "Mail2024secret")?;
        let secret = tempfile::NamedTempFile::new()?;
        std::fs::write(secret.path(), "Mail2024secret\n")?;
        let (port, ca_file, secret_file) = (smtp.port, ca.cert.clone(), secret.path().to_path_buf());
        let b = Backend::start_with(None, |c| {
            c.mail.smtp = format!("localhost:{port}");
            c.mail.tls = mode.into();
            c.mail.username = "shomei-mailer".into();
            c.mail.password_file = Some(secret_file);
            c.mail.ca_file = Some(ca_file);
        })
        .await?;
        b.order_as_graduate(1).await?;
        let mail = smtp.wait_for_mail(shomei_backend::demo::GRADUATE_EMAIL, MAIL_WAIT).with_context(|| mode.to_string())?;
        assert!(mail.contains("Subject:"), "{mode}: {mail}");
        // the relay's 250 reaches the worker a moment after the message is on disk
        wait_until(&format!("{mode}: the outbox row marked sent"), MAIL_WAIT, || {
            b.sql("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").is_ok_and(|n| n == "0")
        })?;
    }

    // the wrong password: refused by the relay, kept in the outbox with the reason
    let smtp = Smtp::start_secure(&ca, "starttls", "shomei-mailer", "Mail2024secret")?;
    let (port, ca_file) = (smtp.port, ca.cert.clone());
    let b = Backend::start_with(None, |c| {
        c.mail.smtp = format!("localhost:{port}");
        c.mail.tls = "starttls".into();
        c.mail.username = "shomei-mailer".into();
        c.mail.password = "wrong".into();
        c.mail.ca_file = Some(ca_file);
    })
    .await?;
    b.order_as_graduate(1).await?;
    let mut error = String::new();
    wait_until("the refused delivery recorded", MAIL_WAIT, || {
        error = b.sql("SELECT COALESCE(last_error, '') FROM outbox WHERE sent_at IS NULL LIMIT 1").unwrap_or_default();
        !error.is_empty()
    })?;
    assert!(error.contains("535") || error.to_lowercase().contains("auth"), "{error}");
    assert!(smtp.messages().is_empty());

    // no TLS to a relay on another host is refused at start, naming the key
    let mut cfg = shomei_backend::config::Config::default();
    cfg.mail.smtp = "smtp.campus.example.ac.jp:25".into();
    cfg.mail.tls = "none".into();
    assert!(cfg.validate().expect_err("plain SMTP").contains("mail.tls"));
    cfg.mail.tls = String::new();
    assert_eq!(cfg.mail.tls_mode(), "starttls", "another host: STARTTLS by default");
    assert!(cfg.validate().is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_reaches_the_backend_over_https_with_the_universitys_ca_and_refuses_plain_http_to_another_host() -> Result<()> {
    let ca = TestCa::new()?;
    let (cert, key) = ca.issue("localhost", 0x6001)?;
    let smtp = Smtp::start()?;
    let backend = Backend::start_with(Some(smtp.port), |c| {
        c.http.tls_cert_file = Some(cert);
        c.http.tls_key_file = Some(key);
        c.http.public_url = c.http.public_url.replace("http://127.0.0.1", "https://localhost");
    })
    .await?;
    assert!(backend.url.starts_with("https://localhost:"), "{}", backend.url);
    let printer = Printer::start()?;
    let pcsc = Pcsc::start()?;
    let code = |name: &str| -> Result<String> {
        let out = std::process::Command::new(bin("shomei-backend"))
            .args(["enrolment-code", name])
            .env("SHOMEI_BACKEND_DATABASE__URL", &backend.database_url)
            .env("SHOMEI_BACKEND_SECURITY__DATA_KEY_FILE", backend.dir.path().join("backend.key"))
            .env("SHOMEI_BACKEND_ACCOUNTS__UPLOAD_DIR", backend.dir.path().join("uploads"))
            .output()?;
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };

    // without the university's CA the station does not trust the backend: not enrolled
    let untrusting = code("Untrusting kiosk")?;
    let o = StationOptions { backend_url: &backend.url, enrolment_code: &untrusting, printer_uri: &printer.uri, pcsc: &pcsc, tuning: Tuning::default() };
    let untrusting_station = Station::spawn_only(&o, &[])?;
    wait_until("the station's log to say why", Duration::from_secs(20), || untrusting_station.log().contains("UnknownIssuer"))?;
    assert_eq!(backend.sql("SELECT status FROM stations WHERE name = 'Untrusting kiosk'")?, "pending", "never enrolled");
    drop(untrusting_station);

    // with it, the station enrols over https, beats and is online
    let trusted = code("Library 1F")?;
    let ca_path = ca.cert.display().to_string();
    let o = StationOptions { backend_url: &backend.url, enrolment_code: &trusted, printer_uri: &printer.uri, pcsc: &pcsc, tuning: Tuning::default() };
    let station = Station::start_with_env(&o, &[("SHOMEI_STATION_BACKEND_CA_FILE", &ca_path)])?;
    wait_until("the station online over https", Duration::from_secs(20), || {
        backend.sql("SELECT status || ' ' || (CASE WHEN last_seen IS NOT NULL THEN 1 ELSE 0 END) FROM stations WHERE name = 'Library 1F'").unwrap_or_default() == "active 1"
    })
    .with_context(|| station.log())?;

    // plain http to a backend on another host: refused at start, naming the key
    let o = StationOptions { backend_url: "http://192.0.2.10:8080", enrolment_code: &trusted, printer_uri: &printer.uri, pcsc: &pcsc, tuning: Tuning::default() };
    let err = Station::start(&o).err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(err.contains("backend_url") && err.contains("https"), "{err}");
    Ok(())
}
