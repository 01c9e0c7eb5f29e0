//! The protocol layer's error: why a response could not be understood or a request written.

use crate::wbxml;

/// Why an EAS response could not be read (or a request not written).
///
/// Wire errors carry the byte offset in the WBXML body, so a trace of the response pins the
/// fault down. Status codes the server sends on purpose are not errors at this level: each
/// command's response has them as typed values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the response body failed: {0}")]
    Io(String),
    #[error("the server sent invalid WBXML at byte {offset}: {kind}")]
    Wbxml { kind: wbxml::ErrorKind, offset: u64 },
    #[error("the server's response does not follow the protocol at byte {offset}: {message}")]
    Protocol { offset: u64, message: String },
    #[error("{what} at byte {offset} is over the limit of {limit}")]
    Limit {
        what: &'static str,
        limit: u64,
        offset: u64,
    },
    #[error("storing streamed data failed: {0}")]
    Sink(#[from] std::io::Error),
    #[error("writing the request failed: {0}")]
    Write(String),
}

impl<E: core::fmt::Debug + core::fmt::Display> From<wbxml::Error<E>> for Error {
    fn from(e: wbxml::Error<E>) -> Self {
        match e {
            wbxml::Error::Io(io) => Error::Io(io.to_string()),
            wbxml::Error::Invalid { kind, offset } => Error::Wbxml { kind, offset },
        }
    }
}

/// The result type of the `eas` layer.
pub type Result<T> = core::result::Result<T, Error>;
