//! The credential store: `data_dir/credentials/` (mode 0700), the one place secrets are
//! written. It holds an OAuth account's tokens (`oauth-tokens.json`, mode 0600) and the
//! password given at enrollment (`password`, mode 0600, D-Bus `Enroll`), each replaced
//! atomically like every store file, so a power cut leaves the old secret or the new one.
//!
//! The tokens file is small versioned JSON: `format` (see [`FORMAT_VERSION`]), the access
//! token, the refresh token (absent when the server issued none), the access token's expiry
//! in Unix seconds and the granted scope. A file that does not decode, comes from a newer
//! easync, or can be read by anyone but its owner is refused with an error that says to sign
//! in again; it is never deleted here behind the user's back. Tokens never appear in `Debug`
//! output or error messages.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::atomic::{self, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, StoreError};
use crate::transport::Secret;
use crate::transport::oauth::Tokens;

/// The credential store's folder under `data_dir`.
pub const CREDENTIALS_DIR: &str = "credentials";
/// The OAuth tokens file in it.
pub const OAUTH_TOKENS_FILE: &str = "oauth-tokens.json";
/// The password given at enrollment (it takes precedence over the configured one).
pub const PASSWORD_FILE: &str = "password";
/// Where tokens the server refused are kept (see [`CredentialStore::set_aside_oauth`]).
pub const REFUSED_OAUTH_TOKENS_FILE: &str = "oauth-tokens.refused.json";
/// The tokens file's format version.
pub const FORMAT_VERSION: u32 = 1;
/// The largest tokens file read (tokens are a few KiB at most).
pub const MAX_TOKENS_FILE_BYTES: u64 = 64 * 1024;

/// What to tell the user whenever the stored sign-in is unusable.
const SIGN_IN_AGAIN: &str = "move the file aside and run `easyncd --once` to sign in again \
                             (it shows a code to enter at the sign-in page)";

/// Why the credential store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the stored OAuth tokens in {} are damaged ({detail}): {SIGN_IN_AGAIN}", .path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the stored OAuth tokens in {} have format {found}, this easync reads up to \
         {FORMAT_VERSION}: install the newer easync again, or {SIGN_IN_AGAIN}",
        .path.display()
    )]
    NewerFormat { path: PathBuf, found: u32 },
    #[error(
        "the stored OAuth tokens in {} have mode {mode:04o}, so others may have read them: \
         they are not used; revoke the sign-in if that was possible, then {SIGN_IN_AGAIN}",
        .path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "the enrollment password in {} is not usable ({detail}): enroll again (`easyncctl \
         enroll`), or remove the file to use the configured password",
        .path.display()
    )]
    Password { path: PathBuf, detail: String },
}

pub type Result<T> = core::result::Result<T, CredentialError>;

/// The tokens file as written. No `Debug`: it holds the tokens in clear.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    format: u32,
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Unix seconds.
    expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Only the `format` field, read first so a newer file is recognised as such.
#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
}

/// The credential store of one account (`data_dir/credentials/`).
#[derive(Debug, Clone)]
pub struct CredentialStore {
    dir: PathBuf,
}

impl CredentialStore {
    pub fn new(data_dir: &Path) -> CredentialStore {
        CredentialStore {
            dir: data_dir.join(CREDENTIALS_DIR),
        }
    }

    /// `data_dir/credentials`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `data_dir/credentials/oauth-tokens.json`.
    pub fn oauth_path(&self) -> PathBuf {
        self.dir.join(OAUTH_TOKENS_FILE)
    }

    /// `data_dir/credentials/oauth-tokens.refused.json`.
    pub fn refused_oauth_path(&self) -> PathBuf {
        self.dir.join(REFUSED_OAUTH_TOKENS_FILE)
    }

    /// `data_dir/credentials/password`.
    pub fn password_path(&self) -> PathBuf {
        self.dir.join(PASSWORD_FILE)
    }

    /// The password given at enrollment, if one was (one trailing newline removed).
    pub fn load_password(&self) -> Result<Option<Secret>> {
        let path = self.password_path();
        let unusable = |detail: String| CredentialError::Password {
            path: path.clone(),
            detail,
        };
        let bytes = match read_private(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(CredentialError::Exposed { mode, .. }) => {
                return Err(unusable(format!(
                    "mode {mode:04o}: others may have read it; change the password"
                )));
            }
            Err(CredentialError::Damaged { detail, .. }) => return Err(unusable(detail)),
            Err(e) => return Err(e),
        };
        let mut text = String::from_utf8(bytes).map_err(|_| unusable("not UTF-8 text".into()))?;
        if text.ends_with('\n') {
            text.pop();
        }
        if text.is_empty() {
            return Err(unusable("it is empty".into()));
        }
        Ok(Some(Secret::new(text)))
    }

    /// Stores the enrollment password (folder 0700, file 0600).
    pub fn save_password(&self, password: &Secret) -> Result<()> {
        atomic::create_dir_all(&self.dir, PRIVATE_DIR_MODE)?;
        atomic::replace_file(
            &self.password_path(),
            password.expose().as_bytes(),
            PRIVATE_FILE_MODE,
        )?;
        Ok(())
    }

    /// The stored OAuth tokens; `None` when none are stored (not signed in yet).
    pub fn load_oauth(&self) -> Result<Option<Tokens>> {
        let path = self.oauth_path();
        let Some(bytes) = read_private(&path)? else {
            return Ok(None);
        };
        decode(&bytes, &path).map(Some)
    }

    /// Stores `tokens` (replacing the file atomically; folder 0700, file 0600).
    pub fn save_oauth(&self, tokens: &Tokens) -> Result<()> {
        atomic::create_dir_all(&self.dir, PRIVATE_DIR_MODE)?;
        let file = TokenFile {
            format: FORMAT_VERSION,
            access_token: tokens.access.expose().to_string(),
            refresh_token: tokens.refresh.as_ref().map(|r| r.expose().to_string()),
            expires_at: tokens
                .expires_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            scope: tokens.scope.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| StoreError::Invalid {
            path: self.oauth_path(),
            detail: format!("the tokens could not be encoded: {e}"),
        })?;
        atomic::replace_file(&self.oauth_path(), &bytes, PRIVATE_FILE_MODE)?;
        Ok(())
    }

    /// Removes the stored tokens (signing out). Returns whether there were any.
    pub fn remove_oauth(&self) -> Result<bool> {
        Ok(atomic::remove_file(&self.oauth_path())?)
    }

    /// Moves the stored tokens to [`REFUSED_OAUTH_TOKENS_FILE`] (replacing an older one),
    /// after the server refused them: the next start signs in afresh, and the old file stays
    /// for inspection (still 0600). Returns where they went, `None` when none were stored.
    pub fn set_aside_oauth(&self) -> Result<Option<PathBuf>> {
        let (from, to) = (self.oauth_path(), self.refused_oauth_path());
        match std::fs::symlink_metadata(&from) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("inspect", &from, e).into()),
        }
        atomic::rename(&from, &to)?;
        Ok(Some(to))
    }
}

/// The contents of `path` when it is a regular file only its owner can read; `None` when it
/// does not exist. Symbolic links are not followed (the check must be of the file read).
fn read_private(path: &Path) -> Result<Option<Vec<u8>>> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path);
    let file: File = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return Err(damaged(path, "it is a symbolic link"));
        }
        Err(e) => return Err(StoreError::io("open", path, e).into()),
    };
    let meta = file
        .metadata()
        .map_err(|e| StoreError::io("inspect", path, e))?;
    if !meta.is_file() {
        return Err(damaged(path, "it is not a regular file"));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CredentialError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_TOKENS_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io("read", path, e))?;
    if bytes.len() as u64 > MAX_TOKENS_FILE_BYTES {
        return Err(damaged(
            path,
            &format!("it is larger than {MAX_TOKENS_FILE_BYTES} bytes"),
        ));
    }
    Ok(Some(bytes))
}

fn damaged(path: &Path, detail: &str) -> CredentialError {
    CredentialError::Damaged {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// A JSON error without its text: serde_json quotes the offending value, which may be a
/// token.
fn json_error(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "an unexpected field or value",
        serde_json::error::Category::Eof => "cut short",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// Fuzzing entry point (fuzz/fuzz_targets/device_input.rs): the tokens a tokens file of
/// `bytes` holds. Not part of the API.
#[doc(hidden)]
pub fn fuzz_tokens_file(bytes: &[u8]) -> Result<Tokens> {
    decode(bytes, Path::new("/fuzz/oauth.json"))
}

fn decode(bytes: &[u8], path: &Path) -> Result<Tokens> {
    let format = serde_json::from_slice::<FormatOnly>(bytes)
        .map_err(|e| damaged(path, &format!("not a tokens file: {}", json_error(&e))))?
        .format;
    if format > FORMAT_VERSION {
        return Err(CredentialError::NewerFormat {
            path: path.to_path_buf(),
            found: format,
        });
    }
    if format != FORMAT_VERSION {
        return Err(damaged(path, &format!("unknown format {format}")));
    }
    let file: TokenFile =
        serde_json::from_slice(bytes).map_err(|e| damaged(path, &json_error(&e)))?;
    if file.access_token.is_empty() {
        return Err(damaged(path, "the access token is empty"));
    }
    Ok(Tokens {
        access: Secret::new(file.access_token),
        refresh: file
            .refresh_token
            .filter(|r| !r.is_empty())
            .map(Secret::new),
        expires_at: UNIX_EPOCH + Duration::from_secs(file.expires_at.min(i64::MAX as u64 / 2)),
        scope: file.scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let dir = std::env::temp_dir().join(format!(
                "easync-credentials-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tokens(access: &str, refresh: Option<&str>) -> Tokens {
        Tokens {
            access: Secret::new(access),
            refresh: refresh.map(Secret::new),
            expires_at: UNIX_EPOCH + Duration::from_secs(1_900_000_000),
            scope: Some("scope-a offline_access".into()),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn tokens_round_trip_with_private_modes() {
        let dir = Dir::new("roundtrip");
        let store = CredentialStore::new(&dir.0);
        assert_eq!(store.load_oauth().unwrap(), None, "nothing stored yet");
        let first = tokens("access-1", Some("refresh-1"));
        store.save_oauth(&first).unwrap();
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.oauth_path()), 0o600);
        assert_eq!(store.load_oauth().unwrap(), Some(first));

        let rotated = Tokens {
            scope: None,
            ..tokens("access-2", None)
        };
        store.save_oauth(&rotated).unwrap();
        assert_eq!(store.load_oauth().unwrap(), Some(rotated.clone()));
        // Only the tokens file is left in the folder (no temporary files).
        let names: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OAUTH_TOKENS_FILE]);

        assert!(store.remove_oauth().unwrap());
        assert!(!store.remove_oauth().unwrap());
        assert_eq!(store.load_oauth().unwrap(), None);
    }

    #[test]
    fn a_loose_folder_is_tightened_on_save() {
        let dir = Dir::new("loose-dir");
        let store = CredentialStore::new(&dir.0);
        std::fs::create_dir(store.dir()).unwrap();
        std::fs::set_permissions(store.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        store.save_oauth(&tokens("a", Some("r"))).unwrap();
        assert_eq!(mode(store.dir()), 0o700);
    }

    #[test]
    fn a_file_others_can_read_is_refused_and_kept() {
        let dir = Dir::new("exposed");
        let store = CredentialStore::new(&dir.0);
        store.save_oauth(&tokens("a", Some("r"))).unwrap();
        std::fs::set_permissions(store.oauth_path(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let e = store.load_oauth().unwrap_err();
        assert!(
            matches!(e, CredentialError::Exposed { mode: 0o644, .. }),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(
            message.contains("0644") && message.contains("sign in again"),
            "{message}"
        );
        assert!(store.oauth_path().exists(), "the file is not deleted");
        // Group-readable is refused as well.
        std::fs::set_permissions(store.oauth_path(), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        assert!(matches!(
            store.load_oauth(),
            Err(CredentialError::Exposed { mode: 0o640, .. })
        ));
    }

    #[test]
    fn the_enrollment_password_is_private_and_checked() {
        let dir = Dir::new("password");
        let store = CredentialStore::new(&dir.0);
        assert!(store.load_password().unwrap().is_none());
        store.save_password(&Secret::new("s3cret")).unwrap();
        let mode = std::fs::metadata(store.password_path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(store.load_password().unwrap().unwrap().expose(), "s3cret");
        std::fs::set_permissions(
            store.password_path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let e = store.load_password().unwrap_err().to_string();
        assert!(e.contains("enroll again") && e.contains("0644"), "{e}");
        assert!(!e.contains("s3cret"));
    }

    #[test]
    fn damaged_files_are_refused_with_advice_and_kept() {
        let dir = Dir::new("damaged");
        let store = CredentialStore::new(&dir.0);
        store.save_oauth(&tokens("a", Some("r"))).unwrap();
        let write = |bytes: &[u8]| {
            atomic::replace_file(&store.oauth_path(), bytes, PRIVATE_FILE_MODE).unwrap()
        };
        let cases: [&[u8]; 6] = [
            b"",
            b"{\"format\":1,\"access_token\":\"a\"",
            b"\xff\xfe binary",
            b"{\"format\":1,\"access_token\":\"\",\"expires_at\":5}",
            b"{\"format\":0,\"access_token\":\"a\",\"expires_at\":5}",
            b"[1,2,3]",
        ];
        for bytes in cases {
            write(bytes);
            let e = store.load_oauth().unwrap_err();
            assert!(
                matches!(e, CredentialError::Damaged { .. }),
                "{bytes:?}: {e:?}"
            );
            assert!(e.to_string().contains("sign in again"), "{e}");
            assert!(store.oauth_path().exists());
        }
        write(b"{\"format\":2,\"whatever\":true}");
        assert!(matches!(
            store.load_oauth(),
            Err(CredentialError::NewerFormat { found: 2, .. })
        ));
        write(&vec![b' '; MAX_TOKENS_FILE_BYTES as usize + 1]);
        assert!(matches!(
            store.load_oauth(),
            Err(CredentialError::Damaged { .. })
        ));
    }

    #[test]
    fn a_symbolic_link_is_not_followed() {
        let dir = Dir::new("symlink");
        let store = CredentialStore::new(&dir.0);
        store.save_oauth(&tokens("a", Some("r"))).unwrap();
        let real = dir.0.join("elsewhere.json");
        std::fs::rename(store.oauth_path(), &real).unwrap();
        std::os::unix::fs::symlink(&real, store.oauth_path()).unwrap();
        assert!(matches!(
            store.load_oauth(),
            Err(CredentialError::Damaged { .. })
        ));
    }

    #[test]
    fn refused_tokens_are_set_aside_not_deleted() {
        let dir = Dir::new("aside");
        let store = CredentialStore::new(&dir.0);
        assert_eq!(store.set_aside_oauth().unwrap(), None);
        store.save_oauth(&tokens("a", Some("r"))).unwrap();
        let aside = store.set_aside_oauth().unwrap().unwrap();
        assert_eq!(aside, store.refused_oauth_path());
        assert_eq!(store.load_oauth().unwrap(), None, "the next start signs in");
        assert_eq!(mode(&aside), 0o600);
        let kept = std::fs::read_to_string(&aside).unwrap();
        assert!(kept.contains("\"refresh_token\":\"r\""), "{kept}");
    }

    #[test]
    fn nothing_secret_shows_in_debug_or_errors() {
        let t = tokens("secret-access", Some("secret-refresh"));
        let shown = format!("{t:?} {:?}", CredentialStore::new(Path::new("/x")));
        assert!(!shown.contains("secret-"), "{shown}");
        for bytes in [
            &b"{\"format\":1,\"access_token\":\"secret-access\"}"[..],
            b"{\"format\":1,\"access_token\":\"a\",\"expires_at\":\"secret-x\"}",
        ] {
            let e = decode(bytes, Path::new("/x")).unwrap_err().to_string();
            assert!(!e.contains("secret-"), "{e}");
        }
    }
}
