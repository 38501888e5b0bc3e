//! Failpoints for tests (configuration keys `*.failpoint_hold_*`, unset in
//! production): a step announces it has been reached by writing
//! `<gate>.reached`, then waits (at most a minute) until the gate file exists,
//! so a test can act while the step is held.

use std::path::Path;
use std::time::{Duration, Instant};

const LONGEST: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

fn reached(gate: &Path) {
    let _ = std::fs::write(gate.with_extension("reached"), b"");
}

/// On a blocking thread.
pub fn hold(gate: Option<&Path>) {
    let Some(gate) = gate else { return };
    reached(gate);
    let end = Instant::now() + LONGEST;
    while !gate.exists() && Instant::now() < end {
        std::thread::sleep(POLL);
    }
}

/// In a task.
pub async fn hold_async(gate: Option<&Path>) {
    let Some(gate) = gate else { return };
    reached(gate);
    let end = Instant::now() + LONGEST;
    while !gate.exists() && Instant::now() < end {
        tokio::time::sleep(POLL).await;
    }
}
