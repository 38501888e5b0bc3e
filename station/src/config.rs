//! Station configuration: hardware settings from a file (defaults run the
//! demo), then `SHOMEI_STATION_*` environment variables.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The backend's base URL: https, or http to a backend on this machine
    /// only. Several URLs of one service (backends behind different
    /// addresses), separated by commas: the station uses the first that
    /// answers and fails over when it cannot connect.
    pub backend_url: String,
    /// PEM file of the CA that signed the backend's certificate, beside the
    /// system's CAs (a university's own CA).
    pub backend_ca_file: Option<PathBuf>,
    /// Holds journal.sqlite (journal and outbox).
    pub state_dir: PathBuf,
    /// The station's credential and keys, kept apart from the journal and out
    /// of backups (default: `secrets` inside `state_dir`).
    pub secrets_dir: Option<PathBuf>,
    /// One-time code from the admin panel, used on first start only.
    pub enrolment_code: Option<String>,
    pub printer_uri: String,
    /// Substring of the PC/SC reader name; empty = the first reader.
    pub reader: String,
    /// The kiosk page; loopback only (the touch screen's browser is local).
    pub kiosk_listen: String,
    pub heartbeat_s: u64,
    pub printer_poll_s: u64,
    /// A kiosk screen left alone this long returns to the start.
    pub idle_timeout_s: u64,
    /// Longest wait for a print job to finish.
    pub job_timeout_s: u64,
    /// A job held up this long by a stopped or paused printer (the job
    /// `processing-stopped` or `printer-stopped`, or the printer out of paper,
    /// jammed, paused, a cover open) is given up: the user is told at once,
    /// the job cancelled and reported failed (reprintable elsewhere).
    pub stopped_timeout_s: u64,
    /// How often the offline copy (bundle and PDFs) is refreshed (P-3).
    pub offline_refresh_s: u64,
    /// Below this much free space (MiB) where the journal lives the station
    /// takes no new users: every step must be written before the next.
    pub min_free_disk_mb: u64,
    /// The transit e-money terminal's serial port (P-5); empty: none.
    pub terminal_port: String,
    pub terminal_baud: u32,
    /// How long the terminal may wait for the user's card before its answer
    /// counts as lost (then its status is asked).
    pub terminal_charge_timeout_s: u64,
    /// Shown on every error screen.
    pub contact_ja: String,
    pub contact_en: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend_url: "http://127.0.0.1:8080".into(),
            backend_ca_file: None,
            state_dir: "station-state".into(),
            secrets_dir: None,
            enrolment_code: None,
            printer_uri: "ipp://127.0.0.1:8631/ipp/print".into(),
            reader: String::new(),
            kiosk_listen: "127.0.0.1:8090".into(),
            heartbeat_s: 10,
            printer_poll_s: 5,
            idle_timeout_s: 60,
            job_timeout_s: 180,
            stopped_timeout_s: 5,
            offline_refresh_s: 60,
            min_free_disk_mb: 5,
            terminal_port: String::new(),
            terminal_baud: 9600,
            terminal_charge_timeout_s: 30,
            contact_ja: "お困りの際は教務課証明書窓口（内線 1234）へお問い合わせください。".into(),
            contact_en: "Need help? Ask the registrar's certificate desk (extension 1234).".into(),
        }
    }
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        fig.merge(Env::prefixed("SHOMEI_STATION_")).extract().map_err(Box::new)
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.secrets_dir.clone().unwrap_or_else(|| self.state_dir.join("secrets"))
    }

    /// The backends to talk to, in order of preference: `backend_url` holds
    /// one URL, or several separated by commas or spaces (one service behind
    /// several addresses: the station fails over between them).
    pub fn backend_urls(&self) -> Vec<String> {
        self.backend_url.split(|c: char| c == ',' || c.is_whitespace()).filter(|u| !u.is_empty()).map(|u| u.trim_end_matches('/').to_string()).collect()
    }

    pub fn validate(&self) -> Result<(), String> {
        let urls = self.backend_urls();
        if urls.is_empty() {
            return Err("backend_url: no URL given".into());
        }
        for url in &urls {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(format!("backend_url: {url:?} must start with http:// or https://"));
            }
            if url.starts_with("http://") && !shomei_shared::net::url_is_loopback(url) {
                return Err(format!("backend_url: {url:?} is plain http to another host; use https://"));
            }
        }
        if !self.printer_uri.starts_with("ipp://") && !self.printer_uri.starts_with("ipps://") && !self.printer_uri.starts_with("http") {
            return Err(format!("printer_uri: {:?} must be an ipp:// URI", self.printer_uri));
        }
        match self.kiosk_listen.parse::<std::net::SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => {}
            Ok(_) => return Err("kiosk_listen: the kiosk page must listen on loopback".into()),
            Err(_) => return Err(format!("kiosk_listen: {:?} is not an address", self.kiosk_listen)),
        }
        if !self.terminal_port.is_empty() && !(1200..=921_600).contains(&self.terminal_baud) {
            return Err(format!("terminal_baud: {} is not a serial speed (1200 to 921600)", self.terminal_baud));
        }
        if self.heartbeat_s == 0 || self.printer_poll_s == 0 || self.idle_timeout_s < 5 {
            return Err("heartbeat_s and printer_poll_s must be > 0, idle_timeout_s >= 5".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One backend URL, or several of one service: each checked like the one.
    #[test]
    fn backend_url_holds_one_address_or_several() {
        let mut c = Config { backend_url: "https://a.example.ac.jp/, https://b.example.ac.jp".into(), ..Config::default() };
        assert_eq!(c.backend_urls(), ["https://a.example.ac.jp", "https://b.example.ac.jp"]);
        assert_eq!(c.validate(), Ok(()));
        c.backend_url = "https://a.example.ac.jp http://b.example.ac.jp".into();
        assert!(c.validate().is_err_and(|e| e.contains("b.example.ac.jp") && e.contains("plain http")), "every address is checked");
        c.backend_url = " , ".into();
        assert!(c.validate().is_err(), "no address at all");
        c.backend_url = "http://127.0.0.1:8080".into();
        assert_eq!(c.backend_urls(), ["http://127.0.0.1:8080"]);
    }
}
