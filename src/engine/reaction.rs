//! What the engine does after a failed exchange: every transport error leads to one defined
//! reaction with a bounded wait — never to an immediate repeat, so no fault the network or
//! the server produces can make the daemon spin. The one exception is a request the daemon
//! cancelled itself (a sync was asked for, a local change is waiting): the next step starts
//! at once.
//!
//! Transient trouble (network, timeouts, 5xx, throttling, a broken response body) waits a
//! capped, jittered back-off that grows with each failure in a row (honouring the server's
//! Retry-After). Problems only a person can fix (credentials, configuration, TLS trust, a
//! device the server blocks) park the account in a state that says what to do; the engine
//! retries those only rarely, or when told (SIGHUP, `SyncNow`, new credentials).

use core::time::Duration;
use std::time::SystemTime;

use crate::transport::{Backoff, Error};

/// How long a parked account waits before trying again on its own.
pub const PARKED_RETRY: Duration = Duration::from_secs(6 * 60 * 60);

/// The engine's reaction to one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Transient: try the same step again after `after`.
    Retry { after: Duration },
    /// Start over from OPTIONS and provisioning (the server's answers no longer fit the
    /// session: redirect trouble, a provisioning loop, a protocol mismatch), after `after`.
    Restart { after: Duration },
    /// The user must act (password, token, client certificate): parked until new
    /// credentials arrive, or [`PARKED_RETRY`].
    NeedsCredentials { message: String },
    /// The administrator must act (policy compliance, blocked device, forbidden): parked.
    Blocked { message: String },
    /// The configuration is wrong (URL, TLS trust, pins): parked until it changes (SIGHUP).
    FixConfiguration { message: String },
    /// The server ordered a wipe and it was acknowledged: the device layer carries it out.
    Wipe { account_only: bool },
}

impl Reaction {
    /// The wait before the engine tries again by itself.
    pub fn wait(&self) -> Duration {
        match self {
            Reaction::Retry { after } | Reaction::Restart { after } => *after,
            Reaction::NeedsCredentials { .. }
            | Reaction::Blocked { .. }
            | Reaction::FixConfiguration { .. } => PARKED_RETRY,
            Reaction::Wipe { .. } => Duration::ZERO,
        }
    }
}

/// The reaction to `error`, the `failures`-th failure in a row (0 for the first).
/// `seed` varies the jitter between devices so a fleet does not retry in step.
pub fn react(
    error: &Error,
    failures: u32,
    backoff: &Backoff,
    now: SystemTime,
    seed: u64,
) -> Reaction {
    let wait = |retry_after| backoff.delay(failures, retry_after, now, seed);
    let message = error.to_string();
    match error {
        Error::Throttled { retry_after, .. } => Reaction::Retry {
            after: wait(*retry_after),
        },
        Error::Timeout { .. }
        | Error::Connect(_)
        | Error::Network(_)
        | Error::HostNotFound { .. }
        | Error::ResendRequired(_)
        | Error::Request(_)
        | Error::RequestBody(_)
        | Error::Token(_)
        | Error::WebPage { .. } => Reaction::Retry { after: wait(None) },
        Error::Http { status } if *status >= 500 => Reaction::Retry { after: wait(None) },
        Error::Cancelled => Reaction::Retry {
            after: Duration::ZERO,
        },
        Error::Protocol(_) => Reaction::Retry { after: wait(None) },
        Error::NeedsProvisioning
        | Error::ProvisioningLoop { .. }
        | Error::RedirectWithoutLocation
        | Error::TooManyRedirects { .. }
        | Error::RedirectLoop { .. }
        | Error::Negotiation(_)
        | Error::Http { .. } => Reaction::Restart { after: wait(None) },
        Error::Unauthorized { .. } | Error::ClientCertificateRejected(_) => {
            Reaction::NeedsCredentials { message }
        }
        Error::Forbidden | Error::ProvisioningRefused { .. } => Reaction::Blocked { message },
        Error::Config(_)
        | Error::InsecureHttp { .. }
        | Error::InvalidUrl { .. }
        | Error::CertificateNotTrusted(_)
        | Error::CertificateNameMismatch { .. }
        | Error::CertificateExpired
        | Error::PinMismatch { .. }
        | Error::Tls(_) => Reaction::FixConfiguration { message },
        Error::RemoteWipe { account_only } => Reaction::Wipe {
            account_only: *account_only,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::RetryAfter;

    fn at(failures: u32, e: &Error) -> Reaction {
        react(e, failures, &Backoff::default(), SystemTime::now(), 7)
    }

    #[test]
    fn transient_errors_wait_longer_with_each_failure_and_never_zero() {
        let e = Error::Network("reset".into());
        let mut last = Duration::ZERO;
        for n in 0..12 {
            let Reaction::Retry { after } = at(n, &e) else {
                panic!("network trouble is transient")
            };
            assert!(after >= Duration::from_secs(1), "{after:?}");
            assert!(after <= Backoff::default().cap + Duration::from_secs(1));
            if n < 6 {
                assert!(
                    after >= last / 2,
                    "grows (with jitter): {last:?} then {after:?}"
                );
            }
            last = after;
        }
    }

    #[test]
    fn throttling_honours_retry_after_within_the_ceiling() {
        let e = Error::Throttled {
            retry_after: Some(RetryAfter::Delay(Duration::from_secs(120))),
            reason: None,
        };
        let Reaction::Retry { after } = at(0, &e) else {
            panic!()
        };
        assert!(after >= Duration::from_secs(120), "{after:?}");
        let week = Error::Throttled {
            retry_after: Some(RetryAfter::Delay(Duration::from_secs(7 * 24 * 3600))),
            reason: None,
        };
        assert!(at(0, &week).wait() <= Backoff::default().retry_after_ceiling);
    }

    #[test]
    fn people_problems_park_the_account_with_a_message() {
        let r = at(
            0,
            &Error::Unauthorized {
                credentials_expire_days: None,
            },
        );
        assert!(matches!(&r, Reaction::NeedsCredentials { message } if message.contains("401")));
        assert_eq!(r.wait(), PARKED_RETRY);
        assert!(matches!(at(0, &Error::Forbidden), Reaction::Blocked { .. }));
        assert!(matches!(
            at(
                0,
                &Error::ProvisioningRefused {
                    reason: "139".into()
                }
            ),
            Reaction::Blocked { .. }
        ));
        assert!(matches!(
            at(0, &Error::PinMismatch { actual: "x".into() }),
            Reaction::FixConfiguration { .. }
        ));
        assert_eq!(
            at(0, &Error::RemoteWipe { account_only: true }),
            Reaction::Wipe { account_only: true }
        );
    }

    #[test]
    fn session_trouble_restarts_after_a_wait_not_at_once() {
        for e in [
            Error::RedirectLoop { url: "u".into() },
            Error::ProvisioningLoop { attempts: 2 },
            Error::Http { status: 404 },
        ] {
            let r = at(0, &e);
            assert!(matches!(r, Reaction::Restart { .. }), "{e:?}");
            assert!(r.wait() >= Duration::from_secs(1));
        }
    }
}
