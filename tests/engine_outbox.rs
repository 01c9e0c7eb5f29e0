//! The outbox, on-demand fetches and the policy's caps end to end against the in-process
//! lab: messages dropped into `outbox/new` are sent (and land in the lab's Sent Items),
//! resends are recognized by their ClientId, refused messages are set aside, faults keep
//! messages queued; attachments are fetched into files within the policy's bounds; a mail
//! cut under MaxEmailBodyTruncationSize is stored marked and completed on demand; the
//! policy's age filter reaches the Sync requests.

#![cfg(feature = "lab")]

mod common;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use common::client;
use common::lab::Lab;
use easync::config::Config;
use easync::engine::account::{Account, EngineError};
use easync::engine::fetch::{self, TRUNCATED_HEADER};
use easync::engine::outbox::FAILED_DIR;
use easync::lab::model::Prop;
use easync::lab::seed::folder;
use easync::lab::{Fault, FaultKind, NewItem};
use easync::store::state::StateFile;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A configuration for the lab's user (HTTP, capped at `version`) in a temp dir.
struct Setup {
    dir: TempDir,
    config_path: PathBuf,
    device_id: String,
}

impl Setup {
    fn new(lab: &Lab, version: &str, tag: &str) -> Setup {
        Setup::with_sync(lab, version, tag, "")
    }

    /// With extra `[sync]` lines.
    fn with_sync(lab: &Lab, version: &str, tag: &str, sync: &str) -> Setup {
        let dir = std::env::temp_dir().join(client::device_id(&format!("outbox-{tag}-")));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = TempDir(dir);
        let password_file = dir.0.join("password");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&password_file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"labpass"))
            .unwrap();
        let device_id = client::device_id(&tag.replace('.', ""));
        let text = format!(
            "[account]\nemail = {user:?}\nuser = {user:?}\npassword_file = {:?}\nserver = {:?}\n\
             protocol_version = {version:?}\n\n[tls]\nallow_insecure_http = true\n\n\
             [storage]\ndata_dir = {:?}\n\n[sync]\nmail_age = \"all\"\ncalendar_age = \"all\"\n{sync}\n\
             [device]\ndevice_id = {device_id:?}\n",
            password_file.display().to_string(),
            lab.handle.http_url().unwrap(),
            dir.0.join("data").display().to_string(),
            user = lab.handle.user(),
        );
        let config_path = dir.0.join("easync.toml");
        std::fs::write(&config_path, text).unwrap();
        Setup {
            dir,
            config_path,
            device_id,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    fn account(&self) -> Account {
        Account::new(Config::load(&self.config_path).expect("the test configuration loads"))
    }

    /// Drops a message into `outbox/new` under the unique name `name`.
    fn queue(&self, name: &str, mime: &str) {
        let new = self.data().join("outbox").join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join(name), mime).unwrap();
    }

    /// Unique names of the messages in a Maildir's `new/` and `cur/` under the data dir.
    fn names(&self, maildir: &str) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.data().join(maildir).join(sub)) {
                out.extend(
                    entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
        }
        out.sort();
        out
    }
}

fn message(to: Option<&str>, subject: &str, body: &str) -> String {
    let to = to.map(|t| format!("To: {t}\r\n")).unwrap_or_default();
    format!(
        "From: lab@example.com\r\n{to}Subject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
}

fn lab_with_policy(settings: &[(&str, &str)]) -> Lab {
    let mut config = Lab::default_config();
    config.items = 4;
    for (name, value) in settings {
        config.policy.retain(|(n, _)| n != name);
        config.policy.push((name.to_string(), value.to_string()));
    }
    Lab::start(config)
}

const VERSIONS: [&str; 3] = ["12.1", "14.0", "16.1"];

#[test]
fn queued_messages_are_sent_and_removed_on_every_version() {
    let lab = lab_with_policy(&[]);
    for version in VERSIONS {
        let setup = Setup::new(&lab, version, &format!("send{version}"));
        let mut account = setup.account();
        let nothing = account.send_outbox().expect("an empty outbox is no work");
        assert_eq!(nothing.sent, 0);
        assert!(
            lab.state()["devices"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["device_id"] != setup.device_id.as_str()),
            "an empty outbox does not reach the server"
        );

        let sent_before = lab.folder_items(folder::SENT);
        let big_body = "0123456789abcdef\r\n".repeat(4000);
        setup.queue(
            "1000.a.test",
            &message(Some("someone@example.com"), "first", "hello"),
        );
        setup.queue(
            "1000.b.test",
            &message(Some("other@example.com"), "second", &big_body),
        );
        let summary = account.send_outbox().expect("the outbox is sent");
        assert_eq!(summary.sent, 2, "{version}: {summary}");
        assert!(summary.bytes > big_body.len() as u64);
        assert!(
            setup.names("outbox").is_empty(),
            "{version}: sent messages are removed"
        );
        assert_eq!(lab.folder_items(folder::SENT), sent_before + 2, "{version}");
        assert!(summary.to_string().contains("2 sent"), "{summary}");
    }
}

#[test]
fn a_resend_after_a_crash_is_recognized_by_its_client_id() {
    let lab = lab_with_policy(&[]);
    for version in ["14.0", "16.1"] {
        let setup = Setup::new(&lab, version, &format!("resend{version}"));
        let mut account = setup.account();
        let mime = message(Some("someone@example.com"), "once", "only once");
        setup.queue("2000.crash.test", &mime);
        let sent_before = lab.folder_items(folder::SENT);
        assert_eq!(account.send_outbox().unwrap().sent, 1);
        // The crash: the server took it, but the file came back (never removed).
        setup.queue("2000.crash.test", &mime);
        let again = account.send_outbox().unwrap();
        assert_eq!(
            (again.sent, again.already_sent),
            (0, 1),
            "{version}: {again}"
        );
        assert!(setup.names("outbox").is_empty());
        assert_eq!(
            lab.folder_items(folder::SENT),
            sent_before + 1,
            "{version}: not sent twice"
        );

        // The answer is lost after the server stored the message (junk instead of it): the
        // message stays queued, and the next round finds it was sent.
        setup.queue(
            "2001.lost.test",
            &message(Some("a@example.com"), "lost", "x"),
        );
        lab.handle.inject_fault(Fault {
            command: Some("SendMail".into()),
            ..Fault::new(FaultKind::Garbage)
        });
        let err = account
            .send_outbox()
            .expect_err("the lost answer is an error");
        assert!(matches!(err, EngineError::Transport(_)), "{err}");
        assert_eq!(setup.names("outbox"), ["2001.lost.test"], "kept queued");
        let after = account.send_outbox().unwrap();
        assert_eq!(
            (after.sent, after.already_sent),
            (0, 1),
            "{version}: {after}"
        );
        assert_eq!(lab.folder_items(folder::SENT), sent_before + 2, "{version}");
    }
}

#[test]
fn a_refused_message_is_set_aside_and_the_rest_is_sent() {
    let lab = lab_with_policy(&[]);
    let setup = Setup::new(&lab, "16.1", "refused");
    let mut account = setup.account();
    setup.queue("3000.a.norecipient", &message(None, "nobody", "to no one"));
    setup.queue(
        "3000.b.good",
        &message(Some("x@example.com"), "good", "fine"),
    );
    let summary = account
        .send_outbox()
        .expect("a refusal does not stop the round");
    assert_eq!(summary.sent, 1, "{summary}");
    assert_eq!(summary.refused.len(), 1, "{summary}");
    assert!(summary.refused[0].1.contains("119"), "{summary}");
    assert!(setup.names("outbox").is_empty());
    assert_eq!(
        setup.names(FAILED_DIR),
        ["3000.a.norecipient"],
        "kept, not lost"
    );
    // Nothing is retried by itself.
    let next = account.send_outbox().unwrap();
    assert_eq!((next.sent, next.refused.len()), (0, 0));
}

#[test]
fn server_and_network_faults_keep_messages_queued() {
    let lab = lab_with_policy(&[]);
    for version in ["12.1", "16.1"] {
        let setup = Setup::new(&lab, version, &format!("fault{version}"));
        let mut account = setup.account();
        setup.queue("4000.a.test", &message(Some("x@example.com"), "later", "x"));
        for kind in [FaultKind::ServerError, FaultKind::Throttle] {
            lab.handle.inject_fault(Fault {
                command: Some("SendMail".into()),
                count: 5,
                retry_after: Some("3600".into()),
                ..Fault::new(kind)
            });
            let err = account.send_outbox().expect_err("the fault is an error");
            assert!(matches!(err, EngineError::Transport(_)), "{version}: {err}");
            assert_eq!(setup.names("outbox"), ["4000.a.test"], "{version} {kind:?}");
            lab.handle.clear_faults();
        }
        let sent_before = lab.folder_items(folder::SENT);
        assert_eq!(account.send_outbox().unwrap().sent, 1, "{version}");
        assert_eq!(lab.folder_items(folder::SENT), sent_before + 1);
    }
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Files in `dir` (to see that nothing, not even a temporary file, is left behind).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn attachments_are_fetched_into_files_within_the_policy() {
    let lab = lab_with_policy(&[("MaxAttachmentSize", "20000")]);
    let small = pseudo_random(15_000);
    let large = pseudo_random(60_000);
    let small_ref = format!("{}:0", lab.mail_with_attachment("data.bin", small.clone()));
    let large_ref = format!("{}:0", lab.mail_with_attachment("data.bin", large));
    for version in ["12.1", "16.1"] {
        let setup = Setup::new(&lab, version, &format!("att{version}"));
        let mut account = setup.account();
        account.run_once(&mut |_| {}).expect("the first cycle");
        let limits = StateFile::new(&setup.data())
            .load()
            .unwrap()
            .into_state()
            .policy_limits;
        assert_eq!(limits.and_then(|l| l.max_attachment_bytes), Some(20_000));

        let out = setup.dir.0.join("downloads");
        std::fs::create_dir_all(&out).unwrap();
        let dest = out.join("small.bin");
        let len = account
            .fetch_attachment(&small_ref, &dest)
            .expect("the fetch");
        assert_eq!(len, small.len() as u64);
        assert_eq!(std::fs::read(&dest).unwrap(), small, "{version}");

        let err = account
            .fetch_attachment(&large_ref, &out.join("large.bin"))
            .expect_err("over MaxAttachmentSize");
        assert!(err.to_string().contains("MaxAttachmentSize"), "{err}");
        assert_eq!(
            entries(&out),
            ["small.bin"],
            "{version}: nothing else left behind"
        );
    }

    // A policy without attachments refuses every fetch.
    lab.handle
        .set_policy(vec![("AttachmentsEnabled".into(), "0".into())])
        .unwrap();
    let setup = Setup::new(&lab, "16.1", "noatt");
    let mut account = setup.account();
    account.run_once(&mut |_| {}).expect("the first cycle");
    let err = account
        .fetch_attachment(&small_ref, &setup.dir.0.join("x.bin"))
        .expect_err("attachments are disabled");
    assert!(err.to_string().contains("AttachmentsEnabled"), "{err}");
    assert!(!setup.dir.0.join("x.bin").exists());
}

/// The path of the only mail file under `data/mail` whose text contains `needle`.
fn mail_file_with(data: &Path, needle: &str) -> PathBuf {
    let mut found = Vec::new();
    for folder in std::fs::read_dir(data.join("mail")).unwrap().flatten() {
        for sub in ["new", "cur"] {
            let Ok(files) = std::fs::read_dir(folder.path().join(sub)) else {
                continue;
            };
            for f in files.flatten() {
                let text = String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).into_owned();
                if text.contains(needle) {
                    found.push(f.path());
                }
            }
        }
    }
    assert_eq!(found.len(), 1, "one mail contains {needle:?}: {found:?}");
    found.remove(0)
}

#[test]
fn policy_caps_reach_the_requests_and_truncated_mail_is_completed() {
    let lab = lab_with_policy(&[
        ("MaxEmailAgeFilter", "3"),
        ("MaxCalendarAgeFilter", "4"),
        ("MaxEmailBodyTruncationSize", "1"),
    ]);
    let body = format!("BEGIN {} END", "all of this text must arrive. ".repeat(200));
    let server_id = lab
        .handle
        .add_mail(folder::INBOX, "long letter", &body)
        .unwrap();
    for version in ["12.1", "16.1"] {
        let setup = Setup::new(&lab, version, &format!("caps{version}"));
        let mut account = setup.account();
        account.run_once(&mut |_| {}).expect("the cycle");

        let limits = StateFile::new(&setup.data())
            .load()
            .unwrap()
            .into_state()
            .policy_limits
            .expect("the policy's limits are kept in the state");
        assert_eq!(limits.max_email_age, Some(3));
        assert_eq!(limits.max_calendar_age, Some(4));
        assert_eq!(limits.max_email_body_bytes, Some(1024));

        // The configuration says "all"; the policy's filters win.
        let device = lab.device(&setup.device_id);
        let filter = |id: &str| device["collections"][id]["filter_type"].as_u64();
        assert_eq!(filter(folder::INBOX), Some(3), "{version}: {device}");
        assert_eq!(filter(folder::CALENDAR), Some(4), "{version}: {device}");

        // The long mail came cut at 1 KiB, marked.
        let path = mail_file_with(&setup.data(), "long letter");
        let cut = std::fs::read_to_string(&path).unwrap();
        assert!(cut.starts_with(&format!("{TRUNCATED_HEADER}: ")), "{cut}");
        assert!(fetch::is_marked_truncated(&path).unwrap());
        assert!(!cut.contains(" END"), "the body is cut");
        assert!(cut.len() < 1024 + 100, "{} bytes", cut.len());

        let len = account
            .fetch_full_message(folder::INBOX, &server_id)
            .expect("the whole message");
        let whole = std::fs::read_to_string(&path).expect("same name (and flags)");
        assert_eq!(len, whole.len() as u64);
        assert!(whole.contains(&body), "{version}: the whole body is there");
        assert!(!fetch::is_marked_truncated(&path).unwrap());
    }
}

/// The path of the only file under `data/<class_dir>` whose text contains `needle`.
fn item_file_with(data: &Path, class_dir: &str, needle: &str) -> PathBuf {
    let mut found = Vec::new();
    for folder in std::fs::read_dir(data.join(class_dir)).unwrap().flatten() {
        for f in std::fs::read_dir(folder.path()).unwrap().flatten() {
            let text = String::from_utf8_lossy(&std::fs::read(f.path()).unwrap()).into_owned();
            if text.contains(needle) {
                found.push(f.path());
            }
        }
    }
    assert_eq!(found.len(), 1, "one item contains {needle:?}: {found:?}");
    found.remove(0)
}

#[test]
fn an_item_cut_by_the_body_size_limit_is_completed_when_it_fits() {
    let lab = lab_with_policy(&[]);
    let note = |subject: &str, body: String| {
        lab.handle
            .add_item(NewItem {
                folder_id: folder::NOTES.into(),
                props: vec![
                    Prop::text("Subject", subject),
                    Prop::text("MessageClass", "IPM.StickyNote"),
                ],
                body,
                ..NewItem::default()
            })
            .unwrap()
    };
    let long = format!("START {} FINISH", "words to keep ".repeat(100));
    let long_id = note("long note", long.clone());
    let huge_id = note("huge note", format!("HUGE {}", "x".repeat(600 * 1024)));
    let setup = Setup::with_sync(&lab, "16.1", "pimcut", "body_size_limit = 100");
    let mut account = setup.account();
    account.run_once(&mut |_| {}).expect("the cycle");

    let path = item_file_with(&setup.data(), "notes", "START");
    assert!(
        !std::fs::read_to_string(&path).unwrap().contains("FINISH"),
        "cut at 100"
    );
    let len = account
        .fetch_full_item(folder::NOTES, &long_id)
        .expect("the whole note");
    let whole = std::fs::read_to_string(&path).expect("the same file");
    assert_eq!(len, whole.len() as u64);
    assert!(whole.contains(long.trim_end()), "{whole}");
    assert_eq!(item_file_with(&setup.data(), "notes", "FINISH"), path);

    let huge_path = item_file_with(&setup.data(), "notes", "HUGE");
    let before = std::fs::read(&huge_path).unwrap();
    let err = account
        .fetch_full_item(folder::NOTES, &huge_id)
        .expect_err("over the body buffer");
    assert!(err.to_string().contains("left out"), "{err}");
    assert_eq!(std::fs::read(&huge_path).unwrap(), before, "kept as it was");
}
