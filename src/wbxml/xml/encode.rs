//! XML → WBXML: the encoder behind `easyncctl wbxml encode`.
//!
//! [`encode`] reads the XML form described in [the parent module](super) and writes the WBXML
//! that [`super::decode`] would have read it from. It streams: a small XML tokenizer of its own
//! reads the input through [`BufRead`], and the [`Writer`] writes tags and text as they come.
//! Memory stays bounded whatever the document's size: the open element names (at most
//! [`MAX_DEPTH`] of at most [`MAX_NAME_LEN`] bytes), up to [`MAX_HELD_WHITESPACE`] bytes of
//! whitespace whose fate is not decided yet, and the decoded bytes of one opaque value (at most
//! [`MAX_OPAQUE_LEN`], as WBXML needs its length first).
//!
//! The rules:
//!
//! - XML 1.0 in UTF-8 (a byte order mark is skipped): the XML declaration, comments,
//!   processing instructions, a DOCTYPE (skipped, with its internal subset), CDATA sections,
//!   character references and the five predefined entities. Any other entity reference is an
//!   error, and so is anything that is not well-formed.
//! - Namespaces per XML Namespaces 1.0. Every element must resolve to an EAS code page (its
//!   namespace URI is the page name, with or without the trailing colon) and to a tag of that
//!   page (MS-ASWBXML). The prefix does not matter: `<Sync xmlns="AirSync:">` and
//!   `<a:Sync xmlns:a="AirSync:">` give the same bytes.
//! - The only attribute besides namespace declarations is `opaque="base64"`: the element's
//!   content is base64 (whitespace ignored) and becomes one OPAQUE value. `<X opaque="base64"/>`
//!   is an empty opaque value, like `<X opaque="base64"></X>`.
//! - `<X/>` is an element without content; `<X></X>` one with content but nothing in it.
//! - A run of character data between two tags (text, references, CDATA sections,
//!   `<?wbxml-char XX?>`, with comments and other processing instructions in between ignored) is
//!   one inline string. A run of literal whitespace only is formatting, and dropped, in an
//!   element that has child elements; in an element without children it is the value and kept.
//!   A reference, a CDATA section or a `<?wbxml-char?>` makes the run a value in any case, so
//!   `<X><![CDATA[]]></X>` is an empty inline string. Whitespace is held until the run's fate is
//!   known, up to [`MAX_HELD_WHITESPACE`] bytes; a longer run is written as a value.
//! - Line ends in the text are normalised as XML says (CR LF and a lone CR become LF); a CR
//!   written as `&#13;` stays a CR.
//! - `<?wbxml-char XX?>` puts the character U+XX (hexadecimal) into the text, for characters XML
//!   cannot hold; other processing instructions are ignored.
//!
//! Errors say where (line and column, both 1-based, columns counted in characters) and what to
//! fix.

use core::fmt;
use std::io::{self, BufRead};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;

use crate::wbxml::error::Error as WbxmlError;
use crate::wbxml::tags::{self, Tag};
use crate::wbxml::writer::Writer;

/// The deepest element nesting accepted.
pub const MAX_DEPTH: usize = 256;
/// The longest element, attribute or processing instruction target name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// The longest attribute value accepted, in bytes (namespace URIs and `base64`).
pub const MAX_ATTRIBUTE_LEN: usize = 256;
/// The most whitespace held back while it is unknown whether it is formatting or a value.
pub const MAX_HELD_WHITESPACE: usize = 64 * 1024;
/// The largest opaque value accepted (decoded), in bytes.
pub const MAX_OPAQUE_LEN: usize = 64 * 1024 * 1024;
/// The most namespace declarations in scope at once.
pub const MAX_NAMESPACES: usize = 256;

/// Character data is handed to the writer in batches of about this many bytes.
const BATCH: usize = 8 * 1024;
/// Base64 text is decoded in chunks of this many characters (a multiple of 4).
const B64_CHUNK: usize = 4 * 1024;
/// The longest `<?xml ...?>` declaration content accepted.
const MAX_XML_DECL: usize = 256;
/// The longest `<?wbxml-char ...?>` content accepted.
const MAX_WBXML_CHAR: usize = 16;
/// The namespace the `xml` prefix is bound to.
const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// Why [`encode`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError<E: fmt::Debug> {
    /// The input is not well-formed XML (or not UTF-8).
    #[error("line {line}, column {column}: {error}")]
    Syntax {
        line: u64,
        column: u64,
        error: SyntaxError,
    },
    /// The input is well-formed XML but not the XML form of an EAS WBXML document.
    #[error("line {line}, column {column}: {error}")]
    Semantic {
        line: u64,
        column: u64,
        error: SemanticError,
    },
    /// Reading the input failed.
    #[error("reading the XML input failed: {0}")]
    Read(#[from] io::Error),
    /// The WBXML writer refused a value or its output failed.
    #[error("writing the WBXML output failed: {0}")]
    Write(#[source] WbxmlError<E>),
}

impl<E: fmt::Debug> EncodeError<E> {
    /// The line and column (1-based) a syntax or semantic error is at.
    pub fn position(&self) -> Option<(u64, u64)> {
        match self {
            EncodeError::Syntax { line, column, .. }
            | EncodeError::Semantic { line, column, .. } => Some((*line, *column)),
            EncodeError::Read(_) | EncodeError::Write(_) => None,
        }
    }
}

/// What is found where something else was expected: a byte or the end of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Byte(u8),
    End,
}

impl From<Option<u8>> for Found {
    fn from(b: Option<u8>) -> Found {
        b.map_or(Found::End, Found::Byte)
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Found::End => f.write_str("the end of the document"),
            Found::Byte(b' ') => f.write_str("a space"),
            Found::Byte(b'\t') => f.write_str("a tab"),
            Found::Byte(b'\n' | b'\r') => f.write_str("a line break"),
            Found::Byte(b @ 0x21..=0x7e) => write!(f, "`{}`", b as char),
            Found::Byte(b @ 0x80..=0xFF) => write!(f, "a non-ASCII character (byte 0x{b:02X})"),
            Found::Byte(b) => write!(f, "control character 0x{b:02X}"),
        }
    }
}

/// Well-formedness errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("the document ends inside {0}: it is truncated or a closing delimiter is missing")]
    UnexpectedEof(&'static str),
    #[error(
        "the document ends while `<{name}>` from line {line}, column {column} is open: it is \
         truncated or `</{name}>` is missing"
    )]
    Unclosed {
        name: String,
        line: u64,
        column: u64,
    },
    #[error("the document has no root element")]
    NoRoot,
    #[error("expected {expected}, found {found}")]
    Expected {
        expected: &'static str,
        found: Found,
    },
    #[error("`{0}` is not a valid element name (one `prefix:` at most, then a local name)")]
    BadQualifiedName(String),
    #[error(
        "end tag `</{found}>` does not match the open element `<{expected}>` from line {line}, \
         column {column}"
    )]
    MismatchedEndTag {
        expected: String,
        found: String,
        line: u64,
        column: u64,
    },
    #[error("end tag `</{0}>` has no open element to close")]
    UnexpectedEndTag(String),
    #[error("a second root element `<{0}>`: a document has exactly one root element")]
    SecondRoot(String),
    #[error(
        "text outside the root element: only whitespace, comments and processing instructions \
         may come before or after it"
    )]
    TextOutsideRoot,
    #[error("a name is longer than the limit of {0} bytes")]
    NameTooLong(usize),
    #[error("elements are nested deeper than the limit of {0}")]
    TooDeep(usize),
    #[error(
        "undefined entity `&{0};`: only `&lt;`, `&gt;`, `&amp;`, `&apos;`, `&quot;` and character \
         references (`&#N;`, `&#xN;`) are allowed"
    )]
    UndefinedEntity(String),
    #[error("`&` does not start a valid reference; write a literal `&` as `&amp;`")]
    BadReference,
    #[error(
        "character reference to U+{0:04X}, which XML 1.0 does not allow; write such a character \
         (other than NUL, which WBXML text cannot hold) as `<?wbxml-char {0:02X}?>`"
    )]
    ForbiddenCharRef(u32),
    #[error(
        "character U+{0:04X} is not allowed in XML 1.0; write it as `<?wbxml-char {0:02X}?>` in \
         text"
    )]
    ForbiddenChar(u32),
    #[error("the input is not valid UTF-8 (the only encoding supported)")]
    InvalidUtf8,
    #[error("`]]>` is not allowed in text; write `]]&gt;`")]
    CdataEndInText,
    #[error("`--` is not allowed inside a comment")]
    DoubleHyphenInComment,
    #[error("the XML declaration `<?xml ...?>` must be the very first thing in the document")]
    MisplacedXmlDecl,
    #[error("malformed XML declaration: {0}")]
    BadXmlDecl(&'static str),
    #[error("encoding `{0}` is not supported: convert the document to UTF-8")]
    UnsupportedEncoding(String),
    #[error("processing instruction target `{0}` is reserved")]
    ReservedPiTarget(String),
    #[error("a DOCTYPE may only come once, before the root element")]
    MisplacedDoctype,
    #[error("attribute `{0}` appears twice on one element")]
    DuplicateAttribute(String),
    #[error("`<` is not allowed in an attribute value; write `&lt;`")]
    LtInAttributeValue,
    #[error("an attribute value is longer than the limit of {0} bytes")]
    AttributeValueTooLong(usize),
    #[error("the document starts with a UTF-16 byte order mark; only UTF-8 is supported")]
    Utf16,
}

/// Errors in well-formed XML that is not the XML form of an EAS document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemanticError {
    #[error(
        "element `{element}` has no namespace: declare its code page, as in `xmlns=\"AirSync:\"`"
    )]
    NoNamespace { element: String },
    #[error(
        "element `{element}` uses the prefix `{prefix}`, which is not declared: add \
         `xmlns:{prefix}=\"...\"` to it or to an enclosing element"
    )]
    UndeclaredPrefix { element: String, prefix: String },
    #[error(
        "element `{element}` is in namespace `{namespace}`, which is not an EAS code page \
         (MS-ASWBXML); namespaces are code page names with a colon, such as `AirSync:` or `Email:`"
    )]
    UnknownNamespace { element: String, namespace: String },
    #[error("element `{element}` is not in code page {page} (MS-ASWBXML); check the spelling")]
    UnknownElement { element: String, page: &'static str },
    #[error(
        "attribute `{0}` is not allowed: the only attributes are namespace declarations and \
         `opaque=\"base64\"`"
    )]
    BadAttribute(String),
    #[error("opaque=\"{0}\" is not supported: write opaque=\"base64\"")]
    BadOpaqueEncoding(String),
    #[error("bad namespace declaration: {0}")]
    BadNamespaceDeclaration(&'static str),
    #[error("more than {0} namespace declarations are in scope")]
    TooManyNamespaces(usize),
    #[error(
        "element `{element}` is inside `{parent}`, which is marked opaque=\"base64\" and can hold \
         only base64 text"
    )]
    ElementInOpaque { element: String, parent: String },
    #[error("invalid base64 in an opaque=\"base64\" element: {0}")]
    InvalidBase64(Base64Problem),
    #[error("the opaque value of `{element}` is larger than the limit of {limit} bytes")]
    OpaqueTooLarge { element: String, limit: usize },
    #[error(
        "`<?wbxml-char {0}?>` must hold the hexadecimal code point of a character other than \
         NUL, such as `<?wbxml-char 1B?>`"
    )]
    BadWbxmlChar(String),
}

/// What is wrong with the base64 text of an opaque value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Base64Problem {
    #[error("{0} is not a base64 character")]
    InvalidCharacter(Found),
    #[error("data after the `=` padding")]
    DataAfterPadding,
    #[error("more than two `=` padding characters")]
    TooMuchPadding,
    #[error("the length does not fit base64 (a character is missing or extra)")]
    BadLength,
    #[error("the last character has bits set that the data does not use (not canonical base64)")]
    NonCanonical,
}

type Res<T, E> = Result<T, EncodeError<E>>;

/// Encodes the XML form of an EAS WBXML document read from `input` into `out` (the EAS header
/// first), and gives back `out`.
///
/// On error the output holds the document up to where the error was found and is unusable.
pub fn encode<I: BufRead, W: embedded_io::Write>(input: I, out: W) -> Res<W, W::Error> {
    Encoder::new(input, out, MAX_OPAQUE_LEN).run()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pos {
    line: u64,
    column: u64,
}

fn syntax<E: fmt::Debug>(pos: Pos, error: SyntaxError) -> EncodeError<E> {
    EncodeError::Syntax {
        line: pos.line,
        column: pos.column,
        error,
    }
}

fn semantic<E: fmt::Debug>(pos: Pos, error: SemanticError) -> EncodeError<E> {
    EncodeError::Semantic {
        line: pos.line,
        column: pos.column,
        error,
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether `b` may be a byte of an XML name (loosely: any non-ASCII byte is accepted; the
/// tables hold only ASCII names anyway).
fn is_name_byte(b: u8, first: bool) -> bool {
    b.is_ascii_alphabetic()
        || b == b'_'
        || b == b':'
        || b >= 0x80
        || (!first && (b.is_ascii_digit() || b == b'-' || b == b'.'))
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: u32) -> bool {
    matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Line and column of the next byte.
struct Tracker {
    line: u64,
    column: u64,
    /// The last byte consumed was a CR (for CR LF).
    after_cr: bool,
}

impl Tracker {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn advance(&mut self, b: u8) {
        match b {
            b'\n' => {
                if !self.after_cr {
                    self.line += 1;
                }
                self.column = 1;
            }
            b'\r' => {
                self.line += 1;
                self.column = 1;
            }
            _ if b & 0xC0 != 0x80 => self.column += 1,
            _ => {}
        }
        self.after_cr = b == b'\r';
    }
}

/// `fill_buf`, retrying on `Interrupted`.
fn fill<R: BufRead>(r: &mut R) -> io::Result<&[u8]> {
    loop {
        match r.fill_buf() {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    r.fill_buf()
}

/// The input with position tracking.
struct Src<R> {
    r: R,
    t: Tracker,
}

impl<R: BufRead> Src<R> {
    fn pos(&self) -> Pos {
        self.t.pos()
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(fill(&mut self.r)?.first().copied())
    }

    /// Consumes the byte `b` that [`Src::peek`] has just returned.
    fn bump(&mut self, b: u8) {
        self.r.consume(1);
        self.t.advance(b);
    }

    fn next(&mut self) -> io::Result<Option<u8>> {
        let b = self.peek()?;
        if let Some(b) = b {
            self.bump(b);
        }
        Ok(b)
    }

    /// Skips whitespace; tells whether there was any.
    fn skip_ws(&mut self) -> io::Result<bool> {
        let mut any = false;
        while let Some(b) = self.peek()? {
            if !is_ws(b) {
                break;
            }
            self.bump(b);
            any = true;
        }
        Ok(any)
    }
}

/// Validation state of an opaque value's base64 text.
#[derive(Clone, Copy, Debug, Default)]
struct B64 {
    /// `=` seen so far.
    pad: u8,
    /// Base64 characters (padding included) seen so far.
    count: u64,
}

impl B64 {
    /// Checks one non-whitespace character.
    fn check(&mut self, c: u8) -> Result<(), Base64Problem> {
        if c == b'=' {
            if self.pad >= 2 {
                return Err(Base64Problem::TooMuchPadding);
            }
            self.pad += 1;
        } else if !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/') {
            return Err(Base64Problem::InvalidCharacter(Found::Byte(c)));
        } else if self.pad > 0 {
            return Err(Base64Problem::DataAfterPadding);
        }
        self.count += 1;
        Ok(())
    }

    /// Checks the total length at the end.
    fn finish(&self) -> Result<(), Base64Problem> {
        let bad = if self.pad > 0 {
            self.count % 4 != 0
        } else {
            self.count % 4 == 1
        };
        if bad {
            Err(Base64Problem::BadLength)
        } else {
            Ok(())
        }
    }
}

/// State of the character data scanner.
#[derive(Default)]
struct Scan {
    /// UTF-8: continuation bytes still expected, the code point so far, the smallest code point
    /// the sequence may encode, and where it started.
    need: u8,
    cp: u32,
    min: u32,
    start: Pos,
    /// `]` seen in a row (for `]]>`).
    brackets: u8,
    /// Where the first non-whitespace character of the current batch is.
    first_text: Option<Pos>,
    /// Inside an opaque element: the base64 check.
    b64: Option<B64>,
    /// Outside the root element, where only whitespace may be.
    outside: bool,
}

impl Scan {
    /// UTF-8 and XML character checks of one input byte at `pos`.
    fn check<E: fmt::Debug>(&mut self, b: u8, pos: Pos) -> Res<(), E> {
        if self.need > 0 {
            if b & 0xC0 != 0x80 {
                return Err(syntax(self.start, SyntaxError::InvalidUtf8));
            }
            self.cp = (self.cp << 6) | u32::from(b & 0x3F);
            self.need -= 1;
            if self.need == 0 {
                let cp = self.cp;
                if cp < self.min || (0xD800..=0xDFFF).contains(&cp) || cp > 0x10FFFF {
                    return Err(syntax(self.start, SyntaxError::InvalidUtf8));
                }
                if !is_xml_char(cp) {
                    return Err(syntax(self.start, SyntaxError::ForbiddenChar(cp)));
                }
            }
            return Ok(());
        }
        let (need, cp, min) = match b {
            0x00..=0x7F => {
                if !is_xml_char(u32::from(b)) {
                    return Err(syntax(pos, SyntaxError::ForbiddenChar(u32::from(b))));
                }
                return Ok(());
            }
            0xC2..=0xDF => (1, b & 0x1F, 0x80),
            0xE0..=0xEF => (2, b & 0x0F, 0x800),
            0xF0..=0xF4 => (3, b & 0x07, 0x10000),
            _ => return Err(syntax(pos, SyntaxError::InvalidUtf8)),
        };
        self.need = need;
        self.cp = u32::from(cp);
        self.min = min;
        self.start = pos;
        Ok(())
    }

    /// Adds one (normalised) byte of character data to the batch.
    fn emit<E: fmt::Debug>(&mut self, o: u8, pos: Pos, batch: &mut Vec<u8>) -> Res<(), E> {
        if !is_ws(o) {
            if self.outside {
                return Err(syntax(pos, SyntaxError::TextOutsideRoot));
            }
            if self.first_text.is_none() {
                self.first_text = Some(pos);
            }
            if let Some(v) = &mut self.b64 {
                v.check(o)
                    .map_err(|p| semantic(pos, SemanticError::InvalidBase64(p)))?;
            }
        }
        batch.push(o);
        Ok(())
    }
}

/// Scans character data (or a CDATA section's content, `cdata`) from `buf` into `batch`,
/// normalising line ends. Returns how many bytes were consumed and whether the run ended: at
/// `<` or `&` (not consumed) for text, after `]]>` for CDATA.
fn scan<E: fmt::Debug>(
    buf: &[u8],
    t: &mut Tracker,
    s: &mut Scan,
    batch: &mut Vec<u8>,
    cdata: bool,
) -> Res<(usize, bool), E> {
    let mut used = 0;
    for &b in buf {
        if batch.len() >= BATCH {
            return Ok((used, false));
        }
        let pos = t.pos();
        if !cdata && (b == b'<' || b == b'&') {
            if s.need > 0 {
                return Err(syntax(s.start, SyntaxError::InvalidUtf8));
            }
            return Ok((used, true));
        }
        s.check(b, pos)?;
        let after_cr = t.after_cr;
        t.advance(b);
        used += 1;
        if cdata {
            if b == b']' {
                if s.brackets == 2 {
                    s.emit(b']', pos, batch)?;
                } else {
                    s.brackets += 1;
                }
                continue;
            }
            if b == b'>' && s.brackets == 2 {
                s.brackets = 0;
                return Ok((used, true));
            }
            while s.brackets > 0 {
                s.brackets -= 1;
                s.emit(b']', pos, batch)?;
            }
        } else if b == b']' {
            s.brackets = s.brackets.saturating_add(1);
        } else {
            if b == b'>' && s.brackets >= 2 {
                return Err(syntax(pos, SyntaxError::CdataEndInText));
            }
            s.brackets = 0;
        }
        match b {
            b'\r' => s.emit(b'\n', pos, batch)?,
            b'\n' if after_cr => {}
            _ => s.emit(b, pos, batch)?,
        }
    }
    Ok((used, false))
}

/// An open element.
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// Its name as written, in `Encoder::names`.
    name: (usize, usize),
    /// Where its start tag is.
    pos: Pos,
    has_children: bool,
    opaque: bool,
    /// `Encoder::ns` and `Encoder::ns_text` lengths before its declarations.
    ns_len: usize,
    ns_text_len: usize,
}

/// A namespace declaration in scope: prefix (empty for the default) and URI, in
/// `Encoder::ns_text`.
#[derive(Clone, Copy, Debug)]
struct Binding {
    prefix: (usize, usize),
    uri: (usize, usize),
}

/// The current run of character data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// No character data since the last tag.
    Idle,
    /// Only literal whitespace, held in `Encoder::pending`.
    Held,
    /// An inline string is being written.
    Writing,
}

enum AttrKind<'a> {
    DefaultNs,
    PrefixNs(&'a str),
    Opaque,
}

struct Encoder<R, W> {
    src: Src<R>,
    out: Writer<W>,
    /// The names of the open elements, back to back.
    names: String,
    frames: Vec<Frame>,
    ns: Vec<Binding>,
    ns_text: String,
    run: Run,
    /// Whitespace held while its fate is unknown.
    pending: Vec<u8>,
    /// Character data scanned but not yet handed on.
    batch: Vec<u8>,
    scan: Scan,
    /// Base64 characters of the current opaque value not yet decoded.
    b64_chunk: Vec<u8>,
    /// The current opaque value, decoded.
    b64_data: Vec<u8>,
    opaque_limit: usize,
    root_seen: bool,
    doctype_seen: bool,
    /// Nothing but a byte order mark has been read.
    at_start: bool,
    /// Scratch for attribute values and processing instruction content.
    attr: Vec<u8>,
}

impl<R: BufRead, W: embedded_io::Write> Encoder<R, W> {
    fn new(input: R, out: W, opaque_limit: usize) -> Self {
        Encoder {
            src: Src {
                r: input,
                t: Tracker {
                    line: 1,
                    column: 1,
                    after_cr: false,
                },
            },
            out: Writer::new(out),
            names: String::new(),
            frames: Vec::new(),
            ns: Vec::new(),
            ns_text: String::new(),
            run: Run::Idle,
            pending: Vec::new(),
            batch: Vec::new(),
            scan: Scan::default(),
            b64_chunk: Vec::new(),
            b64_data: Vec::new(),
            opaque_limit,
            root_seen: false,
            doctype_seen: false,
            at_start: true,
            attr: Vec::new(),
        }
    }

    fn run(mut self) -> Res<W, W::Error> {
        self.out.header().map_err(EncodeError::Write)?;
        self.byte_order_mark()?;
        loop {
            let pos = self.src.pos();
            match self.src.peek()? {
                None => break,
                Some(b'<') => {
                    self.src.bump(b'<');
                    self.markup(pos)?;
                }
                Some(b'&') => {
                    self.src.bump(b'&');
                    let c = self.reference(pos)?;
                    let mut utf8 = [0u8; 4];
                    self.significant(c.encode_utf8(&mut utf8).as_bytes(), pos)?;
                }
                Some(_) => self.char_data(false)?,
            }
            self.at_start = false;
        }
        let pos = self.src.pos();
        if let Some(f) = self.frames.last() {
            return Err(syntax(
                pos,
                SyntaxError::Unclosed {
                    name: self.name_of(f).to_string(),
                    line: f.pos.line,
                    column: f.pos.column,
                },
            ));
        }
        if !self.root_seen {
            return Err(syntax(pos, SyntaxError::NoRoot));
        }
        self.out.finish().map_err(EncodeError::Write)
    }

    fn name_of(&self, f: &Frame) -> &str {
        self.names.get(f.name.0..f.name.1).unwrap_or_default()
    }

    fn byte_order_mark(&mut self) -> Res<(), W::Error> {
        let pos = self.src.pos();
        match self.src.peek()? {
            Some(0xEF) => {
                self.src.bump(0xEF);
                for want in [0xBB, 0xBF] {
                    if self.src.next()? != Some(want) {
                        return Err(syntax(pos, SyntaxError::TextOutsideRoot));
                    }
                }
                self.src.t.column = 1;
            }
            Some(0xFE | 0xFF) => return Err(syntax(pos, SyntaxError::Utf16)),
            _ => {}
        }
        Ok(())
    }

    /// Consumes `lit` or fails saying `what` was expected.
    fn expect(&mut self, lit: &[u8], what: &'static str) -> Res<(), W::Error> {
        for &want in lit {
            let pos = self.src.pos();
            match self.src.peek()? {
                Some(b) if b == want => self.src.bump(b),
                found => {
                    return Err(syntax(
                        pos,
                        SyntaxError::Expected {
                            expected: what,
                            found: found.into(),
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads an XML name into `buf`.
    fn read_name<'b>(
        &mut self,
        buf: &'b mut [u8; MAX_NAME_LEN],
        what: &'static str,
    ) -> Res<&'b str, W::Error> {
        let start = self.src.pos();
        let mut n = 0;
        loop {
            let b = match self.src.peek()? {
                Some(b) if is_name_byte(b, n == 0) => b,
                found => {
                    if n == 0 {
                        return Err(syntax(
                            start,
                            SyntaxError::Expected {
                                expected: what,
                                found: found.into(),
                            },
                        ));
                    }
                    break;
                }
            };
            match buf.get_mut(n) {
                Some(slot) => *slot = b,
                None => return Err(syntax(start, SyntaxError::NameTooLong(MAX_NAME_LEN))),
            }
            n += 1;
            self.src.bump(b);
        }
        let bytes = buf.get(..n).unwrap_or_default();
        std::str::from_utf8(bytes).map_err(|_| syntax(start, SyntaxError::InvalidUtf8))
    }

    /// After `<`.
    fn markup(&mut self, pos: Pos) -> Res<(), W::Error> {
        match self.src.peek()? {
            Some(b'/') => {
                self.src.bump(b'/');
                self.end_tag(pos)
            }
            Some(b'?') => {
                self.src.bump(b'?');
                self.processing_instruction(pos)
            }
            Some(b'!') => {
                self.src.bump(b'!');
                let at = self.src.pos();
                match self.src.peek()? {
                    Some(b'-') => {
                        self.expect(b"--", "`<!--`")?;
                        self.comment()
                    }
                    Some(b'[') => {
                        self.expect(b"[CDATA[", "`<![CDATA[`")?;
                        self.cdata(pos)
                    }
                    Some(b'D') => {
                        self.expect(b"DOCTYPE", "`<!DOCTYPE`")?;
                        self.doctype(pos)
                    }
                    found => Err(syntax(
                        at,
                        SyntaxError::Expected {
                            expected: "`<!--`, `<![CDATA[` or `<!DOCTYPE`",
                            found: found.into(),
                        },
                    )),
                }
            }
            _ => self.start_tag(pos),
        }
    }

    /// After `<`, at the element name.
    fn start_tag(&mut self, pos: Pos) -> Res<(), W::Error> {
        let mut buf = [0u8; MAX_NAME_LEN];
        let name = self.read_name(&mut buf, "an element name after `<`")?;
        if self.frames.is_empty() && self.root_seen {
            return Err(syntax(pos, SyntaxError::SecondRoot(name.to_string())));
        }
        if self.frames.len() >= MAX_DEPTH {
            return Err(syntax(pos, SyntaxError::TooDeep(MAX_DEPTH)));
        }
        if let Some(parent) = self.frames.last() {
            if parent.opaque {
                return Err(semantic(
                    pos,
                    SemanticError::ElementInOpaque {
                        element: name.to_string(),
                        parent: self.name_of(parent).to_string(),
                    },
                ));
            }
        }
        let name_start = self.names.len();
        self.names.push_str(name);
        let name_end = self.names.len();
        let ns_len = self.ns.len();
        let ns_text_len = self.ns_text.len();
        let mut opaque = false;
        let self_closing = loop {
            let had_ws = self.src.skip_ws()?;
            let at = self.src.pos();
            match self.src.peek()? {
                Some(b'>') => {
                    self.src.bump(b'>');
                    break false;
                }
                Some(b'/') => {
                    self.src.bump(b'/');
                    self.expect(b">", "`>` after `/` (as in `<X/>`)")?;
                    break true;
                }
                None => return Err(syntax(at, SyntaxError::UnexpectedEof("a start tag"))),
                Some(b) if !had_ws => {
                    return Err(syntax(
                        at,
                        SyntaxError::Expected {
                            expected: "whitespace, `>` or `/>` after the element name",
                            found: Found::Byte(b),
                        },
                    ));
                }
                Some(_) => self.attribute(at, ns_len, &mut opaque)?,
            }
        };
        let tag = self.resolve(name_start, name_end, pos)?;

        // The parent's character data run ends here, and the parent has a child.
        if let Some(parent) = self.frames.last_mut() {
            parent.has_children = true;
        }
        match self.run {
            Run::Held => self.pending.clear(),
            Run::Writing => self.out.close_text().map_err(EncodeError::Write)?,
            Run::Idle => {}
        }
        self.run = Run::Idle;
        self.root_seen = true;

        if self_closing {
            if opaque {
                self.out.start(tag).map_err(EncodeError::Write)?;
                self.out.opaque(&[]).map_err(EncodeError::Write)?;
                self.out.end().map_err(EncodeError::Write)?;
            } else {
                self.out.empty(tag).map_err(EncodeError::Write)?;
            }
            self.names.truncate(name_start);
            self.ns.truncate(ns_len);
            self.ns_text.truncate(ns_text_len);
        } else {
            self.out.start(tag).map_err(EncodeError::Write)?;
            self.frames.push(Frame {
                name: (name_start, name_end),
                pos,
                has_children: false,
                opaque,
                ns_len,
                ns_text_len,
            });
            if opaque {
                self.scan.b64 = Some(B64::default());
                self.b64_chunk.clear();
                self.b64_data.clear();
            }
        }
        Ok(())
    }

    /// One attribute of a start tag, at its name (`pos`).
    fn attribute(&mut self, pos: Pos, ns_len: usize, opaque: &mut bool) -> Res<(), W::Error> {
        let mut buf = [0u8; MAX_NAME_LEN];
        let name = self.read_name(&mut buf, "an attribute name")?;
        let kind = if name == "xmlns" {
            AttrKind::DefaultNs
        } else if let Some(prefix) = name.strip_prefix("xmlns:") {
            AttrKind::PrefixNs(prefix)
        } else if name == "opaque" {
            AttrKind::Opaque
        } else {
            return Err(semantic(pos, SemanticError::BadAttribute(name.to_string())));
        };
        self.src.skip_ws()?;
        self.expect(b"=", "`=` after the attribute name")?;
        self.src.skip_ws()?;
        let value_pos = self.src.pos();
        self.attribute_value()?;
        let value = std::str::from_utf8(&self.attr)
            .map_err(|_| syntax(value_pos, SyntaxError::InvalidUtf8))?;
        let prefix = match kind {
            AttrKind::Opaque => {
                if *opaque {
                    return Err(syntax(
                        pos,
                        SyntaxError::DuplicateAttribute(name.to_string()),
                    ));
                }
                if value != "base64" {
                    return Err(semantic(
                        value_pos,
                        SemanticError::BadOpaqueEncoding(value.to_string()),
                    ));
                }
                *opaque = true;
                return Ok(());
            }
            AttrKind::DefaultNs => "",
            AttrKind::PrefixNs(prefix) => {
                let bad = if prefix.is_empty() || prefix.contains(':') {
                    Some("`xmlns:` must be followed by a prefix without `:`")
                } else if prefix == "xmlns" {
                    Some("the prefix `xmlns` cannot be declared")
                } else if prefix == "xml" && value != XML_NAMESPACE {
                    Some("the prefix `xml` is reserved")
                } else if value.is_empty() {
                    Some("a prefix cannot be undeclared (`xmlns:p=\"\"`) in XML Namespaces 1.0")
                } else {
                    None
                };
                if let Some(why) = bad {
                    return Err(semantic(pos, SemanticError::BadNamespaceDeclaration(why)));
                }
                if prefix == "xml" {
                    return Ok(());
                }
                prefix
            }
        };
        let ns_text = &self.ns_text;
        let duplicate = self
            .ns
            .get(ns_len..)
            .unwrap_or_default()
            .iter()
            .any(|b| ns_text.get(b.prefix.0..b.prefix.1) == Some(prefix));
        if duplicate {
            return Err(syntax(
                pos,
                SyntaxError::DuplicateAttribute(name.to_string()),
            ));
        }
        if self.ns.len() >= MAX_NAMESPACES {
            return Err(semantic(
                pos,
                SemanticError::TooManyNamespaces(MAX_NAMESPACES),
            ));
        }
        let p0 = self.ns_text.len();
        self.ns_text.push_str(prefix);
        let p1 = self.ns_text.len();
        self.ns_text.push_str(value);
        let u1 = self.ns_text.len();
        self.ns.push(Binding {
            prefix: (p0, p1),
            uri: (p1, u1),
        });
        Ok(())
    }

    /// A quoted attribute value into `self.attr`, references replaced and whitespace
    /// normalised.
    fn attribute_value(&mut self) -> Res<(), W::Error> {
        let start = self.src.pos();
        let quote = match self.src.peek()? {
            Some(q @ (b'"' | b'\'')) => {
                self.src.bump(q);
                q
            }
            found => {
                return Err(syntax(
                    start,
                    SyntaxError::Expected {
                        expected: "a quoted attribute value",
                        found: found.into(),
                    },
                ));
            }
        };
        self.attr.clear();
        loop {
            let pos = self.src.pos();
            let b = match self.src.peek()? {
                Some(b) => b,
                None => {
                    return Err(syntax(
                        pos,
                        SyntaxError::UnexpectedEof("an attribute value"),
                    ));
                }
            };
            if b == quote {
                self.src.bump(b);
                return Ok(());
            }
            match b {
                b'<' => return Err(syntax(pos, SyntaxError::LtInAttributeValue)),
                b'&' => {
                    self.src.bump(b);
                    let c = self.reference(pos)?;
                    let mut utf8 = [0u8; 4];
                    self.attr
                        .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                b'\t' | b'\n' | b'\r' => {
                    let after_cr = self.src.t.after_cr;
                    self.src.bump(b);
                    if !(b == b'\n' && after_cr) {
                        self.attr.push(b' ');
                    }
                }
                0x00..=0x1F => return Err(syntax(pos, SyntaxError::ForbiddenChar(u32::from(b)))),
                _ => {
                    self.src.bump(b);
                    self.attr.push(b);
                }
            }
            if self.attr.len() > MAX_ATTRIBUTE_LEN {
                return Err(syntax(
                    start,
                    SyntaxError::AttributeValueTooLong(MAX_ATTRIBUTE_LEN),
                ));
            }
        }
    }

    /// Resolves the element name in `names[start..end]` to a tag.
    fn resolve(&self, start: usize, end: usize, pos: Pos) -> Res<Tag, W::Error> {
        let qname = self.names.get(start..end).unwrap_or_default();
        let (prefix, local) = match qname.split_once(':') {
            Some((p, l)) => {
                if p.is_empty() || l.is_empty() || l.contains(':') {
                    return Err(syntax(
                        pos,
                        SyntaxError::BadQualifiedName(qname.to_string()),
                    ));
                }
                (p, l)
            }
            None => ("", qname),
        };
        let uri = self
            .ns
            .iter()
            .rev()
            .find(|b| self.ns_text.get(b.prefix.0..b.prefix.1) == Some(prefix))
            .map(|b| self.ns_text.get(b.uri.0..b.uri.1).unwrap_or_default());
        let uri = match uri {
            Some(uri) if !uri.is_empty() => uri,
            None if !prefix.is_empty() => {
                return Err(semantic(
                    pos,
                    SemanticError::UndeclaredPrefix {
                        element: qname.to_string(),
                        prefix: prefix.to_string(),
                    },
                ));
            }
            _ => {
                return Err(semantic(
                    pos,
                    SemanticError::NoNamespace {
                        element: qname.to_string(),
                    },
                ));
            }
        };
        let page = tags::page_by_namespace(uri).ok_or_else(|| {
            semantic(
                pos,
                SemanticError::UnknownNamespace {
                    element: qname.to_string(),
                    namespace: uri.to_string(),
                },
            )
        })?;
        let def = page.tag_by_name(local).ok_or_else(|| {
            semantic(
                pos,
                SemanticError::UnknownElement {
                    element: qname.to_string(),
                    page: page.name,
                },
            )
        })?;
        Ok(Tag::new(page.number, def.token))
    }

    /// After `</`.
    fn end_tag(&mut self, pos: Pos) -> Res<(), W::Error> {
        let mut buf = [0u8; MAX_NAME_LEN];
        let name = self.read_name(&mut buf, "an element name after `</`")?;
        self.src.skip_ws()?;
        self.expect(b">", "`>` to close the end tag")?;
        let frame = match self.frames.last() {
            Some(f) => *f,
            None => return Err(syntax(pos, SyntaxError::UnexpectedEndTag(name.to_string()))),
        };
        let open = self.name_of(&frame);
        if open != name {
            return Err(syntax(
                pos,
                SyntaxError::MismatchedEndTag {
                    expected: open.to_string(),
                    found: name.to_string(),
                    line: frame.pos.line,
                    column: frame.pos.column,
                },
            ));
        }
        if frame.opaque {
            self.finish_opaque(pos)?;
        } else {
            match self.run {
                Run::Held if !frame.has_children => {
                    self.out
                        .text_piece(&self.pending)
                        .map_err(EncodeError::Write)?;
                    self.out.close_text().map_err(EncodeError::Write)?;
                }
                Run::Writing => self.out.close_text().map_err(EncodeError::Write)?,
                Run::Held | Run::Idle => {}
            }
        }
        self.pending.clear();
        self.run = Run::Idle;
        self.out.end().map_err(EncodeError::Write)?;
        self.frames.pop();
        self.names.truncate(frame.name.0);
        self.ns.truncate(frame.ns_len);
        self.ns_text.truncate(frame.ns_text_len);
        Ok(())
    }

    /// At the end tag (`pos`) of an opaque element: checks and writes the value.
    fn finish_opaque(&mut self, pos: Pos) -> Res<(), W::Error> {
        let v = self.scan.b64.take().unwrap_or_default();
        v.finish()
            .map_err(|p| semantic(pos, SemanticError::InvalidBase64(p)))?;
        self.decode_chunk(pos)?;
        self.out
            .opaque(&self.b64_data)
            .map_err(EncodeError::Write)?;
        if self.b64_data.capacity() > 1024 * 1024 {
            self.b64_data = Vec::new();
        } else {
            self.b64_data.clear();
        }
        Ok(())
    }

    /// Decodes the base64 characters collected so far.
    fn decode_chunk(&mut self, pos: Pos) -> Res<(), W::Error> {
        if self.b64_chunk.is_empty() {
            return Ok(());
        }
        STANDARD_PAD_INDIFFERENT
            .decode_vec(&self.b64_chunk, &mut self.b64_data)
            .map_err(|e| {
                let problem = match e {
                    base64::DecodeError::InvalidLastSymbol { .. } => Base64Problem::NonCanonical,
                    _ => Base64Problem::BadLength,
                };
                semantic(pos, SemanticError::InvalidBase64(problem))
            })?;
        self.b64_chunk.clear();
        if self.b64_data.len() > self.opaque_limit {
            let element = self
                .frames
                .last()
                .map(|f| self.name_of(f).to_string())
                .unwrap_or_default();
            let pos = self.frames.last().map_or(pos, |f| f.pos);
            return Err(semantic(
                pos,
                SemanticError::OpaqueTooLarge {
                    element,
                    limit: self.opaque_limit,
                },
            ));
        }
        Ok(())
    }

    /// Adds base64 characters (whitespace skipped) of an opaque value, already checked.
    fn collect_base64(&mut self, bytes: &[u8], pos: Pos) -> Res<(), W::Error> {
        for &b in bytes {
            if is_ws(b) {
                continue;
            }
            self.b64_chunk.push(b);
            if self.b64_chunk.len() >= B64_CHUNK {
                self.decode_chunk(pos)?;
            }
        }
        Ok(())
    }

    /// Text from a reference, a CDATA section (empty: its start) or `<?wbxml-char?>` at `pos`:
    /// always a value.
    fn significant(&mut self, bytes: &[u8], pos: Pos) -> Res<(), W::Error> {
        if self.frames.is_empty() {
            return Err(syntax(pos, SyntaxError::TextOutsideRoot));
        }
        if let Some(v) = &mut self.scan.b64 {
            for &b in bytes {
                if !is_ws(b) {
                    v.check(b)
                        .map_err(|p| semantic(pos, SemanticError::InvalidBase64(p)))?;
                }
            }
            return self.collect_base64(bytes, pos);
        }
        if self.run == Run::Held {
            self.out
                .text_piece(&self.pending)
                .map_err(EncodeError::Write)?;
        }
        self.pending.clear();
        self.out.text_piece(bytes).map_err(EncodeError::Write)?;
        self.run = Run::Writing;
        Ok(())
    }

    /// Literal character data (or a CDATA section's content) up to the next markup.
    fn char_data(&mut self, cdata: bool) -> Res<(), W::Error> {
        self.scan.brackets = 0;
        self.scan.outside = self.frames.is_empty();
        loop {
            let Src { r, t } = &mut self.src;
            let buf = fill(r)?;
            if buf.is_empty() {
                if cdata {
                    return Err(syntax(
                        t.pos(),
                        SyntaxError::UnexpectedEof("a CDATA section"),
                    ));
                }
                if self.scan.need > 0 {
                    return Err(syntax(self.scan.start, SyntaxError::InvalidUtf8));
                }
                return Ok(());
            }
            let (used, done) = scan(buf, t, &mut self.scan, &mut self.batch, cdata)?;
            r.consume(used);
            self.route_batch()?;
            if done {
                return Ok(());
            }
        }
    }

    /// Hands the scanned batch on: dropped, held, written or collected as base64.
    fn route_batch(&mut self) -> Res<(), W::Error> {
        let first_text = self.scan.first_text.take();
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.frames.is_empty() {
            if let Some(p) = first_text {
                return Err(syntax(p, SyntaxError::TextOutsideRoot));
            }
        } else if self.scan.b64.is_some() {
            let batch = std::mem::take(&mut self.batch);
            let pos = self.src.pos();
            let r = self.collect_base64(&batch, pos);
            self.batch = batch;
            r?;
        } else if first_text.is_none() && self.run != Run::Writing {
            if self.pending.len() + self.batch.len() > MAX_HELD_WHITESPACE {
                self.out
                    .text_piece(&self.pending)
                    .map_err(EncodeError::Write)?;
                self.out
                    .text_piece(&self.batch)
                    .map_err(EncodeError::Write)?;
                self.pending.clear();
                self.run = Run::Writing;
            } else {
                self.pending.extend_from_slice(&self.batch);
                self.run = Run::Held;
            }
        } else {
            if self.run == Run::Held {
                self.out
                    .text_piece(&self.pending)
                    .map_err(EncodeError::Write)?;
            }
            self.pending.clear();
            self.out
                .text_piece(&self.batch)
                .map_err(EncodeError::Write)?;
            self.run = Run::Writing;
        }
        self.batch.clear();
        Ok(())
    }

    /// After `<![CDATA[`.
    fn cdata(&mut self, pos: Pos) -> Res<(), W::Error> {
        if self.frames.is_empty() {
            return Err(syntax(pos, SyntaxError::TextOutsideRoot));
        }
        if self.scan.b64.is_none() {
            self.significant(b"", pos)?;
        }
        self.char_data(true)
    }

    /// After `&`: a character or entity reference up to `;`.
    fn reference(&mut self, amp: Pos) -> Res<char, W::Error> {
        let mut buf = [0u8; 32];
        let mut n = 0;
        loop {
            match self.src.peek()? {
                Some(b';') => {
                    self.src.bump(b';');
                    break;
                }
                Some(b) if (n == 0 && b == b'#') || is_name_byte(b, n == 0) => {
                    match buf.get_mut(n) {
                        Some(slot) => *slot = b,
                        None => return Err(syntax(amp, SyntaxError::BadReference)),
                    }
                    n += 1;
                    self.src.bump(b);
                }
                _ => return Err(syntax(amp, SyntaxError::BadReference)),
            }
        }
        let body = buf.get(..n).unwrap_or_default();
        let number = |digits: &[u8], radix: u32| -> Option<u32> {
            if digits.is_empty() {
                return None;
            }
            let mut v: u32 = 0;
            for &d in digits {
                let d = char::from(d).to_digit(radix)?;
                v = v.saturating_mul(radix).saturating_add(d);
            }
            Some(v)
        };
        let code = if let Some(hex) = body.strip_prefix(b"#x") {
            number(hex, 16)
        } else if let Some(dec) = body.strip_prefix(b"#") {
            number(dec, 10)
        } else {
            return match body {
                b"lt" => Ok('<'),
                b"gt" => Ok('>'),
                b"amp" => Ok('&'),
                b"apos" => Ok('\''),
                b"quot" => Ok('"'),
                b"" => Err(syntax(amp, SyntaxError::BadReference)),
                _ => Err(syntax(
                    amp,
                    SyntaxError::UndefinedEntity(String::from_utf8_lossy(body).into_owned()),
                )),
            };
        };
        let code = code.ok_or_else(|| syntax(amp, SyntaxError::BadReference))?;
        match char::from_u32(code) {
            Some(c) if is_xml_char(code) => Ok(c),
            _ => Err(syntax(amp, SyntaxError::ForbiddenCharRef(code))),
        }
    }

    /// After `<!--`.
    fn comment(&mut self) -> Res<(), W::Error> {
        loop {
            let pos = self.src.pos();
            match self.src.next()? {
                None => return Err(syntax(pos, SyntaxError::UnexpectedEof("a comment"))),
                Some(b'-') if self.src.peek()? == Some(b'-') => {
                    self.src.bump(b'-');
                    return match self.src.next()? {
                        Some(b'>') => Ok(()),
                        _ => Err(syntax(pos, SyntaxError::DoubleHyphenInComment)),
                    };
                }
                Some(_) => {}
            }
        }
    }

    /// After `<!DOCTYPE`: skipped, internal subset included.
    fn doctype(&mut self, pos: Pos) -> Res<(), W::Error> {
        if self.root_seen || self.doctype_seen {
            return Err(syntax(pos, SyntaxError::MisplacedDoctype));
        }
        self.doctype_seen = true;
        let mut quote = None;
        let mut subset = false;
        loop {
            let at = self.src.pos();
            let b = match self.src.next()? {
                Some(b) => b,
                None => return Err(syntax(at, SyntaxError::UnexpectedEof("the DOCTYPE"))),
            };
            if let Some(q) = quote {
                if b == q {
                    quote = None;
                }
                continue;
            }
            match b {
                b'"' | b'\'' => quote = Some(b),
                b'[' if !subset => subset = true,
                b']' if subset => subset = false,
                b'>' if !subset => return Ok(()),
                b'<' if subset => match self.src.peek()? {
                    Some(b'!') => {
                        self.src.bump(b'!');
                        if self.src.peek()? == Some(b'-') {
                            self.expect(b"--", "`<!--`")?;
                            self.comment()?;
                        }
                    }
                    Some(b'?') => {
                        self.src.bump(b'?');
                        self.skip_to_pi_end()?;
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }

    /// Skips to just after `?>`.
    fn skip_to_pi_end(&mut self) -> Res<(), W::Error> {
        loop {
            let pos = self.src.pos();
            match self.src.next()? {
                None => {
                    return Err(syntax(
                        pos,
                        SyntaxError::UnexpectedEof("a processing instruction"),
                    ));
                }
                Some(b'?') if self.src.peek()? == Some(b'>') => {
                    self.src.bump(b'>');
                    return Ok(());
                }
                Some(_) => {}
            }
        }
    }

    /// A processing instruction's content after its target, up to and including `?>`, into
    /// `self.attr` up to `keep` bytes. Returns false if there was more than that.
    fn pi_content(&mut self, keep: usize) -> Res<bool, W::Error> {
        self.attr.clear();
        let had_ws = self.src.skip_ws()?;
        let mut fits = true;
        let mut first = true;
        loop {
            let pos = self.src.pos();
            let b = match self.src.next()? {
                Some(b) => b,
                None => {
                    return Err(syntax(
                        pos,
                        SyntaxError::UnexpectedEof("a processing instruction"),
                    ));
                }
            };
            if b == b'?' && self.src.peek()? == Some(b'>') {
                self.src.bump(b'>');
                return Ok(fits);
            }
            if first && !had_ws {
                return Err(syntax(
                    pos,
                    SyntaxError::Expected {
                        expected: "whitespace or `?>` after the processing instruction target",
                        found: Found::Byte(b),
                    },
                ));
            }
            first = false;
            if self.attr.len() < keep {
                self.attr.push(b);
            } else {
                fits = false;
            }
        }
    }

    /// After `<?`.
    fn processing_instruction(&mut self, pos: Pos) -> Res<(), W::Error> {
        let mut buf = [0u8; MAX_NAME_LEN];
        let target = self.read_name(&mut buf, "a processing instruction target after `<?`")?;
        if target.eq_ignore_ascii_case("xml") {
            if target != "xml" {
                return Err(syntax(
                    pos,
                    SyntaxError::ReservedPiTarget(target.to_string()),
                ));
            }
            if !self.at_start {
                return Err(syntax(pos, SyntaxError::MisplacedXmlDecl));
            }
            if !self.pi_content(MAX_XML_DECL)? {
                return Err(syntax(pos, SyntaxError::BadXmlDecl("it is too long")));
            }
            self.xml_declaration(pos)
        } else if target == "wbxml-char" {
            let fits = self.pi_content(MAX_WBXML_CHAR)?;
            let text = String::from_utf8_lossy(&self.attr);
            let digits = text.trim();
            let c = if fits && (1..=6).contains(&digits.len()) {
                if digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                    u32::from_str_radix(digits, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .filter(|&c| c != '\0')
                } else {
                    None
                }
            } else {
                None
            };
            let c = match c {
                Some(c) => c,
                None => {
                    return Err(semantic(
                        pos,
                        SemanticError::BadWbxmlChar(digits.to_string()),
                    ));
                }
            };
            let mut utf8 = [0u8; 4];
            self.significant(c.encode_utf8(&mut utf8).as_bytes(), pos)
        } else {
            self.pi_content(0).map(|_| ())
        }
    }

    /// Checks the XML declaration's content (in `self.attr`).
    fn xml_declaration(&self, pos: Pos) -> Res<(), W::Error> {
        let bad = |why| syntax(pos, SyntaxError::BadXmlDecl(why));
        let text = std::str::from_utf8(&self.attr).map_err(|_| bad("it is not UTF-8"))?;
        let mut rest = text.trim();
        let mut version = false;
        while !rest.is_empty() {
            let (name, after) = rest
                .split_once('=')
                .ok_or_else(|| bad("expected name=\"value\" pairs"))?;
            let after = after.trim_start();
            let (quote, after) = if let Some(a) = after.strip_prefix('"') {
                ('"', a)
            } else if let Some(a) = after.strip_prefix('\'') {
                ('\'', a)
            } else {
                return Err(bad("a value is not quoted"));
            };
            let (value, tail) = after
                .split_once(quote)
                .ok_or_else(|| bad("a value is not closed"))?;
            match name.trim() {
                "version" => {
                    if !value.starts_with("1.") {
                        return Err(bad("the version must be 1.0"));
                    }
                    version = true;
                }
                "encoding" => {
                    let ok = ["UTF-8", "UTF8", "US-ASCII", "ASCII"]
                        .iter()
                        .any(|e| e.eq_ignore_ascii_case(value));
                    if !ok {
                        return Err(syntax(
                            pos,
                            SyntaxError::UnsupportedEncoding(value.to_string()),
                        ));
                    }
                }
                "standalone" => {}
                _ => return Err(bad("only version, encoding and standalone may appear")),
            }
            rest = tail.trim_start();
        }
        if !version {
            return Err(bad("the version is missing"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::convert::Infallible;
    use std::io::{BufReader, Read};

    /// Encodes `xml` from a slice and again one byte per read; both must agree.
    fn try_enc(xml: &[u8]) -> Result<Vec<u8>, EncodeError<Infallible>> {
        let whole = encode(xml, Vec::new());
        let trickle = encode(BufReader::with_capacity(1, xml), Vec::new());
        match (&whole, &trickle) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "buffering changed the output"),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "buffering changed the error")
            }
            _ => panic!("buffering changed the outcome: {whole:?} vs {trickle:?}"),
        }
        whole
    }

    fn enc(xml: &str) -> Vec<u8> {
        try_enc(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\nin: {xml}"))
    }

    fn err(xml: &str) -> EncodeError<Infallible> {
        match try_enc(xml.as_bytes()) {
            Ok(out) => panic!("accepted {xml:?} as {out:02X?}"),
            Err(e) => e,
        }
    }

    /// A syntax error's (line, column, error).
    fn syn(xml: &str) -> (u64, u64, SyntaxError) {
        match err(xml) {
            EncodeError::Syntax {
                line,
                column,
                error,
            } => (line, column, error),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    /// A semantic error's (line, column, error).
    fn sem(xml: &str) -> (u64, u64, SemanticError) {
        match err(xml) {
            EncodeError::Semantic {
                line,
                column,
                error,
            } => (line, column, error),
            other => panic!("expected a semantic error, got {other:?}"),
        }
    }

    const HEAD: [u8; 4] = [0x03, 0x01, 0x6A, 0x00];

    fn doc(body: &[u8]) -> Vec<u8> {
        let mut v = HEAD.to_vec();
        v.extend_from_slice(body);
        v
    }

    /// `<Sync xmlns="AirSync:">{inner}</Sync>`.
    fn in_sync(inner: &str) -> Vec<u8> {
        enc(&format!("<Sync xmlns=\"AirSync:\">{inner}</Sync>"))
    }

    #[test]
    fn sync_with_empty_collections() {
        assert_eq!(
            enc(r#"<Sync xmlns="AirSync:"><Collections/></Sync>"#),
            [0x03, 0x01, 0x6A, 0x00, 0x45, 0x1C, 0x01]
        );
    }

    #[test]
    fn lone_root_without_content() {
        assert_eq!(enc(r#"<Sync xmlns="AirSync:"/>"#), doc(&[0x05]));
        assert_eq!(enc(r#"<Sync xmlns="AirSync:"></Sync>"#), doc(&[0x45, 0x01]));
    }

    #[test]
    fn prefixed_default_and_bare_namespaces_give_the_same_bytes() {
        let want = doc(&[0x45, 0x1C, 0x01]);
        assert_eq!(
            enc(r#"<as:Sync xmlns:as="AirSync:"><as:Collections/></as:Sync>"#),
            want
        );
        assert_eq!(enc(r#"<Sync xmlns="AirSync"><Collections/></Sync>"#), want);
        assert_eq!(
            enc(r#"<x:Sync xmlns="AirSync:" xmlns:x="AirSync:"><Collections/></x:Sync>"#),
            want
        );
        // A prefix redeclared in an inner scope, and the default set by an inner element.
        assert_eq!(
            enc(
                r#"<a:Sync xmlns:a="AirSync:"><Collections xmlns:a="Email:" xmlns="AirSync:"/></a:Sync>"#
            ),
            want
        );
    }

    /// The example of MS-ASWBXML section 4.1 (a Sync response with a new contact), with the
    /// bytes the specification gives, from an indented document.
    #[test]
    fn specification_example_across_code_pages() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<Sync xmlns="AirSync" xmlns:airsyncbase="AirSyncBase" xmlns:contacts="Contacts">
  <Collections>
    <Collection>
      <Class>Contacts</Class>
      <SyncKey>2</SyncKey>
      <CollectionId>2</CollectionId>
      <Status>1</Status>
      <Commands>
        <Add>
          <ServerId>2:1</ServerId>
          <ApplicationData>
            <airsyncbase:Body>
              <airsyncbase:Type>1</airsyncbase:Type>
              <airsyncbase:EstimatedDataSize>0</airsyncbase:EstimatedDataSize>
              <airsyncbase:Truncated>1</airsyncbase:Truncated>
            </airsyncbase:Body>
            <contacts:FileAs>Funk, Don</contacts:FileAs>
            <contacts:FirstName>Don</contacts:FirstName>
            <contacts:LastName>Funk</contacts:LastName>
            <airsyncbase:NativeBodyType>1</airsyncbase:NativeBodyType>
          </ApplicationData>
        </Add>
      </Commands>
    </Collection>
  </Collections>
</Sync>
"#;
        let want: &[u8] = &[
            0x03, 0x01, 0x6A, 0x00, // header
            0x45, 0x5C, 0x4F, // Sync Collections Collection
            0x50, 0x03, b'C', b'o', b'n', b't', b'a', b'c', b't', b's', 0x00, 0x01, // Class
            0x4B, 0x03, b'2', 0x00, 0x01, // SyncKey
            0x52, 0x03, b'2', 0x00, 0x01, // CollectionId
            0x4E, 0x03, b'1', 0x00, 0x01, // Status
            0x56, 0x47, // Commands Add
            0x4D, 0x03, b'2', b':', b'1', 0x00, 0x01, // ServerId
            0x5D, // ApplicationData
            0x00, 0x11, 0x4A, // AirSyncBase: Body
            0x46, 0x03, b'1', 0x00, 0x01, // Type
            0x4C, 0x03, b'0', 0x00, 0x01, // EstimatedDataSize
            0x4D, 0x03, b'1', 0x00, 0x01, // Truncated
            0x01, // </Body>
            0x00, 0x01, // Contacts
            0x5E, 0x03, b'F', b'u', b'n', b'k', b',', b' ', b'D', b'o', b'n', 0x00, 0x01, 0x5F,
            0x03, b'D', b'o', b'n', 0x00, 0x01, // FirstName
            0x69, 0x03, b'F', b'u', b'n', b'k', 0x00, 0x01, // LastName
            0x00, 0x11, 0x56, 0x03, b'1', 0x00, 0x01, // AirSyncBase: NativeBodyType
            0x01, 0x01, 0x01, 0x01, 0x01, 0x01, // ApplicationData .. Sync
        ];
        assert_eq!(enc(xml), want);
    }

    #[test]
    fn switch_page_only_on_change_and_back() {
        // Email:Subject (page 2, 0x14) inside AirSync elements.
        let xml = r#"<Sync xmlns="AirSync:" xmlns:email="Email:"><ApplicationData><email:Subject>Hi</email:Subject><email:Read>1</email:Read></ApplicationData><Collections/></Sync>"#;
        assert_eq!(
            enc(xml),
            doc(&[
                0x45, 0x5D, 0x00, 0x02, 0x54, 0x03, b'H', b'i', 0x00, 0x01, 0x55, 0x03, b'1', 0x00,
                0x01, 0x01, 0x00, 0x00, 0x1C, 0x01
            ])
        );
    }

    #[test]
    fn opaque_base64() {
        let xml = "<SendMail xmlns=\"ComposeMail:\"><ClientId>1</ClientId>\n  <Mime opaque=\"base64\">\n    SGVs\n    bG8=\n  </Mime>\n</SendMail>";
        assert_eq!(
            enc(xml),
            doc(&[
                0x00, 0x15, 0x45, 0x51, 0x03, b'1', 0x00, 0x01, 0x50, 0xC3, 0x05, b'H', b'e', b'l',
                b'l', b'o', 0x01, 0x01
            ])
        );
        // Unpadded base64 and references, CDATA and comments in the content are fine too.
        let xml = "<SendMail xmlns=\"ComposeMail:\"><Mime opaque='base64'>S&#71;Vs<!-- x --><![CDATA[bG8]]></Mime></SendMail>";
        assert_eq!(
            enc(xml),
            doc(&[
                0x00, 0x15, 0x45, 0x50, 0xC3, 0x05, b'H', b'e', b'l', b'l', b'o', 0x01, 0x01
            ])
        );
    }

    #[test]
    fn empty_opaque() {
        let want = doc(&[0x00, 0x15, 0x45, 0x50, 0xC3, 0x00, 0x01, 0x01]);
        assert_eq!(
            enc(r#"<SendMail xmlns="ComposeMail:"><Mime opaque="base64"></Mime></SendMail>"#),
            want
        );
        assert_eq!(
            enc(r#"<SendMail xmlns="ComposeMail:"><Mime opaque="base64"/></SendMail>"#),
            want
        );
        assert_eq!(
            enc("<SendMail xmlns=\"ComposeMail:\"><Mime opaque=\"base64\">\n \n</Mime></SendMail>"),
            want
        );
    }

    #[test]
    fn long_opaque_in_many_chunks() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let mut wrapped = String::new();
        for line in b64.as_bytes().chunks(76) {
            wrapped.push_str(std::str::from_utf8(line).unwrap());
            wrapped.push('\n');
        }
        let xml = format!(
            "<SendMail xmlns=\"ComposeMail:\"><Mime opaque=\"base64\">\n{wrapped}</Mime></SendMail>"
        );
        let mut want = doc(&[0x00, 0x15, 0x45, 0x50, 0xC3, 0x81, 0x9C, 0x20]);
        want.extend_from_slice(&data);
        want.extend_from_slice(&[0x01, 0x01]);
        assert_eq!(enc(&xml), want);
    }

    #[test]
    fn opaque_limit() {
        let xml = r#"<SendMail xmlns="ComposeMail:">
<Mime opaque="base64">SGVsbG8gd29ybGQ=</Mime></SendMail>"#;
        let run = |limit| Encoder::new(xml.as_bytes(), Vec::new(), limit).run();
        assert!(run(11).is_ok());
        match run(10) {
            Err(EncodeError::Semantic {
                line: 2,
                column: 1,
                error: SemanticError::OpaqueTooLarge { element, limit: 10 },
            }) => assert_eq!(element, "Mime"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_cdata_is_an_empty_inline_string() {
        // STR_I immediately followed by its NUL terminator.
        assert_eq!(
            in_sync("<SyncKey><![CDATA[]]></SyncKey>"),
            doc(&[0x45, 0x4B, 0x03, 0x00, 0x01, 0x01])
        );
        assert_eq!(
            in_sync("<SyncKey></SyncKey>"),
            doc(&[0x45, 0x4B, 0x01, 0x01])
        );
        assert_eq!(in_sync("<SyncKey/>"), doc(&[0x45, 0x0B, 0x01]));
        assert_eq!(
            in_sync("<SyncKey><!-- nothing --><?pi?></SyncKey>"),
            doc(&[0x45, 0x4B, 0x01, 0x01])
        );
    }

    #[test]
    fn line_ends() {
        assert_eq!(
            in_sync("<SyncKey>a&#13;b\r\nc\rd\ne&#xD;&#10;f</SyncKey>"),
            doc(&[
                0x45, 0x4B, 0x03, b'a', 0x0D, b'b', 0x0A, b'c', 0x0A, b'd', 0x0A, b'e', 0x0D, 0x0A,
                b'f', 0x00, 0x01, 0x01
            ])
        );
        // In CDATA sections too.
        assert_eq!(
            in_sync("<SyncKey><![CDATA[a\r\nb\r]]></SyncKey>"),
            doc(&[0x45, 0x4B, 0x03, b'a', 0x0A, b'b', 0x0A, 0x00, 0x01, 0x01])
        );
        // CRLF line ends between elements count as one line each.
        match err("<Sync xmlns=\"AirSync:\">\r\n\r\n  <Bad/></Sync>") {
            EncodeError::Semantic {
                line: 3, column: 3, ..
            } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn whitespace_rules() {
        // Formatting between elements is dropped.
        let compact =
            in_sync("<Collections><Collection><SyncKey>0</SyncKey></Collection></Collections>");
        let pretty = in_sync(
            "\n  <Collections>\n    <Collection>\t\n      <SyncKey>0</SyncKey>\r\n    </Collection>\n  </Collections>\n",
        );
        assert_eq!(compact, pretty);
        assert_eq!(
            compact,
            doc(&[
                0x45, 0x5C, 0x4F, 0x4B, 0x03, b'0', 0x00, 0x01, 0x01, 0x01, 0x01
            ])
        );
        // Whitespace alone in an element without children is its value, kept exactly.
        assert_eq!(
            in_sync("<SyncKey> \t\n</SyncKey>"),
            doc(&[0x45, 0x4B, 0x03, b' ', b'\t', b'\n', 0x00, 0x01, 0x01])
        );
        // Text with whitespace around it is written as it is.
        assert_eq!(
            in_sync("<SyncKey> 1 </SyncKey>"),
            doc(&[0x45, 0x4B, 0x03, b' ', b'1', b' ', 0x00, 0x01, 0x01])
        );
        // Mixed content: text runs are values, whitespace runs formatting.
        assert_eq!(
            in_sync("<Collection>\n  x\n  <SyncKey/>\n  <SyncKey/>y</Collection>"),
            doc(&[
                0x45, 0x4F, 0x03, b'\n', b' ', b' ', b'x', b'\n', b' ', b' ', 0x00, 0x0B, 0x0B,
                0x03, b'y', 0x00, 0x01, 0x01
            ])
        );
        // Whitespace from a reference or in CDATA is a value even next to children.
        assert_eq!(
            in_sync("<Collection>&#32;<SyncKey/><![CDATA[ ]]></Collection>"),
            doc(&[
                0x45, 0x4F, 0x03, b' ', 0x00, 0x0B, 0x03, b' ', 0x00, 0x01, 0x01
            ])
        );
        // Literal whitespace around a reference belongs to the same string.
        assert_eq!(
            in_sync("<Collection>  &#32;  <SyncKey/></Collection>"),
            doc(&[
                0x45, 0x4F, 0x03, b' ', b' ', b' ', b' ', b' ', 0x00, 0x0B, 0x01, 0x01
            ])
        );
    }

    #[test]
    fn whitespace_beyond_the_hold_limit_is_a_value() {
        let held = " ".repeat(MAX_HELD_WHITESPACE);
        assert_eq!(
            in_sync(&format!("<Collection>{held}<SyncKey/></Collection>")),
            doc(&[0x45, 0x4F, 0x0B, 0x01, 0x01])
        );
        let long = " ".repeat(MAX_HELD_WHITESPACE + 1);
        let mut want = doc(&[0x45, 0x4F, 0x03]);
        want.extend_from_slice(long.as_bytes());
        want.extend_from_slice(&[0x00, 0x0B, 0x01, 0x01]);
        assert_eq!(
            in_sync(&format!("<Collection>{long}<SyncKey/></Collection>")),
            want
        );
    }

    #[test]
    fn references_cdata_and_wbxml_char() {
        assert_eq!(
            in_sync("<SyncKey>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&#x20AC;</SyncKey>"),
            doc(&[
                0x45, 0x4B, 0x03, b'<', b'>', b'&', b'\'', b'"', b'A', b'B', 0xE2, 0x82, 0xAC,
                0x00, 0x01, 0x01
            ])
        );
        // One run of text, references, comments, CDATA and wbxml-char: one inline string.
        assert_eq!(
            in_sync(
                "<SyncKey>a<!-- x -->b<![CDATA[<c>&amp;]]]>d<?wbxml-char 1B?><?wbxml-char  FFFF ?>e</SyncKey>"
            ),
            doc(&[
                0x45, 0x4B, 0x03, b'a', b'b', b'<', b'c', b'>', b'&', b'a', b'm', b'p', b';', b']',
                b'd', 0x1B, 0xEF, 0xBF, 0xBF, b'e', 0x00, 0x01, 0x01
            ])
        );
        assert_eq!(
            in_sync("<SyncKey><?wbxml-char 1?></SyncKey>"),
            doc(&[0x45, 0x4B, 0x03, 0x01, 0x00, 0x01, 0x01])
        );
    }

    #[test]
    fn utf8_text() {
        let mut want = doc(&[0x45, 0x4B, 0x03]);
        want.extend_from_slice("Grüße € 𝄞".as_bytes());
        want.extend_from_slice(&[0x00, 0x01, 0x01]);
        assert_eq!(in_sync("<SyncKey>Grüße € 𝄞</SyncKey>"), want);
    }

    #[test]
    fn prolog_and_epilog() {
        let xml = "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\" standalone='yes'?>\n\
                   <!-- leading comment -->\n\
                   <!DOCTYPE Sync SYSTEM \"x>y\" [\n  <!ENTITY e \"]>'\">\n  <!-- ]> ' -->\n  <?pi ]>?>\n]>\n\
                   <?some-pi data?>\n\
                   <Sync xmlns=\"AirSync:\"><!-- c --><Collections/><?pi?></Sync>\n\
                   <!-- trailing -->\n<?pi?>\n";
        assert_eq!(enc(xml), doc(&[0x45, 0x1C, 0x01]));
    }

    #[test]
    fn unused_foreign_declarations_are_fine() {
        assert_eq!(
            enc(
                r#"<Sync xmlns="AirSync:" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xml="http://www.w3.org/XML/1998/namespace"/>"#
            ),
            doc(&[0x05])
        );
    }

    #[test]
    fn nesting_limit() {
        let ok = format!(
            "<Sync xmlns=\"AirSync:\">{}{}</Sync>",
            "<Collections>".repeat(MAX_DEPTH - 1),
            "</Collections>".repeat(MAX_DEPTH - 1)
        );
        assert!(try_enc(ok.as_bytes()).is_ok());
        let deep = format!(
            "<Sync xmlns=\"AirSync:\">{}{}</Sync>",
            "<Collections>".repeat(MAX_DEPTH),
            "</Collections>".repeat(MAX_DEPTH)
        );
        let column = 23 + 13 * (MAX_DEPTH as u64 - 1) + 1;
        assert_eq!(syn(&deep), (1, column, SyntaxError::TooDeep(MAX_DEPTH)));
    }

    #[test]
    fn mismatched_end_tag() {
        let (line, column, error) =
            syn("<Sync xmlns=\"AirSync:\">\n  <Collections>\n  </Collection>\n</Sync>");
        assert_eq!((line, column), (3, 3));
        assert_eq!(
            error,
            SyntaxError::MismatchedEndTag {
                expected: "Collections".into(),
                found: "Collection".into(),
                line: 2,
                column: 3
            }
        );
        // Same local name, different prefix: still a mismatch.
        assert!(matches!(
            syn(r#"<a:Sync xmlns:a="AirSync:" xmlns="AirSync:"></Sync>"#),
            (1, 45, SyntaxError::MismatchedEndTag { .. })
        ));
        assert_eq!(
            syn(r#"<Sync xmlns="AirSync:"/></Sync>"#),
            (1, 25, SyntaxError::UnexpectedEndTag("Sync".into()))
        );
    }

    #[test]
    fn unknown_namespace() {
        assert_eq!(
            sem("<Sync xmlns=\"AirSync:\">\n  <f:Foo xmlns:f=\"Foo:\"/></Sync>"),
            (
                2,
                3,
                SemanticError::UnknownNamespace {
                    element: "f:Foo".into(),
                    namespace: "Foo:".into()
                }
            )
        );
        assert_eq!(
            sem("<Sync/>"),
            (
                1,
                1,
                SemanticError::NoNamespace {
                    element: "Sync".into()
                }
            )
        );
        assert_eq!(
            sem(r#"<Sync xmlns="AirSync:"><Collections xmlns=""/></Sync>"#),
            (
                1,
                24,
                SemanticError::NoNamespace {
                    element: "Collections".into()
                }
            )
        );
        assert_eq!(
            sem(r#"<Sync xmlns="AirSync:"><e:Subject/></Sync>"#),
            (
                1,
                24,
                SemanticError::UndeclaredPrefix {
                    element: "e:Subject".into(),
                    prefix: "e".into()
                }
            )
        );
        // A declaration is scoped to its element.
        assert!(matches!(
            sem(r#"<Sync xmlns="AirSync:"><Collections xmlns:e="Email:"/><e:Subject/></Sync>"#),
            (1, 55, SemanticError::UndeclaredPrefix { .. })
        ));
    }

    #[test]
    fn unknown_element() {
        let e = err("<Sync xmlns=\"AirSync:\">\n  <Colections/>\n</Sync>");
        assert_eq!(
            e.to_string(),
            "line 2, column 3: element `Colections` is not in code page AirSync (MS-ASWBXML); \
             check the spelling"
        );
        assert_eq!(
            sem(r#"<Sync xmlns="AirSync:" xmlns:email="Email:"><email:Sync/></Sync>"#),
            (
                1,
                45,
                SemanticError::UnknownElement {
                    element: "email:Sync".into(),
                    page: "Email"
                }
            )
        );
    }

    #[test]
    fn bad_attributes() {
        assert_eq!(
            sem(r#"<Sync xmlns="AirSync:" id="1"/>"#),
            (1, 24, SemanticError::BadAttribute("id".into()))
        );
        assert_eq!(
            sem(r#"<Sync xmlns="AirSync:" a:opaque="base64" xmlns:a="AirSync:"/>"#),
            (1, 24, SemanticError::BadAttribute("a:opaque".into()))
        );
        assert_eq!(
            sem(r#"<Sync xmlns="AirSync:"><Collections opaque="hex"/></Sync>"#),
            (1, 44, SemanticError::BadOpaqueEncoding("hex".into()))
        );
        assert_eq!(
            syn(r#"<Sync xmlns="AirSync:" xmlns="AirSync:"/>"#),
            (1, 24, SyntaxError::DuplicateAttribute("xmlns".into()))
        );
        assert_eq!(
            syn(r#"<Sync xmlns="AirSync:"><Collections opaque="base64" opaque="base64"/></Sync>"#),
            (1, 53, SyntaxError::DuplicateAttribute("opaque".into()))
        );
        assert!(matches!(
            sem(r#"<a:Sync xmlns:a=""/>"#),
            (1, 9, SemanticError::BadNamespaceDeclaration(_))
        ));
        assert!(matches!(
            syn(r#"<Sync xmlns="AirSync:"id="1"/>"#),
            (
                1,
                23,
                SyntaxError::Expected {
                    found: Found::Byte(b'i'),
                    ..
                }
            )
        ));
        assert!(matches!(
            syn(r#"<Sync xmlns=AirSync:/>"#),
            (
                1,
                13,
                SyntaxError::Expected {
                    found: Found::Byte(b'A'),
                    ..
                }
            )
        ));
        assert_eq!(
            syn(r#"<Sync xmlns="AirSync:<"/>"#),
            (1, 22, SyntaxError::LtInAttributeValue)
        );
        // References in attribute values.
        assert_eq!(enc(r#"<Sync xmlns="AirSync&#58;"/>"#), doc(&[0x05]));
    }

    #[test]
    fn element_inside_opaque() {
        assert_eq!(
            sem(
                r#"<SendMail xmlns="ComposeMail:"><Mime opaque="base64">SGVs<ClientId/></Mime></SendMail>"#
            ),
            (
                1,
                58,
                SemanticError::ElementInOpaque {
                    element: "ClientId".into(),
                    parent: "Mime".into()
                }
            )
        );
    }

    #[test]
    fn bad_base64() {
        let wrap = |b64: &str| {
            format!(
                "<SendMail xmlns=\"ComposeMail:\">\n<Mime opaque=\"base64\">{b64}</Mime></SendMail>"
            )
        };
        assert_eq!(
            sem(&wrap("SGV!bG8=")),
            (
                2,
                26,
                SemanticError::InvalidBase64(Base64Problem::InvalidCharacter(Found::Byte(b'!')))
            )
        );
        assert_eq!(
            sem(&wrap("SGVsbG8=\nSGVs")),
            (
                3,
                1,
                SemanticError::InvalidBase64(Base64Problem::DataAfterPadding)
            )
        );
        assert_eq!(
            sem(&wrap("SGVsbG===")),
            (
                2,
                31,
                SemanticError::InvalidBase64(Base64Problem::TooMuchPadding)
            )
        );
        assert_eq!(
            sem(&wrap("SGVsb")),
            (
                2,
                28,
                SemanticError::InvalidBase64(Base64Problem::BadLength)
            )
        );
        assert_eq!(
            sem(&wrap("SGVsbG=")),
            (
                2,
                30,
                SemanticError::InvalidBase64(Base64Problem::BadLength)
            )
        );
        assert_eq!(
            sem(&wrap("SGVsbG9=")),
            (
                2,
                31,
                SemanticError::InvalidBase64(Base64Problem::NonCanonical)
            )
        );
        assert_eq!(
            sem(&wrap("SGVs&#33;")),
            (
                2,
                27,
                SemanticError::InvalidBase64(Base64Problem::InvalidCharacter(Found::Byte(b'!')))
            )
        );
    }

    #[test]
    fn undefined_entity() {
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\">\n<SyncKey>a&nbsp;b</SyncKey></Sync>"),
            (2, 11, SyntaxError::UndefinedEntity("nbsp".into()))
        );
        assert_eq!(
            syn(r#"<Sync xmlns="AirSync:"><SyncKey>a & b</SyncKey></Sync>"#),
            (1, 35, SyntaxError::BadReference)
        );
        assert_eq!(
            syn(r#"<Sync xmlns="AirSync:"><SyncKey>&#xZZ;</SyncKey></Sync>"#),
            (1, 33, SyntaxError::BadReference)
        );
        assert_eq!(
            syn(r#"<Sync xmlns="AirSync:"><SyncKey>&#0;</SyncKey></Sync>"#),
            (1, 33, SyntaxError::ForbiddenCharRef(0))
        );
        assert_eq!(
            syn(r#"<Sync xmlns="AirSync:"><SyncKey>&#x1B;</SyncKey></Sync>"#),
            (1, 33, SyntaxError::ForbiddenCharRef(0x1B))
        );
        assert_eq!(
            syn(r#"<Sync xmlns="AirSync:"><SyncKey>&#99999999999;</SyncKey></Sync>"#),
            (1, 33, SyntaxError::ForbiddenCharRef(u32::MAX))
        );
    }

    #[test]
    fn bad_wbxml_char() {
        for content in ["", "0", "00", "XY", "110000", "D800", "1234567"] {
            let xml = format!(
                "<Sync xmlns=\"AirSync:\"><SyncKey><?wbxml-char {content}?></SyncKey></Sync>"
            );
            assert_eq!(
                sem(&xml),
                (1, 33, SemanticError::BadWbxmlChar(content.into())),
                "{content}"
            );
        }
    }

    #[test]
    fn text_outside_root() {
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"/>\n  x"),
            (2, 3, SyntaxError::TextOutsideRoot)
        );
        assert_eq!(
            syn("  hello <Sync xmlns=\"AirSync:\"/>"),
            (1, 3, SyntaxError::TextOutsideRoot)
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"/>&amp;"),
            (1, 25, SyntaxError::TextOutsideRoot)
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"/><![CDATA[]]>"),
            (1, 25, SyntaxError::TextOutsideRoot)
        );
        assert_eq!(
            syn("<?wbxml-char 41?><Sync xmlns=\"AirSync:\"/>"),
            (1, 1, SyntaxError::TextOutsideRoot)
        );
    }

    #[test]
    fn two_roots() {
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"/>\n<Sync xmlns=\"AirSync:\"/>"),
            (2, 1, SyntaxError::SecondRoot("Sync".into()))
        );
    }

    #[test]
    fn truncated_documents() {
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\">\n  <Collections>\n"),
            (
                3,
                1,
                SyntaxError::Unclosed {
                    name: "Collections".into(),
                    line: 2,
                    column: 3
                }
            )
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync"),
            (1, 21, SyntaxError::UnexpectedEof("an attribute value"))
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\""),
            (1, 23, SyntaxError::UnexpectedEof("a start tag"))
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"><SyncKey><![CDATA[abc"),
            (1, 45, SyntaxError::UnexpectedEof("a CDATA section"))
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"/><!-- abc"),
            (1, 33, SyntaxError::UnexpectedEof("a comment"))
        );
        assert!(matches!(
            syn("<Sync xmlns=\"AirSync:\"></Sy"),
            (
                1,
                28,
                SyntaxError::Expected {
                    found: Found::End,
                    ..
                }
            )
        ));
        assert_eq!(syn(""), (1, 1, SyntaxError::NoRoot));
        assert_eq!(
            syn("<?xml version=\"1.0\"?>\n<!-- x -->\n"),
            (3, 1, SyntaxError::NoRoot)
        );
    }

    #[test]
    fn encoding_errors() {
        match try_enc(b"<Sync xmlns=\"AirSync:\"><SyncKey>ab\xFFc</SyncKey></Sync>") {
            Err(EncodeError::Syntax {
                line: 1,
                column: 35,
                error: SyntaxError::InvalidUtf8,
            }) => {}
            other => panic!("{other:?}"),
        }
        // A sequence cut short by markup.
        match try_enc(b"<Sync xmlns=\"AirSync:\"><SyncKey>ab\xE2\x82</SyncKey></Sync>") {
            Err(EncodeError::Syntax {
                line: 1,
                column: 35,
                error: SyntaxError::InvalidUtf8,
            }) => {}
            other => panic!("{other:?}"),
        }
        // Overlong and surrogate encodings.
        for bad in [
            &b"\xC0\xAF"[..],
            b"\xE0\x80\xAF",
            b"\xED\xA0\x80",
            b"\xF4\x90\x80\x80",
        ] {
            let mut xml = b"<Sync xmlns=\"AirSync:\"><SyncKey>".to_vec();
            xml.extend_from_slice(bad);
            xml.extend_from_slice(b"</SyncKey></Sync>");
            assert!(
                matches!(
                    try_enc(&xml),
                    Err(EncodeError::Syntax {
                        error: SyntaxError::InvalidUtf8,
                        ..
                    })
                ),
                "{bad:02X?}"
            );
        }
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"><SyncKey>a\u{1}</SyncKey></Sync>"),
            (1, 34, SyntaxError::ForbiddenChar(1))
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"><SyncKey>a\u{FFFF}</SyncKey></Sync>"),
            (1, 34, SyntaxError::ForbiddenChar(0xFFFF))
        );
        assert_eq!(
            syn("\u{FEFF}\u{FEFF}<Sync/>"),
            (1, 1, SyntaxError::TextOutsideRoot)
        );
        match try_enc(b"\xFF\xFE<\x00") {
            Err(EncodeError::Syntax {
                error: SyntaxError::Utf16,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            syn("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Sync xmlns=\"AirSync:\"/>"),
            (1, 1, SyntaxError::UnsupportedEncoding("ISO-8859-1".into()))
        );
    }

    #[test]
    fn other_well_formedness_errors() {
        assert_eq!(
            syn("<!-- x -->\n<?xml version=\"1.0\"?><Sync xmlns=\"AirSync:\"/>"),
            (2, 1, SyntaxError::MisplacedXmlDecl)
        );
        assert!(matches!(
            syn("<?xml encoding=\"UTF-8\"?><Sync xmlns=\"AirSync:\"/>"),
            (1, 1, SyntaxError::BadXmlDecl(_))
        ));
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"/><!DOCTYPE Sync>"),
            (1, 25, SyntaxError::MisplacedDoctype)
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"><!-- a -- b --></Sync>"),
            (1, 31, SyntaxError::DoubleHyphenInComment)
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"><SyncKey>a]]>b</SyncKey></Sync>"),
            (1, 36, SyntaxError::CdataEndInText)
        );
        assert_eq!(
            syn("<Sync xmlns=\"AirSync:\"><:a/></Sync>"),
            (1, 24, SyntaxError::BadQualifiedName(":a".into()))
        );
        assert!(matches!(
            syn("<Sync xmlns=\"AirSync:\">< Collections/></Sync>"),
            (
                1,
                25,
                SyntaxError::Expected {
                    found: Found::Byte(b' '),
                    ..
                }
            )
        ));
        assert!(matches!(
            syn("<Sync xmlns=\"AirSync:\"><!ELEMENT x></Sync>"),
            (1, 26, SyntaxError::Expected { .. })
        ));
        let long = "A".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            syn(&format!("<Sync xmlns=\"AirSync:\"><{long}/></Sync>")),
            (1, 25, SyntaxError::NameTooLong(MAX_NAME_LEN))
        );
        let long = "A".repeat(MAX_ATTRIBUTE_LEN + 1);
        assert_eq!(
            syn(&format!("<Sync xmlns=\"{long}\"/>")),
            (1, 13, SyntaxError::AttributeValueTooLong(MAX_ATTRIBUTE_LEN))
        );
    }

    #[test]
    fn too_many_namespaces() {
        let decls: String = (0..=MAX_NAMESPACES)
            .map(|i| format!(" xmlns:p{i}=\"x\""))
            .collect();
        assert!(matches!(
            sem(&format!("<Sync xmlns=\"AirSync:\"{decls}/>")),
            (1, _, SemanticError::TooManyNamespaces(MAX_NAMESPACES))
        ));
    }

    #[test]
    fn writer_errors_are_reported() {
        let mut small = [0u8; 5];
        match encode(
            r#"<Sync xmlns="AirSync:"><Collections/></Sync>"#.as_bytes(),
            &mut small[..],
        ) {
            Err(EncodeError::Write(WbxmlError::Io(_))) => {}
            other => panic!("{other:?}"),
        }
    }

    struct Flaky<'a> {
        data: &'a [u8],
        calls: usize,
        fail_at: usize,
        kind: io::ErrorKind,
    }

    impl Read for Flaky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls == self.fail_at {
                return Err(io::Error::new(self.kind, "flaky"));
            }
            let n = buf.len().min(self.data.len()).min(3);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_errors_and_interruptions() {
        let xml = br#"<Sync xmlns="AirSync:"><Collections/></Sync>"#;
        for fail_at in 1..8 {
            let r = Flaky {
                data: xml,
                calls: 0,
                fail_at,
                kind: io::ErrorKind::Interrupted,
            };
            let out = encode(BufReader::with_capacity(4, r), Vec::new()).unwrap();
            assert_eq!(out, doc(&[0x45, 0x1C, 0x01]));
            let r = Flaky {
                data: xml,
                calls: 0,
                fail_at,
                kind: io::ErrorKind::Other,
            };
            assert!(matches!(
                encode(BufReader::with_capacity(4, r), Vec::new()),
                Err(EncodeError::Read(_))
            ));
        }
    }

    /// Truncations and byte mutations of a document that exercises most of the grammar
    /// must give a result or an error, never a panic.
    #[test]
    fn hostile_input_does_not_panic() {
        let base = "\u{FEFF}<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><!-- c -->\
                    <Sync xmlns=\"AirSync:\" xmlns:b=\"AirSyncBase:\" xmlns:c=\"ComposeMail:\">\r\n\
                    <Collections><Collection><SyncKey>a&amp;&#x41;&#66;<![CDATA[x]]>\
                    <?wbxml-char 1B?>é</SyncKey><b:Body><b:Data>t</b:Data></b:Body>\
                    <c:Mime opaque=\"base64\">SGVs bG8=</c:Mime></Collection></Collections></Sync>";
        let base = base.as_bytes();
        for end in 0..base.len() {
            let _ = try_enc(&base[..end]);
        }
        let mut seed: u32 = 0x1234_5678;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let specials = b"<>&;/=\"'![]-?#x \r\n\x00\xFF\xC3:";
        for _ in 0..3000 {
            let mut doc = base.to_vec();
            for _ in 0..1 + rand() % 4 {
                let at = rand() as usize % doc.len();
                let b = specials[rand() as usize % specials.len()];
                match rand() % 3 {
                    0 => doc[at] = b,
                    1 => doc.insert(at, b),
                    _ => {
                        doc.remove(at);
                    }
                }
            }
            let _ = try_enc(&doc);
        }
    }
}
