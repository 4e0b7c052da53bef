//! The model runtime: the only module that talks to ONNX Runtime (`ort`, pinned to rc.15).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use crate::error::ModelError;
use crate::features::{FEATURE_COUNT, FeatureRow};
use crate::manifest::Manifest;

/// Model outputs for a batch, column by column (no per-row allocation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Predictions {
    pub fraud_probability: Vec<f32>,
    pub log_likelihood: Vec<f32>,
    pub fraud_logit: Vec<f32>,
    /// Row-major `[rows, term_count]` additive terms of the logit (empty if the model has none).
    pub logit_terms: Vec<f32>,
    pub term_count: usize,
}

impl Predictions {
    pub fn len(&self) -> usize {
        self.fraud_probability.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fraud_probability.is_empty()
    }

    pub fn terms(&self, row: usize) -> &[f32] {
        if self.term_count == 0 {
            return &[];
        }
        let start = row * self.term_count;
        self.logit_terms
            .get(start..start + self.term_count)
            .unwrap_or(&[])
    }
}

/// Anything that turns feature rows into predictions. The ONNX model in production; tests wrap
/// it to make it slow or faulty on purpose.
pub trait Predictor: Send + Sync {
    fn predict(&self, rows: &[FeatureRow]) -> Result<Predictions, ModelError>;
}

/// Session settings. Threads are explicit: ORT otherwise sizes its pool from the host's cores,
/// which on Lambda are not the function's vCPUs.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    pub intra_op_threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            intra_op_threads: 1,
        }
    }
}

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Load the ONNX Runtime library once per process. `init_from` turns a missing library into an
/// error (plain `init` panics).
pub fn ort_environment(
    dylib_path: &str,
) -> Result<&'static ort::environment::Environment, ModelError> {
    let loaded = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(dylib_path).map_err(|err| err.to_string())?;
        builder
            .with_name("fraudflow")
            .build()
            .map_err(|err| err.to_string())
    });
    loaded.as_ref().map_err(|reason| ModelError::Library {
        path: dylib_path.to_owned(),
        reason: reason.clone(),
    })
}

/// The ONNX Runtime library inside a Python virtual environment made from the onnxruntime wheel
/// (`<venv>/lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so.*`), as `make` lays
/// it out in `.venv`. Tests and tools use it when `ORT_DYLIB_PATH` is not set.
pub fn find_ort_in_venv(venv: &std::path::Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .find_map(|python| {
            let capi = python.path().join("site-packages/onnxruntime/capi");
            std::fs::read_dir(capi)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libonnxruntime.so."))
                })
        })
}

/// Where a model load spent its time, for the cold-start log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTimings {
    /// Parsing and optimising the graph into a session.
    pub session_build: Duration,
    /// The one-row warm-up run.
    pub warmup: Duration,
}

/// The exported flow, run by ONNX Runtime.
pub struct OnnxModel {
    // rc.15's Session::run takes &mut self; a Mutex lets concurrent invocations share one session.
    session: Mutex<Session>,
    input_name: String,
    output_names: OutputNames,
    term_count: usize,
    load_timings: LoadTimings,
}

struct OutputNames {
    probability: String,
    log_likelihood: String,
    logit: String,
    terms: Option<String>,
}

fn build_session(
    environment: &ort::environment::Environment,
    model_bytes: &[u8],
    options: SessionOptions,
) -> ort::Result<Session> {
    Session::builder(environment)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(options.intra_op_threads)?
        .with_inter_threads(1)?
        .with_parallel_execution(false)?
        .commit_from_memory(model_bytes)
}

impl OnnxModel {
    pub fn load(
        environment: &ort::environment::Environment,
        model_bytes: &[u8],
        manifest: &Manifest,
        options: SessionOptions,
    ) -> Result<Self, ModelError> {
        let started = Instant::now();
        let session = build_session(environment, model_bytes, options)
            .map_err(|err| ModelError::Session(err.to_string()))?;
        let session_build = started.elapsed();
        let outputs = &manifest.outputs;
        let output_names = OutputNames {
            probability: outputs.fraud_probability.clone(),
            log_likelihood: outputs.log_likelihood.clone(),
            logit: outputs.fraud_logit.clone(),
            terms: outputs.logit_terms.clone(),
        };
        let has_input = session
            .inputs()
            .iter()
            .any(|i| i.name() == manifest.inputs.name);
        if !has_input {
            return Err(ModelError::Interface(format!(
                "no input named {:?}",
                manifest.inputs.name
            )));
        }
        let graph_outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let mut wanted = vec![
            &output_names.probability,
            &output_names.log_likelihood,
            &output_names.logit,
        ];
        wanted.extend(output_names.terms.as_ref());
        for name in wanted {
            if !graph_outputs.contains(&name.as_str()) {
                return Err(ModelError::Interface(format!(
                    "no output named {name:?}; the graph has {graph_outputs:?}"
                )));
            }
        }
        let term_count = if output_names.terms.is_some() {
            manifest.reasons.terms.len()
        } else {
            0
        };
        let mut model = Self {
            session: Mutex::new(session),
            input_name: manifest.inputs.name.clone(),
            output_names,
            term_count,
            load_timings: LoadTimings::default(),
        };
        // One warm-up row: ORT allocates and plans on the first run, which should be paid at
        // cold start, not by the first caller.
        let warming = Instant::now();
        model.predict(&[[0.0; FEATURE_COUNT]])?;
        model.load_timings = LoadTimings {
            session_build,
            warmup: warming.elapsed(),
        };
        Ok(model)
    }

    /// How long building the session and the warm-up run took.
    pub fn load_timings(&self) -> LoadTimings {
        self.load_timings
    }
}

impl Predictor for OnnxModel {
    fn predict(&self, rows: &[FeatureRow]) -> Result<Predictions, ModelError> {
        if rows.is_empty() {
            return Ok(Predictions {
                term_count: self.term_count,
                ..Predictions::default()
            });
        }
        let flat = rows.as_flattened();
        let input = TensorRef::from_array_view(([rows.len(), FEATURE_COUNT], flat))
            .map_err(|err| ModelError::Inference(err.to_string()))?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| ModelError::Worker("the session lock was poisoned by a panic".into()))?;
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(|err| ModelError::Inference(err.to_string()))?;
        let column = |name: &str| -> Result<Vec<f32>, ModelError> {
            let value = outputs
                .get(name)
                .ok_or_else(|| ModelError::Interface(format!("output {name:?} missing")))?;
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|err| ModelError::Inference(err.to_string()))?;
            Ok(data.to_vec())
        };
        let predictions = Predictions {
            fraud_probability: column(&self.output_names.probability)?,
            log_likelihood: column(&self.output_names.log_likelihood)?,
            fraud_logit: column(&self.output_names.logit)?,
            logit_terms: match &self.output_names.terms {
                Some(name) => column(name)?,
                None => Vec::new(),
            },
            term_count: self.term_count,
        };
        let rows_out = predictions.len();
        if rows_out != rows.len()
            || predictions.log_likelihood.len() != rows.len()
            || predictions.fraud_logit.len() != rows.len()
            || predictions.logit_terms.len() != rows.len() * self.term_count
        {
            return Err(ModelError::RowCount {
                expected: rows.len(),
                got: rows_out,
            });
        }
        Ok(predictions)
    }
}
