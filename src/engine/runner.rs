//! The long-running schedule of one account — what `easyncd` runs between start and
//! SIGTERM. It owns the [`Account`] on a thread of its own (the transport blocks) and loops:
//! a full cycle at start and then every `[sync] resync_interval`, push rounds in between,
//! and whatever a [`Handle`] asks for (sync now, local changes, a new configuration, a wipe
//! of the device, stop).
//! Every failure leads through [`super::reaction`] to a bounded wait or a parked state;
//! nothing loops without waiting.
//!
//! A parked Ping holds a blocking read for up to an hour. To end it early the engine and
//! the [`Interrupter`] share a [`PingControl`]: the engine says "parked" before it sends a
//! Ping and checks whether an interrupt is wanted; the interrupter says "wanted" and, while
//! the engine is parked, cancels the request in flight (repeatedly for a moment, so a Ping
//! that was just being sent is caught too). Whichever comes second sees the other, so no
//! request to sync is lost and none waits out a heartbeat. While parked, nothing here sets
//! a timer: the thread sleeps in the socket read.
//!
//! Local changes: the runner owns the [`LocalWatcher`] and drains it before every step, so
//! the files its own steps wrote never count as news once it parks; a drain that found
//! something leads to an upload round (which sends nothing when the files match the state).
//! The daemon watches a duplicate of the watcher's descriptor for readiness and interrupts
//! the Ping only when the runner has not drained since the event ([`Handle::drains`]).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::account::{Account, EngineError, Progress, Summary, WipeNews};
use super::outbox::OutboxSummary;
use super::push::{PingResult, PushOutcome};
use super::reaction::{self, PARKED_RETRY, Reaction};
use super::upload::UploadSummary;
use super::watch::{LocalWatcher, WatchError};
use crate::config::Config;
use crate::device::hooks::Compliance;
use crate::transport::{self, Backoff, Canceller};

/// Push rounds in a row that may find nothing after a Ping said "changes" before the runner
/// pauses (see [`Runner::empty_push_pause`]).
const MAX_EMPTY_PUSHES: u32 = 2;

/// Failures in a row after which a due upload or outbox round is left to the next trigger
/// (a local change, the next cycle), so a broken server cannot starve the push loop.
const MAX_SIDE_FAILURES: u32 = 3;
/// How long an interrupter keeps cancelling a Ping that was just being sent.
const INTERRUPT_EFFORT: Duration = Duration::from_secs(2);
/// The pause between two cancels of that effort.
const INTERRUPT_REPEAT: Duration = Duration::from_millis(20);

/// What the engine and its interrupters share about the Ping in flight.
#[derive(Debug, Default)]
pub struct PingControl {
    /// The canceller of the client the engine uses now (replaced on every connect).
    canceller: Mutex<Option<Canceller>>,
    /// The engine is in (or about to send) a Ping.
    parked: AtomicBool,
    /// Someone wants the engine to stop waiting and look at its commands.
    wanted: AtomicBool,
}

impl PingControl {
    pub(super) fn set_canceller(&self, canceller: Canceller) {
        *self.canceller.lock().unwrap_or_else(|p| p.into_inner()) = Some(canceller);
    }

    /// The engine is about to send a Ping. False if an interrupt is already wanted: then
    /// it must not park.
    pub(super) fn park(&self) -> bool {
        self.parked.store(true, Ordering::SeqCst);
        if self.wanted.load(Ordering::SeqCst) {
            self.parked.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The Ping is over.
    pub(super) fn unpark(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }

    /// The engine is about to look at its commands: interrupts asked for so far are served.
    fn acknowledge(&self) {
        self.wanted.store(false, Ordering::SeqCst);
    }

    fn cancel(&self) {
        if let Some(c) = &*self.canceller.lock().unwrap_or_else(|p| p.into_inner()) {
            c.cancel();
        }
    }
}

/// Ends an account's parked Ping from another thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Interrupter {
    control: Arc<PingControl>,
}

impl Interrupter {
    pub(super) fn new(control: Arc<PingControl>) -> Interrupter {
        Interrupter { control }
    }

    /// Makes the engine stop waiting in a Ping and look at its commands. A sync in progress
    /// is not disturbed (the engine looks at its commands when it is done). Blocks for at
    /// most about two seconds, normally for no time at all.
    pub fn interrupt(&self) {
        let c = &self.control;
        c.wanted.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + INTERRUPT_EFFORT;
        while c.wanted.load(Ordering::SeqCst)
            && c.parked.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            c.cancel();
            std::thread::sleep(INTERRUPT_REPEAT);
        }
    }

    /// Cancels whatever request is in flight, parked or not (the daemon stops: items
    /// already stored stay, the SyncKey of a cut batch does not move).
    pub fn cancel_all(&self) {
        self.control.wanted.store(true, Ordering::SeqCst);
        self.control.cancel();
    }
}

/// What a [`Handle`] asks of the runner.
pub enum Command {
    /// Run a full cycle now (and end a back-off wait).
    SyncNow,
    /// Files changed in the data directory: upload what the device changed.
    LocalChange,
    /// Carry on with a new configuration (a full cycle follows).
    Reload(Box<Config>),
    /// Wipe the device now (too many failed unlocks): the request in flight is cancelled,
    /// the full wipe's intent persisted and the wipe carried out at once.
    WipeDevice,
    /// Finish and return from [`Runner::run`].
    Stop,
    /// Provision again at once so the hooks check compliance anew (a hook reported a
    /// change on the device).
    RecheckCompliance,
    /// Run this with the account between two steps (on-demand work of a front end, such as
    /// fetching an attachment).
    Run(Box<dyn FnOnce(&mut Account) + Send>),
    /// Look again at what is due (the roaming signal changed).
    Wake,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::SyncNow => f.write_str("SyncNow"),
            Command::LocalChange => f.write_str("LocalChange"),
            Command::Reload(_) => f.write_str("Reload"),
            Command::Stop => f.write_str("Stop"),
            Command::RecheckCompliance => f.write_str("RecheckCompliance"),
            Command::Run(_) => f.write_str("Run"),
            Command::WipeDevice => f.write_str("WipeDevice"),
            Command::Wake => f.write_str("Wake"),
        }
    }
}

/// The step the runner is taking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A full cycle: negotiate, provision, FolderSync, Sync every selected folder (the
    /// device's changes go up with each folder's Sync).
    Cycle,
    /// The device's changes to the server (no network when there are none).
    Upload,
    /// The outbox sent (no network when it is empty).
    Outbox,
    /// A push round: Ping, then Sync what changed.
    Push,
}

/// What the runner reports as it goes.
#[derive(Debug)]
pub enum Event {
    /// A step begins.
    Begin(Step),
    /// A folder's sync moved on.
    Progress(Progress),
    /// A full cycle completed.
    Synced(Summary),
    /// A push round completed (the server's changes are stored).
    Pushed(PushOutcome),
    /// An upload round completed.
    Uploaded(UploadSummary),
    /// An outbox round completed.
    Sent(OutboxSummary),
    /// A step failed; the runner waits `wait` (None: until told) before the next.
    Failed {
        message: String,
        reaction: Reaction,
        wait: Option<Duration>,
    },
    /// The policy provisioned or the hooks' verdict on it changed.
    Policy {
        /// The policy's elements (name, value); empty when the server has none.
        elements: Vec<(&'static str, String)>,
        /// The verdict acknowledged (None: no policy was provisioned in this process).
        compliance: Option<Compliance>,
    },
    /// A wipe was ordered: by the server's directive (`local` false, acknowledged) or on
    /// the device ([`Handle::wipe_device`]).
    WipeRequested { account_only: bool, local: bool },
    /// A wipe ran to its end (the account stays parked as wiped).
    WipeCompleted { account_only: bool },
    /// Roaming, and the policy requires manual sync then: nothing goes out until asked.
    Roaming,
    /// The runner stopped.
    Stopped,
}

/// Talks to a running [`Runner`] from other threads. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: Sender<Command>,
    interrupter: Interrupter,
    drains: Arc<AtomicU64>,
}

impl Handle {
    fn send(&self, command: Command) {
        // A runner that is gone has nothing left to do: ignoring is right.
        let _ = self.commands.send(command);
        self.interrupter.interrupt();
    }

    /// A full cycle now.
    pub fn sync_now(&self) {
        self.send(Command::SyncNow);
    }

    /// Local files changed.
    pub fn local_change(&self) {
        self.send(Command::LocalChange);
    }

    /// Use `config` from now on.
    pub fn reload(&self, config: Config) {
        self.send(Command::Reload(Box::new(config)));
    }

    /// Look again at what is due (the roaming signal changed).
    pub fn wake(&self) {
        self.send(Command::Wake);
    }

    /// Provision again now, asking the hooks anew (a cycle follows).
    pub fn recheck_compliance(&self) {
        self.send(Command::RecheckCompliance);
    }

    /// Runs `work` with the account between two steps (a parked Ping is ended for it; a
    /// step in progress finishes first). Dropped unrun when the runner stops.
    pub fn run(&self, work: impl FnOnce(&mut Account) + Send + 'static) {
        self.send(Command::Run(Box::new(work)));
    }

    /// Stop: the request in flight is cancelled (what is stored stays stored).
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
        self.interrupter.cancel_all();
    }

    /// Wipe the device at once (the policy's MaxDevicePasswordFailedAttempts reached, see
    /// [`crate::device::unlock`]): the request in flight is cancelled, then the runner
    /// persists the full wipe's intent and carries it out before anything else.
    pub fn wipe_device(&self) {
        let _ = self.commands.send(Command::WipeDevice);
        self.interrupter.cancel_all();
    }

    /// How many times the runner has drained its local watcher. Record it when the watcher
    /// descriptor turns readable; if it is unchanged when you act, the runner has not seen
    /// those events yet and [`Handle::local_change`] is due.
    pub fn drains(&self) -> u64 {
        self.drains.load(Ordering::SeqCst)
    }

    /// Cancels the request in flight again (while waiting for the runner to stop, in case
    /// it had started a new one).
    pub fn cancel_again(&self) {
        self.interrupter.cancel_all();
    }
}

/// The account's schedule. See the module documentation.
pub struct Runner {
    account: Account,
    commands: Receiver<Command>,
    /// Commands taken from the channel during a wait, not yet acted on.
    queued: VecDeque<Command>,
    events: Box<dyn FnMut(Event) + Send>,
    interrupter: Interrupter,
    watcher: Option<LocalWatcher>,
    drains: Arc<AtomicU64>,
    /// The policy and verdict last reported ([`Event::Policy`]).
    published_policy: Option<PolicyReport>,
    /// Push rounds in a row whose Ping found changes that the Syncs then did not find.
    empty_pushes: u32,
}

type PolicyReport = (Option<Vec<(&'static str, String)>>, Option<Compliance>);

/// What the loop has to do next.
struct Due {
    cycle: bool,
    uploads: bool,
    outbox: bool,
    last_cycle: Option<Instant>,
    failures: u32,
    /// A cycle ran since the last wipe order (it carries the wipe out when it can).
    wipe_tried: bool,
    /// A wipe was ordered on the device and is not persisted yet.
    local_wipe: bool,
    /// The next cycle is the one run at once for a wipe order.
    wipe_at_once: bool,
    /// A sync was asked for (SyncNow): it runs even while roaming forbids automatic ones.
    asked: bool,
}

/// While roaming with manual sync only, how often the runner looks whether roaming ended
/// (the roaming file may be changed by a script that does not tell the daemon).
pub const ROAMING_CHECK: Duration = Duration::from_secs(60);

impl Runner {
    /// A runner for `account`, reporting to `events`, and the handle that steers it.
    pub fn new(account: Account, events: impl FnMut(Event) + Send + 'static) -> (Runner, Handle) {
        let (tx, rx) = mpsc::channel();
        let interrupter = account.interrupter();
        let drains = Arc::new(AtomicU64::new(0));
        let handle = Handle {
            commands: tx,
            interrupter: interrupter.clone(),
            drains: drains.clone(),
        };
        let runner = Runner {
            account,
            commands: rx,
            queued: VecDeque::new(),
            events: Box::new(events),
            interrupter,
            watcher: None,
            drains,
            published_policy: None,
            empty_pushes: 0,
        };
        (runner, handle)
    }

    /// Watches the data directory for the device's changes (see the module documentation);
    /// returns a duplicate of the inotify descriptor for the caller to wait on.
    pub fn watch_local_changes(&mut self) -> Result<OwnedFd, WatchError> {
        let data_dir = self.account.config().data_dir();
        // The outbox exists from the start, so apps can queue mail and it is watched.
        if let Err(e) = crate::store::maildir::Outbox::open(data_dir) {
            log::warn!("{e}");
        }
        let watcher = LocalWatcher::new(data_dir)?;
        let fd = nix::unistd::dup(watcher.as_fd()).map_err(WatchError::Init)?;
        self.watcher = Some(watcher);
        Ok(fd)
    }

    /// Runs until [`Command::Stop`] (or every handle is dropped).
    pub fn run(mut self) {
        let mut due = Due {
            cycle: true,
            uploads: false,
            outbox: true,
            last_cycle: None,
            failures: 0,
            wipe_tried: false,
            local_wipe: false,
            wipe_at_once: false,
            asked: false,
        };
        loop {
            self.interrupter.control.acknowledge();
            while let Some(command) = self.next_command() {
                if !self.take(command, &mut due) {
                    (self.events)(Event::Stopped);
                    return;
                }
            }
            if let Some(watcher) = &mut self.watcher {
                if watcher.drain() {
                    due.uploads = true;
                    due.outbox = true;
                }
                self.drains.fetch_add(1, Ordering::SeqCst);
            }
            if due.local_wipe {
                due.local_wipe = false;
                due.cycle = true;
                match self.account.order_local_wipe() {
                    Ok(()) => {
                        due.wipe_tried = true;
                        (self.events)(Event::WipeRequested {
                            account_only: false,
                            local: true,
                        });
                    }
                    Err(e) => {
                        // Asked again after a back-off (nothing else runs meanwhile).
                        due.local_wipe = true;
                        let after =
                            Backoff::default().delay(due.failures, None, SystemTime::now(), 0);
                        due.failures = due.failures.saturating_add(1);
                        (self.events)(Event::Failed {
                            message: format!("the wipe cannot be ordered: {e}"),
                            reaction: Reaction::Retry { after },
                            wait: Some(after),
                        });
                        if !self.wait(after) {
                            (self.events)(Event::Stopped);
                            return;
                        }
                        continue;
                    }
                }
            }
            let resync = self.account.config().sync().resync_interval;
            if due.last_cycle.is_some_and(|at| at.elapsed() >= resync) {
                due.cycle = true;
            }
            let step = if due.cycle {
                Step::Cycle
            } else if due.uploads {
                Step::Upload
            } else if due.outbox {
                Step::Outbox
            } else {
                Step::Push
            };
            // RequireManualSyncWhenRoaming: while roaming only what was asked for goes out
            // (the cycle, then its uploads and outbox); a wipe is never held back.
            // Cheapest first: the roaming check is a stat, the wipe check reads the state.
            if self.account.manual_sync_only()
                && (!due.asked || step == Step::Push)
                && !(due.wipe_tried || due.wipe_at_once || self.account.wipe_pending())
            {
                due.asked = false;
                (self.events)(Event::Roaming);
                if !self.wait(ROAMING_CHECK) {
                    (self.events)(Event::Stopped);
                    return;
                }
                continue;
            }
            if step == Step::Push {
                due.asked = false;
            }
            (self.events)(Event::Begin(step));
            let at_once = std::mem::take(&mut due.wipe_at_once);
            let result = self.step(step);
            self.publish_policy();
            for news in self.account.take_wipe_news() {
                (self.events)(match news {
                    WipeNews::Ordered { account_only } => {
                        // A fresh order (also the server's repetition of one that failed)
                        // is carried out at once, unless it came in the very cycle run at
                        // once for an order: then it waits (no loop without a wait).
                        if !at_once {
                            due.wipe_tried = false;
                        }
                        Event::WipeRequested {
                            account_only,
                            local: false,
                        }
                    }
                    WipeNews::Completed { account_only } => Event::WipeCompleted { account_only },
                });
            }
            match result {
                Ok(()) => {
                    due.failures = 0;
                    due.wipe_tried = false;
                    match step {
                        Step::Cycle => {
                            due.cycle = false;
                            // The cycle's Syncs carried the uploads.
                            due.uploads = false;
                            due.outbox = true;
                            due.last_cycle = Some(Instant::now());
                            self.watch_new_folders();
                        }
                        Step::Upload => due.uploads = false,
                        Step::Outbox => {
                            due.outbox = false;
                            self.watch_new_folders();
                        }
                        Step::Push => {
                            if let Some(pause) = self.empty_push_pause() {
                                if !self.wait(pause) {
                                    (self.events)(Event::Stopped);
                                    return;
                                }
                            }
                        }
                    }
                }
                Err(EngineError::Interrupted) => {}
                Err(EngineError::Transport(transport::Error::Cancelled)) => {}
                Err(e) => {
                    let reaction = self.reaction(&e, due.failures);
                    due.failures = due.failures.saturating_add(1);
                    if due.failures >= MAX_SIDE_FAILURES {
                        match step {
                            Step::Upload => due.uploads = false,
                            Step::Outbox => due.outbox = false,
                            _ => {}
                        }
                    }
                    if matches!(reaction, Reaction::Restart { .. }) {
                        due.cycle = true;
                    }
                    let wait = match &reaction {
                        Reaction::Retry { after } | Reaction::Restart { after } => Some(*after),
                        // A wipe ordered in this step is carried out by the next cycle, at
                        // once; one that is still pending after that waits to be told.
                        Reaction::Wipe { .. } if !due.wipe_tried => {
                            due.wipe_tried = true;
                            due.wipe_at_once = true;
                            due.cycle = true;
                            Some(Duration::ZERO)
                        }
                        _ => None,
                    };
                    (self.events)(Event::Failed {
                        message: e.to_string(),
                        reaction: reaction.clone(),
                        wait,
                    });
                    if !self.wait(wait.unwrap_or(PARKED_RETRY)) {
                        (self.events)(Event::Stopped);
                        return;
                    }
                    if wait.is_none() {
                        // Parked: whatever ends the wait gets a fresh start.
                        due.cycle = true;
                    }
                }
            }
        }
    }

    fn next_command(&mut self) -> Option<Command> {
        self.queued
            .pop_front()
            .or_else(|| self.commands.try_recv().ok())
    }

    /// Acts on `command`; false to stop.
    fn take(&mut self, command: Command, due: &mut Due) -> bool {
        match command {
            Command::Stop => return false,
            Command::SyncNow => {
                due.cycle = true;
                due.asked = true;
            }
            Command::Wake => {}
            Command::LocalChange => {
                due.uploads = true;
                due.outbox = true;
            }
            Command::Reload(config) => {
                self.account.replace_config(*config);
                due.cycle = true;
                due.failures = 0;
            }
            Command::RecheckCompliance => {
                self.account.recheck_compliance();
                due.cycle = true;
            }
            Command::Run(work) => {
                work(&mut self.account);
                self.publish_policy();
            }
            Command::WipeDevice => due.local_wipe = true,
        }
        true
    }

    /// Reports the policy and the verdict when they differ from what was reported last.
    fn publish_policy(&mut self) {
        let now = (self.account.policy(), self.account.compliance());
        if now.0.is_none() || self.published_policy.as_ref() == Some(&now) {
            return;
        }
        self.published_policy = Some(now.clone());
        (self.events)(Event::Policy {
            elements: now.0.unwrap_or_default(),
            compliance: now.1,
        });
    }

    fn step(&mut self, step: Step) -> Result<(), EngineError> {
        let events = &mut self.events;
        let mut progress = |p: Progress| events(Event::Progress(p));
        match step {
            Step::Cycle => {
                let summary = self.account.run_once(&mut progress)?;
                (self.events)(Event::Synced(summary));
            }
            Step::Upload => {
                let summary = self.account.upload_once(&mut progress)?;
                (self.events)(Event::Uploaded(summary));
            }
            Step::Outbox => {
                let summary = self.account.send_outbox()?;
                (self.events)(Event::Sent(summary));
            }
            Step::Push => {
                let outcome = self.account.push_once(&mut progress)?;
                let empty = outcome.result == PingResult::Changed
                    && outcome.cycle.is_none()
                    && outcome
                        .folders
                        .iter()
                        .all(|f| f.added + f.changed + f.deleted == 0);
                self.empty_pushes = if empty { self.empty_pushes + 1 } else { 0 };
                (self.events)(Event::Pushed(outcome));
            }
        }
        Ok(())
    }

    /// After [`MAX_EMPTY_PUSHES`] push rounds in a row whose Ping reported changes the Syncs
    /// did not find (a server whose change tracking is broken would otherwise be pinged and
    /// synced back to back for ever): the pause before the next Ping, reported as a
    /// failure. It grows with every further such round, up to the back-off's ceiling, and
    /// is reset by a round that brings something or a Ping that runs its heartbeat out.
    fn empty_push_pause(&mut self) -> Option<Duration> {
        let beyond = self.empty_pushes.checked_sub(MAX_EMPTY_PUSHES)?;
        let after = Backoff::default().delay(beyond, None, SystemTime::now(), 0);
        (self.events)(Event::Failed {
            message: format!(
                "the server reported changes {} times in a row that syncing did not find",
                self.empty_pushes
            ),
            reaction: Reaction::Retry { after },
            wait: Some(after),
        });
        Some(after)
    }

    /// Starts watching the folders a FolderSync created.
    fn watch_new_folders(&mut self) {
        if let Some(watcher) = &mut self.watcher {
            if let Err(e) = watcher.rescan_dirs() {
                log::warn!("{e}; changes there are picked up at the next cycle");
            }
        }
    }

    /// What to do after `error`, the `failures`-th in a row.
    fn reaction(&self, error: &EngineError, failures: u32) -> Reaction {
        let seed = self
            .account
            .config()
            .data_dir()
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let backoff = Backoff::default();
        let retry = || Reaction::Retry {
            after: backoff.delay(failures, None, SystemTime::now(), seed),
        };
        match error {
            EngineError::Transport(e) => {
                reaction::react(e, failures, &backoff, SystemTime::now(), seed)
            }
            EngineError::Config(_) | EngineError::Unsupported(_) => Reaction::FixConfiguration {
                message: error.to_string(),
            },
            EngineError::WipePending(intent, _) => Reaction::Wipe {
                account_only: matches!(intent, crate::store::state::WipeIntent::AccountOnly),
            },
            EngineError::Server { .. } | EngineError::HierarchyChanged => Reaction::Restart {
                after: backoff.delay(failures, None, SystemTime::now(), seed),
            },
            EngineError::Autodiscover(_) | EngineError::Store(_) | EngineError::Interrupted => {
                retry()
            }
            EngineError::SignIn(e) => e.reaction(failures, &backoff, SystemTime::now(), seed),
        }
    }

    /// Waits `duration` unless a command ends the wait early (a sync asked for, a new
    /// configuration, stop); local changes do not end a back-off. False to stop.
    fn wait(&mut self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.commands.recv_timeout(left) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
                Ok(Command::LocalChange) => self.queued.push_back(Command::LocalChange),
                Ok(other) => {
                    self.queued.push_back(other);
                    return true;
                }
                Err(RecvTimeoutError::Timeout) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_before_parking_prevents_the_park() {
        let control = Arc::new(PingControl::default());
        let interrupter = Interrupter::new(control.clone());
        interrupter.interrupt();
        assert!(!control.park(), "wanted first: the engine must not park");
        control.acknowledge();
        assert!(control.park(), "served: parking is fine again");
        control.unpark();
    }

    #[test]
    fn an_interrupt_while_parked_gives_up_after_its_effort() {
        // Parked with no client to cancel (nothing in flight): the interrupter keeps
        // trying for its bounded effort and then returns; the wish stays for the engine.
        let control = Arc::new(PingControl::default());
        assert!(control.park());
        let started = Instant::now();
        Interrupter::new(control.clone()).interrupt();
        assert!(started.elapsed() >= INTERRUPT_EFFORT);
        control.unpark();
        assert!(!control.park(), "the wish is still there");
    }
}
