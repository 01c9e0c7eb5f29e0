//! The store's core on real temporary folders: atomic replacement, hostile names, the
//! account state file (round trip, damage, backups, versions, modes), Maildir delivery and
//! flags, the outbox, and vdir folders.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use easync::eas::item::Class;
use easync::eas::sink::Sink;
use easync::store::atomic::{self, AtomicFile, StoreError};
use easync::store::maildir::{Flags, Maildir, Outbox, Subdir};
use easync::store::names::{self, NameSet};
use easync::store::state::{
    AccountState, FORMAT_VERSION, Fingerprint, FolderState, ItemEntry, ItemMap, Loaded, StateFile,
    WipeIntent,
};
use easync::store::vdir::{self, Vdir};

/// A temporary data directory, removed on drop.
struct DataDir(PathBuf);

impl DataDir {
    fn new(tag: &str) -> DataDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "easync-store-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        DataDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---- atomic replacement ----------------------------------------------------------------

#[test]
fn crash_before_commit_keeps_the_old_file() {
    let d = DataDir::new("crash");
    let target = d.path().join("item.vcf");
    atomic::replace_file(&target, b"old", atomic::DATA_FILE_MODE).unwrap();
    let mut f = AtomicFile::create(d.path(), "item.vcf").unwrap();
    f.write_all(&vec![b'n'; 100_000]).unwrap();
    f.flush().unwrap();
    // Mid-write, the target is still the old one.
    assert_eq!(fs::read(&target).unwrap(), b"old");
    drop(f); // the "crash": never committed
    assert_eq!(fs::read(&target).unwrap(), b"old");
    assert_eq!(tree(d.path()), ["item.vcf"]);
}

#[test]
fn commit_replaces_and_syncs() {
    let d = DataDir::new("commit");
    let target = d.path().join("f");
    atomic::replace_file(&target, b"old", atomic::PRIVATE_FILE_MODE).unwrap();
    let mut f = AtomicFile::create_with_mode(d.path(), "f", atomic::PRIVATE_FILE_MODE).unwrap();
    for _ in 0..64 {
        f.chunk(&[7u8; 1000]).unwrap();
    }
    f.end(64_000).unwrap();
    assert_eq!(f.len(), 64_000);
    f.commit().unwrap();
    assert_eq!(fs::read(&target).unwrap(), vec![7u8; 64_000]);
    assert_eq!(mode(&target), 0o600);
    // The other durable operations run without error.
    atomic::sync_dir(d.path()).unwrap();
    atomic::rename(&target, &d.path().join("g")).unwrap();
    assert!(atomic::remove_file(&d.path().join("g")).unwrap());
    assert_eq!(tree(d.path()), Vec::<String>::new());
}

#[test]
fn io_errors_name_the_path() {
    let d = DataDir::new("ioerr");
    let ro = d.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
    let result = AtomicFile::create(&ro, "x");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o700)).unwrap();
    // Root ignores directory permissions; only check the message when it failed.
    if let Err(e) = result {
        let msg = e.to_string();
        assert!(msg.contains(&ro.display().to_string()), "{msg}");
        assert!(msg.contains("permission denied"), "{msg}");
    }
    let e = AtomicFile::create(&d.path().join("missing"), "x").unwrap_err();
    assert!(e.io_error().is_some());
    assert!(e.to_string().contains("missing"), "{e}");
}

// ---- hostile names ---------------------------------------------------------------------

const HOSTILE: [&str; 12] = [
    "../../etc/passwd",
    "..",
    ".",
    "",
    "a/b",
    "nul\0here",
    "new\nline",
    "/absolute",
    ".hidden",
    "Inbox",
    "inbox",
    "INBOX",
];

#[test]
fn hostile_folder_names_stay_inside_the_data_dir() {
    let d = DataDir::new("hostile");
    let long = "ß".repeat(2048);
    let mut set = NameSet::new();
    let mut dirs = Vec::new();
    for raw in HOSTILE
        .iter()
        .copied()
        .chain([long.as_str(), long.as_str()])
    {
        let name = set.unique(raw);
        assert!(names::is_safe_component(&name), "{raw:?} -> {name:?}");
        assert!(name.len() <= names::MAX_NAME_BYTES);
        Maildir::for_folder(d.path(), &name).unwrap();
        Vdir::for_folder(d.path(), Class::Contacts, &name, vdir::VCARD_EXTENSION).unwrap();
        dirs.push(name);
    }
    // All distinct (case-insensitively), all directly under mail/ and contacts/.
    let mut lower: Vec<String> = dirs.iter().map(|n| n.to_lowercase()).collect();
    lower.sort();
    lower.dedup();
    assert_eq!(lower.len(), dirs.len(), "{dirs:?}");
    for top in ["mail", "contacts"] {
        let mut found: Vec<String> = fs::read_dir(d.path().join(top))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        found.sort();
        let mut want = dirs.clone();
        want.sort();
        assert_eq!(found, want);
    }
    let mut top: Vec<String> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["contacts", "mail"]);
    assert_eq!(dirs[9..12], ["Inbox", "inbox~2", "INBOX~3"]);
}

#[test]
fn hostile_item_ids_become_flat_file_names() {
    let d = DataDir::new("hostile-items");
    let v = Vdir::open(d.path(), vdir::ICALENDAR_EXTENSION).unwrap();
    let long = "x/".repeat(2048);
    let mut map = ItemMap::default();
    for (i, id) in HOSTILE.iter().copied().chain([long.as_str()]).enumerate() {
        let server_id = format!("1:{i}");
        let mut w = v.begin_item(&map, &server_id, Some(id)).unwrap();
        w.write_all(id.as_bytes()).unwrap();
        w.commit_item(&mut map, &server_id).unwrap();
    }
    let files = tree(d.path());
    assert_eq!(files.len(), HOSTILE.len() + 1, "{files:?}");
    for f in &files {
        assert!(!f.contains('/') && !f.starts_with('.'), "{f}");
        assert!(f.ends_with(".ics"));
    }
    // The UID "" falls back to the ServerId.
    assert!(files.contains(&"1%3A3.ics".to_string()), "{files:?}");
}

#[test]
fn refuses_unsafe_local_names_from_the_state() {
    let d = DataDir::new("unsafe-state");
    for bad in ["..", "../x", "a/b", "", ".hidden"] {
        assert!(Maildir::for_folder(d.path(), bad).is_err(), "{bad:?}");
        assert!(
            Vdir::for_folder(d.path(), Class::Tasks, bad, "ics").is_err(),
            "{bad:?}"
        );
    }
    // A damaged map entry pointing outside the folder is ignored, not followed.
    let v = Vdir::open(&d.path().join("v"), "vcf").unwrap();
    let mut map = ItemMap::default();
    map.insert(
        "1",
        ItemEntry {
            local: "../../escape.vcf".into(),
            fingerprint: Fingerprint::Unknown,
        },
    )
    .unwrap();
    let w = v.begin_item(&map, "1", None).unwrap();
    assert_eq!(w.name(), "1.vcf");
    assert!(!v.remove_item(&mut map, "1").unwrap());
}

// ---- account state ---------------------------------------------------------------------

fn sample_state(items: usize) -> AccountState {
    let mut s = AccountState {
        policy_key: Some("1307199584".into()),
        folder_sync_key: "3".into(),
        heartbeat: Some(easync::store::state::HeartbeatMemory {
            current: 900,
            ceiling: None,
            server_min: Some(120),
            server_max: None,
        }),
        wipe_intent: Some(WipeIntent::Full),
        ..AccountState::default()
    };
    s.set_protocol(easync::wbxml::ProtocolVersion::V14_1);
    let mut inbox = FolderState::new("Inbox", "0", 2, Some(Class::Email), "Inbox");
    inbox.sync_key = "1234567890".into();
    for i in 0..items {
        inbox
            .items
            .insert(
                &format!("5:{i}"),
                ItemEntry {
                    local: format!("1764000000.M{i}P1234Q{i}.device"),
                    fingerprint: Fingerprint::Flags((i % 64) as u8),
                },
            )
            .unwrap();
    }
    s.folders.insert("5".into(), inbox);
    s.folders.insert(
        "7".into(),
        FolderState::new("Kalender", "0", 8, Some(Class::Calendar), "Kalender"),
    );
    s
}

fn load_good(f: &StateFile) -> AccountState {
    match f.load().unwrap() {
        Loaded::Good(s) => s,
        other => panic!("expected a good state, got {other:?}"),
    }
}

#[test]
fn state_round_trip_and_modes() {
    let d = DataDir::new("state");
    let f = StateFile::new(d.path());
    assert!(matches!(f.load().unwrap(), Loaded::Fresh));
    let s = sample_state(3);
    f.save(&s).unwrap();
    assert_eq!(f.path(), d.path().join("state/account.postcard"));
    assert_eq!(load_good(&f), s);
    assert_eq!(mode(&d.path().join("state")), 0o700);
    assert_eq!(mode(f.path()), 0o600);
    let mut s2 = s.clone();
    s2.folder_sync_key = "4".into();
    f.save(&s2).unwrap();
    assert_eq!(load_good(&f), s2);
    assert_eq!(mode(f.backup_path()), 0o600);
    // No temporary files left in state/.
    assert_eq!(
        tree(&d.path().join("state")),
        ["account.postcard", "account.postcard.bak"]
    );
}

#[test]
fn state_with_100k_items_is_compact() {
    let d = DataDir::new("state-big");
    let f = StateFile::new(d.path());
    let s = sample_state(100_000);
    f.save(&s).unwrap();
    let size = fs::metadata(f.path()).unwrap().len();
    // ~40 bytes of names per item plus a few bytes of framing.
    assert!(size < 100_000 * 50, "{size} bytes");
    let back = load_good(&f);
    assert_eq!(back.folders["5"].items.len(), 100_000);
    assert_eq!(back, s);
}

#[test]
fn damaged_state_falls_back_to_the_backup() {
    let d = DataDir::new("state-damage");
    let f = StateFile::new(d.path());
    let old = sample_state(2);
    let mut new = old.clone();
    new.folder_sync_key = "99".into();
    f.save(&old).unwrap();
    f.save(&new).unwrap();
    // The medium damages the current file.
    let mut bytes = fs::read(f.path()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(f.path(), &bytes).unwrap();
    match f.load().unwrap() {
        Loaded::Recovered(state, why) => {
            assert_eq!(state, old);
            let msg = why.to_string();
            assert!(msg.contains("account.postcard"), "{msg}");
            assert!(msg.contains("checksum"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // The damaged file is kept for diagnosis, the good state is back in place.
    assert!(d.path().join("state/account.postcard.damaged").exists());
    assert_eq!(load_good(&f), old);
    // Saving again now backs up a good file.
    f.save(&new).unwrap();
    assert_eq!(load_good(&f), new);
}

#[test]
fn damaged_state_without_good_backup_is_a_clear_error() {
    let d = DataDir::new("state-lost");
    let f = StateFile::new(d.path());
    fs::create_dir_all(d.path().join("state")).unwrap();
    fs::write(f.path(), b"this is not a state file").unwrap();
    let e = f.load().unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&f.path().display().to_string()), "{msg}");
    assert!(msg.contains("re-enroll"), "{msg}");
    // Nothing was deleted.
    assert_eq!(fs::read(f.path()).unwrap(), b"this is not a state file");
    // Also with a damaged backup.
    fs::write(
        f.backup_path(),
        b"EASYNCST\x01garbage-garbage-garbage-garbage-garbage",
    )
    .unwrap();
    assert!(matches!(f.load(), Err(StoreError::Corrupt { .. })));
    // An empty file (power cut on a file system without ordered data) as well.
    fs::write(f.path(), b"").unwrap();
    fs::remove_file(f.backup_path()).unwrap();
    assert!(matches!(f.load(), Err(StoreError::Corrupt { .. })));
}

#[test]
fn state_from_a_newer_easync_is_refused() {
    let d = DataDir::new("state-version");
    let f = StateFile::new(d.path());
    f.save(&sample_state(1)).unwrap();
    let mut bytes = fs::read(f.path()).unwrap();
    bytes[8] = FORMAT_VERSION + 1;
    fs::write(f.path(), &bytes).unwrap();
    let e = f.load().unwrap_err();
    match &e {
        StoreError::UnsupportedVersion {
            found, supported, ..
        } => {
            assert_eq!(*found, FORMAT_VERSION + 1);
            assert_eq!(*supported, FORMAT_VERSION);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("newer easync"), "{e}");
}

#[test]
fn missing_state_with_backup_uses_the_backup() {
    let d = DataDir::new("state-onlybak");
    let f = StateFile::new(d.path());
    let s = sample_state(1);
    f.save(&s).unwrap();
    f.save(&s).unwrap();
    fs::remove_file(f.path()).unwrap();
    assert_eq!(load_good(&f), s);
    assert!(f.path().exists());
}

// ---- Maildir ---------------------------------------------------------------------------

#[test]
fn maildir_streams_a_large_message() {
    let d = DataDir::new("md-stream");
    let md = Maildir::for_folder(d.path(), "Inbox").unwrap();
    for sub in ["cur", "new", "tmp"] {
        assert!(d.path().join("mail/Inbox").join(sub).is_dir());
    }
    let mut delivery = md.begin_delivery().unwrap();
    let chunk = [b'a'; 4096];
    for _ in 0..1024 {
        delivery.chunk(&chunk).unwrap();
    }
    delivery.end(4 << 20).unwrap();
    let m = delivery.commit(Flags::NONE).unwrap();
    assert_eq!(m.subdir, Subdir::New);
    assert_eq!(fs::metadata(&m.path).unwrap().len(), 4 << 20);
    assert!(
        fs::read_dir(md.root().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn maildir_redelivery_replaces_never_duplicates() {
    let d = DataDir::new("md-idem");
    let md = Maildir::for_folder(d.path(), "Inbox").unwrap();
    let mut map = ItemMap::default();
    let deliver = |map: &mut ItemMap, body: &[u8], flags: Flags| {
        let mut dl = md.begin_delivery().unwrap();
        dl.write_all(body).unwrap();
        dl.commit_item(map, "5:1", flags).unwrap()
    };
    let first = deliver(&mut map, b"version 1", Flags::NONE);
    let second = deliver(&mut map, b"version 2", Flags::NONE);
    assert_eq!(first.id, second.id);
    let all = md.list().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(fs::read(&all[0].path).unwrap(), b"version 2");
    // Read on the server since: same message, now in cur/ with S.
    let third = deliver(&mut map, b"version 3", Flags::SEEN);
    let all = md.list().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, first.id);
    assert_eq!(all[0].flags, Flags::SEEN);
    assert_eq!(all[0].path, third.path);
    assert_eq!(fs::read(&third.path).unwrap(), b"version 3");
    assert_eq!(
        map.get("5:1").unwrap(),
        &ItemEntry {
            local: first.id.clone(),
            fingerprint: Fingerprint::Flags(Flags::SEEN.bits()),
        }
    );
    // The user flags it in the MUA (our hint is now wrong); a redelivery still finds it.
    let flagged = md.root().join("cur").join(format!("{}:2,FS", first.id));
    fs::rename(&third.path, &flagged).unwrap();
    deliver(&mut map, b"version 4", Flags::SEEN | Flags::FLAGGED);
    let all = md.list().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(fs::read(&all[0].path).unwrap(), b"version 4");
    // A second ServerId is a second message.
    let mut dl = md.begin_delivery().unwrap();
    dl.write_all(b"other").unwrap();
    dl.commit_item(&mut map, "5:2", Flags::NONE).unwrap();
    assert_eq!(md.list().unwrap().len(), 2);
    // The message a map entry points at was deleted by the user: redelivery recreates it.
    assert!(md.remove(&first.id).unwrap());
    deliver(&mut map, b"version 5", Flags::NONE);
    assert_eq!(md.list().unwrap().len(), 2);
    assert!(md.remove_item(&mut map, "5:1").unwrap());
    assert!(!md.remove_item(&mut map, "5:1").unwrap());
    assert_eq!(md.list().unwrap().len(), 1);
    assert!(map.get("5:1").is_none());
}

#[test]
fn maildir_flags_and_listing_show_local_changes() {
    let d = DataDir::new("md-flags");
    let md = Maildir::for_folder(d.path(), "Inbox").unwrap();
    let mut map = ItemMap::default();
    for (i, flags) in [Flags::NONE, Flags::SEEN, Flags::SEEN | Flags::REPLIED]
        .into_iter()
        .enumerate()
    {
        let mut dl = md.begin_delivery().unwrap();
        write!(dl, "Subject: {i}\r\n\r\n").unwrap();
        dl.commit_item(&mut map, &format!("5:{i}"), flags).unwrap();
    }
    let listed = md.list().unwrap();
    assert_eq!(listed.len(), 3);
    // Nothing changed locally: every message's flags match the map.
    let changed = |md: &Maildir, map: &ItemMap| -> Vec<String> {
        md.list()
            .unwrap()
            .into_iter()
            .filter_map(|m| {
                let sid = map.server_id_of(&m.id).unwrap().to_string();
                (map.get(&sid).unwrap().fingerprint != Fingerprint::Flags(m.flags.bits()))
                    .then_some(sid)
            })
            .collect()
    };
    assert!(changed(&md, &map).is_empty());
    // The user reads message 0 (the MUA moves it to cur/ with S) and flags message 2.
    let id0 = map.get("5:0").unwrap().local.clone();
    fs::rename(
        md.root().join("new").join(&id0),
        md.root().join("cur").join(format!("{id0}:2,S")),
    )
    .unwrap();
    let id2 = map.get("5:2").unwrap().local.clone();
    let m2 = md
        .set_flags(&id2, Flags::SEEN | Flags::REPLIED | Flags::FLAGGED)
        .unwrap()
        .unwrap();
    assert!(m2.path.to_str().unwrap().ends_with(":2,FRS"));
    let mut got = changed(&md, &map);
    got.sort();
    assert_eq!(got, ["5:0", "5:2"]);
    // Unflagging everything keeps the message in cur/ with an empty info.
    let m0 = md.set_flags(&id0, Flags::NONE).unwrap().unwrap();
    assert_eq!(m0.path, md.root().join("cur").join(format!("{id0}:2,")));
    assert_eq!(md.find(&id0).unwrap().unwrap().flags, Flags::NONE);
}

#[test]
fn outbox_queue_and_removal() {
    let d = DataDir::new("outbox");
    let outbox = Outbox::open(d.path()).unwrap();
    assert!(d.path().join("outbox/new").is_dir());
    let a = outbox
        .maildir()
        .deliver(b"To: a@example.com\r\n\r\n1", Flags::NONE)
        .unwrap();
    let b = outbox
        .maildir()
        .deliver(b"To: b@example.com\r\n\r\n2", Flags::SEEN)
        .unwrap();
    outbox.maildir().deliver(b"draft", Flags::DRAFT).unwrap();
    outbox.maildir().deliver(b"gone", Flags::TRASHED).unwrap();
    let queued = outbox.queued().unwrap();
    assert_eq!(
        queued.iter().map(|m| &m.id).collect::<Vec<_>>(),
        [&a.id, &b.id]
    );
    let (mut file, len) = outbox.open_message(&queued[0]).unwrap();
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut content).unwrap();
    assert_eq!(len, content.len() as u64);
    assert_eq!(content, b"To: a@example.com\r\n\r\n1");
    assert!(outbox.remove_sent(&queued[0]).unwrap());
    // Renamed by someone between listing and removal: still found by its unique name.
    let moved = outbox
        .maildir()
        .set_flags(&b.id, Flags::FLAGGED)
        .unwrap()
        .unwrap();
    assert_ne!(moved.path, queued[1].path);
    assert!(outbox.remove_sent(&queued[1]).unwrap());
    assert!(outbox.queued().unwrap().is_empty());
    assert!(!outbox.remove_sent(&queued[1]).unwrap());
}

// ---- vdir ------------------------------------------------------------------------------

#[test]
fn vdir_write_list_remove_and_local_changes() {
    let d = DataDir::new("vdir");
    let v = Vdir::for_folder(d.path(), Class::Contacts, "Contacts", vdir::VCARD_EXTENSION).unwrap();
    assert_eq!(v.root(), d.path().join("contacts/Contacts"));
    let mut map = ItemMap::default();
    let card = |n: &str| format!("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:{n}\r\nEND:VCARD\r\n");
    for (sid, uid, name) in [("9:1", Some("uid-ann"), "Ann"), ("9:2", None, "Bob")] {
        let mut w = v.begin_item(&map, sid, uid).unwrap();
        w.chunk(card(name).as_bytes()).unwrap();
        w.commit_item(&mut map, sid).unwrap();
    }
    let listed = v.list().unwrap();
    let names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["9%3A2.vcf", "uid-ann.vcf"]);
    assert_eq!(listed[1].size, card("Ann").len() as u64);
    assert!(v.local_changes(&map).unwrap() == Default::default());

    // Redelivery of 9:1 with another UID keeps its file (no duplicate).
    let mut w = v.begin_item(&map, "9:1", Some("uid-other")).unwrap();
    w.write_all(card("Ann B.").as_bytes()).unwrap();
    w.commit_item(&mut map, "9:1").unwrap();
    assert_eq!(v.list().unwrap().len(), 2);
    assert_eq!(
        fs::read_to_string(v.root().join("uid-ann.vcf")).unwrap(),
        card("Ann B.")
    );

    // A half-written temporary file is not an item.
    let abandoned = {
        let mut w = v.begin_write("new.vcf").unwrap();
        w.write_all(b"BEGIN:VCARD").unwrap();
        w.flush().unwrap();
        assert_eq!(v.list().unwrap().len(), 2);
        w
    };
    drop(abandoned);

    // Local edits: Bob changed, Ann deleted, Cid added by khard.
    fs::write(v.root().join("9%3A2.vcf"), card("Robert")).unwrap();
    fs::remove_file(v.root().join("uid-ann.vcf")).unwrap();
    fs::write(v.root().join("cid.vcf"), card("Cid")).unwrap();
    fs::write(v.root().join("notes.txt"), "ignored").unwrap();
    let changes = v.local_changes(&map).unwrap();
    assert_eq!(changes.changed.len(), 1);
    assert_eq!(changes.changed[0].0, "9:2");
    assert_eq!(changes.deleted, ["9:1"]);
    assert_eq!(changes.added.len(), 1);
    assert_eq!(changes.added[0].name, "cid.vcf");

    // Removal.
    assert!(v.remove_item(&mut map, "9:2").unwrap());
    assert!(!v.remove_item(&mut map, "9:2").unwrap());
    assert!(v.remove("cid.vcf").unwrap());
    assert!(!v.remove("cid.vcf").unwrap());
    assert!(!v.remove("../../etc/passwd").unwrap());
    assert!(v.list().unwrap().is_empty());
}

#[test]
fn vdir_uid_clash_falls_back_to_server_id() {
    let d = DataDir::new("vdir-clash");
    let v = Vdir::for_folder(d.path(), Class::Calendar, "Calendar", "ics").unwrap();
    let mut map = ItemMap::default();
    for sid in ["7:1", "7:2"] {
        let mut w = v.begin_item(&map, sid, Some("same-uid")).unwrap();
        w.write_all(sid.as_bytes()).unwrap();
        w.commit_item(&mut map, sid).unwrap();
    }
    assert_eq!(map.get("7:1").unwrap().local, "same-uid.ics");
    assert_eq!(map.get("7:2").unwrap().local, "7%3A2.ics");
    assert_eq!(v.list().unwrap().len(), 2);
}
