//! A configuration file, its 0600 password file and a data directory in a temporary
//! directory: what an engine or daemon test runs against.

#![allow(dead_code)]

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::client;

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(client::device_id(&format!("engine-{tag}-")));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // tests/run.sh keeps them for the secrets sweep (tests/secrets-sweep.sh).
        if std::env::var_os("EASYNC_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub struct Setup {
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub device_id: String,
}

impl Setup {
    /// An account on `url`; `extra` is appended to the TOML (e.g. a `[push]` table).
    pub fn new(
        url: &str,
        user: &str,
        password: &str,
        ca_file: Option<&Path>,
        tag: &str,
        extra: &str,
    ) -> Setup {
        // The configuration wants an address as `email`; a bare login name is the `user`.
        let email = if user.contains('@') {
            user.to_string()
        } else {
            format!("{user}@example.com")
        };
        let dir = TempDir::new(tag);
        let password_file = dir.0.join("password");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&password_file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, password.as_bytes()))
            .unwrap();
        let device_id = client::device_id(tag);
        let ca = ca_file
            .map(|c| format!("ca_file = {:?}\n", c.display().to_string()))
            .unwrap_or_default();
        let text = format!(
            "[account]\nemail = {email:?}\nuser = {user:?}\npassword_file = {:?}\nserver = {url:?}\n\n\
             [tls]\n{ca}allow_insecure_http = {}\n\n[storage]\ndata_dir = {:?}\n\n\
             [sync]\nmail_age = \"all\"\ncalendar_age = \"all\"\n\n\
             [device]\ndevice_id = {device_id:?}\n\n{extra}",
            password_file.display().to_string(),
            url.starts_with("http://"),
            dir.0.join("data").display().to_string(),
        );
        let config_path = dir.0.join("easync.toml");
        std::fs::write(&config_path, text).unwrap();
        Setup {
            dir,
            config_path,
            device_id,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }
}
