//! The lab's OAuth 2.0 server (RFC 8628 device authorization grant, RFC 6749 refresh), so
//! the client's sign-in runs against real HTTP: the device authorization and token
//! endpoints on the ActiveSync listeners, approval through the admin API or the [`Handle`]
//! (`POST /oauth/approve`, `/oauth/deny`, `/oauth/expire` with `{"user_code"}`).
//!
//! A device code stays pending until approved or denied; the first
//! [`Settings::slow_down_polls`] polls of each code are answered `slow_down` (deterministic,
//! instead of timing the client). Approval issues an access and a refresh token; a refresh
//! rotates both (the old refresh token is then refused with `invalid_grant`). Every access
//! token issued stays valid for the lab's ActiveSync Bearer authentication.
//!
//! [`Handle`]: super::Handle

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Lab;
use super::http::{self, Request, Response};

/// The device authorization endpoint (the Microsoft v2 path).
pub const DEVICE_PATH: &str = "/oauth2/v2.0/devicecode";
/// The token endpoint.
pub const TOKEN_PATH: &str = "/oauth2/v2.0/token";
/// Where the user would approve (shown only; approval is the admin API's).
pub const VERIFY_PATH: &str = "/oauth2/verify";

/// How the OAuth server behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The only client id accepted (others: `invalid_client`).
    pub client_id: String,
    /// The polling interval announced, in seconds.
    pub interval: u32,
    /// How long a device code lives, in seconds.
    pub expires_in: u32,
    /// The announced lifetime of access tokens, in seconds.
    pub token_lifetime: u32,
    /// How many polls of each device code get `slow_down` before the normal answer.
    pub slow_down_polls: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            client_id: "easync-lab-client".into(),
            interval: 5,
            expires_in: 900,
            token_lifetime: 3600,
            slow_down_polls: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Pending,
    Approved,
    Denied,
    /// Tokens were issued: the code cannot be used again.
    Used,
}

struct Grant {
    device_code: String,
    user_code: String,
    expires: Instant,
    decision: Decision,
    polls: u32,
}

#[derive(Default)]
struct Inner {
    issued: u64,
    grants: Vec<Grant>,
    access: HashSet<String>,
    refresh: HashSet<String>,
}

/// The OAuth server's state (inside [`Lab`]).
#[derive(Default)]
pub struct State {
    inner: Mutex<Inner>,
}

/// Most device codes kept (old ones are dropped).
const MAX_GRANTS: usize = 100;

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `token` is an access token this server issued.
    pub fn accepts(&self, token: &str) -> bool {
        self.lock().access.contains(token)
    }

    /// Whether a device flow was started (the lab then offers Bearer in its challenge).
    pub fn active(&self) -> bool {
        !self.lock().grants.is_empty()
    }

    /// Approves, denies or expires the pending code `user_code`.
    pub fn decide(&self, user_code: &str, action: &str) -> Result<(), String> {
        let mut inner = self.lock();
        let grant = inner
            .grants
            .iter_mut()
            .find(|g| g.user_code.eq_ignore_ascii_case(user_code.trim()))
            .ok_or_else(|| format!("no device code with user code {user_code:?}"))?;
        if grant.decision != Decision::Pending {
            return Err(format!("user code {user_code:?} was already decided"));
        }
        match action {
            "approve" => grant.decision = Decision::Approved,
            "deny" => grant.decision = Decision::Denied,
            "expire" => grant.expires = Instant::now(),
            other => return Err(format!("unknown OAuth action {other:?}")),
        }
        Ok(())
    }

    /// Issues an access and a refresh token.
    fn issue(inner: &mut Inner, lifetime: u32) -> serde_json::Value {
        inner.issued += 1;
        let n = inner.issued;
        let salt = super::unix_now();
        let access = format!("lab-access-{n}-{salt:x}");
        let refresh = format!("lab-refresh-{n}-{salt:x}");
        inner.access.insert(access.clone());
        inner.refresh.insert(refresh.clone());
        json!({
            "token_type": "Bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": lifetime,
            "scope": "https://outlook.office365.com/EAS.AccessAsUser.All offline_access",
        })
    }
}

fn error(status: u16, code: &str, description: &str) -> Response {
    Response::json(
        status,
        &json!({ "error": code, "error_description": description }),
    )
}

fn form(req: &Request) -> Vec<(String, String)> {
    std::str::from_utf8(&req.body)
        .ok()
        .and_then(http::parse_query)
        .unwrap_or_default()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Serves the device authorization and token endpoints; `None` for other paths.
pub fn handle(lab: &Lab, req: &Request) -> Option<Response> {
    let path = req.path.as_str();
    let device = path.eq_ignore_ascii_case(DEVICE_PATH);
    if !device && !path.eq_ignore_ascii_case(TOKEN_PATH) {
        return None;
    }
    if req.method != "POST" {
        return Some(Response::text(405, "POST only"));
    }
    let form = form(req);
    let settings = &lab.config.oauth;
    if field(&form, "client_id") != Some(settings.client_id.as_str()) {
        return Some(error(401, "invalid_client", "unknown client_id"));
    }
    Some(if device {
        device_authorization(lab, req)
    } else {
        token(lab, &form)
    })
}

fn device_authorization(lab: &Lab, req: &Request) -> Response {
    let settings = &lab.config.oauth;
    let mut inner = lab.oauth.lock();
    inner.issued += 1;
    let n = inner.issued;
    let user_code = format!("LAB{n:05}");
    let device_code = format!("lab-device-{n}-{:x}", super::unix_now());
    if inner.grants.len() >= MAX_GRANTS {
        inner.grants.remove(0);
    }
    inner.grants.push(Grant {
        device_code: device_code.clone(),
        user_code: user_code.clone(),
        expires: Instant::now() + Duration::from_secs(settings.expires_in.into()),
        decision: Decision::Pending,
        polls: 0,
    });
    let scheme = if req.secure { "https" } else { "http" };
    let host = req.header("Host").unwrap_or("127.0.0.1");
    let verify = format!("{scheme}://{host}{VERIFY_PATH}");
    Response::json(
        200,
        &json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verify,
            "verification_uri_complete": format!("{verify}?code={user_code}"),
            "expires_in": settings.expires_in,
            "interval": settings.interval,
            "message": format!("To sign in, open {verify} and enter the code {user_code}."),
        }),
    )
}

fn token(lab: &Lab, form: &[(String, String)]) -> Response {
    let settings = &lab.config.oauth;
    let mut inner = lab.oauth.lock();
    match field(form, "grant_type") {
        Some("urn:ietf:params:oauth:grant-type:device_code") => {
            let code = field(form, "device_code").unwrap_or("");
            let Some(grant) = inner.grants.iter_mut().find(|g| g.device_code == code) else {
                return error(400, "invalid_grant", "unknown device_code");
            };
            if Instant::now() >= grant.expires {
                return error(400, "expired_token", "the device code expired");
            }
            grant.polls += 1;
            if grant.polls <= settings.slow_down_polls {
                return error(400, "slow_down", "polling too fast");
            }
            match grant.decision {
                Decision::Pending => error(400, "authorization_pending", "waiting for the user"),
                Decision::Denied => error(400, "access_denied", "the user declined"),
                Decision::Used => error(400, "invalid_grant", "the device code was used"),
                Decision::Approved => {
                    grant.decision = Decision::Used;
                    Response::json(200, &State::issue(&mut inner, settings.token_lifetime))
                }
            }
        }
        Some("refresh_token") => {
            let presented = field(form, "refresh_token").unwrap_or("");
            if !inner.refresh.remove(presented) {
                return error(400, "invalid_grant", "unknown or used refresh token");
            }
            Response::json(200, &State::issue(&mut inner, settings.token_lifetime))
        }
        _ => error(400, "unsupported_grant_type", "unsupported grant_type"),
    }
}

/// The admin side: `POST /oauth/{approve,deny,expire}` with `{"user_code"}`; `None` for
/// other paths.
pub fn admin(lab: &Lab, req: &Request) -> Option<Response> {
    let action = req.path.strip_prefix("/oauth/")?;
    if !matches!(action, "approve" | "deny" | "expire") {
        return None;
    }
    if req.method != "POST" {
        return Some(Response::json(405, &json!({"error": "POST only"})));
    }
    let body: serde_json::Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return Some(Response::json(
                400,
                &json!({"error": format!("the JSON body is not valid: {e}")}),
            ));
        }
    };
    let Some(user_code) = body.get("user_code").and_then(|v| v.as_str()) else {
        return Some(Response::json(400, &json!({"error": "user_code missing"})));
    };
    Some(match lab.oauth.decide(user_code, action) {
        Ok(()) => Response::json(200, &json!({})),
        Err(e) => Response::json(404, &json!({ "error": e })),
    })
}
