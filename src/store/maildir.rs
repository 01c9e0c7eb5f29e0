//! Mail folders in the Maildir layout (<https://cr.yp.to/proto/maildir.html>), as mutt,
//! neomutt and aerc read them: `data_dir/mail/<dir>/{cur,new,tmp}`.
//!
//! - Delivery streams the message into `tmp/` ([`Maildir::begin_delivery`] gives a
//!   `Sink`), then renames it into `new/` (no flags) or `cur/`
//!   (with flags, `name:2,FLAGS`). Unique names are `secs.M<usec>P<pid>Q<seq>.<host>`.
//! - The ServerId is not in the name: the state's [`ItemMap`] maps it to the unique name.
//!   [`Delivery::commit_item`] uses the map so that delivering the same ServerId again
//!   replaces the message in place (atomic rename over it) instead of adding a copy. The
//!   engine goes further and delivers with [`Delivery::commit_as`] under a name made from
//!   the ServerId (`eas-<stem>`), so a batch replayed after a crash, before the state was
//!   saved, also replaces its messages rather than duplicating them.
//! - Flags are the spec's `D F P R S T`, in ASCII order after `:2,`; other characters found
//!   there (lower-case keywords of other MUAs) are kept when we change flags.
//! - [`Outbox`] is the same layout at `data_dir/outbox`: device apps drop messages in it
//!   (tmp → new), easyncd sends them and removes each one only once the server took it.
//!
//! A message is found by its unique name: first at the paths the state's recorded flags
//! predict (`new/<id>`, `cur/<id>:2,<flags>`), else by listing `new/` then `cur/`; delivery
//! of a new message never lists the folder.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::atomic::{self, AtomicFile, DATA_DIR_MODE, DATA_FILE_MODE, Result, StoreError};
use super::names;
use super::state::{Fingerprint, ItemEntry, ItemMap};
use crate::eas::sink::Sink;

/// Maildir message flags (the "2," info of the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(u8);

impl Flags {
    pub const DRAFT: Flags = Flags(1 << 0);
    pub const FLAGGED: Flags = Flags(1 << 1);
    pub const PASSED: Flags = Flags(1 << 2);
    pub const REPLIED: Flags = Flags(1 << 3);
    pub const SEEN: Flags = Flags(1 << 4);
    pub const TRASHED: Flags = Flags(1 << 5);
    pub const NONE: Flags = Flags(0);

    /// The letters, in the order the spec requires (ASCII).
    const LETTERS: [(char, Flags); 6] = [
        ('D', Flags::DRAFT),
        ('F', Flags::FLAGGED),
        ('P', Flags::PASSED),
        ('R', Flags::REPLIED),
        ('S', Flags::SEEN),
        ('T', Flags::TRASHED),
    ];

    /// The raw bits (stored in [`Fingerprint::Flags`]).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Flags from raw bits; unknown bits are dropped.
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits & 0b11_1111)
    }

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `self` with `other` set or cleared.
    pub const fn with(self, other: Flags, on: bool) -> Flags {
        if on {
            Flags(self.0 | other.0)
        } else {
            Flags(self.0 & !other.0)
        }
    }

    /// The flag letters, e.g. `"FS"`.
    pub fn letters(self) -> String {
        Flags::LETTERS
            .iter()
            .filter(|(_, f)| self.contains(*f))
            .map(|(c, _)| *c)
            .collect()
    }

    /// Parses the characters after `:2,`; returns the known flags and the other
    /// characters (kept as they are).
    pub fn parse(info: &str) -> (Flags, String) {
        let mut flags = Flags::NONE;
        let mut other = String::new();
        for c in info.chars() {
            match Flags::LETTERS.iter().find(|(l, _)| *l == c) {
                Some((_, f)) => flags = flags.with(*f, true),
                None => other.push(c),
            }
        }
        (flags, other)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// Where a message sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subdir {
    New,
    Cur,
}

/// One message found in a Maildir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The unique name, without the `:2,` info.
    pub id: String,
    pub subdir: Subdir,
    pub flags: Flags,
    /// Info characters other than our flags (other MUAs' keywords), preserved.
    pub other_info: String,
    /// The file.
    pub path: PathBuf,
}

/// A Maildir folder.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    /// Opens (creating if needed, durably) the Maildir at `root`.
    pub fn open(root: &Path) -> Result<Maildir> {
        for sub in ["cur", "new", "tmp"] {
            atomic::create_dir_all(&root.join(sub), DATA_DIR_MODE)?;
        }
        atomic::remove_stale_temp_files(&root.join("tmp"))?;
        Ok(Maildir {
            root: root.to_path_buf(),
        })
    }

    /// Opens the mail folder `data_dir/mail/<local_dir>`; `local_dir` must be a name made by
    /// [`names`].
    pub fn for_folder(data_dir: &Path, local_dir: &str) -> Result<Maildir> {
        let root = data_dir.join("mail").join(local_dir);
        if !names::is_safe_component(local_dir) {
            return Err(StoreError::Invalid {
                path: root,
                detail: "is not a safe folder name (the state is inconsistent: resync)".into(),
            });
        }
        Maildir::open(&root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts delivering a message: write (or stream) it into the returned [`Delivery`],
    /// then commit. Dropped uncommitted, it leaves nothing behind.
    pub fn begin_delivery(&self) -> Result<Delivery<'_>> {
        let file = AtomicFile::create_in(
            &self.root.join("tmp"),
            self.root.join("tmp").join("delivery"),
            DATA_FILE_MODE,
        )?;
        Ok(Delivery {
            maildir: self,
            file,
        })
    }

    /// Delivers a whole message from memory (small messages, tests).
    pub fn deliver(&self, content: &[u8], flags: Flags) -> Result<Message> {
        let mut d = self.begin_delivery()?;
        d.write_all(content)
            .map_err(|e| StoreError::io("write", d.file.temp_path(), e))?;
        d.commit(flags)
    }

    /// Every message in `new/` and `cur/`, ordered by unique name (delivery order for our
    /// names). Hidden files and names with a `/`-free but unsafe form are skipped.
    pub fn list(&self) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        self.visit(|m| {
            out.push(m);
            false
        })?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The message with unique name `id`, if present.
    pub fn find(&self, id: &str) -> Result<Option<Message>> {
        self.find_hinted(id, None)
    }

    /// As [`find`](Maildir::find), first trying `new/id` and, given the flags the message
    /// probably has (as recorded in the state), `cur/id:2,FLAGS`, before listing folders.
    pub fn find_hinted(&self, id: &str, likely_flags: Option<Flags>) -> Result<Option<Message>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let mut guesses = vec![(self.root.join("new").join(id), Subdir::New, Flags::NONE)];
        if let Some(flags) = likely_flags {
            guesses.push((self.cur_path(id, flags, ""), Subdir::Cur, flags));
        }
        for (path, subdir, flags) in guesses {
            if fs::symlink_metadata(&path).is_ok() {
                return Ok(Some(Message {
                    id: id.to_string(),
                    subdir,
                    flags,
                    other_info: String::new(),
                    path,
                }));
            }
        }
        let mut found = None;
        self.visit(|m| {
            if m.id == id {
                found = Some(m);
                true
            } else {
                false
            }
        })?;
        Ok(found)
    }

    /// Sets the flags of message `id` (moving it to `cur/`, as a MUA would). Returns the
    /// message as it is now, or `None` if there is no such message.
    pub fn set_flags(&self, id: &str, flags: Flags) -> Result<Option<Message>> {
        let Some(current) = self.find(id)? else {
            return Ok(None);
        };
        let target = self.cur_path(id, flags, &current.other_info);
        if target != current.path {
            atomic::rename(&current.path, &target)?;
        }
        Ok(Some(Message {
            subdir: Subdir::Cur,
            flags,
            path: target,
            ..current
        }))
    }

    /// Removes message `id`. Returns whether it was there.
    pub fn remove(&self, id: &str) -> Result<bool> {
        match self.find(id)? {
            Some(m) => atomic::remove_file(&m.path),
            None => Ok(false),
        }
    }

    /// Removes message `id` and its entry in `map` under `server_id`.
    pub fn remove_item(&self, map: &mut ItemMap, server_id: &str) -> Result<bool> {
        let Some(entry) = map.get(server_id) else {
            return Ok(false);
        };
        let likely = match entry.fingerprint {
            Fingerprint::Flags(bits) => Some(Flags::from_bits(bits)),
            _ => None,
        };
        let removed = match self.find_hinted(&entry.local, likely)? {
            Some(m) => atomic::remove_file(&m.path)?,
            None => false,
        };
        map.remove(server_id);
        Ok(removed)
    }

    fn cur_path(&self, id: &str, flags: Flags, other_info: &str) -> PathBuf {
        self.root
            .join("cur")
            .join(format!("{id}:2,{}{other_info}", flags.letters()))
    }

    /// Where a message `id` with `flags` goes when delivered.
    fn delivery_path(&self, id: &str, flags: Flags) -> PathBuf {
        if flags.is_empty() {
            self.root.join("new").join(id)
        } else {
            self.cur_path(id, flags, "")
        }
    }

    /// Calls `f` for every message in `new/` then `cur/` (in directory order) until it
    /// returns true; unlike [`list`](Maildir::list) it holds one message at a time.
    pub fn visit(&self, mut f: impl FnMut(Message) -> bool) -> Result<()> {
        for (sub, subdir) in [("new", Subdir::New), ("cur", Subdir::Cur)] {
            let dir = self.root.join(sub);
            let entries = fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io("list", &dir, e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with('.') || entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let (id, flags, other_info) = match name.split_once(":2,") {
                    Some((id, info)) => {
                        let (flags, other) = Flags::parse(info);
                        (id.to_string(), flags, other)
                    }
                    None => (name.clone(), Flags::NONE, String::new()),
                };
                let message = Message {
                    id,
                    subdir,
                    flags,
                    other_info,
                    path: entry.path(),
                };
                if f(message) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Whether `id` can be a message's unique name (as read from the state, say).
fn is_valid_id(id: &str) -> bool {
    names::is_safe_component(id) && !id.contains(':')
}

/// Distinguishes deliveries within one process and second.
static DELIVERY_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The host part of unique names: `/` and `:` escaped as the spec says, bounded.
fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(read_host_name)
}

fn read_host_name() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut host = String::new();
    for c in raw.trim().chars().take(64) {
        match c {
            '/' => host.push_str("\\057"),
            ':' => host.push_str("\\072"),
            c if c.is_control() || c == '.' && host.is_empty() => host.push('_'),
            c => host.push(c),
        }
    }
    if host.is_empty() {
        host.push_str("localhost");
    }
    host
}

/// A new unique name (`secs.M<usec>P<pid>Q<seq>.<host>`).
fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        DELIVERY_SEQUENCE.fetch_add(1, Ordering::Relaxed),
        host_name()
    )
}

/// A message being delivered: a [`Write`] and a [`Sink`] into `tmp/`.
pub struct Delivery<'a> {
    maildir: &'a Maildir,
    file: AtomicFile,
}

impl Delivery<'_> {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.file.len()
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_empty()
    }

    /// Delivers as a new message with a new unique name.
    pub fn commit(self, flags: Flags) -> Result<Message> {
        // Names carry pid, sequence and microseconds; checking the exact targets (not the
        // whole folder) keeps delivery O(1) in the folder's size.
        let mut id = unique_name();
        while self.maildir.root.join("new").join(&id).exists()
            || self.maildir.delivery_path(&id, flags).exists()
        {
            id = unique_name();
        }
        self.commit_fresh(&id, flags)
    }

    /// Delivers to a name known to be free.
    fn commit_fresh(self, id: &str, flags: Flags) -> Result<Message> {
        let target = self.maildir.delivery_path(id, flags);
        self.file.commit_to(&target)?;
        Ok(Message {
            id: id.to_string(),
            subdir: if flags.is_empty() {
                Subdir::New
            } else {
                Subdir::Cur
            },
            flags,
            other_info: String::new(),
            path: target,
        })
    }

    /// Delivers under the unique name `id`, replacing the message of that name if there is
    /// one (atomically: readers see the old or the new content, never none). A message
    /// already in `cur/` stays there.
    pub fn commit_as(self, id: &str, flags: Flags) -> Result<Message> {
        self.commit_as_hinted(id, flags, None)
    }

    fn commit_as_hinted(self, id: &str, flags: Flags, likely: Option<Flags>) -> Result<Message> {
        if !is_valid_id(id) {
            return Err(StoreError::Invalid {
                path: self.maildir.root.join(id),
                detail: "is not a valid Maildir message name (the state is inconsistent: resync)"
                    .into(),
            });
        }
        let maildir = self.maildir;
        match maildir.find_hinted(id, likely)? {
            Some(m) if m.subdir == Subdir::Cur || !flags.is_empty() => {
                let target = maildir.cur_path(id, flags, &m.other_info);
                // Replace in place first, then rename to the new flags: each step atomic.
                self.file.commit_to(&m.path)?;
                if m.path != target {
                    atomic::rename(&m.path, &target)?;
                }
                Ok(Message {
                    id: id.to_string(),
                    subdir: Subdir::Cur,
                    flags,
                    other_info: m.other_info,
                    path: target,
                })
            }
            _ => self.commit_fresh(id, flags),
        }
    }

    /// Delivers the item `server_id`: replaces its message if `map` knows it (and it still
    /// exists), else delivers a new one; records it in `map` with its flags.
    pub fn commit_item(self, map: &mut ItemMap, server_id: &str, flags: Flags) -> Result<Message> {
        let known = map.get(server_id).map(|e| (e.local.clone(), e.fingerprint));
        let message = match known {
            Some((id, fingerprint)) if is_valid_id(&id) => {
                let likely = match fingerprint {
                    Fingerprint::Flags(bits) => Some(Flags::from_bits(bits)),
                    _ => None,
                };
                self.commit_as_hinted(&id, flags, likely)?
            }
            _ => self.commit(flags)?,
        };
        map.insert(
            server_id,
            ItemEntry {
                local: message.id.clone(),
                fingerprint: Fingerprint::Flags(flags.bits()),
            },
        )?;
        Ok(message)
    }
}

impl Write for Delivery<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink for Delivery<'_> {
    fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }
}

/// The outgoing mail queue: a Maildir at `data_dir/outbox`.
#[derive(Debug, Clone)]
pub struct Outbox {
    maildir: Maildir,
}

impl Outbox {
    /// Opens (creating if needed) `data_dir/outbox`.
    pub fn open(data_dir: &Path) -> Result<Outbox> {
        Ok(Outbox {
            maildir: Maildir::open(&data_dir.join("outbox"))?,
        })
    }

    pub fn maildir(&self) -> &Maildir {
        &self.maildir
    }

    /// Messages waiting to be sent, oldest first; messages flagged Trashed (`T`) or Draft
    /// (`D`) are not sent.
    pub fn queued(&self) -> Result<Vec<Message>> {
        let mut all = self.maildir.list()?;
        all.retain(|m| !m.flags.contains(Flags::TRASHED) && !m.flags.contains(Flags::DRAFT));
        Ok(all)
    }

    /// Opens a queued message for reading (to stream it into SendMail) and gives its size.
    pub fn open_message(&self, message: &Message) -> Result<(File, u64)> {
        let file =
            File::open(&message.path).map_err(|e| StoreError::io("open", &message.path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("inspect", &message.path, e))?
            .len();
        Ok((file, len))
    }

    /// Removes a message the server accepted. Returns whether it was still there (it may
    /// have been renamed meanwhile: it is found again by its unique name).
    pub fn remove_sent(&self, message: &Message) -> Result<bool> {
        if atomic::remove_file(&message.path)? {
            return Ok(true);
        }
        self.maildir.remove(&message.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic::testdir::TestDir;

    #[test]
    fn flags_letters_round_trip() {
        let f = Flags::SEEN | Flags::FLAGGED | Flags::REPLIED;
        assert_eq!(f.letters(), "FRS");
        assert_eq!(Flags::parse("FRS"), (f, String::new()));
        assert_eq!(Flags::parse("Sab"), (Flags::SEEN, "ab".to_string()));
        assert_eq!(Flags::from_bits(0xff).bits(), 0b11_1111);
        assert_eq!(Flags::from_bits(f.bits()), f);
        assert!(!f.with(Flags::SEEN, false).contains(Flags::SEEN));
    }

    #[test]
    fn unique_names_are_unique_and_safe() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        assert!(is_valid_id(&a), "{a}");
        assert!(!a.contains('/'));
    }

    #[test]
    fn deliver_new_and_seen() {
        let t = TestDir::new("maildir-deliver");
        let md = Maildir::open(&t.path().join("Inbox")).unwrap();
        let unseen = md.deliver(b"Subject: a\r\n\r\nx", Flags::NONE).unwrap();
        assert_eq!(unseen.subdir, Subdir::New);
        assert_eq!(unseen.path, md.root().join("new").join(&unseen.id));
        let seen = md.deliver(b"Subject: b\r\n\r\ny", Flags::SEEN).unwrap();
        assert_eq!(
            seen.path,
            md.root().join("cur").join(format!("{}:2,S", seen.id))
        );
        assert_eq!(fs::read(&seen.path).unwrap(), b"Subject: b\r\n\r\ny");
        assert_eq!(fs::read_dir(md.root().join("tmp")).unwrap().count(), 0);
        assert_eq!(md.list().unwrap().len(), 2);
    }

    #[test]
    fn set_flags_keeps_foreign_keywords() {
        let t = TestDir::new("maildir-keywords");
        let md = Maildir::open(t.path()).unwrap();
        let m = md.deliver(b"x", Flags::NONE).unwrap();
        // A MUA read it and added its own keyword.
        let by_mua = md.root().join("cur").join(format!("{}:2,Sa", m.id));
        fs::rename(&m.path, &by_mua).unwrap();
        let now = md
            .set_flags(&m.id, Flags::SEEN | Flags::FLAGGED)
            .unwrap()
            .unwrap();
        assert_eq!(
            now.path,
            md.root().join("cur").join(format!("{}:2,FSa", m.id))
        );
        assert!(now.path.exists() && !by_mua.exists());
        assert_eq!(md.set_flags("nope", Flags::SEEN).unwrap(), None);
        assert_eq!(md.set_flags("../x", Flags::SEEN).unwrap(), None);
    }

    #[test]
    fn abandoned_delivery_leaves_nothing() {
        let t = TestDir::new("maildir-abandon");
        let md = Maildir::open(t.path()).unwrap();
        {
            let mut d = md.begin_delivery().unwrap();
            d.chunk(b"partial").unwrap();
        }
        assert!(md.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(md.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn commit_as_refuses_bad_ids() {
        let t = TestDir::new("maildir-badid");
        let md = Maildir::open(t.path()).unwrap();
        for bad in ["../x", "a:2,S", ".hidden", ""] {
            let d = md.begin_delivery().unwrap();
            assert!(d.commit_as(bad, Flags::NONE).is_err(), "{bad:?}");
        }
        assert!(Maildir::for_folder(t.path(), "..").is_err());
        assert!(Maildir::for_folder(t.path(), "a/b").is_err());
    }
}
