//! Search (MS-ASCMD 2.2.1.16): look up people in the Global Address List, or messages in
//! the mailbox.
//!
//! GAL results come back as typed [`GalEntry`] values. Mailbox results carry an item's
//! properties; their bodies stream to the sink a [`SinkChooser`] picks per result (by its
//! LongId), the other properties are bounded trees ([`ItemProperties`]).

use embedded_io::Read;

use super::command::{Command, Request, write_wbxml};
use super::common::{ResultPageTags, read_result_page};
use super::error::Result;
use super::item::BodyPreference;
use super::itemops::{ItemProperties, ItemRef, SinkChooser, read_properties};
use super::parse::{Child, Parser};
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

const S: u8 = cp::SEARCH;
const SEARCH: Tag = Tag::named(S, "Search");
const STORE: Tag = Tag::named(S, "Store");
const NAME: Tag = Tag::named(S, "Name");
const QUERY: Tag = Tag::named(S, "Query");
const OPTIONS: Tag = Tag::named(S, "Options");
const RANGE: Tag = Tag::named(S, "Range");
const STATUS: Tag = Tag::named(S, "Status");
const RESPONSE: Tag = Tag::named(S, "Response");
const RESULT: Tag = Tag::named(S, "Result");
const PROPERTIES: Tag = Tag::named(S, "Properties");
const TOTAL: Tag = Tag::named(S, "Total");
const VALUE: Tag = Tag::named(S, "Value");
const AND: Tag = Tag::named(S, "And");
const FREE_TEXT: Tag = Tag::named(S, "FreeText");
const DEEP_TRAVERSAL: Tag = Tag::named(S, "DeepTraversal");
const LONG_ID: Tag = Tag::named(S, "LongId");
const REBUILD_RESULTS: Tag = Tag::named(S, "RebuildResults");
const LESS_THAN: Tag = Tag::named(S, "LessThan");
const GREATER_THAN: Tag = Tag::named(S, "GreaterThan");
const PICTURE: Tag = Tag::named(S, "Picture");
const MAX_SIZE: Tag = Tag::named(S, "MaxSize");
const MAX_PICTURES: Tag = Tag::named(S, "MaxPictures");

const CLASS: Tag = Tag::named(cp::AIRSYNC, "Class");
const COLLECTION_ID: Tag = Tag::named(cp::AIRSYNC, "CollectionId");
const MIME_SUPPORT: Tag = Tag::named(cp::AIRSYNC, "MIMESupport");
const DATE_RECEIVED: Tag = Tag::named(cp::EMAIL, "DateReceived");

const GAL_DISPLAY_NAME: Tag = Tag::named(cp::GAL, "DisplayName");
const GAL_PHONE: Tag = Tag::named(cp::GAL, "Phone");
const GAL_OFFICE: Tag = Tag::named(cp::GAL, "Office");
const GAL_TITLE: Tag = Tag::named(cp::GAL, "Title");
const GAL_COMPANY: Tag = Tag::named(cp::GAL, "Company");
const GAL_ALIAS: Tag = Tag::named(cp::GAL, "Alias");
const GAL_FIRST_NAME: Tag = Tag::named(cp::GAL, "FirstName");
const GAL_LAST_NAME: Tag = Tag::named(cp::GAL, "LastName");
const GAL_HOME_PHONE: Tag = Tag::named(cp::GAL, "HomePhone");
const GAL_MOBILE_PHONE: Tag = Tag::named(cp::GAL, "MobilePhone");
const GAL_EMAIL_ADDRESS: Tag = Tag::named(cp::GAL, "EmailAddress");
const GAL_PICTURE: Tag = Tag::named(cp::GAL, "Picture");
const GAL_STATUS: Tag = Tag::named(cp::GAL, "Status");
const GAL_DATA: Tag = Tag::named(cp::GAL, "Data");

command_status! {
    /// Search status (MS-ASCMD 2.2.3.177.16), of the whole request or of a store.
    pub enum Status {
        1 => Success, Proceed, "success";
        2 => InvalidRequest, FixRequest, "the search request is invalid";
        3 => ServerError, RetryLater, "the server failed to search";
        4 => BadLink, FixRequest, "a document library link is malformed";
        5 => AccessDenied, Blocked, "access to the store was denied";
        6 => NotFound, ItemGone, "the object was not found";
        7 => ConnectionFailed, RetryLater, "the server could not connect to the store";
        8 => TooComplex, FixRequest, "the query is too complex";
        10 => TimedOut, RetryLater, "the search timed out";
        11 => FolderSyncRequired, ResyncState, "the folder hierarchy changed: run FolderSync";
        12 => EndOfRange, Proceed, "the requested range is past the retrievable results";
        13 => AccessBlocked, Blocked, "access to the store is blocked";
        14 => CredentialsRequired, FixRequest, "the store requires credentials";
    }
}

command_status! {
    /// The status of a contact picture (MS-ASCMD 2.2.3.177.17 and friends): 1 or 173–175.
    pub enum PictureStatus {
        1 => Success, Proceed, "the picture is included";
    }
}

/// Picture options for GAL look-ups (14.1 and later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PictureOptions {
    /// Largest picture wanted, in bytes.
    pub max_size: Option<u32>,
    /// Most pictures in the response.
    pub max_pictures: Option<u32>,
}

impl PictureOptions {
    /// Writes `<tag><MaxSize/>..</tag>` with the given page's tags.
    pub(crate) fn write<W: embedded_io::Write>(
        &self,
        w: &mut crate::wbxml::Writer<W>,
        tags: [Tag; 3],
    ) -> core::result::Result<(), crate::wbxml::Error<W::Error>> {
        let [picture, max_size, max_pictures] = tags;
        if self.max_size.is_none() && self.max_pictures.is_none() {
            return w.empty(picture);
        }
        w.start(picture)?;
        if let Some(size) = self.max_size {
            w.text_element(max_size, &size.to_string())?;
        }
        if let Some(count) = self.max_pictures {
            w.text_element(max_pictures, &count.to_string())?;
        }
        w.end()
    }
}

/// A mailbox query: every given criterion must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxQuery {
    pub free_text: String,
    /// Restrict to these folders (empty: the whole mailbox).
    pub collection_ids: Vec<String>,
    /// Restrict to one class ("Email").
    pub class: Option<String>,
    /// Received after / before these EAS date-times.
    pub received_after: Option<String>,
    pub received_before: Option<String>,
    /// Results `first..=last`.
    pub range: Option<(u32, u32)>,
    pub body_preferences: Vec<BodyPreference>,
    /// Also search the subfolders of `collection_ids`.
    pub deep_traversal: bool,
    /// Search again instead of using the server's cached results.
    pub rebuild_results: bool,
    pub mime_support: Option<u8>,
}

/// What to search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Gal {
        text: String,
        range: Option<(u32, u32)>,
        /// 14.1 and later.
        picture: Option<PictureOptions>,
    },
    Mailbox(MailboxQuery),
}

/// The Search request. Options the version lacks (Picture before 14.1) are an error.
pub fn request(version: ProtocolVersion, query: &Query) -> Result<Request> {
    let body = write_wbxml(version, |w| {
        w.start(SEARCH)?;
        w.start(STORE)?;
        match query {
            Query::Gal {
                text,
                range,
                picture,
            } => {
                w.text_element(NAME, "GAL")?;
                w.text_element(QUERY, text)?;
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
            Query::Mailbox(q) => {
                w.text_element(NAME, "Mailbox")?;
                w.start(QUERY)?;
                w.start(AND)?;
                if let Some(class) = &q.class {
                    w.text_element(CLASS, class)?;
                }
                for id in &q.collection_ids {
                    w.text_element(COLLECTION_ID, id)?;
                }
                w.text_element(FREE_TEXT, &q.free_text)?;
                for (tag, value) in [
                    (GREATER_THAN, &q.received_after),
                    (LESS_THAN, &q.received_before),
                ] {
                    if let Some(value) = value {
                        w.start(tag)?;
                        w.empty(DATE_RECEIVED)?;
                        w.text_element(VALUE, value)?;
                        w.end()?;
                    }
                }
                w.end()?;
                w.end()?;
                w.start(OPTIONS)?;
                if let Some(mime) = q.mime_support {
                    w.text_element(MIME_SUPPORT, &mime.to_string())?;
                }
                if let Some((first, last)) = q.range {
                    w.text_element(RANGE, &format!("{first}-{last}"))?;
                }
                if q.deep_traversal {
                    w.empty(DEEP_TRAVERSAL)?;
                }
                if q.rebuild_results {
                    w.empty(REBUILD_RESULTS)?;
                }
                for preference in &q.body_preferences {
                    preference.write(w)?;
                }
                w.end()?;
            }
        }
        w.end()?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::Search, body))
}

/// A contact picture as the server sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picture {
    pub status: Option<PictureStatus>,
    /// The picture's bytes as sent (base64 text on the wire from Exchange), bounded by
    /// [`super::Limits::max_value`].
    pub data: Option<Vec<u8>>,
}

/// One person from the Global Address List.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GalEntry {
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub office: Option<String>,
    pub title: Option<String>,
    pub company: Option<String>,
    pub alias: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub home_phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub email_address: Option<String>,
    pub picture: Option<Picture>,
}

/// Reads GAL properties (the children of a Properties element) into a [`GalEntry`].
pub(crate) fn read_gal_entry<R: Read>(p: &mut Parser<R>) -> Result<GalEntry> {
    let mut entry = GalEntry::default();
    while let Some(child) = p.next_child()? {
        let field = match child.tag {
            GAL_DISPLAY_NAME => &mut entry.display_name,
            GAL_PHONE => &mut entry.phone,
            GAL_OFFICE => &mut entry.office,
            GAL_TITLE => &mut entry.title,
            GAL_COMPANY => &mut entry.company,
            GAL_ALIAS => &mut entry.alias,
            GAL_FIRST_NAME => &mut entry.first_name,
            GAL_LAST_NAME => &mut entry.last_name,
            GAL_HOME_PHONE => &mut entry.home_phone,
            GAL_MOBILE_PHONE => &mut entry.mobile_phone,
            GAL_EMAIL_ADDRESS => &mut entry.email_address,
            GAL_PICTURE => {
                entry.picture = Some(read_picture(p, GAL_STATUS, GAL_DATA)?);
                continue;
            }
            _ => {
                p.skip(child)?;
                continue;
            }
        };
        *field = Some(p.text(child)?);
    }
    Ok(entry)
}

/// Reads a picture element whose children are `status` and `data` tags.
pub(crate) fn read_picture<R: Read>(p: &mut Parser<R>, status: Tag, data: Tag) -> Result<Picture> {
    let mut picture = Picture::default();
    while let Some(child) = p.next_child()? {
        match child.tag {
            t if t == status => picture.status = Some(PictureStatus::read(p, child)?),
            t if t == data => picture.data = Some(p.bytes(child)?),
            _ => p.skip(child)?,
        }
    }
    Ok(picture)
}

/// The properties of one result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultProperties {
    Gal(GalEntry),
    Mailbox(ItemProperties),
}

/// One search result. An empty `<Result/>` (nothing found) is not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    pub class: Option<String>,
    /// The result's id for ItemOperations Fetch, MeetingResponse, SmartReply ...
    pub long_id: Option<String>,
    pub collection_id: Option<String>,
    pub properties: Option<ResultProperties>,
}

/// What one store answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreResponse {
    pub status: Status,
    pub results: Vec<SearchResult>,
    /// The range returned ("0-9").
    pub range: Option<String>,
    /// How many results there are in all.
    pub total: Option<u64>,
}

/// A Search response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub store: Option<StoreResponse>,
}

impl HasStatus for Response {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status
            .common()
            .or_else(|| self.store.as_ref().and_then(|s| s.status.common()))
    }
}

/// Which store was searched, which decides how result properties are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Gal,
    Mailbox,
}

impl Query {
    pub fn store(&self) -> StoreKind {
        match self {
            Query::Gal { .. } => StoreKind::Gal,
            Query::Mailbox(_) => StoreKind::Mailbox,
        }
    }
}

/// Reads a Search response for a query of `store`; mailbox bodies stream to `sinks`.
pub fn read_response<R: Read>(
    p: &mut Parser<R>,
    store: StoreKind,
    sinks: &mut dyn SinkChooser,
) -> Result<Response> {
    if p.root(SEARCH)?.is_none() {
        return Err(p.error("the Search response is empty"));
    }
    let mut status = None;
    let mut store_response = None;
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(Status::read(p, child)?),
            RESPONSE => {
                while let Some(inner) = p.next_child()? {
                    match inner.tag {
                        STORE => store_response = Some(read_store(p, store, sinks)?),
                        _ => p.skip(inner)?,
                    }
                }
            }
            _ => p.skip(child)?,
        }
    }
    p.finish()?;
    let status = status.ok_or_else(|| p.error("the Search response has no Status"))?;
    Ok(Response {
        status,
        store: store_response,
    })
}

const PAGE_TAGS: ResultPageTags = ResultPageTags {
    status: STATUS,
    result: RESULT,
    range: RANGE,
    total: TOTAL,
};

fn read_store<R: Read>(
    p: &mut Parser<R>,
    store: StoreKind,
    sinks: &mut dyn SinkChooser,
) -> Result<StoreResponse> {
    let page = read_result_page(
        p,
        &PAGE_TAGS,
        Status::read,
        "the number of search results",
        |p, child| read_result(p, child, store, sinks),
        |p, child| p.skip(child),
    )?;
    let status = page
        .status
        .ok_or_else(|| p.error("the Search Store has no Status"))?;
    Ok(StoreResponse {
        status,
        results: page.results,
        range: page.range,
        total: page.total,
    })
}

fn read_result<R: Read>(
    p: &mut Parser<R>,
    _result: Child,
    store: StoreKind,
    sinks: &mut dyn SinkChooser,
) -> Result<Option<SearchResult>> {
    let mut result = SearchResult {
        class: None,
        long_id: None,
        collection_id: None,
        properties: None,
    };
    let mut any = false;
    while let Some(child) = p.next_child()? {
        any = true;
        match child.tag {
            CLASS => result.class = Some(p.text(child)?),
            LONG_ID => result.long_id = Some(p.text(child)?),
            COLLECTION_ID => result.collection_id = Some(p.text(child)?),
            PROPERTIES => {
                result.properties = Some(match store {
                    StoreKind::Gal => ResultProperties::Gal(read_gal_entry(p)?),
                    StoreKind::Mailbox => {
                        let item = ItemRef {
                            collection_id: result.collection_id.clone(),
                            long_id: result.long_id.clone(),
                            ..ItemRef::default()
                        };
                        ResultProperties::Mailbox(read_properties(p, &item, sinks)?)
                    }
                })
            }
            _ => p.skip(child)?,
        }
    }
    Ok(any.then_some(result))
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::item::BodyType;
    use crate::eas::itemops::{DataKind, OneSink};
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};
    use crate::eas::{Action, Error, Limits, Sink};

    #[test]
    fn gal_requests_per_version() {
        let query = Query::Gal {
            text: "smi".into(),
            range: Some((0, 9)),
            picture: None,
        };
        let req = request(ProtocolVersion::V12_1, &query).unwrap();
        assert_eq!(req.command, Command::Search);
        assert_eq!(
            request_xml(&req),
            "<Search xmlns=\"Search:\">\n  <Store>\n    <Name>GAL</Name>\n    <Query>smi</Query>\n    \
             <Options>\n      <Range>0-9</Range>\n    </Options>\n  </Store>\n</Search>"
        );
        let with_picture = Query::Gal {
            text: "smi".into(),
            range: None,
            picture: Some(PictureOptions {
                max_size: Some(4096),
                max_pictures: Some(3),
            }),
        };
        assert!(
            request(ProtocolVersion::V14_0, &with_picture).is_err(),
            "Picture is 14.1+"
        );
        assert_eq!(
            request_xml(&request(ProtocolVersion::V14_1, &with_picture).unwrap()),
            "<Search xmlns=\"Search:\">\n  <Store>\n    <Name>GAL</Name>\n    <Query>smi</Query>\n    \
             <Options>\n      <Picture>\n        <MaxSize>4096</MaxSize>\n        <MaxPictures>3</MaxPictures>\n      \
             </Picture>\n    </Options>\n  </Store>\n</Search>"
        );
    }

    #[test]
    fn mailbox_request() {
        let query = Query::Mailbox(MailboxQuery {
            free_text: "invoice".into(),
            collection_ids: vec!["5".into()],
            class: Some("Email".into()),
            received_after: Some("2026-01-01T00:00:00.000Z".into()),
            received_before: None,
            range: Some((0, 24)),
            body_preferences: vec![BodyPreference {
                truncation_size: Some(512),
                ..BodyPreference::new(BodyType::Html)
            }],
            deep_traversal: true,
            rebuild_results: true,
            mime_support: Some(0),
        });
        let expected = "<Search xmlns=\"Search:\">\n  <Store>\n    <Name>Mailbox</Name>\n    <Query>\n      <And>\n        \
             <airsync:Class xmlns:airsync=\"AirSync:\">Email</airsync:Class>\n        \
             <airsync:CollectionId xmlns:airsync=\"AirSync:\">5</airsync:CollectionId>\n        \
             <FreeText>invoice</FreeText>\n        <GreaterThan>\n          <email:DateReceived xmlns:email=\"Email:\"/>\n          \
             <Value>2026-01-01T00:00:00.000Z</Value>\n        </GreaterThan>\n      </And>\n    </Query>\n    <Options>\n      \
             <airsync:MIMESupport xmlns:airsync=\"AirSync:\">0</airsync:MIMESupport>\n      <Range>0-24</Range>\n      \
             <DeepTraversal/>\n      <RebuildResults/>\n      <airsyncbase:BodyPreference xmlns:airsyncbase=\"AirSyncBase:\">\n        \
             <airsyncbase:Type>2</airsyncbase:Type>\n        <airsyncbase:TruncationSize>512</airsyncbase:TruncationSize>\n      \
             </airsyncbase:BodyPreference>\n    </Options>\n  </Store>\n</Search>";
        for version in [ProtocolVersion::V12_1, ProtocolVersion::V16_1] {
            assert_eq!(request_xml(&request(version, &query).unwrap()), expected);
        }
    }

    const GAL_RESPONSE: &str = "<Search xmlns=\"Search:\" xmlns:gal=\"GAL:\">
  <Status>1</Status>
  <Response>
    <Store>
      <Status>1</Status>
      <Result>
        <Properties>
          <gal:DisplayName>Ann Smith</gal:DisplayName>
          <gal:Phone>+1 555 0100</gal:Phone>
          <gal:Office>B12</gal:Office>
          <gal:Title>Engineer</gal:Title>
          <gal:Company>Example</gal:Company>
          <gal:Alias>ann</gal:Alias>
          <gal:FirstName>Ann</gal:FirstName>
          <gal:LastName>Smith</gal:LastName>
          <gal:HomePhone>+1 555 0101</gal:HomePhone>
          <gal:MobilePhone>+1 555 0102</gal:MobilePhone>
          <gal:EmailAddress>ann@example.com</gal:EmailAddress>
          <gal:Picture>
            <gal:Status>1</gal:Status>
            <gal:Data>iVBORw==</gal:Data>
          </gal:Picture>
        </Properties>
      </Result>
      <Result>
        <Properties>
          <gal:DisplayName>Bob Smith</gal:DisplayName>
          <gal:Picture>
            <gal:Status>173</gal:Status>
          </gal:Picture>
        </Properties>
      </Result>
      <Range>0-1</Range>
      <Total>2</Total>
    </Store>
  </Response>
</Search>";

    #[test]
    fn gal_response() {
        let bytes = wbxml_from_xml(GAL_RESPONSE);
        let mut discard = crate::eas::sink::Discard;
        let r = read_response(
            &mut parser(&bytes),
            StoreKind::Gal,
            &mut OneSink(&mut discard),
        )
        .unwrap();
        assert_eq!(r.status, Status::Success);
        assert_eq!(r.common_status(), None);
        let store = r.store.unwrap();
        assert_eq!(store.status, Status::Success);
        assert_eq!(store.range.as_deref(), Some("0-1"));
        assert_eq!(store.total, Some(2));
        assert_eq!(store.results.len(), 2);
        let Some(ResultProperties::Gal(ann)) = &store.results[0].properties else {
            panic!()
        };
        assert_eq!(
            *ann,
            GalEntry {
                display_name: Some("Ann Smith".into()),
                phone: Some("+1 555 0100".into()),
                office: Some("B12".into()),
                title: Some("Engineer".into()),
                company: Some("Example".into()),
                alias: Some("ann".into()),
                first_name: Some("Ann".into()),
                last_name: Some("Smith".into()),
                home_phone: Some("+1 555 0101".into()),
                mobile_phone: Some("+1 555 0102".into()),
                email_address: Some("ann@example.com".into()),
                picture: Some(Picture {
                    status: Some(PictureStatus::Success),
                    data: Some(b"iVBORw==".to_vec())
                }),
            }
        );
        let Some(ResultProperties::Gal(bob)) = &store.results[1].properties else {
            panic!()
        };
        let status = bob.picture.as_ref().unwrap().status.unwrap();
        assert_eq!(status, PictureStatus::Common(CommonStatus::NoPicture));
        assert_eq!(status.action(), Action::Proceed);
    }

    #[test]
    fn mailbox_response_streams_bodies_per_result() {
        let xml = "<Search xmlns=\"Search:\" xmlns:airsync=\"AirSync:\" xmlns:email=\"Email:\" xmlns:airsyncbase=\"AirSyncBase:\">
  <Status>1</Status>
  <Response>
    <Store>
      <Status>1</Status>
      <Result>
        <airsync:Class>Email</airsync:Class>
        <LongId>RgAAAA1</LongId>
        <airsync:CollectionId>5</airsync:CollectionId>
        <Properties>
          <email:Subject>Invoice 7</email:Subject>
          <email:DateReceived>2026-02-01T10:00:00.000Z</email:DateReceived>
          <airsyncbase:Body>
            <airsyncbase:Type>1</airsyncbase:Type>
            <airsyncbase:Data>Please pay.</airsyncbase:Data>
          </airsyncbase:Body>
        </Properties>
      </Result>
      <Result>
        <airsync:Class>Email</airsync:Class>
        <LongId>RgAAAA2</LongId>
        <airsync:CollectionId>5</airsync:CollectionId>
        <Properties>
          <airsyncbase:Body>
            <airsyncbase:Type>1</airsyncbase:Type>
            <airsyncbase:Data>Second.</airsyncbase:Data>
          </airsyncbase:Body>
        </Properties>
      </Result>
      <Range>0-1</Range>
      <Total>7</Total>
    </Store>
  </Response>
</Search>";
        struct ByLongId(Vec<(String, DataKind, Vec<u8>)>);
        impl SinkChooser for ByLongId {
            fn sink(&mut self, item: &ItemRef, kind: DataKind) -> &mut dyn Sink {
                self.0
                    .push((item.long_id.clone().unwrap(), kind, Vec::new()));
                &mut self.0.last_mut().unwrap().2
            }
        }
        let bytes = wbxml_from_xml(xml);
        let mut sinks = ByLongId(Vec::new());
        let r = read_response(&mut parser(&bytes), StoreKind::Mailbox, &mut sinks).unwrap();
        let store = r.store.unwrap();
        assert_eq!(store.total, Some(7));
        assert_eq!(store.results.len(), 2);
        let first = &store.results[0];
        assert_eq!(first.class.as_deref(), Some("Email"));
        assert_eq!(first.long_id.as_deref(), Some("RgAAAA1"));
        assert_eq!(first.collection_id.as_deref(), Some("5"));
        let Some(ResultProperties::Mailbox(props)) = &first.properties else {
            panic!()
        };
        assert_eq!(props.other.len(), 2);
        assert_eq!(props.other[0].text(), Some("Invoice 7"));
        assert_eq!(props.body.as_ref().unwrap().data_len, Some(11));
        assert_eq!(
            sinks.0,
            vec![
                ("RgAAAA1".into(), DataKind::Body, b"Please pay.".to_vec()),
                ("RgAAAA2".into(), DataKind::Body, b"Second.".to_vec()),
            ]
        );
    }

    #[test]
    fn statuses_empty_results_and_errors() {
        let xml = "<Search xmlns=\"Search:\">
  <Status>1</Status>
  <Response>
    <Store>
      <Status>12</Status>
      <Result/>
      <Total>0</Total>
    </Store>
  </Response>
</Search>";
        let bytes = wbxml_from_xml(xml);
        let mut discard = crate::eas::sink::Discard;
        let r = read_response(
            &mut parser(&bytes),
            StoreKind::Mailbox,
            &mut OneSink(&mut discard),
        )
        .unwrap();
        let store = r.store.unwrap();
        assert_eq!(store.status, Status::EndOfRange);
        assert!(store.results.is_empty(), "an empty Result means no results");
        let global = wbxml_from_xml("<Search xmlns=\"Search:\">\n  <Status>3</Status>\n</Search>");
        let r = read_response(
            &mut parser(&global),
            StoreKind::Gal,
            &mut OneSink(&mut discard),
        )
        .unwrap();
        assert_eq!(r.status.action(), Action::RetryLater);
        assert!(r.store.is_none());
        assert!(
            read_response(&mut parser(&[]), StoreKind::Gal, &mut OneSink(&mut discard)).is_err()
        );
        let bytes = wbxml_from_xml(GAL_RESPONSE);
        for len in 1..bytes.len() {
            assert!(
                read_response(
                    &mut parser(&bytes[..len]),
                    StoreKind::Gal,
                    &mut OneSink(&mut discard)
                )
                .is_err(),
                "cut at {len}"
            );
        }
        let limits = Limits {
            max_entries: 1,
            ..Limits::default()
        };
        let err = read_response(
            &mut Parser::with_limits(&bytes[..], limits),
            StoreKind::Gal,
            &mut OneSink(&mut discard),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
        let limits = Limits {
            max_value: 8,
            ..Limits::default()
        };
        let err = read_response(
            &mut Parser::with_limits(&bytes[..], limits),
            StoreKind::Gal,
            &mut OneSink(&mut discard),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
    }

    #[test]
    fn status_codes() {
        for code in 1..=14 {
            let s = Status::from_code(code);
            assert_eq!(s.code(), code);
            assert_eq!(matches!(s, Status::Unknown(_)), code == 9, "{code}");
        }
        assert_eq!(Status::from_code(11).action(), Action::ResyncState);
        assert_eq!(Status::from_code(8).action(), Action::FixRequest);
        for code in [173, 174, 175] {
            assert!(matches!(
                PictureStatus::from_code(code),
                PictureStatus::Common(_)
            ));
        }
    }
}
