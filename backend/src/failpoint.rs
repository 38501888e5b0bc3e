//! Failpoints for tests (configuration keys `*.failpoint_hold_*`): a step
//! announces it has been reached by writing `<gate>.reached`, then waits (at
//! most a minute) until the gate file exists, so a test can act while the
//! step is held. Compiled in only with the `failpoints` cargo feature, which
//! only the test crate turns on; without it the keys are refused at start-up.

use std::path::Path;
use std::time::{Duration, Instant};

const LONGEST: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// True in a build with failpoints.
pub const COMPILED_IN: bool = cfg!(feature = "failpoints");

fn reached(gate: &Path) {
    let _ = std::fs::write(gate.with_extension("reached"), b"");
}

/// On a blocking thread.
pub fn hold(gate: Option<&Path>) {
    let Some(gate) = gate.filter(|_| COMPILED_IN) else { return };
    reached(gate);
    let end = Instant::now() + LONGEST;
    while !gate.exists() && Instant::now() < end {
        std::thread::sleep(POLL);
    }
}

/// In a task.
pub async fn hold_async(gate: Option<&Path>) {
    let Some(gate) = gate.filter(|_| COMPILED_IN) else { return };
    reached(gate);
    let end = Instant::now() + LONGEST;
    while !gate.exists() && Instant::now() < end {
        tokio::time::sleep(POLL).await;
    }
}
