//! Daemon benchmark: the `easyncd` binary (release build) against the in-process lab over
//! loopback HTTP. Run with `cargo bench --bench daemon`; it prints one table, each figure with
//! its target and `ok`/`over` (the targets are informational: the bench exits 0 either way,
//! and panics only when something does not work at all).
//!
//! - Initial sync of `EASYNC_BENCH_MAILS` (default 10,000) mails of about 10 KiB MIME each:
//!   wall time, items/s, the daemon's CPU seconds and peak RSS from `wait4`'s rusage. The
//!   daemon is spawned by a helper process (this binary, `--spawner`) started before the lab
//!   holds the mailbox, since a child's `ru_maxrss` is never below its spawner's RSS
//!   high-water mark; the helper's floor (`/bin/true` measured the same way) is printed.
//! - Push latency: the daemon parked in a Ping, the lab's admin API adds a mail, and the
//!   time until the message appears in the Inbox's `new/` (inotify): median, p90, max of 20.
//! - Push latency after idle: the same with the daemon left alone for 7 s before each mail,
//!   so it has let go of its code pages (easyncd does so 5 s into a wait) and the Ping's
//!   answer finds them unmapped: median and max of 5.
//! - Idle while parked in a Ping with a 900 s heartbeat: RSS 1 s into the Ping and once the
//!   code pages are let go, and context switches (all threads) over
//!   `EASYNC_BENCH_IDLE_SECS` (default 60) seconds from then on, per minute.
//!
//! The daemon runs in its long-running mode (`easyncd -v`), started in one place,
//! [`start_parked_daemon`]; push rounds are measured on one running daemon, which parks again
//! after each.

#[path = "../tests/common/daemon.rs"]
mod daemon;
#[path = "common/rusage.rs"]
mod rusage;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use daemon::{DaemonSetup, admin, count_item_files, lab_device};
use easync::lab::{self, seed::folder};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

const EASYNCD: &str = env!("CARGO_BIN_EXE_easyncd");
const DEFAULT_MAILS: usize = 10_000;
/// Body bytes per mail; with the lab's headers the MIME message is about 10 KiB.
const BODY_BYTES: usize = 10_000;
const PUSH_ROUNDS: usize = 20;
/// Mails of the second, small mailbox for push latency.
const SMALL_MAILBOX: usize = 100;
const DEFAULT_IDLE_SECS: u64 = 60;
/// How long the daemon is left alone before the idle figures: past its 5 s release delay.
const SETTLE_SECS: u64 = 7;
const IDLE_PUSH_ROUNDS: usize = 5;
/// The heartbeat of the parked daemon: longer than any idle window measured here.
const HEARTBEAT_SECS: u64 = 900;
const SPAWNER_ARG: &str = "--spawner";

const PEAK_RSS_TARGET_MIB: f64 = 8.0;
const PUSH_MEDIAN_TARGET_MS: f64 = 50.0;
const IDLE_RSS_TARGET_MIB: f64 = 4.0;
const IDLE_WAKEUPS_TARGET: f64 = 0.0;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The spawner: runs commands to their end and reports their rusage.

/// What `wait4` said about a finished command.
struct Usage {
    wall: Duration,
    user: Duration,
    sys: Duration,
    max_rss_kib: u64,
}

/// Runs `argv` to its end (output to /dev/null); its wall time and rusage.
fn run_with_rusage(argv: &[&str]) -> Result<Usage, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let started = Instant::now();
    let usage = rusage::run_to_end(Command::new(program).args(args), false)?;
    let wall = started.elapsed();
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Usage {
        wall,
        user: seconds(usage.ru_utime),
        sys: seconds(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
    })
}

/// The spawner's side: one tab-separated command a line in, `ok WALL USER SYS MAXRSS_KIB`
/// (times in microseconds)
/// or `err MESSAGE` out.
fn spawner() {
    let mut stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let argv: Vec<&str> = line.split('\t').collect();
        let reply = match run_with_rusage(&argv) {
            Ok(u) => format!(
                "ok {} {} {} {}",
                u.wall.as_micros(),
                u.user.as_micros(),
                u.sys.as_micros(),
                u.max_rss_kib
            ),
            Err(e) => format!("err {}", e.replace('\n', " ")),
        };
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

/// A copy of this binary in `--spawner` mode, started while the bench is still small.
struct Spawner {
    child: Child,
    from: BufReader<ChildStdout>,
}

impl Spawner {
    fn start() -> Spawner {
        let exe = std::env::current_exe().expect("the bench executable");
        let mut child = Command::new(exe)
            .arg(SPAWNER_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the spawner starts");
        let from = BufReader::new(child.stdout.take().expect("piped stdout"));
        Spawner { child, from }
    }

    fn run(&mut self, argv: &[&str]) -> Result<Usage, String> {
        let to = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(to, "{}", argv.join("\t")).map_err(|e| format!("spawner: {e}"))?;
        let mut line = String::new();
        self.from
            .read_line(&mut line)
            .map_err(|e| format!("spawner: {e}"))?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["ok", wall, user, sys, rss] => {
                let n = |s: &str| {
                    s.parse::<u64>()
                        .map_err(|e| format!("spawner said {line:?}: {e}"))
                };
                Ok(Usage {
                    wall: Duration::from_micros(n(wall)?),
                    user: Duration::from_micros(n(user)?),
                    sys: Duration::from_micros(n(sys)?),
                    max_rss_kib: n(rss)?,
                })
            }
            _ => Err(format!("spawner: {}", line.trim_end())),
        }
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The mailbox.

/// A body of `len` bytes of lines of words (deterministic per `i`).
fn mail_body(i: usize, len: usize) -> String {
    const WORDS: [&str; 12] = [
        "device", "sync", "report", "battery", "sensor", "update", "kiosk", "network", "firmware",
        "status", "calendar", "meeting",
    ];
    let mut out = String::with_capacity(len + 80);
    let mut k = i as u64;
    while out.len() < len {
        let mut line = String::new();
        while line.len() < 70 {
            k = k
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            line.push_str(WORDS[(k >> 33) as usize % WORDS.len()]);
            line.push(' ');
        }
        out.push_str(line.trim_end());
        out.push_str("\r\n");
    }
    out.truncate(len);
    out
}

fn start_lab(mails: usize) -> lab::Handle {
    let mut config = lab::Config::default();
    let loopback = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    config.http = loopback;
    config.https = None;
    config.admin = loopback;
    config.items = 0;
    let handle = lab::Server::start(config).expect("the lab starts");
    for i in 0..mails {
        handle
            .add_mail(
                folder::INBOX,
                &format!("bench mail {i:05}"),
                &mail_body(i, BODY_BYTES),
            )
            .expect("mail added");
    }
    handle
}

// ---------------------------------------------------------------------------------------------
// The parked daemon.

/// A running daemon that has synced and sent its Ping, which the lab holds.
struct ParkedDaemon {
    child: Child,
}

/// Starts the daemon (long-running mode) and returns once it has logged its first cycle's
/// summary and is parked (see [`ParkedDaemon::wait_parked`]).
fn start_parked_daemon(handle: &lab::Handle, setup: &DaemonSetup) -> ParkedDaemon {
    let mut child = setup
        .command(EASYNCD, &["-v", "--bus", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("easyncd starts");
    let mut log = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = log.read_line(&mut line).expect("daemon log");
        assert!(
            n > 0,
            "easyncd ended before its first cycle: {:?}",
            child.wait()
        );
        assert!(!line.contains(": error: "), "easyncd failed: {line}");
        if line.contains(": info: synced ") {
            break;
        }
    }
    // The rest of the log is read (and dropped) on a thread so the daemon never blocks.
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    let mut daemon = ParkedDaemon { child };
    daemon.wait_parked(handle, setup);
    daemon
}

impl ParkedDaemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns once the lab's request count for the device has not moved for `SETTLE` and
    /// the process sleeps: its Ping is on the wire.
    fn wait_parked(&mut self, handle: &lab::Handle, setup: &DaemonSetup) {
        const SETTLE: Duration = Duration::from_millis(150);
        let requests = || lab_device(handle, &setup.device_id).map(|d| d["requests"].clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = requests();
        let mut stable_since = Instant::now();
        loop {
            assert!(Instant::now() < deadline, "easyncd never parked");
            assert!(
                matches!(self.child.try_wait(), Ok(None)),
                "easyncd exited instead of parking: {:?}",
                self.child.try_wait()
            );
            std::thread::sleep(Duration::from_millis(5));
            let now = requests();
            if now != last {
                last = now;
                stable_since = Instant::now();
            } else if stable_since.elapsed() >= SETTLE
                && process_state(self.child.id()) == Some('S')
            {
                return;
            }
        }
    }

    /// Stops the daemon (SIGTERM) and checks it exits cleanly.
    fn finish(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = self.child.wait().expect("wait for easyncd");
        assert!(status.success(), "easyncd after SIGTERM: {status}");
    }
}

/// The state letter of `/proc/<pid>/stat` (`S` sleeping, `R` running ...).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Adds a mail through the lab's admin API (as an operator's "deliver" would).
fn deliver(handle: &lab::Handle, subject: &str) {
    let (status, json) = admin(
        handle.admin_addr().expect("admin listener"),
        "POST",
        "/items",
        Some(&serde_json::json!({
            "folder": folder::INBOX, "subject": subject, "body": "pushed by the bench"
        })),
    );
    assert_eq!(status, 200, "POST /items: {json}");
}

/// Delivers a mail and returns the time until a message file appears in `maildir`'s `new/`
/// or `cur/` (inotify: a rename into either).
fn push_latency(handle: &lab::Handle, maildir: &Path, subject: &str) -> Duration {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK).expect("inotify");
    for sub in ["new", "cur"] {
        inotify
            .add_watch(
                &maildir.join(sub),
                AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE,
            )
            .expect("inotify watch");
    }
    let started = Instant::now();
    deliver(handle, subject);
    loop {
        match inotify.read_events() {
            Ok(events) => {
                let arrived = events.iter().any(|e| {
                    e.name
                        .as_ref()
                        .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                });
                if arrived {
                    return started.elapsed();
                }
            }
            Err(nix::errno::Errno::EAGAIN) => {}
            Err(e) => panic!("inotify: {e}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the pushed mail never arrived"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `PUSH_ROUNDS` push latencies, sorted: one running daemon; each round waits until it is
/// parked again and delivers one mail.
fn push_rounds(handle: &lab::Handle, setup: &DaemonSetup) -> Vec<Duration> {
    let inbox = setup.data().join("mail").join("Inbox");
    let mut latencies = Vec::new();
    let mut parked = start_parked_daemon(handle, setup);
    for round in 0..PUSH_ROUNDS {
        latencies.push(push_latency(handle, &inbox, &format!("pushed {round}")));
        parked.wait_parked(handle, setup);
    }
    parked.finish();
    latencies.sort();
    latencies
}

/// `IDLE_PUSH_ROUNDS` push latencies, sorted, each after `SETTLE_SECS` of quiet.
fn idle_push_rounds(handle: &lab::Handle, setup: &DaemonSetup) -> Vec<Duration> {
    let inbox = setup.data().join("mail").join("Inbox");
    let mut latencies = Vec::new();
    let mut parked = start_parked_daemon(handle, setup);
    for round in 0..IDLE_PUSH_ROUNDS {
        std::thread::sleep(Duration::from_secs(SETTLE_SECS));
        latencies.push(push_latency(
            handle,
            &inbox,
            &format!("pushed after idle {round}"),
        ));
        parked.wait_parked(handle, setup);
    }
    parked.finish();
    latencies.sort();
    latencies
}

/// VmRSS (KiB) and the context switches of all threads of `pid`.
fn rss_and_switches(pid: u32) -> (u64, u64) {
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = field(&status, "VmRSS:");
    let mut switches = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            switches +=
                field(&s, "voluntary_ctxt_switches:") + field(&s, "nonvoluntary_ctxt_switches:");
        }
    }
    (rss, switches)
}

// ---------------------------------------------------------------------------------------------
// The table.

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "over" }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let i = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    if std::env::args_os().nth(1).is_some_and(|a| a == SPAWNER_ARG) {
        spawner();
        return;
    }
    let mails = env_number("EASYNC_BENCH_MAILS", DEFAULT_MAILS as u64) as usize;
    let idle_secs = env_number("EASYNC_BENCH_IDLE_SECS", DEFAULT_IDLE_SECS).max(1);
    assert!(
        idle_secs + 30 < HEARTBEAT_SECS,
        "EASYNC_BENCH_IDLE_SECS must stay below the {HEARTBEAT_SECS} s heartbeat"
    );

    let mut spawner = Spawner::start();
    let floor = spawner.run(&["/bin/true"]);

    eprintln!("seeding the lab with {mails} mails ...");
    let handle = start_lab(mails);
    let push = format!(
        "[push]\nheartbeat_min = 60\nheartbeat_max = {HEARTBEAT_SECS}\nheartbeat_start = {HEARTBEAT_SECS}\n"
    );
    let setup = DaemonSetup::new(&handle, "bench", &push);
    let config = setup.config_path.display().to_string();

    // a. The initial sync.
    eprintln!("initial sync ...");
    let sync = spawner
        .run(&[EASYNCD, "--config", &config, "--once"])
        .unwrap_or_else(|e| panic!("easyncd --once: {e}"));
    spawner.stop();
    let data = setup.data();
    let stored = count_item_files(&data);
    assert_eq!(stored, mails, "every mail stored");
    let inbox = data.join("mail").join("Inbox");
    let bytes: u64 = ["new", "cur"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(inbox.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let mean_kib = bytes as f64 / mails.max(1) as f64 / 1024.0;

    // b. Push latency, with this mailbox and with a small one (where the lab's own time per
    // request, which grows with the folder, does not dominate).
    eprintln!("push latency ({PUSH_ROUNDS} rounds) ...");
    let latencies = push_rounds(&handle, &setup);
    let small = start_lab(SMALL_MAILBOX);
    let small_setup = DaemonSetup::new(&small, "benchsmall", &push);
    let out = small_setup
        .command(EASYNCD, &["--once"])
        .output()
        .expect("easyncd runs");
    assert!(out.status.success(), "easyncd --once: {out:?}");
    let small_latencies = push_rounds(&small, &small_setup);
    eprintln!("push latency after idle ({IDLE_PUSH_ROUNDS} rounds) ...");
    let idle_latencies = idle_push_rounds(&small, &small_setup);
    let parked = start_parked_daemon(&small, &small_setup);
    std::thread::sleep(Duration::from_secs(SETTLE_SECS));
    let small_parked_rss_mib = rss_and_switches(parked.pid()).0 as f64 / 1024.0;
    parked.finish();
    small.shutdown();

    // c. Idle while parked.
    eprintln!("idle for {idle_secs} s ...");
    let parked = start_parked_daemon(&handle, &setup);
    std::thread::sleep(Duration::from_secs(1));
    let rss_parked_mib = rss_and_switches(parked.pid()).0 as f64 / 1024.0;
    std::thread::sleep(Duration::from_secs(SETTLE_SECS - 1));
    let requests = || lab_device(&handle, &setup.device_id).map(|d| d["requests"].clone());
    let requests_before = requests();
    let (rss_start, switches_start) = rss_and_switches(parked.pid());
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (rss_end, switches_end) = rss_and_switches(parked.pid());
    assert_eq!(
        requests(),
        requests_before,
        "the daemon stayed parked in one Ping through the idle window"
    );
    parked.finish();
    let per_minute = (switches_end - switches_start) as f64 * 60.0 / idle_secs as f64;
    let idle_rss_mib = rss_start.max(rss_end) as f64 / 1024.0;

    // The table.
    let peak_mib = sync.max_rss_kib as f64 / 1024.0;
    let floor_text = match &floor {
        Ok(f) => format!("{:.1} MiB", f.max_rss_kib as f64 / 1024.0),
        Err(e) => format!("n/a ({e})"),
    };
    let wall = sync.wall.as_secs_f64();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!();
    println!(
        "easyncd ({profile} build) against the in-process lab over loopback HTTP; {mails} mails \
         of {mean_kib:.1} KiB on disk on average"
    );
    println!("{:<48} {:>18}  {:<10} verdict", "figure", "value", "target");
    let row = |name: &str, value: String, target: &str, ok: Option<bool>| {
        println!(
            "{name:<48} {value:>18}  {target:<10} {}",
            ok.map(verdict).unwrap_or("")
        );
    };
    row("initial sync: wall time", format!("{wall:.2} s"), "", None);
    row(
        "initial sync: items/s",
        format!("{:.0}", mails as f64 / wall),
        "",
        None,
    );
    row(
        "initial sync: daemon CPU user + sys",
        format!(
            "{:.2} + {:.2} s",
            sync.user.as_secs_f64(),
            sync.sys.as_secs_f64()
        ),
        "",
        None,
    );
    row(
        "initial sync: daemon peak RSS (ru_maxrss)",
        format!("{peak_mib:.1} MiB"),
        "< 8 MiB",
        Some(peak_mib < PEAK_RSS_TARGET_MIB),
    );
    row(
        "  spawner floor (/bin/true ru_maxrss)",
        floor_text,
        "",
        None,
    );
    for (what, sorted) in [
        (format!("{mails} mails"), &latencies),
        (format!("{SMALL_MAILBOX} mails"), &small_latencies),
    ] {
        let median = ms(percentile(sorted, 50));
        row(
            &format!("push latency ({what}): median of {PUSH_ROUNDS}"),
            format!("{median:.1} ms"),
            "< 50 ms",
            Some(median < PUSH_MEDIAN_TARGET_MS),
        );
        row(
            "  p90 / max",
            format!(
                "{:.1} / {:.1} ms",
                ms(percentile(sorted, 90)),
                ms(*sorted.last().expect("rounds"))
            ),
            "",
            None,
        );
    }
    row(
        &format!(
            "push latency after {SETTLE_SECS} s idle ({SMALL_MAILBOX} mails): median of {IDLE_PUSH_ROUNDS}"
        ),
        format!("{:.1} ms", ms(percentile(&idle_latencies, 50))),
        "< 50 ms",
        Some(ms(percentile(&idle_latencies, 50)) < PUSH_MEDIAN_TARGET_MS),
    );
    row(
        "  max",
        format!("{:.1} ms", ms(*idle_latencies.last().expect("rounds"))),
        "",
        None,
    );
    row(
        &format!("parked in Ping ({mails} mails), 1 s in: RSS"),
        format!("{rss_parked_mib:.1} MiB"),
        "",
        None,
    );
    row(
        &format!("idle in Ping ({mails} mails), code let go: RSS"),
        format!("{idle_rss_mib:.1} MiB"),
        "< 4 MiB",
        Some(idle_rss_mib < IDLE_RSS_TARGET_MIB),
    );
    row(
        &format!("idle in Ping ({idle_secs} s window): context switches"),
        format!("{per_minute:.1} /min"),
        "0 /min",
        Some(per_minute <= IDLE_WAKEUPS_TARGET),
    );
    row(
        &format!("idle in Ping ({SMALL_MAILBOX} mails), code let go: RSS"),
        format!("{small_parked_rss_mib:.1} MiB"),
        "< 4 MiB",
        Some(small_parked_rss_mib < IDLE_RSS_TARGET_MIB),
    );
    handle.shutdown();
}
