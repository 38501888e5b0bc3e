//! shomei backend: the central web service.
//!
//! `main.rs` is thin: tests start the same app in-process on a listener they own.

pub mod accounts;
pub mod backup;
pub mod config;
pub mod demo;
pub mod documents;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod install;
pub mod jobs;
pub mod mail;
pub mod messages;
pub mod metrics;
pub mod orders;
pub mod payments;
pub mod registrar;
pub mod registration;
pub mod sealed;
pub mod stations;
pub mod store;
pub mod time;

use anyhow::Context;
use config::Config;
use crate::store::Pool;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The backend's shared state. axum clones it for every request (and for
/// every middleware a request passes), so it is one allocation: a clone is
/// one reference count, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What the backend's handlers and jobs share (reached through [`AppState`]).
pub struct Services {
    pub pool: Pool,
    pub config: Arc<Config>,
    pub fonts: Arc<documents::FontSet>,
    pub login_throttle: Arc<accounts::Throttle>,
    pub guesses: Arc<stations::GuessThrottle>,
    pub mail_wake: Arc<Notify>,
    pub secure_cookies: bool,
    pub hasher: accounts::passwords::Hasher,
    pub seal: Arc<sealed::SealKey>,
    /// Each university's directory (roster or LDAP) that checks its students.
    pub directories: Arc<accounts::directory::Directories>,
    pub sessions: accounts::SessionLimits,
    /// Throttles registration, reset and link requests per client address.
    pub request_throttle: Arc<accounts::Throttle>,
    pub paypal: Arc<payments::paypal::PayPalClient>,
    pub smartpit: Arc<payments::smartpit::SmartPitClient>,
    pub storeprint: Arc<dyn payments::storeprint::StorePrintService>,
    /// Nudges the convenience-store print registration after a payment.
    pub store_wake: Arc<Notify>,
    /// Wakes the graduation-day job (a run was started).
    pub cohort_wake: Arc<Notify>,
    /// Unix time the backend started (metrics).
    pub started_at: i64,
    /// Heartbeats waiting for the next flush.
    pub heartbeats: Arc<stations::HeartbeatBuffer>,
    /// The universities' names stations show (cached).
    pub university_names: Arc<stations::UniversityNames>,
    /// Uploaded images checked at once (`accounts.max_concurrent_images`).
    pub image_slots: Arc<tokio::sync::Semaphore>,
    /// Orders per user per minute.
    pub order_rate: Arc<orders::OrderRate>,
    /// Signs stations' offline bundles.
    pub bundle_signer: Arc<stations::signing::BundleSigner>,
    /// Peers whose forwarding headers name the client (`http.trusted_proxies`).
    pub trusted_proxies: Arc<http::client::TrustedProxies>,
    /// This process's claim on background jobs (run once across backends).
    pub leases: jobs::Leases,
    /// Each university's document-signing key and the time-stamp authority (digital certificates).
    pub sealers: Arc<documents::signing::Sealers>,
    /// Where stations' redemption calls run on SQLite (None on PostgreSQL: pooled transactions).
    pub desk: Option<store::Desk>,
}

impl Services {
    /// What making orders' documents and signed copies needs.
    pub fn desk(&self) -> orders::Desk<'_> {
        orders::Desk { pool: &self.pool, fonts: &self.fonts, seal: &self.seal, sealers: &self.sealers, public_url: &self.config.http.public_url }
    }

    /// The online payment providers orders can be paid through (O-4).
    pub fn payment_providers(&self) -> [&dyn payments::PaymentProvider; 2] {
        [self.paypal.as_ref(), self.smartpit.as_ref()]
    }

    pub fn payment_provider(&self, method: &str) -> Option<&dyn payments::PaymentProvider> {
        self.payment_providers().into_iter().find(|p| p.method() == method)
    }
}

/// Makes aws-lc-rs the process's TLS provider (idempotent). Two rustls
/// providers are compiled in (ring comes with the PDF signing crate's
/// dependencies), and then rustls picks none by itself: a library that asks
/// for the default (lettre, a browser driver) would panic.
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Loads fonts, opens and migrates the database, seeds the demo data if asked.
pub async fn build_state(mut config: Config) -> anyhow::Result<AppState> {
    install_tls_provider();
    config.read_secret_files().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    config.validate().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let mut fonts = Vec::new();
    for path in &config.documents.fonts {
        match std::fs::read(path) {
            Ok(bytes) => fonts.push((path.display().to_string(), bytes)),
            Err(e) => tracing::warn!(font = %path.display(), error = %e, "font not readable, skipped"),
        }
    }
    if fonts.is_empty() {
        anyhow::bail!("documents.fonts: none of the configured fonts could be read (install fonts-ipaexfont-mincho)");
    }
    let fonts = documents::FontSet::new(fonts).map_err(|e| anyhow::anyhow!("documents.fonts: {e}"))?;
    let sealers = documents::signing::Sealers::load(&config.documents.signing).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let pool = store::connect(&config.database.url).await.with_context(|| format!("database.url {}", config.database.url))?;
    let seal = load_seal_key(&config).context("security.data_key")?;
    registration::seal_plain_birth_dates(&pool, &seal).await.map_err(|e| anyhow::anyhow!("sealing birth dates: {e}"))?;
    mail::seal_plain_outbox(&pool, &seal).await.context("sealing the outbox")?;
    orders::seal_plain_pdfs(&pool, &seal).await.map_err(|e| anyhow::anyhow!("sealing certificate PDFs: {e}"))?;
    let bundle_signer = stations::signing::BundleSigner::load_or_create(&pool, &seal).await.context("the bundle signing key")?;
    if demo::record_deployment(&pool, config.demo_data).await.context("deployment")? && config.demo_data {
        demo::seed_if_empty(&pool, &seal).await.context("demo data")?;
        tracing::info!(staff = demo::STAFF_LOGIN, totp_secret = demo::STAFF_TOTP_SECRET, "demo staff second factor (demo only)");
    }
    let seal = Arc::new(seal);
    let hasher = accounts::passwords::Hasher::new(config.security.argon2, config.security.max_concurrent_hashes);
    let secure_cookies = config.http.public_url.starts_with("https://");
    if !secure_cookies {
        tracing::warn!(public_url = %config.http.public_url, "plain http: cookies are not marked Secure (demo only)");
    }
    Ok(AppState(Arc::new(Services {
        pool: pool.clone(),
        fonts: Arc::new(fonts),
        login_throttle: Arc::new(accounts::Throttle::new(pool.clone(), "login", config.security.login_delay_ms)),
        request_throttle: Arc::new(accounts::Throttle::new(pool.clone(), "request", config.security.login_delay_ms)),
        guesses: Arc::new(stations::GuessThrottle::new(pool.clone())),
        mail_wake: Arc::new(Notify::new()),
        secure_cookies,
        directories: Arc::new(accounts::directory::Directories::new(config.directory.clone(), pool.clone(), hasher.clone(), seal.clone())),
        seal,
        hasher,
        sessions: accounts::SessionLimits {
            idle_s: config.accounts.session_idle_s,
            staff_idle_s: config.accounts.staff_session_idle_s,
            absolute_s: config.accounts.session_absolute_s,
        },
        paypal: Arc::new(payments::paypal::PayPalClient::new(config.paypal.clone()).map_err(|e| anyhow::anyhow!("paypal: {e}"))?),
        smartpit: Arc::new(payments::smartpit::SmartPitClient::new(config.smartpit.clone())),
        storeprint: Arc::new(payments::storeprint::StorePrintClient::new(config.storeprint.clone())),
        store_wake: Arc::new(Notify::new()),
        cohort_wake: Arc::new(Notify::new()),
        started_at: crate::time::now(),
        heartbeats: Arc::default(),
        university_names: Arc::default(),
        bundle_signer: Arc::new(bundle_signer),
        order_rate: Arc::new(orders::OrderRate::new(pool.clone())),
        image_slots: Arc::new(tokio::sync::Semaphore::new(config.accounts.max_concurrent_images.max(1))),
        trusted_proxies: Arc::new(http::client::TrustedProxies::from_config(&config.http.trusted_proxies, &config.http.forwarded_header)),
        leases: jobs::Leases::new(pool.clone(), config.database.job_lease_s),
        sealers: Arc::new(sealers),
        desk: match store::engine(&pool) {
            store::Engine::Sqlite => Some(store::Desk::open(&pool).context("the station desk")?),
            store::Engine::Postgres => None,
        },
        config: Arc::new(config),
    })))
}

/// Jobs that run by themselves, each idempotent (a restart or a second run does
/// no harm): unpaid orders past their deadline expire (every minute); ID images
/// past their retention are deleted (hourly). With several backends on one
/// database each pass runs in the one holding the job's lease ([`jobs`]).
fn spawn_housekeeping(state: AppState, stop: &Stop) {
    // heartbeats are written in one transaction per flush interval
    let s = state.clone();
    spawn_until_stopped(stop, async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(s.config.stations.heartbeat_flush_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = s.heartbeats.flush(&s.pool).await {
                tracing::warn!(error = %e, "heartbeat flush failed");
            }
        }
    });
    // paid convenience-store print orders are registered with the stores'
    // service after each payment, and retried every minute while it is down
    let s = state.clone();
    spawn_until_stopped(stop, async move {
        loop {
            if s.leases.hold(jobs::STORE_PRINTS).await {
                if let Err(e) = orders::register_store_prints(&s.pool, &s.seal, s.storeprint.as_ref(), &s.config.http.public_url).await {
                    tracing::warn!(error = %e, "store print registration pass failed");
                }
            }
            s.mail_wake.notify_one();
            tokio::select! {
                _ = s.store_wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(s.config.storeprint.retry_s.max(1))) => {}
            }
        }
    });
    // graduation day: the graduates of the runs started are issued (signed,
    // mailed); a graduate whose try failed is tried again on the next pass
    let s = state.clone();
    spawn_until_stopped(stop, async move {
        loop {
            // a batch at a time, the lease taken (renewed) before each
            let mut after = 0;
            while s.leases.hold(jobs::COHORTS).await {
                match orders::cohort::pass(&s.desk(), after).await {
                    Ok((issued, next)) => {
                        if issued > 0 {
                            s.mail_wake.notify_one();
                        }
                        match next {
                            Some(n) => after = n,
                            None => break,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "graduation-day pass failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = s.cohort_wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(s.config.orders.cohort_retry_s.max(1))) => {}
            }
        }
    });
    // operators hear about stations that go offline or need attention; samples older than two days go
    let s = state.clone();
    spawn_until_stopped(stop, async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(s.config.stations.alert_check_s.max(1)));
        let mut last_prune = 0i64;
        loop {
            tick.tick().await;
            if !s.leases.hold(jobs::STATION_ALERTS).await {
                continue;
            }
            let st = &s.config.stations;
            match stations::fleet::alert_pass(&s.pool, &s.seal, st.offline_after_s, &st.alert_emails, &s.config.http.public_url).await {
                Ok(0) => {}
                Ok(_) => s.mail_wake.notify_one(),
                Err(e) => tracing::warn!(error = %e, "station alert pass failed"),
            }
            if time::now() - last_prune > 3600 {
                last_prune = time::now();
                if let Ok(mut c) = s.pool.acquire().await {
                    let _ = store::prune_station_samples(&mut c, time::now() - 2 * 86400).await;
                }
            }
        }
    });
    // ST-5: a paid print that failed and was not reprinted by its deadline is
    // refunded from the next day (`orders.refund_check_s`; each pass idempotent)
    let s = state.clone();
    spawn_until_stopped(stop, async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(s.config.orders.refund_check_s.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !s.leases.hold(jobs::REFUNDS).await {
                continue;
            }
            let providers = s.payment_providers();
            let r = payments::refunds::Refunds {
                pool: &s.pool,
                seal: &s.seal,
                providers: &providers,
                storeprint: s.storeprint.as_ref(),
                public_url: &s.config.http.public_url,
            };
            match payments::refunds::refund_failed_prints(&r).await {
                Ok(0) => {}
                Ok(_) => s.mail_wake.notify_one(),
                Err(e) => tracing::warn!(error = %e, "automatic refund pass failed"),
            }
        }
    });
    let s = state.clone();
    spawn_until_stopped(stop, async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(s.config.orders.expiry_check_s.max(1)));
        loop {
            tick.tick().await;
            if !s.leases.hold(jobs::ORDER_EXPIRY).await {
                continue;
            }
            if let Err(e) = orders::expire_unpaid(&s.pool).await {
                tracing::warn!(error = %e, "order expiry pass failed");
            }
            // throttles count within 15 minutes at most
            if let Ok(mut c) = s.pool.acquire().await {
                let _ = store::prune_throttle_failures(&mut c, chrono::Utc::now().timestamp_millis() - 3_600_000).await;
            }
        }
    });
    spawn_until_stopped(stop, async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if !state.leases.hold(jobs::IMAGE_RETENTION).await {
                continue;
            }
            let a = &state.config.accounts;
            if let Err(e) = registration::expire_images(&state.pool, &a.upload_dir, a.id_image_retention_days).await {
                tracing::warn!(error = %e, "ID image retention pass failed");
            }
        }
    });
}

/// The data key from configuration, or (neither key nor file given) a key
/// file beside the database, made on first start.
fn load_seal_key(config: &Config) -> anyhow::Result<sealed::SealKey> {
    let sec = &config.security;
    if !sec.data_key.is_empty() || sec.data_key_file.is_some() {
        return sealed::SealKey::from_config(&sec.data_key, sec.data_key_file.as_deref()).map_err(|e| anyhow::anyhow!("{e}"));
    }
    if store::Engine::of_url(&config.database.url)? != store::Engine::Sqlite {
        anyhow::bail!("security.data_key_file (or data_key) must be set on PostgreSQL: every backend of the service seals and opens data with the same key");
    }
    let path = store::database_file(&config.database.url)?.with_extension("key");
    if !path.exists() {
        let (_, text) = sealed::SealKey::generate();
        write_private(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        tracing::warn!(path = %path.display(), "no security.data_key configured: made a new data key file; back it up with the database");
    }
    sealed::SealKey::from_config("", Some(&path)).map_err(|e| anyhow::anyhow!("{e}"))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

/// Tells the background jobs that the backend stops.
type Stop = tokio::sync::watch::Receiver<bool>;

/// Runs a background job until the backend stops.
fn spawn_until_stopped(stop: &Stop, job: impl Future<Output = ()> + Send + 'static) {
    let mut stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = job => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    });
}

/// Serves the backend on `listener` until `shutdown` resolves.
pub async fn launch_with_listener(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    launch_until(config, listener, shutdown, std::future::pending()).await
}

/// Serves the backend on `listener` until `shutdown` resolves (then its
/// background jobs stop and their leases are given up at once), or until
/// `kill` resolves: everything stops where it is and the leases are kept
/// until they lapse, as when the process dies (tests of several backends).
pub async fn launch_until(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    kill: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = build_state(config).await?;
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mail = &state.config.mail;
    if let Some(worker) = mail::worker(state.pool.clone(), state.seal.clone(), mail, std::time::Duration::from_secs(mail.poll_interval_s.max(1)), state.mail_wake.clone(), state.leases.clone()) {
        spawn_until_stopped(&stop, worker);
    }
    spawn_housekeeping(state.clone(), &stop);
    // under systemd (Type=notify): ready once listening; the watchdog is pinged
    // at half its interval only while the database answers
    let notifier = shomei_shared::systemd::Notifier::from_env();
    if let Some(interval) = notifier.watchdog() {
        let (n, pool) = (notifier.clone(), state.pool.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tick.tick().await;
                if sqlx::query("SELECT 1").execute(&pool).await.is_ok() {
                    let _ = n.notify("WATCHDOG=1");
                }
            }
        });
    }
    let h = &state.config.http;
    let limits = http::serve::Limits {
        header_read_timeout: std::time::Duration::from_secs(h.header_read_timeout_s),
        max_connections: h.max_connections,
    };
    let tls = h.tls_cert_file.clone().zip(h.tls_key_file.clone()).map(|(cert, key)| http::serve::TlsFiles { cert, key });
    if let Some(files) = &tls {
        http::serve::tls_config(files)?; // a bad certificate stops the start, before READY
    }
    let app = http::router(state.clone());
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "backend listening");
    let served = http::serve::serve(listener, app, limits, tls, shutdown);
    let _ = notifier.notify("READY=1");
    tokio::select! {
        served = served => {
            let _ = notifier.notify("STOPPING=1");
            let _ = stopping.send(true);
            // another backend on this database takes the background work over at once
            state.leases.release_all().await;
            served?;
        }
        _ = kill => {
            let _ = stopping.send(true);
            tracing::warn!("backend killed: its leases lapse by themselves");
        }
    }
    Ok(())
}
