//! Where the model artifact lives (a local folder or an S3 prefix), fetching it, and verifying
//! it against its manifest before anything uses it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::ArtifactError;
use crate::manifest::Manifest;

pub const MANIFEST_FILE: &str = "manifest.json";

/// A verified artifact: the manifest and the model bytes whose sha256 it names.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub manifest: Manifest,
    pub model_bytes: Vec<u8>,
    pub location: String,
    /// Time spent reading the manifest and the model (S3 GETs or local reads).
    pub fetch_time: Duration,
    /// Time spent checking the model's sha256 against the manifest.
    pub verify_time: Duration,
}

/// Where to read an artifact from.
#[derive(Debug, Clone)]
pub enum ArtifactLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl ArtifactLocation {
    /// `s3://bucket/prefix/` or a local folder path.
    pub fn parse(uri: &str) -> Result<Self, ArtifactError> {
        let bad = |reason: &str| ArtifactError::BadUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name; expected s3://bucket/prefix/"));
            }
            let prefix = prefix.trim_end_matches('/');
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix,
            })
        } else if uri.contains("://") {
            Err(bad("only s3:// URIs and local folders are supported"))
        } else if uri.is_empty() {
            Err(bad("empty; give s3://bucket/prefix/ or a local folder"))
        } else {
            Ok(Self::Local(PathBuf::from(uri)))
        }
    }

    /// Where one file of the artifact lives, for messages.
    pub fn file(&self, name: &str) -> String {
        match self {
            Self::Local(path) => path.join(name).display().to_string(),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}{name}"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Local(path) => path.display().to_string(),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// Reads artifact files. S3 access goes through one client, built once by the caller.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    s3: Option<aws_sdk_s3::Client>,
}

impl ArtifactStore {
    /// A store that can only read local folders.
    pub fn local_only() -> Self {
        Self { s3: None }
    }

    pub fn with_s3(client: aws_sdk_s3::Client) -> Self {
        Self { s3: Some(client) }
    }

    /// An S3 store on the shared AWS configuration. An endpoint override (`AWS_ENDPOINT_URL_S3`
    /// / `AWS_ENDPOINT_URL`) means a local S3 server, which needs path-style addressing.
    pub fn s3_from_config(shared: &aws_config::SdkConfig) -> Self {
        let endpoint_override = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some();
        let config = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(endpoint_override)
            .build();
        Self::with_s3(aws_sdk_s3::Client::from_conf(config))
    }

    /// Read one file of the artifact.
    pub async fn read(
        &self,
        location: &ArtifactLocation,
        name: &str,
    ) -> Result<Vec<u8>, ArtifactError> {
        match location {
            ArtifactLocation::Local(dir) => read_local(&dir.join(name)).await,
            ArtifactLocation::S3 { bucket, prefix } => {
                let key = format!("{prefix}{name}");
                let place = format!("s3://{bucket}/{key}");
                let Some(client) = &self.s3 else {
                    return Err(ArtifactError::Fetch {
                        location: place,
                        reason: "no S3 client configured".into(),
                    });
                };
                let fetch_error = |reason: String| ArtifactError::Fetch {
                    location: place.clone(),
                    reason,
                };
                if client.config().region().is_none() {
                    // The SDK's own error buries this under a dump of its request state.
                    return Err(fetch_error(
                        "no AWS region is set: set AWS_REGION to the bucket's region \
                         (Lambda sets it for the function)"
                            .into(),
                    ));
                }
                let object = client
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|err| {
                        fetch_error(aws_sdk_s3::error::DisplayErrorContext(err).to_string())
                    })?;
                let body = object
                    .body
                    .collect()
                    .await
                    .map_err(|err| fetch_error(err.to_string()))?;
                Ok(body.into_bytes().to_vec())
            }
        }
    }

    /// Fetch the manifest and the model, and verify the model against the manifest.
    pub async fn fetch(&self, location: &ArtifactLocation) -> Result<Artifact, ArtifactError> {
        let where_ = location.describe();
        let started = Instant::now();
        let manifest_bytes = self.read(location, MANIFEST_FILE).await?;
        let manifest = Manifest::parse(&manifest_bytes, &location.file(MANIFEST_FILE))?;
        let model_bytes = self.read(location, &manifest.model.file).await?;
        let fetched = Instant::now();
        verify_sha256(&model_bytes, &manifest.model.sha256)?;
        Ok(Artifact {
            manifest,
            model_bytes,
            location: where_,
            fetch_time: fetched - started,
            verify_time: fetched.elapsed(),
        })
    }
}

/// The AWS configuration from the environment (region, credentials, endpoint overrides), with
/// per-attempt timeouts so a stalled service cannot eat the init budget.
pub async fn aws_config_from_env(attempt_timeout: Duration) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(attempt_timeout.min(Duration::from_secs(2)))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .load()
        .await
}

async fn read_local(path: &Path) -> Result<Vec<u8>, ArtifactError> {
    tokio::fs::read(path)
        .await
        .map_err(|err| ArtifactError::Fetch {
            location: path.display().to_string(),
            reason: err.to_string(),
        })
}

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn verify_sha256(bytes: &[u8], expected: &str) -> Result<(), ArtifactError> {
    let actual = sha256_hex(bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ArtifactError::HashMismatch {
            expected: expected.to_owned(),
            actual,
        })
    }
}
