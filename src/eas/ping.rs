//! The Ping command (MS-ASCMD 2.2.1.13): a long-held request that returns when one of the
//! watched folders changes or the heartbeat interval runs out. An empty Ping body repeats the
//! previous Ping's folders and interval.

use embedded_io::Read;

use super::command::{Body, Command, Request, write_wbxml};
use super::error::Result;
use super::item::{Class, read_id};
use super::parse::Parser;
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

pub(crate) const PING: Tag = Tag::named(cp::PING, "Ping");
pub(crate) const STATUS: Tag = Tag::named(cp::PING, "Status");
pub(crate) const HEARTBEAT_INTERVAL: Tag = Tag::named(cp::PING, "HeartbeatInterval");
pub(crate) const FOLDERS: Tag = Tag::named(cp::PING, "Folders");
pub(crate) const FOLDER: Tag = Tag::named(cp::PING, "Folder");
pub(crate) const ID: Tag = Tag::named(cp::PING, "Id");
pub(crate) const CLASS: Tag = Tag::named(cp::PING, "Class");
pub(crate) const MAX_FOLDERS: Tag = Tag::named(cp::PING, "MaxFolders");

/// A folder to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingFolder {
    pub id: String,
    pub class: Class,
}

/// A full Ping request: seconds to wait and the folders to watch.
pub fn request(
    version: ProtocolVersion,
    heartbeat_interval: u32,
    folders: &[PingFolder],
) -> Result<Request> {
    let body = write_wbxml(version, |w| {
        w.start(PING)?;
        w.text_element(HEARTBEAT_INTERVAL, &heartbeat_interval.to_string())?;
        if !folders.is_empty() {
            w.start(FOLDERS)?;
            for f in folders {
                w.start(FOLDER)?;
                w.text_element(ID, &f.id)?;
                w.text_element(CLASS, f.class.as_str())?;
                w.end()?;
            }
            w.end()?;
        }
        w.end()
    })?;
    Ok(Request::wbxml(Command::Ping, body))
}

/// An empty Ping: the server repeats the last Ping it got from this device. After status 3
/// send a full [`request`] instead.
pub fn empty_request() -> Request {
    Request {
        command: Command::Ping,
        params: Vec::new(),
        body: Body::Empty,
    }
}

command_status! {
    /// The status of a Ping response (MS-ASCMD 2.2.3.177.11). 3, 5 and 6 are
    /// [`Action::FixRequest`](super::Action::FixRequest): send a full Ping, with the server's bound applied for 5 and 6.
    /// 7 is [`Action::SyncFolders`](super::Action::SyncFolders); an unknown code is [`Action::RetryLater`](super::Action::RetryLater).
    pub enum Status {
        1 => Expired, Proceed, "the interval ran out with no changes: Ping again";
        /// [`PingResponse::folders`] lists them.
        2 => ChangesFound, Proceed, "folders changed: Sync them, then Ping again";
        3 => MissingParameters, FixRequest, "an empty Ping with nothing to repeat: send the full request";
        4 => SyntaxError, FixRequest, "the request was malformed";
        /// [`PingResponse::heartbeat_interval`] is the bound to use.
        5 => InvalidHeartbeatInterval, FixRequest, "the interval is outside the server's bounds";
        /// [`PingResponse::max_folders`] is the most allowed.
        6 => TooManyFolders, FixRequest, "too many folders";
        7 => FolderSyncRequired, SyncFolders, "the folder hierarchy changed: FolderSync, then Ping again";
        8 => ServerError, RetryLater, "server error: Ping again later";
    }
    unknown => RetryLater
}

/// A Ping response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingResponse {
    pub status: Status,
    /// Status 2: the ids of the folders that changed.
    pub folders: Vec<String>,
    /// Status 5: the shortest or longest interval the server accepts.
    pub heartbeat_interval: Option<u32>,
    /// Status 6: the most folders the server watches.
    pub max_folders: Option<u32>,
}

impl HasStatus for PingResponse {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.common()
    }
}

/// Reads a Ping response. The number of folder ids is bounded by
/// [`Limits::max_entries`](super::Limits).
pub fn read_response<R: Read>(p: &mut Parser<R>) -> Result<PingResponse> {
    if p.root(PING)?.is_none() {
        return Err(p.error("the Ping response is empty"));
    }
    let mut status = None;
    let mut folders = Vec::new();
    let mut heartbeat_interval = None;
    let mut max_folders = None;
    while let Some(c) = p.next_child()? {
        match c.tag {
            STATUS => status = Some(Status::read(p, c)?),
            HEARTBEAT_INTERVAL => heartbeat_interval = Some(p.number(c)?),
            MAX_FOLDERS => max_folders = Some(p.number(c)?),
            FOLDERS => {
                while let Some(f) = p.next_child()? {
                    if f.tag != FOLDER {
                        p.skip(f)?;
                        continue;
                    }
                    p.check_entries(folders.len(), "changed folders", f.offset)?;
                    folders.push(read_id(p, f)?);
                }
            }
            _ => p.skip(c)?,
        }
    }
    p.finish()?;
    Ok(PingResponse {
        status: status.ok_or_else(|| p.error("the Ping response has no Status"))?,
        folders,
        heartbeat_interval,
        max_folders,
    })
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};
    use crate::eas::{Action, Error, Limits};

    #[test]
    fn request_shape_is_the_same_in_every_version() {
        let folders = [
            PingFolder {
                id: "5".into(),
                class: Class::Email,
            },
            PingFolder {
                id: "7".into(),
                class: Class::Calendar,
            },
        ];
        for v in [
            ProtocolVersion::V12_1,
            ProtocolVersion::V14_1,
            ProtocolVersion::V16_1,
        ] {
            let r = request(v, 480, &folders).unwrap();
            assert_eq!(r.command, Command::Ping);
            assert_eq!(
                request_xml(&r),
                "<Ping xmlns=\"Ping:\">
  <HeartbeatInterval>480</HeartbeatInterval>
  <Folders>
    <Folder>
      <Id>5</Id>
      <Class>Email</Class>
    </Folder>
    <Folder>
      <Id>7</Id>
      <Class>Calendar</Class>
    </Folder>
  </Folders>
</Ping>"
            );
        }
        let e = empty_request();
        assert_eq!(e.body, Body::Empty);
        assert_eq!(e.command, Command::Ping);
    }

    #[test]
    fn changes_are_read() {
        let xml = "<Ping xmlns=\"Ping:\">
  <Status>2</Status>
  <Folders>
    <Folder>5</Folder>
    <Folder>7</Folder>
  </Folders>
</Ping>";
        let r = read_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(r.status, Status::ChangesFound);
        assert_eq!(r.folders, vec!["5".to_string(), "7".to_string()]);
        assert_eq!(r.status.action(), Action::Proceed);

        let limits = Limits {
            max_entries: 1,
            ..Limits::default()
        };
        let bytes = wbxml_from_xml(xml);
        let mut p = Parser::with_limits(&bytes[..], limits);
        assert!(matches!(read_response(&mut p), Err(Error::Limit { .. })));
        for cut in [bytes.len() / 2, bytes.len() - 1] {
            assert!(read_response(&mut parser(&bytes[..cut])).is_err());
        }
    }

    #[test]
    fn bounds_are_read() {
        let xml = "<Ping xmlns=\"Ping:\">
  <Status>5</Status>
  <HeartbeatInterval>60</HeartbeatInterval>
</Ping>";
        let r = read_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(r.status, Status::InvalidHeartbeatInterval);
        assert_eq!(r.heartbeat_interval, Some(60));
        let xml = "<Ping xmlns=\"Ping:\" xmlns:airsync=\"AirSync:\">
  <airsync:Limit>1</airsync:Limit>
  <Status>6</Status>
  <MaxFolders>10</MaxFolders>
</Ping>";
        let r = read_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(r.status, Status::TooManyFolders);
        assert_eq!(r.max_folders, Some(10));
    }

    #[test]
    fn every_status() {
        let cases = [
            (1, Status::Expired, Action::Proceed),
            (2, Status::ChangesFound, Action::Proceed),
            (3, Status::MissingParameters, Action::FixRequest),
            (4, Status::SyntaxError, Action::FixRequest),
            (5, Status::InvalidHeartbeatInterval, Action::FixRequest),
            (6, Status::TooManyFolders, Action::FixRequest),
            (7, Status::FolderSyncRequired, Action::SyncFolders),
            (8, Status::ServerError, Action::RetryLater),
            (9, Status::Unknown(9), Action::RetryLater),
        ];
        for (code, status, action) in cases {
            assert_eq!(Status::from_code(code), status);
            assert_eq!(status.code(), code);
            assert_eq!(status.action(), action);
        }
        let xml = "<Ping xmlns=\"Ping:\"><Status>177</Status></Ping>";
        let r = read_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(r.common_status(), CommonStatus::from_code(177));
        assert_eq!(r.status.action(), Action::Blocked);
    }

    #[test]
    fn empty_or_statusless_response_is_an_error() {
        assert!(read_response(&mut parser(&[])).is_err());
        let xml = "<Ping xmlns=\"Ping:\"><HeartbeatInterval>5</HeartbeatInterval></Ping>";
        assert!(matches!(
            read_response(&mut parser(&wbxml_from_xml(xml))),
            Err(Error::Protocol { .. })
        ));
    }
}
