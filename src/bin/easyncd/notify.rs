//! The systemd service notification protocol (sd_notify): READY, STATUS, STOPPING and
//! WATCHDOG datagrams to `$NOTIFY_SOCKET`, and the watchdog period from `$WATCHDOG_USEC`.
//! Outside systemd (no socket in the environment) every call does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, if anywhere.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// The notifier systemd's environment describes. A socket that cannot be used is
    /// logged once and then ignored: the service still runs.
    pub fn from_env() -> Notifier {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { target: None };
        };
        let bytes = path.as_encoded_bytes();
        let address = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name),
            None => SocketAddr::from_pathname(&path),
        };
        // Non-blocking: a manager that stops reading must never stall the daemon (a full
        // queue drops the notification instead).
        let target = address
            .and_then(|a| {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                Ok((socket, a))
            })
            .map_err(|e| {
                log::warn!(
                    "NOTIFY_SOCKET {} is unusable ({e}): systemd will not hear from easyncd",
                    path.to_string_lossy()
                )
            })
            .ok();
        Notifier { target }
    }

    /// Sends `message` (e.g. `READY=1`, `STATUS=...`); failures are logged at debug level
    /// (the manager may have gone away while we stop).
    pub fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), address) {
                log::debug!("sd_notify {message:?}: {e}");
            }
        }
    }

    /// `STATUS=` with the line made safe (one line, bounded).
    pub fn status(&self, line: &str) {
        let mut text: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.len() > 200 {
            let mut cut = 200;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        self.send(&format!("STATUS={text}"));
    }
}

/// Half the watchdog period systemd asks for (`WatchdogSec=`), if it asks this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
