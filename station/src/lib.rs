//! shomei print station: a daemon beside a campus printer.
//!
//! `main.rs` is thin; tests run the real binary as a child process (its PC/SC
//! socket is per process), and unit tests drive the pieces without devices.

pub mod config;
pub mod failpoint;
pub mod health;
pub mod journal;
pub mod kiosk;
pub mod messages;
pub mod metrics;
pub mod offline;
pub mod printer;
pub mod reader;
pub mod secrets;
pub mod recovery;
pub mod sync;
pub mod terminal;

use anyhow::Context;
use config::Config;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Opens the journal, enrols on first start, then runs the kiosk, the health
/// poller and the sync loop until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    cfg.validate().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let started = Instant::now();
    let cfg = Arc::new(cfg);
    let journal = journal::Journal::open(&cfg.state_dir)
        .await
        .with_context(|| format!("state_dir {}", cfg.state_dir.display()))?;
    let ca = match &cfg.backend_ca_file {
        Some(f) => Some(std::fs::read(f).map_err(|e| anyhow::anyhow!("backend_ca_file {}: {e}", f.display()))?),
        None => None,
    };
    let backend = sync::Backend::new(&cfg.backend_urls(), ca.as_deref())?;
    let secrets = secrets::Secrets::open(&cfg.secrets_dir()).with_context(|| format!("secrets_dir {}", cfg.secrets_dir().display()))?;
    // a journal from before secrets_dir: its token moves out of it
    if let Some(c) = journal.credential().await?.filter(|c| !c.token.is_empty()) {
        secrets.save_token(&c.token).context("moving the credential to secrets_dir")?;
        journal.forget_token().await?;
        tracing::info!("the station's credential moved from the journal to secrets_dir");
    }
    let credential = match (journal.credential().await?, secrets.token().context("secrets_dir: the credential")?) {
        (Some(c), Some(token)) => journal::Credential { token, ..c },
        (existing, _) => {
            if existing.is_some() {
                tracing::warn!("the station's credential is not in secrets_dir: it must enrol again");
            }
            let code = cfg.enrolment_code.as_deref().filter(|c| !c.trim().is_empty()).ok_or_else(|| {
                anyhow::anyhow!("this station is not enrolled: set enrolment_code to a code from the admin panel")
            })?;
            let r = loop {
                match backend.enroll(code).await {
                    Ok(r) => break r,
                    Err(sync::SyncError::Refused(e)) => anyhow::bail!("enrolment refused: {e}"),
                    Err(sync::SyncError::Offline(e)) => {
                        tracing::warn!(error = %e, "backend unreachable for enrolment; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            };
            secrets.save_token(&r.token).context("secrets_dir: saving the credential")?;
            if !r.bundle_key.is_empty() {
                secrets.save_bundle_key(&r.bundle_key).context("secrets_dir: pinning the bundle key")?;
            }
            journal.save_credential(r.station_id, &r.name, "").await?;
            tracing::info!(station_id = r.station_id, name = %r.name, "enrolled");
            journal::Credential { station_id: r.station_id, name: r.name, token: r.token }
        }
    };
    backend.set_token(&credential.token);
    tracing::info!(station_id = credential.station_id, name = %credential.name, "station starting");

    let printer = Arc::new(printer::IppPrinter::new(&cfg.printer_uri).map_err(|e| anyhow::anyhow!("printer_uri: {e}"))?);
    let reader_filter = Some(cfg.reader.clone()).filter(|r| !r.is_empty());
    let reader = Arc::new(reader::PcscReader::new(reader_filter));
    let health = Arc::new(health::Health::default());
    let cipher = offline::Cipher::load_or_create(&secrets, &cfg.state_dir).context("secrets_dir: the offline cache key")?;
    let offline = Arc::new(offline::Offline {
        cipher,
        credential_hash: shomei_shared::offline::credential_hash(&credential.token),
        station_id: credential.station_id,
        secrets: secrets.clone(),
    });
    // P-5: the transit e-money terminal, if this station has one
    let terminal = (!cfg.terminal_port.is_empty())
        .then(|| Arc::new(terminal::SerialTerminal::new(
            &cfg.terminal_port,
            cfg.terminal_baud,
            terminal::TerminalConfig { charge_timeout_s: cfg.terminal_charge_timeout_s, ..terminal::TerminalConfig::default() },
        )));
    let kiosk = kiosk::Kiosk::new(cfg.clone(), backend.clone(), journal.clone(), printer.clone(), reader.clone(), health.clone(), offline.clone(), terminal.clone());
    // P-3: keep the offline copy fresh while the backend answers
    {
        let (backend, journal, offline) = (backend.clone(), journal.clone(), offline.clone());
        let every = Duration::from_secs(cfg.offline_refresh_s.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match offline::prefetch(&backend, &journal, &offline).await {
                    Ok(n) => tracing::debug!(jobs = n, "offline copy refreshed"),
                    Err(e) => tracing::info!(error = %e, "offline copy not refreshed"),
                }
            }
        });
    }

    // jobs a crash or power cut interrupted are settled first (in the background: the kiosk starts at once)
    {
        let (journal, backend, printer, terminal) = (journal.clone(), backend.clone(), printer.clone(), terminal.clone());
        let timeout = Duration::from_secs(cfg.job_timeout_s);
        let station_id = credential.station_id;
        tokio::spawn(async move {
            match recovery::recover(&journal, &backend, printer.as_ref(), timeout, station_id, terminal.as_deref()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(settled = n, "interrupted jobs settled");
                    let _ = sync::flush_outbox(&backend, &journal).await;
                }
                Err(e) => tracing::error!(error = %e, "journal error while settling interrupted jobs"),
            }
            // then, every few seconds, jobs that could not be settled when they ended
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                match recovery::settle_later(&journal, &backend, printer.as_ref(), station_id).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(settled = n, "held-up jobs settled");
                        let _ = sync::flush_outbox(&backend, &journal).await;
                    }
                    Err(e) => tracing::error!(error = %e, "journal error while settling held-up jobs"),
                }
            }
        });
    }
    // operators' test pages (asked for through the heartbeat's answer)
    {
        let (backend, printer, health) = (backend.clone(), printer.clone(), health.clone());
        tokio::spawn(async move {
            let mut done = 0i64;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let wanted = health.test_page_wanted();
                if wanted > done {
                    test_page(&backend, printer.as_ref(), wanted).await;
                    done = wanted;
                }
            }
        });
    }
    // the first heartbeat already carries the printer's real state
    health.set_printer(printer::Printer::status(printer.as_ref()).await);
    let r = reader.clone();
    health.set_reader_present(tokio::task::spawn_blocking(move || reader::CardReader::reader_present(r.as_ref())).await.unwrap_or(false));
    if let Some(t) = &terminal {
        health.set_terminal_present(Some(t.present().await));
    }
    health.measure_disk(&cfg.state_dir);
    tokio::spawn(health::run(health.clone(), printer.clone(), reader.clone(), terminal.clone(), cfg.state_dir.clone(), Duration::from_secs(cfg.printer_poll_s)));
    tokio::spawn(sync::run(backend.clone(), journal.clone(), health.clone(), Duration::from_secs(cfg.heartbeat_s), started, cfg.state_dir.clone()));
    // The main loop: returns idle kiosk screens to the start, and says it is alive.
    let alive = Arc::new(Liveness::default());
    {
        let (idle, alive) = (kiosk.clone(), alive.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                idle.check_idle();
                alive.main_loop_ticked(started);
                failpoint::hang("hang-main-loop", started.elapsed() > Duration::from_secs(3)).await;
            }
        });
    }
    let notifier = shomei_shared::systemd::Notifier::from_env();
    let listener = tokio::net::TcpListener::bind(&cfg.kiosk_listen).await.with_context(|| format!("kiosk_listen {}", cfg.kiosk_listen))?;
    tracing::info!(addr = %listener.local_addr()?, ready_ms = started.elapsed().as_millis() as u64, "kiosk listening");
    if let Err(e) = notifier.notify(&format!("READY=1\nSTATUS=serving the kiosk as {}", credential.name)) {
        tracing::warn!(error = %e, "systemd readiness not sent");
    }
    if failpoint::COMPILED_IN {
        tracing::warn!("this build has the tests' failpoints: not for production");
    }
    // Under systemd: the watchdog is pinged at half its interval only while
    // the main loop ticks and the kiosk answers its own page (ST-6); if
    // either hangs, the pings stop and systemd restarts the station.
    if let Some(every) = notifier.watchdog() {
        let mut probe = listener.local_addr()?;
        if probe.ip().is_unspecified() {
            probe.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        tokio::spawn(watchdog(notifier.clone(), every, alive.clone(), format!("http://{probe}/kiosk/state"), started));
    }
    axum::serve(listener, kiosk::router(kiosk)).with_graceful_shutdown(shutdown).await?;
    let _ = notifier.notify("STOPPING=1");
    Ok(())
}

/// When the station's main loop last ticked (ms since start).
#[derive(Default)]
struct Liveness {
    main_loop_ms: std::sync::atomic::AtomicU64,
}

impl Liveness {
    fn main_loop_ticked(&self, started: Instant) {
        self.main_loop_ms.store(started.elapsed().as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }

    fn main_loop_silent_for(&self, started: Instant) -> Duration {
        let last = Duration::from_millis(self.main_loop_ms.load(std::sync::atomic::Ordering::SeqCst));
        started.elapsed().saturating_sub(last)
    }
}

/// Pings systemd's watchdog while the main loop and the kiosk are alive.
async fn watchdog(notifier: shomei_shared::systemd::Notifier, every: Duration, alive: Arc<Liveness>, kiosk_url: String, started: Instant) {
    let half = every / 2;
    let client = match reqwest::Client::builder().timeout(half.max(Duration::from_millis(200))).no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "watchdog: no HTTP client to ask the kiosk; not pinging");
            return;
        }
    };
    let mut tick = tokio::time::interval(half);
    let mut was_ok = true;
    loop {
        tick.tick().await;
        let silent = alive.main_loop_silent_for(started);
        let problem = if silent > half {
            Some(format!("the main loop has not ticked for {} ms", silent.as_millis()))
        } else {
            // (bounded here too: the watchdog itself must never hang)
            match tokio::time::timeout(half.max(Duration::from_millis(200)), client.get(&kiosk_url).send()).await {
                Ok(Ok(r)) if r.status().is_success() => None,
                Ok(Ok(r)) => Some(format!("the kiosk answered {}", r.status())),
                Ok(Err(e)) => Some(format!("the kiosk did not answer: {e}")),
                Err(_) => Some(format!("the kiosk did not answer within {} ms", half.as_millis())),
            }
        };
        match problem {
            None => {
                if let Err(e) = notifier.notify("WATCHDOG=1") {
                    tracing::warn!(error = %e, "watchdog ping not sent");
                }
                was_ok = true;
            }
            Some(p) => {
                if was_ok {
                    tracing::error!(problem = %p, "watchdog not pinged: systemd restarts the station if this lasts");
                }
                was_ok = false;
            }
        }
    }
}

/// Prints operators' test page `request` and tells the backend how it went.
async fn test_page<P: printer::Printer>(backend: &sync::Backend, printer: &P, request: i64) {
    let outcome: Result<(), String> = async {
        let pdf = backend.test_page().await.map_err(|e| e.to_string())?;
        let id = printer.submit(pdf, &format!("shomei-test-page-{request}"), &Default::default()).await.map_err(|e| format!("Print-Job: {e}"))?;
        match printer::follow_job(printer, id, Duration::from_millis(300), Duration::from_secs(60)).await {
            Ok((printer::JobState::Completed, _)) => Ok(()),
            Ok((state, reasons)) => Err(format!("job {id} {state:?} {}", reasons.join(","))),
            Err(e) => Err(e.to_string()),
        }
    }
    .await;
    tracing::info!(request, ?outcome, "test page");
    let report = shomei_shared::api::TestPageReport { printed: outcome.is_ok(), detail: outcome.err().unwrap_or_default() };
    if let Err(e) = backend.test_page_report(request, &report).await {
        tracing::warn!(error = %e, "test page outcome not reported");
    }
}
