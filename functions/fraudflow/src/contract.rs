//! The wire contract (docs/CONTRACT.md): transactions in, answers or item errors out.
//!
//! Validation reads a `serde_json::Value` field by field rather than deriving `Deserialize`, so
//! every error names the exact field (`customer.nb_tx_7d`) and the value it got, and unknown
//! fields are ignored as the contract requires.

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use serde::Serialize;
use serde_json::{Map, Value};

/// The customer profile aggregates, as the upstream feature store sends them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerProfile {
    pub nb_tx_1d: f64,
    pub avg_amount_1d: f64,
    pub nb_tx_7d: f64,
    pub avg_amount_7d: f64,
    pub nb_tx_30d: f64,
    pub avg_amount_30d: f64,
}

/// The terminal profile aggregates (windows end 7 days before the payment).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TerminalProfile {
    pub nb_tx_1d: f64,
    pub risk_1d: f64,
    pub nb_tx_7d: f64,
    pub risk_7d: f64,
    pub nb_tx_30d: f64,
    pub risk_30d: f64,
}

/// A transaction that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// Echoed back exactly as given (string or integer).
    pub transaction_id: Value,
    pub timestamp: DateTime<FixedOffset>,
    pub customer_id: String,
    pub terminal_id: String,
    pub amount: f64,
    pub customer: CustomerProfile,
    pub terminal: TerminalProfile,
}

impl Transaction {
    /// Saturday or Sunday by the wall clock as written (not converted to UTC).
    pub fn is_weekend(&self) -> bool {
        self.timestamp
            .naive_local()
            .weekday()
            .num_days_from_monday()
            >= 5
    }

    /// Hour 0 to 6 inclusive by the wall clock as written.
    pub fn is_night(&self) -> bool {
        self.timestamp.naive_local().hour() <= 6
    }
}

/// Why one item could not be scored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    pub code: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A required field is absent (or null).
    MissingField,
    /// A field is present but has the wrong type or range.
    InvalidField,
    /// The item is not a JSON object at all.
    InvalidItem,
    /// A line of a JSON Lines input is not JSON.
    InvalidJson,
    /// Scoring failed unexpectedly (a bug); the item is reported, never dropped.
    InternalError,
}

impl ItemError {
    pub fn missing(field: &str) -> Self {
        Self {
            code: ErrorCode::MissingField,
            field: Some(field.to_owned()),
            message: format!("{field} is required"),
        }
    }

    pub fn invalid(field: &str, message: String) -> Self {
        Self {
            code: ErrorCode::InvalidField,
            field: Some(field.to_owned()),
            message,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Elevated,
    High,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Elevated => "elevated",
            RiskLevel::High => "high",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Model,
    Heuristic,
}

/// Why the heuristic answered instead of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    Deadline,
    ModelUnavailable,
    ModelError,
    NonFiniteOutput,
}

impl FallbackReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::Deadline => "deadline",
            FallbackReason::ModelUnavailable => "model_unavailable",
            FallbackReason::ModelError => "model_error",
            FallbackReason::NonFiniteOutput => "non_finite_output",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub feature: String,
    pub contribution: f64,
}

/// The answer for one scored transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub transaction_id: Value,
    pub fraud_probability: f64,
    pub risk_level: RiskLevel,
    pub log_likelihood: Option<f64>,
    pub source: Source,
    pub fallback_reason: Option<FallbackReason>,
    pub model_version: String,
    pub reasons: Vec<Reason>,
}

/// One output item: an answer, or an error naming the field. Never dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Answer(Answer),
    Error {
        transaction_id: Value,
        error: ItemError,
    },
}

impl Outcome {
    pub fn answer(&self) -> Option<&Answer> {
        match self {
            Outcome::Answer(answer) => Some(answer),
            Outcome::Error { .. } => None,
        }
    }
}

/// Validate one transaction object.
pub fn parse_transaction(item: &Value) -> Result<Transaction, ItemError> {
    let Some(object) = item.as_object() else {
        return Err(ItemError {
            code: ErrorCode::InvalidItem,
            field: None,
            message: format!(
                "a transaction must be a JSON object, got {}",
                json_type_name(item)
            ),
        });
    };
    let transaction_id = identifier(object, "transaction_id")?;
    let timestamp = timestamp(object)?;
    let customer_id = identifier(object, "customer_id").map(|id| id_to_string(&id))?;
    let terminal_id = identifier(object, "terminal_id").map(|id| id_to_string(&id))?;
    let amount = non_negative(object, "amount", "amount")?;
    let customer_object = nested(object, "customer")?;
    let terminal_object = nested(object, "terminal")?;
    let customer = CustomerProfile {
        nb_tx_1d: count(customer_object, "customer.nb_tx_1d", "nb_tx_1d")?,
        avg_amount_1d: non_negative(customer_object, "customer.avg_amount_1d", "avg_amount_1d")?,
        nb_tx_7d: count(customer_object, "customer.nb_tx_7d", "nb_tx_7d")?,
        avg_amount_7d: non_negative(customer_object, "customer.avg_amount_7d", "avg_amount_7d")?,
        nb_tx_30d: count(customer_object, "customer.nb_tx_30d", "nb_tx_30d")?,
        avg_amount_30d: non_negative(customer_object, "customer.avg_amount_30d", "avg_amount_30d")?,
    };
    let terminal = TerminalProfile {
        nb_tx_1d: count(terminal_object, "terminal.nb_tx_1d", "nb_tx_1d")?,
        risk_1d: probability(terminal_object, "terminal.risk_1d", "risk_1d")?,
        nb_tx_7d: count(terminal_object, "terminal.nb_tx_7d", "nb_tx_7d")?,
        risk_7d: probability(terminal_object, "terminal.risk_7d", "risk_7d")?,
        nb_tx_30d: count(terminal_object, "terminal.nb_tx_30d", "nb_tx_30d")?,
        risk_30d: probability(terminal_object, "terminal.risk_30d", "risk_30d")?,
    };
    Ok(Transaction {
        transaction_id,
        timestamp,
        customer_id,
        terminal_id,
        amount,
        customer,
        terminal,
    })
}

/// The transaction id to echo in an error item: as given when it is a string or integer, else null.
pub fn echo_id(item: &Value) -> Value {
    match item.get("transaction_id") {
        Some(id @ Value::String(_)) => id.clone(),
        Some(id @ Value::Number(n)) if n.is_i64() || n.is_u64() => id.clone(),
        _ => Value::Null,
    }
}

pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short, bounded rendering of an offending value for error messages.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(40).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn required<'a>(
    object: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'a Value, ItemError> {
    match object.get(key) {
        None | Some(Value::Null) => Err(ItemError::missing(path)),
        Some(value) => Ok(value),
    }
}

fn identifier(object: &Map<String, Value>, key: &str) -> Result<Value, ItemError> {
    let value = required(object, key, key)?;
    match value {
        Value::String(text) if !text.is_empty() => Ok(value.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
        // JSON parsers (this one included) read integers past 64 bits as floats, so the id
        // could not be echoed back exactly: say so, rather than call it a non-integer.
        Value::Number(n)
            if n.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() >= 9.0e18) =>
        {
            Err(ItemError::invalid(
                key,
                format!(
                    "{key} is an integer beyond 64 bits (-2^63..2^64-1), which cannot be echoed \
                     back exactly: send it as a string, got {}",
                    shown(value)
                ),
            ))
        }
        _ => Err(ItemError::invalid(
            key,
            format!(
                "{key} must be a non-empty string or an integer, got {}",
                shown(value)
            ),
        )),
    }
}

fn id_to_string(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn timestamp(object: &Map<String, Value>) -> Result<DateTime<FixedOffset>, ItemError> {
    let value = required(object, "timestamp", "timestamp")?;
    let parsed = value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok());
    parsed.ok_or_else(|| {
        ItemError::invalid(
            "timestamp",
            format!(
                "timestamp must be an RFC 3339 date-time such as 2018-08-08T07:12:45Z, got {}",
                shown(value)
            ),
        )
    })
}

fn nested<'a>(
    object: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Map<String, Value>, ItemError> {
    let value = required(object, key, key)?;
    value.as_object().ok_or_else(|| {
        ItemError::invalid(
            key,
            format!(
                "{key} must be an object of profile aggregates, got {}",
                shown(value)
            ),
        )
    })
}

/// The largest value the model's float32 input holds: above it the cast gives infinity and the
/// model's outputs stop being finite, so such values are the caller's error, not the model's.
const FLOAT32_MAX: f64 = f32::MAX as f64;

fn beyond_float32(path: &str, value: &Value) -> ItemError {
    ItemError::invalid(
        path,
        format!(
            "{path} is beyond the model's float32 range (at most 3.4e38), got {}",
            shown(value)
        ),
    )
}

fn non_negative(object: &Map<String, Value>, path: &str, key: &str) -> Result<f64, ItemError> {
    let value = required(object, path, key)?;
    match value.as_f64() {
        Some(number) if number.is_finite() && number > FLOAT32_MAX => {
            Err(beyond_float32(path, value))
        }
        Some(number) if number.is_finite() && number >= 0.0 => Ok(number),
        _ => Err(ItemError::invalid(
            path,
            format!("{path} must be a finite number >= 0, got {}", shown(value)),
        )),
    }
}

fn count(object: &Map<String, Value>, path: &str, key: &str) -> Result<f64, ItemError> {
    let value = required(object, path, key)?;
    match value.as_f64() {
        Some(number) if number.is_finite() && number > FLOAT32_MAX => {
            Err(beyond_float32(path, value))
        }
        // Integral floats (3.0) are accepted: some feature stores write every number as a float.
        Some(number) if number.is_finite() && number >= 0.0 && number.fract() == 0.0 => Ok(number),
        _ => Err(ItemError::invalid(
            path,
            format!("{path} must be an integer >= 0, got {}", shown(value)),
        )),
    }
}

fn probability(object: &Map<String, Value>, path: &str, key: &str) -> Result<f64, ItemError> {
    let value = required(object, path, key)?;
    match value.as_f64() {
        Some(number) if (0.0..=1.0).contains(&number) => Ok(number),
        _ => Err(ItemError::invalid(
            path,
            format!("{path} must be a number in [0, 1], got {}", shown(value)),
        )),
    }
}

/// Outcomes counted by kind, source, fallback reason and risk level (metrics and summaries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub items: usize,
    pub model_answers: usize,
    pub heuristic_answers: usize,
    pub errors: usize,
    pub fallbacks: std::collections::BTreeMap<&'static str, usize>,
    /// low, elevated, high
    pub risk_levels: [usize; 3],
}

impl OutcomeCounts {
    /// Count one outcome; returns its answer, if it is one.
    pub fn add<'a>(&mut self, outcome: &'a Outcome) -> Option<&'a Answer> {
        self.items += 1;
        let Some(answer) = outcome.answer() else {
            self.errors += 1;
            return None;
        };
        match answer.source {
            Source::Model => self.model_answers += 1,
            Source::Heuristic => self.heuristic_answers += 1,
        }
        if let Some(reason) = answer.fallback_reason {
            *self.fallbacks.entry(reason.as_str()).or_default() += 1;
        }
        let level = match answer.risk_level {
            RiskLevel::Low => 0,
            RiskLevel::Elevated => 1,
            RiskLevel::High => 2,
        };
        self.risk_levels[level] += 1;
        Some(answer)
    }

    pub fn answers(&self) -> usize {
        self.model_answers + self.heuristic_answers
    }

    pub fn fallback(&self, reason: FallbackReason) -> usize {
        self.fallbacks.get(reason.as_str()).copied().unwrap_or(0)
    }
}
