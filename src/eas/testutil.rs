//! Test helpers: EAS documents written as readable XML (the form of `wbxml::xml`) turned into
//! WBXML fixtures, and written requests turned back into XML for assertions.

use crate::wbxml;

/// WBXML for an XML document in the form `wbxml::xml` reads (e.g.
/// `<Sync xmlns="AirSync:"><Status>1</Status></Sync>`). Indentation between elements is
/// formatting, not content. Panics on malformed XML: fixtures are part of the test.
pub fn wbxml_from_xml(xml: &str) -> Vec<u8> {
    wbxml::xml::encode::encode(xml.as_bytes(), Vec::new())
        .unwrap_or_else(|e| panic!("bad XML fixture: {e}\n{xml}"))
}

/// The XML form of a WBXML document, one element per line, without the XML declaration.
pub fn xml_from_wbxml(bytes: &[u8]) -> String {
    let mut reader: wbxml::Reader<&[u8]> = wbxml::Reader::new(bytes);
    let mut out = Vec::new();
    wbxml::xml::decode::decode(&mut reader, &mut out)
        .unwrap_or_else(|e| panic!("written request does not decode: {e:?}"));
    let text = String::from_utf8(out).expect("decoder writes UTF-8");
    text.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .trim()
        .to_string()
}

/// The XML form of a written request's WBXML body. Panics if the body is not plain WBXML.
pub fn request_xml(req: &super::Request) -> String {
    match &req.body {
        super::Body::Wbxml(body) => xml_from_wbxml(body),
        other => panic!("expected a WBXML body, got {other:?}"),
    }
}

/// A parser over a fixture.
pub fn parser(bytes: &[u8]) -> super::Parser<&[u8]> {
    super::Parser::new(bytes, wbxml::ProtocolVersion::V16_1)
}

#[test]
fn fixtures_round_trip() {
    let xml = "<Sync xmlns=\"AirSync:\">\n  <Status>1</Status>\n</Sync>";
    let bytes = wbxml_from_xml(xml);
    assert_eq!(xml_from_wbxml(&bytes), xml);
    let mut p = parser(&bytes);
    let root = p
        .root(wbxml::Tag::named(wbxml::tags::cp::AIRSYNC, "Sync"))
        .unwrap()
        .unwrap();
    let status = p.next_child().unwrap().unwrap();
    assert_eq!(p.number::<u32>(status).unwrap(), 1);
    assert!(p.next_child().unwrap().is_none());
    let _ = root;
    p.finish().unwrap();
}
