//! Direct invoke: one transaction object -> one outcome object; `{"transactions": [...]}` ->
//! `{"results": [...]}` in the same order and count. The same shapes are the bodies of HTTP
//! requests and SQS messages.

use serde_json::Value;

use super::{Limits, RequestError, RequestErrorCode};
use crate::contract::{Outcome, json_type_name};

/// What a request asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectRequest {
    Single(Value),
    Batch(Vec<Value>),
}

impl DirectRequest {
    pub fn decode(payload: Value, limits: &Limits) -> Result<Self, RequestError> {
        match payload {
            Value::Object(mut object) => match object.remove("transactions") {
                Some(Value::Array(items)) if items.len() > limits.max_batch_items => {
                    Err(RequestError::new(
                        RequestErrorCode::TooManyItems,
                        format!(
                            "transactions holds {} items; the limit is {} per request: split the batch",
                            items.len(),
                            limits.max_batch_items
                        ),
                    ))
                }
                Some(Value::Array(items)) => Ok(Self::Batch(items)),
                Some(other) => Err(RequestError::new(
                    RequestErrorCode::InvalidRequest,
                    format!(
                        "transactions must be an array of transaction objects, got {}",
                        json_type_name(&other)
                    ),
                )),
                None => Ok(Self::Single(Value::Object(object))),
            },
            other => Err(RequestError::new(
                RequestErrorCode::InvalidRequest,
                format!(
                    "expected a transaction object or {{\"transactions\": [...]}}, got {}",
                    json_type_name(&other)
                ),
            )),
        }
    }

    pub fn items(&self) -> &[Value] {
        match self {
            Self::Single(item) => std::slice::from_ref(item),
            Self::Batch(items) => items,
        }
    }

    pub fn len(&self) -> usize {
        self.items().len()
    }

    pub fn is_empty(&self) -> bool {
        self.items().is_empty()
    }

    /// Shape the outcomes as the request was shaped.
    pub fn respond(&self, outcomes: &[Outcome]) -> Value {
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
