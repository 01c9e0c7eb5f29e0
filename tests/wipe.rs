//! The full remote wipe on a real block device: a loop device over a 64 MiB file, with an
//! ext4 file system mounted and files carrying a marker. After the wipe the marker is
//! nowhere on the device; a wipe killed (SIGKILL) after each step completes when it runs
//! again. Needs root and losetup: otherwise each test prints a SKIPPED line.

use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use easync::config::Config;
use easync::device::wipe::{self, BlockMethod, Phase, Progress, WipeOutcome};
use easync::store::state::{AccountState, StateFile, WipeIntent};

const IMAGE_BYTES: u64 = 64 << 20;

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no /dev/loop-control".into());
    }
    for tool in ["losetup", "mkfs.ext4", "mount", "umount"] {
        let found = Command::new(tool).arg("--version").output().is_ok();
        if !found {
            return Some(format!("{tool} is missing"));
        }
    }
    None
}

macro_rules! require_loop_devices {
    ($name:literal) => {
        if let Some(why) = skip_reason() {
            println!("SKIPPED {}: {why}", $name);
            return;
        }
    };
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A temp folder, a backing file attached to a loop device, and a mount point; everything
/// is unmounted, detached and removed on drop, also when a test panics.
struct LoopDevice {
    dir: PathBuf,
    image: PathBuf,
    device: PathBuf,
    mount_point: PathBuf,
}

impl LoopDevice {
    fn new(tag: &str) -> LoopDevice {
        let dir = std::env::temp_dir().join(format!("easync-wipe-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let image = dir.join("disk.img");
        fs::File::create(&image)
            .unwrap()
            .set_len(IMAGE_BYTES)
            .unwrap();
        let mount_point = dir.join("mnt");
        fs::create_dir(&mount_point).unwrap();
        let device = run("losetup", &["-f", "--show", image.to_str().unwrap()]);
        LoopDevice {
            dir,
            image,
            device: PathBuf::from(device.trim()),
            mount_point,
        }
    }

    fn dev(&self) -> &str {
        self.device.to_str().unwrap()
    }

    fn mounted(&self) -> bool {
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        let mnt = self.mount_point.to_str().unwrap();
        mounts.lines().any(|l| l.split(' ').nth(1) == Some(mnt))
    }

    /// A new ext4 file system, mounted, with files holding `marker`, synced to the device.
    fn fill(&self, marker: &[u8]) {
        run("mkfs.ext4", &["-q", "-F", self.dev()]);
        run("mount", &[self.dev(), self.mount_point.to_str().unwrap()]);
        let mut body = Vec::new();
        for _ in 0..2000 {
            body.extend_from_slice(marker);
            body.push(b'\n');
        }
        for i in 0..20 {
            let folder = self.mount_point.join(format!("Mail/INBOX/cur{i}"));
            fs::create_dir_all(&folder).unwrap();
            fs::write(folder.join(format!("{i}:2,S")), &body).unwrap();
        }
        run("sync", &[]);
        assert!(
            occurrences(&self.image, marker) > 0,
            "the marker reached the backing file before the wipe"
        );
    }

    fn config(&self, data_dir: &Path, hooks_log: &Path) -> Config {
        self.config_with_mkfs(
            data_dir,
            hooks_log,
            "[\"/usr/sbin/mkfs.ext4\", \"-q\", \"-F\"]",
        )
    }

    fn config_with_mkfs(&self, data_dir: &Path, hooks_log: &Path, mkfs: &str) -> Config {
        let hook = |step: &str| {
            format!(
                "[\"/bin/sh\", \"-c\", \"echo {step} $EASYNC_WIPE_KIND >> {}\"]",
                hooks_log.display()
            )
        };
        let text = format!(
            "[account]\nemail = \"j.doe@example.com\"\npassword_file = \"/etc/easync/password\"\n\
             [storage]\ndata_dir = \"{}\"\n\
             [wipe]\nmode = \"block\"\ntarget = \"{}\"\nmount_point = \"{}\"\n\
             mkfs = {mkfs}\npre_wipe = {}\npost_wipe = {}\n",
            data_dir.display(),
            self.dev(),
            self.mount_point.display(),
            hook("pre"),
            hook("post"),
        );
        Config::parse(&text, "wipe-test.toml", None).unwrap()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if self.mounted() {
            let _ = Command::new("umount").arg(&self.mount_point).status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// How often `marker` occurs in the file or device at `path`, read in bounded chunks.
fn occurrences(path: &Path, marker: &[u8]) -> usize {
    let mut file = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let keep = marker.len() - 1;
    let mut filled = 0;
    let mut count = 0;
    loop {
        let n = file.read(&mut buf[filled..]).unwrap();
        if n == 0 {
            return count;
        }
        let end = filled + n;
        count += memchr::memmem::find_iter(&buf[..end], marker).count();
        // Carry the tail over so a marker cut by the chunk boundary is still found once.
        let tail = end.min(keep);
        buf.copy_within(end - tail..end, 0);
        filled = tail;
    }
}

fn marker() -> Vec<u8> {
    format!("EASYNC-WIPE-MARKER-{}-a7f3", std::process::id()).into_bytes()
}

fn pending_full_wipe(data_dir: &Path) {
    fs::create_dir_all(data_dir.join("credentials")).unwrap();
    fs::write(data_dir.join("credentials/oauth.json"), "{}").unwrap();
    let state = AccountState {
        wipe_intent: Some(WipeIntent::Full),
        ..AccountState::default()
    };
    StateFile::new(data_dir).save(&state).unwrap();
}

#[test]
fn block_wipe_erases_a_mounted_loop_device_and_makes_a_new_file_system() {
    require_loop_devices!("block_wipe_erases_a_mounted_loop_device_and_makes_a_new_file_system");
    let disk = LoopDevice::new("block");
    let marker = marker();
    disk.fill(&marker);
    let data_dir = disk.dir.join("data");
    let hooks_log = disk.dir.join("hooks.log");
    let config = disk.config(&data_dir, &hooks_log);
    pending_full_wipe(&data_dir);

    let outcome = wipe::resume(&config).unwrap();
    let WipeOutcome::Completed {
        kind: WipeIntent::Full,
        method: Some(method),
    } = outcome
    else {
        panic!("unexpected outcome {outcome:?}");
    };
    println!("block wipe of a loop device: {}", method.as_str());
    assert!(!disk.mounted(), "the wipe unmounted the data partition");
    assert_eq!(
        occurrences(&disk.device, &marker),
        0,
        "marker left on the device"
    );
    assert_eq!(
        occurrences(&disk.image, &marker),
        0,
        "marker left in the backing file"
    );
    assert_eq!(
        fs::read_to_string(&hooks_log).unwrap(),
        "pre full\npost full\n"
    );
    assert_eq!(
        wipe::progress(&data_dir).unwrap(),
        Some(Progress {
            kind: WipeIntent::Full,
            phase: Phase::Completed
        })
    );
    assert!(!data_dir.join("credentials").exists());
    assert!(!StateFile::new(&data_dir).path().exists());
    // The mkfs hook left a fresh, empty ext4 file system.
    run("mount", &[disk.dev(), disk.mount_point.to_str().unwrap()]);
    let left: Vec<_> = fs::read_dir(&disk.mount_point)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["lost+found"]);
}

#[test]
fn zero_overwrite_erases_the_device_when_discard_is_not_used() {
    require_loop_devices!("zero_overwrite_erases_the_device_when_discard_is_not_used");
    let disk = LoopDevice::new("zeros");
    let marker = marker();
    disk.fill(&marker);
    let method =
        wipe::wipe_block_using(&disk.device, Some(&disk.mount_point), &[BlockMethod::Zeros])
            .unwrap();
    assert_eq!(method, BlockMethod::Zeros);
    assert!(!disk.mounted());
    assert_eq!(occurrences(&disk.device, &marker), 0);
    assert_eq!(occurrences(&disk.image, &marker), 0);
}

#[test]
fn a_mounted_device_is_never_erased_behind_its_file_system() {
    require_loop_devices!("a_mounted_device_is_never_erased_behind_its_file_system");
    let disk = LoopDevice::new("busy");
    let marker = marker();
    disk.fill(&marker);
    // Not told where it is mounted: the exclusive open refuses.
    let e = wipe::wipe_block(&disk.device, None).unwrap_err();
    assert!(e.to_string().contains("still mounted"), "{e}");
    assert!(disk.mounted());
    assert!(occurrences(&disk.image, &marker) > 0);
}

/// Run by `a_wipe_killed_after_each_step_completes_on_restart` in a child process: resumes
/// the wipe configured by the environment and, when `EASYNC_TEST_KILL_AFTER` names a step,
/// SIGKILLs itself right after that step is recorded.
#[test]
#[ignore = "a helper run in a child process by the crash test"]
fn child_resume() {
    let dir = PathBuf::from(std::env::var("EASYNC_TEST_DIR").unwrap());
    let device = PathBuf::from(std::env::var("EASYNC_TEST_DEVICE").unwrap());
    let disk = LoopDevice {
        dir: dir.clone(),
        image: dir.join("disk.img"),
        device,
        mount_point: dir.join("mnt"),
    };
    let (data_dir, hooks_log) = (dir.join("data"), dir.join("hooks.log"));
    let config = match std::env::var("EASYNC_TEST_SLOW_MKFS") {
        // A mkfs that says it started, then waits to be killed.
        Ok(started) => disk.config_with_mkfs(
            &data_dir,
            &hooks_log,
            &format!("[\"/bin/sh\", \"-c\", \"touch {started}; exec sleep 600\"]"),
        ),
        Err(_) => disk.config(&data_dir, &hooks_log),
    };
    std::mem::forget(disk); // the parent owns the loop device
    let kill_after = std::env::var("EASYNC_TEST_KILL_AFTER").ok();
    let outcome = wipe::resume_at(config.data_dir(), config.wipe(), &mut |phase| {
        if kill_after.as_deref() == Some(phase.as_str()) {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    })
    .unwrap();
    assert!(matches!(outcome, WipeOutcome::Completed { .. }));
}

#[test]
fn a_wipe_killed_after_each_step_completes_on_restart() {
    require_loop_devices!("a_wipe_killed_after_each_step_completes_on_restart");
    let disk = LoopDevice::new("crash");
    let marker = marker();
    let data_dir = disk.dir.join("data");
    let hooks_log = disk.dir.join("hooks.log");
    let phases = [
        Phase::Acknowledged,
        Phase::PreWipeDone,
        Phase::Wiped,
        Phase::Cleared,
    ];
    let child = |kill_after: Option<Phase>| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--ignored", "--exact", "child_resume", "--nocapture"])
            .env("EASYNC_TEST_DIR", &disk.dir)
            .env("EASYNC_TEST_DEVICE", &disk.device);
        if let Some(phase) = kill_after {
            command.env("EASYNC_TEST_KILL_AFTER", phase.as_str());
        }
        command.output().unwrap()
    };
    for phase in phases {
        if disk.mounted() {
            run("umount", &[disk.mount_point.to_str().unwrap()]);
        }
        let _ = fs::remove_dir_all(&data_dir);
        let _ = fs::remove_file(&hooks_log);
        disk.fill(&marker);
        pending_full_wipe(&data_dir);

        let killed = child(Some(phase));
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "the child was killed after {phase:?}: {}",
            String::from_utf8_lossy(&killed.stderr)
        );
        assert_eq!(
            wipe::progress(&data_dir).unwrap(),
            Some(Progress {
                kind: WipeIntent::Full,
                phase
            }),
            "recorded when killed after {phase:?}"
        );
        let restarted = child(None);
        assert!(
            restarted.status.success(),
            "restart after a kill after {phase:?}: {}{}",
            String::from_utf8_lossy(&restarted.stdout),
            String::from_utf8_lossy(&restarted.stderr)
        );
        assert_eq!(
            wipe::progress(&data_dir).unwrap().map(|p| p.phase),
            Some(Phase::Completed),
            "killed after {phase:?}"
        );
        assert!(!disk.mounted());
        assert_eq!(
            occurrences(&disk.device, &marker),
            0,
            "killed after {phase:?}"
        );
        assert_eq!(occurrences(&disk.image, &marker), 0);
        assert!(!data_dir.join("credentials").exists());
        // Every hook ran once: a step recorded as done is never done again.
        assert_eq!(
            fs::read_to_string(&hooks_log).unwrap(),
            "pre full\npost full\n",
            "killed after {phase:?}"
        );
        println!("killed after {}: completed on restart", phase.as_str());
    }
}

/// The engine carries out a pending wipe at the start of a cycle, before any network access
/// (the server here refuses connections), and stays wiped afterwards.
#[test]
fn the_engine_wipes_before_any_network_access_and_stays_wiped() {
    let dir = std::env::temp_dir().join(format!("easync-wipe-engine-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let data_dir = dir.join("data");
    let config = |with_wipe: bool| {
        let mut text = format!(
            "[account]\nemail = \"j.doe@example.com\"\npassword_file = \"/etc/easync/password\"\n\
             server = \"https://127.0.0.1:9\"\n[storage]\ndata_dir = \"{}\"\n",
            data_dir.display()
        );
        if with_wipe {
            fs::create_dir_all(dir.join("wiped")).unwrap();
            fs::write(dir.join("wiped/mail.eml"), "Subject: secret").unwrap();
            text.push_str(&format!(
                "[wipe]\nmode = \"directory\"\ntarget = \"{}\"\n",
                dir.join("wiped").display()
            ));
        }
        Config::parse(&text, "engine-wipe.toml", None).unwrap()
    };
    fs::create_dir_all(data_dir.join("Mail/INBOX/cur")).unwrap();
    fs::write(data_dir.join("Mail/INBOX/cur/1:2,S"), "Subject: x").unwrap();
    pending_full_wipe(&data_dir);

    // A full wipe without [wipe] stays pending, nothing erased.
    let mut account = easync::engine::account::Account::new(config(false));
    let e = account.run_once(&mut |_| {}).unwrap_err();
    assert!(
        matches!(
            e,
            easync::engine::account::EngineError::WipePending(WipeIntent::Full, _)
        ),
        "{e}"
    );
    assert!(data_dir.join("Mail/INBOX/cur/1:2,S").exists());
    drop(account);

    let mut account = easync::engine::account::Account::new(config(true));
    for _ in 0..2 {
        let e = account.run_once(&mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("wiped by the server's order"), "{e}");
    }
    assert!(!dir.join("wiped/mail.eml").exists());
    assert!(dir.join("wiped").is_dir());
    assert!(!data_dir.join("Mail").exists());
    assert!(!data_dir.join("credentials").exists());
    let state = StateFile::new(&data_dir).load().unwrap().into_state();
    assert_eq!(state.wipe_intent, None);
    assert!(
        state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("wiped")),
        "the state says wiped: {:?}",
        state.last_error
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A wipe killed in the middle of a step (here while its mkfs hook runs, the device already
/// erased) does that step again on restart and completes.
#[test]
fn a_wipe_killed_during_mkfs_completes_on_restart() {
    require_loop_devices!("a_wipe_killed_during_mkfs_completes_on_restart");
    use std::os::unix::process::CommandExt;
    let disk = LoopDevice::new("mid-step");
    let marker = marker();
    let data_dir = disk.dir.join("data");
    let hooks_log = disk.dir.join("hooks.log");
    let started = disk.dir.join("mkfs-started");
    disk.fill(&marker);
    pending_full_wipe(&data_dir);
    let child = |slow: bool| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--ignored", "--exact", "child_resume", "--nocapture"])
            .env("EASYNC_TEST_DIR", &disk.dir)
            .env("EASYNC_TEST_DEVICE", &disk.device)
            .process_group(0);
        if slow {
            command.env("EASYNC_TEST_SLOW_MKFS", &started);
        }
        command
    };
    let mut running = child(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) for the hook to start, then kill the child and its hook together.
    for _ in 0..1200 {
        if started.exists() {
            break;
        }
        if let Some(status) = running.try_wait().unwrap() {
            panic!("the child ended before its mkfs hook ran: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(started.exists(), "the mkfs hook never started");
    let group = nix::unistd::Pid::from_raw(running.id() as i32);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(running.wait().unwrap().signal(), Some(9));
    assert_eq!(
        wipe::progress(&data_dir).unwrap().map(|p| p.phase),
        Some(Phase::PreWipeDone),
        "the wipe step is not recorded until its mkfs finished"
    );

    let restarted = child(false).output().unwrap();
    assert!(
        restarted.status.success(),
        "{}",
        String::from_utf8_lossy(&restarted.stderr)
    );
    assert_eq!(
        wipe::progress(&data_dir).unwrap().map(|p| p.phase),
        Some(Phase::Completed)
    );
    assert_eq!(occurrences(&disk.device, &marker), 0);
    assert_eq!(
        fs::read_to_string(&hooks_log).unwrap(),
        "pre full\npost full\n"
    );
    run("mount", &[disk.dev(), disk.mount_point.to_str().unwrap()]);
    assert!(
        disk.mount_point.join("lost+found").is_dir(),
        "the new file system"
    );
}
