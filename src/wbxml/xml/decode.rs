//! WBXML → XML text, streamed: events go out as they come, so memory does not depend on the
//! document's size. The output form is described in the parent module.

use std::io::Write;

use base64::Engine as _;
use embedded_io::Read;

use crate::wbxml::error::Error;
use crate::wbxml::reader::{Event, Reader};
use crate::wbxml::tags::Tag;

/// Why a document could not be turned into XML.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError<E: core::fmt::Debug> {
    #[error(transparent)]
    Wbxml(#[from] Error<E>),
    #[error("at byte {offset}: {message}")]
    Unrepresentable { offset: u64, message: String },
    #[error("writing the XML failed: {0}")]
    Output(#[from] std::io::Error),
}

/// What was last written, which decides where the next line break goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    Nothing,
    /// `<X` written, `>` not yet: the next event decides whether it is an opaque element.
    OpenTag,
    /// An element's content has started (text or opaque data).
    Content,
    /// A child element ended.
    Closed,
}

/// Writes the whole document from `reader` to `out` as XML.
pub fn decode<R: Read, O: Write, const BUF: usize, const DEPTH: usize>(
    reader: &mut Reader<R, BUF, DEPTH>,
    out: &mut O,
) -> Result<(), DecodeError<R::Error>> {
    let mut printer = Printer::<DEPTH>::new();
    out.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    loop {
        match reader.next()? {
            Event::Eof => break,
            event => {
                if let Err(e) = printer.event(event, out) {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        return Err(DecodeError::Unrepresentable {
                            offset: reader.offset(),
                            message: e.to_string(),
                        });
                    }
                    return Err(e.into());
                }
            }
        }
    }
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

struct Printer<const DEPTH: usize> {
    last: Last,
    /// The root element's page: the default namespace, never prefixed.
    root_page: Option<u8>,
    /// For each open element, the pages whose prefixes are declared on it or above it.
    declared: heapless::Vec<u32, DEPTH>,
    skip_end: bool,
    /// An empty inline string was read; it is written as `<![CDATA[]]>` unless more text
    /// follows at once (then the two join and the marker would say something untrue).
    empty_text_pending: bool,
    /// The current run of text has had a character other than whitespace.
    run_has_content: bool,
    /// Opaque bytes not yet base64-encoded (fewer than 3).
    carry: [u8; 3],
    carry_len: usize,
}

impl<const DEPTH: usize> Printer<DEPTH> {
    fn new() -> Self {
        Printer {
            last: Last::Nothing,
            root_page: None,
            declared: heapless::Vec::new(),
            skip_end: false,
            empty_text_pending: false,
            run_has_content: false,
            carry: [0; 3],
            carry_len: 0,
        }
    }

    /// The flags of the innermost open element.
    fn flags(&self) -> u32 {
        self.declared
            .last()
            .map_or(0, |m| m & (TEXT_SEEN | OPAQUE_ELEMENT))
    }

    fn set_flag(&mut self, flag: u32) {
        if let Some(m) = self.declared.last_mut() {
            *m |= flag;
        }
    }

    fn event<O: Write>(&mut self, event: Event<'_>, out: &mut O) -> std::io::Result<()> {
        if self.empty_text_pending && !matches!(event, Event::Text(_)) {
            self.empty_text_pending = false;
            out.write_all(b"<![CDATA[]]>")?;
        }
        if self.flags() & OPAQUE_ELEMENT != 0
            && !matches!(event, Event::OpaqueData(_) | Event::End(_))
        {
            return Err(unrepresentable("an element holding opaque data holds more"));
        }
        match event {
            Event::Start { tag, has_content } => {
                self.finish_open_tag(out)?;
                // In an element that also holds text, line breaks would become part of it.
                if self.flags() & TEXT_SEEN == 0 {
                    self.line(out)?;
                }
                self.open_tag(tag, has_content, out)?;
            }
            Event::End(tag) => {
                // An element without content was written whole at its start.
                if self.skip_end {
                    self.skip_end = false;
                    self.last = Last::Closed;
                    return Ok(());
                }
                self.flush_base64(out)?;
                self.finish_open_tag(out)?;
                let flags = self.flags();
                self.declared.pop();
                if self.last == Last::Closed && flags & TEXT_SEEN == 0 {
                    self.line(out)?;
                }
                out.write_all(b"</")?;
                self.write_name(tag, out)?;
                out.write_all(b">")?;
                self.last = Last::Closed;
            }
            Event::Text(text) => {
                let starts_run = self.last != Last::Content;
                self.finish_open_tag(out)?;
                // An empty string only marks an empty value when it is the whole run.
                self.empty_text_pending =
                    text.is_empty() && (starts_run || self.empty_text_pending);
                if starts_run {
                    self.run_has_content = false;
                }
                let mut text = text;
                if !self.run_has_content {
                    // Leading whitespace of a run is written as references, so a run of only
                    // whitespace never reads back as formatting, however it was cut in pieces.
                    let lead = text
                        .bytes()
                        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n'))
                        .count();
                    for b in text[..lead].bytes() {
                        write!(out, "&#{b};")?;
                    }
                    text = &text[lead..];
                    self.run_has_content = !text.is_empty();
                }
                write_text(text, out)?;
                self.set_flag(TEXT_SEEN);
                self.last = Last::Content;
            }
            Event::Opaque { .. } => {
                if self.last != Last::OpenTag {
                    return Err(unrepresentable(
                        "opaque data follows other content in one element",
                    ));
                }
                out.write_all(b" opaque=\"base64\">")?;
                self.set_flag(OPAQUE_ELEMENT);
                self.carry_len = 0;
                self.last = Last::Content;
            }
            Event::OpaqueData(bytes) => self.base64(bytes, out)?,
            Event::Eof => {}
        }
        Ok(())
    }

    fn open_tag<O: Write>(
        &mut self,
        tag: Tag,
        has_content: bool,
        out: &mut O,
    ) -> std::io::Result<()> {
        let page = tag.code_page().ok_or_else(|| unknown(tag))?;
        let inherited = self.declared.last().copied().unwrap_or(0);
        let is_root = self.root_page.is_none();
        if is_root {
            self.root_page = Some(tag.page);
        }
        out.write_all(b"<")?;
        self.write_name(tag, out)?;
        let mut mask = inherited & !(TEXT_SEEN | OPAQUE_ELEMENT);
        if is_root {
            write!(out, " xmlns=\"{}\"", page.xmlns)?;
        } else if self.root_page != Some(tag.page) && inherited & (1 << tag.page) == 0 {
            write!(out, " xmlns:{}=\"{}\"", page.prefix, page.xmlns)?;
            mask |= 1 << tag.page;
        }
        if has_content {
            // The reader's own stack is DEPTH deep, so this one never overflows.
            let _ = self.declared.push(mask);
            self.last = Last::OpenTag;
        } else {
            out.write_all(b"/>")?;
            self.skip_end = true;
            self.last = Last::Closed;
        }
        Ok(())
    }

    fn write_name<O: Write>(&self, tag: Tag, out: &mut O) -> std::io::Result<()> {
        let name = tag.name().ok_or_else(|| unknown(tag))?;
        if Some(tag.page) != self.root_page {
            let page = tag.code_page().ok_or_else(|| unknown(tag))?;
            out.write_all(page.prefix.as_bytes())?;
            out.write_all(b":")?;
        }
        out.write_all(name.as_bytes())
    }

    fn finish_open_tag<O: Write>(&mut self, out: &mut O) -> std::io::Result<()> {
        if self.last == Last::OpenTag {
            out.write_all(b">")?;
            self.last = Last::Content;
        }
        Ok(())
    }

    fn line<O: Write>(&self, out: &mut O) -> std::io::Result<()> {
        const SPACES: &[u8] = &[b' '; 64];
        out.write_all(b"\n")?;
        let mut indent = 2 * self.declared.len();
        while indent > 0 {
            let n = indent.min(SPACES.len());
            out.write_all(&SPACES[..n])?;
            indent -= n;
        }
        Ok(())
    }

    fn base64<O: Write>(&mut self, mut bytes: &[u8], out: &mut O) -> std::io::Result<()> {
        let engine = &base64::engine::general_purpose::STANDARD;
        let mut encoded = [0u8; 4096];
        if self.carry_len > 0 {
            let take = (3 - self.carry_len).min(bytes.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&bytes[..take]);
            self.carry_len += take;
            bytes = &bytes[take..];
            if self.carry_len < 3 {
                return Ok(());
            }
            let n = engine
                .encode_slice(self.carry, &mut encoded)
                .map_err(std::io::Error::other)?;
            out.write_all(&encoded[..n])?;
            self.carry_len = 0;
        }
        // 3072 input bytes make exactly 4096 output bytes.
        for block in bytes.chunks(3072) {
            let whole = block.len() / 3 * 3;
            let n = engine
                .encode_slice(&block[..whole], &mut encoded)
                .map_err(std::io::Error::other)?;
            out.write_all(&encoded[..n])?;
            let rest = &block[whole..];
            self.carry[..rest.len()].copy_from_slice(rest);
            self.carry_len = rest.len();
        }
        Ok(())
    }

    fn flush_base64<O: Write>(&mut self, out: &mut O) -> std::io::Result<()> {
        if self.carry_len > 0 {
            let mut encoded = [0u8; 4];
            let engine = &base64::engine::general_purpose::STANDARD;
            let n = engine
                .encode_slice(&self.carry[..self.carry_len], &mut encoded)
                .map_err(std::io::Error::other)?;
            out.write_all(&encoded[..n])?;
            self.carry_len = 0;
        }
        Ok(())
    }
}

/// Flag bits kept above the page bits (0..=25) of an open element's entry in `declared`.
const TEXT_SEEN: u32 = 1 << 31;
const OPAQUE_ELEMENT: u32 = 1 << 30;

fn unrepresentable(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{what}, which the XML form cannot carry (EAS documents never do this)"),
    )
}

fn unknown(tag: Tag) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{tag} has no name in the EAS code pages"),
    )
}

/// Writes text escaped for XML; characters XML 1.0 cannot hold become `<?wbxml-char XX?>`.
fn write_text<O: Write>(text: &str, out: &mut O) -> std::io::Result<()> {
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let special: Option<&[u8]> = match b {
            b'<' => Some(b"&lt;"),
            b'>' => Some(b"&gt;"),
            b'&' => Some(b"&amp;"),
            b'\r' => Some(b"&#13;"),
            b'\t' | b'\n' => None,
            0x00..=0x1f => Some(b""),
            // U+FFFE and U+FFFF are EF BF BE / EF BF BF.
            0xEF if bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
            {
                Some(b"")
            }
            _ => None,
        };
        if let Some(replacement) = special {
            out.write_all(&bytes[plain_from..i])?;
            let width = if b == 0xEF { 3 } else { 1 };
            if replacement.is_empty() {
                let c = text[i..].chars().next().map_or(0, u32::from);
                write!(out, "<?wbxml-char {c:02X}?>")?;
            } else {
                out.write_all(replacement)?;
            }
            i += width;
            plain_from = i;
        } else {
            i += 1;
        }
    }
    out.write_all(&bytes[plain_from..])
}
