//! MS-ASHTTP over ureq and rustls: layer 3 of the crate.
//!
//! The transport moves the bytes the [`crate::eas`] layer writes and reads: it builds the
//! request line (plain or base64 query form) and headers, authenticates (Basic, OAuth bearer
//! with one refresh on 401, TLS client certificate), enforces TLS trust (system store, extra
//! CA, optional SPKI pins), streams request and response bodies without buffering them, and
//! turns HTTP statuses into typed errors (449 provisioning, 451 redirect, 503 throttling, 401,
//! 403 ...). The [`Session`] on top holds the negotiated version, the policy key and the
//! current URL, and runs the retry loop every command shares.
//!
//! Map:
//! - [`config`]: what the account and device are, TLS options, credentials.
//! - [`query`]: the two query forms. [`client`]: one HTTP exchange.
//! - [`cancel`]: interrupting the requests in flight (a parked Ping) from another thread.
//! - [`session`]: redirects, provisioning and throttling retries.
//! - [`tls`] (with [`der`]): the rustls configuration and the pinning verifier.
//! - [`retry`]: Retry-After parsing and the back-off.
//! - [`error`]: the error type, worded for the person at the device.
//! - [`autodiscover`]: finding the server URL from the mail address (MS-OXDSCLI).
//! - [`oauth`]: the OAuth 2.0 device authorization grant (RFC 8628) and token refresh.

pub mod autodiscover;
pub mod cancel;
pub mod client;
pub mod config;
pub mod der;
pub mod error;
pub mod oauth;
pub mod query;
pub mod retry;
pub mod session;
pub mod tls;

pub use cancel::Canceller;
pub use client::{Client, Response, ResponseBody};
pub use config::{Auth, Config, Secret, TlsOptions, TokenProvider};
pub use error::{Error, Result};
pub use query::QueryForm;
pub use retry::{Backoff, RetryAfter, parse_retry_after};
pub use session::{
    PING_MARGIN, Provisioner, ResponseParser, RetryPolicy, Session, SessionState, command_timeout,
    ping_timeout,
};
