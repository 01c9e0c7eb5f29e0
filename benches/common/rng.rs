//! Deterministic inputs for the benchmarks: a fixed-seed generator and a word list, so every
//! run measures the same bytes.

#![allow(dead_code)] // each bench uses a different part

/// A small fixed-seed generator (SplitMix64): the inputs are the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

pub const ASCII_WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "meeting",
    "project",
    "report",
    "please",
    "review",
    "attached",
    "budget",
    "schedule",
    "tomorrow",
    "morning",
    "thanks",
    "regards",
    "update",
    "quarterly",
    "numbers",
    "draft",
    "final",
    "team",
    "customer",
    "release",
    "server",
    "mailbox",
    "calendar",
    "device",
    "sync",
    "policy",
    "folder",
    "message",
    "a",
    "is",
    "we",
    "will",
    "can",
    "you",
    "for",
    "on",
    "with",
    "this",
    "that",
    "from",
    "by",
    "at",
    "as",
];
