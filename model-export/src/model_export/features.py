"""The handbook's 15 transaction features, computed from raw history.

Customer windows (1, 7, 30 days) include the current payment: ``nb_tx_{w}d`` counts the
customer's payments in ``(t - w days, t]`` and ``avg_amount_{w}d`` is their mean amount. Terminal
windows end 7 days before the payment (labels are known a week later): ``nb_tx_{w}d`` counts the
terminal's payments in ``(t - 7 - w days, t - 7 days]`` and ``risk_{w}d`` is the share of frauds
among them, 0 when the window is empty. ``weekend`` is weekday >= 5 and ``night`` is hour <= 6.
Windows are pandas time-based rollings per group, as in the handbook, so ties and boundaries
follow pandas (a window ``'7D'`` ending at row ``i`` covers earlier rows with time > t - 7 days,
up to and including row ``i``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from model_export.data import file_sha256, load_transactions, repo_root

__all__ = [
    "CUSTOMER_WINDOWS",
    "DELAY_DAYS",
    "FEATURES",
    "FEATURE_NAMES",
    "FEATURE_PATHS",
    "FEATURE_VERSION",
    "TERMINAL_WINDOWS",
    "compute_features",
    "customer_features",
    "feature_matrix",
    "features_for_file",
    "terminal_features",
    "time_features",
]

CUSTOMER_WINDOWS: tuple[int, ...] = (1, 7, 30)
TERMINAL_WINDOWS: tuple[int, ...] = (1, 7, 30)
DELAY_DAYS = 7
# Bump when the computation changes, so cached feature files are not reused.
FEATURE_VERSION = 1


def _feature_table() -> tuple[tuple[str, str], ...]:
    rows: list[tuple[str, str]] = [
        ("amount", "amount"),
        ("weekend", "timestamp.weekend"),
        ("night", "timestamp.night"),
    ]
    for window in CUSTOMER_WINDOWS:
        rows.append((f"customer.nb_tx_{window}d", f"customer.nb_tx_{window}d"))
        rows.append((f"customer.avg_amount_{window}d", f"customer.avg_amount_{window}d"))
    for window in TERMINAL_WINDOWS:
        rows.append((f"terminal.nb_tx_{window}d", f"terminal.nb_tx_{window}d"))
        rows.append((f"terminal.risk_{window}d", f"terminal.risk_{window}d"))
    return tuple(rows)


#: (name, event path) of the ONNX input columns, in order. Fixed interface with the Rust side.
FEATURES: tuple[tuple[str, str], ...] = _feature_table()
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FEATURES)
FEATURE_PATHS: tuple[str, ...] = tuple(path for _, path in FEATURES)


def _grouped_rolling(frame: pd.DataFrame, key: str, value: str, windows: dict[str, str]) -> dict[str, np.ndarray]:
    """Per-``key`` time rollings of ``value``; returns arrays aligned with ``frame``'s rows.

    ``windows`` maps an output name to ``"<days>D:<sum|count>"``.
    """
    order = np.lexsort((np.arange(len(frame)), frame["TX_DATETIME"].to_numpy(), frame[key].to_numpy()))
    ordered = frame.iloc[order].set_index("TX_DATETIME")
    grouped = ordered.groupby(key, sort=True)[value]
    results: dict[str, np.ndarray] = {}
    for name, spec in windows.items():
        span, how = spec.split(":")
        rolled = getattr(grouped.rolling(span), how)()
        values = np.empty(len(frame), dtype=np.float64)
        # groupby(sort=True) emits groups in key order and rows in their order inside each group,
        # which is exactly ``order``.
        values[order] = rolled.to_numpy(dtype=np.float64)
        results[name] = values
    return results


def time_features(frame: pd.DataFrame) -> pd.DataFrame:
    """``weekend`` (weekday >= 5) and ``night`` (hour 0..6) from the wall-clock time."""
    stamps = frame["TX_DATETIME"].dt
    return pd.DataFrame(
        {
            "weekend": (stamps.weekday >= 5).astype(np.int64).to_numpy(),
            "night": (stamps.hour <= 6).astype(np.int64).to_numpy(),
        },
        index=frame.index,
    )


def customer_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Customer counts and mean amounts over windows that include the current payment."""
    specs: dict[str, str] = {}
    for window in CUSTOMER_WINDOWS:
        specs[f"n{window}"] = f"{window}D:count"
        specs[f"s{window}"] = f"{window}D:sum"
    rolled = _grouped_rolling(frame, "CUSTOMER_ID", "TX_AMOUNT", specs)
    out: dict[str, np.ndarray] = {}
    for window in CUSTOMER_WINDOWS:
        count = np.rint(rolled[f"n{window}"]).astype(np.int64)
        out[f"customer.nb_tx_{window}d"] = count
        out[f"customer.avg_amount_{window}d"] = rolled[f"s{window}"] / np.maximum(count, 1)
    return pd.DataFrame(out, index=frame.index)


def terminal_features(frame: pd.DataFrame, delay_days: int = DELAY_DAYS) -> pd.DataFrame:
    """Terminal counts and fraud ratios over windows ending ``delay_days`` before the payment."""
    specs = {"n_delay": f"{delay_days}D:count", "f_delay": f"{delay_days}D:sum"}
    for window in TERMINAL_WINDOWS:
        specs[f"n{window}"] = f"{delay_days + window}D:count"
        specs[f"f{window}"] = f"{delay_days + window}D:sum"
    rolled = _grouped_rolling(frame, "TERMINAL_ID", "TX_FRAUD", specs)
    out: dict[str, np.ndarray] = {}
    for window in TERMINAL_WINDOWS:
        count = np.rint(rolled[f"n{window}"] - rolled["n_delay"]).astype(np.int64)
        frauds = np.rint(rolled[f"f{window}"] - rolled["f_delay"])
        risk = np.divide(frauds, count, out=np.zeros(len(frame)), where=count > 0)
        out[f"terminal.nb_tx_{window}d"] = count
        out[f"terminal.risk_{window}d"] = risk
    return pd.DataFrame(out, index=frame.index)


def compute_features(frame: pd.DataFrame, delay_days: int = DELAY_DAYS) -> pd.DataFrame:
    """Raw columns plus the 15 features (``amount`` is ``TX_AMOUNT``), same rows and order."""
    features = pd.concat(
        [
            frame.reset_index(drop=True),
            time_features(frame).reset_index(drop=True),
            customer_features(frame).reset_index(drop=True),
            terminal_features(frame, delay_days).reset_index(drop=True),
        ],
        axis=1,
    )
    features["amount"] = features["TX_AMOUNT"]
    return features


def feature_matrix(features: pd.DataFrame) -> np.ndarray:
    """The ONNX input: float32 ``[N, 15]`` raw values in :data:`FEATURE_NAMES` order.

    The float64 values are rounded to float32 once, exactly as the Rust side does with the JSON
    numbers of a transaction.
    """
    columns = [features[name].to_numpy(dtype=np.float64) for name in FEATURE_NAMES]
    return np.column_stack(columns).astype(np.float32)


def features_for_file(
    path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, str]:
    """Features of a data file, cached under ``.cache/`` keyed by the file's sha256.

    Returns the feature frame and the data file's sha256.
    """
    say = progress or (lambda _message: None)
    digest = file_sha256(path)
    directory = Path(cache_dir) if cache_dir is not None else repo_root() / ".cache"
    cached = directory / f"features-v{FEATURE_VERSION}-{digest[:16]}.parquet"
    if cached.is_file():
        say(f"features: cache hit {cached}")
        return pd.read_parquet(cached), digest
    say(f"features: computing from {path}")
    frame = load_transactions(path)
    features = compute_features(frame)
    directory.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".tmp")
    features.to_parquet(partial, compression="zstd", index=False)
    partial.replace(cached)
    say(f"features: cached to {cached}")
    return features, digest
