//! The state a warm container keeps: configuration, artifact store, and the scorer holding the
//! model. Built once at cold start and shared by reference by every invocation.

use std::sync::Arc;
use std::time::Instant;

use crate::artifact::{ArtifactLocation, ArtifactStore};
use crate::config::Config;
use crate::error::ArtifactError;
use crate::model::{OnnxModel, SessionOptions, ort_environment};
use crate::scoring::{LoadedModel, Scorer};

pub struct Service {
    pub config: Config,
    pub store: ArtifactStore,
    pub scorer: Scorer,
}

/// How the cold-start model load went, for logs and metrics.
#[derive(Debug)]
pub struct LoadReport {
    pub location: String,
    pub model_version: Option<String>,
    pub elapsed_ms: u128,
    pub error: Option<String>,
}

impl Service {
    /// Build the store for the configured location, then load the model within the init budget.
    /// A failed load is not fatal: the heuristic answers (`model_unavailable`) and the report
    /// says why.
    pub async fn start(config: Config) -> (Self, LoadReport) {
        let store = match ArtifactLocation::parse(&config.model_uri) {
            Ok(ArtifactLocation::S3 { .. }) => ArtifactStore::s3_from_env(config.init_budget).await,
            _ => ArtifactStore::local_only(),
        };
        Self::start_with_store(config, store).await
    }

    /// As [`Service::start`], with a store built by the caller (tests point it at a local S3).
    pub async fn start_with_store(config: Config, store: ArtifactStore) -> (Self, LoadReport) {
        let service = Self {
            config,
            store,
            scorer: Scorer::new(),
        };
        let report = service.load_model().await;
        (service, report)
    }

    /// Fetch, verify and load the model; install it if it loaded.
    pub async fn load_model(&self) -> LoadReport {
        let started = Instant::now();
        let location_text = self.config.model_uri.clone();
        let budget = self.config.init_budget;
        let result = match tokio::time::timeout(budget, self.fetch_and_build()).await {
            Ok(result) => result,
            Err(_) => Err(ArtifactError::Fetch {
                location: location_text.clone(),
                reason: format!(
                    "model load did not finish within the init budget of {} ms",
                    budget.as_millis()
                ),
            }),
        };
        let elapsed_ms = started.elapsed().as_millis();
        match result {
            Ok(model) => {
                let version = model.manifest.model_version.clone();
                self.scorer.install(model);
                tracing::info!(location = %location_text, model_version = %version, elapsed_ms = elapsed_ms as u64, "model loaded");
                LoadReport {
                    location: location_text,
                    model_version: Some(version),
                    elapsed_ms,
                    error: None,
                }
            }
            Err(err) => {
                tracing::error!(location = %location_text, error = %err, elapsed_ms = elapsed_ms as u64, "model not loaded; the heuristic answers until it is");
                LoadReport {
                    location: location_text,
                    model_version: None,
                    elapsed_ms,
                    error: Some(err.to_string()),
                }
            }
        }
    }

    async fn fetch_and_build(&self) -> Result<LoadedModel, ArtifactError> {
        let location = ArtifactLocation::parse(&self.config.model_uri)?;
        let artifact = self.store.fetch(&location).await?;
        let dylib = self.config.ort_dylib_path.clone();
        let options = SessionOptions {
            intra_op_threads: self.config.ort_threads,
        };
        // Session building is CPU work (graph optimisation): keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let environment = ort_environment(&dylib)?;
            let model = OnnxModel::load(
                environment,
                &artifact.model_bytes,
                &artifact.manifest,
                options,
            )?;
            Ok::<_, ArtifactError>(LoadedModel {
                predictor: Arc::new(model),
                manifest: artifact.manifest,
            })
        })
        .await
        .map_err(|err| ArtifactError::Model(crate::error::ModelError::Worker(err.to_string())))?
    }
}
