//! WBXML codec benchmark: easync's `Reader` and `Writer` against libwbxml.
//!
//! Run with `cargo bench --bench wbxml`. See `benches/README.md` for what each row measures.
//! This is a plain `main` (harness = false): it prints one table and exits 0 whether or not
//! the targets are met. It fails loudly only when something does not work at all (an input
//! the decoder refuses, counts that differ from libwbxml's, a tool that cannot be built).

use std::fmt::Debug;
use std::fs::{self, File};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use easync::wbxml::{Event, FromStd, Reader, Tag, Writer};

#[path = "common/alloc.rs"]
mod alloc;
#[path = "common/rng.rs"]
mod rng;
#[path = "common/rusage.rs"]
mod rusage;
use alloc::heap_high_water;
use rng::{ASCII_WORDS, Rng};

/// Timed runs per measurement; the fastest counts.
const RUNS: usize = 5;
/// The decoder's buffer and tag-stack sizes, as in the brief (and close to `easyncctl`'s).
const BUF: usize = 65536;
const DEPTH: usize = 32;

// ---------------------------------------------------------------------------------------------
// Inputs.

/// Words with two-, three- and four-byte UTF-8 characters.
const UTF8_WORDS: &[&str] = &[
    "über", "Grüße", "café", "naïve", "résumé", "Zürich", "€", "—", "東京", "会議", "😀",
];

/// How often a word is from `UTF8_WORDS`: one in 25 gives about 1.5% non-ASCII bytes, a
/// multi-byte character every ~150 bytes, as in European-language mail.
const UTF8_ONE_IN: u64 = 25;

fn word(rng: &mut Rng, utf8_one_in: u64) -> &'static str {
    if rng.next() % utf8_one_in == 0 {
        rng.pick(UTF8_WORDS)
    } else {
        rng.pick(ASCII_WORDS)
    }
}

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

fn sentence(rng: &mut Rng, out: &mut String, words: u64) {
    for i in 0..words {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word(rng, UTF8_ONE_IN));
    }
}

/// Text of about `target` bytes in CRLF lines of about 70 characters.
fn body_text(rng: &mut Rng, out: &mut String, target: usize, utf8_one_in: u64) {
    let start = out.len();
    let mut line = 0;
    while out.len() - start < target {
        let w = word(rng, utf8_one_in);
        if line + w.len() > 70 {
            out.push_str("\r\n");
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(w);
        line += w.len();
    }
}

fn address(rng: &mut Rng) -> String {
    let name = rng.pick(NAMES);
    let login: String = name
        .split(' ')
        .next()
        .unwrap_or("x")
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect();
    format!("\"{name}\" <{}@example.com>", login.to_ascii_lowercase())
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

fn tag(namespace: &str, name: &str) -> Tag {
    Tag::by_name(namespace, name).unwrap_or_else(|| panic!("no tag {namespace}:{name}"))
}

/// The tags the generated Sync responses use.
struct Tags {
    sync: Tag,
    collections: Tag,
    collection: Tag,
    sync_key: Tag,
    collection_id: Tag,
    status: Tag,
    commands: Tag,
    add: Tag,
    server_id: Tag,
    application_data: Tag,
    to: Tag,
    from: Tag,
    subject: Tag,
    date_received: Tag,
    read: Tag,
    importance: Tag,
    message_class: Tag,
    body: Tag,
    body_type: Tag,
    estimated_data_size: Tag,
    data: Tag,
}

impl Tags {
    fn new() -> Tags {
        Tags {
            sync: tag("AirSync", "Sync"),
            collections: tag("AirSync", "Collections"),
            collection: tag("AirSync", "Collection"),
            sync_key: tag("AirSync", "SyncKey"),
            collection_id: tag("AirSync", "CollectionId"),
            status: tag("AirSync", "Status"),
            commands: tag("AirSync", "Commands"),
            add: tag("AirSync", "Add"),
            server_id: tag("AirSync", "ServerId"),
            application_data: tag("AirSync", "ApplicationData"),
            to: tag("Email", "To"),
            from: tag("Email", "From"),
            subject: tag("Email", "Subject"),
            date_received: tag("Email", "DateReceived"),
            read: tag("Email", "Read"),
            importance: tag("Email", "Importance"),
            message_class: tag("Email", "MessageClass"),
            body: tag("AirSyncBase", "Body"),
            body_type: tag("AirSyncBase", "Type"),
            estimated_data_size: tag("AirSyncBase", "EstimatedDataSize"),
            data: tag("AirSyncBase", "Data"),
        }
    }
}

type Gen = Writer<Vec<u8>>;
type GenResult = Result<(), easync::wbxml::Error<core::convert::Infallible>>;

/// Sync > Collections > Collection > (SyncKey, CollectionId, Status, Commands > `adds`).
fn sync_response(capacity: usize, adds: impl FnOnce(&mut Gen) -> GenResult) -> Vec<u8> {
    let t = Tags::new();
    let mut w = Writer::new(Vec::with_capacity(capacity));
    let doc = |w: &mut Gen| -> GenResult {
        w.start(t.sync)?;
        w.start(t.collections)?;
        w.start(t.collection)?;
        w.text_element(t.sync_key, "1842271635")?;
        w.text_element(t.collection_id, "5")?;
        w.text_element(t.status, "1")?;
        w.start(t.commands)?;
        adds(w)?;
        w.end()?; // Commands
        w.end()?; // Collection
        w.end()?; // Collections
        w.end() // Sync
    };
    doc(&mut w).expect("the generator writes valid WBXML");
    w.finish().expect("the generator closes every element")
}

/// One email Add: ServerId, ApplicationData with the Email fields and an AirSyncBase Body.
fn email_add(
    w: &mut Gen,
    rng: &mut Rng,
    t: &Tags,
    id: u64,
    body_type: &str,
    data: &str,
) -> GenResult {
    let mut subject = String::new();
    let words = rng.range(3, 10);
    sentence(rng, &mut subject, words);
    w.start(t.add)?;
    w.text_element(t.server_id, &format!("5:{id}"))?;
    w.start(t.application_data)?;
    w.text_element(t.to, &address(rng))?;
    w.text_element(t.from, &address(rng))?;
    w.text_element(t.subject, &subject)?;
    w.text_element(t.date_received, &date(rng))?;
    w.text_element(t.read, if rng.next() % 3 == 0 { "0" } else { "1" })?;
    w.text_element(t.importance, &rng.range(0, 2).to_string())?;
    w.text_element(t.message_class, "IPM.Note")?;
    w.start(t.body)?;
    w.text_element(t.body_type, body_type)?;
    w.text_element(t.estimated_data_size, &data.len().to_string())?;
    w.text_element(t.data, data)?;
    w.end()?; // Body
    w.end()?; // ApplicationData
    w.end() // Add
}

/// (a) token-dense: a Sync response with 8,400 email Adds of ~500-byte plain-text bodies.
fn token_dense() -> Vec<u8> {
    let t = Tags::new();
    let mut rng = Rng(0x00E5_7A11_0001);
    sync_response(6_500_000, |w| {
        let mut data = String::new();
        for id in 1..=8_400 {
            data.clear();
            let target = rng.range(430, 560) as usize;
            body_text(&mut rng, &mut data, target, UTF8_ONE_IN);
            email_add(w, &mut rng, &t, id, "1", &data)?;
        }
        Ok(())
    })
}

/// (b) large-body: a Sync response with 8 to 10 Adds whose bodies are MIME messages of 5 to
/// 20 MB each, ~100 MB in all.
fn large_body() -> Vec<u8> {
    let mut rng = Rng(0x00E5_7A11_0002);
    let count = rng.range(8, 10);
    mime_sync(rng, count, 100_000_000, UTF8_ONE_IN)
}

/// For the sensitivity line: like large-body, but every other word has multi-byte
/// characters (mail in a language that is mostly not ASCII).
fn utf8_heavy() -> Vec<u8> {
    let mut rng = Rng(0x00E5_7A11_0003);
    let count = rng.range(8, 10);
    mime_sync(rng, count, 100_000_000, 2)
}

/// A Sync response of `count` email Adds whose MIME bodies add up to about `total` bytes,
/// each at least `total / count / 2`.
fn mime_sync(mut rng: Rng, count: u64, total: u64, utf8_one_in: u64) -> Vec<u8> {
    let t = Tags::new();
    let min = total / count / 2;
    // Each body gets the minimum plus a share of the rest weighted 1.0..=2.0: for 100 MB in
    // 8 to 10 bodies, every body is 5 to 20 MB.
    let weights: Vec<u64> = (0..count).map(|_| rng.range(1000, 2000)).collect();
    let weight_sum: u64 = weights.iter().sum();
    let sizes: Vec<usize> = weights
        .iter()
        .map(|w| (min + (total - count * min) * w / weight_sum) as usize)
        .collect();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    sync_response(total as usize + 1_000_000, |w| {
        let mut mime = String::with_capacity(largest + 4096);
        for (i, &size) in sizes.iter().enumerate() {
            mime.clear();
            let mut subject = String::new();
            sentence(&mut rng, &mut subject, 6);
            mime.push_str(&format!(
                "Received: from mx{i}.example.com by mail.example.com; Fri, 15 Mar 2024 09:41:27 +0000\r\n\
                 From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: Fri, 15 Mar 2024 09:41:27 +0000\r\n\
                 Message-ID: <{i}.{}@example.com>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
                address(&mut rng),
                address(&mut rng),
                rng.next()
            ));
            let header = mime.len();
            body_text(&mut rng, &mut mime, size - header, utf8_one_in);
            mime.push_str("\r\n");
            email_add(w, &mut rng, &t, i as u64 + 1, "4", &mime)?;
        }
        Ok(())
    })
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

// ---------------------------------------------------------------------------------------------
// Our decoder.

/// What a decode saw; the minimal real work that keeps every event alive.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    elements: u64,
    text_bytes: u64,
    opaque_bytes: u64,
    /// First and last byte of every text and opaque piece, so the bytes are really read.
    checksum: u64,
}

fn decode<R: embedded_io::Read>(input: R) -> Tally
where
    R::Error: Debug,
{
    let mut reader = Reader::<R, BUF, DEPTH>::new(input);
    let mut t = Tally::default();
    loop {
        match reader.next() {
            Ok(Event::Start { .. }) => t.elements += 1,
            Ok(Event::End(_)) | Ok(Event::Opaque { .. }) => {}
            Ok(Event::Text(s)) => {
                t.text_bytes += s.len() as u64;
                t.checksum += touch(s.as_bytes());
            }
            Ok(Event::OpaqueData(d)) => {
                t.opaque_bytes += d.len() as u64;
                t.checksum += touch(d);
            }
            Ok(Event::Eof) => return t,
            Err(e) => panic!("easync refused the benchmark input: {e}"),
        }
    }
}

fn touch(bytes: &[u8]) -> u64 {
    match (bytes.first(), bytes.last()) {
        (Some(&a), Some(&b)) => u64::from(a) + u64::from(b),
        _ => 0,
    }
}

fn decode_file(path: &Path) -> Tally {
    let file = File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    decode(FromStd(file))
}

fn decode_memory(doc: &[u8]) -> Tally {
    decode(doc)
}

/// Runs `f` RUNS times; the fastest time and the (identical) results.
fn best_of<T: PartialEq + Debug>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut first = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = black_box(f());
        let took = start.elapsed();
        best = best.min(took);
        match &first {
            None => first = Some(out),
            Some(f) => assert_eq!(f, &out, "results differ between runs"),
        }
    }
    (best, first.expect("RUNS > 0"))
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / 1e6
}

// ---------------------------------------------------------------------------------------------
// Our encoder: the decoded events, recorded once, replayed into a Writer.

enum Rec {
    Start(Tag),
    Empty(Tag),
    End,
    /// A text piece: offset and length in the arena.
    Text(usize, usize),
    Opaque(u32),
    OpaqueData(usize, usize),
}

struct Recording {
    events: Vec<Rec>,
    arena: Vec<u8>,
}

fn record(doc: &[u8]) -> Recording {
    let mut reader = Reader::<&[u8], BUF, DEPTH>::new(doc);
    let mut rec = Recording {
        events: Vec::new(),
        arena: Vec::with_capacity(doc.len()),
    };
    // The reader follows an element without content with its End; the writer's `empty`
    // writes both at once.
    let mut skip_end = false;
    loop {
        let ev = match reader.next().expect("the input decodes") {
            Event::Start {
                tag,
                has_content: true,
            } => Rec::Start(tag),
            Event::Start {
                tag,
                has_content: false,
            } => {
                skip_end = true;
                Rec::Empty(tag)
            }
            Event::End(_) if skip_end => {
                skip_end = false;
                continue;
            }
            Event::End(_) => Rec::End,
            Event::Text(s) => {
                rec.arena.extend_from_slice(s.as_bytes());
                Rec::Text(rec.arena.len() - s.len(), s.len())
            }
            Event::Opaque { len } => Rec::Opaque(len),
            Event::OpaqueData(d) => {
                rec.arena.extend_from_slice(d);
                Rec::OpaqueData(rec.arena.len() - d.len(), d.len())
            }
            Event::Eof => return rec,
        };
        rec.events.push(ev);
    }
}

/// Encodes the recording into `out` (cleared first, so a pre-sized Vec never grows).
fn encode(rec: &Recording, out: &mut Vec<u8>) -> usize {
    out.clear();
    let mut w = Writer::new(&mut *out);
    let a = &rec.arena;
    for ev in &rec.events {
        let r = match *ev {
            Rec::Start(tag) => w.start(tag),
            Rec::Empty(tag) => w.empty(tag),
            Rec::End => w.end(),
            Rec::Text(at, n) => w.text_piece(&a[at..at + n]),
            Rec::Opaque(len) => w.opaque_header(len),
            Rec::OpaqueData(at, n) => w.opaque_piece(&a[at..at + n]),
        };
        r.expect("re-encoding the recorded events");
    }
    w.finish().expect("the recording is complete");
    out.len()
}

// ---------------------------------------------------------------------------------------------
// libwbxml and the child processes.

/// The C harness's one line of output.
#[derive(Debug, Clone, Copy)]
struct CResult {
    bytes: u64,
    best_ns: u64,
    elements: u64,
    text_bytes: u64,
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in the harness's output: {line}"))
}

fn run_harness(harness: &Path, file: &Path, repeat: u32) -> CResult {
    let out = Command::new(harness)
        .arg("--repeat")
        .arg(repeat.to_string())
        .arg(file)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", harness.display()));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libwbxml_parse failed on {}: {}",
        file.display(),
        out.status
    );
    CResult {
        bytes: field(&line, "bytes"),
        best_ns: field(&line, "best_ns"),
        elements: field(&line, "elements"),
        text_bytes: field(&line, "text_bytes"),
    }
}

/// An LD_PRELOAD shim that counts the heap of a C process (via glibc's `__libc_*` entry
/// points) and prints its high-water mark to stderr at exit.
const HEAP_SHIM_C: &str = r#"
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static size_t cur, peak;
static void *up(void *p) {
    if (p) { cur += malloc_usable_size(p); if (cur > peak) peak = cur; }
    return p;
}
void *malloc(size_t n) { return up(__libc_malloc(n)); }
void *calloc(size_t a, size_t b) { return up(__libc_calloc(a, b)); }
void *memalign(size_t al, size_t n) { return up(__libc_memalign(al, n)); }
void *aligned_alloc(size_t al, size_t n) { return up(__libc_memalign(al, n)); }
int posix_memalign(void **out, size_t al, size_t n) {
    void *p = up(__libc_memalign(al, n));
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void *realloc(void *q, size_t n) {
    size_t old = q ? malloc_usable_size(q) : 0;
    void *p = __libc_realloc(q, n);
    if (p) { cur -= old; up(p); } else if (q && n == 0) { cur -= old; }
    return p;
}
void free(void *p) { if (p) cur -= malloc_usable_size(p); __libc_free(p); }
__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "heap_peak_bytes=%zu\n", peak);
}
"#;

/// Peak heap of one libwbxml parse of `file`, minus the harness's own copy of the file; or
/// why it could not be measured.
fn libwbxml_heap(
    tools: &Path,
    harness: &Path,
    file: &Path,
    file_len: usize,
) -> Result<usize, String> {
    let src = tools.join("heap_shim.c");
    let so = tools.join("heap_shim.so");
    fs::write(&src, HEAP_SHIM_C).map_err(|e| e.to_string())?;
    let ok = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .map_err(|e| format!("cc: {e}"))?;
    if !ok.success() {
        return Err("building the heap shim failed".into());
    }
    let out = Command::new(harness)
        .arg(file)
        .env("LD_PRELOAD", &so)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("libwbxml_parse under the shim: {}", out.status));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let peak = field(&err, "heap_peak_bytes") as usize;
    Ok(peak.saturating_sub(file_len))
}

/// The argument that makes this binary the RSS helper instead of the benchmark.
const RSS_HELPER_ARG: &str = "--rss-helper";

/// A child process that runs commands for peak-RSS measurement.
///
/// On Linux a child's `ru_maxrss` is at least the RSS high-water mark of the process that
/// spawned it (exec records the replaced address space's high-water mark, and a spawned
/// child starts out in, or as a copy of, its parent's). This benchmark holds hundreds of MB
/// by the time it measures, so the children are spawned by this helper instead: a copy of the
/// bench binary started before anything large was allocated, which stays at a few MB. Its own
/// floor is reported by measuring `/bin/true` the same way.
struct RssHelper {
    child: std::process::Child,
    to: std::process::ChildStdin,
    from: std::io::BufReader<std::process::ChildStdout>,
}

impl RssHelper {
    fn start() -> RssHelper {
        let exe = std::env::current_exe().expect("cannot find the bench executable");
        let mut child = Command::new(exe)
            .arg(RSS_HELPER_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the RSS helper");
        let to = child.stdin.take().expect("piped stdin");
        let from = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        RssHelper { child, to, from }
    }

    /// Peak RSS in KiB of `argv` run to its end with output to /dev/null.
    fn measure(&mut self, argv: &[&str]) -> Result<u64, String> {
        use std::io::{BufRead as _, Write as _};
        writeln!(self.to, "{}", argv.join("\t")).map_err(|e| format!("RSS helper: {e}"))?;
        let mut line = String::new();
        self.from
            .read_line(&mut line)
            .map_err(|e| format!("RSS helper: {e}"))?;
        match line.trim_end().split_once(' ') {
            Some(("ok", kib)) => kib
                .parse()
                .map_err(|e| format!("RSS helper said {line:?}: {e}")),
            Some(("err", message)) => Err(message.to_string()),
            _ => Err(format!("RSS helper said {line:?}")),
        }
    }

    fn stop(self) {
        let RssHelper {
            mut child,
            to,
            from,
        } = self;
        drop(to);
        drop(from);
        let _ = child.wait();
    }
}

/// The helper's side: one tab-separated command a line in, `ok KIB` or `err MESSAGE` out.
fn rss_helper() {
    use std::io::{BufRead as _, Write as _};
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let mut argv = line.split('\t');
        let reply = match argv.next() {
            Some(program) => match rusage::run_to_end(Command::new(program).args(argv), true)
                .map(|u| u.ru_maxrss as u64)
            {
                Ok(kib) => format!("ok {kib}"),
                Err(e) => format!("err {}", e.replace('\n', " ")),
            },
            None => "err empty command".to_string(),
        };
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

/// `target/`: the nearest ancestor of this executable that cargo marked as a target dir.
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

/// Where `cargo build --release` puts binaries: this bench's own profile directory.
fn profile_dir(target: &Path) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| target.join("release"))
}

fn newer(a: &Path, than: &Path) -> bool {
    let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((m(a), m(than)), (Some(a), Some(b)) if a >= b)
}

fn build_harness(manifest_dir: &Path, target: &Path) -> PathBuf {
    let src = manifest_dir.join("benches/c/libwbxml_parse.c");
    let bin = target.join("libwbxml_parse");
    if newer(&bin, &src) {
        return bin;
    }
    eprintln!("building {}", bin.display());
    let ok = Command::new("cc")
        .args(["-O2", "-I/usr/include/libwbxml-1.0", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg("-lwbxml2")
        .status()
        .unwrap_or_else(|e| panic!("cannot run cc: {e}"));
    assert!(
        ok.success(),
        "building the libwbxml harness failed (is libwbxml2-dev installed?)"
    );
    bin
}

fn build_easyncctl(manifest_dir: &Path, profile: &Path) -> Result<PathBuf, String> {
    let bin = profile.join("easyncctl");
    eprintln!("building easyncctl (cargo build --release --bin easyncctl)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "easyncctl"])
        .current_dir(manifest_dir)
        .status();
    match built {
        Ok(s) if s.success() && bin.is_file() => Ok(bin),
        other if bin.is_file() => {
            eprintln!("warning: building easyncctl failed ({other:?}); using the existing binary");
            Ok(bin)
        }
        other => Err(format!("no easyncctl: the build failed ({other:?})")),
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

struct Row {
    name: &'static str,
    ours: String,
    theirs: String,
    ratio: String,
}

fn speed_row(name: &'static str, ours: f64, theirs: Option<f64>) -> Row {
    Row {
        name,
        ours: format!("{ours:.1} MB/s"),
        theirs: theirs.map_or("-".into(), |t| format!("{t:.1} MB/s")),
        ratio: theirs.map_or("-".into(), |t| format!("{:.2}x", ours / t)),
    }
}

fn memory_row(name: &'static str, ours_kib: Option<f64>, theirs_kib: Option<f64>) -> Row {
    let kib = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.1} KiB"));
    let ratio = match (ours_kib, theirs_kib) {
        (Some(o), Some(t)) if o > 0.0 => format!("{:.1}x", t / o),
        (Some(_), Some(_)) => "inf (easync 0)".into(),
        _ => "-".into(),
    };
    Row {
        name,
        ours: kib(ours_kib),
        theirs: kib(theirs_kib),
        ratio,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn profile_loop(which: &str) {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = match which {
        "dense" => "token-dense.wbxml",
        "large" => "large-body.wbxml",
        other => panic!("--profile takes dense or large, not {other}"),
    };
    let path = target_dir(manifest_dir).join("bench-data").join(name);
    let doc = fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run the full bench once first)", path.display()));
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < Duration::from_secs(5) {
        black_box(decode_memory(&doc));
        runs += 1;
    }
    let took = start.elapsed();
    println!(
        "{name}: {runs} decodes, {:.1} MB/s",
        mb_per_s(doc.len() * runs as usize, took)
    );
}

fn main() {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == RSS_HELPER_ARG)
    {
        rss_helper();
        return;
    }
    // `cargo bench --bench wbxml -- --profile dense|large`: only decode that input from memory
    // for a few seconds (for `perf record`), using the files of an earlier full run.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        profile_loop(args.get(i + 1).map_or("large", String::as_str));
        return;
    }
    // Before this process grows: see `RssHelper`.
    let mut rss = RssHelper::start();
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = target_dir(manifest_dir);
    let data_dir = target.join("bench-data");
    fs::create_dir_all(&data_dir).expect("cannot create target/bench-data");

    eprintln!("generating inputs in {}", data_dir.display());
    let dense = token_dense();
    let large = large_body();
    let dense_path = data_dir.join("token-dense.wbxml");
    let large_path = data_dir.join("large-body.wbxml");
    let how = (store(&dense_path, &dense), store(&large_path, &large));
    eprintln!(
        "  token-dense {} bytes ({}), large-body {} bytes ({})",
        dense.len(),
        how.0,
        large.len(),
        how.1
    );

    let harness = build_harness(manifest_dir, &target);

    // libwbxml first: its counts are the reference for ours.
    eprintln!("libwbxml: parsing each input {RUNS} times");
    let c_dense = run_harness(&harness, &dense_path, RUNS as u32);
    let c_large = run_harness(&harness, &large_path, RUNS as u32);

    eprintln!("easync: decoding each input {RUNS} times from file and from memory");
    let (dense_file_t, dense_tally) = best_of(|| decode_file(&dense_path));
    let (dense_mem_t, dense_mem_tally) = best_of(|| decode_memory(&dense));
    let (large_file_t, large_tally) = best_of(|| decode_file(&large_path));
    let (large_mem_t, large_mem_tally) = best_of(|| decode_memory(&large));
    for (name, ours, mem, c, len) in [
        (
            "token-dense",
            dense_tally,
            dense_mem_tally,
            c_dense,
            dense.len(),
        ),
        (
            "large-body",
            large_tally,
            large_mem_tally,
            c_large,
            large.len(),
        ),
    ] {
        assert_eq!(ours, mem, "{name}: file and memory decodes differ");
        assert_eq!(
            c.bytes, len as u64,
            "{name}: libwbxml read a different size"
        );
        assert_eq!(
            (ours.elements, ours.text_bytes),
            (c.elements, c.text_bytes),
            "{name}: easync (elements, text bytes) differ from libwbxml's"
        );
    }

    // Sensitivity, not a target: the same kind of document with text mostly not ASCII.
    eprintln!("sensitivity: a UTF-8-heavy input, easync from memory and libwbxml");
    let heavy = utf8_heavy();
    let heavy_path = data_dir.join("utf8-heavy.wbxml");
    store(&heavy_path, &heavy);
    let c_heavy = run_harness(&harness, &heavy_path, RUNS as u32);
    let (heavy_t, heavy_tally) = best_of(|| decode_memory(&heavy));
    assert_eq!(
        (heavy_tally.elements, heavy_tally.text_bytes),
        (c_heavy.elements, c_heavy.text_bytes),
        "utf8-heavy: easync (elements, text bytes) differ from libwbxml's"
    );
    let non_ascii =
        |doc: &[u8]| doc.iter().filter(|&&b| b >= 0x80).count() as f64 / doc.len() as f64 * 100.0;

    eprintln!("easync: heap high-water of each decode");
    let probe = heap_high_water(|| black_box(vec![1u8; 4096])).1;
    assert!(
        probe >= 4096,
        "the allocation counter does not count ({probe})"
    );
    let heap = [
        heap_high_water(|| decode_file(&dense_path)).1,
        heap_high_water(|| decode_memory(&dense)).1,
        heap_high_water(|| decode_file(&large_path)).1,
        heap_high_water(|| decode_memory(&large)).1,
    ];
    let our_heap = heap.iter().copied().max().unwrap_or(0);

    eprintln!("easync: encoding each input {RUNS} times");
    let mut out = Vec::with_capacity(large.len());
    let dense_rec = record(&dense);
    let (dense_enc_t, dense_enc_len) = best_of(|| encode(&dense_rec, &mut out));
    assert!(
        out == dense,
        "token-dense: re-encoding is not byte-identical"
    );
    drop(dense_rec);
    let large_rec = record(&large);
    let (large_enc_t, large_enc_len) = best_of(|| encode(&large_rec, &mut out));
    assert!(
        out == large,
        "large-body: re-encoding is not byte-identical"
    );
    drop(large_rec);
    drop(out);

    let tools = target.join("bench-tools");
    fs::create_dir_all(&tools).expect("cannot create target/bench-tools");
    eprintln!("libwbxml: heap high-water of one parse (LD_PRELOAD counter)");
    let c_heap_dense = libwbxml_heap(&tools, &harness, &dense_path, dense.len());
    let c_heap_large = libwbxml_heap(&tools, &harness, &large_path, large.len());

    let easyncctl = build_easyncctl(manifest_dir, &profile_dir(&target));
    eprintln!("peak RSS: easyncctl wbxml decode and wbxml2xml on the large-body input");
    let large_arg = large_path.to_str().expect("the target path is UTF-8");
    let our_rss = easyncctl.and_then(|bin| {
        let bin = bin.to_str().expect("the target path is UTF-8").to_string();
        rss.measure(&[&bin, "wbxml", "decode", "-o", "/dev/null", large_arg])
    });
    let their_rss = rss.measure(&[
        "wbxml2xml",
        "-k",
        "-m",
        "0",
        "-l",
        "ACTIVESYNC",
        "-o",
        "/dev/null",
        large_arg,
    ]);
    let rss_floor = rss.measure(&["/bin/true"]);
    rss.stop();
    for (who, r) in [("easyncctl", &our_rss), ("wbxml2xml", &their_rss)] {
        if let Err(e) = r {
            eprintln!("warning: peak RSS of {who} not measured: {e}");
        }
    }

    // ---- the table
    let c_speed = |c: &CResult| c.bytes as f64 / c.best_ns as f64 * 1e3;
    let dense_c = c_speed(&c_dense);
    let large_c = c_speed(&c_large);
    let speeds = [
        mb_per_s(dense.len(), dense_file_t),
        mb_per_s(dense.len(), dense_mem_t),
        mb_per_s(large.len(), large_file_t),
        mb_per_s(large.len(), large_mem_t),
    ];
    let kib = |b: usize| b as f64 / 1024.0;
    // ru_maxrss is never below the helper's floor: at the floor, it is only an upper bound.
    let at_floor = matches!((&our_rss, &rss_floor), (Ok(o), Ok(f)) if *o <= *f + 64);
    let mut rss_row = memory_row(
        "decode peak RSS, 100 MB (whole process)",
        our_rss.as_ref().ok().map(|&k| k as f64),
        their_rss.as_ref().ok().map(|&k| k as f64),
    );
    if at_floor {
        rss_row.ours = format!("<= {}", rss_row.ours);
        rss_row.ratio = format!(">= {}", rss_row.ratio);
    }
    let rows = [
        speed_row("token-dense decode (file)", speeds[0], Some(dense_c)),
        speed_row("token-dense decode (memory)", speeds[1], Some(dense_c)),
        speed_row("large-body decode (file)", speeds[2], Some(large_c)),
        speed_row("large-body decode (memory)", speeds[3], Some(large_c)),
        speed_row(
            "token-dense encode",
            mb_per_s(dense_enc_len, dense_enc_t),
            None,
        ),
        speed_row(
            "large-body encode",
            mb_per_s(large_enc_len, large_enc_t),
            None,
        ),
        memory_row(
            "decode heap high-water",
            Some(kib(our_heap)),
            c_heap_large.as_ref().ok().map(|&b| kib(b)),
        ),
        rss_row,
    ];
    println!();
    println!(
        "WBXML codec, best of {RUNS} (1 MB = 10^6 bytes). ratio: easync/libwbxml for speed, \
         libwbxml/easync for memory; above 1 means easync is better."
    );
    let w0 = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    println!(
        "{:<w0$}  {:>13}  {:>14}  {:>14}",
        "", "easync", "libwbxml", "ratio"
    );
    for r in &rows {
        println!(
            "{:<w0$}  {:>13}  {:>14}  {:>14}",
            r.name, r.ours, r.theirs, r.ratio
        );
    }
    println!(
        "inputs: token-dense {} bytes, {} elements, {} text bytes; large-body {} bytes, {} elements, \
         {} text bytes (counts equal libwbxml's)",
        dense.len(),
        dense_tally.elements,
        dense_tally.text_bytes,
        large.len(),
        large_tally.elements,
        large_tally.text_bytes
    );
    println!(
        "notes: libwbxml parses from memory only (its file read is untimed), so its number is the same \
         in the file and memory rows; it has no streaming encoder, so the encode rows have no baseline. \
         Encode = replaying the recorded events into Writer<&mut Vec<u8>> (pre-sized), output \
         byte-identical to the input."
    );
    println!(
        "heap high-water, bytes: easync token-dense file {} / memory {}, large-body file {} / memory {}; \
         libwbxml (LD_PRELOAD counter, minus the harness's own copy of the input) token-dense {}, large-body {}",
        heap[0],
        heap[1],
        heap[2],
        heap[3],
        c_heap_dense.map_or_else(|e| format!("n/a ({e})"), |b| b.to_string()),
        c_heap_large
            .as_ref()
            .map_or_else(|e| format!("n/a ({e})"), |b| b.to_string()),
    );
    let heavy_speed = mb_per_s(heavy.len(), heavy_t);
    let heavy_c = c_speed(&c_heavy);
    println!(
        "text mix: token-dense {:.1}% and large-body {:.1}% non-ASCII bytes. Sensitivity (not a target): \
         the same kind of {} MB document with {:.1}% non-ASCII bytes decodes at {:.1} MB/s \
         (memory) vs libwbxml {:.1} MB/s: {:.2}x",
        non_ascii(&dense),
        non_ascii(&large),
        heavy.len() / 1_000_000,
        non_ascii(&heavy),
        heavy_speed,
        heavy_c,
        heavy_speed / heavy_c
    );
    println!(
        "peak RSS: `easyncctl wbxml decode -o /dev/null` vs `wbxml2xml -k -m 0 -l ACTIVESYNC -o /dev/null`, \
         large-body input, ru_maxrss from wait4, spawned by a helper whose own floor (/bin/true \
         measured the same way) is {}",
        rss_floor.map_or_else(|e| format!("n/a ({e})"), |k| format!("{k} KiB"))
    );

    // ---- the targets (informational)
    let dense_ratio = speeds[0].min(speeds[1]) / dense_c;
    let large_ratio = speeds[2].min(speeds[3]) / large_c;
    println!();
    println!("targets (informational):");
    let rss_value = match &our_rss {
        Ok(k) if at_floor => format!("<= {:.1} MiB (at the helper's floor)", *k as f64 / 1024.0),
        Ok(k) => format!("{:.1} MiB", *k as f64 / 1024.0),
        Err(e) => format!("not measured ({e})"),
    };
    let targets = [
        (
            "token-dense decode >= 2x libwbxml",
            format!("{dense_ratio:.2}x (worse of file/memory)"),
            dense_ratio >= 2.0,
        ),
        (
            "large-body decode >= 1x libwbxml",
            format!("{large_ratio:.2}x (worse of file/memory)"),
            large_ratio >= 1.0,
        ),
        (
            "decode heap < 64 KiB",
            format!("{:.1} KiB", kib(our_heap)),
            our_heap < 64 * 1024,
        ),
        (
            "decode peak RSS < 8 MiB",
            rss_value,
            our_rss.as_ref().is_ok_and(|&k| k < 8 * 1024),
        ),
    ];
    let w1 = targets.iter().map(|t| t.1.len()).max().unwrap_or(0);
    for (what, value, ok) in &targets {
        println!("  {what:<34} {value:<w1$}  {}", verdict(*ok));
    }
}
