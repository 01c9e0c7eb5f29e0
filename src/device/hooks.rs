//! The policy hooks and the compliance verdict: which program enforces which element of the
//! server's policy, running those programs safely, and the honest acknowledgement status
//! that follows from their answers.
//!
//! Every EASProvisionDoc element belongs to one [`Concern`]: the `device_lock` hook
//! (password and lock screen), the `storage_encryption` hook, easync itself (the mail,
//! attachment, age and truncation caps the engine obeys), or the generic `policy` hook for
//! the rest. An element *needs enforcing* when its value asks for something
//! ([`needs_enforcing`]); an element at its permissive value needs nothing.
//!
//! A hook is run without a shell (argv only) in its own process group, with a cleared
//! environment holding `PATH`, `EASYNC_HOOK=<name>` and `EASYNC_POLICY_<Element>=<value>`
//! for each element of its concern, and the same elements as JSON on stdin
//! (`{"elements": {"MinDevicePasswordLength": "6"}}`). It answers with its exit status:
//! 0 applied, 2 partly applied (stdout must then be
//! `{"applied": [names], "not_applied": [names]}`), 3 not supported, anything else an
//! error. A hook that outlives its timeout is killed (with its process group). Output is
//! read up to [`OUTPUT_LIMIT`] bytes. Bad output is an error naming the hook, and its
//! elements count as not applied: nothing here ever turns a failure into compliance.
//!
//! [`HookSet::enforce`] runs every hook that has elements needing enforcement and returns a
//! [`Compliance`]: the acknowledgement status (1 only when every element needing
//! enforcement is applied, 2 when some are, 3 when none) and the elements missing.
//!
//! [`run_program`] is the runner itself, shared with the wipe hooks (`device::wipe`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config;
use crate::eas::policy::{Bluetooth, Policy};
use crate::eas::provision::AckStatus;

/// Most bytes of a hook's stdout (and of its stderr) that are kept; the rest is discarded.
pub const OUTPUT_LIMIT: usize = 64 * 1024;
/// The `PATH` a hook runs with (its environment is cleared).
pub const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often a running hook is checked for exit.
const POLL: Duration = Duration::from_millis(10);
/// Longest stderr excerpt quoted in an error.
const STDERR_QUOTED: usize = 512;

/// Who enforces an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Concern {
    /// The `device_lock` hook: password and lock-screen rules.
    DeviceLock,
    /// The `storage_encryption` hook: device and storage card encryption.
    StorageEncryption,
    /// The generic `policy` hook: everything else the device must do.
    Policy,
    /// easync itself: the caps on what it requests and keeps.
    Easync,
    /// easync itself, when it has a roaming signal (`device.roaming_file`).
    Roaming,
}

impl Concern {
    /// The hook's name, as its `[hooks]` key and in `EASYNC_HOOK`.
    pub fn hook_name(self) -> &'static str {
        match self {
            Concern::DeviceLock => "device_lock",
            Concern::StorageEncryption => "storage_encryption",
            Concern::Policy => "policy",
            Concern::Easync | Concern::Roaming => "easync",
        }
    }

    /// The concerns enforced by a hook, in the order the hooks run.
    pub const HOOKS: [Concern; 3] = [
        Concern::DeviceLock,
        Concern::StorageEncryption,
        Concern::Policy,
    ];
}

/// The password and lock-screen elements (MS-ASPROV 2.2.2).
const DEVICE_LOCK: [&str; 10] = [
    "DevicePasswordEnabled",
    "AlphanumericDevicePasswordRequired",
    "PasswordRecoveryEnabled",
    "MinDevicePasswordLength",
    "MinDevicePasswordComplexCharacters",
    "AllowSimpleDevicePassword",
    "DevicePasswordExpiration",
    "DevicePasswordHistory",
    "MaxInactivityTimeDeviceLock",
    "MaxDevicePasswordFailedAttempts",
];
const STORAGE_ENCRYPTION: [&str; 2] = ["RequireDeviceEncryption", "RequireStorageCardEncryption"];
/// The elements easync can enforce itself, by capping what it requests and keeps (which of
/// them it does is for the engine to say: see [`HookSet::enforce`]).
pub const EASYNC: [&str; 7] = [
    "AttachmentsEnabled",
    "MaxAttachmentSize",
    "MaxCalendarAgeFilter",
    "MaxEmailAgeFilter",
    "MaxEmailBodyTruncationSize",
    "MaxEmailHTMLBodyTruncationSize",
    "AllowHTMLEmail",
];

/// Who enforces the element `name` (any name of [`Policy::ELEMENT_NAMES`]).
pub fn concern(name: &str) -> Concern {
    if DEVICE_LOCK.contains(&name) {
        Concern::DeviceLock
    } else if STORAGE_ENCRYPTION.contains(&name) {
        Concern::StorageEncryption
    } else if EASYNC.contains(&name) {
        Concern::Easync
    } else if name == "RequireManualSyncWhenRoaming" {
        Concern::Roaming
    } else {
        Concern::Policy
    }
}

/// The set elements whose value asks for something, in element order. Following MS-ASPROV
/// 2.2.2: a password rule matters only when DevicePasswordEnabled is 1; PasswordRecoveryEnabled
/// only says whether the server stores a recovery password and asks nothing of the device;
/// an `Allow*` element asks when 0 (AllowBluetooth unless 2, AllowSMIMEEncryptionAlgorithmNegotiation
/// unless 2), a `Require*` element when 1; a length, count or age of 0 (1 for the minimum
/// length and complexity, 9999 or more for the inactivity lock) sets no limit; a truncation
/// size of -1 none; the S/MIME algorithms matter only when signed or encrypted messages are
/// required; a non-empty application list always asks.
pub fn needs_enforcing(policy: &Policy) -> Vec<&'static str> {
    let password = policy.device_password_enabled == Some(true);
    let mut out = Vec::new();
    for (name, value) in policy.elements() {
        let number = value.trim().parse::<i64>().ok();
        let asks = match name {
            "DevicePasswordEnabled" => value == "1",
            "PasswordRecoveryEnabled" => false,
            "AlphanumericDevicePasswordRequired" => password && value == "1",
            "AllowSimpleDevicePassword" => password && value == "0",
            "MinDevicePasswordLength" | "MinDevicePasswordComplexCharacters" => {
                password && number.is_some_and(|n| n > 1)
            }
            "DevicePasswordExpiration" | "DevicePasswordHistory" => {
                password && number.is_some_and(|n| n > 0)
            }
            "MaxInactivityTimeDeviceLock" => {
                password && number.is_some_and(|n| (1..9999).contains(&n))
            }
            "MaxDevicePasswordFailedAttempts" => password && number.is_some_and(|n| n > 0),
            "MaxAttachmentSize" => true,
            "MaxCalendarAgeFilter" | "MaxEmailAgeFilter" => number.is_some_and(|n| n != 0),
            "MaxEmailBodyTruncationSize" | "MaxEmailHTMLBodyTruncationSize" => value != "-1",
            "AllowBluetooth" => policy.allow_bluetooth != Some(Bluetooth::Allowed),
            "AllowSMIMEEncryptionAlgorithmNegotiation" => value != "2",
            "RequireSignedSMIMEAlgorithm" => policy.require_signed_smime_messages == Some(true),
            "RequireEncryptionSMIMEAlgorithm" => {
                policy.require_encrypted_smime_messages == Some(true)
            }
            "UnapprovedInROMApplicationList" | "ApprovedApplicationList" => !value.is_empty(),
            other if other.starts_with("Allow") || other == "AttachmentsEnabled" => value == "0",
            other if other.starts_with("Require") => value == "1",
            // An element this table does not know yet: assume it asks (never claim more).
            _ => true,
        };
        if asks {
            out.push(name);
        }
    }
    out
}

/// Why a hook's answer could not be used. Each names the hook and says what to check.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("policy hook {hook} ({path}) could not be started: {source}; check hooks.{hook}")]
    Spawn {
        hook: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "policy hook {hook} ({path}) did not finish within {}s and was killed; make it faster \
         or raise hooks.timeout",
        timeout.as_secs_f32()
    )]
    Timeout {
        hook: &'static str,
        path: PathBuf,
        timeout: Duration,
    },
    #[error("policy hook {hook} ({path}) failed ({status}){stderr}; run it by hand to see why")]
    Failed {
        hook: &'static str,
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error(
        "policy hook {hook} ({path}) answered badly: {problem}; it must print \
         {{\"applied\": [...], \"not_applied\": [...]}} with element names of its policy"
    )]
    BadOutput {
        hook: &'static str,
        path: PathBuf,
        problem: String,
    },
}

/// How one hook run ended, for the elements of its concern that need enforcing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Exit 0: all applied.
    Applied,
    /// Exit 2: these were applied (the rest were not).
    Partly(BTreeSet<&'static str>),
    /// Exit 3: the device cannot enforce this concern.
    NotSupported,
}

/// The verdict on one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compliance {
    /// What to acknowledge in Provision.
    pub status: AckStatus,
    /// The elements needing enforcement that are applied.
    pub applied: Vec<&'static str>,
    /// The elements needing enforcement that are not (what the user must be told).
    pub missing: Vec<&'static str>,
    /// The hooks that failed, with why (their elements are in `missing`).
    pub errors: Vec<String>,
}

impl Compliance {
    /// The verdict for `needing` elements of which `applied` are applied.
    pub fn from_applied(
        needing: &[&'static str],
        applied: &BTreeSet<&'static str>,
        errors: Vec<String>,
    ) -> Compliance {
        let (yes, no): (Vec<&'static str>, Vec<&'static str>) =
            needing.iter().partition(|name| applied.contains(*name));
        let status = if no.is_empty() {
            AckStatus::Applied
        } else if yes.is_empty() {
            AckStatus::NotApplied
        } else {
            AckStatus::PartiallyApplied
        };
        Compliance {
            status,
            applied: yes,
            missing: no,
            errors,
        }
    }
}

/// The configured hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSet {
    pub device_lock: Option<PathBuf>,
    pub storage_encryption: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub timeout: Duration,
}

impl HookSet {
    pub fn from_config(hooks: &config::Hooks) -> HookSet {
        HookSet {
            device_lock: hooks.device_lock.clone(),
            storage_encryption: hooks.storage_encryption.clone(),
            policy: hooks.policy.clone(),
            timeout: hooks.timeout,
        }
    }

    /// The program enforcing `concern`, if one is configured.
    pub fn hook(&self, concern: Concern) -> Option<&Path> {
        match concern {
            Concern::DeviceLock => self.device_lock.as_deref(),
            Concern::StorageEncryption => self.storage_encryption.as_deref(),
            Concern::Policy => self.policy.as_deref(),
            Concern::Easync | Concern::Roaming => None,
        }
    }

    /// Enforces `policy`: runs each configured hook whose concern has elements needing
    /// enforcement and gives the verdict. `applied_by_easync` names those of easync's own
    /// elements ([`EASYNC`], and RequireManualSyncWhenRoaming) the engine really applies. A failed hook is logged and leaves
    /// its elements missing.
    pub fn enforce(&self, policy: &Policy, applied_by_easync: &[&str]) -> Compliance {
        let needing = needs_enforcing(policy);
        let all = policy.elements();
        let mut applied: BTreeSet<&'static str> = BTreeSet::new();
        let mut errors = Vec::new();
        for name in &needing {
            if matches!(concern(name), Concern::Easync | Concern::Roaming)
                && applied_by_easync.contains(name)
            {
                applied.insert(name);
            }
        }
        for hooked in Concern::HOOKS {
            let wanted: Vec<&'static str> = needing
                .iter()
                .copied()
                .filter(|n| concern(n) == hooked)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let Some(path) = self.hook(hooked) else {
                log::warn!(
                    "no hook enforces {} ({}): set hooks.{} to apply them",
                    hooked.hook_name(),
                    wanted.join(", "),
                    hooked.hook_name()
                );
                continue;
            };
            let elements: Vec<(&'static str, &str)> = all
                .iter()
                .filter(|(n, _)| concern(n) == hooked)
                .map(|(n, v)| (*n, v.as_str()))
                .collect();
            match run_hook(hooked.hook_name(), path, &elements, self.timeout) {
                Ok(HookOutcome::Applied) => applied.extend(wanted.iter().copied()),
                Ok(HookOutcome::Partly(names)) => {
                    applied.extend(wanted.iter().copied().filter(|n| names.contains(n)))
                }
                Ok(HookOutcome::NotSupported) => log::warn!(
                    "policy hook {} cannot enforce {} on this device",
                    hooked.hook_name(),
                    wanted.join(", ")
                ),
                Err(e) => {
                    log::error!("{e}");
                    errors.push(e.to_string());
                }
            }
        }
        Compliance::from_applied(&needing, &applied, errors)
    }
}

/// The JSON a hook receives on stdin.
pub fn stdin_json(elements: &[(&'static str, &str)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = elements
        .iter()
        .map(|(n, v)| {
            (
                (*n).to_string(),
                serde_json::Value::String((*v).to_string()),
            )
        })
        .collect();
    serde_json::json!({ "elements": map }).to_string()
}

/// Runs the hook `name` at `path` for `elements` (its concern's set elements) and reads
/// its answer.
pub fn run_hook(
    name: &'static str,
    path: &Path,
    elements: &[(&'static str, &str)],
    timeout: Duration,
) -> Result<HookOutcome, HookError> {
    let mut command = hook_command(name, path);
    for (element, value) in elements {
        command.env(format!("EASYNC_POLICY_{element}"), value);
    }
    let input = stdin_json(elements).into_bytes();
    let finished = run_program(command, input, timeout).map_err(|failure| match failure {
        RunFailure::Spawn(source) => HookError::Spawn {
            hook: name,
            path: path.to_path_buf(),
            source,
        },
        RunFailure::Timeout => HookError::Timeout {
            hook: name,
            path: path.to_path_buf(),
            timeout,
        },
    })?;
    interpret(
        name,
        path,
        finished.status,
        &finished.stdout,
        &finished.stderr,
        elements,
    )
}

/// How a hook program ended: its exit status and the first [`OUTPUT_LIMIT`] bytes of each
/// of its output streams.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a hook program gave no exit status.
#[derive(Debug)]
pub enum RunFailure {
    /// It could not be started or waited for.
    Spawn(std::io::Error),
    /// It outlived its timeout and was killed with its process group.
    Timeout,
}

/// The command for hook program `path` known as `name`: no shell, a cleared environment
/// holding only `PATH` ([`HOOK_PATH`]) and `EASYNC_HOOK=<name>`, `/` as working directory.
/// The caller adds arguments and variables, then hands it to [`run_program`].
pub fn hook_command(name: &str, path: &Path) -> Command {
    let mut command = Command::new(path);
    command
        .env_clear()
        .env("PATH", HOOK_PATH)
        .env("EASYNC_HOOK", name)
        .current_dir("/");
    command
}

/// Runs `command` in its own process group with `input` on its stdin, keeping at most
/// [`OUTPUT_LIMIT`] bytes of stdout and of stderr; past `timeout` its whole process group is
/// killed.
pub fn run_program(
    mut command: Command,
    input: Vec<u8>,
    timeout: Duration,
) -> Result<Finished, RunFailure> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().map_err(RunFailure::Spawn)?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        kill_group(&mut child);
        return Err(RunFailure::Spawn(std::io::Error::other(
            "no pipes to the hook",
        )));
    };
    // The hook may not read its stdin at all: writing must not hold up the wait.
    thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let (out_tx, out_rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    read_bounded(stdout, out_tx);
    read_bounded(stderr, err_tx);

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) => {
                kill_group(&mut child);
                return Err(RunFailure::Timeout);
            }
            Err(e) => {
                kill_group(&mut child);
                return Err(RunFailure::Spawn(e));
            }
        }
    };
    // Something the hook left running may still hold the pipes: wait for them until the
    // deadline, then end its process group.
    let rest = deadline
        .saturating_duration_since(Instant::now())
        .max(POLL * 10);
    let stdout = out_rx.recv_timeout(rest).unwrap_or_else(|_| {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        Vec::new()
    });
    let stderr = err_rx.recv_timeout(POLL * 10).unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

/// A finished hook's status in words: "exit status 1", "killed by signal 9".
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

/// The start of a hook's output to quote in an error (`None` when it printed nothing).
pub fn excerpt(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(STDERR_QUOTED).collect())
}

/// Reads `from` on its own thread, keeping the first [`OUTPUT_LIMIT`] bytes and discarding
/// the rest, and sends what it kept once the pipe closes.
fn read_bounded(mut from: impl Read + Send + 'static, to: mpsc::Sender<Vec<u8>>) {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = OUTPUT_LIMIT - kept.len();
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        let _ = to.send(kept);
    });
}

/// Kills the hook and everything in its process group, and reaps it.
fn kill_group(child: &mut Child) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Turns a finished hook's exit status and stdout into its outcome.
fn interpret(
    name: &'static str,
    path: &Path,
    status: ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
    elements: &[(&'static str, &str)],
) -> Result<HookOutcome, HookError> {
    let bad = |problem: String| HookError::BadOutput {
        hook: name,
        path: path.to_path_buf(),
        problem,
    };
    match status.code() {
        Some(0) => {
            // Optional JSON; if given it must be valid and must not contradict the exit status.
            if let Some(answer) = parse_answer(stdout, elements).map_err(bad)? {
                if !answer.not_applied.is_empty() {
                    return Err(bad(format!(
                        "exit status 0 (applied) but not_applied lists {}",
                        join(&answer.not_applied)
                    )));
                }
            }
            Ok(HookOutcome::Applied)
        }
        Some(2) => match parse_answer(stdout, elements).map_err(bad)? {
            Some(answer) if !answer.listed_applied => Err(bad(
                "exit status 2 (partly applied) without the \"applied\" list".into(),
            )),
            Some(answer) => Ok(HookOutcome::Partly(answer.applied)),
            None => Err(bad(
                "exit status 2 (partly applied) without the JSON saying which elements".into(),
            )),
        },
        Some(3) => Ok(HookOutcome::NotSupported),
        _ => Err(HookError::Failed {
            hook: name,
            path: path.to_path_buf(),
            status: describe_status(status),
            stderr: excerpt(stderr).map_or(String::new(), |cut| format!(": {cut}")),
        }),
    }
}

/// Fuzzing entry point (fuzz/fuzz_targets/device_input.rs): how the hook's ending
/// (`raw_status` as `waitpid` gives it), stdout and stderr are understood when it was
/// given `elements`. Not part of the API.
#[doc(hidden)]
pub fn fuzz_interpret(
    raw_status: i32,
    stdout: &[u8],
    stderr: &[u8],
    elements: &[(&'static str, &str)],
) -> Result<HookOutcome, HookError> {
    let path = Path::new("/fuzz/hook");
    interpret(
        "fuzz",
        path,
        ExitStatus::from_raw(raw_status),
        stdout,
        stderr,
        elements,
    )
}

/// A hook's stdout answer.
#[derive(Debug, Default)]
struct Answer {
    /// Whether stdout had an "applied" list at all.
    listed_applied: bool,
    applied: BTreeSet<&'static str>,
    not_applied: BTreeSet<&'static str>,
}

/// Parses the stdout JSON (`None` when stdout is only whitespace). Every name must be one of
/// the elements the hook was given; no element may be in both lists.
fn parse_answer(
    stdout: &[u8],
    elements: &[(&'static str, &str)],
) -> Result<Option<Answer>, String> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if stdout.len() >= OUTPUT_LIMIT {
        return Err(format!("more than {OUTPUT_LIMIT} bytes on stdout"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(stdout).map_err(|e| format!("stdout is not JSON ({e})"))?;
    let Some(object) = value.as_object() else {
        return Err("stdout is JSON but not an object".into());
    };
    let known: BTreeMap<&str, &'static str> = elements.iter().map(|(n, _)| (*n, *n)).collect();
    let mut answer = Answer::default();
    for (key, list) in object {
        let slot = match key.as_str() {
            "applied" => &mut answer.applied,
            "not_applied" => &mut answer.not_applied,
            _ => continue,
        };
        let Some(list) = list.as_array() else {
            return Err(format!("\"{key}\" is not a list"));
        };
        for entry in list {
            let Some(text) = entry.as_str() else {
                return Err(format!("\"{key}\" holds {entry}, not an element name"));
            };
            let Some(name) = known.get(text) else {
                let shown: String = text.chars().take(64).collect();
                return Err(format!(
                    "\"{key}\" names {shown:?}, which is not an element it was given"
                ));
            };
            slot.insert(*name);
        }
    }
    answer.listed_applied = object.contains_key("applied");
    if let Some(both) = answer.applied.intersection(&answer.not_applied).next() {
        return Err(format!("{both} is both applied and not applied"));
    }
    Ok(Some(answer))
}

fn join(names: &BTreeSet<&str>) -> String {
    names.iter().copied().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// A private directory for one test's hook scripts (mode 0700), removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "easync-hooks-{tag}-{}-{:?}",
                std::process::id(),
                Instant::now()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
            Scratch(dir)
        }

        /// Writes an executable `sh` script (mode 0700) and returns its absolute path.
        fn script(&self, name: &str, body: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
            assert!(path.is_absolute());
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(20);

    fn lock_policy() -> Policy {
        let mut p = Policy::default();
        for (n, v) in [
            ("DevicePasswordEnabled", "1"),
            ("MinDevicePasswordLength", "6"),
            ("AllowSimpleDevicePassword", "0"),
            ("PasswordRecoveryEnabled", "1"),
        ] {
            p.set_by_name(n, v).unwrap();
        }
        p
    }

    fn hooks_with(lock: Option<PathBuf>) -> HookSet {
        HookSet {
            device_lock: lock,
            storage_encryption: None,
            policy: None,
            timeout: TIMEOUT,
        }
    }

    const LOCK_ELEMENTS: [(&str, &str); 2] = [
        ("DevicePasswordEnabled", "1"),
        ("MinDevicePasswordLength", "6"),
    ];

    #[test]
    fn every_element_has_a_concern_and_the_tables_name_real_elements() {
        for name in DEVICE_LOCK.iter().chain(&STORAGE_ENCRYPTION).chain(&EASYNC) {
            assert!(Policy::ELEMENT_NAMES.contains(name), "{name}");
        }
        assert_eq!(concern("AllowCamera"), Concern::Policy);
        assert_eq!(
            concern("RequireDeviceEncryption"),
            Concern::StorageEncryption
        );
        assert_eq!(concern("MaxInactivityTimeDeviceLock"), Concern::DeviceLock);
        assert_eq!(concern("MaxAttachmentSize"), Concern::Easync);
        assert_eq!(concern("RequireManualSyncWhenRoaming"), Concern::Roaming);
    }

    #[test]
    fn permissive_values_need_nothing() {
        let mut p = Policy::default();
        for (n, v) in [
            ("DevicePasswordEnabled", "0"),
            ("MinDevicePasswordLength", "8"), // ignored: no password required
            ("AllowCamera", "1"),
            ("AllowBluetooth", "2"),
            ("RequireDeviceEncryption", "0"),
            ("MaxEmailAgeFilter", "0"),
            ("MaxEmailBodyTruncationSize", "-1"),
            ("RequireSignedSMIMEAlgorithm", "1"), // no signing required
        ] {
            p.set_by_name(n, v).unwrap();
        }
        assert_eq!(needs_enforcing(&p), Vec::<&str>::new());
        let mut strict = Policy::default();
        for (n, v) in [
            ("DevicePasswordEnabled", "1"),
            ("MinDevicePasswordLength", "6"),
            ("PasswordRecoveryEnabled", "1"),
            ("AllowCamera", "0"),
            ("AllowWiFi", "1"),
            ("AllowBluetooth", "1"),
            ("RequireDeviceEncryption", "1"),
            ("RequireManualSyncWhenRoaming", "1"),
            ("MaxAttachmentSize", "1024"),
            ("MaxEmailBodyTruncationSize", "-1"),
            ("ApprovedApplicationList", "3A5D8B9C0E1F"),
        ] {
            strict.set_by_name(n, v).unwrap();
        }
        let needing = needs_enforcing(&strict);
        for name in [
            "DevicePasswordEnabled",
            "MinDevicePasswordLength",
            "AllowCamera",
            "AllowBluetooth",
            "RequireDeviceEncryption",
            "RequireManualSyncWhenRoaming",
            "MaxAttachmentSize",
            "ApprovedApplicationList",
        ] {
            assert!(needing.contains(&name), "{name} in {needing:?}");
        }
        for name in [
            "PasswordRecoveryEnabled",
            "AllowWiFi",
            "MaxEmailBodyTruncationSize",
        ] {
            assert!(!needing.contains(&name), "{name} in {needing:?}");
        }
    }

    #[test]
    fn all_applied_by_a_hook_is_status_1() {
        let dir = Scratch::new("applied");
        let hook = dir.script("lock", "exit 0");
        let c = hooks_with(Some(hook)).enforce(&lock_policy(), &EASYNC);
        assert_eq!(c.status, AckStatus::Applied, "{c:?}");
        assert_eq!(
            c.applied,
            vec![
                "DevicePasswordEnabled",
                "MinDevicePasswordLength",
                "AllowSimpleDevicePassword"
            ]
        );
        assert!(c.missing.is_empty() && c.errors.is_empty());
        // Exit 0 may say what it did; the JSON is checked but changes nothing.
        let hook = dir.script(
            "lock-json",
            r#"echo '{"applied": ["DevicePasswordEnabled"]}'"#,
        );
        let c = hooks_with(Some(hook)).enforce(&lock_policy(), &EASYNC);
        assert_eq!(c.status, AckStatus::Applied, "{c:?}");
    }

    #[test]
    fn partly_applied_takes_the_lists_from_stdout() {
        let dir = Scratch::new("partly");
        let hook = dir.script(
            "lock",
            r#"echo '{"applied": ["DevicePasswordEnabled", "MinDevicePasswordLength"], "not_applied": ["AllowSimpleDevicePassword"]}'; exit 2"#,
        );
        let c = hooks_with(Some(hook)).enforce(&lock_policy(), &EASYNC);
        assert_eq!(c.status, AckStatus::PartiallyApplied);
        assert_eq!(c.missing, vec!["AllowSimpleDevicePassword"]);
        assert_eq!(
            c.applied,
            vec!["DevicePasswordEnabled", "MinDevicePasswordLength"]
        );
    }

    #[test]
    fn not_supported_and_no_hook_are_status_3() {
        let dir = Scratch::new("unsupported");
        let hook = dir.script("lock", "exit 3");
        let c = hooks_with(Some(hook)).enforce(&lock_policy(), &EASYNC);
        assert_eq!(c.status, AckStatus::NotApplied);
        assert_eq!(c.missing.len(), 3);
        assert!(c.errors.is_empty());
        let c = hooks_with(None).enforce(&lock_policy(), &EASYNC);
        assert_eq!(c.status, AckStatus::NotApplied);
        assert_eq!(c.missing.len(), 3);
    }

    #[test]
    fn easync_elements_count_only_when_the_engine_applies_them() {
        let mut p = lock_policy();
        p.set_by_name("MaxAttachmentSize", "1000").unwrap();
        p.set_by_name("RequireManualSyncWhenRoaming", "1").unwrap();
        let dir = Scratch::new("easync");
        let hook = dir.script("lock", "exit 0");
        let hooks = hooks_with(Some(hook));
        let c = hooks.enforce(&p, &EASYNC);
        assert_eq!(c.status, AckStatus::PartiallyApplied);
        assert_eq!(c.missing, vec!["RequireManualSyncWhenRoaming"]);
        let c = hooks.enforce(&p, &[]);
        assert_eq!(
            c.missing,
            vec!["MaxAttachmentSize", "RequireManualSyncWhenRoaming"]
        );
    }

    fn error_of(body: &str) -> String {
        let dir = Scratch::new("error");
        let hook = dir.script("lock", body);
        let c = hooks_with(Some(hook.clone())).enforce(&lock_policy(), &EASYNC);
        assert_eq!(c.status, AckStatus::NotApplied, "{body}: {c:?}");
        assert_eq!(c.missing.len(), 3, "{body}");
        assert_eq!(c.errors.len(), 1, "{body}");
        let e = c.errors[0].clone();
        assert!(e.contains("device_lock"), "{e}");
        assert!(e.contains(&hook.display().to_string()), "{e}");
        e
    }

    #[test]
    fn failures_and_bad_output_are_errors_never_compliance() {
        let e = error_of("echo 'pwquality.conf is read-only' >&2; exit 1");
        assert!(
            e.contains("exit status 1") && e.contains("pwquality.conf is read-only"),
            "{e}"
        );
        let e = error_of("echo 'done!'; exit 2");
        assert!(e.contains("not JSON"), "{e}");
        let e = error_of("exit 2");
        assert!(e.contains("without the JSON"), "{e}");
        let e = error_of(r#"echo '{"applied": ["AllowCamera"]}'; exit 2"#);
        assert!(
            e.contains("AllowCamera") && e.contains("not an element it was given"),
            "{e}"
        );
        let e = error_of(r#"echo '{"not_applied": []}'; exit 2"#);
        assert!(e.contains("without the \"applied\" list"), "{e}");
        let e =
            error_of(r#"echo '{"applied": [], "not_applied": ["DevicePasswordEnabled"]}'; exit 0"#);
        assert!(e.contains("exit status 0"), "{e}");
        let e = error_of("kill -9 $$");
        assert!(e.contains("signal 9"), "{e}");
        let e = error_of("exit 7");
        assert!(e.contains("exit status 7"), "{e}");
    }

    #[test]
    fn a_missing_or_unrunnable_hook_is_an_error() {
        let dir = Scratch::new("missing");
        let err = run_hook(
            "device_lock",
            &dir.0.join("nothing-here"),
            &LOCK_ELEMENTS,
            TIMEOUT,
        )
        .unwrap_err();
        assert!(matches!(err, HookError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("hooks.device_lock"), "{err}");
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed_with_its_children() {
        let dir = Scratch::new("timeout");
        let pid_file = dir.0.join("sleep.pid");
        // The shell and the sleep it starts share the process group: both must go.
        let hook = dir.script(
            "lock",
            &format!("sleep 60 & echo $! > '{}'; wait", pid_file.display()),
        );
        let err = run_hook(
            "device_lock",
            &hook,
            &LOCK_ELEMENTS,
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(matches!(err, HookError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("hooks.timeout"), "{err}");
        let pid = fs::read_to_string(&pid_file).unwrap();
        let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
        // The killed sleep is reaped by init: wait for that (it would live 60 s otherwise).
        let gone = (0..500).any(|_| {
            let alive = fs::read_to_string(&stat).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            });
            if alive {
                thread::sleep(Duration::from_millis(10));
            }
            !alive
        });
        assert!(gone, "the hook's child outlived the timeout");
    }

    #[test]
    fn the_hook_receives_the_policy_in_env_and_stdin_literally() {
        let dir = Scratch::new("env");
        let env_dump = dir.0.join("env");
        let stdin_dump = dir.0.join("stdin");
        let hook = dir.script(
            "policy",
            &format!(
                "env > '{}'; cat > '{}'; exit 0",
                env_dump.display(),
                stdin_dump.display()
            ),
        );
        let injected = dir.0.join("injected");
        let evil = format!(
            "$(touch {}); `touch {}`",
            injected.display(),
            injected.display()
        );
        let mut p = Policy::default();
        p.set_by_name("AllowCamera", "0").unwrap();
        p.set_by_name("AllowWiFi", "1").unwrap();
        p.set_by_name("UnapprovedInROMApplicationList", &evil)
            .unwrap();
        p.set_by_name("DevicePasswordEnabled", "1").unwrap();
        let hooks = HookSet {
            policy: Some(hook),
            ..hooks_with(None)
        };
        let c = hooks.enforce(&p, &EASYNC);
        // The policy hook applied its part; the password has no hook.
        assert_eq!(c.status, AckStatus::PartiallyApplied, "{c:?}");
        assert_eq!(c.missing, vec!["DevicePasswordEnabled"]);

        let env = fs::read_to_string(&env_dump).unwrap();
        assert!(env.contains("EASYNC_HOOK=policy\n"), "{env}");
        assert!(env.contains("EASYNC_POLICY_AllowCamera=0\n"), "{env}");
        assert!(env.contains("EASYNC_POLICY_AllowWiFi=1\n"), "{env}");
        assert!(
            env.contains(&format!(
                "EASYNC_POLICY_UnapprovedInROMApplicationList={evil}\n"
            )),
            "{env}"
        );
        // Only its own concern, and a cleared environment.
        assert!(!env.contains("DevicePasswordEnabled"), "{env}");
        assert!(!env.contains("HOME="), "{env}");

        let stdin: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&stdin_dump).unwrap()).unwrap();
        assert_eq!(stdin["elements"]["AllowCamera"], "0");
        assert_eq!(
            stdin["elements"]["UnapprovedInROMApplicationList"],
            evil.as_str()
        );
        assert_eq!(stdin["elements"].as_object().unwrap().len(), 3);
        assert!(!injected.exists(), "a value was run by a shell");
    }

    #[test]
    fn output_beyond_the_limit_is_cut_and_refused() {
        let dir = Scratch::new("flood");
        // 200 KiB of output and exit 2: bounded reading, and an error (not JSON).
        let hook = dir.script("lock", "head -c 204800 /dev/zero | tr '\\0' x; exit 2");
        let err = run_hook("device_lock", &hook, &LOCK_ELEMENTS, TIMEOUT).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn the_board_examples_speak_the_contract() {
        let board = Path::new(env!("CARGO_MANIFEST_DIR")).join("board/hooks");
        // No LUKS data partition on the build machine: not supported, with a valid answer.
        let outcome = run_hook(
            "storage_encryption",
            &board.join("storage-encryption-luks"),
            &[("RequireDeviceEncryption", "1")],
            TIMEOUT,
        )
        .unwrap();
        assert_eq!(outcome, HookOutcome::NotSupported);
        // No password required: nothing to do, nothing written (the other paths would edit
        // /etc/security/pwquality.conf).
        let outcome = run_hook(
            "device_lock",
            &board.join("device-lock-pwquality"),
            &[
                ("DevicePasswordEnabled", "0"),
                ("MinDevicePasswordLength", "8"),
            ],
            TIMEOUT,
        )
        .unwrap();
        assert_eq!(outcome, HookOutcome::Applied);
    }

    #[test]
    fn the_verdict_follows_the_applied_set() {
        let needing = ["A", "B"];
        let none = Compliance::from_applied(&needing, &BTreeSet::new(), Vec::new());
        assert_eq!(none.status, AckStatus::NotApplied);
        let some = Compliance::from_applied(&needing, &BTreeSet::from(["B"]), Vec::new());
        assert_eq!(some.status, AckStatus::PartiallyApplied);
        assert_eq!(some.missing, vec!["A"]);
        let all = Compliance::from_applied(&needing, &BTreeSet::from(["A", "B"]), Vec::new());
        assert_eq!(all.status, AckStatus::Applied);
        let nothing_asked = Compliance::from_applied(&[], &BTreeSet::new(), Vec::new());
        assert_eq!(nothing_asked.status, AckStatus::Applied);
    }
}
