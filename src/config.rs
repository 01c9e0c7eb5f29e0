//! The easyncd configuration: one TOML file (default [`DEFAULT_PATH`]), documented key by key
//! in `board/easync.toml`, and the secrets it points at.
//!
//! Loading runs in three steps: the TOML syntax (errors carry line and column), the shape
//! (serde with `deny_unknown_fields`: unknown keys and wrong types are errors naming the
//! dotted key), then the values (each checked here with a message saying what to write
//! instead). Secrets never live in the file: the password comes from `account.password_file`
//! (a regular file of mode 0600 or stricter, owned by the running user or root) or, when that
//! key is absent, from the systemd credential `password` (`$CREDENTIALS_DIRECTORY/password`,
//! e.g. `LoadCredential=password:/path` in the unit; systemd keeps that one private itself). OAuth accounts keep their tokens in the
//! credential store under `storage.data_dir`, not here.
//!
//! A leaf module: it uses serde, toml and std only (plus `ring` for the device id hash,
//! `base64` for pin checks and `nix` for the effective user id), nothing else of the crate.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::de::{DeTable, DeValue};

/// Where easyncd looks for its configuration when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/easync/easync.toml";
/// The default `storage.data_dir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/easync";
/// The name of the systemd credential holding the password (a file of that name in
/// `$CREDENTIALS_DIRECTORY`).
pub const CREDENTIAL_NAME: &str = "password";
/// The default `device.device_type`.
pub const DEFAULT_DEVICE_TYPE: &str = "easync";
/// Where the device id is derived from when `device.device_id` is absent (first one found).
pub const MACHINE_ID_PATHS: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];
/// Exchange Online defaults for `[account.oauth]`.
pub const DEFAULT_OAUTH_TENANT: &str = "organizations";
pub const DEFAULT_OAUTH_AUTHORITY_BASE: &str = "https://login.microsoftonline.com";
pub const DEFAULT_OAUTH_SCOPE: &str =
    "https://outlook.office365.com/EAS.AccessAsUser.All offline_access";
/// The path appended to a `server` URL given without one.
pub const ACTIVESYNC_PATH: &str = "/Microsoft-Server-ActiveSync";

/// Bounds of a Ping heartbeat (MS-ASCMD HeartbeatInterval: 60–3540 seconds).
pub const HEARTBEAT_LOWEST: Duration = Duration::from_secs(60);
pub const HEARTBEAT_HIGHEST: Duration = Duration::from_secs(3540);

/// The largest configuration file accepted (it is a few KiB in practice).
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The largest password file accepted.
const MAX_PASSWORD_BYTES: u64 = 4096;
/// The longest free-text device value (model, OS, friendly name ...).
const MAX_TEXT_CHARS: usize = 1024;
/// The message the device id hash runs over (keyed with the machine id).
const DEVICE_ID_LABEL: &[u8] = b"easync device id v1";

// ---------------------------------------------------------------------------------------------
// Errors

/// Where in the configuration something is: `origin` (file path or a name given by the
/// caller) and, when known, the line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub origin: String,
    pub line_column: Option<(usize, usize)>,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_column {
            Some((line, column)) => write!(f, "{}:{line}:{column}: ", self.origin),
            None => write!(f, "{}: ", self.origin),
        }
    }
}

/// What is wrong with the configuration or the secrets it points at. Every message names the
/// file, the key and what to do; none ever contains a password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read the configuration {path}: {source}: check the path (or pass --config FILE)"
    )]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {problem}: this is not an easync configuration; check the path")]
    NotConfig { path: PathBuf, problem: String },
    #[error("{at}TOML syntax error: {message}: fix the syntax at that place")]
    Syntax { at: At, message: String },
    #[error("{at}unknown key `{key}`: {hint}")]
    UnknownKey { at: At, key: String, hint: String },
    /// A wrong type or value; `value` is the value as written in the file.
    #[error("{at}{key} = {value}: {fix}")]
    Invalid {
        at: At,
        key: String,
        value: String,
        fix: String,
    },
    #[error("{at}{key} is missing: {fix}")]
    Missing { at: At, key: String, fix: String },
    /// Keys that cannot go together (e.g. `password_file` and `[account.oauth]`).
    #[error("{at}{message}")]
    Conflict { at: At, message: String },
    #[error(
        "{at}no password source: set account.password_file = \"/etc/easync/password\" (a file \
         of mode 0600), or add an [account.oauth] section, or run under systemd with \
         LoadCredential={CREDENTIAL_NAME}:FILE"
    )]
    NoPasswordSource { at: At },
    /// The password file (or credential) is unusable; `fix` says what to run.
    #[error("password file {path}: {problem}: {fix}")]
    PasswordFile {
        path: PathBuf,
        problem: String,
        fix: String,
    },
    #[error("the account uses OAuth ([account.oauth]): it has no password")]
    NoPasswordForOAuth,
    #[error(
        "cannot derive the device id from {source_path}: {problem}: set device.device_id in the \
         configuration (1 to 32 letters and digits)"
    )]
    DeviceId {
        source_path: String,
        problem: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::Invalid { key, .. }
            | ConfigError::Missing { key, .. } => Some(key),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, ConfigError>;

// ---------------------------------------------------------------------------------------------
// Secrets

/// A password: `Debug` and `Display` print `***`; only [`Secret::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

// ---------------------------------------------------------------------------------------------
// The typed configuration

/// The whole configuration, validated. Build it with [`Config::load`] or [`Config::from_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    origin: String,
    account: Account,
    tls: Tls,
    storage: Storage,
    sync: SyncSettings,
    push: Push,
    device: Device,
    hooks: Hooks,
    wipe: Option<Wipe>,
}

/// `[account]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub email: String,
    /// The user name for authentication and the `User=` query parameter (default: `email`).
    pub user: String,
    /// A Windows domain: Basic authentication then names `DOMAIN\user`.
    pub domain: Option<String>,
    /// The ActiveSync URL (`https://host/Microsoft-Server-ActiveSync`); `None`: autodiscover.
    pub server: Option<String>,
    pub auth: AuthSource,
    /// The highest protocol version to use (`None`: the highest both sides support).
    pub protocol_version: Option<EasVersion>,
    pub query_form: QueryForm,
}

/// Where the credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSource {
    /// `account.password_file`.
    PasswordFile(PathBuf),
    /// The systemd credential `$CREDENTIALS_DIRECTORY/password` (used when no
    /// `password_file` is set).
    Credential(PathBuf),
    /// `[account.oauth]`: OAuth 2.0 device authorization grant (RFC 8628).
    OAuth(OAuth),
}

/// `[account.oauth]`, with the Exchange Online defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth {
    pub client_id: String,
    /// e.g. `https://login.microsoftonline.com/organizations`.
    pub authority: String,
    pub device_authorization_endpoint: String,
    pub token_endpoint: String,
    pub scope: String,
}

/// A protocol version cap (`account.protocol_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EasVersion {
    V12_1,
    V14_0,
    V14_1,
    V16_0,
    V16_1,
}

impl EasVersion {
    /// The protocol version this cap names.
    pub const fn protocol(self) -> crate::eas::ProtocolVersion {
        use crate::eas::ProtocolVersion as P;
        match self {
            EasVersion::V12_1 => P::V12_1,
            EasVersion::V14_0 => P::V14_0,
            EasVersion::V14_1 => P::V14_1,
            EasVersion::V16_0 => P::V16_0,
            EasVersion::V16_1 => P::V16_1,
        }
    }

    pub const ALL: [EasVersion; 5] = [
        EasVersion::V12_1,
        EasVersion::V14_0,
        EasVersion::V14_1,
        EasVersion::V16_0,
        EasVersion::V16_1,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EasVersion::V12_1 => "12.1",
            EasVersion::V14_0 => "14.0",
            EasVersion::V14_1 => "14.1",
            EasVersion::V16_0 => "16.0",
            EasVersion::V16_1 => "16.1",
        }
    }
}

/// How the command parameters travel in the URL (MS-ASHTTP 2.2.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryForm {
    #[default]
    Plain,
    Base64,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// An extra CA certificate file (PEM) trusted besides the system store.
    pub ca_file: Option<PathBuf>,
    /// SPKI pins: base64 of the SHA-256 of the server key's SubjectPublicKeyInfo (44 chars).
    pub pin_sha256: Vec<String>,
    /// A TLS client certificate (PEM) and its key; both or neither.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Allow `http://` URLs (labs only: the password would travel in clear).
    pub allow_insecure_http: bool,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub data_dir: PathBuf,
}

/// `[sync]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    /// The classes to sync, in the order of [`SyncClass::ALL`], without duplicates.
    pub classes: Vec<SyncClass>,
    pub include_folders: Vec<String>,
    pub exclude_folders: Vec<String>,
    pub mail_age: AgeFilter,
    pub calendar_age: AgeFilter,
    /// The largest body requested (MS-ASAIRS TruncationSize); `None`: whole bodies.
    pub body_size_limit: Option<u32>,
    pub conflict: ConflictPolicy,
    /// How often a full resync runs besides push.
    pub resync_interval: Duration,
}

/// A class of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncClass {
    Email,
    Contacts,
    Calendar,
    Tasks,
    Notes,
}

impl SyncClass {
    pub const ALL: [SyncClass; 5] = [
        SyncClass::Email,
        SyncClass::Contacts,
        SyncClass::Calendar,
        SyncClass::Tasks,
        SyncClass::Notes,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            SyncClass::Email => "email",
            SyncClass::Contacts => "contacts",
            SyncClass::Calendar => "calendar",
            SyncClass::Tasks => "tasks",
            SyncClass::Notes => "notes",
        }
    }
}

/// A sync time window; [`AgeFilter::filter_type`] is the MS-ASCMD FilterType code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgeFilter {
    All,
    OneDay,
    ThreeDays,
    OneWeek,
    TwoWeeks,
    OneMonth,
    ThreeMonths,
    SixMonths,
}

impl AgeFilter {
    /// The values `sync.mail_age` accepts (FilterType 0–5: the spec allows no longer email
    /// window than one month).
    pub const MAIL: [AgeFilter; 6] = [
        AgeFilter::All,
        AgeFilter::OneDay,
        AgeFilter::ThreeDays,
        AgeFilter::OneWeek,
        AgeFilter::TwoWeeks,
        AgeFilter::OneMonth,
    ];
    /// The values `sync.calendar_age` accepts (FilterType 0 and 4–7).
    pub const CALENDAR: [AgeFilter; 5] = [
        AgeFilter::All,
        AgeFilter::TwoWeeks,
        AgeFilter::OneMonth,
        AgeFilter::ThreeMonths,
        AgeFilter::SixMonths,
    ];

    /// The MS-ASCMD FilterType code.
    pub const fn filter_type(self) -> u8 {
        match self {
            AgeFilter::All => 0,
            AgeFilter::OneDay => 1,
            AgeFilter::ThreeDays => 2,
            AgeFilter::OneWeek => 3,
            AgeFilter::TwoWeeks => 4,
            AgeFilter::OneMonth => 5,
            AgeFilter::ThreeMonths => 6,
            AgeFilter::SixMonths => 7,
        }
    }

    /// The configuration spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            AgeFilter::All => "all",
            AgeFilter::OneDay => "1d",
            AgeFilter::ThreeDays => "3d",
            AgeFilter::OneWeek => "1w",
            AgeFilter::TwoWeeks => "2w",
            AgeFilter::OneMonth => "1m",
            AgeFilter::ThreeMonths => "3m",
            AgeFilter::SixMonths => "6m",
        }
    }

    fn parse(text: &str) -> Option<AgeFilter> {
        [
            AgeFilter::All,
            AgeFilter::OneDay,
            AgeFilter::ThreeDays,
            AgeFilter::OneWeek,
            AgeFilter::TwoWeeks,
            AgeFilter::OneMonth,
            AgeFilter::ThreeMonths,
            AgeFilter::SixMonths,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// Who wins when an item changed on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictPolicy {
    #[default]
    ServerWins,
    ClientWins,
}

/// `[push]`: Ping heartbeat bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Push {
    pub heartbeat_min: Duration,
    pub heartbeat_max: Duration,
    pub heartbeat_start: Duration,
}

/// `[device]`: what the device tells the server (Settings DeviceInformation, query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub model: Option<String>,
    pub os: Option<String>,
    pub os_language: Option<String>,
    pub friendly_name: Option<String>,
    pub imei: Option<String>,
    pub phone_number: Option<String>,
    pub device_type: String,
    /// An explicit id; `None`: derived from the machine id (see [`derive_device_id`]).
    pub device_id: Option<String>,
    /// The roaming signal: the device is roaming while this file exists (a modem script,
    /// or D-Bus `SetRoaming`, creates and removes it). Set, easync enforces the policy's
    /// RequireManualSyncWhenRoaming itself; unset, it reports that element as not applied.
    pub roaming_file: Option<PathBuf>,
}

/// `[hooks]`: the programs enforcing the server's security policy (absolute paths to
/// executables that only their owner — root or the running user — may change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// Password and lock-screen rules.
    pub device_lock: Option<PathBuf>,
    /// Device and storage card encryption.
    pub storage_encryption: Option<PathBuf>,
    /// Every other element that easync does not enforce itself (camera, Bluetooth, ...).
    pub policy: Option<PathBuf>,
    /// How long one hook may run before it is killed.
    pub timeout: Duration,
}

impl Hooks {
    /// Whether any hook is configured.
    pub fn any(&self) -> bool {
        self.device_lock.is_some() || self.storage_encryption.is_some() || self.policy.is_some()
    }
}

/// The default `hooks.timeout`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// The range `hooks.timeout` accepts.
const HOOK_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));

// ---------------------------------------------------------------------------------------------
// Defaults (board/easync.toml states the same values; a test checks they agree)

impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
        }
    }
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            classes: SyncClass::ALL.to_vec(),
            include_folders: Vec::new(),
            exclude_folders: Vec::new(),
            mail_age: AgeFilter::OneMonth,
            calendar_age: AgeFilter::SixMonths,
            body_size_limit: None,
            conflict: ConflictPolicy::ServerWins,
            resync_interval: Duration::from_secs(3600),
        }
    }
}

impl Default for Push {
    fn default() -> Self {
        Push {
            heartbeat_min: Duration::from_secs(60),
            heartbeat_max: Duration::from_secs(3540),
            heartbeat_start: Duration::from_secs(480),
        }
    }
}

impl Default for Device {
    fn default() -> Self {
        Device {
            model: None,
            os: None,
            os_language: None,
            friendly_name: None,
            imei: None,
            phone_number: None,
            device_type: DEFAULT_DEVICE_TYPE.into(),
            device_id: None,
            roaming_file: None,
        }
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            device_lock: None,
            storage_encryption: None,
            policy: None,
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

impl Config {
    /// Reads and validates the configuration file at `path`. A password source missing from
    /// the file may come from `$CREDENTIALS_DIRECTORY` (see [`CREDENTIAL_NAME`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::NotConfig {
                path: path.to_path_buf(),
                problem: format!("larger than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::NotConfig {
            path: path.to_path_buf(),
            problem: format!(
                "not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Config::from_str(&text, &path.display().to_string())
    }

    /// Parses and validates configuration text; `origin` names it in error messages (the file
    /// path, or e.g. `"<demo>"`). Reads `$CREDENTIALS_DIRECTORY` like [`Config::load`].
    pub fn from_str(text: &str, origin: &str) -> Result<Config> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Config::parse(text, origin, credentials.as_deref())
    }

    /// [`Config::from_str`] with the credentials directory given instead of read from the
    /// environment (`None`: no systemd credentials).
    pub fn parse(text: &str, origin: &str, credentials_dir: Option<&Path>) -> Result<Config> {
        let document = match DeTable::parse(text) {
            Ok(document) => document,
            Err(e) => {
                return Err(ConfigError::Syntax {
                    at: at_offset(origin, text, e.span().map(|s| s.start)),
                    message: e.message().trim().to_string(),
                });
            }
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => return Err(shape_error(origin, text, document.get_ref(), &e)),
        };
        let context = Context {
            origin,
            text,
            document: document.get_ref(),
        };
        build(raw, &context, credentials_dir)
    }

    /// The file (or name) the configuration came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn data_dir(&self) -> &Path {
        &self.storage.data_dir
    }

    pub fn sync(&self) -> &SyncSettings {
        &self.sync
    }

    pub fn push(&self) -> &Push {
        &self.push
    }

    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `[wipe]`, when the device carries out full remote wipes.
    pub fn wipe(&self) -> Option<&Wipe> {
        self.wipe.as_ref()
    }

    /// Reads the password from the password file or the systemd credential, checking the
    /// file first (regular file, mode 0600 or stricter, owned by the running user or root).
    /// One trailing newline is removed.
    pub fn password(&self) -> Result<Secret> {
        match &self.account.auth {
            AuthSource::PasswordFile(path) => read_password(path, true),
            // systemd keeps credentials private to the service (a 0400 file it may expose to
            // the service user through an ACL, which shows as group bits), so only the
            // password file's permissions are ours to check.
            AuthSource::Credential(path) => read_password(path, false),
            AuthSource::OAuth(_) => Err(ConfigError::NoPasswordForOAuth),
        }
    }

    /// The EAS DeviceId: `device.device_id` when set, else derived from the machine id
    /// ([`MACHINE_ID_PATHS`], see [`derive_device_id`]).
    pub fn device_id(&self) -> Result<String> {
        if let Some(id) = &self.device.device_id {
            return Ok(id.clone());
        }
        let mut last = None;
        for path in MACHINE_ID_PATHS {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    return derive_device_id(&text).map_err(|problem| ConfigError::DeviceId {
                        source_path: path.into(),
                        problem,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(ConfigError::DeviceId {
            source_path: MACHINE_ID_PATHS.join(" or "),
            problem: last.map_or_else(String::new, |e| e.to_string()),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Public helpers

/// The device id derived from a machine id (the text of `/etc/machine-id`: 32 hex digits):
/// the first 16 bytes of HMAC-SHA256(key = those 32 lowercase hex digits, message =
/// `"easync device id v1"`), written as 32 uppercase hex digits. Stable for the life of the
/// installation, different per device, and it does not reveal the machine id (as systemd
/// asks of ids sent off the machine). A new image (new machine id) gives a new device id;
/// set `device.device_id` to keep one across reinstalls.
pub fn derive_device_id(machine_id: &str) -> std::result::Result<String, String> {
    let id = machine_id.trim().to_ascii_lowercase();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a machine id is 32 hexadecimal digits".into());
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, id.as_bytes());
    let tag = ring::hmac::sign(&key, DEVICE_ID_LABEL);
    Ok(tag.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect())
}

/// Whether `id` is a valid EAS DeviceId as easync writes it: 1 to 32 ASCII letters and
/// digits (MS-ASHTTP forbids commas and special characters; 32 is the longest id Exchange
/// keeps).
pub fn valid_device_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Parses a duration: an integer number of seconds, or a text of number-unit groups with
/// units `s`, `m`, `h`, `d` (`"480"`, `"8m"`, `"1h30m"`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(Duration::from_secs);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(seconds)?)?;
        rest = &rest[digits + 1..];
    }
    Some(Duration::from_secs(total))
}

/// Parses a size: an integer number of bytes, or a number with a binary suffix `K`, `M`, `G`
/// (also `KB`/`KiB` ..., any case; `K` = 1024 bytes): `"64K"` = 65536.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let number: u64 = text[..digits].parse().ok()?;
    let factor: u64 = match text[digits..].trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Whether `name` matches the folder pattern `pattern`: whole string, case-insensitive, `*`
/// any run of characters (also none), `?` exactly one character.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let name: Vec<char> = name.to_lowercase().chars().collect();
    let (mut p, mut n) = (0, 0);
    // Position after the last `*` seen and the name position it was tried against.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p + 1, n));
            p += 1;
        } else if let Some((after_star, tried)) = star {
            p = after_star;
            n = tried + 1;
            star = Some((after_star, tried + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

impl SyncSettings {
    /// Whether a folder is synced (its class being in `classes` is checked separately).
    /// `path` holds the display names from the top of the folder tree down to the folder,
    /// e.g. `["Inbox", "Projects"]`. A pattern with a `/` is matched against the path joined
    /// with `/` (`"Inbox/*"`), one without against the folder's own name (`"Projects"`).
    /// With no `include_folders` every folder is included; `exclude_folders` then removes.
    pub fn folder_selected(&self, path: &[&str]) -> bool {
        let Some(name) = path.last() else {
            return false;
        };
        let joined = path.join("/");
        let matches = |pattern: &String| {
            if pattern.contains('/') {
                pattern_matches(pattern, &joined)
            } else {
                pattern_matches(pattern, name)
            }
        };
        (self.include_folders.is_empty() || self.include_folders.iter().any(matches))
            && !self.exclude_folders.iter().any(matches)
    }

    pub fn syncs(&self, class: SyncClass) -> bool {
        self.classes.contains(&class)
    }
}

// ---------------------------------------------------------------------------------------------
// The raw shape (serde)

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    account: Option<RawAccount>,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    push: RawPush,
    #[serde(default)]
    device: RawDevice,
    #[serde(default)]
    hooks: RawHooks,
    wipe: Option<RawWipe>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    email: Option<String>,
    user: Option<String>,
    domain: Option<String>,
    server: Option<String>,
    password_file: Option<String>,
    oauth: Option<RawOAuth>,
    protocol_version: Option<String>,
    query_form: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    client_id: Option<String>,
    tenant: Option<String>,
    authority: Option<String>,
    device_authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    scope: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
    pin_sha256: Option<Vec<String>>,
    client_cert: Option<String>,
    client_key: Option<String>,
    allow_insecure_http: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    data_dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSync {
    classes: Option<Vec<String>>,
    include_folders: Option<Vec<String>>,
    exclude_folders: Option<Vec<String>>,
    mail_age: Option<String>,
    calendar_age: Option<String>,
    body_size_limit: Option<NumberOrText>,
    conflict: Option<String>,
    resync_interval: Option<NumberOrText>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPush {
    heartbeat_min: Option<NumberOrText>,
    heartbeat_max: Option<NumberOrText>,
    heartbeat_start: Option<NumberOrText>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    model: Option<String>,
    os: Option<String>,
    os_language: Option<String>,
    friendly_name: Option<String>,
    imei: Option<String>,
    phone_number: Option<String>,
    device_type: Option<String>,
    device_id: Option<String>,
    roaming_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    device_lock: Option<String>,
    storage_encryption: Option<String>,
    policy: Option<String>,
    timeout: Option<NumberOrText>,
}

/// A value written either as a number (`480`) or as a text (`"8m"`, `"64K"`).
enum NumberOrText {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for NumberOrText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct NumberOrTextVisitor;
        impl Visitor<'_> for NumberOrTextVisitor {
            type Value = NumberOrText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a text like \"8m\" or \"64K\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<NumberOrText, E> {
                Ok(NumberOrText::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<NumberOrText, E> {
                i64::try_from(v)
                    .map(NumberOrText::Number)
                    .map_err(|_| E::custom("the number is too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<NumberOrText, E> {
                Ok(NumberOrText::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(NumberOrTextVisitor)
    }
}

impl NumberOrText {
    /// The value as written in the file.
    fn shown(&self) -> String {
        match self {
            NumberOrText::Number(n) => n.to_string(),
            NumberOrText::Text(t) => quoted(t),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

/// The text being validated, to point errors at lines.
struct Context<'a> {
    origin: &'a str,
    text: &'a str,
    document: &'a DeTable<'a>,
}

impl Context<'_> {
    /// The location of `key` (dotted path): its value if written, else its table.
    fn at(&self, key: &str) -> At {
        at_offset(self.origin, self.text, span_of(self.document, key))
    }

    fn invalid(&self, key: &str, value: String, fix: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(key),
            key: key.into(),
            value,
            fix: fix.into(),
        }
    }

    fn missing(&self, key: &str, fix: impl Into<String>) -> ConfigError {
        let table = key.rsplit_once('.').map_or("", |(table, _)| table);
        ConfigError::Missing {
            at: self.at(table),
            key: key.into(),
            fix: fix.into(),
        }
    }

    /// A text value that must not be empty nor hold control characters.
    fn text(&self, key: &str, value: Option<String>) -> Result<Option<String>> {
        let Some(value) = value else { return Ok(None) };
        if value.trim().is_empty() {
            return Err(self.invalid(key, quoted(&value), "give a value or remove the key"));
        }
        if value.chars().any(char::is_control) {
            return Err(self.invalid(key, quoted(&value), "remove the control characters"));
        }
        if value.chars().count() > MAX_TEXT_CHARS {
            return Err(self.invalid(
                key,
                format!("({} characters)", value.chars().count()),
                format!("use at most {MAX_TEXT_CHARS} characters"),
            ));
        }
        Ok(Some(value))
    }

    /// An absolute path (the daemon runs with `/` as working directory).
    fn path(&self, key: &str, value: Option<String>) -> Result<Option<PathBuf>> {
        let Some(value) = self.text(key, value)? else {
            return Ok(None);
        };
        if !value.starts_with('/') {
            return Err(self.invalid(
                key,
                quoted(&value),
                "use an absolute path (starting with /): the daemon runs in /",
            ));
        }
        Ok(Some(PathBuf::from(value)))
    }

    /// An `https://` URL (or `http://` when insecure HTTP is allowed), without whitespace.
    fn url(&self, key: &str, value: Option<String>, allow_http: bool) -> Result<Option<String>> {
        let Some(value) = self.text(key, value)? else {
            return Ok(None);
        };
        let rest = if let Some(rest) = value.strip_prefix("https://") {
            rest
        } else if let Some(rest) = value.strip_prefix("http://") {
            if !allow_http {
                return Err(self.invalid(
                    key,
                    quoted(&value),
                    "use https:// (plain http sends the credentials in clear; only for labs \
                     with tls.allow_insecure_http = true)",
                ));
            }
            rest
        } else if value.contains("://") {
            return Err(self.invalid(key, quoted(&value), "use an https:// URL"));
        } else {
            return Err(self.invalid(
                key,
                quoted(&value),
                format!("write a URL: \"https://{}\"", value.trim_start_matches('/')),
            ));
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || value.chars().any(char::is_whitespace) {
            return Err(self.invalid(
                key,
                quoted(&value),
                "write a URL with a host name and no spaces, e.g. \"https://mail.example.com\"",
            ));
        }
        Ok(Some(value))
    }

    /// One of `choices` (the configuration spellings).
    fn choice<T: Copy>(
        &self,
        key: &str,
        value: Option<String>,
        choices: &[(&str, T)],
    ) -> Result<Option<T>> {
        let Some(value) = value else { return Ok(None) };
        match choices.iter().find(|(name, _)| *name == value) {
            Some((_, choice)) => Ok(Some(*choice)),
            None => Err(self.invalid(key, quoted(&value), one_of(choices.iter().map(|c| c.0)))),
        }
    }

    /// A duration and the value as written (for later range errors).
    fn duration(
        &self,
        key: &str,
        value: Option<NumberOrText>,
    ) -> Result<Option<(Duration, String)>> {
        let Some(value) = value else { return Ok(None) };
        let parsed = match &value {
            NumberOrText::Number(n) => u64::try_from(*n).ok().map(Duration::from_secs),
            NumberOrText::Text(t) => parse_duration(t),
        };
        parsed.map(|d| Some((d, value.shown()))).ok_or_else(|| {
            self.invalid(
                key,
                value.shown(),
                "write seconds (480) or a duration with units s, m, h, d (\"8m\", \"1h30m\")",
            )
        })
    }
}

fn build(raw: RawConfig, cx: &Context<'_>, credentials_dir: Option<&Path>) -> Result<Config> {
    let tls = build_tls(raw.tls, cx)?;
    let Some(raw_account) = raw.account else {
        return Err(ConfigError::Missing {
            at: cx.at(""),
            key: "account".into(),
            fix: "add an [account] section with at least email = \"user@example.com\"".into(),
        });
    };
    let account = build_account(raw_account, &tls, cx, credentials_dir)?;
    let storage = Storage {
        data_dir: cx
            .path("storage.data_dir", raw.storage.data_dir)?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
    };
    let sync = build_sync(raw.sync, cx)?;
    let push = build_push(raw.push, cx)?;
    let device = build_device(raw.device, cx)?;
    let hooks = build_hooks(raw.hooks, cx)?;
    let wipe = match raw.wipe {
        Some(raw) => Some(build_wipe(raw, &storage.data_dir, &hooks, cx)?),
        None => None,
    };
    Ok(Config {
        origin: cx.origin.into(),
        account,
        tls,
        storage,
        sync,
        push,
        device,
        hooks,
        wipe,
    })
}

fn build_hooks(raw: RawHooks, cx: &Context<'_>) -> Result<Hooks> {
    let hook = |key: &str, value: Option<String>| -> Result<Option<PathBuf>> {
        let Some(path) = cx.path(key, value)? else {
            return Ok(None);
        };
        match check_hook_file(&path) {
            Ok(()) => Ok(Some(path)),
            Err((problem, fix)) => Err(cx.invalid(
                key,
                quoted(&path.display().to_string()),
                format!("{problem}: {fix}"),
            )),
        }
    };
    let timeout = match cx.duration("hooks.timeout", raw.timeout)? {
        None => DEFAULT_HOOK_TIMEOUT,
        Some((d, written)) => {
            let (lowest, highest) = HOOK_TIMEOUT_RANGE;
            if d < lowest || d > highest {
                return Err(cx.invalid(
                    "hooks.timeout",
                    written,
                    "use 1 to 600 seconds (\"1s\" to \"10m\")",
                ));
            }
            d
        }
    };
    Ok(Hooks {
        device_lock: hook("hooks.device_lock", raw.device_lock)?,
        storage_encryption: hook("hooks.storage_encryption", raw.storage_encryption)?,
        policy: hook("hooks.policy", raw.policy)?,
        timeout,
    })
}

/// Whether `path` may be run as a policy hook: an existing regular file (symbolic links
/// are followed) with an execute bit, writable by its owner only, owned by the running user
/// or root — anyone else who could change it could claim compliance. On refusal: the
/// problem and the fix.
pub fn check_hook_file(path: &Path) -> std::result::Result<(), (String, String)> {
    let meta = std::fs::metadata(path).map_err(|e| {
        (
            format!("cannot use it: {e}"),
            "install the hook there or correct the path".to_string(),
        )
    })?;
    if !meta.is_file() {
        return Err((
            "it is not a regular file".into(),
            "point the key at the hook program itself".into(),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o111 == 0 {
        return Err((
            format!("it is not executable (mode {mode:04o})"),
            format!("chmod 755 {}", path.display()),
        ));
    }
    if mode & 0o022 != 0 {
        return Err((
            format!("its mode is {mode:04o}: others can change what it does"),
            format!("chmod go-w {}", path.display()),
        ));
    }
    let euid = nix::unistd::geteuid().as_raw();
    let owner = meta.uid();
    if owner != euid && owner != 0 {
        return Err((
            format!("it is owned by user id {owner}, not by the running user ({euid}) nor root"),
            format!("chown root {}", path.display()),
        ));
    }
    // Whoever may rename entries in a directory on the way could put another program there.
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    for dir in path.ancestors().skip(1).chain(real.ancestors().skip(1)) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        // In a sticky directory (like /tmp) only the entry's and the directory's owners may
        // replace the entry: root or the running user, as checked here.
        let sticky = mode & 0o1000 != 0 && (meta.uid() == 0 || meta.uid() == euid);
        if mode & 0o022 != 0 && !sticky {
            return Err((
                format!(
                    "the directory {} has mode {mode:04o}: others can replace the hook",
                    dir.display()
                ),
                format!(
                    "chmod go-w {}, or install the hook elsewhere",
                    dir.display()
                ),
            ));
        }
        if meta.uid() != euid && meta.uid() != 0 {
            return Err((
                format!(
                    "the directory {} is owned by user id {}: that user can replace the hook",
                    dir.display(),
                    meta.uid()
                ),
                format!(
                    "chown root {}, or install the hook elsewhere",
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}

fn build_account(
    raw: RawAccount,
    tls: &Tls,
    cx: &Context<'_>,
    credentials_dir: Option<&Path>,
) -> Result<Account> {
    let Some(email) = cx.text("account.email", raw.email)? else {
        return Err(cx.missing(
            "account.email",
            "add email = \"user@example.com\" to [account]",
        ));
    };
    let valid_email = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if !valid_email {
        return Err(cx.invalid(
            "account.email",
            quoted(&email),
            "write an email address like \"user@example.com\"",
        ));
    }
    let user = cx
        .text("account.user", raw.user)?
        .unwrap_or_else(|| email.clone());
    let domain = cx.text("account.domain", raw.domain)?;
    if let Some(d) = &domain {
        if d.contains(['\\', '/', '@']) {
            return Err(cx.invalid(
                "account.domain",
                quoted(d),
                "write the bare Windows domain (\"CORP\"), without \\, / or @",
            ));
        }
    }
    let server = cx
        .url("account.server", raw.server, tls.allow_insecure_http)?
        .map(activesync_url);

    let password_file = cx.path("account.password_file", raw.password_file)?;
    let auth = match (password_file, raw.oauth) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Conflict {
                at: cx.at("account.oauth"),
                message: "account.password_file and [account.oauth] are both set: keep the one \
                          the account uses (password_file for a password, [account.oauth] for \
                          Exchange Online modern authentication)"
                    .into(),
            });
        }
        (Some(path), None) => AuthSource::PasswordFile(path),
        (None, Some(oauth)) => AuthSource::OAuth(build_oauth(oauth, tls, cx)?),
        (None, None) => match credentials_dir {
            Some(dir) if dir.join(CREDENTIAL_NAME).is_file() => {
                AuthSource::Credential(dir.join(CREDENTIAL_NAME))
            }
            _ => {
                return Err(ConfigError::NoPasswordSource {
                    at: cx.at("account"),
                });
            }
        },
    };

    let versions: Vec<(&str, EasVersion)> =
        EasVersion::ALL.iter().map(|v| (v.as_str(), *v)).collect();
    let protocol_version =
        cx.choice("account.protocol_version", raw.protocol_version, &versions)?;
    let query_form = cx
        .choice(
            "account.query_form",
            raw.query_form,
            &[("plain", QueryForm::Plain), ("base64", QueryForm::Base64)],
        )?
        .unwrap_or_default();
    Ok(Account {
        email,
        user,
        domain,
        server,
        auth,
        protocol_version,
        query_form,
    })
}

/// Appends the ActiveSync path to a URL that has none.
fn activesync_url(url: String) -> String {
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) if after_scheme.len() > i + 1 => url,
        _ => format!("{}{ACTIVESYNC_PATH}", url.trim_end_matches('/')),
    }
}

fn build_oauth(raw: RawOAuth, tls: &Tls, cx: &Context<'_>) -> Result<OAuth> {
    let http = tls.allow_insecure_http;
    let Some(client_id) = cx.text("account.oauth.client_id", raw.client_id)? else {
        return Err(cx.missing(
            "account.oauth.client_id",
            "add client_id = \"<application (client) id of the Entra app registration>\"",
        ));
    };
    let tenant = cx.text("account.oauth.tenant", raw.tenant)?;
    if let Some(t) = &tenant {
        if !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(cx.invalid(
                "account.oauth.tenant",
                quoted(t),
                "write a tenant id (GUID), a domain (\"example.com\"), \"organizations\" or \
                 \"common\"",
            ));
        }
    }
    let authority = cx.url("account.oauth.authority", raw.authority, http)?;
    let authority = match (authority, tenant) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Conflict {
                at: cx.at("account.oauth.authority"),
                message: "account.oauth.authority and account.oauth.tenant are both set: the \
                          authority URL already names the tenant; keep one"
                    .into(),
            });
        }
        (Some(authority), None) => authority.trim_end_matches('/').to_string(),
        (None, tenant) => format!(
            "{DEFAULT_OAUTH_AUTHORITY_BASE}/{}",
            tenant.as_deref().unwrap_or(DEFAULT_OAUTH_TENANT)
        ),
    };
    let device_authorization_endpoint = cx
        .url(
            "account.oauth.device_authorization_endpoint",
            raw.device_authorization_endpoint,
            http,
        )?
        .unwrap_or_else(|| format!("{authority}/oauth2/v2.0/devicecode"));
    let token_endpoint = cx
        .url("account.oauth.token_endpoint", raw.token_endpoint, http)?
        .unwrap_or_else(|| format!("{authority}/oauth2/v2.0/token"));
    let scope = cx
        .text("account.oauth.scope", raw.scope)?
        .unwrap_or_else(|| DEFAULT_OAUTH_SCOPE.into());
    Ok(OAuth {
        client_id,
        authority,
        device_authorization_endpoint,
        token_endpoint,
        scope,
    })
}

fn build_tls(raw: RawTls, cx: &Context<'_>) -> Result<Tls> {
    let mut pins = Vec::new();
    for pin in raw.pin_sha256.unwrap_or_default() {
        // The curl spelling `sha256//BASE64` is accepted too.
        let bare = pin.strip_prefix("sha256//").unwrap_or(&pin);
        let decoded = base64::engine::general_purpose::STANDARD.decode(bare);
        if bare.len() != 44 || !matches!(decoded, Ok(ref bytes) if bytes.len() == 32) {
            return Err(cx.invalid(
                "tls.pin_sha256",
                quoted(&pin),
                "each pin is the base64 of a SHA-256 (44 characters ending in =); get it with: \
                 openssl x509 -in server.pem -pubkey -noout | openssl pkey -pubin -outform der \
                 | openssl dgst -sha256 -binary | base64",
            ));
        }
        pins.push(bare.to_string());
    }
    let client_cert = cx.path("tls.client_cert", raw.client_cert)?;
    let client_key = cx.path("tls.client_key", raw.client_key)?;
    match (&client_cert, &client_key) {
        (Some(_), None) => {
            return Err(cx.missing(
                "tls.client_key",
                "tls.client_cert is set: add client_key = \"/etc/easync/client.key\" (its \
                 private key), or remove client_cert",
            ));
        }
        (None, Some(_)) => {
            return Err(cx.missing(
                "tls.client_cert",
                "tls.client_key is set: add client_cert = \"/etc/easync/client.pem\" (the \
                 certificate), or remove client_key",
            ));
        }
        _ => {}
    }
    Ok(Tls {
        ca_file: cx.path("tls.ca_file", raw.ca_file)?,
        pin_sha256: pins,
        client_cert,
        client_key,
        allow_insecure_http: raw.allow_insecure_http.unwrap_or(false),
    })
}

fn build_sync(raw: RawSync, cx: &Context<'_>) -> Result<SyncSettings> {
    let defaults = SyncSettings::default();
    let classes = match raw.classes {
        None => defaults.classes,
        Some(names) => {
            let mut chosen = Vec::new();
            for name in &names {
                match SyncClass::ALL.into_iter().find(|c| c.as_str() == name) {
                    Some(class) => chosen.push(class),
                    None => {
                        return Err(cx.invalid(
                            "sync.classes",
                            quoted(name),
                            one_of(SyncClass::ALL.iter().map(|c| c.as_str())),
                        ));
                    }
                }
            }
            if chosen.is_empty() {
                return Err(cx.invalid(
                    "sync.classes",
                    "[]".into(),
                    "list at least one of email, contacts, calendar, tasks, notes",
                ));
            }
            chosen.sort();
            chosen.dedup();
            chosen
        }
    };
    let patterns = |key: &str, list: Option<Vec<String>>| -> Result<Vec<String>> {
        let list = list.unwrap_or_default();
        for pattern in &list {
            if pattern.trim().is_empty() || pattern.chars().any(char::is_control) {
                return Err(cx.invalid(
                    key,
                    quoted(pattern),
                    "write a folder name pattern like \"Inbox\", \"Archive*\" or \"Inbox/*\"",
                ));
            }
        }
        Ok(list)
    };
    let include_folders = patterns("sync.include_folders", raw.include_folders)?;
    let exclude_folders = patterns("sync.exclude_folders", raw.exclude_folders)?;
    let age = |key: &str, value: Option<String>, allowed: &[AgeFilter]| -> Result<Option<_>> {
        let Some(value) = value else { return Ok(None) };
        match AgeFilter::parse(&value).filter(|a| allowed.contains(a)) {
            Some(age) => Ok(Some(age)),
            None => Err(cx.invalid(
                key,
                quoted(&value),
                one_of(allowed.iter().map(|a| a.as_str())),
            )),
        }
    };
    let mail_age =
        age("sync.mail_age", raw.mail_age, &AgeFilter::MAIL)?.unwrap_or(defaults.mail_age);
    let calendar_age = age("sync.calendar_age", raw.calendar_age, &AgeFilter::CALENDAR)?
        .unwrap_or(defaults.calendar_age);
    let body_size_limit = match raw.body_size_limit {
        None => None,
        Some(value) => {
            let bytes = match &value {
                NumberOrText::Number(n) => u64::try_from(*n).ok(),
                NumberOrText::Text(t) => parse_size(t),
            };
            match bytes.and_then(|b| u32::try_from(b).ok()).filter(|&b| b > 0) {
                Some(b) => Some(b),
                None => {
                    return Err(cx.invalid(
                        "sync.body_size_limit",
                        value.shown(),
                        "write a size in bytes from 1 to 4294967295, with an optional K, M or \
                         G suffix (\"64K\", \"1M\"); remove the key for whole bodies",
                    ));
                }
            }
        }
    };
    let conflict = cx
        .choice(
            "sync.conflict",
            raw.conflict,
            &[
                ("server-wins", ConflictPolicy::ServerWins),
                ("client-wins", ConflictPolicy::ClientWins),
            ],
        )?
        .unwrap_or_default();
    let resync_interval = match cx.duration("sync.resync_interval", raw.resync_interval)? {
        None => defaults.resync_interval,
        Some((d, _)) if d >= Duration::from_secs(60) => d,
        Some((_, written)) => {
            return Err(cx.invalid(
                "sync.resync_interval",
                written,
                "use at least 60 seconds (\"1m\"); push keeps the data fresh in between",
            ));
        }
    };
    Ok(SyncSettings {
        classes,
        include_folders,
        exclude_folders,
        mail_age,
        calendar_age,
        body_size_limit,
        conflict,
        resync_interval,
    })
}

fn build_push(raw: RawPush, cx: &Context<'_>) -> Result<Push> {
    let defaults = Push::default();
    let heartbeat = |key: &str, value: Option<NumberOrText>, default: Duration| -> Result<_> {
        let Some((d, written)) = cx.duration(key, value)? else {
            return Ok(default);
        };
        if d < HEARTBEAT_LOWEST || d > HEARTBEAT_HIGHEST {
            return Err(cx.invalid(
                key,
                written,
                "use 60 to 3540 seconds (\"1m\" to \"59m\"), the Ping heartbeat range",
            ));
        }
        Ok(d)
    };
    let push = Push {
        heartbeat_min: heartbeat(
            "push.heartbeat_min",
            raw.heartbeat_min,
            defaults.heartbeat_min,
        )?,
        heartbeat_max: heartbeat(
            "push.heartbeat_max",
            raw.heartbeat_max,
            defaults.heartbeat_max,
        )?,
        heartbeat_start: heartbeat(
            "push.heartbeat_start",
            raw.heartbeat_start,
            defaults.heartbeat_start,
        )?,
    };
    if push.heartbeat_min > push.heartbeat_max {
        return Err(ConfigError::Conflict {
            at: cx.at("push.heartbeat_min"),
            message: format!(
                "push.heartbeat_min ({}s) is above push.heartbeat_max ({}s): make min <= max",
                push.heartbeat_min.as_secs(),
                push.heartbeat_max.as_secs()
            ),
        });
    }
    if push.heartbeat_start < push.heartbeat_min || push.heartbeat_start > push.heartbeat_max {
        return Err(cx.invalid(
            "push.heartbeat_start",
            format!("{}s", push.heartbeat_start.as_secs()),
            format!(
                "use a value between push.heartbeat_min ({}s) and push.heartbeat_max ({}s)",
                push.heartbeat_min.as_secs(),
                push.heartbeat_max.as_secs()
            ),
        ));
    }
    Ok(push)
}

fn build_device(raw: RawDevice, cx: &Context<'_>) -> Result<Device> {
    let imei = cx.text("device.imei", raw.imei)?;
    if let Some(imei) = &imei {
        if !(14..=16).contains(&imei.len()) || !imei.bytes().all(|b| b.is_ascii_digit()) {
            return Err(cx.invalid(
                "device.imei",
                quoted(imei),
                "write the 15 digits of the IMEI (or 16 of the IMEISV), no spaces",
            ));
        }
    }
    let phone_number = cx.text("device.phone_number", raw.phone_number)?;
    if let Some(number) = &phone_number {
        let allowed = |c: char| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')');
        if number.len() > 32 || !number.chars().all(allowed) {
            return Err(cx.invalid(
                "device.phone_number",
                quoted(number),
                "write a phone number like \"+49 30 1234567\" (digits, +, spaces, -, parentheses)",
            ));
        }
    }
    let device_type = cx
        .text("device.device_type", raw.device_type)?
        .unwrap_or_else(|| DEFAULT_DEVICE_TYPE.into());
    if !valid_device_id(&device_type) {
        return Err(cx.invalid(
            "device.device_type",
            quoted(&device_type),
            "use 1 to 32 letters and digits (e.g. \"easync\", \"SmartPhone\")",
        ));
    }
    let device_id = cx.text("device.device_id", raw.device_id)?;
    if let Some(id) = &device_id {
        if !valid_device_id(id) {
            return Err(cx.invalid(
                "device.device_id",
                quoted(id),
                "use 1 to 32 letters and digits (no dashes, commas or other characters), or \
                 remove the key to derive it from /etc/machine-id",
            ));
        }
    }
    Ok(Device {
        model: cx.text("device.model", raw.model)?,
        os: cx.text("device.os", raw.os)?,
        os_language: cx.text("device.os_language", raw.os_language)?,
        friendly_name: cx.text("device.friendly_name", raw.friendly_name)?,
        imei,
        phone_number,
        device_type,
        device_id,
        roaming_file: cx.path("device.roaming_file", raw.roaming_file)?,
    })
}

// ---------------------------------------------------------------------------------------------
// The password file

/// Reads a password file, first checking it is safe to hold a secret when `check_access`.
fn read_password(path: &Path, check_access: bool) -> Result<Secret> {
    let refuse = |problem: String, fix: String| ConfigError::PasswordFile {
        path: path.to_path_buf(),
        problem,
        fix,
    };
    let file = File::open(path).map_err(|e| {
        refuse(
            format!("cannot open it: {e}"),
            format!(
                "create it with: install -m 600 /dev/null {0} && edit {0}",
                path.display()
            ),
        )
    })?;
    // Check the opened file itself, so a swap between check and read cannot fool us.
    let meta = file
        .metadata()
        .map_err(|e| refuse(format!("cannot inspect it: {e}"), "check the file".into()))?;
    if !meta.is_file() {
        return Err(refuse(
            "not a regular file".into(),
            "point account.password_file at a regular file holding the password".into(),
        ));
    }
    if check_access {
        check_password_file(meta.mode(), meta.uid(), nix::unistd::geteuid().as_raw()).map_err(
            |(problem, fix)| refuse(problem, fix.replace("FILE", &path.display().to_string())),
        )?;
    }
    let mut bytes = Vec::new();
    file.take(MAX_PASSWORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot read it: {e}"), "check the file".into()))?;
    if bytes.len() as u64 > MAX_PASSWORD_BYTES {
        return Err(refuse(
            format!("larger than {MAX_PASSWORD_BYTES} bytes"),
            "put only the password in it".into(),
        ));
    }
    let mut text = String::from_utf8(bytes).map_err(|_| {
        refuse(
            "not UTF-8 text".into(),
            "write the password as UTF-8 text".into(),
        )
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(refuse(
            "it is empty".into(),
            "write the password into it".into(),
        ));
    }
    Ok(Secret(text))
}

/// Whether a file of `mode` owned by `owner` may hold the password of a process running as
/// `euid`: no permission for group or others and no execute bit (0600, 0400 or stricter),
/// owned by the running user or root. On refusal: the problem and the fix (with `FILE`).
pub fn check_password_file(
    mode: u32,
    owner: u32,
    euid: u32,
) -> std::result::Result<(), (String, String)> {
    if mode & 0o177 != 0 {
        return Err((
            format!("its mode is {:04o}, readable by others", mode & 0o7777),
            "chmod 600 FILE".into(),
        ));
    }
    if owner != euid && owner != 0 {
        return Err((
            format!("it is owned by user id {owner}, not by the running user ({euid}) nor root"),
            format!("chown {euid} FILE"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Error locations

/// Maps a serde error (wrong shape or type) to a message naming the dotted key.
fn shape_error(
    origin: &str,
    text: &str,
    document: &DeTable<'_>,
    e: &toml::de::Error,
) -> ConfigError {
    let offset = e.span().map(|s| s.start);
    let at = at_offset(origin, text, offset);
    let key = offset.and_then(|o| key_at(document, o)).unwrap_or_default();
    let message = e.message().trim();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let key = if key.is_empty() {
            name.to_string()
        } else {
            key
        };
        let hint = if name.contains("password") || name.contains("secret") || name.contains("token")
        {
            "secrets never go in the configuration: put the password in a file of mode 0600 \
             and set account.password_file to its path"
                .to_string()
        } else {
            let expected = rest
                .split_once("expected one of ")
                .or_else(|| rest.split_once("expected "))
                .map(|(_, list)| list.replace('`', ""));
            match expected {
                Some(list) => format!("remove it, or use one of: {list}"),
                None => "remove it".to_string(),
            }
        };
        return ConfigError::UnknownKey { at, key, hint };
    }
    let value = e
        .span()
        .and_then(|s| text.get(s))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    ConfigError::Invalid {
        at,
        key: if key.is_empty() { "(file)".into() } else { key },
        value,
        fix: message.to_string(),
    }
}

/// The dotted key whose name or value covers byte `offset` (the innermost one).
fn key_at(document: &DeTable<'_>, offset: usize) -> Option<String> {
    fn visit(table: &DeTable<'_>, prefix: &str, offset: usize, best: &mut Option<(usize, String)>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            for span in [key.span(), value.span()] {
                if span.contains(&offset) || span.start == offset {
                    let len = span.len();
                    if best.as_ref().is_none_or(|(l, _)| len <= *l) {
                        *best = Some((len, path.clone()));
                    }
                }
            }
            match value.get_ref() {
                DeValue::Table(inner) => visit(inner, &path, offset, best),
                DeValue::Array(items) => {
                    for item in items {
                        if let DeValue::Table(inner) = item.get_ref() {
                            visit(inner, &path, offset, best);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut best = None;
    visit(document, "", offset, &mut best);
    best.map(|(_, path)| path)
}

/// The byte offset of a dotted key's value (or of the deepest part of it that is written).
fn span_of(document: &DeTable<'_>, key: &str) -> Option<usize> {
    let mut table = document;
    let mut found = None;
    for part in key.split('.').filter(|p| !p.is_empty()) {
        let (k, value) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        found = Some(if matches!(value.get_ref(), DeValue::Table(_)) {
            k.span().start
        } else {
            value.span().start
        });
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found
}

fn at_offset(origin: &str, text: &str, offset: Option<usize>) -> At {
    At {
        origin: origin.into(),
        line_column: offset.map(|o| line_column(text, o)),
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn quoted(text: &str) -> String {
    format!("{text:?}")
}

fn one_of<'a>(choices: impl Iterator<Item = &'a str>) -> String {
    format!("use one of {}", choices.collect::<Vec<_>>().join(", "))
}

// ---------------------------------------------------------------------------------------------
// [wipe]: the full remote wipe's target (the checks that need the file system are in
// `device::wipe`, run at start; the ones here need only the text).

/// Directories a directory wipe must never be, nor be above.
const PROTECTED_DIRS: [&str; 14] = [
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
    "/sys", "/usr", "/var",
];

/// System trees a directory wipe must never reach into.
const SYSTEM_TREES: [&str; 10] = [
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr",
];

/// `[wipe]`: what a full remote wipe erases and the hooks around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wipe {
    /// The block device (mode block), directory (mode directory) or LUKS container, a block
    /// device or a file (mode crypto-erase), to erase.
    pub target: PathBuf,
    pub mode: WipeMode,
    /// Where `target` is mounted: unmounted before a block wipe.
    pub mount_point: Option<PathBuf>,
    /// Run after a block wipe with the device appended as the last argument.
    pub mkfs: Option<Vec<String>>,
    pub pre_wipe: Option<Vec<String>>,
    pub post_wipe: Option<Vec<String>>,
}

/// `wipe.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WipeMode {
    Block,
    /// The LUKS key slots destroyed by the `storage_encryption` hook (`[hooks]`), which
    /// makes the encrypted data unreadable; easync then checks the header itself.
    CryptoErase,
    Directory,
}

impl WipeMode {
    pub const ALL: [WipeMode; 3] = [WipeMode::Block, WipeMode::CryptoErase, WipeMode::Directory];

    pub fn as_str(self) -> &'static str {
        match self {
            WipeMode::Block => "block",
            WipeMode::CryptoErase => "crypto-erase",
            WipeMode::Directory => "directory",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWipe {
    target: Option<String>,
    mode: Option<String>,
    mount_point: Option<String>,
    mkfs: Option<Vec<String>>,
    pre_wipe: Option<Vec<String>>,
    post_wipe: Option<Vec<String>>,
}

fn build_wipe(raw: RawWipe, data_dir: &Path, hooks: &Hooks, cx: &Context<'_>) -> Result<Wipe> {
    let mode = match cx.text("wipe.mode", raw.mode)? {
        None => {
            return Err(cx.missing(
                "wipe.mode",
                "write mode = \"block\" (a data partition), \"directory\" or \"crypto-erase\"",
            ));
        }
        Some(text) => match WipeMode::ALL.into_iter().find(|m| m.as_str() == text) {
            Some(mode) => mode,
            None => {
                let choices = WipeMode::ALL.iter().map(|m| m.as_str());
                return Err(cx.invalid("wipe.mode", quoted(&text), one_of(choices)));
            }
        },
    };
    if mode == WipeMode::CryptoErase && hooks.storage_encryption.is_none() {
        return Err(cx.invalid(
            "wipe.mode",
            quoted(mode.as_str()),
            "a crypto-erase is done by the storage_encryption hook: set hooks.storage_encryption \
             (board/hooks/storage-encryption-luks can do it) or use mode = \"block\"",
        ));
    }
    let Some(target) = cx.path("wipe.target", raw.target)? else {
        return Err(cx.missing(
            "wipe.target",
            "write the data partition (e.g. target = \"/dev/mmcblk0p4\") or the directory to erase",
        ));
    };
    let shown = quoted(&target.display().to_string());
    let plain = target.components().all(|c| {
        matches!(
            c,
            std::path::Component::RootDir | std::path::Component::Normal(_)
        )
    });
    if !plain || target.as_os_str().len() > 1 && target.to_string_lossy().ends_with('/') {
        return Err(cx.invalid(
            "wipe.target",
            shown,
            "write the path without `.`, `..`, `//` or a trailing /",
        ));
    }
    if target == Path::new("/") {
        return Err(cx.invalid(
            "wipe.target",
            shown,
            "never the root directory: name the data partition or a data directory",
        ));
    }
    if mode == WipeMode::Directory {
        if let Some(dir) = PROTECTED_DIRS
            .iter()
            .find(|d| Path::new(d).starts_with(&target))
        {
            return Err(cx.invalid(
                "wipe.target",
                shown,
                format!("a directory wipe would erase {dir}: name a data directory below it"),
            ));
        }
        if let Some(tree) = SYSTEM_TREES.iter().find(|d| target.starts_with(d)) {
            return Err(cx.invalid(
                "wipe.target",
                shown,
                format!("it lies in the system's {tree}: name a data directory"),
            ));
        }
        if data_dir.starts_with(&target) {
            return Err(cx.invalid(
                "wipe.target",
                shown,
                format!(
                    "it holds storage.data_dir ({}), where the wipe keeps its progress: name the \
                     data directory beside it or move storage.data_dir",
                    data_dir.display()
                ),
            ));
        }
    }
    let mount_point = cx.path("wipe.mount_point", raw.mount_point)?;
    if let Some(mount) = &mount_point {
        if mode != WipeMode::Block {
            return Err(cx.invalid(
                "wipe.mount_point",
                quoted(&mount.display().to_string()),
                "only a block wipe unmounts: remove the key or use mode = \"block\"",
            ));
        }
        if mount == Path::new("/") {
            return Err(cx.invalid(
                "wipe.mount_point",
                quoted("/"),
                "the root file system is never wiped: name the data partition's mount point",
            ));
        }
    }
    let mkfs = argv(cx, "wipe.mkfs", raw.mkfs)?;
    if mkfs.is_some() && mode != WipeMode::Block {
        return Err(cx.invalid(
            "wipe.mkfs",
            "[...]".into(),
            "only a block wipe makes a new file system: remove the key or use mode = \"block\"",
        ));
    }
    Ok(Wipe {
        target,
        mode,
        mount_point,
        mkfs,
        pre_wipe: argv(cx, "wipe.pre_wipe", raw.pre_wipe)?,
        post_wipe: argv(cx, "wipe.post_wipe", raw.post_wipe)?,
    })
}

/// A hook's argv: an absolute program path first, then its arguments (never a shell line).
fn argv(cx: &Context<'_>, key: &str, value: Option<Vec<String>>) -> Result<Option<Vec<String>>> {
    let Some(value) = value else { return Ok(None) };
    let Some(program) = value.first() else {
        return Err(cx.invalid(
            key,
            "[]".into(),
            "name the program: [\"/usr/lib/easync/hook\"]",
        ));
    };
    if !program.starts_with('/') || program.chars().any(char::is_whitespace) {
        return Err(cx.invalid(
            key,
            quoted(program),
            "the first element is the program's absolute path (no shell: put each argument in \
             its own element)",
        ));
    }
    if value.iter().any(|a| a.contains('\0')) {
        return Err(cx.invalid(key, quoted(program), "remove the NUL characters"));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, "test.toml", None)
    }

    const MINIMAL: &str =
        "[account]\nemail = \"j.doe@example.com\"\npassword_file = \"/etc/easync/password\"\n";

    fn with(extra: &str) -> Result<Config> {
        parse(&format!("{MINIMAL}{extra}"))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("480"), Some(Duration::from_secs(480)));
        assert_eq!(parse_duration("8m"), Some(Duration::from_secs(480)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("45s"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration(" 8m "), Some(Duration::from_secs(480)));
        for bad in ["", "m", "8x", "8 m", "-5", "1.5h", "8mm", "h8"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("1 MB"), Some(1 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("10B"), Some(10));
        for bad in ["", "K", "1T", "1.5M", "-1", "1KK"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("Inbox", "inbox"));
        assert!(pattern_matches("Arch*", "Archive 2024"));
        assert!(pattern_matches("*", ""));
        assert!(pattern_matches("a*b*c", "aXXbYYc"));
        assert!(pattern_matches("?nbox", "Inbox"));
        assert!(!pattern_matches("?nbox", "nbox"));
        assert!(!pattern_matches("Inbox", "Inbox2"));
        assert!(!pattern_matches("a*b", "aXXbc"));
        assert!(pattern_matches("ÄRGER*", "ärger und so"));
    }

    #[test]
    fn folder_rule() {
        let sync = SyncSettings {
            include_folders: vec!["Inbox".into(), "Inbox/*".into(), "Calendar".into()],
            exclude_folders: vec!["Spam*".into(), "Inbox/Old".into()],
            ..SyncSettings::default()
        };
        assert!(sync.folder_selected(&["Inbox"]));
        assert!(sync.folder_selected(&["Inbox", "Projects"]));
        assert!(!sync.folder_selected(&["Inbox", "Old"]));
        assert!(!sync.folder_selected(&["Archive"]));
        assert!(!sync.folder_selected(&["Inbox", "Spam filter"]));
        assert!(!sync.folder_selected(&[]));
        let all = SyncSettings::default();
        assert!(all.folder_selected(&["Anything", "Deep"]));
    }

    #[test]
    fn device_id_derivation() {
        let id = derive_device_id("0123456789abcdef0123456789abcdef\n").unwrap();
        assert_eq!(id.len(), 32);
        assert!(valid_device_id(&id));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        // Stable, case-insensitive on input, and different per machine.
        assert_eq!(
            id,
            derive_device_id("0123456789ABCDEF0123456789ABCDEF").unwrap()
        );
        assert_ne!(
            id,
            derive_device_id("1123456789abcdef0123456789abcdef").unwrap()
        );
        assert!(
            !id.contains("0123456789"),
            "the machine id must not show through"
        );
        assert!(derive_device_id("short").is_err());
        assert!(derive_device_id("0123456789abcdef0123456789abcdeg").is_err());
    }

    #[test]
    fn device_id_derivation_matches_hmac_definition() {
        // Recompute the documented rule independently of derive_device_id.
        let key =
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"00000000000000000000000000000001");
        let tag = ring::hmac::sign(&key, b"easync device id v1");
        let expected: String = tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(
            derive_device_id("00000000000000000000000000000001").unwrap(),
            expected
        );
    }

    #[test]
    fn device_id_rules() {
        assert!(valid_device_id("a"));
        assert!(valid_device_id(&"A".repeat(32)));
        assert!(!valid_device_id(""));
        assert!(!valid_device_id(&"A".repeat(33)));
        assert!(!valid_device_id("abc-def"));
        assert!(!valid_device_id("abc,def"));
        assert!(!valid_device_id("äbc"));
    }

    #[test]
    fn password_file_rule() {
        assert!(check_password_file(0o100600, 1000, 1000).is_ok());
        assert!(check_password_file(0o100400, 1000, 1000).is_ok());
        assert!(check_password_file(0o100600, 0, 1000).is_ok());
        let (problem, fix) = check_password_file(0o100644, 1000, 1000).unwrap_err();
        assert!(problem.contains("0644"), "{problem}");
        assert_eq!(fix, "chmod 600 FILE");
        assert!(check_password_file(0o100640, 1000, 1000).is_err());
        assert!(check_password_file(0o100700, 1000, 1000).is_err());
        let (problem, fix) = check_password_file(0o100600, 1001, 1000).unwrap_err();
        assert!(problem.contains("1001"), "{problem}");
        assert_eq!(fix, "chown 1000 FILE");
        // Root may read only root's files (or its own, which are the same).
        assert!(check_password_file(0o100600, 1000, 0).is_err());
    }

    #[test]
    fn minimal_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.account().email, "j.doe@example.com");
        assert_eq!(c.account().user, "j.doe@example.com");
        assert_eq!(c.account().server, None);
        assert_eq!(
            c.account().auth,
            AuthSource::PasswordFile("/etc/easync/password".into())
        );
        assert_eq!(c.account().query_form, QueryForm::Plain);
        assert_eq!(c.tls(), &Tls::default());
        assert_eq!(c.data_dir(), Path::new("/var/lib/easync"));
        assert_eq!(c.sync(), &SyncSettings::default());
        assert_eq!(c.push(), &Push::default());
        assert_eq!(c.device(), &Device::default());
        assert_eq!(c.origin(), "test.toml");
    }

    #[test]
    fn server_url_gets_activesync_path() {
        let c = with("server = \"https://mail.example.com\"\n").unwrap();
        assert_eq!(
            c.account().server.as_deref(),
            Some("https://mail.example.com/Microsoft-Server-ActiveSync")
        );
        let c = with("server = \"https://mail.example.com/\"\n").unwrap();
        assert_eq!(
            c.account().server.as_deref(),
            Some("https://mail.example.com/Microsoft-Server-ActiveSync")
        );
        let c = with("server = \"https://x.org/eas/Microsoft-Server-ActiveSync\"\n").unwrap();
        assert_eq!(
            c.account().server.as_deref(),
            Some("https://x.org/eas/Microsoft-Server-ActiveSync")
        );
        let e = with("server = \"mail.example.com\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("account.server = \"mail.example.com\""), "{e}");
        assert!(e.contains("https://mail.example.com"), "{e}");
        let e = with("server = \"http://mail.example.com\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_insecure_http"), "{e}");
        let c = with("server = \"http://127.0.0.1:8080\"\n[tls]\nallow_insecure_http = true\n")
            .unwrap();
        assert_eq!(
            c.account().server.as_deref(),
            Some("http://127.0.0.1:8080/Microsoft-Server-ActiveSync")
        );
    }

    #[test]
    fn error_locations() {
        let e = with("[sync]\nmail_age = \"2y\"\n").unwrap_err();
        assert_eq!(e.key(), Some("sync.mail_age"));
        let ConfigError::Invalid { at, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(at.line_column, Some((5, 12)));
        let e = error("[account]\nemail = \"a@b\"\npassword_file = \"/p\"\nfoo = 1\n");
        assert!(
            e.starts_with("test.toml:4:1: unknown key `account.foo`"),
            "{e}"
        );
    }

    #[test]
    fn key_lookup() {
        let text = "[a]\nb = 1\n[a.c]\nd = \"x\"\n";
        let doc = DeTable::parse(text).unwrap();
        let doc = doc.get_ref();
        assert_eq!(
            key_at(doc, text.find("d =").unwrap()).as_deref(),
            Some("a.c.d")
        );
        assert_eq!(key_at(doc, text.find("1").unwrap()).as_deref(), Some("a.b"));
        assert_eq!(line_column(text, span_of(doc, "a.c.d").unwrap()), (4, 5));
    }

    #[test]
    fn secret_is_hidden() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn hooks_must_be_absolute_private_executables() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("easync-config-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hook = dir.join("lock");
        std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
        let mode = |m: u32| std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(m));
        let table = |key: &str, path: &str| format!("[hooks]\n{key} = {path:?}\n");
        let shown = hook.display().to_string();

        mode(0o755).unwrap();
        let c = with(&format!(
            "{}timeout = \"5s\"\n",
            table("device_lock", &shown)
        ))
        .unwrap();
        assert_eq!(c.hooks().device_lock.as_deref(), Some(hook.as_path()));
        assert_eq!(c.hooks().timeout, Duration::from_secs(5));
        assert!(c.hooks().any());
        let c = with("").unwrap();
        assert!(!c.hooks().any());
        assert_eq!(c.hooks().timeout, DEFAULT_HOOK_TIMEOUT);

        let e = error(&format!("{MINIMAL}{}", table("policy", "hooks/lock")));
        assert!(
            e.contains("hooks.policy") && e.contains("absolute path"),
            "{e}"
        );
        mode(0o775).unwrap();
        let e = error(&format!("{MINIMAL}{}", table("storage_encryption", &shown)));
        assert!(
            e.contains("hooks.storage_encryption") && e.contains("chmod go-w"),
            "{e}"
        );
        mode(0o644).unwrap();
        let e = error(&format!("{MINIMAL}{}", table("device_lock", &shown)));
        assert!(
            e.contains("not executable") && e.contains("chmod 755"),
            "{e}"
        );
        let e = error(&format!(
            "{MINIMAL}{}",
            table("device_lock", dir.to_str().unwrap())
        ));
        assert!(e.contains("not a regular file"), "{e}");
        // A directory on the way that others may write into.
        mode(0o755).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = error(&format!("{MINIMAL}{}", table("device_lock", &shown)));
        assert!(
            e.contains("others can replace the hook") && e.contains("chmod go-w"),
            "{e}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(
            with(&table("device_lock", &shown)).is_ok(),
            "sticky, like /tmp"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = error(&format!(
            "{MINIMAL}{}",
            table("device_lock", "/nonexistent/hook")
        ));
        assert!(e.contains("install the hook"), "{e}");
        let e = error(&format!("{MINIMAL}[hooks]\ntimeout = \"20m\"\n"));
        assert!(
            e.contains("hooks.timeout") && e.contains("1 to 600 seconds"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wipe_section() {
        let c = with(
            "[wipe]\nmode = \"block\"\ntarget = \"/dev/mmcblk0p4\"\nmount_point = \"/data\"\n\
             mkfs = [\"/usr/sbin/mkfs.ext4\", \"-q\"]\npre_wipe = [\"/usr/lib/easync/pre\"]\n",
        )
        .unwrap();
        let wipe = c.wipe().unwrap();
        assert_eq!(wipe.mode, WipeMode::Block);
        assert_eq!(wipe.target, Path::new("/dev/mmcblk0p4"));
        assert_eq!(wipe.mount_point.as_deref(), Some(Path::new("/data")));
        assert_eq!(wipe.mkfs.as_ref().unwrap().len(), 2);
        assert_eq!(wipe.post_wipe, None);
        assert!(with("").unwrap().wipe().is_none());
        let dir = with("[wipe]\nmode = \"directory\"\ntarget = \"/srv/mail\"\n").unwrap();
        assert_eq!(dir.wipe().unwrap().mode, WipeMode::Directory);
    }

    #[test]
    fn crypto_erase_needs_the_storage_encryption_hook() {
        let hook =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("board/hooks/storage-encryption-luks");
        let wipe = "[wipe]\nmode = \"crypto-erase\"\ntarget = \"/dev/mmcblk0p3\"\n";
        let e = with(wipe).unwrap_err();
        assert_eq!(e.key(), Some("wipe.mode"), "{e}");
        assert!(
            e.to_string().contains("set hooks.storage_encryption"),
            "{e}"
        );
        let c = with(&format!(
            "[hooks]\nstorage_encryption = {:?}\n{wipe}",
            hook.display().to_string()
        ))
        .unwrap();
        assert_eq!(c.wipe().unwrap().mode, WipeMode::CryptoErase);
        assert_eq!(
            c.hooks().storage_encryption.as_deref(),
            Some(hook.as_path())
        );
        let e = with(&format!(
            "[hooks]\nstorage_encryption = {:?}\n{wipe}mkfs = [\"/sbin/mkfs.ext4\"]\n",
            hook.display().to_string()
        ))
        .unwrap_err();
        assert_eq!(e.key(), Some("wipe.mkfs"), "{e}");
    }

    #[test]
    fn wipe_refusals_name_the_key_and_the_fix() {
        let refused = |extra: &str, key: &str, fix: &str| {
            let e = with(extra).unwrap_err();
            assert_eq!(e.key(), Some(key), "{e}");
            assert!(e.to_string().contains(fix), "{extra}: {e}");
        };
        refused(
            "[wipe]\nmode = \"block\"\ntarget = \"/\"\n",
            "wipe.target",
            "never the root",
        );
        refused(
            "[wipe]\nmode = \"directory\"\ntarget = \"data\"\n",
            "wipe.target",
            "absolute path",
        );
        refused(
            "[wipe]\nmode = \"block\"\ntarget = \"/dev/../dev/sda\"\n",
            "wipe.target",
            "without `.`, `..`",
        );
        for above in ["/etc", "/usr", "/var", "/boot", "/run"] {
            let extra = format!("[wipe]\nmode = \"directory\"\ntarget = \"{above}\"\n");
            refused(&extra, "wipe.target", "a directory wipe would erase");
        }
        for inside in ["/usr/lib", "/etc/easync", "/proc/1", "/boot/efi"] {
            let extra = format!("[wipe]\nmode = \"directory\"\ntarget = \"{inside}\"\n");
            refused(&extra, "wipe.target", "lies in the system's");
        }
        // The data directory's parents (default /var/lib/easync).
        for parent in ["/var/lib", "/var/lib/easync"] {
            let extra = format!("[wipe]\nmode = \"directory\"\ntarget = \"{parent}\"\n");
            refused(&extra, "wipe.target", "storage.data_dir");
        }
        refused(
            "[wipe]\nmode = \"erase\"\ntarget = \"/srv\"\n",
            "wipe.mode",
            "crypto-erase",
        );
        refused("[wipe]\ntarget = \"/srv\"\n", "wipe.mode", "write mode");
        refused(
            "[wipe]\nmode = \"block\"\n",
            "wipe.target",
            "data partition",
        );
        refused(
            "[wipe]\nmode = \"block\"\ntarget = \"/dev/sdb1\"\npre_wipe = [\"wipe-hook\"]\n",
            "wipe.pre_wipe",
            "absolute path",
        );
        refused(
            "[wipe]\nmode = \"block\"\ntarget = \"/dev/sdb1\"\nmkfs = [\"/sbin/mkfs -t ext4\"]\n",
            "wipe.mkfs",
            "no shell",
        );
        refused(
            "[wipe]\nmode = \"directory\"\ntarget = \"/srv/mail\"\nmount_point = \"/srv\"\n",
            "wipe.mount_point",
            "only a block wipe",
        );
        refused(
            "[wipe]\nmode = \"block\"\ntarget = \"/dev/sdb1\"\nmount_point = \"/\"\n",
            "wipe.mount_point",
            "root file system",
        );
        refused(
            "[wipe]\nmode = \"block\"\ntarget = \"/dev/sdb1\"\npost_wipe = []\n",
            "wipe.post_wipe",
            "name the program",
        );
    }
}
