//! Ranking metrics against values scikit-learn gives for the same inputs.

use fraudflow::evaluation::{average_precision, percentile, roc_auc};

#[test]
fn auc_and_ap_match_scikit_learn() {
    // sklearn.metrics.roc_auc_score / average_precision_score on these inputs: 0.75 and 0.8333...
    let scores = [0.1, 0.4, 0.35, 0.8];
    let labels = [false, false, true, true];
    assert!((roc_auc(&scores, &labels).expect("auc") - 0.75).abs() < 1e-12);
    assert!((average_precision(&scores, &labels).expect("ap") - 0.8333333333333333).abs() < 1e-12);
}

#[test]
fn ties_count_half_in_auc_and_as_one_threshold_in_ap() {
    let scores = [0.5, 0.5, 0.5, 0.5];
    let labels = [true, false, true, false];
    assert_eq!(roc_auc(&scores, &labels), Some(0.5));
    assert_eq!(average_precision(&scores, &labels), Some(0.5));
}

#[test]
fn one_class_has_no_auc() {
    assert_eq!(roc_auc(&[0.1, 0.2], &[false, false]), None);
    assert_eq!(average_precision(&[0.1, 0.2], &[false, false]), None);
}

#[test]
fn nearest_rank_percentiles() {
    let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&sorted, 50.0), Some(50.0));
    assert_eq!(percentile(&sorted, 99.0), Some(99.0));
    assert_eq!(percentile(&sorted, 100.0), Some(100.0));
    assert_eq!(percentile(&[], 50.0), None);
}
