//! The Settings command (MS-ASCMD 2.2.1.18): send the device's information, read and set the
//! Out of Office (Oof) reply, read the user's addresses and accounts.
//!
//! One request carries any set of [`Operation`]s; the response reader returns the overall
//! status and, for each part the server answered, its own status and data.
//!
//! [`DeviceInformation`] lives here and is reused by Provision, which carries it on 14.1 and
//! later (on 12.1 and 14.0 it goes through Settings).
//!
//! Not covered: RightsManagementInformation Get (IRM templates; easync does not do IRM) and
//! DevicePassword Set (sending the device password to the server for recovery), whose
//! response parts are skipped like any unknown element.

use embedded_io::{Read, Write};

use super::command::{Command, Request, write_wbxml};
use super::error::{Error, Result};
use super::parse::{Child, Parser};
use super::status::{Action, CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{self, ProtocolVersion, Tag};

const SETTINGS: Tag = Tag::named(cp::SETTINGS, "Settings");
pub(crate) const STATUS: Tag = Tag::named(cp::SETTINGS, "Status");
const GET: Tag = Tag::named(cp::SETTINGS, "Get");
pub(crate) const SET: Tag = Tag::named(cp::SETTINGS, "Set");
const OOF: Tag = Tag::named(cp::SETTINGS, "Oof");
const OOF_STATE: Tag = Tag::named(cp::SETTINGS, "OofState");
const START_TIME: Tag = Tag::named(cp::SETTINGS, "StartTime");
const END_TIME: Tag = Tag::named(cp::SETTINGS, "EndTime");
const OOF_MESSAGE: Tag = Tag::named(cp::SETTINGS, "OofMessage");
const APPLIES_TO_INTERNAL: Tag = Tag::named(cp::SETTINGS, "AppliesToInternal");
const APPLIES_TO_EXTERNAL_KNOWN: Tag = Tag::named(cp::SETTINGS, "AppliesToExternalKnown");
const APPLIES_TO_EXTERNAL_UNKNOWN: Tag = Tag::named(cp::SETTINGS, "AppliesToExternalUnknown");
const ENABLED: Tag = Tag::named(cp::SETTINGS, "Enabled");
const REPLY_MESSAGE: Tag = Tag::named(cp::SETTINGS, "ReplyMessage");
const BODY_TYPE: Tag = Tag::named(cp::SETTINGS, "BodyType");
pub(crate) const DEVICE_INFORMATION: Tag = Tag::named(cp::SETTINGS, "DeviceInformation");
const MODEL: Tag = Tag::named(cp::SETTINGS, "Model");
const IMEI: Tag = Tag::named(cp::SETTINGS, "IMEI");
const FRIENDLY_NAME: Tag = Tag::named(cp::SETTINGS, "FriendlyName");
const OS: Tag = Tag::named(cp::SETTINGS, "OS");
const OS_LANGUAGE: Tag = Tag::named(cp::SETTINGS, "OSLanguage");
const PHONE_NUMBER: Tag = Tag::named(cp::SETTINGS, "PhoneNumber");
const USER_AGENT: Tag = Tag::named(cp::SETTINGS, "UserAgent");
const ENABLE_OUTBOUND_SMS: Tag = Tag::named(cp::SETTINGS, "EnableOutboundSMS");
const MOBILE_OPERATOR: Tag = Tag::named(cp::SETTINGS, "MobileOperator");
const USER_INFORMATION: Tag = Tag::named(cp::SETTINGS, "UserInformation");
const EMAIL_ADDRESSES: Tag = Tag::named(cp::SETTINGS, "EmailAddresses");
const SMTP_ADDRESS: Tag = Tag::named(cp::SETTINGS, "SMTPAddress");
const PRIMARY_SMTP_ADDRESS: Tag = Tag::named(cp::SETTINGS, "PrimarySmtpAddress");
const ACCOUNTS: Tag = Tag::named(cp::SETTINGS, "Accounts");
const ACCOUNT: Tag = Tag::named(cp::SETTINGS, "Account");
const ACCOUNT_ID: Tag = Tag::named(cp::SETTINGS, "AccountId");
const ACCOUNT_NAME: Tag = Tag::named(cp::SETTINGS, "AccountName");
const USER_DISPLAY_NAME: Tag = Tag::named(cp::SETTINGS, "UserDisplayName");
const SEND_DISABLED: Tag = Tag::named(cp::SETTINGS, "SendDisabled");

command_status! {
    /// The Status of Settings and of each of its parts (MS-ASCMD 2.2.3.177.15).
    pub enum SettingsStatus {
        1 => Success, Proceed, "success";
        2 => ProtocolError, FixRequest, "the server found the Settings request malformed";
        3 => AccessDenied, Blocked, "the server denied access to this setting";
        4 => ServerUnavailable, RetryLater, "the server is unavailable; retry later";
        5 => InvalidArguments, FixRequest, "the request's arguments are invalid";
        6 => ConflictingArguments, FixRequest, "the request's arguments conflict";
        7 => DeniedByPolicy, Blocked, "the server's policy denies this setting";
    }
}

/// What the device tells the server about itself (Settings DeviceInformation Set). Every
/// field is optional; only those set are sent, and only the elements the protocol version
/// has (UserAgent from 12.1, EnableOutboundSMS and MobileOperator from 14.0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInformation {
    pub model: Option<String>,
    pub imei: Option<String>,
    pub friendly_name: Option<String>,
    pub os: Option<String>,
    pub os_language: Option<String>,
    pub phone_number: Option<String>,
    pub user_agent: Option<String>,
    /// Whether the device can send SMS through the server.
    pub enable_outbound_sms: Option<bool>,
    pub mobile_operator: Option<String>,
}

impl DeviceInformation {
    /// Writes `<DeviceInformation><Set>…</Set></DeviceInformation>` (Settings page).
    pub fn write<W: Write>(
        &self,
        w: &mut wbxml::Writer<W>,
        version: ProtocolVersion,
    ) -> core::result::Result<(), wbxml::Error<W::Error>> {
        let sms = self.enable_outbound_sms.map(|b| if b { "1" } else { "0" });
        let fields: [(Tag, Option<&str>); 9] = [
            (MODEL, self.model.as_deref()),
            (IMEI, self.imei.as_deref()),
            (FRIENDLY_NAME, self.friendly_name.as_deref()),
            (OS, self.os.as_deref()),
            (OS_LANGUAGE, self.os_language.as_deref()),
            (PHONE_NUMBER, self.phone_number.as_deref()),
            (USER_AGENT, self.user_agent.as_deref()),
            (ENABLE_OUTBOUND_SMS, sms),
            (MOBILE_OPERATOR, self.mobile_operator.as_deref()),
        ];
        w.start(DEVICE_INFORMATION)?;
        w.start(SET)?;
        for (tag, value) in fields {
            if let Some(value) = value {
                if tag.in_version(version) {
                    w.text_element(tag, value)?;
                }
            }
        }
        w.end()?;
        w.end()
    }
}

/// OofState (MS-ASCMD 2.2.3.124).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OofState {
    Disabled,
    /// On until turned off.
    Global,
    /// On between StartTime and EndTime.
    TimeBased,
    Unknown(u32),
}

impl OofState {
    pub const fn from_code(code: u32) -> OofState {
        match code {
            0 => OofState::Disabled,
            1 => OofState::Global,
            2 => OofState::TimeBased,
            other => OofState::Unknown(other),
        }
    }

    pub const fn code(self) -> u32 {
        match self {
            OofState::Disabled => 0,
            OofState::Global => 1,
            OofState::TimeBased => 2,
            OofState::Unknown(other) => other,
        }
    }
}

/// Who an Oof message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Senders inside the organisation (AppliesToInternal).
    Internal,
    /// Outside senders in the user's contacts (AppliesToExternalKnown).
    ExternalKnown,
    /// Any other outside sender (AppliesToExternalUnknown).
    ExternalUnknown,
}

impl Audience {
    const fn tag(self) -> Tag {
        match self {
            Audience::Internal => APPLIES_TO_INTERNAL,
            Audience::ExternalKnown => APPLIES_TO_EXTERNAL_KNOWN,
            Audience::ExternalUnknown => APPLIES_TO_EXTERNAL_UNKNOWN,
        }
    }

    fn from_tag(tag: Tag) -> Option<Audience> {
        [
            Audience::Internal,
            Audience::ExternalKnown,
            Audience::ExternalUnknown,
        ]
        .into_iter()
        .find(|a| a.tag() == tag)
    }
}

/// The body type of Oof replies ("Text" or "HTML" on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OofBodyType {
    Text,
    Html,
}

impl OofBodyType {
    pub const fn as_str(self) -> &'static str {
        match self {
            OofBodyType::Text => "Text",
            OofBodyType::Html => "HTML",
        }
    }
}

/// One OofMessage: the reply for one audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OofMessage {
    pub audience: Audience,
    pub enabled: Option<bool>,
    pub reply_message: Option<String>,
    /// "Text" or "HTML" as the server wrote it.
    pub body_type: Option<String>,
}

/// The Out of Office settings, as read (Oof Get) or to be set (Oof Set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OofSettings {
    pub state: Option<OofState>,
    /// ISO 8601 date-time as on the wire (only with [`OofState::TimeBased`]).
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub messages: Vec<OofMessage>,
}

/// One part of a Settings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Read the Oof settings, with replies in this body type.
    OofGet(OofBodyType),
    OofSet(OofSettings),
    DeviceInformationSet(DeviceInformation),
    /// Read the user's addresses (and, from 14.1, accounts).
    UserInformationGet,
}

impl Operation {
    /// Position in the request (the schema's sequence: Oof, DeviceInformation,
    /// UserInformation).
    fn rank(&self) -> u8 {
        match self {
            Operation::OofGet(_) | Operation::OofSet(_) => 0,
            Operation::DeviceInformationSet(_) => 1,
            Operation::UserInformationGet => 2,
        }
    }

    fn write<W: Write>(
        &self,
        w: &mut wbxml::Writer<W>,
        version: ProtocolVersion,
    ) -> core::result::Result<(), wbxml::Error<W::Error>> {
        match self {
            Operation::OofGet(body_type) => {
                w.start(OOF)?;
                w.start(GET)?;
                w.text_element(BODY_TYPE, body_type.as_str())?;
                w.end()?;
                w.end()
            }
            Operation::OofSet(settings) => {
                w.start(OOF)?;
                w.start(SET)?;
                write_oof_settings(w, settings)?;
                w.end()?;
                w.end()
            }
            Operation::DeviceInformationSet(info) => info.write(w, version),
            Operation::UserInformationGet => {
                w.start(USER_INFORMATION)?;
                w.empty(GET)?;
                w.end()
            }
        }
    }
}

fn write_oof_settings<W: Write>(
    w: &mut wbxml::Writer<W>,
    s: &OofSettings,
) -> core::result::Result<(), wbxml::Error<W::Error>> {
    if let Some(state) = s.state {
        w.text_element(OOF_STATE, &state.code().to_string())?;
    }
    if let Some(t) = &s.start_time {
        w.text_element(START_TIME, t)?;
    }
    if let Some(t) = &s.end_time {
        w.text_element(END_TIME, t)?;
    }
    for m in &s.messages {
        w.start(OOF_MESSAGE)?;
        w.empty(m.audience.tag())?;
        if let Some(enabled) = m.enabled {
            w.text_element(ENABLED, if enabled { "1" } else { "0" })?;
        }
        if let Some(reply) = &m.reply_message {
            w.text_element(REPLY_MESSAGE, reply)?;
        }
        if let Some(body_type) = &m.body_type {
            w.text_element(BODY_TYPE, body_type)?;
        }
        w.end()?;
    }
    Ok(())
}

/// A Settings request with `operations` (at most one of each kind: one Oof Get or Set, one
/// DeviceInformation, one UserInformation), written in the order the schema requires.
pub fn request(version: ProtocolVersion, operations: &[Operation]) -> Result<Request> {
    if operations.is_empty() {
        return Err(Error::Write(
            "a Settings request needs at least one operation".into(),
        ));
    }
    let mut ordered: Vec<&Operation> = operations.iter().collect();
    ordered.sort_by_key(|op| op.rank());
    if ordered
        .windows(2)
        .any(|pair| pair[0].rank() == pair[1].rank())
    {
        return Err(Error::Write(
            "a Settings request may carry only one operation of each kind (one Oof Get or Set, one DeviceInformation, one UserInformation)".into(),
        ));
    }
    let body = write_wbxml(version, |w| {
        w.start(SETTINGS)?;
        for op in &ordered {
            op.write(w, version)?;
        }
        w.end()
    })?;
    Ok(Request::wbxml(Command::Settings, body))
}

/// The Oof part of a Settings response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OofResult {
    pub status: SettingsStatus,
    /// The settings, in answer to Oof Get.
    pub settings: Option<OofSettings>,
}

/// A set of e-mail addresses (Settings EmailAddresses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailAddresses {
    /// PrimarySmtpAddress (14.1 and later).
    pub primary_smtp_address: Option<String>,
    pub smtp_addresses: Vec<String>,
}

/// One account of the user (14.1 and later): the mailbox itself or one it may send from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// Absent for the user's own mailbox.
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub user_display_name: Option<String>,
    /// Sending from this account is not allowed.
    pub send_disabled: Option<bool>,
    pub email_addresses: EmailAddresses,
}

/// The UserInformation Get answer: addresses directly (12.1, 14.0) or per account (14.1+).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInformation {
    pub email_addresses: EmailAddresses,
    pub accounts: Vec<Account>,
}

/// The UserInformation part of a Settings response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInformationResult {
    pub status: SettingsStatus,
    pub info: Option<UserInformation>,
}

/// A Settings response: the overall status, then each part the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsResponse {
    pub status: SettingsStatus,
    pub oof: Option<OofResult>,
    /// The status of DeviceInformation Set.
    pub device_information: Option<SettingsStatus>,
    pub user_information: Option<UserInformationResult>,
}

impl HasStatus for SettingsResponse {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.common()
    }
}

impl SettingsResponse {
    /// What to do about the response as a whole (its parts have their own statuses).
    pub fn action(&self) -> Action {
        self.status.action()
    }
}

/// Reads a Settings response. A part without its own Status takes the overall one.
pub fn read_response<R: Read>(p: &mut Parser<R>) -> Result<SettingsResponse> {
    let Some(_root) = p.root(SETTINGS)? else {
        return Err(p.error("the Settings response is empty"));
    };
    let mut status = None;
    let mut oof = None;
    let mut device_information = None;
    let mut user_information = None;
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(SettingsStatus::read(p, child)?),
            OOF => oof = Some(read_part_with_get(p, read_oof_settings)?),
            DEVICE_INFORMATION => device_information = Some(read_part_status(p)?),
            USER_INFORMATION => {
                user_information = Some(read_part_with_get(p, read_user_information_get)?)
            }
            _ => p.skip(child)?,
        }
    }
    p.finish()?;
    let Some(status) = status else {
        return Err(p.error("the Settings response has no Status"));
    };
    let oof = oof.map(|(s, settings)| OofResult {
        status: s.unwrap_or(status),
        settings,
    });
    let user_information = user_information.map(|(s, info)| UserInformationResult {
        status: s.unwrap_or(status),
        info,
    });
    Ok(SettingsResponse {
        status,
        oof,
        device_information: device_information.map(|s| s.unwrap_or(status)),
        user_information,
    })
}

/// Reads a part holding only a Status (DeviceInformation in Settings and in Provision).
pub(crate) fn read_part_status<R: Read>(p: &mut Parser<R>) -> Result<Option<SettingsStatus>> {
    let mut status = None;
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(SettingsStatus::read(p, child)?),
            _ => p.skip(child)?,
        }
    }
    Ok(status)
}

/// Reads a part made of its own Status and a Get (Oof, UserInformation); `read_get` reads the
/// Get once it has started.
fn read_part_with_get<R: Read, T>(
    p: &mut Parser<R>,
    read_get: fn(&mut Parser<R>) -> Result<T>,
) -> Result<(Option<SettingsStatus>, Option<T>)> {
    let mut status = None;
    let mut got = None;
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(SettingsStatus::read(p, child)?),
            GET => got = Some(read_get(p)?),
            _ => p.skip(child)?,
        }
    }
    Ok((status, got))
}

fn read_oof_settings<R: Read>(p: &mut Parser<R>) -> Result<OofSettings> {
    let mut s = OofSettings::default();
    while let Some(child) = p.next_child()? {
        match child.tag {
            OOF_STATE => s.state = Some(OofState::from_code(p.number(child)?)),
            START_TIME => s.start_time = Some(p.text(child)?),
            END_TIME => s.end_time = Some(p.text(child)?),
            OOF_MESSAGE => {
                p.check_entries(s.messages.len(), "Oof messages", child.offset)?;
                if let Some(m) = read_oof_message(p)? {
                    s.messages.push(m);
                }
            }
            _ => p.skip(child)?,
        }
    }
    Ok(s)
}

/// One OofMessage; `None` when it names no audience (nothing to attach it to).
fn read_oof_message<R: Read>(p: &mut Parser<R>) -> Result<Option<OofMessage>> {
    let mut audience = None;
    let mut enabled = None;
    let mut reply_message = None;
    let mut body_type = None;
    while let Some(child) = p.next_child()? {
        if let Some(a) = Audience::from_tag(child.tag) {
            audience = Some(a);
            p.skip(child)?;
            continue;
        }
        match child.tag {
            ENABLED => enabled = Some(read_bool(p, child)?),
            REPLY_MESSAGE => reply_message = Some(p.text(child)?),
            BODY_TYPE => body_type = Some(p.text(child)?),
            _ => p.skip(child)?,
        }
    }
    Ok(audience.map(|audience| OofMessage {
        audience,
        enabled,
        reply_message,
        body_type,
    }))
}

fn read_user_information_get<R: Read>(p: &mut Parser<R>) -> Result<UserInformation> {
    let mut info = UserInformation::default();
    while let Some(child) = p.next_child()? {
        match child.tag {
            EMAIL_ADDRESSES => read_email_addresses(p, &mut info.email_addresses)?,
            ACCOUNTS => {
                while let Some(account) = p.next_child()? {
                    if account.tag != ACCOUNT {
                        p.skip(account)?;
                        continue;
                    }
                    p.check_entries(info.accounts.len(), "accounts", account.offset)?;
                    info.accounts.push(read_account(p)?);
                }
            }
            _ => p.skip(child)?,
        }
    }
    Ok(info)
}

fn read_account<R: Read>(p: &mut Parser<R>) -> Result<Account> {
    let mut a = Account::default();
    while let Some(child) = p.next_child()? {
        match child.tag {
            ACCOUNT_ID => a.account_id = Some(p.text(child)?),
            ACCOUNT_NAME => a.account_name = Some(p.text(child)?),
            USER_DISPLAY_NAME => a.user_display_name = Some(p.text(child)?),
            SEND_DISABLED => a.send_disabled = Some(read_bool(p, child)?),
            EMAIL_ADDRESSES => read_email_addresses(p, &mut a.email_addresses)?,
            _ => p.skip(child)?,
        }
    }
    Ok(a)
}

fn read_email_addresses<R: Read>(p: &mut Parser<R>, out: &mut EmailAddresses) -> Result<()> {
    while let Some(child) = p.next_child()? {
        match child.tag {
            PRIMARY_SMTP_ADDRESS => out.primary_smtp_address = Some(p.text(child)?),
            SMTP_ADDRESS => {
                p.check_entries(out.smtp_addresses.len(), "e-mail addresses", child.offset)?;
                out.smtp_addresses.push(p.text(child)?);
            }
            _ => p.skip(child)?,
        }
    }
    Ok(())
}

/// A 0/1 value; anything else is an error naming the element.
fn read_bool<R: Read>(p: &mut Parser<R>, child: Child) -> Result<bool> {
    let text = p.text(child)?;
    match text.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(Error::Protocol {
            offset: child.offset,
            message: format!(
                "{} must be 0 or 1, not {:?}",
                child.tag,
                other.chars().take(32).collect::<String>()
            ),
        }),
    }
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};

    fn body_xml(request: &Request) -> String {
        assert_eq!(request.command, Command::Settings);
        request_xml(request)
    }

    fn full_device() -> DeviceInformation {
        DeviceInformation {
            model: Some("Gateway 7".into()),
            imei: Some("356938035643809".into()),
            friendly_name: Some("Line 3 terminal".into()),
            os: Some("Linux 6.6".into()),
            os_language: Some("English".into()),
            phone_number: Some("+15551234567".into()),
            user_agent: Some("easync/0.1".into()),
            enable_outbound_sms: Some(false),
            mobile_operator: Some("Contoso Mobile".into()),
        }
    }

    fn read(xml: &str) -> Result<SettingsResponse> {
        let bytes = wbxml_from_xml(xml);
        read_response(&mut parser(&bytes))
    }

    #[test]
    fn device_information_request_per_version() {
        let ops = [Operation::DeviceInformationSet(full_device())];
        let v12 = body_xml(&request(ProtocolVersion::V12_1, &ops).unwrap());
        assert_eq!(
            v12,
            "<Settings xmlns=\"Settings:\">
  <DeviceInformation>
    <Set>
      <Model>Gateway 7</Model>
      <IMEI>356938035643809</IMEI>
      <FriendlyName>Line 3 terminal</FriendlyName>
      <OS>Linux 6.6</OS>
      <OSLanguage>English</OSLanguage>
      <PhoneNumber>+15551234567</PhoneNumber>
      <UserAgent>easync/0.1</UserAgent>
    </Set>
  </DeviceInformation>
</Settings>"
        );
        let v14 = body_xml(&request(ProtocolVersion::V14_0, &ops).unwrap());
        assert!(v14.contains(
            "<UserAgent>easync/0.1</UserAgent>
      <EnableOutboundSMS>0</EnableOutboundSMS>
      <MobileOperator>Contoso Mobile</MobileOperator>
    </Set>"
        ));
        // 12.0 has no UserAgent.
        let v120 = body_xml(&request(ProtocolVersion::V12_0, &ops).unwrap());
        assert!(!v120.contains("UserAgent") && v120.contains("<PhoneNumber>"));
        // Only the fields that are set.
        let some = DeviceInformation {
            model: Some("M".into()),
            ..Default::default()
        };
        let xml = body_xml(
            &request(
                ProtocolVersion::V16_1,
                &[Operation::DeviceInformationSet(some)],
            )
            .unwrap(),
        );
        assert!(
            xml.contains("<Set>\n      <Model>M</Model>\n    </Set>"),
            "{xml}"
        );
    }

    #[test]
    fn oof_and_user_information_requests() {
        let set = OofSettings {
            state: Some(OofState::TimeBased),
            start_time: Some("2026-12-20T00:00:00.000Z".into()),
            end_time: Some("2027-01-05T00:00:00.000Z".into()),
            messages: vec![
                OofMessage {
                    audience: Audience::Internal,
                    enabled: Some(true),
                    reply_message: Some("Back in January.".into()),
                    body_type: Some("Text".into()),
                },
                OofMessage {
                    audience: Audience::ExternalUnknown,
                    enabled: Some(false),
                    reply_message: None,
                    body_type: None,
                },
            ],
        };
        // Given out of order; written in schema order.
        let ops = [
            Operation::UserInformationGet,
            Operation::DeviceInformationSet(DeviceInformation {
                os: Some("Linux".into()),
                ..Default::default()
            }),
            Operation::OofSet(set),
        ];
        let xml = body_xml(&request(ProtocolVersion::V14_1, &ops).unwrap());
        assert_eq!(
            xml,
            "<Settings xmlns=\"Settings:\">
  <Oof>
    <Set>
      <OofState>2</OofState>
      <StartTime>2026-12-20T00:00:00.000Z</StartTime>
      <EndTime>2027-01-05T00:00:00.000Z</EndTime>
      <OofMessage>
        <AppliesToInternal/>
        <Enabled>1</Enabled>
        <ReplyMessage>Back in January.</ReplyMessage>
        <BodyType>Text</BodyType>
      </OofMessage>
      <OofMessage>
        <AppliesToExternalUnknown/>
        <Enabled>0</Enabled>
      </OofMessage>
    </Set>
  </Oof>
  <DeviceInformation>
    <Set>
      <OS>Linux</OS>
    </Set>
  </DeviceInformation>
  <UserInformation>
    <Get/>
  </UserInformation>
</Settings>"
        );
        let xml = body_xml(
            &request(
                ProtocolVersion::V12_1,
                &[Operation::OofGet(OofBodyType::Html)],
            )
            .unwrap(),
        );
        assert_eq!(
            xml,
            "<Settings xmlns=\"Settings:\">
  <Oof>
    <Get>
      <BodyType>HTML</BodyType>
    </Get>
  </Oof>
</Settings>"
        );
    }

    #[test]
    fn bad_operation_lists_are_refused() {
        assert!(request(ProtocolVersion::V14_1, &[]).is_err());
        let twice = [
            Operation::OofGet(OofBodyType::Text),
            Operation::OofSet(OofSettings::default()),
        ];
        let err = request(ProtocolVersion::V14_1, &twice).unwrap_err();
        assert!(err.to_string().contains("only one"), "{err}");
    }

    #[test]
    fn reads_oof_get_answer() {
        let r = read(
            "<Settings xmlns=\"Settings:\">
  <Status>1</Status>
  <Oof>
    <Status>1</Status>
    <Get>
      <OofState>2</OofState>
      <StartTime>2026-12-20T00:00:00.000Z</StartTime>
      <EndTime>2027-01-05T00:00:00.000Z</EndTime>
      <OofMessage>
        <AppliesToInternal/>
        <Enabled>1</Enabled>
        <ReplyMessage>Away</ReplyMessage>
        <BodyType>Text</BodyType>
      </OofMessage>
      <OofMessage>
        <AppliesToExternalKnown/>
        <Enabled>0</Enabled>
      </OofMessage>
      <OofMessage>
        <Enabled>1</Enabled>
      </OofMessage>
    </Get>
  </Oof>
</Settings>",
        )
        .unwrap();
        assert_eq!(r.status, SettingsStatus::Success);
        let oof = r.oof.unwrap();
        assert_eq!(oof.status, SettingsStatus::Success);
        let s = oof.settings.unwrap();
        assert_eq!(s.state, Some(OofState::TimeBased));
        assert_eq!(s.start_time.as_deref(), Some("2026-12-20T00:00:00.000Z"));
        assert_eq!(s.end_time.as_deref(), Some("2027-01-05T00:00:00.000Z"));
        assert_eq!(
            s.messages,
            vec![
                OofMessage {
                    audience: Audience::Internal,
                    enabled: Some(true),
                    reply_message: Some("Away".into()),
                    body_type: Some("Text".into()),
                },
                OofMessage {
                    audience: Audience::ExternalKnown,
                    enabled: Some(false),
                    reply_message: None,
                    body_type: None,
                },
            ]
        );
        assert_eq!(r.device_information, None);
        assert_eq!(r.user_information, None);
    }

    #[test]
    fn reads_device_information_and_oof_set_statuses() {
        let r = read(
            "<Settings xmlns=\"Settings:\">
  <Status>1</Status>
  <Oof>
    <Status>7</Status>
  </Oof>
  <DeviceInformation>
    <Status>1</Status>
  </DeviceInformation>
  <RightsManagementInformation>
    <Status>1</Status>
  </RightsManagementInformation>
</Settings>",
        )
        .unwrap();
        let oof = r.oof.unwrap();
        assert_eq!(oof.status, SettingsStatus::DeniedByPolicy);
        assert_eq!(oof.status.action(), Action::Blocked);
        assert_eq!(oof.settings, None);
        assert_eq!(r.device_information, Some(SettingsStatus::Success));
        // A part without a Status takes the overall one.
        let r = read(
            "<Settings xmlns=\"Settings:\">
  <Status>4</Status>
  <DeviceInformation/>
</Settings>",
        )
        .unwrap();
        assert_eq!(
            r.device_information,
            Some(SettingsStatus::ServerUnavailable)
        );
        assert_eq!(r.action(), Action::RetryLater);
    }

    #[test]
    fn reads_user_information_old_and_new_shapes() {
        // 12.1 / 14.0: addresses directly under Get.
        let r = read(
            "<Settings xmlns=\"Settings:\">
  <Status>1</Status>
  <UserInformation>
    <Status>1</Status>
    <Get>
      <EmailAddresses>
        <SMTPAddress>ann@example.com</SMTPAddress>
        <SMTPAddress>a.smith@example.com</SMTPAddress>
      </EmailAddresses>
    </Get>
  </UserInformation>
</Settings>",
        )
        .unwrap();
        let info = r.user_information.unwrap().info.unwrap();
        assert_eq!(
            info.email_addresses.smtp_addresses,
            vec!["ann@example.com", "a.smith@example.com"]
        );
        assert!(info.accounts.is_empty());

        // 14.1+: accounts.
        let r = read(
            "<Settings xmlns=\"Settings:\">
  <Status>1</Status>
  <UserInformation>
    <Status>1</Status>
    <Get>
      <Accounts>
        <Account>
          <UserDisplayName>Ann Smith</UserDisplayName>
          <EmailAddresses>
            <SMTPAddress>ann@example.com</SMTPAddress>
            <PrimarySmtpAddress>ann@example.com</PrimarySmtpAddress>
          </EmailAddresses>
        </Account>
        <Account>
          <AccountId>42</AccountId>
          <AccountName>Sales</AccountName>
          <UserDisplayName>Sales team</UserDisplayName>
          <SendDisabled>1</SendDisabled>
          <EmailAddresses>
            <SMTPAddress>sales@example.com</SMTPAddress>
          </EmailAddresses>
        </Account>
      </Accounts>
    </Get>
  </UserInformation>
</Settings>",
        )
        .unwrap();
        let info = r.user_information.unwrap().info.unwrap();
        assert_eq!(info.accounts.len(), 2);
        assert_eq!(
            info.accounts[0],
            Account {
                account_id: None,
                account_name: None,
                user_display_name: Some("Ann Smith".into()),
                send_disabled: None,
                email_addresses: EmailAddresses {
                    primary_smtp_address: Some("ann@example.com".into()),
                    smtp_addresses: vec!["ann@example.com".into()],
                },
            }
        );
        assert_eq!(info.accounts[1].account_id.as_deref(), Some("42"));
        assert_eq!(info.accounts[1].account_name.as_deref(), Some("Sales"));
        assert_eq!(info.accounts[1].send_disabled, Some(true));
    }

    #[test]
    fn status_codes_map() {
        let expected = [
            (1, SettingsStatus::Success, Action::Proceed),
            (2, SettingsStatus::ProtocolError, Action::FixRequest),
            (3, SettingsStatus::AccessDenied, Action::Blocked),
            (4, SettingsStatus::ServerUnavailable, Action::RetryLater),
            (5, SettingsStatus::InvalidArguments, Action::FixRequest),
            (6, SettingsStatus::ConflictingArguments, Action::FixRequest),
            (7, SettingsStatus::DeniedByPolicy, Action::Blocked),
        ];
        for (code, status, action) in expected {
            assert_eq!(SettingsStatus::from_code(code), status);
            assert_eq!(status.code(), code);
            assert_eq!(status.action(), action);
        }
        let s = SettingsStatus::from_code(142);
        assert_eq!(s.common(), CommonStatus::from_code(142));
        assert_eq!(s.action(), Action::Reprovision);
        assert_eq!(s.code(), 142);
        assert_eq!(SettingsStatus::from_code(9), SettingsStatus::Unknown(9));
        assert_eq!(SettingsStatus::from_code(9).code(), 9);
        let r =
            read("<Settings xmlns=\"Settings:\">\n  <Status>142</Status>\n</Settings>").unwrap();
        assert_eq!(r.common_status(), CommonStatus::from_code(142));
        assert!(r.status.to_string().contains("142"));
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert!(read_response(&mut parser(&[])).is_err());
        assert!(read("<Settings xmlns=\"Settings:\">\n  <Oof/>\n</Settings>").is_err());
        assert!(
            read("<Settings xmlns=\"Settings:\">\n  <Status>1</Status>\n  <UserInformation>\n    <Get>\n      <Accounts>\n        <Account>\n          <SendDisabled>yes</SendDisabled>\n        </Account>\n      </Accounts>\n    </Get>\n  </UserInformation>\n</Settings>")
                .unwrap_err()
                .to_string()
                .contains("SendDisabled")
        );
        let bytes = wbxml_from_xml(
            "<Settings xmlns=\"Settings:\">\n  <Status>1</Status>\n  <UserInformation>\n    <Get>\n      <EmailAddresses>\n        <SMTPAddress>a@example.com</SMTPAddress>\n        <SMTPAddress>b@example.com</SMTPAddress>\n      </EmailAddresses>\n    </Get>\n  </UserInformation>\n</Settings>",
        );
        for cut in 1..bytes.len() {
            assert!(
                read_response(&mut parser(&bytes[..cut])).is_err(),
                "cut {cut}"
            );
        }
        let limits = crate::eas::Limits {
            max_entries: 1,
            ..Default::default()
        };
        let mut p = Parser::with_limits(&bytes[..], limits);
        assert!(matches!(read_response(&mut p), Err(Error::Limit { .. })));
    }
}
