//! Failed unlock attempts (MS-ASPROV MaxDevicePasswordFailedAttempts): the lock screen
//! reports each failed and each successful unlock (over D-Bus), this module counts them in
//! a small text file under `data_dir/state/`, and says when the count has reached the
//! policy's limit, at which point the caller orders the full wipe (`Handle::wipe_device`).
//!
//! The limit comes from the provisioned policy (the engine calls [`set_limit`] whenever it
//! adopts one); it lives here rather than in the account state because the state's format
//! is fixed. MS-ASPROV 2.2.2.32: the element is 4–16, or empty or absent for "no maximum",
//! and is ignored when DevicePasswordEnabled is 0. A limit of `None` or 0 never wipes.
//!
//! The file is replaced atomically (private mode), so a crash leaves either the old or the
//! new count. A damaged file (only tampering or a failing disk makes one) counts as the
//! limit reached, so that damage never buys an attacker more tries: it is kept aside as
//! `state/unlock.damaged`, logged, and rewritten with the failures set to the limit (the
//! limit read from the damaged file when its line is intact, else 1 until the next
//! provisioning sets the policy's value again). [`status`] reports the damage as an error.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::store::atomic::{self, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, StoreError};

/// The count's file under `data_dir`.
pub const UNLOCK_FILE: &str = "state/unlock";
/// Where a damaged count file is kept for inspection.
pub const DAMAGED_FILE: &str = "state/unlock.damaged";
/// The most bytes a sound file has (a longer one is damaged).
const MAX_FILE_BYTES: u64 = 512;
/// The limit taken when a damaged file's own limit cannot be read.
const LIMIT_WHEN_UNREADABLE: u32 = 1;

/// Serialises the read-modify-write of the file between threads (the D-Bus thread reports
/// unlocks while the engine's thread sets the limit).
static FILE_LOCK: Mutex<()> = Mutex::new(());

/// Where the count stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlockStatus {
    /// Failed unlocks since the last successful one.
    pub failures: u32,
    /// The policy's MaxDevicePasswordFailedAttempts (`None`: no policy or no maximum).
    pub limit: Option<u32>,
}

impl UnlockStatus {
    /// Whether the failures have reached the limit: the full wipe is due.
    pub fn wipe_due(&self) -> bool {
        self.active_limit()
            .is_some_and(|limit| self.failures >= limit)
    }

    /// Failed unlocks left before the wipe (`None`: no limit).
    pub fn remaining(&self) -> Option<u32> {
        self.active_limit()
            .map(|limit| limit.saturating_sub(self.failures))
    }

    fn active_limit(&self) -> Option<u32> {
        self.limit.filter(|&limit| limit > 0)
    }
}

/// Why the count could not be read or recorded.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error(
        "the failed-unlock count {} is damaged ({detail}): it counts as the limit reached; \
         the next reported unlock rewrites it (the damaged file is then kept as {})",
        .path.display(), .kept.display()
    )]
    Damaged {
        path: PathBuf,
        kept: PathBuf,
        detail: String,
    },
    #[error("the failed-unlock count cannot be stored: {0}")]
    Store(#[from] StoreError),
}

/// What a file held: each value, or `None` when its line is missing or unreadable.
struct Parsed {
    failures: Option<u32>,
    limit: Option<Option<u32>>,
    problem: Option<String>,
}

fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed {
        failures: None,
        limit: None,
        problem: None,
    };
    let mut problems = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(' ').map(|(k, v)| (k, v.trim())) {
            Some(("failures", v)) if parsed.failures.is_none() => match v.parse() {
                Ok(n) => parsed.failures = Some(n),
                Err(_) => problems.push(format!("failures {v:?} is not a count")),
            },
            Some(("limit", "none")) if parsed.limit.is_none() => parsed.limit = Some(None),
            Some(("limit", v)) if parsed.limit.is_none() => match v.parse() {
                Ok(n) => parsed.limit = Some(Some(n)),
                Err(_) => problems.push(format!("limit {v:?} is not a count")),
            },
            _ => problems.push(format!("unexpected line {line:?}")),
        }
    }
    if parsed.failures.is_none() && problems.is_empty() {
        problems.push("no failures line".into());
    }
    if parsed.limit.is_none() && problems.is_empty() {
        problems.push("no limit line".into());
    }
    if !problems.is_empty() {
        parsed.problem = Some(problems.join("; "));
    }
    parsed
}

/// What the file's bytes say (at most `MAX_FILE_BYTES + 1` of them are read).
fn parse_bytes(bytes: &[u8]) -> Parsed {
    match std::str::from_utf8(bytes) {
        Ok(text) if bytes.len() as u64 <= MAX_FILE_BYTES => parse(text),
        Ok(_) => Parsed {
            failures: None,
            limit: None,
            problem: Some(format!("longer than {MAX_FILE_BYTES} bytes")),
        },
        Err(_) => Parsed {
            failures: None,
            limit: None,
            problem: Some("not text".into()),
        },
    }
}

/// Fuzzing entry point (fuzz/fuzz_targets/device_input.rs): the count a file of `bytes`
/// holds when it is sound, with the file written back for it. Not part of the API.
#[doc(hidden)]
pub fn fuzz_count_file(bytes: &[u8]) -> Option<(UnlockStatus, String)> {
    match parse_bytes(bytes) {
        Parsed {
            problem: None,
            failures: Some(failures),
            limit: Some(limit),
        } => {
            let status = UnlockStatus { failures, limit };
            Some((status, render(&status)))
        }
        _ => None,
    }
}

fn render(status: &UnlockStatus) -> String {
    let limit = status
        .limit
        .filter(|&l| l > 0)
        .map_or_else(|| "none".to_string(), |l| l.to_string());
    format!(
        "# easync: failed unlocks since the last good one, and the policy's \
         MaxDevicePasswordFailedAttempts\nfailures {}\nlimit {limit}\n",
        status.failures
    )
}

/// What reading the file found.
enum Found {
    Sound(UnlockStatus),
    Damaged(UnlockError, Parsed),
}

fn read(data_dir: &Path) -> Result<Found, UnlockError> {
    let path = data_dir.join(UNLOCK_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Found::Sound(UnlockStatus {
                failures: 0,
                limit: None,
            }));
        }
        Err(e) => return Err(StoreError::io("read", &path, e).into()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io("read", &path, e))?;
    let mut parsed = parse_bytes(&bytes);
    match (parsed.problem.take(), parsed.failures, parsed.limit) {
        (None, Some(failures), Some(limit)) => Ok(Found::Sound(UnlockStatus { failures, limit })),
        (problem, _, _) => Ok(Found::Damaged(
            UnlockError::Damaged {
                path,
                kept: data_dir.join(DAMAGED_FILE),
                detail: problem.unwrap_or_else(|| "incomplete".into()),
            },
            parsed,
        )),
    }
}

fn write(data_dir: &Path, status: &UnlockStatus) -> Result<(), UnlockError> {
    let path = data_dir.join(UNLOCK_FILE);
    if let Some(dir) = path.parent().filter(|d| !d.is_dir()) {
        atomic::create_dir_all(dir, PRIVATE_DIR_MODE)?;
    }
    atomic::replace_file(&path, render(status).as_bytes(), PRIVATE_FILE_MODE)?;
    Ok(())
}

/// The current count and whether it was damaged: a damaged file is kept aside, logged, and
/// taken as the limit reached (see the module documentation).
fn current(data_dir: &Path) -> Result<(UnlockStatus, bool), UnlockError> {
    match read(data_dir)? {
        Found::Sound(status) => Ok((status, false)),
        Found::Damaged(error, parsed) => {
            log::error!("{error}");
            atomic::rename(&data_dir.join(UNLOCK_FILE), &data_dir.join(DAMAGED_FILE))?;
            let limit = match parsed.limit {
                Some(limit) => limit.filter(|&l| l > 0),
                None => Some(LIMIT_WHEN_UNREADABLE),
            };
            let status = UnlockStatus {
                failures: limit.unwrap_or(0),
                limit,
            };
            Ok((status, true))
        }
    }
}

fn update(
    data_dir: &Path,
    change: impl FnOnce(&mut UnlockStatus),
) -> Result<UnlockStatus, UnlockError> {
    let _serial = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (mut status, damaged) = current(data_dir)?;
    let before = status;
    change(&mut status);
    if damaged || status != before {
        write(data_dir, &status)?;
    }
    Ok(status)
}

/// Counts a failed unlock. When the returned status says [`UnlockStatus::wipe_due`], the
/// caller orders the full wipe.
pub fn record_failure(data_dir: &Path) -> Result<UnlockStatus, UnlockError> {
    let status = update(data_dir, |s| s.failures = s.failures.saturating_add(1))?;
    match status.remaining() {
        Some(0) => log::warn!(
            "unlock failed {} times: the policy's limit is reached",
            status.failures
        ),
        Some(left) => log::info!("unlock failed; {left} attempt(s) left before the wipe"),
        None => {}
    }
    Ok(status)
}

/// A successful unlock: the failures start again from 0.
pub fn record_success(data_dir: &Path) -> Result<UnlockStatus, UnlockError> {
    update(data_dir, |s| s.failures = 0)
}

/// The count as it stands; a damaged file is an error naming it.
pub fn status(data_dir: &Path) -> Result<UnlockStatus, UnlockError> {
    let _serial = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    match read(data_dir)? {
        Found::Sound(status) => Ok(status),
        Found::Damaged(error, _) => Err(error),
    }
}

/// Sets the limit from the provisioned policy (`None` or 0: no wipe). The failures so far
/// are kept; the file is only written when something changes.
pub fn set_limit(data_dir: &Path, limit: Option<u32>) -> Result<(), UnlockError> {
    let limit = limit.filter(|&l| l > 0);
    let _serial = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (mut status, damaged) = current(data_dir)?;
    if status.limit == limit && !damaged {
        return Ok(());
    }
    if status.limit != limit {
        log::info!(
            "failed unlocks allowed before a wipe: {}",
            limit.map_or_else(|| "no limit".to_string(), |l| l.to_string())
        );
    }
    status.limit = limit;
    if damaged {
        // A damaged count is the limit reached, whatever the new limit.
        status.failures = limit.unwrap_or(0);
    }
    write(data_dir, &status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic::testdir::TestDir;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn failures_are_persisted_counted_to_the_limit_and_reset_by_a_success() {
        let t = TestDir::new("unlock-count");
        let data = t.path();
        assert_eq!(
            status(data).unwrap(),
            UnlockStatus {
                failures: 0,
                limit: None
            }
        );
        set_limit(data, Some(3)).unwrap();
        let first = record_failure(data).unwrap();
        assert_eq!((first.failures, first.remaining()), (1, Some(2)));
        assert!(!first.wipe_due());
        assert!(!record_failure(data).unwrap().wipe_due());
        // Read back from the file alone, as a restarted process would.
        let text = std::fs::read_to_string(data.join(UNLOCK_FILE)).unwrap();
        assert!(text.contains("failures 2\nlimit 3\n"), "{text}");
        let mode = std::fs::metadata(data.join(UNLOCK_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(status(data).unwrap().failures, 2);
        let third = record_failure(data).unwrap();
        assert!(third.wipe_due());
        assert_eq!(third.remaining(), Some(0));

        let reset = record_success(data).unwrap();
        assert_eq!(
            reset,
            UnlockStatus {
                failures: 0,
                limit: Some(3)
            }
        );
        assert_eq!(status(data).unwrap(), reset);
        // A new policy keeps the count, and a lower limit can make the wipe due.
        record_failure(data).unwrap();
        record_failure(data).unwrap();
        set_limit(data, Some(2)).unwrap();
        assert!(status(data).unwrap().wipe_due());
    }

    #[test]
    fn no_limit_or_zero_never_makes_the_wipe_due() {
        let t = TestDir::new("unlock-nolimit");
        let data = t.path();
        for _ in 0..20 {
            let s = record_failure(data).unwrap();
            assert!(!s.wipe_due());
            assert_eq!(s.remaining(), None);
        }
        assert_eq!(status(data).unwrap().failures, 20);
        set_limit(data, Some(0)).unwrap();
        let s = record_failure(data).unwrap();
        assert_eq!(s.limit, None, "0 is stored as no limit");
        assert!(!s.wipe_due());
        assert!(
            !UnlockStatus {
                failures: 5,
                limit: Some(0)
            }
            .wipe_due()
        );
        assert!(
            std::fs::read_to_string(data.join(UNLOCK_FILE))
                .unwrap()
                .contains("limit none")
        );
    }

    #[test]
    fn a_damaged_count_is_an_error_and_counts_as_the_limit_reached() {
        let t = TestDir::new("unlock-damaged");
        let data = t.path();
        set_limit(data, Some(5)).unwrap();
        record_failure(data).unwrap();
        let path = data.join(UNLOCK_FILE);
        std::fs::write(&path, "failures many\nlimit 5\n").unwrap();
        let e = status(data).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("state/unlock"), "{message}");
        assert!(message.contains("damaged"), "{message}");
        assert!(message.contains("limit reached"), "{message}");
        // One more failure: the wipe is due at once, the damaged file is kept aside.
        let s = record_failure(data).unwrap();
        assert!(s.wipe_due(), "{s:?}");
        assert_eq!(s.limit, Some(5), "the intact limit line is kept");
        assert_eq!(
            std::fs::read_to_string(data.join(DAMAGED_FILE)).unwrap(),
            "failures many\nlimit 5\n"
        );
        assert!(status(data).unwrap().wipe_due(), "rewritten sound");

        // The limit unreadable too: the next failure wipes until a policy sets it again.
        std::fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
        assert!(matches!(status(data), Err(UnlockError::Damaged { .. })));
        assert!(record_failure(data).unwrap().wipe_due());
        // A new policy on a damaged file: the count stands at the new limit.
        std::fs::write(&path, "limit 4\n").unwrap();
        set_limit(data, Some(8)).unwrap();
        assert_eq!(
            status(data).unwrap(),
            UnlockStatus {
                failures: 8,
                limit: Some(8)
            }
        );
        // A successful unlock repairs it with no failures.
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(record_success(data).unwrap().failures, 0);
    }
}
