//! Cancelling requests in flight ([`Client::canceller`]) against small servers on
//! 127.0.0.1, plain and TLS: a parked request (the server reads the POST and never answers,
//! like a Ping) and a response body that stalls mid-stream both end with
//! `Error::Cancelled`; the client keeps working afterwards.
//!
//! The servers wait [`SERVER_PATIENCE`] for the client to hang up, report whether it did,
//! then close the connection themselves: a cancel that does not interrupt the I/O fails the
//! test through that report, without any timed assertion.
#![cfg(feature = "lab")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use easync::eas::{self, Command, Request};
use easync::transport::{Auth, Canceller, Client, Config, Error, ResponseParser, Secret, Session};
use easync::wbxml::tags::cp;
use easync::wbxml::{ProtocolVersion, Tag};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const PATH: &str = "/Microsoft-Server-ActiveSync";
const PARKED_TIMEOUT: Duration = Duration::from_secs(60);
const SERVER_PATIENCE: Duration = Duration::from_secs(5);
const CANCEL_AFTER: Duration = Duration::from_millis(200);
const VERSION: ProtocolVersion = ProtocolVersion::V14_1;

const FOLDER_SYNC: Tag = Tag::named(cp::FOLDER_HIERARCHY, "FolderSync");
const STATUS: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Status");

fn folder_sync_body(status: &str) -> Vec<u8> {
    eas::command::write_wbxml(VERSION, |w| {
        w.start(FOLDER_SYNC)?;
        w.text_element(STATUS, status)?;
        w.end()
    })
    .unwrap()
}

fn read_status(p: &mut ResponseParser) -> eas::Result<u32> {
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
    Ok(status)
}

// ---------------------------------------------------------------------------------------
// The server: what it does with the n-th connection.

#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Reads the request, then says nothing for SERVER_PATIENCE and closes.
    Park,
    /// Sends the headers and the first bytes of a longer body, then stalls and closes.
    StallMidBody,
    /// Answers a FolderSync with status 1.
    Answer,
}

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "easync cancel test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    })
}

fn ca_file() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            // Under target/tmp (CARGO_TARGET_TMPDIR), not /tmp: the file lives as long as the process.
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("easync-cancel-{}-ca.pem", std::process::id()));
        std::fs::write(&path, &ca().pem).unwrap();
        path
    })
    .clone()
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca().issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Arc::new(config)
}

/// Serves connection n with `behaviours[n]` (the last one repeats); returns the URL and,
/// for every connection that parks or stalls, whether the client hung up before the server
/// gave up.
fn serve(tls: bool, behaviours: &[Behaviour]) -> (String, Receiver<bool>) {
    let (verdicts, verdict) = channel();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let behaviours = behaviours.to_vec();
    let tls_config = tls.then(tls_config);
    let connections = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let n = connections.fetch_add(1, Ordering::SeqCst);
            let behaviour = behaviours[n.min(behaviours.len() - 1)];
            let (tls_config, verdicts) = (tls_config.clone(), verdicts.clone());
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
                let watch = tcp.try_clone().unwrap();
                match tls_config {
                    None => handle(tcp, behaviour, &watch, &verdicts),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let stream = rustls::StreamOwned::new(conn, tcp);
                        handle(stream, behaviour, &watch, &verdicts);
                    }
                }
            });
        }
    });
    let scheme = if tls { "https" } else { "http" };
    (format!("{scheme}://{addr}{PATH}"), verdict)
}

/// Waits up to SERVER_PATIENCE for the client to close the connection; true if it did.
fn client_hangs_up(mut stream: impl Read, tcp: &std::net::TcpStream) -> bool {
    let _ = tcp.set_read_timeout(Some(SERVER_PATIENCE));
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

fn handle(
    stream: impl Read + Write,
    behaviour: Behaviour,
    tcp: &std::net::TcpStream,
    verdicts: &Sender<bool>,
) {
    // A client cancelled before its request arrived (a slow TLS handshake, e.g. under
    // qemu-user, outlasts CANCEL_AFTER) has hung up all the same: a parked connection says so.
    let hung_up_early = || {
        if matches!(behaviour, Behaviour::Park) {
            let _ = verdicts.send(true);
        }
    };
    let mut reader = BufReader::new(stream);
    let mut length = 0u64;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            hung_up_early();
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    if std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink()).is_err() {
        hung_up_early();
        return;
    }
    let mut stream = reader.into_inner();
    let body = folder_sync_body("1");
    let head = |length: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ms-sync.wbxml\r\n\
             Content-Length: {length}\r\nConnection: close\r\n\r\n"
        )
    };
    match behaviour {
        Behaviour::Park => {
            let _ = verdicts.send(client_hangs_up(stream, tcp));
        }
        Behaviour::StallMidBody => {
            let _ = stream.write_all(head(body.len() + 10_000).as_bytes());
            let _ = stream.write_all(&body[..body.len() / 2]);
            let _ = stream.flush();
            let _ = verdicts.send(client_hangs_up(stream, tcp));
        }
        Behaviour::Answer => {
            let _ = stream.write_all(head(body.len()).as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Client side.

fn session(url: &str) -> Session {
    let mut c = Config::new(url, "jdoe", "DEV0123456789");
    c.auth = Auth::Basic {
        password: Secret::new("s3cret"),
    };
    c.device_type = "EASync".into();
    c.allow_insecure_http = true;
    c.tls.trust_store = None;
    c.tls.ca_file = Some(ca_file());
    Session::new(Client::new(c).unwrap(), VERSION)
}

fn request() -> Request {
    Request::wbxml(Command::FolderSync, folder_sync_body("0"))
}

/// Sends and reads one FolderSync; returns its status.
fn folder_sync(session: &mut Session, timeout: Duration) -> Result<u32, Error> {
    session
        .send(&request(), None, timeout)?
        .read(VERSION, read_status)
}

/// Cancels through `canceller` after CANCEL_AFTER, from another thread.
fn cancel_soon(canceller: Canceller) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(CANCEL_AFTER);
        canceller.cancel();
    })
}

/// A parked request is cancelled; the next request on the same client is answered.
fn parked_request_is_cancelled_then_the_client_works(tls: bool) {
    let (url, client_hung_up) = serve(tls, &[Behaviour::Park, Behaviour::Answer]);
    let mut session = session(&url);
    let canceller = session.client().canceller();
    let started = Instant::now();
    let cancel = cancel_soon(canceller.clone());
    let err = folder_sync(&mut session, PARKED_TIMEOUT).unwrap_err();
    println!(
        "parked request (tls: {tls}) ended after {:?}",
        started.elapsed()
    );
    cancel.join().unwrap();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(
        client_hung_up.recv().unwrap(),
        "the server had to give up first"
    );

    assert_eq!(folder_sync(&mut session, PARKED_TIMEOUT).unwrap(), 1);
}

#[test]
fn a_parked_request_is_cancelled() {
    parked_request_is_cancelled_then_the_client_works(false);
}

#[test]
fn a_parked_request_over_tls_is_cancelled() {
    parked_request_is_cancelled_then_the_client_works(true);
}

/// A response body stalled mid-stream is cancelled.
fn stalled_body_is_cancelled(tls: bool) {
    let (url, client_hung_up) = serve(tls, &[Behaviour::StallMidBody, Behaviour::Answer]);
    let mut session = session(&url);
    let response = session.send(&request(), None, PARKED_TIMEOUT).unwrap();
    assert_eq!(response.status, 200);
    let started = Instant::now();
    let cancel = cancel_soon(session.client().canceller());
    let err = response.read(VERSION, read_status).unwrap_err();
    println!(
        "stalled body (tls: {tls}) ended after {:?}",
        started.elapsed()
    );
    cancel.join().unwrap();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(
        client_hung_up.recv().unwrap(),
        "the server had to give up first"
    );

    assert_eq!(folder_sync(&mut session, PARKED_TIMEOUT).unwrap(), 1);
}

#[test]
fn a_stalled_response_body_is_cancelled() {
    stalled_body_is_cancelled(false);
}

#[test]
fn a_stalled_response_body_over_tls_is_cancelled() {
    stalled_body_is_cancelled(true);
}

#[test]
fn a_body_read_after_the_cancel_fails_even_when_its_bytes_arrived() {
    let (url, _) = serve(false, &[Behaviour::Answer]);
    let mut session = session(&url);
    let mut response = session.send(&request(), None, PARKED_TIMEOUT).unwrap();
    session.client().canceller().cancel();
    let mut buf = [0u8; 16];
    let err = response.body().read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
    assert!(matches!(
        response.read(VERSION, read_status),
        Err(Error::Cancelled)
    ));
}

#[test]
fn cancelling_with_nothing_in_flight_is_harmless() {
    let (url, _) = serve(true, &[Behaviour::Answer]);
    let mut session = session(&url);
    let canceller = session.client().canceller();
    canceller.cancel();
    assert_eq!(folder_sync(&mut session, PARKED_TIMEOUT).unwrap(), 1);
    // Cancelling again closes the (idle) connection of the pool: the client reconnects.
    canceller.cancel();
    canceller.cancel();
    assert_eq!(folder_sync(&mut session, PARKED_TIMEOUT).unwrap(), 1);
    assert_eq!(folder_sync(&mut session, PARKED_TIMEOUT).unwrap(), 1);
}

#[test]
fn a_canceller_is_clone_send_and_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<Canceller>();
}
