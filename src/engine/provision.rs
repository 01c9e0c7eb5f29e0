//! Provisioning as the engine runs it: the `eas` flow driven over a transport session, with
//! the policy decision and the wipe handed to an [`Enforcer`] (the device layer in the
//! product, a fixed answer in tests).
//!
//! The transport calls [`EngineProvisioner`] whenever the server demands provisioning (449,
//! 142–144, 140); it stores the new policy key in the session, or returns
//! [`Error::RemoteWipe`] once a wipe directive is acknowledged so that the interrupted
//! command is not repeated.
//!
//! The part of a policy that limits what easync requests and keeps (ages, body and
//! attachment sizes, HTML) becomes the state's [`PolicyLimits`] through [`policy_limits`];
//! [`EngineProvisioner::limits`] tells the engine what the last provisioning decided, so
//! the cycle can put it into the state it holds in memory.

use crate::eas::policy::{AgeFilter, Policy, Truncation};
use crate::eas::provision::{
    self, AckStatus, Next, ProvisionResponse, Provisioning, WipeDirective, WipeStatus,
};
use crate::eas::settings::DeviceInformation;
use crate::eas::{Command, ProtocolVersion, Request};
use crate::store::state::PolicyLimits;
use crate::transport::{self, Error, Session, command_timeout};

/// What decides the acknowledgement: enforces a policy and prepares a wipe.
pub trait Enforcer {
    /// Enforce `policy` and say honestly how far that succeeded (1 only when every element
    /// that needs enforcing is applied).
    fn apply(&mut self, policy: &Policy) -> AckStatus;
    /// The server ordered a wipe: persist the intent durably, then say what to acknowledge
    /// (`Succeeded`: the wipe will be carried out; `Failed`: an earlier attempt failed).
    fn wipe_requested(&mut self, directive: WipeDirective) -> WipeStatus;
    /// Whether the last [`Enforcer::wipe_requested`] acknowledged an earlier attempt as
    /// failed and dropped it: provisioning then starts once more, so the server's
    /// repetition of the directive is honoured at once.
    fn wipe_withdrawn(&self) -> bool {
        false
    }
    /// What to add when the server refuses the acknowledged policy (e.g. 139: it requires
    /// full compliance), such as the elements not applied.
    fn refusal_detail(&self) -> Option<String> {
        None
    }
}

/// How the last provisioning round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A final policy key, now in the session.
    Key(String),
    /// The server has no policy for this device; requests carry no key.
    NoPolicy,
    /// A wipe directive was acknowledged with this status.
    Wiped(WipeDirective, WipeStatus),
}

/// The transport's [`transport::Provisioner`] for one account.
pub struct EngineProvisioner<'a, E: Enforcer + ?Sized> {
    enforcer: &'a mut E,
    device: DeviceInformation,
    /// Provisioning rounds run so far.
    pub rounds: u32,
    /// How the last round ended.
    pub outcome: Option<Outcome>,
    /// The policy of the last round, if the server sent one.
    pub policy: Option<Policy>,
}

impl<'a, E: Enforcer + ?Sized> EngineProvisioner<'a, E> {
    /// `device` goes with the first Provision request on 14.1 and later (Exchange Online
    /// answers 165 without it).
    pub fn new(enforcer: &'a mut E, device: DeviceInformation) -> Self {
        EngineProvisioner {
            enforcer,
            device,
            rounds: 0,
            outcome: None,
            policy: None,
        }
    }

    /// What the provisioning rounds run so far decided for the state's `policy_limits`:
    /// `None` when no round finished with a key or "no policy" (nothing to change),
    /// `Some(None)` when the server has no policy, `Some(Some(limits))` otherwise.
    pub fn limits(&self) -> Option<Option<PolicyLimits>> {
        match self.outcome {
            Some(Outcome::Key(_)) => Some(self.policy.as_ref().map(policy_limits)),
            Some(Outcome::NoPolicy) => Some(None),
            _ => None,
        }
    }

    /// What the provisioning rounds run so far decided for the failed-unlock limit (see
    /// [`unlock_limit`]), `None` when nothing changes, like [`EngineProvisioner::limits`].
    pub fn unlock_limit(&self) -> Option<Option<u32>> {
        match self.outcome {
            Some(Outcome::Key(_)) => Some(self.policy.as_ref().and_then(unlock_limit)),
            Some(Outcome::NoPolicy) => Some(None),
            _ => None,
        }
    }

    fn exchange(session: &mut Session, request: &Request) -> transport::Result<ProvisionResponse> {
        let version = session.state().version;
        let response = session.send(request, None, command_timeout(Command::Provision, None))?;
        response.read(version, provision::read_response)
    }
}

/// Bytes per unit of MaxEmailBodyTruncationSize and MaxEmailHTMLBodyTruncationSize.
/// MS-ASPROV (2.2.2.34/35) names no unit; Exchange administers and sends these limits in
/// kilobytes (Set-MobileDeviceMailboxPolicy), so they are read as KiB.
pub const TRUNCATION_UNIT: u64 = 1024;

/// The limits `policy` sets on what is requested and stored (MS-ASPROV 2.2.2): an absent
/// element, an age filter of 0 (all) and a truncation size of -1 (none) set no limit;
/// AttachmentsEnabled and AllowHTMLEmail default to allowed. MaxAttachmentSize is in bytes.
pub fn policy_limits(policy: &Policy) -> PolicyLimits {
    let age = |filter: Option<AgeFilter>| {
        filter
            .map(AgeFilter::code)
            .filter(|&code| code > 0)
            .and_then(|code| u8::try_from(code).ok())
    };
    let truncation = |t: Option<Truncation>| match t {
        None | Some(Truncation::None) => None,
        Some(Truncation::HeaderOnly) => Some(0),
        Some(Truncation::Bytes(n)) => Some(u64::from(n).saturating_mul(TRUNCATION_UNIT)),
    };
    PolicyLimits {
        max_email_age: age(policy.max_email_age_filter),
        max_calendar_age: age(policy.max_calendar_age_filter),
        max_email_body_bytes: truncation(policy.max_email_body_truncation_size),
        max_email_html_body_bytes: truncation(policy.max_email_html_body_truncation_size),
        max_attachment_bytes: policy.max_attachment_size.map(u64::from),
        attachments_enabled: policy.attachments_enabled.unwrap_or(true),
        allow_html_email: policy.allow_html_email.unwrap_or(true),
    }
}

/// The failed unlocks `policy` allows before the device wipes itself (MS-ASPROV 2.2.2.32
/// MaxDevicePasswordFailedAttempts, 4–16): none when the element is empty or absent, 0, or
/// when DevicePasswordEnabled is 0 (the element is then ignored). A value outside the
/// spec's range is obeyed as sent.
pub fn unlock_limit(policy: &Policy) -> Option<u32> {
    if policy.device_password_enabled == Some(false) {
        return None;
    }
    policy
        .max_device_password_failed_attempts
        .filter(|&n| n > 0)
}

impl<E: Enforcer + ?Sized> transport::Provisioner for EngineProvisioner<'_, E> {
    fn provision(&mut self, session: &mut Session) -> transport::Result<()> {
        self.rounds += 1;
        let version = session.state().version;
        let device = (version >= ProtocolVersion::V14_1).then(|| self.device.clone());
        let mut flow = Provisioning::new(version, device.clone());
        let mut request = flow.start()?;
        let mut acknowledged = false;
        // After acknowledging an earlier failed wipe (Status 2), provisioning starts once
        // more so the server can repeat its directive at once.
        let mut restart_after_failed_wipe = true;
        loop {
            let response = Self::exchange(session, &request)?;
            match flow.on_response(response)? {
                Next::Apply(policy) => {
                    let ack = self.enforcer.apply(&policy);
                    acknowledged = true;
                    self.policy = Some(*policy);
                    request = flow.acknowledge(ack)?;
                }
                Next::Provisioned { policy_key } => {
                    let key = policy_key.trim().parse::<u32>().map_err(|_| {
                        Error::Protocol(crate::eas::Error::Protocol {
                            offset: 0,
                            message: format!("the policy key {policy_key:?} is not a number"),
                        })
                    })?;
                    session.set_policy_key(Some(key));
                    self.outcome = Some(Outcome::Key(policy_key));
                    return Ok(());
                }
                Next::NoPolicy => {
                    session.set_policy_key(None);
                    self.policy = None;
                    self.outcome = Some(Outcome::NoPolicy);
                    return Ok(());
                }
                Next::Wipe(directive) => {
                    let status = self.enforcer.wipe_requested(directive);
                    self.outcome = Some(Outcome::Wiped(directive, status));
                    request = flow.acknowledge_wipe(status)?;
                }
                Next::WipeAcknowledged(_)
                    if restart_after_failed_wipe
                        && matches!(self.outcome, Some(Outcome::Wiped(_, WipeStatus::Failed)))
                        && self.enforcer.wipe_withdrawn() =>
                {
                    restart_after_failed_wipe = false;
                    flow = Provisioning::new(version, device.clone());
                    request = flow.start()?;
                }
                Next::WipeAcknowledged(directive) => {
                    return Err(Error::RemoteWipe {
                        account_only: directive == WipeDirective::AccountOnly,
                    });
                }
                Next::Failed { reason, action } => {
                    let detail = (acknowledged && action == crate::eas::status::Action::Blocked)
                        .then(|| self.enforcer.refusal_detail())
                        .flatten();
                    let reason = match detail {
                        Some(detail) => format!("{reason}; {detail}"),
                        None => reason,
                    };
                    return Err(Error::ProvisioningRefused { reason });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unlock_limit_follows_ms_asprov() {
        let mut policy = Policy::default();
        assert_eq!(unlock_limit(&policy), None, "absent: no maximum");
        policy
            .set_by_name("MaxDevicePasswordFailedAttempts", "8")
            .unwrap();
        assert_eq!(unlock_limit(&policy), Some(8));
        policy.set_by_name("DevicePasswordEnabled", "1").unwrap();
        assert_eq!(unlock_limit(&policy), Some(8));
        policy.set_by_name("DevicePasswordEnabled", "0").unwrap();
        assert_eq!(unlock_limit(&policy), None, "ignored without a password");
        policy.set_by_name("DevicePasswordEnabled", "1").unwrap();
        policy
            .set_by_name("MaxDevicePasswordFailedAttempts", "0")
            .unwrap();
        assert_eq!(unlock_limit(&policy), None);
    }

    #[test]
    fn policy_limits_take_units_and_defaults_from_ms_asprov() {
        let open = policy_limits(&Policy::default());
        assert_eq!(
            open,
            PolicyLimits {
                attachments_enabled: true,
                allow_html_email: true,
                ..PolicyLimits::default()
            }
        );
        let mut policy = Policy::default();
        for (name, value) in [
            ("MaxEmailAgeFilter", "3"),
            ("MaxCalendarAgeFilter", "0"),
            ("MaxEmailBodyTruncationSize", "2"),
            ("MaxEmailHTMLBodyTruncationSize", "-1"),
            ("MaxAttachmentSize", "5000"),
            ("AttachmentsEnabled", "0"),
            ("AllowHTMLEmail", "0"),
        ] {
            policy.set_by_name(name, value).unwrap();
        }
        let limits = policy_limits(&policy);
        assert_eq!(limits.max_email_age, Some(3));
        assert_eq!(limits.max_calendar_age, None, "0 means all");
        assert_eq!(limits.max_email_body_bytes, Some(2048), "KiB");
        assert_eq!(limits.max_email_html_body_bytes, None, "-1 means none");
        assert_eq!(limits.max_attachment_bytes, Some(5000), "bytes");
        assert!(!limits.attachments_enabled);
        assert!(!limits.allow_html_email);
        policy
            .set_by_name("MaxEmailBodyTruncationSize", "0")
            .unwrap();
        assert_eq!(policy_limits(&policy).max_email_body_bytes, Some(0));
    }
}
