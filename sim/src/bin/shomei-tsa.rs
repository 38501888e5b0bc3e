//! `shomei-tsa [--listen ADDR] --dir DIR [--cert PEM --key PEM --chain PEM]`:
//! a real RFC 3161 time-stamp authority on loopback for tests and the demo:
//! OpenSSL's `openssl ts -reply` behind a small HTTP front (RFC 3161 over
//! HTTP: `POST /` with `application/timestamp-query`, answered with
//! `application/timestamp-reply`). Without `--cert`/`--key` it makes its own
//! CA and TSA certificate in DIR (ca.pem, tsa.pem, tsa.key); given them (a
//! test's own CA), it signs with those. Prints `READY listening on
//! http://ADDR` once it accepts connections.
//!
//! Knob: `POST /sim/tamper {"on": true}`: from then on each answer's last
//! byte (in the token's signature value) is flipped, as a forger or a
//! broken network would hand it over; `{"on": false}` stops it.
//! `POST /sim/refuse {"on": true}`: the authority is out of service (503)
//! until `{"on": false}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "shomei-tsa", version, about = "Local RFC 3161 time-stamp authority (openssl ts behind HTTP)", args_override_self = true)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the READY line tells which)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8099")]
    listen: String,
    /// Working directory: the OpenSSL configuration, serial file, and the made keys
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The TSA's certificate (extended key usage timeStamping, critical); made when absent
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// Its private key
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// The CA certificates put in each answer beside the TSA's own
    #[arg(long, value_name = "PEM")]
    chain: Option<PathBuf>,
}

struct Tsa {
    dir: PathBuf,
    config: PathBuf,
    next: AtomicU64,
    /// Serial numbers are this plus the request's number (the start time in
    /// nanoseconds: a restarted authority never repeats one).
    serial_base: u128,
    /// Flip the last byte of each answer (the knob).
    tamper: AtomicBool,
    /// Out of service (the knob).
    refuse: AtomicBool,
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output()?;
    anyhow::ensure!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// A CA and a TSA certificate it signs, in `dir`: (tsa.pem, tsa.key, ca.pem).
fn make_keys(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    std::fs::write(dir.join("tsa-ext.cnf"), "extendedKeyUsage = critical,timeStamping\nkeyUsage = critical,digitalSignature\nbasicConstraints = CA:FALSE\n")?;
    openssl(dir, &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=shomei test TSA CA"])?;
    openssl(dir, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=shomei test TSA"])?;
    openssl(dir, &["x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tsa.pem", "-days", "3650", "-extfile", "tsa-ext.cnf"])?;
    Ok((dir.join("tsa.pem"), dir.join("tsa.key"), dir.join("ca.pem")))
}

async fn stamp(State(tsa): State<Arc<Tsa>>, headers: axum::http::HeaderMap, body: Bytes) -> axum::response::Response {
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if kind != "application/timestamp-query" || body.is_empty() || body.len() > 16 * 1024 {
        return (StatusCode::BAD_REQUEST, "send an RFC 3161 TimeStampReq as application/timestamp-query\n").into_response();
    }
    if tsa.refuse.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "out of service\n").into_response();
    }
    let n = tsa.next.fetch_add(1, Ordering::Relaxed);
    let (query, reply, serial) = (tsa.dir.join(format!("q{n}.tsq")), tsa.dir.join(format!("r{n}.tsr")), tsa.dir.join(format!("serial-{n}")));
    let answer = tokio::task::spawn_blocking({
        let (tsa, query, reply, serial) = (tsa.clone(), query.clone(), reply.clone(), serial.clone());
        move || -> anyhow::Result<Vec<u8>> {
            std::fs::write(&query, &body)?;
            // each answer its own serial number (unique across requests and
            // restarts), in its own file: answers made at once never share one
            std::fs::write(&serial, format!("{:032X}\n", tsa.serial_base + u128::from(n)))?;
            let config = tsa.config.display().to_string();
            let out = Command::new("openssl")
                .args(["ts", "-reply", "-config", &config, "-queryfile", &query.display().to_string(), "-out", &reply.display().to_string()])
                .env("SHOMEI_TSA_SERIAL", &serial)
                .current_dir(&tsa.dir)
                .output()?;
            anyhow::ensure!(out.status.success(), "openssl ts -reply: {}", String::from_utf8_lossy(&out.stderr));
            Ok(std::fs::read(&reply)?)
        }
    })
    .await;
    for f in [&query, &reply, &serial] {
        let _ = std::fs::remove_file(f);
    }
    match answer {
        Ok(Ok(mut der)) => {
            if tsa.tamper.load(Ordering::Relaxed) {
                if let Some(last) = der.last_mut() {
                    *last ^= 1;
                }
            }
            ([(header::CONTENT_TYPE, "application/timestamp-reply")], der).into_response()
        }
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn tamper(State(tsa): State<Arc<Tsa>>, axum::Json(knob): axum::Json<serde_json::Value>) -> axum::Json<serde_json::Value> {
    let on = knob["on"].as_bool().unwrap_or(false);
    tsa.tamper.store(on, Ordering::Relaxed);
    axum::Json(serde_json::json!({ "tamper": on }))
}

async fn refuse(State(tsa): State<Arc<Tsa>>, axum::Json(knob): axum::Json<serde_json::Value>) -> axum::Json<serde_json::Value> {
    let on = knob["on"].as_bool().unwrap_or(false);
    tsa.refuse.store(on, Ordering::Relaxed);
    axum::Json(serde_json::json!({ "refuse": on }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { listen, dir, cert, key, chain } = Args::parse();
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let (cert, key, chain) = match (cert, key) {
        (Some(c), Some(k)) => (c.canonicalize()?, k.canonicalize()?, chain.map(|c| c.canonicalize()).transpose()?),
        _ => {
            let (c, k, ca) = make_keys(&dir)?;
            (c, k, Some(chain.unwrap_or(ca)))
        }
    };
    let config = dir.join("tsa.cnf");
    let certs = chain.map(|c| format!("certs = {}\n", c.display())).unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "[ tsa ]\ndefault_tsa = tsa_config\n\n[ tsa_config ]\ndir = {d}\nserial = $ENV::SHOMEI_TSA_SERIAL\ncrypto_device = builtin\n\
             signer_cert = {cert}\n{certs}signer_key = {key}\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.55555.1.1\n\
             digests = sha256, sha384, sha512\naccuracy = secs:1\nordering = yes\ntsa_name = yes\ness_cert_id_chain = yes\ness_cert_id_alg = sha256\n",
            d = dir.display(),
            cert = cert.display(),
            key = key.display(),
        ),
    )?;
    let serial_base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() << 16;
    let tsa = Arc::new(Tsa { dir, config, next: AtomicU64::new(0), serial_base, tamper: AtomicBool::new(false), refuse: AtomicBool::new(false) });
    let app = Router::new().route("/", post(stamp)).route("/sim/tamper", post(tamper)).route("/sim/refuse", post(refuse)).with_state(tsa);
    shomei_sim::serve_ready(&listen, app).await
}
