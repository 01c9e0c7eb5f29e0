//! The user's folder choices: folders switched on or off on the device (D-Bus
//! `SetFolderEnabled`, `easyncctl folders enable|disable`), kept in `state/folders.json`.
//! A choice overrides the configuration's `[sync]` selection for that folder; folders
//! without a choice follow the configuration. The file is small JSON keyed by ServerId
//! (server-provided strings never become paths here), replaced atomically, and written by
//! one place only: the daemon's D-Bus service.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::atomic::{self, PRIVATE_FILE_MODE, StoreError};

/// The file under `data_dir/state/`.
pub const FILE: &str = "folders.json";
/// More choices than this are refused (a server has at most a few thousand folders).
pub const MAX_CHOICES: usize = 10_000;
/// The largest choice file read (bytes): [`MAX_CHOICES`] long ServerIds fit.
const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

/// The choices of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderChoices {
    path: PathBuf,
    chosen: BTreeMap<String, bool>,
}

impl FolderChoices {
    /// The file's path for the account in `data_dir`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("state").join(FILE)
    }

    /// Reads the choices (none when the file does not exist). A damaged file is an error
    /// naming it; the engine then follows the configuration alone.
    pub fn load(data_dir: &Path) -> Result<FolderChoices, StoreError> {
        use std::io::Read;
        let path = Self::path_in(data_dir);
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
            .map(|_| bytes);
        let chosen = match read {
            Ok(bytes) => Self::parse(&bytes).map_err(|detail| StoreError::Invalid {
                path: path.clone(),
                detail,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(StoreError::io("read", &path, e)),
        };
        Ok(FolderChoices { path, chosen })
    }

    /// The choices a file of `bytes` holds: folder ServerId to enabled.
    pub fn parse(bytes: &[u8]) -> Result<BTreeMap<String, bool>, String> {
        let advice = "fix or remove the file (the configuration's folder selection applies \
                      meanwhile)";
        if bytes.len() > MAX_FILE_BYTES {
            return Err(format!(
                "{} bytes, more than the {MAX_FILE_BYTES} a choice file can need; {advice}",
                bytes.len()
            ));
        }
        let chosen: BTreeMap<String, bool> =
            serde_json::from_slice(bytes).map_err(|e| format!("{e}; {advice}"))?;
        if chosen.len() > MAX_CHOICES {
            return Err(format!(
                "{} folder choices, more than {MAX_CHOICES}; {advice}",
                chosen.len()
            ));
        }
        Ok(chosen)
    }

    /// The choice made for the folder `server_id`, if any.
    pub fn get(&self, server_id: &str) -> Option<bool> {
        self.chosen.get(server_id).copied()
    }

    /// Records a choice and saves the file. False when nothing changed.
    pub fn set(&mut self, server_id: &str, enabled: bool) -> Result<bool, StoreError> {
        if self.get(server_id) == Some(enabled) {
            return Ok(false);
        }
        if !self.chosen.contains_key(server_id) && self.chosen.len() >= MAX_CHOICES {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                detail: format!("more than {MAX_CHOICES} folder choices; remove the file"),
            });
        }
        self.chosen.insert(server_id.to_string(), enabled);
        if let Some(dir) = self.path.parent() {
            atomic::create_dir_all(dir, atomic::PRIVATE_DIR_MODE)?;
        }
        let json = serde_json::to_vec_pretty(&self.chosen).unwrap_or_default();
        atomic::replace_file(&self.path, &json, PRIVATE_FILE_MODE)?;
        Ok(true)
    }

    /// Whether the folder is synced: the choice if one was made, else `configured`.
    pub fn selects(&self, server_id: &str, configured: bool) -> bool {
        self.get(server_id).unwrap_or(configured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("easync-choices-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_choice_file_with_too_many_entries_or_bytes_is_refused() {
        let dir = scratch("bounds");
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let many: BTreeMap<String, bool> =
            (0..=MAX_CHOICES).map(|i| (i.to_string(), true)).collect();
        std::fs::write(
            FolderChoices::path_in(&dir),
            serde_json::to_vec(&many).unwrap(),
        )
        .unwrap();
        let e = FolderChoices::load(&dir).unwrap_err().to_string();
        assert!(
            e.contains("more than 10000") && e.contains("remove the file"),
            "{e}"
        );
        // Padding past the byte limit is refused before any parsing.
        let mut big = b"{\"7\": true".to_vec();
        big.resize(MAX_FILE_BYTES + 10, b' ');
        big.push(b'}');
        std::fs::write(FolderChoices::path_in(&dir), &big).unwrap();
        let e = FolderChoices::load(&dir).unwrap_err().to_string();
        assert!(e.contains("bytes, more than"), "{e}");
        // Exactly the limit of entries still loads.
        let fits: BTreeMap<String, bool> =
            (0..MAX_CHOICES).map(|i| (i.to_string(), false)).collect();
        std::fs::write(
            FolderChoices::path_in(&dir),
            serde_json::to_vec(&fits).unwrap(),
        )
        .unwrap();
        assert_eq!(FolderChoices::load(&dir).unwrap().get("9999"), Some(false));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn choices_persist_and_override_the_configuration() {
        let dir = scratch("persist");
        let mut c = FolderChoices::load(&dir).unwrap();
        assert!(c.selects("7", true) && !c.selects("7", false));
        assert!(c.set("7", false).unwrap());
        assert!(
            !c.set("7", false).unwrap(),
            "the same choice again changes nothing"
        );
        assert!(c.set("odd\nid/../x", true).unwrap());
        let again = FolderChoices::load(&dir).unwrap();
        assert!(!again.selects("7", true));
        assert!(again.selects("odd\nid/../x", false));
        assert_eq!(again.get("8"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = scratch("damaged");
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::write(FolderChoices::path_in(&dir), b"{\"7\": maybe}").unwrap();
        let e = FolderChoices::load(&dir).unwrap_err().to_string();
        assert!(e.contains(FILE) && e.contains("remove"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
