//! `shomei-card`: an emulated contactless (FeliCa-like) card for vpcd.
//!
//! vpcd (the vsmartcard pcscd driver) listens on a TCP port; this program
//! connects to it. Connected = card on the reader, closed = card removed.
//! Wire format: 2-byte big-endian length + payload. 1-byte payloads are control
//! bytes (0 power off, 1 power on, 2 reset, 4 "send ATR"); longer ones are
//! command APDUs, answered with the response APDU.
//!
//! ```text
//! shomei-card [--host 127.0.0.1] [--port 35963] [--uid 012E4CD8A1B2C3D4]
//!             [--no-insert] [--control 127.0.0.1:PORT] [--ignore-eof] [--verbose]
//! ```
//!
//! Prints `READY inserted` or `READY removed` on stdout once started, then reads
//! line commands on stdin, each acknowledged with one stdout line:
//!
//! | command          | ack                  | meaning                                                   |
//! |------------------|----------------------|-----------------------------------------------------------|
//! | `insert`         | `inserted`           | put the card on the reader (no-op if already there)       |
//! | `tap`            | `inserted`           | like insert; if already on the reader: remove, 0.6 s, insert |
//! | `remove`         | `removed`            | take the card off the reader (acked once pcscd has polled) |
//! | `uid HEX`        | `uid HEX`            | change the UID / IDm answered to GET DATA                 |
//! | `sw HEX`         | `sw HEX`             | answer GET DATA with only this status word (e.g. 6F00)    |
//! | `ok`             | `ok`                 | back to normal answers (clears `sw` and `remove-on-read`) |
//! | `remove-on-read` | `remove-on-read`     | the next GET DATA closes the connection unanswered (card pulled mid-read); the card is then removed |
//! | `status`         | `status ...`         | one-line state                                            |
//! | `quit`           | `bye`                | remove the card and exit                                  |
//! | anything else    | `error: ...`         |                                                           |
//!
//! stdin EOF = `quit`, unless `--ignore-eof`. Diagnostics go to stderr.
//!
//! With `--control ADDR`, a tiny HTTP control for the demo:
//! `GET /` (state as text), `POST /tap`, `/insert`, `/remove`, `/uid/HEX`,
//! `/sw/HEX`, `/ok`, `/remove-on-read`.
//!
//! If vpcd/pcscd goes away while the card is inserted, it reconnects every
//! 250 ms (the card "re-inserts" when pcscd comes back).

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// FeliCa ATR as built by PC/SC part 3 readers (e.g. Sony PaSoRi).
const ATR: [u8; 20] = [
    0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06, 0x11, 0x00, 0x3B, 0x00, 0x00, 0x00,
    0x00, 0x42,
];
const DEFAULT_UID: &str = "012E4CD8A1B2C3D4";
const RECONNECT_EVERY: Duration = Duration::from_millis(250);
/// How long a `tap` on an already inserted card keeps it off the reader
/// (pcscd polls vpcd presence every ~0.4 s).
const RETAP_GAP: Duration = Duration::from_millis(600);

#[derive(Debug)]
struct Behaviour {
    uid: Vec<u8>,
    sw: Option<u16>,
    remove_on_read: bool,
    verbose: bool,
}

type Shared = Arc<Mutex<Behaviour>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Behaviour> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
enum Cmd {
    Insert,
    Tap,
    Remove,
    Uid(Vec<u8>),
    Sw(u16),
    Ok,
    RemoveOnRead,
    Status,
    Quit,
}

fn parse_uid(hex_str: &str) -> Result<Vec<u8>, String> {
    let uid = hex::decode(hex_str.trim()).map_err(|e| format!("bad UID hex {hex_str:?}: {e}"))?;
    if uid.is_empty() || uid.len() > 16 {
        return Err(format!("UID must be 1..16 bytes, got {}", uid.len()));
    }
    Ok(uid)
}

fn parse_sw(hex_str: &str) -> Result<u16, String> {
    let b = hex::decode(hex_str.trim()).map_err(|e| format!("bad SW hex {hex_str:?}: {e}"))?;
    match b[..] {
        [a, b] => Ok(u16::from_be_bytes([a, b])),
        _ => Err(format!("SW must be 2 bytes (4 hex digits), got {hex_str:?}")),
    }
}

fn parse_cmd(line: &str) -> Result<Cmd, String> {
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("");
    let arg = words.next();
    if words.next().is_some() {
        return Err(format!("too many arguments in {line:?}"));
    }
    let no_arg = |c: Cmd| match arg {
        None => Ok(c),
        Some(a) => Err(format!("{cmd} takes no argument, got {a:?}")),
    };
    match (cmd.to_ascii_lowercase().as_str(), arg) {
        ("insert", _) => no_arg(Cmd::Insert),
        ("tap", _) => no_arg(Cmd::Tap),
        ("remove", _) => no_arg(Cmd::Remove),
        ("ok", _) => no_arg(Cmd::Ok),
        ("remove-on-read", _) => no_arg(Cmd::RemoveOnRead),
        ("status", _) => no_arg(Cmd::Status),
        ("quit" | "exit", _) => no_arg(Cmd::Quit),
        ("uid", Some(a)) => parse_uid(a).map(Cmd::Uid),
        ("sw", Some(a)) => parse_sw(a).map(Cmd::Sw),
        ("uid" | "sw", None) => Err(format!("{cmd} needs a hex argument")),
        ("", _) => Err("empty command".into()),
        _ => Err(format!("unknown command {cmd:?} (insert, tap, remove, uid HEX, sw HEX, ok, remove-on-read, status, quit)")),
    }
}

/// A command for the controller. `reply: None` = from stdin: the ack goes to stdout.
struct Request {
    cmd: Result<Cmd, String>,
    reply: Option<oneshot::Sender<String>>,
}

/// Answers one command APDU. `None` = the card is pulled away: close without answering.
fn respond(shared: &Shared, apdu: &[u8]) -> Option<Vec<u8>> {
    let mut b = lock(shared);
    let sw = |sw: u16| sw.to_be_bytes().to_vec();
    if apdu.len() < 4 {
        return Some(sw(0x6700));
    }
    let (cla, ins, p1, p2) = (apdu[0], apdu[1], apdu[2], apdu[3]);
    if cla != 0xFF {
        return Some(sw(0x6D00));
    }
    if ins != 0xCA || p1 != 0x00 || p2 != 0x00 {
        return Some(sw(0x6A81));
    }
    // GET DATA (UID)
    if b.remove_on_read {
        b.remove_on_read = false;
        return None;
    }
    if let Some(s) = b.sw {
        return Some(sw(s));
    }
    let le = apdu.get(4).copied().unwrap_or(0) as usize;
    if le != 0 && le < b.uid.len() {
        return Some(vec![0x6C, b.uid.len() as u8]);
    }
    let mut r = b.uid.clone();
    r.extend_from_slice(&[0x90, 0x00]);
    Some(r)
}

#[derive(Debug)]
enum SessionEnd {
    /// vpcd closed the connection (pcscd stopped) or an I/O error.
    Closed(String),
    /// remove-on-read fired: the card left the reader.
    Pulled,
}

async fn session(mut s: TcpStream, shared: Shared) -> SessionEnd {
    let verbose = lock(&shared).verbose;
    loop {
        let mut len = [0u8; 2];
        if let Err(e) = s.read_exact(&mut len).await {
            return SessionEnd::Closed(e.to_string());
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if let Err(e) = s.read_exact(&mut msg).await {
            return SessionEnd::Closed(e.to_string());
        }
        let reply = match msg[..] {
            [] => None,
            [4] => Some(ATR.to_vec()),
            [0] | [1] | [2] => None, // power off / on / reset: no answer
            [c] => {
                eprintln!("shomei-card: unknown vpcd control byte {c}");
                None
            }
            _ => match respond(&shared, &msg) {
                Some(r) => {
                    if verbose {
                        eprintln!("shomei-card: apdu {} -> {}", hex::encode_upper(&msg), hex::encode_upper(&r));
                    }
                    Some(r)
                }
                None => {
                    eprintln!("shomei-card: apdu {} -> (card pulled away, closing)", hex::encode_upper(&msg));
                    return SessionEnd::Pulled;
                }
            },
        };
        if let Some(r) = reply {
            let mut out = Vec::with_capacity(r.len() + 2);
            out.extend_from_slice(&(r.len() as u16).to_be_bytes());
            out.extend_from_slice(&r);
            if let Err(e) = s.write_all(&out).await {
                return SessionEnd::Closed(e.to_string());
            }
        }
    }
}

struct Controller {
    addr: String,
    shared: Shared,
    want_inserted: bool,
    session: Option<JoinHandle<SessionEnd>>,
    next_retry: Instant,
    /// To log "vpcd unreachable" once per outage rather than every 250 ms.
    warned_unreachable: bool,
}

impl Controller {
    async fn try_connect(&mut self) -> bool {
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&self.addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                eprintln!("shomei-card: connected to vpcd at {} (card on the reader)", self.addr);
                self.session = Some(tokio::spawn(session(s, self.shared.clone())));
                self.warned_unreachable = false;
                true
            }
            Ok(Err(e)) => {
                self.unreachable(&e.to_string());
                false
            }
            Err(_) => {
                self.unreachable("connect timed out");
                false
            }
        }
    }

    fn unreachable(&mut self, why: &str) {
        if !self.warned_unreachable {
            eprintln!("shomei-card: vpcd at {} not reachable ({why}); retrying every {RECONNECT_EVERY:?}", self.addr);
            self.warned_unreachable = true;
        }
        self.next_retry = Instant::now() + RECONNECT_EVERY;
    }

    /// Closes the vpcd connection (if any) and waits until the socket is closed.
    async fn disconnect(&mut self) {
        if let Some(h) = self.session.take() {
            h.abort();
            let _ = h.await;
            eprintln!("shomei-card: disconnected from vpcd (card off the reader)");
        }
    }

    fn status_line(&self) -> String {
        let b = lock(&self.shared);
        format!(
            "status {} {} uid={} sw={} remove-on-read={}",
            if self.want_inserted { "inserted" } else { "removed" },
            if self.session.is_some() { "connected" } else { "disconnected" },
            hex::encode_upper(&b.uid),
            b.sw.map(|s| format!("{s:04X}")).unwrap_or_else(|| "normal".into()),
            b.remove_on_read,
        )
    }

    fn session_ended(&mut self, end: Result<SessionEnd, tokio::task::JoinError>) {
        match end {
            Ok(SessionEnd::Pulled) => {
                self.want_inserted = false;
                eprintln!("shomei-card: card pulled away mid-read (now removed)");
            }
            Ok(SessionEnd::Closed(why)) => {
                eprintln!("shomei-card: vpcd closed the connection ({why}); will reconnect");
                self.next_retry = Instant::now() + RECONNECT_EVERY;
            }
            Err(e) => eprintln!("shomei-card: session task failed: {e}"),
        }
    }

    /// Processes a session that has ended but was not looked at yet, so that a
    /// command never acts on a stale "connected" state.
    async fn reap(&mut self) {
        if self.session.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(h) = self.session.take() {
                let end = h.await;
                self.session_ended(end);
            }
        }
    }

    /// Returns (ack, quit).
    async fn handle(&mut self, cmd: Result<Cmd, String>) -> (String, bool) {
        self.reap().await;
        let cmd = match cmd {
            Ok(c) => c,
            Err(e) => return (format!("error: {e}"), false),
        };
        let ack = match cmd {
            Cmd::Insert | Cmd::Tap => {
                if self.want_inserted && matches!(cmd, Cmd::Tap) {
                    self.disconnect().await;
                    tokio::time::sleep(RETAP_GAP).await;
                }
                self.want_inserted = true;
                if self.session.is_none() {
                    self.try_connect().await;
                }
                "inserted".to_string()
            }
            Cmd::Remove => {
                // a card lifted is off the reader once pcscd has polled: the
                // ack waits that long, so whatever follows (a new number, a
                // tap) happens after the reader has seen it empty
                let was_inserted = self.want_inserted && self.session.is_some();
                self.want_inserted = false;
                self.disconnect().await;
                if was_inserted {
                    tokio::time::sleep(RETAP_GAP).await;
                }
                "removed".to_string()
            }
            Cmd::Uid(uid) => {
                let ack = format!("uid {}", hex::encode_upper(&uid));
                lock(&self.shared).uid = uid;
                ack
            }
            Cmd::Sw(sw) => {
                lock(&self.shared).sw = Some(sw);
                format!("sw {sw:04X}")
            }
            Cmd::Ok => {
                let mut b = lock(&self.shared);
                b.sw = None;
                b.remove_on_read = false;
                "ok".to_string()
            }
            Cmd::RemoveOnRead => {
                lock(&self.shared).remove_on_read = true;
                "remove-on-read".to_string()
            }
            Cmd::Status => self.status_line(),
            Cmd::Quit => {
                self.want_inserted = false;
                self.disconnect().await;
                return ("bye".to_string(), true);
            }
        };
        (ack, false)
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        loop {
            let retry = self.want_inserted && self.session.is_none();
            tokio::select! {
                req = rx.recv() => {
                    let Some(req) = req else { break };
                    let (ack, quit) = self.handle(req.cmd).await;
                    match req.reply {
                        Some(tx) => { let _ = tx.send(ack); }
                        None => say(&ack),
                    }
                    if quit { break; }
                }
                end = async { self.session.as_mut().expect("guarded by if").await }, if self.session.is_some() => {
                    self.session = None;
                    self.session_ended(end);
                }
                _ = tokio::time::sleep_until(self.next_retry), if retry => {
                    self.try_connect().await;
                }
            }
        }
    }
}

/// One line on stdout, flushed.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Reads stdin on a plain thread (tokio's stdin would keep the runtime from shutting down).
fn stdin_loop(tx: mpsc::Sender<Request>, ignore_eof: bool) {
    use std::io::BufRead as _;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        if tx.blocking_send(Request { cmd: parse_cmd(&line), reply: None }).is_err() {
            return;
        }
    }
    if !ignore_eof {
        let _ = tx.blocking_send(Request { cmd: Ok(Cmd::Quit), reply: None });
    }
}

// ---- HTTP control (demo) ----

async fn http_loop(listener: TcpListener, tx: mpsc::Sender<Request>) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = tokio::time::timeout(Duration::from_secs(10), http_conn(sock, tx)).await {
                        eprintln!("shomei-card: control connection: {e}");
                    }
                });
            }
            Err(e) => {
                eprintln!("shomei-card: control accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn http_conn(mut sock: TcpStream, tx: mpsc::Sender<Request>) {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 * 1024 {
            return;
        }
        let mut chunk = [0u8; 1024];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let method = request_line.next().unwrap_or("").to_string();
    let target = request_line.next().unwrap_or("/").to_string();
    // Drain a (small) body so closing the socket doesn't reset the connection.
    let content_length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
        .min(64 * 1024);
    let mut have = buf.len() - head_end;
    while have < content_length {
        let mut chunk = [0u8; 1024];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }

    let path = target.split('?').next().unwrap_or("/").trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let cmd = match (method.as_str(), segs.as_slice()) {
        ("GET" | "HEAD", [] | ["status"]) => Some(Ok(Cmd::Status)),
        ("POST", ["tap"]) => Some(Ok(Cmd::Tap)),
        ("POST", ["insert"]) => Some(Ok(Cmd::Insert)),
        ("POST", ["remove"]) => Some(Ok(Cmd::Remove)),
        ("POST", ["ok"]) => Some(Ok(Cmd::Ok)),
        ("POST", ["remove-on-read"]) => Some(Ok(Cmd::RemoveOnRead)),
        ("POST", ["uid", hex]) => Some(parse_uid(hex).map(Cmd::Uid)),
        ("POST", ["sw", hex]) => Some(parse_sw(hex).map(Cmd::Sw)),
        _ => None,
    };
    let (code, body) = match cmd {
        None => (
            "404 Not Found",
            "not found. GET /, POST /tap /insert /remove /uid/HEX /sw/HEX /ok /remove-on-read\n".to_string(),
        ),
        Some(cmd) => {
            let (rtx, rrx) = oneshot::channel();
            if tx.send(Request { cmd, reply: Some(rtx) }).await.is_err() {
                return;
            }
            let ack = rrx.await.unwrap_or_else(|_| "error: shutting down".into());
            eprintln!("shomei-card: http {method} {target} -> {ack}");
            let code = if ack.starts_with("error") { "400 Bad Request" } else { "200 OK" };
            let body = if segs.is_empty() || segs == ["status"] {
                format!(
                    "shomei-card: emulated contactless card\n{ack}\n\nPOST /tap /insert /remove /uid/HEX /sw/HEX /ok /remove-on-read\n"
                )
            } else {
                format!("{ack}\n")
            };
            (code, body)
        }
    };
    let mut resp = format!(
        "HTTP/1.1 {code}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        resp.push_str(&body);
    }
    let _ = sock.write_all(resp.as_bytes()).await;
    let _ = sock.shutdown().await;
}

// ---- main ----

#[derive(Parser)]
#[command(
    name = "shomei-card",
    version,
    about = "Emulated contactless (FeliCa-like) card for vpcd: connected = card on the reader, closed = removed",
    after_help = "stdin commands: insert | tap | remove | uid HEX | sw HEX | ok | remove-on-read | status | quit",
    args_override_self = true
)]
struct Args {
    /// Host where vpcd listens
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// vpcd's TCP port
    #[arg(long, default_value_t = 35963)]
    port: u16,
    /// UID / IDm answered to GET DATA (1..16 bytes, hex)
    #[arg(long, value_name = "HEX", default_value = DEFAULT_UID, value_parser = parse_uid_arg)]
    uid: Uid,
    /// Start with the card off the reader
    #[arg(long)]
    no_insert: bool,
    /// Serve the demo's HTTP control on ADDR:PORT (GET /, POST /tap /insert /remove /uid/HEX ...)
    #[arg(long, value_name = "ADDR:PORT")]
    control: Option<String>,
    /// Keep running at stdin EOF (only `quit` or a signal ends the program)
    #[arg(long)]
    ignore_eof: bool,
    /// Log every APDU and its answer on stderr
    #[arg(short, long)]
    verbose: bool,
}

/// The `--uid` value (a newtype so clap takes it as one value, not a list of bytes).
#[derive(Clone, Debug)]
struct Uid(Vec<u8>);

fn parse_uid_arg(hex_str: &str) -> Result<Uid, String> {
    parse_uid(hex_str).map(Uid)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let insert = !args.no_insert;
    let shared: Shared =
        Arc::new(Mutex::new(Behaviour { uid: args.uid.0, sw: None, remove_on_read: false, verbose: args.verbose }));
    let (tx, rx) = mpsc::channel::<Request>(16);

    if let Some(addr) = &args.control {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding control {addr}"))?;
        eprintln!("shomei-card: control on http://{}/", listener.local_addr()?);
        tokio::spawn(http_loop(listener, tx.clone()));
    }

    let mut ctl = Controller {
        addr: format!("{}:{}", args.host, args.port),
        shared,
        want_inserted: insert,
        session: None,
        next_retry: Instant::now(),
        warned_unreachable: false,
    };
    if insert {
        ctl.try_connect().await;
    }
    say(if insert { "READY inserted" } else { "READY removed" });

    let stdin_tx = tx.clone();
    std::thread::spawn(move || stdin_loop(stdin_tx, args.ignore_eof));
    // `tx` stays alive: with --ignore-eof only `quit` (or a signal) ends the program.
    ctl.run(rx).await;
    drop(tx);
    std::process::exit(0)
}
