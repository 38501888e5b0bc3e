//! The station's contactless card reader, over PC/SC (pcsc-lite).
//!
//! A card is identified by the UID / IDm its reader returns for the PC/SC
//! part 3 pseudo-APDU GET DATA `FF CA 00 00 00`. That identifies a card; it
//! proves nothing (a UID can be cloned).
//!
//! Every call establishes its own PC/SC context, so a restarted pcscd is
//! picked up by the next call, and calls from several threads (heartbeat and
//! payment flow) do not share state.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pcsc::{Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};

/// GET DATA, P1 = 00: the card's UID (FeliCa: the 8-byte IDm).
const GET_UID: [u8; 5] = [0xFF, 0xCA, 0x00, 0x00, 0x00];
/// Longest single wait inside `read_uid` between two looks at the cancel flag.
const POLL_SLICE: Duration = Duration::from_millis(200);
/// After an unexplained read failure, how long to watch for the card leaving
/// (pcscd polls a reader's card presence about every 0.4 s).
const CONFIRM_REMOVAL: Duration = Duration::from_millis(800);
/// After a PC/SC failure in `wait_removed`, wait this long before trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Identification of a card by its UID / IDm (hex, upper case). It identifies; it proves nothing.
pub trait CardReader: Send + Sync + 'static {
    /// Blocking (call it from spawn_blocking). Waits until a card is on the reader, then reads its UID with GET DATA (FF CA 00 00 00).
    /// Returns Err(ReaderError::Timeout) when no card came within `timeout`, Err(Cancelled) soon (<= 300 ms) after `cancel` becomes true.
    fn read_uid(&self, timeout: std::time::Duration, cancel: &std::sync::atomic::AtomicBool) -> Result<String, ReaderError>;
    /// Is a reader attached and the PC/SC service up? (for the heartbeat)
    fn reader_present(&self) -> bool;
    /// Blocking: waits until no card is on the reader (or timeout); used before the next user.
    fn wait_removed(&self, timeout: std::time::Duration) -> bool;
}

#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("no card was presented on the reader in time")]
    Timeout,
    #[error("card read cancelled")]
    Cancelled,
    /// The card left the reader before the read finished: ask the user to tap again.
    #[error("the card left the reader before it could be read; please tap it again")]
    Removed,
    /// The card answered GET DATA with an error status word (e.g. two cards on the reader, unsupported card).
    #[error("the card could not be read (status word {0:04X}): one card at a time, or unsupported card")]
    Status(u16),
    #[error("no card reader is connected")]
    NoReader,
    #[error("the smart card service (pcscd) is not running")]
    NoService,
    #[error("card reader error: {0}")]
    Other(String),
}

/// A PC/SC reader, chosen by a substring of its name (e.g. "Virtual PCD 00 00",
/// "SONY FeliCa"); without a filter, every reader is watched and the first card
/// seen on any of them is read.
#[derive(Debug, Clone, Default)]
pub struct PcscReader {
    reader_filter: Option<String>,
}

impl PcscReader {
    pub fn new(reader_filter: Option<String>) -> Self {
        let reader_filter = reader_filter.filter(|f| !f.is_empty());
        Self { reader_filter }
    }

    fn establish(&self) -> Result<Context, ReaderError> {
        Context::establish(Scope::User).map_err(|e| service_error(e, "establishing the PC/SC context"))
    }

    /// The names of the attached readers that match the filter; Err(NoReader) if none.
    fn readers(&self, ctx: &Context) -> Result<Vec<CString>, ReaderError> {
        let all = match ctx.list_readers_owned() {
            Ok(all) => all,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(service_error(e, "listing readers")),
        };
        let matching: Vec<CString> = all
            .into_iter()
            .filter(|name| match &self.reader_filter {
                Some(f) => name.to_string_lossy().contains(f.as_str()),
                None => true,
            })
            .collect();
        if matching.is_empty() {
            tracing::debug!(filter = ?self.reader_filter, "no matching card reader");
            return Err(ReaderError::NoReader);
        }
        Ok(matching)
    }

    /// Connects to the card in `reader` and reads its UID. `seen_count` is the
    /// reader's card event counter when the card was seen.
    fn read_card(&self, ctx: &Context, reader: &CString, seen_count: u32) -> Result<String, ReaderError> {
        let card = match ctx.connect(reader, ShareMode::Shared, Protocols::ANY) {
            Ok(card) => card,
            // It was present a moment ago: it left while we were connecting.
            Err(e @ (pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard | pcsc::Error::ResetCard)) => {
                tracing::info!(reader = ?reader, error = ?e, "card left before connect");
                return Err(ReaderError::Removed);
            }
            Err(e) => return Err(card_error(e, "connecting to the card")),
        };
        let result = transmit_get_uid(&card);
        let _ = card.disconnect(Disposition::LeaveCard);
        match result {
            // CommError during transmit also happens when pcscd itself goes away.
            Err(ReaderError::Removed) if Context::establish(Scope::User).is_err() => Err(ReaderError::NoService),
            // An unexplained failure (e.g. an empty answer, which is what vpcd gives
            // when the card vanishes mid-command): if the card is gone, say so.
            Err(ReaderError::Other(why)) if self.card_left(ctx, reader, seen_count, CONFIRM_REMOVAL) => {
                tracing::info!(reader = ?reader, %why, "read failed and the card left: removed");
                Err(ReaderError::Removed)
            }
            result => result,
        }
    }

    /// Did the card seen with event counter `seen_count` leave `reader` (now or
    /// within `within`)? pcscd notices a removal only at its next poll of the reader.
    fn card_left(&self, ctx: &Context, reader: &CString, seen_count: u32, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut rs = [ReaderState::new(reader.clone(), State::UNAWARE)];
        loop {
            match ctx.get_status_change(deadline.saturating_duration_since(Instant::now()), &mut rs) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => return false,
                Err(e) => {
                    tracing::debug!(error = ?e, "card_left: status change failed");
                    return false;
                }
            }
            let ev = rs[0].event_state();
            tracing::debug!(state = ?ev, count = rs[0].event_count(), seen_count, "card_left: reader state");
            if !ev.contains(State::PRESENT) || rs[0].event_count() != seen_count {
                return true;
            }
            rs[0].sync_current_state();
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// One session of `wait_removed`: Ok(true) = no card any more, Ok(false) = deadline.
    fn wait_removed_once(&self, deadline: Instant) -> Result<bool, ReaderError> {
        let ctx = self.establish()?;
        let mut states: Vec<ReaderState> =
            self.readers(&ctx)?.into_iter().map(|name| ReaderState::new(name, State::UNAWARE)).collect();
        loop {
            let wait = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(1));
            match ctx.get_status_change(wait, &mut states) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => {}
                Err(e) => return Err(service_error(e, "waiting for card removal")),
            }
            let mut card_on = false;
            for rs in &mut states {
                let ev = rs.event_state();
                if ev.intersects(State::UNKNOWN | State::IGNORE) {
                    // This reader went away: certainly no card on it.
                } else if ev.contains(State::PRESENT) {
                    card_on = true;
                }
                rs.sync_current_state();
            }
            if !card_on {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }
}

impl CardReader for PcscReader {
    fn read_uid(&self, timeout: Duration, cancel: &AtomicBool) -> Result<String, ReaderError> {
        let deadline = Instant::now() + timeout;
        let ctx = self.establish()?;
        // UNAWARE: the first get_status_change returns the current state at once.
        let mut states: Vec<ReaderState> =
            self.readers(&ctx)?.into_iter().map(|name| ReaderState::new(name, State::UNAWARE)).collect();
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(ReaderError::Cancelled);
            }
            let wait = deadline.saturating_duration_since(Instant::now()).min(POLL_SLICE);
            match ctx.get_status_change(wait, &mut states) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => {}
                Err(e) => return Err(service_error(e, "waiting for a card")),
            }
            let mut with_card = None;
            for rs in &mut states {
                let ev = rs.event_state();
                if ev.intersects(State::UNKNOWN | State::IGNORE) {
                    tracing::warn!(reader = ?rs.name(), "card reader went away");
                    return Err(ReaderError::NoReader);
                }
                if with_card.is_none() && ev.contains(State::PRESENT) && !ev.contains(State::MUTE) {
                    with_card = Some((rs.name().to_owned(), rs.event_count()));
                }
                rs.sync_current_state();
            }
            if let Some((reader, seen_count)) = with_card {
                if cancel.load(Ordering::SeqCst) {
                    return Err(ReaderError::Cancelled);
                }
                let started = Instant::now();
                let result = self.read_card(&ctx, &reader, seen_count);
                match &result {
                    // never the whole card ID in a log: its last four tell cards apart
                    Ok(uid) => tracing::info!(reader = ?reader, card_tail = %shomei_shared::api::card_id_tail(uid), took = ?started.elapsed(), "card read"),
                    Err(e) => tracing::info!(reader = ?reader, error = %e, "card read failed"),
                }
                return result;
            }
            if Instant::now() >= deadline {
                return Err(ReaderError::Timeout);
            }
        }
    }

    fn reader_present(&self) -> bool {
        match self.establish().and_then(|ctx| self.readers(&ctx)) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "reader not present");
                false
            }
        }
    }

    fn wait_removed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.wait_removed_once(deadline) {
                Ok(removed) => return removed,
                // No (matching) reader: no card on it either.
                Err(ReaderError::NoReader) => return true,
                Err(e) => {
                    tracing::debug!(error = %e, "wait_removed: retrying");
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    std::thread::sleep(left.min(RETRY_PAUSE));
                }
            }
        }
    }
}

/// What one answer to GET DATA says, when it is not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetDataAnswer {
    /// The UID / IDm, hex, upper case.
    Uid(String),
    /// "Wrong Le, the right one is xx" (SW 6C xx): ask again with this Le.
    AskAgainWithLe(u8),
}

/// Interprets one answer (data + status word) to GET DATA, as the card sent it.
pub fn parse_get_data_answer(resp: &[u8]) -> Result<GetDataAnswer, ReaderError> {
    let Some((data, sw)) = resp.split_last_chunk::<2>() else {
        return Err(ReaderError::Other(format!("short answer to GET DATA: {}", hex::encode_upper(resp))));
    };
    match u16::from_be_bytes(*sw) {
        0x9000 if data.is_empty() => Err(ReaderError::Other("the card returned an empty UID".into())),
        0x9000 => Ok(GetDataAnswer::Uid(hex::encode_upper(data))),
        sw if sw >> 8 == 0x6C && sw & 0xFF != 0 => Ok(GetDataAnswer::AskAgainWithLe((sw & 0xFF) as u8)),
        sw => Err(ReaderError::Status(sw)),
    }
}

/// Sends GET DATA and interprets the answer.
fn transmit_get_uid(card: &pcsc::Card) -> Result<String, ReaderError> {
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
    let mut apdu = GET_UID;
    for _attempt in 0..2 {
        let resp = card.transmit(&apdu, &mut buf).map_err(|e| card_error(e, "reading the card UID"))?;
        match parse_get_data_answer(resp)? {
            GetDataAnswer::Uid(uid) => return Ok(uid),
            GetDataAnswer::AskAgainWithLe(le) => apdu[4] = le,
        }
    }
    Err(ReaderError::Other("GET DATA kept asking for another length".into()))
}

/// Errors from context-level calls (establish, list readers, status changes).
fn service_error(e: pcsc::Error, doing: &str) -> ReaderError {
    tracing::debug!(error = ?e, "PC/SC error while {doing}");
    match e {
        // CommError here: the connection to pcscd broke.
        pcsc::Error::NoService | pcsc::Error::ServiceStopped | pcsc::Error::CommError => ReaderError::NoService,
        pcsc::Error::NoReadersAvailable | pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable => {
            ReaderError::NoReader
        }
        e => ReaderError::Other(format!("{doing}: {e}")),
    }
}

/// Errors once we are talking to a reader / a card that was seen on it.
fn card_error(e: pcsc::Error, doing: &str) -> ReaderError {
    match e {
        pcsc::Error::RemovedCard | pcsc::Error::ResetCard | pcsc::Error::NoSmartcard | pcsc::Error::CommError => {
            tracing::info!(error = ?e, "{doing}: card removed");
            ReaderError::Removed
        }
        e => service_error(e, doing),
    }
}
