//! Applies a Sync response to the store as it is read: the engine's [`SyncHandler`].
//!
//! Mail goes to Maildir (the MIME body streamed straight into a delivery, `email:Read` and
//! `email:Flag` as the flags `S` and `F`); contacts, calendar, tasks and notes are collected
//! into a bounded buffer, converted (`store::vcard`, `store::ical`, `store::note`) and
//! written as one vdir file each. Every item is committed before the next one is read, and
//! the collection's new SyncKey is saved only in [`SyncHandler::end_collection`], after
//! every item of the response is durable. Items are keyed by ServerId, so applying the same
//! response twice changes nothing. A conversion error for one item is logged and counted;
//! a store error stops the folder (the SyncKey does not move).
//!
//! With uploads enabled ([`FolderApplier::enable_upload`]) it also carries the local changes
//! of each request ([`FolderApplier::prepare_upload`], see [`super::upload`]): the server's
//! answers to them and its own changes of the same items are noted as they are read, and
//! settled into the item map in [`SyncHandler::end_collection`], saved with the new key.

use std::collections::HashSet;

use super::upload::{self, LocalStore, Outbound, UploadCounts, UploadMemory};
use std::io;
use std::path::Path;

use crate::eas;
use crate::eas::item::{BodyType, Class, LargeValue};
use crate::eas::parse::Node;
use crate::eas::sink::Sink;
use crate::eas::sync::{
    ClientCommand, ClientResponse, CollectionHeader, ServerChange, ServerItem, Status, SyncHandler,
};
use crate::store::atomic::StoreError;
use crate::store::incoming::IncomingJournal;
use crate::store::maildir::{Delivery, Flags, Maildir};
use crate::store::state::{AccountState, Fingerprint, ItemEntry, StateFile};
use crate::store::vdir::Vdir;
use crate::store::{ical, note, vcard};
use crate::wbxml::Tag;
use crate::wbxml::tags::cp;

/// The body buffer of contacts, calendar items, tasks and notes when `sync.body_size_limit`
/// is not set.
pub const DEFAULT_BODY_LIMIT: usize = 512 * 1024;

const EMAIL_READ: Tag = Tag::named(cp::EMAIL, "Read");
const EMAIL_FLAG: Tag = Tag::named(cp::EMAIL, "Flag");
const EMAIL_FLAG_STATUS: Tag = Tag::named(cp::EMAIL, "Status");
const CALENDAR_UID: Tag = Tag::named(cp::CALENDAR, "UID");

/// What one folder's Sync responses did, counted as they are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    /// Items that could not be converted or had no content (logged, skipped).
    pub failed: u64,
    pub bytes: u64,
    /// Local changes uploaded (not counted in [`Applied::changes`]).
    pub uploaded: UploadCounts,
}

impl Applied {
    /// Changes of any kind (what counts as progress of a Sync round).
    pub fn changes(&self) -> u64 {
        self.added + self.changed + self.deleted + self.failed
    }
}

/// A value collected in memory up to a limit (the rest is counted, not kept).
#[derive(Debug, Default)]
struct Bounded {
    data: Vec<u8>,
    limit: usize,
    overflow: bool,
}

impl Bounded {
    fn reset(&mut self, limit: usize) {
        self.data.clear();
        self.limit = limit;
        self.overflow = false;
    }

    /// The text kept (cut on a character boundary when it overflowed).
    fn text(&self) -> Option<String> {
        if self.data.is_empty() {
            return None;
        }
        let text = match std::str::from_utf8(&self.data) {
            Ok(t) => t.to_string(),
            Err(e) if self.overflow && e.error_len().is_none() => {
                String::from_utf8_lossy(&self.data[..e.valid_up_to()]).into_owned()
            }
            Err(_) => String::from_utf8_lossy(&self.data).into_owned(),
        };
        Some(text)
    }
}

impl Sink for Bounded {
    fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        let room = self.limit.saturating_sub(self.data.len());
        if data.len() > room {
            self.overflow = true;
        }
        self.data.extend_from_slice(&data[..data.len().min(room)]);
        Ok(())
    }
}

/// Where the items of one folder go.
enum Target<'m> {
    Mail {
        maildir: &'m Maildir,
        pending: Option<Delivery<'m>>,
    },
    Items {
        vdir: Vdir,
        body: Bounded,
        picture: Bounded,
    },
}

/// The [`SyncHandler`] for one folder.
pub struct FolderApplier<'m> {
    state: &'m mut AccountState,
    state_file: &'m StateFile,
    collection_id: String,
    class: Class,
    body_limit: usize,
    target: Target<'m>,
    /// What was applied so far.
    pub applied: Applied,
    /// The new SyncKey of the last response (saved).
    pub sync_key: Option<String>,
    /// The last response's collection header.
    pub header: Option<CollectionHeader>,
    /// A store error that stopped the response (the SyncKey did not move).
    pub failure: Option<StoreError>,
    /// During a full resync (after Sync status 3): the ServerIds the server sent, so that
    /// [`FolderApplier::sweep_unseen`] can drop the items it no longer has.
    pub seen: Option<HashSet<String>>,
    /// The most server changes one response may carry (the WindowSize asked for), and how
    /// many the response being read carried so far.
    window: usize,
    in_response: usize,
    /// The response carried more than `window` changes: the server ignores the protocol,
    /// so what it sent is not trusted (see [`FolderApplier::restart_folder`]).
    pub over_window: bool,
    /// The folder's journal of new item files not yet mapped by a saved state.
    incoming: IncomingJournal,
    upload: Option<Uploading<'m>>,
    /// The device's changes win conflicts (`[sync] conflict = "client-wins"`): a server
    /// change of an item the device changed since is not written over it; the upload that
    /// follows sends the device's version.
    keep_local_edits: bool,
}

/// The upload side of a folder's sync.
struct Uploading<'m> {
    memory: &'m UploadMemory,
    /// The client changes of the request in flight.
    outbound: Option<Outbound>,
    /// What was sent in this sync already (each local change goes once per sync).
    attempted: HashSet<String>,
}

/// The file extension of a vdir class.
pub fn extension(class: Class) -> &'static str {
    match class {
        Class::Contacts => crate::store::vdir::VCARD_EXTENSION,
        Class::Calendar | Class::Tasks => crate::store::vdir::ICALENDAR_EXTENSION,
        Class::Notes | Class::Email => "txt",
    }
}

impl<'m> FolderApplier<'m> {
    /// A handler for mail folder `collection_id`, delivering into `maildir`.
    pub fn mail(
        state: &'m mut AccountState,
        state_file: &'m StateFile,
        collection_id: &str,
        maildir: &'m Maildir,
    ) -> Self {
        Self::new(
            state,
            state_file,
            collection_id,
            Class::Email,
            0,
            Target::Mail {
                maildir,
                pending: None,
            },
        )
    }

    /// A handler for a contacts, calendar, tasks or notes folder stored in `vdir`, bodies
    /// kept up to `body_limit` bytes.
    pub fn items(
        state: &'m mut AccountState,
        state_file: &'m StateFile,
        collection_id: &str,
        class: Class,
        vdir: Vdir,
        body_limit: usize,
    ) -> Self {
        Self::new(
            state,
            state_file,
            collection_id,
            class,
            body_limit,
            Target::Items {
                vdir,
                body: Bounded::default(),
                picture: Bounded::default(),
            },
        )
    }

    fn new(
        state: &'m mut AccountState,
        state_file: &'m StateFile,
        collection_id: &str,
        class: Class,
        body_limit: usize,
        target: Target<'m>,
    ) -> Self {
        let incoming = IncomingJournal::new(match &target {
            Target::Mail { maildir, .. } => maildir.root(),
            Target::Items { vdir, .. } => vdir.root(),
        });
        FolderApplier {
            state,
            state_file,
            collection_id: collection_id.to_string(),
            class,
            body_limit,
            target,
            applied: Applied::default(),
            sync_key: None,
            header: None,
            failure: None,
            seen: None,
            window: usize::MAX,
            in_response: 0,
            over_window: false,
            incoming,
            upload: None,
            keep_local_edits: false,
        }
    }

    /// Refuses responses carrying more than `window` server changes.
    pub fn set_window(&mut self, window: usize) {
        self.window = window;
    }

    /// Called before each request: the window counts per response.
    pub fn begin_response(&mut self) {
        self.in_response = 0;
    }

    /// Sets the folder's SyncKey back to `"0"` and saves the state, so that its next sync
    /// downloads it again in full and drops what the server does not send again (a resync,
    /// as after Sync status 3). For a response the server broke the protocol in: what it
    /// already stored of it may be changes the server never made.
    pub fn restart_folder(&mut self) -> Result<(), StoreError> {
        if let Some(folder) = self.state.folders.get_mut(&self.collection_id) {
            folder.sync_key = crate::eas::sync::INITIAL_SYNC_KEY.to_string();
        }
        self.state_file.save(self.state)
    }

    /// Makes this applier carry the folder's local changes too (see [`super::upload`]).
    /// Makes the device's unsent edits win over the server's changes of the same items.
    pub fn keep_local_edits(&mut self, keep: bool) {
        self.keep_local_edits = keep;
    }

    pub fn enable_upload(&mut self, memory: &'m UploadMemory) {
        self.upload = Some(Uploading {
            memory,
            outbound: None,
            attempted: HashSet::new(),
        });
    }

    /// The client changes for the next Sync request (at most `limit`; none when uploads are
    /// not enabled or nothing is left). New Adds are saved in the state's `pending_adds`
    /// before this returns, so a resend after a crash uses the same ClientIds.
    pub fn prepare_upload(
        &mut self,
        version: crate::wbxml::ProtocolVersion,
        limit: usize,
    ) -> Result<Vec<ClientCommand>, StoreError> {
        let Some(up) = self.upload.as_mut() else {
            return Ok(Vec::new());
        };
        let Some(folder) = self.state.folders.get_mut(&self.collection_id) else {
            return Ok(Vec::new());
        };
        let store = match &self.target {
            Target::Mail { maildir, .. } => LocalStore::Mail(maildir),
            Target::Items { vdir, .. } => LocalStore::Items {
                vdir,
                class: self.class,
            },
        };
        let batch = upload::build_batch(
            &self.collection_id,
            folder,
            store,
            version,
            up.memory,
            &mut up.attempted,
            limit,
        )?;
        self.applied.uploaded.rejected += batch.outbound.counts.rejected;
        let mut outbound = batch.outbound;
        outbound.counts = UploadCounts::default();
        up.outbound = (!outbound.is_empty()).then_some(outbound);
        if batch.pending_changed {
            self.state_file.save(self.state)?;
        }
        Ok(batch.commands)
    }

    /// Settles the answered request's client changes into the item map (not saved here).
    fn settle_upload(&mut self) -> Result<bool, StoreError> {
        let Some(up) = self.upload.as_mut() else {
            return Ok(false);
        };
        let Some(mut outbound) = up.outbound.take() else {
            return Ok(false);
        };
        let Some(folder) = self.state.folders.get_mut(&self.collection_id) else {
            return Ok(false);
        };
        let (counts, copies) = outbound.settle(&self.collection_id, folder, up.memory)?;
        self.applied.uploaded.add(&counts);
        // Removed once the state that no longer maps them is saved (see `remove_stale_copies`).
        folder.stale_copies.extend(copies);
        Ok(true)
    }

    /// Removes the second copies the saved state lists (idempotent: a crash before the list
    /// is saved empty only makes the next run remove nothing again).
    fn remove_stale_copies(&mut self) -> Result<(), StoreError> {
        let Some(folder) = self.state.folders.get_mut(&self.collection_id) else {
            return Ok(());
        };
        if let Target::Items { vdir, .. } = &self.target {
            for copy in folder.stale_copies.drain(..) {
                log::info!("{copy}: a second copy of an item uploaded from this device: removed");
                vdir.remove(&copy)?;
            }
        } else {
            folder.stale_copies.clear();
        }
        Ok(())
    }

    /// Saves the state as it is (the item map of what is on disk; the folder's SyncKey only
    /// moves in [`SyncHandler::end_collection`]).
    pub fn save_items(&mut self) -> Result<(), StoreError> {
        self.state_file.save(self.state)?;
        self.incoming.forget()
    }

    /// Before the folder's sync: a journal an earlier, killed run left goes onto the
    /// orphans list (see [`crate::store::incoming`]).
    pub fn adopt_journal(&mut self) -> Result<(), StoreError> {
        self.incoming.adopt_leftover()
    }

    /// Once the folder's download is complete: removes the files on the orphans list that
    /// the state still does not map (the server did not send them again), then the list.
    /// Returns how many went.
    pub fn sweep_orphans(&mut self) -> Result<u64, StoreError> {
        let orphans = self.incoming.orphans()?;
        let Some(folder) = self.state.folders.get(&self.collection_id) else {
            return Ok(0);
        };
        let mut removed = 0;
        for local in orphans {
            if folder.items.server_id_of(&local).is_some() {
                continue;
            }
            let gone = match &self.target {
                Target::Mail { maildir, .. } => maildir.remove(&local)?,
                Target::Items { vdir, .. } => vdir.remove(&local)?,
            };
            if gone {
                log::info!("{local}: left by an interrupted sync and not sent again: removed");
                removed += 1;
            }
        }
        self.incoming.clear_orphans()?;
        Ok(removed)
    }

    /// After a full resync: removes the items the server did not send again (it deleted
    /// them while the folder's sync state was lost), then saves the state.
    pub fn sweep_unseen(&mut self) -> Result<u64, StoreError> {
        let Some(seen) = self.seen.take() else {
            return Ok(0);
        };
        let Some(folder) = self.state.folders.get_mut(&self.collection_id) else {
            return Ok(0);
        };
        let gone: Vec<String> = folder
            .items
            .iter()
            .filter(|(id, _)| !seen.contains(*id))
            .map(|(id, _)| id.to_string())
            .collect();
        for id in &gone {
            match &self.target {
                Target::Mail { maildir, .. } => maildir.remove_item(&mut folder.items, id)?,
                Target::Items { vdir, .. } => vdir.remove_item(&mut folder.items, id)?,
            };
        }
        self.applied.deleted += gone.len() as u64;
        self.state_file.save(self.state)?;
        Ok(gone.len() as u64)
    }

    /// Records a store error and turns it into the error that stops reading.
    fn fail(&mut self, error: StoreError) -> eas::Error {
        let message = error.to_string();
        self.failure = Some(error);
        eas::Error::Sink(io::Error::other(message))
    }

    fn apply(&mut self, change: ServerChange) -> Result<(), StoreError> {
        let Some(folder) = self.state.folders.get_mut(&self.collection_id) else {
            return Ok(()); // the folder left the state: nothing to apply to
        };
        if let (Some(seen), ServerChange::Add(item) | ServerChange::Change(item)) =
            (&mut self.seen, &change)
        {
            seen.insert(item.server_id.clone());
        }
        let map = &mut folder.items;
        // A full resync sends every item again, changed or not. One the device deleted since
        // the last sync stays deleted: its entry stays in the map, so the upload after the
        // download sends the Delete, instead of the file coming back.
        if let (Some(_), ServerChange::Add(item) | ServerChange::Change(item)) =
            (&self.seen, &change)
        {
            if let Some(entry) = map.get(&item.server_id) {
                let on_disk = match &self.target {
                    Target::Mail { maildir, .. } => maildir.find(&entry.local)?.is_some(),
                    Target::Items { vdir, .. } => vdir.entry(&entry.local)?.is_some(),
                };
                if !on_disk {
                    log::info!(
                        "{}: deleted on the device during a resync; the delete goes to the server",
                        entry.local
                    );
                    if let Target::Items { body, picture, .. } = &mut self.target {
                        body.reset(self.body_limit);
                        picture.reset(self.body_limit);
                    }
                    if let Target::Mail { pending, .. } = &mut self.target {
                        *pending = None;
                    }
                    return Ok(());
                }
            }
        }
        match (&mut self.target, change) {
            (
                _,
                ServerChange::Delete { server_id, .. } | ServerChange::SoftDelete { server_id },
            ) => {
                let known = map.get(&server_id).is_some();
                match &self.target {
                    Target::Mail { maildir, .. } => maildir.remove_item(map, &server_id)?,
                    Target::Items { vdir, .. } => vdir.remove_item(map, &server_id)?,
                };
                if known {
                    self.applied.deleted += 1;
                }
            }
            (
                Target::Mail { maildir, pending },
                ServerChange::Add(item) | ServerChange::Change(item),
            ) => {
                let known = map.get(&item.server_id).map(|e| e.fingerprint);
                let old_flags = match known {
                    Some(Fingerprint::Flags(bits)) => Flags::from_bits(bits),
                    _ => Flags::NONE,
                };
                let flags = mail_flags(item.data.as_ref().map(|d| &d.node), old_flags);
                let truncated = super::fetch::truncated_mime(item.data.as_ref().map(|d| &d.node));
                match pending.take() {
                    Some(delivery) => {
                        let len = delivery.len();
                        let message = if known.is_some() {
                            delivery.commit_item(map, &item.server_id, flags)?
                        } else {
                            // A name made from the ServerId: should the state be lost after
                            // this commit (a crash before the SyncKey is saved), the replayed
                            // item replaces this file instead of adding a copy.
                            let local = mail_name(&item.server_id);
                            self.incoming.note(&local)?;
                            let message = delivery.commit_as(&local, flags)?;
                            map.insert(
                                &item.server_id,
                                ItemEntry {
                                    local: message.id.clone(),
                                    fingerprint: Fingerprint::Flags(flags.bits()),
                                },
                            )?;
                            message
                        };
                        if let Some(whole_size) = truncated {
                            super::fetch::mark_truncated(maildir, &message, whole_size)?;
                        }
                        self.applied.bytes += len;
                        count(&mut self.applied, known.is_some());
                    }
                    None => match map.get(&item.server_id).map(|e| e.local.clone()) {
                        Some(local)
                            if self.keep_local_edits
                                && locally_flagged(maildir, &local, known)? =>
                        {
                            log::info!(
                                "mail {}: the device's flags win over the server's (client wins)",
                                item.server_id
                            );
                        }
                        Some(local) => {
                            maildir.set_flags(&local, flags)?;
                            map.insert(
                                &item.server_id,
                                ItemEntry {
                                    local,
                                    fingerprint: Fingerprint::Flags(flags.bits()),
                                },
                            )?;
                            self.applied.changed += 1;
                        }
                        None => {
                            log::warn!(
                                "mail {} came without its message (MIME): skipped",
                                item.server_id
                            );
                            self.applied.failed += 1;
                        }
                    },
                }
            }
            (
                Target::Items {
                    vdir,
                    body,
                    picture,
                },
                ServerChange::Add(item) | ServerChange::Change(item),
            ) => {
                let known = map.get(&item.server_id).is_some();
                if self.keep_local_edits {
                    if let Some(entry) = map.get(&item.server_id) {
                        let on_disk = vdir.entry(&entry.local)?.map(|e| e.fingerprint());
                        if on_disk.is_some_and(|f| f != entry.fingerprint) {
                            log::info!(
                                "{}: the device's edit wins over the server's (client wins)",
                                entry.local
                            );
                            body.reset(self.body_limit);
                            picture.reset(self.body_limit);
                            return Ok(());
                        }
                    }
                }
                let existing_uid = map
                    .get(&item.server_id)
                    .and_then(|e| read_uid(&vdir.root().join(&e.local)));
                let body_text = body.text();
                // A cut picture is a broken image: without it the card is still right.
                let picture_text = if picture.overflow {
                    log::warn!(
                        "the picture of {} is over the limit: left out",
                        item.server_id
                    );
                    None
                } else {
                    picture.text()
                };
                body.reset(self.body_limit);
                picture.reset(self.body_limit);
                let ctx = vcard::FromServer {
                    server_id: &item.server_id,
                    uid: existing_uid.as_deref(),
                    body: body_text.as_deref(),
                    picture: picture_text.as_deref(),
                };
                match convert(self.class, &item, &ctx) {
                    Ok(text) => {
                        let server_uid = item
                            .data
                            .as_ref()
                            .and_then(|d| d.node.child_text(CALENDAR_UID))
                            .map(str::to_string);
                        let uid = existing_uid.or(server_uid);
                        let mut writer = vdir.begin_item(map, &item.server_id, uid.as_deref())?;
                        let name = writer.name().to_string();
                        if !known {
                            self.incoming.note(&name)?;
                        }
                        std::io::Write::write_all(&mut writer, text.as_bytes())
                            .map_err(|e| StoreError::io("write", vdir.root().join(&name), e))?;
                        writer.commit_item(map, &item.server_id)?;
                        self.applied.bytes += text.len() as u64;
                        count(&mut self.applied, known);
                    }
                    Err(message) => {
                        log::warn!(
                            "{} item {} in folder {} not stored: {message}",
                            self.class.as_str(),
                            item.server_id,
                            self.collection_id
                        );
                        self.applied.failed += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The Maildir unique name of the mail with ServerId `server_id` (one name per ServerId
/// within a folder, no `:` or `/`).
pub fn mail_name(server_id: &str) -> String {
    format!("eas-{}", crate::store::names::item_file_stem(server_id))
}

/// Starts delivering a message into `maildir`; a store error is kept in `failure` (the
/// item then comes without its message and the response stops at the next step).
fn start_delivery<'a, 'm>(
    maildir: &'m Maildir,
    pending: &'a mut Option<Delivery<'m>>,
    failure: &mut Option<StoreError>,
) -> Option<&'a mut dyn Sink> {
    match maildir.begin_delivery() {
        Ok(delivery) => {
            *pending = Some(delivery);
            pending.as_mut().map(|d| d as &mut dyn Sink)
        }
        Err(e) => {
            *failure = Some(e);
            *pending = None;
            None
        }
    }
}

fn count(applied: &mut Applied, known: bool) {
    if known {
        applied.changed += 1;
    } else {
        applied.added += 1;
    }
}

/// The Maildir flags an email item's properties ask for; properties it lacks keep `old`.
pub fn mail_flags(node: Option<&Node>, old: Flags) -> Flags {
    let Some(node) = node else {
        return old;
    };
    let mut flags = old;
    if let Some(read) = node.child_text(EMAIL_READ) {
        flags = flags.with(Flags::SEEN, read.trim() == "1");
    }
    if let Some(flag) = node.child(EMAIL_FLAG) {
        // Status 2 is an active flag; 1 (complete) and an empty Flag clear it.
        let active = flag.child_text(EMAIL_FLAG_STATUS).map(str::trim) == Some("2");
        flags = flags.with(Flags::FLAGGED, active);
    }
    flags
}

/// The file text of a contacts, calendar, tasks or notes item.
fn convert(class: Class, item: &ServerItem, ctx: &vcard::FromServer) -> Result<String, String> {
    let Some(data) = item.data.as_ref() else {
        return Err("the server sent no ApplicationData".into());
    };
    let node = &data.node;
    match class {
        Class::Contacts => Ok(vcard::contact_to_vcard(node, ctx)),
        Class::Calendar => ical::event_to_ical(node, ctx).map_err(|e| e.0),
        Class::Tasks => ical::task_to_ical(node, ctx).map_err(|e| e.0),
        Class::Notes => Ok(note::note_to_text(node, ctx)),
        Class::Email => Err("mail is not a vdir class".into()),
    }
}

/// The UID of an existing vCard/iCalendar file (the first `UID:` line), if any.
pub(super) fn read_uid(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(vcard::MAX_FILE_LEN as u64)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.split(';').next()?.trim();
        (name.eq_ignore_ascii_case("UID") && !value.trim().is_empty())
            .then(|| value.trim().to_string())
    })
}

impl SyncHandler for FolderApplier<'_> {
    fn server_change(&mut self, collection_id: &str, change: ServerChange) -> eas::Result<()> {
        if collection_id != self.collection_id {
            log::warn!("Sync answered for collection {collection_id}, not asked: ignored");
            return Ok(());
        }
        if let Some(e) = &self.failure {
            return Err(eas::Error::Sink(io::Error::other(e.to_string())));
        }
        self.in_response += 1;
        if self.in_response > self.window {
            self.over_window = true;
            return Err(eas::Error::Limit {
                what: "server changes in one Sync answer (the WindowSize)",
                limit: self.window as u64,
                offset: 0,
            });
        }
        if let Some(outbound) = self.upload.as_mut().and_then(|u| u.outbound.as_mut()) {
            match &change {
                ServerChange::Add(item) | ServerChange::Change(item) => {
                    outbound.server_touched(&item.server_id)
                }
                ServerChange::Delete { server_id, .. } | ServerChange::SoftDelete { server_id } => {
                    outbound.server_touched(server_id)
                }
            }
        }
        self.apply(change).map_err(|e| self.fail(e))
    }

    fn client_response(
        &mut self,
        collection_id: &str,
        response: ClientResponse,
    ) -> eas::Result<()> {
        let outbound = self.upload.as_mut().and_then(|u| u.outbound.as_mut());
        match outbound {
            Some(outbound) if collection_id == self.collection_id => outbound.answer(&response),
            _ => log::debug!("unexpected answer to a client change: {response:?}"),
        }
        Ok(())
    }

    fn body_sink(
        &mut self,
        collection_id: &str,
        _server_id: &str,
        value: &LargeValue,
    ) -> Option<&mut dyn Sink> {
        if collection_id != self.collection_id {
            return None;
        }
        let body_limit = self.body_limit;
        match (&mut self.target, value) {
            (
                Target::Mail { maildir, pending },
                LargeValue::Mime
                | LargeValue::Body {
                    body_type: None | Some(BodyType::Mime),
                },
            ) => start_delivery(maildir, pending, &mut self.failure),
            (Target::Items { body, .. }, LargeValue::Body { .. }) => {
                body.reset(body_limit);
                Some(body)
            }
            (Target::Items { picture, .. }, LargeValue::Picture) => {
                picture.reset(body_limit);
                Some(picture)
            }
            _ => None,
        }
    }

    fn end_collection(&mut self, header: &CollectionHeader) -> eas::Result<()> {
        self.header = Some(header.clone());
        if let Some(e) = &self.failure {
            return Err(eas::Error::Sink(io::Error::other(e.to_string())));
        }
        if header.collection_id != self.collection_id {
            return Ok(());
        }
        if header.status() != Status::Success {
            // The server did not take the request: its client changes stay unsettled and are
            // found again by the next scan (new Adds stay pending with their ClientIds).
            if let Some(up) = self.upload.as_mut() {
                up.outbound = None;
            }
            return Ok(());
        }
        let settled = match self.settle_upload() {
            Ok(settled) => settled,
            Err(e) => return Err(self.fail(e)),
        };
        let key = header.sync_key.clone();
        if key.is_none() && !settled {
            return Ok(());
        }
        if let (Some(folder), Some(key)) = (self.state.folders.get_mut(&self.collection_id), &key) {
            folder.sync_key = key.clone();
        }
        // Every item of this response is committed: only now may the key move forward.
        if let Err(e) = self.state_file.save(self.state) {
            return Err(self.fail(e));
        }
        if let Err(e) = self.incoming.forget() {
            return Err(self.fail(e));
        }
        if let Err(e) = self.remove_stale_copies() {
            return Err(self.fail(e));
        }
        self.sync_key = key;
        Ok(())
    }
}

#[cfg(all(test, feature = "xml"))]
mod tests {
    use super::*;
    use crate::eas::sync::read_response;
    use crate::eas::testutil::{parser, wbxml_from_xml};
    use crate::store::atomic::testdir::TestDir;
    use crate::store::incoming;
    use crate::store::state::FolderState;

    // LF only: XML turns a CR LF in the fixture's text into LF.
    const MIME_1: &str = "From: a@example.com\nSubject: one\n\nfirst\n";
    const MIME_2: &str = "From: b@example.com\nSubject: two\n\nsecond\n";

    fn response(key: &str, id: &str, commands: &str) -> Vec<u8> {
        wbxml_from_xml(&format!(
            "<Sync xmlns=\"AirSync:\" xmlns:airsyncbase=\"AirSyncBase:\" xmlns:email=\"Email:\" \
             xmlns:contacts=\"Contacts:\">
  <Collections>
    <Collection>
      <SyncKey>{key}</SyncKey>
      <CollectionId>{id}</CollectionId>
      <Status>1</Status>
      <Commands>{commands}</Commands>
    </Collection>
  </Collections>
</Sync>"
        ))
    }

    fn mail_add(server_id: &str, read: &str, flag: &str, mime: &str) -> String {
        format!(
            "<Add><ServerId>{server_id}</ServerId><ApplicationData>\
             <email:Subject>s</email:Subject><email:Read>{read}</email:Read>\
             <airsyncbase:Body><airsyncbase:Type>4</airsyncbase:Type>\
             <airsyncbase:Data>{mime}</airsyncbase:Data></airsyncbase:Body>{flag}\
             </ApplicationData></Add>"
        )
    }

    fn state_with(id: &str, class: Class) -> AccountState {
        let mut state = AccountState::default();
        state
            .folders
            .insert(id.into(), FolderState::new("F", "0", 2, Some(class), "F"));
        state
    }

    /// (name under cur/ or new/, content) of every message.
    fn messages(maildir: &Maildir) -> Vec<(String, String)> {
        let mut out: Vec<_> = maildir
            .list()
            .unwrap()
            .into_iter()
            .map(|m| {
                let name = m.path.file_name().unwrap().to_string_lossy().into_owned();
                let sub = m
                    .path
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (
                    format!("{sub}/{name}"),
                    std::fs::read_to_string(&m.path).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn apply_mail(
        state: &mut AccountState,
        file: &StateFile,
        maildir: &Maildir,
        bytes: &[u8],
    ) -> (Applied, Option<StoreError>) {
        let mut applier = FolderApplier::mail(state, file, "5", maildir);
        let result = read_response(&mut parser(bytes), &mut applier);
        assert_eq!(result.is_ok(), applier.failure.is_none(), "{result:?}");
        (applier.applied, applier.failure)
    }

    #[test]
    fn mail_batch_applied_twice_changes_nothing_and_saves_the_key() {
        let t = TestDir::new("apply-mail");
        let file = StateFile::new(t.path());
        let mut state = state_with("5", Class::Email);
        let maildir = Maildir::for_folder(t.path(), "F").unwrap();
        let flag = "<email:Flag><email:Status>2</email:Status></email:Flag>";
        let batch = response(
            "k1",
            "5",
            &(mail_add("5:1", "1", flag, MIME_1) + &mail_add("5:2", "0", "", MIME_2)),
        );
        let (applied, failure) = apply_mail(&mut state, &file, &maildir, &batch);
        assert!(failure.is_none());
        assert_eq!((applied.added, applied.changed), (2, 0));
        assert_eq!(applied.bytes, (MIME_1.len() + MIME_2.len()) as u64);
        let first = messages(&maildir);
        assert_eq!(first.len(), 2);
        assert!(
            first
                .iter()
                .any(|(n, c)| n.starts_with("cur/") && n.ends_with(":2,FS") && c == MIME_1)
        );
        assert!(
            first
                .iter()
                .any(|(n, c)| n.starts_with("new/") && c == MIME_2)
        );
        let saved = file.load().unwrap().into_state();
        assert_eq!(saved.folders["5"].sync_key, "k1");
        assert_eq!(saved.folders["5"].items.len(), 2);

        // The same batch again (e.g. the key was lost in a crash): nothing new.
        let (applied, _) = apply_mail(&mut state, &file, &maildir, &batch);
        assert_eq!((applied.added, applied.changed), (0, 2));
        assert_eq!(messages(&maildir), first);

        // As after a crash that lost the state's item map: the replay replaces, never adds.
        let mut forgotten = state_with("5", Class::Email);
        let (applied, _) = apply_mail(&mut forgotten, &file, &maildir, &batch);
        assert_eq!(applied.added, 2);
        assert_eq!(messages(&maildir), first);

        // A flag-only change keeps the other flags; a delete removes the message.
        let next = response(
            "k2",
            "5",
            "<Change><ServerId>5:2</ServerId><ApplicationData><email:Read>1</email:Read>\
             </ApplicationData></Change><Delete><ServerId>5:1</ServerId></Delete>\
             <SoftDelete><ServerId>5:unknown</ServerId></SoftDelete>",
        );
        let (applied, _) = apply_mail(&mut state, &file, &maildir, &next);
        assert_eq!((applied.changed, applied.deleted), (1, 1));
        let now = messages(&maildir);
        assert_eq!(now.len(), 1);
        assert!(
            now[0].0.starts_with("cur/") && now[0].0.ends_with(":2,S"),
            "{now:?}"
        );
        assert_eq!(now[0].1, MIME_2);
        assert_eq!(
            file.load().unwrap().into_state().folders["5"].sync_key,
            "k2"
        );
    }

    #[test]
    fn a_store_error_keeps_the_old_key() {
        let t = TestDir::new("apply-fail");
        let file = StateFile::new(t.path());
        let mut state = state_with("9", Class::Contacts);
        file.save(&state).unwrap();
        let vdir = Vdir::for_folder(t.path(), Class::Contacts, "F", "vcf").unwrap();
        std::fs::remove_dir_all(vdir.root()).unwrap();
        let batch = response(
            "k1",
            "9",
            "<Add><ServerId>9:1</ServerId><ApplicationData>\
             <contacts:FirstName>Jane</contacts:FirstName></ApplicationData></Add>",
        );
        let mut applier = FolderApplier::items(&mut state, &file, "9", Class::Contacts, vdir, 1024);
        assert!(read_response(&mut parser(&batch), &mut applier).is_err());
        assert!(applier.failure.is_some());
        assert_eq!(applier.sync_key, None);
        let saved = file.load().unwrap().into_state();
        assert_eq!(saved.folders["9"].sync_key, "0", "the key did not move");
    }

    #[test]
    fn contacts_are_written_keeping_their_uid_and_bad_items_are_counted() {
        let t = TestDir::new("apply-contacts");
        let file = StateFile::new(t.path());
        let mut state = state_with("9", Class::Contacts);
        let open = || Vdir::for_folder(t.path(), Class::Contacts, "F", "vcf").unwrap();
        let batch = |key: &str, name: &str| {
            response(
                key,
                "9",
                &format!(
                    "<Add><ServerId>9:1</ServerId><ApplicationData>\
                     <contacts:FirstName>{name}</contacts:FirstName>\
                     <airsyncbase:Body><airsyncbase:Type>1</airsyncbase:Type>\
                     <airsyncbase:Data>a long note that the limit cuts</airsyncbase:Data>\
                     </airsyncbase:Body></ApplicationData></Add>\
                     <Add><ServerId>9:2</ServerId></Add>"
                ),
            )
        };
        let mut applier = FolderApplier::items(&mut state, &file, "9", Class::Contacts, open(), 6);
        read_response(&mut parser(&batch("k1", "Jane")), &mut applier).unwrap();
        assert_eq!((applier.applied.added, applier.applied.failed), (1, 1));
        let entries = open().list().unwrap();
        assert_eq!(entries.len(), 1);
        let path = open().root().join(&entries[0].name);
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.contains("Jane") && first.contains("a long") && !first.contains("cuts"));
        // Give the file a UID of its own: a change from the server keeps it.
        assert!(first.contains("UID:easync-9:1\r\n"), "{first}");
        let with_uid = first.replace("UID:easync-9:1", "UID:device-made-uid");
        std::fs::write(&path, &with_uid).unwrap();
        let mut applier = FolderApplier::items(&mut state, &file, "9", Class::Contacts, open(), 6);
        read_response(&mut parser(&batch("k2", "Janet")), &mut applier).unwrap();
        assert_eq!(applier.applied.changed, 1);
        let second = std::fs::read_to_string(&path).unwrap();
        assert!(
            second.contains("Janet") && second.contains("UID:device-made-uid"),
            "{second}"
        );
        assert_eq!(open().list().unwrap().len(), 1);
    }

    #[test]
    fn files_of_a_batch_cut_short_that_the_server_does_not_send_again_are_removed() {
        let t = TestDir::new("apply-orphans");
        let file = StateFile::new(t.path());
        let open = || Vdir::for_folder(t.path(), Class::Contacts, "F", "vcf").unwrap();
        let add = |id: &str, name: &str| {
            format!(
                "<Add><ServerId>{id}</ServerId><ApplicationData>\
                 <contacts:FirstName>{name}</contacts:FirstName></ApplicationData></Add>"
            )
        };
        // A run writes two new items, then is killed before it saves the state: the files
        // are there, the saved state knows neither, the journal names both.
        let mut killed = state_with("9", Class::Contacts);
        let mut applier =
            FolderApplier::items(&mut killed, &file, "9", Class::Contacts, open(), 64);
        // The answer breaks off after its Adds (its last four END tokens missing), so the
        // collection never ends and nothing is saved, as when the process dies there.
        let whole = response("k1", "9", &(add("9:1", "Kept") + &add("9:2", "Gone")));
        let cut = &whole[..whole.len() - 4];
        assert!(read_response(&mut parser(cut), &mut applier).is_err());
        drop(applier);
        assert_eq!(open().list().unwrap().len(), 2);
        assert!(open().root().join(incoming::INCOMING_JOURNAL).exists());

        // The next run: the server sends 9:1 again (the key did not move) but no longer has
        // 9:2. Once downloaded, only 9:1 is left and nothing is there for the upload.
        let mut state = state_with("9", Class::Contacts);
        state.folders.get_mut("9").unwrap().sync_key = "k0".into();
        let mut applier = FolderApplier::items(&mut state, &file, "9", Class::Contacts, open(), 64);
        applier.adopt_journal().unwrap();
        read_response(
            &mut parser(&response("k2", "9", &add("9:1", "Kept"))),
            &mut applier,
        )
        .unwrap();
        assert_eq!(applier.sweep_orphans().unwrap(), 1);
        let left = open().list().unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        let kept = std::fs::read_to_string(open().root().join(&left[0].name)).unwrap();
        assert!(kept.contains("Kept"), "{kept}");
        let changes = open().local_changes(&state.folders["9"].items).unwrap();
        assert!(changes.added.is_empty() && changes.deleted.is_empty());
        for journal in [incoming::INCOMING_JOURNAL, incoming::ORPHANS_JOURNAL] {
            assert!(!open().root().join(journal).exists(), "{journal}");
        }
    }

    #[test]
    fn a_resync_keeps_what_the_device_deleted_meanwhile() {
        let t = TestDir::new("apply-resync-delete");
        let file = StateFile::new(t.path());
        let mut state = state_with("9", Class::Contacts);
        let open = || Vdir::for_folder(t.path(), Class::Contacts, "F", "vcf").unwrap();
        let adds = "<Add><ServerId>9:1</ServerId><ApplicationData>\
                    <contacts:FirstName>One</contacts:FirstName></ApplicationData></Add>\
                    <Add><ServerId>9:2</ServerId><ApplicationData>\
                    <contacts:FirstName>Two</contacts:FirstName></ApplicationData></Add>";
        let mut applier = FolderApplier::items(&mut state, &file, "9", Class::Contacts, open(), 64);
        read_response(&mut parser(&response("k1", "9", adds)), &mut applier).unwrap();
        let local = state.folders["9"].items.get("9:2").unwrap().local.clone();
        std::fs::remove_file(open().root().join(&local)).unwrap();

        // The server lost its state: everything comes again from "0".
        let mut applier = FolderApplier::items(&mut state, &file, "9", Class::Contacts, open(), 64);
        applier.seen = Some(HashSet::new());
        read_response(&mut parser(&response("k2", "9", adds)), &mut applier).unwrap();
        assert_eq!(applier.sweep_unseen().unwrap(), 0);
        assert!(
            !open().root().join(&local).exists(),
            "the deleted item came back"
        );
        let changes = open().local_changes(&state.folders["9"].items).unwrap();
        assert_eq!(
            changes.deleted,
            vec!["9:2".to_string()],
            "its Delete is due"
        );
    }

    #[test]
    fn flags_from_properties() {
        let read = |v: &str| crate::eas::item::text_node(EMAIL_READ, v);
        let node = |children| {
            crate::eas::item::container(Tag::named(cp::AIRSYNC, "ApplicationData"), children)
        };
        assert_eq!(mail_flags(None, Flags::FLAGGED), Flags::FLAGGED);
        assert_eq!(
            mail_flags(Some(&node(vec![read("1")])), Flags::FLAGGED),
            Flags::FLAGGED | Flags::SEEN
        );
        assert_eq!(
            mail_flags(Some(&node(vec![read("0")])), Flags::SEEN),
            Flags::NONE
        );
        let cleared = crate::eas::item::container(EMAIL_FLAG, vec![]);
        assert_eq!(
            mail_flags(Some(&node(vec![cleared])), Flags::FLAGGED),
            Flags::NONE
        );
    }
}

/// Whether message `local` carries flags other than the ones recorded as synced.
fn locally_flagged(
    maildir: &Maildir,
    local: &str,
    recorded: Option<Fingerprint>,
) -> Result<bool, StoreError> {
    let Some(Fingerprint::Flags(bits)) = recorded else {
        return Ok(false);
    };
    let Some(message) = maildir.find_hinted(local, Some(Flags::from_bits(bits)))? else {
        return Ok(false);
    };
    let synced = |f: Flags| f.bits() & (Flags::SEEN.bits() | Flags::FLAGGED.bits());
    Ok(synced(message.flags) != synced(Flags::from_bits(bits)))
}
