//! `easyncctl diagnose`: the troubleshooting command. It works without the daemon (it does
//! not use D-Bus: a daemon that is down is when people diagnose) from the same configuration
//! file as easyncd, and checks in order: the configuration, DNS, TCP, TLS (the certificate
//! chain explained), authentication with OPTIONS, provisioning (a dry run: the policy is
//! fetched and the hooks judged, nothing is acknowledged and the account state is not
//! touched) and a short Ping. Each check prints one line, `ok|FAIL|skip  <check>: <detail>`,
//! plus what to do about a problem; `--json` prints one JSON object instead.
//!
//! The checks are plain functions over [`Diagnosis`] so each can run alone; [`run`] chains
//! them and stops where a failure makes the later ones meaningless.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use easync::config::{self, AgeFilter, AuthSource, Config};
use easync::device::hooks::{self, HookSet};
use easync::eas::ping;
use easync::eas::provision::{self, AckStatus, Next, Provisioning, WipeDirective};
use easync::eas::settings::DeviceInformation;
use easync::eas::version::SUPPORTED;
use easync::eas::{Command, ServerInfo};
use easync::engine::enforce::HookEnforcer;
use easync::engine::provision::Enforcer;
use easync::store::state::StateFile;
use easync::transport::{self, Auth, Client, Session, TlsOptions, command_timeout, tls};
use easync::wbxml::ProtocolVersion;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, ClientConnection};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

pub const USAGE: &str = "\
usage: easyncctl diagnose [--config FILE] [--json] [--timeout SECONDS]

  Checks, in order, what easyncd needs to reach the mail server: the configuration,
  DNS, TCP, TLS (the server's certificates explained), the password (OPTIONS), the
  server's security policy (a dry run: the [hooks] judge it, nothing is acknowledged) and
  push (a Ping of at most [push] heartbeat_min seconds). It does not need the daemon, and
  writes nothing to the account's state.

  --config FILE      the configuration (default /etc/easync/easync.toml)
  --json             print one JSON object: {\"config\", \"ok\", \"checks\": [{name, status,
                     detail, advice}]}
  --timeout SECONDS  how long to wait for the network at each step (default 15)

Exit status: 0 every check passed, 1 a check failed, 2 usage.";

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One check's result: what was found and, for a problem, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub advice: Vec<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            advice: Vec::new(),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, advice: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            advice: vec![advice.into()],
        }
    }

    fn skip(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Skip,
            detail: detail.into(),
            advice: Vec::new(),
        }
    }

    fn advise(mut self, advice: impl Into<String>) -> Check {
        self.advice.push(advice.into());
        self
    }

    fn passed(&self) -> bool {
        self.status != Status::Fail
    }
}

// Seed advice (the troubleshooting list), worded once.
const ADVICE_PASSWORD: &str = "wrong password or locked account: check account.user and the \
     password file; if both are right, ask the mail administrator whether the account is \
     locked or ActiveSync is disabled for it";
const ADVICE_UNREACHABLE: &str = "server unreachable: check the device's network, the server \
     address in account.server, and whether a firewall blocks the port (443 for https)";
const ADVICE_POLICY: &str = "blocked by policy: a server that requires full compliance \
     refuses this device (Provision status 139); configure [hooks] that apply the missing \
     elements (examples in board/hooks/), or ask the administrator to allow partly \
     compliant devices";
const ADVICE_DEVICE_BLOCKED: &str = "device blocked or quarantined: ask the mail \
     administrator to allow this device (its DeviceId is device.device_id or derived from the \
     machine id) and ActiveSync for the account";
const ADVICE_SLOW_SYNC: &str = "if the first sync is slow, limit the mail synced: set \
     [sync] mail_age = \"2w\" (or \"1m\") in the configuration";

/// Everything the checks learn, handed from one to the next.
pub struct Diagnosis {
    pub config_path: PathBuf,
    /// How long each network step may wait.
    pub timeout: Duration,
    pub checks: Vec<Check>,
    config: Option<Config>,
    url: Option<String>,
    endpoint: Option<Endpoint>,
    addresses: Vec<SocketAddr>,
    session: Option<Session>,
    server: Option<ServerInfo>,
    /// Whether a later check (Ping) makes sense after provisioning.
    provisioned: bool,
}

impl Diagnosis {
    pub fn new(config_path: impl Into<PathBuf>, timeout: Duration) -> Diagnosis {
        Diagnosis {
            config_path: config_path.into(),
            timeout,
            checks: Vec::new(),
            config: None,
            url: None,
            endpoint: None,
            addresses: Vec::new(),
            session: None,
            server: None,
            provisioned: false,
        }
    }

    /// Every check passed (skips count as passed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }

    fn push(&mut self, check: Check) -> bool {
        let passed = check.status == Status::Ok;
        self.checks.push(check);
        passed
    }

    /// The checks after a failure, marked as not run.
    fn skip_rest(&mut self, from: usize, why: &str) {
        for name in &CHECKS[from..] {
            self.checks.push(Check::skip(name, why.to_string()));
        }
    }
}

/// The checks, in the order [`run`] runs them.
pub const CHECKS: [&str; 7] = ["config", "dns", "tcp", "tls", "auth", "provision", "ping"];

/// Runs every check in order, stopping after one whose failure makes the rest meaningless.
pub fn run(config_path: &Path, timeout: Duration) -> Diagnosis {
    let mut d = Diagnosis::new(config_path, timeout);
    let steps: [fn(&mut Diagnosis) -> bool; 7] = [
        check_config,
        check_dns,
        check_tcp,
        check_tls,
        check_auth,
        check_provision,
        check_ping,
    ];
    for (i, step) in steps.iter().enumerate() {
        if !step(&mut d) {
            let why = match d.checks.last().map(|c| c.status) {
                Some(Status::Fail) => format!("not run: the {} check failed", CHECKS[i]),
                _ => format!("not run: the {} check was skipped", CHECKS[i]),
            };
            d.skip_rest(i + 1, &why);
            break;
        }
    }
    d
}

// ---------------------------------------------------------------------------------------------
// 1. configuration

/// Loads the configuration and finds the server URL (configured or cached by Autodiscover).
pub fn check_config(d: &mut Diagnosis) -> bool {
    const NAME: &str = "config";
    let config = match Config::load(&d.config_path) {
        Ok(c) => c,
        Err(e) => {
            return d.push(Check::fail(
                NAME,
                e.to_string(),
                "fix the configuration file (board/easync.toml documents every key), or give \
                 the right one with --config FILE",
            ));
        }
    };
    let account = config.account();
    let url = match &account.server {
        Some(url) => Some(url.clone()),
        None => std::fs::read_to_string(
            config
                .data_dir()
                .join("state")
                .join(easync::engine::account::SERVER_URL_FILE),
        )
        .ok()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty()),
    };
    let Some(url) = url else {
        return d.push(Check::fail(
            NAME,
            format!(
                "{}: account {} has no account.server and Autodiscover has not found one yet",
                config.origin(),
                account.email
            ),
            "set account.server = \"https://HOST/Microsoft-Server-ActiveSync\", or run \
             `easyncd --once` so that Autodiscover finds and remembers the server",
        ));
    };
    let endpoint = match Endpoint::parse(&url) {
        Ok(e) => e,
        Err(problem) => {
            return d.push(Check::fail(
                NAME,
                format!("{}: the server URL {url:?} {problem}", config.origin()),
                "set account.server = \"https://HOST/Microsoft-Server-ActiveSync\"",
            ));
        }
    };
    if let Err(e) = config.device_id() {
        return d.push(Check::fail(
            NAME,
            e.to_string(),
            "set device.device_id in the configuration",
        ));
    }
    let mut check = Check::ok(
        NAME,
        format!(
            "{}: account {} (user {}) on {url}{}",
            config.origin(),
            account.email,
            account.user,
            if account.server.is_none() {
                " (found by Autodiscover)"
            } else {
                ""
            }
        ),
    );
    if config.sync().mail_age == AgeFilter::All {
        check = check.advise(ADVICE_SLOW_SYNC);
    }
    d.config = Some(config);
    d.url = Some(url);
    d.endpoint = Some(endpoint);
    d.push(check)
}

/// Scheme, host and port of the server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    /// The host name or address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `http(s)://[user@]host[:port][/path...]`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (https, rest) = if let Some(r) = strip_prefix_ignore_case(url, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ignore_case(url, "http://") {
            (false, r)
        } else {
            return Err("does not start with https://".into());
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("has an unclosed [ in its host")?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("has no host name".into());
        }
        let port = match port {
            None | Some("") => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("has a bad port {p:?}"))?,
        };
        Ok(Endpoint {
            https,
            host: host.to_string(),
            port,
        })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

// ---------------------------------------------------------------------------------------------
// 2. DNS and 3. TCP

pub fn check_dns(d: &mut Diagnosis) -> bool {
    const NAME: &str = "dns";
    let Some(endpoint) = d.endpoint.clone() else {
        return d.push(Check::skip(NAME, "no server to look up"));
    };
    let literal = endpoint.host.parse::<std::net::IpAddr>().is_ok();
    match (endpoint.host.as_str(), endpoint.port).to_socket_addrs() {
        Ok(found) => {
            let mut addresses: Vec<SocketAddr> = found.collect();
            addresses.dedup();
            if addresses.is_empty() {
                return d.push(Check::fail(
                    NAME,
                    format!("{} has no address", endpoint.host),
                    "check the server name in account.server and the device's DNS settings",
                ));
            }
            let list: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
            let detail = if literal {
                format!("{} is an address (no look-up needed)", endpoint.host)
            } else {
                format!("{} resolves to {}", endpoint.host, list.join(", "))
            };
            d.addresses = addresses;
            d.push(Check::ok(NAME, detail))
        }
        Err(e) => d.push(Check::fail(
            NAME,
            format!("{} not found ({e})", endpoint.host),
            "check the server name in account.server and the device's DNS settings \
             (/etc/resolv.conf); a captive portal or VPN may also hide it",
        )),
    }
}

/// Connects to `addresses` in turn; the first that answers, or every error.
pub fn connect(
    addresses: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr, Duration), Vec<String>> {
    let mut errors = Vec::new();
    for addr in addresses {
        let started = Instant::now();
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok((stream, *addr, started.elapsed())),
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    Err(errors)
}

pub fn check_tcp(d: &mut Diagnosis) -> bool {
    const NAME: &str = "tcp";
    let Some(endpoint) = d.endpoint.clone() else {
        return d.push(Check::skip(NAME, "no server to connect to"));
    };
    match connect(&d.addresses, d.timeout) {
        Ok((_, addr, took)) => d.push(Check::ok(
            NAME,
            format!("connected to {addr} in {} ms", took.as_millis()),
        )),
        Err(errors) => d.push(Check::fail(
            NAME,
            format!(
                "cannot connect to port {} of {}: {}",
                endpoint.port,
                endpoint.host,
                errors.join("; ")
            ),
            ADVICE_UNREACHABLE.replace("443", &endpoint.port.to_string()),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// 4. TLS

/// The TLS options easyncd's engine uses for this configuration (the same mapping as
/// `Account::transport_config`: the system store plus `[tls]`).
pub fn tls_options(config: &Config) -> TlsOptions {
    let tls = config.tls();
    TlsOptions {
        ca_file: tls.ca_file.clone(),
        pins: tls.pin_sha256.clone(),
        client_cert: tls.client_cert.clone(),
        client_key: tls.client_key.clone(),
        ..TlsOptions::default()
    }
}

/// A chain the verifier judged, and its verdict.
type Judged = (Vec<CertificateDer<'static>>, Result<(), rustls::Error>);

/// Wraps the engine's verifier and keeps the chain it judged and its verdict.
#[derive(Debug)]
struct Recorder {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Mutex<Option<Judged>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((chain, verdict.as_ref().map(|_| ()).map_err(Clone::clone)));
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a TLS handshake showed.
#[derive(Debug)]
pub struct TlsFindings {
    /// The certificates the server sent, its own first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The verifier's verdict on them (`None`: the handshake stopped before it).
    pub verdict: Option<Result<(), rustls::Error>>,
    /// The handshake's own outcome: the negotiated protocol, or the error.
    pub outcome: Result<String, String>,
}

/// Runs a TLS handshake with `host` over `stream`, trusting what `options` trust (the
/// engine's own verifier), and records the chain.
pub fn handshake(
    mut stream: TcpStream,
    host: &str,
    options: &TlsOptions,
    timeout: Duration,
) -> Result<TlsFindings, transport::Error> {
    let recorder = Arc::new(Recorder {
        inner: tls::server_verifier(options)?,
        seen: Mutex::new(None),
    });
    let mut config = (*tls::client_config(options)?).clone();
    config
        .dangerous()
        .set_certificate_verifier(recorder.clone());
    let name =
        ServerName::try_from(host.to_string()).map_err(|_| transport::Error::InvalidUrl {
            url: host.to_string(),
            reason: "the host is not a valid DNS name or IP address".into(),
        })?;
    let mut conn = ClientConnection::new(Arc::new(config), name)
        .map_err(|e| transport::Error::Tls(e.to_string()))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let mut outcome = Ok(String::new());
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut stream) {
            outcome = Err(match tls::rustls_error_in(&e) {
                Some(r) => tls::map_rustls_error(r, host).to_string(),
                None if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    format!("no TLS answer within {} s", timeout.as_secs())
                }
                None => format!("the connection failed during the TLS handshake: {e}"),
            });
            break;
        }
    }
    if outcome.is_ok() {
        // TLS 1.3 servers may still refuse a client certificate after the handshake.
        conn.send_close_notify();
        let _ = conn.complete_io(&mut stream);
        let version = conn
            .protocol_version()
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_else(|| "TLS".into());
        outcome = Ok(version);
    }
    let (chain, verdict) = match recorder.seen.lock().ok().and_then(|mut s| s.take()) {
        Some((chain, verdict)) => (chain, Some(verdict)),
        None => (Vec::new(), None),
    };
    Ok(TlsFindings {
        chain,
        verdict,
        outcome,
    })
}

/// A certificate problem in plain words and what to do about it.
pub fn certificate_problem(e: &rustls::Error, host: &str) -> (String, String) {
    let clock = "check the device clock (date -u) first; if it is right, the server's \
                 certificate must be renewed by its administrator";
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => (
                "unknown CA: the certificate is issued by an authority this device does not \
                 trust"
                    .into(),
                "certificate problem: if the server uses a private CA, put that CA's \
                 certificate (PEM) in a file and set tls.ca_file to it"
                    .into(),
            ),
            CertificateError::BadSignature => (
                "bad signature: the certificate chain does not verify".into(),
                "certificate problem: the server sends a broken chain; ask its administrator"
                    .into(),
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                (
                    format!("wrong host name: the certificate is not made out to {host}"),
                    "certificate problem: use the host name the certificate names in \
                 account.server (see the names above), or have the certificate reissued"
                        .into(),
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
                "expired: the certificate's validity has ended".into(),
                clock.into(),
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                "not yet valid: the certificate's validity has not started".into(),
                clock.into(),
            ),
            CertificateError::Other(other)
                if other.0.downcast_ref::<tls::PinMismatchError>().is_some() =>
            {
                (
                    format!("pin mismatch: {}", other.0),
                    "certificate problem: the server's key changed or this is not the \
                     server; if the change is expected, update tls.pin_sha256"
                        .into(),
                )
            }
            other => (
                format!("the certificate is refused: {other}"),
                "certificate problem: ask the server's administrator, or set tls.ca_file".into(),
            ),
        },
        other => (
            tls::map_rustls_error(other, host).to_string(),
            "certificate problem: check [tls] in the configuration".into(),
        ),
    }
}

pub fn check_tls(d: &mut Diagnosis) -> bool {
    const NAME: &str = "tls";
    let (Some(endpoint), Some(config)) = (d.endpoint.clone(), d.config.as_ref()) else {
        return d.push(Check::skip(NAME, "no server"));
    };
    if !endpoint.https {
        d.checks.push(Check::skip(
            NAME,
            "the server URL is plain http (allowed by tls.allow_insecure_http): the password \
             travels unencrypted",
        ));
        return true;
    }
    let options = tls_options(config);
    let stream = match connect(&d.addresses, d.timeout) {
        Ok((stream, _, _)) => stream,
        Err(errors) => {
            return d.push(Check::fail(
                NAME,
                format!("cannot connect again: {}", errors.join("; ")),
                ADVICE_UNREACHABLE,
            ));
        }
    };
    let findings = match handshake(stream, &endpoint.host, &options, d.timeout) {
        Ok(f) => f,
        Err(e) => {
            return d.push(Check::fail(
                NAME,
                e.to_string(),
                "fix [tls] in the configuration (tls.ca_file, tls.client_cert, tls.pin_sha256)",
            ));
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut lines = Vec::new();
    for (i, cert) in findings.chain.iter().enumerate() {
        lines.push(explain_certificate(i, cert.as_ref(), now));
    }
    let chain_text = if lines.is_empty() {
        String::new()
    } else {
        format!("\n{}", lines.join("\n"))
    };
    let check = match (&findings.verdict, &findings.outcome) {
        (Some(Err(e)), _) => {
            let (problem, advice) = certificate_problem(e, &endpoint.host);
            Check::fail(
                NAME,
                format!("{problem} (trust: {}){chain_text}", trust_sources(&options)),
                advice,
            )
        }
        (_, Err(e)) => Check::fail(
            NAME,
            format!("{e}{chain_text}"),
            "check [tls] (a client certificate the server wants?) and that the port speaks \
             TLS",
        ),
        (Some(Ok(())), Ok(version)) => Check::ok(
            NAME,
            format!(
                "{version}; the certificate is valid for {} and trusted through {}{chain_text}",
                endpoint.host,
                deciding_trust(&options, &findings.chain, &endpoint.host)
            ),
        ),
        (None, Ok(version)) => Check::ok(NAME, format!("{version}{chain_text}")),
    };
    d.push(check)
}

fn trust_sources(options: &TlsOptions) -> String {
    let mut sources = Vec::new();
    if let Some(store) = &options.trust_store {
        sources.push(format!("the system store {}", store.display()));
    }
    if let Some(ca) = &options.ca_file {
        sources.push(format!("tls.ca_file {}", ca.display()));
    }
    if !options.pins.is_empty() {
        sources.push(format!("{} pin(s)", options.pins.len()));
    }
    sources.join(" + ")
}

/// Which configured trust accepts `chain`: `tls.ca_file` alone, or the system store.
fn deciding_trust(options: &TlsOptions, chain: &[CertificateDer<'static>], host: &str) -> String {
    let pins = if options.pins.is_empty() {
        String::new()
    } else {
        ", and its key matches a pin".to_string()
    };
    let by_ca_file = options.ca_file.as_ref().is_some_and(|_| {
        let only_ca = TlsOptions {
            trust_store: None,
            pins: Vec::new(),
            ..options.clone()
        };
        let (Some(end), Ok(name)) = (chain.first(), ServerName::try_from(host.to_string())) else {
            return false;
        };
        tls::server_verifier(&only_ca).is_ok_and(|v| {
            v.verify_server_cert(end, &chain[1..], &name, &[], UnixTime::now())
                .is_ok()
        })
    });
    match (&options.ca_file, by_ca_file, &options.trust_store) {
        (Some(ca), true, _) => format!("tls.ca_file {}{pins}", ca.display()),
        (_, _, Some(store)) => format!("the system store {}{pins}", store.display()),
        _ => format!("the configured trust{pins}"),
    }
}

/// One line about certificate `index` of the chain: subject, issuer, names, validity.
fn explain_certificate(index: usize, der: &[u8], now: i64) -> String {
    let role = if index == 0 {
        "server".to_string()
    } else {
        format!("chain {index}")
    };
    let Some(cert) = easync::transport::der::x509::parse(der) else {
        return format!(
            "      [{role}] {} bytes this tool cannot read (not an X.509 certificate it knows)",
            der.len()
        );
    };
    let validity = match (cert.not_before, cert.not_after) {
        (Some(from), Some(until)) => {
            let state = if now > until {
                "EXPIRED"
            } else if now < from {
                "NOT YET VALID"
            } else {
                "valid now"
            };
            format!(
                "valid {} to {} ({state})",
                easync::transport::der::x509::format_time(from),
                easync::transport::der::x509::format_time(until)
            )
        }
        _ => "validity unreadable".into(),
    };
    let names = if cert.names.is_empty() {
        String::new()
    } else {
        format!("; names {}", cert.names.join(", "))
    };
    format!(
        "      [{role}] subject {}; issuer {}{}; {validity}{names}",
        cert.subject,
        cert.issuer,
        if cert.subject == cert.issuer {
            " (self-signed)"
        } else {
            ""
        }
    )
}

// ---------------------------------------------------------------------------------------------
// 5. authentication and OPTIONS

/// The transport configuration easyncd's engine builds (Basic authentication only).
fn transport_config(
    config: &Config,
    url: &str,
    timeout: Duration,
) -> Result<transport::Config, String> {
    let account = config.account();
    let device_id = config.device_id().map_err(|e| e.to_string())?;
    let mut t = transport::Config::new(url, &account.user, device_id);
    t.domain = account.domain.clone();
    t.device_type = config.device().device_type.clone();
    t.query_form = match account.query_form {
        config::QueryForm::Plain => transport::QueryForm::Plain,
        config::QueryForm::Base64 => transport::QueryForm::Base64,
    };
    t.allow_insecure_http = config.tls().allow_insecure_http;
    t.tls = tls_options(config);
    t.connect_timeout = timeout;
    t.auth = Auth::Basic {
        password: transport::Secret::new(config.password().map_err(|e| e.to_string())?.expose()),
    };
    Ok(t)
}

/// Advice for a transport error in the seed list's words.
pub fn advice_for(e: &transport::Error) -> String {
    use transport::Error as E;
    match e {
        E::Unauthorized { .. } => ADVICE_PASSWORD.into(),
        E::Forbidden => ADVICE_DEVICE_BLOCKED.into(),
        E::HostNotFound { .. } | E::Connect(_) | E::Timeout { .. } | E::Network(_) => {
            ADVICE_UNREACHABLE.into()
        }
        E::CertificateNotTrusted(_)
        | E::CertificateNameMismatch { .. }
        | E::CertificateExpired
        | E::PinMismatch { .. }
        | E::ClientCertificateRejected(_)
        | E::Tls(_) => "certificate problem: see the tls check".into(),
        E::Http { status: 404 } => {
            "check account.server ends in /Microsoft-Server-ActiveSync".into()
        }
        E::Throttled { .. } | E::Http { status: 500..=599 } => {
            "the server is busy or failing: try again later".into()
        }
        E::ProvisioningRefused { .. } => ADVICE_POLICY.into(),
        _ => "see the message; `easyncd --once` logs more with RUST_LOG=debug".into(),
    }
}

pub fn check_auth(d: &mut Diagnosis) -> bool {
    const NAME: &str = "auth";
    let (Some(config), Some(url)) = (d.config.as_ref(), d.url.clone()) else {
        return d.push(Check::skip(NAME, "no server"));
    };
    if let AuthSource::OAuth(_) = config.account().auth {
        d.checks.push(Check::skip(
            NAME,
            "an OAuth account: diagnose does not sign in (run `easyncd --once` to see the \
             sign-in); provisioning and push are not checked either",
        ));
        return false;
    }
    let tconfig = match transport_config(config, &url, d.timeout) {
        Ok(t) => t,
        Err(e) => {
            return d.push(Check::fail(
                NAME,
                e,
                "fix the password file (account.password_file, mode 0600) or the credential",
            ));
        }
    };
    let user = tconfig.basic_user();
    let cap = config
        .account()
        .protocol_version
        .map(config::EasVersion::protocol);
    let client = match Client::new(tconfig) {
        Ok(c) => c,
        Err(e) => {
            let advice = advice_for(&e);
            return d.push(Check::fail(NAME, e.to_string(), advice));
        }
    };
    let mut session = Session::new(client, ProtocolVersion::V16_1);
    let info = match session.options(d.timeout.max(Duration::from_secs(30))) {
        Ok(info) => info,
        Err(e) => {
            let detail = match &e {
                transport::Error::Unauthorized { .. } => {
                    format!("the server refused the user {user} and its password (HTTP 401): {e}")
                }
                transport::Error::Forbidden => {
                    format!("the server forbids this device or user (HTTP 403): {e}")
                }
                _ => e.to_string(),
            };
            let advice = advice_for(&e);
            return d.push(Check::fail(NAME, detail, advice));
        }
    };
    let offered: Vec<&str> = info.versions.iter().map(|v| v.as_str()).collect();
    let ours: Vec<&str> = SUPPORTED.iter().map(|v| v.as_str()).collect();
    let check = match info.negotiate(cap) {
        Ok(version) => {
            session.set_version(version);
            Check::ok(
                NAME,
                format!(
                    "signed in as {user}; the server offers ActiveSync {}; easync speaks {}; \
                     using {}",
                    offered.join(", "),
                    ours.join(", "),
                    version.as_str()
                ),
            )
        }
        Err(e) => Check::fail(
            NAME,
            format!(
                "signed in as {user}, but {e} (the server offers {}; easync speaks {})",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                },
                ours.join(", ")
            ),
            "the server is too old or not an ActiveSync server: check account.server and \
             account.protocol_version",
        ),
    };
    d.session = Some(session);
    d.server = Some(info);
    d.push(check)
}

// ---------------------------------------------------------------------------------------------
// 6. provisioning (a dry run)

/// A private scratch directory for the enforcer's state, removed on drop: the hooks judge
/// the policy exactly as in the engine, but nothing reaches the account's state.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("easyncctl-diagnose-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn check_provision(d: &mut Diagnosis) -> bool {
    const NAME: &str = "provision";
    let (Some(config), Some(session)) = (d.config.as_ref(), d.session.as_mut()) else {
        return d.push(Check::skip(NAME, "not signed in"));
    };
    let version = session.state().version;
    let device = (version >= ProtocolVersion::V14_1).then(|| {
        let dev = config.device();
        DeviceInformation {
            model: dev.model.clone(),
            imei: dev.imei.clone(),
            friendly_name: dev.friendly_name.clone(),
            os: dev.os.clone(),
            os_language: dev.os_language.clone(),
            phone_number: dev.phone_number.clone(),
            user_agent: Some(session.client().config().user_agent.clone()),
            ..DeviceInformation::default()
        }
    });
    let mut flow = Provisioning::new(version, device);
    let next = flow
        .start()
        .map_err(transport::Error::from)
        .and_then(|request| session.send(&request, None, command_timeout(Command::Provision, None)))
        .and_then(|response| response.read(version, provision::read_response))
        .and_then(|response| flow.on_response(response).map_err(transport::Error::from));
    let check = match next {
        Err(e) => {
            let advice = advice_for(&e);
            Check::fail(NAME, e.to_string(), advice)
        }
        Ok(Next::NoPolicy) => {
            d.provisioned = true;
            Check::ok(NAME, "the server has no security policy for this device")
        }
        Ok(Next::Apply(policy)) => {
            d.provisioned = true;
            judge_policy(config, &policy)
        }
        Ok(Next::Wipe(directive)) => Check::fail(
            NAME,
            format!(
                "the server orders a remote wipe of {}; diagnose does not acknowledge it",
                match directive {
                    WipeDirective::Full => "this device",
                    WipeDirective::AccountOnly => "this account's data on the device",
                }
            ),
            "easyncd carries the wipe out at its next connection (with [wipe] configured for \
             a full wipe); if the wipe is a mistake, the administrator must cancel it first",
        ),
        Ok(Next::Failed { reason, action }) => {
            let blocked = action == easync::eas::Action::Blocked;
            Check::fail(
                NAME,
                format!("the server refused to provision this device: {reason}"),
                if blocked {
                    // Either the policy (139, 141, 145) or the administrator (129, 130).
                    "blocked by policy (status 139/141/145: configure [hooks] that apply the \
                     policy, see board/hooks/) or by the administrator (129/130: the device \
                     is blocked or quarantined): ask the mail administrator which"
                } else {
                    "try again later; if it persists, ask the mail administrator about this \
                     device's ActiveSync policy"
                },
            )
        }
        Ok(other) => Check::fail(
            NAME,
            format!("unexpected provisioning step {other:?}"),
            "report this to the easync developers",
        ),
    };
    d.push(check)
}

/// What the hooks say about `policy`, run as the engine runs them, with the verdict's state
/// kept in a scratch directory.
fn judge_policy(config: &Config, policy: &easync::eas::policy::Policy) -> Check {
    const NAME: &str = "provision";
    let needed = hooks::needs_enforcing(policy);
    let scratch = match Scratch::new() {
        Ok(s) => s,
        Err(e) => {
            return Check::skip(
                NAME,
                format!(
                    "the server has a policy ({} element(s) to enforce), but the hooks were \
                     not run: no scratch directory for a dry run ({e})",
                    needed.len()
                ),
            );
        }
    };
    let hook_set = config
        .hooks()
        .any()
        .then(|| HookSet::from_config(config.hooks()));
    let mut enforcer = HookEnforcer::new(StateFile::new(&scratch.0), hook_set, Default::default());
    let status = enforcer.apply(policy);
    let verdict = enforcer.compliance();
    let missing = verdict
        .as_ref()
        .map(|v| v.missing.clone())
        .unwrap_or_default();
    let errors = verdict
        .as_ref()
        .map(|v| v.errors.clone())
        .unwrap_or_default();
    let words = match status {
        AckStatus::Applied => "applied",
        AckStatus::PartiallyApplied => "partly applied",
        AckStatus::NotApplied => "not applied",
        AckStatus::ExternallyManaged => "externally managed",
    };
    let mut detail = format!(
        "the server has a security policy ({} element(s) for the device to enforce{}); \
         {} → easyncd acknowledges {} ({words}); not acknowledged by this dry run",
        needed.len(),
        if needed.is_empty() {
            String::new()
        } else {
            format!(": {}", needed.join(", "))
        },
        if config.hooks().any() {
            "the [hooks] ran"
        } else {
            "no [hooks] are configured"
        },
        status.code()
    );
    if !missing.is_empty() {
        detail.push_str(&format!("; not applied: {}", missing.join(", ")));
    }
    let mut check = Check::ok(NAME, detail);
    for e in errors {
        check = check.advise(format!("hook error: {e}"));
    }
    if status != AckStatus::Applied {
        check = check.advise(ADVICE_POLICY);
    }
    check
}

// ---------------------------------------------------------------------------------------------
// 7. a short Ping

pub fn check_ping(d: &mut Diagnosis) -> bool {
    const NAME: &str = "ping";
    let (Some(config), Some(session), Some(info)) =
        (d.config.as_ref(), d.session.as_mut(), d.server.as_ref())
    else {
        return d.push(Check::skip(NAME, "not signed in"));
    };
    if !d.provisioned {
        return d.push(Check::skip(NAME, "provisioning did not finish"));
    }
    if !info.commands.is_empty() && !info.supports_command("Ping") {
        d.checks.push(
            Check::skip(
                NAME,
                "push disabled: the server does not offer Ping (MS-ASProtocolCommands)",
            )
            .advise(
                "easyncd then syncs on its schedule ([sync] resync_interval); ask the mail \
                 administrator to enable direct push if mail should arrive at once",
            ),
        );
        return true;
    }
    // The daemon's policy key, read without touching its state.
    let key = StateFile::new(config.data_dir())
        .peek()
        .ok()
        .flatten()
        .and_then(|s| s.policy_key)
        .and_then(|k| k.parse().ok());
    session.set_policy_key(key);
    let version = session.state().version;
    let heartbeat = config.push().heartbeat_min.as_secs().clamp(1, 3540) as u32;
    let started = Instant::now();
    let result = ping::request(version, heartbeat, &[])
        .map_err(transport::Error::from)
        .and_then(|request| {
            session.send(
                &request,
                None,
                command_timeout(Command::Ping, Some(Duration::from_secs(heartbeat.into()))),
            )
        })
        .and_then(|response| response.read(version, ping::read_response));
    let check = match result {
        Ok(response) => explain_ping(&response, heartbeat, started.elapsed()),
        Err(transport::Error::NeedsProvisioning) => Check::skip(
            NAME,
            "the server wants this device provisioned before push (HTTP 449); easyncd \
             provisions at its next connection (this dry run acknowledges nothing)",
        ),
        Err(transport::Error::Forbidden) => Check::fail(
            NAME,
            "the server refuses Ping (HTTP 403)",
            "push disabled for this account or device: ask the mail administrator to allow \
             direct push; easyncd meanwhile syncs on its schedule",
        ),
        Err(e) => {
            let advice = advice_for(&e);
            Check::fail(NAME, e.to_string(), advice)
        }
    };
    d.push(check)
}

/// A Ping response in plain words (MS-ASCMD 2.2.3.177.11 and the common statuses).
pub fn explain_ping(response: &ping::PingResponse, heartbeat: u32, took: Duration) -> Check {
    const NAME: &str = "ping";
    use ping::Status as S;
    match response.status {
        S::Expired => Check::ok(
            NAME,
            format!("push works: no changes within the {heartbeat} s heartbeat (status 1)"),
        ),
        S::ChangesFound => Check::ok(
            NAME,
            format!(
                "push works: changes wait in {} folder(s) (status 2, after {} s)",
                response.folders.len(),
                took.as_secs()
            ),
        ),
        S::MissingParameters => Check::ok(
            NAME,
            "push answers; the server knows no folders to watch for this device yet \
             (status 3): easyncd names them after its first sync",
        ),
        S::FolderSyncRequired => Check::ok(
            NAME,
            "push answers; the server's folder list changed since easyncd last looked \
             (status 7): easyncd syncs the folder list and pings again",
        ),
        S::InvalidHeartbeatInterval => Check::fail(
            NAME,
            format!(
                "the server refuses a {heartbeat} s heartbeat (status 5){}",
                response
                    .heartbeat_interval
                    .map(|h| format!("; it allows {h} s at that end"))
                    .unwrap_or_default()
            ),
            "set [push] heartbeat_min (and heartbeat_max) within the server's bounds",
        ),
        S::TooManyFolders => Check::fail(
            NAME,
            format!(
                "the server watches fewer folders than easyncd asked for (status 6{})",
                response
                    .max_folders
                    .map(|m| format!(", at most {m}"))
                    .unwrap_or_default()
            ),
            "exclude folders from sync ([sync] exclude_folders)",
        ),
        S::SyntaxError => Check::fail(
            NAME,
            "the server found the Ping malformed (status 4)",
            "report this to the easync developers with the server's name and version",
        ),
        S::ServerError => Check::fail(
            NAME,
            "the server failed to answer the Ping (status 8)",
            "try again later",
        ),
        S::Common(common) => {
            let code = common.code();
            match code {
                142..=144 => Check::skip(
                    NAME,
                    format!(
                        "the server wants this device provisioned before push (status \
                         {code}); easyncd provisions at its next connection (this dry run \
                         acknowledges nothing)"
                    ),
                ),
                140 => Check::fail(
                    NAME,
                    "the server orders a remote wipe (status 140)",
                    "easyncd carries it out at its next connection",
                ),
                _ => Check::fail(
                    NAME,
                    format!("the server answered Ping with status {code}: {common}"),
                    match code {
                        // DeviceIsBlockedForThisUser, AccessDenied, device limit.
                        129 | 130 | 177 => ADVICE_DEVICE_BLOCKED,
                        139..=145 => ADVICE_POLICY,
                        _ => "see the status; try again later",
                    },
                ),
            }
        }
        S::Unknown(code) => Check::fail(
            NAME,
            format!("the server answered Ping with unknown status {code}"),
            "try again later",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// The plain text report: one line per check, advice lines under it.
pub fn render_text(d: &Diagnosis) -> String {
    let mut out = String::new();
    for c in &d.checks {
        out.push_str(&format!(
            "{:<4}  {}: {}\n",
            c.status.as_str(),
            c.name,
            c.detail
        ));
        for a in &c.advice {
            out.push_str(&format!("      advice: {a}\n"));
        }
    }
    out.push_str(if d.passed() {
        "all checks passed\n"
    } else {
        "some checks failed: see the advice above\n"
    });
    out
}

/// The JSON report.
pub fn render_json(d: &Diagnosis) -> serde_json::Value {
    serde_json::json!({
        "config": d.config_path.display().to_string(),
        "ok": d.passed(),
        "checks": d.checks.iter().map(|c| serde_json::json!({
            "name": c.name,
            "status": c.status.as_str(),
            "detail": c.detail,
            "advice": c.advice,
        })).collect::<Vec<_>>(),
    })
}

/// `easyncctl diagnose ARGS...`: parses the options, runs, prints; the exit status.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> std::process::ExitCode {
    use lexopt::prelude::*;
    use std::process::ExitCode;
    let mut parser = lexopt::Parser::from_args(args);
    let mut config_path = PathBuf::from(config::DEFAULT_PATH);
    let mut json = false;
    let mut timeout = Duration::from_secs(15);
    let parsed: Result<bool, String> = (|| {
        while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
            match arg {
                Short('h') | Long("help") => return Ok(false),
                Short('c') | Long("config") => {
                    config_path = parser.value().map_err(|e| e.to_string())?.into();
                }
                Long("json") => json = true,
                Long("timeout") => {
                    let v = parser.value().map_err(|e| e.to_string())?;
                    let v = v.to_string_lossy();
                    timeout = v
                        .parse::<u64>()
                        .ok()
                        .filter(|s| (1..=600).contains(s))
                        .map(Duration::from_secs)
                        .ok_or(format!("--timeout {v}: give seconds from 1 to 600"))?;
                }
                other => return Err(other.unexpected().to_string()),
            }
        }
        Ok(true)
    })();
    match parsed {
        Ok(false) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("easyncctl diagnose: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
        Ok(true) => {}
    }
    let d = run(&config_path, timeout);
    if json {
        println!("{}", render_json(&d));
    } else {
        print!("{}", render_text(&d));
    }
    if d.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_default_ports() {
        assert_eq!(
            Endpoint::parse("https://mail.example.com/Microsoft-Server-ActiveSync").unwrap(),
            Endpoint {
                https: true,
                host: "mail.example.com".into(),
                port: 443
            }
        );
        let e = Endpoint::parse("HTTP://user@[::1]:8080/x").unwrap();
        assert_eq!((e.https, e.host.as_str(), e.port), (false, "::1", 8080));
        assert_eq!(Endpoint::parse("http://127.0.0.1:1").unwrap().port, 1);
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("https://:443/").is_err());
        assert!(Endpoint::parse("https://h:99999/").is_err());
        assert!(Endpoint::parse("https://[::1/").is_err());
    }

    #[test]
    fn ping_statuses_are_explained() {
        let response = |status| ping::PingResponse {
            status,
            folders: Vec::new(),
            heartbeat_interval: Some(60),
            max_folders: None,
        };
        let three = explain_ping(
            &response(ping::Status::MissingParameters),
            60,
            Duration::ZERO,
        );
        assert_eq!(three.status, Status::Ok);
        assert!(three.detail.contains("status 3"), "{}", three.detail);
        let seven = explain_ping(
            &response(ping::Status::FolderSyncRequired),
            60,
            Duration::ZERO,
        );
        assert!(seven.detail.contains("status 7"), "{}", seven.detail);
        let five = explain_ping(
            &response(ping::Status::InvalidHeartbeatInterval),
            30,
            Duration::ZERO,
        );
        assert_eq!(five.status, Status::Fail);
        assert!(five.detail.contains("60 s"), "{}", five.detail);
        assert!(five.advice[0].contains("heartbeat_min"));
    }

    #[test]
    fn http_refusals_get_the_seed_advice() {
        let unauthorized = transport::Error::Unauthorized {
            credentials_expire_days: None,
        };
        assert!(advice_for(&unauthorized).starts_with("wrong password or locked account"));
        assert!(
            advice_for(&transport::Error::Forbidden).starts_with("device blocked or quarantined")
        );
        let refused = transport::Error::Connect("refused".into());
        assert!(advice_for(&refused).starts_with("server unreachable"));
        let blocked = transport::Error::ProvisioningRefused {
            reason: "139".into(),
        };
        assert!(advice_for(&blocked).starts_with("blocked by policy"));
    }

    #[test]
    fn a_failure_skips_the_checks_after_it() {
        let d = run(
            Path::new("/nonexistent/easync.toml"),
            Duration::from_secs(1),
        );
        let names: Vec<&str> = d.checks.iter().map(|c| c.name).collect();
        assert_eq!(names, CHECKS);
        assert_eq!(d.checks[0].status, Status::Fail);
        assert!(d.checks[1..].iter().all(|c| c.status == Status::Skip));
        assert!(!d.passed());
        let json = render_json(&d);
        assert_eq!(json["checks"].as_array().unwrap().len(), 7);
        assert_eq!(json["ok"], false);
    }
}
