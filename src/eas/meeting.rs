//! MeetingResponse (MS-ASCMD 2.2.1.11): accept, tentatively accept or decline a meeting
//! request in the Inbox (or found by Search); 16.0 and later can also send the organizer a
//! reply, and 16.1 propose a new time.

use embedded_io::Read;

use super::command::{Command, Request, write_wbxml};
use super::common::read_status_and_entries;
use super::error::{Error, Result};
use super::parse::Parser;
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

const MR: u8 = cp::MEETING_RESPONSE;
const MEETING_RESPONSE: Tag = Tag::named(MR, "MeetingResponse");
const CALENDAR_ID: Tag = Tag::named(MR, "CalendarId");
const COLLECTION_ID: Tag = Tag::named(MR, "CollectionId");
const REQUEST_ID: Tag = Tag::named(MR, "RequestId");
const REQUEST: Tag = Tag::named(MR, "Request");
const RESULT: Tag = Tag::named(MR, "Result");
const STATUS: Tag = Tag::named(MR, "Status");
const USER_RESPONSE: Tag = Tag::named(MR, "UserResponse");
const INSTANCE_ID: Tag = Tag::named(MR, "InstanceId");
const PROPOSED_START_TIME: Tag = Tag::named(MR, "ProposedStartTime");
const PROPOSED_END_TIME: Tag = Tag::named(MR, "ProposedEndTime");
const SEND_RESPONSE: Tag = Tag::named(MR, "SendResponse");
const LONG_ID: Tag = Tag::named(cp::SEARCH, "LongId");
const BODY: Tag = Tag::named(cp::AIRSYNCBASE, "Body");
const TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "Type");
const DATA: Tag = Tag::named(cp::AIRSYNCBASE, "Data");

command_status! {
    /// MeetingResponse status (MS-ASCMD 2.2.3.177.9).
    pub enum Status {
        1 => Success, Proceed, "the response was recorded";
        2 => InvalidMeetingRequest, FixRequest, "the meeting request is invalid (not a meeting request, or gone)";
        3 => MailboxError, RetryLater, "an error occurred on the server mailbox";
        4 => ServerError, RetryLater, "an error occurred on the server";
    }
}

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserResponse {
    Accepted = 1,
    Tentative = 2,
    Declined = 3,
}

/// Which meeting request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A meeting request (or calendar item) by folder and ServerId.
    Item {
        collection_id: String,
        request_id: String,
    },
    /// A meeting request found by Search.
    SearchResult { long_id: String },
}

/// A reply to the organizer (16.0 and later; an empty one sends a reply without a body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendResponse {
    /// The reply's body: type (1 plain text, 2 HTML) and text.
    pub body: Option<(u8, String)>,
    /// A new time to propose, as EAS date-times (16.1; tentative or declined answers only).
    pub proposed_start: Option<String>,
    pub proposed_end: Option<String>,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingAnswer {
    pub response: UserResponse,
    pub target: Target,
    /// One occurrence of a recurring meeting (14.1 and later).
    pub instance_id: Option<String>,
    pub send_response: Option<SendResponse>,
}

/// The MeetingResponse request. Elements a version lacks (InstanceId before 14.1,
/// SendResponse before 16.0, a proposed time before 16.1) are an error.
pub fn request(version: ProtocolVersion, answers: &[MeetingAnswer]) -> Result<Request> {
    if answers.is_empty() {
        return Err(Error::Write(
            "a MeetingResponse request needs at least one answer".into(),
        ));
    }
    // MS-ASCMD 2.2.3.98.2: search:LongId in MeetingResponse exists from 14.0 on.
    if version < ProtocolVersion::V14_0
        && answers
            .iter()
            .any(|a| matches!(a.target, Target::SearchResult { .. }))
    {
        return Err(Error::Write(format!(
            "answering a Search result (LongId) needs protocol 14.0 or later, not {version}"
        )));
    }
    let body = write_wbxml(version, |w| {
        w.start(MEETING_RESPONSE)?;
        for answer in answers {
            w.start(REQUEST)?;
            w.text_element(USER_RESPONSE, &(answer.response as u8).to_string())?;
            match &answer.target {
                Target::Item {
                    collection_id,
                    request_id,
                } => {
                    w.text_element(COLLECTION_ID, collection_id)?;
                    w.text_element(REQUEST_ID, request_id)?;
                }
                Target::SearchResult { long_id } => w.text_element(LONG_ID, long_id)?,
            }
            if let Some(instance) = &answer.instance_id {
                w.text_element(INSTANCE_ID, instance)?;
            }
            if let Some(send) = &answer.send_response {
                if *send == SendResponse::default() {
                    w.empty(SEND_RESPONSE)?;
                    w.end()?;
                    continue;
                }
                w.start(SEND_RESPONSE)?;
                if let Some((body_type, text)) = &send.body {
                    w.start(BODY)?;
                    w.text_element(TYPE, &body_type.to_string())?;
                    w.text_element(DATA, text)?;
                    w.end()?;
                }
                if let Some(start) = &send.proposed_start {
                    w.text_element(PROPOSED_START_TIME, start)?;
                }
                if let Some(end) = &send.proposed_end {
                    w.text_element(PROPOSED_END_TIME, end)?;
                }
                w.end()?;
            }
            w.end()?;
        }
        w.end()
    })?;
    Ok(Request::wbxml(Command::MeetingResponse, body))
}

/// The outcome for one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingResult {
    pub request_id: Option<String>,
    pub long_id: Option<String>,
    pub status: Status,
    /// The calendar item's ServerId (accepted or tentative answers).
    pub calendar_id: Option<String>,
}

/// A MeetingResponse response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// A status for the whole request (common codes such as 142).
    pub status: Option<Status>,
    pub results: Vec<MeetingResult>,
}

impl HasStatus for Response {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.and_then(Status::common)
    }
}

pub fn read_response<R: Read>(p: &mut Parser<R>) -> Result<Response> {
    let (status, results) = read_status_and_entries(
        p,
        MEETING_RESPONSE,
        STATUS,
        Status::read,
        RESULT,
        "the number of MeetingResponse results",
        read_result,
    )?;
    Ok(Response { status, results })
}

fn read_result<R: Read>(p: &mut Parser<R>) -> Result<MeetingResult> {
    let (mut request_id, mut long_id, mut status, mut calendar_id) = (None, None, None, None);
    while let Some(field) = p.next_child()? {
        match field.tag {
            REQUEST_ID => request_id = Some(p.text(field)?),
            LONG_ID => long_id = Some(p.text(field)?),
            STATUS => status = Some(Status::read(p, field)?),
            CALENDAR_ID => calendar_id = Some(p.text(field)?),
            _ => p.skip(field)?,
        }
    }
    let status = status.ok_or_else(|| p.error("a MeetingResponse Result has no Status"))?;
    Ok(MeetingResult {
        request_id,
        long_id,
        status,
        calendar_id,
    })
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::Action;
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};

    fn answer() -> MeetingAnswer {
        MeetingAnswer {
            response: UserResponse::Accepted,
            target: Target::Item {
                collection_id: "5".into(),
                request_id: "5:9".into(),
            },
            instance_id: None,
            send_response: None,
        }
    }

    #[test]
    fn request_14_0_by_item_and_by_search_result() {
        let mut second = answer();
        second.response = UserResponse::Declined;
        second.target = Target::SearchResult {
            long_id: "L7".into(),
        };
        let req = request(ProtocolVersion::V14_0, &[answer(), second]).unwrap();
        assert_eq!(req.command, Command::MeetingResponse);
        assert_eq!(
            request_xml(&req),
            "<MeetingResponse xmlns=\"MeetingResponse:\">\n  <Request>\n    <UserResponse>1</UserResponse>\n    \
             <CollectionId>5</CollectionId>\n    <RequestId>5:9</RequestId>\n  </Request>\n  <Request>\n    \
             <UserResponse>3</UserResponse>\n    <search:LongId xmlns:search=\"Search:\">L7</search:LongId>\n  \
             </Request>\n</MeetingResponse>"
        );
    }

    #[test]
    fn request_14_1_with_instance() {
        let mut a = answer();
        a.response = UserResponse::Tentative;
        a.instance_id = Some("2026-03-02T09:00:00.000Z".into());
        let req = request(ProtocolVersion::V14_1, &[a.clone()]).unwrap();
        assert_eq!(
            request_xml(&req),
            "<MeetingResponse xmlns=\"MeetingResponse:\">\n  <Request>\n    <UserResponse>2</UserResponse>\n    \
             <CollectionId>5</CollectionId>\n    <RequestId>5:9</RequestId>\n    \
             <InstanceId>2026-03-02T09:00:00.000Z</InstanceId>\n  </Request>\n</MeetingResponse>"
        );
        assert!(
            request(ProtocolVersion::V14_0, &[a]).is_err(),
            "InstanceId is 14.1+"
        );
    }

    #[test]
    fn request_16_with_send_response() {
        let mut a = answer();
        a.response = UserResponse::Tentative;
        a.send_response = Some(SendResponse {
            body: Some((1, "How about later?".into())),
            proposed_start: Some("2026-03-02T15:00:00.000Z".into()),
            proposed_end: Some("2026-03-02T16:00:00.000Z".into()),
        });
        let req = request(ProtocolVersion::V16_1, &[a.clone()]).unwrap();
        assert_eq!(
            request_xml(&req),
            "<MeetingResponse xmlns=\"MeetingResponse:\">\n  <Request>\n    <UserResponse>2</UserResponse>\n    \
             <CollectionId>5</CollectionId>\n    <RequestId>5:9</RequestId>\n    <SendResponse>\n      \
             <airsyncbase:Body xmlns:airsyncbase=\"AirSyncBase:\">\n        <airsyncbase:Type>1</airsyncbase:Type>\n        \
             <airsyncbase:Data>How about later?</airsyncbase:Data>\n      </airsyncbase:Body>\n      \
             <ProposedStartTime>2026-03-02T15:00:00.000Z</ProposedStartTime>\n      \
             <ProposedEndTime>2026-03-02T16:00:00.000Z</ProposedEndTime>\n    </SendResponse>\n  </Request>\n</MeetingResponse>"
        );
        assert!(
            request(ProtocolVersion::V16_0, &[a]).is_err(),
            "proposals are 16.1"
        );
        let mut plain = answer();
        plain.send_response = Some(SendResponse::default());
        assert!(
            request_xml(&request(ProtocolVersion::V16_0, &[plain.clone()]).unwrap())
                .contains("<SendResponse/>")
        );
        assert!(
            request(ProtocolVersion::V14_1, &[plain]).is_err(),
            "SendResponse is 16.0+"
        );
        assert!(request(ProtocolVersion::V16_1, &[]).is_err());
    }

    const RESPONSE_XML: &str = "<MeetingResponse xmlns=\"MeetingResponse:\">
  <Result>
    <RequestId>5:9</RequestId>
    <Status>1</Status>
    <CalendarId>2:4</CalendarId>
  </Result>
  <Result>
    <RequestId>5:10</RequestId>
    <Status>2</Status>
  </Result>
</MeetingResponse>";

    #[test]
    fn results() {
        let bytes = wbxml_from_xml(RESPONSE_XML);
        let r = read_response(&mut parser(&bytes)).unwrap();
        assert_eq!(r.common_status(), None);
        assert_eq!(
            r.results,
            vec![
                MeetingResult {
                    request_id: Some("5:9".into()),
                    long_id: None,
                    status: Status::Success,
                    calendar_id: Some("2:4".into())
                },
                MeetingResult {
                    request_id: Some("5:10".into()),
                    long_id: None,
                    status: Status::InvalidMeetingRequest,
                    calendar_id: None
                }
            ]
        );
        for len in 1..bytes.len() {
            assert!(
                read_response(&mut parser(&bytes[..len])).is_err(),
                "cut at {len}"
            );
        }
        assert!(read_response(&mut parser(&[])).is_err());
        let global = wbxml_from_xml(
            "<MeetingResponse xmlns=\"MeetingResponse:\">\n  <Status>144</Status>\n</MeetingResponse>",
        );
        let r = read_response(&mut parser(&global)).unwrap();
        assert_eq!(r.common_status(), Some(CommonStatus::InvalidPolicyKey));
    }

    #[test]
    fn status_codes() {
        for code in 1..=4 {
            assert_eq!(Status::from_code(code).code(), code);
            assert!(!matches!(Status::from_code(code), Status::Unknown(_)));
        }
        assert_eq!(Status::from_code(5), Status::Unknown(5));
        assert_eq!(Status::from_code(2).action(), Action::FixRequest);
        assert_eq!(Status::from_code(3).action(), Action::RetryLater);
        assert_eq!(Status::from_code(4).action(), Action::RetryLater);
    }

    #[test]
    fn a_search_result_cannot_be_answered_before_14_0() {
        let answer = MeetingAnswer {
            response: UserResponse::Accepted,
            target: Target::SearchResult {
                long_id: "RgAAAAD".into(),
            },
            instance_id: None,
            send_response: None,
        };
        let err = request(ProtocolVersion::V12_1, std::slice::from_ref(&answer)).unwrap_err();
        assert!(err.to_string().contains("14.0"), "{err}");
        assert!(request(ProtocolVersion::V14_0, &[answer]).is_ok());
    }
}
