//! Contacts (MS-ASCNTC) to and from vCard 4.0 (RFC 6350), and the content-line layer that
//! vCard and iCalendar share: unfolding, folding at 75 octets, parameters, text escaping.
//!
//! Mapping (EAS element → vCard property):
//! - FirstName, LastName, MiddleName, Title, Suffix → `N` (FN is composed for display);
//!   YomiFirstName/YomiLastName/YomiCompanyName → `X-PHONETIC-FIRST-NAME`/`-LAST-NAME`/`-ORG`;
//!   contacts2:NickName → `NICKNAME`.
//! - Email1–3Address → `EMAIL;PREF=1..3` (a `"Name" <addr>` form keeps only the address).
//! - Phones → `TEL;TYPE=…`: home/home2 `home,voice`, business/business2 `work,voice`,
//!   mobile `cell`, fax `home,fax`/`work,fax`, `pager`, car `car`, radio `x-radio`,
//!   assistant `x-assistant`, contacts2:CompanyMainPhone `x-company`, contacts2:MMS `x-mms`.
//! - Home/Business/Other address → `ADR;TYPE=home|work|x-other`.
//! - CompanyName + Department → `ORG`, JobTitle → `TITLE`, WebPage → `URL`.
//! - Birthday/Anniversary → `BDAY`/`ANNIVERSARY` as dates (times of day ≥ 12:00 UTC count as
//!   the next day: servers store local midnight in UTC).
//! - Spouse, Children/Child → `RELATED;TYPE=spouse|child;VALUE=text`; AssistantName and
//!   contacts2:ManagerName → `X-ASSISTANT`/`X-MANAGER`; IMAddress1–3 → `IMPP`.
//! - Categories → `CATEGORIES`, body (plain text) → `NOTE`, Picture (base64) → `PHOTO` data URI.
//! - FileAs, OfficeLocation, Alias, CustomerId, GovernmentId, AccountName → `X-EAS-<NAME>`.
//! - `UID`: the file's own; new files get one derived from the ServerId.

use base64::Engine as _;

use crate::eas::item::{container, text_node};
use crate::eas::parse::Node;
use crate::wbxml::ProtocolVersion;
use crate::wbxml::Tag;
use crate::wbxml::tags::cp;

use super::timezone::DateTime;

/// A file (vCard, iCalendar, note) that cannot be read or an item that cannot be converted;
/// the message says what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

impl FormatError {
    pub fn new(message: impl Into<String>) -> Self {
        FormatError(message.into())
    }
}

/// The largest file read (vCards with photos included).
pub const MAX_FILE_LEN: usize = 4 * 1024 * 1024;
/// The most content lines in one file.
pub const MAX_LINES: usize = 10_000;
/// The longest unfolded content line (a photo's data URI is the usual long one).
pub const MAX_LINE_LEN: usize = 2 * 1024 * 1024;
/// The longest property value mapped to an EAS element other than a photo or a body.
pub const MAX_VALUE_LEN: usize = 32 * 1024;

/// What comes with an item from the server besides its ApplicationData tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct FromServer<'a> {
    pub server_id: &'a str,
    /// The UID the local file already has (kept stable across changes).
    pub uid: Option<&'a str>,
    /// The body as plain text (it was streamed separately).
    pub body: Option<&'a str>,
    /// The contact picture as received: base64 (streamed separately).
    pub picture: Option<&'a str>,
}

impl FromServer<'_> {
    /// The UID for the file: the kept one, else `given` (the server's), else one derived
    /// from the ServerId.
    pub fn uid_or(&self, given: Option<&str>) -> String {
        self.uid
            .filter(|u| !u.trim().is_empty())
            .or(given.filter(|u| !u.trim().is_empty()))
            .map(String::from)
            .unwrap_or_else(|| format!("easync-{}", self.server_id))
    }
}

/// A parameter of a content line: a name (upper case) and its values (quotes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub values: Vec<String>,
}

/// One unfolded content line: `NAME;PARAM=v:value`, group prefix dropped, name upper case,
/// value still escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentLine {
    pub name: String,
    pub params: Vec<Param>,
    pub value: String,
}

impl ContentLine {
    /// The values of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&[String]> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.values.as_slice())
    }

    /// Whether a `TYPE` value (any case, comma lists split) is `t`.
    pub fn has_type(&self, t: &str) -> bool {
        self.params.iter().filter(|p| p.name == "TYPE").any(|p| {
            p.values
                .iter()
                .flat_map(|v| v.split(','))
                .any(|v| v.trim().eq_ignore_ascii_case(t))
        })
    }

    /// The value as text (unescaped).
    pub fn text(&self) -> String {
        unescape_text(&self.value)
    }
}

/// Splits a file into unfolded content lines. Accepts CRLF or LF line ends and a leading
/// byte order mark; lines without a `:` are errors, blank lines are skipped.
pub fn parse_content_lines(text: &str) -> Result<Vec<ContentLine>, FormatError> {
    if text.len() > MAX_FILE_LEN {
        return Err(FormatError::new(format!(
            "the file is {} bytes, more than the {MAX_FILE_LEN} accepted",
            text.len()
        )));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<ContentLine> = Vec::new();
    let mut current = String::new();
    let mut current_no = 0usize;
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            if current.len() + rest.len() > MAX_LINE_LEN {
                return Err(FormatError::new(format!(
                    "line {}: a content line is longer than {MAX_LINE_LEN} bytes",
                    current_no + 1
                )));
            }
            current.push_str(rest);
            continue;
        }
        if !current.is_empty() {
            lines.push(parse_line(&current, current_no)?);
            if lines.len() > MAX_LINES {
                return Err(FormatError::new(format!(
                    "the file has more than {MAX_LINES} lines"
                )));
            }
        }
        if raw.len() > MAX_LINE_LEN {
            return Err(FormatError::new(format!(
                "line {}: a content line is longer than {MAX_LINE_LEN} bytes",
                i + 1
            )));
        }
        current.clear();
        current.push_str(raw);
        current_no = i;
    }
    if !current.is_empty() {
        lines.push(parse_line(&current, current_no)?);
    }
    Ok(lines)
}

fn parse_line(line: &str, index: usize) -> Result<ContentLine, FormatError> {
    let err = |what: &str| {
        let shown: String = line.chars().take(40).collect();
        FormatError::new(format!("line {}: {what}: {shown:?}", index + 1))
    };
    // The name runs to the first ';' or ':'; parameters may hold quoted ':' and ';'.
    let name_end = line
        .find([';', ':'])
        .ok_or_else(|| err("a line without ':'"))?;
    let full_name = &line[..name_end];
    let name = full_name.rsplit('.').next().unwrap_or(full_name);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(err("an invalid property name"));
    }
    let mut params = Vec::new();
    let bytes = line.as_bytes();
    let mut pos = name_end;
    while bytes[pos] == b';' {
        pos += 1;
        let eq = line[pos..]
            .find(['=', ';', ':'])
            .map(|p| p + pos)
            .ok_or_else(|| err("a parameter without a value"))?;
        let pname = line[pos..eq].to_ascii_uppercase();
        let mut values = Vec::new();
        pos = eq;
        if bytes[eq] == b'=' {
            pos += 1;
            loop {
                if pos < bytes.len() && bytes[pos] == b'"' {
                    let close = line[pos + 1..]
                        .find('"')
                        .map(|p| p + pos + 1)
                        .ok_or_else(|| err("an unclosed quote"))?;
                    values.push(line[pos + 1..close].to_string());
                    pos = close + 1;
                } else {
                    let end = line[pos..]
                        .find([',', ';', ':'])
                        .map(|p| p + pos)
                        .ok_or_else(|| err("a line without ':'"))?;
                    values.push(line[pos..end].to_string());
                    pos = end;
                }
                if pos < bytes.len() && bytes[pos] == b',' {
                    pos += 1;
                    continue;
                }
                break;
            }
        }
        if pos >= bytes.len() {
            return Err(err("a line without ':'"));
        }
        params.push(Param {
            name: pname,
            values,
        });
    }
    if bytes[pos] != b':' {
        return Err(err("a parameter list that does not end in ':'"));
    }
    Ok(ContentLine {
        name: name.to_ascii_uppercase(),
        params,
        value: line[pos + 1..].to_string(),
    })
}

/// Escapes text for a property value (`\\`, `\;`, `\,`, `\n`).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape_text`]; unknown escapes keep the escaped character.
pub fn unescape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') | Some('N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Splits an escaped value at unescaped `sep` and unescapes each part.
pub fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(unescape_text(&s[start..i]));
            start = i + c.len_utf8();
        }
    }
    parts.push(unescape_text(&s[start..]));
    parts
}

/// Appends `line` folded at 75 octets (never inside a UTF-8 sequence) and ended with CRLF.
pub fn push_folded(out: &mut String, line: &str) {
    let mut rest = line;
    let mut limit = 75;
    loop {
        if rest.len() <= limit {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        limit = 74;
    }
}

/// Quotes a parameter value when it holds `:`, `;` or `,`.
pub fn param_value(v: &str) -> String {
    let v: String = v.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    if v.contains([':', ';', ',']) {
        format!("\"{v}\"")
    } else {
        v
    }
}

const fn c(name: &str) -> Tag {
    Tag::named(cp::CONTACTS, name)
}
const fn c2(name: &str) -> Tag {
    Tag::named(cp::CONTACTS2, name)
}

const FIRST_NAME: Tag = c("FirstName");
const LAST_NAME: Tag = c("LastName");
const MIDDLE_NAME: Tag = c("MiddleName");
const TITLE: Tag = c("Title");
const SUFFIX: Tag = c("Suffix");
const COMPANY: Tag = c("CompanyName");
const DEPARTMENT: Tag = c("Department");
const JOB_TITLE: Tag = c("JobTitle");
const WEB_PAGE: Tag = c("WebPage");
const BIRTHDAY: Tag = c("Birthday");
const ANNIVERSARY: Tag = c("Anniversary");
const SPOUSE: Tag = c("Spouse");
const CHILDREN: Tag = c("Children");
const CHILD: Tag = c("Child");
const ASSISTANT: Tag = c("AssistantName");
const MANAGER: Tag = c2("ManagerName");
const NICKNAME: Tag = c2("NickName");
const CATEGORIES: Tag = c("Categories");
const CATEGORY: Tag = c("Category");
const PICTURE: Tag = c("Picture");
const EMAILS: [Tag; 3] = [c("Email1Address"), c("Email2Address"), c("Email3Address")];
const IMS: [Tag; 3] = [c2("IMAddress"), c2("IMAddress2"), c2("IMAddress3")];
const BODY: Tag = Tag::named(cp::AIRSYNCBASE, "Body");
const BODY_TYPE: Tag = Tag::named(cp::AIRSYNCBASE, "Type");
const BODY_DATA: Tag = Tag::named(cp::AIRSYNCBASE, "Data");
const CONTACTS_BODY: Tag = c("Body");

/// Phone elements and the TYPE values they are written with, in the order a TEL of the same
/// types fills them.
const PHONES: [(Tag, &str); 13] = [
    (c("MobilePhoneNumber"), "cell"),
    (c("HomePhoneNumber"), "home,voice"),
    (c("Home2PhoneNumber"), "home,voice"),
    (c("BusinessPhoneNumber"), "work,voice"),
    (c("Business2PhoneNumber"), "work,voice"),
    (c("HomeFaxNumber"), "home,fax"),
    (c("BusinessFaxNumber"), "work,fax"),
    (c("PagerNumber"), "pager"),
    (c("CarPhoneNumber"), "car"),
    (c("RadioPhoneNumber"), "x-radio"),
    (c("AssistantPhoneNumber"), "x-assistant"),
    (c2("CompanyMainPhone"), "x-company"),
    (c2("MMS"), "x-mms"),
];

/// Address element prefixes and their TYPE.
const ADDRESSES: [(&str, &str); 3] = [("Home", "home"), ("Business", "work"), ("Other", "x-other")];

fn address_tags(prefix: &str) -> [Tag; 5] {
    // Street, City, State, PostalCode, Country: the ADR components 3 to 7.
    let pick = |home: Tag, business: Tag, other: Tag| match prefix {
        "Home" => home,
        "Business" => business,
        _ => other,
    };
    [
        pick(
            c("HomeAddressStreet"),
            c("BusinessAddressStreet"),
            c("OtherAddressStreet"),
        ),
        pick(
            c("HomeAddressCity"),
            c("BusinessAddressCity"),
            c("OtherAddressCity"),
        ),
        pick(
            c("HomeAddressState"),
            c("BusinessAddressState"),
            c("OtherAddressState"),
        ),
        pick(
            c("HomeAddressPostalCode"),
            c("BusinessAddressPostalCode"),
            c("OtherAddressPostalCode"),
        ),
        pick(
            c("HomeAddressCountry"),
            c("BusinessAddressCountry"),
            c("OtherAddressCountry"),
        ),
    ]
}

/// Elements kept as `X-EAS-<NAME>` text properties.
const EXTRAS: [(Tag, &str); 7] = [
    (c("FileAs"), "X-EAS-FILEAS"),
    (c("OfficeLocation"), "X-EAS-OFFICELOCATION"),
    (c("Alias"), "X-EAS-ALIAS"),
    (c2("CustomerId"), "X-EAS-CUSTOMERID"),
    (c2("GovernmentId"), "X-EAS-GOVERNMENTID"),
    (c2("AccountName"), "X-EAS-ACCOUNTNAME"),
    (c("YomiCompanyName"), "X-PHONETIC-ORG"),
];

const YOMI: [(Tag, &str); 2] = [
    (c("YomiFirstName"), "X-PHONETIC-FIRST-NAME"),
    (c("YomiLastName"), "X-PHONETIC-LAST-NAME"),
];

fn nonempty(node: &Node, tag: Tag) -> Option<&str> {
    node.child_text(tag).filter(|t| !t.trim().is_empty())
}

/// The address part of `"Name" <addr>`, or the value itself.
fn bare_address(s: &str) -> &str {
    match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].trim(),
        _ => s.trim(),
    }
}

/// The calendar date of an EAS birthday-like value (see the module documentation).
fn date_of(value: &str) -> Option<String> {
    let (d, _) = DateTime::parse(value)?;
    let d = if d.hour >= 12 {
        d.add_minutes(24 * 60)
    } else {
        d
    };
    Some(d.to_ical_date())
}

/// The MIME type of base64 image data, from its first bytes.
fn image_type(b64: &str) -> &'static str {
    if b64.starts_with("iVBOR") {
        "image/png"
    } else if b64.starts_with("R0lG") {
        "image/gif"
    } else {
        "image/jpeg"
    }
}

/// Converts a contact's ApplicationData into a vCard 4.0 file (CRLF lines, folded).
pub fn contact_to_vcard(data: &Node, ctx: &FromServer) -> String {
    let mut lines: Vec<String> = vec!["BEGIN:VCARD".into(), "VERSION:4.0".into()];
    let text_prop = |lines: &mut Vec<String>, name: &str, value: &str| {
        lines.push(format!("{name}:{}", escape_text(value)));
    };
    lines.push(format!("UID:{}", escape_text(&ctx.uid_or(None))));
    let part = |t: Tag| data.child_text(t).unwrap_or("").trim();
    let names = [
        part(LAST_NAME),
        part(FIRST_NAME),
        part(MIDDLE_NAME),
        part(TITLE),
        part(SUFFIX),
    ];
    let shown: Vec<&str> = [names[3], names[1], names[2], names[0], names[4]]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let full_name = if !shown.is_empty() {
        shown.join(" ")
    } else if let Some(n) = nonempty(data, c("FileAs")).or(nonempty(data, COMPANY)) {
        n.to_string()
    } else if let Some(e) = nonempty(data, EMAILS[0]) {
        bare_address(e).to_string()
    } else {
        String::new()
    };
    text_prop(&mut lines, "FN", &full_name);
    if names.iter().any(|n| !n.is_empty()) {
        let n: Vec<String> = names.iter().map(|s| escape_text(s)).collect();
        lines.push(format!("N:{}", n.join(";")));
    }
    for (tag, prop) in YOMI {
        if let Some(v) = nonempty(data, tag) {
            text_prop(&mut lines, prop, v);
        }
    }
    if let Some(v) = nonempty(data, NICKNAME) {
        text_prop(&mut lines, "NICKNAME", v);
    }
    for (i, tag) in EMAILS.iter().enumerate() {
        if let Some(v) = nonempty(data, *tag) {
            lines.push(format!(
                "EMAIL;PREF={}:{}",
                i + 1,
                escape_text(bare_address(v))
            ));
        }
    }
    for (tag, types) in PHONES {
        if let Some(v) = nonempty(data, tag) {
            lines.push(format!(
                "TEL;TYPE={}:{}",
                param_value(types),
                escape_text(v)
            ));
        }
    }
    for (prefix, kind) in ADDRESSES {
        let parts = address_tags(prefix).map(|t| data.child_text(t).unwrap_or("").trim());
        if parts.iter().any(|p| !p.is_empty()) {
            let parts: Vec<String> = parts.iter().map(|p| escape_text(p)).collect();
            lines.push(format!("ADR;TYPE={kind}:;;{}", parts.join(";")));
        }
    }
    let company = part(COMPANY);
    let department = part(DEPARTMENT);
    if !company.is_empty() || !department.is_empty() {
        if department.is_empty() {
            text_prop(&mut lines, "ORG", company);
        } else {
            lines.push(format!(
                "ORG:{};{}",
                escape_text(company),
                escape_text(department)
            ));
        }
    }
    if let Some(v) = nonempty(data, JOB_TITLE) {
        text_prop(&mut lines, "TITLE", v);
    }
    if let Some(v) = nonempty(data, WEB_PAGE) {
        lines.push(format!("URL:{}", v.trim()));
    }
    if let Some(d) = nonempty(data, BIRTHDAY).and_then(date_of) {
        lines.push(format!("BDAY:{d}"));
    }
    if let Some(d) = nonempty(data, ANNIVERSARY).and_then(date_of) {
        lines.push(format!("ANNIVERSARY:{d}"));
    }
    if let Some(v) = nonempty(data, SPOUSE) {
        lines.push(format!("RELATED;TYPE=spouse;VALUE=text:{}", escape_text(v)));
    }
    if let Some(children) = data.child(CHILDREN) {
        for child in children.children().iter().filter(|n| n.tag == CHILD) {
            if let Some(v) = child.text().filter(|t| !t.trim().is_empty()) {
                lines.push(format!("RELATED;TYPE=child;VALUE=text:{}", escape_text(v)));
            }
        }
    }
    if let Some(v) = nonempty(data, ASSISTANT) {
        text_prop(&mut lines, "X-ASSISTANT", v);
    }
    if let Some(v) = nonempty(data, MANAGER) {
        text_prop(&mut lines, "X-MANAGER", v);
    }
    for tag in IMS {
        if let Some(v) = nonempty(data, tag) {
            lines.push(format!("IMPP:{}", escape_text(v.trim())));
        }
    }
    for (tag, prop) in EXTRAS {
        if let Some(v) = nonempty(data, tag) {
            text_prop(&mut lines, prop, v);
        }
    }
    if let Some(cats) = data.child(CATEGORIES) {
        let list: Vec<String> = cats
            .children()
            .iter()
            .filter_map(Node::text)
            .filter(|t| !t.trim().is_empty())
            .map(escape_text)
            .collect();
        if !list.is_empty() {
            lines.push(format!("CATEGORIES:{}", list.join(",")));
        }
    }
    if let Some(body) = ctx.body.filter(|b| !b.is_empty()) {
        text_prop(&mut lines, "NOTE", body);
    }
    if let Some(pic) = ctx.picture {
        let pic: String = pic.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if !pic.is_empty() {
            lines.push(format!("PHOTO:data:{};base64,{pic}", image_type(&pic)));
        }
    }
    lines.push("END:VCARD".into());
    let mut out = String::new();
    for l in &lines {
        push_folded(&mut out, l);
    }
    out
}

/// An item read from a file: what to send as ApplicationData, and the file's UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFromFile {
    pub uid: Option<String>,
    /// The ApplicationData children for a Sync Add or Change.
    pub data: Vec<Node>,
}

fn bounded(line: &ContentLine, value: String) -> Result<String, FormatError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(FormatError::new(format!(
            "the {} value is longer than {MAX_VALUE_LEN} bytes",
            line.name
        )));
    }
    Ok(value)
}

/// A vCard date (`19800412`, `1980-04-12`, or a date-time) as an EAS long date at midnight.
fn eas_date(value: &str) -> Option<String> {
    let value = value.trim();
    // vCard 4 allows truncated dates like `--0412` (no year): not representable in EAS.
    let (d, _) = DateTime::parse(value)?;
    Some(DateTime::date(d.year, d.month, d.day)?.to_eas_long())
}

/// The base64 data of a `PHOTO` (data URI, or vCard 3 `ENCODING=b`); `None` for a URL.
fn photo_data(line: &ContentLine) -> Result<Option<String>, FormatError> {
    let value = line.value.trim();
    let data = if let Some(rest) = value.strip_prefix("data:") {
        match rest.split_once(',') {
            Some((meta, data)) if meta.ends_with(";base64") => data,
            _ => return Err(FormatError::new("PHOTO is a data URI that is not base64")),
        }
    } else if line.param("ENCODING").is_some_and(|v| {
        v.iter()
            .any(|e| e.eq_ignore_ascii_case("b") || e.eq_ignore_ascii_case("base64"))
    }) {
        value
    } else {
        return Ok(None);
    };
    let data: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(&data)
        .map_err(|e| FormatError::new(format!("PHOTO is not valid base64: {e}")))?;
    Ok(Some(data))
}

/// The body element for text written by the user: airsyncbase:Body (12.0+) with Type 1.
pub fn body_node(version: ProtocolVersion, text: &str, legacy: Tag) -> Node {
    if BODY.in_version(version) {
        container(
            BODY,
            vec![text_node(BODY_TYPE, "1"), text_node(BODY_DATA, text)],
        )
    } else {
        text_node(legacy, text)
    }
}

/// Reads a vCard (3.0 or 4.0; the first VCARD in the file) into a contact for `version`.
pub fn vcard_to_contact(text: &str, version: ProtocolVersion) -> Result<ItemFromFile, FormatError> {
    let lines = parse_content_lines(text)?;
    let begin = lines
        .iter()
        .position(|l| l.name == "BEGIN" && l.value.trim().eq_ignore_ascii_case("VCARD"))
        .ok_or_else(|| FormatError::new("the file has no BEGIN:VCARD"))?;
    let end = lines[begin..]
        .iter()
        .position(|l| l.name == "END" && l.value.trim().eq_ignore_ascii_case("VCARD"))
        .map(|p| p + begin)
        .ok_or_else(|| FormatError::new("the vCard has no END:VCARD (is the file truncated?)"))?;
    let card = &lines[begin + 1..end];

    let mut data: Vec<Node> = Vec::new();
    let mut uid = None;
    let mut emails: Vec<(u32, String)> = Vec::new();
    let mut ims: Vec<String> = Vec::new();
    let mut phones: Vec<Option<String>> = vec![None; PHONES.len()];
    let mut untyped_phones: Vec<String> = Vec::new();
    let mut children: Vec<Node> = Vec::new();
    let mut categories: Vec<Node> = Vec::new();
    let mut full_name = None;
    let mut has_n = false;
    for line in card {
        let set = |data: &mut Vec<Node>, tag: Tag, v: String| {
            if !v.trim().is_empty() && !data.iter().any(|n| n.tag == tag) {
                data.push(text_node(tag, v));
            }
        };
        match line.name.as_str() {
            "UID" => uid = Some(bounded(line, line.text())?),
            "FN" => full_name = Some(bounded(line, line.text())?),
            "N" => {
                has_n = true;
                let parts = split_escaped(&bounded(line, line.value.clone())?, ';');
                let tags = [LAST_NAME, FIRST_NAME, MIDDLE_NAME, TITLE, SUFFIX];
                for (tag, part) in tags.into_iter().zip(parts) {
                    // vCard allows comma lists per component; EAS has one value.
                    set(&mut data, tag, part.trim().to_string());
                }
            }
            "NICKNAME" => set(&mut data, NICKNAME, bounded(line, line.text())?),
            "EMAIL" if emails.len() < 16 => {
                let pref = line
                    .param("PREF")
                    .and_then(|p| p.first())
                    .and_then(|p| p.parse::<u32>().ok())
                    .unwrap_or(100);
                emails.push((pref, bounded(line, line.text())?.trim().to_string()));
            }
            "TEL" => {
                let value = bounded(line, line.text())?.trim().to_string();
                let value = value.strip_prefix("tel:").unwrap_or(&value).to_string();
                let matches = |types: &str| {
                    types.split(',').all(|t| line.has_type(t))
                        && !(types.ends_with("voice")
                            && ["fax", "cell", "pager"].iter().any(|t| line.has_type(t)))
                };
                let slot = PHONES
                    .iter()
                    .enumerate()
                    .position(|(i, (_, types))| phones[i].is_none() && matches(types));
                let slot = slot.or_else(|| {
                    // "x-car" and vCard 3 "work"/"home" without "voice".
                    let by_one = |t: &str| {
                        PHONES
                            .iter()
                            .enumerate()
                            .position(|(i, (_, types))| phones[i].is_none() && types.starts_with(t))
                    };
                    if line.has_type("x-car") {
                        by_one("car")
                    } else if line.has_type("fax") {
                        by_one("home,fax").or_else(|| by_one("work,fax"))
                    } else if line.has_type("work") {
                        by_one("work,voice")
                    } else if line.has_type("home") {
                        by_one("home,voice")
                    } else if line.has_type("cell") || line.has_type("text") {
                        by_one("cell")
                    } else {
                        None
                    }
                });
                match slot {
                    Some(i) => phones[i] = Some(value),
                    None if untyped_phones.len() < PHONES.len() => untyped_phones.push(value),
                    None => {}
                }
            }
            "ADR" => {
                let kind = if line.has_type("home") {
                    "Home"
                } else if line.has_type("work") {
                    "Business"
                } else {
                    "Other"
                };
                let parts = split_escaped(&bounded(line, line.value.clone())?, ';');
                // Post office box and extended address go before the street.
                let street: Vec<&str> = parts
                    .iter()
                    .take(3)
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .collect();
                let street = street.join("\n");
                let values = [
                    street,
                    parts.get(3).cloned().unwrap_or_default(),
                    parts.get(4).cloned().unwrap_or_default(),
                    parts.get(5).cloned().unwrap_or_default(),
                    parts.get(6).cloned().unwrap_or_default(),
                ];
                for (tag, v) in address_tags(kind).into_iter().zip(values) {
                    set(&mut data, tag, v.trim().to_string());
                }
            }
            "ORG" => {
                let parts = split_escaped(&bounded(line, line.value.clone())?, ';');
                if let Some(company) = parts.first() {
                    set(&mut data, COMPANY, company.trim().to_string());
                }
                if parts.len() > 1 {
                    set(
                        &mut data,
                        DEPARTMENT,
                        parts[1..].join(", ").trim().to_string(),
                    );
                }
            }
            "TITLE" => set(&mut data, JOB_TITLE, bounded(line, line.text())?),
            "URL" => set(&mut data, WEB_PAGE, bounded(line, line.text())?),
            "BDAY" | "ANNIVERSARY" => {
                let tag = if line.name == "BDAY" {
                    BIRTHDAY
                } else {
                    ANNIVERSARY
                };
                if let Some(d) = eas_date(&line.value) {
                    set(&mut data, tag, d);
                }
            }
            "RELATED" => {
                let v = bounded(line, line.text())?;
                if line.has_type("spouse") {
                    set(&mut data, SPOUSE, v);
                } else if line.has_type("child") && children.len() < 64 {
                    children.push(text_node(CHILD, v));
                }
            }
            "X-SPOUSE" => set(&mut data, SPOUSE, bounded(line, line.text())?),
            "X-ASSISTANT" => set(&mut data, ASSISTANT, bounded(line, line.text())?),
            "X-MANAGER" => set(&mut data, MANAGER, bounded(line, line.text())?),
            "IMPP" if ims.len() < 3 => ims.push(bounded(line, line.text())?),
            "CATEGORIES" => {
                for cat in split_escaped(&bounded(line, line.value.clone())?, ',') {
                    if !cat.trim().is_empty() && categories.len() < 256 {
                        categories.push(text_node(CATEGORY, cat.trim()));
                    }
                }
            }
            "NOTE" => {
                let body = line.text();
                if body.len() > MAX_LINE_LEN {
                    return Err(FormatError::new("NOTE is too long"));
                }
                if !data.iter().any(|n| n.tag == BODY || n.tag == CONTACTS_BODY) {
                    data.push(body_node(version, &body, CONTACTS_BODY));
                }
            }
            "PHOTO" => {
                if let Some(b64) = photo_data(line)? {
                    set(&mut data, PICTURE, b64);
                }
            }
            name => {
                if let Some((tag, _)) = YOMI.iter().chain(EXTRAS.iter()).find(|(_, p)| *p == name) {
                    set(&mut data, *tag, bounded(line, line.text())?);
                }
            }
        }
    }
    if !has_n {
        // A card with only FN: its first word is the first name, the rest the last name.
        if let Some(name) = full_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            match name.split_once(' ') {
                Some((first, last)) => {
                    data.push(text_node(FIRST_NAME, first));
                    data.push(text_node(LAST_NAME, last.trim()));
                }
                None => data.push(text_node(FIRST_NAME, name)),
            }
        }
    }
    // PREF orders the addresses; without it (or on ties) the file's order stands.
    emails.sort_by_key(|e| e.0);
    for (tag, (_, email)) in EMAILS.iter().zip(emails) {
        data.push(text_node(*tag, email));
    }
    for (tag, im) in IMS.iter().zip(&ims) {
        data.push(text_node(*tag, im.as_str()));
    }
    // Phones without a known type fill the free voice slots.
    let mut untyped = untyped_phones.into_iter();
    for i in [1, 2, 3, 4, 0] {
        if phones[i].is_none() {
            phones[i] = untyped.next();
        }
    }
    for ((tag, _), value) in PHONES.iter().zip(phones) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            data.push(text_node(*tag, v));
        }
    }
    if !children.is_empty() {
        data.push(container(CHILDREN, children));
    }
    if !categories.is_empty() {
        data.push(container(CATEGORIES, categories));
    }
    // Version gates: tags the protocol lacks are not sent.
    data.retain(|n| n.tag.in_version(version));
    Ok(ItemFromFile { uid, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_respects_utf8_and_unfolds_back() {
        let value = "ä".repeat(100);
        let mut out = String::new();
        push_folded(&mut out, &format!("NOTE:{value}"));
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets", l.len());
        }
        assert!(out.lines().count() > 2);
        let lines = parse_content_lines(&out).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].value, value);
    }

    #[test]
    fn escaping_round_trips() {
        let s = "a,b;c\\d\nnew line";
        assert_eq!(escape_text(s), "a\\,b\\;c\\\\d\\nnew line");
        assert_eq!(unescape_text(&escape_text(s)), s);
        assert_eq!(split_escaped("a\\;b;c\\,d;", ';'), vec!["a;b", "c,d", ""]);
        assert_eq!(unescape_text("trailing\\"), "trailing\\");
    }

    #[test]
    fn params_with_quotes_and_groups() {
        let l = parse_content_lines("item1.TEL;TYPE=\"work,voice\";X-A=\"a:b;c\",d:+1 555\r\n")
            .unwrap();
        assert_eq!(l[0].name, "TEL");
        assert!(l[0].has_type("work") && l[0].has_type("voice"));
        assert_eq!(
            l[0].param("X-A").unwrap(),
            &["a:b;c".to_string(), "d".to_string()]
        );
        assert_eq!(l[0].value, "+1 555");
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "BEGIN:VCARD\nno colon here\nEND:VCARD",
            "TEL;TYPE=\"open:1",
            "TEL;TYPE=x",
            ";:x",
            "N@ME:x",
        ] {
            assert!(parse_content_lines(bad).is_err(), "{bad:?}");
        }
        assert!(parse_content_lines(&format!("NOTE:{}", "x".repeat(MAX_LINE_LEN + 1))).is_err());
        assert!(vcard_to_contact("BEGIN:VCARD\nFN:x\n", ProtocolVersion::V14_1).is_err());
        assert!(vcard_to_contact("FN:x\n", ProtocolVersion::V14_1).is_err());
        assert!(
            vcard_to_contact(
                "BEGIN:VCARD\nPHOTO:data:image/png;base64,!!!\nEND:VCARD",
                ProtocolVersion::V14_1
            )
            .is_err()
        );
    }

    #[test]
    fn phones_by_type() {
        let card = "BEGIN:VCARD\nVERSION:3.0\nFN:A B\nTEL;TYPE=CELL:1\nTEL;TYPE=WORK:2\n\
                    TEL;TYPE=WORK,FAX:3\nTEL:4\nTEL;TYPE=HOME;TYPE=VOICE:5\nTEL;TYPE=FAX:6\n\
                    END:VCARD\n";
        let c = vcard_to_contact(card, ProtocolVersion::V14_1).unwrap();
        let get = |name: &str| {
            c.data
                .iter()
                .find(|n| n.tag == Tag::named(cp::CONTACTS, name))
                .and_then(|n| n.text())
        };
        assert_eq!(get("MobilePhoneNumber"), Some("1"));
        assert_eq!(get("BusinessPhoneNumber"), Some("2"));
        assert_eq!(get("BusinessFaxNumber"), Some("3"));
        assert_eq!(get("HomePhoneNumber"), Some("5"));
        assert_eq!(get("Home2PhoneNumber"), Some("4"));
        assert_eq!(get("HomeFaxNumber"), Some("6"));
        assert_eq!(get("FirstName"), Some("A"));
        assert_eq!(get("LastName"), Some("B"));
    }
}
