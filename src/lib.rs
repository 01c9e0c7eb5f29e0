//! easync: the device side of Exchange ActiveSync for embedded Linux.
//!
//! The crate is layered bottom up (see `DESIGN.md` in the shared folder); a module uses only
//! the ones listed before it:
//!
//! - [`wbxml`]: the WBXML codec — a pull reader and a streaming writer over `embedded_io`,
//!   with the EAS code pages as static tables. Decoding runs in a fixed buffer and never
//!   allocates.
//!
//! - [`eas`]: the ActiveSync protocol, sans-IO — request writers, response readers, status
//!   codes, the policy document.
//! - [`transport`]: MS-ASHTTP over ureq and rustls — URLs, headers, authentication, TLS
//!   trust, redirects, throttling, streamed bodies.
//! - `lab` (feature `lab`): the easync-lab reference server, which shares `wbxml` and `eas`
//!   and nothing of the client side.
//!
//! - [`store`]: everything on disk — state, Maildir, vdir, and the item conversions.
//! - [`config`]: the TOML configuration file and the secrets it points at.
//! - [`device`]: the device — policy hooks and the compliance verdict.
//!
//! - [`device`]: the device itself — the remote wipe (full and account-only).
//!
//! - [`engine`]: one account's life (so far: the adaptive Ping heartbeat).
//!
//! The rest of the device layer (wipe), the D-Bus layer and the daemon follow in later work.

pub mod config;
pub mod device;
pub mod eas;
pub mod engine;
#[cfg(feature = "lab")]
pub mod lab;
pub mod store;
pub mod transport;
pub mod wbxml;
