//! A minimal IMAP client for tests: log in and APPEND one message, so a real server (the SOGo
//! peer's dovecot) has new mail to push.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Appends `message` (RFC 5322 text with CRLF line ends) to `mailbox` over plain IMAP.
pub fn append(
    addr: &str,
    user: &str,
    password: &str,
    mailbox: &str,
    message: &str,
) -> std::io::Result<()> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    let mut line = String::new();
    input.read_line(&mut line)?; // greeting
    let expect_ok = |input: &mut BufReader<TcpStream>, tag: &str| -> std::io::Result<()> {
        loop {
            let mut l = String::new();
            if input.read_line(&mut l)? == 0 {
                return Err(std::io::Error::other("IMAP server closed the connection"));
            }
            if let Some(rest) = l.strip_prefix(tag) {
                return if rest.trim_start().starts_with("OK") {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!("IMAP: {l}")))
                };
            }
        }
    };
    write!(out, "a1 LOGIN \"{user}\" \"{password}\"\r\n")?;
    expect_ok(&mut input, "a1")?;
    write!(out, "a2 APPEND \"{mailbox}\" {{{}}}\r\n", message.len())?;
    line.clear();
    input.read_line(&mut line)?;
    if !line.starts_with('+') {
        return Err(std::io::Error::other(format!(
            "IMAP APPEND refused: {line}"
        )));
    }
    out.write_all(message.as_bytes())?;
    out.write_all(b"\r\n")?;
    expect_ok(&mut input, "a2")?;
    write!(out, "a3 LOGOUT\r\n")?;
    Ok(())
}
