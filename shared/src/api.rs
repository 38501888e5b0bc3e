//! Wire types of the station sync API (`/api/station/v1/...`).
//!
//! Every request but `enroll` carries `Authorization: Bearer <station token>`.

use crate::{PrintNumber, Yen};
use serde::{Deserialize, Serialize};

pub const API_PREFIX: &str = "/api/station/v1";

/// `POST /enroll`: exchange a one-time enrolment code for the station's credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub code: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub station_id: i64,
    pub name: String,
    /// Shown once; the backend keeps only its hash.
    pub token: String,
    /// hex Ed25519 public key that signs the offline bundles: pinned by the station.
    #[serde(default)]
    pub bundle_key: String,
}

/// `GET /offline/key`: the bundle signing key, for stations enrolled before it existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleKey {
    pub ed25519: String,
}

/// What the station knows about its printer, from Get-Printer-Attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterStatus {
    /// False when the printer did not answer at all.
    pub reachable: bool,
    /// `idle`, `processing`, `stopped` (RFC 8011 printer-state), or `unknown`.
    pub state: String,
    /// printer-state-reasons as reported, e.g. `media-empty-report`, `toner-low-report`.
    pub reasons: Vec<String>,
    /// printer-state-message, when the printer gives one.
    #[serde(default)]
    pub message: String,
    /// Toner / ink / paper supplies (marker-names, marker-types, marker-levels).
    #[serde(default)]
    pub markers: Vec<Marker>,
    /// media-ready: the media loaded and ready, e.g. `iso_a4_210x297mm`.
    #[serde(default)]
    pub media_ready: Vec<String>,
}

/// One supply of the printer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// e.g. "Black Toner".
    pub name: String,
    /// marker-types, e.g. `toner`, `ink-cartridge`.
    pub kind: String,
    /// 0-100 per cent; negative when the printer cannot tell (-1 unknown, -2 some left, -3 unknown).
    pub level: i32,
    /// marker-low-levels: at or below this the supply is low.
    pub low: i32,
}

impl Marker {
    pub fn is_low(&self) -> bool {
        self.level >= 0 && self.level <= self.low.max(0)
    }
}

/// Reasons (prefixes, any severity suffix) that stop a printer from printing.
pub const BLOCKING_REASONS: &[&str] = &[
    "media-empty",
    "media-needed",
    "media-jam",
    "toner-empty",
    "marker-supply-empty",
    "door-open",
    "cover-open",
    "input-tray-missing",
    "output-area-full",
    "paused",
    "shutdown",
    "offline",
    "spool-area-full",
];

impl PrinterStatus {
    /// Readiness comes from printer-state AND printer-state-reasons: ippeveprinter
    /// stays `idle` and only changes reasons (with `-report`/`-warning`/`-error`
    /// suffixes), while CUPS reports `stopped`.
    pub fn blocking_reasons(&self) -> Vec<&str> {
        self.reasons
            .iter()
            .map(String::as_str)
            .filter(|r| {
                let base = r
                    .strip_suffix("-report")
                    .or_else(|| r.strip_suffix("-warning"))
                    .or_else(|| r.strip_suffix("-error"))
                    .unwrap_or(r);
                BLOCKING_REASONS.contains(&base)
            })
            .collect()
    }

    pub fn can_print(&self) -> bool {
        self.reachable && self.state != "stopped" && self.blocking_reasons().is_empty()
    }
}

/// `POST /heartbeat`, every few seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub version: String,
    pub uptime_s: u64,
    pub printer: PrinterStatus,
    pub reader_present: bool,
    /// Journal entries not yet delivered to the backend.
    pub outbox_len: u32,
    /// The station's clock (unix seconds), so the backend can report skew.
    pub station_time: i64,
    /// The serial payment terminal: None when the station has none configured.
    #[serde(default)]
    pub terminal_present: Option<bool>,
    /// Free space where the journal lives, in MiB.
    #[serde(default)]
    pub disk_free_mb: Option<u64>,
    /// Jobs this station has printed (its journal's count).
    #[serde(default)]
    pub jobs_printed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub server_time: i64,
    /// Operators took the station out of service: the kiosk says so and takes no money.
    #[serde(default)]
    pub out_of_service: bool,
    /// Operators asked for a test page (this request number), not printed yet.
    #[serde(default)]
    pub test_page: Option<i64>,
    /// The university the station serves, for its kiosk's heading.
    #[serde(default)]
    pub university_ja: String,
    #[serde(default)]
    pub university_en: String,
}

/// `POST /test-page/{request}`: what became of a test page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPageReport {
    pub printed: bool,
    pub detail: String,
}

/// `POST /reservations`: hold a print number for this station while the user pays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReserveRequest {
    pub print_number: PrintNumber,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationLine {
    pub name_ja: String,
    pub name_en: String,
    pub copies: u32,
    pub amount: Yen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub reservation_id: i64,
    pub print_number: PrintNumber,
    pub lines: Vec<ReservationLine>,
    /// The system usage fee included in `amount`.
    pub system_fee: Yen,
    /// Issuance fees plus the system usage fee.
    pub amount: Yen,
    /// True when the order was paid online already (no card tap needed).
    pub paid: bool,
    /// `card` (IC card at the station) or an online method.
    pub payment_method: String,
    /// Last moment the number prints (unix seconds) and the same as local text.
    pub print_deadline: i64,
    pub print_deadline_text: String,
    /// When the reservation lapses if nothing happens (unix seconds).
    pub expires_at: i64,
    pub pages: u32,
    /// How to print it (IPP Print-Job attributes).
    #[serde(default)]
    pub print: PrintSettings,
}

/// The IPP job attributes an order prints with: every copy is a page of the
/// order's PDF already, so `copies` is 1 unless the university says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintSettings {
    /// IPP `media`, e.g. `iso_a4_210x297mm`.
    pub media: String,
    /// IPP `sides`: `one-sided` (certificates are never printed on both sides).
    pub sides: String,
    pub copies: u32,
}

impl Default for PrintSettings {
    fn default() -> Self {
        PrintSettings { media: "iso_a4_210x297mm".into(), sides: "one-sided".into(), copies: 1 }
    }
}

/// `POST /reservations/{id}/charge`: debit a card's stored value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// Hex of the UID / IDm read with GET DATA.
    pub card_uid: String,
    /// The same key always gives the same single debit.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeResponse {
    pub charged: Yen,
    pub balance_after: Yen,
}

/// `GET /reservations/{id}/charges/{idempotency_key}`: what became of a
/// charge whose answer the station never journalled (it died, or the line
/// broke, after sending it). Asking changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeStatus {
    /// The amount debited under that key for this reservation's order; None: no debit.
    pub charged: Option<Yen>,
}

/// `POST /card-links`: a card no account holds was tapped (the charge
/// answered `card_unknown`); the backend gives a short one-time code that
/// links this card to whoever enters it in the portal. Only its keyed hash
/// is kept; it works once and lapses (`valid_s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardLinkRequest {
    /// Hex of the UID / IDm, as for a charge.
    pub card_uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardLinkCode {
    /// e.g. `7KQ2M9`: letters and digits that cannot be misread (no I, L, O, U).
    pub code: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// How long the code works from now, in seconds (for the screen, whatever the station's clock says).
    #[serde(default)]
    pub valid_s: i64,
}

/// A card's ID as people read it: groups of 4 (`012E 4CD8 A1B2 C3D4`).
pub fn card_id_grouped(uid: &str) -> String {
    let chars: Vec<char> = uid.trim().to_uppercase().chars().collect();
    chars.chunks(4).map(|g| g.iter().collect::<String>()).collect::<Vec<_>>().join(" ")
}

/// A card ID as printed or read: FeliCa IDm (16 hex digits) or a MIFARE UID
/// (8 or 14), spaces and colons allowed; upper-case hex back.
pub fn normalize_card_uid(input: &str) -> Option<String> {
    let hex: String = input.chars().filter(|c| !c.is_whitespace() && *c != ':' && *c != '-').collect::<String>().to_uppercase();
    (matches!(hex.len(), 8 | 14 | 16) && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

/// The last four characters of a card's ID: enough for its holder to know it, not to copy it.
pub fn card_id_tail(uid: &str) -> String {
    let chars: Vec<char> = uid.trim().to_uppercase().chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// `POST /reservations/{id}/terminal-payment`: the certified transit
/// e-money terminal on the station's serial port took the payment (P-5).
/// Queued in the station's outbox with the job's step, so it arrives once
/// even after an outage or a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminalPayment {
    pub idempotency_key: String,
    /// The terminal's transaction id (16 characters).
    pub transaction_id: String,
    pub amount: Yen,
    /// e.g. "Suica", as the terminal reported it.
    pub brand: String,
    pub at: i64,
}


// `POST /reservations/{id}/release` (no body, 204): the user walked away before paying.

/// `POST /reservations/{id}/report`: what became of the print.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrintReport {
    pub idempotency_key: String,
    pub outcome: PrintOutcome,
    pub ipp_job_id: Option<i32>,
    /// The station's journal time of the outcome (unix seconds).
    pub at: i64,
    /// job-impressions-completed as the printer reported it.
    #[serde(default)]
    pub impressions: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrintOutcome {
    Printed,
    Failed { reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportResponse {
    pub order_status: String,
}

// ---------------------------------------------------------------- offline (P-3, ST-2)

/// `GET /offline/bundle`: what a station may print while the backend cannot
/// be reached. The JSON of an [`OfflineBundle`] as text, and its signature:
/// hex(HMAC-SHA256(station token, bundle)), so that only this station's
/// backend can have made it and nothing in it was changed on the way or on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedBundle {
    pub bundle: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineBundle {
    pub station_id: i64,
    /// Unix seconds; the bundle is not used after `issued_at + max_age_s`.
    pub issued_at: i64,
    pub max_age_s: i64,
    /// Live on-campus numbers: paid ones print offline; unpaid ones need stored value.
    pub jobs: Vec<OfflineJob>,
    /// Cards that must never be accepted.
    pub blocked_cards: Vec<String>,
    /// Stored-value balances of active cards when the bundle was made (P-3
    /// policy b); empty when no university accepts cards offline.
    #[serde(default)]
    pub balances: Vec<CardBalance>,
}

/// One card's balance in the offline snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardBalance {
    pub uid: String,
    pub balance: Yen,
}

/// P-3 policy (b), as the order's university set it: stored value is
/// accepted offline, a card going at most `floor_limit` below zero at one
/// station, and the station's unsynced offline debits staying within
/// `station_total`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineCardPolicy {
    pub floor_limit: Yen,
    pub station_total: Yen,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineJob {
    pub order_id: i64,
    /// [`crate::offline::number_mac`] of the order's print number (never the number).
    pub number_mac: String,
    pub lines: Vec<ReservationLine>,
    pub system_fee: Yen,
    pub amount: Yen,
    pub paid: bool,
    pub print_deadline: i64,
    pub print_deadline_text: String,
    pub pages: u32,
    /// hex SHA-256 of the order's PDF (`GET /offline/documents/{order_id}`).
    pub document_sha256: String,
    #[serde(default)]
    pub print: PrintSettings,
    /// Some when the order's university accepts stored value offline (policy b).
    #[serde(default)]
    pub card_payment: Option<OfflineCardPolicy>,
}

/// `POST /offline/debits`: an unpaid order paid by stored value while the
/// station was offline (P-3 policy b). Sent before the print's own report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineDebit {
    /// Station id + the station's own sequence: applied once.
    pub idempotency_key: String,
    pub order_id: i64,
    pub card_uid: String,
    pub amount: Yen,
    pub at: i64,
}


/// `POST /offline/prints`: what a station printed (or failed to) while offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflinePrint {
    /// Station id + the station's own sequence: applied once.
    pub idempotency_key: String,
    pub order_id: i64,
    pub outcome: PrintOutcome,
    pub ipp_job_id: Option<i32>,
    pub at: i64,
}

/// The answer to an offline print, an offline debit or a terminal payment,
/// each applied once per idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedOnce {
    pub order_status: String,
    /// True when it doubles something done already (the number printed or the
    /// order paid at another station): kept and shown to staff.
    pub duplicate: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, reasons: &[&str]) -> PrinterStatus {
        PrinterStatus {
            reachable: true,
            state: state.into(),
            reasons: reasons.iter().map(|s| s.to_string()).collect(),
            ..PrinterStatus::default()
        }
    }

    #[test]
    fn card_ids_read_in_groups_of_four_and_by_their_tail() {
        assert_eq!(card_id_grouped("012e4cd8a1b2c3d4"), "012E 4CD8 A1B2 C3D4");
        assert_eq!(card_id_grouped("04A1B2C3D4E5F6"), "04A1 B2C3 D4E5 F6");
        assert_eq!(card_id_tail("012E4CD8A1B2C3D4"), "C3D4");
        assert_eq!(card_id_tail("AB"), "AB");
    }

    #[test]
    fn readiness_reads_reasons_with_any_suffix() {
        assert!(status("idle", &["none"]).can_print());
        assert!(status("idle", &["toner-low-report"]).can_print());
        assert!(!status("idle", &["media-empty-report"]).can_print());
        assert!(!status("processing", &["media-empty-warning", "media-needed-warning"]).can_print());
        assert!(!status("stopped", &["none"]).can_print());
        assert!(!PrinterStatus::default().can_print());
    }
}
