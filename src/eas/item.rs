//! Item types shared by the commands that carry items (Sync, Ping, GetItemEstimate,
//! FolderSync): the content classes, filters and body preferences of MS-ASCMD/MS-ASAIRS, and
//! the reader of an item's `ApplicationData` that keeps small properties as a generic
//! [`Node`] tree and streams large values (bodies, MIME, pictures) to a [`Sink`].

use embedded_io::Read;

use super::error::{Error, Result};
use super::parse::{Child, Node, Parser, Value};
use super::sink::{Discard, Sink};
use crate::wbxml::tags::cp;
use crate::wbxml::{self, Tag};

/// The longest ServerId, ClientId, CollectionId or SyncKey accepted, in bytes. MS-ASCMD caps
/// these at 64 characters; 256 bytes leaves room for multi-byte characters and lenient
/// servers while keeping a hostile value from growing without bound.
pub const MAX_ID_LEN: usize = 256;

/// The content classes easync syncs (the `Class` values of MS-ASCMD; SMS is not synced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Email,
    Contacts,
    Calendar,
    Tasks,
    Notes,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Email,
        Class::Contacts,
        Class::Calendar,
        Class::Tasks,
        Class::Notes,
    ];

    /// The value written in `Class` elements.
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Email => "Email",
            Class::Contacts => "Contacts",
            Class::Calendar => "Calendar",
            Class::Tasks => "Tasks",
            Class::Notes => "Notes",
        }
    }

    /// The class named `s` (exact spelling, as servers send it).
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }
}

/// A Sync/GetItemEstimate time window (MS-ASCMD FilterType). Which values a class accepts:
/// email 0–5, calendar 0 and 4–7, tasks 0 and 8; contacts and notes take none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterType {
    All = 0,
    OneDay = 1,
    ThreeDays = 2,
    OneWeek = 3,
    TwoWeeks = 4,
    OneMonth = 5,
    ThreeMonths = 6,
    SixMonths = 7,
    IncompleteTasks = 8,
}

impl FilterType {
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Whether the spec allows this filter for `class`.
    pub const fn applies_to(self, class: Class) -> bool {
        let code = self as u8;
        match class {
            Class::Email => code <= 5,
            Class::Calendar => code == 0 || (code >= 4 && code <= 7),
            Class::Tasks => code == 0 || code == 8,
            Class::Contacts | Class::Notes => code == 0,
        }
    }
}

/// A body format (MS-ASAIRS Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyType {
    PlainText = 1,
    Html = 2,
    Rtf = 3,
    Mime = 4,
}

impl BodyType {
    pub const fn code(self) -> u8 {
        self as u8
    }

    pub const fn from_code(code: u32) -> Option<BodyType> {
        match code {
            1 => Some(BodyType::PlainText),
            2 => Some(BodyType::Html),
            3 => Some(BodyType::Rtf),
            4 => Some(BodyType::Mime),
            _ => None,
        }
    }
}

/// One `airsyncbase:BodyPreference` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPreference {
    pub body_type: BodyType,
    /// Bytes of the body the server sends at most; `None` for the whole body.
    pub truncation_size: Option<u32>,
    /// With a truncation size: send the whole body or nothing (`AllOrNone`).
    pub all_or_none: bool,
    /// Characters of plain-text preview wanted (0–255), 14.0 and later only.
    pub preview: Option<u8>,
}

impl BodyPreference {
    /// A preference for `body_type` with no truncation.
    pub const fn new(body_type: BodyType) -> Self {
        BodyPreference {
            body_type,
            truncation_size: None,
            all_or_none: false,
            preview: None,
        }
    }

    /// Writes `<airsyncbase:BodyPreference>` (Sync, ItemOperations and Search options).
    pub fn write<W: embedded_io::Write>(
        &self,
        w: &mut wbxml::Writer<W>,
    ) -> core::result::Result<(), wbxml::Error<W::Error>> {
        w.start(BODY_PREFERENCE)?;
        w.text_element(BODY_TYPE, &self.body_type.code().to_string())?;
        if let Some(size) = self.truncation_size {
            w.text_element(TRUNCATION_SIZE, &size.to_string())?;
        }
        if self.all_or_none {
            w.text_element(ALL_OR_NONE, "1")?;
        }
        if let Some(preview) = self.preview {
            w.text_element(PREVIEW, &preview.to_string())?;
        }
        w.end()
    }
}

/// A value that is not kept in the item's tree but handed to a [`Sink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LargeValue {
    /// `airsyncbase:Body/Data`, with the body's `Type` when it came before the data.
    Body { body_type: Option<BodyType> },
    /// `airsyncbase:BodyPart/Data` (14.1+ conversation body part).
    BodyPart { body_type: Option<BodyType> },
    /// `email:MIMEData` (protocol 2.5 servers).
    Mime,
    /// `contacts:Picture` (base64 of the contact's photo).
    Picture,
}

/// A large value of an item that was streamed rather than kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streamed {
    pub value: LargeValue,
    /// Bytes as received (for text bodies: UTF-8; for pictures: base64).
    pub len: u64,
    /// Whether a sink took the value (false: no sink was offered and it was thrown away).
    pub delivered: bool,
}

/// Where an item reader sends large values.
pub trait SinkSource {
    /// The sink for `value`, or `None` to throw the value away.
    fn sink_for(&mut self, value: &LargeValue) -> Option<&mut dyn Sink>;
}

/// A [`SinkSource`] that throws every large value away.
impl SinkSource for Discard {
    fn sink_for(&mut self, _value: &LargeValue) -> Option<&mut dyn Sink> {
        None
    }
}

/// The metadata of an `airsyncbase:Body` node as read by [`read_application_data`] (the
/// data itself went to a sink).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BodyInfo {
    pub body_type: Option<BodyType>,
    pub estimated_size: Option<u64>,
    pub truncated: bool,
    pub preview: Option<String>,
}

impl BodyInfo {
    /// Reads the metadata of a Body node (any other node gives the default).
    pub fn from_node(body: &Node) -> BodyInfo {
        let number = |name: &'static str| {
            body.child_text(Tag::named(cp::AIRSYNCBASE, name))
                .and_then(|t| t.trim().parse::<u64>().ok())
        };
        BodyInfo {
            body_type: number("Type").and_then(|c| BodyType::from_code(c as u32)),
            estimated_size: number("EstimatedDataSize"),
            truncated: matches!(
                body.child_text(Tag::named(cp::AIRSYNCBASE, "Truncated"))
                    .map(str::trim),
                Some("1") | Some("true")
            ),
            preview: body
                .child_text(Tag::named(cp::AIRSYNCBASE, "Preview"))
                .map(String::from),
        }
    }
}

const APPLICATION_DATA: Tag = Tag::named(cp::AIRSYNC, "ApplicationData");
const BODY: Tag = Tag::named(cp::AIRSYNCBASE, "Body");
const BODY_PART: Tag = Tag::named(cp::AIRSYNCBASE, "BodyPart");
const BODY_DATA: Tag = Tag::named(cp::AIRSYNCBASE, "Data");
const BODY_TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "Type");
const BODY_PREFERENCE: Tag = Tag::named(cp::AIRSYNCBASE, "BodyPreference");
const TRUNCATION_SIZE: Tag = Tag::named(cp::AIRSYNCBASE, "TruncationSize");
const ALL_OR_NONE: Tag = Tag::named(cp::AIRSYNCBASE, "AllOrNone");
const PREVIEW: Tag = Tag::named(cp::AIRSYNCBASE, "Preview");
const EXCEPTIONS: Tag = Tag::named(cp::CALENDAR, "Exceptions");
const EXCEPTION: Tag = Tag::named(cp::CALENDAR, "Exception");
const MIME_DATA: Tag = Tag::named(cp::EMAIL, "MIMEData");
const PICTURE: Tag = Tag::named(cp::CONTACTS, "Picture");

/// Reads an id-like value (ServerId, ClientId, CollectionId, SyncKey), at most
/// [`MAX_ID_LEN`] bytes.
pub fn read_id<R: Read>(p: &mut Parser<R>, child: Child) -> Result<String> {
    let text = p.text(child)?;
    if text.len() > MAX_ID_LEN {
        return Err(Error::Limit {
            what: "an id or sync key",
            limit: MAX_ID_LEN as u64,
            offset: child.offset,
        });
    }
    Ok(text)
}

/// An item's properties as read from its `ApplicationData` (or a Fetch result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemData {
    /// The element with every small property; bodies keep Type, EstimatedDataSize,
    /// Truncated and Preview but not their Data.
    pub node: Node,
    /// The large values, in document order, that went to sinks.
    pub streamed: Vec<Streamed>,
}

/// Reads `child` (an `ApplicationData` or similar container) into an [`ItemData`]. Bodies,
/// MIME and pictures anywhere in it (including calendar exceptions) go to `sinks`. The whole
/// item is bounded by [`Limits::max_tree_nodes`](super::Limits) nodes.
pub fn read_application_data<R: Read>(
    p: &mut Parser<R>,
    child: Child,
    sinks: &mut dyn SinkSource,
) -> Result<ItemData> {
    let mut budget = p.limits().max_tree_nodes;
    let mut streamed = Vec::new();
    let node = read_container(p, child, sinks, &mut budget, &mut streamed)?;
    Ok(ItemData { node, streamed })
}

fn charge(p: &Parser<impl Read>, budget: &mut usize, nodes: usize, offset: u64) -> Result<()> {
    if nodes > *budget {
        return Err(Error::Limit {
            what: "an item's properties",
            limit: p.limits().max_tree_nodes as u64,
            offset,
        });
    }
    *budget -= nodes;
    Ok(())
}

fn count_nodes(node: &Node) -> usize {
    1 + node.children().iter().map(count_nodes).sum::<usize>()
}

fn read_container<R: Read>(
    p: &mut Parser<R>,
    element: Child,
    sinks: &mut dyn SinkSource,
    budget: &mut usize,
    streamed: &mut Vec<Streamed>,
) -> Result<Node> {
    charge(p, budget, 1, element.offset)?;
    let mut children: Vec<Node> = Vec::new();
    while let Some(c) = p.next_child()? {
        let large = match c.tag {
            BODY_DATA if element.tag == BODY || element.tag == BODY_PART => {
                let body_type = children
                    .iter()
                    .find(|n| n.tag == BODY_TYPE)
                    .and_then(Node::text)
                    .and_then(|t| t.trim().parse::<u32>().ok())
                    .and_then(BodyType::from_code);
                Some(if element.tag == BODY {
                    LargeValue::Body { body_type }
                } else {
                    LargeValue::BodyPart { body_type }
                })
            }
            MIME_DATA => Some(LargeValue::Mime),
            PICTURE => Some(LargeValue::Picture),
            _ => None,
        };
        if let Some(value) = large {
            charge(p, budget, 1, c.offset)?;
            let (len, delivered) = match sinks.sink_for(&value) {
                Some(sink) => (p.stream(c, sink)?, true),
                None => (p.stream(c, &mut Discard)?, false),
            };
            streamed.push(Streamed {
                value,
                len,
                delivered,
            });
            continue;
        }
        let node = if matches!(
            c.tag,
            APPLICATION_DATA | BODY | BODY_PART | EXCEPTIONS | EXCEPTION
        ) {
            read_container(p, c, sinks, budget, streamed)?
        } else {
            let node = p.tree(c)?;
            charge(p, budget, count_nodes(&node), c.offset)?;
            node
        };
        children.push(node);
    }
    Ok(Node {
        tag: element.tag,
        value: Value::Children(children),
    })
}

/// Writes `node` and its content (the inverse of [`Parser::tree`]): for client changes'
/// `ApplicationData`.
pub fn write_node<W: embedded_io::Write>(
    w: &mut wbxml::Writer<W>,
    node: &Node,
) -> core::result::Result<(), wbxml::Error<W::Error>> {
    match &node.value {
        Value::Empty => w.empty(node.tag),
        Value::Text(t) => w.text_element(node.tag, t),
        Value::Opaque(b) => {
            w.start(node.tag)?;
            w.opaque(b)?;
            w.end()
        }
        Value::Children(children) => {
            w.start(node.tag)?;
            for c in children {
                write_node(w, c)?;
            }
            w.end()
        }
    }
}

/// A leaf node with text: a small helper for building `ApplicationData`.
pub fn text_node(tag: Tag, text: impl Into<String>) -> Node {
    Node {
        tag,
        value: Value::Text(text.into()),
    }
}

/// A container node.
pub fn container(tag: Tag, children: Vec<Node>) -> Node {
    Node {
        tag,
        value: Value::Children(children),
    }
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::testutil::{parser, wbxml_from_xml, xml_from_wbxml};

    #[test]
    fn classes_and_filters() {
        for c in Class::ALL {
            assert_eq!(Class::parse(c.as_str()), Some(c));
        }
        assert_eq!(Class::parse("SMS"), None);
        assert!(FilterType::ThreeDays.applies_to(Class::Email));
        assert!(!FilterType::ThreeDays.applies_to(Class::Calendar));
        assert!(FilterType::SixMonths.applies_to(Class::Calendar));
        assert!(FilterType::IncompleteTasks.applies_to(Class::Tasks));
        assert!(!FilterType::OneWeek.applies_to(Class::Contacts));
        assert_eq!(BodyType::from_code(4), Some(BodyType::Mime));
        assert_eq!(BodyType::from_code(5), None);
    }

    #[test]
    fn ids_are_bounded() {
        let long = "x".repeat(MAX_ID_LEN + 1);
        let bytes = wbxml_from_xml(&format!(
            "<Sync xmlns=\"AirSync:\"><ServerId>{long}</ServerId></Sync>"
        ));
        let mut p = parser(&bytes);
        p.root(Tag::named(cp::AIRSYNC, "Sync")).unwrap().unwrap();
        let c = p.next_child().unwrap().unwrap();
        assert!(matches!(read_id(&mut p, c), Err(Error::Limit { .. })));
    }

    #[test]
    fn nodes_write_back_as_read() {
        let xml = "<ApplicationData xmlns=\"AirSync:\" xmlns:email=\"Email:\">\n  \
                   <email:Read>1</email:Read>\n  <email:Flag/>\n</ApplicationData>";
        let bytes = wbxml_from_xml(xml);
        let mut p = parser(&bytes);
        let root = p.root(APPLICATION_DATA).unwrap().unwrap();
        let item = read_application_data(&mut p, root, &mut Discard).unwrap();
        p.finish().unwrap();
        let out = crate::eas::command::write_wbxml(crate::wbxml::ProtocolVersion::V16_1, |w| {
            write_node(w, &item.node)
        })
        .unwrap();
        assert_eq!(out, bytes, "{}", xml_from_wbxml(&out));
        assert_eq!(item.node.children().len(), 2);
        assert!(item.streamed.is_empty());
    }
}
