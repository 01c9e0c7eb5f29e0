//! FolderSync, FolderCreate, FolderUpdate and FolderDelete (MS-ASCMD 2.2.1.2 to 2.2.1.5):
//! a per-device hierarchy sync key and the Add/Update/Delete changes since the device last
//! synchronized the hierarchy.

use super::model::Folder;
use super::protocol::{Ctx, Reply, bad_body};
use super::render::{document, status_document};
use super::state::State;
use crate::eas::folder::{
    ADD, CHANGES, COUNT, DELETE, DISPLAY_NAME, FOLDER_CREATE, FOLDER_DELETE, FOLDER_SYNC,
    FOLDER_UPDATE, PARENT_ID, SERVER_ID, STATUS, SYNC_KEY, TYPE, UPDATE,
};

use crate::eas::folder::FolderChangeStatus as Change;

/// Status 9 (FolderSync and the folder commands alike): the hierarchy key is not the current one.
const INVALID_SYNC_KEY: u32 = Change::InvalidSyncKey.code();
/// Status 10: the request is malformed.
const BAD_REQUEST: u32 = Change::BadRequest.code();
/// Status 2, 3, 4, 5, 6 of FolderCreate/Update/Delete.
const NAME_EXISTS: u32 = Change::NameExists.code();
const SPECIAL_FOLDER: u32 = Change::SpecialFolder.code();
const FOLDER_NOT_FOUND: u32 = Change::FolderNotFound.code();
const PARENT_NOT_FOUND: u32 = Change::ParentNotFound.code();
const SERVER_ERROR: u32 = Change::ServerError.code();

pub fn folder_sync(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(FOLDER_SYNC) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, FOLDER_SYNC, STATUS, BAD_REQUEST).into(),
        Err(e) => return bad_body(e),
    };
    let Some(key) = node.child_text(SYNC_KEY).map(str::trim) else {
        return status_document(v, FOLDER_SYNC, STATUS, BAD_REQUEST).into();
    };
    let mut st = ctx.lab.shared.lock();
    let folders = st.folders.clone();
    let d = st.device(&ctx.device_id, &ctx.device_type, &ctx.user);
    if key == "0" {
        d.hierarchy.known.clear();
    } else if key != d.hierarchy.key.to_string() || d.hierarchy.key == 0 {
        return status_document(v, FOLDER_SYNC, STATUS, INVALID_SYNC_KEY).into();
    }
    let known = &d.hierarchy.known;
    let deleted: Vec<String> = known
        .keys()
        .filter(|id| !folders.iter().any(|f| &f.server_id == *id))
        .cloned()
        .collect();
    let updated: Vec<&Folder> = folders
        .iter()
        .filter(|f| known.get(&f.server_id).is_some_and(|k| k != *f))
        .collect();
    let added: Vec<&Folder> = parents_first(
        folders
            .iter()
            .filter(|f| !known.contains_key(&f.server_id))
            .collect(),
    );
    let count = deleted.len() + updated.len() + added.len();
    if count > 0 || key == "0" {
        d.hierarchy.key += 1;
        d.hierarchy.known = folders
            .iter()
            .map(|f| (f.server_id.clone(), f.clone()))
            .collect();
    }
    let new_key = d.hierarchy.key.to_string();
    document(v, |w| {
        w.start(FOLDER_SYNC)?;
        w.text_element(STATUS, "1")?;
        w.text_element(SYNC_KEY, &new_key)?;
        w.start(CHANGES)?;
        w.text_element(COUNT, &count.to_string())?;
        for id in &deleted {
            w.start(DELETE)?;
            w.text_element(SERVER_ID, id)?;
            w.end()?;
        }
        for (tag, list) in [(UPDATE, &updated), (ADD, &added)] {
            for f in list.iter() {
                w.start(tag)?;
                w.text_element(SERVER_ID, &f.server_id)?;
                w.text_element(PARENT_ID, &f.parent_id)?;
                w.text_element(DISPLAY_NAME, &f.name)?;
                w.text_element(TYPE, &f.folder_type.to_string())?;
                w.end()?;
            }
        }
        w.end()?;
        w.end()
    })
    .into()
}

/// Orders folders so that every parent comes before its children (a parent that is not
/// being added is already known to the client).
fn parents_first(mut list: Vec<&Folder>) -> Vec<&Folder> {
    let mut out: Vec<&Folder> = Vec::with_capacity(list.len());
    while !list.is_empty() {
        let pending: Vec<String> = list.iter().map(|f| f.server_id.clone()).collect();
        let before = list.len();
        list.retain(|f| {
            let ready = !pending.contains(&f.parent_id);
            if ready {
                out.push(f);
            }
            !ready
        });
        if list.len() == before {
            // A cycle cannot happen in the lab's hierarchy; keep going anyway.
            out.append(&mut list);
        }
    }
    out
}

/// Checks the hierarchy key of a FolderCreate/Update/Delete; on success advances it.
fn check_key(st: &mut State, ctx: &Ctx, key: Option<&str>) -> Result<(), u32> {
    let key = key.map(str::trim).ok_or(BAD_REQUEST)?;
    let d = st.device(&ctx.device_id, &ctx.device_type, &ctx.user);
    if d.hierarchy.key == 0 || key != d.hierarchy.key.to_string() {
        return Err(INVALID_SYNC_KEY);
    }
    Ok(())
}

/// After a client-side folder change: the device knows the current hierarchy for the
/// folders it touched, under a new key.
fn advance(st: &mut State, ctx: &Ctx, touched: &[String]) -> String {
    let folders = st.folders.clone();
    let d = st.device(&ctx.device_id, &ctx.device_type, &ctx.user);
    for id in touched {
        match folders.iter().find(|f| &f.server_id == id) {
            Some(f) => {
                d.hierarchy.known.insert(id.clone(), f.clone());
            }
            None => {
                d.hierarchy.known.remove(id);
            }
        }
    }
    d.hierarchy.key += 1;
    d.hierarchy.key.to_string()
}

pub fn folder_create(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(FOLDER_CREATE) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, FOLDER_CREATE, STATUS, BAD_REQUEST).into(),
        Err(e) => return bad_body(e),
    };
    let mut st = ctx.lab.shared.lock();
    if let Err(code) = check_key(&mut st, ctx, node.child_text(SYNC_KEY)) {
        return status_document(v, FOLDER_CREATE, STATUS, code).into();
    }
    let (Some(parent), Some(name), Some(ty)) = (
        node.child_text(PARENT_ID),
        node.child_text(DISPLAY_NAME),
        node.child_text(TYPE)
            .and_then(|t| t.trim().parse::<u8>().ok()),
    ) else {
        return status_document(v, FOLDER_CREATE, STATUS, BAD_REQUEST).into();
    };
    if name.is_empty() || !matches!(ty, 1 | 12..=17) {
        return status_document(v, FOLDER_CREATE, STATUS, BAD_REQUEST).into();
    }
    if parent != "0" && st.folder(parent).is_none() {
        return status_document(v, FOLDER_CREATE, STATUS, PARENT_NOT_FOUND).into();
    }
    let id = match st.add_folder(parent, name, ty) {
        Ok(id) => id,
        Err(_) => return status_document(v, FOLDER_CREATE, STATUS, NAME_EXISTS).into(),
    };
    let key = advance(&mut st, ctx, std::slice::from_ref(&id));
    drop(st);
    ctx.lab.shared.changed.notify_all();
    document(v, |w| {
        w.start(FOLDER_CREATE)?;
        w.text_element(STATUS, "1")?;
        w.text_element(SYNC_KEY, &key)?;
        w.text_element(SERVER_ID, &id)?;
        w.end()
    })
    .into()
}

pub fn folder_update(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(FOLDER_UPDATE) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, FOLDER_UPDATE, STATUS, BAD_REQUEST).into(),
        Err(e) => return bad_body(e),
    };
    let mut st = ctx.lab.shared.lock();
    if let Err(code) = check_key(&mut st, ctx, node.child_text(SYNC_KEY)) {
        return status_document(v, FOLDER_UPDATE, STATUS, code).into();
    }
    let (Some(id), Some(parent), Some(name)) = (
        node.child_text(SERVER_ID),
        node.child_text(PARENT_ID),
        node.child_text(DISPLAY_NAME),
    ) else {
        return status_document(v, FOLDER_UPDATE, STATUS, BAD_REQUEST).into();
    };
    let code = match st.folder(id) {
        None => Some(FOLDER_NOT_FOUND),
        Some(f) if f.is_special() => Some(SPECIAL_FOLDER),
        Some(_) if parent != "0" && (st.folder(parent).is_none() || parent == id) => {
            Some(PARENT_NOT_FOUND)
        }
        Some(_)
            if st
                .folders
                .iter()
                .any(|f| f.parent_id == parent && f.name == name && f.server_id != id) =>
        {
            Some(NAME_EXISTS)
        }
        Some(_) => None,
    };
    if let Some(code) = code {
        return status_document(v, FOLDER_UPDATE, STATUS, code).into();
    }
    if st.update_folder(id, parent, name).is_err() {
        return status_document(v, FOLDER_UPDATE, STATUS, SERVER_ERROR).into();
    }
    let key = advance(&mut st, ctx, &[id.to_string()]);
    drop(st);
    ctx.lab.shared.changed.notify_all();
    document(v, |w| {
        w.start(FOLDER_UPDATE)?;
        w.text_element(STATUS, "1")?;
        w.text_element(SYNC_KEY, &key)?;
        w.end()
    })
    .into()
}

pub fn folder_delete(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(FOLDER_DELETE) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, FOLDER_DELETE, STATUS, BAD_REQUEST).into(),
        Err(e) => return bad_body(e),
    };
    let mut st = ctx.lab.shared.lock();
    if let Err(code) = check_key(&mut st, ctx, node.child_text(SYNC_KEY)) {
        return status_document(v, FOLDER_DELETE, STATUS, code).into();
    }
    let Some(id) = node.child_text(SERVER_ID) else {
        return status_document(v, FOLDER_DELETE, STATUS, BAD_REQUEST).into();
    };
    match st.folder(id) {
        None => return status_document(v, FOLDER_DELETE, STATUS, FOLDER_NOT_FOUND).into(),
        Some(f) if f.is_special() => {
            return status_document(v, FOLDER_DELETE, STATUS, SPECIAL_FOLDER).into();
        }
        Some(_) => {}
    }
    let before: Vec<String> = st.folders.iter().map(|f| f.server_id.clone()).collect();
    if st.delete_folder(id).is_err() {
        return status_document(v, FOLDER_DELETE, STATUS, SERVER_ERROR).into();
    }
    let gone: Vec<String> = before
        .into_iter()
        .filter(|b| st.folder(b).is_none())
        .collect();
    let key = advance(&mut st, ctx, &gone);
    drop(st);
    ctx.lab.shared.changed.notify_all();
    document(v, |w| {
        w.start(FOLDER_DELETE)?;
        w.text_element(STATUS, "1")?;
        w.text_element(SYNC_KEY, &key)?;
        w.end()
    })
    .into()
}
