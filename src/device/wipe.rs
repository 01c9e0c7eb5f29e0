//! The remote wipe (MS-ASPROV RemoteWipe and AccountOnlyRemoteWipe): the erasing itself and
//! the crash-safe sequence around it.
//!
//! The engine persists the wipe intent in the account state before it acknowledges the
//! directive (see `engine::account`). From there [`resume`] carries out what is left, in
//! this order, recording each finished step in `data_dir/state/wipe.phase` (replaced
//! atomically) so that a run killed anywhere picks up where it stopped:
//!
//! acknowledged → `pre_wipe` hook → wipe (full wipes only) → credentials and state cleared →
//! `post_wipe` hook → completed.
//!
//! A full wipe may also be ordered on the device itself ([`order_local`]: too many failed
//! unlocks, see `device::unlock`): the same intent, marked local, with no acknowledgement
//! owed. A server's wipe that fails before its target is erased is remembered
//! ([`remember_failure`]) so that the acknowledgement of the server's repeated directive
//! says Status 2 ([`withdraw`] then drops it and the repetition starts it afresh); a local
//! wipe that fails is simply retried.
//!
//! Every step may run again after a crash: erasing erased data, removing removed files and
//! running a hook twice are all harmless. The target of a full wipe comes from `[wipe]` and
//! is checked by [`check_target`] before anything is erased. Nothing here touches the
//! network; a completed wipe stays recorded so the account does not start syncing again.
//!
//! The full wipe has three modes: `block` erases a partition (secure discard, zero-out or
//! zeros, each checked by reading back), `directory`
//! a folder tree, and `crypto-erase` has the `storage_encryption` hook destroy the key slots
//! of a LUKS container, after which easync reads the LUKS header itself ([`luks`]) and
//! counts the wipe done only when no key slot is left. Every hook runs through the policy
//! hooks' runner ([`hooks::run_program`]): no shell, own process group, bounded output.

use std::ffi::{CStr, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::mount::{MntFlags, MsFlags, umount2};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::config::{Config, Hooks, Wipe, WipeMode};
use crate::device::hooks;
use crate::store::atomic::StoreError;
use crate::store::atomic::{self, PRIVATE_FILE_MODE};
use crate::store::state::{StateFile, WipeIntent};

/// The wipe's progress record under `data_dir`.
pub const PHASE_FILE: &str = "state/wipe.phase";
/// Marks the pending wipe as ordered on the device (no acknowledgement owed, never
/// reported to the server). Removed with the rest of the state when the account is cleared.
pub const LOCAL_FILE: &str = "state/wipe.local";
/// A server's wipe failed and the server has not been told yet: holds the error.
pub const FAILED_FILE: &str = "state/wipe.failed";
/// What the account-only wipe keeps under `data_dir/state`: the data directory lock and the
/// progress record.
const KEPT_IN_STATE: [&str; 2] = ["lock", "wipe.phase"];
/// How long `pre_wipe` and `post_wipe` may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long `mkfs` may run (large partitions).
pub const MKFS_TIMEOUT: Duration = Duration::from_secs(1800);
/// The write size of the zero overwrite.
const ZERO_CHUNK: usize = 1 << 20;
/// How deep a directory wipe descends before giving up.
const MAX_DEPTH: usize = 256;

/// Why a wipe (or a step of it) did not happen. The wipe is retried at the next start.
#[derive(Debug, thiserror::Error)]
pub enum WipeError {
    #[error("wipe.target = {path:?}: {problem}: {fix}")]
    Target {
        path: PathBuf,
        problem: String,
        fix: String,
    },
    #[error(
        "a full remote wipe is pending but the configuration has no [wipe] section: add one \
         naming the data partition or data directory (see board/easync.toml) and restart"
    )]
    NotConfigured,
    #[error("cannot {action} {}: {source}; the wipe resumes at the next start", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "the {name} hook {program:?} {problem}: fix the hook ({key}); the wipe resumes at the \
         next start"
    )]
    Hook {
        name: &'static str,
        /// The configuration key naming the hook.
        key: String,
        program: String,
        problem: String,
    },
    #[error(
        "the storage_encryption hook {program:?} reported the crypto-erase of {} done, but its \
         LUKS header still holds key slot(s) {}: make the hook destroy every key slot \
         (cryptsetup erase); the wipe resumes at the next start",
        .path.display(), .slots.join(", ")
    )]
    KeySlotsLeft {
        path: PathBuf,
        program: String,
        slots: Vec<String>,
    },
    #[error(
        "the LUKS header of {} cannot be checked after the crypto-erase ({problem}): the wipe \
         is not counted as done; check the device (cryptsetup luksDump) — once it is known to \
         hold no key, write \"full wiped\" into storage.data_dir/state/wipe.phase",
        .path.display()
    )]
    Unverified { path: PathBuf, problem: String },
    #[error(
        "the wipe progress record {} is damaged ({text:?}): write \"full acknowledged\" into it \
         to run the wipe again, or remove it when the data is known to be gone",
        .path.display()
    )]
    Phase { path: PathBuf, text: String },
    #[error("{0}")]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, WipeError>;

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WipeError {
    let path = path.to_path_buf();
    move |source| WipeError::Io {
        action,
        path,
        source,
    }
}

fn errno_error(action: &'static str, path: &Path) -> impl FnOnce(Errno) -> WipeError {
    let path = path.to_path_buf();
    move |errno| WipeError::Io {
        action,
        path,
        source: errno.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Target validation

/// Checks the configured target against the file system: it exists, is exactly the path
/// written (no symbolic link anywhere on the way), has the kind the mode needs, and is
/// neither the root file system (nor the disk holding it) nor where `data_dir` lives. A
/// crypto-erase also needs the `storage_encryption` hook of `hooks` and a LUKS header on the
/// target.
pub fn check_target(wipe: &Wipe, hooks: &Hooks, data_dir: &Path) -> Result<()> {
    let target = &wipe.target;
    let refuse = |problem: String, fix: &str| WipeError::Target {
        path: target.clone(),
        problem,
        fix: fix.into(),
    };
    let meta = fs::symlink_metadata(target).map_err(|e| {
        refuse(
            e.to_string(),
            "check the path of the data partition or folder",
        )
    })?;
    if meta.file_type().is_symlink() {
        let real =
            fs::canonicalize(target).map_or_else(|e| e.to_string(), |p| p.display().to_string());
        return Err(refuse(
            format!("is a symbolic link (to {real})"),
            "write the device or folder it points to: a wipe never follows links",
        ));
    }
    let real = fs::canonicalize(target).map_err(io_error("resolve", target))?;
    if &real != target {
        return Err(refuse(
            format!(
                "goes through a symbolic link (it is really {})",
                real.display()
            ),
            "write the real path",
        ));
    }
    let root = fs::metadata("/").map_err(io_error("inspect", Path::new("/")))?;
    let data = existing_ancestor_metadata(data_dir)?;
    match wipe.mode {
        WipeMode::CryptoErase => {
            if hooks.storage_encryption.is_none() {
                return Err(refuse(
                    "is to be crypto-erased, but no storage_encryption hook is configured".into(),
                    "set hooks.storage_encryption to a hook that can crypto-erase \
                     (board/hooks/storage-encryption-luks)",
                ));
            }
            let kind = meta.file_type();
            if kind.is_block_device() {
                if meta.rdev() == root.dev() || disk_holds(meta.rdev(), root.dev()) {
                    return Err(refuse(
                        "holds the root file system".into(),
                        "name the data partition's LUKS container, never the system's",
                    ));
                }
                if meta.rdev() == data.dev()
                    || disk_holds(meta.rdev(), data.dev())
                    || mapped_over(data.dev(), meta.rdev())
                {
                    return Err(refuse(
                        format!("holds storage.data_dir ({})", data_dir.display()),
                        "move storage.data_dir off the erased container (the wipe records its \
                         progress there)",
                    ));
                }
            } else if !kind.is_file() {
                return Err(refuse(
                    "is neither a block device nor a file".into(),
                    "name the LUKS container: the partition under the dm-crypt mapping",
                ));
            }
            let mut file = open_readonly(target)?;
            match luks::key_slots(&mut file) {
                Ok(slots) => log::info!(
                    "wipe: {} is LUKS{} with {} key slot(s)",
                    target.display(),
                    slots.version,
                    slots.active.len()
                ),
                Err(luks::LuksError::Io(e)) => return Err(io_error("read", target)(e)),
                Err(e) => {
                    return Err(refuse(
                        e.to_string(),
                        "name the LUKS container (cryptsetup isLuks says yes to it), or use \
                         mode = \"block\"",
                    ));
                }
            }
        }
        WipeMode::Block => {
            if !meta.file_type().is_block_device() {
                return Err(refuse(
                    "is not a block device".into(),
                    "name the data partition's device node (e.g. /dev/mmcblk0p4), or use \
                     mode = \"directory\" for a folder",
                ));
            }
            if meta.rdev() == root.dev() || disk_holds(meta.rdev(), root.dev()) {
                return Err(refuse(
                    "holds the root file system".into(),
                    "name the data partition, never the system's",
                ));
            }
            // The partition itself, the whole disk holding it, or what is mapped over it.
            if meta.rdev() == data.dev()
                || disk_holds(meta.rdev(), data.dev())
                || mapped_over(data.dev(), meta.rdev())
            {
                return Err(refuse(
                    format!("holds storage.data_dir ({})", data_dir.display()),
                    "move storage.data_dir off the wiped partition (the wipe records its \
                     progress there)",
                ));
            }
            if let Some(mount) = &wipe.mount_point {
                if mounted_at(mount)? {
                    let m = fs::metadata(mount).map_err(io_error("inspect", mount))?;
                    if m.dev() != meta.rdev() {
                        return Err(refuse(
                            format!(
                                "is not what is mounted at wipe.mount_point {}",
                                mount.display()
                            ),
                            "set mount_point to where this device is mounted",
                        ));
                    }
                }
            }
        }
        WipeMode::Directory => {
            if !meta.is_dir() {
                return Err(refuse(
                    "is not a directory".into(),
                    "name a folder, or use mode = \"block\" for a partition",
                ));
            }
            if meta.dev() == root.dev() && meta.ino() == root.ino() {
                return Err(refuse("is the root directory".into(), "name a data folder"));
            }
            let data_real = fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
            if data_real.starts_with(&real) {
                return Err(refuse(
                    format!("holds storage.data_dir ({})", data_dir.display()),
                    "name the data folder beside it, or move storage.data_dir",
                ));
            }
        }
    }
    Ok(())
}

/// The metadata of `path`, or of its nearest existing parent.
fn existing_ancestor_metadata(path: &Path) -> Result<fs::Metadata> {
    let mut at = path;
    loop {
        match fs::metadata(at) {
            Ok(m) => return Ok(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match at.parent() {
                Some(parent) => at = parent,
                None => return Err(io_error("inspect", path)(e)),
            },
            Err(e) => return Err(io_error("inspect", path)(e)),
        }
    }
}

/// Whether block device `disk` is the whole disk a partition `part` lies on (sysfs).
fn disk_holds(disk: u64, part: u64) -> bool {
    let link = |dev: u64| {
        let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()
    };
    match (link(disk), link(part)) {
        (Some(disk), Some(part)) => part != disk && part.starts_with(&disk),
        _ => false,
    }
}

/// Whether block device `mapping` (a dm-crypt mapping, say) sits on block device `below`
/// (sysfs `slaves`).
fn mapped_over(mapping: u64, below: u64) -> bool {
    let (major, minor) = (
        nix::sys::stat::major(mapping),
        nix::sys::stat::minor(mapping),
    );
    let Ok(slaves) = fs::read_dir(format!("/sys/dev/block/{major}:{minor}/slaves")) else {
        return false;
    };
    let wanted = format!(
        "{}:{}",
        nix::sys::stat::major(below),
        nix::sys::stat::minor(below)
    );
    slaves.flatten().any(|slave| {
        fs::read_to_string(slave.path().join("dev")).is_ok_and(|dev| dev.trim() == wanted)
    })
}

fn open_readonly(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(io_error("open", path))
}

/// Whether something is mounted exactly at `mount_point` (from /proc/self/mounts).
fn mounted_at(mount_point: &Path) -> Result<bool> {
    let mounts =
        fs::read("/proc/self/mounts").map_err(io_error("read", Path::new("/proc/self/mounts")))?;
    Ok(mounts.split(|&b| b == b'\n').any(|line| {
        let mut fields = line.split(|&b| b == b' ');
        let _device = fields.next();
        fields
            .next()
            .is_some_and(|m| unescape_mount(m) == mount_point.as_os_str().as_bytes())
    }))
}

/// Undoes the octal escapes (`\040` for a space) of /proc/self/mounts.
fn unescape_mount(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Block wipe

/// How a block device was erased, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMethod {
    /// BLKSECDISCARD: the device erases the blocks and their copies.
    SecureDiscard,
    /// BLKDISCARD: the blocks are released (a loop device punches holes in its file).
    /// Never enough alone: a device may accept a discard and keep the data (QEMU's
    /// default, many SD cards), so a zero-out always follows it.
    Discard,
    /// BLKZEROOUT: the kernel makes every block read back as zeros (the device's
    /// write-zeroes command, or writes of zeros).
    ZeroOut,
    /// Every byte overwritten with zeros by easync.
    Zeros,
}

impl BlockMethod {
    pub const ALL: [BlockMethod; 4] = [
        BlockMethod::SecureDiscard,
        BlockMethod::Discard,
        BlockMethod::ZeroOut,
        BlockMethod::Zeros,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BlockMethod::SecureDiscard => "secure-discard",
            BlockMethod::Discard => "discard",
            BlockMethod::ZeroOut => "zero-out",
            BlockMethod::Zeros => "zeros",
        }
    }
}

/// Blocks read before a block wipe, to check afterwards that the wipe really happened
/// rather than trusting the device's word.
pub struct Witnesses {
    /// Offset, and a hash of the block's bytes when it held anything but one repeated byte.
    blocks: Vec<(u64, Option<u64>)>,
}

/// How many blocks [`Witnesses`] reads, spread evenly over the device, and their size.
const WITNESS_BLOCKS: u64 = 256;
const WITNESS_SIZE: usize = 4096;

impl Witnesses {
    /// Reads the witness blocks of the first `size` bytes of `file`.
    pub fn take(file: &File, size: u64) -> io::Result<Witnesses> {
        let step = (size / WITNESS_BLOCKS).max(WITNESS_SIZE as u64) / WITNESS_SIZE as u64
            * WITNESS_SIZE as u64;
        let mut blocks = Vec::new();
        let mut offset = 0;
        while offset + WITNESS_SIZE as u64 <= size && blocks.len() < WITNESS_BLOCKS as usize {
            blocks.push((offset, Self::content(file, offset)?));
            offset += step;
        }
        let last =
            size.saturating_sub(WITNESS_SIZE as u64) / WITNESS_SIZE as u64 * WITNESS_SIZE as u64;
        if size >= WITNESS_SIZE as u64 && blocks.last().is_none_or(|b| b.0 != last) {
            blocks.push((last, Self::content(file, last)?));
        }
        Ok(Witnesses { blocks })
    }

    /// A hash of the block at `offset`, `None` when it is one byte repeated.
    fn content(file: &File, offset: u64) -> io::Result<Option<u64>> {
        use std::os::unix::fs::FileExt;
        let mut block = [0u8; WITNESS_SIZE];
        file.read_exact_at(&mut block, offset)?;
        if block.iter().all(|b| *b == block[0]) {
            return Ok(None);
        }
        // FNV-1a: enough to tell the same block from another.
        Ok(Some(block.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })))
    }

    /// The offset of a block that still holds what it held before, if any.
    pub fn still_there(&self, file: &File) -> io::Result<Option<u64>> {
        for (offset, before) in &self.blocks {
            if before.is_some() && Self::content(file, *offset)? == *before {
                return Ok(Some(*offset));
            }
        }
        Ok(None)
    }

    /// The offset of a block that does not read back as zeros, if any.
    pub fn not_zero(&self, file: &File) -> io::Result<Option<u64>> {
        use std::os::unix::fs::FileExt;
        let mut block = [0u8; WITNESS_SIZE];
        for (offset, _) in &self.blocks {
            file.read_exact_at(&mut block, *offset)?;
            if block.iter().any(|b| *b != 0) {
                return Ok(Some(*offset));
            }
        }
        Ok(None)
    }

    /// How many witness blocks held data.
    pub fn with_content(&self) -> usize {
        self.blocks.iter().filter(|b| b.1.is_some()).count()
    }
}

mod ioctls {
    // linux/fs.h: BLKGETSIZE64 _IOR(0x12,114,size_t), BLKDISCARD _IO(0x12,119),
    // BLKSECDISCARD _IO(0x12,125), BLKZEROOUT _IO(0x12,127); the last three take a
    // {start, length} pair.
    // The request encodes sizeof(size_t) (4 bytes on 32-bit ARM) although the kernel
    // always writes a u64: `ioctl_read!(.., u64)` would give ENOTTY on armv7.
    nix::ioctl_read_bad!(
        blk_get_size64,
        nix::request_code_read!(0x12, 114, std::mem::size_of::<usize>()),
        u64
    );
    nix::ioctl_write_ptr_bad!(blk_discard, nix::request_code_none!(0x12, 119), [u64; 2]);
    nix::ioctl_write_ptr_bad!(
        blk_sec_discard,
        nix::request_code_none!(0x12, 125),
        [u64; 2]
    );
    nix::ioctl_write_ptr_bad!(blk_zero_out, nix::request_code_none!(0x12, 127), [u64; 2]);
}

/// The file system the `mkfs` hook made on `device`, told by its superblock's magic
/// (ext2/3/4, XFS, Btrfs, F2FS, FAT); `None` when none of them.
pub fn file_system_type(device: &Path) -> io::Result<Option<&'static str>> {
    superblock_type(&mut File::open(device)?)
}

/// [`file_system_type`] of what `device` reads (a block device, or any bytes).
pub fn superblock_type(device: &mut (impl Read + Seek)) -> io::Result<Option<&'static str>> {
    // Bytes cut short by the end of the device compare unequal to every magic.
    let mut read = |offset: u64, len: u64| -> io::Result<Vec<u8>> {
        device.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        (&mut *device).take(len).read_to_end(&mut buf)?;
        Ok(buf)
    };
    if read(1080, 2)? == [0x53, 0xef] {
        return Ok(Some("ext4"));
    }
    if read(0, 4)? == *b"XFSB" {
        return Ok(Some("xfs"));
    }
    if read(0x1_0040, 8)? == *b"_BHRfS_M" {
        return Ok(Some("btrfs"));
    }
    if read(1024, 4)? == [0x10, 0x20, 0xf5, 0xf2] {
        return Ok(Some("f2fs"));
    }
    let boot = read(0, 512)?;
    if boot.len() == 512
        && boot[510..512] == [0x55, 0xaa]
        && (boot[0x36..0x39] == *b"FAT" || boot[0x52..0x55] == *b"FAT")
    {
        return Ok(Some("vfat"));
    }
    Ok(None)
}

/// Mounts the file system the `mkfs` hook made on `device` at `mount_point` again (nodev,
/// nosuid: a data partition); returns its type.
pub fn remount(device: &Path, mount_point: &Path) -> Result<&'static str> {
    let io_error = |action: &'static str| {
        move |e: io::Error| WipeError::Io {
            action,
            path: device.to_path_buf(),
            source: e,
        }
    };
    let Some(fs) = file_system_type(device).map_err(io_error("read the superblock of"))? else {
        return Err(io_error("recognise the file system on")(io::Error::other(
            "no ext4, xfs, btrfs, f2fs or vfat superblock",
        )));
    };
    nix::mount::mount(
        Some(device),
        mount_point,
        Some(fs),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        None::<&str>,
    )
    .map_err(|e| {
        io_error("mount")(io::Error::other(format!(
            "{e} at {}",
            mount_point.display()
        )))
    })?;
    Ok(fs)
}

/// Erases block device `device`: unmounts `mount_point` first when something is mounted
/// there, then tries BLKSECDISCARD, BLKDISCARD followed by BLKZEROOUT, and a zero
/// overwrite in turn, and syncs. Each is checked by reading back blocks sampled before:
/// a method the device accepted but did not carry out is not counted.
pub fn wipe_block(device: &Path, mount_point: Option<&Path>) -> Result<BlockMethod> {
    wipe_block_using(device, mount_point, &BlockMethod::ALL)
}

/// [`wipe_block`] trying only `methods`, in their order.
pub fn wipe_block_using(
    device: &Path,
    mount_point: Option<&Path>,
    methods: &[BlockMethod],
) -> Result<BlockMethod> {
    if let Some(mount) = mount_point {
        if mounted_at(mount)? {
            umount2(mount, MntFlags::empty()).map_err(|e| WipeError::Io {
                action: "unmount",
                path: mount.to_path_buf(),
                source: io::Error::other(format!(
                    "{e} (stop what still uses it in the pre_wipe hook)"
                )),
            })?;
            log::info!("wipe: unmounted {}", mount.display());
        }
    }
    // O_EXCL on a block device fails while it is mounted anywhere: never erase under a
    // mounted file system.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags((OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(device)
        .map_err(|e| WipeError::Io {
            action: "open for erasing",
            path: device.to_path_buf(),
            source: if e.raw_os_error() == Some(Errno::EBUSY as i32) {
                io::Error::other(format!(
                    "{e}: it is still mounted or in use; set wipe.mount_point or unmount it \
                     in the pre_wipe hook"
                ))
            } else {
                e
            },
        })?;
    let meta = file.metadata().map_err(io_error("inspect", device))?;
    if !meta.file_type().is_block_device() {
        return Err(WipeError::Target {
            path: device.to_path_buf(),
            problem: "is not a block device".into(),
            fix: "name the data partition's device node".into(),
        });
    }
    // Checked again on what was opened, whoever the caller.
    let root = fs::metadata("/").map_err(io_error("inspect", Path::new("/")))?;
    if meta.rdev() == root.dev() || disk_holds(meta.rdev(), root.dev()) {
        return Err(WipeError::Target {
            path: device.to_path_buf(),
            problem: "holds the root file system".into(),
            fix: "name the data partition, never the system's".into(),
        });
    }
    let mut size = 0u64;
    // SAFETY: the fd is open and `size` is a valid u64 for the kernel to fill in.
    unsafe { ioctls::blk_get_size64(file.as_raw_fd(), &mut size) }
        .map_err(errno_error("read the size of", device))?;
    let range = [0u64, size];
    let witnesses = Witnesses::take(&file, size).map_err(io_error("read", device))?;
    let mut last = None;
    for &method in methods {
        let done = match method {
            // SAFETY: the fd is an open block device and `range` a valid {start, length}.
            BlockMethod::SecureDiscard => {
                unsafe { ioctls::blk_sec_discard(file.as_raw_fd(), &range) }
                    .map(drop)
                    .map_err(io::Error::from)
            }
            // SAFETY: as above.
            BlockMethod::Discard => unsafe { ioctls::blk_discard(file.as_raw_fd(), &range) }
                .map(drop)
                .map_err(io::Error::from),
            // SAFETY: as above.
            BlockMethod::ZeroOut => unsafe { ioctls::blk_zero_out(file.as_raw_fd(), &range) }
                .map(drop)
                .map_err(io::Error::from),
            BlockMethod::Zeros => overwrite_with_zeros(&file, size),
        };
        let done = done.and_then(|()| file.sync_all()).and_then(|()| {
            // Read back: a secure discard must have changed every sampled block that held
            // data; the zeroing methods must leave zeros.
            let (left, how) = match method {
                BlockMethod::SecureDiscard => (witnesses.still_there(&file)?, "as before"),
                BlockMethod::Discard => (None, ""),
                BlockMethod::ZeroOut | BlockMethod::Zeros => {
                    (witnesses.not_zero(&file)?, "other than zeros")
                }
            };
            match left {
                None => Ok(()),
                Some(offset) => Err(io::Error::other(format!(
                    "the device accepted it, but the block at byte {offset} still reads {how}"
                ))),
            }
        });
        match done {
            Ok(()) if method == BlockMethod::Discard => {
                log::info!(
                    "wipe: {} discarded ({size} bytes); zeroing it too, as a discard alone \
                     guarantees nothing",
                    device.display()
                );
                last = Some(io::Error::other("a discard alone does not count as erased"));
            }
            Ok(()) => {
                log::info!(
                    "wipe: {} erased ({size} bytes) by {}, checked on {} sampled blocks ({} \
                     held data)",
                    device.display(),
                    method.as_str(),
                    witnesses.blocks.len(),
                    witnesses.with_content()
                );
                return Ok(method);
            }
            Err(e) => {
                log::info!(
                    "wipe: {} of {} failed: {e}",
                    method.as_str(),
                    device.display()
                );
                last = Some(e);
            }
        }
    }
    Err(WipeError::Io {
        action: "erase",
        path: device.to_path_buf(),
        source: last.unwrap_or_else(|| io::Error::other("no erase method given")),
    })
}

/// Writes `size` zero bytes from the start of `file` in bounded chunks.
fn overwrite_with_zeros(mut file: &File, size: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let zeros = vec![0u8; ZERO_CHUNK];
    let mut left = size;
    while left > 0 {
        let n = left.min(ZERO_CHUNK as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_data()
}

// ---------------------------------------------------------------------------------------------
// Directory wipe

/// Removes everything below directory `target`, keeping `target` itself. Symbolic links are
/// removed as links (what they point to is never touched) and the walk never leaves the
/// tree: each directory is opened relative to its parent with O_NOFOLLOW. Returns how many
/// entries were removed.
pub fn wipe_directory(target: &Path) -> Result<u64> {
    let fd = open_dir_nofollow(None, target)?;
    clear_below(fd.as_fd(), target, 0, &|_| false)
}

/// The account-only wipe: removes this account's data, state and credentials — everything
/// under `data_dir` except the data directory lock and the wipe's progress record.
pub fn wipe_account(data_dir: &Path) -> Result<u64> {
    let fd = match open_dir_nofollow(None, data_dir) {
        Ok(fd) => fd,
        Err(WipeError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let mut removed = clear_below(fd.as_fd(), data_dir, 0, &|name| name == b"state")?;
    let state_dir = data_dir.join("state");
    match openat(fd.as_fd(), "state", dir_flags(), Mode::empty()) {
        Ok(state) => {
            let keep = |name: &[u8]| KEPT_IN_STATE.iter().any(|k| k.as_bytes() == name);
            removed += clear_below(state.as_fd(), &state_dir, 1, &keep)?;
        }
        Err(Errno::ENOENT) => {}
        // A `state` that is not a directory (or a link) goes like anything else.
        Err(Errno::ENOTDIR | Errno::ELOOP) => {
            unlinkat(fd.as_fd(), "state", UnlinkatFlags::NoRemoveDir)
                .map_err(errno_error("remove", &state_dir))?;
            removed += 1;
        }
        Err(e) => return Err(errno_error("open", &state_dir)(e)),
    }
    atomic::sync_dir(data_dir)?;
    Ok(removed)
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn open_dir_nofollow(parent: Option<BorrowedFd<'_>>, path: &Path) -> Result<OwnedFd> {
    let opened = match parent {
        Some(dir) => openat(dir, path, dir_flags(), Mode::empty()),
        None => nix::fcntl::open(path, dir_flags(), Mode::empty()),
    };
    opened.map_err(|e| WipeError::Io {
        action: "open the folder",
        path: path.to_path_buf(),
        source: match e {
            Errno::ELOOP | Errno::ENOTDIR => {
                io::Error::other("it is a symbolic link or not a folder: name the real folder")
            }
            e => e.into(),
        },
    })
}

/// Removes every entry of the directory open at `dir` (shown as `shown`) whose name `keep`
/// refuses, depth first, without following links.
fn clear_below(
    dir: BorrowedFd<'_>,
    shown: &Path,
    depth: usize,
    keep: &dyn Fn(&[u8]) -> bool,
) -> Result<u64> {
    if depth > MAX_DEPTH {
        return Err(WipeError::Io {
            action: "descend into",
            path: shown.to_path_buf(),
            source: io::Error::other(format!("folders nested deeper than {MAX_DEPTH}")),
        });
    }
    let listing = dir.try_clone_to_owned().map_err(io_error("open", shown))?;
    let mut listing = Dir::from_fd(listing).map_err(errno_error("list", shown))?;
    let mut names: Vec<Vec<u8>> = Vec::new();
    for entry in listing.iter() {
        let entry = entry.map_err(errno_error("list", shown))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." && !keep(name) {
            names.push(name.to_vec());
        }
    }
    drop(listing);
    let mut removed = 0;
    for name in names {
        let name_path = Path::new(OsStr::from_bytes(&name));
        let shown_child = shown.join(name_path);
        let cname = std::ffi::CString::new(name).map_err(|_| WipeError::Io {
            action: "remove",
            path: shown_child.clone(),
            source: io::Error::other("NUL in a file name"),
        })?;
        removed += remove_entry(dir, &cname, &shown_child, depth)?;
    }
    Ok(removed)
}

/// Removes one entry of `dir`: unlinks a file or link, empties and removes a directory.
/// Never follows a link: an entry that turns from a directory into a link (or gains entries)
/// while it is being removed is taken again as what it has become, a few times at most.
fn remove_entry(dir: BorrowedFd<'_>, name: &CStr, shown: &Path, depth: usize) -> Result<u64> {
    const ATTEMPTS: usize = 8;
    let mut removed = 0;
    for _ in 0..ATTEMPTS {
        match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(removed + 1),
            // unlink(2) on a directory: EISDIR on Linux (EPERM by POSIX).
            Err(Errno::EISDIR | Errno::EPERM) => {}
            Err(e) => return Err(errno_error("remove", shown)(e)),
        }
        let child = match openat(dir, name, dir_flags(), Mode::empty()) {
            Ok(child) => child,
            Err(Errno::ENOENT) => return Ok(removed + 1),
            // Swapped for a link or a file since: unlink that instead.
            Err(Errno::ELOOP | Errno::ENOTDIR) => continue,
            Err(e) => return Err(errno_error("open", shown)(e)),
        };
        removed += clear_below(child.as_fd(), shown, depth + 1, &|_| false)?;
        drop(child);
        match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(removed + 1),
            // Something was added, or the name now is another directory or a link.
            Err(Errno::ENOTEMPTY | Errno::EEXIST | Errno::ENOTDIR) => continue,
            Err(e) => return Err(errno_error("remove", shown)(e)),
        }
    }
    Err(WipeError::Io {
        action: "remove",
        path: shown.to_path_buf(),
        source: io::Error::other(format!(
            "it kept changing while being removed ({ATTEMPTS} attempts): something on the \
             device is writing into the wiped folder; stop it in the pre_wipe hook"
        )),
    })
}

// ---------------------------------------------------------------------------------------------
// Hooks

/// Runs the wipe hook `name` (`pre_wipe`, `mkfs`, `post_wipe`) through the policy hooks'
/// runner: `argv` directly (no shell) in its own process group, a cleared environment plus
/// `env`, stdin empty, output kept bounded, its process group killed after `timeout`. Exit
/// status 0 is success; anything else is an error naming the hook and quoting its output.
pub fn run_wipe_hook(
    name: &'static str,
    argv: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<()> {
    let program = argv.first().map_or("", String::as_str);
    let args = argv.get(1..).unwrap_or_default();
    run_program(
        name,
        format!("wipe.{name}"),
        Path::new(program),
        args,
        env,
        timeout,
    )
}

/// Runs hook `program` (configured under `key`) with `args` and `env`; see [`run_wipe_hook`].
fn run_program(
    name: &'static str,
    key: String,
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<()> {
    let failed = |problem: String| WipeError::Hook {
        name,
        key: key.clone(),
        program: program.display().to_string(),
        problem,
    };
    let mut command = hooks::hook_command(name, program);
    command.args(args).envs(env.iter().copied());
    let finished = hooks::run_program(command, Vec::new(), timeout).map_err(|f| match f {
        hooks::RunFailure::Spawn(e) => failed(format!("cannot be started: {e}")),
        hooks::RunFailure::Timeout => failed(format!(
            "did not finish within {}s and was killed with its process group",
            timeout.as_secs()
        )),
    })?;
    let said = hooks::excerpt(&finished.stderr).or_else(|| hooks::excerpt(&finished.stdout));
    if !finished.status.success() {
        let status = hooks::describe_status(finished.status);
        return Err(failed(match said {
            Some(said) => format!("failed ({status}): {said}"),
            None => format!("failed ({status})"),
        }));
    }
    if let Some(said) = said {
        log::info!("wipe: the {name} hook said: {said}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Crypto-erase

/// The argument (and `EASYNC_ACTION`) telling the `storage_encryption` hook to destroy the
/// key slots of the LUKS container named by the next argument and `EASYNC_WIPE_TARGET`.
pub const CRYPTO_ERASE_ACTION: &str = "crypto-erase";

/// Has the `storage_encryption` hook of `hooks` crypto-erase the LUKS container
/// `wipe.target` (`<hook> crypto-erase <target>`, `EASYNC_ACTION=crypto-erase` and `env` in
/// its environment), then checks the container's header: the wipe is done only when no key
/// slot is left. Running it again on an erased container is harmless.
pub fn crypto_erase(wipe: &Wipe, hooks: &Hooks, env: &[(&str, &str)]) -> Result<luks::KeySlots> {
    let target = &wipe.target;
    let Some(hook) = hooks.storage_encryption.as_deref() else {
        return Err(WipeError::Target {
            path: target.clone(),
            problem: "is to be crypto-erased, but no storage_encryption hook is configured".into(),
            fix: "set hooks.storage_encryption (board/hooks/storage-encryption-luks)".into(),
        });
    };
    let shown_target = target.to_string_lossy();
    let mut env: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .filter(|(key, _)| *key != "EASYNC_WIPE_TARGET")
        .collect();
    env.push(("EASYNC_ACTION", CRYPTO_ERASE_ACTION));
    env.push(("EASYNC_WIPE_TARGET", &shown_target));
    let args = [CRYPTO_ERASE_ACTION.to_string(), shown_target.to_string()];
    // The policy checks' timeout may be short; an erase is given at least HOOK_TIMEOUT.
    let timeout = hooks.timeout.max(HOOK_TIMEOUT);
    run_program(
        "storage_encryption",
        "hooks.storage_encryption".into(),
        hook,
        &args,
        &env,
        timeout,
    )?;
    let unverified = |problem: String| WipeError::Unverified {
        path: target.clone(),
        problem,
    };
    let mut file = open_readonly(target).map_err(|e| unverified(e.to_string()))?;
    let slots = luks::key_slots(&mut file).map_err(|e| unverified(e.to_string()))?;
    if !slots.active.is_empty() {
        return Err(WipeError::KeySlotsLeft {
            path: target.clone(),
            program: hook.display().to_string(),
            slots: slots.active,
        });
    }
    log::info!(
        "wipe: {} crypto-erased: its LUKS{} header holds no key slot",
        target.display(),
        slots.version
    );
    Ok(slots)
}

pub mod luks {
    //! Just enough of the LUKS on-disk format (LUKS1, and LUKS2 with its JSON metadata) to
    //! tell whether a container still holds a key slot, so that a crypto-erase is checked by
    //! easync and not only claimed by a hook. Everything read is bounded (at most one 4 KiB
    //! binary header and one JSON area of at most 4 MiB, parsed as a stream) and any input
    //! gives a value or an error, never a panic.
    //!
    //! LUKS1 (cryptsetup's "LUKS1 On-Disk Format Specification"): a 592-byte big-endian
    //! header; 8 key slots of 48 bytes from offset 208, each starting with its state,
    //! 0x00AC71F3 active or 0x0000DEAD disabled. LUKS2 ("LUKS2 On-Disk Format
    //! Specification"): a 4 KiB binary header (magic, version 2, `hdr_size` at offset 8)
    //! followed by a NUL-terminated JSON area whose top-level `keyslots` object names the key
    //! slots; a second copy of both (magic "SKUL\xba\xbe") follows at `hdr_size`, one of 16 KiB
    //! to 4 MiB. Both copies are checked: cryptsetup falls back to the second one.

    use std::collections::BTreeMap;
    use std::io::{self, Read, Seek, SeekFrom};

    use serde::Deserialize;
    use serde::de::IgnoredAny;

    /// The start of a LUKS (primary) header.
    pub const MAGIC: [u8; 6] = *b"LUKS\xba\xbe";
    /// The start of a LUKS2 secondary header.
    pub const SECONDARY_MAGIC: [u8; 6] = *b"SKUL\xba\xbe";
    /// The LUKS2 binary header's size; its JSON area follows.
    pub const BINARY_HEADER_LEN: usize = 4096;
    /// The LUKS1 header's size.
    pub const LUKS1_HEADER_LEN: usize = 592;
    /// The offsets LUKS2 may keep its second header at (= the header sizes it allows).
    pub const LUKS2_HEADER_SIZES: [u64; 9] = [
        0x4000, 0x8000, 0x1_0000, 0x2_0000, 0x4_0000, 0x8_0000, 0x10_0000, 0x20_0000, 0x40_0000,
    ];
    const LUKS1_KEY_SLOTS: usize = 8;
    const LUKS1_KEY_SLOT_AT: usize = 208;
    const LUKS1_KEY_SLOT_LEN: usize = 48;
    const LUKS1_ACTIVE: u32 = 0x00AC_71F3;
    const LUKS1_DISABLED: u32 = 0x0000_DEAD;

    /// What a LUKS header says about its key slots.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct KeySlots {
        /// 1 or 2.
        pub version: u16,
        /// The key slots still holding a key: their numbers (LUKS1) or JSON names (LUKS2,
        /// both header copies together).
        pub active: Vec<String>,
    }

    /// Why a header says nothing trustworthy about its key slots.
    #[derive(Debug, thiserror::Error)]
    pub enum LuksError {
        #[error("there is no LUKS header on it")]
        NotLuks,
        #[error("its LUKS header is damaged: {0}")]
        Damaged(String),
        #[error("{0}")]
        Io(#[from] io::Error),
    }

    /// The key slots of the LUKS container read from `device`.
    pub fn key_slots(device: &mut (impl Read + Seek)) -> Result<KeySlots, LuksError> {
        let first = read_at(device, 0, BINARY_HEADER_LEN as u64)?;
        if first.starts_with(&MAGIC) {
            return match version(&first)? {
                1 => Ok(KeySlots {
                    version: 1,
                    active: luks1_active_slots(&first)?,
                }),
                2 => {
                    let size = luks2_header_size(&first)?;
                    let mut active = luks2_active_slots(device, 0, size)?;
                    let second = read_at(device, size, BINARY_HEADER_LEN as u64)?;
                    if second.starts_with(&SECONDARY_MAGIC) {
                        merge(&mut active, luks2_copy(device, size, &second)?);
                    }
                    Ok(KeySlots { version: 2, active })
                }
                v => Err(LuksError::Damaged(format!("unknown LUKS version {v}"))),
            };
        }
        // No primary header: cryptsetup would still open the container from a LUKS2
        // secondary header, wherever one is.
        let mut found = None;
        for offset in LUKS2_HEADER_SIZES {
            let second = read_at(device, offset, BINARY_HEADER_LEN as u64)?;
            if second.starts_with(&SECONDARY_MAGIC) {
                let active = luks2_copy(device, offset, &second)?;
                merge(found.get_or_insert_with(Vec::new), active);
            }
        }
        match found {
            Some(active) => Ok(KeySlots { version: 2, active }),
            None => Err(LuksError::NotLuks),
        }
    }

    fn merge(into: &mut Vec<String>, more: Vec<String>) {
        for name in more {
            if !into.contains(&name) {
                into.push(name);
            }
        }
    }

    /// The active slots of the LUKS2 header copy at `offset`, whose binary header is `binary`.
    fn luks2_copy(
        device: &mut (impl Read + Seek),
        offset: u64,
        binary: &[u8],
    ) -> Result<Vec<String>, LuksError> {
        match version(binary)? {
            2 => luks2_active_slots(device, offset, luks2_header_size(binary)?),
            v => Err(LuksError::Damaged(format!(
                "a secondary header of version {v} at offset {offset}"
            ))),
        }
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the device).
    fn read_at(device: &mut (impl Read + Seek), offset: u64, len: u64) -> io::Result<Vec<u8>> {
        device.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        device.take(len).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
    }

    fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    }

    fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
        Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    }

    /// The version field of a header (after its 6-byte magic).
    pub fn version(header: &[u8]) -> Result<u16, LuksError> {
        be_u16(header, 6).ok_or_else(|| LuksError::Damaged("cut short before its version".into()))
    }

    /// The numbers of the active key slots of a LUKS1 header (its first 592 bytes or more).
    pub fn luks1_active_slots(header: &[u8]) -> Result<Vec<String>, LuksError> {
        if header.len() < LUKS1_HEADER_LEN {
            return Err(LuksError::Damaged(format!(
                "a LUKS1 header of {} bytes, not {LUKS1_HEADER_LEN}",
                header.len()
            )));
        }
        let mut active = Vec::new();
        for slot in 0..LUKS1_KEY_SLOTS {
            let state = be_u32(header, LUKS1_KEY_SLOT_AT + slot * LUKS1_KEY_SLOT_LEN)
                .ok_or_else(|| LuksError::Damaged("cut short in its key slots".into()))?;
            match state {
                LUKS1_ACTIVE => active.push(slot.to_string()),
                LUKS1_DISABLED => {}
                other => {
                    return Err(LuksError::Damaged(format!(
                        "key slot {slot} is in an unknown state {other:#010x}"
                    )));
                }
            }
        }
        Ok(active)
    }

    /// A LUKS2 binary header's `hdr_size`: binary header and JSON area together.
    pub fn luks2_header_size(binary: &[u8]) -> Result<u64, LuksError> {
        let size = be_u64(binary, 8)
            .ok_or_else(|| LuksError::Damaged("cut short before its header size".into()))?;
        if LUKS2_HEADER_SIZES.contains(&size) {
            Ok(size)
        } else {
            Err(LuksError::Damaged(format!(
                "a LUKS2 header size of {size} bytes (16 KiB to 4 MiB expected)"
            )))
        }
    }

    /// The key slots named in the JSON area of the LUKS2 header copy at `offset` of
    /// `hdr_size` bytes.
    fn luks2_active_slots(
        device: &mut (impl Read + Seek),
        offset: u64,
        hdr_size: u64,
    ) -> Result<Vec<String>, LuksError> {
        let json_at = offset + BINARY_HEADER_LEN as u64;
        device.seek(SeekFrom::Start(json_at))?;
        let area = io::BufReader::new(device.take(hdr_size - BINARY_HEADER_LEN as u64));
        luks2_json_keyslots(area)
    }

    /// The names in the top-level `keyslots` object of a LUKS2 JSON area read from `area`
    /// (what follows the JSON, NUL padding, is not read).
    pub fn luks2_json_keyslots(area: impl Read) -> Result<Vec<String>, LuksError> {
        #[derive(Deserialize)]
        struct Metadata {
            keyslots: BTreeMap<String, IgnoredAny>,
        }
        let mut values = serde_json::Deserializer::from_reader(area).into_iter::<Metadata>();
        match values.next() {
            Some(Ok(metadata)) => Ok(metadata.keyslots.into_keys().collect()),
            Some(Err(e)) if e.is_io() => Err(LuksError::Io(e.into())),
            Some(Err(e)) => Err(LuksError::Damaged(format!("its JSON metadata: {e}"))),
            None => Err(LuksError::Damaged("its JSON metadata is empty".into())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The crash-safe sequence

/// The last finished step of a wipe, as recorded in [`PHASE_FILE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// The intent was persisted and acknowledged to the server (a local wipe owes no
    /// acknowledgement: persisted only).
    Acknowledged,
    PreWipeDone,
    /// The target was erased (full wipe; an account-only wipe passes through).
    Wiped,
    /// The account's credentials and state are gone.
    Cleared,
    /// `post_wipe` ran: the wipe is over.
    Completed,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Acknowledged,
        Phase::PreWipeDone,
        Phase::Wiped,
        Phase::Cleared,
        Phase::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Acknowledged => "acknowledged",
            Phase::PreWipeDone => "pre-wipe-done",
            Phase::Wiped => "wiped",
            Phase::Cleared => "cleared",
            Phase::Completed => "completed",
        }
    }

    fn next(self) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| *p > self)
    }
}

/// A wipe's kind and how far it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub kind: WipeIntent,
    pub phase: Phase,
}

fn kind_str(kind: WipeIntent) -> &'static str {
    match kind {
        WipeIntent::Full => "full",
        WipeIntent::AccountOnly => "account-only",
    }
}

/// The recorded progress of a wipe under `data_dir`, if one was started.
pub fn progress(data_dir: &Path) -> Result<Option<Progress>> {
    let path = data_dir.join(PHASE_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", &path)(e)),
    };
    // The record is one short line: a longer file is damaged and shown in part.
    let mut bytes = Vec::new();
    file.take(64)
        .read_to_end(&mut bytes)
        .map_err(io_error("read", &path))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match parse_progress(&text) {
        Some(progress) => Ok(Some(progress)),
        None => Err(WipeError::Phase { path, text }),
    }
}

/// The progress a [`PHASE_FILE`] holding `text` records (`None`: the file is damaged).
pub fn parse_progress(text: &str) -> Option<Progress> {
    let mut words = text.split_whitespace();
    let kind = match words.next() {
        Some("full") => Some(WipeIntent::Full),
        Some("account-only") => Some(WipeIntent::AccountOnly),
        _ => None,
    };
    let phase = words
        .next()
        .and_then(|w| Phase::ALL.into_iter().find(|p| p.as_str() == w));
    match (kind, phase, words.next()) {
        (Some(kind), Some(phase), None) => Some(Progress { kind, phase }),
        _ => None,
    }
}

/// The one line [`record`] writes for `progress` (what [`parse_progress`] reads back).
pub fn progress_line(progress: Progress) -> String {
    format!("{} {}\n", kind_str(progress.kind), progress.phase.as_str())
}

fn record(data_dir: &Path, progress: Progress) -> Result<()> {
    atomic::replace_file(
        &data_dir.join(PHASE_FILE),
        progress_line(progress).as_bytes(),
        PRIVATE_FILE_MODE,
    )?;
    Ok(())
}

/// What [`resume`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WipeOutcome {
    /// No wipe was ordered.
    NothingPending,
    /// The wipe is complete (now or earlier); `method` says how a block device was erased.
    Completed {
        kind: WipeIntent,
        method: Option<BlockMethod>,
    },
}

/// Carries out whatever is left of an ordered wipe of the account configured by `config`.
/// See [`resume_at`].
pub fn resume(config: &Config) -> Result<WipeOutcome> {
    resume_at(
        config.data_dir(),
        config.wipe(),
        config.hooks(),
        &mut |_| {},
    )
}

/// Carries out whatever is left of a wipe for the account in `data_dir`: one recorded in
/// [`PHASE_FILE`], else the intent in the account state. Each step is recorded once done,
/// then `after_step` is called with it (tests stop the process there). A full wipe needs
/// `wipe` (and a crypto-erase the `storage_encryption` hook of `hooks`); its target is
/// checked before anything else.
pub fn resume_at(
    data_dir: &Path,
    wipe: Option<&Wipe>,
    hooks: &Hooks,
    after_step: &mut dyn FnMut(Phase),
) -> Result<WipeOutcome> {
    let mut at = match progress(data_dir)? {
        Some(progress) => progress,
        None => {
            let state = StateFile::new(data_dir).load()?.into_state();
            let Some(kind) = state.wipe_intent else {
                return Ok(WipeOutcome::NothingPending);
            };
            let progress = Progress {
                kind,
                phase: Phase::Acknowledged,
            };
            record(data_dir, progress)?;
            after_step(Phase::Acknowledged);
            progress
        }
    };
    if at.phase == Phase::Completed {
        return Ok(WipeOutcome::Completed {
            kind: at.kind,
            method: None,
        });
    }
    if at.kind == WipeIntent::Full {
        let wipe = wipe.ok_or(WipeError::NotConfigured)?;
        if at.phase < Phase::Wiped {
            check_target(wipe, hooks, data_dir)?;
        }
    }
    let target = wipe
        .map(|w| w.target.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mode = wipe.map_or("", |w| w.mode.as_str());
    let mut method = None;
    while let Some(next) = at.phase.next() {
        let env = |step: &'static str| {
            [
                ("EASYNC_WIPE_KIND", kind_str(at.kind)),
                ("EASYNC_WIPE_STEP", step),
                ("EASYNC_WIPE_TARGET", target.as_str()),
                ("EASYNC_WIPE_MODE", mode),
                ("EASYNC_DATA_DIR", data_dir.to_str().unwrap_or("")),
            ]
        };
        match next {
            Phase::Acknowledged => {}
            Phase::PreWipeDone => {
                if let Some(argv) = wipe.and_then(|w| w.pre_wipe.as_deref()) {
                    run_wipe_hook("pre_wipe", argv, &env("pre_wipe"), HOOK_TIMEOUT)?;
                }
            }
            Phase::Wiped => {
                if let (WipeIntent::Full, Some(wipe)) = (at.kind, wipe) {
                    let step = match wipe.mode {
                        WipeMode::CryptoErase => CRYPTO_ERASE_ACTION,
                        _ => "mkfs",
                    };
                    method = full_wipe(wipe, hooks, &env(step))?;
                }
            }
            Phase::Cleared => {
                let removed = wipe_account(data_dir)?;
                log::info!(
                    "wipe: {removed} entries of the account removed from {}",
                    data_dir.display()
                );
            }
            Phase::Completed => {
                if let Some(argv) = wipe.and_then(|w| w.post_wipe.as_deref()) {
                    run_wipe_hook("post_wipe", argv, &env("post_wipe"), HOOK_TIMEOUT)?;
                }
            }
        }
        at.phase = next;
        record(data_dir, at)?;
        after_step(next);
    }
    Ok(WipeOutcome::Completed {
        kind: at.kind,
        method,
    })
}

/// Orders a full wipe on the device itself: the intent goes into the account state as the
/// server's would, marked local ([`LOCAL_FILE`]). An account-only wipe already recorded
/// (under way or done) becomes a full one, restarted from its first step.
pub fn order_local(data_dir: &Path) -> Result<()> {
    atomic::create_dir_all(&data_dir.join("state"), atomic::PRIVATE_DIR_MODE)?;
    atomic::replace_file(
        &data_dir.join(LOCAL_FILE),
        b"a full wipe was ordered on the device\n",
        PRIVATE_FILE_MODE,
    )?;
    let state_file = StateFile::new(data_dir);
    let mut state = state_file.load()?.into_state();
    if state.wipe_intent != Some(WipeIntent::Full) {
        state.wipe_intent = Some(WipeIntent::Full);
        state_file.save(&state)?;
    }
    match progress(data_dir) {
        Ok(None) => {}
        Ok(Some(p)) if p.kind == WipeIntent::Full => {}
        // Another kind, or a damaged record: the full wipe starts from the beginning.
        _ => record(
            data_dir,
            Progress {
                kind: WipeIntent::Full,
                phase: Phase::Acknowledged,
            },
        )?,
    }
    Ok(())
}

/// Whether the pending wipe was ordered on the device.
pub fn ordered_locally(data_dir: &Path) -> bool {
    data_dir.join(LOCAL_FILE).exists()
}

/// After a failed attempt at the wipe: remembers a server's wipe whose target is not erased
/// yet, so that the next acknowledgement says Status 2. Returns whether it is to be
/// reported; a local wipe, or one with only the clearing left, is retried here instead.
pub fn remember_failure(data_dir: &Path, error: &WipeError) -> Result<bool> {
    let erased = matches!(progress(data_dir), Ok(Some(p)) if p.phase >= Phase::Wiped);
    if ordered_locally(data_dir) || erased {
        return Ok(false);
    }
    atomic::replace_file(
        &data_dir.join(FAILED_FILE),
        format!("{error}\n").as_bytes(),
        PRIVATE_FILE_MODE,
    )?;
    Ok(true)
}

/// Whether a failed wipe waits to be reported to the server (Status 2): a failure was
/// remembered and the wipe is still pending.
pub fn failure_to_report(data_dir: &Path) -> Result<bool> {
    if !data_dir.join(FAILED_FILE).exists() {
        return Ok(false);
    }
    let pending = progress(data_dir)?.is_some()
        || StateFile::new(data_dir)
            .load()?
            .into_state()
            .wipe_intent
            .is_some();
    if !pending {
        // Left over from a wipe already withdrawn.
        atomic::remove_file(&data_dir.join(FAILED_FILE))?;
    }
    Ok(pending)
}

/// The server was told the wipe failed (Status 2): its intent, progress and failure are
/// dropped, so that the server's repeated directive starts the wipe afresh (and, should the
/// server not repeat it, the account carries on).
pub fn withdraw(data_dir: &Path) -> Result<()> {
    let state_file = StateFile::new(data_dir);
    let mut state = state_file.load()?.into_state();
    if state.wipe_intent.is_some() {
        state.wipe_intent = None;
        state_file.save(&state)?;
    }
    atomic::remove_file(&data_dir.join(PHASE_FILE))?;
    atomic::remove_file(&data_dir.join(FAILED_FILE))?;
    Ok(())
}

/// Erases the configured target; a block device then gets the `mkfs` hook.
fn full_wipe(wipe: &Wipe, hooks: &Hooks, env: &[(&str, &str)]) -> Result<Option<BlockMethod>> {
    match wipe.mode {
        WipeMode::CryptoErase => {
            crypto_erase(wipe, hooks, env)?;
            Ok(None)
        }
        WipeMode::Directory => {
            let removed = wipe_directory(&wipe.target)?;
            log::info!(
                "wipe: {removed} entries removed below {}",
                wipe.target.display()
            );
            Ok(None)
        }
        WipeMode::Block => {
            let method = wipe_block(&wipe.target, wipe.mount_point.as_deref())?;
            if let Some(argv) = &wipe.mkfs {
                let mut argv = argv.clone();
                argv.push(wipe.target.to_string_lossy().into_owned());
                run_wipe_hook("mkfs", &argv, env, MKFS_TIMEOUT)?;
                if let Some(mount) = &wipe.mount_point {
                    // The data is gone either way: a failed remount is reported, not fatal.
                    match remount(&wipe.target, mount) {
                        Ok(fs) => log::info!(
                            "wipe: the new {fs} file system is mounted at {}",
                            mount.display()
                        ),
                        Err(e) => log::error!(
                            "wipe: {e}; mount it in the post_wipe hook (the data is erased)"
                        ),
                    }
                }
            }
            Ok(Some(method))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic::testdir::TestDir;
    use crate::store::state::AccountState;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_directory_wipe_never_follows_links_swapped_in_while_it_runs() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = TestDir::new("wiperace");
        let victim = dir.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        for i in 0..20 {
            std::fs::write(victim.join(format!("keep{i}")), b"outside the target").unwrap();
        }
        let target = dir.path().join("target");
        for round in 0..6 {
            for d in 0..40 {
                let sub = target.join(format!("d{d}"));
                std::fs::create_dir_all(sub.join("inner")).unwrap();
                for f in 0..10 {
                    std::fs::write(sub.join("inner").join(format!("f{f}")), b"data").unwrap();
                }
            }
            // An attacker inside the target turns directories into links to the victim
            // while the wipe runs.
            let stop = AtomicBool::new(false);
            let result = std::thread::scope(|scope| {
                scope.spawn(|| {
                    let mut n = round;
                    while !stop.load(Ordering::Relaxed) {
                        n = (n * 7 + 3) % 40;
                        let sub = target.join(format!("d{n}"));
                        let aside = target.join(format!("moved{n}-{round}"));
                        if std::fs::rename(&sub, &aside).is_ok() {
                            let _ = symlink(&victim, &sub);
                            let _ = symlink(&victim, sub.with_extension("link"));
                        }
                        let _ = symlink(&victim, aside.join("inner").join("escape"));
                    }
                });
                let result = wipe_directory(&target);
                stop.store(true, Ordering::Relaxed);
                result
            });
            // Whatever the race did, nothing outside the target was touched...
            let kept = std::fs::read_dir(&victim).unwrap().count();
            assert_eq!(
                kept, 20,
                "round {round}: the wipe followed a link ({result:?})"
            );
            // ...and with the writer gone, a wipe leaves the target empty.
            assert!(result.is_ok(), "round {round}: {result:?}");
            wipe_directory(&target).unwrap();
            assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        }
    }

    #[test]
    fn witnesses_tell_an_ignored_erase_from_a_real_one() {
        let dir = TestDir::new("witness");
        let path = dir.path().join("disk");
        // 3 MiB + 512 bytes (an odd size), content everywhere but the first 8 KiB (0x55).
        let size = 3 * 1024 * 1024 + 512;
        let mut bytes: Vec<u8> = (0..size as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        bytes[..8192].fill(0x55);
        std::fs::write(&path, &bytes).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let witnesses = Witnesses::take(&file, size).unwrap();
        assert!(witnesses.blocks.len() >= 256, "{}", witnesses.blocks.len());
        // The first block (all 0x55) tells nothing about an erase; the others do.
        assert_eq!(witnesses.with_content(), witnesses.blocks.len() - 1);
        assert!(
            witnesses
                .blocks
                .iter()
                .all(|(o, _)| o + WITNESS_SIZE as u64 <= size)
        );
        // A device that kept everything (an ignored discard) is caught.
        assert!(witnesses.still_there(&file).unwrap().is_some());
        assert_eq!(witnesses.not_zero(&file).unwrap(), Some(0));
        // One block left behind among erased ones is caught too.
        let kept_at = witnesses.blocks[100].0 as usize;
        let mut erased = vec![0xffu8; size as usize];
        erased[kept_at..kept_at + WITNESS_SIZE]
            .copy_from_slice(&bytes[kept_at..kept_at + WITNESS_SIZE]);
        std::fs::write(&path, &erased).unwrap();
        assert_eq!(witnesses.still_there(&file).unwrap(), Some(kept_at as u64));
        // Erased to 0xff (a secure erase on flash): changed, but not zeros.
        std::fs::write(&path, vec![0xffu8; size as usize]).unwrap();
        assert_eq!(witnesses.still_there(&file).unwrap(), None);
        assert!(witnesses.not_zero(&file).unwrap().is_some());
        // Zeroed: both checks pass.
        overwrite_with_zeros(&file, size).unwrap();
        assert_eq!(witnesses.still_there(&file).unwrap(), None);
        assert_eq!(witnesses.not_zero(&file).unwrap(), None);
    }

    #[test]
    fn the_new_file_system_is_told_by_its_superblock() {
        let dir = TestDir::new("fstype");
        let image = |name: &str, at: usize, magic: &[u8]| {
            let path = dir.path().join(name);
            let mut bytes = vec![0u8; 0x1_1000];
            bytes[at..at + magic.len()].copy_from_slice(magic);
            std::fs::write(&path, &bytes).unwrap();
            path
        };
        let fs_of = |p: &Path| file_system_type(p).unwrap();
        assert_eq!(fs_of(&image("ext4", 1080, &[0x53, 0xef])), Some("ext4"));
        assert_eq!(fs_of(&image("xfs", 0, b"XFSB")), Some("xfs"));
        assert_eq!(fs_of(&image("btrfs", 0x1_0040, b"_BHRfS_M")), Some("btrfs"));
        assert_eq!(
            fs_of(&image("f2fs", 1024, &[0x10, 0x20, 0xf5, 0xf2])),
            Some("f2fs")
        );
        let fat = image("fat", 0x52, b"FAT32   ");
        let mut bytes = std::fs::read(&fat).unwrap();
        bytes[510] = 0x55;
        bytes[511] = 0xaa;
        std::fs::write(&fat, &bytes).unwrap();
        assert_eq!(fs_of(&fat), Some("vfat"));
        assert_eq!(fs_of(&image("zeros", 0, &[0])), None);
        // A device shorter than the places looked at is no file system, not an error.
        let short = dir.path().join("short");
        std::fs::write(&short, b"XF").unwrap();
        assert_eq!(fs_of(&short), None);
    }

    fn check_target_no_hooks(wipe: &Wipe, data_dir: &Path) -> Result<()> {
        check_target(wipe, &Hooks::default(), data_dir)
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn directory_wipe(target: &Path) -> Wipe {
        Wipe {
            target: target.to_path_buf(),
            mode: WipeMode::Directory,
            mount_point: None,
            mkfs: None,
            pre_wipe: None,
            post_wipe: None,
        }
    }

    /// A tree with links pointing out of it (to a file, a folder) and one inside.
    fn tree_with_links_out(root: &Path) -> (PathBuf, PathBuf) {
        let outside = root.join("outside");
        write(&outside.join("precious.txt"), "keep me");
        write(&outside.join("sub/also.txt"), "keep me too");
        let target = root.join("target");
        write(&target.join("a.txt"), "a");
        write(&target.join("deep/er/b.txt"), "b");
        fs::create_dir_all(target.join("empty")).unwrap();
        symlink(outside.join("precious.txt"), target.join("file-link")).unwrap();
        symlink(&outside, target.join("dir-link")).unwrap();
        symlink(&outside, target.join("deep/dir-link")).unwrap();
        symlink(target.join("deep"), target.join("inner-link")).unwrap();
        symlink("/nonexistent/dangling", target.join("dangling")).unwrap();
        (target, outside)
    }

    #[test]
    fn directory_wipe_empties_the_target_and_never_follows_links_out() {
        let t = TestDir::new("wipe-dir");
        let (target, outside) = tree_with_links_out(t.path());
        let removed = wipe_directory(&target).unwrap();
        assert_eq!(
            removed, 10,
            "every entry below the target, links counted once"
        );
        assert!(target.is_dir(), "the target itself stays");
        assert!(names(&target).is_empty());
        assert_eq!(
            fs::read_to_string(outside.join("precious.txt")).unwrap(),
            "keep me"
        );
        assert_eq!(
            fs::read_to_string(outside.join("sub/also.txt")).unwrap(),
            "keep me too"
        );
        // Again on the empty target: nothing to do, no error.
        assert_eq!(wipe_directory(&target).unwrap(), 0);
    }

    #[test]
    fn directory_wipe_refuses_a_symlinked_target() {
        let t = TestDir::new("wipe-dir-link");
        let (_, outside) = tree_with_links_out(t.path());
        let link = t.path().join("link-to-outside");
        symlink(&outside, &link).unwrap();
        let e = wipe_directory(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(names(&outside), ["precious.txt", "sub"]);
    }

    #[test]
    fn account_wipe_keeps_only_the_lock_and_the_progress_record() {
        let t = TestDir::new("wipe-account");
        let (_, outside) = tree_with_links_out(t.path());
        let data = t.path().join("data");
        write(&data.join("credentials/oauth.json"), "{}");
        write(&data.join("Mail/INBOX/cur/1:2,S"), "Subject: x");
        write(&data.join("contacts/a.vcf"), "BEGIN:VCARD");
        write(&data.join("state/lock"), "");
        write(&data.join("state/account.postcard"), "state");
        write(&data.join("state/account.postcard.bak"), "state");
        write(
            &data.join("state/wipe.phase"),
            "account-only pre-wipe-done\n",
        );
        symlink(&outside, data.join("link-out")).unwrap();
        symlink(&outside, data.join("state/link-out")).unwrap();
        wipe_account(&data).unwrap();
        assert_eq!(names(&data), ["state"]);
        assert_eq!(names(&data.join("state")), ["lock", "wipe.phase"]);
        assert_eq!(names(&outside), ["precious.txt", "sub"]);
        assert_eq!(
            fs::read_to_string(outside.join("precious.txt")).unwrap(),
            "keep me"
        );
        // A data directory that is gone is already wiped.
        assert_eq!(wipe_account(&t.path().join("none")).unwrap(), 0);
    }

    #[test]
    fn target_checks_refuse_links_wrong_kinds_and_the_data_dir() {
        let t = TestDir::new("wipe-check");
        let (target, outside) = tree_with_links_out(t.path());
        let data = t.path().join("elsewhere/data");
        assert!(check_target_no_hooks(&directory_wipe(&target), &data).is_ok());

        let link = t.path().join("link");
        symlink(&outside, &link).unwrap();
        let e = check_target_no_hooks(&directory_wipe(&link), &data).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert!(e.to_string().contains("wipe.target"), "{e}");

        let through = link.join("sub");
        let e = check_target_no_hooks(&directory_wipe(&through), &data).unwrap_err();
        assert!(
            e.to_string().contains("goes through a symbolic link"),
            "{e}"
        );

        let e =
            check_target_no_hooks(&directory_wipe(&t.path().join("missing")), &data).unwrap_err();
        assert!(e.to_string().contains("wipe.target"), "{e}");

        let file = outside.join("precious.txt");
        let e = check_target_no_hooks(&directory_wipe(&file), &data).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");

        let mut block = directory_wipe(&file);
        block.mode = WipeMode::Block;
        let e = check_target_no_hooks(&block, &data).unwrap_err();
        assert!(e.to_string().contains("is not a block device"), "{e}");

        let e =
            check_target_no_hooks(&directory_wipe(&target), &target.join("deep/data")).unwrap_err();
        assert!(e.to_string().contains("holds storage.data_dir"), "{e}");

        let mut crypto = directory_wipe(&target);
        crypto.mode = WipeMode::CryptoErase;
        let e = check_target_no_hooks(&crypto, &data).unwrap_err();
        assert!(
            e.to_string().contains("set hooks.storage_encryption"),
            "{e}"
        );
        let hooks = Hooks {
            storage_encryption: Some(PathBuf::from("/bin/true")),
            ..Hooks::default()
        };
        let e = check_target(&crypto, &hooks, &data).unwrap_err();
        assert!(
            e.to_string().contains("neither a block device nor a file"),
            "{e}"
        );
        crypto.target = file;
        let e = check_target(&crypto, &hooks, &data).unwrap_err();
        assert!(e.to_string().contains("no LUKS header"), "{e}");
    }

    #[test]
    fn block_checks_refuse_the_root_file_systems_device() {
        // A device node with the root file system's device number, made where we may.
        let t = TestDir::new("wipe-root-dev");
        let root_dev = fs::metadata("/").unwrap().dev();
        let node = t.path().join("rootdev");
        let made = nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o600),
            root_dev as nix::libc::dev_t,
        );
        if let Err(e) = made {
            println!("SKIPPED block_checks_refuse_the_root_file_systems_device: mknod: {e}");
            return;
        }
        let mut wipe = directory_wipe(&node);
        wipe.mode = WipeMode::Block;
        let e = check_target_no_hooks(&wipe, &t.path().join("data")).unwrap_err();
        assert!(e.to_string().contains("holds the root file system"), "{e}");
        wipe.mode = WipeMode::CryptoErase;
        let hooks = Hooks {
            storage_encryption: Some(PathBuf::from("/bin/true")),
            ..Hooks::default()
        };
        let e = check_target(&wipe, &hooks, &t.path().join("data")).unwrap_err();
        assert!(e.to_string().contains("holds the root file system"), "{e}");
        wipe.mode = WipeMode::Block;
        // And the wipe itself never gets to write through a symlink to it.
        let link = t.path().join("link");
        symlink(&node, &link).unwrap();
        wipe.target = link;
        let e = check_target_no_hooks(&wipe, &t.path().join("data")).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn mount_escapes_are_undone() {
        assert_eq!(unescape_mount(br"/mnt/my\040data"), b"/mnt/my data");
        assert_eq!(unescape_mount(br"/a\134b"), br"/a\b");
        assert_eq!(unescape_mount(br"/x\04"), br"/x\04");
    }

    #[test]
    fn hooks_run_without_a_shell_and_fail_by_name() {
        let t = TestDir::new("wipe-hook");
        let out = t.path().join("out");
        let script = format!("echo \"$EASYNC_WIPE_STEP $1\" > {}", out.display());
        let argv = ["/bin/sh", "-c", &script, "sh", "arg with space"].map(String::from);
        run_wipe_hook(
            "pre_wipe",
            &argv,
            &[("EASYNC_WIPE_STEP", "pre_wipe")],
            HOOK_TIMEOUT,
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "pre_wipe arg with space\n"
        );

        let e = run_wipe_hook("post_wipe", &["/bin/false".into()], &[], HOOK_TIMEOUT).unwrap_err();
        assert!(
            e.to_string()
                .contains("post_wipe hook \"/bin/false\" failed"),
            "{e}"
        );
        let noisy = ["/bin/sh", "-c", "echo disk is busy >&2; exit 4"].map(String::from);
        let e = run_wipe_hook("mkfs", &noisy, &[], HOOK_TIMEOUT)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mkfs hook") && e.contains("(exit status 4): disk is busy"),
            "{e}"
        );
        assert!(e.contains("fix the hook (wipe.mkfs)"), "{e}");
        let e = run_wipe_hook("mkfs", &["/nonexistent".into()], &[], HOOK_TIMEOUT).unwrap_err();
        assert!(e.to_string().contains("cannot be started"), "{e}");
        let slow = ["/bin/sleep", "30"].map(String::from);
        let e = run_wipe_hook("pre_wipe", &slow, &[], Duration::from_millis(200)).unwrap_err();
        assert!(e.to_string().contains("did not finish within"), "{e}");
    }

    #[test]
    fn full_directory_wipe_runs_every_step_in_order_and_stays_completed() {
        let t = TestDir::new("wipe-sequence");
        let (target, outside) = tree_with_links_out(t.path());
        let data = t.path().join("data");
        let log = t.path().join("hooks.log");
        let hook = |step: &str| {
            let line = format!("echo {step} $EASYNC_WIPE_KIND >> {}", log.display());
            Some(["/bin/sh", "-c", &line].map(String::from).to_vec())
        };
        let mut wipe = directory_wipe(&target);
        wipe.pre_wipe = hook("pre");
        wipe.post_wipe = hook("post");
        write(&data.join("credentials/oauth.json"), "{}");
        let state_file = StateFile::new(&data);
        assert_eq!(
            resume_at(&data, Some(&wipe), &Hooks::default(), &mut |_| {}).unwrap(),
            WipeOutcome::NothingPending
        );
        let state = AccountState {
            wipe_intent: Some(WipeIntent::Full),
            ..AccountState::default()
        };
        state_file.save(&state).unwrap();

        let mut steps = Vec::new();
        let outcome = resume_at(&data, Some(&wipe), &Hooks::default(), &mut |p| {
            steps.push(p)
        })
        .unwrap();
        assert_eq!(
            outcome,
            WipeOutcome::Completed {
                kind: WipeIntent::Full,
                method: None
            }
        );
        assert_eq!(steps, Phase::ALL);
        assert_eq!(fs::read_to_string(&log).unwrap(), "pre full\npost full\n");
        assert!(names(&target).is_empty());
        assert_eq!(names(&outside), ["precious.txt", "sub"]);
        assert_eq!(names(&data), ["state"]);
        assert_eq!(
            progress(&data).unwrap(),
            Some(Progress {
                kind: WipeIntent::Full,
                phase: Phase::Completed
            })
        );
        // Completed stays completed: no hook runs again.
        let again = resume_at(&data, Some(&wipe), &Hooks::default(), &mut |_| {
            panic!("a step ran again")
        })
        .unwrap();
        assert!(matches!(again, WipeOutcome::Completed { .. }));
        assert_eq!(fs::read_to_string(&log).unwrap(), "pre full\npost full\n");
    }

    #[test]
    fn a_full_wipe_without_its_section_stays_pending_and_a_damaged_record_is_reported() {
        let t = TestDir::new("wipe-unconfigured");
        let data = t.path().join("data");
        let state = AccountState {
            wipe_intent: Some(WipeIntent::Full),
            ..AccountState::default()
        };
        StateFile::new(&data).save(&state).unwrap();
        let e = resume_at(&data, None, &Hooks::default(), &mut |_| {}).unwrap_err();
        assert!(matches!(e, WipeError::NotConfigured), "{e}");
        // The state is untouched: the wipe is still pending.
        let loaded = StateFile::new(&data).load().unwrap().into_state();
        assert_eq!(loaded.wipe_intent, Some(WipeIntent::Full));

        fs::write(data.join(PHASE_FILE), "full sideways\n").unwrap();
        let e = resume_at(&data, None, &Hooks::default(), &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("is damaged"), "{e}");
    }

    #[test]
    fn every_phase_line_reads_back_and_damaged_ones_do_not() {
        for kind in [WipeIntent::Full, WipeIntent::AccountOnly] {
            for phase in Phase::ALL {
                let progress = Progress { kind, phase };
                assert_eq!(parse_progress(&progress_line(progress)), Some(progress));
            }
        }
        for damaged in [
            "",
            "full",
            "full sideways",
            "full wiped extra",
            "partial wiped",
        ] {
            assert_eq!(parse_progress(damaged), None, "{damaged:?}");
        }
    }

    #[test]
    fn a_failed_server_wipe_is_remembered_for_the_server_and_a_local_one_is_not() {
        let t = TestDir::new("wipe-failed");
        let data = t.path().join("data");
        let state_file = StateFile::new(&data);
        let pending = AccountState {
            wipe_intent: Some(WipeIntent::Full),
            ..AccountState::default()
        };
        state_file.save(&pending).unwrap();
        let error = WipeError::NotConfigured;
        // The server's wipe, failed before its target was erased: to be reported.
        assert!(remember_failure(&data, &error).unwrap());
        assert!(failure_to_report(&data).unwrap());
        // Reported (Status 2): intent, progress and failure dropped.
        record(
            &data,
            Progress {
                kind: WipeIntent::Full,
                phase: Phase::PreWipeDone,
            },
        )
        .unwrap();
        withdraw(&data).unwrap();
        assert_eq!(state_file.load().unwrap().into_state().wipe_intent, None);
        assert_eq!(progress(&data).unwrap(), None);
        assert!(!failure_to_report(&data).unwrap());
        assert!(!data.join(FAILED_FILE).exists());

        // Erased already: only the clearing is left, retried here, never reported.
        state_file.save(&pending).unwrap();
        record(
            &data,
            Progress {
                kind: WipeIntent::Full,
                phase: Phase::Wiped,
            },
        )
        .unwrap();
        assert!(!remember_failure(&data, &error).unwrap());
        assert!(!failure_to_report(&data).unwrap());

        // A local order turns an account-only wipe into a full one and is never reported.
        record(
            &data,
            Progress {
                kind: WipeIntent::AccountOnly,
                phase: Phase::Completed,
            },
        )
        .unwrap();
        order_local(&data).unwrap();
        assert!(ordered_locally(&data));
        assert_eq!(
            progress(&data).unwrap(),
            Some(Progress {
                kind: WipeIntent::Full,
                phase: Phase::Acknowledged
            })
        );
        assert_eq!(
            state_file.load().unwrap().into_state().wipe_intent,
            Some(WipeIntent::Full)
        );
        assert!(!remember_failure(&data, &error).unwrap());
        assert!(!data.join(FAILED_FILE).exists());
        // A stale failure with nothing pending is dropped, not reported.
        withdraw(&data).unwrap();
        fs::write(data.join(FAILED_FILE), "old\n").unwrap();
        assert!(!failure_to_report(&data).unwrap());
        assert!(!data.join(FAILED_FILE).exists());
    }

    #[test]
    fn an_account_only_wipe_needs_no_section_and_leaves_other_data_alone() {
        let t = TestDir::new("wipe-account-only");
        let (target, _) = tree_with_links_out(t.path());
        let data = t.path().join("data");
        write(&data.join("Mail/INBOX/cur/1:2,S"), "Subject: x");
        let state = AccountState {
            wipe_intent: Some(WipeIntent::AccountOnly),
            ..AccountState::default()
        };
        StateFile::new(&data).save(&state).unwrap();
        let outcome = resume_at(&data, None, &Hooks::default(), &mut |_| {}).unwrap();
        assert!(matches!(
            outcome,
            WipeOutcome::Completed {
                kind: WipeIntent::AccountOnly,
                ..
            }
        ));
        assert_eq!(names(&data), ["state"]);
        assert_eq!(names(&data.join("state")), ["wipe.phase"]);
        assert_eq!(
            names(&target).len(),
            7,
            "the device's other data is untouched"
        );
    }

    // LUKS headers made by hand, laid out as the specifications say.

    use super::luks::{self, LuksError};
    use std::io::Cursor;

    fn luks1_header(states: [u32; 8]) -> Vec<u8> {
        let mut h = vec![0u8; luks::LUKS1_HEADER_LEN];
        h[..6].copy_from_slice(&luks::MAGIC);
        h[6..8].copy_from_slice(&1u16.to_be_bytes());
        h[8..11].copy_from_slice(b"aes");
        for (slot, state) in states.iter().enumerate() {
            let at = 208 + slot * 48;
            h[at..at + 4].copy_from_slice(&state.to_be_bytes());
            h[at + 4..at + 8].copy_from_slice(&1000u32.to_be_bytes());
        }
        h
    }

    /// One LUKS2 header copy (binary header + NUL-padded JSON area) of `size` bytes.
    fn luks2_copy(magic: [u8; 6], size: u64, json: &str) -> Vec<u8> {
        let mut h = vec![0u8; size as usize];
        h[..6].copy_from_slice(&magic);
        h[6..8].copy_from_slice(&2u16.to_be_bytes());
        h[8..16].copy_from_slice(&size.to_be_bytes());
        h[4096..4096 + json.len()].copy_from_slice(json.as_bytes());
        h
    }

    fn luks2_json(slots: &[&str]) -> String {
        let slots: Vec<String> = slots
            .iter()
            .map(|s| format!("\"{s}\":{{\"type\":\"luks2\",\"key_size\":64}}"))
            .collect();
        format!(
            "{{\"keyslots\":{{{}}},\"tokens\":{{}},\"segments\":{{}},\
             \"digests\":{{\"0\":{{\"keyslots\":[\"0\"]}}}},\"config\":{{}}}}",
            slots.join(",")
        )
    }

    fn luks2_device(primary: &[&str], secondary: &[&str]) -> Vec<u8> {
        let mut d = luks2_copy(luks::MAGIC, 0x4000, &luks2_json(primary));
        d.extend(luks2_copy(
            luks::SECONDARY_MAGIC,
            0x4000,
            &luks2_json(secondary),
        ));
        d.resize(d.len() + 0x1_0000, 0xA5); // the key slot area
        d
    }

    fn slots_of(device: Vec<u8>) -> std::result::Result<luks::KeySlots, LuksError> {
        luks::key_slots(&mut Cursor::new(device))
    }

    const ACTIVE: u32 = 0x00AC_71F3;
    const DEAD: u32 = 0x0000_DEAD;

    #[test]
    fn luks1_active_and_disabled_key_slots_are_told_apart() {
        let mut states = [DEAD; 8];
        states[0] = ACTIVE;
        states[5] = ACTIVE;
        let mut device = luks1_header(states);
        device.resize(8192, 0x5A);
        let slots = slots_of(device).unwrap();
        assert_eq!(slots.version, 1);
        assert_eq!(slots.active, ["0", "5"]);
        let slots = slots_of(luks1_header([DEAD; 8])).unwrap();
        assert_eq!(slots.active, Vec::<String>::new());

        states[7] = 0x1234_5678;
        let e = slots_of(luks1_header(states)).unwrap_err();
        assert!(
            e.to_string().contains("key slot 7 is in an unknown state"),
            "{e}"
        );
        let mut cut = luks1_header([DEAD; 8]);
        cut.truncate(400);
        let e = slots_of(cut).unwrap_err();
        assert!(matches!(e, LuksError::Damaged(_)), "{e}");
    }

    #[test]
    fn luks2_key_slots_come_from_the_json_of_both_header_copies() {
        let slots = slots_of(luks2_device(&["0", "3"], &["0", "3"])).unwrap();
        assert_eq!(slots.version, 2);
        assert_eq!(slots.active, ["0", "3"]);
        let slots = slots_of(luks2_device(&[], &[])).unwrap();
        assert_eq!(slots.active, Vec::<String>::new());
        // Erased in the primary copy only: cryptsetup could fall back to the second one.
        let slots = slots_of(luks2_device(&[], &["1"])).unwrap();
        assert_eq!(slots.active, ["1"]);
        // The primary copy zeroed: the secondary is still found.
        let mut device = luks2_device(&["2"], &["2"]);
        device[..0x4000].fill(0);
        let slots = slots_of(device).unwrap();
        assert_eq!((slots.version, slots.active), (2, vec!["2".to_string()]));
        // Nothing of LUKS anywhere.
        let e = slots_of(vec![0u8; 0x10_0000]).unwrap_err();
        assert!(matches!(e, LuksError::NotLuks), "{e}");
        assert!(matches!(slots_of(Vec::new()), Err(LuksError::NotLuks)));
    }

    #[test]
    fn damaged_luks2_metadata_is_an_error() {
        let damaged = |device: Vec<u8>| match slots_of(device) {
            Err(LuksError::Damaged(why)) => why,
            other => panic!("not refused as damaged: {other:?}"),
        };
        let why = damaged(luks2_copy(luks::MAGIC, 0x4000, "{\"tokens\":{}}"));
        assert!(why.contains("keyslots"), "{why}");
        let why = damaged(luks2_copy(luks::MAGIC, 0x4000, "{\"keyslots\":[1,2]}"));
        assert!(why.contains("JSON"), "{why}");
        damaged(luks2_copy(luks::MAGIC, 0x4000, "not json at all"));
        damaged(luks2_copy(luks::MAGIC, 0x4000, ""));
        // JSON cut by the end of the device.
        let mut cut = luks2_copy(luks::MAGIC, 0x4000, &luks2_json(&["0"]));
        cut.truncate(4096 + 20);
        damaged(cut);
        // A header size LUKS2 does not allow (and one that would overflow).
        for size in [0u64, 4096, 0x5000, u64::MAX] {
            let mut h = luks2_copy(luks::MAGIC, 0x4000, &luks2_json(&[]));
            h[8..16].copy_from_slice(&size.to_be_bytes());
            let why = damaged(h);
            assert!(why.contains("header size"), "{why}");
        }
        // An unknown version, and a header cut before its version.
        let mut v3 = luks1_header([DEAD; 8]);
        v3[6..8].copy_from_slice(&3u16.to_be_bytes());
        assert!(damaged(v3).contains("version 3"));
        damaged(luks::MAGIC.to_vec());
    }

    #[test]
    fn any_bytes_after_a_luks_magic_give_an_answer_never_a_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let shapes = [
            luks1_header([ACTIVE; 8]),
            luks2_device(&["0"], &["0"]),
            luks2_copy(luks::SECONDARY_MAGIC, 0x4000, &luks2_json(&["0"])),
        ];
        let mut answers = 0;
        for round in 0..600 {
            let mut bytes = shapes[round % shapes.len()].clone();
            let len = (next() as usize) % (bytes.len() + 1);
            bytes.truncate(len.max(16));
            for _ in 0..(next() % 16) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            if round % 7 == 0 {
                bytes[8..16].copy_from_slice(&next().to_be_bytes());
            }
            if slots_of(bytes).is_ok() {
                answers += 1;
            }
        }
        println!("{answers} of 600 damaged headers still parsed");
    }
}
