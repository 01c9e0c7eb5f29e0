//! The D-Bus wire format: messages to bytes and back, without I/O (the connection in
//! [`super::conn`] moves the bytes and the file descriptors).
//!
//! easync speaks D-Bus itself rather than through a general library: the service needs a
//! dozen types and four message kinds, and a general library tripled the daemon's size.
//! What it reads comes from other processes, so decoding is bounded (message size, nesting,
//! array lengths) and reports malformed input as [`WireError`], never by panicking. Both
//! byte orders are read; messages are written little-endian.

use std::fmt::Write as _;
use std::os::fd::OwnedFd;

/// The protocol's own ceiling for a message (bytes).
pub const PROTOCOL_MAX_MESSAGE: usize = 128 * 1024 * 1024;
/// The protocol's ceiling for one array's contents (bytes).
const MAX_ARRAY: usize = 64 * 1024 * 1024;
/// How deep containers may nest (the protocol allows 32 arrays plus 32 structures).
const MAX_DEPTH: u32 = 64;
/// The longest signature.
const MAX_SIGNATURE: usize = 255;

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed D-Bus message: {0}")]
    Malformed(&'static str),
    #[error("D-Bus message of {size} bytes is larger than the {limit} accepted")]
    TooLarge { size: usize, limit: usize },
    #[error("D-Bus message names {wanted} file descriptors but came with {got}")]
    MissingFds { wanted: u32, got: usize },
}

fn bad<T>(why: &'static str) -> Result<T, WireError> {
    Err(WireError::Malformed(why))
}

/// One value of the D-Bus type system.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Path(String),
    Sig(String),
    /// An index into the message's file descriptors (`h`).
    Fd(u32),
    /// `ay`, kept as bytes.
    Bytes(Vec<u8>),
    /// An array: its element signature and items.
    Array(String, Vec<Value>),
    /// `a{..}`: key and value signatures and the entries.
    Dict(String, String, Vec<(Value, Value)>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// `as`.
    pub fn strings<S: AsRef<str>>(items: &[S]) -> Value {
        Value::Array(
            "s".into(),
            items.iter().map(|s| Value::str(s.as_ref())).collect(),
        )
    }

    /// Appends the value's signature to `out`.
    pub fn write_signature(&self, out: &mut String) {
        let code = match self {
            Value::Byte(_) => 'y',
            Value::Bool(_) => 'b',
            Value::I16(_) => 'n',
            Value::U16(_) => 'q',
            Value::I32(_) => 'i',
            Value::U32(_) => 'u',
            Value::I64(_) => 'x',
            Value::U64(_) => 't',
            Value::F64(_) => 'd',
            Value::Str(_) => 's',
            Value::Path(_) => 'o',
            Value::Sig(_) => 'g',
            Value::Fd(_) => 'h',
            Value::Variant(_) => 'v',
            Value::Bytes(_) => {
                out.push_str("ay");
                return;
            }
            Value::Array(element, _) => {
                let _ = write!(out, "a{element}");
                return;
            }
            Value::Dict(key, value, _) => {
                let _ = write!(out, "a{{{key}{value}}}");
                return;
            }
            Value::Struct(fields) => {
                out.push('(');
                for f in fields {
                    f.write_signature(out);
                }
                out.push(')');
                return;
            }
        };
        out.push(code);
    }

    /// The value's signature.
    pub fn signature(&self) -> String {
        let mut s = String::new();
        self.write_signature(&mut s);
        s
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Any unsigned or non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Byte(n) => Some(n.into()),
            Value::U16(n) => Some(n.into()),
            Value::U32(n) => Some(n.into()),
            Value::U64(n) => Some(n),
            Value::I16(n) => u64::try_from(n).ok(),
            Value::I32(n) => u64::try_from(n).ok(),
            Value::I64(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    /// The value inside a variant (other values as they are).
    pub fn unwrap_variant(&self) -> &Value {
        match self {
            Value::Variant(inner) => inner.unwrap_variant(),
            other => other,
        }
    }

    /// The items of an array or the fields of a structure.
    pub fn items(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, items) | Value::Struct(items) => Some(items),
            _ => None,
        }
    }

    /// The entries of a dictionary.
    pub fn entries(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(_, _, entries) => Some(entries),
            _ => None,
        }
    }
}

/// The four kinds of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MethodCall = 1,
    MethodReturn = 2,
    Error = 3,
    Signal = 4,
}

/// Header flag: the caller wants no reply.
pub const NO_REPLY_EXPECTED: u8 = 0x1;

/// A message: header fields, body and the file descriptors it carries.
#[derive(Debug)]
pub struct Message {
    pub kind: Kind,
    pub flags: u8,
    /// Set by the connection when sent; as received otherwise.
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub body: Vec<Value>,
    pub fds: Vec<OwnedFd>,
}

impl Message {
    fn new(kind: Kind) -> Message {
        Message {
            kind,
            flags: 0,
            serial: 0,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: None,
            body: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// A method call.
    pub fn call(destination: &str, path: &str, interface: &str, member: &str) -> Message {
        Message {
            destination: Some(destination.into()),
            path: Some(path.into()),
            interface: Some(interface.into()),
            member: Some(member.into()),
            ..Message::new(Kind::MethodCall)
        }
    }

    /// A signal.
    pub fn signal(path: &str, interface: &str, member: &str, body: Vec<Value>) -> Message {
        Message {
            path: Some(path.into()),
            interface: Some(interface.into()),
            member: Some(member.into()),
            body,
            ..Message::new(Kind::Signal)
        }
    }

    /// The reply to `call` carrying `body`.
    pub fn reply(call: &Message, body: Vec<Value>) -> Message {
        Message {
            reply_serial: Some(call.serial),
            destination: call.sender.clone(),
            body,
            ..Message::new(Kind::MethodReturn)
        }
    }

    /// The error reply `name` to `call`, with a message for people.
    pub fn error(call: &Message, name: &str, text: &str) -> Message {
        Message {
            reply_serial: Some(call.serial),
            destination: call.sender.clone(),
            error_name: Some(name.into()),
            body: vec![Value::str(text)],
            ..Message::new(Kind::Error)
        }
    }

    /// The body with arguments added.
    pub fn with_body(mut self, body: Vec<Value>) -> Message {
        self.body = body;
        self
    }

    /// The body's signature.
    pub fn signature(&self) -> String {
        let mut s = String::new();
        for v in &self.body {
            v.write_signature(&mut s);
        }
        s
    }

    /// The first body argument as text (an error's message).
    pub fn text(&self) -> &str {
        self.body.first().and_then(Value::as_str).unwrap_or("")
    }

    /// The message as bytes, numbered `serial`.
    pub fn encode(&self, serial: u32) -> Result<Vec<u8>, WireError> {
        let mut body = Writer::default();
        for v in &self.body {
            body.value(v, 0)?;
        }
        let signature = self.signature();
        if signature.len() > MAX_SIGNATURE {
            return bad("body signature longer than 255");
        }
        let mut fields = Vec::new();
        let mut field = |code: u8, value: Value| {
            fields.push(Value::Struct(vec![
                Value::Byte(code),
                Value::Variant(Box::new(value)),
            ]))
        };
        if let Some(p) = &self.path {
            field(1, Value::Path(p.clone()));
        }
        for (code, text) in [
            (2, &self.interface),
            (3, &self.member),
            (4, &self.error_name),
            (6, &self.destination),
            (7, &self.sender),
        ] {
            if let Some(t) = text {
                field(code, Value::str(t.clone()));
            }
        }
        if let Some(r) = self.reply_serial {
            field(5, Value::U32(r));
        }
        if !signature.is_empty() {
            field(8, Value::Sig(signature));
        }
        if !self.fds.is_empty() {
            field(
                9,
                Value::U32(u32::try_from(self.fds.len()).unwrap_or(u32::MAX)),
            );
        }
        let body_len = u32::try_from(body.buf.len()).map_err(|_| WireError::TooLarge {
            size: body.buf.len(),
            limit: PROTOCOL_MAX_MESSAGE,
        })?;
        let mut out = Writer::default();
        out.buf
            .extend_from_slice(&[b'l', self.kind as u8, self.flags, 1]);
        out.buf.extend_from_slice(&body_len.to_le_bytes());
        out.buf.extend_from_slice(&serial.to_le_bytes());
        out.value(&Value::Array("(yv)".into(), fields), 0)?;
        out.pad(8);
        out.buf.extend_from_slice(&body.buf);
        if out.buf.len() > PROTOCOL_MAX_MESSAGE {
            return Err(WireError::TooLarge {
                size: out.buf.len(),
                limit: PROTOCOL_MAX_MESSAGE,
            });
        }
        Ok(out.buf)
    }

    /// Reads one whole message (`frame_len` bytes) with the descriptors that came with it;
    /// descriptors beyond the ones the header names are returned unused.
    pub fn decode(frame: &[u8], fds: &mut Vec<OwnedFd>) -> Result<Message, WireError> {
        let (little, body_len, fields_len) = fixed_header(frame)?;
        let kind = match frame[1] {
            1 => Kind::MethodCall,
            2 => Kind::MethodReturn,
            3 => Kind::Error,
            4 => Kind::Signal,
            _ => return bad("unknown message type"),
        };
        if frame[3] != 1 {
            return bad("unknown protocol version");
        }
        let mut header = Reader::new(frame, little);
        header.pos = 4;
        header.u32()?; // body length, read by fixed_header
        let serial = header.u32()?;
        if serial == 0 {
            return bad("serial 0");
        }
        let fields = header.value(b"a(yv)", 0)?;
        let body_start = align_up(16 + fields_len, 8);
        // Checked: a body length near 4 GiB would wrap on 32-bit targets.
        if body_start.checked_add(body_len) != Some(frame.len()) {
            return bad("lengths disagree with the frame");
        }
        let mut message = Message::new(kind);
        message.flags = frame[2];
        message.serial = serial;
        let mut signature = String::new();
        let mut wanted_fds = 0u32;
        for field in fields.items().unwrap_or_default() {
            let [Value::Byte(code), value] = field.items().unwrap_or_default() else {
                return bad("header field");
            };
            let value = value.unwrap_variant();
            let text = || value.as_str().map(str::to_string);
            match (code, value) {
                (1, Value::Path(p)) => message.path = Some(p.clone()),
                (2, Value::Str(_)) => message.interface = text(),
                (3, Value::Str(_)) => message.member = text(),
                (4, Value::Str(_)) => message.error_name = text(),
                (5, Value::U32(n)) => message.reply_serial = Some(*n),
                (6, Value::Str(_)) => message.destination = text(),
                (7, Value::Str(_)) => message.sender = text(),
                (8, Value::Sig(s)) => signature = s.clone(),
                (9, Value::U32(n)) => wanted_fds = *n,
                (1..=9, _) => return bad("header field of the wrong type"),
                _ => {} // unknown fields are ignored, as the specification asks
            }
        }
        let required = match kind {
            Kind::MethodCall => message.path.is_some() && message.member.is_some(),
            Kind::Signal => {
                message.path.is_some() && message.member.is_some() && message.interface.is_some()
            }
            Kind::MethodReturn => message.reply_serial.is_some(),
            Kind::Error => message.reply_serial.is_some() && message.error_name.is_some(),
        };
        if !required {
            return bad("a required header field is missing");
        }
        let mut body = Reader::new(&frame[body_start..], little);
        let mut rest = signature.as_bytes();
        while !rest.is_empty() {
            let n = complete_type(rest)?;
            message.body.push(body.value(&rest[..n], 0)?);
            rest = &rest[n..];
        }
        if body.pos != body_len {
            return bad("body longer than its signature");
        }
        let wanted = wanted_fds as usize;
        if fds.len() < wanted {
            return Err(WireError::MissingFds {
                wanted: wanted_fds,
                got: fds.len(),
            });
        }
        message.fds = fds.drain(..wanted).collect();
        let fd_count = message.fds.len();
        if message.body.iter().any(|v| fd_index_out_of(v, fd_count)) {
            return bad("a file descriptor index beyond the ones sent");
        }
        Ok(message)
    }
}

fn fd_index_out_of(v: &Value, count: usize) -> bool {
    match v {
        Value::Fd(i) => *i as usize >= count,
        Value::Array(_, items) | Value::Struct(items) => {
            items.iter().any(|v| fd_index_out_of(v, count))
        }
        Value::Dict(_, _, entries) => entries
            .iter()
            .any(|(k, v)| fd_index_out_of(k, count) || fd_index_out_of(v, count)),
        Value::Variant(inner) => fd_index_out_of(inner, count),
        _ => false,
    }
}

/// Byte order, body length and header-fields length of the first 16 bytes.
fn fixed_header(buf: &[u8]) -> Result<(bool, usize, usize), WireError> {
    let Some(head) = buf.get(..16) else {
        return bad("shorter than the fixed header");
    };
    let little = match head[0] {
        b'l' => true,
        b'B' => false,
        _ => return bad("unknown byte order"),
    };
    let word = |at: usize| {
        let b = [head[at], head[at + 1], head[at + 2], head[at + 3]];
        (if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }) as usize
    };
    Ok((little, word(4), word(12)))
}

/// The length of the message starting `buf` once 16 bytes are there (`None` before);
/// an error when it is malformed or larger than `limit`.
pub fn frame_len(buf: &[u8], limit: usize) -> Result<Option<usize>, WireError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (_, body, fields) = fixed_header(buf)?;
    let size = align_up(16usize.saturating_add(fields), 8).saturating_add(body);
    let limit = limit.min(PROTOCOL_MAX_MESSAGE);
    if size > limit {
        return Err(WireError::TooLarge { size, limit });
    }
    Ok(Some(size))
}

fn align_up(n: usize, to: usize) -> usize {
    n.div_ceil(to).saturating_mul(to)
}

fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// The length of the first complete type in `sig`.
pub fn complete_type(sig: &[u8]) -> Result<usize, WireError> {
    fn one(sig: &[u8], depth: u32) -> Result<usize, WireError> {
        if depth > MAX_DEPTH {
            return bad("signature nested too deep");
        }
        match sig.first() {
            None => bad("incomplete signature"),
            Some(
                b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g'
                | b'h' | b'v',
            ) => Ok(1),
            Some(b'a') => {
                if sig.get(1) == Some(&b'{') {
                    let key = sig.get(2).copied().unwrap_or(0);
                    if !b"ybnqiuxtdsogh".contains(&key) {
                        return bad("dictionary key is not a basic type");
                    }
                    let value = one(&sig[3..], depth + 1)?;
                    if sig.get(3 + value) != Some(&b'}') {
                        return bad("dictionary entry of more than two types");
                    }
                    Ok(4 + value)
                } else {
                    Ok(1 + one(&sig[1..], depth + 1)?)
                }
            }
            Some(b'(') => {
                let mut at = 1;
                while sig.get(at) != Some(&b')') {
                    if at >= sig.len() {
                        return bad("unclosed structure");
                    }
                    at += one(&sig[at..], depth + 1)?;
                }
                if at == 1 {
                    return bad("empty structure");
                }
                Ok(at + 1)
            }
            Some(_) => bad("unknown type code"),
        }
    }
    if sig.len() > MAX_SIGNATURE {
        return bad("signature longer than 255");
    }
    one(sig, 0)
}

/// Splits a signature into its complete types.
pub fn split_signature(sig: &str) -> Result<Vec<&str>, WireError> {
    let mut out = Vec::new();
    let mut rest = sig;
    while !rest.is_empty() {
        let n = complete_type(rest.as_bytes())?;
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    Ok(out)
}

#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, to: usize) {
        let n = align_up(self.buf.len(), to);
        self.buf.resize(n, 0);
    }

    fn u32(&mut self, n: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    fn string(&mut self, s: &str) -> Result<(), WireError> {
        if s.contains('\0') {
            return bad("a string holds NUL");
        }
        let len = u32::try_from(s.len()).map_err(|_| WireError::Malformed("string too long"))?;
        self.u32(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn value(&mut self, v: &Value, depth: u32) -> Result<(), WireError> {
        if depth > MAX_DEPTH {
            return bad("value nested too deep");
        }
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I16(n) => {
                self.pad(2);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U16(n) => {
                self.pad(2);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::I32(n) => {
                self.pad(4);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U32(n) | Value::Fd(n) => self.u32(*n),
            Value::I64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::F64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::Str(s) | Value::Path(s) => self.string(s)?,
            Value::Sig(s) => {
                if s.len() > MAX_SIGNATURE {
                    return bad("signature longer than 255");
                }
                self.buf.push(s.len() as u8);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Bytes(bytes) => {
                self.u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
                self.buf.extend_from_slice(bytes);
            }
            Value::Array(element, items) => {
                let align = alignment(element.as_bytes().first().copied().unwrap_or(b'y'));
                self.array(align, |w| {
                    for item in items {
                        if item.signature() != *element {
                            return bad("array item of another type than the array's");
                        }
                        w.value(item, depth + 1)?;
                    }
                    Ok(())
                })?;
            }
            Value::Dict(_, _, entries) => self.array(8, |w| {
                for (key, value) in entries {
                    w.pad(8);
                    w.value(key, depth + 1)?;
                    w.value(value, depth + 1)?;
                }
                Ok(())
            })?,
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f, depth + 1)?;
                }
            }
            Value::Variant(inner) => {
                self.value(&Value::Sig(inner.signature()), depth + 1)?;
                self.value(inner, depth + 1)?;
            }
        }
        Ok(())
    }

    fn array(
        &mut self,
        align: usize,
        items: impl FnOnce(&mut Writer) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        self.u32(0);
        let len_at = self.buf.len() - 4;
        self.pad(align);
        let start = self.buf.len();
        items(self)?;
        let len = self.buf.len() - start;
        if len > MAX_ARRAY {
            return bad("array larger than 64 MiB");
        }
        self.buf[len_at..len_at + 4].copy_from_slice(&(len as u32).to_le_bytes());
        Ok(())
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    little: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], little: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            little,
        }
    }

    fn align(&mut self, to: usize) -> Result<(), WireError> {
        let end = align_up(self.pos, to);
        match self.buf.get(self.pos..end) {
            Some(padding) if padding.iter().all(|b| *b == 0) => {
                self.pos = end;
                Ok(())
            }
            Some(_) => bad("padding is not zero"),
            None => bad("truncated"),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(WireError::Malformed("length overflow"))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(WireError::Malformed("truncated"))?;
        self.pos = end;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.align(N)?;
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        if !self.little {
            out.reverse();
        }
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.fixed::<4>().map(u32::from_le_bytes)
    }

    fn text(&mut self, len: usize) -> Result<String, WireError> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] || bytes.contains(&0) {
            return bad("string not ended by NUL or holding one");
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::Malformed("string not UTF-8"))
    }

    fn signature(&mut self) -> Result<String, WireError> {
        let len = self.take(1)?[0] as usize;
        let sig = self.text(len)?;
        if !sig.is_empty() {
            split_signature(&sig)?;
        }
        Ok(sig)
    }

    /// Reads one value of the complete type `ty`.
    fn value(&mut self, ty: &[u8], depth: u32) -> Result<Value, WireError> {
        if depth > MAX_DEPTH {
            return bad("value nested too deep");
        }
        let Some(&code) = ty.first() else {
            return bad("empty type");
        };
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return bad("boolean other than 0 or 1"),
            },
            b'n' => Value::I16(i16::from_le_bytes(self.fixed()?)),
            b'q' => Value::U16(u16::from_le_bytes(self.fixed()?)),
            b'i' => Value::I32(i32::from_le_bytes(self.fixed()?)),
            b'u' => Value::U32(self.u32()?),
            b'h' => Value::Fd(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(self.fixed()?)),
            b't' => Value::U64(u64::from_le_bytes(self.fixed()?)),
            b'd' => Value::F64(f64::from_le_bytes(self.fixed()?)),
            b's' => {
                let len = self.u32()? as usize;
                Value::Str(self.text(len)?)
            }
            b'o' => {
                let len = self.u32()? as usize;
                let path = self.text(len)?;
                if !valid_path(&path) {
                    return bad("invalid object path");
                }
                Value::Path(path)
            }
            b'g' => Value::Sig(self.signature()?),
            b'v' => {
                let sig = self.signature()?;
                if sig.is_empty() || complete_type(sig.as_bytes())? != sig.len() {
                    return bad("variant of other than one complete type");
                }
                Value::Variant(Box::new(self.value(sig.as_bytes(), depth + 1)?))
            }
            b'(' => {
                self.align(8)?;
                let inner = &ty[1..ty.len() - 1];
                let mut fields = Vec::new();
                let mut at = 0;
                while at < inner.len() {
                    let n = complete_type(&inner[at..])?;
                    fields.push(self.value(&inner[at..at + n], depth + 1)?);
                    at += n;
                }
                Value::Struct(fields)
            }
            b'a' => {
                let len = self.u32()? as usize;
                if len > MAX_ARRAY {
                    return bad("array larger than 64 MiB");
                }
                let element = &ty[1..];
                self.align(alignment(element[0]))?;
                let end = self.pos.checked_add(len).filter(|e| *e <= self.buf.len());
                let Some(end) = end else {
                    return bad("array runs past the message");
                };
                if element == b"y" {
                    return Ok(Value::Bytes(self.take(len)?.to_vec()));
                }
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                if element[0] == b'{' {
                    let key_len = complete_type(&element[1..])?;
                    let key_ty = &element[1..1 + key_len];
                    let value_ty = &element[1 + key_len..element.len() - 1];
                    let mut entries = Vec::new();
                    while self.pos < end {
                        self.align(8)?;
                        let key = self.value(key_ty, depth + 1)?;
                        let value = self.value(value_ty, depth + 1)?;
                        entries.push((key, value));
                    }
                    if self.pos != end {
                        return bad("array contents overrun its length");
                    }
                    Value::Dict(text(key_ty), text(value_ty), entries)
                } else {
                    let mut items = Vec::new();
                    while self.pos < end {
                        items.push(self.value(element, depth + 1)?);
                    }
                    if self.pos != end {
                        return bad("array contents overrun its length");
                    }
                    Value::Array(text(element), items)
                }
            }
            _ => return bad("unknown type code"),
        })
    }
}

/// An object path: `/` or `/`-separated non-empty parts of `[A-Za-z0-9_]`.
pub fn valid_path(path: &str) -> bool {
    path == "/"
        || (path.starts_with('/')
            && path[1..].split('/').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_body() -> Vec<Value> {
        vec![
            Value::str("a"),
            Value::Bool(true),
            Value::U64(u64::MAX - 3),
            Value::Struct(vec![
                Value::str("active"),
                Value::strings(&["DevicePasswordEnabled"]),
            ]),
            Value::Dict(
                "s".into(),
                "v".into(),
                vec![
                    (
                        Value::str("MaxInactivityTimeDeviceLock"),
                        Value::Variant(Box::new(Value::U32(900))),
                    ),
                    (Value::str("x"), Value::Variant(Box::new(Value::str("y")))),
                ],
            ),
            Value::Array("(sssbu)".into(), vec![]),
            Value::Bytes(vec![1, 2, 3]),
            Value::Byte(7),
            Value::I16(-2),
            Value::F64(1.5),
        ]
    }

    fn round_trip(message: &Message) -> Message {
        let bytes = message.encode(7).unwrap();
        assert_eq!(frame_len(&bytes, usize::MAX).unwrap(), Some(bytes.len()));
        Message::decode(&bytes, &mut Vec::new()).unwrap()
    }

    #[test]
    fn a_message_survives_encoding_and_decoding() {
        let call = Message::call(
            "org.easync",
            "/org/easync/account0",
            "org.easync.Account1",
            "Enroll",
        )
        .with_body(sample_body());
        let back = round_trip(&call);
        assert_eq!(back.kind, Kind::MethodCall);
        assert_eq!(back.serial, 7);
        assert_eq!(back.destination.as_deref(), Some("org.easync"));
        assert_eq!(back.path.as_deref(), Some("/org/easync/account0"));
        assert_eq!(back.member.as_deref(), Some("Enroll"));
        assert_eq!(back.body, sample_body());
        assert_eq!(back.signature(), "sbt(sas)a{sv}a(sssbu)ayynd");
    }

    #[test]
    fn big_endian_messages_are_read() {
        // A call to Ping with one u32 body argument 0x01020304, written big-endian by hand.
        let mut m = vec![b'B', 1, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9];
        let mut fields = Vec::new();
        let mut field = |code: u8, sig: u8, text: &str| {
            while fields.len() % 8 != 0 {
                fields.push(0);
            }
            fields.extend_from_slice(&[code, 1, sig, 0]);
            if sig == b'g' {
                fields.push(text.len() as u8);
            } else {
                fields.extend_from_slice(&(text.len() as u32).to_be_bytes());
            }
            fields.extend_from_slice(text.as_bytes());
            fields.push(0);
        };
        field(1, b'o', "/a");
        field(3, b's', "Ping");
        field(8, b'g', "u");
        m.extend_from_slice(&(fields.len() as u32).to_be_bytes());
        m.extend_from_slice(&fields);
        while m.len() % 8 != 0 {
            m.push(0);
        }
        m.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        let back = Message::decode(&m, &mut Vec::new()).unwrap();
        assert_eq!(back.serial, 9);
        assert_eq!(back.member.as_deref(), Some("Ping"));
        assert_eq!(back.body, vec![Value::U32(0x0102_0304)]);
    }

    #[test]
    fn replies_and_errors_point_at_their_call() {
        let mut call = Message::call("d", "/p", "i.f", "M");
        call.serial = 41;
        call.sender = Some(":1.5".into());
        let reply = round_trip(&Message::reply(&call, vec![Value::U32(3)]));
        assert_eq!(
            (reply.kind, reply.reply_serial),
            (Kind::MethodReturn, Some(41))
        );
        assert_eq!(reply.destination.as_deref(), Some(":1.5"));
        let error = round_trip(&Message::error(
            &call,
            "org.freedesktop.DBus.Error.Failed",
            "no",
        ));
        assert_eq!(
            error.error_name.as_deref(),
            Some("org.freedesktop.DBus.Error.Failed")
        );
        assert_eq!(error.text(), "no");
    }

    #[test]
    fn signatures_are_checked() {
        assert_eq!(
            split_signature("sa{sv}(sas)u").unwrap(),
            ["s", "a{sv}", "(sas)", "u"]
        );
        for bad in ["a", "(", "()", "a{vs}", "a{sss}", "z", "(s", "a{s}"] {
            assert!(split_signature(bad).is_err(), "{bad} accepted");
        }
        let deep = format!("{}{}", "(".repeat(70), ")".repeat(70));
        assert!(split_signature(&deep).is_err());
    }

    #[test]
    fn a_message_larger_than_the_limit_is_refused_from_its_header() {
        let big = Message::signal("/p", "i.f", "S", vec![Value::Bytes(vec![0; 5000])]);
        let bytes = big.encode(1).unwrap();
        assert!(matches!(
            frame_len(&bytes, 4096),
            Err(WireError::TooLarge { .. })
        ));
        assert_eq!(frame_len(&bytes[..15], 4096).unwrap(), None);
    }

    #[test]
    fn damaged_messages_are_errors_not_panics() {
        let good = Message::call("d", "/p", "i.f", "M")
            .with_body(sample_body())
            .encode(3)
            .unwrap();
        // Every truncation and every single-byte change decodes to a value or an error.
        for cut in 0..good.len() {
            let _ = Message::decode(&good[..cut], &mut Vec::new());
        }
        let mut seed = 0x2545_f491_u32;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let mut damaged = good.clone();
            let at = seed as usize % damaged.len();
            damaged[at] = (seed >> 8) as u8;
            if let Ok(Some(n)) = frame_len(&damaged, 1 << 20) {
                if n <= damaged.len() {
                    let _ = Message::decode(&damaged[..n], &mut Vec::new());
                }
            }
        }
    }

    #[test]
    fn a_body_length_near_4_gib_is_an_error_on_every_target() {
        // A frame cut inside the padding after its header fields, claiming a body of
        // 4 GiB less that padding: on 32-bit targets the two lengths wrapped to the frame's
        // length and the body was sliced from beyond its end (a panic).
        let (frame, short) = (1..8)
            .map(|n| {
                Message::call("d", "/p", "i.f", &"M".repeat(n))
                    .encode(3)
                    .unwrap()
            })
            .find_map(|bytes| {
                let fields = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
                let short = align_up(16 + fields, 8) - (16 + fields);
                (short > 0).then(|| (bytes[..16 + fields].to_vec(), short))
            })
            .expect("a header not ending on an 8-byte boundary");
        let mut frame = frame;
        let body_len = (1u64 << 32) - short as u64;
        frame[4..8].copy_from_slice(&(body_len as u32).to_le_bytes());
        assert!(matches!(
            Message::decode(&frame, &mut Vec::new()),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn a_file_descriptor_index_must_name_a_sent_descriptor() {
        let call = Message::call("d", "/p", "i.f", "SendMail").with_body(vec![Value::Fd(0)]);
        let bytes = call.encode(2).unwrap();
        // The header does not announce a descriptor, so index 0 names none.
        assert!(Message::decode(&bytes, &mut Vec::new()).is_err());
    }

    #[test]
    fn object_paths_are_checked() {
        assert!(valid_path("/") && valid_path("/org/easync/account0"));
        for p in ["", "org", "/org/", "//", "/a-b", "/a/../b"] {
            assert!(!valid_path(p), "{p}");
        }
    }
}
