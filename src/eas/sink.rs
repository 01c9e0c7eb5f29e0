//! Where large values go: bodies, MIME messages and attachments are handed to a [`Sink`] in
//! chunks as they arrive, so no response is ever held in memory whole.

/// Receives one large value (a body, a MIME message, an attachment) piece by piece.
///
/// The protocol layer never buffers such values; it calls [`Sink::chunk`] for every piece
/// the WBXML reader yields (text and opaque data alike) and [`Sink::end`] once the value is
/// complete. An error from the sink aborts the response read and is reported as
/// [`Error::Sink`](super::Error::Sink).
pub trait Sink {
    /// One piece of the value, in order.
    fn chunk(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// The value is complete (`total` bytes). Default: nothing to do.
    fn end(&mut self, total: u64) -> std::io::Result<()> {
        let _ = total;
        Ok(())
    }
}

/// Collects the value in memory: for tests and small values.
impl Sink for Vec<u8> {
    fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }
}

/// Throws the value away, counting nothing: for values the caller does not want.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Sink for Discard {
    fn chunk(&mut self, _data: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the value to any `std::io::Write` (a temporary file, a pipe).
pub struct WriteSink<W: std::io::Write>(pub W);

impl<W: std::io::Write> Sink for WriteSink<W> {
    fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(data)
    }
    fn end(&mut self, _total: u64) -> std::io::Result<()> {
        self.0.flush()
    }
}
