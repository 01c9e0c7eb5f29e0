//! Ping (MS-ASCMD 2.2.1.13): waits on the lab's condition variable up to the heartbeat and
//! answers Status 2 with the folders that have changes as soon as one does, Status 1 when
//! the heartbeat expires. An empty Ping reuses the device's last parameters (Status 3 when
//! there are none); out-of-bounds heartbeats get Status 5, too many folders Status 6, an
//! unknown folder Status 7.

use std::time::Instant;

use super::protocol::{Ctx, Reply, bad_body};
use super::render::{document, status_document};
use super::state::PingParams;
use crate::eas::ping::{
    CLASS, FOLDER, FOLDERS, HEARTBEAT_INTERVAL, ID, MAX_FOLDERS, PING, STATUS, Status,
};

pub fn handle(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let config = &ctx.lab.config;
    let node = match ctx.tree(PING) {
        Ok(n) => n,
        Err(e) => return bad_body(e),
    };
    let mut heartbeat: Option<u32> = None;
    let mut folders: Option<Vec<String>> = None;
    if let Some(node) = &node {
        for child in node.children() {
            if child.tag == HEARTBEAT_INTERVAL {
                match child.text().and_then(|t| t.trim().parse().ok()) {
                    Some(h) => heartbeat = Some(h),
                    None => {
                        return status_document(v, PING, STATUS, Status::SyntaxError.code()).into();
                    }
                }
            } else if child.tag == FOLDERS {
                let mut list = Vec::new();
                for f in child.children() {
                    let (Some(id), Some(class)) = (f.child_text(ID), f.child_text(CLASS)) else {
                        return status_document(v, PING, STATUS, Status::SyntaxError.code()).into();
                    };
                    if f.tag != FOLDER || super::model::class_from_name(class).is_none() {
                        return status_document(v, PING, STATUS, Status::SyntaxError.code()).into();
                    }
                    list.push(id.to_string());
                }
                folders = Some(list);
            } else {
                return status_document(v, PING, STATUS, Status::SyntaxError.code()).into();
            }
        }
    }
    if let Some(h) = heartbeat {
        if h < config.ping_min_heartbeat || h > config.ping_max_heartbeat {
            let limit = if h < config.ping_min_heartbeat {
                config.ping_min_heartbeat
            } else {
                config.ping_max_heartbeat
            };
            return document(v, |w| {
                w.start(PING)?;
                w.text_element(STATUS, &Status::InvalidHeartbeatInterval.code().to_string())?;
                w.text_element(HEARTBEAT_INTERVAL, &limit.to_string())?;
                w.end()
            })
            .into();
        }
    }
    if folders
        .as_ref()
        .is_some_and(|f| f.len() > config.ping_max_folders)
    {
        return document(v, |w| {
            w.start(PING)?;
            w.text_element(STATUS, &Status::TooManyFolders.code().to_string())?;
            w.text_element(MAX_FOLDERS, &config.ping_max_folders.to_string())?;
            w.end()
        })
        .into();
    }

    let mut st = ctx.lab.shared.lock();
    let d = st.device(&ctx.device_id, &ctx.device_type, &ctx.user);
    let params = match (heartbeat, folders, &d.last_ping) {
        (Some(h), Some(f), _) => PingParams {
            heartbeat: h,
            folders: f,
        },
        (h, f, Some(last)) => PingParams {
            heartbeat: h.unwrap_or(last.heartbeat),
            folders: f.unwrap_or_else(|| last.folders.clone()),
        },
        (_, _, None) => {
            return status_document(v, PING, STATUS, Status::MissingParameters.code()).into();
        }
    };
    if params.folders.is_empty() {
        return status_document(v, PING, STATUS, Status::MissingParameters.code()).into();
    }
    d.last_ping = Some(params.clone());
    if params
        .folders
        .iter()
        .any(|id| st.folder(id).and_then(|f| f.class()).is_none())
    {
        return status_document(v, PING, STATUS, Status::FolderSyncRequired.code()).into();
    }
    let deadline = Instant::now() + super::scaled_wait(config, params.heartbeat as u64);
    loop {
        let now = ctx.lab.now();
        let changed: Vec<String> = params
            .folders
            .iter()
            .filter(|id| super::sync::pending_count(&st, &ctx.device_id, id, now) > 0)
            .cloned()
            .collect();
        if !changed.is_empty() {
            drop(st);
            return document(v, |w| {
                w.start(PING)?;
                w.text_element(STATUS, &Status::ChangesFound.code().to_string())?;
                w.start(FOLDERS)?;
                for id in &changed {
                    w.text_element(FOLDER, id)?;
                }
                w.end()?;
                w.end()
            })
            .into();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || st.shutdown {
            drop(st);
            return status_document(v, PING, STATUS, Status::Expired.code()).into();
        }
        st = ctx.lab.shared.wait_for_change(st, left);
    }
}
