//! Calendar items (MS-ASCAL) to and from iCalendar VEVENTs, and tasks (MS-ASTASK) to and
//! from VTODOs (RFC 5545), one VCALENDAR file per item.
//!
//! Events: Subject `SUMMARY`, Location `LOCATION` (calendar:Location before 16.0,
//! airsyncbase:Location/DisplayName from 16.0), StartTime/EndTime `DTSTART`/`DTEND` in the
//! item's zone (`TZID` + a `VTIMEZONE` made from the Timezone blob, see
//! [`super::timezone`]), AllDayEvent as DATE values, Recurrence `RRULE`, deleted exceptions
//! `EXDATE`, changed exceptions extra VEVENTs with `RECURRENCE-ID` in the same file (carrying
//! the series' values they do not override; values equal to the series' are not sent back),
//! Attendees `ATTENDEE` (CN, ROLE, PARTSTAT, CUTYPE=RESOURCE), Organizer `ORGANIZER`,
//! BusyStatus `TRANSP` + `X-MICROSOFT-CDO-BUSYSTATUS`, Sensitivity `CLASS` (personal is
//! `X-PERSONAL`), Reminder a `VALARM` with `TRIGGER:-PTnM`, Categories `CATEGORIES`, body
//! `DESCRIPTION`, DtStamp `DTSTAMP`, UID `UID` (sent back as UID before 16.0, ClientUid from
//! 16.0), MeetingStatus/ResponseRequested/DisallowNewTimeProposal as `X-EAS-…` properties
//! (ResponseType, AppointmentReplyTime and the online meeting links too, file-only). All-day
//! events keep their zone in `X-EAS-TZID` since DATE values carry no TZID; files without
//! any zone are read as UTC. A TZID needs its VTIMEZONE in the file (or be UTC).
//!
//! Sent back per version: UID before 16.0, ClientUid from 16.0; ExceptionStartTime before
//! 16.0, airsyncbase:InstanceId from 16.0; from 16.0 no OrganizerName/OrganizerEmail or
//! AttendeeStatus (MS-ASCAL: the client must not send them) and no DtStamp (the server
//! keeps its own); before 16.0 BusyStatus 4 (working elsewhere) becomes 2.
//!
//! Tasks: Subject, Importance `PRIORITY` (high 1, normal 5, low 9), UtcStartDate/UtcDueDate
//! `DTSTART`/`DUE` (UTC) with the local StartDate/DueDate kept as `X-EAS-STARTDATE`/
//! `X-EAS-DUEDATE`, Complete/DateCompleted `STATUS`/`COMPLETED`, Recurrence `RRULE` (Start,
//! Regenerate, DeadOccur as `X-EAS-…`), ReminderSet/ReminderTime an absolute `VALARM`,
//! Sensitivity, Categories, body.

use crate::eas::item::{container, text_node};
use crate::eas::parse::Node;
use crate::wbxml::tags::cp;
use crate::wbxml::{ProtocolVersion, Tag};

use super::timezone::{DateTime, TimeZone, weekday_code, weekday_from_code};
use super::vcard::{
    ContentLine, FormatError, FromServer, ItemFromFile, MAX_VALUE_LEN, body_node, escape_text,
    param_value, parse_content_lines, push_folded, split_escaped,
};

const fn k(name: &str) -> Tag {
    Tag::named(cp::CALENDAR, name)
}
const fn t(name: &str) -> Tag {
    Tag::named(cp::TASKS, name)
}
const fn b(name: &str) -> Tag {
    Tag::named(cp::AIRSYNCBASE, name)
}

const TIMEZONE: Tag = k("Timezone");
const ALL_DAY: Tag = k("AllDayEvent");
const BUSY: Tag = k("BusyStatus");
const MEETING_STATUS: Tag = k("MeetingStatus");
const ORGANIZER_NAME: Tag = k("OrganizerName");
const ORGANIZER_EMAIL: Tag = k("OrganizerEmail");
const DTSTAMP: Tag = k("DtStamp");
const END_TIME: Tag = k("EndTime");
const LOCATION: Tag = k("Location");
const LOCATION16: Tag = b("Location");
const DISPLAY_NAME: Tag = b("DisplayName");
const REMINDER: Tag = k("Reminder");
const SENSITIVITY: Tag = k("Sensitivity");
const SUBJECT: Tag = k("Subject");
const START_TIME: Tag = k("StartTime");
const UID: Tag = k("UID");
const CLIENT_UID: Tag = k("ClientUid");
const ATTENDEES: Tag = k("Attendees");
const ATTENDEE: Tag = k("Attendee");
const ATT_EMAIL: Tag = k("Email");
const ATT_NAME: Tag = k("Name");
const ATT_STATUS: Tag = k("AttendeeStatus");
const ATT_TYPE: Tag = k("AttendeeType");
const CATEGORIES: Tag = k("Categories");
const CATEGORY: Tag = k("Category");
const EXCEPTIONS: Tag = k("Exceptions");
const EXCEPTION: Tag = k("Exception");
const DELETED: Tag = k("Deleted");
const EXCEPTION_START: Tag = k("ExceptionStartTime");
const INSTANCE_ID: Tag = b("InstanceId");
const CAL_BODY: Tag = k("Body");

/// Event elements kept as `X-EAS-…` properties; `true` when they are sent back.
const EVENT_EXTRAS: [(Tag, &str, bool); 7] = [
    (MEETING_STATUS, "X-EAS-MEETINGSTATUS", true),
    (k("ResponseRequested"), "X-EAS-RESPONSEREQUESTED", true),
    (
        k("DisallowNewTimeProposal"),
        "X-EAS-DISALLOWNEWTIMEPROPOSAL",
        true,
    ),
    (k("ResponseType"), "X-EAS-RESPONSETYPE", false),
    (
        k("AppointmentReplyTime"),
        "X-EAS-APPOINTMENTREPLYTIME",
        false,
    ),
    (
        k("OnlineMeetingConfLink"),
        "X-EAS-ONLINEMEETINGCONFLINK",
        false,
    ),
    (
        k("OnlineMeetingExternalLink"),
        "X-EAS-ONLINEMEETINGEXTERNALLINK",
        false,
    ),
];

/// The recurrence elements of one code page (calendar and tasks share the names).
struct RecurrenceTags {
    recurrence: Tag,
    kind: Tag,
    until: Tag,
    occurrences: Tag,
    interval: Tag,
    day_of_week: Tag,
    day_of_month: Tag,
    week_of_month: Tag,
    month_of_year: Tag,
    first_day_of_week: Tag,
    /// Tasks write Until in the long form, calendar in the compact form.
    long_until: bool,
}

const CAL_RECURRENCE: RecurrenceTags = RecurrenceTags {
    recurrence: k("Recurrence"),
    kind: k("Type"),
    until: k("Until"),
    occurrences: k("Occurrences"),
    interval: k("Interval"),
    day_of_week: k("DayOfWeek"),
    day_of_month: k("DayOfMonth"),
    week_of_month: k("WeekOfMonth"),
    month_of_year: k("MonthOfYear"),
    first_day_of_week: k("FirstDayOfWeek"),
    long_until: false,
};

const TASK_RECURRENCE: RecurrenceTags = RecurrenceTags {
    recurrence: t("Recurrence"),
    kind: t("Type"),
    until: t("Until"),
    occurrences: t("Occurrences"),
    interval: t("Interval"),
    day_of_week: t("DayOfWeek"),
    day_of_month: t("DayOfMonth"),
    week_of_month: t("WeekOfMonth"),
    month_of_year: t("MonthOfYear"),
    first_day_of_week: t("FirstDayOfWeek"),
    long_until: true,
};

fn nonempty(node: &Node, tag: Tag) -> Option<&str> {
    node.child_text(tag)
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn number(node: &Node, tag: Tag) -> Option<u32> {
    nonempty(node, tag).and_then(|t| t.parse().ok())
}

fn eas_time(node: &Node, tag: Tag) -> Result<Option<DateTime>, FormatError> {
    match nonempty(node, tag) {
        None => Ok(None),
        Some(v) => DateTime::parse(v)
            .map(|d| Some(d.0))
            .ok_or_else(|| FormatError::new(format!("the server sent an invalid date {v:?}"))),
    }
}

/// The day-of-week bitmask (1 = Sunday … 64 = Saturday) as BYDAY codes.
fn mask_days(mask: u32) -> Vec<&'static str> {
    (0..7)
        .filter(|d| mask & (1 << d) != 0)
        .map(weekday_code)
        .collect()
}

/// How times of one item are written: in its zone (with TZID), as dates, or in UTC.
struct TimeWriter {
    tz: Option<(TimeZone, String)>,
    all_day: bool,
}

impl TimeWriter {
    fn line(&self, prop: &str, utc: DateTime) -> String {
        match &self.tz {
            _ if self.all_day => {
                let local = self.tz.as_ref().map_or(utc, |(tz, _)| tz.utc_to_local(utc));
                format!("{prop};VALUE=DATE:{}", local.to_ical_date())
            }
            Some((tz, id)) => format!(
                "{prop};TZID={}:{}",
                param_value(id),
                tz.utc_to_local(utc).to_ical_local()
            ),
            None => format!("{prop}:{}", utc.to_compact_utc()),
        }
    }
}

fn recurrence_to_rrule(
    rec: &Node,
    tags: &RecurrenceTags,
    writer: &TimeWriter,
) -> Result<String, FormatError> {
    let kind = number(rec, tags.kind)
        .ok_or_else(|| FormatError::new("the server sent a recurrence without a valid Type"))?;
    let days = number(rec, tags.day_of_week).unwrap_or(0) & 0x7F;
    let week = number(rec, tags.week_of_month).unwrap_or(1).clamp(1, 5);
    let setpos = if week == 5 { -1 } else { week as i32 };
    let mut parts: Vec<String> = Vec::new();
    let byday_nth = |parts: &mut Vec<String>| {
        let list = mask_days(days);
        if list.len() == 1 {
            parts.push(format!("BYDAY={setpos}{}", list[0]));
        } else if !list.is_empty() {
            parts.push(format!("BYDAY={};BYSETPOS={setpos}", list.join(",")));
        }
    };
    match kind {
        0 => {
            parts.push("FREQ=DAILY".into());
            if days != 0 {
                parts.push(format!("BYDAY={}", mask_days(days).join(",")));
            }
        }
        1 => {
            parts.push("FREQ=WEEKLY".into());
            if days != 0 {
                parts.push(format!("BYDAY={}", mask_days(days).join(",")));
            }
        }
        2 => {
            parts.push("FREQ=MONTHLY".into());
            if let Some(d) = number(rec, tags.day_of_month) {
                parts.push(format!("BYMONTHDAY={}", d.clamp(1, 31)));
            }
        }
        3 => {
            parts.push("FREQ=MONTHLY".into());
            byday_nth(&mut parts);
        }
        5 | 6 => {
            parts.push("FREQ=YEARLY".into());
            if let Some(m) = number(rec, tags.month_of_year) {
                parts.push(format!("BYMONTH={}", m.clamp(1, 12)));
            }
            if kind == 5 {
                if let Some(d) = number(rec, tags.day_of_month) {
                    parts.push(format!("BYMONTHDAY={}", d.clamp(1, 31)));
                }
            } else {
                byday_nth(&mut parts);
            }
        }
        other => {
            return Err(FormatError::new(format!(
                "the server sent recurrence Type {other}, which easync does not know"
            )));
        }
    }
    if let Some(i) = number(rec, tags.interval) {
        parts.push(format!("INTERVAL={}", i.min(999)));
    }
    if let Some(n) = number(rec, tags.occurrences) {
        parts.push(format!("COUNT={}", n.min(999)));
    } else if let Some(until) = eas_time(rec, tags.until)? {
        let value = if writer.all_day {
            let local = writer
                .tz
                .as_ref()
                .map_or(until, |(tz, _)| tz.utc_to_local(until));
            local.to_ical_date()
        } else {
            until.to_compact_utc()
        };
        parts.push(format!("UNTIL={value}"));
    }
    if let Some(d) = number(rec, tags.first_day_of_week).filter(|d| *d < 7) {
        parts.push(format!("WKST={}", weekday_code(d)));
    }
    Ok(format!("RRULE:{}", parts.join(";")))
}

fn rrule_to_recurrence(
    value: &str,
    tags: &RecurrenceTags,
    start_local: DateTime,
    tz: &TimeZone,
    version: ProtocolVersion,
) -> Result<Node, FormatError> {
    let unsupported = |why: &str| {
        FormatError::new(format!(
            "RRULE {value:?} cannot be sent to the server: {why}"
        ))
    };
    let mut freq = None;
    let mut fields: Vec<(String, String)> = Vec::new();
    for part in value.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| unsupported("a part without '='"))?;
        let k = k.trim().to_ascii_uppercase();
        if k == "FREQ" {
            freq = Some(v.trim().to_ascii_uppercase());
        } else {
            fields.push((k, v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let num = |name: &str| -> Result<Option<i32>, FormatError> {
        get(name)
            .map(|v| {
                v.trim_start_matches('+')
                    .parse::<i32>()
                    .map_err(|_| unsupported(name))
            })
            .transpose()
    };
    // BYDAY: the weekday mask and the one ordinal all entries share (0 when none).
    let mut mask = 0u32;
    let mut ordinal = 0i32;
    if let Some(byday) = get("BYDAY") {
        for entry in byday.split(',') {
            let entry = entry.trim();
            if entry.len() < 2 || !entry.is_char_boundary(entry.len() - 2) {
                return Err(unsupported("a bad BYDAY"));
            }
            let (n, d) = entry.split_at(entry.len() - 2);
            let day = weekday_from_code(d).ok_or_else(|| unsupported("a bad BYDAY"))?;
            mask |= 1 << day;
            if !n.is_empty() {
                let n: i32 = n
                    .trim_start_matches('+')
                    .parse()
                    .map_err(|_| unsupported("a bad BYDAY"))?;
                if ordinal != 0 && ordinal != n {
                    return Err(unsupported("different ordinals in BYDAY"));
                }
                ordinal = n;
            }
        }
    }
    if let Some(pos) = num("BYSETPOS")? {
        ordinal = pos;
    }
    for unsupported_part in ["BYHOUR", "BYMINUTE", "BYSECOND", "BYWEEKNO", "BYYEARDAY"] {
        if get(unsupported_part).is_some() {
            return Err(unsupported(unsupported_part));
        }
    }
    let mut week = match ordinal {
        0 => None,
        1..=4 => Some(ordinal as u32),
        -1 | 5 => Some(5),
        _ => return Err(unsupported("an ordinal other than 1 to 4 or last")),
    };
    let mut month_day = num("BYMONTHDAY")?;
    if month_day == Some(-1) && mask == 0 && week.is_none() {
        // The last day of the month: EAS says the last (5) of any day (127).
        month_day = None;
        mask = 0x7F;
        week = Some(5);
    }
    if month_day.is_some_and(|d| !(1..=31).contains(&d)) {
        return Err(unsupported("a BYMONTHDAY other than 1 to 31 or -1"));
    }
    if month_day.is_some() && mask != 0 {
        return Err(unsupported("BYMONTHDAY together with BYDAY"));
    }
    let month = num("BYMONTH")?;
    if month.is_some_and(|m| !(1..=12).contains(&m)) {
        return Err(unsupported("a BYMONTH other than one month"));
    }
    let interval = num("INTERVAL")?;
    let start_mask = 1u32 << start_local.weekday();
    let mut out: Vec<Node> = Vec::new();
    let mut push = |tag: Tag, v: String| out.push(text_node(tag, v));
    // Which monthly/yearly form: on a day of the month, or on the n-th given weekday.
    let nth_weekday = match (week, mask) {
        (Some(w), m) if m != 0 => Ok(Some(w)),
        (None, 0) => Ok(None),
        (None, _) => Err(unsupported("every given weekday of a month or year")),
        (Some(_), _) => Err(unsupported("an ordinal without weekdays")),
    };
    match freq.as_deref() {
        Some("DAILY") if mask == 0 => push(tags.kind, "0".into()),
        Some("DAILY") | Some("WEEKLY") => {
            if week.is_some() {
                return Err(unsupported("an ordinal in a daily or weekly rule"));
            }
            if freq.as_deref() == Some("DAILY") && interval.unwrap_or(1) != 1 {
                return Err(unsupported("a daily rule with BYDAY and an INTERVAL"));
            }
            // "Every weekday" is a weekly rule in EAS.
            push(tags.kind, "1".into());
            push(
                tags.day_of_week,
                if mask != 0 { mask } else { start_mask }.to_string(),
            );
        }
        Some("MONTHLY") => match nth_weekday? {
            Some(w) => {
                push(tags.kind, "3".into());
                push(tags.week_of_month, w.to_string());
                push(tags.day_of_week, mask.to_string());
            }
            None => {
                push(tags.kind, "2".into());
                let d = month_day.map_or(start_local.day, |d| d as u32);
                push(tags.day_of_month, d.to_string());
            }
        },
        Some("YEARLY") => {
            let m = month.map_or(start_local.month, |m| m as u32);
            match nth_weekday? {
                Some(w) => {
                    push(tags.kind, "6".into());
                    push(tags.week_of_month, w.to_string());
                    push(tags.day_of_week, mask.to_string());
                }
                None => {
                    push(tags.kind, "5".into());
                    let d = month_day.map_or(start_local.day, |d| d as u32);
                    push(tags.day_of_month, d.to_string());
                }
            }
            push(tags.month_of_year, m.to_string());
        }
        _ => {
            return Err(unsupported(
                "only DAILY, WEEKLY, MONTHLY and YEARLY exist in EAS",
            ));
        }
    }
    if let Some(i) = interval {
        if !(1..=999).contains(&i) {
            return Err(unsupported("an INTERVAL out of range"));
        }
        push(tags.interval, i.to_string());
    }
    if let Some(n) = num("COUNT")? {
        if !(1..=999).contains(&n) {
            return Err(unsupported("a COUNT out of range"));
        }
        push(tags.occurrences, n.to_string());
    } else if let Some(until) = get("UNTIL") {
        let (d, utc) = DateTime::parse(until).ok_or_else(|| unsupported("a bad UNTIL"))?;
        let d = if utc { d } else { tz.local_to_utc(d) };
        push(
            tags.until,
            if tags.long_until {
                d.to_eas_long()
            } else {
                d.to_compact_utc()
            },
        );
    }
    if let Some(wkst) = get("WKST").and_then(weekday_from_code) {
        push(tags.first_day_of_week, wkst.to_string());
    }
    out.retain(|n| n.tag.in_version(version));
    Ok(container(tags.recurrence, out))
}

/// `-PT15M` for a reminder `minutes` before the start.
fn trigger(minutes: u32) -> String {
    if minutes == 0 {
        "PT0M".into()
    } else {
        format!("-PT{minutes}M")
    }
}

/// A duration (`-PT15M`, `P1DT2H`, `-P1W`) in seconds.
fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let mut total: i64 = 0;
    let mut n: i64 = 0;
    let mut any = false;
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            '0'..='9' => {
                n = n.checked_mul(10)?.checked_add(i64::from(c as u8 - b'0'))?;
                if n > 100_000_000 {
                    return None;
                }
                any = true;
            }
            'T' => {}
            unit => {
                let secs = match unit {
                    'W' => 7 * 86_400,
                    'D' => 86_400,
                    'H' => 3600,
                    'M' => 60,
                    'S' => 1,
                    _ => return None,
                };
                total = total.checked_add(n.checked_mul(secs)?)?;
                n = 0;
            }
        }
    }
    any.then_some(sign * total)
}

fn class_of(sensitivity: &str) -> &'static str {
    match sensitivity {
        "1" => "X-PERSONAL",
        "2" => "PRIVATE",
        "3" => "CONFIDENTIAL",
        _ => "PUBLIC",
    }
}

fn sensitivity_of(class: &str) -> &'static str {
    match class.trim().to_ascii_uppercase().as_str() {
        "X-PERSONAL" | "PERSONAL" => "1",
        "PRIVATE" => "2",
        "CONFIDENTIAL" => "3",
        _ => "0",
    }
}

const BUSY_NAMES: [&str; 5] = ["FREE", "TENTATIVE", "BUSY", "OOF", "WORKINGELSEWHERE"];

fn categories_line(node: &Node, tag: Tag) -> Option<String> {
    let list: Vec<String> = node
        .child(tag)?
        .children()
        .iter()
        .filter_map(Node::text)
        .filter(|t| !t.trim().is_empty())
        .map(escape_text)
        .collect();
    (!list.is_empty()).then(|| format!("CATEGORIES:{}", list.join(",")))
}

/// The properties an event and its exceptions share (Subject to Attendees).
fn event_details(node: &Node, lines: &mut Vec<String>) {
    if let Some(s) = nonempty(node, SUBJECT) {
        lines.push(format!("SUMMARY:{}", escape_text(s)));
    }
    let location = nonempty(node, LOCATION).or_else(|| {
        node.child(LOCATION16)
            .and_then(|l| nonempty(l, DISPLAY_NAME))
    });
    if let Some(l) = location {
        lines.push(format!("LOCATION:{}", escape_text(l)));
    }
    if let Some(s) = nonempty(node, SENSITIVITY) {
        lines.push(format!("CLASS:{}", class_of(s)));
    }
    if let Some(busy) = number(node, BUSY).filter(|b| *b < 5) {
        lines.push(format!(
            "TRANSP:{}",
            if busy == 0 { "TRANSPARENT" } else { "OPAQUE" }
        ));
        lines.push(format!(
            "X-MICROSOFT-CDO-BUSYSTATUS:{}",
            BUSY_NAMES[busy as usize]
        ));
    }
    if let Some(c) = categories_line(node, CATEGORIES) {
        lines.push(c);
    }
    if let Some(att) = node.child(ATTENDEES) {
        for a in att.children().iter().filter(|a| a.tag == ATTENDEE) {
            let Some(email) = nonempty(a, ATT_EMAIL) else {
                continue;
            };
            let mut line = String::from("ATTENDEE");
            if let Some(n) = nonempty(a, ATT_NAME) {
                line.push_str(&format!(";CN={}", param_value(n)));
            }
            match number(a, ATT_TYPE) {
                Some(2) => line.push_str(";ROLE=OPT-PARTICIPANT"),
                Some(3) => line.push_str(";CUTYPE=RESOURCE;ROLE=NON-PARTICIPANT"),
                Some(_) => line.push_str(";ROLE=REQ-PARTICIPANT"),
                None => {}
            }
            let partstat = match number(a, ATT_STATUS) {
                Some(2) => Some("TENTATIVE"),
                Some(3) => Some("ACCEPTED"),
                Some(4) => Some("DECLINED"),
                Some(5) => Some("NEEDS-ACTION"),
                _ => None,
            };
            if let Some(p) = partstat {
                line.push_str(&format!(";PARTSTAT={p}"));
            }
            line.push_str(&format!(":mailto:{email}"));
            lines.push(line);
        }
    }
}

/// The VALARM of an event's Reminder (components follow all properties in a VEVENT).
fn alarm_lines(node: &Node, lines: &mut Vec<String>) {
    if let Some(minutes) = number(node, REMINDER) {
        lines.extend([
            "BEGIN:VALARM".to_string(),
            "ACTION:DISPLAY".into(),
            "DESCRIPTION:Reminder".into(),
            format!("TRIGGER:{}", trigger(minutes)),
            "END:VALARM".into(),
        ]);
    }
}

/// An exception with the series' values for the properties it leaves out: a RECURRENCE-ID
/// instance in iCalendar inherits nothing, an EAS exception inherits everything.
fn with_series_values(exception: &Node, series: &Node) -> Node {
    let mut children = exception.children().to_vec();
    let has_location = exception.child(LOCATION).is_some() || exception.child(LOCATION16).is_some();
    for tag in [
        SUBJECT,
        LOCATION,
        LOCATION16,
        SENSITIVITY,
        BUSY,
        CATEGORIES,
        ATTENDEES,
        REMINDER,
    ] {
        let location = tag == LOCATION || tag == LOCATION16;
        if exception.child(tag).is_none() && !(location && has_location) {
            children.extend(series.child(tag).cloned());
        }
    }
    container(exception.tag, children)
}

fn calendar_file(components: Vec<String>) -> String {
    let mut out = String::new();
    for l in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//easync//EAS//EN",
    ] {
        push_folded(&mut out, l);
    }
    for l in &components {
        push_folded(&mut out, l);
    }
    push_folded(&mut out, "END:VCALENDAR");
    out
}

/// The DTSTAMP of a file written from an item the server gave no stamp (tasks never have
/// one): the Unix epoch, so that writing the same item twice gives the same bytes.
fn fixed_stamp() -> DateTime {
    DateTime::from_timestamp(0).unwrap_or_else(DateTime::now_utc)
}

/// Converts a calendar item's ApplicationData into an iCalendar file. Exceptions' own
/// bodies are not carried (they arrive streamed with the item's). A time zone that is UTC
/// all year (zero offsets, no daylight saving; SOGo sends one) is written as UTC times
/// rather than as a VTIMEZONE of its own.
pub fn event_to_ical(data: &Node, ctx: &FromServer) -> Result<String, FormatError> {
    let tz = match nonempty(data, TIMEZONE) {
        Some(blob) => Some(TimeZone::from_base64(blob)?),
        None => None,
    };
    let writer = TimeWriter {
        tz: tz.filter(|tz| !tz.is_utc()).map(|tz| {
            let id = tz.tzid();
            (tz, id)
        }),
        all_day: number(data, ALL_DAY) == Some(1),
    };
    let start = eas_time(data, START_TIME)?
        .ok_or_else(|| FormatError::new("the server sent an event without StartTime"))?;
    let end = eas_time(data, END_TIME)?.unwrap_or(start);
    let uid = ctx.uid_or(nonempty(data, UID));
    // Without the server's DtStamp a fixed stamp keeps the file a pure function of the item
    // (applying the same batch twice must change nothing).
    let stamp = eas_time(data, DTSTAMP)?.unwrap_or_else(fixed_stamp);
    let mut lines: Vec<String> = Vec::new();
    if let Some((tz, _)) = &writer.tz {
        lines.extend(tz.to_vtimezone());
    }
    let mut event = vec![
        "BEGIN:VEVENT".to_string(),
        format!("UID:{}", escape_text(&uid)),
        format!("DTSTAMP:{}", stamp.to_compact_utc()),
        writer.line("DTSTART", start),
        writer.line("DTEND", end),
    ];
    if let (true, Some((_, id))) = (writer.all_day, &writer.tz) {
        // DATE values carry no TZID; this keeps the zone the day boundaries are in.
        event.push(format!("X-EAS-TZID:{}", escape_text(id)));
    }
    event_details(data, &mut event);
    if let Some(body) = ctx.body.filter(|b| !b.is_empty()) {
        event.push(format!("DESCRIPTION:{}", escape_text(body)));
    }
    let org_email = nonempty(data, ORGANIZER_EMAIL);
    if let Some(email) = org_email {
        let cn = nonempty(data, ORGANIZER_NAME)
            .map(|n| format!(";CN={}", param_value(n)))
            .unwrap_or_default();
        event.push(format!("ORGANIZER{cn}:mailto:{email}"));
    } else if let Some(name) = nonempty(data, ORGANIZER_NAME) {
        event.push(format!("X-EAS-ORGANIZERNAME:{}", escape_text(name)));
    }
    for (tag, prop, _) in EVENT_EXTRAS {
        if let Some(v) = nonempty(data, tag) {
            event.push(format!("{prop}:{}", escape_text(v)));
        }
    }
    if let Some(rec) = data.child(CAL_RECURRENCE.recurrence) {
        event.push(recurrence_to_rrule(rec, &CAL_RECURRENCE, &writer)?);
    }
    let mut modified: Vec<Vec<String>> = Vec::new();
    let exceptions = data.child(EXCEPTIONS).map(Node::children).unwrap_or(&[]);
    for ex in exceptions.iter().filter(|e| e.tag == EXCEPTION) {
        let original = match eas_time(ex, EXCEPTION_START)? {
            Some(t) => t,
            None => eas_time(ex, INSTANCE_ID)?.ok_or_else(|| {
                FormatError::new("the server sent an exception without its start time")
            })?,
        };
        if number(ex, DELETED) == Some(1) {
            event.push(writer.line("EXDATE", original));
            continue;
        }
        let ex_writer = TimeWriter {
            tz: writer.tz.clone(),
            all_day: number(ex, ALL_DAY).map_or(writer.all_day, |a| a == 1),
        };
        let ex_start = eas_time(ex, START_TIME)?.unwrap_or(original);
        let duration = end.timestamp() - start.timestamp();
        let ex_end = eas_time(ex, END_TIME)?.unwrap_or(ex_start.add_minutes(duration / 60));
        let mut v = vec![
            "BEGIN:VEVENT".to_string(),
            format!("UID:{}", escape_text(&uid)),
            format!(
                "DTSTAMP:{}",
                eas_time(ex, DTSTAMP)?.unwrap_or(stamp).to_compact_utc()
            ),
            writer.line("RECURRENCE-ID", original),
            ex_writer.line("DTSTART", ex_start),
            ex_writer.line("DTEND", ex_end),
        ];
        let full = with_series_values(ex, data);
        event_details(&full, &mut v);
        if let Some(body) = ctx.body.filter(|b| !b.is_empty()) {
            v.push(format!("DESCRIPTION:{}", escape_text(body)));
        }
        if let Some(ms) = nonempty(ex, MEETING_STATUS) {
            v.push(format!("X-EAS-MEETINGSTATUS:{ms}"));
        }
        alarm_lines(&full, &mut v);
        v.push("END:VEVENT".into());
        modified.push(v);
    }
    alarm_lines(data, &mut event);
    event.push("END:VEVENT".into());
    lines.extend(event);
    for m in modified {
        lines.extend(m);
    }
    Ok(calendar_file(lines))
}

/// A component of a parsed file: its own properties and its sub-components.
struct Component<'a> {
    name: String,
    props: Vec<&'a ContentLine>,
    subs: Vec<Component<'a>>,
    /// Every line from BEGIN to END, for readers that want them flat.
    raw: &'a [ContentLine],
}

impl<'a> Component<'a> {
    fn prop(&self, name: &str) -> Option<&'a ContentLine> {
        self.props.iter().copied().find(|p| p.name == name)
    }

    fn all(&self, name: &'a str) -> impl Iterator<Item = &'a ContentLine> + '_ {
        self.props.iter().copied().filter(move |p| p.name == name)
    }

    fn text(&self, name: &str) -> Result<Option<String>, FormatError> {
        match self.prop(name) {
            None => Ok(None),
            Some(l) => {
                let v = l.text();
                if v.len() > MAX_VALUE_LEN {
                    return Err(FormatError::new(format!(
                        "{name} is longer than {MAX_VALUE_LEN} bytes"
                    )));
                }
                Ok(Some(v).filter(|v| !v.trim().is_empty()))
            }
        }
    }
}

/// Builds the component tree of `lines[start..]` from its BEGIN; returns it and the index
/// after its END.
fn component(
    lines: &[ContentLine],
    start: usize,
    depth: usize,
) -> Result<(Component<'_>, usize), FormatError> {
    if depth > 8 {
        return Err(FormatError::new("components are nested too deeply"));
    }
    let name = lines[start].value.trim().to_ascii_uppercase();
    let mut comp = Component {
        name: name.clone(),
        props: Vec::new(),
        subs: Vec::new(),
        raw: &[],
    };
    let mut i = start + 1;
    while i < lines.len() {
        let l = &lines[i];
        if l.name == "BEGIN" {
            let (sub, next) = component(lines, i, depth + 1)?;
            comp.subs.push(sub);
            i = next;
            continue;
        }
        if l.name == "END" {
            if !l.value.trim().eq_ignore_ascii_case(&name) {
                return Err(FormatError::new(format!(
                    "END:{} where END:{name} was expected",
                    l.value.trim()
                )));
            }
            comp.raw = &lines[start..=i];
            return Ok((comp, i + 1));
        }
        comp.props.push(l);
        i += 1;
    }
    Err(FormatError::new(format!(
        "BEGIN:{name} has no END (is the file truncated?)"
    )))
}

/// The VCALENDAR of a file and the time zones it defines.
struct Calendar<'a> {
    root: Component<'a>,
    zones: Vec<(String, TimeZone)>,
}

fn read_calendar(lines: &[ContentLine]) -> Result<Calendar<'_>, FormatError> {
    let begin = lines
        .iter()
        .position(|l| l.name == "BEGIN" && l.value.trim().eq_ignore_ascii_case("VCALENDAR"))
        .ok_or_else(|| FormatError::new("the file has no BEGIN:VCALENDAR"))?;
    let (root, _) = component(lines, begin, 0)?;
    let mut zones = Vec::new();
    for z in root.subs.iter().filter(|c| c.name == "VTIMEZONE") {
        let id = z.prop("TZID").map(|l| l.text()).unwrap_or_default();
        zones.push((id, TimeZone::from_vtimezone(z.raw)?));
    }
    Ok(Calendar { root, zones })
}

impl Calendar<'_> {
    fn zone(&self, tzid: &str) -> Result<TimeZone, FormatError> {
        if let Some((_, tz)) = self.zones.iter().find(|(id, _)| id == tzid) {
            return Ok(tz.clone());
        }
        match tzid {
            "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z" => Ok(TimeZone::utc()),
            _ => Err(FormatError::new(format!(
                "the time zone {tzid:?} is used but the file has no VTIMEZONE for it"
            ))),
        }
    }
}

/// A time read from a DTSTART-like property.
#[derive(Clone, Copy)]
struct Moment {
    utc: DateTime,
    local: DateTime,
    is_date: bool,
}

fn read_moment(
    line: &ContentLine,
    cal: &Calendar,
    default_tz: &TimeZone,
) -> Result<Moment, FormatError> {
    let value = line.value.split(',').next().unwrap_or("");
    read_moment_value(line, value, cal, default_tz)
}

fn read_moment_value(
    line: &ContentLine,
    value: &str,
    cal: &Calendar,
    default_tz: &TimeZone,
) -> Result<Moment, FormatError> {
    let (d, utc) = DateTime::parse(value)
        .ok_or_else(|| FormatError::new(format!("{} has an invalid date {value:?}", line.name)))?;
    let is_date = value.trim().len() == 8
        || line
            .param("VALUE")
            .is_some_and(|v| v.iter().any(|v| v.eq_ignore_ascii_case("DATE")));
    if utc {
        return Ok(Moment {
            utc: d,
            local: default_tz.utc_to_local(d),
            is_date,
        });
    }
    let tz = match line.param("TZID").and_then(|v| v.first()) {
        Some(id) => cal.zone(id)?,
        None => default_tz.clone(),
    };
    Ok(Moment {
        utc: tz.local_to_utc(d),
        local: d,
        is_date,
    })
}

fn attendees_node(comp: &Component) -> Option<Node> {
    let mut list = Vec::new();
    for a in comp.all("ATTENDEE").take(500) {
        let value = a.value.trim();
        let email = value
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("mailto:"))
            .map_or(value, |_| &value[7..]);
        if email.is_empty() || email.len() > 512 {
            continue;
        }
        let mut node = vec![text_node(ATT_EMAIL, email)];
        let name = a
            .param("CN")
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_else(|| email.to_string());
        node.push(text_node(ATT_NAME, name));
        let param = |n: &str| {
            a.param(n)
                .and_then(|v| v.first())
                .map(|s| s.to_ascii_uppercase())
        };
        if let Some(status) = param("PARTSTAT") {
            let code = match status.as_str() {
                "TENTATIVE" => "2",
                "ACCEPTED" => "3",
                "DECLINED" => "4",
                _ => "5",
            };
            node.push(text_node(ATT_STATUS, code));
        }
        let kind = if param("CUTYPE").as_deref() == Some("RESOURCE") {
            Some("3")
        } else {
            match param("ROLE").as_deref() {
                Some("OPT-PARTICIPANT") | Some("NON-PARTICIPANT") => Some("2"),
                Some(_) => Some("1"),
                None => None,
            }
        };
        if let Some(k) = kind {
            node.push(text_node(ATT_TYPE, k));
        }
        list.push(container(ATTENDEE, node));
    }
    (!list.is_empty()).then(|| container(ATTENDEES, list))
}

fn categories_node(comp: &Component, tag: Tag, item: Tag) -> Option<Node> {
    let list: Vec<Node> = comp
        .all("CATEGORIES")
        .flat_map(|l| split_escaped(&l.value, ','))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty() && c.len() <= 256)
        .take(256)
        .map(|c| text_node(item, c))
        .collect();
    (!list.is_empty()).then(|| container(tag, list))
}

/// Reminder minutes before the start from the first VALARM with a relative trigger.
fn reminder_minutes(comp: &Component) -> Option<u32> {
    comp.subs
        .iter()
        .filter(|s| s.name == "VALARM")
        .filter_map(|a| a.prop("TRIGGER"))
        .filter(|t| {
            !t.param("RELATED")
                .is_some_and(|r| r.iter().any(|v| v.eq_ignore_ascii_case("END")))
        })
        .find_map(|t| parse_duration(&t.value))
        .map(|secs| ((-secs).max(0) / 60).min(i64::from(u32::MAX)) as u32)
}

fn busy_status(comp: &Component) -> Option<&'static str> {
    if let Some(b) = comp.prop("X-MICROSOFT-CDO-BUSYSTATUS") {
        let v = b.value.trim().to_ascii_uppercase();
        if let Some(i) = BUSY_NAMES.iter().position(|n| *n == v) {
            return Some(["0", "1", "2", "3", "4"][i]);
        }
    }
    comp.prop("TRANSP").map(|t| {
        if t.value.trim().eq_ignore_ascii_case("TRANSPARENT") {
            "0"
        } else {
            "2"
        }
    })
}

/// The properties an event and its exceptions share, read back; `master` holds the
/// values an exception leaves out when they are equal.
fn read_details(
    comp: &Component,
    version: ProtocolVersion,
    master: Option<&[Node]>,
) -> Result<Vec<Node>, FormatError> {
    let mut out = Vec::new();
    if let Some(s) = comp.text("SUMMARY")? {
        out.push(text_node(SUBJECT, s));
    }
    if let Some(l) = comp.text("LOCATION")? {
        if LOCATION.in_version(version) {
            out.push(text_node(LOCATION, l));
        } else {
            out.push(container(LOCATION16, vec![text_node(DISPLAY_NAME, l)]));
        }
    }
    if let Some(c) = comp.prop("CLASS") {
        out.push(text_node(SENSITIVITY, sensitivity_of(&c.value)));
    }
    if let Some(b) = busy_status(comp) {
        out.push(text_node(BUSY, b));
    }
    if let Some(c) = categories_node(comp, CATEGORIES, CATEGORY) {
        out.push(c);
    }
    if let Some(a) = attendees_node(comp) {
        out.push(a);
    }
    if let Some(m) = reminder_minutes(comp) {
        out.push(text_node(REMINDER, m.to_string()));
    }
    if let Some(master) = master {
        out.retain(|n| !master.contains(n));
    }
    Ok(out)
}

/// Removes every node with `tag`, at any depth.
fn strip(nodes: &mut Vec<Node>, tag: Tag) {
    nodes.retain(|n| n.tag != tag);
    for n in nodes {
        if let crate::eas::parse::Value::Children(c) = &mut n.value {
            strip(c, tag);
        }
    }
}

/// Replaces every node equal to `from` by `to`, at any depth.
fn replace(nodes: &mut [Node], from: &Node, to: &Node) {
    for n in nodes {
        if n == from {
            *n = to.clone();
        } else if let crate::eas::parse::Value::Children(c) = &mut n.value {
            replace(c, from, to);
        }
    }
}

/// Reads an iCalendar file with one event (and its RECURRENCE-ID exceptions) into calendar
/// ApplicationData for `version`.
pub fn ical_to_event(text: &str, version: ProtocolVersion) -> Result<ItemFromFile, FormatError> {
    let lines = parse_content_lines(text)?;
    let cal = read_calendar(&lines)?;
    let events: Vec<&Component> = cal
        .root
        .subs
        .iter()
        .filter(|c| c.name == "VEVENT")
        .collect();
    let master = events
        .iter()
        .find(|e| e.prop("RECURRENCE-ID").is_none())
        .or(events.first())
        .ok_or_else(|| FormatError::new("the file has no VEVENT"))?;
    let dtstart = master
        .prop("DTSTART")
        .ok_or_else(|| FormatError::new("the event has no DTSTART"))?;
    let tzid = match dtstart.param("TZID").and_then(|v| v.first()) {
        Some(id) => Some(id.clone()),
        None => master.text("X-EAS-TZID")?,
    };
    let zone = match tzid {
        Some(id) => cal.zone(&id)?,
        None => TimeZone::utc(),
    };
    let start = read_moment(dtstart, &cal, &zone)?;
    let end = match (master.prop("DTEND"), master.prop("DURATION")) {
        (Some(e), _) => read_moment(e, &cal, &zone)?.utc,
        (None, Some(d)) => {
            let secs = parse_duration(&d.value)
                .ok_or_else(|| FormatError::new(format!("DURATION {:?} is invalid", d.value)))?;
            start.utc.add_minutes(secs / 60)
        }
        (None, None) if start.is_date => start.utc.add_minutes(24 * 60),
        (None, None) => start.utc,
    };
    let mut data: Vec<Node> = Vec::new();
    data.push(text_node(TIMEZONE, zone.to_base64()));
    data.push(text_node(ALL_DAY, if start.is_date { "1" } else { "0" }));
    if let Some(d) = master.text("DESCRIPTION")? {
        data.push(body_node(version, &d, CAL_BODY));
    }
    let uid = master.text("UID")?;
    if let Some(org) = master.prop("ORGANIZER") {
        let v = org.value.trim();
        let email = v
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("mailto:"))
            .map_or(v, |_| &v[7..]);
        if let Some(cn) = org.param("CN").and_then(|v| v.first()) {
            data.push(text_node(ORGANIZER_NAME, cn.as_str()));
        }
        if !email.is_empty() {
            data.push(text_node(ORGANIZER_EMAIL, email));
        }
    }
    if let Some(stamp) = master.prop("DTSTAMP") {
        if let Some((d, _)) = DateTime::parse(&stamp.value) {
            data.push(text_node(DTSTAMP, d.to_compact_utc()));
        }
    }
    data.push(text_node(START_TIME, start.utc.to_compact_utc()));
    data.push(text_node(END_TIME, end.to_compact_utc()));
    let details = read_details(master, version, None)?;
    data.extend(details.iter().cloned());
    // MS-ASCAL caps UID and ClientUid at 300 characters; a longer one is left to the server.
    if let Some(u) = uid.as_ref().filter(|u| u.chars().count() <= 300) {
        if version >= ProtocolVersion::V16_0 {
            data.push(text_node(CLIENT_UID, u.as_str()));
        } else {
            data.push(text_node(UID, u.as_str()));
        }
    }
    for (tag, prop, sent) in EVENT_EXTRAS {
        if let (true, Some(v)) = (sent, master.text(prop)?) {
            data.push(text_node(tag, v.trim()));
        }
    }
    if let Some(r) = master.prop("RRULE") {
        data.push(rrule_to_recurrence(
            &r.value,
            &CAL_RECURRENCE,
            start.local,
            &zone,
            version,
        )?);
    }
    // Exceptions: EXDATEs, then the RECURRENCE-ID events.
    let instance_tag = if version >= ProtocolVersion::V16_0 {
        INSTANCE_ID
    } else {
        EXCEPTION_START
    };
    let mut exceptions = Vec::new();
    for ex in master.all("EXDATE") {
        for value in ex.value.split(',').take(1000) {
            let m = read_moment_value(ex, value, &cal, &zone)?;
            exceptions.push(container(
                EXCEPTION,
                vec![
                    text_node(DELETED, "1"),
                    text_node(instance_tag, m.utc.to_compact_utc()),
                ],
            ));
        }
    }
    for ex in events
        .iter()
        .filter(|e| e.prop("RECURRENCE-ID").is_some())
        .take(1000)
    {
        let Some(rid) = ex.prop("RECURRENCE-ID") else {
            continue;
        };
        let original = read_moment(rid, &cal, &zone)?;
        let mut node = vec![text_node(instance_tag, original.utc.to_compact_utc())];
        if let Some(s) = ex.prop("DTSTART") {
            let s = read_moment(s, &cal, &zone)?;
            node.push(text_node(START_TIME, s.utc.to_compact_utc()));
            if s.is_date != start.is_date {
                node.push(text_node(ALL_DAY, if s.is_date { "1" } else { "0" }));
            }
        }
        if let Some(e) = ex.prop("DTEND") {
            node.push(text_node(
                END_TIME,
                read_moment(e, &cal, &zone)?.utc.to_compact_utc(),
            ));
        }
        if let Some(stamp) = ex.prop("DTSTAMP").and_then(|s| DateTime::parse(&s.value)) {
            let stamp = text_node(DTSTAMP, stamp.0.to_compact_utc());
            if !data.contains(&stamp) {
                node.push(stamp);
            }
        }
        node.extend(read_details(ex, version, Some(&details))?);
        exceptions.push(container(EXCEPTION, node));
    }
    if !exceptions.is_empty() {
        data.push(container(EXCEPTIONS, exceptions));
    }
    if version >= ProtocolVersion::V16_0 {
        // MS-ASCAL: 16.x clients must not send the organizer or attendees' statuses; the
        // server keeps those (and the time stamp) itself.
        data.retain(|n| n.tag != ORGANIZER_NAME && n.tag != ORGANIZER_EMAIL && n.tag != DTSTAMP);
        strip(&mut data, ATT_STATUS);
    } else {
        // BusyStatus 4 (working elsewhere) exists from 16.0 on; busy is the closest before.
        let working_elsewhere = text_node(BUSY, "4");
        replace(&mut data, &working_elsewhere, &text_node(BUSY, "2"));
    }
    data.retain(|n| n.tag.in_version(version));
    Ok(ItemFromFile { uid, data })
}

const T_SUBJECT: Tag = t("Subject");
const T_IMPORTANCE: Tag = t("Importance");
const T_START: Tag = t("StartDate");
const T_UTC_START: Tag = t("UtcStartDate");
const T_DUE: Tag = t("DueDate");
const T_UTC_DUE: Tag = t("UtcDueDate");
const T_COMPLETE: Tag = t("Complete");
const T_DATE_COMPLETED: Tag = t("DateCompleted");
const T_REMINDER_SET: Tag = t("ReminderSet");
const T_REMINDER_TIME: Tag = t("ReminderTime");
const T_SENSITIVITY: Tag = t("Sensitivity");
const T_CATEGORIES: Tag = t("Categories");
const T_CATEGORY: Tag = t("Category");
const T_BODY: Tag = t("Body");
const T_REC_START: Tag = t("Start");
const T_REGENERATE: Tag = t("Regenerate");
const T_DEAD_OCCUR: Tag = t("DeadOccur");

/// Converts a task's ApplicationData into an iCalendar file with one VTODO.
pub fn task_to_ical(data: &Node, ctx: &FromServer) -> Result<String, FormatError> {
    let utc = TimeWriter {
        tz: None,
        all_day: false,
    };
    let mut v = vec![
        "BEGIN:VTODO".to_string(),
        format!("UID:{}", escape_text(&ctx.uid_or(None))),
        format!("DTSTAMP:{}", fixed_stamp().to_compact_utc()),
    ];
    if let Some(s) = nonempty(data, T_SUBJECT) {
        v.push(format!("SUMMARY:{}", escape_text(s)));
    }
    if let Some(i) = number(data, T_IMPORTANCE) {
        v.push(format!("PRIORITY:{}", [9, 5, 1][i.min(2) as usize]));
    }
    for (utc_tag, local_tag, prop, extra) in [
        (T_UTC_START, T_START, "DTSTART", "X-EAS-STARTDATE"),
        (T_UTC_DUE, T_DUE, "DUE", "X-EAS-DUEDATE"),
    ] {
        let local = eas_time(data, local_tag)?;
        if let Some(u) = eas_time(data, utc_tag)?.or(local) {
            v.push(utc.line(prop, u));
        }
        if let Some(l) = local {
            v.push(format!("{extra}:{}", l.to_ical_local()));
        }
    }
    let complete = number(data, T_COMPLETE) == Some(1);
    v.push(format!(
        "STATUS:{}",
        if complete {
            "COMPLETED"
        } else {
            "NEEDS-ACTION"
        }
    ));
    if let Some(d) = eas_time(data, T_DATE_COMPLETED)? {
        v.push(format!("COMPLETED:{}", d.to_compact_utc()));
    }
    if let Some(s) = nonempty(data, T_SENSITIVITY) {
        v.push(format!("CLASS:{}", class_of(s)));
    }
    if let Some(c) = categories_line(data, T_CATEGORIES) {
        v.push(c);
    }
    if let Some(body) = ctx.body.filter(|b| !b.is_empty()) {
        v.push(format!("DESCRIPTION:{}", escape_text(body)));
    }
    if let Some(rec) = data.child(TASK_RECURRENCE.recurrence) {
        v.push(recurrence_to_rrule(rec, &TASK_RECURRENCE, &utc)?);
        if let Some(s) = eas_time(rec, T_REC_START)? {
            v.push(format!("X-EAS-RECURRENCESTART:{}", s.to_compact_utc()));
        }
        for (tag, prop) in [
            (T_REGENERATE, "X-EAS-REGENERATE"),
            (T_DEAD_OCCUR, "X-EAS-DEADOCCUR"),
        ] {
            if let Some(n) = number(rec, tag) {
                v.push(format!("{prop}:{n}"));
            }
        }
    }
    if number(data, T_REMINDER_SET) == Some(1) {
        if let Some(r) = eas_time(data, T_REMINDER_TIME)? {
            v.extend([
                "BEGIN:VALARM".to_string(),
                "ACTION:DISPLAY".into(),
                "DESCRIPTION:Reminder".into(),
                format!("TRIGGER;VALUE=DATE-TIME:{}", r.to_compact_utc()),
                "END:VALARM".into(),
            ]);
        }
    }
    v.push("END:VTODO".into());
    Ok(calendar_file(v))
}

/// Reads an iCalendar file with one VTODO into task ApplicationData for `version`.
pub fn ical_to_task(text: &str, version: ProtocolVersion) -> Result<ItemFromFile, FormatError> {
    let lines = parse_content_lines(text)?;
    let cal = read_calendar(&lines)?;
    let todo = cal
        .root
        .subs
        .iter()
        .find(|c| c.name == "VTODO")
        .ok_or_else(|| FormatError::new("the file has no VTODO"))?;
    let utc = TimeZone::utc();
    let mut data = Vec::new();
    if let Some(s) = todo.text("SUMMARY")? {
        data.push(text_node(T_SUBJECT, s));
    }
    if let Some(p) = todo
        .prop("PRIORITY")
        .and_then(|p| p.value.trim().parse::<u32>().ok())
    {
        let importance = match p {
            1..=4 => "2",
            5 => "1",
            6..=9 => "0",
            _ => "1",
        };
        data.push(text_node(T_IMPORTANCE, importance));
    }
    let mut start_utc = None;
    for (prop, extra, utc_tag, local_tag) in [
        ("DTSTART", "X-EAS-STARTDATE", T_UTC_START, T_START),
        ("DUE", "X-EAS-DUEDATE", T_UTC_DUE, T_DUE),
    ] {
        let Some(line) = todo.prop(prop) else {
            continue;
        };
        let m = read_moment(line, &cal, &utc)?;
        let local = todo
            .prop(extra)
            .and_then(|l| DateTime::parse(&l.value))
            .map_or(m.local, |d| d.0);
        data.push(text_node(local_tag, local.to_eas_long()));
        data.push(text_node(utc_tag, m.utc.to_eas_long()));
        if prop == "DTSTART" {
            start_utc = Some(m.utc);
        }
    }
    let completed = match todo.prop("COMPLETED") {
        Some(c) => Some(
            DateTime::parse(&c.value)
                .ok_or_else(|| FormatError::new(format!("COMPLETED {:?} is invalid", c.value)))?
                .0,
        ),
        None => None,
    };
    let complete = completed.is_some()
        || todo
            .prop("STATUS")
            .is_some_and(|s| s.value.trim().eq_ignore_ascii_case("COMPLETED"));
    data.push(text_node(T_COMPLETE, if complete { "1" } else { "0" }));
    if complete {
        let when = completed.unwrap_or_else(DateTime::now_utc);
        data.push(text_node(T_DATE_COMPLETED, when.to_eas_long()));
    }
    if let Some(c) = todo.prop("CLASS") {
        data.push(text_node(T_SENSITIVITY, sensitivity_of(&c.value)));
    }
    if let Some(c) = categories_node(todo, T_CATEGORIES, T_CATEGORY) {
        data.push(c);
    }
    if let Some(d) = todo.text("DESCRIPTION")? {
        data.push(body_node(version, &d, T_BODY));
    }
    if let Some(r) = todo.prop("RRULE") {
        let anchor = start_utc.unwrap_or_else(DateTime::now_utc);
        let mut rec = rrule_to_recurrence(&r.value, &TASK_RECURRENCE, anchor, &utc, version)?;
        let rec_start = todo
            .prop("X-EAS-RECURRENCESTART")
            .and_then(|l| DateTime::parse(&l.value))
            .map_or(anchor, |d| d.0);
        if let crate::eas::parse::Value::Children(children) = &mut rec.value {
            children.push(text_node(T_REC_START, rec_start.to_eas_long()));
            for (tag, prop) in [
                (T_REGENERATE, "X-EAS-REGENERATE"),
                (T_DEAD_OCCUR, "X-EAS-DEADOCCUR"),
            ] {
                if let Some(n) = todo
                    .prop(prop)
                    .and_then(|l| l.value.trim().parse::<u32>().ok())
                {
                    children.push(text_node(tag, n.min(1).to_string()));
                }
            }
        }
        data.push(rec);
    }
    let alarm = todo
        .subs
        .iter()
        .filter(|s| s.name == "VALARM")
        .find_map(|a| a.prop("TRIGGER"));
    let reminder = match alarm {
        Some(trigger) => match DateTime::parse(&trigger.value) {
            Some((d, _)) => Some(d),
            None => {
                let secs = parse_duration(&trigger.value).ok_or_else(|| {
                    FormatError::new(format!("TRIGGER {:?} is invalid", trigger.value))
                })?;
                let related_end = trigger
                    .param("RELATED")
                    .is_some_and(|r| r.iter().any(|v| v.eq_ignore_ascii_case("END")));
                let anchor = if related_end {
                    data.iter().find(|n| n.tag == T_UTC_DUE)
                } else {
                    data.iter().find(|n| n.tag == T_UTC_START)
                };
                anchor
                    .and_then(Node::text)
                    .and_then(DateTime::parse)
                    .map(|(d, _)| d.add_minutes(secs / 60))
            }
        },
        None => None,
    };
    data.push(text_node(
        T_REMINDER_SET,
        if reminder.is_some() { "1" } else { "0" },
    ));
    if let Some(r) = reminder {
        data.push(text_node(T_REMINDER_TIME, r.to_eas_long()));
    }
    data.retain(|n| n.tag.in_version(version));
    Ok(ItemFromFile {
        uid: todo.text("UID")?,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_elsewhere_only_from_16() {
        let ics = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261125T090000Z\n\
                   X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE\nEND:VEVENT\nEND:VCALENDAR\n";
        let busy = |v| {
            ical_to_event(ics, v)
                .unwrap()
                .data
                .into_iter()
                .find(|n| n.tag == BUSY)
                .and_then(|n| n.text().map(String::from))
        };
        assert_eq!(busy(ProtocolVersion::V14_1).as_deref(), Some("2"));
        assert_eq!(busy(ProtocolVersion::V16_0).as_deref(), Some("4"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("-PT15M"), Some(-900));
        assert_eq!(parse_duration("P1DT2H"), Some(93_600));
        assert_eq!(parse_duration("-P1W"), Some(-604_800));
        assert_eq!(parse_duration("PT"), None);
        assert_eq!(parse_duration("15M"), None);
        assert_eq!(parse_duration("P99999999999999999999D"), None);
        assert_eq!(parse_duration(&"P99999999W".repeat(100_000)), None);
    }

    #[test]
    fn rrules_map_both_ways() {
        let utc = TimeZone::utc();
        let start = DateTime::parse("20261125T090000").unwrap().0; // a Wednesday
        let v = ProtocolVersion::V14_1;
        let writer = TimeWriter {
            tz: None,
            all_day: false,
        };
        for (rule, expect_type) in [
            ("FREQ=WEEKLY;BYDAY=MO,WE;INTERVAL=2;COUNT=10;WKST=MO", "1"),
            ("FREQ=DAILY;UNTIL=20261231T090000Z", "0"),
            ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", "1"),
            ("FREQ=MONTHLY;BYMONTHDAY=-1", "3"),
            ("FREQ=MONTHLY;BYMONTHDAY=25", "2"),
            ("FREQ=MONTHLY;BYDAY=-1FR", "3"),
            ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=2", "3"),
            ("FREQ=YEARLY;BYMONTH=11;BYMONTHDAY=25", "5"),
            ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", "6"),
        ] {
            let node = rrule_to_recurrence(rule, &CAL_RECURRENCE, start, &utc, v).unwrap();
            assert_eq!(node.child_text(k("Type")), Some(expect_type), "{rule}");
            let back = recurrence_to_rrule(&node, &CAL_RECURRENCE, &writer).unwrap();
            let again = rrule_to_recurrence(&back[6..], &CAL_RECURRENCE, start, &utc, v).unwrap();
            assert_eq!(again, node, "{rule} -> {back}");
        }
        let weekly = rrule_to_recurrence("FREQ=WEEKLY", &CAL_RECURRENCE, start, &utc, v).unwrap();
        assert_eq!(weekly.child_text(k("DayOfWeek")), Some("8"));
        for bad in [
            "FREQ=HOURLY",
            "FREQ=MONTHLY;BYDAY=MO",
            "FREQ=WEEKLY;BYDAY=2MO",
            "FREQ=DAILY;BYDAY=MO;INTERVAL=2",
            "FREQ=MONTHLY;BYSETPOS=2",
            "FREQ=MONTHLY;BYMONTHDAY=1,15",
            "FREQ=MONTHLY;BYMONTHDAY=3;BYDAY=1MO",
            "FREQ=WEEKLY;BYDAY=XX",
            "FREQ=MONTHLY;BYDAY=1MO,2TU",
            "FREQ=DAILY;COUNT=-3",
            "FREQ=DAILY;UNTIL=garbage",
            "FREQ=YEARLY;BYMONTH=13",
            "FREQ=MONTHLY;BYDAY=ÄÖ",
            "nonsense",
        ] {
            assert!(
                rrule_to_recurrence(bad, &CAL_RECURRENCE, start, &utc, v).is_err(),
                "{bad}"
            );
        }
    }
}
