"""`sam build` of the real function, then the package check against provided.al2023."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
from conftest import INFRA, OFFLINE_ENV, TEMPLATE, VENV_BIN, run, tool

sys.path.insert(0, str(INFRA))
import check_package

BUILD_DIR = INFRA / ".aws-sam" / "build"
PROVIDED = json.loads((INFRA / "al2023-provided-libs.json").read_text())
LIMITS = {
    k: check_package.version_tuple(v)
    for k, v in PROVIDED["symbol_version_limits"].items()
}


def _build_env() -> dict:
    # cargo (rustup), and cargo-lambda + zig from the infra venv.
    cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
    path = os.pathsep.join(
        [str(VENV_BIN), os.path.dirname(cargo), os.environ.get("PATH", "")]
    )
    return {**os.environ, **OFFLINE_ENV, "PATH": path}


@pytest.fixture(scope="module")
def sam_build():
    layer = run([str(INFRA / "build-layer.sh"), "x86_64"])
    assert layer.returncode == 0, layer.stdout + layer.stderr
    # No --cached: sam hashes only CodeUri (functions/scorer), not the library crate it uses;
    # cargo's own incremental build in the workspace target/ makes a rebuild cheap instead.
    result = run(
        [
            tool("sam"),
            "build",
            "--template",
            str(TEMPLATE),
            "--build-dir",
            str(BUILD_DIR),
        ],
        env=_build_env(),
        timeout=3600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (BUILD_DIR / "ScorerFunction" / "bootstrap").is_file()
    return BUILD_DIR


def _max(elves: list[dict], prefix: str) -> tuple[int, ...]:
    versions = [
        check_package.parse_symbol_version(n)
        for e in elves
        for names in e["version_needs"].values()
        for n in names
    ]
    return max((v for p, v in filter(None, versions) if p == prefix), default=())


@pytest.mark.build
def test_package_fits_provided_al2023(sam_build, tmp_path, capsys):
    out = tmp_path / "check.json"
    result = run(
        [
            sys.executable,
            str(INFRA / "check_package.py"),
            "--build-dir",
            str(sam_build),
            "--arch",
            "x86_64",
            "--json",
            str(out),
        ]
    )
    with capsys.disabled():
        print("\n" + result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(out.read_text())
    assert findings["problems"] == []
    files = {f["relative"]: f for f in findings["files"]}
    assert set(files) == {"bootstrap", "lib/libonnxruntime.so.1.31.1"}
    assert {f["machine"] for f in files.values()} == {"EM_X86_64"}
    # glibc: nothing newer than Amazon Linux 2023's 2.34.
    assert () < _max(findings["files"], "GLIBC") <= (2, 34)
    # ONNX Runtime is C++: libstdc++ comes from the image, and its versions fit GCC 11's.
    ort = files["lib/libonnxruntime.so.1.31.1"]
    assert "libstdc++.so.6" in ort["needed"]
    assert "libstdc++.so.6" in findings["needed_from_image"]
    assert _max([ort], "GLIBCXX") <= LIMITS["GLIBCXX"]
    assert _max([ort], "CXXABI") <= LIMITS["CXXABI"]
    # Everything needed from the image is in the published provided.al2023 contents.
    provided = {so for pkg in PROVIDED["packages"].values() for so in pkg["sonames"]}
    assert set(findings["needed_from_image"]) <= provided
    assert findings["ort_dylib_path"] == "/opt/lib/libonnxruntime.so.1.31.1"
    assert findings["ort_dylib_file"].endswith(
        "/.build/ort-layer/lib/libonnxruntime.so.1.31.1"
    )
    # Far below Lambda's 250 MB (unzipped, function + layers).
    assert findings["total_unzipped"] < 100_000_000
    assert all(s["zipped"] < s["unzipped"] for s in findings["sizes"].values())


@pytest.mark.build
def test_package_check_rejects_the_wrong_architecture(sam_build):
    result = run(
        [
            sys.executable,
            str(INFRA / "check_package.py"),
            "--build-dir",
            str(sam_build),
            "--arch",
            "arm64",
        ]
    )
    assert result.returncode == 1
    assert "bootstrap is EM_X86_64, the function is arm64" in result.stdout


def test_arm64_onnxruntime_library_fits_provided_al2023(tmp_path):
    """The arm64 layer content (from the manylinux aarch64 wheel), checked without building."""
    out = tmp_path / "ort-layer-arm64"
    result = run([str(INFRA / "build-layer.sh"), "arm64", str(out)])
    assert result.returncode == 0, result.stdout + result.stderr
    info = check_package.inspect_elf(out / "lib" / "libonnxruntime.so.1.31.1")
    assert info["machine"] == "EM_AARCH64"
    provided = {so for pkg in PROVIDED["packages"].values() for so in pkg["sonames"]}
    assert set(info["needed"]) <= provided, set(info["needed"]) - provided
    assert "libstdc++.so.6" in info["needed"]
    for prefix in ("GLIBC", "GLIBCXX", "CXXABI", "GCC"):
        assert _max([info], prefix) <= LIMITS[prefix], prefix
    assert () < _max([info], "GLIBC")


def test_version_parsing():
    assert check_package.parse_symbol_version("GLIBC_2.34") == ("GLIBC", (2, 34))
    assert check_package.parse_symbol_version("GLIBCXX_3.4.29") == (
        "GLIBCXX",
        (3, 4, 29),
    )
    assert check_package.parse_symbol_version("GLIBC_PRIVATE") is None
    # Numeric, not lexical: 2.4 is older than 2.34.
    assert check_package.version_tuple("2.4") < check_package.version_tuple("2.34")
