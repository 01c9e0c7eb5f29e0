//! Differential test of our WBXML codec against Debian's libwbxml 0.11.8 (`libwbxml2-utils`,
//! installed by tests/run.sh; the test fails, never skips, when it is missing).
//!
//! The corpus (`differential/corpus.rs`) is realistic EAS documents plus one document per
//! code page holding every tag of that page, all written with our `Writer` (bytes W). For
//! each document:
//!
//! 1. libwbxml decodes W (`wbxml2xml`); its XML, normalised to our XML form, must read as
//!    the XML our `decode` prints for W, and our `encode` must turn it into W again.
//! 2. Our `decode` of W, converted to libwbxml's dialect, goes through `xml2wbxml`: the bytes
//!    must be W, or W as libwbxml can express it (without the 16.1 elements it lacks, and
//!    with the two forms it cannot write normalised: see `Libwbxml::encodable`).
//! 3. Our reader's events and libwbxml's decoded tree agree element by element (namespace,
//!    name, content).
//!
//! libwbxml's quirks and how each is normalised are listed in `differential/libwbxml.rs`.

#![cfg(feature = "xml")]

#[path = "differential/corpus.rs"]
mod corpus;
#[path = "differential/dialect.rs"]
mod dialect;
#[path = "differential/libwbxml.rs"]
mod libwbxml;
#[path = "differential/tree.rs"]
mod tree;

use std::collections::BTreeSet;
use std::path::Path;

use easync::wbxml::tags::PAGES;
use easync::wbxml::xml::{decode::decode, encode::encode};
use easync::wbxml::{Reader, Tag};

use libwbxml::{Libwbxml, Scope};
use tree::{our_xml, read_tree};

#[derive(Default)]
struct Stats {
    documents: usize,
    /// Elements compared between the two decoders (check 3).
    elements: usize,
    /// WBXML bytes compared (checks 1 and 2).
    bytes: usize,
    /// 16.1 elements libwbxml cannot encode: checked by libwbxml's decoder only (checks 1
    /// and 3), left out of check 2.
    one_way: usize,
    /// Of those, the ones libwbxml decoded as `<unknown>` (the rest are elements it knows
    /// inside a 16.1 element).
    unknown: usize,
    /// Every tag of the corpus.
    tags: BTreeSet<(u8, u8)>,
}

fn lib() -> Libwbxml {
    Libwbxml::new(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential"))
}

/// Where two byte strings first differ, with some context, for the failure message.
fn byte_diff(what: &str, got: &[u8], want: &[u8]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let from = at.saturating_sub(16);
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "{what}: {} bytes, expected {}; first difference at byte {at}:\n  got      …{}\n  expected …{}",
        got.len(),
        want.len(),
        hex(&got[from..(at + 16).min(got.len())]),
        hex(&want[from..(at + 16).min(want.len())]),
    )
}

fn text_diff(what: &str, got: &str, want: &str) -> String {
    let line = got
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(got.lines().count().min(want.lines().count()));
    format!(
        "{what}, first at line {}:\n  got      {:?}\n  expected {:?}",
        line + 1,
        got.lines().nth(line).unwrap_or("<end>"),
        want.lines().nth(line).unwrap_or("<end>"),
    )
}

/// Runs the three checks on one document; returns what failed.
fn check_document(lib: &Libwbxml, stem: &str, doc: &tree::Node, stats: &mut Stats) -> Vec<String> {
    let mut failures = Vec::new();
    let w = doc.to_wbxml();
    let mut tags = Vec::new();
    doc.tags(&mut tags);
    stats.tags.extend(tags.iter().map(|t| (t.page, t.token)));

    // Our reader must give the tree back (the round-trip tests cover this in depth; here it
    // is the ground for check 3).
    let ours = match read_tree(&w) {
        Ok(t) if t == *doc => t,
        Ok(_) => return vec!["our reader does not give the written tree back".into()],
        Err(e) => return vec![e],
    };
    let mut our_printed = Vec::new();
    if let Err(e) = decode(&mut Reader::<&[u8]>::new(&w[..]), &mut our_printed) {
        return vec![format!("our decode failed: {e}")];
    }
    let our_printed = String::from_utf8(our_printed).expect("our decode prints UTF-8");

    // Check 1: libwbxml decodes, we encode.
    let lib_tree = lib.decode(&w, stem).and_then(|xml| libwbxml::parse(&xml));
    match &lib_tree {
        Err(e) => failures.push(format!("check 1: {e}")),
        Ok(lib_tree) => {
            let mut unknown = 0;
            match libwbxml::normalise(lib, lib_tree, Scope::ROOT, doc, &mut unknown) {
                Err(e) => failures.push(format!("check 1: {e}")),
                Ok(normalised) => {
                    stats.unknown += unknown;
                    let xml = our_xml(&normalised);
                    // The two decoders' XML must say the same, as an XML parser reads it
                    // (how text is escaped is the printer's choice).
                    match (
                        dialect::parse(xml.as_bytes()),
                        dialect::parse(our_printed.as_bytes()),
                    ) {
                        (Ok(a), Ok(b)) if a == b => {}
                        (Err(e), _) | (_, Err(e)) => failures.push(format!("check 1: {e}")),
                        _ => failures.push(text_diff(
                            "check 1: libwbxml's decoding, normalised, does not read as the XML \
                             our decode prints",
                            &xml,
                            &our_printed,
                        )),
                    }
                    match encode(xml.as_bytes(), Vec::new()) {
                        Err(e) => failures.push(format!(
                            "check 1: our encode refused libwbxml's normalised XML: {e}"
                        )),
                        Ok(back) if back != w => failures.push(byte_diff(
                            "check 1: our encode of libwbxml's decoding",
                            &back,
                            &w,
                        )),
                        Ok(_) => stats.bytes += w.len(),
                    }
                }
            }
        }
    }

    // Check 3: the two decoders element by element.
    if let Ok(lib_tree) = &lib_tree {
        match libwbxml::compare(lib, &ours, lib_tree, Scope::ROOT, "") {
            Ok(n) => stats.elements += n,
            Err(e) => failures.push(format!("check 3: {e}")),
        }
    }

    // Check 2: we decode, libwbxml encodes.
    let mut pruned = 0;
    let mut pruned_expected = 0;
    let expected = lib.encodable(doc, &mut pruned_expected);
    match dialect::to_libwbxml(lib, our_printed.as_bytes(), &mut pruned) {
        Err(e) => failures.push(format!("check 2: {e}")),
        Ok(dialect) => {
            assert_eq!(
                pruned, pruned_expected,
                "{stem}: our decode's XML and the corpus differ in their 16.1 elements"
            );
            stats.one_way += pruned;
            match (dialect, expected) {
                (Some(xml), Some(expected)) => {
                    let want = expected.to_wbxml();
                    match lib.encode(&xml, stem) {
                        Err(e) => failures.push(format!("check 2: {e}")),
                        Ok(got) if got != want => failures.push(byte_diff(
                            "check 2: libwbxml's encoding of our decode",
                            &got,
                            &want,
                        )),
                        Ok(_) => stats.bytes += want.len(),
                    }
                }
                (None, None) => {}
                (d, e) => failures.push(format!(
                    "check 2: the 16.1 root was pruned in one tree only ({}, {})",
                    d.is_some(),
                    e.is_some()
                )),
            }
        }
    }
    failures
}

#[test]
fn libwbxml_agrees_with_our_codec() {
    let lib = lib();
    let realistic = corpus::realistic();
    assert!(
        (20..=40).contains(&realistic.len()),
        "{} realistic documents",
        realistic.len()
    );
    let documents: Vec<(String, tree::Node)> = realistic
        .into_iter()
        .map(|(name, doc)| (name.to_owned(), doc))
        .chain(corpus::every_tag())
        .collect();

    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for (i, (name, doc)) in documents.iter().enumerate() {
        let stem = format!("{i:02}-{name}");
        stats.documents += 1;
        for f in check_document(&lib, &stem, doc, &mut stats) {
            failures.push(format!("{stem}: {f}"));
        }
    }

    let all_tags: usize = PAGES.iter().map(|p| p.tags.len()).sum();
    eprintln!(
        "differential test against libwbxml: {} documents, {} elements compared, {} bytes \
         compared, {} 16.1 elements checked one way only ({} of them decoded by libwbxml as \
         <unknown>), {} of {} tags covered, {} libwbxml spellings mapped",
        stats.documents,
        stats.elements,
        stats.bytes,
        stats.one_way,
        stats.unknown,
        stats.tags.len(),
        all_tags,
        lib.renamed_count(),
    );
    assert!(
        failures.is_empty(),
        "{} failures (scratch files in {}/differential):\n{}",
        failures.len(),
        env!("CARGO_TARGET_TMPDIR"),
        failures.join("\n")
    );
    assert!(stats.documents > 0 && stats.elements > 0 && stats.bytes > 0);
    assert!(stats.one_way > 0 && stats.unknown > 0);
    assert_eq!(stats.tags.len(), all_tags, "the corpus misses tags");
}

/// The tables the test relies on are consistent with ours.
#[test]
fn libwbxml_tables() {
    let lib = lib();
    libwbxml::lacks_is_exactly_16_1();
    assert_eq!(lib.renamed_count(), 67);
    // Every libwbxml name leads back to its tag on its page.
    for page in PAGES.iter() {
        for def in page.tags {
            let tag = Tag::new(page.number, def.token);
            assert_eq!(
                lib.tag_by_name(page.number, lib.name(tag)),
                Some(tag),
                "{tag}"
            );
        }
    }
    for (ns, name) in libwbxml::BINARY {
        assert!(lib.is_binary(Tag::by_name(ns, name).unwrap()));
    }
}
