//! The GetItemEstimate command (MS-ASCMD 2.2.1.9): how many items a Sync of each collection
//! would bring, for progress display before a large first sync.
//!
//! The request's shape depends on the version: 12.1 puts `getitemestimate:Class`,
//! `CollectionId`, `airsync:FilterType` and `airsync:SyncKey` directly in the Collection (the
//! FilterType there is required); 14.0 and later write `airsync:SyncKey`, `CollectionId`,
//! `airsync:ConversationMode` and an `airsync:Options` holding the FilterType.

use embedded_io::Read;

use super::command::{Command, Request, write_wbxml};
use super::error::{Error, Result};
use super::item::{Class, FilterType, read_id};
use super::parse::Parser;
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

pub(crate) const GET_ITEM_ESTIMATE: Tag = Tag::named(cp::GET_ITEM_ESTIMATE, "GetItemEstimate");
pub(crate) const COLLECTIONS: Tag = Tag::named(cp::GET_ITEM_ESTIMATE, "Collections");
pub(crate) const COLLECTION: Tag = Tag::named(cp::GET_ITEM_ESTIMATE, "Collection");
pub(crate) const CLASS: Tag = Tag::named(cp::GET_ITEM_ESTIMATE, "Class");
pub(crate) const COLLECTION_ID: Tag = Tag::named(cp::GET_ITEM_ESTIMATE, "CollectionId");
pub(crate) const ESTIMATE: Tag = Tag::named(cp::GET_ITEM_ESTIMATE, "Estimate");
pub(crate) const RESPONSE: Tag = Tag::named(cp::GET_ITEM_ESTIMATE, "Response");
pub(crate) const STATUS: Tag = Tag::named(cp::GET_ITEM_ESTIMATE, "Status");
pub(crate) const SYNC_KEY: Tag = Tag::named(cp::AIRSYNC, "SyncKey");
pub(crate) const FILTER_TYPE: Tag = Tag::named(cp::AIRSYNC, "FilterType");
pub(crate) const OPTIONS: Tag = Tag::named(cp::AIRSYNC, "Options");
pub(crate) const CONVERSATION_MODE: Tag = Tag::named(cp::AIRSYNC, "ConversationMode");

/// The most collections one request may name (MS-ASCMD 2.2.3.29.1).
pub const MAX_COLLECTIONS: usize = 300;

/// One collection to estimate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstimateCollection {
    /// The collection's current SyncKey (after its first Sync; "0" gives status 3).
    pub sync_key: String,
    pub collection_id: String,
    /// The collection's class: written on 12.1 only.
    pub class: Option<Class>,
    pub filter_type: Option<FilterType>,
    /// Email on 14.0+: count conversations' items the way a ConversationMode Sync would.
    pub conversation_mode: Option<bool>,
}

/// A GetItemEstimate request for up to [`MAX_COLLECTIONS`] collections.
pub fn request(version: ProtocolVersion, collections: &[EstimateCollection]) -> Result<Request> {
    if collections.is_empty() || collections.len() > MAX_COLLECTIONS {
        return Err(Error::Write(format!(
            "GetItemEstimate takes 1 to {MAX_COLLECTIONS} collections, not {}",
            collections.len()
        )));
    }
    let legacy = version < ProtocolVersion::V14_0;
    let body = write_wbxml(version, |w| {
        w.start(GET_ITEM_ESTIMATE)?;
        w.start(COLLECTIONS)?;
        for c in collections {
            w.start(COLLECTION)?;
            if legacy {
                if let Some(class) = c.class {
                    w.text_element(CLASS, class.as_str())?;
                }
                w.text_element(COLLECTION_ID, &c.collection_id)?;
                let filter = c.filter_type.unwrap_or(FilterType::All);
                w.text_element(FILTER_TYPE, &filter.code().to_string())?;
                w.text_element(SYNC_KEY, &c.sync_key)?;
            } else {
                w.text_element(SYNC_KEY, &c.sync_key)?;
                w.text_element(COLLECTION_ID, &c.collection_id)?;
                if let Some(mode) = c.conversation_mode {
                    w.text_element(CONVERSATION_MODE, if mode { "1" } else { "0" })?;
                }
                if let Some(filter) = c.filter_type {
                    w.start(OPTIONS)?;
                    w.text_element(FILTER_TYPE, &filter.code().to_string())?;
                    w.end()?;
                }
            }
            w.end()?;
        }
        w.end()?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::GetItemEstimate, body))
}

command_status! {
    /// The status of one GetItemEstimate response (MS-ASCMD 2.2.3.177.7). An unknown code is
    /// [`Action::RetryLater`](super::Action::RetryLater).
    pub enum Status {
        1 => Success, Proceed, "success";
        2 => InvalidCollection, ItemGone, "the collection is unknown: FolderSync";
        3 => NotPrimed, ResyncState, "the collection has not had its first Sync: Sync with key \"0\" first";
        4 => InvalidSyncKey, ResyncState, "the SyncKey is invalid: resync the collection";
    }
    unknown => RetryLater
}

/// The estimate for one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub status: Status,
    pub collection_id: Option<String>,
    pub estimate: Option<u64>,
}

/// A GetItemEstimate response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstimateResponse {
    /// A status for the whole request (servers send one this way for common codes).
    pub status: Option<Status>,
    pub estimates: Vec<Estimate>,
}

impl HasStatus for EstimateResponse {
    fn common_status(&self) -> Option<CommonStatus> {
        let top = self.status.into_iter();
        top.chain(self.estimates.iter().map(|e| e.status))
            .find_map(Status::common)
    }
}

/// Reads a GetItemEstimate response (at most [`Limits::max_entries`](super::Limits)
/// estimates).
pub fn read_response<R: Read>(p: &mut Parser<R>) -> Result<EstimateResponse> {
    if p.root(GET_ITEM_ESTIMATE)?.is_none() {
        return Err(p.error("the GetItemEstimate response is empty"));
    }
    let mut status = None;
    let mut estimates = Vec::new();
    while let Some(c) = p.next_child()? {
        match c.tag {
            STATUS => status = Some(Status::read(p, c)?),
            RESPONSE => {
                p.check_entries(estimates.len(), "estimates", c.offset)?;
                let mut estimate = Estimate {
                    status: Status::Success,
                    collection_id: None,
                    estimate: None,
                };
                let mut has_status = false;
                while let Some(r) = p.next_child()? {
                    match r.tag {
                        STATUS => {
                            estimate.status = Status::read(p, r)?;
                            has_status = true;
                        }
                        COLLECTION => {
                            while let Some(e) = p.next_child()? {
                                match e.tag {
                                    COLLECTION_ID => estimate.collection_id = Some(read_id(p, e)?),
                                    ESTIMATE => estimate.estimate = Some(p.number(e)?),
                                    _ => p.skip(e)?,
                                }
                            }
                        }
                        _ => p.skip(r)?,
                    }
                }
                if !has_status {
                    return Err(Error::Protocol {
                        offset: c.offset,
                        message: "a GetItemEstimate Response has no Status".into(),
                    });
                }
                estimates.push(estimate);
            }
            _ => p.skip(c)?,
        }
    }
    p.finish()?;
    Ok(EstimateResponse { status, estimates })
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};
    use crate::eas::{Action, Limits};

    fn inbox() -> EstimateCollection {
        EstimateCollection {
            sync_key: "42".into(),
            collection_id: "5".into(),
            class: Some(Class::Email),
            filter_type: Some(FilterType::OneWeek),
            conversation_mode: Some(true),
        }
    }

    fn xml(version: ProtocolVersion, c: &[EstimateCollection]) -> String {
        let r = request(version, c).unwrap();
        assert_eq!(r.command, Command::GetItemEstimate);
        request_xml(&r)
    }

    #[test]
    fn request_12_1_has_class_and_filter_in_the_collection() {
        assert_eq!(
            xml(ProtocolVersion::V12_1, &[inbox()]),
            "<GetItemEstimate xmlns=\"GetItemEstimate:\">
  <Collections>
    <Collection>
      <Class>Email</Class>
      <CollectionId>5</CollectionId>
      <airsync:FilterType xmlns:airsync=\"AirSync:\">3</airsync:FilterType>
      <airsync:SyncKey xmlns:airsync=\"AirSync:\">42</airsync:SyncKey>
    </Collection>
  </Collections>
</GetItemEstimate>"
        );
    }

    #[test]
    fn request_14_1_and_16_1_use_options() {
        let expected = "<GetItemEstimate xmlns=\"GetItemEstimate:\">
  <Collections>
    <Collection>
      <airsync:SyncKey xmlns:airsync=\"AirSync:\">42</airsync:SyncKey>
      <CollectionId>5</CollectionId>
      <airsync:ConversationMode xmlns:airsync=\"AirSync:\">1</airsync:ConversationMode>
      <airsync:Options xmlns:airsync=\"AirSync:\">
        <airsync:FilterType>3</airsync:FilterType>
      </airsync:Options>
    </Collection>
  </Collections>
</GetItemEstimate>";
        assert_eq!(xml(ProtocolVersion::V14_1, &[inbox()]), expected);
        assert_eq!(xml(ProtocolVersion::V16_1, &[inbox()]), expected);
        let contacts = EstimateCollection {
            sync_key: "1".into(),
            collection_id: "9".into(),
            class: Some(Class::Contacts),
            filter_type: None,
            conversation_mode: None,
        };
        let out = xml(ProtocolVersion::V16_1, &[contacts]);
        assert!(!out.contains("Options") && !out.contains("Class"), "{out}");
        assert!(request(ProtocolVersion::V16_1, &[]).is_err());
    }

    #[test]
    fn response_is_read() {
        let xml = "<GetItemEstimate xmlns=\"GetItemEstimate:\">
  <Response>
    <Status>1</Status>
    <Collection>
      <CollectionId>5</CollectionId>
      <Estimate>1234</Estimate>
    </Collection>
  </Response>
  <Response>
    <Status>3</Status>
    <Collection>
      <CollectionId>9</CollectionId>
    </Collection>
  </Response>
</GetItemEstimate>";
        let bytes = wbxml_from_xml(xml);
        let r = read_response(&mut parser(&bytes)).unwrap();
        assert_eq!(r.status, None);
        assert_eq!(
            r.estimates,
            vec![
                Estimate {
                    status: Status::Success,
                    collection_id: Some("5".into()),
                    estimate: Some(1234),
                },
                Estimate {
                    status: Status::NotPrimed,
                    collection_id: Some("9".into()),
                    estimate: None,
                },
            ]
        );
        assert_eq!(r.common_status(), None);
        let limits = Limits {
            max_entries: 1,
            ..Limits::default()
        };
        let mut p = Parser::with_limits(&bytes[..], limits);
        assert!(matches!(read_response(&mut p), Err(Error::Limit { .. })));
        for cut in [bytes.len() / 2, bytes.len() - 1] {
            assert!(read_response(&mut parser(&bytes[..cut])).is_err());
        }
        assert!(read_response(&mut parser(&[])).is_err());
    }

    #[test]
    fn every_status() {
        let cases = [
            (1, Status::Success, Action::Proceed),
            (2, Status::InvalidCollection, Action::ItemGone),
            (3, Status::NotPrimed, Action::ResyncState),
            (4, Status::InvalidSyncKey, Action::ResyncState),
            (5, Status::Unknown(5), Action::RetryLater),
        ];
        for (code, status, action) in cases {
            assert_eq!(Status::from_code(code), status);
            assert_eq!(status.code(), code);
            assert_eq!(status.action(), action);
        }
        let xml =
            "<GetItemEstimate xmlns=\"GetItemEstimate:\"><Status>143</Status></GetItemEstimate>";
        let r = read_response(&mut parser(&wbxml_from_xml(xml))).unwrap();
        assert_eq!(r.common_status(), CommonStatus::from_code(143));
        assert_eq!(r.status.unwrap().action(), Action::Reprovision);
    }
}
