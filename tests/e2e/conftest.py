"""Fixtures for the end-to-end tests: a real local S3 (moto) holding the bundled artifact, and
the Lambda function running under `cargo lambda watch` with its model in that S3."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "models" / "default"
FUNCTION = "fraudflow-scorer"
BUCKET = "fraudflow-models"
PREFIX = "e2e/v1/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def tool(name: str) -> str:
    venv = REPO / ".venv" / "bin" / name
    found = str(venv) if venv.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make test`, which installs it into .venv")
    return found


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
        # No instance metadata service here: don't let the SDK wait for one.
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30, process)
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, **_creds())
        s3.create_bucket(Bucket=BUCKET)
        for name in ("manifest.json", "model.onnx"):
            s3.upload_file(str(BUNDLED / name), BUCKET, PREFIX + name)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


def _creds() -> dict[str, str]:
    return {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


@pytest.fixture(scope="session")
def lambda_port(s3_endpoint: str) -> Iterator[int]:
    port = free_port()
    env_vars = {
        **aws_env(s3_endpoint),
        "MODEL_URI": f"s3://{BUCKET}/{PREFIX}",
        "ORT_DYLIB_PATH": os.environ["ORT_DYLIB_PATH"],
        "FRAUDFLOW_DEADLINE_MS": "5000",
    }
    args = [tool("cargo-lambda"), "lambda", "watch", "--invoke-address", "127.0.0.1",
            "--invoke-port", str(port), "--ignore-changes", "--quiet"]
    for key, value in env_vars.items():
        args += ["--env-var", f"{key}={value}"]
    log = open(REPO / "target" / "e2e-lambda-watch.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 120, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def invoke_cli(port: int, data_file: Path) -> dict:
    """`cargo lambda invoke`, exactly as the README shows it."""
    result = subprocess.run(
        [tool("cargo-lambda"), "lambda", "invoke", FUNCTION, "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
         "--data-file", str(data_file), "--output-format", "json"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, f"cargo lambda invoke failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)
