//! The codec's errors: what went wrong, where in the input, and what the caller can do.

use super::tags::{ProtocolVersion, Tag};

/// Why a WBXML document could not be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("the input is empty (no WBXML header)")]
    Empty,
    #[error("the input ends in the middle of the document")]
    Truncated,
    #[error("WBXML version byte 0x{0:02X} is not 1.1, 1.2 or 1.3")]
    UnsupportedWbxmlVersion(u8),
    #[error("character set MIBenum {0} is not UTF-8 (106), the only one EAS uses")]
    UnsupportedCharset(u32),
    #[error("multi-byte integer is longer than 32 bits")]
    BadMultiByteInt,
    #[error("string table of {len} bytes is over the limit of {limit}")]
    StringTableTooLarge { len: u32, limit: u32 },
    #[error("string table reference {0} does not point at a string in the table")]
    BadStringTableIndex(u32),
    #[error("code page {0} is not an EAS code page")]
    UnknownCodePage(u8),
    #[error("token 0x{token:02X} is not defined on code page {page}")]
    UnknownTag { page: u8, token: u8 },
    #[error("{tag} does not exist in protocol version {version}")]
    TagNotInVersion { tag: Tag, version: ProtocolVersion },
    #[error("tag byte 0x{0:02X} announces attributes, which EAS never uses")]
    AttributesNotSupported(u8),
    #[error("LITERAL tag token 0x{0:02X}: EAS uses only code page tags")]
    LiteralNotSupported(u8),
    #[error("global token 0x{0:02X} (extension or processing instruction) is not used by EAS")]
    UnsupportedToken(u8),
    #[error("END token with no open element")]
    EndWithoutStart,
    #[error("elements nested deeper than the limit of {limit}")]
    TooDeep { limit: u16 },
    #[error("text or opaque data outside the root element")]
    ContentOutsideRoot,
    #[error("data after the end of the root element")]
    TrailingData,
    #[error("ENTITY U+{0:X} is not a character text can hold")]
    InvalidEntity(u32),
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    #[error("text contains a NUL character, which WBXML inline strings cannot carry")]
    NulInText,
    #[error("the document still has {0} open element(s)")]
    Unclosed(u16),
    #[error("opaque data of {declared} bytes was announced but the source gave {given}")]
    OpaqueLengthMismatch { declared: u32, given: u64 },
    #[error("a value of {0} bytes does not fit in a WBXML length (32 bits)")]
    TooLong(u64),
}

/// A decoding or encoding error: either the underlying reader/writer failed, or the document
/// is not acceptable WBXML, at `offset` bytes from its start.
#[derive(Debug, thiserror::Error)]
pub enum Error<E: core::fmt::Debug> {
    #[error("I/O error: {0:?}")]
    Io(E),
    #[error("bad WBXML at byte {offset}: {kind}")]
    Invalid { kind: ErrorKind, offset: u64 },
}

impl<E: core::fmt::Debug> Error<E> {
    /// The format error's kind, or `None` for an I/O error.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Io(_) => None,
            Error::Invalid { kind, .. } => Some(*kind),
        }
    }

    /// The byte offset of a format error, or `None` for an I/O error.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::Io(_) => None,
            Error::Invalid { offset, .. } => Some(*offset),
        }
    }
}
