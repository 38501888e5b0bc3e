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
    pub orders: OrdersConfig,
    pub accounts: AccountsConfig,
    pub security: SecurityConfig,
    pub directory: crate::accounts::directory::DirectoryConfig,
    /// PayPal's REST API (default: the local simulator, `shomei-paypal`).
    pub paypal: crate::payments::paypal::PayPalConfig,
    /// Smart Pit (convenience-store cash; default: the local simulator `shomei-smartpit`).
    pub smartpit: crate::payments::smartpit::SmartPitConfig,
    /// The convenience stores' network-print service (default: the local simulator `shomei-storeprint`).
    pub storeprint: crate::payments::storeprint::StorePrintConfig,
    /// Load the demo university, accounts and card on an empty database
    /// (off by default; `deploy/demo` turns it on). A database created
    /// without it never gets demo data later.
    pub demo_data: bool,
    /// The desk users are told to turn to, at the foot of every page and on the help page.
    pub contact: ContactConfig,
}

/// The university's desk for users: shown at the foot of every page of the
/// portal and on the help page, in both languages (empty phone or e-mail: not shown).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContactConfig {
    pub desk_ja: String,
    pub desk_en: String,
    pub hours_ja: String,
    pub hours_en: String,
    pub phone: String,
    pub email: String,
}

impl Default for ContactConfig {
    fn default() -> Self {
        ContactConfig {
            desk_ja: "教務課 証明書窓口".into(),
            desk_en: "Registrar's Office, certificates desk".into(),
            hours_ja: "平日 9:00〜17:00（土日祝日・年末年始を除く）".into(),
            hours_en: "Weekdays 9:00-17:00 (closed at weekends, on public holidays and at New Year)".into(),
            phone: String::new(),
            email: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// The origin users reach the backend at; links in mails start with it.
    pub public_url: String,
    /// Bearer token that opens `/metrics` to other hosts (empty: loopback
    /// only, and nobody once a proxy is trusted).
    pub metrics_token: String,
    pub metrics_token_file: Option<PathBuf>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` headers are believed
    /// (addresses or CIDRs, e.g. `127.0.0.1`, `10.0.0.0/8`). Empty: the TCP
    /// peer is the client.
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies write: `x-forwarded-for` or `forwarded`
    /// (the other one, if present, came from the client and is ignored).
    pub forwarded_header: String,
    /// Serve https here (PEM files; SIGHUP reloads them). Empty: plain http,
    /// for a TLS-terminating proxy in front (or the demo on loopback).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// A client must send its request headers (and finish a TLS handshake) within this.
    pub header_read_timeout_s: u64,
    /// A whole request (upload included) must be answered within this; past it: 408.
    pub request_timeout_s: u64,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` (the file is created) or
    /// `postgres://user@host/db`; migrated at start.
    pub url: String,
    /// How long a background job's lease lasts without renewal: with several
    /// backends on one database, the time after one stops before another
    /// takes its background work over (each pass renews it).
    pub job_lease_s: i64,
}

/// The mail relay's settings live with the mail that uses them.
pub use crate::mail::MailConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentsConfig {
    /// TrueType fonts, preferred first; a character missing from one is drawn with the next.
    pub fonts: Vec<PathBuf>,
    /// Failpoint for tests: rendering an order's PDF waits until this file exists.
    pub failpoint_hold_render: Option<PathBuf>,
    /// Digital certificates: each university's document-signing key and the time-stamp authority.
    pub signing: crate::documents::signing::SigningConfig,
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
    /// Where station alerts go (offline, printer needs attention); empty: the panel only.
    pub alert_emails: Vec<String>,
    /// How often station conditions are checked for alerts.
    pub alert_check_s: u64,
    /// Heartbeats are stored in one transaction this often.
    pub heartbeat_flush_ms: u64,
    /// A station prints offline from a bundle at most this old (P-3).
    pub offline_max_age_s: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersConfig {
    /// Added to an order delivered by post (O-2), in yen: the default until
    /// the registrar sets the postage in the panel (stored per university).
    pub postage_yen: i64,
    /// Orders one user may place in a minute (each renders its certificates).
    pub per_user_per_minute: u32,
    /// Seconds between passes of the automatic refund of failed prints (ST-5:
    /// a paid print that failed and was not reprinted by its deadline is
    /// refunded from the next day). Each pass is idempotent.
    pub refund_check_s: u64,
    /// Seconds between passes that expire unpaid orders past their deadline.
    pub expiry_check_s: u64,
    /// Seconds before a graduation-day graduate whose try failed (the
    /// time-stamp authority did not answer, a service break) is tried again.
    pub cohort_retry_s: u64,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig { postage_yen: 140, per_user_per_minute: 5, refund_check_s: 600, expiry_check_s: 60, cohort_retry_s: 30 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Lifetime of a registration link (G-1).
    pub registration_link_ttl_s: i64,
    /// Lifetime of the other one-time links (address change, password reset, ...).
    pub link_ttl_s: i64,
    /// Lifetime of an initial password mailed on approval (G-4).
    pub initial_password_ttl_s: i64,
    pub session_idle_s: i64,
    pub staff_session_idle_s: i64,
    pub session_absolute_s: i64,
    /// Days the ID images of a decided application are kept.
    pub id_image_retention_days: i64,
    /// Where uploaded files live (sealed, generated names): never a served folder.
    pub upload_dir: PathBuf,
    /// Upload limits for one ID image.
    pub upload_max_bytes: usize,
    /// An ID photo needs no more (a phone's 12 Mpx photo passes).
    pub upload_max_pixels: u64,
    /// Images checked and re-encoded at once (each may take ~100 MB while
    /// decoded); more uploads at that moment are asked to send again.
    pub max_concurrent_images: usize,
    /// Failpoint for tests: checking an uploaded image waits until this file exists.
    pub failpoint_hold_image: Option<PathBuf>,
    /// Failpoint for tests: writing a reset link waits until this file exists.
    pub failpoint_hold_reset: Option<PathBuf>,
    pub password_policy: crate::accounts::password_policy::PasswordPolicy,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            registration_link_ttl_s: 24 * 3600,
            link_ttl_s: 3600,
            initial_password_ttl_s: 7 * 24 * 3600,
            session_idle_s: 30 * 60,
            staff_session_idle_s: 15 * 60,
            session_absolute_s: 12 * 3600,
            id_image_retention_days: 90,
            upload_dir: "shomei-files".into(),
            upload_max_bytes: 10 * 1024 * 1024,
            upload_max_pixels: 24_000_000,
            max_concurrent_images: 2,
            failpoint_hold_image: None,
            failpoint_hold_reset: None,
            password_policy: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// The key that seals personal data (32 bytes, hex or base64), or a file
    /// holding it. Neither given: a key file is made beside the database on
    /// first start (fine for the demo; production names its own).
    pub data_key: String,
    pub data_key_file: Option<PathBuf>,
    pub argon2: crate::accounts::passwords::HashCost,
    /// Password hashes computed at once at most; more requests get 429.
    pub max_concurrent_hashes: usize,
    /// First wait after repeated failed logins, doubling with each further failure.
    pub login_delay_ms: u64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            data_key: String::new(),
            data_key_file: None,
            argon2: Default::default(),
            max_concurrent_hashes: 8,
            login_delay_ms: 1000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            mail: MailConfig::default(),
            documents: DocumentsConfig::default(),
            stations: StationsConfig::default(),
            orders: OrdersConfig::default(),
            accounts: AccountsConfig::default(),
            security: SecurityConfig::default(),
            directory: crate::accounts::directory::DirectoryConfig::default(),
            paypal: crate::payments::paypal::PayPalConfig::default(),
            smartpit: crate::payments::smartpit::SmartPitConfig::default(),
            storeprint: crate::payments::storeprint::StorePrintConfig::default(),
            demo_data: false,
            contact: ContactConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://localhost:8080".into(),
            metrics_token: String::new(),
            metrics_token_file: None,
            trusted_proxies: Vec::new(),
            forwarded_header: "x-forwarded-for".into(),
            tls_cert_file: None,
            tls_key_file: None,
            header_read_timeout_s: 10,
            request_timeout_s: 120,
            max_connections: 1024,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: "sqlite://shomei.sqlite?mode=rwc".into(), job_lease_s: 60 }
    }
}


impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            fonts: vec![
                "/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf".into(),
                "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf".into(),
            ],
            failpoint_hold_render: None,
            signing: Default::default(),
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
            alert_emails: Vec::new(),
            alert_check_s: 10,
            heartbeat_flush_ms: 1000,
            offline_max_age_s: 6 * 3600,
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
        let mut config: Config = fig.merge(Env::prefixed("SHOMEI_BACKEND_").split("__")).extract().map_err(Box::new)?;
        config.read_secret_files().map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(config)
    }

    /// Every secret may come from a file instead (`*_file`), so no config file
    /// holding one has to be readable by others. A relative path is looked up
    /// in systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`) when set.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        read_secret(&mut self.http.metrics_token, &self.http.metrics_token_file, "http.metrics_token_file")?;
        read_secret(&mut self.mail.password, &self.mail.password_file, "mail.password_file")?;
        read_secret(&mut self.paypal.client_secret, &self.paypal.client_secret_file, "paypal.client_secret_file")?;
        self.paypal.client_secret_file = None;
        read_secret(&mut self.smartpit.secret, &self.smartpit.secret_file, "smartpit.secret_file")?;
        read_secret(&mut self.storeprint.api_key, &self.storeprint.api_key_file, "storeprint.api_key_file")?;
        read_secret(&mut self.storeprint.notice_secret, &self.storeprint.notice_secret_file, "storeprint.notice_secret_file")?;
        let ldap = &mut self.directory.ldap;
        read_secret(&mut ldap.bind_password, &ldap.bind_password_file, "directory.ldap.bind_password_file")?;
        for key in &mut self.documents.signing.keys {
            for f in [&mut key.key_file, &mut key.pkcs12_file, &mut key.pkcs12_password_file] {
                if let Some(p) = f.as_ref() {
                    *f = Some(credential_path(p));
                }
            }
        }
        for f in [&mut self.security.data_key_file, &mut self.http.tls_key_file] {
            if let Some(p) = f.as_ref() {
                *f = Some(credential_path(p));
            }
        }
        Ok(())
    }

    /// A production deployment: reached over https at a name other than this
    /// machine, or listening beyond loopback.
    pub fn is_production(&self) -> bool {
        let listen_loopback = self.http.listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
        (self.http.public_url.starts_with("https://") && !url_is_loopback(&self.http.public_url)) || !listen_loopback
    }

    /// What a production deployment must not run with, naming the key: the
    /// demo data, a secret that is a built-in simulator default (published in
    /// this repository), a payment provider on loopback (a simulator).
    pub fn production_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.demo_data {
            out.push("demo_data: must be false (the demo staff login and TOTP secret are published)".to_string());
        }
        let defaults = Config::default();
        let secrets = [
            ("paypal.client_secret", &self.paypal.client_secret, &defaults.paypal.client_secret),
            ("paypal.webhook_id", &self.paypal.webhook_id, &defaults.paypal.webhook_id),
            ("smartpit.secret", &self.smartpit.secret, &defaults.smartpit.secret),
            ("storeprint.api_key", &self.storeprint.api_key, &defaults.storeprint.api_key),
            ("storeprint.notice_secret", &self.storeprint.notice_secret, &defaults.storeprint.notice_secret),
        ];
        for (key, value, default) in secrets {
            if value == default {
                out.push(format!("{key}: is the simulator's published default; set your own"));
            }
        }
        let urls = [
            ("paypal.base_url", &self.paypal.base_url),
            ("smartpit.base_url", &self.smartpit.base_url),
            ("storeprint.base_url", &self.storeprint.base_url),
        ];
        for (key, url) in urls {
            if url_is_loopback(url) {
                out.push(format!("{key}: {url} is on this machine (a simulator); point it at the provider"));
            }
        }
        let tsa = &self.documents.signing.tsa_url;
        if !tsa.is_empty() && url_is_loopback(tsa) {
            out.push(format!("documents.signing.tsa_url: {tsa} is on this machine (the simulated time-stamp authority); point it at a real one"));
        }
        if !self.documents.signing.keys.is_empty() && self.documents.signing.tsa_trust_file.is_none() {
            out.push("documents.signing.tsa_trust_file: name the time-stamp authority's certificate or its CA: a time-stamp from anyone else must be refused".to_string());
        }
        out
    }
}

pub use shomei_shared::net::url_is_loopback;

/// A `*_file` path: relative ones are systemd credentials.
pub fn credential_path(path: &Path) -> PathBuf {
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) if path.is_relative() => Path::new(&dir).join(path),
        _ => path.to_path_buf(),
    }
}

fn read_secret(value: &mut String, file: &Option<PathBuf>, key: &str) -> Result<(), String> {
    if let Some(f) = file {
        let path = credential_path(f);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{key}: {}: {e}", path.display()))?;
        *value = text.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err(format!("{key}: {} is empty", path.display()));
        }
    }
    Ok(())
}

impl Config {

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
        if !crate::failpoint::COMPILED_IN {
            for (key, set) in [
                ("documents.failpoint_hold_render", self.documents.failpoint_hold_render.is_some()),
                ("accounts.failpoint_hold_image", self.accounts.failpoint_hold_image.is_some()),
                ("accounts.failpoint_hold_reset", self.accounts.failpoint_hold_reset.is_some()),
            ] {
                if set {
                    return Err(format!("{key}: this build has no test failpoints (they are only for the test suite)"));
                }
            }
        }
        let a = &self.security.argon2;
        if a.memory_kib < 19 * 1024 || a.iterations < 2 || a.parallelism != 1 {
            return Err("security.argon2: at least memory_kib = 19456, iterations = 2, parallelism = 1".into());
        }
        if self.accounts.password_policy.min_len < 8 {
            return Err("accounts.password_policy.min_len: at least 8".into());
        }
        self.paypal.validate().map_err(|e| format!("paypal: {e}"))?;
        if !self.mail.smtp.is_empty() {
            match self.mail.tls_mode() {
                "starttls" | "tls" => {}
                "none" if url_is_loopback(&format!("smtp://{}", self.mail.relay().0)) => {}
                "none" => return Err("mail.tls: a relay on another host needs starttls or tls".into()),
                other => return Err(format!("mail.tls: {other:?} is not starttls, tls or none")),
            }
            if !self.mail.username.is_empty() && self.mail.tls_mode() == "none" {
                return Err("mail.username: SMTP AUTH only over TLS (set mail.tls)".into());
            }
        }
        if self.directory.kind == "ldap" {
            self.directory.ldap.validate()?;
        }
        if self.stations.reservation_s < 30 {
            return Err("stations.reservation_s: at least 30 seconds".into());
        }
        if self.http.tls_cert_file.is_some() != self.http.tls_key_file.is_some() {
            return Err("http.tls_cert_file and http.tls_key_file: set both (or neither, behind a proxy)".into());
        }
        if self.http.header_read_timeout_s == 0 || self.http.request_timeout_s == 0 || self.http.max_connections == 0 {
            return Err("http.header_read_timeout_s, http.request_timeout_s and http.max_connections must be at least 1".into());
        }
        if !["x-forwarded-for", "forwarded"].contains(&self.http.forwarded_header.to_ascii_lowercase().as_str()) {
            return Err(format!("http.forwarded_header: {:?} is neither x-forwarded-for nor forwarded", self.http.forwarded_header));
        }
        for p in &self.http.trusted_proxies {
            shomei_shared::net::Cidr::parse(p).map_err(|e| format!("http.trusted_proxies: {p:?}: {e}"))?;
        }
        if self.is_production() {
            let problems = self.production_problems();
            if !problems.is_empty() {
                return Err(format!(
                    "refusing to start in production (an https public_url, or a listen address beyond loopback) with:\n  {}",
                    problems.join("\n  ")
                ));
            }
        }
        Ok(())
    }
}
