//! `time(FMT)` and `strftime(FMT, NSECS)` as bpftrace 0.23 prints them:
//! C `strftime` (glibc, C locale) of the local time, `time()` of the time
//! its record is printed, `strftime()` of a timestamp taken in the probe.
//!
//! bpftrace (`src/bpftrace.cpp`, `resolve_timestamp` and the `time` event):
//! - `time()` without a format is `time("%H:%M:%S\n")`; its text is cut to
//!   nothing when it would not fit in 64 bytes;
//! - a `strftime()` timestamp is boot-clock nanoseconds (`nsecs`), made
//!   wall-clock time by adding the realtime at which that clock read 0;
//!   `%f` in its format is first replaced by the 6-digit microseconds;
//!   text that would not fit in 1024 bytes, or none at all, is `(?)`.
//!
//! What the machine knows (the time now, the time zone) comes through
//! [`Clock`]: this crate makes no system calls.

use std::fmt::Write as _;

/// A moment in local time, as `localtime_r` fills a `struct tm`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalTime {
    pub year: i32,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 0 (Sunday) to 6.
    pub weekday: u8,
    /// 0 to 365.
    pub year_day: u16,
    /// Seconds east of UTC.
    pub utc_offset: i32,
    /// The zone's abbreviation (`CET`, `UTC`).
    pub zone: String,
    /// Seconds since the epoch (`%s`).
    pub unix: i64,
}

impl LocalTime {
    /// `unix` seconds in UTC.
    pub fn utc(unix: i64) -> LocalTime {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        // Howard Hinnant's days-to-civil.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const BEFORE: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let year_day =
            BEFORE[usize::from(month - 1)] + u16::from(day) + u16::from(leap && month > 2) - 1;
        LocalTime {
            year,
            month,
            day,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
            weekday: (days + 4).rem_euclid(7) as u8,
            year_day,
            utc_offset: 0,
            zone: "UTC".into(),
            unix,
        }
    }
}

/// What the machine says about time.
pub trait Clock: std::fmt::Debug {
    /// `CLOCK_REALTIME`: seconds since the epoch.
    fn now(&self) -> i64;
    /// The clock the programs' `nsecs` reads, now.
    fn nsecs(&self) -> u64;
    /// Nanoseconds since the epoch at which `nsecs` read 0.
    fn nsecs_epoch(&self) -> i128;
    /// `unix` seconds in the local time zone.
    fn local(&self, unix: i64) -> LocalTime;
}

/// A clock that stands still, in UTC: tests, and output that shows no time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedClock {
    pub now: i64,
    pub nsecs: u64,
    pub nsecs_epoch: i128,
}

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.now
    }
    fn nsecs(&self) -> u64 {
        self.nsecs
    }
    fn nsecs_epoch(&self) -> i128 {
        self.nsecs_epoch
    }
    fn local(&self, unix: i64) -> LocalTime {
        LocalTime::utc(unix)
    }
}

/// `time()`'s format when none is given.
pub const DEFAULT_TIME_FORMAT: &str = "%H:%M:%S\n";

/// bpftrace's buffer for `time()`'s text.
const TIME_BUFFER: usize = 64;
/// bpftrace's buffer for `strftime()`'s text (its string size).
const STRFTIME_BUFFER: usize = crate::format::printf::MAX_STRLEN;

/// What `time(format)` prints now.
pub fn time(format: &str, clock: &dyn Clock) -> Vec<u8> {
    let text = strftime(format, &clock.local(clock.now()));
    if text.len() >= TIME_BUFFER {
        return Vec::new();
    }
    text
}

/// What `strftime(format, nsecs)` prints for a timestamp `nsecs`.
pub fn timestamp(format: &str, nsecs: u64, clock: &dyn Clock) -> Vec<u8> {
    let total = clock.nsecs_epoch() + i128::from(nsecs);
    let unix = total.div_euclid(1_000_000_000) as i64;
    let micros = total.rem_euclid(1_000_000_000) / 1000;
    let format = format.replace("%f", &format!("{micros:06}"));
    let text = strftime(&format, &clock.local(unix));
    if text.is_empty() || text.len() >= STRFTIME_BUFFER {
        return b"(?)".to_vec();
    }
    text
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// C `strftime` of `t` in the C locale, with glibc's flags (`_` pad with
/// spaces, `-` no padding, `0` zeros, `^` upper case) and widths. A
/// conversion glibc does not know is copied as written.
pub fn strftime(format: &str, t: &LocalTime) -> Vec<u8> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let spec = &rest[at + 1..];
        let flag_len = spec
            .find(|c| !matches!(c, '_' | '-' | '0' | '^' | '#'))
            .unwrap_or(spec.len());
        let flags = &spec[..flag_len];
        let after_flags = &spec[flag_len..];
        let width_len = after_flags
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_flags.len());
        let width: usize = after_flags[..width_len].parse().unwrap_or(0);
        let mut conv = after_flags[width_len..].chars();
        // `E` and `O` select alternative forms the C locale does not have.
        let mut c = conv.next();
        let mut modifier_len = 0;
        if matches!(c, Some('E' | 'O')) {
            modifier_len = 1;
            c = conv.next();
        }
        let consumed = 1 + flag_len + width_len + modifier_len + c.map_or(0, char::len_utf8);
        let Some(c) = c else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        match convert(c, t) {
            Some(field) => pad(&mut out, field, flags, width),
            None => out.push_str(&rest[at..at + consumed]),
        }
        rest = &rest[at + consumed..];
    }
    out.push_str(rest);
    out.into_bytes()
}

/// A conversion's text: numbers with their default padding.
enum Field {
    /// Digits, zero-padded to `width` unless a flag says otherwise; `space`
    /// pads with spaces by default (`%e`, `%k`, `%l`).
    Number {
        value: i64,
        width: usize,
        space: bool,
    },
    Text(String),
}

fn convert(c: char, t: &LocalTime) -> Option<Field> {
    let num = |value: i64, width| Field::Number {
        value,
        width,
        space: false,
    };
    let spaced = |value: i64| Field::Number {
        value,
        width: 2,
        space: true,
    };
    let text = |s: &str| Field::Text(s.to_string());
    let composite = |f: &str| Field::Text(String::from_utf8_lossy(&strftime(f, t)).into_owned());
    let hour12 = match t.hour % 12 {
        0 => 12,
        h => h,
    };
    let (iso_year, iso_week) = iso_week(t);
    Some(match c {
        'a' => text(&DAYS[usize::from(t.weekday % 7)][..3]),
        'A' => text(DAYS[usize::from(t.weekday % 7)]),
        'b' | 'h' => text(&MONTHS[usize::from((t.month + 11) % 12)][..3]),
        'B' => text(MONTHS[usize::from((t.month + 11) % 12)]),
        'c' => composite("%a %b %e %H:%M:%S %Y"),
        'C' => num(i64::from(t.year).div_euclid(100), 2),
        'd' => num(t.day.into(), 2),
        'D' => composite("%m/%d/%y"),
        'e' => spaced(t.day.into()),
        'F' => composite("%Y-%m-%d"),
        'g' => num(iso_year.rem_euclid(100), 2),
        'G' => num(iso_year, 1),
        'H' => num(t.hour.into(), 2),
        'I' => num(hour12.into(), 2),
        'j' => num(i64::from(t.year_day) + 1, 3),
        'k' => spaced(t.hour.into()),
        'l' => spaced(hour12.into()),
        'm' => num(t.month.into(), 2),
        'M' => num(t.minute.into(), 2),
        'n' => text("\n"),
        'p' => text(if t.hour < 12 { "AM" } else { "PM" }),
        'P' => text(if t.hour < 12 { "am" } else { "pm" }),
        'r' => composite("%I:%M:%S %p"),
        'R' => composite("%H:%M"),
        's' => num(t.unix, 1),
        'S' => num(t.second.into(), 2),
        't' => text("\t"),
        'T' => composite("%H:%M:%S"),
        'u' => num(if t.weekday == 0 { 7 } else { t.weekday.into() }, 1),
        'U' => num((i64::from(t.year_day) + 7 - i64::from(t.weekday)) / 7, 2),
        'V' => num(iso_week, 2),
        'w' => num(t.weekday.into(), 1),
        'W' => num(
            (i64::from(t.year_day) + 7 - (i64::from(t.weekday) + 6) % 7) / 7,
            2,
        ),
        'x' => composite("%m/%d/%y"),
        'X' => composite("%H:%M:%S"),
        'y' => num(i64::from(t.year).rem_euclid(100), 2),
        'Y' => num(t.year.into(), 1),
        'z' => {
            let off = t.utc_offset;
            let sign = if off < 0 { '-' } else { '+' };
            let off = off.unsigned_abs();
            text(&format!("{sign}{:02}{:02}", off / 3600, off / 60 % 60))
        }
        'Z' => text(&t.zone),
        '%' => text("%"),
        _ => return None,
    })
}

/// ISO 8601 week-based year and week number (`%G`, `%V`).
fn iso_week(t: &LocalTime) -> (i64, i64) {
    let year = i64::from(t.year);
    let yday = i64::from(t.year_day);
    // Monday = 0.
    let wday = (i64::from(t.weekday) + 6) % 7;
    let week = (yday - wday + 10) / 7;
    // A year has 53 weeks when it starts on a Thursday, or a leap year
    // on a Wednesday.
    let weeks_in = |y: i64| {
        let p = |y: i64| (y + y / 4 - y / 100 + y / 400).rem_euclid(7);
        if p(y) == 4 || p(y - 1) == 3 { 53 } else { 52 }
    };
    if week < 1 {
        (year - 1, weeks_in(year - 1))
    } else if week > weeks_in(year) {
        (year + 1, 1)
    } else {
        (year, week)
    }
}

fn pad(out: &mut String, field: Field, flags: &str, width: usize) {
    let upper = flags.contains('^');
    match field {
        Field::Text(s) => {
            for _ in s.len()..width {
                out.push(' ');
            }
            if upper {
                out.push_str(&s.to_uppercase());
            } else {
                out.push_str(&s);
            }
        }
        Field::Number {
            value,
            width: natural,
            space,
        } => {
            let fill = match flags.chars().rev().find(|f| matches!(f, '_' | '-' | '0')) {
                Some('-') => None,
                Some('_') => Some(' '),
                Some(_) => Some('0'),
                None if space => Some(' '),
                None => Some('0'),
            };
            let digits = value.unsigned_abs().to_string();
            let sign = if value < 0 { "-" } else { "" };
            let want = if width > 0 { width } else { natural };
            let len = sign.len() + digits.len();
            match fill {
                Some('0') => {
                    out.push_str(sign);
                    for _ in len..want {
                        out.push('0');
                    }
                }
                Some(c) => {
                    for _ in len..want {
                        out.push(c);
                    }
                    out.push_str(sign);
                }
                None => out.push_str(sign),
            }
            let _ = write!(out, "{digits}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> LocalTime {
        LocalTime::utc(unix)
    }

    #[test]
    fn utc_dates_are_the_calendars() {
        // 2024-02-29 13:05:09 UTC, a Thursday, day 60 of a leap year.
        let t = at(1_709_211_909);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2024, 2, 29, 13, 5, 9)
        );
        assert_eq!((t.weekday, t.year_day), (4, 59));
        let t = at(0);
        assert_eq!(
            (t.year, t.month, t.day, t.weekday, t.year_day),
            (1970, 1, 1, 4, 0)
        );
        let t = at(-1);
        assert_eq!((t.year, t.month, t.day, t.hour), (1969, 12, 31, 23));
        assert_eq!(at(1_735_603_200).year_day, 365); // 2024-12-31
    }

    /// Each as glibc's strftime gives it (C locale; `date -u -d @1709211909
    /// +FORMAT` and Python's `time.strftime`).
    #[test]
    fn conversions_are_glibcs() {
        let t = at(1_709_211_909);
        let cases = [
            ("%H:%M:%S  ", "13:05:09  "),
            ("%Y-%m-%d %T", "2024-02-29 13:05:09"),
            ("%a %A %b %B %h", "Thu Thursday Feb February Feb"),
            ("%c", "Thu Feb 29 13:05:09 2024"),
            ("%C %y %D %F", "20 24 02/29/24 2024-02-29"),
            ("%e|%k|%l|%I|%p|%P", "29|13| 1|01|PM|pm"),
            ("%j %u %w %U %W %V %G %g", "060 4 4 08 09 09 2024 24"),
            ("%r %R %x %X", "01:05:09 PM 13:05 02/29/24 13:05:09"),
            ("%s %z %Z %%", "1709211909 +0000 UTC %"),
            ("%-d %_m %-H %5Y %^a %010s", "29  2 13 02024 THU 1709211909"),
            ("%q %", "%q %"),
            (
                "%5H %_5d %-j %^B %Ey %OH %3a",
                "00013    29 60 FEBRUARY 24 13 Thu",
            ),
            ("%n%t", "\n\t"),
        ];
        for (format, want) in cases {
            assert_eq!(
                String::from_utf8(strftime(format, &t)).unwrap(),
                want,
                "{format}"
            );
        }
        // ISO weeks at year ends: 2021-01-01 is in 2020's week 53;
        // 2024-12-30 is in 2025's week 1.
        let jan1 = at(1_609_459_200);
        assert_eq!(strftime("%G %V", &jan1), b"2020 53");
        let dec30 = at(1_735_516_800);
        assert_eq!(strftime("%G %V", &dec30), b"2025 01");
    }

    #[test]
    fn timestamps_add_the_clocks_epoch_and_take_microseconds() {
        let clock = FixedClock {
            now: 1_709_211_909,
            nsecs: 0,
            nsecs_epoch: 1_709_211_900_000_000_000 + 999_999_000,
        };
        // 9.000_002_5 s after .999_999 s: the next second, 1 µs in.
        assert_eq!(
            timestamp("%H:%M:%S.%f", 9_000_002_500, &clock),
            b"13:05:10.000001"
        );
        assert_eq!(timestamp("", 0, &clock), b"(?)");
        assert_eq!(time("%H:%M:%S ", &clock), b"13:05:09 ");
        assert_eq!(time(DEFAULT_TIME_FORMAT, &clock), b"13:05:09\n");
        assert_eq!(time(&"x".repeat(64), &clock), b"");
    }
}
