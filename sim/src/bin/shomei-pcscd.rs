//! `shomei-pcscd DIR VPCD_PORT [extra pcscd args...]`
//!
//! Starts a private pcscd (one that does not touch the system socket) whose only
//! reader driver is vpcd (vsmartcard) listening on 127.0.0.1:VPCD_PORT, which
//! gives the readers "Virtual PCD 00 00" (VPCD_PORT) and "Virtual PCD 00 01"
//! (VPCD_PORT + 1).
//!
//! pcscd 1.9.9 ignores PCSCLITE_CSOCK_NAME, but it accepts a listening socket
//! passed systemd-style. So this program:
//!   1. writes DIR/reader.conf.d/vpcd,
//!   2. binds and listens on the unix socket DIR/pcscd.comm (mode 666),
//!   3. puts that socket on fd 3 (without close-on-exec),
//!   4. sets LISTEN_FDS=1 and LISTEN_PID=<own pid>,
//!   5. execs `pcscd --foreground -c DIR/reader.conf.d [extra args]`
//!      (exec keeps the pid, so LISTEN_PID matches pcscd's own pid).
//!
//! Clients then use `PCSCLITE_CSOCK_NAME=DIR/pcscd.comm`. The socket accepts
//! connections as soon as this program has run (they are served once pcscd is
//! up). Pass `-i` or `-d` to see "pcsc-lite 1.9.9 daemon ready." on stdout/stderr.
//! The pcscd binary can be overridden with the env var SHOMEI_PCSCD_BIN.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use clap::builder::{OsStringValueParser, TypedValueParser as _};
use clap::Parser;

const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

#[derive(Parser)]
#[command(
    name = "shomei-pcscd",
    version,
    about = "Starts a private pcscd (own socket DIR/pcscd.comm) whose only reader is vpcd on 127.0.0.1:VPCD_PORT",
    after_help = "clients: PCSCLITE_CSOCK_NAME=DIR/pcscd.comm; readers \"Virtual PCD 00 00\" (port), \"Virtual PCD 00 01\" (port+1)"
)]
struct Args {
    /// Directory for reader.conf.d/vpcd and the socket pcscd.comm (created if missing)
    #[arg(value_name = "DIR", value_parser = OsStringValueParser::new().map(PathBuf::from))]
    dir: PathBuf,
    /// TCP port vpcd listens on for the first reader (the second uses VPCD_PORT + 1)
    #[arg(value_name = "VPCD_PORT", value_parser = parse_vpcd_port)]
    port: u16,
    /// Extra arguments passed on to pcscd (e.g. -i or -d)
    #[arg(value_name = "PCSCD_ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    extra: Vec<OsString>,
}

fn parse_vpcd_port(port: &str) -> Result<u16, String> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && *p != u16::MAX)
        .ok_or_else(|| format!("VPCD_PORT must be a port number (1..65534), got {port:?}"))
}

fn main() -> anyhow::Result<()> {
    let Args { dir, port, extra } = Args::parse();

    let dir = if dir.is_absolute() { dir } else { std::env::current_dir()?.join(dir) };
    let conf_dir = dir.join("reader.conf.d");
    std::fs::create_dir_all(&conf_dir).with_context(|| format!("creating {}", conf_dir.display()))?;
    let conf = format!(
        "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME   /dev/null:0x{port:X}\nLIBPATH      {VPCD_DRIVER}\nCHANNELID    0x{port:X}\n"
    );
    std::fs::write(conf_dir.join("vpcd"), conf).context("writing reader.conf.d/vpcd")?;

    let sock_path = dir.join("pcscd.comm");
    match std::fs::remove_file(&sock_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", sock_path.display())),
    }
    // UnixListener::bind also listen()s.
    let listener = UnixListener::bind(&sock_path).with_context(|| format!("binding {}", sock_path.display()))?;
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o666))?;

    put_on_fd3(listener.as_raw_fd()).context("moving the listening socket to fd 3")?;
    // `listener` (its original fd, close-on-exec) may be dropped by exec; fd 3 stays.

    let pcscd = std::env::var_os("SHOMEI_PCSCD_BIN").unwrap_or_else(|| "pcscd".into());
    let err = Command::new(&pcscd)
        .arg("--foreground")
        .arg("-c")
        .arg(&conf_dir)
        .args(&extra)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", std::process::id().to_string())
        .env_remove("LISTEN_FDNAMES")
        .exec();
    drop(listener);
    bail!("exec {pcscd:?} failed: {err}")
}

/// Makes fd 3 refer to the socket `fd`, inheritable across exec.
#[allow(unsafe_code)]
fn put_on_fd3(fd: RawFd) -> std::io::Result<()> {
    const TARGET: RawFd = 3;
    if fd == TARGET {
        // SAFETY: fcntl(F_SETFD) on an fd we own only changes its flags; it touches no memory.
        if unsafe { libc::fcntl(TARGET, libc::F_SETFD, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    } else {
        // SAFETY: dup2 touches no memory; `fd` is our open listening socket. Whatever
        // fd 3 was is closed and replaced: in this single-threaded program nothing else
        // uses fd 3 between here and the exec. The new descriptor does not carry
        // FD_CLOEXEC, so pcscd inherits it.
        if unsafe { libc::dup2(fd, TARGET) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
