//! `easyncd`: the easync daemon. By default it runs for ever: a tokio current-thread
//! runtime waits for signals (SIGTERM/SIGINT stop, SIGHUP reloads the configuration, SIGUSR1
//! syncs now) and for the engine's events, which it logs and reports to systemd
//! (sd_notify READY, STATUS, STOPPING, and WATCHDOG while the engine shows signs of life:
//! see [`watchdog`]); the account itself runs on a thread of its
//! own ([`easync::engine::runner`]). With D-Bus (the default, `--bus`), the same events
//! keep the `org.easync` service ([`easync::dbus`]) up to date and its method calls steer
//! the runner. `--once` runs one full cycle and exits, for field engineers and scripts.

mod notify;
mod watchdog;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use easync::config::{self, Config};
use easync::engine::account::{Account, Progress};
use easync::engine::enroll::SignInPrompt;
use easync::engine::reaction::Reaction;
use easync::engine::runner::{Event, Handle, Runner, Step};
use notify::Notifier;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// How long file changes must have been quiet before they count as one local change.
const LOCAL_CHANGE_SETTLE: Duration = Duration::from_millis(300);

/// How long the engine must have been quiet in a wait before its code pages are let go:
/// long enough for a Ping to be sent (its code runs after `Begin(Push)`).
const IDLE_RELEASE_AFTER: Duration = Duration::from_secs(5);

/// The environment variable that lets a crash write a core dump (see [`USAGE`]).
const ALLOW_CORE_DUMPS: &str = "EASYNC_ALLOW_CORE_DUMPS";

const USAGE: &str = "\
usage: easyncd [--config FILE] [--bus system|session|none] [-v] [--once [--push]]

  (no option)     run for ever: sync, stay pushed, upload local changes; stops on SIGTERM
                  or SIGINT, reloads the configuration on SIGHUP, syncs at once on SIGUSR1
  --once          run one full cycle (negotiate, provision, folder sync, sync every selected
                  folder into the data directory) and exit
  --push          with --once: then wait for one push (Ping) round, sync what changed and
                  print what arrived
  --config FILE   the configuration (default /etc/easync/easync.toml)
  --bus BUS       where to offer the org.easync D-Bus service: system (default), session
                  (development, tests) or none
  -v, --verbose   log more (repeat for debug)
  -h, --help      this text

easyncd never writes a core dump (the password and tokens are in its memory);
EASYNC_ALLOW_CORE_DUMPS=1 in its environment allows them, for debugging.

Under systemd (Type=notify) easyncd reports READY=1 once running, STATUS= as it syncs, and
WATCHDOG=1 at half of WatchdogSec= when that is set.
Exit status: 0 success (or stopped by a signal), 1 failure (the message says what to do),
2 usage.";

struct Args {
    config: PathBuf,
    bus: Option<BusChoice>,
    once: bool,
    push: bool,
    verbosity: u8,
}

/// Log lines on stderr (warnings and errors unless -v).
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = record.level();
        if JOURNAL.get().copied().unwrap_or(false) {
            // journald reads the priority from a `<N>` prefix.
            let priority = match level {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            eprintln!("<{priority}>{}", record.args());
        } else {
            eprintln!(
                "easyncd: {}: {}",
                level.as_str().to_lowercase(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;
/// Whether stderr goes to the journal (systemd sets `$JOURNAL_STREAM`).
static JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("easyncd: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let _ = JOURNAL.set(std::env::var_os("JOURNAL_STREAM").is_some());
    let _ = log::set_logger(&LOGGER);
    // Before the password or a token is read: a core dump would carry them off the device.
    let cores_allowed = std::env::var_os(ALLOW_CORE_DUMPS).is_some_and(|v| v == "1");
    if !cores_allowed {
        if let Err(e) = nix::sys::prctl::set_dumpable(false) {
            log::warn!(
                "core dumps could not be switched off ({e}): a crash may write the password into a core file"
            );
        }
    }
    log::set_max_level(match (args.verbosity, args.once) {
        (0, true) => log::LevelFilter::Warn,
        // The daemon's own news (synced, pushed, failed) is info: the journal keeps it.
        (0, false) | (1, _) => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    });
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("easyncd: {e}");
            return ExitCode::from(1);
        }
    };
    if !args.once {
        let bus = args.bus.unwrap_or(DEFAULT_BUS);
        return run_daemon(config, &args.config, bus);
    }
    let mut account = Account::new(config);
    let mut print_progress = |p: Progress| {
        let of = p.estimated.map(|e| format!(" of ~{e}")).unwrap_or_default();
        eprintln!("{} {}: {}{of} items", p.class.as_str(), p.folder, p.done);
    };
    match account.run_once(&mut print_progress) {
        Ok(summary) => print!("{summary}"),
        Err(e) => {
            eprintln!("easyncd: {e}");
            return ExitCode::from(1);
        }
    }
    if args.push {
        match account.push_once(&mut print_progress) {
            Ok(outcome) => print!("{outcome}"),
            Err(e) => {
                eprintln!("easyncd: push: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

fn parse_args() -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut args = Args {
        config: PathBuf::from(config::DEFAULT_PATH),
        bus: None,
        once: false,
        push: false,
        verbosity: 0,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("once") => args.once = true,
            Long("push") => args.push = true,
            Short('v') | Long("verbose") => args.verbosity = args.verbosity.saturating_add(1),
            Short('c') | Long("config") => {
                args.config = parser.value().map_err(|e| e.to_string())?.into();
            }
            Long("bus") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                args.bus = Some(match value.to_str() {
                    #[cfg(feature = "dbus")]
                    Some("system") => BusChoice::Bus(easync::dbus::Bus::System),
                    #[cfg(feature = "dbus")]
                    Some("session") => BusChoice::Bus(easync::dbus::Bus::Session),
                    Some("none") => BusChoice::None,
                    _ => {
                        return Err(format!(
                            "--bus {}: use system, session or none{}",
                            value.to_string_lossy(),
                            if cfg!(feature = "dbus") {
                                ""
                            } else {
                                " (this build has no D-Bus: only none)"
                            }
                        ));
                    }
                });
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if args.push && !args.once {
        return Err("--push needs --once (one push round after the cycle)".into());
    }
    if args.once && args.bus.is_some() {
        return Err("--bus is for the daemon; --once offers no D-Bus service".into());
    }
    Ok(Some(args))
}

/// Where the D-Bus service is offered.
#[derive(Debug, Clone, Copy)]
enum BusChoice {
    #[cfg(feature = "dbus")]
    Bus(easync::dbus::Bus),
    None,
}

#[cfg(feature = "dbus")]
const DEFAULT_BUS: BusChoice = BusChoice::Bus(easync::dbus::Bus::System);
#[cfg(not(feature = "dbus"))]
const DEFAULT_BUS: BusChoice = BusChoice::None;

/// What reaches the daemon's loop from the engine's thread.
enum Notice {
    Engine(Event),
    SignIn(SignInPrompt),
}

/// The long-running mode. See the module documentation.
fn run_daemon(config: Config, config_path: &Path, bus: BusChoice) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("easyncd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(daemon(config, config_path, bus))
}

async fn daemon(config: Config, config_path: &Path, bus: BusChoice) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};

    let notifier = Notifier::from_env();
    let mut signals = match (|| {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
            signal(SignalKind::user_defined1())?,
        ))
    })() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("easyncd: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let bus_config = config.clone();
    let mut account = Account::new(config);
    let sign_in_notifier = Notifier::from_env();
    let prompts = events_tx.clone();
    account.set_sign_in_prompt(Box::new(move |prompt| {
        log::warn!("{}", prompt.message);
        sign_in_notifier.status(&format!(
            "sign in: open {} and enter the code {}",
            prompt.verification_uri, prompt.user_code
        ));
        let _ = prompts.send(Notice::SignIn(prompt.clone()));
    }));
    let (mut runner, handle) = Runner::new(account, move |event| {
        let _ = events_tx.send(Notice::Engine(event));
    });
    let bus_service = match BusService::start(bus, &handle, &bus_config).await {
        Ok(service) => service,
        Err(message) => {
            eprintln!("easyncd: {message}");
            return ExitCode::from(1);
        }
    };
    // The device's changes: readiness of the runner's inotify descriptor ends a parked Ping
    // (the runner itself reads the events; see `engine::runner`).
    let watch = match runner.watch_local_changes() {
        // SAFETY: the descriptor is an OwnedFd moved into the AsyncFd, so it stays open
        // and refers to the same inotify instance for as long as it is registered.
        Ok(fd) => match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!(
                    "cannot wait on the local-change watcher ({e}): local changes are uploaded with the next cycle"
                );
                None
            }
        },
        Err(e) => {
            log::warn!("{e}");
            None
        }
    };
    let mut local_change: Option<(tokio::time::Instant, u64)> = None;
    let engine = match std::thread::Builder::new()
        .name("easync-engine".into())
        .spawn(move || runner.run())
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("easyncd: cannot start the engine thread: {e}");
            return ExitCode::from(1);
        }
    };
    notifier.send("READY=1");
    notifier.status("starting: first sync");
    log::info!("started (pid {})", std::process::id());

    // Pings only while the engine shows signs of life (see `watchdog`).
    let mut engine_watch = watchdog::EngineWatch::new(std::time::Instant::now());
    let mut engine_stuck_reported = false;
    let watchdog = notify::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    // Once the engine has settled into a wait (see `settles_into_wait`), the code and data
    // it ran through are let go (`device::memory`).
    let mut idle_release: Option<tokio::time::Instant> = None;
    let (sigterm, sigint, sighup, sigusr1) = &mut signals;
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => reload(&handle, config_path, &notifier).await,
            _ = sigusr1.recv() => {
                log::info!("SIGUSR1: syncing now");
                in_background(&handle, Handle::sync_now).await;
            }
            notice = events.recv() => match notice {
                Some(Notice::Engine(event)) => {
                    engine_watch.saw(&event, std::time::Instant::now());
                    idle_release = settles_into_wait(&event)
                        .then(|| tokio::time::Instant::now() + IDLE_RELEASE_AFTER);
                    report(&event, &notifier);
                    bus_service.engine_event(&event).await;
                }
                Some(Notice::SignIn(prompt)) => bus_service.sign_in(&prompt).await,
                None => break,
            },
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                let now = std::time::Instant::now();
                if engine_watch.alive(now) {
                    notifier.send("WATCHDOG=1");
                    engine_stuck_reported = false;
                } else if !engine_stuck_reported {
                    engine_stuck_reported = true;
                    log::error!(
                        "the engine has been silent for {} s, longer than anything it was doing \
                         may take: no more watchdog pings, systemd restarts the daemon",
                        engine_watch.silent_for(now).as_secs()
                    );
                }
            }
            _ = async { tokio::time::sleep_until(idle_release.unwrap_or_else(tokio::time::Instant::now)).await }, if idle_release.is_some() => {
                idle_release = None;
                release_idle_memory();
            }
            ready = async {
                match &watch {
                    Some(fd) => Some(fd.readable().await),
                    None => None,
                }
            }, if watch.is_some() => {
                if let Some(Ok(mut guard)) = ready {
                    guard.clear_ready();
                }
                // Let a burst of file changes settle; remember what the runner had read.
                let due = local_change.map_or(tokio::time::Instant::now() + LOCAL_CHANGE_SETTLE, |(at, _)| at);
                local_change = Some((due, handle.drains()));
            }
            _ = async { tokio::time::sleep_until(local_change.map(|(at, _)| at).unwrap_or_else(tokio::time::Instant::now)).await }, if local_change.is_some() => {
                let seen_at = local_change.take().map(|(_, drains)| drains);
                // The runner drained its watcher since: it has those events (its own
                // writes, mostly) and nothing is to be interrupted.
                if seen_at == Some(handle.drains()) {
                    in_background(&handle, Handle::local_change).await;
                }
            }
        }
    }
    notifier.send("STOPPING=1");
    notifier.status("stopping");
    log::info!("stopping");
    handle.stop();
    // The engine may have been between requests when the cancel came: cancel again until
    // it has returned (bounded; systemd's stop timeout is the last word).
    for _ in 0..100 {
        if engine.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        handle.cancel_again();
    }
    if !engine.is_finished() {
        log::warn!("the engine did not stop within 10 s; exiting anyway (the store is safe)");
        return ExitCode::SUCCESS;
    }
    let _ = engine.join();
    ExitCode::SUCCESS
}

/// Whether the engine, after this event, is about to wait for a while: parked in a Ping, in
/// a back-off, parked until told, or done with a wipe.
fn settles_into_wait(event: &Event) -> bool {
    matches!(
        event,
        Event::Begin(Step::Push)
            | Event::Failed { .. }
            | Event::WipeCompleted { .. }
            | Event::Roaming
    )
}

/// Gives back free heap and the resident pages of code and read-only data (the engine has
/// been quiet for [`IDLE_RELEASE_AFTER`]; what it runs next faults back in).
fn release_idle_memory() {
    match easync::device::memory::release_idle_memory() {
        Ok(r) => log::debug!(
            "idle: {} KiB of code and read-only data unmapped ({} mappings)",
            r.resident_bytes / 1024,
            r.mappings
        ),
        Err(e) => log::debug!("idle: mappings not released: {e}"),
    }
}

/// Runs a handle call that may block for a moment (it ends a parked Ping) off the runtime.
async fn in_background(handle: &Handle, call: fn(&Handle)) {
    let handle = handle.clone();
    let _ = tokio::task::spawn_blocking(move || call(&handle)).await;
}

/// SIGHUP: reads the configuration again; a bad file is reported and the old one kept.
async fn reload(handle: &Handle, path: &Path, notifier: &Notifier) {
    match Config::load(path) {
        Ok(config) => {
            log::info!("SIGHUP: configuration {} reloaded", path.display());
            let handle = handle.clone();
            let _ = tokio::task::spawn_blocking(move || handle.reload(config)).await;
        }
        Err(e) => {
            log::error!("SIGHUP: {e}; carrying on with the configuration loaded before");
            notifier.status(&format!("configuration not reloaded: {e}"));
        }
    }
}

/// Logs an engine event and tells systemd the state in one line.
fn report(event: &Event, notifier: &Notifier) {
    match event {
        Event::Begin(Step::Cycle) => notifier.status("syncing"),
        Event::Begin(Step::Push) => notifier.status("listening for changes (push)"),
        Event::Begin(Step::Upload) => notifier.status("uploading local changes"),
        Event::Begin(Step::Outbox) => notifier.status("sending the outbox"),
        Event::Uploaded(summary) => {
            if summary.total().total() > 0 {
                for line in summary.to_string().lines() {
                    log::info!("{}", line.trim());
                }
            }
        }
        Event::Sent(summary) => {
            if summary.sent + summary.already_sent > 0 || !summary.refused.is_empty() {
                for line in summary.to_string().lines() {
                    log::info!("{}", line.trim());
                }
            }
        }
        Event::Progress(p) => {
            let of = p.estimated.map(|e| format!(" of ~{e}")).unwrap_or_default();
            log::debug!("{} {}: {}{of} items", p.class.as_str(), p.folder, p.done);
        }
        Event::Synced(summary) => {
            for line in summary.to_string().lines() {
                log::info!("{}", line.trim());
            }
            notifier.status("synced");
        }
        Event::Pushed(outcome) => {
            for line in outcome.to_string().lines() {
                log::info!("{}", line.trim());
            }
        }
        Event::Failed {
            message,
            reaction,
            wait,
        } => {
            if let (Reaction::Wipe { account_only }, Some(_)) = (reaction, wait) {
                // Not a failure: the next cycle carries the wipe out at once.
                let kind = if *account_only {
                    "account-only"
                } else {
                    "full"
                };
                log::warn!("the server ordered a {kind} remote wipe: carrying it out now");
                notifier.status(&format!("carrying out a {kind} remote wipe"));
                return;
            }
            let next = match (reaction, wait) {
                (Reaction::Wipe { .. }, _) => "waiting for the wipe to be carried out".into(),
                (_, Some(w)) => format!("trying again in {} s", w.as_secs()),
                (_, None) => "waiting until told (SIGHUP, SIGUSR1)".to_string(),
            };
            log::error!("{message}; {next}");
            notifier.status(&format!("failed: {message}; {next}"));
        }
        Event::Policy { compliance, .. } => {
            if let Some(c) = compliance {
                if !c.missing.is_empty() {
                    notifier.status(&format!(
                        "policy not fully applied: {}",
                        c.missing.join(", ")
                    ));
                }
            }
        }
        Event::WipeRequested {
            account_only,
            local,
        } => {
            let kind = if *account_only {
                "account-only"
            } else {
                "full"
            };
            let by = if *local { "the device" } else { "the server" };
            log::warn!("a {kind} wipe was ordered by {by}");
            notifier.status(&format!("wiping ({kind}, ordered by {by})"));
        }
        Event::WipeCompleted { account_only } => {
            let kind = if *account_only {
                "account-only"
            } else {
                "full"
            };
            log::warn!("the {kind} wipe is complete");
            notifier.status(&format!("wiped ({kind})"));
        }
        Event::Roaming => notifier.status("roaming: syncing only when asked (policy)"),
        Event::Stopped => log::info!("engine stopped"),
    }
}

/// The D-Bus service when there is one: the view kept from the engine's events and what
/// they changed published.
struct BusService {
    #[cfg(feature = "dbus")]
    inner: Option<(
        easync::dbus::service::Service,
        std::sync::Arc<std::sync::Mutex<easync::dbus::view::AccountView>>,
    )>,
}

impl BusService {
    #[cfg_attr(not(feature = "dbus"), allow(unused_variables, clippy::unused_async))]
    async fn start(bus: BusChoice, handle: &Handle, config: &Config) -> Result<Self, String> {
        match bus {
            BusChoice::None => Ok(BusService {
                #[cfg(feature = "dbus")]
                inner: None,
            }),
            #[cfg(feature = "dbus")]
            BusChoice::Bus(bus) => {
                use easync::dbus::{service, view};
                let view = std::sync::Arc::new(std::sync::Mutex::new(view::AccountView::new(
                    service::saved_protocol_version(config.data_dir()),
                )));
                let account = service::Account1::new(handle.clone(), config, view.clone());
                let service = service::Service::start(bus, account)
                    .await
                    .map_err(|e| e.to_string())?;
                log::info!(
                    "D-Bus: {} on the {} bus",
                    easync::dbus::BUS_NAME,
                    bus.as_str()
                );
                Ok(BusService {
                    inner: Some((service, view)),
                })
            }
        }
    }

    #[cfg_attr(not(feature = "dbus"), allow(unused_variables, clippy::unused_async))]
    async fn engine_event(&self, event: &Event) {
        #[cfg(feature = "dbus")]
        if let Some((service, view)) = &self.inner {
            let changes = view
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .apply(event, std::time::SystemTime::now());
            service.publish(&changes).await;
        }
    }

    #[cfg_attr(not(feature = "dbus"), allow(unused_variables, clippy::unused_async))]
    async fn sign_in(&self, prompt: &SignInPrompt) {
        #[cfg(feature = "dbus")]
        if let Some((service, view)) = &self.inner {
            let changes = view
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sign_in(prompt);
            service.publish(&changes).await;
        }
    }
}
