//! Decoders of local and configuration input on any text: the configuration file, vCard,
//! iCalendar events and tasks, notes, and the EAS time zone blob. Users and apps write these
//! files; a bad one must be an error, never a panic.
#![no_main]

use easync::eas::ProtocolVersion;
use easync::store::{ical, note, timezone::TimeZone, vcard};
use libfuzzer_sys::fuzz_target;

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
    match which % 6 {
        0 => drop(easync::config::Config::parse(&text, "fuzz.toml", None)),
        1 => drop(vcard::vcard_to_contact(&text, version)),
        2 => drop(ical::ical_to_event(&text, version)),
        3 => drop(ical::ical_to_task(&text, version)),
        4 => drop(note::text_to_note(&text, version)),
        _ => {
            drop(TimeZone::from_bytes(rest));
            drop(TimeZone::from_base64(&text));
        }
    }
});
