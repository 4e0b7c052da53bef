"""Loading raw transactions and locating the data file.

Any Parquet file with the handbook's raw columns works (the full benchmark file or the committed
raw sample). The default location is ``../shared/data/handbook-sim/transactions.parquet`` relative
to the repository root, overridable with the ``FRAUDFLOW_DATA`` environment variable or ``--data``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

__all__ = [
    "DATA_ENV",
    "REQUIRED_COLUMNS",
    "DataError",
    "default_data_path",
    "file_sha256",
    "load_transactions",
    "repo_root",
    "resolve_data_path",
]

DATA_ENV = "FRAUDFLOW_DATA"

REQUIRED_COLUMNS: tuple[str, ...] = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)

_DATA_HELP = (
    "The data is the simulated card-transaction benchmark of the ULB/Worldline 'Reproducible "
    "Machine Learning for Credit Card Fraud Detection - Practical Handbook' "
    "(GitHub: Fraud-Detection-Handbook/simulated-data-raw), converted to one Parquet file; see "
    "docs/DATA.md in the repository. Pass another file with --data PATH or the "
    f"{DATA_ENV} environment variable (any Parquet file with the columns "
    f"{', '.join(REQUIRED_COLUMNS)}; samples/raw-sample.parquet is a small real sample)."
)


class DataError(Exception):
    """The data file is missing or does not have the expected shape."""


def repo_root() -> Path:
    """The repository root: the parent of ``model-export/``."""
    return Path(__file__).resolve().parents[3]


def default_data_path() -> Path:
    """``$FRAUDFLOW_DATA`` if set, else the shared handbook file next to the repository."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return (repo_root() / ".." / "shared" / "data" / "handbook-sim" / "transactions.parquet").resolve()


def resolve_data_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The data file to use; raises :class:`DataError` explaining where data comes from."""
    resolved = Path(path) if path is not None else default_data_path()
    if not resolved.is_file():
        raise DataError(f"data file not found: {resolved}. {_DATA_HELP}")
    return resolved


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_transactions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read raw transactions, check the columns, and sort them by time (then id).

    Only :data:`REQUIRED_COLUMNS` are kept, with normalised dtypes.
    """
    path = resolve_data_path(path)
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for unreadable files
        raise DataError(f"cannot read {path} as Parquet: {error}. {_DATA_HELP}") from error
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(
            f"{path} lacks the required column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}"
        )
    frame = frame[list(REQUIRED_COLUMNS)].copy()
    frame["TX_DATETIME"] = pd.to_datetime(frame["TX_DATETIME"]).astype("datetime64[ns]")
    for column in ("TRANSACTION_ID", "CUSTOMER_ID", "TERMINAL_ID", "TX_FRAUD", "TX_FRAUD_SCENARIO"):
        frame[column] = frame[column].astype("int64")
    frame["TX_AMOUNT"] = frame["TX_AMOUNT"].astype("float64")
    frame = frame.sort_values(["TX_DATETIME", "TRANSACTION_ID"], kind="mergesort")
    return frame.reset_index(drop=True)
