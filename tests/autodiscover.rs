//! Autodiscover (transport::autodiscover) against the lab over real loopback HTTPS: each
//! step of the candidate order (domain, autodiscover.domain, the HTTP redirect, DNS SRV from
//! a fake DNS server on loopback), redirectAddr and redirectUrl, redirect bounds and loops,
//! unusable answers, wrong credentials, and the transport's TLS trust.
#![cfg(feature = "lab")]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use easync::lab::{self, Handle};
use easync::transport::autodiscover::{Discovered, Discoverer, Error, Options};
use easync::transport::{Auth, Client, Config, Secret, Session, TlsOptions};
use easync::wbxml::ProtocolVersion;

const TIMEOUT: Duration = Duration::from_secs(5);
const USER: &str = "lab@example.com";
const DOMAIN_URL: &str = "https://example.test/autodiscover/autodiscover.xml";
const SUBDOMAIN_URL: &str = "https://autodiscover.example.test/autodiscover/autodiscover.xml";
const MAIL_URL: &str = "https://mail.example.test/autodiscover/autodiscover.xml";

struct Lab {
    handle: Handle,
    ca_file: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

fn start_lab(tune: impl FnOnce(&mut lab::Config)) -> Lab {
    let loopback = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut config = lab::Config {
        http: loopback,
        https: loopback,
        admin: loopback,
        items: 2,
        tls_names: [
            "example.test",
            "autodiscover.example.test",
            "mail.example.test",
            "other.test",
        ]
        .map(String::from)
        .to_vec(),
        ..lab::Config::default()
    };
    tune(&mut config);
    let handle = lab::Server::start(config).expect("the lab starts");
    let ca_file = std::env::temp_dir().join(format!(
        "easync-autodiscover-{}-{:?}.pem",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&ca_file, handle.ca_pem()).unwrap();
    Lab { handle, ca_file }
}

/// A loopback port where nothing listens (connections are refused at once).
fn dead() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A UDP port where nothing listens (a DNS query there fails at once).
fn dead_dns() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Which candidate hosts reach the lab: (domain https, autodiscover.domain https,
/// autodiscover.domain http).
fn options(lab: &Lab, reach: (bool, bool, bool)) -> Options {
    let https = lab.handle.https_addr().unwrap();
    let http = lab.handle.http_addr().unwrap();
    let pick = |on: bool, addr: SocketAddr| if on { addr } else { dead() };
    let mut config = Config::new("https://unused.invalid/x", USER, "AUTODISC1");
    config.auth = Auth::Basic {
        password: Secret::new("labpass"),
    };
    config.tls = TlsOptions {
        trust_store: None,
        ca_file: Some(lab.ca_file.clone()),
        ..TlsOptions::default()
    };
    let mut options = Options::from_config(&config);
    options.timeout = TIMEOUT;
    options.dns_server = Some(dead_dns());
    options.hosts = vec![
        ("example.test".into(), 443, pick(reach.0, https)),
        (
            "autodiscover.example.test".into(),
            443,
            pick(reach.1, https),
        ),
        ("autodiscover.example.test".into(), 80, pick(reach.2, http)),
        ("mail.example.test".into(), 443, https),
        ("other.test".into(), 443, https),
        ("autodiscover.other.test".into(), 443, dead()),
        ("autodiscover.other.test".into(), 80, dead()),
    ];
    options
}

fn yes(_: &str) -> bool {
    true
}

fn eas_url(lab: &Lab) -> String {
    lab.handle.https_url().unwrap()
}

#[test]
fn the_domain_itself_is_tried_first() {
    let lab = start_lab(|_| {});
    let before = SystemTime::now();
    let found = Discoverer::new(options(&lab, (true, true, true)))
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap();
    assert_eq!(found.url, eas_url(&lab));
    assert_eq!(found.source, DOMAIN_URL);
    assert_eq!(found.address, "lab@example.test");
    assert_eq!(found.display_name.as_deref(), Some("Lab User"));
    assert!(found.found_at >= before && found.found_at <= SystemTime::now());
    // The result can be stored and read back as it is.
    let stored = serde_json::to_string(&found).unwrap();
    assert_eq!(serde_json::from_str::<Discovered>(&stored).unwrap(), found);
}

#[test]
fn autodiscover_subdomain_is_second() {
    let lab = start_lab(|_| {});
    let found = Discoverer::new(options(&lab, (false, true, true)))
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap();
    assert_eq!(found.source, SUBDOMAIN_URL);
    assert_eq!(found.url, eas_url(&lab));
}

#[test]
fn the_http_redirect_is_third_and_needs_confirmation() {
    let lab = start_lab(|c| c.autodiscover.http_redirect = Some(MAIL_URL.into()));
    let discoverer = Discoverer::new(options(&lab, (false, false, true))).unwrap();
    let asked = Mutex::new(Vec::new());
    let found = discoverer
        .discover("lab@example.test", &|url: &str| {
            asked.lock().unwrap().push(url.to_string());
            true
        })
        .unwrap();
    assert_eq!(found.source, MAIL_URL);
    assert_eq!(found.url, eas_url(&lab));
    assert_eq!(*asked.lock().unwrap(), vec![MAIL_URL.to_string()]);

    // Refused by the user: not used; the rest of the list fails.
    let err = discoverer
        .discover("lab@example.test", &|_: &str| false)
        .unwrap_err();
    match &err {
        Error::NotFound { domain, attempts } => {
            assert_eq!(domain, "example.test");
            assert_eq!(attempts.len(), 4, "{attempts:?}");
            assert!(attempts[2].contains("not confirmed"), "{attempts:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("enter the server URL by hand"));
}

#[test]
fn an_http_redirect_to_http_is_not_followed() {
    let lab = start_lab(|c| {
        c.autodiscover.http_redirect =
            Some("http://mail.example.test/autodiscover/autodiscover.xml".into())
    });
    let err = Discoverer::new(options(&lab, (false, false, true)))
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap_err();
    match err {
        Error::NotFound { attempts, .. } => {
            assert!(attempts[2].contains("not https"), "{attempts:?}")
        }
        other => panic!("{other:?}"),
    }
}

/// A DNS server on loopback answering every SRV query with one record.
fn fake_dns(target: &str, port: u16) -> (SocketAddr, Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = names.clone();
    let target = target.to_string();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        // One query is expected; serve a few in case of a resend.
        for _ in 0..3 {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            let query = &buf[..n];
            // The question: labels from offset 12 to the zero byte, then type and class.
            let mut pos = 12;
            let mut labels = Vec::new();
            while pos < n && query[pos] != 0 {
                let len = query[pos] as usize;
                labels.push(String::from_utf8_lossy(&query[pos + 1..pos + 1 + len]).to_string());
                pos += 1 + len;
            }
            let question_end = pos + 5;
            seen.lock().unwrap().push(labels.join("."));
            assert_eq!(
                &query[pos + 1..question_end],
                &[0, 33, 0, 1],
                "an SRV query"
            );
            let mut answer = query[..question_end].to_vec();
            answer[2] = 0x81;
            answer[3] = 0x80;
            answer[7] = 1; // one answer
            let mut rdata = vec![0, 0, 0, 0];
            rdata.extend_from_slice(&port.to_be_bytes());
            for label in target.split('.') {
                rdata.push(label.len() as u8);
                rdata.extend_from_slice(label.as_bytes());
            }
            rdata.push(0);
            answer.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 1, 0]);
            answer.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            answer.extend_from_slice(&rdata);
            socket.send_to(&answer, from).unwrap();
        }
    });
    (addr, names, thread)
}

#[test]
fn dns_srv_is_fourth() {
    let lab = start_lab(|_| {});
    let port = lab.handle.https_addr().unwrap().port();
    let (dns, names, _thread) = fake_dns("srv-target.example.test", port);
    let mut options = options(&lab, (false, false, false));
    options.dns_server = Some(dns);
    // The record's port is used: only that (host, port) reaches the lab.
    options.hosts.push((
        "srv-target.example.test".into(),
        port,
        lab.handle.https_addr().unwrap(),
    ));
    let asked = Mutex::new(Vec::new());
    let expected = format!("https://srv-target.example.test:{port}/autodiscover/autodiscover.xml");
    // The lab certificate does not name srv-target: the TLS name check must fail, listed as
    // the SRV attempt's reason.
    let err = Discoverer::new(options.clone())
        .unwrap()
        .discover("lab@example.test", &|u: &str| {
            asked.lock().unwrap().push(u.to_string());
            true
        })
        .unwrap_err();
    assert_eq!(names.lock().unwrap()[0], "_autodiscover._tcp.example.test");
    assert_eq!(*asked.lock().unwrap(), vec![expected.clone()]);
    match err {
        Error::NotFound { attempts, .. } => assert!(
            attempts[3].starts_with(&expected) && attempts[3].contains("not valid for"),
            "{attempts:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dns_srv_target_with_a_valid_certificate() {
    let lab = start_lab(|c| c.tls_names.push("srv-target.example.test".into()));
    let port = lab.handle.https_addr().unwrap().port();
    let (dns, _names, _thread) = fake_dns("srv-target.example.test", port);
    let mut options = options(&lab, (false, false, false));
    options.dns_server = Some(dns);
    options.hosts.push((
        "srv-target.example.test".into(),
        port,
        lab.handle.https_addr().unwrap(),
    ));
    let found = Discoverer::new(options)
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap();
    assert_eq!(
        found.source,
        format!("https://srv-target.example.test:{port}/autodiscover/autodiscover.xml")
    );
    assert_eq!(found.url, eas_url(&lab));
}

#[test]
fn redirect_addr_starts_again_at_the_new_domain() {
    let lab = start_lab(|c| {
        c.autodiscover.redirect_addr = vec![("lab@example.test".into(), "lab@other.test".into())]
    });
    let found = Discoverer::new(options(&lab, (true, false, false)))
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap();
    assert_eq!(found.address, "lab@other.test");
    assert_eq!(
        found.source,
        "https://other.test/autodiscover/autodiscover.xml"
    );
    assert_eq!(found.url, eas_url(&lab));
}

#[test]
fn redirect_url_is_posted_to() {
    let target = "https://mail.example.test/ews/autodiscover.xml";
    let lab = start_lab(|c| {
        c.autodiscover.redirect_url = vec![("lab@example.test".into(), target.into())]
    });
    let found = Discoverer::new(options(&lab, (true, false, false)))
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap();
    assert_eq!(found.source, target);
    assert_eq!(found.address, "lab@example.test");
    assert_eq!(found.url, eas_url(&lab));
}

#[test]
fn redirect_loops_are_detected() {
    let lab = start_lab(|c| {
        c.autodiscover.redirect_addr = vec![
            ("a@example.test".into(), "b@example.test".into()),
            ("b@example.test".into(), "a@example.test".into()),
        ];
        c.autodiscover.redirect_url = vec![("c@example.test".into(), DOMAIN_URL.into())];
    });
    let discoverer = Discoverer::new(options(&lab, (true, false, false))).unwrap();
    let err = discoverer.discover("a@example.test", &yes).unwrap_err();
    assert!(
        matches!(&err, Error::RedirectLoop { target } if target == "a@example.test"),
        "{err:?}"
    );
    let err = discoverer.discover("c@example.test", &yes).unwrap_err();
    assert!(
        matches!(&err, Error::RedirectLoop { target } if target == DOMAIN_URL),
        "{err:?}"
    );
}

#[test]
fn redirects_are_bounded() {
    let lab = start_lab(|c| {
        c.autodiscover.redirect_addr = (0..20)
            .map(|i| {
                (
                    format!("u{i}@example.test"),
                    format!("u{}@example.test", i + 1),
                )
            })
            .collect()
    });
    let discoverer = Discoverer::new(options(&lab, (true, false, false))).unwrap();
    let err = discoverer.discover("u0@example.test", &yes).unwrap_err();
    assert!(
        matches!(err, Error::TooManyRedirects { hops: 10 }),
        "{err:?}"
    );
    // Within the bound it succeeds.
    let found = discoverer.discover("u12@example.test", &yes).unwrap();
    assert_eq!(found.address, "u20@example.test");
}

#[test]
fn an_answer_that_is_not_xml_is_an_error() {
    // A web server answering HTML where Autodiscover should be.
    let lab = start_lab(|c| c.autodiscover.html_for = vec!["lab@example.test".into()]);
    let err = Discoverer::new(options(&lab, (true, false, false)))
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap_err();
    let Error::NotFound { attempts, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        attempts[0].starts_with(DOMAIN_URL)
            && attempts[0].contains("not an Autodiscover answer")
            && attempts[0].contains("<html>"),
        "{attempts:?}"
    );
}

#[test]
fn a_redirect_url_must_be_https() {
    let lab = start_lab(|c| {
        c.autodiscover.redirect_url = vec![(
            "lab@example.test".into(),
            "http://mail.example.test/autodiscover/autodiscover.xml".into(),
        )]
    });
    let err = Discoverer::new(options(&lab, (true, false, false)))
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap_err();
    assert!(matches!(err, Error::RedirectRefused { .. }), "{err:?}");
}

#[test]
fn wrong_credentials_are_reported_as_such() {
    let lab = start_lab(|_| {});
    let mut options = options(&lab, (true, true, false));
    options.auth = Auth::Basic {
        password: Secret::new("wrong"),
    };
    let err = Discoverer::new(options)
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { url } if url == DOMAIN_URL),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong"));
}

#[test]
fn nothing_found_lists_every_attempt() {
    let lab = start_lab(|_| {});
    let err = Discoverer::new(options(&lab, (false, false, false)))
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap_err();
    let Error::NotFound { attempts, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(attempts.len(), 4, "{attempts:?}");
    assert!(attempts[0].starts_with(DOMAIN_URL));
    assert!(attempts[1].starts_with(SUBDOMAIN_URL));
    assert!(attempts[2].starts_with("http://autodiscover.example.test/"));
    assert!(attempts[3].starts_with("_autodiscover._tcp.example.test"));
    let bad = Discoverer::new(options(&lab, (false, false, false)))
        .unwrap()
        .discover("not-an-address", &yes)
        .unwrap_err();
    assert!(matches!(bad, Error::InvalidAddress { .. }), "{bad:?}");
}

#[test]
fn the_transport_pins_apply() {
    let lab = start_lab(|_| {});
    let mut options = options(&lab, (true, false, false));
    options.tls.pins = vec!["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()];
    let err = Discoverer::new(options)
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap_err();
    let Error::NotFound { attempts, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(attempts[0].contains("pin mismatch"), "{attempts:?}");
}

#[test]
fn the_found_url_serves_activesync() {
    let lab = start_lab(|_| {});
    let found = Discoverer::new(options(&lab, (true, false, false)))
        .unwrap()
        .discover("lab@example.test", &yes)
        .unwrap();
    let mut config = Config::new(found.url, USER, "AUTODISC2");
    config.auth = Auth::Basic {
        password: Secret::new("labpass"),
    };
    config.tls = TlsOptions {
        trust_store: None,
        ca_file: Some(lab.ca_file.clone()),
        ..TlsOptions::default()
    };
    let v = ProtocolVersion::V16_1;
    let mut session = Session::new(Client::new(config).unwrap(), v);
    session.negotiate(Some(v), TIMEOUT).expect("OPTIONS");
    assert_eq!(session.state().version, v);
}
