//! The `org.easync` D-Bus service of `easyncd` on a private `dbus-daemon`, against the lab:
//! the introspection data matches the file in the repo; the properties follow the account
//! (state, last sync, protocol, policy, compliance) with PropertiesChanged; the methods do
//! what they say (sync now, folders, send mail from a descriptor, fetch an attachment into
//! one, re-check compliance); NewItems arrives with a push; `easyncctl` drives it all; and
//! on a system-style bus the shipped policy refuses every other user.

#![cfg(all(feature = "lab", feature = "dbus"))]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::bus::{Kind, PrivateBus};
use common::lab::Lab;
use common::setup::Setup;
use easync::dbus::{ACCOUNT_INTERFACE, ACCOUNT_PATH, ACCOUNT_XML, BUS_NAME};
use easync::lab::NewItem;
use easync::lab::model::Prop;
use easync::lab::seed::folder;
use zbus::zvariant::{OwnedFd, OwnedValue};

const PUSH: &str = "[push]\nheartbeat_min = 300\nheartbeat_start = 300\nheartbeat_max = 600\n";
const EASYNCCTL: &str = env!("CARGO_BIN_EXE_easyncctl");

/// easyncd serving on a private bus.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(setup: &Setup, bus: &PrivateBus, system: bool) -> Daemon {
        Daemon::start_logging(setup, bus, system, "-v")
    }

    /// With the log level `verbosity` ("-v" info, "-vv" debug).
    fn start_logging(setup: &Setup, bus: &PrivateBus, system: bool, verbosity: &str) -> Daemon {
        let log = setup.dir.0.join("easyncd.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_easyncd"));
        command
            .arg("--config")
            .arg(&setup.config_path)
            .args([
                verbosity,
                "--bus",
                if system { "system" } else { "session" },
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if system {
            command.env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
        } else {
            command.env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
        }
        Daemon {
            child: command.spawn().expect("easyncd starts"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration for the lab's first user over HTTP; `extra` is appended to the TOML.
fn lab_account(lab: &Lab, tag: &str, extra: &str) -> Setup {
    let url = lab.handle.http_url().unwrap();
    Setup::new(&url, lab.handle.user(), "labpass", None, tag, extra)
}

/// A `device_lock` hook in `dir` that applies every element it is given (exit 0).
fn lock_hook_applying_everything(dir: &Path) -> PathBuf {
    let hook = dir.join("device-lock");
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    hook
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(bus: &PrivateBus) -> zbus::Connection {
    zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .expect("the test connects to the private bus")
}

/// All properties of the account in one GetAll call.
async fn all_properties(c: &zbus::Connection) -> zbus::Result<HashMap<String, OwnedValue>> {
    let reply = c
        .call_method(
            Some(BUS_NAME),
            ACCOUNT_PATH,
            Some("org.freedesktop.DBus.Properties"),
            "GetAll",
            &(ACCOUNT_INTERFACE,),
        )
        .await?;
    reply.body().deserialize()
}

/// A proxy of the account that reads properties afresh each time (no cache).
async fn proxy(connection: &zbus::Connection) -> zbus::Proxy<'static> {
    zbus::proxy::Builder::new(connection)
        .destination(BUS_NAME)
        .unwrap()
        .path(ACCOUNT_PATH)
        .unwrap()
        .interface(ACCOUNT_INTERFACE)
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

/// Polls the property `name` until `ok` holds; its value. Panics with the log after `within`.
async fn wait_property<T>(
    p: &zbus::Proxy<'_>,
    daemon: &Daemon,
    name: &str,
    within: Duration,
    ok: impl Fn(&T) -> bool,
) -> T
where
    T: TryFrom<OwnedValue> + std::fmt::Debug,
    T::Error: Into<zbus::Error>,
{
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        // Not cached: the value of now.
        if let Ok(v) = p.get_property::<T>(name).await {
            if ok(&v) {
                return v;
            }
            last = Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{name} never satisfied the test (last {last:?})\n--- easyncd log ---\n{}",
        daemon.log()
    );
}

/// Waits until the `State` property is `state`; panics with the log after `secs`.
async fn wait_state(p: &zbus::Proxy<'_>, daemon: &Daemon, state: &str, secs: u64) -> String {
    wait_property(
        p,
        daemon,
        "State",
        Duration::from_secs(secs),
        |s: &String| s == state,
    )
    .await
}

/// The members of one interface in an introspection document: "method Name(in s a, out u b)",
/// "property Name s readwrite", "signal Name(s a)".
fn members(xml: &str, interface: &str) -> BTreeSet<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = BTreeSet::new();
    let mut inside = false;
    let mut current: Option<(String, String, Vec<String>)> = None;
    let attr = |e: &quick_xml::events::BytesStart, key: &str| -> String {
        e.attributes()
            .flatten()
            .find(|a| a.key.as_ref() == key.as_bytes())
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
            .unwrap_or_default()
    };
    loop {
        let event = reader.read_event().expect("well-formed XML");
        let (e, empty) = match &event {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            Event::End(e) => {
                match e.name().as_ref() {
                    b"interface" => inside = false,
                    b"method" | b"signal" => {
                        if let Some((kind, name, args)) = current.take() {
                            out.insert(format!("{kind} {name}({})", args.join(", ")));
                        }
                    }
                    _ => {}
                }
                (None, false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        let Some(e) = e else { continue };
        match e.name().as_ref() {
            b"interface" => inside = attr(&e, "name") == interface && !empty,
            b"method" | b"signal" if inside => {
                let kind = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let entry = (kind, attr(&e, "name"), Vec::new());
                if empty {
                    out.insert(format!("{} {}()", entry.0, entry.1));
                } else {
                    current = Some(entry);
                }
            }
            b"arg" if inside => {
                if let Some((kind, _, args)) = &mut current {
                    let direction = match attr(&e, "direction").as_str() {
                        "" if kind == "method" => "in".to_string(),
                        "" => String::new(),
                        d => d.to_string(),
                    };
                    args.push(
                        format!("{direction} {} {}", attr(&e, "type"), attr(&e, "name"))
                            .trim()
                            .to_string(),
                    );
                }
            }
            b"property" if inside => {
                out.insert(format!(
                    "property {} {} {}",
                    attr(&e, "name"),
                    attr(&e, "type"),
                    attr(&e, "access")
                ));
            }
            _ => {}
        }
    }
    out
}

fn ctl(bus: &PrivateBus, args: &[&str]) -> Output {
    Command::new(EASYNCCTL)
        .args(["--bus", "session"])
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap()
}

/// `easyncctl --json enroll --password-stdin` with `password` on its standard input.
fn enroll_from_stdin(bus: &PrivateBus, password: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(EASYNCCTL)
        .args(["--bus", "session", "--json", "enroll", "--password-stdin"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ctl_json(bus: &PrivateBus, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ctl(bus, &all);
    assert!(
        out.status.success(),
        "easyncctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "easyncctl {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn lab_acks(lab: &Lab, device_id: &str) -> usize {
    lab.device(device_id)["acks"]
        .as_array()
        .map_or(0, |a| a.len())
}

#[test]
fn the_service_mirrors_the_account_and_its_methods_work() {
    let lab = Lab::start(Lab::default_config());
    let attachment: Vec<u8> = (0..30_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let reference = format!(
        "{}:0",
        lab.mail_with_attachment("report.bin", attachment.clone())
    );
    let setup = lab_account(&lab, "dbus", PUSH);
    let bus = PrivateBus::start(&setup.dir.0, Kind::Session);
    let daemon = Daemon::start(&setup, &bus, false);
    let rt = runtime();
    rt.block_on(async {
        let connection = connect(&bus).await;
        // The name appears once easyncd is up.
        let dbus = zbus::fdo::DBusProxy::new(&connection).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dbus
            .name_has_owner(BUS_NAME.try_into().unwrap())
            .await
            .unwrap()
        {
            assert!(Instant::now() < deadline, "no {BUS_NAME}: {}", daemon.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // The introspection data is the one in the repository.
        let introspectable = zbus::fdo::IntrospectableProxy::builder(&connection)
            .destination(BUS_NAME)
            .unwrap()
            .path(ACCOUNT_PATH)
            .unwrap()
            .build()
            .await
            .unwrap();
        let live = introspectable.introspect().await.unwrap();
        let expected = members(ACCOUNT_XML, ACCOUNT_INTERFACE);
        assert!(
            expected.len() >= 20,
            "the checked-in XML lists the interface"
        );
        assert_eq!(
            members(&live, ACCOUNT_INTERFACE),
            expected,
            "src/dbus/org.easync.Account1.xml no longer matches the service; it says:\n{live}"
        );

        let p = proxy(&connection).await;
        // Change streams need a caching proxy.
        let cached = zbus::Proxy::new(&connection, BUS_NAME, ACCOUNT_PATH, ACCOUNT_INTERFACE)
            .await
            .unwrap();
        let mut states = cached.receive_property_changed::<String>("State").await;
        let state = wait_state(&p, &daemon, "listening", 60).await;
        assert_eq!(state, "listening");
        // PropertiesChanged carried the state as it moved.
        let changed = tokio::time::timeout(Duration::from_secs(5), async {
            use zbus::export::futures_core::Stream;
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut states).poll_next(cx)).await
        })
        .await
        .expect("a PropertiesChanged for State")
        .expect("the stream is open");
        assert!(!changed.get().await.unwrap().is_empty());

        let last: u64 = p.get_property("LastSync").await.unwrap();
        assert!(last > 1_700_000_000, "LastSync is a Unix time: {last}");
        let version: String = p.get_property("ProtocolVersion").await.unwrap();
        assert_eq!(version, "16.1");
        // The lab's policy, and no hooks: nothing applied, every element missing.
        let policy: HashMap<String, OwnedValue> = p.get_property("Policy").await.unwrap();
        let expected_policy = easync::lab::default_policy();
        assert_eq!(policy.len(), expected_policy.len(), "{policy:?}");
        let (compliance, missing): (String, Vec<String>) =
            p.get_property("Compliance").await.unwrap();
        assert_eq!(compliance, "not-applied");
        assert!(
            missing.contains(&"DevicePasswordEnabled".to_string()),
            "{missing:?}"
        );

        // Folders: the inbox with what the lab holds.
        let folders: Vec<(String, String, String, bool, u32)> =
            p.call("ListFolders", &()).await.unwrap();
        let inbox = folders
            .iter()
            .find(|f| f.0 == folder::INBOX)
            .expect("the inbox is listed");
        assert_eq!(
            (inbox.1.as_str(), inbox.2.as_str(), inbox.3),
            ("Inbox", "email", true)
        );
        assert_eq!(u64::from(inbox.4), lab.folder_items(folder::INBOX));
        p.call::<_, _, ()>("SetFolderEnabled", &(folder::CONTACTS, false))
            .await
            .unwrap();
        let e = p
            .call::<_, _, ()>("SetFolderEnabled", &("no-such-folder", true))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("InvalidArgs") && e.contains("ListFolders"),
            "{e}"
        );
        let folders: Vec<(String, String, String, bool, u32)> =
            p.call("ListFolders", &()).await.unwrap();
        let contacts = folders.iter().find(|f| f.0 == folder::CONTACTS).unwrap();
        assert!(!contacts.3, "disabled: {contacts:?}");
        let choices = std::fs::read_to_string(setup.data().join("state/folders.json")).unwrap();
        assert!(
            choices.contains(&format!("\"{}\": false", folder::CONTACTS)),
            "{choices}"
        );
        // A contact added on the server no longer arrives.
        let before = std::fs::read_dir(setup.data().join("contacts/Contacts"))
            .unwrap()
            .count();
        lab.handle
            .add_item(NewItem {
                folder_id: folder::CONTACTS.into(),
                props: vec![
                    Prop::text("FileAs", "Disabled, Folder"),
                    Prop::text("FirstName", "Folder"),
                ],
                ..NewItem::default()
            })
            .unwrap();

        // NewItems comes with a pushed mail.
        let mut new_items = p.receive_signal("NewItems").await.unwrap();
        wait_state(&p, &daemon, "listening", 30).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        lab.handle
            .add_mail(folder::INBOX, "over dbus", "pushed")
            .unwrap();
        let signal = tokio::time::timeout(Duration::from_secs(30), async {
            use zbus::export::futures_core::Stream;
            loop {
                let m = std::future::poll_fn(|cx| std::pin::Pin::new(&mut new_items).poll_next(cx))
                    .await
                    .unwrap();
                let body: (String, String, String, u64, u64, u64) = m.body().deserialize().unwrap();
                if body.0 == folder::INBOX {
                    return body;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no NewItems for the inbox\n{}", daemon.log()));
        assert_eq!(
            (signal.1.as_str(), signal.2.as_str(), signal.3),
            ("Inbox", "email", 1)
        );

        // SendMail: the message from a descriptor reaches the server's Sent Items.
        let sent = lab.folder_items(folder::SENT);
        let message = setup.dir.0.join("message.eml");
        std::fs::write(
            &message,
            "From: lab@example.com\r\nTo: someone@example.org\r\nSubject: over D-Bus\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nsent through SendMail\r\n",
        )
        .unwrap();
        let fd = OwnedFd::from(std::os::fd::OwnedFd::from(
            std::fs::File::open(&message).unwrap(),
        ));
        let queued: String = p.call("SendMail", &(fd,)).await.unwrap();
        assert!(!queued.is_empty());
        let deadline = Instant::now() + Duration::from_secs(20);
        while lab.folder_items(folder::SENT) != sent + 1 {
            assert!(Instant::now() < deadline, "not sent\n{}", daemon.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let empty = setup.dir.0.join("empty.eml");
        std::fs::write(&empty, "").unwrap();
        let fd = OwnedFd::from(std::os::fd::OwnedFd::from(
            std::fs::File::open(&empty).unwrap(),
        ));
        let e = p
            .call::<_, _, String>("SendMail", &(fd,))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");

        // FetchAttachment writes into the caller's descriptor.
        let out = setup.dir.0.join("fetched.bin");
        let fd = OwnedFd::from(std::os::fd::OwnedFd::from(
            std::fs::File::create(&out).unwrap(),
        ));
        let size: u64 = p
            .call("FetchAttachment", &(reference.as_str(), fd))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
        assert_eq!(size, attachment.len() as u64);
        assert_eq!(std::fs::read(&out).unwrap(), attachment);
        let out2 = std::fs::File::create(setup.dir.0.join("bad.bin")).unwrap();
        let fd = OwnedFd::from(std::os::fd::OwnedFd::from(out2));
        assert!(
            p.call::<_, _, u64>("FetchAttachment", &("999999:0", fd))
                .await
                .is_err()
        );

        // ReportCompliance provisions again: the lab sees one more acknowledgement.
        let acks = lab_acks(&lab, &setup.device_id);
        p.call::<_, _, ()>("ReportCompliance", &()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while lab_acks(&lab, &setup.device_id) <= acks {
            assert!(
                Instant::now() < deadline,
                "no new Provision\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The disabled contacts folder was left alone by the syncs since.
        wait_state(&p, &daemon, "listening", 30).await;
        let after = std::fs::read_dir(setup.data().join("contacts/Contacts"))
            .unwrap()
            .count();
        assert_eq!(after, before, "a disabled folder is not synced");
    });

    // easyncctl drives the same service.
    let status = ctl_json(&bus, &["status"]);
    assert_eq!(status["protocol_version"], "16.1");
    assert_eq!(status["compliance"]["status"], "not-applied");
    assert!(
        status["policy"]["DevicePasswordEnabled"].is_number(),
        "{status}"
    );
    let text = ctl(&bus, &["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("a device password (PIN) is required"),
        "{text}"
    );
    let folders = ctl_json(&bus, &["folders"]);
    assert!(
        folders
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == folder::CONTACTS && f["synced"] == false),
        "{folders}"
    );
    let enabled = ctl_json(&bus, &["folders", "enable", folder::CONTACTS]);
    assert_eq!(enabled["enabled"], true);
    let synced = ctl_json(&bus, &["sync"]);
    assert_eq!(synced["synced"], true, "{synced}");
    let policy = ctl_json(&bus, &["policy"]);
    assert_eq!(policy["compliance"], "not-applied");
    let wipe = ctl_json(&bus, &["wipe-status"]);
    assert_eq!(wipe["kind"], "");
    let bad = ctl(&bus, &["folders", "enable", "no-such-folder"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ListFolders"));
    let log = daemon.log();
    assert!(
        !log.contains("panicked") && !log.contains("labpass"),
        "{log}"
    );
}

#[test]
fn without_a_daemon_easyncctl_says_so() {
    let dir = common::setup::TempDir::new("dbusnone");
    let bus = PrivateBus::start(&dir.0, Kind::Session);
    let out = ctl(&bus, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("easyncd is not running"), "{err}");
}

/// The gid of the group "users" (Debian's base-passwd gives it 100).
fn users_gid() -> u32 {
    nix::unistd::Group::from_name("users")
        .unwrap()
        .expect("the group `users` exists")
        .gid
        .as_raw()
}

fn as_user(bus: &PrivateBus, groups: Option<u32>, args: &[&str]) -> Output {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534"]);
    match groups {
        Some(g) => command.arg(format!("--groups={g}")),
        None => command.arg("--clear-groups"),
    };
    command
        .arg(EASYNCCTL)
        .args(["--bus", "system"])
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .expect("setpriv (util-linux) runs")
}

#[test]
fn on_a_system_bus_the_shipped_policy_lets_root_and_the_group_in_and_nobody_else() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (a second uid)");
        return;
    }
    let lab = Lab::start(Lab::default_config());
    let setup = lab_account(&lab, "dbussys", PUSH);
    // The shipped policy, with its group set to one that exists here.
    let policy_dir = setup.dir.0.join("system.d");
    std::fs::create_dir_all(&policy_dir).unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("board/dbus/org.easync.conf"),
    )
    .unwrap();
    assert!(shipped.contains("group=\"easync\""));
    std::fs::write(
        policy_dir.join("org.easync.conf"),
        shipped.replace("group=\"easync\"", "group=\"users\""),
    )
    .unwrap();
    // The other user must reach the socket and run the binary.
    std::fs::set_permissions(&setup.dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bus = PrivateBus::start(
        &setup.dir.0,
        Kind::System {
            policy_dir: &policy_dir,
        },
    );
    std::fs::set_permissions(&bus.socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let daemon = Daemon::start(&setup, &bus, true);
    let rt = runtime();
    rt.block_on(async {
        let connection = connect(&bus).await;
        let p = proxy(&connection).await;
        wait_state(&p, &daemon, "listening", 60).await;
    });

    // Root (this test) may call.
    let root = Command::new(EASYNCCTL)
        .args(["--bus", "system", "--json", "status"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    assert!(
        root.status.success(),
        "{}",
        String::from_utf8_lossy(&root.stderr)
    );

    // Another user may not: every method and property read is refused.
    for args in [&["status"][..], &["sync", "--no-wait"], &["unlock", "ok"]] {
        let out = as_user(&bus, None, args);
        assert_eq!(out.status.code(), Some(1), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("access denied by the bus policy"),
            "{args:?}: {err}"
        );
    }
    // Every member, called raw with dbus-send: the bus refuses each before easyncd sees
    // it (easyncd itself would answer InvalidArgs for a call without its arguments).
    let dbus_send = |uid: Option<u32>, member: &str| {
        let mut command = Command::new("setpriv");
        match uid {
            Some(uid) => command.args([format!("--reuid={uid}"), format!("--regid={uid}")]),
            None => command.args(["--reuid=0".to_string(), "--regid=0".to_string()]),
        };
        command
            .arg("--clear-groups")
            .args([
                "dbus-send",
                "--system",
                "--print-reply",
                "--dest=org.easync",
            ])
            .arg(ACCOUNT_PATH)
            .arg(member)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .output()
            .expect("dbus-send (dbus-bin) runs")
    };
    let mut members: Vec<String> = easync::dbus::service::METHODS
        .iter()
        .map(|m| format!("{ACCOUNT_INTERFACE}.{}", m.name))
        .collect();
    members.extend(
        [
            "org.freedesktop.DBus.Properties.GetAll",
            "org.freedesktop.DBus.Properties.Get",
            "org.freedesktop.DBus.Introspectable.Introspect",
            "org.freedesktop.DBus.Peer.Ping",
        ]
        .map(String::from),
    );
    assert_eq!(members.len(), 15);
    for member in &members {
        let out = dbus_send(Some(65534), member);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("org.freedesktop.DBus.Error.AccessDenied"),
            "{member} must be refused to uid 65534: {err}"
        );
    }
    // The same raw call works for root, so the refusals above are the policy's.
    let out = dbus_send(None, &format!("{ACCOUNT_INTERFACE}.WipeStatus"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Unless it is in the policy's group.
    let member = as_user(&bus, Some(users_gid()), &["--json", "status"]);
    assert!(
        member.status.success(),
        "a member of the group may call: {}",
        String::from_utf8_lossy(&member.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&member.stdout).unwrap();
    assert_eq!(status["state"], "listening");
    assert!(!daemon.log().contains("panicked"));
}

/// Enroll's options dictionary.
fn enroll_options(pairs: &[(&str, &str)]) -> HashMap<String, OwnedValue> {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                OwnedValue::from(zbus::zvariant::Str::from(v.to_string())),
            )
        })
        .collect()
}

#[test]
fn enroll_checks_the_password_keeps_it_and_takes_the_server_autodiscover_missed() {
    let lab = Lab::start(Lab::default_config());
    let url = lab.handle.http_url().unwrap();
    // A wrong configured password, and no server: the address's domain has none to find.
    let setup = Setup::new(
        &url,
        lab.handle.user(),
        "not-the-password",
        None,
        "dbusenroll",
        PUSH,
    );
    let config = std::fs::read_to_string(&setup.config_path).unwrap();
    let config: String = config
        .lines()
        .filter(|l| !l.starts_with("server = "))
        .map(|l| {
            if l.starts_with("email = ") {
                "email = \"lab@lab.invalid\"\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&setup.config_path, config).unwrap();
    let stored = setup.data().join("credentials/password");
    let bus = PrivateBus::start(&setup.dir.0, Kind::Session);
    let daemon = Daemon::start(&setup, &bus, false);
    let rt = runtime();
    rt.block_on(async {
        let connection = connect(&bus).await;
        let p = proxy(&connection).await;
        let email: String = wait_property(
            &p,
            &daemon,
            "Email",
            Duration::from_secs(20),
            |_: &String| true,
        )
        .await;
        assert_eq!(email, "lab@lab.invalid");
        let method: String = p.get_property("AuthMethod").await.unwrap();
        assert_eq!(method, "password");
        // A password account needs one.
        let e = p
            .call::<_, _, (String, String)>("Enroll", &(enroll_options(&[]),))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("InvalidArgs") && e.contains("password"), "{e}");
        // Autodiscover finds nothing: NoServer, so the UI asks for the server.
        let e = p
            .call::<_, _, (String, String)>(
                "Enroll",
                &(enroll_options(&[("password", "labpass")]),),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("NoServer"), "{e}\n{}", daemon.log());
        assert!(!stored.exists(), "nothing kept after a failure");
        // The right server with a wrong password: AuthFailed, nothing kept.
        let e = p
            .call::<_, _, (String, String)>(
                "Enroll",
                &(enroll_options(&[
                    ("password", "still-wrong"),
                    ("server", &url),
                ]),),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("AuthFailed"), "{e}\n{}", daemon.log());
        assert!(!stored.exists());
        assert!(
            !setup.data().join("state/server_url").exists(),
            "the server given is forgotten"
        );
        // Both right: enrolled, kept, syncing.
        let (server, version): (String, String) = p
            .call(
                "Enroll",
                &(enroll_options(&[("password", "labpass"), ("server", &url)]),),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
        assert_eq!((server.as_str(), version.as_str()), (url.as_str(), "16.1"));
        let mode = std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&stored).unwrap(), "labpass");
        wait_state(&p, &daemon, "listening", 60).await;
    });
    // easyncctl enroll with the password on standard input (a re-enrollment).
    let out = enroll_from_stdin(&bus, "labpass");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["enrolled"], "lab@lab.invalid");
    let log = daemon.log();
    assert!(
        !log.contains("labpass") && !log.contains("still-wrong"),
        "{log}"
    );
    drop(daemon);
    // After a restart the kept password and server are used (the configured one is wrong).
    let daemon = Daemon::start(&setup, &bus, false);
    rt.block_on(async {
        let connection = connect(&bus).await;
        let p = proxy(&connection).await;
        wait_state(&p, &daemon, "listening", 60).await;
    });
}

#[test]
fn an_oauth_account_signals_its_device_code_and_enrolls_without_a_password() {
    let mut config = easync::lab::Config {
        items: 4,
        ..Lab::default_config()
    };
    config.oauth.interval = 1;
    let lab = Lab::start(config);
    let dir = common::setup::TempDir::new("dbusoauth");
    let config_path = dir.0.join("easync.toml");
    std::fs::write(
        &config_path,
        format!(
            "[account]\nemail = {:?}\nserver = {:?}\n\n[account.oauth]\nclient_id = \"easync-lab-client\"\n\
             device_authorization_endpoint = {:?}\ntoken_endpoint = {:?}\n\n\
             [tls]\nca_file = {:?}\n\n[storage]\ndata_dir = {:?}\n\n[device]\ndevice_id = {:?}\n\n{PUSH}",
            lab.handle.user(),
            lab.handle.https_url().unwrap(),
            lab.handle.oauth_device_url().unwrap(),
            lab.handle.oauth_token_url().unwrap(),
            lab.ca_file.display().to_string(),
            dir.0.join("data").display().to_string(),
            common::client::device_id("dbusoauth"),
        ),
    )
    .unwrap();
    let bus = PrivateBus::start(&dir.0, Kind::Session);
    let rt = runtime();
    rt.block_on(async {
        use zbus::export::futures_core::Stream;
        let connection = connect(&bus).await;
        // Listen before the daemon starts: its first cycle asks for the sign-in at once.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(ACCOUNT_INTERFACE)
            .unwrap()
            .member("DeviceCodeRequired")
            .unwrap()
            .build();
        let mut codes = zbus::MessageStream::for_match_rule(rule, &connection, None)
            .await
            .unwrap();
        let log = dir.0.join("easyncd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_easyncd"))
            .arg("--config")
            .arg(&config_path)
            .args(["-vv", "--bus", "session"])
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let message = tokio::time::timeout(
            Duration::from_secs(30),
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut codes).poll_next(cx)),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no DeviceCodeRequired\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
        .unwrap()
        .unwrap();
        let (uri, code, expires): (String, String, u64) = message.body().deserialize().unwrap();
        assert!(uri.contains("/oauth2/verify") && !code.is_empty() && expires > 0);
        let p = proxy(&connection).await;
        let state: String = p.get_property("State").await.unwrap();
        assert_eq!(state, "signing-in");
        let detail: String = p.get_property("StateDetail").await.unwrap();
        assert!(detail.contains(&code), "{detail}");
        lab.handle.oauth_approve(&code).unwrap();
        let daemon = Daemon { child, log };
        wait_state(&p, &daemon, "listening", 60).await;
        let method: String = p.get_property("AuthMethod").await.unwrap();
        assert_eq!(method, "oauth");
        // Signed in: Enroll confirms at once; a password makes no sense here.
        let (_, version): (String, String) = p
            .call("Enroll", &(enroll_options(&[]),))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
        assert_eq!(version, "16.1");
        let e = p
            .call::<_, _, (String, String)>("Enroll", &(enroll_options(&[("password", "x")]),))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("InvalidArgs") && e.contains("OAuth"), "{e}");

        // The tokens (the lab's "lab-access-…" and "lab-refresh-…") are kept only in the
        // 0600 token file: not in the log, other files of the data directory or the
        // properties.
        let kept = dir
            .0
            .join("data/credentials")
            .join(easync::store::credentials::OAUTH_TOKENS_FILE);
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let properties = format!("{:?}", all_properties(&connection).await.unwrap());
        for token in ["lab-access-", "lab-refresh-"] {
            let everywhere =
                files_containing(&dir.0.join("data"), token.as_bytes(), Path::new("/"));
            assert_eq!(everywhere, vec![kept.clone()], "{token}");
            assert!(!daemon.log().contains(token), "{token} in the log");
            assert!(!properties.contains(token), "{token} in {properties}");
        }
        drop(daemon);
    });
}

#[test]
fn failed_unlocks_reported_over_dbus_wipe_the_device_at_the_policys_limit() {
    let lab = Lab::start(Lab::default_config());
    let limit: u32 = easync::lab::default_policy()
        .iter()
        .find(|(k, _)| k == "MaxDevicePasswordFailedAttempts")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap();
    let scratch = common::setup::TempDir::new("dbusunlocktarget");
    let target = scratch.0.join("userdata");
    std::fs::create_dir_all(target.join("photos")).unwrap();
    std::fs::write(target.join("photos/secret.jpg"), b"private").unwrap();
    let setup = lab_account(
        &lab,
        "dbusunlock",
        &format!(
            "{PUSH}[wipe]\nmode = \"directory\"\ntarget = {:?}\n",
            target.display().to_string()
        ),
    );
    let bus = PrivateBus::start(&setup.dir.0, Kind::Session);
    let rt = runtime();
    let start = || {
        let daemon = Daemon::start(&setup, &bus, false);
        rt.block_on(async {
            let connection = connect(&bus).await;
            let p = proxy(&connection).await;
            wait_state(&p, &daemon, "listening", 60).await;
        });
        daemon
    };
    let mut daemon = Some(start());
    // Counted, reset by a success, counted again across a restart of the daemon.
    let one = ctl_json(&bus, &["unlock", "failed"]);
    assert_eq!(
        (one["failures"].as_u64(), one["limit"].as_u64()),
        (Some(1), Some(u64::from(limit)))
    );
    assert_eq!(one["wiping"], false);
    ctl_json(&bus, &["unlock", "ok"]);
    for n in 1..limit {
        let answer = ctl_json(&bus, &["unlock", "failed"]);
        assert_eq!(answer["failures"].as_u64(), Some(u64::from(n)));
        assert_eq!(answer["wiping"], false);
        if n == 2 {
            // The count is kept across a restart of the daemon.
            daemon.take();
            daemon = Some(start());
        }
    }
    assert!(
        target.join("photos/secret.jpg").exists(),
        "nothing wiped below the limit"
    );
    // The last one reaches the limit: the full wipe runs at once.
    let daemon = daemon.take().unwrap();
    rt.block_on(async {
        use zbus::export::futures_core::Stream;
        let connection = connect(&bus).await;
        let p = proxy(&connection).await;
        let mut completed = p.receive_signal("WipeCompleted").await.unwrap();
        let last: (u32, u32, bool) = p.call("ReportUnlockFailure", &()).await.unwrap();
        assert_eq!(last, (limit, limit, true));
        let signal = tokio::time::timeout(
            Duration::from_secs(60),
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut completed).poll_next(cx)),
        )
        .await
        .unwrap_or_else(|_| panic!("no WipeCompleted\n{}", daemon.log()))
        .unwrap();
        let account_only: bool = signal.body().deserialize().unwrap();
        assert!(!account_only);
        let state = wait_state(&p, &daemon, "wiped", 10).await;
        assert_eq!(state, "wiped");
    });
    assert!(!target.join("photos").exists(), "the target was wiped");
    let wipe = ctl_json(&bus, &["wipe-status"]);
    assert_eq!(
        (wipe["kind"].as_str(), wipe["phase"].as_str()),
        (Some("full"), Some("completed"))
    );
}

fn device_requests(lab: &Lab, device_id: &str) -> u64 {
    lab.device(device_id)["requests"].as_u64().unwrap()
}

/// Mail files of the inbox on disk.
/// Waits up to 30 s for a mail containing `text` in the inbox of `setup`.
fn wait_for_mail(setup: &Setup, daemon: &Daemon, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !inbox_files(&setup.data()).iter().any(|m| m.contains(text)) {
        assert!(
            Instant::now() < deadline,
            "no mail {text:?}: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn inbox_files(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(data.join("mail/Inbox").join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    out
}

#[test]
fn while_roaming_under_a_manual_sync_policy_only_asked_syncs_go_out() {
    let lab = Lab::start(Lab::default_config());
    let mut policy = easync::lab::default_policy();
    policy.push(("RequireManualSyncWhenRoaming".into(), "1".into()));
    lab.handle.set_policy(policy).unwrap();
    let dir = common::setup::TempDir::new("dbusroamingflag");
    let roaming = dir.0.join("run/roaming");
    // A lock-screen hook that applies its elements, so the verdict shows the roaming rule.
    let hook = lock_hook_applying_everything(&dir.0);
    let setup = lab_account(
        &lab,
        "dbusroaming",
        &format!(
            "{PUSH}[hooks]\ndevice_lock = {:?}\n",
            hook.display().to_string()
        ),
    );
    // The roaming signal goes into [device].
    let text = std::fs::read_to_string(&setup.config_path)
        .unwrap()
        .replace(
            "[device]\n",
            &format!(
                "[device]\nroaming_file = {:?}\n",
                roaming.display().to_string()
            ),
        );
    std::fs::write(&setup.config_path, text).unwrap();
    let bus = PrivateBus::start(&setup.dir.0, Kind::Session);
    let rt = runtime();
    let daemon = Daemon::start(&setup, &bus, false);
    rt.block_on(async {
        let connection = connect(&bus).await;
        let p = proxy(&connection).await;
        wait_state(&p, &daemon, "listening", 60).await;
        // The hook applies the lock rules and easync the roaming rule: fully compliant.
        let (status, missing): (String, Vec<String>) = p.get_property("Compliance").await.unwrap();
        assert_eq!((status.as_str(), missing), ("compliant", vec![]));

        p.call::<_, _, ()>("SetRoaming", &(true,)).await.unwrap();
        assert!(roaming.exists());
        wait_state(&p, &daemon, "roaming", 20).await;
        // Nothing goes out by itself: a new mail is not fetched, no request is sent.
        let before = device_requests(&lab, &setup.device_id);
        lab.handle
            .add_mail(folder::INBOX, "while roaming", "waits for a manual sync")
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            device_requests(&lab, &setup.device_id),
            before,
            "no request while roaming"
        );
        assert!(
            !inbox_files(&setup.data())
                .iter()
                .any(|m| m.contains("while roaming"))
        );
        // A sync asked for runs, then the account holds again.
        let last: u64 = p.get_property("LastSync").await.unwrap();
        p.call::<_, _, ()>("SyncNow", &()).await.unwrap();
        wait_property(
            &p,
            &daemon,
            "LastSync",
            Duration::from_secs(30),
            |t: &u64| *t >= last,
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !inbox_files(&setup.data())
            .iter()
            .any(|m| m.contains("while roaming"))
        {
            assert!(
                Instant::now() < deadline,
                "the asked sync brought the mail\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_state(&p, &daemon, "roaming", 20).await;
    });
    // A restart while roaming holds from the start (the policy is kept on disk).
    drop(daemon);
    let before = device_requests(&lab, &setup.device_id);
    let daemon = Daemon::start(&setup, &bus, false);
    rt.block_on(async {
        let connection = connect(&bus).await;
        let p = proxy(&connection).await;
        wait_state(&p, &daemon, "roaming", 20).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            device_requests(&lab, &setup.device_id),
            before,
            "no request at start"
        );
        // Roaming ends: push resumes.
        p.call::<_, _, ()>("SetRoaming", &(false,)).await.unwrap();
        assert!(!roaming.exists());
        wait_state(&p, &daemon, "listening", 30).await;
    });
    let off = ctl(&bus, &["roaming", "on"]);
    assert!(
        off.status.success(),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    assert!(roaming.exists());
}

#[test]
fn a_refusal_of_partial_compliance_shows_blocked_by_policy_with_the_missing_elements() {
    let lab = Lab::start(Lab::default_config());
    let mut policy = easync::lab::default_policy();
    policy.retain(|(k, _)| k != "AllowCamera");
    policy.push(("AllowCamera".into(), "0".into()));
    lab.handle.set_policy(policy).unwrap();
    lab.handle.set_require_full_compliance(true);
    let dir = common::setup::TempDir::new("dbusblockedhook");
    // The lock screen is handled; nothing disables the camera: a partial acknowledgement.
    let hook = lock_hook_applying_everything(&dir.0);
    let setup = lab_account(
        &lab,
        "dbusblocked",
        &format!(
            "{PUSH}[hooks]\ndevice_lock = {:?}\n",
            hook.display().to_string()
        ),
    );
    let bus = PrivateBus::start(&setup.dir.0, Kind::Session);
    let daemon = Daemon::start(&setup, &bus, false);
    let rt = runtime();
    rt.block_on(async {
        let connection = connect(&bus).await;
        let p = proxy(&connection).await;
        wait_state(&p, &daemon, "blocked-by-policy", 60).await;
        let (status, missing): (String, Vec<String>) = p.get_property("Compliance").await.unwrap();
        assert_eq!(
            (status.as_str(), missing),
            ("blocked", vec!["AllowCamera".to_string()])
        );
        let detail: String = p.get_property("StateDetail").await.unwrap();
        assert!(detail.contains("AllowCamera"), "{detail}");
    });
    let status = ctl_json(&bus, &["status"]);
    assert_eq!(status["state"], "blocked-by-policy");
    assert_eq!(status["compliance"]["missing"][0], "AllowCamera");
    let text = ctl(&bus, &["policy"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("NOT APPLIED  AllowCamera = 0: the camera is disabled"),
        "{text}"
    );
}

/// The D-Bus error name of a failed call ("" when the call worked).
fn error_of(result: zbus::Result<zbus::message::Message>) -> String {
    match result {
        Ok(_) => String::new(),
        Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn bad_calls_get_d_bus_errors_and_losing_the_bus_leaves_easyncd_syncing() {
    let lab = Lab::start(Lab::default_config());
    let setup = lab_account(&lab, "dbuserrors", PUSH);
    let bus = PrivateBus::start(&setup.dir.0, Kind::Session);
    let daemon = Daemon::start(&setup, &bus, false);
    let rt = runtime();
    rt.block_on(async {
        let c = connect(&bus).await;
        let p = proxy(&c).await;
        wait_state(&p, &daemon, "listening", 60).await;
        let err = |name: &str| format!("org.freedesktop.DBus.Error.{name}");

        // Arguments of the wrong types, methods and objects that do not exist.
        let account = Some(ACCOUNT_INTERFACE);
        let r = c
            .call_method(
                Some(BUS_NAME),
                ACCOUNT_PATH,
                account,
                "SetFolderEnabled",
                &(7u32,),
            )
            .await;
        assert_eq!(error_of(r), err("InvalidArgs"));
        // Calls without arguments: what each is answered.
        for (path, iface, member, expected) in [
            (ACCOUNT_PATH, ACCOUNT_INTERFACE, "Explode", "UnknownMethod"),
            (
                "/org/easync/account9",
                ACCOUNT_INTERFACE,
                "SyncNow",
                "UnknownObject",
            ),
            (
                ACCOUNT_PATH,
                "org.example.Nope",
                "SyncNow",
                "UnknownInterface",
            ),
            (ACCOUNT_PATH, "org.freedesktop.DBus.Peer", "Ping", ""),
            ("/org/easync", "org.freedesktop.DBus.Peer", "Ping", ""),
        ] {
            let r = c
                .call_method(Some(BUS_NAME), path, Some(iface), member, &())
                .await;
            let want = if expected.is_empty() {
                String::new()
            } else {
                err(expected)
            };
            assert_eq!(error_of(r), want, "{path} {iface}.{member}");
        }
        let properties = Some("org.freedesktop.DBus.Properties");
        let r = c
            .call_method(
                Some(BUS_NAME),
                ACCOUNT_PATH,
                properties,
                "Get",
                &(ACCOUNT_INTERFACE, "Password"),
            )
            .await;
        assert_eq!(error_of(r), err("UnknownProperty"));
        let value = zbus::zvariant::Value::from("stopped");
        let r = c
            .call_method(
                Some(BUS_NAME),
                ACCOUNT_PATH,
                properties,
                "Set",
                &(ACCOUNT_INTERFACE, "State", value),
            )
            .await;
        assert_eq!(error_of(r), err("PropertyReadOnly"));
        let r = c
            .call_method(
                Some(BUS_NAME),
                ACCOUNT_PATH,
                Some(ACCOUNT_INTERFACE),
                "Enroll",
                &("password",),
            )
            .await;
        assert_eq!(error_of(r), err("InvalidArgs"));

        // Introspection of the nodes above the account.
        for (node, child) in [
            ("/", "org"),
            ("/org", "easync"),
            ("/org/easync", "account0"),
        ] {
            let reply = c
                .call_method(
                    Some(BUS_NAME),
                    node,
                    Some("org.freedesktop.DBus.Introspectable"),
                    "Introspect",
                    &(),
                )
                .await
                .unwrap();
            let xml: String = reply.body().deserialize().unwrap();
            assert!(
                xml.contains(&format!("<node name=\"{child}\"/>")),
                "{node}: {xml}"
            );
        }

        // Many calls at once are all answered, and the service still works afterwards.
        let mut calls = Vec::new();
        for _ in 0..64 {
            let c = c.clone();
            calls.push(tokio::spawn(async move {
                all_properties(&c).await.map(|all| all.len())
            }));
        }
        for call in calls {
            assert_eq!(call.await.unwrap().expect("GetAll answered"), 8);
        }
    });
    let status = ctl_json(&bus, &["--json", "status"]);
    assert_eq!(status["state"], "listening", "{status}");

    // The bus going away ends the service, not the daemon: push and sync go on.
    drop(bus);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.log().contains("the connection to the bus ended") {
        assert!(Instant::now() < deadline, "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.handle
        .add_mail(folder::INBOX, "after the bus", "still pushed")
        .unwrap();
    wait_for_mail(&setup, &daemon, "after the bus");
    let mut daemon = daemon;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "easyncd exited with the bus: {}",
        daemon.log()
    );
}

/// Every file below `dir` whose bytes contain `needle`, but `except`.
fn files_containing(dir: &Path, needle: &[u8], except: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && path != except {
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

#[test]
fn the_password_shows_nowhere_but_its_own_0600_file() {
    const SECRET: &str = "Zq7-known-Secret-91";
    let mut config = Lab::default_config();
    config.users[0].1 = SECRET.into();
    let lab = Lab::start(config);
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), SECRET, None, "dbussecret", PUSH);
    let bus = PrivateBus::start(&setup.dir.0, Kind::Session);
    let daemon = Daemon::start_logging(&setup, &bus, false, "-vv");
    let rt = runtime();
    let properties = rt.block_on(async {
        let c = connect(&bus).await;
        let p = proxy(&c).await;
        wait_state(&p, &daemon, "listening", 60).await;
        format!("{:?}", all_properties(&c).await.unwrap())
    });
    assert!(properties.contains("listening") && !properties.contains(SECRET));

    // Enrolment over D-Bus keeps the password; a push, a sent mail and the client's views.
    let enrolled = enroll_from_stdin(&bus, SECRET);
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    lab.handle
        .add_mail(folder::INBOX, "secret scan", "pushed")
        .unwrap();
    wait_for_mail(&setup, &daemon, "secret scan");
    let message = setup.dir.0.join("outgoing.eml");
    std::fs::write(
        &message,
        "From: lab@example.com\r\nTo: x@example.com\r\nSubject: out\r\n\r\nbody\r\n",
    )
    .unwrap();
    let mut outputs = vec![enrolled];
    for args in [
        &["send", message.to_str().unwrap()][..],
        &["--json", "status"],
        &["--json", "policy"],
        &["--json", "folders"],
        &["--json", "sync"],
    ] {
        let out = ctl(&bus, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(out);
    }

    // The kept password: 0600, and the only file of the data directory holding it.
    let kept = setup.data().join("credentials").join("password");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), SECRET);
    // The scan finds what is there (the kept file itself) ...
    let everywhere = files_containing(&setup.data(), SECRET.as_bytes(), Path::new("/"));
    assert_eq!(everywhere, vec![kept.clone()]);
    // ... and nothing else holds the password.
    let holding = files_containing(&setup.data(), SECRET.as_bytes(), &kept);
    assert!(holding.is_empty(), "the password leaked into {holding:?}");
    let log = daemon.log();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "a verbose log: {log}"
    );
    assert!(!log.contains(SECRET), "the password is in the log");
    for out in &outputs {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(SECRET));
    }
}
