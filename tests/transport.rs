//! The transport against small real servers on 127.0.0.1 (plain HTTP and rustls TLS with
//! certificates made by rcgen): request lines, headers, authentication, status handling,
//! redirects, throttling, streaming, TLS trust, pins and client certificates.
#![cfg(feature = "lab")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use easync::eas::{self, Body, Command, CommonStatus, HasStatus, Request};
use easync::transport::{
    Auth, Client, Config, Error, Provisioner, QueryForm, ResponseParser, RetryAfter, RetryPolicy,
    Secret, Session, TokenProvider,
};
use easync::wbxml::tags::cp;
use easync::wbxml::{ProtocolVersion, Tag};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData};

const TIMEOUT: Duration = Duration::from_secs(10);
const PATH: &str = "/Microsoft-Server-ActiveSync";

// ---------------------------------------------------------------------------------------
// A small HTTP/1.1 server: one request per connection, answered by a handler.

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum ReplyBody {
    Bytes(Vec<u8>),
    /// `n` bytes of `pattern(i)`, generated while writing.
    Pattern(u64),
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: ReplyBody,
    delay: Duration,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Bytes(Vec::new()),
            delay: Duration::ZERO,
        }
    }

    fn ok(body: Vec<u8>) -> Reply {
        Reply::status(200)
            .header("Content-Type", "application/vnd.ms-sync.wbxml")
            .body(body)
    }

    fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn body(mut self, body: Vec<u8>) -> Reply {
        self.body = ReplyBody::Bytes(body);
        self
    }
}

fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

type Handler = dyn Fn(usize, &Recorded) -> Reply + Send + Sync;

struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    tls: bool,
}

impl Server {
    fn url(&self) -> String {
        self.url_path(PATH)
    }

    fn url_path(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(handler: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static) -> Server {
    serve_with(None, handler)
}

fn serve_with(
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler: Arc<Handler> = Arc::new(handler);
    let server = Server {
        addr,
        log: log.clone(),
        tls: tls.is_some(),
    };
    let counter = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (log, handler, tls, counter) =
                (log.clone(), handler.clone(), tls.clone(), counter.clone());
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                match tls {
                    None => handle(stream, &log, &*handler, &counter),
                    Some(config) => {
                        let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let mut tcp = stream;
                        while conn.is_handshaking() {
                            if conn.complete_io(&mut tcp).is_err() {
                                // Like real servers, linger so the client reads the alert.
                                let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
                                let _ = std::io::copy(&mut tcp, &mut std::io::sink());
                                return;
                            }
                        }
                        let tls_stream = rustls::StreamOwned::new(conn, tcp);
                        handle(tls_stream, &log, &*handler, &counter);
                    }
                }
            });
        }
    });
    server
}

fn handle(
    stream: impl Read + Write,
    log: &Mutex<Vec<Recorded>>,
    handler: &Handler,
    counter: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut recorded = Recorded {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    let len: u64 = recorded
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if (&mut reader)
        .take(len)
        .read_to_end(&mut recorded.body)
        .is_err()
    {
        return;
    }
    let index = counter.fetch_add(1, Ordering::SeqCst);
    let reply = handler(index, &recorded);
    log.lock().unwrap().push(recorded);
    std::thread::sleep(reply.delay);
    let mut stream = reader.into_inner();
    let body_len = match &reply.body {
        ReplyBody::Bytes(b) => b.len() as u64,
        ReplyBody::Pattern(n) => *n,
    };
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {body_len}\r\nConnection: close\r\n\r\n"
    ));
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    match reply.body {
        ReplyBody::Bytes(b) => {
            let _ = stream.write_all(&b);
        }
        ReplyBody::Pattern(n) => {
            let mut chunk = vec![0u8; 64 * 1024];
            let mut sent = 0u64;
            while sent < n {
                let len = (n - sent).min(chunk.len() as u64) as usize;
                for (i, b) in chunk[..len].iter_mut().enumerate() {
                    *b = pattern(sent + i as u64);
                }
                if stream.write_all(&chunk[..len]).is_err() {
                    return;
                }
                sent += len as u64;
            }
        }
    }
    let _ = stream.flush();
}

// ---------------------------------------------------------------------------------------
// Certificates and files.

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

struct Leaf {
    der: Vec<u8>,
    pem: String,
    key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, sans: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key,
        }
    }
}

/// The CA all plain-HTTP test configurations trust (they must trust something).
fn test_pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki::new("easync test CA"))
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    // Under target/tmp (CARGO_TARGET_TMPDIR), not /tmp: the files live as long as the process.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("easync-transport-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{name}", N.fetch_add(1, Ordering::SeqCst)));
    std::fs::write(&path, contents).unwrap();
    path
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_server_config(leaf: &Leaf, client_ca: Option<&Pki>) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pki) => {
            let mut roots = rustls::RootCertStore::empty();
            let ca = rustls_pki_types::pem::PemObject::from_pem_slice(pki.ca_pem.as_bytes());
            roots.add(ca.unwrap()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.serialize_der()));
    Arc::new(
        builder
            .with_single_cert(vec![CertificateDer::from(leaf.der.clone())], key)
            .unwrap(),
    )
}

// ---------------------------------------------------------------------------------------
// Client side helpers.

fn config(url: &str) -> Config {
    let mut c = Config::new(url, "jdoe", "DEV0123456789");
    c.domain = Some("CORP".into());
    c.auth = Auth::Basic {
        password: Secret::new("s3cret"),
    };
    c.device_type = "EASync".into();
    c.user_agent = "easync-test/1.0".into();
    c.allow_insecure_http = true;
    c.tls.trust_store = None;
    c.tls.ca_file = Some(temp_file("ca.pem", &test_pki().ca_pem));
    c
}

fn session(c: Config) -> Session {
    Session::new(Client::new(c).unwrap(), ProtocolVersion::V14_1)
}

const FOLDER_SYNC: Tag = Tag::named(cp::FOLDER_HIERARCHY, "FolderSync");
const STATUS: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Status");

fn folder_sync_body(status: &str) -> Vec<u8> {
    eas::command::write_wbxml(ProtocolVersion::V14_1, |w| {
        w.start(FOLDER_SYNC)?;
        w.text_element(STATUS, status)?;
        w.end()
    })
    .unwrap()
}

fn folder_sync_request() -> Request {
    Request::wbxml(Command::FolderSync, folder_sync_body("0"))
}

#[derive(Debug, PartialEq)]
struct Answer {
    status: u32,
}

impl HasStatus for Answer {
    fn common_status(&self) -> Option<CommonStatus> {
        CommonStatus::from_code(self.status)
    }
}

fn read_answer(p: &mut ResponseParser) -> eas::Result<Answer> {
    let mut status = 0;
    if p.root(FOLDER_SYNC)?.is_some() {
        while let Some(child) = p.next_child()? {
            if child.tag == STATUS {
                status = p.number(child)?;
            } else {
                p.skip(child)?;
            }
        }
        p.finish()?;
    }
    Ok(Answer { status })
}

/// Counts calls and sets a new policy key; sends a real Provision through the session.
struct CountingProvisioner {
    calls: usize,
    key: u32,
}

impl Provisioner for CountingProvisioner {
    fn provision(&mut self, session: &mut Session) -> easync::transport::Result<()> {
        self.calls += 1;
        let request = Request::wbxml(Command::Provision, vec![3, 1, 106, 0, 1]);
        let mut response = session.send(&request, None, TIMEOUT)?;
        std::io::copy(response.body(), &mut std::io::sink()).unwrap();
        session.set_policy_key(Some(self.key));
        Ok(())
    }
}

fn query_of(target: &str) -> &str {
    target.split_once('?').map(|(_, q)| q).unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// Request line and headers.

#[test]
fn plain_request_line_and_headers() {
    let server = serve(|_, _| Reply::ok(folder_sync_body("1")));
    let mut s = session(config(&server.url()));
    s.set_policy_key(Some(3_141_592));
    let mut request = folder_sync_request();
    request.params.push(("ItemId", "5:1 &x".into()));
    let mut response = s.send(&request, None, TIMEOUT).unwrap();
    assert!(response.is_wbxml());
    let mut body = Vec::new();
    response.body().read_to_end(&mut body).unwrap();
    assert_eq!(body, folder_sync_body("1"));

    let r = &server.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.target,
        "/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=jdoe&DeviceId=DEV0123456789\
         &DeviceType=EASync&ItemId=5%3A1%20%26x"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("CORP\\jdoe:s3cret");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(r.header("ms-asprotocolversion"), Some("14.1"));
    assert_eq!(r.header("x-ms-policykey"), Some("3141592"));
    assert_eq!(r.header("user-agent"), Some("easync-test/1.0"));
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.ms-sync.wbxml")
    );
    assert_eq!(
        r.header("content-length"),
        Some(folder_sync_request().body.len().to_string().as_str())
    );
    assert_eq!(r.header("accept-encoding"), Some("gzip"));
    assert_eq!(r.header("ms-asacceptmultipart"), None);
    assert_eq!(r.body, folder_sync_request_body());
}

fn folder_sync_request_body() -> Vec<u8> {
    folder_sync_body("0")
}

#[test]
fn ping_and_provision_carry_no_policy_key_and_multipart_is_a_header() {
    let server = serve(|_, _| Reply::ok(Vec::new()));
    let mut s = session(config(&server.url()));
    s.set_policy_key(Some(42));
    for command in [Command::Ping, Command::Provision] {
        s.send(
            &Request::wbxml(command, vec![3, 1, 106, 0, 1]),
            None,
            TIMEOUT,
        )
        .unwrap();
    }
    let mut fetch = Request::wbxml(Command::ItemOperations, vec![3, 1, 106, 0, 1]);
    fetch.params.push(("AcceptMultiPart", "T".into()));
    s.send(&fetch, None, TIMEOUT).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].target.contains("Cmd=Ping"));
    assert_eq!(requests[0].header("x-ms-policykey"), None);
    assert!(requests[1].target.contains("Cmd=Provision"));
    assert_eq!(requests[1].header("x-ms-policykey"), None);
    assert_eq!(requests[2].header("x-ms-policykey"), Some("42"));
    assert_eq!(requests[2].header("ms-asacceptmultipart"), Some("T"));
    assert!(!requests[2].target.contains("AcceptMultiPart"));
}

#[test]
fn base64_query_form_carries_version_and_policy_key() {
    let server = serve(|_, _| Reply::ok(Vec::new()));
    let mut c = config(&server.url());
    c.query_form = QueryForm::Base64;
    let mut s = session(c);
    s.set_policy_key(Some(0x0a0b_0c0d));
    let mut request = Request::wbxml(Command::Sync, vec![3, 1, 106, 0, 1]);
    request.params.push(("SaveInSent", "T".into()));
    s.send(&request, None, TIMEOUT).unwrap();

    let r = &server.requests()[0];
    assert!(r.target.starts_with("/Microsoft-Server-ActiveSync?"));
    // Sent raw: servers base64-decode the query without URL-decoding it.
    let encoded = query_of(&r.target);
    assert!(!encoded.contains('%'), "{encoded}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let mut expected = vec![141, 0, 0x09, 0x04, 13];
    expected.extend_from_slice(b"DEV0123456789");
    expected.extend_from_slice(&[4, 0x0d, 0x0c, 0x0b, 0x0a]);
    expected.push(6);
    expected.extend_from_slice(b"EASync");
    expected.extend_from_slice(&[8, 4]);
    expected.extend_from_slice(b"jdoe");
    expected.extend_from_slice(&[7, 1, 0x01]);
    assert_eq!(bytes, expected);
    // Version and key travel in the query, not in headers.
    assert_eq!(r.header("ms-asprotocolversion"), None);
    assert_eq!(r.header("x-ms-policykey"), None);
    assert!(r.header("authorization").unwrap().starts_with("Basic "));
}

// ---------------------------------------------------------------------------------------
// Authentication.

struct Tokens {
    current: Mutex<String>,
    refreshes: AtomicUsize,
}

impl TokenProvider for Tokens {
    fn token(&self) -> easync::transport::Result<String> {
        Ok(self.current.lock().unwrap().clone())
    }

    fn refresh(&self) -> easync::transport::Result<String> {
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("fresh-{n}");
        *self.current.lock().unwrap() = token.clone();
        Ok(token)
    }
}

#[test]
fn bearer_token_is_refreshed_once_on_401() {
    let server = serve(|_, r| {
        if r.header("authorization") == Some("Bearer fresh-1") {
            Reply::ok(folder_sync_body("1"))
        } else {
            Reply::status(401)
        }
    });
    let tokens = Arc::new(Tokens {
        current: Mutex::new("stale".into()),
        refreshes: AtomicUsize::new(0),
    });
    let mut c = config(&server.url());
    c.auth = Auth::Bearer(tokens.clone());
    let mut s = session(c);
    s.send(&folder_sync_request(), None, TIMEOUT).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("authorization"), Some("Bearer stale"));
    assert_eq!(requests[1].header("authorization"), Some("Bearer fresh-1"));
    assert_eq!(requests[1].body, folder_sync_request_body());
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
}

#[test]
fn bearer_refused_after_refresh_is_unauthorized_and_tokens_never_leak() {
    let server = serve(|_, _| Reply::status(401));
    let tokens = Arc::new(Tokens {
        current: Mutex::new("stale-secret-token".into()),
        refreshes: AtomicUsize::new(0),
    });
    let mut c = config(&server.url());
    c.auth = Auth::Bearer(tokens.clone());
    let debug = format!("{c:?}");
    let mut s = session(c);
    let err = s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(server.requests().len(), 2);
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
    for text in [err.to_string(), format!("{err:?}"), debug] {
        assert!(
            !text.contains("secret") && !text.contains("fresh-1"),
            "{text}"
        );
    }
}

#[test]
fn basic_password_never_appears_in_errors_or_debug() {
    let server = serve(|_, _| Reply::status(401).header("X-MS-Credentials-Expire", "3"));
    let c = config(&server.url());
    assert!(!format!("{c:?}").contains("s3cret"));
    let mut s = session(c);
    let err = s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err();
    match &err {
        Error::Unauthorized {
            credentials_expire_days,
        } => assert_eq!(*credentials_expire_days, Some(3)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("expires in 3 days"), "{err}");
    assert!(!err.to_string().contains("s3cret"));
    assert!(!format!("{s:?}").contains("s3cret"));
}

// ---------------------------------------------------------------------------------------
// Provisioning, redirects, throttling, other statuses.

#[test]
fn http_449_provisions_then_retries_with_the_new_key() {
    let server = serve(|_, r| {
        if r.target.contains("Cmd=Provision") {
            Reply::ok(Vec::new())
        } else if r.header("x-ms-policykey") == Some("77") {
            Reply::ok(folder_sync_body("1"))
        } else {
            Reply::status(449)
        }
    });
    let mut s = session(config(&server.url()));
    let mut provisioner = CountingProvisioner { calls: 0, key: 77 };
    let answer = s
        .execute(
            |_| Ok(folder_sync_request()),
            read_answer,
            &mut provisioner,
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(answer, Answer { status: 1 });
    assert_eq!(provisioner.calls, 1);
    let targets: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.target.split('&').next().unwrap().to_string())
        .collect();
    assert_eq!(
        targets,
        [
            "/Microsoft-Server-ActiveSync?Cmd=FolderSync",
            "/Microsoft-Server-ActiveSync?Cmd=Provision",
            "/Microsoft-Server-ActiveSync?Cmd=FolderSync"
        ]
    );
    assert_eq!(s.state().policy_key, Some(77));
}

#[test]
fn status_144_in_the_body_provisions_then_retries() {
    let server = serve(|_, r| {
        if r.target.contains("Cmd=Provision") {
            Reply::ok(Vec::new())
        } else if r.header("x-ms-policykey") == Some("9") {
            Reply::ok(folder_sync_body("1"))
        } else {
            Reply::ok(folder_sync_body("144"))
        }
    });
    let mut s = session(config(&server.url()));
    let mut provisioner = CountingProvisioner { calls: 0, key: 9 };
    let answer = s
        .execute(
            |_| Ok(folder_sync_request()),
            read_answer,
            &mut provisioner,
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(answer.status, 1);
    assert_eq!(provisioner.calls, 1);
}

#[test]
fn endless_449_stops_after_two_provisioning_rounds() {
    let server = serve(|_, r| {
        if r.target.contains("Cmd=Provision") {
            Reply::ok(Vec::new())
        } else {
            Reply::status(449)
        }
    });
    let mut s = session(config(&server.url()));
    let mut provisioner = CountingProvisioner { calls: 0, key: 1 };
    let err = s
        .execute(
            |_| Ok(folder_sync_request()),
            read_answer,
            &mut provisioner,
            TIMEOUT,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::ProvisioningLoop { attempts: 2 }),
        "{err:?}"
    );
    assert_eq!(provisioner.calls, 2);
    // FolderSync 3 times, Provision twice.
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn redirect_451_is_followed_and_remembered() {
    let target = serve(|_, _| Reply::ok(folder_sync_body("1")));
    let location = target.url();
    let origin = serve(move |_, _| Reply::status(451).header("X-MS-Location", &location));
    let mut s = session(config(&origin.url()));
    s.send(&folder_sync_request(), None, TIMEOUT).unwrap();
    assert_eq!(s.state().url, target.url());
    s.send(&folder_sync_request(), None, TIMEOUT).unwrap();
    assert_eq!(origin.requests().len(), 1);
    assert_eq!(target.requests().len(), 2);
    // The redirected request is the same request.
    assert_eq!(target.requests()[0].body, folder_sync_request_body());
    assert!(target.requests()[0].target.contains("Cmd=FolderSync"));
}

#[test]
fn redirect_loop_is_detected_and_the_url_kept() {
    let b_url = Arc::new(Mutex::new(String::new()));
    let b_for_a = b_url.clone();
    let a = serve(move |_, _| Reply::status(451).header("X-MS-Location", &b_for_a.lock().unwrap()));
    let a_url = a.url();
    let b = serve(move |_, _| Reply::status(451).header("X-MS-Location", &a_url));
    *b_url.lock().unwrap() = b.url();
    let mut s = session(config(&a.url()));
    let err = s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::RedirectLoop { .. }), "{err:?}");
    assert_eq!(s.state().url, a.url());
    assert_eq!(a.requests().len() + b.requests().len(), 2);
}

#[test]
fn redirect_chain_is_bounded() {
    let server = Arc::new(OnceLock::<String>::new());
    let base = server.clone();
    let s_srv = serve(move |i, _| {
        Reply::status(451).header("X-MS-Location", &format!("{}/hop{i}", base.get().unwrap()))
    });
    server.set(format!("http://{}", s_srv.addr)).unwrap();
    let mut s = session(config(&s_srv.url()));
    s.set_retry_policy(RetryPolicy {
        max_redirects: 5,
        ..RetryPolicy::default()
    });
    let err = s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err();
    assert!(
        matches!(err, Error::TooManyRedirects { hops: 5 }),
        "{err:?}"
    );
    assert_eq!(s_srv.requests().len(), 6);
    assert_eq!(s.state().url, s_srv.url());
}

#[test]
fn redirect_to_an_unusable_url_is_refused() {
    let origin =
        serve(|_, _| Reply::status(451).header("X-MS-Location", "ftp://example.invalid/x"));
    let mut s = session(config(&origin.url()));
    let err = s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert_eq!(s.state().url, origin.url());
    let empty = serve(|_, _| Reply::status(451));
    let err = session(config(&empty.url()))
        .send(&folder_sync_request(), None, TIMEOUT)
        .unwrap_err();
    assert!(matches!(err, Error::RedirectWithoutLocation), "{err:?}");
}

#[test]
fn http_503_with_retry_after_seconds_is_waited_out() {
    let server = serve(|i, _| {
        if i == 0 {
            Reply::status(503).header("Retry-After", "2")
        } else {
            Reply::ok(folder_sync_body("1"))
        }
    });
    let mut s = session(config(&server.url()));
    let slept = Arc::new(Mutex::new(Vec::new()));
    let record = slept.clone();
    s.set_sleeper(move |d| record.lock().unwrap().push(d));
    let answer = s
        .execute(
            |_| Ok(folder_sync_request()),
            read_answer,
            &mut CountingProvisioner { calls: 0, key: 0 },
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(answer.status, 1);
    assert_eq!(*slept.lock().unwrap(), [Duration::from_secs(2)]);
    assert_eq!(server.requests().len(), 2);
}

fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant).
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn http_503_with_an_http_date_is_waited_out() {
    let server = serve(|i, _| {
        if i == 0 {
            let when = SystemTime::now() + Duration::from_secs(30);
            Reply::status(503).header("Retry-After", &http_date(when))
        } else {
            Reply::ok(folder_sync_body("1"))
        }
    });
    let mut s = session(config(&server.url()));
    let slept = Arc::new(Mutex::new(Vec::new()));
    let record = slept.clone();
    s.set_sleeper(move |d| record.lock().unwrap().push(d));
    s.execute(
        |_| Ok(folder_sync_request()),
        read_answer,
        &mut CountingProvisioner { calls: 0, key: 0 },
        TIMEOUT,
    )
    .unwrap();
    let slept = slept.lock().unwrap();
    assert_eq!(slept.len(), 1);
    assert!(
        slept[0] >= Duration::from_secs(27) && slept[0] <= Duration::from_secs(30),
        "{slept:?}"
    );
}

#[test]
fn http_503_beyond_the_wait_limit_is_returned_as_throttled() {
    let server = serve(|_, _| {
        Reply::status(503)
            .header("Retry-After", "3600")
            .header("X-MS-ASThrottle", "CommandFrequency")
    });
    let mut s = session(config(&server.url()));
    s.set_sleeper(|d| panic!("must not sleep {d:?}"));
    let err = s
        .execute(
            |_| Ok(folder_sync_request()),
            read_answer,
            &mut CountingProvisioner { calls: 0, key: 0 },
            TIMEOUT,
        )
        .unwrap_err();
    match &err {
        Error::Throttled {
            retry_after,
            reason,
        } => {
            assert_eq!(
                *retry_after,
                Some(RetryAfter::Delay(Duration::from_secs(3600)))
            );
            assert_eq!(reason.as_deref(), Some("CommandFrequency"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("CommandFrequency"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn http_503_retries_are_bounded() {
    let server = serve(|_, _| Reply::status(503).header("Retry-After", "1"));
    let mut s = session(config(&server.url()));
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    s.set_sleeper(move |_| {
        c2.fetch_add(1, Ordering::SeqCst);
    });
    let err = s
        .execute(
            |_| Ok(folder_sync_request()),
            read_answer,
            &mut CountingProvisioner { calls: 0, key: 0 },
            TIMEOUT,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }));
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn forbidden_server_error_and_others_are_typed() {
    let server = serve(|i, _| Reply::status([403, 500, 404, 400][i % 4]));
    let mut s = session(config(&server.url()));
    let mut errors = Vec::new();
    for _ in 0..4 {
        errors.push(s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err());
    }
    assert!(matches!(errors[0], Error::Forbidden));
    assert!(matches!(errors[1], Error::Http { status: 500 }));
    assert!(matches!(errors[2], Error::Http { status: 404 }));
    assert!(
        errors[2]
            .to_string()
            .contains("Microsoft-Server-ActiveSync")
    );
    assert!(matches!(errors[3], Error::Http { status: 400 }));
}

#[test]
fn gzip_response_is_decoded() {
    let plain = folder_sync_body("1");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let compressed = gz.finish().unwrap();
    let server =
        serve(move |_, _| Reply::ok(compressed.clone()).header("Content-Encoding", "gzip"));
    let mut s = session(config(&server.url()));
    let response = s.send(&folder_sync_request(), None, TIMEOUT).unwrap();
    let answer = read_answer(&mut response.parser(ProtocolVersion::V14_1)).unwrap();
    assert_eq!(answer.status, 1);
}

#[test]
fn options_gives_server_info_and_negotiates() {
    let server = serve(|_, _| {
        Reply::status(200)
            .header("MS-ASProtocolVersions", "2.5,12.0,12.1,14.0,14.1")
            .header("MS-ASProtocolCommands", "Sync,FolderSync,Ping,Provision")
    });
    let mut s = session(config(&server.url()));
    s.set_version(ProtocolVersion::V12_1);
    let info = s.negotiate(None, TIMEOUT).unwrap();
    assert!(info.supports_command("Ping"));
    assert_eq!(s.state().version, ProtocolVersion::V14_1);
    let r = &server.requests()[0];
    assert_eq!(r.method, "OPTIONS");
    assert_eq!(r.target, PATH);
    assert!(r.header("authorization").is_some());
}

// ---------------------------------------------------------------------------------------
// Streaming.

/// A reader producing `pattern(i)` for `len` bytes without holding them.
struct PatternReader {
    pos: u64,
    len: u64,
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(self.pos + i as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[test]
fn streamed_mime_body_arrives_byte_exact() {
    let server = serve(|_, _| Reply::ok(Vec::new()));
    let mut s = session(config(&server.url()));
    let len = 3_000_000u64;
    let head = vec![3, 1, 106, 0, 0x45, 0xC3];
    let tail = vec![0x01, 0x01];
    let request = Request {
        command: Command::SendMail,
        params: Vec::new(),
        body: Body::WbxmlAroundMime {
            head: head.clone(),
            len,
            tail: tail.clone(),
        },
    };
    // The reader has more than `len`: exactly `len` must be taken.
    let mut mime = PatternReader {
        pos: 0,
        len: len + 1000,
    };
    s.send(&request, Some(&mut mime), TIMEOUT).unwrap();
    let r = &server.requests()[0];
    let total = head.len() as u64 + len + tail.len() as u64;
    assert_eq!(r.header("content-length"), Some(total.to_string().as_str()));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.body.len() as u64, total);
    assert_eq!(&r.body[..head.len()], &head[..]);
    assert_eq!(&r.body[r.body.len() - tail.len()..], &tail[..]);
    let mime_part = &r.body[head.len()..r.body.len() - tail.len()];
    assert!(
        mime_part
            .iter()
            .enumerate()
            .all(|(i, b)| *b == pattern(i as u64))
    );

    // Bare MIME (12.1 SendMail) with message/rfc822.
    let request = Request {
        command: Command::SendMail,
        params: vec![("SaveInSent", "T".into())],
        body: Body::Mime { len: 5000 },
    };
    let mut mime = PatternReader { pos: 0, len: 5000 };
    s.send(&request, Some(&mut mime), TIMEOUT).unwrap();
    let r = &server.requests()[1];
    assert_eq!(r.header("content-type"), Some("message/rfc822"));
    assert_eq!(r.header("content-length"), Some("5000"));
    assert!(r.target.ends_with("&SaveInSent=T"));
    assert_eq!(r.body.len(), 5000);
}

#[test]
fn short_mime_reader_is_a_request_body_error() {
    let server = serve(|_, _| Reply::ok(Vec::new()));
    let mut s = session(config(&server.url()));
    let request = Request {
        command: Command::SendMail,
        params: Vec::new(),
        body: Body::Mime { len: 10_000 },
    };
    let mut mime = PatternReader { pos: 0, len: 100 };
    let err = s.send(&request, Some(&mut mime), TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::RequestBody(_)), "{err:?}");
    assert!(err.to_string().contains("9900 bytes before"), "{err}");
    let err = s.send(&request, None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::Request(_)), "{err:?}");
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Set in the child process that measures memory on its own.
const STREAM_CHILD: &str = "EASYNC_TRANSPORT_STREAM_CHILD";

#[test]
fn fifty_megabyte_body_streams_through_bounded_memory() {
    // Resident memory is only meaningful without the other tests running alongside: the
    // measurement runs in a child process of this test binary.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fifty_megabyte_body_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STREAM_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("streamed 52428800 bytes"), "{stdout}");
}

#[test]
fn fifty_megabyte_body_child() {
    if std::env::var_os(STREAM_CHILD).is_none() {
        return;
    }
    const LEN: u64 = 50 * 1024 * 1024;
    let server = serve(|_, _| Reply {
        status: 200,
        headers: vec![("Content-Type".into(), "application/octet-stream".into())],
        body: ReplyBody::Pattern(LEN),
        delay: Duration::ZERO,
    });
    let mut s = session(config(&server.url()));
    let before = resident_kib();
    let mut response = s
        .send(&folder_sync_request(), None, Duration::from_secs(60))
        .unwrap();
    assert_eq!(response.content_length, Some(LEN));
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut peak = before;
    loop {
        let n = response.body().read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(
            buf[..n]
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern(total + i as u64)),
            "corrupt at {total}"
        );
        total += n as u64;
        if total % (4 * 1024 * 1024) < n as u64 {
            peak = peak.max(resident_kib());
        }
    }
    assert_eq!(total, LEN);
    let grown = peak.saturating_sub(before);
    println!("streamed {total} bytes, resident memory grew by {grown} KiB");
    assert!(grown < 8 * 1024, "resident memory grew by {grown} KiB");
}

#[test]
fn timeout_is_typed() {
    let server = serve(|_, _| {
        let mut r = Reply::ok(Vec::new());
        r.delay = Duration::from_secs(3);
        r
    });
    let mut s = session(config(&server.url()));
    let started = Instant::now();
    let err = s
        .send(&folder_sync_request(), None, Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn connection_refused_is_typed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut s = session(config(&format!("http://{addr}{PATH}")));
    let err = s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    assert!(err.to_string().contains("check the server URL"), "{err}");
}

// ---------------------------------------------------------------------------------------
// http:// and TLS.

#[test]
fn http_is_refused_unless_allowed() {
    let mut c = config("http://127.0.0.1:1/Microsoft-Server-ActiveSync");
    c.allow_insecure_http = false;
    let err = Client::new(c).unwrap_err();
    assert!(matches!(err, Error::InsecureHttp { .. }), "{err:?}");
    assert!(err.to_string().contains("allow_insecure_http"), "{err}");
    let mut c = config("ftp://127.0.0.1/x");
    c.allow_insecure_http = true;
    assert!(matches!(Client::new(c), Err(Error::InvalidUrl { .. })));
}

fn tls_config(url: &str, ca_pem: &str) -> Config {
    let mut c = config(url);
    c.allow_insecure_http = false;
    c.tls.ca_file = Some(temp_file("ca.pem", ca_pem));
    c
}

fn pin_of(key: &KeyPair) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info());
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

#[test]
fn tls_trusted_through_the_extra_ca() {
    let pki = Pki::new("server CA");
    let leaf = pki.leaf(&["127.0.0.1", "localhost"]);
    let server = serve_with(Some(tls_server_config(&leaf, None)), |_, _| {
        Reply::ok(folder_sync_body("1"))
    });
    let mut s = session(tls_config(&server.url(), &pki.ca_pem));
    let response = s.send(&folder_sync_request(), None, TIMEOUT).unwrap();
    let answer = read_answer(&mut response.parser(ProtocolVersion::V14_1)).unwrap();
    assert_eq!(answer.status, 1);
    assert!(server.requests()[0].header("authorization").is_some());
    // The pin helper agrees with an independent SPKI hash.
    assert_eq!(
        easync::transport::tls::spki_pin(&leaf.der),
        Some(pin_of(&leaf.key))
    );
}

#[test]
fn tls_unknown_ca_is_refused() {
    let pki = Pki::new("server CA");
    let other = Pki::new("some other CA");
    let leaf = pki.leaf(&["127.0.0.1"]);
    let server = serve_with(Some(tls_server_config(&leaf, None)), |_, _| {
        Reply::ok(Vec::new())
    });
    let mut s = session(tls_config(&server.url(), &other.ca_pem));
    let err = s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::CertificateNotTrusted(_)), "{err:?}");
    assert!(err.to_string().contains("tls.ca_file"), "{err}");
    assert!(server.requests().is_empty());
}

#[test]
fn tls_name_mismatch_is_typed() {
    let pki = Pki::new("server CA");
    let leaf = pki.leaf(&["mail.example.com"]);
    let server = serve_with(Some(tls_server_config(&leaf, None)), |_, _| {
        Reply::ok(Vec::new())
    });
    let mut s = session(tls_config(&server.url(), &pki.ca_pem));
    let err = s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err();
    assert!(
        matches!(err, Error::CertificateNameMismatch { .. }),
        "{err:?}"
    );
}

/// A peer that accepts the connection and then says nothing (a stalled TLS handshake, a
/// middlebox holding the connection): the request ends at its timeout, typed.
#[test]
fn a_tls_handshake_that_stalls_times_out() {
    let pki = Pki::new("server CA");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let mut s = session(tls_config(&format!("https://{addr}{PATH}"), &pki.ca_pem));
    // The peer hangs up after 3 s: only the 300 ms timeout makes this a Timeout.
    let err = s
        .send(&folder_sync_request(), None, Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    silent.join().unwrap();
}

#[test]
fn tls_pin_match_and_mismatch() {
    let pki = Pki::new("server CA");
    let leaf = pki.leaf(&["127.0.0.1"]);
    let pin = pin_of(&leaf.key);
    let server = serve_with(Some(tls_server_config(&leaf, None)), |_, _| {
        Reply::ok(Vec::new())
    });

    let mut c = tls_config(&server.url(), &pki.ca_pem);
    let wrong = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    c.tls.pins = vec![wrong.clone(), pin.clone()];
    session(c)
        .send(&folder_sync_request(), None, TIMEOUT)
        .unwrap();

    let mut c = tls_config(&server.url(), &pki.ca_pem);
    c.tls.pins = vec![wrong];
    let err = session(c)
        .send(&folder_sync_request(), None, TIMEOUT)
        .unwrap_err();
    match &err {
        Error::PinMismatch { actual } => assert_eq!(actual, &pin),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("pin mismatch: the server's key is not the pinned one")
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn tls_client_certificate_is_presented() {
    let server_pki = Pki::new("server CA");
    let client_pki = Pki::new("client CA");
    let leaf = server_pki.leaf(&["127.0.0.1"]);
    let server = serve_with(Some(tls_server_config(&leaf, Some(&client_pki))), |_, _| {
        Reply::ok(folder_sync_body("1"))
    });
    let device = client_pki.leaf(&["device.example.com"]);

    let mut c = tls_config(&server.url(), &server_pki.ca_pem);
    c.auth = Auth::None;
    c.tls.client_cert = Some(temp_file("client.pem", &device.pem));
    c.tls.client_key = Some(temp_file("client.key", &device.key.serialize_pem()));
    session(c)
        .send(&folder_sync_request(), None, TIMEOUT)
        .unwrap();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(server.requests()[0].header("authorization"), None);

    // Without the certificate the server refuses the handshake.
    let mut c = tls_config(&server.url(), &server_pki.ca_pem);
    c.auth = Auth::None;
    let err = session(c)
        .send(&folder_sync_request(), None, TIMEOUT)
        .unwrap_err();
    assert!(
        matches!(err, Error::ClientCertificateRejected(_)),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1);

    // Half a client identity is a configuration error.
    let mut c = tls_config(&server.url(), &server_pki.ca_pem);
    c.tls.client_cert = Some(temp_file("client.pem", &device.pem));
    assert!(matches!(Client::new(c), Err(Error::Config(_))));
}

#[test]
fn tls_redirect_to_plain_http_is_refused() {
    let pki = Pki::new("server CA");
    let leaf = pki.leaf(&["127.0.0.1"]);
    let server = serve_with(Some(tls_server_config(&leaf, None)), |_, _| {
        Reply::status(451).header(
            "X-MS-Location",
            "http://127.0.0.1:1/Microsoft-Server-ActiveSync",
        )
    });
    let mut s = session(tls_config(&server.url(), &pki.ca_pem));
    let err = s.send(&folder_sync_request(), None, TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::InsecureHttp { .. }), "{err:?}");
    assert_eq!(s.state().url, server.url());
}

#[test]
fn streamed_message_is_not_replayed_on_redirect_or_token_refresh() {
    let message = || Request {
        command: Command::SendMail,
        params: Vec::new(),
        body: Body::Mime { len: 1000 },
    };
    // 451: the new URL is remembered, the caller is told to send again.
    let target = serve(|_, _| Reply::ok(Vec::new()));
    let location = target.url();
    let origin = serve(move |_, _| Reply::status(451).header("X-MS-Location", &location));
    let mut s = session(config(&origin.url()));
    let mut mime = PatternReader { pos: 0, len: 1000 };
    let err = s.send(&message(), Some(&mut mime), TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::ResendRequired(_)), "{err:?}");
    assert_eq!(s.state().url, target.url());
    assert!(target.requests().is_empty());

    // 401 with a bearer token: the token is refreshed, the caller is told to send again.
    let server = serve(|_, _| Reply::status(401));
    let tokens = Arc::new(Tokens {
        current: Mutex::new("stale".into()),
        refreshes: AtomicUsize::new(0),
    });
    let mut c = config(&server.url());
    c.auth = Auth::Bearer(tokens.clone());
    let mut mime = PatternReader { pos: 0, len: 1000 };
    let err = session(c)
        .send(&message(), Some(&mut mime), TIMEOUT)
        .unwrap_err();
    assert!(matches!(err, Error::ResendRequired(_)), "{err:?}");
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(server.requests().len(), 1);
}
