//! A D-Bus connection on tokio: finds the bus, authenticates (SASL EXTERNAL, with file
//! descriptor passing), and moves [`Message`]s both ways. One task reads: replies go to
//! the call that waits for them; method calls and signals go to [`Incoming`], a bounded
//! queue (when its reader falls behind, signals are dropped and calls answered with
//! `LimitsExceeded`, so a noisy bus cannot grow the daemon's memory).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::Bus;
use super::wire::{self, Kind, Message, NO_REPLY_EXPECTED, Value, WireError};

/// The bus daemon's own name, path and interface.
pub const DBUS_NAME: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";
/// Where the system bus listens when `DBUS_SYSTEM_BUS_ADDRESS` does not say.
const SYSTEM_BUS_DEFAULT: &str = "unix:path=/run/dbus/system_bus_socket";
/// Calls and signals waiting for the owner of [`Incoming`].
const INCOMING_QUEUE: usize = 256;
/// File descriptors one read may bring.
const MAX_FDS_PER_READ: usize = 16;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0} is not set")]
    NoAddress(&'static str),
    #[error("cannot use the bus address {0:?}: only unix:path= and unix:abstract= are supported")]
    Address(String),
    #[error("cannot connect to {address}: {source}")]
    Io { address: String, source: io::Error },
    #[error("the bus refused to authenticate this process ({0})")]
    Auth(String),
    #[error("the bus did not welcome this connection: {0}")]
    Hello(#[from] CallError),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer answered with an error.
    #[error("{name}: {message}")]
    Method { name: String, message: String },
    #[error("the bus connection is closed")]
    Closed,
    #[error("cannot send on the bus: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("unexpected reply: {0}")]
    Reply(String),
}

impl CallError {
    /// The D-Bus error name, when the peer answered with an error.
    pub fn error_name(&self) -> Option<&str> {
        match self {
            CallError::Method { name, .. } => Some(name),
            _ => None,
        }
    }
}

struct Shared {
    stream: UnixStream,
    send_lock: tokio::sync::Mutex<()>,
    next_serial: AtomicU32,
    pending: Mutex<HashMap<u32, oneshot::Sender<Message>>>,
    closed: AtomicBool,
    fd_passing: bool,
}

/// A connection to a bus; cheap to clone.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    unique_name: Arc<str>,
}

/// Method calls and signals sent to this connection, in arrival order.
pub struct Incoming {
    rx: mpsc::Receiver<Message>,
}

impl Incoming {
    /// The next call or signal; `None` once the connection is closed.
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

/// The address of `bus` from the environment (or the system bus's usual socket).
pub fn bus_address(bus: Bus) -> Result<String, ConnectError> {
    match bus {
        Bus::System => Ok(std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| SYSTEM_BUS_DEFAULT.to_string())),
        Bus::Session => std::env::var("DBUS_SESSION_BUS_ADDRESS")
            .map_err(|_| ConnectError::NoAddress("DBUS_SESSION_BUS_ADDRESS")),
    }
}

/// `%xx` escapes of a D-Bus address value.
fn unescape(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Connects to the first usable entry of a `;`-separated address list.
fn connect_socket(addresses: &str) -> Result<StdUnixStream, ConnectError> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let mut last = ConnectError::Address(addresses.to_string());
    for address in addresses.split(';').filter(|a| !a.is_empty()) {
        let Some(params) = address.strip_prefix("unix:") else {
            last = ConnectError::Address(address.to_string());
            continue;
        };
        let mut target = None;
        for kv in params.split(',') {
            match kv.split_once('=') {
                Some(("path", v)) => target = unescape(v).map(|p| (false, p)),
                Some(("abstract", v)) => target = unescape(v).map(|p| (true, p)),
                _ => {}
            }
        }
        let Some((is_abstract, name)) = target else {
            last = ConnectError::Address(address.to_string());
            continue;
        };
        let connected = if is_abstract {
            std::os::unix::net::SocketAddr::from_abstract_name(&name)
                .and_then(|a| StdUnixStream::connect_addr(&a))
        } else {
            StdUnixStream::connect(std::ffi::OsStr::from_bytes(&name))
        };
        match connected {
            Ok(s) => return Ok(s),
            Err(source) => {
                last = ConnectError::Io {
                    address: address.to_string(),
                    source,
                }
            }
        }
    }
    Err(last)
}

/// One line of the authentication conversation (bounded).
fn auth_line(stream: &mut StdUnixStream) -> Result<String, ConnectError> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() > 512 {
            return Err(ConnectError::Auth("overlong answer".into()));
        }
        match stream.read(&mut byte) {
            Ok(0) => return Err(ConnectError::Auth("the bus closed the connection".into())),
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(ConnectError::Auth(e.to_string())),
        }
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// SASL EXTERNAL as our uid, asking for file descriptor passing; whether it was agreed.
fn authenticate(stream: &mut StdUnixStream) -> Result<bool, ConnectError> {
    let uid = nix::unistd::geteuid().as_raw().to_string();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    let io = |e: io::Error| ConnectError::Auth(e.to_string());
    stream
        .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
        .map_err(io)?;
    let answer = auth_line(stream)?;
    if !answer.starts_with("OK ") {
        return Err(ConnectError::Auth(answer));
    }
    stream.write_all(b"NEGOTIATE_UNIX_FD\r\n").map_err(io)?;
    let fd_passing = auth_line(stream)? == "AGREE_UNIX_FD";
    stream.write_all(b"BEGIN\r\n").map_err(io)?;
    Ok(fd_passing)
}

impl Connection {
    /// Connects to `bus` and says Hello. Incoming messages larger than `inbound_limit`
    /// bytes end the connection (a peer that sends them is broken or hostile).
    pub async fn connect(
        bus: Bus,
        inbound_limit: usize,
    ) -> Result<(Connection, Incoming), ConnectError> {
        Connection::connect_to(&bus_address(bus)?, inbound_limit).await
    }

    /// Connects to the bus at `address` (a D-Bus address list) and says Hello.
    pub async fn connect_to(
        address: &str,
        inbound_limit: usize,
    ) -> Result<(Connection, Incoming), ConnectError> {
        let address = address.to_string();
        let (stream, fd_passing) = tokio::task::spawn_blocking(move || {
            let mut stream = connect_socket(&address)?;
            let io = |source| ConnectError::Io {
                address: address.clone(),
                source,
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(io)?;
            let fd_passing = authenticate(&mut stream)?;
            stream.set_read_timeout(None).map_err(io)?;
            stream.set_nonblocking(true).map_err(io)?;
            let stream = UnixStream::from_std(stream).map_err(io)?;
            Ok::<_, ConnectError>((stream, fd_passing))
        })
        .await
        .map_err(|e| ConnectError::Auth(format!("internal error: {e}")))??;
        let shared = Arc::new(Shared {
            stream,
            send_lock: tokio::sync::Mutex::new(()),
            next_serial: AtomicU32::new(1),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            fd_passing,
        });
        let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
        tokio::spawn(read_loop(shared.clone(), tx, inbound_limit));
        let mut connection = Connection {
            shared,
            unique_name: Arc::from(""),
        };
        let hello = connection
            .call(Message::call(DBUS_NAME, DBUS_PATH, DBUS_NAME, "Hello"))
            .await?;
        match hello.body.first().and_then(Value::as_str) {
            Some(name) => connection.unique_name = Arc::from(name),
            None => return Err(CallError::Reply("Hello without a name".into()).into()),
        }
        Ok((connection, Incoming { rx }))
    }

    /// The name the bus gave this connection (":1.42").
    pub fn unique_name(&self) -> &str {
        &self.unique_name
    }

    /// Sends `message` (a signal, a reply, or a call whose reply is not wanted).
    pub async fn send(&self, message: Message) -> Result<u32, CallError> {
        self.transmit(message, None).await
    }

    /// Calls a method and waits for its reply; an error reply is [`CallError::Method`].
    pub async fn call(&self, mut message: Message) -> Result<Message, CallError> {
        message.flags &= !NO_REPLY_EXPECTED;
        let (tx, rx) = oneshot::channel();
        let serial = self.transmit(message, Some(tx)).await?;
        let reply = rx.await;
        lock(&self.shared.pending).remove(&serial);
        let reply = reply.map_err(|_| CallError::Closed)?;
        match reply.kind {
            Kind::Error => Err(CallError::Method {
                name: reply.error_name.clone().unwrap_or_default(),
                message: reply.text().to_string(),
            }),
            _ => Ok(reply),
        }
    }

    /// Numbers `message`, registers where its reply goes, and writes it whole (file
    /// descriptors with its first byte, as the specification asks).
    async fn transmit(
        &self,
        mut message: Message,
        reply_to: Option<oneshot::Sender<Message>>,
    ) -> Result<u32, CallError> {
        if !message.fds.is_empty() && !self.shared.fd_passing {
            return Err(CallError::Reply(
                "the bus does not pass file descriptors".into(),
            ));
        }
        let _turn = self.shared.send_lock.lock().await;
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(CallError::Closed);
        }
        let serial = match self.shared.next_serial.fetch_add(1, Ordering::Relaxed) {
            0 => self.shared.next_serial.fetch_add(1, Ordering::Relaxed),
            n => n,
        };
        message.serial = serial;
        let bytes = message.encode(serial)?;
        if let Some(slot) = reply_to {
            // Checked under the lock the reader takes to close: a slot is either seen by
            // its clean-up or refused here, never left waiting forever.
            let mut pending = lock(&self.shared.pending);
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(CallError::Closed);
            }
            pending.insert(serial, slot);
        }
        let written = self.write_all(&bytes, &message.fds).await;
        if written.is_err() {
            lock(&self.shared.pending).remove(&serial);
        }
        written?;
        Ok(serial)
    }

    async fn write_all(&self, bytes: &[u8], fds: &[OwnedFd]) -> Result<(), CallError> {
        let fds: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let stream = &self.shared.stream;
        let mut sent = 0;
        while sent < bytes.len() {
            stream.writable().await?;
            let attach = if sent == 0 { fds.as_slice() } else { &[] };
            let result = stream.try_io(Interest::WRITABLE, || {
                let rights = [ControlMessage::ScmRights(attach)];
                let cmsgs: &[ControlMessage] = if attach.is_empty() { &[] } else { &rights };
                sendmsg::<()>(
                    stream.as_raw_fd(),
                    &[IoSlice::new(&bytes[sent..])],
                    cmsgs,
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(io::Error::from)
            });
            match result {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Asks the bus for `name`, refusing to queue behind another owner; an error when
    /// someone else has it.
    pub async fn request_name(&self, name: &str) -> Result<(), CallError> {
        const DO_NOT_QUEUE: u32 = 4;
        let reply = self
            .call(
                Message::call(DBUS_NAME, DBUS_PATH, DBUS_NAME, "RequestName")
                    .with_body(vec![Value::str(name), Value::U32(DO_NOT_QUEUE)]),
            )
            .await?;
        match reply.body.first() {
            // 1: now the primary owner; 4: was already.
            Some(Value::U32(1 | 4)) => Ok(()),
            Some(Value::U32(3)) => Err(CallError::Reply(format!(
                "{name} is owned by another connection"
            ))),
            other => Err(CallError::Reply(format!("RequestName answered {other:?}"))),
        }
    }

    /// Asks the bus to route messages matching `rule` here.
    pub async fn add_match(&self, rule: &str) -> Result<(), CallError> {
        self.call(
            Message::call(DBUS_NAME, DBUS_PATH, DBUS_NAME, "AddMatch")
                .with_body(vec![Value::str(rule)]),
        )
        .await
        .map(|_| ())
    }
}

/// Reads messages until the connection ends; replies to their callers, the rest to
/// `incoming`. Ends the connection on malformed or oversized input.
async fn read_loop(shared: Arc<Shared>, incoming: mpsc::Sender<Message>, limit: usize) {
    let why = match read_messages(&shared, &incoming, limit).await {
        Ok(()) => "closed by the bus".to_string(),
        Err(e) => e.to_string(),
    };
    log::debug!("D-Bus connection ended: {why}");
    let mut pending = lock(&shared.pending);
    shared.closed.store(true, Ordering::Release);
    // Waiting callers see Closed as their reply slots drop.
    pending.clear();
}

async fn read_messages(
    shared: &Arc<Shared>,
    incoming: &mpsc::Sender<Message>,
    limit: usize,
) -> Result<(), CallError> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut fds: VecDeque<OwnedFd> = VecDeque::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Whole messages first.
        while let Some(len) = wire::frame_len(&buffer, limit)? {
            if buffer.len() < len {
                break;
            }
            let mut taken: Vec<OwnedFd> = fds.drain(..).collect();
            let message = Message::decode(&buffer[..len], &mut taken)?;
            // Descriptors beyond this message's belong to the next one.
            fds.extend(taken);
            buffer.drain(..len);
            deliver(shared, incoming, message);
        }
        if fds.len() > 4 * MAX_FDS_PER_READ {
            return Err(CallError::Reply(
                "file descriptors without a message".into(),
            ));
        }
        shared.stream.readable().await?;
        let result = shared.stream.try_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(&mut chunk)];
            let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_READ]);
            let msg = recvmsg::<()>(
                shared.stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            let mut received = Vec::new();
            for cmsg in msg.cmsgs().map_err(io::Error::from)? {
                if let ControlMessageOwned::ScmRights(raw) = cmsg {
                    // SAFETY: the kernel just installed these descriptors in this process
                    // for us alone; nothing else owns them.
                    received.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
                return Err(io::Error::other("file descriptors were cut off"));
            }
            Ok((msg.bytes, received))
        });
        match result {
            Ok((0, _)) => return Ok(()),
            Ok((n, received)) => {
                buffer.extend_from_slice(&chunk[..n]);
                fds.extend(received);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn deliver(shared: &Arc<Shared>, incoming: &mpsc::Sender<Message>, message: Message) {
    match message.kind {
        Kind::MethodReturn | Kind::Error => {
            let slot = message
                .reply_serial
                .and_then(|s| lock(&shared.pending).remove(&s));
            if let Some(slot) = slot {
                let _ = slot.send(message);
            }
        }
        Kind::Signal => {
            if incoming.try_send(message).is_err() {
                log::debug!("D-Bus: a signal dropped (the queue is full)");
            }
        }
        Kind::MethodCall => {
            if let Err(mpsc::error::TrySendError::Full(call)) = incoming.try_send(message) {
                if call.flags & NO_REPLY_EXPECTED == 0 {
                    let busy = Message::error(
                        &call,
                        "org.freedesktop.DBus.Error.LimitsExceeded",
                        "easyncd is busy: try again",
                    );
                    let connection = Connection {
                        shared: shared.clone(),
                        unique_name: Arc::from(""),
                    };
                    tokio::spawn(async move {
                        let _ = connection.send(busy).await;
                    });
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
