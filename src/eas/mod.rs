//! The ActiveSync protocol, sans-IO: for each command a request writer and a response reader.
//!
//! This is layer 2 of the crate. It turns typed requests into WBXML bodies (using
//! [`crate::wbxml::Writer`]) and WBXML response bodies into typed values (using
//! [`Parser`], a structural layer over [`crate::wbxml::Reader`]). Large values — bodies,
//! MIME, attachments — go to a [`Sink`] in chunks. There is no HTTP, no file, no clock and no
//! thread here: the transport layer moves the bytes, the engine decides what to do.
//!
//! Map:
//! - [`version`]: OPTIONS negotiation. [`command`]: command names, codes and request bodies.
//! - [`status`]: the common status codes and what to do about each.
//! - [`parse`], [`sink`], [`error`]: the reading machinery; [`common`]: response shapes
//!   several commands share.
//! - One module per command family: [`provision`] (with [`policy`]), [`settings`],
//!   [`folder`], [`sync`], [`ping`], [`estimate`], [`itemops`] (with [`multipart`]),
//!   [`compose`] (SendMail, SmartReply, SmartForward), [`moveitems`], [`meeting`],
//!   [`search`], [`resolve`], [`find`].

pub mod command;
pub mod common;
pub mod error;
pub mod parse;
pub mod sink;
pub mod status;
pub mod version;

#[cfg(all(test, feature = "xml"))]
pub mod testutil;

pub mod compose;
pub mod estimate;
pub mod find;
pub mod folder;
pub mod item;
pub mod itemops;
pub mod meeting;
pub mod moveitems;
pub mod multipart;
pub mod ping;
pub mod policy;
pub mod provision;
pub mod resolve;
pub mod search;
pub mod settings;
pub mod sync;

pub use crate::wbxml::ProtocolVersion;
pub use command::{Body, Command, Request};
pub use error::{Error, Result};
pub use parse::{Child, Limits, Node, Parser, Value};
pub use sink::Sink;
pub use status::{Action, CommonStatus, HasStatus};
pub use version::ServerInfo;
