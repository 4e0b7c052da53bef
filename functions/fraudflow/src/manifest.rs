//! The artifact manifest written by model-export (`manifest.json`), and its checks.

use serde::Deserialize;

use crate::error::ArtifactError;
use crate::features::FEATURE_PATHS;

/// The manifest format this build reads.
pub const FORMAT_VERSION: u64 = 1;

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format_version: u64,
    pub model_version: String,
    pub model: ModelFile,
    pub inputs: Inputs,
    pub outputs: Outputs,
    #[serde(default)]
    pub reasons: ReasonTerms,
    pub risk_thresholds: RiskThresholds,
    pub log_likelihood_reference: LogLikelihoodReference,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelFile {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Inputs {
    pub name: String,
    pub features: Vec<InputFeature>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InputFeature {
    pub name: String,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Outputs {
    pub fraud_probability: String,
    pub log_likelihood: String,
    pub fraud_logit: String,
    pub logit_terms: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReasonTerms {
    #[serde(default)]
    pub terms: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct RiskThresholds {
    pub elevated: f64,
    pub high: f64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct LogLikelihoodReference {
    pub mean: f64,
    pub std: f64,
}

impl Manifest {
    /// Parse and check everything that can be checked without the model bytes.
    pub fn parse(bytes: &[u8], location: &str) -> Result<Self, ArtifactError> {
        // Read the version first so an incompatible future manifest fails with the version
        // message rather than with whatever field it renamed.
        let raw: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|err| ArtifactError::ManifestParse {
                location: location.to_owned(),
                reason: err.to_string(),
            })?;
        match raw
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(ArtifactError::FormatVersion {
                    found,
                    expected: FORMAT_VERSION,
                });
            }
            None => {
                return Err(ArtifactError::ManifestField {
                    field: "format_version".into(),
                    reason: "missing or not an unsigned integer".into(),
                });
            }
        }
        let manifest: Manifest =
            serde_json::from_value(raw).map_err(|err| ArtifactError::ManifestParse {
                location: location.to_owned(),
                reason: err.to_string(),
            })?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<(), ArtifactError> {
        let paths: Vec<&str> = self
            .inputs
            .features
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        if paths != FEATURE_PATHS {
            return Err(ArtifactError::ManifestField {
                field: "inputs.features".into(),
                reason: format!(
                    "the model wants features {paths:?}, this build provides {FEATURE_PATHS:?}"
                ),
            });
        }
        let sha = &self.model.sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ArtifactError::ManifestField {
                field: "model.sha256".into(),
                reason: format!("expected 64 hex digits, got {sha:?}"),
            });
        }
        let t = self.risk_thresholds;
        if !(t.elevated > 0.0 && t.elevated <= t.high && t.high < 1.0) {
            return Err(ArtifactError::ManifestField {
                field: "risk_thresholds".into(),
                reason: format!(
                    "need 0 < elevated <= high < 1, got elevated {} and high {}",
                    t.elevated, t.high
                ),
            });
        }
        if self.model.file.contains('/') || self.model.file.contains("..") {
            return Err(ArtifactError::ManifestField {
                field: "model.file".into(),
                reason: format!(
                    "must be a plain file name in the artifact folder, got {:?}",
                    self.model.file
                ),
            });
        }
        Ok(())
    }
}
