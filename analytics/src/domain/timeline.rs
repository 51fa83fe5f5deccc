//! How many popugs are negative on each day, kept as +1/−1 changes per day.
//!
//! For each account the projection keeps its end-of-day balance on every day it had a
//! transaction. An account counts as negative from a day whose end balance is below zero
//! until a day whose end balance is not; each such switch is a +1 or −1 on that day, and the
//! number of negative popugs on a day is the sum of the changes up to it. A late transaction
//! for an early day shifts the balances of every later day, so the changes are recomputed from
//! that day on.

use std::collections::BTreeMap;

use chrono::NaiveDate;

/// One account's end-of-day balances from some day on, and its balance before that day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The balance at the end of the last day before `days` (0 if none).
    pub before: i64,
    /// End-of-day balances by day.
    pub days: BTreeMap<NaiveDate, i64>,
}

/// +1 on a day the account turns negative, −1 on a day it stops being negative.
pub fn switches(timeline: &Timeline) -> BTreeMap<NaiveDate, i64> {
    let mut negative = timeline.before < 0;
    let mut out = BTreeMap::new();
    for (day, balance) in &timeline.days {
        let now = *balance < 0;
        if now != negative {
            out.insert(*day, if now { 1 } else { -1 });
            negative = now;
        }
    }
    out
}

/// The timeline after adding `changes` (net amount per day) to `old`.
pub fn with_changes(old: &Timeline, changes: &BTreeMap<NaiveDate, i64>) -> Timeline {
    let mut days: BTreeMap<NaiveDate, i64> = old.days.clone();
    for day in changes.keys() {
        if !days.contains_key(day) {
            let carried = old.days.range(..*day).next_back().map_or(old.before, |(_, b)| *b);
            days.insert(*day, carried);
        }
    }
    let mut added = 0;
    let mut pending = changes.iter().peekable();
    for (day, balance) in &mut days {
        while let Some((_, change)) = pending.next_if(|(change_day, _)| *change_day <= day) {
            added += change;
        }
        *balance += added;
    }
    Timeline { before: old.before, days }
}

/// What changes in the per-day negative counts when `old` becomes `new`.
pub fn switch_changes(old: &Timeline, new: &Timeline) -> BTreeMap<NaiveDate, i64> {
    let mut diff = switches(new);
    for (day, switch) in switches(old) {
        *diff.entry(day).or_default() -= switch;
    }
    diff.retain(|_, change| *change != 0);
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn changes(list: &[(u32, i64)]) -> BTreeMap<NaiveDate, i64> {
        let mut out = BTreeMap::new();
        for (d, amount) in list {
            *out.entry(day(*d)).or_default() += amount;
        }
        out
    }

    /// Negative counts per day from switches.
    fn counts(all: &[BTreeMap<NaiveDate, i64>], days: std::ops::RangeInclusive<u32>) -> Vec<i64> {
        days.map(|d| all.iter().flat_map(|s| s.range(..=day(d))).map(|(_, v)| v).sum()).collect()
    }

    #[test]
    fn an_account_counts_as_negative_between_its_switches() {
        let timeline = with_changes(&Timeline::default(), &changes(&[(1, -1500), (2, 3000), (3, -5000)]));
        assert_eq!(timeline.days.values().copied().collect::<Vec<_>>(), [-1500, 1500, -3500]);
        assert_eq!(switches(&timeline), BTreeMap::from([(day(1), 1), (day(2), -1), (day(3), 1)]));
        assert_eq!(counts(&[switches(&timeline)], 1..=4), [1, 0, 1, 1]);
    }

    #[test]
    fn a_late_transaction_for_an_early_day_shifts_the_later_days() {
        let on_time = with_changes(&Timeline::default(), &changes(&[(1, -1500), (3, 2000)]));
        assert_eq!(counts(&[switches(&on_time)], 1..=3), [1, 1, 0]);

        let late = with_changes(&on_time, &changes(&[(2, -1000)]));

        assert_eq!(late.days.values().copied().collect::<Vec<_>>(), [-1500, -2500, -500]);
        let diff = switch_changes(&on_time, &late);
        assert_eq!(counts(&[switches(&on_time), diff], 1..=3), [1, 1, 1], "still negative on the 3rd");
    }

    #[test]
    fn any_arrival_order_gives_the_same_counts() {
        let all = [(1, -1200), (2, 3000), (2, -1800), (3, -900), (4, 2500), (5, -100)];
        let orders: [[usize; 6]; 4] =
            [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 5, 0, 3, 1, 4], [3, 0, 4, 1, 5, 2]];
        let mut results = Vec::new();
        for order in orders {
            let mut timeline = Timeline::default();
            let mut applied: Vec<BTreeMap<NaiveDate, i64>> = Vec::new();
            for index in order {
                let next = with_changes(&timeline, &changes(&[all[index]]));
                applied.push(switch_changes(&timeline, &next));
                timeline = next;
            }
            results.push((timeline.days.clone(), counts(&applied, 1..=6)));
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
        assert_eq!(results[0].1, [1, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn the_state_before_the_window_counts() {
        let old = Timeline { before: -700, days: BTreeMap::new() };
        let new = with_changes(&old, &changes(&[(4, 1000)]));
        assert_eq!(new.days[&day(4)], 300);
        assert_eq!(switch_changes(&old, &new), BTreeMap::from([(day(4), -1)]));
    }
}
