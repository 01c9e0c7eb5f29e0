//! The client's reactions to what a server can do to it: provisioning demands, policy
//! changes, wipes, every fault the lab injects, and the ways authentication and TLS fail.
//! Each test drives the real client (`eas` + `transport`) against an in-process easync-lab
//! and checks both what the client concluded and what the lab recorded.

#![cfg(feature = "lab")]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::client::{
    self, Account, Collected, Provisioned, TIMEOUT, TestProvisioner, folder_of_type, folder_sync,
    folders,
};
use common::lab::Lab;
use easync::eas::folder::{self, FolderSyncResponse, FolderSyncStatus, FolderType};
use easync::eas::item::Class;
use easync::eas::provision::{
    self, AckStatus, Next, ProvisionStatus, Provisioning, WipeDirective, WipeStatus,
};
use easync::eas::settings::{self, Operation, SettingsStatus};
use easync::eas::sync::{self, CollectionRequest, SyncOutcome, SyncRequest};
use easync::eas::{self, Action, CommonStatus, HasStatus, ProtocolVersion};
use easync::lab::{self as lab_server, Fault, FaultKind};
use easync::transport::{
    Auth, Client, Error, Provisioner, RetryAfter, RetryPolicy, Session, TokenProvider,
};
use rustls::pki_types::pem::PemObject as _;

const V12_1: ProtocolVersion = ProtocolVersion::V12_1;
const V14_0: ProtocolVersion = ProtocolVersion::V14_0;
const V14_1: ProtocolVersion = ProtocolVersion::V14_1;
const V16_1: ProtocolVersion = ProtocolVersion::V16_1;

/// A small lab (few items keep every Sync in one batch) tuned by `tune`.
fn lab_with(tune: impl FnOnce(&mut lab_server::Config)) -> Lab {
    let mut config = lab_server::Config {
        items: 8,
        ..Lab::default_config()
    };
    tune(&mut config);
    Lab::start(config)
}

fn default_lab() -> Lab {
    lab_with(|_| {})
}

/// A session over plain HTTP at `version`, negotiated with the lab.
fn session_at(lab: &Lab, tag: &str, version: ProtocolVersion) -> (Account, Session) {
    let account = lab.account(false, tag);
    let session = account.session(Some(version));
    assert_eq!(session.state().version, version);
    (account, session)
}

/// A FolderSync from "0" through `execute`, returning the error instead of panicking.
fn try_folder_sync(
    session: &mut Session,
    prov: &mut dyn Provisioner,
) -> easync::transport::Result<FolderSyncResponse> {
    session.execute(
        |s| folder::folder_sync_request(s.version, "0"),
        folder::read_folder_sync_response,
        prov,
        TIMEOUT,
    )
}

fn fault(kind: FaultKind, command: &str) -> Fault {
    Fault {
        command: Some(command.into()),
        ..Fault::new(kind)
    }
}

/// The lab's policy settings as `(name, value)` pairs, sorted.
fn lab_policy(lab: &Lab) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = lab.state()["policy"]["settings"]
        .as_object()
        .expect("policy settings")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

fn received_policy(policy: &eas::policy::Policy) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = policy
        .elements()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    out.sort();
    out
}

/// Checks that `session` holds the final key the lab issued to `device_id`.
fn assert_key_matches_lab(lab: &Lab, session: &Session, device_id: &str) {
    let key = session.state().policy_key.expect("a policy key");
    assert_eq!(
        lab.device(device_id)["policy_key"],
        serde_json::json!(key.to_string())
    );
}

// ---------------------------------------------------------------------------------------
// Provisioning.

#[test]
fn two_phase_provisioning_delivers_the_lab_policy_and_the_final_key() {
    let lab = default_lab();
    for version in [V14_0, V14_1, ProtocolVersion::V16_0, V16_1] {
        let (account, mut session) = session_at(&lab, "prov", version);
        let mut prov = TestProvisioner::default();
        // No key yet: the lab answers the command with Status 142 in its body.
        let response = folder_sync(&mut session, &mut prov, "0");
        assert_eq!(response.status, FolderSyncStatus::Success, "{version}");
        assert!(!folders(&response).is_empty());
        assert_eq!(prov.rounds, 1, "{version}");
        assert_eq!(prov.policies.len(), 1);
        assert_eq!(received_policy(&prov.policies[0]), lab_policy(&lab));
        assert_eq!(prov.policies[0].min_device_password_length, Some(4));
        assert_eq!(prov.policies[0].device_password_enabled, Some(true));
        let device = lab.device(&account.device_id);
        assert_eq!(device["acks"], serde_json::json!([1]), "{version}");
        assert_key_matches_lab(&lab, &session, &account.device_id);
        assert_eq!(
            prov.last,
            Some(Provisioned::Key(
                session.state().policy_key.unwrap().to_string()
            ))
        );
        // The key sticks: another command needs no provisioning.
        folder_sync(&mut session, &mut prov, "0");
        assert_eq!(prov.rounds, 1);
    }
}

#[test]
fn v12_1_command_without_key_gets_449_then_provisions_and_repeats() {
    let lab = default_lab();
    let (account, mut session) = session_at(&lab, "p121", V12_1);
    // Without a provisioner that repairs it, the bare request is an HTTP 449.
    let request = folder::folder_sync_request(V12_1, "0").unwrap();
    let err = session.send(&request, None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::NeedsProvisioning), "{err:?}");

    let mut prov = TestProvisioner::default();
    let response = folder_sync(&mut session, &mut prov, "0");
    assert_eq!(response.status, FolderSyncStatus::Success);
    assert_eq!(prov.rounds, 1);
    assert_eq!(received_policy(&prov.policies[0]), lab_policy(&lab));
    assert_key_matches_lab(&lab, &session, &account.device_id);
    assert_eq!(
        lab.device(&account.device_id)["acks"],
        serde_json::json!([1])
    );
}

#[test]
fn in_band_142_on_14_1_and_16_1_is_answered_by_provisioning() {
    let lab = default_lab();
    for version in [V14_1, V16_1] {
        let (account, mut session) = session_at(&lab, "p142", version);
        // The bare command is answered with Status 142 in its body, not an HTTP error.
        let stale = raw_folder_sync(&mut session);
        assert_eq!(
            stale.common_status(),
            Some(CommonStatus::DeviceNotProvisioned),
            "{version}"
        );
        assert_eq!(stale.status.action(), Action::Reprovision);
        let mut prov = TestProvisioner::default();
        let response = folder_sync(&mut session, &mut prov, "0");
        assert_eq!(response.status, FolderSyncStatus::Success);
        assert_eq!(prov.rounds, 1, "{version}");
        assert_key_matches_lab(&lab, &session, &account.device_id);
    }
}

/// One FolderSync from "0" sent as is (no provisioning, no retries).
fn raw_folder_sync(session: &mut Session) -> FolderSyncResponse {
    let version = session.state().version;
    let request = folder::folder_sync_request(version, "0").unwrap();
    let response = session.send(&request, None, TIMEOUT).expect("FolderSync");
    folder::read_folder_sync_response(&mut response.parser(version)).expect("FolderSync response")
}

#[test]
fn admin_policy_change_gives_143_and_reprovisions_with_the_new_policy() {
    for version in [V12_1, V16_1] {
        let lab = default_lab();
        let (account, mut session) = session_at(&lab, "p143", version);
        let mut prov = TestProvisioner::default();
        folder_sync(&mut session, &mut prov, "0");
        let first_key = session.state().policy_key.unwrap();
        assert_eq!(prov.policies[0].min_device_password_length, Some(4));

        let mut changed = lab_server::default_policy();
        for (name, value) in changed.iter_mut() {
            if name == "MinDevicePasswordLength" {
                *value = "6".into();
            }
        }
        lab.handle.set_policy(changed).unwrap();

        // The old key now predates the policy: 143 in band (HTTP 449 on 12.1).
        if version == V12_1 {
            let request = folder::folder_sync_request(version, "0").unwrap();
            let err = session.send(&request, None, TIMEOUT).unwrap_err();
            assert!(matches!(err, Error::NeedsProvisioning), "{err:?}");
        } else {
            let stale = raw_folder_sync(&mut session);
            assert_eq!(stale.common_status(), Some(CommonStatus::PolicyRefresh));
        }

        folder_sync(&mut session, &mut prov, "0");
        assert_eq!(prov.rounds, 2, "{version}");
        assert_eq!(prov.policies.len(), 2);
        assert_eq!(prov.policies[1].min_device_password_length, Some(6));
        assert_eq!(received_policy(&prov.policies[1]), lab_policy(&lab));
        assert_ne!(session.state().policy_key, Some(first_key));
        assert_key_matches_lab(&lab, &session, &account.device_id);
        let device = lab.device(&account.device_id);
        assert_eq!(device["acks"], serde_json::json!([1, 1]));
        assert_eq!(
            device["policy_generation"],
            lab.state()["policy"]["generation"]
        );

        // An unknown key (144) is repaired the same way.
        session.set_policy_key(Some(first_key));
        folder_sync(&mut session, &mut prov, "0");
        assert_eq!(prov.rounds, 3);
        assert_key_matches_lab(&lab, &session, &account.device_id);
    }
}

#[test]
fn full_compliance_refuses_a_partial_ack_with_139_and_stops() {
    let lab = lab_with(|c| c.require_full_compliance = true);
    let (account, mut session) = session_at(&lab, "p139", V16_1);

    // The Provision flow by hand: the refusal is a clear failure with Action::Blocked.
    let mut flow = Provisioning::new(V16_1, Some(client::device_information()));
    let request = flow.start().unwrap();
    let response = send_provision(&mut session, &request);
    let Next::Apply(_) = flow.on_response(response).unwrap() else {
        panic!("phase 1 gives a policy");
    };
    let request = flow.acknowledge(AckStatus::PartiallyApplied).unwrap();
    let response = send_provision(&mut session, &request);
    assert_eq!(
        response.status,
        ProvisionStatus::Common(CommonStatus::DeviceNotFullyProvisionable)
    );
    match flow.on_response(response).unwrap() {
        Next::Failed { reason, action } => {
            assert_eq!(action, Action::Blocked);
            assert!(reason.contains("policy"), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(
        lab.device(&account.device_id)["acks"],
        serde_json::json!([2])
    );
    assert_eq!(
        lab.device(&account.device_id)["policy_key"],
        serde_json::Value::Null
    );

    // Through execute: one round, an error, no loop.
    let mut prov = TestProvisioner {
        ack: AckStatus::NotApplied,
        ..TestProvisioner::default()
    };
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(matches!(err, Error::ProvisioningRefused { .. }), "{err:?}");
    assert_eq!(prov.rounds, 1);
    let message = err.to_string();
    assert!(
        message.contains("139") && message.contains("whole security policy"),
        "{message}"
    );
    assert_eq!(
        lab.device(&account.device_id)["acks"],
        serde_json::json!([2, 3])
    );
    assert_eq!(session.state().policy_key, None);
}

fn send_provision(session: &mut Session, request: &eas::Request) -> provision::ProvisionResponse {
    let version = session.state().version;
    let response = session.send(request, None, TIMEOUT).expect("Provision");
    provision::read_response(&mut response.parser(version)).expect("Provision response")
}

#[test]
fn device_information_is_required_on_14_1_and_later() {
    let lab = default_lab();
    for version in [V14_1, V16_1] {
        let (account, mut session) = session_at(&lab, "p165", version);
        let request = provision::policy_request(version, None).unwrap();
        let response = send_provision(&mut session, &request);
        assert_eq!(
            response.status,
            ProvisionStatus::Common(CommonStatus::DeviceInformationRequired)
        );
        assert_eq!(response.status.action(), Action::SendDeviceInformation);
        assert_eq!(response.policy, None);
        let mut flow = Provisioning::new(version, None);
        flow.start().unwrap();
        assert_eq!(
            flow.on_response(response).unwrap(),
            Next::Failed {
                reason: CommonStatus::DeviceInformationRequired.to_string(),
                action: Action::SendDeviceInformation
            }
        );

        // With DeviceInformation the same request gets the policy, and the lab keeps it.
        let info = client::device_information();
        let request = provision::policy_request(version, Some(&info)).unwrap();
        let response = send_provision(&mut session, &request);
        assert_eq!(response.status, ProvisionStatus::Success);
        assert_eq!(response.device_information, Some(SettingsStatus::Success));
        let recorded = &lab.device(&account.device_id)["device_information"];
        assert_eq!(recorded["Model"], "QEMU virt", "{recorded}");
        assert_eq!(recorded["FriendlyName"], "easync test device");
        assert_eq!(recorded["OS"], "Linux");
    }
}

#[test]
fn device_information_goes_through_settings_on_12_1_and_14_0() {
    let lab = default_lab();
    for version in [V12_1, V14_0] {
        let (account, mut session) = session_at(&lab, "pset", version);
        let mut prov = TestProvisioner::default();
        let response = session
            .execute(
                |s| {
                    settings::request(
                        s.version,
                        &[Operation::DeviceInformationSet(client::device_information())],
                    )
                },
                settings::read_response,
                &mut prov,
                TIMEOUT,
            )
            .expect("Settings");
        assert_eq!(response.status, SettingsStatus::Success, "{version}");
        assert_eq!(response.device_information, Some(SettingsStatus::Success));
        let recorded = &lab.device(&account.device_id)["device_information"];
        assert_eq!(recorded["Model"], "QEMU virt", "{version}: {recorded}");
        assert_eq!(recorded["OSLanguage"], "English");
        assert_eq!(recorded["UserAgent"], "easync-test");
        // Settings needs the policy key like any command: provisioning came first.
        assert_eq!(prov.rounds, 1);
        assert_eq!(
            lab.device(&account.device_id)["acks"],
            serde_json::json!([1])
        );
    }
}

#[test]
fn a_lab_without_policy_needs_no_key() {
    let lab = lab_with(|c| c.policy = Vec::new());
    for version in [V12_1, V16_1] {
        let (account, mut session) = session_at(&lab, "nopol", version);
        let mut prov = TestProvisioner::default();
        // Commands work at once, without any key.
        let response = folder_sync(&mut session, &mut prov, "0");
        assert_eq!(response.status, FolderSyncStatus::Success);
        assert_eq!(prov.rounds, 0);
        // An explicit Provision says there is no policy.
        prov.provision(&mut session).unwrap();
        assert_eq!(prov.last, Some(Provisioned::NoPolicy));
        assert!(prov.policies.is_empty());
        assert_eq!(session.state().policy_key, None);
        folder_sync(&mut session, &mut prov, "0");
        assert_eq!(prov.rounds, 1);
        let device = lab.device(&account.device_id);
        assert_eq!(device["policy_key"], serde_json::Value::Null);
        assert_eq!(device["acks"], serde_json::json!([]));
    }
}

/// Provisions, asks the lab for a wipe, and lets the client find out through a command.
fn wipe_case(
    version: ProtocolVersion,
    account_only: bool,
    wipe_status: WipeStatus,
) -> (serde_json::Value, TestProvisioner) {
    let lab = default_lab();
    let (account, mut session) = session_at(&lab, "wipe", version);
    let mut prov = TestProvisioner {
        wipe_status,
        ..TestProvisioner::default()
    };
    folder_sync(&mut session, &mut prov, "0");
    assert_eq!(prov.rounds, 1);
    lab.handle
        .request_wipe(Some(&account.device_id), account_only)
        .unwrap();

    // 140 makes the session run the provisioner, which receives the directive,
    // acknowledges it and stops the command: it is not repeated after a wipe.
    let requests = lab.device(&account.device_id)["requests"].as_u64().unwrap();
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(
        matches!(err, Error::RemoteWipe { account_only: a } if a == account_only),
        "{err:?}"
    );
    assert_eq!(prov.rounds, 2);
    let expected = if account_only {
        WipeDirective::AccountOnly
    } else {
        WipeDirective::Full
    };
    assert_eq!(prov.last, Some(Provisioned::Wiped(expected)));
    // FolderSync (140), Provision (directive), Provision (ack): nothing after the wipe.
    assert_eq!(
        lab.device(&account.device_id)["requests"].as_u64().unwrap(),
        requests + 3
    );
    let device = lab.device(&account.device_id);
    assert_eq!(device["policy_key"], serde_json::Value::Null);
    (device["wipe"].clone(), prov)
}

#[test]
fn remote_wipe_is_delivered_and_acknowledged() {
    let (wipe, _) = wipe_case(V14_1, false, WipeStatus::Succeeded);
    assert_eq!(
        wipe,
        serde_json::json!({"state": "acknowledged", "account_only": false, "status": 1})
    );
}

#[test]
fn account_only_wipe_on_16_1_is_delivered_and_acknowledged() {
    let (wipe, _) = wipe_case(V16_1, true, WipeStatus::Succeeded);
    assert_eq!(
        wipe,
        serde_json::json!({"state": "acknowledged", "account_only": true, "status": 1})
    );
}

#[test]
fn a_failed_wipe_is_acknowledged_as_failed() {
    let (wipe, _) = wipe_case(V16_1, false, WipeStatus::Failed);
    assert_eq!(
        wipe,
        serde_json::json!({"state": "acknowledged", "account_only": false, "status": 2})
    );
}

#[test]
fn v12_1_wipe_arrives_through_449_and_the_command_is_not_repeated() {
    let lab = default_lab();
    let (account, mut session) = session_at(&lab, "wipe121", V12_1);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    lab.handle
        .request_wipe(Some(&account.device_id), false)
        .unwrap();
    let requests = lab.device(&account.device_id)["requests"].as_u64().unwrap();
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RemoteWipe {
                account_only: false
            }
        ),
        "{err:?}"
    );
    assert_eq!(prov.rounds, 2);
    assert_eq!(prov.last, Some(Provisioned::Wiped(WipeDirective::Full)));
    let device = lab.device(&account.device_id);
    assert_eq!(
        device["wipe"],
        serde_json::json!({"state": "acknowledged", "account_only": false, "status": 1})
    );
    // FolderSync (449), Provision (directive), Provision (ack): nothing after the wipe.
    assert_eq!(device["requests"].as_u64().unwrap(), requests + 3);
}

#[test]
fn endless_provisioning_demands_end_in_provisioning_loop() {
    let lab = default_lab();
    let (account, mut session) = session_at(&lab, "loop", V12_1);
    lab.handle.inject_fault(Fault {
        count: 10,
        ..fault(FaultKind::RetryWith, "FolderSync")
    });
    let mut prov = TestProvisioner::default();
    let started = Instant::now();
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(
        matches!(err, Error::ProvisioningLoop { attempts: 2 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("policy"), "{err}");
    assert_eq!(prov.rounds, 2);
    assert!(started.elapsed() < Duration::from_secs(20));
    // Three FolderSyncs took three of the ten faults; each round really provisioned.
    assert_eq!(lab.state()["faults"][0]["count"], 7);
    assert_eq!(
        lab.device(&account.device_id)["acks"],
        serde_json::json!([1, 1])
    );
}

// ---------------------------------------------------------------------------------------
// Injected faults.

#[test]
fn fault_retry_with_provisions_and_repeats() {
    let lab = default_lab();
    let (account, mut session) = session_at(&lab, "f449", V16_1);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    let first_key = session.state().policy_key;
    lab.handle
        .inject_fault(fault(FaultKind::RetryWith, "FolderSync"));
    let response = folder_sync(&mut session, &mut prov, "0");
    assert_eq!(response.status, FolderSyncStatus::Success);
    assert_eq!(prov.rounds, 2);
    assert_ne!(session.state().policy_key, first_key);
    assert_key_matches_lab(&lab, &session, &account.device_id);
    assert!(lab.state()["faults"].as_array().unwrap().is_empty());
}

/// The lab's alias endpoint on the listener `url` points at.
fn alias_of(url: &str) -> String {
    url.replace(
        lab_server::EAS_PATH,
        "/lab-alias/Microsoft-Server-ActiveSync",
    )
}

#[test]
fn redirect_is_followed_and_remembered() {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, "f451", V16_1);
    let original = session.state().url.clone();
    let mut prov = TestProvisioner::default();
    lab.handle
        .inject_fault(fault(FaultKind::Redirect, "FolderSync"));
    let response = folder_sync(&mut session, &mut prov, "0");
    assert_eq!(response.status, FolderSyncStatus::Success);
    assert_eq!(session.state().url, alias_of(&original));
    assert!(lab.state()["faults"].as_array().unwrap().is_empty());

    // Later requests go to the new URL: point the mailbox at a second lab and watch it.
    let other = lab_with(|c| c.policy = Vec::new());
    let other_url = other.handle.http_url().unwrap();
    lab.handle.inject_fault(Fault {
        location: Some(other_url.clone()),
        ..fault(FaultKind::Redirect, "FolderSync")
    });
    folder_sync(&mut session, &mut prov, "0");
    assert_eq!(session.state().url, other_url);
    let device_id = session.client().config().device_id.clone();
    let before = lab.device(&device_id)["requests"].as_u64().unwrap();
    for _ in 0..2 {
        folder_sync(&mut session, &mut prov, "0");
    }
    assert_eq!(lab.device(&device_id)["requests"].as_u64().unwrap(), before);
    assert_eq!(other.device(&device_id)["requests"], 3);
}

#[test]
fn redirect_cycles_and_chains_are_bounded() {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, "fcyc", V16_1);
    let original = session.state().url.clone();
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    // main → alias → main.
    lab.handle
        .inject_fault(fault(FaultKind::Redirect, "FolderSync"));
    lab.handle.inject_fault(Fault {
        location: Some(original.clone()),
        ..fault(FaultKind::Redirect, "FolderSync")
    });
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(
        matches!(&err, Error::RedirectLoop { url } if *url == original),
        "{err:?}"
    );
    assert_eq!(session.state().url, original, "the URL is kept on failure");
    assert!(lab.state()["faults"].as_array().unwrap().is_empty());

    // A chain longer than allowed.
    session.set_retry_policy(RetryPolicy {
        max_redirects: 0,
        ..RetryPolicy::default()
    });
    lab.handle
        .inject_fault(fault(FaultKind::Redirect, "FolderSync"));
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(
        matches!(err, Error::TooManyRedirects { hops: 0 }),
        "{err:?}"
    );
    assert_eq!(session.state().url, original);
}

/// Records the waits the session asks for instead of sleeping.
fn recording_sleeper(session: &mut Session) -> Arc<Mutex<Vec<Duration>>> {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let record = waits.clone();
    session.set_sleeper(move |d| record.lock().unwrap().push(d));
    waits
}

#[test]
fn throttle_with_a_short_retry_after_is_waited_out() {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, "f503", V16_1);
    let waits = recording_sleeper(&mut session);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    lab.handle.inject_fault(Fault {
        retry_after: Some("1".into()),
        ..fault(FaultKind::Throttle, "FolderSync")
    });
    let response = folder_sync(&mut session, &mut prov, "0");
    assert_eq!(response.status, FolderSyncStatus::Success);
    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(waits[0] >= Duration::from_secs(1), "{waits:?}");
    assert!(waits[0] <= Duration::from_secs(2), "{waits:?}");
    assert!(lab.state()["faults"].as_array().unwrap().is_empty());
}

#[test]
fn throttle_for_a_week_is_returned_at_once() {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, "f503w", V16_1);
    let waits = recording_sleeper(&mut session);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    lab.handle.inject_fault(Fault {
        retry_after: Some("604800".into()),
        ..fault(FaultKind::Throttle, "FolderSync")
    });
    let started = Instant::now();
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    match &err {
        Error::Throttled { retry_after, .. } => assert_eq!(
            *retry_after,
            Some(RetryAfter::Delay(Duration::from_secs(604_800)))
        ),
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert!(err.is_transient());
    assert!(waits.lock().unwrap().is_empty());
}

/// An IMF-fixdate (RFC 9110) for `t`.
fn http_date(t: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let days = (secs / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % 86_400;
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn throttle_with_an_http_date_is_waited_out() {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, "f503d", V16_1);
    let waits = recording_sleeper(&mut session);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    let date = http_date(SystemTime::now() + Duration::from_secs(30));
    lab.handle.inject_fault(Fault {
        retry_after: Some(date),
        ..fault(FaultKind::Throttle, "FolderSync")
    });
    let response = folder_sync(&mut session, &mut prov, "0");
    assert_eq!(response.status, FolderSyncStatus::Success);
    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(
        waits[0] >= Duration::from_secs(25) && waits[0] <= Duration::from_secs(31),
        "{waits:?}"
    );
}

#[test]
fn server_error_is_http_500() {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, "f500", V16_1);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    lab.handle
        .inject_fault(fault(FaultKind::ServerError, "FolderSync"));
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(matches!(err, Error::Http { status: 500 }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("try again later"), "{err}");
    // The next attempt is fine.
    folder_sync(&mut session, &mut prov, "0");
    assert_eq!(prov.rounds, 1);
}

#[test]
fn slow_answers_time_out_or_arrive() {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, "fslow", V16_1);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    lab.handle.inject_fault(Fault {
        delay_ms: Some(1500),
        ..fault(FaultKind::Slow, "FolderSync")
    });
    let started = Instant::now();
    let err = session
        .execute(
            |s| folder::folder_sync_request(s.version, "0"),
            folder::read_folder_sync_response,
            &mut prov,
            Duration::from_millis(300),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { .. }),
        "{err:?} after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_millis(1400));
    assert!(err.is_transient());

    lab.handle.inject_fault(Fault {
        delay_ms: Some(300),
        ..fault(FaultKind::Slow, "FolderSync")
    });
    let started = Instant::now();
    let response = folder_sync(&mut session, &mut prov, "0");
    assert_eq!(response.status, FolderSyncStatus::Success);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// A provisioned 16.1 session with the Inbox synchronized once from "0": (lab, session,
/// provisioner, inbox id, SyncKey after the initial Sync).
fn inbox_ready(tag: &str) -> (Lab, Session, TestProvisioner, String, String) {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, tag, V16_1);
    let mut prov = TestProvisioner::default();
    let hierarchy = folder_sync(&mut session, &mut prov, "0");
    let inbox = folder_of_type(&folders(&hierarchy), FolderType::Inbox).server_id;
    let initial = SyncRequest {
        collections: vec![CollectionRequest::initial(&inbox, Class::Email)],
        ..SyncRequest::default()
    };
    let mut out = Collected::default();
    let key = match client::sync_once(&mut session, &mut prov, &initial, &mut out) {
        SyncOutcome::Response(r) => r.collections[0].sync_key.clone().unwrap(),
        SyncOutcome::Unchanged => panic!("the initial Sync came back empty"),
    };
    (lab, session, prov, inbox, key)
}

fn inbox_sync(inbox: &str, key: &str) -> SyncRequest {
    let mut c = CollectionRequest::new(key, inbox, Class::Email);
    c.get_changes = Some(true);
    c.window_size = Some(100);
    SyncRequest {
        collections: vec![c],
        ..SyncRequest::default()
    }
}

fn try_sync(
    session: &mut Session,
    prov: &mut TestProvisioner,
    req: &SyncRequest,
    out: &mut Collected,
) -> easync::transport::Result<SyncOutcome> {
    session.execute(
        |s| sync::request(s.version, req),
        |p| sync::read_response(p, out),
        prov,
        TIMEOUT,
    )
}

fn ids(out: &Collected) -> Vec<String> {
    out.added.iter().map(|i| i.server_id.clone()).collect()
}

/// After a broken Sync with `key`: no collection was finished (so no SyncKey would have been
/// committed), and the same Sync again yields every item of the folder, including those the
/// broken one had begun to deliver.
fn retry_after_broken_sync(
    lab: &Lab,
    session: &mut Session,
    prov: &mut TestProvisioner,
    inbox: &str,
    key: &str,
    broken: &Collected,
) {
    assert!(
        broken.headers.is_empty(),
        "end_collection was called: {:?}",
        broken.headers
    );
    let mut again = Collected::default();
    let outcome = try_sync(session, prov, &inbox_sync(inbox, key), &mut again).expect("retry");
    let SyncOutcome::Response(r) = outcome else {
        panic!("the retry came back empty");
    };
    let header = &r.collections[0];
    assert_eq!(header.status(), sync::Status::Success, "{header:?}");
    assert!(!header.more_available);
    let new_key = header.sync_key.clone().unwrap();
    assert_ne!(new_key, key);
    assert_eq!(again.headers.len(), 1);
    let got = ids(&again);
    assert_eq!(got.len() as u64, lab.folder_items(inbox));
    for id in ids(broken) {
        assert!(got.contains(&id), "{id} was lost in the retry");
    }
    // And the new key carries on with nothing pending.
    let mut after = Collected::default();
    let outcome = try_sync(session, prov, &inbox_sync(inbox, &new_key), &mut after).unwrap();
    if let SyncOutcome::Response(r) = outcome {
        assert_eq!(r.collections[0].status(), sync::Status::Success);
    }
    assert!(after.added.is_empty());
}

#[test]
fn reset_mid_sync_commits_nothing_and_the_old_key_still_works() {
    let (lab, mut session, mut prov, inbox, key) = inbox_ready("freset");
    lab.handle.inject_fault(fault(FaultKind::Reset, "Sync"));
    let mut broken = Collected::default();
    let err = try_sync(
        &mut session,
        &mut prov,
        &inbox_sync(&inbox, &key),
        &mut broken,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Network(m) if m.contains("closed the connection")),
        "{err:?}"
    );
    assert!(err.is_transient(), "a broken connection is worth retrying");
    retry_after_broken_sync(&lab, &mut session, &mut prov, &inbox, &key, &broken);
}

#[test]
fn truncated_sync_is_a_wbxml_error_and_commits_nothing() {
    let (lab, mut session, mut prov, inbox, key) = inbox_ready("ftrunc");
    lab.handle.inject_fault(fault(FaultKind::Truncate, "Sync"));
    let mut broken = Collected::default();
    let err = try_sync(
        &mut session,
        &mut prov,
        &inbox_sync(&inbox, &key),
        &mut broken,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Protocol(eas::Error::Wbxml {
                kind: easync::wbxml::ErrorKind::Truncated,
                ..
            })
        ),
        "{err:?}"
    );
    retry_after_broken_sync(&lab, &mut session, &mut prov, &inbox, &key, &broken);
}

#[test]
fn garbage_is_a_clear_error() {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, "fjunk", V16_1);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    lab.handle
        .inject_fault(fault(FaultKind::Garbage, "FolderSync"));
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(
        matches!(err, Error::Protocol(eas::Error::Wbxml { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("invalid WBXML"), "{err}");
    // The session is still usable.
    folder_sync(&mut session, &mut prov, "0");
}

// ---------------------------------------------------------------------------------------
// Authentication and TLS.

#[test]
fn wrong_password_is_unauthorized() {
    let lab = default_lab();
    let mut account = lab.account(false, "auth");
    account.password = "not-the-password".into();
    let mut session = Session::new(Client::new(account.config()).unwrap(), V16_1);
    let err = session.options(TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let err = try_folder_sync(&mut session, &mut TestProvisioner::default()).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("not-the-password"));
}

/// Hands out `current`; a refresh switches to `fresh` and counts.
struct Tokens {
    current: Mutex<String>,
    fresh: String,
    refreshes: AtomicUsize,
}

impl TokenProvider for Tokens {
    fn token(&self) -> easync::transport::Result<String> {
        Ok(self.current.lock().unwrap().clone())
    }

    fn refresh(&self) -> easync::transport::Result<String> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        *self.current.lock().unwrap() = self.fresh.clone();
        Ok(self.fresh.clone())
    }
}

fn bearer_session(lab: &Lab, tokens: Arc<Tokens>) -> Session {
    let account = lab.account(false, "bearer");
    let mut config = account.config();
    config.auth = Auth::Bearer(tokens);
    let mut session = Session::new(Client::new(config).unwrap(), V16_1);
    session.negotiate(Some(V16_1), TIMEOUT).expect("OPTIONS");
    session
}

#[test]
fn bearer_token_is_accepted() {
    let lab = lab_with(|c| c.bearer_tokens = vec!["good-token".into()]);
    let tokens = Arc::new(Tokens {
        current: Mutex::new("good-token".into()),
        fresh: "unused".into(),
        refreshes: AtomicUsize::new(0),
    });
    let mut session = bearer_session(&lab, tokens.clone());
    let mut prov = TestProvisioner::default();
    let response = folder_sync(&mut session, &mut prov, "0");
    assert_eq!(response.status, FolderSyncStatus::Success);
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 0);

    // A token the lab does not know is refused even after a refresh.
    let unknown = Arc::new(Tokens {
        current: Mutex::new("bogus".into()),
        fresh: "bogus-too".into(),
        refreshes: AtomicUsize::new(0),
    });
    let account = lab.account(false, "bearer");
    let mut config = account.config();
    config.auth = Auth::Bearer(unknown.clone());
    let mut session = Session::new(Client::new(config).unwrap(), V16_1);
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(unknown.refreshes.load(Ordering::SeqCst), 1);
}

#[test]
fn expired_bearer_token_is_refreshed_once() {
    let lab = lab_with(|c| {
        c.bearer_tokens = vec!["fresh-token".into()];
        c.expired_tokens = vec!["old-token".into()];
    });
    let tokens = Arc::new(Tokens {
        current: Mutex::new("old-token".into()),
        fresh: "fresh-token".into(),
        refreshes: AtomicUsize::new(0),
    });
    // OPTIONS already meets the expired token and refreshes it.
    let mut session = bearer_session(&lab, tokens.clone());
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);

    // A token that expires between commands: one refresh, and the command succeeds.
    *tokens.current.lock().unwrap() = "old-token".into();
    let response = folder_sync(&mut session, &mut prov, "0");
    assert_eq!(response.status, FolderSyncStatus::Success);
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 2);
}

/// A file in the temp directory holding `contents`, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(client::device_id(name));
        std::fs::write(&path, contents).expect("temp file written");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An https account of the lab's user trusting the lab CA.
fn https_account(lab: &Lab, tag: &str) -> Account {
    lab.account(true, tag)
}

/// Its transport configuration, trusting only `account.ca_file` (no system store).
fn https_config(account: &Account) -> easync::transport::Config {
    let mut config = account.config();
    config.tls.trust_store = None;
    config
}

#[test]
fn client_certificate_required_by_the_lab() {
    let lab = lab_with(|c| c.require_client_cert = true);
    let account = https_account(&lab, "cert");
    let (cert_pem, key_pem) = lab.handle.issue_client_cert("easync-test").unwrap();
    let cert = TempFile::new("cert.pem", &cert_pem);
    let key = TempFile::new("key.pem", &key_pem);

    let mut config = https_config(&account);
    config.tls.client_cert = Some(cert.0.clone());
    config.tls.client_key = Some(key.0.clone());
    let mut session = Session::new(Client::new(config).unwrap(), V16_1);
    session.negotiate(Some(V16_1), TIMEOUT).expect("OPTIONS");
    let mut prov = TestProvisioner::default();
    let response = folder_sync(&mut session, &mut prov, "0");
    assert_eq!(response.status, FolderSyncStatus::Success);

    let mut session = Session::new(Client::new(https_config(&account)).unwrap(), V16_1);
    let err = session.options(TIMEOUT).unwrap_err();
    assert!(
        matches!(err, Error::ClientCertificateRejected(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("client_cert"), "{err}");
}

#[test]
fn https_with_the_wrong_ca_is_not_trusted() {
    let lab = default_lab();
    let other = default_lab();
    let mut account = https_account(&lab, "wrongca");
    account.ca_file = Some(other.ca_file.clone());
    let mut session = Session::new(Client::new(https_config(&account)).unwrap(), V16_1);
    let err = session.options(TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::CertificateNotTrusted(_)), "{err:?}");
    assert!(err.to_string().contains("ca_file"), "{err}");

    // With the right CA the same account works.
    let account = https_account(&lab, "rightca");
    let mut session = Session::new(Client::new(https_config(&account)).unwrap(), V16_1);
    session.negotiate(Some(V16_1), TIMEOUT).expect("OPTIONS");
}

#[test]
fn an_expired_server_certificate_is_refused_and_named() {
    let lab = lab_with(|c| c.server_cert = lab_server::ServerCert::Expired);
    let account = https_account(&lab, "expired");
    let mut session = Session::new(Client::new(https_config(&account)).unwrap(), V16_1);
    let err = session.options(TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::CertificateExpired), "{err:?}");
    assert!(err.to_string().contains("device clock"), "{err}");
    // Refused in the handshake: no request reached the lab.
    assert_eq!(lab.handle.state()["devices"], serde_json::json!([]));
}

#[test]
fn a_server_certificate_for_another_host_is_refused_and_named() {
    let lab = lab_with(|c| c.server_cert = lab_server::ServerCert::WrongHost);
    let account = https_account(&lab, "wronghost");
    let mut session = Session::new(Client::new(https_config(&account)).unwrap(), V16_1);
    let err = session.options(TIMEOUT).unwrap_err();
    assert!(
        matches!(&err, Error::CertificateNameMismatch { host } if host.starts_with("127.0.0.1")),
        "{err:?}"
    );
    assert!(err.to_string().contains("server URL"), "{err}");
}

/// The lab's server certificate (DER), fetched with a plain rustls handshake.
fn lab_server_certificate(lab: &Lab) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::Write;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(lab.handle.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from("127.0.0.1").unwrap().to_owned(),
    )
    .unwrap();
    let mut tcp = std::net::TcpStream::connect(lab.handle.https_addr().unwrap()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("TLS handshake");
    }
    let cert = conn.peer_certificates().expect("a server certificate")[0].to_vec();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let _ = tcp.flush();
    cert
}

#[test]
fn spki_pin_of_the_lab_certificate() {
    let lab = default_lab();
    let pin = easync::transport::tls::spki_pin(&lab_server_certificate(&lab)).expect("a pin");
    let account = https_account(&lab, "pin");

    let mut config = https_config(&account);
    config.tls.pins = vec![pin.clone()];
    let mut session = Session::new(Client::new(config).unwrap(), V16_1);
    session.negotiate(Some(V16_1), TIMEOUT).expect("OPTIONS");
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");

    // The CA's key is not the server's key: pinning it is a mismatch.
    let ca_der =
        rustls::pki_types::CertificateDer::from_pem_slice(lab.handle.ca_pem().as_bytes()).unwrap();
    let wrong = easync::transport::tls::spki_pin(&ca_der).unwrap();
    assert_ne!(wrong, pin);
    let mut config = https_config(&account);
    config.tls.pins = vec![wrong];
    let mut session = Session::new(Client::new(config).unwrap(), V16_1);
    let err = session.options(TIMEOUT).unwrap_err();
    match &err {
        Error::PinMismatch { actual } => assert_eq!(*actual, pin),
        other => panic!("expected PinMismatch, got {other:?}"),
    }
}

#[test]
fn plain_http_is_refused_unless_allowed() {
    let lab = default_lab();
    let account = lab.account(false, "plain");
    let mut config = account.config();
    config.allow_insecure_http = false;
    let err = Client::new(config).unwrap_err();
    assert!(matches!(err, Error::InsecureHttp { .. }), "{err:?}");

    // An https session never follows a redirect to http.
    let https = https_account(&lab, "plainr");
    let mut session = https.session(Some(V16_1));
    let original = session.state().url.clone();
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    let requests_before = lab.device(&https.device_id)["requests"].as_u64().unwrap();
    lab.handle.inject_fault(Fault {
        location: Some(lab.handle.http_url().unwrap()),
        ..fault(FaultKind::Redirect, "FolderSync")
    });
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(matches!(err, Error::InsecureHttp { .. }), "{err:?}");
    assert_eq!(session.state().url, original);
    assert_eq!(
        lab.device(&https.device_id)["requests"].as_u64().unwrap(),
        requests_before + 1
    );
    let err = session.set_url(lab.handle.http_url().unwrap()).unwrap_err();
    assert!(matches!(err, Error::InsecureHttp { .. }), "{err:?}");
}

#[test]
fn a_captive_portal_page_or_an_empty_answer_is_a_clear_transient_error() {
    let lab = default_lab();
    let (_, mut session) = session_at(&lab, "fportal", V16_1);
    let mut prov = TestProvisioner::default();
    folder_sync(&mut session, &mut prov, "0");
    // A captive portal's sign-in page is named as such, and worth trying again later.
    lab.handle
        .inject_fault(fault(FaultKind::CaptivePortal, "FolderSync"));
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(
        matches!(&err, Error::WebPage { content_type } if content_type.starts_with("text/html")),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("captive portal"), "{err}");
    folder_sync(&mut session, &mut prov, "0");
    // An empty 200 where FolderSync needs a body is a protocol error, not an empty list.
    lab.handle
        .inject_fault(fault(FaultKind::Empty, "FolderSync"));
    let err = try_folder_sync(&mut session, &mut prov).unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    assert!(err.to_string().contains("empty"), "{err}");
    // Neither was counted as an answer: the next attempt is fine.
    folder_sync(&mut session, &mut prov, "0");
    assert_eq!(prov.rounds, 1);
}

#[test]
fn a_captive_portal_answering_options_is_named_and_an_empty_options_is_not_a_server() {
    let lab = default_lab();
    let account = lab.account(false, "fportalopt");
    let client = Client::new(account.config()).unwrap();
    let mut session = Session::new(client, V16_1);
    lab.handle
        .inject_fault(fault(FaultKind::CaptivePortal, "OPTIONS"));
    let err = session.negotiate(None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::WebPage { .. }), "{err:?}");
    assert!(err.to_string().contains("captive portal"), "{err}");
    // An answer without the version headers is no ActiveSync server either.
    lab.handle.inject_fault(fault(FaultKind::Empty, "OPTIONS"));
    let err = session.negotiate(None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::Negotiation(_)), "{err:?}");
    // The faults aimed at OPTIONS never touch commands, and the real answer negotiates.
    session.negotiate(None, TIMEOUT).unwrap();
    assert_eq!(session.state().version, V16_1);
}
