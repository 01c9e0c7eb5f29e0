//! Provision (MS-ASPROV): the two-phase download and acknowledgement of the policy with a
//! temporary then a final PolicyKey, DeviceInformation inside Provision (14.1 and later),
//! and the RemoteWipe / AccountOnlyRemoteWipe (16.1) directives with their acknowledgement.

use super::protocol::{Ctx, Reply, bad_body};
use super::render::document;
use super::state::Wipe;
use crate::eas::Node;
use crate::eas::provision::{
    ACCOUNT_ONLY_REMOTE_WIPE, DATA, EAS_PROVISION_DOC, POLICIES, POLICY, POLICY_KEY, POLICY_TYPE,
    POLICY_TYPE_TAG, PROVISION, REMOTE_WIPE, STATUS,
};
use crate::eas::settings::{DEVICE_INFORMATION, SET as SETTINGS_SET, STATUS as SETTINGS_STATUS};
use crate::wbxml::{ProtocolVersion, Tag};

/// Whether a wipe is waiting to be delivered to a client of `version` (account-only wipes
/// exist only in 16.1; an older client never gets one, see the module docs of `lab`). As
/// Exchange does, a device that comes back after acknowledging a wipe (it failed, or it was
/// not carried out) is given the directive again.
pub fn wipe_due(wipe: Wipe, version: ProtocolVersion) -> bool {
    match wipe {
        Wipe::Pending { account_only }
        | Wipe::Sent { account_only }
        | Wipe::Acknowledged { account_only, .. } => {
            !account_only || version >= ProtocolVersion::V16_1
        }
        _ => false,
    }
}

/// The `name → value` pairs of a `Set` element (DeviceInformation).
pub fn device_information(node: &Node) -> Vec<(String, String)> {
    node.child(SETTINGS_SET)
        .map(|set| {
            set.children()
                .iter()
                .map(|c| {
                    (
                        c.tag.name().unwrap_or("?").to_string(),
                        c.text().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn handle(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let protocol_error = || super::render::status_document(v, PROVISION, STATUS, 2).into();
    // An empty body is answered like an empty Provision: the wipe directive when one is due,
    // else a protocol error.
    let node = match ctx.tree(PROVISION) {
        Ok(Some(n)) => n,
        Ok(None) => Node {
            tag: PROVISION,
            value: crate::eas::Value::Empty,
        },
        Err(e) => return bad_body(e),
    };
    let info_node = node.child(DEVICE_INFORMATION);
    if info_node.is_some() && v < ProtocolVersion::V14_1 {
        // Before 14.1 DeviceInformation goes through Settings, never Provision.
        return protocol_error();
    }
    let mut st = ctx.lab.shared.lock();
    let generation = st.policy.generation;
    let settings = st.policy.settings.clone();
    let require_full = st.policy.require_full_compliance;
    let temp_key = st.rng.policy_key();
    let final_key = st.rng.policy_key();
    let d = st.device(&ctx.device_id, &ctx.device_type, &ctx.user);
    if let Some(info) = info_node {
        d.device_information = device_information(info);
    }
    let write_info = |w: &mut super::render::Out| {
        if info_node.is_some() {
            w.start(DEVICE_INFORMATION)?;
            w.text_element(SETTINGS_STATUS, "1")?;
            w.end()?;
        }
        Ok(())
    };

    // The client acknowledges a wipe directive.
    for (tag, account_only) in [(REMOTE_WIPE, false), (ACCOUNT_ONLY_REMOTE_WIPE, true)] {
        if let Some(ack) = node.child(tag) {
            let status = ack
                .child_text(STATUS)
                .and_then(|s| s.trim().parse::<u32>().ok());
            let Some(status @ 1..=2) = status else {
                return protocol_error();
            };
            d.wipe = Wipe::Acknowledged {
                account_only,
                status,
            };
            d.wipe_acks.push(status);
            d.policy_key = None;
            d.temporary_key = None;
            drop(st);
            ctx.lab.shared.changed.notify_all();
            return document(v, |w| {
                w.start(PROVISION)?;
                w.text_element(STATUS, "1")?;
                w.end()
            })
            .into();
        }
    }
    if wipe_due(d.wipe, v) {
        let account_only = matches!(
            d.wipe,
            Wipe::Pending { account_only: true }
                | Wipe::Sent { account_only: true }
                | Wipe::Acknowledged {
                    account_only: true,
                    ..
                }
        );
        d.wipe = Wipe::Sent { account_only };
        return document(v, |w| {
            w.start(PROVISION)?;
            write_info(w)?;
            w.text_element(STATUS, "1")?;
            w.empty(if account_only {
                ACCOUNT_ONLY_REMOTE_WIPE
            } else {
                REMOTE_WIPE
            })?;
            w.end()
        })
        .into();
    }

    let Some(policy) = node.child(POLICIES).and_then(|p| p.child(POLICY)) else {
        return protocol_error();
    };
    let policy_type = policy.child_text(POLICY_TYPE_TAG).unwrap_or("");
    let policy_reply = |status: u32, key: Option<u32>, with_data: bool| {
        document(v, |w| {
            w.start(PROVISION)?;
            write_info(w)?;
            w.text_element(STATUS, "1")?;
            w.start(POLICIES)?;
            w.start(POLICY)?;
            w.text_element(POLICY_TYPE_TAG, policy_type)?;
            w.text_element(STATUS, &status.to_string())?;
            if let Some(k) = key {
                w.text_element(POLICY_KEY, &k.to_string())?;
            }
            if with_data {
                w.start(DATA)?;
                w.start(EAS_PROVISION_DOC)?;
                for (name, value) in &settings {
                    let Some(tag) = Tag::by_name("Provision", name) else {
                        continue;
                    };
                    if !tag.in_version(v) {
                        continue;
                    }
                    if value.is_empty() {
                        w.empty(tag)?;
                    } else {
                        w.text_element(tag, value)?;
                    }
                }
                w.end()?;
                w.end()?;
            }
            w.end()?;
            w.end()?;
            w.end()
        })
        .into()
    };
    if policy_type != POLICY_TYPE {
        return policy_reply(3, None, false);
    }
    let acked_key = policy.child_text(POLICY_KEY);
    let ack_status = policy.child_text(STATUS);
    match (acked_key, ack_status) {
        (None, None) => {
            if ctx.lab.config.require_device_information
                && v >= ProtocolVersion::V14_1
                && info_node.is_none()
            {
                return super::render::status_document(v, PROVISION, STATUS, 165).into();
            }
            if settings.is_empty() {
                return policy_reply(2, None, false);
            }
            d.temporary_key = Some(temp_key);
            policy_reply(1, Some(temp_key), true)
        }
        (Some(key), Some(status)) => {
            let Ok(status) = status.trim().parse::<u32>() else {
                return protocol_error();
            };
            if !(1..=4).contains(&status) {
                return protocol_error();
            }
            let key: Option<u32> = key.trim().parse().ok();
            if key.is_none() || key != d.temporary_key {
                return policy_reply(5, None, false);
            }
            d.acks.push(status);
            if require_full && matches!(status, 2 | 3) {
                d.temporary_key = None;
                drop(st);
                ctx.lab.shared.changed.notify_all();
                return super::render::status_document(v, PROVISION, STATUS, 139).into();
            }
            d.temporary_key = None;
            d.policy_key = Some(final_key);
            d.policy_generation = generation;
            drop(st);
            ctx.lab.shared.changed.notify_all();
            policy_reply(1, Some(final_key), false)
        }
        _ => protocol_error(),
    }
}
