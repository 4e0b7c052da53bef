//! The feature contract between the function and the model: which event fields, in which order.
//!
//! The ONNX graph does all preprocessing itself (logs, scaling, clamps), so serving only has to
//! hand it the raw values in the order the manifest lists. `FEATURE_PATHS` is that order; the
//! artifact loader refuses a manifest that asks for anything else.

use crate::contract::Transaction;

/// Number of raw features the model takes.
pub const FEATURE_COUNT: usize = 15;

/// Event paths of the raw features, in the model's input order.
pub const FEATURE_PATHS: [&str; FEATURE_COUNT] = [
    "amount",
    "timestamp.weekend",
    "timestamp.night",
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

/// One row of the model's `features` input.
pub type FeatureRow = [f32; FEATURE_COUNT];

/// The raw feature row of a validated transaction, in `FEATURE_PATHS` order.
pub fn feature_row(tx: &Transaction) -> FeatureRow {
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let c = &tx.customer;
    let t = &tx.terminal;
    // f64 -> f32 is the same rounding numpy's astype(float32) applies on the training side.
    [
        tx.amount as f32,
        flag(tx.is_weekend()),
        flag(tx.is_night()),
        c.nb_tx_1d as f32,
        c.avg_amount_1d as f32,
        c.nb_tx_7d as f32,
        c.avg_amount_7d as f32,
        c.nb_tx_30d as f32,
        c.avg_amount_30d as f32,
        t.nb_tx_1d as f32,
        t.risk_1d as f32,
        t.nb_tx_7d as f32,
        t.risk_7d as f32,
        t.nb_tx_30d as f32,
        t.risk_30d as f32,
    ]
}
