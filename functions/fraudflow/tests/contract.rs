//! Contract validation: every required field, missing or invalid, gives an error naming it.

use fraudflow::contract::{ErrorCode, parse_transaction};
use fraudflow::features::{FEATURE_PATHS, feature_row};
use serde_json::{Value, json};

fn valid() -> Value {
    json!({
        "transaction_id": "tx-1042",
        "timestamp": "2018-08-08T07:12:45Z",
        "customer_id": "c-2931",
        "terminal_id": "t-118",
        "amount": 57.16,
        "customer": {"nb_tx_1d": 2, "avg_amount_1d": 51.3, "nb_tx_7d": 9, "avg_amount_7d": 48.0,
                     "nb_tx_30d": 31, "avg_amount_30d": 50.2},
        "terminal": {"nb_tx_1d": 1, "risk_1d": 0.0, "nb_tx_7d": 6, "risk_7d": 0.0,
                     "nb_tx_30d": 27, "risk_30d": 0.037},
        "some_unknown_field": {"ignored": true}
    })
}

fn set(value: &mut Value, path: &str, new: Option<Value>) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("path");
    let mut target = value;
    for part in parts {
        target = target.get_mut(part).expect("nested object");
    }
    let object = target.as_object_mut().expect("object");
    match new {
        Some(v) => {
            object.insert(last.to_owned(), v);
        }
        None => {
            object.remove(last);
        }
    }
}

const REQUIRED: [&str; 19] = [
    "transaction_id",
    "timestamp",
    "customer_id",
    "terminal_id",
    "amount",
    "customer",
    "terminal",
    "customer.nb_tx_1d",
    "customer.avg_amount_1d",
    "customer.nb_tx_7d",
    "customer.avg_amount_7d",
    "customer.nb_tx_30d",
    "customer.avg_amount_30d",
    "terminal.nb_tx_1d",
    "terminal.risk_1d",
    "terminal.nb_tx_7d",
    "terminal.risk_7d",
    "terminal.nb_tx_30d",
    "terminal.risk_30d",
];

#[test]
fn a_valid_transaction_parses_with_exact_values() {
    let tx = parse_transaction(&valid()).expect("valid");
    assert_eq!(tx.transaction_id, json!("tx-1042"));
    assert_eq!(tx.amount, 57.16);
    assert_eq!(tx.customer.nb_tx_30d, 31.0);
    assert_eq!(tx.terminal.risk_30d, 0.037);
    assert!(!tx.is_weekend(), "2018-08-08 is a Wednesday");
    assert!(!tx.is_night(), "07:12 is after 06:59");
}

#[test]
fn every_missing_required_field_is_named() {
    for field in REQUIRED {
        for absent in [None, Some(Value::Null)] {
            let mut item = valid();
            set(&mut item, field, absent.clone());
            let error = parse_transaction(&item).expect_err(field);
            assert_eq!(error.code, ErrorCode::MissingField, "{field}");
            assert_eq!(error.field.as_deref(), Some(field));
            assert_eq!(error.message, format!("{field} is required"));
        }
    }
}

#[test]
fn invalid_values_are_named_with_the_value_received() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "amount",
            json!(-3),
            "amount must be a finite number >= 0, got -3",
        ),
        (
            "amount",
            json!("57.16"),
            "amount must be a finite number >= 0, got \"57.16\"",
        ),
        (
            "amount",
            json!(1e308 * 10.0),
            "amount must be a finite number >= 0, got null",
        ),
        (
            "transaction_id",
            json!(1.5),
            "transaction_id must be a non-empty string or an integer, got 1.5",
        ),
        (
            "transaction_id",
            json!(18_446_744_073_709_551_616.0),
            "transaction_id is an integer beyond 64 bits (-2^63..2^64-1), which cannot be echoed back exactly: send it as a string, got 1.8446744073709552e+19",
        ),
        (
            "transaction_id",
            json!(""),
            "transaction_id must be a non-empty string or an integer, got \"\"",
        ),
        (
            "customer_id",
            json!({"a": 1}),
            "customer_id must be a non-empty string or an integer, got {\"a\":1}",
        ),
        (
            "terminal_id",
            json!(true),
            "terminal_id must be a non-empty string or an integer, got true",
        ),
        (
            "timestamp",
            json!("2018-08-08 07:12:45"),
            "timestamp must be an RFC 3339 date-time such as 2018-08-08T07:12:45Z, got \"2018-08-08 07:12:45\"",
        ),
        (
            "timestamp",
            json!(1533712365),
            "timestamp must be an RFC 3339 date-time such as 2018-08-08T07:12:45Z, got 1533712365",
        ),
        (
            "customer",
            json!([1, 2]),
            "customer must be an object of profile aggregates, got [1,2]",
        ),
        (
            "terminal",
            json!("t"),
            "terminal must be an object of profile aggregates, got \"t\"",
        ),
        (
            "customer.nb_tx_1d",
            json!(1.5),
            "customer.nb_tx_1d must be an integer >= 0, got 1.5",
        ),
        (
            "customer.nb_tx_7d",
            json!(-1),
            "customer.nb_tx_7d must be an integer >= 0, got -1",
        ),
        (
            "customer.avg_amount_7d",
            json!(-0.01),
            "customer.avg_amount_7d must be a finite number >= 0, got -0.01",
        ),
        (
            "terminal.risk_7d",
            json!(1.01),
            "terminal.risk_7d must be a number in [0, 1], got 1.01",
        ),
        (
            "terminal.risk_1d",
            json!(-0.5),
            "terminal.risk_1d must be a number in [0, 1], got -0.5",
        ),
        (
            "terminal.nb_tx_30d",
            json!("27"),
            "terminal.nb_tx_30d must be an integer >= 0, got \"27\"",
        ),
        // Finite in JSON and float64, infinite in the model's float32 input.
        (
            "amount",
            json!(3.5e38),
            "amount is beyond the model's float32 range (at most 3.4e38), got 3.5e+38",
        ),
        (
            "customer.avg_amount_7d",
            json!(1e39),
            "customer.avg_amount_7d is beyond the model's float32 range (at most 3.4e38), got 1e+39",
        ),
        (
            "customer.nb_tx_30d",
            json!(1e300),
            "customer.nb_tx_30d is beyond the model's float32 range (at most 3.4e38), got 1e+300",
        ),
    ];
    for (field, value, message) in cases {
        let mut item = valid();
        // json!(1e308 * 10.0) is infinite, which serde_json turns into null: the missing path.
        let is_null = value.is_null();
        set(&mut item, field, Some(value));
        let error = parse_transaction(&item).expect_err(field);
        assert_eq!(error.field.as_deref(), Some(field));
        if is_null {
            assert_eq!(error.code, ErrorCode::MissingField);
        } else {
            assert_eq!(error.code, ErrorCode::InvalidField, "{field}");
            assert_eq!(error.message, message);
        }
    }
}

#[test]
fn integer_ids_and_integral_float_counts_are_accepted() {
    let mut item = valid();
    set(&mut item, "transaction_id", Some(json!(1234567)));
    set(&mut item, "customer.nb_tx_7d", Some(json!(9.0)));
    let tx = parse_transaction(&item).expect("valid");
    assert_eq!(tx.transaction_id, json!(1234567));
    assert_eq!(tx.customer.nb_tx_7d, 9.0);
}

#[test]
fn a_non_object_item_is_an_invalid_item() {
    let error = parse_transaction(&json!([1])).expect_err("array");
    assert_eq!(error.code, ErrorCode::InvalidItem);
    assert_eq!(
        error.message,
        "a transaction must be a JSON object, got an array"
    );
}

#[test]
fn weekend_and_night_use_the_wall_clock_as_written() {
    let cases = [
        // (timestamp, weekend, night)
        ("2018-08-11T06:59:59Z", true, true),  // Saturday 06:59
        ("2018-08-12T07:00:00Z", true, false), // Sunday 07:00
        ("2018-08-13T00:00:00Z", false, true), // Monday midnight
        // 23:30 on Sunday at UTC-05:00 is Monday 04:30 UTC: the written wall clock wins.
        ("2018-08-12T23:30:00-05:00", true, false),
        ("2018-08-10T05:00:00+02:00", false, true), // Friday 05:00 local
    ];
    for (timestamp, weekend, night) in cases {
        let mut item = valid();
        set(&mut item, "timestamp", Some(json!(timestamp)));
        let tx = parse_transaction(&item).expect(timestamp);
        assert_eq!(
            (tx.is_weekend(), tx.is_night()),
            (weekend, night),
            "{timestamp}"
        );
    }
}

#[test]
fn the_feature_row_follows_the_published_order() {
    let tx = parse_transaction(&valid()).expect("valid");
    let row = feature_row(&tx);
    assert_eq!(FEATURE_PATHS[0], "amount");
    assert_eq!(FEATURE_PATHS[14], "terminal.risk_30d");
    let expected: [f32; 15] = [
        57.16, 0.0, 0.0, 2.0, 51.3, 9.0, 48.0, 31.0, 50.2, 1.0, 0.0, 6.0, 0.0, 27.0, 0.037,
    ];
    assert_eq!(row, expected);
}
