//! Dates: ranges in query strings and the company's time zone in configuration.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::Problem;

/// The earliest and latest dates the APIs take: years 1 to 9999, so every period around one
/// (its week, its month) is a date too.
const DATES: std::ops::RangeInclusive<i32> = 1..=9999;

/// `date` if its year is 1 to 9999; else 422 naming `field`.
pub fn check_date(field: &str, date: NaiveDate) -> Result<NaiveDate, Problem> {
    use chrono::Datelike as _;
    if DATES.contains(&date.year()) {
        Ok(date)
    } else {
        Err(Problem::unprocessable(format!(
            "`{field}` must be a date from 0001-01-01 to 9999-12-31, not {date}."
        )))
    }
}

/// Checks that `from` is not after `to`, both are dates the APIs take, and the range spans
/// fewer than `max_days` days.
pub fn date_range(from: NaiveDate, to: NaiveDate, max_days: i64) -> Result<(NaiveDate, NaiveDate), Problem> {
    let (from, to) = (check_date("from", from)?, check_date("to", to)?);
    if from > to {
        return Err(Problem::bad_request("`from` must not be after `to`."));
    }
    if (to - from).num_days() >= max_days {
        return Err(Problem::bad_request(format!(
            "Ask for at most {max_days} days at once: split a longer range into several requests."
        )));
    }
    Ok((from, to))
}

/// The company's calendar, read from the environment: which day a moment belongs to.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Calendar {
    /// The company's time zone: business dates, "today" and the midnight cut-off follow it.
    #[arg(long, env = "ATES_TIMEZONE", default_value = "UTC", value_parser = parse_time_zone)]
    pub timezone: Tz,
}

impl Calendar {
    /// The business date of `time`.
    pub fn date_of(&self, time: DateTime<Utc>) -> NaiveDate {
        time.with_timezone(&self.timezone).date_naive()
    }

    /// Today.
    pub fn today(&self) -> NaiveDate {
        self.date_of(Utc::now())
    }
}

/// Parses an IANA time zone name, for a `value_parser` of the services' `ATES_TIMEZONE`.
pub fn parse_time_zone(text: &str) -> Result<Tz, String> {
    text.parse().map_err(|_| format!("{text:?} is not an IANA time zone such as UTC or Europe/Berlin"))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    #[test]
    fn ranges_run_forwards_and_have_a_limit() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(super::date_range(day(1), day(3), 10).unwrap(), (day(1), day(3)));
        assert!(super::date_range(day(3), day(1), 10).unwrap_err().detail().contains("must not be after"));
        assert!(super::date_range(day(1), day(11), 10).unwrap_err().detail().contains("at most 10 days"));
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(super::parse_time_zone("Europe/Berlin"), Ok(chrono_tz::Europe::Berlin));
        assert!(super::parse_time_zone("Berlin").unwrap_err().contains("not an IANA time zone"));
    }
}
