//! The Sync command (MS-ASCMD 2.2.1.21) for email, contacts, calendar, tasks and notes.
//!
//! The request side is a typed [`SyncRequest`] written for the negotiated version. The
//! response side streams: [`read_response`] walks the response once and hands every server
//! change and every answer to a client change to a [`SyncHandler`] as soon as it is read,
//! so a response with a million Adds needs memory for one item only. Item properties come as
//! a generic [`Node`] tree (mapped to vCard/iCal one layer up); bodies, MIME and pictures go
//! to the [`Sink`] the handler offers, piece by piece.

use embedded_io::Read;

use super::command::{Body, Command, Request, write_wbxml};
use super::error::{Error, Result};
use super::item::{
    self, BodyPreference, Class, FilterType, ItemData, LargeValue, SinkSource, read_id,
};
use super::parse::{Child, Node, Parser};
use super::sink::Sink;
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

pub(crate) const SYNC: Tag = Tag::named(cp::AIRSYNC, "Sync");
pub(crate) const COLLECTIONS: Tag = Tag::named(cp::AIRSYNC, "Collections");
pub(crate) const COLLECTION: Tag = Tag::named(cp::AIRSYNC, "Collection");
pub(crate) const SYNC_KEY: Tag = Tag::named(cp::AIRSYNC, "SyncKey");
pub(crate) const COLLECTION_ID: Tag = Tag::named(cp::AIRSYNC, "CollectionId");
pub(crate) const CLASS: Tag = Tag::named(cp::AIRSYNC, "Class");
pub(crate) const STATUS: Tag = Tag::named(cp::AIRSYNC, "Status");
pub(crate) const MORE_AVAILABLE: Tag = Tag::named(cp::AIRSYNC, "MoreAvailable");
pub(crate) const COMMANDS: Tag = Tag::named(cp::AIRSYNC, "Commands");
pub(crate) const RESPONSES: Tag = Tag::named(cp::AIRSYNC, "Responses");
pub(crate) const ADD: Tag = Tag::named(cp::AIRSYNC, "Add");
pub(crate) const CHANGE: Tag = Tag::named(cp::AIRSYNC, "Change");
pub(crate) const DELETE: Tag = Tag::named(cp::AIRSYNC, "Delete");
pub(crate) const SOFT_DELETE: Tag = Tag::named(cp::AIRSYNC, "SoftDelete");
pub(crate) const FETCH: Tag = Tag::named(cp::AIRSYNC, "Fetch");
pub(crate) const SERVER_ID: Tag = Tag::named(cp::AIRSYNC, "ServerId");
pub(crate) const CLIENT_ID: Tag = Tag::named(cp::AIRSYNC, "ClientId");
pub(crate) const APPLICATION_DATA: Tag = Tag::named(cp::AIRSYNC, "ApplicationData");
pub(crate) const GET_CHANGES: Tag = Tag::named(cp::AIRSYNC, "GetChanges");
pub(crate) const WINDOW_SIZE: Tag = Tag::named(cp::AIRSYNC, "WindowSize");
pub(crate) const DELETES_AS_MOVES: Tag = Tag::named(cp::AIRSYNC, "DeletesAsMoves");
pub(crate) const CONVERSATION_MODE: Tag = Tag::named(cp::AIRSYNC, "ConversationMode");
pub(crate) const OPTIONS: Tag = Tag::named(cp::AIRSYNC, "Options");
pub(crate) const FILTER_TYPE: Tag = Tag::named(cp::AIRSYNC, "FilterType");
pub(crate) const CONFLICT: Tag = Tag::named(cp::AIRSYNC, "Conflict");
pub(crate) const MIME_SUPPORT: Tag = Tag::named(cp::AIRSYNC, "MIMESupport");
pub(crate) const MIME_TRUNCATION: Tag = Tag::named(cp::AIRSYNC, "MIMETruncation");
pub(crate) const WAIT: Tag = Tag::named(cp::AIRSYNC, "Wait");
pub(crate) const HEARTBEAT_INTERVAL: Tag = Tag::named(cp::AIRSYNC, "HeartbeatInterval");
pub(crate) const PARTIAL: Tag = Tag::named(cp::AIRSYNC, "Partial");
pub(crate) const LIMIT: Tag = Tag::named(cp::AIRSYNC, "Limit");
pub(crate) const EMAIL_READ: Tag = Tag::named(cp::EMAIL, "Read");
pub(crate) const EMAIL_FLAG: Tag = Tag::named(cp::EMAIL, "Flag");
pub(crate) const EMAIL_FLAG_STATUS: Tag = Tag::named(cp::EMAIL, "Status");
pub(crate) const EMAIL_FLAG_TYPE: Tag = Tag::named(cp::EMAIL, "FlagType");
pub(crate) const EMAIL_COMPLETE_TIME: Tag = Tag::named(cp::EMAIL, "CompleteTime");
pub(crate) const TASKS_DATE_COMPLETED: Tag = Tag::named(cp::TASKS, "DateCompleted");

/// The SyncKey of a collection's first Sync (and after status 3).
pub const INITIAL_SYNC_KEY: &str = "0";
/// The largest WindowSize the spec allows.
pub const MAX_WINDOW_SIZE: u32 = 512;

// ---------------------------------------------------------------------------------------
// Request

/// Whether the server may send mail as MIME (MS-ASCMD MIMESupport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MimeSupport {
    /// 0: never send MIME.
    Never = 0,
    /// 1: MIME for S/MIME messages only.
    SmimeOnly = 1,
    /// 2: MIME for every message (with a BodyPreference of type 4).
    Always = 2,
}

/// Which side's version is kept when an item changed on both (MS-ASCMD 2.2.3.34
/// Conflict). Without the element the server keeps its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictResolution {
    /// 0: the client's object replaces the server's.
    ClientWins = 0,
    /// 1: the server's object replaces the client's; the client's change gets Status 7.
    ServerWins = 1,
}

/// The per-collection options of a Sync request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Age filter (email, calendar, tasks; see [`FilterType::applies_to`]).
    pub filter_type: Option<FilterType>,
    /// Preferred body formats, best first.
    pub body_preferences: Vec<BodyPreference>,
    /// Email: when MIME is wanted (with a type 4 body preference).
    pub mime_support: Option<MimeSupport>,
    /// Email: MIME truncation code 0–8 (0 everything truncated … 7 = 100 KB, 8 = none).
    pub mime_truncation: Option<u8>,
    /// How a change made on both sides is resolved (the server's default: server wins).
    pub conflict: Option<ConflictResolution>,
}

/// A change the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// A new item; the server answers with its ServerId for this ClientId.
    Add {
        client_id: String,
        data: Vec<Node>,
    },
    /// Changed properties of an item (all properties of its class for non-email).
    Change {
        server_id: String,
        data: Vec<Node>,
    },
    Delete {
        server_id: String,
    },
    /// Ask for one item in full (its ApplicationData comes in the Responses).
    Fetch {
        server_id: String,
    },
}

/// A mail flag (MS-ASEMAIL Flag) to set with [`mail_flag_change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailFlag {
    /// No flag.
    Clear,
    /// Flagged for follow-up; `flag_type` is the text shown, e.g. "Flag for follow up".
    Active { flag_type: String },
    /// Marked complete at `complete_time` (an EAS date-time, e.g. "2026-11-25T10:00:00.000Z").
    Complete { complete_time: String },
}

/// Marks mail `server_id` read or unread.
pub fn mail_read_change(server_id: &str, read: bool) -> ClientCommand {
    ClientCommand::Change {
        server_id: server_id.into(),
        data: vec![item::text_node(EMAIL_READ, if read { "1" } else { "0" })],
    }
}

/// Sets the flag of mail `server_id`.
pub fn mail_flag_change(server_id: &str, flag: &MailFlag) -> ClientCommand {
    ClientCommand::Change {
        server_id: server_id.into(),
        data: vec![mail_flag_node(flag)],
    }
}

/// The `email:Flag` element for `flag`.
pub fn mail_flag_node(flag: &MailFlag) -> Node {
    match flag {
        MailFlag::Clear => Node {
            tag: EMAIL_FLAG,
            value: super::parse::Value::Empty,
        },
        MailFlag::Active { flag_type } => item::container(
            EMAIL_FLAG,
            vec![
                item::text_node(EMAIL_FLAG_STATUS, "2"),
                item::text_node(EMAIL_FLAG_TYPE, flag_type.as_str()),
            ],
        ),
        MailFlag::Complete { complete_time } => item::container(
            EMAIL_FLAG,
            vec![
                item::text_node(EMAIL_FLAG_STATUS, "1"),
                item::text_node(EMAIL_COMPLETE_TIME, complete_time.as_str()),
                item::text_node(TASKS_DATE_COMPLETED, complete_time.as_str()),
            ],
        ),
    }
}

/// One collection of a Sync request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionRequest {
    pub sync_key: String,
    pub collection_id: String,
    /// The collection's class: written on 12.1 only (later versions know it from the
    /// folder).
    pub class: Option<Class>,
    pub deletes_as_moves: Option<bool>,
    pub get_changes: Option<bool>,
    /// Most changes per response for this collection (1–512).
    pub window_size: Option<u32>,
    /// Email on 14.0+: sync whole conversations.
    pub conversation_mode: Option<bool>,
    pub options: Option<SyncOptions>,
    pub commands: Vec<ClientCommand>,
}

impl CollectionRequest {
    /// A collection at `sync_key` with no options or commands yet.
    pub fn new(sync_key: &str, collection_id: &str, class: Class) -> Self {
        CollectionRequest {
            sync_key: sync_key.into(),
            collection_id: collection_id.into(),
            class: Some(class),
            deletes_as_moves: None,
            get_changes: None,
            window_size: None,
            conversation_mode: None,
            options: None,
            commands: Vec::new(),
        }
    }

    /// The first Sync of a collection (SyncKey "0"): only the key and the id are sent.
    pub fn initial(collection_id: &str, class: Class) -> Self {
        Self::new(INITIAL_SYNC_KEY, collection_id, class)
    }

    fn is_initial(&self) -> bool {
        self.sync_key == INITIAL_SYNC_KEY
    }
}

/// A Sync request. Send [`empty_request`] instead to repeat the previous request unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRequest {
    pub collections: Vec<CollectionRequest>,
    /// Minutes (1–59) the server may hold the request for changes; 12.1+.
    pub wait: Option<u32>,
    /// Seconds the server may hold the request (instead of `wait`); 14.0+.
    pub heartbeat_interval: Option<u32>,
    /// Most changes in the whole response (1–512); 12.1+.
    pub window_size: Option<u32>,
    /// The collections listed change the cached request instead of replacing it.
    pub partial: bool,
}

fn bool_text(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

fn check_window(size: Option<u32>) -> Result<()> {
    match size {
        Some(s) if s == 0 || s > MAX_WINDOW_SIZE => Err(Error::Write(format!(
            "WindowSize {s} is outside 1-{MAX_WINDOW_SIZE}"
        ))),
        _ => Ok(()),
    }
}

fn validate(req: &SyncRequest) -> Result<()> {
    if req.wait.is_some() && req.heartbeat_interval.is_some() {
        return Err(Error::Write(
            "a Sync request takes Wait or HeartbeatInterval, not both".into(),
        ));
    }
    if let Some(wait) = req.wait {
        if !(1..=59).contains(&wait) {
            return Err(Error::Write(format!("Wait {wait} is outside 1-59 minutes")));
        }
    }
    if req.collections.is_empty() {
        if !req.partial {
            return Err(Error::Write(
                "a Sync request needs collections or Partial (use empty_request to repeat \
                 the last one)"
                    .into(),
            ));
        }
        if req.wait.is_none() && req.heartbeat_interval.is_none() && req.window_size.is_none() {
            return Err(Error::Write(
                "a Partial Sync request without collections needs Wait, HeartbeatInterval or \
                 WindowSize"
                    .into(),
            ));
        }
    }
    check_window(req.window_size)?;
    for c in &req.collections {
        check_window(c.window_size)?;
        if c.is_initial() && !c.commands.is_empty() {
            return Err(Error::Write(format!(
                "collection {}: client changes need a SyncKey from a first Sync, not \"0\"",
                c.collection_id
            )));
        }
        if let Some(t) = c.options.as_ref().and_then(|o| o.mime_truncation) {
            if t > 8 {
                return Err(Error::Write(format!("MIMETruncation {t} is outside 0-8")));
            }
        }
    }
    Ok(())
}

/// Writes a Sync request for `version`. Elements the version lacks (HeartbeatInterval,
/// ConversationMode and Preview before 14.0) make it an error rather than being dropped.
pub fn request(version: ProtocolVersion, req: &SyncRequest) -> Result<Request> {
    validate(req)?;
    let with_class = version < ProtocolVersion::V14_0;
    // MS-ASNOTE: the Notes class exists from 14.0 on.
    if let Some(c) = req
        .collections
        .iter()
        .find(|c| with_class && c.class == Some(Class::Notes))
    {
        return Err(Error::Write(format!(
            "collection {}: notes sync needs protocol 14.0 or later, not {version}",
            c.collection_id
        )));
    }
    let body = write_wbxml(version, |w| {
        w.start(SYNC)?;
        if !req.collections.is_empty() {
            w.start(COLLECTIONS)?;
            for c in &req.collections {
                w.start(COLLECTION)?;
                if let (true, Some(class)) = (with_class, c.class) {
                    w.text_element(CLASS, class.as_str())?;
                }
                w.text_element(SYNC_KEY, &c.sync_key)?;
                w.text_element(COLLECTION_ID, &c.collection_id)?;
                if !c.is_initial() {
                    write_collection_body(w, c)?;
                }
                w.end()?;
            }
            w.end()?;
        }
        if let Some(wait) = req.wait {
            w.text_element(WAIT, &wait.to_string())?;
        }
        if let Some(hb) = req.heartbeat_interval {
            w.text_element(HEARTBEAT_INTERVAL, &hb.to_string())?;
        }
        if let Some(size) = req.window_size {
            w.text_element(WINDOW_SIZE, &size.to_string())?;
        }
        if req.partial {
            w.empty(PARTIAL)?;
        }
        w.end()
    })?;
    Ok(Request::wbxml(Command::Sync, body))
}

type WriteResult = core::result::Result<(), crate::wbxml::Error<core::convert::Infallible>>;

fn write_collection_body(
    w: &mut crate::wbxml::Writer<Vec<u8>>,
    c: &CollectionRequest,
) -> WriteResult {
    if let Some(d) = c.deletes_as_moves {
        w.text_element(DELETES_AS_MOVES, bool_text(d))?;
    }
    if let Some(g) = c.get_changes {
        w.text_element(GET_CHANGES, bool_text(g))?;
    }
    if let Some(size) = c.window_size {
        w.text_element(WINDOW_SIZE, &size.to_string())?;
    }
    if let Some(mode) = c.conversation_mode {
        w.text_element(CONVERSATION_MODE, bool_text(mode))?;
    }
    if let Some(o) = &c.options {
        w.start(OPTIONS)?;
        if let Some(f) = o.filter_type {
            w.text_element(FILTER_TYPE, &f.code().to_string())?;
        }
        for pref in &o.body_preferences {
            pref.write(w)?;
        }
        if let Some(c) = o.conflict {
            w.text_element(CONFLICT, &(c as u8).to_string())?;
        }
        if let Some(m) = o.mime_support {
            w.text_element(MIME_SUPPORT, &(m as u8).to_string())?;
        }
        if let Some(t) = o.mime_truncation {
            w.text_element(MIME_TRUNCATION, &t.to_string())?;
        }
        w.end()?;
    }
    if !c.commands.is_empty() {
        w.start(COMMANDS)?;
        for cmd in &c.commands {
            match cmd {
                ClientCommand::Add { client_id, data } => {
                    w.start(ADD)?;
                    w.text_element(CLIENT_ID, client_id)?;
                    write_application_data(w, data)?;
                }
                ClientCommand::Change { server_id, data } => {
                    w.start(CHANGE)?;
                    w.text_element(SERVER_ID, server_id)?;
                    write_application_data(w, data)?;
                }
                ClientCommand::Delete { server_id } => {
                    w.start(DELETE)?;
                    w.text_element(SERVER_ID, server_id)?;
                }
                ClientCommand::Fetch { server_id } => {
                    w.start(FETCH)?;
                    w.text_element(SERVER_ID, server_id)?;
                }
            }
            w.end()?;
        }
        w.end()?;
    }
    Ok(())
}

fn write_application_data(w: &mut crate::wbxml::Writer<Vec<u8>>, data: &[Node]) -> WriteResult {
    w.start(APPLICATION_DATA)?;
    for node in data {
        item::write_node(w, node)?;
    }
    w.end()
}

/// An empty Sync request (12.1+): the server repeats the last full request it cached for
/// this device. After status 13 send a full request instead.
pub fn empty_request(version: ProtocolVersion) -> Result<Request> {
    if version < ProtocolVersion::V12_1 {
        return Err(Error::Write(format!(
            "an empty Sync request needs protocol 12.1 or later, not {version}"
        )));
    }
    Ok(Request {
        command: Command::Sync,
        params: Vec::new(),
        body: Body::Empty,
    })
}

// ---------------------------------------------------------------------------------------
// Status

command_status! {
    /// A Sync status (MS-ASCMD 2.2.3.177.17), top-level, per collection or per client change.
    /// 12 maps to [`Action::SyncFolders`](super::Action::SyncFolders), 13 to [`Action::FixRequest`](super::Action::FixRequest) (see
    /// [`Status::needs_full_request`]); an unknown code to [`Action::RetryLater`](super::Action::RetryLater).
    pub enum Status {
        1 => Success, Proceed, "success";
        3 => InvalidSyncKey, ResyncState, "the SyncKey is invalid: sync the collection again from key \"0\"";
        4 => ProtocolError, FixRequest, "protocol error in the request";
        5 => ServerError, RetryLater, "server error: retry later";
        6 => ConversionError, FixRequest, "the client's item could not be converted (bad data): drop or fix the change";
        7 => Conflict, Proceed, "the item changed on both sides; the server's version wins and comes with the next Sync";
        8 => ObjectNotFound, ItemGone, "the item named does not exist (any more)";
        9 => CannotComplete, Blocked, "the Sync cannot be completed (the mailbox may be full): tell the user";
        12 => FolderHierarchyChanged, SyncFolders, "the folder hierarchy changed: FolderSync, then Sync again";
        13 => IncompleteRequest, FixRequest, "an empty or partial request the server has no cache for: send a full request";
        /// See [`SyncResponse::limit`].
        14 => InvalidWaitOrHeartbeat, FixRequest, "Wait or HeartbeatInterval outside the server's bounds";
        /// See [`SyncResponse::limit`].
        15 => InvalidRequest, FixRequest, "too many collections in the request";
        16 => Retry, RetryLater, "a transient server problem: retry";
    }
    unknown => RetryLater
}

impl Status {
    /// Status 12: run FolderSync before syncing again.
    pub fn needs_folder_sync(self) -> bool {
        self == Status::FolderHierarchyChanged
    }

    /// Status 13: the server wants the full request, not an empty or partial one.
    pub fn needs_full_request(self) -> bool {
        self == Status::IncompleteRequest
    }
}

// ---------------------------------------------------------------------------------------
// Response

/// What a collection of the response said about itself. Passed to
/// [`SyncHandler::begin_collection`] with what came before its first change (servers send
/// SyncKey, CollectionId and Status first) and to [`SyncHandler::end_collection`] complete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionHeader {
    pub collection_id: String,
    /// The new SyncKey: store it only once every change of the collection is stored.
    pub sync_key: Option<String>,
    /// 12.1: the collection's class.
    pub class: Option<String>,
    pub status: Option<Status>,
    /// More changes wait on the server: Sync again.
    pub more_available: bool,
}

impl CollectionHeader {
    /// The collection's status (success when the server sent none).
    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Success)
    }
}

/// An item the server sent (an Add, a Change, or a Fetch result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerItem {
    pub server_id: String,
    pub class: Option<String>,
    /// The `ApplicationData`: small properties as a tree, large values already streamed.
    pub data: Option<ItemData>,
}

/// A change from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerChange {
    Add(ServerItem),
    Change(ServerItem),
    Delete {
        server_id: String,
        class: Option<String>,
    },
    /// The item left the filter window (e.g. mail older than the FilterType): drop it
    /// locally without deleting it on the server.
    SoftDelete {
        server_id: String,
    },
}

/// The server's answer to one client change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientResponse {
    /// The item the client added as `client_id` is now `server_id` (when `status` is
    /// success).
    Add {
        client_id: String,
        server_id: Option<String>,
        status: Status,
    },
    Change {
        server_id: String,
        status: Status,
    },
    Fetch {
        status: Status,
        item: ServerItem,
    },
}

/// Receives a Sync response as it is read. Every call gets what has been read so far; the
/// reader keeps nothing of earlier items.
pub trait SyncHandler {
    /// A collection's changes begin.
    fn begin_collection(&mut self, header: &CollectionHeader) -> Result<()> {
        let _ = header;
        Ok(())
    }

    /// A change from the server, in order.
    fn server_change(&mut self, collection_id: &str, change: ServerChange) -> Result<()>;

    /// The answer to one of the client's changes.
    fn client_response(&mut self, collection_id: &str, response: ClientResponse) -> Result<()>;

    /// Where the large value `value` of item `server_id` goes; `None` throws it away. It is
    /// asked for before the item it belongs to is passed on (the ServerId is "" if the
    /// server sent the data before the id).
    fn body_sink(
        &mut self,
        collection_id: &str,
        server_id: &str,
        value: &LargeValue,
    ) -> Option<&mut dyn Sink> {
        let _ = (collection_id, server_id, value);
        None
    }

    /// The collection is complete: commit its changes and its new SyncKey.
    fn end_collection(&mut self, header: &CollectionHeader) -> Result<()>;
}

/// The response as a whole, once every item has gone to the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// The top-level status (success when the server sent none).
    pub status: Status,
    /// With status 14: the Wait/HeartbeatInterval bound; with 15: the most collections.
    pub limit: Option<u32>,
    pub collections: Vec<CollectionHeader>,
}

/// What a Sync request came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// HTTP 200 with no body: nothing changed in the collections of the (cached) request.
    Unchanged,
    Response(SyncResponse),
}

impl HasStatus for SyncResponse {
    fn common_status(&self) -> Option<CommonStatus> {
        core::iter::once(self.status)
            .chain(self.collections.iter().map(CollectionHeader::status))
            .find_map(Status::common)
    }
}

impl HasStatus for SyncOutcome {
    fn common_status(&self) -> Option<CommonStatus> {
        match self {
            SyncOutcome::Unchanged => None,
            SyncOutcome::Response(r) => r.common_status(),
        }
    }
}

/// Reads a Sync response, handing its contents to `handler` as they come. Only the
/// collections' headers are kept (at most [`Limits::max_entries`](super::Limits)); each
/// item is bounded by [`Limits::max_tree_nodes`](super::Limits), ids by
/// [`item::MAX_ID_LEN`].
pub fn read_response<R: Read, H: SyncHandler + ?Sized>(
    p: &mut Parser<R>,
    handler: &mut H,
) -> Result<SyncOutcome> {
    if p.root(SYNC)?.is_none() {
        return Ok(SyncOutcome::Unchanged);
    }
    let mut status = Status::Success;
    let mut limit = None;
    let mut collections = Vec::new();
    while let Some(c) = p.next_child()? {
        match c.tag {
            STATUS => status = Status::read(p, c)?,
            LIMIT => limit = Some(p.number(c)?),
            COLLECTIONS => {
                while let Some(col) = p.next_child()? {
                    if col.tag != COLLECTION {
                        p.skip(col)?;
                        continue;
                    }
                    p.check_entries(collections.len(), "collections", col.offset)?;
                    collections.push(read_collection(p, handler)?);
                }
            }
            _ => p.skip(c)?,
        }
    }
    p.finish()?;
    Ok(SyncOutcome::Response(SyncResponse {
        status,
        limit,
        collections,
    }))
}

fn read_collection<R: Read, H: SyncHandler + ?Sized>(
    p: &mut Parser<R>,
    handler: &mut H,
) -> Result<CollectionHeader> {
    let mut header = CollectionHeader::default();
    let mut begun = false;
    while let Some(c) = p.next_child()? {
        match c.tag {
            SYNC_KEY => header.sync_key = Some(read_id(p, c)?),
            COLLECTION_ID => header.collection_id = read_id(p, c)?,
            CLASS => header.class = Some(read_id(p, c)?),
            STATUS => header.status = Some(Status::read(p, c)?),
            MORE_AVAILABLE => {
                p.skip(c)?;
                header.more_available = true;
            }
            COMMANDS | RESPONSES => {
                if !begun {
                    handler.begin_collection(&header)?;
                    begun = true;
                }
                let id = header.collection_id.clone();
                if c.tag == COMMANDS {
                    read_commands(p, &id, handler)?;
                } else {
                    read_responses(p, &id, handler)?;
                }
            }
            _ => p.skip(c)?,
        }
    }
    if !begun {
        handler.begin_collection(&header)?;
    }
    handler.end_collection(&header)?;
    Ok(header)
}

/// Everything one Add/Change/Delete/Fetch element may hold, before it is typed.
#[derive(Default)]
struct RawItem {
    server_id: Option<String>,
    client_id: Option<String>,
    class: Option<String>,
    status: Option<Status>,
    data: Option<ItemData>,
}

impl RawItem {
    fn server_id(&mut self, element: Child) -> Result<String> {
        self.server_id.take().ok_or_else(|| Error::Protocol {
            offset: element.offset,
            message: format!("a Sync {} has no ServerId", element.tag),
        })
    }

    fn status(&self) -> Status {
        self.status.unwrap_or(Status::Success)
    }
}

/// Routes an item's large values to the handler's sinks.
struct HandlerSinks<'a, H: SyncHandler + ?Sized> {
    handler: &'a mut H,
    collection_id: &'a str,
    server_id: &'a str,
}

impl<H: SyncHandler + ?Sized> SinkSource for HandlerSinks<'_, H> {
    fn sink_for(&mut self, value: &LargeValue) -> Option<&mut dyn Sink> {
        self.handler
            .body_sink(self.collection_id, self.server_id, value)
    }
}

fn read_raw_item<R: Read, H: SyncHandler + ?Sized>(
    p: &mut Parser<R>,
    collection_id: &str,
    handler: &mut H,
) -> Result<RawItem> {
    let mut raw = RawItem::default();
    while let Some(c) = p.next_child()? {
        match c.tag {
            SERVER_ID => raw.server_id = Some(read_id(p, c)?),
            CLIENT_ID => raw.client_id = Some(read_id(p, c)?),
            CLASS => raw.class = Some(read_id(p, c)?),
            STATUS => raw.status = Some(Status::read(p, c)?),
            APPLICATION_DATA => {
                let mut sinks = HandlerSinks {
                    handler: &mut *handler,
                    collection_id,
                    server_id: raw.server_id.as_deref().unwrap_or(""),
                };
                let data = item::read_application_data(p, c, &mut sinks)?;
                raw.data = Some(data);
            }
            _ => p.skip(c)?,
        }
    }
    Ok(raw)
}

fn read_commands<R: Read, H: SyncHandler + ?Sized>(
    p: &mut Parser<R>,
    collection_id: &str,
    handler: &mut H,
) -> Result<()> {
    while let Some(c) = p.next_child()? {
        if !matches!(c.tag, ADD | CHANGE | DELETE | SOFT_DELETE) {
            p.skip(c)?;
            continue;
        }
        let mut raw = read_raw_item(p, collection_id, handler)?;
        let server_id = raw.server_id(c)?;
        let change = match c.tag {
            DELETE => ServerChange::Delete {
                server_id,
                class: raw.class,
            },
            SOFT_DELETE => ServerChange::SoftDelete { server_id },
            tag => {
                let item = ServerItem {
                    server_id,
                    class: raw.class,
                    data: raw.data,
                };
                if tag == ADD {
                    ServerChange::Add(item)
                } else {
                    ServerChange::Change(item)
                }
            }
        };
        handler.server_change(collection_id, change)?;
    }
    Ok(())
}

fn read_responses<R: Read, H: SyncHandler + ?Sized>(
    p: &mut Parser<R>,
    collection_id: &str,
    handler: &mut H,
) -> Result<()> {
    while let Some(c) = p.next_child()? {
        if !matches!(c.tag, ADD | CHANGE | FETCH) {
            p.skip(c)?;
            continue;
        }
        let mut raw = read_raw_item(p, collection_id, handler)?;
        let status = raw.status();
        let response = match c.tag {
            ADD => ClientResponse::Add {
                client_id: raw.client_id.take().ok_or_else(|| Error::Protocol {
                    offset: c.offset,
                    message: "a Sync response Add has no ClientId".into(),
                })?,
                server_id: raw.server_id,
                status,
            },
            CHANGE => ClientResponse::Change {
                server_id: raw.server_id(c)?,
                status,
            },
            _ => ClientResponse::Fetch {
                status,
                item: ServerItem {
                    server_id: raw.server_id(c)?,
                    class: raw.class,
                    data: raw.data,
                },
            },
        };
        handler.client_response(collection_id, response)?;
    }
    Ok(())
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::item::{BodyInfo, BodyType, Streamed, text_node};
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};
    use crate::eas::{Action, Limits};
    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    /// A sink that remembers how many pieces it got.
    #[derive(Debug, Default)]
    struct PieceSink {
        data: Vec<u8>,
        pieces: usize,
        ended: Option<u64>,
    }

    impl Sink for PieceSink {
        fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
            self.data.extend_from_slice(data);
            self.pieces += 1;
            Ok(())
        }
        fn end(&mut self, total: u64) -> std::io::Result<()> {
            self.ended = Some(total);
            Ok(())
        }
    }

    /// Records everything it is told.
    #[derive(Default)]
    struct Recorder {
        begun: Vec<CollectionHeader>,
        ended: Vec<CollectionHeader>,
        changes: Vec<(String, ServerChange)>,
        responses: Vec<(String, ClientResponse)>,
        asked: Vec<(String, String, LargeValue)>,
        sinks: BTreeMap<String, PieceSink>,
    }

    impl SyncHandler for Recorder {
        fn begin_collection(&mut self, header: &CollectionHeader) -> Result<()> {
            self.begun.push(header.clone());
            Ok(())
        }
        fn server_change(&mut self, collection_id: &str, change: ServerChange) -> Result<()> {
            self.changes.push((collection_id.into(), change));
            Ok(())
        }
        fn client_response(&mut self, collection_id: &str, r: ClientResponse) -> Result<()> {
            self.responses.push((collection_id.into(), r));
            Ok(())
        }
        fn body_sink(
            &mut self,
            collection_id: &str,
            server_id: &str,
            value: &LargeValue,
        ) -> Option<&mut dyn Sink> {
            self.asked
                .push((collection_id.into(), server_id.into(), *value));
            let key = format!("{server_id} {value:?}");
            Some(self.sinks.entry(key).or_default())
        }
        fn end_collection(&mut self, header: &CollectionHeader) -> Result<()> {
            self.ended.push(header.clone());
            Ok(())
        }
    }

    fn body_xml(r: &Request) -> String {
        assert_eq!(r.command, Command::Sync);
        request_xml(r)
    }

    fn sample_request() -> SyncRequest {
        let mut mail = CollectionRequest::new("k1", "5", Class::Email);
        mail.deletes_as_moves = Some(true);
        mail.get_changes = Some(true);
        mail.window_size = Some(50);
        mail.options = Some(SyncOptions {
            filter_type: Some(FilterType::OneWeek),
            body_preferences: vec![
                BodyPreference {
                    body_type: BodyType::Html,
                    truncation_size: Some(32768),
                    all_or_none: true,
                    preview: None,
                },
                BodyPreference::new(BodyType::Mime),
            ],
            mime_support: Some(MimeSupport::Always),
            mime_truncation: Some(8),
            conflict: None,
        });
        mail.commands = vec![
            mail_read_change("5:1", true),
            mail_flag_change(
                "5:2",
                &MailFlag::Active {
                    flag_type: "Flag for follow up".into(),
                },
            ),
            ClientCommand::Delete {
                server_id: "5:3".into(),
            },
            ClientCommand::Fetch {
                server_id: "5:4".into(),
            },
        ];
        let mut contacts = CollectionRequest::new("c7", "9", Class::Contacts);
        contacts.commands = vec![ClientCommand::Add {
            client_id: "n1".into(),
            data: vec![
                text_node(Tag::named(cp::CONTACTS, "FileAs"), "Doe, Jane"),
                text_node(Tag::named(cp::CONTACTS, "FirstName"), "Jane"),
            ],
        }];
        SyncRequest {
            collections: vec![
                mail,
                contacts,
                CollectionRequest::initial("8", Class::Calendar),
            ],
            wait: Some(5),
            heartbeat_interval: None,
            window_size: Some(100),
            partial: false,
        }
    }

    const COMMANDS_XML: &str = "      <Commands>
        <Change>
          <ServerId>5:1</ServerId>
          <ApplicationData>
            <email:Read xmlns:email=\"Email:\">1</email:Read>
          </ApplicationData>
        </Change>
        <Change>
          <ServerId>5:2</ServerId>
          <ApplicationData>
            <email:Flag xmlns:email=\"Email:\">
              <email:Status>2</email:Status>
              <email:FlagType>Flag for follow up</email:FlagType>
            </email:Flag>
          </ApplicationData>
        </Change>
        <Delete>
          <ServerId>5:3</ServerId>
        </Delete>
        <Fetch>
          <ServerId>5:4</ServerId>
        </Fetch>
      </Commands>
    </Collection>
    <Collection>";

    /// The end of the mail collection's Options: the MIME preference and MIME settings.
    const OPTIONS_END_XML: &str =
        "        <airsyncbase:BodyPreference xmlns:airsyncbase=\"AirSyncBase:\">
          <airsyncbase:Type>4</airsyncbase:Type>
        </airsyncbase:BodyPreference>
        <MIMESupport>2</MIMESupport>
        <MIMETruncation>8</MIMETruncation>
      </Options>";

    /// The contacts collection after its Class, up to the calendar collection's start.
    const CONTACTS_XML: &str = "      <SyncKey>c7</SyncKey>
      <CollectionId>9</CollectionId>
      <Commands>
        <Add>
          <ClientId>n1</ClientId>
          <ApplicationData>
            <contacts:FileAs xmlns:contacts=\"Contacts:\">Doe, Jane</contacts:FileAs>
            <contacts:FirstName xmlns:contacts=\"Contacts:\">Jane</contacts:FirstName>
          </ApplicationData>
        </Add>
      </Commands>
    </Collection>
    <Collection>";

    #[test]
    fn request_12_1() {
        let xml = body_xml(&request(ProtocolVersion::V12_1, &sample_request()).unwrap());
        let expected = format!(
            "<Sync xmlns=\"AirSync:\">
  <Collections>
    <Collection>
      <Class>Email</Class>
      <SyncKey>k1</SyncKey>
      <CollectionId>5</CollectionId>
      <DeletesAsMoves>1</DeletesAsMoves>
      <GetChanges>1</GetChanges>
      <WindowSize>50</WindowSize>
      <Options>
        <FilterType>3</FilterType>
        <airsyncbase:BodyPreference xmlns:airsyncbase=\"AirSyncBase:\">
          <airsyncbase:Type>2</airsyncbase:Type>
          <airsyncbase:TruncationSize>32768</airsyncbase:TruncationSize>
          <airsyncbase:AllOrNone>1</airsyncbase:AllOrNone>
        </airsyncbase:BodyPreference>
{OPTIONS_END_XML}
{COMMANDS_XML}
      <Class>Contacts</Class>
{CONTACTS_XML}
      <Class>Calendar</Class>
      <SyncKey>0</SyncKey>
      <CollectionId>8</CollectionId>
    </Collection>
  </Collections>
  <Wait>5</Wait>
  <WindowSize>100</WindowSize>
</Sync>"
        );
        assert_eq!(xml, expected);
    }

    #[test]
    fn conflict_option_is_written_after_the_body_preferences() {
        for (resolution, code) in [
            (ConflictResolution::ClientWins, "0"),
            (ConflictResolution::ServerWins, "1"),
        ] {
            let mut contacts = CollectionRequest::new("c7", "9", Class::Contacts);
            contacts.options = Some(SyncOptions {
                body_preferences: vec![BodyPreference::new(BodyType::PlainText)],
                conflict: Some(resolution),
                ..SyncOptions::default()
            });
            let req = SyncRequest {
                collections: vec![contacts],
                ..SyncRequest::default()
            };
            let xml = body_xml(&request(ProtocolVersion::V16_1, &req).unwrap());
            let conflict = format!("<Conflict>{code}</Conflict>");
            let at = xml.find(&conflict).unwrap_or_else(|| panic!("{xml}"));
            assert!(
                xml.find("</airsyncbase:BodyPreference>").unwrap() < at,
                "{xml}"
            );
            assert!(at < xml.find("</Options>").unwrap(), "{xml}");
        }
        // Without a choice nothing is written: the server keeps its own version.
        let xml = body_xml(&request(ProtocolVersion::V16_1, &sample_request()).unwrap());
        assert!(!xml.contains("Conflict"), "{xml}");
    }

    fn request_14() -> SyncRequest {
        let mut req = sample_request();
        req.wait = None;
        req.heartbeat_interval = Some(600);
        req.partial = true;
        let mail = &mut req.collections[0];
        mail.conversation_mode = Some(false);
        mail.options.as_mut().unwrap().body_preferences[0].preview = Some(100);
        req
    }

    #[test]
    fn request_14_1_and_16_1() {
        let xml = body_xml(&request(ProtocolVersion::V14_1, &request_14()).unwrap());
        let expected = format!(
            "<Sync xmlns=\"AirSync:\">
  <Collections>
    <Collection>
      <SyncKey>k1</SyncKey>
      <CollectionId>5</CollectionId>
      <DeletesAsMoves>1</DeletesAsMoves>
      <GetChanges>1</GetChanges>
      <WindowSize>50</WindowSize>
      <ConversationMode>0</ConversationMode>
      <Options>
        <FilterType>3</FilterType>
        <airsyncbase:BodyPreference xmlns:airsyncbase=\"AirSyncBase:\">
          <airsyncbase:Type>2</airsyncbase:Type>
          <airsyncbase:TruncationSize>32768</airsyncbase:TruncationSize>
          <airsyncbase:AllOrNone>1</airsyncbase:AllOrNone>
          <airsyncbase:Preview>100</airsyncbase:Preview>
        </airsyncbase:BodyPreference>
{OPTIONS_END_XML}
{COMMANDS_XML}
{CONTACTS_XML}
      <SyncKey>0</SyncKey>
      <CollectionId>8</CollectionId>
    </Collection>
  </Collections>
  <HeartbeatInterval>600</HeartbeatInterval>
  <WindowSize>100</WindowSize>
  <Partial/>
</Sync>"
        );
        assert_eq!(xml, expected);
        let xml16 = body_xml(&request(ProtocolVersion::V16_1, &request_14()).unwrap());
        assert_eq!(xml16, expected);
    }

    #[test]
    fn requests_refuse_what_the_version_or_spec_forbids() {
        let v12 = ProtocolVersion::V12_1;
        // HeartbeatInterval, ConversationMode and Preview are 14.0+.
        let mut req = sample_request();
        req.wait = None;
        req.heartbeat_interval = Some(600);
        assert!(matches!(request(v12, &req), Err(Error::Write(_))));
        let mut req = sample_request();
        req.collections[0].conversation_mode = Some(true);
        assert!(matches!(request(v12, &req), Err(Error::Write(_))));
        assert!(matches!(request(v12, &request_14()), Err(Error::Write(_))));
        // Wait and HeartbeatInterval together.
        let mut req = request_14();
        req.wait = Some(3);
        assert!(matches!(
            request(ProtocolVersion::V16_1, &req),
            Err(Error::Write(_))
        ));
        // Client changes with SyncKey 0.
        let mut req = sample_request();
        req.collections[2].commands.push(ClientCommand::Delete {
            server_id: "1".into(),
        });
        assert!(matches!(request(v12, &req), Err(Error::Write(_))));
        // Wait bounds; no collections without Partial; Partial alone.
        let mut req = sample_request();
        req.wait = Some(60);
        assert!(request(v12, &req).is_err());
        assert!(request(v12, &SyncRequest::default()).is_err());
        let partial = SyncRequest {
            partial: true,
            ..SyncRequest::default()
        };
        assert!(request(v12, &partial).is_err());
        let partial = SyncRequest {
            partial: true,
            wait: Some(10),
            ..partial
        };
        assert_eq!(
            body_xml(&request(v12, &partial).unwrap()),
            "<Sync xmlns=\"AirSync:\">\n  <Wait>10</Wait>\n  <Partial/>\n</Sync>"
        );
        // WindowSize bounds, MIMETruncation bounds.
        let mut req = sample_request();
        req.window_size = Some(513);
        assert!(request(v12, &req).is_err());
        let mut req = sample_request();
        req.collections[0].options.as_mut().unwrap().mime_truncation = Some(9);
        assert!(request(v12, &req).is_err());
    }

    #[test]
    fn empty_request_and_flag_builders() {
        for v in [
            ProtocolVersion::V12_1,
            ProtocolVersion::V14_1,
            ProtocolVersion::V16_1,
        ] {
            let r = empty_request(v).unwrap();
            assert_eq!(r.command, Command::Sync);
            assert_eq!(r.body, Body::Empty);
        }
        assert!(empty_request(ProtocolVersion::V12_0).is_err());

        let mut mail = CollectionRequest::new("k", "5", Class::Email);
        mail.commands = vec![
            mail_read_change("1", false),
            mail_flag_change("2", &MailFlag::Clear),
            mail_flag_change(
                "3",
                &MailFlag::Complete {
                    complete_time: "2026-11-25T10:00:00.000Z".into(),
                },
            ),
        ];
        let req = SyncRequest {
            collections: vec![mail],
            ..SyncRequest::default()
        };
        let xml = body_xml(&request(ProtocolVersion::V16_1, &req).unwrap());
        assert!(
            xml.contains("<email:Read xmlns:email=\"Email:\">0</email:Read>"),
            "{xml}"
        );
        assert!(
            xml.contains("<email:Flag xmlns:email=\"Email:\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<email:Status>1</email:Status>
              <email:CompleteTime>2026-11-25T10:00:00.000Z</email:CompleteTime>
              <tasks:DateCompleted xmlns:tasks=\"Tasks:\">2026-11-25T10:00:00.000Z</tasks:DateCompleted>"
            ),
            "{xml}"
        );
    }

    fn mime_message() -> String {
        let mut m = String::from(
            "MIME-Version: 1.0\nFrom: alice@example.com\nSubject: Hello\nContent-Type: text/plain\n\n",
        );
        for i in 0..1000 {
            m.push_str(&format!("line {i} of a long message body\n"));
        }
        m
    }

    fn five_classes_xml(mime: &str) -> String {
        format!(
            "<Sync xmlns=\"AirSync:\" xmlns:airsyncbase=\"AirSyncBase:\" xmlns:email=\"Email:\" \
             xmlns:contacts=\"Contacts:\" xmlns:calendar=\"Calendar:\" xmlns:tasks=\"Tasks:\" \
             xmlns:notes=\"Notes:\">
  <Collections>
    <Collection>
      <SyncKey>m2</SyncKey>
      <CollectionId>5</CollectionId>
      <Status>1</Status>
      <Commands>
        <Add>
          <ServerId>5:1</ServerId>
          <ApplicationData>
            <email:To>bob@example.com</email:To>
            <email:From>alice@example.com</email:From>
            <email:Subject>Hello</email:Subject>
            <email:DateReceived>2026-11-25T10:00:00.000Z</email:DateReceived>
            <email:Read>0</email:Read>
            <airsyncbase:Body>
              <airsyncbase:Type>4</airsyncbase:Type>
              <airsyncbase:EstimatedDataSize>{len}</airsyncbase:EstimatedDataSize>
              <airsyncbase:Data>{mime}</airsyncbase:Data>
            </airsyncbase:Body>
            <email:Flag/>
          </ApplicationData>
        </Add>
        <Change>
          <ServerId>5:2</ServerId>
          <ApplicationData>
            <email:Read>1</email:Read>
          </ApplicationData>
        </Change>
        <Delete>
          <ServerId>5:3</ServerId>
        </Delete>
        <SoftDelete>
          <ServerId>5:4</ServerId>
        </SoftDelete>
      </Commands>
    </Collection>
    <Collection>
      <SyncKey>c2</SyncKey>
      <CollectionId>9</CollectionId>
      <Status>1</Status>
      <Commands>
        <Add>
          <ServerId>9:1</ServerId>
          <ApplicationData>
            <contacts:FileAs>Doe, Jane</contacts:FileAs>
            <contacts:FirstName>Jane</contacts:FirstName>
            <contacts:LastName>Doe</contacts:LastName>
            <contacts:Email1Address>jane@example.com</contacts:Email1Address>
            <contacts:Categories>
              <contacts:Category>Friends</contacts:Category>
            </contacts:Categories>
            <contacts:Children>
              <contacts:Child>Max</contacts:Child>
            </contacts:Children>
            <airsyncbase:Body>
              <airsyncbase:Type>1</airsyncbase:Type>
              <airsyncbase:Data>Met at the conference.</airsyncbase:Data>
            </airsyncbase:Body>
            <contacts:Picture>iVBORw0KGgo=</contacts:Picture>
          </ApplicationData>
        </Add>
      </Commands>
    </Collection>
    <Collection>
      <SyncKey>e2</SyncKey>
      <CollectionId>8</CollectionId>
      <Status>1</Status>
      <Commands>
        <Add>
          <ServerId>8:1</ServerId>
          <ApplicationData>
            <calendar:Timezone>xP///w==</calendar:Timezone>
            <calendar:StartTime>20261201T090000Z</calendar:StartTime>
            <calendar:EndTime>20261201T100000Z</calendar:EndTime>
            <calendar:Subject>Standup</calendar:Subject>
            <calendar:UID>abc-123</calendar:UID>
            <calendar:Attendees>
              <calendar:Attendee>
                <calendar:Email>bob@example.com</calendar:Email>
                <calendar:Name>Bob</calendar:Name>
                <calendar:AttendeeStatus>3</calendar:AttendeeStatus>
                <calendar:AttendeeType>1</calendar:AttendeeType>
              </calendar:Attendee>
              <calendar:Attendee>
                <calendar:Email>carol@example.com</calendar:Email>
                <calendar:Name>Carol</calendar:Name>
                <calendar:AttendeeType>2</calendar:AttendeeType>
              </calendar:Attendee>
            </calendar:Attendees>
            <calendar:Recurrence>
              <calendar:Type>1</calendar:Type>
              <calendar:Interval>1</calendar:Interval>
              <calendar:DayOfWeek>62</calendar:DayOfWeek>
              <calendar:Occurrences>10</calendar:Occurrences>
            </calendar:Recurrence>
            <calendar:Exceptions>
              <calendar:Exception>
                <calendar:ExceptionStartTime>20261202T090000Z</calendar:ExceptionStartTime>
                <calendar:Subject>Standup (moved)</calendar:Subject>
                <airsyncbase:Body>
                  <airsyncbase:Type>1</airsyncbase:Type>
                  <airsyncbase:Data>Moved to 10.</airsyncbase:Data>
                </airsyncbase:Body>
              </calendar:Exception>
            </calendar:Exceptions>
            <airsyncbase:Body>
              <airsyncbase:Type>2</airsyncbase:Type>
              <airsyncbase:EstimatedDataSize>20</airsyncbase:EstimatedDataSize>
              <airsyncbase:Truncated>1</airsyncbase:Truncated>
              <airsyncbase:Data>&lt;p&gt;Daily&lt;/p&gt;</airsyncbase:Data>
              <airsyncbase:Preview>Daily</airsyncbase:Preview>
            </airsyncbase:Body>
          </ApplicationData>
        </Add>
      </Commands>
    </Collection>
    <Collection>
      <SyncKey>t2</SyncKey>
      <CollectionId>7</CollectionId>
      <Status>1</Status>
      <Commands>
        <Add>
          <ServerId>7:1</ServerId>
          <ApplicationData>
            <tasks:Subject>Buy milk</tasks:Subject>
            <tasks:Importance>1</tasks:Importance>
            <tasks:Complete>0</tasks:Complete>
            <tasks:DueDate>2026-11-26T00:00:00.000Z</tasks:DueDate>
            <airsyncbase:Body>
              <airsyncbase:Type>1</airsyncbase:Type>
              <airsyncbase:Data>Two litres.</airsyncbase:Data>
            </airsyncbase:Body>
          </ApplicationData>
        </Add>
      </Commands>
    </Collection>
    <Collection>
      <SyncKey>n2</SyncKey>
      <CollectionId>10</CollectionId>
      <Status>1</Status>
      <MoreAvailable/>
      <Commands>
        <Add>
          <ServerId>10:1</ServerId>
          <ApplicationData>
            <notes:Subject>Ideas</notes:Subject>
            <notes:MessageClass>IPM.StickyNote</notes:MessageClass>
            <notes:LastModifiedDate>2026-11-25T10:00:00.000Z</notes:LastModifiedDate>
            <notes:Categories>
              <notes:Category>Work</notes:Category>
            </notes:Categories>
            <airsyncbase:Body>
              <airsyncbase:Type>1</airsyncbase:Type>
              <airsyncbase:Data>Write the sync layer.</airsyncbase:Data>
            </airsyncbase:Body>
          </ApplicationData>
        </Add>
      </Commands>
    </Collection>
  </Collections>
</Sync>",
            len = mime.len()
        )
    }

    fn added(rec: &Recorder, i: usize) -> &ServerItem {
        match &rec.changes[i].1 {
            ServerChange::Add(item) => item,
            other => panic!("change {i} is {other:?}"),
        }
    }

    fn t(page: u8, name: &str) -> Tag {
        Tag::named(page, name)
    }

    #[test]
    fn five_classes_are_read_with_bodies_streamed() {
        let mime = mime_message();
        let bytes = wbxml_from_xml(&five_classes_xml(&mime));
        let mut rec = Recorder::default();
        let outcome = read_response(&mut parser(&bytes), &mut rec).unwrap();
        let SyncOutcome::Response(resp) = outcome else {
            panic!("no response")
        };
        assert_eq!(resp.status, Status::Success);
        assert_eq!(resp.limit, None);
        assert_eq!(resp.common_status(), None);
        let ids: Vec<&str> = resp
            .collections
            .iter()
            .map(|c| c.collection_id.as_str())
            .collect();
        assert_eq!(ids, ["5", "9", "8", "7", "10"]);
        assert_eq!(rec.begun.len(), 5);
        assert_eq!(rec.ended, resp.collections);
        assert_eq!(rec.begun[0].sync_key.as_deref(), Some("m2"));
        assert_eq!(rec.ended[4].sync_key.as_deref(), Some("n2"));
        assert!(rec.ended[4].more_available);
        assert!(!rec.ended[0].more_available);

        // Email: the MIME body went to the sink in several pieces, the rest is a tree.
        let mail = added(&rec, 0);
        assert_eq!(mail.server_id, "5:1");
        let data = mail.data.as_ref().unwrap();
        assert_eq!(data.node.child_text(t(cp::EMAIL, "Subject")), Some("Hello"));
        let body = data.node.child(t(cp::AIRSYNCBASE, "Body")).unwrap();
        assert!(body.child(t(cp::AIRSYNCBASE, "Data")).is_none());
        let info = BodyInfo::from_node(body);
        assert_eq!(info.body_type, Some(BodyType::Mime));
        assert_eq!(info.estimated_size, Some(mime.len() as u64));
        assert!(!info.truncated);
        assert_eq!(
            data.streamed,
            vec![Streamed {
                value: LargeValue::Body {
                    body_type: Some(BodyType::Mime)
                },
                len: mime.len() as u64,
                delivered: true,
            }]
        );
        let sink = &rec.sinks[&format!(
            "5:1 {:?}",
            LargeValue::Body {
                body_type: Some(BodyType::Mime)
            }
        )];
        assert_eq!(sink.data, mime.as_bytes());
        assert!(sink.pieces > 1, "only {} piece(s)", sink.pieces);
        assert_eq!(sink.ended, Some(mime.len() as u64));
        assert!(data.node.child(t(cp::EMAIL, "Flag")).is_some());
        assert!(matches!(&rec.changes[1].1, ServerChange::Change(i) if i.server_id == "5:2"));
        assert_eq!(
            rec.changes[2].1,
            ServerChange::Delete {
                server_id: "5:3".into(),
                class: None
            }
        );
        assert_eq!(
            rec.changes[3].1,
            ServerChange::SoftDelete {
                server_id: "5:4".into()
            }
        );

        // Contact: body and picture streamed, categories and children kept.
        let contact = added(&rec, 4);
        assert_eq!(rec.changes[4].0, "9");
        let node = &contact.data.as_ref().unwrap().node;
        assert_eq!(
            node.child_text(t(cp::CONTACTS, "FileAs")),
            Some("Doe, Jane")
        );
        let cats = node.child(t(cp::CONTACTS, "Categories")).unwrap();
        assert_eq!(
            cats.child_text(t(cp::CONTACTS, "Category")),
            Some("Friends")
        );
        assert!(node.child(t(cp::CONTACTS, "Picture")).is_none());
        assert_eq!(
            rec.sinks[&format!("9:1 {:?}", LargeValue::Picture)].data,
            b"iVBORw0KGgo="
        );
        assert_eq!(
            rec.sinks[&format!(
                "9:1 {:?}",
                LargeValue::Body {
                    body_type: Some(BodyType::PlainText)
                }
            )]
                .data,
            b"Met at the conference."
        );

        // Calendar: attendees and recurrence in the tree, both bodies streamed (the
        // exception's first), HTML body metadata kept.
        let event = added(&rec, 5);
        let data = event.data.as_ref().unwrap();
        let attendees = data.node.child(t(cp::CALENDAR, "Attendees")).unwrap();
        assert_eq!(attendees.children().len(), 2);
        assert_eq!(
            attendees.children()[1].child_text(t(cp::CALENDAR, "Name")),
            Some("Carol")
        );
        let rec_node = data.node.child(t(cp::CALENDAR, "Recurrence")).unwrap();
        assert_eq!(
            rec_node.child_text(t(cp::CALENDAR, "DayOfWeek")),
            Some("62")
        );
        assert_eq!(data.streamed.len(), 2);
        assert_eq!(data.streamed[0].len, "Moved to 10.".len() as u64);
        let exception = data
            .node
            .child(t(cp::CALENDAR, "Exceptions"))
            .and_then(|e| e.child(t(cp::CALENDAR, "Exception")))
            .unwrap();
        assert_eq!(
            exception.child_text(t(cp::CALENDAR, "Subject")),
            Some("Standup (moved)")
        );
        let info = BodyInfo::from_node(data.node.child(t(cp::AIRSYNCBASE, "Body")).unwrap());
        assert_eq!(
            info,
            BodyInfo {
                body_type: Some(BodyType::Html),
                estimated_size: Some(20),
                truncated: true,
                preview: Some("Daily".into()),
            }
        );
        assert_eq!(
            rec.sinks[&format!(
                "8:1 {:?}",
                LargeValue::Body {
                    body_type: Some(BodyType::Html)
                }
            )]
                .data,
            b"<p>Daily</p>"
        );

        // Task and note.
        let task = added(&rec, 6);
        assert_eq!(
            task.data
                .as_ref()
                .unwrap()
                .node
                .child_text(t(cp::TASKS, "Subject")),
            Some("Buy milk")
        );
        let note = added(&rec, 7);
        assert_eq!(rec.changes[7].0, "10");
        let node = &note.data.as_ref().unwrap().node;
        assert_eq!(
            node.child_text(t(cp::NOTES, "MessageClass")),
            Some("IPM.StickyNote")
        );
        assert_eq!(rec.changes.len(), 8);
        // Every large value was asked for with its collection and item.
        assert!(rec.asked.contains(&(
            "10".into(),
            "10:1".into(),
            LargeValue::Body {
                body_type: Some(BodyType::PlainText)
            }
        )));
    }

    #[test]
    fn values_without_a_sink_are_discarded() {
        struct NoSinks(Vec<ServerChange>);
        impl SyncHandler for NoSinks {
            fn server_change(&mut self, _: &str, change: ServerChange) -> Result<()> {
                self.0.push(change);
                Ok(())
            }
            fn client_response(&mut self, _: &str, _: ClientResponse) -> Result<()> {
                Ok(())
            }
            fn end_collection(&mut self, _: &CollectionHeader) -> Result<()> {
                Ok(())
            }
        }
        let mime = mime_message();
        let bytes = wbxml_from_xml(&five_classes_xml(&mime));
        let mut h = NoSinks(Vec::new());
        read_response(&mut parser(&bytes), &mut h).unwrap();
        let ServerChange::Add(item) = &h.0[0] else {
            panic!()
        };
        let streamed = &item.data.as_ref().unwrap().streamed;
        assert_eq!(streamed[0].len, mime.len() as u64);
        assert!(!streamed[0].delivered);
    }

    #[test]
    fn client_change_responses() {
        let xml =
            "<Sync xmlns=\"AirSync:\" xmlns:email=\"Email:\" xmlns:airsyncbase=\"AirSyncBase:\">
  <Collections>
    <Collection>
      <SyncKey>k3</SyncKey>
      <CollectionId>5</CollectionId>
      <Status>1</Status>
      <Responses>
        <Add>
          <ClientId>c1</ClientId>
          <ServerId>5:10</ServerId>
          <Status>1</Status>
        </Add>
        <Add>
          <ClientId>c2</ClientId>
          <Status>6</Status>
        </Add>
        <Change>
          <ServerId>5:2</ServerId>
          <Status>7</Status>
        </Change>
        <Fetch>
          <ServerId>5:1</ServerId>
          <Status>1</Status>
          <ApplicationData>
            <email:Subject>Hello</email:Subject>
            <airsyncbase:Body>
              <airsyncbase:Type>2</airsyncbase:Type>
              <airsyncbase:Data>&lt;b&gt;hi&lt;/b&gt;</airsyncbase:Data>
            </airsyncbase:Body>
          </ApplicationData>
        </Fetch>
        <Fetch>
          <ServerId>5:9</ServerId>
          <Status>8</Status>
        </Fetch>
      </Responses>
      <Commands>
        <Delete>
          <ServerId>5:7</ServerId>
        </Delete>
      </Commands>
    </Collection>
  </Collections>
</Sync>";
        let mut rec = Recorder::default();
        read_response(&mut parser(&wbxml_from_xml(xml)), &mut rec).unwrap();
        assert_eq!(rec.responses.len(), 5);
        assert_eq!(
            rec.responses[0],
            (
                "5".to_string(),
                ClientResponse::Add {
                    client_id: "c1".into(),
                    server_id: Some("5:10".into()),
                    status: Status::Success,
                }
            )
        );
        assert_eq!(
            rec.responses[1].1,
            ClientResponse::Add {
                client_id: "c2".into(),
                server_id: None,
                status: Status::ConversionError,
            }
        );
        assert_eq!(
            rec.responses[2].1,
            ClientResponse::Change {
                server_id: "5:2".into(),
                status: Status::Conflict,
            }
        );
        let ClientResponse::Fetch { status, item } = &rec.responses[3].1 else {
            panic!("{:?}", rec.responses[3])
        };
        assert_eq!(*status, Status::Success);
        assert_eq!(item.server_id, "5:1");
        assert_eq!(
            item.data
                .as_ref()
                .unwrap()
                .node
                .child_text(t(cp::EMAIL, "Subject")),
            Some("Hello")
        );
        assert_eq!(
            rec.sinks[&format!(
                "5:1 {:?}",
                LargeValue::Body {
                    body_type: Some(BodyType::Html)
                }
            )]
                .data,
            b"<b>hi</b>"
        );
        assert_eq!(
            rec.responses[4].1,
            ClientResponse::Fetch {
                status: Status::ObjectNotFound,
                item: ServerItem {
                    server_id: "5:9".into(),
                    class: None,
                    data: None
                },
            }
        );
        assert_eq!(rec.changes.len(), 1);
        assert_eq!(rec.ended[0].sync_key.as_deref(), Some("k3"));
    }

    #[test]
    fn empty_body_means_unchanged() {
        let mut rec = Recorder::default();
        assert_eq!(
            read_response(&mut parser(&[]), &mut rec).unwrap(),
            SyncOutcome::Unchanged
        );
        assert!(rec.begun.is_empty());
        assert_eq!(SyncOutcome::Unchanged.common_status(), None);
    }

    #[test]
    fn top_level_status_and_limit() {
        let xml =
            "<Sync xmlns=\"AirSync:\">\n  <Status>14</Status>\n  <Limit>3540</Limit>\n</Sync>";
        let mut rec = Recorder::default();
        let SyncOutcome::Response(r) =
            read_response(&mut parser(&wbxml_from_xml(xml)), &mut rec).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.status, Status::InvalidWaitOrHeartbeat);
        assert_eq!(r.limit, Some(3540));
        assert!(r.collections.is_empty());
        assert_eq!(r.status.action(), Action::FixRequest);

        for (code, flag) in [(12, "folder"), (13, "full")] {
            let xml = format!("<Sync xmlns=\"AirSync:\"><Status>{code}</Status></Sync>");
            let SyncOutcome::Response(r) =
                read_response(&mut parser(&wbxml_from_xml(&xml)), &mut rec).unwrap()
            else {
                panic!()
            };
            assert_eq!(r.status.needs_folder_sync(), flag == "folder");
            assert_eq!(r.status.needs_full_request(), flag == "full");
        }

        let xml = "<Sync xmlns=\"AirSync:\"><Status>142</Status></Sync>";
        let outcome = read_response(&mut parser(&wbxml_from_xml(xml)), &mut rec).unwrap();
        assert_eq!(outcome.common_status(), CommonStatus::from_code(142));
        // A collection status counts too.
        let xml = "<Sync xmlns=\"AirSync:\"><Collections><Collection>\
                   <CollectionId>5</CollectionId><Status>3</Status></Collection>\
                   </Collections></Sync>";
        let mut rec = Recorder::default();
        let SyncOutcome::Response(r) =
            read_response(&mut parser(&wbxml_from_xml(xml)), &mut rec).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.collections[0].status(), Status::InvalidSyncKey);
        assert_eq!(r.collections[0].status().action(), Action::ResyncState);
        assert_eq!(rec.begun.len(), 1);
        assert_eq!(rec.ended.len(), 1);
    }

    #[test]
    fn every_status() {
        let cases = [
            (1, Status::Success, Action::Proceed),
            (3, Status::InvalidSyncKey, Action::ResyncState),
            (4, Status::ProtocolError, Action::FixRequest),
            (5, Status::ServerError, Action::RetryLater),
            (6, Status::ConversionError, Action::FixRequest),
            (7, Status::Conflict, Action::Proceed),
            (8, Status::ObjectNotFound, Action::ItemGone),
            (9, Status::CannotComplete, Action::Blocked),
            (12, Status::FolderHierarchyChanged, Action::SyncFolders),
            (13, Status::IncompleteRequest, Action::FixRequest),
            (14, Status::InvalidWaitOrHeartbeat, Action::FixRequest),
            (15, Status::InvalidRequest, Action::FixRequest),
            (16, Status::Retry, Action::RetryLater),
            (2, Status::Unknown(2), Action::RetryLater),
            (
                110,
                Status::Common(CommonStatus::from_code(110).unwrap()),
                Action::RetryLater,
            ),
        ];
        for (code, status, action) in cases {
            assert_eq!(Status::from_code(code), status, "{code}");
            assert_eq!(status.code(), code);
            assert_eq!(status.action(), action, "{code}");
        }
    }

    /// A reader that counts how much of the input has been consumed.
    struct Counting<'a> {
        data: &'a [u8],
        pos: Rc<Cell<usize>>,
    }

    impl embedded_io::ErrorType for Counting<'_> {
        type Error = core::convert::Infallible;
    }

    impl embedded_io::Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> core::result::Result<usize, Self::Error> {
            let at = self.pos.get();
            let n = buf.len().min(self.data.len() - at);
            buf[..n].copy_from_slice(&self.data[at..at + n]);
            self.pos.set(at + n);
            Ok(n)
        }
    }

    #[test]
    fn ten_thousand_adds_are_handed_over_one_at_a_time() {
        let mut xml = String::from(
            "<Sync xmlns=\"AirSync:\" xmlns:email=\"Email:\"><Collections><Collection>\
             <SyncKey>2</SyncKey><CollectionId>5</CollectionId><Status>1</Status><Commands>",
        );
        for i in 0..10_000 {
            xml.push_str(&format!(
                "<Add><ServerId>5:{i}</ServerId><ApplicationData>\
                 <email:Subject>Message number {i}</email:Subject></ApplicationData></Add>"
            ));
        }
        xml.push_str("</Commands></Collection></Collections></Sync>");
        let bytes = wbxml_from_xml(&xml);

        struct Counter {
            count: usize,
            consumed: Rc<Cell<usize>>,
            consumed_at_first: usize,
            last_id: String,
        }
        impl SyncHandler for Counter {
            fn server_change(&mut self, _: &str, change: ServerChange) -> Result<()> {
                let ServerChange::Add(item) = change else {
                    panic!("not an add")
                };
                assert_eq!(item.server_id, format!("5:{}", self.count));
                if self.count == 0 {
                    self.consumed_at_first = self.consumed.get();
                }
                self.count += 1;
                self.last_id = item.server_id;
                Ok(())
            }
            fn client_response(&mut self, _: &str, _: ClientResponse) -> Result<()> {
                Ok(())
            }
            fn end_collection(&mut self, _: &CollectionHeader) -> Result<()> {
                Ok(())
            }
        }
        let consumed = Rc::new(Cell::new(0));
        let mut p = Parser::new(
            Counting {
                data: &bytes,
                pos: consumed.clone(),
            },
            ProtocolVersion::V16_1,
        );
        let mut h = Counter {
            count: 0,
            consumed: consumed.clone(),
            consumed_at_first: usize::MAX,
            last_id: String::new(),
        };
        read_response(&mut p, &mut h).unwrap();
        assert_eq!(h.count, 10_000);
        assert_eq!(h.last_id, "5:9999");
        assert!(bytes.len() > 300_000, "{}", bytes.len());
        // The first item was handed over after one buffer of input, not the whole body.
        assert!(
            h.consumed_at_first <= 16 * 1024,
            "{} bytes read before the first item",
            h.consumed_at_first
        );
        assert_eq!(consumed.get(), bytes.len());
    }

    #[test]
    fn limits_are_enforced() {
        let mime = mime_message();
        let bytes = wbxml_from_xml(&five_classes_xml(&mime));
        // Per-item tree size.
        let limits = Limits {
            max_tree_nodes: 8,
            ..Limits::default()
        };
        let mut rec = Recorder::default();
        let err =
            read_response(&mut Parser::with_limits(&bytes[..], limits), &mut rec).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
        // Number of collections.
        let limits = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        let mut rec = Recorder::default();
        let err =
            read_response(&mut Parser::with_limits(&bytes[..], limits), &mut rec).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
        // Id length.
        let long = "7".repeat(300);
        for xml in [
            format!(
                "<Sync xmlns=\"AirSync:\"><Collections><Collection><SyncKey>{long}</SyncKey></Collection></Collections></Sync>"
            ),
            format!(
                "<Sync xmlns=\"AirSync:\"><Collections><Collection><Commands><Delete><ServerId>{long}</ServerId></Delete></Commands></Collection></Collections></Sync>"
            ),
            format!(
                "<Sync xmlns=\"AirSync:\"><Collections><Collection><Responses><Add><ClientId>{long}</ClientId></Add></Responses></Collection></Collections></Sync>"
            ),
        ] {
            let mut rec = Recorder::default();
            let err = read_response(&mut parser(&wbxml_from_xml(&xml)), &mut rec).unwrap_err();
            assert!(matches!(err, Error::Limit { .. }), "{err}");
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        let bytes = wbxml_from_xml(&five_classes_xml(&mime_message()));
        for cut in [6, 40, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            let mut rec = Recorder::default();
            assert!(
                read_response(&mut parser(&bytes[..cut]), &mut rec).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn unknown_elements_are_skipped_and_missing_ids_are_errors() {
        let xml = "<Sync xmlns=\"AirSync:\" xmlns:ping=\"Ping:\">
  <ping:MaxFolders>3</ping:MaxFolders>
  <Collections>
    <ping:Folder>x</ping:Folder>
    <Collection>
      <CollectionId>5</CollectionId>
      <ping:Id>7</ping:Id>
      <Commands>
        <Fetch>
          <ServerId>1</ServerId>
        </Fetch>
        <Add>
          <ServerId>5:1</ServerId>
          <ping:Id>7</ping:Id>
        </Add>
      </Commands>
    </Collection>
  </Collections>
</Sync>";
        let mut rec = Recorder::default();
        read_response(&mut parser(&wbxml_from_xml(xml)), &mut rec).unwrap();
        assert_eq!(rec.changes.len(), 1);
        assert_eq!(
            rec.changes[0].1,
            ServerChange::Add(ServerItem {
                server_id: "5:1".into(),
                class: None,
                data: None
            })
        );
        let xml = "<Sync xmlns=\"AirSync:\"><Collections><Collection><Commands>\
                   <Change><Status>1</Status></Change></Commands></Collection></Collections></Sync>";
        let err =
            read_response(&mut parser(&wbxml_from_xml(xml)), &mut Recorder::default()).unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
        // The wrong root element.
        let xml = "<Ping xmlns=\"Ping:\"><Status>1</Status></Ping>";
        assert!(
            read_response(&mut parser(&wbxml_from_xml(xml)), &mut Recorder::default()).is_err()
        );
    }

    #[test]
    fn handler_errors_abort_the_read() {
        struct Failing;
        impl SyncHandler for Failing {
            fn server_change(&mut self, _: &str, _: ServerChange) -> Result<()> {
                Err(Error::Sink(std::io::Error::other("disk full")))
            }
            fn client_response(&mut self, _: &str, _: ClientResponse) -> Result<()> {
                Ok(())
            }
            fn end_collection(&mut self, _: &CollectionHeader) -> Result<()> {
                panic!("must not be reached")
            }
        }
        let bytes = wbxml_from_xml(&five_classes_xml("x"));
        let err = read_response(&mut parser(&bytes), &mut Failing).unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
    }

    #[test]
    fn notes_are_refused_before_14_0() {
        let req = SyncRequest {
            collections: vec![CollectionRequest::initial("10", Class::Notes)],
            ..SyncRequest::default()
        };
        let err = request(ProtocolVersion::V12_1, &req).unwrap_err();
        assert!(err.to_string().contains("14.0"), "{err}");
        assert!(request(ProtocolVersion::V14_0, &req).is_ok());
    }
}
