//! The kiosk (ST-1, ST-2, ST-3): the flow of one user at the touch screen,
//! driven by events (number typed, card read, job finished), and the small
//! loopback web server the kiosk browser shows.
//!
//! enter number -> check digit -> printer ready? -> reserve -> tap card ->
//! charge -> fetch PDF -> Print-Job -> follow job -> done. Every step is
//! journalled before the next starts.

use crate::config::Config;
use crate::health::Health;
use crate::messages::{printer_problem, Notice, Says};
use crate::journal::Journal;
use crate::printer::{follow_job, JobState, Printer};
use crate::reader::{CardReader, ReaderError};
use crate::sync::{flush_outbox, Backend, HealthSource, SyncError};
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shomei_shared::api::{OfflineCardPolicy, OfflineDebit, OfflinePrint, PrintOutcome, PrintReport, Reservation, ReservationLine, TerminalPayment};
use shomei_shared::{ErrorCode, PrintNumber, Yen};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which screen the kiosk shows (the page's `data-screen`, in snake_case).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreenKind {
    /// Waiting for a print number.
    #[default]
    Idle,
    /// The number is being checked with the backend (or the offline copy).
    Checking,
    /// The amount due: tap an IC card or pay at the e-money terminal.
    Card,
    /// A payment is being taken.
    Charging,
    Printing,
    /// Printed: take the certificates (and the card).
    Done,
    Error,
    OutOfService,
}

impl ScreenKind {
    /// Screens a cancel, a timeout or a new number must not cut short.
    pub fn busy(self) -> bool {
        matches!(self, ScreenKind::Checking | ScreenKind::Charging | ScreenKind::Printing)
    }
}

/// What the kiosk page shows; the page renders whatever this says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Screen {
    pub screen: ScreenKind,
    pub title_ja: String,
    pub title_en: String,
    pub message_ja: String,
    pub message_en: String,
    /// A second line, e.g. "tap again" on the card screen.
    pub notice_ja: String,
    pub notice_en: String,
    pub number: String,
    pub lines: Vec<ReservationLine>,
    pub amount: String,
    /// The system usage fee, shown as its own row so the lines add up to the amount.
    pub system_fee: String,
    pub deadline: String,
    pub balance: String,
    /// The university this station serves (every screen's heading).
    pub university_ja: String,
    pub university_en: String,
    /// Contact details, on every error screen.
    pub contact_ja: String,
    pub contact_en: String,
    pub printer_ready: bool,
    pub idle_timeout_s: u64,
    /// The card screen offers the e-money terminal too (P-5).
    pub terminal: bool,
    /// An unlinked card was tapped: its ID (groups of 4) and the one-time
    /// code that links it in the portal, shown large on the card screen.
    pub card_id: String,
    pub link_code: String,
    /// The done screen after a card paid: the last four of its ID (never all of it).
    pub card_tail: String,
}

fn screen(kind: ScreenKind, says: Says<'_>) -> Screen {
    let (title, message) = says.text();
    Screen {
        screen: kind,
        title_ja: title.ja,
        title_en: title.en,
        message_ja: message.ja,
        message_en: message.en,
        ..Screen::default()
    }
}

impl Screen {
    fn with_notice(mut self, n: Notice) -> Screen {
        match &n {
            Notice::LinkCard { card_id, code, .. } => {
                self.card_id = card_id.clone();
                self.link_code = code.clone();
            }
            Notice::CardBalanceLeft { tail, .. } => self.card_tail = tail.clone(),
            _ => {}
        }
        let t = n.text();
        self.notice_ja = t.ja;
        self.notice_en = t.en;
        self
    }
}

/// The least time the screen with a card's link code stays (seconds).
pub const LINK_SCREEN_S: u64 = 300;

fn idle_screen() -> Screen {
    screen(ScreenKind::Idle, Says::EnterNumber)
}

fn printing_screen(r: &Reservation) -> Screen {
    let mut s = screen(ScreenKind::Printing, Says::Printing);
    s.number = r.print_number.grouped();
    s.lines = r.lines.clone();
    s
}

/// Screens during which money or paper is moving: nothing may interrupt them.
fn busy(screen: ScreenKind) -> bool {
    screen.busy()
}

struct Inner<P, R> {
    cfg: Arc<Config>,
    backend: Backend,
    journal: Journal,
    printer: Arc<P>,
    reader: Arc<R>,
    health: Arc<Health>,
    screen: Mutex<Screen>,
    /// Bumped whenever a user's session ends; stale tasks see it and stop.
    generation: AtomicU64,
    last_touch: Mutex<Instant>,
    cancel_read: Mutex<Arc<AtomicBool>>,
    started: Instant,
    offline: Arc<crate::offline::Offline>,
    terminal: Option<Arc<crate::terminal::SerialTerminal>>,
    /// The user chose the e-money terminal on the card screen.
    pay_by_terminal: AtomicBool,
    /// When numbers the offline copy did not know were typed (the backend's
    /// guess throttle cannot be asked while offline).
    offline_wrong: Mutex<Vec<Instant>>,
}

/// Offline, numbers the copy does not know: this many a minute, then wait.
const OFFLINE_WRONG_PER_MINUTE: usize = 5;

pub struct Kiosk<P, R> {
    inner: Arc<Inner<P, R>>,
}

impl<P, R> Clone for Kiosk<P, R> {
    fn clone(&self) -> Self {
        Kiosk { inner: self.inner.clone() }
    }
}

impl<P: Printer, R: CardReader> Kiosk<P, R> {
    pub fn new(
        cfg: Arc<Config>,
        backend: Backend,
        journal: Journal,
        printer: Arc<P>,
        reader: Arc<R>,
        health: Arc<Health>,
        offline: Arc<crate::offline::Offline>,
        terminal: Option<Arc<crate::terminal::SerialTerminal>>,
    ) -> Self {
        Kiosk {
            inner: Arc::new(Inner {
                cfg,
                backend,
                journal,
                printer,
                reader,
                health,
                screen: Mutex::new(idle_screen()),
                generation: AtomicU64::new(0),
                last_touch: Mutex::new(Instant::now()),
                cancel_read: Mutex::new(Arc::new(AtomicBool::new(false))),
                started: Instant::now(),
                offline,
                terminal,
                pay_by_terminal: AtomicBool::new(false),
                offline_wrong: Mutex::new(Vec::new()),
            }),
        }
    }

    fn terminal_usable(&self) -> bool {
        self.inner.terminal.is_some() && crate::sync::HealthSource::terminal_present(self.inner.health.as_ref()) != Some(false)
    }

    /// The user chose to pay at the e-money terminal: the card wait stops and
    /// the job's own task charges at the terminal instead.
    pub fn pay_with_terminal(&self) -> Screen {
        let cur = self.inner.screen.lock().unwrap_or_else(|p| p.into_inner());
        if cur.screen == ScreenKind::Card && cur.terminal && self.terminal_usable() {
            self.inner.pay_by_terminal.store(true, Ordering::SeqCst);
            self.inner.cancel_read.lock().unwrap_or_else(|p| p.into_inner()).store(true, Ordering::SeqCst);
            *self.inner.last_touch.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
        drop(cur);
        self.current()
    }

    /// The current screen, with the printer's readiness and contact details filled in.
    pub fn current(&self) -> Screen {
        let mut s = self.inner.screen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let printer = self.inner.health.printer();
        s.printer_ready = printer.can_print();
        s.idle_timeout_s = self.idle_timeout_s(&s);
        if self.inner.health.is_revoked() && !busy(s.screen) {
            s = screen(ScreenKind::OutOfService, Says::Revoked);
            s.idle_timeout_s = self.inner.cfg.idle_timeout_s;
            s.printer_ready = false;
        } else if self.inner.health.in_maintenance() && s.screen == ScreenKind::Idle {
            s = self.out_of_service(&crate::messages::maintenance());
            s.printer_ready = false;
        } else if s.screen == ScreenKind::Idle && !s.printer_ready {
            s = self.out_of_service(&printer_problem(&printer));
            s.printer_ready = false;
        } else if s.screen == ScreenKind::Idle && self.storage_full() {
            // every step is journalled before the next: with no room to write, no user is taken
            s = self.out_of_service(&crate::messages::storage_full());
            s.printer_ready = false;
        } else if s.screen == ScreenKind::Idle && !crate::sync::HealthSource::reader_present(self.inner.health.as_ref()) {
            // no card reader: no money can be taken here
            s = self.out_of_service(&crate::messages::reader_missing());
            s.printer_ready = false;
        }
        s.terminal = s.terminal && s.screen == ScreenKind::Card && self.terminal_usable();
        (s.university_ja, s.university_en) = self.inner.health.university();
        if matches!(s.screen, ScreenKind::Error | ScreenKind::OutOfService) {
            s.contact_ja = self.inner.cfg.contact_ja.clone();
            s.contact_en = self.inner.cfg.contact_en.clone();
        }
        s
    }

    fn storage_full(&self) -> bool {
        self.inner.health.disk_free_mb().is_some_and(|f| f < self.inner.cfg.min_free_disk_mb)
    }

    fn out_of_service(&self, problem: &crate::messages::Text) -> Screen {
        let mut s = screen(ScreenKind::OutOfService, Says::OutOfService(problem));
        s.idle_timeout_s = self.inner.cfg.idle_timeout_s;
        s
    }

    fn set(&self, generation: u64, s: Screen) -> bool {
        let mut cur = self.inner.screen.lock().unwrap_or_else(|p| p.into_inner());
        if self.inner.generation.load(Ordering::SeqCst) != generation {
            return false;
        }
        *cur = s;
        *self.inner.last_touch.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        true
    }

    /// Starts a new session (next generation, any card wait cancelled, `next`
    /// shown) if `allowed` says the current screen may be left. The check and
    /// the switch happen under one lock, so a charge that has just begun
    /// ("charging") can never be overtaken by a cancel or a new number.
    fn begin_session(&self, allowed: impl Fn(ScreenKind) -> bool, next: Screen) -> Option<u64> {
        let mut cur = self.inner.screen.lock().unwrap_or_else(|p| p.into_inner());
        if !allowed(cur.screen) {
            return None;
        }
        let g = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.pay_by_terminal.store(false, Ordering::SeqCst);
        self.inner.cancel_read.lock().unwrap_or_else(|p| p.into_inner()).store(true, Ordering::SeqCst);
        *cur = next;
        *self.inner.last_touch.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Some(g)
    }

    /// Ends the current user's session (back to the start) unless money or paper is moving.
    pub fn reset(&self) -> Screen {
        self.begin_session(|s| !busy(s), idle_screen());
        self.current()
    }

    /// How long `s` stays without a touch: the configured idle timeout, and
    /// at least LINK_SCREEN_S while it shows a card's link code (the user
    /// logs in to the portal on a phone and types it).
    fn idle_timeout_s(&self, s: &Screen) -> u64 {
        if s.link_code.is_empty() {
            self.inner.cfg.idle_timeout_s
        } else {
            self.inner.cfg.idle_timeout_s.max(LINK_SCREEN_S)
        }
    }

    /// Resets a screen nobody touched for the idle timeout (ST-1).
    pub fn check_idle(&self) {
        let (s, idle) = {
            let cur = self.inner.screen.lock().unwrap_or_else(|p| p.into_inner());
            (cur.screen, Duration::from_secs(self.idle_timeout_s(&cur)))
        };
        let last = *self.inner.last_touch.lock().unwrap_or_else(|p| p.into_inner());
        if s != ScreenKind::Idle && !busy(s) && last.elapsed() >= idle {
            tracing::info!(screen = ?s, "idle timeout: back to the start");
            self.reset();
        }
    }

    /// A user typed a print number and pressed OK.
    pub async fn submit_number(&self, input: &str) -> Screen {
        let checking = screen(ScreenKind::Checking, Says::Checking);
        // one number at a time: a second OK while this one is checked is ignored
        let Some(g) = self.begin_session(|s| !busy(s) && s != ScreenKind::Card, checking) else {
            return self.current();
        };
        if self.inner.health.is_revoked() || self.inner.health.in_maintenance() {
            self.set(g, idle_screen()); // shown as out of service
            return self.current();
        }
        let number = match PrintNumber::parse(input) {
            Ok(n) => n,
            Err(e) => {
                let mut s = screen(ScreenKind::Error, Says::NumberInvalid(&e));
                s.number = input.chars().filter(char::is_ascii_digit).collect();
                self.set(g, s);
                return self.current();
            }
        };
        // Refuse before anything is reserved or charged when the journal has no room.
        if self.inner.health.measure_disk(&self.inner.cfg.state_dir).is_some_and(|f| f < self.inner.cfg.min_free_disk_mb) {
            tracing::warn!("refusing a user: the journal's storage is full");
            self.set(g, idle_screen()); // shown as out of service while storage stays full
            return self.current();
        }
        // Refuse before anything is reserved or charged when the printer cannot print.
        let status = self.inner.printer.status().await;
        self.inner.health.set_printer(status.clone());
        if !crate::sync::HealthSource::reader_present(self.inner.health.as_ref()) {
            tracing::warn!("refusing a user: no card reader");
            self.set(g, idle_screen()); // shown as out of service while the reader is missing
            return self.current();
        }
        if !status.can_print() {
            tracing::warn!(reasons = ?status.reasons, "refusing a user: printer not ready");
            // the start screen shows "out of service" for as long as the printer stays so
            self.set(g, idle_screen());
            return self.current();
        }
        let reservation = match self.inner.backend.reserve(&number).await {
            Ok(r) => r,
            Err(SyncError::Offline(e)) => {
                tracing::warn!(error = %e, "reserve: backend unreachable; trying the offline copy");
                return self.offline_number(g, &number).await;
            }
            Err(SyncError::Refused(e)) => {
                tracing::info!(code = ?e.code, "reserve refused");
                if matches!(e.code, ErrorCode::StationRevoked | ErrorCode::Unauthorized) {
                    crate::sync::HealthSource::set_revoked(self.inner.health.as_ref());
                }
                let mut s = screen(ScreenKind::Error, Says::NumberRefused(e.code));
                s.number = number.grouped();
                self.set(g, s);
                return self.current();
            }
        };
        let charge_key = format!("charge-{}", hex::encode(rand::random::<[u8; 16]>()));
        let job_id = match self
            .inner
            .journal
            .start_job(reservation.reservation_id, number.as_str(), reservation.amount.0, reservation.paid, &charge_key)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "journal write failed; refusing the user");
                // nothing was charged: give the number back at once for another station
                if let Err(e) = self.inner.backend.release(reservation.reservation_id).await {
                    tracing::info!(error = %e, "reservation not released; it lapses by itself");
                }
                self.set(g, screen(ScreenKind::Error, Says::StationFault));
                return self.current();
            }
        };
        let job = JobCtx { generation: g, job_id, reservation, charge_key, offline: None, card_policy: None, reader_was_empty: false };
        if job.reservation.paid {
            // paid online or at an earlier failed attempt: straight to printing
            self.set(g, printing_screen(&job.reservation));
            let k = self.clone();
            tokio::spawn(async move { k.print(job, None, None).await });
        } else {
            let job = JobCtx { reader_was_empty: self.reader_empty_now().await, ..job };
            self.set(g, self.card_screen(&job.reservation));
            let k = self.clone();
            tokio::spawn(async move { k.take_card_payment(job).await });
        }
        self.current()
    }

    /// The backend cannot be reached (P-3): a number already paid prints from
    /// the station's offline copy; stored-value payment pauses.
    async fn offline_number(&self, g: u64, number: &PrintNumber) -> Screen {
        use crate::offline::Lookup;
        let cannot_connect = |k: &Self| {
            k.set(g, screen(ScreenKind::Error, Says::CannotConnect));
            k.current()
        };
        // offline, guessing is slowed here: a few unknown numbers a minute
        let wait_s = {
            let mut wrong = self.inner.offline_wrong.lock().unwrap_or_else(|p| p.into_inner());
            wrong.retain(|at| at.elapsed() < Duration::from_secs(60));
            (wrong.len() >= OFFLINE_WRONG_PER_MINUTE).then(|| 60u64.saturating_sub(wrong[0].elapsed().as_secs()).max(1))
        };
        if let Some(seconds) = wait_s {
            tracing::warn!(seconds, "offline: too many unknown numbers; the kiosk waits");
            self.set(g, screen(ScreenKind::Error, Says::OfflineTooManyWrong { seconds }));
            return self.current();
        }
        let found = match crate::offline::lookup(&self.inner.journal, &self.inner.offline, number.as_str()).await {
            Ok(Lookup::Found(job)) => job,
            Ok(Lookup::Unknown) => {
                self.inner.offline_wrong.lock().unwrap_or_else(|p| p.into_inner()).push(Instant::now());
                // the copy names every paid number: this one is unpaid (handed out only
                // under policy b), printed, or mistyped; IC card payment waits for the backend
                let mut s = screen(ScreenKind::Error, Says::OfflinePaymentPaused);
                s.number = number.grouped();
                self.set(g, s);
                return self.current();
            }
            Ok(other) => {
                tracing::info!(?other, "number not printable offline");
                return cannot_connect(self);
            }
            Err(e) => {
                Self::journal_err(e);
                return cannot_connect(self);
            }
        };
        let refuse = |k: &Self, code: ErrorCode| {
            let mut s = screen(ScreenKind::Error, Says::NumberRefused(code));
            s.number = number.grouped();
            k.set(g, s);
            k.current()
        };
        if crate::journal::now() >= found.print_deadline {
            return refuse(self, ErrorCode::PrintNumberExpired);
        }
        if self.inner.journal.printed_here(number.as_str()).await.unwrap_or(false) {
            return refuse(self, ErrorCode::PrintNumberUsed);
        }
        let paused = |k: &Self, says: Says<'_>| {
            let mut s = screen(ScreenKind::Error, says);
            s.number = number.grouped();
            k.set(g, s);
            k.current()
        };
        // unpaid: policy (a) pauses card payment; policy (b) takes it within limits
        let card_policy = if found.paid { None } else { found.card_payment.clone() };
        if !found.paid {
            let Some(policy) = &card_policy else { return paused(self, Says::OfflinePaymentPaused) };
            match crate::offline::may_take(&self.inner.journal, self.inner.offline.bundle_key().as_ref(), found.amount, policy).await {
                Ok(Ok(())) => {}
                Ok(Err(crate::offline::Refusal::StationTotal)) => return paused(self, Says::OfflineTotalReached),
                Ok(Err(why)) => {
                    tracing::info!(?why, "offline card payment not possible");
                    return paused(self, Says::OfflinePaymentPaused);
                }
                Err(e) => {
                    Self::journal_err(e);
                    return paused(self, Says::StationFault);
                }
            }
        }
        let reservation = Reservation {
            reservation_id: 0,
            print_number: number.clone(),
            lines: found.lines.clone(),
            system_fee: found.system_fee,
            amount: found.amount,
            paid: found.paid,
            payment_method: "offline".into(),
            print_deadline: found.print_deadline,
            print_deadline_text: found.print_deadline_text.clone(),
            expires_at: 0,
            pages: found.pages,
            print: found.print.clone(),
        };
        let charge_key = format!("offline-{}", hex::encode(rand::random::<[u8; 16]>()));
        let job_id = match self.inner.journal.start_job(0, number.as_str(), found.amount.0, found.paid, &charge_key).await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "journal write failed; refusing the user");
                self.set(g, screen(ScreenKind::Error, Says::StationFault));
                return self.current();
            }
        };
        if let Err(e) = self.inner.journal.set_offline(job_id, found.order_id).await {
            Self::journal_err(e);
        }
        tracing::info!(job_id, order_id = found.order_id, "printing from the offline copy");
        let job = JobCtx {
            generation: g,
            job_id,
            reservation,
            charge_key,
            offline: Some((found.order_id, found.document_sha256.clone())),
            card_policy,
            reader_was_empty: false,
        };
        let k = self.clone();
        if job.reservation.paid {
            self.set(g, printing_screen(&job.reservation));
            tokio::spawn(async move { k.print(job, None, None).await });
        } else {
            let job = JobCtx { reader_was_empty: self.reader_empty_now().await, ..job };
            self.set(g, self.card_screen(&job.reservation));
            tokio::spawn(async move { k.take_card_payment(job).await });
        }
        self.current()
    }

    fn card_screen(&self, r: &Reservation) -> Screen {
        let mut s = screen(ScreenKind::Card, Says::TapCard { amount: r.amount });
        // the terminal's payment is recorded against the backend's reservation: online only
        s.terminal = r.reservation_id != 0;
        s.number = r.print_number.grouped();
        s.lines = r.lines.clone();
        s.amount = r.amount.to_string();
        s.system_fee = r.system_fee.to_string();
        s.deadline = r.print_deadline_text.clone();
        s
    }

    fn journal_err(e: sqlx::Error) {
        tracing::error!(error = %e, "journal write failed");
    }

    /// Whether no card lies on the reader at this moment (read before the
    /// card screen opens).
    async fn reader_empty_now(&self) -> bool {
        let reader = self.inner.reader.clone();
        tokio::task::spawn_blocking(move || reader.wait_removed(Duration::ZERO)).await.unwrap_or(false)
    }

    /// A card lying on the reader from before (the last user's, forgotten)
    /// pays for nothing: only a card put down after the card screen opened
    /// counts. Returns false when the user left meanwhile.
    async fn wait_for_empty_reader(&self, job: &JobCtx) -> bool {
        if job.reader_was_empty {
            return true;
        }
        let mut asked = false;
        loop {
            if self.inner.generation.load(Ordering::SeqCst) != job.generation {
                self.abandon(job, "cancelled").await;
                return false;
            }
            let wait = Duration::from_millis(if asked { 1000 } else { 150 });
            let reader = self.inner.reader.clone();
            if tokio::task::spawn_blocking(move || reader.wait_removed(wait)).await.unwrap_or(true) {
                return true;
            }
            let reader = self.inner.reader.clone();
            if !tokio::task::spawn_blocking(move || reader.reader_present()).await.unwrap_or(false) {
                return true; // no reader at all: the read itself says so
            }
            if !asked {
                tracing::info!(job_id = job.job_id, "a card was already on the reader: asking for a fresh tap");
                self.set(job.generation, self.card_screen(&job.reservation).with_notice(Notice::CardLyingOnReader));
                asked = true;
            }
        }
    }

    async fn take_card_payment(&self, job: JobCtx) {
        let g = job.generation;
        if !self.wait_for_empty_reader(&job).await {
            return;
        }
        loop {
            let cancel = Arc::new(AtomicBool::new(false));
            *self.inner.cancel_read.lock().unwrap_or_else(|p| p.into_inner()) = cancel.clone();
            // the terminal chosen before this read began (the press found no read to cancel): no read
            if self.inner.pay_by_terminal.load(Ordering::SeqCst) {
                cancel.store(true, Ordering::SeqCst);
            }
            if self.inner.generation.load(Ordering::SeqCst) != g {
                self.abandon(&job, "cancelled").await;
                return;
            }
            let reader = self.inner.reader.clone();
            let timeout = Duration::from_secs(self.inner.cfg.idle_timeout_s);
            let read = tokio::task::spawn_blocking(move || reader.read_uid(timeout, &cancel))
                .await
                .unwrap_or_else(|e| Err(ReaderError::Other(e.to_string())));
            if self.inner.generation.load(Ordering::SeqCst) != g {
                // cancelled or timed out meanwhile: whatever was read, nothing is charged
                self.abandon(&job, "cancelled").await;
                return;
            }
            if self.inner.pay_by_terminal.swap(false, Ordering::SeqCst) {
                // the user chose the e-money terminal: a card read meanwhile is not charged
                match self.charge_terminal(&job).await {
                    ChargeResult::Paid(balance) => {
                        self.print(job, Some(balance), None).await;
                        return;
                    }
                    ChargeResult::Retry(notice) => {
                        self.set(g, self.card_screen(&job.reservation).with_notice(notice));
                        continue;
                    }
                    ChargeResult::Stop => return,
                }
            }
            let notice = match read {
                Ok(uid) => {
                    tracing::info!(job_id = job.job_id, "card read");
                    if let Err(e) = self.inner.journal.set_card(job.job_id, &uid).await {
                        Self::journal_err(e);
                    }
                    match self.charge(&job, &uid).await {
                        ChargeResult::Paid(balance) => {
                            self.print(job, Some(balance), Some(&uid)).await;
                            return;
                        }
                        ChargeResult::Retry(notice) => notice,
                        ChargeResult::Stop => return,
                    }
                }
                Err(ReaderError::Removed) => Notice::CardRemovedTooSoon,
                Err(ReaderError::Status(sw)) => {
                    tracing::info!(sw = format!("{sw:04X}"), "card answered an error");
                    Notice::CardUnreadable
                }
                Err(ReaderError::Timeout) => {
                    self.abandon(&job, "no card tapped").await;
                    self.reset();
                    return;
                }
                Err(ReaderError::Cancelled) => {
                    self.abandon(&job, "cancelled").await;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "card reader failed");
                    self.abandon(&job, &e.to_string()).await;
                    self.set(g, screen(ScreenKind::Error, Says::ReaderFault));
                    return;
                }
            };
            self.set(g, self.card_screen(&job.reservation).with_notice(notice));
            // the same card lying on the reader is not read again until it is lifted
            let reader = self.inner.reader.clone();
            let _ = tokio::task::spawn_blocking(move || reader.wait_removed(Duration::from_secs(30))).await;
        }
    }

    /// The user left before paying: journal it and give the number back.
    async fn abandon(&self, job: &JobCtx, why: &str) {
        let _ = self.inner.journal.step(job.job_id, "abandoned", why).await.map_err(Self::journal_err);
        if let Err(e) = self.inner.backend.release(job.reservation.reservation_id).await {
            tracing::info!(error = %e, "reservation not released; it lapses by itself");
        }
    }

    /// Shows the "charging" screen (`says`) unless the user cancelled in the
    /// same instant, and checks the printer once more: the paper may have run
    /// out while the user looked for their card, and money is never taken
    /// then. False: the job was abandoned, take no money.
    async fn ready_to_charge(&self, job: &JobCtx, says: Says<'_>) -> bool {
        let g = job.generation;
        let mut s = screen(ScreenKind::Charging, says);
        s.amount = job.reservation.amount.to_string();
        if !self.set(g, s) {
            self.abandon(job, "cancelled").await;
            return false;
        }
        let status = self.inner.printer.status().await;
        self.inner.health.set_printer(status.clone());
        if !status.can_print() {
            tracing::warn!(reasons = ?status.reasons, "printer stopped before payment: not charging");
            self.abandon(job, "printer not ready").await;
            self.set(g, idle_screen()); // shows "out of service" while the printer stays so
            return false;
        }
        true
    }

    async fn charge(&self, job: &JobCtx, uid: &str) -> ChargeResult {
        let g = job.generation;
        if !self.ready_to_charge(job, Says::Charging).await {
            return ChargeResult::Stop;
        }
        if let (Some((order_id, _)), Some(policy)) = (&job.offline, &job.card_policy) {
            return self.charge_offline(job, uid, *order_id, policy).await;
        }
        if let Err(e) = self.inner.journal.step(job.job_id, "charging", &format!("card {uid} key {}", job.charge_key)).await {
            Self::journal_err(e);
            self.abandon(job, "journal not writable").await;
            self.set(g, screen(ScreenKind::Error, Says::StationFault));
            return ChargeResult::Stop;
        }
        let mut last_err = String::new();
        for attempt in 0..3u32 {
            match self.inner.backend.charge(job.reservation.reservation_id, uid, &job.charge_key).await {
                Ok(r) => {
                    crate::failpoint::crash("charge-answered");
                    if let Err(e) = self.inner.journal.step(job.job_id, "charged", &format!("{} balance {}", r.charged, r.balance_after)).await {
                        // The money is on the backend, but a journal that cannot record it
                        // cannot record a print either: print nothing here, settle the
                        // job as failed (paid, printable at any station), tell the user.
                        Self::journal_err(e);
                        tracing::error!(job_id = job.job_id, "paid, but the journal cannot record it: not printing here");
                        self.settle_unprinted(job, "paid, but the journal could not record the payment").await;
                        self.set(g, screen(ScreenKind::Error, Says::FaultAfterPayment { deadline: &job.reservation.print_deadline_text }));
                        return ChargeResult::Stop;
                    }
                    return ChargeResult::Paid(r.balance_after);
                }
                Err(SyncError::Refused(e)) => {
                    let _ = self.inner.journal.step(job.job_id, "declined", &format!("{:?}", e.code)).await.map_err(Self::journal_err);
                    return match e.code {
                        ErrorCode::InsufficientBalance => {
                            let missing = e.missing.unwrap_or(Yen::ZERO);
                            let balance = e.balance.unwrap_or(Yen::ZERO);
                            ChargeResult::Retry(Notice::LowBalance { balance, missing })
                        }
                        // a card no account holds: how to link it, and the number stays for another card
                        ErrorCode::CardUnknown => ChargeResult::Retry(self.link_notice(uid).await),
                        ErrorCode::CardBlocked => ChargeResult::Retry(Notice::CardRefused(e.code)),
                        code => {
                            self.set(g, screen(ScreenKind::Error, Says::PaymentRefused(code)));
                            ChargeResult::Stop
                        }
                    };
                }
                Err(SyncError::Offline(e)) => {
                    last_err = e;
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
            }
        }
        tracing::error!(error = %last_err, "charge outcome unknown: backend unreachable");
        let _ = self.inner.journal.step(job.job_id, "charge_unknown", &last_err).await.map_err(Self::journal_err);
        self.set(g, screen(ScreenKind::Error, Says::ConnectionLostDuringPayment));
        ChargeResult::Stop
    }

    /// A card no account holds was tapped: the backend's one-time code that
    /// links it in the portal, with the card's ID, for the card screen. The
    /// user stays there (the number stays reserved): another card, or Cancel.
    /// Neither the card's ID nor the code is logged.
    async fn link_notice(&self, uid: &str) -> Notice {
        match self.inner.backend.card_link_code(uid).await {
            Ok(c) => {
                tracing::info!("a card no account holds: link code shown");
                let grouped: Vec<String> = c.code.as_bytes().chunks(3).map(|g| String::from_utf8_lossy(g).into_owned()).collect();
                Notice::LinkCard {
                    card_id: shomei_shared::api::card_id_grouped(uid),
                    code: grouped.join(" "),
                    minutes: (c.valid_s.max(60) + 59) / 60,
                }
            }
            Err(SyncError::Offline(e)) => {
                tracing::warn!(error = %e, "link code: backend unreachable");
                Notice::LinkNeedsNetwork
            }
            Err(SyncError::Refused(e)) => {
                tracing::info!(code = ?e.code, "link code refused");
                Notice::CardRefused(if e.code == ErrorCode::CardBlocked { ErrorCode::CardBlocked } else { ErrorCode::CardUnknown })
            }
        }
    }

    /// P-5: the transit e-money terminal takes the payment. The terminal
    /// transaction is journalled before it starts; an approval is journalled
    /// with its outbox entry for the backend in one transaction, then sent at
    /// once; a lost answer is settled by asking the terminal, never by
    /// charging again.
    async fn charge_terminal(&self, job: &JobCtx) -> ChargeResult {
        use crate::terminal::{ChargeOutcome, TerminalError};
        let g = job.generation;
        let Some(terminal) = self.inner.terminal.clone() else { return ChargeResult::Retry(Notice::TerminalUnavailable) };
        let amount = job.reservation.amount;
        if !self.ready_to_charge(job, Says::TerminalCharging { amount }).await {
            return ChargeResult::Stop;
        }
        let txn = crate::terminal::txn_for(&job.charge_key);
        if let Err(e) = self.inner.journal.step(job.job_id, "charging", &format!("terminal txn {txn}")).await {
            Self::journal_err(e);
            self.abandon(job, "journal not writable").await;
            self.set(g, screen(ScreenKind::Error, Says::StationFault));
            return ChargeResult::Stop;
        }
        let Ok(yen) = u32::try_from(amount.0) else { return ChargeResult::Retry(Notice::TerminalUnavailable) };
        match terminal.charge(&txn, yen).await {
            Ok(ChargeOutcome::Approved { balance_after, brand }) => {
                crate::failpoint::crash("terminal-answered");
                let key = format!("{}-terminal", job.charge_key);
                let p = TerminalPayment { idempotency_key: key.clone(), transaction_id: txn.clone(), amount, brand: brand.clone(), at: crate::journal::now() };
                let body = serde_json::to_string(&p).unwrap_or_default();
                let detail = format!("terminal txn {txn} {brand} {amount} balance {balance_after}");
                if let Err(e) = self.inner.journal.record_terminal_payment(job.job_id, job.reservation.reservation_id, &key, &body, &detail).await {
                    // the terminal took the money but the journal cannot say so: stop here, loudly
                    Self::journal_err(e);
                    self.set(g, screen(ScreenKind::Error, Says::TerminalUnknown));
                    return ChargeResult::Stop;
                }
                tracing::info!(job_id = job.job_id, %brand, "paid at the e-money terminal");
                // the backend learns of it before the document is asked for
                if let Err(e) = flush_outbox(&self.inner.backend, &self.inner.journal).await {
                    Self::journal_err(e);
                }
                ChargeResult::Paid(Yen(i64::from(balance_after)))
            }
            Ok(ChargeOutcome::Declined(d)) => {
                let _ = self.inner.journal.step(job.job_id, "declined", &format!("terminal txn {txn} {d:?}")).await.map_err(Self::journal_err);
                ChargeResult::Retry(Notice::TerminalDeclined(d))
            }
            Err(TerminalError::NotConnected(e)) => {
                tracing::warn!(error = %e, "e-money terminal not connected");
                self.inner.health.set_terminal_present(Some(false));
                let _ = self.inner.journal.step(job.job_id, "declined", &format!("terminal txn {txn} not connected")).await.map_err(Self::journal_err);
                ChargeResult::Retry(Notice::TerminalUnavailable)
            }
            Ok(ChargeOutcome::Unknown) | Err(_) => {
                tracing::error!(job_id = job.job_id, txn, "terminal charge outcome unknown");
                let _ = self.inner.journal.step(job.job_id, "charge_unknown", &format!("terminal txn {txn}")).await.map_err(Self::journal_err);
                self.set(g, screen(ScreenKind::Error, Says::TerminalUnknown));
                // keep asking the terminal in the background until it can say
                let (journal, backend, job_id) = (self.inner.journal.clone(), self.inner.backend.clone(), job.job_id);
                tokio::spawn(async move {
                    for _ in 0..120 {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        let Ok(j) = journal.job(job_id).await else { continue };
                        match crate::recovery::settle_terminal(&journal, &backend, Some(terminal.as_ref()), &j, &txn).await {
                            Ok(true) => {
                                let _ = flush_outbox(&backend, &journal).await;
                                return;
                            }
                            Ok(false) => {}
                            Err(e) => Self::journal_err(e),
                        }
                    }
                });
                ChargeResult::Stop
            }
        }
    }

    /// P-3 (b): stored value taken offline against the signed snapshot, within
    /// the floor limit and the station total; the debit, the job's step and
    /// the outbox entry are one transaction, synced when the backend is back.
    async fn charge_offline(&self, job: &JobCtx, uid: &str, order_id: i64, policy: &OfflineCardPolicy) -> ChargeResult {
        use crate::offline::Refusal;
        let g = job.generation;
        let (journal, key) = (&self.inner.journal, self.inner.offline.bundle_key());
        let stop = |k: &Self, says: Says<'_>| {
            k.set(g, screen(ScreenKind::Error, says));
            ChargeResult::Stop
        };
        let decided = crate::offline::authorize_card(journal, key.as_ref(), uid, job.reservation.amount, policy).await;
        let balance_after = match decided {
            Ok(Ok(b)) => b,
            Ok(Err(why)) => {
                tracing::info!(job_id = job.job_id, ?why, "offline card payment refused");
                return match why {
                    Refusal::Floor { balance } => ChargeResult::Retry(Notice::OfflineLimit { balance }),
                    Refusal::Blocked => ChargeResult::Retry(Notice::CardRefused(ErrorCode::CardBlocked)),
                    // not in the snapshot: perhaps a card not linked yet, which needs the backend
                    Refusal::Unknown => ChargeResult::Retry(Notice::LinkNeedsNetwork),
                    Refusal::StationTotal => {
                        self.abandon(job, "offline total reached").await;
                        stop(self, Says::OfflineTotalReached)
                    }
                    Refusal::NoBundle | Refusal::ClockUnsure => {
                        self.abandon(job, "offline payment paused").await;
                        stop(self, Says::OfflinePaymentPaused)
                    }
                };
            }
            Err(e) => {
                Self::journal_err(e);
                self.abandon(job, "journal not readable").await;
                return stop(self, Says::StationFault);
            }
        };
        let uid = uid.to_uppercase();
        let key = format!("{}-{}-debit", self.inner.offline.station_id, job.job_id);
        let debit = OfflineDebit { idempotency_key: key.clone(), order_id, card_uid: uid.clone(), amount: job.reservation.amount, at: crate::journal::now() };
        let body = serde_json::to_string(&debit).unwrap_or_default();
        if let Err(e) = journal.record_offline_debit(job.job_id, &uid, order_id, job.reservation.amount.0, &key, &body).await {
            Self::journal_err(e);
            self.abandon(job, "journal not writable").await;
            return stop(self, Says::StationFault);
        }
        tracing::info!(job_id = job.job_id, order_id, amount = %job.reservation.amount, "paid by IC card offline");
        ChargeResult::Paid(balance_after)
    }

    /// A paid job that will not print here: reported failed (the order stays
    /// paid and prints at any station), the report sent at once.
    async fn settle_unprinted(&self, job: &JobCtx, reason: &str) {
        let key = format!("{}-failed", job.charge_key);
        let outcome = PrintOutcome::Failed { reason: reason.to_string() };
        let body = serde_json::to_string(&PrintReport { idempotency_key: key.clone(), outcome, ipp_job_id: None, at: crate::journal::now(), impressions: None }).unwrap_or_default();
        match self.inner.journal.finish_job(job.job_id, "failed", reason, job.reservation.reservation_id, &key, &body).await {
            Ok(()) => {
                let _ = flush_outbox(&self.inner.backend, &self.inner.journal).await.map_err(Self::journal_err);
            }
            // nothing can be written: the job stays as it is and a restart settles it
            Err(e) => Self::journal_err(e),
        }
    }

    /// Prints a paid job; `balance_after` (and the card that paid, when a
    /// card on the reader did) for the done screen.
    async fn print(&self, job: JobCtx, balance_after: Option<Yen>, card_uid: Option<&str>) {
        let g = job.generation;
        self.set(g, printing_screen(&job.reservation));
        let (outcome, stopped) = match self.print_steps(&job).await {
            PrintEnd::Printed(id) => (Ok(id), None),
            PrintEnd::Failed { reason, ipp_job, stopped } => (Err((reason, ipp_job)), stopped),
            PrintEnd::Unsettled { ipp_job, reason } => {
                // the printer still holds the job: it may yet print, so it is not
                // reported failed; the station settles it once the printer lets go
                tracing::error!(job_id = job.job_id, ipp_job, %reason, "the printer would not give up the job: left unsettled");
                if let Err(e) = self.inner.journal.step(job.job_id, "unsettled", &format!("ipp job {ipp_job}: {reason}")).await {
                    Self::journal_err(e);
                }
                self.set(g, screen(ScreenKind::Error, Says::PrintUnsettled));
                return;
            }
        };
        // job-impressions-completed, as the printer counts them
        let impressions = match &outcome {
            Ok(id) => self.inner.printer.impressions(*id).await.unwrap_or(None),
            Err(_) => None,
        };
        let (step, detail, report, ipp_job) = match &outcome {
            Ok(id) => ("printed", impressions.map(|n| format!("impressions {n}")).unwrap_or_default(), PrintOutcome::Printed, Some(*id)),
            Err((reason, id)) => ("failed", reason.clone(), PrintOutcome::Failed { reason: reason.clone() }, *id),
        };
        let finished = match &job.offline {
            // offline: the station's id and its own job number make the key (applied once)
            Some((order_id, _)) => {
                let key = format!("{}-{}", self.inner.offline.station_id, job.job_id);
                let body = serde_json::to_string(&OfflinePrint { idempotency_key: key.clone(), order_id: *order_id, outcome: report, ipp_job_id: ipp_job, at: crate::journal::now() })
                    .unwrap_or_default();
                self.inner.journal.finish_job_as(job.job_id, step, &detail, 0, &key, &body, "offline").await
            }
            None => {
                let report_key = format!("{}-{step}", job.charge_key);
                let body = serde_json::to_string(&PrintReport { idempotency_key: report_key.clone(), outcome: report, ipp_job_id: ipp_job, at: crate::journal::now(), impressions })
                    .unwrap_or_default();
                self.inner.journal.finish_job(job.job_id, step, &detail, job.reservation.reservation_id, &report_key, &body).await
            }
        };
        if let Err(e) = finished {
            Self::journal_err(e);
        }
        // deliver the report now rather than at the next heartbeat
        let (backend, journal) = (self.inner.backend.clone(), self.inner.journal.clone());
        tokio::spawn(async move {
            let _ = flush_outbox(&backend, &journal).await.map_err(Self::journal_err);
        });
        match outcome {
            Ok(_) => {
                let mut s = screen(ScreenKind::Done, Says::Done);
                if let Some(b) = balance_after {
                    let notice = match card_uid {
                        Some(uid) => Notice::CardBalanceLeft { tail: shomei_shared::api::card_id_tail(uid), balance: b },
                        None => Notice::BalanceLeft(b),
                    };
                    s = s.with_notice(notice);
                    s.balance = b.to_string();
                }
                self.set(g, s);
                let k = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(15)).await;
                    if k.inner.generation.load(Ordering::SeqCst) == g {
                        k.reset();
                    }
                });
            }
            Err((reason, _)) => {
                tracing::error!(job_id = job.job_id, %reason, "print failed");
                let deadline = &job.reservation.print_deadline_text;
                let says = match &stopped {
                    Some(problem) => Says::PrinterStopped { problem, deadline },
                    None => Says::PrintFailed { deadline },
                };
                self.set(g, screen(ScreenKind::Error, says));
            }
        }
    }

    /// Fetch -> submit -> follow. Printed only when the job is `completed`.
    async fn print_steps(&self, job: &JobCtx) -> PrintEnd {
        let j = &self.inner.journal;
        let failed = |reason: String, ipp_job: Option<i32>| PrintEnd::Failed { reason, ipp_job, stopped: None };
        if let Err(e) = j.step(job.job_id, "fetching", "").await {
            return failed(format!("journal: {e}"), None);
        }
        let mut pdf = None;
        if let Some((order_id, sha)) = &job.offline {
            pdf = match crate::offline::document(&self.inner.journal, &self.inner.offline.cipher, *order_id, sha).await {
                Ok(p) => p,
                Err(e) => return failed(format!("journal: {e}"), None),
            };
            if pdf.is_none() {
                return failed("the offline copy of the document is missing or damaged".to_string(), None);
            }
        }
        for attempt in 0..3u32 {
            if pdf.is_some() {
                break;
            }
            match self.inner.backend.document(job.reservation.reservation_id).await {
                Ok(p) => {
                    pdf = Some(p);
                    break;
                }
                Err(SyncError::Refused(e)) => return failed(format!("document refused: {e}"), None),
                Err(SyncError::Offline(e)) => {
                    tracing::warn!(error = %e, attempt, "document fetch failed");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
            }
        }
        let Some(pdf) = pdf else { return failed("document could not be fetched".to_string(), None) };
        if let Err(e) = j.step(job.job_id, "fetched", &format!("{} bytes", pdf.len())).await {
            return failed(format!("journal: {e}"), None);
        }
        let name = crate::recovery::job_name(job.reservation.print_number.as_str(), job.job_id);
        // journalled before the Print-Job: a restart then asks the printer for this name instead of printing again
        if let Err(e) = j.step(job.job_id, "submitting", &name).await {
            return failed(format!("journal: {e}"), None);
        }
        let ipp_id = match self.inner.printer.submit(pdf, &name, &job.reservation.print).await {
            Ok(id) => id,
            Err(e) => return failed(format!("Print-Job: {e}"), None),
        };
        crate::failpoint::crash("print-job-answered");
        // The printer has the job now: whatever the journal manages to write,
        // the job is followed to its end and reported as it ended, never
        // reported failed while it may still print.
        let _ = j.set_ipp_job(job.job_id, ipp_id).await.map_err(Self::journal_err);
        if let Err(e) = j.step(job.job_id, "submitted", &format!("ipp job {ipp_id}")).await {
            Self::journal_err(e);
            tracing::error!(job_id = job.job_id, ipp_id, "the printer took the job but the journal could not say so: following it anyway");
        }
        let timeout = Duration::from_secs(self.inner.cfg.job_timeout_s);
        let printer = self.inner.printer.as_ref();
        let grace = Duration::from_secs(self.inner.cfg.stopped_timeout_s);
        let followed = crate::printer::follow_job_watching(printer, ipp_id, Duration::from_millis(200), timeout, grace).await;
        let mut stopped = None;
        match &followed {
            Ok(f) if f.state == JobState::Completed => return PrintEnd::Printed(ipp_id),
            Ok(f) if f.state.is_terminal() => {
                return failed(format!("job {ipp_id} ended {:?} {}", f.state, f.reasons.join(",")), Some(ipp_id));
            }
            Ok(f) => {
                if let Some(st) = &f.stalled_by {
                    // the user hears at once what happened; the job is cancelled and settled meanwhile
                    let problem = printer_problem(st);
                    self.inner.health.set_printer(st.clone());
                    self.set(job.generation, screen(ScreenKind::Error, Says::PrinterStopped { problem: &problem, deadline: &job.reservation.print_deadline_text }));
                    stopped = Some(problem);
                }
            }
            Err(crate::printer::PrinterError::Rejected(e)) => {
                // the printer no longer knows the job: it cannot print any more
                return failed(format!("Get-Job-Attributes: {e}"), Some(ipp_id));
            }
            Err(_) => {}
        }
        // Stuck (a jam, a stopped printer, a dead engine): cancel it, so that it cannot
        // print later on its own while the user reprints the same certificates elsewhere.
        tracing::warn!(ipp_id, ?followed, "job did not finish: cancelling it");
        // after a refused Cancel-Job the job is only watched briefly: it is left unsettled if it goes on
        let settle_for = match printer.cancel(ipp_id).await {
            Ok(()) => Duration::from_secs(30),
            Err(e) => {
                tracing::warn!(ipp_id, error = %e, "Cancel-Job refused");
                Duration::from_secs(5)
            }
        };
        match follow_job(printer, ipp_id, Duration::from_millis(500), settle_for).await {
            Ok((JobState::Completed, _)) => PrintEnd::Printed(ipp_id),
            Ok((state, reasons)) if state.is_terminal() => {
                PrintEnd::Failed { reason: format!("job {ipp_id} ended {state:?} {}", reasons.join(",")), ipp_job: Some(ipp_id), stopped }
            }
            Err(crate::printer::PrinterError::Rejected(e)) => PrintEnd::Failed { reason: format!("Get-Job-Attributes: {e}"), ipp_job: Some(ipp_id), stopped },
            other => PrintEnd::Unsettled { ipp_job: ipp_id, reason: format!("not ended after Cancel-Job: {other:?}") },
        }
    }
}

/// How a print ended.
enum PrintEnd {
    Printed(i32),
    /// Nothing printed and nothing will: reported failed (a paid order stays printable elsewhere).
    /// `stopped`: the printer stopped under the job (what it said).
    Failed { reason: String, ipp_job: Option<i32>, stopped: Option<crate::messages::Text> },
    /// The printer still holds the job after Cancel-Job (or cannot be asked).
    Unsettled { ipp_job: i32, reason: String },
}

struct JobCtx {
    generation: u64,
    job_id: i64,
    reservation: Reservation,
    charge_key: String,
    /// Printed from the offline copy: (order id, the PDF's SHA-256).
    offline: Option<(i64, String)>,
    /// Offline and unpaid: stored value is taken under this policy (P-3 b).
    card_policy: Option<OfflineCardPolicy>,
    /// The reader was empty when the card screen opened: any card on it now
    /// was put down for this payment (however late the payment task starts).
    reader_was_empty: bool,
}

enum ChargeResult {
    Paid(Yen),
    Retry(Notice),
    Stop,
}

// ------------------------------------------------------------------ HTTP

#[derive(Deserialize)]
pub struct NumberForm {
    number: String,
}

pub fn router<P: Printer, R: CardReader>(kiosk: Kiosk<P, R>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(include_str!("../static/kiosk.html")) }))
        .route("/kiosk/state", get(state::<P, R>))
        .route("/kiosk/number", post(number::<P, R>))
        .route("/kiosk/cancel", post(cancel::<P, R>))
        .route("/kiosk/emoney", post(emoney::<P, R>))
        .route("/kiosk/check", post(check::<P, R>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<P, R>))
        .route("/metrics", get(metrics::<P, R>))
        .with_state(kiosk)
}

async fn metrics<P: Printer, R: CardReader>(State(k): State<Kiosk<P, R>>) -> axum::response::Response {
    let i = &k.inner;
    match crate::metrics::render(&i.journal, &i.health, &i.cfg.state_dir, i.started.elapsed().as_secs()).await {
        Ok(body) => ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("journal: {e}\n")).into_response(),
    }
}

/// Ready to take a user: the journal answers, the printer can print, the
/// reader is there. 503 names what is not (for a load balancer or a monitor);
/// `/healthz` only says the process runs.
async fn readyz<P: Printer, R: CardReader>(State(k): State<Kiosk<P, R>>) -> axum::response::Response {
    use crate::sync::HealthSource;
    let i = &k.inner;
    let mut not_ready = Vec::new();
    if let Err(e) = i.journal.ping().await {
        not_ready.push(format!("journal: {e}"));
    }
    let printer = i.health.printer();
    if !printer.can_print() {
        not_ready.push(format!("printer: {} {}", if printer.reachable { printer.state.as_str() } else { "unreachable" }, printer.reasons.join(",")));
    }
    if !i.health.reader_present() {
        not_ready.push("reader: not connected".to_string());
    }
    if not_ready.is_empty() {
        "ready\n".into_response()
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", not_ready.join("\n"))).into_response()
    }
}

async fn state<P: Printer, R: CardReader>(State(k): State<Kiosk<P, R>>) -> impl IntoResponse {
    crate::failpoint::hang("hang-kiosk", k.inner.started.elapsed() > Duration::from_secs(3)).await;
    Json(k.current())
}

async fn number<P: Printer, R: CardReader>(State(k): State<Kiosk<P, R>>, Json(f): Json<NumberForm>) -> impl IntoResponse {
    Json(k.submit_number(&f.number).await)
}

async fn cancel<P: Printer, R: CardReader>(State(k): State<Kiosk<P, R>>) -> impl IntoResponse {
    Json(k.reset())
}

async fn emoney<P: Printer, R: CardReader>(State(k): State<Kiosk<P, R>>) -> impl IntoResponse {
    Json(k.pay_with_terminal())
}

/// The number as typed so far, checked as the user types (ST-1): how many
/// digits are missing, or whether the check digit matches, in both languages.
#[derive(Serialize)]
pub struct NumberCheck {
    pub complete: bool,
    pub valid: bool,
    pub grouped: String,
    pub hint_ja: String,
    pub hint_en: String,
}

pub fn check_number(input: &str) -> NumberCheck {
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    let grouped = digits.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ");
    if digits.len() < 12 {
        let left = 12 - digits.len();
        return NumberCheck { complete: false, valid: false, grouped, hint_ja: format!("あと{left}桁"), hint_en: format!("{left} more digits") };
    }
    match PrintNumber::parse(&digits) {
        Ok(_) => NumberCheck { complete: true, valid: true, grouped, hint_ja: "番号の形は正しいです。「確定」を押してください。".into(), hint_en: "The number looks right. Press OK.".into() },
        Err(e) => {
            let (_, m) = Says::NumberInvalid(&e).text();
            NumberCheck { complete: true, valid: false, grouped, hint_ja: m.ja, hint_en: m.en }
        }
    }
}

async fn check<P: Printer, R: CardReader>(State(k): State<Kiosk<P, R>>, Json(f): Json<NumberForm>) -> impl IntoResponse {
    *k.inner.last_touch.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    Json(check_number(&f.number))
}
