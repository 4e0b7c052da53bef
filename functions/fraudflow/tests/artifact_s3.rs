//! The artifact served by a real local S3 server (moto on 127.0.0.1): fetched once per
//! container, verified, and refused (heuristic answers) when corrupt or mismatched.

mod support;

use std::time::{Duration, Instant};

use fraudflow::artifact::ArtifactStore;
use fraudflow::contract::{FallbackReason, Outcome, Source};
use fraudflow::handler::handle_payload;
use fraudflow::service::Service;
use serde_json::{Value, json};
use support::{CountingProxy, Moto, put, s3_client, upload_dir};

const BUCKET: &str = "models";

fn golden_transaction() -> Value {
    let text =
        std::fs::read_to_string(support::bundled_model().join("golden.json")).expect("golden");
    let golden: Value = serde_json::from_str(&text).expect("json");
    golden["cases"][0]["transaction"].clone()
}

fn manifest_bytes() -> Vec<u8> {
    std::fs::read(support::bundled_model().join("manifest.json")).expect("manifest")
}

async fn start(endpoint: &str, prefix: &str) -> (Service, fraudflow::service::LoadReport) {
    let config = support::config(
        &format!("s3://{BUCKET}/{prefix}"),
        &[("FRAUDFLOW_INIT_BUDGET_MS", "20000")],
    );
    Service::start_with_store(config, ArtifactStore::with_s3(s3_client(endpoint))).await
}

async fn first_answer(service: &Service) -> fraudflow::contract::Answer {
    let outcomes = service
        .scorer
        .score_values(
            &[golden_transaction()],
            Instant::now() + Duration::from_secs(10),
        )
        .await;
    match outcomes.into_iter().next() {
        Some(Outcome::Answer(answer)) => answer,
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_cases() {
    // One moto for all cases: it takes a couple of seconds to start.
    let moto = Moto::start().await;
    let admin = s3_client(&moto.endpoint);
    upload_dir(&admin, BUCKET, "good/", &support::bundled_model()).await;

    fetched_once_for_many_invocations(&moto).await;
    corrupt_model_is_refused(&moto, &admin).await;
    hash_mismatch_in_manifest_is_refused(&moto, &admin).await;
    unknown_format_version_is_refused(&moto, &admin).await;
    missing_artifact_leaves_the_heuristic_answering(&moto).await;
}

async fn fetched_once_for_many_invocations(moto: &Moto) {
    let proxy = CountingProxy::start(&moto.endpoint).await;
    let (service, report) = start(&proxy.endpoint, "good/").await;
    assert_eq!(report.error, None);
    for _ in 0..5 {
        let response = handle_payload(
            json!({"transactions": [golden_transaction(), golden_transaction()]}),
            &service,
            Instant::now(),
            None,
        )
        .await
        .expect("direct invoke never fails");
        let results = response["results"].as_array().expect("results");
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r["source"] == "model"), "{response}");
    }
    let gets = proxy.gets();
    assert_eq!(
        gets.len(),
        2,
        "one GET each for the manifest and the model, got {gets:?}"
    );
    assert!(
        gets[0].starts_with("/models/good/manifest.json"),
        "{gets:?}"
    );
    assert!(gets[1].starts_with("/models/good/model.onnx"), "{gets:?}");
}

async fn corrupt_model_is_refused(moto: &Moto, admin: &aws_sdk_s3::Client) {
    let mut model = std::fs::read(support::bundled_model().join("model.onnx")).expect("model");
    let middle = model.len() / 2;
    model[middle] ^= 0xff;
    put(admin, BUCKET, "corrupt/manifest.json", manifest_bytes()).await;
    put(admin, BUCKET, "corrupt/model.onnx", model).await;
    let (service, report) = start(&moto.endpoint, "corrupt/").await;
    let error = report.error.expect("a corrupt model must be refused");
    assert!(error.starts_with("model.onnx sha256 is "), "{error}");
    assert!(
        error.contains("the object is corrupt or does not belong to this manifest"),
        "{error}"
    );
    let answer = first_answer(&service).await;
    assert_eq!(answer.source, Source::Heuristic);
    assert_eq!(
        answer.fallback_reason,
        Some(FallbackReason::ModelUnavailable)
    );
}

async fn hash_mismatch_in_manifest_is_refused(moto: &Moto, admin: &aws_sdk_s3::Client) {
    let mut manifest: Value = serde_json::from_slice(&manifest_bytes()).expect("json");
    let wrong = "ab".repeat(32);
    manifest["model"]["sha256"] = json!(wrong);
    put(
        admin,
        BUCKET,
        "mismatch/manifest.json",
        serde_json::to_vec(&manifest).expect("json"),
    )
    .await;
    let model = std::fs::read(support::bundled_model().join("model.onnx")).expect("model");
    put(admin, BUCKET, "mismatch/model.onnx", model).await;
    let (service, report) = start(&moto.endpoint, "mismatch/").await;
    let error = report.error.expect("refused");
    assert!(
        error.contains(&format!("but the manifest says {wrong}")),
        "{error}"
    );
    assert_eq!(
        first_answer(&service).await.fallback_reason,
        Some(FallbackReason::ModelUnavailable)
    );
}

async fn unknown_format_version_is_refused(moto: &Moto, admin: &aws_sdk_s3::Client) {
    let mut manifest: Value = serde_json::from_slice(&manifest_bytes()).expect("json");
    manifest["format_version"] = json!(2);
    put(
        admin,
        BUCKET,
        "future/manifest.json",
        serde_json::to_vec(&manifest).expect("json"),
    )
    .await;
    let (service, report) = start(&moto.endpoint, "future/").await;
    assert_eq!(
        report.error.as_deref(),
        Some(
            "manifest format_version is 2, this build reads format_version 1: export the artifact with a matching model-export or upgrade the function"
        )
    );
    assert_eq!(first_answer(&service).await.source, Source::Heuristic);
}

async fn missing_artifact_leaves_the_heuristic_answering(moto: &Moto) {
    let (service, report) = start(&moto.endpoint, "nothing-here/").await;
    let error = report.error.expect("nothing to load");
    assert!(
        error.starts_with("could not read s3://models/nothing-here/manifest.json"),
        "{error}"
    );
    assert_eq!(
        first_answer(&service).await.fallback_reason,
        Some(FallbackReason::ModelUnavailable)
    );
}

#[tokio::test]
async fn an_s3_artifact_without_a_region_names_the_variable_to_set() {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .build();
    let store = ArtifactStore::with_s3(aws_sdk_s3::Client::from_conf(config));
    let location = fraudflow::artifact::ArtifactLocation::parse("s3://models/v1/").expect("uri");
    let error = store.fetch(&location).await.expect_err("no region");
    assert_eq!(
        error.to_string(),
        "could not read s3://models/v1/manifest.json: no AWS region is set: set AWS_REGION to \
         the bucket's region (Lambda sets it for the function)"
    );
}
