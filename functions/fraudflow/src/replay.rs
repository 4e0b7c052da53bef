//! Summaries of replayed traffic (`fraudflow score`): counts by source, fallback reason and risk
//! level, request latency percentiles, and, when the replayed lines carry their known outcome
//! (`"label": {"fraud": 0|1}`, ignored by scoring), the ranking quality of the answers beside
//! the heuristic's alone on the same transactions.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use crate::contract::{Outcome, OutcomeCounts, parse_transaction};
use crate::evaluation::{average_precision, percentile, roc_auc};
use crate::heuristic;

#[derive(Debug, Default)]
pub struct Summary {
    pub counts: OutcomeCounts,
    request_latencies_us: Vec<f64>,
    request_sizes: Vec<usize>,
    labelled: Vec<Labelled>,
}

#[derive(Debug)]
struct Labelled {
    fraud: bool,
    answer_score: f64,
    heuristic_score: f64,
}

/// The known outcome a replay line may carry: `"label": {"fraud": 1}` or `"label": 1`.
pub fn label_of(item: &Value) -> Option<bool> {
    let label = item.get("label")?;
    let value = label.get("fraud").unwrap_or(label);
    value.as_u64().map(|v| v == 1).or_else(|| value.as_bool())
}

impl Summary {
    /// Record one request: its items, their outcomes (same order) and how long it took.
    pub fn record(&mut self, items: &[Value], outcomes: &[Outcome], elapsed: Duration) {
        self.request_latencies_us.push(elapsed.as_secs_f64() * 1e6);
        self.request_sizes.push(outcomes.len());
        for (item, outcome) in items.iter().zip(outcomes) {
            let Some(answer) = self.counts.add(outcome) else {
                continue;
            };
            if let (Some(fraud), Ok(tx)) = (label_of(item), parse_transaction(item)) {
                self.labelled.push(Labelled {
                    fraud,
                    answer_score: answer.fraud_probability,
                    heuristic_score: heuristic::score(&tx).fraud_probability,
                });
            }
        }
    }

    /// (ROC AUC, AP) of the answers and of the heuristic alone, when labels allow.
    pub fn quality(&self) -> Option<((f64, f64), (f64, f64))> {
        let labels: Vec<bool> = self.labelled.iter().map(|l| l.fraud).collect();
        let answers: Vec<f64> = self.labelled.iter().map(|l| l.answer_score).collect();
        let rules: Vec<f64> = self.labelled.iter().map(|l| l.heuristic_score).collect();
        Some((
            (
                roc_auc(&answers, &labels)?,
                average_precision(&answers, &labels)?,
            ),
            (
                roc_auc(&rules, &labels)?,
                average_precision(&rules, &labels)?,
            ),
        ))
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scored {}: {} ({} model, {} heuristic), {}",
            counted(self.counts.items, "transaction"),
            counted(self.counts.answers(), "answer"),
            self.counts.model_answers,
            self.counts.heuristic_answers,
            counted(self.counts.errors, "error")
        );
        let [low, elevated, high] = self.counts.risk_levels;
        let _ = writeln!(
            out,
            "  risk level        low {low}, elevated {elevated}, high {high}"
        );
        let fallbacks = if self.counts.fallbacks.is_empty() {
            "none".to_owned()
        } else {
            self.counts
                .fallbacks
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "  fallbacks         {fallbacks}");
        let mut sorted = self.request_latencies_us.clone();
        sorted.sort_by(f64::total_cmp);
        if let (Some(p50), Some(p90), Some(p99), Some(max)) = (
            percentile(&sorted, 50.0),
            percentile(&sorted, 90.0),
            percentile(&sorted, 99.0),
            sorted.last(),
        ) {
            let largest = self.request_sizes.iter().max().copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "  latency/request   p50 {p50:.0} us, p90 {p90:.0} us, p99 {p99:.0} us, max {max:.0} us \
                 ({} of up to {})",
                counted(sorted.len(), "request"),
                counted(largest, "transaction")
            );
        }
        let frauds = self.labelled.iter().filter(|l| l.fraud).count();
        match self.quality() {
            Some(((auc, ap), (h_auc, h_ap))) => {
                let _ = writeln!(
                    out,
                    "  labelled          {}, {}",
                    counted(self.labelled.len(), "transaction"),
                    counted(frauds, "fraud")
                );
                let _ = writeln!(out, "                    ROC AUC   AP");
                let _ = writeln!(out, "  answers           {auc:.3}     {ap:.3}");
                let _ = writeln!(out, "  heuristic alone   {h_auc:.3}     {h_ap:.3}");
            }
            None if !self.labelled.is_empty() => {
                let _ = writeln!(
                    out,
                    "  labelled          {}, {} (both classes are needed for AUC/AP)",
                    counted(self.labelled.len(), "transaction"),
                    counted(frauds, "fraud")
                );
            }
            None => {}
        }
        out
    }
}

/// "1 answer", "2 answers": the summary reads right for one item too.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
