"""The serving graph: the training module's outputs (float64: ~1e-9), exported node count and
parity, rebuilding an artifact from saved weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_export.export import check_parity, export_onnx, extreme_transactions, graph_summary, records_matrix
from model_export.flow import FlowConfig, FlowEnsemble, FraudFlow
from model_export.serving import DEFAULT_PRECISION, PRECISIONS, build_serving_graph, serving_parity

REPO = Path(__file__).resolve().parents[2]
BUNDLED_WEIGHTS = REPO / "models" / "default" / "weights.pt"
#: Nodes of the bundled model's exported graph (121, 20 of them the MLP head's integrated
#: gradients for the reasons) with a little headroom; the training module exports to ~1,250.
MAX_NODES = 125


def reference(model: torch.nn.Module, features: np.ndarray) -> tuple[torch.Tensor, ...]:
    """``FraudFlow.forward`` / ``FlowEnsemble.forward`` without the final cast to float32."""
    x = torch.as_tensor(features, dtype=torch.float32).double()
    members = list(model.members) if isinstance(model, FlowEnsemble) else [model]
    logits, lls, terms = [], [], []
    for member in members:
        h, ll, logit = member.encode(x)
        logits.append(logit)
        lls.append(ll)
        terms.append(member.logit_terms(h))
    logit = torch.stack(logits).mean(0)
    ll = torch.logsumexp(torch.stack(lls), 0) - float(np.log(len(lls)))
    probability = torch.sigmoid(model.calibration[0] * logit + model.calibration[1])
    return probability, ll, logit, torch.stack(terms).mean(0)


def assert_close64(model: torch.nn.Module, features: np.ndarray, tol: float = 1e-9) -> None:
    graph = build_serving_graph(model, "float64")
    with torch.no_grad():
        expected = reference(model, features)
        got = graph.outputs(torch.as_tensor(features, dtype=torch.float32))
    for name, e, g in zip(("probability", "log_likelihood", "logit", "terms"), expected, got, strict=True):
        assert g.dtype == torch.float64 and g.shape == e.shape, name
        assert torch.isfinite(g).all(), name
        error = ((g - e).abs() / e.abs().clamp(min=1.0)).max().item()
        assert error < tol, f"{name}: {error}"


def synthetic_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Raw feature rows in the contract's ranges, some at the edges (zero counts and amounts,
    fractional counts, risk 1), plus the extreme transactions."""
    amount = rng.lognormal(3.5, 1.0, n)
    counts = [rng.integers(0, 5, n), rng.integers(0, 20, n), rng.integers(0, 60, n)]
    rows = np.column_stack(
        [
            amount,
            rng.integers(0, 2, n),
            rng.integers(0, 2, n),
            counts[0],
            amount * rng.uniform(0.5, 1.5, n),
            counts[1],
            amount * rng.uniform(0.5, 1.5, n),
            counts[2],
            amount * rng.uniform(0.5, 1.5, n),
            rng.integers(0, 5, n),
            rng.uniform(0, 1, n) * (rng.uniform(size=n) < 0.2),
            rng.integers(0, 30, n),
            rng.uniform(0, 0.2, n),
            rng.integers(0, 100, n),
            rng.uniform(0, 0.1, n),
        ]
    )
    rows[:5, 0] = 0.0
    rows[5:10, 3] = 1.6  # fractional count: others in (0.5, 1)
    rows[10:15, 10:15:2] = 1.0
    return np.concatenate([rows.astype(np.float32), records_matrix(extreme_transactions())])


def random_model(config: FlowConfig, members: int, fit: np.ndarray, seed: int = 0) -> torch.nn.Module:
    """An untrained model with non-trivial heads, terms and calibration, fitted to ``fit``."""
    torch.manual_seed(seed)
    out = []
    for _ in range(members):
        member = FraudFlow(config).double()
        member.preprocess.fit(torch.as_tensor(fit, dtype=torch.float64))
        with torch.no_grad():
            if member.mlp is not None:
                for p in member.mlp.parameters():  # the last layer starts at zero
                    p.normal_(0.0, 0.5)
            member.head.weight.normal_(0.0, 0.3)
            member.term_mean.normal_()
            member.calibration.copy_(torch.tensor([0.9, -1.0]))
        out.append(member.eval())
    model = out[0] if members == 1 else FlowEnsemble(out).double()
    with torch.no_grad():
        model.calibration.copy_(torch.tensor([0.8, -2.0]))
    return model.eval()


@pytest.mark.parametrize(
    ("config", "members"),
    [
        (FlowConfig(transforms=2, hidden_features=(8,), bins=4, head_hidden=(8,)), 3),
        (FlowConfig(transforms=3, hidden_features=(16, 16), bins=8, head_hidden=(16, 16)), 2),
        (FlowConfig(transforms=1, hidden_features=(8, 8), bins=5, head_hidden=()), 1),
        (FlowConfig(transforms=2, hidden_features=(8,), bins=6, head_hidden=(8,)), 1),
    ],
)
def test_serving_graph_equals_the_training_module_in_float64(config: FlowConfig, members: int) -> None:
    rng = np.random.default_rng(1)
    rows = synthetic_rows(rng, 400)
    # fit on large amounts only: amount 0 lands beyond the spline's left end (identity there)
    fit = synthetic_rows(rng, 400)[:400]
    fit[:, 0] += 200.0
    model = random_model(config, members, fit)
    assert_close64(model, rows)
    graph = build_serving_graph(model)
    with torch.no_grad():
        x, _, _ = (
            model.members[0].preprocess(torch.as_tensor(rows).double())
            if members > 1
            else model.preprocess(torch.as_tensor(rows).double())
        )
    assert (x < -5).any() and (x > 5).any(), "the identity regions outside [-B, B] are not exercised"
    outputs = graph(torch.as_tensor(rows))
    assert [o.dtype for o in outputs] == [torch.float32] * 4
    assert all(torch.isfinite(o).all() for o in outputs)


def test_serving_graph_rejects_members_with_different_standardisation() -> None:
    rng = np.random.default_rng(2)
    config = FlowConfig(transforms=1, hidden_features=(4,), bins=3, head_hidden=())
    a = random_model(config, 1, synthetic_rows(rng, 50))
    b = random_model(config, 1, synthetic_rows(rng, 50) * 2)
    with pytest.raises(ValueError, match="standardisation"):
        build_serving_graph(FlowEnsemble([a, b]).double())
    with pytest.raises(ValueError, match="precision"):
        build_serving_graph(a, "float16")


def test_cli_precisions_match() -> None:
    from model_export.cli import GRAPH_PRECISIONS

    assert set(GRAPH_PRECISIONS) == set(PRECISIONS) and GRAPH_PRECISIONS[0] == DEFAULT_PRECISION


@pytest.fixture(scope="module")
def bundled(raw_sample_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The bundled model's weights and real rows (the raw sample's feature rows + extremes)."""
    if not BUNDLED_WEIGHTS.is_file():
        pytest.skip(f"{BUNDLED_WEIGHTS} is missing")
    from model_export.features import feature_matrix, features_for_file
    from model_export.pipeline import load_weights

    model, config, _ = load_weights(BUNDLED_WEIGHTS)
    features, _ = features_for_file(raw_sample_path, tmp_path_factory.mktemp("cache"))
    rows = np.concatenate([feature_matrix(features), records_matrix(extreme_transactions())])
    return {"model": model, "config": config, "rows": rows}


def test_bundled_model_serving_graph_matches(bundled: dict) -> None:
    model, rows = bundled["model"], bundled["rows"]
    assert_close64(model, rows)
    with torch.no_grad():
        parity = serving_parity(model, build_serving_graph(model), rows)
    # export tolerances: 1e-4 (relative) and 1e-5; float32 heads stay at float32 output rounding
    assert parity["log_likelihood_max_rel_error"] < 1e-6
    assert parity["fraud_probability_max_abs_error"] < 1e-6


def test_bundled_model_export_nodes_and_parity(bundled: dict, tmp_path: Path) -> None:
    model, rows = bundled["model"], bundled["rows"]
    path = export_onnx(model, tmp_path / "model.onnx")
    summary = graph_summary(path)
    assert summary["nodes"] <= MAX_NODES, summary
    parity = check_parity(model, path, rows)  # raises beyond the tolerances
    assert parity["fraud_probability_max_abs_error"] < 1e-6
    assert parity["log_likelihood_max_rel_error"] < 1e-6


def test_export_from_weights_rebuilds_the_artifact(artifact: dict, tmp_path: Path) -> None:
    from model_export.pipeline import WEIGHTS_FILE, export_from_weights, load_weights

    folder: Path = artifact["folder"]
    assert (folder / WEIGHTS_FILE).is_file()
    _, _, payload = load_weights(folder / WEIGHTS_FILE)
    assert payload["seed"] == 1 and "best_step" in payload["training"]
    manifest = export_from_weights(
        folder / WEIGHTS_FILE, artifact["data"], tmp_path, progress=False, cache_dir=artifact["cache"], baselines=False
    )
    before = artifact["manifest"]
    assert manifest["model"]["sha256"] == before["model"]["sha256"]  # the export is deterministic
    for key in ("calibration", "risk_thresholds", "log_likelihood_reference", "reasons", "training_data"):
        assert manifest[key] == before[key], key
    assert manifest["metrics"]["test"] == before["metrics"]["test"]
    assert manifest["architecture"]["training"] == before["architecture"]["training"]
    assert manifest["graph"]["nodes"] == before["graph"]["nodes"] <= MAX_NODES
    golden = json.loads((tmp_path / "golden.json").read_text())
    golden_before = json.loads((folder / "golden.json").read_text())
    assert golden["cases"] == golden_before["cases"]


def test_graph_flops_counts_matmul_and_gemm_per_row_by_type(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper, save

    from model_export.serving import graph_flops

    weight = numpy_helper.from_array(np.ones((3, 4), np.float32), "weight")
    weight64 = numpy_helper.from_array(np.ones((5, 4), np.float64), "weight64")  # used transposed
    bias64 = numpy_helper.from_array(np.zeros(5, np.float64), "bias64")
    nodes = [
        helper.make_node("MatMul", ["features", "weight"], ["hidden"], name="product"),
        helper.make_node("Relu", ["hidden"], ["positive"], name="relu"),
        helper.make_node("Cast", ["positive"], ["wide"], to=TensorProto.DOUBLE, name="cast"),
        helper.make_node("Gemm", ["wide", "weight64", "bias64"], ["out"], transB=1, name="affine"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("out", TensorProto.DOUBLE, ["N", 5])],
        [weight, weight64, bias64],
    )
    path = tmp_path / "tiny.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    # [1, 3] x [3, 4]: 4 outputs of 3 multiply-adds; [1, 4] x [4, 5]^T: 5 outputs of 4.
    assert graph_flops(path) == {"float32": 2 * 4 * 3, "float64": 2 * 5 * 4}


def test_bundled_graph_flops() -> None:
    from model_export.serving import graph_flops

    flops = graph_flops(Path(__file__).resolve().parents[2] / "models" / "default" / "model.onnx")
    # float64 flows and hyper-networks, float32 heads and reasons (graph.precision float32-heads)
    assert set(flops) == {"float32", "float64"}
    assert 100_000 < sum(flops.values()) < 400_000, flops
