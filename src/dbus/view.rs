//! What the D-Bus service shows of the account, kept up to date from the engine's
//! [`Event`]s. Pure data and the rules of [`AccountView::apply`]: which properties change
//! and which signals go out for an event. No bus here, so the rules are tested without one;
//! [`super::service`] publishes the [`Changes`].

use std::time::{SystemTime, UNIX_EPOCH};

use crate::device::hooks::Compliance;
use crate::eas::provision::AckStatus;
use crate::engine::enroll::SignInPrompt;
use crate::engine::reaction::Reaction;
use crate::engine::runner::{Event, Step};

/// The account's state, as the `State` property names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The daemon started; the first cycle has not begun.
    Starting,
    /// A full cycle (negotiate, provision, folder and item sync).
    Syncing,
    /// The device's changes going up.
    Uploading,
    /// The outbox being sent.
    Sending,
    /// Parked in Ping: pushed, up to date.
    Listening,
    /// A transient failure; trying again after a back-off.
    Retrying,
    /// An OAuth account waits for the user to approve the device code.
    SigningIn,
    /// The password or token was refused: the user must act.
    NeedsCredentials,
    /// The server refused the device because policy elements are not applied.
    BlockedByPolicy,
    /// The server or its administrator blocks the device (forbidden, quarantined).
    Blocked,
    /// The configuration is wrong (URL, trust); fix it and reload.
    NeedsConfiguration,
    /// Roaming, and the policy requires manual sync then: syncs only when asked.
    Roaming,
    /// A remote wipe was ordered and is being carried out.
    Wiping,
    /// The account was wiped.
    Wiped,
    /// The engine stopped (the daemon is exiting).
    Stopped,
}

impl State {
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Syncing => "syncing",
            State::Uploading => "uploading",
            State::Sending => "sending",
            State::Listening => "listening",
            State::Retrying => "retrying",
            State::SigningIn => "signing-in",
            State::NeedsCredentials => "needs-credentials",
            State::BlockedByPolicy => "blocked-by-policy",
            State::Blocked => "blocked",
            State::NeedsConfiguration => "needs-configuration",
            State::Roaming => "roaming",
            State::Wiping => "wiping",
            State::Wiped => "wiped",
            State::Stopped => "stopped",
        }
    }
}

/// The `Compliance` property's status word.
pub fn compliance_status(compliance: Option<&Compliance>, blocked: bool) -> &'static str {
    match compliance {
        None => "unknown",
        Some(_) if blocked => "blocked",
        Some(c) => match c.status {
            AckStatus::Applied => "compliant",
            AckStatus::PartiallyApplied => "partial",
            AckStatus::NotApplied => "not-applied",
            AckStatus::ExternallyManaged => "externally-managed",
        },
    }
}

/// A property of `org.easync.Account1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    State,
    StateDetail,
    ProtocolVersion,
    LastSync,
    Compliance,
    Policy,
}

/// A signal of `org.easync.Account1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    PolicyChanged,
    ComplianceRequired {
        status: &'static str,
        missing: Vec<String>,
    },
    WipeRequested {
        account_only: bool,
    },
    WipeCompleted {
        account_only: bool,
    },
    /// Items arrived. A full cycle reports per class (empty folder id and name).
    NewItems {
        folder_id: String,
        folder: String,
        class: &'static str,
        added: u64,
        changed: u64,
        deleted: u64,
    },
    /// An initial sync moved on (for progress bars).
    Progress {
        folder: String,
        class: &'static str,
        done: u64,
        estimated: u64,
    },
    DeviceCodeRequired {
        verification_uri: String,
        user_code: String,
        expires_in_secs: u64,
    },
}

/// What an event changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub properties: Vec<Property>,
    pub signals: Vec<Signal>,
}

impl Changes {
    fn property(&mut self, p: Property) {
        if !self.properties.contains(&p) {
            self.properties.push(p);
        }
    }
}

/// The account as the service shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub state: State,
    /// One line on the state: the failure and what to do, or what is going on.
    pub state_detail: String,
    /// The ActiveSync version in use ("" before the first connection).
    pub protocol_version: String,
    /// When the last cycle or push round completed (Unix seconds, 0: not yet).
    pub last_sync: u64,
    /// The verdict on the policy (None: not provisioned in this process yet).
    pub compliance: Option<Compliance>,
    /// The server refused partial compliance (139).
    pub blocked_by_policy: bool,
    /// The policy's elements (name, value).
    pub policy: Vec<(String, String)>,
}

impl Default for AccountView {
    fn default() -> Self {
        AccountView {
            state: State::Starting,
            state_detail: String::new(),
            protocol_version: String::new(),
            last_sync: 0,
            compliance: None,
            blocked_by_policy: false,
            policy: Vec::new(),
        }
    }
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl AccountView {
    /// The view when the service starts: the protocol version of the saved state.
    pub fn new(protocol_version: Option<String>) -> Self {
        AccountView {
            protocol_version: protocol_version.unwrap_or_default(),
            ..AccountView::default()
        }
    }

    /// The `Compliance` property: status word and the elements not applied.
    pub fn compliance_property(&self) -> (String, Vec<String>) {
        (
            compliance_status(self.compliance.as_ref(), self.blocked_by_policy).to_string(),
            self.compliance
                .as_ref()
                .map(|c| c.missing.iter().map(|m| m.to_string()).collect())
                .unwrap_or_default(),
        )
    }

    fn set_state(&mut self, state: State, detail: String, changes: &mut Changes) {
        if self.state != state {
            self.state = state;
            changes.property(Property::State);
        }
        if self.state_detail != detail {
            self.state_detail = detail;
            changes.property(Property::StateDetail);
        }
    }

    fn synced(&mut self, at: SystemTime, version: Option<&str>, changes: &mut Changes) {
        // Announced even when the second is the same: it says "a sync completed".
        self.last_sync = unix_secs(at);
        changes.property(Property::LastSync);
        if let Some(v) = version {
            if self.protocol_version != v {
                self.protocol_version = v.to_string();
                changes.property(Property::ProtocolVersion);
            }
        }
        if self.blocked_by_policy {
            self.blocked_by_policy = false;
            changes.property(Property::Compliance);
        }
    }

    /// Takes in one engine event at time `at`.
    pub fn apply(&mut self, event: &Event, at: SystemTime) -> Changes {
        let mut changes = Changes::default();
        match event {
            Event::Begin(step) => {
                let (state, detail) = match step {
                    Step::Cycle => (State::Syncing, "syncing with the server"),
                    Step::Upload => (State::Uploading, "sending the device's changes"),
                    Step::Outbox => (State::Sending, "sending the outbox"),
                    Step::Push => (State::Listening, "up to date, waiting for changes (push)"),
                };
                self.set_state(state, detail.to_string(), &mut changes);
            }
            Event::Progress(p) => changes.signals.push(Signal::Progress {
                folder: p.folder.clone(),
                class: p.class.as_str(),
                done: p.done,
                estimated: p.estimated.unwrap_or(0),
            }),
            Event::Synced(summary) => {
                self.synced(at, Some(&summary.protocol_version), &mut changes);
                for (class, s) in &summary.classes {
                    if s.added + s.changed + s.deleted > 0 {
                        changes.signals.push(Signal::NewItems {
                            folder_id: String::new(),
                            folder: String::new(),
                            class: class.as_str(),
                            added: s.added,
                            changed: s.changed,
                            deleted: s.deleted,
                        });
                    }
                }
            }
            Event::Pushed(outcome) => {
                let version = outcome.cycle.as_ref().map(|c| c.protocol_version.as_str());
                self.synced(at, version, &mut changes);
                for f in &outcome.folders {
                    if f.added + f.changed + f.deleted > 0 {
                        changes.signals.push(Signal::NewItems {
                            folder_id: f.id.clone(),
                            folder: f.name.clone(),
                            class: f.class.as_str(),
                            added: f.added,
                            changed: f.changed,
                            deleted: f.deleted,
                        });
                    }
                }
            }
            Event::Uploaded(_) | Event::Sent(_) => {}
            Event::Failed {
                message, reaction, ..
            } => {
                let state = match reaction {
                    Reaction::Retry { .. } | Reaction::Restart { .. } => State::Retrying,
                    Reaction::NeedsCredentials { .. } => State::NeedsCredentials,
                    Reaction::Blocked { .. }
                        if self
                            .compliance
                            .as_ref()
                            .is_some_and(|c| !c.missing.is_empty()) =>
                    {
                        State::BlockedByPolicy
                    }
                    Reaction::Blocked { .. } => State::Blocked,
                    Reaction::FixConfiguration { .. } => State::NeedsConfiguration,
                    // The order itself is announced by Event::WipeRequested.
                    Reaction::Wipe { .. } => State::Wiping,
                };
                // A wiped account stays shown as wiped (the engine then stops with "enroll
                // again", which is what the state says already).
                if self.state == State::Wiped {
                    return changes;
                }
                let blocked = state == State::BlockedByPolicy;
                if self.blocked_by_policy != blocked {
                    self.blocked_by_policy = blocked;
                    changes.property(Property::Compliance);
                }
                self.set_state(state, message.clone(), &mut changes);
            }
            Event::Policy {
                elements,
                compliance,
            } => {
                let policy: Vec<(String, String)> = elements
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.clone()))
                    .collect();
                if self.policy != policy {
                    self.policy = policy;
                    changes.property(Property::Policy);
                    changes.signals.push(Signal::PolicyChanged);
                }
                if &self.compliance != compliance {
                    self.compliance = compliance.clone();
                    changes.property(Property::Compliance);
                    if let Some(c) = compliance
                        .as_ref()
                        .filter(|c| c.status != AckStatus::Applied)
                    {
                        changes.signals.push(Signal::ComplianceRequired {
                            status: compliance_status(Some(c), false),
                            missing: c.missing.iter().map(|m| m.to_string()).collect(),
                        });
                    }
                }
            }
            Event::Roaming => self.set_state(
                State::Roaming,
                "roaming: the policy allows syncing only when asked (SyncNow)".into(),
                &mut changes,
            ),
            Event::WipeRequested {
                account_only,
                local,
            } => {
                changes.signals.push(Signal::WipeRequested {
                    account_only: *account_only,
                });
                let by = if *local { "the device" } else { "the server" };
                let detail = if *account_only {
                    format!("removing this account's data: ordered by {by}")
                } else {
                    format!("wiping the device's data: ordered by {by}")
                };
                self.set_state(State::Wiping, detail, &mut changes);
            }
            Event::WipeCompleted { account_only } => {
                changes.signals.push(Signal::WipeCompleted {
                    account_only: *account_only,
                });
                self.set_state(
                    State::Wiped,
                    "the wipe is complete: enroll again to use this account".into(),
                    &mut changes,
                );
            }
            Event::Stopped => self.set_state(
                State::Stopped,
                "the daemon is stopping".into(),
                &mut changes,
            ),
        }
        changes
    }

    /// An OAuth account needs the user to approve the device.
    pub fn sign_in(&mut self, prompt: &SignInPrompt) -> Changes {
        let mut changes = Changes::default();
        self.set_state(State::SigningIn, prompt.message.clone(), &mut changes);
        changes.signals.push(Signal::DeviceCodeRequired {
            verification_uri: prompt.verification_uri.clone(),
            user_code: prompt.user_code.clone(),
            expires_in_secs: prompt.expires_in.as_secs(),
        });
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyncClass;
    use crate::engine::account::{ClassSummary, Summary};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn verdict(status: AckStatus, missing: &[&'static str]) -> Compliance {
        Compliance {
            status,
            applied: Vec::new(),
            missing: missing.to_vec(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn a_cycle_moves_the_state_and_the_last_sync_and_reports_new_items() {
        let mut v = AccountView::new(None);
        let c = v.apply(&Event::Begin(Step::Cycle), at(10));
        assert_eq!(c.properties, vec![Property::State, Property::StateDetail]);
        assert_eq!(v.state, State::Syncing);
        let mut classes = BTreeMap::new();
        classes.insert(
            SyncClass::Email,
            ClassSummary {
                folders: 1,
                added: 3,
                ..ClassSummary::default()
            },
        );
        classes.insert(SyncClass::Notes, ClassSummary::default());
        let summary = Summary {
            url: "https://x".into(),
            protocol_version: "16.1".into(),
            classes,
        };
        let c = v.apply(&Event::Synced(summary), at(20));
        assert_eq!(
            c.properties,
            vec![Property::LastSync, Property::ProtocolVersion]
        );
        assert_eq!(v.last_sync, 20);
        assert_eq!(c.signals.len(), 1, "notes had nothing new: {:?}", c.signals);
        assert!(matches!(
            &c.signals[0],
            Signal::NewItems {
                class: "email",
                added: 3,
                ..
            }
        ));
        // The same state again changes nothing.
        let c = v.apply(&Event::Begin(Step::Push), at(21));
        assert_eq!(v.state, State::Listening);
        assert!(
            v.apply(&Event::Begin(Step::Push), at(22))
                .properties
                .is_empty()
        );
        assert!(c.signals.is_empty());
    }

    #[test]
    fn a_refusal_with_missing_elements_is_blocked_by_policy() {
        let mut v = AccountView::new(Some("14.1".into()));
        let c = v.apply(
            &Event::Policy {
                elements: vec![("AllowCamera", "0".into())],
                compliance: Some(verdict(AckStatus::PartiallyApplied, &["AllowCamera"])),
            },
            at(1),
        );
        assert_eq!(c.properties, vec![Property::Policy, Property::Compliance]);
        assert_eq!(c.signals[0], Signal::PolicyChanged);
        assert_eq!(
            c.signals[1],
            Signal::ComplianceRequired {
                status: "partial",
                missing: vec!["AllowCamera".into()]
            }
        );
        let c = v.apply(
            &Event::Failed {
                message: "blocked by policy: AllowCamera".into(),
                reaction: Reaction::Blocked {
                    message: String::new(),
                },
                wait: None,
            },
            at(2),
        );
        assert_eq!(v.state, State::BlockedByPolicy);
        assert!(c.properties.contains(&Property::Compliance));
        assert_eq!(v.compliance_property().0, "blocked");
        // A later successful sync lifts the block.
        v.apply(&Event::Begin(Step::Cycle), at(3));
        let c = v.apply(
            &Event::Synced(Summary {
                url: String::new(),
                protocol_version: "14.1".into(),
                classes: BTreeMap::new(),
            }),
            at(4),
        );
        assert!(c.properties.contains(&Property::Compliance));
        assert_eq!(v.compliance_property().0, "partial");
    }

    #[test]
    fn a_blocked_device_without_missing_elements_is_just_blocked() {
        let mut v = AccountView::new(None);
        v.apply(
            &Event::Failed {
                message: "403".into(),
                reaction: Reaction::Blocked {
                    message: String::new(),
                },
                wait: None,
            },
            at(1),
        );
        assert_eq!(v.state, State::Blocked);
        assert_eq!(v.compliance_property(), ("unknown".to_string(), vec![]));
    }

    #[test]
    fn a_wipe_is_signalled_when_ordered_and_when_complete() {
        let mut v = AccountView::new(None);
        let c = v.apply(
            &Event::WipeRequested {
                account_only: false,
                local: true,
            },
            at(1),
        );
        assert_eq!(
            c.signals,
            vec![Signal::WipeRequested {
                account_only: false
            }]
        );
        assert_eq!(v.state, State::Wiping);
        assert!(v.state_detail.contains("the device"));
        // The engine's stop for the wipe keeps the state and signals nothing more.
        let c = v.apply(
            &Event::Failed {
                message: "wipe".into(),
                reaction: Reaction::Wipe {
                    account_only: false,
                },
                wait: Some(Duration::ZERO),
            },
            at(2),
        );
        assert!(c.signals.is_empty());
        assert_eq!(v.state, State::Wiping);
        let c = v.apply(
            &Event::WipeCompleted {
                account_only: false,
            },
            at(3),
        );
        assert_eq!(
            c.signals,
            vec![Signal::WipeCompleted {
                account_only: false
            }]
        );
        assert_eq!(v.state, State::Wiped);
    }

    #[test]
    fn a_device_code_prompt_signals_the_code() {
        let mut v = AccountView::new(None);
        let c = v.sign_in(&SignInPrompt {
            verification_uri: "https://login/device".into(),
            verification_uri_complete: None,
            user_code: "ABCD-EFGH".into(),
            expires_in: Duration::from_secs(900),
            message: "open https://login/device and enter ABCD-EFGH".into(),
        });
        assert_eq!(v.state, State::SigningIn);
        assert_eq!(
            c.signals,
            vec![Signal::DeviceCodeRequired {
                verification_uri: "https://login/device".into(),
                user_code: "ABCD-EFGH".into(),
                expires_in_secs: 900
            }]
        );
    }
}
