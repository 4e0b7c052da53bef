"""ONNX export, parity check with onnxruntime, manifest and golden cases.

The graph has one input ``features`` (float32 [N, 15], raw values, order of
:data:`model_export.features.FEATURES`) and four outputs: ``fraud_probability`` [N],
``log_likelihood`` [N], ``fraud_logit`` [N] and ``logit_terms`` [N, T]. The batch dimension is
dynamic.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from model_export.calibrate import risk_level
from model_export.data import file_sha256
from model_export.features import FEATURE_NAMES, FEATURES

__all__ = [
    "FORMAT_VERSION",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "ParityError",
    "check_parity",
    "export_onnx",
    "extreme_transactions",
    "golden_document",
    "graph_summary",
    "model_identity",
    "onnx_score",
    "records_matrix",
    "write_json",
]

FORMAT_VERSION = 1
INPUT_NAME = "features"
OUTPUT_NAMES: tuple[str, ...] = ("fraud_probability", "log_likelihood", "fraud_logit", "logit_terms")
OPSET = 18
# Tolerances of the export check: relative on the log-likelihood (absolute below |ll| = 1),
# absolute on the probability.
LL_RTOL = 1e-4
PROBABILITY_ATOL = 1e-5


class ParityError(RuntimeError):
    """onnxruntime and PyTorch disagree beyond the tolerances."""


def export_onnx(
    model: torch.nn.Module, path: str | os.PathLike[str], serving: bool = True, precision: str | None = None
) -> Path:
    """Export a trained :class:`FraudFlow` / :class:`FlowEnsemble` to a self-contained ONNX file
    with a dynamic batch: its serving graph (:mod:`model_export.serving`, ~100 nodes; ``precision``
    one of ``serving.PRECISIONS``, default ``serving.DEFAULT_PRECISION``) or, with
    ``serving=False``, the training module as it is (~1,250 nodes, float64; for comparisons)."""
    from model_export.serving import DEFAULT_PRECISION, build_serving_graph

    torch.distributions.Distribution.set_default_validate_args(False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if serving:
        module: torch.nn.Module = build_serving_graph(model, precision or DEFAULT_PRECISION)
    else:
        module = copy.deepcopy(model).cpu().eval()
    example = torch.rand(4, len(FEATURE_NAMES)) * 10
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"features": {0: batch}},
            verbose=False,
        )
    program.save(str(path), external_data=False)
    proto = onnx.load(str(path))
    proto.doc_string = "fraudflow conditional flow + calibrated heads (model-export" + (
        ", serving graph: model_export.serving)" if serving else ", training module)"
    )
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def graph_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Node count and operator histogram of an ONNX file."""
    nodes = onnx.load(str(path)).graph.node
    ops: dict[str, int] = {}
    for node in nodes:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"nodes": len(nodes), "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))}


def onnx_score(path: str | os.PathLike[str], features: np.ndarray, batch_size: int = 65536) -> dict[str, np.ndarray]:
    """Run the ONNX graph in onnxruntime (CPU) on a float32 matrix."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    chunks = [
        session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(features[i : i + batch_size], np.float32)})
        for i in range(0, max(len(features), 1), batch_size)
    ]
    return {name: np.concatenate([c[k] for c in chunks]) for k, name in enumerate(OUTPUT_NAMES)}


def check_parity(model: torch.nn.Module, path: str | os.PathLike[str], features: np.ndarray) -> dict[str, float]:
    """Compare PyTorch and onnxruntime on ``features`` (all at once and one row at a time for a
    few rows); raises :class:`ParityError` beyond the tolerances or on non-finite outputs."""
    expected = model.score(features)
    got = onnx_score(path, features)
    singles = [onnx_score(path, features[i : i + 1]) for i in range(min(5, len(features)))]
    for i, single in enumerate(singles):
        for name in OUTPUT_NAMES:
            got_batch = got[name][i]
            if not np.allclose(single[name][0], got_batch, rtol=1e-5, atol=1e-5):
                raise ParityError(f"batch 1 differs from batched output for {name} at row {i}")
    report: dict[str, float] = {}
    for name in OUTPUT_NAMES:
        if got[name].shape != expected[name].shape:
            raise ParityError(f"{name}: shape {got[name].shape} != PyTorch {expected[name].shape}")
        if not np.isfinite(got[name]).all():
            raise ParityError(f"{name}: non-finite onnxruntime output")
    ll_err = np.abs(got["log_likelihood"] - expected["log_likelihood"]) / np.maximum(
        1.0, np.abs(expected["log_likelihood"])
    )
    report["log_likelihood_max_rel_error"] = float(ll_err.max(initial=0.0))
    report["fraud_probability_max_abs_error"] = float(
        np.abs(got["fraud_probability"] - expected["fraud_probability"]).max(initial=0.0)
    )
    report["fraud_logit_max_abs_error"] = float(np.abs(got["fraud_logit"] - expected["fraud_logit"]).max(initial=0.0))
    report["logit_terms_max_abs_error"] = float(np.abs(got["logit_terms"] - expected["logit_terms"]).max(initial=0.0))
    report["rows"] = len(features)
    if report["log_likelihood_max_rel_error"] > LL_RTOL:
        raise ParityError(f"log_likelihood differs: {report}")
    if report["fraud_probability_max_abs_error"] > PROBABILITY_ATOL:
        raise ParityError(f"fraud_probability differs: {report}")
    probability = got["fraud_probability"]
    if probability.min() < 0.0 or probability.max() > 1.0:
        raise ParityError("fraud_probability outside [0, 1]")
    return report


def records_matrix(records: Sequence[dict[str, Any]]) -> np.ndarray:
    """The float32 feature matrix of contract transactions (as the Rust side builds it)."""
    rows = []
    for record in records:
        stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        row = []
        for name, path in FEATURES:
            if path == "timestamp.weekend":
                row.append(1.0 if stamp.weekday() >= 5 else 0.0)
            elif path == "timestamp.night":
                row.append(1.0 if stamp.hour <= 6 else 0.0)
            elif "." in path:
                group, key = path.split(".")
                row.append(float(record[group][key]))
            else:
                row.append(float(record[name]))
        rows.append(row)
    return np.asarray(rows, dtype=np.float64).astype(np.float32).reshape(-1, len(FEATURES))


def extreme_transactions() -> list[dict[str, Any]]:
    """Hand-made edge cases (valid per the contract) that must give finite answers."""

    def make(tx_id: str, timestamp: str, amount: float, customer: tuple, terminal: tuple) -> dict[str, Any]:
        c = dict(
            zip(
                ("nb_tx_1d", "avg_amount_1d", "nb_tx_7d", "avg_amount_7d", "nb_tx_30d", "avg_amount_30d"),
                customer,
                strict=True,
            )
        )
        t = dict(zip(("nb_tx_1d", "risk_1d", "nb_tx_7d", "risk_7d", "nb_tx_30d", "risk_30d"), terminal, strict=True))
        return {
            "transaction_id": tx_id,
            "timestamp": timestamp,
            "customer_id": "c-extreme",
            "terminal_id": "t-extreme",
            "amount": amount,
            "customer": c,
            "terminal": t,
        }

    usual_customer = (2, 51.3, 9, 48.0, 31, 50.2)
    usual_terminal = (1, 0.0, 6, 0.0, 27, 0.037)
    return [
        make("extreme-amount-0", "2018-08-08T12:00:00Z", 0.0, (2, 25.65, 9, 42.7, 31, 48.6), usual_terminal),
        make("extreme-amount-1e7", "2018-08-08T12:00:00Z", 1e7, usual_customer, usual_terminal),
        make("extreme-amount-1e7-consistent", "2018-08-08T12:00:00Z", 1e7, (1, 1e7, 1, 1e7, 1, 1e7), usual_terminal),
        make(
            "extreme-all-zero-counts", "2018-08-08T12:00:00Z", 10.0, (0, 0.0, 0, 0.0, 0, 0.0), (0, 0.0, 0, 0.0, 0, 0.0)
        ),
        make(
            "extreme-first-payment", "2018-08-08T12:00:00Z", 35.5, (1, 35.5, 1, 35.5, 1, 35.5), (0, 0.0, 0, 0.0, 0, 0.0)
        ),
        make("extreme-risk-1", "2018-08-08T12:00:00Z", 57.16, usual_customer, (3, 1.0, 12, 1.0, 40, 1.0)),
        make("extreme-night-weekend", "2018-08-11T03:15:00Z", 57.16, usual_customer, usual_terminal),
        make(
            "extreme-large-counts",
            "2018-08-08T23:59:59Z",
            57.16,
            (1000, 50.0, 5000, 50.0, 20000, 50.0),
            (1000, 0.5, 5000, 0.5, 20000, 0.5),
        ),
    ]


def golden_document(
    model: torch.nn.Module,
    model_version: str,
    records: Sequence[dict[str, Any]],
    labels: Sequence[int | None],
    thresholds: dict[str, float],
) -> dict[str, Any]:
    """Golden cases: each transaction with the answer PyTorch gives (float32 features)."""
    scores = model.score(records_matrix(records))
    cases = []
    for i, (record, label) in enumerate(zip(records, labels, strict=True)):
        probability = float(scores["fraud_probability"][i])
        cases.append(
            {
                "transaction": record,
                "label": label,
                "expected": {
                    "fraud_probability": probability,
                    "log_likelihood": float(scores["log_likelihood"][i]),
                    "fraud_logit": float(scores["fraud_logit"][i]),
                    "risk_level": risk_level(probability, thresholds["elevated"], thresholds["high"]),
                },
            }
        )
    return {
        "model_version": model_version,
        "computed_by": f"PyTorch {torch.__version__} (float32, CPU)",
        "tolerances": {"log_likelihood_relative": LL_RTOL, "fraud_probability_absolute": PROBABILITY_ATOL},
        "cases": cases,
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def write_json(document: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Pretty JSON; NaN/inf become null."""
    Path(path).write_text(json.dumps(_clean(document), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def model_identity(path: str | os.PathLike[str], created: datetime | None = None) -> dict[str, Any]:
    """File block of the manifest and the model version derived from the hash."""
    created = created or datetime.now(UTC)
    digest = file_sha256(path)
    return {
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model_version": f"{created:%Y-%m-%d}-{digest[:8]}",
        "model": {"file": Path(path).name, "sha256": digest, "size_bytes": Path(path).stat().st_size},
    }
