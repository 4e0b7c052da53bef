"""The Python peer of fraudflow-scorer, for the benchmarks (`bench/coldstart.py`).

What a careful Python team would ship for the same job, under the official runtime client
(`python -m awslambdaric handler.lambda_handler`): at init it fetches the same artifact from S3
(MODEL_URI s3://bucket/prefix/) with boto3, checks the model's sha256 against the manifest,
builds an onnxruntime session with one intra-op thread and warms it up with one row; each
invocation validates the transactions as docs/CONTRACT.md says, builds the raw features in the
manifest's order, runs the same ONNX file and answers in the same shape (direct invoke: one
transaction -> one answer, {"transactions": [...]} -> {"results": [...]}). No heuristic fallback,
metrics or drift check: the peer does less than the Rust function, not more.

Init timings go to stdout as one line `BENCH_PEER_INIT {json}` (time.monotonic values, which on
Linux are comparable across processes). With FRAUDFLOW_BENCH_FILES set, the files of every loaded
module are written there after init (the benchmark evicts them from the page cache).
"""

import time

_T_START = time.monotonic()

import hashlib  # imported after _T_START: the imports are timed
import json
import math
import os
import sys
from datetime import datetime

import boto3
import numpy as np
import onnxruntime as ort
from botocore.config import Config

_T_IMPORTED = time.monotonic()

MAX_REASONS = 3


class ItemError(Exception):
    def __init__(self, code: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.body = {"code": code, "message": message}
        if field is not None:
            self.body["field"] = field


def _missing(path: str) -> ItemError:
    return ItemError("missing_field", path, f"{path} is required")


def _required(obj: dict, key: str, path: str):
    value = obj.get(key)
    if value is None:
        raise _missing(path)
    return value


def _number(obj: dict, key: str, path: str, kind: str) -> float:
    value = _required(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ItemError("invalid_field", path, f"{path} must be a finite number, got {value!r}")
    if kind == "count" and (value < 0 or value != int(value)):
        raise ItemError("invalid_field", path, f"{path} must be an integer >= 0, got {value!r}")
    if kind == "non_negative" and value < 0:
        raise ItemError("invalid_field", path, f"{path} must be a finite number >= 0, got {value!r}")
    if kind == "probability" and not 0 <= value <= 1:
        raise ItemError("invalid_field", path, f"{path} must be in [0, 1], got {value!r}")
    return float(value)


def _identifier(obj: dict, key: str):
    value = _required(obj, key, key)
    if (isinstance(value, str) and value) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ItemError("invalid_field", key, f"{key} must be a non-empty string or an integer, got {value!r}")


def _kind(path: str) -> str:
    leaf = path.rsplit(".", 1)[-1]
    if leaf.startswith("nb_tx"):
        return "count"
    if leaf.startswith("risk"):
        return "probability"
    return "non_negative"


def features(item, paths: list[str]) -> list[float]:
    """The raw feature row of one transaction, in the manifest's order (docs/CONTRACT.md)."""
    if not isinstance(item, dict):
        raise ItemError("invalid_item", None, f"a transaction must be a JSON object, got {type(item).__name__}")
    _identifier(item, "transaction_id")
    stamp = _required(item, "timestamp", "timestamp")
    try:
        when = datetime.fromisoformat(stamp) if isinstance(stamp, str) and "T" in stamp.upper() else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ItemError("invalid_field", "timestamp", f"timestamp must be an RFC 3339 date-time, got {stamp!r}")
    _identifier(item, "customer_id")
    _identifier(item, "terminal_id")
    row = []
    for path in paths:
        if path == "timestamp.weekend":  # wall clock as written, not converted
            row.append(1.0 if when.weekday() >= 5 else 0.0)
        elif path == "timestamp.night":
            row.append(1.0 if when.hour <= 6 else 0.0)
        elif "." in path:
            group, key = path.split(".", 1)
            obj = _required(item, group, group)
            if not isinstance(obj, dict):
                raise ItemError("invalid_field", group, f"{group} must be an object")
            row.append(_number(obj, key, path, _kind(path)))
        else:
            row.append(_number(item, path, path, _kind(path)))
    return row


def _echo_id(item):
    value = item.get("transaction_id") if isinstance(item, dict) else None
    return value if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)) else None


def _risk_level(probability: float) -> str:
    if probability >= THRESHOLDS["high"]:
        return "high"
    if probability >= THRESHOLDS["elevated"]:
        return "elevated"
    return "low"


def _reasons(terms) -> list[dict]:
    merged: dict[str, float] = {}
    for name, value in zip(TERM_NAMES, terms.tolist(), strict=True):
        if math.isfinite(value):
            merged[name] = merged.get(name, 0.0) + value
    top = sorted(((v, k) for k, v in merged.items() if v > 0), reverse=True)[:MAX_REASONS]
    return [{"feature": k, "contribution": v} for v, k in top]


def score(items: list) -> list[dict]:
    outcomes: list[dict | None] = [None] * len(items)
    rows, where = [], []
    for i, item in enumerate(items):
        try:
            rows.append(features(item, FEATURE_PATHS))
            where.append(i)
        except ItemError as err:
            outcomes[i] = {"transaction_id": _echo_id(item), "error": err.body}
    if rows:
        # float64 -> float32 rounds to nearest, as the Rust `as f32` does.
        batch = np.asarray(rows, dtype=np.float32)
        probability, log_likelihood, _logit, *terms = SESSION.run(OUTPUTS, {INPUT: batch})
        for row, i in enumerate(where):
            p, ll = float(probability[row]), float(log_likelihood[row])
            if not (math.isfinite(p) and 0 <= p <= 1 and math.isfinite(ll)):
                outcomes[i] = {"transaction_id": _echo_id(items[i]),
                               "error": {"code": "non_finite_output", "message": "model output not finite"}}
                continue
            outcomes[i] = {
                "transaction_id": items[i]["transaction_id"],
                "fraud_probability": p,
                "risk_level": _risk_level(p),
                "log_likelihood": ll,
                "source": "model",
                "fallback_reason": None,
                "model_version": MODEL_VERSION,
                "reasons": _reasons(terms[0][row]) if terms else [],
            }
    return outcomes


def lambda_handler(event, context):
    if isinstance(event, dict) and isinstance(event.get("transactions"), list):
        return {"results": score(event["transactions"])}
    if isinstance(event, dict) and "transactions" not in event:
        return score([event])[0]
    return {"error": {"code": "invalid_request", "message": "expected a transaction or {\"transactions\": [...]}"}}


def _load():
    uri = os.environ["MODEL_URI"]
    if not uri.startswith("s3://"):
        raise ValueError(f"MODEL_URI must be s3://bucket/prefix/, got {uri!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    started = time.monotonic()
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    client_ready = time.monotonic()
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())
    model_bytes = s3.get_object(Bucket=bucket, Key=prefix + manifest["model"]["file"])["Body"].read()
    fetched = time.monotonic()
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != manifest["model"]["sha256"].lower():
        raise ValueError(f"model sha256 {digest} does not match the manifest's {manifest['model']['sha256']}")
    verified = time.monotonic()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    built = time.monotonic()
    outputs = manifest["outputs"]
    names = [outputs["fraud_probability"], outputs["log_likelihood"], outputs["fraud_logit"]]
    names += [outputs["logit_terms"]] if outputs.get("logit_terms") else []
    paths = [f["path"] for f in manifest["inputs"]["features"]]
    session.run(names, {manifest["inputs"]["name"]: np.zeros((1, len(paths)), dtype=np.float32)})
    warmed = time.monotonic()
    timings = {
        "t_start": _T_START, "t_imported": _T_IMPORTED, "t_ready": warmed,
        "client_ms": (client_ready - started) * 1e3, "fetch_ms": (fetched - client_ready) * 1e3, "verify_ms": (verified - fetched) * 1e3,
        "session_build_ms": (built - verified) * 1e3, "warmup_ms": (warmed - built) * 1e3,
    }
    return manifest, session, names, paths, timings


MANIFEST, SESSION, OUTPUTS, FEATURE_PATHS, _TIMINGS = _load()
INPUT = MANIFEST["inputs"]["name"]
MODEL_VERSION = MANIFEST["model_version"]
THRESHOLDS = MANIFEST["risk_thresholds"]
TERM_NAMES = MANIFEST.get("reasons", {}).get("terms", [])
print("BENCH_PEER_INIT " + json.dumps(_TIMINGS), flush=True)

if os.environ.get("FRAUDFLOW_BENCH_FILES"):
    loaded = {getattr(m, attr, None) for m in list(sys.modules.values()) for attr in ("__file__", "__cached__")}
    with open(os.environ["FRAUDFLOW_BENCH_FILES"], "w") as out:
        json.dump(sorted(f for f in loaded if isinstance(f, str)), out)
