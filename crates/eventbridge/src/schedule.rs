//! Schedule expressions: `rate(N unit)` and AWS's six-field `cron(min hour dom month dow year)`,
//! parsed once and asked for their next fire time in UTC.
//!
//! Expressions AWS refuses are refused here with no detail, as AWS does ("Parameter
//! ScheduleExpression is not valid.").

use time::{Date, Duration, Month, OffsetDateTime, Time};

/// The schedule expression does not parse (AWS gives no reason, neither do we).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule expression")]
pub struct InvalidSchedule;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every `minutes` minutes from the rule's anchor.
    Rate {
        minutes: u64,
    },
    Cron(Box<Cron>),
}

/// The day-of-month field.
#[derive(Debug, Clone, PartialEq)]
enum Dom {
    Any,
    Days(u32),
    Last,
    /// `nW`: the weekday nearest day n, within the month.
    NearestWeekday(u8),
    /// `LW`: the last weekday of the month.
    LastWeekday,
}

/// The day-of-week field (1 = Sunday … 7 = Saturday).
#[derive(Debug, Clone, PartialEq)]
enum Dow {
    Any,
    Days(u8),
    /// `nL`: the last such weekday of the month.
    Last(u8),
    /// `n#k`: the k-th such weekday of the month.
    Nth(u8, u8),
}

const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 2199;

/// A parsed `cron(…)` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    dom: Dom,
    months: u16,
    dow: Dow,
    years: Vec<bool>,
}

impl Schedule {
    /// Parses `rate(…)` or `cron(…)`.
    pub fn parse(expr: &str) -> Result<Self, InvalidSchedule> {
        let expr = expr.trim();
        if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
            return parse_rate(inner);
        }
        if let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
            return Cron::parse(inner).map(|c| Schedule::Cron(Box::new(c)));
        }
        Err(InvalidSchedule)
    }

    /// The first fire strictly after `now`. A rate counts whole periods from `anchor` (the
    /// time the schedule was set); `minute` is how long one schedule minute lasts (a real
    /// minute, or less on a node that scales time for tests); cron uses real UTC minutes.
    pub fn next_after(
        &self,
        anchor: OffsetDateTime,
        now: OffsetDateTime,
        minute: Duration,
    ) -> Option<OffsetDateTime> {
        match self {
            Schedule::Rate { minutes } => {
                let period = minute.checked_mul(i32::try_from(*minutes).ok()?)?;
                if period <= Duration::ZERO {
                    return None;
                }
                if now < anchor {
                    return anchor.checked_add(period);
                }
                let elapsed = (now - anchor).whole_nanoseconds();
                let p = period.whole_nanoseconds();
                let k = elapsed / p + 1;
                // Far beyond any real date the sum overflows: such a schedule never fires.
                let ahead =
                    Duration::checked_seconds_f64((k.checked_mul(p)? / 1_000_000_000) as f64)?;
                let rest = Duration::nanoseconds_i128(k.checked_mul(p)? % 1_000_000_000);
                anchor.checked_add(ahead)?.checked_add(rest)
            }
            Schedule::Cron(c) => c.next_after(now),
        }
    }
}

fn parse_rate(inner: &str) -> Result<Schedule, InvalidSchedule> {
    let mut parts = inner.split(' ');
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(InvalidSchedule);
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidSchedule);
    }
    let n: u64 = n.parse().map_err(|_| InvalidSchedule)?;
    // AWS wants the singular for 1 and the plural otherwise.
    let per = match (unit, n == 1) {
        ("minute", true) | ("minutes", false) => 1,
        ("hour", true) | ("hours", false) => 60,
        ("day", true) | ("days", false) => 1440,
        _ => return Err(InvalidSchedule),
    };
    if n == 0 || n > 1_000_000 {
        return Err(InvalidSchedule);
    }
    Ok(Schedule::Rate { minutes: n * per })
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(s: &str, names: &[&str], min: u32, max: u32) -> Result<u32, InvalidSchedule> {
    let upper = s.to_ascii_uppercase();
    if let Some(i) = names.iter().position(|n| *n == upper) {
        return Ok(i as u32 + min);
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 4 {
        return Err(InvalidSchedule);
    }
    let v: u32 = s.parse().map_err(|_| InvalidSchedule)?;
    if v < min || v > max {
        return Err(InvalidSchedule);
    }
    Ok(v)
}

/// A field of `*`, `a`, `a-b`, `a/s`, `*/s`, `a-b/s` items separated by commas, as the set of
/// values it selects (offset by `min`).
fn field(s: &str, names: &[&str], min: u32, max: u32) -> Result<Vec<u32>, InvalidSchedule> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, st)) => {
                let st = value(st, &[], 1, max - min + 1)?;
                (r, st)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, min, max)?, value(b, names, min, max)?)
        } else {
            let a = value(range, names, min, max)?;
            // `a/s` runs from a to the end of the field.
            (
                a,
                if step > 1 || item.contains('/') {
                    max
                } else {
                    a
                },
            )
        };
        if lo > hi {
            return Err(InvalidSchedule);
        }
        let mut v = lo;
        while v <= hi {
            out.push(v);
            v += step;
        }
    }
    Ok(out)
}

impl Cron {
    fn parse(inner: &str) -> Result<Self, InvalidSchedule> {
        let f: Vec<&str> = inner.split(' ').collect();
        let [mi, h, dom, mo, dow, y] = f.as_slice() else {
            return Err(InvalidSchedule);
        };
        // Exactly one of day-of-month and day-of-week is `?`.
        if (*dom == "?") == (*dow == "?") {
            return Err(InvalidSchedule);
        }
        let minutes = field(mi, &[], 0, 59)?.iter().fold(0u64, |a, v| a | 1 << v);
        let hours = field(h, &[], 0, 23)?.iter().fold(0u32, |a, v| a | 1 << v);
        let months = field(mo, &MONTHS, 1, 12)?
            .iter()
            .fold(0u16, |a, v| a | 1 << v);
        let mut years = vec![false; (LAST_YEAR - FIRST_YEAR + 1) as usize];
        for v in field(y, &[], FIRST_YEAR as u32, LAST_YEAR as u32)? {
            years[(v as i32 - FIRST_YEAR) as usize] = true;
        }
        let dom = match *dom {
            "?" => Dom::Any,
            "L" => Dom::Last,
            "LW" => Dom::LastWeekday,
            d if d.ends_with('W') => {
                Dom::NearestWeekday(value(&d[..d.len() - 1], &[], 1, 31)? as u8)
            }
            d => Dom::Days(field(d, &[], 1, 31)?.iter().fold(0u32, |a, v| a | 1 << v)),
        };
        let dow = match *dow {
            "?" => Dow::Any,
            "L" => Dow::Days(1 << 7),
            d if d.len() > 1 && d.ends_with('L') => {
                Dow::Last(value(&d[..d.len() - 1], &DAYS, 1, 7)? as u8)
            }
            d if d.contains('#') => {
                let (a, k) = d.split_once('#').ok_or(InvalidSchedule)?;
                Dow::Nth(value(a, &DAYS, 1, 7)? as u8, value(k, &[], 1, 5)? as u8)
            }
            d => Dow::Days(field(d, &DAYS, 1, 7)?.iter().fold(0u8, |a, v| a | 1 << v)),
        };
        Ok(Self {
            minutes,
            hours,
            dom,
            months,
            dow,
            years,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let last = last_day(d);
        let dom_ok = match &self.dom {
            Dom::Any => true,
            Dom::Days(bits) => bits & (1 << d.day()) != 0,
            Dom::Last => d.day() == last,
            Dom::LastWeekday => d == nearest_weekday(d, last),
            Dom::NearestWeekday(n) => *n <= last && d == nearest_weekday(d, *n),
        };
        let wd = d.weekday().number_from_sunday();
        let dow_ok = match &self.dow {
            Dow::Any => true,
            // `L` alone in day-of-week means Saturday, the last day of the week.
            Dow::Days(bits) if *bits == 1 << 7 => wd == 7,
            Dow::Days(bits) => bits & (1 << wd) != 0,
            Dow::Last(w) => wd == *w && d.day() + 7 > last,
            Dow::Nth(w, k) => wd == *w && (d.day() - 1) / 7 + 1 == *k,
        };
        dom_ok && dow_ok
    }

    fn next_after(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let now = now.to_offset(time::UtcOffset::UTC);
        let start = now.replace_second(0).ok()?.replace_nanosecond(0).ok()? + Duration::minutes(1);
        let mut day = start.date();
        let mut first = true;
        while day.year() <= LAST_YEAR {
            let year_ok =
                day.year() >= FIRST_YEAR && self.years[(day.year() - FIRST_YEAR) as usize];
            if !year_ok {
                day = Date::from_calendar_date(day.year() + 1, Month::January, 1).ok()?;
                first = false;
                continue;
            }
            if self.months & (1 << day.month() as u8) == 0 {
                let (y, m) = match day.month() {
                    Month::December => (day.year() + 1, Month::January),
                    m => (day.year(), m.next()),
                };
                day = Date::from_calendar_date(y, m, 1).ok()?;
                first = false;
                continue;
            }
            if self.day_matches(day) {
                let from = if first { start.time() } else { Time::MIDNIGHT };
                for h in from.hour()..24 {
                    if self.hours & (1 << h) == 0 {
                        continue;
                    }
                    let m0 = if h == from.hour() { from.minute() } else { 0 };
                    for m in m0..60 {
                        if self.minutes & (1 << m) != 0 {
                            let t = Time::from_hms(h, m, 0).ok()?;
                            return Some(day.with_time(t).assume_utc());
                        }
                    }
                }
            }
            day = day.next_day()?;
            first = false;
        }
        None
    }
}

fn last_day(d: Date) -> u8 {
    d.month().length(d.year())
}

/// The weekday nearest day `n` of `d`'s month, never crossing into another month.
fn nearest_weekday(d: Date, n: u8) -> Date {
    let Ok(target) = Date::from_calendar_date(d.year(), d.month(), n) else {
        return d;
    };
    let last = last_day(d);
    match target.weekday() {
        time::Weekday::Saturday if n == 1 => target + Duration::days(2),
        time::Weekday::Saturday => target - Duration::days(1),
        time::Weekday::Sunday if n == last => target - Duration::days(2),
        time::Weekday::Sunday => target + Duration::days(1),
        _ => target,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn next(expr: &str, now: OffsetDateTime) -> OffsetDateTime {
        Schedule::parse(expr)
            .unwrap()
            .next_after(now, now, Duration::minutes(1))
            .unwrap()
    }

    #[test]
    fn rates() {
        assert_eq!(
            Schedule::parse("rate(1 minute)").unwrap(),
            Schedule::Rate { minutes: 1 }
        );
        assert_eq!(
            Schedule::parse("rate(5 minutes)").unwrap(),
            Schedule::Rate { minutes: 5 }
        );
        assert_eq!(
            Schedule::parse("rate(2 hours)").unwrap(),
            Schedule::Rate { minutes: 120 }
        );
        assert_eq!(
            Schedule::parse("rate(1 day)").unwrap(),
            Schedule::Rate { minutes: 1440 }
        );
        for bad in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(0 minutes)",
            "rate(-1 minutes)",
            "rate(1.5 hours)",
            "rate(1 week)",
            "rate(1  minute)",
            "rate(minute)",
            "rate 1 minute",
            "every minute",
            "",
        ] {
            assert_eq!(Schedule::parse(bad), Err(InvalidSchedule), "{bad}");
        }
    }

    #[test]
    fn rate_counts_periods_from_the_anchor() {
        let s = Schedule::parse("rate(5 minutes)").unwrap();
        let anchor = datetime!(2026-01-01 10:00:30 UTC);
        let m = Duration::minutes(1);
        assert_eq!(
            s.next_after(anchor, anchor, m),
            Some(datetime!(2026-01-01 10:05:30 UTC))
        );
        // After a stop the next fire is the next period boundary, not a burst of missed ones.
        assert_eq!(
            s.next_after(anchor, datetime!(2026-01-01 11:17:00 UTC), m),
            Some(datetime!(2026-01-01 11:20:30 UTC))
        );
        // A scaled minute (tests): one schedule minute lasts 100 ms.
        let s = Schedule::parse("rate(1 minute)").unwrap();
        assert_eq!(
            s.next_after(
                anchor,
                anchor + Duration::milliseconds(250),
                Duration::milliseconds(100)
            ),
            Some(anchor + Duration::milliseconds(300))
        );
    }

    #[test]
    fn cron_fields() {
        let now = datetime!(2026-12-07 14:02:33 UTC); // a Monday
        // Every 5 minutes.
        assert_eq!(
            next("cron(0/5 * * * ? *)", now),
            datetime!(2026-12-07 14:05 UTC)
        );
        assert_eq!(
            next("cron(*/15 * * * ? *)", now),
            datetime!(2026-12-07 14:15 UTC)
        );
        // 10:15 every day.
        assert_eq!(
            next("cron(15 10 * * ? *)", now),
            datetime!(2026-12-08 10:15 UTC)
        );
        // 18:00 Monday to Friday.
        assert_eq!(
            next("cron(0 18 ? * MON-FRI *)", now),
            datetime!(2026-12-07 18:00 UTC)
        );
        assert_eq!(
            next("cron(0 18 ? * MON-FRI *)", datetime!(2026-12-11 18:00 UTC)),
            datetime!(2026-12-14 18:00 UTC)
        );
        // 08:00 on the first of every month.
        assert_eq!(
            next("cron(0 8 1 * ? *)", now),
            datetime!(2027-01-01 08:00 UTC)
        );
        // Every 10 minutes on weekdays.
        assert_eq!(
            next(
                "cron(0/10 * ? * MON-FRI *)",
                datetime!(2026-12-12 09:00 UTC)
            ),
            datetime!(2026-12-14 00:00 UTC)
        );
        // Every 5 minutes between 08:00 and 17:55 on weekdays.
        assert_eq!(
            next(
                "cron(0/5 8-17 ? * MON-FRI *)",
                datetime!(2026-12-07 17:56 UTC)
            ),
            datetime!(2026-12-08 08:00 UTC)
        );
        // 09:00 on the first Monday of each month.
        assert_eq!(
            next("cron(0 9 ? * 2#1 *)", now),
            datetime!(2027-01-04 09:00 UTC)
        );
        // Last day of the month.
        assert_eq!(
            next("cron(0 0 L * ? *)", datetime!(2027-02-03 00:00 UTC)),
            datetime!(2027-02-28 00:00 UTC)
        );
        // Last Friday of the month.
        assert_eq!(
            next("cron(0 12 ? * 6L *)", now),
            datetime!(2026-12-25 12:00 UTC)
        );
        // Nearest weekday to the 1st: 2027-05-01 is a Saturday → Monday the 3rd.
        assert_eq!(
            next("cron(0 0 1W 5 ? 2027)", now),
            datetime!(2027-05-03 00:00 UTC)
        );
        // Last weekday: 2027-01-31 is a Sunday → Friday the 29th.
        assert_eq!(
            next("cron(0 0 LW 1 ? 2027)", now),
            datetime!(2027-01-29 00:00 UTC)
        );
        // Month names, lists and a year.
        assert_eq!(
            next("cron(30 6 1,15 JAN,JUL ? 2028)", now),
            datetime!(2028-01-01 06:30 UTC)
        );
        // A year in the past never fires.
        assert_eq!(
            Schedule::parse("cron(0 0 1 1 ? 2020)").unwrap().next_after(
                now,
                now,
                Duration::minutes(1)
            ),
            None
        );
        // Day 31 skips shorter months.
        assert_eq!(
            next("cron(0 0 31 * ? *)", datetime!(2027-02-01 00:00 UTC)),
            datetime!(2027-03-31 00:00 UTC)
        );
    }

    #[test]
    fn cron_refusals() {
        for bad in [
            "cron(* * * * * *)",
            "cron(0 0 ? * ? *)",
            "cron(0 0 1 * MON *)",
            "cron(60 * * * ? *)",
            "cron(0 24 * * ? *)",
            "cron(0 0 32 * ? *)",
            "cron(0 0 * 13 ? *)",
            "cron(0 0 ? * 8 *)",
            "cron(0 0 * * ? 1969)",
            "cron(0 0 * * ?)",
            "cron(0 0 * * ? * *)",
            "cron(5-1 * * * ? *)",
            "cron(a * * * ? *)",
            "cron(0 0 ? * 2#6 *)",
            "cron(0/0 * * * ? *)",
        ] {
            assert_eq!(Schedule::parse(bad), Err(InvalidSchedule), "{bad}");
        }
    }
}
