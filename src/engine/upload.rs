//! Upload of local changes (the device → server half of two-way sync): what the user changed
//! in a folder's files since the last sync goes out as Sync Add/Change/Delete commands in
//! the folder's next Sync request, and the server's answers are settled into the state.
//!
//! Its place: the account's folder sync (`Account::sync_folder`) asks its
//! [`FolderApplier`](super::apply::FolderApplier) for a batch before each Sync request
//! ([`build_batch`]); the applier hands the response's client answers and server changes to
//! the batch's [`Outbound`], which [`Outbound::settle`]s them into the folder's item map
//! just before the new SyncKey is saved (so both become durable together).
//! [`super::account::Account::upload_once`] is the daemon's entry point when files change:
//! a local scan ([`plan`]) and, only when there is something to send, a Sync of those
//! folders.
//!
//! What goes out:
//! - vdir folders (contacts, calendar, tasks, notes): a file the item map does not know →
//!   Add (the ClientId recorded in the state's `pending_adds`, saved before sending, so a
//!   resend after a crash uses the same one); a file whose content hash differs → Change
//!   with every property (MS-ASCMD wants all of them for non-mail items); a file gone →
//!   Delete. A file that does not convert is logged and left alone.
//! - Maildir folders: a change of the `S` flag → `email:Read`, of `F` → `email:Flag`
//!   (active "Flag for follow up", or cleared); a message file gone → Delete. A message
//!   file added by hand cannot be uploaded (EAS adds mail only as drafts): it is logged
//!   once and never touched.
//!
//! The server's verdicts: an Add answered with a ServerId joins the item map with the
//! fingerprint of what was sent; a Change or Delete without a failure answer is done; a
//! Change the server also changed in the same response (a conflict it resolved in its own
//! favour) keeps the server's version the applier just wrote. A rejected Add or Change keeps
//! the local file, is logged with what to do, and its fingerprint is remembered (in this
//! process, see [`UploadMemory`]) so it is not sent again until the file changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use super::account::{Account, EngineError, Progress, sync_class};
use super::provision::EngineProvisioner;
use crate::config::{ConflictPolicy, SyncClass};
use crate::eas::item::Class;
use crate::eas::parse::Node;
use crate::eas::sync::{self, ClientCommand, ClientResponse, ConflictResolution, MailFlag, Status};
use crate::store::atomic::StoreError;
use crate::store::maildir::{Flags, Maildir};
use crate::store::state::{AccountState, Fingerprint, FolderState, ItemEntry};
use crate::store::vdir::{Vdir, VdirEntry};
use crate::store::{ical, note, vcard};
use crate::wbxml::ProtocolVersion;

const EMAIL_READ: crate::wbxml::Tag =
    crate::wbxml::Tag::named(crate::wbxml::tags::cp::EMAIL, "Read");

/// The flag text sent with an active mail flag (what Outlook shows).
pub const FOLLOW_UP: &str = "Flag for follow up";
/// Largest local file uploaded (the converters refuse more anyway).
pub const MAX_UPLOAD_FILE: usize = vcard::MAX_FILE_LEN;
/// Rejected fingerprints remembered at most; beyond, the memory starts over (each rejected
/// file is then tried once more).
const MAX_REMEMBERED: usize = 10_000;

/// What was uploaded (or refused) in one folder or class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadCounts {
    /// Items created on the device that the server took (it answered with a ServerId).
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    /// Local changes the server refused or that could not be converted (see the log).
    pub rejected: u64,
}

impl UploadCounts {
    pub fn total(&self) -> u64 {
        self.added + self.changed + self.deleted + self.rejected
    }

    pub fn add(&mut self, other: &UploadCounts) {
        self.added += other.added;
        self.changed += other.changed;
        self.deleted += other.deleted;
        self.rejected += other.rejected;
    }
}

/// What [`super::account::Account::upload_once`] did, per class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadSummary {
    /// The server, when one was contacted (no local change: none).
    pub url: Option<String>,
    pub classes: BTreeMap<SyncClass, UploadCounts>,
}

impl UploadSummary {
    /// Changes of every class.
    pub fn total(&self) -> UploadCounts {
        let mut t = UploadCounts::default();
        for c in self.classes.values() {
            t.add(c);
        }
        t
    }
}

impl fmt::Display for UploadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.url {
            None => return writeln!(f, "upload: no local changes"),
            Some(url) => writeln!(f, "uploaded to {url}")?,
        }
        for (class, c) in &self.classes {
            writeln!(
                f,
                "  {:<9} {} added, {} changed, {} deleted, {} rejected",
                class.as_str(),
                c.added,
                c.changed,
                c.deleted,
                c.rejected
            )?;
        }
        Ok(())
    }
}

/// What the account remembers between uploads in this process: the local changes refused
/// (by fingerprint, so an edit is tried again) and the hand-added mail already reported.
#[derive(Debug, Default)]
pub struct UploadMemory(Mutex<Remembered>);

#[derive(Debug, Default)]
struct Remembered {
    /// (collection, local name) → the fingerprint that was refused.
    rejected: HashMap<(String, String), Fingerprint>,
    /// (collection, message id) of mail added by hand, reported once.
    reported: HashSet<(String, String)>,
}

impl UploadMemory {
    pub fn new() -> UploadMemory {
        UploadMemory::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Remembered) -> T) -> T {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Whether `local` in `collection` was refused as it is now.
    pub fn is_rejected(&self, collection: &str, local: &str, fingerprint: Fingerprint) -> bool {
        self.with(|m| {
            m.rejected
                .get(&(collection.to_string(), local.to_string()))
                .is_some_and(|f| *f == fingerprint)
        })
    }

    fn reject(&self, collection: &str, local: &str, fingerprint: Fingerprint) {
        self.with(|m| {
            if m.rejected.len() >= MAX_REMEMBERED {
                m.rejected.clear();
            }
            m.rejected
                .insert((collection.to_string(), local.to_string()), fingerprint);
        })
    }

    /// True the first time `id` is reported for `collection`.
    fn first_report(&self, collection: &str, id: &str) -> bool {
        self.with(|m| {
            if m.reported.len() >= MAX_REMEMBERED {
                m.reported.clear();
            }
            m.reported.insert((collection.to_string(), id.to_string()))
        })
    }
}

/// Where a folder's items are on disk.
#[derive(Clone, Copy)]
pub enum LocalStore<'a> {
    Mail(&'a Maildir),
    Items { vdir: &'a Vdir, class: Class },
}

/// A mail whose flags the device changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailChange {
    pub server_id: String,
    pub local: String,
    pub was: Flags,
    pub now: Flags,
}

/// The local changes of one folder waiting to be uploaded (refused ones left out).
#[derive(Debug, Default)]
pub struct Plan {
    /// New files: (name, fingerprint).
    pub adds: Vec<(String, Fingerprint)>,
    /// Changed files: (ServerId, name, fingerprint).
    pub changes: Vec<(String, String, Fingerprint)>,
    pub mail_changes: Vec<MailChange>,
    /// ServerIds whose local item is gone.
    pub deletes: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty()
            && self.changes.is_empty()
            && self.mail_changes.is_empty()
            && self.deletes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.adds.len() + self.changes.len() + self.mail_changes.len() + self.deletes.len()
    }
}

/// The flags whose changes are uploaded.
const SYNCED_FLAGS: Flags = Flags::from_bits(Flags::SEEN.bits() | Flags::FLAGGED.bits());

fn synced_flags(flags: Flags) -> u8 {
    flags.bits() & SYNCED_FLAGS.bits()
}

/// Compares folder `collection_id` on disk with its item map: what there is to upload.
/// Reads every file of a vdir folder once (to hash it), lists a Maildir.
pub fn plan(
    collection_id: &str,
    folder: &FolderState,
    store: LocalStore<'_>,
    memory: &UploadMemory,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    match store {
        LocalStore::Items { vdir, .. } => {
            let changes = vdir.local_changes(&folder.items)?;
            for entry in changes.added {
                // A second copy waiting for removal is not the device's.
                if folder.stale_copies.contains(&entry.name) {
                    continue;
                }
                let fp = entry.fingerprint();
                if !memory.is_rejected(collection_id, &entry.name, fp) {
                    plan.adds.push((entry.name, fp));
                }
            }
            for (server_id, entry) in changes.changed {
                let fp = entry.fingerprint();
                if !memory.is_rejected(collection_id, &entry.name, fp) {
                    plan.changes.push((server_id, entry.name, fp));
                }
            }
            plan.deletes = changes.deleted;
        }
        LocalStore::Mail(maildir) => {
            // Visited one by one: a folder of 10,000 messages never sits in memory as a
            // list of paths.
            let mut messages: HashMap<String, Flags> = HashMap::new();
            maildir.visit(|m| {
                messages.insert(m.id, m.flags);
                false
            })?;
            for (server_id, entry) in folder.items.iter() {
                let Some(now) = messages.remove(&entry.local) else {
                    plan.deletes.push(server_id.to_string());
                    continue;
                };
                let was = match entry.fingerprint {
                    Fingerprint::Flags(bits) => Flags::from_bits(bits),
                    _ => now, // nothing recorded: nothing to compare with
                };
                if synced_flags(was) != synced_flags(now)
                    && !memory.is_rejected(collection_id, &entry.local, flags_fingerprint(now))
                {
                    plan.mail_changes.push(MailChange {
                        server_id: server_id.to_string(),
                        local: entry.local.clone(),
                        was,
                        now,
                    });
                }
            }
            for id in messages.keys() {
                if memory.first_report(collection_id, id) {
                    log::warn!(
                        "{}: message {id} was not delivered by easync and cannot be uploaded \
                         (ActiveSync adds mail only as drafts); it is left as it is",
                        maildir.root().display()
                    );
                }
            }
        }
    }
    Ok(plan)
}

fn flags_fingerprint(flags: Flags) -> Fingerprint {
    Fingerprint::Flags(flags.bits())
}

/// The ClientId of a new local item: a short hash of its name and content, so two items
/// that once had the same name never share one. Sent once, it is kept in `pending_adds`.
pub fn client_id(local: &str, fingerprint: Fingerprint) -> String {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(local.as_bytes());
    digest.update(&[0]);
    if let Fingerprint::Content(hash) = fingerprint {
        digest.update(&hash.to_be_bytes());
    }
    let d = digest.finish();
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The commands of one Sync request and what to settle from its answer.
#[derive(Debug)]
pub struct Batch {
    pub commands: Vec<ClientCommand>,
    pub outbound: Outbound,
    /// `pending_adds` changed: save the state before sending.
    pub pending_changed: bool,
}

/// Builds the next batch of at most `limit` commands for folder `collection_id`, skipping
/// what `attempted` holds (sent before in this sync) and adding what it takes to it. New
/// Adds are recorded in the folder's `pending_adds` (the caller saves the state before
/// sending). Files that do not convert are logged, remembered and counted as rejected.
pub fn build_batch(
    collection_id: &str,
    folder: &mut FolderState,
    store: LocalStore<'_>,
    version: ProtocolVersion,
    memory: &UploadMemory,
    attempted: &mut HashSet<String>,
    limit: usize,
) -> Result<Batch, StoreError> {
    let plan = plan(collection_id, folder, store, memory)?;
    let mut batch = Batch {
        commands: Vec::new(),
        outbound: Outbound::default(),
        pending_changed: false,
    };
    // Pending Adds whose file is gone: the server may have made the item before its answer
    // was lost. The Add goes again with the same ClientId and no data: a server that knows
    // the ClientId answers with the item's ServerId, which is then mapped to the missing
    // file and so deleted like any item removed on the device.
    let gone: Vec<(String, String)> = folder
        .pending_adds
        .iter()
        .filter(|(_, local)| !plan.adds.iter().any(|(name, _)| name == *local))
        .map(|(id, local)| (id.clone(), local.clone()))
        .collect();
    for (id, local) in gone {
        if batch.commands.len() >= limit {
            return Ok(batch);
        }
        if !attempted.insert(format!("gone:{id}")) {
            continue;
        }
        log::info!(
            "{local}: removed before the server answered its upload; asking what became of it"
        );
        batch
            .outbound
            .adds
            .insert(id.clone(), (local, Fingerprint::Unknown));
        batch.commands.push(ClientCommand::Add {
            client_id: id,
            data: Vec::new(),
        });
    }
    for server_id in plan.deletes {
        if batch.commands.len() >= limit {
            return Ok(batch);
        }
        if attempted.insert(format!("id:{server_id}")) {
            batch.outbound.deletes.insert(server_id.clone());
            batch.commands.push(ClientCommand::Delete { server_id });
        }
    }
    for change in plan.mail_changes {
        if batch.commands.len() >= limit {
            return Ok(batch);
        }
        if !attempted.insert(format!("id:{}", change.server_id)) {
            continue;
        }
        let mut data = Vec::new();
        if change.was.contains(Flags::SEEN) != change.now.contains(Flags::SEEN) {
            data.push(read_node(change.now.contains(Flags::SEEN)));
        }
        if change.was.contains(Flags::FLAGGED) != change.now.contains(Flags::FLAGGED) {
            let flag = if change.now.contains(Flags::FLAGGED) {
                MailFlag::Active {
                    flag_type: FOLLOW_UP.to_string(),
                }
            } else {
                MailFlag::Clear
            };
            data.push(sync::mail_flag_node(&flag));
        }
        batch.outbound.changes.insert(
            change.server_id.clone(),
            (change.local, flags_fingerprint(change.now)),
        );
        batch.commands.push(ClientCommand::Change {
            server_id: change.server_id,
            data,
        });
    }
    let LocalStore::Items { vdir, class } = store else {
        return Ok(batch);
    };
    for (server_id, local, _) in plan.changes {
        if batch.commands.len() >= limit {
            return Ok(batch);
        }
        if !attempted.insert(format!("id:{server_id}")) {
            continue;
        }
        let Some((data, fp)) = convert_file(
            collection_id,
            vdir,
            class,
            &local,
            version,
            memory,
            &mut batch,
        ) else {
            continue;
        };
        batch
            .outbound
            .changes
            .insert(server_id.clone(), (local, fp));
        batch
            .commands
            .push(ClientCommand::Change { server_id, data });
    }
    for (local, _) in plan.adds {
        if batch.commands.len() >= limit {
            return Ok(batch);
        }
        if !attempted.insert(format!("file:{local}")) {
            continue;
        }
        let Some((data, fp)) = convert_file(
            collection_id,
            vdir,
            class,
            &local,
            version,
            memory,
            &mut batch,
        ) else {
            continue;
        };
        let pending = folder
            .pending_adds
            .iter()
            .find(|(_, name)| **name == local)
            .map(|(id, _)| id.clone());
        let (client_id, recorded) = match pending {
            // A resend: a server that remembers the ClientId keeps what came first. When
            // the file changed since (its ClientId would differ), its fingerprint is left
            // unknown so that the next scan sends the change.
            Some(id) if id != client_id(&local, fp) => (id, Fingerprint::Unknown),
            Some(id) => (id, fp),
            None => {
                let id = client_id(&local, fp);
                folder.pending_adds.insert(id.clone(), local.clone());
                batch.pending_changed = true;
                (id, fp)
            }
        };
        batch
            .outbound
            .adds
            .insert(client_id.clone(), (local, recorded));
        batch.commands.push(ClientCommand::Add { client_id, data });
    }
    Ok(batch)
}

fn read_node(read: bool) -> Node {
    crate::eas::item::text_node(EMAIL_READ, if read { "1" } else { "0" })
}

/// Reads and converts one vdir file for upload; `None` (logged, remembered, counted) when
/// it cannot be read or converted.
fn convert_file(
    collection_id: &str,
    vdir: &Vdir,
    class: Class,
    local: &str,
    version: ProtocolVersion,
    memory: &UploadMemory,
    batch: &mut Batch,
) -> Option<(Vec<Node>, Fingerprint)> {
    let path = vdir.root().join(local);
    let (text, fp) = match read_bounded(&path) {
        Ok(Some(read)) => read,
        Ok(None) => return None, // removed meanwhile: the next scan sees it
        Err(problem) => {
            refuse(collection_id, &path, local, None, &problem, memory, batch);
            return None;
        }
    };
    let converted = match class {
        Class::Contacts => vcard::vcard_to_contact(&text, version).map_err(|e| e.0),
        Class::Calendar => ical::ical_to_event(&text, version).map_err(|e| e.0),
        Class::Tasks => ical::ical_to_task(&text, version).map_err(|e| e.0),
        Class::Notes => note::text_to_note(&text, version).map_err(|e| e.0),
        Class::Email => Err("mail is not a vdir class".to_string()),
    };
    match converted {
        Ok(item) => Some((item.data, fp)),
        Err(problem) => {
            refuse(
                collection_id,
                &path,
                local,
                Some(fp),
                &problem,
                memory,
                batch,
            );
            None
        }
    }
}

fn refuse(
    collection_id: &str,
    path: &Path,
    local: &str,
    fp: Option<Fingerprint>,
    problem: &str,
    memory: &UploadMemory,
    batch: &mut Batch,
) {
    log::warn!(
        "{} cannot be uploaded: {problem}; fix the file (it is kept as it is and sent once \
         it changes)",
        path.display()
    );
    memory.reject(collection_id, local, fp.unwrap_or(Fingerprint::Unknown));
    batch.outbound.counts.rejected += 1;
}

/// The text of `path` (at most [`MAX_UPLOAD_FILE`] bytes, UTF-8) with the fingerprint of
/// exactly those bytes; `Ok(None)` when the file is gone.
fn read_bounded(path: &Path) -> Result<Option<(String, Fingerprint)>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot be read ({e})")),
    };
    let mut bytes = Vec::new();
    file.take(MAX_UPLOAD_FILE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read ({e})"))?;
    if bytes.len() > MAX_UPLOAD_FILE {
        return Err(format!("it is larger than {MAX_UPLOAD_FILE} bytes"));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    let fp = VdirEntry {
        name: String::new(),
        modified: std::time::SystemTime::UNIX_EPOCH,
        size: bytes.len() as u64,
        hash,
    }
    .fingerprint();
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    Ok(Some((text, fp)))
}

/// The client changes of one Sync request in flight, and what the response said of them.
#[derive(Debug, Default)]
pub struct Outbound {
    /// ClientId → (local name, fingerprint sent).
    adds: BTreeMap<String, (String, Fingerprint)>,
    /// ServerId → (local name, fingerprint sent).
    changes: BTreeMap<String, (String, Fingerprint)>,
    deletes: BTreeSet<String>,
    /// ClientId → the server's answer.
    add_answers: BTreeMap<String, (Option<String>, Status)>,
    /// ServerId → the failure status of a Change.
    change_failures: BTreeMap<String, Status>,
    /// ServerIds the server itself changed or deleted in this response.
    touched_by_server: BTreeSet<String>,
    /// What was settled (and rejected while building the batch).
    pub counts: UploadCounts,
}

impl Outbound {
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.changes.is_empty() && self.deletes.is_empty()
    }

    /// The server sent its own change or delete of `server_id` in this response.
    pub fn server_touched(&mut self, server_id: &str) {
        if self.changes.contains_key(server_id) || self.deletes.contains(server_id) {
            self.touched_by_server.insert(server_id.to_string());
        }
    }

    /// The server's answer to one client change.
    pub fn answer(&mut self, response: &ClientResponse) {
        match response {
            ClientResponse::Add {
                client_id,
                server_id,
                status,
            } => {
                self.add_answers
                    .insert(client_id.clone(), (server_id.clone(), *status));
            }
            ClientResponse::Change { server_id, status } if *status != Status::Success => {
                self.change_failures.insert(server_id.clone(), *status);
            }
            _ => {}
        }
    }

    /// Records the outcome of the request in the folder's item map and `pending_adds`
    /// (the caller saves the state, with the new SyncKey). Returns the counts and the local
    /// files the caller must remove: copies of an item the device added that the server
    /// also sent as its own Add (a server answering a resent Add that way), the device's
    /// file being kept.
    pub fn settle(
        &mut self,
        collection_id: &str,
        folder: &mut FolderState,
        memory: &UploadMemory,
    ) -> Result<(UploadCounts, Vec<String>), StoreError> {
        let mut copies = Vec::new();
        for (client_id, (local, fp)) in std::mem::take(&mut self.adds) {
            match self.add_answers.remove(&client_id) {
                Some((Some(server_id), Status::Success)) if !server_id.is_empty() => {
                    folder.pending_adds.remove(&client_id);
                    if let Some(copy) = folder.items.get(&server_id).map(|e| e.local.clone()) {
                        if copy != local {
                            copies.push(copy);
                        }
                    }
                    folder.items.insert(
                        &server_id,
                        ItemEntry {
                            local,
                            fingerprint: fp,
                        },
                    )?;
                    self.counts.added += 1;
                }
                Some((_, status)) => {
                    folder.pending_adds.remove(&client_id);
                    log::warn!(
                        "the server refused the new item {local} (Sync status {}: {}); the \
                         file is kept and sent again once it changes",
                        status.code(),
                        status.description()
                    );
                    memory.reject(collection_id, &local, fp);
                    self.counts.rejected += 1;
                }
                None => log::info!(
                    "the server did not answer the upload of {local}: it is sent again with \
                     the same ClientId"
                ),
            }
        }
        for (server_id, (local, fp)) in std::mem::take(&mut self.changes) {
            let failure = self.change_failures.remove(&server_id);
            if self.touched_by_server.contains(&server_id) {
                // Both sides changed it and the server sent its version, which is on disk
                // now (its fingerprint recorded by the applier): the server won.
                log::info!("{local} changed on the server too: the server's version is kept");
                continue;
            }
            match failure {
                None => {
                    if let Some(entry) = folder.items.get_mut(&server_id) {
                        entry.fingerprint = fp;
                        self.counts.changed += 1;
                    }
                }
                Some(Status::ObjectNotFound) => {
                    // Gone on the server: the file becomes a new item, uploaded next time.
                    log::info!(
                        "{local} no longer exists on the server: it is uploaded as a new item"
                    );
                    folder.items.remove(&server_id);
                }
                Some(status) => {
                    let hint = if status == Status::Conflict {
                        "the server's version comes with the next sync and replaces it"
                    } else {
                        "the file is kept and sent again once it changes"
                    };
                    log::warn!(
                        "the server refused the change of {local} (Sync status {}: {}); {hint}",
                        status.code(),
                        status.description()
                    );
                    memory.reject(collection_id, &local, fp);
                    self.counts.rejected += 1;
                }
            }
        }
        for server_id in std::mem::take(&mut self.deletes) {
            if self.touched_by_server.contains(&server_id) {
                continue; // the server's change brought the item back, or it deleted it too
            }
            if folder.items.remove(&server_id).is_some() {
                self.counts.deleted += 1;
            }
        }
        Ok((self.counts, copies))
    }
}

/// The Sync Options `Conflict` value for the configured policy.
pub fn conflict_resolution(policy: ConflictPolicy) -> ConflictResolution {
    match policy {
        ConflictPolicy::ServerWins => ConflictResolution::ServerWins,
        ConflictPolicy::ClientWins => ConflictResolution::ClientWins,
    }
}

impl Account {
    /// Uploads the device's changes: scans the selected, already synced folders and Syncs
    /// exactly those with local changes (the server's changes to them come along and are
    /// applied). Nothing changed: no network at all. Before the first full cycle
    /// ([`Account::run_once`]) there is nothing to upload to.
    ///
    /// Errors are recorded as the state's `last_error` like [`Account::run_once`]'s.
    pub fn upload_once(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<UploadSummary, EngineError> {
        let result = self.upload_round(progress);
        self.recorded(result)
    }

    /// The selected, synced folders that have something to upload.
    fn folders_to_upload(
        &self,
        state: &AccountState,
        version: ProtocolVersion,
    ) -> Result<Vec<(String, Class)>, EngineError> {
        let data_dir = self.config.data_dir();
        let mut due = Vec::new();
        for (id, class) in self.selected_folders(state, version) {
            let Some(folder) = state.folders.get(&id) else {
                continue;
            };
            if folder.sync_key == sync::INITIAL_SYNC_KEY {
                continue; // not synced yet: the next cycle uploads with its sync
            }
            let plan = match class {
                Class::Email => {
                    let maildir = Maildir::for_folder(data_dir, &folder.local_dir)?;
                    plan(&id, folder, LocalStore::Mail(&maildir), &self.uploads)?
                }
                _ => {
                    let vdir = Vdir::for_folder(
                        data_dir,
                        class,
                        &folder.local_dir,
                        super::apply::extension(class),
                    )?;
                    let store = LocalStore::Items { vdir: &vdir, class };
                    plan(&id, folder, store, &self.uploads)?
                }
            };
            if !plan.is_empty() || !folder.pending_adds.is_empty() {
                log::debug!(
                    "folder {}: {} local change(s)",
                    folder.display_name,
                    plan.len()
                );
                due.push((id, class));
            }
        }
        Ok(due)
    }

    fn upload_round(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<UploadSummary, EngineError> {
        let mut state = self.state_file.load()?.into_state();
        if let Some(intent) = state.wipe_intent {
            return Err(EngineError::WipePending(
                intent,
                self.state_file.path().to_path_buf(),
            ));
        }
        let Some(version) = state.protocol() else {
            return Ok(UploadSummary::default());
        };
        let due = self.folders_to_upload(&state, version)?;
        if due.is_empty() {
            return Ok(UploadSummary::default());
        }
        let (mut session, user_agent) = self.connect(&mut state)?;
        let mut enforcer = self.enforcer();
        let mut prov = EngineProvisioner::new(&mut enforcer, self.device_information(&user_agent));
        let mut summary = UploadSummary {
            url: Some(session.state().url.clone()),
            classes: BTreeMap::new(),
        };
        for (id, class) in due {
            let applied = match self.sync_folder(
                &mut session,
                &mut prov,
                &mut state,
                &id,
                class,
                super::account::Uploads::WithSync,
                progress,
            ) {
                Err(EngineError::HierarchyChanged) => {
                    // The folder list changed: take it in; this folder's changes go
                    // with the next upload or cycle.
                    self.folder_sync(&mut session, &mut prov, &mut state)?;
                    continue;
                }
                result => result?,
            };
            summary
                .classes
                .entry(sync_class(class))
                .or_default()
                .add(&applied.uploaded);
        }
        state.policy_key = session.state().policy_key.map(|k| k.to_string());
        state.set_last_error(None);
        self.state_file.save(&state)?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::atomic::testdir::TestDir;

    const CARD: &str = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u1\r\nFN:Jane Doe\r\nN:Doe;Jane;;;\r\n\
                        END:VCARD\r\n";

    fn folder() -> FolderState {
        FolderState::new("Contacts", "0", 9, Some(Class::Contacts), "Contacts")
    }

    #[test]
    fn client_ids_are_stable_short_and_depend_on_name_and_content() {
        let a = client_id("a.vcf", Fingerprint::Content(1));
        assert_eq!(a, client_id("a.vcf", Fingerprint::Content(1)));
        assert_eq!(a.len(), 16);
        assert_ne!(a, client_id("a.vcf", Fingerprint::Content(2)));
        assert_ne!(a, client_id("b.vcf", Fingerprint::Content(1)));
    }

    #[test]
    fn a_batch_adds_changes_deletes_and_settles_the_answers() {
        let t = TestDir::new("upload-batch");
        let vdir = Vdir::open(t.path(), "vcf").unwrap();
        let memory = UploadMemory::new();
        let mut f = folder();
        let kept = vdir.write("kept.vcf", CARD.as_bytes()).unwrap();
        f.items
            .insert(
                "9:1",
                ItemEntry {
                    local: "kept.vcf".into(),
                    fingerprint: Fingerprint::Content(0),
                },
            )
            .unwrap();
        f.items
            .insert(
                "9:2",
                ItemEntry {
                    local: "gone.vcf".into(),
                    fingerprint: Fingerprint::Content(0),
                },
            )
            .unwrap();
        vdir.write("new.vcf", CARD.replace("u1", "u2").as_bytes())
            .unwrap();
        vdir.write("bad.vcf", b"not a card").unwrap();
        let store = LocalStore::Items {
            vdir: &vdir,
            class: Class::Contacts,
        };
        let mut attempted = HashSet::new();
        let mut batch = build_batch(
            "9",
            &mut f,
            store,
            ProtocolVersion::V16_1,
            &memory,
            &mut attempted,
            100,
        )
        .unwrap();
        assert!(batch.pending_changed);
        let kinds: Vec<&str> = batch
            .commands
            .iter()
            .map(|c| match c {
                ClientCommand::Add { .. } => "add",
                ClientCommand::Change { .. } => "change",
                ClientCommand::Delete { .. } => "delete",
                ClientCommand::Fetch { .. } => "fetch",
            })
            .collect();
        assert_eq!(kinds, ["delete", "change", "add"]);
        assert_eq!(batch.outbound.counts.rejected, 1, "the bad card");
        let ClientCommand::Add { client_id, .. } = &batch.commands[2] else {
            panic!()
        };
        assert_eq!(
            f.pending_adds.get(client_id).map(String::as_str),
            Some("new.vcf")
        );

        batch.outbound.answer(&ClientResponse::Add {
            client_id: client_id.clone(),
            server_id: Some("9:3".into()),
            status: Status::Success,
        });
        let (counts, _) = batch.outbound.settle("9", &mut f, &memory).unwrap();
        assert_eq!((counts.added, counts.changed, counts.deleted), (1, 1, 1));
        assert!(f.pending_adds.is_empty());
        assert_eq!(f.items.get("9:3").unwrap().local, "new.vcf");
        assert_eq!(f.items.get("9:1").unwrap().fingerprint, kept.fingerprint());
        assert!(f.items.get("9:2").is_none());
        // Nothing left but the bad card, which stays refused until it changes.
        assert!(plan("9", &f, store, &memory).unwrap().is_empty());
        assert!(std::fs::metadata(vdir.root().join("bad.vcf")).is_ok());
        vdir.write("bad.vcf", b"still not a card").unwrap();
        assert_eq!(plan("9", &f, store, &memory).unwrap().adds.len(), 1);
    }

    #[test]
    fn refused_and_conflicting_changes_are_not_sent_again() {
        let t = TestDir::new("upload-refused");
        let vdir = Vdir::open(t.path(), "vcf").unwrap();
        let memory = UploadMemory::new();
        let mut f = folder();
        vdir.write("a.vcf", CARD.as_bytes()).unwrap();
        vdir.write("b.vcf", CARD.replace("u1", "u2").as_bytes())
            .unwrap();
        for (id, local) in [("9:1", "a.vcf"), ("9:2", "b.vcf")] {
            f.items
                .insert(
                    id,
                    ItemEntry {
                        local: local.into(),
                        fingerprint: Fingerprint::Content(0),
                    },
                )
                .unwrap();
        }
        let store = LocalStore::Items {
            vdir: &vdir,
            class: Class::Contacts,
        };
        let mut batch = build_batch(
            "9",
            &mut f,
            store,
            ProtocolVersion::V16_1,
            &memory,
            &mut HashSet::new(),
            100,
        )
        .unwrap();
        assert_eq!(batch.commands.len(), 2);
        // 9:1 refused; 9:2 changed by the server in the same response.
        batch.outbound.answer(&ClientResponse::Change {
            server_id: "9:1".into(),
            status: Status::ConversionError,
        });
        batch.outbound.server_touched("9:2");
        let (counts, _) = batch.outbound.settle("9", &mut f, &memory).unwrap();
        assert_eq!((counts.changed, counts.rejected), (0, 1));
        assert_eq!(
            f.items.get("9:2").unwrap().fingerprint,
            Fingerprint::Content(0)
        );
        let left = plan("9", &f, store, &memory).unwrap();
        assert_eq!(
            left.changes.len(),
            1,
            "only the one the server did not answer"
        );
        assert_eq!(left.changes[0].0, "9:2");
    }

    #[test]
    fn a_resent_add_keeps_its_client_id_and_a_later_edit_is_sent_as_a_change() {
        let t = TestDir::new("upload-resend");
        let vdir = Vdir::open(t.path(), "vcf").unwrap();
        let memory = UploadMemory::new();
        let store = LocalStore::Items {
            vdir: &vdir,
            class: Class::Contacts,
        };
        let same = vdir.write("same.vcf", CARD.as_bytes()).unwrap();
        vdir.write("edited.vcf", CARD.replace("u1", "u2").as_bytes())
            .unwrap();
        let mut f = folder();
        let same_id = client_id("same.vcf", same.fingerprint());
        f.pending_adds.insert(same_id.clone(), "same.vcf".into());
        // Sent before the crash with other content.
        f.pending_adds
            .insert("0123456789abcdef".into(), "edited.vcf".into());
        let mut batch = build_batch(
            "9",
            &mut f,
            store,
            ProtocolVersion::V16_1,
            &memory,
            &mut HashSet::new(),
            100,
        )
        .unwrap();
        assert!(!batch.pending_changed, "the ClientIds were already saved");
        let mut sent: Vec<&str> = batch
            .commands
            .iter()
            .filter_map(|c| match c {
                ClientCommand::Add { client_id, .. } => Some(client_id.as_str()),
                _ => None,
            })
            .collect();
        sent.sort();
        let mut expected = vec!["0123456789abcdef", same_id.as_str()];
        expected.sort();
        assert_eq!(sent, expected);
        for (id, sid) in [(same_id.as_str(), "9:1"), ("0123456789abcdef", "9:2")] {
            batch.outbound.answer(&ClientResponse::Add {
                client_id: id.into(),
                server_id: Some(sid.into()),
                status: Status::Success,
            });
        }
        let (counts, copies) = batch.outbound.settle("9", &mut f, &memory).unwrap();
        assert_eq!(counts.added, 2);
        assert!(copies.is_empty());
        assert_eq!(f.items.get("9:1").unwrap().fingerprint, same.fingerprint());
        assert_eq!(
            f.items.get("9:2").unwrap().fingerprint,
            Fingerprint::Unknown
        );
        let left = plan("9", &f, store, &memory).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(
            left.changes[0].0, "9:2",
            "the server may hold the first content"
        );
    }

    #[test]
    fn batches_are_bounded_and_never_repeat_within_a_sync() {
        let t = TestDir::new("upload-bounded");
        let vdir = Vdir::open(t.path(), "vcf").unwrap();
        let memory = UploadMemory::new();
        let mut f = folder();
        for i in 0..5 {
            vdir.write(
                &format!("c{i}.vcf"),
                CARD.replace("u1", &format!("u{i}")).as_bytes(),
            )
            .unwrap();
        }
        let store = LocalStore::Items {
            vdir: &vdir,
            class: Class::Contacts,
        };
        let mut attempted = HashSet::new();
        let mut sizes = Vec::new();
        for _ in 0..4 {
            let batch = build_batch(
                "9",
                &mut f,
                store,
                ProtocolVersion::V16_1,
                &memory,
                &mut attempted,
                2,
            )
            .unwrap();
            sizes.push(batch.commands.len());
        }
        assert_eq!(sizes, [2, 2, 1, 0]);
        assert_eq!(f.pending_adds.len(), 5);
    }

    #[test]
    fn mail_flag_changes_become_read_and_flag_changes() {
        let t = TestDir::new("upload-mail");
        let maildir = Maildir::open(t.path()).unwrap();
        let memory = UploadMemory::new();
        let mut f = FolderState::new("Inbox", "0", 2, Some(Class::Email), "Inbox");
        let read = maildir
            .deliver(b"Subject: a\r\n\r\na\r\n", Flags::NONE)
            .unwrap();
        let flagged = maildir
            .deliver(b"Subject: b\r\n\r\nb\r\n", Flags::SEEN)
            .unwrap();
        let gone = maildir
            .deliver(b"Subject: c\r\n\r\nc\r\n", Flags::NONE)
            .unwrap();
        let by_hand = maildir
            .deliver(b"Subject: d\r\n\r\nd\r\n", Flags::NONE)
            .unwrap();
        for (id, m, bits) in [
            ("5:1", &read, Flags::NONE),
            ("5:2", &flagged, Flags::SEEN),
            ("5:3", &gone, Flags::NONE),
        ] {
            f.items
                .insert(
                    id,
                    ItemEntry {
                        local: m.id.clone(),
                        fingerprint: Fingerprint::Flags(bits.bits()),
                    },
                )
                .unwrap();
        }
        maildir
            .set_flags(&read.id, Flags::SEEN | Flags::REPLIED)
            .unwrap();
        maildir
            .set_flags(&flagged.id, Flags::SEEN | Flags::FLAGGED)
            .unwrap();
        maildir.remove(&gone.id).unwrap();
        let mut batch = build_batch(
            "5",
            &mut f,
            LocalStore::Mail(&maildir),
            ProtocolVersion::V16_1,
            &memory,
            &mut HashSet::new(),
            100,
        )
        .unwrap();
        assert!(!batch.pending_changed);
        assert_eq!(batch.commands.len(), 3);
        assert!(batch.commands.contains(&ClientCommand::Delete {
            server_id: "5:3".into()
        }));
        assert!(
            batch
                .commands
                .contains(&sync::mail_read_change("5:1", true))
        );
        assert!(batch.commands.contains(&sync::mail_flag_change(
            "5:2",
            &MailFlag::Active {
                flag_type: FOLLOW_UP.into()
            }
        )));
        let (counts, _) = batch.outbound.settle("5", &mut f, &memory).unwrap();
        assert_eq!((counts.changed, counts.deleted), (2, 1));
        let p = plan("5", &f, LocalStore::Mail(&maildir), &memory).unwrap();
        assert!(p.is_empty(), "{p:?}");
        // The hand-added message was never touched.
        assert!(maildir.find(&by_hand.id).unwrap().is_some());
    }
}
