//! `shomei-station`: the daemon beside a campus printer (kiosk, IC card
//! payment, IPP printing, journal and sync); its subcommands back up and
//! restore its state (see `--help`).

use clap::{Parser, Subcommand};
use shomei_station::config::Config;
use std::path::PathBuf;

/// The version `--version` prints; a build with the tests' failpoints says so.
#[cfg(feature = "failpoints")]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (with test failpoints: not for production)");
#[cfg(not(feature = "failpoints"))]
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Parser)]
#[command(name = "shomei-station", version = VERSION, about = "shomei print station: kiosk, IC card payment over PC/SC, IPP printing, offline journal and sync")]
struct Cli {
    /// TOML configuration file (then SHOMEI_STATION_* variables override it)
    #[arg(long, env = "SHOMEI_STATION_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the station (the default when no subcommand is given)
    Run,
    /// Copy the journal and the station's key into DIR (a new directory), live
    Backup { dir: PathBuf },
    /// Replace the journal and key with a backup in DIR (checked whole first)
    Restore { dir: PathBuf },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    if std::env::var("SHOMEI_LOG_FORMAT").is_ok_and(|v| v == "json") {
        tracing_subscriber::fmt().json().with_writer(std::io::stderr).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Backup { dir } => {
            println!("{}", shomei_station::journal::backup(&config.state_dir, &dir).await?);
            Ok(())
        }
        Command::Restore { dir } => {
            println!("{}", shomei_station::journal::restore(&config.state_dir, &dir).await?);
            Ok(())
        }
        Command::Run => {
            shomei_station::run(config, async {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                }
            })
            .await
        }
    }
}
