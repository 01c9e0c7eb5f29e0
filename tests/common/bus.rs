//! A private `dbus-daemon` for a test: a session-style bus (everyone may do anything) or a
//! system-style bus (deny by default, like Debian's system.conf, plus the policy files of a
//! directory — where the test puts easync's `org.easync.conf`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private bus.
pub struct PrivateBus {
    child: Child,
    pub address: String,
    pub socket: PathBuf,
}

/// What kind of bus to start.
pub enum Kind<'a> {
    Session,
    /// Deny-by-default with the policy files in this directory.
    System {
        policy_dir: &'a Path,
    },
}

impl PrivateBus {
    /// Starts `dbus-daemon` with its socket and configuration in `dir`.
    pub fn start(dir: &Path, kind: Kind<'_>) -> PrivateBus {
        let socket = dir.join("bus.sock");
        let policy = match kind {
            Kind::Session => "<type>session</type>\n<policy context=\"default\">\n  \
                 <allow send_destination=\"*\" eavesdrop=\"true\"/>\n  \
                 <allow eavesdrop=\"true\"/>\n  <allow own=\"*\"/>\n</policy>\n"
                .to_string(),
            Kind::System { policy_dir } => format!(
                "<type>system</type>\n<policy context=\"default\">\n  <allow user=\"*\"/>\n  \
                 <deny own=\"*\"/>\n  <deny send_type=\"method_call\"/>\n  \
                 <allow send_type=\"signal\"/>\n  \
                 <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n  \
                 <allow send_requested_reply=\"true\" send_type=\"error\"/>\n  \
                 <allow receive_type=\"method_call\"/>\n  \
                 <allow receive_type=\"method_return\"/>\n  \
                 <allow receive_type=\"error\"/>\n  <allow receive_type=\"signal\"/>\n  \
                 <allow send_destination=\"org.freedesktop.DBus\" \
                 send_interface=\"org.freedesktop.DBus\"/>\n  \
                 <allow send_destination=\"org.freedesktop.DBus\" \
                 send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n  \
                 <allow send_destination=\"org.freedesktop.DBus\" \
                 send_interface=\"org.freedesktop.DBus.Properties\"/>\n\
                 </policy>\n<includedir>{}</includedir>\n",
                policy_dir.display()
            ),
        };
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n\
                 {policy}<listen>unix:path={}</listen>\n<auth>EXTERNAL</auth>\n</busconfig>\n",
                socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dbus-daemon runs (tests/run.sh installs it)");
        // The socket file appears at bind(), before listen(): wait until a connection is
        // accepted, or a client racing the daemon gets "connection refused".
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "dbus-daemon accepts no connection"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateBus {
            child,
            address: format!("unix:path={}", socket.display()),
            socket,
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
