//! One scoring path for every entry point: validate, run the model within a deadline, fall back
//! to the heuristic item by item, and answer every item in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::contract::{
    Answer, FallbackReason, Outcome, Reason, Source, Transaction, echo_id, parse_transaction,
};
use crate::features::{FeatureRow, feature_row};
use crate::heuristic::{self, HEURISTIC_VERSION};
use crate::manifest::Manifest;
use crate::model::{Predictions, Predictor};

/// How many reasons an answer carries at most.
pub const MAX_REASONS: usize = 3;

/// Batches up to this size may run the model on the calling task (see [`Scorer`]).
pub const INLINE_MAX_ROWS: usize = 64;
/// The model runs inline only if the time left is at least this many times its recent worst call.
pub const INLINE_HEADROOM: u32 = 50;
/// ... and at least this much time is left.
pub const INLINE_MIN_REMAINING: Duration = Duration::from_millis(20);

/// A model ready to serve, with the manifest that describes it.
pub struct LoadedModel {
    pub predictor: Arc<dyn Predictor>,
    pub manifest: Manifest,
}

/// Holds the model once it is loaded; answers with the heuristic until then.
///
/// The deadline: a model call that might not fit runs on tokio's blocking pool under a timeout,
/// so the heuristic can answer when the time is up. That hand-off costs two thread switches
/// (~20-30 µs, most of a batch-1 request once the graph is small), so a small batch runs on the
/// calling task instead when the model's recent worst call, times [`INLINE_HEADROOM`], still fits
/// in the time left. A model that turns slow shows it on its next call (the worst call decays
/// slowly) and goes back under the timeout; the first call, with no history, always does.
#[derive(Default)]
pub struct Scorer {
    model: OnceCell<Arc<LoadedModel>>,
    /// Decaying maximum of recent model-call durations, in microseconds; 0 = no call yet.
    recent_worst_us: Arc<AtomicU64>,
}

impl Scorer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_model(model: LoadedModel) -> Self {
        let scorer = Self::new();
        scorer.install(model);
        scorer
    }

    /// Install the model. The first one wins: a loaded model is never replaced mid-flight.
    pub fn install(&self, model: LoadedModel) -> bool {
        self.model.set(Arc::new(model)).is_ok()
    }

    pub fn model(&self) -> Option<&Arc<LoadedModel>> {
        self.model.get()
    }

    /// Score raw JSON items; one outcome per item, in order.
    pub async fn score_values(&self, items: &[Value], deadline: Instant) -> Vec<Outcome> {
        let parsed: Vec<Result<Transaction, Outcome>> = items
            .iter()
            .map(|item| {
                parse_transaction(item).map_err(|error| Outcome::Error {
                    transaction_id: echo_id(item),
                    error,
                })
            })
            .collect();
        let valid: Vec<&Transaction> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let mut answers = self.score_transactions(&valid, deadline).await.into_iter();
        parsed
            .into_iter()
            .map(|p| match p {
                Ok(_) => answers.next().map_or_else(
                    // score_transactions answers every transaction it is given; this arm
                    // exists so a bug shows up as an error item rather than a lost one.
                    || Outcome::Error {
                        transaction_id: Value::Null,
                        error: crate::contract::ItemError {
                            code: crate::contract::ErrorCode::InternalError,
                            field: None,
                            message: "internal error: no answer was produced".into(),
                        },
                    },
                    Outcome::Answer,
                ),
                Err(error_item) => error_item,
            })
            .collect()
    }

    /// Score validated transactions; exactly one answer each, in order.
    pub async fn score_transactions(&self, txs: &[&Transaction], deadline: Instant) -> Vec<Answer> {
        if txs.is_empty() {
            return Vec::new();
        }
        let Some(model) = self.model.get().cloned() else {
            return fallback_all(txs, FallbackReason::ModelUnavailable);
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return fallback_all(txs, FallbackReason::Deadline);
        }
        let rows: Vec<FeatureRow> = txs.iter().map(|tx| feature_row(tx)).collect();
        if self.fits_inline(rows.len(), remaining) {
            let inference = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                timed(&self.recent_worst_us, || {
                    predict_isolating_failures(model.predictor.as_ref(), &rows)
                })
            }));
            return match inference {
                Ok(inference) => answers(txs, &inference, &model),
                Err(_panic) => {
                    tracing::error!("model inference panicked; heuristic answers");
                    fallback_all(txs, FallbackReason::ModelError)
                }
            };
        }
        let predictor = Arc::clone(&model.predictor);
        let recent_worst = Arc::clone(&self.recent_worst_us);
        // ORT is synchronous; running it on the blocking pool lets the deadline fire while it runs.
        let inference = tokio::task::spawn_blocking(move || {
            timed(&recent_worst, || {
                predict_isolating_failures(predictor.as_ref(), &rows)
            })
        });
        match tokio::time::timeout(remaining, inference).await {
            Err(_elapsed) => {
                tracing::warn!(
                    items = txs.len(),
                    budget_ms = remaining.as_millis() as u64,
                    "model missed the deadline; heuristic answers"
                );
                fallback_all(txs, FallbackReason::Deadline)
            }
            Ok(Err(join_error)) => {
                tracing::error!(error = %join_error, "model inference panicked; heuristic answers");
                fallback_all(txs, FallbackReason::ModelError)
            }
            Ok(Ok(inference)) => answers(txs, &inference, &model),
        }
    }

    /// Whether a batch of `rows` may run on the calling task with `remaining` time left.
    fn fits_inline(&self, rows: usize, remaining: Duration) -> bool {
        let worst_us = self.recent_worst_us.load(Ordering::Relaxed);
        worst_us > 0
            && rows <= INLINE_MAX_ROWS
            && remaining >= INLINE_MIN_REMAINING
            && remaining >= Duration::from_micros(worst_us).saturating_mul(INLINE_HEADROOM)
    }
}

/// Run `call`, folding its duration into the decaying maximum `recent_worst_us` (a slow call
/// counts at once; the memory of it halves over ~11 calls).
fn timed<T>(recent_worst_us: &AtomicU64, call: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = call();
    let took = u64::try_from(started.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let _ = recent_worst_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |worst| {
        Some(took.max(worst - worst / 16))
    });
    result
}

/// One answer per transaction from a model run: the model's, or the heuristic's where the model
/// failed on that row.
fn answers(txs: &[&Transaction], inference: &Inference, model: &LoadedModel) -> Vec<Answer> {
    txs.iter()
        .enumerate()
        .map(|(index, tx)| match inference.row(index) {
            Some((predictions, row)) => model_answer(tx, predictions, row, &model.manifest),
            None => heuristic_answer(tx, FallbackReason::ModelError),
        })
        .collect()
}

/// What the model returned: one batch, or (after a batch failure) one result per row.
enum Inference {
    Batch(Predictions),
    RowByRow(Vec<Option<Predictions>>),
}

impl Inference {
    /// The predictions holding transaction `index`, and its row in them; `None` if the model
    /// failed on it.
    fn row(&self, index: usize) -> Option<(&Predictions, usize)> {
        match self {
            Self::Batch(predictions) => (index < predictions.len()).then_some((predictions, index)),
            Self::RowByRow(rows) => rows.get(index)?.as_ref().map(|p| (p, 0)),
        }
    }
}

/// Predict the batch; if the batch call fails, score row by row so one bad row costs only its
/// own answer (`model_error`), never its neighbours'.
fn predict_isolating_failures(predictor: &dyn Predictor, rows: &[FeatureRow]) -> Inference {
    match predictor.predict(rows) {
        Ok(predictions) => Inference::Batch(predictions),
        Err(batch_error) => {
            if rows.len() > 1 {
                tracing::warn!(error = %batch_error, rows = rows.len(), "batch inference failed; retrying row by row");
            }
            let single = |row: &FeatureRow| match predictor.predict(std::slice::from_ref(row)) {
                Ok(predictions) => Some(predictions),
                Err(error) => {
                    tracing::error!(%error, "inference failed for one row; heuristic answers it");
                    None
                }
            };
            match rows {
                // A single row already failed: no retry.
                [_] => {
                    tracing::error!(error = %batch_error, "inference failed; heuristic answers");
                    Inference::RowByRow(vec![None])
                }
                _ => Inference::RowByRow(rows.iter().map(single).collect()),
            }
        }
    }
}

fn model_answer(
    tx: &Transaction,
    predictions: &Predictions,
    row: usize,
    manifest: &Manifest,
) -> Answer {
    let probability = f64::from(predictions.fraud_probability[row]);
    let log_likelihood = f64::from(predictions.log_likelihood[row]);
    let finite =
        probability.is_finite() && (0.0..=1.0).contains(&probability) && log_likelihood.is_finite();
    if !finite {
        // The transaction id says which item (ids are not personal data; customer and terminal
        // ids stay out of logs).
        tracing::warn!(
            transaction_id = %tx.transaction_id,
            fraud_probability = probability,
            log_likelihood,
            "model output not finite; heuristic answers this item"
        );
        return heuristic_answer(tx, FallbackReason::NonFiniteOutput);
    }
    let thresholds = manifest.risk_thresholds;
    Answer {
        transaction_id: tx.transaction_id.clone(),
        fraud_probability: probability,
        risk_level: heuristic::risk_level(probability, thresholds.elevated, thresholds.high),
        log_likelihood: Some(log_likelihood),
        source: Source::Model,
        fallback_reason: None,
        model_version: manifest.model_version.clone(),
        reasons: top_reasons(predictions.terms(row), &manifest.reasons.terms),
    }
}

/// The largest positive logit terms, merged by feature name, most important first.
fn top_reasons(terms: &[f32], names: &[String]) -> Vec<Reason> {
    let mut merged: Vec<Reason> = Vec::with_capacity(names.len());
    for (value, name) in terms.iter().zip(names) {
        let value = f64::from(*value);
        if !value.is_finite() {
            continue;
        }
        match merged.iter_mut().find(|r| &r.feature == name) {
            Some(reason) => reason.contribution += value,
            None => merged.push(Reason {
                feature: name.clone(),
                contribution: value,
            }),
        }
    }
    merged.retain(|r| r.contribution > 0.0);
    merged.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
    merged.truncate(MAX_REASONS);
    merged
}

pub fn heuristic_answer(tx: &Transaction, reason: FallbackReason) -> Answer {
    let score = heuristic::score(tx);
    Answer {
        transaction_id: tx.transaction_id.clone(),
        fraud_probability: score.fraud_probability,
        risk_level: score.risk_level,
        log_likelihood: None,
        source: Source::Heuristic,
        fallback_reason: Some(reason),
        model_version: HEURISTIC_VERSION.to_owned(),
        reasons: score.reasons.into_iter().take(MAX_REASONS).collect(),
    }
}

fn fallback_all(txs: &[&Transaction], reason: FallbackReason) -> Vec<Answer> {
    txs.iter().map(|tx| heuristic_answer(tx, reason)).collect()
}

/// The moment a request must be answered by: the smaller of the configured budget and the
/// Lambda deadline minus a safety margin (time to serialise and send the answer).
pub fn request_deadline(
    started: Instant,
    budget: Duration,
    lambda_deadline: Option<SystemTime>,
    margin: Duration,
) -> Instant {
    let by_budget = started + budget;
    let Some(lambda_deadline) = lambda_deadline else {
        return by_budget;
    };
    let left = lambda_deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .saturating_sub(margin);
    by_budget.min(Instant::now() + left)
}
