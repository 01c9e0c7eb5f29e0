//! ResolveRecipients (MS-ASCMD 2.2.1.15): turn names or addresses into recipients from the
//! GAL or the user's contacts, optionally with their S/MIME certificates, free/busy
//! (14.0 and later) and picture (14.1 and later).

use embedded_io::Read;

use super::command::{Command, Request, write_wbxml};
use super::error::{Error, Result};
use super::parse::Parser;
use super::search::{Picture, PictureOptions, read_picture};
use super::status::{CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

const RR: u8 = cp::RESOLVE_RECIPIENTS;
const RESOLVE_RECIPIENTS: Tag = Tag::named(RR, "ResolveRecipients");
const RESPONSE: Tag = Tag::named(RR, "Response");
const STATUS: Tag = Tag::named(RR, "Status");
const TYPE: Tag = Tag::named(RR, "Type");
const RECIPIENT: Tag = Tag::named(RR, "Recipient");
const DISPLAY_NAME: Tag = Tag::named(RR, "DisplayName");
const EMAIL_ADDRESS: Tag = Tag::named(RR, "EmailAddress");
const CERTIFICATES: Tag = Tag::named(RR, "Certificates");
const CERTIFICATE: Tag = Tag::named(RR, "Certificate");
const MINI_CERTIFICATE: Tag = Tag::named(RR, "MiniCertificate");
const OPTIONS: Tag = Tag::named(RR, "Options");
const TO: Tag = Tag::named(RR, "To");
const CERTIFICATE_RETRIEVAL: Tag = Tag::named(RR, "CertificateRetrieval");
const RECIPIENT_COUNT: Tag = Tag::named(RR, "RecipientCount");
const MAX_CERTIFICATES: Tag = Tag::named(RR, "MaxCertificates");
const MAX_AMBIGUOUS_RECIPIENTS: Tag = Tag::named(RR, "MaxAmbiguousRecipients");
const CERTIFICATE_COUNT: Tag = Tag::named(RR, "CertificateCount");
const AVAILABILITY: Tag = Tag::named(RR, "Availability");
const START_TIME: Tag = Tag::named(RR, "StartTime");
const END_TIME: Tag = Tag::named(RR, "EndTime");
const MERGED_FREE_BUSY: Tag = Tag::named(RR, "MergedFreeBusy");
const PICTURE: Tag = Tag::named(RR, "Picture");
const MAX_SIZE: Tag = Tag::named(RR, "MaxSize");
const DATA: Tag = Tag::named(RR, "Data");
const MAX_PICTURES: Tag = Tag::named(RR, "MaxPictures");

command_status! {
    /// The status of the whole request (MS-ASCMD 2.2.3.177.14, parent ResolveRecipients).
    pub enum Status {
        1 => Success, Proceed, "success";
        5 => ProtocolError, FixRequest, "protocol error: the request did not validate";
        6 => ServerError, RetryLater, "the server failed";
    }
}

command_status! {
    /// The status of one `To` (MS-ASCMD 2.2.3.177.14, parent Response).
    pub enum ResponseStatus {
        1 => Success, Proceed, "the recipient was resolved";
        2 => Ambiguous, Proceed, "the name is ambiguous: all matches are listed, let the user choose";
        3 => AmbiguousPartial, Proceed, "the name is ambiguous: some matches are listed, let the user choose or refine";
        4 => Unresolved, FixRequest, "no recipient matches the name";
    }
}

command_status! {
    /// The status of a recipient's certificates (MS-ASCMD 2.2.3.177.14, parent Certificates).
    pub enum CertificateStatus {
        1 => Success, Proceed, "the certificates are included";
        7 => NoValidCertificate, Proceed, "the recipient has no valid certificate: it cannot receive encrypted mail";
        8 => CertificateLimitReached, Proceed, "the certificate limit was reached: some certificates are missing";
    }
}

command_status! {
    /// The status of a recipient's free/busy data: 1 or 160–163.
    pub enum AvailabilityStatus {
        1 => Success, Proceed, "the free/busy data is included";
    }
}

/// Which certificates to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateRetrieval {
    None = 1,
    Full = 2,
    Mini = 3,
}

/// The request's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub certificate_retrieval: Option<CertificateRetrieval>,
    pub max_certificates: Option<u32>,
    pub max_ambiguous_recipients: Option<u32>,
    /// Free/busy between two EAS date-times (14.0 and later).
    pub availability: Option<(String, String)>,
    /// 14.1 and later.
    pub picture: Option<PictureOptions>,
}

/// The ResolveRecipients request for `names` (addresses or display names). Options the
/// version lacks are an error.
pub fn request(version: ProtocolVersion, names: &[String], options: &Options) -> Result<Request> {
    if names.is_empty() {
        return Err(Error::Write(
            "a ResolveRecipients request needs at least one name".into(),
        ));
    }
    let body = write_wbxml(version, |w| {
        w.start(RESOLVE_RECIPIENTS)?;
        for name in names {
            w.text_element(TO, name)?;
        }
        if *options != Options::default() {
            w.start(OPTIONS)?;
            if let Some(retrieval) = options.certificate_retrieval {
                w.text_element(CERTIFICATE_RETRIEVAL, &(retrieval as u8).to_string())?;
            }
            if let Some(max) = options.max_certificates {
                w.text_element(MAX_CERTIFICATES, &max.to_string())?;
            }
            if let Some(max) = options.max_ambiguous_recipients {
                w.text_element(MAX_AMBIGUOUS_RECIPIENTS, &max.to_string())?;
            }
            if let Some((start, end)) = &options.availability {
                w.start(AVAILABILITY)?;
                w.text_element(START_TIME, start)?;
                w.text_element(END_TIME, end)?;
                w.end()?;
            }
            if let Some(picture) = &options.picture {
                picture.write(w, [PICTURE, MAX_SIZE, MAX_PICTURES])?;
            }
            w.end()?;
        }
        w.end()
    })?;
    Ok(Request::wbxml(Command::ResolveRecipients, body))
}

/// A recipient's certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificates {
    pub status: Option<CertificateStatus>,
    pub certificate_count: Option<u32>,
    pub recipient_count: Option<u32>,
    /// Full certificates, as sent (base64 of the DER).
    pub certificates: Vec<String>,
    /// A mini certificate, as sent (base64).
    pub mini_certificate: Option<String>,
}

/// Free/busy data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    pub status: Option<AvailabilityStatus>,
    /// One digit per 30 minutes: 0 free, 1 tentative, 2 busy, 3 out of office, 4 no data.
    pub merged_free_busy: Option<String>,
}

/// Where a recipient was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientType {
    Gal,
    Contact,
    Unknown(u32),
}

/// One match for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub kind: Option<RecipientType>,
    pub display_name: Option<String>,
    pub email_address: Option<String>,
    pub availability: Option<Availability>,
    pub certificates: Option<Certificates>,
    pub picture: Option<Picture>,
}

/// The answer for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameResponse {
    pub to: Option<String>,
    pub status: ResponseStatus,
    pub recipient_count: Option<u32>,
    pub recipients: Vec<Recipient>,
}

/// A ResolveRecipients response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub responses: Vec<NameResponse>,
}

impl HasStatus for Response {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.common()
    }
}

pub fn read_response<R: Read>(p: &mut Parser<R>) -> Result<Response> {
    if p.root(RESOLVE_RECIPIENTS)?.is_none() {
        return Err(p.error("the ResolveRecipients response is empty"));
    }
    let mut status = None;
    let mut responses = Vec::new();
    // Recipients and certificates across the whole response, bounded together.
    let mut budget = p.limits().max_entries;
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(Status::read(p, child)?),
            RESPONSE => {
                take(p, &mut budget, child.offset)?;
                responses.push(read_name_response(p, &mut budget)?);
            }
            _ => p.skip(child)?,
        }
    }
    p.finish()?;
    let status = status.ok_or_else(|| p.error("the ResolveRecipients response has no Status"))?;
    Ok(Response { status, responses })
}

fn take<R: Read>(p: &Parser<R>, budget: &mut usize, offset: u64) -> Result<()> {
    if *budget == 0 {
        return Err(Error::Limit {
            what: "the number of recipients and certificates",
            limit: p.limits().max_entries as u64,
            offset,
        });
    }
    *budget -= 1;
    Ok(())
}

fn read_name_response<R: Read>(p: &mut Parser<R>, budget: &mut usize) -> Result<NameResponse> {
    let mut to = None;
    let mut status = None;
    let mut recipient_count = None;
    let mut recipients = Vec::new();
    while let Some(child) = p.next_child()? {
        match child.tag {
            TO => to = Some(p.text(child)?),
            STATUS => status = Some(ResponseStatus::read(p, child)?),
            RECIPIENT_COUNT => recipient_count = Some(p.number(child)?),
            RECIPIENT => {
                take(p, budget, child.offset)?;
                recipients.push(read_recipient(p, budget)?);
            }
            _ => p.skip(child)?,
        }
    }
    let status = status.ok_or_else(|| p.error("a ResolveRecipients Response has no Status"))?;
    Ok(NameResponse {
        to,
        status,
        recipient_count,
        recipients,
    })
}

fn read_recipient<R: Read>(p: &mut Parser<R>, budget: &mut usize) -> Result<Recipient> {
    let mut recipient = Recipient {
        kind: None,
        display_name: None,
        email_address: None,
        availability: None,
        certificates: None,
        picture: None,
    };
    while let Some(child) = p.next_child()? {
        match child.tag {
            TYPE => {
                recipient.kind = Some(match p.number(child)? {
                    1 => RecipientType::Gal,
                    2 => RecipientType::Contact,
                    other => RecipientType::Unknown(other),
                })
            }
            DISPLAY_NAME => recipient.display_name = Some(p.text(child)?),
            EMAIL_ADDRESS => recipient.email_address = Some(p.text(child)?),
            AVAILABILITY => {
                let mut availability = Availability {
                    status: None,
                    merged_free_busy: None,
                };
                while let Some(field) = p.next_child()? {
                    match field.tag {
                        STATUS => availability.status = Some(AvailabilityStatus::read(p, field)?),
                        MERGED_FREE_BUSY => availability.merged_free_busy = Some(p.text(field)?),
                        _ => p.skip(field)?,
                    }
                }
                recipient.availability = Some(availability);
            }
            CERTIFICATES => recipient.certificates = Some(read_certificates(p, budget)?),
            PICTURE => recipient.picture = Some(read_picture(p, STATUS, DATA)?),
            _ => p.skip(child)?,
        }
    }
    Ok(recipient)
}

fn read_certificates<R: Read>(p: &mut Parser<R>, budget: &mut usize) -> Result<Certificates> {
    let mut certs = Certificates {
        status: None,
        certificate_count: None,
        recipient_count: None,
        certificates: Vec::new(),
        mini_certificate: None,
    };
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => certs.status = Some(CertificateStatus::read(p, child)?),
            CERTIFICATE_COUNT => certs.certificate_count = Some(p.number(child)?),
            RECIPIENT_COUNT => certs.recipient_count = Some(p.number(child)?),
            CERTIFICATE => {
                take(p, budget, child.offset)?;
                certs.certificates.push(p.text(child)?);
            }
            MINI_CERTIFICATE => certs.mini_certificate = Some(p.text(child)?),
            _ => p.skip(child)?,
        }
    }
    Ok(certs)
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::search::PictureStatus;
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};
    use crate::eas::{Action, Limits};

    #[test]
    fn requests_per_version() {
        let names = vec!["ann".to_string(), "bob@example.com".to_string()];
        let basic = Options {
            certificate_retrieval: Some(CertificateRetrieval::Full),
            max_certificates: Some(2),
            max_ambiguous_recipients: Some(5),
            ..Options::default()
        };
        let req = request(ProtocolVersion::V12_1, &names, &basic).unwrap();
        assert_eq!(req.command, Command::ResolveRecipients);
        assert_eq!(
            request_xml(&req),
            "<ResolveRecipients xmlns=\"ResolveRecipients:\">\n  <To>ann</To>\n  <To>bob@example.com</To>\n  \
             <Options>\n    <CertificateRetrieval>2</CertificateRetrieval>\n    <MaxCertificates>2</MaxCertificates>\n    \
             <MaxAmbiguousRecipients>5</MaxAmbiguousRecipients>\n  </Options>\n</ResolveRecipients>"
        );
        let no_options = request(ProtocolVersion::V12_1, &names[..1], &Options::default()).unwrap();
        assert_eq!(
            request_xml(&no_options),
            "<ResolveRecipients xmlns=\"ResolveRecipients:\">\n  <To>ann</To>\n</ResolveRecipients>"
        );

        let availability = Options {
            availability: Some((
                "2026-03-02T08:00:00.000Z".into(),
                "2026-03-02T18:00:00.000Z".into(),
            )),
            ..Options::default()
        };
        assert!(request(ProtocolVersion::V12_1, &names, &availability).is_err());
        assert_eq!(
            request_xml(&request(ProtocolVersion::V14_0, &names[..1], &availability).unwrap()),
            "<ResolveRecipients xmlns=\"ResolveRecipients:\">\n  <To>ann</To>\n  <Options>\n    <Availability>\n      \
             <StartTime>2026-03-02T08:00:00.000Z</StartTime>\n      <EndTime>2026-03-02T18:00:00.000Z</EndTime>\n    \
             </Availability>\n  </Options>\n</ResolveRecipients>"
        );

        let picture = Options {
            picture: Some(PictureOptions {
                max_size: Some(10_000),
                max_pictures: None,
            }),
            ..Options::default()
        };
        assert!(request(ProtocolVersion::V14_0, &names, &picture).is_err());
        assert_eq!(
            request_xml(&request(ProtocolVersion::V16_1, &names[..1], &picture).unwrap()),
            "<ResolveRecipients xmlns=\"ResolveRecipients:\">\n  <To>ann</To>\n  <Options>\n    <Picture>\n      \
             <MaxSize>10000</MaxSize>\n    </Picture>\n  </Options>\n</ResolveRecipients>"
        );
        assert!(request(ProtocolVersion::V16_1, &[], &Options::default()).is_err());
    }

    const RESPONSE_XML: &str = "<ResolveRecipients xmlns=\"ResolveRecipients:\">
  <Status>1</Status>
  <Response>
    <To>ann</To>
    <Status>1</Status>
    <RecipientCount>1</RecipientCount>
    <Recipient>
      <Type>1</Type>
      <DisplayName>Ann Smith</DisplayName>
      <EmailAddress>ann@example.com</EmailAddress>
      <Availability>
        <Status>1</Status>
        <MergedFreeBusy>0022</MergedFreeBusy>
      </Availability>
      <Certificates>
        <Status>1</Status>
        <CertificateCount>2</CertificateCount>
        <RecipientCount>1</RecipientCount>
        <Certificate>MIIBAA==</Certificate>
        <Certificate>MIIBAB==</Certificate>
      </Certificates>
      <Picture>
        <Status>1</Status>
        <Data>/9j/</Data>
      </Picture>
    </Recipient>
  </Response>
  <Response>
    <To>smith</To>
    <Status>2</Status>
    <RecipientCount>2</RecipientCount>
    <Recipient>
      <Type>2</Type>
      <DisplayName>Bob Smith</DisplayName>
      <EmailAddress>bob@example.com</EmailAddress>
      <Certificates>
        <Status>7</Status>
        <CertificateCount>0</CertificateCount>
      </Certificates>
    </Recipient>
    <Recipient>
      <Type>1</Type>
      <DisplayName>Cy Smith</DisplayName>
      <EmailAddress>cy@example.com</EmailAddress>
      <Availability>
        <Status>162</Status>
      </Availability>
    </Recipient>
  </Response>
  <Response>
    <To>nobody</To>
    <Status>4</Status>
    <RecipientCount>0</RecipientCount>
  </Response>
</ResolveRecipients>";

    #[test]
    fn response() {
        let bytes = wbxml_from_xml(RESPONSE_XML);
        let r = read_response(&mut parser(&bytes)).unwrap();
        assert_eq!(r.status, Status::Success);
        assert_eq!(r.common_status(), None);
        assert_eq!(r.responses.len(), 3);
        let ann = &r.responses[0];
        assert_eq!(ann.to.as_deref(), Some("ann"));
        assert_eq!(ann.status, ResponseStatus::Success);
        assert_eq!(ann.recipient_count, Some(1));
        let rec = &ann.recipients[0];
        assert_eq!(rec.kind, Some(RecipientType::Gal));
        assert_eq!(rec.display_name.as_deref(), Some("Ann Smith"));
        assert_eq!(rec.email_address.as_deref(), Some("ann@example.com"));
        assert_eq!(
            rec.availability,
            Some(Availability {
                status: Some(AvailabilityStatus::Success),
                merged_free_busy: Some("0022".into())
            })
        );
        assert_eq!(
            rec.certificates,
            Some(Certificates {
                status: Some(CertificateStatus::Success),
                certificate_count: Some(2),
                recipient_count: Some(1),
                certificates: vec!["MIIBAA==".into(), "MIIBAB==".into()],
                mini_certificate: None,
            })
        );
        assert_eq!(
            rec.picture,
            Some(Picture {
                status: Some(PictureStatus::Success),
                data: Some(b"/9j/".to_vec())
            })
        );

        let smith = &r.responses[1];
        assert_eq!(smith.status, ResponseStatus::Ambiguous);
        assert_eq!(smith.recipients.len(), 2);
        assert_eq!(smith.recipients[0].kind, Some(RecipientType::Contact));
        assert_eq!(
            smith.recipients[0].certificates.as_ref().unwrap().status,
            Some(CertificateStatus::NoValidCertificate)
        );
        let busy = smith.recipients[1]
            .availability
            .as_ref()
            .unwrap()
            .status
            .unwrap();
        assert_eq!(
            busy,
            AvailabilityStatus::Common(CommonStatus::AvailabilityTransientFailure)
        );
        assert_eq!(busy.action(), Action::RetryLater);
        let nobody = &r.responses[2];
        assert_eq!(nobody.status, ResponseStatus::Unresolved);
        assert!(nobody.recipients.is_empty());
    }

    #[test]
    fn limits_and_errors() {
        let bytes = wbxml_from_xml(RESPONSE_XML);
        // 3 responses + 3 recipients + 2 certificates = 8 entries.
        for (max, ok) in [(8, true), (7, false)] {
            let limits = Limits {
                max_entries: max,
                ..Limits::default()
            };
            let result = read_response(&mut Parser::with_limits(&bytes[..], limits));
            assert_eq!(result.is_ok(), ok, "{result:?}");
        }
        let limits = Limits {
            max_value: 7,
            ..Limits::default()
        };
        let err = read_response(&mut Parser::with_limits(&bytes[..], limits)).unwrap_err();
        assert!(
            matches!(err, Error::Limit { .. }),
            "certificate text is bounded: {err}"
        );
        for len in 1..bytes.len() {
            assert!(
                read_response(&mut parser(&bytes[..len])).is_err(),
                "cut at {len}"
            );
        }
        assert!(read_response(&mut parser(&[])).is_err());
        let global = wbxml_from_xml(
            "<ResolveRecipients xmlns=\"ResolveRecipients:\">\n  <Status>6</Status>\n</ResolveRecipients>",
        );
        let r = read_response(&mut parser(&global)).unwrap();
        assert_eq!(r.status, Status::ServerError);
        assert_eq!(r.status.action(), Action::RetryLater);
    }

    #[test]
    fn status_codes() {
        assert_eq!(Status::from_code(5), Status::ProtocolError);
        assert_eq!(Status::from_code(2), Status::Unknown(2));
        for code in 1..=4 {
            assert_eq!(ResponseStatus::from_code(code).code(), code);
        }
        assert_eq!(
            CertificateStatus::from_code(8),
            CertificateStatus::CertificateLimitReached
        );
        assert_eq!(ResponseStatus::from_code(4).action(), Action::FixRequest);
        for code in 160..=163 {
            assert!(matches!(
                AvailabilityStatus::from_code(code),
                AvailabilityStatus::Common(_)
            ));
        }
    }
}
