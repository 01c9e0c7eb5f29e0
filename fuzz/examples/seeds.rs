//! Writes the seed corpus of one fuzz target into a directory: real inputs made with
//! easync's own writers (D-Bus messages from the wire API, a state file saved by the store,
//! a tokens file saved by the credential store) and small hand-made ones (LUKS headers, hook
//! answers, counts). fuzz/run.sh runs it for the targets it knows; each file starts with the
//! selector byte its target reads first, where the target has one.
//!
//!   cargo run --example seeds -- dbus_wire corpus/dbus_wire

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use easync::dbus::wire::{Message, Value};
use easync::device::wipe::luks;
use easync::store::credentials::{self, CredentialStore};
use easync::store::state::{self, AccountState, Fingerprint, FolderState, ItemEntry, StateFile};
use easync::transport::autodiscover;
use easync::transport::config::Secret;
use easync::transport::oauth::Tokens;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, dir] = args.as_slice() else {
        eprintln!("usage: seeds <target> <directory>");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    let seeds = match target.as_str() {
        "dbus_wire" => dbus_wire(),
        "device_input" => device_input(),
        "net_headers" => net_headers(),
        "local_files" => local_files(),
        other => {
            eprintln!("no seeds for {other}");
            std::process::exit(2);
        }
    };
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), seed).expect("write a seed");
    }
    println!("{} seeds in {}", seeds.len(), dir.display());
}

fn with_selector(selector: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(body);
    out
}

/// Every kind of message, with bodies using every type the decoder reads.
fn dbus_wire() -> Vec<Vec<u8>> {
    let props = Value::Dict(
        "s".into(),
        "v".into(),
        vec![
            (
                Value::str("State"),
                Value::Variant(Box::new(Value::str("idle"))),
            ),
            (
                Value::str("Pending"),
                Value::Variant(Box::new(Value::U32(3))),
            ),
            (
                Value::str("Folders"),
                Value::Variant(Box::new(Value::strings(&["Inbox", "Contacts"]))),
            ),
        ],
    );
    let every_type = vec![
        Value::Byte(7),
        Value::Bool(true),
        Value::I16(-2),
        Value::U16(2),
        Value::I32(-4),
        Value::U32(4),
        Value::I64(-8),
        Value::U64(8),
        Value::F64(1.5),
        Value::str("text"),
        Value::Path("/org/easync/Account1/work".into()),
        Value::Sig("a{sv}".into()),
        Value::Bytes(b"bytes".to_vec()),
        Value::Struct(vec![Value::str("pair"), Value::I32(1)]),
        Value::Variant(Box::new(Value::Struct(vec![
            Value::Byte(1),
            Value::Bool(false),
        ]))),
        Value::Array(
            "(su)".into(),
            vec![Value::Struct(vec![Value::str("a"), Value::U32(1)])],
        ),
        props.clone(),
    ];
    let mut call = Message::call(
        "org.easync",
        "/org/easync/Account1/work",
        "org.easync.Account1",
        "SyncNow",
    );
    call.serial = 5;
    call.sender = Some(":1.42".into());
    let messages = [
        Message::call(
            "org.easync",
            "/org/easync",
            "org.easync.Manager1",
            "ListAccounts",
        ),
        Message::call(
            "org.easync",
            "/org/easync/Account1/work",
            "org.easync.Account1",
            "Check",
        )
        .with_body(every_type),
        Message::call(
            "org.easync",
            "/org/easync/Account1/work",
            "org.freedesktop.DBus.Properties",
            "GetAll",
        )
        .with_body(vec![Value::str("org.easync.Account1")]),
        Message::reply(&call, vec![props.clone()]),
        Message::reply(&call, vec![]),
        Message::error(&call, "org.easync.Error.Busy", "a sync is running"),
        Message::signal(
            "/org/easync/Account1/work",
            "org.freedesktop.DBus.Properties",
            "PropertiesChanged",
            vec![
                Value::str("org.easync.Account1"),
                props,
                Value::strings::<&str>(&[]),
            ],
        ),
    ];
    let mut seeds: Vec<Vec<u8>> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| m.encode(i as u32 + 1).expect("a seed message encodes"))
        .collect();
    seeds.push(big_endian_call());
    for seed in &seeds {
        Message::decode(seed, &mut Vec::new()).expect("a seed message decodes");
    }
    seeds
}

/// A call written big-endian by hand (easync writes little-endian only; other peers may
/// not): member Ping on /a with a u32, a string and an i16.
fn big_endian_call() -> Vec<u8> {
    let mut m = vec![b'B', 1, 0, 1];
    let mut body = Vec::new();
    body.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    body.extend_from_slice(&5u32.to_be_bytes());
    body.extend_from_slice(b"hello\0"); // ends at 14: aligned for the i16
    body.extend_from_slice(&(-2i16).to_be_bytes());
    m.extend_from_slice(&(body.len() as u32).to_be_bytes());
    m.extend_from_slice(&9u32.to_be_bytes());
    let mut fields = Vec::new();
    for (code, sig, text) in [(1u8, b'o', "/a"), (3, b's', "Ping"), (8, b'g', "usn")] {
        while fields.len() % 8 != 0 {
            fields.push(0);
        }
        fields.extend_from_slice(&[code, 1, sig, 0]);
        if sig == b'g' {
            fields.push(text.len() as u8);
        } else {
            fields.extend_from_slice(&(text.len() as u32).to_be_bytes());
        }
        fields.extend_from_slice(text.as_bytes());
        fields.push(0);
    }
    m.extend_from_slice(&(fields.len() as u32).to_be_bytes());
    m.extend_from_slice(&fields);
    while m.len() % 8 != 0 {
        m.push(0);
    }
    m.extend_from_slice(&body);
    m
}

fn device_input() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    // 0: hook exit status byte then its stdout.
    for (status, out) in [
        (0u8, &b""[..]),
        (
            0,
            br#"{"applied":["DevicePasswordEnabled","MinDevicePasswordLength"]}"#,
        ),
        (
            2,
            br#"{"applied":["AllowCamera"],"not_applied":["DevicePasswordEnabled"]}"#,
        ),
        (3, b"camera is fixed on this board\n"),
        (1, b"hook failed: no such device\n"),
        (0x89, b""),
    ] {
        let mut body = vec![status];
        body.extend_from_slice(out);
        seeds.push(with_selector(0, &body));
    }
    // 1: LUKS headers; 2: a LUKS2 JSON area.
    let json = r#"{"keyslots":{"0":{"type":"luks2"},"3":{"type":"luks2"}},"segments":{}}"#;
    for (header, active) in [
        (luks1(&[true, false, true]), ["0", "2"]),
        (luks2(json), ["0", "3"]),
    ] {
        let slots = luks::key_slots(&mut Cursor::new(&header)).expect("a LUKS seed reads");
        assert_eq!(slots.active, active);
        // The target's LUKS input starts with a layout byte: below 0x80 the rest is the device.
        seeds.push(with_selector(1, &with_selector(0, &header)));
    }
    // Layout 0x87 (0x87 % 9 = 0): the first half at 0, the second at the first LUKS2 header
    // size (16 KiB), each copy naming a slot of its own.
    let primary = luks2(r#"{"keyslots":{"0":{}}}"#);
    let mut secondary = luks2(r#"{"keyslots":{"1":{}}}"#);
    secondary[..6].copy_from_slice(&luks::SECONDARY_MAGIC);
    assert_eq!(primary.len(), secondary.len());
    let mut device = primary.clone();
    device.resize(luks::LUKS2_HEADER_SIZES[0] as usize, 0);
    device.extend_from_slice(&secondary);
    let slots = luks::key_slots(&mut Cursor::new(&device)).expect("both LUKS2 copies read");
    assert_eq!(slots.active, ["0", "1"]);
    let mut layout = vec![0x87];
    layout.extend_from_slice(&primary);
    layout.extend_from_slice(&secondary);
    seeds.push(with_selector(1, &layout));
    seeds.push(with_selector(2, json.as_bytes()));
    // 3: the failed-unlock count; 4: the wipe phase record.
    seeds.push(with_selector(3, b"# easync\nfailures 2\nlimit 8\n"));
    seeds.push(with_selector(3, b"failures 0\nlimit none\n"));
    seeds.push(with_selector(4, b"full pre-wipe-done\n"));
    seeds.push(with_selector(4, b"account-only completed\n"));
    // 5: folders.json; 6: policy.json.
    seeds.push(with_selector(5, br#"{"1":true,"5":false}"#));
    seeds.push(with_selector(
        6,
        br#"{"DevicePasswordEnabled":"1","MinDevicePasswordLength":"6","Unknown":"x"}"#,
    ));
    // 7: a state file's version and payload, as the store writes it.
    let payload = state_payload();
    state::fuzz_state_payload(payload[0], &payload[1..]).expect("the state seed decodes");
    seeds.push(with_selector(7, &payload));
    // 8: a tokens file as the credential store writes it.
    let tokens = tokens_file();
    credentials::fuzz_tokens_file(&tokens).expect("the tokens seed decodes");
    seeds.push(with_selector(8, &tokens));
    // 9: superblocks: ext4's magic at 1080, a FAT boot sector.
    let mut ext4 = vec![0u8; 1082];
    ext4[1080..1082].copy_from_slice(&[0x53, 0xef]);
    seeds.push(with_selector(9, &ext4));
    let mut fat = vec![0u8; 512];
    fat[0x52..0x55].copy_from_slice(b"FAT");
    fat[510..512].copy_from_slice(&[0x55, 0xaa]);
    seeds.push(with_selector(9, &fat));
    seeds
}

/// A LUKS1 header with the given key slots active (the rest disabled).
fn luks1(active: &[bool]) -> Vec<u8> {
    let mut h = vec![0u8; 592];
    h[..6].copy_from_slice(&luks::MAGIC);
    h[6..8].copy_from_slice(&1u16.to_be_bytes());
    h[8..11].copy_from_slice(b"aes");
    for slot in 0..8 {
        let at = 208 + slot * 48;
        let state: u32 = if active.get(slot) == Some(&true) {
            0x00AC_71F3
        } else {
            0x0000_DEAD
        };
        h[at..at + 4].copy_from_slice(&state.to_be_bytes());
    }
    h
}

/// A LUKS2 primary header of the smallest size with `json` as its metadata (no second copy:
/// it would make every input of the target 16 KiB longer).
fn luks2(json: &str) -> Vec<u8> {
    let mut h = vec![0u8; 4096];
    h[..6].copy_from_slice(&luks::MAGIC);
    h[6..8].copy_from_slice(&2u16.to_be_bytes());
    h[8..16].copy_from_slice(&0x4000u64.to_be_bytes());
    h.extend_from_slice(json.as_bytes());
    h.push(0);
    h
}

/// A scratch directory under the system's temporary one, removed after `f`.
fn in_scratch<T>(f: impl FnOnce(&Path) -> T) -> T {
    let dir = std::env::temp_dir().join(format!("easync-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let out = f(&dir);
    std::fs::remove_dir_all(&dir).expect("remove the scratch directory");
    out
}

/// Format version byte and payload of a state file saved by the store.
fn state_payload() -> Vec<u8> {
    in_scratch(|dir| {
        let mut state = AccountState {
            folder_sync_key: "3".into(),
            ..AccountState::default()
        };
        state.set_last_error(Some("the server was unreachable"));
        let mut folder = FolderState::new("Contacts", "0", 9, None, "contacts");
        folder.sync_key = "7".into();
        let entry = ItemEntry {
            local: "a1b2.vcf".into(),
            fingerprint: Fingerprint::Content(0x1234),
        };
        folder.items.insert("1:1", entry).expect("an item entry");
        state.folders.insert("1".into(), folder);
        let file = StateFile::new(dir);
        file.save(&state).expect("save a state");
        let bytes = std::fs::read(file.path()).expect("read the state back");
        // The target takes the version and payload: magic (8 bytes) and digest (32) off.
        bytes[8..bytes.len() - 32].to_vec()
    })
}

fn tokens_file() -> Vec<u8> {
    in_scratch(|dir| {
        let store = CredentialStore::new(dir);
        let tokens = Tokens {
            access: Secret::new("access-token".to_string()),
            refresh: Some(Secret::new("refresh-token".to_string())),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            scope: Some("offline_access".into()),
        };
        store.save_oauth(&tokens).expect("save tokens");
        std::fs::read(store.oauth_path()).expect("read the tokens back")
    })
}

/// What local apps write (vCard, iCalendar, notes), a time zone blob, names as servers send
/// them and Maildir flags (the configuration seed is `board/easync.toml`, added by run.sh).
fn local_files() -> Vec<Vec<u8>> {
    let vcard = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ann Example\r\nN:Example;Ann;;;\r\n\
                 EMAIL;TYPE=work:ann@example.com\r\nTEL;TYPE=cell:+1 555 0100\r\n\
                 BDAY:19800102\r\nEND:VCARD\r\n";
    let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1@example.com\r\n\
                 DTSTART;TZID=Europe/Berlin:20260105T090000\r\n\
                 DTEND;TZID=Europe/Berlin:20260105T100000\r\nSUMMARY:Stand-up\r\n\
                 RRULE:FREQ=WEEKLY;BYDAY=MO,WE\r\nBEGIN:VALARM\r\nTRIGGER:-PT15M\r\n\
                 ACTION:DISPLAY\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let task = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:t1@example.com\r\n\
                SUMMARY:Renew the certificate\r\nDUE;VALUE=DATE:20260201\r\nPRIORITY:1\r\n\
                END:VTODO\r\nEND:VCALENDAR\r\n";
    vec![
        with_selector(1, vcard.as_bytes()),
        with_selector(2, event.as_bytes()),
        with_selector(3, task.as_bytes()),
        with_selector(4, b"Shopping\n\nmilk, bread\n"),
        with_selector(5, &[0u8; 172]),
        with_selector(6, b"Inbox"),
        with_selector(6, b"../../etc/passwd"),
        with_selector(6, ". .hidden\u{202e}txt.exe".as_bytes()),
        with_selector(7, b"FRSTa"),
    ]
}

fn net_headers() -> Vec<Vec<u8>> {
    let autodiscover = br#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006">
    <Culture>en:us</Culture>
    <User><DisplayName>Ann</DisplayName><EMailAddress>ann@example.com</EMailAddress></User>
    <Action><Settings><Server><Type>MobileSync</Type>
      <Url>https://mail.example.com/Microsoft-Server-ActiveSync</Url>
      <Name>https://mail.example.com/Microsoft-Server-ActiveSync</Name>
    </Server></Settings></Action>
  </Response>
</Autodiscover>"#;
    let redirect = br#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006">
    <Action><Redirect>ann@other.example.com</Redirect></Action>
  </Response>
</Autodiscover>"#;
    for answer in [&autodiscover[..], &redirect[..]] {
        autodiscover::parse_response(answer).expect("an autodiscover seed parses");
    }
    let srv = srv_answer();
    assert_eq!(
        autodiscover::parse_srv_answer(0x1234, &srv)
            .expect("the SRV seed")
            .len(),
        1
    );
    vec![
        with_selector(0, autodiscover),
        with_selector(0, redirect),
        with_selector(1, &srv),
        with_selector(2, b"120"),
        with_selector(2, b"Wed, 21 Oct 2015 07:28:00 GMT"),
        with_selector(
            3,
            b"2.5,12.0,12.1,14.0,14.1,16.0,16.1\nSync,FolderSync,Ping,Provision,Settings",
        ),
        with_selector(
            4,
            br#"{"device_code":"d","user_code":"ABCD-EFGH","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":5,"message":"Go to the page"}"#,
        ),
        with_selector(
            4,
            br#"{"token_type":"Bearer","access_token":"a","refresh_token":"r","expires_in":"3599","scope":"x"}"#,
        ),
        with_selector(4, br#"{"error":"authorization_pending","error_description":"wait"}"#),
    ]
}

/// A DNS answer (id 0x1234) with one SRV record for _autodiscover._tcp.example.com.
fn srv_answer() -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in ["_autodiscover", "_tcp", "example", "com"] {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 33, 0, 1]);
    let target = b"\x04mail\x07example\x03com\x00";
    p.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
    p.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 10, 0, 0, 1, 187]);
    p.extend_from_slice(target);
    p
}
