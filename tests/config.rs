//! The configuration file as a field technician meets it: the shipped example
//! (`board/easync.toml`) parses and states the real defaults, every key's bad values and
//! unknown keys give messages naming the key and the fix, and the password file rules hold on
//! real files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use easync::config::{
    AgeFilter, AuthSource, Config, ConfigError, ConflictPolicy, Device, EasVersion, Push,
    QueryForm, Storage, SyncClass, SyncSettings, Tls,
};

const MINIMAL: &str =
    "[account]\nemail = \"j.doe@example.com\"\npassword_file = \"/etc/easync/password\"\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "easync.toml", None)
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("board/easync.toml")
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("easync-config-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn config_with_password_file(path: &Path) -> Config {
    parse(&format!(
        "[account]\nemail = \"a@example.com\"\npassword_file = \"{}\"\n",
        path.display()
    ))
    .unwrap()
}

#[test]
fn example_file_parses_and_states_the_defaults() {
    let config = Config::load(example_path()).unwrap();
    assert_eq!(config.account().email, "j.doe@example.com");
    assert_eq!(config.account().user, "j.doe@example.com");
    assert_eq!(config.account().server, None);
    assert_eq!(config.account().protocol_version, None);
    assert_eq!(config.account().query_form, QueryForm::Plain);
    assert_eq!(
        config.account().auth,
        AuthSource::PasswordFile("/etc/easync/password".into())
    );
    // Every uncommented line of the example is documented as the default.
    assert_eq!(config.tls(), &Tls::default());
    assert_eq!(config.storage(), &Storage::default());
    assert_eq!(config.sync(), &SyncSettings::default());
    assert_eq!(config.push(), &Push::default());
    assert_eq!(config.device(), &Device::default());
}

#[test]
fn example_file_documents_the_real_error_message() {
    let text = fs::read_to_string(example_path()).unwrap();
    let error = parse(&format!("{MINIMAL}[sync]\nmail_age = \"2y\"\n"))
        .unwrap_err()
        .to_string();
    let (_, message) = error.split_once(": sync.").unwrap();
    assert!(
        text.contains(&format!("sync.{message}")),
        "the example quotes an error message that no longer exists: {error}"
    );
}

/// The sections of the example, with each commented-out `# key = value` line inside them.
fn commented_examples(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut examples = Vec::new();
    for line in text.lines() {
        let bare = line.trim_start_matches("# ").trim();
        if bare.starts_with('[') && bare.ends_with(']') {
            section = bare.trim_matches(['[', ']']).to_string();
            continue;
        }
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        if let Some((key, _)) = rest.split_once(" = ") {
            if !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                examples.push((section.clone(), key.to_string(), rest.to_string()));
            }
        }
    }
    examples
}

#[test]
fn example_file_mentions_every_key_the_parser_knows() {
    let text = fs::read_to_string(example_path()).unwrap();
    // The parser's own list of keys per section, taken from its unknown-key hint.
    for (section, header) in [
        ("account", ""),
        ("account.oauth", "[account.oauth]\n"),
        ("tls", "[tls]\n"),
        ("storage", "[storage]\n"),
        ("sync", "[sync]\n"),
        ("push", "[push]\n"),
        ("device", "[device]\n"),
        ("hooks", "[hooks]\n"),
    ] {
        let message = parse(&format!("{MINIMAL}{header}zzz = 1\n"))
            .unwrap_err()
            .to_string();
        let (_, keys) = message.split_once("use one of: ").expect(&message);
        for key in keys.split(", ") {
            let written = text.lines().any(|line| {
                let line = line.trim_start_matches("# ");
                line.starts_with(&format!("{key} = ")) || line == format!("[{section}.{key}]")
            });
            assert!(written, "board/easync.toml does not show {section}.{key}");
        }
    }
    assert!(text.contains("# [hooks]"));
}

#[test]
fn every_commented_example_in_the_example_file_is_valid() {
    let text = fs::read_to_string(example_path()).unwrap();
    let examples = commented_examples(&text);
    let keys: Vec<&str> = examples.iter().map(|(_, k, _)| k.as_str()).collect();
    for expected in [
        "user",
        "domain",
        "server",
        "protocol_version",
        "client_id",
        "tenant",
        "authority",
        "device_authorization_endpoint",
        "token_endpoint",
        "scope",
        "ca_file",
        "pin_sha256",
        "client_cert",
        "client_key",
        "include_folders",
        "exclude_folders",
        "body_size_limit",
        "model",
        "os",
        "os_language",
        "friendly_name",
        "imei",
        "phone_number",
        "device_id",
    ] {
        assert!(keys.contains(&expected), "no example for {expected}");
    }
    for (section, key, line) in &examples {
        let config = match section.as_str() {
            "account" => format!("{MINIMAL}{line}\n"),
            "account.oauth" => {
                let client_id = if key == "client_id" {
                    ""
                } else {
                    "client_id = \"x\"\n"
                };
                format!("[account]\nemail = \"a@b.c\"\n[account.oauth]\n{client_id}{line}\n")
            }
            "tls" if key == "client_cert" => {
                format!("{MINIMAL}[tls]\n{line}\nclient_key = \"/k\"\n")
            }
            "tls" if key == "client_key" => {
                format!("{MINIMAL}[tls]\n{line}\nclient_cert = \"/c\"\n")
            }
            // [wipe] needs its mode and target beside any other key.
            "wipe" => {
                let mut base = String::new();
                for (k, v) in [("mode", "\"block\""), ("target", "\"/dev/sdb1\"")] {
                    if key != k {
                        base.push_str(&format!("{k} = {v}\n"));
                    }
                }
                format!("{MINIMAL}[wipe]\n{base}{line}\n")
            }
            other => format!("{MINIMAL}[{other}]\n{line}\n"),
        };
        // Hook paths are checked on the file system: the example programs are not installed
        // here, so the refusal must be exactly that (the line itself is valid).
        if section == "hooks" && key != "timeout" {
            let e = parse(&config).unwrap_err().to_string();
            assert!(
                e.contains(&format!("hooks.{key}")) && e.contains("install the hook"),
                "the example `{line}` in [hooks] is refused for another reason: {e}"
            );
            continue;
        }
        if let Err(e) = parse(&config) {
            panic!("the example `{line}` in [{section}] is refused: {e}");
        }
    }
}

#[test]
fn minimal_config() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.account().email, "j.doe@example.com");
    assert_eq!(config.account().user, "j.doe@example.com");
    assert_eq!(config.data_dir(), Path::new("/var/lib/easync"));
    assert_eq!(config.sync().classes, SyncClass::ALL.to_vec());
    assert_eq!(config.sync().mail_age.filter_type(), 5);
    assert_eq!(config.sync().calendar_age.filter_type(), 7);
    assert_eq!(config.push().heartbeat_start, Duration::from_secs(480));
    assert_eq!(config.device().device_type, "easync");
}

#[test]
fn full_config() {
    let text = r#"
[account]
email = "j.doe@example.com"
user = "jdoe"
domain = "CORP"
server = "https://mail.example.com/Microsoft-Server-ActiveSync"
password_file = "/run/easync/password"
protocol_version = "14.1"
query_form = "base64"

[tls]
ca_file = "/etc/easync/ca.pem"
pin_sha256 = ["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
client_cert = "/etc/easync/client.pem"
client_key = "/etc/easync/client.key"
allow_insecure_http = true

[storage]
data_dir = "/data/easync"

[sync]
classes = ["calendar", "email", "email"]
include_folders = ["Inbox", "Inbox/*"]
exclude_folders = ["Junk*"]
mail_age = "2w"
calendar_age = "3m"
body_size_limit = "64K"
conflict = "client-wins"
resync_interval = "6h"

[push]
heartbeat_min = "2m"
heartbeat_max = 1800
heartbeat_start = "10m"

[device]
model = "FT-7"
os = "Yocto 5.0"
os_language = "German"
friendly_name = "Truck 12"
imei = "490154203237518"
phone_number = "+49 30 1234567"
device_type = "FieldTerminal"
device_id = "FT7SN000123"

[hooks]
"#;
    let c = parse(text).unwrap();
    let a = c.account();
    assert_eq!(a.user, "jdoe");
    assert_eq!(a.domain.as_deref(), Some("CORP"));
    assert_eq!(
        a.server.as_deref(),
        Some("https://mail.example.com/Microsoft-Server-ActiveSync")
    );
    assert_eq!(
        a.auth,
        AuthSource::PasswordFile("/run/easync/password".into())
    );
    assert_eq!(a.protocol_version, Some(EasVersion::V14_1));
    assert_eq!(a.query_form, QueryForm::Base64);
    let t = c.tls();
    assert_eq!(t.ca_file.as_deref(), Some(Path::new("/etc/easync/ca.pem")));
    assert_eq!(
        t.pin_sha256,
        vec![
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".to_string(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string()
        ]
    );
    assert_eq!(
        t.client_cert.as_deref(),
        Some(Path::new("/etc/easync/client.pem"))
    );
    assert_eq!(
        t.client_key.as_deref(),
        Some(Path::new("/etc/easync/client.key"))
    );
    assert!(t.allow_insecure_http);
    assert_eq!(c.data_dir(), Path::new("/data/easync"));
    let s = c.sync();
    assert_eq!(s.classes, vec![SyncClass::Email, SyncClass::Calendar]);
    assert!(s.syncs(SyncClass::Calendar) && !s.syncs(SyncClass::Notes));
    assert!(s.folder_selected(&["INBOX", "Projects"]));
    assert!(!s.folder_selected(&["Archive"]));
    assert!(!s.folder_selected(&["Inbox", "Junk E-Mail"]));
    assert_eq!(s.mail_age, AgeFilter::TwoWeeks);
    assert_eq!(s.mail_age.filter_type(), 4);
    assert_eq!(s.calendar_age, AgeFilter::ThreeMonths);
    assert_eq!(s.calendar_age.filter_type(), 6);
    assert_eq!(s.body_size_limit, Some(65536));
    assert_eq!(s.conflict, ConflictPolicy::ClientWins);
    assert_eq!(s.resync_interval, Duration::from_secs(6 * 3600));
    let p = c.push();
    assert_eq!(p.heartbeat_min, Duration::from_secs(120));
    assert_eq!(p.heartbeat_max, Duration::from_secs(1800));
    assert_eq!(p.heartbeat_start, Duration::from_secs(600));
    let d = c.device();
    assert_eq!(d.model.as_deref(), Some("FT-7"));
    assert_eq!(d.os.as_deref(), Some("Yocto 5.0"));
    assert_eq!(d.os_language.as_deref(), Some("German"));
    assert_eq!(d.friendly_name.as_deref(), Some("Truck 12"));
    assert_eq!(d.imei.as_deref(), Some("490154203237518"));
    assert_eq!(d.phone_number.as_deref(), Some("+49 30 1234567"));
    assert_eq!(d.device_type, "FieldTerminal");
    assert_eq!(c.device_id().unwrap(), "FT7SN000123");
}

#[test]
fn oauth_defaults_and_overrides() {
    let base = "[account]\nemail = \"a@example.com\"\n[account.oauth]\nclient_id = \"cid\"\n";
    let c = parse(base).unwrap();
    let AuthSource::OAuth(o) = &c.account().auth else {
        panic!("{:?}", c.account().auth)
    };
    assert_eq!(o.client_id, "cid");
    assert_eq!(
        o.authority,
        "https://login.microsoftonline.com/organizations"
    );
    assert_eq!(
        o.device_authorization_endpoint,
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode"
    );
    assert_eq!(
        o.token_endpoint,
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    );
    assert_eq!(
        o.scope,
        "https://outlook.office365.com/EAS.AccessAsUser.All offline_access"
    );
    assert!(matches!(c.password(), Err(ConfigError::NoPasswordForOAuth)));

    let c = parse(&format!("{base}tenant = \"example.com\"\n")).unwrap();
    let AuthSource::OAuth(o) = &c.account().auth else {
        panic!()
    };
    assert_eq!(
        o.token_endpoint,
        "https://login.microsoftonline.com/example.com/oauth2/v2.0/token"
    );

    // A lab endpoint over plain HTTP, allowed explicitly.
    let c = parse(&format!(
        "{base}authority = \"http://127.0.0.1:9000/tenant/\"\n[tls]\nallow_insecure_http = true\n"
    ))
    .unwrap();
    let AuthSource::OAuth(o) = &c.account().auth else {
        panic!()
    };
    assert_eq!(o.authority, "http://127.0.0.1:9000/tenant");
    assert_eq!(
        o.device_authorization_endpoint,
        "http://127.0.0.1:9000/tenant/oauth2/v2.0/devicecode"
    );

    let e = parse(&format!(
        "{base}authority = \"https://a.example\"\ntenant = \"t\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("authority") && e.contains("tenant") && e.contains("keep one"),
        "{e}"
    );
    let e = parse("[account]\nemail = \"a@example.com\"\n[account.oauth]\nscope = \"x\"\n")
        .unwrap_err();
    assert_eq!(e.key(), Some("account.oauth.client_id"));
    assert!(e.to_string().contains("is missing"), "{e}");
}

/// (section and line, key, text the message must contain besides the key).
const BAD_VALUES: &[(&str, &str, &str)] = &[
    (
        "[account]\nemail = \"nobody\"\npassword_file = \"/p\"",
        "account.email",
        "\"nobody\": write an email address",
    ),
    (
        "[account]\nemail = \"\"\npassword_file = \"/p\"",
        "account.email",
        "give a value",
    ),
    (
        "[account]\nemail = 5\npassword_file = \"/p\"",
        "account.email",
        "invalid type",
    ),
    (
        "[account]\nemail = \"a@b.c\"\npassword_file = \"relative/pw\"",
        "account.password_file",
        "use an absolute path",
    ),
    (
        "[account]\nemail = \"a@b.c\"\npassword_file = \"/p\"\nserver = \"ftp://x\"",
        "account.server",
        "\"ftp://x\": use an https:// URL",
    ),
    (
        "[account]\nemail = \"a@b.c\"\npassword_file = \"/p\"\nserver = \"mail.example.com\"",
        "account.server",
        "\"mail.example.com\": write a URL: \"https://mail.example.com\"",
    ),
    (
        "[account]\nemail = \"a@b.c\"\npassword_file = \"/p\"\nserver = \"https://\"",
        "account.server",
        "host name",
    ),
    (
        "[account]\nemail = \"a@b.c\"\npassword_file = \"/p\"\ndomain = \"CORP\\\\x\"",
        "account.domain",
        "bare Windows domain",
    ),
    (
        "[account]\nemail = \"a@b.c\"\npassword_file = \"/p\"\nprotocol_version = \"15.0\"",
        "account.protocol_version",
        "\"15.0\": use one of 12.1, 14.0, 14.1, 16.0, 16.1",
    ),
    (
        "[account]\nemail = \"a@b.c\"\npassword_file = \"/p\"\nquery_form = \"hex\"",
        "account.query_form",
        "\"hex\": use one of plain, base64",
    ),
    (
        "[account]\nemail = \"a@b.c\"\n[account.oauth]\nclient_id = \"c\"\ntenant = \"a b\"",
        "account.oauth.tenant",
        "tenant id",
    ),
    (
        "[account]\nemail = \"a@b.c\"\n[account.oauth]\nclient_id = \"c\"\ntoken_endpoint = \"http://x\"",
        "account.oauth.token_endpoint",
        "use https://",
    ),
    (
        "[account]\nemail = \"a@b.c\"\n[account.oauth]\nclient_id = \"c\"\ndevice_authorization_endpoint = \"x\"",
        "account.oauth.device_authorization_endpoint",
        "write a URL",
    ),
    (
        "[tls]\npin_sha256 = [\"abc\"]",
        "tls.pin_sha256",
        "\"abc\": each pin is the base64 of a SHA-256",
    ),
    (
        "[tls]\npin_sha256 = [\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF==\"]",
        "tls.pin_sha256",
        "44 characters",
    ),
    (
        "[tls]\npin_sha256 = \"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"",
        "tls.pin_sha256",
        "expected a sequence",
    ),
    (
        "[tls]\nclient_cert = \"/c.pem\"",
        "tls.client_key",
        "is missing",
    ),
    (
        "[tls]\nclient_key = \"/c.key\"",
        "tls.client_cert",
        "is missing",
    ),
    (
        "[tls]\nca_file = \"ca.pem\"",
        "tls.ca_file",
        "absolute path",
    ),
    (
        "[tls]\nallow_insecure_http = \"yes\"",
        "tls.allow_insecure_http",
        "expected a boolean",
    ),
    (
        "[storage]\ndata_dir = \"data\"",
        "storage.data_dir",
        "\"data\": use an absolute path (starting with /)",
    ),
    (
        "[sync]\nclasses = [\"mail\"]",
        "sync.classes",
        "\"mail\": use one of email, contacts, calendar, tasks, notes",
    ),
    ("[sync]\nclasses = []", "sync.classes", "list at least one"),
    (
        "[sync]\nmail_age = \"2y\"",
        "sync.mail_age",
        "sync.mail_age = \"2y\": use one of all, 1d, 3d, 1w, 2w, 1m",
    ),
    (
        "[sync]\nmail_age = \"3m\"",
        "sync.mail_age",
        "use one of all, 1d, 3d, 1w, 2w, 1m",
    ),
    (
        "[sync]\ncalendar_age = \"1w\"",
        "sync.calendar_age",
        "\"1w\": use one of all, 2w, 1m, 3m, 6m",
    ),
    (
        "[sync]\ninclude_folders = [\"\"]",
        "sync.include_folders",
        "folder name pattern",
    ),
    (
        "[sync]\nexclude_folders = [\" \"]",
        "sync.exclude_folders",
        "folder name pattern",
    ),
    (
        "[sync]\nbody_size_limit = \"64X\"",
        "sync.body_size_limit",
        "\"64X\": write a size",
    ),
    (
        "[sync]\nbody_size_limit = 0",
        "sync.body_size_limit",
        "= 0: write a size",
    ),
    (
        "[sync]\nbody_size_limit = \"5G\"",
        "sync.body_size_limit",
        "4294967295",
    ),
    (
        "[sync]\nconflict = \"newest-wins\"",
        "sync.conflict",
        "\"newest-wins\": use one of server-wins, client-wins",
    ),
    (
        "[sync]\nresync_interval = \"30s\"",
        "sync.resync_interval",
        "= \"30s\": use at least 60 seconds",
    ),
    (
        "[sync]\nresync_interval = \"soon\"",
        "sync.resync_interval",
        "\"soon\": write seconds",
    ),
    (
        "[push]\nheartbeat_min = 30",
        "push.heartbeat_min",
        "= 30: use 60 to 3540 seconds",
    ),
    (
        "[push]\nheartbeat_max = \"1h\"",
        "push.heartbeat_max",
        "= \"1h\": use 60 to 3540 seconds",
    ),
    (
        "[push]\nheartbeat_start = \"8x\"",
        "push.heartbeat_start",
        "\"8x\": write seconds",
    ),
    (
        "[push]\nheartbeat_start = -5",
        "push.heartbeat_start",
        "= -5: write seconds",
    ),
    (
        "[push]\nheartbeat_start = 1.5",
        "push.heartbeat_start",
        "invalid type",
    ),
    (
        "[push]\nheartbeat_min = 300\nheartbeat_start = 120",
        "push.heartbeat_start",
        "between push.heartbeat_min (300s)",
    ),
    ("[device]\nimei = \"12AB\"", "device.imei", "15 digits"),
    (
        "[device]\nphone_number = \"call me\"",
        "device.phone_number",
        "phone number",
    ),
    (
        "[device]\ndevice_type = \"Smart-Phone\"",
        "device.device_type",
        "1 to 32 letters and digits",
    ),
    (
        "[device]\ndevice_id = \"abc,def\"",
        "device.device_id",
        "\"abc,def\": use 1 to 32 letters and digits",
    ),
    (
        "[device]\ndevice_id = \"0123456789012345678901234567890123\"",
        "device.device_id",
        "1 to 32",
    ),
    ("[device]\nmodel = \"\"", "device.model", "give a value"),
    (
        "[device]\nfriendly_name = \"a\\u0007b\"",
        "device.friendly_name",
        "control characters",
    ),
    ("[device]\nos = 7", "device.os", "invalid type"),
];

#[test]
fn every_bad_value_names_the_key_and_the_fix() {
    for (snippet, key, expected) in BAD_VALUES {
        let text = if snippet.starts_with("[account]") {
            format!("{snippet}\n")
        } else {
            format!("{MINIMAL}{snippet}\n")
        };
        let error = match parse(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        };
        let message = error.to_string();
        assert_eq!(error.key(), Some(*key), "{message}");
        assert!(message.starts_with("easync.toml:"), "{message}");
        assert!(message.contains(key), "{message}");
        assert!(
            message.contains(expected),
            "expected {expected:?} in: {message}"
        );
    }
}

#[test]
fn bad_value_points_at_its_line() {
    let error = parse(&format!("{MINIMAL}[sync]\nconflict = \"x\"\n")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("easync.toml:5:12: sync.conflict = \"x\""),
        "{error}"
    );
}

#[test]
fn unknown_keys_at_every_level() {
    let cases: &[(&str, &str)] = &[
        ("colour = 1\n", "colour"),
        ("[colour]\nred = 1\n", "colour"),
        ("[account]\nemial = \"x\"\n", "account.emial"),
        ("[account.oauth]\nclient = \"x\"\n", "account.oauth.client"),
        ("[tls]\npins = []\n", "tls.pins"),
        ("[storage]\ndir = \"/x\"\n", "storage.dir"),
        ("[sync]\nfolders = []\n", "sync.folders"),
        ("[push]\nheartbeat = 5\n", "push.heartbeat"),
        ("[device]\nname = \"x\"\n", "device.name"),
        ("[hooks]\non_policy = \"/bin/true\"\n", "hooks.on_policy"),
    ];
    for (extra, key) in cases {
        // Put the unknown key after the minimal account (a second [account] header would be a
        // TOML error, so account keys go into the existing table).
        let text = if let Some(rest) = extra.strip_prefix("[account]\n") {
            format!("{MINIMAL}{rest}")
        } else if extra.starts_with('[') {
            format!("{MINIMAL}{extra}")
        } else {
            format!("{extra}{MINIMAL}")
        };
        let error = parse(&text).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, ConfigError::UnknownKey { .. }),
            "{key}: {message}"
        );
        assert_eq!(error.key(), Some(*key), "{message}");
        assert!(
            message.contains(&format!("unknown key `{key}`")),
            "{message}"
        );
        assert!(message.contains("remove it"), "{message}");
    }
    // The hint lists the valid keys of the section.
    let message = parse(&format!("{MINIMAL}[sync]\nmailage = \"1w\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("use one of: classes, include_folders, exclude_folders, mail_age"),
        "{message}"
    );
    let message = parse(&format!("{MINIMAL}[hooks]\nx = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("use one of: device_lock, storage_encryption, policy, timeout"),
        "{message}"
    );
}

#[test]
fn a_password_in_the_config_is_refused_without_echoing_it() {
    let error = parse(&format!("{MINIMAL}password = \"hunter2\"\n")).unwrap_err();
    let message = error.to_string();
    assert_eq!(error.key(), Some("account.password"));
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!format!("{error:?}").contains("hunter2"));
    assert!(
        message.contains("secrets never go in the configuration"),
        "{message}"
    );
}

#[test]
fn missing_account_or_email() {
    let error = parse("[sync]\nmail_age = \"1w\"\n").unwrap_err();
    assert_eq!(error.key(), Some("account"));
    assert!(
        error.to_string().contains("add an [account] section"),
        "{error}"
    );
    let error = parse("[account]\npassword_file = \"/p\"\n").unwrap_err();
    assert_eq!(error.key(), Some("account.email"));
    assert!(
        error
            .to_string()
            .starts_with("easync.toml:1:2: account.email is missing"),
        "{error}"
    );
}

#[test]
fn password_file_and_oauth_together_are_refused() {
    let text = "[account]\nemail = \"a@b.c\"\npassword_file = \"/p\"\n[account.oauth]\nclient_id = \"c\"\n";
    let error = parse(text).unwrap_err();
    assert!(matches!(error, ConfigError::Conflict { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("password_file") && message.contains("[account.oauth]"),
        "{message}"
    );
}

#[test]
fn no_password_source_unless_a_systemd_credential_exists() {
    let text = "[account]\nemail = \"a@b.c\"\n";
    let error = parse(text).unwrap_err();
    assert!(
        matches!(error, ConfigError::NoPasswordSource { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("LoadCredential=password:"),
        "{error}"
    );

    let dir = TempDir::new();
    // A credentials directory without a `password` file does not help.
    dir.file("other", "x", 0o600);
    let error = Config::parse(text, "easync.toml", Some(&dir.0)).unwrap_err();
    assert!(
        matches!(error, ConfigError::NoPasswordSource { .. }),
        "{error:?}"
    );

    // systemd may show the credential as 0440 (an ACL for the service user): accepted.
    let credential = dir.file("password", "s3cret\n", 0o440);
    let config = Config::parse(text, "easync.toml", Some(&dir.0)).unwrap();
    assert_eq!(config.account().auth, AuthSource::Credential(credential));
    assert_eq!(config.password().unwrap().expose(), "s3cret");
    // An explicit password_file wins over the credential.
    let explicit = dir.file("pw", "other\n", 0o600);
    let config = Config::parse(
        &format!("{text}password_file = \"{}\"\n", explicit.display()),
        "easync.toml",
        Some(&dir.0),
    )
    .unwrap();
    assert_eq!(config.password().unwrap().expose(), "other");
}

#[test]
fn password_file_modes() {
    let dir = TempDir::new();
    let path = dir.file("password", "hunter2\n", 0o600);
    let config = config_with_password_file(&path);
    let secret = config.password().unwrap();
    assert_eq!(secret.expose(), "hunter2");
    assert_eq!(format!("{secret:?}"), "***");
    assert_eq!(format!("{secret}"), "***");

    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(config.password().unwrap().expose(), "hunter2");

    for mode in [0o644, 0o640, 0o604, 0o700] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let error = config.password().unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, ConfigError::PasswordFile { .. }),
            "{message}"
        );
        assert!(message.contains(&format!("{mode:04o}")), "{message}");
        assert!(
            message.contains(&format!("chmod 600 {}", path.display())),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!format!("{error:?}").contains("hunter2"));
    }
}

#[test]
fn password_file_content_rules() {
    let dir = TempDir::new();
    let crlf = dir.file("crlf", "pa ss\r\n", 0o600);
    assert_eq!(
        config_with_password_file(&crlf)
            .password()
            .unwrap()
            .expose(),
        "pa ss"
    );
    // Only one newline is removed: the rest belongs to the password.
    let two = dir.file("two", "pw\n\n", 0o600);
    assert_eq!(
        config_with_password_file(&two).password().unwrap().expose(),
        "pw\n"
    );

    let empty = dir.file("empty", "\n", 0o600);
    let message = config_with_password_file(&empty)
        .password()
        .unwrap_err()
        .to_string();
    assert!(message.contains("empty"), "{message}");

    let missing = dir.0.join("absent");
    let message = config_with_password_file(&missing)
        .password()
        .unwrap_err()
        .to_string();
    assert!(message.contains("cannot open"), "{message}");
    assert!(message.contains("install -m 600"), "{message}");

    let message = config_with_password_file(&dir.0)
        .password()
        .unwrap_err()
        .to_string();
    assert!(message.contains("not a regular file"), "{message}");
}

#[test]
fn password_file_owner() {
    let dir = TempDir::new();
    let path = dir.file("password", "hunter2", 0o600);
    let config = config_with_password_file(&path);
    let euid = unsafe { libc::geteuid() };
    // A file we own is accepted (as root this is also the "owned by root" case).
    assert_eq!(config.password().unwrap().expose(), "hunter2");
    if euid != 0 {
        // Only root can give a file away; the owner rule itself is unit-tested in
        // src/config.rs (check_password_file).
        return;
    }
    std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
    let message = config.password().unwrap_err().to_string();
    assert!(message.contains("owned by user id 4242"), "{message}");
    assert!(
        message.contains(&format!("chown 0 {}", path.display())),
        "{message}"
    );
    assert!(!message.contains("hunter2"));
    std::os::unix::fs::chown(&path, Some(0), None).unwrap();
    assert_eq!(config.password().unwrap().expose(), "hunter2");
}

#[test]
fn device_id_from_machine_id() {
    let config = parse(MINIMAL).unwrap();
    let machine_id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok());
    match machine_id {
        Some(text) if easync::config::derive_device_id(&text).is_ok() => {
            let id = config.device_id().unwrap();
            assert_eq!(id, easync::config::derive_device_id(&text).unwrap());
            assert_eq!(id, config.device_id().unwrap(), "stable");
            assert!(easync::config::valid_device_id(&id));
            assert_eq!(id.len(), 32);
        }
        _ => {
            let message = config.device_id().unwrap_err().to_string();
            assert!(message.contains("set device.device_id"), "{message}");
        }
    }
}

#[test]
fn toml_syntax_errors_have_line_and_column() {
    let error = parse("[account]\nemail = \"a@b.c\"\npassword_file = /etc/pw\n").unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ConfigError::Syntax { .. }), "{message}");
    assert!(
        message.starts_with("easync.toml:3:17: TOML syntax error"),
        "{message}"
    );

    let error = parse("[account\nemail = 1\n").unwrap_err();
    let ConfigError::Syntax { at, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(at.line_column.map(|(line, _)| line), Some(1), "{error}");

    // A key defined twice is a TOML error too.
    let error = parse(&format!("{MINIMAL}email = \"b@c.d\"\n")).unwrap_err();
    let ConfigError::Syntax { at, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(at.line_column.map(|(line, _)| line), Some(4), "{error}");
}

#[test]
fn load_reports_the_path() {
    let dir = TempDir::new();
    let missing = dir.0.join("nope.toml");
    let message = Config::load(&missing).unwrap_err().to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("--config"), "{message}");

    let path = dir.file(
        "easync.toml",
        &format!("{MINIMAL}[sync]\nmail_age = \"9d\"\n"),
        0o644,
    );
    let message = Config::load(&path).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:5:12: sync.mail_age = \"9d\"", path.display())),
        "{message}"
    );

    let binary = dir.0.join("binary.toml");
    fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let message = Config::load(&binary).unwrap_err().to_string();
    assert!(message.contains("not UTF-8"), "{message}");

    let good = dir.file("good.toml", MINIMAL, 0o644);
    assert_eq!(
        Config::load(&good).unwrap().origin(),
        good.display().to_string()
    );
}
