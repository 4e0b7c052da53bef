//! The Lambda handler: tell the source, decode, score within the deadline on the one scoring
//! path, and answer in the source's shape. Bad input never fails an invocation; a panic anywhere
//! is caught and answered, and the next invocation works.

use std::panic::AssertUnwindSafe;
use std::time::{Instant, SystemTime};

use futures::FutureExt as _;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::contract::Outcome;
use crate::events::{DirectRequest, EventSource, RequestError, eventbridge, http, sqs};
use crate::scoring::request_deadline;
use crate::service::Service;
use crate::sink::ResultMessage;

/// Why an invocation must be reported as failed to Lambda (so the event is retried).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(
        "the answer for EventBridge event {event_id} could not be delivered to {destination}: {reason}"
    )]
    Delivery {
        event_id: String,
        destination: String,
        reason: String,
    },
    #[error(
        "no results destination is configured (set RESULTS_QUEUE_URL or RESULTS_BUS_NAME); the event is failed so it is not lost"
    )]
    NoDestination,
    #[error("{event_source} event rejected: {message}")]
    InvalidEvent {
        event_source: &'static str,
        message: String,
    },
    #[error("internal error while scoring a {event_source} event: {message}")]
    Panic {
        event_source: &'static str,
        message: String,
    },
}

/// Handle one invocation.
pub async fn handle(event: LambdaEvent<Value>, service: &Service) -> Result<Value, HandlerError> {
    let started = Instant::now();
    let lambda_deadline = epoch_deadline(event.context.deadline);
    handle_payload(event.payload, service, started, lambda_deadline).await
}

/// Epoch milliseconds before 2001 are not a deadline: `cargo lambda watch` sends the timeout
/// (600000) instead. Then only the configured budget applies.
fn epoch_deadline(deadline_ms: u64) -> Option<SystemTime> {
    const YEAR_2001_MS: u64 = 978_307_200_000;
    if deadline_ms < YEAR_2001_MS {
        tracing::debug!(
            deadline_ms,
            "no usable Lambda deadline; the configured budget applies"
        );
        return None;
    }
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(deadline_ms))
}

/// The same, without the Lambda envelope (tests and local tools).
pub async fn handle_payload(
    payload: Value,
    service: &Service,
    started: Instant,
    lambda_deadline: Option<SystemTime>,
) -> Result<Value, HandlerError> {
    let source = EventSource::classify(&payload);
    let work = dispatch(source, payload, service, started, lambda_deadline);
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            tracing::error!(source = source.as_str(), %message, "panic while handling an event");
            match source {
                // The caller waits for an answer: give it an error body, not a dead runtime.
                EventSource::Direct => Ok(
                    json!({"error": {"code": "internal_error", "message": format!("internal error: {message}")}}),
                ),
                EventSource::Http => Ok(http::response(
                    500,
                    &json!({"error": {"code": "internal_error", "message": format!("internal error: {message}")}}),
                )),
                // Asynchronous sources retry a failed invocation: nothing is lost.
                EventSource::Sqs | EventSource::EventBridge => Err(HandlerError::Panic {
                    event_source: source.as_str(),
                    message,
                }),
            }
        }
    }
}

async fn dispatch(
    source: EventSource,
    payload: Value,
    service: &Service,
    started: Instant,
    lambda_deadline: Option<SystemTime>,
) -> Result<Value, HandlerError> {
    let config = &service.config;
    // A caller waits on direct and HTTP requests: the real-time budget. Queued events are scored
    // a whole event at a time with nobody on the line: the larger asynchronous budget.
    let budget = match source {
        EventSource::Direct | EventSource::Http => config.request_budget,
        EventSource::Sqs | EventSource::EventBridge => config.async_budget,
    };
    let deadline = request_deadline(started, budget, lambda_deadline, config.deadline_margin);
    let limits = &config.limits;
    match source {
        EventSource::Direct => Ok(match DirectRequest::decode(payload, limits) {
            Ok(request) => {
                let outcomes = score(service, source, request.items(), deadline, started).await;
                request.respond(&outcomes)
            }
            Err(error) => rejected(source, &error).body(),
        }),
        EventSource::Http => Ok(match http::decode(payload, limits) {
            Ok(request) => {
                let outcomes = score(service, source, request.items(), deadline, started).await;
                http::response(200, &request.respond(&outcomes))
            }
            Err(error) => http::response(rejected(source, &error).status(), &error.body()),
        }),
        EventSource::Sqs => handle_sqs(payload, service, deadline, started).await,
        EventSource::EventBridge => handle_eventbridge(payload, service, deadline, started).await,
    }
}

fn rejected(source: EventSource, error: &RequestError) -> &RequestError {
    tracing::warn!(source = source.as_str(), code = ?error.code, message = %error.message, "request rejected");
    error
}

async fn score(
    service: &Service,
    source: EventSource,
    items: &[Value],
    deadline: Instant,
    started: Instant,
) -> Vec<Outcome> {
    let outcomes = service.scorer.score_values(items, deadline).await;
    let reference = service.scorer.model().map(|m| {
        (
            m.manifest.log_likelihood_reference.mean,
            m.manifest.log_likelihood_reference.std,
        )
    });
    let (summary, _) =
        service
            .telemetry
            .observe(source, items, &outcomes, started.elapsed(), reference);
    tracing::info!(
        source = source.as_str(),
        items = summary.counts.items,
        model = summary.counts.model_answers,
        heuristic = summary.counts.heuristic_answers,
        errors = summary.counts.errors,
        elapsed_us = started.elapsed().as_micros() as u64,
        "scored"
    );
    outcomes
}

async fn handle_sqs(
    payload: Value,
    service: &Service,
    deadline: Instant,
    started: Instant,
) -> Result<Value, HandlerError> {
    let decoded = sqs::decode(payload, &service.config.limits).map_err(|error| {
        HandlerError::InvalidEvent {
            event_source: "sqs",
            message: error.message,
        }
    })?;
    let mut failed: Vec<String> = Vec::new();
    for failure in &decoded.failures {
        tracing::warn!(message_id = %failure.message_id, code = ?failure.error.code, message = %failure.error.message, "SQS record cannot be decoded; reported for retry");
        failed.push(failure.message_id.clone());
    }
    // All records' transactions are scored together: one model call for the whole event.
    let items: Vec<Value> = decoded
        .requests
        .iter()
        .flat_map(|r| r.request.items().iter().cloned())
        .collect();
    let outcomes = score(service, EventSource::Sqs, &items, deadline, started).await;
    let mut remaining = outcomes.as_slice();
    let mut messages = Vec::with_capacity(decoded.requests.len());
    for record in &decoded.requests {
        let (mine, rest) = remaining.split_at(record.request.len().min(remaining.len()));
        remaining = rest;
        messages.push(ResultMessage {
            source_id: record.message_id.clone(),
            body: record.request.respond(mine),
        });
    }
    match &service.sink {
        None => {
            tracing::error!(records = messages.len(), "{}", HandlerError::NoDestination);
            failed.extend(messages.iter().map(|m| m.source_id.clone()));
        }
        Some(sink) => {
            let delivered = sink.deliver(&messages).await;
            for (message, result) in messages
                .iter()
                .zip(delivered.iter().map(Some).chain(std::iter::repeat(None)))
            {
                match result {
                    Some(Ok(())) => {}
                    Some(Err(reason)) => {
                        tracing::error!(message_id = %message.source_id, destination = %sink.describe(), %reason, "answer not delivered; record reported for retry");
                        failed.push(message.source_id.clone());
                    }
                    None => failed.push(message.source_id.clone()),
                }
            }
        }
    }
    Ok(sqs::batch_response(failed))
}

async fn handle_eventbridge(
    payload: Value,
    service: &Service,
    deadline: Instant,
    started: Instant,
) -> Result<Value, HandlerError> {
    let event = eventbridge::decode(payload).map_err(|error| HandlerError::InvalidEvent {
        event_source: "eventbridge",
        message: error.message,
    })?;
    let outcomes = score(
        service,
        EventSource::EventBridge,
        event.request.items(),
        deadline,
        started,
    )
    .await;
    let answer = event.request.respond(&outcomes);
    let Some(sink) = &service.sink else {
        return Err(HandlerError::NoDestination);
    };
    let message = ResultMessage {
        source_id: event.event_id.clone(),
        body: answer.clone(),
    };
    match sink
        .deliver(std::slice::from_ref(&message))
        .await
        .into_iter()
        .next()
    {
        Some(Ok(())) => Ok(answer),
        Some(Err(reason)) => Err(HandlerError::Delivery {
            event_id: event.event_id,
            destination: sink.describe(),
            reason,
        }),
        None => Err(HandlerError::Delivery {
            event_id: event.event_id,
            destination: sink.describe(),
            reason: "no delivery result".into(),
        }),
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    /// A meaningful `errorType` per failure, so alarms and retries can tell them apart.
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Delivery { .. } => "fraudflow.DeliveryFailed",
            HandlerError::NoDestination => "fraudflow.NoResultsDestination",
            HandlerError::InvalidEvent { .. } => "fraudflow.InvalidEvent",
            HandlerError::Panic { .. } => "fraudflow.InternalError",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}
