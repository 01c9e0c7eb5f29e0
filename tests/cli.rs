//! `easyncctl` as a user runs it: `wbxml decode|encode` on files and pipes, and `demo`; exit
//! codes and messages.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn easyncctl(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_easyncctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("easyncctl starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/sync-response.wbxml");

#[cfg(feature = "xml")]
#[test]
fn decode_then_encode_gives_the_sample_back_byte_for_byte() {
    let original = std::fs::read(SAMPLE).unwrap();
    let decoded = easyncctl(&["wbxml", "decode", SAMPLE], b"");
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let xml = String::from_utf8(decoded.stdout).unwrap();
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Sync xmlns=\"AirSync:\">")
    );
    assert!(xml.contains(
        "<email:Subject xmlns:email=\"Email:\">Work order 4711: replace pump seal</email:Subject>"
    ));
    assert!(xml.contains("opaque=\"base64\">/O5ZVJbGRkSLb2Ee3kPHyA==</email2:ConversationId>"));
    assert!(xml.contains("&#13;\n"));

    // Through a pipe this time, with `-` for standard input.
    let encoded = easyncctl(&["wbxml", "encode", "-"], xml.as_bytes());
    assert!(
        encoded.status.success(),
        "{}",
        String::from_utf8_lossy(&encoded.stderr)
    );
    assert_eq!(encoded.stdout, original);
}

#[test]
fn output_file_option() {
    let dir = std::env::temp_dir().join(format!("easyncctl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.xml");
    let run = easyncctl(
        &["wbxml", "decode", "-o", out.to_str().unwrap(), SAMPLE],
        b"",
    );
    assert!(run.status.success());
    assert!(run.stdout.is_empty());
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("<SyncKey>1853612904</SyncKey>")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_input_is_refused_with_the_offset() {
    let mut doc = std::fs::read(SAMPLE).unwrap();
    doc.truncate(100);
    let run = easyncctl(&["wbxml", "decode"], &doc);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("bad WBXML at byte 100") && err.contains("ends in the middle"),
        "{err}"
    );

    let run = easyncctl(
        &["wbxml", "decode"],
        b"\x03\x01\x6A\x00\x45\x03a\xFFb\x00\x01",
    );
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("byte 7") && err.contains("not valid UTF-8"),
        "{err}"
    );
}

#[test]
fn protocol_option_refuses_tags_of_later_versions() {
    // Find:Find exists only in 16.1.
    let doc = b"\x03\x01\x6A\x00\x00\x19\x05";
    assert!(
        easyncctl(&["wbxml", "decode", "--protocol", "16.1"], doc)
            .status
            .success()
    );
    let run = easyncctl(&["wbxml", "decode", "--protocol", "14.1"], doc);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("does not exist in protocol version 14.1")
    );
}

#[cfg(feature = "xml")]
#[test]
fn bad_xml_is_refused_with_line_and_column() {
    let run = easyncctl(
        &["wbxml", "encode"],
        b"<Sync xmlns=\"AirSync:\">\n  <Bogus/>\n</Sync>\n",
    );
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("line 2") && err.contains("Bogus"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    for args in [
        &["wbxml"][..],
        &["wbxml", "frobnicate"],
        &["nothing"],
        &["wbxml", "decode", "a", "b"],
        &["wbxml", "decode", "--protocol", "9.9"],
    ] {
        let run = easyncctl(args, b"");
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&run.stderr).contains("usage:"));
    }
    let run = easyncctl(&["--help"], b"");
    assert_eq!(run.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&run.stdout).contains("wbxml decode"));
    let run = easyncctl(&["wbxml", "decode", "/nonexistent/file"], b"");
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("cannot open /nonexistent/file"));
}

/// Every regular file under `dir`, relative, without the state folder.
#[cfg(feature = "lab")]
fn data_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.retain(|f| !f.starts_with("state/"));
    out.sort();
    out
}

#[cfg(feature = "lab")]
#[test]
fn the_demo_syncs_every_class_receives_a_push_and_says_where_the_data_is() {
    let parent = std::env::temp_dir().join(format!("easyncctl-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).unwrap();
    let dir = parent.join("demo");
    let dir_arg = dir.to_str().unwrap();
    let run = easyncctl(&["demo", "--dir", dir_arg, "--items", "40"], b"");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("initial sync done"), "{stdout}");
    assert!(stdout.contains("pushed: it arrived"), "{stdout}");
    assert!(stdout.contains("The data is in"), "{stdout}");
    let files = data_files(&dir.join("data"));
    let count = |prefix: &str, ext: &str| {
        files
            .iter()
            .filter(|f| f.starts_with(prefix) && f.ends_with(ext) && !f.contains("/tmp/"))
            .count()
    };
    // 40 mails + the pushed one, 20 contacts, 10 events, tasks and notes.
    assert_eq!(count("mail/", ""), 41, "{files:?}");
    assert_eq!(count("contacts/", ".vcf"), 20);
    assert_eq!(count("calendar/", ".ics"), 10);
    assert_eq!(count("tasks/", ".ics"), 10);
    assert_eq!(count("notes/", ".txt"), 10);
    let pushed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("the pushed mail: cat "))
        .expect("the demo names the pushed mail's file");
    let text = std::fs::read_to_string(pushed).unwrap();
    assert!(text.contains("came by push"), "{text}");

    // A second run recreates the folder; a folder the demo did not make is refused.
    let again = easyncctl(&["demo", "--dir", dir_arg, "--items", "4"], b"");
    assert!(again.status.success());
    assert_eq!(
        data_files(&dir.join("data"))
            .iter()
            .filter(|f| f.starts_with("mail/"))
            .count(),
        5
    );
    let foreign = parent.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "keep me").unwrap();
    let refused = easyncctl(&["demo", "--dir", foreign.to_str().unwrap()], b"");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not made by the demo"));
    assert_eq!(
        std::fs::read_to_string(foreign.join("precious.txt")).unwrap(),
        "keep me"
    );
    std::fs::remove_dir_all(&parent).unwrap();
}
