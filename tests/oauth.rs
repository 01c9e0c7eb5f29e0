//! The OAuth 2.0 device flow and token refresh (transport::oauth) against the lab's OAuth
//! endpoints over real HTTPS: pending, slow_down, approval, denial, expiry, refresh with
//! rotation, and a FolderSync authenticated with the issued bearer token.
#![cfg(feature = "lab")]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use easync::eas::folder::{self, FolderSyncStatus};
use easync::lab::{self, Handle};
use easync::transport::oauth::{
    self, DeviceAuthorization, Endpoints, MemoryTokens, OAuthClient, Options, Poll, Tokens,
};
use easync::transport::{
    Auth, Client, Config, Provisioner, Secret, Session, TlsOptions, TokenProvider,
};
use easync::wbxml::ProtocolVersion;

const TIMEOUT: Duration = Duration::from_secs(10);
const CLIENT_ID: &str = "easync-lab-client";

struct Lab {
    handle: Handle,
    ca_file: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

fn start_lab(tune: impl FnOnce(&mut lab::Config)) -> Lab {
    let loopback = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut config = lab::Config {
        http: loopback,
        https: loopback,
        admin: loopback,
        items: 4,
        policy: Vec::new(),
        ..lab::Config::default()
    };
    config.oauth.interval = 1;
    tune(&mut config);
    let handle = lab::Server::start(config).expect("the lab starts");
    let ca_file = std::env::temp_dir().join(format!(
        "easync-oauth-{}-{:?}.pem",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&ca_file, handle.ca_pem()).unwrap();
    Lab { handle, ca_file }
}

fn tls(lab: &Lab) -> TlsOptions {
    TlsOptions {
        trust_store: None,
        ca_file: Some(lab.ca_file.clone()),
        ..TlsOptions::default()
    }
}

fn client(lab: &Lab) -> OAuthClient {
    let mut options = Options::new(Endpoints {
        device_authorization: lab.handle.oauth_device_url().unwrap(),
        token: lab.handle.oauth_token_url().unwrap(),
        client_id: CLIENT_ID.into(),
        scope: oauth::EXCHANGE_ONLINE_SCOPE.into(),
    });
    options.tls = tls(lab);
    options.timeout = TIMEOUT;
    OAuthClient::new(options).expect("client")
}

struct NoProvisioning;

impl Provisioner for NoProvisioning {
    fn provision(&mut self, _: &mut Session) -> easync::transport::Result<()> {
        panic!("the lab has no policy: provisioning must not be asked for")
    }
}

/// A FolderSync over HTTPS authenticated with `provider`.
fn folder_sync_with(lab: &Lab, provider: Arc<dyn TokenProvider>) -> FolderSyncStatus {
    let mut config = Config::new(lab.handle.https_url().unwrap(), "lab@example.com", "OAUTH1");
    config.tls = tls(lab);
    config.auth = Auth::Bearer(provider);
    let v = ProtocolVersion::V16_1;
    let mut session = Session::new(Client::new(config).unwrap(), v);
    session.negotiate(Some(v), TIMEOUT).expect("OPTIONS");
    session
        .execute(
            |s| folder::folder_sync_request(s.version, "0"),
            folder::read_folder_sync_response,
            &mut NoProvisioning,
            TIMEOUT,
        )
        .expect("FolderSync")
        .status
}

/// Runs the flow; `on_poll(n)` is called before the n-th poll (from 1). Returns the tokens
/// and the waits the flow asked for.
fn run_flow(
    client: &OAuthClient,
    mut on_poll: impl FnMut(u32, &str),
) -> (oauth::Result<Tokens>, Vec<Duration>) {
    let flow = client.start().expect("device authorization");
    let user_code = flow.authorization().user_code.clone();
    let mut waits = Vec::new();
    let result = flow.wait(&mut |d| {
        waits.push(d);
        on_poll(waits.len() as u32, &user_code);
        std::thread::sleep(Duration::from_millis(5));
        true
    });
    (result, waits)
}

#[test]
fn device_flow_with_slow_down_then_folder_sync_and_rotation() {
    let lab = start_lab(|c| c.oauth.slow_down_polls = 1);
    let client = client(&lab);

    let flow = client.start().unwrap();
    let auth: &DeviceAuthorization = flow.authorization();
    assert!(auth.user_code.starts_with("LAB"), "{auth:?}");
    assert!(auth.verification_uri.ends_with("/oauth2/verify"));
    assert_eq!(
        auth.verification_uri_complete.as_deref(),
        Some(format!("{}?code={}", auth.verification_uri, auth.user_code).as_str())
    );
    assert_eq!(auth.interval, Duration::from_secs(1));
    assert_eq!(auth.expires_in, Duration::from_secs(900));
    assert!(!format!("{auth:?}").contains("lab-device"), "{auth:?}");
    drop(flow);

    // Poll 1: slow_down (interval 1 -> 6 s); poll 2: pending; approved before poll 3.
    let (tokens, waits) = run_flow(&client, |n, code| {
        if n == 3 {
            lab.handle.oauth_approve(code).unwrap();
        }
    });
    let tokens = tokens.expect("tokens");
    assert_eq!(
        waits,
        [1, 6, 6].map(Duration::from_secs).to_vec(),
        "slow_down adds 5 s"
    );
    assert!(tokens.access.expose().starts_with("lab-access-"));
    let first_refresh = tokens.refresh.clone().expect("a refresh token");
    let left = tokens
        .expires_at
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
    assert!(!format!("{tokens:?}").contains("lab-access"));

    // The access token works for ActiveSync.
    let persisted: Arc<Mutex<Vec<Tokens>>> = Arc::default();
    let sink = persisted.clone();
    let provider = Arc::new(MemoryTokens::new(
        client,
        tokens.clone(),
        Box::new(move |t| sink.lock().unwrap().push(t.clone())),
    ));
    assert_eq!(provider.token().unwrap(), tokens.access.expose());
    assert_eq!(
        folder_sync_with(&lab, provider.clone()),
        FolderSyncStatus::Success
    );
    assert!(persisted.lock().unwrap().is_empty());

    // A refresh rotates both tokens and reports them for storing.
    let fresh = provider.refresh().unwrap();
    assert_ne!(fresh, tokens.access.expose());
    let stored = persisted.lock().unwrap().clone();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].access.expose(), fresh);
    let second_refresh = stored[0].refresh.clone().unwrap();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(provider.current(), stored[0]);
    assert_eq!(
        folder_sync_with(&lab, provider.clone()),
        FolderSyncStatus::Success
    );

    // The rotated-out refresh token is refused.
    let err = client_for_refresh(&lab)
        .refresh(&first_refresh)
        .unwrap_err();
    assert!(matches!(err, oauth::Error::InvalidGrant { .. }), "{err:?}");
    assert!(err.to_string().contains("sign in again"));
    // The current one still works.
    let again = client_for_refresh(&lab).refresh(&second_refresh).unwrap();
    assert!(again.refresh.is_some());
}

fn client_for_refresh(lab: &Lab) -> OAuthClient {
    client(lab)
}

#[test]
fn an_expiring_access_token_is_refreshed_before_use() {
    let lab = start_lab(|c| c.oauth.token_lifetime = 30);
    let client = client(&lab);
    let (tokens, _) = run_flow(&client, |_, code| {
        let _ = lab.handle.oauth_approve(code);
    });
    let tokens = tokens.unwrap();
    let provider = MemoryTokens::new(client, tokens.clone(), Box::new(|_| {}));
    // 30 s is inside the refresh margin: the provider refreshes on its own.
    let token = provider.token().unwrap();
    assert_ne!(token, tokens.access.expose());
    assert_eq!(provider.current().access.expose(), token);
}

#[test]
fn pending_is_reported_until_a_decision() {
    let lab = start_lab(|_| {});
    let client = client(&lab);
    let mut flow = client.start().unwrap();
    for _ in 0..3 {
        assert!(matches!(flow.poll().unwrap(), Poll::Pending));
    }
    assert_eq!(flow.interval(), Duration::from_secs(1));
    lab.handle
        .oauth_approve(&flow.authorization().user_code)
        .unwrap();
    assert!(matches!(flow.poll().unwrap(), Poll::Ready(_)));
    // A used device code is not good twice.
    let err = flow.poll().unwrap_err();
    assert!(matches!(err, oauth::Error::InvalidGrant { .. }), "{err:?}");
}

#[test]
fn denied_sign_in_is_an_error() {
    let lab = start_lab(|_| {});
    let (result, waits) = run_flow(&client(&lab), |n, code| {
        if n == 2 {
            lab.handle.oauth_deny(code).unwrap();
        }
    });
    let err = result.unwrap_err();
    assert!(matches!(err, oauth::Error::Denied), "{err:?}");
    assert_eq!(waits.len(), 2);
}

#[test]
fn expired_device_code_is_an_error() {
    let lab = start_lab(|_| {});
    let (result, _) = run_flow(&client(&lab), |n, code| {
        if n == 2 {
            lab.handle.oauth_expire(code).unwrap();
        }
    });
    let err = result.unwrap_err();
    assert!(matches!(err, oauth::Error::Expired), "{err:?}");
    assert!(err.to_string().contains("start the sign-in again"));
}

#[test]
fn approval_through_the_admin_api() {
    let lab = start_lab(|_| {});
    let client = client(&lab);
    let mut flow = client.start().unwrap();
    let admin = lab.handle.admin_addr().unwrap();
    let body = format!("{{\"user_code\": \"{}\"}}", flow.authorization().user_code);
    let answer = post_admin(admin, "/oauth/approve", &body);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(matches!(flow.poll().unwrap(), Poll::Ready(_)));
    let answer = post_admin(admin, "/oauth/approve", "{\"user_code\": \"NOPE\"}");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

fn post_admin(addr: std::net::SocketAddr, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_wrong_client_id_or_unknown_token_is_refused() {
    let lab = start_lab(|_| {});
    let mut options = Options::new(Endpoints {
        device_authorization: lab.handle.oauth_device_url().unwrap(),
        token: lab.handle.oauth_token_url().unwrap(),
        client_id: "someone-else".into(),
        scope: "x".into(),
    });
    options.tls = tls(&lab);
    let err = OAuthClient::new(options).unwrap().start().unwrap_err();
    assert!(
        matches!(&err, oauth::Error::Server { error, .. } if error == "invalid_client"),
        "{err:?}"
    );
    let err = client(&lab)
        .refresh(&Secret::new("never-issued"))
        .unwrap_err();
    assert!(matches!(err, oauth::Error::InvalidGrant { .. }), "{err:?}");
}

#[test]
fn the_token_endpoint_uses_the_transport_trust() {
    let lab = start_lab(|_| {});
    let mut options = Options::new(Endpoints {
        device_authorization: lab.handle.oauth_device_url().unwrap(),
        token: lab.handle.oauth_token_url().unwrap(),
        client_id: CLIENT_ID.into(),
        scope: "x".into(),
    });
    options.tls = tls(&lab);
    // A pin that is not the lab's key: refused like the transport would.
    options.tls.pins = vec!["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()];
    let err = OAuthClient::new(options).unwrap().start().unwrap_err();
    assert!(
        matches!(
            err,
            oauth::Error::Transport(easync::transport::Error::PinMismatch { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn polling_backs_off_while_the_token_endpoint_is_unreachable() {
    let lab = start_lab(|_| {});
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut options = Options::new(Endpoints {
        device_authorization: lab.handle.oauth_device_url().unwrap(),
        token: format!("https://{dead}/token"),
        client_id: CLIENT_ID.into(),
        scope: "x".into(),
    });
    options.tls = tls(&lab);
    let client = OAuthClient::new(options).unwrap();
    let flow = client.start().unwrap();
    let mut waits = Vec::new();
    let err = flow
        .wait(&mut |d| {
            waits.push(d);
            waits.len() < 4
        })
        .unwrap_err();
    assert!(matches!(err, oauth::Error::Cancelled), "{err:?}");
    assert_eq!(waits, [1, 2, 4, 8].map(Duration::from_secs).to_vec());
}
