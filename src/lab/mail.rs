//! ItemOperations (Fetch of items and attachments, inline or multipart; EmptyFolderContents),
//! SendMail/SmartReply/SmartForward (ComposeMail WBXML on 14.0+, message/rfc822 on 12.1),
//! MoveItems and MeetingResponse.

use base64::Engine as _;

use super::model::{Class, Item, Prop, iso_time, prop_text};
use super::protocol::{Ctx, Reply, bad_body, status_reply};
use super::render::{BodyOptions, Parts, document, status_document, write_item};
use super::seed::folder;
use super::state::NewItem;
use crate::eas::{Command, Node};
use crate::lab::http::Response;
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

const IO: Tag = Tag::named(cp::ITEM_OPERATIONS, "ItemOperations");
const IO_FETCH: Tag = Tag::named(cp::ITEM_OPERATIONS, "Fetch");
const IO_STORE: Tag = Tag::named(cp::ITEM_OPERATIONS, "Store");
const IO_OPTIONS: Tag = Tag::named(cp::ITEM_OPERATIONS, "Options");
const IO_RANGE: Tag = Tag::named(cp::ITEM_OPERATIONS, "Range");
const IO_TOTAL: Tag = Tag::named(cp::ITEM_OPERATIONS, "Total");
const IO_PROPERTIES: Tag = Tag::named(cp::ITEM_OPERATIONS, "Properties");
const IO_DATA: Tag = Tag::named(cp::ITEM_OPERATIONS, "Data");
const IO_STATUS: Tag = Tag::named(cp::ITEM_OPERATIONS, "Status");
const IO_RESPONSE: Tag = Tag::named(cp::ITEM_OPERATIONS, "Response");
const IO_PART: Tag = Tag::named(cp::ITEM_OPERATIONS, "Part");
const IO_EMPTY: Tag = Tag::named(cp::ITEM_OPERATIONS, "EmptyFolderContents");
const IO_DELETE_SUBFOLDERS: Tag = Tag::named(cp::ITEM_OPERATIONS, "DeleteSubFolders");
const AS_COLLECTION_ID: Tag = Tag::named(cp::AIRSYNC, "CollectionId");
const AS_SERVER_ID: Tag = Tag::named(cp::AIRSYNC, "ServerId");
const AS_CLASS: Tag = Tag::named(cp::AIRSYNC, "Class");
const BASE_FILE_REFERENCE: Tag = Tag::named(cp::AIRSYNCBASE, "FileReference");
const BASE_CONTENT_TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "ContentType");
const SEARCH_LONG_ID: Tag = Tag::named(cp::SEARCH, "LongId");

const CM_CLIENT_ID: Tag = Tag::named(cp::COMPOSE_MAIL, "ClientId");
const CM_SAVE_IN_SENT: Tag = Tag::named(cp::COMPOSE_MAIL, "SaveInSentItems");
const CM_REPLACE_MIME: Tag = Tag::named(cp::COMPOSE_MAIL, "ReplaceMime");
const CM_SOURCE: Tag = Tag::named(cp::COMPOSE_MAIL, "Source");
const CM_FOLDER_ID: Tag = Tag::named(cp::COMPOSE_MAIL, "FolderId");
const CM_ITEM_ID: Tag = Tag::named(cp::COMPOSE_MAIL, "ItemId");
const CM_LONG_ID: Tag = Tag::named(cp::COMPOSE_MAIL, "LongId");
const CM_MIME: Tag = Tag::named(cp::COMPOSE_MAIL, "Mime");

const MOVE_ITEMS: Tag = Tag::named(cp::MOVE, "MoveItems");
const MOVE: Tag = Tag::named(cp::MOVE, "Move");
const SRC_MSG_ID: Tag = Tag::named(cp::MOVE, "SrcMsgId");
const SRC_FLD_ID: Tag = Tag::named(cp::MOVE, "SrcFldId");
const DST_FLD_ID: Tag = Tag::named(cp::MOVE, "DstFldId");
const MOVE_RESPONSE: Tag = Tag::named(cp::MOVE, "Response");
const MOVE_STATUS: Tag = Tag::named(cp::MOVE, "Status");
const DST_MSG_ID: Tag = Tag::named(cp::MOVE, "DstMsgId");

const MR: Tag = Tag::named(cp::MEETING_RESPONSE, "MeetingResponse");
const MR_REQUEST: Tag = Tag::named(cp::MEETING_RESPONSE, "Request");
const MR_USER_RESPONSE: Tag = Tag::named(cp::MEETING_RESPONSE, "UserResponse");
const MR_COLLECTION_ID: Tag = Tag::named(cp::MEETING_RESPONSE, "CollectionId");
const MR_REQUEST_ID: Tag = Tag::named(cp::MEETING_RESPONSE, "RequestId");
const MR_RESULT: Tag = Tag::named(cp::MEETING_RESPONSE, "Result");
const MR_STATUS: Tag = Tag::named(cp::MEETING_RESPONSE, "Status");
const MR_CALENDAR_ID: Tag = Tag::named(cp::MEETING_RESPONSE, "CalendarId");

/// The result of one ItemOperations Fetch, ready to write.
enum Fetched {
    Failed {
        status: u32,
        echo: Vec<(Tag, String)>,
    },
    Item {
        item: Item,
        long_id: Option<String>,
    },
    Attachment {
        reference: String,
        content_type: String,
        data: Vec<u8>,
        range: Option<(usize, usize)>,
        total: usize,
    },
}

/// Parses `a-b` into an inclusive byte range within `total` bytes.
fn parse_range(text: &str, total: usize) -> Option<(usize, usize)> {
    let (a, b) = text.trim().split_once('-')?;
    let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    if a > b || a >= total {
        return None;
    }
    Some((a, b.min(total - 1)))
}

fn fetch_one(ctx: &Ctx, fetch: &Node) -> (Fetched, BodyOptions) {
    let options = fetch.child(IO_OPTIONS);
    let body_options = BodyOptions::from_options(options).unwrap_or_default();
    let store = fetch.child_text(IO_STORE).unwrap_or("");
    if !store.eq_ignore_ascii_case("Mailbox") {
        return (
            Fetched::Failed {
                status: 9,
                echo: Vec::new(),
            },
            body_options,
        );
    }
    let st = ctx.lab.shared.lock();
    if let Some(reference) = fetch.child_text(BASE_FILE_REFERENCE) {
        let echo = vec![(BASE_FILE_REFERENCE, reference.to_string())];
        let found = reference.rsplit_once(':').and_then(|(sid, idx)| {
            let item = st.items.get(sid)?;
            item.attachments.get(idx.parse::<usize>().ok()?).cloned()
        });
        let Some(att) = found else {
            // 15: the attachment's FileReference is not valid.
            return (Fetched::Failed { status: 15, echo }, body_options);
        };
        let total = att.data.len();
        let range = match options.and_then(|o| o.child_text(IO_RANGE)) {
            Some(r) => match parse_range(r, total) {
                Some(r) => Some(r),
                None => return (Fetched::Failed { status: 8, echo }, body_options),
            },
            None => None,
        };
        let data = match range {
            Some((a, b)) => att.data[a..=b].to_vec(),
            None => att.data.clone(),
        };
        return (
            Fetched::Attachment {
                reference: reference.to_string(),
                content_type: att.content_type,
                data,
                range,
                total,
            },
            body_options,
        );
    }
    let long_id = fetch.child_text(SEARCH_LONG_ID);
    let server_id = fetch.child_text(AS_SERVER_ID).or(long_id);
    let collection = fetch.child_text(AS_COLLECTION_ID);
    let mut echo = Vec::new();
    if let Some(c) = collection {
        echo.push((AS_COLLECTION_ID, c.to_string()));
    }
    let Some(server_id) = server_id else {
        return (Fetched::Failed { status: 2, echo }, body_options);
    };
    if long_id.is_none() {
        echo.push((AS_SERVER_ID, server_id.to_string()));
    }
    match st.items.get(server_id) {
        Some(item) if collection.is_none_or(|c| c == item.folder_id) => (
            Fetched::Item {
                item: item.clone(),
                long_id: long_id.map(str::to_string),
            },
            body_options,
        ),
        // 6: the object was not found.
        _ => (Fetched::Failed { status: 6, echo }, body_options),
    }
}

pub fn item_operations(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(IO) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, IO, IO_STATUS, 2).into(),
        Err(e) => return bad_body(e),
    };
    if node.children().is_empty() {
        return status_document(v, IO, IO_STATUS, 2).into();
    }
    let mut parts: Parts = Vec::new();
    let multipart = ctx.accept_multipart;
    let mut fetched = Vec::new();
    let mut emptied: Vec<(u32, String)> = Vec::new();
    for op in node.children() {
        if op.tag == IO_FETCH {
            fetched.push(fetch_one(ctx, op));
        } else if op.tag == IO_EMPTY {
            let id = op.child_text(AS_COLLECTION_ID).unwrap_or("").to_string();
            let with_subfolders = op
                .child(IO_OPTIONS)
                .is_some_and(|o| o.child(IO_DELETE_SUBFOLDERS).is_some());
            let status = ctx.lab.change(|st| {
                if st.folder(&id).and_then(|f| f.class()).is_none() {
                    return 6;
                }
                st.items.retain(|_, i| i.folder_id != id);
                if with_subfolders {
                    let children: Vec<String> = st
                        .folders
                        .iter()
                        .filter(|f| f.parent_id == id)
                        .map(|f| f.server_id.clone())
                        .collect();
                    for c in children {
                        let _ = st.delete_folder(&c);
                    }
                }
                st.touch();
                1
            });
            emptied.push((status, id));
        } else {
            // Move (conversations) and unknown operations are not supported by the lab.
            return status_document(v, IO, IO_STATUS, 2).into();
        }
    }
    let wbxml = document(v, |w| {
        w.start(IO)?;
        w.text_element(IO_STATUS, "1")?;
        w.start(IO_RESPONSE)?;
        for (status, id) in &emptied {
            w.start(IO_EMPTY)?;
            w.text_element(IO_STATUS, &status.to_string())?;
            w.text_element(AS_COLLECTION_ID, id)?;
            w.end()?;
        }
        for (f, options) in &fetched {
            w.start(IO_FETCH)?;
            match f {
                Fetched::Failed { status, echo } => {
                    w.text_element(IO_STATUS, &status.to_string())?;
                    for (t, val) in echo {
                        w.text_element(*t, val)?;
                    }
                }
                Fetched::Item { item, long_id } => {
                    w.text_element(IO_STATUS, "1")?;
                    match long_id {
                        Some(l) => w.text_element(SEARCH_LONG_ID, l)?,
                        None => {
                            w.text_element(AS_COLLECTION_ID, &item.folder_id)?;
                            w.text_element(AS_SERVER_ID, &item.server_id)?;
                        }
                    }
                    w.text_element(AS_CLASS, item.class.as_str())?;
                    w.start(IO_PROPERTIES)?;
                    write_item(
                        w,
                        v,
                        item,
                        options,
                        if multipart { Some(&mut parts) } else { None },
                    )?;
                    w.end()?;
                }
                Fetched::Attachment {
                    reference,
                    content_type,
                    data,
                    range,
                    total,
                } => {
                    w.text_element(IO_STATUS, "1")?;
                    w.text_element(BASE_FILE_REFERENCE, reference)?;
                    w.start(IO_PROPERTIES)?;
                    w.text_element(BASE_CONTENT_TYPE, content_type)?;
                    if let Some((a, b)) = range {
                        w.text_element(IO_RANGE, &format!("{a}-{b}"))?;
                        w.text_element(IO_TOTAL, &total.to_string())?;
                    }
                    if multipart {
                        parts.push(data.clone());
                        w.text_element(IO_PART, &parts.len().to_string())?;
                    } else {
                        w.text_element(
                            IO_DATA,
                            &base64::engine::general_purpose::STANDARD.encode(data),
                        )?;
                    }
                    w.end()?;
                }
            }
            w.end()?;
        }
        w.end()?;
        w.end()
    });
    let wbxml = match wbxml {
        Ok(b) => b,
        Err(e) => return Reply::Http(Response::text(500, e)),
    };
    if !multipart {
        return Reply::Wbxml(wbxml);
    }
    Reply::Http(Response::new(200).with_body(
        "application/vnd.ms-sync.multipart",
        multipart_body(&wbxml, &parts),
    ))
}

/// The MultiPartResponse of MS-ASCMD 2.2.1.10.1.1: a count, (offset, length) pairs from the
/// start of the body, then the parts; part 0 is the WBXML.
pub fn multipart_body(wbxml: &[u8], parts: &[Vec<u8>]) -> Vec<u8> {
    let count = parts.len() + 1;
    let header_len = 4 + 8 * count;
    let mut out =
        Vec::with_capacity(header_len + wbxml.len() + parts.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    let mut offset = header_len;
    for p in std::iter::once(wbxml).chain(parts.iter().map(Vec::as_slice)) {
        out.extend_from_slice(&(offset as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        offset += p.len();
    }
    out.extend_from_slice(wbxml);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The headers and body of a MIME message (unfolded; names lowercased).
fn split_mime(mime: &[u8]) -> Option<(Vec<(String, String)>, String)> {
    let text = String::from_utf8_lossy(mime);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    if headers.is_empty() {
        return None;
    }
    Some((headers, body.to_string()))
}

/// The addresses of an address header (`"Name" <a@b>, c@d`).
fn addresses(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|part| {
            let part = part.trim();
            let addr = match (part.find('<'), part.rfind('>')) {
                (Some(a), Some(b)) if a < b => &part[a + 1..b],
                _ => part,
            };
            addr.contains('@').then(|| addr.trim().to_lowercase())
        })
        .collect()
}

pub fn compose(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let (root, status_tag) = super::protocol::root_and_status(ctx.command);
    let fail = |code: u32| -> Reply {
        if v >= ProtocolVersion::V14_0 {
            status_document(v, root, status_tag, code).into()
        } else {
            Reply::Http(Response::text(
                500,
                format!("sending failed with status {code}"),
            ))
        }
    };
    let (mime, save_in_sent, client_id, source, replace_mime) = if v >= ProtocolVersion::V14_0 {
        let node = match ctx.tree(root) {
            Ok(Some(n)) => n,
            Ok(None) => return fail(103),
            Err(e) => return bad_body(e),
        };
        let Some(mime) = node.child(CM_MIME).and_then(|m| match &m.value {
            crate::eas::Value::Opaque(b) => Some(b.clone()),
            crate::eas::Value::Text(t) => Some(t.clone().into_bytes()),
            _ => None,
        }) else {
            return fail(103);
        };
        let Some(client_id) = node.child_text(CM_CLIENT_ID).map(str::to_string) else {
            return fail(103);
        };
        let source = node.child(CM_SOURCE).map(|s| {
            (
                s.child_text(CM_FOLDER_ID).map(str::to_string),
                s.child_text(CM_ITEM_ID)
                    .or(s.child_text(CM_LONG_ID))
                    .map(str::to_string),
            )
        });
        (
            mime,
            node.child(CM_SAVE_IN_SENT).is_some(),
            Some(client_id),
            source,
            node.child(CM_REPLACE_MIME).is_some(),
        )
    } else {
        if !ctx
            .content_type
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("message/rfc822"))
        {
            return Reply::Http(Response::text(
                400,
                "12.1 SendMail/SmartReply/SmartForward need a message/rfc822 body",
            ));
        }
        let source = (ctx.command != Command::SendMail).then(|| {
            (
                ctx.param("CollectionId").map(str::to_string),
                ctx.param("ItemId").map(str::to_string),
            )
        });
        (ctx.body.to_vec(), ctx.save_in_sent, None, source, false)
    };
    let Some((headers, body)) = split_mime(&mime) else {
        return fail(107);
    };
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let recipients: Vec<String> = ["to", "cc", "bcc"]
        .iter()
        .filter_map(|h| header(h))
        .flat_map(|h| addresses(&h))
        .collect();
    if recipients.is_empty() {
        return fail(119);
    }
    let now = ctx.lab.now();
    let mut st = ctx.lab.shared.lock();
    if let Some(id) = &client_id {
        if !st.sent_client_ids.insert(format!("{}/{id}", ctx.device_id)) {
            return fail(118);
        }
    }
    let mut body_text = body;
    if let Some((folder_id, item_id)) = &source {
        let original = item_id
            .as_deref()
            .and_then(|id| st.items.get(id))
            .filter(|i| folder_id.as_deref().is_none_or(|f| f == i.folder_id));
        let Some(original) = original else {
            drop(st);
            return fail(150);
        };
        if !replace_mime {
            body_text.push_str("\r\n\r\n----- Original message -----\r\n");
            body_text.push_str(&original.body_text);
        }
    }
    let user = st.user_email.clone();
    let props = |read: &str| {
        vec![
            Prop::text("To", header("to").unwrap_or_default()),
            Prop::text("Cc", header("cc").unwrap_or_default()),
            Prop::text(
                "From",
                header("from").unwrap_or_else(|| format!("<{user}>")),
            ),
            Prop::text("Subject", header("subject").unwrap_or_default()),
            Prop::text("DateReceived", iso_time(now)),
            Prop::text("Importance", "1"),
            Prop::text("Read", read),
            Prop::text("MessageClass", "IPM.Note"),
        ]
    };
    let mut created = Vec::new();
    if save_in_sent {
        created.push((folder::SENT, props("1")));
    }
    if recipients.iter().any(|r| r.eq_ignore_ascii_case(&user)) {
        created.push((folder::INBOX, props("0")));
    }
    for (folder_id, props) in created {
        let new = NewItem {
            folder_id: folder_id.to_string(),
            props,
            body: body_text.clone(),
            ..NewItem::default()
        };
        if let Ok(id) = st.add_item(new, now) {
            if let Some(i) = st.items.get_mut(&id) {
                i.mime = Some(mime.clone());
            }
        }
    }
    drop(st);
    ctx.lab.shared.changed.notify_all();
    Reply::Empty
}

pub fn move_items(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(MOVE_ITEMS) {
        Ok(Some(n)) => n,
        Ok(None) => return status_reply(ctx, 103),
        Err(e) => return bad_body(e),
    };
    let mut results: Vec<(String, u32, Option<String>)> = Vec::new();
    let mut st = ctx.lab.shared.lock();
    for m in node.children() {
        if m.tag != MOVE {
            drop(st);
            return status_reply(ctx, 103);
        }
        let (Some(src), Some(src_folder), Some(dst_folder)) = (
            m.child_text(SRC_MSG_ID),
            m.child_text(SRC_FLD_ID),
            m.child_text(DST_FLD_ID),
        ) else {
            drop(st);
            return status_reply(ctx, 103);
        };
        let src_class = st.folder(src_folder).and_then(|f| f.class());
        let dst_class = st.folder(dst_folder).and_then(|f| f.class());
        let item_ok = st.items.get(src).is_some_and(|i| i.folder_id == src_folder);
        let status = if src_class.is_none() || !item_ok {
            1
        } else if dst_class.is_none() || dst_class != src_class {
            2
        } else if src_folder == dst_folder {
            4
        } else {
            3
        };
        let new_id = if status == 3 {
            st.move_item(src, dst_folder).ok()
        } else {
            None
        };
        results.push((src.to_string(), status, new_id));
    }
    st.touch();
    drop(st);
    ctx.lab.shared.changed.notify_all();
    document(v, |w| {
        w.start(MOVE_ITEMS)?;
        for (src, status, dst) in &results {
            w.start(MOVE_RESPONSE)?;
            w.text_element(SRC_MSG_ID, src)?;
            w.text_element(MOVE_STATUS, &status.to_string())?;
            if let Some(d) = dst {
                w.text_element(DST_MSG_ID, d)?;
            }
            w.end()?;
        }
        w.end()
    })
    .into()
}

pub fn meeting_response(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(MR) {
        Ok(Some(n)) => n,
        Ok(None) => return status_reply(ctx, 103),
        Err(e) => return bad_body(e),
    };
    let now = ctx.lab.now();
    // (RequestId to echo, status, CalendarId); RequestId is echoed only when the request
    // named the item by it rather than by a Search LongId (MS-ASCMD 2.2.3.151).
    let mut results: Vec<(Option<String>, u32, Option<String>)> = Vec::new();
    let mut st = ctx.lab.shared.lock();
    for r in node.children().iter().filter(|r| r.tag == MR_REQUEST) {
        let request_id = r.child_text(MR_REQUEST_ID).map(str::to_string);
        // The lab's Search LongIds are ServerIds.
        let long_id = r.child_text(SEARCH_LONG_ID);
        let item_id = request_id.as_deref().or(long_id).unwrap_or("");
        let response: Option<u8> = r
            .child_text(MR_USER_RESPONSE)
            .and_then(|t| t.trim().parse().ok());
        let collection = r.child_text(MR_COLLECTION_ID);
        let item = st
            .items
            .get(item_id)
            .filter(|i| collection.is_none_or(|c| c == i.folder_id))
            .cloned();
        let (Some(item), Some(response @ 1..=3)) = (item, response) else {
            results.push((request_id, 2, None));
            continue;
        };
        // ResponseType: 2 tentative, 3 accepted, 4 declined (MS-ASCAL).
        let response_type = match response {
            1 => "3",
            2 => "2",
            _ => "4",
        };
        let calendar_id = match item.class {
            Class::Calendar => {
                if response == 3 {
                    let _ = st.delete_item(&item.server_id);
                    None
                } else {
                    let _ = st.change_item(
                        &item.server_id,
                        vec![Prop::text("ResponseType", response_type)],
                        None,
                    );
                    Some(item.server_id.clone())
                }
            }
            Class::Email
                if prop_text(&item.props, "MessageClass")
                    .is_some_and(|m| m.starts_with("IPM.Schedule.Meeting.Request")) =>
            {
                let _ = st.delete_item(&item.server_id);
                if response == 3 {
                    None
                } else {
                    let mut props: Vec<Prop> = item
                        .props
                        .iter()
                        .find(|p| p.name == "MeetingRequest")
                        .and_then(|p| match &p.value {
                            super::model::PropValue::List(c) => Some(c.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    props.retain(|p| {
                        !matches!(
                            p.name.as_str(),
                            "InstanceType" | "Organizer" | "GlobalObjId" | "Recurrences"
                        )
                    });
                    super::model::set_prop(
                        &mut props,
                        Prop::text("Subject", prop_text(&item.props, "Subject").unwrap_or("")),
                    );
                    super::model::set_prop(&mut props, Prop::text("ResponseType", response_type));
                    let new = NewItem {
                        folder_id: folder::CALENDAR.into(),
                        props,
                        body: item.body_text.clone(),
                        ..NewItem::default()
                    };
                    st.add_item(new, now).ok()
                }
            }
            _ => {
                results.push((request_id, 2, None));
                continue;
            }
        };
        results.push((request_id, 1, calendar_id));
    }
    drop(st);
    ctx.lab.shared.changed.notify_all();
    if results.is_empty() {
        return status_reply(ctx, 103);
    }
    document(v, |w| {
        w.start(MR)?;
        for (id, status, calendar) in &results {
            w.start(MR_RESULT)?;
            if let Some(id) = id {
                w.text_element(MR_REQUEST_ID, id)?;
            }
            w.text_element(MR_STATUS, &status.to_string())?;
            if let Some(c) = calendar {
                w.text_element(MR_CALENDAR_ID, c)?;
            }
            w.end()?;
        }
        w.end()
    })
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_layout_follows_the_spec() {
        let body = multipart_body(b"WBX", &[b"hello".to_vec()]);
        assert_eq!(&body[0..4], &2u32.to_le_bytes());
        assert_eq!(&body[4..8], &20u32.to_le_bytes());
        assert_eq!(&body[8..12], &3u32.to_le_bytes());
        assert_eq!(&body[12..16], &23u32.to_le_bytes());
        assert_eq!(&body[16..20], &5u32.to_le_bytes());
        assert_eq!(&body[20..], b"WBXhello");
    }

    #[test]
    fn mime_headers_and_addresses() {
        let (h, body) =
            split_mime(b"To: \"A\" <A@x.org>,\r\n b@y.org\r\nSubject: Hi\r\n\r\nBody").unwrap();
        assert_eq!(addresses(&h[0].1), vec!["a@x.org", "b@y.org"]);
        assert_eq!(body, "Body");
        assert!(split_mime(b"no separator").is_none());
        assert_eq!(parse_range("0-9", 5), Some((0, 4)));
        assert_eq!(parse_range("7-9", 5), None);
    }
}
