//! The lab mailbox's data: folders, items with their properties, bodies and attachments, and
//! the conversions to and from JSON (admin API) and generic WBXML trees (client requests).
//!
//! An item's properties are a small ordered tree of [`Prop`]s named after the elements of
//! the item's class namespace (`Subject`, `Attendees` ...); a name may carry another namespace
//! as a prefix (`Email2:ConversationId`). Bodies and attachments are kept apart because
//! their rendering depends on the client's preferences (MS-ASAIRS).

use serde_json::{Map, Value as Json};

use crate::eas::folder::FolderType;
use crate::eas::{Node, Value};
use crate::wbxml::Tag;

pub use crate::eas::item::Class;

/// The class named `name`, in any letter case (the lab is lenient with clients).
pub fn class_from_name(name: &str) -> Option<Class> {
    Class::ALL
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(name))
}

/// The class of the items the lab keeps in a folder of this FolderHierarchy `Type`; `None`
/// for types that hold no syncable items. Unlike the client's [`FolderType::class`], the lab
/// files generic user folders (1) as mail and keeps no recipient information cache (19).
pub fn class_of_folder_type(folder_type: u8) -> Option<Class> {
    match FolderType::from_code(folder_type.into()) {
        FolderType::UserGeneric => Some(Class::Email),
        FolderType::RecipientInfoCache => None,
        other => other.class(),
    }
}

/// A folder of the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub server_id: String,
    /// "0" for a top-level folder.
    pub parent_id: String,
    pub name: String,
    /// The FolderHierarchy `Type` (2 Inbox ... 12 user mail, 13 user calendar ...).
    pub folder_type: u8,
}

impl Folder {
    pub fn class(&self) -> Option<Class> {
        class_of_folder_type(self.folder_type)
    }

    /// Default folders (types 2 to 11, 19) cannot be renamed, moved or deleted.
    pub fn is_special(&self) -> bool {
        !FolderType::from_code(self.folder_type.into()).is_user_created()
    }
}

/// A property value: text, or nested properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    Text(String),
    List(Vec<Prop>),
}

/// One named property (an element of the class namespace, or `Namespace:Name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    pub name: String,
    pub value: PropValue,
}

impl Prop {
    pub fn text(name: &str, value: impl Into<String>) -> Prop {
        Prop {
            name: name.to_string(),
            value: PropValue::Text(value.into()),
        }
    }

    pub fn list(name: &str, children: Vec<Prop>) -> Prop {
        Prop {
            name: name.to_string(),
            value: PropValue::List(children),
        }
    }

    /// The element this property is written as, for an item whose own namespace is `ns`.
    pub fn tag(&self, ns: &str) -> Option<Tag> {
        match self.name.split_once(':') {
            Some((page, name)) => Tag::by_name(page, name),
            None => Tag::by_name(ns, &self.name),
        }
    }
}

/// The text of the top-level property `name`.
pub fn prop_text<'a>(props: &'a [Prop], name: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| match &p.value {
            PropValue::Text(t) => Some(t.as_str()),
            PropValue::List(_) => None,
        })
}

/// Sets (replaces or appends) the top-level property `name`.
pub fn set_prop(props: &mut Vec<Prop>, prop: Prop) {
    match props.iter_mut().find(|p| p.name == prop.name) {
        Some(p) => *p = prop,
        None => props.push(prop),
    }
}

/// An attachment of a mail or event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
    pub inline: bool,
}

/// An item of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub server_id: String,
    pub folder_id: String,
    pub class: Class,
    pub props: Vec<Prop>,
    /// The plain-text body.
    pub body_text: String,
    /// The HTML body, when the item has one (its native body type is then HTML).
    pub body_html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// The message as sent (SendMail), served for MIME body requests instead of a
    /// generated one.
    pub mime: Option<Vec<u8>>,
    /// Unix seconds the filters (FilterType) compare: received time for mail, end time for
    /// events, due date for tasks, modification time otherwise.
    pub filter_time: i64,
    /// Bumped on every change; the sync state remembers it to find changes.
    pub revision: u64,
}

impl Item {
    /// The MIME message for this item: the stored one, or one generated from the
    /// properties, body and attachments.
    pub fn mime_message(&self) -> Vec<u8> {
        if let Some(m) = &self.mime {
            return m.clone();
        }
        let header = |name: &str| prop_text(&self.props, name).unwrap_or("");
        let mut out = String::new();
        out.push_str(&format!("From: {}\r\n", header("From")));
        out.push_str(&format!("To: {}\r\n", header("To")));
        if let Some(cc) = prop_text(&self.props, "Cc") {
            out.push_str(&format!("Cc: {cc}\r\n"));
        }
        out.push_str(&format!("Subject: {}\r\n", header("Subject")));
        out.push_str(&format!(
            "Date: {}\r\n",
            rfc2822_date(parse_iso(header("DateReceived")).unwrap_or(0))
        ));
        out.push_str(&format!(
            "Message-ID: <{}@easync-lab.test>\r\n",
            self.server_id.replace(':', ".")
        ));
        out.push_str("MIME-Version: 1.0\r\n");
        let text_part = |out: &mut String| match &self.body_html {
            Some(html) => {
                out.push_str("Content-Type: multipart/alternative; boundary=\"alt-lab\"\r\n\r\n");
                out.push_str("--alt-lab\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
                out.push_str(&self.body_text);
                out.push_str("\r\n--alt-lab\r\nContent-Type: text/html; charset=utf-8\r\n\r\n");
                out.push_str(html);
                out.push_str("\r\n--alt-lab--\r\n");
            }
            None => {
                out.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
                out.push_str(&self.body_text);
                out.push_str("\r\n");
            }
        };
        if self.attachments.is_empty() {
            text_part(&mut out);
        } else {
            use base64::Engine as _;
            out.push_str("Content-Type: multipart/mixed; boundary=\"mixed-lab\"\r\n\r\n");
            out.push_str("--mixed-lab\r\n");
            text_part(&mut out);
            for a in &self.attachments {
                out.push_str(&format!(
                    "--mixed-lab\r\nContent-Type: {}; name=\"{}\"\r\nContent-Disposition: {}; filename=\"{}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                    a.content_type,
                    a.name,
                    if a.inline { "inline" } else { "attachment" },
                    a.name
                ));
                let b64 = base64::engine::general_purpose::STANDARD.encode(&a.data);
                for line in b64.as_bytes().chunks(76) {
                    out.push_str(core::str::from_utf8(line).unwrap_or(""));
                    out.push_str("\r\n");
                }
            }
            out.push_str("--mixed-lab--\r\n");
        }
        out.into_bytes()
    }

    /// The FileReference of attachment `index` (what ItemOperations fetches).
    pub fn file_reference(&self, index: usize) -> String {
        format!("{}:{}", self.server_id, index)
    }

    /// Whether the item's subject, body or addresses contain `needle` (lowercase).
    pub fn matches_text(&self, needle: &str) -> bool {
        let hay = |s: &str| s.to_lowercase().contains(needle);
        hay(&self.body_text)
            || [
                "Subject",
                "From",
                "To",
                "FileAs",
                "FirstName",
                "LastName",
                "Email1Address",
            ]
            .iter()
            .any(|n| prop_text(&self.props, n).is_some_and(hay))
    }

    /// The item as JSON for the admin API.
    pub fn to_json(&self) -> Json {
        let mut o = Map::new();
        o.insert("server_id".into(), self.server_id.clone().into());
        o.insert("folder".into(), self.folder_id.clone().into());
        o.insert("class".into(), self.class.as_str().into());
        o.insert("props".into(), props_to_json(&self.props));
        o.insert("body".into(), self.body_text.clone().into());
        if let Some(h) = &self.body_html {
            o.insert("html".into(), h.clone().into());
        }
        o.insert(
            "attachments".into(),
            Json::Array(
                self.attachments
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        serde_json::json!({
                            "name": a.name, "content_type": a.content_type,
                            "size": a.data.len(), "file_reference": self.file_reference(i),
                        })
                    })
                    .collect(),
            ),
        );
        o.insert("revision".into(), self.revision.into());
        Json::Object(o)
    }
}

/// Properties from a JSON object: strings, numbers and booleans are text (booleans as 1/0),
/// objects nest, an array repeats the element.
pub fn props_from_json(value: &Json) -> Result<Vec<Prop>, String> {
    let Json::Object(map) = value else {
        return Err("properties must be a JSON object of element name to value".into());
    };
    let mut out = Vec::new();
    for (name, v) in map {
        push_json_prop(&mut out, name, v)?;
    }
    Ok(out)
}

fn push_json_prop(out: &mut Vec<Prop>, name: &str, v: &Json) -> Result<(), String> {
    match v {
        Json::String(s) => out.push(Prop::text(name, s.clone())),
        Json::Number(n) => out.push(Prop::text(name, n.to_string())),
        Json::Bool(b) => out.push(Prop::text(name, if *b { "1" } else { "0" })),
        Json::Object(_) => out.push(Prop::list(name, props_from_json(v)?)),
        Json::Array(items) => {
            for item in items {
                push_json_prop(out, name, item)?;
            }
        }
        Json::Null => return Err(format!("property {name} is null")),
    }
    Ok(())
}

/// The reverse of [`props_from_json`].
pub fn props_to_json(props: &[Prop]) -> Json {
    let mut map = Map::new();
    for p in props {
        let v = match &p.value {
            PropValue::Text(t) => Json::String(t.clone()),
            PropValue::List(c) => props_to_json(c),
        };
        match map.get_mut(&p.name) {
            Some(Json::Array(a)) => a.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Json::Array(vec![first, v]);
            }
            None => {
                map.insert(p.name.clone(), v);
            }
        }
    }
    Json::Object(map)
}

/// Properties from a client's ApplicationData tree (namespace-qualified where the element
/// is not on `ns`). AirSyncBase Body is returned apart as its Data text.
pub fn props_from_node(node: &Node, ns: &str) -> (Vec<Prop>, Option<String>) {
    let mut props = Vec::new();
    let mut body = None;
    for child in node.children() {
        let name = child.tag.name().unwrap_or("Unknown");
        let page = child.tag.namespace().unwrap_or("");
        if page == "AirSyncBase" && name == "Body" {
            let data_tag = Tag::by_name("AirSyncBase", "Data");
            body = data_tag
                .and_then(|t| child.child_text(t))
                .map(str::to_string)
                .or(Some(String::new()));
            continue;
        }
        let qualified = if page == ns {
            name.to_string()
        } else {
            format!("{page}:{name}")
        };
        let value = match &child.value {
            Value::Children(_) => PropValue::List(props_from_node(child, ns).0),
            _ => PropValue::Text(child.text().unwrap_or("").to_string()),
        };
        props.push(Prop {
            name: qualified,
            value,
        });
    }
    (props, body)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn split_time(t: i64) -> (i64, u32, u32, i64, i64, i64) {
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    (y, mo, d, s / 3600, s / 60 % 60, s % 60)
}

/// `2026-11-25T15:52:36.000Z` (MS-ASDTYPE dateTime).
pub fn iso_time(t: i64) -> String {
    let (y, mo, d, h, mi, s) = split_time(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000Z")
}

/// `20261125T155236Z` (the compact form calendar elements use).
pub fn compact_time(t: i64) -> String {
    let (y, mo, d, h, mi, s) = split_time(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// An RFC 2822 date in UTC.
pub fn rfc2822_date(t: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let (y, mo, d, h, mi, s) = split_time(t);
    let wd = DAYS[t.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{wd}, {d} {} {y} {h:02}:{mi:02}:{s:02} +0000",
        MONTHS[(mo - 1) as usize]
    )
}

/// Parses the ISO form (with or without separators and fraction) back to Unix seconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    let digits: String = s
        .split('.')
        .next()?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if digits.len() < 14 {
        return None;
    }
    let n = |a: usize, b: usize| digits.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0, 4)?, n(4, 6)? as u32, n(6, 8)? as u32);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + n(8, 10)? * 3600 + n(10, 12)? * 60 + n(12, 14)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_types_map_to_the_lab_classes() {
        let expected = |t: u8| match t {
            1..=6 | 12 => Some(Class::Email),
            7 | 15 => Some(Class::Tasks),
            8 | 13 => Some(Class::Calendar),
            9 | 14 => Some(Class::Contacts),
            10 | 17 => Some(Class::Notes),
            _ => None,
        };
        for t in 0..=u8::MAX {
            assert_eq!(class_of_folder_type(t), expected(t), "folder type {t}");
            let folder = Folder {
                server_id: "1".into(),
                parent_id: "0".into(),
                name: "f".into(),
                folder_type: t,
            };
            assert_eq!(folder.is_special(), !matches!(t, 1 | 12..=17), "type {t}");
        }
    }

    #[test]
    fn class_names_match_in_any_case() {
        assert_eq!(class_from_name("email"), Some(Class::Email));
        assert_eq!(class_from_name("CALENDAR"), Some(Class::Calendar));
        assert_eq!(class_from_name("Notes"), Some(Class::Notes));
        assert_eq!(class_from_name(" Tasks"), None);
        assert_eq!(class_from_name("SMS"), None);
    }

    #[test]
    fn dates_round_trip() {
        let t = 1_795_621_956; // 2026-11-25T15:52:36Z
        assert_eq!(iso_time(t), "2026-11-25T15:52:36.000Z");
        assert_eq!(compact_time(t), "20261125T155236Z");
        assert_eq!(parse_iso(&iso_time(t)), Some(t));
        assert_eq!(parse_iso(&compact_time(t)), Some(t));
        assert_eq!(rfc2822_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(parse_iso("garbage"), None);
    }

    #[test]
    fn props_json_round_trip() {
        let json = serde_json::json!({
            "Subject": "Hi", "Importance": 1, "Read": true,
            "Attendees": {"Attendee": [{"Email": "a@x"}, {"Email": "b@x"}]}
        });
        let props = props_from_json(&json).unwrap();
        assert_eq!(prop_text(&props, "Read"), Some("1"));
        assert_eq!(prop_text(&props, "Importance"), Some("1"));
        let back = props_to_json(&props);
        assert_eq!(back["Attendees"]["Attendee"][1]["Email"], "b@x");
        assert!(props_from_json(&serde_json::json!([1])).is_err());
        assert_eq!(
            Prop::text("Email2:ConversationId", "x").tag("Email"),
            Tag::by_name("Email2", "ConversationId")
        );
    }
}
