//! The one way the store changes files: write a temporary file beside the target, fsync it,
//! rename it over the target, fsync the folder. A crash at any point leaves either the old
//! file or the new one, never a mix. Also durable directory creation and removal, and
//! [`StoreError`], the store's error type.
//!
//! [`AtomicFile`] is the streaming form: it implements [`std::io::Write`] and
//! [`eas::Sink`](crate::eas::sink::Sink), so a body arriving in a Sync response goes straight
//! to disk in chunks. Dropping it without [`AtomicFile::commit`] removes the temporary file
//! and leaves the target untouched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::eas::sink::Sink;

/// Mode of files only easyncd may read: the state, credentials.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of directories only easyncd may enter: `state/`.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of data files (mail, vCard, iCalendar): the owner writes, its group (device apps)
/// reads.
pub const DATA_FILE_MODE: u32 = 0o640;
/// Mode of data directories.
pub const DATA_DIR_MODE: u32 = 0o750;

/// Buffer between the protocol's small chunks and `write(2)`: bounded, whatever the body.
const WRITE_BUFFER: usize = 8 * 1024;

/// Everything that can go wrong in the store. Messages name the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}; {}", .path.display(), io_hint(.source))]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A state file exists but does not decode.
    #[error(
        "state file {} is damaged ({detail}); the previous copy {}.bak is used when it is good, \
         otherwise move the state folder aside to re-enroll (a full resync of the account follows)",
        .path.display(), .path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    /// A state file written by a newer easync.
    #[error(
        "state file {} has format version {found}, this easync reads up to {supported}: \
         install the newer easync again, or move the state folder aside to re-enroll",
        .path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u8,
        supported: u8,
    },
    /// A value the store refuses to record (too long, malformed).
    #[error("{}: {detail}", .path.display())]
    Invalid { path: PathBuf, detail: String },
    /// Another process holds the data directory (see `store::lock`).
    #[error(
        "{} is in use by another easync process{}: stop it first (one easyncd per data \
         directory; `easyncd --once` cannot run beside the daemon)",
        .dir.display(), .holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, holder: Option<u32> },
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The OS error behind this error, if it is an I/O error.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What a technician should do about an I/O error, by errno.
fn io_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc_errno::ENOSPC) => "the disk is full: free space on the data partition",
        Some(libc_errno::EDQUOT) => "the disk quota is exhausted: free space or raise the quota",
        Some(libc_errno::EROFS) => {
            "the file system is read-only: remount the data partition read-write \
             (it may have been remounted read-only after errors: check dmesg)"
        }
        Some(libc_errno::EACCES) | Some(libc_errno::EPERM) => {
            "permission denied: the data directory must belong to the user easyncd runs as"
        }
        Some(libc_errno::ENOENT) => {
            "it does not exist: check storage.data_dir in the configuration"
        }
        Some(libc_errno::EIO) => "an I/O error: the storage medium may be failing (check dmesg)",
        Some(libc_errno::ENAMETOOLONG) => "the name is too long for this file system",
        _ => "check the data partition (space, mount state, permissions)",
    }
}

/// The errno values [`io_hint`] knows, as nix spells them.
mod libc_errno {
    use nix::errno::Errno;
    pub const ENOSPC: i32 = Errno::ENOSPC as i32;
    pub const EDQUOT: i32 = Errno::EDQUOT as i32;
    pub const EROFS: i32 = Errno::EROFS as i32;
    pub const EACCES: i32 = Errno::EACCES as i32;
    pub const EPERM: i32 = Errno::EPERM as i32;
    pub const ENOENT: i32 = Errno::ENOENT as i32;
    pub const EIO: i32 = Errno::EIO as i32;
    pub const ENAMETOOLONG: i32 = Errno::ENAMETOOLONG as i32;
}

/// fsyncs a directory, making the names created, renamed or removed in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| StoreError::io("open folder", dir, e))?;
    match handle.sync_all() {
        Ok(()) => Ok(()),
        // Some file systems (FUSE, some network ones) cannot fsync a folder; their renames
        // are as durable as they get.
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32) => Ok(()),
        Err(e) => Err(StoreError::io("flush folder", dir, e)),
    }
}

/// The folder holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `dir` with `mode` and any missing parents with [`DATA_DIR_MODE`] (the data
/// directory must stay readable for the device's apps even when a private folder such as
/// `state/` is the first thing created in it; the private folder's own mode guards it),
/// fsyncing each
/// parent after a creation so the new entries survive a power cut. An existing `dir` keeps
/// its contents; its mode is tightened to `mode` if it is looser (never loosened). Existing
/// parents are left as they are.
pub fn create_dir_all(dir: &Path, mode: u32) -> Result<()> {
    create_dir_with(dir, mode, true)
}

fn create_dir_with(dir: &Path, mode: u32, tighten: bool) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let current = meta.permissions().mode() & 0o7777;
            if tighten && current & !mode != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(current & mode))
                    .map_err(|e| StoreError::io("restrict the mode of", dir, e))?;
            }
            return Ok(());
        }
        Ok(_) => {
            return Err(StoreError::Invalid {
                path: dir.to_path_buf(),
                detail: "exists but is not a folder: move it away".into(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("inspect", dir, e)),
    }
    let parent = parent_of(dir);
    if dir.parent().is_some() && parent != dir {
        create_dir_with(parent, DATA_DIR_MODE, false)?;
    }
    let mut builder = fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    match builder.create(dir) {
        Ok(()) => {}
        // Created concurrently: fine.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(StoreError::io("create folder", dir, e)),
    }
    // The umask may have taken bits away; the mode we asked for is the mode we want.
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| StoreError::io("set the mode of", dir, e))?;
    sync_dir(parent)
}

/// Replaces `path` with `contents` atomically and durably, the file getting `mode`.
pub fn replace_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = parent_of(path);
    let name = path.file_name().ok_or_else(|| StoreError::Invalid {
        path: path.to_path_buf(),
        detail: "is not a file path".into(),
    })?;
    let mut file = AtomicFile::create_with_mode(dir, &name.to_string_lossy(), mode)?;
    file.write_all(contents)
        .map_err(|e| StoreError::io("write", file.temp_path(), e))?;
    file.commit()
}

/// Renames `from` to `to` (replacing `to`) and fsyncs the folder(s) involved.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| StoreError::io("rename", from, e))?;
    let (from_dir, to_dir) = (parent_of(from), parent_of(to));
    sync_dir(to_dir)?;
    if from_dir != to_dir {
        sync_dir(from_dir)?;
    }
    Ok(())
}

/// Removes the file `path` durably. Returns whether it existed.
pub fn remove_file(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            sync_dir(parent_of(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

/// Makes the flag file `path` (an empty file whose existence says something, such as the
/// roaming signal) exist or not, durably. Returns whether that changed anything.
pub fn set_flag_file(path: &Path, present: bool) -> Result<bool> {
    match (present, path.exists()) {
        (true, false) => {
            create_dir_all(parent_of(path), DATA_DIR_MODE)?;
            replace_file(path, b"", DATA_FILE_MODE)?;
            Ok(true)
        }
        (false, true) => remove_file(path),
        _ => Ok(false),
    }
}

/// Removes the folder `dir` with everything in it, durably. Returns whether it existed.
pub fn remove_dir_all(dir: &Path) -> Result<bool> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {
            sync_dir(parent_of(dir))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("remove folder", dir, e)),
    }
}

/// Whether `name` is a temporary file left by an [`AtomicFile`] of another (dead) process:
/// `.<anything>.<pid>.<seq>.tmp` with a pid other than ours.
fn is_stale_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    let mut fields = inner.rsplitn(3, '.');
    let (Some(seq), Some(pid), Some(_)) = (fields.next(), fields.next(), fields.next()) else {
        return false;
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    numeric(seq) && numeric(pid) && pid != std::process::id().to_string()
}

/// Removes the temporary files a crash left in `dir` (only names [`AtomicFile`] makes, of
/// other processes). Returns how many were removed.
pub fn remove_stale_temp_files(dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let is_stale = entry.file_name().to_str().is_some_and(is_stale_temp_name);
        if is_stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove", entry.path(), e)),
            }
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Distinguishes temporary files of one process.
static TEMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A file being written that replaces its target only on [`commit`](AtomicFile::commit).
///
/// The temporary file is hidden (`.name.<pid>.<seq>.tmp`), so Maildir and vdir readers
/// never see a half-written item. It is created exclusively with the final mode, so no one
/// else can open it in between.
pub struct AtomicFile {
    writer: Option<BufWriter<File>>,
    temp: PathBuf,
    target: PathBuf,
    written: u64,
}

impl AtomicFile {
    /// Starts writing `dir/name` (mode [`DATA_FILE_MODE`]); the target stays as it is until
    /// `commit`.
    pub fn create(dir: &Path, name: &str) -> Result<AtomicFile> {
        AtomicFile::create_with_mode(dir, name, DATA_FILE_MODE)
    }

    /// As [`create`](AtomicFile::create), with the file's mode.
    pub fn create_with_mode(dir: &Path, name: &str, mode: u32) -> Result<AtomicFile> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(StoreError::Invalid {
                path: dir.join(name),
                detail: "is not a plain file name (a bug: names must go through store::names)"
                    .into(),
            });
        }
        AtomicFile::create_in(dir, dir.join(name), mode)
    }

    /// Writes in `temp_dir` and, on commit, renames to `target` (same file system), as
    /// Maildir delivery does from `tmp/` to `new/`.
    pub(crate) fn create_in(temp_dir: &Path, target: PathBuf, mode: u32) -> Result<AtomicFile> {
        let base = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Keep the temporary name within NAME_MAX whatever the target's length.
        let short: String = base.chars().take(64).collect();
        let temp = temp_dir.join(format!(
            ".{short}.{}.{}.tmp",
            std::process::id(),
            TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)
            .map_err(|e| StoreError::io("create", &temp, e))?;
        Ok(AtomicFile {
            writer: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            temp,
            target,
            written: 0,
        })
    }

    /// The file this one replaces on commit.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Makes the content durable and puts it in place of the target: flush, fsync, rename,
    /// fsync the folder.
    pub fn commit(self) -> Result<()> {
        let target = self.target.clone();
        self.commit_to(&target)
    }

    /// As [`commit`](AtomicFile::commit), but to another path than the one given at creation
    /// (same file system); used when the final name depends on what was written.
    pub fn commit_to(mut self, target: &Path) -> Result<()> {
        let Some(writer) = self.writer.take() else {
            return Err(StoreError::Invalid {
                path: self.target.clone(),
                detail: "was already committed".into(),
            });
        };
        let file = writer
            .into_inner()
            .map_err(|e| StoreError::io("write", &self.temp, e.into_error()))?;
        file.sync_all()
            .map_err(|e| StoreError::io("flush", &self.temp, e))?;
        drop(file);
        rename(&self.temp, target)?;
        // Renamed: nothing left for Drop to clean.
        self.temp = PathBuf::new();
        Ok(())
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.writer
            .as_mut()
            .ok_or_else(|| io::Error::other("the file was already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer()?.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }
}

impl Sink for AtomicFile {
    fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Not committed: the target stays as it was and the partial content goes away.
        if self.writer.take().is_some() && !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

impl std::fmt::Debug for AtomicFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicFile")
            .field("target", &self.target)
            .field("temp", &self.temp)
            .field("written", &self.written)
            .finish()
    }
}

/// Temporary folders for the store's tests, removed on drop.
#[cfg(test)]
pub(crate) mod testdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    static NEXT: AtomicU32 = AtomicU32::new(0);

    pub(crate) struct TestDir(PathBuf);

    impl TestDir {
        pub(crate) fn new(tag: &str) -> TestDir {
            let path = std::env::temp_dir().join(format!(
                "easync-{tag}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TestDir(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testdir::TestDir;
    use super::*;

    #[test]
    fn replace_writes_and_replaces() {
        let t = TestDir::new("atomic-replace");
        let p = t.path().join("f");
        replace_file(&p, b"one", PRIVATE_FILE_MODE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        replace_file(&p, b"two", PRIVATE_FILE_MODE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temporary file left behind.
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_without_commit_leaves_the_old_file() {
        let t = TestDir::new("atomic-drop");
        let p = t.path().join("f");
        replace_file(&p, b"old", DATA_FILE_MODE).unwrap();
        {
            let mut f = AtomicFile::create(t.path(), "f").unwrap();
            f.write_all(b"new content, half written").unwrap();
            f.flush().unwrap();
            assert!(f.temp_path().exists());
        }
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn streams_through_sink() {
        let t = TestDir::new("atomic-sink");
        let mut f = AtomicFile::create(t.path(), "body").unwrap();
        for _ in 0..1000 {
            f.chunk(&[b'x'; 100]).unwrap();
        }
        f.end(100_000).unwrap();
        assert_eq!(f.len(), 100_000);
        f.commit().unwrap();
        assert_eq!(fs::metadata(t.path().join("body")).unwrap().len(), 100_000);
    }

    #[test]
    fn refuses_path_names() {
        let t = TestDir::new("atomic-names");
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(
                matches!(
                    AtomicFile::create(t.path(), bad),
                    Err(StoreError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_parents_get_the_data_mode_and_existing_ones_stay() {
        let t = TestDir::new("dirparents");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let data = t.path().join("data");
        create_dir_all(&data.join("state"), PRIVATE_DIR_MODE).unwrap();
        assert_eq!(
            mode(&data),
            DATA_DIR_MODE,
            "apps can still read the data dir"
        );
        assert_eq!(mode(&data.join("state")), PRIVATE_DIR_MODE);
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        create_dir_all(&data.join("credentials"), PRIVATE_DIR_MODE).unwrap();
        assert_eq!(mode(&data), 0o755, "an existing parent is left as it is");
    }

    #[test]
    fn create_dir_all_sets_and_tightens_mode() {
        let t = TestDir::new("atomic-dirs");
        let d = t.path().join("a/b/c");
        create_dir_all(&d, PRIVATE_DIR_MODE).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        create_dir_all(&d, PRIVATE_DIR_MODE).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::write(t.path().join("file"), b"").unwrap();
        assert!(create_dir_all(&t.path().join("file"), DATA_DIR_MODE).is_err());
    }

    #[test]
    fn stale_temp_files_are_removed() {
        let t = TestDir::new("atomic-stale");
        let dead = format!(".item.vcf.{}.3.tmp", std::process::id() + 1);
        for name in [dead.as_str(), "keep.vcf", ".keep", ".x.tmp", ".a.b.c.tmp"] {
            fs::write(t.path().join(name), b"").unwrap();
        }
        let mine = AtomicFile::create(t.path(), "live.vcf").unwrap();
        assert_eq!(remove_stale_temp_files(t.path()).unwrap(), 1);
        assert!(!t.path().join(&dead).exists());
        assert!(mine.temp_path().exists());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 5);
        assert_eq!(remove_stale_temp_files(&t.path().join("none")).unwrap(), 0);
    }

    #[test]
    fn remove_is_idempotent() {
        let t = TestDir::new("atomic-remove");
        let p = t.path().join("f");
        fs::write(&p, b"x").unwrap();
        assert!(remove_file(&p).unwrap());
        assert!(!remove_file(&p).unwrap());
        let d = t.path().join("d");
        create_dir_all(&d.join("e"), DATA_DIR_MODE).unwrap();
        assert!(remove_dir_all(&d).unwrap());
        assert!(!remove_dir_all(&d).unwrap());
    }

    #[test]
    fn errors_name_the_path_and_the_fix() {
        let e = StoreError::io(
            "write",
            "/data/state/account.postcard",
            io::Error::from_raw_os_error(libc_errno::ENOSPC),
        );
        let msg = e.to_string();
        assert!(msg.contains("/data/state/account.postcard"), "{msg}");
        assert!(msg.contains("disk is full"), "{msg}");
        let e = StoreError::io(
            "create",
            "/x",
            io::Error::from_raw_os_error(libc_errno::EROFS),
        );
        assert!(e.to_string().contains("read-only"));
        let e = StoreError::io(
            "create",
            "/x",
            io::Error::from_raw_os_error(libc_errno::EACCES),
        );
        assert!(e.to_string().contains("permission denied"));
    }

    #[test]
    fn missing_folder_is_a_clear_error() {
        let t = TestDir::new("atomic-missing");
        let e = AtomicFile::create(&t.path().join("nope"), "f").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
