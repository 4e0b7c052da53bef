//! EventBridge: `detail` is one transaction; the answer goes to the results destination.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;

use super::{DirectRequest, RequestError, RequestErrorCode};

/// The event's id (for logs and to trace the answer back) and its transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBridgeRequest {
    pub event_id: String,
    pub request: DirectRequest,
}

pub fn decode(payload: Value) -> Result<EventBridgeRequest, RequestError> {
    let event: EventBridgeEvent<Value> = serde_json::from_value(payload).map_err(|err| {
        RequestError::new(
            RequestErrorCode::InvalidEvent,
            format!("not an EventBridge event: {err}"),
        )
    })?;
    Ok(EventBridgeRequest {
        event_id: event.id.unwrap_or_default(),
        request: DirectRequest::Single(event.detail),
    })
}
