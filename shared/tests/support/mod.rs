//! The property tests' runner, shared by `shared/tests/prop.rs`,
//! `backend/tests/prop/main.rs` and `station/tests/prop/main.rs` (the last
//! two include this file with `#[path]`).
//!
//! * Cases per property: `SHOMEI_PROPTEST_CASES` when set, else the
//!   property's own default (small enough for CI). Properties that make a
//!   loopback round trip per case run an eighth of `SHOMEI_PROPTEST_CASES`.
//! * Seed: `SHOMEI_PROPTEST_SEED` when set (to replay a failure), else a fresh
//!   one each run; it is printed with the result.
//! * No failure files are written (no `proptest-regressions/` in the tree):
//!   a failure prints the seed and proptest's minimal failing input.
//! * Each property prints `proptest-cases: NAME CASES seed=SEED` (and
//!   `proptest-failure: ...` when it fails) on stderr; `deploy/fuzz` runs
//!   the tests with `--nocapture` and adds these lines up.
#![allow(dead_code)]

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

/// Cases for a property whose default is `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("SHOMEI_PROPTEST_CASES").ok().and_then(|v| v.trim().parse::<u32>().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// Cases for a property that makes a loopback network round trip per case.
pub fn loopback_cases(default: u32) -> u32 {
    match std::env::var("SHOMEI_PROPTEST_CASES").ok().and_then(|v| v.trim().parse::<u32>().ok()).filter(|n| *n > 0) {
        Some(n) => (n / 8).max(1),
        None => default,
    }
}

fn seed() -> u64 {
    if let Some(s) = std::env::var("SHOMEI_PROPTEST_SEED").ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        return s;
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}

/// Runs `test` on `cases` values of `strategy`; panics (failing the `#[test]`)
/// with the seed and the minimal failing input when the property does not hold.
/// A panic inside `test` counts as a failure of the property, like an `Err`.
pub fn check<S, F>(name: &str, cases: u32, strategy: S, test: F)
where
    S: Strategy,
    S::Value: Debug,
    F: Fn(S::Value) -> Result<(), TestCaseError>,
{
    let seed = seed();
    let config = Config {
        cases,
        failure_persistence: None,
        // shrinking a failure ends within two minutes whatever the property
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut key = [0u8; 32];
    for (i, chunk) in key.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.rotate_left(i as u32 * 16).to_le_bytes());
    }
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let ran = AtomicU64::new(0);
    let result = runner.run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    let ran = ran.load(Ordering::Relaxed);
    eprintln!("proptest-cases: {name} {ran} seed={seed}");
    if let Err(e) = result {
        eprintln!("proptest-failure: {name} SHOMEI_PROPTEST_SEED={seed}: {e}");
        panic!("property {name} does not hold (replay with SHOMEI_PROPTEST_SEED={seed}): {e}");
    }
}

/// `prop_assert!`-style check usable in helpers that return `Result<(), TestCaseError>`.
pub fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}
