//! Find (MS-ASCMD 2.2.1.2, protocol 16.1 only): search the mailbox or the Global Address
//! List; the successor of Search on Exchange Online.
//!
//! Result properties (email:Subject, find:Preview, gal:DisplayName ...) are small and come
//! back as one bounded tree per result ([`Node`]); no body is ever part of a Find result.

use embedded_io::Read;

use super::command::{Command, Request, write_wbxml};
use super::common::{ResultPageTags, read_result_page};
use super::error::{Error, Result};
use super::parse::{Node, Parser};
use super::search::PictureOptions;
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

const F: u8 = cp::FIND;
const FIND: Tag = Tag::named(F, "Find");
const SEARCH_ID: Tag = Tag::named(F, "SearchId");
const EXECUTE_SEARCH: Tag = Tag::named(F, "ExecuteSearch");
const MAILBOX_SEARCH_CRITERION: Tag = Tag::named(F, "MailBoxSearchCriterion");
const GAL_SEARCH_CRITERION: Tag = Tag::named(F, "GalSearchCriterion");
const QUERY: Tag = Tag::named(F, "Query");
const STATUS: Tag = Tag::named(F, "Status");
const FREE_TEXT: Tag = Tag::named(F, "FreeText");
const OPTIONS: Tag = Tag::named(F, "Options");
const RANGE: Tag = Tag::named(F, "Range");
const DEEP_TRAVERSAL: Tag = Tag::named(F, "DeepTraversal");
const RESPONSE: Tag = Tag::named(F, "Response");
const RESULT: Tag = Tag::named(F, "Result");
const PROPERTIES: Tag = Tag::named(F, "Properties");
const TOTAL: Tag = Tag::named(F, "Total");
const PICTURE: Tag = Tag::named(F, "Picture");
const MAX_SIZE: Tag = Tag::named(F, "MaxSize");
const MAX_PICTURES: Tag = Tag::named(F, "MaxPictures");
const STORE: Tag = Tag::named(cp::ITEM_OPERATIONS, "Store");
const CLASS: Tag = Tag::named(cp::AIRSYNC, "Class");
const SERVER_ID: Tag = Tag::named(cp::AIRSYNC, "ServerId");
const COLLECTION_ID: Tag = Tag::named(cp::AIRSYNC, "CollectionId");

command_status! {
    /// Find status (MS-ASCMD 2.2.3.177.2), of the request or of its Response.
    pub enum Status {
        1 => Success, Proceed, "success";
        2 => InvalidRequest, FixRequest, "the search request is invalid";
        3 => FolderSyncRequired, ResyncState, "the folder hierarchy is out of date: run FolderSync";
        4 => RangeMustStartAtZero, FixRequest, "a new search must request a range starting at 0";
    }
}

/// What to search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criterion {
    Mailbox {
        free_text: String,
        /// Restrict to one class ("Email").
        class: Option<String>,
        /// Restrict to one folder (and, with `deep_traversal`, its subfolders).
        collection_id: Option<String>,
        deep_traversal: bool,
        /// Results `first..=last` (at most 0-999).
        range: Option<(u32, u32)>,
    },
    Gal {
        free_text: String,
        range: Option<(u32, u32)>,
        picture: Option<PictureOptions>,
    },
}

/// The Find request. `search_id` is a client-chosen id (a GUID) for this search; keep it
/// to page through the results with further ranges.
pub fn request(
    version: ProtocolVersion,
    search_id: &str,
    criterion: &Criterion,
) -> Result<Request> {
    if version != ProtocolVersion::V16_1 {
        return Err(Error::Write(format!(
            "Find needs protocol 16.1 and this server speaks {version}: use Search instead"
        )));
    }
    let body = write_wbxml(version, |w| {
        w.start(FIND)?;
        w.text_element(SEARCH_ID, search_id)?;
        w.start(EXECUTE_SEARCH)?;
        match criterion {
            Criterion::Mailbox {
                free_text,
                class,
                collection_id,
                deep_traversal,
                range,
            } => {
                w.start(MAILBOX_SEARCH_CRITERION)?;
                w.start(QUERY)?;
                if let Some(class) = class {
                    w.text_element(CLASS, class)?;
                }
                if let Some(id) = collection_id {
                    w.text_element(COLLECTION_ID, id)?;
                }
                w.text_element(FREE_TEXT, free_text)?;
                w.end()?;
                if range.is_some() || *deep_traversal {
                    w.start(OPTIONS)?;
                    if let Some((first, last)) = range {
                        w.text_element(RANGE, &format!("{first}-{last}"))?;
                    }
                    if *deep_traversal {
                        w.empty(DEEP_TRAVERSAL)?;
                    }
                    w.end()?;
                }
            }
            Criterion::Gal {
                free_text,
                range,
                picture,
            } => {
                w.start(GAL_SEARCH_CRITERION)?;
                // Unlike the mailbox Query, the GAL Query is the search string itself
                // (MS-ASCMD 2.2.3.142.1: no child elements).
                w.text_element(QUERY, free_text)?;
                if range.is_some() || picture.is_some() {
                    w.start(OPTIONS)?;
                    if let Some((first, last)) = range {
                        w.text_element(RANGE, &format!("{first}-{last}"))?;
                    }
                    if let Some(picture) = picture {
                        picture.write(w, [PICTURE, MAX_SIZE, MAX_PICTURES])?;
                    }
                    w.end()?;
                }
            }
        }
        w.end()?;
        w.end()?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::Find, body))
}

/// One match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindResult {
    pub class: Option<String>,
    pub server_id: Option<String>,
    pub collection_id: Option<String>,
    /// The `Properties` element and everything in it.
    pub properties: Option<Node>,
}

/// The Response element: the store's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindResponse {
    /// "Mailbox" (also for GAL searches, per the spec).
    pub store: Option<String>,
    pub status: Status,
    pub results: Vec<FindResult>,
    pub range: Option<String>,
    pub total: Option<u64>,
}

/// A Find response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub response: Option<FindResponse>,
}

impl HasStatus for Response {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status
            .common()
            .or_else(|| self.response.as_ref().and_then(|r| r.status.common()))
    }
}

pub fn read_response<R: Read>(p: &mut Parser<R>) -> Result<Response> {
    if p.root(FIND)?.is_none() {
        return Err(p.error("the Find response is empty"));
    }
    let mut status = None;
    let mut response = None;
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(Status::read(p, child)?),
            RESPONSE => response = Some(read_find_response(p)?),
            _ => p.skip(child)?,
        }
    }
    p.finish()?;
    let status = status.ok_or_else(|| p.error("the Find response has no Status"))?;
    Ok(Response { status, response })
}

const PAGE_TAGS: ResultPageTags = ResultPageTags {
    status: STATUS,
    result: RESULT,
    range: RANGE,
    total: TOTAL,
};

fn read_find_response<R: Read>(p: &mut Parser<R>) -> Result<FindResponse> {
    let mut store = None;
    let page = read_result_page(
        p,
        &PAGE_TAGS,
        Status::read,
        "the number of Find results",
        |p, _| read_find_result(p).map(Some),
        |p, child| match child.tag {
            STORE => {
                store = Some(p.text(child)?);
                Ok(())
            }
            _ => p.skip(child),
        },
    )?;
    let status = page
        .status
        .ok_or_else(|| p.error("the Find Response has no Status"))?;
    Ok(FindResponse {
        store,
        status,
        results: page.results,
        range: page.range,
        total: page.total,
    })
}

fn read_find_result<R: Read>(p: &mut Parser<R>) -> Result<FindResult> {
    let mut result = FindResult {
        class: None,
        server_id: None,
        collection_id: None,
        properties: None,
    };
    while let Some(field) = p.next_child()? {
        match field.tag {
            CLASS => result.class = Some(p.text(field)?),
            SERVER_ID => result.server_id = Some(p.text(field)?),
            COLLECTION_ID => result.collection_id = Some(p.text(field)?),
            PROPERTIES => result.properties = Some(p.tree(field)?),
            _ => p.skip(field)?,
        }
    }
    Ok(result)
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};
    use crate::eas::{Action, Limits};

    fn mailbox() -> Criterion {
        Criterion::Mailbox {
            free_text: "invoice".into(),
            class: Some("Email".into()),
            collection_id: Some("5".into()),
            deep_traversal: true,
            range: Some((0, 49)),
        }
    }

    #[test]
    fn only_16_1_has_find() {
        for version in [
            ProtocolVersion::V12_1,
            ProtocolVersion::V14_0,
            ProtocolVersion::V14_1,
            ProtocolVersion::V16_0,
        ] {
            let err = request(version, "id", &mailbox()).unwrap_err();
            assert!(
                err.to_string().contains("Find needs protocol 16.1"),
                "{err}"
            );
        }
    }

    #[test]
    fn mailbox_request() {
        let req = request(ProtocolVersion::V16_1, "7D6E1F3A", &mailbox()).unwrap();
        assert_eq!(req.command, Command::Find);
        assert_eq!(
            request_xml(&req),
            "<Find xmlns=\"Find:\">\n  <SearchId>7D6E1F3A</SearchId>\n  <ExecuteSearch>\n    <MailBoxSearchCriterion>\n      \
             <Query>\n        <airsync:Class xmlns:airsync=\"AirSync:\">Email</airsync:Class>\n        \
             <airsync:CollectionId xmlns:airsync=\"AirSync:\">5</airsync:CollectionId>\n        \
             <FreeText>invoice</FreeText>\n      </Query>\n      <Options>\n        <Range>0-49</Range>\n        \
             <DeepTraversal/>\n      </Options>\n    </MailBoxSearchCriterion>\n  </ExecuteSearch>\n</Find>"
        );
    }

    #[test]
    fn gal_request() {
        let req = request(
            ProtocolVersion::V16_1,
            "S1",
            &Criterion::Gal {
                free_text: "smith".into(),
                range: Some((0, 9)),
                picture: Some(PictureOptions {
                    max_size: None,
                    max_pictures: Some(2),
                }),
            },
        )
        .unwrap();
        assert_eq!(
            request_xml(&req),
            "<Find xmlns=\"Find:\">\n  <SearchId>S1</SearchId>\n  <ExecuteSearch>\n    <GalSearchCriterion>\n      \
             <Query>smith</Query>\n      <Options>\n        <Range>0-9</Range>\n        \
             <Picture>\n          <MaxPictures>2</MaxPictures>\n        </Picture>\n      </Options>\n    \
             </GalSearchCriterion>\n  </ExecuteSearch>\n</Find>"
        );
        let bare = request(
            ProtocolVersion::V16_1,
            "S2",
            &Criterion::Gal {
                free_text: "x".into(),
                range: None,
                picture: None,
            },
        )
        .unwrap();
        assert!(!request_xml(&bare).contains("<Options>"));
    }

    const RESPONSE_XML: &str = "<Find xmlns=\"Find:\" xmlns:airsync=\"AirSync:\" xmlns:email=\"Email:\" xmlns:itemoperations=\"ItemOperations:\">
  <Status>1</Status>
  <Response>
    <itemoperations:Store>Mailbox</itemoperations:Store>
    <Status>1</Status>
    <Result>
      <airsync:Class>Email</airsync:Class>
      <airsync:ServerId>5:12</airsync:ServerId>
      <airsync:CollectionId>5</airsync:CollectionId>
      <Properties>
        <email:Subject>Invoice 7</email:Subject>
        <email:DateReceived>2026-02-01T10:00:00.000Z</email:DateReceived>
        <DisplayCc>Bob</DisplayCc>
        <Preview>Please pay by Friday</Preview>
        <HasAttachments>1</HasAttachments>
      </Properties>
    </Result>
    <Result>
      <airsync:Class>Email</airsync:Class>
      <airsync:ServerId>5:13</airsync:ServerId>
      <airsync:CollectionId>5</airsync:CollectionId>
      <Properties>
        <email:Subject>Invoice 8</email:Subject>
      </Properties>
    </Result>
    <Range>0-1</Range>
    <Total>2</Total>
  </Response>
</Find>";

    #[test]
    fn response() {
        let bytes = wbxml_from_xml(RESPONSE_XML);
        let r = read_response(&mut parser(&bytes)).unwrap();
        assert_eq!(r.status, Status::Success);
        assert_eq!(r.common_status(), None);
        let response = r.response.unwrap();
        assert_eq!(response.store.as_deref(), Some("Mailbox"));
        assert_eq!(response.status, Status::Success);
        assert_eq!(response.range.as_deref(), Some("0-1"));
        assert_eq!(response.total, Some(2));
        assert_eq!(response.results.len(), 2);
        let first = &response.results[0];
        assert_eq!(first.class.as_deref(), Some("Email"));
        assert_eq!(first.server_id.as_deref(), Some("5:12"));
        assert_eq!(first.collection_id.as_deref(), Some("5"));
        let props = first.properties.as_ref().unwrap();
        assert_eq!(props.children().len(), 5);
        assert_eq!(
            props.child_text(Tag::named(cp::EMAIL, "Subject")),
            Some("Invoice 7")
        );
        assert_eq!(
            props.child_text(Tag::named(F, "Preview")),
            Some("Please pay by Friday")
        );
        assert_eq!(props.child_text(Tag::named(F, "HasAttachments")), Some("1"));
        assert_eq!(props.child_text(Tag::named(F, "DisplayCc")), Some("Bob"));
    }

    #[test]
    fn statuses_limits_and_errors() {
        let global = wbxml_from_xml("<Find xmlns=\"Find:\">\n  <Status>3</Status>\n</Find>");
        let r = read_response(&mut parser(&global)).unwrap();
        assert_eq!(r.status, Status::FolderSyncRequired);
        assert_eq!(r.status.action(), Action::ResyncState);
        let inner = wbxml_from_xml(
            "<Find xmlns=\"Find:\">\n  <Status>1</Status>\n  <Response>\n    <Status>4</Status>\n  </Response>\n</Find>",
        );
        let r = read_response(&mut parser(&inner)).unwrap();
        assert_eq!(r.response.unwrap().status, Status::RangeMustStartAtZero);
        let common = wbxml_from_xml(
            "<Find xmlns=\"Find:\">\n  <Status>1</Status>\n  <Response>\n    <Status>111</Status>\n  </Response>\n</Find>",
        );
        let r = read_response(&mut parser(&common)).unwrap();
        assert_eq!(r.common_status(), Some(CommonStatus::ServerErrorRetryLater));

        let bytes = wbxml_from_xml(RESPONSE_XML);
        for len in 1..bytes.len() {
            assert!(
                read_response(&mut parser(&bytes[..len])).is_err(),
                "cut at {len}"
            );
        }
        assert!(read_response(&mut parser(&[])).is_err());
        let limits = Limits {
            max_entries: 1,
            ..Limits::default()
        };
        let err = read_response(&mut Parser::with_limits(&bytes[..], limits)).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
        let limits = Limits {
            max_tree_nodes: 3,
            ..Limits::default()
        };
        let err = read_response(&mut Parser::with_limits(&bytes[..], limits)).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
        for code in 1..=4 {
            assert_eq!(Status::from_code(code).code(), code);
            assert!(!matches!(Status::from_code(code), Status::Unknown(_)));
        }
        assert_eq!(Status::from_code(5), Status::Unknown(5));
    }
}
