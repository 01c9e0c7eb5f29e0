//! The documents as trees: how the corpus is built, written with our [`Writer`], read back
//! with our [`Reader`], and printed in the XML form of `easync::wbxml::xml` (its module doc).

use std::fmt::Write as _;

use base64::Engine as _;
use easync::wbxml::{Event, Reader, Tag, Writer};

/// What an element holds. EAS documents never mix text and elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// No content: the tag byte without the content bit (`<X/>`).
    Empty,
    /// Content that is child elements, possibly none (`<X></X>` when none).
    Children(Vec<Node>),
    /// One inline string, possibly empty.
    Text(String),
    /// One opaque value.
    Opaque(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub tag: Tag,
    pub content: Content,
}

impl Node {
    /// The elements in this subtree, this one included.
    pub fn count(&self) -> usize {
        match &self.content {
            Content::Children(c) => 1 + c.iter().map(Node::count).sum::<usize>(),
            _ => 1,
        }
    }

    pub fn children(&self) -> &[Node] {
        match &self.content {
            Content::Children(c) => c,
            _ => &[],
        }
    }

    /// Every tag in this subtree, in document order.
    pub fn tags(&self, out: &mut Vec<Tag>) {
        out.push(self.tag);
        for c in self.children() {
            c.tags(out);
        }
    }

    /// The document's bytes, written by our [`Writer`].
    pub fn to_wbxml(&self) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        write_node(&mut w, self);
        w.finish().expect("our writer finishes the document")
    }
}

fn write_node(w: &mut Writer<Vec<u8>>, n: &Node) {
    let what = |e| panic!("our writer refused {}: {e:?}", n.tag);
    match &n.content {
        Content::Empty => w.empty(n.tag).unwrap_or_else(what),
        Content::Children(children) => {
            w.start(n.tag).unwrap_or_else(what);
            for c in children {
                write_node(w, c);
            }
            w.end().unwrap_or_else(what);
        }
        Content::Text(t) => w.text_element(n.tag, t).unwrap_or_else(what),
        Content::Opaque(d) => {
            w.start(n.tag).unwrap_or_else(what);
            w.opaque(d).unwrap_or_else(what);
            w.end().unwrap_or_else(what);
        }
    }
}

/// A namespace (code page) to build elements in, by spec name through [`Tag::by_name`].
#[derive(Clone, Copy)]
pub struct Ns(pub &'static str);

impl Ns {
    pub fn tag(self, name: &str) -> Tag {
        Tag::by_name(self.0, name).unwrap_or_else(|| panic!("no tag {}:{name}", self.0))
    }

    /// An element with child elements.
    pub fn el(self, name: &str, children: Vec<Node>) -> Node {
        Node {
            tag: self.tag(name),
            content: Content::Children(children),
        }
    }

    /// An element holding one inline string.
    pub fn tx(self, name: &str, text: impl Into<String>) -> Node {
        Node {
            tag: self.tag(name),
            content: Content::Text(text.into()),
        }
    }

    /// An element without content.
    pub fn em(self, name: &str) -> Node {
        Node {
            tag: self.tag(name),
            content: Content::Empty,
        }
    }

    /// An element holding one opaque value.
    pub fn op(self, name: &str, data: impl Into<Vec<u8>>) -> Node {
        Node {
            tag: self.tag(name),
            content: Content::Opaque(data.into()),
        }
    }
}

/// Reads a document with our [`Reader`] (a small buffer, so long values come in pieces).
pub fn read_tree(doc: &[u8]) -> Result<Node, String> {
    let mut reader = Reader::<&[u8], 256, 64>::new(doc);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    loop {
        let event = reader.next().map_err(|e| format!("our reader: {e:?}"))?;
        match event {
            Event::Start { tag, has_content } => stack.push(Node {
                tag,
                content: if has_content {
                    Content::Children(Vec::new())
                } else {
                    Content::Empty
                },
            }),
            Event::End(tag) => {
                let node = stack.pop().ok_or("end without start")?;
                if node.tag != tag {
                    return Err(format!("end of {tag} closes {}", node.tag));
                }
                match stack.last_mut() {
                    Some(Node {
                        content: Content::Children(c),
                        ..
                    }) => c.push(node),
                    Some(parent) => return Err(format!("{} mixes content", parent.tag)),
                    None => root = Some(node),
                }
            }
            Event::Text(piece) => {
                let top = stack.last_mut().ok_or("text outside the root")?;
                match &mut top.content {
                    Content::Children(c) if c.is_empty() => {
                        top.content = Content::Text(piece.to_owned())
                    }
                    Content::Text(t) => t.push_str(piece),
                    _ => return Err(format!("{} mixes content", top.tag)),
                }
            }
            Event::Opaque { len } => {
                let top = stack.last_mut().ok_or("opaque outside the root")?;
                match &top.content {
                    Content::Children(c) if c.is_empty() => {
                        top.content = Content::Opaque(Vec::with_capacity(len as usize))
                    }
                    _ => return Err(format!("{} mixes content", top.tag)),
                }
            }
            Event::OpaqueData(piece) => match stack.last_mut() {
                Some(Node {
                    content: Content::Opaque(d),
                    ..
                }) => d.extend_from_slice(piece),
                _ => return Err("opaque data outside an opaque value".into()),
            },
            Event::Eof => return root.ok_or_else(|| "no root".into()),
        }
    }
}

/// The document in the XML form our `decode` writes (`easync::wbxml::xml`'s module doc):
/// the root's page as default namespace, other pages as lowercase prefixes declared where
/// first needed, one element per line indented two spaces a level, `<X/>`, `<X></X>`,
/// `<X><![CDATA[]]></X>` for an empty string, `opaque="base64"`, and `&#13;` for CR.
pub fn our_xml(root: &Node) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    our_xml_node(root, 0, root.tag.page, 0, &mut out);
    out.push('\n');
    out
}

fn our_xml_node(n: &Node, depth: usize, root_page: u8, declared: u32, out: &mut String) {
    let page = n.tag.code_page().expect("a known page");
    let name = if n.tag.page == root_page {
        n.tag.name().expect("a known tag").to_owned()
    } else {
        format!("{}:{}", page.prefix, n.tag.name().expect("a known tag"))
    };
    out.push('\n');
    out.push_str(&"  ".repeat(depth));
    out.push('<');
    out.push_str(&name);
    let mut declared = declared;
    if depth == 0 {
        write!(out, " xmlns=\"{}\"", page.xmlns).unwrap();
    } else if n.tag.page != root_page && declared & (1 << n.tag.page) == 0 {
        write!(out, " xmlns:{}=\"{}\"", page.prefix, page.xmlns).unwrap();
        declared |= 1 << n.tag.page;
    }
    match &n.content {
        Content::Empty => out.push_str("/>"),
        Content::Children(c) if c.is_empty() => write!(out, "></{name}>").unwrap(),
        Content::Children(c) => {
            out.push('>');
            for child in c {
                our_xml_node(child, depth + 1, root_page, declared, out);
            }
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
            write!(out, "</{name}>").unwrap();
        }
        Content::Text(t) if t.is_empty() => write!(out, "><![CDATA[]]></{name}>").unwrap(),
        Content::Text(t) => {
            out.push('>');
            for ch in t.chars() {
                match ch {
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '&' => out.push_str("&amp;"),
                    '\r' => out.push_str("&#13;"),
                    '\t' | '\n' => out.push(ch),
                    '\0'..='\x1f' | '\u{FFFE}' | '\u{FFFF}' => {
                        write!(out, "<?wbxml-char {:02X}?>", ch as u32).unwrap()
                    }
                    _ => out.push(ch),
                }
            }
            write!(out, "</{name}>").unwrap();
        }
        Content::Opaque(d) => write!(
            out,
            " opaque=\"base64\">{}</{name}>",
            base64::engine::general_purpose::STANDARD.encode(d)
        )
        .unwrap(),
    }
}
