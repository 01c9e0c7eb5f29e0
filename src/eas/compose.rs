//! SendMail, SmartReply and SmartForward (MS-ASCMD 2.2.1.16, 2.2.1.18, 2.2.1.17): send a
//! MIME message, or reply to or forward a message the server has, letting the server add the
//! original.
//!
//! The MIME message streams from the caller's reader of known length: on 14.0 and later the
//! request is ComposeMail WBXML around it ([`Body::WbxmlAroundMime`], the head ending with
//! the opaque header for the message); on 12.1 it is the bare message (`message/rfc822`)
//! with the options on the request line. A success is an empty response body.

use embedded_io::Read;

use super::command::{Body, Command, Request, write_wbxml};
use super::error::{Error, Result};
use super::parse::Parser;
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

const CM: u8 = cp::COMPOSE_MAIL;
const SEND_MAIL: Tag = Tag::named(CM, "SendMail");
const SMART_FORWARD: Tag = Tag::named(CM, "SmartForward");
const SMART_REPLY: Tag = Tag::named(CM, "SmartReply");
const SAVE_IN_SENT_ITEMS: Tag = Tag::named(CM, "SaveInSentItems");
const REPLACE_MIME: Tag = Tag::named(CM, "ReplaceMime");
const SOURCE: Tag = Tag::named(CM, "Source");
const FOLDER_ID: Tag = Tag::named(CM, "FolderId");
const ITEM_ID: Tag = Tag::named(CM, "ItemId");
const LONG_ID: Tag = Tag::named(CM, "LongId");
const INSTANCE_ID: Tag = Tag::named(CM, "InstanceId");
const MIME: Tag = Tag::named(CM, "Mime");
const CLIENT_ID: Tag = Tag::named(CM, "ClientId");
const STATUS: Tag = Tag::named(CM, "Status");
const ACCOUNT_ID: Tag = Tag::named(CM, "AccountId");

command_status! {
    /// A ComposeMail status (MS-ASCMD 2.2.3.177.13): the server sends one only on failure,
    /// and only common codes (e.g. 118 previously sent, 120 submission failed).
    pub enum Status {
        1 => Success, Proceed, "success";
    }
}

/// The original message of a reply or forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// The folder (CollectionId) holding the original.
    pub folder_id: Option<String>,
    /// The original's ServerId.
    pub item_id: Option<String>,
    /// The original as a Search result (instead of folder and item).
    pub long_id: Option<String>,
    /// One occurrence of a recurring meeting (its start time).
    pub instance_id: Option<String>,
}

/// Which command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    SendMail,
    SmartReply(Source),
    SmartForward(Source),
}

impl Kind {
    pub fn command(&self) -> Command {
        match self {
            Kind::SendMail => Command::SendMail,
            Kind::SmartReply(_) => Command::SmartReply,
            Kind::SmartForward(_) => Command::SmartForward,
        }
    }

    fn root(&self) -> Tag {
        match self {
            Kind::SendMail => SEND_MAIL,
            Kind::SmartReply(_) => SMART_REPLY,
            Kind::SmartForward(_) => SMART_FORWARD,
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compose {
    pub kind: Kind,
    /// A client-chosen id unique per message, so a repeated request is not sent twice
    /// (14.0 and later; the server answers 118 for a repeat).
    pub client_id: String,
    /// Send from this account (14.1 and later).
    pub account_id: Option<String>,
    pub save_in_sent_items: bool,
    /// Send the MIME as it is, without the original (SmartReply/SmartForward, 14.0+).
    pub replace_mime: bool,
    /// Length in bytes of the MIME message the transport will stream.
    pub mime_len: u64,
}

/// The request for `message`. The body's `len` bytes of MIME come from the caller's reader.
pub fn request(version: ProtocolVersion, message: &Compose) -> Result<Request> {
    if message.replace_mime && matches!(message.kind, Kind::SendMail) {
        return Err(Error::Write(
            "ReplaceMime applies to SmartReply and SmartForward only".into(),
        ));
    }
    if let Kind::SmartReply(source) | Kind::SmartForward(source) = &message.kind {
        if source.item_id.is_none() && source.long_id.is_none() {
            return Err(Error::Write(
                "a reply or forward must name the original message by ItemId or LongId".into(),
            ));
        }
    }
    if version < ProtocolVersion::V14_0 {
        return request_12_1(message);
    }
    let mime_len = u32::try_from(message.mime_len).map_err(|_| {
        Error::Write(format!(
            "the message is {} bytes, more than a WBXML opaque value can hold (4 GiB)",
            message.mime_len
        ))
    })?;
    let mut split = 0;
    let bytes = write_wbxml(version, |w| {
        w.start(message.kind.root())?;
        w.text_element(CLIENT_ID, &message.client_id)?;
        if let Kind::SmartReply(source) | Kind::SmartForward(source) = &message.kind {
            w.start(SOURCE)?;
            let fields = [
                (FOLDER_ID, &source.folder_id),
                (ITEM_ID, &source.item_id),
                (LONG_ID, &source.long_id),
                (INSTANCE_ID, &source.instance_id),
            ];
            for (tag, value) in fields {
                if let Some(value) = value {
                    w.text_element(tag, value)?;
                }
            }
            w.end()?;
        }
        if let Some(account) = &message.account_id {
            w.text_element(ACCOUNT_ID, account)?;
        }
        if message.save_in_sent_items {
            w.empty(SAVE_IN_SENT_ITEMS)?;
        }
        if message.replace_mime {
            w.empty(REPLACE_MIME)?;
        }
        w.start(MIME)?;
        w.opaque_header(mime_len)?;
        split = w.offset() as usize;
        w.end()?;
        w.end()
    })?;
    let (head, tail) = bytes.split_at(split);
    Ok(Request {
        command: message.kind.command(),
        params: Vec::new(),
        body: Body::WbxmlAroundMime {
            head: head.to_vec(),
            len: message.mime_len,
            tail: tail.to_vec(),
        },
    })
}

/// 12.1: the bare message, options as request-line parameters (MS-ASHTTP 2.2.1.1.1.1.3).
fn request_12_1(message: &Compose) -> Result<Request> {
    if message.account_id.is_some() {
        return Err(Error::Write(
            "AccountId needs protocol 14.1 or later".into(),
        ));
    }
    if message.replace_mime {
        return Err(Error::Write(
            "ReplaceMime needs protocol 14.0 or later".into(),
        ));
    }
    let mut params = Vec::new();
    if let Kind::SmartReply(source) | Kind::SmartForward(source) = &message.kind {
        if source.instance_id.is_some() {
            return Err(Error::Write(
                "replying to one occurrence (InstanceId) needs protocol 14.0 or later".into(),
            ));
        }
        match (&source.folder_id, &source.item_id, &source.long_id) {
            (Some(folder), Some(item), None) => {
                params.push(("ItemId", item.clone()));
                params.push(("CollectionId", folder.clone()));
            }
            (None, None, Some(long_id)) => params.push(("LongId", long_id.clone())),
            _ => {
                return Err(Error::Write(
                    "on protocol 12.1 the original message is named by FolderId and ItemId, \
                     or by LongId alone"
                        .into(),
                ));
            }
        }
    }
    if message.save_in_sent_items {
        params.push(("SaveInSent", "T".to_string()));
    }
    Ok(Request {
        command: message.kind.command(),
        params,
        body: Body::Mime {
            len: message.mime_len,
        },
    })
}

/// The outcome: `None` status means the server accepted the message (empty body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: Option<Status>,
}

impl Response {
    /// Whether the message was accepted (a repeat of one already sent, 118, counts).
    pub fn sent(&self) -> bool {
        match self.status {
            None | Some(Status::Success) => true,
            Some(status) => status.common() == Some(CommonStatus::MessagePreviouslySent),
        }
    }
}

impl HasStatus for Response {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.and_then(Status::common)
    }
}

/// Reads the response to a `kind` request: empty means success, else the root holds a
/// Status.
pub fn read_response<R: Read>(p: &mut Parser<R>, kind: &Kind) -> Result<Response> {
    if p.root(kind.root())?.is_none() {
        return Ok(Response { status: None });
    }
    let mut status = None;
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(Status::read(p, child)?),
            _ => p.skip(child)?,
        }
    }
    p.finish()?;
    if status.is_none() {
        return Err(p.error(format!(
            "the {} response has a body but no Status",
            kind.command()
        )));
    }
    Ok(Response { status })
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::Action;
    use crate::eas::testutil::{parser, wbxml_from_xml, xml_from_wbxml};

    fn message(kind: Kind) -> Compose {
        Compose {
            kind,
            client_id: "c-17".into(),
            account_id: None,
            save_in_sent_items: true,
            replace_mime: false,
            mime_len: 5,
        }
    }

    fn source() -> Source {
        Source {
            folder_id: Some("5".into()),
            item_id: Some("5:3".into()),
            ..Source::default()
        }
    }

    /// The request body with `mime` spliced in, as the transport would send it.
    fn assembled(req: &Request, mime: &[u8]) -> Vec<u8> {
        let Body::WbxmlAroundMime { head, len, tail } = &req.body else {
            panic!("expected WBXML around MIME, got {:?}", req.body)
        };
        assert_eq!(*len, mime.len() as u64);
        [head.as_slice(), mime, tail.as_slice()].concat()
    }

    #[test]
    fn send_mail_14_1() {
        let mut m = message(Kind::SendMail);
        m.account_id = Some("acct".into());
        let req = request(ProtocolVersion::V14_1, &m).unwrap();
        assert_eq!(req.command, Command::SendMail);
        assert!(req.params.is_empty());
        assert_eq!(
            xml_from_wbxml(&assembled(&req, b"hello")),
            "<SendMail xmlns=\"ComposeMail:\">\n  <ClientId>c-17</ClientId>\n  <AccountId>acct</AccountId>\n  \
             <SaveInSentItems/>\n  <Mime opaque=\"base64\">aGVsbG8=</Mime>\n</SendMail>"
        );
        let Body::WbxmlAroundMime { head, tail, .. } = &req.body else {
            panic!()
        };
        // The head ends with OPAQUE and the length; the tail closes Mime and SendMail.
        assert_eq!(&head[head.len() - 2..], &[0xC3, 5]);
        assert_eq!(tail, &[0x01, 0x01]);
        assert_eq!(req.body.len(), (head.len() + 5 + tail.len()) as u64);
    }

    #[test]
    fn smart_reply_and_forward_14_0_and_16_1() {
        let mut m = message(Kind::SmartReply(source()));
        m.replace_mime = true;
        let req = request(ProtocolVersion::V14_0, &m).unwrap();
        assert_eq!(req.command, Command::SmartReply);
        assert_eq!(
            xml_from_wbxml(&assembled(&req, b"hello")),
            "<SmartReply xmlns=\"ComposeMail:\">\n  <ClientId>c-17</ClientId>\n  <Source>\n    \
             <FolderId>5</FolderId>\n    <ItemId>5:3</ItemId>\n  </Source>\n  <SaveInSentItems/>\n  \
             <ReplaceMime/>\n  <Mime opaque=\"base64\">aGVsbG8=</Mime>\n</SmartReply>"
        );
        let mut m = message(Kind::SmartForward(Source {
            long_id: Some("L1".into()),
            instance_id: Some("2026-01-01T10:00:00.000Z".into()),
            ..Source::default()
        }));
        m.save_in_sent_items = false;
        let req = request(ProtocolVersion::V16_1, &m).unwrap();
        assert_eq!(req.command, Command::SmartForward);
        assert_eq!(
            xml_from_wbxml(&assembled(&req, b"hello")),
            "<SmartForward xmlns=\"ComposeMail:\">\n  <ClientId>c-17</ClientId>\n  <Source>\n    \
             <LongId>L1</LongId>\n    <InstanceId>2026-01-01T10:00:00.000Z</InstanceId>\n  </Source>\n  \
             <Mime opaque=\"base64\">aGVsbG8=</Mime>\n</SmartForward>"
        );
    }

    #[test]
    fn requests_12_1_are_bare_mime_with_parameters() {
        let req = request(ProtocolVersion::V12_1, &message(Kind::SendMail)).unwrap();
        assert_eq!(req.body, Body::Mime { len: 5 });
        assert_eq!(req.params, vec![("SaveInSent", "T".to_string())]);
        let req = request(
            ProtocolVersion::V12_1,
            &message(Kind::SmartForward(source())),
        )
        .unwrap();
        assert_eq!(req.command, Command::SmartForward);
        assert_eq!(
            req.params,
            vec![
                ("ItemId", "5:3".to_string()),
                ("CollectionId", "5".to_string()),
                ("SaveInSent", "T".to_string())
            ]
        );
        let mut m = message(Kind::SmartReply(Source {
            long_id: Some("L".into()),
            ..Source::default()
        }));
        m.save_in_sent_items = false;
        let req = request(ProtocolVersion::V12_1, &m).unwrap();
        assert_eq!(req.params, vec![("LongId", "L".to_string())]);
    }

    #[test]
    fn impossible_requests_are_refused() {
        let mut m = message(Kind::SendMail);
        m.account_id = Some("a".into());
        assert!(
            request(ProtocolVersion::V14_0, &m).is_err(),
            "AccountId is 14.1+"
        );
        assert!(request(ProtocolVersion::V12_1, &m).is_err());
        let mut m = message(Kind::SendMail);
        m.replace_mime = true;
        assert!(request(ProtocolVersion::V16_1, &m).is_err());
        assert!(request(ProtocolVersion::V12_1, &m).is_err());
        let m = message(Kind::SmartReply(Source::default()));
        assert!(request(ProtocolVersion::V12_1, &m).is_err());
        let err = request(ProtocolVersion::V16_1, &m).unwrap_err();
        assert!(err.to_string().contains("ItemId or LongId"), "{err}");
        let mut m = message(Kind::SendMail);
        m.mime_len = u64::from(u32::MAX) + 1;
        assert!(request(ProtocolVersion::V16_1, &m).is_err());
    }

    #[test]
    fn responses() {
        let empty = read_response(&mut parser(&[]), &Kind::SendMail).unwrap();
        assert_eq!(empty.status, None);
        assert!(empty.sent());
        assert_eq!(empty.common_status(), None);

        let bytes = wbxml_from_xml(
            "<SmartReply xmlns=\"ComposeMail:\">\n  <Status>120</Status>\n</SmartReply>",
        );
        let r = read_response(&mut parser(&bytes), &Kind::SmartReply(source())).unwrap();
        assert_eq!(
            r.status,
            Some(Status::Common(CommonStatus::MailSubmissionFailed))
        );
        assert!(!r.sent());
        assert_eq!(r.status.unwrap().action(), Action::RetryLater);
        assert_eq!(r.common_status(), Some(CommonStatus::MailSubmissionFailed));

        let bytes = wbxml_from_xml(
            "<SendMail xmlns=\"ComposeMail:\">\n  <ClientId>x</ClientId>\n  <Status>118</Status>\n</SendMail>",
        );
        let r = read_response(&mut parser(&bytes), &Kind::SendMail).unwrap();
        assert!(r.sent(), "a repeat of a sent message counts as sent");

        for code in [119, 122, 142] {
            let xml = format!(
                "<SendMail xmlns=\"ComposeMail:\">\n  <Status>{code}</Status>\n</SendMail>"
            );
            let r = read_response(&mut parser(&wbxml_from_xml(&xml)), &Kind::SendMail).unwrap();
            assert_eq!(r.status.unwrap().code(), code);
            assert!(matches!(r.status, Some(Status::Common(_))));
        }
    }

    #[test]
    fn malformed_responses_are_errors() {
        let bytes = wbxml_from_xml(
            "<SendMail xmlns=\"ComposeMail:\">\n  <Status>120</Status>\n</SendMail>",
        );
        // The wrong root for the command.
        assert!(read_response(&mut parser(&bytes), &Kind::SmartForward(source())).is_err());
        for len in 1..bytes.len() {
            assert!(read_response(&mut parser(&bytes[..len]), &Kind::SendMail).is_err());
        }
        let bytes = wbxml_from_xml(
            "<SendMail xmlns=\"ComposeMail:\">\n  <ClientId>x</ClientId>\n</SendMail>",
        );
        assert!(read_response(&mut parser(&bytes), &Kind::SendMail).is_err());
    }
}
