//! The account's [`Enforcer`]: the policy decided by the device hooks
//! ([`crate::device::hooks`]), the wipe intent persisted as `HonestEnforcer` does.
//!
//! With `[hooks]` configured, the acknowledgement is the hooks' verdict, with the elements
//! the engine obeys itself (the caps of [`super::provision::policy_limits`]) counted as
//! applied. Without hooks nothing is enforced and every policy is acknowledged as not
//! applied (3). Either way the verdict (status and missing elements) is logged and kept in
//! a [`ComplianceSlot`] the account shares, so it can be reported later, and a refusal of
//! the server (139) names the missing elements.

use std::sync::{Arc, Mutex};

use super::account::HonestEnforcer;
use super::provision::Enforcer;
use crate::device::hooks::{self, Compliance, HookSet};
use crate::eas::policy::Policy;
use crate::eas::provision::{AckStatus, WipeDirective, WipeStatus};
use crate::store::state::StateFile;

/// The policy elements the engine really obeys itself (see
/// [`super::provision::policy_limits`]): the age filters and the body truncation sizes.
/// The other elements of [`hooks::EASYNC`] — AttachmentsEnabled, MaxAttachmentSize and
/// AllowHTMLEmail — are not counted: mail is synced as whole MIME, which carries its
/// attachments and HTML parts, so refusing attachment fetches alone does not apply them.
pub const APPLIED_BY_ENGINE: [&str; 4] = [
    "MaxCalendarAgeFilter",
    "MaxEmailAgeFilter",
    "MaxEmailBodyTruncationSize",
    "MaxEmailHTMLBodyTruncationSize",
];

/// The last compliance verdict, shared between an account and its enforcers.
pub type ComplianceSlot = Arc<Mutex<Option<Compliance>>>;

/// The elements of the last policy provisioned (name, value), shared the same way.
pub type PolicySlot = Arc<Mutex<Option<Vec<(&'static str, String)>>>>;

/// The Enforcer an account provisions with.
pub struct HookEnforcer {
    state_file: StateFile,
    hooks: Option<HookSet>,
    compliance: ComplianceSlot,
    policy: Option<PolicySlot>,
    /// The last wipe directive was acknowledged as failed for an earlier attempt.
    withdrew_failed_wipe: bool,
    /// The device reports roaming (`device.roaming_file`): the engine then applies
    /// RequireManualSyncWhenRoaming itself.
    roaming_signal: bool,
}

/// The file under `data_dir/state/` keeping the last policy's elements (JSON), so the
/// D-Bus `Policy` and the roaming rule are known before the first provisioning of a run.
pub const POLICY_FILE: &str = "policy.json";

/// The policy elements a [`POLICY_FILE`] of `bytes` keeps (names easync does not know are
/// left out).
pub fn parse_saved_policy(bytes: &[u8]) -> Result<Vec<(&'static str, String)>, serde_json::Error> {
    let map = serde_json::from_slice::<std::collections::BTreeMap<String, String>>(bytes)?;
    Ok(map
        .into_iter()
        .filter_map(|(name, value)| {
            crate::eas::policy::Policy::ELEMENT_NAMES
                .iter()
                .find(|n| **n == name)
                .map(|n| (*n, value))
        })
        .collect())
}

/// The policy elements kept in `data_dir/state/policy.json`, if any (a damaged file is
/// ignored with a warning: the next provisioning writes it again).
pub fn saved_policy(data_dir: &std::path::Path) -> Option<Vec<(&'static str, String)>> {
    let path = data_dir.join("state").join(POLICY_FILE);
    let bytes = std::fs::read(&path).ok()?;
    match parse_saved_policy(&bytes) {
        Ok(elements) => Some(elements),
        Err(e) => {
            log::warn!(
                "{} is damaged ({e}); it is written again at the next provisioning",
                path.display()
            );
            None
        }
    }
}

impl HookEnforcer {
    /// `hooks`: `None` when `[hooks]` configures no hook (nothing is enforced).
    pub fn new(state_file: StateFile, hooks: Option<HookSet>, compliance: ComplianceSlot) -> Self {
        HookEnforcer {
            state_file,
            hooks,
            compliance,
            policy: None,
            withdrew_failed_wipe: false,
            roaming_signal: false,
        }
    }

    /// The device has a roaming signal, so RequireManualSyncWhenRoaming is applied by the
    /// engine.
    pub fn with_roaming_signal(mut self, on: bool) -> Self {
        self.roaming_signal = on;
        self
    }

    fn keep_policy(&self, elements: &[(&'static str, String)]) {
        let Some(dir) = self.state_file.path().parent() else {
            return;
        };
        let map: std::collections::BTreeMap<&str, &str> =
            elements.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let json = serde_json::to_vec_pretty(&map).unwrap_or_default();
        if let Err(e) = crate::store::atomic::replace_file(
            &dir.join(POLICY_FILE),
            &json,
            crate::store::atomic::PRIVATE_FILE_MODE,
        ) {
            log::warn!("cannot keep the policy for the next start: {e}");
        }
    }

    /// Also keeps each policy applied in `slot`.
    pub fn with_policy_slot(mut self, slot: PolicySlot) -> Self {
        self.policy = Some(slot);
        self
    }

    fn record(&self, verdict: Compliance) {
        if let Ok(mut slot) = self.compliance.lock() {
            *slot = Some(verdict);
        }
    }

    /// The last verdict, if any.
    pub fn compliance(&self) -> Option<Compliance> {
        self.compliance.lock().ok().and_then(|slot| slot.clone())
    }
}

impl Enforcer for HookEnforcer {
    fn apply(&mut self, policy: &Policy) -> AckStatus {
        let elements = policy.elements();
        self.keep_policy(&elements);
        if let Some(slot) = &self.policy {
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(elements);
            }
        }
        let mut by_engine: Vec<&str> = APPLIED_BY_ENGINE.to_vec();
        if self.roaming_signal {
            by_engine.push("RequireManualSyncWhenRoaming");
        }
        let verdict = match &self.hooks {
            Some(hooks) => hooks.enforce(policy, &by_engine),
            None => {
                let status = HonestEnforcer {
                    state_file: &self.state_file,
                }
                .apply(policy);
                Compliance {
                    status,
                    applied: Vec::new(),
                    missing: hooks::needs_enforcing(policy),
                    errors: Vec::new(),
                }
            }
        };
        match verdict.status {
            AckStatus::Applied => log::info!("the server's policy is applied"),
            status => log::warn!(
                "the server's policy is acknowledged with status {} ({}): not applied: {}",
                status.code(),
                if status == AckStatus::PartiallyApplied {
                    "partly applied"
                } else {
                    "not applied"
                },
                verdict.missing.join(", ")
            ),
        }
        let status = verdict.status;
        self.record(verdict);
        status
    }

    fn wipe_requested(&mut self, directive: WipeDirective) -> WipeStatus {
        self.withdrew_failed_wipe = super::account::withdraw_failed_wipe(&self.state_file);
        if self.withdrew_failed_wipe {
            return WipeStatus::Failed;
        }
        HonestEnforcer {
            state_file: &self.state_file,
        }
        .wipe_requested(directive)
    }

    fn wipe_withdrawn(&self) -> bool {
        self.withdrew_failed_wipe
    }

    fn refusal_detail(&self) -> Option<String> {
        let verdict = self.compliance()?;
        (!verdict.missing.is_empty()).then(|| {
            format!(
                "blocked by policy: this device does not apply {}; configure or fix the hooks \
                 for them in [hooks]",
                verdict.missing.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::state::WipeIntent;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("easync-enforce-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn camera_and_password() -> Policy {
        let mut p = Policy::default();
        p.set_by_name("DevicePasswordEnabled", "1").unwrap();
        p.set_by_name("AllowCamera", "0").unwrap();
        p.set_by_name("MaxAttachmentSize", "100").unwrap();
        p
    }

    #[test]
    fn without_hooks_nothing_is_applied_and_the_verdict_is_kept() {
        let dir = scratch("none");
        let slot = ComplianceSlot::default();
        let mut e = HookEnforcer::new(StateFile::new(&dir), None, Arc::clone(&slot));
        assert_eq!(e.refusal_detail(), None);
        assert_eq!(e.apply(&camera_and_password()), AckStatus::NotApplied);
        let verdict = slot.lock().unwrap().clone().unwrap();
        assert_eq!(
            verdict.missing,
            vec!["DevicePasswordEnabled", "MaxAttachmentSize", "AllowCamera"]
        );
        let detail = e.refusal_detail().unwrap();
        assert!(detail.contains("blocked by policy") && detail.contains("AllowCamera"));
        // The wipe intent is persisted as before.
        assert_eq!(
            e.wipe_requested(WipeDirective::AccountOnly),
            WipeStatus::Succeeded
        );
        let state = StateFile::new(&dir).load().unwrap().into_state();
        assert_eq!(state.wipe_intent, Some(WipeIntent::AccountOnly));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn with_hooks_the_engine_caps_count_as_applied() {
        let dir = scratch("hooks");
        let hook = dir.join("lock");
        std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o700)).unwrap();
        let hooks = HookSet {
            device_lock: Some(hook),
            storage_encryption: None,
            policy: None,
            timeout: std::time::Duration::from_secs(20),
        };
        let slot = ComplianceSlot::default();
        let mut e = HookEnforcer::new(StateFile::new(&dir), Some(hooks), Arc::clone(&slot));
        let mut policy = camera_and_password();
        policy.set_by_name("MaxEmailAgeFilter", "3").unwrap();
        assert_eq!(e.apply(&policy), AckStatus::PartiallyApplied);
        let verdict = e.compliance().unwrap();
        assert_eq!(
            verdict.applied,
            vec!["DevicePasswordEnabled", "MaxEmailAgeFilter"]
        );
        // Mail arrives as whole MIME: its attachments are not held back by the engine.
        assert_eq!(verdict.missing, vec!["MaxAttachmentSize", "AllowCamera"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
