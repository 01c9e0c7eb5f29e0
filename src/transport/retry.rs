//! When to try again: the `Retry-After` header (delta-seconds or HTTP-date, RFC 9110 10.2.3)
//! and a capped, jittered exponential [`Backoff`]. Everything here is a pure function of its
//! inputs (attempt, current time, seed), so it is tested without clocks or sleeping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A parsed `Retry-After` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 120`.
    Delay(Duration),
    /// `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`.
    At(SystemTime),
}

impl RetryAfter {
    /// The wait this asks for, measured from `now`; a date in the past gives zero.
    pub fn delay_from(self, now: SystemTime) -> Duration {
        match self {
            RetryAfter::Delay(d) => d,
            RetryAfter::At(t) => t.duration_since(now).unwrap_or(Duration::ZERO),
        }
    }
}

impl core::fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RetryAfter::Delay(d) => write!(f, "{} s", d.as_secs()),
            RetryAfter::At(t) => match t.duration_since(UNIX_EPOCH) {
                Ok(d) => write!(f, "unix time {}", d.as_secs()),
                Err(_) => f.write_str("a time before 1970"),
            },
        }
    }
}

/// Longest header value looked at; anything longer is not a valid Retry-After.
const MAX_HEADER_LEN: usize = 64;

/// Parses a `Retry-After` header value. Returns `None` for anything that is neither a
/// delta-seconds nor an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms).
/// Never panics; huge delta-seconds saturate.
pub fn parse_retry_after(value: &str) -> Option<RetryAfter> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_HEADER_LEN {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.bytes().fold(0u64, |acc, b| {
            acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
        return Some(RetryAfter::Delay(Duration::from_secs(secs)));
    }
    parse_http_date(value).map(|secs| RetryAfter::At(UNIX_EPOCH + Duration::from_secs(secs)))
}

/// Seconds since the Unix epoch of an HTTP-date, or `None`.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let words: Vec<&str> = value.split_ascii_whitespace().collect();
    let (day, month, year, time) = match words.as_slice() {
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        [wd, d, m, y, t, "GMT"] if wd.ends_with(',') => (*d, *m, *y, *t),
        // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
        [wd, dmy, t, "GMT"] if wd.ends_with(',') => {
            let mut parts = dmy.split('-');
            let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || y.len() != 2 {
                return None;
            }
            // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
            let yy: u64 = number(y)?;
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            return assemble(number(d)?, month_number(m)?, year, t);
        }
        // asctime: "Sun Nov  6 08:49:37 1994"
        [_wd, m, d, t, y] => (*d, *m, *y, *t),
        _ => return None,
    };
    if year.len() != 4 {
        return None;
    }
    assemble(number(day)?, month_number(month)?, number(year)?, time)
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_number(m: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|name| name.eq_ignore_ascii_case(m))
        .map(|i| i as u64 + 1)
}

fn assemble(day: u64, month: u64, year: u64, time: &str) -> Option<u64> {
    let mut hms = time.split(':');
    let (h, m, s) = (
        number(hms.next()?)?,
        number(hms.next()?)?,
        number(hms.next()?)?,
    );
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    if !(1970..=9999).contains(&year) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a date from 1970 on (Howard Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A capped, jittered exponential back-off that also honours the server's Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry (attempt 0), before jitter.
    pub base: Duration,
    /// The exponential part never exceeds this.
    pub cap: Duration,
    /// A server's Retry-After is honoured up to this; a longer request is cut to it.
    pub retry_after_ceiling: Duration,
    /// No delay is ever shorter (a Retry-After in the past or of 0 waits this long).
    pub min_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(15 * 60),
            retry_after_ceiling: Duration::from_secs(60 * 60),
            min_delay: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 = first retry). With a server Retry-After
    /// that value is used, clamped to `[min_delay, retry_after_ceiling]`; without one the delay
    /// is drawn from `[e/2, e]` where `e = min(base * 2^attempt, cap)`, deterministically from
    /// `seed` and `attempt`. Never zero.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<RetryAfter>,
        now: SystemTime,
        seed: u64,
    ) -> Duration {
        let floor = self.min_delay.max(Duration::from_millis(1));
        if let Some(server) = retry_after {
            let ceiling = self.retry_after_ceiling.max(floor);
            return server.delay_from(now).clamp(floor, ceiling);
        }
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        let exp = self.base.saturating_mul(factor).min(self.cap);
        let half = exp / 2;
        let span_ms = u64::try_from((exp - half).as_millis()).unwrap_or(u64::MAX);
        let jitter_ms = if span_ms == 0 {
            0
        } else {
            splitmix64(seed ^ u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                % (span_ms + 1)
        };
        (half + Duration::from_millis(jitter_ms)).max(floor)
    }
}

/// A well-mixed 64-bit hash (SplitMix64 finaliser) for jitter.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T_1994: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    fn at(secs: u64) -> RetryAfter {
        RetryAfter::At(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(
            parse_retry_after("120"),
            Some(RetryAfter::Delay(Duration::from_secs(120)))
        );
        assert_eq!(
            parse_retry_after(" 0 "),
            Some(RetryAfter::Delay(Duration::ZERO))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999999"),
            Some(RetryAfter::Delay(Duration::from_secs(u64::MAX)))
        );
    }

    #[test]
    fn the_three_http_date_forms() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(at(T_1994))
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(at(T_1994))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:37 1994"),
            Some(at(T_1994))
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
    }

    #[test]
    fn garbage_is_refused_not_panicking() {
        for bad in [
            "",
            "-5",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 99999 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37:12 GMT",
            "Sun, ¹6 Nov 1994 08:49:37 GMT",
            "Sun,,,",
        ] {
            assert_eq!(parse_retry_after(bad), None, "{bad:?}");
        }
        let long = "1".repeat(1000);
        assert_eq!(parse_retry_after(&long), None);
        // Every prefix of a valid date: no panic.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        for end in 0..date.len() {
            let _ = parse_retry_after(&date[..end]);
        }
    }

    #[test]
    fn backoff_grows_jittered_and_capped() {
        let b = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
            retry_after_ceiling: Duration::from_secs(300),
            min_delay: Duration::from_secs(1),
        };
        let now = UNIX_EPOCH;
        for seed in 0..50u64 {
            for attempt in 0..40u32 {
                let exp = Duration::from_secs(2)
                    .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
                    .min(Duration::from_secs(60));
                let d = b.delay(attempt, None, now, seed);
                assert!(
                    d >= exp / 2 && d <= exp,
                    "attempt {attempt}: {d:?} vs {exp:?}"
                );
            }
        }
        // Deterministic for the same inputs, different across seeds.
        assert_eq!(b.delay(3, None, now, 7), b.delay(3, None, now, 7));
        let distinct: std::collections::HashSet<_> =
            (0..20).map(|s| b.delay(5, None, now, s)).collect();
        assert!(distinct.len() > 10);
    }

    #[test]
    fn retry_after_is_honoured_capped_and_never_zero() {
        let b = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
            retry_after_ceiling: Duration::from_secs(300),
            min_delay: Duration::from_secs(1),
        };
        let now = UNIX_EPOCH + Duration::from_secs(T_1994);
        let delay = |r| b.delay(0, Some(r), now, 1);
        assert_eq!(
            delay(RetryAfter::Delay(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            delay(RetryAfter::Delay(Duration::from_secs(10_000))),
            Duration::from_secs(300)
        );
        assert_eq!(
            delay(RetryAfter::Delay(Duration::ZERO)),
            Duration::from_secs(1)
        );
        assert_eq!(delay(at(T_1994 + 45)), Duration::from_secs(45));
        // In the past: the minimum delay, not zero.
        assert_eq!(delay(at(T_1994 - 3600)), Duration::from_secs(1));
        // Even a zero-configured minimum never gives zero.
        let zero = Backoff {
            base: Duration::ZERO,
            min_delay: Duration::ZERO,
            ..b
        };
        assert!(zero.delay(0, None, now, 0) > Duration::ZERO);
        assert!(zero.delay(0, Some(at(0)), now, 0) > Duration::ZERO);
    }
}
