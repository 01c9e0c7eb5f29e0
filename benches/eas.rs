//! EAS protocol benchmark: Sync response reading, and a whole client session against the
//! in-process lab.
//!
//! Run with `cargo bench --bench eas`. See `benches/README.md` for what each row measures.
//! This is a plain `main` (harness = false) that prints one table. It fails loudly only when
//! something does not work at all (a response the reader refuses, counts that differ from
//! what was generated or what the lab holds).

use std::fs::{self, File};
use std::hint::black_box;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use easync::eas::folder::{self, FolderChange, FolderType};
use easync::eas::item::{BodyPreference, BodyType, Class, LargeValue};
use easync::eas::policy::Policy;
use easync::eas::provision::{AckStatus, WipeDirective, WipeStatus};
use easync::eas::settings::DeviceInformation;
use easync::eas::sync::{
    self, ClientResponse, CollectionHeader, CollectionRequest, ServerChange, SyncHandler,
    SyncOptions, SyncOutcome, SyncRequest,
};
use easync::eas::{self, Parser, ProtocolVersion, Sink};
use easync::engine::provision::{Enforcer, EngineProvisioner};
use easync::lab;
use easync::transport::{Auth, Client, Config, Provisioner, Secret, Session};
use easync::wbxml::tags::cp;
use easync::wbxml::{FromStd, Tag, Writer};

#[path = "common/alloc.rs"]
mod alloc;
#[path = "common/rng.rs"]
mod rng;
use alloc::{heap_high_water, thread_high_water};
use rng::{ASCII_WORDS as WORDS, Rng};

/// Timed reads per Sync input; the fastest counts.
const READ_RUNS: usize = 5;
/// Fresh devices per lab scenario; the fastest of each phase counts.
const LAB_RUNS: usize = 5;
/// Mails the lab generates (about 6 in 7 land in the Inbox).
const LAB_ITEMS: usize = 2000;
const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Inputs.

const NAMES: &[&str] = &[
    "Alice Martin",
    "Bob Schäfer",
    "Chloé Dubois",
    "David Chen",
    "Eva Nowak",
    "Frank Li",
    "Greta Lindqvist",
    "Hiro Tanaka",
    "Ines García",
    "Jonas Berg",
];

fn words(rng: &mut Rng, out: &mut String, count: u64) {
    for i in 0..count {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(rng.pick(WORDS));
    }
}

fn address(rng: &mut Rng) -> String {
    let name = rng.pick(NAMES);
    let login = name.split(' ').next().unwrap_or("x").to_lowercase();
    format!("\"{name}\" <{login}@example.com>")
}

fn date(rng: &mut Rng) -> String {
    format!(
        "2024-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        rng.range(1, 12),
        rng.range(1, 28),
        rng.range(0, 23),
        rng.range(0, 59),
        rng.range(0, 59)
    )
}

const SYNC: Tag = Tag::named(cp::AIRSYNC, "Sync");
const COLLECTIONS: Tag = Tag::named(cp::AIRSYNC, "Collections");
const COLLECTION: Tag = Tag::named(cp::AIRSYNC, "Collection");
const SYNC_KEY: Tag = Tag::named(cp::AIRSYNC, "SyncKey");
const COLLECTION_ID: Tag = Tag::named(cp::AIRSYNC, "CollectionId");
const STATUS: Tag = Tag::named(cp::AIRSYNC, "Status");
const COMMANDS: Tag = Tag::named(cp::AIRSYNC, "Commands");
const ADD: Tag = Tag::named(cp::AIRSYNC, "Add");
const SERVER_ID: Tag = Tag::named(cp::AIRSYNC, "ServerId");
const APPLICATION_DATA: Tag = Tag::named(cp::AIRSYNC, "ApplicationData");
const TO: Tag = Tag::named(cp::EMAIL, "To");
const FROM: Tag = Tag::named(cp::EMAIL, "From");
const CC: Tag = Tag::named(cp::EMAIL, "Cc");
const REPLY_TO: Tag = Tag::named(cp::EMAIL, "ReplyTo");
const SUBJECT: Tag = Tag::named(cp::EMAIL, "Subject");
const DATE_RECEIVED: Tag = Tag::named(cp::EMAIL, "DateReceived");
const DISPLAY_TO: Tag = Tag::named(cp::EMAIL, "DisplayTo");
const THREAD_TOPIC: Tag = Tag::named(cp::EMAIL, "ThreadTopic");
const IMPORTANCE: Tag = Tag::named(cp::EMAIL, "Importance");
const READ: Tag = Tag::named(cp::EMAIL, "Read");
const MESSAGE_CLASS: Tag = Tag::named(cp::EMAIL, "MessageClass");
const INTERNET_CPID: Tag = Tag::named(cp::EMAIL, "InternetCPID");
const CONTENT_CLASS: Tag = Tag::named(cp::EMAIL, "ContentClass");
const FLAG: Tag = Tag::named(cp::EMAIL, "Flag");
const FLAG_STATUS: Tag = Tag::named(cp::EMAIL, "Status");
const FLAG_TYPE: Tag = Tag::named(cp::EMAIL, "FlagType");
const CATEGORIES: Tag = Tag::named(cp::EMAIL, "Categories");
const CATEGORY: Tag = Tag::named(cp::EMAIL, "Category");
const CONVERSATION_ID: Tag = Tag::named(cp::EMAIL2, "ConversationId");
const CONVERSATION_INDEX: Tag = Tag::named(cp::EMAIL2, "ConversationIndex");
const RECEIVED_AS_BCC: Tag = Tag::named(cp::EMAIL2, "ReceivedAsBcc");
const NATIVE_BODY_TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "NativeBodyType");
const BODY: Tag = Tag::named(cp::AIRSYNCBASE, "Body");
const BODY_TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "Type");
const ESTIMATED_DATA_SIZE: Tag = Tag::named(cp::AIRSYNCBASE, "EstimatedDataSize");
const DATA: Tag = Tag::named(cp::AIRSYNCBASE, "Data");

/// The properties (children of ApplicationData) every generated Add has.
const PROPERTIES_PER_ADD: u64 = 20;

type Gen = Writer<Vec<u8>>;
type GenResult = Result<(), easync::wbxml::Error<core::convert::Infallible>>;

/// What a generated Sync response holds, to check the reader against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expected {
    adds: u64,
    body_bytes: u64,
}

/// Sync > Collections > Collection > (SyncKey, CollectionId, Status, Commands > `adds`).
fn sync_response(capacity: usize, adds: impl FnOnce(&mut Gen) -> GenResult) -> Vec<u8> {
    let mut w = Writer::new(Vec::with_capacity(capacity));
    let doc = |w: &mut Gen| -> GenResult {
        w.start(SYNC)?;
        w.start(COLLECTIONS)?;
        w.start(COLLECTION)?;
        w.text_element(SYNC_KEY, "{5E2A9C11}2")?;
        w.text_element(COLLECTION_ID, "5")?;
        w.text_element(STATUS, "1")?;
        w.start(COMMANDS)?;
        adds(w)?;
        w.end()?; // Commands
        w.end()?; // Collection
        w.end()?; // Collections
        w.end() // Sync
    };
    doc(&mut w).expect("the generator writes valid WBXML");
    w.finish().expect("the generator closes every element")
}

fn opaque_element(w: &mut Gen, tag: Tag, data: &[u8]) -> GenResult {
    w.start(tag)?;
    w.opaque(data)?;
    w.end()
}

/// One email Add with [`PROPERTIES_PER_ADD`] properties, the last an AirSyncBase Body of
/// `body_type` holding `data`.
fn email_add(w: &mut Gen, rng: &mut Rng, id: u64, body_type: &str, data: &str) -> GenResult {
    let mut subject = String::new();
    let count = rng.range(3, 10);
    words(rng, &mut subject, count);
    let conversation: [u8; 16] = core::array::from_fn(|_| rng.next() as u8);
    w.start(ADD)?;
    w.text_element(SERVER_ID, &format!("5:{id}"))?;
    w.start(APPLICATION_DATA)?;
    w.text_element(TO, &address(rng))?;
    w.text_element(FROM, &address(rng))?;
    w.text_element(CC, &address(rng))?;
    w.text_element(REPLY_TO, &address(rng))?;
    w.text_element(SUBJECT, &subject)?;
    w.text_element(DATE_RECEIVED, &date(rng))?;
    w.text_element(DISPLAY_TO, rng.pick(NAMES))?;
    w.text_element(THREAD_TOPIC, &subject)?;
    w.text_element(IMPORTANCE, &rng.range(0, 2).to_string())?;
    w.text_element(READ, if rng.next() % 3 == 0 { "0" } else { "1" })?;
    w.text_element(MESSAGE_CLASS, "IPM.Note")?;
    w.text_element(INTERNET_CPID, "65001")?;
    w.text_element(CONTENT_CLASS, "urn:content-classes:message")?;
    if rng.next() % 10 == 0 {
        w.start(FLAG)?;
        w.text_element(FLAG_STATUS, "2")?;
        w.text_element(FLAG_TYPE, "Flag for follow up")?;
        w.end()?;
    } else {
        w.empty(FLAG)?;
    }
    w.start(CATEGORIES)?;
    w.text_element(CATEGORY, rng.pick(&["Work", "Personal", "Travel"]))?;
    w.end()?;
    w.text_element(NATIVE_BODY_TYPE, body_type)?;
    opaque_element(w, CONVERSATION_ID, &conversation)?;
    opaque_element(w, CONVERSATION_INDEX, &conversation[..5])?;
    w.text_element(RECEIVED_AS_BCC, "0")?;
    w.start(BODY)?;
    w.text_element(BODY_TYPE, body_type)?;
    w.text_element(ESTIMATED_DATA_SIZE, &data.len().to_string())?;
    w.text_element(DATA, data)?;
    w.end()?; // Body
    w.end()?; // ApplicationData
    w.end() // Add
}

/// (a) token-dense: 100,000 email Adds with plain-text bodies of 100 to 300 bytes.
fn token_dense() -> (Vec<u8>, Expected) {
    const ADDS: u64 = 100_000;
    let mut rng = Rng(0x00EA_5000_0001);
    let mut body_bytes = 0;
    let doc = sync_response(80_000_000, |w| {
        let mut body = String::new();
        for id in 1..=ADDS {
            body.clear();
            let target = rng.range(100, 300) as usize;
            while body.len() < target {
                let count = rng.range(5, 12);
                words(&mut rng, &mut body, count);
                body.push_str(".\r\n");
            }
            body_bytes += body.len() as u64;
            email_add(w, &mut rng, id, "1", &body)?;
        }
        Ok(())
    });
    let expected = Expected {
        adds: ADDS,
        body_bytes,
    };
    (doc, expected)
}

/// (b) large bodies: 20 email Adds whose MIME bodies (Type 4) are 2 to 10 MB each.
fn large_bodies() -> (Vec<u8>, Expected) {
    const ADDS: u64 = 20;
    let mut rng = Rng(0x00EA_5000_0002);
    // Lines drawn from a fixed pool: building 100+ MB word by word would dominate the run.
    let pool: Vec<String> = (0..512)
        .map(|_| {
            let mut line = String::new();
            let count = rng.range(6, 14);
            words(&mut rng, &mut line, count);
            line.push_str("\r\n");
            line
        })
        .collect();
    let sizes: Vec<usize> = (0..ADDS)
        .map(|_| rng.range(2_000_000, 10_000_000) as usize)
        .collect();
    let total: usize = sizes.iter().sum();
    let mut body_bytes = 0;
    let doc = sync_response(total + 1_000_000, |w| {
        let mut mime = String::with_capacity(10_100_000);
        for (i, &size) in sizes.iter().enumerate() {
            mime.clear();
            let mut subject = String::new();
            words(&mut rng, &mut subject, 6);
            mime.push_str(&format!(
                "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: Fri, 15 Mar 2024 09:41:27 +0000\r\n\
                 Message-ID: <{i}.{}@example.com>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
                address(&mut rng),
                address(&mut rng),
                rng.next()
            ));
            while mime.len() < size {
                mime.push_str(&pool[(rng.next() % pool.len() as u64) as usize]);
            }
            body_bytes += mime.len() as u64;
            email_add(w, &mut rng, i as u64 + 1, "4", &mime)?;
        }
        Ok(())
    });
    let expected = Expected {
        adds: ADDS,
        body_bytes,
    };
    (doc, expected)
}

/// Writes `doc` to `path` unless the file there already holds exactly these bytes.
fn store(path: &Path, doc: &[u8]) -> &'static str {
    let same_size = fs::metadata(path).is_ok_and(|m| m.len() == doc.len() as u64);
    if same_size && fs::read(path).is_ok_and(|old| old == doc) {
        return "reused";
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, doc).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", path.display()));
    "written"
}

/// The cargo target directory this bench runs from.
fn target_dir(manifest_dir: &Path) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|d| d.join("CACHEDIR.TAG").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| manifest_dir.join("target"))
}

// ---------------------------------------------------------------------------------------------
// The handler: counts what the reader hands over, keeps nothing.

/// A body sink that only counts bytes.
#[derive(Default)]
struct ByteCount(u64);

impl Sink for ByteCount {
    fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0 += data.len() as u64;
        Ok(())
    }
}

#[derive(Default)]
struct Counter {
    adds: u64,
    /// Children of the Adds' ApplicationData (Body counts as one).
    properties: u64,
    bodies: ByteCount,
}

impl SyncHandler for Counter {
    fn server_change(&mut self, _collection_id: &str, change: ServerChange) -> eas::Result<()> {
        if let ServerChange::Add(item) = change {
            self.adds += 1;
            self.properties += item.data.map_or(0, |d| d.node.children().len() as u64);
        }
        Ok(())
    }

    fn client_response(
        &mut self,
        _collection_id: &str,
        _response: ClientResponse,
    ) -> eas::Result<()> {
        Ok(())
    }

    fn body_sink(
        &mut self,
        _collection_id: &str,
        _server_id: &str,
        value: &LargeValue,
    ) -> Option<&mut dyn Sink> {
        matches!(value, LargeValue::Body { .. }).then_some(&mut self.bodies as &mut dyn Sink)
    }

    fn end_collection(&mut self, _header: &CollectionHeader) -> eas::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: reading Sync responses.

/// One read: the time, what the handler counted, the heap high-water.
struct Read {
    took: Duration,
    adds: u64,
    properties: u64,
    body_bytes: u64,
    heap: usize,
}

fn read_sync<R: embedded_io::Read>(input: R) -> Counter {
    let mut parser = Parser::new(input, ProtocolVersion::V16_1);
    let mut counter = Counter::default();
    let outcome = sync::read_response(&mut parser, &mut counter).expect("the response reads");
    assert!(matches!(outcome, SyncOutcome::Response(_)));
    counter
}

/// Reads `open()`'s input [`READ_RUNS`] times: the fastest time, the largest heap.
fn best_read<R: embedded_io::Read>(mut open: impl FnMut() -> R) -> Read {
    let mut best: Option<Read> = None;
    for _ in 0..READ_RUNS {
        let (read, heap) = heap_high_water(|| {
            let input = open();
            let start = Instant::now();
            let counter = black_box(read_sync(input));
            (start.elapsed(), counter)
        });
        let (took, counter) = read;
        let this = Read {
            took,
            adds: counter.adds,
            properties: counter.properties,
            body_bytes: counter.bodies.0,
            heap,
        };
        best = Some(match best {
            None => this,
            Some(b) => {
                assert_eq!(
                    (b.adds, b.properties, b.body_bytes),
                    (this.adds, this.properties, this.body_bytes),
                    "reads differ between runs"
                );
                Read {
                    took: b.took.min(this.took),
                    heap: b.heap.max(this.heap),
                    ..b
                }
            }
        });
    }
    best.expect("READ_RUNS > 0")
}

fn open_file(path: &Path) -> FromStd<BufReader<File>> {
    let file = File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    FromStd(BufReader::new(file))
}

fn check(name: &str, read: &Read, expected: Expected) {
    assert_eq!(
        (read.adds, read.properties, read.body_bytes),
        (
            expected.adds,
            expected.adds * PROPERTIES_PER_ADD,
            expected.body_bytes
        ),
        "{name}: (adds, properties, body bytes) differ from what was generated"
    );
}

// ---------------------------------------------------------------------------------------------
// Part 2: a client session against the in-process lab.

/// The policy decision of the bench: nothing is enforced, so the acknowledgement says so
/// (status 3), as the engine's provisioner sends it until the device hooks exist.
struct NothingEnforced;

impl Enforcer for NothingEnforced {
    fn apply(&mut self, _policy: &Policy) -> AckStatus {
        AckStatus::NotApplied
    }
    fn wipe_requested(&mut self, directive: WipeDirective) -> WipeStatus {
        panic!("the lab asked the bench for a {directive:?} wipe")
    }
}

fn bench_device() -> DeviceInformation {
    DeviceInformation {
        model: Some("bench".into()),
        friendly_name: Some("easync bench".into()),
        os: Some("Linux".into()),
        user_agent: Some("easync-bench".into()),
        ..DeviceInformation::default()
    }
}

/// The phases of one session, timed, with the client thread's heap high-water: `read` only
/// while the response readers run, `exchange` over the whole phase (requests, HTTP, TLS).
#[derive(Debug, Clone, Copy, Default)]
struct Phase {
    took: Duration,
    read_heap: usize,
    exchange_heap: usize,
}

impl Phase {
    fn best(self, other: Phase) -> Phase {
        Phase {
            took: self.took.min(other.took),
            read_heap: self.read_heap.max(other.read_heap),
            exchange_heap: self.exchange_heap.max(other.exchange_heap),
        }
    }
}

/// Times `f` on this thread; `f` adds the read-side heap figures into the `usize` it gets.
fn phase<T>(f: impl FnOnce(&mut usize) -> T) -> (T, Phase) {
    let mut read_heap = 0;
    let start = Instant::now();
    let (out, exchange_heap) = thread_high_water(|| f(&mut read_heap));
    let took = start.elapsed();
    (
        out,
        Phase {
            took,
            read_heap,
            exchange_heap,
        },
    )
}

/// One fresh device through OPTIONS+Provision, FolderSync and the initial Inbox Sync.
struct SessionRun {
    provision: Phase,
    folder_sync: Phase,
    sync: Phase,
    inbox: String,
    items: u64,
    body_bytes: u64,
    requests: u32,
}

fn client_session(url: &str, user: &str, ca_file: &Path, window: u32, run: usize) -> SessionRun {
    let device_id = format!(
        "bench{}w{window}r{run}",
        u32::from(url.starts_with("https"))
    );
    let mut config = Config::new(url, user, device_id);
    config.auth = Auth::Basic {
        password: Secret::new("labpass"),
    };
    config.device_type = "easyncbench".into();
    config.allow_insecure_http = url.starts_with("http://");
    config.tls.ca_file = Some(ca_file.to_path_buf());
    let mut enforcer = NothingEnforced;
    let mut prov = EngineProvisioner::new(&mut enforcer, bench_device());

    let (mut session, provision) = phase(|read_heap| {
        let client = Client::new(config).expect("transport client");
        let mut session = Session::new(client, ProtocolVersion::V16_1);
        session.negotiate(None, TIMEOUT).expect("OPTIONS");
        // Provisioning writes and reads inside the engine's provisioner: its heap figure
        // covers the whole provisioning exchange, not the response reads alone.
        let (result, heap) = thread_high_water(|| prov.provision(&mut session));
        result.expect("Provision");
        *read_heap = heap;
        session
    });

    let (inbox, folder_sync) = phase(|read_heap| {
        let response = session
            .execute(
                |s| folder::folder_sync_request(s.version, folder::INITIAL_SYNC_KEY),
                |p| {
                    let (r, heap) = thread_high_water(|| folder::read_folder_sync_response(p));
                    *read_heap = (*read_heap).max(heap);
                    r
                },
                &mut prov,
                TIMEOUT,
            )
            .expect("FolderSync");
        response
            .changes
            .iter()
            .find_map(|c| match c {
                FolderChange::Add(f) if f.folder_type == FolderType::Inbox => {
                    Some(f.server_id.clone())
                }
                _ => None,
            })
            .expect("the lab has an Inbox")
    });

    let ((counter, requests), sync) = phase(|read_heap| {
        let mut counter = Counter::default();
        let mut requests = 0u32;
        let mut key = sync::INITIAL_SYNC_KEY.to_string();
        loop {
            let mut collection = CollectionRequest::new(&key, &inbox, Class::Email);
            if key != sync::INITIAL_SYNC_KEY {
                collection.get_changes = Some(true);
                collection.window_size = Some(window);
                collection.options = Some(SyncOptions {
                    body_preferences: vec![BodyPreference::new(BodyType::PlainText)],
                    ..SyncOptions::default()
                });
            }
            let request = SyncRequest {
                collections: vec![collection],
                ..SyncRequest::default()
            };
            let outcome = session
                .execute(
                    |s| sync::request(s.version, &request),
                    |p| {
                        let (r, heap) = thread_high_water(|| sync::read_response(p, &mut counter));
                        *read_heap = (*read_heap).max(heap);
                        r
                    },
                    &mut prov,
                    TIMEOUT,
                )
                .expect("Sync");
            requests += 1;
            let SyncOutcome::Response(response) = outcome else {
                break;
            };
            let header = response.collections.first().expect("a collection");
            assert_eq!(header.status(), sync::Status::Success, "{header:?}");
            let first = key == sync::INITIAL_SYNC_KEY;
            key.clone_from(header.sync_key.as_ref().expect("a SyncKey"));
            if !first && !header.more_available {
                break;
            }
        }
        (counter, requests)
    });

    SessionRun {
        provision,
        folder_sync,
        sync,
        inbox,
        items: counter.adds,
        body_bytes: counter.bodies.0,
        requests,
    }
}

/// The best of [`LAB_RUNS`] fresh devices for one scheme and window size.
fn lab_scenario(url: &str, user: &str, ca_file: &Path, window: u32) -> SessionRun {
    let mut best: Option<SessionRun> = None;
    for run in 0..LAB_RUNS {
        let this = client_session(url, user, ca_file, window, run);
        best = Some(match best {
            None => this,
            Some(b) => {
                assert_eq!(
                    (b.items, b.body_bytes, b.requests),
                    (this.items, this.body_bytes, this.requests),
                    "sessions differ between runs"
                );
                SessionRun {
                    provision: b.provision.best(this.provision),
                    folder_sync: b.folder_sync.best(this.folder_sync),
                    sync: b.sync.best(this.sync),
                    ..b
                }
            }
        });
    }
    best.expect("LAB_RUNS > 0")
}

// ---------------------------------------------------------------------------------------------
// The report.

struct Row {
    name: String,
    items: String,
    time: String,
    items_per_s: String,
    mb_per_s: String,
    heap: String,
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn read_row(name: &str, read: &Read, doc_len: usize) -> Row {
    let secs = read.took.as_secs_f64();
    Row {
        name: name.into(),
        items: read.adds.to_string(),
        time: format!("{:.2} ms", secs * 1e3),
        items_per_s: format!("{:.0}", read.adds as f64 / secs),
        mb_per_s: format!("{:.1}", doc_len as f64 / secs / 1e6),
        heap: kib(read.heap),
    }
}

fn phase_row(name: String, phase: Phase, items: Option<u64>) -> Row {
    let secs = phase.took.as_secs_f64();
    Row {
        name,
        items: items.map_or("-".into(), |n| n.to_string()),
        time: format!("{:.2} ms", secs * 1e3),
        items_per_s: items.map_or("-".into(), |n| format!("{:.0}", n as f64 / secs)),
        mb_per_s: "-".into(),
        heap: format!("{} / {}", kib(phase.read_heap), kib(phase.exchange_heap)),
    }
}

fn print_table(rows: &[Row], heap_title: &str) {
    let w0 = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let wh = rows
        .iter()
        .map(|r| r.heap.len())
        .chain([heap_title.len()])
        .max()
        .unwrap_or(0);
    println!(
        "{:<w0$}  {:>7}  {:>10}  {:>9}  {:>7}  {:>wh$}",
        "", "items", "time", "items/s", "MB/s", heap_title
    );
    for r in rows {
        println!(
            "{:<w0$}  {:>7}  {:>10}  {:>9}  {:>7}  {:>wh$}",
            r.name, r.items, r.time, r.items_per_s, r.mb_per_s, r.heap
        );
    }
}

fn main() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data_dir = target_dir(manifest_dir).join("bench-data");
    fs::create_dir_all(&data_dir).expect("cannot create target/bench-data");

    // ---- part 1
    eprintln!("generating Sync responses in {}", data_dir.display());
    let (dense, dense_expected) = token_dense();
    let (large, large_expected) = large_bodies();
    let dense_path = data_dir.join("eas-sync-token-dense.wbxml");
    let large_path = data_dir.join("eas-sync-large-bodies.wbxml");
    let how = (store(&dense_path, &dense), store(&large_path, &large));
    eprintln!(
        "  token-dense {} bytes ({}), large bodies {} bytes ({})",
        dense.len(),
        how.0,
        large.len(),
        how.1
    );
    let probe = heap_high_water(|| black_box(vec![1u8; 4096])).1;
    assert!(probe >= 4096, "the allocation counter does not count");

    eprintln!("reading each response {READ_RUNS} times from file and from memory");
    let dense_file = best_read(|| open_file(&dense_path));
    let dense_mem = best_read(|| &dense[..]);
    let large_file = best_read(|| open_file(&large_path));
    let large_mem = best_read(|| &large[..]);
    for (name, read, expected) in [
        ("token-dense file", &dense_file, dense_expected),
        ("token-dense memory", &dense_mem, dense_expected),
        ("large bodies file", &large_file, large_expected),
        ("large bodies memory", &large_mem, large_expected),
    ] {
        check(name, read, expected);
    }
    let read_rows = [
        read_row("token-dense (file)", &dense_file, dense.len()),
        read_row("token-dense (memory)", &dense_mem, dense.len()),
        read_row("large bodies (file)", &large_file, large.len()),
        read_row("large bodies (memory)", &large_mem, large.len()),
    ];
    let (dense_len, large_len) = (dense.len(), large.len());
    drop((dense, large));

    // ---- part 2
    eprintln!("starting the lab with {LAB_ITEMS} mails");
    let loopback = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let config = lab::Config {
        http: loopback,
        https: loopback,
        admin: None,
        items: LAB_ITEMS,
        policy: lab::default_policy(),
        ..lab::Config::default()
    };
    let gzip = config.gzip;
    let handle = lab::Server::start(config).expect("the lab starts");
    let ca_file = data_dir.join("eas-lab-ca.pem");
    fs::write(&ca_file, handle.ca_pem()).expect("CA file written");
    let user = handle.user().to_string();
    let http = handle.http_url().expect("http listener");
    let https = handle.https_url().expect("https listener");

    let mut lab_rows = Vec::new();
    let mut inbox_items = None;
    let mut inbox_id = String::new();
    for (scheme, url) in [("HTTP", &http), ("HTTPS", &https)] {
        for window in [100, sync::MAX_WINDOW_SIZE] {
            eprintln!("{scheme}, WindowSize {window}: {LAB_RUNS} fresh devices");
            let run = lab_scenario(url, &user, &ca_file, window);
            inbox_id.clone_from(&run.inbox);
            match inbox_items {
                None => inbox_items = Some((run.items, run.body_bytes)),
                Some(seen) => assert_eq!(
                    seen,
                    (run.items, run.body_bytes),
                    "{scheme} WindowSize {window} synced a different Inbox"
                ),
            }
            if window == 100 {
                lab_rows.push(phase_row(
                    format!("{scheme} OPTIONS+Provision"),
                    run.provision,
                    None,
                ));
                lab_rows.push(phase_row(
                    format!("{scheme} FolderSync"),
                    run.folder_sync,
                    None,
                ));
            }
            lab_rows.push(phase_row(
                format!(
                    "{scheme} Sync Inbox, WindowSize {window} ({} requests)",
                    run.requests
                ),
                run.sync,
                Some(run.items),
            ));
        }
    }
    let lab_inbox = handle.state()["folders"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["server_id"] == inbox_id.as_str()))
        .and_then(|f| f["items"].as_u64());
    handle.shutdown();
    let _ = fs::remove_file(&ca_file);
    let (items, body_bytes) = inbox_items.expect("at least one scenario ran");
    let lab_inbox = lab_inbox.expect("the lab's state lists the Inbox with its item count");
    assert_eq!(
        items, lab_inbox,
        "the client synced a different number of mails than the lab holds"
    );

    // ---- the table
    println!();
    println!(
        "Sync response reading (sync::read_response, a handler that counts; bodies to a \
         byte-counting sink), best of {READ_RUNS} (1 MB = 10^6 bytes)"
    );
    print_table(&read_rows, "heap high-water");
    println!(
        "inputs: token-dense {dense_len} bytes, {} Adds x {PROPERTIES_PER_ADD} properties, {} body \
         bytes; large bodies {large_len} bytes, {} Adds, {} MIME body bytes",
        dense_expected.adds,
        dense_expected.body_bytes,
        large_expected.adds,
        large_expected.body_bytes
    );
    println!();
    println!(
        "Client <-> lab in-process ({LAB_ITEMS} generated mails, {items} in the Inbox, {body_bytes} \
         plain-text body bytes; policy on; gzip {}), best of {LAB_RUNS} fresh devices",
        if gzip { "on" } else { "off" }
    );
    print_table(&lab_rows, "heap: read / exchange");
    println!(
        "heap, client thread only (the lab's threads are not counted): read = the most live \
         while a response reader runs (what it keeps plus what ureq, rustls and gzip grow as it \
         pulls the body; buffers set up before it starts are not in it); exchange = the most \
         live over the whole phase (client setup, request writing, HTTP, TLS, reading)"
    );
}
