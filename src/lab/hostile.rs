//! The lab's hostile faults: answers a broken or malicious server could send, to prove that
//! the client's memory stays bounded and that it neither loops nor stores what it should not.
//!
//! Oversized answers (a 1 GB string, a 1 GB string table, a million Adds) are never held in
//! memory: a [`Generated`] body knows its length and writes itself piece by piece, and the
//! writing stops as soon as the client hangs up. Small hostile answers (a 1 MB ServerId, a
//! Sync that never progresses, a Ping that always finds changes) are ordinary WBXML bodies
//! built here. The fault switch itself lives in [`super::protocol`].

use std::io::{self, Write};

use super::protocol::{Ctx, Reply, root_and_status};
use super::render::document;
use crate::wbxml::tags::cp;
use crate::wbxml::{Tag, token};

/// Default size of `huge-string` and `huge-string-table`: 1 GB.
pub const DEFAULT_HUGE_BYTES: u64 = 1 << 30;
/// Default depth of `deep-nesting`.
pub const DEFAULT_DEPTH: u64 = 10_000;
/// Default count of `many-folders`.
pub const DEFAULT_FOLDERS: u64 = 100_000;
/// Default count of `many-adds`.
pub const DEFAULT_ADDS: u64 = 1_000_000;
/// Default length of the `huge-server-id` ServerId: 1 MB.
pub const DEFAULT_ID_BYTES: u64 = 1 << 20;

/// Caps on what a fault may ask for, so a typo cannot exhaust the lab's own memory.
const MAX_DEPTH: u64 = 10_000_000;
const MAX_ID_BYTES: u64 = 64 << 20;
/// Folders and Adds are numbered with 7 digits, so every unit has the same length.
const MAX_NUMBERED: u64 = 9_999_999;

/// WBXML 1.3, public id unknown, UTF-8.
const HEADER: [u8; 3] = [0x03, 0x01, 0x6a];
/// The content bit of a tag token.
const CONTENT: u8 = 0x40;
/// Bytes written per `write_all` call of a generated body.
const PIECE: usize = 64 * 1024;

const SYNC: Tag = Tag::named(cp::AIRSYNC, "Sync");
const COLLECTIONS: Tag = Tag::named(cp::AIRSYNC, "Collections");
const COLLECTION: Tag = Tag::named(cp::AIRSYNC, "Collection");
const SYNC_KEY: Tag = Tag::named(cp::AIRSYNC, "SyncKey");
const COLLECTION_ID: Tag = Tag::named(cp::AIRSYNC, "CollectionId");
const SYNC_STATUS: Tag = Tag::named(cp::AIRSYNC, "Status");
const MORE_AVAILABLE: Tag = Tag::named(cp::AIRSYNC, "MoreAvailable");
const COMMANDS: Tag = Tag::named(cp::AIRSYNC, "Commands");
const ADD: Tag = Tag::named(cp::AIRSYNC, "Add");
const SERVER_ID: Tag = Tag::named(cp::AIRSYNC, "ServerId");
const APPLICATION_DATA: Tag = Tag::named(cp::AIRSYNC, "ApplicationData");
const SUBJECT: Tag = Tag::named(cp::EMAIL, "Subject");
const FOLDER_SYNC: Tag = Tag::named(cp::FOLDER_HIERARCHY, "FolderSync");
const FH_STATUS: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Status");
const FH_SYNC_KEY: Tag = Tag::named(cp::FOLDER_HIERARCHY, "SyncKey");
const CHANGES: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Changes");
const COUNT: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Count");
const FH_ADD: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Add");
const FH_SERVER_ID: Tag = Tag::named(cp::FOLDER_HIERARCHY, "ServerId");
const PARENT_ID: Tag = Tag::named(cp::FOLDER_HIERARCHY, "ParentId");
const DISPLAY_NAME: Tag = Tag::named(cp::FOLDER_HIERARCHY, "DisplayName");
const TYPE: Tag = Tag::named(cp::FOLDER_HIERARCHY, "Type");
const PING: Tag = Tag::named(cp::PING, "Ping");
const PING_STATUS: Tag = Tag::named(cp::PING, "Status");
const PING_FOLDERS: Tag = Tag::named(cp::PING, "Folders");
const PING_FOLDER: Tag = Tag::named(cp::PING, "Folder");
const PING_ID: Tag = Tag::named(cp::PING, "Id");

/// A body written on the fly: `head`, then `units` pieces made by [`Unit`], then `tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    head: Vec<u8>,
    unit: Unit,
    units: u64,
    tail: Vec<u8>,
}

/// What each repeated piece of a [`Generated`] body is. Every piece of one body has the
/// same length, so the Content-Length is known before the first byte goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unit {
    /// `n` copies of one byte.
    Bytes { byte: u8, n: usize },
    /// A FolderSync Add of folder number i (a fixed-width name).
    Folder,
    /// A Sync Add of item number i (a fixed-width ServerId).
    Item,
}

impl Generated {
    /// The whole length in bytes.
    pub fn len(&self) -> u64 {
        let unit = self.unit_bytes(0).len() as u64;
        self.head.len() as u64 + unit.saturating_mul(self.units) + self.tail.len() as u64
    }

    fn unit_bytes(&self, i: u64) -> Vec<u8> {
        match self.unit {
            Unit::Bytes { byte, n } => vec![byte; n],
            Unit::Folder => {
                let mut out = Vec::new();
                start(&mut out, FH_ADD);
                text(&mut out, FH_SERVER_ID, format!("h{i:07}").as_bytes());
                text(&mut out, PARENT_ID, b"0");
                text(&mut out, DISPLAY_NAME, format!("Hostile {i:07}").as_bytes());
                text(&mut out, TYPE, b"12");
                out.push(token::END);
                out
            }
            Unit::Item => {
                let mut out = Vec::new();
                start(&mut out, ADD);
                text(&mut out, SERVER_ID, format!("h:{i:07}").as_bytes());
                start(&mut out, APPLICATION_DATA);
                switch(&mut out, cp::EMAIL);
                text(&mut out, SUBJECT, format!("hostile {i:07}").as_bytes());
                switch(&mut out, cp::AIRSYNC);
                out.push(token::END);
                out.push(token::END);
                out
            }
        }
    }

    /// Writes the body to `out`; stops at the first write error (the client hung up).
    pub fn write_to<W: Write>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(&self.head)?;
        let mut batch = Vec::with_capacity(PIECE + 256);
        for i in 0..self.units {
            batch.extend_from_slice(&self.unit_bytes(i));
            if batch.len() >= PIECE {
                out.write_all(&batch)?;
                batch.clear();
            }
        }
        out.write_all(&batch)?;
        out.write_all(&self.tail)
    }
}

/// A hostile answer: a body to write on the fly, or an ordinary reply.
pub enum Answer {
    Generated(Generated),
    Reply(Reply),
    /// The request gives nothing to aim at (an empty Sync): answer it normally.
    Normal,
}

fn switch(out: &mut Vec<u8>, page: u8) {
    out.extend_from_slice(&[token::SWITCH_PAGE, page]);
}

/// The start of `tag` with content; assumes the current page is the tag's.
fn start(out: &mut Vec<u8>, tag: Tag) {
    out.push(tag.token | CONTENT);
}

/// `<tag>text</tag>` as an inline string.
fn text(out: &mut Vec<u8>, tag: Tag, value: &[u8]) {
    start(out, tag);
    out.push(token::STR_I);
    out.extend_from_slice(value);
    out.extend_from_slice(&[0, token::END]);
}

/// The document header with an empty string table, switched to `page`.
fn header(page: u8) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    out.push(0);
    switch(&mut out, page);
    out
}

/// A multi-byte unsigned integer (WBXML mb_u_int32).
fn mb_u_int32(mut n: u32) -> Vec<u8> {
    let mut out = vec![(n & 0x7f) as u8];
    n >>= 7;
    while n > 0 {
        out.insert(0, (n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out
}

/// The command's root holding its Status as one inline string of `len` bytes.
pub fn huge_string(ctx: &Ctx, len: u64) -> Generated {
    let (root, status) = root_and_status(ctx.command);
    let mut head = header(root.page);
    start(&mut head, root);
    start(&mut head, status);
    head.push(token::STR_I);
    let (units, rest) = (len / PIECE as u64, (len % PIECE as u64) as usize);
    let mut tail = vec![b'1'; rest];
    tail.extend_from_slice(&[0, token::END, token::END]);
    Generated {
        head,
        unit: Unit::Bytes {
            byte: b'1',
            n: PIECE,
        },
        units,
        tail,
    }
}

/// A header announcing a string table of `len` bytes (capped at the format's 4 GiB), then
/// the table as zeros.
pub fn huge_string_table(len: u64) -> Generated {
    let len = len.min(u64::from(u32::MAX));
    let mut head = HEADER.to_vec();
    head.extend_from_slice(&mb_u_int32(len as u32));
    let (units, rest) = (len / PIECE as u64, (len % PIECE as u64) as usize);
    Generated {
        head,
        unit: Unit::Bytes { byte: 0, n: PIECE },
        units,
        tail: vec![0; rest],
    }
}

/// The command's root element inside itself `depth` times.
pub fn deep_nesting(ctx: &Ctx, depth: u64) -> Generated {
    let depth = depth.min(MAX_DEPTH);
    let (root, _) = root_and_status(ctx.command);
    let mut head = header(root.page);
    start(&mut head, root);
    Generated {
        head,
        unit: Unit::Bytes {
            byte: root.token | CONTENT,
            n: 1,
        },
        units: depth,
        tail: vec![token::END; depth as usize + 1],
    }
}

/// FolderSync with `count` new mail folders at the top.
pub fn many_folders(count: u64) -> Generated {
    let count = count.min(MAX_NUMBERED);
    let mut head = header(cp::FOLDER_HIERARCHY);
    start(&mut head, FOLDER_SYNC);
    text(&mut head, FH_STATUS, b"1");
    text(&mut head, FH_SYNC_KEY, b"hostile-folders");
    start(&mut head, CHANGES);
    text(&mut head, COUNT, count.to_string().as_bytes());
    Generated {
        head,
        unit: Unit::Folder,
        units: count,
        tail: vec![token::END, token::END],
    }
}

/// The first collection a Sync request asks for: (CollectionId, SyncKey).
fn first_collection(ctx: &Ctx) -> Option<(String, String)> {
    let node = ctx.tree(SYNC).ok()??;
    let collection = node
        .children()
        .iter()
        .find(|c| c.tag == COLLECTIONS)?
        .children()
        .iter()
        .find(|c| c.tag == COLLECTION)?;
    Some((
        collection.child_text(COLLECTION_ID)?.to_string(),
        collection.child_text(SYNC_KEY)?.to_string(),
    ))
}

/// The start of a Sync response for one collection, up to its Status.
fn sync_head(collection_id: &str, sync_key: &str, status: &str) -> Vec<u8> {
    let mut head = header(cp::AIRSYNC);
    start(&mut head, SYNC);
    start(&mut head, COLLECTIONS);
    start(&mut head, COLLECTION);
    text(&mut head, SYNC_KEY, sync_key.as_bytes());
    text(&mut head, COLLECTION_ID, collection_id.as_bytes());
    text(&mut head, SYNC_STATUS, status.as_bytes());
    head
}

/// Sync with `count` Adds for the first collection asked, under a new SyncKey.
pub fn many_adds(ctx: &Ctx, count: u64) -> Answer {
    let count = count.min(MAX_NUMBERED);
    let Some((collection_id, _)) = first_collection(ctx) else {
        return Answer::Normal;
    };
    let mut head = sync_head(&collection_id, "{hostile}1", "1");
    start(&mut head, COMMANDS);
    Answer::Generated(Generated {
        head,
        unit: Unit::Item,
        units: count,
        tail: vec![token::END; 4],
    })
}

/// Sync with one Add whose ServerId is `len` bytes.
pub fn huge_server_id(ctx: &Ctx, len: u64) -> Answer {
    let Some((collection_id, _)) = first_collection(ctx) else {
        return Answer::Normal;
    };
    let mut body = sync_head(&collection_id, "{hostile}1", "1");
    start(&mut body, COMMANDS);
    start(&mut body, ADD);
    text(
        &mut body,
        SERVER_ID,
        &vec![b'h'; len.min(MAX_ID_BYTES) as usize],
    );
    start(&mut body, APPLICATION_DATA);
    switch(&mut body, cp::EMAIL);
    text(&mut body, SUBJECT, b"hostile");
    switch(&mut body, cp::AIRSYNC);
    body.extend_from_slice(&[token::END; 6]);
    Answer::Reply(Reply::Wbxml(body))
}

/// Sync answering MoreAvailable under the SyncKey it was sent, with nothing in it.
pub fn endless_more(ctx: &Ctx) -> Answer {
    let Some((collection_id, key)) = first_collection(ctx) else {
        return Answer::Normal;
    };
    let mut body = sync_head(&collection_id, &key, "1");
    body.push(MORE_AVAILABLE.token);
    body.extend_from_slice(&[token::END; 3]);
    Answer::Reply(Reply::Wbxml(body))
}

/// Sync answering Status 3 (invalid SyncKey) for the first collection asked.
pub fn sync_key_reset(ctx: &Ctx) -> Answer {
    let Some((collection_id, _)) = first_collection(ctx) else {
        return Answer::Normal;
    };
    let mut body = sync_head(&collection_id, "0", "3");
    body.extend_from_slice(&[token::END; 3]);
    Answer::Reply(Reply::Wbxml(body))
}

/// Ping answering Status 2 for the folders asked (or, for an empty Ping, the ones it last
/// asked), though nothing changed.
pub fn ping_loop(ctx: &Ctx) -> Answer {
    let asked: Vec<String> = match ctx.tree(PING) {
        Ok(Some(node)) => node
            .children()
            .iter()
            .filter(|c| c.tag == PING_FOLDERS)
            .flat_map(|f| f.children())
            .filter(|f| f.tag == PING_FOLDER)
            .filter_map(|f| f.child_text(PING_ID).map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let folders = if asked.is_empty() {
        let mut st = ctx.lab.shared.lock();
        let device = st.device(&ctx.device_id, &ctx.device_type, &ctx.user);
        match &device.last_ping {
            Some(last) => last.folders.clone(),
            None => return Answer::Normal,
        }
    } else {
        asked
    };
    let body = document(ctx.version, |w| {
        w.start(PING)?;
        w.text_element(PING_STATUS, "2")?;
        w.start(PING_FOLDERS)?;
        for id in &folders {
            w.text_element(PING_FOLDER, id)?;
        }
        w.end()?;
        w.end()
    });
    Answer::Reply(body.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eas::parse::Parser;
    use crate::wbxml::{self, Event};

    fn events(bytes: &[u8]) -> usize {
        let mut reader = wbxml::Reader::<_, 4096, 64>::new(bytes);
        let mut n = 0;
        loop {
            match reader.next() {
                Ok(Event::Eof) => return n,
                Ok(_) => n += 1,
                Err(e) => panic!("event {n}: {e}"),
            }
        }
    }

    fn bytes(g: &Generated) -> Vec<u8> {
        let mut out = Vec::new();
        g.write_to(&mut out).unwrap();
        assert_eq!(
            out.len() as u64,
            g.len(),
            "the announced length is the written one"
        );
        out
    }

    #[test]
    fn generated_bodies_are_well_formed_wbxml_of_the_announced_length() {
        let folders = bytes(&many_folders(3));
        // FolderSync, Status, SyncKey, Changes, Count, 3 × (Add + 4 texts): start, text, end.
        assert!(events(&folders) > 3 * 5);
        let table = bytes(&huge_string_table(100_000));
        assert_eq!(table.len(), 3 + 3 + 100_000);
        assert_eq!(mb_u_int32(100_000), vec![0x86, 0x8d, 0x20]);
        let mut p = Parser::new(&folders[..], crate::wbxml::ProtocolVersion::V16_1);
        assert!(p.root(FOLDER_SYNC).unwrap().is_some());
    }
}
