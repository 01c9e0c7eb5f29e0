//! Check 2's conversion: the XML our `decode` printed → the XML libwbxml's `xml2wbxml` reads.
//!
//! Our XML is read with quick-xml (an XML parser of its own, so our decoder's output is also
//! checked to be well-formed, namespace-correct XML) and written again in libwbxml's
//! dialect: its names, a default `xmlns` at each page change, compact, the DOCTYPE, CR as
//! `&#13;`, base64 text in its binary tags, a CDATA section for opaque data in other tags,
//! `<![CDATA[]]>` for content with nothing in it, and no 16.1 elements (it cannot encode
//! them; they are counted in `pruned`).

use base64::Engine as _;
use easync::wbxml::Tag;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::libwbxml::Libwbxml;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An element of XML in our form, as an XML parser sees it (escaping, CDATA sections and
/// formatting are gone).
#[derive(Debug, PartialEq, Eq)]
pub struct Element {
    tag: Tag,
    opaque: bool,
    /// `<X/>`.
    empty_tag: bool,
    children: Vec<Element>,
    text: String,
    /// Character data that is a value: a reference, a CDATA section, a `<?wbxml-char?>`,
    /// or any text in an element without children.
    has_value: bool,
}

impl Element {
    fn count(&self) -> usize {
        1 + self.children.iter().map(Element::count).sum::<usize>()
    }
}

/// Reads XML in our form (`easync::wbxml::xml`'s module doc).
pub fn parse(xml: &[u8]) -> Result<Element, String> {
    let mut reader = NsReader::from_reader(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let err = |e: &dyn std::fmt::Display| format!("our decoder's XML: {e}");
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|e| err(&e))?;
        let start = |e: &quick_xml::events::BytesStart, empty_tag: bool| {
            let ns = match ns {
                ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.0).into_owned(),
                other => return Err(format!("our decoder's XML: element in {other:?}")),
            };
            let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
            let tag = Tag::by_name(&ns, &local)
                .ok_or_else(|| format!("our decoder's XML: no tag {ns}{local}"))?;
            let mut opaque = false;
            for a in e.attributes() {
                let a = a.map_err(|e| err(&e))?;
                let key = a.key.as_ref();
                if key == b"xmlns" || key.starts_with(b"xmlns:") {
                    continue;
                }
                if key == b"opaque" && &*a.value == b"base64" {
                    opaque = true;
                } else {
                    return Err(format!("our decoder's XML: attribute {a:?} on {tag}"));
                }
            }
            Ok(Element {
                tag,
                opaque,
                empty_tag,
                children: Vec::new(),
                text: String::new(),
                has_value: false,
            })
        };
        match event {
            Event::Start(e) => {
                let el = start(&e, false)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = start(&e, true)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("our decoder's XML: end without start")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.xml10_content().map_err(|e| err(&e))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&text);
                } else if !text.trim().is_empty() {
                    return Err("our decoder's XML: text outside the root".into());
                }
            }
            Event::GeneralRef(r) => {
                let el = top(&mut stack)?;
                if r.is_char_ref() {
                    let ch = r.resolve_char_ref().map_err(|e| err(&e))?;
                    el.text
                        .push(ch.ok_or("our decoder's XML: bad character reference")?);
                } else {
                    let name = r.decode().map_err(|e| err(&e))?;
                    let value = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| format!("our decoder's XML: entity &{name};"))?;
                    el.text.push_str(value);
                }
                el.has_value = true;
            }
            Event::CData(c) => {
                let text = c.xml10_content().map_err(|e| err(&e))?;
                let el = top(&mut stack)?;
                el.text.push_str(&text);
                el.has_value = true;
            }
            Event::PI(pi) if pi.target() == b"wbxml-char" => {
                let hex = String::from_utf8_lossy(pi.content()).trim().to_owned();
                let ch = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("our decoder's XML: <?wbxml-char {hex}?>"))?;
                let el = top(&mut stack)?;
                el.text.push(ch);
                el.has_value = true;
            }
            Event::Decl(_) | Event::DocType(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    let mut root = root.ok_or("our decoder's XML: no root element")?;
    settle(&mut root)?;
    Ok(root)
}

fn top(stack: &mut [Element]) -> Result<&mut Element, String> {
    stack
        .last_mut()
        .ok_or_else(|| "our decoder's XML: character data outside the root".into())
}

/// Decides, once an element is complete, whether its character data is a value or
/// formatting between child elements.
fn settle(el: &mut Element) -> Result<(), String> {
    if el.children.is_empty() {
        if !el.text.is_empty() {
            el.has_value = true;
        }
    } else {
        if el.has_value || !el.text.trim_matches([' ', '\n', '\t', '\r']).is_empty() {
            return Err(format!("our decoder's XML: {} mixes content", el.tag));
        }
        el.text.clear();
        for c in &mut el.children {
            settle(c)?;
        }
    }
    Ok(())
}

/// Our decoder's XML in libwbxml's dialect; `None` when the root itself is a 16.1 element.
pub fn to_libwbxml(
    lib: &Libwbxml,
    ours: &[u8],
    pruned: &mut usize,
) -> Result<Option<String>, String> {
    let root = parse(ours)?;
    let mut body = String::new();
    emit(lib, &root, None, &mut body, pruned)?;
    if body.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "<?xml version=\"1.0\"?>{}{body}",
        crate::libwbxml::DOCTYPE
    )))
}

fn emit(
    lib: &Libwbxml,
    el: &Element,
    parent_page: Option<u8>,
    out: &mut String,
    pruned: &mut usize,
) -> Result<(), String> {
    if Libwbxml::lacks(el.tag) {
        *pruned += el.count();
        return Ok(());
    }
    let name = lib.name(el.tag);
    out.push('<');
    out.push_str(name);
    if parent_page != Some(el.tag.page) {
        out.push_str(" xmlns=\"");
        out.push_str(lib.xmlns(el.tag.page));
        out.push('"');
    }
    // Content with nothing in it: an empty CDATA section is how libwbxml writes the content
    // bit with no content (`<X></X>` would lose the bit).
    const NOTHING: &str = "<![CDATA[]]>";
    let content = if el.empty_tag {
        out.push_str("/>");
        return Ok(());
    } else if el.opaque {
        let compact: String = el.text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = B64
            .decode(compact)
            .map_err(|e| format!("our decoder's base64 in {}: {e}", el.tag))?;
        if bytes.is_empty() {
            // libwbxml has no way to write an empty opaque value (see `encodable`).
            NOTHING.to_owned()
        } else if lib.is_binary(el.tag) {
            B64.encode(&bytes)
        } else {
            // Elsewhere libwbxml encodes a CDATA section as OPAQUE: the bytes must be text
            // a CDATA section can hold, CR excepted (expat would turn it into LF).
            let text = String::from_utf8(bytes).map_err(|_| {
                format!(
                    "{}: opaque data that is not UTF-8 cannot go through libwbxml's XML",
                    el.tag
                )
            })?;
            if text.contains("]]>")
                || text
                    .chars()
                    .any(|c| c == '\r' || (c < ' ' && c != '\t' && c != '\n'))
            {
                return Err(format!(
                    "{}: opaque data {text:?} cannot go into a CDATA section",
                    el.tag
                ));
            }
            format!("<![CDATA[{text}]]>")
        }
    } else if !el.children.is_empty() {
        let mut inner = String::new();
        for c in &el.children {
            emit(lib, c, Some(el.tag.page), &mut inner, pruned)?;
        }
        if inner.is_empty() {
            NOTHING.to_owned()
        } else {
            inner
        }
    } else if !el.has_value || el.text.is_empty() {
        // Empty content, or an empty string, which libwbxml cannot write (see
        // `Libwbxml::encodable`).
        NOTHING.to_owned()
    } else if lib.is_binary(el.tag) {
        // In its binary tags libwbxml takes base64 (and encodes OPAQUE: see `encodable`).
        B64.encode(el.text.as_bytes())
    } else {
        let mut escaped = String::with_capacity(el.text.len());
        for ch in el.text.chars() {
            match ch {
                '<' => escaped.push_str("&lt;"),
                '>' => escaped.push_str("&gt;"),
                '&' => escaped.push_str("&amp;"),
                '\r' => escaped.push_str("&#13;"),
                c if c < ' ' && c != '\t' && c != '\n' => {
                    return Err(format!(
                        "{}: U+{:04X} cannot go into libwbxml's XML",
                        el.tag, c as u32
                    ));
                }
                c => escaped.push(c),
            }
        }
        escaped
    };
    out.push('>');
    out.push_str(&content);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
    Ok(())
}
