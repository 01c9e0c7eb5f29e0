//! The folder hierarchy commands (MS-ASCMD 2.2.1.3–2.2.1.6): FolderSync keeps the device's
//! list of folders in step with the server; FolderCreate, FolderUpdate and FolderDelete change
//! it. Each answers with the new hierarchy SyncKey, which the caller stores for the next one.

use embedded_io::Read;

use super::command::{Command, Request, write_wbxml};
use super::error::{Error, Result};
use super::item::{Class, read_id};
use super::parse::{Child, Parser};
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

pub(crate) const FOLDER_SYNC: Tag = Tag::named(cp::FOLDER_HIERARCHY, "FolderSync");
pub(crate) const FOLDER_CREATE: Tag = Tag::named(cp::FOLDER_HIERARCHY, "FolderCreate");
pub(crate) const FOLDER_UPDATE: Tag = Tag::named(cp::FOLDER_HIERARCHY, "FolderUpdate");
pub(crate) const FOLDER_DELETE: Tag = Tag::named(cp::FOLDER_HIERARCHY, "FolderDelete");
pub(crate) const SYNC_KEY: Tag = Tag::named(cp::FOLDER_HIERARCHY, "SyncKey");
pub(crate) const STATUS: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Status");
pub(crate) const CHANGES: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Changes");
pub(crate) const COUNT: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Count");
pub(crate) const ADD: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Add");
pub(crate) const UPDATE: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Update");
pub(crate) const DELETE: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Delete");
pub(crate) const SERVER_ID: Tag = Tag::named(cp::FOLDER_HIERARCHY, "ServerId");
pub(crate) const PARENT_ID: Tag = Tag::named(cp::FOLDER_HIERARCHY, "ParentId");
pub(crate) const DISPLAY_NAME: Tag = Tag::named(cp::FOLDER_HIERARCHY, "DisplayName");
pub(crate) const TYPE: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Type");

/// The SyncKey of a first FolderSync (and of a full resync after status 9).
pub const INITIAL_SYNC_KEY: &str = "0";

/// A folder's type (MS-ASCMD 2.2.3.186.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FolderType {
    /// 1: user-created folder of no particular class.
    UserGeneric,
    Inbox,
    Drafts,
    DeletedItems,
    SentItems,
    Outbox,
    Tasks,
    Calendar,
    Contacts,
    Notes,
    Journal,
    /// 12: user-created mail folder.
    UserMail,
    UserCalendar,
    UserContacts,
    UserTasks,
    UserJournal,
    UserNotes,
    /// 18: the server does not know the folder's type.
    Unknown,
    /// 19: the recipient information cache (Contacts class, read-only for clients).
    RecipientInfoCache,
    /// A value outside 1–19.
    Other(u32),
}

impl FolderType {
    pub const fn from_code(code: u32) -> FolderType {
        match code {
            1 => FolderType::UserGeneric,
            2 => FolderType::Inbox,
            3 => FolderType::Drafts,
            4 => FolderType::DeletedItems,
            5 => FolderType::SentItems,
            6 => FolderType::Outbox,
            7 => FolderType::Tasks,
            8 => FolderType::Calendar,
            9 => FolderType::Contacts,
            10 => FolderType::Notes,
            11 => FolderType::Journal,
            12 => FolderType::UserMail,
            13 => FolderType::UserCalendar,
            14 => FolderType::UserContacts,
            15 => FolderType::UserTasks,
            16 => FolderType::UserJournal,
            17 => FolderType::UserNotes,
            18 => FolderType::Unknown,
            19 => FolderType::RecipientInfoCache,
            other => FolderType::Other(other),
        }
    }

    pub const fn code(self) -> u32 {
        match self {
            FolderType::UserGeneric => 1,
            FolderType::Inbox => 2,
            FolderType::Drafts => 3,
            FolderType::DeletedItems => 4,
            FolderType::SentItems => 5,
            FolderType::Outbox => 6,
            FolderType::Tasks => 7,
            FolderType::Calendar => 8,
            FolderType::Contacts => 9,
            FolderType::Notes => 10,
            FolderType::Journal => 11,
            FolderType::UserMail => 12,
            FolderType::UserCalendar => 13,
            FolderType::UserContacts => 14,
            FolderType::UserTasks => 15,
            FolderType::UserJournal => 16,
            FolderType::UserNotes => 17,
            FolderType::Unknown => 18,
            FolderType::RecipientInfoCache => 19,
            FolderType::Other(code) => code,
        }
    }

    /// The class of the items a Sync of this folder brings, `None` for folders easync does
    /// not sync (generic, journal, unknown types).
    pub const fn class(self) -> Option<Class> {
        match self {
            FolderType::Inbox
            | FolderType::Drafts
            | FolderType::DeletedItems
            | FolderType::SentItems
            | FolderType::Outbox
            | FolderType::UserMail => Some(Class::Email),
            FolderType::Calendar | FolderType::UserCalendar => Some(Class::Calendar),
            FolderType::Contacts | FolderType::UserContacts | FolderType::RecipientInfoCache => {
                Some(Class::Contacts)
            }
            FolderType::Tasks | FolderType::UserTasks => Some(Class::Tasks),
            FolderType::Notes | FolderType::UserNotes => Some(Class::Notes),
            FolderType::UserGeneric
            | FolderType::Journal
            | FolderType::UserJournal
            | FolderType::Unknown
            | FolderType::Other(_) => None,
        }
    }

    /// Whether the folder is one the user made (the only types FolderCreate accepts).
    pub const fn is_user_created(self) -> bool {
        matches!(self.code(), 1 | 12..=17)
    }
}

command_status! {
    /// The status of a FolderSync response (MS-ASCMD 2.2.3.177.5). An unknown code is
    /// [`Action::RetryLater`](super::Action::RetryLater).
    pub enum FolderSyncStatus {
        1 => Success, Proceed, "success";
        6 => ServerError, RetryLater, "server error, usually transient";
        9 => InvalidSyncKey, ResyncState, "the SyncKey is unknown to the server: FolderSync again from key \"0\"";
        10 => BadRequest, FixRequest, "the request was malformed";
        11 => UnknownError, RetryLater, "an unknown error";
        12 => CodeUnknown, RetryLater, "an unusual back-end issue";
    }
    unknown => RetryLater
}

command_status! {
    /// The status of a FolderCreate, FolderUpdate or FolderDelete response (MS-ASCMD
    /// 2.2.3.177.3, .4, .6); each command uses a subset of these codes. An unknown code is
    /// [`Action::RetryLater`](super::Action::RetryLater).
    pub enum FolderChangeStatus {
        1 => Success, Proceed, "success";
        2 => NameExists, FixRequest, "a folder of that name exists there (or, for Update, the folder is special): ask the user for another name";
        3 => SpecialFolder, FixRequest, "the folder (or parent) is a special system folder that cannot be changed";
        4 => FolderNotFound, ItemGone, "the folder does not exist (any more): FolderSync";
        5 => ParentNotFound, ItemGone, "the parent folder does not exist (any more): FolderSync";
        6 => ServerError, RetryLater, "server error, usually transient";
        9 => InvalidSyncKey, ResyncState, "the hierarchy SyncKey is out of date: FolderSync (from \"0\" if that fails too)";
        10 => BadRequest, FixRequest, "the request was malformed";
        11 => UnknownError, RetryLater, "an unknown error";
    }
    unknown => RetryLater
}

/// A folder as FolderSync describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub server_id: String,
    /// "0" for a top-level folder.
    pub parent_id: String,
    pub display_name: String,
    pub folder_type: FolderType,
}

/// One change of a FolderSync response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderChange {
    Add(Folder),
    Update(Folder),
    Delete { server_id: String },
}

/// A FolderSync response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSyncResponse {
    pub status: FolderSyncStatus,
    /// The new hierarchy SyncKey (absent on failure).
    pub sync_key: Option<String>,
    /// The server's `Count` of changes, if sent.
    pub count: Option<u32>,
    pub changes: Vec<FolderChange>,
}

impl HasStatus for FolderSyncResponse {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.common()
    }
}

/// A FolderCreate, FolderUpdate or FolderDelete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderChangeResponse {
    pub status: FolderChangeStatus,
    pub sync_key: Option<String>,
    /// FolderCreate only: the new folder's ServerId.
    pub server_id: Option<String>,
}

impl HasStatus for FolderChangeResponse {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.common()
    }
}

/// A FolderSync request; `sync_key` is [`INITIAL_SYNC_KEY`] the first time.
pub fn folder_sync_request(version: ProtocolVersion, sync_key: &str) -> Result<Request> {
    let body = write_wbxml(version, |w| {
        w.start(FOLDER_SYNC)?;
        w.text_element(SYNC_KEY, sync_key)?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::FolderSync, body))
}

/// A FolderCreate request: a folder named `display_name` of a user-created type under
/// `parent_id` ("0" for the top level).
pub fn folder_create_request(
    version: ProtocolVersion,
    sync_key: &str,
    parent_id: &str,
    display_name: &str,
    folder_type: FolderType,
) -> Result<Request> {
    if !folder_type.is_user_created() {
        return Err(Error::Write(format!(
            "a folder of type {} cannot be created: use a user-created type (1, 12-17)",
            folder_type.code()
        )));
    }
    let body = write_wbxml(version, |w| {
        w.start(FOLDER_CREATE)?;
        w.text_element(SYNC_KEY, sync_key)?;
        w.text_element(PARENT_ID, parent_id)?;
        w.text_element(DISPLAY_NAME, display_name)?;
        w.text_element(TYPE, &folder_type.code().to_string())?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::FolderCreate, body))
}

/// A FolderUpdate request: rename and/or move folder `server_id`.
pub fn folder_update_request(
    version: ProtocolVersion,
    sync_key: &str,
    server_id: &str,
    parent_id: &str,
    display_name: &str,
) -> Result<Request> {
    let body = write_wbxml(version, |w| {
        w.start(FOLDER_UPDATE)?;
        w.text_element(SYNC_KEY, sync_key)?;
        w.text_element(SERVER_ID, server_id)?;
        w.text_element(PARENT_ID, parent_id)?;
        w.text_element(DISPLAY_NAME, display_name)?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::FolderUpdate, body))
}

/// A FolderDelete request.
pub fn folder_delete_request(
    version: ProtocolVersion,
    sync_key: &str,
    server_id: &str,
) -> Result<Request> {
    let body = write_wbxml(version, |w| {
        w.start(FOLDER_DELETE)?;
        w.text_element(SYNC_KEY, sync_key)?;
        w.text_element(SERVER_ID, server_id)?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::FolderDelete, body))
}

fn missing_status(p: &Parser<impl Read>, what: Tag) -> Error {
    p.error(format!("{what} response has no Status"))
}

/// Reads a FolderSync response. The number of changes is bounded by
/// [`Limits::max_entries`](super::Limits); more is an [`Error::Limit`].
pub fn read_folder_sync_response<R: Read>(p: &mut Parser<R>) -> Result<FolderSyncResponse> {
    if p.root(FOLDER_SYNC)?.is_none() {
        return Err(p.error("the FolderSync response is empty"));
    }
    let mut status = None;
    let mut sync_key = None;
    let mut count = None;
    let mut changes = Vec::new();
    while let Some(c) = p.next_child()? {
        match c.tag {
            STATUS => status = Some(FolderSyncStatus::read(p, c)?),
            SYNC_KEY => sync_key = Some(read_id(p, c)?),
            CHANGES => {
                while let Some(change) = p.next_child()? {
                    match change.tag {
                        COUNT => count = Some(p.number(change)?),
                        ADD | UPDATE | DELETE => {
                            p.check_entries(changes.len(), "folder changes", change.offset)?;
                            changes.push(read_change(p, change)?);
                        }
                        _ => p.skip(change)?,
                    }
                }
            }
            _ => p.skip(c)?,
        }
    }
    p.finish()?;
    Ok(FolderSyncResponse {
        status: status.ok_or_else(|| missing_status(p, FOLDER_SYNC))?,
        sync_key,
        count,
        changes,
    })
}

fn read_change<R: Read>(p: &mut Parser<R>, change: Child) -> Result<FolderChange> {
    let mut server_id = None;
    let mut parent_id = None;
    let mut display_name = None;
    let mut folder_type = None;
    while let Some(c) = p.next_child()? {
        match c.tag {
            SERVER_ID => server_id = Some(read_id(p, c)?),
            PARENT_ID => parent_id = Some(read_id(p, c)?),
            DISPLAY_NAME => display_name = Some(p.text(c)?),
            TYPE => folder_type = Some(FolderType::from_code(p.number(c)?)),
            _ => p.skip(c)?,
        }
    }
    let Some(server_id) = server_id else {
        return Err(Error::Protocol {
            offset: change.offset,
            message: format!("a folder {} has no ServerId", change.tag),
        });
    };
    if change.tag == DELETE {
        return Ok(FolderChange::Delete { server_id });
    }
    let folder = Folder {
        server_id,
        parent_id: parent_id.unwrap_or_else(|| "0".into()),
        display_name: display_name.unwrap_or_default(),
        folder_type: folder_type.ok_or_else(|| Error::Protocol {
            offset: change.offset,
            message: format!("a folder {} has no Type", change.tag),
        })?,
    };
    Ok(if change.tag == ADD {
        FolderChange::Add(folder)
    } else {
        FolderChange::Update(folder)
    })
}

/// Reads a FolderCreate response.
pub fn read_folder_create_response<R: Read>(p: &mut Parser<R>) -> Result<FolderChangeResponse> {
    read_change_response(p, FOLDER_CREATE)
}

/// Reads a FolderUpdate response.
pub fn read_folder_update_response<R: Read>(p: &mut Parser<R>) -> Result<FolderChangeResponse> {
    read_change_response(p, FOLDER_UPDATE)
}

/// Reads a FolderDelete response.
pub fn read_folder_delete_response<R: Read>(p: &mut Parser<R>) -> Result<FolderChangeResponse> {
    read_change_response(p, FOLDER_DELETE)
}

fn read_change_response<R: Read>(p: &mut Parser<R>, root: Tag) -> Result<FolderChangeResponse> {
    if p.root(root)?.is_none() {
        return Err(p.error(format!("the {root} response is empty")));
    }
    let mut status = None;
    let mut sync_key = None;
    let mut server_id = None;
    while let Some(c) = p.next_child()? {
        match c.tag {
            STATUS => status = Some(FolderChangeStatus::read(p, c)?),
            SYNC_KEY => sync_key = Some(read_id(p, c)?),
            SERVER_ID => server_id = Some(read_id(p, c)?),
            _ => p.skip(c)?,
        }
    }
    p.finish()?;
    Ok(FolderChangeResponse {
        status: status.ok_or_else(|| missing_status(p, root))?,
        sync_key,
        server_id,
    })
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};
    use crate::eas::{Action, Limits};

    #[test]
    fn folder_sync_request_shape() {
        for v in [
            ProtocolVersion::V12_1,
            ProtocolVersion::V14_1,
            ProtocolVersion::V16_1,
        ] {
            let r = folder_sync_request(v, INITIAL_SYNC_KEY).unwrap();
            assert_eq!(r.command, Command::FolderSync);
            assert_eq!(
                request_xml(&r),
                "<FolderSync xmlns=\"FolderHierarchy:\">\n  <SyncKey>0</SyncKey>\n</FolderSync>"
            );
        }
    }

    #[test]
    fn create_update_delete_request_shapes() {
        let v = ProtocolVersion::V16_1;
        let r = folder_create_request(v, "3", "0", "Projects", FolderType::UserMail).unwrap();
        assert_eq!(r.command, Command::FolderCreate);
        assert_eq!(
            request_xml(&r),
            "<FolderCreate xmlns=\"FolderHierarchy:\">\n  <SyncKey>3</SyncKey>\n  \
             <ParentId>0</ParentId>\n  <DisplayName>Projects</DisplayName>\n  \
             <Type>12</Type>\n</FolderCreate>"
        );
        assert!(matches!(
            folder_create_request(v, "3", "0", "x", FolderType::Inbox),
            Err(Error::Write(_))
        ));
        let r = folder_update_request(v, "4", "7", "5", "Old").unwrap();
        assert_eq!(r.command, Command::FolderUpdate);
        assert_eq!(
            request_xml(&r),
            "<FolderUpdate xmlns=\"FolderHierarchy:\">\n  <SyncKey>4</SyncKey>\n  \
             <ServerId>7</ServerId>\n  <ParentId>5</ParentId>\n  \
             <DisplayName>Old</DisplayName>\n</FolderUpdate>"
        );
        let r = folder_delete_request(v, "5", "7").unwrap();
        assert_eq!(r.command, Command::FolderDelete);
        assert_eq!(
            request_xml(&r),
            "<FolderDelete xmlns=\"FolderHierarchy:\">\n  <SyncKey>5</SyncKey>\n  \
             <ServerId>7</ServerId>\n</FolderDelete>"
        );
    }

    const SYNC_RESPONSE: &str = "<FolderSync xmlns=\"FolderHierarchy:\">
  <Status>1</Status>
  <SyncKey>1</SyncKey>
  <Changes>
    <Count>4</Count>
    <Add>
      <ServerId>2</ServerId>
      <ParentId>0</ParentId>
      <DisplayName>Inbox</DisplayName>
      <Type>2</Type>
    </Add>
    <Add>
      <ServerId>9</ServerId>
      <ParentId>2</ParentId>
      <DisplayName>Füße &amp; more</DisplayName>
      <Type>12</Type>
    </Add>
    <Update>
      <ServerId>3</ServerId>
      <ParentId>0</ParentId>
      <DisplayName>Calendar</DisplayName>
      <Type>8</Type>
    </Update>
    <Delete>
      <ServerId>4</ServerId>
    </Delete>
  </Changes>
</FolderSync>";

    #[test]
    fn folder_sync_response_is_read() {
        let bytes = wbxml_from_xml(SYNC_RESPONSE);
        let r = read_folder_sync_response(&mut parser(&bytes)).unwrap();
        assert_eq!(r.status, FolderSyncStatus::Success);
        assert_eq!(r.sync_key.as_deref(), Some("1"));
        assert_eq!(r.count, Some(4));
        assert_eq!(r.common_status(), None);
        assert_eq!(
            r.changes,
            vec![
                FolderChange::Add(Folder {
                    server_id: "2".into(),
                    parent_id: "0".into(),
                    display_name: "Inbox".into(),
                    folder_type: FolderType::Inbox,
                }),
                FolderChange::Add(Folder {
                    server_id: "9".into(),
                    parent_id: "2".into(),
                    display_name: "Füße & more".into(),
                    folder_type: FolderType::UserMail,
                }),
                FolderChange::Update(Folder {
                    server_id: "3".into(),
                    parent_id: "0".into(),
                    display_name: "Calendar".into(),
                    folder_type: FolderType::Calendar,
                }),
                FolderChange::Delete {
                    server_id: "4".into()
                },
            ]
        );
    }

    #[test]
    fn too_many_changes_is_a_limit_error() {
        let bytes = wbxml_from_xml(SYNC_RESPONSE);
        let limits = Limits {
            max_entries: 3,
            ..Limits::default()
        };
        let mut p = Parser::with_limits(&bytes[..], limits);
        assert!(matches!(
            read_folder_sync_response(&mut p),
            Err(Error::Limit { .. })
        ));
    }

    #[test]
    fn truncated_and_empty_responses_are_errors() {
        let bytes = wbxml_from_xml(SYNC_RESPONSE);
        for cut in [bytes.len() / 2, bytes.len() - 1, 5] {
            assert!(read_folder_sync_response(&mut parser(&bytes[..cut])).is_err());
        }
        assert!(read_folder_sync_response(&mut parser(&[])).is_err());
    }

    #[test]
    fn unknown_elements_are_skipped_and_missing_type_is_an_error() {
        let xml = "<FolderSync xmlns=\"FolderHierarchy:\" xmlns:airsync=\"AirSync:\">
  <airsync:Limit>3</airsync:Limit>
  <Status>1</Status>
  <SyncKey>2</SyncKey>
</FolderSync>";
        let r = read_folder_sync_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(r.sync_key.as_deref(), Some("2"));
        assert!(r.changes.is_empty());
        let xml = "<FolderSync xmlns=\"FolderHierarchy:\">
  <Status>1</Status>
  <Changes><Add><ServerId>2</ServerId></Add></Changes>
</FolderSync>";
        assert!(matches!(
            read_folder_sync_response(&mut parser(&wbxml_from_xml(xml))),
            Err(Error::Protocol { .. })
        ));
    }

    #[test]
    fn folder_sync_statuses() {
        let cases = [
            (1, FolderSyncStatus::Success, Action::Proceed),
            (6, FolderSyncStatus::ServerError, Action::RetryLater),
            (9, FolderSyncStatus::InvalidSyncKey, Action::ResyncState),
            (10, FolderSyncStatus::BadRequest, Action::FixRequest),
            (11, FolderSyncStatus::UnknownError, Action::RetryLater),
            (12, FolderSyncStatus::CodeUnknown, Action::RetryLater),
            (7, FolderSyncStatus::Unknown(7), Action::RetryLater),
        ];
        for (code, status, action) in cases {
            assert_eq!(FolderSyncStatus::from_code(code), status);
            assert_eq!(status.code(), code);
            assert_eq!(status.action(), action);
        }
        let xml = "<FolderSync xmlns=\"FolderHierarchy:\"><Status>142</Status></FolderSync>";
        let r = read_folder_sync_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(r.common_status(), CommonStatus::from_code(142));
        assert_eq!(r.status.action(), Action::Reprovision);
    }

    #[test]
    fn folder_change_statuses() {
        let cases = [
            (1, FolderChangeStatus::Success, Action::Proceed),
            (2, FolderChangeStatus::NameExists, Action::FixRequest),
            (3, FolderChangeStatus::SpecialFolder, Action::FixRequest),
            (4, FolderChangeStatus::FolderNotFound, Action::ItemGone),
            (5, FolderChangeStatus::ParentNotFound, Action::ItemGone),
            (6, FolderChangeStatus::ServerError, Action::RetryLater),
            (9, FolderChangeStatus::InvalidSyncKey, Action::ResyncState),
            (10, FolderChangeStatus::BadRequest, Action::FixRequest),
            (11, FolderChangeStatus::UnknownError, Action::RetryLater),
            (8, FolderChangeStatus::Unknown(8), Action::RetryLater),
        ];
        for (code, status, action) in cases {
            assert_eq!(FolderChangeStatus::from_code(code), status);
            assert_eq!(status.code(), code);
            assert_eq!(status.action(), action);
        }
    }

    #[test]
    fn change_responses_are_read() {
        let xml = "<FolderCreate xmlns=\"FolderHierarchy:\">
  <Status>1</Status>
  <SyncKey>2</SyncKey>
  <ServerId>22</ServerId>
</FolderCreate>";
        let r = read_folder_create_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(
            r,
            FolderChangeResponse {
                status: FolderChangeStatus::Success,
                sync_key: Some("2".into()),
                server_id: Some("22".into()),
            }
        );
        let xml = "<FolderUpdate xmlns=\"FolderHierarchy:\"><Status>2</Status></FolderUpdate>";
        let r = read_folder_update_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(r.status, FolderChangeStatus::NameExists);
        let xml = "<FolderDelete xmlns=\"FolderHierarchy:\">
  <Status>1</Status>
  <SyncKey>3</SyncKey>
</FolderDelete>";
        let r = read_folder_delete_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(r.sync_key.as_deref(), Some("3"));
        assert_eq!(r.common_status(), None);
        // The wrong root is an error.
        assert!(
            read_folder_delete_response(&mut parser(&wbxml_from_xml(
                xml.replace("Delete", "Update").as_str()
            )))
            .is_err()
        );
    }

    #[test]
    fn folder_types_map_to_classes() {
        for code in 1..=20 {
            assert_eq!(FolderType::from_code(code).code(), code);
        }
        assert_eq!(FolderType::Inbox.class(), Some(Class::Email));
        assert_eq!(FolderType::UserMail.class(), Some(Class::Email));
        assert_eq!(FolderType::UserCalendar.class(), Some(Class::Calendar));
        assert_eq!(FolderType::from_code(14).class(), Some(Class::Contacts));
        assert_eq!(FolderType::from_code(19).class(), Some(Class::Contacts));
        assert_eq!(FolderType::from_code(15).class(), Some(Class::Tasks));
        assert_eq!(FolderType::from_code(17).class(), Some(Class::Notes));
        assert_eq!(FolderType::Journal.class(), None);
        assert_eq!(FolderType::from_code(1).class(), None);
        assert_eq!(FolderType::from_code(99), FolderType::Other(99));
        assert!(FolderType::UserNotes.is_user_created());
        assert!(!FolderType::Calendar.is_user_created());
    }
}
