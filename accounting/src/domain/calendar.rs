//! Business dates: which day an event belongs to in the company's time zone.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// The business date of `time` in `zone`.
pub fn business_date(time: DateTime<Utc>, zone: Tz) -> NaiveDate {
    time.with_timezone(&zone).date_naive()
}

/// The day a transaction is billed on: its business date, or the earliest open day if that
/// day is already closed (days close in order, so the earliest open day follows the last closed).
pub fn billing_date(business: NaiveDate, last_closed: Option<NaiveDate>) -> NaiveDate {
    match last_closed {
        Some(closed) if business <= closed => closed.succ_opt().expect("dates end long after aTES"),
        _ => business,
    }
}

/// The last day that counts as closed: the last closed one, or, before the first close, the day
/// before the ledger's first activity (nothing before it needs closing); `None` while the ledger
/// is empty.
pub fn closed_through(last_closed: Option<NaiveDate>, first_active: Option<NaiveDate>) -> Option<NaiveDate> {
    last_closed.or_else(|| first_active.and_then(|first| first.pred_opt()))
}

/// How many days `today` is past the last closed day: 1 once yesterday is closed, more while a
/// close is overdue; 1 for an empty ledger, which has nothing to close.
pub fn days_since_close(today: NaiveDate, closed_through: Option<NaiveDate>) -> i64 {
    closed_through.map_or(1, |closed| (today - closed).num_days())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_close_is_overdue_once_yesterday_is_open() {
        assert_eq!(days_since_close(day(22), closed_through(Some(day(21)), Some(day(1)))), 1);
        assert_eq!(days_since_close(day(22), closed_through(Some(day(20)), Some(day(1)))), 2);
        assert_eq!(days_since_close(day(22), closed_through(None, Some(day(22)))), 1, "active since today");
        assert_eq!(days_since_close(day(22), closed_through(None, Some(day(21)))), 2, "yesterday unclosed");
        assert_eq!(days_since_close(day(22), closed_through(None, None)), 1, "nothing to close");
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn the_business_date_follows_the_time_zone() {
        let late_evening_utc = DateTime::parse_from_rfc3339("2026-11-21T23:30:00Z").unwrap().to_utc();
        assert_eq!(business_date(late_evening_utc, chrono_tz::UTC), day(21));
        assert_eq!(business_date(late_evening_utc, chrono_tz::Europe::Moscow), day(22));
        assert_eq!(business_date(late_evening_utc, chrono_tz::America::New_York), day(21));
    }

    #[test]
    fn a_closed_day_sends_its_late_transactions_to_the_earliest_open_day() {
        assert_eq!(billing_date(day(21), None), day(21));
        assert_eq!(billing_date(day(21), Some(day(20))), day(21));
        assert_eq!(billing_date(day(21), Some(day(21))), day(22));
        assert_eq!(billing_date(day(19), Some(day(21))), day(22));
    }
}
