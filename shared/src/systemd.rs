//! The systemd notify protocol (sd_notify(3)) without libsystemd: datagrams
//! such as `READY=1` or `WATCHDOG=1` sent to the socket named in
//! `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). Without that
//! variable (not started by systemd) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go, read from the environment once at start.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: Option<String>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (`$WATCHDOG_PID`, when set,
    /// must be this process).
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty());
        let for_us = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok()).is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `state` (e.g. "READY=1\nSTATUS=serving"); errors are returned, not logged.
    pub fn notify(&self, state: &str) -> std::io::Result<()> {
        let Some(socket) = &self.socket else { return Ok(()) };
        let sock = UnixDatagram::unbound()?;
        // never wait on a full queue: a ping is sent from the runtime's threads
        sock.set_nonblocking(true)?;
        if let Some(name) = socket.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), socket)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("shomei-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier { socket: Some(path.display().to_string()), watchdog: None };
        n.notify("READY=1").expect("send");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1");
        let off = Notifier { socket: None, watchdog: None };
        assert!(off.notify("READY=1").is_ok() && !off.enabled());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
