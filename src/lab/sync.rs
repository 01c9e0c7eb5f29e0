//! Sync (MS-ASCMD 2.2.1.21) and GetItemEstimate (2.2.1.9).
//!
//! Per device and collection the lab keeps the sync key and what the client holds
//! (ServerId → revision). A request with the current key gets the changes since; one with
//! the key before it repeats the last batch (one retry, as Exchange allows); any other key
//! gets Status 3. Server changes go out as Add/Change/Delete in batches of WindowSize with
//! MoreAvailable, a new key per batch. Client Add/Change/Delete/Fetch are applied first,
//! with a response per Add and Fetch and per failed Change/Delete (a Change of an item the
//! server changed since gets Status 7 unless Options Conflict is 0; a repeated ClientId
//! gets its first ServerId). Empty and Partial requests reuse the last full request;
//! Wait/HeartbeatInterval hold the request until a change arrives.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::model::{Class, Item, prop_text, props_from_node};
use super::protocol::{Ctx, Reply, bad_body};
use super::render::{BodyOptions, Out, WResult, document, status_document, write_item};
use super::seed::folder;
use super::state::{CollectionState, State};
use crate::eas::Node;
use crate::eas::estimate::{
    COLLECTION as GIE_COLLECTION, COLLECTION_ID as GIE_COLLECTION_ID,
    COLLECTIONS as GIE_COLLECTIONS, ESTIMATE as GIE_ESTIMATE, GET_ITEM_ESTIMATE as GIE,
    RESPONSE as GIE_RESPONSE, STATUS as GIE_STATUS,
};
use crate::eas::sync::{
    ADD, APPLICATION_DATA, CHANGE, CLASS, CLIENT_ID, COLLECTION, COLLECTION_ID, COLLECTIONS,
    COMMANDS, CONFLICT, CONVERSATION_MODE, DELETE, DELETES_AS_MOVES, FETCH, FILTER_TYPE,
    GET_CHANGES, HEARTBEAT_INTERVAL, LIMIT, MORE_AVAILABLE, OPTIONS, PARTIAL, RESPONSES, SERVER_ID,
    STATUS, SYNC, SYNC_KEY, Status, WAIT, WINDOW_SIZE,
};
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

const SUPPORTED: Tag = Tag::named(cp::AIRSYNC, "Supported");

/// The most items per batch, whatever the client asks for.
const MAX_WINDOW: usize = 512;
const DEFAULT_WINDOW: usize = 100;

/// A client operation inside Commands.
#[derive(Debug, Clone)]
pub enum ClientCommand {
    Add {
        client_id: Option<String>,
        data: Option<Node>,
    },
    Change {
        server_id: String,
        data: Option<Node>,
    },
    Delete {
        server_id: String,
    },
    Fetch {
        server_id: String,
    },
}

/// One Collection of a Sync request (kept per device for empty and Partial requests).
#[derive(Debug, Clone)]
pub struct CollectionRequest {
    pub sync_key: String,
    pub collection_id: String,
    pub get_changes: Option<bool>,
    pub window_size: Option<usize>,
    pub deletes_as_moves: bool,
    pub options: BodyOptions,
    /// Options Conflict: 0 the client's change wins, 1 (or absent) the server's.
    pub conflict: Option<u8>,
    pub commands: Vec<ClientCommand>,
}

fn parse_bool(n: &Node) -> bool {
    // An empty element means true (GetChanges, DeletesAsMoves).
    n.text()
        .map(str::trim)
        .is_none_or(|t| t.is_empty() || t == "1")
}

/// The rank of each Collection child in the strict request order of MS-ASCMD 2.2.3.29.2.
fn rank(tag: Tag) -> Option<u8> {
    [
        CLASS,
        SYNC_KEY,
        COLLECTION_ID,
        SUPPORTED,
        DELETES_AS_MOVES,
        GET_CHANGES,
        WINDOW_SIZE,
        CONVERSATION_MODE,
        OPTIONS,
        COMMANDS,
    ]
    .iter()
    .position(|t| *t == tag)
    .map(|p| p as u8)
}

fn parse_collection(node: &Node) -> Result<CollectionRequest, String> {
    let mut last = 0u8;
    for child in node.children() {
        let r =
            rank(child.tag).ok_or_else(|| format!("unexpected {} in a Collection", child.tag))?;
        // Options may repeat (one per Class in 14.x); anything else out of order is refused.
        if r < last {
            return Err(format!("{} is out of order in a Collection", child.tag));
        }
        last = r;
    }
    let sync_key = node
        .child_text(SYNC_KEY)
        .ok_or("a Collection has no SyncKey")?
        .trim()
        .to_string();
    let collection_id = node
        .child_text(COLLECTION_ID)
        .ok_or("a Collection has no CollectionId")?
        .to_string();
    if sync_key.is_empty() || collection_id.is_empty() {
        return Err("SyncKey and CollectionId must not be empty".into());
    }
    let window_size = match node.child_text(WINDOW_SIZE) {
        Some(t) => Some(
            t.trim()
                .parse::<usize>()
                .map_err(|_| "WindowSize is not a number")?,
        ),
        None => None,
    };
    let mut commands = Vec::new();
    if let Some(c) = node.child(COMMANDS) {
        if c.children().is_empty() {
            return Err("Commands is empty".into());
        }
        for op in c.children() {
            let sid = || {
                op.child_text(SERVER_ID)
                    .map(str::to_string)
                    .ok_or_else(|| format!("{} without ServerId", op.tag))
            };
            commands.push(match op.tag {
                t if t == ADD => ClientCommand::Add {
                    client_id: op.child_text(CLIENT_ID).map(str::to_string),
                    data: op.child(APPLICATION_DATA).cloned(),
                },
                t if t == CHANGE => ClientCommand::Change {
                    server_id: sid()?,
                    data: op.child(APPLICATION_DATA).cloned(),
                },
                t if t == DELETE => ClientCommand::Delete { server_id: sid()? },
                t if t == FETCH => ClientCommand::Fetch { server_id: sid()? },
                other => return Err(format!("unexpected {other} in Commands")),
            });
        }
    }
    Ok(CollectionRequest {
        sync_key,
        collection_id,
        get_changes: node.child(GET_CHANGES).map(parse_bool),
        window_size,
        deletes_as_moves: node.child(DELETES_AS_MOVES).is_none_or(parse_bool),
        options: BodyOptions::from_options(node.child(OPTIONS))?,
        conflict: match node.child(OPTIONS).and_then(|o| o.child_text(CONFLICT)) {
            Some(t) => match t.trim() {
                "0" => Some(0),
                "1" => Some(1),
                other => return Err(format!("Conflict {other:?} is not 0 or 1")),
            },
            None => None,
        },
        commands,
    })
}

/// One entry of Responses: the operation, its ClientId (Add), ServerId, status, and the item
/// for a Fetch.
struct ItemResponse(Tag, Option<String>, String, u32, Option<Item>);

/// What one collection's processing produced, ready to write.
struct CollectionResult {
    collection_id: String,
    request_key: String,
    sync_key: String,
    status: u32,
    more_available: bool,
    deletes: Vec<String>,
    changes: Vec<Item>,
    adds: Vec<Item>,
    responses: Vec<ItemResponse>,
    options: BodyOptions,
}

impl CollectionResult {
    fn failed(req: &CollectionRequest, status: u32) -> CollectionResult {
        CollectionResult {
            collection_id: req.collection_id.clone(),
            request_key: req.sync_key.clone(),
            sync_key: req.sync_key.clone(),
            status,
            more_available: false,
            deletes: Vec::new(),
            changes: Vec::new(),
            adds: Vec::new(),
            responses: Vec::new(),
            options: req.options.clone(),
        }
    }

    fn is_quiet(&self) -> bool {
        self.status == Status::Success.code()
            && self.sync_key == self.request_key
            && !self.more_available
            && self.deletes.is_empty()
            && self.changes.is_empty()
            && self.adds.is_empty()
            && self.responses.is_empty()
    }
}

/// Whether `item` passes the FilterType (MS-ASCMD 2.2.3.70.2) at time `now`.
pub fn passes_filter(item: &Item, filter: u8, now: i64) -> bool {
    let days = match filter {
        1 => 1,
        2 => 3,
        3 => 7,
        4 => 14,
        5 => 30,
        6 => 90,
        7 => 180,
        8 => return item.class != Class::Tasks || prop_text(&item.props, "Complete") != Some("1"),
        _ => return true,
    };
    match item.class {
        Class::Email | Class::Calendar => item.filter_time >= now - days * 86_400,
        _ => true,
    }
}

/// The changes the client lacks: ServerIds to delete, items changed, items to add (mail
/// newest first).
fn pending<'a>(
    st: &'a State,
    folder_id: &str,
    known: &BTreeMap<String, u64>,
    filter: u8,
    now: i64,
) -> (Vec<String>, Vec<&'a Item>, Vec<&'a Item>) {
    let in_folder: Vec<&Item> = st
        .items
        .values()
        .filter(|i| i.folder_id == folder_id)
        .collect();
    let present: std::collections::HashSet<&str> =
        in_folder.iter().map(|i| i.server_id.as_str()).collect();
    let deletes = known
        .keys()
        .filter(|id| !present.contains(id.as_str()))
        .cloned()
        .collect();
    let changes = in_folder
        .iter()
        .filter(|i| known.get(&i.server_id).is_some_and(|r| *r != i.revision))
        .copied()
        .collect();
    let mut adds: Vec<&Item> = in_folder
        .iter()
        .filter(|i| !known.contains_key(&i.server_id) && passes_filter(i, filter, now))
        .copied()
        .collect();
    adds.sort_by(|a, b| {
        b.filter_time
            .cmp(&a.filter_time)
            .then(a.server_id.cmp(&b.server_id))
    });
    (deletes, changes, adds)
}

/// How many changes a device has waiting in a folder (Ping, GetItemEstimate). A folder the
/// device never synchronized counts all its items.
pub fn pending_count(st: &State, device_id: &str, folder_id: &str, now: i64) -> usize {
    let empty = BTreeMap::new();
    let (known, filter) = st
        .devices
        .get(device_id)
        .and_then(|d| d.collections.get(folder_id))
        .map(|c| (&c.known, c.filter_type))
        .unwrap_or((&empty, 0));
    let (d, c, a) = pending(st, folder_id, known, filter, now);
    d.len() + c.len() + a.len()
}

fn new_key(st: &mut State, state: &mut CollectionState) -> String {
    state.counter += 1;
    let prefix = (st.rng.next_u64() & 0xFFFF_FFFF) as u32;
    format!("{{{prefix:08X}}}{}", state.counter)
}

fn process(
    st: &mut State,
    ctx: &Ctx,
    req: &CollectionRequest,
    now: i64,
    global_window: Option<usize>,
) -> CollectionResult {
    let Some(folder) = st.folder(&req.collection_id).cloned() else {
        return CollectionResult::failed(req, Status::FolderHierarchyChanged.code());
    };
    let Some(class) = folder.class() else {
        return CollectionResult::failed(req, Status::FolderHierarchyChanged.code());
    };
    let device_id = ctx.device_id.clone();
    let existing = st
        .device(&ctx.device_id, &ctx.device_type, &ctx.user)
        .collections
        .get(&req.collection_id)
        .cloned();

    if req.sync_key == "0" {
        if !req.commands.is_empty() || req.get_changes == Some(true) {
            return CollectionResult::failed(req, Status::ProtocolError.code());
        }
        // The ClientIds answered before survive a resync (see the deviations in `lab`): a
        // client resending an Add whose answer it lost still gets its first ServerId.
        let (counter, client_ids) = existing
            .map(|e| (e.counter, e.client_ids))
            .unwrap_or_default();
        let mut state = CollectionState {
            counter,
            client_ids,
            filter_type: req.options.filter_type,
            ..CollectionState::default()
        };
        state.sync_key = new_key(st, &mut state);
        let key = state.sync_key.clone();
        st.device(&ctx.device_id, &ctx.device_type, &ctx.user)
            .collections
            .insert(req.collection_id.clone(), state);
        let mut r = CollectionResult::failed(req, Status::Success.code());
        r.sync_key = key;
        return r;
    }
    let Some(mut state) = existing else {
        return CollectionResult::failed(req, Status::InvalidSyncKey.code());
    };
    let mut retried = false;
    let base = if req.sync_key == state.sync_key {
        state.known.clone()
    } else if let Some((prev_key, prev_known)) =
        state.previous.clone().filter(|(k, _)| *k == req.sync_key)
    {
        // A retry of the last batch: forget it and answer again from before it.
        state.sync_key = prev_key;
        state.known = prev_known.clone();
        state.previous = None;
        retried = true;
        prev_known
    } else {
        return CollectionResult::failed(req, Status::InvalidSyncKey.code());
    };
    state.filter_type = req.options.filter_type;
    let mut known = base.clone();
    let mut result = CollectionResult::failed(req, Status::Success.code());

    for op in &req.commands {
        match op {
            ClientCommand::Add { client_id, data } => {
                let Some(client_id) = client_id.clone() else {
                    result.responses.push(ItemResponse(
                        ADD,
                        None,
                        String::new(),
                        Status::ProtocolError.code(),
                        None,
                    ));
                    continue;
                };
                if let Some(sid) = state.client_ids.get(&client_id) {
                    // The same Add again (a retried batch, or a client resending after a
                    // crash): answer with the item made before, which the client then has.
                    if let Some(i) = st.items.get(sid) {
                        known.insert(sid.clone(), i.revision);
                    }
                    result.responses.push(ItemResponse(
                        ADD,
                        Some(client_id),
                        sid.clone(),
                        Status::Success.code(),
                        None,
                    ));
                    continue;
                }
                let Some(data) = data else {
                    result.responses.push(ItemResponse(
                        ADD,
                        Some(client_id),
                        String::new(),
                        Status::ConversionError.code(),
                        None,
                    ));
                    continue;
                };
                let (props, body) = props_from_node(data, class.as_str());
                let filter_time = item_time(class, &props, now);
                let new = super::state::NewItem {
                    folder_id: req.collection_id.clone(),
                    props,
                    body: body.unwrap_or_default(),
                    ..Default::default()
                };
                match st.add_item(new, filter_time) {
                    Ok(sid) => {
                        state.client_ids.insert(client_id.clone(), sid.clone());
                        let rev = st.items.get(&sid).map(|i| i.revision).unwrap_or(0);
                        known.insert(sid.clone(), rev);
                        result.responses.push(ItemResponse(
                            ADD,
                            Some(client_id),
                            sid,
                            Status::Success.code(),
                            None,
                        ));
                    }
                    Err(_) => result.responses.push(ItemResponse(
                        ADD,
                        Some(client_id),
                        String::new(),
                        Status::ConversionError.code(),
                        None,
                    )),
                }
            }
            ClientCommand::Change { server_id, data } => {
                let exists = st
                    .items
                    .get(server_id)
                    .is_some_and(|i| i.folder_id == req.collection_id);
                let Some(data) = data.as_ref().filter(|_| exists) else {
                    let code = if exists {
                        Status::ProtocolError.code()
                    } else {
                        Status::ObjectNotFound.code()
                    };
                    result.responses.push(ItemResponse(
                        CHANGE,
                        None,
                        server_id.clone(),
                        code,
                        None,
                    ));
                    continue;
                };
                // Changed on the server since the client last had it: a conflict. Unless the
                // client wins (Conflict 0), its change is dropped with Status 7 and the
                // server's version goes out with this response.
                let client_revision = base.get(server_id).copied();
                let server_revision = st.items.get(server_id).map(|i| i.revision);
                let conflict = matches!(
                    (client_revision, server_revision),
                    (Some(c), Some(s)) if s > c
                );
                if conflict && req.conflict != Some(0) {
                    result.responses.push(ItemResponse(
                        CHANGE,
                        None,
                        server_id.clone(),
                        Status::Conflict.code(),
                        None,
                    ));
                    continue;
                }
                let (props, body) = props_from_node(data, class.as_str());
                let _ = st.change_item(server_id, props, body);
                if let Some(i) = st.items.get(server_id) {
                    known.insert(server_id.clone(), i.revision);
                }
            }
            ClientCommand::Delete { server_id } => {
                let exists = st
                    .items
                    .get(server_id)
                    .is_some_and(|i| i.folder_id == req.collection_id);
                if !exists {
                    result.responses.push(ItemResponse(
                        DELETE,
                        None,
                        server_id.clone(),
                        Status::ObjectNotFound.code(),
                        None,
                    ));
                    continue;
                }
                if req.deletes_as_moves
                    && class == Class::Email
                    && req.collection_id != folder::DELETED
                {
                    let _ = st.move_item(server_id, folder::DELETED);
                } else {
                    let _ = st.delete_item(server_id);
                }
                known.remove(server_id);
            }
            ClientCommand::Fetch { server_id } => {
                match st
                    .items
                    .get(server_id)
                    .filter(|i| i.folder_id == req.collection_id)
                {
                    Some(item) => result.responses.push(ItemResponse(
                        FETCH,
                        None,
                        server_id.clone(),
                        Status::Success.code(),
                        Some(item.clone()),
                    )),
                    None => result.responses.push(ItemResponse(
                        FETCH,
                        None,
                        server_id.clone(),
                        Status::ObjectNotFound.code(),
                        None,
                    )),
                }
            }
        }
    }

    if req.get_changes != Some(false) {
        let window = req
            .window_size
            .or(global_window)
            .unwrap_or(DEFAULT_WINDOW)
            .clamp(1, MAX_WINDOW);
        let (deletes, changes, adds) =
            pending(st, &req.collection_id, &known, state.filter_type, now);
        let total = deletes.len() + changes.len() + adds.len();
        result.more_available = total > window;
        let mut budget = window;
        for id in deletes.into_iter().take(budget) {
            known.remove(&id);
            result.deletes.push(id);
        }
        budget -= result.deletes.len();
        for item in changes.into_iter().take(budget) {
            known.insert(item.server_id.clone(), item.revision);
            result.changes.push(item.clone());
        }
        budget -= result.changes.len();
        for item in adds.into_iter().take(budget) {
            known.insert(item.server_id.clone(), item.revision);
            result.adds.push(item.clone());
        }
    }
    let touched = !result.deletes.is_empty()
        || !result.changes.is_empty()
        || !result.adds.is_empty()
        || !req.commands.is_empty();
    if touched {
        // Only one retry: after it, the key it used is gone too.
        state.previous = (!retried).then(|| (req.sync_key.clone(), base));
        state.sync_key = new_key(st, &mut state);
        state.known = known;
    }
    result.sync_key = state.sync_key.clone();
    if let Some(d) = st.devices.get_mut(&device_id) {
        d.collections.insert(req.collection_id.clone(), state);
    }
    result
}

/// The time FilterType compares for a new item from the client.
fn item_time(class: Class, props: &[super::model::Prop], now: i64) -> i64 {
    let field = match class {
        Class::Email => "DateReceived",
        Class::Calendar => "EndTime",
        Class::Tasks => "DueDate",
        _ => return now,
    };
    prop_text(props, field)
        .and_then(super::model::parse_iso)
        .unwrap_or(now)
}

fn write_collection(w: &mut Out, v: ProtocolVersion, r: &CollectionResult) -> WResult {
    w.start(COLLECTION)?;
    w.text_element(SYNC_KEY, &r.sync_key)?;
    w.text_element(COLLECTION_ID, &r.collection_id)?;
    w.text_element(STATUS, &r.status.to_string())?;
    if r.more_available {
        w.empty(MORE_AVAILABLE)?;
    }
    if !(r.deletes.is_empty() && r.changes.is_empty() && r.adds.is_empty()) {
        w.start(COMMANDS)?;
        for id in &r.deletes {
            w.start(DELETE)?;
            w.text_element(SERVER_ID, id)?;
            w.end()?;
        }
        for (tag, items) in [(CHANGE, &r.changes), (ADD, &r.adds)] {
            for item in items.iter() {
                w.start(tag)?;
                w.text_element(SERVER_ID, &item.server_id)?;
                w.start(APPLICATION_DATA)?;
                write_item(w, v, item, &r.options, None)?;
                w.end()?;
                w.end()?;
            }
        }
        w.end()?;
    }
    if !r.responses.is_empty() {
        w.start(RESPONSES)?;
        for ItemResponse(tag, client_id, server_id, code, item) in &r.responses {
            w.start(*tag)?;
            if let Some(c) = client_id {
                w.text_element(CLIENT_ID, c)?;
            }
            if !server_id.is_empty() {
                w.text_element(SERVER_ID, server_id)?;
            }
            w.text_element(STATUS, &code.to_string())?;
            if let Some(item) = item {
                w.start(APPLICATION_DATA)?;
                write_item(w, v, item, &r.options, None)?;
                w.end()?;
            }
            w.end()?;
        }
        w.end()?;
    }
    w.end()
}

pub fn handle(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let top_status = |code: u32| status_document(v, SYNC, STATUS, code).into();
    let node = match ctx.tree(SYNC) {
        Ok(n) => n,
        Err(e) => return bad_body(e),
    };
    let mut wait: Option<Duration> = None;
    let mut global_window = None;
    let mut requests: Vec<CollectionRequest> = Vec::new();
    let mut partial = false;
    if let Some(node) = &node {
        for child in node.children() {
            let number = || child.text().and_then(|t| t.trim().parse::<u64>().ok());
            match child.tag {
                t if t == COLLECTIONS => {
                    for c in child.children() {
                        if c.tag != COLLECTION {
                            return top_status(Status::ProtocolError.code());
                        }
                        match parse_collection(c) {
                            Ok(r) => requests.push(r),
                            Err(_) => return top_status(Status::ProtocolError.code()),
                        }
                    }
                }
                t if t == WAIT || t == HEARTBEAT_INTERVAL => {
                    if wait.is_some() {
                        return top_status(Status::ProtocolError.code());
                    }
                    let Some(n) = number() else {
                        return top_status(Status::ProtocolError.code());
                    };
                    // Wait is in minutes (1 to 59), HeartbeatInterval in seconds (the Ping bounds).
                    let (secs, min, max) = if t == WAIT {
                        (n.saturating_mul(60), 1, 59)
                    } else {
                        let c = &ctx.lab.config;
                        (n, c.ping_min_heartbeat as u64, c.ping_max_heartbeat as u64)
                    };
                    if n < min || n > max {
                        let limit = if n < min { min } else { max };
                        return super::render::document(v, |w| {
                            w.start(SYNC)?;
                            w.text_element(
                                STATUS,
                                &Status::InvalidWaitOrHeartbeat.code().to_string(),
                            )?;
                            w.text_element(LIMIT, &limit.to_string())?;
                            w.end()
                        })
                        .into();
                    }
                    wait = Some(super::scaled_wait(&ctx.lab.config, secs));
                }
                t if t == WINDOW_SIZE => match number() {
                    Some(n) => global_window = Some(n as usize),
                    None => return top_status(Status::ProtocolError.code()),
                },
                t if t == PARTIAL => partial = true,
                _ => return top_status(Status::ProtocolError.code()),
            }
        }
    }
    // Empty and Partial requests build on the last full one.
    {
        let mut st = ctx.lab.shared.lock();
        let d = st.device(&ctx.device_id, &ctx.device_type, &ctx.user);
        if node.is_none() || partial || requests.is_empty() {
            let Some(cached) = d.last_sync.clone() else {
                return top_status(Status::IncompleteRequest.code());
            };
            for mut c in cached {
                if !requests.iter().any(|r| r.collection_id == c.collection_id) {
                    c.sync_key = d
                        .collections
                        .get(&c.collection_id)
                        .map(|s| s.sync_key.clone())
                        .unwrap_or(c.sync_key);
                    requests.push(c);
                }
            }
        }
        let mut cache = requests.clone();
        for c in &mut cache {
            c.commands.clear();
        }
        d.last_sync = Some(cache);
    }

    let deadline = wait.map(|w| Instant::now() + w);
    let mut st = ctx.lab.shared.lock();
    loop {
        let now = ctx.lab.now();
        let results: Vec<CollectionResult> = requests
            .iter()
            .map(|r| process(&mut st, ctx, r, now, global_window))
            .collect();
        // Later rounds use the keys this round handed out (nothing changed when quiet).
        let quiet = results.iter().all(CollectionResult::is_quiet);
        let expired = deadline.is_none_or(|d| Instant::now() >= d) || st.shutdown;
        if !quiet || expired {
            let any_changed = !quiet;
            if let Some(d) = st.devices.get_mut(&ctx.device_id) {
                if let Some(cache) = d.last_sync.as_mut() {
                    for (c, r) in cache.iter_mut().zip(results.iter()) {
                        c.sync_key = r.sync_key.clone();
                    }
                }
            }
            drop(st);
            if any_changed {
                ctx.lab.shared.changed.notify_all();
            }
            let empty_ok = match ctx.lab.config.empty_sync {
                super::EmptySync::Never => false,
                super::EmptySync::Always => true,
                super::EmptySync::ContactsCalendar => requests.iter().all(|r| {
                    let st = ctx.lab.shared.lock();
                    matches!(
                        st.folder(&r.collection_id).and_then(|f| f.class()),
                        Some(Class::Contacts | Class::Calendar)
                    )
                }),
            };
            if quiet && (empty_ok || wait.is_some()) {
                return Reply::Empty;
            }
            return document(v, |w| {
                w.start(SYNC)?;
                w.start(COLLECTIONS)?;
                for r in &results {
                    write_collection(w, v, r)?;
                }
                w.end()?;
                w.end()
            })
            .into();
        }
        let left = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        st = ctx.lab.shared.wait_for_change(st, left);
    }
}

pub fn get_item_estimate(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(GIE) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, GIE, GIE_STATUS, 2).into(),
        Err(e) => return bad_body(e),
    };
    let Some(collections) = node.child(GIE_COLLECTIONS) else {
        return status_document(v, GIE, GIE_STATUS, 2).into();
    };
    let st = ctx.lab.shared.lock();
    let now = ctx.lab.now();
    let mut answers: Vec<(u32, String, usize)> = Vec::new();
    for c in collections
        .children()
        .iter()
        .filter(|c| c.tag == GIE_COLLECTION)
    {
        let id = c.child_text(GIE_COLLECTION_ID).unwrap_or("").to_string();
        let key = c.child_text(SYNC_KEY).unwrap_or("").trim().to_string();
        let filter: u8 = c
            .child_text(FILTER_TYPE)
            .or_else(|| c.child(OPTIONS).and_then(|o| o.child_text(FILTER_TYPE)))
            .and_then(|f| f.trim().parse().ok())
            .unwrap_or(0);
        if st.folder(&id).and_then(|f| f.class()).is_none() {
            answers.push((2, id, 0));
            continue;
        }
        let state = st
            .devices
            .get(&ctx.device_id)
            .and_then(|d| d.collections.get(&id));
        match state {
            None => answers.push((3, id, 0)),
            Some(_) if key == "0" => answers.push((3, id, 0)),
            Some(s) if s.sync_key != key => answers.push((4, id, 0)),
            Some(s) => {
                let (d, ch, a) = pending(&st, &id, &s.known, filter, now);
                answers.push((1, id, d.len() + ch.len() + a.len()));
            }
        }
    }
    drop(st);
    document(v, |w| {
        w.start(GIE)?;
        for (code, id, estimate) in &answers {
            w.start(GIE_RESPONSE)?;
            w.text_element(GIE_STATUS, &code.to_string())?;
            w.start(GIE_COLLECTION)?;
            w.text_element(GIE_COLLECTION_ID, id)?;
            if *code == 1 {
                w.text_element(GIE_ESTIMATE, &estimate.to_string())?;
            }
            w.end()?;
            w.end()?;
        }
        w.end()
    })
    .into()
}
