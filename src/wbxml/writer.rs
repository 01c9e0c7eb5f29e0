//! The streaming writer: elements, text and opaque data in, WBXML bytes out.
//!
//! Output goes straight to an [`embedded_io::Write`]; the writer keeps only the current code
//! page and the nesting depth. It writes SWITCH_PAGE only when a tag's page differs from the
//! current one, elements without content as a single tag byte, text as inline strings, and
//! opaque data from a slice or streamed from a reader of known length.

use embedded_io::{ErrorType, Read, Write};

use super::error::{Error, ErrorKind};
use super::tags::{ProtocolVersion, Tag};
use super::token;

/// A streaming WBXML writer.
pub struct Writer<W> {
    out: W,
    page: u8,
    depth: u16,
    /// Bytes written so far (for error offsets).
    offset: u64,
    version: Option<ProtocolVersion>,
    header_written: bool,
    in_text: bool,
}

type WriteResult<T, W> = Result<T, Error<<W as ErrorType>::Error>>;

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer {
            out,
            page: 0,
            depth: 0,
            offset: 0,
            version: None,
            header_written: false,
            in_text: false,
        }
    }

    /// Refuses tags that do not exist in `version` (the negotiated protocol version), and
    /// tags the tables do not define.
    pub fn for_version(mut self, version: ProtocolVersion) -> Self {
        self.version = Some(version);
        self
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The number of open elements.
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// Writes the EAS header (WBXML 1.3, unknown public id, UTF-8, no string table). Called
    /// by the first element if not before.
    pub fn header(&mut self) -> WriteResult<(), W> {
        if !self.header_written {
            self.header_written = true;
            self.put(&token::EAS_HEADER)?;
        }
        Ok(())
    }

    /// Opens an element with content; close it with [`Writer::end`].
    pub fn start(&mut self, tag: Tag) -> WriteResult<(), W> {
        self.tag(tag, token::HAS_CONTENT)?;
        self.depth += 1;
        Ok(())
    }

    /// Writes an element without content (`<Tag/>`).
    pub fn empty(&mut self, tag: Tag) -> WriteResult<(), W> {
        self.tag(tag, 0)
    }

    /// Closes the innermost open element.
    pub fn end(&mut self) -> WriteResult<(), W> {
        self.close_text()?;
        if self.depth == 0 {
            return Err(self.invalid(ErrorKind::EndWithoutStart));
        }
        self.depth -= 1;
        self.put(&[token::END])
    }

    /// Writes `<tag>text</tag>`.
    pub fn text_element(&mut self, tag: Tag, text: &str) -> WriteResult<(), W> {
        self.start(tag)?;
        self.text(text)?;
        self.end()
    }

    /// Writes a complete inline string.
    pub fn text(&mut self, text: &str) -> WriteResult<(), W> {
        self.text_piece(text.as_bytes())?;
        self.close_text()
    }

    /// Writes one piece of an inline string that may come in several pieces; the string ends
    /// with the next element, end, opaque value or [`Writer::close_text`]. The pieces must
    /// join to valid UTF-8 and hold no NUL.
    pub fn text_piece(&mut self, piece: &[u8]) -> WriteResult<(), W> {
        if self.depth == 0 {
            return Err(self.invalid(ErrorKind::ContentOutsideRoot));
        }
        if let Some(nul) = memchr::memchr(0, piece) {
            return Err(self.invalid_at(ErrorKind::NulInText, self.offset + nul as u64));
        }
        if !self.in_text {
            self.put(&[token::STR_I])?;
            self.in_text = true;
        }
        self.put(piece)
    }

    /// Ends an inline string begun with [`Writer::text_piece`]; does nothing outside one.
    pub fn close_text(&mut self) -> WriteResult<(), W> {
        if self.in_text {
            self.in_text = false;
            self.put(&[0])?;
        }
        Ok(())
    }

    /// Writes an opaque value from a slice.
    pub fn opaque(&mut self, data: &[u8]) -> WriteResult<(), W> {
        let len = u32::try_from(data.len())
            .map_err(|_| self.invalid(ErrorKind::TooLong(data.len() as u64)))?;
        self.opaque_header(len)?;
        self.put(data)
    }

    /// Announces an opaque value of `len` bytes whose bytes the caller then writes with
    /// [`Writer::opaque_piece`], exactly `len` of them.
    pub fn opaque_header(&mut self, len: u32) -> WriteResult<(), W> {
        self.close_text()?;
        if self.depth == 0 {
            return Err(self.invalid(ErrorKind::ContentOutsideRoot));
        }
        self.put(&[token::OPAQUE])?;
        self.mb_u32(len)
    }

    /// Writes bytes of an opaque value announced with [`Writer::opaque_header`].
    pub fn opaque_piece(&mut self, piece: &[u8]) -> WriteResult<(), W> {
        self.put(piece)
    }

    /// Streams an opaque value of exactly `len` bytes from `source`, through `scratch`.
    /// A source that ends early, or has more, is an error (the output is then unusable).
    pub fn opaque_from<R: Read>(
        &mut self,
        len: u32,
        source: &mut R,
        scratch: &mut [u8],
    ) -> Result<(), OpaqueError<W::Error, R::Error>> {
        self.opaque_header(len).map_err(OpaqueError::Write)?;
        let mut left = len as u64;
        while left > 0 {
            let want = scratch.len().min(left as usize);
            let n = read_retrying(source, &mut scratch[..want]).map_err(OpaqueError::Read)?;
            if n == 0 {
                return Err(OpaqueError::Write(self.invalid(
                    ErrorKind::OpaqueLengthMismatch {
                        declared: len,
                        given: len as u64 - left,
                    },
                )));
            }
            self.put(&scratch[..n]).map_err(OpaqueError::Write)?;
            left -= n as u64;
        }
        let mut probe = [0u8; 1];
        if read_retrying(source, &mut probe).map_err(OpaqueError::Read)? != 0 {
            return Err(OpaqueError::Write(self.invalid(
                ErrorKind::OpaqueLengthMismatch {
                    declared: len,
                    given: len as u64 + 1,
                },
            )));
        }
        Ok(())
    }

    /// Checks that every element is closed, flushes, and gives back the output.
    pub fn finish(mut self) -> WriteResult<W, W> {
        self.close_text()?;
        if self.depth != 0 {
            return Err(self.invalid(ErrorKind::Unclosed(self.depth)));
        }
        self.out.flush().map_err(Error::Io)?;
        Ok(self.out)
    }

    fn tag(&mut self, tag: Tag, content_bit: u8) -> WriteResult<(), W> {
        self.close_text()?;
        self.header()?;
        if !(0x05..=token::TOKEN_MASK).contains(&tag.token) {
            return Err(self.invalid(ErrorKind::UnknownTag {
                page: tag.page,
                token: tag.token,
            }));
        }
        if let Some(version) = self.version {
            if tag.def().is_none() {
                return Err(self.invalid(ErrorKind::UnknownTag {
                    page: tag.page,
                    token: tag.token,
                }));
            }
            if !tag.in_version(version) {
                return Err(self.invalid(ErrorKind::TagNotInVersion { tag, version }));
            }
        }
        if tag.page != self.page {
            self.put(&[token::SWITCH_PAGE, tag.page])?;
            self.page = tag.page;
        }
        self.put(&[tag.token | content_bit])
    }

    fn mb_u32(&mut self, mut value: u32) -> WriteResult<(), W> {
        let mut bytes = [0u8; 5];
        let mut i = bytes.len();
        loop {
            i -= 1;
            bytes[i] = (value & 0x7f) as u8 | if i == bytes.len() - 1 { 0 } else { 0x80 };
            value >>= 7;
            if value == 0 {
                break;
            }
        }
        self.put(&bytes[i..])
    }

    fn put(&mut self, bytes: &[u8]) -> WriteResult<(), W> {
        self.out.write_all(bytes).map_err(Error::Io)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn invalid(&self, kind: ErrorKind) -> Error<W::Error> {
        self.invalid_at(kind, self.offset)
    }

    fn invalid_at(&self, kind: ErrorKind, offset: u64) -> Error<W::Error> {
        Error::Invalid { kind, offset }
    }
}

/// An error from [`Writer::opaque_from`]: the output or the source failed.
#[derive(Debug, thiserror::Error)]
pub enum OpaqueError<WE: core::fmt::Debug, RE: core::fmt::Debug> {
    #[error(transparent)]
    Write(Error<WE>),
    #[error("reading the opaque value's source failed: {0:?}")]
    Read(RE),
}

fn read_retrying<R: Read>(source: &mut R, buf: &mut [u8]) -> Result<usize, R::Error> {
    loop {
        match source.read(buf) {
            Err(e) if embedded_io::Error::kind(&e) == embedded_io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const SYNC: Tag = Tag::new(0, 0x05);
    const COLLECTIONS: Tag = Tag::new(0, 0x1C);
    const STATUS: Tag = Tag::new(0, 0x0E);
    const BODY: Tag = Tag::new(17, 0x0A);
    const DATA: Tag = Tag::new(17, 0x0B);

    fn written(
        f: impl FnOnce(&mut Writer<&mut Vec<u8>>) -> Result<(), Error<core::convert::Infallible>>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        f(&mut w).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn switches_page_only_on_change_and_writes_empty_elements_bare() {
        let out = written(|w| {
            w.start(SYNC)?;
            w.empty(COLLECTIONS)?;
            w.start(BODY)?;
            w.text_element(DATA, "hi")?;
            w.empty(DATA)?;
            w.end()?;
            w.empty(STATUS)?;
            w.end()
        });
        assert_eq!(
            out,
            b"\x03\x01\x6A\x00\x45\x1C\x00\x11\x4A\x4B\x03hi\x00\x01\x0B\x01\x00\x00\x0E\x01"
        );
    }

    #[test]
    fn text_in_pieces_and_empty_text() {
        let out = written(|w| {
            w.start(SYNC)?;
            w.text_piece(b"ab")?;
            w.text_piece(b"")?;
            w.text_piece(b"c")?;
            w.end()
        });
        assert_eq!(out, b"\x03\x01\x6A\x00\x45\x03abc\x00\x01");
        let out = written(|w| {
            w.start(SYNC)?;
            w.text("")?;
            w.end()
        });
        assert_eq!(out, b"\x03\x01\x6A\x00\x45\x03\x00\x01");
    }

    #[test]
    fn opaque_from_slice_and_stream() {
        let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let out = written(|w| {
            w.start(SYNC)?;
            w.opaque(&data)?;
            w.end()
        });
        let mut expected = b"\x03\x01\x6A\x00\x45\xC3\x82\x2C".to_vec();
        expected.extend_from_slice(&data);
        expected.push(0x01);
        assert_eq!(out, expected);

        let mut streamed = Vec::new();
        let mut w = Writer::new(&mut streamed);
        w.start(SYNC).unwrap();
        let mut source = &data[..];
        w.opaque_from(300, &mut source, &mut [0u8; 7]).unwrap();
        w.end().unwrap();
        w.finish().unwrap();
        assert_eq!(streamed, expected);
    }

    #[test]
    fn opaque_source_of_the_wrong_length_is_refused() {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.start(SYNC).unwrap();
        let e = w
            .opaque_from(10, &mut &b"short"[..], &mut [0u8; 4])
            .unwrap_err();
        assert!(matches!(
            e,
            OpaqueError::Write(Error::Invalid {
                kind: ErrorKind::OpaqueLengthMismatch {
                    declared: 10,
                    given: 5
                },
                ..
            })
        ));
        let e = w
            .opaque_from(2, &mut &b"long"[..], &mut [0u8; 4])
            .unwrap_err();
        assert!(matches!(
            e,
            OpaqueError::Write(Error::Invalid {
                kind: ErrorKind::OpaqueLengthMismatch {
                    declared: 2,
                    given: 3
                },
                ..
            })
        ));
    }

    #[test]
    fn misuse_is_an_error() {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        assert_eq!(
            w.end().unwrap_err().kind(),
            Some(ErrorKind::EndWithoutStart)
        );
        assert_eq!(
            w.text("x").unwrap_err().kind(),
            Some(ErrorKind::ContentOutsideRoot)
        );
        assert_eq!(
            w.opaque(b"x").unwrap_err().kind(),
            Some(ErrorKind::ContentOutsideRoot)
        );
        assert_eq!(
            w.start(Tag::new(0, 0x40)).unwrap_err().kind(),
            Some(ErrorKind::UnknownTag {
                page: 0,
                token: 0x40
            })
        );
        w.start(SYNC).unwrap();
        assert_eq!(
            w.text("a\0b").unwrap_err().kind(),
            Some(ErrorKind::NulInText)
        );
        assert_eq!(w.finish().unwrap_err().kind(), Some(ErrorKind::Unclosed(1)));
    }

    #[test]
    fn version_check() {
        let find = Tag::new(25, 0x05);
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out).for_version(ProtocolVersion::V14_1);
        assert_eq!(
            w.empty(find).unwrap_err().kind(),
            Some(ErrorKind::TagNotInVersion {
                tag: find,
                version: ProtocolVersion::V14_1
            })
        );
        assert_eq!(
            w.empty(Tag::new(0, 0x3E)).unwrap_err().kind(),
            Some(ErrorKind::UnknownTag {
                page: 0,
                token: 0x3E
            })
        );
        let mut w = Writer::new(Vec::new()).for_version(ProtocolVersion::V16_1);
        w.empty(find).unwrap();
        assert_eq!(w.finish().unwrap(), b"\x03\x01\x6A\x00\x00\x19\x05");
    }

    #[test]
    fn multi_byte_lengths() {
        for (len, enc) in [
            (0u32, &b"\x00"[..]),
            (127, b"\x7F"),
            (128, b"\x81\x00"),
            (u32::MAX, b"\x8F\xFF\xFF\xFF\x7F"),
        ] {
            let mut w = Writer::new(Vec::new());
            w.start(SYNC).unwrap();
            w.opaque_header(len).unwrap();
            let out = w.out;
            assert_eq!(&out[6..], enc, "length {len}");
        }
    }
}
