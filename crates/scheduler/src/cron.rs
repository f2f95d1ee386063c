//! A small cron matcher for disruption budget windows (five fields, UTC).
//!
//! Supports `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`, and the
//! macros `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`.
//! Day-of-week 0 and 7 are Sunday. As in classic cron, when both day-of-month and
//! day-of-week are restricted, a day matching either one matches.

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Errors from parsing a schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CronError {
    /// Not five fields (or a known macro).
    #[error(
        "cron schedule {0:?} must have five fields: minute hour day-of-month month day-of-week"
    )]
    FieldCount(String),
    /// A field could not be parsed or is out of range.
    #[error("cron field {field} {value:?} is invalid (allowed {min}-{max})")]
    Field {
        /// Field name.
        field: &'static str,
        /// The text.
        value: String,
        /// Smallest allowed value.
        min: u8,
        /// Largest allowed value.
        max: u8,
    },
}

/// A parsed schedule: one bit set per allowed value of each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    dom_restricted: bool,
    dow_restricted: bool,
}

fn parse_field(
    text: &str,
    field: &'static str,
    min: u8,
    max: u8,
) -> Result<(u64, bool), CronError> {
    let bad = || CronError::Field {
        field,
        value: text.to_string(),
        min,
        max,
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u8>().map_err(|_| bad())?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(bad());
        }
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                a.parse::<u8>().map_err(|_| bad())?,
                b.parse::<u8>().map_err(|_| bad())?,
            )
        } else {
            let v = range.parse::<u8>().map_err(|_| bad())?;
            // "5/15" means from 5 to the end in steps of 15.
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(bad());
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v = match v.checked_add(step) {
                Some(n) => n,
                None => break,
            };
        }
    }
    Ok((bits, text != "*"))
}

impl Schedule {
    /// Parses a five-field schedule or a macro.
    pub fn parse(text: &str) -> Result<Self, CronError> {
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(CronError::FieldCount(text.to_string()));
        };
        let (minutes, _) = parse_field(minute, "minute", 0, 59)?;
        let (hours, _) = parse_field(hour, "hour", 0, 23)?;
        let (days_of_month, dom_restricted) = parse_field(dom, "day-of-month", 1, 31)?;
        let (months, _) = parse_field(month, "month", 1, 12)?;
        let (mut days_of_week, dow_restricted) = parse_field(dow, "day-of-week", 0, 7)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week |= 1;
        }
        Ok(Schedule {
            minutes,
            hours: hours as u32,
            days_of_month: days_of_month as u32,
            months: months as u16,
            days_of_week: (days_of_week & 0x7f) as u8,
            dom_restricted,
            dow_restricted,
        })
    }

    /// True when the schedule fires in the minute containing `at` (UTC).
    pub fn matches(&self, at: DateTime) -> bool {
        let dow = at.weekday().to_sunday_zero_offset() as u32;
        let dom_ok = self.days_of_month & (1 << at.day() as u32) != 0;
        let dow_ok = u32::from(self.days_of_week) & (1 << dow) != 0;
        let day_ok = if self.dom_restricted && self.dow_restricted {
            dom_ok || dow_ok
        } else {
            dom_ok && dow_ok
        };
        self.minutes & (1 << at.minute() as u64) != 0
            && self.hours & (1 << at.hour() as u32) != 0
            && self.months & (1 << at.month() as u16) != 0
            && day_ok
    }

    /// True when the window of `duration` after some firing contains `now`.
    pub fn window_open(&self, duration: Duration, now: Timestamp) -> bool {
        let minutes = duration.as_secs().div_ceil(60).min(60 * 24 * 366) as i64;
        let now_dt = now.to_zoned(TimeZone::UTC).datetime();
        let base = now_dt
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .unwrap_or(now_dt);
        let limit = SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX);
        // A firing at minute m opens [m, m + duration); `now` is inside when now - m < duration.
        (0..=minutes).any(|back| {
            base.checked_sub(SignedDuration::from_mins(back))
                .is_ok_and(|t| now_dt.duration_since(t) < limit && self.matches(t))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn fields_ranges_lists_and_steps_match() {
        let s = Schedule::parse("*/15 9-17 * * 1-5").unwrap();
        // 2026-11-25 is a Wednesday.
        assert!(
            s.matches(
                at("2026-11-25T09:30:00Z")
                    .to_zoned(TimeZone::UTC)
                    .datetime()
            )
        );
        assert!(
            !s.matches(
                at("2026-11-25T09:31:00Z")
                    .to_zoned(TimeZone::UTC)
                    .datetime()
            )
        );
        assert!(
            !s.matches(
                at("2026-11-25T18:00:00Z")
                    .to_zoned(TimeZone::UTC)
                    .datetime()
            )
        );
        assert!(
            !s.matches(
                at("2026-11-29T10:00:00Z")
                    .to_zoned(TimeZone::UTC)
                    .datetime()
            )
        );
        let sunday = Schedule::parse("0 0 * * 7").unwrap();
        assert!(
            sunday.matches(
                at("2026-11-29T00:00:00Z")
                    .to_zoned(TimeZone::UTC)
                    .datetime()
            )
        );
    }

    #[test]
    fn bad_schedules_name_the_field() {
        assert!(matches!(
            Schedule::parse("* * *"),
            Err(CronError::FieldCount(_))
        ));
        assert!(matches!(
            Schedule::parse("61 * * * *"),
            Err(CronError::Field {
                field: "minute",
                ..
            })
        ));
        assert!(matches!(
            Schedule::parse("* * * * mon"),
            Err(CronError::Field {
                field: "day-of-week",
                ..
            })
        ));
    }

    #[test]
    fn a_window_is_open_for_its_duration_after_each_firing() {
        let s = Schedule::parse("@daily").unwrap();
        let eight_hours = Duration::from_secs(8 * 3600);
        assert!(s.window_open(eight_hours, at("2026-11-25T00:00:00Z")));
        assert!(s.window_open(eight_hours, at("2026-11-25T07:59:30Z")));
        assert!(!s.window_open(eight_hours, at("2026-11-25T08:00:00Z")));
        assert!(!s.window_open(eight_hours, at("2026-11-24T23:59:00Z")));
    }
}
