//! The results destination of asynchronous sources (SQS, EventBridge): an SQS queue
//! (`RESULTS_QUEUE_URL`) or an EventBridge bus (`RESULTS_BUS_NAME`).
//!
//! Delivery reports per message, so the caller can fail exactly the SQS records whose answers
//! did not arrive: nothing is lost silently.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

/// One answer message: the answer body, and the id of what it answers (SQS messageId or
/// EventBridge event id) so consumers can correlate.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultMessage {
    pub source_id: String,
    pub body: Value,
}

pub type DeliveryFuture<'a> = Pin<Box<dyn Future<Output = Vec<Result<(), String>>> + Send + 'a>>;

/// Where answers go. One result per message, in order.
pub trait ResultsSink: Send + Sync {
    fn deliver<'a>(&'a self, messages: &'a [ResultMessage]) -> DeliveryFuture<'a>;
    fn describe(&self) -> String;
}

/// SQS SendMessageBatch, 10 messages a call (the API's limit).
pub struct SqsSink {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

/// EventBridge PutEvents, 10 entries a call (the API's limit).
pub struct EventBridgeSink {
    pub client: aws_sdk_eventbridge::Client,
    pub bus_name: String,
}

pub const SOURCE_ID_ATTRIBUTE: &str = "fraudflow-source-id";
pub const EVENT_SOURCE: &str = "fraudflow";
pub const EVENT_DETAIL_TYPE: &str = "fraudflow.answer";
const API_BATCH: usize = 10;

impl ResultsSink for SqsSink {
    fn deliver<'a>(&'a self, messages: &'a [ResultMessage]) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let mut outcome = Vec::with_capacity(messages.len());
            for chunk in messages.chunks(API_BATCH) {
                let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
                for (index, message) in chunk.iter().enumerate() {
                    let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(&message.source_id)
                        .build();
                    let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(message.body.to_string())
                        .set_message_attributes(
                            attribute
                                .ok()
                                .map(|a| [(SOURCE_ID_ATTRIBUTE.to_owned(), a)].into()),
                        )
                        .build();
                    match entry {
                        Ok(entry) => request = request.entries(entry),
                        Err(err) => tracing::error!(error = %err, "could not build an SQS entry"),
                    }
                }
                match request.send().await {
                    Ok(response) => {
                        let failed: Vec<(String, String)> = response
                            .failed()
                            .iter()
                            .map(|f| {
                                (
                                    f.id().to_owned(),
                                    f.message().unwrap_or(f.code()).to_owned(),
                                )
                            })
                            .collect();
                        for index in 0..chunk.len() {
                            let id = index.to_string();
                            match failed.iter().find(|(failed_id, _)| *failed_id == id) {
                                Some((_, reason)) => outcome.push(Err(reason.clone())),
                                None => outcome.push(Ok(())),
                            }
                        }
                    }
                    Err(err) => {
                        let reason = aws_sdk_sqs::error::DisplayErrorContext(err).to_string();
                        outcome.extend(chunk.iter().map(|_| Err(reason.clone())));
                    }
                }
            }
            outcome
        })
    }

    fn describe(&self) -> String {
        format!("SQS queue {}", self.queue_url)
    }
}

impl ResultsSink for EventBridgeSink {
    fn deliver<'a>(&'a self, messages: &'a [ResultMessage]) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let mut outcome = Vec::with_capacity(messages.len());
            for chunk in messages.chunks(API_BATCH) {
                let entries: Vec<_> = chunk
                    .iter()
                    .map(|message| {
                        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                            .event_bus_name(&self.bus_name)
                            .source(EVENT_SOURCE)
                            .detail_type(EVENT_DETAIL_TYPE)
                            .resources(&message.source_id)
                            .detail(message.body.to_string())
                            .build()
                    })
                    .collect();
                match self
                    .client
                    .put_events()
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(response) => {
                        let results = response.entries();
                        for index in 0..chunk.len() {
                            match results.get(index) {
                                Some(entry) if entry.error_code().is_none() => outcome.push(Ok(())),
                                Some(entry) => outcome.push(Err(format!(
                                    "{}: {}",
                                    entry.error_code().unwrap_or_default(),
                                    entry.error_message().unwrap_or_default()
                                ))),
                                None => outcome.push(Err("no result entry returned".to_owned())),
                            }
                        }
                    }
                    Err(err) => {
                        let reason =
                            aws_sdk_eventbridge::error::DisplayErrorContext(err).to_string();
                        outcome.extend(chunk.iter().map(|_| Err(reason.clone())));
                    }
                }
            }
            outcome
        })
    }

    fn describe(&self) -> String {
        format!("EventBridge bus {}", self.bus_name)
    }
}
