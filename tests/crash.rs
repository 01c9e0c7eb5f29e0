//! Crash test: `easyncd --once` killed with SIGKILL at pseudo-random points of an initial sync
//! of a few thousand items from the in-process lab, restarted after each kill, until one run
//! completes. Then the store must equal the server: every item exactly once, nothing extra,
//! no temporary file left, a state file that loads as written, and a further run that changes
//! nothing.
//!
//! A third test does the same to uploads: between the kills the device makes contacts,
//! tasks and notes (and deletes some again); at the end each kept one is on the server
//! exactly once and each deleted one is not.
//!
//! The kill points come from a seeded generator; the seed is printed and
//! `EASYNC_CRASH_SEED=N` repeats a run. [`kill_and_restart`] takes a closure run before each
//! start (the upload test makes its local changes there).

#![cfg(feature = "lab")]

mod common;

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{
    DaemonSetup, Rng, count_item_files, disk_inventory, inventory_differences, inventory_len,
    item_files, leftover_temp_files, server_inventory,
};
use common::lab::Lab;
use easync::lab::seed::folder;
use easync::store::state::{Loaded, StateFile};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const EASYNCD: &str = env!("CARGO_BIN_EXE_easyncd");

/// Kills that must hit a running daemon per test.
const MIN_KILLS: usize = 50;
/// Starts of the daemon at most per phase (a bound in case runs keep finishing by themselves).
const MAX_STARTS: usize = 400;

/// The seed of this run: `EASYNC_CRASH_SEED`, else the clock.
fn seed() -> u64 {
    let seed = common::daemon::seed_from("EASYNC_CRASH_SEED");
    eprintln!("crash test seed {seed} (EASYNC_CRASH_SEED={seed} repeats these kill points)");
    seed
}

/// A lab seeded with `generated` items of every class (the lab's generator: that many mails,
/// half as many contacts, a quarter as many events, tasks and notes) plus `extra_mails` in the
/// Inbox, and a device configured for it.
fn crash_lab(generated: usize, extra_mails: usize, tag: &str) -> (Lab, DaemonSetup) {
    let mut config = Lab::default_config();
    config.items = generated;
    let lab = Lab::start(config);
    for i in 0..extra_mails {
        lab.handle
            .add_mail(
                folder::INBOX,
                &format!("crash test mail {i:05}"),
                &format!(
                    "Message {i} of the crash test.\r\n{}",
                    "filler text ".repeat(20)
                ),
            )
            .expect("mail added");
    }
    let setup = DaemonSetup::new(&lab.handle, tag, "");
    (lab, setup)
}

/// Where the kills should land.
#[derive(Clone, Copy, Debug)]
struct KillPolicy {
    /// Kills that must hit a running daemon.
    min_kills: usize,
    /// Share of kills (percent) after a random delay within the start-up window (negotiation,
    /// provisioning, FolderSync, the first Sync); the others wait for new item files.
    early_percent: u64,
    /// The start-up window until it is measured (the first new file seen).
    early_window: Duration,
}

/// What a phase of kills did.
#[derive(Debug, Default)]
struct KillReport {
    starts: usize,
    /// Kills that hit a running daemon: in the start-up window / after new files.
    early_kills: usize,
    progress_kills: usize,
    /// Runs that ended by themselves with status 0 before their kill.
    completed: usize,
    /// Runs that ended by themselves otherwise: (status, stderr).
    failures: Vec<(String, String)>,
    /// Where each kill that hit was aimed: `37ms` after the start, or `+41f` new files.
    points: Vec<String>,
}

impl KillReport {
    fn kills(&self) -> usize {
        self.early_kills + self.progress_kills
    }
}

fn spawn_once(setup: &DaemonSetup) -> Child {
    let out = File::create(setup.dir.0.join("run.out")).expect("stdout file");
    let err = File::create(setup.dir.0.join("run.err")).expect("stderr file");
    setup
        .command(EASYNCD, &["--once"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("easyncd starts")
}

/// Starts `easyncd --once` over and over, SIGKILLing it at random points, until
/// `policy.min_kills` kills hit a running daemon. `before_start` runs before every start with
/// the data directory (local changes for an upload phase; nothing for an initial sync).
/// `expected_files` is how many item files the store holds once in step with the server.
fn kill_and_restart(
    setup: &DaemonSetup,
    rng: &mut Rng,
    policy: KillPolicy,
    expected_files: usize,
    before_start: &mut dyn FnMut(&Path),
) -> KillReport {
    let data = setup.data();
    let mut report = KillReport::default();
    let mut early_window = policy.early_window;
    let mut window_measured = false;
    // How long a whole run took when one finished by itself (for kills once in step).
    let mut whole_run: Option<Duration> = None;
    while report.kills() < policy.min_kills {
        assert!(
            report.starts < MAX_STARTS,
            "{} starts without {} kills: {report:?}",
            report.starts,
            policy.min_kills
        );
        before_start(&data);
        let done = count_item_files(&data);
        let remaining = expected_files.saturating_sub(done);
        let early = remaining == 0 || rng.chance(policy.early_percent);
        report.starts += 1;
        let point;
        let mut child = spawn_once(setup);
        let started = Instant::now();
        if early {
            let window = match whole_run {
                Some(w) if remaining == 0 => w,
                _ => early_window,
            };
            let delay = rng.between(0, window.as_micros() as u64);
            point = format!("{}ms", delay / 1000);
            wait_or_exit(&mut child, started + Duration::from_micros(delay));
        } else {
            // Spread the remaining kills over the remaining files, at random counts of new
            // files, then a little later still (a file may be half written).
            let kills_left = (policy.min_kills + 5).saturating_sub(report.kills()).max(1);
            let step = (remaining / kills_left).max(1) as u64;
            let target = done + rng.between(1, 2 * step) as usize;
            point = format!("+{}f", target - done);
            let mut first_new = None;
            loop {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                let now = count_item_files(&data);
                if now > done && first_new.is_none() {
                    first_new = Some(started.elapsed());
                }
                if now >= target {
                    let extra = rng.between(0, 3000);
                    wait_or_exit(&mut child, Instant::now() + Duration::from_micros(extra));
                    break;
                }
                // Counting walks the store: not too often, to leave the cores to the daemon.
                std::thread::sleep(Duration::from_millis(4));
            }
            if let Some(first) = first_new.filter(|_| !window_measured) {
                early_window = first;
                window_measured = true;
            }
        }
        let status = match child.try_wait().expect("wait for easyncd") {
            Some(exited) => exited,
            None => {
                kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL sent");
                child.wait().expect("wait for easyncd")
            }
        };
        if status.signal() == Some(Signal::SIGKILL as i32) {
            report.points.push(point);
            if early {
                report.early_kills += 1;
            } else {
                report.progress_kills += 1;
            }
        } else if status.success() {
            report.completed += 1;
            whole_run = Some(started.elapsed());
        } else {
            let stderr = std::fs::read_to_string(setup.dir.0.join("run.err")).unwrap_or_default();
            report.failures.push((status.to_string(), stderr));
        }
    }
    report
}

/// Sleeps until `deadline` or until the child exits, whichever comes first.
fn wait_or_exit(child: &mut Child, deadline: Instant) {
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(1)));
    }
}

fn run_to_completion(setup: &DaemonSetup) -> (String, String) {
    let out = setup
        .command(EASYNCD, &["--once"])
        .stdin(Stdio::null())
        .output()
        .expect("easyncd runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the run after the kills must complete\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// The store equals the server: every item exactly once, nothing extra, no temporary files,
/// a state that loads as saved and knows every item, and another run that changes nothing.
fn assert_store_equals_server(lab: &Lab, setup: &DaemonSetup) {
    let data = setup.data();
    let server = server_inventory(&lab.handle);
    let duplicated_on_server: Vec<_> = server
        .iter()
        .flat_map(|(f, m)| m.iter().filter(|(_, n)| **n != 1).map(move |(k, _)| (f, k)))
        .collect();
    assert!(
        duplicated_on_server.is_empty(),
        "the test's item keys must be unique on the server: {duplicated_on_server:?}"
    );

    let temp = leftover_temp_files(&data);
    assert!(temp.is_empty(), "temporary files left: {temp:?}");

    let disk = disk_inventory(&data);
    let differences = inventory_differences(&server, &disk);
    assert!(
        differences.is_empty(),
        "{} differences between the server ({} items) and the store ({} files):\n{}",
        differences.len(),
        inventory_len(&server),
        inventory_len(&disk),
        differences[..differences.len().min(40)].join("\n")
    );

    // A state file damaged by a kill would have been set aside by the next run's load.
    let damaged = data.join("state").join("account.postcard.damaged");
    assert!(
        !damaged.exists(),
        "a kill left a damaged state file (kept as {})",
        damaged.display()
    );
    let state = match StateFile::new(&data).load() {
        Ok(Loaded::Good(state)) => state,
        Ok(Loaded::Recovered(_, damage)) => {
            panic!("the state file was damaged (its backup was used): {damage}")
        }
        Ok(Loaded::Fresh) => panic!("no state file after a completed run"),
        Err(e) => panic!("the state file does not load: {e}"),
    };
    for f in lab.state()["folders"].as_array().expect("lab folders") {
        let id = f["server_id"].as_str().unwrap_or_default();
        let items = f["items"].as_u64().unwrap_or(0) as usize;
        let class = f["class"].as_str().unwrap_or_default();
        if items == 0 || !["Email", "Contacts", "Calendar", "Tasks", "Notes"].contains(&class) {
            continue;
        }
        let known = state.folders.get(id).map_or(0, |s| s.items.len());
        assert_eq!(known, items, "items the state records for folder {id}");
    }

    let before = item_files(&data);
    let (stdout, stderr) = run_to_completion(setup);
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains(" added,")).collect();
    assert!(!lines.is_empty(), "a summary per class: {stdout}");
    for line in lines {
        assert!(
            line.contains(": 0 added, 0 changed, 0 deleted, 0 failed,"),
            "the run after recovery changes nothing: {line}\n{stdout}{stderr}"
        );
    }
    assert!(
        item_files(&data) == before,
        "the run after recovery changed files"
    );
}

fn print_report(what: &str, report: &KillReport, items: usize, started: Instant) {
    eprintln!(
        "{what}: {items} items, {} starts, {} kills ({} in the start-up window, {} after new \
         files), {} runs finished by themselves, {:.1} s",
        report.starts,
        report.kills(),
        report.early_kills,
        report.progress_kills,
        report.completed,
        started.elapsed().as_secs_f64()
    );
    eprintln!("kill points: {}", report.points.join(" "));
}

#[test]
fn kill_9_during_the_initial_sync_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let mut rng = Rng::new(seed());
    // About 2,000 mails in the Inbox, some in Projects, 150 contacts, 75 events, tasks, notes.
    let (lab, setup) = crash_lab(300, 1_750, "crash");
    let expected = inventory_len(&server_inventory(&lab.handle));
    let policy = KillPolicy {
        min_kills: MIN_KILLS,
        early_percent: 20,
        early_window: Duration::from_millis(150),
    };
    let report = kill_and_restart(&setup, &mut rng, policy, expected, &mut |_| {});
    print_report("initial sync", &report, expected, started);
    assert!(
        report.failures.is_empty(),
        "runs that failed by themselves between the kills: {:#?}",
        report.failures
    );
    assert!(report.kills() >= MIN_KILLS, "{report:?}");
    assert!(
        report.progress_kills >= MIN_KILLS / 2,
        "most kills land mid-sync: {report:?}"
    );
    run_to_completion(&setup);
    assert_store_equals_server(&lab, &setup);
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn kill_9_in_the_first_moments_of_every_run_leaves_a_consistent_store() {
    // A small mailbox, every kill within the time a whole run takes: enrollment, provisioning,
    // FolderSync, the first batches and the state saves between them.
    let started = Instant::now();
    let mut rng = Rng::new(seed() ^ 0x5eed);
    let (lab, setup) = crash_lab(40, 0, "crashearly");
    let expected = inventory_len(&server_inventory(&lab.handle));
    // How long a whole run takes, on a device of its own.
    let probe = DaemonSetup::new(&lab.handle, "crashprobe", "");
    let t = Instant::now();
    run_to_completion(&probe);
    let whole = t.elapsed();
    let policy = KillPolicy {
        min_kills: MIN_KILLS,
        early_percent: 100,
        early_window: whole,
    };
    let report = kill_and_restart(&setup, &mut rng, policy, expected, &mut |_| {});
    print_report("first moments", &report, expected, started);
    assert!(
        report.failures.is_empty(),
        "runs that failed by themselves between the kills: {:#?}",
        report.failures
    );
    run_to_completion(&setup);
    assert_store_equals_server(&lab, &setup);
}

/// Items the device makes between kills: a contact, a task and a note per start, keyed like
/// the server's items (address, SUMMARY, Subject), and every fifth start one item made
/// earlier deleted again.
struct LocalMaker {
    made: usize,
    files: Vec<std::path::PathBuf>,
}

impl LocalMaker {
    fn make(&mut self, data: &Path) {
        let n = self.made;
        self.made += 1;
        let write = |dir: &str, name: String, text: String| {
            let folder = std::fs::read_dir(data.join(dir))
                .expect("the class folder exists after the initial sync")
                .flatten()
                .map(|e| e.path())
                .find(|p| p.is_dir())
                .expect("one folder of the class");
            // Written aside and renamed into place, as editors and apps do.
            let tmp = folder.join(format!(".{name}.part"));
            std::fs::write(&tmp, text).unwrap();
            let path = folder.join(name);
            std::fs::rename(&tmp, &path).unwrap();
            path
        };
        let card = write(
            "contacts",
            format!("device-{n}.vcf"),
            format!(
                "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:device-contact-{n}\r\nFN:Device Made {n}\r\n\
                 N:Made {n};Device;;;\r\nEMAIL:device{n}@example.net\r\nEND:VCARD\r\n"
            ),
        );
        let task = write(
            "tasks",
            format!("device-{n}.ics"),
            format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//crash//EN\r\nBEGIN:VTODO\r\n\
                 UID:device-task-{n}\r\nDTSTAMP:20261125T090000Z\r\nSUMMARY:device task {n}\r\n\
                 END:VTODO\r\nEND:VCALENDAR\r\n"
            ),
        );
        let note = write(
            "notes",
            format!("device-{n}.txt"),
            format!("Subject: device note {n}\n\nwritten between kills\n"),
        );
        self.files.extend([card, task, note]);
        if n % 5 == 4 {
            // Delete one made earlier (uploaded or not, depending on where the kills hit).
            let gone = self.files.remove(n % self.files.len());
            let _ = std::fs::remove_file(gone);
        }
    }
}

#[test]
fn kill_9_during_uploads_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let mut rng = Rng::new(seed() ^ 0x0b10ad);
    let (lab, setup) = crash_lab(40, 0, "crashup");
    run_to_completion(&setup);
    // How long a run with a few uploads takes: the kills spread over it.
    let mut maker = LocalMaker {
        made: 0,
        files: Vec::new(),
    };
    maker.make(&setup.data());
    let t = Instant::now();
    run_to_completion(&setup);
    let whole = t.elapsed();
    let policy = KillPolicy {
        min_kills: MIN_KILLS,
        early_percent: 100,
        early_window: whole,
    };
    // Runs that got some uploads through before their kill: the server's count of items the
    // device made grew since the start before.
    let device_items = |lab: &Lab| -> usize {
        server_inventory(&lab.handle)
            .values()
            .flat_map(|m| m.keys())
            .filter(|k| k.contains("device"))
            .count()
    };
    let mut last_count = device_items(&lab);
    let mut runs_with_progress = 0;
    let report = kill_and_restart(&setup, &mut rng, policy, 0, &mut |data| {
        let now = device_items(&lab);
        if now != last_count {
            runs_with_progress += 1;
            last_count = now;
        }
        maker.make(data)
    });
    print_report("uploads", &report, maker.made * 3, started);
    eprintln!("runs whose uploads reached the server before the kill: {runs_with_progress}");
    assert!(
        runs_with_progress >= 5,
        "the kills must land while uploads happen, not only before: {runs_with_progress}"
    );
    assert!(
        report.failures.is_empty(),
        "runs that failed by themselves between the kills: {:#?}",
        report.failures
    );
    assert!(report.kills() >= MIN_KILLS, "{report:?}");
    run_to_completion(&setup);
    assert_store_equals_server(&lab, &setup);
    let server = server_inventory(&lab.handle);
    let made_on_server: usize = server
        .values()
        .flat_map(|m| m.keys())
        .filter(|k| k.contains("device"))
        .count();
    assert!(
        made_on_server >= maker.files.len(),
        "every item the device made and kept is on the server: {made_on_server} of {}",
        maker.files.len()
    );
}

/// The `core*` files in `dir` (the kernel's `core` or `core.PID` pattern).
fn core_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "core" || n.starts_with("core."))
        })
        .collect()
}

/// Crashes `easyncd` (SIGABRT, as a failed assertion in C code would) once it has synced, with core files allowed by the resource
/// limit and written to its working directory; the core files left there.
fn crash_with_cores(setup: &DaemonSetup, env: &[(&str, &str)]) -> Vec<std::path::PathBuf> {
    for old in core_files(&setup.dir.0) {
        std::fs::remove_file(old).unwrap();
    }
    let mut command = std::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg("ulimit -c unlimited && exec \"$0\" --config \"$1\" --bus none")
        .arg(EASYNCD)
        .arg(&setup.config_path)
        .current_dir(&setup.dir.0)
        .stdout(Stdio::null())
        .stderr(File::create(setup.dir.0.join("crash.err")).unwrap())
        .env_remove("EASYNC_ALLOW_CORE_DUMPS");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("easyncd starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_item_files(&setup.data()) == 0 {
        assert!(Instant::now() < deadline, "easyncd synced nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGABRT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGABRT as i32), "{status:?}");
    core_files(&setup.dir.0)
}

/// The password (and a token would be no different) is in the daemon's memory while it
/// runs; a crash must not write it into a core file. easyncd makes itself non-dumpable, so
/// no core is written at all. The same crash with `EASYNC_ALLOW_CORE_DUMPS=1` shows that
/// cores are written here and would hold the password — the check is real.
#[test]
fn a_crash_leaves_no_core_file_holding_the_password() {
    let secret = format!("S3cret-{}", common::daemon::unique_name("pw"));
    let mut config = Lab::default_config();
    config.items = 4;
    config.users = vec![("lab@example.com".into(), secret.clone())];
    let lab = Lab::start(config);
    let setup = DaemonSetup::new(&lab.handle, "corepw", "");
    std::fs::write(setup.dir.0.join("password"), &secret).unwrap();

    let cores = crash_with_cores(&setup, &[]);
    for core in &cores {
        let bytes = std::fs::read(core).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the password",
            core.display()
        );
    }
    assert!(cores.is_empty(), "easyncd left core files: {cores:?}");

    std::fs::remove_dir_all(setup.data()).unwrap();
    let allowed = crash_with_cores(&setup, &[("EASYNC_ALLOW_CORE_DUMPS", "1")]);
    if allowed.is_empty() {
        let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
        eprintln!(
            "no core written even when allowed (core_pattern {:?}): the control proves nothing here",
            pattern.trim()
        );
        return;
    }
    let bytes = std::fs::read(&allowed[0]).unwrap();
    assert!(
        bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "a core written with dumps allowed holds the password ({} bytes scanned)",
        bytes.len()
    );
}
