//! The Provision command, client side (MS-ASPROV): fetch the security policy, acknowledge it,
//! and acknowledge remote wipe directives.
//!
//! Provisioning runs in two phases. Phase 1 asks for the policy (on 14.1 and later together
//! with the device's [`DeviceInformation`]); the server answers with the policy document and
//! a temporary key. The device applies the policy and, in phase 2, acknowledges it with the
//! temporary key and an honest [`AckStatus`]; the server answers with the final key, which
//! goes on every later request. At any time the server may instead order a remote wipe,
//! which the device acknowledges before it wipes.
//!
//! [`Provisioning`] walks these steps without doing any I/O: it hands out the next
//! [`Request`] and turns each response into the next thing the caller has to do ([`Next`]).
//!
//! Protocol 2.5 (XML policy documents) is not supported; everything here is 12.1 and later.

use embedded_io::Read;

use super::command::{Command, Request, write_wbxml};
use super::error::{Error, Result};
use super::parse::Parser;
use super::policy::Policy;
use super::settings::{self, DeviceInformation, SettingsStatus};
use super::status::{Action, CommonStatus, HasStatus, command_status};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

pub(crate) const PROVISION: Tag = Tag::named(cp::PROVISION, "Provision");
pub(crate) const POLICIES: Tag = Tag::named(cp::PROVISION, "Policies");
pub(crate) const POLICY: Tag = Tag::named(cp::PROVISION, "Policy");
pub(crate) const POLICY_TYPE_TAG: Tag = Tag::named(cp::PROVISION, "PolicyType");
pub(crate) const POLICY_KEY: Tag = Tag::named(cp::PROVISION, "PolicyKey");
pub(crate) const DATA: Tag = Tag::named(cp::PROVISION, "Data");
pub(crate) const STATUS: Tag = Tag::named(cp::PROVISION, "Status");
pub(crate) const REMOTE_WIPE: Tag = Tag::named(cp::PROVISION, "RemoteWipe");
pub(crate) const ACCOUNT_ONLY_REMOTE_WIPE: Tag = Tag::named(cp::PROVISION, "AccountOnlyRemoteWipe");
pub(crate) const EAS_PROVISION_DOC: Tag = Tag::named(cp::PROVISION, "EASProvisionDoc");

/// The policy type of the WBXML policy document (12.0 and later).
pub const POLICY_TYPE: &str = "MS-EAS-Provisioning-WBXML";

command_status! {
    /// The Status of the Provision element (MS-ASPROV 2.2.2.54.2, 3.1.5.2). The common codes
    /// that matter here: 139 (the device cannot fully apply the policy and the server
    /// requires it), 141 (the device is not provisionable), 145 (externally managed devices
    /// are not allowed).
    pub enum ProvisionStatus {
        1 => Success, Proceed, "success";
        2 => ProtocolError, FixRequest, "the server found the Provision request malformed";
        3 => ServerError, RetryLater, "the server failed; retry later";
    }
}

command_status! {
    /// The Status of a Policy in a Provision response (MS-ASPROV 2.2.2.54.1).
    pub enum PolicyStatus {
        1 => Success, Proceed, "success";
        /// No policy applies to this client (SOGo always answers this way).
        2 => NoPolicy, Proceed, "there is no policy for this client";
        3 => UnknownPolicyType, FixRequest, "the server does not know the policy type";
        4 => CorruptPolicy, Blocked, "the policy data on the server is corrupt: ask the server's administrator";
        5 => PolicyKeyMismatch, Reprovision, "the acknowledged policy key is not the current one: provision again";
    }
}

/// How far the device applied the policy, reported in the phase 2 acknowledgement
/// (MS-ASPROV 2.2.2.54.1, request table). Report only what is true: the server may
/// let a partially compliant device in only when it is configured to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckStatus {
    /// 1: every policy setting is enforced.
    Applied,
    /// 2: partial success (the spec: at least the device password (PIN) is enforced).
    PartiallyApplied,
    /// 3: the policy was not applied at all.
    NotApplied,
    /// 4: the device claims to be provisioned by a third party (externally managed).
    ExternallyManaged,
}

impl AckStatus {
    pub const fn code(self) -> u32 {
        match self {
            AckStatus::Applied => 1,
            AckStatus::PartiallyApplied => 2,
            AckStatus::NotApplied => 3,
            AckStatus::ExternallyManaged => 4,
        }
    }
}

/// The result of a remote wipe, reported in its acknowledgement (MS-ASPROV 2.2.2.54.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WipeStatus {
    /// 1: the wipe succeeded (or is about to run: the ack goes out before the wipe).
    Succeeded,
    /// 2: the wipe failed.
    Failed,
}

impl WipeStatus {
    pub const fn code(self) -> u32 {
        match self {
            WipeStatus::Succeeded => 1,
            WipeStatus::Failed => 2,
        }
    }
}

/// A wipe the server ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WipeDirective {
    /// RemoteWipe: the whole device (or at least everything from this server).
    Full,
    /// AccountOnlyRemoteWipe (16.1): this account's data and credentials only.
    AccountOnly,
}

/// What the server said about the requested policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOutcome {
    /// Status 1, with the key: temporary after phase 1, final after phase 2. After phase 1
    /// the policy document comes along (an empty document is an empty [`Policy`]).
    Granted {
        key: String,
        policy: Option<Box<Policy>>,
    },
    /// Status 2: no policy applies to this client; there is nothing to acknowledge.
    NoPolicy,
    /// Any other status.
    Refused(PolicyStatus),
}

/// A Provision response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionResponse {
    pub status: ProvisionStatus,
    /// The status of the DeviceInformation sent with phase 1 (14.1 and later).
    pub device_information: Option<SettingsStatus>,
    /// The Policy of type [`POLICY_TYPE`], if the response has one.
    pub policy: Option<PolicyOutcome>,
    /// A wipe directive; a full wipe wins when the server sends both kinds.
    pub remote_wipe: Option<WipeDirective>,
}

impl HasStatus for ProvisionResponse {
    fn common_status(&self) -> Option<CommonStatus> {
        self.status.common()
    }
}

/// Phase 1: ask for the policy. On 14.1 and later `device` is sent along (the server may
/// refuse with 165 without it); before 14.1 it is never sent here: send it with
/// [`settings::request`] instead.
pub fn policy_request(
    version: ProtocolVersion,
    device: Option<&DeviceInformation>,
) -> Result<Request> {
    check_version(version)?;
    let device = device.filter(|_| version >= ProtocolVersion::V14_1);
    let body = write_wbxml(version, |w| {
        w.start(PROVISION)?;
        if let Some(device) = device {
            device.write(w, version)?;
        }
        w.start(POLICIES)?;
        w.start(POLICY)?;
        w.text_element(POLICY_TYPE_TAG, POLICY_TYPE)?;
        w.end()?;
        w.end()?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::Provision, body))
}

/// Phase 2: acknowledge the policy received with `temporary_key`.
pub fn acknowledge_request(
    version: ProtocolVersion,
    temporary_key: &str,
    status: AckStatus,
) -> Result<Request> {
    check_version(version)?;
    let body = write_wbxml(version, |w| {
        w.start(PROVISION)?;
        w.start(POLICIES)?;
        w.start(POLICY)?;
        w.text_element(POLICY_TYPE_TAG, POLICY_TYPE)?;
        w.text_element(POLICY_KEY, temporary_key)?;
        w.text_element(STATUS, &status.code().to_string())?;
        w.end()?;
        w.end()?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::Provision, body))
}

/// Acknowledges a wipe directive. An account-only wipe exists only in 16.1.
pub fn wipe_ack_request(
    version: ProtocolVersion,
    directive: WipeDirective,
    status: WipeStatus,
) -> Result<Request> {
    check_version(version)?;
    let tag = match directive {
        WipeDirective::Full => REMOTE_WIPE,
        WipeDirective::AccountOnly => ACCOUNT_ONLY_REMOTE_WIPE,
    };
    if !tag.in_version(version) {
        return Err(Error::Write(format!(
            "an account-only remote wipe cannot be acknowledged in protocol {version} (16.1 only)"
        )));
    }
    let body = write_wbxml(version, |w| {
        w.start(PROVISION)?;
        w.start(tag)?;
        w.text_element(STATUS, &status.code().to_string())?;
        w.end()?;
        w.end()
    })?;
    Ok(Request::wbxml(Command::Provision, body))
}

fn check_version(version: ProtocolVersion) -> Result<()> {
    if version < ProtocolVersion::V12_1 {
        return Err(Error::Write(format!(
            "provisioning needs protocol 12.1 or later, the server offered {version}"
        )));
    }
    Ok(())
}

/// Reads a Provision response (to any of the requests above).
pub fn read_response<R: Read>(p: &mut Parser<R>) -> Result<ProvisionResponse> {
    let Some(_root) = p.root(PROVISION)? else {
        return Err(p.error("the Provision response is empty"));
    };
    let mut status = None;
    let mut device_information = None;
    let mut policy = None;
    let mut remote_wipe = None;
    while let Some(child) = p.next_child()? {
        match child.tag {
            STATUS => status = Some(ProvisionStatus::read(p, child)?),
            settings::DEVICE_INFORMATION => {
                device_information = settings::read_part_status(p)?;
            }
            POLICIES => {
                let found = read_policies(p)?;
                policy = policy.or(found);
            }
            REMOTE_WIPE => {
                p.skip(child)?;
                remote_wipe = Some(WipeDirective::Full);
            }
            ACCOUNT_ONLY_REMOTE_WIPE => {
                p.skip(child)?;
                remote_wipe = remote_wipe.or(Some(WipeDirective::AccountOnly));
            }
            _ => p.skip(child)?,
        }
    }
    p.finish()?;
    let Some(status) = status else {
        return Err(p.error("the Provision response has no Status"));
    };
    Ok(ProvisionResponse {
        status,
        device_information,
        policy,
        remote_wipe,
    })
}

/// The outcome of the first Policy of our type (others are read and dropped).
fn read_policies<R: Read>(p: &mut Parser<R>) -> Result<Option<PolicyOutcome>> {
    let mut outcome = None;
    let mut seen = 0usize;
    while let Some(child) = p.next_child()? {
        if child.tag != POLICY {
            p.skip(child)?;
            continue;
        }
        p.check_entries(seen, "Policy elements", child.offset)?;
        seen += 1;
        let (policy_type, this) = read_policy(p, child.offset)?;
        let ours = policy_type.as_deref().is_none_or(|t| t == POLICY_TYPE);
        if ours && outcome.is_none() {
            outcome = Some(this);
        }
    }
    Ok(outcome)
}

fn read_policy<R: Read>(p: &mut Parser<R>, offset: u64) -> Result<(Option<String>, PolicyOutcome)> {
    let mut policy_type = None;
    let mut status = None;
    let mut key = None;
    let mut document = None;
    while let Some(child) = p.next_child()? {
        match child.tag {
            POLICY_TYPE_TAG => policy_type = Some(p.text(child)?),
            STATUS => status = Some(PolicyStatus::read(p, child)?),
            POLICY_KEY => key = Some(p.text(child)?),
            DATA => {
                while let Some(doc) = p.next_child()? {
                    if doc.tag == EAS_PROVISION_DOC && document.is_none() {
                        document = Some(Box::new(Policy::read(p, doc)?));
                    } else {
                        p.skip(doc)?;
                    }
                }
            }
            _ => p.skip(child)?,
        }
    }
    let protocol = |message: &str| Error::Protocol {
        offset,
        message: message.to_string(),
    };
    let outcome = match status {
        None => return Err(protocol("the Policy has no Status")),
        Some(PolicyStatus::Success) => {
            let key = key
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .ok_or_else(|| protocol("the server granted a policy without a PolicyKey"))?;
            PolicyOutcome::Granted {
                key,
                policy: document,
            }
        }
        Some(PolicyStatus::NoPolicy) => PolicyOutcome::NoPolicy,
        Some(other) => PolicyOutcome::Refused(other),
    };
    Ok((policy_type, outcome))
}

/// What the caller has to do next in a [`Provisioning`] run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Enforce this policy (through the device hooks), then call
    /// [`Provisioning::acknowledge`] with how far that succeeded.
    Apply(Box<Policy>),
    /// The server ordered a wipe: persist the intent, then call
    /// [`Provisioning::acknowledge_wipe`].
    Wipe(WipeDirective),
    /// Done: send this policy key with every later request.
    Provisioned { policy_key: String },
    /// Done: no policy applies to this device; later requests carry no key (or "0").
    NoPolicy,
    /// The wipe acknowledgement went through (or the server's answer does not matter):
    /// wipe now.
    WipeAcknowledged(WipeDirective),
    /// Provisioning stopped: the server's reason and what to do about it.
    Failed { reason: String, action: Action },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Start,
    AwaitingPolicy,
    Applying { temporary_key: String },
    AwaitingAck,
    Wiping(WipeDirective),
    AwaitingWipeAck(WipeDirective),
    Finished,
}

/// One provisioning run, sans-IO: it says which request to send next and interprets each
/// response. The caller sends the requests and makes the decisions (apply, wipe).
///
/// ```text
/// start() → send → on_response → Apply(policy)  → acknowledge(status) → send → on_response → Provisioned
///                              → NoPolicy
///                              → Wipe(kind)     → acknowledge_wipe(status) → send → on_response → WipeAcknowledged
/// ```
#[derive(Debug, Clone)]
pub struct Provisioning {
    version: ProtocolVersion,
    device: Option<DeviceInformation>,
    stage: Stage,
}

impl Provisioning {
    /// A run for protocol `version`; `device` goes with phase 1 on 14.1 and later.
    pub fn new(version: ProtocolVersion, device: Option<DeviceInformation>) -> Provisioning {
        Provisioning {
            version,
            device,
            stage: Stage::Start,
        }
    }

    /// The phase 1 request. May be called again to restart the run (after a failure).
    pub fn start(&mut self) -> Result<Request> {
        let request = policy_request(self.version, self.device.as_ref())?;
        self.stage = Stage::AwaitingPolicy;
        Ok(request)
    }

    /// Interprets the response to the request sent last.
    pub fn on_response(&mut self, response: ProvisionResponse) -> Result<Next> {
        let stage = core::mem::replace(&mut self.stage, Stage::Finished);
        if let Stage::AwaitingWipeAck(directive) = stage {
            // The client does not wait for or rely on the server's answer (MS-ASPROV
            // 3.1.5.1.2.2): whatever it says, the wipe goes ahead.
            return Ok(Next::WipeAcknowledged(directive));
        }
        if !matches!(stage, Stage::AwaitingPolicy | Stage::AwaitingAck) {
            self.stage = stage;
            return Err(misuse(
                "on_response() called with no Provision request outstanding",
            ));
        }
        if let Some(directive) = response.remote_wipe {
            self.stage = Stage::Wiping(directive);
            return Ok(Next::Wipe(directive));
        }
        if response.status != ProvisionStatus::Success {
            return Ok(failed(
                response.status.to_string(),
                response.status.action(),
            ));
        }
        let phase1 = stage == Stage::AwaitingPolicy;
        Ok(match response.policy {
            None => failed(
                "the server's Provision response has no policy".into(),
                Action::FixRequest,
            ),
            Some(PolicyOutcome::NoPolicy) => Next::NoPolicy,
            Some(PolicyOutcome::Refused(status)) => failed(status.to_string(), status.action()),
            Some(PolicyOutcome::Granted { key, policy }) if phase1 => {
                self.stage = Stage::Applying { temporary_key: key };
                Next::Apply(policy.unwrap_or_default())
            }
            Some(PolicyOutcome::Granted { key, .. }) => Next::Provisioned { policy_key: key },
        })
    }

    /// The phase 2 request, after [`Next::Apply`]: `status` must say honestly how far the
    /// policy is enforced.
    pub fn acknowledge(&mut self, status: AckStatus) -> Result<Request> {
        let Stage::Applying { temporary_key } = &self.stage else {
            return Err(misuse("acknowledge() called before a policy was received"));
        };
        let request = acknowledge_request(self.version, temporary_key, status)?;
        self.stage = Stage::AwaitingAck;
        Ok(request)
    }

    /// The wipe acknowledgement, after [`Next::Wipe`] and after the wipe intent is stored.
    pub fn acknowledge_wipe(&mut self, status: WipeStatus) -> Result<Request> {
        let Stage::Wiping(directive) = self.stage else {
            return Err(misuse("acknowledge_wipe() called without a wipe directive"));
        };
        let request = wipe_ack_request(self.version, directive, status)?;
        self.stage = Stage::AwaitingWipeAck(directive);
        Ok(request)
    }
}

fn failed(reason: String, action: Action) -> Next {
    Next::Failed { reason, action }
}

fn misuse(message: &str) -> Error {
    Error::Write(format!("provisioning steps out of order: {message}"))
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::policy::tests::{FULL_DOC, full_policy};
    use crate::eas::testutil::{parser, request_xml, wbxml_from_xml};

    const SOGO_NO_POLICY: &str = "<Provision xmlns=\"Provision:\"><Status>1</Status><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType><Status>2</Status></Policy></Policies></Provision>";

    fn body_xml(request: &Request) -> String {
        assert_eq!(request.command, Command::Provision);
        request_xml(request)
    }

    fn read(xml: &str) -> Result<ProvisionResponse> {
        let bytes = wbxml_from_xml(xml);
        read_response(&mut parser(&bytes))
    }

    fn device() -> DeviceInformation {
        DeviceInformation {
            model: Some("Gateway 7".into()),
            imei: Some("356938035643809".into()),
            friendly_name: Some("Line 3".into()),
            os: Some("Linux 6.6".into()),
            os_language: Some("English".into()),
            phone_number: Some("+15551234567".into()),
            user_agent: Some("easync/0.1".into()),
            enable_outbound_sms: Some(false),
            mobile_operator: Some("Contoso Mobile".into()),
        }
    }

    const PLAIN_PHASE1: &str = "<Provision xmlns=\"Provision:\">
  <Policies>
    <Policy>
      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>
    </Policy>
  </Policies>
</Provision>";

    #[test]
    fn phase1_request_per_version() {
        let d = device();
        // 12.1 and 14.0: DeviceInformation goes through Settings, never here.
        for v in [ProtocolVersion::V12_1, ProtocolVersion::V14_0] {
            assert_eq!(
                body_xml(&policy_request(v, Some(&d)).unwrap()),
                PLAIN_PHASE1
            );
        }
        let with_device = "<Provision xmlns=\"Provision:\">
  <settings:DeviceInformation xmlns:settings=\"Settings:\">
    <settings:Set>
      <settings:Model>Gateway 7</settings:Model>
      <settings:IMEI>356938035643809</settings:IMEI>
      <settings:FriendlyName>Line 3</settings:FriendlyName>
      <settings:OS>Linux 6.6</settings:OS>
      <settings:OSLanguage>English</settings:OSLanguage>
      <settings:PhoneNumber>+15551234567</settings:PhoneNumber>
      <settings:UserAgent>easync/0.1</settings:UserAgent>
      <settings:EnableOutboundSMS>0</settings:EnableOutboundSMS>
      <settings:MobileOperator>Contoso Mobile</settings:MobileOperator>
    </settings:Set>
  </settings:DeviceInformation>
  <Policies>
    <Policy>
      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>
    </Policy>
  </Policies>
</Provision>";
        for v in [
            ProtocolVersion::V14_1,
            ProtocolVersion::V16_0,
            ProtocolVersion::V16_1,
        ] {
            assert_eq!(body_xml(&policy_request(v, Some(&d)).unwrap()), with_device);
        }
        assert_eq!(
            body_xml(&policy_request(ProtocolVersion::V16_1, None).unwrap()),
            PLAIN_PHASE1
        );
        assert!(policy_request(ProtocolVersion::V2_5, None).is_err());
        assert!(policy_request(ProtocolVersion::V12_0, None).is_err());
    }

    #[test]
    fn acknowledgement_requests() {
        for (status, code) in [
            (AckStatus::Applied, "1"),
            (AckStatus::PartiallyApplied, "2"),
            (AckStatus::NotApplied, "3"),
            (AckStatus::ExternallyManaged, "4"),
        ] {
            let xml = body_xml(
                &acknowledge_request(ProtocolVersion::V14_1, "3942919513", status).unwrap(),
            );
            assert_eq!(
                xml,
                format!(
                    "<Provision xmlns=\"Provision:\">
  <Policies>
    <Policy>
      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>
      <PolicyKey>3942919513</PolicyKey>
      <Status>{code}</Status>
    </Policy>
  </Policies>
</Provision>"
                )
            );
        }
    }

    #[test]
    fn wipe_acknowledgement_requests() {
        let xml = body_xml(
            &wipe_ack_request(
                ProtocolVersion::V12_1,
                WipeDirective::Full,
                WipeStatus::Succeeded,
            )
            .unwrap(),
        );
        assert_eq!(
            xml,
            "<Provision xmlns=\"Provision:\">
  <RemoteWipe>
    <Status>1</Status>
  </RemoteWipe>
</Provision>"
        );
        let xml = body_xml(
            &wipe_ack_request(
                ProtocolVersion::V16_1,
                WipeDirective::AccountOnly,
                WipeStatus::Failed,
            )
            .unwrap(),
        );
        assert_eq!(
            xml,
            "<Provision xmlns=\"Provision:\">
  <AccountOnlyRemoteWipe>
    <Status>2</Status>
  </AccountOnlyRemoteWipe>
</Provision>"
        );
        let err = wipe_ack_request(
            ProtocolVersion::V16_0,
            WipeDirective::AccountOnly,
            WipeStatus::Succeeded,
        )
        .unwrap_err();
        assert!(err.to_string().contains("16.1"), "{err}");
    }

    fn phase1_response(doc: &str) -> String {
        format!(
            "<Provision xmlns=\"Provision:\" xmlns:settings=\"Settings:\">
  <Status>1</Status>
  <settings:DeviceInformation>
    <settings:Status>1</settings:Status>
  </settings:DeviceInformation>
  <Policies>
    <Policy>
      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>
      <Status>1</Status>
      <PolicyKey>1307199584</PolicyKey>
      <Data>
{doc}
      </Data>
    </Policy>
  </Policies>
</Provision>"
        )
    }

    #[test]
    fn reads_full_policy_document() {
        let r = read(&phase1_response(FULL_DOC)).unwrap();
        assert_eq!(r.status, ProvisionStatus::Success);
        assert_eq!(r.device_information, Some(SettingsStatus::Success));
        assert_eq!(r.remote_wipe, None);
        assert_eq!(
            r.policy,
            Some(PolicyOutcome::Granted {
                key: "1307199584".into(),
                policy: Some(Box::new(full_policy())),
            })
        );
        assert_eq!(r.common_status(), None);
    }

    #[test]
    fn reads_empty_policy_document() {
        let r = read(&phase1_response("<EASProvisionDoc/>")).unwrap();
        assert_eq!(
            r.policy,
            Some(PolicyOutcome::Granted {
                key: "1307199584".into(),
                policy: Some(Box::default()),
            })
        );
    }

    #[test]
    fn policy_value_that_is_not_a_number_is_an_error() {
        let doc = "<EASProvisionDoc>\n<MaxInactivityTimeDeviceLock>soon</MaxInactivityTimeDeviceLock>\n</EASProvisionDoc>";
        let err = read(&phase1_response(doc)).unwrap_err().to_string();
        assert!(err.contains("MaxInactivityTimeDeviceLock"), "{err}");
        assert!(err.contains("\"soon\""), "{err}");
    }

    #[test]
    fn sogo_no_policy_is_a_distinct_outcome() {
        let r = read(SOGO_NO_POLICY).unwrap();
        assert_eq!(r.status, ProvisionStatus::Success);
        assert_eq!(r.policy, Some(PolicyOutcome::NoPolicy));
        let mut run = Provisioning::new(ProtocolVersion::V14_1, None);
        run.start().unwrap();
        assert_eq!(run.on_response(r).unwrap(), Next::NoPolicy);
        assert!(run.acknowledge(AckStatus::Applied).is_err());
    }

    #[test]
    fn reads_phase2_answer_and_refusals() {
        let r = read(
            "<Provision xmlns=\"Provision:\">
  <Status>1</Status>
  <Policies>
    <Policy>
      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>
      <Status>1</Status>
      <PolicyKey>3942919513</PolicyKey>
    </Policy>
  </Policies>
</Provision>",
        )
        .unwrap();
        assert_eq!(
            r.policy,
            Some(PolicyOutcome::Granted {
                key: "3942919513".into(),
                policy: None
            })
        );
        let r = read(
            "<Provision xmlns=\"Provision:\">
  <Status>1</Status>
  <Policies>
    <Policy>
      <PolicyType>MS-WAP-Provisioning-XML</PolicyType>
      <Status>3</Status>
    </Policy>
    <Policy>
      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>
      <Status>5</Status>
    </Policy>
  </Policies>
</Provision>",
        )
        .unwrap();
        assert_eq!(
            r.policy,
            Some(PolicyOutcome::Refused(PolicyStatus::PolicyKeyMismatch))
        );
        // Status 1 without a key breaks the protocol.
        let err = read(
            "<Provision xmlns=\"Provision:\">
  <Status>1</Status>
  <Policies>
    <Policy>
      <Status>1</Status>
    </Policy>
  </Policies>
</Provision>",
        )
        .unwrap_err();
        assert!(err.to_string().contains("PolicyKey"), "{err}");
    }

    #[test]
    fn reads_wipe_directives() {
        let r = read(
            "<Provision xmlns=\"Provision:\">\n  <Status>1</Status>\n  <RemoteWipe/>\n</Provision>",
        )
        .unwrap();
        assert_eq!(r.remote_wipe, Some(WipeDirective::Full));
        assert_eq!(r.policy, None);
        let r = read("<Provision xmlns=\"Provision:\">\n  <Status>1</Status>\n  <AccountOnlyRemoteWipe/>\n</Provision>")
            .unwrap();
        assert_eq!(r.remote_wipe, Some(WipeDirective::AccountOnly));
        let r = read("<Provision xmlns=\"Provision:\">\n  <Status>1</Status>\n  <AccountOnlyRemoteWipe/>\n  <RemoteWipe/>\n</Provision>")
            .unwrap();
        assert_eq!(r.remote_wipe, Some(WipeDirective::Full));
    }

    #[test]
    fn status_codes_map() {
        let provision = [
            (1, ProvisionStatus::Success, Action::Proceed),
            (2, ProvisionStatus::ProtocolError, Action::FixRequest),
            (3, ProvisionStatus::ServerError, Action::RetryLater),
        ];
        for (code, status, action) in provision {
            assert_eq!(ProvisionStatus::from_code(code), status);
            assert_eq!(status.code(), code);
            assert_eq!(status.action(), action);
        }
        for code in [139, 141, 145] {
            let s = ProvisionStatus::from_code(code);
            assert_eq!(s.common().map(CommonStatus::code), Some(code));
            assert_eq!(s.action(), Action::Blocked);
        }
        assert_eq!(
            ProvisionStatus::from_code(142).action(),
            Action::Reprovision
        );
        assert_eq!(ProvisionStatus::from_code(4), ProvisionStatus::Unknown(4));
        let policy = [
            (1, PolicyStatus::Success, Action::Proceed),
            (2, PolicyStatus::NoPolicy, Action::Proceed),
            (3, PolicyStatus::UnknownPolicyType, Action::FixRequest),
            (4, PolicyStatus::CorruptPolicy, Action::Blocked),
            (5, PolicyStatus::PolicyKeyMismatch, Action::Reprovision),
        ];
        for (code, status, action) in policy {
            assert_eq!(PolicyStatus::from_code(code), status);
            assert_eq!(status.code(), code);
            assert_eq!(status.action(), action);
        }
        assert_eq!(PolicyStatus::from_code(6).code(), 6);
        let r =
            read("<Provision xmlns=\"Provision:\">\n  <Status>139</Status>\n</Provision>").unwrap();
        assert_eq!(r.common_status(), CommonStatus::from_code(139));
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert!(read_response(&mut parser(&[])).is_err());
        assert!(read("<Provision xmlns=\"Provision:\">\n  <RemoteWipe/>\n</Provision>").is_err());
        assert!(
            read("<Provision xmlns=\"Provision:\">\n  <Status>x</Status>\n</Provision>").is_err()
        );
        let bytes = wbxml_from_xml(&phase1_response(FULL_DOC));
        for cut in 1..bytes.len() {
            assert!(
                read_response(&mut parser(&bytes[..cut])).is_err(),
                "cut {cut}"
            );
        }
        // Unknown elements are skipped.
        let r = read(
            "<Provision xmlns=\"Provision:\" xmlns:airsync=\"AirSync:\">
  <airsync:SyncKey>1</airsync:SyncKey>
  <Status>1</Status>
  <Policies>
    <Data/>
    <Policy>
      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>
      <Status>2</Status>
      <airsync:Class>Email</airsync:Class>
    </Policy>
  </Policies>
</Provision>",
        )
        .unwrap();
        assert_eq!(r.policy, Some(PolicyOutcome::NoPolicy));
    }

    fn response_of(xml: &str) -> ProvisionResponse {
        read(xml).unwrap()
    }

    #[test]
    fn provisioning_runs_both_phases() {
        let mut run = Provisioning::new(ProtocolVersion::V14_1, Some(device()));
        assert!(run.acknowledge(AckStatus::Applied).is_err());
        let first = run.start().unwrap();
        assert!(body_xml(&first).contains("<settings:Model>Gateway 7</settings:Model>"));
        let next = run
            .on_response(response_of(&phase1_response(FULL_DOC)))
            .unwrap();
        assert_eq!(next, Next::Apply(Box::new(full_policy())));
        let ack = run.acknowledge(AckStatus::PartiallyApplied).unwrap();
        let xml = body_xml(&ack);
        assert!(xml.contains("<PolicyKey>1307199584</PolicyKey>"), "{xml}");
        assert!(xml.contains("<Status>2</Status>"), "{xml}");
        let next = run
            .on_response(response_of(
                "<Provision xmlns=\"Provision:\">
  <Status>1</Status>
  <Policies>
    <Policy>
      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>
      <Status>1</Status>
      <PolicyKey>3942919513</PolicyKey>
    </Policy>
  </Policies>
</Provision>",
            ))
            .unwrap();
        assert_eq!(
            next,
            Next::Provisioned {
                policy_key: "3942919513".into()
            }
        );
        // Nothing is outstanding any more.
        assert!(run.on_response(response_of(SOGO_NO_POLICY)).is_err());
    }

    #[test]
    fn provisioning_reports_failures() {
        let mut run = Provisioning::new(ProtocolVersion::V16_1, None);
        run.start().unwrap();
        let next = run
            .on_response(response_of(
                "<Provision xmlns=\"Provision:\">\n  <Status>139</Status>\n</Provision>",
            ))
            .unwrap();
        assert!(
            matches!(&next, Next::Failed { action: Action::Blocked, reason } if reason.contains("139")),
            "{next:?}"
        );
        // Restart; the acknowledgement is refused for a stale key.
        run.start().unwrap();
        run.on_response(response_of(&phase1_response("<EASProvisionDoc/>")))
            .unwrap();
        run.acknowledge(AckStatus::Applied).unwrap();
        let next = run
            .on_response(response_of(
                "<Provision xmlns=\"Provision:\">
  <Status>1</Status>
  <Policies>
    <Policy>
      <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>
      <Status>5</Status>
    </Policy>
  </Policies>
</Provision>",
            ))
            .unwrap();
        assert!(
            matches!(
                next,
                Next::Failed {
                    action: Action::Reprovision,
                    ..
                }
            ),
            "{next:?}"
        );
    }

    #[test]
    fn provisioning_handles_wipe() {
        let mut run = Provisioning::new(ProtocolVersion::V16_1, None);
        run.start().unwrap();
        let next = run
            .on_response(response_of("<Provision xmlns=\"Provision:\">\n  <Status>1</Status>\n  <AccountOnlyRemoteWipe/>\n</Provision>"))
            .unwrap();
        assert_eq!(next, Next::Wipe(WipeDirective::AccountOnly));
        assert!(run.acknowledge(AckStatus::Applied).is_err());
        let ack = run.acknowledge_wipe(WipeStatus::Succeeded).unwrap();
        assert!(body_xml(&ack).contains("<AccountOnlyRemoteWipe>"));
        // The server's answer does not stop the wipe.
        let next = run
            .on_response(response_of(
                "<Provision xmlns=\"Provision:\">\n  <Status>3</Status>\n</Provision>",
            ))
            .unwrap();
        assert_eq!(next, Next::WipeAcknowledged(WipeDirective::AccountOnly));
    }
}
