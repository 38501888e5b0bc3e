//! The university's directory, which checks enrolled students' user IDs and
//! passwords (S-1): the roster the registrar imports (built-in default) or an
//! LDAP server. One trait, chosen by configuration.

use crate::store;
use serde::{Deserialize, Serialize};
use crate::store::Pool;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What the directory knows of a student.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectoryEntry {
    pub user_id: String,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub student_no: String,
    pub faculty_code: String,
    pub department_code: String,
    pub email: Option<String>,
    /// The student's campus card (IDm / UID, upper-case hex) when the directory knows it:
    /// linked to the account at first login.
    pub card_uid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The hash pool is full: try again in a moment (429).
    #[error("{0}")]
    Busy(crate::error::AppError),
    /// The university chosen is not on this service.
    #[error("no such university")]
    NoSuchUniversity,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Directory: Send + Sync {
    /// Some(entry) when the user ID and password are right; None otherwise
    /// (never says which part was wrong).
    fn verify<'a>(&'a self, user_id: &'a str, password: &'a str) -> BoxFuture<'a, Result<Option<DirectoryEntry>, DirectoryError>>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// "roster" (built-in, imported CSV) or "ldap".
    pub kind: String,
    pub ldap: LdapConfig,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig { kind: "roster".into(), ldap: LdapConfig::default() }
    }
}

/// The university the deployment's own `[directory]` serves unless the
/// platform operator sets another for it (the first one installed).
pub const FIRST_UNIVERSITY: i64 = 1;

/// Every university's directory: its own roster or its own LDAP server, as
/// the platform operator set it. Read at each login, so a change made on any
/// backend applies to the next login, with no restart.
pub struct Directories {
    pool: Pool,
    hasher: crate::accounts::passwords::Hasher,
    seal: Arc<crate::sealed::SealKey>,
    /// The deployment's `[directory]`: the first university's unless set in the panel.
    default: DirectoryConfig,
}

/// What a university's directory is, as the panel shows it.
#[derive(Debug, Clone)]
pub enum DirectorySource {
    /// The roster its registrar imports.
    Roster,
    /// Its LDAP server, set in the panel (the bind password sealed apart).
    Ldap(LdapConfig),
    /// The deployment's configuration file (`[directory]`), the first university only.
    Config(DirectoryConfig),
}

/// What the platform operator sets for a university's directory.
pub enum DirectoryChoice {
    Roster,
    /// The LDAP settings; `bind_password` None keeps the one stored.
    Ldap { cfg: LdapConfig, bind_password: Option<String> },
}

/// Checks and stores a university's directory (the bind password sealed
/// apart from the settings, never in clear). Err: what is wrong, in both
/// languages; Ok(false): no such university.
pub async fn save_directory(pool: &Pool, seal: &crate::sealed::SealKey, university: i64, choice: DirectoryChoice) -> Result<Result<bool, String>, crate::error::AppError> {
    let mut tx = store::begin_write(pool).await?;
    let Some(old) = store::university_directory(&mut tx, university).await? else { return Ok(Ok(false)) };
    let settings = match choice {
        DirectoryChoice::Roster => store::DirectorySettings { directory_kind: Some("roster".into()), ..old },
        DirectoryChoice::Ldap { mut cfg, bind_password } => {
            if let Err(e) = cfg.check_panel() {
                return Ok(Err(e));
            }
            cfg.bind_password = String::new();
            cfg.bind_password_file = None;
            cfg.ca_file = None;
            let sealed = match bind_password {
                Some(p) if p.is_empty() => None,
                Some(p) => Some(seal.seal_str(&p, &bind_password_aad(university)).map_err(|e| crate::error::AppError::Internal(e.into()))?),
                None => old.directory_bind_sealed,
            };
            let json = serde_json::to_string(&cfg).map_err(|e| crate::error::AppError::Internal(e.into()))?;
            store::DirectorySettings { directory_kind: Some("ldap".into()), directory_ldap: json, directory_bind_sealed: sealed }
        }
    };
    let found = store::set_university_directory(&mut tx, university, &settings).await?;
    tx.commit().await?;
    Ok(Ok(found))
}

/// The additional data a sealed bind password is tied to.
pub fn bind_password_aad(university: i64) -> String {
    format!("university:{university}:directory.bind_password")
}

impl Directories {
    pub fn new(default: DirectoryConfig, pool: Pool, hasher: crate::accounts::passwords::Hasher, seal: Arc<crate::sealed::SealKey>) -> Self {
        Directories { pool, hasher, seal, default }
    }

    /// Where a university's students are checked (None: no such university).
    pub async fn source(&self, university: i64) -> Result<Option<DirectorySource>, DirectoryError> {
        let unavailable = |e: sqlx::Error| DirectoryError::Unavailable(e.to_string());
        let mut c = self.pool.acquire().await.map_err(unavailable)?;
        let Some(s) = store::university_directory(&mut c, university).await.map_err(unavailable)? else { return Ok(None) };
        Ok(Some(match s.directory_kind.as_deref() {
            Some("ldap") => {
                let mut cfg: LdapConfig =
                    serde_json::from_str(&s.directory_ldap).map_err(|e| DirectoryError::Unavailable(format!("university {university}'s LDAP settings: {e}")))?;
                cfg.bind_password = match s.directory_bind_sealed.as_deref() {
                    Some(sealed) => self
                        .seal
                        .open_str(sealed, &bind_password_aad(university))
                        .map_err(|e| DirectoryError::Unavailable(format!("university {university}'s bind password: {e}")))?,
                    None => String::new(),
                };
                DirectorySource::Ldap(cfg)
            }
            Some(_) => DirectorySource::Roster,
            None if university == FIRST_UNIVERSITY => DirectorySource::Config(self.default.clone()),
            None => DirectorySource::Roster,
        }))
    }

    /// The directory that checks a university's students.
    pub async fn of(&self, university: i64) -> Result<Arc<dyn Directory>, DirectoryError> {
        let roster = || -> Arc<dyn Directory> { Arc::new(RosterDirectory { pool: self.pool.clone(), hasher: self.hasher.clone(), university }) };
        Ok(match self.source(university).await? {
            None => return Err(DirectoryError::NoSuchUniversity),
            Some(DirectorySource::Ldap(cfg)) => Arc::new(LdapDirectory::new(cfg)),
            Some(DirectorySource::Config(cfg)) if cfg.kind == "ldap" => Arc::new(LdapDirectory::new(cfg.ldap)),
            Some(_) => roster(),
        })
    }
}

/// A user ID as stored for an account: the directory's own spelling, trimmed
/// and lower-cased (directories match user IDs without regard to case).
pub fn normalise_uid(uid: &str) -> String {
    uid.trim().to_lowercase()
}

impl LdapConfig {
    /// The checks of a directory set in the panel, in both languages.
    pub fn check_panel(&self) -> Result<(), String> {
        self.validate().map_err(|_| {
            "LDAPサーバは ldaps:// か、StartTLS 付きの ldap:// で指定してください（平文の ldap:// はこのサーバ上のものだけ）。 / Give the server as ldaps://, or ldap:// with StartTLS (plain ldap:// only to a server on this machine).".to_string()
        })?;
        if self.base_dn.trim().is_empty() || !self.user_filter.contains("{user}") {
            return Err("検索ベースと、{user} を含む検索フィルタを入力してください。 / Give the search base and a filter with {user} in it.".into());
        }
        let attrs = [&self.attr_uid, &self.attr_name_kanji, &self.attr_name_kana, &self.attr_name_roman, &self.attr_student_no, &self.attr_faculty, &self.attr_department];
        if attrs.iter().any(|a| a.trim().is_empty() || a.contains(|c: char| c.is_whitespace())) {
            return Err("属性名を空白なしで入力してください（カードIDとメール以外は必須）。 / Give each attribute name without spaces (all but the card ID and e-mail are needed).".into());
        }
        if !self.ca_pem.trim().is_empty() {
            tls_client_config_pem(self.ca_pem.as_bytes()).map_err(|e| format!("CA証明書（PEM）を読めません。 / The CA certificate (PEM) cannot be read: {e}"))?;
        }
        if !(1..=60).contains(&self.timeout_s) {
            return Err("タイムアウトは1〜60秒にしてください。 / The timeout is 1 to 60 seconds.".into());
        }
        Ok(())
    }

    /// TLS on every link: `ldaps://`, or StartTLS, unless the directory is on this machine.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.url.to_ascii_lowercase();
        if !url.starts_with("ldap://") && !url.starts_with("ldaps://") {
            return Err(format!("directory.ldap.url: {:?} must start with ldap:// or ldaps://", self.url));
        }
        if url.starts_with("ldap://") && !self.starttls && !shomei_shared::net::url_is_loopback(&self.url) {
            return Err("directory.ldap.url: a directory on another host needs ldaps:// or directory.ldap.starttls = true".into());
        }
        Ok(())
    }
}

/// The roster in the database; passwords are Argon2id hashes, checked in the
/// backend's one hash pool (a burst of logins waits or gets 429, never runs
/// hundreds of hashes at once).
pub struct RosterDirectory {
    pool: Pool,
    hasher: crate::accounts::passwords::Hasher,
    /// Whose roster.
    university: i64,
}

impl Directory for RosterDirectory {
    fn verify<'a>(&'a self, user_id: &'a str, password: &'a str) -> BoxFuture<'a, Result<Option<DirectoryEntry>, DirectoryError>> {
        Box::pin(async move {
            let unavailable = |e: sqlx::Error| DirectoryError::Unavailable(e.to_string());
            let mut c = self.pool.acquire().await.map_err(unavailable)?;
            let row = store::roster_entry(&mut c, self.university, user_id.trim()).await.map_err(unavailable)?;
            drop(c);
            let hash = row.as_ref().map(|r| r.password_hash.clone());
            // an unknown ID costs the same hash as a known one
            let checked = self.hasher.verify_all(vec![(password.to_string(), hash)]).await.map_err(DirectoryError::Busy)?;
            let ok = checked.first().is_some_and(|c| c.ok);
            Ok(row.filter(|_| ok && !password.is_empty()).map(|r| DirectoryEntry {
                user_id: normalise_uid(&r.user_id),
                name_kanji: r.name_kanji,
                name_kana: r.name_kana,
                name_roman: r.name_roman,
                student_no: r.student_no,
                faculty_code: r.faculty_code,
                department_code: r.department_code,
                email: Some(r.email).filter(|e| !e.is_empty()),
                card_uid: Some(r.card_uid).filter(|c| !c.is_empty()),
            }))
        })
    }
}

// ---------------------------------------------------------------- the roster CSV

/// The roster file's columns (header row required; `password` may stand in
/// for `password_hash`: a plain initial password, hashed on import; `email`
/// and `card_id`, the student's campus card, are optional columns).
pub const ROSTER_COLUMNS: [&str; 10] =
    ["user_id", "password_hash", "name_kanji", "name_kana", "name_roman", "student_no", "faculty_code", "department_code", "email", "card_id"];

#[derive(Debug, Clone, PartialEq)]
pub struct RosterRow {
    pub user_id: String,
    pub password_hash: Option<String>,
    pub password: Option<String>,
    pub name_kanji: String,
    pub name_kana: String,
    pub name_roman: String,
    pub student_no: String,
    pub faculty_code: String,
    pub department_code: String,
    pub email: Option<String>,
    /// The campus card's ID, normalised (upper-case hex), when the file gives one.
    pub card_id: Option<String>,
}

/// One bad row: its line in the file as a person counts (header = line 1).
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub line: usize,
    pub column: Option<String>,
    pub ja: String,
    pub en: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "{}行目（{c}）: {} / line {} ({c}): {}", self.line, self.ja, self.line, self.en),
            None => write!(f, "{}行目: {} / line {}: {}", self.line, self.ja, self.line, self.en),
        }
    }
}

fn row_err(line: usize, column: Option<&str>, ja: &str, en: &str) -> RowError {
    RowError { line, column: column.map(str::to_string), ja: ja.into(), en: en.into() }
}

/// The 1-based line of a record at a byte offset. (After CRLF the csv crate
/// points at the '\n' itself, so that byte is counted too.)
pub(crate) fn line_at(text: &str, byte: usize) -> usize {
    text.as_bytes()[..(byte + 1).min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Parses and checks every row; any bad row means nothing is imported, and
/// every bad row is reported (not just the first).
pub fn parse_roster(text: &str) -> Result<Vec<RosterRow>, Vec<RowError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rd = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = match rd.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(_) => return Err(vec![row_err(1, None, "見出し行を読めません。", "the header row cannot be read")]),
    };
    let mut errors = Vec::new();
    let required = ["user_id", "name_kanji", "name_kana", "name_roman", "student_no", "faculty_code", "department_code"];
    for r in required {
        if !headers.iter().any(|h| h == r) {
            errors.push(row_err(1, Some(r), "必要な列がありません。", "this column is missing"));
        }
    }
    let has_hash = headers.iter().any(|h| h == "password_hash");
    let has_plain = headers.iter().any(|h| h == "password");
    if has_hash == has_plain {
        errors.push(row_err(1, Some("password_hash"), "password_hash か password のどちらか一方の列が必要です。", "give exactly one of password_hash or password"));
    }
    for h in &headers {
        if !ROSTER_COLUMNS.contains(&h.as_str()) && h != "password" {
            errors.push(row_err(1, Some(h), "知らない列です。", "unknown column"));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let col = |name: &str| headers.iter().position(|h| h == name);
    let mut rows = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let mut cards_seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for rec in rd.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| line_at(text, p.byte() as usize)).unwrap_or(0);
                errors.push(row_err(line, None, "行を読めません（文字コードや引用符を確認してください）。", "the row cannot be read (check quotes and encoding)"));
                continue;
            }
        };
        // counted from the byte offset: the csv crate's own line count is off after CRLF (Excel)
        let line = rec.position().map(|p| line_at(text, p.byte() as usize)).unwrap_or(0);
        if rec.len() != headers.len() {
            let hint = if has_hash && rec.len() > headers.len() { ("（password_hash は \"...\" で囲んでください）", " (put password_hash in double quotes: it contains commas)") } else { ("", "") };
            errors.push(row_err(
                line,
                None,
                &format!("列の数が{}個です（見出しは{}個）{}。", rec.len(), headers.len(), hint.0),
                &format!("{} columns where the header has {}{}", rec.len(), headers.len(), hint.1),
            ));
            continue;
        }
        let get = |name: &str| col(name).and_then(|i| rec.get(i)).map(|s| s.trim().to_string()).unwrap_or_default();
        let before = errors.len();
        for r in required {
            if get(r).is_empty() {
                errors.push(row_err(line, Some(r), "値がありません。", "no value"));
            }
        }
        let uid = get("user_id");
        if !uid.is_empty() && (uid.len() > 64 || uid.chars().any(|c| c.is_whitespace() || c.is_control())) {
            errors.push(row_err(line, Some("user_id"), "空白を含まない64文字以内にしてください。", "at most 64 characters, no spaces"));
        }
        if let Some(first) = seen.insert(uid.clone(), line) {
            if !uid.is_empty() {
                errors.push(row_err(line, Some("user_id"), &format!("{first}行目と重複しています。"), &format!("the same as line {first}")));
            }
        }
        let (hash, plain) = (get("password_hash"), get("password"));
        if has_hash {
            let ok = argon2::PasswordHash::new(&hash).is_ok_and(|h| h.algorithm.as_str() == "argon2id");
            if !ok {
                errors.push(row_err(line, Some("password_hash"), "Argon2id のハッシュ（$argon2id$...）ではありません。", "not an Argon2id hash ($argon2id$...)"));
            }
        } else if plain.chars().count() < 8 {
            errors.push(row_err(line, Some("password"), "8文字以上の初期パスワードが必要です。", "an initial password of at least 8 characters is needed"));
        }
        let email = get("email");
        if !email.is_empty() && !crate::mail::valid_email(&email) {
            errors.push(row_err(line, Some("email"), "メールアドレスの形式が正しくありません。", "not an e-mail address"));
        }
        let card_typed = get("card_id");
        let card_id = shomei_shared::api::normalize_card_uid(&card_typed);
        if !card_typed.is_empty() && card_id.is_none() {
            errors.push(row_err(
                line,
                Some("card_id"),
                "カードIDは16桁（または8桁・14桁）の英数字（0-9、A-F）で入力してください。",
                "the card ID is 16 (or 8 or 14) characters 0-9 and A-F",
            ));
        }
        if let Some(card) = &card_id {
            if let Some(first) = cards_seen.insert(card.clone(), line) {
                errors.push(row_err(line, Some("card_id"), &format!("{first}行目と同じカードです。"), &format!("the same card as line {first}")));
            }
        }
        if errors.len() > before {
            continue;
        }
        rows.push(RosterRow {
            user_id: uid,
            password_hash: has_hash.then_some(hash),
            password: has_plain.then_some(plain),
            name_kanji: get("name_kanji"),
            name_kana: get("name_kana"),
            name_roman: get("name_roman"),
            student_no: get("student_no"),
            faculty_code: get("faculty_code"),
            department_code: get("department_code"),
            email: Some(email).filter(|e| !e.is_empty()),
            card_id,
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------- LDAP

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// `ldaps://host:636`, or `ldap://host:389` with `starttls = true`;
    /// plain `ldap://` only to a directory on this machine.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// PEM file of the CA that signed the directory's certificate (empty: the system's CAs).
    pub ca_file: Option<std::path::PathBuf>,
    /// The same CA as PEM text (a directory set in the panel); used before `ca_file`.
    pub ca_pem: String,
    /// The attribute holding the user ID as the directory spells it.
    pub attr_uid: String,
    pub base_dn: String,
    /// `{user}` is replaced by the escaped user ID.
    pub user_filter: String,
    /// A service account for the search; anonymous when empty.
    pub bind_dn: String,
    pub bind_password: String,
    /// Read the bind password from this file instead (relative: a systemd credential).
    pub bind_password_file: Option<std::path::PathBuf>,
    pub attr_name_kanji: String,
    pub attr_name_kana: String,
    pub attr_name_roman: String,
    pub attr_student_no: String,
    pub attr_faculty: String,
    pub attr_department: String,
    pub attr_email: String,
    /// The attribute holding the student's campus card ID (IDm / UID); empty: not asked.
    pub attr_card_id: String,
    pub timeout_s: u64,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: "ldap://127.0.0.1:389".into(),
            starttls: false,
            ca_file: None,
            ca_pem: String::new(),
            attr_uid: "uid".into(),
            base_dn: "dc=campus,dc=test".into(),
            user_filter: "(uid={user})".into(),
            bind_dn: String::new(),
            bind_password: String::new(),
            bind_password_file: None,
            attr_name_kanji: "cn".into(),
            attr_name_kana: "displayName".into(),
            attr_name_roman: "cn".into(),
            attr_student_no: "employeeNumber".into(),
            attr_faculty: "ou".into(),
            attr_department: "departmentNumber".into(),
            attr_email: "mail".into(),
            attr_card_id: String::new(),
            timeout_s: 5,
        }
    }
}

/// RFC 4515 escaping of a value put into a search filter.
pub fn escape_filter_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => out.push_str(&format!("\\{:02x}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

pub struct LdapDirectory {
    cfg: LdapConfig,
    /// The directory's CA (`ca_file`), or None for the system's.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A rustls client configuration trusting the CAs in a PEM file.
pub fn tls_client_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem = std::fs::read(ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    tls_client_config_pem(&pem).map_err(|e| format!("{}: {e}", ca_file.display()))
}

/// A rustls client configuration trusting the CAs in PEM text.
pub fn tls_client_config_pem(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no certificate in the PEM text".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

impl LdapDirectory {
    pub fn new(cfg: LdapConfig) -> Self {
        let tls = if !cfg.ca_pem.trim().is_empty() {
            tls_client_config_pem(cfg.ca_pem.as_bytes()).map_err(|e| tracing::error!(error = %e, "the directory's CA cannot be used")).ok()
        } else {
            cfg.ca_file.as_deref().and_then(|f| tls_client_config(f).map_err(|e| tracing::error!(error = %e, "directory.ldap.ca_file cannot be used")).ok())
        };
        LdapDirectory { cfg, tls }
    }

    async fn verify_inner(&self, user_id: &str, password: &str) -> Result<Option<DirectoryEntry>, DirectoryError> {
        use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
        let unavailable = |e: ldap3::LdapError| DirectoryError::Unavailable(e.to_string());
        // an empty password would be an "unauthenticated bind", which succeeds
        if password.is_empty() || user_id.trim().is_empty() {
            return Ok(None);
        }
        let mut settings = LdapConnSettings::new().set_conn_timeout(std::time::Duration::from_secs(self.cfg.timeout_s)).set_starttls(self.cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url).await.map_err(unavailable)?;
        ldap3::drive!(conn);
        if !self.cfg.bind_dn.is_empty() {
            ldap.simple_bind(&self.cfg.bind_dn, &self.cfg.bind_password).await.map_err(unavailable)?.success().map_err(unavailable)?;
        }
        let filter = self.cfg.user_filter.replace("{user}", &escape_filter_value(user_id.trim()));
        let c = &self.cfg;
        let mut attrs = vec![
            c.attr_uid.as_str(),
            c.attr_name_kanji.as_str(),
            c.attr_name_kana.as_str(),
            c.attr_name_roman.as_str(),
            c.attr_student_no.as_str(),
            c.attr_faculty.as_str(),
            c.attr_department.as_str(),
            c.attr_email.as_str(),
        ];
        if !c.attr_card_id.is_empty() {
            attrs.push(c.attr_card_id.as_str());
        }
        let (entries, _) = ldap.search(&c.base_dn, Scope::Subtree, &filter, attrs).await.map_err(unavailable)?.success().map_err(unavailable)?;
        if entries.len() != 1 {
            let _ = ldap.unbind().await;
            return Ok(None);
        }
        let Some(entry) = entries.into_iter().next().map(SearchEntry::construct) else { return Ok(None) };
        let bound = ldap.simple_bind(&entry.dn, password).await.map_err(unavailable)?;
        let _ = ldap.unbind().await;
        match bound.rc {
            0 => {}
            49 => return Ok(None), // invalidCredentials
            rc => return Err(DirectoryError::Unavailable(format!("bind result code {rc}"))),
        }
        let get = |a: &str| entry.attrs.get(a).and_then(|v| v.first()).cloned().unwrap_or_default();
        // the account is the directory's user, however the ID was typed
        let canonical = Some(get(&c.attr_uid)).filter(|u| !u.is_empty()).unwrap_or_else(|| user_id.trim().to_string());
        Ok(Some(DirectoryEntry {
            user_id: normalise_uid(&canonical),
            name_kanji: get(&c.attr_name_kanji),
            name_kana: get(&c.attr_name_kana),
            name_roman: get(&c.attr_name_roman),
            student_no: get(&c.attr_student_no),
            faculty_code: get(&c.attr_faculty),
            department_code: get(&c.attr_department),
            email: Some(get(&c.attr_email)).filter(|e| !e.is_empty()),
            card_uid: if c.attr_card_id.is_empty() { None } else { shomei_shared::api::normalize_card_uid(&get(&c.attr_card_id)) },
        }))
    }
}

impl Directory for LdapDirectory {
    fn verify<'a>(&'a self, user_id: &'a str, password: &'a str) -> BoxFuture<'a, Result<Option<DirectoryEntry>, DirectoryError>> {
        Box::pin(async move {
            let limit = std::time::Duration::from_secs(self.cfg.timeout_s.max(1) * 2);
            tokio::time::timeout(limit, self.verify_inner(user_id, password))
                .await
                .map_err(|_| DirectoryError::Unavailable("timed out".into()))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$2uBtH4x2YbJ0c5oG0r1V6Pq3hHkqLJrNnbDS0hC9kQk";

    #[test]
    fn a_good_roster_parses_with_a_bom_and_plain_or_hashed_passwords() {
        let csv = format!(
            "\u{feff}user_id,password_hash,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code,email\n\
             s1,\"{HASH}\",佐藤 次郎,サトウ ジロウ,SATO Jiro,L24-0101,LET,JLIT,\n\
             s2,\"{HASH}\",鈴木 花,スズキ ハナ,SUZUKI Hana,L24-0102,LET,JLIT,hana@example.jp\n"
        );
        let rows = parse_roster(&csv).expect("good file");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].email.as_deref(), Some("hana@example.jp"));
        let plain = "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code\ns1,Initial2024,a b,ア イ,A B,1,LET,JLIT\n";
        assert_eq!(parse_roster(plain).expect("plain")[0].password.as_deref(), Some("Initial2024"));
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let csv = format!(
            "user_id,password_hash,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code,email\n\
             s1,\"{HASH}\",佐藤 次郎,サトウ ジロウ,SATO Jiro,L24-0101,LET,JLIT,\n\
             s2,not-a-hash,鈴木 花,スズキ ハナ,SUZUKI Hana,L24-0102,LET,JLIT,\n\
             s1,\"{HASH}\",田中 一,タナカ ハジメ,TANAKA Hajime,L24-0103,LET,JLIT,\n\
             s4,\"{HASH}\",,ヤマ カワ,YAMA Kawa,L24-0104,LET,JLIT,\n\
             s5,\"{HASH}\",only,eight\n\
             s6,\"{HASH}\",山 川,ヤマ カワ,YAMA Kawa,L24-0106,LET,JLIT,not-mail\n"
        );
        let errs = parse_roster(&csv).expect_err("bad rows");
        let lines: Vec<(usize, Option<&str>)> = errs.iter().map(|e| (e.line, e.column.as_deref())).collect();
        assert_eq!(
            lines,
            vec![(3, Some("password_hash")), (4, Some("user_id")), (5, Some("name_kanji")), (6, None), (7, Some("email"))],
            "{errs:?}"
        );
        assert!(errs[1].to_string().contains("line 4") && errs[1].to_string().contains("line 2"), "{}", errs[1]);
    }

    #[test]
    fn line_numbers_are_right_with_windows_line_ends() {
        let csv = "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code\r\n\
                   s1,Initial2024,a b,ア イ,A B,1,LET,JLIT\r\ns2,Initial2024,a b,ア イ,A B,1,LET,JLIT\r\ns3,short,a b,ア イ,A B,1,LET,JLIT\r\n";
        let errs = parse_roster(csv).expect_err("short password");
        assert_eq!(errs[0].line, 4, "{errs:?}");
    }

    #[test]
    fn the_optional_card_column_is_read_checked_and_old_files_stay_valid() {
        let head = "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code,email,card_id\n";
        let csv = format!("{head}s1,Initial2024,a b,ア イ,A B,1,LET,JLIT,,01 2e 4c d8 a1 b2 c3 d4\ns2,Initial2024,a b,ア イ,A B,2,LET,JLIT,,\n");
        let rows = parse_roster(&csv).expect("good file");
        assert_eq!(rows[0].card_id.as_deref(), Some("012E4CD8A1B2C3D4"));
        assert_eq!(rows[1].card_id, None);
        let bad = format!("{head}s1,Initial2024,a b,ア イ,A B,1,LET,JLIT,,XYZ\ns2,Initial2024,a b,ア イ,A B,2,LET,JLIT,,012E4CD8A1B2C3D4\ns3,Initial2024,a b,ア イ,A B,3,LET,JLIT,,012e4cd8a1b2c3d4\n");
        let errs = parse_roster(&bad).expect_err("bad cards");
        let lines: Vec<(usize, Option<&str>)> = errs.iter().map(|e| (e.line, e.column.as_deref())).collect();
        assert_eq!(lines, vec![(2, Some("card_id")), (4, Some("card_id"))], "{errs:?}");
        // a file without the column (as before) still imports
        let old = "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code\ns1,Initial2024,a b,ア イ,A B,1,LET,JLIT\n";
        assert_eq!(parse_roster(old).expect("old file")[0].card_id, None);
    }

    #[test]
    fn unknown_and_missing_columns_are_named() {
        let errs = parse_roster("user_id,password,name_kanji,shoe_size\n").expect_err("bad header");
        let cols: Vec<_> = errs.iter().filter_map(|e| e.column.clone()).collect();
        assert!(cols.contains(&"shoe_size".to_string()) && cols.contains(&"name_kana".to_string()), "{cols:?}");
    }

    #[test]
    fn filter_values_cannot_inject() {
        assert_eq!(escape_filter_value("alice"), "alice");
        assert_eq!(escape_filter_value("*"), "\\2a");
        assert_eq!(escape_filter_value("a)(uid=*"), "a\\29\\28uid=\\2a");
        assert_eq!(escape_filter_value("x\\y"), "x\\5cy");
        assert_eq!(escape_filter_value("山田*"), "山田\\2a");
    }
}
