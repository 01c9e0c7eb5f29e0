//! A small HTTP/1.1 server side for the lab: reads one request at a time from a stream
//! (request line, headers, a `Content-Length` or chunked body, all bounded) and writes
//! responses with a `Content-Length`, gzip-compressed when the client asks for it.
//!
//! Keep-alive is the default for HTTP/1.1; `Connection: close` or HTTP/1.0 end the
//! connection after the response. Request bodies are read into memory up to a configured
//! limit (the lab is a test server; a body over the limit is answered with 413).

use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most header lines in one request.
const MAX_HEADERS: usize = 100;

/// One parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query (`/Microsoft-Server-ActiveSync`).
    pub path: String,
    /// The raw query after `?`, if any.
    pub query: Option<String>,
    /// HTTP/1.0 or HTTP/1.1.
    pub http11: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether it came over TLS (set by the connection loop).
    pub secure: bool,
}

impl Request {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        match self.header("Connection") {
            Some(v) if v.eq_ignore_ascii_case("close") => false,
            Some(v) if v.eq_ignore_ascii_case("keep-alive") => true,
            _ => self.http11,
        }
    }

    /// Whether the client accepts a gzip-compressed response.
    pub fn accepts_gzip(&self) -> bool {
        self.header("Accept-Encoding").is_some_and(|v| {
            v.split(',').any(|p| {
                let mut parts = p.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let refused = parts.any(|q| q.trim().replace(' ', "") == "q=0");
                coding.eq_ignore_ascii_case("gzip") && !refused
            })
        })
    }
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection before a new request began (normal end).
    Closed,
    Io(io::Error),
    /// The request is not valid HTTP: answer 400 and close.
    Bad(String),
    /// The body is over the limit: answer 413 and close.
    TooLarge,
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn read_line<R: BufRead>(r: &mut R, first: bool) -> Result<String, ReadError> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(if first {
            ReadError::Closed
        } else {
            ReadError::Bad("the connection ended inside the request head".into())
        });
    }
    if line.len() > MAX_LINE {
        return Err(ReadError::Bad(
            "a request line or header is too long".into(),
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(ReadError::Bad("the connection ended inside a line".into()));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| ReadError::Bad("a header is not UTF-8".into()))
}

/// Reads the next request. `max_body` bounds the body size.
pub fn read_request<R: BufRead>(r: &mut R, max_body: usize) -> Result<Request, ReadError> {
    let mut line = read_line(r, true)?;
    // Tolerate blank lines between requests (RFC 9112 2.2).
    while line.is_empty() {
        line = read_line(r, true)?;
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(format!("malformed request line {line:?}")));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => {
            return Err(ReadError::Bad(format!(
                "unsupported HTTP version {version:?}"
            )));
        }
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, false)?;
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ReadError::Bad("too many headers".into()));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Bad(format!("malformed header line {line:?}")));
        };
        if name.is_empty() || name.contains(' ') {
            return Err(ReadError::Bad(format!("malformed header name {name:?}")));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path,
        query,
        http11,
        headers,
        body: Vec::new(),
        secure: false,
    };
    let chunked = req
        .header("Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(r, max_body)?;
    } else if let Some(len) = req.header("Content-Length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| ReadError::Bad(format!("invalid Content-Length {len:?}")))?;
        if len > max_body {
            return Err(ReadError::TooLarge);
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ReadError::Bad("the connection ended inside the body".into())
            } else {
                ReadError::Io(e)
            }
        })?;
        req.body = body;
    }
    Ok(req)
}

fn read_chunked<R: BufRead>(r: &mut R, max_body: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r, false)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadError::Bad(format!("invalid chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            while !read_line(r, false)?.is_empty() {}
            return Ok(body);
        }
        if body.len().saturating_add(size) > max_body {
            return Err(ReadError::TooLarge);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])
            .map_err(|_| ReadError::Bad("the connection ended inside a chunk".into()))?;
        if !read_line(r, false)?.is_empty() {
            return Err(ReadError::Bad("a chunk is longer than its size".into()));
        }
    }
}

/// A response to write.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn with_body(mut self, content_type: &str, body: Vec<u8>) -> Response {
        self.headers
            .push(("Content-Type".to_string(), content_type.to_string()));
        self.body = body;
        self
    }

    /// A short plain-text response (errors, admin messages).
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        let mut body = text.into().into_bytes();
        body.push(b'\n');
        Response::new(status).with_body("text/plain; charset=utf-8", body)
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Response::new(status).with_body("application/json", body)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The reason phrase for the status codes the lab uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        449 => "Retry With",
        451 => "Redirect",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Compresses `body` with gzip.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into memory cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

/// How to write a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// The whole body.
    Full,
    /// Announce the whole length, send half the body, then the caller closes (a reset).
    HalfThenClose,
    /// Announce the whole length, send half the body, then the caller keeps the connection
    /// open and silent for this long (a stalled peer).
    Stall(std::time::Duration),
    /// Compress the body whatever the client accepts, announce and send half of it.
    TruncatedGzip,
    /// Ignore the response's body: write this one on the fly (never compressed).
    Generated(super::hostile::Generated),
}

/// Writes `resp` to `out`. Compresses the body when `compress` and it is not empty.
pub fn write_response<W: Write>(
    out: &mut W,
    mut resp: Response,
    compress: bool,
    keep_alive: bool,
    framing: Framing,
) -> io::Result<()> {
    if framing == Framing::TruncatedGzip {
        resp.body = gzip(&resp.body);
        resp.body.truncate(resp.body.len() / 2);
        resp.headers
            .push(("Content-Encoding".to_string(), "gzip".to_string()));
    } else if compress && !resp.body.is_empty() && !matches!(framing, Framing::Generated(_)) {
        resp.body = gzip(&resp.body);
        resp.headers
            .push(("Content-Encoding".to_string(), "gzip".to_string()));
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (n, v) in &resp.headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    let length = match &framing {
        Framing::Generated(g) => g.len(),
        _ => resp.body.len() as u64,
    };
    head.push_str(&format!("Content-Length: {length}\r\n"));
    head.push_str("Server: easync-lab\r\n");
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    match framing {
        Framing::Full | Framing::TruncatedGzip => out.write_all(&resp.body)?,
        Framing::HalfThenClose | Framing::Stall(_) => {
            out.write_all(&resp.body[..resp.body.len() / 2])?
        }
        Framing::Generated(g) => g.write_to(out)?,
    }
    out.flush()
}

/// Decodes `%XX` escapes and `+` (as a space) in a query component.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Splits a plain query into decoded `(name, value)` pairs; `None` when an escape is bad.
pub fn parse_query(q: &str) -> Option<Vec<(String, String)>> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(n)?, percent_decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Request, ReadError> {
        read_request(&mut io::BufReader::new(bytes), 1024)
    }

    #[test]
    fn reads_content_length_and_chunked_bodies() {
        let r = read(b"POST /x?a=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!((r.path.as_str(), r.query.as_deref()), ("/x", Some("a=1")));
        assert_eq!(r.body, b"abc");
        assert!(r.keep_alive());
        let r = read(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
    }

    #[test]
    fn refuses_bad_and_oversized_requests() {
        assert!(matches!(read(b"GARBAGE\r\n\r\n"), Err(ReadError::Bad(_))));
        assert!(matches!(
            read(b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"),
            Err(ReadError::TooLarge)
        ));
        assert!(matches!(
            read(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),
            Err(ReadError::Bad(_))
        ));
        assert!(matches!(read(b""), Err(ReadError::Closed)));
    }

    #[test]
    fn gzip_accept_and_query_decoding() {
        let r = read(b"GET / HTTP/1.0\r\nAccept-Encoding: deflate, gzip\r\n\r\n").unwrap();
        assert!(r.accepts_gzip() && !r.keep_alive());
        let r = read(b"GET / HTTP/1.1\r\nAccept-Encoding: gzip;q=0\r\n\r\n").unwrap();
        assert!(!r.accepts_gzip());
        assert_eq!(
            parse_query("Cmd=Sync&User=a%40b.c&x").unwrap(),
            vec![
                ("Cmd".into(), "Sync".into()),
                ("User".into(), "a@b.c".into()),
                ("x".into(), "".into())
            ]
        );
        assert!(parse_query("a=%zz").is_none());
    }
}
