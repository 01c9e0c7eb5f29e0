//! The journal, in a folder's directory, of the new item files a Sync response wrote before
//! the state that maps them was saved. A kill between the two leaves files the item map does
//! not know: were they taken for the device's own, the next upload would send the server's
//! items back to it as new ones.
//!
//! A name is appended ([`IncomingJournal::note`]) before its file is renamed into place, and
//! the journal goes once the state is saved ([`IncomingJournal::forget`]). When a folder's
//! next sync starts, a journal an earlier, killed run left is moved aside as the orphans list
//! ([`IncomingJournal::adopt_leftover`]), so that this run's own journal cannot take it along;
//! once the download is complete the engine removes the listed files the state still does
//! not map and clears the list. Both files are hidden and end in `.tmp`, so no scan takes
//! them for items. Not fsynced: this covers a killed process (the page cache survives), not
//! every power cut.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::atomic::{Result, StoreError};

/// This run's journal, in the folder's directory.
pub const INCOMING_JOURNAL: &str = ".easync-incoming.tmp";
/// What earlier runs left, waiting for the end of the folder's download.
pub const ORPHANS_JOURNAL: &str = ".easync-orphans.tmp";
/// Most names read back from an orphans list (a response writes at most its window of new
/// items; this only bounds a damaged file).
const MAX_ORPHANS: usize = 100_000;

/// The journals of one folder.
#[derive(Debug)]
pub struct IncomingJournal {
    root: PathBuf,
    /// Open for appending once this run noted a name.
    file: Option<File>,
}

impl IncomingJournal {
    /// The journals of the folder at `root` (nothing is opened yet).
    pub fn new(root: &Path) -> IncomingJournal {
        IncomingJournal {
            root: root.to_path_buf(),
            file: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Notes `local`, a new item file about to be put in place.
    pub fn note(&mut self, local: &str) -> Result<()> {
        let path = self.path(INCOMING_JOURNAL);
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| StoreError::io("open", &path, e))?;
            self.file = Some(file);
        }
        if let Some(file) = self.file.as_mut() {
            writeln!(file, "{local}").map_err(|e| StoreError::io("write", &path, e))?;
        }
        Ok(())
    }

    /// The state now maps every file this run noted: its journal goes.
    pub fn forget(&mut self) -> Result<()> {
        if self.file.take().is_none() {
            return Ok(());
        }
        remove_if_there(&self.path(INCOMING_JOURNAL))
    }

    /// Moves a journal an earlier run left onto the orphans list.
    pub fn adopt_leftover(&self) -> Result<()> {
        let journal = self.path(INCOMING_JOURNAL);
        let names = match std::fs::read(&journal) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("read", &journal, e)),
        };
        let orphans = self.path(ORPHANS_JOURNAL);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&orphans)
            .and_then(|mut f| f.write_all(&names))
            .map_err(|e| StoreError::io("write", &orphans, e))?;
        std::fs::remove_file(&journal).map_err(|e| StoreError::io("remove", &journal, e))
    }

    /// The names on the orphans list (empty when there is none).
    pub fn orphans(&self) -> Result<Vec<String>> {
        let path = self.path(ORPHANS_JOURNAL);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.is_empty())
                .take(MAX_ORPHANS)
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::io("read", &path, e)),
        }
    }

    /// The orphans were dealt with: the list goes.
    pub fn clear_orphans(&self) -> Result<()> {
        remove_if_there(&self.path(ORPHANS_JOURNAL))
    }
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io("remove", path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic::testdir::TestDir;

    #[test]
    fn a_leftover_journal_becomes_the_orphans_list_and_survives_the_next_runs_journal() {
        let t = TestDir::new("incoming");
        let mut killed = IncomingJournal::new(t.path());
        killed.note("a.vcf").unwrap();
        killed.note("b.vcf").unwrap();
        drop(killed); // no forget: a kill

        let mut next = IncomingJournal::new(t.path());
        next.adopt_leftover().unwrap();
        next.note("c.vcf").unwrap();
        next.forget().unwrap();
        assert!(!t.path().join(INCOMING_JOURNAL).exists());
        assert_eq!(next.orphans().unwrap(), ["a.vcf", "b.vcf"]);
        next.clear_orphans().unwrap();
        assert!(next.orphans().unwrap().is_empty());
        // Nothing noted: nothing to forget, no file made.
        let mut idle = IncomingJournal::new(t.path());
        idle.forget().unwrap();
        assert!(!t.path().join(INCOMING_JOURNAL).exists());
    }
}
