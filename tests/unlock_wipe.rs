//! The wipe the device orders itself and the wipe that fails, against the lab on loopback:
//! failed unlocks counted against the policy's MaxDevicePasswordFailedAttempts across a
//! restart of the runner, then `Handle::wipe_device` cancelling the Sync in flight and
//! erasing the `[wipe]` directory at once; and a server's wipe whose `pre_wipe` hook fails, acknowledged with Status 2 when
//! the server repeats the directive, honoured again once the hook is fixed.

#![cfg(feature = "lab")]

mod common;

use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::lab::Lab;
use common::setup::Setup;
use easync::config::Config;
use easync::device::unlock::{self, UnlockStatus};
use easync::device::wipe::{self, Phase, Progress};
use easync::engine::account::Account;
use easync::engine::runner::{Event, Handle, Runner};
use easync::store::state::{StateFile, WipeIntent};

/// A Ping heartbeat far longer than any wait below: the runner parks in its Ping after a
/// cycle, and whatever happens next was asked for.
const PUSH: &str = "[push]\nheartbeat_min = 300\nheartbeat_start = 300\nheartbeat_max = 600\n";
/// How long an expected event may take before the test gives up (a hang fails the test; no
/// duration is asserted).
const PATIENCE: Duration = Duration::from_secs(120);

/// A runner on its own thread with its events.
struct Running {
    handle: Handle,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(setup: &Setup) -> Running {
        let config = Config::load(&setup.config_path).expect("the configuration loads");
        let (tx, events) = mpsc::channel();
        let (runner, handle) = Runner::new(Account::new(config), move |event| {
            let _ = tx.send(event);
        });
        let thread = std::thread::spawn(move || runner.run());
        Running {
            handle,
            events,
            thread: Some(thread),
        }
    }

    /// Waits for the first event `wanted` accepts; returns it with the events before it.
    fn wait_for(&self, what: &str, wanted: impl Fn(&Event) -> bool) -> (Event, Vec<Event>) {
        let deadline = Instant::now() + PATIENCE;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if wanted(&event) => return (event, before),
                Ok(event) => before.push(event),
                Err(e) => panic!("no {what} ({e}); events so far: {before:#?}"),
            }
        }
    }

    fn stop(mut self) {
        self.handle.stop();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the runner ends cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.stop();
            let _ = thread.join();
        }
    }
}

fn synced(event: &Event) -> bool {
    matches!(event, Event::Synced(_))
}

/// A directory standing for the device's data, with files in it.
fn target_with_files(setup: &Setup) -> std::path::PathBuf {
    let target = setup.dir.0.join("device-data");
    std::fs::create_dir_all(target.join("photos")).unwrap();
    std::fs::write(target.join("photos/1.jpg"), "a photo").unwrap();
    std::fs::write(target.join("notes.txt"), "private notes").unwrap();
    target
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn wipe_acks(lab: &Lab, device_id: &str) -> Vec<u64> {
    lab.device(device_id)["wipe_acks"]
        .as_array()
        .expect("the lab lists wipe acknowledgements")
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect()
}

fn lab_with_failed_attempts(limit: &str) -> Lab {
    let mut config = Lab::default_config();
    for (name, value) in &mut config.policy {
        if name == "MaxDevicePasswordFailedAttempts" {
            *value = limit.to_string();
        }
    }
    Lab::start(config)
}

#[test]
fn the_policys_failed_unlock_limit_survives_a_restart_and_wipes_the_device() {
    let lab = lab_with_failed_attempts("3");
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, "unlockwipe", "");
    let target = target_with_files(&setup);
    let text = std::fs::read_to_string(&setup.config_path).unwrap()
        + &format!(
            "{PUSH}[wipe]\nmode = \"directory\"\ntarget = {:?}\n",
            target.display().to_string()
        );
    std::fs::write(&setup.config_path, text).unwrap();
    let data = setup.data();

    let first = Running::start(&setup);
    first.wait_for("first sync", synced);
    // The provisioned policy set the limit; no failure yet.
    assert_eq!(
        unlock::status(&data).unwrap(),
        UnlockStatus {
            failures: 0,
            limit: Some(3)
        }
    );
    for expected in 1..=2 {
        let status = unlock::record_failure(&data).unwrap();
        assert_eq!(status.failures, expected);
        assert!(!status.wipe_due(), "{status:?}");
    }
    first.stop();

    // Restarted, its first Sync held by the server far longer than the test waits: the
    // count is still there, and the wipe below cuts that Sync short.
    lab.handle.inject_fault(easync::lab::Fault {
        command: Some("Sync".into()),
        delay_ms: Some(600_000),
        ..easync::lab::Fault::new(easync::lab::FaultKind::Slow)
    });
    let second = Running::start(&setup);
    let in_flight = Instant::now() + PATIENCE;
    while lab.state()["faults"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
    {
        assert!(Instant::now() < in_flight, "the runner never sent its Sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        unlock::status(&data).unwrap(),
        UnlockStatus {
            failures: 2,
            limit: Some(3)
        }
    );
    assert_eq!(entries(&target), 2, "nothing wiped yet");

    let third = unlock::record_failure(&data).unwrap();
    assert!(third.wipe_due(), "{third:?}");
    assert_eq!(third.remaining(), Some(0));
    second.handle.wipe_device();
    let (done, before) = second.wait_for("wipe completed", |e| {
        matches!(e, Event::WipeCompleted { .. })
    });
    assert!(
        matches!(
            done,
            Event::WipeCompleted {
                account_only: false
            }
        ),
        "{done:?}"
    );
    assert!(
        before.iter().any(|e| matches!(
            e,
            Event::WipeRequested {
                account_only: false,
                local: true
            }
        )),
        "the local order was announced first: {before:#?}"
    );
    assert!(
        !before.iter().any(synced),
        "the held Sync was cancelled, not waited for: {before:#?}"
    );
    // The target is emptied (and kept), the account cleared, the state says wiped.
    assert!(target.is_dir());
    assert_eq!(entries(&target), 0, "the device data is gone");
    assert!(!data.join("Mail").exists());
    assert_eq!(
        wipe::progress(&data).unwrap(),
        Some(Progress {
            kind: WipeIntent::Full,
            phase: Phase::Completed
        })
    );
    assert!(
        !data.join(unlock::UNLOCK_FILE).exists(),
        "cleared with the account"
    );
    // A local wipe owes the server no acknowledgement.
    assert!(wipe_acks(&lab, &setup.device_id).is_empty());
    second.stop();
}

#[test]
fn a_failed_wipe_is_acknowledged_with_status_2_and_the_repeated_directive_is_honoured() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    let probe = Setup::new(&url, lab.handle.user(), "labpass", None, "failwipe", "");
    let target = target_with_files(&probe);
    // The pre_wipe hook fails while the file `broken` exists.
    let broken = probe.dir.0.join("broken");
    std::fs::write(&broken, "").unwrap();
    let text = std::fs::read_to_string(&probe.config_path).unwrap()
        + &format!(
            "{PUSH}[wipe]\nmode = \"directory\"\ntarget = {:?}\npre_wipe = [\"/bin/sh\", \"-c\", \"test ! -e {}\"]\n",
            target.display().to_string(),
            broken.display()
        );
    std::fs::write(&probe.config_path, text).unwrap();
    let setup = probe;
    let data = setup.data();

    let running = Running::start(&setup);
    running.wait_for("first sync", synced);
    lab.handle
        .request_wipe(Some(&setup.device_id), false)
        .unwrap();
    running.handle.sync_now();

    // Ordered and acknowledged (1), then the attempt fails in pre_wipe and the runner parks.
    let failed_in_pre_wipe =
        |e: &Event| matches!(e, Event::Failed { message, .. } if message.contains("pre_wipe"));
    let (failure, before) = running.wait_for("the failed wipe", failed_in_pre_wipe);
    assert!(
        before.iter().any(|e| matches!(
            e,
            Event::WipeRequested {
                account_only: false,
                local: false
            }
        )),
        "{before:#?}"
    );
    assert!(
        matches!(failure, Event::Failed { wait: None, .. }),
        "a failed wipe waits to be told or for the long retry, no loop: {failure:?}"
    );
    assert_eq!(wipe_acks(&lab, &setup.device_id), [1]);
    assert_eq!(entries(&target), 2, "nothing erased");
    assert!(data.join(wipe::FAILED_FILE).exists());

    // The next connection: the repeated directive gets 2, its repetition 1 and a new
    // attempt, which fails again (still broken).
    running.handle.sync_now();
    let (failure, before) = running.wait_for("the second failed wipe", failed_in_pre_wipe);
    assert!(matches!(failure, Event::Failed { wait: None, .. }));
    assert!(
        before
            .iter()
            .any(|e| matches!(e, Event::WipeRequested { local: false, .. })),
        "{before:#?}"
    );
    assert_eq!(wipe_acks(&lab, &setup.device_id), [1, 2, 1]);
    assert_eq!(entries(&target), 2, "nothing erased");

    // Fixed: the same again, and this time the wipe completes.
    std::fs::remove_file(&broken).unwrap();
    running.handle.sync_now();
    let (done, _) = running.wait_for("wipe completed", |e| {
        matches!(e, Event::WipeCompleted { .. })
    });
    assert!(matches!(
        done,
        Event::WipeCompleted {
            account_only: false
        }
    ));
    assert_eq!(wipe_acks(&lab, &setup.device_id), [1, 2, 1, 2, 1]);
    assert_eq!(entries(&target), 0, "the device data is gone");
    assert_eq!(
        wipe::progress(&data).unwrap(),
        Some(Progress {
            kind: WipeIntent::Full,
            phase: Phase::Completed
        })
    );
    assert!(!data.join(wipe::FAILED_FILE).exists());
    let state = StateFile::new(&data).load().unwrap().into_state();
    assert!(
        state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("wiped")),
        "{:?}",
        state.last_error
    );
    running.stop();
}
