//! Adapters between `std::io` and the `embedded_io` traits the codec is written against.

/// Wraps a `std::io::Read` or `std::io::Write` so the codec can use it.
#[derive(Debug)]
pub struct FromStd<T>(pub T);

impl<T> FromStd<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> embedded_io::ErrorType for FromStd<T> {
    type Error = std::io::Error;
}

impl<T: std::io::Read> embedded_io::Read for FromStd<T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        self.0.read(buf)
    }
}

impl<T: std::io::Write> embedded_io::Write for FromStd<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, std::io::Error> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> Result<(), std::io::Error> {
        self.0.flush()
    }
}
