//! Interoperability with a real server: the SOGo peer (../shared/peers/sogo), set up and torn
//! down by `tests/run.sh`. SOGo speaks up to 14.1, has no policy (Provision answers "no
//! policy") and opaque SyncKeys — see the peer's README.
//!
//! Without the peer (`EASYNC_SOGO_URL` unset) each test prints that it was skipped.

mod common;

use std::time::{Duration, Instant};

use common::client::{self, Account, Collected, Provisioned, TestProvisioner};
use easync::eas::ProtocolVersion;
use easync::eas::compose::{self, Compose, Kind};
use easync::eas::folder::FolderType;
use easync::eas::item::{BodyPreference, BodyType, Class};
use easync::eas::ping::{self, PingFolder};
use easync::eas::sync::{MimeSupport, SyncOptions};
use easync::wbxml::tags::cp;

const USER: &str = "easuser";
const PASSWORD: &str = "easpass";

fn account(https: bool, tag: &str) -> Option<Account> {
    let Ok(url) = std::env::var(if https {
        "EASYNC_SOGO_HTTPS_URL"
    } else {
        "EASYNC_SOGO_URL"
    }) else {
        eprintln!("SKIPPED: the SOGo peer is not running (run tests/run.sh)");
        return None;
    };
    Some(Account {
        url,
        user: USER.into(),
        password: PASSWORD.into(),
        device_id: client::device_id(tag),
        ca_file: std::env::var_os("EASYNC_SOGO_CA").map(Into::into),
    })
}

fn mime_options() -> SyncOptions {
    SyncOptions {
        body_preferences: vec![BodyPreference::new(BodyType::Mime)],
        mime_support: Some(MimeSupport::Always),
        mime_truncation: Some(8),
        ..SyncOptions::default()
    }
}

#[test]
fn options_negotiates_14_1_over_http_and_https() {
    for https in [false, true] {
        let Some(account) = account(https, "opt") else {
            return;
        };
        let mut session = easync::transport::Session::new(
            easync::transport::Client::new(account.config()).unwrap(),
            ProtocolVersion::V16_1,
        );
        let info = session.negotiate(None, client::TIMEOUT).unwrap();
        assert_eq!(session.state().version, ProtocolVersion::V14_1, "{info:?}");
        // SOGo answers Provision without listing it.
        for cmd in ["Sync", "FolderSync", "Ping", "SendMail", "ItemOperations"] {
            assert!(
                info.supports_command(cmd),
                "{cmd} missing from {:?}",
                info.commands
            );
        }
    }
}

#[test]
fn provision_without_policy_then_every_class_syncs() {
    let Some(account) = account(false, "sync") else {
        return;
    };
    let mut session = account.session(None);
    let mut prov = TestProvisioner::default();
    // Provision up front, as the engine does at enrollment.
    easync::transport::Provisioner::provision(&mut prov, &mut session).unwrap();
    assert_eq!(prov.last, Some(Provisioned::NoPolicy));
    assert_eq!(session.state().policy_key, None);

    let hierarchy = client::folder_sync(&mut session, &mut prov, "0");
    assert!(hierarchy.sync_key.is_some());
    let folders = client::folders(&hierarchy);

    let inbox = client::folder_of_type(&folders, FolderType::Inbox);
    let (_, mail) = client::sync_collection(
        &mut session,
        &mut prov,
        &inbox.server_id,
        Class::Email,
        Some(mime_options()),
    );
    assert!(mail.added.len() >= 3, "{} mails", mail.added.len());
    for item in &mail.added {
        let mime = mail
            .bodies
            .get(&item.server_id)
            .expect("MIME body streamed");
        let text = String::from_utf8_lossy(mime);
        assert!(text.contains("Subject:"), "not MIME: {text:.200}");
    }

    for (t, class, min, field) in [
        (
            FolderType::Contacts,
            Class::Contacts,
            3,
            (cp::CONTACTS, "LastName"),
        ),
        (
            FolderType::Calendar,
            Class::Calendar,
            3,
            (cp::CALENDAR, "Subject"),
        ),
        (FolderType::Tasks, Class::Tasks, 1, (cp::TASKS, "Subject")),
    ] {
        let folder = client::folder_of_type(&folders, t);
        let (_, got) =
            client::sync_collection(&mut session, &mut prov, &folder.server_id, class, None);
        assert!(got.added.len() >= min, "{t:?}: {} items", got.added.len());
        for item in &got.added {
            assert!(
                Collected::text_of(item, field.0, field.1).is_some(),
                "{t:?} item without {}: {item:?}",
                field.1
            );
        }
    }
}

#[test]
fn ping_is_woken_by_mail_appended_over_imap() {
    let Some(account) = account(false, "ping") else {
        return;
    };
    let Ok(imap) = std::env::var("EASYNC_SOGO_IMAP") else {
        return;
    };
    let mut session = account.session(None);
    let mut prov = TestProvisioner::default();
    let folders = client::folders(&client::folder_sync(&mut session, &mut prov, "0"));
    let inbox = client::folder_of_type(&folders, FolderType::Inbox);
    let (key, before) = client::sync_collection(
        &mut session,
        &mut prov,
        &inbox.server_id,
        Class::Email,
        None,
    );

    let subject = format!("easync push {}", client::device_id("p"));
    let message = format!(
        "From: tester@eas.test\r\nTo: {USER}@eas.test\r\nSubject: {subject}\r\n\
         Message-ID: <{}@eas.test>\r\nContent-Type: text/plain\r\n\r\nwake up\r\n",
        client::device_id("m")
    );
    let appender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        common::imap::append(&imap, USER, PASSWORD, "INBOX", &message)
    });

    let folders = [PingFolder {
        id: inbox.server_id.clone(),
        class: Class::Email,
    }];
    let started = Instant::now();
    let response = session
        .execute(
            |s| ping::request(s.version, 60, &folders),
            ping::read_response,
            &mut prov,
            easync::transport::ping_timeout(Duration::from_secs(60)),
        )
        .unwrap();
    appender.join().unwrap().expect("IMAP append");
    assert_eq!(response.status, ping::Status::ChangesFound, "{response:?}");
    assert_eq!(response.folders, vec![inbox.server_id.clone()]);
    eprintln!("Ping returned after {:?}", started.elapsed());

    // Sync on from the last key until the new mail is in.
    let mut c = easync::eas::sync::CollectionRequest::new(&key, &inbox.server_id, Class::Email);
    c.get_changes = Some(true);
    let mut out = Collected::default();
    let mut key = key;
    for _ in 0..5 {
        c.sync_key = key.clone();
        let req = easync::eas::sync::SyncRequest {
            collections: vec![c.clone()],
            ..Default::default()
        };
        if let easync::eas::sync::SyncOutcome::Response(r) =
            client::sync_once(&mut session, &mut prov, &req, &mut out)
        {
            key = r.collections[0].sync_key.clone().unwrap_or(key);
        }
        if out
            .added
            .iter()
            .any(|i| Collected::text_of(i, cp::EMAIL, "Subject").as_deref() == Some(&subject))
        {
            assert!(before.added.len() >= 3);
            return;
        }
    }
    panic!("the appended mail never arrived: {:?}", out.added);
}

#[test]
fn sendmail_streams_the_message_and_it_lands_in_sent() {
    let Some(account) = account(true, "send") else {
        return;
    };
    let mut session = account.session(None);
    let mut prov = TestProvisioner::default();
    let subject = format!("easync sendmail {}", client::device_id("s"));
    let mime = format!(
        "From: {USER}@eas.test\r\nTo: someone@eas.test\r\nSubject: {subject}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        "streamed line\r\n".repeat(2000)
    );
    let message = Compose {
        kind: Kind::SendMail,
        client_id: client::device_id("c"),
        account_id: None,
        save_in_sent_items: true,
        replace_mime: false,
        mime_len: mime.len() as u64,
    };
    let version = session.state().version;
    let request = compose::request(version, &message).unwrap();
    let mut reader = mime.as_bytes();
    let response = session
        .send(&request, Some(&mut reader), client::TIMEOUT)
        .unwrap();
    let result = compose::read_response(&mut response.parser(version), &message.kind).unwrap();
    assert!(result.sent(), "{result:?}");

    let folders = client::folders(&client::folder_sync(&mut session, &mut prov, "0"));
    let sent = client::folder_of_type(&folders, FolderType::SentItems);
    for _ in 0..10 {
        let (_, got) =
            client::sync_collection(&mut session, &mut prov, &sent.server_id, Class::Email, None);
        if got
            .added
            .iter()
            .any(|i| Collected::text_of(i, cp::EMAIL, "Subject").as_deref() == Some(&subject))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the sent message is not in Sent");
}

#[test]
fn itemoperations_fetches_a_mail_body_as_mime() {
    let Some(account) = account(true, "fetch") else {
        return;
    };
    let mut session = account.session(None);
    let mut prov = TestProvisioner::default();
    let folders = client::folders(&client::folder_sync(&mut session, &mut prov, "0"));
    let inbox = client::folder_of_type(&folders, FolderType::Inbox);
    let (_, mail) = client::sync_collection(
        &mut session,
        &mut prov,
        &inbox.server_id,
        Class::Email,
        None,
    );
    let item = mail.added.first().expect("a seeded mail");
    let subject = Collected::text_of(item, cp::EMAIL, "Subject").expect("a subject");
    for multipart in [false, true] {
        let (response, body, was_multipart) = client::fetch_body(
            &mut session,
            &inbox.server_id,
            &item.server_id,
            BodyType::Mime,
            multipart,
        );
        assert_eq!(
            response.status,
            easync::eas::itemops::Status::Success,
            "{response:?}"
        );
        eprintln!("multipart asked: {multipart}, answered: {was_multipart}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains(&format!("Subject: {subject}")),
            "multipart={multipart}: {text:.300}"
        );
    }
}

#[test]
fn the_base64_query_form_works_against_sogo() {
    let Some(account) = account(false, "b64") else {
        return;
    };
    let mut session = account.session_with(None, |c| {
        c.query_form = easync::transport::QueryForm::Base64;
    });
    let mut prov = TestProvisioner::default();
    easync::transport::Provisioner::provision(&mut prov, &mut session).unwrap();
    assert_eq!(prov.last, Some(Provisioned::NoPolicy));
    let folders = client::folders(&client::folder_sync(&mut session, &mut prov, "0"));
    let inbox = client::folder_of_type(&folders, FolderType::Inbox);
    let (_, mail) = client::sync_collection(
        &mut session,
        &mut prov,
        &inbox.server_id,
        Class::Email,
        None,
    );
    assert!(mail.added.len() >= 3, "{} mails", mail.added.len());
}
