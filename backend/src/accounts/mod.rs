//! Accounts and login: graduates (G-5), enrolled students (S-1), staff with a
//! second factor; sessions with idle and absolute limits; one-time URLs;
//! throttling that never says whether an account exists.

pub mod credentials;
pub mod directory;
pub mod password_policy;
pub mod passwords;
pub mod totp;

use crate::accounts::directory::{Directories, DirectoryEntry, DirectoryError};
use crate::error::{AppError, AppResult};
use crate::messages::{INITIAL_PASSWORD_EXPIRED, LOGIN_FAILED, STAFF_LOGIN_FAILED, STUDENT_LOGIN_FAILED};
use crate::accounts::passwords::Hasher;
use crate::sealed::SealKey;
use crate::store::{self, AuditEvent};
use crate::time::now;
use sha2::{Digest, Sha256};
use crate::store::Pool;

/// A random token of 256 bits, hex.
pub use crate::accounts::passwords::random_token;

/// Tokens are stored only as their SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Failures per key (an account, or a client address so that spraying one
/// password over many accounts is slowed too). After `free` failures each
/// attempt waits longer (1, 2, 4 ... times `delay`); at `max` failures the key
/// is blocked for the rest of the window. Checked before any hashing.
///
/// The failures are counted in the database (`throttle_failures`), so every
/// backend process on it sees the same counts: a client alternating between
/// backends gains nothing. A throttle whose database cannot be read makes
/// the client wait (it never lets guesses through unchecked).
pub struct Throttle {
    pool: Pool,
    /// Keeps this throttle's keys apart from another's in the one table.
    scope: &'static str,
    /// First delay in milliseconds.
    delay_ms: i64,
}

/// How long a throttled client must wait.
pub enum Wait {
    Seconds(i64),
    Window,
}

impl Wait {
    /// What the user is told, in both languages.
    pub fn message(&self) -> String {
        crate::messages::throttled(match self {
            Wait::Seconds(s) => Some(*s),
            Wait::Window => None,
        })
    }
}

impl Throttle {
    const WINDOW_S: i64 = 15 * 60;
    /// Failures before delays start: per account, and per client address (a
    /// campus NAT puts many people behind one address).
    pub const FREE: usize = 2;
    pub const FREE_CLIENT: usize = 10;
    /// Failures allowed per account, and per client address, in the window.
    pub const PER_ACCOUNT: usize = 5;
    pub const PER_CLIENT: usize = 30;

    pub fn new(pool: Pool, scope: &'static str, delay_ms: u64) -> Throttle {
        Throttle { pool, scope, delay_ms: delay_ms as i64 }
    }

    pub(crate) fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn key(&self, key: &str) -> String {
        Self::key_in(self.scope, key)
    }

    /// The stored key of `key` in throttle `scope`.
    pub(crate) fn key_in(scope: &str, key: &str) -> String {
        format!("{scope}/{key}")
    }

    /// The failures the window still holds for `key`.
    async fn failures(&self, c: &mut store::Conn, key: &str, t: i64) -> Result<Vec<i64>, sqlx::Error> {
        store::throttle_failures(c, &self.key(key), t - Self::WINDOW_S * 1000).await
    }

    /// `Err(wait)` when `key` may not try now.
    pub async fn check(&self, key: &str, max: usize) -> Result<(), Wait> {
        self.check_with(key, max, Self::FREE).await
    }

    pub async fn check_with(&self, key: &str, max: usize, free: usize) -> Result<(), Wait> {
        let t = Self::now_ms();
        let read = match self.pool.acquire().await {
            Ok(mut c) => self.failures(&mut c, key, t).await,
            Err(e) => Err(e),
        };
        match read {
            Ok(v) => self.wait_for(&v, max, free, None, t),
            Err(e) => {
                tracing::warn!(error = %e, "throttle not readable: the client waits");
                Err(Wait::Seconds(1))
            }
        }
    }

    /// `Err(wait)` when failures `v` (oldest first) reach `max`, or `t` is
    /// within the (doubling, optionally capped) delay after the last one.
    fn wait_for(&self, v: &[i64], max: usize, free: usize, cap_ms: Option<i64>, t: i64) -> Result<(), Wait> {
        let n = v.len();
        if n >= max {
            return Err(Wait::Window);
        }
        if n > free {
            let last = v.last().copied().unwrap_or(0);
            let delay = self.delay_ms << (n - free - 1).min(16);
            let until = last + cap_ms.map_or(delay, |cap| delay.min(cap));
            if t < until {
                return Err(Wait::Seconds(((until - t) + 999) / 1000));
            }
        }
        Ok(())
    }

    pub async fn fail(&self, key: &str) {
        let t = Self::now_ms();
        let done = match self.pool.acquire().await {
            Ok(mut c) => store::add_throttle_failure(&mut c, &self.key(key), t).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "a failure could not be counted");
        }
    }

    /// Failures of one account from all addresses before it is slowed down
    /// (never locked: that would let anyone keep the owner out).
    pub const ACCOUNT_FREE: usize = 10;
    /// The longest wait an account's failures from everywhere impose.
    const ACCOUNT_MAX_DELAY_MS: i64 = 30_000;

    /// A login attempt, counted before its password is hashed (parallel
    /// requests, on any backend, get no extra tries: the check and the count
    /// are one write transaction). The account is slowed down, then locked,
    /// for the address that keeps failing on it (account and address
    /// together); from everywhere it is only slowed down (capped); each
    /// address also has its own budget across accounts.
    pub async fn begin(&self, account_key: &str, client: &str) -> AppResult<()> {
        let t = Self::now_ms();
        let pair = format!("{account_key}|{client}");
        let client_key = format!("client:{client}");
        let mut tx = store::begin_write(&self.pool).await?;
        let waits = [
            (pair.as_str(), Self::PER_ACCOUNT, Self::FREE, None),
            (account_key, usize::MAX, Self::ACCOUNT_FREE, Some(Self::ACCOUNT_MAX_DELAY_MS)),
            (client_key.as_str(), Self::PER_CLIENT, Self::FREE_CLIENT, None),
        ];
        for (key, max, free, cap) in waits {
            let v = self.failures(&mut tx, key, t).await?;
            self.wait_for(&v, max, free, cap, t).map_err(|w| AppError::Throttled(w.message()))?;
        }
        for k in [pair.as_str(), account_key, client_key.as_str()] {
            store::add_throttle_failure(&mut tx, &self.key(k), t).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets failures of `keys` in one write transaction (all of a key's, or
    /// its latest); a failure to do so is logged.
    async fn forget(&self, what: &str, keys: &[(String, bool)]) {
        let done = async {
            let mut tx = store::begin_write(&self.pool).await?;
            for (k, all) in keys {
                if *all {
                    store::clear_throttle(&mut tx, &self.key(k)).await?;
                } else {
                    store::drop_last_throttle_failure(&mut tx, &self.key(k)).await?;
                }
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, what, "throttle not updated");
        }
    }

    /// The attempt [`Throttle::begin`] counted succeeded: the address's
    /// failures on this account are forgiven; the attempt no longer counts.
    pub async fn uncount(&self, account_key: &str, client: &str) {
        self.forget("uncount", &[(format!("{account_key}|{client}"), true), (account_key.to_string(), false), (format!("client:{client}"), false)]).await
    }

    /// The attempt [`Throttle::begin`] counted was never checked (the hash
    /// pool was full, the directory could not be asked): it no longer counts,
    /// and nothing earlier is forgiven.
    pub async fn undo(&self, account_key: &str, client: &str) {
        self.forget("undo", &[(format!("{account_key}|{client}"), false), (account_key.to_string(), false), (format!("client:{client}"), false)]).await
    }

    pub async fn clear(&self, key: &str) {
        self.forget("clear", &[(key.to_string(), true)]).await
    }

    /// Checks the account key and the client key; a 429 page when either waits.
    pub async fn gate(&self, account_key: &str, client: &str) -> AppResult<()> {
        let client_key = format!("client:{client}");
        self.check(account_key, Self::PER_ACCOUNT).await.map_err(|w| AppError::Throttled(w.message()))?;
        self.check_with(&client_key, Self::PER_CLIENT, Self::FREE_CLIENT).await.map_err(|w| AppError::Throttled(w.message()))
    }

    pub async fn fail_both(&self, account_key: &str, client: &str) {
        self.fail(account_key).await;
        self.fail(&format!("client:{client}")).await;
    }

    /// Counts an attempt of `key` unless `max` were counted in the last
    /// `window_ms` (checked and counted in one write transaction, so parallel
    /// attempts on any backend get no extra ones); else `Ok(Err(ms))`, the
    /// wait until the oldest lapses.
    pub async fn admit(&self, key: &str, max: usize, window_ms: i64) -> AppResult<Result<(), i64>> {
        let t = Self::now_ms();
        let mut tx = store::begin_write(&self.pool).await?;
        let v = store::throttle_failures(&mut tx, &self.key(key), t - window_ms).await?;
        if v.len() >= max {
            return Ok(Err(v.first().map_or(window_ms, |first| first + window_ms - t)));
        }
        store::add_throttle_failure(&mut tx, &self.key(key), t).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}

/// Who is asking, for the audit log.
#[derive(Clone, Copy)]
pub struct Client<'a> {
    pub ip: &'a str,
}

/// How a portal login ended.
pub enum PortalLogin {
    /// Fully logged in.
    Ok(i64),
    /// Logged in with the initial password: only "password setting" is open (G-5).
    MustSetPassword(i64),
}

/// Checks e-mail + password + second password (G-5). With an initial
/// password the second password is left empty.
pub async fn login_user(
    pool: &Pool,
    throttle: &Throttle,
    hasher: &Hasher,
    client: Client<'_>,
    email: &str,
    password: &str,
    second: &str,
) -> AppResult<PortalLogin> {
    let email = email.trim().to_lowercase();
    let key = format!("user:{email}");
    throttle.begin(&key, client.ip).await?;
    let mut c = pool.acquire().await?;
    let user = store::user_by_email(&mut c, &email).await?.filter(|u| u.kind == "graduate");
    drop(c);
    let (pw_hash, second_hash) = match &user {
        Some(u) if u.must_set_password => (Some(u.password_hash.clone()), None),
        Some(u) => (Some(u.password_hash.clone()), u.second_password_hash.clone()),
        None => (None, None),
    };
    let checked = match hasher.verify_all(vec![(password.to_string(), pw_hash), (second.to_string(), second_hash)]).await {
        Ok(c) => c,
        Err(e) => {
            throttle.undo(&key, client.ip).await;
            return Err(e.into());
        }
    };
    let pw_ok = checked[0].ok;
    let ok = match &user {
        Some(u) if u.must_set_password => pw_ok && second.is_empty() && u.status == "active",
        Some(u) => pw_ok && checked[1].ok && u.status == "active",
        None => false,
    };
    let mut c = pool.acquire().await?;
    match (ok, user) {
        (true, Some(u)) => {
            if u.must_set_password && u.initial_password_expires_at.is_some_and(|t| t <= now()) {
                audit(&mut c, &format!("user:{}", u.id), "login.initial_expired", "", client).await?;
                return Err(AppError::Page(INITIAL_PASSWORD_EXPIRED.into()));
            }
            throttle.uncount(&key, client.ip).await;
            if let Some(h) = &checked[0].rehash {
                store::set_password_hash(&mut c, u.id, h).await?;
            }
            if let (Some(h), false) = (&checked[1].rehash, u.must_set_password) {
                store::set_second_password_hash(&mut c, u.id, h).await?;
            }
            audit(&mut c, &format!("user:{}", u.id), "login", "", client).await?;
            Ok(if u.must_set_password { PortalLogin::MustSetPassword(u.id) } else { PortalLogin::Ok(u.id) })
        }
        (_, u) => {
            // counted before hashing
            let actor = u.map(|u| format!("user:{}", u.id)).unwrap_or_else(|| "anonymous".into());
            audit(&mut c, &actor, "login.failed", "", client).await?;
            Err(AppError::Page(LOGIN_FAILED.into()))
        }
    }
}

/// What an enrolled student's login (S-1..S-3) leads to.
pub enum StudentLogin {
    Ok(i64),
    /// First login: the university's directory said yes; the student registers an address next (S-2).
    FirstLogin(i64, DirectoryEntry),
    /// The address is registered but no second password is set yet (second
    /// password left empty): the student sets it next (S-2, manual 001 2.2).
    SetSecond(i64, DirectoryEntry),
}

/// A directory's failure as the user sees it.
pub fn directory_failed(e: DirectoryError) -> AppError {
    match e {
        DirectoryError::Busy(busy) => busy,
        DirectoryError::NoSuchUniversity => AppError::Page(crate::messages::CHOOSE_UNIVERSITY.into()),
        e => {
            tracing::warn!(error = %e, "directory unavailable");
            AppError::Page(crate::messages::DIRECTORY_UNAVAILABLE.into())
        }
    }
}

/// University user ID + password against the chosen university's directory;
/// + second password once set. The same user ID at two universities is two students.
#[allow(clippy::too_many_arguments)]
pub async fn login_student(
    pool: &Pool,
    throttle: &Throttle,
    hasher: &Hasher,
    directories: &Directories,
    client: Client<'_>,
    university: i64,
    user_id: &str,
    password: &str,
    second: &str,
) -> AppResult<StudentLogin> {
    let uid = user_id.trim();
    let key = format!("student:{university}:{}", uid.to_lowercase());
    throttle.begin(&key, client.ip).await?;
    let verified = match directories.of(university).await {
        Ok(directory) => directory.verify(uid, password).await,
        Err(e) => Err(e),
    };
    if verified.is_err() {
        throttle.undo(&key, client.ip).await;
    }
    let entry = verified.map_err(directory_failed)?;
    // the account belongs to the directory's user as the directory spells it,
    // never to the ID as typed (S2401234 and s2401234 are one student)
    let account_uid = entry.as_ref().map(|e| e.user_id.clone()).unwrap_or_else(|| crate::accounts::directory::normalise_uid(uid));
    let mut c = pool.acquire().await?;
    let user = store::user_by_directory_uid(&mut c, university, &account_uid).await?;
    drop(c);
    let second_hash = user.as_ref().and_then(|u| u.second_password_hash.clone());
    let checked = match hasher.verify_all(vec![(second.to_string(), second_hash)]).await {
        Ok(c) => c,
        Err(e) => {
            throttle.undo(&key, client.ip).await;
            return Err(e.into());
        }
    };
    let mut c = pool.acquire().await?;
    match (entry, user) {
        (Some(e), Some(u)) if u.second_password_hash.is_none() && second.is_empty() && u.status == "active" => {
            throttle.uncount(&key, client.ip).await;
            audit(&mut c, &format!("user:{}", u.id), "student.login.second_unset", "", client).await?;
            Ok(StudentLogin::SetSecond(u.id, e))
        }
        (Some(_), Some(u)) if checked[0].ok && u.status == "active" => {
            throttle.uncount(&key, client.ip).await;
            if let Some(h) = &checked[0].rehash {
                store::set_second_password_hash(&mut c, u.id, h).await?;
            }
            audit(&mut c, &format!("user:{}", u.id), "student.login", "", client).await?;
            Ok(StudentLogin::Ok(u.id))
        }
        // first login: the second password is left empty (S-2)
        (Some(e), None) if second.is_empty() => {
            throttle.uncount(&key, client.ip).await;
            audit(&mut c, &format!("student:{uid}"), "student.first_login", "", client).await?;
            Ok(StudentLogin::FirstLogin(university, e))
        }
        (_, u) => {
            let actor = u.map(|u| format!("user:{}", u.id)).unwrap_or_else(|| format!("student:{uid}"));
            audit(&mut c, &actor, "student.login.failed", "", client).await?;
            Err(AppError::Page(STUDENT_LOGIN_FAILED.into()))
        }
    }
}

/// Staff log in with login ID + password + a TOTP code (or one recovery code).
pub async fn login_staff(
    pool: &Pool,
    throttle: &Throttle,
    hasher: &Hasher,
    seal: &SealKey,
    client: Client<'_>,
    login: &str,
    password: &str,
    code: &str,
    initial_password_ttl_s: i64,
) -> AppResult<i64> {
    let login = login.trim();
    let key = format!("staff:{login}");
    throttle.begin(&key, client.ip).await?;
    let mut c = pool.acquire().await?;
    let staff = store::staff_by_login(&mut c, login).await?.filter(|s| s.active);
    drop(c);
    let checked = match hasher.verify_all(vec![(password.to_string(), staff.as_ref().map(|s| s.password_hash.clone()))]).await {
        Ok(c) => c,
        Err(e) => {
            throttle.undo(&key, client.ip).await;
            return Err(e.into());
        }
    };
    let mut c = pool.acquire().await?;
    if let (true, Some(s)) = (checked[0].ok, &staff) {
        let secret = s.totp_sealed.as_deref().and_then(|t| seal.open_str(t, &totp_aad(s.id)).ok()).and_then(|b32| totp::parse_base32(&b32));
        let second_ok = match secret {
            Some(secret) => match totp::verify(&secret, code, now(), s.totp_last_step) {
                Some(step) => store::use_totp_step(&mut c, s.id, step).await?,
                None => {
                    let typed = totp::normalize_recovery(code);
                    // keyed with the data key; codes issued before were plain SHA-256
                    let used = store::use_recovery_code(&mut c, s.id, &seal.keyed_hash("recovery", &typed), now()).await?
                        || store::use_recovery_code(&mut c, s.id, &token_hash(&typed), now()).await?;
                    if used {
                        audit(&mut c, &format!("staff:{}", s.login), "login.recovery_code", "", client).await?;
                    }
                    used
                }
            },
            None => false,
        };
        if second_ok && s.must_set_password && s.password_issued_at + initial_password_ttl_s <= now() {
            // an initial password not replaced in time opens nothing: an administrator issues a new one
            audit(&mut c, &format!("staff:{}", s.login), "login.initial_expired", "", client).await?;
            return Err(AppError::Page(crate::messages::STAFF_INITIAL_PASSWORD_EXPIRED.into()));
        }
        if second_ok {
            throttle.uncount(&key, client.ip).await;
            if let Some(h) = &checked[0].rehash {
                store::set_staff_password_hash(&mut c, s.id, h).await?;
            }
            audit(&mut c, &format!("staff:{}", s.login), "login", "", client).await?;
            return Ok(s.id);
        }
    }
    let actor = staff.map(|s| format!("staff:{}", s.login)).unwrap_or_else(|| "anonymous".into());
    audit(&mut c, &actor, "login.failed", "", client).await?;
    Err(AppError::Page(STAFF_LOGIN_FAILED.into()))
}

/// A staff member's second factor as shown once: secret, otpauth URI, recovery codes.
pub struct SecondFactor {
    pub secret_b32: String,
    pub uri: String,
    pub recovery_codes: Vec<String>,
}

/// Makes and stores a new TOTP secret (sealed) and ten recovery codes (hashed)
/// for a staff member; the old ones stop working.
pub async fn new_second_factor(seal: &SealKey, c: &mut store::Conn, staff_id: i64, login: &str) -> AppResult<SecondFactor> {
    let secret = totp::generate_secret();
    let b32 = totp::secret_base32(&secret);
    set_second_factor(seal, c, staff_id, &b32).await?;
    let codes = totp::recovery_codes(10);
    let hashes: Vec<String> = codes.iter().map(|c| seal.keyed_hash("recovery", &totp::normalize_recovery(c))).collect();
    store::replace_recovery_codes(c, staff_id, &hashes).await?;
    Ok(SecondFactor { uri: totp::otpauth_uri("shomei", login, &secret), secret_b32: b32, recovery_codes: codes })
}

/// Stores a given TOTP secret (base32), sealed to its staff row.
pub async fn set_second_factor(seal: &SealKey, c: &mut store::Conn, staff_id: i64, secret_b32: &str) -> AppResult<()> {
    let sealed = seal.seal_str(secret_b32, &totp_aad(staff_id)).map_err(|e| AppError::Internal(anyhow::anyhow!("sealing: {e}")))?;
    store::set_staff_totp(c, staff_id, &sealed).await?;
    Ok(())
}

/// The associated data that ties a sealed TOTP secret to its staff row.
pub fn totp_aad(staff_id: i64) -> String {
    format!("staff:{staff_id}:totp")
}

pub async fn audit(c: &mut store::Conn, actor: &str, action: &str, target: &str, client: Client<'_>) -> AppResult<()> {
    store::audit_event(c, &AuditEvent { actor, action, target, ip: client.ip, detail: "" }, now()).await?;
    Ok(())
}

// ---------------------------------------------------------------- sessions

/// Session lifetimes (from configuration).
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    pub idle_s: i64,
    pub staff_idle_s: i64,
    pub absolute_s: i64,
}

/// Starts a new session (a fresh token at every login) and returns the token.
pub async fn start_session(pool: &Pool, limits: &SessionLimits, user_id: Option<i64>, staff_id: Option<i64>) -> AppResult<String> {
    let token = random_token();
    let t = now();
    let mut c = pool.acquire().await?;
    store::create_session(&mut c, &token_hash(&token), user_id, staff_id, t, t + limits.absolute_s).await?;
    Ok(token)
}

/// Logout: the session ends, and the audit log says so.
pub async fn logout(pool: &Pool, token: &str, actor: &str, client: Client<'_>) -> AppResult<()> {
    end_session(pool, token).await?;
    let mut c = pool.acquire().await?;
    audit(&mut c, actor, "logout", "", client).await
}

pub async fn end_session(pool: &Pool, token: &str) -> AppResult<()> {
    let mut c = pool.acquire().await?;
    store::delete_session(&mut c, &token_hash(token)).await?;
    Ok(())
}

/// The live session of a token: within the absolute limit and not idle too
/// long (staff sooner); a live one is touched, an idle one is deleted.
pub async fn session(pool: &Pool, limits: &SessionLimits, token: &str) -> AppResult<Option<store::Session>> {
    session_seen(pool, limits, token, true).await
}

/// As [`session`]; `activity` false for requests a page makes by itself (the
/// fleet page's poll), which must not keep an unattended session alive.
pub async fn session_seen(pool: &Pool, limits: &SessionLimits, token: &str, activity: bool) -> AppResult<Option<store::Session>> {
    let t = now();
    let h = token_hash(token);
    let mut c = pool.acquire().await?;
    let Some(s) = store::session(&mut c, &h, t).await? else { return Ok(None) };
    let idle = if s.staff_id.is_some() { limits.staff_idle_s } else { limits.idle_s };
    if t - s.last_seen_at.max(s.created_at) > idle {
        store::delete_session(&mut c, &h).await?;
        return Ok(None);
    }
    // a write per request is not needed: touching a few times per idle period keeps it alive
    if activity && t - s.last_seen_at >= (idle / 4).clamp(1, 60) {
        store::touch_session(&mut c, &h, t).await?;
    }
    Ok(Some(s))
}

// ---------------------------------------------------------------- one-time URLs

/// Issues a one-time URL token (>= 128 bits; only its hash is stored; a newer
/// one of the same purpose for the same address voids the older).
pub async fn issue_token(
    c: &mut store::Conn,
    purpose: &str,
    email: &str,
    user_id: Option<i64>,
    subject: &str,
    ttl_s: i64,
) -> AppResult<(String, i64)> {
    let token = random_token();
    let t = now();
    store::insert_token(c, &token_hash(&token), purpose, email, user_id, subject, t, t + ttl_s).await?;
    Ok((token, t + ttl_s))
}

/// Uses a one-time URL token, or says it is expired / used / unknown (one message).
pub async fn consume_token(c: &mut store::Conn, purpose: &str, token: &str) -> AppResult<store::OneTimeToken> {
    store::consume_token(c, &token_hash(token.trim()), purpose, now())
        .await?
        .ok_or_else(|| AppError::Page(crate::messages::LINK_INVALID.into()))
}

pub async fn peek_token(c: &mut store::Conn, purpose: &str, token: &str) -> AppResult<store::OneTimeToken> {
    store::peek_token(c, &token_hash(token.trim()), purpose, now())
        .await?
        .ok_or_else(|| AppError::Page(crate::messages::LINK_INVALID.into()))
}

pub use crate::mail::valid_email;


/// `h****@example.ac.jp`: enough to recognise, not to harvest.
pub fn mask_email(s: &str) -> String {
    match s.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}****@{domain}")
        }
        None => "****".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttle_grows_then_blocks_and_two_throttles_on_one_database_count_together() -> Result<(), sqlx::Error> {
        let dir = tempfile::tempdir().map_err(sqlx::Error::Io)?;
        let pool = store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("t.sqlite").display())).await?;
        // two backends' throttles on one database
        let (t, other) = (Throttle::new(pool.clone(), "login", 60_000), Throttle::new(pool.clone(), "login", 60_000));
        for _ in 0..Throttle::FREE {
            t.fail("a").await;
            assert!(other.check("a", Throttle::PER_ACCOUNT).await.is_ok(), "the first failures are free");
        }
        other.fail("a").await;
        assert!(matches!(t.check("a", Throttle::PER_ACCOUNT).await, Err(Wait::Seconds(s)) if s > 50 && s <= 60));
        t.fail("a").await;
        assert!(matches!(other.check("a", Throttle::PER_ACCOUNT).await, Err(Wait::Seconds(s)) if s > 110 && s <= 120), "doubles");
        other.fail("a").await;
        assert!(matches!(t.check("a", Throttle::PER_ACCOUNT).await, Err(Wait::Window)));
        assert!(t.check("b", Throttle::PER_ACCOUNT).await.is_ok());
        // another scope's keys are its own
        assert!(Throttle::new(pool.clone(), "request", 60_000).check("a", Throttle::PER_ACCOUNT).await.is_ok());
        other.clear("a").await;
        assert!(t.check("a", Throttle::PER_ACCOUNT).await.is_ok());
        Ok(())
    }

    #[test]
    fn emails_checked_and_masked() {
        assert!(valid_email("hanako@example.ac.jp"));
        for bad in ["", "hanako", "a@b", "a@@b.jp", "a b@c.jp", "@c.jp", "a@.c.jp", "a@c..jp", "a@c.jp."] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert_eq!(mask_email("hanako@example.ac.jp"), "h****@example.ac.jp");
    }
}
