//! In-process scoring benchmarks (`make bench`): the whole path from JSON bytes to answer bytes
//! at batch 1, 16 and 256; the ONNX Runtime call alone (the floor for the code around it); and
//! the heuristic alone; and the same path with a model that costs nothing (`around_model`), so
//! the code around ONNX Runtime is measured on its own. Real test-week transactions from
//! `samples/`, the bundled model.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fraudflow::contract::parse_transaction;
use fraudflow::error::ModelError;
use fraudflow::features::{FeatureRow, feature_row};
use fraudflow::heuristic;
use fraudflow::model::{OnnxModel, Predictions, Predictor, SessionOptions, ort_environment};
use fraudflow::scoring::{LoadedModel, Scorer};
use serde_json::Value;

// The allocator the binaries use (functions/scorer, functions/cli).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCHES: [usize; 3] = [1, 16, 256];

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn sample_lines(n: usize) -> Vec<String> {
    let file = std::fs::File::open(repo().join("samples/test-days.jsonl.gz"))
        .expect("samples/test-days.jsonl.gz");
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("gzip");
    text.lines().take(n).map(str::to_owned).collect()
}

fn load_model() -> (OnnxModel, fraudflow::manifest::Manifest) {
    let dylib = std::env::var("ORT_DYLIB_PATH").expect("set ORT_DYLIB_PATH (make bench does)");
    let dir = repo().join("models/default");
    let manifest = fraudflow::manifest::Manifest::parse(
        &std::fs::read(dir.join("manifest.json")).expect("manifest"),
        "bench",
    )
    .expect("manifest");
    let bytes = std::fs::read(dir.join("model.onnx")).expect("model");
    let environment = ort_environment(&dylib).expect("ORT");
    let model =
        OnnxModel::load(environment, &bytes, &manifest, SessionOptions::default()).expect("model");
    (model, manifest)
}

/// Answers every row with fixed outputs of the right shape: the scoring path minus the model.
struct FreeModel {
    term_count: usize,
}

impl Predictor for FreeModel {
    fn predict(&self, rows: &[FeatureRow]) -> Result<Predictions, ModelError> {
        Ok(Predictions {
            fraud_probability: vec![0.01; rows.len()],
            log_likelihood: vec![-3.0; rows.len()],
            fraud_logit: vec![-4.6; rows.len()],
            logit_terms: vec![0.1; rows.len() * self.term_count],
            term_count: self.term_count,
        })
    }
}

/// JSON bytes -> validated -> features -> model -> answer bytes, as the handler does it.
fn bench_bytes_to_answer(
    c: &mut Criterion,
    group: &str,
    lines: &[String],
    runtime: &tokio::runtime::Runtime,
    scorer: &Scorer,
) {
    let mut end_to_end = c.benchmark_group(group);
    for batch in BATCHES {
        // The request body as it arrives: {"transactions": [...]} bytes.
        let bodies: Vec<Vec<u8>> = lines
            .chunks(batch)
            .take(64)
            .map(|chunk| format!("{{\"transactions\":[{}]}}", chunk.join(",")).into_bytes())
            .collect();
        end_to_end.throughput(Throughput::Elements(batch as u64));
        end_to_end.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, _| {
            let mut next = 0;
            b.iter(|| {
                next = (next + 1) % bodies.len();
                let payload: Value = serde_json::from_slice(&bodies[next]).expect("json");
                let items = payload["transactions"].as_array().expect("array");
                let outcomes = runtime
                    .block_on(scorer.score_values(items, Instant::now() + Duration::from_secs(5)));
                serde_json::to_vec(&outcomes).expect("encode")
            });
        });
    }
    end_to_end.finish();
}

fn benches(c: &mut Criterion) {
    let lines = sample_lines(4096);
    let (model, manifest) = load_model();
    let model = std::sync::Arc::new(model);
    let rows: Vec<FeatureRow> = lines
        .iter()
        .map(|l| {
            feature_row(&parse_transaction(&serde_json::from_str(l).expect("json")).expect("valid"))
        })
        .collect();

    let mut ort_alone = c.benchmark_group("ort_call");
    for batch in BATCHES {
        ort_alone.throughput(Throughput::Elements(batch as u64));
        ort_alone.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut start = 0;
            b.iter(|| {
                start = (start + batch) % (rows.len() - batch);
                model.predict(&rows[start..start + batch]).expect("predict")
            });
        });
    }
    ort_alone.finish();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let term_count = manifest.reasons.terms.len();
    let scorer = Scorer::with_model(LoadedModel {
        predictor: model.clone(),
        manifest: manifest.clone(),
    });
    bench_bytes_to_answer(c, "bytes_to_answer", &lines, &runtime, &scorer);
    let free = Scorer::with_model(LoadedModel {
        predictor: std::sync::Arc::new(FreeModel { term_count }),
        manifest,
    });
    bench_bytes_to_answer(c, "around_model", &lines, &runtime, &free);

    let transactions: Vec<_> = lines
        .iter()
        .map(|l| parse_transaction(&serde_json::from_str(l).expect("json")).expect("valid"))
        .collect();
    let mut rules = c.benchmark_group("heuristic");
    rules.throughput(Throughput::Elements(1));
    rules.bench_function("one_transaction", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % transactions.len();
            heuristic::score(&transactions[next])
        });
    });
    rules.finish();
}

criterion_group! {
    name = scoring;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(scoring);
