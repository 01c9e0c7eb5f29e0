//! One account's life (layer 6): enrollment, negotiation, provisioning, folder sync, item
//! sync, push, upload of local changes, back-off and the schedule. It reaches the server,
//! the store and the device through narrow interfaces so tests can put the lab or fakes
//! behind them.
//!
//! Map (built so far):
//! - [`account`]: one account's synchronous sync cycle (`easyncd --once`): negotiate,
//!   provision, FolderSync, Sync every selected folder into the store.
//! - [`apply`]: a Sync response applied to the store as it is read (the engine's
//!   `SyncHandler`), saving the SyncKey only once the items are durable.
//! - [`enforce`]: the account's Enforcer — the policy hooks' verdict (or nothing enforced
//!   without `[hooks]`), the wipe intent persisted, the last verdict kept for reports.
//! - [`enroll`]: an OAuth account's tokens: the credential store, the device sign-in
//!   (RFC 8628) with its prompt, silent refresh written back to the store.
//! - [`fetch`]: on-demand ItemOperations fetches: attachments into files, the whole MIME
//!   of mail stored truncated under a policy (the `X-Easync-Truncated` marker), the whole
//!   body of items cut by `[sync] body_size_limit`.
//! - [`heartbeat`]: the adaptive Ping heartbeat and the choice of folders to watch.
//! - [`outbox`]: the Maildir `outbox/` sent with SendMail, refused messages set aside in
//!   `outbox-failed/`.
//! - [`push`]: one push round: Ping the synced folders with the adaptive heartbeat, Sync
//!   the folders that changed.
//! - [`reaction`]: what every kind of failure leads to (bounded waits, parked states).
//! - [`upload`]: the device's changes (vdir files, Maildir flags and deletions) sent as Sync
//!   Add/Change/Delete with each folder's Sync, and [`account::Account::upload_once`].
//! - [`watch`]: inotify on the data directory's item folders, telling the daemon when to
//!   upload.
//! - [`provision`]: provisioning over a session, with the policy decision and the wipe
//!   handed to an [`provision::Enforcer`].
//! - [`runner`]: the long-running schedule on its own thread — cycles, push rounds,
//!   back-off — steered through a [`runner::Handle`] that can end a parked Ping at once.

pub mod account;
pub mod apply;
pub mod enforce;
pub mod enroll;
pub mod fetch;
pub mod heartbeat;
pub mod outbox;
pub mod provision;
pub mod push;
pub mod reaction;
pub mod runner;
pub mod upload;
pub mod watch;
