//! The XML encoder on any text: no panic, and what it accepts is valid WBXML.
#![no_main]

use easync::wbxml::xml::{decode::decode, encode::encode};
use easync::wbxml::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(wbxml) = encode(data, Vec::new()) {
        let mut xml = Vec::new();
        decode(&mut Reader::<&[u8], 256, 300>::new(&wbxml[..]), &mut xml).expect("encoder output decodes");
    }
});
