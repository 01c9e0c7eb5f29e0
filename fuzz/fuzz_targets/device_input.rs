//! The daemon's small on-disk and hook decoders on any bytes: a policy hook's exit status
//! and stdout JSON, the LUKS header read back after a crypto-erase (LUKS1, LUKS2 binary
//! headers and JSON area), the superblock probe after `mkfs`, the failed-unlock count, the
//! wipe phase record, `state/folders.json`, `state/policy.json`, the account state file and
//! the OAuth tokens file. Hooks are OEM programs and files can be damaged by a failing disk
//! or by tampering: a bad input is an error, never a panic, and what is sound reads back
//! the same once written again.
#![no_main]

use std::io::{self, Cursor, Read, Seek, SeekFrom};

use easync::device::{hooks, unlock, wipe};
use easync::eas::policy::Policy;
use easync::engine::enforce;
use easync::store::{choices::FolderChoices, credentials, state};
use libfuzzer_sys::fuzz_target;

/// What the fuzzed hook was given (real element names of three concerns).
const ELEMENTS: [(&str, &str); 3] = [
    ("DevicePasswordEnabled", "1"),
    ("MinDevicePasswordLength", "6"),
    ("AllowCamera", "0"),
];

/// A device holding `parts` (offset, bytes) and zeros elsewhere, as long as its last part
/// ends: LUKS2 keeps its second header 16 KiB to 4 MiB in, further than fuzz inputs reach.
struct SparseDevice<'a> {
    parts: Vec<(u64, &'a [u8])>,
    len: u64,
    pos: u64,
}

impl Read for SparseDevice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.len.saturating_sub(self.pos).min(buf.len() as u64) as usize;
        // Offsets stay below 8 MiB (LUKS2 header sizes plus a header): no sum overflows.
        let buf = &mut buf[..room];
        buf.fill(0);
        for &(at, bytes) in &self.parts {
            let end = at + bytes.len() as u64;
            let (from, to) = (self.pos.max(at), (self.pos + room as u64).min(end));
            if from < to {
                let (src, dst) = ((from - at) as usize, (from - self.pos) as usize);
                let n = (to - from) as usize;
                buf[dst..dst + n].copy_from_slice(&bytes[src..src + n]);
            }
        }
        self.pos += room as u64;
        Ok(room)
    }
}

impl Seek for SparseDevice<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match to {
            SeekFrom::Start(n) => self.pos = n,
            _ => return Err(io::Error::other("only absolute seeks")),
        }
        Ok(self.pos)
    }
}

/// The device a LUKS input describes: its first byte says whether the rest is the whole
/// device, or a primary header (first half) and a secondary one (second half) at one of
/// the offsets LUKS2 allows.
fn luks_device(input: &[u8]) -> SparseDevice<'_> {
    let (layout, rest) = input.split_first().map_or((0, input), |(l, r)| (*l, r));
    let sizes = wipe::luks::LUKS2_HEADER_SIZES;
    let parts = if layout < 0x80 {
        vec![(0, rest)]
    } else {
        let (primary, secondary) = rest.split_at(rest.len() / 2);
        vec![
            (0, primary),
            (sizes[usize::from(layout) % sizes.len()], secondary),
        ]
    };
    let len = parts
        .iter()
        .map(|(at, b)| at + b.len() as u64)
        .max()
        .unwrap_or(0);
    SparseDevice { parts, len, pos: 0 }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 10 {
        0 => {
            let Some((&status, output)) = rest.split_first() else {
                return;
            };
            // Exit codes 0..=3 (what the contract gives meaning to) or a signal.
            let raw = if status & 0x80 == 0 {
                i32::from(status & 3) << 8
            } else {
                i32::from(status & 0x1f)
            };
            // The same bytes on stdout (the JSON answer) and stderr (quoted in errors).
            match hooks::fuzz_interpret(raw, output, output, &ELEMENTS) {
                Ok(hooks::HookOutcome::Partly(names)) => {
                    assert!(names.iter().all(|n| ELEMENTS.iter().any(|(e, _)| e == n)));
                }
                Ok(_) => {}
                Err(e) => drop(e.to_string()),
            }
        }
        1 => match wipe::luks::key_slots(&mut luks_device(rest)) {
            Ok(slots) => {
                assert!(slots.version == 1 || slots.version == 2);
                let mut unique = slots.active.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), slots.active.len(), "a key slot counted twice");
                if slots.version == 1 {
                    assert!(slots.active.len() <= 8);
                }
            }
            Err(e) => drop(e.to_string()),
        },
        2 => drop(wipe::luks::luks2_json_keyslots(rest)),
        3 => {
            if let Some((status, text)) = unlock::fuzz_count_file(rest) {
                let (again, text_again) =
                    unlock::fuzz_count_file(text.as_bytes()).expect("a written count reads back");
                assert_eq!(again.failures, status.failures);
                assert_eq!(again.wipe_due(), status.wipe_due());
                assert_eq!(again.remaining(), status.remaining());
                assert_eq!(text, text_again);
            }
        }
        4 => {
            if let Some(progress) = wipe::parse_progress(&String::from_utf8_lossy(rest)) {
                let line = wipe::progress_line(progress);
                assert_eq!(wipe::parse_progress(&line), Some(progress));
            }
        }
        5 => {
            if let Ok(chosen) = FolderChoices::parse(rest) {
                assert!(chosen.len() <= rest.len());
            }
        }
        6 => {
            if let Ok(elements) = enforce::parse_saved_policy(rest) {
                assert!(elements
                    .iter()
                    .all(|(n, _)| Policy::ELEMENT_NAMES.contains(n)));
            }
        }
        7 => {
            let Some((&version, payload)) = rest.split_first() else {
                return;
            };
            drop(state::fuzz_state_payload(version % 4, payload));
        }
        8 => {
            if let Ok(tokens) = credentials::fuzz_tokens_file(rest) {
                assert!(!tokens.access.expose().is_empty());
            }
        }
        _ => drop(wipe::superblock_type(&mut Cursor::new(rest))),
    }
});
