//! `shomei-backend`: serves the portal, the admin panel and the station API;
//! its subcommands are the console tasks of an install (see `--help`).

use clap::{Parser, Subcommand};
use shomei_backend::config::Config;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "shomei-backend", version, about = "shomei's central web service: portal, orders, certificates, admin panel and the station API")]
struct Cli {
    /// TOML configuration file (then SHOMEI_BACKEND_* variables override it)
    #[arg(long, env = "SHOMEI_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// A university and its first administrator, as `init` and `add-university` take them.
#[derive(clap::Args)]
struct UniversityArgs {
    /// The university's name in Japanese
    #[arg(long)]
    name_ja: String,
    /// The university's name in English
    #[arg(long)]
    name_en: String,
    #[arg(long, default_value = "Asia/Tokyo")]
    timezone: String,
    /// Its administrator's login
    #[arg(long)]
    admin: String,
}

/// Prints a new administrator's credentials, the one time they are shown.
fn print_admin(a: &shomei_backend::install::FirstAdmin, what: &str) {
    println!("university {} {what}; administrator {}", a.university_id, a.login);
    println!("initial password (once, change it at the first login): {}", a.initial_password);
    println!("TOTP secret: {}\n{}\nrecovery codes:", a.factor.secret_b32, a.factor.uri);
    for c in &a.factor.recovery_codes {
        println!("  {c}");
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default when no subcommand is given)
    Serve,
    /// First install of a real deployment: the university and its first administrator
    Init(UniversityArgs),
    /// Add a university to the running platform, with its first administrator (usable at once, no restart)
    AddUniversity(UniversityArgs),
    /// Make a station's one-time enrolment code without the admin panel
    EnrolmentCode {
        /// The station's name, e.g. "Library 1F"
        name: String,
        /// The university the station serves (its id)
        #[arg(long, default_value_t = 1)]
        university: i64,
    },
    /// A new second factor for a staff member (prints the secret and recovery codes once)
    StaffTotp { login: String },
    /// Print the current code of a TOTP secret (the demo's staff login)
    Totp { secret: String },
    /// Take a consistent copy of the live database into a new FILE
    Backup { file: PathBuf },
    /// Replace the database with a backup FILE (checked whole first)
    Restore { file: PathBuf },
    /// Copy this SQLite deployment into an empty PostgreSQL database (the backend stopped; every table checked)
    CopyToPostgres {
        /// The target, e.g. postgres://shomei@db.example/shomei
        url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shomei_backend::install_tls_provider();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    let json_logs = std::env::var("SHOMEI_LOG_FORMAT").is_ok_and(|v| v == "json");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    if json_logs {
        tracing_subscriber::fmt().json().with_writer(std::io::stderr).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            config.validate().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
            let listener = tokio::net::TcpListener::bind(&config.http.listen).await?;
            shomei_backend::launch_with_listener(config, listener, async {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                }
            })
            .await
        }
        Command::Init(u) => {
            let state = shomei_backend::build_state(config).await?;
            let a = shomei_backend::install::first_install(&state, &u.name_ja, &u.name_en, &u.timezone, &u.admin).await?;
            print_admin(&a, "created");
            Ok(())
        }
        Command::AddUniversity(u) => {
            let state = shomei_backend::build_state(config).await?;
            let new = shomei_backend::install::NewUniversity { name_ja: &u.name_ja, name_en: &u.name_en, timezone: &u.timezone, admin_login: &u.admin };
            let a = shomei_backend::install::add_university(&state, &new, "console").await.map_err(|e| anyhow::anyhow!("{e}"))?;
            print_admin(&a, "added");
            Ok(())
        }
        Command::EnrolmentCode { name, university } => {
            // For the demo and first installs: a code without going through the panel.
            let state = shomei_backend::build_state(config).await?;
            let ttl = state.config.stations.enrolment_code_ttl_s;
            let (id, code) = shomei_backend::stations::create_enrolment(&state.pool, university, &name, None, ttl).await?;
            println!("{code}");
            eprintln!("station {id} \"{name}\": enrolment code valid {} h", ttl / 3600);
            Ok(())
        }
        Command::StaffTotp { login } => {
            // On the server: a new second factor for a staff member (first install,
            // a lost phone with no recovery code left). Prints it once.
            let state = shomei_backend::build_state(config).await?;
            let mut tx = shomei_backend::store::begin_write(&state.pool).await?;
            let Some(staff) = shomei_backend::store::staff_by_login(&mut tx, &login).await? else {
                anyhow::bail!("no staff member with login {login:?}");
            };
            let f = shomei_backend::accounts::new_second_factor(&state.seal, &mut tx, staff.id, &login)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            shomei_backend::store::audit(&mut tx, "console", "staff.totp_reset", &format!("staff:{login}"), shomei_backend::time::now()).await?;
            tx.commit().await?;
            println!("TOTP secret: {}\n{}\nrecovery codes:", f.secret_b32, f.uri);
            for c in f.recovery_codes {
                println!("  {c}");
            }
            Ok(())
        }
        Command::Totp { secret } => {
            let Some(secret) = shomei_backend::accounts::totp::parse_base32(&secret) else {
                anyhow::bail!("not a base32 TOTP secret");
            };
            println!("{}", shomei_backend::accounts::totp::code_at(&secret, chrono::Utc::now().timestamp()));
            Ok(())
        }
        Command::Backup { file } => {
            println!("{}", shomei_backend::backup::backup(&config.database.url, &file).await?);
            Ok(())
        }
        Command::Restore { file } => {
            println!("{}", shomei_backend::backup::restore(&config.database.url, &file).await?);
            Ok(())
        }
        Command::CopyToPostgres { url } => {
            println!("{}", shomei_backend::backup::copy_to_postgres(&config.database.url, &url).await?);
            Ok(())
        }
    }
}
