//! One push round (`Account::push_once`) end to end: a Ping over the synced folders woken by
//! new mail, clean expiries growing the learned heartbeat, the server's heartbeat and folder
//! bounds followed — against the in-process lab, and against the SOGo peer when it runs
//! (`EASYNC_SOGO_URL`, `EASYNC_SOGO_IMAP`).

#![cfg(feature = "lab")]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::client;
use common::lab::Lab;
use common::setup::Setup;
use easync::config::{Config, SyncClass};
use easync::engine::account::Account;
use easync::engine::heartbeat::Bounds;
use easync::engine::push::{PingResult, PushOutcome};
use easync::lab::seed::folder;
use easync::store::state::StateFile;

/// What these tests do with a [`Setup`].
trait SetupExt {
    fn account(&self, bounds: Option<Bounds>) -> Account;
    fn learned_heartbeat(&self) -> Option<u32>;
}

impl SetupExt for Setup {
    /// An account whose Ping heartbeat stays within `bounds` (the configuration allows no
    /// less than 60 s; the lab does).
    fn account(&self, bounds: Option<Bounds>) -> Account {
        let config = Config::load(&self.config_path).expect("the test configuration loads");
        let mut account = Account::new(config);
        if let Some(b) = bounds {
            account.set_heartbeat_bounds(b);
        }
        account
    }

    fn learned_heartbeat(&self) -> Option<u32> {
        StateFile::new(&self.data())
            .load()
            .unwrap()
            .into_state()
            .heartbeat
            .map(|h| h.current)
    }
}

/// Every Maildir message file (`mail/<folder>/{new,cur}/<name>`) with its text.
fn messages(data: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(folders) = std::fs::read_dir(data.join("mail")) else {
        return out;
    };
    for f in folders.flatten() {
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(f.path().join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
                out.push((e.path(), text));
            }
        }
    }
    out
}

fn bounds(min: u32, start: u32) -> Bounds {
    Bounds {
        min,
        max: 3540,
        start,
    }
}

fn push(account: &mut Account) -> PushOutcome {
    account
        .push_once(&mut |_| {})
        .unwrap_or_else(|e| panic!("push_once failed: {e}"))
}

fn lab_with(min_heartbeat: u32, max_folders: usize) -> Lab {
    let mut config = Lab::default_config();
    config.ping_min_heartbeat = min_heartbeat;
    config.ping_max_folders = max_folders;
    Lab::start(config)
}

#[test]
fn new_mail_wakes_the_ping_and_lands_in_the_maildir() {
    let lab = lab_with(1, 300);
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "wake", "");
    let mut account = setup.account(Some(bounds(1, 30)));
    account.run_once(&mut |_| {}).expect("the first cycle");
    let before = messages(&setup.data());
    assert!(!before.is_empty());

    let subject = format!("pushed {}", client::device_id("s"));
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            lab.handle
                .add_mail(folder::INBOX, &subject, "woken by push")
                .unwrap();
        });
        push(&mut account)
    });
    let took = started.elapsed();
    assert!(outcome.cycle.is_none(), "no second cycle");
    assert_eq!(outcome.result, PingResult::Changed, "{outcome}");
    assert!(
        took < Duration::from_secs(20),
        "the Ping returned on the change, not at its 30 s heartbeat: {took:?}"
    );
    assert_eq!(
        outcome.folders.len(),
        1,
        "only the Inbox changed: {outcome}"
    );
    assert_eq!(outcome.folders[0].id, folder::INBOX);
    assert_eq!(outcome.folders[0].class, SyncClass::Email);
    assert_eq!(outcome.added(), 1, "{outcome}");
    assert_eq!(outcome.heartbeat_secs, 30);

    let after = messages(&setup.data());
    let new: Vec<_> = after
        .iter()
        .filter(|(p, _)| !before.iter().any(|(b, _)| b == p))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let (path, text) = new[0];
    assert!(text.contains(&subject), "{text}");
    assert!(
        path.parent().unwrap().ends_with("new"),
        "unread mail lands in new/: {}",
        path.display()
    );
    // A changed round says nothing about the path: the heartbeat is persisted unchanged.
    assert_eq!(setup.learned_heartbeat(), Some(30));
}

#[test]
fn clean_expiries_grow_the_learned_heartbeat() {
    let lab = lab_with(1, 300);
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "grow", "");
    let mut account = setup.account(Some(bounds(1, 1)));
    for round in 1..=3 {
        let started = Instant::now();
        let outcome = push(&mut account);
        assert_eq!(
            outcome.result,
            PingResult::Expired,
            "round {round}: {outcome}"
        );
        assert_eq!(
            outcome.cycle.is_some(),
            round == 1,
            "only the first round runs the cycle first"
        );
        assert_eq!(outcome.heartbeat_secs, 1, "round {round}");
        assert!(outcome.folders.is_empty());
        assert!(started.elapsed() >= Duration::from_secs(1), "it was held");
        let learned = setup.learned_heartbeat();
        if round < 3 {
            assert_eq!(learned, Some(1), "round {round}: not grown yet");
        } else {
            // 1 s + the smallest step (60 s).
            assert_eq!(learned, Some(61), "grown after three clean expiries");
            assert_eq!(outcome.next_heartbeat_secs, 61);
        }
    }
    // A restart continues from the persisted value (clamped by the bounds).
    drop(account);
    let mut again = setup.account(Some(Bounds {
        min: 1,
        max: 2,
        start: 1,
    }));
    let outcome = push(&mut again);
    assert_eq!(outcome.heartbeat_secs, 2, "61 clamped to the new maximum");
}

#[test]
fn a_too_short_heartbeat_is_raised_to_the_servers_minimum_and_retried() {
    let lab = lab_with(3, 300);
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "bound", "");
    let mut account = setup.account(Some(bounds(1, 1)));
    let started = Instant::now();
    let outcome = push(&mut account);
    assert_eq!(outcome.result, PingResult::Expired, "{outcome}");
    assert_eq!(outcome.heartbeat_secs, 3, "the lab's minimum");
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(setup.learned_heartbeat(), Some(3), "persisted");
}

#[test]
fn too_many_folders_are_cut_to_the_servers_limit_inbox_first() {
    let lab = lab_with(1, 2);
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "maxf", "");
    let mut account = setup.account(Some(bounds(1, 1)));
    let outcome = push(&mut account);
    assert_eq!(outcome.result, PingResult::Expired, "{outcome}");
    // The Inbox is still watched: new mail there wakes the next round.
    drop(account);
    let mut waiting = setup.account(Some(bounds(30, 30)));
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            lab.handle.add_mail(folder::INBOX, "capped", "hi").unwrap();
        });
        push(&mut waiting)
    });
    assert_eq!(outcome.result, PingResult::Changed, "{outcome}");
    assert_eq!(outcome.added(), 1);
}

#[test]
fn sogo_push_brings_an_imap_appended_mail() {
    let (Ok(url), Ok(imap)) = (
        std::env::var("EASYNC_SOGO_URL"),
        std::env::var("EASYNC_SOGO_IMAP"),
    ) else {
        eprintln!("SKIPPED: SOGo push (EASYNC_SOGO_URL or EASYNC_SOGO_IMAP unset)");
        return;
    };
    let ca = std::env::var_os("EASYNC_SOGO_CA").map(PathBuf::from);
    let setup = Setup::new(&url, "easuser", "easpass", ca.as_deref(), "sogopush", "");
    // The first round syncs everything, then Pings briefly (SOGo bounds it if it must).
    let mut quick = setup.account(Some(bounds(1, 5)));
    let first = quick.push_once(&mut |_| {}).expect("first round");
    assert!(first.cycle.is_some());
    let before = messages(&setup.data());

    let subject = format!("easync engine push {}", client::device_id("p"));
    let message = format!(
        "From: tester@eas.test\r\nTo: easuser@eas.test\r\nSubject: {subject}\r\n\
         Message-ID: <{}@eas.test>\r\nContent-Type: text/plain\r\n\r\nwake up\r\n",
        client::device_id("m")
    );
    // The same device, restarted with a longer heartbeat (one process per data directory).
    drop(quick);
    let mut account = setup.account(Some(bounds(60, 60)));
    let started = Instant::now();
    let mut arrived = None;
    std::thread::scope(|scope| {
        let appender = scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            common::imap::append(&imap, "easuser", "easpass", "INBOX", &message)
        });
        // SOGo may report a change in another folder first; a few rounds at most.
        for _ in 0..4 {
            let outcome = push(&mut account);
            eprintln!("{outcome}");
            if outcome.added() > 0 {
                arrived = Some(outcome);
                break;
            }
        }
        appender.join().unwrap().expect("IMAP append");
    });
    let outcome = arrived.expect("the appended mail arrived by push");
    eprintln!("arrived after {:?}", started.elapsed());
    assert_eq!(outcome.result, PingResult::Changed);
    assert!(
        outcome
            .folders
            .iter()
            .any(|f| f.class == SyncClass::Email && f.added == 1),
        "{outcome}"
    );
    let after = messages(&setup.data());
    let new: Vec<_> = after
        .iter()
        .filter(|(p, _)| !before.iter().any(|(b, _)| b == p))
        .collect();
    assert!(
        new.iter().any(|(_, text)| text.contains(&subject)),
        "{new:?}"
    );
}

#[test]
fn easyncd_once_push_prints_what_arrived() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "bin", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_easyncd"))
        .arg("--config")
        .arg(&setup.config_path)
        .args(["--once", "--push"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("easyncd runs");
    // Once the cycle's summary is out, the mail is new to the Ping that follows (the
    // configured heartbeat is minutes: only the change can end it soon).
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("synced "), "{first}");
    lab.handle
        .add_mail(folder::INBOX, "via easyncd", "pushed")
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{rest}\n{stderr}");
    assert!(rest.contains("push: 1 folder(s) changed"), "{rest}");
    assert!(rest.contains("(email): 1 added"), "{rest}");
    let arrived = messages(&setup.data())
        .into_iter()
        .filter(|(_, text)| text.contains("via easyncd"))
        .count();
    assert_eq!(arrived, 1);
}

#[test]
fn a_ping_lost_on_the_network_shortens_the_heartbeat_and_fails_for_a_retry() {
    use easync::engine::account::EngineError;
    use easync::lab::{Fault, FaultKind};
    let lab = lab_with(1, 300);
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "timeout", "");
    let mut account = setup.account(Some(bounds(1, 2)));
    account.run_once(&mut |_| {}).expect("the first cycle");
    // The answer comes after heartbeat + the transport's margin: the device gives up first.
    let margin = easync::transport::PING_MARGIN;
    lab.handle.inject_fault(Fault {
        command: Some("Ping".into()),
        delay_ms: Some((margin + Duration::from_secs(8)).as_millis() as u64),
        ..Fault::new(FaultKind::Slow)
    });
    let error = account
        .push_once(&mut |_| {})
        .expect_err("the Ping timed out");
    assert!(
        matches!(
            error,
            EngineError::Transport(easync::transport::Error::Timeout { .. })
        ),
        "{error:?}"
    );
    // The failed 2 s became a ceiling; the next heartbeat is below it (the lower bound).
    assert_eq!(setup.learned_heartbeat(), Some(1));
    // The next round works again with the shorter heartbeat.
    let outcome = push(&mut account);
    assert_eq!(outcome.result, PingResult::Expired, "{outcome}");
    assert_eq!(outcome.heartbeat_secs, 1);
}

#[test]
fn a_folder_deleted_on_the_server_leads_to_folder_sync_and_a_new_ping() {
    let lab = lab_with(1, 300);
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "fsync", "");
    let archive = lab.handle.add_folder("0", "Archive 2026", 12).unwrap();
    lab.handle.add_mail(&archive, "kept", "old mail").unwrap();
    let mut account = setup.account(Some(bounds(1, 1)));
    account.run_once(&mut |_| {}).expect("the first cycle");
    let dir = setup.data().join("mail").join("Archive 2026");
    assert!(dir.is_dir(), "the folder was synced");

    // The Ping still names the deleted folder: status 7, FolderSync, Ping again.
    lab.handle.delete_folder(&archive).unwrap();
    let outcome = push(&mut account);
    assert_eq!(outcome.result, PingResult::Expired, "{outcome}");
    assert!(!dir.exists(), "FolderSync removed the deleted folder");
    let state = StateFile::new(&setup.data()).load().unwrap().into_state();
    assert!(!state.folders.contains_key(&archive));
}
