//! Notes (MS-ASNOTE) to and from plain text files with a small header.
//!
//! The file format (UTF-8, LF line ends written, CRLF accepted):
//!
//! ```text
//! Subject: Groceries
//! Categories: Home, Errands
//! Message-Class: IPM.StickyNote
//! Last-Modified: 2026-11-25T09:00:00.000Z
//!
//! milk
//! bread
//! ```
//!
//! - The header is a run of `Name: value` lines (names case-insensitive) ending at the first
//!   blank line; everything after it is the body, byte for byte.
//! - Known names: `Subject`, `Categories` (comma-separated; a comma or backslash inside a
//!   category is written `\,` / `\\`), `Message-Class`, `Last-Modified` (EAS date form).
//!   Unknown names are ignored.
//! - Files written here always start with the `Subject:` line. A file whose first line is
//!   not a known header line has no header: all of it is the body (a note written by hand).
//!   Line breaks in a subject are written as spaces.

use crate::eas::item::{container, text_node};
use crate::eas::parse::Node;
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

use super::timezone::DateTime;
use super::vcard::{FormatError, FromServer, ItemFromFile, MAX_FILE_LEN, MAX_VALUE_LEN, body_node};

const SUBJECT: Tag = Tag::named(cp::NOTES, "Subject");
const MESSAGE_CLASS: Tag = Tag::named(cp::NOTES, "MessageClass");
const LAST_MODIFIED: Tag = Tag::named(cp::NOTES, "LastModifiedDate");
const CATEGORIES: Tag = Tag::named(cp::NOTES, "Categories");
const CATEGORY: Tag = Tag::named(cp::NOTES, "Category");
/// The note body (notes exist from 14.0 on, so always the AirSyncBase element).
const BODY: Tag = Tag::named(cp::AIRSYNCBASE, "Body");

const HEADERS: [&str; 4] = ["subject", "categories", "message-class", "last-modified"];

fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

fn escape_category(s: &str) -> String {
    one_line(s).replace('\\', "\\\\").replace(',', "\\,")
}

fn split_categories(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ',' => out.push(core::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Converts a note's ApplicationData (and its streamed plain-text body) into the file.
pub fn note_to_text(data: &Node, ctx: &FromServer) -> String {
    // The Subject line is always written, so a body that starts like a header line is
    // never taken for one.
    let mut out = format!(
        "Subject: {}\n",
        one_line(data.child_text(SUBJECT).unwrap_or(""))
    );
    if let Some(cats) = data.child(CATEGORIES) {
        let list: Vec<String> = cats
            .children()
            .iter()
            .filter_map(Node::text)
            .filter(|c| !c.trim().is_empty())
            .map(escape_category)
            .collect();
        if !list.is_empty() {
            out.push_str(&format!("Categories: {}\n", list.join(", ")));
        }
    }
    if let Some(m) = data
        .child_text(MESSAGE_CLASS)
        .filter(|m| !m.trim().is_empty())
    {
        out.push_str(&format!("Message-Class: {}\n", one_line(m)));
    }
    if let Some(d) = data.child_text(LAST_MODIFIED).and_then(DateTime::parse) {
        out.push_str(&format!("Last-Modified: {}\n", d.0.to_eas_long()));
    }
    out.push('\n');
    out.push_str(ctx.body.unwrap_or(""));
    out
}

/// Reads a note file into ApplicationData for `version` (notes need 14.0 or later).
pub fn text_to_note(text: &str, version: ProtocolVersion) -> Result<ItemFromFile, FormatError> {
    if text.len() > MAX_FILE_LEN {
        return Err(FormatError::new(format!(
            "the note is {} bytes, more than the {MAX_FILE_LEN} accepted",
            text.len()
        )));
    }
    if !SUBJECT.in_version(version) {
        return Err(FormatError::new(format!(
            "notes cannot be synced with protocol {version} (14.0 or later is needed)"
        )));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header_line = |line: &str| {
        line.split_once(':').and_then(|(name, value)| {
            let name = name.trim().to_ascii_lowercase();
            HEADERS
                .contains(&name.as_str())
                .then(|| (name, value.trim().to_string()))
        })
    };
    let first = text.split('\n').next().unwrap_or("");
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut body = text;
    if header_line(first.trim_end_matches('\r')).is_some() {
        let mut rest = text;
        loop {
            let (line, next) = match rest.split_once('\n') {
                Some((l, n)) => (l, n),
                None => (rest, ""),
            };
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                body = next;
                break;
            }
            if let Some(h) = header_line(line) {
                if h.1.len() > MAX_VALUE_LEN {
                    return Err(FormatError::new(format!(
                        "the note's {} header is too long",
                        h.0
                    )));
                }
                headers.push(h);
            }
            if next.is_empty() {
                body = "";
                break;
            }
            rest = next;
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut data = Vec::new();
    data.push(text_node(SUBJECT, get("subject").unwrap_or("")));
    data.push(text_node(
        MESSAGE_CLASS,
        get("message-class")
            .filter(|m| !m.is_empty())
            .unwrap_or("IPM.StickyNote"),
    ));
    if let Some(cats) = get("categories") {
        let list: Vec<Node> = split_categories(cats)
            .into_iter()
            .take(256)
            .map(|c| text_node(CATEGORY, c))
            .collect();
        if !list.is_empty() {
            data.push(container(CATEGORIES, list));
        }
    }
    if let Some(d) = get("last-modified") {
        let (d, _) = DateTime::parse(d).ok_or_else(|| {
            FormatError::new(format!("the note's Last-Modified {d:?} is not a date"))
        })?;
        data.push(text_node(LAST_MODIFIED, d.to_eas_long()));
    }
    data.push(body_node(version, body, BODY));
    Ok(ItemFromFile { uid: None, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Node {
        container(
            Tag::named(cp::AIRSYNC, "ApplicationData"),
            vec![
                text_node(SUBJECT, "Groceries"),
                text_node(MESSAGE_CLASS, "IPM.StickyNote"),
                text_node(LAST_MODIFIED, "2026-11-25T09:00:00.000Z"),
                container(
                    CATEGORIES,
                    vec![text_node(CATEGORY, "Home"), text_node(CATEGORY, "a, b\\c")],
                ),
            ],
        )
    }

    #[test]
    fn note_round_trip() {
        let ctx = FromServer {
            server_id: "5:1",
            body: Some("milk\n\nbread\n"),
            ..FromServer::default()
        };
        let text = note_to_text(&sample(), &ctx);
        assert!(
            text.starts_with("Subject: Groceries\nCategories: Home, a\\, b\\\\c\n"),
            "{text}"
        );
        assert!(text.ends_with("\n\nmilk\n\nbread\n"), "{text}");
        let back = text_to_note(&text, ProtocolVersion::V14_1).unwrap();
        let mut expected = sample().children().to_vec();
        expected.push(body_node(ProtocolVersion::V14_1, "milk\n\nbread\n", BODY));
        for n in &expected {
            assert!(back.data.contains(n), "missing {n:?} in {:?}", back.data);
        }
        assert_eq!(back.data.len(), expected.len());
    }

    #[test]
    fn header_like_body_stays_body() {
        let empty = container(Tag::named(cp::AIRSYNC, "ApplicationData"), vec![]);
        let ctx = FromServer {
            body: Some("Subject: not a header\n\nreally"),
            ..FromServer::default()
        };
        let text = note_to_text(&empty, &ctx);
        assert_eq!(text, "Subject: \n\nSubject: not a header\n\nreally");
        let back = text_to_note(&text, ProtocolVersion::V14_1).unwrap();
        assert_eq!(back.data[0], text_node(SUBJECT, ""));
        let body = back.data.iter().find(|n| n.tag == BODY).unwrap();
        assert_eq!(
            body.child_text(Tag::named(cp::AIRSYNCBASE, "Data")),
            Some("Subject: not a header\n\nreally")
        );
    }

    #[test]
    fn hand_written_notes_and_errors() {
        let back = text_to_note(
            "Just a thought: none\r\nsecond line",
            ProtocolVersion::V16_1,
        )
        .unwrap();
        let body = back.data.iter().find(|n| n.tag == BODY).unwrap();
        assert_eq!(
            body.child_text(Tag::named(cp::AIRSYNCBASE, "Data")),
            Some("Just a thought: none\r\nsecond line")
        );
        let only_header = text_to_note("Subject: x", ProtocolVersion::V14_0).unwrap();
        assert_eq!(only_header.data[0].text(), Some("x"));
        assert!(
            text_to_note(
                "Subject: x\nLast-Modified: yesterday\n\n",
                ProtocolVersion::V14_0
            )
            .is_err()
        );
        assert!(text_to_note("x", ProtocolVersion::V12_1).is_err());
        assert!(text_to_note(&"x".repeat(MAX_FILE_LEN + 1), ProtocolVersion::V14_0).is_err());
    }
}
