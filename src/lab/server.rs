//! Listeners and connections: an accept thread per listener, a thread per connection, TLS
//! via rustls for the HTTPS listener, and the [`Handle`] that tests and the `easync-lab`
//! binary hold (URLs, admin methods, shutdown).

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::http::{self, Framing, ReadError, Response};
use super::state::{Fault, NewItem, Shared, State};
use super::{Config, EAS_PATH, Lab, admin, autodiscover, oauth, protocol, seed, tls};

/// Starts labs.
pub struct Server;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Eas,
    Admin,
}

/// A running lab. Dropping it shuts it down.
pub struct Handle {
    lab: Arc<Lab>,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    connections: Connections,
}

/// Open connections (a clone of each socket, by number), so shutdown can close them.
type Connections = Arc<Mutex<Vec<(u64, TcpStream)>>>;

/// Connection numbers, unique across listeners (they share one list).
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

impl Server {
    /// Binds the configured listeners, seeds the mailbox and starts serving.
    pub fn start(config: Config) -> io::Result<Handle> {
        if config.users.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the lab needs at least one user",
            ));
        }
        let authority = tls::Authority::generate(&config.tls_names, config.server_cert)?;
        if let Some(path) = &config.cert_out {
            std::fs::write(path, authority.ca_pem()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("writing the CA certificate to {}: {e}", path.display()),
                )
            })?;
        }
        let tls_config = match config.https {
            Some(_) => Some(authority.server_config(config.require_client_cert)?),
            None => None,
        };
        let started_unix = super::unix_now();
        let mut state = State::new(config.seed, &config.users[0].0);
        seed::populate(&mut state, config.items, started_unix);
        state.policy.settings = config.policy.clone();
        state.policy.require_full_compliance = config.require_full_compliance;
        state.folder_id_prefix = config.folder_id_prefix.clone();
        let bind = |a: Option<SocketAddr>| -> io::Result<Option<TcpListener>> {
            a.map(|a| {
                TcpListener::bind(a)
                    .map_err(|e| io::Error::new(e.kind(), format!("binding {a}: {e}")))
            })
            .transpose()
        };
        let (http_l, https_l, admin_l) =
            (bind(config.http)?, bind(config.https)?, bind(config.admin)?);
        let https_addr = match &https_l {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let lab = Arc::new(Lab {
            config,
            oauth: Default::default(),
            https_addr,
            shared: Shared::new(state),
            authority,
            started: Instant::now(),
            started_unix,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let mut handle = Handle {
            lab: lab.clone(),
            http: None,
            https: None,
            admin: None,
            stop: stop.clone(),
            threads: Vec::new(),
            connections: connections.clone(),
        };
        for (listener, kind, tls) in [
            (http_l, Kind::Eas, None),
            (https_l, Kind::Eas, tls_config),
            (admin_l, Kind::Admin, None),
        ] {
            let Some(listener) = listener else { continue };
            let addr = listener.local_addr()?;
            match (kind, tls.is_some()) {
                (Kind::Admin, _) => handle.admin = Some(addr),
                (Kind::Eas, true) => handle.https = Some(addr),
                (Kind::Eas, false) => handle.http = Some(addr),
            }
            let (lab, stop, connections) = (lab.clone(), stop.clone(), connections.clone());
            handle.threads.push(std::thread::spawn(move || {
                accept_loop(listener, lab, kind, tls, stop, connections)
            }));
        }
        Ok(handle)
    }
}

fn accept_loop(
    listener: TcpListener,
    lab: Arc<Lab>,
    kind: Kind,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: Arc<AtomicBool>,
    connections: Connections,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, clone));
        let (lab, tls, connections) = (lab.clone(), tls.clone(), connections.clone());
        std::thread::spawn(move || {
            match tls {
                Some(config) => {
                    if let Ok(conn) = rustls::ServerConnection::new(config) {
                        serve(&lab, rustls::StreamOwned::new(conn, stream), true, kind);
                    }
                }
                None => serve(&lab, stream, false, kind),
            }
            // Close for real: the clone kept for shutdown would hold the socket open.
            let mut list = connections.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(pos) = list.iter().position(|(i, _)| *i == id) {
                let (_, s) = list.swap_remove(pos);
                let _ = s.shutdown(Shutdown::Both);
            }
        });
    }
}

fn serve<S: Read + Write>(lab: &Lab, stream: S, secure: bool, kind: Kind) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut req = match http::read_request(&mut reader, lab.config.max_body) {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(ReadError::Io(e)) => {
                log::debug!("lab connection ended: {e}");
                return;
            }
            Err(ReadError::Bad(m)) => {
                let _ = http::write_response(
                    reader.get_mut(),
                    Response::text(400, m),
                    false,
                    false,
                    Framing::Full,
                );
                return;
            }
            Err(ReadError::TooLarge) => {
                let r = Response::text(
                    413,
                    format!("the request body is over {} bytes", lab.config.max_body),
                );
                let _ = http::write_response(reader.get_mut(), r, false, false, Framing::Full);
                return;
            }
        };
        req.secure = secure;
        let (resp, framing) = match kind {
            Kind::Eas => route(lab, &req),
            Kind::Admin => (
                oauth::admin(lab, &req).unwrap_or_else(|| admin::handle(lab, &req)),
                Framing::Full,
            ),
        };
        let keep_alive = req.keep_alive() && framing == Framing::Full;
        let gzip = kind == Kind::Eas && lab.config.gzip && req.accepts_gzip();
        let stall = match framing {
            Framing::Stall(d) => Some(d),
            _ => None,
        };
        if http::write_response(reader.get_mut(), resp, gzip, keep_alive, framing).is_err() {
            return;
        }
        if let Some(d) = stall {
            stay_silent(lab, d);
        }
        if !keep_alive {
            return;
        }
    }
}

/// Holds a stalled connection open and silent for `d`, or until the lab shuts down.
fn stay_silent(lab: &Lab, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !lab.shared.lock().shutdown {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn route(lab: &Lab, req: &http::Request) -> (Response, Framing) {
    let path = req.path.as_str();
    if path.eq_ignore_ascii_case(EAS_PATH) || path.eq_ignore_ascii_case(&lab.config.alias_path) {
        return protocol::handle(lab, req);
    }
    if autodiscover::serves(path) {
        return (autodiscover::handle(lab, req), Framing::Full);
    }
    if let Some(resp) = oauth::handle(lab, req) {
        return (resp, Framing::Full);
    }
    if path == "/ca.pem" && req.method == "GET" {
        return (
            Response::new(200).with_body(
                "application/x-pem-file",
                lab.authority.ca_pem().as_bytes().to_vec(),
            ),
            Framing::Full,
        );
    }
    (
        Response::text(404, format!("no such path; ActiveSync is at {EAS_PATH}")),
        Framing::Full,
    )
}

impl Lab {
    pub(super) fn ca_pem(&self) -> &str {
        self.authority.ca_pem()
    }

    pub(super) fn issue_client_cert(&self, common_name: &str) -> io::Result<(String, String)> {
        self.authority.issue_client(common_name)
    }

    /// Runs `f` on the state, then wakes every waiter.
    pub(super) fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.shared.lock());
        self.shared.changed.notify_all();
        out
    }
}

impl Handle {
    fn url(scheme: &str, addr: Option<SocketAddr>, path: &str) -> Option<String> {
        addr.map(|a| format!("{scheme}://{a}{path}"))
    }

    /// The ActiveSync endpoint over HTTP (`http://127.0.0.1:PORT/Microsoft-Server-ActiveSync`).
    pub fn http_url(&self) -> Option<String> {
        Self::url("http", self.http, EAS_PATH)
    }

    /// The ActiveSync endpoint over HTTPS (the certificate names 127.0.0.1 and localhost).
    pub fn https_url(&self) -> Option<String> {
        Self::url("https", self.https, EAS_PATH)
    }

    /// The admin API base (`http://127.0.0.1:PORT`).
    pub fn admin_url(&self) -> Option<String> {
        Self::url("http", self.admin, "")
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The Autodiscover endpoint over HTTPS.
    pub fn autodiscover_url(&self) -> Option<String> {
        Self::url("https", self.https, autodiscover::PATH)
    }

    /// The OAuth device authorization endpoint over HTTPS.
    pub fn oauth_device_url(&self) -> Option<String> {
        Self::url("https", self.https, oauth::DEVICE_PATH)
    }

    /// The OAuth token endpoint over HTTPS.
    pub fn oauth_token_url(&self) -> Option<String> {
        Self::url("https", self.https, oauth::TOKEN_PATH)
    }

    /// Approves the pending device code shown as `user_code`.
    pub fn oauth_approve(&self, user_code: &str) -> Result<(), String> {
        self.lab.oauth.decide(user_code, "approve")
    }

    /// Denies the pending device code shown as `user_code`.
    pub fn oauth_deny(&self, user_code: &str) -> Result<(), String> {
        self.lab.oauth.decide(user_code, "deny")
    }

    /// Makes the device code shown as `user_code` expire now.
    pub fn oauth_expire(&self, user_code: &str) -> Result<(), String> {
        self.lab.oauth.decide(user_code, "expire")
    }

    /// The lab CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem(&self) -> String {
        self.lab.ca_pem().to_string()
    }

    /// A client certificate and key (PEM) for `common_name`, signed by the lab CA.
    pub fn issue_client_cert(&self, common_name: &str) -> io::Result<(String, String)> {
        self.lab.issue_client_cert(common_name)
    }

    /// The lab user's address.
    pub fn user(&self) -> &str {
        &self.lab.config.users[0].0
    }

    /// Adds an item; returns its ServerId.
    pub fn add_item(&self, item: NewItem) -> Result<String, String> {
        let now = self.lab.now();
        self.lab.change(|s| s.add_item(item, now))
    }

    /// Adds a plain mail to a folder (a shortcut for tests).
    pub fn add_mail(&self, folder_id: &str, subject: &str, body: &str) -> Result<String, String> {
        self.add_item(admin::mail_item(
            &self.lab, folder_id, subject, None, None, body,
        ))
    }

    /// Merges properties into an item and optionally replaces its body.
    pub fn change_item(
        &self,
        server_id: &str,
        props: Vec<super::model::Prop>,
        body: Option<String>,
    ) -> Result<(), String> {
        self.lab.change(|s| s.change_item(server_id, props, body))
    }

    pub fn delete_item(&self, server_id: &str) -> Result<(), String> {
        self.lab.change(|s| s.delete_item(server_id).map(|_| ()))
    }

    pub fn add_folder(
        &self,
        parent_id: &str,
        name: &str,
        folder_type: u8,
    ) -> Result<String, String> {
        self.lab
            .change(|s| s.add_folder(parent_id, name, folder_type))
    }

    pub fn update_folder(
        &self,
        server_id: &str,
        parent_id: &str,
        name: &str,
    ) -> Result<(), String> {
        self.lab
            .change(|s| s.update_folder(server_id, parent_id, name))
    }

    pub fn delete_folder(&self, server_id: &str) -> Result<(), String> {
        self.lab.change(|s| s.delete_folder(server_id))
    }

    /// Replaces the policy (empty: no policy) and bumps its generation.
    pub fn set_policy(&self, settings: Vec<(String, String)>) -> Result<(), String> {
        admin::check_policy(&settings)?;
        self.lab.change(|s| s.set_policy(settings));
        Ok(())
    }

    pub fn set_require_full_compliance(&self, on: bool) {
        self.lab.change(|s| s.policy.require_full_compliance = on);
    }

    /// Requests a wipe of one device or every device; returns how many.
    pub fn request_wipe(
        &self,
        device_id: Option<&str>,
        account_only: bool,
    ) -> Result<usize, String> {
        self.lab.change(|s| s.request_wipe(device_id, account_only))
    }

    pub fn inject_fault(&self, fault: Fault) {
        self.lab.change(|s| s.faults.push(fault));
    }

    pub fn clear_faults(&self) {
        self.lab.change(|s| s.faults.clear());
    }

    /// What `GET /state` shows.
    pub fn state(&self) -> Json {
        self.lab.shared.lock().to_json()
    }

    /// Stops the listeners, wakes waiting Pings and closes open connections.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        self.lab.change(|s| s.shutdown = true);
        for addr in [self.http, self.https, self.admin].into_iter().flatten() {
            // Wake the accept loop so it sees the flag.
            let _ = TcpStream::connect(addr);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for (_, c) in self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Blocks until [`Handle::shutdown`] is called from elsewhere (never for the binary,
    /// which exits instead).
    pub fn wait(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop_all();
    }
}
