//! The calendar periods the dashboards answer for.

use chrono::{Datelike, Duration, Months, NaiveDate};

/// The week of `date`, Monday to Sunday.
pub fn week_of(date: NaiveDate) -> (NaiveDate, NaiveDate) {
    let monday = date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
    (monday, monday + Duration::days(6))
}

/// The calendar month of `date`, first to last day.
pub fn month_of(date: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = date.with_day(1).expect("every month has a first day");
    let next = first.checked_add_months(Months::new(1)).expect("months go on");
    (first, next.pred_opt().expect("dates go back"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn a_week_runs_from_monday_to_sunday() {
        let (monday, sunday) = (day(2026, 11, 16), day(2026, 11, 22));
        for date in monday.iter_days().take(7) {
            assert_eq!(week_of(date), (monday, sunday), "{date}");
        }
        assert_eq!(week_of(day(2026, 12, 31)), (day(2026, 12, 28), day(2027, 1, 3)), "across a new year");
    }

    #[test]
    fn a_month_runs_from_its_first_to_its_last_day() {
        assert_eq!(month_of(day(2026, 11, 21)), (day(2026, 11, 1), day(2026, 11, 30)));
        assert_eq!(month_of(day(2026, 12, 31)), (day(2026, 12, 1), day(2026, 12, 31)));
        assert_eq!(month_of(day(2028, 2, 10)), (day(2028, 2, 1), day(2028, 2, 29)), "a leap year");
        assert_eq!(month_of(day(2027, 2, 1)), (day(2027, 2, 1), day(2027, 2, 28)));
    }
}
