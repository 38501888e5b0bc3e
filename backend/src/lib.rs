//! shomei backend: the central web service.
//!
//! `main.rs` is thin: tests start the same app in-process on a listener they own.

pub mod accounts;
pub mod config;
pub mod demo;
pub mod documents;
pub mod error;
pub mod http;
pub mod mail;
pub mod messages;
pub mod orders;
pub mod payments;
pub mod stations;
pub mod store;
pub mod time;

use anyhow::Context;
use config::Config;
use sqlx::SqlitePool;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct AppState {
    pub pool: SqlitePool,
    pub config: Arc<Config>,
    pub fonts: Arc<documents::FontSet>,
    pub login_throttle: Arc<accounts::Throttle>,
    pub guesses: Arc<stations::GuessThrottle>,
    pub mail_wake: Arc<Notify>,
    pub secure_cookies: bool,
}

/// Loads fonts, opens and migrates the database, seeds the demo data if asked.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
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
    let pool = store::connect(&config.database.url).await.with_context(|| format!("database.url {}", config.database.url))?;
    if config.demo_data {
        demo::seed_if_empty(&pool).await.context("demo data")?;
    }
    let secure_cookies = config.http.public_url.starts_with("https://");
    if !secure_cookies {
        tracing::warn!(public_url = %config.http.public_url, "plain http: cookies are not marked Secure (demo only)");
    }
    Ok(AppState {
        pool,
        config: Arc::new(config),
        fonts: Arc::new(fonts),
        login_throttle: Arc::default(),
        guesses: Arc::default(),
        mail_wake: Arc::new(Notify::new()),
        secure_cookies,
    })
}

/// Serves the backend on `listener` until `shutdown` resolves.
pub async fn launch_with_listener(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = build_state(config).await?;
    let mail = &state.config.mail;
    mail::spawn_worker(
        state.pool.clone(),
        mail.smtp.clone(),
        mail.from.clone(),
        std::time::Duration::from_secs(mail.poll_interval_s.max(1)),
        state.mail_wake.clone(),
    );
    let app = http::router(state);
    tracing::info!(addr = %listener.local_addr()?, "backend listening");
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
