//! Decoders of local and configuration input on any text: the configuration file, vCard,
//! iCalendar events and tasks, notes, the EAS time zone blob and Maildir flags. Users and
//! apps write these files; a bad one must be an error, never a panic. Also the names made
//! from server-provided strings (folder names, attachment names, ServerIds): whatever the
//! server sends, they are single, visible path components.
#![no_main]

use easync::eas::ProtocolVersion;
use easync::store::maildir::Flags;
use easync::store::names::{self, NameSet, MAX_NAME_BYTES};
use easync::store::{ical, note, timezone::TimeZone, vcard};
use libfuzzer_sys::fuzz_target;

fn assert_safe(name: &str) {
    assert!(names::is_safe_component(name), "unsafe name {name:?}");
    assert!(
        name.len() <= MAX_NAME_BYTES,
        "{} bytes: {name:?}",
        name.len()
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let version = if which & 0x80 != 0 {
        ProtocolVersion::V16_1
    } else {
        ProtocolVersion::V14_1
    };
    let text = String::from_utf8_lossy(rest);
    match which % 8 {
        0 => drop(easync::config::Config::parse(&text, "fuzz.toml", None)),
        1 => drop(vcard::vcard_to_contact(&text, version)),
        2 => drop(ical::ical_to_event(&text, version)),
        3 => drop(ical::ical_to_task(&text, version)),
        4 => drop(note::text_to_note(&text, version)),
        5 => {
            drop(TimeZone::from_bytes(rest));
            drop(TimeZone::from_base64(&text));
        }
        6 => {
            assert_safe(&names::sanitize(&text));
            let mut taken = NameSet::new();
            let (first, second) = (taken.unique(&text), taken.unique(&text));
            assert_safe(&first);
            assert_safe(&second);
            assert_ne!(first.to_lowercase(), second.to_lowercase());
            let stem = names::item_file_stem(&text);
            assert_safe(&stem);
            // Only a stem too long to keep whole is hashed (and marked by `~`).
            if !stem.contains('~') {
                assert_eq!(names::decode_item_file_stem(&stem).as_deref(), Some(&*text));
            }
        }
        _ => {
            let (flags, other) = Flags::parse(&text);
            let (again, none) = Flags::parse(&flags.letters());
            assert_eq!((again, none.as_str()), (flags, ""));
            assert!(other.len() <= text.len());
        }
    }
});
