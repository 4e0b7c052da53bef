//! Every event source through the handler: shapes, limits, exact errors, delivery, and faults.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fraudflow::handler::{HandlerError, handle, handle_payload};
use serde_json::{Value, json};
use support::{AmountModel, RecordingSink, event_file, fake_service, tx};

async fn call(
    service: &fraudflow::service::Service,
    payload: Value,
) -> Result<Value, HandlerError> {
    handle_payload(payload, service, Instant::now(), None).await
}

fn model() -> Option<Arc<dyn fraudflow::model::Predictor>> {
    Some(Arc::new(AmountModel::new(Duration::ZERO)))
}

fn http_body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body")
}

fn http_event(body: &str, base64: bool, method: &str) -> Value {
    let mut event = event_file("http-api.json");
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(base64);
    event["requestContext"]["http"]["method"] = json!(method);
    event
}

#[tokio::test]
async fn direct_invoke_answers_single_batch_and_empty_batch() {
    let service = fake_service(model(), None, &[]);
    let single = call(&service, tx(7, 10.0)).await.expect("ok");
    assert_eq!(single["transaction_id"], json!(7));
    assert_eq!(single["source"], json!("model"));
    let batch = call(
        &service,
        json!({"transactions": [tx(1, 1.0), tx(1, 2.0), json!({"amount": 3})]}),
    )
    .await
    .expect("ok");
    let results = batch["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    // Duplicate ids are answered each, in order; the third item names its first missing field.
    assert_eq!(results[0]["transaction_id"], json!(1));
    assert_eq!(results[1]["transaction_id"], json!(1));
    assert!((results[1]["fraud_probability"].as_f64().expect("p") - 0.002).abs() < 1e-6);
    assert_eq!(
        results[2],
        json!({"transaction_id": null, "error": {"code": "missing_field", "field": "transaction_id", "message": "transaction_id is required"}})
    );
    assert_eq!(
        call(&service, json!({"transactions": []}))
            .await
            .expect("ok"),
        json!({"results": []})
    );
}

#[tokio::test]
async fn direct_invoke_rejects_unusable_requests_with_a_named_reason() {
    let service = fake_service(model(), None, &[("FRAUDFLOW_MAX_BATCH_ITEMS", "2")]);
    let cases = [
        (
            json!("hello"),
            "invalid_request",
            "expected a transaction object or {\"transactions\": [...]}, got a string",
        ),
        (
            json!(null),
            "invalid_request",
            "expected a transaction object or {\"transactions\": [...]}, got null",
        ),
        (
            json!({"transactions": {"a": 1}}),
            "invalid_request",
            "transactions must be an array of transaction objects, got an object",
        ),
        (
            json!({"transactions": [1, 2, 3]}),
            "too_many_items",
            "transactions holds 3 items; the limit is 2 per request: split the batch",
        ),
    ];
    for (payload, code, message) in cases {
        let answer = call(&service, payload).await.expect("never fails");
        assert_eq!(answer, json!({"error": {"code": code, "message": message}}));
    }
}

#[tokio::test]
async fn the_http_api_example_is_answered_200_with_every_item() {
    let service = fake_service(model(), None, &[]);
    let response = call(&service, event_file("http-api.json"))
        .await
        .expect("ok");
    assert_eq!(response["statusCode"], json!(200));
    assert_eq!(
        response["headers"]["content-type"],
        json!("application/json")
    );
    let body = http_body(&response);
    let sent = event_file("direct-batch.json");
    let results = body["results"].as_array().expect("results");
    assert_eq!(
        results.len(),
        sent["transactions"].as_array().expect("array").len()
    );
    assert_eq!(
        results[3]["error"]["message"],
        json!("amount must be a finite number >= 0, got -5")
    );
    assert_eq!(
        results.iter().filter(|r| r["source"] == "model").count(),
        results.len() - 1
    );
}

#[tokio::test]
async fn the_function_url_example_with_a_base64_body_is_answered() {
    let service = fake_service(model(), None, &[]);
    let response = call(&service, event_file("function-url.json"))
        .await
        .expect("ok");
    assert_eq!(response["statusCode"], json!(200));
    let body = http_body(&response);
    assert_eq!(
        body["transaction_id"],
        event_file("direct-single.json")["transaction_id"]
    );
    assert_eq!(body["source"], json!("model"));
}

#[tokio::test]
async fn http_errors_are_400_or_413_with_a_json_body_naming_the_problem() {
    let service = fake_service(
        model(),
        None,
        &[
            ("FRAUDFLOW_MAX_BODY_BYTES", "1000"),
            ("FRAUDFLOW_MAX_BATCH_ITEMS", "3"),
        ],
    );
    let big = json!({"transactions": [tx(1, 1.0), tx(2, 1.0), tx(3, 1.0), tx(4, 1.0)]}).to_string();
    let four = json!({"transactions": [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]}).to_string();
    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<(Value, u16, &str, String)> = vec![
        (
            http_event("{not json", false, "POST"),
            400,
            "invalid_json",
            "the body is not JSON: key must be a string at line 1 column 2".into(),
        ),
        (
            http_event("[1,2]", false, "POST"),
            400,
            "invalid_request",
            "expected a transaction object or {\"transactions\": [...]}, got an array".into(),
        ),
        (
            http_event("{\"amount\": NaN}", false, "POST"),
            400,
            "invalid_json",
            "the body is not JSON: expected value at line 1 column 12".into(),
        ),
        (
            http_event("{\"amount\": 1e400}", false, "POST"),
            400,
            "invalid_json",
            "the body is not JSON: number out of range at line 1 column 16".into(),
        ),
        (
            http_event(&nested, false, "POST"),
            400,
            "invalid_json",
            "the body is not JSON: recursion limit exceeded at line 1 column 128".into(),
        ),
        (
            http_event("e30=", false, "GET"),
            400,
            "invalid_request",
            "use POST with a JSON body, got GET".into(),
        ),
        (
            http_event("%%%", true, "POST"),
            400,
            "invalid_json",
            "the body is not valid base64: Invalid symbol 37, offset 0.".into(),
        ),
        (
            http_event(&big, false, "POST"),
            413,
            "body_too_large",
            format!(
                "the body is {} bytes; the limit is 1000 bytes: split the batch",
                big.len()
            ),
        ),
        (
            http_event(&four, false, "POST"),
            413,
            "too_many_items",
            "transactions holds 4 items; the limit is 3 per request: split the batch".into(),
        ),
    ];
    for (event, status, code, message) in cases {
        let response = call(&service, event).await.expect("never fails");
        assert_eq!(response["statusCode"], json!(status), "{message}");
        assert_eq!(
            http_body(&response),
            json!({"error": {"code": code, "message": message}})
        );
    }
}

#[tokio::test]
async fn sqs_reports_exactly_the_undecodable_records_and_delivers_the_rest() {
    let sink = Arc::new(RecordingSink::default());
    let service = fake_service(model(), Some(sink.clone()), &[]);
    let response = call(&service, event_file("sqs.json")).await.expect("ok");
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "msg-3"}]})
    );
    let delivered = sink.delivered.lock().expect("lock").clone();
    let ids: Vec<&str> = delivered.iter().map(|m| m.source_id.as_str()).collect();
    assert_eq!(ids, ["msg-1", "msg-2"]);
    assert_eq!(
        delivered[0].body["transaction_id"],
        event_file("direct-single.json")["transaction_id"]
    );
    assert_eq!(
        delivered[1].body["results"]
            .as_array()
            .expect("results")
            .len(),
        3
    );
}

#[tokio::test]
async fn an_sqs_record_whose_answer_was_not_delivered_is_retried() {
    let sink = Arc::new(RecordingSink {
        refuse: vec!["msg-2".into()],
        ..Default::default()
    });
    let service = fake_service(model(), Some(sink.clone()), &[]);
    let response = call(&service, event_file("sqs.json")).await.expect("ok");
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "msg-3"}, {"itemIdentifier": "msg-2"}]})
    );
    assert_eq!(sink.delivered.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn without_a_results_destination_every_sqs_record_is_failed_not_lost() {
    let service = fake_service(model(), None, &[]);
    let response = call(&service, event_file("sqs.json")).await.expect("ok");
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().expect("id"))
        .collect();
    assert_eq!(failed, ["msg-3", "msg-1", "msg-2"]);
}

#[tokio::test]
async fn a_panic_fails_the_sqs_event_for_retry_and_the_next_invocation_works() {
    let exploding = Arc::new(RecordingSink {
        panic: true,
        ..Default::default()
    });
    let service = fake_service(model(), Some(exploding), &[]);
    let error = call(&service, event_file("sqs.json"))
        .await
        .expect_err("the panic fails the event");
    assert_eq!(
        error.to_string(),
        "internal error while scoring a sqs event: sink exploded"
    );
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "fraudflow.InternalError");
    // Same process, same service: the next invocation is answered normally.
    let next = call(&service, tx(9, 10.0)).await.expect("ok");
    assert_eq!(next["source"], json!("model"));
}

#[tokio::test]
async fn eventbridge_answers_go_to_the_destination_and_failures_fail_the_event() {
    let sink = Arc::new(RecordingSink::default());
    let service = fake_service(model(), Some(sink.clone()), &[]);
    let answer = call(&service, event_file("eventbridge.json"))
        .await
        .expect("ok");
    assert_eq!(answer["source"], json!("model"));
    let delivered = sink.delivered.lock().expect("lock").clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].source_id,
        "6a7e8feb-b491-4cf7-a9f1-bf3703467718"
    );
    assert_eq!(delivered[0].body, answer);

    let refusing = Arc::new(RecordingSink {
        refuse: vec!["6a7e8feb-b491-4cf7-a9f1-bf3703467718".into()],
        ..Default::default()
    });
    let service = fake_service(model(), Some(refusing), &[]);
    let error = call(&service, event_file("eventbridge.json"))
        .await
        .expect_err("not delivered");
    assert_eq!(
        error.to_string(),
        "the answer for EventBridge event 6a7e8feb-b491-4cf7-a9f1-bf3703467718 could not be delivered to recording sink: queue refused the message"
    );
}

#[tokio::test]
async fn a_context_with_milliseconds_left_gets_heuristic_answers_before_the_deadline() {
    // The model would take 3 s; the Lambda deadline is 400 ms away with a 100 ms margin.
    let service = fake_service(
        Some(Arc::new(AmountModel::new(Duration::from_secs(3)))),
        None,
        &[("FRAUDFLOW_DEADLINE_MARGIN_MS", "100")],
    );
    let mut context = lambda_runtime::Context::default();
    let deadline = std::time::SystemTime::now() + Duration::from_millis(400);
    context.deadline = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let answer = handle(
        lambda_runtime::LambdaEvent::new(tx(1, 10.0), context),
        &service,
    )
    .await
    .expect("ok");
    assert!(
        std::time::SystemTime::now() < deadline,
        "answered after the Lambda deadline"
    );
    assert_eq!(answer["fallback_reason"], json!("deadline"));
    assert_eq!(answer["source"], json!("heuristic"));
}

#[tokio::test]
async fn one_failing_row_falls_back_alone() {
    let service = fake_service(Some(Arc::new(support::PickyModel)), None, &[]);
    let batch = call(
        &service,
        json!({"transactions": [tx(1, 10.0), tx(2, 13.0), tx(3, 30.0)]}),
    )
    .await
    .expect("ok");
    let sources: Vec<(&str, &Value)> = batch["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["source"].as_str().expect("s"), &r["fallback_reason"]))
        .collect();
    assert_eq!(
        sources,
        [
            ("model", &Value::Null),
            ("heuristic", &json!("model_error")),
            ("model", &Value::Null)
        ]
    );
}

#[tokio::test]
async fn huge_finite_amounts_get_a_finite_answer_or_a_field_error() {
    let service = fake_service(model(), None, &[]);
    // The stand-in model returns amount / 1000 as the probability: 1e38 is out of [0, 1].
    let answer = call(&service, tx(1, 1e38)).await.expect("ok");
    assert_eq!(answer["fallback_reason"], json!("non_finite_output"));
    assert!(answer["fraud_probability"].as_f64().expect("p").is_finite());
    // Past float32's range the model input itself would be infinite: the caller is told.
    let refused = call(&service, tx(2, 1e300)).await.expect("ok");
    assert_eq!(
        refused["error"],
        json!({"code": "invalid_field", "field": "amount",
               "message": "amount is beyond the model's float32 range (at most 3.4e38), got 1e+300"})
    );
}

#[tokio::test]
async fn an_empty_sqs_event_and_a_rest_api_event_get_clear_answers() {
    let service = fake_service(model(), Some(Arc::new(RecordingSink::default())), &[]);
    let empty = call(&service, json!({"Records": []})).await.expect("ok");
    assert_eq!(empty, json!({"batchItemFailures": []}));
    let rest = json!({"resource": "/score", "path": "/score", "httpMethod": "POST", "headers": {},
                      "requestContext": {"resourcePath": "/score", "httpMethod": "POST"},
                      "body": "{}", "isBase64Encoded": false});
    let response = call(&service, rest).await.expect("ok");
    assert_eq!(response["statusCode"], json!(400));
    assert_eq!(
        http_body(&response),
        json!({"error": {"code": "invalid_event", "message": "API Gateway REST API events (payload format 1.0) are not supported: use an HTTP API or a Function URL (payload format 2.0)"}})
    );
}
