"""Training smoke run on the raw sample: artifact files, manifest, parity, batches, extremes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from model_export.data import file_sha256
from model_export.export import INPUT_NAME, OUTPUT_NAMES, extreme_transactions, onnx_score, records_matrix
from model_export.features import FEATURES
from model_export.flow import HEAD_TERMS
from model_export.pipeline import ArtifactError, evaluate_artifact, load_manifest

MANIFEST_KEYS = [
    "format_version",
    "model_version",
    "created_at",
    "model",
    "training_data",
    "inputs",
    "outputs",
    "reasons",
    "preprocessing",
    "architecture",
    "class_prior",
    "calibration",
    "risk_thresholds",
    "log_likelihood_reference",
    "metrics",
]


def test_manifest_fields_and_hash(artifact: dict) -> None:
    folder: Path = artifact["folder"]
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in MANIFEST_KEYS:
        assert key in manifest, key
    assert manifest["format_version"] == 1
    digest = file_sha256(folder / "model.onnx")
    assert manifest["model"] == {
        "file": "model.onnx",
        "sha256": digest,
        "size_bytes": (folder / "model.onnx").stat().st_size,
    }
    assert (
        manifest["model_version"].endswith(digest[:8]) and manifest["model_version"][:4] == manifest["created_at"][:4]
    )
    assert manifest["inputs"]["name"] == "features" and manifest["inputs"]["dtype"] == "float32"
    assert [(f["name"], f["path"]) for f in manifest["inputs"]["features"]] == list(FEATURES)
    assert manifest["inputs"]["features"][1] == {"name": "weekend", "path": "timestamp.weekend"}
    assert manifest["outputs"] == {name: name for name in OUTPUT_NAMES}
    assert manifest["reasons"]["terms"] == [*HEAD_TERMS, "interactions"]  # MLP head (default)
    assert manifest["architecture"]["ensemble"] == 3
    assert manifest["calibration"]["method"] == "platt"
    thresholds = manifest["risk_thresholds"]
    assert 0.0 <= thresholds["elevated"] <= thresholds["high"] <= 1.0
    training = manifest["training_data"]
    assert training["source"] == "raw-sample.parquet" and training["sha256"] == file_sha256(artifact["data"])
    assert training["n_train"] > training["n_validation"] > 0
    for key in ("roc_auc", "average_precision", "card_precision_at_100", "n", "n_fraud"):
        assert key in manifest["metrics"]["test"]
    assert (folder / "model.onnx").stat().st_size < 2_000_000
    assert load_manifest(folder)["model_version"] == manifest["model_version"]


def test_onnx_graph_interface(artifact: dict) -> None:
    proto = onnx.load(str(artifact["folder"] / "model.onnx"))
    assert [i.name for i in proto.graph.input] == [INPUT_NAME]
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == len(FEATURES)


def test_golden_matches_onnxruntime(artifact: dict) -> None:
    folder: Path = artifact["folder"]
    golden = json.loads((folder / "golden.json").read_text())
    manifest = artifact["manifest"]
    assert golden["model_version"] == manifest["model_version"]
    cases = golden["cases"]
    assert any(case["label"] == 1 for case in cases) and any(case["label"] is None for case in cases)
    got = onnx_score(folder / "model.onnx", records_matrix([case["transaction"] for case in cases]))
    expected_p = np.array([case["expected"]["fraud_probability"] for case in cases])
    expected_ll = np.array([case["expected"]["log_likelihood"] for case in cases])
    np.testing.assert_allclose(got["fraud_probability"], expected_p, atol=1e-5)
    assert (np.abs(got["log_likelihood"] - expected_ll) <= 1e-4 * np.maximum(1, np.abs(expected_ll))).all()
    thresholds = manifest["risk_thresholds"]
    for case, p in zip(cases, got["fraud_probability"], strict=True):
        level = "high" if p >= thresholds["high"] else "elevated" if p >= thresholds["elevated"] else "low"
        assert level == case["expected"]["risk_level"]


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_dynamic_batch(artifact: dict, batch: int) -> None:
    rng = np.random.default_rng(batch)
    X = np.abs(rng.normal(size=(batch, len(FEATURES)), scale=20)).astype(np.float32)
    X[:, 1:3] = rng.integers(0, 2, size=(batch, 2))
    got = onnx_score(artifact["folder"] / "model.onnx", X)
    assert got["fraud_probability"].shape == (batch,)
    assert got["logit_terms"].shape == (batch, len(HEAD_TERMS) + 1)
    # the same rows one at a time give the same answers
    single = onnx_score(artifact["folder"] / "model.onnx", X[:1])
    np.testing.assert_allclose(single["fraud_probability"], got["fraud_probability"][:1], atol=1e-6)


def test_extremes_are_finite_and_terms_add_up(artifact: dict) -> None:
    X = records_matrix(extreme_transactions())
    X = np.concatenate([X, np.array([[np.float32(3.0e38)] * 15], np.float32)])
    got = onnx_score(artifact["folder"] / "model.onnx", X)
    for name in OUTPUT_NAMES:
        assert np.isfinite(got[name]).all(), name
    p = got["fraud_probability"]
    assert ((p >= 0) & (p <= 1)).all()
    bias = artifact["manifest"]["reasons"]["bias"]
    np.testing.assert_allclose(got["logit_terms"].sum(1) + bias, got["fraud_logit"], rtol=1e-4, atol=1e-3)


def test_torch_and_onnx_agree_on_sample_rows(artifact: dict) -> None:
    """Parity on real rows re-checked here (train_and_export also checks and would raise)."""
    parity = artifact["manifest"]["export_parity"]
    assert parity["log_likelihood_max_rel_error"] <= 1e-4
    assert parity["fraud_probability_max_abs_error"] <= 1e-5
    assert parity["rows"] > 1000


def test_eval_and_tampered_artifact(artifact: dict, tmp_path: Path) -> None:
    report = evaluate_artifact(artifact["data"], artifact["folder"], progress=False, cache_dir=artifact["cache"])
    assert report["test"]["n"] == artifact["manifest"]["metrics"]["test"]["n"]
    assert report["test"]["roc_auc"] == pytest.approx(artifact["manifest"]["metrics"]["test"]["roc_auc"])
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("manifest.json", "model.onnx"):
        (bad / name).write_bytes((artifact["folder"] / name).read_bytes())
    with open(bad / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256"):
        load_manifest(bad)
    assert torch.get_num_threads() >= 1


def test_eval_table_and_report(artifact: dict, tmp_path: Path) -> None:
    from model_export.cli import format_table
    from model_export.pipeline import evaluate_artifact
    from model_export.report import write_report

    report = evaluate_artifact(artifact["data"], artifact["folder"], progress=False, cache_dir=artifact["cache"])
    assert {"flow", "flow_anomaly", "logistic_regression", "random_forest"} <= set(report["rows"])
    assert 0.0 <= report["rows"]["flow"]["ece"] <= 1.0
    table = format_table(report["rows"])
    assert "flow probability (onnx)" in table and "random forest" in table
    path = write_report(artifact["data"], artifact["folder"], tmp_path, progress=False, cache_dir=artifact["cache"])
    text = path.read_text()
    for name in ("roc-pr.png", "reliability.png", "scenario-recall.png", "log-likelihood-histograms.png"):
        assert name in text
        assert (tmp_path / name).stat().st_size < 150_000
    # The artifact's own weights.pt gives the log-det panel (no need for a runs/ folder).
    assert "No PyTorch weights" not in text
