//! The lab's whole state, in memory behind one mutex: the mailbox (folders and items), the
//! policy, the devices that have talked to the lab (policy keys, acknowledgements, wipe, sync
//! states), injected faults, and a condition variable that wakes Ping and waiting Syncs on
//! every change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::model::{Attachment, Class, Folder, Item, Prop};
use super::sync::CollectionRequest;
use crate::wbxml::ProtocolVersion;

/// A small deterministic generator (splitmix64): the same seed gives the same mailbox, keys
/// and ids.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A policy key: a nonzero 32-bit number.
    pub fn policy_key(&mut self) -> u32 {
        (self.next_u64() as u32).max(1)
    }
}

/// The security policy the lab hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// EASProvisionDoc elements, name to value, in order. Empty: "no policy for this
    /// client" (Policy Status 2) and no key enforcement, as SOGo does.
    pub settings: Vec<(String, String)>,
    /// Bumped when the admin changes the policy; a key issued for an older one gets 143/144.
    pub generation: u32,
    /// Answer an acknowledgement of 2 (partial) with Provision Status 139.
    pub require_full_compliance: bool,
}

/// A remote wipe's progress for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wipe {
    None,
    /// Requested by the admin; the next Provision carries the directive.
    Pending {
        account_only: bool,
    },
    /// The directive was sent; waiting for the client's acknowledgement.
    Sent {
        account_only: bool,
    },
    /// The client acknowledged with this status.
    Acknowledged {
        account_only: bool,
        status: u32,
    },
}

/// What the lab remembers of one collection for one device.
#[derive(Debug, Clone, Default)]
pub struct CollectionState {
    pub sync_key: String,
    /// ServerId → revision, as the client has it after `sync_key`.
    pub known: BTreeMap<String, u64>,
    /// The key before the last one and what the client had then, so one retry of the last
    /// batch succeeds (as Exchange allows).
    pub previous: Option<(String, BTreeMap<String, u64>)>,
    pub counter: u64,
    pub filter_type: u8,
    /// ClientId → ServerId of the client's Adds, so a retried Add makes no duplicate.
    pub client_ids: BTreeMap<String, String>,
}

/// The folder hierarchy as one device knows it.
#[derive(Debug, Clone, Default)]
pub struct Hierarchy {
    /// 0: never synced.
    pub key: u64,
    pub known: BTreeMap<String, Folder>,
}

/// A Ping's parameters, kept so an empty Ping can reuse them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingParams {
    pub heartbeat: u32,
    pub folders: Vec<String>,
}

/// One device (DeviceId) that talked to the lab.
#[derive(Debug, Clone)]
pub struct Device {
    pub device_id: String,
    pub device_type: String,
    pub user: String,
    pub version: Option<ProtocolVersion>,
    pub temporary_key: Option<u32>,
    pub policy_key: Option<u32>,
    pub policy_generation: u32,
    pub acks: Vec<u32>,
    /// The status of every wipe acknowledgement, in order.
    pub wipe_acks: Vec<u32>,
    pub device_information: Vec<(String, String)>,
    pub wipe: Wipe,
    pub hierarchy: Hierarchy,
    pub collections: HashMap<String, CollectionState>,
    pub last_ping: Option<PingParams>,
    pub last_sync: Option<Vec<CollectionRequest>>,
    pub requests: u64,
}

impl Device {
    fn new(device_id: &str, device_type: &str, user: &str) -> Device {
        Device {
            device_id: device_id.to_string(),
            device_type: device_type.to_string(),
            user: user.to_string(),
            version: None,
            temporary_key: None,
            policy_key: None,
            policy_generation: 0,
            acks: Vec::new(),
            wipe_acks: Vec::new(),
            device_information: Vec::new(),
            wipe: Wipe::None,
            hierarchy: Hierarchy::default(),
            collections: HashMap::new(),
            last_ping: None,
            last_sync: None,
            requests: 0,
        }
    }

    fn to_json(&self) -> Json {
        let wipe = match self.wipe {
            Wipe::None => json!(null),
            Wipe::Pending { account_only } => {
                json!({"state": "pending", "account_only": account_only})
            }
            Wipe::Sent { account_only } => json!({"state": "sent", "account_only": account_only}),
            Wipe::Acknowledged {
                account_only,
                status,
            } => json!({"state": "acknowledged", "account_only": account_only, "status": status}),
        };
        let info: serde_json::Map<String, Json> = self
            .device_information
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        json!({
            "device_id": self.device_id,
            "device_type": self.device_type,
            "user": self.user,
            "protocol_version": self.version.map(|v| v.as_str()),
            "policy_key": self.policy_key.map(|k| k.to_string()),
            "policy_generation": self.policy_generation,
            "acks": self.acks,
            "device_information": info,
            "wipe": wipe,
            "wipe_acks": self.wipe_acks,
            "hierarchy_sync_key": self.hierarchy.key,
            "collections": self.collections.iter().map(|(id, c)| (id.clone(), json!({
                "sync_key": c.sync_key, "items": c.known.len(), "filter_type": c.filter_type}))).collect::<serde_json::Map<_, _>>(),
            "requests": self.requests,
        })
    }
}

/// What a fault does to the next matching request(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// HTTP 449 (Retry With), as 12.1 servers demand provisioning.
    RetryWith,
    /// HTTP 451 with X-MS-Location.
    Redirect,
    /// HTTP 503 with Retry-After.
    Throttle,
    /// HTTP 500.
    ServerError,
    /// Delay the (normal) response by `delay_ms`.
    Slow,
    /// Send the headers and half the body, then close the connection.
    Reset,
    /// Send a valid prefix of the WBXML body with a matching Content-Length.
    Truncate,
    /// Send garbage bytes with HTTP 200 and the WBXML content type.
    Garbage,
    /// Answer HTTP 200 with an HTML login page, as a captive portal (hotel or train Wi-Fi)
    /// does to every request until the user signs in.
    CaptivePortal,
    /// Answer HTTP 200 with an empty body, also where the command needs one.
    Empty,
    /// The command's Status as one inline string of `size` bytes (default 1 GB), streamed.
    HugeString,
    /// A WBXML string table announced as `size` bytes (default 1 GB), streamed.
    HugeStringTable,
    /// The command's root element nested `size` deep (default 10,000).
    DeepNesting,
    /// FolderSync answered with `size` new folders (default 100,000).
    ManyFolders,
    /// Sync answered with `size` Adds (default 1,000,000) for the first collection asked,
    /// whatever WindowSize the client sent; streamed.
    ManyAdds,
    /// Sync answered with one Add whose ServerId is `size` bytes (default 1 MB).
    HugeServerId,
    /// Sync answered with MoreAvailable, the same SyncKey and nothing else: no progress.
    EndlessMore,
    /// Ping answered with Status 2 (changes) for the folders asked, though nothing changed.
    PingLoop,
    /// Sync answered with Status 3 (invalid SyncKey) for the first collection asked.
    SyncKeyReset,
    /// Headers and half the body, then nothing more for `delay_ms` (default 600,000) with
    /// the connection held open: a stalled peer or a slow loris.
    Stall,
    /// The gzip-compressed body cut in half, with a Content-Length that matches the cut.
    TruncatedGzip,
}

/// An injected fault (admin `POST /faults`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    /// How many requests it applies to (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// Only requests of this command (`Sync`, `Ping` ...); any command when absent.
    #[serde(default)]
    pub command: Option<String>,
    /// For `redirect`: the X-MS-Location URL (default: the lab's alias path).
    #[serde(default)]
    pub location: Option<String>,
    /// For `throttle`: the Retry-After value, seconds or an HTTP date (default "1").
    #[serde(default)]
    pub retry_after: Option<String>,
    /// For `slow` and `stall`: the delay in milliseconds (default 500 and 600,000).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// For the hostile kinds: bytes, depth or count (each kind's default when absent).
    #[serde(default)]
    pub size: Option<u64>,
}

impl FaultKind {
    /// The name used in the admin API.
    pub const fn name(self) -> &'static str {
        match self {
            FaultKind::RetryWith => "retry-with",
            FaultKind::Redirect => "redirect",
            FaultKind::Throttle => "throttle",
            FaultKind::ServerError => "server-error",
            FaultKind::Slow => "slow",
            FaultKind::Reset => "reset",
            FaultKind::Truncate => "truncate",
            FaultKind::Garbage => "garbage",
            FaultKind::CaptivePortal => "captive-portal",
            FaultKind::Empty => "empty",
            FaultKind::HugeString => "huge-string",
            FaultKind::HugeStringTable => "huge-string-table",
            FaultKind::DeepNesting => "deep-nesting",
            FaultKind::ManyFolders => "many-folders",
            FaultKind::ManyAdds => "many-adds",
            FaultKind::HugeServerId => "huge-server-id",
            FaultKind::EndlessMore => "endless-more",
            FaultKind::PingLoop => "ping-loop",
            FaultKind::SyncKeyReset => "sync-key-reset",
            FaultKind::Stall => "stall",
            FaultKind::TruncatedGzip => "truncated-gzip",
        }
    }
}

fn one() -> u32 {
    1
}

impl Fault {
    pub fn new(kind: FaultKind) -> Fault {
        Fault {
            kind,
            count: 1,
            command: None,
            location: None,
            retry_after: None,
            delay_ms: None,
            size: None,
        }
    }

    fn to_json(&self) -> Json {
        json!({"kind": self.kind.name(), "count": self.count, "command": self.command,
               "location": self.location, "retry_after": self.retry_after, "delay_ms": self.delay_ms,
               "size": self.size})
    }
}

/// Out-of-office settings (Settings Oof).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Oof {
    pub state: u8,
    pub start: Option<String>,
    pub end: Option<String>,
    /// (AppliesTo element name, enabled, reply message, body type).
    pub messages: Vec<(String, bool, String, String)>,
}

/// A person of the lab's directory (GAL search, ResolveRecipients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub display_name: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub title: String,
    pub company: String,
    pub alias: String,
}

/// Everything the lab knows.
pub struct State {
    pub folders: Vec<Folder>,
    pub items: BTreeMap<String, Item>,
    pub policy: Policy,
    pub devices: BTreeMap<String, Device>,
    pub faults: Vec<Fault>,
    pub oof: Oof,
    pub directory: Vec<Person>,
    /// ClientIds of messages already sent (SendMail 118).
    pub sent_client_ids: HashSet<String>,
    pub rng: Rng,
    /// Bumped on every change of content; waiters compare it.
    pub generation: u64,
    pub next_revision: u64,
    pub next_item: u64,
    pub next_folder: u64,
    pub shutdown: bool,
    /// The lab user's address (the first configured user).
    pub user_email: String,
    /// Put before the ServerIds of folders made through the admin API
    /// ([`super::Config::folder_id_prefix`]).
    pub folder_id_prefix: String,
}

/// The state with its lock and change signal.
pub struct Shared {
    pub state: Mutex<State>,
    pub changed: Condvar,
}

impl Shared {
    pub fn new(state: State) -> Shared {
        Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// Locks the state (a poisoned lock is taken over: the state stays usable for tests).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits, with `st` unlocked, until the state changes, the lab shuts down or `timeout`
    /// passes (Ping, waiting Syncs); gives the lock back.
    pub fn wait_for_change<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        let generation = st.generation;
        let (guard, _) = self
            .changed
            .wait_timeout_while(st, timeout, |s| s.generation == generation && !s.shutdown)
            .unwrap_or_else(|p| p.into_inner());
        guard
    }
}

/// Why an admin change was refused.
pub type AdminResult<T> = Result<T, String>;

/// A new item from the admin API or the library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewItem {
    pub folder_id: String,
    pub props: Vec<Prop>,
    pub body: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

impl State {
    pub fn new(seed: u64, user_email: &str) -> State {
        State {
            folders: Vec::new(),
            items: BTreeMap::new(),
            policy: Policy {
                settings: Vec::new(),
                generation: 1,
                require_full_compliance: false,
            },
            devices: BTreeMap::new(),
            faults: Vec::new(),
            folder_id_prefix: String::new(),
            oof: Oof::default(),
            directory: Vec::new(),
            sent_client_ids: HashSet::new(),
            rng: Rng::new(seed),
            generation: 0,
            next_revision: 1,
            next_item: 1,
            next_folder: 100,
            shutdown: false,
            user_email: user_email.to_string(),
        }
    }

    /// Marks a change (the caller notifies the condition variable).
    pub fn touch(&mut self) {
        self.generation += 1;
    }

    pub fn folder(&self, id: &str) -> Option<&Folder> {
        self.folders.iter().find(|f| f.server_id == id)
    }

    /// The device, created on first sight.
    pub fn device(&mut self, device_id: &str, device_type: &str, user: &str) -> &mut Device {
        self.devices
            .entry(device_id.to_string())
            .or_insert_with(|| Device::new(device_id, device_type, user))
    }

    pub fn revision(&mut self) -> u64 {
        self.next_revision += 1;
        self.next_revision
    }

    /// Adds an item; returns its ServerId.
    pub fn add_item(&mut self, new: NewItem, filter_time: i64) -> AdminResult<String> {
        let folder = self
            .folder(&new.folder_id)
            .ok_or_else(|| format!("no folder {:?}", new.folder_id))?;
        let class = folder
            .class()
            .ok_or_else(|| format!("folder {:?} holds no items", new.folder_id))?;
        let server_id = format!("{}:{}", folder.server_id, self.next_item);
        self.next_item += 1;
        let revision = self.revision();
        self.items.insert(
            server_id.clone(),
            Item {
                server_id: server_id.clone(),
                folder_id: new.folder_id,
                class,
                props: new.props,
                body_text: new.body,
                body_html: new.html,
                attachments: new.attachments,
                mime: None,
                filter_time,
                revision,
            },
        );
        self.touch();
        Ok(server_id)
    }

    /// Replaces or merges properties of an item; `body` replaces the text body.
    pub fn change_item(
        &mut self,
        server_id: &str,
        props: Vec<Prop>,
        body: Option<String>,
    ) -> AdminResult<()> {
        let revision = self.revision();
        let item = self
            .items
            .get_mut(server_id)
            .ok_or_else(|| format!("no item {server_id:?}"))?;
        for p in props {
            super::model::set_prop(&mut item.props, p);
        }
        if let Some(b) = body {
            item.body_text = b;
            item.mime = None;
        }
        item.revision = revision;
        self.touch();
        Ok(())
    }

    pub fn delete_item(&mut self, server_id: &str) -> AdminResult<Item> {
        let item = self
            .items
            .remove(server_id)
            .ok_or_else(|| format!("no item {server_id:?}"))?;
        self.touch();
        Ok(item)
    }

    /// Moves an item to another folder; returns its new ServerId.
    pub fn move_item(&mut self, server_id: &str, to_folder: &str) -> AdminResult<String> {
        let mut item = self.delete_item(server_id)?;
        let new_id = format!("{}:{}", to_folder, self.next_item);
        self.next_item += 1;
        item.server_id = new_id.clone();
        item.folder_id = to_folder.to_string();
        item.revision = self.revision();
        self.items.insert(new_id.clone(), item);
        Ok(new_id)
    }

    pub fn add_folder(
        &mut self,
        parent_id: &str,
        name: &str,
        folder_type: u8,
    ) -> AdminResult<String> {
        if parent_id != "0" && self.folder(parent_id).is_none() {
            return Err(format!("no parent folder {parent_id:?}"));
        }
        if self
            .folders
            .iter()
            .any(|f| f.parent_id == parent_id && f.name == name)
        {
            return Err(format!("a folder {name:?} exists there already"));
        }
        let server_id = format!("{}{}", self.folder_id_prefix, self.next_folder);
        self.next_folder += 1;
        self.folders.push(Folder {
            server_id: server_id.clone(),
            parent_id: parent_id.to_string(),
            name: name.to_string(),
            folder_type,
        });
        self.touch();
        Ok(server_id)
    }

    pub fn update_folder(&mut self, id: &str, parent_id: &str, name: &str) -> AdminResult<()> {
        if parent_id != "0" && self.folder(parent_id).is_none() {
            return Err(format!("no parent folder {parent_id:?}"));
        }
        let folder = self
            .folders
            .iter_mut()
            .find(|f| f.server_id == id)
            .ok_or_else(|| format!("no folder {id:?}"))?;
        folder.parent_id = parent_id.to_string();
        folder.name = name.to_string();
        self.touch();
        Ok(())
    }

    /// Deletes a folder, its subfolders and their items.
    pub fn delete_folder(&mut self, id: &str) -> AdminResult<()> {
        if self.folder(id).is_none() {
            return Err(format!("no folder {id:?}"));
        }
        let mut doomed = vec![id.to_string()];
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i].clone();
            doomed.extend(
                self.folders
                    .iter()
                    .filter(|f| f.parent_id == parent)
                    .map(|f| f.server_id.clone()),
            );
            i += 1;
        }
        self.folders.retain(|f| !doomed.contains(&f.server_id));
        self.items.retain(|_, it| !doomed.contains(&it.folder_id));
        self.touch();
        Ok(())
    }

    pub fn set_policy(&mut self, settings: Vec<(String, String)>) {
        self.policy.settings = settings;
        self.policy.generation += 1;
        self.touch();
    }

    /// Requests a wipe of one device or (None) of every known device; returns how many.
    pub fn request_wipe(
        &mut self,
        device_id: Option<&str>,
        account_only: bool,
    ) -> AdminResult<usize> {
        let mut n = 0;
        for d in self.devices.values_mut() {
            if device_id.is_none_or(|id| id == d.device_id) {
                d.wipe = Wipe::Pending { account_only };
                n += 1;
            }
        }
        if n == 0 {
            return Err(match device_id {
                Some(id) => format!("no device {id:?} has talked to the lab"),
                None => "no device has talked to the lab yet".into(),
            });
        }
        self.touch();
        Ok(n)
    }

    /// The next fault aimed at OPTIONS by name (faults for any command leave OPTIONS alone).
    pub fn take_options_fault(&mut self) -> Option<Fault> {
        self.take_fault_where(|c| c.is_some_and(|c| c.eq_ignore_ascii_case("OPTIONS")))
    }

    /// Takes the first fault that applies to `command`, counting it down.
    pub fn take_fault(&mut self, command: &str) -> Option<Fault> {
        self.take_fault_where(|c| c.is_none_or(|c| c.eq_ignore_ascii_case(command)))
    }

    /// Uses up once the first fault whose command matches `aimed`.
    fn take_fault_where(&mut self, aimed: impl Fn(Option<&str>) -> bool) -> Option<Fault> {
        let index = self
            .faults
            .iter()
            .position(|f| aimed(f.command.as_deref()))?;
        let fault = self.faults[index].clone();
        self.faults[index].count = self.faults[index].count.saturating_sub(1);
        if self.faults[index].count == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }

    /// The admin view of everything.
    pub fn to_json(&self) -> Json {
        let mut counts = serde_json::Map::new();
        for f in &self.folders {
            counts.insert(
                f.server_id.clone(),
                self.items
                    .values()
                    .filter(|i| i.folder_id == f.server_id)
                    .count()
                    .into(),
            );
        }
        let policy: serde_json::Map<String, Json> = self
            .policy
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        json!({
            "policy": {
                "settings": policy,
                "generation": self.policy.generation,
                "require_full_compliance": self.policy.require_full_compliance,
            },
            "devices": self.devices.values().map(Device::to_json).collect::<Vec<_>>(),
            "folders": self.folders.iter().map(|f| json!({
                "server_id": f.server_id, "parent_id": f.parent_id, "name": f.name,
                "type": f.folder_type, "class": f.class().map(Class::as_str),
                "items": counts.get(&f.server_id).cloned().unwrap_or(json!(0)),
            })).collect::<Vec<_>>(),
            "item_count": self.items.len(),
            "faults": self.faults.iter().map(Fault::to_json).collect::<Vec<_>>(),
            "oof_state": self.oof.state,
            "user": self.user_email,
        })
    }
}
