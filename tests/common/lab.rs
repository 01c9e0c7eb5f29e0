//! Starting an easync-lab in-process for a test and pointing the test client at it.

#![allow(dead_code)]

use std::path::PathBuf;

use easync::lab::{self, Handle};
use serde_json::Value;

use super::client::{self, Account};

/// A running lab and the file holding its CA certificate (for https clients).
pub struct Lab {
    pub handle: Handle,
    pub ca_file: PathBuf,
}

impl Lab {
    /// A lab on ephemeral loopback ports with `config` (listeners forced to loopback:0).
    pub fn start(mut config: lab::Config) -> Lab {
        let loopback = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        config.http = loopback;
        config.https = loopback;
        config.admin = loopback;
        // EASYNC_LAB_CAPTURE=DIR keeps every response body (seeds for `fuzz/`).
        if let Some(dir) = std::env::var_os("EASYNC_LAB_CAPTURE") {
            config.capture_dir = Some(dir.into());
        }
        let handle = lab::Server::start(config).expect("the lab starts");
        let ca_file = std::env::temp_dir().join(format!("{}.pem", client::device_id("labca")));
        std::fs::write(&ca_file, handle.ca_pem()).expect("CA file written");
        Lab { handle, ca_file }
    }

    /// The default lab: a policy, 20 seeded mails and the other classes.
    pub fn default_config() -> lab::Config {
        lab::Config::default()
    }

    /// An account for the lab's first user over HTTP or HTTPS.
    pub fn account(&self, https: bool, tag: &str) -> Account {
        let url = if https {
            self.handle.https_url()
        } else {
            self.handle.http_url()
        }
        .expect("listener");
        Account {
            url,
            user: self.handle.user().to_string(),
            password: "labpass".into(),
            device_id: client::device_id(tag),
            ca_file: https.then(|| self.ca_file.clone()),
        }
    }

    pub fn state(&self) -> Value {
        self.handle.state()
    }

    /// The lab's record of one device.
    pub fn device(&self, device_id: &str) -> Value {
        self.state()["devices"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["device_id"] == device_id).cloned())
            .unwrap_or_else(|| panic!("the lab has no device {device_id}"))
    }

    /// Adds to the inbox a mail carrying one attachment `name` with `data`; its ServerId
    /// (the attachment's FileReference is that followed by `:0`).
    pub fn mail_with_attachment(&self, name: &str, data: Vec<u8>) -> String {
        use easync::lab::NewItem;
        use easync::lab::model::{Attachment, Prop};
        self.handle
            .add_item(NewItem {
                folder_id: easync::lab::seed::folder::INBOX.into(),
                props: vec![
                    Prop::text("To", format!("<{}>", self.handle.user())),
                    Prop::text("From", "<admin@example.com>"),
                    Prop::text("Subject", "with attachment"),
                    Prop::text("Read", "0"),
                    Prop::text("MessageClass", "IPM.Note"),
                ],
                body: "see attached".into(),
                attachments: vec![Attachment {
                    name: name.into(),
                    content_type: "application/octet-stream".into(),
                    data,
                    inline: false,
                }],
                ..NewItem::default()
            })
            .unwrap()
    }

    /// How many items the lab holds in folder `server_id`.
    pub fn folder_items(&self, server_id: &str) -> u64 {
        self.state()["folders"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["server_id"] == server_id))
            .and_then(|f| f["items"].as_u64())
            .unwrap_or_else(|| panic!("the lab has no folder {server_id}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}
