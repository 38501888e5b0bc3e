//! The station API through real HTTP on the backend: credentials, single-use
//! enrolment codes, idempotent charges (no double debit), reports, throttling.

use crate::harness::*;
use anyhow::{Context, Result};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub async fn enroll(backend: &Backend, code: &str) -> Result<(reqwest::StatusCode, Value)> {
        let r = reqwest::Client::new()
            .post(format!("{}/api/station/v1/enroll", backend.url))
            .json(&json!({ "code": code, "version": "test" }))
            .send()
            .await?;
        Ok((r.status(), r.json().await?))
    }

    pub async fn new(backend: &Backend) -> Result<Api> {
        let code = backend.enrolment_code("API test station").await?;
        let (status, body) = Self::enroll(backend, &code).await?;
        assert_eq!(status, 200, "{body}");
        Ok(Api {
            base: format!("{}/api/station/v1", backend.url),
            token: body["token"].as_str().unwrap_or_default().to_string(),
            http: reqwest::Client::new(),
        })
    }

    /// A station enrolled with `code` (made for any university).
    pub async fn enrolled_with(backend: &Backend, code: &str) -> Result<Api> {
        let (status, body) = Self::enroll(backend, code).await?;
        anyhow::ensure!(status == 200, "enrolment: {status} {body}");
        Ok(Api {
            base: format!("{}/api/station/v1", backend.url),
            token: body["token"].as_str().unwrap_or_default().to_string(),
            http: reqwest::Client::new(),
        })
    }

    /// The station's credential.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The same station talking to another backend of the service.
    pub fn on(&self, backend: &Backend) -> Api {
        Api { base: format!("{}/api/station/v1", backend.url), token: self.token.clone(), http: self.http.clone() }
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_codes_are_single_use_and_credentials_required() -> Result<()> {
    let backend = Backend::start(None).await?;
    let code = backend.enrolment_code("Station A").await?;
    let (s, body) = Api::enroll(&backend, "AAAA-BBBB-CCCC-DDDD").await?;
    assert_eq!(s, 401);
    assert_eq!(body["code"], "enrolment_code_invalid");
    // typed in lower case without dashes still works, once
    let typed = code.replace('-', "").to_lowercase();
    let (s, body) = Api::enroll(&backend, &typed).await?;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["name"], "Station A");
    assert!(body["token"].as_str().is_some_and(|t| t.len() == 64));
    let (s, body) = Api::enroll(&backend, &code).await?;
    assert_eq!(s, 401, "a used code does not enrol twice");
    assert_eq!(body["code"], "enrolment_code_invalid");

    // no or a wrong credential: a clear API error, not a page
    let r = reqwest::Client::new()
        .post(format!("{}/api/station/v1/reservations", backend.url))
        .json(&json!({ "print_number": "123456789012" }))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await?;
    assert_eq!(v["code"], "unauthorized");
    // a wrong credential is refused before the request is read (not told what is wrong with it)
    for path in ["/reservations", "/reservations/1/charge", "/reservations/1/report"] {
        let r = reqwest::Client::new()
            .post(format!("{}/api/station/v1{path}", backend.url))
            .bearer_auth("0".repeat(64))
            .json(&json!({ "print_number": "123456789012" }))
            .send()
            .await?;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.json::<Value>().await?["code"], "unauthorized", "{path}");
    }
    let r = reqwest::Client::new().get(format!("{}/api/station/v1/reservations/1/document", backend.url)).bearer_auth("0".repeat(64)).send().await?;
    assert_eq!(r.status(), 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_charge_debits_once_and_reports_are_idempotent() -> Result<()> {
    let backend = Backend::start(None).await?;
    let api = Api::new(&backend).await?;
    let page = backend.order_as_graduate(2).await?;
    let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    let (s, res) = api.post("/reservations", json!({ "print_number": number })).await?;
    assert_eq!(s, 200, "{res}");
    assert_eq!(res["amount"], 700, "2 x 300 + system fee 100");
    assert_eq!(res["paid"], false);
    let id = res["reservation_id"].as_i64().unwrap_or_default();

    let charge = json!({ "card_uid": shomei_backend::demo::CARD_UID, "idempotency_key": "k-1" });
    let (s, first) = api.post(&format!("/reservations/{id}/charge"), charge.clone()).await?;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["balance_after"], 2300);
    let (s, again) = api.post(&format!("/reservations/{id}/charge"), charge).await?;
    assert_eq!(s, 200, "a retry with the same key answers the same: {again}");
    assert_eq!(again, first);
    let (s, other) = api
        .post(&format!("/reservations/{id}/charge"), json!({ "card_uid": shomei_backend::demo::CARD_UID, "idempotency_key": "k-2" }))
        .await?;
    assert_eq!(s, 409, "a paid order is not charged again: {other}");
    let debits = backend.sql("SELECT COUNT(*), SUM(amount) FROM ledger WHERE kind = 'debit'")?;
    assert_eq!(debits, "1|-700");

    let pdf = api.http.get(format!("{}/reservations/{id}/document", api.base)).bearer_auth(&api.token).send().await?;
    assert_eq!(pdf.status(), 200);
    assert!(pdf.bytes().await?.starts_with(b"%PDF"));

    let report = json!({ "idempotency_key": "r-1", "outcome": { "kind": "printed" }, "ipp_job_id": 3, "at": 0 });
    let (s, r) = api.post(&format!("/reservations/{id}/report"), report.clone()).await?;
    assert_eq!((s, r["order_status"].clone()), (200, json!("printed")));
    let (s, r) = api.post(&format!("/reservations/{id}/report"), report).await?;
    assert_eq!((s, r["order_status"].clone()), (200, json!("printed")));
    assert_eq!(backend.sql("SELECT COUNT(*) FROM station_reports")?, "1");
    let (s, r) = api.post("/reservations", json!({ "print_number": number })).await?;
    assert_eq!((s, r["code"].clone()), (409, json!("print_number_used")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_cards_bad_input_and_guessing_are_refused() -> Result<()> {
    let backend = Backend::start(None).await?;
    let api = Api::new(&backend).await?;
    let page = backend.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    let (_, res) = api.post("/reservations", json!({ "print_number": number })).await?;
    let id = res["reservation_id"].as_i64().unwrap_or_default();
    let (s, r) = api.post(&format!("/reservations/{id}/charge"), json!({ "card_uid": "0102030405060708", "idempotency_key": "x" })).await?;
    assert_eq!((s, r["code"].clone()), (402, json!("card_unknown")));
    let (s, r) = api.post(&format!("/reservations/{id}/charge"), json!({ "card_uid": "not hex!", "idempotency_key": "y" })).await?;
    assert_eq!((s, r["code"].clone()), (400, json!("bad_request")));
    // a document before payment is refused
    let d = api.http.get(format!("{}/reservations/{id}/document", api.base)).bearer_auth(&api.token).send().await?;
    assert_eq!(d.status(), 402);
    // malformed number: the check digit is verified by the API too
    let (s, r) = api.post("/reservations", json!({ "print_number": "123456789012" })).await?;
    assert_eq!((s, r["code"].clone()), (400, json!("bad_request")), "{r}");
    // guessing: 10 wrong (but well-formed) numbers a minute, then throttled
    let mut rng = rand::thread_rng();
    let mut last = 0;
    for _ in 0..11 {
        let n = shomei_shared::PrintNumber::generate(&mut rng);
        last = api.post("/reservations", json!({ "print_number": n.as_str() })).await?.0;
    }
    assert_eq!(last, 429, "guesses are throttled");
    Ok(())
}

/// An order placed and reserved through the API: (reservation, order, amount to pay).
async fn reserved_order(backend: &Backend, api: &Api) -> Result<(i64, i64, i64)> {
    let page = backend.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").context("print number")?.replace(' ', "");
    let (s, res) = api.post("/reservations", json!({ "print_number": number })).await?;
    anyhow::ensure!(s == 200, "reservation: {s} {res}");
    let id = res["reservation_id"].as_i64().context("reservation id")?;
    let amount = res["amount"].as_i64().context("amount")?;
    let order: i64 = backend.sql(&format!("SELECT order_id FROM reservations WHERE id = {id}"))?.parse()?;
    Ok((id, order, amount))
}

/// One charge per key, all POSTed at once (each on its own task).
async fn charge_at_once(api: &Api, id: i64, keys: &[String]) -> Result<Vec<(u16, Value)>> {
    let tries: Vec<_> = keys
        .iter()
        .map(|key| {
            let (api, path) = (api.clone(), format!("/reservations/{id}/charge"));
            let body = json!({ "card_uid": shomei_backend::demo::CARD_UID, "idempotency_key": key });
            tokio::spawn(async move { api.post(&path, body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tries {
        answers.push(t.await??);
    }
    Ok(answers)
}

/// Charges for the same order at the same moment: a station retrying its
/// charge (one key, sent again while the first try is still under way) gets
/// the same answer every time and the card is debited once; two charges with
/// different keys racing (a second tap on its own key) debit once too, the
/// other a clear conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_charges_for_one_order_debit_once() -> Result<()> {
    let backend = Backend::start(None).await?;
    let api = Api::new(&backend).await?;
    let balance = || -> Result<i64> {
        Ok(backend.sql(&format!("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE card_uid = '{}'", shomei_backend::demo::CARD_UID))?.parse()?)
    };
    let debits = |order: i64| backend.sql(&format!("SELECT COUNT(*) FROM ledger WHERE kind = 'debit' AND order_id = {order}"));
    // (the demo card's 3,000 yen pays six orders of 400)
    for round in 0..3 {
        let (id, order, fee) = reserved_order(&backend, &api).await?;
        let before = balance()?;
        let keys: Vec<String> = (0..4).map(|_| format!("retry-{round}")).collect();
        let answers = charge_at_once(&api, id, &keys).await?;
        for (s, a) in &answers {
            assert_eq!(*s, 200, "round {round}: a retry with the same key is answered like the first try: {answers:?}");
            assert_eq!(a, &answers[0].1, "round {round}: every answer the same: {answers:?}");
        }
        assert_eq!(answers[0].1["charged"], json!(fee), "round {round}: {answers:?}");
        assert_eq!(answers[0].1["balance_after"], json!(before - fee), "round {round}: {answers:?}");
        assert_eq!(debits(order)?, "1", "round {round}: one debit row for the order");
        assert_eq!(balance()?, before - fee, "round {round}: the balance fell by exactly one fee");
    }
    for round in 0..3 {
        let (id, order, fee) = reserved_order(&backend, &api).await?;
        let before = balance()?;
        let answers = charge_at_once(&api, id, &[format!("a{round}"), format!("b{round}")]).await?;
        let mut codes: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        codes.sort();
        assert_eq!(codes, [200, 409], "round {round}: one charge, one conflict: {answers:?}");
        assert_eq!(debits(order)?, "1", "round {round}: one debit row for the order");
        assert_eq!(balance()?, before - fee, "round {round}: the balance fell by exactly one fee");
    }
    Ok(())
}

/// One card paying for more orders than its balance covers, at two stations
/// at once, each talking to its own backend on the one database (a station
/// writes on one order and one card at a time, not the whole database): the
/// card pays exactly as many as its balance covers, every other charge is
/// refused as "balance too low", each paid order has one debit, and the
/// balance ends at what is left, never below zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_card_paying_at_two_stations_through_two_backends_at_once_is_never_overdrawn() -> Result<()> {
    let a = Backend::start_with(None, |c| c.orders.per_user_per_minute = 100).await?;
    let b = a.start_beside(|_| {}).await?;
    let stations = [Api::new(&a).await?, Api::new(&a).await?.on(&b)];
    let card = shomei_backend::demo::CARD_UID;
    let balance = || -> Result<i64> { Ok(a.sql(&format!("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE card_uid = '{card}'"))?.parse()?) };
    let before = balance()?;
    let (id, order, fee) = reserved_order(&a, &stations[0]).await?;
    let mut reserved = vec![(0, id, order)];
    while (reserved.len() as i64) < before / fee + 3 {
        let station = reserved.len() % 2;
        let (id, order, _) = reserved_order(&a, &stations[station]).await?;
        reserved.push((station, id, order));
    }
    let affordable = (before / fee) as usize;
    let tries: Vec<_> = reserved
        .iter()
        .map(|(station, id, _)| {
            let (api, path) = (stations[*station].clone(), format!("/reservations/{id}/charge"));
            let body = json!({ "card_uid": card, "idempotency_key": format!("overdraw-{id}") });
            tokio::spawn(async move { api.post(&path, body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tries {
        answers.push(t.await??);
    }
    let paid: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
    let refused: Vec<_> = answers.iter().filter(|(s, a)| *s == 402 && a["code"] == "insufficient_balance").collect();
    assert_eq!((paid.len(), refused.len()), (affordable, reserved.len() - affordable), "{answers:?}");
    assert_eq!(balance()?, before - fee * affordable as i64, "the balance fell by exactly the paid orders' fees");
    assert_eq!(balance()?, before % fee, "what is left is less than one fee, never below zero");
    let orders: Vec<String> = reserved.iter().map(|r| r.2.to_string()).collect();
    let debits = a.sql(&format!("SELECT COUNT(*) || '|' || COUNT(DISTINCT order_id) FROM ledger WHERE kind = 'debit' AND order_id IN ({})", orders.join(",")))?;
    assert_eq!(debits, format!("{affordable}|{affordable}"), "one debit per paid order");
    let paid_orders = a.sql(&format!("SELECT COUNT(*) FROM orders WHERE status = 'paid' AND id IN ({})", orders.join(",")))?;
    assert_eq!(paid_orders, affordable.to_string());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_orders_and_each_station_to_monitoring() -> Result<()> {
    let b = Backend::start_with(None, |c| c.http.metrics_token = "scrape-secret".into()).await?;
    b.order_as_graduate(1).await?;
    let api = Api::new(&b).await?;
    let beat = |reasons: Vec<&str>, outbox: u32| {
        serde_json::json!({ "version": "test", "uptime_s": 5, "reader_present": true, "outbox_len": outbox,
                            "station_time": chrono_now(), "printer": { "reachable": true, "state": "idle", "reasons": reasons, "message": "" } })
    };
    let (s, _) = api.post("/heartbeat", beat(vec!["none"], 3)).await?;
    assert_eq!(s, 200);
    let scrape = |auth: Option<&'static str>| {
        let url = format!("{}/metrics", b.url);
        async move {
            let mut r = reqwest::Client::new().get(url);
            if let Some(a) = auth {
                r = r.bearer_auth(a);
            }
            let r = r.send().await?;
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            anyhow::Ok((r.status().as_u16(), ct, r.text().await?))
        }
    };
    // heartbeats are stored by the next flush (about a second)
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (s, ct, text) = loop {
        let got = scrape(None).await?;
        if got.2.contains("shomei_station_outbox{station=\"API test station\"} 3") || std::time::Instant::now() > end {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(s, 200, "loopback may scrape");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    for line in ["shomei_orders{status=\"awaiting_payment\"} 1", "shomei_station_up{station=\"API test station\"} 1",
                 "shomei_station_printer_ready{station=\"API test station\"} 1", "shomei_station_outbox{station=\"API test station\"} 3",
                 "# TYPE shomei_mail_outbox_pending gauge"] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    // every sample line is `name{labels} value` with a number
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let value = l.rsplit(' ').next().unwrap_or("");
        assert!(value.parse::<f64>().is_ok(), "not a sample: {l}");
    }
    // out of paper: the printer is no longer ready
    api.post("/heartbeat", beat(vec!["media-empty-report"], 0)).await?;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let text = loop {
        let (_, _, text) = scrape(None).await?;
        if text.contains("shomei_station_printer_ready{station=\"API test station\"} 0") || std::time::Instant::now() > end {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(text.contains("shomei_station_printer_ready{station=\"API test station\"} 0"), "{text}");
    // a wrong token is refused even from loopback; the right one works
    assert_eq!(scrape(Some("guess")).await?.0, 403);
    assert_eq!(scrape(Some("scrape-secret")).await?.0, 200);
    Ok(())
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A station that vanishes (SIGKILL, a cut cable) while the backend waits for
/// the database's write lock on its behalf: the abandoned request leaves no
/// pooled connection half inside a transaction, and every later request is
/// answered as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_abandoned_while_waiting_for_the_write_lock_leaves_the_backend_serving() -> Result<()> {
    let backend = Backend::start(None).await?;
    let api = Api::new(&backend).await?;
    let charge = json!({ "card_uid": "012E4CD8A1B2C3D4", "idempotency_key": "abandoned-key" });
    let (s, _) = api.post("/reservations/999999/charge", charge.clone()).await?;
    assert_eq!(s, 404, "a charge for no reservation is refused after taking the write lock");
    for round in 0..3 {
        // another writer holds the write lock
        let holder = backend.hold_write_lock()?;
        // the station asks, the backend waits for the lock, and the station is gone
        let waiting = tokio::spawn({
            let (api, charge) = (api.clone(), charge.clone());
            async move { api.post("/reservations/999999/charge", charge).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "round {round}: the request waits for the write lock");
        waiting.abort();
        let _ = waiting.await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        holder.release()?;
        // every connection of the pool serves again: each answer is the same refusal
        let answers = futures_join_all((0..24).map(|_| {
            let (api, charge) = (api.clone(), charge.clone());
            async move { api.post("/reservations/999999/charge", charge).await.map(|(s, _)| s) }
        }))
        .await?;
        assert!(answers.iter().all(|s| *s == 404), "round {round}: {answers:?}");
    }
    Ok(())
}

/// Runs the futures at once (in tasks) and collects their results in order.
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Result<Vec<T>>
where
    F: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// On SQLite, stations' calls run in the desk's transactions, and monitoring
/// sees how many calls it ran and how many transactions it committed: a
/// reservation and a wrong number (refused, undone), each alone, are two
/// calls in two commits. On PostgreSQL a call is a pooled transaction: the
/// metrics name no desk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_counts_the_sqlite_desks_calls_and_commits() -> Result<()> {
    let b = Backend::start(None).await?;
    let api = Api::new(&b).await?;
    let page = b.order_as_graduate(1).await?;
    let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    let (s, res) = api.post("/reservations", json!({ "print_number": number })).await?;
    assert_eq!(s, 200, "{res}");
    let wrong = loop {
        let n = shomei_shared::PrintNumber::generate(&mut rand::thread_rng());
        if n.as_str() != number {
            break n;
        }
    };
    let (s, res) = api.post("/reservations", json!({ "print_number": wrong })).await?;
    assert_eq!((s, res["code"].as_str()), (404, Some("print_number_unknown")), "{res}");
    let text = reqwest::get(format!("{}/metrics", b.url)).await?.text().await?;
    let desk: Vec<&str> = text.lines().filter(|l| l.starts_with("shomei_station_desk_")).collect();
    match test_engine() {
        shomei_backend::store::Engine::Sqlite => assert_eq!(desk, ["shomei_station_desk_calls_total 2", "shomei_station_desk_commits_total 2"], "{text}"),
        shomei_backend::store::Engine::Postgres => assert_eq!(desk, Vec::<&str>::new(), "{text}"),
    }
    Ok(())
}
