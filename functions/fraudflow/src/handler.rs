//! The Lambda handler: decode the event, score within the deadline, shape the answer.

use std::time::{Instant, SystemTime};

use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::events::{DirectRequest, RequestErrorBody};
use crate::scoring::request_deadline;
use crate::service::Service;

/// Handle one invocation. Never fails for bad input: a bad item gets an error item, an unusable
/// request gets an error body naming what is wrong.
pub async fn handle(
    event: LambdaEvent<Value>,
    service: &Service,
) -> Result<Value, lambda_runtime::Error> {
    let started = Instant::now();
    let lambda_deadline = (event.context.deadline > 0).then(|| event.context.deadline());
    Ok(handle_payload(event.payload, service, started, lambda_deadline).await)
}

/// The same, without the Lambda envelope (used by tests and local tools).
pub async fn handle_payload(
    payload: Value,
    service: &Service,
    started: Instant,
    lambda_deadline: Option<SystemTime>,
) -> Value {
    let request = match DirectRequest::decode(payload) {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(code = error.code, message = %error.message, "unusable request");
            return serde_json::to_value(RequestErrorBody { error }).unwrap_or(Value::Null);
        }
    };
    let config = &service.config;
    let deadline = request_deadline(
        started,
        config.request_budget,
        lambda_deadline,
        config.deadline_margin,
    );
    let outcomes = service.scorer.score_values(request.items(), deadline).await;
    tracing::info!(
        items = outcomes.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "scored"
    );
    request.respond(outcomes)
}
