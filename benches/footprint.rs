//! Footprint benchmark for the ARM device builds: the stripped size of `easyncd` (release,
//! `--no-default-features --features device`) per target, and its RSS during a sync of
//! 1,000 mails and idle afterwards, the daemon running under qemu-user against the
//! in-process lab on this host (loopback HTTP). It prints one table; the targets (under
//! 3 MiB stripped, sync RSS under 16 MiB, idle under 4 MiB) are informational: the bench
//! exits 0 either way and panics only when something does not work at all.
//!
//! `board/cross/build.sh --footprint` cross-builds the binaries and runs this with
//! `EASYNC_FOOTPRINT_DIR` (the cross target dir, default `target/cross`) and
//! `EASYNC_FOOTPRINT_RUNNERS` (`triple=command;...`, the command that starts an ARM binary,
//! e.g. `chroot /opt/cross-trixie qemu-arm -L /usr/arm-linux-gnueabihf`). Also read:
//! `EASYNC_FOOTPRINT_ITEMS` (default 1000), `EASYNC_FOOTPRINT_IDLE_SECS` (default 20).
//!
//! RSS is that of the qemu-user process, so it includes the emulator (its own heap and the
//! translated code): the "qemu floor" column is the peak RSS of `easyncd --help` under the
//! same runner, and "sync-floor" / "idle-floor" subtract it as an estimate of the daemon's own
//! share. A device measurement (or the native x86_64 figures of `benches/daemon.rs`) is the
//! real reference.

#[path = "../tests/common/daemon.rs"]
mod daemon;
#[path = "common/rusage.rs"]
mod rusage;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon::{DaemonSetup, count_item_files, lab_device};
use easync::lab::{self, seed::folder};

const DEFAULT_ITEMS: u64 = 1_000;
const DEFAULT_IDLE_SECS: u64 = 20;
/// Body bytes per mail (the MIME message is a little larger).
const BODY_BYTES: usize = 4_000;
/// The heartbeat of the parked daemon: longer than the idle window.
const HEARTBEAT_SECS: u64 = 900;

const SIZE_TARGET_MIB: f64 = 3.0;
const SYNC_RSS_TARGET_MIB: f64 = 16.0;
const IDLE_RSS_TARGET_MIB: f64 = 4.0;

const DEFAULT_RUNNERS: &str = "aarch64-unknown-linux-gnu=chroot /opt/cross-trixie qemu-aarch64 -L /usr/aarch64-linux-gnu;\
     armv7-unknown-linux-gnueabihf=chroot /opt/cross-trixie qemu-arm -L /usr/arm-linux-gnueabihf";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `(triple, runner words)` from `triple=command;triple=command`.
fn runners() -> Vec<(String, Vec<String>)> {
    let text = std::env::var("EASYNC_FOOTPRINT_RUNNERS").unwrap_or_else(|_| DEFAULT_RUNNERS.into());
    text.split(';')
        .filter_map(|entry| entry.trim().split_once('='))
        .map(|(triple, command)| {
            let words = command.split_whitespace().map(String::from).collect();
            (triple.trim().to_string(), words)
        })
        .collect()
}

/// A field of `/proc/<pid>/status` in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The state letter of `/proc/<pid>/stat` (`S` sleeping, `R` running ...).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether the ELF file still carries a symbol table (`.symtab` among its section names).
fn has_symbol_table(bytes: &[u8]) -> bool {
    bytes.windows(8).any(|w| w == b".symtab\0")
}

fn start_lab(items: usize) -> lab::Handle {
    let mut config = lab::Config::default();
    let loopback = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = loopback;
    config.https = None;
    config.admin = loopback;
    config.items = 0;
    let handle = lab::Server::start(config).expect("the lab starts");
    let line = "footprint of the device daemon under emulation, one line of text\r\n";
    let body: String = line.repeat(BODY_BYTES / line.len() + 1)[..BODY_BYTES].to_string();
    for i in 0..items {
        handle
            .add_mail(folder::INBOX, &format!("footprint mail {i:05}"), &body)
            .expect("mail added");
    }
    handle
}

/// What one target measured.
struct Row {
    triple: String,
    stripped_bytes: Option<(u64, bool)>,
    floor_kib: Option<u64>,
    sync: Option<SyncFigures>,
    problem: Option<String>,
}

struct SyncFigures {
    sync_secs: f64,
    sync_peak_kib: u64,
    idle_kib: u64,
    stored: usize,
}

/// Runs the daemon (long-running mode, no bus) under `runner` against a fresh lab with
/// `items` mails: the peak RSS up to its first "synced" line, then the RSS once it has
/// sat parked in its Ping for `idle`.
fn measure_sync(
    runner: &[String],
    easyncd: &Path,
    items: usize,
    idle: Duration,
) -> Result<SyncFigures, String> {
    let handle = start_lab(items);
    let push = format!(
        "[push]\nheartbeat_min = 60\nheartbeat_max = {HEARTBEAT_SECS}\nheartbeat_start = {HEARTBEAT_SECS}\n"
    );
    let setup = DaemonSetup::new(&handle, "footprint", &push);
    let mut command = Command::new(&runner[0]);
    command
        .args(&runner[1..])
        .arg(easyncd)
        .arg("--config")
        .arg(&setup.config_path)
        .args(["-v", "--bus", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let pid = child.id();
    let mut log = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    let mut last = String::new();
    let mut peak = 0;
    let outcome = loop {
        line.clear();
        match log.read_line(&mut line) {
            Ok(0) | Err(_) => {
                break Err(format!(
                    "easyncd ended before its first cycle ({:?}), saying: {}",
                    child.wait(),
                    last.trim_end()
                ));
            }
            Ok(_) => last.clone_from(&line),
        }
        peak = peak.max(status_kib(pid, "VmHWM:").unwrap_or(0));
        if line.contains(": error: ") {
            break Err(format!("easyncd failed: {}", line.trim_end()));
        }
        if line.contains(": info: synced ") {
            break Ok(started.elapsed());
        }
    };
    let result = outcome.and_then(|synced_after| {
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        // Parked: the lab's request count for the device settles and the process sleeps.
        let requests = || lab_device(&handle, &setup.device_id).map(|d| d["requests"].clone());
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = requests();
        let mut stable_since = Instant::now();
        loop {
            if Instant::now() > deadline {
                return Err("easyncd never parked in its Ping".into());
            }
            std::thread::sleep(Duration::from_millis(50));
            let now = requests();
            if now != last {
                last = now;
                stable_since = Instant::now();
            } else if stable_since.elapsed() >= Duration::from_secs(1)
                && process_state(pid) == Some('S')
            {
                break;
            }
        }
        std::thread::sleep(idle);
        let idle_kib = status_kib(pid, "VmRSS:").ok_or("easyncd is gone while idle")?;
        Ok(SyncFigures {
            sync_secs: synced_after.as_secs_f64(),
            sync_peak_kib: peak,
            idle_kib,
            stored: count_item_files(&setup.data()),
        })
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    result
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "over" }
}

fn main() {
    let dir = PathBuf::from(
        std::env::var("EASYNC_FOOTPRINT_DIR").unwrap_or_else(|_| "target/cross".into()),
    );
    let items = env_number("EASYNC_FOOTPRINT_ITEMS", DEFAULT_ITEMS) as usize;
    let idle = Duration::from_secs(env_number("EASYNC_FOOTPRINT_IDLE_SECS", DEFAULT_IDLE_SECS));

    let mut rows = Vec::new();
    let mut pending = Vec::new();
    for (triple, runner) in runners() {
        // Absolute: a chroot runner starts in its own root directory.
        let easyncd = std::path::absolute(dir.join(&triple).join("release").join("easyncd"))
            .expect("the current directory is readable");
        let mut row = Row {
            triple: triple.clone(),
            stripped_bytes: None,
            floor_kib: None,
            sync: None,
            problem: None,
        };
        match std::fs::read(&easyncd) {
            Ok(bytes) => row.stripped_bytes = Some((bytes.len() as u64, !has_symbol_table(&bytes))),
            Err(e) => {
                row.problem = Some(format!(
                    "{}: {e} (build it: board/cross/build.sh -t {triple})",
                    easyncd.display()
                ));
                rows.push(row);
                continue;
            }
        }
        if runner.is_empty() {
            row.problem = Some("no runner given in EASYNC_FOOTPRINT_RUNNERS".into());
            rows.push(row);
            continue;
        }
        let mut help = Command::new(&runner[0]);
        help.args(&runner[1..]).arg(&easyncd).arg("--help");
        match rusage::run_to_end(&mut help, true).map(|u| u.ru_maxrss as u64) {
            Ok(kib) => row.floor_kib = Some(kib),
            Err(e) => row.problem = Some(e),
        }
        pending.push((rows.len(), runner, easyncd));
        rows.push(row);
    }
    // The syncs come after every floor: a lab's mailbox raises this process's RSS, which a
    // spawned child's ru_maxrss never goes below.
    for (index, runner, easyncd) in pending {
        let row = &mut rows[index];
        eprintln!(
            "{}: syncing {items} mails under {} ...",
            row.triple,
            runner.join(" ")
        );
        match measure_sync(&runner, &easyncd, items, idle) {
            Ok(figures) => row.sync = Some(figures),
            Err(e) => row.problem = Some(e),
        }
    }

    println!();
    println!(
        "easyncd footprint (device features, release; RSS of the qemu-user process, {items} mails with {}-byte bodies, idle after {} s)",
        BODY_BYTES,
        idle.as_secs()
    );
    println!(
        "{:<31} {:>10} {:>9} {:>6} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "target",
        "bytes",
        "MiB",
        "<3MiB",
        "qemu floor",
        "sync RSS",
        "sync-flr",
        "<16MiB",
        "idle RSS",
        "idle-flr",
        "<4MiB"
    );
    for row in &rows {
        let (bytes, size) = match row.stripped_bytes {
            Some((b, stripped)) => (
                format!("{b}"),
                format!(
                    "{:.2}{}",
                    b as f64 / 1048576.0,
                    if stripped { "" } else { "*" }
                ),
            ),
            None => ("-".into(), "-".into()),
        };
        let size_ok = row.stripped_bytes.map_or("-", |(b, _)| {
            verdict((b as f64 / 1048576.0) < SIZE_TARGET_MIB)
        });
        let floor = row.floor_kib.unwrap_or(0);
        let floor_text = row
            .floor_kib
            .map_or("-".into(), |k| format!("{:.1}", mib(k)));
        let (sync, sync_net, sync_ok, idle_text, idle_net, idle_ok) = match &row.sync {
            Some(s) => (
                format!("{:.1}", mib(s.sync_peak_kib)),
                format!("{:.1}", mib(s.sync_peak_kib.saturating_sub(floor))),
                verdict(mib(s.sync_peak_kib.saturating_sub(floor)) < SYNC_RSS_TARGET_MIB),
                format!("{:.1}", mib(s.idle_kib)),
                format!("{:.1}", mib(s.idle_kib.saturating_sub(floor))),
                verdict(mib(s.idle_kib.saturating_sub(floor)) < IDLE_RSS_TARGET_MIB),
            ),
            None => Default::default(),
        };
        println!(
            "{:<31} {:>10} {:>9} {:>6} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            row.triple,
            bytes,
            size,
            size_ok,
            floor_text,
            sync,
            sync_net,
            sync_ok,
            idle_text,
            idle_net,
            idle_ok
        );
        if let Some(s) = &row.sync {
            println!(
                "    sync of {items} mails: {:.1} s under qemu-user, {} item files stored{}",
                s.sync_secs,
                s.stored,
                if s.stored == items { "" } else { " (NOT all)" }
            );
        }
        if let Some(problem) = &row.problem {
            println!("    problem: {problem}");
        }
    }
    println!(
        "(MiB = 2^20 bytes; * = the file still has a symbol table; RSS in MiB; \"-flr\" = minus the qemu floor)"
    );
}
