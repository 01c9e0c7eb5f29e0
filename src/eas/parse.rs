//! A thin structural layer over [`wbxml::Reader`] that every response reader uses: walk the
//! children of an element, read a bounded text or opaque value, stream a large value to a
//! [`Sink`], skip what the caller does not know, build a bounded generic tree.
//!
//! The contract is simple: every [`Child`] handed out by [`Parser::next_child`] must be
//! consumed by exactly one of [`Parser::text`], [`Parser::bytes`], [`Parser::number`],
//! [`Parser::skip`], [`Parser::stream`], [`Parser::tree`], or by walking its own children with
//! `next_child` until it returns `None`. Unknown elements are skipped, never fatal, so a
//! server that sends more than we know still works.

use embedded_io::Read;

use super::error::{Error, Result};
use super::sink::Sink;
use crate::wbxml::{self, Event, ProtocolVersion, Tag};

/// Size limits for values read into memory. Anything larger that is meant to be large
/// (bodies, attachments) is streamed instead; anything else over a limit is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest text or opaque value read into memory (ServerIds, subjects, names ...).
    pub max_value: usize,
    /// Most nodes in one generic tree ([`Parser::tree`]), e.g. one item's properties.
    pub max_tree_nodes: usize,
    /// Most entries a reader collects into one list (folders, responses, results).
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value: 64 * 1024,
            max_tree_nodes: 4096,
            max_entries: 10_000,
        }
    }
}

/// An element whose start has been read; see the module documentation for how to consume it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    pub tag: Tag,
    /// Byte offset of the element's start, for error messages.
    pub offset: u64,
}

/// A generic element tree, for values with many optional properties (an item's
/// ApplicationData, a policy document) that are mapped to types one level up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub tag: Tag,
    pub value: Value,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `<Tag/>` or `<Tag></Tag>`.
    Empty,
    Text(String),
    Opaque(Vec<u8>),
    Children(Vec<Node>),
}

impl Node {
    /// The first child with this tag.
    pub fn child(&self, tag: Tag) -> Option<&Node> {
        match &self.value {
            Value::Children(c) => c.iter().find(|n| n.tag == tag),
            _ => None,
        }
    }

    /// All children (empty for a leaf).
    pub fn children(&self) -> &[Node] {
        match &self.value {
            Value::Children(c) => c,
            _ => &[],
        }
    }

    /// The text of a leaf (opaque data that is UTF-8 counts as text; empty is "").
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Text(t) => Some(t),
            Value::Empty => Some(""),
            Value::Opaque(b) => core::str::from_utf8(b).ok(),
            Value::Children(_) => None,
        }
    }

    /// The text of the first child with this tag.
    pub fn child_text(&self, tag: Tag) -> Option<&str> {
        self.child(tag).and_then(Node::text)
    }
}

/// The response reader's view of a WBXML body.
pub struct Parser<R: Read> {
    reader: wbxml::Reader<R>,
    limits: Limits,
}

/// What the internal step found.
enum Step {
    Start(Tag),
    End,
    Eof,
    /// Text or opaque data where an element was expected.
    Data,
}

impl<R: Read> Parser<R> {
    /// A parser for a response of protocol `version`. Tags unknown to EAS are refused by the
    /// codec; tags of other versions are accepted (servers mix them harmlessly).
    pub fn new(input: R, version: ProtocolVersion) -> Self {
        let _ = version;
        Parser::with_limits(input, Limits::default())
    }

    pub fn with_limits(input: R, limits: Limits) -> Self {
        let config = wbxml::Config {
            max_depth: 32,
            ..wbxml::Config::default()
        };
        Parser {
            reader: wbxml::Reader::with_config(input, config),
            limits,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Checks that a list already holding `count` entries may take another, the element at
    /// `offset`: lists from the server are bounded by [`Limits::max_entries`]. `what` names
    /// the list in the [`Error::Limit`].
    pub fn check_entries(&self, count: usize, what: &'static str, offset: u64) -> Result<()> {
        if count >= self.limits.max_entries {
            return Err(Error::Limit {
                what,
                limit: self.limits.max_entries as u64,
                offset,
            });
        }
        Ok(())
    }

    /// Byte offset in the body, for error messages.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// A protocol error at the current offset.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Protocol {
            offset: self.offset(),
            message: message.into(),
        }
    }

    /// Reads the header and the root element, which must be `expected`. Returns `None` for an
    /// empty body (servers answer some commands with HTTP 200 and no body).
    pub fn root(&mut self, expected: Tag) -> Result<Option<Child>> {
        match self.reader.header() {
            Ok(_) => {}
            Err(wbxml::Error::Invalid {
                kind: wbxml::ErrorKind::Empty,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let offset = self.offset();
        match self.step()? {
            Step::Start(tag) if tag == expected => Ok(Some(Child { tag, offset })),
            Step::Start(tag) => {
                Err(self.error(format!("the response is {tag}, expected {expected}")))
            }
            _ => Err(self.error(format!("the response has no {expected} element"))),
        }
    }

    /// After the root element has been consumed: the document must end here.
    pub fn finish(&mut self) -> Result<()> {
        match self.step()? {
            Step::Eof => Ok(()),
            _ => Err(self.error("data after the root element")),
        }
    }

    fn step(&mut self) -> Result<Step> {
        Ok(match self.reader.next()? {
            Event::Start { tag, .. } => Step::Start(tag),
            Event::End(_) => Step::End,
            Event::Eof => Step::Eof,
            Event::Text(_) | Event::Opaque { .. } | Event::OpaqueData(_) => Step::Data,
        })
    }

    /// The next child of the element being walked, or `None` at its end. Text between child
    /// elements (whitespace some servers emit) is ignored.
    pub fn next_child(&mut self) -> Result<Option<Child>> {
        loop {
            let offset = self.offset();
            match self.step()? {
                Step::Start(tag) => return Ok(Some(Child { tag, offset })),
                Step::End => return Ok(None),
                Step::Data => continue,
                Step::Eof => return Err(self.error("the document ended inside an element")),
            }
        }
    }

    /// Reads the content of `child` as bytes (text or opaque), at most `limit` bytes.
    fn value_bytes(&mut self, child: Child, limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let piece: &[u8] = match self.reader.next()? {
                Event::Text(t) => t.as_bytes(),
                Event::OpaqueData(d) => d,
                Event::Opaque { .. } => &[],
                Event::End(_) => return Ok(out),
                Event::Start { tag, .. } => {
                    return Err(Error::Protocol {
                        offset: self.reader.offset(),
                        message: format!(
                            "{} holds an element ({tag}) where a value belongs",
                            child.tag
                        ),
                    });
                }
                Event::Eof => return Err(self.error("the document ended inside a value")),
            };
            if out.len() + piece.len() > limit {
                return Err(Error::Limit {
                    what: "a value",
                    limit: limit as u64,
                    offset: child.offset,
                });
            }
            out.extend_from_slice(piece);
        }
    }

    /// The text content of `child` (bounded by [`Limits::max_value`]). Opaque content is
    /// accepted when it is UTF-8.
    pub fn text(&mut self, child: Child) -> Result<String> {
        let bytes = self.value_bytes(child, self.limits.max_value)?;
        String::from_utf8(bytes).map_err(|_| Error::Protocol {
            offset: child.offset,
            message: format!("{} is not UTF-8 text", child.tag),
        })
    }

    /// The raw content of `child`, text or opaque (bounded by [`Limits::max_value`]).
    pub fn bytes(&mut self, child: Child) -> Result<Vec<u8>> {
        self.value_bytes(child, self.limits.max_value)
    }

    /// The content of `child` parsed as a number (or any `FromStr` value).
    pub fn number<T: core::str::FromStr>(&mut self, child: Child) -> Result<T> {
        let text = self.value_bytes(child, 64)?;
        core::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| Error::Protocol {
                offset: child.offset,
                message: format!(
                    "{} is not a valid number: {:?}",
                    child.tag,
                    String::from_utf8_lossy(&text)
                ),
            })
    }

    /// Skips `child` and everything inside it.
    pub fn skip(&mut self, child: Child) -> Result<()> {
        let _ = child;
        let mut depth = 1usize;
        loop {
            match self.reader.next()? {
                Event::Start { .. } => depth += 1,
                Event::End(_) => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Event::Eof => return Err(self.error("the document ended inside an element")),
                _ => {}
            }
        }
    }

    /// Hands the content of `child` (text or opaque, any size) to `sink` piece by piece and
    /// returns its length. Nothing is buffered here.
    pub fn stream(&mut self, child: Child, sink: &mut dyn Sink) -> Result<u64> {
        let mut total = 0u64;
        loop {
            match self.reader.next()? {
                Event::Text(t) => {
                    sink.chunk(t.as_bytes())?;
                    total += t.len() as u64;
                }
                Event::OpaqueData(d) => {
                    sink.chunk(d)?;
                    total += d.len() as u64;
                }
                Event::Opaque { .. } => {}
                Event::End(_) => {
                    sink.end(total)?;
                    return Ok(total);
                }
                Event::Start { tag, .. } => {
                    return Err(Error::Protocol {
                        offset: self.reader.offset(),
                        message: format!(
                            "{} holds an element ({tag}) where data belongs",
                            child.tag
                        ),
                    });
                }
                Event::Eof => return Err(self.error("the document ended inside a value")),
            }
        }
    }

    /// Reads `child` and its whole content into a generic tree, bounded by
    /// [`Limits::max_tree_nodes`] nodes and [`Limits::max_value`] per value.
    pub fn tree(&mut self, child: Child) -> Result<Node> {
        let mut budget = self.limits.max_tree_nodes;
        self.tree_inner(child, &mut budget)
    }

    fn tree_inner(&mut self, child: Child, budget: &mut usize) -> Result<Node> {
        if *budget == 0 {
            return Err(Error::Limit {
                what: "an element tree",
                limit: self.limits.max_tree_nodes as u64,
                offset: child.offset,
            });
        }
        *budget -= 1;
        // Peek at the first event to decide between a leaf and a container.
        let offset = self.offset();
        let first = match self.reader.next()? {
            Event::End(_) => {
                return Ok(Node {
                    tag: child.tag,
                    value: Value::Empty,
                });
            }
            Event::Start { tag, .. } => Some(tag),
            Event::Eof => return Err(self.error("the document ended inside an element")),
            Event::Text(t) => {
                if t.len() > self.limits.max_value {
                    return Err(Error::Limit {
                        what: "a value",
                        limit: self.limits.max_value as u64,
                        offset: child.offset,
                    });
                }
                let mut text = String::from(t);
                let rest =
                    self.value_bytes(child, self.limits.max_value.saturating_sub(text.len()))?;
                text.push_str(
                    core::str::from_utf8(&rest).map_err(|_| self.error("text is not UTF-8"))?,
                );
                return Ok(Node {
                    tag: child.tag,
                    value: Value::Text(text),
                });
            }
            Event::Opaque { len } => {
                if len as usize > self.limits.max_value {
                    return Err(Error::Limit {
                        what: "an opaque value",
                        limit: self.limits.max_value as u64,
                        offset,
                    });
                }
                let data = self.value_bytes(child, self.limits.max_value)?;
                return Ok(Node {
                    tag: child.tag,
                    value: Value::Opaque(data),
                });
            }
            Event::OpaqueData(_) => return Err(self.error("opaque data without its header")),
        };
        let mut children = Vec::new();
        let mut next = first.map(|tag| Child { tag, offset });
        while let Some(c) = next {
            children.push(self.tree_inner(c, budget)?);
            next = self.next_child()?;
        }
        Ok(Node {
            tag: child.tag,
            value: Value::Children(children),
        })
    }
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::testutil::wbxml_from_xml;
    use crate::wbxml::tags::cp;

    const SYNC: Tag = Tag::named(cp::AIRSYNC, "Sync");

    fn small(bytes: &[u8], max_value: usize) -> Parser<&[u8]> {
        Parser::with_limits(
            bytes,
            Limits {
                max_value,
                max_tree_nodes: 8,
                max_entries: 10,
            },
        )
    }

    #[test]
    fn tree_limits_hold_for_the_first_text_piece_and_node_count() {
        let doc = wbxml_from_xml("<Sync xmlns=\"AirSync:\"><SyncKey>0123456789</SyncKey></Sync>");
        let mut p = small(&doc, 5);
        let root = p.root(SYNC).unwrap().unwrap();
        assert!(matches!(p.tree(root), Err(Error::Limit { .. })));

        let many = format!(
            "<Sync xmlns=\"AirSync:\">{}</Sync>",
            "<SyncKey>1</SyncKey>".repeat(9)
        );
        let doc = wbxml_from_xml(&many);
        let mut p = small(&doc, 5);
        let root = p.root(SYNC).unwrap().unwrap();
        assert!(matches!(p.tree(root), Err(Error::Limit { .. })));
    }

    #[test]
    fn wrong_root_empty_body_and_mixed_content() {
        let doc = wbxml_from_xml("<Ping xmlns=\"Ping:\"><Status>1</Status></Ping>");
        let err = small(&doc, 64).root(SYNC).unwrap_err();
        assert!(err.to_string().contains("expected AirSync:Sync"), "{err}");
        assert!(small(b"", 64).root(SYNC).unwrap().is_none());

        let doc =
            wbxml_from_xml("<Sync xmlns=\"AirSync:\"><Status><SyncKey>1</SyncKey></Status></Sync>");
        let mut p = small(&doc, 64);
        p.root(SYNC).unwrap();
        let status = p.next_child().unwrap().unwrap();
        assert!(matches!(p.text(status), Err(Error::Protocol { .. })));
    }

    #[test]
    fn stream_hands_every_piece_to_the_sink_and_skip_balances() {
        let body = "x".repeat(20_000);
        let doc = wbxml_from_xml(&format!(
            "<Sync xmlns=\"AirSync:\"><Collections><Collection><SyncKey>1</SyncKey></Collection></Collections><SyncKey>{body}</SyncKey></Sync>"
        ));
        let mut p = small(&doc, 64);
        p.root(SYNC).unwrap();
        let collections = p.next_child().unwrap().unwrap();
        p.skip(collections).unwrap();
        let key = p.next_child().unwrap().unwrap();
        let mut sink = Vec::new();
        assert_eq!(p.stream(key, &mut sink).unwrap(), 20_000);
        assert_eq!(sink, body.as_bytes());
        assert!(p.next_child().unwrap().is_none());
        p.finish().unwrap();
    }
}
