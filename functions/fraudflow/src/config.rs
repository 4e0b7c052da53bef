//! Configuration from environment variables, read once at start.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;
use crate::events::{DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_BODY_BYTES, Limits};

/// Every knob, with its environment variable and default (documented in the README).
#[derive(Debug, Clone)]
pub struct Config {
    /// `MODEL_URI`: `s3://bucket/prefix/` or a local folder. Default: the bundled artifact.
    pub model_uri: String,
    /// `ORT_DYLIB_PATH`: the ONNX Runtime shared library.
    pub ort_dylib_path: String,
    /// `FRAUDFLOW_ORT_THREADS`: intra-op threads of the ORT session (default 1).
    pub ort_threads: usize,
    /// `FRAUDFLOW_DEADLINE_MS`: the most a request may spend before the heuristic answers (default 200).
    pub request_budget: Duration,
    /// `FRAUDFLOW_ASYNC_DEADLINE_MS`: the same for SQS and EventBridge events (default 10000),
    /// where nobody waits on the line but a whole event of batches is scored at once.
    pub async_budget: Duration,
    /// `FRAUDFLOW_DEADLINE_MARGIN_MS`: kept free before the Lambda deadline to send the answer (default 50).
    pub deadline_margin: Duration,
    /// `FRAUDFLOW_INIT_BUDGET_MS`: the most the cold start spends loading the model (default 8000;
    /// Lambda re-runs an init that passes 10 s).
    pub init_budget: Duration,
    /// `FRAUDFLOW_MODEL_RETRY_MS`: first wait before reloading a model that failed to load
    /// (default 1000; doubles up to 60 s).
    pub model_retry: Duration,
    /// `FRAUDFLOW_MAX_BODY_BYTES` (default 262144) and `FRAUDFLOW_MAX_BATCH_ITEMS` (default 1000).
    pub limits: Limits,
    /// `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda): names the metrics' FunctionName dimension.
    pub function_name: Option<String>,
    /// `FRAUDFLOW_EMF`: write CloudWatch Embedded Metric Format lines to stdout (default: on in
    /// Lambda, off elsewhere).
    pub emit_metrics: bool,
    /// `FRAUDFLOW_DRIFT_WINDOW` (default 1000 model answers) and `FRAUDFLOW_DRIFT_THRESHOLD`
    /// (default 0.5 reference standard deviations): the drift check on the mean log-likelihood.
    pub drift_window: usize,
    pub drift_threshold: f64,
    /// `FRAUDFLOW_LOG_SALT`: salt of the hashed customer and terminal ids in logs. Set a secret
    /// one in production so hashes cannot be reversed by enumerating ids.
    pub log_salt: String,
    /// `RESULTS_QUEUE_URL` or `RESULTS_BUS_NAME`: where answers of SQS and EventBridge events go.
    pub results: Option<ResultsDestination>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultsDestination {
    Queue(String),
    Bus(String),
}

pub const DEFAULT_REQUEST_BUDGET_MS: u64 = 200;
pub const DEFAULT_DEADLINE_MARGIN_MS: u64 = 50;
pub const DEFAULT_ASYNC_BUDGET_MS: u64 = 10_000;
pub const DEFAULT_INIT_BUDGET_MS: u64 = 8000;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Build from any variable lookup (tests pass a map instead of mutating the process env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let task_root = lookup("LAMBDA_TASK_ROOT").map(PathBuf::from);
        let model_uri = lookup("MODEL_URI")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                default_model_dir(task_root.as_deref())
                    .display()
                    .to_string()
            });
        let ort_dylib_path = lookup("ORT_DYLIB_PATH")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default_ort_path(task_root.as_deref()));
        let queue = lookup("RESULTS_QUEUE_URL").filter(|v| !v.is_empty());
        let bus = lookup("RESULTS_BUS_NAME").filter(|v| !v.is_empty());
        let results = match (queue, bus) {
            (Some(queue), Some(_)) => {
                return Err(ConfigError {
                    name: "RESULTS_BUS_NAME",
                    value: queue,
                    reason: "set RESULTS_QUEUE_URL or RESULTS_BUS_NAME, not both".into(),
                });
            }
            (Some(queue), None) => Some(ResultsDestination::Queue(queue)),
            (None, Some(bus)) => Some(ResultsDestination::Bus(bus)),
            (None, None) => None,
        };
        let limits = Limits {
            max_body_bytes: positive(
                &lookup,
                "FRAUDFLOW_MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES as u64,
            )? as usize,
            max_batch_items: positive(
                &lookup,
                "FRAUDFLOW_MAX_BATCH_ITEMS",
                DEFAULT_MAX_BATCH_ITEMS as u64,
            )? as usize,
        };
        let function_name = lookup("AWS_LAMBDA_FUNCTION_NAME").filter(|v| !v.is_empty());
        let emit_metrics = match lookup("FRAUDFLOW_EMF").as_deref().map(str::trim) {
            None | Some("") => function_name.is_some(),
            Some("1" | "true" | "on") => true,
            Some("0" | "false" | "off") => false,
            Some(other) => {
                return Err(ConfigError {
                    name: "FRAUDFLOW_EMF",
                    value: other.to_owned(),
                    reason: "expected true or false".into(),
                });
            }
        };
        let drift_threshold = match lookup("FRAUDFLOW_DRIFT_THRESHOLD").filter(|v| !v.is_empty()) {
            None => 0.5,
            Some(value) => match value.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => v,
                _ => {
                    return Err(ConfigError {
                        name: "FRAUDFLOW_DRIFT_THRESHOLD",
                        value,
                        reason: "expected a positive number of standard deviations".into(),
                    });
                }
            },
        };
        Ok(Self {
            function_name,
            emit_metrics,
            drift_window: positive(&lookup, "FRAUDFLOW_DRIFT_WINDOW", 1000)? as usize,
            drift_threshold,
            log_salt: lookup("FRAUDFLOW_LOG_SALT").unwrap_or_else(|| "fraudflow-v1".to_owned()),
            model_retry: millis(&lookup, "FRAUDFLOW_MODEL_RETRY_MS", 1000)?,
            limits,
            results,
            model_uri,
            ort_dylib_path,
            ort_threads: positive(&lookup, "FRAUDFLOW_ORT_THREADS", 1)? as usize,
            request_budget: millis(&lookup, "FRAUDFLOW_DEADLINE_MS", DEFAULT_REQUEST_BUDGET_MS)?,
            async_budget: millis(
                &lookup,
                "FRAUDFLOW_ASYNC_DEADLINE_MS",
                DEFAULT_ASYNC_BUDGET_MS,
            )?,
            deadline_margin: millis(
                &lookup,
                "FRAUDFLOW_DEADLINE_MARGIN_MS",
                DEFAULT_DEADLINE_MARGIN_MS,
            )?,
            init_budget: millis(&lookup, "FRAUDFLOW_INIT_BUDGET_MS", DEFAULT_INIT_BUDGET_MS)?,
        })
    }
}

/// The bundled artifact: beside the function in a Lambda package, else the repository's copy.
pub fn default_model_dir(task_root: Option<&std::path::Path>) -> PathBuf {
    match task_root {
        Some(root) => root.join("models/default"),
        // functions/fraudflow -> the repository root, without "..": the path is printed.
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .unwrap_or(std::path::Path::new("."))
            .join("models/default"),
    }
}

fn default_ort_path(task_root: Option<&std::path::Path>) -> String {
    match task_root {
        Some(root) => root.join("lib/libonnxruntime.so").display().to_string(),
        // Found through LD_LIBRARY_PATH / the system's library search path.
        None => "libonnxruntime.so".to_owned(),
    }
}

fn parse_u64(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match lookup(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(value) => value.trim().parse::<u64>().map_err(|_| ConfigError {
            name,
            value,
            reason: "expected a whole number".into(),
        }),
    }
}

fn positive(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    let value = parse_u64(lookup, name, default)?;
    if value == 0 {
        return Err(ConfigError {
            name,
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(value)
}

fn millis(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    parse_u64(lookup, name, default).map(Duration::from_millis)
}
