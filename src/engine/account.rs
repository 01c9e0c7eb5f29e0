//! One account's synchronous sync cycle — what `easyncd --once` runs: connect (the
//! configured URL, or Autodiscover once, cached), negotiate, provision (honestly: the
//! `[hooks]` decide what is applied, see [`super::enforce`]), FolderSync from the
//! saved key, then Sync every selected folder from its saved key until the server has
//! nothing more, storing items through [`super::apply::FolderApplier`].
//!
//! The state is saved after FolderSync and after every Sync response (only once all its
//! items are durable), so an interrupted cycle resumes where it stopped.
//!
//! The server's policy caps what is requested: provisioning turns it into the state's
//! `policy_limits` (see [`super::provision::policy_limits`]), which the cycle copies into
//! the state it holds (`adopt_policy_limits`) so that its own saves keep them;
//! Sync then asks for the stricter age filter and mail cut at the policy's body size.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::apply::{self, Applied, FolderApplier};
use super::enroll::{SignIn, SignInError, SignInPrompt};
use super::heartbeat::{Bounds, Heartbeat};
use super::provision::{Enforcer, EngineProvisioner};
use super::reaction::{self, Reaction};
use super::runner::PingControl;
use crate::config::{self, AgeFilter, AuthSource, ConfigError, SyncClass};
use crate::device::unlock;
use crate::device::wipe::{self, WipeError, WipeOutcome};
use crate::eas::estimate::{self, EstimateCollection};
use crate::eas::folder::{self, FolderChange, FolderSyncStatus, FolderType};
use crate::eas::item::{BodyPreference, BodyType, Class, FilterType};
use crate::eas::policy::Policy;
use crate::eas::provision::{AckStatus, WipeDirective, WipeStatus};
use crate::eas::settings::DeviceInformation;
use crate::eas::sync::{
    self, CollectionRequest, MimeSupport, SyncOptions, SyncOutcome, SyncRequest,
};
use crate::eas::{Command, ProtocolVersion};
use crate::store::atomic::{self, PRIVATE_FILE_MODE, StoreError};
use crate::store::lock::DataDirLock;
use crate::store::maildir::Maildir;
use crate::store::names::{self, NameSet};
use crate::store::state::{AccountState, FolderState, PolicyLimits, StateFile, WipeIntent};
use crate::store::vdir::{self, Vdir};
use crate::transport::{self, Auth, Client, Session, TlsOptions, autodiscover, command_timeout};

/// Items asked for per Sync response.
pub const WINDOW_SIZE: u32 = 100;
/// Sync rounds of one folder in one cycle at most (a server that never says "done" cannot
/// keep the cycle going for ever).
pub const MAX_ROUNDS: u32 = 10_000;
/// Sync rounds in a row that may bring nothing while the server says MoreAvailable; one
/// more ends the folder's sync with an error (and the daemon's back-off).
const MAX_IDLE_ROUNDS: u32 = 5;
/// The file under `data_dir/state/` caching the URL Autodiscover found.
pub const SERVER_URL_FILE: &str = "server_url";
/// Time limit of OPTIONS.
const OPTIONS_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a cycle stopped. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Transport(#[from] transport::Error),
    #[error("finding the server failed: {0}; or set account.server in the configuration")]
    Autodiscover(#[from] autodiscover::Error),
    #[error("local storage: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unsupported(String),
    #[error("the server answered {what} with status {status}: {hint}")]
    Server {
        what: &'static str,
        status: String,
        hint: String,
    },
    #[error(
        "a remote wipe ordered by the server is pending ({0:?}): configure [wipe] (target and \
         mode) so that easyncd carries it out, or wipe the data by hand and remove {1} to \
         re-enroll"
    )]
    WipePending(WipeIntent, PathBuf),
    /// Sync status 12: the folder list changed while syncing. The cycle runs FolderSync
    /// again and carries on; the error only surfaces when that keeps happening.
    #[error(
        "the server's folder list kept changing during the sync (Sync status 12): run \
         --once again"
    )]
    HierarchyChanged,
    /// A parked Ping was ended on purpose (a sync was asked for, local changes wait, the
    /// daemon stops): not a failure.
    #[error("interrupted: a sync was asked for, local changes wait or the daemon stops")]
    Interrupted,
    /// An OAuth account has no usable tokens (sign-in denied or expired, the stored sign-in
    /// refused, the credential store unusable).
    #[error("{0}")]
    SignIn(#[from] SignInError),
}

impl EngineError {
    /// What the engine would do next about this error (for transport errors).
    pub fn reaction(&self) -> Option<Reaction> {
        match self {
            EngineError::Transport(e) => Some(reaction::react(
                e,
                0,
                &transport::Backoff::default(),
                SystemTime::now(),
                0,
            )),
            EngineError::SignIn(e) => {
                Some(e.reaction(0, &transport::Backoff::default(), SystemTime::now(), 0))
            }
            _ => None,
        }
    }
}

/// Progress of one folder's sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The folder's display name.
    pub folder: String,
    pub class: SyncClass,
    /// Items applied so far in this folder.
    pub done: u64,
    /// What GetItemEstimate said before the initial sync (None: not asked or no answer).
    pub estimated: Option<u64>,
}

/// What one class went through in a cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassSummary {
    pub folders: u32,
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    /// Items skipped because they could not be converted (see the log).
    pub failed: u64,
    pub bytes: u64,
    /// The device's changes sent along (added, changed, deleted on the server).
    pub uploaded: u64,
}

/// What [`Account::enroll`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The server's ActiveSync URL.
    pub url: String,
    pub protocol_version: String,
    /// The folders the server listed.
    pub folders: usize,
}

/// What a cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub url: String,
    pub protocol_version: String,
    pub classes: BTreeMap<SyncClass, ClassSummary>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "synced {} (ActiveSync {})",
            self.url, self.protocol_version
        )?;
        for (class, s) in &self.classes {
            writeln!(
                f,
                "  {:<9} {} folder(s): {} added, {} changed, {} deleted, {} failed, {} bytes{}",
                class.as_str(),
                s.folders,
                s.added,
                s.changed,
                s.deleted,
                s.failed,
                s.bytes,
                if s.uploaded > 0 {
                    format!("; {} local change(s) uploaded", s.uploaded)
                } else {
                    String::new()
                }
            )?;
        }
        Ok(())
    }
}

/// A wipe's milestones as the account learns them, for the runner's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WipeNews {
    /// The server's wipe directive was acknowledged (Status 1).
    Ordered { account_only: bool },
    /// A wipe ran to its end in this process.
    Completed { account_only: bool },
}

/// What [`Account::carry_out_wipe`] leaves the cycle to do.
enum PendingWipe {
    /// No wipe pending: sync.
    Nothing,
    /// The cycle ends with this error (wiped, still pending, failed).
    Stop(EngineError),
    /// A server's wipe failed: connect only to acknowledge the repeated directive with
    /// Status 2 (see [`wipe::remember_failure`]).
    ReportFailure,
}

/// One configured account.
pub struct Account {
    pub(super) config: config::Config,
    pub(super) state_file: StateFile,
    /// The push heartbeat learned in this process (it counts clean expiries, which the
    /// state file does not keep); built on the first push round.
    pub(super) heartbeat: Option<Heartbeat>,
    /// Heartbeat bounds replacing the configuration's `[push]` (see
    /// [`Account::set_heartbeat_bounds`]).
    pub(super) heartbeat_bounds: Option<Bounds>,
    /// Lets another thread end a parked Ping (see [`super::runner::Interrupter`]).
    pub(super) control: Arc<PingControl>,
    /// The data directory, held for this process from the first exchange on.
    data_lock: Mutex<Option<DataDirLock>>,
    /// Local changes the server refused, remembered so they are not sent again unchanged.
    pub(super) uploads: super::upload::UploadMemory,
    /// An OAuth account's sign-in prompt and what its token provider learned.
    pub(super) sign_in: SignIn,
    /// The last policy compliance verdict (see [`Account::compliance`]).
    compliance: super::enforce::ComplianceSlot,
    /// The elements of the last policy provisioned (see [`Account::policy`]).
    policy: super::enforce::PolicySlot,
    /// The next cycle provisions again, so the hooks check compliance anew: at start,
    /// and when a hook reports a change ([`Account::recheck_compliance`]).
    recheck_policy: bool,
    /// A password being checked by [`Account::enroll`], used instead of the stored one.
    trying_password: Option<transport::Secret>,
    /// Wipe milestones not yet taken by the runner.
    wipe_news: Mutex<Vec<WipeNews>>,
}

/// The Enforcer without device hooks (`[hooks]` empty): it enforces nothing, so it
/// acknowledges every policy as not applied (3), and a wipe is persisted as an intent in
/// the state before it is acknowledged.
pub(super) struct HonestEnforcer<'a> {
    pub(super) state_file: &'a StateFile,
}

impl Enforcer for HonestEnforcer<'_> {
    fn apply(&mut self, _policy: &Policy) -> AckStatus {
        log::warn!("the server's policy is acknowledged as not applied: no [hooks] configured");
        AckStatus::NotApplied
    }

    fn wipe_requested(&mut self, directive: WipeDirective) -> WipeStatus {
        let intent = match directive {
            WipeDirective::Full => WipeIntent::Full,
            WipeDirective::AccountOnly => WipeIntent::AccountOnly,
        };
        let saved = self.state_file.load().and_then(|loaded| {
            let mut state = loaded.into_state();
            state.wipe_intent = Some(intent);
            self.state_file.save(&state)
        });
        match saved {
            Ok(()) => WipeStatus::Succeeded,
            Err(e) => {
                log::error!("cannot persist the wipe intent: {e}");
                WipeStatus::Failed
            }
        }
    }
}

/// When an earlier attempt at the wipe failed and the server was not told yet: drops it
/// (see [`wipe::withdraw`]) and says true, so that the server's directive is acknowledged
/// with Status 2 and its repetition starts the wipe afresh.
pub(super) fn withdraw_failed_wipe(state_file: &StateFile) -> bool {
    let data_dir = state_file
        .path()
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    match wipe::failure_to_report(data_dir) {
        Ok(true) => {
            log::warn!("the server repeats its wipe order: acknowledging the failed attempt");
            if let Err(e) = wipe::withdraw(data_dir) {
                log::error!("cannot withdraw the failed wipe: {e}");
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            log::error!("cannot tell whether an earlier wipe failed: {e}");
            false
        }
    }
}

pub(super) fn sync_class(class: Class) -> SyncClass {
    match class {
        Class::Email => SyncClass::Email,
        Class::Contacts => SyncClass::Contacts,
        Class::Calendar => SyncClass::Calendar,
        Class::Tasks => SyncClass::Tasks,
        Class::Notes => SyncClass::Notes,
    }
}

fn filter_type(age: AgeFilter) -> FilterType {
    match age {
        AgeFilter::All => FilterType::All,
        AgeFilter::OneDay => FilterType::OneDay,
        AgeFilter::ThreeDays => FilterType::ThreeDays,
        AgeFilter::OneWeek => FilterType::OneWeek,
        AgeFilter::TwoWeeks => FilterType::TwoWeeks,
        AgeFilter::OneMonth => FilterType::OneMonth,
        AgeFilter::ThreeMonths => FilterType::ThreeMonths,
        AgeFilter::SixMonths => FilterType::SixMonths,
    }
}

/// The stricter of the configured age filter and the policy's (a FilterType code; 0 and
/// an absent limit mean all items) for a `class` folder. A policy code the spec does not
/// allow for the class is ignored.
fn stricter_filter(class: Class, configured: FilterType, policy: Option<u8>) -> FilterType {
    let Some(code) = policy.filter(|&c| c > 0) else {
        return configured;
    };
    if configured != FilterType::All && configured.code() <= code {
        return configured;
    }
    FILTER_TYPES
        .iter()
        .copied()
        .find(|f| f.code() == code && f.applies_to(class))
        .unwrap_or(configured)
}

const FILTER_TYPES: [FilterType; 8] = [
    FilterType::All,
    FilterType::OneDay,
    FilterType::ThreeDays,
    FilterType::OneWeek,
    FilterType::TwoWeeks,
    FilterType::OneMonth,
    FilterType::ThreeMonths,
    FilterType::SixMonths,
];

/// The most bytes of a mail's MIME the policy lets easync request: the smaller of the plain
/// text and (when HTML mail is allowed) the HTML body limits.
fn mail_body_cap(limits: &PolicyLimits) -> Option<u64> {
    let html = limits
        .allow_html_email
        .then_some(limits.max_email_html_body_bytes)
        .flatten();
    match (limits.max_email_body_bytes, html) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sizes of the MIMETruncation codes 0–7 (MS-ASCMD 2.2.3.108.2); 8 is no truncation.
const MIME_TRUNCATION_SIZES: [u64; 8] = [0, 4096, 5120, 7168, 10240, 20480, 51200, 102400];

/// The largest MIMETruncation code that cuts at no more than `cap` bytes.
fn mime_truncation_code(cap: u64) -> u8 {
    MIME_TRUNCATION_SIZES
        .iter()
        .rposition(|&size| size <= cap)
        .map_or(0, |i| i as u8)
}

/// The display-name path of folder `id` from the top (bounded against parent loops).
fn folder_path<'s>(state: &'s AccountState, id: &str) -> Vec<&'s str> {
    let mut path = Vec::new();
    let mut current = state.folders.get(id);
    while let Some(f) = current {
        path.push(f.display_name.as_str());
        if path.len() > 64 {
            break;
        }
        current = state.folders.get(&f.parent_id);
    }
    path.reverse();
    path
}

impl Account {
    pub fn new(config: config::Config) -> Account {
        let saved_policy = super::enforce::saved_policy(config.data_dir());
        let state_file = StateFile::new(config.data_dir());
        Account {
            config,
            state_file,
            heartbeat: None,
            heartbeat_bounds: None,
            control: Arc::default(),
            data_lock: Mutex::new(None),
            uploads: super::upload::UploadMemory::new(),
            sign_in: SignIn::default(),
            compliance: Arc::default(),
            policy: Arc::new(Mutex::new(saved_policy)),
            recheck_policy: true,
            trying_password: None,
            wipe_news: Mutex::default(),
        }
    }

    /// The elements (name, value) of the last policy provisioned — in this process, or kept
    /// from an earlier one (`state/policy.json`) — `None` when none is known; empty when the
    /// server has no policy.
    pub fn policy(&self) -> Option<Vec<(&'static str, String)>> {
        self.policy.lock().ok().and_then(|slot| slot.clone())
    }

    /// Whether only asked-for syncs may run now: the device has a roaming signal
    /// (`device.roaming_file`), it is roaming, and the policy has
    /// RequireManualSyncWhenRoaming.
    pub fn manual_sync_only(&self) -> bool {
        let Some(file) = &self.config.device().roaming_file else {
            return false;
        };
        file.exists()
            && self.policy().is_some_and(|p| {
                p.iter()
                    .any(|(n, v)| *n == "RequireManualSyncWhenRoaming" && v == "1")
            })
    }

    /// Whether a wipe is ordered and not yet completed (it runs whatever else is held).
    pub fn wipe_pending(&self) -> bool {
        match wipe::progress(self.data_dir()) {
            Ok(Some(p)) => p.phase != wipe::Phase::Completed,
            Ok(None) => self
                .state_file
                .load()
                .is_ok_and(|l| l.into_state().wipe_intent.is_some()),
            Err(_) => true,
        }
    }

    /// Makes the next cycle provision again, so the hooks are asked anew and the server
    /// gets an honest acknowledgement of what the device applies now.
    pub fn recheck_compliance(&mut self) {
        self.recheck_policy = true;
    }

    fn tell(&self, news: WipeNews) {
        self.wipe_news
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(news);
    }

    /// The wipe milestones since the last call.
    pub(super) fn take_wipe_news(&self) -> Vec<WipeNews> {
        std::mem::take(&mut *self.wipe_news.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Orders the full wipe on the device itself (too many failed unlocks): persisted as
    /// the server's order would be, carried out by the next cycle before any network
    /// access, no acknowledgement owed.
    pub(super) fn order_local_wipe(&self) -> Result<(), EngineError> {
        self.hold_data_dir()?;
        wipe::order_local(self.data_dir()).map_err(engine_wipe_error)
    }

    /// The verdict of the last policy this process acknowledged: the status sent and the
    /// elements not applied (`None` before the first provisioning).
    pub fn compliance(&self) -> Option<crate::device::hooks::Compliance> {
        self.compliance.lock().ok().and_then(|slot| slot.clone())
    }

    /// The Enforcer provisioning uses: the `[hooks]` when any is configured, else nothing
    /// is enforced (see [`super::enforce`]).
    pub(super) fn enforcer(&self) -> super::enforce::HookEnforcer {
        let hooks = self.config.hooks();
        super::enforce::HookEnforcer::new(
            self.state_file.clone(),
            hooks
                .any()
                .then(|| crate::device::hooks::HookSet::from_config(hooks)),
            Arc::clone(&self.compliance),
        )
        .with_policy_slot(Arc::clone(&self.policy))
        .with_roaming_signal(self.config.device().roaming_file.is_some())
    }

    /// Where an OAuth account's device sign-in shows the code to enter (by default a
    /// warning in the log). Called on the engine's thread, before the wait for approval.
    pub fn set_sign_in_prompt(&mut self, prompt: Box<dyn Fn(&SignInPrompt) + Send>) {
        self.sign_in.set_prompt(prompt);
    }

    /// Takes the data directory's lock if this account does not hold it yet: two processes
    /// syncing into one directory would undo each other's work.
    pub(super) fn hold_data_dir(&self) -> Result<(), EngineError> {
        let mut held = self.data_lock.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_none() {
            *held = Some(DataDirLock::acquire(self.config.data_dir())?);
        }
        Ok(())
    }

    /// Takes a new configuration (SIGHUP), keeping the handle that interrupts Pings. The
    /// learned heartbeat is read from the state again.
    pub fn replace_config(&mut self, config: config::Config) {
        self.state_file = StateFile::new(config.data_dir());
        self.config = config;
        self.heartbeat = None;
        *self.data_lock.get_mut().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A handle that ends this account's parked Ping from another thread.
    pub fn interrupter(&self) -> super::runner::Interrupter {
        super::runner::Interrupter::new(self.control.clone())
    }

    pub fn config(&self) -> &config::Config {
        &self.config
    }

    fn data_dir(&self) -> &Path {
        self.config.data_dir()
    }

    fn url_cache(&self) -> PathBuf {
        self.data_dir().join("state").join(SERVER_URL_FILE)
    }

    /// The transport configuration for `url`.
    fn transport_config(&self, url: &str) -> Result<transport::Config, EngineError> {
        let account = self.config.account();
        let device_id = self.config.device_id()?;
        let mut t = transport::Config::new(url, &account.user, device_id);
        t.domain = account.domain.clone();
        t.device_type = self.config.device().device_type.clone();
        t.query_form = match account.query_form {
            config::QueryForm::Plain => transport::QueryForm::Plain,
            config::QueryForm::Base64 => transport::QueryForm::Base64,
        };
        let tls = self.config.tls();
        t.allow_insecure_http = tls.allow_insecure_http;
        t.tls = TlsOptions {
            ca_file: tls.ca_file.clone(),
            pins: tls.pin_sha256.clone(),
            client_cert: tls.client_cert.clone(),
            client_key: tls.client_key.clone(),
            ..TlsOptions::default()
        };
        t.auth = match &account.auth {
            // The sign-in server is another host than the mailbox: the pins and the client
            // certificate are the mailbox server's, the trust (store and CA file) is shared.
            AuthSource::OAuth(oauth) => self.sign_in.bearer(
                oauth,
                TlsOptions {
                    ca_file: tls.ca_file.clone(),
                    ..TlsOptions::default()
                },
                self.data_dir(),
                &self.control,
            )?,
            _ => Auth::Basic {
                password: self.password()?,
            },
        };
        Ok(t)
    }

    /// The password to send: one being tried by [`Account::enroll`], else the one given
    /// at enrollment (the credential store), else the configured one.
    fn password(&self) -> Result<transport::Secret, EngineError> {
        if let Some(trying) = &self.trying_password {
            return Ok(transport::Secret::new(trying.expose()));
        }
        let store = crate::store::credentials::CredentialStore::new(self.data_dir());
        match store.load_password() {
            Ok(Some(stored)) => Ok(stored),
            Ok(None) => Ok(transport::Secret::new(self.config.password()?.expose())),
            Err(e) => Err(EngineError::SignIn(SignInError::Credentials(e))),
        }
    }

    pub(super) fn device_information(&self, user_agent: &str) -> DeviceInformation {
        let d = self.config.device();
        DeviceInformation {
            model: d.model.clone(),
            imei: d.imei.clone(),
            friendly_name: d.friendly_name.clone(),
            os: d.os.clone(),
            os_language: d.os_language.clone(),
            phone_number: d.phone_number.clone(),
            user_agent: Some(user_agent.to_string()),
            ..DeviceInformation::default()
        }
    }

    /// The server URL: configured, cached from an earlier Autodiscover, or discovered now
    /// (and cached).
    fn server_url(&self) -> Result<String, EngineError> {
        if let Some(url) = &self.config.account().server {
            return Ok(url.clone());
        }
        let cache = self.url_cache();
        if let Some(url) = read_url_cache(&cache) {
            return Ok(url);
        }
        let probe = self.transport_config("https://autodiscover.invalid/")?;
        let discoverer = autodiscover::Discoverer::new(autodiscover::Options::from_config(&probe))?;
        // Redirects that need a person's confirmation (plain-http redirect, SRV record) are
        // refused: nobody is there to confirm them in --once.
        let found = discoverer.discover(&self.config.account().email, &|url| {
            log::warn!("autodiscover offers {url}, which needs confirmation: refused");
            false
        })?;
        atomic::create_dir_all(
            cache.parent().unwrap_or(self.data_dir()),
            atomic::PRIVATE_DIR_MODE,
        )?;
        atomic::replace_file(
            &cache,
            format!("{}\n", found.url).as_bytes(),
            PRIVATE_FILE_MODE,
        )?;
        Ok(found.url)
    }

    /// Enrollment ("add account"): checks `password` (None: the stored or configured one,
    /// or an OAuth account's sign-in, which shows its device code through the prompt)
    /// against `server` (None: the configured one, the cached one, or Autodiscover) by
    /// connecting, provisioning and listing the folders. A password the server took is
    /// kept in the credential store and used from then on; a server given is cached like
    /// an autodiscovered one. On failure nothing changes: the old password and server stay.
    pub fn enroll(
        &mut self,
        password: Option<transport::Secret>,
        server: Option<&str>,
    ) -> Result<Enrolled, EngineError> {
        self.hold_data_dir()?;
        let account = self.config.account();
        if matches!(account.auth, AuthSource::OAuth(_)) && password.is_some() {
            return Err(EngineError::Unsupported(
                "this account signs in with OAuth (a device code), not a password: enroll \
                 without one"
                    .into(),
            ));
        }
        if let Some(url) = server {
            if let Some(configured) = account.server.as_deref().filter(|c| *c != url) {
                return Err(EngineError::Unsupported(format!(
                    "the configuration names the server {configured}; change account.server \
                     there instead"
                )));
            }
            let plain_ok = self.config.tls().allow_insecure_http;
            if !(url.starts_with("https://") || plain_ok && url.starts_with("http://")) {
                return Err(EngineError::Unsupported(format!(
                    "{url} is not an https:// URL (e.g. https://mail.example.com/\
                     Microsoft-Server-ActiveSync)"
                )));
            }
        }
        let cache = self.url_cache();
        let previous = std::fs::read(&cache).ok();
        if let Some(url) = server {
            atomic::create_dir_all(
                cache.parent().unwrap_or(self.data_dir()),
                atomic::PRIVATE_DIR_MODE,
            )?;
            atomic::replace_file(&cache, format!("{url}\n").as_bytes(), PRIVATE_FILE_MODE)?;
        }
        self.trying_password = password;
        let result = self.check_enrollment();
        let tried = self.trying_password.take();
        match &result {
            Ok(_) => {
                if let Some(password) = tried {
                    crate::store::credentials::CredentialStore::new(self.data_dir())
                        .save_password(&password)
                        .map_err(|e| EngineError::SignIn(SignInError::Credentials(e)))?;
                }
            }
            Err(_) if server.is_some() => {
                let _ = match previous {
                    Some(bytes) => atomic::replace_file(&cache, &bytes, PRIVATE_FILE_MODE),
                    None => atomic::remove_file(&cache).map(|_| ()),
                };
            }
            Err(_) => {}
        }
        result
    }

    fn check_enrollment(&mut self) -> Result<Enrolled, EngineError> {
        let mut state = self.state_file.load()?.into_state();
        match self.carry_out_wipe(state.wipe_intent) {
            PendingWipe::Nothing => {}
            PendingWipe::Stop(stop) => return Err(stop),
            PendingWipe::ReportFailure => {
                return Err(EngineError::Unsupported(
                    "a remote wipe failed and is reported to the server first: enroll again \
                     after the next sync"
                        .into(),
                ));
            }
        }
        let (mut session, user_agent) = self.connect(&mut state)?;
        let mut enforcer = self.enforcer();
        let mut prov = EngineProvisioner::new(&mut enforcer, self.device_information(&user_agent));
        let listed = self.folder_sync(&mut session, &mut prov, &mut state);
        self.adopt_policy_limits(&prov, &mut state)?;
        listed?;
        state.policy_key = session.state().policy_key.map(|k| k.to_string());
        state.set_last_error(None);
        self.state_file.save(&state)?;
        Ok(Enrolled {
            url: session.state().url.clone(),
            protocol_version: session.state().version.as_str().to_string(),
            folders: state.folders.len(),
        })
    }

    /// One full cycle: negotiate, provision, FolderSync, Sync every selected folder until
    /// the server has nothing more.
    ///
    /// On failure the error is also recorded as the state's `last_error` (for `easyncctl
    /// status`). A wipe ordered by the server ends the cycle with
    /// [`EngineError::WipePending`] once its intent is saved and acknowledged.
    pub fn run_once(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<Summary, EngineError> {
        self.hold_data_dir()?;
        let result = self.cycle(progress);
        self.recorded(result)
    }

    /// `result` with a wipe turned into [`EngineError::WipePending`], and an error recorded
    /// as the state's `last_error`.
    pub(super) fn recorded<T>(&self, result: Result<T, EngineError>) -> Result<T, EngineError> {
        let result = result.map_err(|e| match e {
            EngineError::Transport(transport::Error::Token(_)) => self.sign_in.explain(e),
            EngineError::Transport(transport::Error::RemoteWipe { account_only }) => {
                self.tell(WipeNews::Ordered { account_only });
                let intent = if account_only {
                    WipeIntent::AccountOnly
                } else {
                    WipeIntent::Full
                };
                EngineError::WipePending(intent, self.state_file.path().to_path_buf())
            }
            e => e,
        });
        // Not failures of this account's sync (and a locked-out process must not write).
        let on_purpose = matches!(
            &result,
            Err(EngineError::Interrupted
                | EngineError::Transport(transport::Error::Cancelled)
                | EngineError::Store(StoreError::Locked { .. }))
        );
        if let (Err(e), false) = (&result, on_purpose) {
            let recorded = self.state_file.load().and_then(|loaded| {
                let mut state = loaded.into_state();
                state.set_last_error(Some(&e.to_string()));
                if let EngineError::WipePending(intent, _) = e {
                    state.wipe_intent = Some(*intent);
                }
                self.state_file.save(&state)
            });
            if let Err(store) = recorded {
                log::warn!("the error could not be recorded in the state: {store}");
            }
        }
        result
    }

    /// A wipe ordered by the server or on the device (its intent in the state, or its
    /// progress record) is carried out or resumed here, before any network access. A full
    /// wipe without `[wipe]` stays pending. A server's wipe that failed is remembered; once
    /// remembered, the next cycle connects only to acknowledge the repeated directive with
    /// Status 2 (the repetition then starts the wipe again).
    fn carry_out_wipe(&self, intent: Option<WipeIntent>) -> PendingWipe {
        let data_dir = self.data_dir();
        let recorded = wipe::progress(data_dir);
        if intent.is_none() && matches!(recorded, Ok(None)) {
            return PendingWipe::Nothing;
        }
        if self.config.wipe().is_none() && intent == Some(WipeIntent::Full) {
            return PendingWipe::Stop(EngineError::WipePending(
                WipeIntent::Full,
                self.state_file.path().to_path_buf(),
            ));
        }
        match wipe::failure_to_report(data_dir) {
            Ok(true) => return PendingWipe::ReportFailure,
            Ok(false) => {}
            Err(e) => return PendingWipe::Stop(engine_wipe_error(e)),
        }
        let already_done = matches!(recorded, Ok(Some(p)) if p.phase == wipe::Phase::Completed);
        let local = wipe::ordered_locally(data_dir);
        PendingWipe::Stop(match wipe::resume(&self.config) {
            Ok(WipeOutcome::NothingPending) => return PendingWipe::Nothing,
            Ok(WipeOutcome::Completed { kind, method }) => {
                if !already_done {
                    self.tell(WipeNews::Completed {
                        account_only: kind == WipeIntent::AccountOnly,
                    });
                }
                EngineError::Unsupported(format!(
                    "this account was wiped by the {} order ({kind:?}{}): remove {} and enroll \
                     again to use it",
                    if local { "device's" } else { "server's" },
                    method.map_or(String::new(), |m| format!(", {}", m.as_str())),
                    data_dir.join(wipe::PHASE_FILE).display()
                ))
            }
            Err(e) => {
                match wipe::remember_failure(data_dir, &e) {
                    Ok(true) => log::error!(
                        "the wipe failed: {e}; the server is told at the next connection"
                    ),
                    Ok(false) => log::error!("the wipe failed: {e}; it is tried again"),
                    Err(store) => log::error!("the wipe failed: {e}; and: {store}"),
                }
                engine_wipe_error(e)
            }
        })
    }

    /// Connects only to acknowledge a failed wipe: the server's repeated directive gets
    /// Status 2, and its next repetition (asked for at once) Status 1 and a new attempt. A
    /// server that no longer orders the wipe gets the account back.
    fn report_failed_wipe(
        &self,
        session: &mut Session,
        prov: &mut dyn transport::Provisioner,
    ) -> Result<(), EngineError> {
        prov.provision(session)?;
        if wipe::failure_to_report(self.data_dir()).map_err(engine_wipe_error)? {
            log::warn!("the server no longer orders the wipe that failed: it is dropped");
            wipe::withdraw(self.data_dir()).map_err(engine_wipe_error)?;
        }
        Ok(())
    }

    fn cycle(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<Summary, EngineError> {
        let loaded = self.state_file.load()?;
        if let crate::store::state::Loaded::Recovered(_, e) = &loaded {
            log::warn!("{e}");
        }
        let mut state = loaded.into_state();
        let report_failed_wipe = match self.carry_out_wipe(state.wipe_intent) {
            PendingWipe::Nothing => false,
            PendingWipe::Stop(stop) => return Err(stop),
            PendingWipe::ReportFailure => true,
        };
        let (mut session, user_agent) = self.connect(&mut state)?;
        let version = session.state().version;

        let mut enforcer = self.enforcer();
        let mut prov = EngineProvisioner::new(&mut enforcer, self.device_information(&user_agent));
        if report_failed_wipe {
            self.report_failed_wipe(&mut session, &mut prov)?;
            state = self.state_file.load()?.into_state();
            state.set_protocol(version);
            self.adopt_policy_limits(&prov, &mut state)?;
        } else if self.recheck_policy && state.policy_key.as_deref().is_some_and(|k| k != "0") {
            // A policy in force is provisioned again at start and when asked, so the hooks'
            // verdict of today is what the server hears (a server without policy is not asked).
            transport::Provisioner::provision(&mut prov, &mut session)?;
            state.policy_key = session.state().policy_key.map(|k| k.to_string());
            self.adopt_policy_limits(&prov, &mut state)?;
            self.state_file.save(&state)?;
        }
        self.recheck_policy = false;

        let synced = self.folder_sync(&mut session, &mut prov, &mut state);
        self.adopt_policy_limits(&prov, &mut state)?;
        synced?;

        let mut summary = Summary {
            url: session.state().url.clone(),
            protocol_version: version.as_str().to_string(),
            classes: BTreeMap::new(),
        };
        // Sync status 12 means the folder list changed under us: FolderSync again and carry
        // on with the folders not yet done, a bounded number of times.
        let mut done: HashSet<String> = HashSet::new();
        let mut hierarchy_changes = 0;
        loop {
            let pending: Vec<(String, Class)> = self
                .selected_folders(&state, version)
                .into_iter()
                .filter(|(id, _)| !done.contains(id))
                .collect();
            let Some((id, class)) = pending.into_iter().next() else {
                break;
            };
            let applied = match self.sync_folder(
                &mut session,
                &mut prov,
                &mut state,
                &id,
                class,
                Uploads::WithSync,
                progress,
            ) {
                Err(EngineError::HierarchyChanged) if hierarchy_changes < MAX_HIERARCHY_CHANGES => {
                    hierarchy_changes += 1;
                    log::info!("the folder list changed during the sync: FolderSync again");
                    self.folder_sync(&mut session, &mut prov, &mut state)?;
                    continue;
                }
                result => {
                    self.adopt_policy_limits(&prov, &mut state)?;
                    result?
                }
            };
            done.insert(id);
            let s = summary.classes.entry(sync_class(class)).or_default();
            s.folders += 1;
            s.added += applied.added;
            s.changed += applied.changed;
            s.deleted += applied.deleted;
            s.failed += applied.failed;
            s.bytes += applied.bytes;
            let up = &applied.uploaded;
            s.uploaded += up.added + up.changed + up.deleted;
        }
        state.policy_key = session.state().policy_key.map(|k| k.to_string());
        state.set_last_error(None);
        self.state_file.save(&state)?;
        Ok(summary)
    }

    /// Puts what provisioning decided about the policy's limits into `state` (the copy in
    /// memory that the cycle saves later, which must not undo it) and saves it at once
    /// when they changed: the policy key is saved too, so no later provisioning would
    /// bring the limits back if this cycle stopped before its final save.
    pub(super) fn adopt_policy_limits<E: Enforcer + ?Sized>(
        &self,
        prov: &EngineProvisioner<'_, E>,
        state: &mut AccountState,
    ) -> Result<(), EngineError> {
        if let Some(limit) = prov.unlock_limit() {
            unlock::set_limit(self.data_dir(), limit).map_err(|e| match e {
                unlock::UnlockError::Store(e) => EngineError::Store(e),
                e => EngineError::Unsupported(e.to_string()),
            })?;
        }
        let Some(limits) = prov.limits() else {
            return Ok(());
        };
        if state.policy_limits == limits {
            return Ok(());
        }
        log::info!("the server's policy limits are now {limits:?}");
        state.policy_limits = limits;
        self.state_file.save(state)?;
        Ok(())
    }

    /// Connects to the server: a session with the saved policy key, negotiated (the version
    /// is recorded in `state`). Returns it with the User-Agent it sends.
    pub(super) fn connect(
        &self,
        state: &mut AccountState,
    ) -> Result<(Session, String), EngineError> {
        self.hold_data_dir()?;
        let url = self.server_url()?;
        let tconfig = self.transport_config(&url)?;
        let user_agent = tconfig.user_agent.clone();
        let client = Client::new(tconfig)?;
        self.control.set_canceller(client.canceller());
        let mut session = Session::new(client, ProtocolVersion::V16_1);
        session.set_policy_key(state.policy_key.as_deref().and_then(|k| k.parse().ok()));
        let cap = self
            .config
            .account()
            .protocol_version
            .map(config::EasVersion::protocol);
        session.negotiate(cap, OPTIONS_TIMEOUT)?;
        state.set_protocol(session.state().version);
        Ok((session, user_agent))
    }

    /// The folders selected for syncing — by the configuration, or by the user's choice
    /// where one was made ([`crate::store::choices`]) — with their class (notes only from
    /// 14.0 on).
    pub(super) fn selected_folders(
        &self,
        state: &AccountState,
        version: ProtocolVersion,
    ) -> Vec<(String, Class)> {
        let choices =
            crate::store::choices::FolderChoices::load(self.data_dir()).unwrap_or_else(|e| {
                log::warn!("{e}");
                Default::default()
            });
        state
            .folders
            .iter()
            .filter_map(|(id, f)| {
                let class = Class::from(f.class?);
                if class == Class::Notes && version < ProtocolVersion::V14_0 {
                    log::info!(
                        "folder {}: notes need ActiveSync 14.0 or later",
                        f.display_name
                    );
                    return None;
                }
                let configured = self.config.sync().syncs(sync_class(class))
                    && self.config.sync().folder_selected(&folder_path(state, id));
                choices.selects(id, configured).then(|| (id.clone(), class))
            })
            .collect()
    }

    /// FolderSync from the saved key; applies the changes to the state and saves it.
    pub(super) fn folder_sync(
        &self,
        session: &mut Session,
        prov: &mut dyn transport::Provisioner,
        state: &mut AccountState,
    ) -> Result<(), EngineError> {
        let key = state.folder_sync_key.clone();
        let response = session.execute(
            |s| folder::folder_sync_request(s.version, &key),
            folder::read_folder_sync_response,
            prov,
            command_timeout(Command::FolderSync, None),
        )?;
        state.policy_key = session.state().policy_key.map(|k| k.to_string());
        if response.status != FolderSyncStatus::Success {
            return Err(EngineError::Server {
                what: "FolderSync",
                status: format!("{:?}", response.status),
                hint: "try again later; if it persists, move the state folder aside to \
                       re-enroll (a full resync follows)"
                    .into(),
            });
        }
        for change in response.changes {
            match change {
                FolderChange::Add(f) | FolderChange::Update(f) => {
                    if let Some(existing) = state.folders.get_mut(&f.server_id) {
                        existing.display_name = f.display_name.clone();
                        existing.parent_id = f.parent_id.clone();
                        continue;
                    }
                    let class = f
                        .folder_type
                        .class()
                        .filter(|_| f.folder_type != FolderType::RecipientInfoCache);
                    let local_dir = match class {
                        Some(c) => {
                            let taken = state
                                .folders
                                .values()
                                .filter(|o| o.class.map(Class::from) == Some(c))
                                .map(|o| o.local_dir.as_str());
                            NameSet::with_taken(taken).unique(&f.display_name)
                        }
                        None => String::new(),
                    };
                    state.folders.insert(
                        f.server_id.clone(),
                        FolderState::new(
                            &f.display_name,
                            &f.parent_id,
                            f.folder_type.code(),
                            class,
                            &local_dir,
                        ),
                    );
                }
                FolderChange::Delete { server_id } => {
                    if let Some(gone) = state.folders.remove(&server_id) {
                        if let Some(class) = gone.class.map(Class::from) {
                            if names::is_safe_component(&gone.local_dir) {
                                let dir = self
                                    .data_dir()
                                    .join(vdir::class_dir(class))
                                    .join(&gone.local_dir);
                                atomic::remove_dir_all(&dir)?;
                            }
                        }
                    }
                }
            }
        }
        if let Some(key) = response.sync_key {
            state.folder_sync_key = key;
        }
        self.state_file.save(state)?;
        Ok(())
    }

    /// The options of a Sync of a `class` folder: the configuration's, capped by the
    /// server's policy (`limits`): the stricter age filter, and mail truncated no later
    /// than the policy's body limits. Mail is always asked for as MIME, so AllowHTMLEmail
    /// has nothing to turn off here.
    pub(super) fn sync_options(&self, class: Class, limits: Option<&PolicyLimits>) -> SyncOptions {
        let settings = self.config.sync();
        match class {
            Class::Email => {
                let cap = limits.and_then(mail_body_cap);
                SyncOptions {
                    filter_type: Some(stricter_filter(
                        class,
                        filter_type(settings.mail_age),
                        limits.and_then(|l| l.max_email_age),
                    )),
                    body_preferences: vec![BodyPreference {
                        truncation_size: cap.map(|c| u32::try_from(c).unwrap_or(u32::MAX)),
                        ..BodyPreference::new(BodyType::Mime)
                    }],
                    mime_support: Some(MimeSupport::Always),
                    // 8: the whole message; a message cut under a policy is marked as
                    // truncated in the Maildir (see `fetch`) and can be completed.
                    mime_truncation: Some(cap.map_or(8, mime_truncation_code)),
                    conflict: None,
                }
            }
            _ => SyncOptions {
                filter_type: (class == Class::Calendar).then(|| {
                    stricter_filter(
                        class,
                        filter_type(settings.calendar_age),
                        limits.and_then(|l| l.max_calendar_age),
                    )
                }),
                body_preferences: vec![BodyPreference {
                    truncation_size: settings.body_size_limit,
                    ..BodyPreference::new(BodyType::PlainText)
                }],
                mime_support: None,
                mime_truncation: None,
                conflict: None,
            },
        }
    }

    fn body_limit(&self) -> usize {
        self.config
            .sync()
            .body_size_limit
            .map_or(apply::DEFAULT_BODY_LIMIT, |l| l as usize)
    }

    /// Syncs one folder from its saved key until the server has nothing more, sending the
    /// folder's local changes with the requests (see [`super::upload`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sync_folder(
        &self,
        session: &mut Session,
        prov: &mut dyn transport::Provisioner,
        state: &mut AccountState,
        id: &str,
        class: Class,
        uploads: Uploads,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Applied, EngineError> {
        let Some(folder) = state.folders.get(id) else {
            return Ok(Applied::default());
        };
        let display_name = folder.display_name.clone();
        let mut key = folder.sync_key.clone();
        // A folder set back to "0" while it holds items is downloaded again in full.
        let resync = key == sync::INITIAL_SYNC_KEY && !folder.items.is_empty();
        let local_dir = folder.local_dir.clone();
        let data_dir = self.data_dir().to_path_buf();
        let mut options = self.sync_options(class, state.policy_limits.as_ref());
        options.conflict = Some(super::upload::conflict_resolution(
            self.config.sync().conflict,
        ));
        let maildir = match class {
            Class::Email => Some(Maildir::for_folder(&data_dir, &local_dir)?),
            _ => None,
        };
        let mut applier = match &maildir {
            Some(m) => FolderApplier::mail(state, &self.state_file, id, m),
            None => FolderApplier::items(
                state,
                &self.state_file,
                id,
                class,
                Vdir::for_folder(&data_dir, class, &local_dir, apply::extension(class))?,
                self.body_limit(),
            ),
        };
        applier.adopt_journal()?;
        applier.enable_upload(&self.uploads);
        applier.keep_local_edits(self.config.sync().conflict == config::ConflictPolicy::ClientWins);
        // The server's default window is 100 too (MS-ASCMD 2.2.3.199), so this also holds
        // for the initial request, which sends none.
        applier.set_window(WINDOW_SIZE as usize);
        if resync {
            log::warn!("folder {display_name}: downloading it again in full");
            applier.seen = Some(HashSet::new());
        }
        // Rounds in a row that brought nothing although the server said MoreAvailable.
        let mut idle_rounds = 0;
        let mut estimated = None;
        // The server's changes come first, the device's only once they are all in: while a
        // first or full sync still downloads, or a batch cut short by a crash is to come
        // again, the item map is incomplete and a file not in it may well be a server item.
        let mut catching_up = true;
        let mut upload_now = false;
        let mut last_complete = false;
        for round in 0..MAX_ROUNDS {
            let initial = key == sync::INITIAL_SYNC_KEY;
            let mut collection = CollectionRequest::new(&key, id, class);
            if !initial {
                collection.get_changes = Some(true);
                collection.window_size = Some(WINDOW_SIZE);
                collection.options = Some(options.clone());
                if upload_now {
                    // The device's changes ride along (saved as pending first, see `upload`).
                    collection.commands =
                        applier.prepare_upload(session.state().version, WINDOW_SIZE as usize)?;
                    if collection.commands.is_empty() && last_complete {
                        break;
                    }
                }
            }
            let uploading = !collection.commands.is_empty();
            let request = SyncRequest {
                collections: vec![collection],
                ..SyncRequest::default()
            };
            let before = applier.applied.changes();
            applier.header = None;
            applier.begin_response();
            let outcome = session.execute(
                |s| sync::request(s.version, &request),
                |p| sync::read_response(p, &mut applier),
                prov,
                command_timeout(Command::Sync, None),
            );
            let failure = applier.failure.take();
            // Items committed before the response broke are on disk: record them (the
            // SyncKey stays where it was, so they come again and replace themselves). After
            // a wipe was acknowledged the state file holds the intent, which this in-memory
            // state lacks: it is not saved over it.
            let wiped = matches!(&outcome, Err(transport::Error::RemoteWipe { .. }));
            if (failure.is_some() || outcome.is_err()) && !wiped {
                if let Err(e) = applier.save_items() {
                    log::error!("{e}");
                }
            }
            if let Some(e) = failure {
                return Err(e.into());
            }
            if applier.over_window {
                applier.restart_folder()?;
                return Err(EngineError::Server {
                    what: "Sync",
                    status: format!("more than the {WINDOW_SIZE} changes asked for in one answer"),
                    hint: format!(
                        "the server ignores the WindowSize; folder {display_name} will be \
                         downloaded again in full"
                    ),
                });
            }
            let response = match outcome? {
                SyncOutcome::Unchanged => break,
                SyncOutcome::Response(r) => r,
            };
            if response.status != sync::Status::Success {
                return Err(sync_error(response.status));
            }
            let Some(header) = applier.header.clone() else {
                break; // no collection in the answer: nothing more
            };
            if header.status() == sync::Status::InvalidSyncKey && applier.seen.is_none() {
                // The server lost the folder's sync state: sync it again from "0"; what
                // it does not send again is swept at the end.
                log::warn!("folder {display_name}: the server lost its sync state: resyncing");
                applier.seen = Some(HashSet::new());
                catching_up = true;
                upload_now = false;
                key = sync::INITIAL_SYNC_KEY.to_string();
                continue;
            }
            if header.status() != sync::Status::Success {
                return Err(sync_error(header.status()));
            }
            let new_key = applier.sync_key.take().unwrap_or_else(|| key.clone());
            if initial {
                if new_key == sync::INITIAL_SYNC_KEY {
                    return Err(EngineError::Server {
                        what: "Sync",
                        status: "1 without a new SyncKey".into(),
                        hint: "the server did not start the folder's sync; try again later".into(),
                    });
                }
                estimated = self.estimate(session, prov, &new_key, id, class, &options);
            }
            key = new_key;
            progress(Progress {
                folder: display_name.clone(),
                class: sync_class(class),
                done: applier.applied.added + applier.applied.changed,
                estimated,
            });
            let progressed = applier.applied.changes() > before;
            last_complete = !initial && !header.more_available;
            if catching_up && last_complete {
                // Downloaded in full: a resync's leftovers go now, before the device's
                // uploads add entries the resync did not see; the next round may carry them.
                // So do the files of a batch a kill cut short that the server did not send
                // again (they would otherwise be uploaded as the device's own).
                applier.sweep_unseen()?;
                applier.sweep_orphans()?;
                catching_up = false;
                if uploads == Uploads::WithSync {
                    upload_now = true;
                    continue;
                }
            }
            if last_complete && !progressed && !uploading {
                break;
            }
            idle_rounds = if header.more_available && !progressed && !uploading {
                idle_rounds + 1
            } else {
                0
            };
            if idle_rounds >= MAX_IDLE_ROUNDS {
                return Err(EngineError::Server {
                    what: "Sync",
                    status: format!(
                        "MoreAvailable {MAX_IDLE_ROUNDS} times in a row with nothing in it"
                    ),
                    hint: format!(
                        "the server promises more for folder {display_name} and sends none; \
                         trying again later"
                    ),
                });
            }
            if round + 1 == MAX_ROUNDS {
                log::warn!("folder {display_name}: still more after {MAX_ROUNDS} rounds");
            }
        }
        applier.sweep_unseen()?;
        applier.sweep_orphans()?;
        Ok(applier.applied)
    }

    /// GetItemEstimate for a folder after its first Sync; `None` when the server gives none.
    fn estimate(
        &self,
        session: &mut Session,
        prov: &mut dyn transport::Provisioner,
        key: &str,
        id: &str,
        class: Class,
        options: &SyncOptions,
    ) -> Option<u64> {
        let collection = EstimateCollection {
            sync_key: key.to_string(),
            collection_id: id.to_string(),
            class: Some(class),
            filter_type: options.filter_type,
            conversation_mode: None,
        };
        let result = session.execute(
            |s| estimate::request(s.version, std::slice::from_ref(&collection)),
            estimate::read_response,
            prov,
            command_timeout(Command::GetItemEstimate, None),
        );
        match result {
            Ok(r) => r
                .estimates
                .iter()
                .find(|e| e.status == estimate::Status::Success)
                .and_then(|e| e.estimate),
            Err(e) => {
                log::info!("no item estimate for folder {id}: {e}");
                None
            }
        }
    }
}

/// A wipe error as the engine reports it (a store error stays one: it is retried).
fn engine_wipe_error(e: WipeError) -> EngineError {
    match e {
        WipeError::Store(e) => EngineError::Store(e),
        e => EngineError::Unsupported(e.to_string()),
    }
}

/// Whether a folder's Sync carries the device's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Uploads {
    /// Yes (cycles and upload rounds).
    WithSync,
    /// No: a push round brings the server's news at once; the device's changes have their
    /// own round (the daemon's watcher starts it) and the next cycle.
    Later,
}

/// How often one run follows a changed folder list (Sync status 12) before giving up.
const MAX_HIERARCHY_CHANGES: u32 = 3;

fn sync_error(status: sync::Status) -> EngineError {
    if status == sync::Status::FolderHierarchyChanged {
        return EngineError::HierarchyChanged;
    }
    let hint = match status {
        sync::Status::InvalidSyncKey => {
            "the server lost this folder's sync state; move the state folder aside to \
             re-enroll (a full resync follows)"
        }
        _ => "try again later; if it persists, report the server's behaviour",
    };
    EngineError::Server {
        what: "Sync",
        status: format!("{} ({status:?})", status.code()),
        hint: hint.into(),
    }
}

/// The longest server URL cache easync reads.
const URL_CACHE_MAX: u64 = 4096;

/// The server URL an earlier Autodiscover cached at `path`: `None` when there is none, or
/// when the file is not one short http(s) URL (then Autodiscover runs again).
fn read_url_cache(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(URL_CACHE_MAX + 1)
        .read_to_string(&mut text)
        .ok()?;
    let url = text.trim();
    if url.is_empty() {
        return None;
    }
    let usable = text.len() as u64 <= URL_CACHE_MAX
        && (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(char::is_whitespace);
    if !usable {
        log::warn!(
            "ignoring the server URL cache {}: it is not one short URL; Autodiscover runs again",
            path.display()
        );
        return None;
    }
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_short_url_is_taken_from_the_url_cache() {
        let dir = crate::store::atomic::testdir::TestDir::new("urlcache");
        let path = dir.path().join("server-url");
        assert_eq!(read_url_cache(&path), None);
        std::fs::write(
            &path,
            "https://mail.example.com/Microsoft-Server-ActiveSync\n",
        )
        .unwrap();
        assert_eq!(
            read_url_cache(&path).as_deref(),
            Some("https://mail.example.com/Microsoft-Server-ActiveSync")
        );
        for bad in [
            "".to_string(),
            "ftp://x".to_string(),
            "https://a b".to_string(),
            format!("https://{}", "a".repeat(5000)),
            "\u{0}\u{1}binary".to_string(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(read_url_cache(&path), None, "{bad:.40}");
        }
        // Not UTF-8 at all.
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert_eq!(read_url_cache(&path), None);
    }

    use super::*;

    #[test]
    fn folder_paths_walk_up_to_the_top_and_survive_loops() {
        let mut state = AccountState::default();
        for (id, parent, name) in [
            ("1", "0", "Inbox"),
            ("2", "1", "Projects"),
            ("3", "4", "A"),
            ("4", "3", "B"),
        ] {
            state.folders.insert(
                id.into(),
                FolderState::new(name, parent, 12, Some(Class::Email), name),
            );
        }
        assert_eq!(folder_path(&state, "2"), ["Inbox", "Projects"]);
        assert!(folder_path(&state, "3").len() <= 65, "a parent loop ends");
        assert!(folder_path(&state, "none").is_empty());
    }

    #[test]
    fn credentials_errors_park_the_account() {
        let e = EngineError::Transport(transport::Error::Unauthorized {
            credentials_expire_days: None,
        });
        assert!(matches!(
            e.reaction(),
            Some(Reaction::NeedsCredentials { .. })
        ));
        assert!(e.to_string().contains("password"), "{e}");
        let store = EngineError::Unsupported("x".into());
        assert_eq!(store.reaction(), None);
    }

    #[test]
    fn the_policy_caps_filters_and_truncation() {
        use FilterType as F;
        let email = Class::Email;
        assert_eq!(stricter_filter(email, F::All, Some(3)), F::OneWeek);
        assert_eq!(stricter_filter(email, F::OneDay, Some(3)), F::OneDay);
        assert_eq!(stricter_filter(email, F::OneMonth, Some(3)), F::OneWeek);
        assert_eq!(stricter_filter(email, F::OneMonth, None), F::OneMonth);
        assert_eq!(stricter_filter(email, F::OneMonth, Some(0)), F::OneMonth);
        assert_eq!(
            stricter_filter(email, F::All, Some(7)),
            F::All,
            "not for email"
        );
        assert_eq!(
            stricter_filter(Class::Calendar, F::All, Some(6)),
            F::ThreeMonths
        );

        assert_eq!(mime_truncation_code(0), 0);
        assert_eq!(mime_truncation_code(4095), 0);
        assert_eq!(mime_truncation_code(4096), 1);
        assert_eq!(mime_truncation_code(60_000), 6);
        assert_eq!(mime_truncation_code(u64::MAX), 7);

        let mut limits = PolicyLimits {
            max_email_body_bytes: Some(2048),
            max_email_html_body_bytes: Some(1024),
            allow_html_email: true,
            attachments_enabled: true,
            ..PolicyLimits::default()
        };
        assert_eq!(mail_body_cap(&limits), Some(1024));
        limits.allow_html_email = false;
        assert_eq!(
            mail_body_cap(&limits),
            Some(2048),
            "no HTML: its limit is moot"
        );
        limits.max_email_body_bytes = None;
        assert_eq!(mail_body_cap(&limits), None);
    }

    #[test]
    fn age_filters_map_to_their_codes() {
        for age in [
            AgeFilter::All,
            AgeFilter::OneDay,
            AgeFilter::ThreeDays,
            AgeFilter::OneWeek,
            AgeFilter::TwoWeeks,
            AgeFilter::OneMonth,
            AgeFilter::ThreeMonths,
            AgeFilter::SixMonths,
        ] {
            assert_eq!(filter_type(age).code(), age.filter_type());
        }
    }
}
