//! Convenience-store print (O-3): the network-print service of the stores'
//! multifunction printers (Sharp's Network Print Service at FamilyMart and
//! Lawson in the manual). It publishes no open API: this client is written to
//! the API shomei assumes (docs/storeprint-api.md); the local simulator
//! `shomei-storeprint` implements it, and `storeprint.base_url` picks which.
//!
//! After an order is paid its PDF is registered with the service, which
//! answers with a user number (and a print reservation number); the user types
//! it at any store's printer before the print deadline and pays the store's
//! printing fee there. The service notices shomei when the job was printed.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorePrintConfig {
    pub base_url: String,
    /// Bearer key of shomei's account at the service.
    pub api_key: String,
    pub api_key_file: Option<std::path::PathBuf>,
    /// Shared secret that signs the service's print notices.
    pub notice_secret: String,
    pub notice_secret_file: Option<std::path::PathBuf>,
    pub timeout_s: u64,
    /// How often registrations that failed (service down) are tried again.
    pub retry_s: u64,
}

impl Default for StorePrintConfig {
    fn default() -> Self {
        StorePrintConfig {
            base_url: "http://127.0.0.1:8096".into(),
            api_key: "shomei-storeprint-key".into(),
            api_key_file: None,
            notice_secret: "shomei-storeprint-secret".into(),
            notice_secret_file: None,
            timeout_s: 30,
            retry_s: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorePrintError {
    #[error("the store print service could not be reached or did not answer: {0}")]
    Unavailable(String),
    #[error("the store print service refused the request: {0}")]
    Refused(String),
}

/// What the service answers for a registered document.
#[derive(Debug, Clone, Deserialize)]
pub struct Registration {
    pub file_id: String,
    /// Typed at the store's printer (10 characters, letters and digits).
    pub user_number: String,
    /// The same document's print reservation number (8 digits).
    pub reservation_number: String,
    /// Last day it prints, `YYYY-MM-DD` (Japan time).
    pub expires_on: String,
}

/// A print notice from the service (already verified).
#[derive(Debug, Clone, Deserialize)]
pub struct Notice {
    pub notice_id: String,
    pub file_id: String,
    pub event: String,
    #[serde(default)]
    pub pages: i64,
}

/// True when `signature` is hex(HMAC-SHA256(secret, body)) (constant time).
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    hex::decode(signature.trim()).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
}

/// The stores' network-print service behind one interface: the client below
/// speaks the assumed API; an adapter to another vendor implements this too.
pub trait StorePrintService: Send + Sync {
    /// Registers a PDF of `pages` pages until `expires_on` (idempotent by `key`).
    fn register<'a>(&'a self, reference: &'a str, pdf: &'a [u8], pages: i64, expires_on: &'a str, key: &'a str) -> ServiceFuture<'a, Registration>;
    /// Withdraws a registered document: its numbers stop working.
    fn withdraw<'a>(&'a self, file_id: &'a str) -> ServiceFuture<'a, ()>;
    /// The secret that signs the service's print notices.
    fn notice_secret(&self) -> &str;
}

pub type ServiceFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StorePrintError>> + Send + 'a>>;

impl StorePrintService for StorePrintClient {
    fn register<'a>(&'a self, reference: &'a str, pdf: &'a [u8], pages: i64, expires_on: &'a str, key: &'a str) -> ServiceFuture<'a, Registration> {
        Box::pin(StorePrintClient::register(self, reference, pdf, pages, expires_on, key))
    }

    fn withdraw<'a>(&'a self, file_id: &'a str) -> ServiceFuture<'a, ()> {
        Box::pin(StorePrintClient::withdraw(self, file_id))
    }

    fn notice_secret(&self) -> &str {
        &self.cfg.notice_secret
    }
}

pub struct StorePrintClient {
    cfg: StorePrintConfig,
    http: reqwest::Client,
}

impl StorePrintClient {
    pub fn new(cfg: StorePrintConfig) -> StorePrintClient {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(cfg.timeout_s.max(1))).build().unwrap_or_default();
        StorePrintClient { cfg, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.base_url.trim_end_matches('/'))
    }

    /// Registers a PDF for `pages` A4 pages printed once, until `expires_on`;
    /// the same `key` returns the same registration (a retry never registers
    /// a second document).
    pub async fn register(&self, reference: &str, pdf: &[u8], pages: i64, expires_on: &str, key: &str) -> Result<Registration, StorePrintError> {
        let body = serde_json::json!({
            "reference": reference,
            "file_name": format!("{reference}.pdf"),
            "content_base64": base64::engine::general_purpose::STANDARD.encode(pdf),
            "pages": pages,
            "paper": "A4",
            "color": "color",
            "copies": 1,
            "expires_on": expires_on,
        });
        let r = self
            .http
            .post(self.url("/v1/documents"))
            .bearer_auth(&self.cfg.api_key)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .map_err(|e| StorePrintError::Unavailable(e.to_string()))?;
        let status = r.status();
        if status.is_server_error() {
            return Err(StorePrintError::Unavailable(status.to_string()));
        }
        let v: serde_json::Value = r.json().await.map_err(|e| StorePrintError::Unavailable(e.to_string()))?;
        if !status.is_success() {
            return Err(StorePrintError::Refused(format!("{status}: {}", v["message"].as_str().unwrap_or(""))));
        }
        let reg: Registration = serde_json::from_value(v).map_err(|e| StorePrintError::Refused(format!("unexpected answer: {e}")))?;
        let ok_user = reg.user_number.len() == 10 && reg.user_number.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        let ok_reservation = reg.reservation_number.len() == 8 && reg.reservation_number.chars().all(|c| c.is_ascii_digit());
        if !ok_user || !ok_reservation || reg.file_id.is_empty() {
            return Err(StorePrintError::Refused("no user number in the answer".into()));
        }
        tracing::info!(reference, file_id = %reg.file_id, "document registered for convenience-store print");
        Ok(reg)
    }

    /// Withdraws a registered document (a refund): its numbers stop working.
    /// A document already printed or gone is not an error.
    pub async fn withdraw(&self, file_id: &str) -> Result<(), StorePrintError> {
        let r = self
            .http
            .delete(self.url(&format!("/v1/documents/{}", urlencoding::encode(file_id))))
            .bearer_auth(&self.cfg.api_key)
            .send()
            .await
            .map_err(|e| StorePrintError::Unavailable(e.to_string()))?;
        match r.status().as_u16() {
            200..=299 | 404 | 409 | 410 => Ok(()),
            s if s >= 500 => Err(StorePrintError::Unavailable(r.status().to_string())),
            _ => Err(StorePrintError::Refused(r.status().to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_verify_only_with_the_right_secret_and_body() {
        let body = br#"{"notice_id":"P-1"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("key");
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        assert!(verify("s3cret", body, &sig));
        assert!(!verify("other", body, &sig));
        assert!(!verify("s3cret", br#"{"notice_id":"P-2"}"#, &sig));
        assert!(!verify("s3cret", body, "not hex"));
    }
}
