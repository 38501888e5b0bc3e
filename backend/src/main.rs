//! `shomei-backend [--config FILE] [enrolment-code NAME | staff-totp LOGIN | totp SECRET]`

use shomei_backend::config::Config;
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: shomei-backend [--config FILE] [enrolment-code STATION_NAME | staff-totp LOGIN | totp BASE32_SECRET | backup FILE | restore FILE]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config_file: Option<PathBuf> = std::env::var_os("SHOMEI_CONFIG").map(PathBuf::from);
    let mut command = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config_file = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            _ => command.push(a),
        }
    }
    let config = Config::load(config_file.as_deref())?;
    let json_logs = std::env::var("SHOMEI_LOG_FORMAT").is_ok_and(|v| v == "json");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    if json_logs {
        tracing_subscriber::fmt().json().with_writer(std::io::stderr).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    }
    match command.first().map(String::as_str) {
        None => {
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
        Some("enrolment-code") => {
            // For the demo and first installs: a code without going through the panel.
            let name = command.get(1).cloned().unwrap_or_else(|| usage());
            let state = shomei_backend::build_state(config).await?;
            let ttl = state.config.stations.enrolment_code_ttl_s;
            let (id, code) = shomei_backend::stations::create_enrolment(&state.pool, &name, None, ttl).await?;
            println!("{code}");
            eprintln!("station {id} \"{name}\": enrolment code valid {} h", ttl / 3600);
            Ok(())
        }
        Some("staff-totp") => {
            // On the server: a new second factor for a staff member (first install,
            // a lost phone with no recovery code left). Prints it once.
            let login = command.get(1).cloned().unwrap_or_else(|| usage());
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
        Some("totp") => {
            // The current code of a TOTP secret (the demo's staff login).
            let secret = command.get(1).and_then(|s| shomei_backend::totp::parse_base32(s)).unwrap_or_else(|| usage());
            println!("{}", shomei_backend::totp::code_at(&secret, chrono::Utc::now().timestamp()));
            Ok(())
        }
        Some("backup") => {
            let dest = command.get(1).cloned().unwrap_or_else(|| usage());
            println!("{}", shomei_backend::backup::backup(&config.database.url, std::path::Path::new(&dest)).await?);
            Ok(())
        }
        Some("restore") => {
            let src = command.get(1).cloned().unwrap_or_else(|| usage());
            println!("{}", shomei_backend::backup::restore(&config.database.url, std::path::Path::new(&src)).await?);
            Ok(())
        }
        Some(_) => usage(),
    }
}
