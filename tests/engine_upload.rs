//! Two-way sync, device → server: files created, edited and deleted on the device and
//! Maildir flag changes reach the in-process lab through `Account::upload_once` and
//! `run_once`; bad files are kept; conflicts follow `[sync] conflict`; a resend after a
//! crash makes no duplicate. The server's content is checked through a second device (an
//! "observer" account syncing the same mailbox into its own data directory).

#![cfg(feature = "lab")]

mod common;

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use common::client;
use common::lab::Lab;
use easync::config::{Config, SyncClass};
use easync::engine::account::Account;
use easync::engine::upload::{UploadSummary, client_id};
use easync::lab::model::Prop;
use easync::lab::seed::folder;
use easync::store::state::{AccountState, Fingerprint, StateFile};
use easync::store::vdir::Vdir;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        // tests/run.sh keeps them for the secrets sweep (tests/secrets-sweep.sh).
        if std::env::var_os("EASYNC_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One device: configuration, password file and data directory in a temp dir.
struct Device {
    dir: TempDir,
    device_id: String,
    account: Account,
}

impl Device {
    fn new(lab: &Lab, tag: &str, conflict: &str) -> Device {
        let dir = TempDir(std::env::temp_dir().join(client::device_id(&format!("upload-{tag}-"))));
        std::fs::create_dir_all(&dir.0).unwrap();
        let password_file = dir.0.join("password");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&password_file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"labpass"))
            .unwrap();
        let device_id = client::device_id(tag);
        let user = lab.handle.user();
        let text = format!(
            "[account]\nemail = {user:?}\nuser = {user:?}\npassword_file = {:?}\nserver = {:?}\n\n\
             [tls]\nallow_insecure_http = true\n\n[storage]\ndata_dir = {:?}\n\n\
             [sync]\nmail_age = \"all\"\ncalendar_age = \"all\"\nconflict = {conflict:?}\n\n\
             [device]\ndevice_id = {device_id:?}\n",
            password_file.display().to_string(),
            lab.handle.http_url().unwrap(),
            dir.0.join("data").display().to_string(),
        );
        let config_path = dir.0.join("easync.toml");
        std::fs::write(&config_path, text).unwrap();
        let config = Config::load(&config_path).expect("the test configuration loads");
        Device {
            dir,
            device_id,
            account: Account::new(config),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    fn run_once(&mut self) -> easync::engine::account::Summary {
        self.account
            .run_once(&mut |_| {})
            .unwrap_or_else(|e| panic!("run_once failed: {e}"))
    }

    fn upload(&mut self) -> UploadSummary {
        self.account
            .upload_once(&mut |_| {})
            .unwrap_or_else(|e| panic!("upload_once failed: {e}"))
    }

    fn state(&self) -> AccountState {
        StateFile::new(&self.data()).load().unwrap().into_state()
    }

    /// The local folder of server folder `id` (`contacts/Contacts`, `mail/Inbox`, ...).
    fn folder_dir(&self, id: &str) -> PathBuf {
        let state = self.state();
        let f = &state.folders[id];
        let class = easync::eas::item::Class::from(f.class.expect("a synced folder"));
        self.data()
            .join(easync::store::vdir::class_dir(class))
            .join(&f.local_dir)
    }

    /// The lab's count of requests from this device.
    fn requests(&self, lab: &Lab) -> u64 {
        lab.device(&self.device_id)["requests"].as_u64().unwrap()
    }

    /// The text of every item file of folder `id`.
    fn texts(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.folder_dir(id)).unwrap().flatten() {
            if e.file_type().unwrap().is_file() && !e.file_name().to_string_lossy().starts_with('.')
            {
                out.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
        out
    }
}

/// The server's view, through a fresh second device.
fn observe(lab: &Lab, id: &str) -> Vec<String> {
    let mut observer = Device::new(lab, "observer", "server-wins");
    observer.run_once();
    observer.texts(id)
}

fn any_contains(texts: &[String], needle: &str) -> bool {
    texts.iter().any(|t| t.contains(needle))
}

const CARD: &str = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:device-card-1\r\nFN:Ada Devicemade\r\n\
                    N:Devicemade;Ada;;;\r\nEMAIL:ada@example.org\r\nEND:VCARD\r\n";
const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
                     UID:device-event-1\r\nDTSTAMP:20261125T090000Z\r\n\
                     DTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n\
                     SUMMARY:Devicemade meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
const TASK: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n\
                    UID:device-task-1\r\nDTSTAMP:20261125T090000Z\r\n\
                    SUMMARY:Devicemade task\r\nDUE:20261202T170000Z\r\nEND:VTODO\r\n\
                    END:VCALENDAR\r\n";
const NOTE: &str = "Subject: Devicemade note\n\nremember the milk\n";

/// The ServerId of the item stored as `local` in folder `id`.
fn server_id_of(device: &Device, id: &str, local: &str) -> Option<String> {
    device.state().folders[id]
        .items
        .server_id_of(local)
        .map(str::to_string)
}

#[test]
fn created_edited_and_deleted_files_reach_the_server() {
    let lab = Lab::start(Lab::default_config());
    let mut device = Device::new(&lab, "files", "server-wins");
    device.run_once();

    // Nothing changed locally: no request at all.
    let before = device.requests(&lab);
    let summary = device.upload();
    assert_eq!(summary, UploadSummary::default(), "{summary}");
    assert_eq!(
        device.requests(&lab),
        before,
        "no network without local changes"
    );

    let counts_before: Vec<u64> = [
        folder::CONTACTS,
        folder::CALENDAR,
        folder::TASKS,
        folder::NOTES,
    ]
    .iter()
    .map(|id| lab.folder_items(id))
    .collect();
    let created = [
        (folder::CONTACTS, "ada.vcf", CARD),
        (folder::CALENDAR, "meeting.ics", EVENT),
        (folder::TASKS, "task.ics", TASK),
        (folder::NOTES, "milk.txt", NOTE),
    ];
    for (id, name, text) in created {
        std::fs::write(device.folder_dir(id).join(name), text).unwrap();
    }
    let summary = device.upload();
    assert!(summary.url.is_some(), "{summary}");
    for class in [
        SyncClass::Contacts,
        SyncClass::Calendar,
        SyncClass::Tasks,
        SyncClass::Notes,
    ] {
        let c = summary.classes[&class];
        assert_eq!((c.added, c.rejected), (1, 0), "{class:?}: {summary}");
    }
    for (i, (id, name, _)) in created.iter().enumerate() {
        assert_eq!(lab.folder_items(id), counts_before[i] + 1, "folder {id}");
        let sid =
            server_id_of(&device, id, name).unwrap_or_else(|| panic!("{name} has a ServerId"));
        assert!(sid.starts_with(&format!("{id}:")), "{sid}");
        assert!(device.state().folders[*id].pending_adds.is_empty());
    }
    assert!(any_contains(&observe(&lab, folder::CONTACTS), "Devicemade"));
    assert!(any_contains(
        &observe(&lab, folder::CALENDAR),
        "Devicemade meeting"
    ));
    assert!(any_contains(
        &observe(&lab, folder::TASKS),
        "Devicemade task"
    ));
    assert!(any_contains(
        &observe(&lab, folder::NOTES),
        "remember the milk"
    ));

    // Uploaded once: nothing more to send, and no request for it.
    let before = device.requests(&lab);
    assert_eq!(device.upload().total().total(), 0);
    assert_eq!(device.requests(&lab), before);

    // An edit changes the server's item; a deletion deletes it.
    let card = device.folder_dir(folder::CONTACTS).join("ada.vcf");
    std::fs::write(&card, CARD.replace("Ada", "Adeline")).unwrap();
    std::fs::remove_file(device.folder_dir(folder::CALENDAR).join("meeting.ics")).unwrap();
    let summary = device.upload();
    assert_eq!(
        summary.classes[&SyncClass::Contacts].changed,
        1,
        "{summary}"
    );
    assert_eq!(
        summary.classes[&SyncClass::Calendar].deleted,
        1,
        "{summary}"
    );
    assert_eq!(lab.folder_items(folder::CALENDAR), counts_before[1]);
    let contacts = observe(&lab, folder::CONTACTS);
    assert!(any_contains(&contacts, "Adeline"), "{contacts:?}");
    assert!(!any_contains(
        &observe(&lab, folder::CALENDAR),
        "Devicemade meeting"
    ));
    assert!(server_id_of(&device, folder::CALENDAR, "meeting.ics").is_none());

    // A full cycle uploads too.
    std::fs::write(
        device.folder_dir(folder::NOTES).join("second.txt"),
        "Subject: Second note\n\nbody\n",
    )
    .unwrap();
    let summary = device.run_once();
    assert_eq!(summary.classes[&SyncClass::Notes].uploaded, 1, "{summary}");
    assert!(
        summary.to_string().contains("1 local change(s) uploaded"),
        "{summary}"
    );
    assert_eq!(lab.folder_items(folder::NOTES), counts_before[3] + 2);
    assert!(server_id_of(&device, folder::NOTES, "second.txt").is_some());
}

#[test]
fn mail_flags_and_deletions_reach_the_server() {
    let lab = Lab::start(Lab::default_config());
    let mut device = Device::new(&lab, "mail", "server-wins");
    device.run_once();
    let inbox = device.folder_dir(folder::INBOX);
    let maildir = easync::store::maildir::Maildir::open(&inbox).unwrap();
    let state = device.state();
    let items = &state.folders[folder::INBOX].items;
    let messages = maildir.list().unwrap();
    let unseen: Vec<_> = messages
        .iter()
        .filter(|m| !m.flags.contains(easync::store::maildir::Flags::SEEN))
        .collect();
    assert!(unseen.len() >= 3, "the lab seeds unread mail");
    let (to_read, to_flag, to_delete) = (&unseen[0], &unseen[1], &unseen[2]);
    let sid = |id: &str| {
        items
            .iter()
            .find(|(_, e)| e.local == id)
            .unwrap()
            .0
            .to_string()
    };
    let (read_sid, flag_sid, delete_sid) = (sid(&to_read.id), sid(&to_flag.id), sid(&to_delete.id));
    let inbox_before = lab.folder_items(folder::INBOX);

    // What a MUA does: rename to :2,S and :2,F; unlink.
    use easync::store::maildir::Flags;
    maildir.set_flags(&to_read.id, Flags::SEEN).unwrap();
    maildir.set_flags(&to_flag.id, Flags::FLAGGED).unwrap();
    std::fs::remove_file(&to_delete.path).unwrap();
    // A message dropped in by hand cannot be uploaded: it stays, untouched.
    let by_hand = maildir
        .deliver(b"Subject: by hand\r\n\r\nhello\r\n", Flags::NONE)
        .unwrap();

    let summary = device.upload();
    let mail = summary.classes[&SyncClass::Email];
    assert_eq!((mail.changed, mail.deleted), (2, 1), "{summary}");
    assert_eq!(lab.folder_items(folder::INBOX), inbox_before - 1);
    assert!(
        std::fs::read(&by_hand.path).is_ok(),
        "the hand-made message is kept"
    );
    let state = device.state();
    let items = &state.folders[folder::INBOX].items;
    assert!(items.get(&delete_sid).is_none());
    assert_eq!(
        items.get(&read_sid).unwrap().fingerprint,
        Fingerprint::Flags(Flags::SEEN.bits())
    );

    // The server's copy: read, flagged, gone (seen through a second device's Maildir).
    let mut observer = Device::new(&lab, "mailobs", "server-wins");
    observer.run_once();
    let obs_state = observer.state();
    let obs_items = &obs_state.folders[folder::INBOX].items;
    let obs = easync::store::maildir::Maildir::open(&observer.folder_dir(folder::INBOX)).unwrap();
    let flags_of = |sid: &str| {
        let local = &obs_items
            .get(sid)
            .unwrap_or_else(|| panic!("observer has {sid}"))
            .local;
        obs.find(local).unwrap().unwrap().flags
    };
    assert!(flags_of(&read_sid).contains(Flags::SEEN));
    assert!(!flags_of(&read_sid).contains(Flags::FLAGGED));
    assert!(flags_of(&flag_sid).contains(Flags::FLAGGED));
    assert!(obs_items.get(&delete_sid).is_none());

    // Unflagging clears the flag on the server.
    maildir.set_flags(&to_flag.id, Flags::NONE).unwrap();
    assert_eq!(device.upload().classes[&SyncClass::Email].changed, 1);
    observer.run_once();
    let obs_state = observer.state();
    let local = &obs_state.folders[folder::INBOX]
        .items
        .get(&flag_sid)
        .unwrap()
        .local;
    assert!(
        !obs.find(local)
            .unwrap()
            .unwrap()
            .flags
            .contains(Flags::FLAGGED)
    );

    // Nothing left to upload (the hand-made message does not count): no request.
    let before = device.requests(&lab);
    assert_eq!(device.upload(), UploadSummary::default());
    assert_eq!(device.requests(&lab), before);
}

#[test]
fn a_bad_vcard_is_reported_kept_and_not_resent() {
    let lab = Lab::start(Lab::default_config());
    let mut device = Device::new(&lab, "bad", "server-wins");
    device.run_once();
    let contacts_before = lab.folder_items(folder::CONTACTS);
    let bad = device.folder_dir(folder::CONTACTS).join("broken.vcf");
    std::fs::write(&bad, "BEGIN:VCARD\r\nFN:no end\r\n").unwrap();
    let summary = device.upload();
    assert_eq!(
        summary.classes[&SyncClass::Contacts].rejected,
        1,
        "{summary}"
    );
    assert_eq!(summary.classes[&SyncClass::Contacts].added, 0);
    assert_eq!(lab.folder_items(folder::CONTACTS), contacts_before);
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "BEGIN:VCARD\r\nFN:no end\r\n",
        "kept as it is"
    );
    assert!(server_id_of(&device, folder::CONTACTS, "broken.vcf").is_none());
    // Refused as it is: not tried again (no request) until it changes.
    let before = device.requests(&lab);
    assert_eq!(device.upload(), UploadSummary::default());
    assert_eq!(device.requests(&lab), before);
    std::fs::write(&bad, CARD.replace("device-card-1", "fixed-card")).unwrap();
    assert_eq!(device.upload().classes[&SyncClass::Contacts].added, 1);
    assert_eq!(lab.folder_items(folder::CONTACTS), contacts_before + 1);
}

/// Changes one seeded contact on the server and the same contact's file on the device,
/// then uploads; returns the device, the file and the observer's contacts.
fn conflict(lab: &Lab, policy: &str) -> (Device, PathBuf, Vec<String>) {
    let tag = if policy == "client-wins" {
        "conflictcw"
    } else {
        "conflictsw"
    };
    let mut device = Device::new(lab, tag, policy);
    device.run_once();
    let state = device.state();
    let (sid, entry) = state.folders[folder::CONTACTS]
        .items
        .iter()
        .next()
        .map(|(s, e)| (s.to_string(), e.clone()))
        .expect("seeded contacts");
    let file = device.folder_dir(folder::CONTACTS).join(&entry.local);
    lab.handle
        .change_item(
            &sid,
            vec![
                Prop::text("FirstName", "Serverside"),
                Prop::text("FileAs", "Serverside"),
            ],
            None,
        )
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let edited: String = text
        .split_inclusive('\n')
        .map(|line| {
            if line.starts_with("FN") {
                "FN:Clientside Person\r\n".to_string()
            } else if line.starts_with("N:") || line.starts_with("N;") {
                "N:Person;Clientside;;;\r\n".to_string()
            } else {
                line.to_string()
            }
        })
        .collect();
    assert_ne!(edited, text);
    std::fs::write(&file, &edited).unwrap();
    device.upload();
    let observed = observe(lab, folder::CONTACTS);
    (device, file, observed)
}

#[test]
fn a_conflict_ends_server_wins_by_default_and_client_wins_when_configured() {
    let lab = Lab::start(Lab::default_config());
    let (mut device, file, observed) = conflict(&lab, "server-wins");
    let on_disk = std::fs::read_to_string(&file).unwrap();
    assert!(
        on_disk.contains("Serverside") && !on_disk.contains("Clientside"),
        "{on_disk}"
    );
    assert!(any_contains(&observed, "Serverside"));
    assert!(!any_contains(&observed, "Clientside"));
    // The file is the server's version as recorded: nothing to upload, no request.
    let before = device.requests(&lab);
    assert_eq!(device.upload(), UploadSummary::default());
    assert_eq!(device.requests(&lab), before);

    let lab = Lab::start(Lab::default_config());
    let (mut device, file, observed) = conflict(&lab, "client-wins");
    let on_disk = std::fs::read_to_string(&file).unwrap();
    assert!(on_disk.contains("Clientside"), "{on_disk}");
    assert!(any_contains(&observed, "Clientside"), "{observed:?}");
    assert!(!any_contains(&observed, "Serverside"));
    let before = device.requests(&lab);
    assert_eq!(device.upload(), UploadSummary::default());
    assert_eq!(device.requests(&lab), before);
}

#[test]
fn a_resend_after_a_crash_makes_no_duplicate() {
    let lab = Lab::start(Lab::default_config());
    let mut device = Device::new(&lab, "crash", "server-wins");
    device.run_once();
    let state_file = StateFile::new(&device.data());
    let before_upload = device.state();
    let contacts_before = lab.folder_items(folder::CONTACTS);
    let dir = device.folder_dir(folder::CONTACTS);
    std::fs::write(dir.join("ada.vcf"), CARD).unwrap();
    let summary = device.upload();
    assert_eq!(summary.classes[&SyncClass::Contacts].added, 1);
    let sid = server_id_of(&device, folder::CONTACTS, "ada.vcf").unwrap();
    assert_eq!(lab.folder_items(folder::CONTACTS), contacts_before + 1);

    // As if the process died after sending the Add and before the answer was saved: the
    // state from before, with the Add recorded as pending (as it is saved before sending).
    let mut crashed = before_upload.clone();
    let entry = Vdir::open(&dir, "vcf")
        .unwrap()
        .entry("ada.vcf")
        .unwrap()
        .unwrap();
    let id = client_id("ada.vcf", entry.fingerprint());
    crashed
        .folders
        .get_mut(folder::CONTACTS)
        .unwrap()
        .pending_adds
        .insert(id, "ada.vcf".into());
    state_file.save(&crashed).unwrap();
    // The restarted process (the old one let go of the data directory's lock).
    device.account = Account::new(device.account.config().clone());
    let summary = device.account.upload_once(&mut |_| {}).unwrap();
    assert_eq!(summary.classes[&SyncClass::Contacts].added, 1, "{summary}");
    assert_eq!(
        lab.folder_items(folder::CONTACTS),
        contacts_before + 1,
        "no duplicate"
    );
    let state = device.state();
    let f = &state.folders[folder::CONTACTS];
    assert_eq!(
        f.items.server_id_of("ada.vcf"),
        Some(sid.as_str()),
        "the same ServerId"
    );
    assert!(f.pending_adds.is_empty());
    // The device holds the item once (no second file from the server).
    let copies = device
        .texts(folder::CONTACTS)
        .iter()
        .filter(|t| t.contains("Devicemade"))
        .count();
    assert_eq!(copies, 1);
}

#[test]
fn a_full_resync_uploads_only_what_is_new() {
    // After the item map was lost (the folder syncs again from key "0"), every file looks
    // new until the server's items came back: only the one really made on the device goes up.
    let lab = Lab::start(Lab::default_config());
    let mut device = Device::new(&lab, "resync", "server-wins");
    device.run_once();
    let contacts_before = lab.folder_items(folder::CONTACTS);
    let files_before = device.texts(folder::CONTACTS).len();
    std::fs::write(device.folder_dir(folder::CONTACTS).join("ada.vcf"), CARD).unwrap();
    let state_file = StateFile::new(&device.data());
    let mut state = device.state();
    let contacts = state.folders.get_mut(folder::CONTACTS).unwrap();
    contacts.sync_key = "0".into();
    contacts.items.clear();
    state_file.save(&state).unwrap();

    // The lab numbers its items in one sequence: two probes tell how many it made between.
    let number = |sid: String| -> u64 { sid.rsplit(':').next().unwrap().parse().unwrap() };
    let probe = || {
        number(
            lab.handle
                .add_mail(folder::INBOX, "probe", "probe")
                .unwrap(),
        )
    };
    let first_probe = probe();
    device.run_once();
    assert_eq!(
        probe() - first_probe - 1,
        1,
        "the server made exactly one item: the device's new card"
    );
    assert_eq!(lab.folder_items(folder::CONTACTS), contacts_before + 1);
    assert_eq!(device.texts(folder::CONTACTS).len(), files_before + 1);
    assert!(server_id_of(&device, folder::CONTACTS, "ada.vcf").is_some());
    assert_eq!(
        device.state().folders[folder::CONTACTS].items.len(),
        files_before + 1
    );
}
