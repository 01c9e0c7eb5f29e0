//! The query part of the request URI (MS-ASHTTP 2.2.1.1.1): the plain-text form
//! (`?Cmd=Sync&User=..&DeviceId=..&DeviceType=..`) and the base64-encoded form, a byte
//! sequence that also carries the protocol version and policy key (2.2.1.1.1.1).

use base64::Engine as _;

use super::error::{Error, Result};
use crate::eas::Command;
use crate::wbxml::ProtocolVersion;

/// Which query form requests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryForm {
    /// `?Cmd=..&User=..&DeviceId=..&DeviceType=..` plus MS-ASProtocolVersion and
    /// X-MS-PolicyKey headers. Understood by every server.
    #[default]
    Plain,
    /// The base64-encoded byte sequence (12.1 and later); version and policy key travel in
    /// the query, not in headers.
    Base64,
}

/// Request parameter names with a special meaning on the wire: `AcceptMultiPart=T` becomes
/// the `MS-ASAcceptMultiPart: T` header (plain form) or option bit 0x02 (base64 form);
/// `SaveInSent=T` is a query parameter (plain) or option bit 0x01 (base64).
pub const ACCEPT_MULTIPART: &str = "AcceptMultiPart";
pub const SAVE_IN_SENT: &str = "SaveInSent";

/// Everything the query of one request is made of.
#[derive(Debug, Clone, Copy)]
pub struct QueryFields<'a> {
    pub command: Command,
    pub user: Option<&'a str>,
    pub device_id: &'a str,
    pub device_type: &'a str,
    pub version: ProtocolVersion,
    /// Only for commands that send it ([`Command::sends_policy_key`]).
    pub policy_key: Option<u32>,
    /// MS-LCID locale of the response language (base64 form only), e.g. 0x0409 en-US.
    pub locale: u16,
    pub params: &'a [(&'static str, String)],
}

/// Whether the request asks for a multipart response (`AcceptMultiPart=T` in its params).
pub fn wants_multipart(params: &[(&'static str, String)]) -> bool {
    params
        .iter()
        .any(|(k, v)| *k == ACCEPT_MULTIPART && is_true(v))
}

fn is_true(v: &str) -> bool {
    v.eq_ignore_ascii_case("T") || v == "1" || v.eq_ignore_ascii_case("true")
}

/// The plain-text query value, URL-encoded, without the leading `?`.
pub fn plain(fields: &QueryFields<'_>) -> String {
    let mut out = String::new();
    let mut push = |name: &str, value: &str| {
        if !out.is_empty() {
            out.push('&');
        }
        percent_encode(name, &mut out);
        out.push('=');
        percent_encode(value, &mut out);
    };
    push("Cmd", fields.command.name());
    if let Some(user) = fields.user {
        push("User", user);
    }
    push("DeviceId", fields.device_id);
    push("DeviceType", fields.device_type);
    for (name, value) in fields.params {
        if *name != ACCEPT_MULTIPART {
            push(name, value);
        }
    }
    out
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
fn percent_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// The protocol version byte of the base64 form (14.1 → 141).
pub fn version_byte(version: ProtocolVersion) -> Result<u8> {
    match version {
        ProtocolVersion::V12_1 => Ok(121),
        ProtocolVersion::V14_0 => Ok(140),
        ProtocolVersion::V14_1 => Ok(141),
        ProtocolVersion::V16_0 => Ok(160),
        ProtocolVersion::V16_1 => Ok(161),
        other => Err(Error::Request(format!(
            "protocol version {} cannot use the base64 query form: set query_form to plain",
            other.as_str()
        ))),
    }
}

/// Tags of the command parameters (MS-ASHTTP 2.2.1.1.1.1.3).
fn parameter_tag(name: &str) -> Option<u8> {
    Some(match name {
        "AttachmentName" => 0,
        "CollectionId" => 1,
        "ItemId" => 3,
        "LongId" => 4,
        "Occurrence" => 6,
        "User" => 8,
        _ => return None,
    })
}
const OPTIONS_TAG: u8 = 7;
const OPTION_SAVE_IN_SENT: u8 = 0x01;
const OPTION_ACCEPT_MULTIPART: u8 = 0x02;

/// The raw byte sequence of the base64 form, before base64 encoding.
pub fn base64_bytes(fields: &QueryFields<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.push(version_byte(fields.version)?);
    out.push(fields.command.code());
    out.extend_from_slice(&fields.locale.to_le_bytes());
    if fields.device_id.is_empty() {
        return Err(Error::Config("device_id must not be empty".into()));
    }
    push_short("DeviceId", fields.device_id.as_bytes(), &mut out)?;
    match fields.policy_key {
        Some(key) => {
            out.push(4);
            out.extend_from_slice(&key.to_le_bytes());
        }
        None => out.push(0),
    }
    push_short("DeviceType", fields.device_type.as_bytes(), &mut out)?;

    let mut options = 0u8;
    let tagged = |tag: u8, name: &str, value: &[u8], out: &mut Vec<u8>| -> Result<()> {
        out.push(tag);
        push_short(name, value, out)
    };
    if let Some(user) = fields.user {
        tagged(8, "User", user.as_bytes(), &mut out)?;
    }
    for (name, value) in fields.params {
        match *name {
            SAVE_IN_SENT => {
                if is_true(value) {
                    options |= OPTION_SAVE_IN_SENT;
                }
            }
            ACCEPT_MULTIPART => {
                if is_true(value) {
                    options |= OPTION_ACCEPT_MULTIPART;
                }
            }
            other => {
                let tag = parameter_tag(other).ok_or_else(|| {
                    Error::Request(format!(
                        "the parameter {other} has no base64 query encoding: set query_form to \
                         plain"
                    ))
                })?;
                tagged(tag, other, value.as_bytes(), &mut out)?;
            }
        }
    }
    if options != 0 {
        tagged(OPTIONS_TAG, "Options", &[options], &mut out)?;
    }
    Ok(out)
}

/// A length byte and the bytes; values over 255 bytes cannot be encoded.
fn push_short(name: &str, value: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let len = u8::try_from(value.len()).map_err(|_| {
        Error::Request(format!(
            "{name} is {} bytes, more than the 255 the base64 query form allows: set query_form \
             to plain",
            value.len()
        ))
    })?;
    out.push(len);
    out.extend_from_slice(value);
    Ok(())
}

/// The base64 query value (standard alphabet with padding, as in RFC 2045), sent as it is:
/// `+`, `/` and `=` are legal in a URI query (RFC 3986), and servers decode the value without
/// URL-decoding it first (SOGo answers HTTP 500 to `%3D`).
pub fn base64(fields: &QueryFields<'_>) -> Result<String> {
    Ok(base64::engine::general_purpose::STANDARD.encode(base64_bytes(fields)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(params: &'a [(&'static str, String)]) -> QueryFields<'a> {
        QueryFields {
            command: Command::Sync,
            user: None,
            device_id: "v140Device",
            device_type: "SmartPhone",
            version: ProtocolVersion::V14_0,
            policy_key: None,
            locale: 0x0409,
            params,
        }
    }

    #[test]
    fn base64_matches_the_spec_example() {
        // MS-ASHTTP 2.2.1.1.1.1: /Microsoft-Server-ActiveSync?jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l
        let f = fields(&[]);
        let mut expected = vec![140, 0, 0x09, 0x04, 10];
        expected.extend_from_slice(b"v140Device");
        expected.push(0); // no policy key
        expected.push(10);
        expected.extend_from_slice(b"SmartPhone");
        assert_eq!(base64_bytes(&f).unwrap(), expected);
        assert_eq!(base64(&f).unwrap(), "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l");
    }

    #[test]
    fn base64_with_policy_key_user_and_parameters() {
        let params = [
            ("ItemId", "5:12".to_string()),
            ("CollectionId", "5".to_string()),
            (SAVE_IN_SENT, "T".to_string()),
            (ACCEPT_MULTIPART, "T".to_string()),
        ];
        let f = QueryFields {
            command: Command::SmartReply,
            user: Some("jdoe"),
            version: ProtocolVersion::V16_1,
            policy_key: Some(0x0102_0304),
            device_id: "ABC",
            device_type: "EASync",
            ..fields(&params)
        };
        let mut expected = vec![161, 3, 0x09, 0x04, 3, b'A', b'B', b'C'];
        expected.extend_from_slice(&[4, 0x04, 0x03, 0x02, 0x01]); // little-endian key
        expected.push(6);
        expected.extend_from_slice(b"EASync");
        expected.extend_from_slice(&[8, 4, b'j', b'd', b'o', b'e']);
        expected.extend_from_slice(&[3, 4, b'5', b':', b'1', b'2']);
        expected.extend_from_slice(&[1, 1, b'5']);
        expected.extend_from_slice(&[7, 1, 0x03]);
        assert_eq!(base64_bytes(&f).unwrap(), expected);
    }

    #[test]
    fn base64_refusals() {
        let params = [("Unknown", "x".to_string())];
        assert!(matches!(
            base64_bytes(&fields(&params)),
            Err(Error::Request(_))
        ));
        let long = "x".repeat(256);
        let f = QueryFields {
            device_id: &long,
            ..fields(&[])
        };
        let err = base64_bytes(&f).unwrap_err();
        assert!(err.to_string().contains("255"), "{err}");
        let f = QueryFields {
            version: ProtocolVersion::V12_0,
            ..fields(&[])
        };
        assert!(base64_bytes(&f).is_err());
    }

    #[test]
    fn plain_form_is_url_encoded() {
        let params = [
            ("ItemId", "5:12 a&b".to_string()),
            (SAVE_IN_SENT, "T".to_string()),
            (ACCEPT_MULTIPART, "T".to_string()),
        ];
        let f = QueryFields {
            user: Some("DOM\\j.doe@x"),
            ..fields(&params)
        };
        assert_eq!(
            plain(&f),
            "Cmd=Sync&User=DOM%5Cj.doe%40x&DeviceId=v140Device&DeviceType=SmartPhone\
             &ItemId=5%3A12%20a%26b&SaveInSent=T"
        );
        assert!(wants_multipart(&params));
        assert!(!wants_multipart(&params[..2]));
    }
}
