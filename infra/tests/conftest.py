"""Shared fixtures: paths, an offline AWS environment, the tools, and a local moto server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parents[1]
REPO = INFRA.parent
TEMPLATE = INFRA / "template.yaml"
VENV_BIN = INFRA / ".venv" / "bin"
CHECKOV = INFRA / ".venv-checkov" / "bin" / "checkov"

# Nothing here may reach AWS: fake credentials, a fixed region, no telemetry.
OFFLINE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SAM_CLI_TELEMETRY": "0",
    "SAM_CLI_DISABLE_UPDATE_CHECK": "1",
}


@pytest.fixture(scope="session", autouse=True)
def offline_aws():
    saved = {
        k: os.environ.get(k) for k in [*OFFLINE_ENV, "AWS_PROFILE", "AWS_ENDPOINT_URL"]
    }
    os.environ.update(OFFLINE_ENV)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def tool(name: str) -> str:
    """A tool from the infra venv (where test.sh installs the pinned versions)."""
    path = VENV_BIN / name
    assert path.exists(), (
        f"{path} is missing: run infra/test.sh (it installs the tools)"
    )
    return str(path)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("cwd", INFRA)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("env", {**os.environ, **OFFLINE_ENV})
    return subprocess.run(cmd, check=False, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """moto's server on 127.0.0.1 with the CloudFormation types moto lacks (moto_cfn_server.py)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(INFRA / "tests" / "moto_cfn_server.py"),
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **OFFLINE_ENV},
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start:\n{log.read_text()}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
