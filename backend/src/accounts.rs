//! Accounts and login: graduates' and students' portal logins (SPEC G-5) and
//! staff logins. Passwords are Argon2id; sessions are random tokens whose
//! hash is stored; failed logins are throttled without revealing whether an
//! account exists.

use crate::error::{AppError, AppResult};
use crate::messages::{LOGIN_FAILED, LOGIN_THROTTLED, STAFF_LOGIN_FAILED};
use crate::store;
use crate::time::now;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::sync::Mutex;

/// A portal or staff session lasts this long without a new login.
pub const SESSION_TTL_S: i64 = 8 * 3600;

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash that no password matches, verified against when the account does not
/// exist so that both paths cost the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no account has this password 9Xq").unwrap_or_default())
}

/// A random token of 256 bits, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Tokens are stored only as their SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Sliding-window counter of failures per key (an e-mail address or login ID,
/// and the client's address, so that spraying one password over many
/// accounts is slowed too).
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, Vec<i64>>>,
}

impl Throttle {
    const WINDOW_S: i64 = 15 * 60;
    /// Failures allowed per account, and per client address, in the window.
    pub const PER_ACCOUNT: usize = 5;
    pub const PER_CLIENT: usize = 30;
    /// Keys kept at most; beyond, keys without a recent failure are dropped.
    const MAX_KEYS: usize = 100_000;

    pub fn is_blocked(&self, key: &str, max: usize) -> bool {
        let t = now();
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(key) {
            Some(v) => {
                v.retain(|&at| at > t - Self::WINDOW_S);
                v.len() >= max
            }
            None => false,
        }
    }

    pub fn fail(&self, key: &str) {
        let t = now();
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= Self::MAX_KEYS {
            m.retain(|_, v| v.iter().any(|&at| at > t - Self::WINDOW_S));
        }
        m.entry(key.to_string()).or_default().push(t);
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}


/// Checks e-mail + password + second password (G-5); returns the user id.
pub async fn login_user(
    pool: &SqlitePool,
    throttle: &Throttle,
    client: &str,
    email: &str,
    password: &str,
    second: &str,
) -> AppResult<i64> {
    let email = email.trim().to_lowercase();
    let key = format!("user:{email}");
    let client_key = format!("client:{client}");
    if throttle.is_blocked(&key, Throttle::PER_ACCOUNT) || throttle.is_blocked(&client_key, Throttle::PER_CLIENT) {
        return Err(AppError::Page(LOGIN_THROTTLED.into()));
    }
    let mut c = pool.acquire().await?;
    let user = store::user_by_email(&mut c, &email).await?;
    let ok = match &user {
        Some(u) => {
            let pw_ok = verify_password(password, &u.password_hash);
            let second_ok = match &u.second_password_hash {
                Some(h) => verify_password(second, h),
                // first login (later issue): the second password is left empty;
                // the dummy check keeps this path as slow as the others
                None => !verify_password(second, dummy_hash()) && second.is_empty(),
            };
            pw_ok && second_ok && u.status == "active"
        }
        None => {
            verify_password(password, dummy_hash());
            verify_password(second, dummy_hash());
            false
        }
    };
    match (ok, user) {
        (true, Some(u)) => {
            throttle.clear(&key);
            store::audit(&mut c, &format!("user:{}", u.id), "login", "", now()).await?;
            Ok(u.id)
        }
        _ => {
            throttle.fail(&key);
            throttle.fail(&client_key);
            tracing::info!(client, "portal login failed");
            Err(AppError::Page(LOGIN_FAILED.into()))
        }
    }
}


pub async fn login_staff(pool: &SqlitePool, throttle: &Throttle, client: &str, login: &str, password: &str) -> AppResult<i64> {
    let key = format!("staff:{}", login.trim());
    let client_key = format!("client:{client}");
    if throttle.is_blocked(&key, Throttle::PER_ACCOUNT) || throttle.is_blocked(&client_key, Throttle::PER_CLIENT) {
        return Err(AppError::Page(LOGIN_THROTTLED.into()));
    }
    let mut c = pool.acquire().await?;
    let staff = store::staff_by_login(&mut c, login.trim()).await?;
    let ok = match &staff {
        Some(s) => verify_password(password, &s.password_hash),
        None => {
            verify_password(password, dummy_hash());
            false
        }
    };
    match (ok, staff) {
        (true, Some(s)) => {
            throttle.clear(&key);
            store::audit(&mut c, &format!("staff:{}", s.login), "login", "", now()).await?;
            Ok(s.id)
        }
        _ => {
            throttle.fail(&key);
            throttle.fail(&client_key);
            tracing::info!(client, "staff login failed");
            Err(AppError::Page(STAFF_LOGIN_FAILED.into()))
        }
    }
}

/// Starts a new session (a fresh token at every login) and returns the token.
pub async fn start_session(pool: &SqlitePool, user_id: Option<i64>, staff_id: Option<i64>) -> AppResult<String> {
    let token = random_token();
    let t = now();
    let mut c = pool.acquire().await?;
    store::create_session(&mut c, &token_hash(&token), user_id, staff_id, t, t + SESSION_TTL_S).await?;
    Ok(token)
}

pub async fn end_session(pool: &SqlitePool, token: &str) -> AppResult<()> {
    let mut c = pool.acquire().await?;
    store::delete_session(&mut c, &token_hash(token)).await?;
    Ok(())
}

pub async fn session(pool: &SqlitePool, token: &str) -> AppResult<Option<store::Session>> {
    let mut c = pool.acquire().await?;
    Ok(store::session(&mut c, &token_hash(token), now()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_differ() {
        let h1 = hash_password("Passw0rdXyz").expect("hash");
        let h2 = hash_password("Passw0rdXyz").expect("hash");
        assert!(h1.starts_with("$argon2id$"));
        assert_ne!(h1, h2, "salted");
        assert!(verify_password("Passw0rdXyz", &h1));
        assert!(!verify_password("passw0rdXyz", &h1));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn throttle_blocks_after_five_failures() {
        let t = Throttle::default();
        for _ in 0..4 {
            t.fail("a");
        }
        assert!(!t.is_blocked("a", Throttle::PER_ACCOUNT));
        t.fail("a");
        assert!(t.is_blocked("a", Throttle::PER_ACCOUNT));
        assert!(!t.is_blocked("a", Throttle::PER_CLIENT));
        assert!(!t.is_blocked("b", Throttle::PER_ACCOUNT));
        t.clear("a");
        assert!(!t.is_blocked("a", Throttle::PER_ACCOUNT));
    }
}
