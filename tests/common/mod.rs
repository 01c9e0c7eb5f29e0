//! Shared parts of the integration tests.
#![allow(dead_code)]

pub mod client;
pub mod imap;
#[cfg(feature = "lab")]
pub mod lab;
pub mod setup;
