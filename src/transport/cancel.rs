//! Cancelling the requests a [`Client`](super::Client) has in flight from another thread.
//!
//! A parked Ping is a blocking read that may last an hour; the daemon must end it within a
//! second when the user asks for a sync or a local change is waiting. Every TCP connection
//! the client's agent makes is registered here (weakly: a dropped connection simply
//! disappears), and [`Canceller::cancel`] shuts all of them down, which wakes any read or
//! write blocked on them at once.
//!
//! Semantics: a cancel affects the requests in flight when it is called — connecting,
//! sending, waiting for the answer or reading the response body — and they fail with
//! [`Error::Cancelled`](super::Error::Cancelled). Requests started afterwards work normally;
//! there is nothing to reset. Each request remembers the cancel generation it started in;
//! a connection a request finishes opening after a cancel is refused, so a request that was
//! connecting (a TCP connect itself cannot be interrupted; it is bounded by the connect
//! timeout) still ends as cancelled instead of going on.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ureq::unversioned::transport::{
    ConnectionDetails, Connector, ShutdownHandle, TcpConnector, Transport,
};

/// A handle that cancels the requests in flight on one [`Client`](super::Client).
///
/// Cheap to clone; may be used from any thread. Cancelling with nothing in flight does
/// nothing (it only closes idle pooled connections, which are reopened when needed).
#[derive(Clone, Debug)]
pub struct Canceller {
    registry: Arc<Registry>,
}

impl Canceller {
    pub(crate) fn new(registry: Arc<Registry>) -> Canceller {
        Canceller { registry }
    }

    /// Makes every request in flight on the client fail promptly with
    /// [`Error::Cancelled`](super::Error::Cancelled).
    pub fn cancel(&self) {
        self.registry.cancel();
    }
}

/// The connections of one client and the cancel generation.
#[derive(Default)]
pub(crate) struct Registry {
    /// Bumped by every cancel; read without the lock by the I/O paths.
    generation: AtomicU64,
    /// Registered sockets; the lock also orders registration against a cancel, so that a
    /// connection cannot slip in unseen while a cancel runs.
    sockets: Mutex<Vec<Weak<dyn ShutdownHandle>>>,
}

impl core::fmt::Debug for Registry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Registry")
            .field("generation", &self.generation.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The request running on this thread: (its registry's address, the generation it
    /// started in). ureq connects on the calling thread, so the connector finds it here.
    static CURRENT_REQUEST: Cell<Option<(usize, u64)>> = const { Cell::new(None) };
}

/// Marks an I/O error that a cancel produced.
#[derive(Debug)]
pub(crate) struct CancelledIo;

impl core::fmt::Display for CancelledIo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the request was cancelled")
    }
}

impl std::error::Error for CancelledIo {}

pub(crate) fn cancelled_io() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, CancelledIo)
}

impl Registry {
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whether a cancel happened since `generation` was read.
    pub(crate) fn cancelled_since(&self, generation: u64) -> bool {
        self.generation() != generation
    }

    fn cancel(&self) {
        let sockets = {
            let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
            self.generation.fetch_add(1, Ordering::SeqCst);
            core::mem::take(&mut *sockets)
        };
        let live: Vec<_> = sockets.iter().filter_map(Weak::upgrade).collect();
        log::debug!("cancelling: shutting down {} connection(s)", live.len());
        for socket in live {
            socket.shutdown();
        }
    }

    /// Registers a new connection of a request that started in `request_generation`;
    /// refuses it when that request was cancelled meanwhile.
    fn register(
        &self,
        socket: Weak<dyn ShutdownHandle>,
        request_generation: Option<u64>,
    ) -> io::Result<()> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if request_generation.is_some_and(|g| g != self.generation()) {
            return Err(cancelled_io());
        }
        sockets.retain(|s| s.strong_count() > 0);
        sockets.push(socket);
        Ok(())
    }

    /// Marks the calling thread as running a request of this registry until the returned
    /// scope is dropped; returns the scope and the generation the request started in.
    pub(crate) fn begin_request(self: &Arc<Self>) -> (RequestScope, u64) {
        let generation = self.generation();
        let previous = CURRENT_REQUEST.with(|c| c.replace(Some((self.key(), generation))));
        (RequestScope { previous }, generation)
    }

    fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    fn current_request_generation(self: &Arc<Self>) -> Option<u64> {
        CURRENT_REQUEST
            .with(Cell::get)
            .filter(|(key, _)| *key == self.key())
            .map(|(_, generation)| generation)
    }
}

/// Restores the thread's previous request marker when dropped.
pub(crate) struct RequestScope {
    previous: Option<(usize, u64)>,
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        CURRENT_REQUEST.with(|c| c.set(self.previous));
    }
}

/// ureq's TCP connector, with every socket it opens registered in a [`Registry`] (besides
/// the agent's own pool).
#[derive(Debug)]
pub(crate) struct CancellableTcpConnector {
    pub registry: Arc<Registry>,
}

impl<In: Transport> Connector<In> for CancellableTcpConnector {
    type Out = <TcpConnector as Connector<In>>::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if chained.is_some() {
            return TcpConnector::default().connect(details, chained);
        }
        let registry = self.registry.clone();
        let request_generation = registry.current_request_generation();
        let pool_register = details.register_shutdown.clone();
        let ours = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: Arc::new(move |socket: Weak<dyn ShutdownHandle>| {
                registry.register(socket.clone(), request_generation)?;
                pool_register(socket)
            }),
        };
        TcpConnector::default().connect(&ours, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl ShutdownHandle for Flag {
        fn shutdown(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn weak(flag: &Arc<Flag>) -> Weak<dyn ShutdownHandle> {
        Arc::downgrade(flag) as Weak<dyn ShutdownHandle>
    }

    #[test]
    fn cancel_shuts_down_live_sockets_and_forgets_them() {
        let registry = Arc::new(Registry::default());
        let (a, b) = (Arc::new(Flag::default()), Arc::new(Flag::default()));
        registry.register(weak(&a), None).unwrap();
        registry.register(weak(&b), Some(0)).unwrap();
        drop(b);
        Canceller::new(registry.clone()).cancel();
        assert!(a.0.load(Ordering::SeqCst));
        assert!(registry.sockets.lock().unwrap().is_empty());
        assert!(registry.cancelled_since(0));
        assert!(!registry.cancelled_since(1));
    }

    #[test]
    fn a_connection_of_a_cancelled_request_is_refused_a_new_one_accepted() {
        let registry = Arc::new(Registry::default());
        let (scope, generation) = registry.begin_request();
        assert_eq!(registry.current_request_generation(), Some(generation));
        Canceller::new(registry.clone()).cancel();
        let late = Arc::new(Flag::default());
        let err = registry
            .register(weak(&late), Some(generation))
            .unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<CancelledIo>()));
        drop(scope);
        assert_eq!(registry.current_request_generation(), None);
        let (_scope, generation) = registry.begin_request();
        registry.register(weak(&late), Some(generation)).unwrap();
        assert_eq!(registry.sockets.lock().unwrap().len(), 1);
    }

    #[test]
    fn another_clients_request_on_the_thread_is_not_seen() {
        let (one, two) = (Arc::new(Registry::default()), Arc::new(Registry::default()));
        let (_scope, _) = one.begin_request();
        assert_eq!(two.current_request_generation(), None);
        assert_eq!(one.current_request_generation(), Some(0));
    }
}
