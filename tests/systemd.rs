//! The shipped systemd unit and D-Bus activation file: `systemd-analyze verify` accepts the
//! unit (with ExecStart pointed at the built daemon), it carries the keys the packaging
//! promises (notify, watchdog, restart, credential, state directory, hardening), its
//! `systemd-analyze security` exposure stays low, and the activation file names the unit.

use std::path::{Path, PathBuf};
use std::process::Command;

fn board(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("board")
        .join(path)
}

/// `key=value` lines of the `[section]` of a unit-style file (comments skipped).
fn keys(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

fn value<'a>(keys: &'a [(String, String)], key: &str) -> Option<&'a str> {
    keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn analyze_available() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The unit with ExecStart pointing at the daemon this build made, in a scratch folder.
fn unit_for_this_build() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("easync-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(board("systemd/easyncd.service"))
        .unwrap()
        .replace("/usr/bin/easyncd", env!("CARGO_BIN_EXE_easyncd"));
    let unit = dir.join("easyncd.service");
    std::fs::write(&unit, text).unwrap();
    (dir, unit)
}

#[test]
fn the_unit_carries_the_promised_keys() {
    let text = std::fs::read_to_string(board("systemd/easyncd.service")).unwrap();
    let service = keys(&text, "Service");
    for (key, expected) in [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("BusName", "org.easync"),
        ("LoadCredential", "password:/etc/easync/password"),
        ("StateDirectory", "easync"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("KillMode", "control-group"),
    ] {
        assert_eq!(value(&service, key), Some(expected), "{key}");
    }
    assert!(value(&service, "WatchdogSec").is_some_and(|v| !v.is_empty() && v != "0"));
    assert!(
        value(&service, "ReadWritePaths").is_some(),
        "the data partition is writable"
    );
    let filter = value(&service, "SystemCallFilter").unwrap();
    assert!(
        filter.contains("@system-service") && filter.contains("@mount"),
        "{filter}"
    );
    // Only what the wipe and the hooks need.
    let caps: Vec<&str> = value(&service, "CapabilityBoundingSet")
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(caps.contains(&"CAP_SYS_ADMIN"), "unmount and erase need it");
    for never in [
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_SYS_MODULE",
        "CAP_SYS_PTRACE",
        "CAP_SYS_BOOT",
    ] {
        assert!(!caps.contains(&never), "{never} is not needed");
    }
    let install = keys(&text, "Install");
    assert_eq!(value(&install, "WantedBy"), Some("multi-user.target"));
}

#[test]
fn systemd_analyze_verifies_the_unit_and_rates_it() {
    if !analyze_available() {
        println!("SKIPPED: systemd-analyze is not installed (tests/run.sh installs systemd)");
        return;
    }
    let (dir, unit) = unit_for_this_build();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(verify.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("easyncd.service:"),
        "warnings about the unit: {said}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout).into_owned();
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for easyncd.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    println!("systemd-analyze security: exposure {exposure} (0 safest, 10 unsafe)");
    assert!(exposure < 5.0, "the unit is hardened: {report}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_activation_file_starts_the_unit() {
    let text = std::fs::read_to_string(board("dbus/org.easync.service")).unwrap();
    let service = keys(&text, "D-BUS Service");
    assert_eq!(value(&service, "Name"), Some("org.easync"));
    assert_eq!(value(&service, "SystemdService"), Some("easyncd.service"));
    assert_eq!(value(&service, "User"), Some("root"));
}
