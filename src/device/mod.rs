//! The device (layer 5): what easync does to the machine it runs on on the server's behalf.
//! It uses the protocol's policy type, the configuration and the store, and nothing of the
//! engine, which drives it (through the engine's `Enforcer` and the wipe sequence).
//!
//! Map (built so far):
//! - [`hooks`]: the policy hooks — which program enforces which policy element, running
//!   them (argv, cleared environment, timeout, bounded output) and the honest
//!   acknowledgement status with the elements missing.
//! - [`wipe`]: the remote wipe — target validation, the erase of a block device or a
//!   directory tree, the account-only wipe, and the crash-safe sequence of steps resumed at
//!   start before any network access.
//! - [`unlock`]: the failed unlocks the lock screen reports, counted against the policy's
//!   MaxDevicePasswordFailedAttempts (persisted), which make the full wipe due.
//! - [`memory`]: what the daemon gives back before it parks in a Ping: free heap, and the
//!   resident pages of its code and read-only data.
//!
//! Device information follows.

pub mod hooks;
pub mod memory;
pub mod unlock;
pub mod wipe;
