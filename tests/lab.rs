//! easync-lab over real sockets: a hand-rolled HTTP/1.1 client (plain and TLS) speaks EAS to
//! an in-process lab and reads the answers with the crate's own WBXML codec.

#![cfg(feature = "lab")]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use easync::eas::{Limits, Node, Parser};
use easync::lab::{Config, EmptySync, Fault, FaultKind, Handle, Server};
use easync::wbxml::{self, Tag};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value as Json, json};

const USER: &str = "lab@example.com";
const PASSWORD: &str = "labpass";

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn lab(tune: impl FnOnce(&mut Config)) -> Handle {
    let mut config = Config {
        items: 12,
        ping_min_heartbeat: 1,
        ..Config::default()
    };
    tune(&mut config);
    Server::start(config).expect("the lab starts")
}

fn tls_stream(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> io::Result<Box<dyn Stream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from("127.0.0.1").unwrap().to_owned(),
    )
    .map_err(io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
}

fn plain_stream(addr: SocketAddr) -> Box<dyn Stream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    Box::new(tcp)
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    /// As received (still compressed when Content-Encoding says so).
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends one request on `stream` and reads the response (Content-Length framing). An early
/// end of the body is an error.
fn exchange(
    stream: &mut dyn Stream,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<Resp> {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

fn wbxml_of(xml: &str) -> Vec<u8> {
    wbxml::xml::encode::encode(xml.as_bytes(), Vec::new())
        .unwrap_or_else(|e| panic!("bad XML: {e}\n{xml}"))
}

fn xml_of(bytes: &[u8]) -> String {
    let mut reader: wbxml::Reader<&[u8]> = wbxml::Reader::new(bytes);
    let mut out = Vec::new();
    wbxml::xml::decode::decode(&mut reader, &mut out)
        .unwrap_or_else(|e| panic!("response does not decode: {e:?}"));
    String::from_utf8(out).unwrap()
}

fn tag(ns: &str, name: &str) -> Tag {
    Tag::by_name(ns, name).unwrap_or_else(|| panic!("no tag {ns}:{name}"))
}

/// The response body as a tree under `ns:root`.
fn tree(bytes: &[u8], ns: &str, root: &str) -> Node {
    let mut p = Parser::with_limits(bytes, Limits::default());
    let child = p
        .root(tag(ns, root))
        .unwrap()
        .unwrap_or_else(|| panic!("empty body, expected {root}"));
    let node = p.tree(child).unwrap();
    p.finish().unwrap();
    node
}

/// Every descendant's text with this tag, depth first.
fn texts(node: &Node, ns: &str, name: &str) -> Vec<String> {
    let t = tag(ns, name);
    let mut out = Vec::new();
    fn walk(n: &Node, t: Tag, out: &mut Vec<String>) {
        for c in n.children() {
            if c.tag == t {
                out.push(c.text().unwrap_or("<container>").to_string());
            }
            walk(c, t, out);
        }
    }
    walk(node, t, &mut out);
    out
}

fn count(node: &Node, ns: &str, name: &str) -> usize {
    texts(node, ns, name).len()
}

/// A device talking to the lab.
struct Device {
    addr: SocketAddr,
    tls_ca: Option<String>,
    version: &'static str,
    device_id: String,
    policy_key: Option<String>,
    stream: Option<Box<dyn Stream>>,
    extra_headers: Vec<(&'static str, String)>,
}

impl Device {
    fn new(handle: &Handle, version: &'static str, id: &str) -> Device {
        Device {
            addr: handle.http_addr().unwrap(),
            tls_ca: None,
            version,
            device_id: id.to_string(),
            policy_key: None,
            stream: None,
            extra_headers: Vec::new(),
        }
    }

    fn connection(&mut self) -> &mut Box<dyn Stream> {
        if self.stream.is_none() {
            self.stream = Some(match &self.tls_ca {
                Some(ca) => tls_stream(self.addr, ca, None).unwrap(),
                None => plain_stream(self.addr),
            });
        }
        self.stream.as_mut().unwrap()
    }

    fn raw(&mut self, cmd: &str, body: &[u8]) -> io::Result<Resp> {
        let target = format!(
            "/Microsoft-Server-ActiveSync?Cmd={cmd}&User=lab&DeviceId={}&DeviceType=TestDevice",
            self.device_id
        );
        let mut headers = vec![
            ("Authorization", basic()),
            ("MS-ASProtocolVersion", self.version.to_string()),
            ("Content-Type", "application/vnd.ms-sync.wbxml".to_string()),
        ];
        if let Some(k) = &self.policy_key {
            headers.push(("X-MS-PolicyKey", k.clone()));
        }
        headers.extend(self.extra_headers.iter().cloned());
        let result = exchange(&mut **self.connection(), "POST", &target, &headers, body);
        if result.is_err()
            || result
                .as_ref()
                .is_ok_and(|r| r.header("Connection") == Some("close"))
        {
            self.stream = None;
        }
        result
    }

    fn post(&mut self, cmd: &str, xml: &str) -> Resp {
        let body = if xml.is_empty() {
            Vec::new()
        } else {
            wbxml_of(xml)
        };
        self.raw(cmd, &body).unwrap()
    }

    /// Posts and reads the answer as a tree under the command's root.
    fn call(&mut self, cmd: &str, ns: &str, xml: &str) -> Node {
        let r = self.post(cmd, xml);
        assert_eq!(r.status, 200, "{cmd}: {}", String::from_utf8_lossy(&r.body));
        tree(&r.body, ns, cmd)
    }

    /// Both phases of Provision; returns the final key.
    fn provision(&mut self) -> String {
        let info = if self.version >= "14.1" {
            "<settings:DeviceInformation><settings:Set><settings:Model>TestModel</settings:Model>\
             <settings:OS>Linux</settings:OS></settings:Set></settings:DeviceInformation>"
        } else {
            ""
        };
        let first = self.call(
            "Provision",
            "Provision",
            &format!(
                "<Provision xmlns=\"Provision:\" xmlns:settings=\"Settings:\">{info}<Policies><Policy>\
                 <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>"
            ),
        );
        assert_eq!(
            texts(&first, "Provision", "Status"),
            vec!["1", "1"],
            "{first:?}"
        );
        let temp = texts(&first, "Provision", "PolicyKey").remove(0);
        assert_eq!(count(&first, "Provision", "EASProvisionDoc"), 1);
        let ack = self.call(
            "Provision",
            "Provision",
            &format!(
                "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>\
                 <PolicyKey>{temp}</PolicyKey><Status>1</Status></Policy></Policies></Provision>"
            ),
        );
        assert_eq!(texts(&ack, "Provision", "Status"), vec!["1", "1"]);
        let key = texts(&ack, "Provision", "PolicyKey").remove(0);
        assert_ne!(key, temp);
        self.policy_key = Some(key.clone());
        key
    }

    fn folder_sync(&mut self, key: &str) -> Node {
        self.call(
            "FolderSync",
            "FolderHierarchy",
            &format!(
                "<FolderSync xmlns=\"FolderHierarchy:\"><SyncKey>{key}</SyncKey></FolderSync>"
            ),
        )
    }

    fn sync(&mut self, collection: &str, key: &str, extra: &str) -> Node {
        self.call(
            "Sync",
            "AirSync",
            &format!(
                "<Sync xmlns=\"AirSync:\" xmlns:airsyncbase=\"AirSyncBase:\"><Collections><Collection>\
                 <SyncKey>{key}</SyncKey><CollectionId>{collection}</CollectionId>{extra}</Collection>\
                 </Collections></Sync>"
            ),
        )
    }
}

fn admin(handle: &Handle, method: &str, path: &str, body: Option<Json>) -> Resp {
    let mut s = plain_stream(handle.admin_addr().unwrap());
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    exchange(
        &mut *s,
        method,
        path,
        &[("Content-Type", "application/json".into())],
        &bytes,
    )
    .unwrap()
}

fn folder_count(handle: &Handle, id: &str) -> usize {
    handle.state()["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["server_id"] == id)
        .unwrap()["items"]
        .as_u64()
        .unwrap() as usize
}

#[test]
fn options_lists_versions_and_commands_and_needs_authentication() {
    let h = lab(|c| {
        c.versions = vec![wbxml::ProtocolVersion::V14_1, wbxml::ProtocolVersion::V16_1];
        c.bearer_tokens = vec!["good-token".into()];
        c.expired_tokens = vec!["old-token".into()];
    });
    let mut s = plain_stream(h.http_addr().unwrap());
    let r = exchange(&mut *s, "OPTIONS", "/Microsoft-Server-ActiveSync", &[], b"").unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.headers_named("WWW-Authenticate")
            .iter()
            .any(|v| v.starts_with("Basic"))
    );
    assert!(
        r.headers_named("WWW-Authenticate")
            .iter()
            .any(|v| v.starts_with("Bearer"))
    );
    let r = exchange(
        &mut *s,
        "OPTIONS",
        "/Microsoft-Server-ActiveSync",
        &[("Authorization", basic())],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("MS-ASProtocolVersions"), Some("14.1,16.1"));
    let commands = r.header("MS-ASProtocolCommands").unwrap();
    for c in [
        "Sync",
        "FolderSync",
        "Provision",
        "Ping",
        "ItemOperations",
        "Find",
        "Settings",
    ] {
        assert!(
            commands.split(',').any(|x| x == c),
            "{c} missing from {commands}"
        );
    }
    let r = exchange(
        &mut *s,
        "OPTIONS",
        "/Microsoft-Server-ActiveSync",
        &[("Authorization", "Bearer good-token".into())],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = exchange(
        &mut *s,
        "OPTIONS",
        "/Microsoft-Server-ActiveSync",
        &[("Authorization", "Bearer old-token".into())],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.header("WWW-Authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("lab@example.com:nope")
    );
    let r = exchange(
        &mut *s,
        "OPTIONS",
        "/Microsoft-Server-ActiveSync",
        &[("Authorization", wrong)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 401);
}

#[test]
fn https_with_the_lab_ca_and_the_pem_endpoints() {
    let dir = std::env::temp_dir().join(format!("easync-lab-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem_path = dir.join("ca.pem");
    let h = lab(|c| c.cert_out = Some(pem_path.clone()));
    let ca = h.ca_pem();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(std::fs::read_to_string(&pem_path).unwrap(), ca);
    let mut s = tls_stream(h.https_addr().unwrap(), &ca, None).unwrap();
    let r = exchange(
        &mut *s,
        "OPTIONS",
        "/Microsoft-Server-ActiveSync",
        &[("Authorization", basic())],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("MS-ASProtocolVersions").unwrap().contains("16.1"));
    // A whole EAS exchange over TLS, on the same connection.
    let mut d = Device::new(&h, "16.1", "tlsdev");
    d.addr = h.https_addr().unwrap();
    d.tls_ca = Some(ca.clone());
    d.provision();
    let fs = d.folder_sync("0");
    assert_eq!(texts(&fs, "FolderHierarchy", "Status"), vec!["1"]);
    let r = admin(&h, "GET", "/ca.pem", None);
    assert_eq!(String::from_utf8(r.body).unwrap(), ca);
    let mut s = plain_stream(h.http_addr().unwrap());
    let r = exchange(&mut *s, "GET", "/ca.pem", &[], b"").unwrap();
    assert_eq!(String::from_utf8(r.body).unwrap(), ca);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn client_certificates_from_the_lab_ca_are_required_when_configured() {
    let h = lab(|c| c.require_client_cert = true);
    let ca = h.ca_pem();
    // Without a certificate the handshake (or the first exchange) fails.
    let refused = tls_stream(h.https_addr().unwrap(), &ca, None).and_then(|mut s| {
        exchange(
            &mut *s,
            "OPTIONS",
            "/Microsoft-Server-ActiveSync",
            &[("Authorization", basic())],
            b"",
        )
    });
    assert!(refused.is_err(), "{refused:?}");
    let issued = admin(
        &h,
        "POST",
        "/client-cert",
        Some(json!({"common_name": "device-1"})),
    )
    .json();
    let (cert, key) = (
        issued["cert_pem"].as_str().unwrap(),
        issued["key_pem"].as_str().unwrap(),
    );
    let mut s = tls_stream(h.https_addr().unwrap(), &ca, Some((cert, key))).unwrap();
    let r = exchange(
        &mut *s,
        "OPTIONS",
        "/Microsoft-Server-ActiveSync",
        &[("Authorization", basic())],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn provision_two_phases_and_policy_key_enforcement() {
    let h = lab(|_| {});
    let mut d = Device::new(&h, "14.1", "prov141");
    // No key yet: in-band 142 on 14.0 and later.
    let fs = d.folder_sync("0");
    assert_eq!(texts(&fs, "FolderHierarchy", "Status"), vec!["142"]);
    // 14.1 wants DeviceInformation in Provision.
    let r = d.call(
        "Provision",
        "Provision",
        "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>",
    );
    assert_eq!(texts(&r, "Provision", "Status"), vec!["165"]);
    let key = d.provision();
    let fs = d.folder_sync("0");
    assert_eq!(texts(&fs, "FolderHierarchy", "Status"), vec!["1"]);
    // An unknown key.
    d.policy_key = Some("12345".into());
    assert_eq!(
        texts(&d.folder_sync("0"), "FolderHierarchy", "Status"),
        vec!["144"]
    );
    // The admin changes the policy: the old key is refused with 143.
    d.policy_key = Some(key);
    h.set_policy(vec![
        ("DevicePasswordEnabled".into(), "1".into()),
        ("MinDevicePasswordLength".into(), "8".into()),
    ])
    .unwrap();
    assert_eq!(
        texts(&d.folder_sync("0"), "FolderHierarchy", "Status"),
        vec!["143"]
    );
    d.provision();
    assert_eq!(
        texts(&d.folder_sync("0"), "FolderHierarchy", "Status"),
        vec!["1"]
    );
    // Ping needs no key.
    d.policy_key = None;
    let ping = d.call(
        "Ping",
        "Ping",
        "<Ping xmlns=\"Ping:\"><HeartbeatInterval>1</HeartbeatInterval><Folders><Folder><Id>3</Id><Class>Email</Class></Folder></Folders></Ping>",
    );
    assert_eq!(texts(&ping, "Ping", "Status"), vec!["1"]);
    let state = h.state();
    let dev = state["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["device_id"] == "prov141")
        .unwrap()
        .clone();
    assert_eq!(dev["acks"], json!([1, 1]));
    assert_eq!(dev["device_information"]["Model"], "TestModel");

    // 12.1: HTTP 449 instead, and DeviceInformation does not belong in Provision.
    let mut old = Device::new(&h, "12.1", "prov121");
    assert_eq!(
        old.post(
            "FolderSync",
            "<FolderSync xmlns=\"FolderHierarchy:\"><SyncKey>0</SyncKey></FolderSync>"
        )
        .status,
        449
    );
    old.provision();
    assert_eq!(
        texts(&old.folder_sync("0"), "FolderHierarchy", "Status"),
        vec!["1"]
    );

    // Acknowledging a key that was never handed out.
    let r = d.call(
        "Provision",
        "Provision",
        "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>\
         <PolicyKey>99</PolicyKey><Status>1</Status></Policy></Policies></Provision>",
    );
    assert_eq!(texts(&r, "Provision", "Status"), vec!["1", "5"]);
}

#[test]
fn partial_compliance_is_refused_when_full_compliance_is_required() {
    let h = lab(|c| c.require_full_compliance = true);
    let mut d = Device::new(&h, "16.1", "partial");
    let first = d.call(
        "Provision",
        "Provision",
        "<Provision xmlns=\"Provision:\" xmlns:settings=\"Settings:\"><settings:DeviceInformation><settings:Set>\
         <settings:Model>M</settings:Model></settings:Set></settings:DeviceInformation><Policies><Policy>\
         <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>",
    );
    let temp = texts(&first, "Provision", "PolicyKey").remove(0);
    let ack = d.call(
        "Provision",
        "Provision",
        &format!(
            "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>\
             <PolicyKey>{temp}</PolicyKey><Status>2</Status></Policy></Policies></Provision>"
        ),
    );
    assert_eq!(texts(&ack, "Provision", "Status"), vec!["139"]);
    assert_eq!(count(&ack, "Provision", "PolicyKey"), 0);
    assert_eq!(h.state()["devices"][0]["acks"], json!([2]));
}

#[test]
fn an_empty_policy_means_no_policy_and_no_key() {
    let h = lab(|c| c.policy.clear());
    let mut d = Device::new(&h, "14.0", "nopolicy");
    let r = d.call(
        "Provision",
        "Provision",
        "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>",
    );
    assert_eq!(texts(&r, "Provision", "Status"), vec!["1", "2"]);
    assert_eq!(count(&r, "Provision", "PolicyKey"), 0);
    assert_eq!(
        texts(&d.folder_sync("0"), "FolderHierarchy", "Status"),
        vec!["1"]
    );
}

#[test]
fn folder_sync_reports_admin_and_client_changes() {
    let h = lab(|c| c.policy.clear());
    let mut d = Device::new(&h, "16.1", "folders");
    let fs = d.folder_sync("0");
    assert_eq!(texts(&fs, "FolderHierarchy", "Count"), vec!["10"]);
    let names = texts(&fs, "FolderHierarchy", "DisplayName");
    for n in [
        "Inbox",
        "Drafts",
        "Deleted Items",
        "Sent Items",
        "Outbox",
        "Tasks",
        "Calendar",
        "Contacts",
        "Notes",
        "Projects",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing");
    }
    let types = texts(&fs, "FolderHierarchy", "Type");
    for t in ["2", "3", "4", "5", "6", "7", "8", "9", "10", "12"] {
        assert!(types.iter().any(|x| x == t), "type {t} missing");
    }
    let key = texts(&fs, "FolderHierarchy", "SyncKey").remove(0);
    // Nothing changed: same key, Count 0.
    let again = d.folder_sync(&key);
    assert_eq!(texts(&again, "FolderHierarchy", "Count"), vec!["0"]);
    assert_eq!(
        texts(&again, "FolderHierarchy", "SyncKey"),
        vec![key.clone()]
    );
    // Admin changes arrive as Add, Update and Delete.
    let added = h.add_folder("0", "Archive", 12).unwrap();
    h.update_folder("12", "0", "Projects 2026").unwrap();
    let fs = d.folder_sync(&key);
    assert_eq!(texts(&fs, "FolderHierarchy", "Count"), vec!["2"]);
    assert_eq!(count(&fs, "FolderHierarchy", "Add"), 1);
    assert_eq!(count(&fs, "FolderHierarchy", "Update"), 1);
    let key = texts(&fs, "FolderHierarchy", "SyncKey").remove(0);
    h.delete_folder(&added).unwrap();
    let fs = d.folder_sync(&key);
    assert_eq!(texts(&fs, "FolderHierarchy", "ServerId"), vec![added]);
    assert_eq!(count(&fs, "FolderHierarchy", "Delete"), 1);
    let key = texts(&fs, "FolderHierarchy", "SyncKey").remove(0);
    // A stale key: Status 9.
    assert_eq!(
        texts(&d.folder_sync("77"), "FolderHierarchy", "Status"),
        vec!["9"]
    );
    // The client creates, renames and deletes a folder.
    let c = d.call(
        "FolderCreate",
        "FolderHierarchy",
        &format!("<FolderCreate xmlns=\"FolderHierarchy:\"><SyncKey>{key}</SyncKey><ParentId>0</ParentId><DisplayName>Mine</DisplayName><Type>12</Type></FolderCreate>"),
    );
    assert_eq!(texts(&c, "FolderHierarchy", "Status"), vec!["1"]);
    let id = texts(&c, "FolderHierarchy", "ServerId").remove(0);
    let key = texts(&c, "FolderHierarchy", "SyncKey").remove(0);
    let dup = d.call(
        "FolderCreate",
        "FolderHierarchy",
        &format!("<FolderCreate xmlns=\"FolderHierarchy:\"><SyncKey>{key}</SyncKey><ParentId>0</ParentId><DisplayName>Mine</DisplayName><Type>12</Type></FolderCreate>"),
    );
    assert_eq!(texts(&dup, "FolderHierarchy", "Status"), vec!["2"]);
    let u = d.call(
        "FolderUpdate",
        "FolderHierarchy",
        &format!("<FolderUpdate xmlns=\"FolderHierarchy:\"><SyncKey>{key}</SyncKey><ServerId>2</ServerId><ParentId>0</ParentId><DisplayName>X</DisplayName></FolderUpdate>"),
    );
    assert_eq!(
        texts(&u, "FolderHierarchy", "Status"),
        vec!["3"],
        "Inbox is special"
    );
    let del = d.call(
        "FolderDelete",
        "FolderHierarchy",
        &format!("<FolderDelete xmlns=\"FolderHierarchy:\"><SyncKey>{key}</SyncKey><ServerId>{id}</ServerId></FolderDelete>"),
    );
    assert_eq!(texts(&del, "FolderHierarchy", "Status"), vec!["1"]);
    let key = texts(&del, "FolderHierarchy", "SyncKey").remove(0);
    // The client's own changes are not echoed back.
    assert_eq!(
        texts(&d.folder_sync(&key), "FolderHierarchy", "Count"),
        vec!["0"]
    );
}

#[test]
fn sync_initial_then_batches_with_more_available_and_one_retry() {
    let h = lab(|c| c.policy.clear());
    let inbox = folder_count(&h, "2");
    assert!(inbox > 5, "the seed fills the inbox");
    let mut d = Device::new(&h, "14.1", "syncer");
    let first = d.sync("2", "0", "");
    assert_eq!(texts(&first, "AirSync", "Status"), vec!["1"]);
    assert_eq!(count(&first, "AirSync", "Add"), 0);
    let mut key = texts(&first, "AirSync", "SyncKey").remove(0);
    let options = "<WindowSize>5</WindowSize><Options><airsyncbase:BodyPreference><airsyncbase:Type>1</airsyncbase:Type>\
                   <airsyncbase:TruncationSize>20</airsyncbase:TruncationSize></airsyncbase:BodyPreference></Options>";
    let batch = d.sync("2", &key, options);
    assert_eq!(count(&batch, "AirSync", "Add"), 5);
    assert_eq!(count(&batch, "AirSync", "MoreAvailable"), 1);
    assert_eq!(texts(&batch, "AirSyncBase", "Truncated"), vec!["1"; 5]);
    assert!(
        texts(&batch, "AirSyncBase", "Data")
            .iter()
            .all(|d| d.len() <= 20)
    );
    let first_ids = texts(&batch, "AirSync", "ServerId");
    // The same request again (the answer was lost): the same batch under a new key.
    let retry = d.sync("2", &key, options);
    assert_eq!(texts(&retry, "AirSync", "ServerId"), first_ids);
    let new_key = texts(&retry, "AirSync", "SyncKey").remove(0);
    // Now the first key is stale.
    let stale = d.sync("2", &key, options);
    assert_eq!(texts(&stale, "AirSync", "Status"), vec!["3"]);
    key = new_key;
    let mut seen = first_ids.len();
    loop {
        let b = d.sync("2", &key, options);
        seen += count(&b, "AirSync", "Add");
        key = texts(&b, "AirSync", "SyncKey").remove(0);
        if count(&b, "AirSync", "MoreAvailable") == 0 {
            break;
        }
    }
    assert_eq!(seen, inbox);
    // Nothing new: Status 1, no Commands, same key.
    let quiet = d.sync("2", &key, options);
    assert_eq!(count(&quiet, "AirSync", "Commands"), 0);
    assert_eq!(texts(&quiet, "AirSync", "SyncKey"), vec![key.clone()]);
    // An admin change arrives as Change; a delete as Delete.
    let victim = first_ids[0].clone();
    h.change_item(
        &victim,
        vec![easync::lab::model::Prop::text("Read", "1")],
        None,
    )
    .unwrap();
    h.delete_item(&first_ids[1]).unwrap();
    let changes = d.sync("2", &key, options);
    assert_eq!(count(&changes, "AirSync", "Change"), 1);
    assert_eq!(count(&changes, "AirSync", "Delete"), 1);
    // An unknown collection: 12; GetItemEstimate before priming: 3.
    let bad = d.sync("999", "0", "");
    assert_eq!(texts(&bad, "AirSync", "Status"), vec!["12"]);
}

#[test]
fn sync_client_commands_get_responses() {
    let h = lab(|c| c.policy.clear());
    let mut d = Device::new(&h, "16.1", "writer");
    let key = texts(&d.sync("9", "0", ""), "AirSync", "SyncKey").remove(0);
    let all = d.sync("9", &key, "<WindowSize>100</WindowSize>");
    let existing = texts(&all, "AirSync", "ServerId");
    let key = texts(&all, "AirSync", "SyncKey").remove(0);
    let r = d.sync(
        "9",
        &key,
        &format!(
            "<GetChanges>0</GetChanges><Commands><Add><ClientId>c1</ClientId><ApplicationData xmlns:contacts=\"Contacts:\">\
             <contacts:FirstName>Zed</contacts:FirstName><contacts:LastName>Client</contacts:LastName></ApplicationData></Add>\
             <Delete><ServerId>{}</ServerId></Delete><Delete><ServerId>9:nope</ServerId></Delete>\
             <Fetch><ServerId>{}</ServerId></Fetch></Commands>",
            existing[0], existing[1]
        ),
    );
    let statuses = texts(&r, "AirSync", "Status");
    assert_eq!(
        statuses,
        vec!["1", "1", "8", "1"],
        "collection, Add, failed Delete, Fetch"
    );
    assert_eq!(texts(&r, "AirSync", "ClientId"), vec!["c1"]);
    let new_id = texts(&r, "AirSync", "ServerId")[0].clone();
    assert!(new_id.starts_with("9:"));
    assert_eq!(
        texts(&r, "Contacts", "FirstName").len(),
        1,
        "the fetched contact"
    );
    let items = admin(&h, "GET", "/items?folder=9", None).json();
    let list = items["items"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|i| i["server_id"] == new_id && i["props"]["FirstName"] == "Zed")
    );
    assert!(!list.iter().any(|i| i["server_id"] == existing[0]));
}

#[test]
fn ping_wakes_when_the_admin_adds_mail() {
    let h = Arc::new(lab(|c| c.policy.clear()));
    let mut d = Device::new(&h, "14.1", "pinger");
    let key = texts(&d.sync("2", "0", ""), "AirSync", "SyncKey").remove(0);
    let mut key = key;
    loop {
        let b = d.sync("2", &key, "<WindowSize>100</WindowSize>");
        key = texts(&b, "AirSync", "SyncKey").remove(0);
        if count(&b, "AirSync", "MoreAvailable") == 0 {
            break;
        }
    }
    // Out of bounds, too many folders, nothing to reuse.
    let mut fresh = Device::new(&h, "14.1", "fresh");
    assert_eq!(
        texts(&fresh.call("Ping", "Ping", ""), "Ping", "Status"),
        vec!["3"]
    );
    let oob = d.call("Ping", "Ping", "<Ping xmlns=\"Ping:\"><HeartbeatInterval>9999</HeartbeatInterval><Folders><Folder><Id>2</Id><Class>Email</Class></Folder></Folders></Ping>");
    assert_eq!(texts(&oob, "Ping", "Status"), vec!["5"]);
    assert_eq!(texts(&oob, "Ping", "HeartbeatInterval"), vec!["3540"]);
    // Expiry: Status 1.
    let quiet = d.call("Ping", "Ping", "<Ping xmlns=\"Ping:\"><HeartbeatInterval>1</HeartbeatInterval><Folders><Folder><Id>2</Id><Class>Email</Class></Folder></Folders></Ping>");
    assert_eq!(texts(&quiet, "Ping", "Status"), vec!["1"]);
    let waker = {
        let h = h.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            h.add_mail("2", "wake up", "new mail").unwrap();
        })
    };
    let woken = d.call("Ping", "Ping", "<Ping xmlns=\"Ping:\"><HeartbeatInterval>60</HeartbeatInterval><Folders><Folder><Id>2</Id><Class>Email</Class></Folder><Folder><Id>3</Id><Class>Email</Class></Folder></Folders></Ping>");
    waker.join().unwrap();
    assert_eq!(texts(&woken, "Ping", "Status"), vec!["2"]);
    assert!(texts(&woken, "Ping", "Folder").contains(&"2".to_string()));
    // An empty Ping reuses the last one (the change is still pending, so it answers at once).
    let again = d.call("Ping", "Ping", "");
    assert_eq!(texts(&again, "Ping", "Status"), vec!["2"]);
}

#[test]
fn each_fault_is_visible_on_the_wire() {
    let h = lab(|c| c.policy.clear());
    let mut d = Device::new(&h, "16.1", "faulty");
    let fs = "<FolderSync xmlns=\"FolderHierarchy:\"><SyncKey>0</SyncKey></FolderSync>";

    h.inject_fault(Fault::new(FaultKind::RetryWith));
    assert_eq!(d.post("FolderSync", fs).status, 449);

    let r = admin(
        &h,
        "POST",
        "/faults",
        Some(json!({"kind": "redirect", "command": "FolderSync"})),
    );
    assert_eq!(r.status, 200);
    // A fault for another command does not fire here.
    h.inject_fault(Fault {
        command: Some("Ping".into()),
        ..Fault::new(FaultKind::ServerError)
    });
    let r = d.post("FolderSync", fs);
    assert_eq!(r.status, 451);
    let location = r.header("X-MS-Location").unwrap().to_string();
    assert!(
        location.ends_with("/lab-alias/Microsoft-Server-ActiveSync"),
        "{location}"
    );
    // The alias serves ActiveSync, so following the redirect works.
    let path = location
        .split_once("://")
        .unwrap()
        .1
        .split_once('/')
        .unwrap()
        .1;
    let mut s = plain_stream(h.http_addr().unwrap());
    let r = exchange(
        &mut *s,
        "POST",
        &format!("/{path}?Cmd=FolderSync&User=lab&DeviceId=faulty&DeviceType=T"),
        &[
            ("Authorization", basic()),
            ("MS-ASProtocolVersion", "16.1".into()),
        ],
        &wbxml_of(fs),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        texts(
            &tree(&r.body, "FolderHierarchy", "FolderSync"),
            "FolderHierarchy",
            "Status"
        ),
        vec!["1"]
    );
    admin(&h, "DELETE", "/faults", None);

    h.inject_fault(Fault {
        retry_after: Some("Wed, 21 Oct 2026 07:28:00 GMT".into()),
        ..Fault::new(FaultKind::Throttle)
    });
    let r = d.post("FolderSync", fs);
    assert_eq!(
        (r.status, r.header("Retry-After")),
        (503, Some("Wed, 21 Oct 2026 07:28:00 GMT"))
    );
    h.inject_fault(Fault::new(FaultKind::Throttle));
    assert_eq!(d.post("FolderSync", fs).header("Retry-After"), Some("1"));

    h.inject_fault(Fault::new(FaultKind::ServerError));
    assert_eq!(d.post("FolderSync", fs).status, 500);

    h.inject_fault(Fault {
        delay_ms: Some(50),
        ..Fault::new(FaultKind::Slow)
    });
    assert_eq!(d.post("FolderSync", fs).status, 200);

    h.inject_fault(Fault::new(FaultKind::Reset));
    assert!(
        d.raw("FolderSync", &wbxml_of(fs)).is_err(),
        "the body is cut off and the connection closed"
    );

    h.inject_fault(Fault::new(FaultKind::Truncate));
    let r = d.post("FolderSync", fs);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    assert_eq!(
        &r.body[..4],
        &[0x03, 0x01, 0x6a, 0x00],
        "a valid prefix starts with the header"
    );
    let mut p = Parser::with_limits(&r.body[..], Limits::default());
    let root = p
        .root(tag("FolderHierarchy", "FolderSync"))
        .unwrap()
        .unwrap();
    assert!(p.tree(root).is_err(), "the document ends early");

    h.inject_fault(Fault::new(FaultKind::Garbage));
    let r = d.post("FolderSync", fs);
    assert_eq!(r.status, 200);
    let mut p = Parser::with_limits(&r.body[..], Limits::default());
    let parsed = p
        .root(tag("FolderHierarchy", "FolderSync"))
        .and_then(|c| match c {
            Some(c) => p.tree(c).map(|_| ()),
            None => Ok(()),
        });
    assert!(parsed.is_err());

    // Counted faults stop after N requests.
    h.inject_fault(Fault {
        count: 2,
        ..Fault::new(FaultKind::ServerError)
    });
    assert_eq!(d.post("FolderSync", fs).status, 500);
    assert_eq!(d.post("FolderSync", fs).status, 500);
    assert_eq!(d.post("FolderSync", fs).status, 200);
    assert!(h.state()["faults"].as_array().unwrap().is_empty());
}

#[test]
fn admin_json_endpoints() {
    let h = lab(|_| {});
    let r = admin(
        &h,
        "POST",
        "/items",
        Some(json!({
            "folder": "2", "subject": "From the admin", "body": "hello", "html": "<p>hello</p>",
            "attachments": [{"name": "a.txt", "data": "attached"}]
        })),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["server_id"].as_str().unwrap().to_string();
    let r = admin(
        &h,
        "PUT",
        &format!("/items/{id}"),
        Some(json!({"props": {"Read": true}, "body": "changed"})),
    );
    assert_eq!(r.status, 200);
    let items = admin(&h, "GET", "/items?folder=2", None).json();
    let item = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["server_id"] == id)
        .unwrap()
        .clone();
    assert_eq!(
        (item["props"]["Read"].as_str(), item["body"].as_str()),
        (Some("1"), Some("changed"))
    );
    assert_eq!(item["attachments"][0]["size"], 8);
    assert_eq!(
        admin(&h, "DELETE", &format!("/items/{id}"), None).status,
        200
    );
    assert_eq!(
        admin(&h, "DELETE", &format!("/items/{id}"), None).status,
        404
    );

    let r = admin(
        &h,
        "POST",
        "/folders",
        Some(json!({"name": "Field reports"})),
    );
    let folder = r.json()["server_id"].as_str().unwrap().to_string();
    assert_eq!(
        admin(
            &h,
            "PUT",
            &format!("/folders/{folder}"),
            Some(json!({"name": "Reports"}))
        )
        .status,
        200
    );
    let state = admin(&h, "GET", "/state", None).json();
    assert!(
        state["folders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Reports")
    );
    assert_eq!(
        admin(&h, "DELETE", &format!("/folders/{folder}"), None).status,
        200
    );

    let r = admin(
        &h,
        "PUT",
        "/policy",
        Some(
            json!({"settings": {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 6}, "require_full_compliance": true}),
        ),
    );
    assert_eq!(r.status, 200);
    let state = h.state();
    assert_eq!(state["policy"]["settings"]["MinDevicePasswordLength"], "6");
    assert_eq!(state["policy"]["require_full_compliance"], true);
    assert_eq!(
        admin(
            &h,
            "PUT",
            "/policy",
            Some(json!({"settings": {"NoSuchSetting": 1}}))
        )
        .status,
        400
    );

    assert_eq!(
        admin(&h, "POST", "/wipe", Some(json!({"account_only": false}))).status,
        404,
        "no device yet"
    );
    assert_eq!(
        admin(&h, "POST", "/faults", Some(json!({"kind": "bogus"}))).status,
        400
    );
    assert_eq!(
        admin(
            &h,
            "POST",
            "/faults",
            Some(json!({"kind": "slow", "command": "Nope"}))
        )
        .status,
        400
    );
    assert_eq!(
        admin(&h, "POST", "/items", Some(json!({"folder": "404"}))).status,
        400
    );
    assert_eq!(admin(&h, "GET", "/nothing", None).status, 404);
    let mut s = plain_stream(h.admin_addr().unwrap());
    let r = exchange(&mut *s, "POST", "/items", &[], b"{not json").unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("JSON"));
}

#[test]
fn remote_wipe_and_account_only_wipe() {
    let h = lab(|_| {});
    let mut d = Device::new(&h, "16.1", "wipeme");
    d.provision();
    assert_eq!(
        texts(&d.folder_sync("0"), "FolderHierarchy", "Status"),
        vec!["1"]
    );
    let r = admin(
        &h,
        "POST",
        "/wipe",
        Some(json!({"device_id": "wipeme", "account_only": true})),
    );
    assert_eq!(r.json()["devices"], 1);
    assert_eq!(
        texts(&d.folder_sync("0"), "FolderHierarchy", "Status"),
        vec!["140"]
    );
    let p = d.call(
        "Provision",
        "Provision",
        "<Provision xmlns=\"Provision:\" xmlns:settings=\"Settings:\"><settings:DeviceInformation><settings:Set>\
         <settings:Model>M</settings:Model></settings:Set></settings:DeviceInformation><Policies><Policy>\
         <PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>",
    );
    assert_eq!(count(&p, "Provision", "AccountOnlyRemoteWipe"), 1);
    assert_eq!(count(&p, "Provision", "RemoteWipe"), 0);
    assert_eq!(h.state()["devices"][0]["wipe"]["state"], "sent");
    let ack = d.call(
        "Provision",
        "Provision",
        "<Provision xmlns=\"Provision:\"><AccountOnlyRemoteWipe><Status>1</Status></AccountOnlyRemoteWipe></Provision>",
    );
    assert_eq!(texts(&ack, "Provision", "Status"), vec!["1"]);
    let wipe = h.state()["devices"][0]["wipe"].clone();
    assert_eq!(
        wipe,
        json!({"state": "acknowledged", "account_only": true, "status": 1})
    );

    // A full wipe on 14.0.
    let mut old = Device::new(&h, "14.0", "wipe140");
    old.provision();
    h.request_wipe(Some("wipe140"), false).unwrap();
    let p = old.call(
        "Provision",
        "Provision",
        "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>",
    );
    assert_eq!(count(&p, "Provision", "RemoteWipe"), 1);
}

#[test]
fn base64_query_and_gzip_and_bad_requests() {
    let h = lab(|c| c.policy.clear());
    // MS-ASHTTP 2.2.1.1.1.1: version 16.1, FolderSync (9), locale, DeviceId, no key, type.
    let mut q = vec![161u8, 9, 0x09, 0x04, 5];
    q.extend_from_slice(b"b64id");
    q.push(0);
    q.push(4);
    q.extend_from_slice(b"Test");
    q.extend_from_slice(&[8, 3]);
    q.extend_from_slice(b"lab");
    let query = base64::engine::general_purpose::STANDARD.encode(&q);
    let mut s = plain_stream(h.http_addr().unwrap());
    let body = wbxml_of("<FolderSync xmlns=\"FolderHierarchy:\"><SyncKey>0</SyncKey></FolderSync>");
    let r = exchange(
        &mut *s,
        "POST",
        &format!(
            "/Microsoft-Server-ActiveSync?{}",
            query
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        ),
        &[
            ("Authorization", basic()),
            ("Accept-Encoding", "gzip".into()),
        ],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert!(xml_of(&plain).contains("<DisplayName>Inbox</DisplayName>"));
    assert!(
        h.state()["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["device_id"] == "b64id")
    );

    // Without Accept-Encoding the body is plain WBXML.
    let mut d = Device::new(&h, "16.1", "plain");
    let r = d.post(
        "FolderSync",
        "<FolderSync xmlns=\"FolderHierarchy:\"><SyncKey>0</SyncKey></FolderSync>",
    );
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(&r.body[..4], &[0x03, 0x01, 0x6a, 0x00]);

    // Missing DeviceId: 400; unknown command: 501; no version: 400; not WBXML: 400.
    let auth = [
        ("Authorization", basic()),
        ("MS-ASProtocolVersion", "16.1".to_string()),
    ];
    let post = |target: &str, headers: &[(&str, String)], body: &[u8]| {
        let mut s = plain_stream(h.http_addr().unwrap());
        exchange(&mut *s, "POST", target, headers, body)
            .unwrap()
            .status
    };
    assert_eq!(
        post(
            "/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=lab&DeviceType=T",
            &auth,
            &body
        ),
        400
    );
    assert_eq!(
        post(
            "/Microsoft-Server-ActiveSync?Cmd=Bogus&User=lab&DeviceId=x&DeviceType=T",
            &auth,
            &body
        ),
        501
    );
    assert_eq!(
        post(
            "/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=lab&DeviceId=x&DeviceType=T",
            &auth[..1],
            &body
        ),
        400
    );
    assert_eq!(
        post(
            "/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=lab&DeviceId=x&DeviceType=T",
            &auth,
            b"junk"
        ),
        400
    );
    let v141 = [
        ("Authorization", basic()),
        ("MS-ASProtocolVersion", "14.1".to_string()),
    ];
    assert_eq!(
        post(
            "/Microsoft-Server-ActiveSync?Cmd=Find&User=lab&DeviceId=x&DeviceType=T",
            &v141,
            &body
        ),
        501
    );
}

#[test]
fn mail_lands_in_sent_and_inbox_and_item_operations_fetches_it() {
    let h = lab(|c| {
        c.policy.clear();
        c.empty_sync = EmptySync::Never;
    });
    let mut d = Device::new(&h, "16.1", "mailer");
    let (sent, inbox) = (folder_count(&h, "5"), folder_count(&h, "2"));
    let mime =
        format!("From: <{USER}>\r\nTo: \"Me\" <{USER}>\r\nSubject: Loop test\r\n\r\nHello me\r\n");
    let r = d.post(
        "SendMail",
        &format!(
            "<SendMail xmlns=\"ComposeMail:\"><ClientId>m1</ClientId><SaveInSentItems/><Mime opaque=\"base64\">{}</Mime></SendMail>",
            base64::engine::general_purpose::STANDARD.encode(&mime)
        ),
    );
    assert_eq!(
        (r.status, r.body.len()),
        (200, 0),
        "success is an empty body"
    );
    assert_eq!(
        (folder_count(&h, "5"), folder_count(&h, "2")),
        (sent + 1, inbox + 1)
    );
    // The same ClientId again: 118.
    let again = d.call(
        "SendMail",
        "ComposeMail",
        &format!(
            "<SendMail xmlns=\"ComposeMail:\"><ClientId>m1</ClientId><Mime opaque=\"base64\">{}</Mime></SendMail>",
            base64::engine::general_purpose::STANDARD.encode(&mime)
        ),
    );
    assert_eq!(texts(&again, "ComposeMail", "Status"), vec!["118"]);

    // Fetch a seeded mail with an attachment, inline and as multipart.
    let items = admin(&h, "GET", "/items?folder=2", None).json();
    let with_att = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| !i["attachments"].as_array().unwrap().is_empty())
        .unwrap()
        .clone();
    let reference = with_att["attachments"][0]["file_reference"]
        .as_str()
        .unwrap()
        .to_string();
    let size = with_att["attachments"][0]["size"].as_u64().unwrap() as usize;
    let fetch = format!(
        "<ItemOperations xmlns=\"ItemOperations:\" xmlns:airsyncbase=\"AirSyncBase:\"><Fetch><Store>Mailbox</Store>\
         <airsyncbase:FileReference>{reference}</airsyncbase:FileReference></Fetch></ItemOperations>"
    );
    let io = d.call("ItemOperations", "ItemOperations", &fetch);
    let data = texts(&io, "ItemOperations", "Data").remove(0);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap()
            .len(),
        size
    );
    d.extra_headers.push(("MS-ASAcceptMultiPart", "T".into()));
    let r = d.post("ItemOperations", &fetch);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.ms-sync.multipart")
    );
    let b = &r.body;
    let le = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
    assert_eq!(le(0), 2);
    let (off0, len0, off1, len1) = (le(4), le(8), le(12), le(16));
    assert_eq!(off0, 20);
    assert_eq!(off1, off0 + len0);
    assert_eq!(len1, size);
    assert_eq!(off1 + len1, b.len());
    let wb = tree(&b[off0..off0 + len0], "ItemOperations", "ItemOperations");
    assert_eq!(texts(&wb, "ItemOperations", "Part"), vec!["1"]);
    d.extra_headers.clear();

    // A whole item with a MIME body.
    let sid = with_att["server_id"].as_str().unwrap();
    let io = d.call(
        "ItemOperations",
        "ItemOperations",
        &format!(
            "<ItemOperations xmlns=\"ItemOperations:\" xmlns:airsync=\"AirSync:\" xmlns:airsyncbase=\"AirSyncBase:\"><Fetch>\
             <Store>Mailbox</Store><airsync:CollectionId>2</airsync:CollectionId><airsync:ServerId>{sid}</airsync:ServerId>\
             <Options><airsync:MIMESupport>2</airsync:MIMESupport><airsyncbase:BodyPreference><airsyncbase:Type>4</airsyncbase:Type>\
             </airsyncbase:BodyPreference></Options></Fetch></ItemOperations>"
        ),
    );
    assert_eq!(texts(&io, "AirSyncBase", "Type"), vec!["4"]);
    assert!(texts(&io, "AirSyncBase", "Data")[0].contains("Content-Type: multipart/mixed"));
}

#[test]
fn settings_search_and_estimate() {
    let h = lab(|c| c.policy.clear());
    let mut d = Device::new(&h, "14.1", "lookup");
    let s = d.call(
        "Settings",
        "Settings",
        "<Settings xmlns=\"Settings:\"><UserInformation><Get/></UserInformation><Oof><Get><BodyType>Text</BodyType></Get></Oof></Settings>",
    );
    assert_eq!(texts(&s, "Settings", "PrimarySmtpAddress"), vec![USER]);
    assert_eq!(texts(&s, "Settings", "OofState"), vec!["0"]);
    let gal = d.call(
        "Search",
        "Search",
        "<Search xmlns=\"Search:\"><Store><Name>GAL</Name><Query>grace</Query><Options><Range>0-9</Range></Options></Store></Search>",
    );
    assert_eq!(
        texts(&gal, "GAL", "EmailAddress"),
        vec!["grace.hopper@example.com"]
    );
    let key = texts(&d.sync("2", "0", ""), "AirSync", "SyncKey").remove(0);
    let est = d.call(
        "GetItemEstimate",
        "GetItemEstimate",
        &format!(
            "<GetItemEstimate xmlns=\"GetItemEstimate:\" xmlns:airsync=\"AirSync:\"><Collections><Collection>\
             <airsync:SyncKey>{key}</airsync:SyncKey><CollectionId>2</CollectionId></Collection></Collections></GetItemEstimate>"
        ),
    );
    assert_eq!(
        texts(&est, "GetItemEstimate", "Estimate"),
        vec![folder_count(&h, "2").to_string()]
    );
}

#[test]
fn the_binary_documents_its_subcommands() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_easync-lab"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in [
        "serve",
        "state",
        "add-item",
        "set-policy",
        "wipe",
        "fault",
        "clear-faults",
        "client-cert",
    ] {
        assert!(
            text.contains(&format!("easync-lab {sub}")),
            "{sub} missing from --help"
        );
    }
    for word in [
        "retry-with",
        "redirect",
        "throttle",
        "server-error",
        "slow",
        "reset",
        "truncate",
        "garbage",
        "POST /faults",
    ] {
        assert!(text.contains(word), "{word} missing from --help");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_easync-lab"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_binary_serves_and_its_clients_drive_the_admin_api() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_easync-lab"))
        .args([
            "serve",
            "--exit-on-stdin-eof",
            "--items",
            "3",
            "--https",
            "off",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut addrs = std::collections::HashMap::new();
    for _ in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let (k, v) = line.trim().split_once(' ').unwrap();
        addrs.insert(k.to_string(), v.to_string());
    }
    assert!(
        addrs.contains_key("http") && addrs.contains_key("admin"),
        "{addrs:?}"
    );
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_easync-lab"))
            .args(args)
            .args(["--admin", &addrs["admin"]])
            .output()
            .unwrap()
    };
    let added = run(&["add-item", "--subject", "from the cli"]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(String::from_utf8_lossy(&added.stdout).contains("server_id"));
    assert!(
        run(&["fault", "throttle", "--retry-after", "9"])
            .status
            .success()
    );
    let state = run(&["state"]);
    let json: Json = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(json["faults"].as_array().unwrap().len(), 1);
    assert!(run(&["clear-faults"]).status.success());
    assert_eq!(run(&["wipe"]).status.code(), Some(1), "no device yet");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn move_resolve_find_meeting_and_older_mail_forms() {
    let h = lab(|c| c.policy.clear());
    let mut d = Device::new(&h, "16.1", "misc");
    let items = admin(&h, "GET", "/items?folder=2", None).json();
    let mail = items["items"][0]["server_id"].as_str().unwrap().to_string();
    let mv = d.call(
        "MoveItems",
        "Move",
        &format!(
            "<MoveItems xmlns=\"Move:\"><Move><SrcMsgId>{mail}</SrcMsgId><SrcFldId>2</SrcFldId><DstFldId>12</DstFldId></Move>\
             <Move><SrcMsgId>2:nope</SrcMsgId><SrcFldId>2</SrcFldId><DstFldId>12</DstFldId></Move></MoveItems>"
        ),
    );
    assert_eq!(texts(&mv, "Move", "Status"), vec!["3", "1"]);
    let moved = texts(&mv, "Move", "DstMsgId").remove(0);
    assert!(moved.starts_with("12:"));
    let cross = d.call(
        "MoveItems",
        "Move",
        &format!("<MoveItems xmlns=\"Move:\"><Move><SrcMsgId>{moved}</SrcMsgId><SrcFldId>12</SrcFldId><DstFldId>8</DstFldId></Move></MoveItems>"),
    );
    assert_eq!(
        texts(&cross, "Move", "Status"),
        vec!["2"],
        "mail cannot go into the calendar"
    );

    let rr = d.call(
        "ResolveRecipients",
        "ResolveRecipients",
        "<ResolveRecipients xmlns=\"ResolveRecipients:\"><To>grace</To><To>nobody-at-all</To></ResolveRecipients>",
    );
    assert_eq!(
        texts(&rr, "ResolveRecipients", "Status"),
        vec!["1", "1", "4"]
    );
    assert_eq!(
        texts(&rr, "ResolveRecipients", "EmailAddress"),
        vec!["grace.hopper@example.com"]
    );

    let find = d.call(
        "Find",
        "Find",
        "<Find xmlns=\"Find:\" xmlns:airsync=\"AirSync:\"><SearchId>s1</SearchId><ExecuteSearch><MailBoxSearchCriterion>\
         <Query><airsync:Class>Email</airsync:Class><airsync:CollectionId>2</airsync:CollectionId><FreeText>message</FreeText></Query>\
         <Options><Range>0-2</Range></Options></MailBoxSearchCriterion></ExecuteSearch></Find>",
    );
    assert_eq!(texts(&find, "Find", "Status"), vec!["1", "1"]);
    assert_eq!(count(&find, "Find", "Result"), 3);
    assert_eq!(texts(&find, "Find", "Range"), vec!["0-2"]);
    assert!(texts(&find, "Find", "Total")[0].parse::<usize>().unwrap() >= 3);

    let events = admin(&h, "GET", "/items?folder=8", None).json();
    let event = events["items"][0]["server_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mr = d.call(
        "MeetingResponse",
        "MeetingResponse",
        &format!(
            "<MeetingResponse xmlns=\"MeetingResponse:\"><Request><UserResponse>1</UserResponse><CollectionId>8</CollectionId>\
             <RequestId>{event}</RequestId></Request></MeetingResponse>"
        ),
    );
    assert_eq!(texts(&mr, "MeetingResponse", "Status"), vec!["1"]);
    assert_eq!(texts(&mr, "MeetingResponse", "CalendarId"), vec![event]);

    // 14.0 SmartReply to a message that does not exist: 150.
    let mut d14 = Device::new(&h, "14.0", "replier");
    let mime = base64::engine::general_purpose::STANDARD
        .encode("To: <x@example.com>\r\nSubject: Re\r\n\r\nok\r\n");
    let r = d14.call(
        "SmartReply",
        "ComposeMail",
        &format!(
            "<SmartReply xmlns=\"ComposeMail:\"><ClientId>r1</ClientId><Source><FolderId>2</FolderId><ItemId>2:nope</ItemId></Source>\
             <Mime opaque=\"base64\">{mime}</Mime></SmartReply>"
        ),
    );
    assert_eq!(texts(&r, "ComposeMail", "Status"), vec!["150"]);

    // 12.1 SendMail: a bare message/rfc822 body, SaveInSent on the request line.
    let sent = folder_count(&h, "5");
    let mut s = plain_stream(h.http_addr().unwrap());
    let r = exchange(
        &mut *s,
        "POST",
        "/Microsoft-Server-ActiveSync?Cmd=SendMail&User=lab&DeviceId=old&DeviceType=T&SaveInSent=T",
        &[
            ("Authorization", basic()),
            ("MS-ASProtocolVersion", "12.1".into()),
            ("Content-Type", "message/rfc822".into()),
        ],
        b"To: <someone@example.com>\r\nSubject: Old style\r\n\r\nHello\r\n",
    )
    .unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(folder_count(&h, "5"), sent + 1);
}

#[test]
fn empty_sync_reuses_the_last_request_and_wait_holds_it() {
    let h = lab(|c| c.policy.clear());
    let mut d = Device::new(&h, "14.1", "emptysync");
    let r = d.post("Sync", "");
    assert_eq!(
        texts(&tree(&r.body, "AirSync", "Sync"), "AirSync", "Status"),
        vec!["13"]
    );
    let key = texts(&d.sync("7", "0", ""), "AirSync", "SyncKey").remove(0);
    let full = d.sync("7", &key, "<WindowSize>2</WindowSize>");
    assert_eq!(count(&full, "AirSync", "Add"), 2);
    // An empty request continues with the last collections and the newest key.
    let r = d.post("Sync", "");
    let next = tree(&r.body, "AirSync", "Sync");
    assert_eq!(texts(&next, "AirSync", "Status"), vec!["1"]);
    assert_ne!(
        texts(&next, "AirSync", "SyncKey")[0],
        texts(&full, "AirSync", "SyncKey")[0]
    );
    // Drain, then a Sync with HeartbeatInterval and nothing new waits and answers empty.
    let mut key = texts(&next, "AirSync", "SyncKey").remove(0);
    loop {
        let b = d.sync("7", &key, "<WindowSize>100</WindowSize>");
        key = texts(&b, "AirSync", "SyncKey").remove(0);
        if count(&b, "AirSync", "MoreAvailable") == 0 {
            break;
        }
    }
    let r = d.post(
        "Sync",
        &format!(
            "<Sync xmlns=\"AirSync:\"><Collections><Collection><SyncKey>{key}</SyncKey><CollectionId>7</CollectionId>\
             </Collection></Collections><HeartbeatInterval>1</HeartbeatInterval></Sync>"
        ),
    );
    assert_eq!((r.status, r.body.len()), (200, 0));
    // Collection children out of order are a protocol error.
    let bad = d.post(
        "Sync",
        &format!(
            "<Sync xmlns=\"AirSync:\"><Collections><Collection><CollectionId>7</CollectionId><SyncKey>{key}</SyncKey>\
             </Collection></Collections></Sync>"
        ),
    );
    assert_eq!(
        texts(&tree(&bad.body, "AirSync", "Sync"), "AirSync", "Status"),
        vec!["4"]
    );
}

#[test]
fn sogo_like_empty_sync_bodies_and_ping_folder_limit() {
    let h = lab(|c| {
        c.policy.clear();
        c.empty_sync = EmptySync::ContactsCalendar;
        c.ping_max_folders = 1;
    });
    let mut d = Device::new(&h, "14.1", "sogo-like");
    for (folder, empty) in [("9", true), ("2", false)] {
        let mut key = texts(&d.sync(folder, "0", ""), "AirSync", "SyncKey").remove(0);
        loop {
            let r = d.post(
                "Sync",
                &format!(
                    "<Sync xmlns=\"AirSync:\"><Collections><Collection><SyncKey>{key}</SyncKey><CollectionId>{folder}</CollectionId>\
                     <WindowSize>100</WindowSize></Collection></Collections></Sync>"
                ),
            );
            if r.body.is_empty() {
                assert!(empty, "only Contacts/Calendar get an empty body");
                break;
            }
            let t = tree(&r.body, "AirSync", "Sync");
            let new_key = texts(&t, "AirSync", "SyncKey").remove(0);
            if new_key == key {
                assert!(!empty, "an unchanged contacts sync must be an empty body");
                assert_eq!(count(&t, "AirSync", "Commands"), 0);
                break;
            }
            key = new_key;
        }
    }
    let too_many = d.call(
        "Ping",
        "Ping",
        "<Ping xmlns=\"Ping:\"><HeartbeatInterval>5</HeartbeatInterval><Folders><Folder><Id>2</Id><Class>Email</Class></Folder>\
         <Folder><Id>9</Id><Class>Contacts</Class></Folder></Folders></Ping>",
    );
    assert_eq!(texts(&too_many, "Ping", "Status"), vec!["6"]);
    assert_eq!(texts(&too_many, "Ping", "MaxFolders"), vec!["1"]);
}

#[test]
fn the_same_seed_gives_the_same_mailbox() {
    let summary = |h: &Handle| -> Vec<(String, String)> {
        let items = admin(h, "GET", "/items", None).json();
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["server_id"].as_str().unwrap().to_string(),
                    i["props"]["Subject"].to_string() + &i["body"].to_string(),
                )
            })
            .collect()
    };
    let a = lab(|c| c.seed = 7);
    let b = lab(|c| c.seed = 7);
    let c = lab(|c| c.seed = 8);
    assert_eq!(summary(&a), summary(&b));
    assert!(!summary(&a).is_empty());
    assert_ne!(summary(&a), summary(&c));
}
