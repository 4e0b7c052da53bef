"""Load: many concurrent invocations against `cargo lambda watch` on 127.0.0.1 (a bounded loop).
Every answer arrives, none is lost or duplicated, and the function's memory does not grow over
100,000 scored transactions."""

from __future__ import annotations

import gzip
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from test_lambda import SAMPLES, post

BATCHES = 100
BATCH_SIZE = 1000
CONCURRENCY = 8
RSS_GROWTH_LIMIT_KB = 30 * 1024


def function_rss_kb() -> int:
    """Resident memory of the running function process (the binary cargo lambda started)."""
    pids = subprocess.run(["pgrep", "-x", "fraudflow-scor"], capture_output=True, text=True, check=False).stdout.split()
    pids += subprocess.run(["pgrep", "-f", "target/debug/fraudflow-scorer"], capture_output=True, text=True,
                           check=False).stdout.split()
    for pid in dict.fromkeys(pids):
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    raise AssertionError("the function process was not found")


def test_a_hundred_thousand_transactions_concurrently_none_lost_memory_flat(lambda_port: int) -> None:
    with gzip.open(SAMPLES, "rt") as lines:
        pool = [json.loads(line) for _, line in zip(range(BATCH_SIZE), lines, strict=False)]

    def batch(number: int) -> tuple[int, list[str], list[dict]]:
        transactions = [{**t, "transaction_id": f"load-{number}-{i}"} for i, t in enumerate(pool)]
        results = post(lambda_port, {"transactions": transactions})["results"]
        return number, [t["transaction_id"] for t in transactions], results

    seen: set[str] = set()
    sources: dict[str, int] = {}
    rss_after_warmup = None
    with ThreadPoolExecutor(CONCURRENCY) as executor:
        # Warm-up: the first 10 % of the load, then measure memory, then the rest.
        for rounds in (range(BATCHES // 10), range(BATCHES // 10, BATCHES)):
            for _number, sent_ids, results in executor.map(batch, rounds):
                assert [r["transaction_id"] for r in results] == sent_ids, "answers out of order or missing"
                for result in results:
                    assert result["transaction_id"] not in seen, "duplicated answer"
                    seen.add(result["transaction_id"])
                    sources[result["source"]] = sources.get(result["source"], 0) + 1
            if rss_after_warmup is None:
                rss_after_warmup = function_rss_kb()
    rss_at_end = function_rss_kb()
    print(f"\nload: {len(seen):,} transactions in {BATCHES} batches of {BATCH_SIZE}, {CONCURRENCY} concurrent "
          f"callers; answers by source {sources}; function RSS after warm-up {rss_after_warmup / 1024:.1f} MiB, "
          f"after {len(seen):,}: {rss_at_end / 1024:.1f} MiB")
    assert len(seen) == BATCHES * BATCH_SIZE
    assert sources == {"model": BATCHES * BATCH_SIZE}
    assert rss_at_end - rss_after_warmup < RSS_GROWTH_LIMIT_KB
