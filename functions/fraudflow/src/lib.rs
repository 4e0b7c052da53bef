//! fraudflow: real-time card-fraud scoring with a conditional normalizing flow.
//!
//! One scoring path ([`scoring::Scorer`]) serves the Lambda function and the `fraudflow` CLI:
//! events are decoded ([`events`]), validated against the contract ([`contract`]), turned into the
//! model's raw feature rows ([`features`]), and scored by the ONNX flow ([`model`], loaded from an
//! artifact verified against its manifest: [`artifact`], [`manifest`]) within a deadline, or by
//! the rule-based [`heuristic`] when the model is late or unavailable.

pub mod artifact;
pub mod config;
pub mod contract;
pub mod error;
pub mod evaluation;
pub mod events;
pub mod features;
pub mod handler;
pub mod heuristic;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod replay;
pub mod scoring;
pub mod service;
pub mod sink;
