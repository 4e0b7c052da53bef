//! Errors of the fraudflow library, one enum per concern.

use thiserror::Error;

/// Why an artifact (model + manifest) could not be fetched, verified or loaded.
#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("MODEL_URI {uri:?} is not usable: {reason}")]
    BadUri { uri: String, reason: String },
    #[error("could not read {location}: {reason}")]
    Fetch { location: String, reason: String },
    #[error("manifest {location} is not valid JSON of the expected shape: {reason}")]
    ManifestParse { location: String, reason: String },
    #[error(
        "manifest format_version is {found}, this build reads format_version {expected}: \
         export the artifact with a matching model-export or upgrade the function"
    )]
    FormatVersion { found: u64, expected: u64 },
    #[error(
        "model.onnx sha256 is {actual} but the manifest says {expected}: \
         the object is corrupt or does not belong to this manifest; re-upload the artifact"
    )]
    HashMismatch { expected: String, actual: String },
    #[error("manifest field {field} is invalid: {reason}")]
    ManifestField { field: String, reason: String },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Failures of the ONNX Runtime layer.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error(
        "could not load the ONNX Runtime library from {path:?}: {reason}. \
         Set ORT_DYLIB_PATH to libonnxruntime.so (from the onnxruntime==1.31.1 wheel: \
         onnxruntime/capi/libonnxruntime.so.1.31.1)"
    )]
    Library { path: String, reason: String },
    #[error("could not build the ONNX Runtime session: {0}")]
    Session(String),
    #[error("the model graph does not match the manifest: {0}")]
    Interface(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("the model returned {got} rows for {expected} inputs")]
    RowCount { expected: usize, got: usize },
    #[error("the inference worker stopped: {0}")]
    Worker(String),
}

/// A configuration value that cannot be used.
#[derive(Debug, Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}
