"""End to end: the Lambda under `cargo lambda watch`, its model fetched from a real local S3,
answering real test-week transactions."""

from __future__ import annotations

import gzip
import json
import urllib.request
from pathlib import Path

from conftest import BUNDLED, FUNCTION, REPO, invoke_cli

EVENTS = REPO / "events"
SAMPLES = REPO / "samples" / "test-days.jsonl.gz"


def manifest() -> dict:
    return json.loads((BUNDLED / "manifest.json").read_text())


def golden_cases() -> list[dict]:
    return json.loads((BUNDLED / "golden.json").read_text())["cases"]


def post(port: int, payload: object) -> object:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/2015-03-31/functions/{FUNCTION}/invocations",
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def test_the_example_event_gets_the_golden_answer_from_the_model(lambda_port: int) -> None:
    event = json.loads((EVENTS / "direct-single.json").read_text())
    case = next(c for c in golden_cases() if c["transaction"]["transaction_id"] == event["transaction_id"])
    answer = invoke_cli(lambda_port, EVENTS / "direct-single.json")
    assert answer["transaction_id"] == event["transaction_id"]
    assert answer["source"] == "model", answer
    assert answer["fallback_reason"] is None
    assert answer["model_version"] == manifest()["model_version"]
    assert abs(answer["fraud_probability"] - case["expected"]["fraud_probability"]) <= 1e-5
    expected_ll = case["expected"]["log_likelihood"]
    assert abs(answer["log_likelihood"] - expected_ll) <= 1e-4 * max(1.0, abs(expected_ll))
    assert answer["risk_level"] == case["expected"]["risk_level"]


def test_the_example_batch_answers_every_item_in_order(lambda_port: int) -> None:
    batch = json.loads((EVENTS / "direct-batch.json").read_text())
    response = invoke_cli(lambda_port, EVENTS / "direct-batch.json")
    results = response["results"]
    assert len(results) == len(batch["transactions"])
    for sent, got in zip(batch["transactions"], results, strict=True):
        assert got["transaction_id"] == sent.get("transaction_id")
    errors = [r for r in results if "error" in r]
    assert [e["error"]["field"] for e in errors] == ["amount"]
    assert errors[0]["error"]["message"] == "amount must be a finite number >= 0, got -5"
    assert all(r["source"] == "model" for r in results if "error" not in r)


def test_a_thousand_real_transactions_all_come_back_from_the_model(lambda_port: int) -> None:
    with gzip.open(SAMPLES, "rt") as lines:
        transactions = [json.loads(next(lines)) for _ in range(1000)]
    results = post(lambda_port, {"transactions": transactions})["results"]
    assert len(results) == 1000
    assert [r["transaction_id"] for r in results] == [t["transaction_id"] for t in transactions]
    assert {r["source"] for r in results} == {"model"}
    assert all(0.0 <= r["fraud_probability"] <= 1.0 for r in results)
    frauds = [r["fraud_probability"] for r, t in zip(results, transactions, strict=True) if t["label"]["fraud"]]
    legit = [r["fraud_probability"] for r, t in zip(results, transactions, strict=True) if not t["label"]["fraud"]]
    assert frauds, "the first 1,000 sample transactions hold frauds"
    # The model ranks the known frauds of this slice well above the legitimate payments.
    assert sum(frauds) / len(frauds) > 10 * (sum(legit) / len(legit))


def test_an_unusable_request_gets_an_error_body(lambda_port: int) -> None:
    assert post(lambda_port, [1, 2]) == {
        "error": {"code": "invalid_request",
                  "message": "expected a transaction object or {\"transactions\": [...]}, got an array"}
    }


def test_events_are_files_in_the_repo() -> None:
    for name in ("direct-single.json", "direct-batch.json"):
        assert (EVENTS / name).is_file(), name
    assert Path(SAMPLES).is_file()
