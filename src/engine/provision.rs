//! Provisioning as the engine runs it: the `eas` flow driven over a transport session, with
//! the policy decision and the wipe handed to an [`Enforcer`] (the device layer in the
//! product, a fixed answer in tests).
//!
//! The transport calls [`EngineProvisioner`] whenever the server demands provisioning (449,
//! 142–144, 140); it stores the new policy key in the session, or returns
//! [`Error::RemoteWipe`] once a wipe directive is acknowledged so that the interrupted
//! command is not repeated.

use crate::eas::policy::Policy;
use crate::eas::provision::{
    self, AckStatus, Next, ProvisionResponse, Provisioning, WipeDirective, WipeStatus,
};
use crate::eas::settings::DeviceInformation;
use crate::eas::{Command, ProtocolVersion, Request};
use crate::transport::{self, Error, Session, command_timeout};

/// What decides the acknowledgement: enforces a policy and prepares a wipe.
pub trait Enforcer {
    /// Enforce `policy` and say honestly how far that succeeded (1 only when every element
    /// that needs enforcing is applied).
    fn apply(&mut self, policy: &Policy) -> AckStatus;
    /// The server ordered a wipe: persist the intent durably, then say what to acknowledge
    /// (`Succeeded`: the wipe will be carried out; `Failed`: an earlier attempt failed).
    fn wipe_requested(&mut self, directive: WipeDirective) -> WipeStatus;
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

    fn exchange(session: &mut Session, request: &Request) -> transport::Result<ProvisionResponse> {
        let version = session.state().version;
        let response = session.send(request, None, command_timeout(Command::Provision, None))?;
        response.read(version, provision::read_response)
    }
}

impl<E: Enforcer + ?Sized> transport::Provisioner for EngineProvisioner<'_, E> {
    fn provision(&mut self, session: &mut Session) -> transport::Result<()> {
        self.rounds += 1;
        let version = session.state().version;
        let device = (version >= ProtocolVersion::V14_1).then(|| self.device.clone());
        let mut flow = Provisioning::new(version, device);
        let mut request = flow.start()?;
        loop {
            let response = Self::exchange(session, &request)?;
            match flow.on_response(response)? {
                Next::Apply(policy) => {
                    let ack = self.enforcer.apply(&policy);
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
                Next::WipeAcknowledged(directive) => {
                    return Err(Error::RemoteWipe {
                        account_only: directive == WipeDirective::AccountOnly,
                    });
                }
                Next::Failed { reason, .. } => {
                    return Err(Error::ProvisioningRefused { reason });
                }
            }
        }
    }
}
