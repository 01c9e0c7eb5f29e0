//! Noticing local changes as they happen: an inotify instance (nix) watching the data
//! directory's item folders — `mail/<f>/{cur,new}`, `contacts/<f>`, `calendar/<f>`,
//! `tasks/<f>`, `notes/<f>`, and `outbox/{new,cur}` when present — for files created,
//! deleted, moved or written.
//!
//! Its place: the daemon awaits readability of [`LocalWatcher::as_fd`] (tokio `AsyncFd`),
//! calls [`LocalWatcher::drain`], and when it says something relevant happened runs
//! [`super::account::Account::upload_once`] (which scans, so a false alarm costs a scan and
//! no network). After a FolderSync made new folders, [`LocalWatcher::rescan_dirs`] watches
//! them. A start-up scan is the daemon's job too: inotify only reports what happens while
//! it watches.
//!
//! Ignored: hidden names (the store's own temporary files are `.name.<pid>.<seq>.tmp`, and
//! editors' swap files are hidden too) and Maildir `tmp/`, which is not watched at all.
//! The store's own renames into place are reported; the upload scan then finds nothing.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// Reads of the inotify queue in one [`LocalWatcher::drain`] at most (4 KiB each), so a
/// directory in constant churn cannot keep the caller in it.
const MAX_READS_PER_DRAIN: usize = 256;

/// Why watching failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "cannot start watching local files (inotify_init: {0}); local changes are found by the periodic scan only"
    )]
    Init(Errno),
    #[error(
        "cannot watch {path} for local changes ({errno}){hint}; local changes there are found \
         by the periodic scan only"
    )]
    Watch {
        path: PathBuf,
        errno: Errno,
        hint: &'static str,
    },
}

/// inotify over the item folders of one data directory.
pub struct LocalWatcher {
    inotify: Inotify,
    data_dir: PathBuf,
    /// Watch → the folder it watches.
    watches: HashMap<WatchDescriptor, PathBuf>,
    watched: HashSet<PathBuf>,
}

fn watch_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW
}

/// The visible subfolders of `dir` (none when it does not exist).
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| !is_hidden(&e.file_name()))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Every item folder under `data_dir` that exists now.
pub fn item_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for mail in subdirs(&data_dir.join("mail")) {
        for sub in ["cur", "new"] {
            if mail.join(sub).is_dir() {
                dirs.push(mail.join(sub));
            }
        }
    }
    for class in ["contacts", "calendar", "tasks", "notes"] {
        dirs.extend(subdirs(&data_dir.join(class)));
    }
    for sub in ["new", "cur"] {
        let dir = data_dir.join("outbox").join(sub);
        if dir.is_dir() {
            dirs.push(dir);
        }
    }
    dirs
}

impl LocalWatcher {
    /// Watches the item folders of `data_dir` that exist now.
    pub fn new(data_dir: &Path) -> Result<LocalWatcher, WatchError> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(WatchError::Init)?;
        let mut watcher = LocalWatcher {
            inotify,
            data_dir: data_dir.to_path_buf(),
            watches: HashMap::new(),
            watched: HashSet::new(),
        };
        watcher.rescan_dirs()?;
        Ok(watcher)
    }

    /// Starts watching item folders that appeared since (after a FolderSync); returns how
    /// many folders are watched now. Folders that disappeared drop out by themselves.
    pub fn rescan_dirs(&mut self) -> Result<usize, WatchError> {
        for dir in item_dirs(&self.data_dir) {
            if self.watched.contains(&dir) {
                continue;
            }
            match self.inotify.add_watch(&dir, watch_flags()) {
                Ok(wd) => {
                    // A folder replaced under the same path gets the same descriptor back.
                    if let Some(old) = self.watches.insert(wd, dir.clone()) {
                        self.watched.remove(&old);
                    }
                    self.watched.insert(dir);
                }
                // Removed while we looked: nothing to watch.
                Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {}
                Err(errno) => {
                    let hint = if errno == Errno::ENOSPC {
                        ": the inotify watch limit is reached (raise the sysctl \
                         fs.inotify.max_user_watches)"
                    } else {
                        ""
                    };
                    return Err(WatchError::Watch {
                        path: dir,
                        errno,
                        hint,
                    });
                }
            }
        }
        Ok(self.watched.len())
    }

    /// How many folders are watched.
    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// The inotify descriptor: readable when events wait (for tokio `AsyncFd`).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Reads every waiting event without blocking; true when any could be a local change
    /// (a lost queue counts as one). Temporary and hidden files are not.
    pub fn drain(&mut self) -> bool {
        let mut relevant = false;
        for _ in 0..MAX_READS_PER_DRAIN {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return relevant,
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    log::warn!("reading inotify events failed ({errno}): scanning instead");
                    return true;
                }
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    relevant = true;
                    continue;
                }
                if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                    if let Some(dir) = self.watches.remove(&event.wd) {
                        self.watched.remove(&dir);
                    }
                    continue;
                }
                if event.mask.contains(AddWatchFlags::IN_ISDIR) {
                    continue;
                }
                if let Some(name) = &event.name {
                    if !is_hidden(name) {
                        relevant = true;
                    }
                }
            }
        }
        relevant
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic::testdir::TestDir;
    use crate::store::maildir::{Flags, Maildir};
    use crate::store::vdir::Vdir;
    use std::os::fd::AsRawFd;

    #[test]
    fn item_folders_are_watched_and_temp_files_ignored() {
        let t = TestDir::new("watch-items");
        let data = t.path();
        let contacts = Vdir::open(&data.join("contacts").join("Friends"), "vcf").unwrap();
        let maildir = Maildir::open(&data.join("mail").join("Inbox")).unwrap();
        std::fs::create_dir_all(data.join("state")).unwrap();
        let mut w = LocalWatcher::new(data).unwrap();
        assert_eq!(w.watched(), 3, "contacts/Friends, mail/Inbox/cur and new");
        assert!(w.as_fd().as_raw_fd() >= 0);
        assert!(!w.drain(), "nothing happened yet");

        // A file written by a user (create + close_write).
        std::fs::write(contacts.root().join("a.vcf"), "BEGIN:VCARD\r\n").unwrap();
        assert!(w.drain());
        assert!(!w.drain(), "drained");

        // The store's own temp files, Maildir tmp/ and the state folder are not changes.
        std::fs::write(contacts.root().join(".a.vcf.1.0.tmp"), "x").unwrap();
        std::fs::write(maildir.root().join("tmp").join("1.delivery"), "x").unwrap();
        std::fs::write(data.join("state").join("account.postcard"), "x").unwrap();
        assert!(!w.drain());

        // A MUA marking a message read: a rename in cur/.
        let m = maildir
            .deliver(b"Subject: x\r\n\r\nx\r\n", Flags::NONE)
            .unwrap();
        assert!(w.drain(), "the delivery into new/");
        maildir.set_flags(&m.id, Flags::SEEN).unwrap();
        assert!(w.drain(), "new/ → cur/ with :2,S");
        std::fs::remove_file(contacts.root().join("a.vcf")).unwrap();
        assert!(w.drain(), "a deletion");
    }

    #[test]
    fn new_folders_are_watched_after_a_rescan_and_removed_ones_drop_out() {
        let t = TestDir::new("watch-rescan");
        let data = t.path();
        let mut w = LocalWatcher::new(data).unwrap();
        assert_eq!(w.watched(), 0, "an empty data dir");
        let tasks = data.join("tasks").join("Todo");
        std::fs::create_dir_all(&tasks).unwrap();
        std::fs::create_dir_all(data.join("outbox").join("new")).unwrap();
        assert_eq!(w.rescan_dirs().unwrap(), 2);
        assert_eq!(w.rescan_dirs().unwrap(), 2, "no double watches");
        std::fs::write(tasks.join("t.ics"), "BEGIN:VCALENDAR\r\n").unwrap();
        assert!(w.drain());
        std::fs::write(data.join("outbox").join("new").join("m1"), "Subject: x\r\n").unwrap();
        assert!(w.drain(), "a message queued in the outbox");

        std::fs::remove_dir_all(&tasks).unwrap();
        w.drain();
        assert_eq!(w.watched(), 1, "the removed folder is no longer watched");
        std::fs::create_dir_all(&tasks).unwrap();
        assert_eq!(
            w.rescan_dirs().unwrap(),
            2,
            "and comes back when it reappears"
        );
    }
}
