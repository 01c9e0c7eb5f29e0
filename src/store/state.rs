//! The account's state: what must survive a restart to carry on syncing — negotiated
//! version, policy key, sync keys, the folder list with each folder's local directory, the
//! ServerId ↔ local file map of every folder, the learned heartbeat, a pending wipe.
//!
//! Stored in `data_dir/state/account.postcard` (folder mode 0700, file mode 0600), replaced
//! atomically. Each save first makes the current file `account.postcard.bak`, so a file
//! damaged on the medium falls back to the state before the last save.
//!
//! File layout: the magic `EASYNCST`, one format-version byte, the postcard encoding of
//! [`AccountState`], and the SHA-256 of everything before it (postcard is not
//! self-describing, so without the checksum damage could decode to wrong values). Postcard
//! has no optional fields: any change to the structs needs a new [`FORMAT_VERSION`] and a
//! conversion from the old one in [`StateFile::load`].

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::{self, AtomicFile, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, Result, StoreError};
use crate::eas::item::Class;
use crate::wbxml::ProtocolVersion;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 2;
/// The oldest format version this build still reads (and converts).
pub const OLDEST_FORMAT_VERSION: u8 = 1;

/// First bytes of every state file.
const MAGIC: &[u8; 8] = b"EASYNCST";
const DIGEST_LEN: usize = 32;

/// The state file is read whole; a larger file is treated as damaged.
pub const MAX_STATE_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Longest ServerId or local name recorded for an item (MS-ASCMD allows 64 characters for
/// a ServerId; we are generous, but bounded).
pub const MAX_ID_BYTES: usize = 256;
/// Longest error message kept in [`AccountState::last_error`].
pub const MAX_ERROR_BYTES: usize = 1024;

/// Everything easyncd remembers about its one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// The negotiated protocol version (`"16.1"`), once negotiated.
    pub protocol_version: Option<String>,
    /// The policy key of the last successful provisioning.
    pub policy_key: Option<String>,
    /// The FolderSync key (`"0"` before the first FolderSync).
    pub folder_sync_key: String,
    /// The folders, by ServerId.
    pub folders: BTreeMap<String, FolderState>,
    /// The Ping heartbeat learned to work on this network.
    pub heartbeat: Option<HeartbeatMemory>,
    /// A remote wipe was ordered and is not finished: resume it before anything else.
    pub wipe_intent: Option<WipeIntent>,
    /// The last error that stopped syncing, for `easyncctl status` (bounded).
    pub last_error: Option<String>,
    /// The limits the server's policy sets on what is requested and stored (None before
    /// the first provisioning, or when the server sends no policy).
    pub policy_limits: Option<PolicyLimits>,
}

/// The adaptive Ping heartbeat's learned values (see `engine::heartbeat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatMemory {
    /// The heartbeat to use next (seconds).
    pub current: u32,
    /// The lowest value at which a network timeout was seen.
    pub ceiling: Option<u32>,
    /// The server's bounds from Ping status 5.
    pub server_min: Option<u32>,
    pub server_max: Option<u32>,
}

/// What the server's policy (MS-ASPROV) limits in the data easync requests and keeps.
/// `None` in a field means the policy sets no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLimits {
    /// MaxEmailAgeFilter as a Sync FilterType code (1–5; 0 is "all").
    pub max_email_age: Option<u8>,
    /// MaxCalendarAgeFilter as a Sync FilterType code (4–7; 0 is "all").
    pub max_calendar_age: Option<u8>,
    /// MaxEmailBodyTruncationSize (plain text), in bytes.
    pub max_email_body_bytes: Option<u64>,
    /// MaxEmailHTMLBodyTruncationSize, in bytes.
    pub max_email_html_body_bytes: Option<u64>,
    /// MaxAttachmentSize, in bytes.
    pub max_attachment_bytes: Option<u64>,
    /// AttachmentsEnabled (false: attachments are neither downloaded nor kept).
    pub attachments_enabled: bool,
    /// AllowHTMLEmail (false: mail is requested and kept as plain text).
    pub allow_html_email: bool,
}

impl Default for AccountState {
    fn default() -> AccountState {
        AccountState {
            protocol_version: None,
            policy_key: None,
            folder_sync_key: crate::eas::folder::INITIAL_SYNC_KEY.to_string(),
            folders: BTreeMap::new(),
            heartbeat: None,
            wipe_intent: None,
            last_error: None,
            policy_limits: None,
        }
    }
}

impl AccountState {
    /// The negotiated version as the protocol layer's type.
    pub fn protocol(&self) -> Option<ProtocolVersion> {
        self.protocol_version
            .as_deref()
            .and_then(ProtocolVersion::parse)
    }

    /// Records the negotiated version.
    pub fn set_protocol(&mut self, version: ProtocolVersion) {
        self.protocol_version = Some(version.as_str().to_string());
    }

    /// Records the last error, cut to [`MAX_ERROR_BYTES`].
    pub fn set_last_error(&mut self, message: Option<&str>) {
        self.last_error = message.map(|m| {
            let mut end = m.len().min(MAX_ERROR_BYTES);
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            m[..end].to_string()
        });
    }
}

/// Which remote wipe is pending (MS-ASPROV RemoteWipe vs AccountOnlyRemoteWipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WipeIntent {
    Full,
    AccountOnly,
}

/// The item class of a folder, as stored (mirrors [`Class`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FolderClass {
    Email,
    Contacts,
    Calendar,
    Tasks,
    Notes,
}

impl From<Class> for FolderClass {
    fn from(c: Class) -> FolderClass {
        match c {
            Class::Email => FolderClass::Email,
            Class::Contacts => FolderClass::Contacts,
            Class::Calendar => FolderClass::Calendar,
            Class::Tasks => FolderClass::Tasks,
            Class::Notes => FolderClass::Notes,
        }
    }
}

impl From<FolderClass> for Class {
    fn from(c: FolderClass) -> Class {
        match c {
            FolderClass::Email => Class::Email,
            FolderClass::Contacts => Class::Contacts,
            FolderClass::Calendar => Class::Calendar,
            FolderClass::Tasks => Class::Tasks,
            FolderClass::Notes => Class::Notes,
        }
    }
}

/// One server folder and its local copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    /// The display name the server gave.
    pub display_name: String,
    /// The parent folder's ServerId (`"0"` at the top).
    pub parent_id: String,
    /// The folder type code (MS-ASCMD 2.2.3.186.3; see `eas::folder::FolderType`).
    pub folder_type: u32,
    /// The item class synced in it, `None` for folders not synced.
    pub class: Option<FolderClass>,
    /// The local directory name (sanitized and unique, see `store::names`), under
    /// `mail/`, `contacts/`, … according to the class.
    pub local_dir: String,
    /// The folder's Sync key (`"0"` before its first Sync).
    pub sync_key: String,
    /// The items stored locally.
    pub items: ItemMap,
    /// Items created on the device whose Sync Add was sent but not yet answered, by the
    /// ClientId they were sent with (→ the local name). After a crash they are sent again
    /// with the same ClientId instead of as new items.
    pub pending_adds: BTreeMap<String, String>,
    /// Local names of second copies to remove: the server's rendering of an item this device
    /// uploaded, received while the Add's answer was lost. Listed here (and saved) before
    /// the files go, so a crash in between never uploads them as new items.
    pub stale_copies: Vec<String>,
}

impl FolderState {
    /// A folder not synced yet.
    pub fn new(
        display_name: &str,
        parent_id: &str,
        folder_type: u32,
        class: Option<Class>,
        local_dir: &str,
    ) -> FolderState {
        FolderState {
            display_name: display_name.to_string(),
            parent_id: parent_id.to_string(),
            folder_type,
            class: class.map(FolderClass::from),
            local_dir: local_dir.to_string(),
            sync_key: crate::eas::folder::INITIAL_SYNC_KEY.to_string(),
            items: ItemMap::default(),
            pending_adds: BTreeMap::new(),
            stale_copies: Vec::new(),
        }
    }
}

/// How a local item looked when it was last in step with the server; a difference is a
/// local change to upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fingerprint {
    /// Not recorded.
    Unknown,
    /// vdir items: the first 8 bytes of the file's SHA-256.
    Content(u64),
    /// Maildir messages: the flag bits (`maildir::Flags`).
    Flags(u8),
}

/// What the store knows of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemEntry {
    /// The local name: a vdir file name, or a Maildir message's unique name (without the
    /// `:2,` flags part).
    pub local: String,
    pub fingerprint: Fingerprint,
}

/// A folder's ServerId → local item map. Compact (two short strings and a few bytes per
/// item), ordered, and bounded per entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemMap(BTreeMap<String, ItemEntry>);

impl ItemMap {
    /// Records (or replaces) the item `server_id`. Refuses over-long identifiers.
    pub fn insert(&mut self, server_id: &str, entry: ItemEntry) -> Result<Option<ItemEntry>> {
        for (what, value) in [
            ("ServerId", server_id),
            ("local name", entry.local.as_str()),
        ] {
            if value.len() > MAX_ID_BYTES || value.is_empty() {
                return Err(StoreError::Invalid {
                    path: PathBuf::from(entry.local.clone()),
                    detail: format!(
                        "the item's {what} is empty or longer than {MAX_ID_BYTES} bytes; \
                         the item is not stored (report this server's behaviour)"
                    ),
                });
            }
        }
        Ok(self.0.insert(server_id.to_string(), entry))
    }

    pub fn get(&self, server_id: &str) -> Option<&ItemEntry> {
        self.0.get(server_id)
    }

    pub fn get_mut(&mut self, server_id: &str) -> Option<&mut ItemEntry> {
        self.0.get_mut(server_id)
    }

    pub fn remove(&mut self, server_id: &str) -> Option<ItemEntry> {
        self.0.remove(server_id)
    }

    /// The ServerId of the item stored as `local` (a linear search).
    pub fn server_id_of(&self, local: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, e)| e.local == local)
            .map(|(id, _)| id.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (ServerId, entry) in ServerId order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ItemEntry)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// The account state file and its backup.
#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
    path: PathBuf,
    backup: PathBuf,
}

/// How [`StateFile::load`] found the state.
#[derive(Debug)]
pub enum Loaded {
    /// No state yet: a fresh enrollment.
    Fresh,
    /// The state file was good.
    Good(AccountState),
    /// The state file was damaged; the backup (the state before the last save) was good and
    /// has been put back in place. The damaged file is kept as `account.postcard.damaged`.
    /// The error says what was wrong; the engine should resync (sync keys may be older than
    /// the server's).
    Recovered(AccountState, StoreError),
}

impl Loaded {
    /// The state to carry on with (a fresh default for [`Loaded::Fresh`]).
    pub fn into_state(self) -> AccountState {
        match self {
            Loaded::Fresh => AccountState::default(),
            Loaded::Good(s) | Loaded::Recovered(s, _) => s,
        }
    }
}

impl StateFile {
    /// The state of the account whose data lives in `data_dir`.
    pub fn new(data_dir: &Path) -> StateFile {
        let dir = data_dir.join("state");
        StateFile {
            path: dir.join("account.postcard"),
            backup: dir.join("account.postcard.bak"),
            dir,
        }
    }

    /// `data_dir/state/account.postcard`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The backup, `account.postcard.bak`.
    pub fn backup_path(&self) -> &Path {
        &self.backup
    }

    /// Reads the state. A damaged file falls back to the backup; an error means neither
    /// is usable (or the file is from a newer easync) and says what to do. Nothing is ever
    /// deleted here.
    pub fn load(&self) -> Result<Loaded> {
        atomic::remove_stale_temp_files(&self.dir)?;
        let main_error = match read_state(&self.path) {
            Ok(Some(state)) => return Ok(Loaded::Good(state)),
            Ok(None) => None,
            Err(e @ StoreError::Corrupt { .. }) => Some(e),
            Err(e) => return Err(e),
        };
        match (main_error, read_state(&self.backup)) {
            (None, Ok(None)) => Ok(Loaded::Fresh),
            // The main file is missing but a backup exists: a save was cut short on a file
            // system that lost the rename; the backup is the state.
            (None, Ok(Some(state))) => {
                self.save(&state)?;
                Ok(Loaded::Good(state))
            }
            (Some(damage), Ok(Some(state))) => {
                log::warn!("{damage}; using the backup");
                let damaged = self.dir.join("account.postcard.damaged");
                atomic::rename(&self.path, &damaged)?;
                self.write_main(&state)?;
                Ok(Loaded::Recovered(state, damage))
            }
            (Some(damage), Ok(None)) => Err(damage),
            // Both damaged: report the main file, which is the one that matters.
            (Some(damage), Err(_)) => Err(damage),
            (None, Err(e)) => Err(e),
        }
    }

    /// Reads the main state file without touching anything (no recovery, no clean-up):
    /// `None` when there is none. For read-only tools such as `easyncctl diagnose`.
    pub fn peek(&self) -> Result<Option<AccountState>> {
        read_state(&self.path)
    }

    /// Writes `state` durably, keeping the previous file as the backup.
    pub fn save(&self, state: &AccountState) -> Result<()> {
        atomic::create_dir_all(&self.dir, PRIVATE_DIR_MODE)?;
        if self.path.exists() {
            // Replace the backup atomically with a hard link to the current file, so at
            // every instant both names hold a complete state.
            let staged = self.dir.join(".account.postcard.bak.new");
            let _ = fs::remove_file(&staged);
            if fs::hard_link(&self.path, &staged).is_err() {
                // File systems without hard links (FAT): a durable copy instead.
                fs::copy(&self.path, &staged)
                    .and_then(|_| fs::File::open(&staged)?.sync_all())
                    .map_err(|e| StoreError::io("back up", &self.path, e))?;
            }
            fs::rename(&staged, &self.backup)
                .map_err(|e| StoreError::io("back up", &self.backup, e))?;
        }
        self.write_main(state)
    }

    fn write_main(&self, state: &AccountState) -> Result<()> {
        atomic::create_dir_all(&self.dir, PRIVATE_DIR_MODE)?;
        let mut file =
            AtomicFile::create_with_mode(&self.dir, "account.postcard", PRIVATE_FILE_MODE)?;
        let mut out = HashingWriter {
            file: &mut file,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            error: None,
        };
        out.write_all(MAGIC);
        out.write_all(&[FORMAT_VERSION]);
        let encoded = postcard::serialize_with_flavor(state, &mut out);
        if let Some(e) = out.error.take() {
            return Err(StoreError::io("write", &self.path, e));
        }
        encoded.map_err(|e| StoreError::Invalid {
            path: self.path.clone(),
            detail: format!("the state could not be encoded ({e}): a bug, please report it"),
        })?;
        let digest = out.digest.finish();
        file.write_all(digest.as_ref())
            .map_err(|e| StoreError::io("write", &self.path, e))?;
        file.commit()
    }
}

/// Writes through to the state file while hashing; a postcard flavor, so the state is
/// encoded straight to disk without a second copy in memory.
struct HashingWriter<'a> {
    file: &'a mut AtomicFile,
    digest: ring::digest::Context,
    error: Option<io::Error>,
}

impl HashingWriter<'_> {
    fn write_all(&mut self, data: &[u8]) {
        if self.error.is_none() {
            self.digest.update(data);
            if let Err(e) = self.file.write_all(data) {
                self.error = Some(e);
            }
        }
    }
}

impl postcard::ser_flavors::Flavor for &mut HashingWriter<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.write_all(data);
        if self.error.is_some() {
            return Err(postcard::Error::SerializeBufferFull);
        }
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Reads and checks one state file; `Ok(None)` if it does not exist.
fn read_state(path: &Path) -> Result<Option<AccountState>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("open", path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io("read", path, e))?;
    decode_state(&bytes, path).map(Some)
}

/// Checks and decodes the bytes of the state file at `path`.
fn decode_state(bytes: &[u8], path: &Path) -> Result<AccountState> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if bytes.len() as u64 > MAX_STATE_FILE_BYTES {
        return Err(corrupt("larger than any state easync writes"));
    }
    if bytes.len() < MAGIC.len() + 1 + DIGEST_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not an easync state file, or cut short"));
    }
    let version = bytes[MAGIC.len()];
    if version > FORMAT_VERSION {
        return Err(StoreError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version < OLDEST_FORMAT_VERSION {
        return Err(corrupt(&format!("unknown format version {version}")));
    }
    let (content, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
    if ring::digest::digest(&ring::digest::SHA256, content).as_ref() != digest {
        return Err(corrupt("checksum mismatch"));
    }
    let payload = &content[MAGIC.len() + 1..];
    let decoded = if version == 1 {
        postcard::take_from_bytes::<v1::AccountState>(payload)
            .map(|(state, rest)| (AccountState::from(state), rest))
    } else {
        postcard::take_from_bytes::<AccountState>(payload)
    };
    match decoded {
        Ok((state, [])) => Ok(state),
        Ok(_) => Err(corrupt("trailing bytes after the state")),
        Err(e) => Err(corrupt(&format!("does not decode: {e}"))),
    }
}

/// Fuzzing entry point (fuzz/fuzz_targets/device_input.rs): decodes a state file of format
/// `version` holding `payload`, its checksum made right so that the decoder itself is
/// reached. Not part of the API.
#[doc(hidden)]
pub fn fuzz_state_payload(version: u8, payload: &[u8]) -> Result<AccountState> {
    let mut bytes = MAGIC.to_vec();
    bytes.push(version);
    bytes.extend_from_slice(payload);
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    bytes.extend_from_slice(digest.as_ref());
    decode_state(&bytes, Path::new("/fuzz/state"))
}

/// Format version 1 (easync before the policy limits, the full learned heartbeat and the
/// pending uploads), read and converted.
mod v1 {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::{FolderClass, ItemMap, WipeIntent};

    #[derive(Serialize, Deserialize)]
    pub struct AccountState {
        pub protocol_version: Option<String>,
        pub policy_key: Option<String>,
        pub folder_sync_key: String,
        pub folders: BTreeMap<String, FolderState>,
        pub heartbeat_secs: Option<u32>,
        pub wipe_intent: Option<WipeIntent>,
        pub last_error: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct FolderState {
        pub display_name: String,
        pub parent_id: String,
        pub folder_type: u32,
        pub class: Option<FolderClass>,
        pub local_dir: String,
        pub sync_key: String,
        pub items: ItemMap,
    }

    impl From<AccountState> for super::AccountState {
        fn from(old: AccountState) -> super::AccountState {
            super::AccountState {
                protocol_version: old.protocol_version,
                policy_key: old.policy_key,
                folder_sync_key: old.folder_sync_key,
                folders: old
                    .folders
                    .into_iter()
                    .map(|(id, f)| {
                        let folder = super::FolderState {
                            display_name: f.display_name,
                            parent_id: f.parent_id,
                            folder_type: f.folder_type,
                            class: f.class,
                            local_dir: f.local_dir,
                            sync_key: f.sync_key,
                            items: f.items,
                            pending_adds: BTreeMap::new(),
                            stale_copies: Vec::new(),
                        };
                        (id, folder)
                    })
                    .collect(),
                heartbeat: old.heartbeat_secs.map(|current| super::HeartbeatMemory {
                    current,
                    ceiling: None,
                    server_min: None,
                    server_max: None,
                }),
                wipe_intent: old.wipe_intent,
                last_error: old.last_error,
                policy_limits: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic::testdir::TestDir;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> AccountState {
        let mut s = AccountState::default();
        s.set_protocol(ProtocolVersion::V16_1);
        s.policy_key = Some("3942919513".into());
        s.folder_sync_key = "7".into();
        s.heartbeat = Some(HeartbeatMemory {
            current: 480,
            ceiling: Some(900),
            server_min: None,
            server_max: Some(1800),
        });
        s.policy_limits = Some(PolicyLimits {
            max_email_age: Some(3),
            max_attachment_bytes: Some(1 << 20),
            attachments_enabled: true,
            ..PolicyLimits::default()
        });
        s.wipe_intent = Some(WipeIntent::AccountOnly);
        let mut inbox = FolderState::new("Inbox", "0", 2, Some(Class::Email), "Inbox");
        inbox.sync_key = "42".into();
        inbox
            .items
            .insert(
                "5:1",
                ItemEntry {
                    local: "1700000000.M1P2Q3.host".into(),
                    fingerprint: Fingerprint::Flags(0b10),
                },
            )
            .unwrap();
        s.folders.insert("5".into(), inbox);
        let mut contacts = FolderState::new("Contacts", "0", 9, Some(Class::Contacts), "Contacts");
        contacts
            .items
            .insert(
                "9:1",
                ItemEntry {
                    local: "abc.vcf".into(),
                    fingerprint: Fingerprint::Content(0xdead_beef),
                },
            )
            .unwrap();
        contacts.pending_adds.insert("c-1".into(), "new.vcf".into());
        s.folders.insert("9".into(), contacts);
        s.set_last_error(Some("server answered 503"));
        s
    }

    #[test]
    fn fresh_then_round_trip() {
        let t = TestDir::new("state-rt");
        let f = StateFile::new(t.path());
        assert!(matches!(f.load().unwrap(), Loaded::Fresh));
        assert_eq!(f.load().unwrap().into_state(), AccountState::default());
        assert_eq!(AccountState::default().folder_sync_key, "0");
        let s = sample();
        f.save(&s).unwrap();
        match f.load().unwrap() {
            Loaded::Good(got) => assert_eq!(got, s),
            other => panic!("{other:?}"),
        }
        assert_eq!(sample().protocol(), Some(ProtocolVersion::V16_1));
    }

    #[test]
    fn modes_are_private() {
        let t = TestDir::new("state-modes");
        let f = StateFile::new(t.path());
        f.save(&sample()).unwrap();
        f.save(&sample()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&t.path().join("state")), 0o700);
        assert_eq!(mode(f.path()), 0o600);
        assert_eq!(mode(f.backup_path()), 0o600);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let t = TestDir::new("state-flip");
        let f = StateFile::new(t.path());
        f.save(&sample()).unwrap();
        let good = fs::read(f.path()).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x41;
            let err = match read_state_bytes(t.path(), &bad) {
                Err(e) => e,
                Ok(_) => panic!("byte {i} flipped went unnoticed"),
            };
            assert!(
                matches!(
                    err,
                    StoreError::Corrupt { .. } | StoreError::UnsupportedVersion { .. }
                ),
                "{err}"
            );
        }
        // Cut short at every length: an error, never a panic.
        for len in 0..good.len() {
            assert!(read_state_bytes(t.path(), &good[..len]).is_err());
        }
    }

    fn read_state_bytes(dir: &Path, bytes: &[u8]) -> Result<Option<AccountState>> {
        let p = dir.join("probe");
        fs::write(&p, bytes).unwrap();
        read_state(&p)
    }

    #[test]
    fn set_last_error_is_bounded() {
        let mut s = AccountState::default();
        s.set_last_error(Some(&"é".repeat(4000)));
        let e = s.last_error.unwrap();
        assert!(e.len() <= MAX_ERROR_BYTES);
    }

    #[test]
    fn version_1_files_are_read_and_converted() {
        let t = TestDir::new("state-v1");
        let mut folders = BTreeMap::new();
        let mut items = ItemMap::default();
        items
            .insert(
                "5:1",
                ItemEntry {
                    local: "m1".into(),
                    fingerprint: Fingerprint::Flags(1),
                },
            )
            .unwrap();
        folders.insert(
            "5".to_string(),
            v1::FolderState {
                display_name: "Inbox".into(),
                parent_id: "0".into(),
                folder_type: 2,
                class: Some(FolderClass::Email),
                local_dir: "Inbox".into(),
                sync_key: "9".into(),
                items: items.clone(),
            },
        );
        let old = v1::AccountState {
            protocol_version: Some("14.1".into()),
            policy_key: Some("77".into()),
            folder_sync_key: "3".into(),
            folders,
            heartbeat_secs: Some(600),
            wipe_intent: None,
            last_error: Some("x".into()),
        };
        let mut bytes = MAGIC.to_vec();
        bytes.push(1);
        bytes.extend(postcard::to_allocvec(&old).unwrap());
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        bytes.extend_from_slice(digest.as_ref());
        let state = read_state_bytes(t.path(), &bytes).unwrap().unwrap();
        assert_eq!(state.policy_key.as_deref(), Some("77"));
        assert_eq!(state.folder_sync_key, "3");
        assert_eq!(state.heartbeat.map(|h| h.current), Some(600));
        assert_eq!(state.policy_limits, None);
        let inbox = &state.folders["5"];
        assert_eq!((inbox.sync_key.as_str(), &inbox.items), ("9", &items));
        assert!(inbox.pending_adds.is_empty());
        // Saving writes the current version.
        let f = StateFile::new(t.path());
        f.save(&state).unwrap();
        assert_eq!(fs::read(f.path()).unwrap()[MAGIC.len()], FORMAT_VERSION);
        assert_eq!(f.load().unwrap().into_state(), state);
    }

    #[test]
    fn item_map_bounds_and_lookup() {
        let mut m = ItemMap::default();
        let entry = |l: &str| ItemEntry {
            local: l.into(),
            fingerprint: Fingerprint::Unknown,
        };
        assert!(m.insert(&"x".repeat(MAX_ID_BYTES + 1), entry("a")).is_err());
        assert!(m.insert("", entry("a")).is_err());
        assert!(m.insert("1", entry("")).is_err());
        assert!(m.insert("1", entry("a.vcf")).unwrap().is_none());
        assert_eq!(
            m.insert("1", entry("b.vcf")).unwrap().unwrap().local,
            "a.vcf"
        );
        assert_eq!(m.server_id_of("b.vcf"), Some("1"));
        assert_eq!(m.len(), 1);
        assert_eq!(m.remove("1").unwrap().local, "b.vcf");
        assert!(m.is_empty());
    }
}
