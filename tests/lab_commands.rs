#![cfg(feature = "lab")]
//! Protocol conversations for every command between the real client (`eas` + `transport`)
//! and an in-process easync-lab, over HTTP and over HTTPS (trusting the lab CA), checking
//! both what the client read and what the lab holds afterwards.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::client::{self, Account, Collected, TestProvisioner};
use common::lab::Lab;
use easync::eas::compose::{self, Compose, Kind, Source};
use easync::eas::folder::{self, Folder, FolderChange, FolderChangeStatus, FolderType};
use easync::eas::item::{self, BodyInfo, BodyPreference, BodyType, Class};
use easync::eas::itemops::{self, Fetch, FetchTarget, OneSink, Operation};
use easync::eas::ping::{self, PingFolder};
use easync::eas::sync::{
    self, ClientCommand, ClientResponse, CollectionRequest, MimeSupport, SyncOptions, SyncOutcome,
    SyncRequest,
};
use easync::eas::{ProtocolVersion, estimate, find, meeting, moveitems, resolve, search, settings};
use easync::lab::model::{Attachment, Prop};
use easync::lab::{self as lab, NewItem};
use easync::transport::{self, Session};
use easync::wbxml::Tag;
use easync::wbxml::tags::cp;
use serde_json::Value as Json;

const VERSIONS: [ProtocolVersion; 5] = [
    ProtocolVersion::V12_1,
    ProtocolVersion::V14_0,
    ProtocolVersion::V14_1,
    ProtocolVersion::V16_0,
    ProtocolVersion::V16_1,
];
const SCHEMES: [bool; 2] = [false, true];

const INBOX: &str = lab::seed::folder::INBOX;
const SENT: &str = lab::seed::folder::SENT;
const CALENDAR: &str = lab::seed::folder::CALENDAR;
const CONTACTS: &str = lab::seed::folder::CONTACTS;
const PROJECTS: &str = lab::seed::folder::PROJECTS;

/// The default lab with short Ping bounds so push tests stay fast.
fn config() -> lab::Config {
    lab::Config {
        ping_min_heartbeat: 1,
        ping_max_heartbeat: 10,
        ..Lab::default_config()
    }
}

/// A provisioned session with the folder list, as a device has after enrollment.
struct Device {
    account: Account,
    session: Session,
    prov: TestProvisioner,
    folders: Vec<Folder>,
    folder_key: String,
}

impl Device {
    fn connect(lab: &Lab, https: bool, version: ProtocolVersion, tag: &str) -> Device {
        let account = lab.account(https, tag);
        let mut session = account.session(Some(version));
        assert_eq!(session.state().version, version);
        let mut prov = TestProvisioner::default();
        let hierarchy = client::folder_sync(&mut session, &mut prov, "0");
        assert_eq!(hierarchy.status, folder::FolderSyncStatus::Success);
        assert_eq!(prov.rounds, 1, "one provisioning round before FolderSync");
        let key = session
            .state()
            .policy_key
            .expect("a policy key")
            .to_string();
        let record = lab.device(&account.device_id);
        assert_eq!(record["policy_key"], key.as_str(), "{record}");
        assert_eq!(record["protocol_version"], version.as_str(), "{record}");
        Device {
            folders: client::folders(&hierarchy),
            folder_key: hierarchy.sync_key.expect("a FolderSync key"),
            account,
            session,
            prov,
        }
    }

    fn version(&self) -> ProtocolVersion {
        self.session.state().version
    }

    fn sync(&mut self, req: &SyncRequest, out: &mut Collected) -> SyncOutcome {
        client::sync_once(&mut self.session, &mut self.prov, req, out)
    }

    /// A full sync of one collection; the final key and everything received.
    fn sync_all(
        &mut self,
        collection_id: &str,
        class: Class,
        options: Option<SyncOptions>,
    ) -> (String, Collected) {
        client::sync_collection(
            &mut self.session,
            &mut self.prov,
            collection_id,
            class,
            options,
        )
    }

    /// One Sync of `collection` from `key` carrying `commands`; returns the new key.
    fn sync_commands(
        &mut self,
        key: &str,
        collection_id: &str,
        class: Class,
        commands: Vec<ClientCommand>,
        out: &mut Collected,
    ) -> String {
        let mut c = CollectionRequest::new(key, collection_id, class);
        c.get_changes = Some(false);
        c.commands = commands;
        let req = SyncRequest {
            collections: vec![c],
            ..SyncRequest::default()
        };
        match self.sync(&req, out) {
            SyncOutcome::Response(r) => {
                let h = &r.collections[0];
                assert_eq!(h.status(), sync::Status::Success, "{h:?}");
                h.sync_key.clone().expect("a new key")
            }
            SyncOutcome::Unchanged => panic!("a Sync with commands came back empty"),
        }
    }

    /// One Sync of `collection` from `key` asking for changes.
    fn sync_changes(
        &mut self,
        key: &str,
        collection_id: &str,
        class: Class,
    ) -> (String, Collected) {
        let mut out = Collected::default();
        let mut c = CollectionRequest::new(key, collection_id, class);
        c.get_changes = Some(true);
        let req = SyncRequest {
            collections: vec![c],
            ..SyncRequest::default()
        };
        let key = match self.sync(&req, &mut out) {
            SyncOutcome::Response(r) => r.collections[0].sync_key.clone().expect("a key"),
            SyncOutcome::Unchanged => key.to_string(),
        };
        (key, out)
    }

    fn execute<T: easync::eas::HasStatus>(
        &mut self,
        build: impl Fn(&transport::SessionState) -> easync::eas::Result<easync::eas::Request>,
        read: impl FnMut(&mut transport::ResponseParser) -> easync::eas::Result<T>,
    ) -> T {
        self.session
            .execute(build, read, &mut self.prov, client::TIMEOUT)
            .expect("the command succeeds")
    }
}

/// `GET` on the lab's admin API (Content-Length framing), as JSON.
fn admin_get(lab: &Lab, path: &str) -> Json {
    let mut stream = TcpStream::connect(lab.handle.admin_addr().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "admin GET {path}: {line}");
    let mut len = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// The lab's items of a folder (admin `GET /items?folder=`).
fn lab_items(lab: &Lab, folder: &str) -> Vec<Json> {
    admin_get(lab, &format!("/items?folder={folder}"))["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn lab_item(lab: &Lab, folder: &str, server_id: &str) -> Option<Json> {
    lab_items(lab, folder)
        .into_iter()
        .find(|i| i["server_id"] == server_id)
}

fn lab_item_by_subject(lab: &Lab, folder: &str, subject: &str) -> Option<Json> {
    lab_items(lab, folder)
        .into_iter()
        .find(|i| i["props"]["Subject"] == subject)
}

fn lab_folder(lab: &Lab, server_id: &str) -> Option<Json> {
    lab.state()["folders"]
        .as_array()?
        .iter()
        .find(|f| f["server_id"] == server_id)
        .cloned()
}

fn subject_of(item: &sync::ServerItem) -> Option<String> {
    Collected::text_of(item, cp::EMAIL, "Subject")
}

fn body_info(item: &sync::ServerItem) -> BodyInfo {
    let body = item
        .data
        .as_ref()
        .and_then(|d| d.node.child(Tag::named(cp::AIRSYNCBASE, "Body")))
        .unwrap_or_else(|| panic!("no Body in {item:?}"));
    BodyInfo::from_node(body)
}

fn mime_options() -> SyncOptions {
    SyncOptions {
        body_preferences: vec![BodyPreference::new(BodyType::Mime)],
        mime_support: Some(MimeSupport::Always),
        ..SyncOptions::default()
    }
}

fn message(from: &str, to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Message-ID: <{}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        client::device_id("msg")
    )
}

/// SendMail/SmartReply/SmartForward with the MIME message streamed from a reader.
fn compose_send(device: &mut Device, kind: Kind, mime: &str) -> compose::Response {
    let message = Compose {
        kind,
        client_id: client::device_id("c"),
        account_id: None,
        save_in_sent_items: true,
        replace_mime: false,
        mime_len: mime.len() as u64,
    };
    let version = device.version();
    let request = compose::request(version, &message).unwrap();
    let mut reader = mime.as_bytes();
    let response = device
        .session
        .send(&request, Some(&mut reader), client::TIMEOUT)
        .expect("the message is accepted");
    compose::read_response(&mut response.parser(version), &message.kind).unwrap()
}

/// ItemOperations Fetch of one target (inline or multipart) into a buffer.
fn fetch(
    device: &mut Device,
    target: FetchTarget,
    multipart: bool,
) -> (itemops::Response, Vec<u8>) {
    client::item_operations_fetch(&mut device.session, Fetch::new(target), multipart)
}

// ---------------------------------------------------------------------------------------

#[test]
fn options_negotiates_each_version_and_lists_the_commands() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        let account = lab.account(https, "opt");
        for cap in VERSIONS {
            let mut session = Session::new(
                transport::Client::new(account.config()).unwrap(),
                ProtocolVersion::V16_1,
            );
            let info = session.negotiate(Some(cap), client::TIMEOUT).unwrap();
            assert_eq!(session.state().version, cap, "https={https}");
            assert_eq!(info.versions.len(), 5, "{info:?}");
            for cmd in [
                "Sync",
                "FolderSync",
                "FolderCreate",
                "FolderUpdate",
                "FolderDelete",
                "GetItemEstimate",
                "Ping",
                "Provision",
                "ItemOperations",
                "SendMail",
                "SmartReply",
                "SmartForward",
                "MoveItems",
                "MeetingResponse",
                "Search",
                "ResolveRecipients",
                "Settings",
                "Find",
            ] {
                assert!(
                    info.supports_command(cmd),
                    "{cmd} not in {:?}",
                    info.commands
                );
            }
        }
        let mut session = account.session(None);
        assert_eq!(session.state().version, ProtocolVersion::V16_1);
        // The negotiated version is what the lab records for the device.
        let mut prov = TestProvisioner::default();
        client::folder_sync(&mut session, &mut prov, "0");
        assert_eq!(lab.device(&account.device_id)["protocol_version"], "16.1");
    }
}

#[test]
fn folder_sync_create_update_delete_and_server_side_changes() {
    for https in SCHEMES {
        for version in [ProtocolVersion::V12_1, ProtocolVersion::V16_1] {
            let lab = Lab::start(config());
            let mut d = Device::connect(&lab, https, version, "fold");
            let expected = [
                (INBOX, FolderType::Inbox, "Inbox"),
                ("3", FolderType::Drafts, "Drafts"),
                ("4", FolderType::DeletedItems, "Deleted Items"),
                (SENT, FolderType::SentItems, "Sent Items"),
                ("6", FolderType::Outbox, "Outbox"),
                ("7", FolderType::Tasks, "Tasks"),
                (CALENDAR, FolderType::Calendar, "Calendar"),
                (CONTACTS, FolderType::Contacts, "Contacts"),
                ("10", FolderType::Notes, "Notes"),
                (PROJECTS, FolderType::UserMail, "Projects"),
            ];
            assert_eq!(d.folders.len(), expected.len(), "{:?}", d.folders);
            for (id, t, name) in expected {
                let f = client::folder_of_type(&d.folders, t);
                assert_eq!(
                    (
                        f.server_id.as_str(),
                        f.display_name.as_str(),
                        f.parent_id.as_str()
                    ),
                    (id, name, "0")
                );
            }

            // FolderCreate, then rename it, then delete it.
            let key = d.folder_key.clone();
            let created = d.execute(
                |s| {
                    folder::folder_create_request(
                        s.version,
                        &key,
                        "0",
                        "Lab Test",
                        FolderType::UserMail,
                    )
                },
                folder::read_folder_create_response,
            );
            assert_eq!(created.status, FolderChangeStatus::Success, "{created:?}");
            let id = created.server_id.clone().expect("a ServerId");
            let key = created.sync_key.clone().expect("a new key");
            assert_ne!(key, d.folder_key);
            let in_lab = lab_folder(&lab, &id).expect("the lab has the new folder");
            assert_eq!(
                (in_lab["name"].as_str(), in_lab["type"].as_u64()),
                (Some("Lab Test"), Some(12))
            );

            let taken = d.execute(
                |s| {
                    folder::folder_create_request(
                        s.version,
                        &key,
                        "0",
                        "Lab Test",
                        FolderType::UserMail,
                    )
                },
                folder::read_folder_create_response,
            );
            assert_eq!(taken.status, FolderChangeStatus::NameExists);

            let updated = d.execute(
                |s| folder::folder_update_request(s.version, &key, &id, PROJECTS, "Renamed"),
                folder::read_folder_update_response,
            );
            assert_eq!(updated.status, FolderChangeStatus::Success, "{updated:?}");
            let key = updated.sync_key.clone().expect("a new key");
            let in_lab = lab_folder(&lab, &id).unwrap();
            assert_eq!(
                (in_lab["name"].as_str(), in_lab["parent_id"].as_str()),
                (Some("Renamed"), Some(PROJECTS))
            );

            let deleted = d.execute(
                |s| folder::folder_delete_request(s.version, &key, &id),
                folder::read_folder_delete_response,
            );
            assert_eq!(deleted.status, FolderChangeStatus::Success, "{deleted:?}");
            let key = deleted.sync_key.clone().expect("a new key");
            assert!(lab_folder(&lab, &id).is_none());
            let gone = d.execute(
                |s| folder::folder_delete_request(s.version, &key, &id),
                folder::read_folder_delete_response,
            );
            assert_eq!(gone.status, FolderChangeStatus::FolderNotFound);

            // The client's own changes do not come back.
            let again = client::folder_sync(&mut d.session, &mut d.prov, &key);
            assert!(again.changes.is_empty(), "{again:?}");
            let key = again.sync_key.clone().unwrap_or(key);

            // Server-side: added, renamed, deleted via the Handle.
            let server = lab.handle.add_folder("0", "From the server", 12).unwrap();
            let next = client::folder_sync(&mut d.session, &mut d.prov, &key);
            match next.changes.as_slice() {
                [FolderChange::Add(f)] => {
                    assert_eq!(
                        (f.server_id.as_str(), f.display_name.as_str(), f.folder_type),
                        (server.as_str(), "From the server", FolderType::UserMail)
                    );
                }
                other => panic!("expected one Add, got {other:?}"),
            }
            let key = next.sync_key.clone().expect("a new key");
            lab.handle
                .update_folder(&server, "0", "Server renamed")
                .unwrap();
            let next = client::folder_sync(&mut d.session, &mut d.prov, &key);
            assert!(
                matches!(next.changes.as_slice(), [FolderChange::Update(f)] if f.display_name == "Server renamed"),
                "{next:?}"
            );
            let key = next.sync_key.clone().expect("a new key");
            lab.handle.delete_folder(&server).unwrap();
            let next = client::folder_sync(&mut d.session, &mut d.prov, &key);
            assert_eq!(
                next.changes,
                vec![FolderChange::Delete {
                    server_id: server.clone()
                }]
            );
        }
    }
}

#[test]
fn sync_every_class_matches_the_lab_on_every_version() {
    let lab = Lab::start(config());
    let classes = [
        (INBOX, Class::Email, (cp::EMAIL, "Subject")),
        (CONTACTS, Class::Contacts, (cp::CONTACTS, "LastName")),
        (CALENDAR, Class::Calendar, (cp::CALENDAR, "Subject")),
        ("7", Class::Tasks, (cp::TASKS, "Subject")),
        ("10", Class::Notes, (cp::NOTES, "Subject")),
    ];
    for https in SCHEMES {
        for version in VERSIONS {
            let mut d = Device::connect(&lab, https, version, "every");
            for (id, class, (page, field)) in classes {
                if class == Class::Notes && version < ProtocolVersion::V14_0 {
                    continue; // MS-ASNOTE starts at 14.0
                }
                let options = (class == Class::Email).then(mime_options);
                let (_, got) = d.sync_all(id, class, options);
                let expected = lab.folder_items(id) as usize;
                assert!(expected > 0);
                assert_eq!(got.added.len(), expected, "{version} {class:?}");
                for item in &got.added {
                    assert!(
                        Collected::text_of(item, page, field).is_some(),
                        "{version} {class:?} without {field}: {item:?}"
                    );
                }
                if class == Class::Email {
                    for item in &got.added {
                        let mime = got.bodies.get(&item.server_id).expect("MIME streamed");
                        let text = String::from_utf8_lossy(mime);
                        let subject = subject_of(item).unwrap();
                        assert!(text.contains(&format!("Subject: {subject}")), "{text:.300}");
                        assert_eq!(body_info(item).body_type, Some(BodyType::Mime));
                    }
                }
            }
        }
    }
}

#[test]
fn sync_plain_and_html_bodies_with_truncation() {
    let lab = Lab::start(config());
    let in_lab = lab_items(&lab, INBOX);
    for https in SCHEMES {
        for version in [
            ProtocolVersion::V12_1,
            ProtocolVersion::V14_1,
            ProtocolVersion::V16_1,
        ] {
            let mut d = Device::connect(&lab, https, version, "body");
            let mut plain = BodyPreference::new(BodyType::PlainText);
            plain.truncation_size = Some(40);
            let options = SyncOptions {
                body_preferences: vec![plain],
                ..SyncOptions::default()
            };
            let (_, got) = d.sync_all(INBOX, Class::Email, Some(options));
            assert_eq!(got.added.len(), in_lab.len());
            for item in &got.added {
                let body = got.bodies.get(&item.server_id).expect("a plain body");
                let full = in_lab
                    .iter()
                    .find(|i| i["server_id"] == item.server_id.as_str())
                    .unwrap()["body"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let info = body_info(item);
                assert_eq!(info.body_type, Some(BodyType::PlainText));
                assert!(body.len() <= 40, "{version}: {} bytes", body.len());
                assert!(full.as_bytes().starts_with(body), "{version}");
                assert_eq!(info.truncated, full.len() > 40, "{version}: {info:?}");
                assert_eq!(info.estimated_size, Some(full.len() as u64), "{version}");
            }

            let options = SyncOptions {
                body_preferences: vec![BodyPreference::new(BodyType::Html)],
                ..SyncOptions::default()
            };
            let (_, got) = d.sync_all(PROJECTS, Class::Email, Some(options));
            let projects = lab_items(&lab, PROJECTS);
            assert_eq!(got.added.len(), projects.len());
            let mut html_seen = 0;
            for item in &got.added {
                let lab_item = projects
                    .iter()
                    .find(|i| i["server_id"] == item.server_id.as_str())
                    .unwrap();
                let body = String::from_utf8(got.bodies[&item.server_id].clone()).unwrap();
                let info = body_info(item);
                assert!(!info.truncated);
                if let Some(html) = lab_item["html"].as_str() {
                    html_seen += 1;
                    assert_eq!(info.body_type, Some(BodyType::Html));
                    assert_eq!(body, html);
                }
            }
            assert!(html_seen > 0, "the Projects folder holds an HTML mail");
        }
    }
}

#[test]
fn sync_batches_and_server_side_add_change_delete() {
    for https in SCHEMES {
        let lab = Lab::start(config());
        let mut d = Device::connect(&lab, https, ProtocolVersion::V14_1, "batch");
        let total = lab.folder_items(INBOX) as usize;
        let mut out = Collected::default();
        let initial = SyncRequest {
            collections: vec![CollectionRequest::initial(INBOX, Class::Email)],
            ..SyncRequest::default()
        };
        let SyncOutcome::Response(r) = d.sync(&initial, &mut out) else {
            panic!("empty initial Sync");
        };
        let mut key = r.collections[0].sync_key.clone().unwrap();
        let mut keys = vec![key.clone()];
        let mut batches = 0;
        loop {
            let before = out.added.len();
            let mut c = CollectionRequest::new(&key, INBOX, Class::Email);
            c.get_changes = Some(true);
            c.window_size = Some(4);
            let req = SyncRequest {
                collections: vec![c],
                ..SyncRequest::default()
            };
            let SyncOutcome::Response(r) = d.sync(&req, &mut out) else {
                panic!("a batch came back empty");
            };
            let h = &r.collections[0];
            batches += 1;
            assert!(out.added.len() - before <= 4, "window exceeded");
            key = h.sync_key.clone().unwrap();
            assert!(
                !keys.contains(&key),
                "the key changes per batch: {keys:?} {key}"
            );
            keys.push(key.clone());
            if !h.more_available {
                break;
            }
            assert_eq!(out.added.len() - before, 4);
            assert!(batches < 20);
        }
        assert_eq!(out.added.len(), total);
        assert_eq!(batches, total.div_ceil(4));
        // The sent ServerIds are all different.
        let mut ids: Vec<_> = out.added.iter().map(|i| i.server_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), total);

        // Server-side changes through the Handle.
        let added = lab
            .handle
            .add_mail(INBOX, "Added on the server", "new")
            .unwrap();
        let changed = out.added[0].server_id.clone();
        let removed = out.added[1].server_id.clone();
        lab.handle
            .change_item(
                &changed,
                vec![Prop::text("Subject", "Changed on the server")],
                None,
            )
            .unwrap();
        lab.handle.delete_item(&removed).unwrap();
        let (next_key, got) = d.sync_changes(&key, INBOX, Class::Email);
        assert_ne!(next_key, key);
        assert_eq!(got.added.len(), 1);
        assert_eq!(got.added[0].server_id, added);
        assert_eq!(
            subject_of(&got.added[0]).as_deref(),
            Some("Added on the server")
        );
        assert_eq!(got.changed.len(), 1);
        assert_eq!(got.changed[0].server_id, changed);
        assert_eq!(
            subject_of(&got.changed[0]).as_deref(),
            Some("Changed on the server")
        );
        assert_eq!(got.deleted, vec![removed]);
        let (_, nothing) = d.sync_changes(&next_key, INBOX, Class::Email);
        assert!(
            nothing.added.is_empty() && nothing.changed.is_empty() && nothing.deleted.is_empty()
        );
    }
}

#[test]
fn sync_client_add_change_delete_and_fetch() {
    for https in SCHEMES {
        for version in [ProtocolVersion::V12_1, ProtocolVersion::V16_1] {
            let lab = Lab::start(config());
            let mut d = Device::connect(&lab, https, version, "cli");

            // Add a contact: ClientId -> ServerId, visible in the lab.
            let (key, _) = d.sync_all(CONTACTS, Class::Contacts, None);
            let before = lab.folder_items(CONTACTS);
            let contact = vec![
                item::text_node(Tag::named(cp::CONTACTS, "FirstName"), "Zelda"),
                item::text_node(Tag::named(cp::CONTACTS, "LastName"), "Clientside"),
                item::text_node(
                    Tag::named(cp::CONTACTS, "Email1Address"),
                    "zelda@example.org",
                ),
            ];
            let mut out = Collected::default();
            let key = d.sync_commands(
                &key,
                CONTACTS,
                Class::Contacts,
                vec![ClientCommand::Add {
                    client_id: "client-1".into(),
                    data: contact,
                }],
                &mut out,
            );
            let server_id = match out.responses.as_slice() {
                [
                    ClientResponse::Add {
                        client_id,
                        server_id: Some(id),
                        status: sync::Status::Success,
                    },
                ] if client_id == "client-1" => id.clone(),
                other => panic!("{version}: {other:?}"),
            };
            assert_eq!(lab.folder_items(CONTACTS), before + 1);
            let stored = lab_item(&lab, CONTACTS, &server_id).expect("the lab has the contact");
            assert_eq!(stored["props"]["FirstName"], "Zelda");
            assert_eq!(stored["props"]["LastName"], "Clientside");
            // The client's own add does not come back as a server Add.
            let (_, echo) = d.sync_changes(&key, CONTACTS, Class::Contacts);
            assert!(echo.added.is_empty() && echo.changed.is_empty(), "{echo:?}");

            // Mail: mark one read, delete another, fetch a third.
            let (key, mail) = d.sync_all(INBOX, Class::Email, None);
            let unread = lab_items(&lab, INBOX)
                .into_iter()
                .find(|i| i["props"]["Read"] == "0")
                .expect("an unread mail");
            let unread_id = unread["server_id"].as_str().unwrap().to_string();
            let others: Vec<String> = mail
                .added
                .iter()
                .map(|i| i.server_id.clone())
                .filter(|id| *id != unread_id)
                .collect();
            let (doomed, wanted) = (others[0].clone(), others[1].clone());
            let before = lab.folder_items(INBOX);
            let mut out = Collected::default();
            let mut c = CollectionRequest::new(&key, INBOX, Class::Email);
            c.get_changes = Some(false);
            c.options = Some(SyncOptions {
                body_preferences: vec![BodyPreference::new(BodyType::PlainText)],
                ..SyncOptions::default()
            });
            c.commands = vec![
                sync::mail_read_change(&unread_id, true),
                ClientCommand::Delete {
                    server_id: doomed.clone(),
                },
                ClientCommand::Fetch {
                    server_id: wanted.clone(),
                },
            ];
            let req = SyncRequest {
                collections: vec![c],
                ..SyncRequest::default()
            };
            let SyncOutcome::Response(r) = d.sync(&req, &mut out) else {
                panic!("empty answer to client commands");
            };
            assert_eq!(r.collections[0].status(), sync::Status::Success);
            let key = r.collections[0].sync_key.clone().unwrap();
            assert_eq!(
                lab_item(&lab, INBOX, &unread_id).unwrap()["props"]["Read"],
                "1"
            );
            // Flag it for follow-up, then mark the flag complete.
            let mut flagged = Collected::default();
            let key = d.sync_commands(
                &key,
                INBOX,
                Class::Email,
                vec![sync::mail_flag_change(
                    &unread_id,
                    &sync::MailFlag::Active {
                        flag_type: "Follow up".into(),
                    },
                )],
                &mut flagged,
            );
            let flag = &lab_item(&lab, INBOX, &unread_id).unwrap()["props"]["Flag"];
            assert_eq!(
                (flag["Status"].as_str(), flag["FlagType"].as_str()),
                (Some("2"), Some("Follow up")),
                "{flag}"
            );
            let key = d.sync_commands(
                &key,
                INBOX,
                Class::Email,
                vec![sync::mail_flag_change(
                    &unread_id,
                    &sync::MailFlag::Complete {
                        complete_time: "2026-11-25T10:00:00.000Z".into(),
                    },
                )],
                &mut flagged,
            );
            let flag = &lab_item(&lab, INBOX, &unread_id).unwrap()["props"]["Flag"];
            assert_eq!(flag["Status"], "1", "{flag}");
            assert_eq!(flag["CompleteTime"], "2026-11-25T10:00:00.000Z", "{flag}");
            // The read flag survived the flag changes (email changes are partial).
            assert_eq!(
                lab_item(&lab, INBOX, &unread_id).unwrap()["props"]["Read"],
                "1"
            );
            assert!(lab_item(&lab, INBOX, &doomed).is_none());
            assert_eq!(lab.folder_items(INBOX), before - 1);
            let fetched = out
                .responses
                .iter()
                .find_map(|r| match r {
                    ClientResponse::Fetch { status, item } => Some((*status, item.clone())),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no Fetch response in {:?}", out.responses));
            assert_eq!(fetched.0, sync::Status::Success);
            assert_eq!(fetched.1.server_id, wanted);
            let lab_wanted = lab_item(&lab, INBOX, &wanted).unwrap();
            assert_eq!(
                subject_of(&fetched.1).as_deref(),
                lab_wanted["props"]["Subject"].as_str()
            );
            assert_eq!(
                out.bodies
                    .get(&wanted)
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
                lab_wanted["body"].as_str().map(String::from)
            );
            // A change of a deleted item reports ObjectNotFound.
            let mut out = Collected::default();
            let key = d.sync_commands(
                &key,
                INBOX,
                Class::Email,
                vec![sync::mail_read_change(&doomed, true)],
                &mut out,
            );
            assert_eq!(
                out.responses,
                vec![ClientResponse::Change {
                    server_id: doomed.clone(),
                    status: sync::Status::ObjectNotFound
                }]
            );
            // Nothing of the client's own changes is echoed back.
            let (_, echo) = d.sync_changes(&key, INBOX, Class::Email);
            assert!(
                echo.added.is_empty() && echo.changed.is_empty() && echo.deleted.is_empty(),
                "{version}: {echo:?}"
            );
        }
    }
}

#[test]
fn empty_sync_answer_reads_as_unchanged() {
    let lab = Lab::start(lab::Config {
        empty_sync: lab::EmptySync::Always,
        ..config()
    });
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V14_1, "empty");
        let (key, got) = d.sync_all("7", Class::Tasks, None);
        assert_eq!(got.added.len() as u64, lab.folder_items("7"));
        let mut c = CollectionRequest::new(&key, "7", Class::Tasks);
        c.get_changes = Some(true);
        let req = SyncRequest {
            collections: vec![c],
            ..SyncRequest::default()
        };
        let mut out = Collected::default();
        assert_eq!(d.sync(&req, &mut out), SyncOutcome::Unchanged);
        assert!(out.added.is_empty() && out.headers.is_empty());
    }
}

#[test]
fn ping_wakes_on_new_mail_and_expires() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V14_1, "ping");
        d.sync_all(INBOX, Class::Email, None);
        d.sync_all(CONTACTS, Class::Contacts, None);
        let folders = vec![
            PingFolder {
                id: INBOX.into(),
                class: Class::Email,
            },
            PingFolder {
                id: CONTACTS.into(),
                class: Class::Contacts,
            },
        ];

        // Expiry: nothing changes within a 1 s heartbeat.
        let started = Instant::now();
        let expired = d.execute(
            |s| ping::request(s.version, 1, &folders),
            ping::read_response,
        );
        assert_eq!(expired.status, ping::Status::Expired, "{expired:?}");
        assert!(started.elapsed() >= Duration::from_secs(1));

        // Woken by a mail added from another thread.
        let started = Instant::now();
        let response = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                lab.handle.add_mail(INBOX, "Push me", "wake up").unwrap()
            });
            d.session
                .execute(
                    |s| ping::request(s.version, 8, &folders),
                    ping::read_response,
                    &mut d.prov,
                    transport::ping_timeout(Duration::from_secs(8)),
                )
                .unwrap()
        });
        assert_eq!(response.status, ping::Status::ChangesFound, "{response:?}");
        assert_eq!(response.folders, vec![INBOX.to_string()]);
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn ping_out_of_bounds_heartbeat_and_too_many_folders() {
    let lab = Lab::start(lab::Config {
        ping_max_folders: 2,
        ..config()
    });
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V16_0, "pingb");
        let one = [PingFolder {
            id: INBOX.into(),
            class: Class::Email,
        }];
        let high = d.execute(|s| ping::request(s.version, 60, &one), ping::read_response);
        assert_eq!(high.status, ping::Status::InvalidHeartbeatInterval);
        assert_eq!(high.heartbeat_interval, Some(10));
        let low = d.execute(|s| ping::request(s.version, 0, &one), ping::read_response);
        assert_eq!(low.status, ping::Status::InvalidHeartbeatInterval);
        assert_eq!(low.heartbeat_interval, Some(1));

        let three: Vec<PingFolder> = [
            (INBOX, Class::Email),
            (CONTACTS, Class::Contacts),
            (CALENDAR, Class::Calendar),
        ]
        .into_iter()
        .map(|(id, class)| PingFolder {
            id: id.into(),
            class,
        })
        .collect();
        let many = d.execute(|s| ping::request(s.version, 5, &three), ping::read_response);
        assert_eq!(many.status, ping::Status::TooManyFolders);
        assert_eq!(many.max_folders, Some(2));

        let unknown = [PingFolder {
            id: "999".into(),
            class: Class::Email,
        }];
        let gone = d.execute(
            |s| ping::request(s.version, 5, &unknown),
            ping::read_response,
        );
        assert_eq!(gone.status, ping::Status::FolderSyncRequired);
    }
}

#[test]
fn get_item_estimate_after_priming() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        for version in VERSIONS {
            let mut d = Device::connect(&lab, https, version, "est");
            let mut out = Collected::default();
            let initial = SyncRequest {
                collections: vec![
                    CollectionRequest::initial(INBOX, Class::Email),
                    CollectionRequest::initial(CONTACTS, Class::Contacts),
                ],
                ..SyncRequest::default()
            };
            let SyncOutcome::Response(r) = d.sync(&initial, &mut out) else {
                panic!("empty initial Sync");
            };
            let keys: Vec<(String, String)> = r
                .collections
                .iter()
                .map(|c| (c.collection_id.clone(), c.sync_key.clone().unwrap()))
                .collect();
            assert_eq!(keys.len(), 2);
            let collections: Vec<estimate::EstimateCollection> = keys
                .iter()
                .map(|(id, key)| estimate::EstimateCollection {
                    sync_key: key.clone(),
                    collection_id: id.clone(),
                    class: Some(if id == INBOX {
                        Class::Email
                    } else {
                        Class::Contacts
                    }),
                    filter_type: None,
                    conversation_mode: None,
                })
                .collect();
            let response = d.execute(
                |s| estimate::request(s.version, &collections),
                estimate::read_response,
            );
            assert_eq!(response.estimates.len(), 2, "{version}: {response:?}");
            for e in &response.estimates {
                assert_eq!(e.status, estimate::Status::Success, "{version}: {e:?}");
                let id = e.collection_id.clone().unwrap();
                assert_eq!(e.estimate, Some(lab.folder_items(&id)), "{version} {id}");
            }
            // After a full sync nothing is pending.
            let (key, _) = d.sync_all(INBOX, Class::Email, None);
            let done = [estimate::EstimateCollection {
                sync_key: key,
                collection_id: INBOX.into(),
                class: Some(Class::Email),
                filter_type: None,
                conversation_mode: None,
            }];
            let response = d.execute(
                |s| estimate::request(s.version, &done),
                estimate::read_response,
            );
            assert_eq!(response.estimates[0].estimate, Some(0), "{version}");
            // Unprimed: key 0 is refused.
            let unprimed = [estimate::EstimateCollection {
                sync_key: "0".into(),
                collection_id: "7".into(),
                class: Some(Class::Tasks),
                filter_type: None,
                conversation_mode: None,
            }];
            let response = d.execute(
                |s| estimate::request(s.version, &unprimed),
                estimate::read_response,
            );
            assert_eq!(
                response.estimates[0].status,
                estimate::Status::NotPrimed,
                "{version}"
            );
        }
    }
}

#[test]
fn item_operations_fetch_mime_bodies_and_attachments() {
    let lab = Lab::start(config());
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let with_attachment = lab
        .handle
        .add_item(NewItem {
            folder_id: INBOX.into(),
            props: vec![
                Prop::text("Subject", "Attachment inside"),
                Prop::text("From", "\"Ada Lovelace\" <ada.lovelace@example.com>"),
                Prop::text("To", lab.handle.user()),
                Prop::text("MessageClass", "IPM.Note"),
            ],
            body: "see the attachment".into(),
            attachments: vec![Attachment {
                name: "data.bin".into(),
                content_type: "application/octet-stream".into(),
                data: data.clone(),
                inline: false,
            }],
            ..NewItem::default()
        })
        .unwrap();
    let plain = lab
        .handle
        .add_mail(INBOX, "Plain one", "just text")
        .unwrap();
    for https in SCHEMES {
        for version in [
            ProtocolVersion::V12_1,
            ProtocolVersion::V14_1,
            ProtocolVersion::V16_1,
        ] {
            let mut d = Device::connect(&lab, https, version, "iops");
            let (_, mail) = d.sync_all(INBOX, Class::Email, None);
            for multipart in [false, true] {
                let (r, body, was_multipart) =
                    client::fetch_body(&mut d.session, INBOX, &plain, BodyType::Mime, multipart);
                assert_eq!(was_multipart, multipart);
                assert_eq!(r.status, itemops::Status::Success, "{r:?}");
                let text = String::from_utf8_lossy(&body);
                assert!(text.contains("Subject: Plain one"), "{text:.300}");
                assert!(text.contains("just text"), "{text:.300}");

                let (r, body, _) = client::fetch_body(
                    &mut d.session,
                    INBOX,
                    &with_attachment,
                    BodyType::Mime,
                    multipart,
                );
                assert_eq!(r.status, itemops::Status::Success, "{r:?}");
                let text = String::from_utf8_lossy(&body);
                assert!(text.contains("multipart/mixed"), "{text:.300}");
                assert!(text.contains("data.bin"), "{text:.600}");
            }

            // The MIME a Sync streams is the message ItemOperations returns; MIMETruncation
            // 1 (4096 characters) cuts it and says so.
            let (_, full, _) = client::fetch_body(
                &mut d.session,
                INBOX,
                &with_attachment,
                BodyType::Mime,
                false,
            );
            assert!(full.len() > 4096, "{} bytes", full.len());
            let (_, synced_mime) = d.sync_all(INBOX, Class::Email, Some(mime_options()));
            assert!(
                synced_mime.bodies[&with_attachment] == full,
                "{version}: MIME differs"
            );
            let truncated_options = SyncOptions {
                mime_truncation: Some(1),
                ..mime_options()
            };
            let (_, cut) = d.sync_all(INBOX, Class::Email, Some(truncated_options));
            let item = cut
                .added
                .iter()
                .find(|i| i.server_id == with_attachment)
                .unwrap();
            let info = body_info(item);
            assert!(info.truncated, "{version}: {info:?}");
            assert_eq!(info.estimated_size, Some(full.len() as u64), "{version}");
            let cut_body = &cut.bodies[&with_attachment];
            assert_eq!(cut_body.len(), 4096, "{version}");
            assert!(full.starts_with(cut_body));

            // The attachment by FileReference, as the Sync announced it.
            let synced = mail
                .added
                .iter()
                .find(|i| i.server_id == with_attachment)
                .expect("the mail with the attachment was synced");
            let file_ref = Collected::text_of(synced, cp::AIRSYNCBASE, "FileReference")
                .expect("a FileReference");
            let in_lab = lab_item(&lab, INBOX, &with_attachment).unwrap();
            assert_eq!(
                in_lab["attachments"][0]["file_reference"],
                file_ref.as_str()
            );
            for multipart in [false, true] {
                let (r, bytes) = fetch(
                    &mut d,
                    FetchTarget::Attachment {
                        file_reference: file_ref.clone(),
                    },
                    multipart,
                );
                assert_eq!(r.status, itemops::Status::Success, "{r:?}");
                assert_eq!(bytes.len(), data.len(), "{version} multipart={multipart}");
                assert!(
                    bytes == data,
                    "{version} multipart={multipart}: bytes differ"
                );
            }

            // A seeded attachment: the size the lab holds.
            let seeded = lab_items(&lab, INBOX)
                .into_iter()
                .find(|i| {
                    i["server_id"] != with_attachment.as_str()
                        && i["attachments"].as_array().is_some_and(|a| !a.is_empty())
                })
                .expect("a seeded mail with an attachment");
            let (r, bytes) = fetch(
                &mut d,
                FetchTarget::Attachment {
                    file_reference: seeded["attachments"][0]["file_reference"]
                        .as_str()
                        .unwrap()
                        .into(),
                },
                true,
            );
            assert_eq!(r.status, itemops::Status::Success);
            assert_eq!(
                bytes.len() as u64,
                seeded["attachments"][0]["size"].as_u64().unwrap()
            );

            let (r, _) = fetch(
                &mut d,
                FetchTarget::Attachment {
                    file_reference: "2:999999:0".into(),
                },
                false,
            );
            let status = match r.results.first() {
                Some(itemops::OperationResult::Fetch(f)) => f.status,
                other => panic!("{other:?}"),
            };
            assert_ne!(status, itemops::Status::Success, "an unknown attachment");
        }
    }
}

#[test]
fn send_mail_on_every_version_lands_in_sent_and_inbox() {
    let lab = Lab::start(config());
    let user = lab.handle.user().to_string();
    for (n, version) in VERSIONS.into_iter().enumerate() {
        let https = n % 2 == 1;
        let mut d = Device::connect(&lab, https, version, "send");
        let subject = format!("Sent over {version}");
        let mime = message(
            &user,
            &format!("Lab User <{user}>"),
            &subject,
            &"line of text\r\n".repeat(500),
        );
        let (sent_before, inbox_before) = (lab.folder_items(SENT), lab.folder_items(INBOX));
        let r = compose_send(&mut d, Kind::SendMail, &mime);
        assert!(r.sent(), "{version}: {r:?}");
        assert_eq!(lab.folder_items(SENT), sent_before + 1, "{version}");
        assert_eq!(lab.folder_items(INBOX), inbox_before + 1, "{version}");
        let in_sent = lab_item_by_subject(&lab, SENT, &subject).expect("in Sent Items");
        assert!(in_sent["body"].as_str().unwrap().contains("line of text"));
        assert!(
            lab_item_by_subject(&lab, INBOX, &subject).is_some(),
            "in the Inbox"
        );

        // To someone else: Sent only.
        let other = format!("Elsewhere over {version}");
        let r = compose_send(
            &mut d,
            Kind::SendMail,
            &message(&user, "grace.hopper@example.com", &other, "hi"),
        );
        assert!(r.sent());
        assert!(lab_item_by_subject(&lab, SENT, &other).is_some());
        assert!(lab_item_by_subject(&lab, INBOX, &other).is_none());

        // Reply to and forward a seeded mail.
        let original = lab_items(&lab, INBOX)
            .into_iter()
            .find(|i| {
                i["props"]["Subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with('['))
            })
            .unwrap();
        let source = Source {
            folder_id: Some(INBOX.into()),
            item_id: Some(original["server_id"].as_str().unwrap().into()),
            ..Source::default()
        };
        let reply = format!("Re: reply over {version}");
        let r = compose_send(
            &mut d,
            Kind::SmartReply(source.clone()),
            &message(&user, "grace.hopper@example.com", &reply, "my answer"),
        );
        assert!(r.sent(), "{version}: {r:?}");
        let stored = lab_item_by_subject(&lab, SENT, &reply).expect("the reply in Sent");
        assert!(stored["body"].as_str().unwrap().contains("my answer"));
        let forward = format!("Fw: forward over {version}");
        let r = compose_send(
            &mut d,
            Kind::SmartForward(source),
            &message(&user, &user, &forward, "have a look"),
        );
        assert!(r.sent(), "{version}: {r:?}");
        assert!(lab_item_by_subject(&lab, SENT, &forward).is_some());
        assert!(lab_item_by_subject(&lab, INBOX, &forward).is_some());

        // An unknown source is refused (150 on 14+, HTTP 500 on 12.1).
        let bad = Source {
            folder_id: Some(INBOX.into()),
            item_id: Some("2:424242".into()),
            ..Source::default()
        };
        let message_text = message(&user, &user, "never", "x");
        let compose_bad = Compose {
            kind: Kind::SmartReply(bad),
            client_id: client::device_id("bad"),
            account_id: None,
            save_in_sent_items: true,
            replace_mime: false,
            mime_len: message_text.len() as u64,
        };
        let request = compose::request(version, &compose_bad).unwrap();
        let mut reader = message_text.as_bytes();
        let result = d.session.send(&request, Some(&mut reader), client::TIMEOUT);
        if version == ProtocolVersion::V12_1 {
            assert!(result.is_err(), "12.1 failures are HTTP errors");
        } else {
            let r = compose::read_response(&mut result.unwrap().parser(version), &compose_bad.kind)
                .unwrap();
            assert!(!r.sent());
            assert_eq!(r.status.map(|s| s.code()), Some(150), "{r:?}");
        }
        assert!(lab_item_by_subject(&lab, SENT, "never").is_none());
    }
}

#[test]
fn move_items_moves_in_the_lab() {
    for https in SCHEMES {
        let lab = Lab::start(config());
        let mut d = Device::connect(&lab, https, ProtocolVersion::V14_0, "move");
        let mail = lab_items(&lab, INBOX)[0]["server_id"]
            .as_str()
            .unwrap()
            .to_string();
        let (inbox_before, projects_before) = (lab.folder_items(INBOX), lab.folder_items(PROJECTS));
        let moves = [
            moveitems::Move {
                item: mail.clone(),
                source_folder: INBOX.into(),
                destination_folder: PROJECTS.into(),
            },
            moveitems::Move {
                item: "2:nothing".into(),
                source_folder: INBOX.into(),
                destination_folder: PROJECTS.into(),
            },
        ];
        let r = d.execute(
            |s| moveitems::request(s.version, &moves),
            moveitems::read_response,
        );
        assert_eq!(r.results.len(), 2, "{r:?}");
        assert_eq!(r.results[0].status, moveitems::Status::Success);
        assert_eq!(r.results[0].source_item.as_deref(), Some(mail.as_str()));
        let new_id = r.results[0].destination_item.clone().expect("a DstMsgId");
        assert_eq!(r.results[1].status, moveitems::Status::InvalidSource);
        assert_eq!(lab.folder_items(INBOX), inbox_before - 1);
        assert_eq!(lab.folder_items(PROJECTS), projects_before + 1);
        assert!(lab_item(&lab, INBOX, &mail).is_none());
        assert!(lab_item(&lab, PROJECTS, &new_id).is_some());

        let into_calendar = [moveitems::Move {
            item: new_id.clone(),
            source_folder: PROJECTS.into(),
            destination_folder: CALENDAR.into(),
        }];
        let r = d.execute(
            |s| moveitems::request(s.version, &into_calendar),
            moveitems::read_response,
        );
        assert_eq!(r.results[0].status, moveitems::Status::InvalidDestination);
    }
}

#[test]
fn meeting_response_on_calendar_items_and_meeting_requests() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        for version in [ProtocolVersion::V12_1, ProtocolVersion::V16_1] {
            let mut d = Device::connect(&lab, https, version, "meet");
            let event = lab_items(&lab, CALENDAR)[0]["server_id"]
                .as_str()
                .unwrap()
                .to_string();
            let answers = [meeting::MeetingAnswer {
                response: meeting::UserResponse::Tentative,
                target: meeting::Target::Item {
                    collection_id: CALENDAR.into(),
                    request_id: event.clone(),
                },
                instance_id: None,
                send_response: None,
            }];
            let r = d.execute(
                |s| meeting::request(s.version, &answers),
                meeting::read_response,
            );
            assert_eq!(r.results.len(), 1, "{r:?}");
            assert_eq!(r.results[0].status, meeting::Status::Success);
            assert_eq!(r.results[0].calendar_id.as_deref(), Some(event.as_str()));
            assert_eq!(
                lab_item(&lab, CALENDAR, &event).unwrap()["props"]["ResponseType"],
                "2"
            );

            // A meeting-request mail: accepted, it becomes a calendar item.
            let request_mail = lab
                .handle
                .add_item(NewItem {
                    folder_id: INBOX.into(),
                    props: vec![
                        Prop::text("Subject", format!("Design review {version} {https}")),
                        Prop::text("From", "\"Grace Hopper\" <grace.hopper@example.com>"),
                        Prop::text("To", lab.handle.user()),
                        Prop::text("MessageClass", "IPM.Schedule.Meeting.Request"),
                        Prop::list(
                            "MeetingRequest",
                            vec![
                                Prop::text("StartTime", "20261201T100000Z"),
                                Prop::text("EndTime", "20261201T110000Z"),
                                Prop::text("Location", "Room 1"),
                            ],
                        ),
                    ],
                    body: "Let us review.".into(),
                    ..NewItem::default()
                })
                .unwrap();
            let calendar_before = lab.folder_items(CALENDAR);
            let answers = [meeting::MeetingAnswer {
                response: meeting::UserResponse::Accepted,
                target: meeting::Target::Item {
                    collection_id: INBOX.into(),
                    request_id: request_mail.clone(),
                },
                instance_id: None,
                send_response: None,
            }];
            let r = d.execute(
                |s| meeting::request(s.version, &answers),
                meeting::read_response,
            );
            assert_eq!(r.results[0].status, meeting::Status::Success, "{r:?}");
            let calendar_id = r.results[0].calendar_id.clone().expect("a CalendarId");
            assert!(lab_item(&lab, INBOX, &request_mail).is_none());
            assert_eq!(lab.folder_items(CALENDAR), calendar_before + 1);
            let created = lab_item(&lab, CALENDAR, &calendar_id).expect("the calendar item");
            assert_eq!(created["props"]["Location"], "Room 1");

            // Not a meeting request.
            let plain = lab_items(&lab, INBOX)[0]["server_id"]
                .as_str()
                .unwrap()
                .to_string();
            let answers = [meeting::MeetingAnswer {
                response: meeting::UserResponse::Accepted,
                target: meeting::Target::Item {
                    collection_id: INBOX.into(),
                    request_id: plain,
                },
                instance_id: None,
                send_response: None,
            }];
            let r = d.execute(
                |s| meeting::request(s.version, &answers),
                meeting::read_response,
            );
            assert_eq!(r.results[0].status, meeting::Status::InvalidMeetingRequest);
        }
    }
}

#[test]
fn search_gal_and_mailbox_and_resolve_recipients() {
    let lab = Lab::start(config());
    let marked = lab
        .handle
        .add_mail(INBOX, "Zanzibar itinerary", "the Zanzibar trip")
        .unwrap();
    for https in SCHEMES {
        for version in [
            ProtocolVersion::V12_1,
            ProtocolVersion::V14_1,
            ProtocolVersion::V16_1,
        ] {
            let mut d = Device::connect(&lab, https, version, "find");
            let gal = search::Query::Gal {
                text: "grace".into(),
                range: Some((0, 9)),
                picture: None,
            };
            let r = d.execute(
                |s| search::request(s.version, &gal),
                |p| search::read_response(p, gal.store(), &mut OneSink(&mut Vec::new())),
            );
            assert_eq!(r.status, search::Status::Success, "{r:?}");
            let store = r.store.expect("a store");
            assert_eq!(store.status, search::Status::Success);
            assert_eq!(store.results.len(), 1, "{store:?}");
            match &store.results[0].properties {
                Some(search::ResultProperties::Gal(e)) => {
                    assert_eq!(e.email_address.as_deref(), Some("grace.hopper@example.com"));
                    assert_eq!(e.display_name.as_deref(), Some("Grace Hopper"));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(store.total, Some(1));

            let mailbox = search::Query::Mailbox(search::MailboxQuery {
                free_text: "zanzibar".into(),
                collection_ids: vec![INBOX.into()],
                class: Some("Email".into()),
                range: Some((0, 9)),
                ..search::MailboxQuery::default()
            });
            let r = d.execute(
                |s| search::request(s.version, &mailbox),
                |p| search::read_response(p, mailbox.store(), &mut OneSink(&mut Vec::new())),
            );
            let store = r.store.expect("a store");
            assert_eq!(store.status, search::Status::Success, "{store:?}");
            assert_eq!(store.results.len(), 1, "{store:?}");
            let hit = &store.results[0];
            assert_eq!(hit.collection_id.as_deref(), Some(INBOX));
            // The lab hands out ServerIds as LongIds.
            assert_eq!(hit.long_id.as_deref(), Some(marked.as_str()));
            match &hit.properties {
                Some(search::ResultProperties::Mailbox(props)) => {
                    let subject = props
                        .other
                        .iter()
                        .find(|n| n.tag == Tag::named(cp::EMAIL, "Subject"))
                        .and_then(|n| n.text());
                    assert_eq!(subject, Some("Zanzibar itinerary"), "{props:?}");
                }
                other => panic!("{other:?}"),
            }

            // The seeded contacts hold a second Grace: the bare first name is ambiguous.
            let names = [
                "grace.hopper@example.com".to_string(),
                "grace".to_string(),
                "nobody-at-all".to_string(),
            ];
            let r = d.execute(
                |s| resolve::request(s.version, &names, &resolve::Options::default()),
                resolve::read_response,
            );
            assert_eq!(r.status, resolve::Status::Success);
            assert_eq!(r.responses.len(), 3, "{r:?}");
            let exact = &r.responses[0];
            assert_eq!(exact.to.as_deref(), Some("grace.hopper@example.com"));
            assert_eq!(exact.status, resolve::ResponseStatus::Success, "{exact:?}");
            assert_eq!(exact.recipients.len(), 1);
            assert_eq!(exact.recipients[0].kind, Some(resolve::RecipientType::Gal));
            assert_eq!(
                exact.recipients[0].display_name.as_deref(),
                Some("Grace Hopper")
            );
            let vague = &r.responses[1];
            assert_eq!(
                vague.status,
                resolve::ResponseStatus::Ambiguous,
                "{vague:?}"
            );
            assert!(vague.recipients.len() >= 2, "{vague:?}");
            assert_eq!(vague.recipient_count, Some(vague.recipients.len() as u32));
            assert!(vague.recipients.iter().any(|p| p.email_address.as_deref()
                == Some("grace.hopper@example.com")
                && p.kind == Some(resolve::RecipientType::Gal)));
            assert!(
                vague
                    .recipients
                    .iter()
                    .any(|p| p.kind == Some(resolve::RecipientType::Contact))
            );
            assert_eq!(r.responses[2].status, resolve::ResponseStatus::Unresolved);
            assert!(r.responses[2].recipients.is_empty());
        }
    }
}

#[test]
fn settings_device_information_oof_and_user_information() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        for version in VERSIONS {
            let mut d = Device::connect(&lab, https, version, "set");
            let user = lab.handle.user().to_string();

            if version <= ProtocolVersion::V14_0 {
                let mut info = client::device_information();
                info.model = Some(format!("Model {version}"));
                let ops = [settings::Operation::DeviceInformationSet(info)];
                let r = d.execute(
                    |s| settings::request(s.version, &ops),
                    settings::read_response,
                );
                assert_eq!(r.status, settings::SettingsStatus::Success);
                assert_eq!(
                    r.device_information,
                    Some(settings::SettingsStatus::Success)
                );
                let record = lab.device(&d.account.device_id);
                assert_eq!(
                    record["device_information"]["Model"],
                    format!("Model {version}").as_str(),
                    "{record}"
                );
            }

            let reply = format!("Away ({version})");
            let set = settings::OofSettings {
                state: Some(settings::OofState::Global),
                messages: vec![settings::OofMessage {
                    audience: settings::Audience::Internal,
                    enabled: Some(true),
                    reply_message: Some(reply.clone()),
                    body_type: Some("Text".into()),
                }],
                ..settings::OofSettings::default()
            };
            let ops = [settings::Operation::OofSet(set)];
            let r = d.execute(
                |s| settings::request(s.version, &ops),
                settings::read_response,
            );
            assert_eq!(r.status, settings::SettingsStatus::Success);
            assert_eq!(
                r.oof.as_ref().map(|o| o.status),
                Some(settings::SettingsStatus::Success)
            );
            assert_eq!(lab.state()["oof_state"], 1);

            let ops = [
                settings::Operation::OofGet(settings::OofBodyType::Text),
                settings::Operation::UserInformationGet,
            ];
            let r = d.execute(
                |s| settings::request(s.version, &ops),
                settings::read_response,
            );
            let oof = r.oof.expect("Oof").settings.expect("Oof settings");
            assert_eq!(oof.state, Some(settings::OofState::Global));
            let internal = oof
                .messages
                .iter()
                .find(|m| m.audience == settings::Audience::Internal)
                .expect("the internal message");
            assert_eq!(internal.reply_message.as_deref(), Some(reply.as_str()));
            assert_eq!(internal.enabled, Some(true));

            let info = r.user_information.expect("UserInformation");
            assert_eq!(info.status, settings::SettingsStatus::Success);
            let info = info.info.expect("the information");
            let primary = if version >= ProtocolVersion::V14_1 {
                let account = info.accounts.first().expect("an account");
                account.email_addresses.primary_smtp_address.clone()
            } else {
                info.email_addresses.smtp_addresses.first().cloned()
            };
            assert_eq!(
                primary.as_deref(),
                Some(user.as_str()),
                "{version}: {info:?}"
            );

            // Switched off again.
            let off = [settings::Operation::OofSet(settings::OofSettings {
                state: Some(settings::OofState::Disabled),
                ..settings::OofSettings::default()
            })];
            d.execute(
                |s| settings::request(s.version, &off),
                settings::read_response,
            );
            assert_eq!(lab.state()["oof_state"], 0);
        }
    }
}

#[test]
fn find_on_16_1_and_refused_before() {
    let lab = Lab::start(config());
    let marked = lab
        .handle
        .add_mail(INBOX, "Kilimanjaro plan", "climb")
        .unwrap();
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V16_1, "findc");
        let criterion = find::Criterion::Mailbox {
            free_text: "kilimanjaro".into(),
            class: Some("Email".into()),
            collection_id: Some(INBOX.into()),
            deep_traversal: false,
            range: Some((0, 9)),
        };
        let r = d.execute(
            |s| find::request(s.version, "search-1", &criterion),
            find::read_response,
        );
        assert_eq!(r.status, find::Status::Success, "{r:?}");
        let found = r.response.expect("a Response");
        assert_eq!(found.status, find::Status::Success);
        assert_eq!(found.results.len(), 1, "{found:?}");
        assert_eq!(found.results[0].server_id.as_deref(), Some(marked.as_str()));
        assert_eq!(found.results[0].collection_id.as_deref(), Some(INBOX));
        assert_eq!(found.total, Some(1));

        let gal = find::Criterion::Gal {
            free_text: "hopper".into(),
            range: Some((0, 4)),
            picture: None,
        };
        let r = d.execute(
            |s| find::request(s.version, "search-2", &gal),
            find::read_response,
        );
        let found = r.response.expect("a Response");
        assert_eq!(found.status, find::Status::Success);
        assert_eq!(found.results.len(), 1, "{found:?}");
        let props = found.results[0].properties.as_ref().expect("properties");
        let text = format!("{props:?}");
        assert!(text.contains("grace.hopper@example.com"), "{text}");

        // Before 16.1 the client refuses to write Find.
        let d14 = Device::connect(&lab, https, ProtocolVersion::V14_1, "find14");
        let err = find::request(d14.version(), "s", &criterion).unwrap_err();
        assert!(err.to_string().contains("16.1"), "{err}");
    }
}

#[test]
fn empty_ping_repeats_the_last_one() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V12_1, "pinge");
        let (key, _) = d.sync_all(INBOX, Class::Email, None);
        let folders = [PingFolder {
            id: INBOX.into(),
            class: Class::Email,
        }];
        let first = d.execute(
            |s| ping::request(s.version, 1, &folders),
            ping::read_response,
        );
        assert_eq!(first.status, ping::Status::Expired);

        // The empty Ping watches the same folder with the same 1 s heartbeat.
        let started = Instant::now();
        let again = d.execute(|_| Ok(ping::empty_request()), ping::read_response);
        assert_eq!(again.status, ping::Status::Expired, "{again:?}");
        assert!(started.elapsed() >= Duration::from_secs(1));
        let id = lab.handle.add_mail(INBOX, "While away", "x").unwrap();
        let woken = d.execute(|_| Ok(ping::empty_request()), ping::read_response);
        assert_eq!(woken.status, ping::Status::ChangesFound);
        assert_eq!(woken.folders, vec![INBOX.to_string()]);
        let (_, got) = d.sync_changes(&key, INBOX, Class::Email);
        assert_eq!(
            got.added
                .iter()
                .map(|i| i.server_id.clone())
                .collect::<Vec<_>>(),
            vec![id]
        );
    }
    // A device that never pinged gets Status 3 for an empty Ping.
    let mut fresh = Device::connect(&lab, false, ProtocolVersion::V14_1, "pingf");
    let r = fresh.execute(|_| Ok(ping::empty_request()), ping::read_response);
    assert_eq!(r.status, ping::Status::MissingParameters);
}

#[test]
fn sync_heartbeat_wait_and_contact_and_calendar_changes() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V14_1, "syncw");
        let (key, contacts) = d.sync_all(CONTACTS, Class::Contacts, None);

        // A Sync that waits: nothing changes within the 1 s heartbeat -> an empty body.
        let mut c = CollectionRequest::new(&key, CONTACTS, Class::Contacts);
        c.get_changes = Some(true);
        let req = SyncRequest {
            collections: vec![c],
            heartbeat_interval: Some(1),
            ..SyncRequest::default()
        };
        let started = Instant::now();
        let mut out = Collected::default();
        assert_eq!(d.sync(&req, &mut out), SyncOutcome::Unchanged);
        assert!(started.elapsed() >= Duration::from_secs(1));

        // Change a contact: every property of the class is sent.
        let target = contacts.added[0].server_id.clone();
        let data = vec![
            item::text_node(Tag::named(cp::CONTACTS, "FirstName"), "Renamed"),
            item::text_node(Tag::named(cp::CONTACTS, "LastName"), "Person"),
            item::text_node(Tag::named(cp::CONTACTS, "CompanyName"), "Other Corp"),
        ];
        let mut out = Collected::default();
        let key = d.sync_commands(
            &key,
            CONTACTS,
            Class::Contacts,
            vec![ClientCommand::Change {
                server_id: target.clone(),
                data,
            }],
            &mut out,
        );
        // Success is implied when the server sends no Change response.
        assert!(
            out.responses.iter().all(|r| matches!(
                r,
                ClientResponse::Change {
                    status: sync::Status::Success,
                    ..
                }
            )),
            "{:?}",
            out.responses
        );
        let stored = lab_item(&lab, CONTACTS, &target).unwrap();
        assert_eq!(stored["props"]["FirstName"], "Renamed");
        assert_eq!(stored["props"]["CompanyName"], "Other Corp");
        let (_, echo) = d.sync_changes(&key, CONTACTS, Class::Contacts);
        assert!(echo.changed.is_empty(), "{echo:?}");

        // Add an appointment.
        let (key, _) = d.sync_all(CALENDAR, Class::Calendar, None);
        let before = lab.folder_items(CALENDAR);
        let cal = |n: &'static str, v: &str| item::text_node(Tag::named(cp::CALENDAR, n), v);
        let data = vec![
            cal("Timezone", &lab::seed::utc_timezone()),
            cal("AllDayEvent", "0"),
            cal("StartTime", "20261203T090000Z"),
            cal("EndTime", "20261203T100000Z"),
            cal("Subject", "Client appointment"),
            cal("Location", "Lab"),
            cal("Sensitivity", "0"),
            cal("BusyStatus", "2"),
            cal("MeetingStatus", "0"),
        ];
        let mut out = Collected::default();
        d.sync_commands(
            &key,
            CALENDAR,
            Class::Calendar,
            vec![ClientCommand::Add {
                client_id: "cal-1".into(),
                data,
            }],
            &mut out,
        );
        let Some(ClientResponse::Add {
            server_id: Some(id),
            status: sync::Status::Success,
            ..
        }) = out.responses.first()
        else {
            panic!("{:?}", out.responses);
        };
        assert_eq!(lab.folder_items(CALENDAR), before + 1);
        let stored = lab_item(&lab, CALENDAR, id).unwrap();
        assert_eq!(stored["props"]["Subject"], "Client appointment");
        assert_eq!(stored["props"]["StartTime"], "20261203T090000Z");
    }
}

#[test]
fn item_operations_range_search_long_id_and_empty_folder() {
    let lab = Lab::start(config());
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let mail = lab
        .handle
        .add_item(NewItem {
            folder_id: INBOX.into(),
            props: vec![
                Prop::text("Subject", "Quokka census"),
                Prop::text("To", lab.handle.user()),
                Prop::text("MessageClass", "IPM.Note"),
            ],
            body: "counting quokkas".into(),
            attachments: vec![Attachment {
                name: "count.bin".into(),
                content_type: "application/octet-stream".into(),
                data: data.clone(),
                inline: false,
            }],
            ..NewItem::default()
        })
        .unwrap();
    for https in SCHEMES {
        for version in [ProtocolVersion::V12_1, ProtocolVersion::V16_0] {
            let mut d = Device::connect(&lab, https, version, "iopr");
            let in_lab = lab_item(&lab, INBOX, &mail).unwrap();
            let file_reference = in_lab["attachments"][0]["file_reference"]
                .as_str()
                .unwrap()
                .to_string();
            for multipart in [false, true] {
                let mut f = Fetch::new(FetchTarget::Attachment {
                    file_reference: file_reference.clone(),
                });
                f.range = Some((100, 199));
                let (r, bytes) = client::item_operations_fetch(&mut d.session, f, multipart);
                assert_eq!(r.status, itemops::Status::Success);
                assert_eq!(bytes, data[100..200].to_vec(), "multipart={multipart}");
                let Some(itemops::OperationResult::Fetch(result)) = r.results.first() else {
                    panic!("{r:?}");
                };
                let props = result.properties.as_ref().expect("properties");
                assert_eq!(props.range.as_deref(), Some("100-199"));
                assert_eq!(props.total, Some(1000));
            }

            // A Search hit fetched by its LongId.
            let query = search::Query::Mailbox(search::MailboxQuery {
                free_text: "quokka".into(),
                collection_ids: vec![INBOX.into()],
                class: Some("Email".into()),
                range: Some((0, 4)),
                ..search::MailboxQuery::default()
            });
            let r = d.execute(
                |s| search::request(s.version, &query),
                |p| search::read_response(p, query.store(), &mut OneSink(&mut Vec::new())),
            );
            let store = r.store.expect("a store");
            assert_eq!(store.results.len(), 1, "{store:?}");
            let long_id = store.results[0].long_id.clone().expect("a LongId");
            let mut f = Fetch::new(FetchTarget::SearchResult { long_id });
            f.body_preferences = vec![BodyPreference::new(BodyType::PlainText)];
            let (r, body) = client::item_operations_fetch(&mut d.session, f, false);
            assert_eq!(r.status, itemops::Status::Success, "{r:?}");
            assert_eq!(String::from_utf8_lossy(&body), "counting quokkas");
        }
    }

    // EmptyFolderContents of Deleted Items after moving two mails there.
    let mut d = Device::connect(&lab, true, ProtocolVersion::V14_1, "iope");
    let moves: Vec<moveitems::Move> = lab_items(&lab, INBOX)
        .iter()
        .take(2)
        .map(|i| moveitems::Move {
            item: i["server_id"].as_str().unwrap().into(),
            source_folder: INBOX.into(),
            destination_folder: "4".into(),
        })
        .collect();
    let r = d.execute(
        |s| moveitems::request(s.version, &moves),
        moveitems::read_response,
    );
    assert!(
        r.results
            .iter()
            .all(|m| m.status == moveitems::Status::Success)
    );
    assert_eq!(lab.folder_items("4"), 2);
    let ops = [Operation::EmptyFolderContents {
        collection_id: "4".into(),
        delete_sub_folders: false,
    }];
    let r = d.execute(
        |s| itemops::request(s.version, &ops),
        |p| itemops::read_response(p, &mut OneSink(&mut Vec::new())),
    );
    assert_eq!(
        r.results,
        vec![itemops::OperationResult::EmptyFolderContents {
            status: itemops::Status::Success,
            collection_id: Some("4".into()),
        }]
    );
    assert_eq!(lab.folder_items("4"), 0);
}

#[test]
fn compose_refusals_and_reply_quoting() {
    let lab = Lab::start(config());
    let user = lab.handle.user().to_string();
    for version in [ProtocolVersion::V14_0, ProtocolVersion::V16_1] {
        let mut d = Device::connect(&lab, true, version, "comp");
        let text = message(&user, &user, &format!("Once {version}"), "hello");
        let msg = Compose {
            kind: Kind::SendMail,
            client_id: client::device_id("once"),
            account_id: None,
            save_in_sent_items: false,
            replace_mime: false,
            mime_len: text.len() as u64,
        };
        let send = |d: &mut Device, msg: &Compose, text: &str| {
            let request = compose::request(version, msg).unwrap();
            let mut reader = text.as_bytes();
            let response = d
                .session
                .send(&request, Some(&mut reader), client::TIMEOUT)
                .unwrap();
            compose::read_response(&mut response.parser(version), &msg.kind).unwrap()
        };
        let sent_before = lab.folder_items(SENT);
        assert!(send(&mut d, &msg, &text).sent());
        assert_eq!(
            lab.folder_items(SENT),
            sent_before,
            "not saved without SaveInSentItems"
        );
        assert!(lab_item_by_subject(&lab, INBOX, &format!("Once {version}")).is_some());
        // The same ClientId again: 118, nothing stored.
        let again = send(&mut d, &msg, &text);
        assert_eq!(again.status.map(|s| s.code()), Some(118), "{again:?}");
        // No recipient: 119.
        let nobody = "From: x@example.com\r\nSubject: nobody\r\n\r\nbody\r\n";
        let msg = Compose {
            client_id: client::device_id("nobody"),
            mime_len: nobody.len() as u64,
            ..msg
        };
        let r = send(&mut d, &msg, nobody);
        assert_eq!(r.status.map(|s| s.code()), Some(119), "{r:?}");
        assert!(!r.sent());

        // SmartReply quotes the original body unless ReplaceMime.
        let original = lab_items(&lab, INBOX)[0].clone();
        let source = Source {
            folder_id: Some(INBOX.into()),
            item_id: Some(original["server_id"].as_str().unwrap().into()),
            ..Source::default()
        };
        for replace_mime in [false, true] {
            let subject = format!("Re: quoting {version} {replace_mime}");
            let text = message(&user, "ada.lovelace@example.com", &subject, "on top");
            let msg = Compose {
                kind: Kind::SmartReply(source.clone()),
                client_id: client::device_id("quote"),
                account_id: None,
                save_in_sent_items: true,
                replace_mime,
                mime_len: text.len() as u64,
            };
            assert!(send(&mut d, &msg, &text).sent());
            let stored = lab_item_by_subject(&lab, SENT, &subject).unwrap();
            let body = stored["body"].as_str().unwrap();
            assert!(body.starts_with("on top"), "{body}");
            assert_eq!(
                body.contains(original["body"].as_str().unwrap()),
                !replace_mime,
                "replace_mime={replace_mime}: {body}"
            );
        }
    }
}

#[test]
fn sync_and_estimate_honour_the_filter_type() {
    let lab = Lab::start(config());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let within_a_day = lab_items(&lab, INBOX)
        .iter()
        .filter(|i| {
            i["props"]["DateReceived"]
                .as_str()
                .and_then(lab::model::parse_iso)
                .is_some_and(|t| t >= now - 24 * 3600 + 5)
        })
        .count();
    assert!(within_a_day > 0 && (within_a_day as u64) < lab.folder_items(INBOX));
    for https in SCHEMES {
        for version in [
            ProtocolVersion::V12_1,
            ProtocolVersion::V14_0,
            ProtocolVersion::V16_1,
        ] {
            let mut d = Device::connect(&lab, https, version, "filt");
            let options = SyncOptions {
                filter_type: Some(item::FilterType::OneDay),
                ..SyncOptions::default()
            };
            // Prime, then estimate with the filter, then sync with it.
            let mut out = Collected::default();
            let mut initial = CollectionRequest::initial(INBOX, Class::Email);
            initial.options = Some(options.clone());
            let req = SyncRequest {
                collections: vec![initial],
                ..SyncRequest::default()
            };
            let SyncOutcome::Response(r) = d.sync(&req, &mut out) else {
                panic!("empty initial Sync");
            };
            let key = r.collections[0].sync_key.clone().unwrap();
            let collections = [estimate::EstimateCollection {
                sync_key: key.clone(),
                collection_id: INBOX.into(),
                class: Some(Class::Email),
                filter_type: Some(item::FilterType::OneDay),
                conversation_mode: None,
            }];
            let e = d.execute(
                |s| estimate::request(s.version, &collections),
                estimate::read_response,
            );
            assert_eq!(
                e.estimates[0].estimate,
                Some(within_a_day as u64),
                "{version}"
            );

            let mut c = CollectionRequest::new(&key, INBOX, Class::Email);
            c.get_changes = Some(true);
            c.options = Some(options);
            let req = SyncRequest {
                collections: vec![c],
                ..SyncRequest::default()
            };
            let mut out = Collected::default();
            let SyncOutcome::Response(r) = d.sync(&req, &mut out) else {
                panic!("no answer");
            };
            assert!(!r.collections[0].more_available);
            assert_eq!(out.added.len(), within_a_day, "{version}");
        }
    }
}

#[test]
fn sync_several_collections_empty_request_and_heartbeat_bounds() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        for version in [ProtocolVersion::V12_1, ProtocolVersion::V16_1] {
            let mut d = Device::connect(&lab, https, version, "multi");
            let (mail_key, _) = d.sync_all(INBOX, Class::Email, None);
            let (contact_key, _) = d.sync_all(CONTACTS, Class::Contacts, None);
            let mail = lab.handle.add_mail(INBOX, "Both at once", "x").unwrap();
            let contact = lab
                .handle
                .add_item(NewItem {
                    folder_id: CONTACTS.into(),
                    props: vec![
                        Prop::text("FirstName", "Both"),
                        Prop::text("LastName", "Atonce"),
                    ],
                    ..NewItem::default()
                })
                .unwrap();
            let mut collections = vec![
                CollectionRequest::new(&mail_key, INBOX, Class::Email),
                CollectionRequest::new(&contact_key, CONTACTS, Class::Contacts),
            ];
            for c in &mut collections {
                c.get_changes = Some(true);
            }
            let req = SyncRequest {
                collections,
                ..SyncRequest::default()
            };
            let mut out = Collected::default();
            let SyncOutcome::Response(r) = d.sync(&req, &mut out) else {
                panic!("no answer");
            };
            let ids: Vec<&str> = r
                .collections
                .iter()
                .map(|c| c.collection_id.as_str())
                .collect();
            assert_eq!(ids, vec![INBOX, CONTACTS], "{version}");
            assert_eq!(out.headers.len(), 2);
            let mut added: Vec<String> = out.added.iter().map(|i| i.server_id.clone()).collect();
            added.sort();
            let mut expected = vec![mail.clone(), contact.clone()];
            expected.sort();
            assert_eq!(added, expected, "{version}");
            let mail_key = r.collections[0].sync_key.clone().unwrap();

            // An empty request repeats the cached one with the current keys.
            let next = lab
                .handle
                .add_mail(INBOX, "Via the empty request", "y")
                .unwrap();
            let mut out = Collected::default();
            let outcome = d.execute(
                |s| sync::empty_request(s.version),
                |p| sync::read_response(p, &mut out),
            );
            let SyncOutcome::Response(r) = outcome else {
                panic!("{version}: the empty request came back empty");
            };
            assert_eq!(
                out.added
                    .iter()
                    .map(|i| i.server_id.clone())
                    .collect::<Vec<_>>(),
                vec![next],
                "{version}"
            );
            let inbox = r
                .collections
                .iter()
                .find(|c| c.collection_id == INBOX)
                .expect("the Inbox");
            assert_ne!(inbox.sync_key.as_deref(), Some(mail_key.as_str()));

            // A heartbeat outside the lab's bounds: Status 14 with the bound.
            let mut c =
                CollectionRequest::new(inbox.sync_key.as_deref().unwrap(), INBOX, Class::Email);
            c.get_changes = Some(true);
            let mut req = SyncRequest {
                collections: vec![c],
                ..SyncRequest::default()
            };
            // HeartbeatInterval (seconds) is 14.0+; 12.1 has Wait (minutes, 1-59), whose
            // bounds the client checks itself.
            if version < ProtocolVersion::V14_0 {
                let mut bad = req.clone();
                bad.heartbeat_interval = Some(5);
                assert!(sync::request(version, &bad).is_err());
                let mut bad = req.clone();
                bad.wait = Some(0);
                assert!(sync::request(version, &bad).is_err());
                continue;
            }
            req.heartbeat_interval = Some(600);
            let mut out = Collected::default();
            let SyncOutcome::Response(r) = d.sync(&req, &mut out) else {
                panic!("no answer");
            };
            assert_eq!(r.status, sync::Status::InvalidWaitOrHeartbeat, "{r:?}");
            assert_eq!(r.limit, Some(10));
        }
    }
}

#[test]
fn gal_search_pages_through_the_directory() {
    let lab = Lab::start(config());
    // Name words starting with H: Farid Haddad, Grace Hopper, Hiro Tanaka.
    let directory = 3;
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V14_1, "page");
        let mut seen = Vec::new();
        for (first, last) in [(0, 1), (2, 3)] {
            let q = search::Query::Gal {
                text: "h".into(),
                range: Some((first, last)),
                picture: None,
            };
            let r = d.execute(
                |s| search::request(s.version, &q),
                |p| search::read_response(p, q.store(), &mut OneSink(&mut Vec::new())),
            );
            let store = r.store.expect("a store");
            assert_eq!(store.total, Some(directory), "{store:?}");
            let end = (last as u64).min(directory - 1);
            assert_eq!(store.range, Some(format!("{first}-{end}")));
            for hit in &store.results {
                let Some(search::ResultProperties::Gal(e)) = &hit.properties else {
                    panic!("{hit:?}");
                };
                seen.push(e.email_address.clone().unwrap());
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len() as u64, directory, "{seen:?}");
    }
}

#[test]
fn meeting_response_to_a_search_result() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V14_1, "meetl");
        let subject = format!("Wombat planning {https}");
        let request_mail = lab
            .handle
            .add_item(NewItem {
                folder_id: INBOX.into(),
                props: vec![
                    Prop::text("Subject", subject.clone()),
                    Prop::text("From", "\"Ada Lovelace\" <ada.lovelace@example.com>"),
                    Prop::text("To", lab.handle.user()),
                    Prop::text("MessageClass", "IPM.Schedule.Meeting.Request"),
                    Prop::list(
                        "MeetingRequest",
                        vec![
                            Prop::text("StartTime", "20261202T100000Z"),
                            Prop::text("EndTime", "20261202T110000Z"),
                        ],
                    ),
                ],
                body: "wombats".into(),
                ..NewItem::default()
            })
            .unwrap();
        let query = search::Query::Mailbox(search::MailboxQuery {
            free_text: "wombat".into(),
            collection_ids: vec![INBOX.into()],
            class: Some("Email".into()),
            range: Some((0, 4)),
            ..search::MailboxQuery::default()
        });
        let r = d.execute(
            |s| search::request(s.version, &query),
            |p| search::read_response(p, query.store(), &mut OneSink(&mut Vec::new())),
        );
        let store = r.store.expect("a store");
        assert_eq!(store.results.len(), 1, "{store:?}");
        let long_id = store.results[0].long_id.clone().expect("a LongId");
        let calendar_before = lab.folder_items(CALENDAR);
        let answers = [meeting::MeetingAnswer {
            response: meeting::UserResponse::Tentative,
            target: meeting::Target::SearchResult { long_id },
            instance_id: None,
            send_response: None,
        }];
        let r = d.execute(
            |s| meeting::request(s.version, &answers),
            meeting::read_response,
        );
        assert_eq!(r.results.len(), 1, "{r:?}");
        assert_eq!(r.results[0].status, meeting::Status::Success, "{r:?}");
        // RequestId comes back only when the request named one (MS-ASCMD 2.2.3.151).
        assert_eq!(r.results[0].request_id, None, "{r:?}");
        let calendar_id = r.results[0].calendar_id.clone().expect("a CalendarId");
        assert!(lab_item(&lab, INBOX, &request_mail).is_none());
        assert_eq!(lab.folder_items(CALENDAR), calendar_before + 1);
        let created = lab_item(&lab, CALENDAR, &calendar_id).unwrap();
        assert_eq!(created["props"]["Subject"], subject.as_str());
        assert_eq!(created["props"]["ResponseType"], "2");
    }
}

#[test]
fn a_policy_change_reprovisions_before_the_next_command() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        for version in [ProtocolVersion::V12_1, ProtocolVersion::V14_1] {
            let mut d = Device::connect(&lab, https, version, "repro");
            let first_key = d.session.state().policy_key;
            assert_eq!(d.prov.policies.len(), 1);
            let mut policy = lab::default_policy();
            for (k, v) in &mut policy {
                if k == "MinDevicePasswordLength" {
                    *v = format!("{}", 6 + https as u8);
                }
            }
            lab.handle.set_policy(policy).unwrap();
            // 12.1: HTTP 449; 14.1: Status 143 in the FolderSync answer. Either way the
            // transport provisions and repeats the command.
            let again = client::folder_sync(&mut d.session, &mut d.prov, &d.folder_key.clone());
            assert_eq!(again.status, folder::FolderSyncStatus::Success);
            assert_eq!(d.prov.rounds, 2, "{version}");
            assert_ne!(d.session.state().policy_key, first_key);
            let applied = d.prov.policies.last().unwrap();
            assert_eq!(
                applied.min_device_password_length,
                Some(6 + https as u32),
                "{version}: {applied:?}"
            );
            let record = lab.device(&d.account.device_id);
            assert_eq!(
                record["policy_generation"],
                lab.state()["policy"]["generation"],
                "{record}"
            );
            assert_eq!(
                record["policy_key"],
                d.session.state().policy_key.unwrap().to_string().as_str()
            );
        }
    }
}

#[test]
fn oof_time_based_round_trip_and_reply_by_long_id() {
    let lab = Lab::start(config());
    let user = lab.handle.user().to_string();
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V16_0, "ooft");
        let set = settings::OofSettings {
            state: Some(settings::OofState::TimeBased),
            start_time: Some("2026-12-20T00:00:00.000Z".into()),
            end_time: Some("2027-01-05T00:00:00.000Z".into()),
            messages: vec![
                settings::OofMessage {
                    audience: settings::Audience::Internal,
                    enabled: Some(true),
                    reply_message: Some("On holiday".into()),
                    body_type: Some("Text".into()),
                },
                settings::OofMessage {
                    audience: settings::Audience::ExternalUnknown,
                    enabled: Some(false),
                    reply_message: None,
                    body_type: None,
                },
            ],
        };
        let ops = [settings::Operation::OofSet(set)];
        let r = d.execute(
            |s| settings::request(s.version, &ops),
            settings::read_response,
        );
        assert_eq!(
            r.oof.map(|o| o.status),
            Some(settings::SettingsStatus::Success)
        );
        assert_eq!(lab.state()["oof_state"], 2);
        let ops = [settings::Operation::OofGet(settings::OofBodyType::Text)];
        let r = d.execute(
            |s| settings::request(s.version, &ops),
            settings::read_response,
        );
        let got = r.oof.unwrap().settings.unwrap();
        assert_eq!(got.state, Some(settings::OofState::TimeBased));
        assert_eq!(got.start_time.as_deref(), Some("2026-12-20T00:00:00.000Z"));
        assert_eq!(got.end_time.as_deref(), Some("2027-01-05T00:00:00.000Z"));
        let internal = got
            .messages
            .iter()
            .find(|m| m.audience == settings::Audience::Internal)
            .unwrap();
        assert_eq!(internal.reply_message.as_deref(), Some("On holiday"));
        let external = got
            .messages
            .iter()
            .find(|m| m.audience == settings::Audience::ExternalUnknown)
            .expect("the external-unknown message");
        assert_eq!(external.enabled, Some(false));

        // SmartForward of a Search hit named by its LongId alone (14.0+).
        let marked = lab
            .handle
            .add_mail(INBOX, &format!("Platypus report {https}"), "platypus facts")
            .unwrap();
        let query = search::Query::Mailbox(search::MailboxQuery {
            free_text: "platypus".into(),
            collection_ids: vec![INBOX.into()],
            class: Some("Email".into()),
            range: Some((0, 9)),
            ..search::MailboxQuery::default()
        });
        let r = d.execute(
            |s| search::request(s.version, &query),
            |p| search::read_response(p, query.store(), &mut OneSink(&mut Vec::new())),
        );
        let store = r.store.unwrap();
        // The lab's LongIds are ServerIds.
        let hit = store
            .results
            .iter()
            .find(|h| h.long_id.as_deref() == Some(marked.as_str()))
            .unwrap_or_else(|| panic!("{store:?}"));
        let source = Source {
            long_id: hit.long_id.clone(),
            ..Source::default()
        };
        let subject = format!("Fw: platypus {https}");
        let r = compose_send(
            &mut d,
            Kind::SmartForward(source),
            &message(&user, "hiro.tanaka@example.com", &subject, "fyi"),
        );
        assert!(r.sent(), "{r:?}");
        let stored = lab_item_by_subject(&lab, SENT, &subject).expect("in Sent");
        assert!(stored["body"].as_str().unwrap().contains("platypus facts"));
    }
}

#[test]
fn user_created_folders_of_each_class_sync_their_items() {
    let lab = Lab::start(config());
    for https in SCHEMES {
        let mut d = Device::connect(&lab, https, ProtocolVersion::V14_1, "ufold");
        let mut key = d.folder_key.clone();
        for (name, t, class, page, field) in [
            (
                "Team contacts",
                FolderType::UserContacts,
                Class::Contacts,
                cp::CONTACTS,
                "LastName",
            ),
            (
                "Team tasks",
                FolderType::UserTasks,
                Class::Tasks,
                cp::TASKS,
                "Subject",
            ),
            (
                "Team notes",
                FolderType::UserNotes,
                Class::Notes,
                cp::NOTES,
                "Subject",
            ),
            (
                "Team calendar",
                FolderType::UserCalendar,
                Class::Calendar,
                cp::CALENDAR,
                "Subject",
            ),
        ] {
            let name = format!("{name} {https}");
            let created = d.execute(
                |s| folder::folder_create_request(s.version, &key, CONTACTS, &name, t),
                folder::read_folder_create_response,
            );
            assert_eq!(created.status, FolderChangeStatus::Success, "{created:?}");
            key = created.sync_key.unwrap();
            let id = created.server_id.unwrap();
            assert_eq!(lab_folder(&lab, &id).unwrap()["parent_id"], CONTACTS);
            assert_eq!(lab_folder(&lab, &id).unwrap()["class"], class.as_str());

            let (sync_key, got) = d.sync_all(&id, class, None);
            assert!(got.added.is_empty());
            let value = format!("Created in {name}");
            let data = match class {
                Class::Calendar => vec![
                    item::text_node(
                        Tag::named(cp::CALENDAR, "Timezone"),
                        lab::seed::utc_timezone(),
                    ),
                    item::text_node(Tag::named(cp::CALENDAR, "StartTime"), "20261204T090000Z"),
                    item::text_node(Tag::named(cp::CALENDAR, "EndTime"), "20261204T093000Z"),
                    item::text_node(Tag::named(page, field), value.clone()),
                ],
                _ => vec![item::text_node(Tag::named(page, field), value.clone())],
            };
            let mut out = Collected::default();
            d.sync_commands(
                &sync_key,
                &id,
                class,
                vec![ClientCommand::Add {
                    client_id: "u1".into(),
                    data,
                }],
                &mut out,
            );
            let Some(ClientResponse::Add {
                server_id: Some(item_id),
                status: sync::Status::Success,
                ..
            }) = out.responses.first()
            else {
                panic!("{class:?}: {:?}", out.responses);
            };
            assert_eq!(lab.folder_items(&id), 1);
            assert_eq!(
                lab_item(&lab, &id, item_id).unwrap()["props"][field],
                value.as_str()
            );
            // A second device sees it with the property.
            let mut other = Device::connect(&lab, https, ProtocolVersion::V16_1, "ufold2");
            let (_, seen) = other.sync_all(&id, class, None);
            assert_eq!(seen.added.len(), 1);
            assert_eq!(Collected::text_of(&seen.added[0], page, field), Some(value));
        }
    }
}

/// The base64-encoded query form (MS-ASHTTP 2.2.1.1.1.1) end to end: provisioning, folder
/// and item sync, push, a saved SendMail (the SaveInSent option bit) and a multipart fetch
/// (the AcceptMultiPart option bit) all go through the same lab.
#[test]
fn the_base64_query_form_carries_a_whole_conversation() {
    let lab = Lab::start(config());
    for version in [ProtocolVersion::V14_1, ProtocolVersion::V16_1] {
        let account = lab.account(true, "b64");
        let mut session = account.session_with(Some(version), |c| {
            c.query_form = transport::QueryForm::Base64;
        });
        let mut prov = TestProvisioner::default();
        let hierarchy = client::folder_sync(&mut session, &mut prov, "0");
        assert_eq!(prov.rounds, 1);
        let key = session.state().policy_key.expect("a key").to_string();
        assert_eq!(lab.device(&account.device_id)["policy_key"], key.as_str());
        assert!(client::folders(&hierarchy).len() >= 10);

        let (_, mail) = client::sync_collection(
            &mut session,
            &mut prov,
            INBOX,
            Class::Email,
            Some(mime_options()),
        );
        assert_eq!(mail.added.len() as u64, lab.folder_items(INBOX));

        let folders = [PingFolder {
            id: INBOX.into(),
            class: Class::Email,
        }];
        let ping = session
            .execute(
                |s| ping::request(s.version, 1, &folders),
                ping::read_response,
                &mut prov,
                client::TIMEOUT,
            )
            .unwrap();
        assert_eq!(ping.status, ping::Status::Expired, "{ping:?}");

        let subject = format!("base64 {}", client::device_id("s"));
        let mime = message(
            "lab@example.com",
            "friend@example.org",
            &subject,
            "via base64",
        );
        let sent_before = lab.folder_items(SENT);
        let message = Compose {
            kind: Kind::SendMail,
            client_id: client::device_id("c"),
            account_id: None,
            save_in_sent_items: true,
            replace_mime: false,
            mime_len: mime.len() as u64,
        };
        let request = compose::request(version, &message).unwrap();
        let response = session
            .send(&request, Some(&mut mime.as_bytes()), client::TIMEOUT)
            .unwrap();
        let result = compose::read_response(&mut response.parser(version), &message.kind).unwrap();
        assert!(result.sent(), "{result:?}");
        assert_eq!(lab.folder_items(SENT), sent_before + 1);
        assert!(lab_item_by_subject(&lab, SENT, &subject).is_some());

        let first = &mail.added[0];
        let mut fetch = Fetch::new(FetchTarget::Item {
            collection_id: INBOX.into(),
            server_id: first.server_id.clone(),
        });
        fetch.body_preferences = vec![BodyPreference::new(BodyType::Mime)];
        fetch.mime_support = Some(2);
        let (response, body) = client::item_operations_fetch(&mut session, fetch, true);
        assert_eq!(response.status, itemops::Status::Success, "{response:?}");
        assert_eq!(
            Some(&body),
            mail.bodies.get(&first.server_id),
            "the fetched MIME equals the synced MIME"
        );
    }
}
