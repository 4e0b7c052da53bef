"""Shared fixtures: seeded RNG, the committed raw sample, a tiny trained artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
RAW_SAMPLE = REPO / "samples" / "raw-sample.parquet"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def raw_sample_path() -> Path:
    if not RAW_SAMPLE.is_file():
        pytest.skip(f"{RAW_SAMPLE} is missing (model-export raw-sample writes it)")
    return RAW_SAMPLE


def make_frame(rows: list[tuple[str, int, int, float, int]]) -> pd.DataFrame:
    """Raw transactions from (datetime, customer, terminal, amount, fraud) tuples."""
    frame = pd.DataFrame(rows, columns=["TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD"])
    frame["TX_DATETIME"] = pd.to_datetime(frame["TX_DATETIME"]).astype("datetime64[ns]")
    frame.insert(0, "TRANSACTION_ID", np.arange(len(frame), dtype=np.int64))
    frame["TX_FRAUD_SCENARIO"] = frame["TX_FRAUD"] * 2
    return frame


@pytest.fixture(scope="session")
def artifact(raw_sample_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny model trained on the raw sample and exported (once per session)."""
    from model_export.pipeline import train_and_export
    from model_export.train import load_config

    folder = tmp_path_factory.mktemp("artifact")
    cache = tmp_path_factory.mktemp("cache")
    config = load_config(
        None,
        steps=60,
        batch_size=512,
        eval_every=20,
        flow={"transforms": 2, "hidden_features": [16, 16], "bins": 4},
        golden_legit=10,
        golden_fraud=5,
    )
    manifest = train_and_export(
        raw_sample_path,
        config,
        folder,
        seed=1,
        device="cpu",
        progress=False,
        cache_dir=cache,
        baselines=False,
        keep_state=False,
    )
    return {"folder": folder, "manifest": manifest, "cache": cache, "data": raw_sample_path}
