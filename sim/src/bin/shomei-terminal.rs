//! `shomei-terminal --port PATH [--balance YEN]`: an emulator of the certified
//! transit e-money terminal of docs/terminal-protocol.md, on one end of a
//! serial line (a socat pseudo-terminal pair in tests and the demo). It is an
//! independent implementation of the documented protocol: frames, ACK/NAK
//! with retransmission, CHARGE (idempotent by transaction id), STATUS,
//! CANCEL, PING.
//!
//! Control on stdin, one command per line, each answered on stdout:
//! `mode ok|decline|no_card|silent|lose_next_result|nak_next|garbage_next|busy`,
//! `balance YEN`, `state` (answers `state balance=N charges=K`).
//! Prints `READY` once the port is open.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;

fn lrc(b: &[u8]) -> u8 {
    b.iter().fold(0, |a, x| a ^ x)
}

fn frame(command: u8, data: &[u8]) -> Vec<u8> {
    let mut body = ((data.len() + 1) as u16).to_be_bytes().to_vec();
    body.push(command);
    body.extend_from_slice(data);
    let mut out = vec![STX];
    out.extend_from_slice(&body);
    out.push(lrc(&body));
    out.push(ETX);
    out
}

enum Item {
    Frame(u8, Vec<u8>),
    Ack,
    Nak,
    Bad,
}

/// Takes the next item from `buf`, if complete.
fn decode(buf: &mut Vec<u8>) -> Option<Item> {
    loop {
        match *buf.first()? {
            ACK => {
                buf.remove(0);
                return Some(Item::Ack);
            }
            NAK => {
                buf.remove(0);
                return Some(Item::Nak);
            }
            STX => break,
            _ => {
                buf.remove(0);
            }
        }
    }
    if buf.len() < 3 {
        return None;
    }
    let len = u16::from_be_bytes([buf[1], buf[2]]) as usize;
    if len == 0 || len > 512 {
        buf.remove(0);
        return Some(Item::Bad);
    }
    if buf.len() < len + 5 {
        return None;
    }
    let f: Vec<u8> = buf.drain(..len + 5).collect();
    let body = &f[1..3 + len];
    if f[len + 4] != ETX || f[len + 3] != lrc(body) {
        return Some(Item::Bad);
    }
    Some(Item::Frame(body[2], body[3..].to_vec()))
}

struct Terminal {
    port: std::fs::File,
    bytes: mpsc::Receiver<u8>,
    buf: Vec<u8>,
    mode: String,
    balance: u32,
    charges: u32,
    results: HashMap<Vec<u8>, (u8, u32)>,
}

impl Terminal {
    fn write(&mut self, b: &[u8]) {
        let _ = self.port.write_all(b);
        let _ = self.port.flush();
    }

    fn next_item(&mut self, wait: Duration) -> Option<Item> {
        let end = Instant::now() + wait;
        loop {
            if let Some(i) = decode(&mut self.buf) {
                return Some(i);
            }
            let left = end.saturating_duration_since(Instant::now());
            match self.bytes.recv_timeout(left) {
                Ok(b) => self.buf.push(b),
                Err(_) => return None,
            }
        }
    }

    /// Sends a frame until the host ACKs it (3 tries).
    fn send(&mut self, command: u8, data: &[u8]) {
        let f = frame(command, data);
        for _ in 0..3 {
            self.write(&f);
            if let Some(Item::Ack) = self.next_item(Duration::from_millis(500)) {
                return;
            }
        }
    }

    fn result(&mut self, txn: &[u8], code: u8, balance: u32) {
        let mut d = txn.to_vec();
        d.push(code);
        d.extend_from_slice(&balance.to_be_bytes());
        d.extend_from_slice(b"Suica");
        self.send(0x20, &d);
    }

    fn handle(&mut self, command: u8, data: Vec<u8>) {
        match self.mode.as_str() {
            "silent" => return,
            "nak_next" => {
                self.mode = "ok".into();
                self.write(&[NAK]);
                return; // the host sends it again
            }
            "garbage_next" => {
                self.mode = "ok".into();
                self.write(b"\x55\xaa\x00noise");
            }
            _ => {}
        }
        self.write(&[ACK]);
        let txn = data.get(..16).map(<[u8]>::to_vec).unwrap_or_default();
        match command {
            0x10 => {
                if let Some((code, bal)) = self.results.get(&txn).copied() {
                    self.result(&txn, code, bal); // the same transaction again: the first answer
                    return;
                }
                let amount = data.get(16..20).map(|a| u32::from_be_bytes([a[0], a[1], a[2], a[3]])).unwrap_or(0);
                let (code, bal) = match self.mode.as_str() {
                    "decline" => (2, self.balance),
                    "no_card" => {
                        std::thread::sleep(Duration::from_millis(800));
                        (3, self.balance)
                    }
                    "busy" => (6, self.balance),
                    _ if self.balance < amount => (1, self.balance),
                    _ => {
                        self.balance -= amount;
                        self.charges += 1;
                        (0, self.balance)
                    }
                };
                if code != 6 {
                    self.results.insert(txn.clone(), (code, bal));
                }
                if self.mode == "lose_next_result" {
                    self.mode = "ok".into();
                    return; // charged, but the answer never reaches the host
                }
                self.result(&txn, code, bal);
            }
            0x12 => match self.results.get(&txn).copied() {
                Some((code, bal)) => self.result(&txn, code, bal),
                None => self.result(&txn, 5, self.balance),
            },
            0x11 => {
                let (code, bal) = *self.results.entry(txn.clone()).or_insert((4, self.balance));
                self.result(&txn, code, bal);
            }
            0x13 => self.send(0x21, &[]),
            _ => {}
        }
    }
}

#[derive(Parser)]
#[command(
    name = "shomei-terminal",
    version,
    about = "Emulator of the certified transit e-money terminal (docs/terminal-protocol.md) on a serial line",
    args_override_self = true
)]
struct Args {
    /// Serial device to open (one end of a socat pseudo-terminal pair)
    #[arg(long, value_name = "PATH")]
    port: PathBuf,
    /// Card balance at start, in yen
    #[arg(long, value_name = "YEN", default_value_t = 3000)]
    balance: u32,
}

fn main() -> anyhow::Result<()> {
    let Args { port: path, balance } = Args::parse();
    let port = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
    let mut reader = port.try_clone()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut b = [0u8; 256];
        while let Ok(n) = reader.read(&mut b) {
            if n == 0 {
                break;
            }
            for x in &b[..n] {
                if tx.send(*x).is_err() {
                    return;
                }
            }
        }
    });
    let (ctl_tx, ctl_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if ctl_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut t = Terminal { port, bytes: rx, buf: Vec::new(), mode: "ok".into(), balance, charges: 0, results: HashMap::new() };
    let mut out = std::io::stdout();
    writeln!(out, "READY")?;
    out.flush()?;
    loop {
        while let Ok(line) = ctl_rx.try_recv() {
            let mut w = line.split_whitespace();
            let answer = match (w.next(), w.next()) {
                (Some("mode"), Some(m)) => {
                    t.mode = m.to_string();
                    format!("mode {m}")
                }
                (Some("balance"), Some(b)) => {
                    t.balance = b.parse().unwrap_or(t.balance);
                    format!("balance {}", t.balance)
                }
                (Some("state"), _) => format!("state balance={} charges={}", t.balance, t.charges),
                _ => format!("unknown command {line:?}"),
            };
            writeln!(out, "{answer}")?;
            out.flush()?;
        }
        match t.next_item(Duration::from_millis(50)) {
            Some(Item::Frame(c, d)) => t.handle(c, d),
            Some(Item::Bad) => t.write(&[NAK]),
            _ => {}
        }
    }
}
