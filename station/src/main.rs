//! `shomei-station [--config FILE]`

use shomei_station::config::Config;
use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config_file: Option<PathBuf> = std::env::var_os("SHOMEI_STATION_CONFIG").map(PathBuf::from);
    let mut command: Option<(String, PathBuf)> = None;
    let usage = || -> ! {
        eprintln!("usage: shomei-station [--config FILE] [backup DIR | restore DIR]");
        std::process::exit(2);
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config_file = args.next().map(PathBuf::from),
            "backup" | "restore" => command = Some((a.clone(), args.next().map(PathBuf::from).unwrap_or_else(|| usage()))),
            _ => usage(),
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    if std::env::var("SHOMEI_LOG_FORMAT").is_ok_and(|v| v == "json") {
        tracing_subscriber::fmt().json().with_writer(std::io::stderr).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    }
    let config = Config::load(config_file.as_deref())?;
    match command {
        Some((c, dir)) if c == "backup" => {
            println!("{}", shomei_station::journal::backup(&config.state_dir, &dir).await?);
            return Ok(());
        }
        Some((_, dir)) => {
            println!("{}", shomei_station::journal::restore(&config.state_dir, &dir).await?);
            return Ok(());
        }
        None => {}
    }
    shomei_station::run(config, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    })
    .await
}
