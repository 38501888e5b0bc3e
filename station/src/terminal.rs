//! The serial payment terminal (P-5): transit e-money (Suica, ICOCA, manaca...)
//! is charged by a certified terminal, not by us. This is the adapter that
//! speaks the framed protocol of docs/terminal-protocol.md over a serial
//! port (tokio-serial), with ACK/NAK and retransmission, and that asks the
//! terminal for the status of a charge whose answer was lost before
//! deciding anything: a lost answer is never reported as a failure the user
//! could pay again after.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;
/// Largest CMD + DATA accepted.
pub const MAX_LEN: usize = 512;

pub mod cmd {
    pub const CHARGE: u8 = 0x10;
    pub const CANCEL: u8 = 0x11;
    pub const STATUS: u8 = 0x12;
    pub const PING: u8 = 0x13;
    pub const RESULT: u8 = 0x20;
    pub const PONG: u8 = 0x21;
}

/// Result codes in a RESULT frame.
pub mod code {
    pub const APPROVED: u8 = 0;
    pub const INSUFFICIENT: u8 = 1;
    pub const CARD_ERROR: u8 = 2;
    pub const NO_CARD: u8 = 3;
    pub const CANCELLED: u8 = 4;
    pub const UNKNOWN_TXN: u8 = 5;
    pub const BUSY: u8 = 6;
    pub const IN_PROGRESS: u8 = 7;
}

/// LRC: XOR of LEN, CMD and DATA.
fn lrc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

/// STX | LEN (u16 BE, of CMD+DATA) | CMD | DATA | LRC | ETX.
pub fn encode(command: u8, data: &[u8]) -> Vec<u8> {
    let len = (data.len() + 1) as u16;
    let mut body = Vec::with_capacity(data.len() + 3);
    body.extend_from_slice(&len.to_be_bytes());
    body.push(command);
    body.extend_from_slice(data);
    let mut out = Vec::with_capacity(body.len() + 3);
    out.push(STX);
    out.extend_from_slice(&body);
    out.push(lrc(&body));
    out.push(ETX);
    out
}

/// What the decoder found in the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid frame: (command, data).
    Frame(u8, Vec<u8>),
    /// A lone ACK or NAK byte.
    Ack,
    Nak,
    /// A frame whose checksum, length or end byte is wrong: answer NAK.
    Bad,
}

/// A streaming decoder: feed it bytes as they come; garbage before an STX
/// is skipped, a frame split over reads is put together.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next thing in the buffer, if complete.
    pub fn next_item(&mut self) -> Option<Decoded> {
        loop {
            let first = *self.buf.first()?;
            match first {
                ACK => {
                    self.buf.remove(0);
                    return Some(Decoded::Ack);
                }
                NAK => {
                    self.buf.remove(0);
                    return Some(Decoded::Nak);
                }
                STX => break,
                _ => {
                    self.buf.remove(0); // noise on the line
                }
            }
        }
        if self.buf.len() < 3 {
            return None;
        }
        let len = u16::from_be_bytes([self.buf[1], self.buf[2]]) as usize;
        if len == 0 || len > MAX_LEN {
            self.buf.remove(0);
            return Some(Decoded::Bad);
        }
        let total = 1 + 2 + len + 2;
        if self.buf.len() < total {
            return None;
        }
        let frame: Vec<u8> = self.buf.drain(..total).collect();
        let body = &frame[1..3 + len];
        if frame[total - 1] != ETX || frame[total - 2] != lrc(body) {
            return Some(Decoded::Bad);
        }
        Some(Decoded::Frame(body[2], body[3..].to_vec()))
    }
}

/// A transaction id: 16 ASCII characters (the station's idempotency key for the charge).
pub fn txn_bytes(txn: &str) -> Result<[u8; 16], TerminalError> {
    let b = txn.as_bytes();
    if b.len() != 16 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return Err(TerminalError::Protocol(format!("transaction id {txn:?} must be 16 letters or digits")));
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(b);
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Approved { balance_after: u32, brand: String },
    Declined(Declined),
    /// The terminal's answer is lost and it could not be asked: the charge
    /// may have happened. Keep the job for reconciliation; never retry blindly.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    Insufficient,
    CardError,
    NoCard,
    Cancelled,
}

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("serial port: {0}")]
    Io(#[from] std::io::Error),
    #[error("no ACK from the terminal after {0} tries")]
    NoAck(u32),
    #[error("terminal protocol: {0}")]
    Protocol(String),
    /// The port could not be opened: nothing was sent, nothing charged.
    #[error("terminal not connected: {0}")]
    NotConnected(String),
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct TerminalConfig {
    /// Wait for an ACK before sending a frame again.
    pub ack_timeout_ms: u64,
    pub retries: u32,
    /// How long the terminal may wait for a card before it answers.
    pub charge_timeout_s: u64,
    /// After a lost answer: how many STATUS questions, one per second.
    pub status_attempts: u32,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        TerminalConfig { ack_timeout_ms: 500, retries: 3, charge_timeout_s: 30, status_attempts: 5 }
    }
}

/// The terminal on a serial line (or any byte stream, for tests).
pub struct TerminalClient<S> {
    io: S,
    decoder: Decoder,
    cfg: TerminalConfig,
}

impl TerminalClient<tokio_serial::SerialStream> {
    /// Opens the terminal's serial port (8N1).
    pub fn open(path: &str, baud: u32, cfg: TerminalConfig) -> Result<Self, TerminalError> {
        use tokio_serial::SerialPortBuilderExt;
        let port = tokio_serial::new(path, baud).open_native_async().map_err(|e| TerminalError::Io(std::io::Error::other(e.to_string())))?;
        Ok(TerminalClient::new(port, cfg))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TerminalClient<S> {
    pub fn new(io: S, cfg: TerminalConfig) -> Self {
        TerminalClient { io, decoder: Decoder::default(), cfg }
    }

    /// The next decoded item, or None when `wait` passes first.
    async fn read_item(&mut self, wait: Duration) -> Result<Option<Decoded>, TerminalError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(d) = self.decoder.next_item() {
                return Ok(Some(d));
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout_at(deadline, self.io.read(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err(TerminalError::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "serial line closed"))),
                Ok(Ok(n)) => self.decoder.push(&buf[..n]),
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Sends a frame until it is ACKed (NAK or silence: again, up to `retries` times).
    async fn send(&mut self, command: u8, data: &[u8]) -> Result<(), TerminalError> {
        let frame = encode(command, data);
        for attempt in 1..=self.cfg.retries {
            self.io.write_all(&frame).await?;
            self.io.flush().await?;
            match self.read_item(Duration::from_millis(self.cfg.ack_timeout_ms)).await? {
                Some(Decoded::Ack) => return Ok(()),
                other => tracing::warn!(command, attempt, ?other, "terminal did not ACK; sending again"),
            }
        }
        Err(TerminalError::NoAck(self.cfg.retries))
    }

    /// Waits for a RESULT/PONG frame (ACKing it, NAKing bad ones) for up to `wait`.
    async fn receive(&mut self, wait: Duration) -> Result<Option<(u8, Vec<u8>)>, TerminalError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_item(left).await? {
                None => return Ok(None),
                Some(Decoded::Frame(c, d)) => {
                    self.io.write_all(&[ACK]).await?;
                    self.io.flush().await?;
                    return Ok(Some((c, d)));
                }
                Some(Decoded::Bad) => {
                    tracing::warn!("bad frame from the terminal: NAK");
                    self.io.write_all(&[NAK]).await?;
                    self.io.flush().await?;
                }
                Some(Decoded::Ack | Decoded::Nak) => {}
            }
        }
    }

    /// A RESULT for `txn`: (code, balance, brand).
    async fn result_for(&mut self, txn: &[u8; 16], wait: Duration) -> Result<Option<(u8, u32, String)>, TerminalError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some((c, d)) = self.receive(left).await? else { return Ok(None) };
            if c == cmd::RESULT && d.len() >= 21 && &d[..16] == txn {
                let balance = u32::from_be_bytes([d[17], d[18], d[19], d[20]]);
                return Ok(Some((d[16], balance, String::from_utf8_lossy(&d[21..]).into_owned())));
            }
            tracing::debug!(command = c, "answer for another transaction ignored");
        }
    }

    fn outcome(code_: u8, balance: u32, brand: String) -> Option<ChargeOutcome> {
        Some(match code_ {
            code::APPROVED => ChargeOutcome::Approved { balance_after: balance, brand },
            code::INSUFFICIENT => ChargeOutcome::Declined(Declined::Insufficient),
            code::CARD_ERROR => ChargeOutcome::Declined(Declined::CardError),
            code::NO_CARD => ChargeOutcome::Declined(Declined::NoCard),
            code::CANCELLED => ChargeOutcome::Declined(Declined::Cancelled),
            _ => return None, // unknown txn, busy, in progress: not final
        })
    }

    /// Charges `amount_yen` as transaction `txn` (the same txn never charges
    /// twice at the terminal). When the answer is lost, asks STATUS before deciding.
    pub async fn charge(&mut self, txn: &str, amount_yen: u32) -> Result<ChargeOutcome, TerminalError> {
        let t = txn_bytes(txn)?;
        let mut data = t.to_vec();
        data.extend_from_slice(&amount_yen.to_be_bytes());
        tracing::info!(txn, amount_yen, "terminal: charge");
        let sent = self.send(cmd::CHARGE, &data).await;
        if let Ok(()) = sent {
            if let Some((c, b, brand)) = self.result_for(&t, Duration::from_secs(self.cfg.charge_timeout_s)).await? {
                if let Some(o) = Self::outcome(c, b, brand) {
                    tracing::info!(txn, ?o, "terminal: charge answered");
                    return Ok(o);
                }
            }
        }
        // the answer (or our request) was lost: ask before deciding anything
        tracing::warn!(txn, "terminal: charge answer lost; asking its status");
        for _ in 0..self.cfg.status_attempts {
            match self.status(txn).await {
                Ok(Some(o)) => return Ok(o),
                Ok(None) => {}
                Err(e) => tracing::warn!(txn, error = %e, "terminal: status not answered"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(ChargeOutcome::Unknown)
    }

    /// STATUS of a transaction: its final outcome, or None while it is not final.
    /// A transaction the terminal never saw is final: declined, nothing charged.
    pub async fn status(&mut self, txn: &str) -> Result<Option<ChargeOutcome>, TerminalError> {
        let t = txn_bytes(txn)?;
        self.send(cmd::STATUS, &t).await?;
        Ok(match self.result_for(&t, Duration::from_millis(self.cfg.ack_timeout_ms * 4)).await? {
            Some((code::UNKNOWN_TXN, _, _)) => Some(ChargeOutcome::Declined(Declined::Cancelled)),
            Some((c, b, brand)) => Self::outcome(c, b, brand),
            None => None,
        })
    }

    /// CANCEL a transaction still waiting for a card.
    pub async fn cancel(&mut self, txn: &str) -> Result<Option<ChargeOutcome>, TerminalError> {
        let t = txn_bytes(txn)?;
        self.send(cmd::CANCEL, &t).await?;
        Ok(self.result_for(&t, Duration::from_millis(self.cfg.ack_timeout_ms * 4)).await?.and_then(|(c, b, brand)| Self::outcome(c, b, brand)))
    }

    /// PING: true when the terminal answers.
    pub async fn ping(&mut self) -> Result<bool, TerminalError> {
        self.send(cmd::PING, &[]).await?;
        Ok(matches!(self.receive(Duration::from_millis(self.cfg.ack_timeout_ms * 4)).await?, Some((cmd::PONG, _))))
    }
}

/// The station's terminal: the serial port, opened on first use and again
/// after an error (a terminal unplugged and plugged back).
pub struct SerialTerminal {
    port: String,
    baud: u32,
    cfg: TerminalConfig,
    client: tokio::sync::Mutex<Option<TerminalClient<tokio_serial::SerialStream>>>,
}

impl SerialTerminal {
    pub fn new(port: &str, baud: u32, cfg: TerminalConfig) -> SerialTerminal {
        SerialTerminal { port: port.to_string(), baud, cfg, client: tokio::sync::Mutex::new(None) }
    }

    fn connect(&self, slot: &mut Option<TerminalClient<tokio_serial::SerialStream>>) -> Result<(), TerminalError> {
        if slot.is_none() {
            let c = TerminalClient::open(&self.port, self.baud, self.cfg.clone()).map_err(|e| TerminalError::NotConnected(e.to_string()))?;
            *slot = Some(c);
        }
        Ok(())
    }

    /// [`TerminalClient::charge`] on the port.
    pub async fn charge(&self, txn: &str, amount_yen: u32) -> Result<ChargeOutcome, TerminalError> {
        let mut slot = self.client.lock().await;
        self.connect(&mut slot)?;
        let Some(c) = slot.as_mut() else { return Err(TerminalError::NotConnected(self.port.clone())) };
        let r = c.charge(txn, amount_yen).await;
        if r.is_err() {
            *slot = None;
        }
        r
    }

    /// [`TerminalClient::status`] on the port.
    pub async fn status(&self, txn: &str) -> Result<Option<ChargeOutcome>, TerminalError> {
        let mut slot = self.client.lock().await;
        self.connect(&mut slot)?;
        let Some(c) = slot.as_mut() else { return Err(TerminalError::NotConnected(self.port.clone())) };
        let r = c.status(txn).await;
        if r.is_err() {
            *slot = None;
        }
        r
    }

    /// True when the terminal answers a PING (or is busy with a charge).
    pub async fn present(&self) -> bool {
        let Ok(mut slot) = self.client.try_lock() else { return true };
        if self.connect(&mut slot).is_err() {
            return false;
        }
        let Some(c) = slot.as_mut() else { return false };
        match c.ping().await {
            Ok(true) => true,
            _ => {
                *slot = None;
                false
            }
        }
    }
}

/// A transaction id for the terminal (16 characters) from a job's charge key.
pub fn txn_for(charge_key: &str) -> String {
    let hex: String = charge_key.chars().filter(char::is_ascii_hexdigit).collect();
    format!("{:0>16}", &hex[hex.len().saturating_sub(16)..]).to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let f = encode(cmd::CHARGE, b"ABCDEFGHIJKLMNOP\x00\x00\x01\x90");
        let mut d = Decoder::default();
        d.push(b"\xff\x00garbage");
        d.push(&f[..5]);
        assert_eq!(d.next_item(), None, "split frame waits for the rest");
        d.push(&f[5..]);
        assert_eq!(d.next_item(), Some(Decoded::Frame(cmd::CHARGE, b"ABCDEFGHIJKLMNOP\x00\x00\x01\x90".to_vec())));
        let mut bad = f.clone();
        let n = bad.len();
        bad[n - 2] ^= 0xff;
        d.push(&bad);
        assert_eq!(d.next_item(), Some(Decoded::Bad));
        d.push(&[STX, 0xff, 0xff]);
        assert_eq!(d.next_item(), Some(Decoded::Bad), "oversize length");
        d.push(&[ACK, NAK]);
        assert_eq!((d.next_item(), d.next_item()), (Some(Decoded::Ack), Some(Decoded::Nak)));
        assert!(txn_bytes("short").is_err() && txn_bytes("ABCDEFGHIJKLMNOP").is_ok());
    }
}
