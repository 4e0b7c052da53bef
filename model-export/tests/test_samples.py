"""The JSON Lines writer emits contract transactions; the raw sample is usable offline."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_frame
from model_export.cli import main
from model_export.export import records_matrix
from model_export.features import compute_features, feature_matrix
from model_export.samples import transaction_records, write_jsonl

CUSTOMER_KEYS = ["nb_tx_1d", "avg_amount_1d", "nb_tx_7d", "avg_amount_7d", "nb_tx_30d", "avg_amount_30d"]
TERMINAL_KEYS = ["nb_tx_1d", "risk_1d", "nb_tx_7d", "risk_7d", "nb_tx_30d", "risk_30d"]


def _features():
    return compute_features(
        make_frame(
            [
                ("2018-08-01 06:00:00", 3, 9, 10.0, 1),
                ("2018-08-08 07:12:45", 3, 9, 57.16, 0),
                ("2018-08-08 08:00:00", 4, 9, 0.1, 1),
            ]
        )
    )


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_writer_emits_contract_shape(tmp_path: Path, suffix: str) -> None:
    features = _features()
    known = np.array([False, True, False])
    path = tmp_path / f"tx{suffix}"
    assert write_jsonl(transaction_records(features, known), path) == 3
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    second = lines[1]
    assert second["transaction_id"] == 1 and isinstance(second["transaction_id"], int)
    assert second["timestamp"] == "2018-08-08T07:12:45Z"
    assert (second["customer_id"], second["terminal_id"]) == ("c-3", "t-9")
    assert second["amount"] == 57.16
    assert list(second["customer"]) == CUSTOMER_KEYS and list(second["terminal"]) == TERMINAL_KEYS
    for group in ("customer", "terminal"):
        for key, value in second[group].items():
            assert isinstance(value, int if key.startswith("nb_tx") else float), (group, key)
    assert second["customer"]["nb_tx_7d"] == 1 and second["customer"]["avg_amount_30d"] == pytest.approx(33.58)
    assert second["terminal"] == {
        "nb_tx_1d": 1,
        "risk_1d": 1.0,
        "nb_tx_7d": 1,
        "risk_7d": 1.0,
        "nb_tx_30d": 1,
        "risk_30d": 1.0,
    }
    assert second["label"] == {"fraud": 0, "scenario": 0, "known_compromised": True}
    assert lines[2]["label"] == {"fraud": 1, "scenario": 2, "known_compromised": False}


def test_records_rebuild_the_same_float32_features() -> None:
    features = _features()
    records = list(transaction_records(features))
    assert np.array_equal(records_matrix(records), feature_matrix(features))


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    features = _features()
    write_jsonl(transaction_records(features), tmp_path / "a.jsonl.gz")
    write_jsonl(transaction_records(features), tmp_path / "b.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


def test_transactions_command_on_raw_sample(raw_sample_path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("model_export.features.repo_root", lambda: tmp_path)  # cache under tmp
    out = tmp_path / "days.jsonl.gz"
    code = main(
        [
            "transactions",
            "--data",
            str(raw_sample_path),
            "--start",
            "2018-08-08",
            "--end",
            "2018-08-08",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    with gzip.open(out, "rt", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert lines and all(line["timestamp"].startswith("2018-08-08T") for line in lines)
    stamps = [line["timestamp"] for line in lines]
    assert stamps == sorted(stamps)
    assert any(line["label"]["fraud"] == 1 for line in lines)
