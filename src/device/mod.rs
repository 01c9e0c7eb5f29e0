//! The device layer (DESIGN.md layer 5): what easync does to the device itself on the
//! server's orders — the remote wipe ([`wipe`]) and, alongside, the policy hooks.
//!
//! It uses `config` and `store` below it and is driven by the engine above.

pub mod wipe;
