//! Dates, times and time zones for the calendar and task conversions: the EAS date forms
//! (compact `20261125T090000Z`, long `2026-11-25T09:00:00.000Z`), the MS-ASDTYPE time zone
//! blob (a base64 TIME_ZONE_INFORMATION: bias, names, SYSTEMTIME transition rules) and its
//! iCalendar form, a VTIMEZONE with yearly RRULE-based STANDARD/DAYLIGHT components.

use base64::Engine as _;

use super::vcard::{ContentLine, FormatError, escape_text};

/// A calendar date and wall-clock time, with no zone of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl DateTime {
    /// A checked date and time (year 1..=9999, real calendar days, 24-hour clock).
    pub fn new(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Option<Self> {
        let ok = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 61;
        ok.then_some(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second: second.min(59),
        })
    }

    /// A date at midnight.
    pub fn date(year: i32, month: u32, day: u32) -> Option<Self> {
        DateTime::new(year, month, day, 0, 0, 0)
    }

    /// Parses the basic ISO forms iCalendar and EAS use: `YYYYMMDD`, `YYYYMMDDTHHMMSS`, with
    /// an optional trailing `Z`, and the extended `YYYY-MM-DDTHH:MM:SS(.fff)Z`. Returns the
    /// value and whether it was marked UTC.
    pub fn parse(s: &str) -> Option<(DateTime, bool)> {
        let s = s.trim();
        if s.len() > 32 || !s.is_ascii() {
            return None;
        }
        let (s, utc) = match s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
            Some(rest) => (rest, true),
            None => (s, false),
        };
        let compact: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
        let compact = match compact.split_once('.') {
            Some((main, frac)) if frac.bytes().all(|b| b.is_ascii_digit()) => main.to_string(),
            Some(_) => return None,
            None => compact,
        };
        let (date, time) = match compact.split_once(['T', 't']) {
            Some((d, t)) => (d, Some(t)),
            None => (compact.as_str(), None),
        };
        if date.len() != 8 {
            return None;
        }
        let year = digits(&date[0..4])? as i32;
        let month = digits(&date[4..6])?;
        let day = digits(&date[6..8])?;
        let (hour, minute, second) = match time {
            None => (0, 0, 0),
            Some(t) if t.len() == 6 => (digits(&t[0..2])?, digits(&t[2..4])?, digits(&t[4..6])?),
            Some(t) if t.len() == 4 => (digits(&t[0..2])?, digits(&t[2..4])?, 0),
            Some(_) => return None,
        };
        DateTime::new(year, month, day, hour, minute, second).map(|d| (d, utc))
    }

    /// `20261125T090000Z` (EAS compact form, also iCalendar UTC).
    pub fn to_compact_utc(self) -> String {
        format!("{}Z", self.to_ical_local())
    }

    /// `20261125T090000` (iCalendar local or floating time).
    pub fn to_ical_local(self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `20261125` (iCalendar DATE).
    pub fn to_ical_date(self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// `2026-11-25T09:00:00.000Z` (EAS long form, used by tasks, contacts and notes).
    pub fn to_eas_long(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    pub fn is_midnight(self) -> bool {
        self.hour == 0 && self.minute == 0 && self.second == 0
    }

    /// 0 = Sunday … 6 = Saturday.
    pub fn weekday(self) -> u32 {
        (days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) as u32
    }

    /// Seconds since 1970-01-01T00:00:00 of this wall-clock time.
    pub fn timestamp(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour * 3600 + self.minute * 60 + self.second)
    }

    /// The inverse of [`DateTime::timestamp`]; `None` outside years 1..=9999.
    pub fn from_timestamp(ts: i64) -> Option<DateTime> {
        let days = ts.div_euclid(86_400);
        // Years 1 to 9999 lie well within ±4 million days of 1970.
        if days.abs() > 4_000_000 {
            return None;
        }
        let secs = ts.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        DateTime::new(y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
    }

    /// This time moved by `minutes` (unchanged when that leaves years 1 to 9999).
    pub fn add_minutes(self, minutes: i64) -> DateTime {
        minutes
            .checked_mul(60)
            .and_then(|s| self.timestamp().checked_add(s))
            .and_then(DateTime::from_timestamp)
            .unwrap_or(self)
    }

    /// The current UTC time from the system clock.
    pub fn now_utc() -> DateTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        DateTime::from_timestamp(secs).unwrap_or(DateTime {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
        })
    }
}

/// A Windows SYSTEMTIME as used in TIME_ZONE_INFORMATION transition rules. With `year` 0 the
/// rule is yearly: the `day`-th (1–5, 5 = last) `day_of_week` (0 = Sunday) of `month`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SystemTime {
    pub year: u16,
    pub month: u16,
    pub day_of_week: u16,
    pub day: u16,
    pub hour: u16,
    pub minute: u16,
    pub second: u16,
    pub milliseconds: u16,
}

impl SystemTime {
    /// The local date and time this rule names in `year`.
    pub fn in_year(&self, year: i32) -> Option<DateTime> {
        let month = u32::from(self.month);
        if !(1..=12).contains(&month) {
            return None;
        }
        let day = if self.year != 0 {
            u32::from(self.day).min(days_in_month(year, month))
        } else {
            let first = DateTime::date(year, month, 1)?.weekday();
            let wanted = u32::from(self.day_of_week % 7);
            let mut day = 1 + (wanted + 7 - first) % 7 + 7 * (u32::from(self.day.clamp(1, 5)) - 1);
            while day > days_in_month(year, month) {
                day -= 7;
            }
            day
        };
        DateTime::new(
            year,
            month,
            day,
            u32::from(self.hour.min(23)),
            u32::from(self.minute.min(59)),
            u32::from(self.second.min(59)),
        )
    }
}

/// The size of the MS-ASDTYPE time zone blob.
pub const TIME_ZONE_BLOB_LEN: usize = 172;

/// A time zone as EAS carries it (MS-ASDTYPE 2.7.4, the TIME_ZONE_INFORMATION layout).
/// Offsets are Windows "biases": UTC = local time + bias (minutes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimeZone {
    pub bias: i32,
    pub standard_name: String,
    pub standard_date: SystemTime,
    pub standard_bias: i32,
    pub daylight_name: String,
    pub daylight_date: SystemTime,
    pub daylight_bias: i32,
}

fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_name(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

fn read_system_time(b: &[u8]) -> SystemTime {
    let w = |i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    SystemTime {
        year: w(0),
        month: w(1),
        day_of_week: w(2),
        day: w(3),
        hour: w(4),
        minute: w(5),
        second: w(6),
        milliseconds: w(7),
    }
}

fn write_name(out: &mut Vec<u8>, name: &str) {
    let mut units: Vec<u16> = name.encode_utf16().take(31).collect();
    // Do not cut a surrogate pair in half.
    if units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
        units.pop();
    }
    units.resize(32, 0);
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
}

fn write_system_time(out: &mut Vec<u8>, t: &SystemTime) {
    for w in [
        t.year,
        t.month,
        t.day_of_week,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.milliseconds,
    ] {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// `+0100` / `-0530` for an offset east of UTC in minutes.
fn format_offset(minutes_east: i32) -> String {
    let sign = if minutes_east < 0 { '-' } else { '+' };
    let m = minutes_east.unsigned_abs();
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if !rest.is_ascii() || (rest.len() != 4 && rest.len() != 6) {
        return None;
    }
    let h = digits(&rest[0..2])? as i32;
    let m = digits(&rest[2..4])? as i32;
    (h < 24 && m < 60).then_some(sign * (h * 60 + m))
}

const WEEKDAYS: [&str; 7] = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"];

/// The weekday code (`SU`…`SA`) of 0 = Sunday … 6 = Saturday.
pub fn weekday_code(day: u32) -> &'static str {
    WEEKDAYS[(day % 7) as usize]
}

/// 0 = Sunday … 6 = Saturday for `SU`…`SA`.
pub fn weekday_from_code(code: &str) -> Option<u32> {
    WEEKDAYS
        .iter()
        .position(|d| d.eq_ignore_ascii_case(code))
        .map(|p| p as u32)
}

impl TimeZone {
    /// UTC itself (bias 0, no daylight saving).
    pub fn utc() -> TimeZone {
        TimeZone {
            standard_name: "UTC".into(),
            ..TimeZone::default()
        }
    }

    /// Decodes the 172-byte blob.
    pub fn from_bytes(b: &[u8]) -> Result<TimeZone, FormatError> {
        if b.len() != TIME_ZONE_BLOB_LEN {
            return Err(FormatError::new(format!(
                "the time zone is {} bytes long, expected {TIME_ZONE_BLOB_LEN}",
                b.len()
            )));
        }
        let tz = TimeZone {
            bias: read_i32(b, 0),
            standard_name: read_name(&b[4..68]),
            standard_date: read_system_time(&b[68..84]),
            standard_bias: read_i32(b, 84),
            daylight_name: read_name(&b[88..152]),
            daylight_date: read_system_time(&b[152..168]),
            daylight_bias: read_i32(b, 168),
        };
        // Real offsets lie within ±14 hours; anything else is corrupt.
        let limit = 24 * 60;
        if tz.bias.abs() > limit || tz.standard_bias.abs() > limit || tz.daylight_bias.abs() > limit
        {
            return Err(FormatError::new("the time zone's offsets are out of range"));
        }
        if tz.standard_date.month > 12 || tz.daylight_date.month > 12 {
            return Err(FormatError::new(
                "the time zone's transition month is out of range",
            ));
        }
        Ok(tz)
    }

    /// Decodes the base64 form of `calendar:Timezone`.
    pub fn from_base64(s: &str) -> Result<TimeZone, FormatError> {
        let s = s.trim();
        if s.len() > 4 * TIME_ZONE_BLOB_LEN {
            return Err(FormatError::new("the time zone value is too long"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| FormatError::new(format!("the time zone is not valid base64: {e}")))?;
        TimeZone::from_bytes(&bytes)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TIME_ZONE_BLOB_LEN);
        out.extend_from_slice(&self.bias.to_le_bytes());
        write_name(&mut out, &self.standard_name);
        write_system_time(&mut out, &self.standard_date);
        out.extend_from_slice(&self.standard_bias.to_le_bytes());
        write_name(&mut out, &self.daylight_name);
        write_system_time(&mut out, &self.daylight_date);
        out.extend_from_slice(&self.daylight_bias.to_le_bytes());
        out
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_bytes())
    }

    /// Whether the zone is UTC all year: no offset and no daylight saving.
    pub fn is_utc(&self) -> bool {
        self.bias == 0 && self.standard_bias == 0 && !self.has_dst()
    }

    /// Whether the zone observes daylight saving time.
    pub fn has_dst(&self) -> bool {
        self.standard_date.month != 0 && self.daylight_date.month != 0
    }

    /// The TZID the zone gets in iCalendar files: its standard name, or a name made from
    /// its offset when the server sent none.
    pub fn tzid(&self) -> String {
        let name = self.standard_name.trim();
        if !name.is_empty() {
            return name.to_string();
        }
        let offset = format_offset(-self.bias);
        format!("UTC{offset}")
    }

    /// Minutes east of UTC (`local = utc + offset`) at the UTC time `utc`.
    pub fn offset_at_utc(&self, utc: DateTime) -> i32 {
        let standard = -(self.bias + self.standard_bias);
        let daylight = -(self.bias + self.daylight_bias);
        if !self.has_dst() {
            return standard;
        }
        let (Some(dst_start), Some(dst_end)) = (
            self.daylight_date.in_year(utc.year),
            self.standard_date.in_year(utc.year),
        ) else {
            return standard;
        };
        // Each transition happens at a local time of the offset in force before it.
        let start = dst_start.add_minutes(-i64::from(standard));
        let end = dst_end.add_minutes(-i64::from(daylight));
        let in_dst = if start < end {
            utc >= start && utc < end
        } else {
            utc >= start || utc < end
        };
        if in_dst { daylight } else { standard }
    }

    pub fn utc_to_local(&self, utc: DateTime) -> DateTime {
        utc.add_minutes(i64::from(self.offset_at_utc(utc)))
    }

    /// The UTC time of local time `local` (a time skipped by a transition is taken with the
    /// standard offset; a repeated one resolves to its first occurrence).
    pub fn local_to_utc(&self, local: DateTime) -> DateTime {
        let standard = -(self.bias + self.standard_bias);
        let daylight = -(self.bias + self.daylight_bias);
        for offset in [daylight, standard] {
            let utc = local.add_minutes(-i64::from(offset));
            if self.offset_at_utc(utc) == offset {
                return utc;
            }
        }
        local.add_minutes(-i64::from(standard))
    }

    /// The VTIMEZONE component (unfolded lines, no line ends), with TZID [`TimeZone::tzid`].
    pub fn to_vtimezone(&self) -> Vec<String> {
        let standard = -(self.bias + self.standard_bias);
        let daylight = -(self.bias + self.daylight_bias);
        let mut lines = vec![
            "BEGIN:VTIMEZONE".to_string(),
            format!("TZID:{}", escape_text(&self.tzid())),
        ];
        let mut component =
            |kind: &str, rule: Option<&SystemTime>, from: i32, to: i32, name: &str| {
                lines.push(format!("BEGIN:{kind}"));
                let start = rule.and_then(|r| r.in_year(1970)).unwrap_or(DateTime {
                    year: 1970,
                    month: 1,
                    day: 1,
                    hour: 0,
                    minute: 0,
                    second: 0,
                });
                lines.push(format!("DTSTART:{}", start.to_ical_local()));
                lines.push(format!("TZOFFSETFROM:{}", format_offset(from)));
                lines.push(format!("TZOFFSETTO:{}", format_offset(to)));
                if let Some(r) = rule {
                    let week = if r.day >= 5 {
                        -1
                    } else {
                        i32::from(r.day.max(1))
                    };
                    lines.push(format!(
                        "RRULE:FREQ=YEARLY;BYDAY={week}{};BYMONTH={}",
                        weekday_code(u32::from(r.day_of_week)),
                        r.month
                    ));
                }
                if !name.trim().is_empty() {
                    lines.push(format!("TZNAME:{}", escape_text(name)));
                }
                lines.push(format!("END:{kind}"));
            };
        if self.has_dst() {
            component(
                "STANDARD",
                Some(&self.standard_date),
                daylight,
                standard,
                &self.standard_name,
            );
            component(
                "DAYLIGHT",
                Some(&self.daylight_date),
                standard,
                daylight,
                &self.daylight_name,
            );
        } else {
            component("STANDARD", None, standard, standard, &self.standard_name);
        }
        lines.push("END:VTIMEZONE".into());
        lines
    }

    /// Reads a VTIMEZONE from its content lines (from `BEGIN:VTIMEZONE` to its `END`).
    /// Zones with yearly `BYDAY`/`BYMONTH` rules, or no daylight saving, are understood; for
    /// zones with several historical rules the latest-starting of each kind is used.
    pub fn from_vtimezone(lines: &[ContentLine]) -> Result<TimeZone, FormatError> {
        #[derive(Default)]
        struct Part {
            start: Option<DateTime>,
            offset_to: Option<i32>,
            rule: Option<SystemTime>,
            name: String,
        }
        let mut tzid = String::new();
        let mut standard: Option<Part> = None;
        let mut daylight: Option<Part> = None;
        let mut current: Option<(bool, Part)> = None;
        for line in lines {
            match (line.name.as_str(), line.value.to_ascii_uppercase().as_str()) {
                ("BEGIN", "STANDARD") => current = Some((false, Part::default())),
                ("BEGIN", "DAYLIGHT") => current = Some((true, Part::default())),
                ("END", "STANDARD") | ("END", "DAYLIGHT") => {
                    if let Some((is_daylight, part)) = current.take() {
                        let slot = if is_daylight {
                            &mut daylight
                        } else {
                            &mut standard
                        };
                        // Keep the newest rule of each kind.
                        if slot.as_ref().is_none_or(|old| old.start <= part.start) {
                            *slot = Some(part);
                        }
                    }
                }
                ("TZID", _) if current.is_none() => tzid = line.text(),
                _ => {
                    let Some((_, part)) = current.as_mut() else {
                        continue;
                    };
                    match line.name.as_str() {
                        "DTSTART" => part.start = DateTime::parse(&line.value).map(|d| d.0),
                        "TZOFFSETTO" => part.offset_to = parse_offset(&line.value),
                        "TZNAME" => part.name = line.text(),
                        "RRULE" => part.rule = yearly_rule(&line.value, part.start),
                        _ => {}
                    }
                }
            }
        }
        let standard = standard.or_else(|| daylight.take()).ok_or_else(|| {
            FormatError::new(format!("the time zone {tzid:?} has no STANDARD part"))
        })?;
        let standard_offset = standard.offset_to.ok_or_else(|| {
            FormatError::new(format!("the time zone {tzid:?} has no valid TZOFFSETTO"))
        })?;
        let mut tz = TimeZone {
            bias: -standard_offset,
            standard_name: if tzid.is_empty() {
                standard.name.clone()
            } else {
                tzid.clone()
            },
            ..TimeZone::default()
        };
        if let Some(d) = daylight {
            if let (Some(std_rule), Some(dst_rule), Some(dst_offset)) =
                (standard.rule, d.rule, d.offset_to)
            {
                tz.standard_date = std_rule;
                tz.daylight_date = dst_rule;
                tz.daylight_bias = standard_offset - dst_offset;
                tz.daylight_name = if d.name.is_empty() { tzid } else { d.name };
            }
        }
        Ok(tz)
    }
}

/// A SYSTEMTIME rule from `FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3` and the DTSTART's time of day.
fn yearly_rule(rrule: &str, start: Option<DateTime>) -> Option<SystemTime> {
    let mut month = None;
    let mut byday = None;
    let mut yearly = false;
    for part in rrule.split(';') {
        let (k, v) = part.split_once('=')?;
        match k.to_ascii_uppercase().as_str() {
            "FREQ" => yearly = v.eq_ignore_ascii_case("YEARLY"),
            "BYMONTH" => month = digits(v).filter(|m| (1..=12).contains(m)),
            "BYDAY" => byday = Some(v.to_string()),
            _ => {}
        }
    }
    let byday = byday?;
    if !yearly || byday.contains(',') || byday.len() < 3 || !byday.is_ascii() {
        return None;
    }
    let (week, day) = byday.split_at(byday.len() - 2);
    let week: i32 = week.trim_start_matches('+').parse().ok()?;
    let day = weekday_from_code(day)?;
    let week = match week {
        1..=4 => week as u16,
        -1 | 5 => 5,
        _ => return None,
    };
    let start = start.unwrap_or(DateTime {
        year: 1970,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
    });
    Some(SystemTime {
        year: 0,
        month: month? as u16,
        day_of_week: day as u16,
        day: week,
        hour: start.hour as u16,
        minute: start.minute as u16,
        second: start.second as u16,
        milliseconds: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::vcard::parse_content_lines;

    /// W. Europe Standard Time as Exchange sends it.
    pub(crate) fn west_europe() -> TimeZone {
        TimeZone {
            bias: -60,
            standard_name: "W. Europe Standard Time".into(),
            standard_date: SystemTime {
                month: 10,
                day: 5,
                hour: 3,
                ..SystemTime::default()
            },
            standard_bias: 0,
            daylight_name: "W. Europe Daylight Time".into(),
            daylight_date: SystemTime {
                month: 3,
                day: 5,
                hour: 2,
                ..SystemTime::default()
            },
            daylight_bias: -60,
        }
    }

    fn dt(s: &str) -> DateTime {
        DateTime::parse(s).unwrap().0
    }

    #[test]
    fn dates_parse_and_format() {
        let (d, utc) = DateTime::parse("20261125T090000Z").unwrap();
        assert!(utc);
        assert_eq!(d.to_eas_long(), "2026-11-25T09:00:00.000Z");
        let (d2, utc2) = DateTime::parse("2026-11-25T09:00:00.000Z").unwrap();
        assert_eq!((d2, utc2), (d, true));
        assert_eq!(DateTime::parse("20260229").map(|d| d.0), None);
        assert_eq!(
            DateTime::parse("20240229").unwrap().0.to_ical_date(),
            "20240229"
        );
        for bad in [
            "",
            "2026",
            "20261325T000000Z",
            "20261125T250000",
            "2026112xT000000",
            "ÄÖÜ",
        ] {
            assert_eq!(DateTime::parse(bad), None, "{bad}");
        }
        assert_eq!(dt("20261125T000000").weekday(), 3); // a Wednesday
        assert_eq!(dt("19700101T000000").timestamp(), 0);
        assert_eq!(dt("20261231T233000").add_minutes(60), dt("20270101T003000"));
        assert_eq!(dt("99991231T233000").add_minutes(60), dt("99991231T233000"));
        assert_eq!(
            dt("20260101T000000").add_minutes(i64::MAX),
            dt("20260101T000000")
        );
        assert_eq!(DateTime::from_timestamp(i64::MIN), None);
        assert_eq!(parse_offset("+0ä0"), None);
        assert_eq!(parse_offset("-0530"), Some(-330));
        assert_eq!(yearly_rule("FREQ=YEARLY;BYDAY=1ÄÖ;BYMONTH=3", None), None);
    }

    #[test]
    fn west_europe_blob_round_trip() {
        let tz = west_europe();
        let b64 = tz.to_base64();
        assert_eq!(tz.to_bytes().len(), TIME_ZONE_BLOB_LEN);
        assert_eq!(TimeZone::from_base64(&b64).unwrap(), tz);
        // Last Sunday of March 2026 is the 29th, of October the 25th.
        assert_eq!(tz.daylight_date.in_year(2026), Some(dt("20260329T020000")));
        assert_eq!(tz.standard_date.in_year(2026), Some(dt("20261025T030000")));
        assert_eq!(tz.offset_at_utc(dt("20260329T005959Z")), 60);
        assert_eq!(tz.offset_at_utc(dt("20260329T010000Z")), 120);
        assert_eq!(tz.offset_at_utc(dt("20261025T005959Z")), 120);
        assert_eq!(tz.offset_at_utc(dt("20261025T010000Z")), 60);
        assert_eq!(
            tz.utc_to_local(dt("20261125T090000Z")),
            dt("20261125T100000")
        );
        assert_eq!(
            tz.local_to_utc(dt("20260701T100000")),
            dt("20260701T080000")
        );
    }

    #[test]
    fn west_europe_vtimezone() {
        let lines = west_europe().to_vtimezone();
        let text = lines.join("\r\n");
        assert!(text.contains("TZID:W. Europe Standard Time"), "{text}");
        assert!(
            text.contains("RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3"),
            "{text}"
        );
        assert!(
            text.contains("RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10"),
            "{text}"
        );
        assert!(text.contains("DTSTART:19701025T030000"), "{text}");
        assert!(
            text.contains("TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200"),
            "{text}"
        );
        let parsed = parse_content_lines(&text).unwrap();
        assert_eq!(TimeZone::from_vtimezone(&parsed).unwrap(), west_europe());
    }

    #[test]
    fn foreign_vtimezone_and_southern_zone() {
        let text = "BEGIN:VTIMEZONE\nTZID:Australia/Sydney\nBEGIN:STANDARD\n\
            DTSTART:20080406T030000\nRRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\n\
            TZOFFSETFROM:+1100\nTZOFFSETTO:+1000\nTZNAME:AEST\nEND:STANDARD\n\
            BEGIN:DAYLIGHT\nDTSTART:20081005T020000\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\n\
            TZOFFSETFROM:+1000\nTZOFFSETTO:+1100\nTZNAME:AEDT\nEND:DAYLIGHT\nEND:VTIMEZONE\n";
        let tz = TimeZone::from_vtimezone(&parse_content_lines(text).unwrap()).unwrap();
        assert_eq!(tz.bias, -600);
        assert_eq!(tz.daylight_bias, -60);
        assert_eq!(tz.standard_name, "Australia/Sydney");
        assert_eq!((tz.daylight_date.month, tz.daylight_date.day), (10, 1));
        assert_eq!(tz.offset_at_utc(dt("20260115T000000Z")), 660);
        assert_eq!(tz.offset_at_utc(dt("20260715T000000Z")), 600);
        let back = TimeZone::from_base64(&tz.to_base64()).unwrap();
        assert_eq!(back, tz);
    }

    #[test]
    fn bad_blobs_are_errors() {
        assert!(TimeZone::from_base64("not base64!").is_err());
        assert!(TimeZone::from_base64("AAAA").is_err());
        assert!(TimeZone::from_base64(&"A".repeat(10_000)).is_err());
        let mut bytes = west_europe().to_bytes();
        bytes[0..4].copy_from_slice(&100_000i32.to_le_bytes());
        assert!(TimeZone::from_bytes(&bytes).is_err());
        // Any 172 bytes with sane offsets decode without panicking and compute offsets.
        let mut bytes = vec![0xFFu8; TIME_ZONE_BLOB_LEN];
        bytes[0..4].copy_from_slice(&0i32.to_le_bytes());
        bytes[84..88].copy_from_slice(&0i32.to_le_bytes());
        bytes[168..172].copy_from_slice(&0i32.to_le_bytes());
        assert!(TimeZone::from_bytes(&bytes).is_err());
        bytes[68..84].fill(0);
        bytes[152..168].fill(0);
        let tz = TimeZone::from_bytes(&bytes).unwrap();
        assert_eq!(tz.offset_at_utc(dt("20260101T000000Z")), 0);
    }
}
