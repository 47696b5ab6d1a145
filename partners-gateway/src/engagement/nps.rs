//! Net Promoter Score: of the answers to "how likely are you to recommend us" (0 to 10), the
//! share of promoters (9 and 10) minus the share of detractors (0 to 6), in points from -100 to
//! 100. Passives (7 and 8) count in the total only.

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

/// Counts of one group's answers, and its score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Nps {
    /// Answers counted.
    pub responses: u64,
    /// Answers of 9 or 10.
    pub promoters: u64,
    /// Answers of 7 or 8.
    pub passives: u64,
    /// Answers of 0 to 6.
    pub detractors: u64,
}

impl Nps {
    /// Counts one answer (0 to 10; anything else is not an NPS answer and is not counted).
    pub fn add(&mut self, score: u8) {
        match score {
            9 | 10 => self.promoters += 1,
            7 | 8 => self.passives += 1,
            0..=6 => self.detractors += 1,
            _ => return,
        }
        self.responses += 1;
    }

    /// The score, rounded to one decimal place (half away from zero); `None` with no answers.
    pub fn score(&self) -> Option<Decimal> {
        if self.responses == 0 {
            return None;
        }
        let diff = Decimal::from(self.promoters) - Decimal::from(self.detractors);
        let s = diff * Decimal::from(100) / Decimal::from(self.responses);
        Some(s.round_dp_with_strategy(1, rust_decimal::RoundingStrategy::MidpointAwayFromZero))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nps_is_promoters_minus_detractors_in_percent() {
        let mut n = Nps::default();
        // 5 promoters, 3 passives, 2 detractors: (5 - 2) / 10 = 30.
        for s in [10, 9, 9, 10, 9, 8, 7, 7, 6, 0] {
            n.add(s);
        }
        assert_eq!((n.promoters, n.passives, n.detractors), (5, 3, 2));
        assert_eq!(n.score(), Some(Decimal::from(30)));
        let mut m = Nps::default();
        for s in [6, 9, 8] {
            m.add(s);
        }
        // (1 - 1) / 3 = 0; and one detractor of three alone is -33.3.
        assert_eq!(m.score(), Some(Decimal::ZERO));
        let mut d = Nps::default();
        for s in [3, 8, 7] {
            d.add(s);
        }
        assert_eq!(d.score(), Some(Decimal::new(-333, 1)));
        assert_eq!(Nps::default().score(), None);
        n.add(11);
        assert_eq!(n.responses, 10, "11 is not an answer");
    }
}
