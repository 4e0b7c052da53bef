"""bench/targets.py: the table it prints from criterion's files, the peer's figures and the CLI."""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import targets


def write_criterion(root: Path, medians_ns: dict[tuple[str, int], float]) -> None:
    for (group, batch), median in medians_ns.items():
        folder = root / group / str(batch) / "new"
        folder.mkdir(parents=True)
        (folder / "estimates.json").write_text(
            json.dumps({"median": {"point_estimate": median}})
        )


PEER = {
    "results": {
        "rust": {
            "cold_warm_cache_ms": 30.0,
            "cold_cold_cache_ms": 60.0,
            "latency_median_us": 200.0,
            "empty_median_us": 90.0,
            "peak_rss_mb": 60.0,
            "rss_file_mb": 32.0,
        },
        "python": {
            "cold_warm_cache_ms": 330.0,
            "latency_median_us": 300.0,
            "empty_median_us": 100.0,
            "peak_rss_mb": 100.0,
        },
    }
}


def test_rows_compute_each_target_from_the_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    medians = {
        ("ort_call", 1): 60_000.0,
        ("bytes_to_answer", 1): 64_000.0,
        ("around_model", 1): 3_000.0,
        ("ort_call", 256): 1_280_000.0,  # 5 µs/tx
        ("bytes_to_answer", 256): 2_560_000.0,  # 10 µs/tx -> exactly 100,000 /s
        ("around_model", 256): 640_000.0,
    }
    write_criterion(tmp_path, medians)
    monkeypatch.setattr(targets, "CRITERION", tmp_path)
    latency = [{"p50": 60, "p90": 70, "p99": p99, "max": 500} for p99 in (90, 120, 101)]
    table = targets.rows(PEER, latency)
    assert len(table) == 6
    p99, tps, cold, cold_ratio, latency_ratio, rss_ratio = table
    assert (p99.met, "p99 101 µs (runs: 90, 101, 120)") == (
        False,
        p99.figure.split(", median")[0],
    )
    assert tps.met and tps.figure.startswith("100,000 /s end to end (10.00 µs/tx)")
    assert cold.met and cold.figure == "30.0 ms (cold page cache 60.0 ms)"
    assert (cold_ratio.met, cold_ratio.figure) == (True, "11.0x")
    assert (latency_ratio.met, latency_ratio.figure) == (False, "1.5x")
    assert (rss_ratio.met, rss_ratio.figure) == (False, "1.7x")
    assert (
        "runtime client and emulator floor (empty batch: Rust 90 µs, Python 100 µs)"
        in latency_ratio.bound
    )


def test_missing_criterion_figures_say_how_to_make_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(targets, "CRITERION", tmp_path)
    with pytest.raises(
        targets.BenchError,
        match=r"run `cargo bench -p fraudflow --bench scoring` first",
    ):
        targets.criterion_median_ns("ort_call", 1)


def test_cli_latency_reads_the_real_cli_summary(tmp_path: Path) -> None:
    """The regex against the summary the CLI prints, on 300 real transactions (debug build of
    `cargo test --workspace`, which `make test` runs first)."""
    binary = REPO / "target" / "debug" / "fraudflow"
    if not binary.is_file() or not os.environ.get("ORT_DYLIB_PATH"):
        pytest.skip(
            "needs target/debug/fraudflow (cargo test --workspace) and ORT_DYLIB_PATH"
        )
    with gzip.open(REPO / "samples" / "test-days.jsonl.gz", "rt") as source:
        lines = [next(source) for _ in range(300)]
    small = tmp_path / "small.jsonl"
    small.write_text("".join(lines))
    (run,) = targets.cli_latency(binary, runs=1, samples=small)
    assert 0 < run["p50"] <= run["p90"] <= run["p99"] <= run["max"]
