//! The pull reader: WBXML bytes in, [`Event`]s out, in a fixed buffer.
//!
//! The reader owns one `[u8; BUF]` array and a `heapless` tag stack of `DEPTH` entries and
//! never allocates. Text and opaque values are handed out in chunks of at most the buffer's
//! size, so a value of any length passes through in constant memory. Every malformed input
//! ends in an [`Error`] carrying the byte offset; no input makes it panic.
//!
//! The document's string table, when it has one, is kept at the front of the same buffer;
//! [`Config::max_string_table`] bounds it (EAS servers do not use string tables).

use embedded_io::{ErrorType, Read};
use heapless::Vec;

use super::error::{Error, ErrorKind};
use super::tags::{self, ProtocolVersion, Tag};
use super::token;

/// How strict the reader is and how much it accepts.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The deepest nesting accepted (further capped by the reader's `DEPTH`).
    pub max_depth: u16,
    /// The largest string table accepted, in bytes (further capped at `BUF - 64`).
    pub max_string_table: u32,
    /// When set, a tag that does not exist in this protocol version is an error.
    pub version: Option<ProtocolVersion>,
    /// Accept code pages and tokens the tables do not define (for diagnostic tools).
    /// Off by default: an unknown tag is an error.
    pub allow_unknown_tags: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_depth: u16::MAX,
            max_string_table: 1024,
            version: None,
            allow_unknown_tags: false,
        }
    }
}

/// The WBXML header (WBXML 1.3 section 5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The version byte: 0x01, 0x02 or 0x03 for WBXML 1.1 to 1.3.
    pub version: u8,
    pub public_id: PublicId,
    /// The IANA MIBenum of the character set; always 106 (UTF-8) once accepted.
    pub charset: u32,
    /// Length of the string table in bytes.
    pub string_table_len: u32,
}

/// The document's public identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicId {
    /// A well-known identifier (EAS sends 1, "unknown").
    Known(u32),
    /// An offset into the string table where the identifier is spelled out.
    Literal(u32),
}

/// One step of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// An element starts. For an element without content (`has_content` false) an
    /// [`Event::End`] follows at once, so starts and ends always pair up.
    Start { tag: Tag, has_content: bool },
    /// The innermost open element ends.
    End(Tag),
    /// A piece of character data. One value may come as several consecutive pieces (a long
    /// inline string is cut at the buffer's size, on a character boundary); join them.
    /// An empty piece stands for an empty string and comes only alone.
    Text(&'a str),
    /// An opaque value of `len` bytes starts; its bytes follow as [`Event::OpaqueData`]
    /// pieces (none when `len` is 0).
    Opaque { len: u32 },
    /// A piece of the current opaque value.
    OpaqueData(&'a [u8]),
    /// The root element has ended and the input is exhausted.
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Body,
    InlineString,
    Opaque { remaining: u32 },
    PendingEnd(Tag),
    AfterRoot,
    Done,
    Failed(ErrorKind, u64),
}

/// What `next` decided to return, before the borrow of the buffer is taken.
enum Step {
    Start(Tag, bool),
    End(Tag),
    /// Text in `buf[start..end]`, not yet validated; an error is reported at `error_at`, plus
    /// the position of the bad byte when `exact`.
    Text {
        start: usize,
        end: usize,
        error_at: u64,
        exact: bool,
    },
    Char(usize),
    Opaque(u32),
    OpaqueData(usize, usize),
    Eof,
}

/// A streaming WBXML reader over any [`embedded_io::Read`].
///
/// `BUF` is the size of the one internal buffer (at least 128 bytes), `DEPTH` the capacity of
/// the tag stack.
pub struct Reader<R, const BUF: usize = 8192, const DEPTH: usize = 32> {
    input: R,
    config: Config,
    buf: [u8; BUF],
    /// The string table occupies `buf[..table_len]`; the input window is `buf[pos..end]`.
    table_len: usize,
    pos: usize,
    end: usize,
    /// Input offset of `buf[pos]`.
    offset: u64,
    eof: bool,
    state: State,
    header: Option<Header>,
    page: u8,
    stack: Vec<Tag, DEPTH>,
    /// UTF-8 bytes of the character an ENTITY stands for.
    entity: [u8; 4],
    /// A piece of the current inline string has been handed out.
    piece_given: bool,
}

type ReadResult<T, R> = Result<T, Error<<R as ErrorType>::Error>>;

impl<R: Read, const BUF: usize, const DEPTH: usize> Reader<R, BUF, DEPTH> {
    /// A reader with the default [`Config`].
    pub fn new(input: R) -> Self {
        Self::with_config(input, Config::default())
    }

    pub fn with_config(input: R, config: Config) -> Self {
        const {
            assert!(
                BUF >= 128,
                "the reader needs a buffer of at least 128 bytes"
            )
        };
        Reader {
            input,
            config,
            buf: [0; BUF],
            table_len: 0,
            pos: 0,
            end: 0,
            offset: 0,
            eof: false,
            state: State::Header,
            header: None,
            page: 0,
            stack: Vec::new(),
            entity: [0; 4],
            piece_given: false,
        }
    }

    /// The document header, read from the input if no event has been read yet.
    pub fn header(&mut self) -> ReadResult<Header, R> {
        if self.state == State::Header {
            if let Err(e) = self.read_header() {
                self.remember(&e);
                return Err(e);
            }
        }
        match (self.header, self.state) {
            (Some(header), _) => Ok(header),
            (None, State::Failed(kind, offset)) => Err(self.invalid_at(kind, offset)),
            (None, _) => Err(self.invalid(ErrorKind::Truncated)),
        }
    }

    /// The number of input bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The currently open elements, outermost first.
    pub fn open_elements(&self) -> &[Tag] {
        &self.stack
    }

    /// The string table (empty for nearly every EAS document).
    pub fn string_table(&self) -> &[u8] {
        &self.buf[..self.table_len]
    }

    /// Gives back the underlying input.
    pub fn into_inner(self) -> R {
        self.input
    }

    /// The next event. After [`Event::Eof`] or an error, every call returns the same again
    /// (an I/O error is repeated as `Truncated` at the same offset).
    // Events borrow the reader's buffer, so this cannot be `Iterator::next`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> ReadResult<Event<'_>, R> {
        let step = self.step()?;
        Ok(match step {
            Step::Start(tag, has_content) => Event::Start { tag, has_content },
            Step::End(tag) => Event::End(tag),
            Step::Text {
                start,
                end,
                error_at,
                exact,
            } => {
                // Text is validated here, once, with a SIMD validator: it is most of the
                // work on a large body.
                let piece = &self.buf[start..end];
                match simdutf8::basic::from_utf8(piece) {
                    Ok(text) => Event::Text(text),
                    Err(_) => {
                        let bad = core::str::from_utf8(piece)
                            .err()
                            .map_or(0, |e| e.valid_up_to());
                        let offset = error_at + if exact { bad as u64 } else { 0 };
                        self.state = State::Failed(ErrorKind::InvalidUtf8, offset);
                        return Err(Error::Invalid {
                            kind: ErrorKind::InvalidUtf8,
                            offset,
                        });
                    }
                }
            }
            Step::Char(n) => {
                Event::Text(core::str::from_utf8(&self.entity[..n]).unwrap_or_default())
            }
            Step::Opaque(len) => Event::Opaque { len },
            Step::OpaqueData(a, b) => Event::OpaqueData(&self.buf[a..b]),
            Step::Eof => Event::Eof,
        })
    }

    fn step(&mut self) -> ReadResult<Step, R> {
        let result = self.step_inner();
        if let Err(e) = &result {
            self.remember(e);
        }
        result
    }

    /// A broken document stays broken: never resume parsing in the middle of it.
    fn remember(&mut self, e: &Error<R::Error>) {
        let kind = e.kind().unwrap_or(ErrorKind::Truncated);
        self.state = State::Failed(kind, e.offset().unwrap_or(self.offset));
    }

    fn step_inner(&mut self) -> ReadResult<Step, R> {
        loop {
            match self.state {
                State::Header => self.read_header()?,
                State::Body => return self.body_token(),
                State::InlineString => return self.inline_string(),
                State::Opaque { remaining } => {
                    if remaining == 0 {
                        self.state = State::Body;
                        continue;
                    }
                    if self.pos == self.end && !self.fill()? {
                        return Err(self.invalid(ErrorKind::Truncated));
                    }
                    let n = (self.end - self.pos).min(remaining as usize);
                    let start = self.pos;
                    self.advance(n);
                    self.state = State::Opaque {
                        remaining: remaining - n as u32,
                    };
                    return Ok(Step::OpaqueData(start, start + n));
                }
                State::PendingEnd(tag) => {
                    self.state = self.after_element();
                    return Ok(Step::End(tag));
                }
                State::AfterRoot => {
                    if self.pos == self.end && !self.fill()? {
                        self.state = State::Done;
                        return Ok(Step::Eof);
                    }
                    return Err(self.invalid(ErrorKind::TrailingData));
                }
                State::Done => return Ok(Step::Eof),
                State::Failed(kind, offset) => return Err(self.invalid_at(kind, offset)),
            }
        }
    }

    fn after_element(&self) -> State {
        if self.stack.is_empty() {
            State::AfterRoot
        } else {
            State::Body
        }
    }

    fn read_header(&mut self) -> ReadResult<(), R> {
        let version = match self.byte()? {
            Some(v) => v,
            None => return Err(self.invalid(ErrorKind::Empty)),
        };
        if !(0x01..=0x03).contains(&version) {
            return Err(self.invalid_at(ErrorKind::UnsupportedWbxmlVersion(version), 0));
        }
        let public_id = match self.mb_u32()? {
            0 => PublicId::Literal(self.mb_u32()?),
            id => PublicId::Known(id),
        };
        let charset_at = self.offset;
        let charset = self.mb_u32()?;
        if charset != token::CHARSET_UTF8 {
            return Err(self.invalid_at(ErrorKind::UnsupportedCharset(charset), charset_at));
        }
        let table_at = self.offset;
        let table = self.mb_u32()?;
        let limit = self.config.max_string_table.min((BUF - 64) as u32);
        if table > limit {
            return Err(self.invalid_at(
                ErrorKind::StringTableTooLarge { len: table, limit },
                table_at,
            ));
        }
        let table = table as usize;
        if table > 0 {
            while self.end - self.pos < table {
                if !self.fill()? {
                    return Err(self.invalid(ErrorKind::Truncated));
                }
            }
            // Move the table to the front of the buffer, where it stays for the whole document.
            self.buf.copy_within(self.pos..self.pos + table, 0);
            self.table_len = table;
            self.advance(table);
        }
        if let PublicId::Literal(index) = public_id {
            if self.table_string(index).is_none() {
                return Err(self.invalid(ErrorKind::BadStringTableIndex(index)));
            }
        }
        self.header = Some(Header {
            version,
            public_id,
            charset,
            string_table_len: table as u32,
        });
        self.state = State::Body;
        Ok(())
    }

    fn body_token(&mut self) -> ReadResult<Step, R> {
        loop {
            let at = self.offset;
            let Some(b) = self.byte()? else {
                return Err(self.invalid(ErrorKind::Truncated));
            };
            match b {
                token::SWITCH_PAGE => {
                    let Some(page) = self.byte()? else {
                        return Err(self.invalid(ErrorKind::Truncated));
                    };
                    if tags::page(page).is_none() && !self.config.allow_unknown_tags {
                        return Err(self.invalid_at(ErrorKind::UnknownCodePage(page), at));
                    }
                    self.page = page;
                }
                token::END => {
                    let Some(tag) = self.stack.pop() else {
                        return Err(self.invalid_at(ErrorKind::EndWithoutStart, at));
                    };
                    self.state = self.after_element();
                    return Ok(Step::End(tag));
                }
                token::ENTITY => {
                    let code = self.mb_u32()?;
                    self.check_in_element(at)?;
                    // NUL cannot stand in WBXML text (it ends inline strings), nor in XML.
                    let Some(c) = char::from_u32(code).filter(|&c| c != '\0') else {
                        return Err(self.invalid_at(ErrorKind::InvalidEntity(code), at));
                    };
                    let n = c.encode_utf8(&mut self.entity).len();
                    return Ok(Step::Char(n));
                }
                token::STR_I => {
                    self.check_in_element(at)?;
                    self.state = State::InlineString;
                    self.piece_given = false;
                    return self.inline_string();
                }
                token::STR_T => {
                    let index = self.mb_u32()?;
                    self.check_in_element(at)?;
                    let Some((start, end)) = self.table_string(index) else {
                        return Err(self.invalid_at(ErrorKind::BadStringTableIndex(index), at));
                    };
                    return Ok(Step::Text {
                        start,
                        end,
                        error_at: at,
                        exact: false,
                    });
                }
                token::OPAQUE => {
                    let len = self.mb_u32()?;
                    self.check_in_element(at)?;
                    self.state = State::Opaque { remaining: len };
                    return Ok(Step::Opaque(len));
                }
                token::LITERAL | token::LITERAL_C | token::LITERAL_A | token::LITERAL_AC => {
                    return Err(self.invalid_at(ErrorKind::LiteralNotSupported(b), at));
                }
                token::EXT_I_0..=token::PI
                | token::EXT_T_0..=token::EXT_T_2
                | token::EXT_0..=token::EXT_2 => {
                    return Err(self.invalid_at(ErrorKind::UnsupportedToken(b), at));
                }
                _ if b & token::HAS_ATTRIBUTES != 0 => {
                    return Err(self.invalid_at(ErrorKind::AttributesNotSupported(b), at));
                }
                _ => return self.start_tag(b, at),
            }
        }
    }

    fn start_tag(&mut self, b: u8, at: u64) -> ReadResult<Step, R> {
        if self.state == State::AfterRoot {
            return Err(self.invalid_at(ErrorKind::TrailingData, at));
        }
        let tag = Tag::new(self.page, b & token::TOKEN_MASK);
        if !self.config.allow_unknown_tags && tag.def().is_none() {
            return Err(self.invalid_at(
                ErrorKind::UnknownTag {
                    page: tag.page,
                    token: tag.token,
                },
                at,
            ));
        }
        if let Some(version) = self.config.version {
            if !tag.in_version(version) {
                return Err(self.invalid_at(ErrorKind::TagNotInVersion { tag, version }, at));
            }
        }
        let has_content = b & token::HAS_CONTENT != 0;
        if has_content {
            let limit = self
                .config
                .max_depth
                .min(DEPTH.min(u16::MAX as usize) as u16);
            if self.stack.len() >= limit as usize || self.stack.push(tag).is_err() {
                return Err(self.invalid_at(ErrorKind::TooDeep { limit }, at));
            }
        } else {
            self.state = State::PendingEnd(tag);
        }
        Ok(Step::Start(tag, has_content))
    }

    fn check_in_element(&self, at: u64) -> ReadResult<(), R> {
        if self.stack.is_empty() {
            Err(self.invalid_at(ErrorKind::ContentOutsideRoot, at))
        } else {
            Ok(())
        }
    }

    /// The next piece of an inline string: up to its NUL, or as much of the buffer as ends on
    /// a character boundary.
    fn inline_string(&mut self) -> ReadResult<Step, R> {
        loop {
            if self.pos == self.end && !self.fill()? {
                return Err(self.invalid(ErrorKind::Truncated));
            }
            let start = self.pos;
            let error_at = self.offset;
            let window = &self.buf[start..self.end];
            if let Some(len) = memchr::memchr(0, window) {
                self.advance(len + 1);
                self.state = State::Body;
                if len == 0 && self.piece_given {
                    // The string ended exactly where the last piece did: no empty piece.
                    return self.body_token();
                }
                return Ok(Step::Text {
                    start,
                    end: start + len,
                    error_at,
                    exact: true,
                });
            }
            // An incomplete character at the end of a piece waits for more input.
            let usable = window.len() - incomplete_tail(window);
            if usable > 0 {
                self.piece_given = true;
                self.advance(usable);
                return Ok(Step::Text {
                    start,
                    end: start + usable,
                    error_at,
                    exact: true,
                });
            }
            // Only the first bytes of one character are buffered: get the rest.
            if !self.fill()? {
                return Err(self.invalid(ErrorKind::Truncated));
            }
        }
    }

    /// The NUL-terminated string at `index` in the string table, as a range of `buf`.
    fn table_string(&self, index: u32) -> Option<(usize, usize)> {
        let start = index as usize;
        let rest = self.buf[..self.table_len].get(start..)?;
        let nul = memchr::memchr(0, rest)?;
        Some((start, start + nul))
    }

    /// A multi-byte unsigned integer (WBXML 1.3 section 5.1), at most 32 bits.
    fn mb_u32(&mut self) -> ReadResult<u32, R> {
        let at = self.offset;
        let mut value: u32 = 0;
        for _ in 0..5 {
            let Some(b) = self.byte()? else {
                return Err(self.invalid(ErrorKind::Truncated));
            };
            if value > (u32::MAX >> 7) {
                return Err(self.invalid_at(ErrorKind::BadMultiByteInt, at));
            }
            value = (value << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.invalid_at(ErrorKind::BadMultiByteInt, at))
    }

    #[inline]
    fn byte(&mut self) -> ReadResult<Option<u8>, R> {
        if self.pos == self.end && !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.advance(1);
        Ok(Some(b))
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.offset += n as u64;
    }

    /// Reads more input behind the window, first moving the window to the front of the free
    /// part of the buffer. Returns false at the end of the input.
    fn fill(&mut self) -> ReadResult<bool, R> {
        if self.eof {
            return Ok(false);
        }
        let free_start = self.table_len;
        if self.pos > free_start {
            self.buf.copy_within(self.pos..self.end, free_start);
            self.end -= self.pos - free_start;
            self.pos = free_start;
        }
        if self.end == BUF {
            // Never happens: callers ask for more only with fewer than 5 bytes buffered.
            return Ok(true);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) => {
                    if embedded_io::Error::kind(&e) == embedded_io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(Error::Io(e));
                }
            }
        }
    }

    fn invalid(&self, kind: ErrorKind) -> Error<R::Error> {
        self.invalid_at(kind, self.offset)
    }

    fn invalid_at(&self, kind: ErrorKind, offset: u64) -> Error<R::Error> {
        Error::Invalid { kind, offset }
    }
}

/// How many bytes at the end of `bytes` are the start of a UTF-8 character that continues
/// past it (0 to 3). Anything malformed counts as complete: validation reports it.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(4) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wbxml::tags::ProtocolVersion;
    use std::vec::Vec;

    /// A source that hands out at most `step` bytes per read, to cut values at every place.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl embedded_io::ErrorType for Trickle<'_> {
        type Error = core::convert::Infallible;
    }

    impl embedded_io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Every event as a line of text, text pieces joined; or the error.
    fn events_with(
        doc: &[u8],
        step: usize,
        config: Config,
    ) -> Result<Vec<String>, (ErrorKind, u64)> {
        let mut r = Reader::<_, 128, 8>::with_config(Trickle { data: doc, step }, config);
        let mut out: Vec<String> = Vec::new();
        loop {
            let ev = r
                .next()
                .map_err(|e| (e.kind().unwrap(), e.offset().unwrap()))?;
            let line = match ev {
                Event::Start { tag, has_content } => {
                    format!("<{tag}{}>", if has_content { "" } else { "/" })
                }
                Event::End(tag) => format!("</{tag}>"),
                Event::Text(t) => {
                    if let Some(last) = out.last_mut().filter(|l| l.starts_with('"')) {
                        last.pop();
                        last.push_str(t);
                        last.push('"');
                        continue;
                    }
                    format!("\"{t}\"")
                }
                Event::Opaque { len } => format!("opaque {len}"),
                Event::OpaqueData(d) => format!("data {}", d.len()),
                Event::Eof => break,
            };
            out.push(line);
        }
        Ok(out)
    }

    fn events(doc: &[u8]) -> Result<Vec<String>, (ErrorKind, u64)> {
        events_with(doc, usize::MAX, Config::default())
    }

    fn doc(body: &[u8]) -> Vec<u8> {
        let mut d = token::EAS_HEADER.to_vec();
        d.extend_from_slice(body);
        d
    }

    // AirSync page 0: Sync 0x05, Collections 0x1C, Collection 0x0F, SyncKey 0x0B, Status 0x0E.
    // AirSyncBase page 17: Body 0x0A, Data 0x0B.

    #[test]
    fn elements_text_and_pages() {
        let d = doc(b"\x45\x5C\x4F\x4B\x03ab\x00\x01\x00\x11\x4A\x4B\x03hello\x00\x01\x01\x00\x00\x0E\x01\x01\x01");
        let expected = [
            "<AirSync:Sync>",
            "<AirSync:Collections>",
            "<AirSync:Collection>",
            "<AirSync:SyncKey>",
            "\"ab\"",
            "</AirSync:SyncKey>",
            "<AirSyncBase:Body>",
            "<AirSyncBase:Data>",
            "\"hello\"",
            "</AirSyncBase:Data>",
            "</AirSyncBase:Body>",
            "<AirSync:Status/>",
            "</AirSync:Status>",
            "</AirSync:Collection>",
            "</AirSync:Collections>",
            "</AirSync:Sync>",
        ];
        assert_eq!(events(&d).unwrap(), expected);
        // The same whatever the input's chunking.
        for step in 1..8 {
            assert_eq!(
                events_with(&d, step, Config::default()).unwrap(),
                expected,
                "step {step}"
            );
        }
    }

    #[test]
    fn long_strings_come_in_pieces_cut_on_char_boundaries() {
        let text: String = "aé€😀".repeat(200); // 1, 2, 3 and 4 byte characters
        let mut body = b"\x45\x03".to_vec();
        body.extend_from_slice(text.as_bytes());
        body.extend_from_slice(b"\x00\x01");
        let d = doc(&body);
        for step in [1, 3, 7, 64, 1000] {
            let mut r = Reader::<_, 128, 8>::new(Trickle { data: &d, step });
            let mut joined = String::new();
            let mut pieces = 0;
            loop {
                match r.next().unwrap() {
                    Event::Text(t) => {
                        assert!(!t.is_empty() && t.len() <= 128);
                        joined.push_str(t);
                        pieces += 1;
                    }
                    Event::Eof => break,
                    _ => {}
                }
            }
            assert_eq!(joined, text, "step {step}");
            assert!(pieces > 1);
        }
    }

    #[test]
    fn empty_string_and_string_ending_at_a_piece_boundary() {
        assert_eq!(
            events(&doc(b"\x45\x03\x00\x01")).unwrap(),
            ["<AirSync:Sync>", "\"\"", "</AirSync:Sync>"]
        );
        // 124 bytes of window after the 4-byte header: a string filling it exactly.
        let mut body = b"\x45\x03".to_vec();
        body.extend(std::iter::repeat_n(b'x', 300));
        body.extend_from_slice(b"\x00\x01");
        let d = doc(&body);
        let mut r = Reader::<_, 128, 8>::new(Trickle {
            data: &d,
            step: 128,
        });
        let mut n = 0;
        loop {
            match r.next().unwrap() {
                Event::Text(t) => {
                    assert!(!t.is_empty());
                    n += t.len();
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(n, 300);
    }

    #[test]
    fn opaque_is_announced_then_streamed() {
        let mut body = b"\x45\xC3\x82\x2C".to_vec(); // length 300
        body.extend((0..300).map(|i| i as u8));
        body.push(0x01);
        let d = doc(&body);
        let mut r = Reader::<_, 128, 8>::new(Trickle { data: &d, step: 50 });
        assert!(matches!(r.next().unwrap(), Event::Start { .. }));
        assert_eq!(r.next().unwrap(), Event::Opaque { len: 300 });
        let mut got = Vec::new();
        loop {
            match r.next().unwrap() {
                Event::OpaqueData(b) => got.extend_from_slice(b),
                Event::End(_) => break,
                e => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(got, (0..300).map(|i| i as u8).collect::<Vec<_>>());
        assert_eq!(r.next().unwrap(), Event::Eof);
        // An empty opaque value has no data events.
        assert_eq!(
            events(&doc(b"\x45\xC3\x00\x01")).unwrap(),
            ["<AirSync:Sync>", "opaque 0", "</AirSync:Sync>"]
        );
    }

    #[test]
    fn string_table_entity_and_literal_public_id() {
        // Public id 0 + index 0 into a table "-//X\0ab\0"; STR_T 5 -> "ab"; ENTITY U+00E9.
        let d = b"\x03\x00\x00\x6A\x08-//X\x00ab\x00\x45\x83\x05\x02\x81\x69\x01";
        let mut r = Reader::<_, 128, 8>::new(Trickle { data: d, step: 3 });
        let h = r.header().unwrap();
        assert_eq!(h.public_id, PublicId::Literal(0));
        assert_eq!(h.string_table_len, 8);
        assert_eq!(r.string_table(), b"-//X\x00ab\x00");
        assert_eq!(
            events(d).unwrap(),
            ["<AirSync:Sync>", "\"abé\"", "</AirSync:Sync>"]
        );
    }

    #[test]
    fn header_variants() {
        let d = doc(b"\x05");
        let mut r = Reader::<_, 128, 8>::new(Trickle { data: &d, step: 1 });
        assert_eq!(
            r.header().unwrap(),
            Header {
                version: 3,
                public_id: PublicId::Known(1),
                charset: 106,
                string_table_len: 0
            }
        );
        assert_eq!(
            events(b"\x01\x01\x6A\x00\x05").unwrap(),
            ["<AirSync:Sync/>", "</AirSync:Sync>"]
        );
    }

    fn err(doc: &[u8]) -> (ErrorKind, u64) {
        events(doc).unwrap_err()
    }

    #[test]
    fn every_error_kind_with_its_offset() {
        assert_eq!(err(b""), (ErrorKind::Empty, 0));
        assert_eq!(err(b"\x03\x01"), (ErrorKind::Truncated, 2));
        assert_eq!(
            err(b"\x04\x01\x6A\x00\x05"),
            (ErrorKind::UnsupportedWbxmlVersion(4), 0)
        );
        assert_eq!(
            err(b"\x03\x01\x04\x00\x05"),
            (ErrorKind::UnsupportedCharset(4), 2)
        );
        assert_eq!(
            err(b"\x03\x81\x81\x81\x81\x81\x01"),
            (ErrorKind::BadMultiByteInt, 1)
        );
        assert_eq!(
            err(b"\x03\x01\x6A\x90\x80\x80\x80\x00"),
            (ErrorKind::BadMultiByteInt, 3)
        );
        assert_eq!(
            err(b"\x03\x01\x6A\x7F"),
            (
                ErrorKind::StringTableTooLarge {
                    len: 127,
                    limit: 64
                },
                3
            )
        );
        assert_eq!(err(b"\x03\x01\x6A\x05ab"), (ErrorKind::Truncated, 4));
        assert_eq!(
            err(&doc(b"\x45\x83\x00\x01")),
            (ErrorKind::BadStringTableIndex(0), 5)
        );
        assert_eq!(
            err(b"\x03\x00\x05\x6A\x00\x05"),
            (ErrorKind::BadStringTableIndex(5), 5)
        );
        assert_eq!(
            err(&doc(b"\x00\x63\x05")),
            (ErrorKind::UnknownCodePage(0x63), 4)
        );
        assert_eq!(
            err(&doc(b"\x45\x3F\x01")),
            (
                ErrorKind::UnknownTag {
                    page: 0,
                    token: 0x3F
                },
                5
            )
        );
        assert_eq!(
            err(&doc(b"\x85\x01")),
            (ErrorKind::AttributesNotSupported(0x85), 4)
        );
        for lit in [0x04u8, 0x44, 0x84, 0xC4] {
            assert_eq!(
                err(&doc(&[0x45, lit, 0x00, 0x01])),
                (ErrorKind::LiteralNotSupported(lit), 5)
            );
        }
        for ext in [0x40u8, 0x41, 0x42, 0x43, 0x80, 0x81, 0x82, 0xC0, 0xC1, 0xC2] {
            assert_eq!(
                err(&doc(&[0x45, ext, 0x00, 0x01])),
                (ErrorKind::UnsupportedToken(ext), 5)
            );
        }
        assert_eq!(err(&doc(b"\x01")), (ErrorKind::EndWithoutStart, 4));
        assert_eq!(
            err(&doc(b"\x45\x45\x45\x45\x45\x45\x45\x45\x45")),
            (ErrorKind::TooDeep { limit: 8 }, 12)
        );
        assert_eq!(err(&doc(b"\x03a\x00")), (ErrorKind::ContentOutsideRoot, 4));
        assert_eq!(err(&doc(b"\xC3\x00")), (ErrorKind::ContentOutsideRoot, 4));
        assert_eq!(err(&doc(b"\x02\x41")), (ErrorKind::ContentOutsideRoot, 4));
        assert_eq!(err(&doc(b"\x05\x05")), (ErrorKind::TrailingData, 5));
        assert_eq!(err(&doc(b"\x45\x01\x03")), (ErrorKind::TrailingData, 6));
        assert_eq!(
            err(&doc(b"\x45\x02\x8F\xFF\xFF\x7F\x01")),
            (ErrorKind::InvalidEntity(0x1FF_FFFF), 5)
        );
        assert_eq!(
            err(&doc(b"\x45\x02\x83\xB0\x00\x01")),
            (ErrorKind::InvalidEntity(0xD800), 5)
        );
        assert_eq!(
            err(&doc(b"\x45\x02\x00\x01")),
            (ErrorKind::InvalidEntity(0), 5)
        );
        assert_eq!(
            err(&doc(b"\x45\x03ab\xFFc\x00\x01")),
            (ErrorKind::InvalidUtf8, 8)
        );
        assert_eq!(
            err(&doc(b"\x45\x03ab\xE2\x82\x00\x01")),
            (ErrorKind::InvalidUtf8, 8)
        );
        assert_eq!(err(&doc(b"\x45\x03abc")), (ErrorKind::Truncated, 9));
        assert_eq!(err(&doc(b"\x45\xC3\x05ab")), (ErrorKind::Truncated, 9));
        assert_eq!(err(&doc(b"\x45")), (ErrorKind::Truncated, 5));
        assert_eq!(err(&doc(b"\x45\x00")), (ErrorKind::Truncated, 6));
    }

    #[test]
    fn string_table_limit_is_configurable() {
        let d = b"\x03\x01\x6A\x03ab\x00\x45\x83\x00\x01";
        let strict = Config {
            max_string_table: 2,
            ..Config::default()
        };
        assert_eq!(
            events_with(d, 99, strict),
            Err((ErrorKind::StringTableTooLarge { len: 3, limit: 2 }, 3))
        );
        assert!(events(d).is_ok());
    }

    #[test]
    fn version_filter_and_depth_limit() {
        // Find:Find (page 25, token 0x05) exists only in 16.1.
        let d = doc(b"\x00\x19\x05");
        let v14 = Config {
            version: Some(ProtocolVersion::V14_1),
            ..Config::default()
        };
        let tag = Tag::new(25, 5);
        assert_eq!(
            events_with(&d, 99, v14),
            Err((
                ErrorKind::TagNotInVersion {
                    tag,
                    version: ProtocolVersion::V14_1
                },
                6
            ))
        );
        let v16 = Config {
            version: Some(ProtocolVersion::V16_1),
            ..Config::default()
        };
        assert!(events_with(&d, 99, v16).is_ok());
        let shallow = Config {
            max_depth: 2,
            ..Config::default()
        };
        assert_eq!(
            events_with(&doc(b"\x45\x45\x45"), 99, shallow),
            Err((ErrorKind::TooDeep { limit: 2 }, 6))
        );
    }

    #[test]
    fn unknown_tags_pass_only_when_allowed() {
        let d = doc(b"\x00\x63\x45\x3F\x01");
        let lenient = Config {
            allow_unknown_tags: true,
            ..Config::default()
        };
        assert_eq!(
            events_with(&d, 99, lenient).unwrap(),
            [
                "<page 99:0x05>",
                "<page 99:0x3F/>",
                "</page 99:0x3F>",
                "</page 99:0x05>"
            ]
        );
    }

    #[test]
    fn header_of_a_broken_document_is_an_error() {
        let mut r = Reader::<_, 128, 8>::new(Trickle { data: b"", step: 1 });
        assert_eq!(r.next().unwrap_err().kind(), Some(ErrorKind::Empty));
        assert_eq!(r.header().unwrap_err().kind(), Some(ErrorKind::Empty));
        let mut r = Reader::<_, 128, 8>::new(Trickle {
            data: b"\x07",
            step: 1,
        });
        assert_eq!(
            r.header().unwrap_err().kind(),
            Some(ErrorKind::UnsupportedWbxmlVersion(7))
        );
        assert_eq!(
            r.next().unwrap_err().kind(),
            Some(ErrorKind::UnsupportedWbxmlVersion(7))
        );
    }

    #[test]
    fn errors_are_sticky() {
        let d = doc(b"\x45\x03ab\xFF\x00\x01");
        let mut r = Reader::<_, 128, 8>::new(Trickle { data: &d, step: 99 });
        assert!(r.next().is_ok());
        let first = r.next().unwrap_err();
        let again = r.next().unwrap_err();
        assert_eq!(
            (first.kind(), first.offset()),
            (again.kind(), again.offset())
        );
    }
}
