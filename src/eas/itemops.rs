//! ItemOperations (MS-ASCMD 2.2.1.10): fetch an item, an attachment or a search result;
//! empty a folder; move a conversation.
//!
//! Large values in a fetch response — an attachment's or document's content
//! (`itemoperations:Data`) and an item's body (`airsyncbase:Body/Data`) — go to a [`Sink`]
//! the caller picks per fetched item through a [`SinkChooser`]; nothing large is buffered.
//! When the request carried `MS-ASAcceptMultiPart: T`, the response is a multipart body
//! ([`super::multipart`]): part 0 is the WBXML and `Part` elements name the binary parts,
//! which [`read_multipart_response`] then streams to the chosen sinks in body order.
//!
//! This module also holds what the other item-reading commands share: [`ItemRef`],
//! [`SinkChooser`] and the properties reader [`read_properties`] (Search uses it for
//! mailbox results). [`BodyPreference`] is [`super::item::BodyPreference`], re-exported.

use embedded_io::Read;

use super::command::{Command, Request, write_wbxml};
use super::error::{Error, Result};
pub use super::item::BodyPreference;
use super::multipart::MultipartReader;
use super::parse::{Child, Limits, Node, Parser};
use super::sink::Sink;
use super::status::{Action, CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{self, ProtocolVersion, Tag};

const IO: u8 = cp::ITEM_OPERATIONS;
const ITEM_OPERATIONS: Tag = Tag::named(IO, "ItemOperations");
const FETCH: Tag = Tag::named(IO, "Fetch");
const STORE: Tag = Tag::named(IO, "Store");
const OPTIONS: Tag = Tag::named(IO, "Options");
const RANGE: Tag = Tag::named(IO, "Range");
const TOTAL: Tag = Tag::named(IO, "Total");
const PROPERTIES: Tag = Tag::named(IO, "Properties");
const DATA: Tag = Tag::named(IO, "Data");
const STATUS: Tag = Tag::named(IO, "Status");
const RESPONSE: Tag = Tag::named(IO, "Response");
const VERSION: Tag = Tag::named(IO, "Version");
const PART: Tag = Tag::named(IO, "Part");
const EMPTY_FOLDER_CONTENTS: Tag = Tag::named(IO, "EmptyFolderContents");
const DELETE_SUB_FOLDERS: Tag = Tag::named(IO, "DeleteSubFolders");
const MOVE: Tag = Tag::named(IO, "Move");
const DST_FLD_ID: Tag = Tag::named(IO, "DstFldId");
const CONVERSATION_ID: Tag = Tag::named(IO, "ConversationId");
const MOVE_ALWAYS: Tag = Tag::named(IO, "MoveAlways");

const COLLECTION_ID: Tag = Tag::named(cp::AIRSYNC, "CollectionId");
const SERVER_ID: Tag = Tag::named(cp::AIRSYNC, "ServerId");
const CLASS: Tag = Tag::named(cp::AIRSYNC, "Class");
const MIME_SUPPORT: Tag = Tag::named(cp::AIRSYNC, "MIMESupport");
const LONG_ID: Tag = Tag::named(cp::SEARCH, "LongId");

const TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "Type");
const PREVIEW: Tag = Tag::named(cp::AIRSYNCBASE, "Preview");
const BODY: Tag = Tag::named(cp::AIRSYNCBASE, "Body");
const BODY_DATA: Tag = Tag::named(cp::AIRSYNCBASE, "Data");
const ESTIMATED_DATA_SIZE: Tag = Tag::named(cp::AIRSYNCBASE, "EstimatedDataSize");
const TRUNCATED: Tag = Tag::named(cp::AIRSYNCBASE, "Truncated");
const FILE_REFERENCE: Tag = Tag::named(cp::AIRSYNCBASE, "FileReference");
const CONTENT_TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "ContentType");

command_status! {
    /// ItemOperations status (MS-ASCMD 2.2.3.177.8), global or per operation.
    pub enum Status {
        1 => Success, Proceed, "success";
        2 => ProtocolError, FixRequest, "protocol error: the request did not validate";
        3 => ServerError, RetryLater, "the server failed";
        4 => DocumentLibraryBadUri, FixRequest, "the document library URI is malformed";
        5 => DocumentLibraryAccessDenied, Blocked, "access to the document library was denied";
        6 => DocumentLibraryNotFound, ItemGone, "the document library object was not found or access was denied";
        7 => DocumentLibraryConnectFailed, RetryLater, "the server could not connect to the document library";
        8 => InvalidByteRange, FixRequest, "the byte range is invalid or too large";
        9 => UnknownStore, FixRequest, "the store is unknown or not supported";
        10 => FileEmpty, Proceed, "the file is empty";
        11 => DataTooLarge, FixRequest, "the requested data is too large";
        12 => DownloadIoFailure, RetryLater, "the server could not download the file (input/output failure)";
        14 => ConversionFailed, FixRequest, "the item could not be converted";
        15 => InvalidAttachment, ItemGone, "the attachment or its id is invalid";
        16 => ResourceAccessDenied, Blocked, "access to the resource was denied";
        17 => PartialSuccess, Proceed, "the command completed partially";
        18 => CredentialsRequired, FixRequest, "the document library requires credentials";
    }
}

/// What to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchTarget {
    /// A mailbox item by folder and server id.
    Item {
        collection_id: String,
        server_id: String,
    },
    /// An attachment by its `airsyncbase:FileReference`.
    Attachment { file_reference: String },
    /// A result of a mailbox Search, by its LongId.
    SearchResult { long_id: String },
}

/// A Fetch operation (always against the Mailbox store; document libraries are not used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub target: FetchTarget,
    /// Bodies the client accepts, best first (empty: the server's default).
    pub body_preferences: Vec<BodyPreference>,
    /// Bytes `first..=last` of an attachment's data.
    pub range: Option<(u64, u64)>,
    /// 0 never MIME, 1 MIME for S/MIME only, 2 MIME always.
    pub mime_support: Option<u8>,
}

impl Fetch {
    /// A fetch of `target` with no options.
    pub fn new(target: FetchTarget) -> Fetch {
        Fetch {
            target,
            body_preferences: Vec::new(),
            range: None,
            mime_support: None,
        }
    }
}

/// One operation of an ItemOperations request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Fetch(Fetch),
    /// Delete every item of a folder (and, if asked, its subfolders).
    EmptyFolderContents {
        collection_id: String,
        delete_sub_folders: bool,
    },
    /// Move a whole conversation (14.0 and later). `conversation_id` is the opaque id the
    /// server sent as `email2:ConversationId`.
    Move {
        conversation_id: Vec<u8>,
        destination_folder: String,
        move_always: bool,
    },
}

/// The ItemOperations request for `operations`, in order (responses come back in the same
/// order). A tag the version lacks (Move and Preview before 14.0) is an error.
pub fn request(version: ProtocolVersion, operations: &[Operation]) -> Result<Request> {
    if operations.is_empty() {
        return Err(Error::Write(
            "an ItemOperations request needs at least one operation".into(),
        ));
    }
    let body = write_wbxml(version, |w| {
        w.start(ITEM_OPERATIONS)?;
        for op in operations {
            match op {
                Operation::Fetch(fetch) => write_fetch(w, fetch)?,
                Operation::EmptyFolderContents {
                    collection_id,
                    delete_sub_folders,
                } => {
                    w.start(EMPTY_FOLDER_CONTENTS)?;
                    w.text_element(COLLECTION_ID, collection_id)?;
                    if *delete_sub_folders {
                        w.start(OPTIONS)?;
                        w.empty(DELETE_SUB_FOLDERS)?;
                        w.end()?;
                    }
                    w.end()?;
                }
                Operation::Move {
                    conversation_id,
                    destination_folder,
                    move_always,
                } => {
                    w.start(MOVE)?;
                    w.start(CONVERSATION_ID)?;
                    w.opaque(conversation_id)?;
                    w.end()?;
                    w.text_element(DST_FLD_ID, destination_folder)?;
                    if *move_always {
                        w.start(OPTIONS)?;
                        w.empty(MOVE_ALWAYS)?;
                        w.end()?;
                    }
                    w.end()?;
                }
            }
        }
        w.end()
    })?;
    Ok(Request::wbxml(Command::ItemOperations, body))
}

fn write_fetch(
    w: &mut wbxml::Writer<Vec<u8>>,
    fetch: &Fetch,
) -> core::result::Result<(), wbxml::Error<core::convert::Infallible>> {
    w.start(FETCH)?;
    w.text_element(STORE, "Mailbox")?;
    match &fetch.target {
        FetchTarget::Item {
            collection_id,
            server_id,
        } => {
            w.text_element(COLLECTION_ID, collection_id)?;
            w.text_element(SERVER_ID, server_id)?;
        }
        FetchTarget::Attachment { file_reference } => {
            w.text_element(FILE_REFERENCE, file_reference)?
        }
        FetchTarget::SearchResult { long_id } => w.text_element(LONG_ID, long_id)?,
    }
    let has_options =
        fetch.range.is_some() || fetch.mime_support.is_some() || !fetch.body_preferences.is_empty();
    if has_options {
        w.start(OPTIONS)?;
        if let Some((first, last)) = fetch.range {
            w.text_element(RANGE, &format!("{first}-{last}"))?;
        }
        if let Some(mime) = fetch.mime_support {
            w.text_element(MIME_SUPPORT, &mime.to_string())?;
        }
        for preference in &fetch.body_preferences {
            preference.write(w)?;
        }
        w.end()?;
    }
    w.end()
}

/// Which item a streamed value belongs to: the identifiers the response gave before the
/// item's properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemRef {
    pub collection_id: Option<String>,
    pub server_id: Option<String>,
    pub long_id: Option<String>,
    pub file_reference: Option<String>,
}

/// Which large value of an item is being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// `itemoperations:Data`: an attachment's or document's content (base64 on the wire,
    /// decoded before it reaches the sink; raw bytes in a multipart part).
    Content,
    /// `airsyncbase:Body/Data`: the item's body as the server sent it (text, or MIME).
    Body,
}

/// Picks the sink for each large value of each item in a response.
pub trait SinkChooser {
    fn sink(&mut self, item: &ItemRef, kind: DataKind) -> &mut dyn Sink;
}

/// Sends every value to one sink (e.g. a fetch of a single attachment).
pub struct OneSink<'a>(pub &'a mut dyn Sink);

impl SinkChooser for OneSink<'_> {
    fn sink(&mut self, _item: &ItemRef, _kind: DataKind) -> &mut dyn Sink {
        self.0
    }
}

/// A value held in a multipart response's binary part instead of inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRef {
    /// Index into the multipart table (1 and up; 0 is the WBXML).
    pub part: u32,
    pub kind: DataKind,
    /// Bytes streamed, once [`read_multipart_response`] has streamed the part.
    pub streamed: Option<u64>,
}

/// What a response said about an item's body (MS-ASAIRS 2.2.2.9). The data itself went to
/// the sink for [`DataKind::Body`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyInfo {
    pub body_type: Option<u8>,
    pub estimated_size: Option<u64>,
    pub truncated: Option<bool>,
    /// Bytes of body data streamed to the sink (`None`: no inline Data).
    pub data_len: Option<u64>,
    pub preview: Option<String>,
}

/// An item's properties, with the large values streamed away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemProperties {
    /// `itemoperations:Range` of the returned data ("0-99").
    pub range: Option<String>,
    /// `itemoperations:Total`: the whole size of the attachment or document.
    pub total: Option<u64>,
    /// Bytes of `itemoperations:Data` streamed to the sink, decoded.
    pub data_len: Option<u64>,
    /// `itemoperations:Version` of a document.
    pub version: Option<String>,
    pub content_type: Option<String>,
    pub body: Option<BodyInfo>,
    /// Values held in multipart parts.
    pub parts: Vec<PartRef>,
    /// Every other property (email:Subject, ...), as bounded trees.
    pub other: Vec<Node>,
}

/// Reads a `Properties` element: Data and Body/Data stream to `sinks` for `item`, other
/// properties become trees (at most [`Limits::max_tree_nodes`] of them).
pub fn read_properties<R: Read>(
    p: &mut Parser<R>,
    item: &ItemRef,
    sinks: &mut dyn SinkChooser,
) -> Result<ItemProperties> {
    let mut props = ItemProperties::default();
    while let Some(child) = p.next_child()? {
        match child.tag {
            RANGE => props.range = Some(p.text(child)?),
            TOTAL => props.total = Some(p.number(child)?),
            VERSION => props.version = Some(p.text(child)?),
            DATA => {
                let mut decoder = Base64Sink::new(sinks.sink(item, DataKind::Content));
                p.stream(child, &mut decoder)?;
                props.data_len = Some(decoder.written);
            }
            PART => props.parts.push(read_part(p, child, DataKind::Content)?),
            CONTENT_TYPE => props.content_type = Some(p.text(child)?),
            BODY => props.body = Some(read_body(p, item, sinks, &mut props.parts)?),
            _ => {
                if props.other.len() >= p.limits().max_tree_nodes {
                    return Err(Error::Limit {
                        what: "the number of item properties",
                        limit: p.limits().max_tree_nodes as u64,
                        offset: child.offset,
                    });
                }
                props.other.push(p.tree(child)?);
            }
        }
    }
    Ok(props)
}

fn read_part<R: Read>(p: &mut Parser<R>, child: Child, kind: DataKind) -> Result<PartRef> {
    Ok(PartRef {
        part: p.number(child)?,
        kind,
        streamed: None,
    })
}

fn read_body<R: Read>(
    p: &mut Parser<R>,
    item: &ItemRef,
    sinks: &mut dyn SinkChooser,
    parts: &mut Vec<PartRef>,
) -> Result<BodyInfo> {
    let mut body = BodyInfo::default();
    while let Some(child) = p.next_child()? {
        match child.tag {
            TYPE => body.body_type = Some(p.number(child)?),
            ESTIMATED_DATA_SIZE => body.estimated_size = Some(p.number(child)?),
            TRUNCATED => body.truncated = Some(read_bool(p, child)?),
            BODY_DATA => {
                body.data_len = Some(p.stream(child, sinks.sink(item, DataKind::Body))?);
            }
            PART => parts.push(read_part(p, child, DataKind::Body)?),
            PREVIEW => body.preview = Some(p.text(child)?),
            _ => p.skip(child)?,
        }
    }
    Ok(body)
}

/// A boolean as EAS writes it: "1"/"0" (some servers write "true"/"false").
pub(crate) fn read_bool<R: Read>(p: &mut Parser<R>, child: Child) -> Result<bool> {
    let text = p.text(child)?;
    match text.trim() {
        "1" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "false" | "FALSE" | "False" | "" => Ok(false),
        other => Err(Error::Protocol {
            offset: child.offset,
            message: format!("{} is not a boolean: {other:?}", child.tag),
        }),
    }
}

/// Decodes base64 arriving in arbitrary pieces and hands the bytes on.
struct Base64Sink<'a> {
    inner: &'a mut dyn Sink,
    /// Up to three significant characters left over from the last piece.
    carry: [u8; 4],
    carried: usize,
    written: u64,
}

impl<'a> Base64Sink<'a> {
    fn new(inner: &'a mut dyn Sink) -> Self {
        Base64Sink {
            inner,
            carry: [0; 4],
            carried: 0,
            written: 0,
        }
    }

    fn decode_block(&mut self, block: &[u8]) -> std::io::Result<()> {
        use base64::Engine;
        let mut out = [0u8; 768];
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(block, &mut out)
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the attachment data is not valid base64: {e}"),
                )
            })?;
        self.written += n as u64;
        self.inner.chunk(&out[..n])
    }
}

impl Sink for Base64Sink<'_> {
    fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        // Gather significant characters in groups of 4, decoding 1024 at a time.
        let mut block = [0u8; 1024];
        let mut len = 0;
        block[..self.carried].copy_from_slice(&self.carry[..self.carried]);
        len += self.carried;
        self.carried = 0;
        for &byte in data {
            if byte.is_ascii_whitespace() {
                continue;
            }
            block[len] = byte;
            len += 1;
            if len == block.len() {
                self.decode_block(&block)?;
                len = 0;
            }
        }
        let whole = len - len % 4;
        if whole > 0 {
            self.decode_block(&block[..whole])?;
        }
        self.carried = len - whole;
        self.carry[..self.carried].copy_from_slice(&block[whole..len]);
        Ok(())
    }

    fn end(&mut self, _total: u64) -> std::io::Result<()> {
        if self.carried != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the attachment data is not valid base64: its length is not a multiple of 4",
            ));
        }
        self.inner.end(self.written)
    }
}

/// The result of one Fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResult {
    pub status: Status,
    pub item: ItemRef,
    pub class: Option<String>,
    pub properties: Option<ItemProperties>,
}

/// The result of one operation, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationResult {
    Fetch(Box<FetchResult>),
    EmptyFolderContents {
        status: Status,
        collection_id: Option<String>,
    },
    Move {
        status: Status,
        conversation_id: Option<Vec<u8>>,
    },
}

/// An ItemOperations response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub results: Vec<OperationResult>,
}

impl HasStatus for Response {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.common()
    }
}

impl Response {
    /// What to do about the global status.
    pub fn action(&self) -> Action {
        self.status.action()
    }
}

/// Reads an ItemOperations response (a plain WBXML body, or part 0 of a multipart one, in
/// which case the `Part` references are collected but nothing is streamed for them).
pub fn read_response<R: Read>(p: &mut Parser<R>, sinks: &mut dyn SinkChooser) -> Result<Response> {
    if p.root(ITEM_OPERATIONS)?.is_none() {
        return Err(p.error("the ItemOperations response is empty"));
    }
    let mut status = None;
    let mut results = Vec::new();
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(Status::read(p, child)?),
            RESPONSE => {
                while let Some(op) = p.next_child()? {
                    p.check_entries(
                        results.len(),
                        "the number of ItemOperations results",
                        op.offset,
                    )?;
                    match op.tag {
                        FETCH => {
                            results.push(OperationResult::Fetch(Box::new(read_fetch(p, sinks)?)))
                        }
                        EMPTY_FOLDER_CONTENTS => results.push(read_empty_folder(p)?),
                        MOVE => results.push(read_move(p)?),
                        _ => p.skip(op)?,
                    }
                }
            }
            _ => p.skip(child)?,
        }
    }
    p.finish()?;
    let status = status.ok_or_else(|| p.error("the ItemOperations response has no Status"))?;
    Ok(Response { status, results })
}

fn read_fetch<R: Read>(p: &mut Parser<R>, sinks: &mut dyn SinkChooser) -> Result<FetchResult> {
    let mut status = None;
    let mut item = ItemRef::default();
    let mut class = None;
    let mut properties = None;
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(Status::read(p, child)?),
            COLLECTION_ID => item.collection_id = Some(p.text(child)?),
            SERVER_ID => item.server_id = Some(p.text(child)?),
            LONG_ID => item.long_id = Some(p.text(child)?),
            FILE_REFERENCE => item.file_reference = Some(p.text(child)?),
            CLASS => class = Some(p.text(child)?),
            PROPERTIES => properties = Some(read_properties(p, &item, sinks)?),
            _ => p.skip(child)?,
        }
    }
    let status = status.ok_or_else(|| p.error("a Fetch result has no Status"))?;
    Ok(FetchResult {
        status,
        item,
        class,
        properties,
    })
}

fn read_empty_folder<R: Read>(p: &mut Parser<R>) -> Result<OperationResult> {
    let (status, collection_id) = read_status_and_field(
        p,
        COLLECTION_ID,
        Parser::text,
        "an EmptyFolderContents result",
    )?;
    Ok(OperationResult::EmptyFolderContents {
        status,
        collection_id,
    })
}

fn read_move<R: Read>(p: &mut Parser<R>) -> Result<OperationResult> {
    let (status, conversation_id) =
        read_status_and_field(p, CONVERSATION_ID, Parser::bytes, "a Move result")?;
    Ok(OperationResult::Move {
        status,
        conversation_id,
    })
}

/// Reads a result made of a Status and at most one `field` (read by `read_field`); `what`
/// names the result in the error when the Status is missing.
fn read_status_and_field<R: Read, T>(
    p: &mut Parser<R>,
    field: Tag,
    read_field: fn(&mut Parser<R>, Child) -> Result<T>,
    what: &str,
) -> Result<(Status, Option<T>)> {
    let mut status = None;
    let mut value = None;
    while let Some(child) = p.next_child()? {
        if child.tag == STATUS {
            status = Some(Status::read(p, child)?);
        } else if child.tag == field {
            value = Some(read_field(p, child)?);
        } else {
            p.skip(child)?;
        }
    }
    let status = status.ok_or_else(|| p.error(format!("{what} has no Status")))?;
    Ok((status, value))
}

/// Reads a multipart ItemOperations response: part 0 as WBXML (inline values stream as in
/// [`read_response`]), then every further part, in body order, to the sink chosen for the
/// item whose `Part` element named it. Parts nothing refers to are skipped. A reference to
/// part 0, to a part the table lacks, or two references to one part are errors.
pub fn read_multipart_response<R: Read>(
    body: &mut MultipartReader<R>,
    limits: Limits,
    sinks: &mut dyn SinkChooser,
) -> Result<Response> {
    let mut response = {
        let mut p = Parser::with_limits(body.part(0)?, limits);
        read_response(&mut p, sinks)?
    };
    // For each part, the result and the position of its reference.
    let mut owners: Vec<Option<(usize, usize)>> = vec![None; body.part_count()];
    for (result_index, result) in response.results.iter().enumerate() {
        let OperationResult::Fetch(fetch) = result else {
            continue;
        };
        let Some(props) = &fetch.properties else {
            continue;
        };
        for (ref_index, part_ref) in props.parts.iter().enumerate() {
            let part = part_ref.part as usize;
            if part == 0 || part >= owners.len() {
                return Err(Error::Protocol {
                    offset: 0,
                    message: format!(
                        "the response refers to part {part}, but its table has parts 1 to {}",
                        owners.len() - 1
                    ),
                });
            }
            if owners[part].is_some() {
                return Err(Error::Protocol {
                    offset: 0,
                    message: format!("the response refers to part {part} twice"),
                });
            }
            owners[part] = Some((result_index, ref_index));
        }
    }
    for (part, owner) in owners.iter().enumerate().skip(1) {
        let Some((result_index, ref_index)) = *owner else {
            body.skip_part(part)?;
            continue;
        };
        let OperationResult::Fetch(fetch) = &mut response.results[result_index] else {
            unreachable!("owners only point at fetch results");
        };
        let Some(props) = fetch.properties.as_mut() else {
            unreachable!("owners only point at fetch results with properties");
        };
        let kind = props.parts[ref_index].kind;
        let streamed = body.stream_part(part, sinks.sink(&fetch.item, kind))?;
        props.parts[ref_index].streamed = Some(streamed);
    }
    Ok(response)
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::Limits;
    use crate::eas::item::BodyType;
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};
    use std::collections::HashMap;

    /// Collects every streamed value per (item id, kind), remembering chunk sizes.
    #[derive(Default)]
    pub(crate) struct Collect {
        pub values: HashMap<(String, DataKind), Vec<u8>>,
        pub ended: Vec<(String, DataKind, u64)>,
        pub chunks: Vec<usize>,
        current: Option<(String, DataKind)>,
        scratch: Recorder,
    }

    #[derive(Default)]
    pub(crate) struct Recorder {
        data: Vec<u8>,
        chunks: Vec<usize>,
        ended: Option<u64>,
    }

    impl Sink for Recorder {
        fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
            self.data.extend_from_slice(data);
            self.chunks.push(data.len());
            Ok(())
        }
        fn end(&mut self, total: u64) -> std::io::Result<()> {
            self.ended = Some(total);
            Ok(())
        }
    }

    impl Collect {
        pub fn flush(&mut self) {
            if let Some(key) = self.current.take() {
                let rec = core::mem::take(&mut self.scratch);
                self.chunks.extend(rec.chunks);
                if let Some(total) = rec.ended {
                    self.ended.push((key.0.clone(), key.1, total));
                }
                self.values.entry(key).or_default().extend(rec.data);
            }
        }
        pub fn get(&mut self, id: &str, kind: DataKind) -> Option<Vec<u8>> {
            self.flush();
            self.values.get(&(id.to_string(), kind)).cloned()
        }
    }

    pub(crate) fn item_key(item: &ItemRef) -> String {
        item.server_id
            .clone()
            .or_else(|| item.file_reference.clone())
            .or_else(|| item.long_id.clone())
            .unwrap_or_default()
    }

    impl SinkChooser for Collect {
        fn sink(&mut self, item: &ItemRef, kind: DataKind) -> &mut dyn Sink {
            self.flush();
            self.current = Some((item_key(item), kind));
            &mut self.scratch
        }
    }

    #[test]
    fn fetch_request_shapes() {
        let mut fetch = Fetch::new(FetchTarget::Item {
            collection_id: "5".into(),
            server_id: "5:1".into(),
        });
        fetch.mime_support = Some(2);
        fetch.body_preferences = vec![BodyPreference {
            body_type: BodyType::Mime,
            truncation_size: Some(100_000),
            all_or_none: true,
            preview: None,
        }];
        let req = request(ProtocolVersion::V12_1, &[Operation::Fetch(fetch)]).unwrap();
        assert_eq!(req.command, Command::ItemOperations);
        assert_eq!(
            request_xml(&req),
            "<ItemOperations xmlns=\"ItemOperations:\">\n  <Fetch>\n    <Store>Mailbox</Store>\n    \
             <airsync:CollectionId xmlns:airsync=\"AirSync:\">5</airsync:CollectionId>\n    \
             <airsync:ServerId xmlns:airsync=\"AirSync:\">5:1</airsync:ServerId>\n    <Options>\n      \
             <airsync:MIMESupport xmlns:airsync=\"AirSync:\">2</airsync:MIMESupport>\n      \
             <airsyncbase:BodyPreference xmlns:airsyncbase=\"AirSyncBase:\">\n        \
             <airsyncbase:Type>4</airsyncbase:Type>\n        \
             <airsyncbase:TruncationSize>100000</airsyncbase:TruncationSize>\n        \
             <airsyncbase:AllOrNone>1</airsyncbase:AllOrNone>\n      \
             </airsyncbase:BodyPreference>\n    </Options>\n  </Fetch>\n</ItemOperations>"
        );

        let mut attachment = Fetch::new(FetchTarget::Attachment {
            file_reference: "5%3a1%3a0".into(),
        });
        attachment.range = Some((0, 1023));
        let by_long_id = Fetch::new(FetchTarget::SearchResult {
            long_id: "RgAAAA".into(),
        });
        let req = request(
            ProtocolVersion::V16_1,
            &[
                Operation::Fetch(attachment),
                Operation::Fetch(by_long_id),
                Operation::EmptyFolderContents {
                    collection_id: "7".into(),
                    delete_sub_folders: true,
                },
                Operation::Move {
                    conversation_id: vec![0xAB, 0xCD],
                    destination_folder: "9".into(),
                    move_always: true,
                },
            ],
        )
        .unwrap();
        let xml = request_xml(&req);
        assert!(xml.contains("<airsyncbase:FileReference xmlns:airsyncbase=\"AirSyncBase:\">5%3a1%3a0</airsyncbase:FileReference>\n    <Options>\n      <Range>0-1023</Range>\n    </Options>"), "{xml}");
        assert!(
            xml.contains("<search:LongId xmlns:search=\"Search:\">RgAAAA</search:LongId>"),
            "{xml}"
        );
        assert!(xml.contains("<EmptyFolderContents>\n    <airsync:CollectionId xmlns:airsync=\"AirSync:\">7</airsync:CollectionId>\n    <Options>\n      <DeleteSubFolders/>\n    </Options>\n  </EmptyFolderContents>"), "{xml}");
        assert!(xml.contains("<Move>\n    <ConversationId opaque=\"base64\">q80=</ConversationId>\n    <DstFldId>9</DstFldId>\n    <Options>\n      <MoveAlways/>\n    </Options>\n  </Move>"), "{xml}");
    }

    #[test]
    fn version_limits_are_enforced() {
        let move_op = Operation::Move {
            conversation_id: vec![1],
            destination_folder: "9".into(),
            move_always: false,
        };
        assert!(matches!(
            request(ProtocolVersion::V12_1, core::slice::from_ref(&move_op)),
            Err(Error::Write(_))
        ));
        assert!(request(ProtocolVersion::V14_0, &[move_op]).is_ok());
        let mut fetch = Fetch::new(FetchTarget::SearchResult {
            long_id: "x".into(),
        });
        fetch.body_preferences = vec![BodyPreference {
            preview: Some(100),
            ..BodyPreference::new(BodyType::Html)
        }];
        assert!(request(ProtocolVersion::V12_1, &[Operation::Fetch(fetch.clone())]).is_err());
        assert!(request(ProtocolVersion::V14_0, &[Operation::Fetch(fetch)]).is_ok());
        assert!(request(ProtocolVersion::V14_1, &[]).is_err());
    }

    const FETCH_RESPONSE: &str = "<ItemOperations xmlns=\"ItemOperations:\" xmlns:airsync=\"AirSync:\" xmlns:airsyncbase=\"AirSyncBase:\" xmlns:email=\"Email:\">
  <Status>1</Status>
  <Response>
    <Fetch>
      <Status>1</Status>
      <airsync:CollectionId>5</airsync:CollectionId>
      <airsync:ServerId>5:1</airsync:ServerId>
      <airsync:Class>Email</airsync:Class>
      <Properties>
        <email:Subject>Hello</email:Subject>
        <airsyncbase:Body>
          <airsyncbase:Type>2</airsyncbase:Type>
          <airsyncbase:EstimatedDataSize>11</airsyncbase:EstimatedDataSize>
          <airsyncbase:Truncated>0</airsyncbase:Truncated>
          <airsyncbase:Data>&lt;b&gt;hi&lt;/b&gt;</airsyncbase:Data>
          <airsyncbase:Preview>hi</airsyncbase:Preview>
        </airsyncbase:Body>
        <airsyncbase:NativeBodyType>2</airsyncbase:NativeBodyType>
      </Properties>
    </Fetch>
    <Fetch>
      <Status>1</Status>
      <airsyncbase:FileReference>5%3a1%3a0</airsyncbase:FileReference>
      <Properties>
        <airsyncbase:ContentType>text/plain</airsyncbase:ContentType>
        <Range>0-10</Range>
        <Total>11</Total>
        <Data>aGVsbG8g
d29ybGQ=</Data>
      </Properties>
    </Fetch>
    <Fetch>
      <Status>15</Status>
      <airsyncbase:FileReference>gone</airsyncbase:FileReference>
    </Fetch>
    <EmptyFolderContents>
      <Status>1</Status>
      <airsync:CollectionId>7</airsync:CollectionId>
    </EmptyFolderContents>
    <Move>
      <Status>1</Status>
      <ConversationId opaque=\"base64\">q80=</ConversationId>
    </Move>
  </Response>
</ItemOperations>";

    #[test]
    fn fetch_response_streams_values_to_chosen_sinks() {
        let bytes = wbxml_from_xml(FETCH_RESPONSE);
        let mut sinks = Collect::default();
        let response = read_response(&mut parser(&bytes), &mut sinks).unwrap();
        assert_eq!(response.status, Status::Success);
        assert_eq!(response.common_status(), None);
        assert_eq!(response.results.len(), 5);
        let OperationResult::Fetch(item) = &response.results[0] else {
            panic!()
        };
        assert_eq!(item.item.server_id.as_deref(), Some("5:1"));
        assert_eq!(item.item.collection_id.as_deref(), Some("5"));
        assert_eq!(item.class.as_deref(), Some("Email"));
        let props = item.properties.as_ref().unwrap();
        let body = props.body.as_ref().unwrap();
        assert_eq!(body.body_type, Some(2));
        assert_eq!(body.estimated_size, Some(11));
        assert_eq!(body.truncated, Some(false));
        assert_eq!(body.data_len, Some(9));
        assert_eq!(body.preview.as_deref(), Some("hi"));
        assert_eq!(props.other.len(), 2);
        assert_eq!(
            props.other[0].text(),
            Some("Hello"),
            "email:Subject kept as a tree"
        );
        assert_eq!(sinks.get("5:1", DataKind::Body).unwrap(), b"<b>hi</b>");

        let OperationResult::Fetch(att) = &response.results[1] else {
            panic!()
        };
        let props = att.properties.as_ref().unwrap();
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
        assert_eq!(props.range.as_deref(), Some("0-10"));
        assert_eq!(props.total, Some(11));
        assert_eq!(props.data_len, Some(11));
        assert_eq!(
            sinks.get("5%3a1%3a0", DataKind::Content).unwrap(),
            b"hello world"
        );
        assert!(
            sinks
                .ended
                .contains(&("5%3a1%3a0".into(), DataKind::Content, 11))
        );

        let OperationResult::Fetch(gone) = &response.results[2] else {
            panic!()
        };
        assert_eq!(gone.status, Status::InvalidAttachment);
        assert_eq!(gone.status.action(), Action::ItemGone);
        assert!(gone.properties.is_none());
        assert_eq!(
            response.results[3],
            OperationResult::EmptyFolderContents {
                status: Status::Success,
                collection_id: Some("7".into())
            }
        );
        assert_eq!(
            response.results[4],
            OperationResult::Move {
                status: Status::Success,
                conversation_id: Some(vec![0xAB, 0xCD])
            }
        );
    }

    #[test]
    fn unknown_elements_are_skipped_and_global_errors_reported() {
        let xml = "<ItemOperations xmlns=\"ItemOperations:\" xmlns:airsync=\"AirSync:\">
  <Schema>x</Schema>
  <Status>142</Status>
</ItemOperations>";
        let bytes = wbxml_from_xml(xml);
        let response = read_response(&mut parser(&bytes), &mut Collect::default()).unwrap();
        assert_eq!(
            response.common_status(),
            CommonStatus::from_code(142),
            "common statuses reach HasStatus"
        );
        assert_eq!(response.action(), Action::Reprovision);
        assert!(response.results.is_empty());
    }

    #[test]
    fn empty_body_and_missing_status_are_errors() {
        assert!(read_response(&mut parser(&[]), &mut Collect::default()).is_err());
        let bytes = wbxml_from_xml(
            "<ItemOperations xmlns=\"ItemOperations:\">\n  <Response/>\n</ItemOperations>",
        );
        let err = read_response(&mut parser(&bytes), &mut Collect::default()).unwrap_err();
        assert!(err.to_string().contains("no Status"), "{err}");
    }

    #[test]
    fn truncated_input_is_an_error_at_every_length() {
        let bytes = wbxml_from_xml(FETCH_RESPONSE);
        for len in 0..bytes.len() {
            let result = read_response(&mut parser(&bytes[..len]), &mut Collect::default());
            assert!(result.is_err(), "a body cut at {len} bytes was accepted");
        }
    }

    #[test]
    fn bad_base64_is_a_sink_error() {
        let xml = "<ItemOperations xmlns=\"ItemOperations:\" xmlns:airsyncbase=\"AirSyncBase:\">
  <Status>1</Status>
  <Response>
    <Fetch>
      <Status>1</Status>
      <airsyncbase:FileReference>a</airsyncbase:FileReference>
      <Properties>
        <Data>aGVsb</Data>
      </Properties>
    </Fetch>
  </Response>
</ItemOperations>";
        let bytes = wbxml_from_xml(xml);
        let err = read_response(&mut parser(&bytes), &mut Collect::default()).unwrap_err();
        assert!(matches!(err, Error::Sink(_)), "{err}");
        let bytes = wbxml_from_xml(&xml.replace("aGVsb", "a*Vs"));
        assert!(read_response(&mut parser(&bytes), &mut Collect::default()).is_err());
    }

    #[test]
    fn base64_decoding_survives_any_split() {
        let encoded = b"aGVs bG8g\nd29y bGQh IQ==";
        for split in 0..encoded.len() {
            let mut out = Vec::new();
            let mut sink = Base64Sink::new(&mut out);
            sink.chunk(&encoded[..split]).unwrap();
            sink.chunk(&encoded[split..]).unwrap();
            sink.end(0).unwrap();
            assert_eq!(out, b"hello world!!", "split at {split}");
        }
        // Longer than one decoding block.
        let long = "QUJD".repeat(1000);
        let mut out = Vec::new();
        let mut sink = Base64Sink::new(&mut out);
        sink.chunk(long.as_bytes()).unwrap();
        sink.end(0).unwrap();
        assert_eq!(out, "ABC".repeat(1000).as_bytes());
    }

    #[test]
    fn property_count_is_limited() {
        let mut xml = String::from(
            "<ItemOperations xmlns=\"ItemOperations:\" xmlns:email=\"Email:\">\n  <Status>1</Status>\n  <Response>\n    <Fetch>\n      <Status>1</Status>\n      <Properties>\n",
        );
        for _ in 0..5 {
            xml.push_str("        <email:Subject>x</email:Subject>\n");
        }
        xml.push_str("      </Properties>\n    </Fetch>\n  </Response>\n</ItemOperations>");
        let bytes = wbxml_from_xml(&xml);
        let limits = Limits {
            max_tree_nodes: 4,
            ..Limits::default()
        };
        let mut p = Parser::with_limits(&bytes[..], limits);
        let err = read_response(&mut p, &mut Collect::default()).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
    }

    #[test]
    fn every_status_code_round_trips() {
        for code in 1..=18 {
            let status = Status::from_code(code);
            assert_eq!(status.code(), code);
            assert_eq!(matches!(status, Status::Unknown(_)), code == 13, "{code}");
        }
        assert_eq!(Status::from_code(3).action(), Action::RetryLater);
        assert_eq!(Status::from_code(8).action(), Action::FixRequest);
        assert_eq!(Status::from_code(17).action(), Action::Proceed);
        assert_eq!(
            Status::from_code(111),
            Status::Common(CommonStatus::ServerErrorRetryLater)
        );
        assert_eq!(Status::from_code(99), Status::Unknown(99));
        assert_eq!(Status::from_code(99).action(), Action::FixRequest);
    }
}

#[cfg(all(test, feature = "xml"))]
mod multipart_tests {
    use super::tests::Collect;
    use super::*;
    use crate::eas::multipart::tests::{Trickle, build};
    use crate::eas::multipart::{DEFAULT_MAX_PARTS, MultipartReader};
    use crate::eas::testutil::wbxml_from_xml;

    const PART0: &str = "<ItemOperations xmlns=\"ItemOperations:\" xmlns:airsync=\"AirSync:\" xmlns:airsyncbase=\"AirSyncBase:\">
  <Status>1</Status>
  <Response>
    <Fetch>
      <Status>1</Status>
      <airsync:CollectionId>5</airsync:CollectionId>
      <airsync:ServerId>5:1</airsync:ServerId>
      <Properties>
        <airsyncbase:Body>
          <airsyncbase:Type>4</airsyncbase:Type>
          <Part>2</Part>
        </airsyncbase:Body>
      </Properties>
    </Fetch>
    <Fetch>
      <Status>1</Status>
      <airsyncbase:FileReference>att-1</airsyncbase:FileReference>
      <Properties>
        <airsyncbase:ContentType>application/octet-stream</airsyncbase:ContentType>
        <Part>1</Part>
      </Properties>
    </Fetch>
  </Response>
</ItemOperations>";

    fn read(body: &[u8], step: usize) -> (Result<Response>, Collect) {
        let mut sinks = Collect::default();
        let result = MultipartReader::new(
            Trickle { data: body, step },
            DEFAULT_MAX_PARTS,
            Some(body.len() as u64),
        )
        .and_then(|mut mp| read_multipart_response(&mut mp, Limits::default(), &mut sinks));
        (result, sinks)
    }

    #[test]
    fn parts_stream_to_the_sinks_their_references_chose() {
        let wbxml = wbxml_from_xml(PART0);
        let attachment: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let mime = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n".repeat(50);
        let body = build(&[&wbxml, &attachment, &mime], 2);
        for step in [1, 5, 64, 100_000] {
            let (result, mut sinks) = read(&body, step);
            let response = result.unwrap();
            assert_eq!(response.status, Status::Success);
            assert_eq!(sinks.get("att-1", DataKind::Content).unwrap(), attachment);
            assert_eq!(sinks.get("5:1", DataKind::Body).unwrap(), mime);
            assert!(
                sinks.chunks.iter().all(|&n| n <= step.max(1)),
                "step {step}"
            );
            let OperationResult::Fetch(item) = &response.results[0] else {
                panic!()
            };
            let props = item.properties.as_ref().unwrap();
            assert_eq!(props.body.as_ref().unwrap().body_type, Some(4));
            assert_eq!(
                props.parts,
                vec![PartRef {
                    part: 2,
                    kind: DataKind::Body,
                    streamed: Some(mime.len() as u64)
                }]
            );
            let OperationResult::Fetch(att) = &response.results[1] else {
                panic!()
            };
            assert_eq!(
                att.properties.as_ref().unwrap().parts[0].streamed,
                Some(attachment.len() as u64)
            );
        }
    }

    #[test]
    fn unreferenced_parts_are_skipped() {
        let wbxml = wbxml_from_xml(&PART0.replace("<Part>2</Part>", "<Part>3</Part>"));
        let body = build(&[&wbxml, b"attachment", b"unused", b"mime"], 0);
        let (result, mut sinks) = read(&body, 3);
        result.unwrap();
        assert_eq!(sinks.get("5:1", DataKind::Body).unwrap(), b"mime");
        assert_eq!(
            sinks.get("att-1", DataKind::Content).unwrap(),
            b"attachment"
        );
        assert_eq!(sinks.values.len(), 2);
    }

    #[test]
    fn bad_references_are_errors() {
        let attachment = b"data".as_slice();
        for (from, to, expected) in [
            ("<Part>2</Part>", "<Part>0</Part>", "refers to part 0"),
            ("<Part>2</Part>", "<Part>7</Part>", "refers to part 7"),
            ("<Part>2</Part>", "<Part>1</Part>", "refers to part 1 twice"),
        ] {
            let wbxml = wbxml_from_xml(&PART0.replace(from, to));
            let body = build(&[&wbxml, attachment, attachment], 0);
            let err = read(&body, 16).0.unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn truncated_multipart_bodies_are_errors() {
        let wbxml = wbxml_from_xml(PART0);
        let body = build(&[&wbxml, b"attachment", b"mime"], 0);
        for cut in 0..body.len() {
            let mut sinks = Collect::default();
            let result = MultipartReader::new(&body[..cut], DEFAULT_MAX_PARTS, None)
                .and_then(|mut mp| read_multipart_response(&mut mp, Limits::default(), &mut sinks));
            assert!(result.is_err(), "a body cut at {cut} was accepted");
        }
    }
}
