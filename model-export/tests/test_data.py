"""Loading: column checks and the missing-data message."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from model_export.cli import main
from model_export.data import REQUIRED_COLUMNS, DataError, load_transactions, resolve_data_path


def test_missing_column_is_named(tmp_path: Path) -> None:
    frame = pd.DataFrame({c: [1] for c in REQUIRED_COLUMNS if c != "TERMINAL_ID"})
    frame["TX_DATETIME"] = pd.Timestamp("2018-08-08")
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="TERMINAL_ID"):
        load_transactions(tmp_path / "bad.parquet")


def test_missing_file_explains_the_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"--data"):
        resolve_data_path(tmp_path / "nope.parquet")


def test_cli_reports_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "--data", str(tmp_path / "nope.parquet")]) == 2
    err = capsys.readouterr().err
    assert "ULB/Worldline" in err and "--data" in err


def test_env_variable_sets_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDFLOW_DATA", str(tmp_path / "x.parquet"))
    with pytest.raises(DataError, match=r"x\.parquet"):
        resolve_data_path(None)


def test_loads_and_sorts_extra_columns_dropped(raw_sample_path: Path) -> None:
    frame = load_transactions(raw_sample_path)
    assert list(frame.columns) == list(REQUIRED_COLUMNS)
    assert frame["TX_DATETIME"].is_monotonic_increasing
