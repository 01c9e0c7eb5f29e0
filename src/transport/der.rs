//! A small, bounded DER walker over X.509 certificates: it finds the SubjectPublicKeyInfo
//! for SPKI pinning, and ([`x509`]) reads what a certificate says about itself for
//! `easyncctl diagnose`. It reads only the structure it needs (RFC 5280 4.1), never recurses
//! into values it does not need, and returns `None` for anything malformed — it cannot
//! panic on any input.

/// One DER element: its tag, the whole encoding (header and content) and the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Element<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
/// `[0] EXPLICIT` (constructed, context-specific 0): the certificate version.
const VERSION_TAG: u8 = 0xa0;

/// Reads the element at the start of `input`; returns it and the rest.
fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, after_tag) = input.split_first()?;
    // High-tag-number form (low five bits all set) never occurs where we look.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = after_tag.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        // Long form: 1..=4 length bytes (0x80 is the indefinite form, which DER forbids).
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        let mut len: usize = 0;
        for &b in bytes {
            len = len.checked_mul(256)?.checked_add(usize::from(b))?;
        }
        len
    };
    let header_len = input.len() - rest.len();
    let (content, after) = rest.split_at_checked(len)?;
    let whole = input.get(..header_len.checked_add(len)?)?;
    Some((
        Element {
            tag,
            whole,
            content,
        },
        after,
    ))
}

/// Reads an element that must have tag `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(Element<'_>, &[u8])> {
    let (e, rest) = element(input)?;
    (e.tag == tag).then_some((e, rest))
}

/// The DER of the SubjectPublicKeyInfo (header included) of a certificate, or `None` when the
/// bytes are not a certificate this walker understands.
pub fn subject_public_key_info(certificate: &[u8]) -> Option<&[u8]> {
    let (cert, _) = expect(certificate, SEQUENCE)?;
    let (tbs, _) = expect(cert.content, SEQUENCE)?;
    let mut rest = tbs.content;
    // version [0] EXPLICIT is optional (absent means v1).
    if let Some((e, after)) = element(rest) {
        if e.tag == VERSION_TAG {
            rest = after;
        }
    }
    let (_serial, rest) = expect(rest, INTEGER)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (_validity, rest) = expect(rest, SEQUENCE)?;
    let (_subject, rest) = expect(rest, SEQUENCE)?;
    let (spki, _) = expect(rest, SEQUENCE)?;
    Some(spki.whole)
}

/// Just enough X.509 (RFC 5280 4.1) to explain a certificate: subject and issuer (CN, O),
/// validity and the subjectAltName DNS names and addresses. A bounded DER walk that gives up
/// (`None`) on anything it does not understand; it never panics.
pub mod x509 {
    /// What a certificate says about itself, for people.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Summary {
        pub subject: String,
        pub issuer: String,
        /// Unix seconds.
        pub not_before: Option<i64>,
        pub not_after: Option<i64>,
        /// subjectAltName DNS names and IP addresses.
        pub names: Vec<String>,
    }

    /// One DER element: tag, content and what follows it (the walker of the module above).
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (e, rest) = super::element(input)?;
        Some((e.tag, e.content, rest))
    }

    fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (t, content, rest) = element(input)?;
        (t == tag).then_some((content, rest))
    }

    const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
    const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
    const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

    pub fn parse(der: &[u8]) -> Option<Summary> {
        let (cert, _) = expect(der, 0x30)?;
        let (tbs, _) = expect(cert, 0x30)?;
        let mut rest = tbs;
        if let Some((0xa0, _, after)) = element(rest) {
            rest = after;
        }
        let (_serial, rest) = expect(rest, 0x02)?;
        let (_algorithm, rest) = expect(rest, 0x30)?;
        let (issuer, rest) = expect(rest, 0x30)?;
        let (validity, rest) = expect(rest, 0x30)?;
        let (subject, rest) = expect(rest, 0x30)?;
        let (_spki, mut rest) = expect(rest, 0x30)?;
        let (not_before, after) = time(validity)?;
        let (not_after, _) = time(after)?;
        let mut names = Vec::new();
        // issuerUniqueID [1], subjectUniqueID [2], extensions [3].
        while let Some((tag, content, after)) = element(rest) {
            if tag == 0xa3 {
                names = alt_names(content).unwrap_or_default();
            }
            rest = after;
        }
        Some(Summary {
            subject: name(subject),
            issuer: name(issuer),
            not_before,
            not_after,
            names,
        })
    }

    /// `CN=..., O=...` from a Name; `(no name)` when neither is there.
    fn name(mut rdns: &[u8]) -> String {
        let mut parts = Vec::new();
        while let Some((0x31, set, after)) = element(rdns) {
            let mut attributes = set;
            while let Some((0x30, attribute, next)) = element(attributes) {
                if let Some((oid, value)) = expect(attribute, 0x06) {
                    let label = match oid {
                        OID_CN => Some("CN"),
                        OID_O => Some("O"),
                        _ => None,
                    };
                    if let (Some(label), Some(text)) = (label, string(value)) {
                        parts.push(format!("{label}={text}"));
                    }
                }
                attributes = next;
            }
            rdns = after;
            if parts.len() > 16 {
                break;
            }
        }
        if parts.is_empty() {
            "(no name)".into()
        } else {
            parts.join(", ")
        }
    }

    /// A directory string (UTF8, Printable, IA5, T61 read as Latin-1 compatible ASCII).
    fn string(input: &[u8]) -> Option<String> {
        let (tag, content, _) = element(input)?;
        match tag {
            0x0c | 0x13 | 0x16 | 0x14 => Some(
                String::from_utf8_lossy(content)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(128)
                    .collect(),
            ),
            _ => None,
        }
    }

    fn alt_names(extensions: &[u8]) -> Option<Vec<String>> {
        let (mut list, _) = expect(extensions, 0x30)?;
        while let Some((0x30, extension, after)) = element(list) {
            let (oid, mut rest) = expect(extension, 0x06)?;
            if oid == OID_SAN {
                if let Some((0x01, _, after_critical)) = element(rest) {
                    rest = after_critical;
                }
                let (value, _) = expect(rest, 0x04)?;
                let (mut general, _) = expect(value, 0x30)?;
                let mut names = Vec::new();
                while let Some((tag, content, next)) = element(general) {
                    match tag {
                        0x82 => names.push(String::from_utf8_lossy(content).into_owned()),
                        0x87 => match content.len() {
                            4 => names.push(
                                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(content).ok()?)
                                    .to_string(),
                            ),
                            16 => names.push(
                                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(content).ok()?)
                                    .to_string(),
                            ),
                            _ => {}
                        },
                        _ => {}
                    }
                    general = next;
                    if names.len() >= 32 {
                        break;
                    }
                }
                return Some(names);
            }
            list = after;
        }
        Some(Vec::new())
    }

    /// A UTCTime or GeneralizedTime (`...Z` forms, as RFC 5280 requires) as Unix seconds.
    fn time(input: &[u8]) -> Option<(Option<i64>, &[u8])> {
        let (tag, content, rest) = element(input)?;
        let text = std::str::from_utf8(content).ok()?;
        let digits = text.strip_suffix('Z').unwrap_or(text);
        let (year, rest_digits) = match tag {
            0x17 => {
                let yy: i64 = digits.get(..2)?.parse().ok()?;
                (
                    if yy >= 50 { 1900 + yy } else { 2000 + yy },
                    digits.get(2..)?,
                )
            }
            0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
            _ => return None,
        };
        let field = |i: usize| -> Option<i64> { rest_digits.get(i..i + 2)?.parse().ok() };
        let seconds = (|| {
            let (month, day) = (field(0)?, field(2)?);
            let (hour, minute) = (field(4)?, field(6)?);
            let second = field(8).unwrap_or(0);
            if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
                return None;
            }
            Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
        })();
        Some((seconds, rest))
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// `YYYY-MM-DD HH:MM UTC` for Unix seconds.
    pub fn format_time(seconds: i64) -> String {
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        // The inverse of days_from_civil.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
            in_day / 3600,
            in_day % 3600 / 60
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn dates_round_trip() {
            assert_eq!(days_from_civil(1970, 1, 1), 0);
            assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
            assert_eq!(format_time(1_764_100_000), "2025-11-25 19:46 UTC");
            let (t, _) = time(b"\x17\x0d251125194640Z").unwrap();
            assert_eq!(t, Some(1_764_100_000));
            let (t, _) = time(b"\x18\x0f20251125194640Z").unwrap();
            assert_eq!(t, Some(1_764_100_000));
        }

        #[test]
        fn garbage_is_refused_without_panic() {
            let mut state: u64 = 0x2545_f491_4f6c_dd1d;
            for len in 0..2000usize {
                let bytes: Vec<u8> = (0..len % 200)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                let mut framed = vec![0x30, 0x81, bytes.len() as u8];
                framed.extend(&bytes);
                let _ = parse(&bytes);
                let _ = parse(&framed);
            }
            assert_eq!(parse(&[]), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built minimal certificate: every field present with tiny contents.
    fn sample(spki: &[u8]) -> Vec<u8> {
        let mut tbs = vec![
            0xa0, 0x03, 0x02, 0x01, 0x02, // version v3
            0x02, 0x01, 0x07, // serial 7
            0x30, 0x00, // signature algorithm
            0x30, 0x00, // issuer
            0x30, 0x00, // validity
            0x30, 0x00, // subject
        ];
        tbs.extend_from_slice(spki);
        let mut tbs_seq = vec![0x30, tbs.len() as u8];
        tbs_seq.extend(tbs);
        let mut body = tbs_seq;
        body.extend_from_slice(&[0x30, 0x00, 0x03, 0x01, 0x00]); // sigalg, signature
        let mut cert = vec![0x30, body.len() as u8];
        cert.extend(body);
        cert
    }

    const SPKI: &[u8] = &[0x30, 0x06, 0x30, 0x00, 0x03, 0x02, 0x00, 0xff];

    #[test]
    fn finds_the_spki_in_a_hand_built_certificate() {
        assert_eq!(subject_public_key_info(&sample(SPKI)), Some(SPKI));
    }

    #[test]
    fn version_is_optional() {
        let mut cert = sample(SPKI);
        // Drop the 5 version bytes and fix both lengths.
        cert.drain(4..9);
        cert[1] -= 5;
        cert[3] -= 5;
        assert_eq!(subject_public_key_info(&cert), Some(SPKI));
    }

    #[test]
    fn long_form_lengths() {
        let (e, rest) = element(&[0x04, 0x81, 0x02, 0xaa, 0xbb, 0xcc]).unwrap();
        assert_eq!(e.content, &[0xaa, 0xbb]);
        assert_eq!(e.whole.len(), 5);
        assert_eq!(rest, &[0xcc]);
        // Indefinite length, too many length bytes, length past the end.
        assert_eq!(element(&[0x30, 0x80, 0x00, 0x00]), None);
        assert_eq!(element(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(element(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(element(&[0x1f, 0x00]), None);
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let cert = sample(SPKI);
        for end in 0..cert.len() {
            assert_eq!(subject_public_key_info(&cert[..end]), None, "cut at {end}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A simple deterministic generator, so failures reproduce.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let template = sample(SPKI);
        for _ in 0..20_000 {
            let mut bytes = template.clone();
            let flips = (next() % 4 + 1) as usize;
            for _ in 0..flips {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            let _ = subject_public_key_info(&bytes);
            let len = (next() % 64) as usize;
            let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = subject_public_key_info(&random);
        }
        assert_eq!(subject_public_key_info(&[]), None);
        assert_eq!(subject_public_key_info(&[0x30]), None);
        assert_eq!(subject_public_key_info(&[0x30, 0x00]), None);
    }
}
