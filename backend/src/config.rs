//! Configuration: defaults that run out of the box, then a TOML file, then
//! `SHOMEI_BACKEND_` environment variables (`SHOMEI_BACKEND_HTTP__LISTEN=...`).

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub mail: MailConfig,
    pub documents: DocumentsConfig,
    pub stations: StationsConfig,
    /// Load the demo university, accounts and card on an empty database.
    pub demo_data: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// The origin users reach the backend at; links in mails start with it.
    pub public_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc`; the file is created and migrated at start.
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `host:port` of an SMTP server. Empty: mails stay in the outbox (demo default).
    pub smtp: String,
    pub from: String,
    /// Seconds between outbox passes when nothing wakes the worker.
    pub poll_interval_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentsConfig {
    /// TrueType fonts, preferred first; a character missing from one is drawn with the next.
    pub fonts: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StationsConfig {
    /// How long a station holds a print number while the user pays.
    pub reservation_s: i64,
    /// A station silent for longer is shown offline.
    pub offline_after_s: i64,
    /// Lifetime of an enrolment code.
    pub enrolment_code_ttl_s: i64,
    /// Wrong print numbers a station may send per minute before it is throttled.
    pub wrong_numbers_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            mail: MailConfig::default(),
            documents: DocumentsConfig::default(),
            stations: StationsConfig::default(),
            demo_data: true,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: "127.0.0.1:8080".into(), public_url: "http://localhost:8080".into() }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: "sqlite://shomei.sqlite?mode=rwc".into() }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig { smtp: String::new(), from: "shomei@localhost".into(), poll_interval_s: 5 }
    }
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            fonts: vec![
                "/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf".into(),
                "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf".into(),
            ],
        }
    }
}

impl Default for StationsConfig {
    fn default() -> Self {
        StationsConfig {
            reservation_s: 300,
            offline_after_s: 35,
            enrolment_code_ttl_s: 24 * 3600,
            wrong_numbers_per_minute: 10,
        }
    }
}

impl Config {
    /// Defaults, then the TOML file if given, then `SHOMEI_BACKEND_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        fig.merge(Env::prefixed("SHOMEI_BACKEND_").split("__")).extract().map_err(Box::new)
    }

    /// Refuses to start on settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("http.listen: {:?} is not an address like 127.0.0.1:8080", self.http.listen));
        }
        if !self.http.public_url.starts_with("http://") && !self.http.public_url.starts_with("https://") {
            return Err(format!("http.public_url: {:?} must start with http:// or https://", self.http.public_url));
        }
        if self.documents.fonts.is_empty() {
            return Err("documents.fonts: at least one TrueType font is needed".into());
        }
        if self.stations.reservation_s < 30 {
            return Err("stations.reservation_s: at least 30 seconds".into());
        }
        Ok(())
    }
}
