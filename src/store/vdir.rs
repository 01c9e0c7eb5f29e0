//! One-file-per-item folders in the vdir layout (the storage format of vdirsyncer, read by
//! khard, khal and todoman): `data_dir/contacts/<dir>/*.vcf`, `data_dir/calendar/<dir>/*.ics`,
//! `data_dir/tasks/<dir>/*.ics`, `data_dir/notes/<dir>/*.<ext>`.
//!
//! Conventions followed:
//! - one item per file: a vCard (`.vcf`) or a VCALENDAR holding one VEVENT/VTODO with its
//!   exceptions and time zones (`.ics`);
//! - the file name is the item's UID when it has one, else its ServerId, encoded by
//!   [`names::item_file_stem`] (reversible percent-encoding, hashed when too long);
//! - files are replaced atomically (hidden temporary file, rename), and readers ignore
//!   hidden files and files with another extension, so temporary files are never read as
//!   items;
//! - change detection uses the content hash (SHA-256), not only mtime and size, since
//!   editors may keep both.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::atomic::{self, AtomicFile, DATA_DIR_MODE, Result, StoreError};
use super::names;
use super::state::{Fingerprint, ItemEntry, ItemMap};
use crate::eas::item::Class;
use crate::eas::sink::Sink;

/// Extension of vCard files.
pub const VCARD_EXTENSION: &str = "vcf";
/// Extension of iCalendar files.
pub const ICALENDAR_EXTENSION: &str = "ics";

/// The top folder under `data_dir` for items of `class` (`mail` for Email).
pub fn class_dir(class: Class) -> &'static str {
    match class {
        Class::Email => "mail",
        Class::Contacts => "contacts",
        Class::Calendar => "calendar",
        Class::Tasks => "tasks",
        Class::Notes => "notes",
    }
}

/// One item file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdirEntry {
    /// The file name (with extension).
    pub name: String,
    pub modified: SystemTime,
    pub size: u64,
    /// SHA-256 of the content.
    pub hash: [u8; 32],
}

impl VdirEntry {
    /// The compact form of the hash kept in the state.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::Content(short_hash(&self.hash))
    }
}

fn short_hash(hash: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

/// What differs between a folder on disk and its item map: the local changes to upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalChanges {
    /// Files the map does not know: items created on the device.
    pub added: Vec<VdirEntry>,
    /// (ServerId, file) whose content differs from what was last synced.
    pub changed: Vec<(String, VdirEntry)>,
    /// ServerIds whose file is gone: items deleted on the device.
    pub deleted: Vec<String>,
}

/// A vdir folder.
#[derive(Debug, Clone)]
pub struct Vdir {
    root: PathBuf,
    extension: String,
}

impl Vdir {
    /// Opens (creating if needed, durably) the folder `root` whose items end in
    /// `.extension`.
    pub fn open(root: &Path, extension: &str) -> Result<Vdir> {
        atomic::create_dir_all(root, DATA_DIR_MODE)?;
        atomic::remove_stale_temp_files(root)?;
        Ok(Vdir {
            root: root.to_path_buf(),
            extension: extension.to_string(),
        })
    }

    /// Opens `data_dir/<class dir>/<local_dir>`; `local_dir` must be a name made by
    /// [`names`].
    pub fn for_folder(
        data_dir: &Path,
        class: Class,
        local_dir: &str,
        extension: &str,
    ) -> Result<Vdir> {
        let root = data_dir.join(class_dir(class)).join(local_dir);
        if !names::is_safe_component(local_dir) {
            return Err(StoreError::Invalid {
                path: root,
                detail: "is not a safe folder name (the state is inconsistent: resync)".into(),
            });
        }
        Vdir::open(&root, extension)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file name for an item identified by `id` (its UID, or its ServerId).
    pub fn file_name(&self, id: &str) -> String {
        format!("{}.{}", names::item_file_stem(id), self.extension)
    }

    /// Whether `name` is an item file of this folder (visible, our extension, safe).
    fn is_item_name(&self, name: &str) -> bool {
        names::is_safe_component(name)
            && name
                .strip_suffix(self.extension.as_str())
                .is_some_and(|stem| stem.len() > 1 && stem.ends_with('.'))
    }

    /// Starts writing the file `name` (replaced atomically on commit).
    pub fn begin_write(&self, name: &str) -> Result<ItemWriter> {
        if !self.is_item_name(name) {
            return Err(StoreError::Invalid {
                path: self.root.join(name),
                detail: format!(
                    "is not a .{} item name made by store::names",
                    self.extension
                ),
            });
        }
        Ok(ItemWriter {
            file: AtomicFile::create(&self.root, name)?,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            name: name.to_string(),
        })
    }

    /// Starts writing the item `server_id`: to its current file when `map` knows it (so a
    /// second delivery replaces, never duplicates), else to a file named after `uid` (or
    /// the ServerId when there is no UID or another item already has that name).
    pub fn begin_item(
        &self,
        map: &ItemMap,
        server_id: &str,
        uid: Option<&str>,
    ) -> Result<ItemWriter> {
        if let Some(entry) = map.get(server_id) {
            if self.is_item_name(&entry.local) {
                return self.begin_write(&entry.local.clone());
            }
        }
        let mut name = self.file_name(uid.filter(|u| !u.is_empty()).unwrap_or(server_id));
        if map
            .server_id_of(&name)
            .is_some_and(|other| other != server_id)
        {
            name = self.file_name(server_id);
        }
        self.begin_write(&name)
    }

    /// Writes a whole item from memory; returns what was written.
    pub fn write(&self, name: &str, content: &[u8]) -> Result<VdirEntry> {
        let mut w = self.begin_write(name)?;
        w.write_all(content)
            .map_err(|e| StoreError::io("write", self.root.join(name), e))?;
        w.commit()
    }

    /// Removes the file `name`. Returns whether it was there.
    pub fn remove(&self, name: &str) -> Result<bool> {
        if !self.is_item_name(name) {
            return Ok(false);
        }
        atomic::remove_file(&self.root.join(name))
    }

    /// Removes the item `server_id` and its map entry.
    pub fn remove_item(&self, map: &mut ItemMap, server_id: &str) -> Result<bool> {
        let Some(entry) = map.get(server_id) else {
            return Ok(false);
        };
        let removed = self.remove(&entry.local.clone())?;
        map.remove(server_id);
        Ok(removed)
    }

    /// The item file `name`, if present.
    pub fn entry(&self, name: &str) -> Result<Option<VdirEntry>> {
        if !self.is_item_name(name) {
            return Ok(None);
        }
        let path = self.root.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => self.describe(name.to_string(), &path, &meta).map(Some),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("inspect", path, e)),
        }
    }

    /// Every item file, by name. Reads each file once to hash it (in 8 KiB pieces).
    pub fn list(&self) -> Result<Vec<VdirEntry>> {
        let entries =
            fs::read_dir(&self.root).map_err(|e| StoreError::io("list", &self.root, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &self.root, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !self.is_item_name(&name) {
                continue;
            }
            let path = entry.path();
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Removed while we listed: not an item any more.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("inspect", path, e)),
            };
            if meta.is_file() {
                out.push(self.describe(name, &path, &meta)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Compares the folder with `map`: what the device changed since the last sync.
    pub fn local_changes(&self, map: &ItemMap) -> Result<LocalChanges> {
        let mut on_disk = self.list()?;
        let mut changes = LocalChanges::default();
        for (server_id, entry) in map.iter() {
            match on_disk.binary_search_by(|e| e.name.as_str().cmp(&entry.local)) {
                Ok(i) => {
                    let file = on_disk.remove(i);
                    if file.fingerprint() != entry.fingerprint {
                        changes.changed.push((server_id.to_string(), file));
                    }
                }
                Err(_) => changes.deleted.push(server_id.to_string()),
            }
        }
        changes.added = on_disk;
        Ok(changes)
    }

    fn describe(&self, name: String, path: &Path, meta: &fs::Metadata) -> Result<VdirEntry> {
        let mut file = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = [0u8; 8192];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| StoreError::io("read", path, e))?;
            if n == 0 {
                break;
            }
            digest.update(&buf[..n]);
        }
        Ok(VdirEntry {
            name,
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            size: meta.len(),
            hash: to_array(digest.finish()),
        })
    }
}

fn to_array(d: ring::digest::Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// An item file being written: [`Write`] and [`Sink`], hashing as it goes.
pub struct ItemWriter {
    file: AtomicFile,
    digest: ring::digest::Context,
    name: String,
}

impl ItemWriter {
    /// The file name being written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts the file in place; returns what was written.
    pub fn commit(self) -> Result<VdirEntry> {
        let path = self.file.target().to_path_buf();
        let size = self.file.len();
        let hash = to_array(self.digest.finish());
        self.file.commit()?;
        let modified = fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(VdirEntry {
            name: self.name,
            modified,
            size,
            hash,
        })
    }

    /// Puts the file in place and records it in `map` as the item `server_id`.
    pub fn commit_item(self, map: &mut ItemMap, server_id: &str) -> Result<VdirEntry> {
        let entry = self.commit()?;
        map.insert(
            server_id,
            ItemEntry {
                local: entry.name.clone(),
                fingerprint: entry.fingerprint(),
            },
        )?;
        Ok(entry)
    }
}

impl Write for ItemWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink for ItemWriter {
    fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic::testdir::TestDir;

    #[test]
    fn item_names() {
        let t = TestDir::new("vdir-names");
        let v = Vdir::open(t.path(), VCARD_EXTENSION).unwrap();
        assert_eq!(v.file_name("1:2"), "1%3A2.vcf");
        assert_eq!(
            v.file_name("../../etc/passwd"),
            "%2E.%2F..%2Fetc%2Fpasswd.vcf"
        );
        assert!(v.is_item_name("a.vcf"));
        for bad in [
            ".a.vcf",
            ".vcf",
            "a.ics",
            "a.vcf.tmp",
            "../a.vcf",
            "a/b.vcf",
        ] {
            assert!(!v.is_item_name(bad), "{bad}");
            assert!(v.begin_write(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn write_reports_what_list_sees() {
        let t = TestDir::new("vdir-write");
        let v = Vdir::open(t.path(), ICALENDAR_EXTENSION).unwrap();
        let written = v
            .write("x.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
            .unwrap();
        let listed = v.list().unwrap();
        assert_eq!(listed, vec![written.clone()]);
        assert_eq!(v.entry("x.ics").unwrap(), Some(written));
        assert_eq!(v.entry("y.ics").unwrap(), None);
    }

    #[test]
    fn class_dirs() {
        assert_eq!(class_dir(Class::Contacts), "contacts");
        assert_eq!(class_dir(Class::Calendar), "calendar");
        assert_eq!(class_dir(Class::Tasks), "tasks");
        assert_eq!(class_dir(Class::Notes), "notes");
        assert_eq!(class_dir(Class::Email), "mail");
    }
}
