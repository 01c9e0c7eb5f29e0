//! Writing responses: WBXML documents for a protocol version, an item's ApplicationData
//! (properties, attachments and the body as the client's BodyPreference asks, MS-ASAIRS),
//! and reading the body options of a request.

use core::convert::Infallible;

use super::model::{Item, Prop, PropValue};
use crate::eas::Node;
use crate::wbxml::tags::cp;
use crate::wbxml::{self, ProtocolVersion, Tag};

pub type Out = wbxml::Writer<Vec<u8>>;
pub type WResult = Result<(), wbxml::Error<Infallible>>;

const BASE_BODY: Tag = Tag::named(cp::AIRSYNCBASE, "Body");
const BASE_TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "Type");
const BASE_SIZE: Tag = Tag::named(cp::AIRSYNCBASE, "EstimatedDataSize");
const BASE_TRUNCATED: Tag = Tag::named(cp::AIRSYNCBASE, "Truncated");
const BASE_DATA: Tag = Tag::named(cp::AIRSYNCBASE, "Data");
const BASE_PREVIEW: Tag = Tag::named(cp::AIRSYNCBASE, "Preview");
const BASE_NATIVE: Tag = Tag::named(cp::AIRSYNCBASE, "NativeBodyType");
const BASE_ATTACHMENTS: Tag = Tag::named(cp::AIRSYNCBASE, "Attachments");
const BASE_ATTACHMENT: Tag = Tag::named(cp::AIRSYNCBASE, "Attachment");
const BASE_DISPLAY_NAME: Tag = Tag::named(cp::AIRSYNCBASE, "DisplayName");
const BASE_FILE_REFERENCE: Tag = Tag::named(cp::AIRSYNCBASE, "FileReference");
const BASE_METHOD: Tag = Tag::named(cp::AIRSYNCBASE, "Method");
const BASE_IS_INLINE: Tag = Tag::named(cp::AIRSYNCBASE, "IsInline");
const BASE_CONTENT_TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "ContentType");
const BASE_LOCATION: Tag = Tag::named(cp::AIRSYNCBASE, "Location");
const BASE_BODY_PREFERENCE: Tag = Tag::named(cp::AIRSYNCBASE, "BodyPreference");
const BASE_TRUNCATION_SIZE: Tag = Tag::named(cp::AIRSYNCBASE, "TruncationSize");
const BASE_ALL_OR_NONE: Tag = Tag::named(cp::AIRSYNCBASE, "AllOrNone");
const AS_MIME_SUPPORT: Tag = Tag::named(cp::AIRSYNC, "MIMESupport");
const AS_FILTER_TYPE: Tag = Tag::named(cp::AIRSYNC, "FilterType");
const AS_MIME_TRUNCATION: Tag = Tag::named(cp::AIRSYNC, "MIMETruncation");
const IO_PART: Tag = Tag::named(cp::ITEM_OPERATIONS, "Part");

/// Writes a whole WBXML document for `version`. A failure here is a bug in the lab (a tag
/// the version lacks): it is reported as text for the HTTP 500 body.
pub fn document(
    version: ProtocolVersion,
    f: impl FnOnce(&mut Out) -> WResult,
) -> Result<Vec<u8>, String> {
    let mut w = wbxml::Writer::new(Vec::new()).for_version(version);
    w.header().map_err(|e| e.to_string())?;
    f(&mut w).map_err(|e| format!("easync-lab wrote an invalid response: {e}"))?;
    w.finish().map_err(|e| e.to_string())
}

/// `<root><status>code</status></root>`.
pub fn status_document(
    version: ProtocolVersion,
    root: Tag,
    status: Tag,
    code: u32,
) -> Result<Vec<u8>, String> {
    document(version, |w| {
        w.start(root)?;
        w.text_element(status, &code.to_string())?;
        w.end()
    })
}

/// One BodyPreference of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPreference {
    pub body_type: u8,
    pub truncation_size: Option<usize>,
    pub all_or_none: bool,
    pub preview: Option<usize>,
}

/// The body options of a Sync collection, ItemOperations fetch or Search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyOptions {
    pub preferences: Vec<BodyPreference>,
    /// MIMESupport: 0 never, 1 S/MIME only, 2 always.
    pub mime_support: u8,
    /// MIMETruncation as a character count (None: 8, no truncation); it applies to MIME
    /// bodies whose BodyPreference has no TruncationSize.
    pub mime_truncation: Option<usize>,
    pub filter_type: u8,
}

impl BodyOptions {
    /// Reads the options out of an `Options` element (any namespace's; children are matched
    /// by tag).
    pub fn from_options(options: Option<&Node>) -> Result<BodyOptions, String> {
        let mut out = BodyOptions::default();
        let Some(options) = options else {
            return Ok(out);
        };
        for child in options.children() {
            if child.tag == BASE_BODY_PREFERENCE {
                let number = |t: Tag| -> Result<Option<usize>, String> {
                    child
                        .child_text(t)
                        .map(|s| {
                            s.trim()
                                .parse::<usize>()
                                .map_err(|_| format!("{t} is not a number: {s:?}"))
                        })
                        .transpose()
                };
                let body_type = number(BASE_TYPE)?.ok_or("BodyPreference without Type")?;
                if !matches!(body_type, 1..=4) {
                    return Err(format!("BodyPreference Type {body_type} is not 1 to 4"));
                }
                out.preferences.push(BodyPreference {
                    body_type: body_type as u8,
                    truncation_size: number(BASE_TRUNCATION_SIZE)?,
                    all_or_none: child
                        .child_text(BASE_ALL_OR_NONE)
                        .is_some_and(|v| v.trim() == "1"),
                    preview: number(BASE_PREVIEW)?,
                });
            } else if child.tag == AS_MIME_SUPPORT {
                out.mime_support = child
                    .text()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or("bad MIMESupport")?;
            } else if child.tag == AS_MIME_TRUNCATION {
                // MS-ASCMD 2.2.3.111: 0 all, 1-7 the sizes below, 8 none.
                const LIMITS: [usize; 8] = [0, 4096, 5120, 7168, 10240, 20480, 51200, 102400];
                let code: usize = child
                    .text()
                    .and_then(|t| t.trim().parse().ok())
                    .filter(|v| *v <= 8)
                    .ok_or("MIMETruncation must be 0 to 8")?;
                out.mime_truncation = LIMITS.get(code).copied();
            } else if child.tag == AS_FILTER_TYPE {
                out.filter_type = child
                    .text()
                    .and_then(|t| t.trim().parse().ok())
                    .filter(|v| *v <= 8)
                    .ok_or("FilterType must be 0 to 8")?;
            }
        }
        Ok(out)
    }
}

/// Where a body's or attachment's bytes go in a multipart ItemOperations response.
pub type Parts = Vec<Vec<u8>>;

/// Writes the item's ApplicationData content (properties, attachments, body) — without the
/// surrounding element, which differs per command. With `parts`, the body goes into a
/// multipart part and `itemoperations:Part` replaces `Data`.
pub fn write_item(
    w: &mut Out,
    version: ProtocolVersion,
    item: &Item,
    options: &BodyOptions,
    parts: Option<&mut Parts>,
) -> WResult {
    write_props(w, version, item.class.as_str(), &item.props)?;
    if !item.attachments.is_empty() {
        w.start(BASE_ATTACHMENTS)?;
        for (i, a) in item.attachments.iter().enumerate() {
            w.start(BASE_ATTACHMENT)?;
            w.text_element(BASE_DISPLAY_NAME, &a.name)?;
            w.text_element(BASE_FILE_REFERENCE, &item.file_reference(i))?;
            w.text_element(BASE_METHOD, "1")?;
            w.text_element(BASE_SIZE, &a.data.len().to_string())?;
            w.text_element(BASE_CONTENT_TYPE, &a.content_type)?;
            if a.inline {
                w.text_element(BASE_IS_INLINE, "1")?;
            }
            w.end()?;
        }
        w.end()?;
    }
    write_body(w, version, item, options, parts)?;
    if item.class == super::model::Class::Email {
        w.text_element(
            BASE_NATIVE,
            if item.body_html.is_some() { "2" } else { "1" },
        )?;
    }
    Ok(())
}

/// Writes properties, skipping elements the version lacks. Calendar `Location` becomes the
/// AirSyncBase Location container in 16.0 and later.
pub fn write_props(w: &mut Out, version: ProtocolVersion, ns: &str, props: &[Prop]) -> WResult {
    for p in props {
        let Some(tag) = p.tag(ns) else { continue };
        if !tag.in_version(version) {
            if p.name == "Location" && BASE_LOCATION.in_version(version) {
                if let PropValue::Text(t) = &p.value {
                    w.start(BASE_LOCATION)?;
                    w.text_element(BASE_DISPLAY_NAME, t)?;
                    w.end()?;
                }
            }
            continue;
        }
        match &p.value {
            PropValue::Text(t) if t.is_empty() => w.empty(tag)?,
            PropValue::Text(t) => w.text_element(tag, t)?,
            PropValue::List(children) => {
                w.start(tag)?;
                write_props(w, version, ns, children)?;
                w.end()?;
            }
        }
    }
    Ok(())
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Picks the body type to send: the native type when the client asked for it, else the
/// first requested type the lab can give (RTF, 3, is not offered). MIME (4) only with
/// MIMESupport 2 for mail.
fn choose(item: &Item, options: &BodyOptions) -> Option<BodyPreference> {
    let native = if item.body_html.is_some() { 2 } else { 1 };
    let usable = |p: &&BodyPreference| match p.body_type {
        1 | 2 => true,
        4 => item.class == super::model::Class::Email && options.mime_support == 2,
        _ => false,
    };
    if options.preferences.is_empty() {
        return Some(BodyPreference {
            body_type: 1,
            truncation_size: None,
            all_or_none: false,
            preview: None,
        });
    }
    options
        .preferences
        .iter()
        .filter(usable)
        .find(|p| p.body_type == 4 || p.body_type == native)
        .or_else(|| options.preferences.iter().find(usable))
        .copied()
}

fn write_body(
    w: &mut Out,
    version: ProtocolVersion,
    item: &Item,
    options: &BodyOptions,
    parts: Option<&mut Parts>,
) -> WResult {
    let Some(pref) = choose(item, options) else {
        return Ok(());
    };
    let data: Vec<u8> = match pref.body_type {
        2 => item
            .body_html
            .clone()
            .unwrap_or_else(|| html_of(&item.body_text))
            .into_bytes(),
        4 => item.mime_message(),
        _ => item.body_text.clone().into_bytes(),
    };
    let text = String::from_utf8_lossy(&data).into_owned();
    let total = data.len();
    let limit = match pref.body_type {
        4 => pref.truncation_size.or(options.mime_truncation),
        _ => pref.truncation_size,
    };
    let (sent, truncated): (&str, bool) = match limit {
        Some(max) if total > max => {
            if pref.all_or_none {
                ("", true)
            } else {
                (cut(&text, max), true)
            }
        }
        _ => (text.as_str(), false),
    };
    w.start(BASE_BODY)?;
    w.text_element(BASE_TYPE, &pref.body_type.to_string())?;
    w.text_element(BASE_SIZE, &total.to_string())?;
    if truncated {
        w.text_element(BASE_TRUNCATED, "1")?;
    }
    match parts {
        Some(parts) if !sent.is_empty() => {
            parts.push(sent.as_bytes().to_vec());
            w.text_element(IO_PART, &parts.len().to_string())?;
        }
        _ if !sent.is_empty() => w.text_element(BASE_DATA, sent)?,
        _ => {}
    }
    if let Some(n) = pref.preview {
        if BASE_PREVIEW.in_version(version) && n > 0 {
            w.text_element(BASE_PREVIEW, cut(&item.body_text, n.min(255)))?;
        }
    }
    w.end()
}

fn html_of(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<html><body><pre>{escaped}</pre></body></html>")
}
