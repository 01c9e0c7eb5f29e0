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
//! - [`device`]: the device itself — the policy hooks and the compliance verdict, the
//!   remote wipe (full and account-only) and its crash-safe sequence.
//!
//! - [`engine`]: one account's life — the sync cycle, push, uploads, the outbox, OAuth
//!   sign-in, provisioning through the hooks, and the long-running schedule the daemon runs.
//! - `dbus` (feature `dbus`, part of `device`): the `org.easync` D-Bus service, a thin
//!   mapping of the engine for OEM software and `easyncctl`, on easync's own small
//!   implementation of the D-Bus protocol.
//!
//! The binaries (`src/bin/`) sit on top: `easyncd`, `easyncctl` (with the demo) and
//! `easync-lab`.

pub mod config;
#[cfg(feature = "dbus")]
pub mod dbus;
pub mod device;
pub mod eas;
pub mod engine;
#[cfg(feature = "lab")]
pub mod lab;
pub mod store;
pub mod transport;
pub mod wbxml;
