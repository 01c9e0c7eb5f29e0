//! WBXML as XML text, both ways.
//!
//! - [`decode`]: WBXML → XML for people: `easyncctl wbxml decode` and the daemon's wire traces.
//! - [`encode`] (feature `xml`): XML → WBXML for `easyncctl wbxml encode`.
//!
//! The XML form, which `decode` writes and `encode` reads back to the same bytes:
//!
//! - Each code page is an XML namespace whose URI is the page name plus a colon (`AirSync:`,
//!   `Email:`, as in MS-ASCMD's examples). The root element's page is the default namespace;
//!   other pages use the page name in lower case as prefix (`airsyncbase:Body`), declared on
//!   the first element that needs it.
//! - An element without content is `<X/>`; one with content but nothing in it is `<X></X>`;
//!   one holding an empty inline string is `<X><![CDATA[]]></X>`.
//! - Text is escaped (`&lt;`, `&gt;`, `&amp;`, and CR as `&#13;` so no XML parser folds it).
//!   A character XML 1.0 cannot hold at all (most C0 controls, U+FFFE, U+FFFF) is written as
//!   the processing instruction `<?wbxml-char XX?>` (hex code point) in the text.
//! - Whitespace-only text is written as character references (`&#32;`), so it is never
//!   mistaken for formatting; in an element that holds text, no line breaks are added.
//! - Opaque data is base64 in an element marked `opaque="base64"`. Opaque data beside other
//!   content in one element has no XML form: decoding stops there with a clear error.
//! - One element per line, indented two spaces per level; text stays on its element's line.
//!
//! Byte-identical round trips hold for WBXML in the form EAS servers and our writer produce:
//! the EAS header, no string table, text as one inline string per value, SWITCH_PAGE only on a
//! page change. Other forms decode to the same XML and re-encode to that form.

pub mod decode;
#[cfg(feature = "xml")]
pub mod encode;
