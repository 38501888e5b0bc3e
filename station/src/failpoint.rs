//! Fault injection for the crash and watchdog tests (ST-5, ST-6).
//!
//! Compiled in only with the `failpoints` cargo feature, which only the test
//! crate turns on: a production build (`cargo build -p shomei-station`) has
//! none, and `SHOMEI_FAILPOINT` means nothing to it. With the feature,
//! `SHOMEI_FAILPOINT=<point>` makes the station die (abort, like a power cut)
//! or hang at that point. `shomei-station --version` says whether a build has
//! them.

/// True in a build with failpoints (shown by `--version`).
pub const COMPILED_IN: bool = cfg!(feature = "failpoints");

#[cfg(feature = "failpoints")]
fn armed() -> Option<&'static str> {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    POINT.get_or_init(|| std::env::var("SHOMEI_FAILPOINT").ok().filter(|p| !p.is_empty())).as_deref()
}

#[cfg(not(feature = "failpoints"))]
fn armed() -> Option<&'static str> {
    None
}

/// True when the failpoint `point` is armed (`SHOMEI_FAILPOINT` names one
/// point, or several separated by commas).
pub fn is(point: &str) -> bool {
    armed().is_some_and(|list| list.split(',').any(|p| p.trim() == point))
}

/// Dies here, like a power cut, when `point` is armed.
pub fn crash(point: &str) {
    if is(point) {
        tracing::error!(point, "failpoint reached: the station dies here (crash test)");
        std::process::abort();
    }
}

/// Never returns when `point` is armed and `when` holds (a hang for the watchdog tests).
pub async fn hang(point: &str, when: bool) {
    if when && is(point) {
        tracing::error!(point, "failpoint {point}: this task hangs here (watchdog test)");
        std::future::pending::<()>().await;
    }
}

/// True when `SHOMEI_FAILPOINT=fail-write-<step>`: the journal refuses to
/// write that step (a disk error at exactly that moment).
pub fn refuses_write(step: &str) -> bool {
    armed().is_some_and(|list| list.split(',').any(|p| p.trim().strip_prefix("fail-write-") == Some(step)))
}
