//! `easyncctl diagnose` (the built binary) against the in-process lab: every check passes
//! over HTTPS with the lab's CA (and the dry run acknowledges nothing and writes no state),
//! a wrong password fails `auth` with the seed advice, a closed port fails `tcp`, a server
//! signed by a CA the device does not trust fails `tls` naming the problem and showing the
//! chain, the hooks' verdict shows in `provision`, and `--json` carries the same checks.

#![cfg(feature = "lab")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::lab::Lab;
use common::setup::Setup;
use serde_json::Value;

const CHECKS: [&str; 7] = ["config", "dns", "tcp", "tls", "auth", "provision", "ping"];

fn diagnose(setup: &Setup, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easyncctl"))
        .arg("diagnose")
        .arg("--config")
        .arg(&setup.config_path)
        .args(["--timeout", "5"])
        .args(extra)
        .output()
        .expect("easyncctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// The report line of `check` (`STATUS  check: detail`).
fn line<'a>(text: &'a str, check: &str) -> &'a str {
    text.lines()
        .find(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|w| w == format!("{check}:"))
        })
        .unwrap_or_else(|| panic!("no {check} line in:\n{text}"))
}

fn https_setup(lab: &Lab, password: &str, with_ca: bool, tag: &str, extra: &str) -> Setup {
    let url = lab.handle.https_url().unwrap();
    let ca = with_ca.then_some(lab.ca_file.as_path());
    Setup::new(&url, lab.handle.user(), password, ca, tag, extra)
}

#[test]
fn every_check_passes_against_the_lab_over_https() {
    let lab = Lab::start(Lab::default_config());
    let setup = https_setup(&lab, "labpass", true, "diagok", "");
    let output = diagnose(&setup, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    for check in CHECKS {
        assert!(
            line(&text, check).starts_with("ok "),
            "{check} did not pass:\n{text}"
        );
    }
    assert!(line(&text, "dns").contains("127.0.0.1"), "{text}");
    let tls = line(&text, "tls");
    assert!(tls.contains("trusted through tls.ca_file"), "{tls}");
    // The chain explained: the lab's server certificate, issued by its CA, with its names.
    let server = text
        .lines()
        .find(|l| l.trim_start().starts_with("[server]"))
        .unwrap_or_else(|| panic!("no chain in:\n{text}"));
    assert!(server.contains("subject "), "{server}");
    assert!(server.contains("(valid now)"), "{server}");
    assert!(server.contains("127.0.0.1"), "{server}");
    assert!(line(&text, "auth").contains("using 16.1"), "{text}");
    // The lab has a policy and no hooks are configured: an honest 3, said with advice.
    let provision = line(&text, "provision");
    assert!(
        provision.contains("acknowledges 3 (not applied)"),
        "{provision}"
    );
    assert!(text.contains("blocked by policy"), "{text}");
    // A device the lab never saw has no folders to watch: Ping status 3, explained.
    assert!(line(&text, "ping").contains("status 3"), "{text}");
    assert!(text.contains("mail_age"), "the slow-sync tip: {text}");

    // A dry run: the lab got no acknowledgement and holds no policy key for the device,
    // and nothing was written to the data directory.
    let device = lab.device(&setup.device_id);
    assert_eq!(device["acks"], serde_json::json!([]), "{device}");
    assert!(device["policy_key"].is_null(), "{device}");
    assert!(!setup.data().join("state").exists());
}

#[test]
fn a_wrong_password_fails_auth_with_the_advice() {
    let lab = Lab::start(Lab::default_config());
    let setup = https_setup(&lab, "not-the-password", true, "diagpw", "");
    let output = diagnose(&setup, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for check in ["config", "dns", "tcp", "tls"] {
        assert!(line(&text, check).starts_with("ok "), "{text}");
    }
    let auth = line(&text, "auth");
    assert!(auth.starts_with("FAIL  auth:"), "{auth}");
    assert!(auth.contains("HTTP 401"), "{auth}");
    assert!(
        text.contains("advice: wrong password or locked account"),
        "{text}"
    );
    assert!(line(&text, "provision").starts_with("skip "), "{text}");
    assert!(line(&text, "ping").starts_with("skip "), "{text}");
}

#[test]
fn nothing_listening_fails_tcp_with_the_advice() {
    // A port that was just free: nothing listens on it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{port}/Microsoft-Server-ActiveSync");
    let setup = Setup::new(&url, "someone", "pw", None, "diagtcp", "");
    let output = diagnose(&setup, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(line(&text, "dns").starts_with("ok "), "{text}");
    let tcp = line(&text, "tcp");
    assert!(tcp.starts_with("FAIL  tcp:"), "{tcp}");
    assert!(tcp.contains(&format!("port {port}")), "{tcp}");
    assert!(text.contains("advice: server unreachable"), "{text}");
    assert!(
        text.contains(&format!("blocks the port ({port} for https)")),
        "{text}"
    );
    for check in ["tls", "auth", "provision", "ping"] {
        assert!(line(&text, check).starts_with("skip "), "{text}");
    }
}

#[test]
fn an_unknown_ca_fails_tls_naming_the_problem() {
    let lab = Lab::start(Lab::default_config());
    // No tls.ca_file: only the system store, which does not know the lab's CA.
    let setup = https_setup(&lab, "labpass", false, "diagca", "");
    let output = diagnose(&setup, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let tls = line(&text, "tls");
    assert!(tls.starts_with("FAIL  tls:"), "{tls}");
    assert!(tls.contains("unknown CA"), "{tls}");
    assert!(tls.contains("the system store"), "{tls}");
    assert!(text.contains("set tls.ca_file"), "{text}");
    // The chain the server sent is still shown.
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("[server]") && l.contains("issuer ")),
        "{text}"
    );
    assert!(line(&text, "auth").starts_with("skip "), "{text}");
}

#[test]
fn hooks_that_apply_everything_make_an_honest_1() {
    let lab = Lab::start(Lab::default_config());
    let hook = common::setup::TempDir::new("diaghook");
    let path = hook.0.join("policy");
    let ran = hook.0.join("ran");
    std::fs::write(
        &path,
        format!("#!/bin/sh\ntouch '{}'\nexit 0\n", ran.display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    let hooks = format!(
        "[hooks]\ndevice_lock = {p:?}\nstorage_encryption = {p:?}\npolicy = {p:?}\n",
        p = path.display().to_string()
    );
    let setup = https_setup(&lab, "labpass", true, "diaghooks", &hooks);
    let output = diagnose(&setup, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let provision = line(&text, "provision");
    assert!(provision.contains("the [hooks] ran"), "{provision}");
    assert!(
        provision.contains("acknowledges 1 (applied)"),
        "{provision}"
    );
    assert!(ran.exists(), "the hook ran");
    assert_eq!(lab.device(&setup.device_id)["acks"], serde_json::json!([]));
}

#[test]
fn json_output_carries_every_check() {
    let lab = Lab::start(Lab::default_config());
    let good = https_setup(&lab, "labpass", true, "diagjson", "");
    let output = diagnose(&good, &["--json"]);
    assert_eq!(output.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["ok"], true, "{report}");
    let checks = report["checks"].as_array().expect("checks");
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    for c in checks {
        assert_eq!(c["status"], "ok", "{c}");
        assert!(!c["detail"].as_str().unwrap().is_empty(), "{c}");
        assert!(c["advice"].is_array(), "{c}");
    }

    let bad = https_setup(&lab, "wrong", true, "diagjsonbad", "");
    let output = diagnose(&bad, &["--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["ok"], false);
    let auth = &report["checks"][4];
    assert_eq!(auth["name"], "auth");
    assert_eq!(auth["status"], "FAIL");
    assert!(
        auth["advice"][0]
            .as_str()
            .unwrap()
            .starts_with("wrong password or locked account"),
        "{auth}"
    );
    assert_eq!(report["checks"][6]["status"], "skip");
}

#[test]
fn a_pin_that_does_not_match_fails_tls() {
    let lab = Lab::start(Lab::default_config());
    let setup = https_setup(&lab, "labpass", true, "diagpin", "");
    // A well-formed pin of some other key, added to the [tls] table Setup wrote.
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let text = std::fs::read_to_string(&setup.config_path).unwrap();
    let text = text.replacen("[tls]\n", &format!("[tls]\npin_sha256 = [{other:?}]\n"), 1);
    std::fs::write(&setup.config_path, text).unwrap();
    let output = diagnose(&setup, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let tls = line(&text, "tls");
    assert!(tls.starts_with("FAIL  tls: pin mismatch"), "{tls}");
    assert!(tls.contains("1 pin(s)"), "{tls}");
    assert!(text.contains("update tls.pin_sha256"), "{text}");
}

#[test]
fn a_certificate_for_another_host_fails_tls_with_its_names() {
    // The lab's certificate names localhost and 127.0.0.1; reach it as 127.0.0.2.
    let mut config = Lab::default_config();
    config.http = None;
    config.admin = None;
    config.https = Some(std::net::SocketAddr::from(([127, 0, 0, 2], 0)));
    let handle = easync::lab::Server::start(config).expect("the lab starts");
    let url = handle.https_url().unwrap();
    assert!(url.starts_with("https://127.0.0.2:"), "{url}");
    let setup = Setup::new(&url, handle.user(), "labpass", None, "diagname", "");
    let ca = setup.dir.0.join("ca.pem");
    std::fs::write(&ca, handle.ca_pem()).unwrap();
    let text = std::fs::read_to_string(&setup.config_path).unwrap();
    let text = text.replacen(
        "[tls]\n",
        &format!("[tls]\nca_file = {:?}\n", ca.display().to_string()),
        1,
    );
    std::fs::write(&setup.config_path, text).unwrap();
    let output = diagnose(&setup, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let tls = line(&text, "tls");
    assert!(
        tls.starts_with("FAIL  tls: wrong host name: the certificate is not made out to 127.0.0.2"),
        "{tls}"
    );
    assert!(text.contains("names localhost, 127.0.0.1"), "{text}");
    handle.shutdown();
}

#[test]
fn a_pending_wipe_is_reported_and_never_acknowledged() {
    let lab = Lab::start(Lab::default_config());
    let setup = https_setup(&lab, "labpass", true, "diagwipe", "");
    assert_eq!(diagnose(&setup, &[]).status.code(), Some(0));
    lab.handle
        .request_wipe(Some(&setup.device_id), false)
        .expect("the lab knows the device");
    let output = diagnose(&setup, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let provision = line(&text, "provision");
    assert!(
        provision.starts_with("FAIL  provision: the server orders a remote wipe of this device"),
        "{provision}"
    );
    assert!(line(&text, "ping").starts_with("skip "), "{text}");
    // The directive went out but nothing acknowledged it: easyncd still gets to persist
    // the intent first.
    let device = lab.device(&setup.device_id);
    assert_eq!(device["wipe"]["state"], "sent", "{device}");
    assert!(!setup.data().join("state").exists());
    // And the server still has it to deliver.
    let again = stdout(&diagnose(&setup, &[]));
    assert!(
        line(&again, "provision").contains("orders a remote wipe"),
        "{again}"
    );
}
