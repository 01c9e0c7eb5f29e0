//! Everything on disk (layer 4): account state, mail as Maildir, contacts, calendar, tasks
//! and notes as vdir (one file per item), and the conversions between EAS items and those
//! standard formats. Nothing else in the crate writes files.
//!
//! Map:
//! - [`atomic`]: write-temp, fsync, rename, fsync-the-folder: the one way files are replaced.
//! - [`names`]: server-provided names made into safe, unique directory and file names.
//! - [`choices`]: the folders the user switched on or off on the device.
//! - [`credentials`]: the credential store (`credentials/`, 0700): OAuth tokens (0600).
//! - [`state`]: the account's state (sync keys, id maps, learned heartbeat) as postcard.
//! - [`lock`]: one process at a time per data directory.
//! - [`incoming`]: the journal of new item files not yet mapped by a saved state.
//! - [`maildir`]: mail folders in the Maildir layout (`cur`, `new`, `tmp`, flags).
//! - [`vdir`]: one-file-per-item folders for contacts, calendar, tasks and notes.
//! - [`vcard`], [`ical`], [`note`], [`timezone`]: EAS items to and from vCard 4.0,
//!   iCalendar (VEVENT, VTODO, VTIMEZONE) and the notes format.

pub mod atomic;
pub mod choices;
pub mod credentials;
pub mod ical;
pub mod incoming;
pub mod lock;
pub mod maildir;
pub mod names;
pub mod note;
pub mod state;
pub mod timezone;
pub mod vcard;
pub mod vdir;
