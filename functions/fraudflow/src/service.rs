//! The state a warm container keeps: configuration, artifact store, results destination, and
//! the scorer holding the model. Built once at cold start and shared by reference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::artifact::{ArtifactLocation, ArtifactStore};
use crate::config::{Config, ResultsDestination};
use crate::error::{ArtifactError, ModelError};
use crate::metrics::Telemetry;
use crate::model::{OnnxModel, SessionOptions, ort_environment};
use crate::scoring::{LoadedModel, Scorer};
use crate::sink::{EventBridgeSink, ResultsSink, SqsSink};

/// The longest wait between two attempts to load a model that failed to load.
pub const MAX_MODEL_RETRY: Duration = Duration::from_secs(60);

pub struct Service {
    pub config: Config,
    pub store: ArtifactStore,
    pub scorer: Arc<Scorer>,
    pub sink: Option<Arc<dyn ResultsSink>>,
    pub telemetry: Telemetry,
}

/// Where a successful model load spent its time (the cold-start split in the "model loaded" log).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadPhases {
    /// Reading the manifest and the model (S3 GETs or local reads).
    pub fetch: Duration,
    /// Checking the model's sha256.
    pub verify: Duration,
    /// Loading the ONNX Runtime library and its environment (once per process; runs while the
    /// artifact is fetched, so it overlaps `fetch`).
    pub library: Duration,
    /// Building the session (graph parsing and optimisation).
    pub session_build: Duration,
    /// The one-row warm-up run.
    pub warmup: Duration,
}

/// Milliseconds with microsecond resolution, for logs.
pub fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

/// How a model load went, for logs and metrics.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub location: String,
    pub model_version: Option<String>,
    pub elapsed_ms: u128,
    pub error: Option<String>,
}

impl Service {
    /// Build the clients the configuration needs (once), then load the model within the init
    /// budget. A failed load is not fatal: the heuristic answers (`model_unavailable`) while a
    /// background task retries with backoff.
    pub async fn start(config: Config) -> (Self, LoadReport) {
        let needs_s3 = matches!(
            ArtifactLocation::parse(&config.model_uri),
            Ok(ArtifactLocation::S3 { .. })
        );
        let aws = if needs_s3 || config.results.is_some() {
            Some(crate::artifact::aws_config_from_env(config.init_budget).await)
        } else {
            None
        };
        let store = match (&aws, needs_s3) {
            (Some(shared), true) => ArtifactStore::s3_from_config(shared),
            _ => ArtifactStore::local_only(),
        };
        let sink: Option<Arc<dyn ResultsSink>> = match (&config.results, &aws) {
            (Some(ResultsDestination::Queue(url)), Some(shared)) => Some(Arc::new(SqsSink {
                client: aws_sdk_sqs::Client::new(shared),
                queue_url: url.clone(),
            })),
            (Some(ResultsDestination::Bus(name)), Some(shared)) => {
                Some(Arc::new(EventBridgeSink {
                    client: aws_sdk_eventbridge::Client::new(shared),
                    bus_name: name.clone(),
                }))
            }
            _ => None,
        };
        Self::start_with(config, store, sink).await
    }

    /// As [`Service::start`], with the store and sink built by the caller (tests point them at
    /// local servers or fakes).
    pub async fn start_with(
        config: Config,
        store: ArtifactStore,
        sink: Option<Arc<dyn ResultsSink>>,
    ) -> (Self, LoadReport) {
        let service = Self {
            telemetry: Telemetry::new(&config),
            config,
            store,
            scorer: Arc::new(Scorer::new()),
            sink,
        };
        let report = load_into(&service.scorer, &service.store, &service.config).await;
        service.telemetry.record_load(&report);
        if report.error.is_some() {
            service.spawn_model_retry();
        }
        (service, report)
    }

    /// A service around an already prepared scorer, without loading anything (tests, tools).
    pub fn assemble(
        config: Config,
        store: ArtifactStore,
        scorer: Scorer,
        sink: Option<Arc<dyn ResultsSink>>,
    ) -> Self {
        Self {
            telemetry: Telemetry::new(&config),
            config,
            store,
            scorer: Arc::new(scorer),
            sink,
        }
    }

    /// As [`Service::start_with`], without a results destination.
    pub async fn start_with_store(config: Config, store: ArtifactStore) -> (Self, LoadReport) {
        Self::start_with(config, store, None).await
    }

    /// Keep trying to load the model in the background, with exponential backoff, until one
    /// load succeeds. The first good model is installed and never replaced.
    pub fn spawn_model_retry(&self) -> tokio::task::JoinHandle<()> {
        let scorer = Arc::clone(&self.scorer);
        let store = self.store.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            let mut delay = config.model_retry;
            let mut attempt = 1u32;
            while scorer.model().is_none() {
                tokio::time::sleep(delay).await;
                attempt += 1;
                let report = load_into(&scorer, &store, &config).await;
                match report.error {
                    None => tracing::info!(attempt, "model loaded on retry; model answers resume"),
                    Some(error) => {
                        tracing::warn!(attempt, next_retry_ms = (delay * 2).min(MAX_MODEL_RETRY).as_millis() as u64, %error, "model still unavailable");
                    }
                }
                delay = (delay * 2).min(MAX_MODEL_RETRY);
            }
        })
    }
}

/// Fetch, verify and load the model within the init budget; install it if it loaded.
pub async fn load_into(scorer: &Scorer, store: &ArtifactStore, config: &Config) -> LoadReport {
    let started = Instant::now();
    let location_text = config.model_uri.clone();
    let budget = config.init_budget;
    let result = match tokio::time::timeout(budget, fetch_and_build(store, config)).await {
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
        Ok((model, phases)) => {
            let version = model.manifest.model_version.clone();
            scorer.install(model);
            tracing::info!(
                location = %location_text,
                model_version = %version,
                elapsed_ms = elapsed_ms as u64,
                fetch_ms = millis(phases.fetch),
                verify_ms = millis(phases.verify),
                library_ms = millis(phases.library),
                session_build_ms = millis(phases.session_build),
                warmup_ms = millis(phases.warmup),
                "model loaded"
            );
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

async fn fetch_and_build(
    store: &ArtifactStore,
    config: &Config,
) -> Result<(LoadedModel, LoadPhases), ArtifactError> {
    let location = ArtifactLocation::parse(&config.model_uri)?;
    // Loading the ONNX Runtime library (29 MB to map and relocate, ~25 ms) overlaps the download
    // of the artifact: both are on the cold-start path and neither needs the other.
    let dylib = config.ort_dylib_path.clone();
    let library = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        ort_environment(&dylib).map(|environment| (environment, started.elapsed()))
    });
    let artifact = store.fetch(&location).await;
    let library = library.await;
    // A bad artifact is reported before a missing library: it is the more specific news.
    let artifact = artifact?;
    let (environment, library) =
        library.map_err(|err| ArtifactError::Model(ModelError::Worker(err.to_string())))??;
    let options = SessionOptions {
        intra_op_threads: config.ort_threads,
    };
    // Session building is CPU work (graph optimisation): keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let model = OnnxModel::load(
            environment,
            &artifact.model_bytes,
            &artifact.manifest,
            options,
        )?;
        let timings = model.load_timings();
        let phases = LoadPhases {
            fetch: artifact.fetch_time,
            verify: artifact.verify_time,
            library,
            session_build: timings.session_build,
            warmup: timings.warmup,
        };
        let loaded = LoadedModel {
            predictor: Arc::new(model),
            manifest: artifact.manifest,
        };
        Ok::<_, ArtifactError>((loaded, phases))
    })
    .await
    .map_err(|err| ArtifactError::Model(ModelError::Worker(err.to_string())))?
}
