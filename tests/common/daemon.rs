//! Running the `easyncd` binary against an in-process lab, and comparing what it stored with
//! what the lab holds: a config file with its 0600 password file and data directory, the
//! lab's admin API over plain HTTP, an inventory of the items on each side keyed by a field
//! every seeded item has unique, and a seeded random number generator.
//!
//! Used by the crash test (`tests/crash.rs`) and the daemon benchmark (`benches/daemon.rs`,
//! which includes this file by path), so it depends on nothing else under `tests/common`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use easync::lab::Handle;
use serde_json::Value;

/// The password of the lab's first user.
pub const LAB_PASSWORD: &str = "labpass";

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique_name(tag));
        std::fs::create_dir_all(&dir).expect("temporary directory created");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // tests/run.sh keeps them for the secrets sweep (tests/secrets-sweep.sh).
        if std::env::var_os("EASYNC_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A name unique to this process and call (also a valid DeviceId: letters and digits).
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}{}x{}x{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A configuration file for the lab's first user over plain HTTP, its password file and a
/// data directory, all in one temporary directory.
pub struct DaemonSetup {
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub device_id: String,
}

impl DaemonSetup {
    /// `extra` is appended to the configuration (e.g. a `[push]` table).
    pub fn new(handle: &Handle, tag: &str, extra: &str) -> DaemonSetup {
        let dir = TempDir::new(&format!("easync-{tag}-"));
        let password_file = dir.0.join("password");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&password_file)
            .and_then(|mut f| f.write_all(LAB_PASSWORD.as_bytes()))
            .expect("password file written");
        let user = handle.user();
        let email = if user.contains('@') {
            user.to_string()
        } else {
            format!("{user}@example.com")
        };
        let url = handle.http_url().expect("the lab listens on HTTP");
        let device_id = unique_name(tag).replace('x', "");
        let text = format!(
            "[account]\nemail = {email:?}\nuser = {user:?}\npassword_file = {:?}\nserver = {url:?}\n\n\
             [tls]\nallow_insecure_http = true\n\n[storage]\ndata_dir = {:?}\n\n\
             [sync]\nmail_age = \"all\"\ncalendar_age = \"all\"\n\n\
             [device]\ndevice_id = {device_id:?}\n\n{extra}",
            password_file.display().to_string(),
            dir.0.join("data").display().to_string(),
        );
        let config_path = dir.0.join("easync.toml");
        std::fs::write(&config_path, text).expect("configuration written");
        DaemonSetup {
            dir,
            config_path,
            device_id,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    /// `bin --config <file> <args>`, nothing else set up.
    pub fn command(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.arg("--config").arg(&self.config_path).args(args);
        c
    }
}

/// One request to the lab's admin API (plain HTTP, `Connection: close`): status and JSON.
pub fn admin(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(addr).expect("the lab's admin listener accepts");
    let _ = s.set_nodelay(true);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("admin request sent");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("admin response read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status");
    let json = serde_json::from_slice(&raw[split + 4..]).unwrap_or(Value::Null);
    (status, json)
}

/// The lab device record of `device_id` (None before its first request).
pub fn lab_device(handle: &Handle, device_id: &str) -> Option<Value> {
    handle.state()["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["device_id"] == device_id).cloned())
}

/// Items keyed by `<class dir>/<folder name>` (the store's folder directory), each a count
/// per item key.
pub type Inventory = BTreeMap<String, BTreeMap<String, usize>>;

/// The top directory of the store for a lab class name (`Email` ...).
fn class_dir(class: &str) -> Option<&'static str> {
    Some(match class {
        "Email" => "mail",
        "Contacts" => "contacts",
        "Calendar" => "calendar",
        "Tasks" => "tasks",
        "Notes" => "notes",
        _ => return None,
    })
}

/// The e-mail address ending in `@example.net` in `text` (what makes a seeded contact unique).
fn example_net_address(text: &str) -> Option<String> {
    let at = text.find("@example.net")?;
    let start = text[..at]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .map_or(0, |i| i + 1);
    Some(text[start..at + "@example.net".len()].to_string())
}

/// The unique key of a lab item from its properties: the Subject of mail, tasks and notes,
/// the Location of events (`Room N`), the address of contacts.
fn server_item_key(class: &str, props: &Value) -> Option<String> {
    let text = |name: &str| props[name].as_str().map(str::to_string);
    match class {
        "Email" | "Tasks" | "Notes" => text("Subject"),
        "Calendar" => text("Location"),
        "Contacts" => example_net_address(props["Email1Address"].as_str()?),
        _ => None,
    }
}

/// The value of the first header line `name:` of a mail or note (before the blank line).
fn header_value(text: &str, name: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            return None;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.eq_ignore_ascii_case(name) {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

/// The value of the first iCalendar property `name` (parameters allowed).
fn ical_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim_end_matches('\r');
        let (head, value) = line.split_once(':')?;
        let prop = head.split(';').next()?;
        prop.eq_ignore_ascii_case(name).then(|| value.to_string())
    })
}

/// The unique key of a stored file (the same field as [`server_item_key`]).
pub fn file_key(class_dir: &str, bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    match class_dir {
        "mail" | "notes" => header_value(&text, "Subject"),
        "tasks" => ical_value(&text, "SUMMARY"),
        "calendar" => ical_value(&text, "LOCATION"),
        "contacts" => example_net_address(&text),
        _ => None,
    }
}

/// Every item of the lab (admin `GET /items`).
pub fn lab_items(handle: &Handle) -> Vec<Value> {
    let (status, json) = admin(
        handle.admin_addr().expect("admin listener"),
        "GET",
        "/items",
        None,
    );
    assert_eq!(status, 200, "GET /items: {json}");
    json["items"].as_array().cloned().unwrap_or_default()
}

/// A test's random seed: the environment variable `var` when set, else the clock.
pub fn seed_from(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// What the lab holds for its first user, from the admin API. Items without a key are
/// counted under the key `"<no key>"`.
pub fn server_inventory(handle: &Handle) -> Inventory {
    let mut names = BTreeMap::new();
    for f in handle.state()["folders"].as_array().expect("lab folders") {
        if let (Some(id), Some(name)) = (f["server_id"].as_str(), f["name"].as_str()) {
            names.insert(id.to_string(), name.to_string());
        }
    }
    let mut out = Inventory::new();
    for item in &lab_items(handle) {
        let class = item["class"].as_str().unwrap_or_default();
        let Some(dir) = class_dir(class) else {
            continue;
        };
        let folder = item["folder"].as_str().unwrap_or_default();
        let name = names.get(folder).cloned().unwrap_or_else(|| folder.into());
        let key = server_item_key(class, &item["props"]).unwrap_or_else(|| "<no key>".into());
        *out.entry(format!("{dir}/{name}"))
            .or_default()
            .entry(key)
            .or_default() += 1;
    }
    out
}

/// What the store holds: every item file (Maildir `cur/` and `new/`, vdir files) keyed like
/// [`server_inventory`]; files without a key count under `"<no key>: <path>"`, so that any
/// stray file shows up as a difference. Temporary files are not items (see
/// [`leftover_temp_files`]).
pub fn disk_inventory(data: &Path) -> Inventory {
    let mut out = Inventory::new();
    for (rel, bytes) in item_files(data) {
        let mut parts = rel.splitn(3, '/');
        let (Some(dir), Some(folder)) = (parts.next(), parts.next()) else {
            continue;
        };
        let key = file_key(dir, &bytes).unwrap_or_else(|| format!("<no key>: {rel}"));
        *out.entry(format!("{dir}/{folder}"))
            .or_default()
            .entry(key)
            .or_default() += 1;
    }
    out
}

/// Every item file under the class directories with its bytes, by path relative to `data`
/// (Maildir `tmp/` and hidden temporary files left out).
pub fn item_files(data: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (path, rel) in walk(data) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let in_tmp = rel.split('/').any(|p| p == "tmp");
        if rel.starts_with("state/") || in_tmp || is_temp_name(&name) {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&path) {
            out.insert(rel, bytes);
        }
    }
    out
}

/// How many item files the store holds (cheap enough to poll).
pub fn count_item_files(data: &Path) -> usize {
    walk(data)
        .iter()
        .filter(|(path, rel)| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            !rel.starts_with("state/")
                && !rel.split('/').any(|p| p == "tmp")
                && !is_temp_name(&name)
        })
        .count()
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Temporary files anywhere under `data`: anything in a Maildir `tmp/`, any `*.tmp`.
pub fn leftover_temp_files(data: &Path) -> Vec<String> {
    walk(data)
        .into_iter()
        .filter(|(path, rel)| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".tmp") || rel.split('/').rev().nth(1) == Some("tmp")
        })
        .map(|(_, rel)| rel)
        .collect()
}

/// Every regular file under `root` with its path relative to `root`.
fn walk(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => dirs.push(path),
                Ok(t) if t.is_file() => {
                    let rel = path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    out.push((path, rel));
                }
                _ => {}
            }
        }
    }
    out
}

/// The differences between two inventories, one line each (empty when equal).
pub fn inventory_differences(server: &Inventory, disk: &Inventory) -> Vec<String> {
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    let folders: std::collections::BTreeSet<&String> = server.keys().chain(disk.keys()).collect();
    for folder in folders {
        let s = server.get(folder).unwrap_or(&empty);
        let d = disk.get(folder).unwrap_or(&empty);
        let keys: std::collections::BTreeSet<&String> = s.keys().chain(d.keys()).collect();
        for key in keys {
            let (a, b) = (
                s.get(key).copied().unwrap_or(0),
                d.get(key).copied().unwrap_or(0),
            );
            if a != b {
                out.push(format!("{folder}: {key:?}: server {a}, disk {b}"));
            }
        }
    }
    out
}

/// The number of items in an inventory.
pub fn inventory_len(inventory: &Inventory) -> usize {
    inventory.values().flat_map(|m| m.values()).sum()
}

/// SplitMix64: a small seeded generator, so that a failing run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}
