//! A small, bounded DER walker that finds the SubjectPublicKeyInfo in an X.509 certificate,
//! for SPKI pinning. It reads only the outer structure (RFC 5280 4.1), never recurses into
//! values it does not need, and returns `None` for anything malformed — it cannot panic on
//! any input.

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
