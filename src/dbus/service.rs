//! The `org.easync` service: the `org.easync.Account1` interface on
//! [`super::ACCOUNT_PATH`], a thin mapping of the engine. Properties come from the
//! [`AccountView`] the daemon keeps up to date; methods turn into [`Handle`] commands, a
//! few small files (folder choices, the outbox, the unlock counter) or work the runner does
//! between two steps (fetching an attachment). Whatever blocks (ending a parked Ping,
//! reading a caller's file descriptor) runs off the runtime thread.
//!
//! The members are declared once, in [`METHODS`], [`PROPERTIES`] and [`SIGNALS`]: calls are
//! checked against them and the introspection data is made from them (a test compares it
//! with the published `org.easync.Account1.xml`).
//!
//! Who may call is the bus's business: the policy file `org.easync.conf` lets root and
//! one group call methods and nobody else anything (see `board/dbus/`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::os::fd::OwnedFd;

use super::conn::{CallError, ConnectError, Connection, Incoming};
use super::view::{AccountView, Changes, Property, Signal};
use super::wire::{Kind, Message, NO_REPLY_EXPECTED, Value};
use super::{ACCOUNT_INTERFACE, ACCOUNT_PATH, BUS_NAME, Bus};
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
        source: ConnectError,
    },
    #[error(
        "cannot own the name {BUS_NAME} on the {bus} bus ({source}): another easyncd may be \
         running, or the bus policy org.easync.conf is not installed (/usr/share/dbus-1/\
         system.d/ for the system bus)"
    )]
    Name {
        bus: &'static str,
        source: CallError,
    },
}

/// The largest call the service reads (bytes): its methods take a few strings.
const INBOUND_LIMIT: usize = 256 * 1024;
/// Calls served at the same time; more wait their turn.
const CONCURRENT_CALLS: usize = 16;

/// A method's failure as the caller sees it: a D-Bus error name and a message.
#[derive(Debug)]
pub struct MethodError {
    name: &'static str,
    message: String,
}

type Reply = Result<Vec<Value>, MethodError>;

mod fdo {
    //! The standard error names the service answers with.
    use super::MethodError;

    macro_rules! errors {
        ($($fn_name:ident => $name:literal),* $(,)?) => {
            $(
                #[allow(non_snake_case)]
                pub fn $fn_name(message: impl Into<String>) -> MethodError {
                    MethodError { name: concat!("org.freedesktop.DBus.Error.", $name), message: message.into() }
                }
            )*
        };
    }

    errors!(
        Failed => "Failed",
        InvalidArgs => "InvalidArgs",
        NotSupported => "NotSupported",
        AuthFailed => "AuthFailed",
        NoServer => "NoServer",
        UnknownMethod => "UnknownMethod",
        UnknownObject => "UnknownObject",
        UnknownInterface => "UnknownInterface",
        UnknownProperty => "UnknownProperty",
        PropertyReadOnly => "PropertyReadOnly",
    );
    pub type Result<T> = std::result::Result<T, MethodError>;
}

/// One argument: its name and type.
type Arg = (&'static str, &'static str);

/// A method of the interface.
pub struct MethodSpec {
    pub name: &'static str,
    pub inputs: &'static [Arg],
    pub outputs: &'static [Arg],
}

/// The interface's methods; calls with other arguments are refused as InvalidArgs.
pub const METHODS: &[MethodSpec] = &[
    MethodSpec {
        name: "SyncNow",
        inputs: &[],
        outputs: &[],
    },
    MethodSpec {
        name: "Enroll",
        inputs: &[("options", "a{sv}")],
        outputs: &[("server", "s"), ("protocol_version", "s")],
    },
    MethodSpec {
        name: "SetRoaming",
        inputs: &[("roaming", "b")],
        outputs: &[],
    },
    MethodSpec {
        name: "ReportCompliance",
        inputs: &[],
        outputs: &[],
    },
    MethodSpec {
        name: "ReportUnlockFailure",
        inputs: &[],
        outputs: &[("failures", "u"), ("limit", "u"), ("wiping", "b")],
    },
    MethodSpec {
        name: "ReportUnlockSuccess",
        inputs: &[],
        outputs: &[],
    },
    MethodSpec {
        name: "ListFolders",
        inputs: &[],
        outputs: &[("folders", "a(sssbu)")],
    },
    MethodSpec {
        name: "SetFolderEnabled",
        inputs: &[("folder_id", "s"), ("enabled", "b")],
        outputs: &[],
    },
    MethodSpec {
        name: "SendMail",
        inputs: &[("mime", "h")],
        outputs: &[("message_id", "s")],
    },
    MethodSpec {
        name: "FetchAttachment",
        inputs: &[("file_reference", "s"), ("destination", "h")],
        outputs: &[("size", "t")],
    },
    MethodSpec {
        name: "WipeStatus",
        inputs: &[],
        outputs: &[("kind", "s"), ("phase", "s")],
    },
];

/// The interface's read-only properties: name, type, and whether it never changes.
pub const PROPERTIES: &[(&str, &str, bool)] = &[
    ("AuthMethod", "s", true),
    ("Email", "s", true),
    ("Compliance", "(sas)", false),
    ("LastSync", "t", false),
    ("Policy", "a{sv}", false),
    ("ProtocolVersion", "s", false),
    ("State", "s", false),
    ("StateDetail", "s", false),
];

/// The interface's signals and their arguments.
pub const SIGNALS: &[(&str, &[Arg])] = &[
    ("PolicyChanged", &[]),
    ("ComplianceRequired", &[("status", "s"), ("missing", "as")]),
    ("WipeRequested", &[("account_only", "b")]),
    ("WipeCompleted", &[("account_only", "b")]),
    (
        "NewItems",
        &[
            ("folder_id", "s"),
            ("folder", "s"),
            ("class", "s"),
            ("added", "t"),
            ("changed", "t"),
            ("deleted", "t"),
        ],
    ),
    (
        "Progress",
        &[
            ("folder", "s"),
            ("class", "s"),
            ("done", "t"),
            ("estimated", "t"),
        ],
    ),
    (
        "DeviceCodeRequired",
        &[
            ("verification_uri", "s"),
            ("user_code", "s"),
            ("expires_in_secs", "t"),
        ],
    ),
];

/// The introspection document of `path`: the account object with its interfaces, or one
/// of the nodes above it.
pub fn introspect(path: &str) -> Option<String> {
    use std::fmt::Write as _;
    let mut xml = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n          \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    if path == ACCOUNT_PATH {
        xml.push_str(STANDARD_INTERFACES);
        let _ = writeln!(xml, "  <interface name=\"{ACCOUNT_INTERFACE}\">");
        for m in METHODS {
            let _ = writeln!(xml, "    <method name=\"{}\">", m.name);
            for (dir, args) in [("in", m.inputs), ("out", m.outputs)] {
                for (name, ty) in args {
                    let _ = writeln!(
                        xml,
                        "      <arg name=\"{name}\" type=\"{ty}\" direction=\"{dir}\"/>"
                    );
                }
            }
            xml.push_str("    </method>\n");
        }
        for (name, args) in SIGNALS {
            let _ = writeln!(xml, "    <signal name=\"{name}\">");
            for (arg, ty) in *args {
                let _ = writeln!(xml, "      <arg name=\"{arg}\" type=\"{ty}\"/>");
            }
            xml.push_str("    </signal>\n");
        }
        for (name, ty, constant) in PROPERTIES {
            let _ = write!(
                xml,
                "    <property name=\"{name}\" type=\"{ty}\" access=\"read\""
            );
            if *constant {
                xml.push_str(
                    ">\n      <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" \
                     value=\"const\"/>\n    </property>\n",
                );
            } else {
                xml.push_str("/>\n");
            }
        }
        xml.push_str("  </interface>\n");
    } else {
        let below = ACCOUNT_PATH.strip_prefix(path)?;
        let below = if path == "/" {
            below
        } else {
            below.strip_prefix('/')?
        };
        let child = below.split('/').next().filter(|c| !c.is_empty())?;
        xml.push_str(STANDARD_INTERFACES);
        let _ = writeln!(xml, "  <node name=\"{child}\"/>");
    }
    xml.push_str("</node>\n");
    Some(xml)
}

const STANDARD_INTERFACES: &str = r#"  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg name="machine_uuid" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="properties" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/>
      <arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>
"#;

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
            Err(e) => Err(fdo::Failed(e.to_string())),
        }
    }
}

/// Runs `work` on a blocking thread (it may block for a moment).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> fdo::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| fdo::Failed(format!("internal error: {e}")))
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
fn policy_value(value: &str) -> Value {
    match value.parse::<u32>() {
        Ok(n) => Value::U32(n),
        Err(_) => Value::str(value),
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
    async fn enroll(&self, options: HashMap<String, Value>) -> fdo::Result<(String, String)> {
        let text = |key: &str| -> fdo::Result<Option<String>> {
            match options.get(key) {
                None => Ok(None),
                Some(v) => match v.unwrap_variant() {
                    Value::Str(s) => Ok(Some(s.clone())),
                    _ => Err(fdo::InvalidArgs(format!("{key} must be a string"))),
                },
            }
        };
        if let Some(unknown) = options
            .keys()
            .find(|k| !matches!(k.as_str(), "password" | "server"))
        {
            return Err(fdo::InvalidArgs(format!(
                "unknown option {unknown:?}: Enroll takes password and server"
            )));
        }
        let password = text("password")?;
        let server = text("server")?;
        if password.as_ref().is_some_and(|p| p.len() > 1024)
            || server.as_ref().is_some_and(|s| s.len() > 2048)
        {
            return Err(fdo::InvalidArgs(
                "the password is limited to 1024 bytes and the server URL to 2048",
            ));
        }
        if self.auth_method == "password" && password.as_deref().is_none_or(str::is_empty) {
            return Err(fdo::InvalidArgs(format!(
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
            .map_err(|_| fdo::Failed("the daemon stopped during the enrollment"))?
            .map_err(|e| match &e {
                EngineError::Autodiscover(_) => fdo::NoServer(e.to_string()),
                EngineError::Transport(crate::transport::Error::Unauthorized { .. })
                | EngineError::SignIn(_) => fdo::AuthFailed(e.to_string()),
                EngineError::Unsupported(_) => fdo::InvalidArgs(e.to_string()),
                _ => fdo::Failed(e.to_string()),
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
            return Err(fdo::NotSupported(
                "no roaming signal is configured: set device.roaming_file",
            ));
        };
        let changed = blocking(move || crate::store::atomic::set_flag_file(&file, roaming))
            .await?
            .map_err(|e| fdo::Failed(format!("cannot record the roaming state: {e}")))?;
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
    async fn report_unlock_failure(&self) -> fdo::Result<(u32, u32, bool)> {
        let data_dir = self.data_dir.clone();
        let status = blocking(move || unlock::record_failure(&data_dir))
            .await?
            .map_err(|e| fdo::Failed(e.to_string()))?;
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
            .map_err(|e| fdo::Failed(e.to_string()))
    }

    /// The server's folders: (id, path, class, synced, items stored).
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
            return Err(fdo::InvalidArgs(format!(
                "no folder with the id {folder_id:?}: ListFolders gives the ids"
            )));
        };
        if folder.class.is_none() {
            return Err(fdo::InvalidArgs(format!(
                "folder {:?} holds nothing easync syncs",
                folder.display_name
            )));
        }
        let mut choices =
            FolderChoices::load(&self.data_dir).map_err(|e| fdo::Failed(e.to_string()))?;
        let changed = choices
            .set(&folder_id, enabled)
            .map_err(|e| fdo::Failed(e.to_string()))?;
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
    async fn send_mail(&self, mime: OwnedFd) -> fdo::Result<String> {
        let data_dir = self.data_dir.clone();
        let queued = blocking(move || -> Result<String, String> {
            let mut source = File::from(mime);
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
        .map_err(fdo::Failed)?;
        log::info!("message {queued} queued in the outbox over D-Bus");
        let handle = self.handle.clone();
        blocking(move || handle.local_change()).await?;
        Ok(queued)
    }

    /// Fetches the attachment `file_reference` (from a mail's attachment list) and writes
    /// it into `destination`; returns its size. The policy's attachment rules apply.
    async fn fetch_attachment(
        &self,
        file_reference: String,
        destination: OwnedFd,
    ) -> fdo::Result<u64> {
        if file_reference.is_empty() || file_reference.len() > 4096 {
            return Err(fdo::InvalidArgs(
                "the file reference must be 1 to 4096 bytes",
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
        let fetched = rx
            .await
            .map_err(|_| fdo::Failed("the daemon stopped before the attachment was fetched"))?;
        fetched.map_err(|e| fdo::Failed(e.to_string()))?;
        blocking(move || -> Result<u64, String> {
            let copied = (|| {
                let mut from = File::open(&temp)?;
                let mut to = File::from(destination);
                let n = io::copy(&mut from, &mut to)?;
                to.flush()?;
                Ok::<u64, io::Error>(n)
            })();
            let _ = crate::store::atomic::remove_file(&temp);
            copied.map_err(|e| format!("cannot write the attachment to the descriptor: {e}"))
        })
        .await?
        .map_err(fdo::Failed)
    }

    /// The wipe recorded in the data directory: its kind ("full", "account-only") and the
    /// last step done ("acknowledged" ... "completed"); empty strings when there is none.
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
            Err(e) => Err(fdo::Failed(e.to_string())),
        }
    }

    /// The value of the property `name`.
    fn property(&self, name: &str) -> Option<Value> {
        match name {
            "Email" => Some(Value::str(&self.email)),
            "AuthMethod" => Some(Value::str(self.auth_method)),
            _ => view_property(&self.view(), name),
        }
    }

    /// All properties, for GetAll.
    fn all_properties(&self) -> Value {
        Value::Dict(
            "s".into(),
            "v".into(),
            PROPERTIES
                .iter()
                .filter_map(|(name, _, _)| {
                    let value = self.property(name)?;
                    Some((Value::str(*name), Value::Variant(Box::new(value))))
                })
                .collect(),
        )
    }

    /// Serves one call of the account's interface (arguments already checked against
    /// [`METHODS`]).
    async fn call(&self, member: &str, args: Vec<Value>, mut fds: Vec<OwnedFd>) -> Reply {
        let mut args = args.into_iter();
        let mut next = || args.next().unwrap_or(Value::Byte(0));
        let text = |v: Value| match v {
            Value::Str(s) => s,
            _ => String::new(),
        };
        let flag = |v: Value| v.as_bool().unwrap_or(false);
        let mut fd = |v: Value| -> fdo::Result<OwnedFd> {
            match v {
                Value::Fd(i) if (i as usize) < fds.len() => Ok(fds.swap_remove(i as usize)),
                _ => Err(fdo::InvalidArgs("no file descriptor came with the call")),
            }
        };
        Ok(match member {
            "SyncNow" => {
                self.sync_now().await?;
                vec![]
            }
            "Enroll" => {
                let options = match next() {
                    Value::Dict(_, _, entries) => {
                        entries.into_iter().map(|(k, v)| (text(k), v)).collect()
                    }
                    _ => HashMap::new(),
                };
                let (server, version) = self.enroll(options).await?;
                vec![Value::Str(server), Value::Str(version)]
            }
            "SetRoaming" => {
                self.set_roaming(flag(next())).await?;
                vec![]
            }
            "ReportCompliance" => {
                self.report_compliance().await?;
                vec![]
            }
            "ReportUnlockFailure" => {
                let (failures, limit, wiping) = self.report_unlock_failure().await?;
                vec![Value::U32(failures), Value::U32(limit), Value::Bool(wiping)]
            }
            "ReportUnlockSuccess" => {
                self.report_unlock_success().await?;
                vec![]
            }
            "ListFolders" => {
                let folders = self.list_folders().await?;
                vec![Value::Array(
                    "(sssbu)".into(),
                    folders
                        .into_iter()
                        .map(|(id, path, class, synced, items)| {
                            Value::Struct(vec![
                                Value::Str(id),
                                Value::Str(path),
                                Value::Str(class),
                                Value::Bool(synced),
                                Value::U32(items),
                            ])
                        })
                        .collect(),
                )]
            }
            "SetFolderEnabled" => {
                let id = text(next());
                self.set_folder_enabled(id, flag(next())).await?;
                vec![]
            }
            "SendMail" => {
                let mime = fd(next())?;
                vec![Value::Str(self.send_mail(mime).await?)]
            }
            "FetchAttachment" => {
                let reference = text(next());
                let destination = fd(next())?;
                vec![Value::U64(
                    self.fetch_attachment(reference, destination).await?,
                )]
            }
            "WipeStatus" => {
                let (kind, phase) = self.wipe_status().await?;
                vec![Value::Str(kind), Value::Str(phase)]
            }
            _ => {
                return Err(fdo::UnknownMethod(format!(
                    "{ACCOUNT_INTERFACE} has no method {member}"
                )));
            }
        })
    }
}

static FETCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The running service.
pub struct Service {
    connection: Connection,
    view: Arc<Mutex<AccountView>>,
}

impl Service {
    /// Connects to `bus`, serves the account object and takes the name `org.easync`.
    pub async fn start(bus: Bus, account: Account1) -> Result<Service, DbusError> {
        let name = bus.as_str();
        let (connection, incoming) = Connection::connect(bus, INBOUND_LIMIT)
            .await
            .map_err(|source| DbusError::Connect { bus: name, source })?;
        let view = account.view.clone();
        // Serve before owning the name: the first callers come as soon as it is taken.
        tokio::spawn(serve(connection.clone(), incoming, Arc::new(account)));
        connection
            .request_name(BUS_NAME)
            .await
            .map_err(|source| DbusError::Name { bus: name, source })?;
        Ok(Service { connection, view })
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

    async fn emit(&self, changes: &Changes) -> Result<(), CallError> {
        let signal = |member: &str, body: Vec<Value>| {
            Message::signal(ACCOUNT_PATH, ACCOUNT_INTERFACE, member, body)
        };
        if !changes.properties.is_empty() {
            let changed: Vec<(Value, Value)> = {
                let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
                changes
                    .properties
                    .iter()
                    .map(|p| {
                        let name = match p {
                            Property::State => "State",
                            Property::StateDetail => "StateDetail",
                            Property::ProtocolVersion => "ProtocolVersion",
                            Property::LastSync => "LastSync",
                            Property::Compliance => "Compliance",
                            Property::Policy => "Policy",
                        };
                        let value = view_property(&view, name).unwrap_or(Value::Byte(0));
                        (Value::str(name), Value::Variant(Box::new(value)))
                    })
                    .collect()
            };
            self.connection
                .send(Message::signal(
                    ACCOUNT_PATH,
                    "org.freedesktop.DBus.Properties",
                    "PropertiesChanged",
                    vec![
                        Value::str(ACCOUNT_INTERFACE),
                        Value::Dict("s".into(), "v".into(), changed),
                        Value::strings::<&str>(&[]),
                    ],
                ))
                .await?;
        }
        for s in &changes.signals {
            let message = match s {
                Signal::PolicyChanged => signal("PolicyChanged", vec![]),
                Signal::ComplianceRequired { status, missing } => signal(
                    "ComplianceRequired",
                    vec![Value::str(status.to_string()), Value::strings(missing)],
                ),
                Signal::WipeRequested { account_only } => {
                    signal("WipeRequested", vec![Value::Bool(*account_only)])
                }
                Signal::WipeCompleted { account_only } => {
                    signal("WipeCompleted", vec![Value::Bool(*account_only)])
                }
                Signal::NewItems {
                    folder_id,
                    folder,
                    class,
                    added,
                    changed,
                    deleted,
                } => signal(
                    "NewItems",
                    vec![
                        Value::str(folder_id.as_str()),
                        Value::str(folder.as_str()),
                        Value::str(*class),
                        Value::U64(*added),
                        Value::U64(*changed),
                        Value::U64(*deleted),
                    ],
                ),
                Signal::Progress {
                    folder,
                    class,
                    done,
                    estimated,
                } => signal(
                    "Progress",
                    vec![
                        Value::str(folder.as_str()),
                        Value::str(*class),
                        Value::U64(*done),
                        Value::U64(*estimated),
                    ],
                ),
                Signal::DeviceCodeRequired {
                    verification_uri,
                    user_code,
                    expires_in_secs,
                } => signal(
                    "DeviceCodeRequired",
                    vec![
                        Value::str(verification_uri.as_str()),
                        Value::str(user_code.as_str()),
                        Value::U64(*expires_in_secs),
                    ],
                ),
            };
            self.connection.send(message).await?;
        }
        Ok(())
    }
}

/// A property of the view (the ones that change), as [`Account1::property`] gives it.
fn view_property(view: &AccountView, name: &str) -> Option<Value> {
    Some(match name {
        "State" => Value::str(view.state.as_str()),
        "StateDetail" => Value::str(&view.state_detail),
        "ProtocolVersion" => Value::str(&view.protocol_version),
        "LastSync" => Value::U64(view.last_sync),
        "Compliance" => {
            let (status, missing) = view.compliance_property();
            Value::Struct(vec![Value::Str(status), Value::strings(&missing)])
        }
        "Policy" => Value::Dict(
            "s".into(),
            "v".into(),
            view.policy
                .iter()
                .map(|(name, value)| {
                    (
                        Value::str(name),
                        Value::Variant(Box::new(policy_value(value))),
                    )
                })
                .collect(),
        ),
        _ => return None,
    })
}

/// Answers the calls that reach the connection until it closes.
async fn serve(connection: Connection, mut incoming: Incoming, account: Arc<Account1>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_CALLS));
    while let Some(message) = incoming.next().await {
        if message.kind != Kind::MethodCall {
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let connection = connection.clone();
        let account = account.clone();
        tokio::spawn(async move {
            let mut message = message;
            let wants_reply = message.flags & NO_REPLY_EXPECTED == 0;
            let reply = match dispatch(&account, &mut message).await {
                Ok(body) => Message::reply(&message, body),
                Err(e) => Message::error(&message, e.name, &e.message),
            };
            if wants_reply {
                if let Err(e) = connection.send(reply).await {
                    log::warn!("D-Bus: cannot answer {:?}: {e}", message.member);
                }
            }
            drop(slot);
        });
    }
    log::error!(
        "D-Bus: the connection to the bus ended; easyncd goes on syncing without its \
         org.easync service (restart easyncd once the bus is back)"
    );
}

/// Routes a call to its object and interface and checks its arguments.
async fn dispatch(account: &Account1, call: &mut Message) -> Reply {
    let path = call.path.as_deref().unwrap_or("");
    let member = call.member.as_deref().unwrap_or("");
    let interface = call.interface.as_deref();
    let signature = call.signature();
    if path != ACCOUNT_PATH {
        return match (interface, member) {
            (Some("org.freedesktop.DBus.Introspectable") | None, "Introspect") => introspect(path)
                .map(|xml| vec![Value::Str(xml)])
                .ok_or_else(|| fdo::UnknownObject(format!("no object {path}"))),
            (Some("org.freedesktop.DBus.Peer") | None, "Ping") => Ok(vec![]),
            _ => Err(fdo::UnknownObject(format!(
                "no object {path}: the account is {ACCOUNT_PATH}"
            ))),
        };
    }
    let expect = |sig: &str| {
        if signature == sig {
            Ok(())
        } else {
            Err(fdo::InvalidArgs(format!(
                "{member} takes ({sig}), not ({signature})"
            )))
        }
    };
    let own = |name: &str| {
        if name == ACCOUNT_INTERFACE || name.is_empty() {
            Ok(())
        } else {
            Err(fdo::UnknownInterface(format!(
                "{path} has no interface {name}"
            )))
        }
    };
    match (interface, member) {
        (Some("org.freedesktop.DBus.Peer") | None, "Ping") => Ok(vec![]),
        (Some("org.freedesktop.DBus.Peer") | None, "GetMachineId") => {
            ["/etc/machine-id", "/var/lib/dbus/machine-id"]
                .iter()
                .find_map(|f| std::fs::read_to_string(f).ok())
                .map(|id| vec![Value::str(id.trim())])
                .ok_or_else(|| fdo::Failed("this system has no machine id"))
        }
        (Some("org.freedesktop.DBus.Introspectable") | None, "Introspect") => {
            Ok(vec![Value::Str(introspect(path).unwrap_or_default())])
        }
        (Some("org.freedesktop.DBus.Properties"), "Get") => {
            expect("ss")?;
            let [Value::Str(iface), Value::Str(name)] = &call.body[..] else {
                return Err(fdo::InvalidArgs(
                    "Get takes an interface and a property name",
                ));
            };
            own(iface)?;
            account
                .property(name)
                .map(|v| vec![Value::Variant(Box::new(v))])
                .ok_or_else(|| {
                    fdo::UnknownProperty(format!("{ACCOUNT_INTERFACE} has no property {name}"))
                })
        }
        (Some("org.freedesktop.DBus.Properties"), "GetAll") => {
            expect("s")?;
            match call.body.first().and_then(Value::as_str).unwrap_or("") {
                "" | ACCOUNT_INTERFACE => {}
                "org.freedesktop.DBus.Peer"
                | "org.freedesktop.DBus.Introspectable"
                | "org.freedesktop.DBus.Properties" => {
                    return Ok(vec![Value::Dict("s".into(), "v".into(), vec![])]);
                }
                other => return own(other).map(|_| vec![]),
            }
            Ok(vec![account.all_properties()])
        }
        (Some("org.freedesktop.DBus.Properties"), "Set") => Err(fdo::PropertyReadOnly(
            "the properties of org.easync.Account1 are read-only",
        )),
        (Some(ACCOUNT_INTERFACE) | None, _) => {
            let Some(spec) = METHODS.iter().find(|m| m.name == member) else {
                return Err(fdo::UnknownMethod(format!(
                    "{ACCOUNT_INTERFACE} has no method {member}"
                )));
            };
            let wanted: String = spec.inputs.iter().map(|(_, ty)| *ty).collect();
            expect(&wanted)?;
            let member = member.to_string();
            let (args, fds) = (
                std::mem::take(&mut call.body),
                std::mem::take(&mut call.fds),
            );
            account.call(&member, args, fds).await
        }
        (Some(other), _) => Err(fdo::UnknownInterface(format!(
            "{path} has no interface {other}"
        ))),
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
