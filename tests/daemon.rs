//! `easyncd` in its long-running mode against the in-process lab: it reports to a
//! systemd-style notification socket, syncs, receives a push, answers SIGUSR1 (sync now)
//! by ending its parked Ping, reloads its configuration on SIGHUP (keeping the old one
//! when the new one is bad), backs off from a failing server, and stops on SIGTERM.

#![cfg(feature = "lab")]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::Lab;
use common::setup::Setup;
use easync::lab::FaultKind;
use easync::lab::seed::folder;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A Ping heartbeat far longer than any wait below: whatever happens sooner was not a
/// heartbeat running out.
const PUSH: &str = "[push]\nheartbeat_min = 300\nheartbeat_start = 300\nheartbeat_max = 600\n";

/// The daemon under test with the socket it notifies.
struct Daemon {
    child: Child,
    notify: UnixDatagram,
    seen: Vec<String>,
    log: PathBuf,
}

impl Daemon {
    fn start(setup: &Setup) -> Daemon {
        let socket = setup.dir.0.join("notify.sock");
        let notify = UnixDatagram::bind(&socket).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = setup.dir.0.join("easyncd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_easyncd"))
            .arg("--config")
            .arg(&setup.config_path)
            .args(["-v", "--bus", "none"])
            .env("NOTIFY_SOCKET", &socket)
            // A watchdog every second (half of 2 s).
            .env("WATCHDOG_USEC", "2000000")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("easyncd starts");
        Daemon {
            child,
            notify,
            seen: Vec::new(),
            log,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    /// Waits for a notification starting with `prefix`; returns it. Panics (with the log)
    /// after `within`.
    fn expect(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(message.clone());
                if message.starts_with(prefix) {
                    return message;
                }
            }
        }
        panic!(
            "no {prefix:?} within {within:?}; seen {:?}\n--- easyncd log ---\n{}",
            self.seen,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// How many notifications starting with `prefix` arrive during `window`.
    fn count(&mut self, prefix: &str, window: Duration) -> usize {
        let deadline = Instant::now() + window;
        let mut buf = [0u8; 512];
        let mut n = 0;
        while Instant::now() < deadline {
            if let Ok(len) = self.notify.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..len]).into_owned();
                n += usize::from(message.starts_with(prefix));
                self.seen.push(message);
            }
        }
        n
    }

    /// Waits for the process to end; its exit code.
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "easyncd did not exit within {within:?}\n--- log ---\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mail messages of the inbox on disk (new/ and cur/), as text. The folder is `Inbox` on
/// the lab and `INBOX` on SOGo.
fn inbox_messages(data: &Path) -> Vec<String> {
    let inbox = std::fs::read_dir(data.join("mail"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.eq_ignore_ascii_case("inbox"))
        })
        .unwrap_or_else(|| data.join("mail").join("Inbox"));
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(inbox.join(sub)).into_iter().flatten() {
            let entry = entry.unwrap();
            out.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    out
}

fn wait_for_mail(data: &Path, subject: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if inbox_messages(data).iter().any(|m| m.contains(subject)) {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the mail {subject:?} did not arrive within {within:?}");
}

#[test]
fn the_daemon_syncs_pushes_answers_signals_and_stops() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "daemon", PUSH);
    let mut daemon = Daemon::start(&setup);

    daemon.expect("READY=1", Duration::from_secs(10));
    daemon.expect("STATUS=synced", Duration::from_secs(60));
    let inbox = lab.folder_items(folder::INBOX) as usize;
    assert_eq!(inbox_messages(&setup.data()).len(), inbox);

    // Parked in a 300 s Ping: a new mail arrives by push. The silent engine is within what
    // it announced, so the main loop keeps systemd's watchdog fed.
    daemon.expect("STATUS=listening", Duration::from_secs(10));
    daemon.expect("WATCHDOG=1", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    lab.handle
        .add_mail(folder::INBOX, "daemon push", "arrives by push")
        .unwrap();
    wait_for_mail(&setup.data(), "daemon push", Duration::from_secs(30));

    // SIGUSR1 ends the parked Ping and runs a full cycle long before the heartbeat.
    daemon.expect("STATUS=listening", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    daemon.signal(Signal::SIGUSR1);
    daemon.expect("STATUS=syncing", Duration::from_secs(10));
    daemon.expect("STATUS=synced", Duration::from_secs(30));

    // A broken configuration is refused and the daemon carries on with the old one.
    let good = std::fs::read_to_string(&setup.config_path).unwrap();
    std::fs::write(&setup.config_path, format!("{good}\nnonsense = 1\n")).unwrap();
    daemon.signal(Signal::SIGHUP);
    let refused = daemon.expect("STATUS=configuration not reloaded", Duration::from_secs(10));
    assert!(refused.contains("nonsense"), "names the bad key: {refused}");
    assert_eq!(daemon.child.try_wait().unwrap(), None, "still running");

    // A good one is taken and followed by a full cycle.
    std::fs::write(&setup.config_path, good).unwrap();
    daemon.signal(Signal::SIGHUP);
    daemon.expect("STATUS=syncing", Duration::from_secs(10));
    daemon.expect("STATUS=synced", Duration::from_secs(30));
    lab.handle
        .add_mail(folder::INBOX, "after reload", "still pushed")
        .unwrap();
    wait_for_mail(&setup.data(), "after reload", Duration::from_secs(30));

    daemon.signal(Signal::SIGTERM);
    daemon.expect("STOPPING=1", Duration::from_secs(10));
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)), Some(0));
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("labpass"), "no password in the log");
}

#[test]
fn a_failing_server_gets_a_growing_back_off_not_a_busy_loop() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "backoff", PUSH);
    lab.handle.inject_fault(easync::lab::Fault {
        count: 1000,
        ..easync::lab::Fault::new(FaultKind::ServerError)
    });
    let mut daemon = Daemon::start(&setup);
    let first = daemon.expect("STATUS=failed", Duration::from_secs(30));
    assert!(first.contains("trying again in"), "{first}");
    // Every attempt is reported: count them over a few seconds.
    let attempts = daemon.count("STATUS=failed", Duration::from_secs(4));
    assert!(
        attempts <= 3,
        "a back-off, not a busy loop: {attempts} attempts in 4 s: {:?}",
        daemon.seen
    );
    // Once the server is well again, SIGUSR1 ends the wait and the sync completes.
    lab.handle.clear_faults();
    daemon.signal(Signal::SIGUSR1);
    daemon.expect("STATUS=synced", Duration::from_secs(30));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)), Some(0));
}

/// The lab's per-device request count.
fn device_requests(lab: &Lab, device_id: &str) -> u64 {
    lab.device(device_id)["requests"].as_u64().unwrap()
}

/// Waits until `check` holds; false after `within`.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn local_changes_and_the_outbox_end_a_parked_ping_and_reach_the_server() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "dlocal", PUSH);
    let mut daemon = Daemon::start(&setup);
    daemon.expect("STATUS=synced", Duration::from_secs(60));
    daemon.expect("STATUS=listening", Duration::from_secs(10));

    // A pushed mail is stored, and the files the daemon wrote do not wake it again: after
    // the push round it sends its next Ping and stays there.
    std::thread::sleep(Duration::from_millis(500));
    lab.handle
        .add_mail(folder::INBOX, "quiet after push", "no echo")
        .unwrap();
    wait_for_mail(&setup.data(), "quiet after push", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let settled = device_requests(&lab, &setup.device_id);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        device_requests(&lab, &setup.device_id),
        settled,
        "parked again: no requests while nothing changes"
    );

    // A contact created on the device goes up while the daemon waits in a 300 s Ping.
    let contacts = lab.folder_items(folder::CONTACTS);
    let card = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:daemon-card-1\r\nFN:Ada Daemonmade\r\n\
                N:Daemonmade;Ada;;;\r\nEND:VCARD\r\n";
    let dir = setup.data().join("contacts").join("Contacts");
    std::fs::write(dir.join(".new.vcf.tmp"), card).unwrap();
    std::fs::rename(dir.join(".new.vcf.tmp"), dir.join("daemon-card.vcf")).unwrap();
    assert!(
        eventually(Duration::from_secs(15), || lab
            .folder_items(folder::CONTACTS)
            == contacts + 1),
        "the new contact reached the server well before the heartbeat; seen {:?}",
        daemon.seen
    );

    // A message dropped into the outbox is sent and removed.
    let sent = lab.folder_items(folder::SENT);
    let outbox = setup.data().join("outbox");
    let mime = "From: lab@example.com\r\nTo: someone@example.org\r\nSubject: from the daemon\r\n\
                MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nsent by easyncd\r\n";
    std::fs::write(outbox.join("tmp").join("1764000000.daemon.host"), mime).unwrap();
    std::fs::rename(
        outbox.join("tmp").join("1764000000.daemon.host"),
        outbox.join("new").join("1764000000.daemon.host"),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(15), || lab.folder_items(folder::SENT)
            == sent + 1),
        "the queued message was sent; seen {:?}",
        daemon.seen
    );
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_dir(outbox.join("new")).unwrap().count() == 0
    }));

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn sogo_the_daemon_syncs_and_a_mail_appended_over_imap_arrives_by_push() {
    let (Ok(url), Ok(imap)) = (
        std::env::var("EASYNC_SOGO_URL"),
        std::env::var("EASYNC_SOGO_IMAP"),
    ) else {
        eprintln!("SKIPPED: SOGo daemon (EASYNC_SOGO_URL or EASYNC_SOGO_IMAP unset)");
        return;
    };
    let ca = std::env::var_os("EASYNC_SOGO_CA").map(PathBuf::from);
    // SOGo holds Pings of 60 s and more; the first change ends it.
    let push = "[push]\nheartbeat_min = 60\nheartbeat_start = 60\nheartbeat_max = 600\n";
    let setup = Setup::new(&url, "easuser", "easpass", ca.as_deref(), "dsogo", push);
    let mut daemon = Daemon::start(&setup);
    daemon.expect("READY=1", Duration::from_secs(10));
    daemon.expect("STATUS=synced", Duration::from_secs(90));
    assert!(
        !inbox_messages(&setup.data()).is_empty(),
        "the seeded mails are in the Maildir"
    );
    daemon.expect("STATUS=listening", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let subject = format!("easyncd daemon push {}", std::process::id());
    let message = format!(
        "From: tester@eas.test\r\nTo: easuser@eas.test\r\nSubject: {subject}\r\n\
         Message-ID: <daemon-{}@eas.test>\r\nContent-Type: text/plain\r\n\r\npushed\r\n",
        std::process::id()
    );
    common::imap::append(&imap, "easuser", "easpass", "INBOX", &message).expect("IMAP append");
    let took = wait_for_mail(&setup.data(), &subject, Duration::from_secs(60));
    eprintln!("arrived {took:?} after the IMAP append");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn an_account_only_wipe_ordered_while_running_is_carried_out_at_once() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "dwipe", PUSH);
    let mut daemon = Daemon::start(&setup);
    daemon.expect("STATUS=synced", Duration::from_secs(60));
    daemon.expect("STATUS=listening", Duration::from_secs(10));
    assert!(!inbox_messages(&setup.data()).is_empty());

    // The server orders the wipe; the next cycle (SIGUSR1 here) meets it in Provision.
    lab.handle
        .request_wipe(Some(&setup.device_id), true)
        .unwrap();
    daemon.signal(Signal::SIGUSR1);
    // First the order (recorded and acknowledged), then at once the cycle that carries it
    // out, which ends with the account reported as wiped.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let failed = daemon.expect("STATUS=failed", deadline - Instant::now());
        if failed.contains("wiped") {
            break;
        }
    }
    let wipe = &lab.device(&setup.device_id)["wipe"];
    assert_eq!(wipe["status"], 1, "acknowledged as done: {wipe}");
    assert!(
        inbox_messages(&setup.data()).is_empty(),
        "the account's mail is gone"
    );
    let phase = std::fs::read_to_string(setup.data().join("state").join("wipe.phase")).unwrap();
    assert!(phase.contains("completed"), "{phase}");
    // What remains of the state is the record of the wipe for `status`: no folders, keys or
    // items.
    let state = easync::store::state::StateFile::new(&setup.data())
        .load()
        .unwrap()
        .into_state();
    assert!(state.folders.is_empty(), "{:?}", state.folders.keys());
    assert_eq!(state.folder_sync_key, "0");
    assert!(state.policy_key.is_none());
    // It stays wiped: no request to the server afterwards.
    let requests = device_requests(&lab, &setup.device_id);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(device_requests(&lab, &setup.device_id), requests);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)), Some(0));
}
