"""``model-export report``: a Markdown report with PNG plots of an exported model.

Everything is computed in one run: the artifact's test period is scored through onnxruntime, the
handbook baselines are trained on the same training rows (:func:`model_export.pipeline.evaluate_artifact`),
and the PyTorch weights kept beside the model (``weights.pt``) give the flow's
log-determinant (the ONNX graph does not output it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_report"]

COLORS = {
    "flow": "#d62728",
    "flow_anomaly": "#ff9896",
    "logistic_regression": "#1f77b4",
    "random_forest": "#2ca02c",
    "xgboost": "#9467bd",
}
LABELS = {
    "flow": "flow (probability)",
    "flow_anomaly": "flow (-log-likelihood)",
    "logistic_regression": "logistic regression",
    "random_forest": "random forest",
    "xgboost": "XGBoost",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "figure.dpi": 90})
    return plt


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path.name


def _weights_path(folder: Path, model_version: str) -> Path | None:
    """The PyTorch weights of an artifact: its own ``weights.pt`` (what ``train`` and ``export``
    write next to the ONNX file), else the run folder ``model-export/runs/<model_version>/``."""
    from model_export.pipeline import WEIGHTS_FILE

    candidates = [folder / WEIGHTS_FILE, Path(__file__).resolve().parents[2] / "runs" / model_version / "model.pt"]
    return next((path for path in candidates if path.is_file()), None)


def _log_det(path: Path | None, features: np.ndarray) -> np.ndarray | None:
    """log|dz/dx| of the flow for each row, from the kept PyTorch weights (None if absent)."""
    if path is None:
        return None
    import torch

    from model_export.flow import FlowEnsemble, FraudFlow
    from model_export.pipeline import load_weights

    model, _, _ = load_weights(path)
    if isinstance(model, FlowEnsemble):
        model = model.members[0]  # a mixture has no single log-det: the first member's
    assert isinstance(model, FraudFlow)
    out = []
    with torch.no_grad():
        for i in range(0, len(features), 65536):
            x, c, _ = model.preprocess(torch.as_tensor(features[i : i + 65536]).double())
            dist = model.flow(c)
            _, ladj = dist.transform.call_and_ladj(x)
            out.append(ladj.reshape(-1).numpy())
    return np.concatenate(out)


def write_report(
    data: str | os.PathLike[str] | None,
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``out/README.md`` and its PNGs; returns the Markdown path."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    from model_export.data import resolve_data_path
    from model_export.evaluate import make_split
    from model_export.features import feature_matrix, features_for_file
    from model_export.pipeline import SplitDates, evaluate_artifact, load_manifest

    plt = _plt()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(folder)
    report = evaluate_artifact(data, folder, progress=progress, cache_dir=cache_dir, keep_scores=True)
    labels, scores = report["labels"], report["scores"]
    rows = report["rows"]
    images: dict[str, str] = {}

    # 1. NLL curves
    history = manifest.get("architecture", {}).get("training", {}).get("history", [])
    if history:
        fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8))
        steps = [h["step"] for h in history]
        axes[0].plot(steps, [h["nll"] for h in history], label="train (batch, legitimate)")
        axes[0].plot(steps, [h["val_nll"] for h in history], label="validation (legitimate)")
        axes[0].set(xlabel="step", ylabel="NLL per payment (model space)", title="flow NLL (member 0)")
        axes[1].plot(steps, [h["bce"] for h in history], label="train (batch)")
        axes[1].plot(steps, [h["val_bce"] for h in history], label="validation")
        axes[1].set(xlabel="step", ylabel="BCE", title="head BCE")
        best = manifest["architecture"]["training"].get("best_step")
        if isinstance(best, list):  # ensemble: the history is the first member's
            best = best[0]
        for ax in axes:
            if best:
                ax.axvline(best, color="grey", ls=":", lw=1, label=f"best step {best}")
            ax.legend(fontsize=7)
        images["nll"] = _save(fig, out / "nll-curves.png")

    # 2. ROC and PR curves
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(labels, score)
        precision, recall, _ = precision_recall_curve(labels, score)
        m = rows[name]
        style = {"color": COLORS.get(name), "lw": 1.6 if name == "flow" else 1.0}
        if name == "flow_anomaly":
            style["ls"] = "--"
        axes[0].plot(fpr, tpr, label=f"{LABELS.get(name, name)} {m['roc_auc']:.3f}", **style)
        axes[1].plot(recall, precision, label=f"{LABELS.get(name, name)} {m['average_precision']:.3f}", **style)
    axes[0].plot([0, 1], [0, 1], color="grey", lw=0.5)
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUC)")
    axes[1].set(xlabel="recall", ylabel="precision", title="precision-recall (AP)")
    for ax in axes:
        ax.legend(fontsize=6.5, loc="lower right" if ax is axes[0] else "upper right")
    images["roc_pr"] = _save(fig, out / "roc-pr.png")

    # 3. Reliability diagram
    table = report["reliability"]
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    mids = [r["mean_probability"] for r in table]
    rates = [r["fraud_rate"] for r in table]
    ax.plot([0, 1], [0, 1], color="grey", lw=0.7, ls="--")
    ax.plot(mids, rates, "o-", color=COLORS["flow"], ms=3)
    for r in table:
        ax.annotate(
            str(r["count"]),
            (r["mean_probability"], r["fraud_rate"]),
            fontsize=5.5,
            xytext=(2, -7),
            textcoords="offset points",
        )
    ax.set(
        xlabel="mean predicted probability (bin)",
        ylabel="observed fraud rate",
        title=f"reliability, 15 bins, ECE {rows['flow']['ece']:.4f}",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    images["reliability"] = _save(fig, out / "reliability.png")

    # 4. Histograms of the log-likelihood and log-det, legitimate vs fraud
    info = manifest["training_data"]
    dates = SplitDates(info["train_start"], info["train_end"], info["delay_days"], info["test_start"], info["test_end"])
    features, _ = features_for_file(resolve_data_path(data), cache_dir)
    test = make_split(features, dates).test
    log_det = _log_det(_weights_path(Path(folder), manifest["model_version"]), feature_matrix(test))
    panels = [("log-likelihood", report["log_likelihood"])]
    if log_det is not None:
        panels.append(("log|det dz/dx| (member 0)", log_det))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 2.8), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        # range: each class's 1st-99.9th percentiles, so the (rare) frauds' tail is not clipped
        lo = min(np.percentile(values[labels == c], 1) for c in (0, 1))
        hi = max(np.percentile(values[labels == c], 99.9) for c in (0, 1))
        bins = np.linspace(lo, hi, 60)
        ax.hist(np.clip(values[labels == 0], lo, hi), bins=bins, density=True, alpha=0.6, label="legitimate")
        ax.hist(
            np.clip(values[labels == 1], lo, hi),
            bins=bins,
            density=True,
            alpha=0.6,
            label="fraud",
            color=COLORS["flow"],
        )
        ax.set(title=f"{title} (test week)", ylabel="density", yscale="log")
        ax.legend(fontsize=7)
    images["histograms"] = _save(fig, out / "log-likelihood-histograms.png")

    # 5. Per-scenario recall at 100 cards a day
    names = [n for n in scores if "scenario_recall" in rows[n]]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        rec = [rows[name]["scenario_recall"].get(str(s), {}).get("recall", 0.0) for s in (1, 2, 3)]
        ax.bar(np.arange(3) + k * width, rec, width, label=LABELS.get(name, name), color=COLORS.get(name))
    counts = [rows["flow"]["scenario_recall"].get(str(s), {}).get("frauds", 0) for s in (1, 2, 3)]
    ax.set_xticks(
        np.arange(3) + 0.4 - width / 2,
        [
            f"{t}\n({n} frauds)"
            for t, n in zip(("1: amount > 220", "2: terminal", "3: customer x5"), counts, strict=True)
        ],
    )
    ax.set(ylabel="recall", ylim=(0, 1.05), title="recall per fraud scenario at 100 alerted cards a day")
    ax.legend(fontsize=6.5, loc="lower left")
    images["scenarios"] = _save(fig, out / "scenario-recall.png")

    # Markdown
    lines = [
        f"# Model report: {manifest['model_version']}",
        "",
        f"Generated by `model-export report`. Train {dates.train_start}..{dates.train_end}, "
        f"{dates.delay_days}-day delay, test {dates.test_start}..{dates.test_end} "
        f"({rows['flow']['n']} payments, {rows['flow']['n_fraud']} frauds; known-compromised cards removed). "
        "The flow is scored through onnxruntime; the baselines are trained on the same rows and "
        "features in the same run.",
        "",
        "| model | ROC AUC | AP | CP@100 | ECE (15 bins) | recall s1 | s2 | s3 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        rec = [m.get("scenario_recall", {}).get(str(s), {}).get("recall", float("nan")) for s in (1, 2, 3)]
        ece = f"{m['ece']:.4f}" if "ece" in m else "-"
        lines.append(
            f"| {LABELS.get(name, name)} | {m['roc_auc']:.4f} | {m['average_precision']:.4f} | "
            f"{m['card_precision_at_100']:.4f} | {ece} | {rec[0]:.3f} | {rec[1]:.3f} | {rec[2]:.3f} |"
        )
    ceiling = report["ceiling"]
    lines.append(
        f"| ceiling (oracle, below) | {ceiling['roc_auc']:.4f} | {ceiling['average_precision']:.4f} | "
        f"{ceiling['card_precision_at_100']:.4f} | - | "
        + " | ".join(f"{ceiling['scenario_recall'].get(str(s), {}).get('recall', float('nan')):.3f}" for s in (1, 2, 3))
        + " |"
    )
    lines += [
        "",
        "Recall sN: share of the scenario-N fraudulent payments whose card is among its day's 100 "
        "highest-scored cards (a card's score is its highest that day).",
        "",
        f"Ceiling: what the 15 features allow at best. {ceiling['n_hidden']} of the "
        f"{ceiling['n_fraud']} test frauds are scenario-2 payments at terminals with no known fraud yet (all "
        "three terminal risks 0: the compromise started inside the 7-day label delay); the simulation "
        "leaves their amounts and customers untouched, so they look like legitimate payments. The "
        "oracle ranks every other fraud above every legitimate payment and these at random among "
        "them (no score does better in expectation on AUC and AP); for CP@100, which ranks cards, "
        f"it takes the better of that order and the busiest cards first ({ceiling['card_order']} here). "
        "Mean of 10 orders; range "
        f"AUC {ceiling['range']['roc_auc'][0]:.4f}..{ceiling['range']['roc_auc'][1]:.4f}, "
        f"CP@100 {ceiling['range']['card_precision_at_100'][0]:.4f}.."
        f"{ceiling['range']['card_precision_at_100'][1]:.4f}.",
        "",
    ]
    t = manifest["risk_thresholds"]
    cal = manifest["calibration"]
    ref = manifest["log_likelihood_reference"]
    lines += [
        f"Calibration: Platt, a = {cal['a']:.4f}, b = {cal['b']:.4f} (fitted on the validation rows), "
        f"in the graph. Risk thresholds (validation quantiles): elevated >= {t['elevated']:.4f} "
        f"(alert rate {t['validation_alert_rate_elevated']:.3%}, precision "
        f"{t['validation_precision_elevated']:.2f}, recall {t['validation_recall_elevated']:.2f}), "
        f"high >= {t['high']:.4f} (alert rate {t['validation_alert_rate_high']:.3%}, precision "
        f"{t['validation_precision_high']:.2f}, recall {t['validation_recall_high']:.2f}). "
        f"Log-likelihood reference (validation legitimate): mean {ref['mean']:.3f}, std {ref['std']:.3f}, "
        f"p01 {ref['p01']:.3f}, p50 {ref['p50']:.3f}.",
        "",
    ]
    captions = {
        "roc_pr": "ROC and precision-recall curves, flow vs the baselines (test week)",
        "reliability": "Reliability diagram of fraud_probability (test week; numbers: payments per bin)",
        "scenarios": "Recall per fraud scenario at 100 cards a day",
        "nll": "Training and validation curves (flow NLL on legitimate payments; head BCE)",
        "histograms": "Log-likelihood and log-determinant, legitimate vs fraud (test week)",
    }
    for key in ("roc_pr", "reliability", "scenarios", "nll", "histograms"):
        if key in images:
            lines += [f"## {captions[key]}", "", f"![{captions[key]}]({images[key]})", ""]
    if log_det is None:
        lines += ["(No PyTorch weights beside the model (weights.pt): log-det histogram skipped.)", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
