//! On-demand fetches with ItemOperations: an attachment by its FileReference streamed into
//! a file, the whole MIME of a mail that was stored truncated, and the whole body of a
//! contact, calendar item, task or note that `[sync] body_size_limit` cut.
//!
//! A mail whose MIME the server cut (a policy's MaxEmailBodyTruncationSize, see
//! `account::sync_options`) is stored with the header [`TRUNCATED_HEADER`] added at the
//! top: `X-Easync-Truncated: <whole size in bytes, or "unknown">`. [`Account::
//! fetch_full_message`] replaces it, under the same Maildir name and flags, with the whole
//! message (which has no such header).
//!
//! The attachment and the message stream: the attachment into a temporary file beside its
//! destination, renamed into place once complete; the message into a Maildir delivery
//! committed over the old file. A contact's, event's, task's or note's body is collected
//! in memory up to the engine's body buffer, converted like a synced item and written over
//! its file. The server's multipart form (raw bytes instead of base64) is asked for and
//! read when the server uses it. The policy bounds attachments: none when
//! AttachmentsEnabled is 0, none larger than MaxAttachmentSize (the download stops there).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use super::account::{Account, EngineError};
use super::apply;
use super::provision::EngineProvisioner;
use crate::eas::item::{BodyInfo, BodyPreference, BodyType, Class, container};
use crate::eas::itemops::{self, Fetch, FetchTarget, OperationResult, SinkChooser};
use crate::eas::multipart::{DEFAULT_MAX_PARTS, MultipartReader};
use crate::eas::parse::{Node, Value};
use crate::eas::settings::DeviceInformation;
use crate::eas::sink::Sink;
use crate::eas::{Action, Command, Limits};
use crate::store::atomic::{AtomicFile, StoreError};
use crate::store::maildir::{Maildir, Message};
use crate::store::state::{AccountState, Fingerprint};
use crate::store::vdir::Vdir;
use crate::store::{ical, note, vcard};
use crate::transport::{self, Provisioner, Session, command_timeout};
use crate::wbxml::tags::cp;
use crate::wbxml::{FromStd, Tag};

/// The header marking a mail stored with a truncated MIME (see the module documentation).
pub const TRUNCATED_HEADER: &str = "X-Easync-Truncated";
/// Provisioning rounds per fetch before giving up.
const MAX_PROVISIONS: u32 = 2;

const BODY: Tag = Tag::named(cp::AIRSYNCBASE, "Body");
const CONTACTS_PICTURE: Tag = Tag::named(cp::CONTACTS, "Picture");

/// The whole size a mail's MIME had on the server when the Sync item says it came
/// truncated (`Some(None)`: truncated, size unknown); `None` when it came whole.
pub fn truncated_mime(node: Option<&Node>) -> Option<Option<u64>> {
    let info = BodyInfo::from_node(node?.child(BODY)?);
    (info.truncated && matches!(info.body_type, None | Some(BodyType::Mime)))
        .then_some(info.estimated_size)
}

/// Puts the [`TRUNCATED_HEADER`] at the top of `message` (rewritten through a new delivery
/// under the same name and flags, so readers see the old or the new file, never none).
pub fn mark_truncated(
    maildir: &Maildir,
    message: &Message,
    whole_size: Option<u64>,
) -> Result<(), StoreError> {
    let mut file =
        File::open(&message.path).map_err(|e| StoreError::io("open", &message.path, e))?;
    let mut delivery = maildir.begin_delivery()?;
    let size = whole_size.map_or_else(|| "unknown".to_string(), |s| s.to_string());
    let written = write!(delivery, "{TRUNCATED_HEADER}: {size}\r\n")
        .and_then(|()| io::copy(&mut file, &mut delivery).map(|_| ()));
    written.map_err(|e| StoreError::io("mark as truncated", &message.path, e))?;
    delivery.commit_as(&message.id, message.flags)?;
    Ok(())
}

/// Whether the mail file at `path` carries the [`TRUNCATED_HEADER`] (its first line).
pub fn is_marked_truncated(path: &Path) -> io::Result<bool> {
    let mut first = Vec::new();
    BufReader::new(File::open(path)?)
        .take(256)
        .read_until(b'\n', &mut first)?;
    let prefix = format!("{TRUNCATED_HEADER}:");
    Ok(
        first.len() >= prefix.len()
            && first[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()),
    )
}

/// A sink counting what passes and refusing more than `limit` bytes.
struct Bounded<'a> {
    inner: &'a mut dyn Sink,
    limit: Option<u64>,
    written: u64,
    over: bool,
}

impl Sink for Bounded<'_> {
    fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.written += data.len() as u64;
        if self.limit.is_some_and(|l| self.written > l) {
            self.over = true;
            return Err(io::Error::other("larger than the policy allows"));
        }
        self.inner.chunk(data)
    }
}

impl SinkChooser for Bounded<'_> {
    fn sink(&mut self, _item: &itemops::ItemRef, _kind: itemops::DataKind) -> &mut dyn Sink {
        self
    }
}

impl Account {
    /// Fetches the attachment `file_reference` (an `airsyncbase:FileReference` from a mail)
    /// into the file `dest`, atomically: a temporary file in `dest`'s folder, renamed once
    /// complete. Returns its size. Refused when the server's policy disables attachments or
    /// the attachment is larger than its MaxAttachmentSize (nothing is left behind).
    pub fn fetch_attachment(
        &mut self,
        file_reference: &str,
        dest: &Path,
    ) -> Result<u64, EngineError> {
        let result = self.attachment_fetch(file_reference, dest);
        self.recorded(result)
    }

    fn attachment_fetch(&mut self, file_reference: &str, dest: &Path) -> Result<u64, EngineError> {
        let (dir, name) = match (dest.parent(), dest.file_name().and_then(|n| n.to_str())) {
            (Some(dir), Some(name)) => (
                if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                },
                name,
            ),
            _ => {
                return Err(EngineError::Unsupported(format!(
                    "{} is not a file path: name the file the attachment goes to",
                    dest.display()
                )));
            }
        };
        let mut state = self.loaded_state()?;
        let limit = match &state.policy_limits {
            Some(l) if !l.attachments_enabled => {
                return Err(EngineError::Unsupported(
                    "the server's policy does not allow attachments on this device \
                     (AttachmentsEnabled is 0): ask the mailbox's administrator"
                        .into(),
                ));
            }
            Some(l) => l.max_attachment_bytes,
            None => None,
        };
        let fetch = Fetch::new(FetchTarget::Attachment {
            file_reference: file_reference.to_string(),
        });
        let (mut session, device) = self.open_session(&mut state)?;
        let outcome = {
            let mut enforcer = self.enforcer();
            let mut prov = EngineProvisioner::new(&mut enforcer, device);
            let outcome = fetch_into(
                &mut session,
                &mut prov,
                &fetch,
                || AtomicFile::create(dir, name),
                limit,
            );
            self.finish_round(&session, &prov, &mut state)?;
            outcome
        };
        let (file, written) = match outcome {
            Ok(done) => done,
            Err(FetchError::TooLarge) => {
                return Err(EngineError::Unsupported(format!(
                    "the attachment is larger than the {} bytes the server's policy allows \
                     (MaxAttachmentSize): it was not downloaded",
                    limit.unwrap_or(0)
                )));
            }
            Err(FetchError::Engine(e)) => return Err(e),
        };
        file.commit()?;
        Ok(written)
    }

    /// Replaces the mail `server_id` of mail folder `folder_server_id`, stored with a
    /// truncated MIME, by the whole message fetched with ItemOperations; it keeps its
    /// Maildir name and flags. Returns the message's size.
    pub fn fetch_full_message(
        &mut self,
        folder_server_id: &str,
        server_id: &str,
    ) -> Result<u64, EngineError> {
        let result = self.full_message_fetch(folder_server_id, server_id);
        self.recorded(result)
    }

    fn full_message_fetch(
        &mut self,
        folder_server_id: &str,
        server_id: &str,
    ) -> Result<u64, EngineError> {
        let mut state = self.loaded_state()?;
        let not_stored = || {
            EngineError::Unsupported(format!(
                "mail {server_id} of folder {folder_server_id} is not stored on this device: \
                 sync the folder first"
            ))
        };
        let folder = state.folders.get(folder_server_id).ok_or_else(not_stored)?;
        if folder.class.map(Class::from) != Some(Class::Email) {
            return Err(EngineError::Unsupported(format!(
                "folder {folder_server_id} is not a mail folder"
            )));
        }
        let entry = folder.items.get(server_id).ok_or_else(not_stored)?;
        let hint = match entry.fingerprint {
            Fingerprint::Flags(bits) => Some(crate::store::maildir::Flags::from_bits(bits)),
            _ => None,
        };
        let maildir = Maildir::for_folder(self.config.data_dir(), &folder.local_dir)?;
        let current = maildir
            .find_hinted(&entry.local, hint)?
            .ok_or_else(not_stored)?;
        let fetch = Fetch {
            body_preferences: vec![BodyPreference::new(BodyType::Mime)],
            mime_support: Some(2),
            ..Fetch::new(FetchTarget::Item {
                collection_id: folder_server_id.to_string(),
                server_id: server_id.to_string(),
            })
        };
        let (mut session, device) = self.open_session(&mut state)?;
        let outcome = {
            let mut enforcer = self.enforcer();
            let mut prov = EngineProvisioner::new(&mut enforcer, device);
            let outcome = fetch_into(
                &mut session,
                &mut prov,
                &fetch,
                || maildir.begin_delivery(),
                None,
            );
            self.finish_round(&session, &prov, &mut state)?;
            outcome
        };
        let (delivery, written) = match outcome {
            Ok(done) => done,
            Err(FetchError::Engine(e)) => return Err(e),
            // A message fetch has no limit, so this cannot happen; said plainly all the same.
            Err(FetchError::TooLarge) => {
                return Err(EngineError::Unsupported("the message is too large".into()));
            }
        };
        if written == 0 {
            return Err(EngineError::Server {
                what: "ItemOperations",
                status: "1 without the message".into(),
                hint: "the server sent no MIME for this mail; try again later".into(),
            });
        }
        // The flags as they are now (the user may have changed them since the sync).
        delivery.commit_as(&current.id, current.flags)?;
        Ok(written)
    }

    /// Rewrites the contact, calendar item, task or note `server_id` of folder
    /// `folder_server_id` with its whole body, fetched with ItemOperations (for an item
    /// whose body `[sync] body_size_limit` cut). It keeps its file name and UID. A body
    /// larger than the engine's body buffer (the larger of `body_size_limit` and
    /// [`apply::DEFAULT_BODY_LIMIT`]) is refused: the item stays as it is. Returns the
    /// size of the item's file.
    pub fn fetch_full_item(
        &mut self,
        folder_server_id: &str,
        server_id: &str,
    ) -> Result<u64, EngineError> {
        let result = self.full_item_fetch(folder_server_id, server_id);
        self.recorded(result)
    }

    fn full_item_fetch(
        &mut self,
        folder_server_id: &str,
        server_id: &str,
    ) -> Result<u64, EngineError> {
        let mut state = self.loaded_state()?;
        let not_stored = || {
            EngineError::Unsupported(format!(
                "item {server_id} of folder {folder_server_id} is not stored on this device: \
                 sync the folder first"
            ))
        };
        let folder = state.folders.get(folder_server_id).ok_or_else(not_stored)?;
        let class = match folder.class.map(Class::from) {
            Some(Class::Email) => {
                return Err(EngineError::Unsupported(format!(
                    "folder {folder_server_id} is a mail folder: use fetch_full_message"
                )));
            }
            Some(class) => class,
            None => return Err(not_stored()),
        };
        let entry = folder.items.get(server_id).ok_or_else(not_stored)?;
        let vdir = Vdir::for_folder(
            self.config.data_dir(),
            class,
            &folder.local_dir,
            apply::extension(class),
        )?;
        let existing_uid = apply::read_uid(&vdir.root().join(&entry.local));
        let limit = self
            .config
            .sync()
            .body_size_limit
            .map_or(0, u64::from)
            .max(apply::DEFAULT_BODY_LIMIT as u64);
        let fetch = Fetch {
            body_preferences: vec![BodyPreference::new(BodyType::PlainText)],
            ..Fetch::new(FetchTarget::Item {
                collection_id: folder_server_id.to_string(),
                server_id: server_id.to_string(),
            })
        };
        let (mut session, device) = self.open_session(&mut state)?;
        let outcome = {
            let mut enforcer = self.enforcer();
            let mut prov = EngineProvisioner::new(&mut enforcer, device);
            let outcome = fetch_item_into(&mut session, &mut prov, &fetch, Some(limit));
            self.finish_round(&session, &prov, &mut state)?;
            outcome
        };
        let (properties, body) = match outcome {
            Ok(done) => done,
            Err(FetchError::TooLarge) => {
                return Err(EngineError::Unsupported(format!(
                    "the whole body of item {server_id} is larger than {limit} bytes: it is \
                     left out (the item keeps its cut body)"
                )));
            }
            Err(FetchError::Engine(e)) => return Err(e),
        };
        let mut nodes = properties.other;
        // Sync streams the picture separately; here it came as a property.
        let picture = nodes
            .iter()
            .position(|n| n.tag == CONTACTS_PICTURE)
            .map(|i| nodes.remove(i))
            .and_then(|n| match n.value {
                Value::Text(t) => Some(t),
                _ => None,
            });
        let data = container(Tag::named(cp::AIRSYNC, "ApplicationData"), nodes);
        let body = String::from_utf8_lossy(&body).into_owned();
        let ctx = vcard::FromServer {
            server_id,
            uid: existing_uid.as_deref(),
            body: (!body.is_empty()).then_some(body.as_str()),
            picture: picture.as_deref(),
        };
        let text = match class {
            Class::Contacts => Ok(vcard::contact_to_vcard(&data, &ctx)),
            Class::Calendar => ical::event_to_ical(&data, &ctx).map_err(|e| e.0),
            Class::Tasks => ical::task_to_ical(&data, &ctx).map_err(|e| e.0),
            Class::Notes | Class::Email => Ok(note::note_to_text(&data, &ctx)),
        }
        .map_err(|e| {
            EngineError::Unsupported(format!(
                "item {server_id} as fetched cannot be converted ({e}): it keeps its cut body"
            ))
        })?;
        let Some(folder) = state.folders.get_mut(folder_server_id) else {
            return Err(not_stored());
        };
        let mut writer = vdir.begin_item(&folder.items, server_id, existing_uid.as_deref())?;
        let name = writer.name().to_string();
        writer
            .write_all(text.as_bytes())
            .map_err(|e| StoreError::io("write", vdir.root().join(&name), e))?;
        writer.commit_item(&mut folder.items, server_id)?;
        self.state_file.save(&state)?;
        Ok(text.len() as u64)
    }

    /// The state, refusing to go on while a wipe is pending.
    fn loaded_state(&self) -> Result<AccountState, EngineError> {
        let state = self.state_file.load()?.into_state();
        if let Some(intent) = state.wipe_intent {
            return Err(EngineError::WipePending(
                intent,
                self.state_file.path().to_path_buf(),
            ));
        }
        Ok(state)
    }

    /// A negotiated session, with the DeviceInformation a provisioner sends.
    fn open_session(
        &self,
        state: &mut AccountState,
    ) -> Result<(Session, DeviceInformation), EngineError> {
        let (session, user_agent) = self.connect(state)?;
        Ok((session, self.device_information(&user_agent)))
    }
}

enum FetchError {
    TooLarge,
    Engine(EngineError),
}

impl From<EngineError> for FetchError {
    fn from(e: EngineError) -> FetchError {
        FetchError::Engine(e)
    }
}

impl From<transport::Error> for FetchError {
    fn from(e: transport::Error) -> FetchError {
        FetchError::Engine(e.into())
    }
}

impl From<StoreError> for FetchError {
    fn from(e: StoreError) -> FetchError {
        FetchError::Engine(e.into())
    }
}

/// Runs one Fetch into a fresh sink from `open` (a new one per attempt: provisioning
/// repeats the request), asking for the multipart form. Returns the sink, filled, and the
/// bytes it took.
fn fetch_into<S: Sink>(
    session: &mut Session,
    prov: &mut dyn Provisioner,
    fetch: &Fetch,
    open: impl FnMut() -> Result<S, StoreError>,
    limit: Option<u64>,
) -> Result<(S, u64), FetchError> {
    fetch_with(session, prov, fetch, open, limit, &mut None)
}

/// [`fetch_into`], also handing back the fetched item's properties.
fn fetch_with<S: Sink>(
    session: &mut Session,
    prov: &mut dyn Provisioner,
    fetch: &Fetch,
    mut open: impl FnMut() -> Result<S, StoreError>,
    limit: Option<u64>,
    properties: &mut Option<itemops::ItemProperties>,
) -> Result<(S, u64), FetchError> {
    let mut provisions = 0;
    loop {
        let version = session.state().version;
        let mut request = itemops::request(version, &[itemops::Operation::Fetch(fetch.clone())])
            .map_err(transport::Error::from)?;
        request.params.push(("AcceptMultiPart", "T".into()));
        let mut sink = open()?;
        let response = match session.send(
            &request,
            None,
            command_timeout(Command::ItemOperations, None),
        ) {
            Ok(r) => r,
            Err(transport::Error::NeedsProvisioning) if provisions < MAX_PROVISIONS => {
                provisions += 1;
                prov.provision(session)?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut bounded = Bounded {
            inner: &mut sink,
            limit,
            written: 0,
            over: false,
        };
        let read = if response.is_multipart() {
            let len = response.content_length;
            let mut body = response.into_body();
            MultipartReader::new(FromStd(&mut body), DEFAULT_MAX_PARTS, len)
                .and_then(|mut parts| {
                    itemops::read_multipart_response(&mut parts, Limits::default(), &mut bounded)
                })
                .map_err(transport::Error::from)
        } else {
            response.read(version, |p| itemops::read_response(p, &mut bounded))
        };
        if bounded.over {
            return Err(FetchError::TooLarge);
        }
        let written = bounded.written;
        let answer = read?;
        match answer.action() {
            Action::Reprovision | Action::RemoteWipe if provisions < MAX_PROVISIONS => {
                provisions += 1;
                prov.provision(session)?;
                continue;
            }
            Action::Proceed => {}
            _ => return Err(fetch_failed(answer.status.to_string()).into()),
        }
        let result = answer.results.into_iter().find_map(|r| match r {
            OperationResult::Fetch(f) => Some(f),
            _ => None,
        });
        let Some(result) = result else {
            return Err(fetch_failed("no Fetch result".into()).into());
        };
        match result.status {
            itemops::Status::Success | itemops::Status::FileEmpty => {
                *properties = result.properties;
                return Ok((sink, written));
            }
            status => return Err(fetch_failed(status.to_string()).into()),
        }
    }
}

/// Runs one Fetch of an item, its body collected in memory (at most `limit` bytes);
/// returns the item's properties and its body.
fn fetch_item_into(
    session: &mut Session,
    prov: &mut dyn Provisioner,
    fetch: &Fetch,
    limit: Option<u64>,
) -> Result<(itemops::ItemProperties, Vec<u8>), FetchError> {
    let mut properties = None;
    let (body, _) = fetch_with(
        session,
        prov,
        fetch,
        || Ok(Vec::new()),
        limit,
        &mut properties,
    )?;
    let properties = properties.ok_or_else(|| fetch_failed("no item properties".into()))?;
    Ok((properties, body))
}

fn fetch_failed(status: String) -> EngineError {
    EngineError::Server {
        what: "ItemOperations Fetch",
        status,
        hint: "the item or attachment may be gone (sync the folder again), or the server \
               failed (try again later)"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eas::item::text_node;
    use crate::store::atomic::testdir::TestDir;
    use crate::store::maildir::Flags;

    #[test]
    fn truncation_is_read_from_the_body_node() {
        let base = |name: &'static str| Tag::named(cp::AIRSYNCBASE, name);
        let data = |truncated: bool| {
            let mut body = vec![
                text_node(base("Type"), "4"),
                text_node(base("EstimatedDataSize"), "9000"),
            ];
            if truncated {
                body.push(text_node(base("Truncated"), "1"));
            }
            container(
                Tag::named(cp::AIRSYNC, "ApplicationData"),
                vec![container(BODY, body)],
            )
        };
        assert_eq!(truncated_mime(Some(&data(true))), Some(Some(9000)));
        assert_eq!(truncated_mime(Some(&data(false))), None);
        assert_eq!(truncated_mime(None), None);
    }

    #[test]
    fn a_marked_message_keeps_its_name_and_flags() {
        let dir = TestDir::new("fetch-mark");
        let maildir = Maildir::open(&dir.path().join("m")).unwrap();
        let mut d = maildir.begin_delivery().unwrap();
        d.write_all(b"Subject: x\r\n\r\nbod").unwrap();
        let message = d.commit_as("eas-1", Flags::SEEN).unwrap();
        assert!(!is_marked_truncated(&message.path).unwrap());
        mark_truncated(&maildir, &message, Some(5000)).unwrap();
        let now = maildir.find("eas-1").unwrap().unwrap();
        assert_eq!(now.flags, Flags::SEEN);
        assert_eq!(
            std::fs::read_to_string(&now.path).unwrap(),
            "X-Easync-Truncated: 5000\r\nSubject: x\r\n\r\nbod"
        );
        assert!(is_marked_truncated(&now.path).unwrap());
        assert_eq!(maildir.list().unwrap().len(), 1);
    }
}
