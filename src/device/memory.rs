//! Memory the daemon gives back before it parks in a Ping, where it may wait for an hour.
//!
//! Two kinds of resident memory outlive a sync without being needed while parked:
//! - free heap that glibc keeps in its arenas (`malloc_trim` returns it);
//! - code and read-only data the sync ran through. The kernel maps up to 64 KiB around each
//!   page fault into a file mapping and keeps it mapped, so after one sync most of the
//!   executable and of glibc count in the daemon's resident set for as long as it lives.
//!
//! For the second kind, every private, read-only, file-backed mapping that holds no page
//! of its own (smaps `Anonymous: 0 kB`: nothing was copied on write, so the file has every
//! byte of it) is unmapped with `MADV_DONTNEED`. Its pages stay in the page cache, where
//! the kernel may reclaim them once nothing maps them; the next access maps them again
//! with a minor fault (or reads them from the file if they were reclaimed). Writable
//! mappings, mappings with copied pages and the kernel's own (`[vdso]`, `[stack]`) are left
//! alone, so no byte the process wrote can be lost.
//!
//! The pages are released on Linux, the heap trimmed with glibc; elsewhere each part does
//! nothing.

use std::io::{self, BufRead};

/// What [`release_idle_memory`] gave back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// File mappings whose pages were unmapped.
    pub mappings: usize,
    /// Their resident size before, as smaps reported it (bytes).
    pub resident_bytes: u64,
}

/// Returns free heap to the system and unmaps the resident pages of read-only file
/// mappings (see the module's text). Best effort: what cannot be read or advised is left
/// as it is, and the error is returned for the log.
pub fn release_idle_memory() -> io::Result<Released> {
    let released = drop_file_pages();
    trim_heap();
    released
}

/// Returns the heap's free memory to the system (glibc keeps freed pages resident in its
/// arenas otherwise).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists; it takes no
    // pointers and is thread-safe in glibc.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(target_os = "linux")]
fn drop_file_pages() -> io::Result<Released> {
    let smaps = std::fs::File::open("/proc/self/smaps")?;
    let ranges = droppable_mappings(io::BufReader::new(smaps))?;
    let mut released = Released::default();
    for range in ranges {
        // SAFETY: the range is a whole mapping of this process that is private, not
        // writable and backed by a file, with no copied-on-write page (checked from smaps
        // just now; without write permission no page can be copied since). MADV_DONTNEED
        // on it only drops page-table entries: every later access faults the same bytes
        // back in from the file, so no reader anywhere in the process can see a change.
        let rc = unsafe {
            nix::libc::madvise(
                range.start as *mut nix::libc::c_void,
                range.len,
                nix::libc::MADV_DONTNEED,
            )
        };
        // EINVAL (a locked mapping) or ENOMEM (gone since) leave it as it is.
        if rc == 0 {
            released.mappings += 1;
            released.resident_bytes += range.resident_bytes;
        }
    }
    Ok(released)
}

#[cfg(not(target_os = "linux"))]
fn drop_file_pages() -> io::Result<Released> {
    Ok(Released::default())
}

/// A mapping whose pages can be unmapped without losing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: usize,
    len: usize,
    resident_bytes: u64,
}

/// The mapping a header line of smaps opens, while its fields are read.
struct Candidate {
    mapping: Mapping,
    /// Private, not writable, backed by a file named by an absolute path.
    eligible: bool,
    anonymous_kib: Option<u64>,
    locked: bool,
}

impl Candidate {
    fn droppable(&self) -> bool {
        self.eligible
            && self.anonymous_kib == Some(0)
            && !self.locked
            && self.mapping.resident_bytes > 0
    }
}

/// Reads `/proc/<pid>/smaps` text and returns the mappings that may be dropped: private,
/// without write permission, file-backed, resident, not locked, and whose `Anonymous`
/// field is present and 0. A line it does not understand ends nothing: the mapping it
/// belongs to is only dropped if every condition was seen.
fn droppable_mappings(smaps: impl BufRead) -> io::Result<Vec<Mapping>> {
    let mut found = Vec::new();
    let mut current: Option<Candidate> = None;
    for line in smaps.lines() {
        let line = line?;
        if let Some(next) = parse_header(&line) {
            if let Some(done) = current.take().filter(Candidate::droppable) {
                found.push(done.mapping);
            }
            current = Some(next);
            continue;
        }
        let Some(candidate) = current.as_mut() else {
            continue;
        };
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "Rss" => {
                candidate.mapping.resident_bytes =
                    parse_kib(value).unwrap_or(0).saturating_mul(1024)
            }
            "Anonymous" => candidate.anonymous_kib = parse_kib(value),
            "Locked" => candidate.locked |= parse_kib(value).is_none_or(|kib| kib > 0),
            "VmFlags" => candidate.locked |= value.split_whitespace().any(|f| f == "lo"),
            _ => {}
        }
    }
    if let Some(done) = current.filter(Candidate::droppable) {
        found.push(done.mapping);
    }
    Ok(found)
}

/// `start-end perms offset dev inode [path]`, or None if the line is not a mapping header.
fn parse_header(line: &str) -> Option<Candidate> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?.as_bytes();
    if perms.len() != 4 || end <= start {
        return None;
    }
    let _offset = fields.next()?;
    let _device = fields.next()?;
    let inode: u64 = fields.next()?.parse().ok()?;
    let path = fields.next();
    let eligible = perms[1] == b'-'
        && perms[3] == b'p'
        && inode != 0
        && path.is_some_and(|p| p.starts_with('/'));
    Some(Candidate {
        mapping: Mapping {
            start,
            len: end - start,
            resident_bytes: 0,
        },
        eligible,
        anonymous_kib: None,
        locked: false,
    })
}

/// `   1234 kB` → 1234.
fn parse_kib(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let number = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mapping block as the kernel writes it, with the fields that matter here.
    fn block(header: &str, rss_kib: u64, anonymous_kib: u64, flags: &str) -> String {
        format!(
            "{header}\nSize:                132 kB\nRss:              {rss_kib:>6} kB\n\
             Pss:                 10 kB\nPrivate_Dirty:         0 kB\n\
             Anonymous:        {anonymous_kib:>6} kB\nLocked:                0 kB\n\
             VmFlags: {flags}\n"
        )
    }

    // The addresses fit in 32 bits: the tests run on armv7 too.
    #[test]
    fn only_clean_read_only_private_file_mappings_are_dropped() {
        let smaps = [
            // the executable's text: dropped
            block(
                "56000000-56200000 r-xp 00001000 fd:01 1234   /usr/bin/easyncd",
                1800,
                0,
                "rd ex mr mw me dw sd",
            ),
            // its read-only data: dropped
            block(
                "56200000-56280000 r--p 00201000 fd:01 1234   /usr/bin/easyncd",
                300,
                0,
                "rd mr mw me dw sd",
            ),
            // relocated read-only data (RELRO): it has copied pages, kept
            block(
                "56280000-56290000 r--p 00281000 fd:01 1234   /usr/bin/easyncd",
                64,
                64,
                "rd mr mw me dw ac sd",
            ),
            // writable data: kept
            block(
                "56290000-562a0000 rw-p 00291000 fd:01 1234   /usr/bin/easyncd",
                8,
                8,
                "rd wr mr mw me dw ac sd",
            ),
            // the heap and an anonymous mapping: kept
            block(
                "56300000-56400000 rw-p 00000000 00:00 0      [heap]",
                900,
                900,
                "rd wr mr mw me ac sd",
            ),
            block(
                "7f000000-7f010000 r--p 00000000 00:00 0 ",
                4,
                0,
                "rd mr mw me sd",
            ),
            // glibc's text: dropped
            block(
                "7f100000-7f260000 r-xp 00028000 fd:01 99 /usr/lib/aarch64-linux-gnu/libc.so.6",
                1200,
                0,
                "rd ex mr mw me sd",
            ),
            // a shared file mapping: kept
            block(
                "7f300000-7f301000 r--s 00000000 fd:01 77 /var/lib/some.db",
                4,
                0,
                "rd sh mr mw me ms sd",
            ),
            // a locked mapping: kept
            block(
                "7f400000-7f410000 r-xp 00000000 fd:01 55 /usr/lib/locked.so",
                64,
                0,
                "rd ex mr mw me lo sd",
            ),
            // not resident at all: nothing to do
            block(
                "7f500000-7f510000 r--p 00000000 fd:01 56 /usr/lib/cold.so",
                0,
                0,
                "rd mr mw me sd",
            ),
            // the kernel's own
            block(
                "bffe0000-bffe2000 r-xp 00000000 00:00 0 [vdso]",
                8,
                0,
                "rd ex mr mw me de sd",
            ),
            // an executable replaced on disk while it runs: its inode is still mapped
            block(
                "7f600000-7f610000 r-xp 00000000 fd:01 57 /usr/lib/old.so (deleted)",
                16,
                0,
                "rd ex mr mw me sd",
            ),
        ]
        .concat();
        let found = droppable_mappings(smaps.as_bytes()).unwrap();
        let starts: Vec<usize> = found.iter().map(|m| m.start).collect();
        assert_eq!(starts, vec![0x56000000, 0x56200000, 0x7f100000, 0x7f600000]);
        assert_eq!(found[0].len, 0x200000);
        assert_eq!(found[2].len, 0x160000);
        assert_eq!(found[0].resident_bytes, 1800 * 1024);
    }

    #[test]
    fn a_mapping_without_an_anonymous_field_is_kept() {
        // An older or unusual kernel: if the field is missing, copied pages cannot be ruled out.
        let smaps = "5600000000-5600200000 r-xp 00001000 fd:01 1234 /usr/bin/easyncd\nRss: 100 kB\nVmFlags: rd ex\n";
        assert!(droppable_mappings(smaps.as_bytes()).unwrap().is_empty());
        let garbled = "5600000000-5600200000 r-xp 00001000 fd:01 1234 /usr/bin/easyncd\nRss: 100 kB\nAnonymous: lots\n";
        assert!(droppable_mappings(garbled.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_not_a_mapping() {
        for text in [
            "",
            "\n\n",
            "zzzz-1000 r-xp 0 0 1 /x\nRss: 4 kB\nAnonymous: 0 kB\n",
            "2000-1000 r-xp 0 0 1 /x\nRss: 4 kB\nAnonymous: 0 kB\n",
            "1000-2000 r-x 0 0 1 /x\nRss: 4 kB\nAnonymous: 0 kB\n",
            "1000-2000 r-xp 0 0 x /x\nRss: 4 kB\nAnonymous: 0 kB\n",
            "1000-2000 r-xp 0 0 1 relative\nRss: 4 kB\nAnonymous: 0 kB\n",
            "Rss: 4 kB\nAnonymous: 0 kB\n",
        ] {
            assert!(
                droppable_mappings(text.as_bytes()).unwrap().is_empty(),
                "{text:?}"
            );
        }
    }

    /// The file-backed part of this process's resident set, from /proc/self/status.
    #[cfg(target_os = "linux")]
    fn rss_file_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("RssFile:"))?;
        parse_kib(line.split_once(':')?.1)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_gives_back_its_code_pages_and_keeps_working() {
        let before = rss_file_kib().expect("RssFile in /proc/self/status");
        let released = release_idle_memory().expect("smaps readable");
        let after = rss_file_kib().unwrap();
        assert!(released.mappings > 0, "{released:?}");
        assert!(
            after < before,
            "RssFile {before} KiB before, {after} KiB after: {released:?}"
        );
        // Everything unmapped comes back on use: formatting, allocation, hashing, a thread.
        let text = format!(
            "{:?}",
            std::collections::BTreeMap::from([(1, "one"), (2, "two")])
        );
        let joined = std::thread::spawn(move || text.len()).join().unwrap();
        assert_eq!(joined, 20);
        assert!(release_idle_memory().is_ok());
    }
}
