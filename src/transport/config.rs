//! What the transport needs to know about the account and the device: server URL, identity,
//! credentials, TLS trust. Secrets are wrapped so they never show in `Debug` output or logs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::error::Result;
use super::query::QueryForm;

/// The default system trust store (Debian/Ubuntu/Yocto `ca-certificates` layout).
pub const DEFAULT_TRUST_STORE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A password or token: printed as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("***")
    }
}

/// Where OAuth access tokens come from (implemented by the engine / account layer).
pub trait TokenProvider: Send + Sync {
    /// The current access token (may be cached).
    fn token(&self) -> Result<String>;
    /// A fresh token after the server refused the current one (HTTP 401).
    fn refresh(&self) -> Result<String>;
}

/// How requests authenticate.
#[derive(Clone, Default)]
pub enum Auth {
    /// No Authorization header (e.g. only a TLS client certificate).
    #[default]
    None,
    /// HTTP Basic with `user` (as `DOMAIN\user` when a domain is set) and this password.
    Basic { password: Secret },
    /// `Authorization: Bearer <token>` (Exchange Online modern auth).
    Bearer(Arc<dyn TokenProvider>),
}

impl core::fmt::Debug for Auth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { .. } => f.write_str("Basic { password: *** }"),
            Auth::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

/// TLS trust and client identity.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The system trust store (PEM bundle); `None` trusts only `ca_file`.
    pub trust_store: Option<PathBuf>,
    /// An extra CA certificate (PEM, may hold several) trusted besides the store.
    pub ca_file: Option<PathBuf>,
    /// SPKI pins: base64 of the SHA-256 of the server certificate's SubjectPublicKeyInfo (as
    /// in HPKP). When set, the server's end-entity key must match one of them, in addition to
    /// the normal chain check.
    pub pins: Vec<String>,
    /// A TLS client certificate chain (PEM) and its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            trust_store: Some(PathBuf::from(DEFAULT_TRUST_STORE)),
            ca_file: None,
            pins: Vec::new(),
            client_cert: None,
            client_key: None,
        }
    }
}

/// Everything the transport needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `https://host/Microsoft-Server-ActiveSync`.
    pub url: String,
    /// The user name (for Basic and the `User=` parameter).
    pub user: String,
    /// A Windows domain: Basic then authenticates as `DOMAIN\user`.
    pub domain: Option<String>,
    pub auth: Auth,
    pub device_id: String,
    pub device_type: String,
    pub user_agent: String,
    pub query_form: QueryForm,
    /// MS-LCID locale for the base64 query form (0x0409 = en-US).
    pub locale: u16,
    /// Allow `http://` URLs (lab and tests only: credentials would travel in clear).
    pub allow_insecure_http: bool,
    pub tls: TlsOptions,
    /// Longest wait for a TCP + TLS connection (the per-request timeout caps it too).
    pub connect_timeout: Duration,
    /// An HTTP CONNECT proxy (`http://proxy:3128`), if the network requires one. The
    /// `http_proxy`/`https_proxy` environment variables are deliberately not used.
    pub proxy: Option<String>,
}

impl Config {
    /// A configuration with defaults for everything but the identity.
    pub fn new(
        url: impl Into<String>,
        user: impl Into<String>,
        device_id: impl Into<String>,
    ) -> Self {
        Config {
            url: url.into(),
            user: user.into(),
            domain: None,
            auth: Auth::None,
            device_id: device_id.into(),
            device_type: "easync".into(),
            user_agent: concat!("easync/", env!("CARGO_PKG_VERSION")).into(),
            query_form: QueryForm::Plain,
            locale: 0x0409,
            allow_insecure_http: false,
            tls: TlsOptions::default(),
            connect_timeout: Duration::from_secs(30),
            proxy: None,
        }
    }

    /// The user as Basic authentication names it: `DOMAIN\user` or `user`.
    pub fn basic_user(&self) -> String {
        match self.domain.as_deref() {
            Some(d) if !d.is_empty() => format!("{d}\\{}", self.user),
            _ => self.user.clone(),
        }
    }
}
