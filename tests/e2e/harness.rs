//! The one helper that starts real peers for the tests: an SMTP server
//! (aiosmtpd), an IPP printer (ippeveprinter on a private D-Bus), a private
//! pcscd with the vpcd driver, the emulated card, the backend (in-process),
//! the station (a child process with its own PC/SC socket) and a browser
//! (chromedriver + Debian's chromium). Every peer gets free ports and its own
//! directory, waits until ready, and is stopped on Drop.

#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,shomei_backend=info")),
        )
        .with_test_writer()
        .try_init();
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A binary of the workspace, built by `cargo build --workspace --bins` (deploy/test does it first).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/e2e-xxxx -> target/debug/<name>
    let dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace --bins` first (deploy/test does)", p.display());
    p
}

/// The block of ports this test run hands out: below the kernel's ephemeral
/// range (32768-60999), so no outgoing connection takes one between the check
/// and the peer's bind, and apart from the other engine's run beside it
/// (deploy/test runs the e2e binary on SQLite and on PostgreSQL at once).
fn port_block() -> (u32, u32) {
    if std::env::var("SHOMEI_TEST_DB").is_ok_and(|v| v == "postgres") {
        (21000, 32000)
    } else {
        (10000, 21000)
    }
}

/// `n` consecutive ports that are free now and that no other test of this run is given.
fn free_ports(n: u32) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (lo, hi) = port_block();
    let span = hi - lo;
    // start each run at its own place in the block (a run just before may leave a peer lingering)
    let _ = NEXT.compare_exchange(0, 1 + std::process::id() % span, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let p = lo + NEXT.fetch_add(n, Ordering::SeqCst) % (span - n);
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", (p + i) as u16)).is_ok()) {
            return p as u16;
        }
    }
    panic!("no free port left in {lo}..{hi}")
}

/// A free port no other test of this run is given.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// Two consecutive free ports (vpcd uses PORT and PORT+1).
pub fn free_port_pair() -> u16 {
    free_ports(2)
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// Polls `ok` (a state: a table row, a journal step, a file) every 100 ms
/// until it holds, without blocking the runtime; fails after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> Result<bool>) -> Result<()> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if ok()? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

/// How long a peer may take to start: generous, as CI runs both engines' suites at once.
pub const PEER_START: Duration = Duration::from_secs(30);

pub fn tcp_ready(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A child process killed and reaped on Drop (PID 1 here does not reap).
pub struct Proc {
    pub name: String,
    child: std::process::Child,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Proc> {
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Proc { name: name.to_string(), child })
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    /// Waits until the peer answers `ready`, for up to PEER_START; fails at
    /// once, naming `log`, if the process exits first (e.g. its port was taken).
    pub fn wait_ready(&mut self, what: &str, log: &Path, mut ready: impl FnMut() -> bool) -> Result<()> {
        let mut alive = true;
        wait_until(what, PEER_START, || {
            alive = self.alive();
            !alive || ready()
        })?;
        if !alive {
            bail!("{what} exited while starting: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        Ok(())
    }
    /// Sends `signal` (e.g. "-TERM") to the child if it has not exited.
    /// Only a child not yet reaped is signalled: once reaped, its pid may
    /// belong to another process (pid_max is 32768 here, and a suite starts
    /// tens of thousands), and a stale `kill` would stop another test's peer.
    /// (An exited child stays a zombie, its pid ours, until `alive` reaps it.)
    pub fn signal(&mut self, signal: &str) -> bool {
        if !self.alive() {
            return false;
        }
        Command::new("kill").args([signal, &self.child.id().to_string()]).status().is_ok_and(|s| s.success())
    }
    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        self.signal("-TERM");
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    Ok(std::fs::File::create(dir.join(format!("{name}.log")))?)
}

// ------------------------------------------------------------------ SMTP

/// A real SMTP server (aiosmtpd) writing each message to a Maildir.
pub struct Smtp {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _proc: Proc,
}

impl Smtp {
    pub fn start() -> Result<Smtp> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let mut proc = Proc::spawn(
            "aiosmtpd",
            Command::new("/usr/bin/python3")
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
                .arg(dir.path().join("maildir"))
                .stdout(log_file(dir.path(), "smtp")?)
                .stderr(log_file(dir.path(), "smtp-err")?),
        )?;
        proc.wait_ready("SMTP server", &dir.path().join("smtp-err.log"), || tcp_ready(port))?;
        Ok(Smtp { port, dir, _proc: proc })
    }

    /// An SMTP relay that demands TLS (`starttls` or implicit `tls`) and
    /// AUTH as `user` / `password`, with a certificate from `ca`.
    pub fn start_secure(ca: &TestCa, mode: &str, user: &str, password: &str) -> Result<Smtp> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let (cert, key) = ca.issue("localhost", 0x5000 + u32::from(port))?;
        let script = dir.path().join("smtpd.py");
        std::fs::write(&script, SECURE_SMTPD)?;
        let mut proc = Proc::spawn(
            "aiosmtpd-tls",
            Command::new("/usr/bin/python3")
                .arg(&script)
                .args([port.to_string(), dir.path().join("maildir").display().to_string()])
                .args([&cert, &key])
                .args([user, password, mode])
                .stdout(log_file(dir.path(), "smtp")?)
                .stderr(log_file(dir.path(), "smtp-err")?),
        )?;
        let log = dir.path().join("smtp.log");
        proc.wait_ready("secure SMTP server", &dir.path().join("smtp-err.log"), || std::fs::read_to_string(&log).unwrap_or_default().contains("READY"))?;
        Ok(Smtp { port, dir, _proc: proc })
    }

    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("maildir/new")) {
            for e in rd.flatten() {
                if let Ok(s) = std::fs::read(e.path()) {
                    out.push(String::from_utf8_lossy(&s).into_owned());
                }
            }
        }
        out
    }

    /// Waits for a message to `to` and returns it decoded: sender, recipient, subject, the text part.
    pub fn wait_for_mail(&self, to: &str, timeout: Duration) -> Result<String> {
        self.wait_for_mail_with(to, "", timeout)
    }

    /// Waits for a message to `to` whose decoded text contains `needle`.
    pub fn wait_for_mail_with(&self, to: &str, needle: &str, timeout: Duration) -> Result<String> {
        let mut found = None;
        wait_until(&format!("mail to {to} with {needle:?}"), timeout, || {
            found = self.all_to(to).into_iter().find(|m| m.contains(needle));
            found.is_some()
        })?;
        Ok(found.unwrap_or_default())
    }

    /// Every message to `to`, decoded, oldest first.
    pub fn all_to(&self, to: &str) -> Vec<String> {
        let mut v: Vec<(std::time::SystemTime, String)> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("maildir/new")) {
            for e in rd.flatten() {
                let Ok(raw) = std::fs::read(e.path()) else { continue };
                let t = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                let text = decode_mail(&raw);
                if text.lines().any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(to)) {
                    v.push((t, text));
                }
            }
        }
        v.sort_by_key(|(t, _)| *t);
        v.into_iter().map(|(_, m)| m).collect()
    }
}

/// aiosmtpd with TLS and AUTH required (its command line has no AUTH).
const SECURE_SMTPD: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword
port, maildir, cert, key, user, password, mode = sys.argv[1:8]
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
    return AuthResult(success=ok, handled=False)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
# (on implicit TLS aiosmtpd does not see its own TLS: the whole session is TLS anyway)
kw = dict(hostname="127.0.0.1", port=int(port), authenticator=check, auth_required=True, auth_require_tls=(mode == "starttls"))
if mode == "starttls":
    c = Controller(Mailbox(maildir), tls_context=ctx, require_starttls=True, **kw)
else:
    c = Controller(Mailbox(maildir), ssl_context=ctx, **kw)
c.start()
print("READY", flush=True)
while True:
    time.sleep(3600)
"#;

/// A mail as text for assertions: "From:", "To:", "Subject:", the text part, and the
/// HTML part after a line "--- html ---".
pub fn decode_mail(raw: &[u8]) -> String {
    let Some(m) = mail_parser::MessageParser::default().parse(raw) else {
        return String::from_utf8_lossy(raw).into_owned();
    };
    let to = m.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_string();
    let from = m.from().and_then(|a| a.first()).map(|a| match a.name() {
        Some(name) => format!("{name} <{}>", a.address().unwrap_or_default()),
        None => format!("<{}>", a.address().unwrap_or_default()),
    });
    let subject = m.subject().unwrap_or_default().to_string();
    let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let html = m.body_html(0).map(|t| t.into_owned()).unwrap_or_default();
    format!("From: {}\nTo: {to}\nSubject: {subject}\n\n{text}\n--- html ---\n{html}", from.unwrap_or_default())
}

/// The first link in a mail that starts with `prefix` (e.g. the backend's URL + a path).
pub fn link_in(mail: &str, prefix: &str) -> Option<String> {
    let start = mail.find(prefix)?;
    let rest = &mail[start..];
    let end = rest.find(|c: char| c.is_whitespace() || c == '<' || c == '"').unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

// ------------------------------------------------------------------ PayPal simulator

/// One of the project's HTTP simulators (`shomei-paypal`, `shomei-smartpit`) on a free port.
pub struct HttpSim {
    pub url: String,
    _proc: Proc,
}

pub type PayPalSim = HttpSim;

impl HttpSim {
    pub fn start() -> Result<HttpSim> {
        Self::start_named("shomei-paypal")
    }

    pub fn smartpit() -> Result<HttpSim> {
        Self::start_named("shomei-smartpit")
    }

    pub fn start_named(name: &str) -> Result<HttpSim> {
        Self::start_with(name, &[])
    }

    /// One of the simulators with arguments of its own (after `--listen`).
    pub fn start_with(name: &str, args: &[&std::ffi::OsStr]) -> Result<HttpSim> {
        let mut child = Command::new(bin(name))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("sim stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let proc = Proc { name: name.into(), child };
        let end = Instant::now() + PEER_START;
        loop {
            match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(l) if l.starts_with("READY listening on ") => {
                    let url = l.trim_start_matches("READY listening on ").split_whitespace().next().unwrap_or_default().to_string();
                    return Ok(HttpSim { url, _proc: proc });
                }
                Ok(_) => continue,
                Err(_) => bail!("{name} did not get ready"),
            }
        }
    }

    /// POSTs to one of the simulator's knobs (`/sim/...`).
    pub async fn knob(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
        let r = reqwest::Client::new().post(format!("{}{path}", self.url)).json(&body).send().await?;
        Ok(r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

// ------------------------------------------------------------------ LDAP directory

// ------------------------------------------------------------------ PostgreSQL

/// A private PostgreSQL (Debian's `postgresql`), made with initdb in a
/// temporary directory and run by the `postgres` user when the tests run as
/// root (the server refuses root), on its own loopback port and socket
/// directory, trust authentication on loopback only, fsync off (a test's
/// data lives as long as the test). Database `shomei`, user `shomei`.
pub struct Postgres {
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

/// Set by a bench before it starts its servers: every PostgreSQL started
/// afterwards loads `pg_stat_statements`, so the bench can count the
/// statements a run made and the time the server spent executing them.
pub static TRACK_STATEMENTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Postgres {
    /// The newest installed server's programs (/usr/lib/postgresql/N/bin).
    fn bin_dir() -> Result<PathBuf> {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (deploy/install-deps installs Debian's postgresql)")?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|v| v.parse().ok()).map(|v: u32| (v, e.path().join("bin"))))
            .filter(|(_, bin)| bin.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin).context("no PostgreSQL server under /usr/lib/postgresql")
    }

    /// Runs a server program as the user who may run it.
    fn as_server_user(program: &Path) -> Command {
        if nix_is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    pub fn start() -> Result<Postgres> {
        let bin = Self::bin_dir()?;
        let template = Self::template(&bin)?;
        let dir = tempfile::tempdir()?;
        let (data, sock) = (dir.path().join("data"), dir.path().join("sock"));
        std::fs::create_dir(&sock)?;
        if nix_is_root() {
            // the server's user must reach its directories
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
            let (uid, gid) = Self::server_ids()?;
            std::os::unix::fs::chown(&sock, Some(uid), Some(gid))?;
        }
        // a copy of the cluster initdb made once (with its database), owners and modes kept
        let out = Command::new("cp").arg("-a").arg(&template).arg(&data).output()?;
        anyhow::ensure!(out.status.success(), "copying the PostgreSQL template: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let mut options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", sock.display());
        if TRACK_STATEMENTS.load(std::sync::atomic::Ordering::Relaxed) {
            options.push_str(" -c shared_preload_libraries=pg_stat_statements");
        }
        let out = Self::as_server_user(&bin.join("pg_ctl"))
            .arg("-D").arg(&data)
            .arg("-l").arg(data.join("server.log"))
            .args(["-o", &options, "-w", "-t", "30", "start"])
            .output()?;
        anyhow::ensure!(out.status.success(), "pg_ctl start: {} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok(Postgres { url: format!("postgres://shomei@127.0.0.1:{port}/shomei"), port, bin, data, _dir: dir })
    }

    /// The server user's (uid, gid) when the tests run as root.
    fn server_ids() -> Result<(u32, u32)> {
        let id = |flag: &str| -> Result<u32> {
            let out = Command::new("id").args([flag, "postgres"]).output()?;
            anyhow::ensure!(out.status.success(), "no postgres user (Debian's postgresql package makes it)");
            Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
        };
        Ok((id("-u")?, id("-g")?))
    }

    /// A cluster made by initdb (user `shomei`, trust on loopback, UTF-8),
    /// with the empty database `shomei`, never started: every test's server
    /// starts from a copy of it (copying takes a tenth of what initdb does).
    /// Made once per machine and server version, in the temporary directory.
    fn template(bin: &Path) -> Result<PathBuf> {
        static TEMPLATE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
        let mut made = TEMPLATE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = made.as_ref() {
            return Ok(t.clone());
        }
        // /usr/lib/postgresql/<major>/bin
        let version = bin.parent().and_then(|p| p.file_name()).map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
        let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        let path = std::env::temp_dir().join(format!("shomei-pg-template-{version}-u{uid}"));
        if !path.join("PG_VERSION").exists() {
            // made beside it and renamed into place: another test process never sees half of it
            let staging = std::env::temp_dir().join(format!("shomei-pg-template-staging-{}-{}", std::process::id(), free_port()));
            std::fs::create_dir(&staging)?;
            let data = staging.join("data");
            std::fs::create_dir(&data)?;
            if nix_is_root() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755))?;
                let (uid, gid) = Self::server_ids()?;
                std::os::unix::fs::chown(&data, Some(uid), Some(gid))?;
            }
            let out = Self::as_server_user(&bin.join("initdb"))
                .arg("-D").arg(&data)
                .args(["-U", "shomei", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--wal-segsize=1"])
                .output()?;
            anyhow::ensure!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
            // the tests' database, made in single-user mode (no port, no socket)
            let mut single = Self::as_server_user(&bin.join("postgres"))
                .args(["--single", "-D"]).arg(&data).arg("postgres")
                .stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped())
                .spawn()?;
            single.stdin.take().context("postgres --single stdin")?.write_all(b"CREATE DATABASE shomei;\n")?;
            let out = single.wait_with_output()?;
            anyhow::ensure!(out.status.success(), "postgres --single: {}", String::from_utf8_lossy(&out.stderr));
            if std::fs::rename(&data, &path).is_err() && !path.join("PG_VERSION").exists() {
                bail!("could not put the PostgreSQL template at {}", path.display());
            }
            let _ = std::fs::remove_dir_all(&staging);
        }
        *made = Some(path.clone());
        Ok(path)
    }

    /// One statement through psql over TCP; its output unaligned, tuples only.
    pub fn psql(&self, database: &str, statement: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "shomei", "-d", database, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement])
            .output()?;
        anyhow::ensure!(out.status.success(), "psql {statement}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Self::as_server_user(&self.bin.join("pg_ctl")).arg("-D").arg(&self.data).args(["-m", "immediate", "stop"]).output();
    }
}

/// Another process holding the backend database's write lock ([`Backend::hold_write_lock`]).
pub struct WriteLockHolder {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    postgres: bool,
}

impl WriteLockHolder {
    /// Ends its transaction (the lock is free again) and waits for it to quit.
    pub fn release(mut self) -> Result<()> {
        if self.postgres {
            writeln!(self.stdin, "COMMIT;\n\\q")?;
        } else {
            writeln!(self.stdin, "COMMIT;\n.quit")?;
        }
        drop(self.stdin);
        self.child.wait()?;
        Ok(())
    }
}

/// Whether this process runs as root.
fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// A private OpenLDAP slapd on a loopback port with a small campus tree:
/// uid=alice (password alicepw) and uid=bob (bobpw) under ou=people.
pub struct Ldap {
    pub port: u16,
    pub url: String,
    /// With TLS: the implicit-TLS listener, by the name its certificate carries.
    pub ldaps_url: String,
    pub dir: tempfile::TempDir,
    proc: Proc,
}

pub const LDAP_BASE: &str = "dc=campus,dc=test";

impl Ldap {
    pub fn start() -> Result<Ldap> {
        Self::start_with_tls(None)
    }

    /// slapd with a certificate from `ca`: `ldap://` (StartTLS) on `port`,
    /// `ldaps://` on `ldaps_port`.
    pub fn start_with_tls(ca: Option<&TestCa>) -> Result<Ldap> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let ldaps_port = free_port();
        let d = dir.path();
        let tls_conf = match ca {
            Some(ca) => {
                let (cert, key) = ca.issue("localhost", 0x4000 + u32::from(port))?;
                format!("TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n", ca.cert.display(), cert.display(), key.display())
            }
            None => String::new(),
        };
        std::fs::create_dir_all(d.join("db"))?;
        std::fs::write(
            d.join("slapd.conf"),
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/nis.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n\
                 modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {dir}/slapd.pid\n{tls_conf}database mdb\nmaxsize 10485760\n\
                 suffix \"{LDAP_BASE}\"\nrootdn \"cn=admin,{LDAP_BASE}\"\nrootpw secret\ndirectory {dir}/db\n\
                 index objectClass eq\nindex uid eq\n",
                dir = d.display()
            ),
        )?;
        let url = format!("ldap://127.0.0.1:{port}/");
        let listen = if ca.is_some() { format!("{url} ldaps://127.0.0.1:{ldaps_port}/") } else { url.clone() };
        let mut proc = Proc::spawn(
            "slapd",
            Command::new("/usr/sbin/slapd")
                .args(["-f", &d.join("slapd.conf").display().to_string(), "-h", &listen, "-d", "0"])
                .stdout(log_file(d, "slapd")?)
                .stderr(log_file(d, "slapd-err")?),
        )?;
        proc.wait_ready("slapd", &d.join("slapd-err.log"), || {
            Command::new("ldapsearch").args(["-x", "-H", &url, "-s", "base", "-b", "", "namingContexts"])
                .stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
        })?;
        let ldif = format!(
            "dn: {LDAP_BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Campus\ndc: campus\n\n\
             dn: ou=people,{LDAP_BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: uid=alice,ou=people,{LDAP_BASE}\nobjectClass: inetOrgPerson\nuid: alice\ncn:: {alice_cn}\nsn: Example\n\
             displayName:: {alice_kana}\nemployeeNumber: S24-0001\nou: LET\ndepartmentNumber: JLIT\nmail: alice@campus.test\nuserPassword: alicepw\n\n\
             dn: uid=bob,ou=people,{LDAP_BASE}\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob Example\nsn: Example\n\
             employeeNumber: S24-0002\nou: SCI\ndepartmentNumber: MATH\nuserPassword: bobpw\n",
            alice_cn = b64("有栖 花子"),
            alice_kana = b64("アリス ハナコ"),
        );
        let mut add = Command::new("ldapadd")
            .args(["-x", "-H", &url, "-D", &format!("cn=admin,{LDAP_BASE}"), "-w", "secret"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        add.stdin.take().context("ldapadd stdin")?.write_all(ldif.as_bytes())?;
        let out = add.wait_with_output()?;
        if !out.status.success() {
            bail!("ldapadd: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(Ldap { port, url, ldaps_url: format!("ldaps://localhost:{ldaps_port}/"), dir, proc })
    }

    pub fn stop(&mut self) {
        self.proc.stop();
    }
}

fn b64(s: &str) -> String {
    use std::fmt::Write as _;
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                let _ = out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ------------------------------------------------------------------ IPP printer

/// ippeveprinter with the project's fake engine (`sim/ipp-engine.sh`) as its
/// print command, so a job completes in milliseconds and faults can be set.
pub struct Printer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub uri: String,
    printer: Proc,
    _dbus: Proc,
}

impl Printer {
    /// Starts the printer. ippeveprinter that could not reach its private
    /// D-Bus as it started ("Unable to initialize DNS-SD", seen once in a
    /// full run of both engines at once) is started again with a new bus,
    /// at most twice more; any other failure is the test's.
    pub fn start() -> Result<Printer> {
        let mut tries = 0;
        loop {
            match Self::start_once() {
                Err(e) if tries < 2 && format!("{e:#}").contains("Unable to initialize DNS-SD") => {
                    tries += 1;
                    eprintln!("the IPP printer could not reach its D-Bus as it started: starting it again ({e:#})");
                }
                r => return r,
            }
        }
    }

    fn start_once() -> Result<Printer> {
        let dir = tempfile::tempdir()?;
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool)?;
        let bus = dir.path().join("bus.sock");
        let mut dbus = Proc::spawn(
            "dbus-daemon",
            Command::new("dbus-daemon")
                .args(["--session", &format!("--address=unix:path={}", bus.display()), "--nofork", "--nopidfile"])
                .stdout(log_file(dir.path(), "dbus")?)
                .stderr(Stdio::null()),
        )?;
        dbus.wait_ready("private D-Bus", &dir.path().join("dbus.log"), || bus.exists())?;
        let port = free_port();
        let engine = repo_root().join("sim/ipp-engine.sh");
        let mut printer = Proc::spawn(
            "ippeveprinter",
            Command::new("ippeveprinter")
                .env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", bus.display()))
                .args(["-r", "off", "-n", "localhost", "-p", &port.to_string(), "-f", "application/pdf", "-k", "-v"])
                .arg("-d")
                .arg(&spool)
                .arg("-c")
                .arg(&engine)
                .arg("ShomeiTestPrinter")
                .stdout(log_file(dir.path(), "printer-out")?)
                .stderr(log_file(dir.path(), "printer")?),
        )?;
        let uri = format!("ipp://127.0.0.1:{port}/ipp/print");
        printer.wait_ready("IPP printer", &dir.path().join("printer.log"), || {
            Command::new("ipptool")
                .args(["-q", &uri, "get-printer-attributes.test"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })?;
        let printer = Printer { port, dir, uri, printer, _dbus: dbus };
        // ippeveprinter starts with US Letter in its main tray; certificates are
        // A4, as a station's printer in Japan holds (a station is flagged without it)
        printer.set_paper(250)?;
        Ok(printer)
    }

    /// Sets the engine's behaviour for the next jobs: ok, fail, media-empty, hold, ...
    pub fn set_mode(&self, mode: &str) -> Result<()> {
        Ok(std::fs::write(self.dir.path().join("spool/MODE"), mode)?)
    }

    /// Empties (level 0) or refills the A4 paper tray through the printer's web form.
    pub fn set_paper(&self, level: u32) -> Result<()> {
        self.load_paper("iso_a4_210x297mm", level)
    }

    /// Loads `size` (an IPP media keyword, e.g. `na_letter_8.5x11in`) into the
    /// main tray at `level` sheets through the printer's web form.
    pub fn load_paper(&self, size: &str, level: u32) -> Result<()> {
        let url = format!(
            "http://127.0.0.1:{}/media?size1={size}&type1=stationery&level1={level}&size3=na_number-10_4.125x9.5in&type3=envelope&level3={}",
            self.port,
            // the form sets every tray it is not given to 0: tray 3 must be named too
            if level == 0 { -2 } else { 25 }
        );
        let out = Command::new("curl").args(["-sf", "-o", "/dev/null", &url]).status()?;
        if !out.success() {
            bail!("printer web form failed");
        }
        Ok(())
    }

    /// The documents the printer received, in job order.
    pub fn spooled_pdfs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("spool"))
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pdf")).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn printer_state_reasons(&self) -> String {
        Command::new("ipptool")
            .args(["-tv", &self.uri, "get-printer-attributes.test"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains("printer-state-reasons")).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    pub fn kill(&mut self) {
        self.printer.stop();
    }

    /// The printer's own log (ippeveprinter -v): the IPP operations it served.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("printer.log")).unwrap_or_default()
    }

    /// Lets a job held by the `hold` engine mode finish.
    pub fn release_held_job(&self) -> Result<()> {
        Ok(std::fs::write(self.dir.path().join("spool/RELEASE"), b"")?)
    }
}

// ------------------------------------------------------------------ PC/SC

/// A private pcscd on its own socket, with one vpcd reader pair.
pub struct Pcsc {
    pub dir: tempfile::TempDir,
    pub vpcd_port: u16,
    pub socket: PathBuf,
    proc: Proc,
}

impl Pcsc {
    pub fn start() -> Result<Pcsc> {
        let dir = tempfile::tempdir()?;
        let vpcd_port = free_port_pair();
        let socket = dir.path().join("pcscd.comm");
        let mut proc = Proc::spawn(
            "pcscd",
            Command::new(bin("shomei-pcscd"))
                .arg(dir.path())
                .arg(vpcd_port.to_string())
                .stdout(log_file(dir.path(), "pcscd")?)
                .stderr(log_file(dir.path(), "pcscd-err")?),
        )?;
        proc.wait_ready("pcscd", &dir.path().join("pcscd-err.log"), || socket.exists())?;
        Ok(Pcsc { dir, vpcd_port, socket, proc })
    }

    pub fn stop(&mut self) {
        self.proc.stop();
    }

    /// The reader plugged back in: pcscd again on the same socket and vpcd port.
    pub fn restart(&mut self) -> Result<()> {
        self.proc.stop();
        let _ = std::fs::remove_file(&self.socket);
        self.proc = Proc::spawn(
            "pcscd",
            Command::new(bin("shomei-pcscd"))
                .arg(self.dir.path())
                .arg(self.vpcd_port.to_string())
                .stdout(log_file(self.dir.path(), "pcscd2")?)
                .stderr(log_file(self.dir.path(), "pcscd2-err")?),
        )?;
        let socket = self.socket.clone();
        self.proc.wait_ready("pcscd", &self.dir.path().join("pcscd2-err.log"), || socket.exists())
    }
}

/// The emulated contactless card, driven through its stdin.
pub struct Card {
    proc: Proc,
    stdin: std::process::ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Card {
    /// Starts the card off the reader ("removed"); `tap()` puts it on.
    pub fn start(vpcd_port: u16, uid: &str) -> Result<Card> {
        let mut cmd = Command::new(bin("shomei-card"));
        cmd.args(["--port", &vpcd_port.to_string(), "--uid", uid, "--no-insert"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().context("starting shomei-card")?;
        let stdin = child.stdin.take().context("card stdin")?;
        let stdout = child.stdout.take().context("card stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let card = Card { proc: Proc { name: "card".into(), child }, stdin, lines: rx };
        card.expect("READY", PEER_START)?;
        Ok(card)
    }

    fn expect(&self, prefix: &str, timeout: Duration) -> Result<String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(l),
                Ok(_) => continue,
                Err(_) => bail!("card emulator did not say {prefix:?} in {timeout:?}"),
            }
        }
    }

    /// Sends a command (`insert`, `remove`, `sw 6F00`, `remove-on-read`, ...) and waits for its acknowledgement.
    pub fn command(&mut self, cmd: &str, ack: &str) -> Result<()> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        self.expect(ack, Duration::from_secs(10))?;
        Ok(())
    }

    pub fn tap(&mut self) -> Result<()> {
        self.command("insert", "inserted")
    }

    pub fn remove(&mut self) -> Result<()> {
        self.command("remove", "removed")
    }
}

// ------------------------------------------------------------------ backend

pub struct Backend {
    pub url: String,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The TOTP step last used per secret (a step works once per staff member).
    last_step: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    staff: tokio::sync::OnceCell<reqwest::Client>,
    cfg: shomei_backend::config::Config,
    /// The database the backend stores its data in (see [`test_engine`]).
    pub database_url: String,
    /// Its private PostgreSQL, when it runs on one.
    pg: Option<std::sync::Arc<Postgres>>,
}

/// The engine the backends of this test run keep their data in: SQLite
/// (a file in the backend's directory) unless `SHOMEI_TEST_DB=postgres`,
/// then a private PostgreSQL per backend (CI runs the e2e tests once each way).
pub fn test_engine() -> shomei_backend::store::Engine {
    match std::env::var("SHOMEI_TEST_DB").as_deref() {
        Ok("postgres") | Ok("postgresql") => shomei_backend::store::Engine::Postgres,
        _ => shomei_backend::store::Engine::Sqlite,
    }
}

impl Backend {
    /// Starts the backend in-process on a fresh database (see [`test_engine`]) with the demo data.
    pub async fn start(smtp_port: Option<u16>) -> Result<Backend> {
        Self::start_with(smtp_port, |_| {}).await
    }

    /// Starts it with some settings changed (short sessions, a small hash pool, ...).
    pub async fn start_with(smtp_port: Option<u16>, tweak: impl FnOnce(&mut shomei_backend::config::Config)) -> Result<Backend> {
        Self::start_on(test_engine(), smtp_port, tweak).await
    }

    /// Starts it on the engine given, whatever this test run's.
    pub async fn start_on(
        engine: shomei_backend::store::Engine,
        smtp_port: Option<u16>,
        tweak: impl FnOnce(&mut shomei_backend::config::Config),
    ) -> Result<Backend> {
        init_tracing();
        let dir = tempfile::tempdir()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mut cfg = shomei_backend::config::Config::default();
        cfg.http.listen = format!("127.0.0.1:{port}");
        cfg.http.public_url = format!("http://127.0.0.1:{port}");
        let pg = match engine {
            shomei_backend::store::Engine::Postgres => Some(std::sync::Arc::new(Postgres::start()?)),
            shomei_backend::store::Engine::Sqlite => None,
        };
        cfg.database.url = match &pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}?mode=rwc", dir.path().join("backend.sqlite").display()),
        };
        if pg.is_some() {
            // (on SQLite the backend makes this file itself, beside its database)
            let key = dir.path().join("backend.key");
            std::fs::write(&key, shomei_backend::sealed::SealKey::generate().1)?;
            cfg.security.data_key_file = Some(key);
        }
        cfg.mail.smtp = smtp_port.map(|p| format!("127.0.0.1:{p}")).unwrap_or_default();
        cfg.mail.poll_interval_s = 1;
        cfg.stations.offline_after_s = 5;
        cfg.accounts.upload_dir = dir.path().join("uploads");
        cfg.security.login_delay_ms = 300;
        // the tests run on the demo university, staff and card (off by default)
        cfg.demo_data = true;
        // crash and soak tests order many times a minute as the one demo graduate
        cfg.orders.per_user_per_minute = 10_000;
        tweak(&mut cfg);
        // served with TLS: by the name its certificate carries
        let url = if cfg.http.tls_cert_file.is_some() { format!("https://localhost:{port}") } else { format!("http://127.0.0.1:{port}") };
        let (tx, kill, task) = Self::launch(cfg.clone(), listener, &url).await?;
        let database_url = cfg.database.url.clone();
        Ok(Backend { url, dir, shutdown: Some(tx), kill: Some(kill), task: Some(task), last_step: std::sync::Mutex::default(), staff: tokio::sync::OnceCell::new(), cfg, database_url, pg })
    }

    /// `n` backends of one service on a new database of `engine` (as behind
    /// a proxy): the first, the others, and every one's URL.
    pub async fn start_service(engine: shomei_backend::store::Engine, n: usize) -> Result<(Backend, Vec<Backend>, Vec<String>)> {
        let b = Backend::start_on(engine, None, |_| {}).await?;
        let mut others = Vec::new();
        for _ in 1..n {
            others.push(b.start_beside(|_| {}).await?);
        }
        let urls = std::iter::once(&b).chain(others.iter()).map(|x| x.url.clone()).collect();
        Ok((b, others, urls))
    }

    /// A second backend process of the same service: the same database and
    /// data key, the same upload directory (shared storage), its own port
    /// (as behind a proxy; see `README.md`, several backends).
    pub async fn start_beside(&self, tweak: impl FnOnce(&mut shomei_backend::config::Config)) -> Result<Backend> {
        let dir = tempfile::tempdir()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mut cfg = self.cfg.clone();
        cfg.http.listen = format!("127.0.0.1:{port}");
        cfg.http.public_url = format!("http://127.0.0.1:{port}");
        if cfg.security.data_key.is_empty() && cfg.security.data_key_file.is_none() {
            cfg.security.data_key_file = Some(self.dir.path().join("backend.key"));
        }
        tweak(&mut cfg);
        let url = format!("http://127.0.0.1:{port}");
        let (tx, kill, task) = Self::launch(cfg.clone(), listener, &url).await?;
        let database_url = cfg.database.url.clone();
        Ok(Backend {
            url,
            dir,
            shutdown: Some(tx),
            kill: Some(kill),
            task: Some(task),
            last_step: std::sync::Mutex::default(),
            staff: tokio::sync::OnceCell::new(),
            cfg,
            database_url,
            pg: self.pg.clone(),
        })
    }

    async fn launch(
        cfg: shomei_backend::config::Config,
        listener: tokio::net::TcpListener,
        url: &str,
    ) -> Result<(tokio::sync::oneshot::Sender<()>, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            // (a dropped kill sender is no kill)
            let kill = async {
                if kill_rx.await.is_err() {
                    std::future::pending::<()>().await
                }
            };
            if let Err(e) = shomei_backend::launch_until(cfg, listener, shutdown, kill).await
            {
                eprintln!("backend stopped: {e:#}");
            }
        });
        // (only the readiness probe skips certificate checks; tests check them themselves)
        let client = reqwest::Client::builder().tls_danger_accept_invalid_certs(true).build()?;
        let end = Instant::now() + PEER_START;
        loop {
            if client.get(format!("{url}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > end {
                bail!("backend did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok((tx, kill_tx, task))
    }

    /// Starts it again after [`Backend::stop`] with some settings changed.
    pub async fn restart_with(&mut self, tweak: impl FnOnce(&mut shomei_backend::config::Config)) -> Result<()> {
        tweak(&mut self.cfg);
        self.restart().await
    }

    /// Starts it again after [`Backend::stop`], on the same port and database.
    pub async fn restart(&mut self) -> Result<()> {
        let addr = self.cfg.http.listen.clone();
        let end = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(&addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < end => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => bail!("port {addr} not free again: {e}"),
            }
        };
        let (tx, kill, task) = Self::launch(self.cfg.clone(), listener, &self.url).await?;
        self.shutdown = Some(tx);
        self.kill = Some(kill);
        self.task = Some(task);
        Ok(())
    }

    /// Kills it: it stops serving and its background jobs stop where they
    /// are, keeping their leases until they lapse (as a process that dies).
    pub async fn kill(&mut self) -> Result<()> {
        // (the shutdown sender is dropped only after: dropping it is a clean stop)
        let _shutdown = self.shutdown.take();
        let k = self.kill.take().context("the backend is not running")?;
        anyhow::ensure!(k.send(()).is_ok(), "the backend had stopped already: nothing to kill");
        let t = self.task.take().context("the backend has no task")?;
        tokio::time::timeout(Duration::from_secs(5), t).await.context("the killed backend did not stop within 5 s")??;
        Ok(())
    }

    /// Stops it (the port then refuses connections: "backend unreachable").
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }

    /// A browser-like HTTP client with its own cookie jar.
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::limited(5))
            // a hung backend fails the test that asked, with a message, instead of blocking the run
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default()
    }

    /// A TOTP code of `secret` that has not been used on this backend yet:
    /// the current or the next (both accepted), else it waits.
    pub async fn totp_code_for(&self, secret_b32: &str) -> Result<String> {
        let secret = shomei_backend::accounts::totp::parse_base32(secret_b32).context("base32 secret")?;
        loop {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
            let step = now / 30;
            let pick = {
                let mut map = self.last_step.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                let last = map.entry(secret_b32.to_string()).or_insert(0);
                // the current step or later: a code of the step before may go stale while a loaded machine sends it
                let next = (*last + 1).max(step);
                if next <= step + 1 {
                    *last = next;
                    Some(next)
                } else {
                    None
                }
            };
            if let Some(s) = pick {
                return Ok(shomei_backend::accounts::totp::code_at(&secret, s * 30));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Takes over the TOTP steps `other` used (a backend on a copy of its
    /// database refuses those steps again).
    pub fn carry_totp_steps_from(&self, other: &Backend) {
        let used = other.last_step.lock().map(|m| m.clone()).unwrap_or_default();
        if let Ok(mut mine) = self.last_step.lock() {
            mine.extend(used);
        }
    }

    /// A fresh code for the demo staff member.
    pub async fn staff_code(&self) -> Result<String> {
        self.totp_code_for(shomei_backend::demo::STAFF_TOTP_SECRET).await
    }

    /// Logs a new client into the admin panel; returns it and the page it landed on.
    pub async fn staff_login(&self, login: &str, password: &str, code: &str) -> Result<(reqwest::Client, reqwest::StatusCode, String)> {
        let c = Self::client();
        let page = c.get(format!("{}/admin/login", self.url)).send().await?.text().await?;
        let csrf = form_value(&page, "csrf").context("csrf on staff login")?;
        let r = c
            .post(format!("{}/admin/login", self.url))
            .form(&[("csrf", csrf.as_str()), ("login", login), ("password", password), ("code", code)])
            .send()
            .await?;
        let status = r.status();
        Ok((c, status, r.text().await?))
    }

    /// A client logged into the admin panel as the demo staff member (one login per backend).
    pub async fn staff_client(&self) -> Result<reqwest::Client> {
        let c = self
            .staff
            .get_or_try_init(|| async {
                let code = self.staff_code().await?;
                let (c, status, page) = self.staff_login(shomei_backend::demo::STAFF_LOGIN, shomei_backend::demo::STAFF_PASSWORD, &code).await?;
                if !status.is_success() {
                    bail!("staff login failed: {status} {page}");
                }
                anyhow::Ok(c)
            })
            .await?;
        Ok(c.clone())
    }

    /// Makes an enrolment code on the admin panel's Stations page, as staff do.
    pub async fn enrolment_code(&self, station_name: &str) -> Result<String> {
        let c = self.staff_client().await?;
        let page = c.get(format!("{}/admin/stations", self.url)).send().await?.text().await?;
        let csrf = form_value(&page, "csrf").context("csrf on stations page")?;
        let page = c
            .post(format!("{}/admin/stations/enrolment-codes", self.url))
            .form(&[("csrf", csrf.as_str()), ("name", station_name)])
            .send()
            .await?
            .text()
            .await?;
        element_text(&page, "enrolment-code").context("enrolment code on the page")
    }

    /// Runs `shomei-backend ARGS` on the server's console of this backend:
    /// its database, data key and upload directory.
    pub fn cli(&self, args: &[&str]) -> Result<std::process::Output> {
        Ok(Command::new(bin("shomei-backend"))
            .args(args)
            .env("SHOMEI_BACKEND_DATABASE__URL", &self.database_url)
            .env("SHOMEI_BACKEND_SECURITY__DATA_KEY_FILE", self.dir.path().join("backend.key"))
            .env("SHOMEI_BACKEND_ACCOUNTS__UPLOAD_DIR", self.dir.path().join("uploads"))
            .output()?)
    }

    /// Runs one SQL statement on the backend's database with the sqlite3 CLI,
    /// or psql on PostgreSQL (tests use it to look at the ledger and to move
    /// deadlines into the past). Rows one per line, columns split by `|`,
    /// NULL as nothing, in both; nothing printed for a statement that returns no rows.
    pub fn sql(&self, statement: &str) -> Result<String> {
        if let Some(pg) = &self.pg {
            return pg.psql("shomei", statement);
        }
        // wait for the backend's own writes (its jobs run at start) instead of failing "locked"
        let out = Command::new("sqlite3").args(["-cmd", ".timeout 5000"]).arg(self.sqlite_file()).arg(statement).output()?;
        if !out.status.success() {
            bail!("sqlite3: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The SQLite file the backend keeps its data in (on SQLite).
    fn sqlite_file(&self) -> PathBuf {
        shomei_backend::store::database_file(&self.database_url).unwrap_or_else(|_| self.dir.path().join("backend.sqlite"))
    }

    /// Whether the backend keeps its data in PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Another process takes the database's write lock (SQLite's, or the
    /// advisory lock writers take on PostgreSQL) and holds it until
    /// [`WriteLockHolder::release`].
    pub fn hold_write_lock(&self) -> Result<WriteLockHolder> {
        let mut child = match &self.pg {
            Some(pg) => Command::new(pg.bin.join("psql"))
                .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "shomei", "-d", "shomei", "-X", "-q", "-A", "-t"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?,
            None => Command::new("sqlite3").arg(self.sqlite_file()).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?,
        };
        let mut stdin = child.stdin.take().context("stdin")?;
        match &self.pg {
            Some(_) => writeln!(stdin, "BEGIN; SELECT pg_advisory_xact_lock({}); SELECT 'locked';", shomei_backend::store::WRITE_LOCK)?,
            None => writeln!(stdin, "BEGIN IMMEDIATE;\nSELECT 'locked';")?,
        }
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        loop {
            let mut line = String::new();
            anyhow::ensure!(out.read_line(&mut line)? > 0, "the lock holder ended before it held the lock");
            if line.trim() == "locked" {
                break;
            }
        }
        Ok(WriteLockHolder { child, stdin, postgres: self.pg.is_some() })
    }

    /// Whether another process gets the database's write lock at once.
    pub fn write_lock_free(&self) -> Result<bool> {
        match &self.pg {
            Some(pg) => Ok(pg.psql("shomei", &format!("SELECT pg_try_advisory_xact_lock({})", shomei_backend::store::WRITE_LOCK))? == "t"),
            None => Ok(Command::new("sqlite3").args(["-cmd", ".timeout 0"]).arg(self.sqlite_file()).arg("BEGIN IMMEDIATE; ROLLBACK;").output()?.status.success()),
        }
    }

    /// Whether `needle` is written in clear in any file the database keeps
    /// on disk (SQLite's file and write-ahead log; PostgreSQL's whole data
    /// directory, its WAL included, after a checkpoint).
    pub fn stored_in_clear(&self, needle: &str) -> Result<bool> {
        let files: Vec<PathBuf> = match &self.pg {
            Some(pg) => {
                pg.psql("shomei", "CHECKPOINT")?;
                vec![pg.data.clone()]
            }
            None => {
                let db = self.sqlite_file();
                [db.clone(), PathBuf::from(format!("{}-wal", db.display()))].into_iter().filter(|p| p.exists()).collect()
            }
        };
        let out = Command::new("grep").args(["-r", "-l", "-a", "-F", needle]).args(&files).output()?;
        // grep: 0 found, 1 not found, 2 trouble
        anyhow::ensure!(out.status.code() != Some(2), "grep: {}", String::from_utf8_lossy(&out.stderr));
        Ok(out.status.success())
    }

    /// An order's certificate PDF as staff fetch it from the panel (the
    /// database holds it sealed).
    pub async fn order_pdf(&self, order_id: impl std::fmt::Display) -> Result<Vec<u8>> {
        let c = self.staff_client().await?;
        let r = c.get(format!("{}/admin/orders/{order_id}/pdf", self.url)).send().await?;
        if !r.status().is_success() {
            bail!("order {order_id}'s PDF: {}", r.status());
        }
        Ok(r.bytes().await?.to_vec())
    }

    /// A staff session's view of a page (for asserting what staff see).
    pub async fn staff_page(&self, path: &str) -> Result<String> {
        let c = self.staff_client().await?;
        Ok(c.get(format!("{}{path}", self.url)).send().await?.text().await?)
    }

    /// The demo graduate logs in and orders `copies` graduation certificates
    /// for on-campus printing paid by IC card. Returns the order page.
    pub async fn order_as_graduate(&self, copies: u32) -> Result<String> {
        let c = Self::client();
        let page = c.get(format!("{}/login", self.url)).send().await?.text().await?;
        let csrf = form_value(&page, "csrf").context("csrf on login")?;
        let r = c
            .post(format!("{}/login", self.url))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", shomei_backend::demo::GRADUATE_EMAIL),
                ("password", shomei_backend::demo::GRADUATE_PASSWORD),
                ("second_password", shomei_backend::demo::GRADUATE_SECOND_PASSWORD),
            ])
            .send()
            .await?;
        if !r.url().path().starts_with("/portal") {
            bail!("login failed: {}", r.text().await?);
        }
        let page = c.get(format!("{}/orders/new", self.url)).send().await?.text().await?;
        let csrf = form_value(&page, "csrf").context("csrf on order form")?;
        let record = form_option(&page, "student_record_id").context("student record")?;
        let copies_field = first_copies_field(&page).context("copies field")?;
        let r = c
            .post(format!("{}/orders", self.url))
            .form(&[
                ("csrf", csrf.as_str()),
                ("student_record_id", record.as_str()),
                (copies_field.as_str(), copies.to_string().as_str()),
                ("delivery", "campus"),
                ("payment_method", "card"),
            ])
            .send()
            .await?;
        let status = r.status();
        let page = r.text().await?;
        if !status.is_success() {
            bail!("order failed ({status}): {page}");
        }
        Ok(page)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `value="..."` of the input named `name`.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    let i = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[i..];
    let v = rest.find("value=\"")? + 7;
    Some(rest[v..v + rest[v..].find('"')?].to_string())
}

fn form_option(html: &str, select: &str) -> Option<String> {
    let i = html.find(&format!("name=\"{select}\""))?;
    let rest = &html[i..];
    let v = rest.find("<option value=\"")? + 15;
    Some(rest[v..v + rest[v..].find('"')?].to_string())
}

fn first_copies_field(html: &str) -> Option<String> {
    let i = html.find("name=\"copies_")? + 6;
    Some(html[i..i + html[i..].find('"')?].to_string())
}

/// Text inside the element with this id (no nested tags).
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let i = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[i..];
    let s = rest.find('>')? + 1;
    Some(rest[s..s + rest[s..].find('<')?].trim().to_string())
}

/// An attribute of the element with this id.
pub fn element_attr(html: &str, id: &str, attr: &str) -> Option<String> {
    let i = html.find(&format!("id=\"{id}\""))?;
    let start = html[..i].rfind('<')?;
    let tag = &html[start..i + html[i..].find('>')?];
    let v = tag.split(&format!(" {attr}=\"")).nth(1)?;
    Some(v[..v.find('"')?].to_string())
}

/// The text of the element with this id and everything inside it (tags
/// dropped, up to the element's own closing tag).
pub fn element_inner_text(html: &str, id: &str) -> Option<String> {
    let i = html.find(&format!("id=\"{id}\""))?;
    let start = html[..i].rfind('<')?;
    let name: String = html[start + 1..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let (open, close) = (format!("<{name}"), format!("</{name}>"));
    let body_start = i + html[i..].find('>')? + 1;
    let (mut depth, mut at) = (1usize, body_start);
    while depth > 0 {
        let next_close = html[at..].find(&close)? + at;
        match html[at..next_close].find(&open) {
            Some(o) => {
                depth += 1;
                at += o + open.len();
            }
            None => {
                depth -= 1;
                at = next_close + close.len();
            }
        }
    }
    let inner = &html[body_start..at - close.len()];
    let mut text = String::new();
    let mut in_tag = false;
    for ch in inner.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

// ------------------------------------------------------------------ station

pub struct Station {
    pub kiosk_url: String,
    pub dir: tempfile::TempDir,
    proc: Proc,
    settings: Vec<(String, String)>,
}

pub struct StationOptions<'a> {
    pub backend_url: &'a str,
    pub enrolment_code: &'a str,
    pub printer_uri: &'a str,
    pub pcsc: &'a Pcsc,
    pub tuning: Tuning,
}

/// Station timings a test may shorten.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub idle_timeout_s: u64,
    pub job_timeout_s: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { idle_timeout_s: 60, job_timeout_s: 60 }
    }
}

fn append_log(dir: &Path, name: &str) -> Result<std::fs::File> {
    Ok(std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log")))?)
}

impl Station {
    pub fn start(o: &StationOptions<'_>) -> Result<Station> {
        Self::start_with_env(o, &[])
    }

    /// Starts the station binary with extra environment (e.g. a failpoint).
    pub fn start_with_env(o: &StationOptions<'_>, env: &[(&str, &str)]) -> Result<Station> {
        let mut s = Self::spawn_only(o, env)?;
        s.wait_ready()?;
        Ok(s)
    }

    /// Starts the station binary without waiting for its kiosk (a station that cannot enrol).
    pub fn spawn_only(o: &StationOptions<'_>, env: &[(&str, &str)]) -> Result<Station> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let settings: Vec<(String, String)> = [
            ("PCSCLITE_CSOCK_NAME", o.pcsc.socket.display().to_string()),
            ("SHOMEI_STATION_BACKEND_URL", o.backend_url.to_string()),
            ("SHOMEI_STATION_STATE_DIR", dir.path().display().to_string()),
            ("SHOMEI_STATION_ENROLMENT_CODE", o.enrolment_code.to_string()),
            ("SHOMEI_STATION_PRINTER_URI", o.printer_uri.to_string()),
            ("SHOMEI_STATION_READER", "Virtual PCD 00 00".to_string()),
            ("SHOMEI_STATION_KIOSK_LISTEN", format!("127.0.0.1:{port}")),
            ("SHOMEI_STATION_HEARTBEAT_S", "1".to_string()),
            ("SHOMEI_STATION_PRINTER_POLL_S", "1".to_string()),
            ("SHOMEI_STATION_IDLE_TIMEOUT_S", o.tuning.idle_timeout_s.to_string()),
            ("SHOMEI_STATION_JOB_TIMEOUT_S", o.tuning.job_timeout_s.to_string()),
            ("SHOMEI_STATION_OFFLINE_REFRESH_S", "1".to_string()),
            ("RUST_LOG", "info,sqlx=warn".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let proc = Self::spawn(dir.path(), &settings, env)?;
        Ok(Station { kiosk_url: format!("http://127.0.0.1:{port}"), dir, proc, settings })
    }

    fn spawn(dir: &Path, settings: &[(String, String)], env: &[(&str, &str)]) -> Result<Proc> {
        if env.iter().any(|(k, _)| *k == "SHOMEI_FAILPOINT") {
            // failpoints are a cargo feature the test crate turns on: say so plainly if this binary lacks them
            let v = Command::new(bin("shomei-station")).arg("--version").output()?;
            anyhow::ensure!(
                String::from_utf8_lossy(&v.stdout).contains("failpoints"),
                "target/debug/shomei-station was built without the failpoints feature: run cargo build --workspace --bins --tests"
            );
        }
        let mut cmd = Command::new(bin("shomei-station"));
        cmd.envs(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.envs(env.iter().copied());
        cmd.stdout(append_log(dir, "station")?).stderr(append_log(dir, "station-err")?);
        Proc::spawn("station", &mut cmd)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let url = format!("{}/healthz", self.kiosk_url);
        let mut alive = true;
        wait_until("station kiosk", PEER_START, || {
            alive = self.proc.alive();
            !alive || Command::new("curl").args(["-sf", "-o", "/dev/null", &url]).status().is_ok_and(|x| x.success())
        })?;
        if !alive {
            bail!("station exited: {}", self.log());
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Power cut: SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        self.proc.signal("-9");
        let end = Instant::now() + Duration::from_secs(5);
        while self.proc.alive() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True once the process has ended (e.g. at a failpoint), within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if !self.proc.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Starts the station again on the same state directory and kiosk port
    /// (killing it first if it still runs), with `env` added.
    pub fn restart(&mut self, env: &[(&str, &str)]) -> Result<()> {
        if self.proc.alive() {
            self.kill9();
        }
        self.proc = Self::spawn(self.dir.path(), &self.settings, env)?;
        self.wait_ready()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("station.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.dir.path().join("station-err.log")).unwrap_or_default()
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.path().join("journal.sqlite")
    }

    /// POSTs a number to this station's kiosk as its page does; returns the screen JSON.
    pub async fn kiosk_number(&self, number: &str) -> Result<serde_json::Value> {
        Ok(http_client()
            .post(format!("{}/kiosk/number", self.kiosk_url))
            .json(&serde_json::json!({ "number": number }))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Presses "back to start" on this station's kiosk.
    pub async fn kiosk_reset(&self) -> Result<serde_json::Value> {
        Ok(http_client().post(format!("{}/kiosk/cancel", self.kiosk_url)).send().await?.json().await?)
    }

    pub async fn kiosk_state(&self) -> Result<serde_json::Value> {
        Ok(http_client().get(format!("{}/kiosk/state", self.kiosk_url)).send().await?.json().await?)
    }

    /// Polls this station's kiosk until it shows `screen`.
    pub async fn wait_kiosk(&self, screen: &str, timeout: Duration) -> Result<serde_json::Value> {
        let end = Instant::now() + timeout;
        let mut last = serde_json::Value::Null;
        while Instant::now() < end {
            last = self.kiosk_state().await?;
            if last["screen"] == screen {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("kiosk shows {last}, not {screen:?}\nstation log:\n{}", self.log())
    }
}

/// The harness's HTTP client for kiosks and simulators: every call has a
/// deadline, so a hung station fails its test with a message instead of
/// blocking the run.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_else(|_| reqwest::Client::new())
}

// ------------------------------------------------------------------ network faults

/// What the network between a station and the backend does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow.
    Up,
    /// Packets vanish (like iptables DROP): connections hang, nothing answers.
    Drop,
    /// Connections are refused at once (like iptables REJECT --reject-with tcp-reset).
    Reject,
}

/// A TCP relay on loopback between a station and the backend whose link a
/// test cuts (DROP or REJECT) and restores; connections open at the cut
/// stall or are reset like everything else.
pub struct NetLink {
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<Link>>,
    task: tokio::task::JoinHandle<()>,
}

impl NetLink {
    pub async fn start(backend_url: &str) -> Result<NetLink> {
        NetLink::start_at(0, backend_url).await
    }

    /// A relay listening on `port` of loopback (0: any free port).
    pub async fn start_at(port: u16, backend_url: &str) -> Result<NetLink> {
        let upstream = backend_url.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = std::sync::Arc::new(std::sync::Mutex::new(Link::Up));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (st, upstream) = (st.clone(), upstream.clone());
                tokio::spawn(async move {
                    let now = *st.lock().unwrap_or_else(|p| p.into_inner());
                    match now {
                        Link::Reject => {
                            // closed at once, before a byte is read: the request fails immediately
                            drop(client);
                        }
                        Link::Drop => {
                            // swallow the request, answer nothing, until the test is over
                            let mut client = client;
                            let mut sink = [0u8; 4096];
                            while tokio::io::AsyncReadExt::read(&mut client, &mut sink).await.is_ok_and(|n| n > 0) {}
                        }
                        Link::Up => {
                            if let Ok(server) = tokio::net::TcpStream::connect(&upstream).await {
                                relay(client, server, st).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(NetLink { url, state, task })
    }

    pub fn set(&self, link: Link) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = link;
    }
}

impl Drop for NetLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways while the link is up; once it is cut, an open connection
/// stalls (DROP) or is reset (REJECT) too.
async fn relay(client: tokio::net::TcpStream, server: tokio::net::TcpStream, state: std::sync::Arc<std::sync::Mutex<Link>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let state_for_cut = state.clone();
    let link = move || *state.lock().unwrap_or_else(|p| p.into_inner());
    let l2 = link.clone();
    let up = async move {
        let mut buf = [0u8; 16384];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 || l2() == Link::Reject {
                break;
            }
            if l2() == Link::Up && sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async move {
        let mut buf = [0u8; 16384];
        while let Ok(n) = sr.read(&mut buf).await {
            if n == 0 || link() == Link::Reject {
                break;
            }
            if link() == Link::Up && cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    // a cut (REJECT) resets connections open through it at once, as a backend
    // that went away does, not only when they are next used
    let cut = async move {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if *state_for_cut.lock().unwrap_or_else(|p| p.into_inner()) == Link::Reject {
                break;
            }
        }
    };
    tokio::select! { _ = up => {}, _ = down => {}, _ = cut => {} }
}

// ------------------------------------------------------------------ payment terminal

/// The transit e-money terminal (P-5): the emulator on one end of a socat
/// pseudo-terminal pair; the station opens `port`, the other end.
pub struct Terminal {
    pub port: PathBuf,
    emulator: Proc,
    _socat: Proc,
    stdin: std::process::ChildStdin,
    out: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Terminal {
    pub fn start() -> Result<Terminal> {
        use std::io::BufRead;
        let dir = tempfile::tempdir()?;
        let (a, b) = (dir.path().join("ttyStation"), dir.path().join("ttyTerminal"));
        let mut socat = Proc::spawn(
            "socat",
            Command::new("socat")
                .args(["-d", "-d"])
                .arg(format!("pty,raw,echo=0,link={}", a.display()))
                .arg(format!("pty,raw,echo=0,link={}", b.display()))
                .stdout(Stdio::null())
                .stderr(log_file(dir.path(), "socat")?),
        )?;
        socat.wait_ready("socat pty pair", &dir.path().join("socat.log"), || {
            std::fs::read_to_string(dir.path().join("socat.log")).unwrap_or_default().contains("starting data transfer loop")
        })?;
        let mut cmd = Command::new(bin("shomei-terminal"));
        cmd.arg("--port").arg(&b).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(log_file(dir.path(), "terminal")?);
        let mut child = cmd.spawn().context("starting shomei-terminal")?;
        let stdin = child.stdin.take().context("terminal stdin")?;
        let stdout = child.stdout.take().context("terminal stdout")?;
        let (tx, out) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let ready = out.recv_timeout(PEER_START).context("terminal emulator did not start")?;
        anyhow::ensure!(ready == "READY", "terminal emulator said {ready}");
        Ok(Terminal { port: a, emulator: Proc { name: "shomei-terminal".into(), child }, _socat: socat, stdin, out, _dir: dir })
    }

    /// A control command (`mode ok|decline|...`, `balance N`, `state`) and its answer.
    pub fn control(&mut self, cmd: &str) -> Result<String> {
        use std::io::Write;
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        self.out.recv_timeout(Duration::from_secs(5)).with_context(|| format!("terminal: no answer to {cmd}"))
    }

    /// The terminal is switched off (its end of the line stays, silent).
    pub fn power_off(&mut self) {
        self.emulator.stop();
    }
}

// ------------------------------------------------------------------ browser

/// chromedriver + Debian's headless chromium, one private profile each.
pub struct Browser {
    pub client: fantoccini::Client,
    _dir: tempfile::TempDir,
    _driver: Proc,
}

/// The screen a browser test runs on: a desktop window, or a phone held
/// upright (390 x 844 CSS pixels, as an iPhone 12-15) where no page may be
/// wider than the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Desktop,
    Phone,
}

impl Screen {
    pub const BOTH: [Screen; 2] = [Screen::Desktop, Screen::Phone];

    fn size(self) -> (u32, u32) {
        match self {
            Screen::Desktop => (1024, 900),
            Screen::Phone => (390, 844),
        }
    }
}

/// What axe-core and the width check found wrong on one page.
#[derive(Debug, Clone)]
pub struct PageProblem {
    pub page: String,
    pub what: String,
}

impl std::fmt::Display for PageProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.page, self.what)
    }
}

/// axe-core's script, read once (installed by deploy/install-axe).
fn axe_source() -> Result<&'static str> {
    static AXE: std::sync::OnceLock<std::result::Result<String, String>> = std::sync::OnceLock::new();
    AXE.get_or_init(|| {
        let file = repo_root().join("tests/a11y/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&file).map_err(|e| format!("{}: {e} (run deploy/install-axe)", file.display()))
    })
    .as_deref()
    .map_err(|e| anyhow::anyhow!("axe-core: {e}"))
}

impl Browser {
    pub async fn start() -> Result<Browser> {
        Browser::start_on(Screen::Desktop).await
    }

    /// A browser whose page area is `screen`'s size; on a phone it also
    /// reports itself as a phone (touch, mobile user agent), as Chromium's
    /// device emulation does.
    pub async fn start_on(screen: Screen) -> Result<Browser> {
        shomei_backend::install_tls_provider();
        let (width, height) = screen.size();
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let driver = Proc::spawn(
            "chromedriver",
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(log_file(dir.path(), "chromedriver")?)
                .stderr(Stdio::null()),
        )?;
        let status = format!("http://127.0.0.1:{port}/status");
        let http = reqwest::Client::new();
        let end = Instant::now() + PEER_START;
        while !http.get(&status).send().await.is_ok_and(|r| r.status().is_success()) {
            if Instant::now() > end {
                bail!("chromedriver did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = dir.path().join("profile");
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                         format!("--window-size={width},{height}"), format!("--user-data-dir={}", profile.display())]
            }
        });
        let mut caps = caps;
        if screen == Screen::Phone {
            caps["goog:chromeOptions"]["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 3.0, "touch": true, "mobile": true }
            });
        }
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let client = fantoccini::ClientBuilder::rustls()?
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("WebDriver session")?;
        // a page or script that hangs fails the test's call instead of blocking the run
        let limits = fantoccini::wd::TimeoutConfiguration::new(Some(Duration::from_secs(30)), Some(Duration::from_secs(30)), None);
        client.update_timeouts(limits).await.context("WebDriver timeouts")?;
        Ok(Browser { client, _dir: dir, _driver: driver })
    }

    /// Waits until the kiosk page shows `screen` (its body's data-screen).
    pub async fn wait_screen(&self, screen: &str, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < end {
            let v = self.client.execute("return document.body.dataset.screen", vec![]).await?;
            last = v.as_str().unwrap_or_default().to_string();
            if last == screen {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = self.client.find(fantoccini::Locator::Css("body")).await?.text().await.unwrap_or_default();
        bail!("kiosk shows {last:?}, not {screen:?}, after {timeout:?}: {text}")
    }

    /// Waits (10 s) for an element; on time-out says which page the browser is on and what it shows.
    pub async fn wait_for(&self, loc: fantoccini::Locator<'_>) -> Result<fantoccini::elements::Element> {
        let what = format!("{loc:?}");
        match self.client.wait().at_most(Duration::from_secs(10)).for_element(loc).await {
            Ok(e) => Ok(e),
            Err(e) => {
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let text = self.body_text().await.unwrap_or_default();
                bail!("{what} not found ({e}) on {url}: {text}")
            }
        }
    }

    pub async fn wait_id(&self, id: &str) -> Result<fantoccini::elements::Element> {
        self.wait_for(fantoccini::Locator::Id(id)).await
    }

    /// Waits (10 s) until the element `id` says `needle` (the page before a
    /// click may still show an element of the same id for a moment).
    pub async fn wait_text(&self, id: &str, needle: &str) -> Result<String> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let text = match self.client.find(fantoccini::Locator::Id(id)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return Ok(text);
            }
            if Instant::now() > end {
                bail!("#{id} never said {needle:?} (last: {text:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn body_text(&self) -> Result<String> {
        Ok(self.client.find(fantoccini::Locator::Css("body")).await?.text().await?)
    }

    /// What is wrong with the page shown, as a person with a screen reader,
    /// low vision or a phone would meet it: axe-core's WCAG 2.0/2.1/2.2 A and
    /// AA rules (contrast, labels, names, language...) and any part of the
    /// page wider than the window (the page scrolls sideways).
    pub async fn page_problems(&self) -> Result<Vec<PageProblem>> {
        let page = self.client.current_url().await.map(|u| u.path().to_string()).unwrap_or_default();
        let mut out = Vec::new();
        let injected = self.client.execute("return typeof window.axe === 'object'", vec![]).await?;
        if injected != serde_json::json!(true) {
            self.client.execute(axe_source()?, vec![]).await.context("injecting axe-core")?;
        }
        let found = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                   axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] }, resultTypes: ['violations'] })
                     .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' +
                        v.nodes.slice(0, 4).map(n => n.target.join(' ') + (n.any.concat(n.all)[0] ? ' [' + n.any.concat(n.all)[0].message + ']' : '')).join('; '))))
                     .catch(e => done(['axe failed: ' + e]));"#,
                vec![],
            )
            .await
            .context("running axe-core")?;
        for v in found.as_array().cloned().unwrap_or_default() {
            out.push(PageProblem { page: page.clone(), what: v.as_str().unwrap_or_default().to_string() });
        }
        let wide = self
            .client
            .execute(
                r#"const w = document.documentElement.clientWidth;
                   if (document.documentElement.scrollWidth <= w) return null;
                   // what sticks out of the window, not inside a box that scrolls or clips it
                   const clipped = e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
                       if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= w + 1) return true; } return false; };
                   const over = Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > w + 1 && !clipped(e))
                     .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= w + 1).slice(0, 4)
                     .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') + ' ' + Math.round(e.getBoundingClientRect().right) + 'px');
                   return 'page ' + document.documentElement.scrollWidth + 'px wide in a ' + w + 'px window: ' + over.join(', ');"#,
                vec![],
            )
            .await?;
        if let Some(w) = wide.as_str() {
            out.push(PageProblem { page, what: w.to_string() });
        }
        Ok(out)
    }

    /// Logs the demo graduate in through the portal's login form.
    pub async fn log_in_as_demo_graduate(&self, b: &Backend) -> Result<()> {
        use fantoccini::Locator;
        let w = &self.client;
        w.goto(&format!("{}/login", b.url)).await?;
        self.wait_id("email").await?.send_keys(shomei_backend::demo::GRADUATE_EMAIL).await?;
        w.find(Locator::Id("password")).await?.send_keys(shomei_backend::demo::GRADUATE_PASSWORD).await?;
        w.find(Locator::Id("second_password")).await?.send_keys(shomei_backend::demo::GRADUATE_SECOND_PASSWORD).await?;
        w.find(Locator::Id("login")).await?.click().await?;
        Ok(())
    }

    /// Logs the demo staff member into the admin panel; it lands on the dashboard.
    pub async fn log_in_as_demo_staff(&self, b: &Backend) -> Result<()> {
        use fantoccini::Locator;
        let w = &self.client;
        w.goto(&format!("{}/admin/login", b.url)).await?;
        self.wait_id("login").await?.send_keys(shomei_backend::demo::STAFF_LOGIN).await?;
        w.find(Locator::Id("password")).await?.send_keys(shomei_backend::demo::STAFF_PASSWORD).await?;
        w.find(Locator::Id("code")).await?.send_keys(&b.staff_code().await?).await?;
        w.find(Locator::Id("staff-login")).await?.click().await?;
        self.wait_id("dashboard").await?;
        Ok(())
    }

    /// Fails with every problem `page_problems` finds on the page shown.
    pub async fn check_page(&self) -> Result<()> {
        let problems = self.page_problems().await?;
        anyhow::ensure!(problems.is_empty(), "the page has problems:\n{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"));
        Ok(())
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

// ------------------------------------------------------------------ the whole rig

/// Everything one station scenario needs, started in parallel-safe isolation.
pub struct Rig {
    pub smtp: Smtp,
    pub backend: Backend,
    pub printer: Printer,
    pub pcsc: Pcsc,
    pub card: Card,
    pub station: Station,
}

/// The peers a station needs, before the station itself is enrolled and started.
pub struct Peers {
    pub smtp: Smtp,
    pub backend: Backend,
    pub printer: Printer,
    pub pcsc: Pcsc,
    pub card: Card,
}

impl Peers {
    pub async fn start() -> Result<Peers> {
        Self::start_with(|_| {}).await
    }

    /// The peers, with the backend's configuration tweaked first.
    pub async fn start_with(tweak: impl FnOnce(&mut shomei_backend::config::Config)) -> Result<Peers> {
        let smtp = Smtp::start()?;
        let backend = Backend::start_with(Some(smtp.port), tweak).await?;
        let printer = Printer::start()?;
        let pcsc = Pcsc::start()?;
        let card = Card::start(pcsc.vpcd_port, shomei_backend::demo::CARD_UID)?;
        Ok(Peers { smtp, backend, printer, pcsc, card })
    }
}

impl Rig {
    pub async fn start() -> Result<Rig> {
        Self::start_tuned(Tuning::default()).await
    }

    pub async fn start_tuned(tuning: Tuning) -> Result<Rig> {
        let peers = Peers::start().await?;
        let code = peers.backend.enrolment_code("Library 1F").await?;
        Self::assemble(peers, &code, tuning)
    }

    /// Enrols and starts the station with `code` beside already running peers.
    pub fn assemble(p: Peers, code: &str, tuning: Tuning) -> Result<Rig> {
        let station = Station::start(&StationOptions {
            backend_url: &p.backend.url,
            enrolment_code: code,
            printer_uri: &p.printer.uri,
            pcsc: &p.pcsc,
            tuning,
        })?;
        Ok(Rig { smtp: p.smtp, backend: p.backend, printer: p.printer, pcsc: p.pcsc, card: p.card, station })
    }

    /// Orders as the demo graduate and returns the print number from the mail that arrived.
    pub async fn order_and_read_mail(&self, copies: u32) -> Result<(String, String)> {
        let page = self.backend.order_as_graduate(copies).await?;
        let shown = element_text(&page, "print-number").context("print number on the order page")?;
        let mail = self.smtp.wait_for_mail(shomei_backend::demo::GRADUATE_EMAIL, Duration::from_secs(15))?;
        let number = print_number_in(&mail).context("print number in the mail")?;
        Ok((number, shown))
    }

    /// POSTs a number to the kiosk as its page does; returns the screen JSON.
    pub async fn kiosk_number(&self, number: &str) -> Result<serde_json::Value> {
        self.station.kiosk_number(number).await
    }

    /// Presses "back to start" on the kiosk.
    pub async fn station_reset(&self) -> Result<serde_json::Value> {
        self.station.kiosk_reset().await
    }

    pub async fn kiosk_state(&self) -> Result<serde_json::Value> {
        self.station.kiosk_state().await
    }

    /// Polls the kiosk until it shows `screen`.
    pub async fn wait_kiosk(&self, screen: &str, timeout: Duration) -> Result<serde_json::Value> {
        self.station.wait_kiosk(screen, timeout).await
    }

    /// The demo card's balance as the ledger says (sum of rows).
    pub fn balance(&self) -> Result<i64> {
        let q = format!("SELECT COALESCE(SUM(amount),0) FROM ledger WHERE card_uid='{}'", shomei_backend::demo::CARD_UID);
        Ok(self.backend.sql(&q)?.parse()?)
    }

    /// Waits until the kiosk's card screen shows a notice (a second line) and returns the screen.
    pub async fn wait_notice(&self) -> Result<serde_json::Value> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.kiosk_state().await?;
            if !s["notice_en"].as_str().unwrap_or_default().is_empty() {
                return Ok(s);
            }
            if Instant::now() > end {
                bail!("no notice on the kiosk: {s}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the kiosk's notice says `needle` (another notice, e.g. a
    /// card still lying on the reader, may come first under load).
    pub async fn wait_notice_saying(&self, needle: &str) -> Result<serde_json::Value> {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.kiosk_state().await?;
            if s["notice_en"].as_str().unwrap_or_default().contains(needle) {
                return Ok(s);
            }
            if Instant::now() > end {
                bail!("the kiosk's notice never said {needle:?}: {s}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The steps the station journalled, oldest first.
    pub fn journal_steps(&self) -> Result<Vec<String>> {
        let out = Command::new("sqlite3").arg(self.station.journal_path()).arg("SELECT step FROM journal ORDER BY id").output()?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
    }
}

/// The 12 digits after "学内印刷番号:" / "print number:" in a mail or page.
pub fn print_number_in(text: &str) -> Option<String> {
    let i = text.find("On-campus print number:")? + "On-campus print number:".len();
    let digits: String = text[i..].chars().take_while(|c| c.is_ascii_digit() || *c == ' ').filter(char::is_ascii_digit).collect();
    (digits.len() == 12).then_some(digits)
}

// ------------------------------------------------------------------ TLS

/// A certificate authority made for one test (openssl), issuing server
/// certificates for localhost / 127.0.0.1.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    pub fn new() -> Result<TestCa> {
        let dir = tempfile::tempdir()?;
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        openssl(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=shomei test CA"],
                &[("-keyout", &key), ("-out", &cert)])?;
        Ok(TestCa { dir, cert, key })
    }

    /// A server certificate and key (PEM files) for `name` with this serial number.
    pub fn issue(&self, name: &str, serial: u32) -> Result<(PathBuf, PathBuf)> {
        let d = self.dir.path();
        let (key, csr, cert, ext) = (d.join(format!("{name}-{serial}.key")), d.join(format!("{name}-{serial}.csr")), d.join(format!("{name}-{serial}.pem")), d.join("ext.cnf"));
        std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")?;
        openssl(&["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", &format!("/CN={name}")], &[("-keyout", &key), ("-out", &csr)])?;
        openssl(&["x509", "-req", "-days", "2", "-set_serial", &serial.to_string()],
                &[("-in", &csr), ("-CA", &self.cert), ("-CAkey", &self.key), ("-extfile", &ext), ("-out", &cert)])?;
        Ok((cert, key))
    }

    /// An HTTP client that trusts this CA only.
    pub fn client(&self) -> Result<reqwest::Client> {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.cert)?)?;
        Ok(reqwest::Client::builder().tls_certs_only([ca]).build()?)
    }
}

fn openssl(args: &[&str], paths: &[(&str, &PathBuf)]) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    for (flag, p) in paths {
        cmd.arg(flag).arg(p);
    }
    let out = cmd.output().context("openssl")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The serial number of the certificate a TLS server on `port` presents now.
pub fn served_serial(port: u16) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial"))
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().trim_start_matches("serial=").to_string())
}

// ------------------------------------------------------------------ signed PDFs

/// A PKI the test makes with openssl: a root CA, the university's
/// document-signing certificate it issues (ECDSA P-256, PKCS#8 key), a
/// time-stamp authority (`shomei-tsa`, with its own CA) and the trust
/// stores both validators read: an NSS database for pdfsig, PEM roots for
/// pyHanko.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub key_pem: String,
    pub chain_pem: String,
    pub tsa: HttpSim,
}

/// Runs openssl in `dir`.
pub fn openssl_in(dir: &std::path::Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output()?;
    anyhow::ensure!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// The CA's revocation service on loopback: the root's certificate
/// revocation list at `GET /root.crl` (DER), and an OCSP responder at
/// `POST /ocsp` (OpenSSL's own, `openssl ocsp -index ... -reqin`, answering
/// from the CA's index); it counts what it served. Stopped, it is gone (as a
/// CA's service may be, years later).
pub struct CrlServer {
    pub url: String,
    pub ocsp_url: String,
    pub served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CrlServer {
    async fn start(dir: std::path::PathBuf) -> Result<CrlServer> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            while let Ok((mut conn, _)) = listener.accept().await {
                n += 1;
                let (dir, count) = (dir.clone(), count.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    let head_end = loop {
                        if let Some(at) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => req.extend_from_slice(&buf[..k]),
                        }
                    };
                    let head = String::from_utf8_lossy(&req[..head_end]).to_ascii_lowercase();
                    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                    while req.len() < head_end + length {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => req.extend_from_slice(&buf[..k]),
                        }
                    }
                    let body = req[head_end..head_end + length].to_vec();
                    let answer = if head.starts_with("get /root.crl ") {
                        std::fs::read(dir.join("root.crl")).ok().map(|b| ("application/pkix-crl", b))
                    } else if head.starts_with("post /ocsp ") {
                        let (q, r) = (dir.join(format!("ocsp-{n}.req")), dir.join(format!("ocsp-{n}.resp")));
                        let made = std::fs::write(&q, &body).is_ok()
                            && tokio::process::Command::new("openssl")
                                .args(["ocsp", "-index", "index.txt", "-CA", "root.pem", "-rsigner", "root.pem", "-rkey", "root.key", "-nmin", "5", "-reqin"])
                                .arg(&q)
                                .arg("-respout")
                                .arg(&r)
                                .current_dir(&dir)
                                .output()
                                .await
                                .is_ok_and(|o| o.status.success());
                        made.then(|| std::fs::read(&r).ok()).flatten().map(|b| ("application/ocsp-response", b))
                    } else {
                        None
                    };
                    let answer = match answer {
                        Some((kind, bytes)) => {
                            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            [format!("HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", bytes.len()).into_bytes(), bytes].concat()
                        }
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = conn.write_all(&answer).await;
                });
            }
        });
        Ok(CrlServer { url: format!("http://127.0.0.1:{port}/root.crl"), ocsp_url: format!("http://127.0.0.1:{port}/ocsp"), served, task })
    }

    /// The service is gone: nothing answers at its address any more.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where a test PKI's certificates say their revocation status is found.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Nowhere (B-T only).
    None,
    /// The root's list (CRL distribution points).
    Crl,
    /// The root's OCSP responder (authority information access), no list.
    Ocsp,
}

impl TestPki {
    pub fn make() -> Result<TestPki> {
        Ok(TestPki::make_in(tempfile::tempdir()?, Revocation::None, None)?)
    }

    /// [`TestPki::make`] with revocation: every certificate the root issues
    /// names where its status is found (the root's list, or its OCSP
    /// responder, both served by the returned server), and the root issues
    /// the time-stamp authority's certificate too, so both chains can be
    /// validated for the long term (PAdES B-LT).
    pub async fn make_with(revocation: Revocation) -> Result<(TestPki, CrlServer)> {
        let dir = tempfile::tempdir()?;
        let server = CrlServer::start(dir.path().to_path_buf()).await?;
        let pki = TestPki::make_in(dir, revocation, Some(&server))?;
        Ok((pki, server))
    }

    fn make_in(dir: tempfile::TempDir, revocation: Revocation, server: Option<&CrlServer>) -> Result<TestPki> {
        let d = dir.path();
        let crl_line = match (revocation, server) {
            (Revocation::Crl, Some(s)) => format!("crlDistributionPoints = URI:{}\n", s.url),
            (Revocation::Ocsp, Some(s)) => format!("authorityInfoAccess = OCSP;URI:{}\n", s.ocsp_url),
            _ => String::new(),
        };
        std::fs::write(d.join("signer.cnf"), format!("basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,nonRepudiation\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n{crl_line}"))?;
        openssl_in(d, &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "root.key", "-out", "root.pem", "-days", "3650",
                     "-subj", "/O=Shomei Test PKI/CN=Shomei Test Root CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])?;
        openssl_in(d, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "signer.key", "-out", "signer.csr",
                     "-subj", "/O=Shomei University/CN=Shomei University Registrar"])?;
        openssl_in(d, &["x509", "-req", "-in", "signer.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-out", "signer.pem", "-days", "825", "-extfile", "signer.cnf"])?;
        let key_pem = std::fs::read_to_string(d.join("signer.key"))?;
        let chain_pem = std::fs::read_to_string(d.join("signer.pem"))? + &std::fs::read_to_string(d.join("root.pem"))?;
        // pdfsig's trust store: the root trusted for signing
        let nss = d.join("nss");
        std::fs::create_dir(&nss)?;
        let db = format!("sql:{}", nss.display());
        for args in [vec!["-N", "-d", &db, "--empty-password"], vec!["-A", "-d", &db, "-n", "shomei-test-root", "-t", "CT,C,C", "-i", "root.pem"]] {
            let out = Command::new("certutil").args(&args).current_dir(d).output()?;
            anyhow::ensure!(out.status.success(), "certutil {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let tsa_dir = d.join("tsa");
        let tsa = if revocation != Revocation::None {
            // the root's list (empty: nothing revoked), and the TSA's certificate from the root
            std::fs::write(d.join("ca.cnf"), "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\ncertificate = root.pem\nprivate_key = root.key\n")?;
            std::fs::write(d.join("index.txt"), "")?;
            std::fs::write(d.join("crlnumber"), "01\n")?;
            openssl_in(d, &["ca", "-config", "ca.cnf", "-gencrl", "-out", "root.crl.pem"])?;
            openssl_in(d, &["crl", "-in", "root.crl.pem", "-outform", "DER", "-out", "root.crl"])?;
            std::fs::write(d.join("tsa.cnf"), format!("extendedKeyUsage = critical,timeStamping\nkeyUsage = critical,digitalSignature\nbasicConstraints = CA:FALSE\n{crl_line}"))?;
            openssl_in(d, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/O=Shomei Test PKI/CN=Shomei Test TSA"])?;
            openssl_in(d, &["x509", "-req", "-in", "tsa.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-out", "tsa.pem", "-days", "825", "-extfile", "tsa.cnf"])?;
            // the CA's index (what its OCSP responder answers from): both certificates valid
            let mut index = String::new();
            for cert in ["signer.pem", "tsa.pem"] {
                let field = |what: &str| -> Result<String> {
                    let out = Command::new("openssl").args(["x509", "-noout", what, "-in", cert]).current_dir(d).output()?;
                    Ok(String::from_utf8_lossy(&out.stdout).trim().split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default())
                };
                let end = Command::new("date").args(["-u", "-d", &field("-enddate")?, "+%y%m%d%H%M%SZ"]).output()?;
                index += &format!("V\t{}\t\t{}\tunknown\t/CN={cert}\n", String::from_utf8_lossy(&end.stdout).trim(), field("-serial")?);
            }
            std::fs::write(d.join("index.txt"), index)?;
            std::fs::create_dir(&tsa_dir)?;
            std::fs::copy(d.join("root.pem"), tsa_dir.join("ca.pem"))?;
            let (cert, key, chain) = (d.join("tsa.pem"), d.join("tsa.key"), d.join("root.pem"));
            HttpSim::start_with("shomei-tsa", &["--dir".as_ref(), tsa_dir.as_os_str(), "--cert".as_ref(), cert.as_os_str(), "--key".as_ref(), key.as_os_str(), "--chain".as_ref(), chain.as_os_str()])?
        } else {
            HttpSim::start_with("shomei-tsa", &["--dir".as_ref(), tsa_dir.as_os_str()])?
        };
        Ok(TestPki { dir, key_pem, chain_pem, tsa })
    }

    /// The key and chain as files (the backend's configuration names files):
    /// the university's signing key for university 1.
    pub fn key_config(&self) -> Result<shomei_backend::documents::signing::SigningKeyConfig> {
        let (key, chain) = (self.dir.path().join("signing.key"), self.dir.path().join("signing-chain.pem"));
        std::fs::write(&key, &self.key_pem)?;
        std::fs::write(&chain, &self.chain_pem)?;
        Ok(shomei_backend::documents::signing::SigningKeyConfig { university: 1, key_file: Some(key), chain_file: Some(chain), ..Default::default() })
    }

    /// `[documents.signing]` for university 1: its key, the TSA, and the
    /// TSA's CA as the one time-stamps are trusted from.
    pub fn signing_config(&self) -> Result<shomei_backend::documents::signing::SigningConfig> {
        Ok(shomei_backend::documents::signing::SigningConfig {
            tsa_url: self.tsa.url.clone(),
            tsa_trust_file: Some(self.tsa_ca()),
            keys: vec![self.key_config()?],
            ..Default::default()
        })
    }

    /// The CA that issues the TSA's certificate (shomei-tsa makes it as it starts).
    pub fn tsa_ca(&self) -> std::path::PathBuf {
        self.dir.path().join("tsa/ca.pem")
    }

    /// The university's signer and the time-stamp authority, as the backend holds them.
    pub fn sealer(&self) -> Result<shomei_backend::documents::signing::PdfSealer> {
        use shomei_backend::documents::signing::*;
        Ok(PdfSealer {
            signer: std::sync::Arc::new(FileSigner::from_pem(&self.key_pem, &self.chain_pem)?),
            stamper: TimeStamper::new(&self.tsa.url, Duration::from_secs(10)).trusting_file(&self.tsa_ca()).map_err(anyhow::Error::msg)?,
        })
    }

    /// What poppler's pdfsig says of `pdf` against the test root.
    pub fn pdfsig(&self, pdf: &[u8]) -> Result<String> {
        let file = self.dir.path().join("check.pdf");
        std::fs::write(&file, pdf)?;
        let out = Command::new("pdfsig").arg("-nssdir").arg(format!("sql:{}", self.dir.path().join("nss").display())).arg(&file).output()?;
        Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    /// What pyHanko says of `pdf` against the test root and the TSA's CA:
    /// (its exit status was success, its report).
    pub fn pyhanko(&self, pdf: &[u8]) -> Result<(bool, String)> {
        self.pyhanko_with(pdf, &["validate", "--pretty-print", "--no-revocation-check"])
    }

    /// pyHanko's AdES validation of `pdf` (ETSI EN 319 102-1, long-term):
    /// the signature and its time-stamp, revocation data required for every
    /// certificate of both chains.
    pub fn pyhanko_ades(&self, pdf: &[u8]) -> Result<(bool, String)> {
        self.pyhanko_with(pdf, &["adesverify", "--pretty-print"])
    }

    /// [`TestPki::pyhanko_ades`] as of `time` (ISO 8601): point-in-time validation.
    pub fn pyhanko_ades_at(&self, pdf: &[u8], time: &str) -> Result<(bool, String)> {
        self.pyhanko_with(pdf, &["adesverify", "--pretty-print", "--validation-time", time])
    }

    fn pyhanko_with(&self, pdf: &[u8], how: &[&str]) -> Result<(bool, String)> {
        let file = self.dir.path().join("check.pdf");
        std::fs::write(&file, pdf)?;
        let exe = std::env::var("SHOMEI_PYHANKO").unwrap_or_else(|_| "/opt/shomei/pyhanko/bin/pyhanko".into());
        let out = Command::new(&exe)
            .arg("sign")
            .args(how)
            .args(["--trust-replace", "--trust"])
            .arg(self.dir.path().join("root.pem"))
            .arg("--trust")
            .arg(self.dir.path().join("tsa/ca.pem"))
            .arg(&file)
            .output()
            .with_context(|| format!("{exe} (deploy/install-pyhanko installs it)"))?;
        Ok((out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
    }
}

