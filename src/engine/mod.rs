//! One account's life (layer 6): enrollment, negotiation, provisioning, folder sync, item
//! sync, push, upload of local changes, back-off and the schedule. It reaches the server,
//! the store and the device through narrow interfaces so tests can put the lab or fakes
//! behind them.
//!
//! Map (built so far):
//! - [`heartbeat`]: the adaptive Ping heartbeat and the choice of folders to watch.
//! - [`reaction`]: what every kind of failure leads to (bounded waits, parked states).
//! - [`provision`]: provisioning over a session, with the policy decision and the wipe
//!   handed to an [`provision::Enforcer`].

pub mod heartbeat;
pub mod provision;
pub mod reaction;
