//! The payout rule: what closing a day pays an account, and what it carries to the next day.

/// What closing a day does to one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayEnd {
    /// Paid out, in cents (0 or positive).
    pub payout: i64,
    /// The balance carried into the next day after the payout: 0 when paid, else the debt.
    pub carried: i64,
}

/// Closes a day for an account whose balance at the end of the previous closed day was
/// `carried_in` and whose entries billed on the day sum to `day_net`: the closing balance is
/// their sum; a positive one is paid out in full, a negative one is carried. Entries billed to
/// later days are not part of either number.
pub fn day_end(carried_in: i64, day_net: i64) -> DayEnd {
    let closing = carried_in + day_net;
    if closing > 0 { DayEnd { payout: closing, carried: 0 } } else { DayEnd { payout: 0, carried: closing } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_positive_closing_balance_is_paid_in_full() {
        assert_eq!(day_end(0, 1252), DayEnd { payout: 1252, carried: 0 });
    }

    #[test]
    fn a_negative_closing_balance_carries_and_only_later_earnings_pay_it_off() {
        let first = day_end(0, -1799);
        assert_eq!(first, DayEnd { payout: 0, carried: -1799 });
        let second = day_end(first.carried, 1000);
        assert_eq!(second, DayEnd { payout: 0, carried: -799 });
        assert_eq!(day_end(second.carried, 3000), DayEnd { payout: 2201, carried: 0 });
    }

    #[test]
    fn a_zero_closing_balance_pays_nothing() {
        assert_eq!(day_end(-500, 500), DayEnd { payout: 0, carried: 0 });
    }
}
