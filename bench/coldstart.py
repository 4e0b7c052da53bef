"""Cold start, warm latency, throughput and memory of fraudflow-scorer beside a Python peer.

Both functions run in the same run, against the same local S3 (moto_server on a free port, holding
models/default) and the same Lambda Runtime API emulator (bench/runtime_api.py), and get the same
events:

- cold start: process spawn -> first answer through the Runtime API (events/direct-single.json),
  the model fetched from S3 at init. Warm page cache: median of --starts starts after one
  discarded start. Cold page cache: before each of --cold-starts starts, the files the process
  had open or mapped (the binary, libonnxruntime.so, libc...; for Python the interpreter and
  every loaded module's package) are evicted with posix_fadvise(POSIX_FADV_DONTNEED). Pages that
  other live processes map stay cached: the figure is a lower bound of a truly cold host;
- warm latency: --latency invocations of one transaction after --warmup, timed at the emulator
  (event handed out -> response received): median and p99; --empty invocations of an empty batch
  give the floor that the runtime client and the emulator add to every figure;
- throughput: --batches invocations of --batch transactions;
- memory: peak RSS (VmHWM) of each process after all of the above (100,096+ transactions by
  default);
- every answer is checked (count in = count out, source "model") and the Rust and Python
  fraud_probability / log_likelihood are compared transaction by transaction.

    .venv/bin/python bench/coldstart.py [--quick] [--markdown out/bench-peer.md]

needs target/release/fraudflow-scorer (`cargo build --release -p fraudflow-scorer`), the .venv of
`make setup-dev` (moto, boto3, onnxruntime, awslambdaric) and ORT_DYLIB_PATH (found in .venv if
unset).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_api import Invocation, RuntimeApi

REPO = Path(__file__).resolve().parents[1]
BUCKET = "fraudflow-bench"
PREFIX = "bench/v1/"
FIRST_EVENT = REPO / "events" / "direct-single.json"
SAMPLES = REPO / "samples" / "test-days.jsonl.gz"
TARGET_COLD_MS = 60.0
TARGET_RATIO = {"cold": 10.0, "latency": 10.0, "rss": 3.0}
# Rows starting with "- " detail the row above them and are not part of the sum.
FETCH_ROW = "S3 fetch + sha256 verify (Rust: ONNX Runtime library load in parallel)"
PHASES = ["process start (exec -> main or handler module)", "imports (numpy, onnxruntime, boto3)",
          "config, logging, AWS SDK set-up", FETCH_ROW, "- S3 fetch (manifest + model)", "- sha256 verify",
          "- ONNX Runtime library load", "session build", "warm-up row", "after init -> first /next",
          "first invocation", "total"]


# ---------------------------------------------------------------------------------------------
# Set-up: tools, S3, events


def venv_tool(name: str) -> str:
    for candidate in (Path(sys.executable).parent / name, REPO / ".venv" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        sys.exit(f"{name} not found: run `make setup-dev`")
    return found


def ort_dylib() -> str:
    path = os.environ.get("ORT_DYLIB_PATH")
    if path:
        return path
    found = sorted((REPO / ".venv" / "lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))
    if not found:
        sys.exit("ORT_DYLIB_PATH is not set and no onnxruntime wheel is in .venv: run `make setup`")
    return str(found[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3(model_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"moto_server did not start on port {port}")
        time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for name in ("manifest.json", "model.onnx"):
        s3.upload_file(str(model_dir / name), BUCKET, PREFIX + name)
    return process, endpoint


def load_transactions(limit: int) -> list[dict]:
    out = []
    with gzip.open(SAMPLES, "rt") as lines:
        for line in lines:
            tx = json.loads(line)
            tx.pop("label", None)
            out.append(tx)
            if len(out) == limit:
                break
    return out


# ---------------------------------------------------------------------------------------------
# The two functions


@dataclass
class Function:
    key: str
    title: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    files: set[str] = field(default_factory=set)  # what to evict for a cold page cache


def functions(scorer: Path, endpoint: str, api: str, dylib: str) -> list[Function]:
    aws = {
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
        "MODEL_URI": f"s3://{BUCKET}/{PREFIX}", "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": "fraudflow-bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fraudflow-bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAUDFLOW_", "RUST_LOG"))}
    rust = {**base, **aws, "ORT_DYLIB_PATH": dylib, "FRAUDFLOW_ORT_THREADS": "1", "AWS_LAMBDA_LOG_FORMAT": "JSON",
            # Lambda's deadline is 30 s away; the per-request budget (default 200 ms) is raised
            # too so a stall of this shared machine cannot turn an answer into the heuristic's.
            "FRAUDFLOW_DEADLINE_MS": "5000"}
    python = {**base, **aws, "PYTHONUNBUFFERED": "1"}
    return [
        Function("rust", "fraudflow (Rust)", [str(scorer)], REPO, rust, {str(scorer), dylib}),
        Function("python", "Python peer", [sys.executable, "-m", "awslambdaric", "handler.lambda_handler"],
                 REPO / "bench" / "peer", python),
    ]


@dataclass
class Start:
    spawn: float
    first_next: float
    handed: float
    done: float
    log: str
    hwm_kb: int = 0
    rss_kb: int = 0

    @property
    def total_ms(self) -> float:
        return (self.done - self.spawn) * 1e3


class Running:
    """One function process, its stdout in a file."""

    def __init__(self, fn: Function, api: RuntimeApi, logdir: Path, name: str, extra_env: dict | None = None):
        self.api = api
        self.log_path = logdir / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        api.start_generation()
        self.spawn = time.monotonic()
        self.process = subprocess.Popen(fn.argv, cwd=fn.cwd, env={**fn.env, **(extra_env or {})},
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, payloads: list[bytes], timeout: float) -> list[Invocation]:
        invocations = self.api.submit(payloads)
        try:
            self.api.wait(invocations, timeout, self.alive)
        except (RuntimeError, TimeoutError) as err:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{self.log_path.name}: {err}\n--- log tail ---\n{tail}") from err
        return invocations

    def status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def mapped_files(self) -> set[str]:
        files = set()
        for line in Path(f"/proc/{self.process.pid}/maps").read_text().splitlines():
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/") and os.path.isfile(parts[5]):
                files.add(parts[5])
        return files

    def stop(self) -> str:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.log.close()
        return self.log_path.read_text(errors="replace")


def cold_start(fn: Function, api: RuntimeApi, logdir: Path, name: str, first_event: bytes,
               extra_env: dict | None = None, on_ready=None) -> Start:
    run = Running(fn, api, logdir, name, extra_env)
    (first,) = run.invoke([first_event], 120)
    check_answers([first], [1])
    start = Start(run.spawn, api.generation.first_next or first.handed, first.handed, first.done, "")
    start.hwm_kb, start.rss_kb = run.status_kb("VmHWM"), run.status_kb("VmRSS")
    if on_ready:
        on_ready(run)
    start.log = run.stop()
    return start


# ---------------------------------------------------------------------------------------------
# Page cache


def evict(paths: set[str]) -> int:
    """posix_fadvise(DONTNEED) on every file; returns the bytes covered."""
    total = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            total += os.fstat(fd).st_size
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return total


def cached_bytes(paths: set[str]) -> int | None:
    """Bytes of these files still in the page cache (util-linux fincore), None without it."""
    fincore = shutil.which("fincore")
    if not fincore:
        return None
    total, files = 0, sorted(paths)
    for i in range(0, len(files), 400):
        out = subprocess.run([fincore, "--bytes", "--noheadings", "--raw", "--output", "RES", *files[i:i + 400]],
                             capture_output=True, text=True, check=False).stdout
        total += sum(int(x) for x in out.split() if x.isdigit())
    return total


def python_files(module_list: Path) -> set[str]:
    """Every file of every loaded module's package (data files too: botocore's JSON models)."""
    roots = sorted({os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)}, key=len, reverse=True)
    files: set[str] = set()
    for path in json.loads(module_list.read_text()):
        real = os.path.realpath(path)
        root = next((r for r in roots if real.startswith(r + os.sep)), None)
        if root is None or not os.path.isfile(real):
            if os.path.isfile(real):
                files.add(real)
            continue
        top = os.path.join(root, os.path.relpath(real, root).split(os.sep)[0])
        if os.path.isdir(top) and not top.endswith("__pycache__") and top != root:
            for folder, _, names in os.walk(top):
                files.update(os.path.join(folder, n) for n in names)
        else:
            files.add(real)
    return files


# ---------------------------------------------------------------------------------------------
# Checks and figures


def check_answers(invocations: list[Invocation], counts: list[int]) -> list[dict]:
    """Every invocation answered, count in = count out, every answer from the model."""
    answers = []
    for inv, count in zip(invocations, counts, strict=True):
        if inv.error is not None or inv.response is None:
            raise SystemExit(f"invocation {inv.request_id} failed: {(inv.error or b'').decode(errors='replace')}")
        body = json.loads(inv.response)
        items = body.get("results", [body])
        if len(items) != count:
            raise SystemExit(f"invocation {inv.request_id}: {count} transactions in, {len(items)} answers out")
        for item in items:
            if item.get("source") != "model":
                raise SystemExit(f"invocation {inv.request_id}: an answer not from the model: {item}")
        answers.extend(items)
    return answers


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def log_fields(log: str, message: str) -> dict:
    """The fields of the Rust JSON log line with this message."""
    for line in log.splitlines():
        if line.startswith("{") and f'"{message}"' in line:
            record = json.loads(line)
            fields = record.get("fields", record)
            if fields.get("message") == message:
                return fields
    raise SystemExit(f"no {message!r} log line in:\n{log[-2000:]}")


def peer_init(log: str) -> dict:
    for line in log.splitlines():
        if line.startswith("BENCH_PEER_INIT "):
            return json.loads(line.removeprefix("BENCH_PEER_INIT "))
    raise SystemExit(f"no BENCH_PEER_INIT line in:\n{log[-2000:]}")


def split(fn: Function, start: Start) -> dict[str, float]:
    """Where a cold start's time went, in ms (the phases not starting with "- " sum to the total)."""
    to_next = (start.first_next - start.spawn) * 1e3
    first = (start.done - start.handed) * 1e3
    if fn.key == "rust":
        loaded, init = log_fields(start.log, "model loaded"), log_fields(start.log, "init done")
        phases = {k: float(loaded[k + "_ms"]) for k in ("fetch", "verify", "library", "session_build", "warmup")}
        # The library loads while the artifact is fetched and verified: that stretch costs the
        # longer of the two.
        overlapped = max(phases["fetch"] + phases["verify"], phases["library"])
        serial = overlapped + phases["session_build"] + phases["warmup"]
        return {"process start (exec -> main or handler module)": to_next - init["init_ms"],
                "config, logging, AWS SDK set-up": init["init_ms"] - serial,
                FETCH_ROW: overlapped,
                "- S3 fetch (manifest + model)": phases["fetch"],
                "- sha256 verify": phases["verify"],
                "- ONNX Runtime library load": phases["library"],
                "session build": phases["session_build"],
                "warm-up row": phases["warmup"], "first invocation": first, "total": start.total_ms}
    t = peer_init(start.log)
    return {"process start (exec -> main or handler module)": (t["t_start"] - start.spawn) * 1e3,
            "imports (numpy, onnxruntime, boto3)": (t["t_imported"] - t["t_start"]) * 1e3,
            "config, logging, AWS SDK set-up": t["client_ms"],
            FETCH_ROW: t["fetch_ms"] + t["verify_ms"],
            "- S3 fetch (manifest + model)": t["fetch_ms"], "- sha256 verify": t["verify_ms"],
            "session build": t["session_build_ms"], "warm-up row": t["warmup_ms"],
            "after init -> first /next": (start.first_next - t["t_ready"]) * 1e3,
            "first invocation": first, "total": start.total_ms}


def median_split(fn: Function, starts: list[Start]) -> dict[str, float]:
    splits = [split(fn, s) for s in starts]
    return {k: statistics.median(s[k] for s in splits) for k in splits[0]}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} CPUs ({model}), load average {load:.1f} at the end, Linux {platform.release()}"


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (fewer starts and invocations)")
    parser.add_argument("--scorer", type=Path, default=REPO / "target" / "release" / "fraudflow-scorer")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--starts", type=int, default=7, help="warm page cache cold starts (median)")
    parser.add_argument("--cold-starts", type=int, default=3, help="cold page cache starts (median); 0 skips")
    parser.add_argument("--warmup", type=int, default=200, help="batch-1 invocations before timing")
    parser.add_argument("--latency", type=int, default=2000, help="timed batch-1 invocations")
    parser.add_argument("--empty", type=int, default=1000,
                        help="timed empty-batch invocations: the floor of runtime client + emulator")
    parser.add_argument("--batch", type=int, default=256, help="transactions per batch invocation")
    parser.add_argument("--batches", type=int, default=391, help="batch invocations (391 x 256 = 100,096)")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    if args.quick:
        args.starts, args.cold_starts, args.warmup, args.latency, args.empty, args.batches = 3, 1, 50, 300, 200, 40
    if not args.scorer.exists():
        sys.exit(f"{args.scorer} not found: cargo build --release -p fraudflow-scorer")

    txs = load_transactions(max(args.warmup + args.latency, args.batch * 4))
    first_event = FIRST_EVENT.read_bytes()
    singles = [json.dumps(tx).encode() for tx in txs[:args.warmup + args.latency]]
    batches = [json.dumps({"transactions": [txs[(i * args.batch + j) % len(txs)] for j in range(args.batch)]}).encode()
               for i in range(min(args.batches, 4))]
    batch_payloads = [batches[i % len(batches)] for i in range(args.batches)]
    scored = args.warmup + args.latency + args.batches * args.batch

    s3_process, endpoint = start_s3(args.model)
    api = RuntimeApi()
    logdir = Path(tempfile.mkdtemp(prefix="fraudflow-bench-"))
    results: dict[str, dict] = {}
    answers: dict[str, list[dict]] = {}
    try:
        for fn in functions(args.scorer, endpoint, api.address, ort_dylib()):
            print(f"{fn.title}: {args.starts} cold starts (warm page cache)...", file=sys.stderr, flush=True)
            module_list = logdir / f"{fn.key}-modules.json"

            def remember_files(run: Running, fn=fn) -> None:
                fn.files |= run.mapped_files()

            cold_start(fn, api, logdir, f"{fn.key}-discarded", first_event, {"FRAUDFLOW_BENCH_FILES": str(module_list)},
                       remember_files)
            if module_list.exists():
                fn.files |= python_files(module_list)
            warm = [cold_start(fn, api, logdir, f"{fn.key}-warm-{i}", first_event) for i in range(args.starts)]
            cold, evicted, still = [], 0, []
            for i in range(args.cold_starts):
                print(f"{fn.title}: cold page cache start {i + 1}/{args.cold_starts}...", file=sys.stderr, flush=True)
                evicted = evict(fn.files)
                still.append(cached_bytes(fn.files))
                cold.append(cold_start(fn, api, logdir, f"{fn.key}-cold-{i}", first_event))

            print(f"{fn.title}: {args.warmup} + {args.latency} invocations of 1, {args.batches} of {args.batch}...",
                  file=sys.stderr, flush=True)
            run = Running(fn, api, logdir, f"{fn.key}-load")
            check_answers(run.invoke([first_event], 120), [1])
            check_answers(run.invoke(singles[:args.warmup], 600), [1] * args.warmup)
            timed = run.invoke(singles[args.warmup:], 1200)
            single_answers = check_answers(timed, [1] * args.latency)
            empty = run.invoke([b'{"transactions": []}'] * args.empty, 600)
            check_answers(empty, [0] * args.empty)
            loaded = run.invoke(batch_payloads, 1800)
            batch_answers = check_answers(loaded, [args.batch] * args.batches)
            hwm, rss = run.status_kb("VmHWM"), run.status_kb("VmRSS")
            anon, filed = run.status_kb("RssAnon"), run.status_kb("RssFile")
            run.stop()

            answers[fn.key] = single_answers + batch_answers
            lat = [i.seconds * 1e6 for i in timed]
            batch_s = [i.seconds for i in loaded]
            results[fn.key] = {
                "title": fn.title,
                "cold_warm_cache_ms": statistics.median(s.total_ms for s in warm),
                "cold_warm_cache_all_ms": [round(s.total_ms, 2) for s in warm],
                "cold_cold_cache_ms": statistics.median(s.total_ms for s in cold) if cold else None,
                "cold_cold_cache_all_ms": [round(s.total_ms, 2) for s in cold],
                "evicted_mb": evicted / 2**20, "still_cached_mb": [None if b is None else b / 2**20 for b in still],
                "split_warm": median_split(fn, warm), "split_cold": median_split(fn, cold) if cold else None,
                "latency_median_us": statistics.median(lat), "latency_p99_us": percentile(lat, 99),
                "empty_median_us": statistics.median(i.seconds * 1e6 for i in empty),
                "batch_median_ms": statistics.median(batch_s) * 1e3,
                "batch_tps": args.batch * len(batch_s) / sum(batch_s),
                "rss_after_first_mb": statistics.median(s.hwm_kb for s in warm) / 1024,
                "peak_rss_mb": hwm / 1024, "rss_mb": rss / 1024,
                "rss_anon_mb": anon / 1024, "rss_file_mb": filed / 1024,
            }
    finally:
        api.close()
        s3_process.terminate()
        s3_process.wait(10)

    rust, py = answers["rust"], answers["python"]
    if len(rust) != len(py):
        sys.exit(f"answer counts differ: Rust {len(rust)}, Python {len(py)}")
    for a, b in zip(rust, py, strict=True):
        if a["transaction_id"] != b["transaction_id"]:
            sys.exit(f"answers out of order: {a['transaction_id']} vs {b['transaction_id']}")
    agreement = {
        "transactions": len(rust),
        "max_abs_diff_probability": max(abs(a["fraud_probability"] - b["fraud_probability"]) for a, b in zip(rust, py)),
        "max_abs_diff_log_likelihood": max(abs(a["log_likelihood"] - b["log_likelihood"]) for a, b in zip(rust, py)),
        "risk_level_mismatches": sum(a["risk_level"] != b["risk_level"] for a, b in zip(rust, py)),
        "top_reason_mismatches": sum([r["feature"] for r in a["reasons"][:1]] != [r["feature"] for r in b["reasons"][:1]]
                                     for a, b in zip(rust, py)),
    }
    report = render(results, agreement, args, scored)
    print(report)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "agreement": agreement, "machine": machine()}, indent=2))
    shutil.rmtree(logdir, ignore_errors=True)
    if agreement["max_abs_diff_probability"] > 1e-5:
        sys.exit("Rust and Python disagree by more than 1e-5 on fraud_probability")


def render(results: dict, agreement: dict, args, scored: int) -> str:
    r, p = results["rust"], results["python"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    def x(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f}x"

    def target(v: float | None, goal: float) -> str:
        return "" if v is None else f">= {goal:g}x: {'met' if v >= goal else 'missed'}"

    cold_ratio = ratio(p["cold_warm_cache_ms"], r["cold_warm_cache_ms"])
    lat_ratio = ratio(p["latency_median_us"], r["latency_median_us"])
    rss_ratio = ratio(p["peak_rss_mb"], r["peak_rss_mb"])
    ms = lambda v: "—" if v is None else f"{v:,.1f} ms"
    us = lambda v: f"{v:,.0f} µs"
    rows = [
        ("figure", "fraudflow (Rust)", "Python peer", "Rust advantage", "target"),
        ("---", "---", "---", "---", "---"),
        (f"cold start, warm page cache (median of {args.starts})", ms(r["cold_warm_cache_ms"]),
         ms(p["cold_warm_cache_ms"]), x(cold_ratio),
         f"Rust <= {TARGET_COLD_MS:g} ms: {'met' if r['cold_warm_cache_ms'] <= TARGET_COLD_MS else 'missed'}; "
         + target(cold_ratio, TARGET_RATIO["cold"])),
        (f"cold start, cold page cache (median of {args.cold_starts})", ms(r["cold_cold_cache_ms"]),
         ms(p["cold_cold_cache_ms"]), x(ratio(p["cold_cold_cache_ms"], r["cold_cold_cache_ms"])), ""),
        (f"warm latency, 1 transaction, median ({args.latency} invocations)", us(r["latency_median_us"]),
         us(p["latency_median_us"]), x(lat_ratio), target(lat_ratio, TARGET_RATIO["latency"])),
        ("warm latency, 1 transaction, p99", us(r["latency_p99_us"]), us(p["latency_p99_us"]),
         x(ratio(p["latency_p99_us"], r["latency_p99_us"])), ""),
        (f"empty batch, median ({args.empty} invocations): runtime client + emulator floor",
         us(r["empty_median_us"]), us(p["empty_median_us"]), x(ratio(p["empty_median_us"], r["empty_median_us"])),
         "in both latencies above"),
        (f"batch of {args.batch}: time per invocation (median)", ms(r["batch_median_ms"]), ms(p["batch_median_ms"]),
         x(ratio(p["batch_median_ms"], r["batch_median_ms"])), ""),
        (f"batch of {args.batch}: transactions/s ({args.batches} invocations)", f"{r['batch_tps']:,.0f}",
         f"{p['batch_tps']:,.0f}", x(ratio(r["batch_tps"], p["batch_tps"])), ""),
        ("RSS after the first answer (VmHWM)", f"{r['rss_after_first_mb']:.1f} MB", f"{p['rss_after_first_mb']:.1f} MB",
         x(ratio(p["rss_after_first_mb"], r["rss_after_first_mb"])), ""),
        (f"peak RSS after {scored:,} transactions (VmHWM)", f"{r['peak_rss_mb']:.1f} MB", f"{p['peak_rss_mb']:.1f} MB",
         x(rss_ratio), target(rss_ratio, TARGET_RATIO["rss"])),
    ]
    out = ["| " + " | ".join(row) + " |" for row in rows]
    out.append("")
    out.append("Cold-start split, median of each phase over the starts (ms; the phases of one start, less the "
               "'- ' rows that detail the row above them, sum to its total; the medians need not):")
    out.append("")
    out.append("| phase | Rust, warm cache | Rust, cold cache | Python, warm cache | Python, cold cache |")
    out.append("|---|---|---|---|---|")
    phases = [k for k in PHASES if k in r["split_warm"] or k in p["split_warm"]]
    cell = lambda d, k: "" if d is None or k not in d else f"{d[k]:.1f}"
    for k in phases:
        out.append(f"| {k} | {cell(r['split_warm'], k)} | {cell(r['split_cold'], k)} | {cell(p['split_warm'], k)} "
                   f"| {cell(p['split_cold'], k)} |")
    out.append("")
    for res in (r, p):
        still = [s for s in res["still_cached_mb"] if s is not None]
        if res["cold_cold_cache_all_ms"]:
            out.append(f"- {res['title']}: cold page cache = {res['evicted_mb']:.0f} MB of files evicted before each "
                       f"start ({max(still):.1f} MB of it still cached: pages other processes map)" if still else "")
        out.append(f"- {res['title']} cold starts (ms): warm cache {res['cold_warm_cache_all_ms']}, "
                   f"cold cache {res['cold_cold_cache_all_ms']}")
        out.append(f"- {res['title']} RSS at the end: {res['rss_mb']:.1f} MB = {res['rss_anon_mb']:.1f} MB anonymous "
                   f"(heap, arenas) + {res['rss_file_mb']:.1f} MB file-backed (code of the binary and libraries)")
    a = agreement
    out.append(f"- Answers checked: every invocation answered, count in = count out, every answer from the model. "
               f"Rust vs Python on the same {a['transactions']:,} transactions: max |Δ fraud_probability| "
               f"{a['max_abs_diff_probability']:.2e}, max |Δ log_likelihood| {a['max_abs_diff_log_likelihood']:.2e}, "
               f"{a['risk_level_mismatches']} risk-level and {a['top_reason_mismatches']} top-reason mismatches.")
    out.append(f"- Machine: {machine()}; Python {platform.python_version()}.")
    return "\n".join(out)


if __name__ == "__main__":
    main()
