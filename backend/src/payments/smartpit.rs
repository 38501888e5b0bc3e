//! Smart Pit (O-4, convenience-store cash): a client for the API shomei
//! assumes (docs/smartpit-api.md; Smart Pit publishes none) and the check of
//! its payment notices. The local simulator `shomei-smartpit` implements it.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmartPitConfig {
    pub base_url: String,
    pub merchant_id: String,
    /// The shared secret that signs requests and notices.
    pub secret: String,
    /// Read the secret from this file instead (relative: a systemd credential).
    pub secret_file: Option<std::path::PathBuf>,
    pub timeout_s: u64,
}

impl Default for SmartPitConfig {
    fn default() -> Self {
        SmartPitConfig {
            base_url: "http://127.0.0.1:8098".into(),
            merchant_id: "shomei-demo".into(),
            secret: "shomei-smartpit-secret".into(),
            secret_file: None,
            timeout_s: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmartPitError {
    #[error("Smart Pit could not be reached or did not answer: {0}")]
    Unavailable(String),
    #[error("Smart Pit refused the request: {0}")]
    Refused(String),
}

fn sign(secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// True when `signature` is the HMAC of `body` under our secret (constant time).
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    hex::decode(signature.trim()).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
}

pub struct SmartPitClient {
    cfg: SmartPitConfig,
    http: reqwest::Client,
}

/// A payment notice from Smart Pit.
#[derive(Debug, Clone, Deserialize)]
pub struct Notice {
    pub notice_id: String,
    pub payment_number: String,
    pub amount: i64,
}

impl SmartPitClient {
    pub fn new(cfg: SmartPitConfig) -> SmartPitClient {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(cfg.timeout_s.max(1))).build().unwrap_or_default();
        SmartPitClient { cfg, http }
    }

    pub fn secret(&self) -> &str {
        &self.cfg.secret
    }

    /// Issues the payment number for `reference` (idempotent by `key`).
    pub async fn issue(&self, reference: &str, amount: i64, due: &str, name_kana: &str, key: &str) -> Result<String, SmartPitError> {
        let body = serde_json::json!({ "reference": reference, "amount": amount, "due": due, "name_kana": name_kana }).to_string();
        let r = self
            .http
            .post(format!("{}/v1/payments", self.cfg.base_url.trim_end_matches('/')))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .header("x-smartpit-merchant", &self.cfg.merchant_id)
            .header("x-smartpit-signature", sign(&self.cfg.secret, body.as_bytes()))
            .body(body)
            .send()
            .await
            .map_err(|e| SmartPitError::Unavailable(e.to_string()))?;
        let status = r.status();
        let v: serde_json::Value = r.json().await.map_err(|e| SmartPitError::Unavailable(e.to_string()))?;
        if !status.is_success() {
            return Err(SmartPitError::Refused(format!("{status}: {}", v["message"].as_str().unwrap_or(""))));
        }
        let n = v["payment_number"].as_str().unwrap_or("").to_string();
        tracing::info!(reference, "Smart Pit payment number issued");
        if n.len() == 13 && n.chars().all(|c| c.is_ascii_digit()) {
            Ok(n)
        } else {
            Err(SmartPitError::Refused("no payment number in the answer".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_verify_only_with_the_right_secret_and_body() {
        let body = br#"{"notice_id":"N-1"}"#;
        let sig = sign("s3cret", body);
        assert!(verify("s3cret", body, &sig));
        assert!(!verify("other", body, &sig));
        assert!(!verify("s3cret", br#"{"notice_id":"N-2"}"#, &sig));
        assert!(!verify("s3cret", body, "zz"));
    }
}
