//! The outbox: every message device apps drop into the Maildir `data_dir/outbox/` is sent
//! with SendMail (MIME streamed from its file, a copy saved in Sent Items) and removed only
//! once the server accepted it.
//!
//! Each message's ClientId is derived from its Maildir unique name and its content, so a
//! message sent again after a crash (accepted by the server, not yet removed here) is
//! recognized by the server (status 118) and counts as sent. Protocol 12.1 has no ClientId: there such a resend
//! delivers the message twice.
//!
//! What a failure does to the queue:
//! - the network, throttling, a server error, a blocked account (e.g. 115, send quota):
//!   the message stays queued and the round stops with the error; the next round retries;
//! - the server refuses the message itself (MS-ASCMD common statuses whose action is to fix
//!   the request: 107 invalid MIME, 116 unresolved recipient, 119 no recipient, 122
//!   attachment too large ...): it moves to the Maildir `data_dir/outbox-failed/` (never
//!   lost, never retried by itself) with a log line saying why and what to do.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

use super::account::{Account, EngineError};
use super::provision::EngineProvisioner;
use crate::eas::compose::{self, Compose, Kind};
use crate::eas::{Action, Command};
use crate::store::atomic;
use crate::store::maildir::{Maildir, Message, Outbox, Subdir};
use crate::store::state::AccountState;
use crate::transport::{self, Provisioner, Session, command_timeout};

/// The Maildir (under `data_dir`) holding messages the server refused.
pub const FAILED_DIR: &str = "outbox-failed";
/// Prefix of the ClientIds easync makes (ComposeMail ClientId is at most 40 characters).
const CLIENT_ID_PREFIX: &str = "ob-";
/// Provisioning rounds per message before giving up (as the transport's retry policy).
const MAX_PROVISIONS: u32 = 2;
/// Resends after a 451 redirect of a streamed message.
const MAX_RESENDS: u32 = 1;

/// What one outbox round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxSummary {
    /// Messages the server accepted now.
    pub sent: u32,
    /// Messages the server had already accepted before (status 118, e.g. after a crash).
    pub already_sent: u32,
    /// Messages the server refused, now in `outbox-failed/`: (unique name, reason).
    pub refused: Vec<(String, String)>,
    /// Bytes of MIME sent.
    pub bytes: u64,
}

impl fmt::Display for OutboxSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "outbox: {} sent ({} bytes), {} already sent before, {} refused",
            self.sent,
            self.bytes,
            self.already_sent,
            self.refused.len()
        )?;
        for (name, reason) in &self.refused {
            writeln!(f, "  refused {name}: {reason} (kept in {FAILED_DIR}/)")?;
        }
        Ok(())
    }
}

/// How the server answered one message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Accepted,
    SentBefore,
    Refused(String),
}

/// The ClientId of the outbox message with unique name `id` and content `mime` (read to
/// its end, in chunks): the same message always gives the same id, so a resend after a
/// crash is recognized; a message edited and queued again under the same name gets a new
/// one, so it is not mistaken for the old one. A SHA-256 prefix, within the 40 characters
/// ComposeMail allows.
pub fn client_id(id: &str, mime: &mut dyn Read) -> io::Result<String> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(id.as_bytes());
    digest.update(&[0]);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match mime.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => digest.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let hex: String = digest.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("{CLIENT_ID_PREFIX}{hex}"))
}

impl Account {
    /// Sends every queued message of `data_dir/outbox/` (see the module documentation).
    /// With nothing queued it does not touch the network. Errors are recorded as the
    /// state's `last_error` like [`Account::run_once`]'s.
    pub fn send_outbox(&mut self) -> Result<OutboxSummary, EngineError> {
        let result = self.outbox_round();
        self.recorded(result)
    }

    fn outbox_round(&mut self) -> Result<OutboxSummary, EngineError> {
        let outbox = Outbox::open(self.config.data_dir())?;
        let queued = outbox.queued()?;
        let mut summary = OutboxSummary::default();
        if queued.is_empty() {
            return Ok(summary);
        }
        let mut state = self.state_file.load()?.into_state();
        if let Some(intent) = state.wipe_intent {
            return Err(EngineError::WipePending(
                intent,
                self.state_file.path().to_path_buf(),
            ));
        }
        let (mut session, user_agent) = self.connect(&mut state)?;
        let mut enforcer = self.enforcer();
        let mut prov = EngineProvisioner::new(&mut enforcer, self.device_information(&user_agent));
        let mut result = Ok(());
        for message in &queued {
            match send_one(&mut session, &mut prov, &outbox, message) {
                Ok((Answer::Accepted, len)) => {
                    outbox.remove_sent(message)?;
                    summary.sent += 1;
                    summary.bytes += len;
                }
                Ok((Answer::SentBefore, _)) => {
                    log::info!(
                        "outbox: {} was sent before (the server knows its ClientId): removed",
                        message.id
                    );
                    outbox.remove_sent(message)?;
                    summary.already_sent += 1;
                }
                Ok((Answer::Refused(reason), _)) => {
                    let kept = self.set_aside(message)?;
                    log::error!(
                        "outbox: the server refused {} ({reason}); it is kept as {}: fix the \
                         message (recipients, size, format) and put it back into outbox/new/, \
                         or delete it",
                        message.id,
                        kept.display()
                    );
                    summary.refused.push((message.id.clone(), reason));
                }
                Err(e) => {
                    log::warn!("outbox: {} stays queued: {e}", message.id);
                    result = Err(e);
                    break;
                }
            }
        }
        self.finish_round(&session, &prov, &mut state)?;
        result.map(|()| summary)
    }

    /// Records the session's policy key and what provisioning decided in the state, and
    /// saves it (not after an acknowledged wipe: the state file holds its intent).
    pub(super) fn finish_round(
        &self,
        session: &Session,
        prov: &EngineProvisioner<'_, super::enforce::HookEnforcer>,
        state: &mut AccountState,
    ) -> Result<(), EngineError> {
        if matches!(prov.outcome, Some(super::provision::Outcome::Wiped(..))) {
            return Ok(());
        }
        self.adopt_policy_limits(prov, state)?;
        state.policy_key = session.state().policy_key.map(|k| k.to_string());
        self.state_file.save(state)?;
        Ok(())
    }

    /// Moves a refused message into `data_dir/outbox-failed/` under the same name and
    /// returns where it is now.
    fn set_aside(&self, message: &Message) -> Result<std::path::PathBuf, EngineError> {
        let failed = Maildir::open(&self.config.data_dir().join(FAILED_DIR))?;
        let sub = match message.subdir {
            Subdir::New => "new",
            Subdir::Cur => "cur",
        };
        let name = message
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| message.id.clone().into());
        let target = failed.root().join(sub).join(name);
        atomic::rename(&message.path, &target)?;
        Ok(target)
    }
}

/// Sends one message, streaming its file; provisions (449, 142–144) and follows one 451
/// redirect, rewinding the file each time. Returns the answer and the MIME length.
fn send_one(
    session: &mut Session,
    prov: &mut dyn Provisioner,
    outbox: &Outbox,
    message: &Message,
) -> Result<(Answer, u64), EngineError> {
    let (mut file, len) = outbox.open_message(message)?;
    let client_id = client_id(&message.id, &mut (&mut file).take(len))
        .map_err(|e| atomic::StoreError::io("read", &message.path, e))?;
    let compose = Compose {
        kind: Kind::SendMail,
        client_id,
        account_id: None,
        save_in_sent_items: true,
        replace_mime: false,
        mime_len: len,
    };
    let mut provisions = 0;
    let mut resends = 0;
    loop {
        let version = session.state().version;
        let request = compose::request(version, &compose).map_err(transport::Error::from)?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| atomic::StoreError::io("read", &message.path, e))?;
        // Exactly the length announced, even if the file grew meanwhile.
        let mut mime = (&mut file).take(len);
        let reprovision = match session.send(
            &request,
            Some(&mut mime),
            command_timeout(Command::SendMail, None),
        ) {
            Ok(response) => {
                let answer =
                    response.read(version, |p| compose::read_response(p, &compose.kind))?;
                let Some(status) = answer.status else {
                    return Ok((Answer::Accepted, len));
                };
                match status.action() {
                    Action::Proceed if status == compose::Status::Success => {
                        return Ok((Answer::Accepted, len));
                    }
                    Action::Proceed => return Ok((Answer::SentBefore, len)),
                    Action::Reprovision | Action::RemoteWipe => true,
                    Action::FixRequest | Action::ItemGone if about_the_message(status) => {
                        return Ok((Answer::Refused(status.to_string()), len));
                    }
                    _ => {
                        return Err(EngineError::Server {
                            what: "SendMail",
                            status: status.to_string(),
                            hint: "the message stays in the outbox and is sent again on the \
                                   next round; if it persists, ask the mailbox's administrator"
                                .into(),
                        });
                    }
                }
            }
            Err(transport::Error::NeedsProvisioning) => true,
            Err(transport::Error::ResendRequired(why)) if resends < MAX_RESENDS => {
                log::info!("outbox: {why}: sending {} again", message.id);
                resends += 1;
                false
            }
            Err(e) => return Err(e.into()),
        };
        if reprovision {
            if provisions >= MAX_PROVISIONS {
                return Err(transport::Error::ProvisioningLoop {
                    attempts: provisions,
                }
                .into());
            }
            provisions += 1;
            prov.provision(session)?;
        }
    }
}

/// Whether a refusal is about the message itself rather than the device or the command
/// (a wrong DeviceId or an unsupported command would refuse every message alike: those
/// keep the queue and stop the round instead).
fn about_the_message(status: compose::Status) -> bool {
    use crate::eas::status::CommonStatus as C;
    !matches!(
        status.common(),
        Some(
            C::DeviceIdMissingOrInvalid
                | C::DeviceTypeMissingOrInvalid
                | C::CommandNotSupported
                | C::VersionNotSupported
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_stable_short_and_distinct() {
        let id = |name: &str, mime: &[u8]| client_id(name, &mut &mime[..]).unwrap();
        let a = id("1764000000.P12Q3M45.host", b"Subject: a\r\n\r\nbody");
        assert_eq!(a, id("1764000000.P12Q3M45.host", b"Subject: a\r\n\r\nbody"));
        assert_ne!(a, id("1764000000.P12Q4M45.host", b"Subject: a\r\n\r\nbody"));
        assert_ne!(
            a,
            id("1764000000.P12Q3M45.host", b"Subject: a\r\n\r\nedited")
        );
        assert!(a.len() <= 40 && a.starts_with(CLIENT_ID_PREFIX), "{a}");
        assert!(
            a[CLIENT_ID_PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_hexdigit())
        );
        let long = vec![b'x'; 100_000];
        assert_eq!(id("n", &long), id("n", &long));
    }

    #[test]
    fn the_summary_says_what_happened() {
        let s = OutboxSummary {
            sent: 2,
            already_sent: 1,
            refused: vec![(
                "m1".into(),
                "status 119: the message has no recipient".into(),
            )],
            bytes: 300,
        };
        let text = s.to_string();
        assert!(text.contains("2 sent (300 bytes)"), "{text}");
        assert!(text.contains("refused m1: status 119"), "{text}");
        assert!(text.contains(FAILED_DIR), "{text}");
    }

    #[test]
    fn only_refusals_of_the_message_set_it_aside() {
        assert!(about_the_message(compose::Status::from_code(119)));
        assert!(about_the_message(compose::Status::from_code(107)));
        assert!(about_the_message(compose::Status::from_code(999)));
        assert!(!about_the_message(compose::Status::from_code(108)));
        assert!(!about_the_message(compose::Status::from_code(137)));
    }
}
