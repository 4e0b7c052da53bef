//! Event decoding: which items an event carries, and how the answers go back.
//!
//! Direct invoke: one transaction object -> one outcome object; `{"transactions": [...]}` ->
//! `{"results": [...]}` in the same order and count.

use serde::Serialize;
use serde_json::Value;

use crate::contract::{Outcome, json_type_name};

/// What a direct invocation asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectRequest {
    Single(Value),
    Batch(Vec<Value>),
}

/// The whole request is unusable (as opposed to one bad item inside a batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestError {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestErrorBody {
    pub error: RequestError,
}

impl DirectRequest {
    pub fn decode(payload: Value) -> Result<Self, RequestError> {
        match payload {
            Value::Object(mut object) => match object.remove("transactions") {
                Some(Value::Array(items)) => Ok(Self::Batch(items)),
                Some(other) => Err(RequestError {
                    code: "invalid_request",
                    message: format!(
                        "transactions must be an array of transaction objects, got {}",
                        json_type_name(&other)
                    ),
                }),
                None => Ok(Self::Single(Value::Object(object))),
            },
            other => Err(RequestError {
                code: "invalid_request",
                message: format!(
                    "expected a transaction object or {{\"transactions\": [...]}}, got {}",
                    json_type_name(&other)
                ),
            }),
        }
    }

    pub fn items(&self) -> &[Value] {
        match self {
            Self::Single(item) => std::slice::from_ref(item),
            Self::Batch(items) => items,
        }
    }

    /// Shape the outcomes as the request was shaped.
    pub fn respond(&self, outcomes: Vec<Outcome>) -> Value {
        let encoded = |outcome: &Outcome| serde_json::to_value(outcome).unwrap_or(Value::Null);
        match self {
            Self::Single(_) => outcomes.first().map_or(Value::Null, encoded),
            Self::Batch(_) => {
                let results: Vec<Value> = outcomes.iter().map(encoded).collect();
                serde_json::json!({ "results": results })
            }
        }
    }
}
