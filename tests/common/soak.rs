//! The soak run: the long-running `easyncd` (`-v --bus none`, sd_notify on a socket of ours)
//! against an in-process lab for a set time while everything that happens to a field device
//! happens to it at random: faults of every kind the lab has switched on for short periods,
//! items added, changed and deleted on the server (mail, contacts, events, tasks, notes), the
//! same for contacts, tasks and notes made on the device, and `kill -9` at random moments
//! (then a fresh start). At the end the faults go off, the run waits for a quiet moment,
//! asks for syncs (SIGUSR1) until the store is in step (bounded), and compares the store with
//! the server item by item. [`SoakReport::print`] shows the figures.
//!
//! Time is compressed: the lab's [`easync::lab::Config::time_scale`] divides how long a Ping
//! waits, so the daemon keeps asking for MS-ASCMD heartbeats (60–3540 s) and adapts them as
//! on a real network while each one lasts a fraction of that, and `[sync] resync_interval` is
//! one (wall) minute, the daemon's hourly full cycle at a scale of 60. Simulated time is
//! defined as the wall time of the run plus, for every Ping that expired, what the daemon
//! believes it waited beyond what it really did: Σ heartbeat × (1 − 1/scale), the heartbeats
//! read from its `push: no changes within N s` log lines. Pings ended early by a change
//! count at wall time.
//!
//! Used by `benches/soak.rs` (the release binary, minutes to hours) and `tests/soak.rs` (a
//! short smoke run); like `hostile.rs` it needs `daemon.rs` and `hostile.rs` beside it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::daemon::{
    DaemonSetup, Inventory, Rng, disk_inventory, file_key, inventory_differences, inventory_len,
    item_files, lab_items, leftover_temp_files, server_inventory,
};
use super::hostile::{open_fds, status_kib};
use easync::lab::model::Prop;
use easync::lab::seed::folder;
use easync::lab::{self, Fault, FaultKind, Handle, NewItem};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The heartbeats the daemon may choose (seconds, MS-ASCMD's range) and where it starts.
const PUSH: &str = "[push]\nheartbeat_min = 60\nheartbeat_start = 120\nheartbeat_max = 3540\n";
/// The daemon's full cycle between pushes: an hour at a time scale of 60.
const RESYNC: &str = "resync_interval = \"1m\"\n";
/// How many requests a fault period may hit at most (it is switched off by time).
const FAULT_COUNT: u32 = 1_000_000;
/// The class folders of the lab, as the store names their directories.
const LOCAL_FOLDERS: [(&str, &str); 3] = [
    ("contacts", "Contacts"),
    ("tasks", "Tasks"),
    ("notes", "Notes"),
];
/// The status the daemon reports when it parks in a Ping.
const PARKED: &str = "STATUS=listening for changes (push)";

/// What a soak run does and for how long.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// How long the random part runs (the end phase comes on top).
    pub duration: Duration,
    pub seed: u64,
    /// The lab's time compression ([`lab::Config::time_scale`]).
    pub time_scale: u32,
    /// Items the lab is seeded with (its generator: that many mails, half as many contacts,
    /// a quarter as many events, tasks and notes).
    pub lab_items: usize,
    /// The run alternates busy phases (faults, changes) and calm ones (nothing happens, so
    /// Pings expire and the daemon's heartbeat grows, as on a quiet day): their lengths.
    pub busy_length: (Duration, Duration),
    pub calm_length: (Duration, Duration),
    /// Pause between two fault periods, and how long one lasts (uniform in each range).
    pub fault_gap: (Duration, Duration),
    pub fault_length: (Duration, Duration),
    /// Pause between two server changes, and between two local changes.
    pub server_change_gap: (Duration, Duration),
    pub local_change_gap: (Duration, Duration),
    /// Pause between two kills, which fall only in the first `kill_share_percent` of the
    /// run, so the last daemon is the longest-lived one and its descriptors tell of leaks.
    pub kill_gap: (Duration, Duration),
    pub kill_share_percent: u64,
    /// Quiet time after the faults go off, before the syncs that must bring it in step.
    pub quiet: Duration,
    /// How long the end phase may ask for syncs before the store counts as out of step.
    pub in_step_bound: Duration,
    /// Where to copy the daemon logs at the end (they are deleted with the run otherwise).
    pub keep_logs: Option<PathBuf>,
}

impl SoakConfig {
    /// A run of `duration` with the defaults of the soak bench.
    pub fn new(duration: Duration, seed: u64) -> SoakConfig {
        let s = Duration::from_secs;
        SoakConfig {
            duration,
            seed,
            time_scale: 60,
            lab_items: 40,
            busy_length: (s(15), s(45)),
            calm_length: (s(30), s(120)),
            fault_gap: (s(4), s(15)),
            fault_length: (s(2), s(10)),
            server_change_gap: (Duration::from_millis(500), s(5)),
            local_change_gap: (Duration::from_millis(500), s(6)),
            kill_gap: (s(10), s(60)),
            kill_share_percent: 70,
            quiet: s(3),
            in_step_bound: s(180),
            keep_logs: None,
        }
    }

    /// A short run for the test suite: a few faults, one or two kills, changes on both sides.
    pub fn smoke(seed: u64) -> SoakConfig {
        let s = Duration::from_secs;
        SoakConfig {
            lab_items: 12,
            busy_length: (s(5), s(8)),
            calm_length: (s(3), s(5)),
            fault_gap: (s(2), s(4)),
            fault_length: (s(1), s(3)),
            server_change_gap: (Duration::from_millis(300), s(2)),
            local_change_gap: (Duration::from_millis(300), s(2)),
            kill_gap: (s(5), s(9)),
            kill_share_percent: 60,
            quiet: s(2),
            in_step_bound: s(90),
            ..SoakConfig::new(s(22), seed)
        }
    }
}

/// What a soak run found.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub seed: u64,
    pub time_scale: u32,
    /// Wall time of the whole run, end phase included.
    pub wall: Duration,
    /// See the module documentation.
    pub simulated: Duration,
    /// Full cycles completed (`STATUS=synced`).
    pub syncs: usize,
    /// Pings answered with changes (`push: N folder(s) changed`), and Pings that expired.
    pub pushes: usize,
    pub expired_pings: usize,
    /// Calm phases (see [`SoakConfig::busy_length`]).
    pub calm_phases: usize,
    /// Fault periods, per kind, and the requests they hit in all.
    pub fault_periods: usize,
    pub faults_by_kind: BTreeMap<&'static str, usize>,
    pub faulty_answers: u64,
    pub server_changes: usize,
    /// Local contacts, tasks and notes made, changed and deleted.
    pub local_made: usize,
    pub local_changed: usize,
    pub local_deleted: usize,
    pub kills: usize,
    /// Daemon exits nobody asked for: how it ended and its last log lines.
    pub unexpected_exits: Vec<String>,
    /// Items on the server at the end, compared with the store.
    pub items_compared: usize,
    /// Every way the store and the server disagree at the end (empty when in step).
    pub mismatches: Vec<String>,
    /// From the first SIGUSR1 of the end phase to the store in step (None: never).
    pub in_step_after: Option<Duration>,
    pub leftover_temp_files: Vec<String>,
    /// Largest VmHWM of any daemon process, in KiB.
    pub peak_rss_kib: u64,
    /// Descriptors of the longest-lived daemon process, parked in a Ping after its first
    /// sync and at its last park, and how long it lived.
    pub fds: (usize, usize),
    pub fds_lifetime: Duration,
    pub processes: usize,
    /// Warnings and errors of the logs and the end of the last log, when something failed.
    pub log_excerpt: String,
    pub logs_kept: Option<PathBuf>,
}

impl SoakReport {
    /// The longest-lived daemon had more descriptors open at its last park than at its first.
    pub fn fds_grew(&self) -> bool {
        self.fds.1 > self.fds.0
    }

    /// No mismatch, no leak, no daemon death, no temporary file left, in step at the end.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
            && !self.fds_grew()
            && self.unexpected_exits.is_empty()
            && self.leftover_temp_files.is_empty()
            && self.in_step_after.is_some()
    }

    pub fn print(&self) {
        let hours = self.simulated.as_secs_f64() / 3600.0;
        println!("soak report (seed {})", self.seed);
        println!(
            "  wall time            {:.1} min (time scale {})",
            self.wall.as_secs_f64() / 60.0,
            self.time_scale
        );
        println!("  hours simulated      {hours:.2}");
        println!("  syncs (full cycles)  {}", self.syncs);
        println!(
            "  pushes               {} (Pings answered with changes; {} more expired)",
            self.pushes, self.expired_pings
        );
        let kinds: Vec<String> = self
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "  faults injected      {} periods, {} faulty answers ({})",
            self.fault_periods,
            self.faulty_answers,
            kinds.join(", ")
        );
        println!("  calm phases          {}", self.calm_phases);
        println!("  server changes       {}", self.server_changes);
        println!(
            "  local changes        {} made, {} changed, {} deleted",
            self.local_made, self.local_changed, self.local_deleted
        );
        println!(
            "  kill -9 restarts     {} ({} daemon processes)",
            self.kills, self.processes
        );
        println!("  unexpected exits     {}", self.unexpected_exits.len());
        println!(
            "  in step after        {}",
            self.in_step_after
                .map_or("never".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
        );
        println!("  items compared       {}", self.items_compared);
        println!("  mismatches           {}", self.mismatches.len());
        println!("  temporary files left {}", self.leftover_temp_files.len());
        println!(
            "  peak RSS             {} KiB ({:.1} MiB, max VmHWM of all processes)",
            self.peak_rss_kib,
            self.peak_rss_kib as f64 / 1024.0
        );
        println!(
            "  file descriptors     {} at the start, {} at the end (longest-lived process, {:.1} \
             min){}",
            self.fds.0,
            self.fds.1,
            self.fds_lifetime.as_secs_f64() / 60.0,
            if self.fds_grew() { "  GREW" } else { "" }
        );
        println!("  seed                 {}", self.seed);
        if let Some(dir) = &self.logs_kept {
            println!("  logs                 {}", dir.display());
        }
        for m in self.mismatches.iter().take(50) {
            println!("  mismatch: {m}");
        }
        for e in &self.unexpected_exits {
            println!("  unexpected exit: {e}");
        }
        for t in &self.leftover_temp_files {
            println!("  temporary file left: {t}");
        }
        if !self.passed() && !self.log_excerpt.is_empty() {
            println!("  log excerpt:\n{}", self.log_excerpt);
        }
        println!(
            "  verdict              {}",
            if self.passed() { "PASS" } else { "FAIL" }
        );
    }
}

/// A uniform pause within `range`.
fn pause(rng: &mut Rng, range: (Duration, Duration)) -> Duration {
    Duration::from_millis(rng.between(range.0.as_millis() as u64, range.1.as_millis() as u64))
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.between(0, items.len() as u64 - 1) as usize]
}

/// A fault for a random kind, aimed and sized so that a period of it stays short.
fn random_fault(rng: &mut Rng) -> Fault {
    use FaultKind as K;
    const KINDS: [FaultKind; 21] = [
        K::ServerError,
        K::Throttle,
        K::Reset,
        K::Truncate,
        K::TruncatedGzip,
        K::Garbage,
        K::CaptivePortal,
        K::Empty,
        K::Slow,
        K::Redirect,
        K::RetryWith,
        K::HugeString,
        K::HugeStringTable,
        K::DeepNesting,
        K::ManyAdds,
        K::HugeServerId,
        K::EndlessMore,
        K::PingLoop,
        K::SyncKeyReset,
        K::ManyFolders,
        K::Stall,
    ];
    let kind = pick(rng, &KINDS);
    let any = [None, Some("Sync"), Some("Ping"), Some("FolderSync")];
    let answered = [Some("Sync"), Some("Ping"), Some("FolderSync")];
    let mut fault = Fault {
        count: FAULT_COUNT,
        ..Fault::new(kind)
    };
    let command = match kind {
        K::Throttle => {
            // Short, and now and then in the past.
            fault.retry_after =
                Some(pick(rng, &["0", "1", "2", "3", "Thu, 01 Jan 2026 00:00:00 GMT"]).to_string());
            pick(rng, &any)
        }
        K::Slow => {
            fault.delay_ms = Some(rng.between(200, 3000));
            pick(rng, &any)
        }
        K::Stall => {
            fault.delay_ms = Some(rng.between(1000, 4000));
            pick(rng, &answered)
        }
        K::ManyFolders => {
            fault.size = Some(rng.between(50, 400));
            Some("FolderSync")
        }
        K::PingLoop => Some("Ping"),
        K::ManyAdds | K::HugeServerId | K::EndlessMore | K::SyncKeyReset => Some("Sync"),
        K::HugeString | K::HugeStringTable | K::DeepNesting => pick(rng, &answered),
        _ => pick(rng, &any),
    };
    fault.command = command.map(str::to_string);
    fault
}

/// The server side of the run: the items it may change (the lab's own and the ones it
/// added, never the device's), and a counter that makes every key it writes unique.
struct ServerSide {
    ids: BTreeMap<&'static str, Vec<String>>,
    next: u64,
    changes: usize,
}

/// The lab classes the run changes, with their folder.
const SERVER_CLASSES: [(&str, &str); 5] = [
    ("Email", folder::INBOX),
    ("Contacts", folder::CONTACTS),
    ("Calendar", folder::CALENDAR),
    ("Tasks", folder::TASKS),
    ("Notes", folder::NOTES),
];

impl ServerSide {
    fn new(handle: &Handle) -> ServerSide {
        let mut ids: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for item in lab_items(handle) {
            let class = item["class"].as_str().unwrap_or_default();
            if let Some((c, _)) = SERVER_CLASSES.iter().find(|(c, _)| *c == class) {
                if let Some(id) = item["server_id"].as_str() {
                    ids.entry(c).or_default().push(id.to_string());
                }
            }
        }
        ServerSide {
            ids,
            next: 0,
            changes: 0,
        }
    }

    /// Props for a new item of `class` (or the changed key of one), keyed uniquely.
    fn props(&mut self, class: &str) -> Vec<Prop> {
        self.next += 1;
        let n = self.next;
        match class {
            "Contacts" => vec![
                Prop::text(
                    "Email1Address",
                    format!("\"Soak {n}\" <soak{n}@example.net>"),
                ),
                Prop::text("FileAs", format!("{n}, Soak")),
                Prop::text("FirstName", "Soak"),
                Prop::text("LastName", n.to_string()),
            ],
            "Calendar" => {
                let start = 1_800_000_000 + n as i64 * 3600;
                vec![
                    Prop::text("Timezone", lab::seed::utc_timezone()),
                    Prop::text("AllDayEvent", "0"),
                    Prop::text("BusyStatus", "2"),
                    Prop::text("DtStamp", lab::model::compact_time(start)),
                    Prop::text("StartTime", lab::model::compact_time(start)),
                    Prop::text("EndTime", lab::model::compact_time(start + 1800)),
                    Prop::text("Location", format!("Soak room {n}")),
                    Prop::text("Subject", format!("Soak meeting {n}")),
                    Prop::text("UID", format!("soak-event-{n}@easync-lab.test")),
                ]
            }
            "Tasks" => vec![
                Prop::text("Subject", format!("soak task {n}")),
                Prop::text("Complete", "0"),
                Prop::text("Importance", "1"),
                Prop::text("Sensitivity", "0"),
            ],
            _ => vec![
                Prop::text("Subject", format!("soak note {n}")),
                Prop::text("MessageClass", "IPM.StickyNote"),
            ],
        }
    }

    /// One random change; returns what it did.
    fn change(&mut self, handle: &Handle, rng: &mut Rng) -> String {
        self.changes += 1;
        let (class, folder_id) = if rng.chance(40) {
            SERVER_CLASSES[0]
        } else {
            SERVER_CLASSES[rng.between(1, 4) as usize]
        };
        let count = self.ids.get(class).map_or(0, Vec::len);
        let roll = rng.between(0, 99);
        let (what, result) = if roll < 45 || count < 3 {
            let result = if class == "Email" {
                self.next += 1;
                let folder_id = if rng.chance(20) {
                    folder::PROJECTS
                } else {
                    folder::INBOX
                };
                handle.add_mail(
                    folder_id,
                    &format!("soak mail {}", self.next),
                    &format!("Mail {} of the soak run.\r\n", self.next),
                )
            } else {
                let props = self.props(class);
                handle.add_item(NewItem {
                    folder_id: folder_id.into(),
                    props,
                    body: format!("made by the soak run ({})", self.next),
                    ..NewItem::default()
                })
            };
            if let Ok(id) = &result {
                self.ids.entry(class).or_default().push(id.clone());
            }
            ("add", result.map(|_| ()))
        } else if roll < 80 {
            let id = self.ids[class][rng.between(0, count as u64 - 1) as usize].clone();
            let props = if class == "Email" {
                vec![Prop::text("Read", if rng.chance(50) { "1" } else { "0" })]
            } else {
                self.props(class)
            };
            ("change", handle.change_item(&id, props, None))
        } else {
            let list = self.ids.get_mut(class).expect("a class with items");
            let id = list.remove(rng.between(0, count as u64 - 1) as usize);
            ("delete", handle.delete_item(&id))
        };
        match result {
            Ok(()) => format!("server {what} {class}"),
            Err(e) => format!("server {what} {class} refused: {e}"),
        }
    }
}

/// A contact, task or note the device made.
struct LocalItem {
    class_dir: &'static str,
    n: u64,
    version: u32,
    path: PathBuf,
}

/// The device side of the run: its items, and the keys that must not be on the server at
/// the end (of deleted items, and what changed items were before).
#[derive(Default)]
struct LocalSide {
    items: Vec<LocalItem>,
    gone: Vec<(&'static str, String)>,
    next: u64,
    made: usize,
    changed: usize,
    deleted: usize,
}

fn local_key(class_dir: &str, n: u64, version: u32) -> String {
    match class_dir {
        "contacts" => format!("device{n}v{version}@example.net"),
        "tasks" => format!("device task {n} v{version}"),
        _ => format!("device note {n} v{version}"),
    }
}

fn local_text(class_dir: &str, n: u64, version: u32) -> String {
    let key = local_key(class_dir, n, version);
    match class_dir {
        "contacts" => format!(
            "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:soak-device-contact-{n}\r\nFN:Device Made {n}\r\n\
             N:Made {n};Device;;;\r\nEMAIL:{key}\r\nNOTE:version {version}\r\nEND:VCARD\r\n"
        ),
        "tasks" => format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//easync soak//EN\r\nBEGIN:VTODO\r\n\
             UID:soak-device-task-{n}\r\nDTSTAMP:20261125T090000Z\r\nSUMMARY:{key}\r\n\
             END:VTODO\r\nEND:VCALENDAR\r\n"
        ),
        _ => format!("Subject: {key}\n\nwritten on the device, version {version}\n"),
    }
}

fn local_file_name(class_dir: &str, n: u64) -> String {
    let ext = match class_dir {
        "contacts" => "vcf",
        "tasks" => "ics",
        _ => "txt",
    };
    format!("soak-device-{n}.{ext}")
}

/// Writes `text` aside and renames it into place, as editors and apps do.
fn write_into_place(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let aside = path.with_file_name(format!(".{name}.part"));
    std::fs::write(&aside, text)?;
    std::fs::rename(&aside, path)
}

impl LocalSide {
    /// One random change in `data`; None when the class folder is not there yet.
    fn change(&mut self, data: &Path, rng: &mut Rng) -> Option<String> {
        let roll = rng.between(0, 99);
        if roll < 55 || self.items.len() < 3 {
            let (class_dir, folder_name) = pick(rng, &LOCAL_FOLDERS);
            let dir = data.join(class_dir).join(folder_name);
            if !dir.is_dir() {
                return None;
            }
            self.next += 1;
            let n = self.next;
            let path = dir.join(local_file_name(class_dir, n));
            write_into_place(&path, &local_text(class_dir, n, 1)).expect("local item written");
            self.items.push(LocalItem {
                class_dir,
                n,
                version: 1,
                path,
            });
            self.made += 1;
            Some(format!("local add {class_dir} {n}"))
        } else if roll < 80 {
            let i = rng.between(0, self.items.len() as u64 - 1) as usize;
            let item = &mut self.items[i];
            self.gone.push((
                item.class_dir,
                local_key(item.class_dir, item.n, item.version),
            ));
            item.version += 1;
            write_into_place(
                &item.path,
                &local_text(item.class_dir, item.n, item.version),
            )
            .expect("local item rewritten");
            self.changed += 1;
            Some(format!("local change {} {}", item.class_dir, item.n))
        } else {
            let i = rng.between(0, self.items.len() as u64 - 1) as usize;
            let item = self.items.remove(i);
            let _ = std::fs::remove_file(&item.path);
            self.gone.push((
                item.class_dir,
                local_key(item.class_dir, item.n, item.version),
            ));
            self.deleted += 1;
            Some(format!("local delete {} {}", item.class_dir, item.n))
        }
    }

    /// How the server's items disagree with what the device did: every kept item there
    /// exactly once (in its class folder), every deleted or superseded key nowhere.
    fn differences(&self, server: &Inventory) -> Vec<String> {
        let mut out = Vec::new();
        for item in &self.items {
            let key = local_key(item.class_dir, item.n, item.version);
            let folder = LOCAL_FOLDERS
                .iter()
                .find(|(c, _)| *c == item.class_dir)
                .map(|(c, f)| format!("{c}/{f}"))
                .unwrap_or_default();
            let n = server.get(&folder).and_then(|m| m.get(&key)).copied();
            if n != Some(1) {
                out.push(format!(
                    "device item {key:?} is on the server {} times (in {folder})",
                    n.unwrap_or(0)
                ));
            }
        }
        for (class_dir, key) in &self.gone {
            for (folder, items) in server {
                if folder.starts_with(&format!("{class_dir}/")) && items.contains_key(key) {
                    out.push(format!(
                        "device item {key:?} was changed or deleted on the device but is still \
                         on the server (in {folder})"
                    ));
                }
            }
        }
        out
    }
}

/// Mails whose read state differs between the server (`Read`) and the store (the Maildir
/// `S` flag), keyed by Subject.
fn read_flag_differences(handle: &Handle, data: &Path) -> Vec<String> {
    let mut server = BTreeMap::new();
    for item in lab_items(handle) {
        if item["class"] == "Email" {
            if let Some(subject) = item["props"]["Subject"].as_str() {
                server.insert(subject.to_string(), item["props"]["Read"] == "1");
            }
        }
    }
    let mut out = Vec::new();
    for (rel, bytes) in item_files(data) {
        if !rel.starts_with("mail/") {
            continue;
        }
        let Some(subject) = file_key("mail", &bytes) else {
            continue;
        };
        let seen = rel
            .rsplit_once(":2,")
            .is_some_and(|(_, flags)| flags.contains('S'));
        if let Some(&read) = server.get(&subject) {
            if read != seen {
                out.push(format!(
                    "mail {subject:?}: read on the server {read}, seen in the store {seen} \
                     ({rel})"
                ));
            }
        }
    }
    out
}

/// The run's own record of what it did, on the same clock as the daemon logs: each line
/// starts with the seconds since the run began.
struct Journal {
    begin: Instant,
    file: std::fs::File,
}

impl Journal {
    fn note(&mut self, what: &str) {
        let _ = writeln!(self.file, "{}{what}", stamp(self.begin));
    }
}

fn stamp(begin: Instant) -> String {
    format!("[{:8.3}] ", begin.elapsed().as_secs_f64())
}

/// Copies the daemon's stderr into `log`, each line stamped like the journal's.
fn stamp_lines(stderr: std::process::ChildStderr, log: &Path, begin: Instant) -> JoinHandle<()> {
    let mut file = std::fs::File::create(log).expect("log file");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(file, "{}{line}", stamp(begin));
        }
    })
}

/// One daemon process.
struct Process {
    child: Child,
    /// The thread writing its log (it ends when the process does).
    logger: Option<JoinHandle<()>>,
    log: PathBuf,
    started: Instant,
    /// Descriptors at its first park after a sync, and at its last park.
    fds_first: Option<usize>,
    fds_last: Option<usize>,
    peak_kib: u64,
    ended: Option<Instant>,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn sample(&mut self) {
        self.peak_kib = self.peak_kib.max(status_kib(self.pid(), "VmHWM"));
    }

    fn lifetime(&self) -> Duration {
        self.ended.unwrap_or_else(Instant::now) - self.started
    }

    /// After the process ended: waits for the last log lines.
    fn mark_ended(&mut self) {
        self.ended = Some(Instant::now());
        if let Some(logger) = self.logger.take() {
            let _ = logger.join();
        }
    }
}

/// The run's daemons, its notification socket and what they reported.
struct Daemons<'a> {
    setup: &'a DaemonSetup,
    easyncd: &'a str,
    socket: PathBuf,
    notify: UnixDatagram,
    current: Option<Process>,
    finished: Vec<Process>,
    syncs: usize,
    /// Seen `synced` since the current process started.
    synced_once: bool,
    /// When to count the descriptors of the parked daemon (500 ms after it parked, unless it
    /// moved on meanwhile).
    park_sample_at: Option<Instant>,
    unexpected_exits: Vec<String>,
    journal: Journal,
}

impl Daemons<'_> {
    fn start(&mut self) {
        // Whatever an earlier process sent is no news of this one.
        let mut buf = [0u8; 1024];
        while self.notify.recv(&mut buf).is_ok() {}
        let number = self.finished.len() + 1;
        let log = self.setup.dir.0.join(format!("easyncd-{number:03}.log"));
        let mut child = self
            .setup
            .command(self.easyncd, &["-v", "--bus", "none"])
            .env("NOTIFY_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("easyncd starts");
        let stderr = child.stderr.take().expect("a stderr pipe");
        let logger = Some(stamp_lines(stderr, &log, self.journal.begin));
        self.journal
            .note(&format!("start daemon {number} (pid {})", child.id()));
        self.current = Some(Process {
            child,
            logger,
            log,
            started: Instant::now(),
            fds_first: None,
            fds_last: None,
            peak_kib: 0,
            ended: None,
        });
        self.synced_once = false;
        self.park_sample_at = None;
    }

    fn kill9(&mut self) {
        if let Some(mut p) = self.current.take() {
            p.sample();
            self.journal.note(&format!("kill -9 pid {}", p.pid()));
            let _ = kill(Pid::from_raw(p.pid() as i32), Signal::SIGKILL);
            let _ = p.child.wait();
            p.mark_ended();
            self.finished.push(p);
        }
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.current.take() {
            p.sample();
            let _ = kill(Pid::from_raw(p.pid() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if matches!(p.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
            p.mark_ended();
            self.finished.push(p);
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(p) = &self.current {
            let _ = kill(Pid::from_raw(p.pid() as i32), signal);
        }
    }

    /// Reads notifications for up to `window` (stops early at one starting with `until`);
    /// counts syncs, samples the parked daemon, and restarts a daemon that died by itself.
    fn pump(&mut self, window: Duration, until: Option<&str>) -> bool {
        let deadline = Instant::now() + window;
        let mut buf = [0u8; 1024];
        let mut hit = false;
        loop {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if message.starts_with("STATUS=") {
                    self.park_sample_at = None;
                }
                if message == "STATUS=synced" {
                    self.syncs += 1;
                    self.synced_once = true;
                }
                if message == PARKED && self.synced_once {
                    self.park_sample_at = Some(Instant::now() + Duration::from_millis(500));
                }
                if until.is_some_and(|u| message.starts_with(u)) {
                    hit = true;
                }
            }
            self.housekeeping();
            if hit || Instant::now() >= deadline {
                return hit;
            }
        }
    }

    fn housekeeping(&mut self) {
        if self.park_sample_at.is_some_and(|at| Instant::now() >= at) {
            self.park_sample_at = None;
            if let Some(p) = &mut self.current {
                let fds = open_fds(p.pid());
                p.fds_first.get_or_insert(fds);
                p.fds_last = Some(fds);
            }
        }
        let exited = match &mut self.current {
            Some(p) => p.child.try_wait().ok().flatten(),
            None => None,
        };
        if let Some(status) = exited {
            let mut p = self.current.take().expect("a current process");
            p.mark_ended();
            self.journal.note(&format!(
                "daemon pid {} exited by itself: {status}",
                p.pid()
            ));
            let log = std::fs::read_to_string(&p.log).unwrap_or_default();
            self.unexpected_exits.push(format!(
                "{} ({}): {status}\n{}",
                p.log.display(),
                format_args!("after {:.1} s", p.lifetime().as_secs_f64()),
                tail(&log, 30)
            ));
            self.finished.push(p);
            self.start();
        }
    }

    fn all(&self) -> impl Iterator<Item = &Process> {
        self.finished.iter().chain(self.current.iter())
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Figures from the daemons' logs: (pushes, expired Pings, Σ heartbeats of expired Pings).
fn log_figures(logs: &[String]) -> (usize, usize, u64) {
    let (mut pushes, mut expired, mut heartbeats) = (0, 0, 0u64);
    for log in logs {
        for line in log.lines() {
            if let Some(rest) = line.split_once("push: no changes within ").map(|(_, r)| r) {
                expired += 1;
                heartbeats += rest
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            } else if line.contains("push: ") && line.contains(" folder(s) changed") {
                pushes += 1;
            }
        }
    }
    (pushes, expired, heartbeats)
}

/// Runs a soak against the `easyncd` binary at `easyncd`.
pub fn run(config: &SoakConfig, easyncd: &str) -> SoakReport {
    let started = Instant::now();
    let mut rng = Rng::new(config.seed);
    let handle = lab::Server::start(lab::Config {
        items: config.lab_items,
        seed: config.seed,
        time_scale: config.time_scale,
        ..lab::Config::default()
    })
    .expect("the lab starts");
    let setup = DaemonSetup::new(&handle, "soak", PUSH);
    let text = std::fs::read_to_string(&setup.config_path).expect("configuration");
    std::fs::write(
        &setup.config_path,
        text.replacen("[sync]\n", &format!("[sync]\n{RESYNC}"), 1),
    )
    .expect("configuration written");
    let socket = setup.dir.0.join("notify.sock");
    let notify = UnixDatagram::bind(&socket).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("socket timeout");
    let journal = Journal {
        begin: started,
        file: std::fs::File::create(setup.dir.0.join("soak-events.log")).expect("journal"),
    };
    let mut daemons = Daemons {
        setup: &setup,
        easyncd,
        socket,
        notify,
        current: None,
        finished: Vec::new(),
        syncs: 0,
        synced_once: false,
        park_sample_at: None,
        unexpected_exits: Vec::new(),
        journal,
    };
    let mut server = ServerSide::new(&handle);
    let mut local = LocalSide::default();
    let mut report = SoakReport {
        seed: config.seed,
        time_scale: config.time_scale,
        ..SoakReport::default()
    };

    daemons.start();
    assert!(
        daemons.pump(Duration::from_secs(120), Some("STATUS=synced")),
        "no first sync within 120 s\n{}",
        std::fs::read_to_string(&daemons.current.as_ref().expect("a daemon").log)
            .unwrap_or_default()
    );

    // The random part.
    let data = setup.data();
    let begin = Instant::now();
    let end = begin + config.duration;
    let kills_end = begin + config.duration * config.kill_share_percent as u32 / 100;
    let mut fault_on: Option<(Instant, &'static str)> = None;
    let mut next_fault = begin + pause(&mut rng, config.fault_gap);
    let mut next_server = begin + pause(&mut rng, config.server_change_gap);
    let mut next_local = begin + pause(&mut rng, config.local_change_gap);
    let mut next_kill = begin + pause(&mut rng, config.kill_gap);
    let mut restart_at: Option<Instant> = None;
    let mut calm_from = begin + pause(&mut rng, config.busy_length);
    let mut calm_until: Option<Instant> = None;
    let mut last_sample = Instant::now();
    while Instant::now() < end {
        let now = Instant::now();
        if calm_until.is_none() && now >= calm_from && fault_on.is_none() {
            calm_until = Some(now + pause(&mut rng, config.calm_length));
            report.calm_phases += 1;
            daemons.journal.note("calm");
        }
        if let Some(until) = calm_until {
            if now >= until {
                calm_until = None;
                daemons.journal.note("busy");
                calm_from = now + pause(&mut rng, config.busy_length);
                next_fault = now + pause(&mut rng, config.fault_gap);
                next_server = now + pause(&mut rng, config.server_change_gap);
                next_local = now + pause(&mut rng, config.local_change_gap);
            }
        }
        let busy = calm_until.is_none();
        match fault_on {
            Some((until, name)) if now >= until => {
                let used = faults_used(&handle);
                report.faulty_answers += used;
                handle.clear_faults();
                daemons
                    .journal
                    .note(&format!("fault {name} off ({used} answers hit)"));
                fault_on = None;
                next_fault = now + pause(&mut rng, config.fault_gap);
            }
            None if busy && now >= next_fault => {
                let fault = random_fault(&mut rng);
                let name = fault.kind.name();
                daemons.journal.note(&format!(
                    "fault {name} on (command {:?}, size {:?}, delay_ms {:?}, retry_after {:?})",
                    fault.command, fault.size, fault.delay_ms, fault.retry_after
                ));
                handle.inject_fault(fault);
                *report.faults_by_kind.entry(name).or_default() += 1;
                report.fault_periods += 1;
                fault_on = Some((now + pause(&mut rng, config.fault_length), name));
            }
            _ => {}
        }
        if busy && now >= next_server {
            let what = server.change(&handle, &mut rng);
            daemons.journal.note(&what);
            next_server = now + pause(&mut rng, config.server_change_gap);
        }
        if busy && now >= next_local {
            if let Some(what) = local.change(&data, &mut rng) {
                daemons.journal.note(&what);
            }
            next_local = now + pause(&mut rng, config.local_change_gap);
        }
        if now >= next_kill && now < kills_end && daemons.current.is_some() {
            daemons.kill9();
            report.kills += 1;
            restart_at = Some(now + Duration::from_millis(rng.between(0, 1500)));
            next_kill = now + pause(&mut rng, config.kill_gap);
        }
        if restart_at.is_some_and(|at| now >= at) {
            restart_at = None;
            daemons.start();
        }
        if now - last_sample >= Duration::from_secs(1) {
            last_sample = now;
            if let Some(p) = &mut daemons.current {
                p.sample();
            }
        }
        daemons.pump(Duration::from_millis(50), None);
    }
    if daemons.current.is_none() {
        daemons.start();
    }

    // The end: faults off, a quiet moment, syncs until in step (bounded).
    if fault_on.is_some() {
        report.faulty_answers += faults_used(&handle);
    }
    handle.clear_faults();
    daemons.journal.note("end: faults off, quiet");
    daemons.pump(config.quiet, None);
    let asked = Instant::now();
    let mut differences: Vec<String> = Vec::new();
    while asked.elapsed() < config.in_step_bound {
        daemons.signal(Signal::SIGUSR1);
        daemons.pump(Duration::from_secs(5), Some("STATUS=synced"));
        let server_items = server_inventory(&handle);
        let mut now_differing = inventory_differences(&server_items, &disk_inventory(&data));
        now_differing.extend(local.differences(&server_items));
        now_differing.extend(read_flag_differences(&handle, &data));
        if now_differing != differences || now_differing.is_empty() {
            daemons.journal.note(&format!(
                "end: after SIGUSR1, {} differences{}",
                now_differing.len(),
                now_differing
                    .iter()
                    .take(10)
                    .map(|d| format!("\n    {d}"))
                    .collect::<String>()
            ));
        }
        differences = now_differing;
        if differences.is_empty() {
            report.in_step_after = Some(asked.elapsed());
            break;
        }
        // Not yet: give the daemon a moment before asking again.
        daemons.pump(Duration::from_secs(1), None);
    }
    // One more park to count the descriptors of the last daemon at rest.
    daemons.park_sample_at = None;
    daemons.signal(Signal::SIGUSR1);
    daemons.pump(Duration::from_secs(20), Some(PARKED));
    daemons.pump(Duration::from_millis(800), None);
    if let Some(p) = &mut daemons.current {
        p.sample();
    }
    let server_items = server_inventory(&handle);
    report.items_compared = inventory_len(&server_items);
    report.mismatches = differences;
    report.leftover_temp_files = leftover_temp_files(&data);
    daemons.stop();

    report.server_changes = server.changes;
    report.local_made = local.made;
    report.local_changed = local.changed;
    report.local_deleted = local.deleted;
    report.syncs = daemons.syncs;
    report.unexpected_exits = std::mem::take(&mut daemons.unexpected_exits);
    report.processes = daemons.finished.len();
    report.peak_rss_kib = daemons.all().map(|p| p.peak_kib).max().unwrap_or(0);
    if let Some(longest) = daemons
        .all()
        .filter(|p| p.fds_first.is_some())
        .max_by_key(|p| p.lifetime())
    {
        report.fds = (
            longest.fds_first.unwrap_or(0),
            longest.fds_last.unwrap_or(0),
        );
        report.fds_lifetime = longest.lifetime();
    }
    let logs: Vec<String> = daemons
        .all()
        .map(|p| std::fs::read_to_string(&p.log).unwrap_or_default())
        .collect();
    let (pushes, expired, heartbeats) = log_figures(&logs);
    report.pushes = pushes;
    report.expired_pings = expired;
    let scale = f64::from(config.time_scale.max(1));
    report.wall = started.elapsed();
    report.simulated =
        report.wall + Duration::from_secs_f64(heartbeats as f64 * (1.0 - 1.0 / scale));
    if !report.passed() {
        let notable: Vec<&str> = logs
            .iter()
            .flat_map(|l| l.lines())
            .filter(|l| l.contains(": error: ") || l.contains(": warn: "))
            .collect();
        report.log_excerpt = format!(
            "-- warnings and errors (last 40 of {}):\n{}\n-- end of the last log:\n{}",
            notable.len(),
            notable[notable.len().saturating_sub(40)..].join("\n"),
            tail(logs.last().map_or("", String::as_str), 40)
        );
    }
    if let Some(dir) = &config.keep_logs {
        if std::fs::create_dir_all(dir).is_ok() {
            for p in daemons.all() {
                if let Some(name) = p.log.file_name() {
                    let _ = std::fs::copy(&p.log, dir.join(name));
                }
            }
            let _ = std::fs::copy(
                setup.dir.0.join("soak-events.log"),
                dir.join("soak-events.log"),
            );
            report.logs_kept = Some(dir.clone());
        }
    }
    drop(daemons);
    handle.shutdown();
    report
}

/// Requests the fault in force has hit so far (it counts down from [`FAULT_COUNT`]).
fn faults_used(handle: &Handle) -> u64 {
    handle.state()["faults"].as_array().map_or(0, |faults| {
        faults
            .iter()
            .filter_map(|f| f["count"].as_u64())
            .map(|left| u64::from(FAULT_COUNT).saturating_sub(left))
            .sum()
    })
}
