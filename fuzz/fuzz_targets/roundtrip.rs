//! encode(decode(x)): whatever the reader accepts turns into XML that encodes back into a
//! document that decodes to the same XML.
#![no_main]

use easync::wbxml::xml::{decode::decode, encode::encode};
use easync::wbxml::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut xml = Vec::new();
    if decode(&mut Reader::<&[u8], 256, 16>::new(data), &mut xml).is_err() {
        return;
    }
    let wbxml = match encode(&xml[..], Vec::new()) {
        Ok(w) => w,
        Err(e) => panic!("decoded XML did not encode: {e}\n{}", String::from_utf8_lossy(&xml)),
    };
    let mut xml2 = Vec::new();
    decode(&mut Reader::<&[u8], 256, 16>::new(&wbxml[..]), &mut xml2).expect("re-encoded WBXML decodes");
    assert_eq!(xml, xml2, "XML changed across encode/decode");
    let again = encode(&xml2[..], Vec::new()).expect("stable XML encodes");
    assert_eq!(wbxml, again, "encoding is not deterministic");
});
