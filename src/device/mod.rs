//! The device (layer 5): what easync does to the machine it runs on on the server's behalf.
//! It uses the protocol's policy type and the configuration, and nothing of the engine, which
//! reaches it through the engine's `Enforcer`.
//!
//! Map (built so far):
//! - [`hooks`]: the policy hooks — which program enforces which policy element, running
//!   them (argv, cleared environment, timeout, bounded output) and the honest
//!   acknowledgement status with the elements missing.
//!
//! Remote wipe, device information and unlock-failure counting follow.

pub mod hooks;
