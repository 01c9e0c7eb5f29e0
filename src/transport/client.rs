//! One HTTP exchange with the server (MS-ASHTTP): builds the request line and headers, sends
//! the body (streaming a MIME message from the caller's reader), and turns the status into a
//! typed outcome. Redirects and provisioning are handled one level up, in [`super::Session`].

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use ureq::SendBody;
use ureq::http;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector};

use super::cancel::{CancellableTcpConnector, CancelledIo, Canceller, Registry, cancelled_io};
use super::config::{Auth, Config, TlsOptions};
use super::error::{Error, Result};
use super::query::{self, QueryFields, QueryForm};
use super::retry::parse_retry_after;
use super::tls;
use crate::eas::{self, Body, ServerInfo};
use crate::wbxml::{FromStd, ProtocolVersion};

/// The body of a successful response, read as a stream (never buffered whole).
///
/// A read that fails (the connection breaks, times out) is also recorded as a typed
/// [`Error`], because the WBXML reader above keeps only the failure's text: see
/// [`Response::read`].
pub struct ResponseBody {
    reader: ureq::BodyReader<'static>,
    host: String,
    timeout: Duration,
    failure: Arc<Mutex<Option<Error>>>,
    /// The client's cancel registry and the generation the request started in.
    cancel: Arc<Registry>,
    generation: u64,
}

impl ResponseBody {
    fn fail(&self, error: Error) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }
}

impl Read for ResponseBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let cancelled = |body: &Self| {
            body.cancel.cancelled_since(body.generation).then(|| {
                body.fail(Error::Cancelled);
                cancelled_io()
            })
        };
        if let Some(e) = cancelled(self) {
            return Err(e);
        }
        match self.reader.read(buf) {
            // A cancel may wake the read with an end of stream rather than an error.
            Ok(0) if !buf.is_empty() => cancelled(self).map_or(Ok(0), Err),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                if let Some(cancelled) = cancelled(self) {
                    return Err(cancelled);
                }
                self.fail(map_io_error(&e, &self.host, self.timeout));
                Err(e)
            }
        }
    }
}

impl core::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ResponseBody")
    }
}

/// A successful (2xx) response: the headers the layers above need and the streaming body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    /// As sent by the server; `None` when chunked or when gzip was decoded on the fly.
    pub content_length: Option<u64>,
    /// `MS-ASProtocolVersion`, when the server echoes it.
    pub protocol_version: Option<String>,
    /// `MS-Server-ActiveSync`: the server's ActiveSync build.
    pub server_version: Option<String>,
    /// X-MS-Credentials-Expire: days until the password expires, if the server warned.
    pub credentials_expire_days: Option<u32>,
    body: ResponseBody,
}

impl Response {
    pub fn body(&mut self) -> &mut ResponseBody {
        &mut self.body
    }

    pub fn into_body(self) -> ResponseBody {
        self.body
    }

    /// Whether the body is WBXML (as opposed to e.g. a multipart or MIME body).
    pub fn is_wbxml(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/vnd.ms-sync.wbxml"))
    }

    /// Whether the body is an MS-ASAcceptMultiPart multipart body.
    pub fn is_multipart(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/vnd.ms-sync.multipart"))
    }

    /// A WBXML parser over the streaming body.
    pub fn parser(self, version: ProtocolVersion) -> eas::Parser<FromStd<ResponseBody>> {
        eas::Parser::new(FromStd(self.body), version)
    }

    /// Reads the WBXML body with `read`. When the body could not be received (the
    /// connection broke or stalled mid-body) the error is that network failure ([`Error::
    /// Network`], [`Error::Timeout`] ...: transient), not a protocol error; when the
    /// client's [`Canceller`] fired meanwhile, it is [`Error::Cancelled`].
    pub fn read<T>(
        self,
        version: ProtocolVersion,
        read: impl FnOnce(&mut eas::Parser<FromStd<ResponseBody>>) -> eas::Result<T>,
    ) -> Result<T> {
        let failure = self.body.failure.clone();
        let mut parser = self.parser(version);
        read(&mut parser).map_err(|e| match e {
            eas::Error::Io(_) => failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or(Error::Protocol(e)),
            other => Error::Protocol(other),
        })
    }
}

/// What one exchange produced, before the session acts on redirects.
pub(crate) enum Outcome<T> {
    Done(T),
    /// HTTP 451 with the X-MS-Location value.
    Redirect(String),
}

/// The identity of one request beyond its command: where, in which version, with which key.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub url: &'a str,
    pub version: ProtocolVersion,
    pub policy_key: Option<u32>,
}

/// The HTTP client: one ureq agent with our TLS connector, and the account configuration.
pub struct Client {
    config: Config,
    agent: ureq::Agent,
    cancel: Arc<Registry>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Marks an error of the caller's MIME reader so it is reported as such.
#[derive(Debug)]
struct BodySourceError(String);

impl core::fmt::Display for BodySourceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodySourceError {}

/// Reborrows an optional reader for one attempt (shortening the trait object's lifetime,
/// which `Option::as_deref_mut` cannot do).
pub(crate) fn reborrow<'a>(reader: &'a mut Option<&mut dyn Read>) -> Option<&'a mut dyn Read> {
    match reader {
        Some(r) => Some(&mut **r),
        None => None,
    }
}

/// `head`, exactly `len` bytes of `mime`, then `tail`.
struct FramedBody<'a> {
    head: &'a [u8],
    mime: Option<&'a mut dyn Read>,
    remaining: u64,
    tail: &'a [u8],
}

impl Read for FramedBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.head.is_empty() {
            let n = buf.len().min(self.head.len());
            buf[..n].copy_from_slice(&self.head[..n]);
            self.head = &self.head[n..];
            return Ok(n);
        }
        if self.remaining > 0 {
            let want = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let Some(mime) = self.mime.as_mut() else {
                return Err(io::Error::other(BodySourceError(
                    "no message reader was given for a body with a message".into(),
                )));
            };
            let n = loop {
                match mime.read(&mut buf[..want]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io::Error::other(BodySourceError(e.to_string()))),
                }
            };
            if n == 0 {
                return Err(io::Error::other(BodySourceError(format!(
                    "the message ended {} bytes before its announced length",
                    self.remaining
                ))));
            }
            self.remaining -= n as u64;
            return Ok(n);
        }
        let n = buf.len().min(self.tail.len());
        buf[..n].copy_from_slice(&self.tail[..n]);
        self.tail = &self.tail[n..];
        Ok(n)
    }
}

/// Splits `scheme://authority/...` and checks what the transport accepts.
pub fn check_url(url: &str, allow_insecure_http: bool) -> Result<()> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("it must start with https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(invalid("it has no host name (or carries credentials)"));
    }
    if url.contains('?') || url.contains('#') {
        return Err(invalid("it must not contain a query (?) or fragment (#)"));
    }
    if scheme.eq_ignore_ascii_case("https") {
        Ok(())
    } else if scheme.eq_ignore_ascii_case("http") {
        if allow_insecure_http {
            Ok(())
        } else {
            Err(Error::InsecureHttp {
                url: url.to_string(),
            })
        }
    } else {
        Err(invalid("the scheme must be https"))
    }
}

pub(crate) fn host_of(url: &str) -> String {
    url.split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(url)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .to_string()
}

fn header<'a>(resp: &'a http::Response<ureq::Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn credentials_expire_days(resp: &http::Response<ureq::Body>) -> Option<u32> {
    header(resp, "X-MS-Credentials-Expire")
        .or_else(|| header(resp, "X-MS-Credentials-Expires"))
        .and_then(|v| v.trim().parse().ok())
}

/// What an agent of the crate is built from (the transport, autodiscover and OAuth share it,
/// so all of them trust the same servers).
pub(crate) struct AgentOptions<'a> {
    pub tls: &'a TlsOptions,
    pub proxy: Option<&'a str>,
    pub user_agent: &'a str,
    pub https_only: bool,
}

/// A ureq agent with our TLS connector (trust store, CA, pins, client certificate), the
/// proxy, no automatic redirects and HTTP statuses returned as responses.
pub(crate) fn build_agent(
    options: &AgentOptions<'_>,
    resolver: impl ureq::unversioned::resolver::Resolver,
) -> Result<ureq::Agent> {
    build_cancellable_agent(options, resolver, Arc::default())
}

/// [`build_agent`], with every TCP connection registered in `cancel` so that a
/// [`Canceller`] can interrupt it.
fn build_cancellable_agent(
    options: &AgentOptions<'_>,
    resolver: impl ureq::unversioned::resolver::Resolver,
    cancel: Arc<Registry>,
) -> Result<ureq::Agent> {
    let tls = tls::client_config(options.tls)?;
    let proxy = match options.proxy {
        Some(p) => Some(
            ureq::Proxy::new(p)
                .map_err(|e| Error::Config(format!("proxy {p:?} is not usable: {e}")))?,
        ),
        None => None,
    };
    let agent_config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .https_only(options.https_only)
        .proxy(proxy)
        .user_agent(options.user_agent)
        .build();
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(CancellableTcpConnector { registry: cancel })
            .chain(tls::TlsConnector { config: tls });
    Ok(ureq::Agent::with_parts(agent_config, connector, resolver))
}

impl Client {
    /// Builds the client: checks the URL scheme and loads the TLS configuration (trust store,
    /// CA, pins, client certificate). Fails with a clear message on any misconfiguration.
    pub fn new(config: Config) -> Result<Client> {
        check_url(&config.url, config.allow_insecure_http)?;
        if config.device_id.is_empty() || config.device_type.is_empty() {
            return Err(Error::Config(
                "device_id and device_type must not be empty".into(),
            ));
        }
        let cancel = Arc::<Registry>::default();
        let agent = build_cancellable_agent(
            &AgentOptions {
                tls: &config.tls,
                proxy: config.proxy.as_deref(),
                user_agent: &config.user_agent,
                https_only: !config.allow_insecure_http,
            },
            DefaultResolver::default(),
            cancel.clone(),
        )?;
        Ok(Client {
            config,
            agent,
            cancel,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A handle that makes the requests in flight on this client (connecting, sending,
    /// waiting or streaming the response body) fail promptly with [`Error::Cancelled`];
    /// requests started after the cancel are not affected.
    pub fn canceller(&self) -> Canceller {
        Canceller::new(self.cancel.clone())
    }

    /// POSTs `request` to `target` and maps the status. `mime` feeds the message part of
    /// [`Body::WbxmlAroundMime`] and [`Body::Mime`].
    pub(crate) fn post(
        &self,
        target: Target<'_>,
        request: &eas::Request,
        mut mime: Option<&mut dyn Read>,
        timeout: Duration,
    ) -> Result<Outcome<Response>> {
        check_url(target.url, self.config.allow_insecure_http)?;
        let c = &self.config;
        let policy_key = target
            .policy_key
            .filter(|_| request.command.sends_policy_key());
        let fields = QueryFields {
            command: request.command,
            user: Some(c.user.as_str()),
            device_id: &c.device_id,
            device_type: &c.device_type,
            version: target.version,
            policy_key,
            locale: c.locale,
            params: &request.params,
        };
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        let query = match c.query_form {
            QueryForm::Plain => {
                headers.push(("MS-ASProtocolVersion", target.version.as_str().to_string()));
                if let Some(key) = policy_key {
                    headers.push(("X-MS-PolicyKey", key.to_string()));
                }
                if query::wants_multipart(&request.params) {
                    headers.push(("MS-ASAcceptMultiPart", "T".to_string()));
                }
                query::plain(&fields)
            }
            QueryForm::Base64 => query::base64(&fields)?,
        };
        let url = format!("{}?{query}", target.url);
        if let Some(ct) = request.body.content_type() {
            headers.push(("Content-Type", ct.to_string()));
        }
        let (head, len, tail): (&[u8], u64, &[u8]) = match &request.body {
            Body::Empty => (&[], 0, &[]),
            Body::Wbxml(b) => (b, 0, &[]),
            Body::WbxmlAroundMime { head, len, tail } => (head, *len, tail),
            Body::Mime { len } => (&[], *len, &[]),
        };
        if len > 0 && mime.is_none() {
            return Err(Error::Request(format!(
                "{} carries a message but no message reader was given",
                request.command
            )));
        }
        headers.push(("Content-Length", request.body.len().to_string()));
        log::debug!(
            "POST {} Cmd={} ({} bytes)",
            target.url,
            request.command,
            request.body.len()
        );
        let streamed = len > 0;
        let mut fresh_token = false;
        loop {
            let body = FramedBody {
                head,
                mime: reborrow(&mut mime),
                remaining: len,
                tail,
            };
            let reply = self.perform(
                http::Method::POST,
                &url,
                &headers,
                Some(body),
                timeout,
                fresh_token,
            )?;
            if self.should_retry_with_fresh_token(&reply.response, fresh_token, streamed)? {
                fresh_token = true;
                continue;
            }
            let done = outcome(reply.response)?;
            if let Outcome::Done(r) = &done {
                reject_web_page(r)?;
            }
            return Ok(match done {
                Outcome::Done(r) => Outcome::Done(Response::new(
                    r,
                    &host_of(target.url),
                    timeout,
                    (self.cancel.clone(), reply.generation),
                )),
                Outcome::Redirect(l) => Outcome::Redirect(l),
            });
        }
    }

    /// OPTIONS: which versions and commands the server offers.
    pub(crate) fn options(&self, url: &str, timeout: Duration) -> Result<Outcome<ServerInfo>> {
        check_url(url, self.config.allow_insecure_http)?;
        log::debug!("OPTIONS {url}");
        let mut fresh_token = false;
        loop {
            let reply =
                self.perform(http::Method::OPTIONS, url, &[], None, timeout, fresh_token)?;
            if self.should_retry_with_fresh_token(&reply.response, fresh_token, false)? {
                fresh_token = true;
                continue;
            }
            let done = outcome(reply.response)?;
            if let Outcome::Done(r) = &done {
                // A server that names its versions is the server, whatever its body.
                if header(r, "MS-ASProtocolVersions").is_none() {
                    reject_web_page(r)?;
                }
            }
            return Ok(match done {
                Outcome::Done(r) => Outcome::Done(ServerInfo::from_headers(
                    header(&r, "MS-ASProtocolVersions"),
                    header(&r, "MS-ASProtocolCommands"),
                )),
                Outcome::Redirect(l) => Outcome::Redirect(l),
            });
        }
    }

    /// On a 401 with bearer authentication: whether to send again with a refreshed token
    /// (once). A streamed message cannot be replayed: the token is refreshed and the caller
    /// is told to send again.
    fn should_retry_with_fresh_token(
        &self,
        reply: &http::Response<ureq::Body>,
        already_fresh: bool,
        streamed: bool,
    ) -> Result<bool> {
        let Auth::Bearer(provider) = &self.config.auth else {
            return Ok(false);
        };
        if reply.status().as_u16() != 401 || already_fresh {
            return Ok(false);
        }
        log::debug!("HTTP 401 with a bearer token: refreshing the token");
        if streamed {
            provider.refresh()?;
            return Err(Error::ResendRequired(
                "the access token expired while a message was being sent; a new token was \
                 obtained"
                    .into(),
            ));
        }
        Ok(true)
    }

    /// The Authorization header value, if any. Never logged.
    fn authorization(&self, fresh_token: bool) -> Result<Option<String>> {
        Ok(match &self.config.auth {
            Auth::None => None,
            Auth::Basic { password } => {
                let pair = format!("{}:{}", self.config.basic_user(), password.expose());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            Auth::Bearer(provider) => {
                let token = if fresh_token {
                    provider.refresh()?
                } else {
                    provider.token()?
                };
                Some(format!("Bearer {token}"))
            }
        })
    }

    fn perform(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&'static str, String)],
        mut body: Option<FramedBody<'_>>,
        timeout: Duration,
        fresh_token: bool,
    ) -> Result<Reply> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(url)
            .header("User-Agent", &self.config.user_agent);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        if let Some(auth) = self.authorization(fresh_token)? {
            builder = builder.header("Authorization", auth);
        }
        let response = match body.as_mut() {
            Some(b) => self.run(builder, SendBody::from_reader(b), url, timeout)?,
            None => self.run(builder, SendBody::none(), url, timeout)?,
        };
        log::debug!(
            "HTTP {} from {}",
            response.response.status().as_u16(),
            host_of(url)
        );
        Ok(response)
    }

    fn run<S: ureq::AsSendBody>(
        &self,
        builder: http::request::Builder,
        body: S,
        url: &str,
        timeout: Duration,
    ) -> Result<Reply> {
        let request = builder.body(body).map_err(|e| Error::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let request = self
            .agent
            .configure_request(request)
            .timeout_connect(Some(self.config.connect_timeout.min(timeout)))
            .timeout_recv_response(Some(timeout))
            .timeout_per_read(Some(timeout))
            .timeout_per_write(Some(timeout))
            .build();
        let (_scope, generation) = self.cancel.begin_request();
        let result = self.agent.run(request);
        // Whatever the interrupted I/O reported, a cancel is the reason.
        if self.cancel.cancelled_since(generation) {
            return Err(Error::Cancelled);
        }
        let response = result.map_err(|e| map_ureq_error(e, &host_of(url), timeout))?;
        Ok(Reply {
            response,
            generation,
        })
    }
}

/// A response whose headers arrived, with the cancel generation its request started in.
struct Reply {
    response: http::Response<ureq::Body>,
    generation: u64,
}

/// A command's 2xx answer that is an HTML page with content: not the ActiveSync server
/// but something between (a captive portal answers every request with its sign-in page).
/// An empty HTML-typed answer passes (some servers label empty bodies so).
fn reject_web_page(resp: &http::Response<ureq::Body>) -> Result<()> {
    let Some(content_type) = header(resp, "Content-Type") else {
        return Ok(());
    };
    let empty = header(resp, "Content-Length").is_some_and(|l| l.trim() == "0");
    if content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/html")
        && !empty
    {
        return Err(Error::WebPage {
            content_type: content_type.chars().take(100).collect(),
        });
    }
    Ok(())
}

/// Maps the status of a response to the typed outcome (MS-ASHTTP 2.2.2.1.1).
fn outcome(resp: http::Response<ureq::Body>) -> Result<Outcome<http::Response<ureq::Body>>> {
    let status = resp.status().as_u16();
    if let Some(days) = credentials_expire_days(&resp) {
        log::info!("the server says the password expires in {days} days");
    }
    match status {
        200..=299 => Ok(Outcome::Done(resp)),
        449 => Err(Error::NeedsProvisioning),
        451 => match header(&resp, "X-MS-Location") {
            Some(location) if !location.trim().is_empty() => {
                Ok(Outcome::Redirect(location.trim().to_string()))
            }
            _ => Err(Error::RedirectWithoutLocation),
        },
        503 => Err(Error::Throttled {
            retry_after: header(&resp, "Retry-After").and_then(parse_retry_after),
            reason: header(&resp, "X-MS-ASThrottle")
                .map(|r| r.chars().take(200).collect::<String>()),
        }),
        401 => Err(Error::Unauthorized {
            credentials_expire_days: credentials_expire_days(&resp),
        }),
        403 => Err(Error::Forbidden),
        _ => Err(Error::Http { status }),
    }
}

impl Response {
    fn new(
        resp: http::Response<ureq::Body>,
        host: &str,
        timeout: Duration,
        (cancel, generation): (Arc<Registry>, u64),
    ) -> Response {
        let text = |name: &str| header(&resp, name).map(str::to_string);
        Response {
            status: resp.status().as_u16(),
            content_type: text("Content-Type"),
            content_length: header(&resp, "Content-Length").and_then(|v| v.trim().parse().ok()),
            protocol_version: text("MS-ASProtocolVersion"),
            server_version: text("MS-Server-ActiveSync"),
            credentials_expire_days: credentials_expire_days(&resp),
            body: ResponseBody {
                reader: resp.into_body().into_reader(),
                host: host.to_string(),
                timeout,
                failure: Arc::default(),
                cancel,
                generation,
            },
        }
    }
}

/// Maps a ureq failure to a typed error for `host`.
pub(crate) fn map_ureq_error(e: ureq::Error, host: &str, timeout: Duration) -> Error {
    match e {
        ureq::Error::Timeout(_) | ureq::Error::BodyStalled => Error::Timeout { after: timeout },
        ureq::Error::HostNotFound => Error::HostNotFound {
            host: host.to_string(),
        },
        ureq::Error::Rustls(r) => tls::map_rustls_error(&r, host),
        ureq::Error::Io(io) => map_io_error(&io, host, timeout),
        ureq::Error::ConnectionFailed => Error::Connect(format!("connecting to {host} failed")),
        ureq::Error::RequireHttpsOnly(url) => Error::InsecureHttp { url },
        ureq::Error::ConnectProxyFailed(m) => {
            Error::Connect(format!("the proxy refused the connection: {m}"))
        }
        other => Error::Network(other.to_string()),
    }
}

/// Maps an I/O error (also those surfacing while the body streams).
pub(crate) fn map_io_error(io: &io::Error, host: &str, timeout: Duration) -> Error {
    if let Some(r) = tls::rustls_error_in(io) {
        return tls::map_rustls_error(r, host);
    }
    if io.get_ref().is_some_and(|r| r.is::<CancelledIo>()) {
        return Error::Cancelled;
    }
    if let Some(src) = io
        .get_ref()
        .and_then(|r| r.downcast_ref::<BodySourceError>())
    {
        return Error::RequestBody(src.0.clone());
    }
    match io.get_ref().and_then(|r| r.downcast_ref::<ureq::Error>()) {
        Some(ureq::Error::Timeout(_)) => return Error::Timeout { after: timeout },
        // A gzip body whose connection broke: the cause is the inner I/O error.
        Some(ureq::Error::Decompress(_, inner) | ureq::Error::Io(inner)) => {
            return map_io_error(inner, host, timeout);
        }
        _ => {}
    }
    match io.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout { after: timeout },
        io::ErrorKind::ConnectionRefused => {
            Error::Connect(format!("{host} refused the connection"))
        }
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Error::Network(format!(
            "{host} closed the connection ({io}): a proxy or firewall may be cutting it, or the \
             server requires a TLS client certificate (tls.client_cert)"
        )),
        _ => Error::Network(format!("{host}: {io}")),
    }
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::testutil::wbxml_from_xml;

    /// Hands out `data`, then fails with `kind` (or ends, with `None`).
    struct Broken {
        data: Vec<u8>,
        kind: Option<io::ErrorKind>,
    }

    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.data.is_empty() {
                let n = buf.len().min(self.data.len());
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data.drain(..n);
                return Ok(n);
            }
            match self.kind {
                Some(kind) => Err(io::Error::new(kind, "the peer went away")),
                None => Ok(0),
            }
        }
    }

    fn response(data: &[u8], kind: Option<io::ErrorKind>) -> Response {
        let body = ureq::Body::builder().reader(Broken {
            data: data.to_vec(),
            kind,
        });
        let resp = http::Response::builder().status(200).body(body).unwrap();
        Response::new(
            resp,
            "mail.example.com",
            Duration::from_secs(7),
            (Arc::default(), 0),
        )
    }

    /// The first half of a FolderSync response: valid WBXML that stops mid-document.
    fn prefix() -> Vec<u8> {
        let mut doc = wbxml_from_xml(
            "<FolderSync xmlns=\"FolderHierarchy:\">\n  <Status>1</Status>\n  \
             <SyncKey>1</SyncKey>\n</FolderSync>",
        );
        doc.truncate(doc.len() / 2);
        doc
    }

    fn read_folder_sync(r: Response) -> Result<eas::folder::FolderSyncResponse> {
        r.read(
            ProtocolVersion::V16_1,
            eas::folder::read_folder_sync_response,
        )
    }

    #[test]
    fn a_connection_broken_mid_body_is_a_network_error() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::BrokenPipe,
        ] {
            let err = read_folder_sync(response(&prefix(), Some(kind))).unwrap_err();
            assert!(
                matches!(&err, Error::Network(m) if m.contains("mail.example.com")),
                "{err:?}"
            );
            assert!(err.is_transient());
        }
        let err = read_folder_sync(response(&prefix(), Some(io::ErrorKind::TimedOut))).unwrap_err();
        assert!(
            matches!(err, Error::Timeout { after } if after == Duration::from_secs(7)),
            "{err:?}"
        );
    }

    #[test]
    fn a_complete_but_invalid_body_stays_a_protocol_error() {
        // The body ends cleanly in the middle of the document: the server sent bad WBXML.
        let err = read_folder_sync(response(&prefix(), None)).unwrap_err();
        assert!(
            matches!(err, Error::Protocol(eas::Error::Wbxml { .. })),
            "{err:?}"
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn a_broken_gzip_stream_is_mapped_by_its_cause() {
        let inner = io::Error::new(io::ErrorKind::UnexpectedEof, "Peer disconnected");
        let io = io::Error::other(ureq::Error::Decompress("gzip", inner));
        let err = map_io_error(&io, "mail.example.com", Duration::from_secs(3));
        assert!(
            matches!(&err, Error::Network(m) if m.contains("closed the connection")),
            "{err:?}"
        );
        let inner = io::Error::new(io::ErrorKind::TimedOut, "stalled");
        let io = io::Error::other(ureq::Error::Decompress("gzip", inner));
        let err = map_io_error(&io, "mail.example.com", Duration::from_secs(3));
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    }
}
