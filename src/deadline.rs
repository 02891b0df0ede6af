//! Deadlines relative to a hire's first day, and the first day itself.
//!
//! A step can say when it must be done, relative to the start:
//!
//! - `start`: by the time the hire starts;
//! - `N working days before start` (weekends skipped) or `N days before start`, at the start's
//!   time of day;
//! - `HH:MM on day one`.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

use crate::model::Hire;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    AtStart,
    BeforeStart { days: u32, working: bool },
    DayOne(Time),
}

/// The forms a deadline can take, for hints.
pub const FORMS: &str =
    "write `start`, `2 working days before start`, `3 days before start` or `09:00 on day one`";

pub fn parse(text: &str) -> Result<Deadline, crate::diag::Invalid> {
    let t = text.trim().to_lowercase();
    let words: Vec<&str> = t.split_whitespace().collect();
    match words.as_slice() {
        ["start"] | ["at", "start"] => Ok(Deadline::AtStart),
        [n, "working", "day" | "days", "before", "start"] => Ok(Deadline::BeforeStart {
            days: days(n)?,
            working: true,
        }),
        [n, "day" | "days", "before", "start"] => Ok(Deadline::BeforeStart {
            days: days(n)?,
            working: false,
        }),
        [time, "on", "day", "one"] | ["by", time, "on", "day", "one"] => time
            .parse::<Time>()
            .map(Deadline::DayOne)
            .map_err(|_| format!("`{time}` is not a time of day (HH:MM)").into()),
        _ => Err(format!("`{text}` is not a deadline").into()),
    }
}

/// The most days a deadline may lie before the start: a year of working days is already far
/// more than any onboarding plans for.
const MAX_DAYS: u32 = 366;

fn days(n: &str) -> Result<u32, crate::diag::Invalid> {
    match n.parse::<u32>() {
        Ok(d) if d <= MAX_DAYS => Ok(d),
        Ok(_) => Err(format!("`{n}` days is more than the {MAX_DAYS} a deadline may be").into()),
        Err(_) => Err(format!("`{n}` is not a number of days").into()),
    }
}

/// `days` days before `date`, counting only Monday to Friday if `working`. Closed form: whole
/// weeks of five working days, then the rest day by day (at most a week).
fn days_before(date: Date, days: u32, working: bool) -> Date {
    let back = |date: Date, n: i64| {
        date.checked_sub(jiff::Span::new().days(n))
            .unwrap_or(Date::MIN)
    };
    if !working {
        return back(date, i64::from(days));
    }
    if days == 0 {
        return date;
    }
    // Whole weeks, keeping 1 to 5 working days to count (the last must land on a weekday).
    let weeks = (days - 1) / 5;
    let mut date = back(date, i64::from(weeks) * 7);
    let mut left = days - weeks * 5;
    while left > 0 && date > Date::MIN {
        date = back(date, 1);
        if !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    date
}

/// The hire's first day: start date, time (default 09:00) and time zone (default UTC).
pub fn start(hire: &Hire) -> Option<ZonedDateTime> {
    let date: Date = hire.start_date.as_ref()?.value.parse().ok()?;
    let time = hire
        .start_time
        .as_ref()
        .and_then(|t| t.value.parse::<Time>().ok())
        .unwrap_or(Time::constant(9, 0, 0, 0));
    let tz = hire
        .time_zone
        .as_ref()
        .and_then(|z| TimeZone::get(&z.value).ok())
        .unwrap_or(TimeZone::UTC);
    date.to_datetime(time).to_zoned_datetime(tz).ok()
}

impl Deadline {
    /// The instant of this deadline for a hire starting at `start`.
    pub fn at(self, start: &ZonedDateTime) -> Timestamp {
        match self {
            Deadline::AtStart => start.timestamp(),
            Deadline::DayOne(time) => start
                .date()
                .to_datetime(time)
                .to_zoned_datetime(start.time_zone().clone())
                .map_or(start.timestamp(), |z| z.timestamp()),
            Deadline::BeforeStart { days, working } => {
                let date = days_before(start.date(), days, working);
                date.to_datetime(start.time())
                    .to_zoned_datetime(start.time_zone().clone())
                    .map_or(start.timestamp(), |z| z.timestamp())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monday() -> ZonedDateTime {
        "2026-12-07T09:00[Europe/Berlin]".parse().unwrap()
    }

    #[test]
    fn working_days_in_closed_form_match_counting_day_by_day() {
        let mut start: Date = "2026-11-01".parse().unwrap();
        for _ in 0..14 {
            for n in 0..40u32 {
                let mut date = start;
                let mut left = n;
                while left > 0 {
                    date = date.yesterday().unwrap();
                    if !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
                        left -= 1;
                    }
                }
                assert_eq!(days_before(start, n, true), date, "{n} before {start}");
            }
            start = start.tomorrow().unwrap();
        }
        assert!(parse("1000000000 working days before start").is_err());
        assert!(parse("366 working days before start").is_ok());
    }

    #[test]
    fn working_days_skip_the_weekend() {
        let d = parse("2 working days before start").unwrap();
        assert_eq!(
            d.at(&monday()).to_string(),
            "2026-12-03T08:00:00Z",
            "Thursday 09:00 Berlin"
        );
        let d = parse("2 days before start").unwrap();
        assert_eq!(
            d.at(&monday()).to_string(),
            "2026-12-05T08:00:00Z",
            "Saturday"
        );
        assert_eq!(
            parse("start").unwrap().at(&monday()).to_string(),
            "2026-12-07T08:00:00Z"
        );
        let d = parse("10:30 on day one").unwrap();
        assert_eq!(d.at(&monday()).to_string(), "2026-12-07T09:30:00Z");
    }

    #[test]
    fn bad_deadlines_are_explained() {
        assert_eq!(
            parse("two days before start"),
            Err("`two` is not a number of days".into())
        );
        assert!(parse("soonish").is_err());
        assert!(parse("25:00 on day one").is_err());
    }
}
