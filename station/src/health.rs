//! Health (ST-4): polls the printer and the reader and keeps the latest state
//! for the kiosk (refuse users while the printer cannot print) and the heartbeat.

use crate::printer::Printer;
use crate::reader::CardReader;
use crate::sync::HealthSource;
use shomei_shared::api::PrinterStatus;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Default)]
pub struct Health {
    printer: RwLock<PrinterStatus>,
    reader_present: RwLock<bool>,
    /// Free space where the journal lives (MiB), as last measured.
    disk_free_mb: RwLock<Option<u64>>,
    /// The e-money terminal: None when the station has none.
    terminal_present: RwLock<Option<bool>>,
    /// Operators took the station out of service (maintenance), per the last heartbeat answer.
    maintenance: std::sync::atomic::AtomicBool,
    /// The newest test page operators asked for.
    test_page_wanted: std::sync::atomic::AtomicI64,
    /// The backend said this station is revoked: out of service for good.
    revoked: std::sync::atomic::AtomicBool,
    /// The university the station serves (ja, en), as the last heartbeat answer named it.
    university: RwLock<(String, String)>,
}

impl Health {
    pub fn set_printer(&self, s: PrinterStatus) {
        *self.printer.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    pub fn set_reader_present(&self, present: bool) {
        *self.reader_present.write().unwrap_or_else(|p| p.into_inner()) = present;
    }

    /// Measures the free space where the journal lives.
    pub fn measure_disk(&self, state_dir: &std::path::Path) -> Option<u64> {
        let free = crate::sync::disk_free_mb(state_dir);
        let mut cur = self.disk_free_mb.write().unwrap_or_else(|p| p.into_inner());
        if cur.is_some() && *cur != free && free.is_some_and(|f| f < 10) {
            tracing::warn!(free_mb = ?free, "little storage left for the journal");
        }
        *cur = free;
        free
    }

    pub fn disk_free_mb(&self) -> Option<u64> {
        *self.disk_free_mb.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_terminal_present(&self, present: Option<bool>) {
        let mut cur = self.terminal_present.write().unwrap_or_else(|p| p.into_inner());
        if *cur != present {
            tracing::info!(?present, "payment terminal");
        }
        *cur = present;
    }

    pub fn in_maintenance(&self) -> bool {
        self.maintenance.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn test_page_wanted(&self) -> i64 {
        self.test_page_wanted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The university the station serves (ja, en); empty before the first answer.
    pub fn university(&self) -> (String, String) {
        self.university.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl HealthSource for Health {
    fn printer(&self) -> PrinterStatus {
        self.printer.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn reader_present(&self) -> bool {
        *self.reader_present.read().unwrap_or_else(|p| p.into_inner())
    }
    fn terminal_present(&self) -> Option<bool> {
        *self.terminal_present.read().unwrap_or_else(|p| p.into_inner())
    }
    fn apply_control(&self, r: &shomei_shared::api::HeartbeatResponse) {
        if self.maintenance.swap(r.out_of_service, std::sync::atomic::Ordering::SeqCst) != r.out_of_service {
            tracing::warn!(out_of_service = r.out_of_service, "operators changed this station's service state");
        }
        if let Some(n) = r.test_page {
            self.test_page_wanted.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
        }
        if !r.university_ja.is_empty() {
            let named = (r.university_ja.clone(), r.university_en.clone());
            let mut cur = self.university.write().unwrap_or_else(|p| p.into_inner());
            if *cur != named {
                tracing::info!(university = %named.1, "serving");
                *cur = named;
            }
        }
    }
    fn set_revoked(&self) {
        if !self.revoked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tracing::error!("the backend revoked this station: out of service, no users taken");
        }
    }
}

/// Polls both devices every `interval`, logging changes.
pub async fn run<P: Printer, R: CardReader>(
    health: Arc<Health>,
    printer: Arc<P>,
    reader: Arc<R>,
    terminal: Option<Arc<crate::terminal::SerialTerminal>>,
    state_dir: std::path::PathBuf,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let status = printer.status().await;
        let before = health.printer();
        if before != status {
            tracing::info!(state = %status.state, reasons = ?status.reasons, reachable = status.reachable, "printer state");
        }
        health.set_printer(status);
        if let Some(t) = &terminal {
            health.set_terminal_present(Some(t.present().await));
        }
        health.measure_disk(&state_dir);
        let r = reader.clone();
        let present = tokio::task::spawn_blocking(move || r.reader_present()).await.unwrap_or(false);
        let mut cur = health.reader_present.write().unwrap_or_else(|p| p.into_inner());
        if *cur != present {
            tracing::info!(present, "card reader");
        }
        *cur = present;
    }
}
