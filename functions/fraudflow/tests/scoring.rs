//! The scoring path with stand-in predictors: fallbacks, deadlines, order and counts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use fraudflow::contract::{ErrorCode, FallbackReason, Outcome, RiskLevel, Source};
use fraudflow::heuristic::HEURISTIC_VERSION;
use fraudflow::model::Predictor;
use fraudflow::scoring::{LoadedModel, Scorer, request_deadline};
use serde_json::{Value, json};
use support::{AmountModel, FailingModel, PanickingModel, manifest, tx};

mod support;

fn scorer(predictor: Arc<dyn Predictor>) -> Scorer {
    Scorer::with_model(LoadedModel {
        predictor,
        manifest: manifest(),
    })
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn answer(outcome: &Outcome) -> &fraudflow::contract::Answer {
    outcome.answer().expect("an answer")
}

#[tokio::test]
async fn model_answers_carry_its_outputs_version_and_reasons() {
    let scorer = scorer(Arc::new(AmountModel::new(Duration::ZERO)));
    let outcomes = scorer
        .score_values(&[tx(1, 80.0), tx(2, 700.0)], far())
        .await;
    assert_eq!(outcomes.len(), 2);
    let low = answer(&outcomes[0]);
    assert_eq!(low.transaction_id, json!(1));
    assert_eq!(low.source, Source::Model);
    assert_eq!(low.fallback_reason, None);
    assert!((low.fraud_probability - 0.08).abs() < 1e-6);
    assert_eq!(low.risk_level, RiskLevel::Low);
    assert_eq!(low.log_likelihood, Some(-80.0));
    assert_eq!(low.model_version, "test-model");
    // "amount" appears twice in the terms and is merged: 1.0 + 0.5; risk term 0.25 * 10.
    let reasons: Vec<(&str, f64)> = low
        .reasons
        .iter()
        .map(|r| (r.feature.as_str(), r.contribution))
        .collect();
    assert_eq!(reasons, vec![("terminal.risk_30d", 2.5), ("amount", 1.5)]);
    assert_eq!(answer(&outcomes[1]).risk_level, RiskLevel::High);
}

#[tokio::test]
async fn a_batch_keeps_order_and_count_with_bad_items_inside() {
    let scorer = scorer(Arc::new(AmountModel::new(Duration::ZERO)));
    let mut bad_amount = tx(2, 10.0);
    bad_amount["amount"] = json!(-3);
    let items = vec![tx(1, 10.0), bad_amount, json!("not an object"), tx(4, 40.0)];
    let outcomes = scorer.score_values(&items, far()).await;
    assert_eq!(outcomes.len(), 4);
    assert_eq!(answer(&outcomes[0]).transaction_id, json!(1));
    match &outcomes[1] {
        Outcome::Error {
            transaction_id,
            error,
        } => {
            assert_eq!(transaction_id, &json!(2));
            assert_eq!(error.code, ErrorCode::InvalidField);
            assert_eq!(error.field.as_deref(), Some("amount"));
            assert_eq!(error.message, "amount must be a finite number >= 0, got -3");
        }
        other => panic!("expected an error item, got {other:?}"),
    }
    match &outcomes[2] {
        Outcome::Error {
            transaction_id,
            error,
        } => {
            assert_eq!(transaction_id, &Value::Null);
            assert_eq!(error.code, ErrorCode::InvalidItem);
        }
        other => panic!("expected an error item, got {other:?}"),
    }
    assert_eq!(answer(&outcomes[3]).transaction_id, json!(4));
    assert!((answer(&outcomes[3]).fraud_probability - 0.04).abs() < 1e-6);
    let encoded = serde_json::to_value(&outcomes[1]).expect("json");
    assert_eq!(
        encoded,
        json!({"transaction_id": 2, "error": {"code": "invalid_field", "field": "amount",
               "message": "amount must be a finite number >= 0, got -3"}})
    );
}

#[tokio::test]
async fn without_a_model_the_heuristic_answers_model_unavailable() {
    let scorer = Scorer::new();
    let outcomes = scorer.score_values(&[tx(1, 10.0)], far()).await;
    let a = answer(&outcomes[0]);
    assert_eq!(a.source, Source::Heuristic);
    assert_eq!(a.fallback_reason, Some(FallbackReason::ModelUnavailable));
    assert_eq!(a.log_likelihood, None);
    assert_eq!(a.model_version, HEURISTIC_VERSION);
    let encoded = serde_json::to_value(a).expect("json");
    assert_eq!(encoded["fallback_reason"], json!("model_unavailable"));
    assert_eq!(encoded["log_likelihood"], Value::Null);
}

#[tokio::test]
async fn a_slow_model_misses_the_deadline_and_the_heuristic_answers_in_time() {
    let model = Arc::new(AmountModel::new(Duration::from_millis(500)));
    let scorer = scorer(model.clone());
    let started = Instant::now();
    let deadline = started + Duration::from_millis(50);
    let outcomes = scorer
        .score_values(&[tx(1, 10.0), tx(2, 20.0)], deadline)
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(400),
        "answered after {took:?}, not at the deadline"
    );
    for outcome in &outcomes {
        assert_eq!(
            answer(outcome).fallback_reason,
            Some(FallbackReason::Deadline)
        );
        assert_eq!(answer(outcome).source, Source::Heuristic);
    }
    assert_eq!(model.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_already_expired_deadline_never_calls_the_model() {
    let model = Arc::new(AmountModel::new(Duration::ZERO));
    let scorer = scorer(model.clone());
    // A Lambda context with 10 ms left and a 50 ms margin: nothing left for the model.
    let lambda_deadline = SystemTime::now() + Duration::from_millis(10);
    let deadline = request_deadline(
        Instant::now(),
        Duration::from_millis(200),
        Some(lambda_deadline),
        Duration::from_millis(50),
    );
    let outcomes = scorer.score_values(&[tx(1, 10.0)], deadline).await;
    assert_eq!(
        answer(&outcomes[0]).fallback_reason,
        Some(FallbackReason::Deadline)
    );
    assert_eq!(model.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn the_deadline_is_the_smaller_of_budget_and_lambda_deadline_minus_margin() {
    let now = Instant::now();
    let budget = Duration::from_millis(200);
    let margin = Duration::from_millis(50);
    let roomy = request_deadline(
        now,
        budget,
        Some(SystemTime::now() + Duration::from_secs(5)),
        margin,
    );
    assert_eq!(roomy, now + budget);
    let tight = request_deadline(
        now,
        budget,
        Some(SystemTime::now() + Duration::from_millis(150)),
        margin,
    );
    let left = tight.saturating_duration_since(now);
    assert!(
        left <= Duration::from_millis(105) && left >= Duration::from_millis(90),
        "{left:?}"
    );
    assert_eq!(request_deadline(now, budget, None, margin), now + budget);
}

#[tokio::test]
async fn a_non_finite_output_falls_back_for_that_item_only() {
    let scorer = scorer(Arc::new(AmountModel::new(Duration::ZERO)));
    let outcomes = scorer
        .score_values(&[tx(1, 10.0), tx(2, 666.0), tx(3, 30.0)], far())
        .await;
    assert_eq!(answer(&outcomes[0]).source, Source::Model);
    assert_eq!(
        answer(&outcomes[1]).fallback_reason,
        Some(FallbackReason::NonFiniteOutput)
    );
    assert_eq!(answer(&outcomes[2]).source, Source::Model);
}

#[tokio::test]
async fn model_errors_and_panics_become_model_error_answers() {
    for predictor in [
        Arc::new(FailingModel) as Arc<dyn Predictor>,
        Arc::new(PanickingModel),
    ] {
        let scorer = scorer(predictor);
        let outcomes = scorer
            .score_values(&[tx(1, 10.0), tx(2, 20.0)], far())
            .await;
        assert_eq!(outcomes.len(), 2);
        for outcome in &outcomes {
            assert_eq!(
                answer(outcome).fallback_reason,
                Some(FallbackReason::ModelError)
            );
        }
    }
}

#[test]
fn a_second_model_never_replaces_the_first() {
    let scorer = scorer(Arc::new(AmountModel::new(Duration::ZERO)));
    let replaced = scorer.install(LoadedModel {
        predictor: Arc::new(FailingModel),
        manifest: manifest(),
    });
    assert!(!replaced);
}

/// Records the thread each call runs on; sleeps for `delay_ms` (changeable between calls).
struct ThreadRecordingModel {
    inner: AmountModel,
    delay_ms: std::sync::atomic::AtomicU64,
    threads: std::sync::Mutex<Vec<std::thread::ThreadId>>,
}

impl Predictor for ThreadRecordingModel {
    fn predict(
        &self,
        rows: &[fraudflow::features::FeatureRow],
    ) -> Result<fraudflow::model::Predictions, fraudflow::error::ModelError> {
        if let Ok(mut threads) = self.threads.lock() {
            threads.push(std::thread::current().id());
        }
        std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
        self.inner.predict(rows)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_fast_model_runs_inline_after_its_first_call_and_a_slow_one_goes_back_under_the_deadline()
{
    let model = Arc::new(ThreadRecordingModel {
        inner: AmountModel::new(Duration::ZERO),
        delay_ms: 0.into(),
        threads: Default::default(),
    });
    let scorer = scorer(model.clone());
    let here = std::thread::current().id();
    for _ in 0..3 {
        let outcomes = scorer.score_values(&[tx(1, 10.0)], far()).await;
        assert_eq!(answer(&outcomes[0]).source, Source::Model);
    }
    let threads = model.threads.lock().expect("threads").clone();
    // No history on the first call: blocking pool. Then the calling thread (no hand-off).
    assert_ne!(threads[0], here);
    assert_eq!(&threads[1..], &[here, here]);

    // The model turns slow: the call that shows it runs inline (the documented cost), and the
    // next one is back under the timeout: the heuristic answers at the deadline.
    model.delay_ms.store(300, Ordering::SeqCst);
    let outcomes = scorer.score_values(&[tx(2, 10.0)], far()).await;
    assert_eq!(answer(&outcomes[0]).source, Source::Model);
    let started = Instant::now();
    let outcomes = scorer
        .score_values(&[tx(3, 10.0)], started + Duration::from_millis(100))
        .await;
    assert!(started.elapsed() < Duration::from_millis(250));
    assert_eq!(
        answer(&outcomes[0]).fallback_reason,
        Some(FallbackReason::Deadline)
    );
    let threads = model.threads.lock().expect("threads").clone();
    assert_eq!(threads.len(), 5);
    assert_ne!(threads[4], here);
}
