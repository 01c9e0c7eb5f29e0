//! `easyncd --once` end to end: the engine's sync cycle against the in-process lab (library
//! and binary), and against the SOGo peer when it runs (`EASYNC_SOGO_URL`).

#![cfg(feature = "lab")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::lab::Lab;
use common::setup::Setup;
use easync::config::{Config, SyncClass};
use easync::engine::account::{Account, Progress, Summary};
use easync::lab::NewItem;
use easync::lab::model::Prop;
use easync::lab::seed::folder;

/// What these tests do with a [`Setup`].
trait SetupExt {
    fn run_library(&self) -> (Summary, Vec<Progress>);
    fn run_binary(&self) -> std::process::Output;
}

impl SetupExt for Setup {
    fn run_library(&self) -> (Summary, Vec<Progress>) {
        let config = Config::load(&self.config_path).expect("the test configuration loads");
        let mut account = Account::new(config);
        let mut seen = Vec::new();
        let summary = account
            .run_once(&mut |p| seen.push(p))
            .unwrap_or_else(|e| panic!("run_once failed: {e}"));
        (summary, seen)
    }

    fn run_binary(&self) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_easyncd"))
            .arg("--config")
            .arg(&self.config_path)
            .arg("--once")
            .output()
            .expect("easyncd runs")
    }
}

/// Every item file under the data dir (mail messages, .vcf, .ics, notes) with its bytes,
/// keyed by path relative to the data dir (Maildir messages by unique name and flags).
fn files(data: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if rel.starts_with("state") || e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if e.file_name() != "tmp" {
                    walk(&path, root, out);
                }
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(data, data, &mut out);
    out
}

/// Items per class on disk.
fn counts(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for name in files.keys() {
        let class = match name.split('/').next() {
            Some("mail") => "email",
            Some("contacts") if name.ends_with(".vcf") => "contacts",
            Some("calendar") if name.ends_with(".ics") => "calendar",
            Some("tasks") if name.ends_with(".ics") => "tasks",
            Some("notes") => "notes",
            _ => continue,
        };
        *out.entry(class).or_default() += 1;
    }
    out
}

/// Items per class in the lab (the recipient cache is not synced).
fn lab_counts(lab: &Lab) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for f in lab.state()["folders"].as_array().unwrap() {
        let class = match f["class"].as_str() {
            Some("Email") => "email",
            Some("Contacts") if f["type"] != 19 => "contacts",
            Some("Calendar") => "calendar",
            Some("Tasks") => "tasks",
            Some("Notes") => "notes",
            _ => continue,
        };
        *out.entry(class).or_default() += f["items"].as_u64().unwrap();
    }
    out.retain(|_, n| *n > 0);
    out
}

/// The one message file of `files` under `prefix` (a Maildir folder) not in `before`.
fn new_files<'a>(
    before: &BTreeMap<String, Vec<u8>>,
    after: &'a BTreeMap<String, Vec<u8>>,
) -> Vec<&'a String> {
    after.keys().filter(|k| !before.contains_key(*k)).collect()
}

fn maildir_of(name: &str) -> &str {
    name.split('/').nth(1).unwrap()
}

#[test]
fn once_stores_every_class_and_a_second_run_changes_nothing() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.https_url().unwrap();
    let setup = Setup::new(
        &url,
        lab.handle.user(),
        "labpass",
        Some(&lab.ca_file),
        "once",
        "",
    );

    let (summary, progress) = setup.run_library();
    let first = files(&setup.data());
    let expected = lab_counts(&lab);
    assert!(
        expected.len() >= 5,
        "the lab seeds every class: {expected:?}"
    );
    assert_eq!(
        counts(&first),
        expected,
        "files per class equal the lab's items"
    );
    for (class, n) in &expected {
        let sc = SyncClass::ALL
            .iter()
            .find(|c| c.as_str() == *class)
            .unwrap();
        assert_eq!(summary.classes[sc].added, *n, "{class} added: {summary}");
    }
    assert!(summary.classes[&SyncClass::Email].bytes > 0);
    // Progress came per folder, with the estimate asked before the initial sync.
    let inbox = progress
        .iter()
        .rfind(|p| p.class == SyncClass::Email && p.done > 0)
        .expect("progress for the mail folders");
    assert!(inbox.estimated.is_some(), "{inbox:?}");
    assert!(
        progress.iter().any(|p| p.class == SyncClass::Contacts),
        "{progress:?}"
    );

    // The policy was acknowledged as not applied (3): nothing enforces it yet.
    let acks = lab.device(&setup.device_id)["acks"].clone();
    let acks: Vec<u64> = acks
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_u64().unwrap())
        .collect();
    assert!(!acks.is_empty(), "the device was provisioned");
    assert!(
        acks.iter().all(|&a| a == 3),
        "honest acknowledgement: {acks:?}"
    );

    // Maildir flags follow the seeded Read flags: some messages seen, some not.
    let seen = first
        .keys()
        .filter(|k| k.starts_with("mail/") && k.contains(":2,") && k.ends_with('S'))
        .count();
    let unseen = first
        .keys()
        .filter(|k| k.starts_with("mail/") && k.contains("/new/"))
        .count();
    assert!(seen > 0 && unseen > 0, "seen {seen}, unseen {unseen}");

    // A second run: same files, same bytes, nothing counted.
    let (again, _) = setup.run_library();
    assert_eq!(files(&setup.data()), first, "a second run changes nothing");
    for s in again.classes.values() {
        assert_eq!((s.added, s.changed, s.deleted), (0, 0, 0), "{again}");
    }
}

#[test]
fn server_changes_between_runs_show_up_as_files() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "changes", "");
    setup.run_library();
    let before = files(&setup.data());

    // New mail (unread) and a new contact.
    let mail_id = lab
        .handle
        .add_mail(folder::INBOX, "engine test", "hello from the lab")
        .unwrap();
    let contact_id = lab
        .handle
        .add_item(NewItem {
            folder_id: folder::CONTACTS.into(),
            props: vec![
                Prop::text("FileAs", "Turing, Alan"),
                Prop::text("FirstName", "Alan"),
                Prop::text("LastName", "Turing"),
            ],
            body: "enigma".into(),
            html: None,
            attachments: Vec::new(),
        })
        .unwrap();
    let (summary, _) = setup.run_library();
    let after_add = files(&setup.data());
    let added = new_files(&before, &after_add);
    assert_eq!(added.len(), 2, "{added:?}");
    let mail = added.iter().find(|k| k.starts_with("mail/")).unwrap();
    assert!(
        mail.contains("/new/"),
        "an unread mail has no flags: {mail}"
    );
    assert!(String::from_utf8_lossy(&after_add[*mail]).contains("engine test"));
    let vcf = added.iter().find(|k| k.ends_with(".vcf")).unwrap();
    let card = String::from_utf8_lossy(&after_add[*vcf]).into_owned();
    assert!(card.contains("Turing"), "{card}");
    assert_eq!(summary.classes[&SyncClass::Email].added, 1);
    assert_eq!(summary.classes[&SyncClass::Contacts].added, 1);

    // Read on the server: the message gets the S flag (same content); the contact changes.
    lab.handle
        .change_item(&mail_id, vec![Prop::text("Read", "1")], None)
        .unwrap();
    lab.handle
        .change_item(
            &contact_id,
            vec![Prop::text("LastName", "Turing-Changed")],
            None,
        )
        .unwrap();
    setup.run_library();
    let after_change = files(&setup.data());
    let moved = new_files(&after_add, &after_change);
    assert_eq!(moved.len(), 1, "only the mail moves: {moved:?}");
    assert!(
        moved[0].contains("/cur/") && moved[0].ends_with(":2,S"),
        "{}",
        moved[0]
    );
    assert_eq!(maildir_of(moved[0]), maildir_of(mail));
    assert_eq!(after_change[moved[0]], after_add[*mail], "same message");
    assert!(!after_change.contains_key(*mail));
    let card = String::from_utf8_lossy(&after_change[*vcf]).into_owned();
    assert!(card.contains("Turing-Changed"), "{card}");

    // Deleted on the server: both files go.
    lab.handle.delete_item(&mail_id).unwrap();
    lab.handle.delete_item(&contact_id).unwrap();
    let (summary, _) = setup.run_library();
    let after_delete = files(&setup.data());
    assert_eq!(after_delete, before, "back to the first state");
    assert_eq!(summary.classes[&SyncClass::Email].deleted, 1);
    assert_eq!(summary.classes[&SyncClass::Contacts].deleted, 1);
}

#[test]
fn easyncd_once_binary_syncs_and_reports() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "bin", "");
    let out = setup.run_binary();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("email") && stdout.contains("added"),
        "{stdout}"
    );
    assert!(stderr.contains("items"), "progress lines: {stderr}");
    assert_eq!(counts(&files(&setup.data())), lab_counts(&lab));
}

#[test]
fn easyncd_bad_password_exits_1_naming_the_credentials() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "wrong", None, "badpw", "");
    let out = setup.run_binary();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("password"), "{stderr}");
    assert!(
        !stderr.contains("wrong"),
        "the password is never printed: {stderr}"
    );
    let state = easync::store::state::StateFile::new(&setup.data())
        .load()
        .unwrap()
        .into_state();
    let recorded = state.last_error.expect("the error is recorded for status");
    assert!(recorded.contains("credentials"), "{recorded}");
}

#[test]
fn easyncd_usage_errors_exit_2_and_a_missing_config_1() {
    let bin = env!("CARGO_BIN_EXE_easyncd");
    let out = Command::new(bin)
        .args(["--config", "/nonexistent/easync.toml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missing configuration is a failure"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/easync.toml"), "{stderr}");
    let out = Command::new(bin).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--once"));
}

#[test]
fn sogo_once_into_a_fresh_data_dir() {
    let Ok(url) = std::env::var("EASYNC_SOGO_URL") else {
        eprintln!("SKIPPED: the SOGo peer is not running (run tests/run.sh)");
        return;
    };
    sogo_once(&url, "sogo");
    match std::env::var("EASYNC_SOGO_HTTPS_URL") {
        Ok(https) => sogo_once(&https, "sogos"),
        Err(_) => eprintln!("SKIPPED: https to SOGo (EASYNC_SOGO_HTTPS_URL unset)"),
    }
}

fn sogo_once(url: &str, tag: &str) {
    let ca = std::env::var_os("EASYNC_SOGO_CA").map(PathBuf::from);
    let setup = Setup::new(url, "easuser", "easpass", ca.as_deref(), tag, "");
    let out = setup.run_binary();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    eprintln!("{stdout}{stderr}");
    let found = counts(&files(&setup.data()));
    let n = |class| found.get(class).copied().unwrap_or(0);
    assert!(n("email") >= 3, "{found:?}\n{stdout}");
    assert!(n("contacts") >= 3, "{found:?}\n{stdout}");
    assert!(n("calendar") >= 3, "{found:?}\n{stdout}");
    assert!(n("tasks") >= 1, "{found:?}\n{stdout}");

    // A second run against the real server changes nothing either.
    let first = files(&setup.data());
    let out = setup.run_binary();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        files(&setup.data()),
        first,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_remote_wipe_is_persisted_before_it_is_acknowledged_and_blocks_later_runs() {
    use easync::engine::account::EngineError;
    use easync::store::state::{StateFile, WipeIntent};
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "wipe", "");
    setup.run_library();
    lab.handle
        .request_wipe(Some(&setup.device_id), false)
        .unwrap();
    let config = Config::load(&setup.config_path).unwrap();
    let error = Account::new(config.clone())
        .run_once(&mut |_| {})
        .expect_err("a wipe stops the cycle");
    assert!(
        matches!(error, EngineError::WipePending(WipeIntent::Full, _)),
        "{error:?}"
    );
    let state = StateFile::new(&setup.data()).load().unwrap().into_state();
    assert_eq!(state.wipe_intent, Some(WipeIntent::Full));
    let wipe = &lab.device(&setup.device_id)["wipe"];
    assert_eq!(wipe["state"], "acknowledged", "{wipe}");
    assert_eq!(wipe["status"], 1, "{wipe}");
    // The intent survives: the next run refuses to sync until the wipe is dealt with.
    match Account::new(config).run_once(&mut |_| {}) {
        Err(e @ EngineError::WipePending(..)) => assert!(e.to_string().contains("wipe"), "{e}"),
        other => panic!("expected WipePending, got {other:?}"),
    }
}

#[test]
fn older_protocol_versions_store_the_same_items() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    for version in ["14.0", "12.1"] {
        let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "v", "");
        let mut text = std::fs::read_to_string(&setup.config_path).unwrap();
        text = text.replace(
            "[account]\n",
            &format!("[account]\nprotocol_version = \"{version}\"\n"),
        );
        std::fs::write(&setup.config_path, text).unwrap();
        let (summary, _) = setup.run_library();
        assert_eq!(summary.protocol_version, version);
        let mut expected = lab_counts(&lab);
        if version == "12.1" {
            expected.remove("notes"); // notes exist from 14.0 on
        }
        let mut found = counts(&files(&setup.data()));
        found.retain(|_, n| *n > 0);
        assert_eq!(found, expected, "{version}: {summary}");
    }
}

#[test]
fn a_lost_sync_state_resyncs_the_folder_and_sweeps_what_the_server_deleted() {
    use easync::store::state::StateFile;
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "resync", "");
    let doomed = lab
        .handle
        .add_mail(folder::INBOX, "doomed", "deleted while the key is lost")
        .unwrap();
    setup.run_library();
    let before = files(&setup.data());
    // The server deletes a mail; the device's Inbox key becomes one the server never gave.
    lab.handle.delete_item(&doomed).unwrap();
    let file = StateFile::new(&setup.data());
    let mut state = file.load().unwrap().into_state();
    state.folders.get_mut(folder::INBOX).unwrap().sync_key = "not-a-key".into();
    file.save(&state).unwrap();

    let (summary, _) = setup.run_library();
    let after = files(&setup.data());
    assert_eq!(counts(&after), lab_counts(&lab), "{summary}");
    let gone: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    assert_eq!(gone.len(), 1, "only the deleted mail goes: {gone:?}");
    assert!(String::from_utf8_lossy(&before[gone[0]]).contains("doomed"));
    assert_eq!(
        summary.classes[&SyncClass::Email].added,
        0,
        "no copies: {summary}"
    );
    let state = file.load().unwrap().into_state();
    assert_ne!(state.folders[folder::INBOX].sync_key, "not-a-key");
}

#[test]
fn a_broken_response_fails_the_run_and_the_next_run_completes_without_duplicates() {
    use easync::lab::{Fault, FaultKind};
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "fault", "");
    // Only the Inbox, so that the broken response is the one carrying the new mail.
    let text = std::fs::read_to_string(&setup.config_path).unwrap();
    let text = text.replace("[sync]\n", "[sync]\ninclude_folders = [\"Inbox\"]\n");
    std::fs::write(&setup.config_path, text).unwrap();
    setup.run_library();
    let inbox_before = files(&setup.data()).len() as u64;
    assert_eq!(inbox_before, lab.folder_items(folder::INBOX));
    for i in 0..5 {
        lab.handle
            .add_mail(folder::INBOX, &format!("batch {i}"), "more mail")
            .unwrap();
    }
    lab.handle.inject_fault(Fault {
        command: Some("Sync".into()),
        ..Fault::new(FaultKind::Truncate)
    });
    let config = Config::load(&setup.config_path).unwrap();
    let error = Account::new(config)
        .run_once(&mut |_| {})
        .expect_err("a truncated response fails the cycle");
    assert!(!error.to_string().is_empty());
    let after_failure = files(&setup.data()).len() as u64;
    assert!(
        after_failure < inbox_before + 5,
        "the broken response stopped the run"
    );
    let (summary, _) = setup.run_library();
    let stored = files(&setup.data());
    assert_eq!(
        stored.len() as u64,
        inbox_before + 5,
        "nothing lost, nothing doubled: {summary}"
    );
    assert_eq!(lab.folder_items(folder::INBOX), inbox_before + 5);
    for i in 0..5 {
        let subject = format!("batch {i}");
        let copies = stored
            .values()
            .filter(|m| String::from_utf8_lossy(m).contains(&subject))
            .count();
        assert_eq!(copies, 1, "{subject}");
    }
}

#[test]
fn folders_added_renamed_and_deleted_on_the_server_follow_locally() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "folders", "");
    setup.run_library();
    // Two new mail folders whose names clash once sanitized, and a new address book.
    let a = lab.handle.add_folder("0", "Reports/2026", 12).unwrap();
    let b = lab.handle.add_folder("0", "Reports_2026", 12).unwrap();
    let book = lab.handle.add_folder("0", "Suppliers", 14).unwrap();
    lab.handle.add_mail(&a, "in a", "first folder").unwrap();
    lab.handle.add_mail(&b, "in b", "second folder").unwrap();
    lab.handle
        .add_item(NewItem {
            folder_id: book.clone(),
            props: vec![Prop::text("FirstName", "Grace")],
            body: String::new(),
            html: None,
            attachments: Vec::new(),
        })
        .unwrap();
    setup.run_library();
    let mail = setup.data().join("mail");
    let a_files = files(&mail.join("Reports_2026"));
    let b_files = files(&mail.join("Reports_2026~2"));
    assert_eq!(a_files.len(), 1, "{a_files:?}");
    assert_eq!(b_files.len(), 1, "{b_files:?}");
    assert!(String::from_utf8_lossy(a_files.values().next().unwrap()).contains("in a"));
    assert_eq!(files(&setup.data().join("contacts/Suppliers")).len(), 1);

    // A rename keeps the directory (device apps keep their paths); a delete removes it.
    lab.handle.update_folder(&a, "0", "Renamed").unwrap();
    lab.handle.delete_folder(&b).unwrap();
    setup.run_library();
    assert_eq!(files(&mail.join("Reports_2026")).len(), 1);
    assert!(!mail.join("Reports_2026~2").exists());
    assert_eq!(counts(&files(&setup.data())), lab_counts(&lab));
}

#[test]
fn a_cached_server_url_is_used_when_the_configuration_names_none() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "cache", "");
    let text = std::fs::read_to_string(&setup.config_path).unwrap();
    let text = text.replace(&format!("server = {url:?}\n"), "");
    assert!(!text.contains("server ="));
    std::fs::write(&setup.config_path, text).unwrap();
    let state_dir = setup.data().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::write(
        state_dir.join(easync::engine::account::SERVER_URL_FILE),
        format!("{url}\n"),
    )
    .unwrap();
    let (summary, _) = setup.run_library();
    assert_eq!(summary.url, url);
    assert_eq!(counts(&files(&setup.data())), lab_counts(&lab));
}

#[test]
fn a_folder_deleted_during_the_sync_leads_to_folder_sync_and_the_run_completes() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "status12", "");
    let book = lab.handle.add_folder("0", "Suppliers", 14).unwrap();
    lab.handle
        .add_item(NewItem {
            folder_id: book.clone(),
            props: vec![Prop::text("FirstName", "Grace")],
            body: String::new(),
            html: None,
            attachments: Vec::new(),
        })
        .unwrap();
    // The folder disappears on the server while the first run is syncing: its Sync gets
    // status 12 (whether it comes before or after the folder being synced at that moment),
    // and the run must follow with a FolderSync and finish the other folders.
    let config = easync::config::Config::load(&setup.config_path).unwrap();
    let mut account = Account::new(config);
    let mut deleted = false;
    let summary = account
        .run_once(&mut |_| {
            if !deleted {
                deleted = true;
                lab.handle.delete_folder(&book).unwrap();
            }
        })
        .unwrap_or_else(|e| panic!("run_once failed: {e}"));
    assert!(deleted, "progress was reported");
    assert!(!setup.data().join("contacts/Suppliers").exists());
    assert_eq!(counts(&files(&setup.data())), lab_counts(&lab), "{summary}");
}

#[test]
fn a_second_process_on_the_same_data_dir_is_refused_and_writes_nothing() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "lock", "");
    let config = Config::load(&setup.config_path).unwrap();
    let mut holder = Account::new(config);
    holder.run_once(&mut |_| {}).expect("the first cycle");
    let state = std::fs::read(setup.data().join("state/account.postcard")).unwrap();

    let out = setup.run_binary();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in use by another easync process")
            && stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(setup.data().join("state/account.postcard")).unwrap(),
        state,
        "the refused process wrote nothing into the state"
    );

    drop(holder);
    let out = setup.run_binary();
    assert!(out.status.success(), "free again once the holder is gone");
}
