//! The machine's time for `time()`, `strftime()`, `nsecs` and `elapsed` in
//! user space: `CLOCK_MONOTONIC` (what the programs' `nsecs` reads with
//! `bpf_ktime_get_ns`), the realtime at which it read 0, and the local time
//! zone as the C library finds it: `TZ` (a POSIX rule, a zone name under
//! /usr/share/zoneinfo, or `:PATH`; empty is UTC), else /etc/localtime,
//! else UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use lang::format::time::{Clock, LocalTime};
use tz::TimeZone;

use crate::sys;

#[derive(Debug)]
pub struct LocalClock {
    zone: TimeZone,
    nsecs_epoch: i128,
}

impl LocalClock {
    pub fn new() -> LocalClock {
        LocalClock {
            zone: local_zone(std::env::var("TZ").ok().as_deref()),
            nsecs_epoch: nsecs_epoch(),
        }
    }
}

impl Default for LocalClock {
    fn default() -> LocalClock {
        LocalClock::new()
    }
}

/// The zone `TZ` names, or /etc/localtime's; UTC when neither reads.
fn local_zone(tz: Option<&str>) -> TimeZone {
    let zone = match tz {
        Some("") => return TimeZone::utc(),
        Some(tz) => TimeZone::from_posix_tz(tz),
        None => TimeZone::local(),
    };
    zone.unwrap_or_else(|_| TimeZone::utc())
}

fn realtime_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Realtime less the monotonic clock, read between two reads of it (the
/// closest of three tries), as bpftrace finds its boot time.
fn nsecs_epoch() -> i128 {
    (0..3)
        .map(|_| {
            let before = sys::monotonic_ns();
            let real = realtime_ns();
            let after = sys::monotonic_ns();
            (
                after - before,
                real - i128::from(before + (after - before) / 2),
            )
        })
        .min_by_key(|(spread, _)| *spread)
        .map_or(0, |(_, epoch)| epoch)
}

impl Clock for LocalClock {
    fn now(&self) -> i64 {
        realtime_ns().div_euclid(1_000_000_000) as i64
    }

    fn nsecs(&self) -> u64 {
        sys::monotonic_ns()
    }

    fn nsecs_epoch(&self) -> i128 {
        self.nsecs_epoch
    }

    fn local(&self, unix: i64) -> LocalTime {
        let Ok(kind) = self.zone.find_local_time_type(unix) else {
            return LocalTime::utc(unix);
        };
        let offset = kind.ut_offset();
        let mut t = LocalTime::utc(unix + i64::from(offset));
        t.unix = unix;
        t.utc_offset = offset;
        // tz-rs's UTC has no name; the C library calls it UTC.
        let zone = kind.time_zone_designation();
        t.zone = if zone.is_empty() { "UTC" } else { zone }.to_string();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tz_names_a_rule_or_a_zone() {
        // 2024-07-01 12:00:00 UTC.
        let july = 1_719_835_200;
        let at = |tz: Option<&str>| {
            let clock = LocalClock {
                zone: local_zone(tz),
                nsecs_epoch: 0,
            };
            let t = clock.local(july);
            (t.hour, t.utc_offset, t.zone)
        };
        assert_eq!(
            at(Some("CET-1CEST,M3.5.0,M10.5.0/3")),
            (14, 7200, "CEST".into())
        );
        assert_eq!(at(Some("")), (12, 0, "UTC".into()));
        assert_eq!(at(Some("<+0530>-5:30")), (17, 19800, "+0530".into()));
        // A name no rule or file gives falls back to UTC, as the C library.
        assert_eq!(at(Some("No/Such_Zone")).1, 0);
    }

    #[test]
    fn the_epoch_of_nsecs_is_now_less_the_monotonic_clock() {
        let clock = LocalClock::new();
        let now = clock.nsecs_epoch() + i128::from(clock.nsecs());
        assert!((realtime_ns() - now).abs() < 1_000_000_000);
    }
}
