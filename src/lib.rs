//! easync: the device side of Exchange ActiveSync for embedded Linux.
//!
//! The crate is layered bottom up (see `DESIGN.md` in the shared folder); a module uses only
//! the ones listed before it:
//!
//! - [`wbxml`]: the WBXML codec — a pull reader and a streaming writer over `embedded_io`,
//!   with the EAS code pages as static tables. Decoding runs in a fixed buffer and never
//!   allocates.
//!
//! The protocol (`eas`), transport, store, device, engine and D-Bus layers follow in later
//! work.

pub mod wbxml;
