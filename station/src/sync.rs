//! Talking to the backend: the station API client, the heartbeat loop and the
//! outbox of print reports (delivered at least once, deduplicated by key).

use crate::journal::{now, Journal};
use shomei_shared::api::*;
use shomei_shared::{ApiError, ErrorCode, PrintNumber};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The backend could not be reached (or answered garbage): the station is offline.
    #[error("backend unreachable: {0}")]
    Offline(String),
    /// The backend said no, with a stable code.
    #[error("backend refused: {0}")]
    Refused(ApiError),
}

#[derive(Clone)]
pub struct Backend {
    http: reqwest::Client,
    /// The API's base at each of the backend's addresses, in order of preference.
    bases: Arc<Vec<String>>,
    /// The address in use: the last one that answered.
    current: Arc<AtomicUsize>,
    token: Arc<std::sync::RwLock<String>>,
}

/// An error with its causes ("error sending request: ...: invalid peer
/// certificate: UnknownIssuer"), so the log says why, not only that.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl Backend {
    /// A client of the backend at `base_urls` (one service at one or more
    /// addresses); `ca_pem` adds the university's own CA to the system's.
    pub fn new(base_urls: &[String], ca_pem: Option<&[u8]>) -> Result<Backend, reqwest::Error> {
        let loopback = base_urls.iter().all(|u| shomei_shared::net::url_is_loopback(u));
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(3)).timeout(Duration::from_secs(8)).https_only(!loopback);
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build()?;
        let bases = base_urls.iter().map(|u| format!("{}{API_PREFIX}", u.trim_end_matches('/'))).collect();
        Ok(Backend { http, bases: Arc::new(bases), current: Arc::default(), token: Arc::default() })
    }

    /// Sends the request `build` makes for an address, to the address in use;
    /// where it cannot even connect (the request never left), to the next
    /// address, each at most once, and the one that answers is used from then
    /// on. A request that reached a backend is never sent again here: a lost
    /// answer is the caller's to settle (idempotency keys, recovery).
    async fn send(&self, build: impl Fn(&str) -> reqwest::RequestBuilder) -> Result<reqwest::Response, reqwest::Error> {
        let n = self.bases.len().max(1);
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            match build(&self.bases[i]).send().await {
                Err(e) if e.is_connect() && k + 1 < n => {
                    tracing::warn!(address = %self.bases[i], error = %with_causes(&e), "backend address unreachable: trying the next one");
                    last = Some(e);
                }
                other => {
                    // switched once, by the first call to get through (calls
                    // running at the same time do not switch or say it again)
                    if other.is_ok() && i != start && self.current.compare_exchange(start, i, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                        tracing::warn!(address = %self.bases[i], "failed over to another backend address");
                    }
                    return other;
                }
            }
        }
        Err(last.expect("at least one address was tried"))
    }

    pub fn set_token(&self, token: &str) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token.to_string();
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let t = self.token.read().unwrap_or_else(|p| p.into_inner()).clone();
        rb.bearer_auth(t)
    }

    /// A successful response, or the backend's refusal / an offline error.
    async fn checked(resp: Result<reqwest::Response, reqwest::Error>) -> Result<reqwest::Response, SyncError> {
        let resp = resp.map_err(|e| SyncError::Offline(with_causes(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        match resp.json::<ApiError>().await {
            Ok(e) => Err(SyncError::Refused(e)),
            Err(_) => Err(SyncError::Offline(format!("HTTP {status}"))),
        }
    }

    async fn decode<T: serde::de::DeserializeOwned>(resp: Result<reqwest::Response, reqwest::Error>) -> Result<T, SyncError> {
        Self::checked(resp).await?.json::<T>().await.map_err(|e| SyncError::Offline(format!("bad answer: {e}")))
    }

    pub async fn enroll(&self, code: &str) -> Result<EnrollResponse, SyncError> {
        let req = EnrollRequest { code: code.to_string(), version: env!("CARGO_PKG_VERSION").into() };
        Self::decode(self.send(|base| self.http.post(format!("{base}/enroll")).json(&req)).await).await
    }

    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatResponse, SyncError> {
        Self::decode(self.send(|base| self.auth(self.http.post(format!("{base}/heartbeat"))).json(hb)).await).await
    }

    pub async fn reserve(&self, number: &PrintNumber) -> Result<Reservation, SyncError> {
        let req = ReserveRequest { print_number: number.clone() };
        // a user is waiting: a backend that does not answer within 4 s counts as
        // unreachable, and the offline copy is tried (nothing is charged at this step)
        Self::decode(self.send(|base| self.auth(self.http.post(format!("{base}/reservations"))).timeout(Duration::from_secs(4)).json(&req)).await).await
    }

    pub async fn charge(&self, reservation_id: i64, uid: &str, key: &str) -> Result<ChargeResponse, SyncError> {
        let req = ChargeRequest { card_uid: uid.to_string(), idempotency_key: key.to_string() };
        Self::decode(self.send(|base| self.auth(self.http.post(format!("{base}/reservations/{reservation_id}/charge"))).json(&req)).await).await
    }

    /// A card no account holds was tapped: a one-time code to link it in the portal.
    pub async fn card_link_code(&self, uid: &str) -> Result<CardLinkCode, SyncError> {
        let req = CardLinkRequest { card_uid: uid.to_string() };
        // a user is waiting at the card screen: no answer in 4 s counts as unreachable
        Self::decode(self.send(|base| self.auth(self.http.post(format!("{base}/card-links"))).timeout(Duration::from_secs(4)).json(&req)).await).await
    }

    /// What became of a charge sent with `key` whose answer was lost.
    pub async fn charge_status(&self, reservation_id: i64, key: &str) -> Result<shomei_shared::api::ChargeStatus, SyncError> {
        let key = urlencoding_min(key);
        Self::decode(self.send(|base| self.auth(self.http.get(format!("{base}/reservations/{reservation_id}/charges/{key}")))).await).await
    }

    pub async fn document(&self, reservation_id: i64) -> Result<Vec<u8>, SyncError> {
        self.get_bytes(&format!("/reservations/{reservation_id}/document")).await
    }

    /// Gives a reservation back (best effort: unreleased ones lapse by themselves).
    pub async fn release(&self, reservation_id: i64) -> Result<(), SyncError> {
        Self::checked(self.send(|base| self.auth(self.http.post(format!("{base}/reservations/{reservation_id}/release")))).await).await.map(drop)
    }

    /// A document (PDF) the backend serves at `path`.
    async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, SyncError> {
        let resp = Self::checked(self.send(|base| self.auth(self.http.get(format!("{base}{path}")))).await).await?;
        resp.bytes().await.map(|b| b.to_vec()).map_err(|e| SyncError::Offline(e.to_string()))
    }

    /// Sends a queued outbox body as is to `path` (a print report, an
    /// offline print or debit, a terminal payment: each answers with the
    /// order's status).
    pub async fn send_queued(&self, path: &str, body: &str) -> Result<ReportResponse, SyncError> {
        Self::decode(
            self.send(|base| {
                self.auth(self.http.post(format!("{base}{path}"))).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string())
            })
            .await,
        )
        .await
    }
}

impl Backend {
    /// P-3: the signed offline bundle.
    pub async fn offline_bundle(&self) -> Result<SignedBundle, SyncError> {
        Self::decode(self.send(|base| self.auth(self.http.get(format!("{base}/offline/bundle")))).await).await
    }

    /// P-3: the key that signs bundles (for a station enrolled before it was pinned at enrolment).
    pub async fn offline_key(&self) -> Result<shomei_shared::api::BundleKey, SyncError> {
        Self::decode(self.send(|base| self.auth(self.http.get(format!("{base}/offline/key")))).await).await
    }

    /// P-3: an order's PDF for the offline cache.
    pub async fn offline_document(&self, order_id: i64) -> Result<Vec<u8>, SyncError> {
        self.get_bytes(&format!("/offline/documents/{order_id}")).await
    }

    /// Operators' test page (PDF).
    pub async fn test_page(&self) -> Result<Vec<u8>, SyncError> {
        self.get_bytes("/test-page").await
    }

    pub async fn test_page_report(&self, request: i64, r: &TestPageReport) -> Result<(), SyncError> {
        Self::checked(self.send(|base| self.auth(self.http.post(format!("{base}/test-page/{request}"))).json(r)).await).await.map(drop)
    }
}

/// Delivers queued reports until the outbox is empty or the backend is unreachable.
pub async fn flush_outbox(backend: &Backend, journal: &Journal) -> Result<usize, sqlx::Error> {
    let mut sent = 0;
    for item in journal.pending_outbox(50).await? {
        let path = match item.kind.as_str() {
            "offline" => "/offline/prints".to_string(),
            "offline_debit" => "/offline/debits".to_string(),
            "terminal" => format!("/reservations/{}/terminal-payment", item.reservation_id),
            _ => format!("/reservations/{}/report", item.reservation_id),
        };
        let delivered = backend.send_queued(&path, &item.body).await;
        match delivered {
            Ok(r) => {
                journal.outbox_sent(item.id).await?;
                sent += 1;
                tracing::info!(key = %item.idempotency_key, order_status = %r.order_status, "report delivered");
            }
            Err(SyncError::Refused(e)) => {
                // the backend will never accept it: keep it, visible, and move on
                journal.outbox_failed(item.id, &e.to_string()).await?;
                tracing::error!(key = %item.idempotency_key, error = %e, "report refused by backend");
            }
            Err(SyncError::Offline(e)) => {
                journal.outbox_failed(item.id, &e).await?;
                tracing::warn!(attempts = item.attempts + 1, error = %e, "backend unreachable; report stays queued");
                break;
            }
        }
    }
    Ok(sent)
}

/// What the heartbeat needs to know about the station right now.
pub trait HealthSource: Send + Sync + 'static {
    fn printer(&self) -> PrinterStatus;
    fn reader_present(&self) -> bool;
    /// None when no payment terminal is configured.
    fn terminal_present(&self) -> Option<bool> {
        None
    }
    /// What operators asked for in the heartbeat's answer (maintenance, a test page).
    fn apply_control(&self, _answer: &HeartbeatResponse) {}
    /// The backend refused this station's credential (revoked).
    fn set_revoked(&self) {}
}

/// Free space on the file system holding `dir`, in MiB.
pub fn disk_free_mb(dir: &std::path::Path) -> Option<u64> {
    rustix::fs::statvfs(dir).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize) / (1024 * 1024))
}

/// Sends a heartbeat every `interval` (skipping missed ticks) and flushes the outbox.
pub async fn run(backend: Backend, journal: Journal, health: Arc<dyn HealthSource>, interval: Duration, started: std::time::Instant, state_dir: std::path::PathBuf) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut online = true;
    loop {
        tick.tick().await;
        if let Err(e) = flush_outbox(&backend, &journal).await {
            tracing::error!(error = %e, "journal error while flushing the outbox");
        }
        let hb = Heartbeat {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: started.elapsed().as_secs(),
            printer: health.printer(),
            reader_present: health.reader_present(),
            outbox_len: journal.outbox_len().await.unwrap_or(0) as u32,
            station_time: now(),
            terminal_present: health.terminal_present(),
            disk_free_mb: disk_free_mb(&state_dir),
            jobs_printed: journal.printed_count().await.unwrap_or(0).max(0) as u64,
        };
        match backend.heartbeat(&hb).await {
            Ok(answer) => {
                health.apply_control(&answer);
                if !online {
                    tracing::info!("backend reachable again");
                }
                online = true;
            }
            Err(SyncError::Refused(e)) if matches!(e.code, ErrorCode::StationRevoked | ErrorCode::Unauthorized) => health.set_revoked(),
            Err(e) => {
                if online {
                    tracing::warn!(error = %e, "heartbeat failed; station offline");
                }
                online = false;
            }
        }
    }
}

/// Keys are ASCII letters, digits and '-': anything else is percent-encoded.
fn urlencoding_min(key: &str) -> String {
    key.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
