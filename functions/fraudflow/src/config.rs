//! Configuration from environment variables, read once at start.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;

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
    /// `FRAUDFLOW_DEADLINE_MARGIN_MS`: kept free before the Lambda deadline to send the answer (default 50).
    pub deadline_margin: Duration,
    /// `FRAUDFLOW_INIT_BUDGET_MS`: the most the cold start spends loading the model (default 8000;
    /// Lambda re-runs an init that passes 10 s).
    pub init_budget: Duration,
}

pub const DEFAULT_REQUEST_BUDGET_MS: u64 = 200;
pub const DEFAULT_DEADLINE_MARGIN_MS: u64 = 50;
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
        Ok(Self {
            model_uri,
            ort_dylib_path,
            ort_threads: positive(&lookup, "FRAUDFLOW_ORT_THREADS", 1)? as usize,
            request_budget: millis(&lookup, "FRAUDFLOW_DEADLINE_MS", DEFAULT_REQUEST_BUDGET_MS)?,
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
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/default")),
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
