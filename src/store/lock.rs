//! One process at a time per data directory: an exclusive `flock` on `state/lock`, held as
//! long as the [`DataDirLock`] lives (the kernel drops it when the process dies, kill -9
//! included, so there is never a stale lock to clean up). The file holds the holder's pid
//! for the message the second process gets.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::atomic::{self, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, Result, StoreError};

/// The lock file, under the data directory.
pub const LOCK_FILE: &str = "state/lock";

/// Holds the data directory for this process until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` without waiting; another holder is an error naming its
    /// pid and what to do.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock> {
        let path = data_dir.join(LOCK_FILE);
        if let Some(dir) = path.parent() {
            atomic::create_dir_all(dir, PRIVATE_DIR_MODE)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE_FILE_MODE)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, errno)) => {
                if errno != nix::errno::Errno::EWOULDBLOCK {
                    return Err(StoreError::io("lock", &path, errno.into()));
                }
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StoreError::Locked {
                    dir: data_dir.to_path_buf(),
                    holder: text.trim().parse().ok(),
                });
            }
        };
        // Best effort: the pid only makes the message better.
        let pid = std::process::id().to_string();
        let _ = lock
            .set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| lock.write_all(pid.as_bytes()));
        Ok(DataDirLock { _lock: lock, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic::testdir::TestDir;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let t = TestDir::new("lock");
        let first = DataDirLock::acquire(t.path()).unwrap();
        // flock locks belong to the open file, so a second open in this process conflicts
        // just as another process would.
        let err = DataDirLock::acquire(t.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, StoreError::Locked { holder: Some(pid), .. } if pid == std::process::id()),
            "{text}"
        );
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        assert!(text.contains("stop"), "says what to do: {text}");
        drop(first);
        let again = DataDirLock::acquire(t.path()).unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
    }
}
