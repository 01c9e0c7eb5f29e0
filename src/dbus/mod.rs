//! The OEM interface (layer 7): the `org.easync` D-Bus service of `easyncd`, a thin
//! mapping of engine state and commands, and what its clients share.
//!
//! Map:
//! - [`wire`]: the D-Bus message format (no I/O; bounded, never panicking on input).
//! - [`conn`]: a connection on tokio: bus address, authentication, file descriptor
//!   passing, calls and their replies.
//! - [`view`]: what the service shows of the account, updated from engine events (no bus).
//! - [`service`]: the `org.easync.Account1` object and the connection that serves it.
//!
//! easync speaks D-Bus itself: a general library (zbus) made up a fifth of the daemon and
//! kept its stripped binary above 3 MiB; this service needs a dozen types and four kinds
//! of message. The tests talk to it through zbus and dbus-daemon, as OEM software would.
//!
//! The interface is versioned the BlueZ way: an incompatible change becomes
//! `org.easync.Account2` beside `Account1`. Its introspection data is checked into the repo
//! ([`ACCOUNT_XML`]) and a test compares it with what the running service says.

pub mod conn;
pub mod service;
pub mod view;
pub mod wire;

/// The well-known name.
pub const BUS_NAME: &str = "org.easync";
/// The account's object.
pub const ACCOUNT_PATH: &str = "/org/easync/account0";
/// The account's interface.
pub const ACCOUNT_INTERFACE: &str = "org.easync.Account1";
/// The interface's introspection data, as published.
pub const ACCOUNT_XML: &str = include_str!("org.easync.Account1.xml");

/// Which bus to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// The system bus (devices; `DBUS_SYSTEM_BUS_ADDRESS` overrides its address).
    System,
    /// The session bus (development and tests; `DBUS_SESSION_BUS_ADDRESS`).
    Session,
}

impl Bus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Bus::System => "system",
            Bus::Session => "session",
        }
    }
}
