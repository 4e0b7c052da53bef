//! The rule-based fallback score, used when the model is late, missing or misbehaving.
//!
//! It is an additive logit over a few rules a fraud analyst would write by hand, each tied to a
//! known fraud pattern, so it stays useful on its own (its AUC/AP are printed beside the model's
//! by `fraudflow score`):
//!
//! | rule | logit added | pattern it catches |
//! |---|---|---|
//! | base | -5.0 | prior of about 0.7 % |
//! | amount >= 220 | +4.0 | large one-off payments |
//! | amount >= 3x the customer's 30-day mean (with >= 5 payments in 30 days) | +3.0 | a stolen card used for unusually large payments |
//! | terminal fraud ratio over 7 days (delayed) | +6.0 x risk_7d | a compromised terminal |
//! | terminal fraud ratio over 30 days (delayed) | +3.0 x risk_30d | a compromised terminal, longer memory |
//! | terminal fraud ratio over 1 day (delayed) | +2.0 x risk_1d | a compromised terminal, most recent labels |

use crate::contract::{Reason, RiskLevel, Transaction};

pub const HEURISTIC_VERSION: &str = "heuristic-v1";

const BASE_LOGIT: f64 = -5.0;
const LARGE_AMOUNT: f64 = 220.0;
const LARGE_AMOUNT_WEIGHT: f64 = 4.0;
const CUSTOMER_RATIO: f64 = 3.0;
const CUSTOMER_MIN_HISTORY: f64 = 5.0;
const CUSTOMER_RATIO_WEIGHT: f64 = 3.0;
const TERMINAL_RISK_1D_WEIGHT: f64 = 2.0;
const TERMINAL_RISK_7D_WEIGHT: f64 = 6.0;
const TERMINAL_RISK_30D_WEIGHT: f64 = 3.0;

/// The heuristic's own risk thresholds on its probability (it is not calibrated like the model).
pub const ELEVATED_THRESHOLD: f64 = 0.2;
pub const HIGH_THRESHOLD: f64 = 0.5;

#[derive(Debug, Clone, PartialEq)]
pub struct HeuristicScore {
    pub fraud_probability: f64,
    pub risk_level: RiskLevel,
    /// Rules that fired, largest contribution first.
    pub reasons: Vec<Reason>,
}

pub fn score(tx: &Transaction) -> HeuristicScore {
    let mut reasons = Vec::with_capacity(5);
    let mut add = |feature: &str, contribution: f64| {
        if contribution > 0.0 {
            reasons.push(Reason {
                feature: feature.to_owned(),
                contribution,
            });
        }
    };
    if tx.amount >= LARGE_AMOUNT {
        add("amount", LARGE_AMOUNT_WEIGHT);
    }
    let customer = &tx.customer;
    if customer.nb_tx_30d >= CUSTOMER_MIN_HISTORY
        && customer.avg_amount_30d > 0.0
        && tx.amount >= CUSTOMER_RATIO * customer.avg_amount_30d
    {
        add("customer.avg_amount_30d", CUSTOMER_RATIO_WEIGHT);
    }
    let terminal = &tx.terminal;
    add(
        "terminal.risk_7d",
        TERMINAL_RISK_7D_WEIGHT * terminal.risk_7d,
    );
    add(
        "terminal.risk_30d",
        TERMINAL_RISK_30D_WEIGHT * terminal.risk_30d,
    );
    add(
        "terminal.risk_1d",
        TERMINAL_RISK_1D_WEIGHT * terminal.risk_1d,
    );
    let logit = BASE_LOGIT + reasons.iter().map(|r| r.contribution).sum::<f64>();
    reasons.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
    let fraud_probability = sigmoid(logit);
    HeuristicScore {
        fraud_probability,
        risk_level: risk_level(fraud_probability, ELEVATED_THRESHOLD, HIGH_THRESHOLD),
        reasons,
    }
}

pub fn sigmoid(logit: f64) -> f64 {
    1.0 / (1.0 + (-logit).exp())
}

/// `low` below `elevated`, `high` at or above `high`, `elevated` between.
pub fn risk_level(probability: f64, elevated: f64, high: f64) -> RiskLevel {
    if probability >= high {
        RiskLevel::High
    } else if probability >= elevated {
        RiskLevel::Elevated
    } else {
        RiskLevel::Low
    }
}
