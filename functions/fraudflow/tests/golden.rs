//! Golden vectors: the Rust path (contract -> features -> ort) reproduces PyTorch's answers for
//! the bundled model, transaction by transaction.

mod support;

use std::time::{Duration, Instant};

use fraudflow::contract::{Outcome, Source};
use fraudflow::service::Service;
use serde_json::Value;

fn golden() -> Value {
    let path = support::bundled_model().join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden.json is JSON")
}

#[tokio::test]
async fn rust_answers_equal_pytorch_answers_for_every_golden_case() {
    let model_dir = support::bundled_model();
    let (service, report) =
        Service::start(support::config(&model_dir.display().to_string(), &[])).await;
    assert_eq!(report.error, None, "the bundled model must load");
    let golden = golden();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(model_dir.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(
        golden["model_version"], manifest["model_version"],
        "golden.json belongs to this model"
    );
    assert_eq!(
        report.model_version.as_deref(),
        manifest["model_version"].as_str()
    );

    let cases = golden["cases"].as_array().expect("cases");
    assert!(
        cases.len() >= 50,
        "expected at least 50 golden cases, got {}",
        cases.len()
    );
    let transactions: Vec<Value> = cases.iter().map(|c| c["transaction"].clone()).collect();
    // The whole set as one batch, and each case alone: batching must not change an answer.
    let deadline = || Instant::now() + Duration::from_secs(30);
    let batched = service.scorer.score_values(&transactions, deadline()).await;
    assert_eq!(batched.len(), cases.len());
    let mut frauds = 0;
    for (index, (case, outcome)) in cases.iter().zip(&batched).enumerate() {
        let single = service
            .scorer
            .score_values(std::slice::from_ref(&transactions[index]), deadline())
            .await;
        for got in [outcome, &single[0]] {
            let Outcome::Answer(answer) = got else {
                panic!("case {index}: {got:?}")
            };
            let expected = &case["expected"];
            let p = expected["fraud_probability"].as_f64().expect("p");
            let ll = expected["log_likelihood"].as_f64().expect("ll");
            assert_eq!(answer.source, Source::Model, "case {index}");
            assert_eq!(answer.transaction_id, case["transaction"]["transaction_id"]);
            assert!(
                (answer.fraud_probability - p).abs() <= 1e-5,
                "case {index}: probability {} vs PyTorch {p}",
                answer.fraud_probability
            );
            let got_ll = answer.log_likelihood.expect("log-likelihood");
            assert!(
                (got_ll - ll).abs() <= 1e-4 * ll.abs().max(1.0),
                "case {index}: log-likelihood {got_ll} vs PyTorch {ll}"
            );
            assert_eq!(
                answer.risk_level.as_str(),
                expected["risk_level"].as_str().expect("risk"),
                "case {index}"
            );
            assert!(answer.reasons.len() <= 3);
        }
        if case["label"].as_u64() == Some(1) {
            frauds += 1;
        }
    }
    assert!(
        frauds >= 15,
        "golden cases include at least 15 frauds, got {frauds}"
    );
}
