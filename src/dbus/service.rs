//! The `org.easync` service: the `org.easync.Account1` interface on
//! [`super::ACCOUNT_PATH`], a thin mapping of the engine. Properties come from the
//! [`AccountView`] the daemon keeps up to date; methods turn into [`Handle`] commands, a
//! few small files (folder choices, the outbox, the unlock counter) or work the runner does
//! between two steps (fetching an attachment). Whatever blocks (ending a parked Ping,
//! reading a caller's file descriptor) runs off the runtime thread.
//!
//! Who may call is the bus's business: the policy file `org.easync.conf` lets root and
//! one group call methods and nobody else anything (see `board/dbus/`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use zbus::fdo;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedFd, OwnedValue, Str};

use super::view::{AccountView, Changes, Property, Signal};
use super::{ACCOUNT_PATH, BUS_NAME, Bus};
use crate::config::{AuthSource, Config};
use crate::device::unlock;
use crate::engine::account::EngineError;
use crate::engine::runner::Handle;
use crate::store::choices::FolderChoices;
use crate::store::maildir::{Flags, Outbox};
use crate::store::state::{AccountState, FolderClass, StateFile};

/// The largest message `SendMail` takes (bytes); Exchange's own limits are lower.
pub const MAX_SEND_BYTES: u64 = 150 * 1024 * 1024;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error(
        "cannot connect to the {bus} bus ({source}): start the bus, or run with --bus none \
         to do without D-Bus"
    )]
    Connect {
        bus: &'static str,
        source: zbus::Error,
    },
    #[error(
        "cannot own the name {BUS_NAME} on the {bus} bus ({source}): another easyncd may be \
         running, or the bus policy org.easync.conf is not installed (/usr/share/dbus-1/\
         system.d/ for the system bus)"
    )]
    Name {
        bus: &'static str,
        source: zbus::Error,
    },
}

/// The `org.easync.Account1` object.
pub struct Account1 {
    handle: Handle,
    data_dir: PathBuf,
    view: Arc<Mutex<AccountView>>,
    email: String,
    auth_method: &'static str,
    roaming_file: Option<PathBuf>,
}

impl Account1 {
    /// The object for the account of `config`, steered through `handle`.
    pub fn new(handle: Handle, config: &Config, view: Arc<Mutex<AccountView>>) -> Self {
        Account1 {
            handle,
            data_dir: config.data_dir().to_path_buf(),
            view,
            email: config.account().email.clone(),
            auth_method: match config.account().auth {
                AuthSource::OAuth(_) => "oauth",
                _ => "password",
            },
            roaming_file: config.device().roaming_file.clone(),
        }
    }

    fn view(&self) -> std::sync::MutexGuard<'_, AccountView> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account's state as saved, read without touching anything (the engine's thread
    /// owns the file: recovery and clean-up are its business).
    fn saved_state(&self) -> fdo::Result<AccountState> {
        match StateFile::new(&self.data_dir).peek() {
            Ok(state) => Ok(state.unwrap_or_default()),
            Err(e) => Err(fdo::Error::Failed(e.to_string())),
        }
    }
}

/// Runs `work` on a blocking thread (it may block for a moment).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> fdo::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| fdo::Error::Failed(format!("internal error: {e}")))
}

/// A folder's path from the top ("Inbox/Projects"), bounded in depth.
fn folder_path(state: &AccountState, id: &str) -> String {
    let mut parts = Vec::new();
    let mut current = state.folders.get(id);
    while let Some(f) = current {
        parts.push(f.display_name.as_str());
        if parts.len() >= 64 {
            break;
        }
        current = state.folders.get(&f.parent_id);
    }
    parts.reverse();
    parts.join("/")
}

/// A D-Bus value for a policy element: numbers as `u`, the rest as `s`.
fn policy_value(value: &str) -> OwnedValue {
    match value.parse::<u32>() {
        Ok(n) => OwnedValue::from(n),
        Err(_) => OwnedValue::from(Str::from(value.to_string())),
    }
}

/// Copies at most `limit` bytes of `from` into `to`; an error when there is more.
fn copy_bounded(from: &mut dyn Read, to: &mut dyn Write, limit: u64) -> io::Result<u64> {
    let copied = io::copy(&mut from.take(limit.saturating_add(1)), to)?;
    if copied > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the message is larger than {limit} bytes"),
        ));
    }
    Ok(copied)
}

#[zbus::interface(name = "org.easync.Account1", introspection_docs = false)]
impl Account1 {
    /// A full cycle now (ends a parked Ping or a back-off wait).
    async fn sync_now(&self) -> fdo::Result<()> {
        let handle = self.handle.clone();
        blocking(move || handle.sync_now()).await
    }

    /// "Add account": checks the credentials against the server and keeps them. Options:
    /// `password` (s; a password account), `server` (s; the ActiveSync URL when
    /// Autodiscover cannot find it). An OAuth account takes no password: its device sign-in
    /// starts (DeviceCodeRequired) and the call returns once it is approved. Errors:
    /// AuthFailed (the server refused the credentials), NoServer (Autodiscover found no
    /// server: ask the user for it), InvalidArgs, Failed.
    #[zbus(out_args("server", "protocol_version"))]
    async fn enroll(&self, options: HashMap<String, OwnedValue>) -> fdo::Result<(String, String)> {
        let text = |key: &str| -> fdo::Result<Option<String>> {
            match options.get(key) {
                None => Ok(None),
                Some(v) => <&str>::try_from(v)
                    .map(|s| Some(s.to_string()))
                    .map_err(|_| fdo::Error::InvalidArgs(format!("{key} must be a string"))),
            }
        };
        if let Some(unknown) = options
            .keys()
            .find(|k| !matches!(k.as_str(), "password" | "server"))
        {
            return Err(fdo::Error::InvalidArgs(format!(
                "unknown option {unknown:?}: Enroll takes password and server"
            )));
        }
        let password = text("password")?;
        let server = text("server")?;
        if password.as_ref().is_some_and(|p| p.len() > 1024)
            || server.as_ref().is_some_and(|s| s.len() > 2048)
        {
            return Err(fdo::Error::InvalidArgs(
                "the password is limited to 1024 bytes and the server URL to 2048".into(),
            ));
        }
        if self.auth_method == "password" && password.as_deref().is_none_or(str::is_empty) {
            return Err(fdo::Error::InvalidArgs(format!(
                "{} signs in with a password: give it as the option \"password\"",
                self.email
            )));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = self.handle.clone();
        blocking(move || {
            handle.run(move |account| {
                let secret = password.map(crate::transport::Secret::new);
                let _ = tx.send(account.enroll(secret, server.as_deref()));
            })
        })
        .await?;
        let enrolled = rx
            .await
            .map_err(|_| fdo::Error::Failed("the daemon stopped during the enrollment".into()))?
            .map_err(|e| match &e {
                EngineError::Autodiscover(_) => fdo::Error::NoServer(e.to_string()),
                EngineError::Transport(crate::transport::Error::Unauthorized { .. })
                | EngineError::SignIn(_) => fdo::Error::AuthFailed(e.to_string()),
                EngineError::Unsupported(_) => fdo::Error::InvalidArgs(e.to_string()),
                _ => fdo::Error::Failed(e.to_string()),
            })?;
        log::info!(
            "enrolled over D-Bus: {} (ActiveSync {}, {} folders)",
            enrolled.url,
            enrolled.protocol_version,
            enrolled.folders
        );
        let handle = self.handle.clone();
        blocking(move || handle.sync_now()).await?;
        Ok((enrolled.url, enrolled.protocol_version))
    }

    /// The modem's roaming state changed. Kept in `device.roaming_file` (exists while
    /// roaming); with the policy's RequireManualSyncWhenRoaming nothing syncs by itself
    /// while roaming. Error NotSupported when no roaming file is configured.
    async fn set_roaming(&self, roaming: bool) -> fdo::Result<()> {
        let Some(file) = self.roaming_file.clone() else {
            return Err(fdo::Error::NotSupported(
                "no roaming signal is configured: set device.roaming_file".into(),
            ));
        };
        let changed = blocking(move || crate::store::atomic::set_flag_file(&file, roaming))
            .await?
            .map_err(|e| fdo::Error::Failed(format!("cannot record the roaming state: {e}")))?;
        if changed {
            log::info!(
                "roaming {} (D-Bus)",
                if roaming { "started" } else { "ended" }
            );
            let handle = self.handle.clone();
            blocking(move || handle.wake()).await?;
        }
        Ok(())
    }

    /// A hook's device state changed: provision again so the hooks are asked anew.
    async fn report_compliance(&self) -> fdo::Result<()> {
        let handle = self.handle.clone();
        blocking(move || handle.recheck_compliance()).await
    }

    /// The lock screen saw a wrong password. Returns the failures counted, the limit of
    /// the policy (0: none) and whether the device is being wiped because of them.
    #[zbus(out_args("failures", "limit", "wiping"))]
    async fn report_unlock_failure(&self) -> fdo::Result<(u32, u32, bool)> {
        let data_dir = self.data_dir.clone();
        let status = blocking(move || unlock::record_failure(&data_dir))
            .await?
            .map_err(|e| fdo::Error::Failed(e.to_string()))?;
        let wipe = status.wipe_due();
        if wipe {
            log::error!(
                "{} failed unlock attempts reach the policy's limit: wiping the device",
                status.failures
            );
            let handle = self.handle.clone();
            blocking(move || handle.wipe_device()).await?;
        }
        Ok((status.failures, status.limit.unwrap_or(0), wipe))
    }

    /// The lock screen was unlocked: the failure count starts again.
    async fn report_unlock_success(&self) -> fdo::Result<()> {
        let data_dir = self.data_dir.clone();
        blocking(move || unlock::record_success(&data_dir))
            .await?
            .map(|_| ())
            .map_err(|e| fdo::Error::Failed(e.to_string()))
    }

    /// The server's folders: (id, path, class, synced, items stored).
    #[zbus(out_args("folders"))]
    async fn list_folders(&self) -> fdo::Result<Vec<(String, String, String, bool, u32)>> {
        let state = self.saved_state()?;
        let choices = FolderChoices::load(&self.data_dir).unwrap_or_default();
        let selected: std::collections::HashSet<String> = state
            .folders
            .iter()
            .filter(|(_, f)| !f.sync_key.is_empty() && f.sync_key != "0")
            .map(|(id, _)| id.clone())
            .collect();
        Ok(state
            .folders
            .iter()
            .map(|(id, f)| {
                let class = match f.class {
                    Some(FolderClass::Email) => "email",
                    Some(FolderClass::Contacts) => "contacts",
                    Some(FolderClass::Calendar) => "calendar",
                    Some(FolderClass::Tasks) => "tasks",
                    Some(FolderClass::Notes) => "notes",
                    None => "",
                }
                .to_string();
                let synced = choices.get(id).unwrap_or(selected.contains(id));
                (
                    id.clone(),
                    folder_path(&state, id),
                    class,
                    synced && f.class.is_some(),
                    u32::try_from(f.items.len()).unwrap_or(u32::MAX),
                )
            })
            .collect())
    }

    /// Switches a folder's sync on or off (kept across restarts; a cycle follows).
    async fn set_folder_enabled(&self, folder_id: String, enabled: bool) -> fdo::Result<()> {
        let state = self.saved_state()?;
        let Some(folder) = state.folders.get(&folder_id) else {
            return Err(fdo::Error::InvalidArgs(format!(
                "no folder with the id {folder_id:?}: ListFolders gives the ids"
            )));
        };
        if folder.class.is_none() {
            return Err(fdo::Error::InvalidArgs(format!(
                "folder {:?} holds nothing easync syncs",
                folder.display_name
            )));
        }
        let mut choices =
            FolderChoices::load(&self.data_dir).map_err(|e| fdo::Error::Failed(e.to_string()))?;
        let changed = choices
            .set(&folder_id, enabled)
            .map_err(|e| fdo::Error::Failed(e.to_string()))?;
        if changed {
            log::info!(
                "folder {:?} {} over D-Bus",
                folder.display_name,
                if enabled { "enabled" } else { "disabled" }
            );
            let handle = self.handle.clone();
            blocking(move || handle.sync_now()).await?;
        }
        Ok(())
    }

    /// Queues a message (RFC 5322, read from `mime`) in the outbox; returns its name
    /// there. The message leaves with the next outbox round, which starts at once.
    #[zbus(out_args("message_id"))]
    async fn send_mail(&self, mime: OwnedFd) -> fdo::Result<String> {
        let data_dir = self.data_dir.clone();
        let queued = blocking(move || -> Result<String, String> {
            let mut source = File::from(std::os::fd::OwnedFd::from(mime));
            let outbox = Outbox::open(&data_dir).map_err(|e| e.to_string())?;
            let mut delivery = outbox
                .maildir()
                .begin_delivery()
                .map_err(|e| e.to_string())?;
            let size = copy_bounded(&mut source, &mut delivery, MAX_SEND_BYTES)
                .map_err(|e| format!("cannot read the message: {e}"))?;
            if size == 0 {
                return Err("the message is empty".into());
            }
            let message = delivery
                .commit(Flags::default())
                .map_err(|e| e.to_string())?;
            Ok(message.id)
        })
        .await?
        .map_err(fdo::Error::Failed)?;
        log::info!("message {queued} queued in the outbox over D-Bus");
        let handle = self.handle.clone();
        blocking(move || handle.local_change()).await?;
        Ok(queued)
    }

    /// Fetches the attachment `file_reference` (from a mail's attachment list) and writes
    /// it into `destination`; returns its size. The policy's attachment rules apply.
    #[zbus(out_args("size"))]
    async fn fetch_attachment(
        &self,
        file_reference: String,
        destination: OwnedFd,
    ) -> fdo::Result<u64> {
        if file_reference.is_empty() || file_reference.len() > 4096 {
            return Err(fdo::Error::InvalidArgs(
                "the file reference must be 1 to 4096 bytes".into(),
            ));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let temp = self.data_dir.join("state").join(format!(
            "fetch-{}-{}",
            std::process::id(),
            FETCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let target = temp.clone();
        let handle = self.handle.clone();
        blocking(move || {
            handle.run(move |account| {
                let _ = tx.send(account.fetch_attachment(&file_reference, &target));
            })
        })
        .await?;
        let fetched = rx.await.map_err(|_| {
            fdo::Error::Failed("the daemon stopped before the attachment was fetched".into())
        })?;
        fetched.map_err(|e| fdo::Error::Failed(e.to_string()))?;
        blocking(move || -> Result<u64, String> {
            let copied = (|| {
                let mut from = File::open(&temp)?;
                let mut to = File::from(std::os::fd::OwnedFd::from(destination));
                let n = io::copy(&mut from, &mut to)?;
                to.flush()?;
                Ok::<u64, io::Error>(n)
            })();
            let _ = crate::store::atomic::remove_file(&temp);
            copied.map_err(|e| format!("cannot write the attachment to the descriptor: {e}"))
        })
        .await?
        .map_err(fdo::Error::Failed)
    }

    /// The wipe recorded in the data directory: its kind ("full", "account-only") and the
    /// last step done ("acknowledged" ... "completed"); empty strings when there is none.
    #[zbus(out_args("kind", "phase"))]
    async fn wipe_status(&self) -> fdo::Result<(String, String)> {
        match crate::device::wipe::progress(&self.data_dir) {
            Ok(None) => Ok((String::new(), String::new())),
            Ok(Some(p)) => Ok((
                match p.kind {
                    crate::store::state::WipeIntent::Full => "full",
                    crate::store::state::WipeIntent::AccountOnly => "account-only",
                }
                .to_string(),
                p.phase.as_str().to_string(),
            )),
            Err(e) => Err(fdo::Error::Failed(e.to_string())),
        }
    }

    /// The account's mail address.
    #[zbus(property(emits_changed_signal = "const"))]
    fn email(&self) -> String {
        self.email.clone()
    }

    /// How the account signs in: "password" or "oauth".
    #[zbus(property(emits_changed_signal = "const"))]
    fn auth_method(&self) -> String {
        self.auth_method.to_string()
    }

    #[zbus(property)]
    fn state(&self) -> String {
        self.view().state.as_str().to_string()
    }

    #[zbus(property)]
    fn state_detail(&self) -> String {
        self.view().state_detail.clone()
    }

    #[zbus(property)]
    fn protocol_version(&self) -> String {
        self.view().protocol_version.clone()
    }

    #[zbus(property)]
    fn last_sync(&self) -> u64 {
        self.view().last_sync
    }

    #[zbus(property)]
    fn compliance(&self) -> (String, Vec<String>) {
        self.view().compliance_property()
    }

    #[zbus(property)]
    fn policy(&self) -> HashMap<String, OwnedValue> {
        self.view()
            .policy
            .iter()
            .map(|(name, value)| (name.clone(), policy_value(value)))
            .collect()
    }

    #[zbus(signal, name = "PolicyChanged")]
    async fn policy_changed_signal(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn compliance_required(
        emitter: &SignalEmitter<'_>,
        status: &str,
        missing: Vec<String>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn wipe_requested(emitter: &SignalEmitter<'_>, account_only: bool) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn wipe_completed(emitter: &SignalEmitter<'_>, account_only: bool) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn new_items(
        emitter: &SignalEmitter<'_>,
        folder_id: &str,
        folder: &str,
        class: &str,
        added: u64,
        changed: u64,
        deleted: u64,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn progress(
        emitter: &SignalEmitter<'_>,
        folder: &str,
        class: &str,
        done: u64,
        estimated: u64,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn device_code_required(
        emitter: &SignalEmitter<'_>,
        verification_uri: &str,
        user_code: &str,
        expires_in_secs: u64,
    ) -> zbus::Result<()>;
}

static FETCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The running service.
pub struct Service {
    connection: zbus::Connection,
}

impl Service {
    /// Connects to `bus`, serves the account object and takes the name `org.easync`.
    pub async fn start(bus: Bus, account: Account1) -> Result<Service, DbusError> {
        let name = bus.as_str();
        let builder = match bus {
            Bus::System => zbus::connection::Builder::system(),
            Bus::Session => zbus::connection::Builder::session(),
        }
        .and_then(|b| b.serve_at(ACCOUNT_PATH, account))
        .map_err(|source| DbusError::Connect { bus: name, source })?;
        let connection = builder
            .build()
            .await
            .map_err(|source| DbusError::Connect { bus: name, source })?;
        connection
            .request_name_with_flags(BUS_NAME, zbus::fdo::RequestNameFlags::DoNotQueue.into())
            .await
            .map_err(|source| DbusError::Name { bus: name, source })?;
        Ok(Service { connection })
    }

    /// Emits what an event changed. Failures are logged (a listener gone is no reason to
    /// stop syncing).
    pub async fn publish(&self, changes: &Changes) {
        if changes.properties.is_empty() && changes.signals.is_empty() {
            return;
        }
        if let Err(e) = self.emit(changes).await {
            log::warn!("D-Bus: cannot emit a change: {e}");
        }
    }

    async fn emit(&self, changes: &Changes) -> zbus::Result<()> {
        let iface = self
            .connection
            .object_server()
            .interface::<_, Account1>(ACCOUNT_PATH)
            .await?;
        let emitter = iface.signal_emitter();
        {
            let account = iface.get().await;
            for p in &changes.properties {
                match p {
                    Property::State => account.state_changed(emitter).await?,
                    Property::StateDetail => account.state_detail_changed(emitter).await?,
                    Property::ProtocolVersion => account.protocol_version_changed(emitter).await?,
                    Property::LastSync => account.last_sync_changed(emitter).await?,
                    Property::Compliance => account.compliance_changed(emitter).await?,
                    Property::Policy => account.policy_changed(emitter).await?,
                }
            }
        }
        for s in &changes.signals {
            match s {
                Signal::PolicyChanged => Account1::policy_changed_signal(emitter).await?,
                Signal::ComplianceRequired { status, missing } => {
                    Account1::compliance_required(emitter, status, missing.clone()).await?
                }
                Signal::WipeRequested { account_only } => {
                    Account1::wipe_requested(emitter, *account_only).await?
                }
                Signal::WipeCompleted { account_only } => {
                    Account1::wipe_completed(emitter, *account_only).await?
                }
                Signal::NewItems {
                    folder_id,
                    folder,
                    class,
                    added,
                    changed,
                    deleted,
                } => {
                    Account1::new_items(
                        emitter, folder_id, folder, class, *added, *changed, *deleted,
                    )
                    .await?
                }
                Signal::Progress {
                    folder,
                    class,
                    done,
                    estimated,
                } => Account1::progress(emitter, folder, class, *done, *estimated).await?,
                Signal::DeviceCodeRequired {
                    verification_uri,
                    user_code,
                    expires_in_secs,
                } => {
                    Account1::device_code_required(
                        emitter,
                        verification_uri,
                        user_code,
                        *expires_in_secs,
                    )
                    .await?
                }
            }
        }
        Ok(())
    }
}

/// The data directory's state file, for the view's start value.
pub fn saved_protocol_version(data_dir: &Path) -> Option<String> {
    StateFile::new(data_dir)
        .peek()
        .ok()
        .flatten()
        .and_then(|state| state.protocol_version)
}
