//! Round trips over every tag of every code page: writer → reader gives back what was
//! written, and (with the `xml` feature) WBXML → XML → WBXML gives back the same bytes.

use easync::wbxml::tags::PAGES;
use easync::wbxml::{Event, Reader, Tag, Writer};

const SYNC: Tag = Tag::new(0, 0x05);

#[derive(Debug, PartialEq)]
enum Ev {
    Start(Tag, bool),
    End(Tag),
    Text(String),
    Opaque(Vec<u8>),
}

/// A document holding every tag of `page` four ways: as a container, with text, empty, and
/// with opaque data. Returns it with the events a reader must give back.
fn page_document(page: usize) -> (Vec<u8>, Vec<Ev>) {
    let mut w = Writer::new(Vec::new());
    let mut ev = Vec::new();
    w.start(SYNC).unwrap();
    ev.push(Ev::Start(SYNC, true));
    for def in PAGES[page].tags {
        let tag = Tag::new(page as u8, def.token);
        let text = format!("{}:{} <&> é\r\n\t€😀 ]]>", PAGES[page].name, def.name);
        let opaque: Vec<u8> = (0..=255u8).chain([0, 0, 1]).collect();
        w.start(tag).unwrap();
        w.text_element(tag, &text).unwrap();
        w.empty(tag).unwrap();
        w.start(tag).unwrap();
        w.opaque(&opaque).unwrap();
        w.end().unwrap();
        w.end().unwrap();
        ev.extend([
            Ev::Start(tag, true),
            Ev::Start(tag, true),
            Ev::Text(text),
            Ev::End(tag),
            Ev::Start(tag, false),
            Ev::End(tag),
            Ev::Start(tag, true),
            Ev::Opaque(opaque),
            Ev::End(tag),
            Ev::End(tag),
        ]);
    }
    w.end().unwrap();
    ev.push(Ev::End(SYNC));
    (w.finish().unwrap(), ev)
}

fn read_back(doc: &[u8]) -> Vec<Ev> {
    let mut r = Reader::<&[u8], 256, 8>::new(doc);
    let mut out = Vec::new();
    loop {
        match r.next().unwrap() {
            Event::Start { tag, has_content } => out.push(Ev::Start(tag, has_content)),
            Event::End(tag) => out.push(Ev::End(tag)),
            Event::Text(t) => match out.last_mut() {
                Some(Ev::Text(s)) => s.push_str(t),
                _ => out.push(Ev::Text(t.to_owned())),
            },
            Event::Opaque { len } => out.push(Ev::Opaque(Vec::with_capacity(len as usize))),
            Event::OpaqueData(d) => match out.last_mut() {
                Some(Ev::Opaque(v)) => v.extend_from_slice(d),
                other => panic!("opaque data after {other:?}"),
            },
            Event::Eof => return out,
        }
    }
}

#[test]
fn writer_then_reader_over_every_tag() {
    let mut tags = 0;
    for (number, page) in PAGES.iter().enumerate() {
        let (doc, expected) = page_document(number);
        assert_eq!(read_back(&doc), expected, "page {}", page.name);
        tags += page.tags.len();
    }
    assert!(tags > 600, "only {tags} tags in the tables");
}

#[cfg(feature = "xml")]
#[test]
fn wbxml_to_xml_to_wbxml_is_byte_identical_over_every_tag() {
    use easync::wbxml::xml::{decode::decode, encode::encode};
    for (number, page) in PAGES.iter().enumerate() {
        let (doc, _) = page_document(number);
        let mut xml = Vec::new();
        decode(&mut Reader::<&[u8], 512, 8>::new(&doc[..]), &mut xml).unwrap();
        let back = encode(&xml[..], Vec::new()).unwrap();
        assert!(
            back == doc,
            "page {}: re-encoded bytes differ\n{}",
            page.name,
            String::from_utf8_lossy(&xml)
        );
        // And once more from the re-encoded bytes: the XML is stable too.
        let mut xml2 = Vec::new();
        decode(&mut Reader::<&[u8], 512, 8>::new(&back[..]), &mut xml2).unwrap();
        assert_eq!(xml, xml2);
    }
}

/// decode → encode → decode must give the same XML, and encode the same bytes twice.
#[cfg(feature = "xml")]
fn assert_stable(doc: &[u8]) -> Vec<u8> {
    use easync::wbxml::xml::{decode::decode, encode::encode};
    let mut xml = Vec::new();
    decode(&mut Reader::<&[u8], 256, 16>::new(doc), &mut xml).unwrap();
    let wbxml = encode(&xml[..], Vec::new()).unwrap();
    let mut xml2 = Vec::new();
    decode(&mut Reader::<&[u8], 256, 16>::new(&wbxml[..]), &mut xml2).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&xml),
        String::from_utf8_lossy(&xml2)
    );
    wbxml
}

/// Found by the roundtrip fuzzer: text beside child elements picked up the line breaks and
/// indentation written before the children.
#[cfg(feature = "xml")]
#[test]
fn mixed_content_fuzz_regression() {
    assert_stable(include_bytes!("data/fuzz-roundtrip-mixed-content.wbxml"));
}

/// Found by the roundtrip fuzzer: an empty inline string followed by another string was
/// marked as an empty value although the two join into one.
#[cfg(feature = "xml")]
#[test]
fn empty_string_then_text_fuzz_regression() {
    assert_stable(include_bytes!(
        "data/fuzz-roundtrip-empty-string-then-text.wbxml"
    ));
}

/// Found by the roundtrip fuzzer: a whitespace-only piece of a longer text was escaped or not
/// depending on where the reader's buffer cut the text.
#[cfg(feature = "xml")]
#[test]
fn whitespace_piece_fuzz_regression() {
    assert_stable(include_bytes!("data/fuzz-roundtrip-whitespace-piece.wbxml"));
}

#[cfg(feature = "xml")]
#[test]
fn mixed_content_and_whitespace_only_text_round_trip_exactly() {
    let status = Tag::new(0, 0x0E);
    let mut w = Writer::new(Vec::new());
    w.start(SYNC).unwrap();
    w.text("a").unwrap();
    w.start(status).unwrap();
    w.text(" \t\n").unwrap();
    w.end().unwrap();
    w.text("  ").unwrap();
    w.empty(status).unwrap();
    w.text("b\n").unwrap();
    w.end().unwrap();
    let doc = w.finish().unwrap();
    assert_eq!(assert_stable(&doc), doc);
}

#[cfg(feature = "xml")]
#[test]
fn two_empty_strings_stay_an_empty_value() {
    let mut w = Writer::new(Vec::new());
    w.start(SYNC).unwrap();
    w.text("").unwrap();
    w.text("").unwrap();
    w.end().unwrap();
    let doc = w.finish().unwrap();
    // The two strings join into one empty string.
    assert_eq!(assert_stable(&doc), b"\x03\x01\x6A\x00\x45\x03\x00\x01");
    // The fuzzer's find: the same inside a larger document.
    assert_stable(include_bytes!(
        "data/fuzz-roundtrip-two-empty-strings.wbxml"
    ));
}

#[cfg(feature = "xml")]
#[test]
fn opaque_beside_other_content_is_refused_clearly() {
    use easync::wbxml::xml::decode::{DecodeError, decode};
    let mut w = Writer::new(Vec::new());
    w.start(SYNC).unwrap();
    w.text("a").unwrap();
    w.opaque(b"xyz").unwrap();
    w.end().unwrap();
    let doc = w.finish().unwrap();
    let err = decode(
        &mut Reader::<&[u8], 256, 16>::new(&doc[..]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, DecodeError::Unrepresentable { offset: 10, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("opaque data follows other content")
    );
}
