"""The end-to-end steps behind the CLI: train + calibrate + export, evaluate an artifact."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from model_export import calibrate
from model_export.baselines import fit_baselines
from model_export.data import resolve_data_path
from model_export.evaluate import (
    SplitDates,
    ceiling_report,
    classification_metrics,
    expected_calibration_error,
    make_split,
    reliability_table,
    score_report,
)
from model_export.export import (
    FORMAT_VERSION,
    INPUT_NAME,
    OUTPUT_NAMES,
    check_parity,
    export_onnx,
    extreme_transactions,
    golden_document,
    graph_summary,
    model_identity,
    onnx_score,
    records_matrix,
    write_json,
)
from model_export.features import FEATURES, feature_matrix, features_for_file
from model_export.flow import (
    ATTRIBUTION_STEPS,
    HEAD_TERMS,
    LL_CLAMP,
    STD_CLAMP,
    FlowEnsemble,
    FraudFlow,
)
from model_export.samples import transaction_records
from model_export.serving import DEFAULT_PRECISION, PRECISION_NOTES
from model_export.train import TrainConfig, fit_model, load_config, split_fit_validation

__all__ = [
    "PREPROCESSING",
    "WEIGHTS_FILE",
    "ArtifactError",
    "Trained",
    "evaluate_artifact",
    "export_artifact",
    "export_from_weights",
    "load_manifest",
    "load_weights",
    "prequential",
    "prequential_folds",
    "save_weights",
    "train_and_export",
    "train_calibrated",
]

PREPROCESSING = (
    "All inside the ONNX graph (float32 in and out; float types inside: graph.precision). Raw inputs are "
    "first clamped to their valid ranges (amount, counts, averages >= 0; weekend, night, risks in "
    "[0, 1]). "
    "x = log1p(amount). For each customer window w in 1, 7, 30 days the current payment is taken "
    "out: others_w = max(nb_tx_w - 1, 0), other_mean_w = max(nb_tx_w * avg_amount_w - amount, 0) "
    "/ others_w when others_w > 0 else 0. Context c (14) = [weekend, night, log1p(others_1d, _7d, "
    "_30d), log1p(other_mean_1d, _7d, _30d), log1p(terminal nb_tx_1d, _7d, _30d), terminal "
    "risk_1d, _7d, _30d]. Ratios r (3) = log1p(amount) - log1p(other_mean_w), 0 when others_w = 0. "
    f"x, c and r are standardised with fit-set means and standard deviations and clamped to "
    f"[-{STD_CLAMP:g}, {STD_CLAMP:g}]. The flow (conditional NSF) maps x to the latent z given c; "
    "log_likelihood = log N(z; 0, 1) + log|dz/dx| is the exact log-density of the standardised, "
    "clamped x given c under the model of legitimate payments (model space: it excludes the "
    "Jacobian of log1p and of the standardisation). The head is linear on h = [x, z, c, r, "
    f"clamp(log_likelihood, {LL_CLAMP[0]:g}, {LL_CLAMP[1]:g})]; fraud_probability = sigmoid(a * "
    "fraud_logit + b) (Platt). logit_terms[i] = w_i * (h_i - mean_i over the fit set), so "
    "fraud_logit = sum(logit_terms) + reasons.bias. With an MLP head (architecture.head_hidden) "
    "the logit is linear(h) + mlp(h): each input's term also gets the MLP's integrated-gradients "
    "share (h_i - mean_i) * g_i, g_i the mean of d mlp/d h_i at the midpoints of "
    f"{ATTRIBUTION_STEPS} equal steps on the straight path from the fit-set mean to h, and the "
    "last term, interactions, is mlp(h) - mlp(mean) minus those shares (mlp(mean) is in "
    "reasons.bias). With an ensemble (architecture.ensemble "
    "= K > 1) fraud_logit and logit_terms are the means over the K members and log_likelihood = "
    "logsumexp_k(ll_k) - log K, the exact log-density of the equal-weight mixture of the members' flows."
)

TERMS_NOTE = (
    "logit_terms[:, i] = (weights[i] + g_i) * (h_i - mean_i), g_i the path-averaged d mlp/d h_i "
    "(ensemble: mean over members; interactions: mlp(h) - mlp(mean) minus the inputs' shares, "
    "weight 1); "
    "fraud_logit = sum(logit_terms) + bias"
)


class ArtifactError(RuntimeError):
    """An artifact folder is incomplete or does not match its manifest."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _baselines(
    train: pd.DataFrame, tests: dict[str, tuple[pd.DataFrame, bool]]
) -> dict[str, dict[str, dict[str, float | int]]]:
    """Handbook baselines (:mod:`model_export.baselines`) trained on the same rows, scored on each
    named test set (rows, CP@100 removes detected cards)."""
    fitted = fit_baselines(train)
    out: dict[str, dict[str, dict[str, float | int]]] = {name: {} for name in tests}
    for model_name, scorer in fitted.items():
        for test_name, (test, remove_detected) in tests.items():
            out[test_name][model_name] = classification_metrics(test, scorer(test), remove_detected=remove_detected)
    return out


#: Test-week transactions used by the repository's example events (events/*.json) and the e2e
#: tests, which look their answers up in golden.json: always among the golden cases.
EVENT_TRANSACTION_IDS: tuple[int, ...] = (
    1239570,
    1241133,
    1241674,
    1243077,
    1243105,
    1243320,
    1245145,
    1245766,
    1246705,
)


def _pick_golden(
    test: pd.DataFrame, probabilities: np.ndarray, thresholds: dict[str, float], config: TrainConfig, seed: int
) -> pd.DataFrame:
    """The event transactions, then seeded frauds and legitimate rows of the test set, away from
    the risk thresholds, up to ``golden_fraud`` / ``golden_legit`` of each."""
    rng = np.random.default_rng(seed)
    margin = np.minimum(np.abs(probabilities - thresholds["elevated"]), np.abs(probabilities - thresholds["high"]))
    clear = margin > 1e-3
    labels = test["TX_FRAUD"].to_numpy()
    required = np.flatnonzero(test["TRANSACTION_ID"].isin(EVENT_TRANSACTION_IDS).to_numpy())
    taken = np.zeros(len(test), dtype=bool)
    taken[required] = True
    picks = [required]
    for label, count in ((1, config.golden_fraud), (0, config.golden_legit)):
        pool = np.flatnonzero(clear & (labels == label) & ~taken)
        count = max(0, count - int((labels[required] == label).sum()))
        picks.append(rng.choice(pool, size=min(count, len(pool)), replace=False))
    chosen = np.sort(np.concatenate(picks))
    return test.iloc[chosen]


@dataclass
class Trained:
    """A trained, calibrated model with the rows and statistics behind it."""

    model: Any
    result: Any
    X: np.ndarray
    y: np.ndarray
    fit: np.ndarray
    validation: np.ndarray
    val_scores: dict[str, np.ndarray]
    a: float
    b: float
    thresholds: dict[str, float]
    ll_ref: dict[str, float]


def train_calibrated(
    train: pd.DataFrame,
    config: TrainConfig,
    seed: int = 42,
    device: str = "auto",
    progress: bool = True,
    say: Any = None,
) -> Trained:
    """Fit on the training rows (less a stratified validation share), then calibrate (Platt),
    set the risk thresholds and the log-likelihood reference on the validation rows."""
    say = say or (lambda _m: None)
    y = train["TX_FRAUD"].to_numpy()
    X = feature_matrix(train)
    fit, validation = split_fit_validation(y, config.validation_fraction, seed)
    say(f"train: {len(fit)} fit rows, {len(validation)} validation rows, {int(y.sum())} frauds")
    members, results = [], []
    for k in range(max(1, config.ensemble)):
        result = fit_model(X[fit], y[fit], X[validation], y[validation], config, seed + k, device, progress)
        member = result.model.double()  # exported and scored in float64 (see FraudFlow.forward)
        say(f"train: member {k}, best step {result.best_step} of {result.steps_run}, {result.seconds:.0f} s")
        with torch.no_grad():
            h, _, _ = member.encode(torch.as_tensor(X[fit]).double())
            member.term_mean.copy_(member.term_inputs(h).double().mean(0))
        members.append(member)
        results.append(result)
    model = members[0] if len(members) == 1 else FlowEnsemble(members).double()
    result = results[0]
    if len(results) > 1:
        result.seconds = sum(r.seconds for r in results)
        result.best_step = [r.best_step for r in results]  # type: ignore[assignment]
        result.steps_run = [r.steps_run for r in results]  # type: ignore[assignment]
    val_scores = model.score(X[validation])
    a, b = calibrate.fit_platt(val_scores["fraud_logit"], y[validation])
    model.calibration.copy_(torch.tensor([a, b], dtype=model.calibration.dtype))
    val_scores = model.score(X[validation])
    thresholds = calibrate.risk_thresholds(
        val_scores["fraud_probability"], y[validation], config.elevated_alert_rate, config.high_alert_rate
    )
    ll_ref = calibrate.ll_reference(val_scores["log_likelihood"][y[validation] == 0])
    return Trained(model, result, X, y, fit, validation, val_scores, a, b, thresholds, ll_ref)


WEIGHTS_FILE = "weights.pt"


def save_weights(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    config: TrainConfig,
    training: dict[str, Any],
    seed: int,
    dates: SplitDates,
) -> Path:
    """Save the calibrated PyTorch model with what :func:`export_from_weights` needs to rebuild
    the artifact: the config, the training summary, the seed (validation split) and the dates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "state_dict": state,
        "config": asdict(config),
        "training": training,
        "seed": seed,
        "dates": asdict(dates),
    }
    torch.save(payload, path)
    return path


def load_weights(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """The calibrated model (float64, CPU, eval), its config and the whole saved payload."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    config = load_config(None, **payload["config"])
    members = [FraudFlow(config.flow).double() for _ in range(max(1, config.ensemble))]
    model: torch.nn.Module = members[0] if len(members) == 1 else FlowEnsemble(members).double()
    model.load_state_dict(payload["state_dict"])
    return model.eval(), config, payload


def train_and_export(
    data: str | os.PathLike[str] | None,
    config: TrainConfig,
    out: str | os.PathLike[str],
    dates: SplitDates = SplitDates(),
    seed: int = 42,
    device: str = "auto",
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    baselines: bool = True,
    keep_state: bool = True,
    precision: str = DEFAULT_PRECISION,
) -> dict[str, Any]:
    """Train, calibrate, export ``model.onnx``, ``manifest.json``, ``golden.json`` and
    ``weights.pt`` into ``out``.

    Returns the manifest. Raises :class:`model_export.export.ParityError` when onnxruntime does
    not reproduce PyTorch. ``keep_state`` also keeps the weights and the manifest in
    ``model-export/runs/<model_version>/`` (git-ignored).
    """
    torch.set_num_threads(max(1, int(os.environ.get("MODEL_EXPORT_THREADS", "1"))))
    data_path = resolve_data_path(data)
    say = _say if progress else (lambda _m: None)
    features, digest = features_for_file(data_path, cache_dir, progress=say)
    split = make_split(features, dates)
    if len(split.train) == 0 or split.train["TX_FRAUD"].sum() == 0:
        raise ValueError(f"the training period {dates.train_start}..{dates.train_end} has no rows or no frauds")
    trained = train_calibrated(split.train, config, seed, device, progress, say)
    training = {**trained.result.summary(), "seed": seed, "device": device}
    manifest = export_artifact(trained, config, training, features, digest, data_path, out, dates, seed, say, baselines)
    if keep_state:
        # The PyTorch weights, to regenerate golden cases from the same model (git-ignored).
        state_dir = Path(__file__).resolve().parents[2] / "runs" / manifest["model_version"]
        save_weights(state_dir / "model.pt", trained.model, config, training, seed, dates)
        write_json(manifest, state_dir / "manifest.json")
    return manifest


def export_from_weights(
    weights: str | os.PathLike[str],
    data: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    dates: SplitDates | None = None,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    baselines: bool = True,
    precision: str = DEFAULT_PRECISION,
) -> dict[str, Any]:
    """Rebuild an artifact from saved weights (:func:`save_weights`, or ``runs/*/model.pt`` of
    older runs): the same export, parity check, metrics (recomputed through onnxruntime),
    manifest and golden cases as :func:`train_and_export`, without training. The validation
    split, calibration, thresholds and log-likelihood reference come from the weights' seed and
    calibrated model; ``dates`` default to the saved ones (else the handbook split)."""
    torch.set_num_threads(max(1, int(os.environ.get("MODEL_EXPORT_THREADS", "1"))))
    model, config, payload = load_weights(weights)
    seed = int(payload.get("seed", 42))
    if dates is None:
        dates = SplitDates(**payload["dates"]) if "dates" in payload else SplitDates()
    training = payload.get("training") or {"note": f"exported from {Path(weights).name}; no training summary saved"}
    data_path = resolve_data_path(data)
    say = _say if progress else (lambda _m: None)
    features, digest = features_for_file(data_path, cache_dir, progress=say)
    split = make_split(features, dates)
    y = split.train["TX_FRAUD"].to_numpy()
    X = feature_matrix(split.train)
    fit, validation = split_fit_validation(y, config.validation_fraction, seed)
    val_scores = model.score(X[validation])
    a, b = (float(v) for v in model.calibration.detach().cpu())
    thresholds = calibrate.risk_thresholds(
        val_scores["fraud_probability"], y[validation], config.elevated_alert_rate, config.high_alert_rate
    )
    ll_ref = calibrate.ll_reference(val_scores["log_likelihood"][y[validation] == 0])
    trained = Trained(model, None, X, y, fit, validation, val_scores, a, b, thresholds, ll_ref)
    say(f"export: {Path(weights).name} ({len(fit)} fit rows, {len(validation)} validation rows)")
    return export_artifact(
        trained, config, training, features, digest, data_path, out, dates, seed, say, baselines, precision
    )


def export_artifact(
    trained: Trained,
    config: TrainConfig,
    training: dict[str, Any],
    features: pd.DataFrame,
    digest: str,
    data_path: Path,
    out: str | os.PathLike[str],
    dates: SplitDates,
    seed: int,
    say: Any,
    baselines: bool = True,
    precision: str = DEFAULT_PRECISION,
) -> dict[str, Any]:
    """Export the serving graph, check parity, score the test period through onnxruntime and
    write ``model.onnx``, ``golden.json`` (expected values from PyTorch), ``manifest.json`` and
    ``weights.pt`` into ``out``. Returns the manifest."""
    split = make_split(features, dates)
    train, test = split.train, split.test
    model, fit, validation = trained.model, trained.fit, trained.validation
    X, y, val_scores = trained.X, trained.y, trained.val_scores
    a, b, thresholds, ll_ref = trained.a, trained.b, trained.thresholds, trained.ll_ref

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, out / "model.onnx", precision=precision)
    graph = graph_summary(onnx_path)
    say(f"export: serving graph of {graph['nodes']} nodes ({precision})")
    X_test = feature_matrix(test)
    extremes = extreme_transactions()
    parity_rows = np.concatenate([X_test, X[validation], records_matrix(extremes)])
    parity = check_parity(model, onnx_path, parity_rows)
    say(f"export: parity ok on {len(parity_rows)} rows ({parity})")

    scored = onnx_score(onnx_path, X_test)
    metrics: dict[str, Any] = {
        "test": {
            **score_report(test, scored["fraud_probability"]),
            "ece": expected_calibration_error(test["TX_FRAUD"].to_numpy(), scored["fraud_probability"]),
        },
        "anomaly_score_test": {
            k: v
            for k, v in classification_metrics(test, -scored["log_likelihood"]).items()
            if k in ("roc_auc", "average_precision", "card_precision_at_100")
        },
        "protocol": "handbook: known-compromised cards (fraud in [train_start, day - delay - 1]) removed; "
        "CP@100 removes cards detected on earlier days",
    }
    notes_test = make_split(features, dates, known_lag_days=dates.delay_days).test
    if len(notes_test):
        notes_scores = onnx_score(onnx_path, feature_matrix(notes_test))
        metrics["test_model_notes_protocol"] = classification_metrics(
            notes_test, notes_scores["fraud_probability"], remove_detected=False
        )
        metrics["test_model_notes_protocol"]["protocol"] = (
            "MODEL-NOTES.md: fraud up to day - delay known; CP@100 without removing detected cards"
        )
    metrics["validation"] = classification_metrics(train.iloc[validation], val_scores["fraud_probability"])
    if baselines and len(test) and test["TX_FRAUD"].nunique() == 2:
        tests = {"handbook": (test, True), "model_notes": (notes_test, False)}
        both = _baselines(train, tests)
        metrics["baselines_same_split"] = both["handbook"]
        metrics["baselines_model_notes_protocol"] = both["model_notes"]

    identity = model_identity(onnx_path)
    golden_rows = _pick_golden(test, scored["fraud_probability"], thresholds, config, seed)
    records = list(transaction_records(golden_rows))
    labels: list[int | None] = [int(v) for v in golden_rows["TX_FRAUD"]]
    records += extremes
    labels += [None] * len(extremes)
    golden = golden_document(model, identity["model_version"], records, labels, thresholds)
    write_json(golden, out / "golden.json")

    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_version": identity["model_version"],
        "created_at": identity["created_at"],
        "model": identity["model"],
        "training_data": {
            "source": data_path.name,
            "sha256": digest,
            "train_start": dates.train_start,
            "train_end": dates.train_end,
            "delay_days": dates.delay_days,
            "test_start": dates.test_start,
            "test_end": dates.test_end,
            "n_train": len(train),
            "n_train_fraud": int(y.sum()),
            "n_validation": len(validation),
            "n_fit": len(fit),
            "n_validation_fraud": int(y[validation].sum()),
            "validation_split": f"stratified random {config.validation_fraction:g} of the training week, seed {seed}",
        },
        "inputs": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": ["N", len(FEATURES)],
            "features": [{"name": name, "path": path} for name, path in FEATURES],
        },
        "outputs": {name: name for name in OUTPUT_NAMES},
        "output_shapes": {
            "fraud_probability": ["N"],
            "log_likelihood": ["N"],
            "fraud_logit": ["N"],
            "logit_terms": ["N", len(model.term_names)],
        },
        "reasons": {
            "terms": list(model.term_names),
            "bias": model.terms_bias(),
            "weights": [float(w) for w in model.term_weights().detach()],
            "note": TERMS_NOTE,
        },
        "preprocessing": PREPROCESSING,
        "architecture": {
            "kind": "hybrid conditional normalizing flow (Nalisnick et al. 2019) with a linear"
            + (" + MLP" if config.flow.head_hidden else "")
            + " head"
            + (f"; equal-weight ensemble of {config.ensemble} seeds" if config.ensemble > 1 else ""),
            "ensemble": config.ensemble,
            "flow": "zuko NSF (masked autoregressive rational-quadratic splines)",
            "flow_features": 1,
            "flow_variables": ["log1p(amount), standardised"],
            "context_features": len(HEAD_TERMS) - 6,
            "context_variables": list(HEAD_TERMS[2:-4]),
            "transforms": config.flow.transforms,
            "hidden_features": list(config.flow.hidden_features),
            "bins": config.flow.bins,
            "head_inputs": list(HEAD_TERMS),
            "head_hidden": list(config.flow.head_hidden),
            "loss": f"BCE(head) + {config.nll_weight:g} * NLL(flow, legitimate rows) / 1",
            "parameters": sum(p.numel() for p in model.parameters()),
            "training": training,
            "opset": 18,
        },
        "class_prior": float(y.mean()),
        "calibration": {
            "method": "platt",
            "a": a,
            "b": b,
            "fitted_on": "validation",
            "formula": "fraud_probability = sigmoid(a * fraud_logit + b), inside the graph",
            "test_ece_15_bins": metrics["test"].get("ece"),
        },
        "risk_thresholds": {
            **thresholds,
            "rule": f"risk_level = high if fraud_probability >= high, elevated if >= elevated, "
            f"else low; thresholds are the validation quantiles giving alert rates "
            f"{config.high_alert_rate:g} (high) and {config.elevated_alert_rate:g} (elevated)",
        },
        "log_likelihood_reference": {**ll_ref, "computed_on": "validation legitimate"},
        "metrics": metrics,
        "export_parity": parity,
        "graph": {
            "builder": "model_export.serving.ServingGraph (the training module's computation, batched)",
            "nodes": graph["nodes"],
            "ops": graph["ops"],
            "precision": precision,
            "precision_note": PRECISION_NOTES[precision],
        },
    }
    write_json(manifest, out / "manifest.json")
    save_weights(out / WEIGHTS_FILE, model, config, training, seed, dates)
    return manifest


def load_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``manifest.json`` and check the model file's hash and format version."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ArtifactError(f"no manifest.json in {folder}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"format_version {manifest.get('format_version')} != {FORMAT_VERSION}")
    from model_export.data import file_sha256

    model_file = folder / manifest["model"]["file"]
    if not model_file.is_file():
        raise ArtifactError(f"missing {model_file}")
    digest = file_sha256(model_file)
    if digest != manifest["model"]["sha256"]:
        raise ArtifactError(f"{model_file} sha256 {digest} != manifest {manifest['model']['sha256']}")
    return manifest


def _flow_rows(
    test: pd.DataFrame, probability: np.ndarray, log_likelihood: np.ndarray, bins: int = 15
) -> dict[str, dict[str, Any]]:
    flow = score_report(test, probability)
    flow["ece"] = expected_calibration_error(test["TX_FRAUD"].to_numpy(), probability, bins)
    anomaly = score_report(test, -log_likelihood)
    return {"flow": flow, "flow_anomaly": anomaly}


def evaluate_artifact(
    data: str | os.PathLike[str] | None,
    folder: str | os.PathLike[str],
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    baselines: bool = True,
    keep_scores: bool = False,
) -> dict[str, Any]:
    """Score the artifact's test period through onnxruntime; in the same run, train the handbook
    baselines on the artifact's training rows and score them on the same test rows.

    ``rows`` maps ``flow`` (the probability), ``flow_anomaly`` (-log_likelihood) and each baseline
    to AUC, AP, CP@100 and the recall per fraud scenario at 100 cards a day; ``flow`` also has
    the expected calibration error (15 bins). ``keep_scores`` adds the raw scores (for plots).
    """
    manifest = load_manifest(folder)
    info = manifest["training_data"]
    dates = SplitDates(info["train_start"], info["train_end"], info["delay_days"], info["test_start"], info["test_end"])
    say = _say if progress else (lambda _m: None)
    features, _ = features_for_file(resolve_data_path(data), cache_dir, progress=say)
    split = make_split(features, dates)
    test = split.test
    started = time.perf_counter()
    scored = onnx_score(Path(folder) / manifest["model"]["file"], feature_matrix(test))
    seconds = time.perf_counter() - started
    rows = _flow_rows(test, scored["fraud_probability"], scored["log_likelihood"])
    scores: dict[str, np.ndarray] = {
        "flow": scored["fraud_probability"],
        "flow_anomaly": -scored["log_likelihood"],
    }
    if baselines and test["TX_FRAUD"].nunique() == 2:
        say("eval: training the baselines on the same training rows")
        for name, scorer in fit_baselines(split.train).items():
            scores[name] = scorer(test)
            rows[name] = score_report(test, scores[name])
    report: dict[str, Any] = {
        "model_version": manifest["model_version"],
        "dates": asdict(dates),
        "test": {**rows["flow"]},
        "anomaly_score_test": {
            k: rows["flow_anomaly"][k] for k in ("roc_auc", "average_precision", "card_precision_at_100")
        },
        "rows": rows,
        "reliability": reliability_table(test["TX_FRAUD"].to_numpy(), scored["fraud_probability"]),
        "ceiling": ceiling_report(test),
        "onnxruntime_seconds": round(seconds, 3),
    }
    if keep_scores:
        report["scores"] = scores
        report["labels"] = test["TX_FRAUD"].to_numpy()
        report["scenarios"] = test["TX_FRAUD_SCENARIO"].to_numpy()
        report["log_likelihood"] = scored["log_likelihood"]
    return report


def prequential_folds(
    first_test_start: str = "2018-08-08", folds: int = 4, days: int = 7, delay: int = 7
) -> list[SplitDates]:
    """Folds with test weeks ``first_test_start + 7 k`` (k < folds), each trained on the ``days``
    days ending ``delay`` days before its test week."""
    start = pd.Timestamp(first_test_start)
    out = []
    for k in range(folds):
        test_start = start + pd.Timedelta(days=days * k)
        train_start = test_start - pd.Timedelta(days=delay + days)

        def fmt(t: pd.Timestamp) -> str:
            return t.strftime("%Y-%m-%d")

        out.append(
            SplitDates(
                fmt(train_start),
                fmt(train_start + pd.Timedelta(days=days - 1)),
                delay,
                fmt(test_start),
                fmt(test_start + pd.Timedelta(days=days - 1)),
            )
        )
    return out


def prequential(
    data: str | os.PathLike[str] | None,
    config: TrainConfig,
    folds: list[SplitDates],
    seed: int = 42,
    device: str = "auto",
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train and score the flow (PyTorch, same code as the export) and the baselines per fold."""
    torch.set_num_threads(max(1, int(os.environ.get("MODEL_EXPORT_THREADS", "1"))))
    say = _say if progress else (lambda _m: None)
    features, _ = features_for_file(resolve_data_path(data), cache_dir, progress=say)
    per_fold = []
    for dates in folds:
        split = make_split(features, dates)
        say(f"fold: train {dates.train_start}..{dates.train_end}, test {dates.test_start}..{dates.test_end}")
        trained = train_calibrated(split.train, config, seed, device, progress, say)
        scored = trained.model.score(feature_matrix(split.test))
        rows = _flow_rows(split.test, scored["fraud_probability"], scored["log_likelihood"])
        for name, scorer in fit_baselines(split.train).items():
            rows[name] = score_report(split.test, scorer(split.test))
        test_days = split.test["TX_DATETIME"].dt.normalize().nunique()
        per_fold.append(
            {"dates": asdict(dates), "test_days": int(test_days), "rows": rows, "ceiling": ceiling_report(split.test)}
        )

    def spread(values: list[Any]) -> dict[str, float] | None:
        if any(v is None for v in values):
            return None
        return {"mean": float(np.mean(values)), "std": float(np.std(values))}

    summary: dict[str, dict[str, dict[str, float]]] = {}
    keys = ("roc_auc", "average_precision", "card_precision_at_100", "ece")
    for name in per_fold[0]["rows"]:
        cells = {key: spread([fold["rows"][name].get(key) for fold in per_fold]) for key in keys}
        summary[name] = {key: cell for key, cell in cells.items() if cell is not None}
    summary["ceiling"] = {key: spread([fold["ceiling"][key] for fold in per_fold]) for key in keys[:3]}
    return {"folds": per_fold, "summary": summary}
