"""Contract-shaped transactions as JSON Lines, and the small raw sample for offline tests.

A transaction record follows ../shared/CONTRACT.md: counts are JSON integers, floats keep their
full float64 value (so the Rust side rounds them to the same float32 features), the timestamp is
the wall clock of ``TX_DATETIME`` with a ``Z`` suffix, and ``label`` (ignored by the scorer) carries
the truth: ``fraud``, ``scenario`` and ``known_compromised`` (the card is removed from evaluation
by the handbook protocol on that day).
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_export.features import CUSTOMER_WINDOWS, TERMINAL_WINDOWS

__all__ = ["raw_sample", "transaction_records", "write_jsonl"]


def _timestamp(value: pd.Timestamp) -> str:
    if value.microsecond or value.nanosecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def transaction_records(
    features: pd.DataFrame, known_compromised: np.ndarray | None = None
) -> Iterator[dict[str, Any]]:
    """Contract transactions (with ``label``) for rows of a feature frame, in its order."""
    known = np.zeros(len(features), dtype=bool) if known_compromised is None else np.asarray(known_compromised)
    columns = {name: features[name].to_numpy() for name in features.columns}
    for i in range(len(features)):
        customer: dict[str, Any] = {}
        for w in CUSTOMER_WINDOWS:
            customer[f"nb_tx_{w}d"] = int(columns[f"customer.nb_tx_{w}d"][i])
            customer[f"avg_amount_{w}d"] = float(columns[f"customer.avg_amount_{w}d"][i])
        terminal: dict[str, Any] = {}
        for w in TERMINAL_WINDOWS:
            terminal[f"nb_tx_{w}d"] = int(columns[f"terminal.nb_tx_{w}d"][i])
            terminal[f"risk_{w}d"] = float(columns[f"terminal.risk_{w}d"][i])
        yield {
            "transaction_id": int(columns["TRANSACTION_ID"][i]),
            "timestamp": _timestamp(pd.Timestamp(columns["TX_DATETIME"][i])),
            "customer_id": f"c-{int(columns['CUSTOMER_ID'][i])}",
            "terminal_id": f"t-{int(columns['TERMINAL_ID'][i])}",
            "amount": float(columns["TX_AMOUNT"][i]),
            "customer": customer,
            "terminal": terminal,
            "label": {
                "fraud": int(columns["TX_FRAUD"][i]),
                "scenario": int(columns["TX_FRAUD_SCENARIO"][i]),
                "known_compromised": bool(known[i]),
            },
        }


def write_jsonl(records: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write one JSON object per line (gzip when the name ends in ``.gz``); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "wb") as raw:
        # mtime=0 and no file name in the header: the same records give the same bytes.
        binary = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if path.suffix == ".gz" else raw
        with io.TextIOWrapper(binary, encoding="utf-8", newline="\n") as text:
            for record in records:
                text.write(json.dumps(record, separators=(",", ":"), allow_nan=False))
                text.write("\n")
                count += 1
    return count


def raw_sample(
    frame: pd.DataFrame,
    customers: int = 300,
    start: str = "2018-06-20",
    end: str = "2018-08-14",
    seed: int = 42,
) -> pd.DataFrame:
    """All raw rows of ``customers`` seeded-random customers between two days (inclusive).

    The customers are drawn among those with a fraud in the window and the others in the
    data's proportion, with at least a fifth of them compromised, so small tests see frauds.
    """
    days = frame["TX_DATETIME"].dt.normalize()
    window = frame[(days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))]
    rng = np.random.default_rng(seed)
    defrauded = np.unique(window.loc[window["TX_FRAUD"] == 1, "CUSTOMER_ID"].to_numpy())
    clean = np.setdiff1d(np.unique(window["CUSTOMER_ID"].to_numpy()), defrauded)
    share = len(defrauded) / max(len(defrauded) + len(clean), 1)
    n_fraud = min(len(defrauded), max(round(customers * share), customers // 5))
    chosen = np.concatenate(
        [
            rng.choice(defrauded, size=n_fraud, replace=False),
            rng.choice(clean, size=min(customers - n_fraud, len(clean)), replace=False),
        ]
    )
    sample = window[window["CUSTOMER_ID"].isin(chosen)]
    return sample.sort_values(["TX_DATETIME", "TRANSACTION_ID"], kind="mergesort").reset_index(drop=True)
