//! MoveItems (MS-ASCMD 2.2.1.12): move items between folders; the server answers per item
//! with a status and the item's new ServerId.

use embedded_io::Read;

use super::command::{Command, Request, write_wbxml};
use super::common::read_status_and_entries;
use super::error::{Error, Result};
use super::parse::Parser;
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

const MOVE_ITEMS: Tag = Tag::named(cp::MOVE, "MoveItems");
const MOVE: Tag = Tag::named(cp::MOVE, "Move");
const SRC_MSG_ID: Tag = Tag::named(cp::MOVE, "SrcMsgId");
const SRC_FLD_ID: Tag = Tag::named(cp::MOVE, "SrcFldId");
const DST_FLD_ID: Tag = Tag::named(cp::MOVE, "DstFldId");
const RESPONSE: Tag = Tag::named(cp::MOVE, "Response");
const STATUS: Tag = Tag::named(cp::MOVE, "Status");
const DST_MSG_ID: Tag = Tag::named(cp::MOVE, "DstMsgId");

command_status! {
    /// MoveItems status (MS-ASCMD 2.2.3.177.10). Note that success is 3.
    pub enum Status {
        1 => InvalidSource, ResyncState, "the source folder or item is unknown (deleted or moved already): run FolderSync";
        2 => InvalidDestination, ResyncState, "the destination folder is unknown: run FolderSync";
        3 => Success, Proceed, "the item was moved";
        4 => SameFolder, FixRequest, "source and destination folder are the same";
        5 => MoveFailed, RetryLater, "the move failed (several destinations, or the item is locked)";
        7 => Locked, RetryLater, "the source or destination item is locked";
    }
}

/// One item to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The item's ServerId.
    pub item: String,
    pub source_folder: String,
    pub destination_folder: String,
}

/// The MoveItems request (the same in every version).
pub fn request(version: ProtocolVersion, moves: &[Move]) -> Result<Request> {
    if moves.is_empty() {
        return Err(Error::Write(
            "a MoveItems request needs at least one item".into(),
        ));
    }
    let body = write_wbxml(version, |w| {
        w.start(MOVE_ITEMS)?;
        for m in moves {
            w.start(MOVE)?;
            w.text_element(SRC_MSG_ID, &m.item)?;
            w.text_element(SRC_FLD_ID, &m.source_folder)?;
            w.text_element(DST_FLD_ID, &m.destination_folder)?;
            w.end()?;
        }
        w.end()
    })?;
    Ok(Request::wbxml(Command::MoveItems, body))
}

/// The outcome for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveResult {
    /// The item's old ServerId.
    pub source_item: Option<String>,
    pub status: Status,
    /// The item's new ServerId (on success).
    pub destination_item: Option<String>,
}

/// A MoveItems response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// A status for the whole request (rare; common codes such as 142).
    pub status: Option<Status>,
    pub results: Vec<MoveResult>,
}

impl HasStatus for Response {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.and_then(Status::common)
    }
}

pub fn read_response<R: Read>(p: &mut Parser<R>) -> Result<Response> {
    let (status, results) = read_status_and_entries(
        p,
        MOVE_ITEMS,
        STATUS,
        Status::read,
        RESPONSE,
        "the number of MoveItems responses",
        read_result,
    )?;
    Ok(Response { status, results })
}

fn read_result<R: Read>(p: &mut Parser<R>) -> Result<MoveResult> {
    let (mut source_item, mut status, mut destination_item) = (None, None, None);
    while let Some(field) = p.next_child()? {
        match field.tag {
            SRC_MSG_ID => source_item = Some(p.text(field)?),
            STATUS => status = Some(Status::read(p, field)?),
            DST_MSG_ID => destination_item = Some(p.text(field)?),
            _ => p.skip(field)?,
        }
    }
    let status = status.ok_or_else(|| p.error("a MoveItems Response has no Status"))?;
    Ok(MoveResult {
        source_item,
        status,
        destination_item,
    })
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};
    use crate::eas::{Action, Limits};

    #[test]
    fn request_is_the_same_in_every_version() {
        let moves = [
            Move {
                item: "5:1".into(),
                source_folder: "5".into(),
                destination_folder: "9".into(),
            },
            Move {
                item: "5:2".into(),
                source_folder: "5".into(),
                destination_folder: "9".into(),
            },
        ];
        let expected = "<MoveItems xmlns=\"Move:\">\n  <Move>\n    <SrcMsgId>5:1</SrcMsgId>\n    \
                        <SrcFldId>5</SrcFldId>\n    <DstFldId>9</DstFldId>\n  </Move>\n  <Move>\n    \
                        <SrcMsgId>5:2</SrcMsgId>\n    <SrcFldId>5</SrcFldId>\n    <DstFldId>9</DstFldId>\n  \
                        </Move>\n</MoveItems>";
        for version in [
            ProtocolVersion::V12_1,
            ProtocolVersion::V14_1,
            ProtocolVersion::V16_1,
        ] {
            let req = request(version, &moves).unwrap();
            assert_eq!(req.command, Command::MoveItems);
            assert_eq!(request_xml(&req), expected);
        }
        assert!(request(ProtocolVersion::V16_1, &[]).is_err());
    }

    const RESPONSE_XML: &str = "<MoveItems xmlns=\"Move:\">
  <Response>
    <SrcMsgId>5:1</SrcMsgId>
    <Status>3</Status>
    <DstMsgId>9:1</DstMsgId>
  </Response>
  <Response>
    <SrcMsgId>5:2</SrcMsgId>
    <Status>1</Status>
  </Response>
  <Response>
    <SrcMsgId>5:3</SrcMsgId>
    <Status>7</Status>
    <SrcFldId>ignored</SrcFldId>
  </Response>
</MoveItems>";

    #[test]
    fn per_item_results() {
        let bytes = wbxml_from_xml(RESPONSE_XML);
        let r = read_response(&mut parser(&bytes)).unwrap();
        assert_eq!(r.status, None);
        assert_eq!(r.common_status(), None);
        assert_eq!(
            r.results,
            vec![
                MoveResult {
                    source_item: Some("5:1".into()),
                    status: Status::Success,
                    destination_item: Some("9:1".into())
                },
                MoveResult {
                    source_item: Some("5:2".into()),
                    status: Status::InvalidSource,
                    destination_item: None
                },
                MoveResult {
                    source_item: Some("5:3".into()),
                    status: Status::Locked,
                    destination_item: None
                },
            ]
        );
    }

    #[test]
    fn global_status_and_errors() {
        let bytes =
            wbxml_from_xml("<MoveItems xmlns=\"Move:\">\n  <Status>143</Status>\n</MoveItems>");
        let r = read_response(&mut parser(&bytes)).unwrap();
        assert_eq!(r.common_status(), Some(CommonStatus::PolicyRefresh));
        assert!(read_response(&mut parser(&[])).is_err(), "empty body");
        let bytes = wbxml_from_xml(RESPONSE_XML);
        for len in 1..bytes.len() {
            assert!(
                read_response(&mut parser(&bytes[..len])).is_err(),
                "cut at {len}"
            );
        }
        let no_status = wbxml_from_xml(
            "<MoveItems xmlns=\"Move:\">\n  <Response>\n    <SrcMsgId>1</SrcMsgId>\n  </Response>\n</MoveItems>",
        );
        assert!(read_response(&mut parser(&no_status)).is_err());
        let limits = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        let err = read_response(&mut Parser::with_limits(&bytes[..], limits)).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
    }

    #[test]
    fn status_codes() {
        for code in 1..=7 {
            let s = Status::from_code(code);
            assert_eq!(s.code(), code);
            assert_eq!(matches!(s, Status::Unknown(_)), code == 6);
        }
        assert_eq!(Status::from_code(3).action(), Action::Proceed);
        assert_eq!(Status::from_code(1).action(), Action::ResyncState);
        assert_eq!(Status::from_code(4).action(), Action::FixRequest);
        assert_eq!(Status::from_code(5).action(), Action::RetryLater);
    }
}
