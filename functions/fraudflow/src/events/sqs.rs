//! SQS: each record body is a direct-invoke request. Records that cannot be decoded are
//! reported by messageId in `batchItemFailures`, and only those (plus any whose answers could
//! not be delivered), so SQS retries exactly them.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::Value;

use super::{DirectRequest, Limits, RequestError, RequestErrorCode};

/// One decodable record.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsRecordRequest {
    pub message_id: String,
    pub request: DirectRequest,
}

/// A record that cannot be decoded, and why (logged; SQS retries it, then dead-letters it).
#[derive(Debug, Clone, PartialEq)]
pub struct SqsRecordFailure {
    pub message_id: String,
    pub error: RequestError,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqsDecoded {
    pub requests: Vec<SqsRecordRequest>,
    pub failures: Vec<SqsRecordFailure>,
}

pub fn decode(payload: Value, limits: &Limits) -> Result<SqsDecoded, RequestError> {
    let event: SqsEvent = serde_json::from_value(payload).map_err(|err| {
        RequestError::new(
            RequestErrorCode::InvalidEvent,
            format!("not an SQS event: {err}"),
        )
    })?;
    let mut decoded = SqsDecoded::default();
    for (index, record) in event.records.into_iter().enumerate() {
        // Without a messageId a record cannot be reported; SQS always sends one.
        let message_id = record
            .message_id
            .unwrap_or_else(|| format!("record-{index}"));
        let parsed = match record.body {
            None => Err(RequestError::new(
                RequestErrorCode::InvalidJson,
                "the record has no body",
            )),
            Some(body) => serde_json::from_str::<Value>(&body)
                .map_err(|err| {
                    RequestError::new(
                        RequestErrorCode::InvalidJson,
                        format!("the body is not JSON: {err}"),
                    )
                })
                .and_then(|value| DirectRequest::decode(value, limits)),
        };
        match parsed {
            Ok(request) => decoded.requests.push(SqsRecordRequest {
                message_id,
                request,
            }),
            Err(error) => decoded
                .failures
                .push(SqsRecordFailure { message_id, error }),
        }
    }
    Ok(decoded)
}

/// The partial-batch response: exactly these messages are retried.
pub fn batch_response(failed_message_ids: impl IntoIterator<Item = String>) -> Value {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed_message_ids
        .into_iter()
        .map(|item_identifier| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = item_identifier;
            failure
        })
        .collect();
    serde_json::to_value(response).unwrap_or(Value::Null)
}
