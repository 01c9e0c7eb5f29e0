//! The policy hooks drive an honest acknowledgement against the lab: every element applied
//! → status 1, some → 2, none → 3, and a lab that requires full compliance refusing a
//! partial one → the cycle stops "blocked by policy" naming the missing elements.

#![cfg(feature = "lab")]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::lab::Lab;
use common::setup::{Setup, TempDir};
use easync::config::Config;
use easync::eas::provision::AckStatus;
use easync::engine::account::Account;
use easync::engine::reaction::Reaction;
use serde_json::json;

/// A password rule set (the `device_lock` hook's) and a camera ban (the `policy` hook's).
fn lab_with_policy(require_full_compliance: bool) -> Lab {
    let mut config = Lab::default_config();
    config.policy = [
        ("DevicePasswordEnabled", "1"),
        ("MinDevicePasswordLength", "6"),
        ("AllowCamera", "0"),
        ("AllowWiFi", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    config.require_full_compliance = require_full_compliance;
    Lab::start(config)
}

/// Hook scripts in a private directory: `(key, script body)` pairs become the `[hooks]`
/// table. Each hook also records that it ran (its environment) in `<key>.ran`.
struct Hooks {
    dir: TempDir,
    table: String,
}

impl Hooks {
    fn new(tag: &str, hooks: &[(&str, &str)]) -> Hooks {
        let dir = TempDir::new(&format!("hooks-{tag}"));
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut table = String::from("[hooks]\ntimeout = \"20s\"\n");
        for (key, body) in hooks {
            let path = dir.0.join(key);
            let ran = dir.0.join(format!("{key}.ran"));
            std::fs::write(
                &path,
                format!("#!/bin/sh\nenv > '{}'\n{body}\n", ran.display()),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
            table.push_str(&format!("{key} = {:?}\n", path.display().to_string()));
        }
        Hooks { dir, table }
    }

    fn ran(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.0.join(format!("{key}.ran"))).ok()
    }
}

fn account(lab: &Lab, hooks: &Hooks, tag: &str) -> (Setup, Account) {
    let url = lab.handle.http_url().unwrap();
    let setup = Setup::new(&url, lab.handle.user(), "labpass", None, tag, &hooks.table);
    let config = Config::load(&setup.config_path).expect("the configuration with hooks loads");
    assert!(config.hooks().any());
    (setup, Account::new(config))
}

#[test]
fn every_element_applied_acknowledges_1() {
    let lab = lab_with_policy(false);
    let hooks = Hooks::new("all", &[("device_lock", "exit 0"), ("policy", "exit 0")]);
    let (setup, mut account) = account(&lab, &hooks, "hooksall");
    account
        .run_once(&mut |_| {})
        .unwrap_or_else(|e| panic!("run_once failed: {e}"));
    assert_eq!(lab.device(&setup.device_id)["acks"], json!([1]));
    let verdict = account.compliance().expect("a verdict");
    assert_eq!(verdict.status, AckStatus::Applied);
    assert!(verdict.missing.is_empty(), "{verdict:?}");
    let env = hooks.ran("device_lock").expect("device_lock ran");
    assert!(
        env.contains("EASYNC_POLICY_MinDevicePasswordLength=6"),
        "{env}"
    );
    let env = hooks.ran("policy").expect("policy ran");
    assert!(env.contains("EASYNC_POLICY_AllowCamera=0"), "{env}");
}

#[test]
fn some_elements_applied_acknowledges_2() {
    let lab = lab_with_policy(false);
    // The password rules are applied, the camera cannot be switched off here.
    let hooks = Hooks::new("some", &[("device_lock", "exit 0"), ("policy", "exit 3")]);
    let (setup, mut account) = account(&lab, &hooks, "hookssome");
    account
        .run_once(&mut |_| {})
        .unwrap_or_else(|e| panic!("run_once failed: {e}"));
    assert_eq!(lab.device(&setup.device_id)["acks"], json!([2]));
    let verdict = account.compliance().expect("a verdict");
    assert_eq!(verdict.status, AckStatus::PartiallyApplied);
    assert_eq!(verdict.missing, vec!["AllowCamera"]);
}

#[test]
fn nothing_applied_acknowledges_3_and_bad_output_is_no_compliance() {
    let lab = lab_with_policy(false);
    // A hook that claims "partly" without saying what is an error, never compliance.
    let hooks = Hooks::new(
        "none",
        &[
            ("device_lock", "echo applied; exit 2"),
            ("policy", "exit 3"),
        ],
    );
    let (setup, mut account) = account(&lab, &hooks, "hooksnone");
    account
        .run_once(&mut |_| {})
        .unwrap_or_else(|e| panic!("run_once failed: {e}"));
    assert_eq!(lab.device(&setup.device_id)["acks"], json!([3]));
    let verdict = account.compliance().expect("a verdict");
    assert_eq!(verdict.status, AckStatus::NotApplied);
    assert_eq!(
        verdict.missing,
        vec![
            "DevicePasswordEnabled",
            "MinDevicePasswordLength",
            "AllowCamera"
        ]
    );
    assert_eq!(verdict.errors.len(), 1, "{verdict:?}");
    assert!(verdict.errors[0].contains("device_lock"), "{verdict:?}");
}

#[test]
fn partial_compliance_refused_by_the_server_is_blocked_by_policy() {
    let lab = lab_with_policy(true);
    let hooks = Hooks::new("refused", &[("device_lock", "exit 0")]);
    let (setup, mut account) = account(&lab, &hooks, "hooksrefused");
    let err = account
        .run_once(&mut |_| {})
        .expect_err("the server refuses partial compliance");
    let message = err.to_string();
    assert!(message.contains("139"), "{message}");
    assert!(message.contains("blocked by policy"), "{message}");
    assert!(message.contains("AllowCamera"), "{message}");
    assert!(!message.contains("MinDevicePasswordLength"), "{message}");
    assert!(
        matches!(err.reaction(), Some(Reaction::Blocked { .. })),
        "{:?}",
        err.reaction()
    );
    assert_eq!(lab.device(&setup.device_id)["acks"], json!([2]));
    assert!(hooks.ran("device_lock").is_some());
}

#[test]
fn sogo_sends_no_policy_and_no_hook_runs() {
    let Ok(url) = std::env::var("EASYNC_SOGO_URL") else {
        eprintln!("SKIPPED: the SOGo peer is not running (run tests/run.sh)");
        return;
    };
    let ca = std::env::var_os("EASYNC_SOGO_CA").map(std::path::PathBuf::from);
    let hooks = Hooks::new(
        "sogo",
        &[
            ("device_lock", "exit 0"),
            ("storage_encryption", "exit 0"),
            ("policy", "exit 0"),
        ],
    );
    let setup = Setup::new(
        &url,
        "easuser",
        "easpass",
        ca.as_deref(),
        "hookssogo",
        &hooks.table,
    );
    let config = Config::load(&setup.config_path).expect("the configuration with hooks loads");
    let mut account = Account::new(config);
    let summary = account
        .run_once(&mut |_| {})
        .unwrap_or_else(|e| panic!("the cycle against SOGo: {e}"));
    assert!(!summary.classes.is_empty(), "{summary}");
    // SOGo answers Provision with "no policy": nothing to enforce, so no hook is asked and
    // nothing is recorded as missing.
    for key in ["device_lock", "storage_encryption", "policy"] {
        assert!(
            hooks.ran(key).is_none(),
            "the {key} hook ran without a policy"
        );
    }
    if let Some(compliance) = account.compliance() {
        assert!(compliance.missing.is_empty(), "{compliance:?}");
    }
}
