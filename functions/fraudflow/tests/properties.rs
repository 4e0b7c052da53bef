//! Property tests on every decoder: whatever arrives, nothing panics, and every item in gets
//! exactly one answer or one error out, in order.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fraudflow::handler::handle_payload;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use support::{AmountModel, RecordingSink, fake_service, tx};

/// Arbitrary JSON, a few levels deep, biased towards the field names the decoders look at.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("transaction_id".to_owned()),
        Just("amount".to_owned()),
        Just("timestamp".to_owned()),
        Just("customer".to_owned()),
        Just("terminal".to_owned()),
        Just("nb_tx_1d".to_owned()),
        Just("risk_7d".to_owned()),
        Just("transactions".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A real transaction with some fields replaced by arbitrary values.
fn mangled_transaction() -> impl Strategy<Value = Value> {
    (
        any::<i64>(),
        prop::collection::vec(
            (
                "amount|timestamp|customer|terminal|transaction_id|customer_id",
                any_json(),
            ),
            0..3,
        ),
    )
        .prop_map(|(id, changes)| {
            let mut item = tx(id, 42.0);
            for (field, value) in changes {
                item[field.as_str()] = value;
            }
            item
        })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn direct_batches_answer_every_item_in_order(items in prop::collection::vec(prop_oneof![mangled_transaction(), any_json()], 0..12)) {
        let service = fake_service(Some(Arc::new(AmountModel::new(Duration::ZERO))), None, &[]);
        let response = runtime().block_on(handle_payload(json!({"transactions": items.clone()}), &service, Instant::now(), None)).expect("direct never fails");
        let results = response["results"].as_array().expect("results");
        prop_assert_eq!(results.len(), items.len());
        for (item, result) in items.iter().zip(results) {
            let answered = result.get("fraud_probability").is_some();
            let errored = result.get("error").is_some();
            prop_assert!(answered != errored, "exactly one of answer or error: {}", result);
            if answered {
                prop_assert_eq!(&result["transaction_id"], &item["transaction_id"]);
                let p = result["fraud_probability"].as_f64().expect("p");
                prop_assert!((0.0..=1.0).contains(&p));
            }
        }
    }

    #[test]
    fn any_payload_is_handled_without_panic(payload in any_json()) {
        let service = fake_service(Some(Arc::new(AmountModel::new(Duration::ZERO))), None, &[]);
        let _ = runtime().block_on(handle_payload(payload, &service, Instant::now(), None));
    }

    #[test]
    fn http_bodies_of_any_text_get_one_status(body in prop_oneof!["[ -~]{0,64}", any_json().prop_map(|v| v.to_string())]) {
        let service = fake_service(Some(Arc::new(AmountModel::new(Duration::ZERO))), None, &[]);
        let mut event = support::event_file("http-api.json");
        event["body"] = json!(body);
        let response = runtime().block_on(handle_payload(event, &service, Instant::now(), None)).expect("http never fails");
        let status = response["statusCode"].as_i64().expect("status");
        prop_assert!(status == 200 || status == 400 || status == 413, "status {}", status);
        let body: Value = serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body");
        if status == 200 {
            prop_assert!(body.get("results").is_some() || body.get("transaction_id").is_some() || body.get("error").is_some());
        } else {
            prop_assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn sqs_records_are_each_delivered_or_reported_exactly_once(bodies in prop::collection::vec(prop_oneof![
        any_json().prop_map(|v| v.to_string()),
        mangled_transaction().prop_map(|v| v.to_string()),
        "[ -~]{0,24}",
    ], 0..8)) {
        let records: Vec<Value> = bodies.iter().enumerate().map(|(i, body)| json!({
            "messageId": format!("m-{i}"), "receiptHandle": "r", "body": body,
            "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
        })).collect();
        let sink = Arc::new(RecordingSink::default());
        let service = fake_service(Some(Arc::new(AmountModel::new(Duration::ZERO))), Some(sink.clone()), &[]);
        let response = if records.is_empty() {
            // An SQS event always has records; an empty one is handled as a direct invoke.
            return Ok(());
        } else {
            runtime().block_on(handle_payload(json!({"Records": records}), &service, Instant::now(), None)).expect("sqs ok")
        };
        let mut seen: Vec<String> = response["batchItemFailures"].as_array().expect("failures").iter().map(|f| f["itemIdentifier"].as_str().expect("id").to_owned()).collect();
        seen.extend(sink.delivered.lock().expect("lock").iter().map(|m| m.source_id.clone()));
        seen.sort();
        let mut expected: Vec<String> = (0..bodies.len()).map(|i| format!("m-{i}")).collect();
        expected.sort();
        prop_assert_eq!(seen, expected);
    }
}

#[test]
fn scoring_keeps_count_under_a_deadline_too() {
    let service = fake_service(
        Some(Arc::new(AmountModel::new(Duration::from_millis(200)))),
        None,
        &[],
    );
    let items: Vec<Value> = (0..50).map(|i| tx(i, i as f64)).collect();
    let outcomes = runtime().block_on(
        service
            .scorer
            .score_values(&items, Instant::now() + Duration::from_millis(5)),
    );
    assert_eq!(outcomes.len(), 50);
    for (i, outcome) in outcomes.iter().enumerate() {
        let answer = outcome.answer().expect("answer");
        assert_eq!(answer.transaction_id, json!(i));
        assert_eq!(
            answer.fallback_reason,
            Some(fraudflow::contract::FallbackReason::Deadline)
        );
    }
}
