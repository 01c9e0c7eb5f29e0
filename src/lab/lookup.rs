//! Search (GAL and Mailbox), ResolveRecipients, Settings (Oof, DeviceInformation,
//! DevicePassword, UserInformation) and Find (16.1).

use super::model::{Class, Item, class_from_name, prop_text};
use super::protocol::{Ctx, Reply, bad_body};
use super::render::{
    BodyOptions, Out, WResult, document, status_document, write_item, write_props,
};
use super::state::{Oof, Person};
use crate::eas::Node;
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

const SEARCH: Tag = Tag::named(cp::SEARCH, "Search");
const S_STORE: Tag = Tag::named(cp::SEARCH, "Store");
const S_NAME: Tag = Tag::named(cp::SEARCH, "Name");
const S_QUERY: Tag = Tag::named(cp::SEARCH, "Query");
const S_OPTIONS: Tag = Tag::named(cp::SEARCH, "Options");
const S_RANGE: Tag = Tag::named(cp::SEARCH, "Range");
const S_STATUS: Tag = Tag::named(cp::SEARCH, "Status");
const S_RESPONSE: Tag = Tag::named(cp::SEARCH, "Response");
const S_RESULT: Tag = Tag::named(cp::SEARCH, "Result");
const S_PROPERTIES: Tag = Tag::named(cp::SEARCH, "Properties");
const S_TOTAL: Tag = Tag::named(cp::SEARCH, "Total");
const S_AND: Tag = Tag::named(cp::SEARCH, "And");
const S_FREE_TEXT: Tag = Tag::named(cp::SEARCH, "FreeText");
const S_LONG_ID: Tag = Tag::named(cp::SEARCH, "LongId");
const AS_CLASS: Tag = Tag::named(cp::AIRSYNC, "Class");
const AS_COLLECTION_ID: Tag = Tag::named(cp::AIRSYNC, "CollectionId");
const AS_SERVER_ID: Tag = Tag::named(cp::AIRSYNC, "ServerId");

const GAL_DISPLAY_NAME: Tag = Tag::named(cp::GAL, "DisplayName");
const GAL_PHONE: Tag = Tag::named(cp::GAL, "Phone");
const GAL_TITLE: Tag = Tag::named(cp::GAL, "Title");
const GAL_COMPANY: Tag = Tag::named(cp::GAL, "Company");
const GAL_ALIAS: Tag = Tag::named(cp::GAL, "Alias");
const GAL_FIRST_NAME: Tag = Tag::named(cp::GAL, "FirstName");
const GAL_LAST_NAME: Tag = Tag::named(cp::GAL, "LastName");
const GAL_EMAIL: Tag = Tag::named(cp::GAL, "EmailAddress");

const RR: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "ResolveRecipients");
const RR_TO: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "To");
const RR_OPTIONS: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "Options");
const RR_MAX_AMBIGUOUS: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "MaxAmbiguousRecipients");
const RR_STATUS: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "Status");
const RR_RESPONSE: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "Response");
const RR_COUNT: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "RecipientCount");
const RR_RECIPIENT: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "Recipient");
const RR_TYPE: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "Type");
const RR_DISPLAY_NAME: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "DisplayName");
const RR_EMAIL: Tag = Tag::named(cp::RESOLVE_RECIPIENTS, "EmailAddress");

const SETTINGS: Tag = Tag::named(cp::SETTINGS, "Settings");
const SE_STATUS: Tag = Tag::named(cp::SETTINGS, "Status");
const SE_GET: Tag = Tag::named(cp::SETTINGS, "Get");
const SE_SET: Tag = Tag::named(cp::SETTINGS, "Set");
const SE_OOF: Tag = Tag::named(cp::SETTINGS, "Oof");
const SE_OOF_STATE: Tag = Tag::named(cp::SETTINGS, "OofState");
const SE_START: Tag = Tag::named(cp::SETTINGS, "StartTime");
const SE_END: Tag = Tag::named(cp::SETTINGS, "EndTime");
const SE_OOF_MESSAGE: Tag = Tag::named(cp::SETTINGS, "OofMessage");
const SE_ENABLED: Tag = Tag::named(cp::SETTINGS, "Enabled");
const SE_REPLY: Tag = Tag::named(cp::SETTINGS, "ReplyMessage");
const SE_BODY_TYPE: Tag = Tag::named(cp::SETTINGS, "BodyType");
const SE_DEVICE_PASSWORD: Tag = Tag::named(cp::SETTINGS, "DevicePassword");
const SE_DEVICE_INFORMATION: Tag = Tag::named(cp::SETTINGS, "DeviceInformation");
const SE_USER_INFORMATION: Tag = Tag::named(cp::SETTINGS, "UserInformation");
const SE_EMAIL_ADDRESSES: Tag = Tag::named(cp::SETTINGS, "EmailAddresses");
const SE_SMTP: Tag = Tag::named(cp::SETTINGS, "SMTPAddress");
const SE_PRIMARY_SMTP: Tag = Tag::named(cp::SETTINGS, "PrimarySmtpAddress");
const SE_ACCOUNTS: Tag = Tag::named(cp::SETTINGS, "Accounts");
const SE_ACCOUNT: Tag = Tag::named(cp::SETTINGS, "Account");
const SE_USER_DISPLAY_NAME: Tag = Tag::named(cp::SETTINGS, "UserDisplayName");

const FIND: Tag = Tag::named(cp::FIND, "Find");
const F_SEARCH_ID: Tag = Tag::named(cp::FIND, "SearchId");
const F_EXECUTE: Tag = Tag::named(cp::FIND, "ExecuteSearch");
const F_MAILBOX: Tag = Tag::named(cp::FIND, "MailBoxSearchCriterion");
const F_GAL: Tag = Tag::named(cp::FIND, "GalSearchCriterion");
const F_QUERY: Tag = Tag::named(cp::FIND, "Query");
const F_FREE_TEXT: Tag = Tag::named(cp::FIND, "FreeText");
const F_OPTIONS: Tag = Tag::named(cp::FIND, "Options");
const F_RANGE: Tag = Tag::named(cp::FIND, "Range");
const F_STATUS: Tag = Tag::named(cp::FIND, "Status");
const F_RESPONSE: Tag = Tag::named(cp::FIND, "Response");
const F_RESULT: Tag = Tag::named(cp::FIND, "Result");
const F_PROPERTIES: Tag = Tag::named(cp::FIND, "Properties");
const F_PREVIEW: Tag = Tag::named(cp::FIND, "Preview");
const F_HAS_ATTACHMENTS: Tag = Tag::named(cp::FIND, "HasAttachments");
const F_TOTAL: Tag = Tag::named(cp::FIND, "Total");
const F_DISPLAY_CC: Tag = Tag::named(cp::FIND, "DisplayCc");
const IO_STORE: Tag = Tag::named(cp::ITEM_OPERATIONS, "Store");
const EMAIL_SUBJECT: Tag = Tag::named(cp::EMAIL, "Subject");
const EMAIL_FROM: Tag = Tag::named(cp::EMAIL, "From");
const EMAIL_DATE: Tag = Tag::named(cp::EMAIL, "DateReceived");
const EMAIL_DISPLAY_TO: Tag = Tag::named(cp::EMAIL, "DisplayTo");
const EMAIL_READ: Tag = Tag::named(cp::EMAIL, "Read");

/// Parses `a-b` (the default when absent); `None` when malformed.
fn range(text: Option<&str>) -> Option<(usize, usize)> {
    let Some(text) = text else {
        return Some((0, 99));
    };
    let (a, b) = text.trim().split_once('-')?;
    let (a, b) = (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?);
    (a <= b).then_some((a, b))
}

/// Directory entries matching `query` (a prefix of a name or of the address).
fn gal_matches<'a>(directory: &'a [Person], query: &str) -> Vec<&'a Person> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    directory
        .iter()
        .filter(|p| {
            p.display_name
                .to_lowercase()
                .split(' ')
                .chain([p.email.to_lowercase().as_str(), p.alias.as_str()])
                .any(|w| w.starts_with(&q))
                || p.display_name.to_lowercase().starts_with(&q)
        })
        .collect()
}

fn write_gal(w: &mut Out, p: &Person) -> WResult {
    w.text_element(GAL_DISPLAY_NAME, &p.display_name)?;
    w.text_element(GAL_PHONE, &p.phone)?;
    w.text_element(GAL_TITLE, &p.title)?;
    w.text_element(GAL_COMPANY, &p.company)?;
    w.text_element(GAL_ALIAS, &p.alias)?;
    w.text_element(GAL_FIRST_NAME, &p.first_name)?;
    w.text_element(GAL_LAST_NAME, &p.last_name)?;
    w.text_element(GAL_EMAIL, &p.email)
}

/// Mail items (of `collection` when given) whose text contains `text`, newest first.
fn mailbox_matches(ctx: &Ctx, class: Class, collection: Option<&str>, text: &str) -> Vec<Item> {
    let needle = text.trim().to_lowercase();
    let st = ctx.lab.shared.lock();
    let mut found: Vec<Item> = st
        .items
        .values()
        .filter(|i| {
            i.class == class
                && collection.is_none_or(|c| c == i.folder_id)
                && i.matches_text(&needle)
        })
        .cloned()
        .collect();
    found.sort_by_key(|i| std::cmp::Reverse(i.filter_time));
    found
}

/// The page `first..=last` (a Range is inclusive) of the directory entries matching `text`,
/// and how many match in all.
fn gal_page(ctx: &Ctx, text: &str, first: usize, last: usize) -> (usize, Vec<Person>) {
    let st = ctx.lab.shared.lock();
    let (total, page) = page_of(gal_matches(&st.directory, text), first, last);
    (total, page.into_iter().cloned().collect())
}

/// The page `first..=last` of `found`, and how many were found in all.
fn page_of<T>(found: Vec<T>, first: usize, last: usize) -> (usize, Vec<T>) {
    let total = found.len();
    let page = found
        .into_iter()
        .skip(first)
        .take((last - first).saturating_add(1))
        .collect();
    (total, page)
}

/// Writes each person as a `result` element holding its `properties`.
fn write_gal_results(w: &mut Out, result: Tag, properties: Tag, people: &[Person]) -> WResult {
    for p in people {
        w.start(result)?;
        w.start(properties)?;
        write_gal(w, p)?;
        w.end()?;
        w.end()?;
    }
    Ok(())
}

pub fn search(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(SEARCH) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, SEARCH, S_STATUS, 2).into(),
        Err(e) => return bad_body(e),
    };
    let Some(store) = node.child(S_STORE) else {
        return status_document(v, SEARCH, S_STATUS, 2).into();
    };
    let name = store.child_text(S_NAME).unwrap_or("");
    let options = store.child(S_OPTIONS);
    let Some((first, last)) = range(options.and_then(|o| o.child_text(S_RANGE))) else {
        return store_status(v, 2);
    };
    let Some(query) = store.child(S_QUERY) else {
        return store_status(v, 2);
    };
    if name.eq_ignore_ascii_case("GAL") {
        let Some(text) = query.text() else {
            return store_status(v, 2);
        };
        let (total, page) = gal_page(ctx, text, first, last);
        return store_document(v, total, first, page.len(), |w| {
            write_gal_results(w, S_RESULT, S_PROPERTIES, &page)
        });
    }
    if !name.eq_ignore_ascii_case("Mailbox") {
        return store_status(v, 2);
    }
    let Some(and) = query.child(S_AND) else {
        return store_status(v, 2);
    };
    let class = and
        .child_text(AS_CLASS)
        .and_then(class_from_name)
        .unwrap_or(Class::Email);
    let Some(text) = and.child_text(S_FREE_TEXT) else {
        return store_status(v, 2);
    };
    let body_options = BodyOptions::from_options(options).unwrap_or_default();
    let found = mailbox_matches(ctx, class, and.child_text(AS_COLLECTION_ID), text);
    let (total, page) = page_of(found, first, last);
    store_document(v, total, first, page.len(), |w| {
        for item in &page {
            w.start(S_RESULT)?;
            w.text_element(AS_CLASS, item.class.as_str())?;
            w.text_element(S_LONG_ID, &item.server_id)?;
            w.text_element(AS_COLLECTION_ID, &item.folder_id)?;
            w.start(S_PROPERTIES)?;
            write_item(w, v, item, &body_options, None)?;
            w.end()?;
            w.end()?;
        }
        Ok(())
    })
}

fn store_status(v: ProtocolVersion, status: u32) -> Reply {
    document(v, |w| {
        w.start(SEARCH)?;
        w.text_element(S_STATUS, "1")?;
        w.start(S_RESPONSE)?;
        w.start(S_STORE)?;
        w.text_element(S_STATUS, &status.to_string())?;
        w.end()?;
        w.end()?;
        w.end()
    })
    .into()
}

fn store_document(
    v: ProtocolVersion,
    total: usize,
    first: usize,
    count: usize,
    results: impl FnOnce(&mut Out) -> WResult,
) -> Reply {
    document(v, |w| {
        w.start(SEARCH)?;
        w.text_element(S_STATUS, "1")?;
        w.start(S_RESPONSE)?;
        w.start(S_STORE)?;
        w.text_element(S_STATUS, "1")?;
        results(w)?;
        if count > 0 {
            w.text_element(S_RANGE, &format!("{first}-{}", first + count - 1))?;
        }
        w.text_element(S_TOTAL, &total.to_string())?;
        w.end()?;
        w.end()?;
        w.end()
    })
    .into()
}

/// A resolved recipient: (Type 1 GAL or 2 contact, display name, address).
type Recipient = (u8, String, String);

pub fn resolve_recipients(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(RR) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, RR, RR_STATUS, 5).into(),
        Err(e) => return bad_body(e),
    };
    let max_ambiguous: usize = node
        .child(RR_OPTIONS)
        .and_then(|o| o.child_text(RR_MAX_AMBIGUOUS))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(19);
    let names: Vec<String> = node
        .children()
        .iter()
        .filter(|c| c.tag == RR_TO)
        .filter_map(|c| c.text())
        .map(str::to_string)
        .collect();
    if names.is_empty() || names.len() > 100 {
        return status_document(v, RR, RR_STATUS, 5).into();
    }
    let st = ctx.lab.shared.lock();
    // (To, status, recipients as (type, name, address)).
    let mut answers: Vec<(String, u32, usize, Vec<Recipient>)> = Vec::new();
    for name in names {
        let mut found: Vec<Recipient> = gal_matches(&st.directory, &name)
            .into_iter()
            .map(|p| (1, p.display_name.clone(), p.email.clone()))
            .collect();
        let needle = name.to_lowercase();
        for c in st
            .items
            .values()
            .filter(|i| i.class == Class::Contacts && i.matches_text(&needle))
        {
            if let Some(addr) = prop_text(&c.props, "Email1Address") {
                found.push((
                    2,
                    prop_text(&c.props, "FileAs").unwrap_or(addr).to_string(),
                    addr.to_string(),
                ));
            }
        }
        let count = found.len();
        let status = match count {
            0 => 4,
            1 => 1,
            n if n <= max_ambiguous => 2,
            _ => 3,
        };
        found.truncate(max_ambiguous.max(1));
        answers.push((name, status, count, found));
    }
    drop(st);
    document(v, |w| {
        w.start(RR)?;
        w.text_element(RR_STATUS, "1")?;
        for (to, status, count, recipients) in &answers {
            w.start(RR_RESPONSE)?;
            w.text_element(RR_TO, to)?;
            w.text_element(RR_STATUS, &status.to_string())?;
            w.text_element(RR_COUNT, &count.to_string())?;
            for (ty, name, addr) in recipients {
                w.start(RR_RECIPIENT)?;
                w.text_element(RR_TYPE, &ty.to_string())?;
                w.text_element(RR_DISPLAY_NAME, name)?;
                w.text_element(RR_EMAIL, addr)?;
                w.end()?;
            }
            w.end()?;
        }
        w.end()
    })
    .into()
}

fn write_oof(w: &mut Out, oof: &Oof) -> WResult {
    w.start(SE_GET)?;
    w.text_element(SE_OOF_STATE, &oof.state.to_string())?;
    if let (Some(s), Some(e)) = (&oof.start, &oof.end) {
        w.text_element(SE_START, s)?;
        w.text_element(SE_END, e)?;
    }
    for (audience, enabled, reply, body_type) in &oof.messages {
        let Some(tag) = Tag::by_name("Settings", audience) else {
            continue;
        };
        w.start(SE_OOF_MESSAGE)?;
        w.empty(tag)?;
        w.text_element(SE_ENABLED, if *enabled { "1" } else { "0" })?;
        w.text_element(SE_REPLY, reply)?;
        w.text_element(SE_BODY_TYPE, body_type)?;
        w.end()?;
    }
    w.end()
}

fn set_oof(oof: &mut Oof, set: &Node) -> Result<(), ()> {
    let state: u8 = set
        .child_text(SE_OOF_STATE)
        .and_then(|s| s.trim().parse().ok())
        .ok_or(())?;
    if state > 2 {
        return Err(());
    }
    oof.state = state;
    oof.start = set.child_text(SE_START).map(str::to_string);
    oof.end = set.child_text(SE_END).map(str::to_string);
    for m in set.children().iter().filter(|c| c.tag == SE_OOF_MESSAGE) {
        let Some(audience) = m
            .children()
            .iter()
            .find_map(|c| c.tag.name().filter(|n| n.starts_with("AppliesTo")))
        else {
            return Err(());
        };
        let entry = (
            audience.to_string(),
            m.child_text(SE_ENABLED).is_some_and(|e| e.trim() == "1"),
            m.child_text(SE_REPLY).unwrap_or("").to_string(),
            m.child_text(SE_BODY_TYPE).unwrap_or("Text").to_string(),
        );
        oof.messages.retain(|(a, ..)| a != audience);
        oof.messages.push(entry);
    }
    Ok(())
}

pub fn settings(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(SETTINGS) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, SETTINGS, SE_STATUS, 2).into(),
        Err(e) => return bad_body(e),
    };
    enum Part {
        OofGet(Oof),
        Status(Tag, u32),
        User(String),
    }
    let mut parts = Vec::new();
    let mut st = ctx.lab.shared.lock();
    for child in node.children() {
        let t = child.tag;
        if t == SE_OOF {
            if child.child(SE_GET).is_some() {
                parts.push(Part::OofGet(st.oof.clone()));
            } else if let Some(set) = child.child(SE_SET) {
                let status = if set_oof(&mut st.oof, set).is_ok() {
                    1
                } else {
                    2
                };
                parts.push(Part::Status(SE_OOF, status));
            } else {
                parts.push(Part::Status(SE_OOF, 2));
            }
        } else if t == SE_DEVICE_INFORMATION {
            let info = super::provision::device_information(child);
            let d = st.device(&ctx.device_id, &ctx.device_type, &ctx.user);
            let status = if info.is_empty() { 2 } else { 1 };
            if status == 1 {
                d.device_information = info;
            }
            parts.push(Part::Status(SE_DEVICE_INFORMATION, status));
        } else if t == SE_DEVICE_PASSWORD {
            parts.push(Part::Status(SE_DEVICE_PASSWORD, 1));
        } else if t == SE_USER_INFORMATION {
            parts.push(Part::User(st.user_email.clone()));
        } else {
            drop(st);
            return status_document(v, SETTINGS, SE_STATUS, 2).into();
        }
    }
    drop(st);
    document(v, |w| {
        w.start(SETTINGS)?;
        w.text_element(SE_STATUS, "1")?;
        for p in &parts {
            match p {
                Part::OofGet(oof) => {
                    w.start(SE_OOF)?;
                    w.text_element(SE_STATUS, "1")?;
                    write_oof(w, oof)?;
                    w.end()?;
                }
                Part::Status(tag, code) => {
                    w.start(*tag)?;
                    w.text_element(SE_STATUS, &code.to_string())?;
                    w.end()?;
                }
                Part::User(email) => {
                    w.start(SE_USER_INFORMATION)?;
                    w.text_element(SE_STATUS, "1")?;
                    w.start(SE_GET)?;
                    if v >= ProtocolVersion::V14_1 {
                        w.start(SE_ACCOUNTS)?;
                        w.start(SE_ACCOUNT)?;
                        w.text_element(SE_USER_DISPLAY_NAME, "Lab User")?;
                        w.start(SE_EMAIL_ADDRESSES)?;
                        w.text_element(SE_SMTP, email)?;
                        w.text_element(SE_PRIMARY_SMTP, email)?;
                        w.end()?;
                        w.end()?;
                        w.end()?;
                    } else {
                        w.start(SE_EMAIL_ADDRESSES)?;
                        w.text_element(SE_SMTP, email)?;
                        w.end()?;
                    }
                    w.end()?;
                    w.end()?;
                }
            }
        }
        w.end()
    })
    .into()
}

pub fn find(ctx: &Ctx) -> Reply {
    let v = ctx.version;
    let node = match ctx.tree(FIND) {
        Ok(Some(n)) => n,
        Ok(None) => return status_document(v, FIND, F_STATUS, 2).into(),
        Err(e) => return bad_body(e),
    };
    let invalid = || status_document(v, FIND, F_STATUS, 2).into();
    if node.child_text(F_SEARCH_ID).is_none_or(str::is_empty) {
        return invalid();
    }
    let Some(exec) = node.child(F_EXECUTE) else {
        return invalid();
    };
    let (criterion, gal) = match (exec.child(F_MAILBOX), exec.child(F_GAL)) {
        (Some(m), None) => (m, false),
        (None, Some(g)) => (g, true),
        _ => return invalid(),
    };
    let Some(query) = criterion.child(F_QUERY) else {
        return invalid();
    };
    let Some((first, last)) = range(
        criterion
            .child(F_OPTIONS)
            .and_then(|o| o.child_text(F_RANGE)),
    ) else {
        return invalid();
    };
    let text = if gal {
        query.text().map(str::to_string)
    } else {
        query.child_text(F_FREE_TEXT).map(str::to_string)
    };
    let Some(text) = text else { return invalid() };
    let respond =
        |store: &str, total: usize, count: usize, results: &dyn Fn(&mut Out) -> WResult| -> Reply {
            document(v, |w| {
                w.start(FIND)?;
                w.text_element(F_STATUS, "1")?;
                w.start(F_RESPONSE)?;
                w.text_element(IO_STORE, store)?;
                w.text_element(F_STATUS, "1")?;
                results(w)?;
                if count > 0 {
                    w.text_element(F_RANGE, &format!("{first}-{}", first + count - 1))?;
                }
                w.text_element(F_TOTAL, &total.to_string())?;
                w.end()?;
                w.end()
            })
            .into()
        };
    if gal {
        let (total, page) = gal_page(ctx, &text, first, last);
        return respond("GAL", total, page.len(), &|w| {
            write_gal_results(w, F_RESULT, F_PROPERTIES, &page)
        });
    }
    let class = query
        .child_text(AS_CLASS)
        .and_then(class_from_name)
        .unwrap_or(Class::Email);
    let found = mailbox_matches(ctx, class, query.child_text(AS_COLLECTION_ID), &text);
    let (total, page) = page_of(found, first, last);
    respond("Mailbox", total, page.len(), &|w| {
        for item in &page {
            w.start(F_RESULT)?;
            w.text_element(AS_CLASS, item.class.as_str())?;
            w.text_element(AS_SERVER_ID, &item.server_id)?;
            w.text_element(AS_COLLECTION_ID, &item.folder_id)?;
            w.start(F_PROPERTIES)?;
            let p = |n: &str| prop_text(&item.props, n).unwrap_or("").to_string();
            if item.class == Class::Email {
                w.text_element(EMAIL_SUBJECT, &p("Subject"))?;
                w.text_element(EMAIL_DATE, &p("DateReceived"))?;
                w.text_element(EMAIL_DISPLAY_TO, &p("DisplayTo"))?;
                w.text_element(F_DISPLAY_CC, &p("Cc"))?;
                w.text_element(EMAIL_READ, &p("Read"))?;
                w.text_element(EMAIL_FROM, &p("From"))?;
            } else {
                write_props(w, v, item.class.as_str(), &item.props)?;
            }
            w.text_element(
                F_HAS_ATTACHMENTS,
                if item.attachments.is_empty() {
                    "0"
                } else {
                    "1"
                },
            )?;
            let preview: String = item.body_text.chars().take(255).collect();
            w.text_element(F_PREVIEW, &preview)?;
            w.end()?;
            w.end()?;
        }
        Ok(())
    })
}
