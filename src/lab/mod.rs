//! easync-lab: a reference Exchange ActiveSync server on loopback, for tests and OEM CI.
//!
//! It speaks EAS 12.1, 14.0, 14.1, 16.0 and 16.1 (MS-ASHTTP, MS-ASCMD, MS-ASPROV, MS-ASAIRS)
//! over HTTP and HTTPS, keeps everything in memory, and is deterministic for a given seed. It
//! shares `wbxml` and `eas` (command names, tags, item classes, status codes, the request
//! parser) with the client and nothing of the client side. Threads, not async: an accept
//! loop per listener and a thread per connection; Ping and waiting Syncs sleep on one
//! condition variable that every change signals.
//!
//! # Use
//!
//! In-process: [`Server::start`] with a [`Config`] (ports 0 = ephemeral) gives a [`Handle`]
//! with the URLs, the CA certificate, direct admin methods and [`Handle::shutdown`]. From
//! scripts: `easync-lab serve` prints one `KIND ADDR` line per listener, and the other
//! subcommands drive a running lab through the admin API.
//!
//! # Endpoints
//!
//! ActiveSync listeners (HTTP and HTTPS): `/Microsoft-Server-ActiveSync` and its alias
//! (default `/lab-alias/Microsoft-Server-ActiveSync`, where a 451 redirect points), plus
//! `GET /ca.pem`. Paths compare case-insensitively. Also Autodiscover (POST
//! `/autodiscover/autodiscover.xml`, see [`autodiscover`]) and the OAuth device flow
//! (`/oauth2/v2.0/devicecode`, `/oauth2/v2.0/token`, see [`oauth`]).
//!
//! Admin listener (HTTP, JSON):
//!
//! | Method and path | Body | Answer |
//! |---|---|---|
//! | `GET /state` | | policy, devices (keys, acks, DeviceInformation, wipe, wipe_acks, per collection the SyncKey, item count and last FilterType), folders with counts, faults |
//! | `GET /ca.pem` | | the lab CA certificate (PEM) |
//! | `POST /client-cert` | `{"common_name": "..."}` | `{"cert_pem", "key_pem"}` signed by the lab CA |
//! | `GET /items?folder=ID` | | the items of a folder (all without `folder`) |
//! | `POST /items` | `{"folder", "props"?, "body"?, "html"?, "subject"?, "from"?, "to"?, "attachments"?: [{"name", "content_type"?, "data"? or "base64"?}]}` | `{"server_id"}` |
//! | `PUT /items/{id}` | `{"props"?, "body"?}` | `{}` |
//! | `DELETE /items/{id}` | | `{}` |
//! | `POST /folders` | `{"name", "parent"?: "0", "type"?: 12}` | `{"server_id"}` |
//! | `PUT /folders/{id}` | `{"name", "parent"?}` | `{}` |
//! | `DELETE /folders/{id}` | | `{}` |
//! | `PUT /policy` | `{"settings"?: {"DevicePasswordEnabled": 1, ...}, "require_full_compliance"?: bool}` | `{"generation"}` |
//! | `POST /wipe` | `{"device_id"?, "account_only"?: false}` | `{"devices": n}` |
//! | `POST /faults` | `{"kind", "count"?: 1, "command"?, "location"?, "retry_after"?, "delay_ms"?, "size"?}` | `{}` |
//! | `DELETE /faults` | | `{}` |
//! | `POST /oauth/approve`, `/oauth/deny`, `/oauth/expire` | `{"user_code"}` | `{}` |
//!
//! Fault kinds: `retry-with` (HTTP 449), `redirect` (451 + X-MS-Location), `throttle` (503 +
//! Retry-After), `server-error` (500), `slow` (delay, then the normal answer), `reset`
//! (headers and half the body, then the connection closes), `truncate` (a valid prefix of
//! the WBXML with a matching Content-Length), `garbage` (junk bytes with 200 and the WBXML
//! content type), `captive-portal` (200 with an HTML sign-in page), `empty` (200 with no
//! body). `retry-with`, `redirect`, `throttle`, `server-error`, `captive-portal` and
//! `empty` answer before the request is processed; `reset`, `truncate` and `garbage`
//! after (so the state moves on, as with a real network failure). Faults apply to POSTed
//! commands only; OPTIONS gets only `captive-portal` and `empty` faults that name it as
//! their command.
//!
//! The hostile mode: faults that test a client's bounds (`src/lab/hostile.rs`). `huge-string`
//! (the command's Status as one inline string of `size` bytes, default 1 GB, streamed),
//! `huge-string-table` (a string table announced as `size` bytes, default 1 GB),
//! `deep-nesting` (the root element `size` deep, default 10,000), `many-folders` (FolderSync
//! with `size` new folders, default 100,000), `many-adds` (Sync with `size` Adds, default
//! 1,000,000, whatever the WindowSize), `huge-server-id` (one Add with a ServerId of `size`
//! bytes, default 1 MB), `endless-more` (Sync: MoreAvailable, the same SyncKey, nothing
//! else), `ping-loop` (Ping: Status 2 for the folders asked, nothing changed),
//! `sync-key-reset` (Sync: Status 3), `stall` (headers and half the body, then silence for
//! `delay_ms`, default 600,000, the connection open) and `truncated-gzip` (half of the
//! gzip-compressed body, with a matching Content-Length). The kinds that name a command
//! (FolderSync, Sync, Ping) answer other commands normally; `stall` and `truncated-gzip`
//! act after the request is processed, the others instead of it.
//!
//! # Behaviour worth knowing (and where it deviates from Exchange)
//!
//! - Missing DeviceId: HTTP 400 (Exchange; SOGo answers 500 — configurable with
//!   [`Config::missing_device_id_status`]). Missing DeviceType or Cmd, a bad query, an
//!   unsupported or missing MS-ASProtocolVersion: HTTP 400. Unknown Cmd, or Find before 16.1:
//!   HTTP 501. A body that is not WBXML, or has the wrong root element: HTTP 400.
//! - OPTIONS needs authentication, as on Exchange. Basic accepts the full address or its
//!   local part as the user name. A Bearer token listed as expired gets 401 with
//!   `error="invalid_token"`. The `User` query parameter is not compared with the
//!   authenticated user.
//! - Policy keys: with a policy, every command but Ping and Provision needs the final key
//!   from X-MS-PolicyKey (or the base64 query). On 12.1 any problem is HTTP 449; on 14.0 and
//!   later the command's own root element carries Status 142 (no key, or only the temporary
//!   one), 144 (an unknown key), 143 (the key predates an admin policy change) or 140 (a wipe
//!   is pending). MoveItems and MeetingResponse put that Status directly under their root
//!   (Exchange does the same; their schemas do not list it). With an empty policy Provision
//!   answers Policy Status 2 without a key and no key is enforced (like SOGo).
//! - Provision: acknowledgement statuses 1–4 are recorded. With
//!   `require_full_compliance`, 2 and 3 are answered with Provision Status 139 and no key.
//!   Acknowledging a key that is not the temporary one gives Policy Status 5. On 14.1+ with
//!   [`Config::require_device_information`], an initial Provision without DeviceInformation
//!   gets Status 165. DeviceInformation inside Provision before 14.1 is a protocol error (2).
//! - Wipe: a pending wipe makes Provision answer with RemoteWipe (or AccountOnlyRemoteWipe
//!   for 16.1); the acknowledgement is recorded (every status in `wipe_acks`) and forgets
//!   the device's policy key. A device that comes back after its acknowledgement gets the
//!   directive again (140, then RemoteWipe in Provision), as Exchange does. An
//!   account-only wipe is never delivered to a client older than 16.1 (it stays pending and
//!   blocks nothing for it).
//! - Sync: SyncKeys look like `{1A2B3C4D}7`. A CollectionId that does not exist gets Status
//!   12. Collection children out of the MS-ASCMD order are a protocol error (Status 4 for the
//!   whole Sync). Changes go out deletes first, then changes (with every property, not only
//!   the changed ones), then adds (mail newest first). A client Change of an item changed on the
//!   server since the client's SyncKey is a conflict: with Options Conflict 0 the client's
//!   version is kept, otherwise (1 or absent, as MS-ASCMD says) the change gets Status 7 and
//!   the server's version goes out in the same response; client Deletes always apply. An Add
//!   whose ClientId the collection already answered gets the same ServerId again and no new
//!   item, whatever SyncKey it comes with — even after a resync from SyncKey "0" — so a
//!   client resending after a crash makes no duplicate (Exchange documents neither a resend
//!   with a newer SyncKey nor one after a resync; a client there may see a duplicate when an
//!   Add's answer is lost and the folder is then resynced). With Wait/HeartbeatInterval and
//!   nothing to say, the request waits;
//!   on expiry the answer is an empty body. Items that leave the filter window are not
//!   soft-deleted. RTF bodies (Type 3) are never offered; MIME (Type 4) only with
//!   MIMESupport 2. Empty and Partial Sync requests reuse the last full request; without
//!   one they get Status 13.
//! - Ping: a folder the device never synchronized counts as changed when it holds items.
//!   [`Config::time_scale`] shortens every Ping and waiting Sync by its factor (soak runs).
//! - An empty Provision body gets the wipe directive when one is due, else Status 2.
//! - SendMail/SmartReply/SmartForward store the message (Sent Items with SaveInSentItems, the
//!   Inbox when the lab user is a recipient); nothing leaves the lab. Success is an empty
//!   200, as on Exchange; a repeated ClientId gets 118, no recipient 119, an unknown source
//!   150. On 12.1 failures are HTTP 500.
//! - ItemOperations: Fetch of items (CollectionId+ServerId or a Search LongId) and
//!   attachments (FileReference, with Range), inline (base64 `Data`) or multipart;
//!   EmptyFolderContents. Conversation Move and document libraries are not offered (Status 2
//!   and 9).
//! - Search: GAL matches a prefix of a name word, alias or address; Mailbox matches free text
//!   in subjects, bodies and addresses (no date ranges, no ConversationId). Find (16.1) does
//!   the same for its Mailbox and GAL criteria.
//! - MeetingResponse works on calendar items and on meeting-request mails (MessageClass
//!   `IPM.Schedule.Meeting.Request...`); nothing is sent to the organizer.
//! - Not implemented: GetAttachment, ValidateCert, SoftDelete,
//!   ConversationMode, pictures, availability, rights management.
//! - Request bodies are read into memory, up to [`Config::max_body`] (413 beyond). Each
//!   connection has its own thread; keep-alive connections stay open until the client
//!   closes them or the lab shuts down.

mod admin;
pub mod autodiscover;
mod folders;
mod hostile;
mod http;
mod lookup;
mod mail;
pub mod model;
pub mod oauth;
mod ping;
mod protocol;
mod provision;
mod render;
pub mod seed;
mod server;
pub mod state;
mod sync;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::wbxml::ProtocolVersion;

pub use server::{Handle, Server};
pub use state::{Fault, FaultKind, NewItem};

/// When a Sync that changes nothing gets an empty HTTP body instead of Status 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptySync {
    /// Always Status 1 with the collections and no Commands.
    Never,
    /// An empty body when every collection of the request is Contacts or Calendar (SOGo).
    ContactsCalendar,
    /// An empty body whenever nothing changed.
    Always,
}

/// The lab's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// ActiveSync over HTTP (None: no such listener). Port 0 picks a free one.
    pub http: Option<SocketAddr>,
    /// ActiveSync over HTTPS.
    pub https: Option<SocketAddr>,
    /// The admin JSON API.
    pub admin: Option<SocketAddr>,
    /// Where to write the CA certificate (PEM) for clients to trust.
    pub cert_out: Option<PathBuf>,
    /// Require a TLS client certificate issued by the lab CA on the HTTPS listener.
    pub require_client_cert: bool,
    /// The versions announced and accepted.
    pub versions: Vec<ProtocolVersion>,
    /// (user, password); the first user's name is the mailbox address.
    pub users: Vec<(String, String)>,
    /// Valid OAuth bearer tokens.
    pub bearer_tokens: Vec<String>,
    /// Tokens that are answered as expired (401 invalid_token).
    pub expired_tokens: Vec<String>,
    pub seed: u64,
    /// How many mails to generate (half as many contacts, a quarter as many events, tasks
    /// and notes).
    pub items: usize,
    /// The EASProvisionDoc settings; empty = no policy.
    pub policy: Vec<(String, String)>,
    pub require_full_compliance: bool,
    /// 14.1+: refuse an initial Provision without DeviceInformation (Status 165).
    pub require_device_information: bool,
    /// Heartbeat bounds for Ping and Sync HeartbeatInterval, in seconds (Exchange: 60..3540).
    pub ping_min_heartbeat: u32,
    pub ping_max_heartbeat: u32,
    /// Divides how long a Ping, or a Sync with Wait/HeartbeatInterval, waits for changes
    /// before it expires (1 = real time; 0 counts as 1). The heartbeat asked for is still
    /// checked against the bounds above, so a client keeps its MS-ASCMD 60–3540 s while a
    /// soak run compresses time: with 60, a 3540 s heartbeat expires after 59 s.
    pub time_scale: u32,
    pub ping_max_folders: usize,
    /// Compress responses when the client accepts gzip.
    pub gzip: bool,
    pub empty_sync: EmptySync,
    /// The largest request body accepted.
    pub max_body: usize,
    /// The second path that serves ActiveSync (the default 451 target).
    pub alias_path: String,
    /// The HTTP status for a request without DeviceId.
    pub missing_device_id_status: u16,
    /// Write every ActiveSync response body (before any injected fault) to this folder as
    /// `NNNNNN-Command-Version.wbxml` (or `.multipart`): wire captures for debugging and
    /// seed corpora for the fuzzers.
    pub capture_dir: Option<PathBuf>,
    /// Extra host names in the HTTPS certificate (besides localhost and 127.0.0.1), e.g. the
    /// domains an Autodiscover test resolves to the lab.
    pub tls_names: Vec<String>,
    /// What is wrong with the HTTPS server certificate, for certificate tests.
    pub server_cert: ServerCert,
    /// Put before the ServerId of every folder made through the admin API (and so before
    /// the ServerIds of the items in them), for tests of hostile identifiers: `/`, `..`,
    /// newlines, `%`, long ones. The seeded folders keep their plain ids.
    pub folder_id_prefix: String,
    /// The Autodiscover service (`/autodiscover/autodiscover.xml`).
    pub autodiscover: autodiscover::Settings,
    /// The OAuth device flow and token endpoints (`/oauth2/v2.0/...`).
    pub oauth: oauth::Settings,
}

/// The path of the ActiveSync endpoint.
pub const EAS_PATH: &str = "/Microsoft-Server-ActiveSync";

/// A policy like a typical corporate one.
pub fn default_policy() -> Vec<(String, String)> {
    [
        ("DevicePasswordEnabled", "1"),
        ("AlphanumericDevicePasswordRequired", "0"),
        ("RequireStorageCardEncryption", "0"),
        ("PasswordRecoveryEnabled", "0"),
        ("AttachmentsEnabled", "1"),
        ("MinDevicePasswordLength", "4"),
        ("MaxInactivityTimeDeviceLock", "900"),
        ("MaxDevicePasswordFailedAttempts", "8"),
        ("AllowSimpleDevicePassword", "1"),
        ("DevicePasswordExpiration", "0"),
        ("DevicePasswordHistory", "0"),
        ("AllowCamera", "1"),
        ("RequireDeviceEncryption", "0"),
        ("AllowHTMLEmail", "1"),
        ("MaxEmailAgeFilter", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Default for Config {
    fn default() -> Self {
        let loopback = |port| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        Config {
            http: loopback(0),
            https: loopback(0),
            admin: loopback(0),
            cert_out: None,
            require_client_cert: false,
            versions: vec![
                ProtocolVersion::V12_1,
                ProtocolVersion::V14_0,
                ProtocolVersion::V14_1,
                ProtocolVersion::V16_0,
                ProtocolVersion::V16_1,
            ],
            users: vec![("lab@example.com".into(), "labpass".into())],
            bearer_tokens: Vec::new(),
            expired_tokens: Vec::new(),
            seed: 1,
            items: 20,
            policy: default_policy(),
            require_full_compliance: false,
            require_device_information: true,
            ping_min_heartbeat: 60,
            ping_max_heartbeat: 3540,
            time_scale: 1,
            ping_max_folders: 300,
            gzip: true,
            empty_sync: EmptySync::Never,
            max_body: 32 * 1024 * 1024,
            alias_path: "/lab-alias/Microsoft-Server-ActiveSync".into(),
            missing_device_id_status: 400,
            capture_dir: None,
            tls_names: Vec::new(),
            server_cert: ServerCert::Valid,
            folder_id_prefix: String::new(),
            autodiscover: autodiscover::Settings::default(),
            oauth: oauth::Settings::default(),
        }
    }
}

/// The HTTPS server certificate the lab presents (always issued by the lab CA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerCert {
    /// Valid now, for localhost, 127.0.0.1 and [`Config::tls_names`].
    #[default]
    Valid,
    /// Valid only during 2020.
    Expired,
    /// Valid now, but only for `wrong-host.invalid`.
    WrongHost,
}

/// How long a Ping or waiting Sync of `secs` really waits under [`Config::time_scale`].
fn scaled_wait(config: &Config, secs: u64) -> std::time::Duration {
    std::time::Duration::from_secs(secs) / config.time_scale.max(1)
}

/// The running lab as the request handlers see it.
pub struct Lab {
    pub config: Config,
    pub shared: state::Shared,
    authority: tls::Authority,
    started: Instant,
    started_unix: i64,
    /// Tokens issued by the OAuth endpoints (valid for Bearer authentication).
    pub oauth: oauth::State,
    /// The HTTPS listener's address (what Autodiscover announces).
    https_addr: Option<SocketAddr>,
}

impl Lab {
    /// The lab's clock in Unix seconds.
    pub fn now(&self) -> i64 {
        self.started_unix + self.started.elapsed().as_secs() as i64
    }

    /// The URL of the alias path on the listener this request came in on.
    fn alias_url(&self, req: &http::Request) -> String {
        let scheme = if req.secure { "https" } else { "http" };
        let host = req.header("Host").unwrap_or("127.0.0.1");
        format!("{scheme}://{host}{}", self.config.alias_path)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
