//! A small EAS client for the conversation tests: the `eas` request writers and response
//! readers driven over a `transport::Session`, the way the engine will drive them. It keeps
//! what each exchange returned so tests can look at it.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use easync::eas::folder::{self, Folder, FolderChange, FolderSyncResponse, FolderType};
use easync::eas::item::{Class, LargeValue};
use easync::eas::provision::{self, AckStatus};
use easync::eas::settings::DeviceInformation;
use easync::eas::sync::{
    self, ClientResponse, CollectionHeader, CollectionRequest, ServerChange, ServerItem,
    SyncHandler, SyncOptions, SyncOutcome, SyncRequest,
};
use easync::eas::{self, ProtocolVersion, Sink};
use easync::engine::provision::{Enforcer, EngineProvisioner, Outcome};
use easync::transport::{self, Auth, Client, Config, Provisioner, Secret, Session};

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Where and who.
#[derive(Debug, Clone)]
pub struct Account {
    pub url: String,
    pub user: String,
    pub password: String,
    pub device_id: String,
    /// Trust this CA (the lab's or the peer's self-signed certificate) for https.
    pub ca_file: Option<PathBuf>,
}

impl Account {
    pub fn config(&self) -> Config {
        let mut config = Config::new(&self.url, &self.user, &self.device_id);
        config.auth = Auth::Basic {
            password: Secret::new(self.password.clone()),
        };
        config.device_type = "easynctest".into();
        config.allow_insecure_http = self.url.starts_with("http://");
        config.tls.ca_file = self.ca_file.clone();
        config
    }

    /// A session at the version the server and easync have in common.
    pub fn session(&self, cap: Option<ProtocolVersion>) -> Session {
        self.session_with(cap, |_| {})
    }

    /// Like [`Account::session`], with the configuration adjusted first (query form, ...).
    pub fn session_with(
        &self,
        cap: Option<ProtocolVersion>,
        adjust: impl FnOnce(&mut Config),
    ) -> Session {
        let mut config = self.config();
        adjust(&mut config);
        let client = Client::new(config).expect("transport client");
        let mut session = Session::new(client, ProtocolVersion::V16_1);
        session
            .negotiate(cap, TIMEOUT)
            .expect("OPTIONS negotiation");
        session
    }
}

/// A unique device id per test run, so server-side device state never leaks between runs.
pub fn device_id(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}{:x}{:x}", std::process::id(), nanos & 0xffff_ffff)
}

pub fn device_information() -> DeviceInformation {
    DeviceInformation {
        model: Some("QEMU virt".into()),
        friendly_name: Some("easync test device".into()),
        os: Some("Linux".into()),
        os_language: Some("English".into()),
        user_agent: Some("easync-test".into()),
        ..DeviceInformation::default()
    }
}

/// How a provisioning round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    Key(String),
    NoPolicy,
    Wiped(provision::WipeDirective),
}

/// Provisions with a fixed acknowledgement (the device layer decides it in the product)
/// through the engine's provisioner, and records what happened.
pub struct TestProvisioner {
    pub ack: AckStatus,
    pub wipe_status: provision::WipeStatus,
    pub rounds: u32,
    pub last: Option<Provisioned>,
    pub policies: Vec<eas::policy::Policy>,
}

impl Default for TestProvisioner {
    fn default() -> Self {
        TestProvisioner {
            ack: AckStatus::Applied,
            wipe_status: provision::WipeStatus::Succeeded,
            rounds: 0,
            last: None,
            policies: Vec::new(),
        }
    }
}

/// The fixed answers of a [`TestProvisioner`].
struct Fixed {
    ack: AckStatus,
    wipe_status: provision::WipeStatus,
}

impl Enforcer for Fixed {
    fn apply(&mut self, _policy: &eas::policy::Policy) -> AckStatus {
        self.ack
    }
    fn wipe_requested(&mut self, _directive: provision::WipeDirective) -> provision::WipeStatus {
        self.wipe_status
    }
}

impl Provisioner for TestProvisioner {
    fn provision(&mut self, session: &mut Session) -> transport::Result<()> {
        self.rounds += 1;
        let mut fixed = Fixed {
            ack: self.ack,
            wipe_status: self.wipe_status,
        };
        let mut engine = EngineProvisioner::new(&mut fixed, device_information());
        let result = engine.provision(session);
        if let Some(policy) = engine.policy.take() {
            self.policies.push(policy);
        }
        self.last = match engine.outcome.take() {
            Some(Outcome::Key(k)) => Some(Provisioned::Key(k)),
            Some(Outcome::NoPolicy) => Some(Provisioned::NoPolicy),
            Some(Outcome::Wiped(d, _)) => Some(Provisioned::Wiped(d)),
            None => self.last.take(),
        };
        result
    }
}

/// FolderSync from `key` through `execute` (so 449/142-144 provision first).
pub fn folder_sync(
    session: &mut Session,
    prov: &mut TestProvisioner,
    key: &str,
) -> FolderSyncResponse {
    session
        .execute(
            |s| folder::folder_sync_request(s.version, key),
            folder::read_folder_sync_response,
            prov,
            TIMEOUT,
        )
        .expect("FolderSync")
}

/// The folder list after a FolderSync from "0".
pub fn folders(response: &FolderSyncResponse) -> Vec<Folder> {
    response
        .changes
        .iter()
        .filter_map(|c| match c {
            FolderChange::Add(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

pub fn folder_of_type(folders: &[Folder], t: FolderType) -> Folder {
    folders
        .iter()
        .find(|f| f.folder_type == t)
        .unwrap_or_else(|| panic!("no {t:?} folder in {folders:?}"))
        .clone()
}

/// Everything a Sync handed to its handler, with streamed bodies keyed by ServerId.
#[derive(Default, Debug)]
pub struct Collected {
    pub added: Vec<ServerItem>,
    pub changed: Vec<ServerItem>,
    pub deleted: Vec<String>,
    pub responses: Vec<ClientResponse>,
    pub headers: Vec<CollectionHeader>,
    pub bodies: HashMap<String, Vec<u8>>,
    current: Vec<u8>,
    current_id: String,
}

impl Collected {
    fn flush_body(&mut self) {
        if !self.current.is_empty() {
            let body = std::mem::take(&mut self.current);
            self.bodies.insert(self.current_id.clone(), body);
        }
    }

    /// Text of a property (first match by page and name) of an added item.
    pub fn text_of(item: &ServerItem, page: u8, name: &str) -> Option<String> {
        fn walk(node: &eas::Node, tag: easync::wbxml::Tag) -> Option<String> {
            if node.tag == tag {
                return node.text().map(String::from);
            }
            node.children().iter().find_map(|c| walk(c, tag))
        }
        let tag = easync::wbxml::Tag::by_name(easync::wbxml::tags::page(page)?.name, name)?;
        walk(&item.data.as_ref()?.node, tag)
    }
}

impl SyncHandler for Collected {
    fn server_change(&mut self, _collection_id: &str, change: ServerChange) -> eas::Result<()> {
        match change {
            ServerChange::Add(item) => {
                self.current_id = item.server_id.clone();
                self.flush_body();
                self.added.push(item);
            }
            ServerChange::Change(item) => {
                self.current_id = item.server_id.clone();
                self.flush_body();
                self.changed.push(item);
            }
            ServerChange::Delete { server_id, .. } | ServerChange::SoftDelete { server_id } => {
                self.deleted.push(server_id)
            }
        }
        Ok(())
    }

    fn client_response(
        &mut self,
        _collection_id: &str,
        response: ClientResponse,
    ) -> eas::Result<()> {
        if let ClientResponse::Fetch { item, .. } = &response {
            self.current_id = item.server_id.clone();
            self.flush_body();
        }
        self.responses.push(response);
        Ok(())
    }

    fn body_sink(
        &mut self,
        _collection_id: &str,
        _server_id: &str,
        value: &LargeValue,
    ) -> Option<&mut dyn Sink> {
        match value {
            LargeValue::Body { .. } | LargeValue::Mime => {
                self.current.clear();
                Some(&mut self.current)
            }
            _ => None,
        }
    }

    fn end_collection(&mut self, header: &CollectionHeader) -> eas::Result<()> {
        self.headers.push(header.clone());
        Ok(())
    }
}

/// One Sync exchange.
pub fn sync_once(
    session: &mut Session,
    prov: &mut TestProvisioner,
    req: &SyncRequest,
    out: &mut Collected,
) -> SyncOutcome {
    session
        .execute(
            |s| sync::request(s.version, req),
            |p| sync::read_response(p, out),
            prov,
            TIMEOUT,
        )
        .expect("Sync")
}

/// Syncs one collection from "0" until the server has nothing more (no changes and no
/// MoreAvailable, or an empty body); returns the final SyncKey and everything received.
pub fn sync_collection(
    session: &mut Session,
    prov: &mut TestProvisioner,
    collection_id: &str,
    class: Class,
    options: Option<SyncOptions>,
) -> (String, Collected) {
    let mut out = Collected::default();
    let initial = SyncRequest {
        collections: vec![CollectionRequest::initial(collection_id, class)],
        ..SyncRequest::default()
    };
    let mut key = match sync_once(session, prov, &initial, &mut out) {
        SyncOutcome::Response(r) => r.collections[0]
            .sync_key
            .clone()
            .expect("first Sync gives a key"),
        SyncOutcome::Unchanged => panic!("the first Sync came back empty"),
    };
    for _round in 0..100 {
        let before = out.added.len() + out.changed.len() + out.deleted.len();
        let mut c = CollectionRequest::new(&key, collection_id, class);
        c.get_changes = Some(true);
        c.window_size = Some(25);
        c.options = options.clone();
        let req = SyncRequest {
            collections: vec![c],
            ..SyncRequest::default()
        };
        match sync_once(session, prov, &req, &mut out) {
            SyncOutcome::Unchanged => return (key, out),
            SyncOutcome::Response(r) => {
                let Some(h) = r.collections.first() else {
                    return (key, out);
                };
                assert_eq!(h.status(), sync::Status::Success, "{h:?}");
                if let Some(k) = &h.sync_key {
                    key = k.clone();
                }
                let progressed = out.added.len() + out.changed.len() + out.deleted.len() > before;
                if !h.more_available && !progressed {
                    return (key, out);
                }
            }
        }
    }
    panic!("collection {collection_id} never finished syncing");
}

/// ItemOperations Fetch of one item's body (`body_type`), optionally asking for a multipart
/// response; returns the response, the body bytes the sink received and whether the server
/// answered in the multipart form.
pub fn fetch_body(
    session: &mut Session,
    collection_id: &str,
    server_id: &str,
    body_type: easync::eas::item::BodyType,
    multipart: bool,
) -> (easync::eas::itemops::Response, Vec<u8>, bool) {
    use easync::eas::itemops::{Fetch, FetchTarget};
    let mut fetch = Fetch::new(FetchTarget::Item {
        collection_id: collection_id.into(),
        server_id: server_id.into(),
    });
    fetch.body_preferences = vec![easync::eas::item::BodyPreference::new(body_type)];
    if body_type == easync::eas::item::BodyType::Mime {
        fetch.mime_support = Some(2);
    }
    send_fetch(session, fetch, multipart)
}

/// ItemOperations with one Fetch (an item, an attachment by FileReference or a search
/// result), asking for a multipart response or not, which the lab must honour; returns the
/// response and the bytes the sink received (the body or the attachment content).
pub fn item_operations_fetch(
    session: &mut Session,
    fetch: easync::eas::itemops::Fetch,
    multipart: bool,
) -> (easync::eas::itemops::Response, Vec<u8>) {
    let (response, data, was_multipart) = send_fetch(session, fetch, multipart);
    assert_eq!(
        was_multipart, multipart,
        "the response is multipart exactly when asked"
    );
    (response, data)
}

/// Sends one Fetch and reads the answer in whichever form the server chose.
fn send_fetch(
    session: &mut Session,
    fetch: easync::eas::itemops::Fetch,
    multipart: bool,
) -> (easync::eas::itemops::Response, Vec<u8>, bool) {
    use easync::eas::itemops::{self, OneSink, Operation};
    let version = session.state().version;
    let mut request = itemops::request(version, &[Operation::Fetch(fetch)]).unwrap();
    if multipart {
        request.params.push(("AcceptMultiPart", "T".into()));
    }
    let mut response = session
        .send(&request, None, TIMEOUT)
        .expect("ItemOperations");
    let mut data = Vec::new();
    let was_multipart = response.is_multipart();
    let result = if was_multipart {
        let len = response.content_length;
        let input = easync::wbxml::FromStd(response.body());
        let mut parts = easync::eas::multipart::MultipartReader::new(
            input,
            easync::eas::multipart::DEFAULT_MAX_PARTS,
            len,
        )
        .expect("multipart table");
        itemops::read_multipart_response(
            &mut parts,
            eas::Limits::default(),
            &mut OneSink(&mut data),
        )
    } else {
        itemops::read_response(&mut response.parser(version), &mut OneSink(&mut data))
    }
    .expect("ItemOperations response");
    (result, data, was_multipart)
}
