//! The transport's error: every way an exchange with the server can fail, each with a
//! message that tells the person at the device what to check. No message ever contains a
//! password or a token.

use std::time::Duration;

use super::retry::RetryAfter;

/// Why a request did not produce a usable response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- configuration and request shape ---
    #[error("configuration error: {0}")]
    Config(String),
    #[error(
        "refusing to send credentials over unencrypted http ({url}): use an https:// URL or set \
         allow_insecure_http"
    )]
    InsecureHttp { url: String },
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("the request cannot be sent: {0}")]
    Request(String),
    #[error("reading the message to send failed: {0}")]
    RequestBody(String),

    // --- network ---
    #[error("server name {host} not found: check the server URL and the device's DNS settings")]
    HostNotFound { host: String },
    #[error("cannot connect to the server: {0}: check the server URL, port, network and firewall")]
    Connect(String),
    #[error("no answer from the server within {}: check the network or try again later", seconds(*.after))]
    Timeout { after: Duration },
    #[error("the connection to the server failed: {0}")]
    Network(String),
    /// The request was interrupted on purpose by the client's
    /// [`Canceller`](super::Canceller) (e.g. to sync now instead of waiting out a Ping).
    #[error(
        "the request was cancelled on purpose (a sync was asked for or a local change is \
         waiting): nothing is wrong with the server"
    )]
    Cancelled,

    // --- TLS ---
    #[error("certificate not trusted: set tls.ca_file or check the server certificate ({0})")]
    CertificateNotTrusted(String),
    #[error(
        "the server certificate is not valid for {host}: check the server URL matches the \
         certificate"
    )]
    CertificateNameMismatch { host: String },
    #[error(
        "the server certificate is expired or not yet valid: check the device clock and the \
         server certificate"
    )]
    CertificateExpired,
    #[error(
        "pin mismatch: the server's key is not the pinned one (the server's key is {actual}): \
         check tls.pin_sha256 or the server certificate"
    )]
    PinMismatch { actual: String },
    #[error(
        "the server refused the TLS client certificate: check tls.client_cert and tls.client_key \
         ({0})"
    )]
    ClientCertificateRejected(String),
    #[error("TLS failed: {0}")]
    Tls(String),

    // --- HTTP outcomes ---
    #[error("the server requires the device to be provisioned (HTTP 449)")]
    NeedsProvisioning,
    #[error(
        "the server still asks for provisioning after {attempts} attempts: check the device \
         policy on the server"
    )]
    ProvisioningLoop { attempts: u32 },
    /// Returned by a [`Provisioner`](super::Provisioner) once it has acknowledged a wipe
    /// directive: the request that led there must not be repeated.
    #[error(
        "the server ordered a remote wipe{}: the device carries it out and stops syncing",
        if *.account_only { " of this account" } else { "" }
    )]
    RemoteWipe { account_only: bool },
    /// The server refused to provision the device (e.g. 139: the device cannot apply the
    /// whole policy and the server requires it); `reason` is the server's status in words.
    #[error("the server refused to provision this device: {reason}")]
    ProvisioningRefused { reason: String },
    #[error("HTTP 451 without an X-MS-Location header: the server's redirect is unusable")]
    RedirectWithoutLocation,
    #[error("more than {hops} redirects (HTTP 451): check the server URL")]
    TooManyRedirects { hops: u32 },
    #[error("the server redirects in a loop (back to {url}): check the server configuration")]
    RedirectLoop { url: String },
    #[error(
        "the server is busy (HTTP 503{}{}): the request will be retried later",
        .retry_after.map(|r| format!(", retry after {r}")).unwrap_or_default(),
        .reason.as_deref().map(|r| format!(", {r}")).unwrap_or_default()
    )]
    Throttled {
        retry_after: Option<RetryAfter>,
        /// The X-MS-ASThrottle header: why the server throttles.
        reason: Option<String>,
    },
    #[error(
        "the server refused the credentials (HTTP 401){}: check the user name and password or token",
        .credentials_expire_days.map(|d| format!(", password expires in {d} days")).unwrap_or_default()
    )]
    Unauthorized {
        /// X-MS-Credentials-Expire: days until the password expires, if the server said.
        credentials_expire_days: Option<u32>,
    },
    #[error("the request must be sent again: {0}")]
    ResendRequired(String),
    #[error(
        "the server forbids this user or device (HTTP 403): ask the administrator to allow \
         ActiveSync for the account and device"
    )]
    Forbidden,
    #[error("the server answered HTTP {status}{}", status_hint(.status))]
    Http { status: u16 },
    #[error("the access token could not be obtained: {0}")]
    Token(String),
    #[error(
        "the server answered with a web page ({content_type}) instead of ActiveSync: a captive \
         portal (the sign-in page of a hotel, train or guest Wi-Fi) or a proxy is in the way; \
         sign in to the network in a browser, or check the server URL"
    )]
    WebPage { content_type: String },

    // --- what came back ---
    #[error(transparent)]
    Negotiation(#[from] crate::eas::version::NegotiationError),
    #[error(transparent)]
    Protocol(#[from] crate::eas::Error),
}

/// What to check for an unexpected HTTP status.
fn status_hint(status: &u16) -> &'static str {
    match status {
        404 => ": check the server URL ends in /Microsoft-Server-ActiveSync",
        500..=599 => ": the server failed; try again later",
        400 => ": the server did not understand the request",
        300..=399 => ": the server redirects elsewhere; check the server URL",
        _ => "",
    }
}

impl Error {
    /// Whether repeating the same request later may succeed (network trouble, throttling).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. }
                | Error::Connect(_)
                | Error::Network(_)
                | Error::HostNotFound { .. }
                | Error::Throttled { .. }
                | Error::Http { status: 500..=599 }
                | Error::WebPage { .. }
        )
    }
}

/// A duration for people: "30 s", or "0.3 s" below ten seconds.
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} s", d.as_secs())
    }
}

/// The result type of the transport layer.
pub type Result<T> = core::result::Result<T, Error>;
