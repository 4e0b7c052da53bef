//! Observability: CloudWatch Embedded Metric Format (EMF) lines per invocation, the drift check
//! on the log-likelihood, and sanitised logs of the least likely transactions.
//!
//! Metrics (namespace `Fraudflow`, dimension `FunctionName`): `Latency` (ms), `Items`,
//! `ModelAnswers`, `HeuristicAnswers` (also per `FallbackReason`), `ErrorItems`,
//! `NonFiniteOutputs`, `LogLikelihoodMean` and `LogLikelihood` (a histogram as EMF values and
//! counts), `DriftScore`, and on the first invocation `ColdStart` and `ModelLoadTime` (ms).
//! `ModelVersion` and `EventSource` ride along as properties.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::contract::{FallbackReason, Outcome, OutcomeCounts};
use crate::events::EventSource;
use crate::service::LoadReport;

pub const NAMESPACE: &str = "Fraudflow";
/// How many of the least likely transactions of each drift window are logged.
pub const LOWEST_LOGGED: usize = 5;

pub struct Telemetry {
    function_name: String,
    emit: bool,
    cold: AtomicBool,
    load: Mutex<Option<(u128, Option<String>)>>,
    drift: Mutex<DriftWindow>,
    drift_threshold: f64,
    salt: String,
}

/// The last `capacity` log-likelihoods and the least likely transactions seen in the window.
#[derive(Debug, Default)]
struct DriftWindow {
    capacity: usize,
    values: VecDeque<f64>,
    sum: f64,
    since_report: usize,
    lowest: Vec<LowLikelihood>,
    out_of_band: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct LowLikelihood {
    log_likelihood: f64,
    transaction_id: Value,
    customer: String,
    terminal: String,
    amount: f64,
}

/// What one invocation produced, for the metrics line.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationSummary {
    pub counts: OutcomeCounts,
    pub log_likelihood_mean: Option<f64>,
    pub drift_score: Option<f64>,
}

impl Telemetry {
    pub fn new(config: &Config) -> Self {
        Self {
            function_name: config
                .function_name
                .clone()
                .unwrap_or_else(|| "local".to_owned()),
            emit: config.emit_metrics,
            cold: AtomicBool::new(true),
            load: Mutex::new(None),
            drift: Mutex::new(DriftWindow {
                capacity: config.drift_window,
                ..DriftWindow::default()
            }),
            drift_threshold: config.drift_threshold,
            salt: config.log_salt.clone(),
        }
    }

    pub fn record_load(&self, report: &LoadReport) {
        if let Ok(mut load) = self.load.lock() {
            *load = Some((report.elapsed_ms, report.model_version.clone()));
        }
    }

    /// A short salted hash of an id: stable for correlation, not reversible without the salt.
    pub fn hash_id(&self, id: &str) -> String {
        let digest = Sha256::digest([self.salt.as_bytes(), b":", id.as_bytes()].concat());
        hex::encode(&digest[..8])
    }

    /// Account for one invocation; returns the EMF lines (also written to stdout when enabled).
    pub fn observe(
        &self,
        source: EventSource,
        items: &[Value],
        outcomes: &[Outcome],
        elapsed: Duration,
        reference: Option<(f64, f64)>,
    ) -> (InvocationSummary, Vec<String>) {
        let mut summary = InvocationSummary {
            counts: OutcomeCounts::default(),
            log_likelihood_mean: None,
            drift_score: None,
        };
        let mut log_likelihoods = Vec::with_capacity(outcomes.len());
        let mut model_version = None;
        let mut lows = Vec::new();
        for (item, outcome) in items.iter().zip(outcomes) {
            let Some(answer) = summary.counts.add(outcome) else {
                continue;
            };
            if let Some(ll) = answer.log_likelihood {
                log_likelihoods.push(ll);
                model_version.get_or_insert_with(|| answer.model_version.clone());
                lows.push(LowLikelihood {
                    log_likelihood: ll,
                    transaction_id: answer.transaction_id.clone(),
                    customer: self.hash_id(&id_text(item.get("customer_id"))),
                    terminal: self.hash_id(&id_text(item.get("terminal_id"))),
                    amount: item
                        .get("amount")
                        .and_then(Value::as_f64)
                        .unwrap_or(f64::NAN),
                });
            }
        }
        if !log_likelihoods.is_empty() {
            summary.log_likelihood_mean =
                Some(log_likelihoods.iter().sum::<f64>() / log_likelihoods.len() as f64);
        }
        summary.drift_score = self.update_drift(&log_likelihoods, lows, reference);
        let lines = self.emf_lines(source, &summary, &log_likelihoods, elapsed, model_version);
        if self.emit {
            let mut stdout = std::io::stdout().lock();
            for line in &lines {
                let _ = stdout.write_all(line.as_bytes());
                let _ = stdout.write_all(b"\n");
            }
            let _ = stdout.flush();
        }
        (summary, lines)
    }

    fn update_drift(
        &self,
        values: &[f64],
        mut lows: Vec<LowLikelihood>,
        reference: Option<(f64, f64)>,
    ) -> Option<f64> {
        let Ok(mut window) = self.drift.lock() else {
            return None;
        };
        for value in values {
            window.values.push_back(*value);
            window.sum += value;
            if window.values.len() > window.capacity
                && let Some(old) = window.values.pop_front()
            {
                window.sum -= old;
            }
        }
        window.since_report += values.len();
        window.lowest.append(&mut lows);
        window
            .lowest
            .sort_by(|a, b| a.log_likelihood.total_cmp(&b.log_likelihood));
        window.lowest.truncate(LOWEST_LOGGED);
        let (reference_mean, reference_std) = reference?;
        if window.values.is_empty() || reference_std <= 0.0 {
            return None;
        }
        let mean = window.sum / window.values.len() as f64;
        let score = (mean - reference_mean).abs() / reference_std;
        let full = window.values.len() >= window.capacity;
        if full && window.since_report >= window.capacity {
            // Once per window: the least likely transactions, ids hashed, for investigation.
            for low in window.lowest.drain(..) {
                tracing::info!(
                    log_likelihood = low.log_likelihood,
                    transaction_id = %low.transaction_id,
                    customer = %low.customer,
                    terminal = %low.terminal,
                    amount = low.amount,
                    "least likely transaction of the window"
                );
            }
            window.since_report = 0;
            let out = score > self.drift_threshold;
            if out {
                tracing::warn!(
                    window_mean = mean,
                    reference_mean,
                    reference_std,
                    drift_score = score,
                    threshold = self.drift_threshold,
                    window = window.values.len(),
                    "log-likelihood drift: traffic no longer looks like the training data"
                );
            } else if window.out_of_band {
                tracing::info!(
                    drift_score = score,
                    "log-likelihood back within the drift band"
                );
            }
            window.out_of_band = out;
        }
        Some(score)
    }

    fn emf_lines(
        &self,
        source: EventSource,
        summary: &InvocationSummary,
        log_likelihoods: &[f64],
        elapsed: Duration,
        model_version: Option<String>,
    ) -> Vec<String> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut metrics = vec![
            json!({"Name": "Latency", "Unit": "Milliseconds"}),
            json!({"Name": "Items", "Unit": "Count"}),
            json!({"Name": "ModelAnswers", "Unit": "Count"}),
            json!({"Name": "HeuristicAnswers", "Unit": "Count"}),
            json!({"Name": "ErrorItems", "Unit": "Count"}),
            json!({"Name": "NonFiniteOutputs", "Unit": "Count"}),
        ];
        let mut document = json!({
            "FunctionName": self.function_name,
            "EventSource": source.as_str(),
            "Latency": elapsed.as_secs_f64() * 1e3,
            "Items": summary.counts.items,
            "ModelAnswers": summary.counts.model_answers,
            "HeuristicAnswers": summary.counts.heuristic_answers,
            "ErrorItems": summary.counts.errors,
            "NonFiniteOutputs": summary.counts.fallback(FallbackReason::NonFiniteOutput),
        });
        let mut put = |name: &str, unit: &str, value: Value| {
            metrics.push(json!({"Name": name, "Unit": unit}));
            document[name] = value;
        };
        if let Some(mean) = summary.log_likelihood_mean {
            put("LogLikelihoodMean", "None", json!(mean));
            put("LogLikelihood", "None", histogram(log_likelihoods));
        }
        if let Some(score) = summary.drift_score {
            put("DriftScore", "None", json!(score));
        }
        if self.cold.swap(false, Ordering::SeqCst) {
            put("ColdStart", "Count", json!(1));
            if let Ok(load) = self.load.lock()
                && let Some((elapsed_ms, _)) = load.as_ref()
            {
                put("ModelLoadTime", "Milliseconds", json!(*elapsed_ms as f64));
            }
        }
        if let Some(version) = model_version {
            document["ModelVersion"] = json!(version);
        }
        document["_aws"] = json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["FunctionName"]], "Metrics": metrics}]
        });
        let mut lines = vec![document.to_string()];
        for (reason, count) in &summary.counts.fallbacks {
            lines.push(
                json!({
                    "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE, "Dimensions": [["FunctionName", "FallbackReason"]],
                        "Metrics": [{"Name": "HeuristicAnswers", "Unit": "Count"}]}]},
                    "FunctionName": self.function_name,
                    "FallbackReason": reason,
                    "HeuristicAnswers": count,
                })
                .to_string(),
            );
        }
        lines
    }
}

/// EMF values/counts: log-likelihoods rounded to half units (EMF takes at most 100 values).
fn histogram(values: &[f64]) -> Value {
    let mut buckets: BTreeMap<i64, u64> = BTreeMap::new();
    for value in values {
        *buckets.entry((value * 2.0).round() as i64).or_default() += 1;
    }
    let (keys, counts): (Vec<f64>, Vec<u64>) = buckets
        .into_iter()
        .take(100)
        .map(|(k, c)| (k as f64 / 2.0, c))
        .unzip();
    json!({"Values": keys, "Counts": counts})
}

fn id_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}
