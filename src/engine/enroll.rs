//! Enrollment of an OAuth account (`[account.oauth]`): where its bearer tokens come from.
//!
//! When the account connects, the tokens are read from the credential store
//! ([`crate::store::credentials`]). With none stored, the account signs in with the device
//! authorization grant (RFC 8628): the user code and the verification URL go to the sign-in
//! prompt (the daemon shows them; by default they are logged at warn level), then the token
//! endpoint is polled until the user approved, denied, or the code expired — a wait bounded
//! by the code's lifetime, which a stop of the daemon ends within a moment (the runner's
//! cancel reaches the wait through [`PingControl`]). Approved tokens are stored before use.
//!
//! The session then gets a bearer [`TokenProvider`] built on [`MemoryTokens`]: it refreshes
//! the access token shortly before it expires or when the server answers 401, and every
//! refresh is written to the store at once (servers rotate refresh tokens; the old one stops
//! working). A refresh token the sign-in server refuses (`invalid_grant`) means the sign-in
//! is over: the stored tokens are moved aside to `oauth-tokens.refused.json` (kept for
//! inspection, not deleted), the cycle ends with [`SignInError::Refused`], and the next
//! attempt — a `SyncNow`, a SIGHUP, `easyncd --once`, or the parked retry — starts a new
//! device sign-in and shows a new code.
//!
//! Tokens never reach logs or error messages: they travel as [`crate::transport::Secret`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::account::EngineError;
use super::reaction::{self, Reaction};
use super::runner::PingControl;
use crate::config;
use crate::store::credentials::{CredentialError, CredentialStore};
use crate::transport::cancel::{Canceller, Registry};
use crate::transport::oauth::{
    self, Endpoints, MemoryTokens, OAuthClient, Options, REFRESH_MARGIN, Tokens,
};
use crate::transport::{self, Auth, Backoff, TlsOptions, TokenProvider};

/// The longest the device-flow wait sleeps before looking whether the daemon stops.
const CANCEL_CHECK: Duration = Duration::from_millis(250);

/// What the user needs to approve a device sign-in on another device (phone, PC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInPrompt {
    /// The page to open.
    pub verification_uri: String,
    /// The page with the code filled in (for a QR code), when the server offers one.
    pub verification_uri_complete: Option<String>,
    /// The code to enter there.
    pub user_code: String,
    /// How long the code is valid.
    pub expires_in: Duration,
    /// A ready-made instruction: the server's own, or one made from the fields above.
    pub message: String,
}

/// Shows a [`SignInPrompt`] to the user.
pub type PromptFn = Box<dyn Fn(&SignInPrompt) + Send>;

/// Why an OAuth account has no usable tokens. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The device sign-in or the token endpoint failed (denied, expired, a server or
    /// network problem).
    #[error("OAuth sign-in: {0}")]
    Flow(oauth::Error),
    /// The credential store is unreadable, damaged or readable by others.
    #[error("{0}")]
    Credentials(#[from] CredentialError),
    /// The sign-in server refused the stored refresh token.
    #[error(
        "the sign-in server refused the stored sign-in ({reason}){}: sign in again — run \
         `easyncd --once` (or ask the daemon to sync) and enter the code it shows",
        .kept.as_deref().map(|p| format!("; the old tokens were moved to {}", p.display()))
            .unwrap_or_default()
    )]
    Refused {
        reason: String,
        kept: Option<PathBuf>,
    },
}

impl SignInError {
    /// What the engine does about this error, the `failures`-th in a row: a person must
    /// sign in (parked), fix the configuration (parked), or a bounded retry.
    pub fn reaction(
        &self,
        failures: u32,
        backoff: &Backoff,
        now: SystemTime,
        seed: u64,
    ) -> Reaction {
        let retry = || Reaction::Retry {
            after: backoff.delay(failures, None, now, seed),
        };
        let message = self.to_string();
        match self {
            SignInError::Flow(oauth::Error::Transport(e)) => {
                reaction::react(e, failures, backoff, now, seed)
            }
            SignInError::Flow(
                oauth::Error::Denied
                | oauth::Error::Expired
                | oauth::Error::InvalidGrant { .. }
                | oauth::Error::NoRefreshToken,
            )
            | SignInError::Refused { .. }
            | SignInError::Credentials(
                CredentialError::Damaged { .. }
                | CredentialError::Exposed { .. }
                | CredentialError::NewerFormat { .. }
                | CredentialError::Password { .. },
            ) => Reaction::NeedsCredentials { message },
            SignInError::Flow(oauth::Error::Cancelled) => Reaction::Retry {
                after: Duration::ZERO,
            },
            SignInError::Flow(oauth::Error::Http { status }) if *status < 500 => {
                Reaction::FixConfiguration { message }
            }
            SignInError::Flow(oauth::Error::Server { .. }) => {
                Reaction::FixConfiguration { message }
            }
            SignInError::Flow(oauth::Error::Http { .. } | oauth::Error::BadResponse(_))
            | SignInError::Credentials(CredentialError::Store(_)) => retry(),
        }
    }
}

/// An account's sign-in: the prompt and what the token provider learned about a refused
/// sign-in during the current step.
pub struct SignIn {
    prompt: PromptFn,
    refused: Arc<Mutex<Option<SignInError>>>,
}

impl Default for SignIn {
    fn default() -> Self {
        SignIn {
            prompt: Box::new(log_prompt),
            refused: Arc::default(),
        }
    }
}

impl core::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignIn").finish_non_exhaustive()
    }
}

/// The default prompt: a warning in the log (the journal on a device).
fn log_prompt(prompt: &SignInPrompt) {
    log::warn!(
        "to sign in, open {} and enter {} (valid for {} minutes)",
        prompt.verification_uri,
        prompt.user_code,
        prompt.expires_in.as_secs().div_ceil(60)
    );
}

impl SignIn {
    pub fn set_prompt(&mut self, prompt: PromptFn) {
        self.prompt = prompt;
    }

    /// Bearer authentication for the account: the stored tokens, or a device sign-in first.
    /// `tls` is the trust the OAuth endpoints are checked with.
    pub(super) fn bearer(
        &self,
        settings: &config::OAuth,
        tls: TlsOptions,
        data_dir: &Path,
        control: &PingControl,
    ) -> Result<Auth, EngineError> {
        self.refused_slot().take();
        let store = CredentialStore::new(data_dir);
        let mut options = Options::new(Endpoints {
            device_authorization: settings.device_authorization_endpoint.clone(),
            token: settings.token_endpoint.clone(),
            client_id: settings.client_id.clone(),
            scope: settings.scope.clone(),
        });
        options.tls = tls;
        let client = OAuthClient::new(options).map_err(SignInError::Flow)?;
        let tokens = match store.load_oauth().map_err(SignInError::from)? {
            Some(tokens) => tokens,
            None => {
                let tokens = self.device_sign_in(&client, control)?;
                store.save_oauth(&tokens).map_err(SignInError::from)?;
                log::info!(
                    "signed in; the tokens are stored in {}",
                    store.oauth_path().display()
                );
                tokens
            }
        };
        let writer = store.clone();
        let on_refresh: oauth::OnRefresh =
            Box::new(move |fresh: &Tokens| match writer.save_oauth(fresh) {
                Ok(()) => log::debug!("OAuth: the refreshed tokens are stored"),
                Err(e) => log::error!(
                    "OAuth: the refreshed tokens could not be stored ({e}); the sign-in \
                     works until easyncd restarts, then it must be done again"
                ),
            });
        Ok(Auth::Bearer(Arc::new(StoredTokens {
            tokens: MemoryTokens::new(client, tokens, on_refresh),
            store,
            refused: self.refused.clone(),
        })))
    }

    /// `error` explained: a token failure after the server refused the stored sign-in
    /// becomes [`SignInError::Refused`].
    pub(super) fn explain(&self, error: EngineError) -> EngineError {
        match error {
            EngineError::Transport(transport::Error::Token(message)) => {
                match self.refused_slot().take() {
                    Some(refused) => EngineError::SignIn(refused),
                    None => EngineError::Transport(transport::Error::Token(message)),
                }
            }
            other => other,
        }
    }

    fn refused_slot(&self) -> std::sync::MutexGuard<'_, Option<SignInError>> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device flow: a code shown by the prompt, then polling until the user decided.
    fn device_sign_in(
        &self,
        client: &OAuthClient,
        control: &PingControl,
    ) -> Result<Tokens, EngineError> {
        let flow = client.start().map_err(SignInError::Flow)?;
        let a = flow.authorization();
        let prompt = SignInPrompt {
            verification_uri: a.verification_uri.clone(),
            verification_uri_complete: a.verification_uri_complete.clone(),
            user_code: a.user_code.clone(),
            expires_in: a.expires_in,
            message: a.message.clone().unwrap_or_else(|| {
                format!(
                    "To sign in, open {} and enter the code {}.",
                    a.verification_uri, a.user_code
                )
            }),
        };
        let deadline = Instant::now() + a.expires_in;
        // A stop of the daemon cancels "the request in flight" through the control: here
        // that is this wait. Registered before the prompt, so a stop it provokes is seen.
        let registry = Arc::new(Registry::default());
        control.set_canceller(Canceller::new(registry.clone()));
        let generation = registry.generation();
        (self.prompt)(&prompt);

        let mut sleep = |wanted: Duration| {
            let until =
                Instant::now() + wanted.min(deadline.saturating_duration_since(Instant::now()));
            loop {
                if registry.cancelled_since(generation) {
                    return false;
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return true;
                }
                std::thread::sleep(left.min(CANCEL_CHECK));
            }
        };
        match flow.wait(&mut sleep) {
            Ok(tokens) => Ok(tokens),
            Err(oauth::Error::Cancelled) => Err(transport::Error::Cancelled.into()),
            Err(e) => Err(SignInError::Flow(e).into()),
        }
    }
}

/// The session's [`TokenProvider`]: [`MemoryTokens`] (refreshing, writing every refresh to
/// the store) that notices when the server refuses the refresh token.
struct StoredTokens {
    tokens: MemoryTokens,
    store: CredentialStore,
    refused: Arc<Mutex<Option<SignInError>>>,
}

impl StoredTokens {
    /// Whether the server refused the refresh token in this step.
    fn refused_now(&self) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn refresh_now(&self) -> transport::Result<String> {
        match self.tokens.refresh_now() {
            Ok(fresh) => Ok(fresh.access.expose().to_string()),
            Err(e @ (oauth::Error::InvalidGrant { .. } | oauth::Error::NoRefreshToken)) => {
                let kept = match self.store.set_aside_oauth() {
                    Ok(kept) => kept,
                    Err(store) => {
                        log::error!("the refused OAuth tokens could not be moved aside: {store}");
                        None
                    }
                };
                let refused = SignInError::Refused {
                    reason: e.to_string(),
                    kept,
                };
                let message = refused.to_string();
                log::warn!("{message}");
                *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(refused);
                Err(transport::Error::Token(message))
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl TokenProvider for StoredTokens {
    fn token(&self) -> transport::Result<String> {
        let held = self.tokens.current();
        let expiring = held
            .expires_at
            .duration_since(SystemTime::now())
            .map(|left| left <= REFRESH_MARGIN)
            .unwrap_or(true);
        if expiring && held.refresh.is_some() {
            match self.refresh_now() {
                Ok(access) => return Ok(access),
                Err(e @ transport::Error::Token(_)) if self.refused_now() => return Err(e),
                // Not expired yet: the current token still serves; the next call retries.
                Err(e) if SystemTime::now() < held.expires_at => {
                    log::warn!("OAuth: refreshing the access token failed: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(held.access.expose().to_string())
    }

    fn refresh(&self) -> transport::Result<String> {
        self.refresh_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaction(e: SignInError) -> Reaction {
        e.reaction(0, &Backoff::default(), SystemTime::now(), 1)
    }

    #[test]
    fn what_only_a_person_can_fix_parks_the_account() {
        for e in [
            SignInError::Flow(oauth::Error::Denied),
            SignInError::Flow(oauth::Error::Expired),
            SignInError::Refused {
                reason: "invalid_grant".into(),
                kept: Some("/d/credentials/oauth-tokens.refused.json".into()),
            },
            SignInError::Credentials(CredentialError::Exposed {
                path: "/d/credentials/oauth-tokens.json".into(),
                mode: 0o644,
            }),
        ] {
            let message = e.to_string();
            assert!(
                message.contains("sign in again") || message.contains("sign-in again"),
                "{message}"
            );
            assert!(
                matches!(reaction(e), Reaction::NeedsCredentials { .. }),
                "{message}"
            );
        }
        let refused = SignInError::Refused {
            reason: "x".into(),
            kept: Some("/d/aside.json".into()),
        };
        assert!(refused.to_string().contains("/d/aside.json"));
    }

    #[test]
    fn server_configuration_and_transient_trouble_are_told_apart() {
        let server = SignInError::Flow(oauth::Error::Server {
            error: "invalid_client".into(),
            description: None,
        });
        assert!(matches!(
            reaction(server),
            Reaction::FixConfiguration { .. }
        ));
        let busy = SignInError::Flow(oauth::Error::Http { status: 503 });
        assert!(matches!(reaction(busy), Reaction::Retry { after } if !after.is_zero()));
        let network = SignInError::Flow(oauth::Error::Transport(transport::Error::Network(
            "reset".into(),
        )));
        assert!(matches!(reaction(network), Reaction::Retry { .. }));
    }

    #[test]
    fn a_token_error_is_explained_only_after_a_refusal() {
        let sign_in = SignIn::default();
        let plain = sign_in.explain(transport::Error::Token("offline".into()).into());
        assert!(matches!(
            plain,
            EngineError::Transport(transport::Error::Token(_))
        ));
        *sign_in.refused_slot() = Some(SignInError::Refused {
            reason: "invalid_grant".into(),
            kept: None,
        });
        let explained = sign_in.explain(transport::Error::Token("x".into()).into());
        assert!(matches!(
            explained,
            EngineError::SignIn(SignInError::Refused { .. })
        ));
        assert!(sign_in.refused_slot().is_none(), "explained once");
    }
}
