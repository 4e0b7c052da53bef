//! Faults with real local servers: S3 down at cold start then back, S3 too slow for the init
//! budget, and the results destination (SQS queue, EventBridge bus) on moto.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fraudflow::artifact::ArtifactStore;
use fraudflow::contract::{FallbackReason, Outcome, Source};
use fraudflow::handler::handle_payload;
use fraudflow::service::Service;
use fraudflow::sink::{EventBridgeSink, ResultsSink, SOURCE_ID_ATTRIBUTE, SqsSink};
use serde_json::{Value, json};
use support::{
    CountingProxy, Moto, event_file, fake_service, free_port, s3_client, sdk_config, upload_dir,
};

async fn first_answer(service: &Service) -> fraudflow::contract::Answer {
    let item = event_file("direct-single.json");
    match service
        .scorer
        .score_values(&[item], Instant::now() + Duration::from_secs(10))
        .await
        .remove(0)
    {
        Outcome::Answer(answer) => answer,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_at_cold_start_then_back_resumes_model_answers_without_restart() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = support::config(
        "s3://models/v1/",
        &[
            ("FRAUDFLOW_MODEL_RETRY_MS", "200"),
            ("FRAUDFLOW_INIT_BUDGET_MS", "3000"),
        ],
    );
    let (service, report) =
        Service::start_with(config, ArtifactStore::with_s3(s3_client(&endpoint)), None).await;
    let error = report.error.expect("nothing listens yet");
    assert!(
        error.starts_with("could not read s3://models/v1/manifest.json"),
        "{error}"
    );
    let answer = first_answer(&service).await;
    assert_eq!(
        (answer.source, answer.fallback_reason),
        (Source::Heuristic, Some(FallbackReason::ModelUnavailable))
    );

    // S3 comes back on the same address with the artifact; the background retry finds it.
    let moto = Moto::start_on(port).await;
    upload_dir(
        &s3_client(&moto.endpoint),
        "models",
        "v1/",
        &support::bundled_model(),
    )
    .await;
    let started = Instant::now();
    while service.scorer.model().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the model never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = first_answer(&service).await;
    assert_eq!(answer.source, Source::Model);
    assert_eq!(answer.fallback_reason, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_s3_never_makes_init_exceed_its_budget() {
    let moto = Moto::start().await;
    upload_dir(
        &s3_client(&moto.endpoint),
        "models",
        "v1/",
        &support::bundled_model(),
    )
    .await;
    let slow = CountingProxy::start_slow(&moto.endpoint, Duration::from_secs(5)).await;
    let config = support::config(
        "s3://models/v1/",
        &[
            ("FRAUDFLOW_INIT_BUDGET_MS", "800"),
            ("FRAUDFLOW_MODEL_RETRY_MS", "600000"),
        ],
    );
    let started = Instant::now();
    let (service, report) = Service::start_with(
        config,
        ArtifactStore::with_s3(s3_client(&slow.endpoint)),
        None,
    )
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "init took {took:?} with a budget of 800 ms"
    );
    assert_eq!(
        report.error.as_deref(),
        Some(
            "could not read s3://models/v1/: model load did not finish within the init budget of 800 ms"
        )
    );
    assert_eq!(
        first_answer(&service).await.fallback_reason,
        Some(FallbackReason::ModelUnavailable)
    );
}

/// Handle one example event with the stand-in model and the given results destination.
async fn handle_with_sink(
    sink: Arc<dyn ResultsSink>,
    event: &str,
) -> Result<Value, fraudflow::handler::HandlerError> {
    let service = fake_service(
        Some(Arc::new(support::AmountModel::new(Duration::ZERO))),
        Some(sink),
        &[],
    );
    handle_payload(event_file(event), &service, Instant::now(), None).await
}

async fn sqs_messages(
    client: &aws_sdk_sqs::Client,
    url: &str,
    expected: usize,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut messages = Vec::new();
    let started = Instant::now();
    while messages.len() < expected && started.elapsed() < Duration::from_secs(10) {
        let batch = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        messages.extend(batch.messages().iter().cloned());
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_reach_a_real_sqs_queue_and_an_eventbridge_bus() {
    let moto = Moto::start().await;
    let shared = sdk_config(&moto.endpoint);
    let sqs = aws_sdk_sqs::Client::new(&shared);
    let results_url = sqs
        .create_queue()
        .queue_name("results")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();

    // SQS trigger -> answers on the results queue, one message per decodable record.
    let sink: Arc<dyn ResultsSink> = Arc::new(SqsSink {
        client: sqs.clone(),
        queue_url: results_url.clone(),
    });
    let response = handle_with_sink(sink, "sqs.json").await.expect("ok");
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "msg-3"}]})
    );
    let messages = sqs_messages(&sqs, &results_url, 2).await;
    assert_eq!(messages.len(), 2);
    let mut by_source: Vec<(String, Value)> = messages
        .iter()
        .map(|m| {
            let source = m
                .message_attributes()
                .and_then(|a| a.get(SOURCE_ID_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .expect("attribute");
            (
                source.to_owned(),
                serde_json::from_str(m.body().expect("body")).expect("json"),
            )
        })
        .collect();
    by_source.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(by_source[0].0, "msg-1");
    assert_eq!(
        by_source[0].1["transaction_id"],
        event_file("direct-single.json")["transaction_id"]
    );
    assert_eq!(by_source[1].0, "msg-2");
    assert_eq!(
        by_source[1].1["results"].as_array().expect("results").len(),
        3
    );

    // A results queue that does not exist: every decodable record is reported for retry.
    let missing: Arc<dyn ResultsSink> = Arc::new(SqsSink {
        client: sqs.clone(),
        queue_url: format!("{}/123456789012/nope", moto.endpoint),
    });
    let response = handle_with_sink(missing, "sqs.json").await.expect("ok");
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "msg-3"}, {"itemIdentifier": "msg-1"}, {"itemIdentifier": "msg-2"}]})
    );

    // EventBridge trigger -> answer on a bus; a rule forwards it to a queue we can read.
    let events = aws_sdk_eventbridge::Client::new(&shared);
    events
        .create_event_bus()
        .name("fraud-answers")
        .send()
        .await
        .expect("bus");
    let forward_url = sqs
        .create_queue()
        .queue_name("forwarded")
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let forward_arn = "arn:aws:sqs:us-east-1:123456789012:forwarded";
    events
        .put_rule()
        .name("all-answers")
        .event_bus_name("fraud-answers")
        .event_pattern(json!({"source": ["fraudflow"]}).to_string())
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule("all-answers")
        .event_bus_name("fraud-answers")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(forward_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
    let bus: Arc<dyn ResultsSink> = Arc::new(EventBridgeSink {
        client: events.clone(),
        bus_name: "fraud-answers".into(),
    });
    let service = fake_service(
        Some(Arc::new(support::AmountModel::new(Duration::ZERO))),
        Some(bus),
        &[],
    );
    let answer = handle_payload(
        event_file("eventbridge.json"),
        &service,
        Instant::now(),
        None,
    )
    .await
    .expect("delivered");
    let forwarded = sqs_messages(&sqs, &forward_url, 1).await;
    assert_eq!(forwarded.len(), 1);
    let envelope: Value = serde_json::from_str(forwarded[0].body().expect("body")).expect("json");
    assert_eq!(envelope["source"], json!("fraudflow"));
    assert_eq!(envelope["detail-type"], json!("fraudflow.answer"));
    assert_eq!(envelope["detail"], answer);
}
