//! What a task costs and pays.

use std::ops::RangeInclusive;

use rand::Rng;

/// The assignment fee in cents: $10.00 to $20.00.
pub const ASSIGN_FEE: RangeInclusive<i64> = 1_000..=2_000;
/// The completion reward in cents: $20.00 to $40.00.
pub const COMPLETION_REWARD: RangeInclusive<i64> = 2_000..=4_000;

/// A task's price, fixed the first time accounting hears of the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    /// Debited from the assignee on every assignment.
    pub assign_fee: i64,
    /// Credited to the assignee on completion.
    pub completion_reward: i64,
}

impl Price {
    /// A uniformly random price, independent of the assignee.
    pub fn draw(rng: &mut impl Rng) -> Self {
        Price {
            assign_fee: rng.random_range(ASSIGN_FEE),
            completion_reward: rng.random_range(COMPLETION_REWARD),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_cover_their_whole_ranges_and_nothing_else() {
        let mut rng = rand::rng();
        let prices: Vec<Price> = (0..20_000).map(|_| Price::draw(&mut rng)).collect();
        assert!(prices.iter().all(|p| ASSIGN_FEE.contains(&p.assign_fee)));
        assert!(prices.iter().all(|p| COMPLETION_REWARD.contains(&p.completion_reward)));
        for (range, values) in [
            (ASSIGN_FEE, prices.iter().map(|p| p.assign_fee).collect::<Vec<_>>()),
            (COMPLETION_REWARD, prices.iter().map(|p| p.completion_reward).collect()),
        ] {
            assert!(
                values.contains(range.start()) || values.iter().any(|v| v - range.start() < 5),
                "reaches the bottom"
            );
            assert!(
                values.contains(range.end()) || values.iter().any(|v| range.end() - v < 5),
                "reaches the top"
            );
            let mean = values.iter().sum::<i64>() / i64::try_from(values.len()).unwrap();
            let middle = (range.start() + range.end()) / 2;
            assert!(
                (mean - middle).abs() < (range.end() - range.start()) / 50,
                "uniform: mean {mean}, middle {middle}"
            );
        }
    }
}
