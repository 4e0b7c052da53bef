"""Platt scaling, risk thresholds and log-likelihood reference statistics (validation rows)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

__all__ = ["fit_platt", "ll_reference", "risk_level", "risk_thresholds"]


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` minimising the log loss of ``sigmoid(a * logit + b)`` (unregularised)."""
    s = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if y.min() == y.max():
        return 1.0, 0.0

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        t = params[0] * s + params[1]
        # log(1 + exp(t)) - y * t, stably
        value = np.logaddexp(0.0, t) - y * t
        residual = 1.0 / (1.0 + np.exp(-t)) - y
        return float(value.mean()), np.array([(residual * s).mean(), residual.mean()])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def risk_thresholds(
    probabilities: np.ndarray, labels: np.ndarray, elevated_rate: float, high_rate: float
) -> dict[str, float]:
    """Probability thresholds at which about ``elevated_rate`` / ``high_rate`` of payments alert.

    A payment is at a level when its probability is >= the level's threshold. Returns the
    thresholds with the alert rates, precisions and recalls they give on these rows.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    out: dict[str, float] = {}
    for level, rate in (("elevated", elevated_rate), ("high", high_rate)):
        threshold = float(np.quantile(p, 1.0 - rate, method="higher"))
        alert = p >= threshold
        out[level] = threshold
        out[f"validation_alert_rate_{level}"] = float(alert.mean())
        out[f"validation_precision_{level}"] = float(y[alert].mean()) if alert.any() else 0.0
        out[f"validation_recall_{level}"] = float(alert[y == 1].mean()) if (y == 1).any() else 0.0
    out["high"] = max(out["high"], out["elevated"])
    return out


def risk_level(probability: float, elevated: float, high: float) -> str:
    """``low`` / ``elevated`` / ``high`` for a probability (thresholds inclusive)."""
    if probability >= high:
        return "high"
    if probability >= elevated:
        return "elevated"
    return "low"


def ll_reference(log_likelihoods: np.ndarray) -> dict[str, float]:
    """Mean, std and percentiles of log-likelihoods (drift reference)."""
    ll = np.asarray(log_likelihoods, dtype=np.float64)
    out = {"mean": float(ll.mean()), "std": float(ll.std())}
    for q in (1, 5, 50, 95, 99):
        out[f"p{q:02d}"] = float(np.percentile(ll, q))
    return out
