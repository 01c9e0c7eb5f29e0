//! The D-Bus wire decoder on any bytes, as the daemon and easyncctl read them from the bus
//! socket: `frame_len` on the first bytes, then `Message::decode` on the frame (no file
//! descriptors came with it). No input may panic, and a message that decodes must encode
//! again into a message with the same header and the same body, whose bytes are stable.
#![no_main]

use easync::dbus::wire::{frame_len, Message, Value, WireError};
use libfuzzer_sys::fuzz_target;

/// The body's values written out, so that NaN payloads compare by their bits.
fn shown(body: &[Value]) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::F64(x) => out.push_str(&format!("F64({:#x})", x.to_bits())),
            Value::Array(sig, items) => {
                out.push_str(&format!("Array({sig}, ["));
                items.iter().for_each(|i| walk(i, out));
                out.push_str("])");
            }
            Value::Dict(k, t, entries) => {
                out.push_str(&format!("Dict({k}, {t}, ["));
                for (key, value) in entries {
                    walk(key, out);
                    walk(value, out);
                }
                out.push_str("])");
            }
            Value::Struct(fields) => {
                out.push_str("Struct(");
                fields.iter().for_each(|f| walk(f, out));
                out.push(')');
            }
            Value::Variant(inner) => {
                out.push_str("Variant(");
                walk(inner, out);
                out.push(')');
            }
            other => out.push_str(&format!("{other:?},")),
        }
    }
    let mut out = String::new();
    body.iter().for_each(|v| walk(v, &mut out));
    out
}

fn header(m: &Message) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        m.kind,
        m.flags,
        m.serial,
        &m.path,
        &m.interface,
        &m.member,
        &m.error_name,
        m.reply_serial,
        &m.destination,
        &m.sender,
    )
}

fuzz_target!(|data: &[u8]| {
    // What the connection does: learn the frame's length from its first 16 bytes, then
    // decode exactly that many.
    let frame = match frame_len(data, 1 << 20) {
        Ok(Some(len)) => {
            assert!(len >= 16, "a frame shorter than its fixed header");
            match data.get(..len) {
                Some(frame) => frame,
                None => return,
            }
        }
        Ok(None) => {
            assert!(data.len() < 16);
            return;
        }
        Err(WireError::TooLarge { size, limit }) => {
            assert!(size > limit);
            return;
        }
        Err(_) => return,
    };
    let Ok(message) = Message::decode(frame, &mut Vec::new()) else {
        return;
    };
    let bytes = match message.encode(message.serial) {
        Ok(b) => b,
        Err(e) => panic!("a decoded message does not encode: {e}\n{message:?}"),
    };
    assert_eq!(frame_len(&bytes, usize::MAX), Ok(Some(bytes.len())));
    let again = match Message::decode(&bytes, &mut Vec::new()) {
        Ok(m) => m,
        Err(e) => panic!("a re-encoded message does not decode: {e}\n{message:?}"),
    };
    assert_eq!(header(&message), header(&again));
    assert_eq!(shown(&message.body), shown(&again.body));
    assert_eq!(message.signature(), again.signature());
    let stable = again.encode(again.serial).expect("encodes twice");
    assert_eq!(bytes, stable, "encoding is not stable");
});
