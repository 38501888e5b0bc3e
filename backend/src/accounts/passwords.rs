//! Password hashing (Argon2id) off the async runtime, with a bound on how many
//! hashes run at once: a burst of logins is answered "busy, try again" (429)
//! at once instead of queueing until every request times out.

use crate::error::{AppError, AppResult};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// 32 random bytes in hex: session ids, one-time tokens, CSRF tokens.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Argon2id cost. The defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

impl HashCost {
    fn argon2(&self) -> anyhow::Result<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes a password with the given cost (blocking: call through [`Hasher`]).
pub fn hash_with(cost: &HashCost, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    cost.argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

thread_local! {
    /// Argon2's working memory, kept by each hashing thread: 19 MiB is not
    /// allocated (and zeroed by the kernel) again for every login.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Checks a password against a stored PHC string (any Argon2 cost). A wrong
/// password costs the same full hash as a right one; the comparison is
/// constant-time.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).ok().and_then(|h| verify_parsed(password, &h)).unwrap_or(false)
}

fn verify_parsed(password: &str, h: &PasswordHash<'_>) -> Option<bool> {
    let algorithm = Algorithm::try_from(h.algorithm).ok()?;
    let version = match h.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(h).ok()?;
    let expected = h.hash?;
    let mut salt_buf = [0u8; 64];
    let salt = h.salt?.decode_b64(&mut salt_buf).ok()?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    BLOCKS
        .with(|blocks| {
            let mut blocks = blocks.borrow_mut();
            blocks.resize(params.block_count(), argon2::Block::default());
            argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks[..])
        })
        .ok()?;
    Some(subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_bytes()).into())
}

/// True when a stored hash is not Argon2id or is cheaper than `cost`.
pub fn needs_rehash(hash: &str, cost: &HashCost) -> bool {
    let Ok(h) = PasswordHash::new(hash) else { return true };
    if h.algorithm.as_str() != "argon2id" {
        return true;
    }
    let Ok(p) = Params::try_from(&h) else { return true };
    p.m_cost() < cost.memory_kib || p.t_cost() < cost.iterations
}

/// Runs Argon2 on the blocking pool, at most `limit` at a time.
#[derive(Clone)]
pub struct Hasher {
    cost: HashCost,
    permits: Arc<Semaphore>,
}

/// The outcome of checking one password in a login.
pub struct Checked {
    pub ok: bool,
    /// A new hash to store (the stored one was weaker than the configured cost).
    pub rehash: Option<String>,
}

impl Hasher {
    pub fn new(cost: HashCost, limit: usize) -> Hasher {
        Hasher { cost, permits: Arc::new(Semaphore::new(limit.max(1))) }
    }

    pub fn cost(&self) -> HashCost {
        self.cost
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(HashCost) -> T + Send + 'static) -> AppResult<T> {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| AppError::Busy)?;
        let cost = self.cost;
        let out = tokio::task::spawn_blocking(move || {
            let out = f(cost);
            drop(permit);
            out
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("hash task: {e}")))?;
        Ok(out)
    }

    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let password = password.to_string();
        Ok(self.run(move |cost| hash_with(&cost, &password)).await??)
    }

    /// Checks several passwords in one blocking task (a login checks the
    /// password and the second password: both always, so timing says nothing).
    pub async fn verify_all(&self, pairs: Vec<(String, Option<String>)>) -> AppResult<Vec<Checked>> {
        self.run(move |cost| {
            pairs
                .into_iter()
                .map(|(pw, hash)| match hash {
                    Some(h) => {
                        let ok = verify(&pw, &h);
                        let rehash = if ok && needs_rehash(&h, &cost) { hash_with(&cost, &pw).ok() } else { None };
                        Checked { ok, rehash }
                    }
                    None => {
                        // no stored hash: spend the same time, never match
                        verify(&pw, dummy_hash());
                        Checked { ok: false, rehash: None }
                    }
                })
                .collect()
        })
        .await
    }
}

/// A hash that no password matches, verified against when an account does not
/// exist so that both paths cost the same.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_with(&HashCost::default(), &random_token()).unwrap_or_default())
}

/// A random initial password (G-4): 14 characters from an alphabet without
/// look-alikes (no 0/O, 1/l/I), with upper, lower and digits so it meets the
/// password rules itself.
pub fn initial_password() -> String {
    use rand::seq::SliceRandom;
    use rand::Rng;
    const UPPER: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    let mut rng = rand::rngs::OsRng;
    let all: Vec<u8> = [UPPER, LOWER, DIGIT].concat();
    let mut out: Vec<u8> = Vec::with_capacity(14);
    for set in [UPPER, LOWER, DIGIT] {
        out.push(set[rng.gen_range(0..set.len())]);
    }
    while out.len() < 14 {
        out.push(all[rng.gen_range(0..all.len())]);
    }
    out.shuffle(&mut rng);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_with_owasp_minimum_and_rehash_of_weaker() {
        let cost = HashCost::default();
        let h = hash_with(&cost, "Passw0rdXyz").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("Passw0rdXyz", &h));
        assert!(!verify("passw0rdXyz", &h));
        assert!(!needs_rehash(&h, &cost));
        let weak = hash_with(&HashCost { memory_kib: 4096, iterations: 1, parallelism: 1 }, "x").expect("hash");
        assert!(needs_rehash(&weak, &cost));
        assert!(needs_rehash("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", &cost));
    }

    #[test]
    fn verify_agrees_with_the_crate_for_any_argon2_variant_and_cost() {
        use argon2::password_hash::PasswordVerifier;
        for (alg, m, t) in [(Algorithm::Argon2id, 8192, 1), (Algorithm::Argon2i, 8192, 2), (Algorithm::Argon2d, 4096, 1), (Algorithm::Argon2id, 19 * 1024, 2)] {
            let a = Argon2::new(alg, Version::V0x13, Params::new(m, t, 1, None).expect("params"));
            let h = a.hash_password(b"right one", &SaltString::generate(&mut OsRng)).expect("hash").to_string();
            let parsed = PasswordHash::new(&h).expect("phc");
            for pw in ["right one", "wrong one", "", "right one "] {
                assert_eq!(verify(pw, &h), Argon2::default().verify_password(pw.as_bytes(), &parsed).is_ok(), "{alg:?} {pw:?}");
            }
            assert!(verify("right one", &h));
        }
        assert!(!verify("x", "not a hash"));
        assert!(!verify("x", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$"));
    }

    #[test]
    fn no_truncation_of_long_passwords() {
        let cost = HashCost { memory_kib: 1024, iterations: 1, parallelism: 1 };
        let a = "A".repeat(100) + "b1";
        let h = hash_with(&cost, &a).expect("hash");
        assert!(!verify(&("A".repeat(100) + "b2"), &h));
    }

    #[test]
    fn initial_passwords_are_unambiguous_and_meet_the_rules() {
        for _ in 0..50 {
            let p = initial_password();
            assert_eq!(p.len(), 14);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()) && p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(!p.contains(['0', 'O', '1', 'l', 'I']));
        }
    }

    #[tokio::test]
    async fn full_hasher_says_busy_instead_of_waiting() {
        let h = Hasher::new(HashCost::default(), 1);
        let h2 = h.clone();
        let slow = tokio::spawn(async move { h2.hash("first one").await });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(matches!(h.hash("second").await, Err(AppError::Busy)));
        assert!(slow.await.expect("join").is_ok());
        assert!(h.hash("third").await.is_ok());
    }
}
