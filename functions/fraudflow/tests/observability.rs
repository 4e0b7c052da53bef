//! Observability: EMF lines, the drift check, and logs without raw customer or terminal ids.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fraudflow::contract::Outcome;
use fraudflow::events::EventSource;
use fraudflow::metrics::Telemetry;
use serde_json::{Value, json};
use support::{AmountModel, fake_service, tx};

fn telemetry(extra: &[(&str, &str)]) -> Telemetry {
    let mut vars: std::collections::HashMap<&str, &str> = [
        ("AWS_LAMBDA_FUNCTION_NAME", "fraudflow-test"),
        ("FRAUDFLOW_EMF", "false"),
    ]
    .into();
    vars.extend(extra.iter().copied());
    let config =
        fraudflow::config::Config::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()))
            .expect("config");
    Telemetry::new(&config)
}

async fn outcomes(items: &[Value]) -> Vec<Outcome> {
    let service = fake_service(Some(Arc::new(AmountModel::new(Duration::ZERO))), None, &[]);
    service
        .scorer
        .score_values(items, std::time::Instant::now() + Duration::from_secs(5))
        .await
}

#[tokio::test]
async fn one_emf_document_per_invocation_plus_one_per_fallback_reason() {
    let t = telemetry(&[]);
    let mut items: Vec<Value> = (0..4).map(|i| tx(i, 100.0 + i as f64)).collect();
    items.push(tx(9, 666.0)); // the stand-in model returns NaN for 666: non_finite_output
    items.push(json!({"transaction_id": 10}));
    let outcomes = outcomes(&items).await;
    let (summary, lines) = t.observe(
        EventSource::Sqs,
        &items,
        &outcomes,
        Duration::from_micros(1500),
        Some((-100.0, 10.0)),
    );
    let counts = &summary.counts;
    assert_eq!(
        (
            counts.items,
            counts.model_answers,
            counts.heuristic_answers,
            counts.errors
        ),
        (6, 4, 1, 1)
    );
    assert_eq!(
        counts.fallback(fraudflow::contract::FallbackReason::NonFiniteOutput),
        1
    );
    assert_eq!(lines.len(), 2);
    let main: Value = serde_json::from_str(&lines[0]).expect("json");
    assert_eq!(main["FunctionName"], json!("fraudflow-test"));
    assert_eq!(main["EventSource"], json!("sqs"));
    assert_eq!(main["Latency"], json!(1.5));
    assert_eq!(
        (
            main["Items"].clone(),
            main["ModelAnswers"].clone(),
            main["HeuristicAnswers"].clone()
        ),
        (json!(6), json!(4), json!(1))
    );
    assert_eq!(main["NonFiniteOutputs"], json!(1));
    assert_eq!(main["ErrorItems"], json!(1));
    // Log-likelihoods of the model answers are -100, -101, -102, -103.
    assert_eq!(main["LogLikelihoodMean"], json!(-101.5));
    assert_eq!(
        main["LogLikelihood"],
        json!({"Values": [-103.0, -102.0, -101.0, -100.0], "Counts": [1, 1, 1, 1]})
    );
    assert_eq!(main["DriftScore"], json!(0.15));
    assert_eq!(main["ModelVersion"], json!("test-model"));
    assert_eq!(main["ColdStart"], json!(1));
    let directive = &main["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], json!("Fraudflow"));
    assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
    let names: Vec<&str> = directive["Metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["Name"].as_str().expect("name"))
        .collect();
    for name in [
        "Latency",
        "ModelAnswers",
        "HeuristicAnswers",
        "NonFiniteOutputs",
        "LogLikelihoodMean",
        "LogLikelihood",
        "DriftScore",
        "ColdStart",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let by_reason: Value = serde_json::from_str(&lines[1]).expect("json");
    assert_eq!(by_reason["FallbackReason"], json!("non_finite_output"));
    assert_eq!(by_reason["HeuristicAnswers"], json!(1));
    assert_eq!(
        by_reason["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["FunctionName", "FallbackReason"]])
    );
    // Only the first invocation of a container is a cold start.
    let (_, again) = t.observe(
        EventSource::Direct,
        &items[..1],
        &outcomes[..1],
        Duration::from_millis(1),
        None,
    );
    let second: Value = serde_json::from_str(&again[0]).expect("json");
    assert_eq!(second.get("ColdStart"), None);
}

/// Captures tracing output into a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);
impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn drift_warns_when_the_window_mean_leaves_the_band_and_logs_hash_ids() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let t = telemetry(&[
        ("FRAUDFLOW_DRIFT_WINDOW", "8"),
        ("FRAUDFLOW_DRIFT_THRESHOLD", "0.5"),
    ]);
    // Reference: mean -10, std 2. The stand-in model's log-likelihood is -amount.
    let in_band: Vec<Value> = (0..8).map(|i| tx(i, 10.0)).collect();
    let answers = outcomes(&in_band).await;
    let (summary, _) = t.observe(
        EventSource::Direct,
        &in_band,
        &answers,
        Duration::from_millis(1),
        Some((-10.0, 2.0)),
    );
    assert_eq!(summary.drift_score, Some(0.0));
    let shifted: Vec<Value> = (0..8).map(|i| tx(100 + i, 14.0)).collect();
    let answers = outcomes(&shifted).await;
    let (summary, _) = t.observe(
        EventSource::Direct,
        &shifted,
        &answers,
        Duration::from_millis(1),
        Some((-10.0, 2.0)),
    );
    assert_eq!(summary.drift_score, Some(2.0));

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).expect("json log"))
        .collect();
    let warnings: Vec<&Value> = lines.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert_eq!(warnings[0]["fields"]["drift_score"], json!(2.0));
    let lowest: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "least likely transaction of the window")
        .collect();
    assert_eq!(lowest.len(), 2 * fraudflow::metrics::LOWEST_LOGGED);
    let customer_hash = t.hash_id("c-1");
    assert_eq!(customer_hash.len(), 16);
    assert_eq!(lowest[0]["fields"]["customer"], json!(customer_hash));
    assert!(
        !logs.contains("\"c-1\"") && !logs.contains("\"t-1\""),
        "raw ids leaked: {logs}"
    );
}

#[test]
fn hashed_ids_depend_on_the_salt() {
    let a = telemetry(&[("FRAUDFLOW_LOG_SALT", "one")]);
    let b = telemetry(&[("FRAUDFLOW_LOG_SALT", "two")]);
    assert_eq!(a.hash_id("c-2931"), a.hash_id("c-2931"));
    assert_ne!(a.hash_id("c-2931"), b.hash_id("c-2931"));
    assert_ne!(a.hash_id("c-2931"), a.hash_id("c-2932"));
}
