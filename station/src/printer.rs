//! The station's printer, spoken to over IPP (RFC 8011) with the `ipp` crate.
//!
//! One operation per call, no state kept between calls: the printer is the
//! source of truth for its jobs. Only plain `ipp://` / `http://` is supported
//! (the crate is built without TLS).
//!
//! Behaviour worth knowing, from ippeveprinter (the test and demo printer):
//! * it has no queue: a Print-Job while another job is processing is answered
//!   with `server-error-busy`, which [`Printer::submit`] retries;
//! * after `media-empty` it stays `idle` and only adds `media-empty-report` to
//!   printer-state-reasons, and later jobs sit in `processing` until paper is
//!   loaded, so check [`PrinterStatus::can_print`] before submitting;
//! * finished jobs are forgotten after a while, and Get-Job-Attributes then
//!   fails with `client-error-not-found` ([`PrinterError::Rejected`]).

use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipp::attribute::{IppAttribute, IppAttributeName, IppAttributes};
use ipp::error::IppError;
use ipp::model::{DelimiterTag, StatusCode};
use ipp::operation::builder::IppOperationBuilder;
use ipp::operation::IppOperation;
use ipp::payload::IppPayload;
use ipp::prelude::Uri;
use ipp::request::IppRequestResponse;
use ipp::value::IppValue;
use shomei_shared::api::{Marker, PrintSettings, PrinterStatus};
use tracing::{debug, instrument};

/// requesting-user-name on every request. Servers that check ownership (CUPS)
/// only let the same user cancel or inspect a job.
const USER_NAME: &str = "shomei";
/// Limit for the quick queries (status, job state, cancel), connect included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit for one Print-Job attempt: the whole document is uploaded in it.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Printer::submit`] keeps retrying `server-error-busy`.
const BUSY_RETRY_FOR: Duration = Duration::from_secs(30);
/// Busy retries wait 250 ms, 500 ms, then 1 s each: a printer without a queue
/// is free the moment its job ends, and a kiosk customer is waiting.
const BUSY_BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BUSY_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// IPP `name` values (job-name) are at most 255 octets.
const MAX_NAME_OCTETS: usize = 255;

/// RFC 8011 job-state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// 3 pending
    Pending,
    /// 4 pending-held
    Held,
    /// 5 processing
    Processing,
    /// 6 processing-stopped (the printer stopped while printing this job)
    Stopped,
    /// 7 canceled
    Canceled,
    /// 8 aborted (the printer gave up on the job)
    Aborted,
    /// 9 completed
    Completed,
}

impl JobState {
    /// Canceled, aborted and completed jobs never change state again.
    #[instrument(level = "debug", ret)]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Canceled | JobState::Aborted | JobState::Completed
        )
    }

    fn from_ipp(value: i32) -> Option<Self> {
        Some(match value {
            3 => JobState::Pending,
            4 => JobState::Held,
            5 => JobState::Processing,
            6 => JobState::Stopped,
            7 => JobState::Canceled,
            8 => JobState::Aborted,
            9 => JobState::Completed,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrinterError {
    /// No answer: connection refused or reset, timeout, name resolution.
    #[error("printer unreachable: {0}")]
    Unreachable(String),
    /// Still `server-error-busy` when the retry time ran out.
    #[error("printer still busy after retrying for {}s", BUSY_RETRY_FOR.as_secs())]
    Busy,
    /// The printer answered with an IPP error status (status and message).
    #[error("printer refused the request: {0}")]
    Rejected(String),
    /// Anything else: bad URI, HTTP error, an answer we cannot use.
    #[error("IPP protocol error: {0}")]
    Protocol(String),
}

/// What the station needs from a printer. Futures are `Send` so callers can
/// spawn them on the multi-threaded runtime.
pub trait Printer: Send + Sync + 'static {
    /// Get-Printer-Attributes. Never fails: when no usable answer comes back the
    /// status is `reachable: false`, state `unknown`, and `message` says why.
    fn status(&self) -> impl Future<Output = PrinterStatus> + Send;

    /// Print-Job of one PDF (document-format application/pdf, copies 1),
    /// retrying `server-error-busy` with backoff for about 30 s. Returns the job-id.
    fn submit(
        &self,
        pdf: Vec<u8>,
        job_name: &str,
        settings: &PrintSettings,
    ) -> impl Future<Output = Result<i32, PrinterError>> + Send;

    /// job-impressions-completed of a job (None when the printer does not say).
    fn impressions(&self, job_id: i32) -> impl Future<Output = Result<Option<u32>, PrinterError>> + Send;

    /// Get-Job-Attributes: job-state and job-state-reasons.
    fn job_state(
        &self,
        job_id: i32,
    ) -> impl Future<Output = Result<(JobState, Vec<String>), PrinterError>> + Send;

    /// Cancel-Job. A job that already finished gives `Rejected` (client-error-not-possible).
    fn cancel(&self, job_id: i32) -> impl Future<Output = Result<(), PrinterError>> + Send;

    /// Get-Jobs (which-jobs all): the id of the newest job named `job_name`,
    /// if the printer still knows one. Used after a restart that lost the
    /// answer to a Print-Job.
    fn find_job(&self, job_name: &str) -> impl Future<Output = Result<Option<i32>, PrinterError>> + Send;
}

/// A printer reached over IPP at one printer URI.
///
/// One HTTP client is kept for the printer's life, so that its requests go
/// over a kept-alive connection instead of a new client and TCP connection
/// per operation (the `ipp` crate's `AsyncIppClient` builds a new
/// `reqwest::Client` on every `send`). Clones share it.
#[derive(Debug, Clone)]
pub struct IppPrinter {
    /// Where requests are sent (`ipp://` is sent as `http://`, port 631 by default).
    uri: Uri,
    /// The printer-uri operation attribute: `uri` in `ipp://` form.
    printer_uri: Uri,
    /// `uri` as the HTTP URL the requests are POSTed to.
    http_url: String,
    /// The one HTTP client (and its connection pool) for this printer.
    http: reqwest::Client,
}

impl IppPrinter {
    /// `uri` is the printer URI, e.g. `ipp://127.0.0.1:8631/ipp/print`.
    /// `http://` is accepted too; `ipps://`/`https://` are refused (no TLS in this build).
    #[instrument(level = "debug", err(level = "debug"))]
    pub fn new(uri: &str) -> Result<Self, PrinterError> {
        let parsed: Uri = uri
            .parse()
            .map_err(|e| PrinterError::Protocol(format!("invalid printer URI {uri:?}: {e}")))?;
        match parsed.scheme_str() {
            Some("ipp" | "http") => {}
            Some("ipps" | "https") => {
                return Err(PrinterError::Protocol(format!(
                    "printer URI {uri:?}: TLS (ipps/https) is not supported by this build"
                )));
            }
            _ => {
                return Err(PrinterError::Protocol(format!(
                    "printer URI {uri:?} must start with ipp:// or http://"
                )));
            }
        }
        if parsed.host().is_none_or(str::is_empty) {
            return Err(PrinterError::Protocol(format!(
                "printer URI {uri:?} has no host"
            )));
        }
        let printer_uri = ipp::util::canonicalize_uri(&parsed);
        // ipp://host/path is http://host:631/path (the crate's own rule, which it keeps private)
        let http_url = match (parsed.scheme_str(), parsed.authority()) {
            (Some("ipp"), Some(authority)) => {
                let authority = if authority.port_u16().is_some() {
                    authority.to_string()
                } else {
                    format!("{authority}:631")
                };
                let path = parsed.path_and_query().map(|p| p.as_str()).unwrap_or_default();
                format!("http://{authority}{path}")
            }
            _ => parsed.to_string(),
        };
        /// Limit for opening a connection to the printer (within the call's own limit).
        const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
        /// A kept-alive connection unused this long is closed by us, before the
        /// printer closes it itself (ippeveprinter and CUPS keep one 30 s, some
        /// printers less), so that a request rarely meets a closing connection.
        const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
        // No client-wide timeout: each call sets its own (QUERY_TIMEOUT, SUBMIT_TIMEOUT).
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(2)
            .tcp_nodelay(true)
            .user_agent(concat!("shomei-station/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PrinterError::Protocol(format!("building the HTTP client for {uri:?}: {}", error_chain(&e))))?;
        Ok(IppPrinter {
            uri: parsed,
            printer_uri,
            http_url,
            http,
        })
    }

    /// Sends one request over the printer's kept-alive connection and checks
    /// the IPP status. `server-error-busy` comes back as `PrinterError::Busy`
    /// so that `submit` can retry it. `timeout` covers connect, upload and
    /// the whole answer.
    ///
    /// A query (Get-Printer-Attributes, Get-Job-Attributes, Get-Jobs) that
    /// fails on the transport, not by timeout nor by a refused connect, is
    /// sent once more within the same time limit: a kept-alive connection the
    /// printer closed at that moment must not make the printer look
    /// unreachable. Print-Job and Cancel-Job are never resent here (a resent
    /// Print-Job could print twice).
    async fn call(
        &self,
        request: IppRequestResponse,
        timeout: Duration,
    ) -> Result<IppRequestResponse, PrinterError> {
        /// One POST of an encoded request and its parsed answer.
        async fn exchange(
            http: &reqwest::Client,
            url: &str,
            body: Vec<u8>,
            limit: Duration,
        ) -> Result<IppRequestResponse, IppError> {
            let response = http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/ipp")
                .timeout(limit)
                .body(body)
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(IppError::RequestError(response.status().as_u16()));
            }
            let bytes = response.bytes().await?;
            // The ipp crate (8.0) panics on some malformed values (a language-tagged
            // text whose inner length runs past the value): a printer's bytes are
            // untrusted, so a panic here is a protocol error, never a dead task.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ipp::parser::IppParser::new(Cursor::new(bytes)).parse())) {
                Ok(parsed) => Ok(parsed?),
                Err(_) => Err(IppError::ParseError(ipp::parser::IppParseError::IoError(std::io::Error::new(std::io::ErrorKind::InvalidData, "a malformed attribute value the IPP parser could not read")))),
            }
        }

        // Get-Job-Attributes 0x0009, Get-Jobs 0x000A, Get-Printer-Attributes 0x000B
        let query = matches!(request.header().operation_or_status, 0x0009..=0x000B);
        // The request whole in memory (the PDF is in memory already): it goes
        // out with a Content-Length, and a query keeps a copy for its resend.
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut request.into_read(), &mut body)
            .map_err(|e| PrinterError::Protocol(format!("encoding the IPP request: {e}")))?;
        let mut spare = query.then(|| body.clone());
        let deadline = Instant::now() + timeout;
        let no_answer = || PrinterError::Unreachable(format!("no answer within {}s", timeout.as_secs()));
        let response = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_answer());
            }
            // reqwest's timeout should cover the body as well; this is a backstop
            // so that no call can hang whatever the transport does.
            let sent = tokio::time::timeout(left + Duration::from_secs(1), exchange(&self.http, &self.http_url, body, left))
                .await
                .map_err(|_| no_answer())?;
            match sent {
                Err(IppError::AsyncClientError(e)) if !e.is_timeout() && !e.is_connect() && !e.is_builder() && spare.is_some() => {
                    debug!(error = %error_chain(&e), "query failed on a kept-alive connection; sending it once more");
                    body = spare.take().unwrap_or_default();
                }
                sent => break sent.map_err(map_ipp_error)?,
            }
        };
        let status = response.header().status_code();
        if status.is_success() {
            Ok(response)
        } else if status == StatusCode::ServerErrorBusy {
            Err(PrinterError::Busy)
        } else {
            Err(PrinterError::Rejected(describe_status(&response)))
        }
    }

    async fn try_status(&self) -> Result<PrinterStatus, PrinterError> {
        let request = IppOperationBuilder::get_printer_attributes(self.printer_uri.clone())
            .attributes([
                IppAttribute::PRINTER_STATE,
                IppAttribute::PRINTER_STATE_REASONS,
                IppAttribute::PRINTER_STATE_MESSAGE,
                "marker-names",
                "marker-types",
                "marker-levels",
                "marker-low-levels",
                IppAttribute::MEDIA_READY,
            ])
            .build()
            .map_err(|e| PrinterError::Protocol(format!("building Get-Printer-Attributes: {e}")))?
            .into_ipp_request();
        let response = self
            .call(request, QUERY_TIMEOUT)
            .await
            .map_err(|e| match e {
                // status() is not expected to hit busy, but never report it as a retry hint
                PrinterError::Busy => PrinterError::Rejected("server-error-busy".into()),
                e => e,
            })?;
        let attrs = response.attributes();
        let state = match find(
            attrs,
            DelimiterTag::PrinterAttributes,
            IppAttribute::PRINTER_STATE,
        ) {
            Some(IppValue::Enum(3)) => "idle",
            Some(IppValue::Enum(4)) => "processing",
            Some(IppValue::Enum(5)) => "stopped",
            _ => "unknown",
        };
        let reasons = find(
            attrs,
            DelimiterTag::PrinterAttributes,
            IppAttribute::PRINTER_STATE_REASONS,
        )
        .map(keywords)
        .unwrap_or_default();
        let message = find(
            attrs,
            DelimiterTag::PrinterAttributes,
            IppAttribute::PRINTER_STATE_MESSAGE,
        )
        .map(text)
        .unwrap_or_default();
        let list = |name: &str| -> Vec<IppValue> {
            find(attrs, DelimiterTag::PrinterAttributes, name).map(|v| v.into_iter().cloned().collect()).unwrap_or_default()
        };
        let int = |v: Option<&IppValue>| match v {
            Some(IppValue::Integer(i)) => *i,
            _ => -1,
        };
        let (names, types, levels, lows) = (list("marker-names"), list("marker-types"), list("marker-levels"), list("marker-low-levels"));
        let markers = names
            .iter()
            .enumerate()
            .map(|(i, n)| Marker { name: text(n), kind: types.get(i).map(text).unwrap_or_default(), level: int(levels.get(i)), low: int(lows.get(i)) })
            .collect();
        let media_ready = list(IppAttribute::MEDIA_READY).iter().map(text).filter(|m| !m.is_empty()).collect();
        Ok(PrinterStatus {
            reachable: true,
            state: state.to_owned(),
            reasons,
            message,
            markers,
            media_ready,
        })
    }

    /// One Print-Job attempt.
    async fn print_job(&self, pdf: &Arc<[u8]>, job_name: &str, settings: &PrintSettings) -> Result<i32, PrinterError> {
        let keyword = |v: &str| IppValue::new_keyword(v).map_err(|e| PrinterError::Protocol(format!("building Print-Job: {e}")));
        let request = IppOperationBuilder::print_job(
            self.printer_uri.clone(),
            IppPayload::new(Cursor::new(Arc::clone(pdf))),
        )
        .user_name(USER_NAME)
        .job_title(job_name)
        .document_format("application/pdf")
        .attribute(IppAttribute::new(
            IppAttributeName::COPIES,
            IppValue::Integer(i32::try_from(settings.copies.max(1)).unwrap_or(1)),
        ))
        .attribute(IppAttribute::new(IppAttributeName::SIDES, keyword(&settings.sides)?))
        .attribute(IppAttribute::new(IppAttributeName::MEDIA, keyword(&settings.media)?))
        .build()
        .map_err(|e| PrinterError::Protocol(format!("building Print-Job: {e}")))?;
        let response = self
            .call(request.into_ipp_request(), SUBMIT_TIMEOUT)
            .await?;
        match find(
            response.attributes(),
            DelimiterTag::JobAttributes,
            IppAttribute::JOB_ID,
        ) {
            Some(IppValue::Integer(id)) => Ok(*id),
            other => Err(PrinterError::Protocol(format!(
                "Print-Job answer without an integer job-id (got {other:?})"
            ))),
        }
    }
}

impl Printer for IppPrinter {
    #[instrument(level = "debug", skip(self), fields(uri = %self.uri))]
    async fn status(&self) -> PrinterStatus {
        let status = match self.try_status().await {
            Ok(status) => status,
            Err(e) => PrinterStatus {
                // Whatever went wrong, nothing usable came back: a printer in an
                // unknown condition must not look ready to print.
                reachable: false,
                state: "unknown".to_owned(),
                message: e.to_string(),
                ..PrinterStatus::default()
            },
        };
        debug!(?status, "printer status");
        status
    }

    #[instrument(level = "debug", skip(self, pdf), fields(uri = %self.uri, bytes = pdf.len()), err(level = "debug"))]
    async fn submit(&self, pdf: Vec<u8>, job_name: &str, settings: &PrintSettings) -> Result<i32, PrinterError> {
        let pdf: Arc<[u8]> = pdf.into();
        let job_name = truncate_octets(job_name, MAX_NAME_OCTETS);
        let started = Instant::now();
        let mut backoff = BUSY_BACKOFF_FIRST;
        let mut attempt = 1u32;
        loop {
            match self.print_job(&pdf, job_name, settings).await {
                Ok(job_id) => {
                    debug!(
                        job_id,
                        attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "job accepted"
                    );
                    return Ok(job_id);
                }
                Err(PrinterError::Busy) => {
                    let left = BUSY_RETRY_FOR.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Err(PrinterError::Busy);
                    }
                    let wait = backoff.min(left);
                    debug!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "printer busy, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(BUSY_BACKOFF_MAX);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    #[instrument(level = "debug", skip(self), fields(uri = %self.uri), err(level = "debug"))]
    async fn job_state(&self, job_id: i32) -> Result<(JobState, Vec<String>), PrinterError> {
        let mut request = IppOperationBuilder::get_job_attributes(self.printer_uri.clone(), job_id)
            .user_name(USER_NAME)
            .build()
            .map_err(|e| PrinterError::Protocol(format!("building Get-Job-Attributes: {e}")))?
            .into_ipp_request();
        let wanted = [IppAttribute::JOB_STATE, IppAttribute::JOB_STATE_REASONS]
            .into_iter()
            .map(IppValue::new_keyword)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PrinterError::Protocol(format!("building Get-Job-Attributes: {e}")))?;
        request.attributes_mut().add(
            DelimiterTag::OperationAttributes,
            IppAttribute::new(
                IppAttributeName::REQUESTED_ATTRIBUTES,
                IppValue::Array(wanted),
            ),
        );
        let response = self
            .call(request, QUERY_TIMEOUT)
            .await
            .map_err(|e| match e {
                PrinterError::Busy => PrinterError::Rejected("server-error-busy".into()),
                e => e,
            })?;
        let attrs = response.attributes();
        let state = match find(attrs, DelimiterTag::JobAttributes, IppAttribute::JOB_STATE) {
            Some(IppValue::Enum(v)) => JobState::from_ipp(*v).ok_or_else(|| {
                PrinterError::Protocol(format!("job {job_id}: unknown job-state {v}"))
            })?,
            other => {
                return Err(PrinterError::Protocol(format!(
                    "job {job_id}: answer without job-state (got {other:?})"
                )));
            }
        };
        let reasons = find(
            attrs,
            DelimiterTag::JobAttributes,
            IppAttribute::JOB_STATE_REASONS,
        )
        .map(keywords)
        .unwrap_or_default();
        debug!(?state, ?reasons, "job state");
        Ok((state, reasons))
    }

    #[instrument(level = "debug", skip(self), fields(uri = %self.uri), err(level = "debug"))]
    async fn cancel(&self, job_id: i32) -> Result<(), PrinterError> {
        if crate::failpoint::is("cancel-job-fails") {
            return Err(PrinterError::Unreachable("failpoint cancel-job-fails: Cancel-Job not delivered".into()));
        }
        let request = IppOperationBuilder::cancel_job(self.printer_uri.clone(), job_id)
            .user_name(USER_NAME)
            .build()
            .map_err(|e| PrinterError::Protocol(format!("building Cancel-Job: {e}")))?
            .into_ipp_request();
        self.call(request, QUERY_TIMEOUT)
            .await
            .map_err(|e| match e {
                PrinterError::Busy => PrinterError::Rejected("server-error-busy".into()),
                e => e,
            })?;
        debug!("job canceled");
        Ok(())
    }

    #[instrument(level = "debug", skip(self), fields(uri = %self.uri), err(level = "debug"))]
    async fn impressions(&self, job_id: i32) -> Result<Option<u32>, PrinterError> {
        let mut request = IppOperationBuilder::get_job_attributes(self.printer_uri.clone(), job_id)
            .user_name(USER_NAME)
            .build()
            .map_err(|e| PrinterError::Protocol(format!("building Get-Job-Attributes: {e}")))?
            .into_ipp_request();
        let wanted = IppValue::new_keyword(IppAttribute::JOB_IMPRESSIONS_COMPLETED)
            .map_err(|e| PrinterError::Protocol(format!("building Get-Job-Attributes: {e}")))?;
        request
            .attributes_mut()
            .add(DelimiterTag::OperationAttributes, IppAttribute::new(IppAttributeName::REQUESTED_ATTRIBUTES, IppValue::Array(vec![wanted])));
        let response = self.call(request, QUERY_TIMEOUT).await.map_err(|e| match e {
            PrinterError::Busy => PrinterError::Rejected("server-error-busy".into()),
            e => e,
        })?;
        Ok(match find(response.attributes(), DelimiterTag::JobAttributes, IppAttribute::JOB_IMPRESSIONS_COMPLETED) {
            Some(IppValue::Integer(n)) => u32::try_from(*n).ok(),
            _ => None,
        })
    }

    #[instrument(level = "debug", skip(self), fields(uri = %self.uri), err(level = "debug"))]
    async fn find_job(&self, job_name: &str) -> Result<Option<i32>, PrinterError> {
        let mut request = IppOperationBuilder::get_jobs(self.printer_uri.clone())
            .user_name(USER_NAME)
            .build()
            .map_err(|e| PrinterError::Protocol(format!("building Get-Jobs: {e}")))?
            .into_ipp_request();
        let wanted = [IppAttribute::JOB_ID, IppAttribute::JOB_NAME]
            .into_iter()
            .map(IppValue::new_keyword)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PrinterError::Protocol(format!("building Get-Jobs: {e}")))?;
        let which = IppValue::new_keyword("all").map_err(|e| PrinterError::Protocol(format!("building Get-Jobs: {e}")))?;
        let ops = request.attributes_mut();
        ops.add(DelimiterTag::OperationAttributes, IppAttribute::new(IppAttributeName::WHICH_JOBS, which));
        ops.add(DelimiterTag::OperationAttributes, IppAttribute::new(IppAttributeName::REQUESTED_ATTRIBUTES, IppValue::Array(wanted)));
        let response = self.call(request, QUERY_TIMEOUT).await.map_err(|e| match e {
            PrinterError::Busy => PrinterError::Rejected("server-error-busy".into()),
            e => e,
        })?;
        let found = response
            .attributes()
            .groups_of(DelimiterTag::JobAttributes)
            .filter(|g| g.get(IppAttribute::JOB_NAME).is_some_and(|n| text(n.value()) == job_name))
            .filter_map(|g| match g.get(IppAttribute::JOB_ID).map(IppAttribute::value) {
                Some(IppValue::Integer(id)) => Some(*id),
                _ => None,
            })
            .max();
        debug!(job_name, ?found, "Get-Jobs");
        Ok(found)
    }
}

/// Follows a job with Get-Job-Attributes (poll every `interval`) until a terminal state or `timeout`; returns the last state seen.
///
/// The first poll is immediate. `Rejected` (e.g. the job is unknown) ends the
/// wait at once; `Unreachable`/`Protocol` polls are retried until `timeout`,
/// and if the last poll before the timeout failed, its error is returned.
/// On timeout the state returned is not terminal: check
/// [`JobState::is_terminal`].
#[instrument(level = "debug", skip(p), err(level = "debug"))]
pub async fn follow_job<P: Printer>(
    p: &P,
    job_id: i32,
    interval: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<(JobState, Vec<String>), PrinterError> {
    follow_job_until(p, job_id, interval, timeout, timeout).await
}

/// How following a job ended.
#[derive(Debug, Clone)]
pub struct Followed {
    pub state: JobState,
    pub reasons: Vec<String>,
    /// The job stopped progressing behind a stopped or paused printer for the
    /// stop grace: what the printer said then (its blocking reasons).
    pub stalled_by: Option<PrinterStatus>,
}

/// True when a job that is not finished is held up by its printer: the job is
/// `processing-stopped`, or names `printer-stopped` among its reasons (a
/// stopped printer leaves waiting jobs `pending` so), or the printer answers
/// and cannot print (stopped, paused, out of paper, jammed, a cover open).
fn held_up(state: JobState, reasons: &[String], printer: &PrinterStatus) -> bool {
    !state.is_terminal()
        && (state == JobState::Stopped
            || reasons.iter().any(|r| r.starts_with("printer-stopped"))
            || (printer.reachable && !printer.can_print()))
}

/// [`follow_job`], giving up early when the job stays `processing-stopped`
/// (the printer stopped under it: a jam, an empty tray) for `stopped_timeout`:
/// the caller then cancels it and counts it as failed.
pub async fn follow_job_until<P: Printer>(
    p: &P,
    job_id: i32,
    interval: std::time::Duration,
    timeout: std::time::Duration,
    stopped_timeout: std::time::Duration,
) -> Result<(JobState, Vec<String>), PrinterError> {
    follow_job_watching(p, job_id, interval, timeout, stopped_timeout).await.map(|f| (f.state, f.reasons))
}

/// Follows a job until a terminal state or `timeout`, watching the printer
/// too: a job held up by a stopped or paused printer (see [`held_up`]) for
/// `stop_grace` is given up at once, with what the printer said, so that the
/// user is told within seconds rather than at the job timeout.
pub async fn follow_job_watching<P: Printer>(
    p: &P,
    job_id: i32,
    interval: std::time::Duration,
    timeout: std::time::Duration,
    stop_grace: std::time::Duration,
) -> Result<Followed, PrinterError> {
    let deadline = Instant::now() + timeout;
    let mut last_seen: Option<JobState> = None;
    let mut held_since: Option<Instant> = None;
    loop {
        let polled = p.job_state(job_id).await;
        match &polled {
            Ok((state, reasons)) => {
                if last_seen != Some(*state) {
                    debug!(job_id, ?state, ?reasons, "job state changed");
                    last_seen = Some(*state);
                }
                if state.is_terminal() {
                    return Ok(Followed { state: *state, reasons: reasons.clone(), stalled_by: None });
                }
                let printer = p.status().await;
                if held_up(*state, reasons, &printer) {
                    let since = *held_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= stop_grace {
                        // what the printer says, for the user's message ("stopped" when it names nothing)
                        let said = if printer.reachable && !printer.can_print() { printer } else { PrinterStatus { reachable: true, state: "stopped".into(), ..printer } };
                        tracing::warn!(job_id, ?state, ?reasons, printer = ?said.reasons, "job held up by a stopped printer");
                        return Ok(Followed { state: *state, reasons: reasons.clone(), stalled_by: Some(said) });
                    }
                } else {
                    held_since = None;
                }
            }
            Err(PrinterError::Rejected(_)) => return polled.map(|(state, reasons)| Followed { state, reasons, stalled_by: None }),
            Err(e) => debug!(job_id, error = %e, "poll failed, will retry"),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            debug!(job_id, ?last_seen, "gave up following the job");
            return polled.map(|(state, reasons)| Followed { state, reasons, stalled_by: None });
        }
        tokio::time::sleep(interval.min(left)).await;
    }
}

/// The first value of attribute `name` in the first group tagged `tag`.
fn find<'a>(attrs: &'a IppAttributes, tag: DelimiterTag, name: &str) -> Option<&'a IppValue> {
    attrs
        .groups_of(tag)
        .find_map(|group| group.get(name))
        .map(IppAttribute::value)
}

/// A keyword attribute as a list: the crate gives a single value as itself and
/// several as `IppValue::Array`; iterating an `IppValue` covers both.
fn keywords(value: &IppValue) -> Vec<String> {
    value
        .into_iter()
        .filter(|v| !matches!(v, IppValue::NoValue))
        .map(ToString::to_string)
        .collect()
}

/// text/name values without their language tag.
fn text(value: &IppValue) -> String {
    match value {
        IppValue::TextWithLanguage { text, .. } => text.to_string(),
        IppValue::NameWithLanguage { name, .. } => name.to_string(),
        other => other.to_string(),
    }
}

/// "server-error-... (0x0507): status-message".
fn describe_status(response: &IppRequestResponse) -> String {
    let raw = response.header().operation_or_status;
    let message = find(
        response.attributes(),
        DelimiterTag::OperationAttributes,
        IppAttribute::STATUS_MESSAGE,
    )
    .map(text)
    .unwrap_or_default();
    let code = response.header().status_code();
    if message.is_empty() {
        format!("{code} ({raw:#06x})")
    } else {
        format!("{code} ({raw:#06x}): {message}")
    }
}

fn map_ipp_error(e: IppError) -> PrinterError {
    match e {
        IppError::AsyncClientError(e) if e.is_builder() => PrinterError::Protocol(e.to_string()),
        // connect, timeout, reset while sending or receiving
        IppError::AsyncClientError(e) => PrinterError::Unreachable(error_chain(&e)),
        IppError::IoError(e) => PrinterError::Unreachable(error_chain(&e)),
        IppError::RequestError(http_status) => {
            PrinterError::Protocol(format!("HTTP status {http_status} (wrong printer path?)"))
        }
        IppError::StatusError(code) => PrinterError::Rejected(code.to_string()),
        other => PrinterError::Protocol(error_chain(&other)),
    }
}

/// An error and its sources on one line (reqwest's Display alone says only
/// "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// `s` cut to at most `max` bytes on a char boundary.
fn truncate_octets(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A printer whose job goes through scripted states, one per poll (the last repeats).
    struct Scripted(std::sync::Mutex<Vec<JobState>>);

    impl Printer for Scripted {
        async fn status(&self) -> PrinterStatus {
            PrinterStatus::default()
        }
        async fn submit(&self, _: Vec<u8>, _: &str, _: &PrintSettings) -> Result<i32, PrinterError> {
            Ok(1)
        }
        async fn impressions(&self, _: i32) -> Result<Option<u32>, PrinterError> {
            Ok(None)
        }
        async fn job_state(&self, _: i32) -> Result<(JobState, Vec<String>), PrinterError> {
            let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let s = if v.len() > 1 { v.remove(0) } else { v[0] };
            Ok((s, vec![if s == JobState::Stopped { "media-jam".into() } else { "none".into() }]))
        }
        async fn cancel(&self, _: i32) -> Result<(), PrinterError> {
            Ok(())
        }
        async fn find_job(&self, _: &str) -> Result<Option<i32>, PrinterError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn a_job_stopped_past_its_timeout_is_given_up_but_a_short_stop_is_not() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        // stuck in processing-stopped: given up after the stopped timeout, long before the job timeout
        let p = Scripted(std::sync::Mutex::new(vec![JobState::Processing, JobState::Stopped]));
        let t = Instant::now();
        let r = follow_job_until(&p, 1, ms(20), Duration::from_secs(30), ms(300)).await.expect("polled");
        assert_eq!(r.0, JobState::Stopped);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // stopped for a moment (paper refilled), then completed: followed to the end
        let mut states = vec![JobState::Processing];
        states.extend(std::iter::repeat_n(JobState::Stopped, 5));
        states.extend([JobState::Processing, JobState::Completed]);
        let p = Scripted(std::sync::Mutex::new(states));
        let r = follow_job_until(&p, 1, ms(20), Duration::from_secs(30), ms(300)).await.expect("polled");
        assert_eq!(r.0, JobState::Completed);
    }

    #[test]
    fn job_states_map_from_rfc_8011() {
        assert_eq!(JobState::from_ipp(3), Some(JobState::Pending));
        assert_eq!(JobState::from_ipp(4), Some(JobState::Held));
        assert_eq!(JobState::from_ipp(6), Some(JobState::Stopped));
        assert_eq!(JobState::from_ipp(9), Some(JobState::Completed));
        assert_eq!(JobState::from_ipp(10), None);
        assert!(JobState::Aborted.is_terminal());
        assert!(!JobState::Processing.is_terminal());
    }

    #[test]
    fn keywords_take_single_values_and_lists() {
        let one = IppValue::new_keyword("none").unwrap();
        assert_eq!(keywords(&one), vec!["none"]);
        let two = IppValue::Array(vec![
            IppValue::new_keyword("media-empty-report").unwrap(),
            IppValue::new_keyword("toner-low-report").unwrap(),
        ]);
        assert_eq!(
            keywords(&two),
            vec!["media-empty-report", "toner-low-report"]
        );
    }

    #[test]
    fn uris_are_checked() {
        let p = IppPrinter::new("ipp://127.0.0.1:8631/ipp/print").unwrap();
        assert_eq!(p.printer_uri.to_string(), "ipp://127.0.0.1:8631/ipp/print");
        let p = IppPrinter::new("http://printer.local:631/ipp/print").unwrap();
        assert_eq!(
            p.printer_uri.to_string(),
            "ipp://printer.local:631/ipp/print"
        );
        assert!(matches!(
            IppPrinter::new("ipps://x/ipp/print"),
            Err(PrinterError::Protocol(_))
        ));
        assert!(matches!(
            IppPrinter::new("lpd://x/q"),
            Err(PrinterError::Protocol(_))
        ));
        assert!(matches!(
            IppPrinter::new("not a uri"),
            Err(PrinterError::Protocol(_))
        ));
    }

    #[test]
    fn job_names_are_cut_on_char_boundaries() {
        assert_eq!(truncate_octets("abc", 255), "abc");
        let long = "証".repeat(100); // 300 bytes
        let cut = truncate_octets(&long, 255);
        assert!(cut.len() <= 255 && cut.len() == 255 / 3 * 3);
    }
}
