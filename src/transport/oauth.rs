//! OAuth 2.0 for Exchange Online: the device authorization grant (RFC 8628), token refresh
//! (RFC 6749 section 6) and a [`TokenProvider`] holding the tokens in memory.
//!
//! A device without a browser signs in like this: [`OAuthClient::start`] asks the device
//! authorization endpoint for a user code, the caller shows it with the verification URL
//! ([`DevicePrompt`]), and [`DeviceFlow::wait`] polls the token endpoint every `interval`
//! (5 s more after each `slow_down`) until the user approved, denied, or the code expired.
//! [`OAuthClient::refresh`] trades a refresh token for new tokens; servers may rotate the
//! refresh token, so the new one must replace the old ([`MemoryTokens`] calls back so the
//! caller can persist it). Tokens are [`Secret`]s: never in `Debug` output or logs. The HTTP
//! client is the transport's (same TLS trust, pins and proxy); answers are read up to
//! [`MAX_RESPONSE`] bytes.

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value as Json;
use ureq::http;
use ureq::unversioned::resolver::DefaultResolver;

use super::client::{self, AgentOptions};
use super::config::{Secret, TlsOptions, TokenProvider};

/// The grant type of the device flow's token requests.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The scope for Exchange ActiveSync on Exchange Online, with a refresh token.
pub const EXCHANGE_ONLINE_SCOPE: &str =
    "https://outlook.office365.com/EAS.AccessAsUser.All offline_access";
/// The largest endpoint answer read.
pub const MAX_RESPONSE: usize = 64 * 1024;
/// What a `slow_down` adds to the polling interval (RFC 8628 section 3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The interval when the server names none (RFC 8628 section 3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The longest wait between polls after network failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(120);
/// How long before expiry [`MemoryTokens`] refreshes an access token.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Why no tokens were obtained; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the sign-in was refused (access_denied): sign in again and approve the request")]
    Denied,
    #[error("the sign-in code expired before it was used: start the sign-in again")]
    Expired,
    #[error("the sign-in was cancelled")]
    Cancelled,
    #[error(
        "the sign-in is no longer valid (invalid_grant{}): sign in again",
        .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    InvalidGrant { description: Option<String> },
    #[error(
        "the sign-in server refused the request ({error}{}): check the OAuth client id, tenant \
         and scope",
        .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    Server {
        error: String,
        description: Option<String>,
    },
    #[error("the sign-in server answered HTTP {status}: check the OAuth endpoint URLs")]
    Http { status: u16 },
    #[error("the sign-in server sent an unusable answer: {0}")]
    BadResponse(String),
    #[error("the refresh token is missing: sign in again")]
    NoRefreshToken,
    #[error(transparent)]
    Transport(#[from] super::Error),
}

impl From<Error> for super::Error {
    fn from(e: Error) -> super::Error {
        match e {
            Error::Transport(t) => t,
            other => super::Error::Token(other.to_string()),
        }
    }
}

pub type Result<T> = core::result::Result<T, Error>;

/// Where to sign in and as which application.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub device_authorization: String,
    pub token: String,
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
}

impl Endpoints {
    /// Microsoft identity platform endpoints for `tenant` (a tenant id or domain,
    /// `organizations` or `common`) and Exchange Online ActiveSync.
    pub fn microsoft(tenant: &str, client_id: &str) -> Endpoints {
        let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
        Endpoints {
            device_authorization: format!("{base}/devicecode"),
            token: format!("{base}/token"),
            client_id: client_id.to_string(),
            scope: EXCHANGE_ONLINE_SCOPE.to_string(),
        }
    }
}

/// The endpoints plus the HTTP settings (those of the transport).
#[derive(Debug, Clone)]
pub struct Options {
    pub endpoints: Endpoints,
    pub tls: TlsOptions,
    pub proxy: Option<String>,
    pub user_agent: String,
    /// The time limit of each request.
    pub timeout: Duration,
}

impl Options {
    pub fn new(endpoints: Endpoints) -> Options {
        Options {
            endpoints,
            tls: TlsOptions::default(),
            proxy: None,
            user_agent: concat!("easync/", env!("CARGO_PKG_VERSION")).into(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Tokens from the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access: Secret,
    /// Absent when the server issues none (no `offline_access`) or, on a refresh, keeps the
    /// old one valid.
    pub refresh: Option<Secret>,
    pub expires_at: SystemTime,
    pub scope: Option<String>,
}

/// What the user must see to approve the sign-in on another device.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    pub user_code: String,
    pub verification_uri: String,
    /// The URI with the code in it (for a QR code), if the server offers one.
    pub verification_uri_complete: Option<String>,
    pub expires_in: Duration,
    pub interval: Duration,
    /// A ready-made instruction from the server (Microsoft sends one).
    pub message: Option<String>,
    device_code: Secret,
}

/// Shows the user code and the URL to the user.
pub trait DevicePrompt {
    fn show(&self, authorization: &DeviceAuthorization);
}

impl<F: Fn(&DeviceAuthorization)> DevicePrompt for F {
    fn show(&self, authorization: &DeviceAuthorization) {
        self(authorization)
    }
}

/// What one poll of the token endpoint gave.
#[derive(Debug)]
pub enum Poll {
    /// The user has not decided yet.
    Pending,
    /// Polling too fast: the interval grew by [`SLOW_DOWN_STEP`].
    SlowDown,
    Ready(Tokens),
}

/// The HTTP side of OAuth: device authorization and token requests.
pub struct OAuthClient {
    options: Options,
    agent: ureq::Agent,
}

impl core::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A string or number field as seconds.
fn seconds(value: &Json) -> Option<u64> {
    match value {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(value: &Json, field: &str) -> Option<String> {
    value
        .get(field)
        .and_then(Json::as_str)
        .map(|s| s.chars().take(2048).collect())
}

/// The `error` of an OAuth error answer, mapped (RFC 6749 5.2, RFC 8628 3.5).
fn oauth_error(body: &Json) -> Option<Error> {
    let error = text(body, "error")?;
    let description = text(body, "error_description").map(|d| d.chars().take(300).collect());
    Some(match error.as_str() {
        "access_denied" => Error::Denied,
        "expired_token" => Error::Expired,
        "invalid_grant" => Error::InvalidGrant { description },
        _ => Error::Server { error, description },
    })
}

fn tokens_from(body: &Json) -> Result<Tokens> {
    let access = text(body, "access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::BadResponse("no access_token".into()))?;
    if let Some(kind) = text(body, "token_type") {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(Error::BadResponse(format!(
                "token_type {kind:?} is not Bearer"
            )));
        }
    }
    let lifetime = body.get("expires_in").and_then(seconds).unwrap_or(3600);
    Ok(Tokens {
        access: Secret::new(access),
        refresh: text(body, "refresh_token")
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        expires_at: SystemTime::now() + Duration::from_secs(lifetime.min(10 * 365 * 86400)),
        scope: text(body, "scope"),
    })
}

/// The device authorization answer (RFC 8628 3.2).
fn authorization_from(body: &Json) -> Result<DeviceAuthorization> {
    let required = |field: &str| {
        text(body, field)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::BadResponse(format!("no {field}")))
    };
    let device_code = Secret::new(required("device_code")?);
    let user_code = required("user_code")?;
    // Microsoft's v2 endpoint says verification_url.
    let verification_uri =
        required("verification_uri").or_else(|_| required("verification_url"))?;
    let expires_in = body
        .get("expires_in")
        .and_then(seconds)
        .ok_or_else(|| Error::BadResponse("no expires_in".into()))?;
    let interval = body
        .get("interval")
        .and_then(seconds)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_INTERVAL);
    Ok(DeviceAuthorization {
        user_code,
        verification_uri,
        verification_uri_complete: text(body, "verification_uri_complete"),
        expires_in: Duration::from_secs(expires_in.min(86400)),
        interval: interval.min(Duration::from_secs(300)),
        message: text(body, "message"),
        device_code,
    })
}

/// Fuzzing entry point (fuzz/fuzz_targets/net_headers.rs): an OAuth server's answer
/// `bytes` read as the device authorization, the tokens and the error it may be. Not part
/// of the API.
#[doc(hidden)]
pub fn fuzz_answer(bytes: &[u8]) -> (Result<DeviceAuthorization>, Result<Tokens>, Option<Error>) {
    let json = serde_json::from_slice(bytes).unwrap_or(Json::Null);
    (
        authorization_from(&json),
        tokens_from(&json),
        oauth_error(&json),
    )
}

impl OAuthClient {
    /// Builds the client (the transport's TLS trust, pins and proxy). The endpoints must be
    /// https.
    pub fn new(options: Options) -> Result<OAuthClient> {
        for url in [
            &options.endpoints.device_authorization,
            &options.endpoints.token,
        ] {
            client::check_url(url, false)?;
        }
        if options.endpoints.client_id.is_empty() {
            return Err(super::Error::Config("the OAuth client id is empty".into()).into());
        }
        let agent = client::build_agent(
            &AgentOptions {
                tls: &options.tls,
                proxy: options.proxy.as_deref(),
                user_agent: &options.user_agent,
                https_only: true,
            },
            DefaultResolver::default(),
        )?;
        Ok(OAuthClient { options, agent })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.options.endpoints
    }

    /// POSTs a form; returns the status and the JSON answer (`Null` when not JSON).
    fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Result<(u16, Json)> {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body.into_bytes())
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
        let host = client::host_of(url);
        let response = self
            .agent
            .run(request)
            .map_err(|e| client::map_ureq_error(e, &host, timeout))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| client::map_io_error(&e, &host, timeout))?;
        if bytes.len() > MAX_RESPONSE {
            return Err(Error::BadResponse(format!(
                "the answer is over {MAX_RESPONSE} bytes"
            )));
        }
        let json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        log::debug!("OAuth: HTTP {status} from {url}");
        Ok((status, json))
    }

    /// Asks for a user code (RFC 8628 3.1/3.2).
    pub fn start(&self) -> Result<DeviceFlow<'_>> {
        let e = &self.options.endpoints;
        let (status, body) = self.post_form(
            &e.device_authorization,
            &[("client_id", &e.client_id), ("scope", &e.scope)],
        )?;
        if status != 200 {
            return Err(oauth_error(&body).unwrap_or(Error::Http { status }));
        }
        let authorization = authorization_from(&body)?;
        Ok(DeviceFlow {
            client: self,
            deadline: Instant::now() + authorization.expires_in,
            interval: authorization.interval,
            authorization,
        })
    }

    /// The whole device flow: a code, shown by `prompt`, then polling until the user decided.
    pub fn sign_in(&self, prompt: &dyn DevicePrompt) -> Result<Tokens> {
        let flow = self.start()?;
        prompt.show(flow.authorization());
        flow.wait(&mut |d| {
            std::thread::sleep(d);
            true
        })
    }

    /// New tokens for a refresh token. When the answer carries no refresh token the old one
    /// stays valid and is returned in its place (so the result is always what to store).
    pub fn refresh(&self, refresh_token: &Secret) -> Result<Tokens> {
        let e = &self.options.endpoints;
        let (status, body) = self.post_form(
            &e.token,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
                ("client_id", &e.client_id),
                ("scope", &e.scope),
            ],
        )?;
        if status != 200 {
            return Err(oauth_error(&body).unwrap_or(Error::Http { status }));
        }
        let mut tokens = tokens_from(&body)?;
        tokens.refresh.get_or_insert_with(|| refresh_token.clone());
        Ok(tokens)
    }
}

/// A device flow in progress.
pub struct DeviceFlow<'a> {
    client: &'a OAuthClient,
    authorization: DeviceAuthorization,
    interval: Duration,
    deadline: Instant,
}

impl core::fmt::Debug for DeviceFlow<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceFlow")
            .field("authorization", &self.authorization)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DeviceFlow<'_> {
    pub fn authorization(&self) -> &DeviceAuthorization {
        &self.authorization
    }

    /// The current polling interval (grows with each `slow_down`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// One token request (RFC 8628 3.4/3.5).
    pub fn poll(&mut self) -> Result<Poll> {
        if Instant::now() >= self.deadline {
            return Err(Error::Expired);
        }
        let e = &self.client.options.endpoints;
        let (status, body) = self.client.post_form(
            &e.token,
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", self.authorization.device_code.expose()),
                ("client_id", &e.client_id),
            ],
        )?;
        if status == 200 {
            return tokens_from(&body).map(Poll::Ready);
        }
        match text(&body, "error").as_deref() {
            Some("authorization_pending") => Ok(Poll::Pending),
            Some("slow_down") => {
                self.interval += SLOW_DOWN_STEP;
                Ok(Poll::SlowDown)
            }
            _ => Err(oauth_error(&body).unwrap_or(Error::Http { status })),
        }
    }

    /// Polls until the user decided or the code expired. `sleep` waits the given time (the
    /// interval) and returns `false` to cancel. A network failure doubles the wait (RFC 8628
    /// 3.5) until the code expires.
    pub fn wait(mut self, sleep: &mut dyn FnMut(Duration) -> bool) -> Result<Tokens> {
        let mut wait = self.interval;
        loop {
            if !sleep(wait) {
                return Err(Error::Cancelled);
            }
            match self.poll() {
                Ok(Poll::Ready(tokens)) => return Ok(tokens),
                Ok(Poll::Pending | Poll::SlowDown) => wait = self.interval,
                Err(Error::Transport(e)) if e.is_transient() => {
                    log::debug!("OAuth: polling failed ({e}); backing off");
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Called with the new tokens after a refresh (to persist a rotated refresh token).
pub type OnRefresh = Box<dyn Fn(&Tokens) + Send + Sync>;

/// A [`TokenProvider`] holding the tokens in memory: hands out the access token, refreshes
/// it shortly before it expires or when the server refused it, and reports new tokens to
/// `on_refresh` so the caller's store can write them.
pub struct MemoryTokens {
    client: OAuthClient,
    tokens: Mutex<Tokens>,
    on_refresh: OnRefresh,
}

impl core::fmt::Debug for MemoryTokens {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryTokens")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl MemoryTokens {
    pub fn new(client: OAuthClient, tokens: Tokens, on_refresh: OnRefresh) -> MemoryTokens {
        MemoryTokens {
            client,
            tokens: Mutex::new(tokens),
            on_refresh,
        }
    }

    /// The tokens held now.
    pub fn current(&self) -> Tokens {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refreshes now. The lock is held across the request so that two callers never spend
    /// the same (rotating) refresh token.
    pub fn refresh_now(&self) -> Result<Tokens> {
        let fresh = {
            let mut held = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            let refresh = held.refresh.clone().ok_or(Error::NoRefreshToken)?;
            let fresh = self.client.refresh(&refresh)?;
            *held = fresh.clone();
            fresh
        };
        log::debug!("OAuth: access token refreshed");
        (self.on_refresh)(&fresh);
        Ok(fresh)
    }
}

impl TokenProvider for MemoryTokens {
    fn token(&self) -> super::Result<String> {
        let tokens = self.current();
        let expiring = tokens
            .expires_at
            .duration_since(SystemTime::now())
            .map(|left| left <= REFRESH_MARGIN)
            .unwrap_or(true);
        if expiring && tokens.refresh.is_some() {
            match self.refresh_now() {
                Ok(fresh) => return Ok(fresh.access.expose().to_string()),
                // Not expired yet: the current token still serves; the next call retries.
                Err(e) if SystemTime::now() < tokens.expires_at => {
                    log::warn!("OAuth: refreshing the access token failed: {e}");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(tokens.access.expose().to_string())
    }

    fn refresh(&self) -> super::Result<String> {
        Ok(self.refresh_now()?.access.expose().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form_encode("urn:x y/z+é"),
            "urn%3Ax%20y%2Fz%2B%C3%A9".to_string()
        );
    }

    #[test]
    fn token_answers_are_read() {
        let t = tokens_from(&json!({"access_token": "a", "token_type": "Bearer",
            "expires_in": "120", "refresh_token": "r", "scope": "s"}))
        .unwrap();
        assert_eq!(t.access.expose(), "a");
        assert_eq!(t.refresh.as_ref().map(Secret::expose), Some("r"));
        let left = t.expires_at.duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(100) && left <= Duration::from_secs(120));
        assert!(!format!("{t:?}").contains("\"a\""));
        assert!(tokens_from(&json!({"token_type": "Bearer"})).is_err());
        assert!(tokens_from(&json!({"access_token": "a", "token_type": "mac"})).is_err());
        assert!(tokens_from(&json!([1, 2])).is_err());
    }

    #[test]
    fn errors_are_mapped() {
        let e = |v: Json| oauth_error(&v).unwrap();
        assert!(matches!(
            e(json!({"error": "access_denied"})),
            Error::Denied
        ));
        assert!(matches!(
            e(json!({"error": "expired_token"})),
            Error::Expired
        ));
        assert!(matches!(
            e(json!({"error": "invalid_grant", "error_description": "revoked"})),
            Error::InvalidGrant { description: Some(d) } if d == "revoked"
        ));
        assert!(matches!(
            e(json!({"error": "invalid_client"})),
            Error::Server { error, .. } if error == "invalid_client"
        ));
        assert!(oauth_error(&json!({"no": "error"})).is_none());
        let t: super::super::Error = Error::Denied.into();
        assert!(matches!(t, super::super::Error::Token(m) if m.contains("refused")));
    }

    #[test]
    fn endpoints_must_be_https() {
        let mut e = Endpoints::microsoft("organizations", "cid");
        assert!(
            e.token
                .starts_with("https://login.microsoftonline.com/organizations/")
        );
        e.token = "http://x/token".into();
        assert!(OAuthClient::new(Options::new(e)).is_err());
    }
}
