//! The ActiveSync endpoint (MS-ASHTTP): OPTIONS, authentication, the plain and base64 query
//! forms, the protocol version header, fault injection, policy key enforcement, and the
//! dispatch of each command to its handler.

use std::time::Duration;

use base64::Engine as _;

use super::Lab;
use super::hostile;
use super::http::{self, Framing, Request, Response};
use super::state::{Fault, FaultKind};
use crate::eas::{Command, Limits, Node, Parser};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

pub const WBXML: &str = "application/vnd.ms-sync.wbxml";

/// What a command handler answers.
#[derive(Debug)]
pub enum Reply {
    /// HTTP 200 with a WBXML body.
    Wbxml(Vec<u8>),
    /// HTTP 200 with no body (SendMail success, unchanged Sync ...).
    Empty,
    /// Anything else (HTTP errors, multipart).
    Http(Response),
}

impl From<Result<Vec<u8>, String>> for Reply {
    fn from(r: Result<Vec<u8>, String>) -> Reply {
        match r {
            Ok(b) => Reply::Wbxml(b),
            Err(e) => Reply::Http(Response::text(500, e)),
        }
    }
}

/// One EAS request as the handlers see it.
pub struct Ctx<'a> {
    pub lab: &'a Lab,
    pub version: ProtocolVersion,
    pub command: Command,
    pub device_id: String,
    pub device_type: String,
    pub user: String,
    /// Every query parameter (plain form) or command parameter (base64 form), decoded.
    pub params: Vec<(String, String)>,
    pub policy_key: Option<String>,
    pub accept_multipart: bool,
    pub save_in_sent: bool,
    pub body: &'a [u8],
    pub content_type: Option<&'a str>,
}

/// Why a request body could not be read as the command's document.
#[derive(Debug)]
pub enum BodyError {
    /// Not WBXML at all, or truncated.
    Wbxml(String),
    /// WBXML, but the root element is not the command's.
    Structure(String),
}

impl Ctx<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request body as a generic tree under `root`; `None` for an empty body.
    pub fn tree(&self, root: Tag) -> Result<Option<Node>, BodyError> {
        if self.body.is_empty() {
            return Ok(None);
        }
        let limits = Limits {
            max_value: self.lab.config.max_body,
            max_tree_nodes: 1_000_000,
            max_entries: 1_000_000,
        };
        let mut p = Parser::with_limits(self.body, limits);
        let child = match p.root(root) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(crate::eas::Error::Protocol { message, .. }) => {
                return Err(BodyError::Structure(message));
            }
            Err(e) => return Err(BodyError::Wbxml(e.to_string())),
        };
        let node = p.tree(child).map_err(|e| BodyError::Wbxml(e.to_string()))?;
        p.finish().map_err(|e| BodyError::Wbxml(e.to_string()))?;
        Ok(Some(node))
    }
}

/// The root element and its Status for each command, for in-band common statuses.
pub fn root_and_status(command: Command) -> (Tag, Tag) {
    macro_rules! pair {
        ($page:expr, $root:literal) => {
            (Tag::named($page, $root), Tag::named($page, "Status"))
        };
    }
    match command {
        Command::Provision => pair!(cp::PROVISION, "Provision"),
        Command::FolderSync => pair!(cp::FOLDER_HIERARCHY, "FolderSync"),
        Command::FolderCreate => pair!(cp::FOLDER_HIERARCHY, "FolderCreate"),
        Command::FolderUpdate => pair!(cp::FOLDER_HIERARCHY, "FolderUpdate"),
        Command::FolderDelete => pair!(cp::FOLDER_HIERARCHY, "FolderDelete"),
        Command::Sync => pair!(cp::AIRSYNC, "Sync"),
        Command::Ping => pair!(cp::PING, "Ping"),
        Command::GetItemEstimate => pair!(cp::GET_ITEM_ESTIMATE, "GetItemEstimate"),
        Command::ItemOperations => pair!(cp::ITEM_OPERATIONS, "ItemOperations"),
        Command::SendMail => pair!(cp::COMPOSE_MAIL, "SendMail"),
        Command::SmartReply => pair!(cp::COMPOSE_MAIL, "SmartReply"),
        Command::SmartForward => pair!(cp::COMPOSE_MAIL, "SmartForward"),
        Command::MoveItems => pair!(cp::MOVE, "MoveItems"),
        Command::MeetingResponse => pair!(cp::MEETING_RESPONSE, "MeetingResponse"),
        Command::Search => pair!(cp::SEARCH, "Search"),
        Command::ResolveRecipients => pair!(cp::RESOLVE_RECIPIENTS, "ResolveRecipients"),
        Command::Settings => pair!(cp::SETTINGS, "Settings"),
        Command::Find => pair!(cp::FIND, "Find"),
    }
}

/// A reply carrying only a status in the command's root element (or HTTP 500 for 12.1
/// commands whose namespace the version lacks).
pub fn status_reply(ctx: &Ctx, code: u32) -> Reply {
    let (root, status) = root_and_status(ctx.command);
    if !root.in_version(ctx.version) {
        return Reply::Http(Response::text(500, format!("status {code}")));
    }
    super::render::status_document(ctx.version, root, status, code).into()
}

/// The answer to a body that is not valid WBXML: HTTP 400, as Exchange answers.
pub fn bad_body(e: BodyError) -> Reply {
    match e {
        BodyError::Wbxml(m) | BodyError::Structure(m) => Reply::Http(Response::text(
            400,
            format!("the request body is not valid: {m}"),
        )),
    }
}

/// Handles one request to the ActiveSync path. Returns the response and how to frame it.
pub fn handle(lab: &Lab, req: &Request) -> (Response, Framing) {
    let full = |r: Response| (r, Framing::Full);
    if let Err(r) = authenticate(lab, req) {
        return full(r);
    }
    let versions = lab
        .config
        .versions
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(",");
    if req.method == "OPTIONS" {
        let fault = lab.shared.lock().take_options_fault();
        match fault.map(|f| f.kind) {
            Some(FaultKind::CaptivePortal) => return full(captive_portal_page()),
            Some(FaultKind::Empty) => return full(Response::new(200)),
            _ => {}
        }
        let commands = Command::ALL
            .iter()
            .filter(|c| lab.config.versions.iter().any(|v| *v >= c.since()))
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(",");
        return full(
            Response::new(200)
                .with_header("Allow", "OPTIONS,POST")
                .with_header("MS-Server-ActiveSync", "16.1")
                .with_header("MS-ASProtocolVersions", versions)
                .with_header("MS-ASProtocolCommands", commands)
                .with_header("Public", "OPTIONS,POST"),
        );
    }
    if req.method != "POST" {
        return full(
            Response::text(405, "only OPTIONS and POST are allowed here")
                .with_header("Allow", "OPTIONS,POST"),
        );
    }
    let query = match parse_request_query(req) {
        Ok(q) => q,
        Err(r) => return full(r),
    };
    if query.device_id.is_empty() {
        return full(Response::text(
            lab.config.missing_device_id_status,
            "the DeviceId query parameter is missing",
        ));
    }
    if query.device_type.is_empty() {
        return full(Response::text(
            400,
            "the DeviceType query parameter is missing",
        ));
    }
    let Some(command) = query.command else {
        return full(Response::text(501, "unknown command"));
    };
    let Some(version) = query.version else {
        return full(Response::text(
            400,
            format!("the MS-ASProtocolVersion header is missing or not one of {versions}"),
        ));
    };
    if !lab.config.versions.contains(&version) {
        return full(Response::text(
            400,
            format!("protocol version {version} is not enabled here ({versions})"),
        ));
    }
    if version < command.since() {
        return full(Response::text(
            501,
            format!(
                "{command} needs protocol version {} or later",
                command.since()
            ),
        ));
    }

    // Faults that replace the answer come before any processing.
    let fault = {
        let mut st = lab.shared.lock();
        let d = st.device(&query.device_id, &query.device_type, &query.user);
        d.version = Some(version);
        d.requests += 1;
        st.take_fault(command.name())
    };
    if let Some(f) = &fault {
        match f.kind {
            FaultKind::RetryWith => return full(Response::new(449)),
            FaultKind::Redirect => {
                let location = f.location.clone().unwrap_or_else(|| lab.alias_url(req));
                return full(Response::new(451).with_header("X-MS-Location", location));
            }
            FaultKind::Throttle => {
                let after = f.retry_after.clone().unwrap_or_else(|| "1".into());
                return full(
                    Response::text(503, "the lab is throttling (injected fault)")
                        .with_header("Retry-After", after),
                );
            }
            FaultKind::ServerError => return full(Response::text(500, "injected server error")),
            FaultKind::CaptivePortal => return full(captive_portal_page()),
            FaultKind::Empty => return full(Response::new(200)),
            FaultKind::Slow => std::thread::sleep(Duration::from_millis(f.delay_ms.unwrap_or(500))),
            _ => {}
        }
    }

    let ctx = Ctx {
        lab,
        version,
        command,
        device_id: query.device_id,
        device_type: query.device_type,
        user: query.user,
        params: query.params,
        policy_key: query.policy_key,
        accept_multipart: query.accept_multipart
            || req
                .header("MS-ASAcceptMultiPart")
                .is_some_and(|v| v.eq_ignore_ascii_case("T")),
        save_in_sent: query.save_in_sent,
        body: &req.body,
        content_type: req.header("Content-Type"),
    };
    if let Some(answer) = fault.as_ref().and_then(|f| hostile_answer(&ctx, f)) {
        return answer;
    }
    let reply = match policy_gate(&ctx) {
        Some(_) if version <= ProtocolVersion::V12_1 => Reply::Http(Response::new(449)),
        Some(code) => status_reply(&ctx, code),
        None => dispatch(&ctx),
    };
    let mut resp = match reply {
        Reply::Wbxml(body) => Response::new(200).with_body(WBXML, body),
        Reply::Empty => Response::new(200),
        Reply::Http(r) => r,
    };
    if let Some(dir) = &lab.config.capture_dir {
        capture(dir, command, version, &resp);
    }
    let mut framing = Framing::Full;
    if let Some(f) = fault {
        match f.kind {
            FaultKind::Reset => framing = Framing::HalfThenClose,
            FaultKind::Stall => {
                framing = Framing::Stall(Duration::from_millis(f.delay_ms.unwrap_or(600_000)))
            }
            FaultKind::TruncatedGzip => framing = Framing::TruncatedGzip,
            FaultKind::Truncate => {
                let keep = resp.body.len() / 2;
                resp.body.truncate(keep.max(6.min(resp.body.len())));
            }
            FaultKind::Garbage => {
                resp = Response::new(200)
                    .with_body(WBXML, b"\x03\x01\x6a\x00\xff\xfe garbage \x00\x01".to_vec());
            }
            _ => {}
        }
    }
    (resp, framing)
}

/// The answer of a hostile fault that replaces the command's (see [`hostile`]); `None` for
/// the other faults, and where the request gives the fault nothing to aim at.
fn hostile_answer(ctx: &Ctx, fault: &Fault) -> Option<(Response, Framing)> {
    use hostile::Answer;
    let size = |default| fault.size.unwrap_or(default);
    let is = |c: Command| ctx.command == c;
    let answer = match fault.kind {
        FaultKind::HugeString => {
            Answer::Generated(hostile::huge_string(ctx, size(hostile::DEFAULT_HUGE_BYTES)))
        }
        FaultKind::HugeStringTable => Answer::Generated(hostile::huge_string_table(size(
            hostile::DEFAULT_HUGE_BYTES,
        ))),
        FaultKind::DeepNesting => {
            Answer::Generated(hostile::deep_nesting(ctx, size(hostile::DEFAULT_DEPTH)))
        }
        FaultKind::ManyFolders if is(Command::FolderSync) => {
            Answer::Generated(hostile::many_folders(size(hostile::DEFAULT_FOLDERS)))
        }
        FaultKind::ManyAdds if is(Command::Sync) => {
            hostile::many_adds(ctx, size(hostile::DEFAULT_ADDS))
        }
        FaultKind::HugeServerId if is(Command::Sync) => {
            hostile::huge_server_id(ctx, size(hostile::DEFAULT_ID_BYTES))
        }
        FaultKind::EndlessMore if is(Command::Sync) => hostile::endless_more(ctx),
        FaultKind::SyncKeyReset if is(Command::Sync) => hostile::sync_key_reset(ctx),
        FaultKind::PingLoop if is(Command::Ping) => hostile::ping_loop(ctx),
        _ => Answer::Normal,
    };
    match answer {
        Answer::Normal => None,
        Answer::Reply(Reply::Wbxml(body)) => {
            Some((Response::new(200).with_body(WBXML, body), Framing::Full))
        }
        Answer::Reply(Reply::Empty) => Some((Response::new(200), Framing::Full)),
        Answer::Reply(Reply::Http(r)) => Some((r, Framing::Full)),
        Answer::Generated(g) => Some((
            Response::new(200).with_header("Content-Type", WBXML),
            Framing::Generated(g),
        )),
    }
}

/// What a captive portal answers to every request: its sign-in page.
fn captive_portal_page() -> Response {
    Response::new(200).with_body(
        "text/html; charset=utf-8",
        b"<!DOCTYPE html><html><head><title>Wi-Fi sign-in</title></head><body>\
          <form method=post>Accept the terms to use the Internet</form></body></html>"
            .to_vec(),
    )
}

/// Writes one response body into the capture folder; a failure is logged, never fatal.
fn capture(dir: &std::path::Path, command: Command, version: ProtocolVersion, resp: &Response) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if resp.status != 200 || resp.body.is_empty() {
        return;
    }
    let multipart = resp
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("Content-Type") && v.contains("multipart"));
    let name = format!(
        "{:06}-{}-{}.{}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        command.name(),
        version.as_str(),
        if multipart { "multipart" } else { "wbxml" }
    );
    if let Err(e) = std::fs::write(dir.join(&name), &resp.body) {
        log::warn!("capture {name} into {}: {e}", dir.display());
    }
}

fn dispatch(ctx: &Ctx) -> Reply {
    match ctx.command {
        Command::Provision => super::provision::handle(ctx),
        Command::FolderSync => super::folders::folder_sync(ctx),
        Command::FolderCreate => super::folders::folder_create(ctx),
        Command::FolderUpdate => super::folders::folder_update(ctx),
        Command::FolderDelete => super::folders::folder_delete(ctx),
        Command::Sync => super::sync::handle(ctx),
        Command::Ping => super::ping::handle(ctx),
        Command::GetItemEstimate => super::sync::get_item_estimate(ctx),
        Command::ItemOperations => super::mail::item_operations(ctx),
        Command::SendMail | Command::SmartReply | Command::SmartForward => {
            super::mail::compose(ctx)
        }
        Command::MoveItems => super::mail::move_items(ctx),
        Command::MeetingResponse => super::mail::meeting_response(ctx),
        Command::Search => super::lookup::search(ctx),
        Command::ResolveRecipients => super::lookup::resolve_recipients(ctx),
        Command::Settings => super::lookup::settings(ctx),
        Command::Find => super::lookup::find(ctx),
    }
}

/// The common status that stops this command before it runs, if any: 140 (wipe pending),
/// 142 (no key), 143 (the policy changed since the key was issued), 144 (unknown key).
/// Ping and Provision are never stopped; without a policy no key is required.
fn policy_gate(ctx: &Ctx) -> Option<u32> {
    if !ctx.command.sends_policy_key() {
        return None;
    }
    let mut st = ctx.lab.shared.lock();
    let no_policy = st.policy.settings.is_empty();
    let generation = st.policy.generation;
    let d = st.device(&ctx.device_id, &ctx.device_type, &ctx.user);
    if super::provision::wipe_due(d.wipe, ctx.version) {
        return Some(140);
    }
    if no_policy {
        return None;
    }
    let key: Option<u32> = ctx
        .policy_key
        .as_deref()
        .and_then(|k| k.trim().parse().ok())
        .filter(|k| *k != 0);
    let Some(key) = key else { return Some(142) };
    if d.policy_key != Some(key) {
        return Some(if d.temporary_key == Some(key) {
            142
        } else {
            144
        });
    }
    (d.policy_generation != generation).then_some(143)
}

pub(super) fn authenticate(lab: &Lab, req: &Request) -> Result<(), Response> {
    let challenge = || {
        let mut r = Response::text(401, "authentication required")
            .with_header("WWW-Authenticate", "Basic realm=\"easync-lab\"");
        if !lab.config.bearer_tokens.is_empty() || lab.oauth.active() {
            r = r.with_header("WWW-Authenticate", "Bearer realm=\"easync-lab\"");
        }
        r
    };
    let Some(auth) = req.header("Authorization") else {
        return Err(challenge());
    };
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("Basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (user, password) = decoded.split_once(':').unwrap_or(("", ""));
        let ok = lab.config.users.iter().any(|(u, p)| {
            (u.eq_ignore_ascii_case(user)
                || u.split('@')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(user)))
                && p == password
        });
        return if ok { Ok(()) } else { Err(challenge()) };
    }
    if scheme.eq_ignore_ascii_case("Bearer") {
        if lab.config.bearer_tokens.iter().any(|t| t == value) || lab.oauth.accepts(value) {
            return Ok(());
        }
        let error = if lab.config.expired_tokens.iter().any(|t| t == value) {
            "Bearer realm=\"easync-lab\", error=\"invalid_token\", error_description=\"The access token has expired\""
        } else {
            "Bearer realm=\"easync-lab\", error=\"invalid_token\""
        };
        return Err(Response::text(401, "the bearer token is not valid")
            .with_header("WWW-Authenticate", error));
    }
    Err(challenge())
}

/// The request line's contents, from either query form.
#[derive(Debug, Default)]
struct Query {
    command: Option<Command>,
    version: Option<ProtocolVersion>,
    device_id: String,
    device_type: String,
    user: String,
    policy_key: Option<String>,
    params: Vec<(String, String)>,
    accept_multipart: bool,
    save_in_sent: bool,
}

fn parse_request_query(req: &Request) -> Result<Query, Response> {
    let raw = req.query.as_deref().unwrap_or("");
    let bad = |m: &str| Response::text(400, m.to_string());
    // The plain form has `name=value` pairs; base64 has `=` only as trailing padding.
    if raw.trim_end_matches('=').contains('=') || raw.is_empty() {
        let pairs =
            http::parse_query(raw).ok_or_else(|| bad("the query has an invalid %-escape"))?;
        let get = |n: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let cmd = get("Cmd");
        if cmd.is_empty() {
            return Err(bad("the Cmd query parameter is missing"));
        }
        Ok(Query {
            command: Command::from_name(&cmd),
            version: req
                .header("MS-ASProtocolVersion")
                .and_then(ProtocolVersion::parse),
            device_id: get("DeviceId"),
            device_type: get("DeviceType"),
            user: get("User"),
            policy_key: req.header("X-MS-PolicyKey").map(str::to_string),
            save_in_sent: get("SaveInSent").eq_ignore_ascii_case("T"),
            accept_multipart: false,
            params: pairs,
        })
    } else {
        // Clients send the base64 value raw or percent-encoded; a raw `+` is base64, not a
        // space.
        let text = http::percent_decode(&raw.replace('+', "%2B"))
            .ok_or_else(|| bad("the query has an invalid %-escape"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| bad("the base64-encoded query is not valid base64"))?;
        decode_base64_query(&bytes)
            .ok_or_else(|| bad("the base64-encoded query is malformed (MS-ASHTTP 2.2.1.1.1.1)"))
    }
}

/// Decodes the binary query of MS-ASHTTP 2.2.1.1.1.1.
fn decode_base64_query(b: &[u8]) -> Option<Query> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = b.get(pos..pos + n)?;
        pos += n;
        Some(s)
    };
    let version_byte = take(1)?[0];
    let code = take(1)?[0];
    let _locale = take(2)?;
    let id_len = take(1)?[0] as usize;
    let device_id = printable_or_hex(take(id_len)?);
    let key_len = take(1)?[0] as usize;
    let policy_key = match key_len {
        0 => None,
        4 => {
            let k = take(4)?;
            Some(u32::from_le_bytes([k[0], k[1], k[2], k[3]]).to_string())
        }
        _ => return None,
    };
    let type_len = take(1)?[0] as usize;
    let device_type = String::from_utf8(take(type_len)?.to_vec()).ok()?;
    let version = ProtocolVersion::ALL
        .into_iter()
        .find(|v| v.as_str().replace('.', "").parse::<u8>().ok() == Some(version_byte));
    let mut q = Query {
        command: Command::from_code(code),
        version,
        device_id,
        device_type,
        policy_key,
        ..Query::default()
    };
    while let Some(tag) = take(1) {
        let tag = tag[0];
        let len = take(1)?[0] as usize;
        let value = take(len)?;
        let name = match tag {
            0 => "AttachmentName",
            1 => "CollectionId",
            3 => "ItemId",
            4 => "LongId",
            6 => "Occurrence",
            7 => {
                let flags = value.first().copied().unwrap_or(0);
                q.save_in_sent = flags & 0x01 != 0;
                q.accept_multipart = flags & 0x02 != 0;
                continue;
            }
            8 => "User",
            _ => return None,
        };
        let value = String::from_utf8(value.to_vec()).ok()?;
        if tag == 8 {
            q.user = value.clone();
        }
        q.params.push((name.to_string(), value));
    }
    Some(q)
}

fn printable_or_hex(b: &[u8]) -> String {
    match core::str::from_utf8(b) {
        Ok(s)
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            s.to_string()
        }
        _ => b.iter().map(|x| format!("{x:02X}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_base64_query() {
        let mut b = vec![141u8, 0, 0x09, 0x04, 4];
        b.extend_from_slice(b"dev1");
        b.extend_from_slice(&[4, 0x2A, 0, 0, 0, 5]);
        b.extend_from_slice(b"Phone");
        b.extend_from_slice(&[8, 3]);
        b.extend_from_slice(b"lab");
        b.extend_from_slice(&[7, 1, 0x03]);
        let q = decode_base64_query(&b).unwrap();
        assert_eq!(q.command, Some(Command::Sync));
        assert_eq!(q.version, Some(ProtocolVersion::V14_1));
        assert_eq!(q.device_id, "dev1");
        assert_eq!(q.device_type, "Phone");
        assert_eq!(q.policy_key.as_deref(), Some("42"));
        assert_eq!(q.user, "lab");
        assert!(q.save_in_sent && q.accept_multipart);
        assert!(decode_base64_query(&b[..7]).is_none());
        let mut bad_key = vec![161u8, 9, 0, 0, 1, b'x', 3];
        bad_key.extend_from_slice(&[0, 0, 0]);
        assert!(decode_base64_query(&bad_key).is_none());
    }

    #[test]
    fn every_command_has_a_root_and_status() {
        for c in Command::ALL {
            let (root, status) = root_and_status(c);
            assert_eq!(root.name(), Some(c.name()));
            assert_eq!(status.name(), Some("Status"));
        }
    }
}
