//! One `easyncd` against an in-process lab while a hostile fault is switched on, measured:
//! whether it is still running, how much CPU it burnt and how many requests it sent while
//! the fault lasted, its peak RSS, and whether, once the fault is switched off, its store
//! comes back to exactly what the lab holds.
//!
//! Used by `tests/hostile.rs` (each fault a test, with assertions) and `benches/hostile.rs`
//! (the release binary, a table of figures); it needs `common/daemon.rs` beside it.

#![allow(dead_code)]

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::daemon::{
    DaemonSetup, disk_inventory, inventory_differences, lab_device, leftover_temp_files,
    server_inventory,
};
use easync::lab::seed::folder;
use easync::lab::{self, Fault, FaultKind, Handle};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A long heartbeat: whatever the daemon does while the fault lasts is not a heartbeat.
pub const PUSH: &str = "[push]\nheartbeat_min = 300\nheartbeat_start = 300\nheartbeat_max = 600\n";

/// One fault to try: the lab fault (its count is set by [`run`]) and how long it lasts.
pub struct Case {
    pub name: &'static str,
    pub fault: Fault,
    pub window: Duration,
}

impl Case {
    /// `kind` aimed at `command` (every command when `None`) for 6 s.
    pub fn new(name: &'static str, kind: FaultKind, command: Option<&'static str>) -> Case {
        Case {
            name,
            fault: Fault {
                command: command.map(str::to_string),
                ..Fault::new(kind)
            },
            window: Duration::from_secs(6),
        }
    }
}

/// What one run measured.
pub struct Outcome {
    pub name: &'static str,
    /// Still running when the fault was switched off.
    pub alive: bool,
    /// VmHWM at the end, in KiB.
    pub peak_rss_kib: u64,
    /// VmHWM just before the fault (after the first sync), in KiB.
    pub peak_before_kib: u64,
    /// The daemon ran under qemu-user (`board/cross/build.sh --test`): its memory figures are
    /// the emulator's, whose cache of translated code grows with every new path run.
    pub emulated: bool,
    /// CPU time over wall time while the fault lasted.
    pub cpu_percent: f64,
    /// Requests the lab saw from the device while the fault lasted.
    pub requests: u64,
    /// `STATUS=failed` notifications while the fault lasted.
    pub failures: usize,
    /// From switching the fault off to the store matching the lab (None: it never did).
    pub recovered_in: Option<Duration>,
    /// Differences between the lab and the store at the end (empty when in step).
    pub differences: Vec<String>,
    pub leftover_temp_files: Vec<String>,
    /// File descriptors open at the first sync and at the end.
    pub fds: (usize, usize),
    pub log: String,
}

impl Outcome {
    /// One line of figures.
    pub fn line(&self) -> String {
        format!(
            "{:<20} alive {:<5} peak RSS {:>6} KiB (+{:>5})  CPU {:>5.1} %  requests {:>4}  failures \
             reported {:>3}  recovered in {}  fds {}->{}  differences {}",
            self.name,
            self.alive,
            self.peak_rss_kib,
            self.peak_rss_kib.saturating_sub(self.peak_before_kib),
            self.cpu_percent,
            self.requests,
            self.failures,
            self.recovered_in
                .map_or("never".to_string(), |d| format!("{:.1} s", d.as_secs_f64())),
            self.fds.0,
            self.fds.1,
            self.differences.len()
        )
    }
}

/// `easyncd` in its long-running mode (`-v --bus none`), notifying a socket of its own.
pub struct Daemon {
    pub child: Child,
    notify: UnixDatagram,
    log: PathBuf,
}

impl Daemon {
    /// Starts `easyncd` for `setup`, its log in the setup's directory.
    pub fn spawn(setup: &DaemonSetup, easyncd: &str) -> Daemon {
        let socket = setup.dir.0.join("notify.sock");
        let _ = std::fs::remove_file(&socket);
        let notify = UnixDatagram::bind(&socket).expect("notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("socket timeout");
        let log = setup.dir.0.join("easyncd.log");
        let child = setup
            .command(easyncd, &["-v", "--bus", "none"])
            .env("NOTIFY_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("easyncd starts");
        Daemon { child, notify, log }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        let _ = kill(self.pid(), signal);
    }

    /// Notifications over `window`; stops early at one starting with `until`.
    pub fn notifications(&self, window: Duration, until: Option<&str>) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = until.is_some_and(|u| message.starts_with(u));
                seen.push(message);
                if done {
                    break;
                }
            }
        }
        seen
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds of CPU (user + system, all threads) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: the fields after it start past the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    ticks as f64 / per_second
}

/// Whether `pid` is an emulator (qemu-aarch64, qemu-arm, ...) running the daemon.
fn runs_under_qemu_user(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
        exe.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("qemu-"))
    })
}

/// A `/proc/<pid>/status` figure in KiB (`VmHWM`, `VmRSS`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How many file descriptors the process has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn requests(handle: &Handle, device_id: &str) -> u64 {
    lab_device(handle, device_id)
        .and_then(|d| d["requests"].as_u64())
        .unwrap_or(0)
}

/// Runs `case` against the `easyncd` binary at `easyncd`.
pub fn run(case: &Case, easyncd: &str) -> Outcome {
    let config = lab::Config {
        items: 6,
        ..lab::Config::default()
    };
    let handle = lab::Server::start(config).expect("the lab starts");
    let setup = DaemonSetup::new(&handle, &format!("hostile{}", case.name.len()), PUSH);
    let daemon = Daemon::spawn(&setup, easyncd);
    let pid = daemon.child.id();
    let first = daemon.notifications(Duration::from_secs(60), Some("STATUS=synced"));
    assert!(
        first.iter().any(|m| m.starts_with("STATUS=synced")),
        "{}: no first sync: {first:?}\n{}",
        case.name,
        daemon.log()
    );
    // Parked in its Ping now (or about to be).
    std::thread::sleep(Duration::from_millis(500));
    let fds_start = open_fds(pid);
    let peak_before_kib = status_kib(pid, "VmHWM");

    let (cpu_before, requests_before, started) = (
        cpu_seconds(pid),
        requests(&handle, &setup.device_id),
        Instant::now(),
    );
    // On until switched off.
    handle.inject_fault(Fault {
        count: 1_000_000,
        ..case.fault.clone()
    });
    // News on the server ends the parked Ping, and a sync is asked for: both run into the
    // fault.
    handle
        .add_mail(
            folder::INBOX,
            "during the fault",
            "sent while the server misbehaves",
        )
        .expect("mail added");
    daemon.signal(Signal::SIGUSR1);
    let during = daemon.notifications(case.window, None);
    let alive = matches!(
        std::fs::read_to_string(format!("/proc/{pid}/stat")),
        Ok(s) if !s.contains(") Z ")
    );
    let cpu_percent = (cpu_seconds(pid) - cpu_before) / started.elapsed().as_secs_f64() * 100.0;
    let requests = requests(&handle, &setup.device_id).saturating_sub(requests_before);
    let failures = during
        .iter()
        .filter(|m| m.starts_with("STATUS=failed"))
        .count();

    handle.clear_faults();
    handle
        .add_mail(
            folder::INBOX,
            "after the fault",
            "sent once the server is well",
        )
        .expect("mail added");
    let cleared = Instant::now();
    let mut recovered_in = None;
    let mut differences = Vec::new();
    while cleared.elapsed() < Duration::from_secs(150) && alive {
        daemon.signal(Signal::SIGUSR1);
        daemon.notifications(Duration::from_secs(2), Some("STATUS=synced"));
        differences =
            inventory_differences(&server_inventory(&handle), &disk_inventory(&setup.data()));
        if differences.is_empty() {
            recovered_in = Some(cleared.elapsed());
            break;
        }
    }
    let outcome = Outcome {
        name: case.name,
        alive,
        peak_rss_kib: status_kib(pid, "VmHWM"),
        emulated: runs_under_qemu_user(pid),
        peak_before_kib,
        cpu_percent,
        requests,
        failures,
        recovered_in,
        differences,
        leftover_temp_files: leftover_temp_files(&setup.data()),
        fds: (fds_start, open_fds(pid)),
        log: daemon.log(),
    };
    daemon.signal(Signal::SIGTERM);
    drop(daemon);
    handle.shutdown();
    outcome
}

/// Every hostile fault the lab has, each aimed where it hurts, at its full size.
pub fn all_cases() -> Vec<Case> {
    use FaultKind as K;
    let mut cases = vec![
        Case::new("huge-string", K::HugeString, Some("Sync")),
        Case::new("huge-string-table", K::HugeStringTable, Some("Sync")),
        Case::new("deep-nesting", K::DeepNesting, Some("Sync")),
        Case::new("many-folders", K::ManyFolders, Some("FolderSync")),
        Case::new("many-adds", K::ManyAdds, Some("Sync")),
        Case::new("huge-server-id", K::HugeServerId, Some("Sync")),
        Case::new("endless-more", K::EndlessMore, Some("Sync")),
        Case::new("ping-loop", K::PingLoop, Some("Ping")),
        Case::new("sync-key-reset", K::SyncKeyReset, Some("Sync")),
        Case::new("redirect-cycle", K::Redirect, None),
        Case::new("retry-with", K::RetryWith, None),
        Case::new("reset", K::Reset, Some("Sync")),
        Case::new("truncate", K::Truncate, Some("Sync")),
        Case::new("truncated-gzip", K::TruncatedGzip, Some("Sync")),
        Case::new("garbage", K::Garbage, Some("Sync")),
        Case::new("captive-portal", K::CaptivePortal, None),
        Case::new("empty", K::Empty, Some("Sync")),
        Case::new("server-error", K::ServerError, None),
    ];
    let mut week = Case::new("throttle-week", K::Throttle, None);
    week.fault.retry_after = Some("604800".into());
    cases.push(week);
    let mut past = Case::new("throttle-past", K::Throttle, None);
    past.fault.retry_after = Some("Wed, 21 Oct 2015 07:28:00 GMT".into());
    cases.push(past);
    let mut stall = Case::new("stall", K::Stall, Some("FolderSync"));
    stall.window = Duration::from_secs(8);
    cases.push(stall);
    cases
}
