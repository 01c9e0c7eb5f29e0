//! The full remote wipe on a real block device: a loop device over a 64 MiB file, with an
//! ext4 file system mounted and files carrying a marker. After the wipe the marker is
//! nowhere on the device; a wipe killed (SIGKILL) after each step completes when it runs
//! again. The crypto-erase tests make LUKS1 and LUKS2 containers with cryptsetup (a file and
//! a loop device) and erase them through board/hooks/storage-encryption-luks. Needs root,
//! losetup and cryptsetup: otherwise each test prints a SKIPPED line.

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
    // The mkfs hook left a fresh, empty ext4 file system, mounted again where it was.
    assert!(disk.mounted(), "the new file system is mounted again");
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
        // A mkfs that says it started (with its process id), then waits to be killed.
        Ok(started) => disk.config_with_mkfs(
            &data_dir,
            &hooks_log,
            &format!("[\"/bin/sh\", \"-c\", \"echo $$ > {started}; exec sleep 600\"]"),
        ),
        Err(_) => disk.config(&data_dir, &hooks_log),
    };
    std::mem::forget(disk); // the parent owns the loop device
    let kill_after = std::env::var("EASYNC_TEST_KILL_AFTER").ok();
    let outcome = wipe::resume_at(
        config.data_dir(),
        config.wipe(),
        config.hooks(),
        &mut |phase| {
            if kill_after.as_deref() == Some(phase.as_str()) {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
        },
    )
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
        assert!(disk.mounted(), "the new file system is mounted again");
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
    // Wait (bounded) for the hook to start, then kill the child and its hook (which runs in
    // a process group of its own) together.
    let hook_pid = || {
        fs::read_to_string(&started)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
    };
    for _ in 0..1200 {
        if hook_pid().is_some() {
            break;
        }
        if let Some(status) = running.try_wait().unwrap() {
            panic!("the child ended before its mkfs hook ran: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let hook = hook_pid().expect("the mkfs hook never started");
    let group = nix::unistd::Pid::from_raw(running.id() as i32);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
    let hook_group = nix::unistd::Pid::from_raw(hook);
    nix::sys::signal::killpg(hook_group, nix::sys::signal::Signal::SIGKILL).unwrap();
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
    assert!(disk.mounted(), "mounted again after the restart's mkfs");
    assert!(
        disk.mount_point.join("lost+found").is_dir(),
        "the new file system"
    );
}

// ---------------------------------------------------------------------------------------------
// Crypto-erase: a real LUKS container (a file, or a loop device over one) made by cryptsetup,
// erased through the board's storage-encryption hook.

/// Why the crypto-erase tests cannot run here, if they cannot.
fn crypto_skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    match Command::new("cryptsetup").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("cryptsetup is missing (apt-get install cryptsetup-bin)".into()),
    }
}

macro_rules! require_cryptsetup {
    ($name:literal) => {
        if let Some(why) = crypto_skip_reason() {
            println!("SKIPPED {}: {why}", $name);
            return;
        }
    };
}

fn board_hook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("board/hooks/storage-encryption-luks")
}

/// A LUKS container in a temp folder: a file, optionally behind a loop device, formatted
/// with a key file (PBKDF2 with few iterations, so that it is quick).
struct LuksContainer {
    dir: PathBuf,
    key: PathBuf,
    /// The container as the wipe sees it: the file or the loop device.
    target: PathBuf,
    loop_device: Option<PathBuf>,
}

impl LuksContainer {
    fn new(tag: &str, luks_type: &str, on_loop_device: bool) -> LuksContainer {
        let dir = std::env::temp_dir().join(format!("easync-crypto-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let image = dir.join("luks.img");
        fs::File::create(&image).unwrap().set_len(32 << 20).unwrap();
        let key = dir.join("key");
        fs::write(&key, format!("key of {tag} {}", std::process::id())).unwrap();
        run(
            "cryptsetup",
            &[
                "luksFormat",
                "--batch-mode",
                "--type",
                luks_type,
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file",
                key.to_str().unwrap(),
                image.to_str().unwrap(),
            ],
        );
        let mut container = LuksContainer {
            dir,
            key,
            target: image.clone(),
            loop_device: None,
        };
        if on_loop_device {
            let device = run("losetup", &["-f", "--show", image.to_str().unwrap()]);
            container.target = PathBuf::from(device.trim());
            container.loop_device = Some(container.target.clone());
        }
        container
    }

    fn target(&self) -> &str {
        self.target.to_str().unwrap()
    }

    /// Whether the key file still opens the container.
    fn key_opens(&self) -> bool {
        Command::new("cryptsetup")
            .args(["open", "--test-passphrase", "--key-file"])
            .arg(&self.key)
            .arg(&self.target)
            .output()
            .unwrap()
            .status
            .success()
    }

    /// The key slots `cryptsetup luksDump` lists as in use.
    fn dumped_key_slots(&self) -> Vec<String> {
        let dump = run("cryptsetup", &["luksDump", self.target()]);
        if dump.contains("Version:       \t1") || dump.contains("Key Slot 0:") {
            return dump
                .lines()
                .filter(|l| l.starts_with("Key Slot ") && l.ends_with("ENABLED"))
                .map(|l| l.to_string())
                .collect();
        }
        // LUKS2: the lines between "Keyslots:" and "Tokens:" that name a slot ("  0: luks2").
        let slots = dump
            .split("Keyslots:")
            .nth(1)
            .and_then(|rest| rest.split("Tokens:").next())
            .unwrap_or_default();
        slots
            .lines()
            .filter(|l| l.starts_with("  ") && l.trim_end().ends_with(": luks2"))
            .map(|l| l.trim().to_string())
            .collect()
    }

    /// What easync's own reader says about the key slots.
    fn verified_key_slots(&self) -> Vec<String> {
        let mut file = fs::File::open(&self.target).unwrap();
        wipe::luks::key_slots(&mut file).unwrap().active
    }

    fn config(&self, data_dir: &Path, hook: &Path, hooks_log: &Path) -> Config {
        let log_hook = |step: &str| {
            format!(
                "[\"/bin/sh\", \"-c\", \"echo {step} $EASYNC_WIPE_KIND >> {}\"]",
                hooks_log.display()
            )
        };
        let text = format!(
            "[account]\nemail = \"j.doe@example.com\"\npassword_file = \"/etc/easync/password\"\n\
             [storage]\ndata_dir = \"{}\"\n[hooks]\nstorage_encryption = \"{}\"\n\
             [wipe]\nmode = \"crypto-erase\"\ntarget = \"{}\"\npre_wipe = {}\npost_wipe = {}\n",
            data_dir.display(),
            hook.display(),
            self.target(),
            log_hook("pre"),
            log_hook("post"),
        );
        Config::parse(&text, "crypto-wipe-test.toml", None).unwrap()
    }

    /// An executable hook script in the container's folder.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for LuksContainer {
    fn drop(&mut self) {
        if let Some(device) = &self.loop_device {
            let _ = Command::new("losetup").arg("-d").arg(device).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn crypto_erase_with_the_board_hook(luks_type: &str, on_loop_device: bool) {
    let place = if on_loop_device { "loop" } else { "file" };
    let container = LuksContainer::new(&format!("{luks_type}-{place}"), luks_type, on_loop_device);
    let data_dir = container.dir.join("data");
    let hooks_log = container.dir.join("hooks.log");
    let config = container.config(&data_dir, &board_hook(), &hooks_log);
    assert!(container.key_opens(), "the key opens the container before");
    assert_eq!(container.dumped_key_slots().len(), 1, "one key slot before");
    assert_eq!(container.verified_key_slots(), ["0"]);
    pending_full_wipe(&data_dir);

    let outcome = wipe::resume(&config).unwrap();
    assert_eq!(
        outcome,
        WipeOutcome::Completed {
            kind: WipeIntent::Full,
            method: None
        }
    );
    assert_eq!(
        container.dumped_key_slots(),
        Vec::<String>::new(),
        "cryptsetup luksDump still lists key slots"
    );
    assert_eq!(container.verified_key_slots(), Vec::<String>::new());
    assert!(!container.key_opens(), "the key still opens the container");
    assert_eq!(
        fs::read_to_string(&hooks_log).unwrap(),
        "pre full\npost full\n"
    );
    assert_eq!(
        wipe::progress(&data_dir).unwrap().map(|p| p.phase),
        Some(Phase::Completed)
    );
    assert!(!data_dir.join("credentials").exists());
    println!(
        "crypto-erase of a {luks_type} container ({}): no key slot left",
        if on_loop_device {
            "loop device"
        } else {
            "file"
        }
    );
}

#[test]
fn crypto_erase_of_a_luks2_loop_device_leaves_no_key_slot() {
    require_cryptsetup!("crypto_erase_of_a_luks2_loop_device_leaves_no_key_slot");
    require_loop_devices!("crypto_erase_of_a_luks2_loop_device_leaves_no_key_slot");
    crypto_erase_with_the_board_hook("luks2", true);
}

#[test]
fn crypto_erase_of_a_luks1_file_leaves_no_key_slot() {
    require_cryptsetup!("crypto_erase_of_a_luks1_file_leaves_no_key_slot");
    crypto_erase_with_the_board_hook("luks1", false);
}

#[test]
fn crypto_erase_of_a_luks2_file_and_a_luks1_loop_device() {
    require_cryptsetup!("crypto_erase_of_a_luks2_file_and_a_luks1_loop_device");
    crypto_erase_with_the_board_hook("luks2", false);
    require_loop_devices!("crypto_erase_of_a_luks2_file_and_a_luks1_loop_device");
    crypto_erase_with_the_board_hook("luks1", true);
}

/// A hook that answers 0 without erasing is caught by easync's own reading of the header:
/// the wipe fails (and stays pending), it is not completed. A hook that fails is reported
/// with its name and what it said. The right hook then completes the same wipe.
#[test]
fn a_crypto_erase_hook_that_only_claims_success_is_caught() {
    require_cryptsetup!("a_crypto_erase_hook_that_only_claims_success_is_caught");
    let container = LuksContainer::new("liar", "luks2", false);
    let data_dir = container.dir.join("data");
    let hooks_log = container.dir.join("hooks.log");
    pending_full_wipe(&data_dir);

    let liar = container.script("liar", "echo erased, honestly >&2; exit 0");
    let e = wipe::resume(&container.config(&data_dir, &liar, &hooks_log)).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, wipe::WipeError::KeySlotsLeft { ref slots, .. } if slots == &["0"]),
        "{text}"
    );
    assert!(
        text.contains("storage_encryption hook") && text.contains("liar"),
        "{text}"
    );
    assert!(container.key_opens(), "the container is untouched");
    assert_eq!(
        wipe::progress(&data_dir).unwrap(),
        Some(Progress {
            kind: WipeIntent::Full,
            phase: Phase::PreWipeDone
        }),
        "the wipe step is not recorded as done"
    );
    assert!(data_dir.join("credentials").exists(), "nothing cleared yet");

    let failing = container.script("failing", "echo cryptsetup: device busy >&2; exit 5");
    let e = wipe::resume(&container.config(&data_dir, &failing, &hooks_log)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("storage_encryption hook")
            && text.contains("exit status 5")
            && text.contains("device busy")
            && text.contains("hooks.storage_encryption"),
        "{text}"
    );
    assert_eq!(
        wipe::progress(&data_dir).unwrap().map(|p| p.phase),
        Some(Phase::PreWipeDone)
    );

    let config = container.config(&data_dir, &board_hook(), &hooks_log);
    assert!(matches!(
        wipe::resume(&config).unwrap(),
        WipeOutcome::Completed { .. }
    ));
    assert!(!container.key_opens());
    assert_eq!(
        fs::read_to_string(&hooks_log).unwrap(),
        "pre full\npost full\n",
        "pre_wipe ran once: its step was recorded before the failures"
    );
}

/// Killed after the erase but before it was recorded, the wipe erases again on restart: an
/// erased container passes the start checks and the hook answers 0 again.
#[test]
fn a_crypto_erase_interrupted_after_the_erase_completes_on_restart() {
    require_cryptsetup!("a_crypto_erase_interrupted_after_the_erase_completes_on_restart");
    let container = LuksContainer::new("again", "luks1", false);
    let data_dir = container.dir.join("data");
    let hooks_log = container.dir.join("hooks.log");
    let config = container.config(&data_dir, &board_hook(), &hooks_log);
    let slots = wipe::crypto_erase(config.wipe().unwrap(), config.hooks(), &[]).unwrap();
    assert_eq!((slots.version, slots.active.len()), (1, 0));
    assert!(!container.key_opens());
    pending_full_wipe(&data_dir);
    fs::write(data_dir.join(wipe::PHASE_FILE), "full pre-wipe-done\n").unwrap();

    let outcome = wipe::resume(&config).unwrap();
    assert!(
        matches!(outcome, WipeOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert_eq!(fs::read_to_string(&hooks_log).unwrap(), "post full\n");
    assert_eq!(container.verified_key_slots(), Vec::<String>::new());
}

/// A target that is not LUKS is refused before anything runs.
#[test]
fn crypto_erase_refuses_a_target_without_a_luks_header() {
    require_cryptsetup!("crypto_erase_refuses_a_target_without_a_luks_header");
    let container = LuksContainer::new("plain", "luks2", false);
    fs::write(&container.target, vec![0u8; 1 << 20]).unwrap();
    let data_dir = container.dir.join("data");
    let hooks_log = container.dir.join("hooks.log");
    pending_full_wipe(&data_dir);
    let config = container.config(&data_dir, &board_hook(), &hooks_log);
    let e = wipe::resume(&config).unwrap_err();
    assert!(e.to_string().contains("no LUKS header"), "{e}");
    assert!(!hooks_log.exists(), "no hook ran");
    assert!(data_dir.join("credentials").exists());
}
