//! WBXML, the binary XML that every EAS request and response body is written in.
//!
//! This is layer 1 of the crate: it knows bytes, tokens and code pages, nothing of what the
//! elements mean (that is `eas`).
//!
//! - [`reader`]: a pull parser handing out [`Event`]s from a fixed buffer, allocation-free.
//! - [`writer`]: a streaming encoder.
//! - [`tags`]: the EAS code pages 0–25 (MS-ASWBXML) as static tables.
//! - [`xml`]: WBXML → XML text for people (traces, `easyncctl wbxml decode`) and, with the
//!   `xml` feature, XML → WBXML for `easyncctl wbxml encode`.
//! - [`io`]: `std::io` adapters for the `embedded_io` traits.

pub mod error;
pub mod io;
pub mod reader;
pub mod tags;
pub mod token;
pub mod writer;
pub mod xml;

pub use error::{Error, ErrorKind};
pub use io::FromStd;
pub use reader::{Config, Event, Header, PublicId, Reader};
pub use tags::{CodePage, ProtocolVersion, Tag, TagDef, Versions};
pub use writer::Writer;
