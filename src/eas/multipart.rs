//! The multipart response body (MS-ASCMD 2.2.1.10.1.1), which a server sends for
//! ItemOperations when the request carried `MS-ASAcceptMultiPart: T`.
//!
//! Layout: a part count (32-bit little-endian), then per part an offset from the start of
//! the body and a length (both 32-bit little-endian), then the parts. Part 0 is the WBXML
//! response; its `Part` elements name the binary parts by index.
//!
//! [`MultipartReader`] reads the table, checks it (count bounded, parts in order, no
//! overlap, inside the body), and then hands out the parts in body order without buffering
//! any of them: [`MultipartReader::part`] as an [`embedded_io::Read`] (for part 0, the
//! WBXML), [`MultipartReader::stream_part`] to a [`Sink`]. Since parts come in body order,
//! the caller reads part 0 first, notes which sink each later part belongs to, then streams
//! parts 1.. in order (see [`super::itemops::read_multipart_response`]).

use embedded_io::{ErrorType, Read};

use super::error::{Error, Result};
use super::sink::Sink;

/// The default bound on the number of parts: far more than any real response (one per
/// fetched attachment or body, plus the WBXML), small enough to keep the table tiny.
pub const DEFAULT_MAX_PARTS: u32 = 1024;

/// Where one part lies in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSpan {
    /// Bytes from the start of the body.
    pub offset: u64,
    pub len: u64,
}

/// A streaming reader over a multipart body.
pub struct MultipartReader<R> {
    input: R,
    parts: Vec<PartSpan>,
    /// Bytes of the body consumed so far.
    pos: u64,
    /// The lowest part index that may still be read.
    next: usize,
}

impl<R: Read> MultipartReader<R> {
    /// Reads and checks the part table. `max_parts` bounds the count; `body_len`, when the
    /// transport knows it (Content-Length), bounds where the parts may end.
    pub fn new(mut input: R, max_parts: u32, body_len: Option<u64>) -> Result<Self> {
        let mut word = [0u8; 4];
        read_full(&mut input, &mut word, "the multipart part count")?;
        let count = u32::from_le_bytes(word);
        if count == 0 {
            return Err(table_error(
                0,
                "the multipart table lists no parts (part 0, the WBXML response, is required)",
            ));
        }
        if count > max_parts {
            return Err(Error::Limit {
                what: "the multipart part count",
                limit: max_parts as u64,
                offset: 0,
            });
        }
        let header_len = 4 + 8 * count as u64;
        let mut parts = Vec::with_capacity(count as usize);
        let mut end_of_previous = header_len;
        for index in 0..count as usize {
            let entry_offset = 4 + 8 * index as u64;
            read_full(&mut input, &mut word, "the multipart part table")?;
            let offset = u32::from_le_bytes(word) as u64;
            read_full(&mut input, &mut word, "the multipart part table")?;
            let len = u32::from_le_bytes(word) as u64;
            if offset < end_of_previous {
                let what = if index == 0 {
                    format!(
                        "part 0 starts at byte {offset}, inside the part table ({header_len} bytes)"
                    )
                } else {
                    format!(
                        "part {index} starts at byte {offset}, before part {} ends (byte {end_of_previous}): parts must be in order and not overlap",
                        index - 1
                    )
                };
                return Err(table_error(entry_offset, &what));
            }
            if let Some(body_len) = body_len {
                if offset + len > body_len {
                    return Err(table_error(
                        entry_offset,
                        &format!(
                            "part {index} ends at byte {}, beyond the end of the body ({body_len} bytes)",
                            offset + len
                        ),
                    ));
                }
            }
            end_of_previous = offset + len;
            parts.push(PartSpan { offset, len });
        }
        Ok(MultipartReader {
            input,
            parts,
            pos: header_len,
            next: 0,
        })
    }

    /// The number of parts, the WBXML part included.
    pub fn part_count(&self) -> usize {
        self.parts.len()
    }

    /// Where part `index` lies.
    pub fn span(&self, index: usize) -> Option<PartSpan> {
        self.parts.get(index).copied()
    }

    /// Moves to the start of part `index` (skipping what lies before it) and marks the
    /// parts before it as passed.
    fn seek(&mut self, index: usize) -> Result<PartSpan> {
        let Some(span) = self.span(index) else {
            return Err(Error::Protocol {
                offset: self.pos,
                message: format!(
                    "part {index} does not exist: the multipart table has {} parts",
                    self.parts.len()
                ),
            });
        };
        if index < self.next {
            return Err(Error::Protocol {
                offset: self.pos,
                message: format!("part {index} was already passed: parts are read in body order"),
            });
        }
        let mut scratch = [0u8; 512];
        while self.pos < span.offset {
            let want = scratch.len().min((span.offset - self.pos) as usize);
            let n = self.input.read(&mut scratch[..want]).map_err(io_error)?;
            if n == 0 {
                return Err(truncated(self.pos, index, span));
            }
            self.pos += n as u64;
        }
        self.next = index + 1;
        Ok(span)
    }

    /// Part `index` as a reader (e.g. part 0 for the WBXML parser). The reader ends at the
    /// part's end; a body that ends sooner ends the reader early, which the WBXML parser
    /// reports as a truncated document.
    pub fn part(&mut self, index: usize) -> Result<PartReader<'_, R>> {
        let span = self.seek(index)?;
        Ok(PartReader {
            body: self,
            remaining: span.len,
        })
    }

    /// Streams part `index` to `sink` in pieces as they arrive and returns its length.
    pub fn stream_part(&mut self, index: usize, sink: &mut dyn Sink) -> Result<u64> {
        let span = self.seek(index)?;
        let mut scratch = [0u8; 4096];
        let mut left = span.len;
        while left > 0 {
            let want = scratch.len().min(left as usize);
            let n = self.input.read(&mut scratch[..want]).map_err(io_error)?;
            if n == 0 {
                return Err(truncated(self.pos, index, span));
            }
            self.pos += n as u64;
            left -= n as u64;
            sink.chunk(&scratch[..n])?;
        }
        sink.end(span.len)?;
        Ok(span.len)
    }

    /// Reads past part `index` (one nothing refers to).
    pub fn skip_part(&mut self, index: usize) -> Result<()> {
        self.stream_part(index, &mut super::sink::Discard)
            .map(|_| ())
    }
}

/// One part of a multipart body, read through [`embedded_io::Read`].
pub struct PartReader<'a, R> {
    body: &'a mut MultipartReader<R>,
    remaining: u64,
}

impl<R: Read> ErrorType for PartReader<'_, R> {
    type Error = R::Error;
}

impl<R: Read> Read for PartReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> core::result::Result<usize, Self::Error> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.body.input.read(&mut buf[..want])?;
        self.body.pos += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn read_full<R: Read>(input: &mut R, buf: &mut [u8], what: &str) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = input.read(&mut buf[filled..]).map_err(io_error)?;
        if n == 0 {
            return Err(Error::Protocol {
                offset: 0,
                message: format!("the multipart body ended inside {what}"),
            });
        }
        filled += n;
    }
    Ok(())
}

fn io_error<E: core::fmt::Debug>(e: E) -> Error {
    Error::Io(format!("{e:?}"))
}

fn table_error(offset: u64, message: &str) -> Error {
    Error::Protocol {
        offset,
        message: format!("bad multipart table: {message}"),
    }
}

fn truncated(offset: u64, index: usize, span: PartSpan) -> Error {
    Error::Protocol {
        offset,
        message: format!(
            "the multipart body ended inside part {index} (bytes {} to {})",
            span.offset,
            span.offset + span.len
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read, like a slow network.
    pub(crate) struct Trickle<'a> {
        pub data: &'a [u8],
        pub step: usize,
    }

    impl ErrorType for Trickle<'_> {
        type Error = core::convert::Infallible;
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> core::result::Result<usize, Self::Error> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// A multipart body from its parts, laid out back to back after the table, with `gap`
    /// filler bytes between parts.
    pub(crate) fn build(parts: &[&[u8]], gap: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
        let mut offset = 4 + 8 * parts.len();
        for part in parts {
            out.extend_from_slice(&(offset as u32).to_le_bytes());
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            offset += part.len() + gap;
        }
        for part in parts {
            out.extend_from_slice(part);
            out.extend(core::iter::repeat_n(0xEE, gap));
        }
        out
    }

    fn table(entries: &[(u32, u32)], count: u32) -> Vec<u8> {
        let mut out = count.to_le_bytes().to_vec();
        for (offset, len) in entries {
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        out
    }

    #[test]
    fn parts_read_in_order_through_gaps() {
        let body = build(&[b"zero", b"one-one", b"", b"three"], 3);
        let mut mp = MultipartReader::new(&body[..], 8, Some(body.len() as u64)).unwrap();
        assert_eq!(mp.part_count(), 4);
        assert_eq!(mp.span(0), Some(PartSpan { offset: 36, len: 4 }));
        let mut zero = Vec::new();
        let mut reader = mp.part(0).unwrap();
        let mut buf = [0u8; 3];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            zero.extend_from_slice(&buf[..n]);
        }
        assert_eq!(zero, b"zero");
        mp.skip_part(1).unwrap();
        let mut two = Vec::new();
        assert_eq!(mp.stream_part(2, &mut two).unwrap(), 0);
        let mut three = Vec::new();
        assert_eq!(mp.stream_part(3, &mut three).unwrap(), 5);
        assert_eq!(three, b"three");
        let err = mp.stream_part(1, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("already passed"), "{err}");
        let err = mp.stream_part(9, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn skipping_an_unread_part_zero_works() {
        let body = build(&[b"wbxml", b"data"], 0);
        let mut mp = MultipartReader::new(&body[..], 8, None).unwrap();
        let mut data = Vec::new();
        mp.stream_part(1, &mut data).unwrap();
        assert_eq!(data, b"data");
    }

    #[test]
    fn malformed_tables_are_refused() {
        let cases: Vec<(Vec<u8>, Option<u64>, &str)> = vec![
            (Vec::new(), None, "ended inside the multipart part count"),
            (vec![1, 0], None, "ended inside the multipart part count"),
            (table(&[], 0), None, "lists no parts"),
            (table(&[], u32::MAX), None, "over the limit"),
            (
                table(&[(20, 1)], 2),
                None,
                "ended inside the multipart part table",
            ),
            (table(&[(4, 1)], 1), None, "inside the part table"),
            (table(&[(20, 10), (25, 1)], 2), None, "must be in order"),
            (table(&[(30, 10), (20, 1)], 2), None, "must be in order"),
            (
                table(&[(12, 100)], 1),
                Some(50),
                "beyond the end of the body",
            ),
        ];
        for (bytes, body_len, expected) in cases {
            let err = MultipartReader::new(&bytes[..], 16, body_len)
                .err()
                .unwrap_or_else(|| panic!("accepted {bytes:?}"));
            assert!(err.to_string().contains(expected), "{err} / {expected}");
        }
        // Adjacent parts (no gap) are fine.
        let ok = table(&[(20, 5), (25, 0)], 2);
        assert!(MultipartReader::new(&ok[..], 16, None).is_ok());
    }

    #[test]
    fn truncated_parts_are_errors() {
        // The two filler bytes after the last part are not part of any part.
        let body = build(&[b"wbxml", b"attachment"], 2);
        for cut in 21..body.len() - 2 {
            let result = (|| -> Result<()> {
                let mut mp = MultipartReader::new(&body[..cut], 8, None)?;
                let mut sink = Vec::new();
                mp.stream_part(0, &mut sink)?;
                mp.stream_part(1, &mut sink)?;
                Ok(())
            })();
            let err = result.expect_err("a cut body was accepted");
            assert!(
                err.to_string().contains("ended inside part"),
                "{cut}: {err}"
            );
        }
    }

    #[test]
    fn part_reader_ends_early_on_a_truncated_body() {
        let body = build(&[b"wbxml-part"], 0);
        let mut mp = MultipartReader::new(&body[..body.len() - 3], 8, None).unwrap();
        let mut reader = mp.part(0).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(reader.read(&mut buf).unwrap(), 7);
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn trickling_input_streams_in_small_pieces() {
        struct Pieces(Vec<usize>, Vec<u8>);
        impl Sink for Pieces {
            fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
                self.0.push(data.len());
                self.1.extend_from_slice(data);
                Ok(())
            }
        }
        let payload: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let body = build(&[b"w", &payload], 1);
        let mut mp = MultipartReader::new(
            Trickle {
                data: &body,
                step: 7,
            },
            8,
            None,
        )
        .unwrap();
        let mut sink = Pieces(Vec::new(), Vec::new());
        assert_eq!(mp.stream_part(1, &mut sink).unwrap(), 10_000);
        assert_eq!(sink.1, payload);
        assert!(sink.0.iter().all(|&n| n <= 7), "pieces are not buffered up");
        assert!(sink.0.len() >= 10_000 / 7);
    }
}
