//! A simulator as a child process for the sim's own tests.

use anyhow::{Context as _, Result};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The simulator, stopped when dropped.
pub struct Sim {
    child: Child,
    pub base: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `exe` with `args` (which give it `--listen 127.0.0.1:0`) and reads
/// its address from the READY line ("READY listening on http://ADDR ...").
pub fn start(exe: &str, args: &[&std::ffi::OsStr]) -> Result<Sim> {
    let mut child = Command::new(exe).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().with_context(|| format!("starting {exe}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line).context("reading the READY line")?;
    let base = line
        .strip_prefix("READY listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_string();
    Ok(Sim { child, base })
}
