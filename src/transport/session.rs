//! A session with one server: the negotiated protocol version, the policy key and the
//! current URL (451 redirects are followed and remembered), plus the retry loop every
//! command shares — provision again on 449 or status 142–144, wait out 503 within limits.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::client::{Client, Outcome, Response, ResponseBody, Target, check_url, reborrow};
use super::error::{Error, Result};
use super::retry::Backoff;
use crate::eas::{self, Action, HasStatus, Parser, ServerInfo};
use crate::wbxml::{FromStd, ProtocolVersion};

/// What requests are built from; handed to the request builder of [`Session::execute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The current endpoint URL (changes when the server redirects with 451).
    pub url: String,
    pub version: ProtocolVersion,
    /// The policy key from the last Provision; `None` before provisioning.
    pub policy_key: Option<u32>,
}

/// Runs the Provision exchange (implemented by the engine) and stores the new key with
/// [`Session::set_policy_key`].
///
/// When the server answers with a wipe directive instead of a policy, the provisioner
/// persists the intent, acknowledges the directive and returns [`Error::RemoteWipe`], so
/// that [`Session::execute`] stops instead of repeating the request.
pub trait Provisioner {
    fn provision(&mut self, session: &mut Session) -> Result<()>;
}

/// How hard [`Session::execute`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Provisioning rounds per request before giving up.
    pub max_provisions: u32,
    /// 503 retries per request.
    pub max_throttle_retries: u32,
    /// A 503 whose wait would be longer than this is returned to the caller instead.
    pub max_throttle_wait: Duration,
    pub backoff: Backoff,
    /// 451 redirects followed per request.
    pub max_redirects: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_provisions: 2,
            max_throttle_retries: 3,
            max_throttle_wait: Duration::from_secs(60),
            backoff: Backoff::default(),
            max_redirects: 5,
        }
    }
}

/// Extra time a Ping request waits beyond its heartbeat before it counts as timed out.
pub const PING_MARGIN: Duration = Duration::from_secs(30);

/// The request timeout for a Ping with this heartbeat interval.
pub fn ping_timeout(heartbeat: Duration) -> Duration {
    heartbeat.saturating_add(PING_MARGIN)
}

/// The timeout to pass for `command`: how long the server may stay silent before easync
/// gives up on the request. `hold` is how long the request itself asks the server to wait
/// for changes (Ping's HeartbeatInterval, Sync's Wait or HeartbeatInterval); such requests
/// get that plus [`PING_MARGIN`]. Others get room for the server's own work: searches and
/// directory look-ups, message submission and large fetches take longer than the rest.
pub fn command_timeout(command: eas::Command, hold: Option<Duration>) -> Duration {
    use eas::Command as C;
    if let Some(hold) = hold {
        return ping_timeout(hold);
    }
    Duration::from_secs(match command {
        // An empty Ping repeats the previous heartbeat, which may be the longest EAS allows.
        C::Ping => 3540 + PING_MARGIN.as_secs(),
        C::Sync | C::ItemOperations | C::SendMail | C::SmartReply | C::SmartForward => 120,
        C::Search | C::Find | C::ResolveRecipients => 90,
        _ => 60,
    })
}

/// The parser handed to response readers.
pub type ResponseParser = Parser<FromStd<ResponseBody>>;

/// A session with the server. See the module documentation.
pub struct Session {
    client: Client,
    state: SessionState,
    policy: RetryPolicy,
    sleep: Box<dyn FnMut(Duration) + Send>,
    seed: u64,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session at the configured URL speaking `version` (from [`Session::negotiate`] or
    /// stored state), without a policy key.
    pub fn new(client: Client, version: ProtocolVersion) -> Session {
        let url = client.config().url.clone();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Session {
            client,
            state: SessionState {
                url,
                version,
                policy_key: None,
            },
            policy: RetryPolicy::default(),
            sleep: Box::new(std::thread::sleep),
            seed,
        }
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.state.version = version;
    }

    pub fn set_policy_key(&mut self, key: Option<u32>) {
        self.state.policy_key = key;
    }

    /// Restores a URL remembered from an earlier redirect.
    pub fn set_url(&mut self, url: impl Into<String>) -> Result<()> {
        let url = url.into();
        check_url(&url, self.client.config().allow_insecure_http)?;
        self.state.url = url;
        Ok(())
    }

    pub fn set_retry_policy(&mut self, policy: RetryPolicy) {
        self.policy = policy;
    }

    /// Replaces how [`Session::execute`] waits between 503 retries (the only place the
    /// transport sleeps); tests record the delays instead of sleeping.
    pub fn set_sleeper(&mut self, sleep: impl FnMut(Duration) + Send + 'static) {
        self.sleep = Box::new(sleep);
    }

    /// Runs `exchange` at the current URL, following 451 redirects (bounded, loops detected)
    /// and remembering where it ended up. On failure the URL is left as it was.
    fn follow<T>(
        &mut self,
        mut exchange: impl FnMut(&Client, &str, u32) -> Result<Outcome<T>>,
    ) -> Result<T> {
        let original = self.state.url.clone();
        let mut visited = vec![original.clone()];
        let result = loop {
            let hop = visited.len() as u32 - 1;
            match exchange(&self.client, &self.state.url, hop) {
                Ok(Outcome::Done(t)) => break Ok(t),
                Err(e) => break Err(e),
                Ok(Outcome::Redirect(location)) => {
                    if let Err(e) = check_url(&location, self.client.config().allow_insecure_http) {
                        break Err(e);
                    }
                    if visited.iter().any(|v| v.eq_ignore_ascii_case(&location)) {
                        break Err(Error::RedirectLoop { url: location });
                    }
                    if hop >= self.policy.max_redirects {
                        break Err(Error::TooManyRedirects {
                            hops: self.policy.max_redirects,
                        });
                    }
                    log::info!("the server moved this mailbox to {location}");
                    self.state.url = location.clone();
                    visited.push(location);
                }
            }
        };
        if matches!(
            result,
            Err(Error::RedirectLoop { .. }
                | Error::TooManyRedirects { .. }
                | Error::InvalidUrl { .. }
                | Error::InsecureHttp { .. })
        ) {
            self.state.url = original;
        }
        result
    }

    /// OPTIONS at the current URL.
    pub fn options(&mut self, timeout: Duration) -> Result<ServerInfo> {
        self.follow(|client, url, _| client.options(url, timeout))
    }

    /// OPTIONS, then picks and stores the best common version (no higher than `cap`).
    pub fn negotiate(
        &mut self,
        cap: Option<ProtocolVersion>,
        timeout: Duration,
    ) -> Result<ServerInfo> {
        let info = self.options(timeout)?;
        self.state.version = info.negotiate(cap)?;
        log::debug!("negotiated ActiveSync {}", self.state.version.as_str());
        Ok(info)
    }

    /// Sends one request and returns the 2xx response with its streaming body; every other
    /// status is an [`Error`]. `mime` feeds a body's message part. A 451 with a streamed
    /// message remembers the new URL and returns [`Error::ResendRequired`] (the message
    /// cannot be replayed).
    pub fn send(
        &mut self,
        request: &eas::Request,
        mut mime: Option<&mut dyn Read>,
        timeout: Duration,
    ) -> Result<Response> {
        let streamed = matches!(
            request.body,
            eas::Body::Mime { len } | eas::Body::WbxmlAroundMime { len, .. } if len > 0
        );
        let (version, policy_key) = (self.state.version, self.state.policy_key);
        self.follow(|client, url, hop| {
            if hop > 0 && streamed {
                return Err(Error::ResendRequired(format!(
                    "the server moved the mailbox to {url}; the message must be sent there"
                )));
            }
            let target = Target {
                url,
                version,
                policy_key,
            };
            client.post(target, request, reborrow(&mut mime), timeout)
        })
    }

    /// Builds, sends and reads one command, handling what every command shares:
    /// - HTTP 449 or a common status whose action is [`Action::Reprovision`] (142–144): calls
    ///   `provisioner`, then builds and sends again (at most `max_provisions` times);
    /// - HTTP 503: waits the [`Backoff`] delay (honouring Retry-After) and sends again, at
    ///   most `max_throttle_retries` times and only while the wait is within
    ///   `max_throttle_wait`; otherwise returns [`Error::Throttled`]. This is the only place
    ///   the transport sleeps.
    pub fn execute<T: HasStatus>(
        &mut self,
        build: impl Fn(&SessionState) -> eas::Result<eas::Request>,
        mut read: impl FnMut(&mut ResponseParser) -> eas::Result<T>,
        provisioner: &mut dyn Provisioner,
        timeout: Duration,
    ) -> Result<T> {
        let mut provisions = 0u32;
        let mut throttles = 0u32;
        loop {
            let request = build(&self.state)?;
            let needs_provisioning = match self.send(&request, None, timeout) {
                Ok(response) => {
                    let value = response.read(self.state.version, &mut read)?;
                    match value.common_status() {
                        // 140 (remote wipe requested) also means "run Provision": the
                        // directive comes with it.
                        Some(s)
                            if matches!(s.action(), Action::Reprovision | Action::RemoteWipe) =>
                        {
                            log::debug!("{} answered {s}", request.command);
                            true
                        }
                        _ => return Ok(value),
                    }
                }
                Err(Error::NeedsProvisioning) => true,
                Err(Error::Throttled {
                    retry_after,
                    reason,
                }) => {
                    self.seed = self.seed.wrapping_add(1);
                    let delay = self.policy.backoff.delay(
                        throttles,
                        retry_after,
                        SystemTime::now(),
                        self.seed,
                    );
                    if throttles >= self.policy.max_throttle_retries
                        || delay > self.policy.max_throttle_wait
                    {
                        return Err(Error::Throttled {
                            retry_after,
                            reason,
                        });
                    }
                    throttles += 1;
                    log::info!(
                        "server busy (503{}); retrying {} in {} ms",
                        reason
                            .as_deref()
                            .map(|r| format!(", {r}"))
                            .unwrap_or_default(),
                        request.command,
                        delay.as_millis()
                    );
                    (self.sleep)(delay);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if needs_provisioning {
                if provisions >= self.policy.max_provisions {
                    return Err(Error::ProvisioningLoop {
                        attempts: provisions,
                    });
                }
                provisions += 1;
                log::debug!(
                    "provisioning (round {provisions}) before repeating {}",
                    request.command
                );
                provisioner.provision(self)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eas::Command;

    #[test]
    fn command_timeouts_cover_the_hold_and_the_server_work() {
        assert_eq!(
            command_timeout(Command::Ping, Some(Duration::from_secs(480))),
            Duration::from_secs(510)
        );
        assert_eq!(
            command_timeout(Command::Sync, Some(Duration::from_secs(60))),
            Duration::from_secs(90)
        );
        assert_eq!(
            command_timeout(Command::Ping, None),
            Duration::from_secs(3570)
        );
        assert_eq!(
            command_timeout(Command::Sync, None),
            Duration::from_secs(120)
        );
        assert_eq!(
            command_timeout(Command::Search, None),
            Duration::from_secs(90)
        );
        assert_eq!(
            command_timeout(Command::FolderSync, None),
            Duration::from_secs(60)
        );
    }
}
