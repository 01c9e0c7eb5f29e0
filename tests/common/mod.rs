//! Shared parts of the integration tests.
#![allow(dead_code)]

pub mod bus;
pub mod client;
#[cfg(feature = "lab")]
pub mod daemon;
#[cfg(feature = "lab")]
pub mod hostile;
pub mod imap;
#[cfg(feature = "lab")]
pub mod lab;
pub mod setup;
#[cfg(feature = "lab")]
pub mod soak;
