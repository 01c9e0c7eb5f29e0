//! The reader on any bytes: no panic, and the events obey the reader's promises.
#![no_main]

use easync::wbxml::{Config, Event, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the configuration, so both strict and lenient paths are explored.
    let (config, doc) = match data.split_first() {
        Some((&b, rest)) => (
            Config {
                allow_unknown_tags: b & 1 != 0,
                max_string_table: u32::from(b >> 1),
                ..Config::default()
            },
            rest,
        ),
        None => (Config::default(), data),
    };
    let mut reader = Reader::<&[u8], 128, 8>::with_config(doc, config);
    // Asking for the header first must agree with what the events say.
    let header_ok = reader.header().is_ok();
    let mut depth = 0usize;
    let mut last_offset = 0;
    loop {
        let event = match reader.next() {
            Ok(e) => e,
            Err(e) => {
                assert!(header_ok || reader.header().is_err());
                let offset = e.offset().expect("a slice never fails to read");
                assert!(offset <= doc.len() as u64);
                break;
            }
        };
        match event {
            Event::Start { has_content: true, .. } => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) => assert!(t.len() <= 128),
            Event::OpaqueData(d) => assert!(!d.is_empty() && d.len() <= 128),
            Event::Eof => {
                assert_eq!(depth, 0);
                break;
            }
            _ => {}
        }
        assert!(reader.offset() >= last_offset);
        last_offset = reader.offset();
    }
});
