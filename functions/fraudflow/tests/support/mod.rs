//! Shared fixtures for integration tests: paths, configuration, a real local S3 server (moto)
//! and a loopback proxy that counts the requests reaching it.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};

use fraudflow::config::Config;
use fraudflow::error::ModelError;
use fraudflow::features::{FEATURE_PATHS, FeatureRow};
use fraudflow::manifest::Manifest;
use fraudflow::model::{Predictions, Predictor};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn bundled_model() -> PathBuf {
    repo_root().join("models/default")
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH`, else the one in the repo's `.venv` (made by `make`).
pub fn ort_dylib() -> String {
    if let Ok(path) = std::env::var("ORT_DYLIB_PATH") {
        return path;
    }
    let found = fraudflow::model::find_ort_in_venv(&repo_root().join(".venv"));
    match found {
        Some(path) => path.display().to_string(),
        None => panic!(
            "no ONNX Runtime library: set ORT_DYLIB_PATH or run `make test`, which installs the \
             onnxruntime wheel into .venv"
        ),
    }
}

pub fn config(model_uri: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("MODEL_URI".into(), model_uri.into());
    vars.insert("ORT_DYLIB_PATH".into(), ort_dylib());
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto S3 server on 127.0.0.1, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Self {
        let bin = std::env::var("MOTO_SERVER").unwrap_or_else(|_| {
            let venv = repo_root().join(".venv/bin/moto_server");
            if venv.exists() {
                venv.display().to_string()
            } else {
                "moto_server".into()
            }
        });
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): run `make test`, which installs moto[server]")
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto did not start on {endpoint}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, endpoint }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("test", "test", None, None, "static"),
        ))
        .endpoint_url(endpoint)
        .build()
}

pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub async fn upload_dir(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str, dir: &Path) {
    let _ = client.create_bucket().bucket(bucket).send().await;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        put(client, bucket, &format!("{prefix}{name}"), bytes).await;
    }
}

pub async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, bytes: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
}

/// A TCP proxy on loopback that forwards to `upstream` and records the path of every GET.
pub struct CountingProxy {
    pub endpoint: String,
    gets: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> Self {
        Self::start_slow(upstream, Duration::ZERO).await
    }

    /// As `start`, holding every response back by `delay` (a slow S3).
    pub async fn start_slow(upstream: &str, delay: Duration) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let gets = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&gets);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let requests = async {
                        let mut buffer = vec![0u8; 64 * 1024];
                        loop {
                            let n = match client_read.read(&mut buffer).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            record_gets(&buffer[..n], &recorded);
                            if server_write.write_all(&buffer[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let responses = async {
                        tokio::time::sleep(delay).await;
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(requests, responses);
                });
            }
        });
        Self { endpoint, gets }
    }

    pub fn gets(&self) -> Vec<String> {
        self.gets.lock().unwrap().clone()
    }
}

fn record_gets(chunk: &[u8], recorded: &Mutex<Vec<String>>) {
    let text = String::from_utf8_lossy(chunk);
    for line in text.split("\r\n") {
        if let Some(rest) = line.strip_prefix("GET ") {
            let path = rest.split(' ').next().unwrap_or_default().to_owned();
            recorded.lock().unwrap().push(path);
        }
    }
}

// ---- stand-in models -------------------------------------------------------------------

pub fn manifest() -> Manifest {
    let features: Vec<Value> = FEATURE_PATHS
        .iter()
        .map(|p| json!({"name": p, "path": p}))
        .collect();
    let text = json!({
        "format_version": 1,
        "model_version": "test-model",
        "model": {"file": "model.onnx", "sha256": "0".repeat(64)},
        "inputs": {"name": "features", "features": features},
        "outputs": {"fraud_probability": "fraud_probability", "log_likelihood": "log_likelihood",
                    "fraud_logit": "fraud_logit", "logit_terms": "logit_terms"},
        "reasons": {"terms": ["amount", "terminal.risk_30d", "amount"]},
        "risk_thresholds": {"elevated": 0.1, "high": 0.5},
        "log_likelihood_reference": {"mean": -3.0, "std": 1.0}
    });
    Manifest::parse(text.to_string().as_bytes(), "test").expect("manifest")
}

/// Probability = amount / 1000, log-likelihood = -amount; amount 666 gives NaN.
pub struct AmountModel {
    pub delay: Duration,
    pub calls: AtomicUsize,
}

impl AmountModel {
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            calls: AtomicUsize::new(0),
        }
    }
}

impl Predictor for AmountModel {
    fn predict(&self, rows: &[FeatureRow]) -> Result<Predictions, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let amount = |r: &FeatureRow| if r[0] == 666.0 { f32::NAN } else { r[0] };
        Ok(Predictions {
            fraud_probability: rows.iter().map(|r| amount(r) / 1000.0).collect(),
            log_likelihood: rows.iter().map(|r| -amount(r)).collect(),
            fraud_logit: rows.iter().map(|r| r[0]).collect(),
            logit_terms: rows.iter().flat_map(|r| [1.0, r[14] * 10.0, 0.5]).collect(),
            term_count: 3,
        })
    }
}

pub struct FailingModel;
impl Predictor for FailingModel {
    fn predict(&self, _rows: &[FeatureRow]) -> Result<Predictions, ModelError> {
        Err(ModelError::Inference("boom".into()))
    }
}

pub struct PanickingModel;
impl Predictor for PanickingModel {
    fn predict(&self, _rows: &[FeatureRow]) -> Result<Predictions, ModelError> {
        panic!("bug in the model layer")
    }
}

pub fn tx(id: i64, amount: f64) -> Value {
    json!({
        "transaction_id": id, "timestamp": "2018-08-08T07:12:45Z", "customer_id": "c-1",
        "terminal_id": "t-1", "amount": amount,
        "customer": {"nb_tx_1d": 1, "avg_amount_1d": 50.0, "nb_tx_7d": 5, "avg_amount_7d": 50.0,
                     "nb_tx_30d": 20, "avg_amount_30d": 50.0},
        "terminal": {"nb_tx_1d": 3, "risk_1d": 0.0, "nb_tx_7d": 20, "risk_7d": 0.0,
                     "nb_tx_30d": 80, "risk_30d": 0.25}
    })
}

// ---- results destination and services for handler tests ---------------------------------

/// A results destination that records what it got; it can refuse some messages or panic.
#[derive(Default)]
pub struct RecordingSink {
    pub delivered: Mutex<Vec<fraudflow::sink::ResultMessage>>,
    pub refuse: Vec<String>,
    pub panic: bool,
}

impl fraudflow::sink::ResultsSink for RecordingSink {
    fn deliver<'a>(
        &'a self,
        messages: &'a [fraudflow::sink::ResultMessage],
    ) -> fraudflow::sink::DeliveryFuture<'a> {
        Box::pin(async move {
            assert!(!self.panic, "sink exploded");
            messages
                .iter()
                .map(|message| {
                    if self.refuse.contains(&message.source_id) {
                        Err("queue refused the message".to_owned())
                    } else {
                        self.delivered.lock().unwrap().push(message.clone());
                        Ok(())
                    }
                })
                .collect()
        })
    }

    fn describe(&self) -> String {
        "recording sink".into()
    }
}

/// A service around a stand-in model (no ORT), with optional sink and extra configuration.
pub fn fake_service(
    predictor: Option<Arc<dyn Predictor>>,
    sink: Option<Arc<dyn fraudflow::sink::ResultsSink>>,
    extra: &[(&str, &str)],
) -> fraudflow::service::Service {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("MODEL_URI".into(), "/nonexistent".into());
    vars.insert(
        "ORT_DYLIB_PATH".into(),
        "/nonexistent/libonnxruntime.so".into(),
    );
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let scorer = match predictor {
        Some(predictor) => {
            fraudflow::scoring::Scorer::with_model(fraudflow::scoring::LoadedModel {
                predictor,
                manifest: manifest(),
            })
        }
        None => fraudflow::scoring::Scorer::new(),
    };
    fraudflow::service::Service::assemble(
        config,
        fraudflow::artifact::ArtifactStore::local_only(),
        scorer,
        sink,
    )
}

pub fn event_file(name: &str) -> Value {
    let path = repo_root().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Fails any batch holding an amount of 13 (as ORT would on a row it cannot compute).
pub struct PickyModel;
impl Predictor for PickyModel {
    fn predict(&self, rows: &[FeatureRow]) -> Result<Predictions, ModelError> {
        if rows.iter().any(|r| r[0] == 13.0) {
            return Err(ModelError::Inference("cannot score amount 13".into()));
        }
        AmountModel::new(Duration::ZERO).predict(rows)
    }
}
