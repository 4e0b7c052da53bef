//! The heuristic's documented rules, case by case.

use fraudflow::contract::{RiskLevel, parse_transaction};
use fraudflow::heuristic::{risk_level, score, sigmoid};
use serde_json::json;

fn tx(
    amount: f64,
    avg_30d: f64,
    nb_30d: u32,
    risk_1d: f64,
    risk_7d: f64,
    risk_30d: f64,
) -> fraudflow::contract::Transaction {
    parse_transaction(&json!({
        "transaction_id": 1, "timestamp": "2018-08-08T12:00:00Z", "customer_id": "c", "terminal_id": "t",
        "amount": amount,
        "customer": {"nb_tx_1d": 1, "avg_amount_1d": amount, "nb_tx_7d": 3, "avg_amount_7d": avg_30d,
                     "nb_tx_30d": nb_30d, "avg_amount_30d": avg_30d},
        "terminal": {"nb_tx_1d": 5, "risk_1d": risk_1d, "nb_tx_7d": 30, "risk_7d": risk_7d,
                     "nb_tx_30d": 120, "risk_30d": risk_30d}
    }))
    .expect("valid")
}

#[test]
fn an_ordinary_payment_scores_the_base_rate_with_no_reasons() {
    let s = score(&tx(40.0, 45.0, 20, 0.0, 0.0, 0.0));
    assert!((s.fraud_probability - sigmoid(-5.0)).abs() < 1e-12);
    assert!((s.fraud_probability - 0.006693).abs() < 1e-6);
    assert_eq!(s.risk_level, RiskLevel::Low);
    assert!(s.reasons.is_empty());
}

#[test]
fn a_large_amount_adds_four_to_the_logit() {
    let s = score(&tx(220.0, 200.0, 20, 0.0, 0.0, 0.0));
    assert!((s.fraud_probability - sigmoid(-1.0)).abs() < 1e-12);
    assert_eq!(s.risk_level, RiskLevel::Elevated);
    assert_eq!(s.reasons[0].feature, "amount");
    assert_eq!(s.reasons[0].contribution, 4.0);
}

#[test]
fn three_times_the_customer_mean_counts_only_with_history() {
    let with_history = score(&tx(150.0, 50.0, 5, 0.0, 0.0, 0.0));
    assert!((with_history.fraud_probability - sigmoid(-2.0)).abs() < 1e-12);
    assert_eq!(with_history.reasons[0].feature, "customer.avg_amount_30d");
    let without = score(&tx(150.0, 50.0, 4, 0.0, 0.0, 0.0));
    assert!((without.fraud_probability - sigmoid(-5.0)).abs() < 1e-12);
}

#[test]
fn terminal_risk_is_weighted_by_window_and_reasons_are_sorted() {
    let s = score(&tx(40.0, 45.0, 20, 0.5, 1.0, 0.5));
    // -5 + 2*0.5 + 6*1.0 + 3*0.5 = 3.5
    assert!((s.fraud_probability - sigmoid(3.5)).abs() < 1e-12);
    assert_eq!(s.risk_level, RiskLevel::High);
    let names: Vec<&str> = s.reasons.iter().map(|r| r.feature.as_str()).collect();
    assert_eq!(
        names,
        ["terminal.risk_7d", "terminal.risk_30d", "terminal.risk_1d"]
    );
}

#[test]
fn risk_levels_split_at_the_thresholds() {
    assert_eq!(risk_level(0.099, 0.1, 0.5), RiskLevel::Low);
    assert_eq!(risk_level(0.1, 0.1, 0.5), RiskLevel::Elevated);
    assert_eq!(risk_level(0.5, 0.1, 0.5), RiskLevel::High);
}
