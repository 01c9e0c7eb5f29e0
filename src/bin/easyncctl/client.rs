//! The D-Bus client commands of `easyncctl`: what an engineer or a script asks the running
//! daemon (`org.easync`, see [`easync::dbus`]). Plain text for people, progress bars on a
//! terminal, `--json` for scripts.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::os::fd::OwnedFd;

use easync::dbus::conn::{CallError, Connection, Incoming};
use easync::dbus::wire::{Kind, Message, Value};
use easync::dbus::{ACCOUNT_INTERFACE, ACCOUNT_PATH, BUS_NAME, Bus};
use serde_json::{Value as Json, json};

/// The commands this module serves.
pub const COMMANDS: [&str; 11] = [
    "status",
    "roaming",
    "enroll",
    "sync",
    "folders",
    "policy",
    "wipe-status",
    "report-compliance",
    "unlock",
    "send",
    "fetch",
];

pub const USAGE: &str = "\
       easyncctl [--bus system|session] [--json] status
       easyncctl [--bus B] [--json] sync [--no-wait]
       easyncctl [--bus B] enroll [--server URL] [--password-stdin]
       easyncctl [--bus B] [--json] folders [enable|disable FOLDER_ID]
       easyncctl [--bus B] [--json] policy
       easyncctl [--bus B] [--json] wipe-status
       easyncctl [--bus B] report-compliance
       easyncctl [--bus B] roaming on|off
       easyncctl [--bus B] [--json] unlock failed|ok
       easyncctl [--bus B] send MESSAGE_FILE
       easyncctl [--bus B] fetch FILE_REFERENCE OUTPUT_FILE

  status          the account: state, last sync, compliance, policy in plain words
  sync            sync now and wait until done (a progress bar on a terminal)
  enroll          add the account: the password (asked for, or the first line of standard
                  input with --password-stdin), the server when Autodiscover cannot find it;
                  an OAuth account shows the code to enter on another device
  folders         the server's folders and whether they are synced; enable/disable one
  policy          the server's policy, element by element, in plain words
  wipe-status     a remote wipe's kind and how far it got
  report-compliance  the device changed (a hook's concern): check the policy again
  roaming         tell easync the modem started or stopped roaming
  unlock          tell easync about a failed or successful unlock of the lock screen
  send            queue a message (RFC 5322 file) in the outbox and send it
  fetch           download an attachment by its file reference

  --bus B         the bus easyncd serves on (default system; session for development)
  --json          machine-readable output (one JSON document)
These commands talk to a running easyncd over D-Bus.";

struct Options {
    bus: Bus,
    json: bool,
    words: Vec<String>,
    password_stdin: bool,
    server: Option<String>,
}

/// Runs a client command; `args` are the command line after the program name.
pub fn main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let options = match parse(args) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("easyncctl: {message}\n\nusage:{}", &USAGE[6..]);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("easyncctl: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(&options)) {
        Ok(code) => code,
        Err(message) => {
            if options.json {
                println!("{}", json!({ "error": message }));
            }
            eprintln!("easyncctl: {message}");
            ExitCode::from(1)
        }
    }
}

fn parse(args: Vec<std::ffi::OsString>) -> Result<Options, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut options = Options {
        bus: Bus::System,
        json: false,
        words: Vec::new(),
        password_stdin: false,
        server: None,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("json") => options.json = true,
            Long("bus") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                options.bus = match v.to_str() {
                    Some("system") => Bus::System,
                    Some("session") => Bus::Session,
                    _ => {
                        return Err(format!(
                            "--bus {}: use system or session",
                            v.to_string_lossy()
                        ));
                    }
                };
            }
            Long("no-wait") => options.words.push("--no-wait".into()),
            Long("password-stdin") => options.password_stdin = true,
            Long("server") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                options.server = Some(v.into_string().map_err(|v| format!("not UTF-8: {v:?}"))?);
            }
            Value(v) => options
                .words
                .push(v.into_string().map_err(|v| format!("not UTF-8: {v:?}"))?),
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(options)
}

/// A connection to the bus and the account object's calls.
struct Daemon {
    connection: Connection,
    incoming: tokio::sync::Mutex<Incoming>,
}

/// The largest reply taken (bytes): a folder list of many thousands fits.
const INBOUND_LIMIT: usize = 32 * 1024 * 1024;

impl Daemon {
    async fn connect(bus: Bus) -> Result<Daemon, String> {
        let (connection, incoming) = Connection::connect(bus, INBOUND_LIMIT)
            .await
            .map_err(|e| format!("cannot reach the {} bus: {e}", bus.as_str()))?;
        Ok(Daemon {
            connection,
            incoming: tokio::sync::Mutex::new(incoming),
        })
    }

    /// Calls a method of the account; its reply's arguments.
    async fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        fds: Vec<OwnedFd>,
    ) -> Result<Vec<Value>, CallError> {
        let mut message =
            Message::call(BUS_NAME, ACCOUNT_PATH, ACCOUNT_INTERFACE, method).with_body(args);
        message.fds = fds;
        self.connection.call(message).await.map(|reply| reply.body)
    }

    /// Like [`Daemon::call`], with failures explained.
    async fn ask(&self, method: &str, args: Vec<Value>) -> Result<Vec<Value>, String> {
        self.call(method, args, Vec::new())
            .await
            .map_err(|e| explain(e, method))
    }

    async fn property(&self, name: &str) -> Result<Value, String> {
        let reply = self
            .connection
            .call(
                Message::call(
                    BUS_NAME,
                    ACCOUNT_PATH,
                    "org.freedesktop.DBus.Properties",
                    "Get",
                )
                .with_body(vec![Value::str(ACCOUNT_INTERFACE), Value::str(name)]),
            )
            .await
            .map_err(|e| explain(e, name))?;
        match reply.body.into_iter().next() {
            Some(Value::Variant(v)) => Ok(*v),
            other => Err(format!("{name}: unexpected value {other:?}")),
        }
    }

    async fn text(&self, name: &str) -> Result<String, String> {
        match self.property(name).await? {
            Value::Str(s) => Ok(s),
            other => Err(format!("{name}: not a string but {other:?}")),
        }
    }

    async fn number(&self, name: &str) -> Result<u64, String> {
        let v = self.property(name).await?;
        v.as_u64()
            .ok_or_else(|| format!("{name}: not a number but {v:?}"))
    }

    /// The Compliance property: status and the elements not applied.
    async fn compliance(&self) -> Result<(String, Vec<String>), String> {
        let v = self.property("Compliance").await?;
        match v.items() {
            Some([Value::Str(status), missing]) => Ok((status.clone(), strings(missing))),
            _ => Err(format!("Compliance: unexpected value {v:?}")),
        }
    }

    /// The Policy property: element name to value.
    async fn policy(&self) -> Result<HashMap<String, Value>, String> {
        let v = self.property("Policy").await?;
        Ok(v.entries()
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.unwrap_variant().clone())))
            .collect())
    }

    /// From now on, the account's signals reach [`Daemon::next_signal`].
    async fn listen(&self) -> Result<(), String> {
        self.connection
            .add_match(&format!(
                "type='signal',sender='{BUS_NAME}',path='{ACCOUNT_PATH}'"
            ))
            .await
            .map_err(|e| explain(e, "listening for signals"))
    }

    /// The next signal of the account (after [`Daemon::listen`]).
    async fn next_signal(&self) -> Option<Message> {
        let mut incoming = self.incoming.lock().await;
        loop {
            let message = incoming.next().await?;
            if message.kind == Kind::Signal {
                return Some(message);
            }
        }
    }
}

/// Reply argument `i` as text ("" when it is missing or not a string).
fn text_at(reply: &[Value], i: usize) -> String {
    reply
        .get(i)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The strings of an `as` value.
fn strings(v: &Value) -> Vec<String> {
    v.items()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Turns a D-Bus failure into what the user can do about it.
fn explain(e: CallError, what: &str) -> String {
    let name = e.error_name().unwrap_or_default();
    if name.ends_with(".ServiceUnknown") || name.ends_with(".NameHasNoOwner") {
        format!(
            "easyncd is not running on this bus (no {BUS_NAME}): start it (systemctl start easyncd)"
        )
    } else if name.ends_with(".AccessDenied") {
        format!(
            "{what}: access denied by the bus policy: run as root or as a member of the group \
             org.easync.conf allows"
        )
    } else {
        format!("{what}: {e}")
    }
}

async fn run(o: &Options) -> Result<ExitCode, String> {
    let words: Vec<&str> = o.words.iter().map(String::as_str).collect();
    let daemon = Daemon::connect(o.bus).await?;
    match words.as_slice() {
        ["status"] => status(&daemon, o.json).await,
        ["sync"] => sync(&daemon, o.json, true).await,
        ["sync", "--no-wait"] => sync(&daemon, o.json, false).await,
        ["enroll"] => enroll(&daemon, o).await,
        ["folders"] => folders(&daemon, o.json).await,
        ["folders", action @ ("enable" | "disable"), id] => {
            daemon
                .ask(
                    "SetFolderEnabled",
                    vec![Value::str(*id), Value::Bool(*action == "enable")],
                )
                .await?;
            say(
                o.json,
                json!({ "folder": id, "enabled": *action == "enable" }),
                || format!("folder {id} {action}d; a sync follows"),
            );
            Ok(ExitCode::SUCCESS)
        }
        ["policy"] => policy(&daemon, o.json).await,
        ["wipe-status"] => {
            let reply = daemon.ask("WipeStatus", vec![]).await?;
            let (kind, phase) = (text_at(&reply, 0), text_at(&reply, 1));
            let state = daemon.text("State").await?;
            say(
                o.json,
                json!({ "kind": kind, "phase": phase, "state": state }),
                || {
                    if kind.is_empty() {
                        format!("no wipe recorded (state: {state})")
                    } else {
                        format!("{kind} wipe: last step done: {phase} (state: {state})")
                    }
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        ["roaming", on @ ("on" | "off")] => {
            daemon
                .ask("SetRoaming", vec![Value::Bool(*on == "on")])
                .await?;
            say(o.json, json!({ "roaming": *on == "on" }), || {
                format!("roaming {on}")
            });
            Ok(ExitCode::SUCCESS)
        }
        ["report-compliance"] => {
            daemon.ask("ReportCompliance", vec![]).await?;
            say(o.json, json!({ "reported": true }), || {
                "the policy is checked again with the hooks; see `easyncctl status`".into()
            });
            Ok(ExitCode::SUCCESS)
        }
        ["unlock", outcome @ ("failed" | "ok")] => {
            if *outcome == "ok" {
                daemon.ask("ReportUnlockSuccess", vec![]).await?;
                say(o.json, json!({ "failures": 0 }), || {
                    "failure count reset".into()
                });
            } else {
                let reply = daemon.ask("ReportUnlockFailure", vec![]).await?;
                let number = |i: usize| reply.get(i).and_then(Value::as_u64).unwrap_or(0);
                let (failures, limit) = (number(0), number(1));
                let wiping = reply.get(2).and_then(Value::as_bool).unwrap_or(false);
                say(
                    o.json,
                    json!({ "failures": failures, "limit": limit, "wiping": wiping }),
                    || match (limit, wiping) {
                        (_, true) => {
                            format!("{failures} failed unlocks: the device is being wiped")
                        }
                        (0, _) => format!("{failures} failed unlocks (the policy sets no limit)"),
                        (l, _) => format!("{failures} of {l} failed unlocks before a wipe"),
                    },
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ["send", file] => {
            let f = std::fs::File::open(file).map_err(|e| format!("cannot open {file}: {e}"))?;
            let reply = daemon
                .call("SendMail", vec![Value::Fd(0)], vec![OwnedFd::from(f)])
                .await
                .map_err(|e| explain(e, "SendMail"))?;
            let id = text_at(&reply, 0);
            say(o.json, json!({ "queued": id }), || {
                format!("queued as {id}; it is sent at once")
            });
            Ok(ExitCode::SUCCESS)
        }
        ["fetch", reference, out] => {
            use std::os::unix::fs::OpenOptionsExt;
            let path = PathBuf::from(out);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .open(&path)
                .map_err(|e| format!("cannot create {out}: {e}"))?;
            let fd = OwnedFd::from(f);
            match daemon
                .call(
                    "FetchAttachment",
                    vec![Value::str(*reference), Value::Fd(0)],
                    vec![fd],
                )
                .await
            {
                Ok(reply) => {
                    let size = reply.first().and_then(Value::as_u64).unwrap_or(0);
                    say(o.json, json!({ "file": out, "bytes": size }), || {
                        format!("{size} bytes written to {out}")
                    });
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    Err(explain(e, "FetchAttachment"))
                }
            }
        }
        [] => Err("no command given".into()),
        other => Err(format!("unknown command `{}`", other.join(" "))),
    }
}

/// Prints `value` as JSON or the text `human` makes.
fn say(json: bool, value: Json, human: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", human());
    }
}

fn ago(secs: u64) -> String {
    if secs == 0 {
        return "never (this run)".into();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let delta = now.saturating_sub(secs);
    let when = match delta {
        0..60 => format!("{delta} s ago"),
        60..3600 => format!("{} min ago", delta / 60),
        3600..86_400 => format!("{} h ago", delta / 3600),
        _ => format!("{} days ago", delta / 86_400),
    };
    format!("{when} (Unix time {secs})")
}

fn compliance_words(status: &str) -> &'static str {
    match status {
        "compliant" => "the device applies the whole policy",
        "partial" => "the device applies part of the policy",
        "not-applied" => "the device applies none of the policy's device settings",
        "blocked" => "the server blocks this device until the missing settings are applied",
        "externally-managed" => "the device is managed by other software",
        _ => "not known yet (no policy checked since easyncd started)",
    }
}

async fn status(d: &Daemon, json: bool) -> Result<ExitCode, String> {
    let state = d.text("State").await?;
    let detail = d.text("StateDetail").await?;
    let version = d.text("ProtocolVersion").await?;
    let last_sync = d.number("LastSync").await?;
    let (compliance, missing) = d.compliance().await?;
    let policy = d.policy().await?;
    if json {
        println!(
            "{}",
            json!({
                "state": state, "detail": detail, "protocol_version": version,
                "last_sync": last_sync, "compliance": { "status": compliance, "missing": missing },
                "policy": policy_json(&policy),
            })
        );
    } else {
        println!(
            "state:       {state}{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(" — {detail}")
            }
        );
        println!("last sync:   {}", ago(last_sync));
        println!(
            "ActiveSync:  {}",
            if version.is_empty() {
                "not connected yet"
            } else {
                &version
            }
        );
        println!(
            "compliance:  {compliance}: {}",
            compliance_words(&compliance)
        );
        if !missing.is_empty() {
            println!("  not applied: {}", missing.join(", "));
        }
        if policy.is_empty() {
            println!("policy:      none received since easyncd started");
        } else {
            println!("policy:      {} settings; the main ones:", policy.len());
            for line in policy_lines(&policy).into_iter().take(8) {
                println!("  {line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn value_text(v: &Value) -> String {
    match (v.as_u64(), v.as_str()) {
        (Some(n), _) => n.to_string(),
        (_, Some(s)) => s.to_string(),
        _ => format!("{v:?}"),
    }
}

fn policy_json(policy: &HashMap<String, Value>) -> Json {
    Json::Object(
        policy
            .iter()
            .map(|(k, v)| {
                let value = v
                    .as_u64()
                    .map(Json::from)
                    .unwrap_or_else(|| Json::from(value_text(v)));
                (k.clone(), value)
            })
            .collect(),
    )
}

/// One element of the policy in plain words (None for elements without a sentence).
fn plain(name: &str, value: &str) -> Option<String> {
    let n: Option<u64> = value.parse().ok();
    let yes = value == "1";
    Some(match name {
        "DevicePasswordEnabled" if yes => "a device password (PIN) is required".into(),
        "DevicePasswordEnabled" => "no device password is required".into(),
        "AlphanumericDevicePasswordRequired" if yes => {
            "the password must mix letters and digits".into()
        }
        "MinDevicePasswordLength" => format!("the password has at least {value} characters"),
        "MinDevicePasswordComplexCharacters" => {
            format!("the password uses at least {value} kinds of characters")
        }
        "AllowSimpleDevicePassword" if value == "0" => {
            "simple passwords (1234, 1111) are refused".into()
        }
        "DevicePasswordExpiration" if n.is_some_and(|n| n > 0) => {
            format!("the password expires after {value} days")
        }
        "DevicePasswordHistory" if n.is_some_and(|n| n > 0) => {
            format!("the last {value} passwords cannot be reused")
        }
        "MaxInactivityTimeDeviceLock" => format!("the screen locks after {value} s without use"),
        "MaxDevicePasswordFailedAttempts" => {
            format!("{value} wrong passwords in a row wipe the device")
        }
        "RequireDeviceEncryption" if yes => "the device storage must be encrypted".into(),
        "RequireStorageCardEncryption" if yes => "storage cards must be encrypted".into(),
        "AttachmentsEnabled" if value == "0" => "attachments cannot be downloaded".into(),
        "MaxAttachmentSize" => format!("attachments up to {value} bytes"),
        "AllowCamera" if value == "0" => "the camera is disabled".into(),
        "AllowBluetooth" if value == "0" => "Bluetooth is disabled".into(),
        "AllowWiFi" if value == "0" => "Wi-Fi is disabled".into(),
        "AllowStorageCard" if value == "0" => "storage cards are disabled".into(),
        "AllowHTMLEmail" if value == "0" => "mail is shown as plain text only".into(),
        "RequireManualSyncWhenRoaming" if yes => "no automatic sync while roaming".into(),
        "MaxEmailAgeFilter" if value != "0" => {
            format!("mail is kept for a limited time (filter {value})")
        }
        "MaxCalendarAgeFilter" if value != "0" => {
            format!("past calendar entries are limited (filter {value})")
        }
        _ => return None,
    })
}

fn policy_lines(policy: &HashMap<String, Value>) -> Vec<String> {
    let mut names: Vec<&String> = policy.keys().collect();
    names.sort();
    let mut lines: Vec<String> = names
        .iter()
        .filter_map(|n| plain(n, &value_text(&policy[*n])))
        .collect();
    if lines.is_empty() {
        lines.push("nothing that restricts the device".into());
    }
    lines
}

async fn policy(d: &Daemon, json: bool) -> Result<ExitCode, String> {
    let policy = d.policy().await?;
    let (compliance, missing) = d.compliance().await?;
    if json {
        println!(
            "{}",
            json!({ "policy": policy_json(&policy), "compliance": compliance, "missing": missing })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if policy.is_empty() {
        println!("no policy received since easyncd started (or the server has none)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut names: Vec<&String> = policy.keys().collect();
    names.sort();
    for name in names {
        let value = value_text(&policy[name]);
        let mark = if missing.contains(name) {
            "NOT APPLIED  "
        } else {
            ""
        };
        match plain(name, &value) {
            Some(words) => println!("{mark}{name} = {value}: {words}"),
            None => println!("{mark}{name} = {value}"),
        }
    }
    println!(
        "compliance: {compliance}: {}",
        compliance_words(&compliance)
    );
    Ok(ExitCode::SUCCESS)
}

async fn folders(d: &Daemon, json: bool) -> Result<ExitCode, String> {
    let reply = d.ask("ListFolders", vec![]).await?;
    let mut list: Vec<(String, String, String, bool, u64)> = reply
        .first()
        .and_then(Value::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| match f.items()? {
            [id, path, class, on, items] => Some((
                id.as_str()?.to_string(),
                path.as_str()?.to_string(),
                class.as_str()?.to_string(),
                on.as_bool()?,
                items.as_u64()?,
            )),
            _ => None,
        })
        .collect();
    list.sort_by(|a, b| a.1.cmp(&b.1));
    if json {
        let items: Vec<Json> = list
            .iter()
            .map(|(id, path, class, on, items)| {
                json!({ "id": id, "path": path, "class": class, "synced": on, "items": items })
            })
            .collect();
        println!("{}", Json::Array(items));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:<8} {:<9} {:>7}  folder",
        "id", "synced", "class", "items"
    );
    for (id, path, class, on, items) in &list {
        let class = if class.is_empty() { "-" } else { class };
        println!(
            "{:<10} {:<8} {:<9} {:>7}  {}",
            id,
            if *on { "yes" } else { "no" },
            class,
            items,
            path.escape_debug()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Draws one progress line; on a terminal it is redrawn in place.
struct ProgressLine {
    tty: bool,
}

impl ProgressLine {
    fn show(&self, folder: &str, class: &str, done: u64, estimated: u64) {
        if self.tty {
            let done_part = done.min(estimated);
            let bar = match (done_part * 30).checked_div(estimated) {
                Some(filled) => {
                    let filled = filled as usize;
                    format!(
                        "[{}{}] {:>3}%",
                        "#".repeat(filled),
                        "-".repeat(30 - filled),
                        done_part * 100 / estimated
                    )
                }
                None => String::new(),
            };
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "\r\x1b[2K{class} {}: {done} items {bar}",
                folder.escape_debug()
            );
            let _ = err.flush();
        } else {
            let of = if estimated > 0 {
                format!(" of ~{estimated}")
            } else {
                String::new()
            };
            eprintln!("{class} {}: {done}{of} items", folder.escape_debug());
        }
    }

    fn end(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

async fn sync(d: &Daemon, json: bool, wait: bool) -> Result<ExitCode, String> {
    // Listen before asking, so a quick sync is not missed.
    if wait {
        d.listen().await?;
    }
    let mut saw_sync = d.text("State").await? == "syncing";
    d.ask("SyncNow", vec![]).await?;
    if !wait {
        say(json, json!({ "requested": true }), || {
            "sync requested".into()
        });
        return Ok(ExitCode::SUCCESS);
    }
    let line = ProgressLine {
        tty: !json && std::io::stderr().is_terminal(),
    };
    let deadline = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(deadline);
    loop {
        let signal = tokio::select! {
            signal = d.next_signal() => signal.ok_or("the bus connection ended during the sync")?,
            _ = &mut deadline => return Err("no sync completed within an hour; see `easyncctl status`".into()),
        };
        match signal.member.as_deref() {
            Some("Progress") => {
                if let [folder, class, done, estimated] = &signal.body[..] {
                    if !json {
                        line.show(
                            folder.as_str().unwrap_or(""),
                            class.as_str().unwrap_or(""),
                            done.as_u64().unwrap_or(0),
                            estimated.as_u64().unwrap_or(0),
                        );
                    }
                }
            }
            Some("PropertiesChanged") => {
                let changed: HashMap<&str, &Value> = signal
                    .body
                    .get(1)
                    .and_then(Value::entries)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?, v.unwrap_variant())))
                    .collect();
                let state = changed.get("State").and_then(|v| v.as_str()).unwrap_or("");
                if state == "syncing" {
                    saw_sync = true;
                }
                // A completed sync after the one asked for began.
                if saw_sync && changed.contains_key("LastSync") {
                    line.end();
                    let state = d.text("State").await?;
                    say(json, json!({ "synced": true, "state": state }), || {
                        format!("synced; now {state}")
                    });
                    return Ok(ExitCode::SUCCESS);
                }
                let failed = matches!(
                    state,
                    "retrying"
                        | "needs-credentials"
                        | "blocked-by-policy"
                        | "blocked"
                        | "needs-configuration"
                        | "stopped"
                );
                if failed && saw_sync {
                    line.end();
                    let detail = d.text("StateDetail").await?;
                    say(
                        json,
                        json!({ "synced": false, "state": state, "detail": detail }),
                        || format!("the sync failed ({state}): {detail}"),
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            _ => {}
        }
    }
}

/// Reads a line from the terminal without echoing it.
fn ask_secret(prompt: &str) -> Result<String, String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let saved = tcgetattr(&stdin).map_err(|e| format!("cannot read the terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| e.to_string())?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.map_err(|e| e.to_string())?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn ask(prompt: &str) -> Result<String, String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(line.trim().to_string())
}

/// "Add account", like a phone's: the password, Autodiscover, the server if that fails;
/// or an OAuth device code.
async fn enroll(d: &Daemon, o: &Options) -> Result<ExitCode, String> {
    let email = d.text("Email").await?;
    let method = d.text("AuthMethod").await?;
    let interactive = !o.password_stdin && std::io::stdin().is_terminal();
    let mut server = o.server.clone();
    d.listen().await?;
    let mut password = None;
    if method == "password" {
        password = Some(if o.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            line.trim_end_matches(['\r', '\n']).to_string()
        } else if interactive {
            ask_secret(&format!("Password for {email}: "))?
        } else {
            return Err("no terminal to ask the password on: use --password-stdin".into());
        });
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut options = Vec::new();
        for (key, value) in [("password", &password), ("server", &server)] {
            if let Some(v) = value {
                options.push((
                    Value::str(key),
                    Value::Variant(Box::new(Value::str(v.clone()))),
                ));
            }
        }
        let call = d.call(
            "Enroll",
            vec![Value::Dict("s".into(), "v".into(), options)],
            Vec::new(),
        );
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                result = &mut call => break result,
                Some(msg) = d.next_signal() => {
                    if let (Some("DeviceCodeRequired"), [uri, code, expires]) = (msg.member.as_deref(), &msg.body[..]) {
                        let (uri, code) = (uri.as_str().unwrap_or(""), code.as_str().unwrap_or(""));
                        let expires = expires.as_u64().unwrap_or(0);
                        say(o.json, json!({ "verification_uri": uri, "user_code": code, "expires_in": expires }), || {
                            format!("To sign in {email}, open {uri} on a phone or PC and enter the code {code} (valid {} min).", expires / 60)
                        });
                    }
                }
            }
        };
        match result {
            Ok(reply) => {
                let (url, version) = (text_at(&reply, 0), text_at(&reply, 1));
                say(
                    o.json,
                    json!({ "enrolled": email, "server": url, "protocol_version": version }),
                    || {
                        format!(
                            "{email} is set up: {url} (ActiveSync {version}); the first sync runs now (`easyncctl sync` shows it)"
                        )
                    },
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => {
                let name = e.error_name().unwrap_or_default().to_string();
                if name.ends_with(".NoServer") && interactive && attempts < 4 {
                    eprintln!("The server for {email} could not be found automatically.");
                    let url = ask(
                        "Server address (e.g. https://mail.example.com/Microsoft-Server-ActiveSync): ",
                    )?;
                    server = Some(if url.contains("://") {
                        url
                    } else {
                        format!("https://{url}/Microsoft-Server-ActiveSync")
                    });
                    continue;
                }
                if name.ends_with(".AuthFailed")
                    && interactive
                    && method == "password"
                    && attempts < 4
                {
                    eprintln!(
                        "The server refused the password (wrong password, or the account is locked)."
                    );
                    password = Some(ask_secret(&format!("Password for {email}: "))?);
                    continue;
                }
                let hint = if name.ends_with(".NoServer") {
                    "; give the server with --server URL"
                } else {
                    ""
                };
                return Err(format!("{}{hint}", explain(e, "Enroll")));
            }
        }
    }
}
