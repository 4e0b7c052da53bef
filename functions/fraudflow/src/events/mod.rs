//! Event decoding, one module per source, one scoring path behind them all.
//!
//! | source | shape in | shape out |
//! |---|---|---|
//! | direct invoke | a transaction, or `{"transactions": [...]}` | an answer, or `{"results": [...]}` |
//! | API Gateway HTTP API / Function URL | POST body as for direct invoke | 200 with the answers; 400 / 413 with an error body |
//! | SQS | each record body as for direct invoke | `batchItemFailures`; answers to the results destination |
//! | EventBridge | `detail` is a transaction | answer to the results destination |

pub mod direct;
pub mod eventbridge;
pub mod http;
pub mod sqs;

use serde::Serialize;
use serde_json::Value;

pub use direct::DirectRequest;

/// Which source an invocation came from, told apart by the envelope's own markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    Direct,
    Http,
    Sqs,
    EventBridge,
}

impl EventSource {
    pub fn classify(payload: &Value) -> Self {
        let Some(object) = payload.as_object() else {
            return Self::Direct;
        };
        // An SQS event always has records; an empty list is answered as an empty SQS event.
        let is_sqs = object
            .get("Records")
            .and_then(Value::as_array)
            .is_some_and(|records| {
                records.is_empty()
                    || records
                        .first()
                        .and_then(|r| r.get("eventSource"))
                        .and_then(Value::as_str)
                        == Some("aws:sqs")
            });
        if is_sqs {
            return Self::Sqs;
        }
        let is_http = object
            .get("requestContext")
            .and_then(|context| context.get("http"))
            .is_some_and(Value::is_object)
            && object.get("version").and_then(Value::as_str) == Some("2.0");
        // API Gateway REST APIs (payload 1.0) are recognised so they get a clear refusal.
        let is_rest_api =
            object.contains_key("httpMethod") && object.contains_key("requestContext");
        if is_http || is_rest_api {
            return Self::Http;
        }
        if object.contains_key("detail-type")
            && object.contains_key("detail")
            && object.contains_key("source")
        {
            return Self::EventBridge;
        }
        Self::Direct
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Http => "http",
            Self::Sqs => "sqs",
            Self::EventBridge => "eventbridge",
        }
    }
}

/// Size limits on what one request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest HTTP body accepted, in bytes (after base64 decoding).
    pub max_body_bytes: usize,
    /// Most transactions in one batch.
    pub max_batch_items: usize,
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 1000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch_items: DEFAULT_MAX_BATCH_ITEMS,
        }
    }
}

/// The whole request is unusable (as opposed to one bad item inside a batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestError {
    pub code: RequestErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestErrorCode {
    /// Not a transaction nor a batch object.
    InvalidRequest,
    /// The body is not JSON (or not valid base64 / UTF-8).
    InvalidJson,
    /// The body is over `max_body_bytes`.
    BodyTooLarge,
    /// The batch is over `max_batch_items`.
    TooManyItems,
    /// The event envelope itself is malformed (not what its source sends).
    InvalidEvent,
}

impl RequestError {
    pub fn new(code: RequestErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self.code {
            RequestErrorCode::BodyTooLarge | RequestErrorCode::TooManyItems => 413,
            _ => 400,
        }
    }

    /// `{"error": {"code": ..., "message": ...}}`
    pub fn body(&self) -> Value {
        serde_json::json!({ "error": self })
    }
}
