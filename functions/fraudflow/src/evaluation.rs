//! Ranking metrics for replayed, labelled traffic (the same definitions as scikit-learn's
//! `roc_auc_score` and `average_precision_score`), and latency percentiles.

/// ROC AUC with ties counted as half (Mann-Whitney U). `None` without both classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let order = sorted_desc(scores);
    let positives = labels.iter().filter(|l| **l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Walk groups of equal scores from the top; each negative in a group outranks the positives
    // below it and ties with those in its group.
    let mut area = 0.0;
    let mut positives_above = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        let (mut group_pos, mut group_neg) = (0.0, 0.0);
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            if labels[order[end]] {
                group_pos += 1.0
            } else {
                group_neg += 1.0
            }
            end += 1;
        }
        area += group_neg * (positives_above + 0.5 * group_pos);
        positives_above += group_pos;
        start = end;
    }
    Some(area / (positives * negatives))
}

/// Average precision: sum over distinct thresholds of (recall step) x precision.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let order = sorted_desc(scores);
    let positives = labels.iter().filter(|l| **l).count() as f64;
    if positives == 0.0 {
        return None;
    }
    let (mut true_pos, mut seen, mut ap, mut last_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            if labels[order[end]] {
                true_pos += 1.0;
            }
            seen += 1.0;
            end += 1;
        }
        let recall = true_pos / positives;
        ap += (recall - last_recall) * (true_pos / seen);
        last_recall = recall;
        start = end;
    }
    Some(ap)
}

fn sorted_desc(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    order
}

/// Nearest-rank percentile of already sorted values (`q` in 0..=100).
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
