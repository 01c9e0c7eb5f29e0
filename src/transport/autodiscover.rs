//! Finding the ActiveSync server URL from the mail address: Autodiscover (MS-OXDSCLI, plain
//! old XML with the "mobilesync" response schema of MS-ASCMD 2.2.1.1).
//!
//! [`Discoverer::discover`] tries, in order, for the domain of the address:
//! 1. `POST https://<domain>/autodiscover/autodiscover.xml`,
//! 2. `POST https://autodiscover.<domain>/autodiscover/autodiscover.xml`,
//! 3. an unauthenticated `GET http://autodiscover.<domain>/autodiscover/autodiscover.xml`
//!    whose 301/302 to an `https://` URL is followed once the caller confirmed it,
//! 4. the DNS SRV record `_autodiscover._tcp.<domain>` (queried over UDP from the resolver of
//!    `/etc/resolv.conf`, or the one configured), also confirmed by the caller.
//!
//! An answer carries the MobileSync server URL (done), another address (`redirectAddr`:
//! start again with its domain) or another Autodiscover URL (`redirectUrl`, or an HTTP 302:
//! POST there). Redirects are bounded and loops are detected. The POSTs authenticate like the
//! transport (Basic or bearer) and use the same TLS trust and pins. Answers are read up to
//! [`MAX_RESPONSE`] bytes and parsed by a small XML reader (no entities, no DOCTYPE).

use std::collections::HashSet;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use ureq::http;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use super::client::{self, AgentOptions};
use super::config::{Auth, Config, TlsOptions};

/// The largest Autodiscover answer read (real ones are a few KiB).
pub const MAX_RESPONSE: usize = 64 * 1024;
/// The default bound on redirects (MS-OXDSCLI: stop after 10).
pub const MAX_REDIRECTS: u32 = 10;
/// The request schema namespace of the mobilesync provider.
pub const REQUEST_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006";
/// The response schema namespace asked for.
pub const RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006";
/// The path every candidate URL ends in.
pub const PATH: &str = "/autodiscover/autodiscover.xml";

/// Why no server URL was found; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{address:?} is not a mail address: enter it as name@domain")]
    InvalidAddress { address: String },
    #[error(
        "Autodiscover found no server for {domain} ({}): enter the server URL by hand",
        .attempts.join("; ")
    )]
    NotFound {
        domain: String,
        /// One line per URL tried: what went wrong there.
        attempts: Vec<String>,
    },
    #[error(
        "the Autodiscover service at {url} refused the credentials (HTTP 401): check the user \
         name and password or token"
    )]
    Unauthorized { url: String },
    #[error(
        "the Autodiscover service at {url} answered with an error{}: {message}: check the mail \
         address, or enter the server URL by hand",
        .code.map(|c| format!(" {c}")).unwrap_or_default()
    )]
    Server {
        url: String,
        code: Option<u32>,
        message: String,
    },
    #[error(
        "the Autodiscover service at {url} sent an unusable answer ({reason}): enter the server \
         URL by hand"
    )]
    BadResponse { url: String, reason: String },
    #[error(
        "the Autodiscover service at {url} answered HTTP {status}: enter the server URL by hand"
    )]
    Http { url: String, status: u16 },
    #[error(
        "more than {hops} Autodiscover redirects: check the mail address, or enter the server \
         URL by hand"
    )]
    TooManyRedirects { hops: u32 },
    #[error(
        "Autodiscover redirects in a loop (back to {target}): the server is misconfigured; enter \
         the server URL by hand"
    )]
    RedirectLoop { target: String },
    #[error("Autodiscover redirect to {url} not followed: {reason}")]
    RedirectRefused { url: String, reason: String },
    #[error(transparent)]
    Transport(#[from] super::Error),
}

/// A server URL found by Autodiscover, with what the caller needs to cache it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Discovered {
    /// The ActiveSync URL (`https://host/Microsoft-Server-ActiveSync`).
    pub url: String,
    /// The address the answer was for (differs from the one asked after a redirectAddr).
    pub address: String,
    pub display_name: Option<String>,
    /// The Autodiscover URL that gave the answer.
    pub source: String,
    /// When it was found (to decide when to look again).
    pub found_at: SystemTime,
}

/// How to reach the Autodiscover service: identity, TLS and network settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The user for Basic authentication (often the mail address itself).
    pub user: String,
    /// A Windows domain: Basic then authenticates as `DOMAIN\user`.
    pub domain: Option<String>,
    pub auth: Auth,
    pub tls: TlsOptions,
    pub proxy: Option<String>,
    pub user_agent: String,
    /// The time limit of each HTTP exchange and DNS query.
    pub timeout: Duration,
    pub max_redirects: u32,
    /// The DNS server for the SRV lookup; `None` reads `/etc/resolv.conf`.
    pub dns_server: Option<SocketAddr>,
    /// Fixed addresses for (host, port), tried before DNS (split-horizon setups, tests).
    pub hosts: Vec<(String, u16, SocketAddr)>,
}

impl Options {
    /// The identity, authentication, TLS and proxy of a transport configuration.
    pub fn from_config(config: &Config) -> Options {
        Options {
            user: config.user.clone(),
            domain: config.domain.clone(),
            auth: config.auth.clone(),
            tls: config.tls.clone(),
            proxy: config.proxy.clone(),
            user_agent: config.user_agent.clone(),
            timeout: config.connect_timeout.max(Duration::from_secs(10)),
            max_redirects: MAX_REDIRECTS,
            dns_server: None,
            hosts: Vec::new(),
        }
    }
}

/// What one Autodiscover answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The MobileSync server URL.
    Settings {
        url: String,
        display_name: Option<String>,
    },
    /// Ask again for this address (at its domain).
    RedirectAddr(String),
    /// Ask again at this Autodiscover URL.
    RedirectUrl(String),
    /// The service's Error element.
    Error { code: Option<u32>, message: String },
}

/// The request body for `address`.
pub fn request_body(address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Autodiscover xmlns=\"{REQUEST_SCHEMA}\">\
         <Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>{RESPONSE_SCHEMA}\
         </AcceptableResponseSchema></Request></Autodiscover>",
        xml_escape(address)
    )
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// A small XML reader: enough for Autodiscover answers, bounded by the input size.

const MAX_DEPTH: usize = 32;

#[derive(Debug, PartialEq, Eq)]
enum XmlEvent<'a> {
    Start(&'a str),
    End(&'a str),
    Text(String),
}

struct XmlReader<'a> {
    doc: &'a str,
    pos: usize,
    open: Vec<&'a str>,
    /// A self-closing element whose End is still due.
    pending_end: Option<&'a str>,
    root_done: bool,
}

/// The name without its namespace prefix.
fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

impl<'a> XmlReader<'a> {
    fn new(doc: &'a str) -> Self {
        XmlReader {
            doc: doc.strip_prefix('\u{feff}').unwrap_or(doc),
            pos: 0,
            open: Vec::new(),
            pending_end: None,
            root_done: false,
        }
    }

    fn rest(&self) -> &'a str {
        &self.doc[self.pos..]
    }

    /// Skips past `end`, which must follow.
    fn skip_past(&mut self, end: &str, what: &str) -> Result<&'a str, String> {
        let rest = self.rest();
        let at = rest
            .find(end)
            .ok_or_else(|| format!("unterminated {what}"))?;
        self.pos += at + end.len();
        Ok(&rest[..at])
    }

    fn next(&mut self) -> Result<Option<XmlEvent<'a>>, String> {
        if let Some(name) = self.pending_end.take() {
            self.close(name)?;
            return Ok(Some(XmlEvent::End(name)));
        }
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return match self.open.last() {
                    Some(name) => Err(format!("the document ends inside <{name}>")),
                    None if self.root_done => Ok(None),
                    None => Err("no root element".into()),
                };
            }
            if self.root_done {
                // Only whitespace, comments and processing instructions may follow the root.
                let trimmed = rest.trim_start();
                self.pos += rest.len() - trimmed.len();
                if trimmed.starts_with("<!--") {
                    self.skip_past("-->", "comment")?;
                } else if trimmed.starts_with("<?") {
                    self.skip_past("?>", "processing instruction")?;
                } else if !trimmed.is_empty() {
                    return Err("content after the root element".into());
                }
                continue;
            }
            if !rest.starts_with('<') {
                let end = rest.find('<').unwrap_or(rest.len());
                self.pos += end;
                let raw = &rest[..end];
                if self.open.is_empty() {
                    if raw.trim().is_empty() {
                        continue;
                    }
                    return Err("text outside the root element".into());
                }
                return Ok(Some(XmlEvent::Text(decode_entities(raw)?)));
            }
            if rest.starts_with("<?") {
                self.skip_past("?>", "processing instruction")?;
            } else if rest.starts_with("<!--") {
                self.skip_past("-->", "comment")?;
            } else if rest.starts_with("<![CDATA[") {
                self.pos += "<![CDATA[".len();
                let text = self.skip_past("]]>", "CDATA section")?;
                if self.open.is_empty() {
                    return Err("CDATA outside the root element".into());
                }
                return Ok(Some(XmlEvent::Text(text.to_string())));
            } else if rest.starts_with("<!") {
                return Err("DOCTYPE declarations are not accepted".into());
            } else if let Some(after) = rest.strip_prefix("</") {
                let end = after
                    .find('>')
                    .ok_or_else(|| "unterminated end tag".to_string())?;
                let name = local_name(after[..end].trim());
                self.pos += 2 + end + 1;
                self.close(name)?;
                return Ok(Some(XmlEvent::End(name)));
            } else {
                return self.start_tag().map(Some);
            }
        }
    }

    fn start_tag(&mut self) -> Result<XmlEvent<'a>, String> {
        let rest = &self.rest()[1..];
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .ok_or_else(|| "unterminated start tag".to_string())?;
        let name = local_name(&rest[..name_end]);
        if name.is_empty() {
            return Err("an element without a name".into());
        }
        // Attributes are skipped; quotes may hide '>'.
        let mut quote = None;
        let mut end = None;
        for (i, c) in rest[name_end..].char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '>') => {
                    end = Some(name_end + i);
                    break;
                }
                (None, '<') => return Err(format!("'<' inside the tag <{name}>")),
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unterminated tag <{name}>"))?;
        let self_closing = rest[..end].ends_with('/');
        self.pos += 1 + end + 1;
        if self.open.len() >= MAX_DEPTH {
            return Err(format!("elements nested deeper than {MAX_DEPTH}"));
        }
        self.open.push(name);
        if self_closing {
            self.pending_end = Some(name);
        }
        Ok(XmlEvent::Start(name))
    }

    fn close(&mut self, name: &str) -> Result<(), String> {
        match self.open.pop() {
            Some(open) if open == name => {
                self.root_done = self.open.is_empty();
                Ok(())
            }
            Some(open) => Err(format!("</{name}> closes <{open}>")),
            None => Err(format!("</{name}> without a start tag")),
        }
    }
}

fn decode_entities(raw: &str) -> Result<String, String> {
    if !raw.contains('&') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after
            .find(';')
            .filter(|e| *e <= 10)
            .ok_or_else(|| "a bare '&' in text".to_string())?;
        let entity = &after[..end];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{entity};"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Longest text kept from one element.
const MAX_TEXT: usize = 2048;

/// Reads an Autodiscover answer (mobilesync schema, or the Outlook schema's Action forms).
pub fn parse_response(body: &[u8]) -> Result<Answer, String> {
    if body.len() > MAX_RESPONSE {
        return Err(format!("the answer is over {MAX_RESPONSE} bytes"));
    }
    let doc = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_string())?;
    let mut reader = XmlReader::new(doc);
    let mut path: Vec<&str> = Vec::new();
    let mut text = String::new();
    let mut server_type = String::new();
    let mut server_url = String::new();
    let mut server_name = String::new();
    let mut mobile_sync: Option<String> = None;
    let mut display_name = None;
    let mut redirect_addr = None;
    let mut redirect_url = None;
    let mut pox_action = None;
    let mut error_code: Option<u32> = None;
    let mut error_message: Option<String> = None;
    let mut error_seen = false;
    while let Some(event) = reader.next()? {
        match event {
            XmlEvent::Start(name) => {
                if path.is_empty() && name != "Autodiscover" {
                    return Err(format!("the root element is <{name}>, not <Autodiscover>"));
                }
                path.push(name);
                text.clear();
            }
            XmlEvent::Text(t) => {
                if text.len() + t.len() > MAX_TEXT {
                    return Err(format!("an element's text is over {MAX_TEXT} bytes"));
                }
                text.push_str(&t);
            }
            XmlEvent::End(_) => {
                let value = text.trim().to_string();
                text.clear();
                // The path below Autodiscover/Response.
                let inner = match path.as_slice() {
                    ["Autodiscover", "Response", inner @ ..] => inner,
                    _ => &[][..],
                };
                match inner {
                    ["Action", "Settings", "Server", "Type"] => server_type = value,
                    ["Action", "Settings", "Server", "Url"] => server_url = value,
                    ["Action", "Settings", "Server", "Name"] => server_name = value,
                    ["Action", "Settings", "Server"] => {
                        let url = if server_url.is_empty() {
                            &server_name
                        } else {
                            &server_url
                        };
                        if server_type.eq_ignore_ascii_case("MobileSync")
                            && !url.is_empty()
                            && mobile_sync.is_none()
                        {
                            mobile_sync = Some(url.clone());
                        }
                        server_type.clear();
                        server_url.clear();
                        server_name.clear();
                    }
                    ["Action", "Redirect"] | ["Account", "RedirectAddr"] => {
                        redirect_addr = Some(value)
                    }
                    ["Account", "RedirectUrl"] => redirect_url = Some(value),
                    ["Account", "Action"] => pox_action = Some(value),
                    ["User", "DisplayName"] => display_name = Some(value).filter(|v| !v.is_empty()),
                    ["Error" | "Action" | "Account", ..] if path.contains(&"Error") => {
                        error_seen = true;
                        match path.last() {
                            Some(&"ErrorCode" | &"Status") => error_code = value.parse().ok(),
                            Some(&"Message") => error_message = Some(value),
                            _ => {}
                        }
                    }
                    _ => {}
                }
                path.pop();
            }
        }
    }
    if error_seen {
        return Ok(Answer::Error {
            code: error_code,
            message: error_message
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "no message".into()),
        });
    }
    if let Some(url) = mobile_sync {
        return Ok(Answer::Settings { url, display_name });
    }
    let redirect_addr = redirect_addr.filter(|a| !a.is_empty());
    let redirect_url = redirect_url.filter(|u| !u.is_empty());
    match pox_action.as_deref() {
        Some("redirectUrl") => {
            return redirect_url
                .map(Answer::RedirectUrl)
                .ok_or_else(|| "Action redirectUrl without a RedirectUrl".into());
        }
        Some("redirectAddr") => {
            return redirect_addr
                .map(Answer::RedirectAddr)
                .ok_or_else(|| "Action redirectAddr without a RedirectAddr".into());
        }
        _ => {}
    }
    if let Some(addr) = redirect_addr {
        return Ok(Answer::RedirectAddr(addr));
    }
    Err("the answer names no MobileSync server and no redirect".into())
}

// ---------------------------------------------------------------------------------------
// DNS SRV over UDP.

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

const DNS_TYPE_SRV: u16 = 33;
const DNS_CLASS_IN: u16 = 1;
/// Most SRV records kept from one answer.
const MAX_SRV_RECORDS: usize = 16;

/// The first `nameserver` of `/etc/resolv.conf`.
pub fn system_nameserver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    nameserver_from_resolv_conf(&text)
}

fn nameserver_from_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        // An IPv6 zone (fe80::1%eth0) is dropped: the std parser does not take it.
        let addr = words.next()?.split('%').next()?;
        addr.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// A DNS query for the SRV records of `name`.
pub fn srv_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    if name.len() > 253 {
        return Err(format!("the name {name:?} is too long for DNS"));
    }
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a valid DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&DNS_TYPE_SRV.to_be_bytes());
    q.extend_from_slice(&DNS_CLASS_IN.to_be_bytes());
    Ok(q)
}

fn be16(packet: &[u8], at: usize) -> Result<u16, String> {
    packet
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "the DNS answer is truncated".to_string())
}

/// Reads a (possibly compressed) name at `at`; returns it and the position after it.
fn dns_name(packet: &[u8], at: usize) -> Result<(String, usize), String> {
    let mut name = String::new();
    let mut pos = at;
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = *packet
            .get(pos)
            .ok_or_else(|| "the DNS answer is truncated".to_string())?;
        match len {
            0 => {
                return Ok((name, after.unwrap_or(pos + 1)));
            }
            0xC0..=0xFF => {
                let target = (be16(packet, pos)? & 0x3FFF) as usize;
                after.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > 16 {
                    return Err("a DNS name has too many compression pointers".into());
                }
                pos = target;
            }
            1..=63 => {
                let label = packet
                    .get(pos + 1..pos + 1 + len as usize)
                    .ok_or_else(|| "the DNS answer is truncated".to_string())?;
                if !label
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                {
                    return Err("a DNS name has characters a host name cannot have".into());
                }
                if !name.is_empty() {
                    name.push('.');
                }
                // Checked ASCII above.
                name.push_str(&String::from_utf8_lossy(label));
                if name.len() > 253 {
                    return Err("a DNS name is too long".into());
                }
                pos += 1 + len as usize;
            }
            _ => return Err("a DNS name uses an unknown label type".into()),
        }
    }
}

/// Reads the SRV records of a DNS answer to query `id`. NXDOMAIN is an empty list.
pub fn parse_srv_answer(id: u16, packet: &[u8]) -> Result<Vec<SrvRecord>, String> {
    if packet.len() < 12 {
        return Err("the DNS answer is shorter than its header".into());
    }
    if be16(packet, 0)? != id {
        return Err("the DNS answer is for another query".into());
    }
    let flags = be16(packet, 2)?;
    if flags & 0x8000 == 0 {
        return Err("the DNS packet is not an answer".into());
    }
    match flags & 0x000F {
        0 => {}
        3 => return Ok(Vec::new()),
        rcode => return Err(format!("the DNS server answered with error code {rcode}")),
    }
    let questions = be16(packet, 4)?;
    let answers = be16(packet, 6)?;
    let mut pos = 12;
    for _ in 0..questions {
        pos = dns_name(packet, pos)?.1 + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers.min(64) {
        pos = dns_name(packet, pos)?.1;
        let rtype = be16(packet, pos)?;
        let class = be16(packet, pos + 2)?;
        let rdlength = be16(packet, pos + 8)? as usize;
        let rdata = pos + 10;
        if packet.len() < rdata + rdlength {
            return Err("the DNS answer is truncated".into());
        }
        pos = rdata + rdlength;
        if rtype != DNS_TYPE_SRV || class != DNS_CLASS_IN {
            continue;
        }
        if rdlength < 7 {
            return Err("an SRV record is too short".into());
        }
        let (target, _) = dns_name(packet, rdata + 6)?;
        // "." means the service is decidedly not available there.
        if target.is_empty() {
            continue;
        }
        if records.len() < MAX_SRV_RECORDS {
            records.push(SrvRecord {
                priority: be16(packet, rdata)?,
                weight: be16(packet, rdata + 2)?,
                port: be16(packet, rdata + 4)?,
                target,
            });
        }
    }
    records.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    Ok(records)
}

fn query_id() -> u16 {
    use ring::rand::SecureRandom as _;
    let mut id = [0u8; 2];
    if ring::rand::SystemRandom::new().fill(&mut id).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        id = (nanos as u16).to_be_bytes();
    }
    u16::from_be_bytes(id)
}

/// Asks `server` for the SRV records of `name`, within `timeout` (two sends).
pub fn lookup_srv(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> std::io::Result<Vec<SrvRecord>> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let id = query_id();
    let query = srv_query(id, name).map_err(invalid)?;
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    for attempt in 0..2u32 {
        socket.send(&query)?;
        let round_end = if attempt == 0 {
            Instant::now() + timeout / 2
        } else {
            deadline
        };
        // Stray packets (another id) are ignored, a bounded number of times.
        for _ in 0..8 {
            let left = round_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left))?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            };
            if be16(&buf[..n], 0).ok() != Some(id) {
                continue;
            }
            return parse_srv_answer(id, &buf[..n]).map_err(invalid);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no DNS answer from {server} within {} s", timeout.as_secs()),
    ))
}

// ---------------------------------------------------------------------------------------
// The HTTP side.

/// Fixed addresses for some (host, port) pairs, DNS for the rest.
#[derive(Debug)]
struct FixedHosts {
    hosts: Vec<(String, u16, SocketAddr)>,
    dns: DefaultResolver,
}

impl Resolver for FixedHosts {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> core::result::Result<ResolvedSocketAddrs, ureq::Error> {
        if let Some(host) = uri.host() {
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("http") => 80,
                _ => 443,
            });
            let fixed = self
                .hosts
                .iter()
                .find(|(h, p, _)| h.eq_ignore_ascii_case(host) && *p == port);
            if let Some((_, _, addr)) = fixed {
                let mut addrs = self.empty();
                addrs.push(*addr);
                return Ok(addrs);
            }
        }
        self.dns.resolve(uri, config, timeout)
    }
}

/// What one POST produced.
enum Reply {
    Answer(Answer),
    /// An HTTP redirect to this (https) URL.
    Moved(String),
}

/// Where the next request goes.
enum Next {
    /// Try the candidate URLs of this address's domain.
    Domain(String),
    /// POST for `address` at `url`.
    Url { url: String, address: String },
}

/// Finds ActiveSync server URLs.
pub struct Discoverer {
    options: Options,
    agent: ureq::Agent,
}

impl core::fmt::Debug for Discoverer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Discoverer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn domain_of(address: &str) -> Result<&str, Error> {
    match address.trim().rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && domain.len() <= 253
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !domain.starts_with('.')
                && !domain.contains("..") =>
        {
            Ok(domain)
        }
        _ => Err(Error::InvalidAddress {
            address: address.to_string(),
        }),
    }
}

/// The status of an HTTP redirect.
fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

impl Discoverer {
    /// Builds the HTTP client (the transport's TLS trust, pins and client certificate).
    pub fn new(options: Options) -> Result<Discoverer, Error> {
        let agent = client::build_agent(
            &AgentOptions {
                tls: &options.tls,
                proxy: options.proxy.as_deref(),
                user_agent: &options.user_agent,
                // The one http step (the GET) is checked by hand; POSTs must be https.
                https_only: false,
            },
            FixedHosts {
                hosts: options.hosts.clone(),
                dns: DefaultResolver::default(),
            },
        )?;
        Ok(Discoverer { options, agent })
    }

    /// Finds the ActiveSync URL for `address`. `confirm` is asked before following a
    /// redirect that came over unauthenticated channels (the HTTP GET's 302, DNS SRV): it
    /// gets the https URL and answers whether to use it (MS-OXDSCLI says to ask the user).
    pub fn discover(
        &self,
        address: &str,
        confirm: &dyn Fn(&str) -> bool,
    ) -> Result<Discovered, Error> {
        domain_of(address)?;
        let mut seen_addresses = HashSet::from([address.trim().to_ascii_lowercase()]);
        let mut seen_urls: HashSet<(String, String)> = HashSet::new();
        let mut hops = 0u32;
        let mut next = Next::Domain(address.trim().to_string());
        loop {
            let (source, current, answer) = match next {
                Next::Domain(address) => {
                    let (url, answer) = self.candidates(&address, confirm)?;
                    (url, address, answer)
                }
                Next::Url { url, address } => {
                    let answer = match self.post(&url, &address)? {
                        Reply::Answer(a) => a,
                        Reply::Moved(to) => Answer::RedirectUrl(to),
                    };
                    (url, address, answer)
                }
            };
            seen_urls.insert((source.clone(), current.to_ascii_lowercase()));
            match answer {
                Answer::Settings { url, display_name } => {
                    client::check_url(&url, false).map_err(|e| Error::BadResponse {
                        url: source.clone(),
                        reason: format!("the MobileSync URL is not usable: {e}"),
                    })?;
                    log::info!("Autodiscover: {current} uses {url} (from {source})");
                    return Ok(Discovered {
                        url,
                        address: current,
                        display_name,
                        source,
                        found_at: SystemTime::now(),
                    });
                }
                Answer::Error { code, message } => {
                    return Err(Error::Server {
                        url: source,
                        code,
                        message,
                    });
                }
                Answer::RedirectAddr(to) => {
                    hops += 1;
                    if hops > self.options.max_redirects {
                        return Err(Error::TooManyRedirects {
                            hops: self.options.max_redirects,
                        });
                    }
                    domain_of(&to).map_err(|_| Error::BadResponse {
                        url: source.clone(),
                        reason: format!("the redirect address {to:?} is not a mail address"),
                    })?;
                    if !seen_addresses.insert(to.to_ascii_lowercase()) {
                        return Err(Error::RedirectLoop { target: to });
                    }
                    log::debug!("Autodiscover: {source} redirects to the address {to}");
                    next = Next::Domain(to);
                }
                Answer::RedirectUrl(to) => {
                    hops += 1;
                    if hops > self.options.max_redirects {
                        return Err(Error::TooManyRedirects {
                            hops: self.options.max_redirects,
                        });
                    }
                    if let Err(e) = client::check_url(&to, false) {
                        return Err(Error::RedirectRefused {
                            url: to,
                            reason: format!("only https URLs are followed ({e})"),
                        });
                    }
                    if seen_urls.contains(&(to.clone(), current.to_ascii_lowercase())) {
                        return Err(Error::RedirectLoop { target: to });
                    }
                    log::debug!("Autodiscover: {source} redirects to {to}");
                    next = Next::Url {
                        url: to,
                        address: current,
                    };
                }
            }
        }
    }

    /// Tries the candidate URLs for the domain of `address` in order; the first that gives
    /// an Autodiscover answer wins. Failures are collected for the final message.
    fn candidates(
        &self,
        address: &str,
        confirm: &dyn Fn(&str) -> bool,
    ) -> Result<(String, Answer), Error> {
        let domain = domain_of(address)?.to_ascii_lowercase();
        let mut attempts = Vec::new();
        let mut refused: Option<String> = None;
        let mut try_post = |url: String, attempts: &mut Vec<String>| -> Option<Answer> {
            match self.post(&url, address) {
                Ok(Reply::Answer(a)) => Some(a),
                Ok(Reply::Moved(to)) => Some(Answer::RedirectUrl(to)),
                Err(Error::Unauthorized { url }) => {
                    attempts.push(format!("{url}: credentials refused (HTTP 401)"));
                    refused.get_or_insert(url);
                    None
                }
                Err(e) => {
                    attempts.push(format!("{url}: {}", short_reason(&e)));
                    None
                }
            }
        };
        for url in [
            format!("https://{domain}{PATH}"),
            format!("https://autodiscover.{domain}{PATH}"),
        ] {
            if let Some(answer) = try_post(url.clone(), &mut attempts) {
                return Ok((url, answer));
            }
        }
        // The unauthenticated GET: only its redirect to https counts.
        let probe = format!("http://autodiscover.{domain}{PATH}");
        match self.probe_redirect(&probe) {
            Ok(Some(to)) if client::check_url(&to, false).is_err() => {
                attempts.push(format!("{probe}: redirects to {to}, which is not https"));
            }
            Ok(Some(to)) if !confirm(&to) => {
                attempts.push(format!("{probe}: the redirect to {to} was not confirmed"));
            }
            Ok(Some(to)) => {
                if let Some(answer) = try_post(to.clone(), &mut attempts) {
                    return Ok((to, answer));
                }
            }
            Ok(None) => attempts.push(format!("{probe}: no redirect")),
            Err(e) => attempts.push(format!("{probe}: {}", short_reason(&e))),
        }
        // DNS SRV.
        let name = format!("_autodiscover._tcp.{domain}");
        match self.srv_targets(&name) {
            Ok(records) if records.is_empty() => attempts.push(format!("{name}: no SRV record")),
            Ok(records) => {
                for r in records.iter().take(4) {
                    let url = match r.port {
                        443 => format!("https://{}{PATH}", r.target),
                        port => format!("https://{}:{port}{PATH}", r.target),
                    };
                    if !confirm(&url) {
                        attempts.push(format!("{name}: {url} was not confirmed"));
                        continue;
                    }
                    if let Some(answer) = try_post(url.clone(), &mut attempts) {
                        return Ok((url, answer));
                    }
                }
            }
            Err(e) => attempts.push(format!("{name}: {e}")),
        }
        match refused {
            Some(url) => Err(Error::Unauthorized { url }),
            None => Err(Error::NotFound { domain, attempts }),
        }
    }

    fn srv_targets(&self, name: &str) -> Result<Vec<SrvRecord>, String> {
        let server = self
            .options
            .dns_server
            .or_else(system_nameserver)
            .ok_or_else(|| "no DNS server in /etc/resolv.conf".to_string())?;
        lookup_srv(server, name, self.options.timeout).map_err(|e| e.to_string())
    }

    fn authorization(&self, fresh: bool) -> Result<Option<String>, Error> {
        Ok(match &self.options.auth {
            Auth::None => None,
            Auth::Basic { password } => {
                let user = match self.options.domain.as_deref() {
                    Some(d) if !d.is_empty() => format!("{d}\\{}", self.options.user),
                    _ => self.options.user.clone(),
                };
                let pair = format!("{user}:{}", password.expose());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            Auth::Bearer(provider) => Some(format!(
                "Bearer {}",
                if fresh {
                    provider.refresh()?
                } else {
                    provider.token()?
                }
            )),
        })
    }

    fn send(
        &self,
        method: http::Method,
        url: &str,
        body: Option<&[u8]>,
        authorization: Option<String>,
    ) -> Result<http::Response<ureq::Body>, Error> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(url)
            .header("User-Agent", &self.options.user_agent);
        if body.is_some() {
            builder = builder.header("Content-Type", "text/xml; charset=utf-8");
        }
        if let Some(auth) = authorization {
            builder = builder.header("Authorization", auth);
        }
        let request = builder
            .body(body.unwrap_or_default().to_vec())
            .map_err(|e| super::Error::InvalidUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let timeout = self.options.timeout;
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(Some(timeout))
            .build();
        self.agent
            .run(request)
            .map_err(|e| client::map_ureq_error(e, &client::host_of(url), timeout).into())
    }

    /// POSTs the request for `address` to `url` (https only) and reads the answer.
    fn post(&self, url: &str, address: &str) -> Result<Reply, Error> {
        client::check_url(url, false)?;
        let body = request_body(address);
        log::debug!("Autodiscover: POST {url}");
        let mut fresh = false;
        let response = loop {
            let response = self.send(
                http::Method::POST,
                url,
                Some(body.as_bytes()),
                self.authorization(fresh)?,
            )?;
            let status = response.status().as_u16();
            if status == 401 && !fresh && matches!(self.options.auth, Auth::Bearer(_)) {
                fresh = true;
                continue;
            }
            break response;
        };
        let status = response.status().as_u16();
        match status {
            200 => {}
            401 => {
                return Err(Error::Unauthorized {
                    url: url.to_string(),
                });
            }
            s if is_redirect(s) => {
                return location(&response)
                    .map(Reply::Moved)
                    .ok_or_else(|| Error::BadResponse {
                        url: url.to_string(),
                        reason: format!("HTTP {s} without a Location"),
                    });
            }
            status => {
                return Err(Error::Http {
                    url: url.to_string(),
                    status,
                });
            }
        }
        let mut bytes = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                Error::Transport(client::map_io_error(
                    &e,
                    &client::host_of(url),
                    self.options.timeout,
                ))
            })?;
        parse_response(&bytes)
            .map(Reply::Answer)
            .map_err(|reason| Error::BadResponse {
                url: url.to_string(),
                reason,
            })
    }

    /// The unauthenticated GET: the redirect target, if the answer is a redirect.
    fn probe_redirect(&self, url: &str) -> Result<Option<String>, Error> {
        log::debug!("Autodiscover: GET {url}");
        let response = self.send(http::Method::GET, url, None, None)?;
        Ok(if is_redirect(response.status().as_u16()) {
            location(&response)
        } else {
            None
        })
    }
}

fn location(response: &http::Response<ureq::Body>) -> Option<String> {
    response
        .headers()
        .get("Location")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// An error in a few words, for the list of attempts.
fn short_reason(e: &Error) -> String {
    match e {
        Error::Http { status, .. } => format!("HTTP {status}"),
        Error::BadResponse { reason, .. } => format!("not an Autodiscover answer ({reason})"),
        Error::Transport(t) => t.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006">
    <Culture>en:us</Culture>
    <User><DisplayName>Jo &amp; Co</DisplayName><EMailAddress>jo@contoso.com</EMailAddress></User>
    <Action>
      <Settings>
        <Server><Type>CertEnroll</Type><Url>https://cert.contoso.com/x</Url><Name /><ServerData>T</ServerData></Server>
        <Server><Type>MobileSync</Type><Url>https://mail.contoso.com/Microsoft-Server-ActiveSync</Url><Name>https://mail.contoso.com/Microsoft-Server-ActiveSync</Name></Server>
      </Settings>
    </Action>
  </Response>
</Autodiscover>"#;

    #[test]
    fn reads_the_mobilesync_server() {
        assert_eq!(
            parse_response(SETTINGS.as_bytes()).unwrap(),
            Answer::Settings {
                url: "https://mail.contoso.com/Microsoft-Server-ActiveSync".into(),
                display_name: Some("Jo & Co".into()),
            }
        );
    }

    #[test]
    fn reads_redirects_and_errors() {
        let doc = |action: &str| {
            format!(
                "<Autodiscover xmlns=\"x\"><Response xmlns=\"{RESPONSE_SCHEMA}\"><Action>{action}\
                 </Action></Response></Autodiscover>"
            )
        };
        assert_eq!(
            parse_response(doc("<Redirect>b@fabrikam.com</Redirect>").as_bytes()).unwrap(),
            Answer::RedirectAddr("b@fabrikam.com".into())
        );
        assert_eq!(
            parse_response(
                doc("<Error><Status>2</Status><Message>Protocol error</Message></Error>")
                    .as_bytes()
            )
            .unwrap(),
            Answer::Error {
                code: Some(2),
                message: "Protocol error".into()
            }
        );
        let pox = "<a:Autodiscover xmlns:a=\"x\"><a:Response><a:Account><a:Action>redirectUrl\
                   </a:Action><a:RedirectUrl>https://x.example/autodiscover/autodiscover.xml\
                   </a:RedirectUrl></a:Account></a:Response></a:Autodiscover>";
        assert_eq!(
            parse_response(pox.as_bytes()).unwrap(),
            Answer::RedirectUrl("https://x.example/autodiscover/autodiscover.xml".into())
        );
        let top = "<Autodiscover><Response><Error Time=\"1\" Id=\"2\"><ErrorCode>600</ErrorCode>\
                   <Message>Invalid Request</Message><DebugData /></Error></Response></Autodiscover>";
        assert_eq!(
            parse_response(top.as_bytes()).unwrap(),
            Answer::Error {
                code: Some(600),
                message: "Invalid Request".into()
            }
        );
    }

    #[test]
    fn refuses_what_is_not_an_answer() {
        for bad in [
            &b""[..],
            b"<html><body>It works</body></html>",
            b"<Autodiscover><Response>",
            b"<Autodiscover></Response>",
            b"<!DOCTYPE x [<!ENTITY a \"b\">]><Autodiscover/>",
            b"<Autodiscover><Response><Action><Settings/></Action></Response></Autodiscover>",
            b"<Autodiscover>&bogus;</Autodiscover>",
            b"<Autodiscover a=\"1></Autodiscover>",
            b"\xff\xfe<Autodiscover/>",
            b"<Autodiscover/><x/>",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(parse_response(deep.as_bytes()).is_err());
        let big = format!("<Autodiscover>{}</Autodiscover>", " ".repeat(MAX_RESPONSE));
        assert!(
            parse_response(big.as_bytes())
                .unwrap_err()
                .contains("bytes")
        );
        // Every prefix of a valid answer fails cleanly.
        for n in 0..SETTINGS.len() {
            if let Some(prefix) = SETTINGS.get(..n) {
                assert!(parse_response(prefix.as_bytes()).is_err());
            }
        }
    }

    #[test]
    fn the_request_names_the_schemas_and_escapes_the_address() {
        let body = request_body("a<b@example.com");
        assert!(body.contains("<EMailAddress>a&lt;b@example.com</EMailAddress>"));
        assert!(body.contains(REQUEST_SCHEMA) && body.contains(RESPONSE_SCHEMA));
    }

    #[test]
    fn addresses_are_checked() {
        assert_eq!(domain_of("a@example.com").unwrap(), "example.com");
        for bad in ["", "a", "@x", "a@", "a@b/c", "a@.x", "a@x..y"] {
            assert!(domain_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolv_conf_nameserver() {
        let conf = "# x\nsearch lan\nnameserver fe80::1%eth0\nnameserver 10.0.0.1\n";
        assert_eq!(
            nameserver_from_resolv_conf(conf),
            Some("[fe80::1]:53".parse().unwrap())
        );
        assert_eq!(nameserver_from_resolv_conf("nameserver bogus\n"), None);
    }

    /// An answer with two SRV records, the second target compressed.
    fn answer(id: u16) -> Vec<u8> {
        let mut p = srv_query(id, "_autodiscover._tcp.example.com").unwrap();
        p[2] = 0x81;
        p[3] = 0x80;
        p[7] = 2;
        for (prio, target) in [(10u16, &b"\x04mail\xc0\x1f"[..]), (5, b"\x02mx\xc0\x1f")] {
            p.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
            p.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
            p.extend_from_slice(&prio.to_be_bytes());
            p.extend_from_slice(&[0, 0, 1, 187]);
            p.extend_from_slice(target);
        }
        p
    }

    #[test]
    fn reads_srv_records_sorted() {
        // Offset 0x1f is "example.com" in the question name.
        let records = parse_srv_answer(7, &answer(7)).unwrap();
        assert_eq!(
            records,
            vec![
                SrvRecord {
                    priority: 5,
                    weight: 0,
                    port: 443,
                    target: "mx.example.com".into()
                },
                SrvRecord {
                    priority: 10,
                    weight: 0,
                    port: 443,
                    target: "mail.example.com".into()
                },
            ]
        );
        assert!(parse_srv_answer(8, &answer(7)).is_err());
    }

    #[test]
    fn any_srv_answer_bytes_are_safe() {
        let good = answer(9);
        for n in 0..good.len() {
            assert!(parse_srv_answer(9, &good[..n]).is_err());
        }
        // Single-byte corruptions and a pointer loop: errors or records, never a panic.
        for i in 0..good.len() {
            for b in [0x00, 0x3f, 0x40, 0xc0, 0xff] {
                let mut p = good.clone();
                p[i] = b;
                let _ = parse_srv_answer(9, &p);
            }
        }
        let mut looped = good.clone();
        let at = looped.len() - 2;
        looped[at] = 0xc0;
        looped[at + 1] = (at - 3) as u8;
        let _ = parse_srv_answer(9, &looped);
        let mut rng = 0x2545_f491_u32;
        for _ in 0..2000 {
            let len = (rng % 200) as usize;
            let mut p = vec![0u8; len];
            for b in &mut p {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                *b = rng as u8;
            }
            if p.len() > 3 {
                p[0] = 0;
                p[1] = 9;
                p[2] |= 0x80;
                p[3] &= 0xf0;
            }
            let _ = parse_srv_answer(9, &p);
        }
    }

    #[test]
    fn nxdomain_is_no_record() {
        let mut p = srv_query(3, "_autodiscover._tcp.example.com").unwrap();
        p[2] = 0x81;
        p[3] = 0x83;
        assert_eq!(parse_srv_answer(3, &p).unwrap(), Vec::new());
        p[3] = 0x82;
        assert!(
            parse_srv_answer(3, &p)
                .unwrap_err()
                .contains("error code 2")
        );
    }
}
