//! One push round, synchronously: a Ping over the synced folders with the adaptive
//! heartbeat, then a Sync of exactly the folders the server says changed. The heartbeat
//! learned from the answer (or from a network timeout) is persisted in the state
//! (`heartbeat`), so the next round — or the next start — continues from it.
//!
//! The server's corrections are followed once each within a round: status 5 (heartbeat out
//! of the server's bounds), 6 (too many folders), 7 (the folder list changed) and 3 (a
//! full Ping wanted).

use std::fmt;

use super::account::{Account, EngineError, Progress, Summary, Uploads, sync_class};
use super::heartbeat::{self, Bounds, Heartbeat};
use super::provision::EngineProvisioner;
use crate::config::SyncClass;
use crate::eas::folder::{self, FolderType};
use crate::eas::item::Class;
use crate::eas::ping::{self, PingFolder, PingResponse, Status};
use crate::eas::{Command, ProtocolVersion};
use crate::store::state::AccountState;
use crate::transport::{self, Session, command_timeout};

/// Ping requests in one round at most (the first and one per correction).
const MAX_PINGS: u32 = 5;

/// How a push round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingResult {
    /// The heartbeat ran out with no changes (status 1).
    Expired,
    /// Folders changed (status 2) and were synced.
    Changed,
}

/// What one changed folder received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderArrival {
    pub id: String,
    pub name: String,
    pub class: SyncClass,
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
}

/// What a push round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub result: PingResult,
    /// The heartbeat (seconds) of the Ping that was answered.
    pub heartbeat_secs: u32,
    /// The heartbeat the next Ping will use (persisted in the state).
    pub next_heartbeat_secs: u32,
    /// The folders synced after status 2.
    pub folders: Vec<FolderArrival>,
    /// The full cycle that ran first because nothing was synced yet.
    pub cycle: Option<Summary>,
}

impl PushOutcome {
    /// Items added in all changed folders.
    pub fn added(&self) -> u64 {
        self.folders.iter().map(|f| f.added).sum()
    }
}

impl fmt::Display for PushOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.result {
            PingResult::Expired => writeln!(
                f,
                "push: no changes within {} s (next heartbeat {} s)",
                self.heartbeat_secs, self.next_heartbeat_secs
            )?,
            PingResult::Changed => writeln!(
                f,
                "push: {} folder(s) changed (heartbeat {} s)",
                self.folders.len(),
                self.heartbeat_secs
            )?,
        }
        for a in &self.folders {
            writeln!(
                f,
                "  {} ({}): {} added, {} changed, {} deleted",
                a.name,
                a.class.as_str(),
                a.added,
                a.changed,
                a.deleted
            )?;
        }
        Ok(())
    }
}

/// The rank of a folder when the server caps the watched folders: the Inbox first, then
/// calendar, contacts and tasks, then the rest.
fn ping_priority(state: &AccountState, id: &str) -> u8 {
    let Some(f) = state.folders.get(id) else {
        return 3;
    };
    match FolderType::from_code(f.folder_type) {
        FolderType::Inbox => 0,
        _ => match f.class.map(Class::from) {
            Some(Class::Calendar | Class::Contacts | Class::Tasks) => 1,
            _ => 2,
        },
    }
}

/// A folder is synced when its key moved past the initial one.
fn synced(state: &AccountState, id: &str) -> bool {
    state
        .folders
        .get(id)
        .is_some_and(|f| f.sync_key != crate::eas::sync::INITIAL_SYNC_KEY)
}

impl Account {
    /// Replaces the configuration's `[push]` heartbeat bounds (which cannot go below the
    /// 60 s Exchange allows), e.g. for a test against a server that accepts shorter Pings.
    pub fn set_heartbeat_bounds(&mut self, bounds: Bounds) {
        self.heartbeat_bounds = Some(bounds);
        self.heartbeat = None;
    }

    fn bounds(&self) -> Bounds {
        if let Some(b) = self.heartbeat_bounds {
            return b;
        }
        let push = self.config.push();
        let secs =
            |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(heartbeat::PROTOCOL_MAX);
        Bounds {
            min: secs(push.heartbeat_min),
            max: secs(push.heartbeat_max),
            start: secs(push.heartbeat_start),
        }
    }

    /// The heartbeat of this process, built from the bounds and the learned value.
    fn heartbeat(&mut self, state: &AccountState) -> &mut Heartbeat {
        let bounds = self.bounds();
        self.heartbeat
            .get_or_insert_with(|| Heartbeat::new(bounds, state.heartbeat))
    }

    /// One push round: a Ping over the synced folders, then a Sync of the folders that
    /// changed until they are quiet. Runs the full cycle first when nothing is synced yet.
    ///
    /// A network timeout of the Ping shortens the heartbeat (persisted) and returns the
    /// transport's timeout error: the caller Pings again. Errors are recorded as the
    /// state's `last_error` like [`Account::run_once`]'s.
    pub fn push_once(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PushOutcome, EngineError> {
        self.hold_data_dir()?;
        let result = self.push_round(progress);
        self.recorded(result)
    }

    fn push_round(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PushOutcome, EngineError> {
        let mut state = self.state_file.load()?.into_state();
        let needs_cycle = state.folder_sync_key == folder::INITIAL_SYNC_KEY
            || state.protocol_version.is_none()
            || state
                .folders
                .iter()
                .filter(|(_, f)| f.class.is_some())
                .all(|(id, _)| !synced(&state, id));
        let cycle = if needs_cycle {
            let summary = self.run_once(progress)?;
            state = self.state_file.load()?.into_state();
            Some(summary)
        } else {
            None
        };
        if let Some(intent) = state.wipe_intent {
            return Err(EngineError::WipePending(
                intent,
                self.state_file.path().to_path_buf(),
            ));
        }
        let (mut session, user_agent) = self.connect(&mut state)?;
        let version = session.state().version;
        let mut enforcer = self.enforcer();
        let mut prov = EngineProvisioner::new(&mut enforcer, self.device_information(&user_agent));

        let mut folders = self.ping_folders(&state, version);
        let mut corrected = Vec::new();
        let mut answer = None;
        for _ in 0..MAX_PINGS {
            if folders.is_empty() {
                return Err(EngineError::Unsupported(
                    "no synced folder to watch: select at least one folder in [sync]".into(),
                ));
            }
            let heartbeat = self.heartbeat(&state).current();
            let hold = std::time::Duration::from_secs(u64::from(heartbeat));
            // The Ping may hold for an hour: the item maps (every one of them is on disk
            // already) are let go while it waits and what the sync before it freed goes back
            // to the system, so a large mailbox does not stay resident all that time (easyncd
            // also lets go of the sync's code once the Ping is out: `device::memory`).
            let parked_without_items = set_items_aside(&mut state);
            crate::device::memory::trim_heap();
            if !self.control.park() {
                self.restore_items(&mut state, parked_without_items)?;
                return Err(EngineError::Interrupted);
            }
            let sent = session.execute(
                |s| ping::request(s.version, heartbeat, &folders),
                ping::read_response,
                &mut prov,
                command_timeout(Command::Ping, Some(hold)),
            );
            self.control.unpark();
            self.restore_items(&mut state, parked_without_items)?;
            let response: PingResponse = match sent {
                Ok(r) => r,
                Err(transport::Error::Cancelled) => return Err(EngineError::Interrupted),
                Err(e @ transport::Error::Timeout { .. }) => {
                    self.heartbeat(&state).network_timeout();
                    self.save_heartbeat(&mut state, &session)?;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            let status = response.status;
            if corrected.contains(&status.code()) {
                return Err(ping_error(status, "the server repeated it after the fix"));
            }
            match status {
                Status::Expired | Status::ChangesFound => {
                    answer = Some((heartbeat, response));
                    break;
                }
                Status::InvalidHeartbeatInterval => {
                    let Some(bound) = response.heartbeat_interval else {
                        return Err(ping_error(status, "the server named no bound"));
                    };
                    log::info!("Ping: the server wants a heartbeat of {bound} s");
                    self.heartbeat(&state).server_bound(bound);
                }
                Status::TooManyFolders => {
                    let Some(max) = response.max_folders.filter(|&m| m > 0) else {
                        return Err(ping_error(status, "the server named no folder limit"));
                    };
                    log::info!("Ping: the server watches at most {max} folders");
                    folders = heartbeat::choose_ping_folders(&folders, max as usize, |f| {
                        ping_priority(&state, &f.id)
                    });
                }
                Status::FolderSyncRequired => {
                    self.folder_sync(&mut session, &mut prov, &mut state)?;
                    folders = self.ping_folders(&state, version);
                }
                // Every Ping sent here is a full one; the server lost it: once more.
                Status::MissingParameters => {}
                _ => return Err(ping_error(status, status.description())),
            }
            corrected.push(status.code());
        }
        let Some((heartbeat_secs, response)) = answer else {
            return Err(ping_error(
                Status::Unknown(0),
                "no usable answer after the server's corrections",
            ));
        };

        let mut arrivals = Vec::new();
        if response.status == Status::Expired {
            self.heartbeat(&state).expired_cleanly();
        } else {
            self.heartbeat(&state).changes_found();
            let watched: Vec<(String, Class)> =
                folders.iter().map(|f| (f.id.clone(), f.class)).collect();
            for id in &response.folders {
                // Only folders this round watched (a server might name others).
                let Some((_, class)) = watched.iter().find(|(w, _)| w == id) else {
                    log::info!("Ping named folder {id}, which was not watched");
                    continue;
                };
                let applied = self.sync_folder(
                    &mut session,
                    &mut prov,
                    &mut state,
                    id,
                    *class,
                    Uploads::Later,
                    progress,
                )?;
                arrivals.push(FolderArrival {
                    id: id.clone(),
                    name: state
                        .folders
                        .get(id)
                        .map(|f| f.display_name.clone())
                        .unwrap_or_default(),
                    class: sync_class(*class),
                    added: applied.added,
                    changed: applied.changed,
                    deleted: applied.deleted,
                });
            }
        }
        // A re-provisioning during the round may have brought other limits.
        self.adopt_policy_limits(&prov, &mut state)?;
        self.save_heartbeat(&mut state, &session)?;
        Ok(PushOutcome {
            result: if response.status == Status::Expired {
                PingResult::Expired
            } else {
                PingResult::Changed
            },
            heartbeat_secs,
            next_heartbeat_secs: self.heartbeat(&state).current(),
            folders: arrivals,
            cycle,
        })
    }

    /// Gives back the item maps [`set_items_aside`] dropped, from the state file (where
    /// every change of them is saved before the Ping).
    fn restore_items(
        &self,
        state: &mut AccountState,
        aside: ItemsAside,
    ) -> Result<(), EngineError> {
        if !aside.0 {
            return Ok(());
        }
        let mut saved = self.state_file.load()?.into_state();
        for (id, folder) in state.folders.iter_mut() {
            if let Some(on_disk) = saved.folders.remove(id) {
                folder.items = on_disk.items;
                folder.pending_adds = on_disk.pending_adds;
            }
        }
        Ok(())
    }

    /// The synced folders of the selection, as Ping folders.
    fn ping_folders(&self, state: &AccountState, version: ProtocolVersion) -> Vec<PingFolder> {
        self.selected_folders(state, version)
            .into_iter()
            .filter(|(id, _)| synced(state, id))
            .map(|(id, class)| PingFolder { id, class })
            .collect()
    }

    /// Persists the learned heartbeat (and the policy key) in the state.
    fn save_heartbeat(
        &mut self,
        state: &mut AccountState,
        session: &Session,
    ) -> Result<(), EngineError> {
        state.heartbeat = Some(self.heartbeat(state).learned());
        state.policy_key = session.state().policy_key.map(|k| k.to_string());
        state.set_last_error(None);
        self.state_file.save(state)?;
        Ok(())
    }
}

/// Whether [`set_items_aside`] dropped anything (then the state must not be saved until
/// [`Account::restore_items`] has run).
#[must_use]
#[derive(Debug, Clone, Copy)]
struct ItemsAside(bool);

/// Drops the folders' item maps from the in-memory state for the time of a Ping.
fn set_items_aside(state: &mut AccountState) -> ItemsAside {
    let mut any = false;
    for folder in state.folders.values_mut() {
        any |= !folder.items.is_empty() || !folder.pending_adds.is_empty();
        folder.items = Default::default();
        folder.pending_adds = Default::default();
    }
    ItemsAside(any)
}

fn ping_error(status: Status, hint: &str) -> EngineError {
    EngineError::Server {
        what: "Ping",
        status: format!("{} ({status:?})", status.code()),
        hint: format!("{hint}; try again later"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::state::FolderState;

    #[test]
    fn the_inbox_ranks_first_then_pim_folders() {
        let mut state = AccountState::default();
        for (id, ty, class) in [
            ("1", 2, Class::Email),
            ("2", 12, Class::Email),
            ("3", 8, Class::Calendar),
            ("4", 10, Class::Notes),
        ] {
            state
                .folders
                .insert(id.into(), FolderState::new(id, "0", ty, Some(class), id));
        }
        assert_eq!(ping_priority(&state, "1"), 0);
        assert_eq!(ping_priority(&state, "3"), 1);
        assert_eq!(ping_priority(&state, "2"), 2);
        assert_eq!(ping_priority(&state, "4"), 2);
        assert_eq!(ping_priority(&state, "missing"), 3);
        assert!(!synced(&state, "1"), "a fresh folder is not synced");
    }
}
