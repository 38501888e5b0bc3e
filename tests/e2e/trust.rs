//! Trust boundaries (issue 12): the backend takes no station's word for
//! money or prints, enrolment codes die with their station, a new database
//! is no demo, and a production configuration with published secrets or
//! simulators does not start. Each through the real HTTP server or binary.

use crate::harness::*;
use crate::station_api::Api;
use anyhow::{Context, Result};
use serde_json::json;
use std::time::Duration;

fn number_of(page: &str) -> String {
    element_text(page, "print-number").unwrap_or_default().replace(' ', "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_stations_code_no_longer_enrols_codes_carry_128_bits_and_wrong_codes_are_throttled() -> Result<()> {
    let backend = Backend::start(None).await?;
    // a station that was never enrolled is revoked in the panel: its code dies with it
    let code = backend.enrolment_code("Forgotten kiosk").await?;
    let chars: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    assert_eq!(chars.len(), 28, "28 base32 characters = 140 bits: {code}");
    assert!(chars.chars().all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)), "{code}");
    let staff = backend.staff_client().await?;
    let page = backend.staff_page("/admin/stations").await?;
    let id = backend.sql("SELECT id FROM stations WHERE name = 'Forgotten kiosk'")?;
    assert!(page.contains(&format!("/admin/stations/{id}/revoke")), "a pending station can be revoked in the panel");
    let csrf = form_value(&page, "csrf").context("csrf")?;
    let r = staff.post(format!("{}/admin/stations/{id}/revoke", backend.url)).form(&[("csrf", csrf.as_str())]).send().await?;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(backend.sql(&format!("SELECT status FROM stations WHERE id = {id}"))?, "revoked");
    let (s, body) = Api::enroll(&backend, &code).await?;
    assert_eq!((s.as_u16(), body["code"].clone()), (401, json!("enrolment_code_invalid")), "{body}");
    assert_eq!(backend.sql(&format!("SELECT status FROM stations WHERE id = {id}"))?, "revoked", "still revoked");
    assert_eq!(backend.sql(&format!("SELECT COUNT(*) FROM enrolment_codes WHERE station_id = {id}"))?, "0", "its unused code is gone");

    // an enrolled station revoked: its credential stops at once
    let api = Api::new(&backend).await?;
    let (s, _) = api.get("/offline/bundle").await?;
    assert_eq!(s, 200);
    let enrolled = backend.sql("SELECT id FROM stations WHERE name = 'API test station'")?;
    let page = backend.staff_page("/admin/stations").await?;
    let csrf = form_value(&page, "csrf").context("csrf")?;
    staff.post(format!("{}/admin/stations/{enrolled}/revoke", backend.url)).form(&[("csrf", csrf.as_str())]).send().await?;
    let (s, body) = api.get("/offline/bundle").await?;
    assert_eq!((s, body["code"].clone()), (401, json!("unauthorized")), "its credential is gone: {body}");

    // guessing codes: three wrong ones free (the dead code above was one), then the
    // address waits (429), even with a right code
    let good = backend.enrolment_code("Library 3F").await?;
    for i in 0..3 {
        let (s, body) = Api::enroll(&backend, &format!("AAAA-BBBB-CCCC-DDD{i}")).await?;
        assert_eq!(s.as_u16(), 401, "wrong code {i}: {body}");
    }
    let (s, body) = Api::enroll(&backend, &good).await?;
    assert_eq!((s.as_u16(), body["code"].clone()), (429, json!("throttled")), "{body}");
    assert_eq!(backend.sql("SELECT status FROM stations WHERE name = 'Library 3F'")?, "pending");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_refuses_station_claims_it_cannot_verify_lists_them_for_staff_and_alerts_operators() -> Result<()> {
    let smtp = Smtp::start()?;
    let backend = Backend::start_with(Some(smtp.port), |c| {
        c.stations.alert_emails = vec!["ops@example.ac.jp".into()];
        c.stations.alert_check_s = 1;
    })
    .await?;
    let api = Api::new(&backend).await?;
    let balance = || backend.sql(&format!("SELECT SUM(amount) FROM ledger WHERE card_uid = '{}'", shomei_backend::demo::CARD_UID));
    assert_eq!(balance()?, "3000");
    let number = number_of(&backend.order_as_graduate(1).await?);
    let order_id: i64 = backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?.parse()?;
    let (s, res) = api.post("/reservations", json!({ "print_number": number })).await?;
    assert_eq!((s, res["amount"].clone()), (200, json!(400)), "{res}");
    let rid = res["reservation_id"].as_i64().unwrap_or_default();
    let status = || backend.sql(&format!("SELECT status FROM orders WHERE id = {order_id}"));

    // an e-money payment of 1 yen for a 400 yen order
    let (s, r) = api
        .post(&format!("/reservations/{rid}/terminal-payment"),
              json!({ "idempotency_key": "t-1", "transaction_id": "TXN0000000000001", "amount": 1, "brand": "Suica", "at": 0 }))
        .await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "{r}");
    assert_eq!(status()?, "awaiting_payment");

    // "printed" for an order nobody paid
    let (s, r) = api
        .post(&format!("/reservations/{rid}/report"), json!({ "idempotency_key": "r-1", "outcome": { "kind": "printed" }, "ipp_job_id": 1, "at": 0 }))
        .await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "{r}");
    assert_eq!(status()?, "awaiting_payment");
    assert_eq!(backend.sql("SELECT COUNT(*) FROM station_reports")?, "0");

    // an offline debit and print for an order this station was never handed
    let now = shomei_backend::time::now();
    let debit = |key: &str, order: i64, amount: i64| {
        json!({ "idempotency_key": key, "order_id": order, "card_uid": shomei_backend::demo::CARD_UID, "amount": amount, "at": now })
    };
    let (s, r) = api.post("/offline/debits", debit("d-1", order_id, 400)).await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "never in its bundle: {r}");
    let (s, r) = api.post("/offline/prints", json!({ "idempotency_key": "p-1", "order_id": order_id, "outcome": { "kind": "printed" }, "ipp_job_id": 1, "at": now })).await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "{r}");

    // handed out under policy (a): no card payment offline
    let (s, _) = api.get("/offline/bundle").await?;
    assert_eq!(s, 200);
    let (s, r) = api.post("/offline/debits", debit("d-2", order_id, 400)).await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "policy (a): {r}");

    // policy (b), floor ¥0, station total ¥20,000; the card holds ¥300 by then
    backend.sql("UPDATE universities SET offline_cards = 1, offline_floor_limit = 0, offline_station_total = 20000")?;
    let (s, _) = api.get("/offline/bundle").await?;
    assert_eq!(s, 200);
    let (s, r) = api.post("/offline/debits", debit("d-3", order_id, 1)).await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "not the order's total: {r}");
    backend.sql(&format!(
        "INSERT INTO ledger (card_uid, amount, kind, created_at) VALUES ('{}', -2700, 'debit', {})",
        shomei_backend::demo::CARD_UID,
        now - 10
    ))?;
    let (s, r) = api.post("/offline/debits", debit("d-4", order_id, 400)).await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "below the floor: {r}");
    assert!(r["message"].as_str().unwrap_or_default().contains("floor limit"), "{r}");
    // floor ¥1,000 but the station's undelivered total is ¥300
    backend.sql("UPDATE universities SET offline_floor_limit = 1000, offline_station_total = 300")?;
    let (s, r) = api.post("/offline/debits", debit("d-5", order_id, 400)).await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "beyond the station total: {r}");
    assert!(r["message"].as_str().unwrap_or_default().contains("offline total"), "{r}");
    assert_eq!(balance()?, "300", "no refused claim moved money");
    assert_eq!(status()?, "awaiting_payment");

    // within every limit the same debit applies, once
    backend.sql("UPDATE universities SET offline_station_total = 20000")?;
    let (s, r) = api.post("/offline/debits", debit("d-6", order_id, 400)).await?;
    assert_eq!((s, r["order_status"].clone()), (200, json!("paid")), "{r}");
    assert_eq!(balance()?, "-100");

    // a convenience-store order paid by PayPal is never the station's to pay
    let store_number = number_of(&backend.order_as_graduate(1).await?);
    let store_order: i64 = backend.sql(&format!("SELECT id FROM orders WHERE print_number = '{store_number}'"))?.parse()?;
    backend.sql(&format!("UPDATE orders SET delivery = 'store', payment_method = 'paypal' WHERE id = {store_order}"))?;
    let (s, r) = api.post("/offline/debits", debit("d-7", store_order, 400)).await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "{r}");
    assert_eq!(backend.sql(&format!("SELECT status FROM orders WHERE id = {store_order}"))?, "awaiting_payment");
    // the station sends what was refused again: refused again, recorded (and mailed) once
    let (s, r) = api.post("/offline/debits", debit("d-7", store_order, 400)).await?;
    assert_eq!((s, r["code"].clone()), (422, json!("claim_refused")), "{r}");

    // staff see every refused claim with its reason; operators got mail
    assert_eq!(backend.sql("SELECT COUNT(*) FROM refused_claims")?, "9");
    let page = backend.staff_page("/admin/stations").await?;
    let start = page.find("id=\"refused-claims\"").context("refused claims on the stations page")?;
    let listed = &page[start..start + page[start..].find("</table>").context("table end")?];
    // each claim named in words (never its keyword), with the reason
    for needle in ["e-money terminal payment", "print report", "print while offline", "IC card payment while offline", "floor limit", "offline total", "¥1 is not the order"] {
        assert!(listed.contains(needle), "{needle} missing from: {listed}");
    }
    let mail = smtp.wait_for_mail_with("ops@example.ac.jp", "refused", Duration::from_secs(20))?;
    assert!(mail.contains("API test station") && mail.contains("申告を拒否"), "{mail}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_gets_no_demo_data_and_one_not_created_as_a_demo_never_gets_any() -> Result<()> {
    let mut backend = Backend::start_with(None, |c| c.demo_data = false).await?;
    assert_eq!(backend.sql("SELECT COUNT(*) FROM staff")?, "0");
    assert_eq!(backend.sql("SELECT COUNT(*) FROM users")?, "0");
    assert_eq!(backend.sql("SELECT demo FROM deployment")?, "0");
    let (_, _, page) = backend.staff_login(shomei_backend::demo::STAFF_LOGIN, shomei_backend::demo::STAFF_PASSWORD, "000000").await?;
    assert!(!page.contains("/admin/logout"), "the demo staff login does not exist");
    // the same database started later with demo_data on: still nothing seeded
    backend.stop().await;
    backend.restart_with(|c| c.demo_data = true).await?;
    assert_eq!(backend.sql("SELECT COUNT(*) FROM staff")?, "0");
    assert_eq!(backend.sql("SELECT COUNT(*) FROM directory_roster")?, "0");
    assert_eq!(backend.sql("SELECT COUNT(*) FROM universities")?, "0");
    // the first install is a console command that prints the administrator's credentials once
    backend.stop().await;
    let url = backend.database_url.clone();
    let out = std::process::Command::new(bin("shomei-backend"))
        .args(["init", "--name-ja", "北大学", "--name-en", "Kita University", "--admin", "registrar1"])
        .env("SHOMEI_BACKEND_DATABASE__URL", &url)
        .env("SHOMEI_BACKEND_SECURITY__DATA_KEY_FILE", backend.dir.path().join("backend.key"))
        .env("SHOMEI_BACKEND_ACCOUNTS__UPLOAD_DIR", backend.dir.path().join("uploads"))
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said} {}", String::from_utf8_lossy(&out.stderr));
    let password = said.lines().find_map(|l| l.strip_prefix("initial password (once, change it at the first login): ")).context("password")?;
    let secret = said.lines().find_map(|l| l.strip_prefix("TOTP secret: ")).context("secret")?.to_string();
    backend.restart().await?;
    let code = backend.totp_code_for(&secret).await?;
    let (_, status, page) = backend.staff_login("registrar1", password, &code).await?;
    assert!(status.is_success(), "{page}");
    assert!(page.contains("password") || page.contains("パスワード"), "the first login asks for a new password: {page}");
    assert_eq!(backend.sql("SELECT name_en FROM universities")?, "Kita University");
    Ok(())
}

fn write_secret(dir: &std::path::Path, name: &str, value: &str) -> Result<()> {
    std::fs::write(dir.join(name), format!("{value}\n"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_production_published_secrets_demo_data_and_simulators_refuse_to_start_naming_the_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let base = |cmd: &mut std::process::Command| {
        cmd.arg("serve")
            .env("SHOMEI_BACKEND_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("SHOMEI_BACKEND_HTTP__PUBLIC_URL", "https://certs.example.ac.jp")
            .env("SHOMEI_BACKEND_DATABASE__URL", format!("sqlite://{}?mode=rwc", dir.path().join("b.sqlite").display()))
            .env("SHOMEI_BACKEND_ACCOUNTS__UPLOAD_DIR", dir.path().join("uploads"))
            .env("SHOMEI_BACKEND_SECURITY__DATA_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
            .env_remove("CREDENTIALS_DIRECTORY");
    };
    let mut cmd = std::process::Command::new(bin("shomei-backend"));
    base(&mut cmd);
    // (the simulated time-stamp authority on this machine is refused too)
    // (and a signing key whose time-stamps would be taken from anyone: no tsa_trust_file)
    let signing = dir.path().join("signing.toml");
    std::fs::write(&signing, "[[documents.signing.keys]]\nuniversity = 1\nkey_file = \"/etc/shomei/signing.key\"\nchain_file = \"/etc/shomei/chain.pem\"\n")?;
    let out = cmd
        .env("SHOMEI_BACKEND_DEMO_DATA", "true")
        .env("SHOMEI_BACKEND_DOCUMENTS__SIGNING__TSA_URL", "http://127.0.0.1:8095/")
        .env("SHOMEI_CONFIG", &signing)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it must not start: {err}");
    for key in ["demo_data", "paypal.client_secret", "paypal.webhook_id", "smartpit.secret", "storeprint.api_key", "storeprint.notice_secret",
                "paypal.base_url", "smartpit.base_url", "storeprint.base_url", "documents.signing.tsa_url", "documents.signing.tsa_trust_file"] {
        assert!(err.contains(&format!("{key}:")), "{key} not named in: {err}");
    }
    assert!(!dir.path().join("b.sqlite").exists() || std::fs::metadata(dir.path().join("b.sqlite"))?.len() == 0, "nothing created");

    // every secret from systemd credentials (relative *_file names), providers their own: it starts
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds)?;
    for (name, value) in [("paypal", "live-secret-1"), ("smartpit", "sp-secret-2"), ("sp_key", "key-3"), ("sp_notice", "notice-4"), ("metrics", "metrics-5")] {
        write_secret(&creds, name, value)?;
    }
    let mut cmd = std::process::Command::new(bin("shomei-backend"));
    base(&mut cmd);
    cmd.env("CREDENTIALS_DIRECTORY", &creds)
        .env("SHOMEI_BACKEND_PAYPAL__CLIENT_SECRET_FILE", "paypal")
        .env("SHOMEI_BACKEND_PAYPAL__WEBHOOK_ID", "WH-REAL-1")
        .env("SHOMEI_BACKEND_PAYPAL__BASE_URL", "https://api-m.sandbox.paypal.com")
        .env("SHOMEI_BACKEND_SMARTPIT__SECRET_FILE", "smartpit")
        .env("SHOMEI_BACKEND_SMARTPIT__BASE_URL", "https://smartpit.invalid")
        .env("SHOMEI_BACKEND_STOREPRINT__API_KEY_FILE", "sp_key")
        .env("SHOMEI_BACKEND_STOREPRINT__NOTICE_SECRET_FILE", "sp_notice")
        .env("SHOMEI_BACKEND_STOREPRINT__BASE_URL", "https://storeprint.invalid")
        .env("SHOMEI_BACKEND_HTTP__METRICS_TOKEN_FILE", "metrics")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("backend.log"))?);
    let _proc = Proc::spawn("backend", &mut cmd)?;
    wait_until("production backend", Duration::from_secs(20), || tcp_ready(port))
        .with_context(|| std::fs::read_to_string(dir.path().join("backend.log")).unwrap_or_default())?;
    let client = reqwest::Client::new();
    let metrics = |token: &'static str| client.get(format!("http://127.0.0.1:{port}/metrics")).bearer_auth(token).send();
    assert_eq!(metrics("metrics-5").await?.status(), 200, "the token came from its credential file");
    assert_eq!(metrics("wrong").await?.status(), 403);
    // a Smart Pit notice signed with the published default secret is refused
    let body = r#"{"payment_number":"1","status":"paid"}"#;
    let sig = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"shomei-smartpit-secret")?;
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let r = client
        .post(format!("http://127.0.0.1:{port}/smartpit/notice"))
        .header("content-type", "application/json")
        .header("x-smartpit-signature", sig)
        .body(body)
        .send()
        .await?;
    assert!(r.status().is_client_error(), "the published secret signs nothing here: {}", r.status());
    Ok(())
}

#[test]
fn every_binary_answers_help_and_version() -> Result<()> {
    for name in ["shomei-backend", "shomei-station", "shomei-card", "shomei-paypal", "shomei-pcscd", "shomei-smartpit", "shomei-storeprint", "shomei-terminal"] {
        let out = std::process::Command::new(bin(name)).arg("--help").output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("Usage"), "{name} --help: {text}");
        let out = std::process::Command::new(bin(name)).arg("--version").output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains(env!("CARGO_PKG_VERSION")), "{name} --version: {text}");
    }
    for name in ["shomei-backend", "shomei-station"] {
        let out = std::process::Command::new(bin(name)).args(["backup", "--help"]).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("Usage") && (text.contains("FILE") || text.contains("DIR")), "{name} backup --help: {text}");
    }
    let out = std::process::Command::new(bin("shomei-backend")).arg("no-such-command").output()?;
    assert_eq!(out.status.code(), Some(2), "a wrong subcommand is a usage error");
    Ok(())
}


/// A portal login as a browser behind the proxy sends it: `X-Forwarded-For` names the client.
async fn login_from(b: &Backend, from: &str, email: &str, password: &str, second: &str) -> Result<u16> {
    let c = Backend::client();
    let page = c.get(format!("{}/login", b.url)).header("x-forwarded-for", from).send().await?.text().await?;
    let csrf = form_value(&page, "csrf").context("csrf")?;
    let r = c
        .post(format!("{}/login", b.url))
        .header("x-forwarded-for", from)
        .form(&[("csrf", csrf.as_str()), ("email", email), ("password", password), ("second_password", second)])
        .send()
        .await?;
    Ok(r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_throttle_and_audit_address_and_metrics_need_the_token() -> Result<()> {
    use shomei_backend::demo::{GRADUATE_EMAIL, GRADUATE_PASSWORD, GRADUATE_SECOND_PASSWORD};
    let b = Backend::start_with(None, |c| {
        c.http.trusted_proxies = vec!["127.0.0.1".into()];
        c.http.metrics_token = "scrape-token".into();
        // (a first delay longer than the test: a throttled address stays throttled, whatever the machine's pace)
        c.security.login_delay_ms = 60_000;
    })
    .await?;
    // one attacker sprays 25 accounts through the proxy until its address is stopped
    let mut statuses = Vec::new();
    for i in 0..25 {
        statuses.push(login_from(&b, "203.0.113.5", &format!("spray{i}@example.jp"), "Spring2024!x", "Spring2024!y").await?);
    }
    assert!(statuses.contains(&429), "the attacker's address is throttled: {statuses:?}");
    // a forged X-Forwarded-For entry does not give the attacker a new bucket: the proxy appends the real one
    assert_eq!(login_from(&b, "10.9.9.9, 203.0.113.5", "spray99@example.jp", "Spring2024!x", "Spring2024!y").await?, 429);
    // everyone else on campus logs in as usual
    assert_eq!(login_from(&b, "198.51.100.7", GRADUATE_EMAIL, GRADUATE_PASSWORD, GRADUATE_SECOND_PASSWORD).await?, 200);
    let audited = b.sql("SELECT ip FROM audit_log WHERE action = 'login' ORDER BY id DESC LIMIT 1")?;
    assert_eq!(audited, "198.51.100.7", "the audit log names the client, not the proxy");
    assert_eq!(b.sql("SELECT DISTINCT ip FROM audit_log WHERE action = 'login.failed'")?, "203.0.113.5");
    // through a proxy on this host every request is loopback: metrics need the token
    let c = reqwest::Client::new();
    assert_eq!(c.get(format!("{}/metrics", b.url)).send().await?.status(), 403);
    assert_eq!(c.get(format!("{}/metrics", b.url)).bearer_auth("scrape-token").send().await?.status(), 200);

    // without a trusted proxy the same headers are ignored: one peer, one bucket
    let direct = Backend::start(None).await?;
    let mut statuses = Vec::new();
    for i in 0..13 {
        statuses.push(login_from(&direct, &format!("192.0.2.{i}"), &format!("spray{i}@example.jp"), "Spring2024!x", "Spring2024!y").await?);
    }
    // (with a bucket per forged address none would ever wait; how many of the last three
    // wait depends on the machine's pace, since each wait is the doubling delay after the last failure)
    assert!(statuses[..10].iter().all(|s| *s == 401), "the address's free failures: {statuses:?}");
    assert!(statuses[10..].contains(&429), "forged addresses share the peer's bucket: {statuses:?}");
    assert_eq!(direct.sql("SELECT DISTINCT ip FROM audit_log WHERE action = 'login.failed'")?, "127.0.0.1");
    assert_eq!(c.get(format!("{}/metrics", direct.url)).send().await?.status(), 200, "no proxy: loopback may scrape");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_an_accounts_password_slows_the_guesser_not_the_owner_and_parallel_guesses_are_counted() -> Result<()> {
    use shomei_backend::demo::{GRADUATE_EMAIL, GRADUATE_PASSWORD, GRADUATE_SECOND_PASSWORD, STAFF_LOGIN, STAFF_PASSWORD};
    let b = Backend::start_with(None, |c| c.http.trusted_proxies = vec!["127.0.0.1".into()]).await?;
    // 20 wrong passwords at once from one address: counted before hashing, so only the free three are tried
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = b.url.clone();
        tasks.push(tokio::spawn(async move {
            let c = Backend::client();
            let page = c.get(format!("{url}/login")).send().await?.text().await?;
            let csrf = form_value(&page, "csrf").context("csrf")?;
            let r = c
                .post(format!("{url}/login"))
                .header("x-forwarded-for", "203.0.113.5")
                .form(&[("csrf", csrf.as_str()), ("email", GRADUATE_EMAIL), ("password", "Guess2024pass"), ("second_password", "Guess2024pass")])
                .send()
                .await?;
            anyhow::Ok(r.status().as_u16())
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await??);
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 17, "{statuses:?}");
    assert_eq!(b.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed'")?, "3", "three passwords were checked");
    // the attacker keeps failing until locked out of this account
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(login_from(&b, "203.0.113.5", GRADUATE_EMAIL, "Guess2024pass", "Guess2024pass").await?, 401);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(login_from(&b, "203.0.113.5", GRADUATE_EMAIL, GRADUATE_PASSWORD, GRADUATE_SECOND_PASSWORD).await?, 429, "locked for that address");
    // the owner, from her own address, logs in at once
    assert_eq!(login_from(&b, "198.51.100.7", GRADUATE_EMAIL, GRADUATE_PASSWORD, GRADUATE_SECOND_PASSWORD).await?, 200);

    // staff too: an attacker failing five times does not lock the staff member out
    for i in 0..5 {
        let c = Backend::client();
        let page = c.get(format!("{}/admin/login", b.url)).send().await?.text().await?;
        let csrf = form_value(&page, "csrf").context("csrf")?;
        let r = c
            .post(format!("{}/admin/login", b.url))
            .header("x-forwarded-for", "203.0.113.6")
            .form(&[("csrf", csrf.as_str()), ("login", STAFF_LOGIN), ("password", "Guess2024pass"), ("code", "000000")])
            .send()
            .await?;
        let s = r.status().as_u16();
        assert!(s == 401 || s == 429, "attempt {i}: {s}");
        tokio::time::sleep(Duration::from_millis(300u64 << i.min(3))).await;
    }
    let code = b.staff_code().await?;
    let (_, status, page) = b.staff_login(STAFF_LOGIN, STAFF_PASSWORD, &code).await?;
    assert!(status.is_success() && page.contains("/admin/logout"), "{status} {page}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_bodies_are_sealed_at_rest_dropped_once_sent_and_staff_see_only_kind_recipient_and_status() -> Result<()> {
    use shomei_backend::demo::GRADUATE_EMAIL;
    // delivered: the mail says the number; the outbox keeps no body
    let smtp = Smtp::start()?;
    let sending = Backend::start(Some(smtp.port)).await?;
    let number = number_of(&sending.order_as_graduate(1).await?);
    let mail = smtp.wait_for_mail(GRADUATE_EMAIL, Duration::from_secs(20))?;
    let grouped = format!("{} {} {}", &number[..4], &number[4..8], &number[8..]);
    assert!(mail.contains(&grouped), "the sealed body opened for sending: {mail}");
    wait_until("the row marked sent", Duration::from_secs(20), || {
        sending.sql("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").is_ok_and(|n| n == "0")
    })?;
    assert_eq!(sending.sql("SELECT body || body_html || COALESCE(sealed, '') FROM outbox")?, "", "nothing kept once delivered");

    // queued (no relay): the number is nowhere in the table in clear
    let queued = Backend::start(None).await?;
    let number = number_of(&queued.order_as_graduate(1).await?);
    let grouped = format!("{} {} {}", &number[..4], &number[4..8], &number[8..]);
    let row = queued.sql("SELECT to_addr || '|' || subject || '|' || body || '|' || body_html || '|' || sealed FROM outbox")?;
    assert!(row.starts_with(&format!("{GRADUATE_EMAIL}|")) && row.contains("print number"), "{row}");
    crate::print_flow::assert_no_full_number("the outbox row (sealed at rest)", &row, &number);

    // staff of a real deployment: kind, recipient, status; no body
    queued.sql("UPDATE deployment SET demo = 0")?;
    let page = queued.staff_page("/admin/outbox").await?;
    assert!(page.contains(GRADUATE_EMAIL) && page.contains("print number") && page.contains("not sent"), "{page}");
    crate::print_flow::assert_no_full_number("the outbox page (no body for staff)", &page, &number);
    assert_eq!(queued.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'outbox.view_bodies'")?, "0");
    // the demo's outbox stands in for a mailbox: bodies shown, and the view audited
    queued.sql("UPDATE deployment SET demo = 1")?;
    let page = queued.staff_page("/admin/outbox").await?;
    assert!(page.contains("demo-bodies") && page.contains(&grouped), "{page}");
    assert_eq!(queued.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'outbox.view_bodies'")?, "1");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paypal_webhook_asks_paypal_only_about_plausible_events_and_throttles_bad_signatures() -> Result<()> {
    let sim = HttpSim::start()?;
    let sim_url = sim.url.clone();
    let b = Backend::start_with(None, |c| c.paypal.base_url = sim_url).await?;
    let uid = shomei_backend::demo::CARD_UID;
    b.sql(&format!(
        "INSERT INTO topups (user_id, card_uid, amount, paypal_order_id, status, created_at)
         SELECT user_id, uid, 1000, 'KNOWN-ORDER-1', 'created', {} FROM ic_cards WHERE uid = '{uid}'",
        shomei_backend::time::now()
    ))?;
    let http = reqwest::Client::new();
    let verifications = || async {
        let v: serde_json::Value = reqwest::get(format!("{}/sim/state", sim.url)).await?.json().await?;
        anyhow::Ok(v["verifications"].as_i64().unwrap_or(-1))
    };
    let event = |event_type: &str, order: &str| {
        json!({ "id": "WH-1", "event_type": event_type, "resource_type": "capture",
                "resource": { "id": "CAP-1", "status": "COMPLETED", "amount": { "currency_code": "JPY", "value": "1000" },
                              "supplementary_data": { "related_ids": { "order_id": order } } } })
        .to_string()
    };
    let transmission = [
        ("paypal-transmission-id", "t-1"),
        ("paypal-transmission-sig", "Zm9yZ2Vk"),
        ("paypal-transmission-time", "2026-12-06T00:00:00Z"),
        ("paypal-cert-url", "https://api.paypal.com/cert"),
        ("paypal-auth-algo", "SHA256withRSA"),
    ];
    let post = |body: String, with_headers: bool| {
        let mut r = http.post(format!("{}/paypal/webhook", b.url)).header("content-type", "application/json").body(body);
        if with_headers {
            for (k, v) in transmission {
                r = r.header(k, v);
            }
        }
        async move { anyhow::Ok(r.send().await?.status().as_u16()) }
    };
    // nothing PayPal would be asked about
    assert_eq!(post("not json".into(), true).await?, 400);
    assert_eq!(post(event("CHECKOUT.ORDER.APPROVED", "KNOWN-ORDER-1"), true).await?, 200, "an event nothing is done with");
    assert_eq!(post(event("PAYMENT.CAPTURE.COMPLETED", "SOMEONE-ELSES"), true).await?, 200, "an order this backend never made");
    assert_eq!(post(event("PAYMENT.CAPTURE.COMPLETED", "KNOWN-ORDER-1"), false).await?, 400, "no transmission headers");
    assert_eq!(verifications().await?, 0, "PayPal was not asked about any of them");
    // forged signatures on a real order: asked a few times, then the address waits
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(post(event("PAYMENT.CAPTURE.COMPLETED", "KNOWN-ORDER-1"), true).await?);
    }
    assert_eq!(statuses, [400, 400, 400, 400, 429, 429, 429, 429, 429, 429]);
    assert_eq!(verifications().await?, 4);
    assert_eq!(b.sql("SELECT status FROM topups")?, "created", "nothing credited");
    assert_eq!(b.sql(&format!("SELECT SUM(amount) FROM ledger WHERE card_uid = '{uid}'"))?, "3000");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_id_images_are_checked_a_few_at_a_time_and_a_burst_is_asked_to_send_again() -> Result<()> {
    use crate::accounts::{applicant, id_image, open_and_agree, registration_link, send_form};
    let smtp = Smtp::start()?;
    let gates = tempfile::tempdir()?;
    let gate = gates.path().join("image.go");
    let held = gate.clone();
    let b = Backend::start_with(Some(smtp.port), |c| {
        c.accounts.max_concurrent_images = 1;
        c.accounts.failpoint_hold_image = Some(held);
    })
    .await?;
    let (first, second) = (Backend::client(), Backend::client());
    for (c, email) in [(&first, "first.applicant@example.jp"), (&second, "second.applicant@example.jp")] {
        let link = registration_link(&b, &smtp, c, email).await?;
        open_and_agree(c, &link).await?;
    }
    let fields = applicant("試験 一郎", "シケン イチロウ", "SHIKEN Ichiro");
    let image = || vec![("image_front", "front.png", id_image(image::ImageFormat::Png))];
    let (held_upload, during) = tokio::join!(send_form(&b, &first, &fields, image()), async {
        wait_for("the first image in its check", Duration::from_secs(20), || Ok(gate.with_extension("reached").exists())).await?;
        // the one slot is taken: the second applicant is asked to send again, with what they typed kept
        let refused = send_form(&b, &second, &fields, image()).await?;
        std::fs::write(&gate, b"")?;
        anyhow::Ok(refused)
    });
    let (status, page) = during?;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("画像の確認が混み合っています") && page.contains("send again in a few seconds"), "{page}");
    assert!(page.contains("SHIKEN Ichiro"), "the typed fields are kept");
    let (status, page) = held_upload?;
    assert_eq!(status, 200, "the first upload went through once released: {page}");
    // the slot is free again: the second applicant's retry passes
    let (status, page) = send_form(&b, &second, &fields, image()).await?;
    assert_eq!(status, 200, "{page}");
    Ok(())
}

/// The first `n` bytes of an order's document as the database holds it, as text.
async fn stored_head(b: &Backend, order: i64, n: usize) -> Result<String> {
    let pool = crate::accounts::sqlx_pool(b).await?;
    let doc = shomei_backend::store::order_document(&mut *pool.acquire().await?, order).await?;
    pool.close().await;
    let doc = doc.with_context(|| format!("order {order} has no document"))?;
    Ok(String::from_utf8_lossy(&doc[..n.min(doc.len())]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_pdfs_are_sealed_at_rest_and_older_plain_ones_are_sealed_at_start() -> Result<()> {
    let mut b = Backend::start(None).await?;
    let number = number_of(&b.order_as_graduate(1).await?);
    let id = b.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?;
    let order: i64 = id.parse()?;
    // the database holds no PDF (birth date, grades) in clear
    let head = stored_head(&b, order, 19).await?;
    assert_eq!(head, "SHOMEI-SEALED-PDF-1", "sealed at rest");
    // staff (and printers) get the PDF itself
    let pdf = b.order_pdf(&id).await?;
    assert!(pdf.starts_with(b"%PDF-"), "opened for those who need it");
    // a PDF stored in clear by an older release is sealed at the next start
    let pool = crate::accounts::sqlx_pool(&b).await?;
    sqlx::query("UPDATE order_documents SET pdf = $1 WHERE order_id = $2").bind(pdf.clone()).bind(order).execute(&pool).await?;
    pool.close().await;
    // (a database from that release has not run the sealing pass yet)
    b.sql("DELETE FROM maintenance_done")?;
    assert_eq!(stored_head(&b, order, 5).await?, "%PDF-");
    b.stop().await;
    b.restart().await?;
    assert_eq!(stored_head(&b, order, 19).await?, "SHOMEI-SEALED-PDF-1");
    assert_eq!(b.order_pdf(&id).await?, pdf, "the same document, sealed");
    Ok(())
}
