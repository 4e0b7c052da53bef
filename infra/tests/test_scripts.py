"""The deploy scripts offline: prerequisite messages, and their AWS steps against moto."""

from __future__ import annotations

import hashlib
import json
import os

import boto3
import pytest
from conftest import INFRA, OFFLINE_ENV, run
from test_moto_deploy import deploy, teardown

HELPER = [
    str(INFRA / ".venv" / "bin" / "python"),
    str(INFRA / "scripts" / "aws_helper.py"),
]


def make_artifact(folder, model: bytes, version="2026-12-03-a1b2c3", sha=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    (folder / "golden.json").write_text("[]")
    manifest = {
        "format_version": 1,
        "model_version": version,
        "model": {
            "file": "model.onnx",
            "sha256": sha or hashlib.sha256(model).hexdigest(),
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_deploy_lists_every_missing_artifact_file(tmp_path):
    result = run([str(INFRA / "deploy.sh"), "--model", str(tmp_path)])
    assert result.returncode == 2
    for name in ("manifest.json", "model.onnx", "golden.json"):
        assert f"model artifact file {tmp_path}/{name}" in result.stderr


def test_scripts_say_when_aws_is_not_configured(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    result = run([str(INFRA / "teardown.sh"), "--yes"], env=env)
    assert result.returncode == 2
    assert "Missing prerequisites" in result.stderr and "no AWS region" in result.stderr


def test_publish_model_needs_an_artifact_folder():
    result = run([str(INFRA / "publish-model.sh")])
    assert result.returncode == 2 and "ARTIFACT_DIR" in result.stdout


def test_artifact_prefix_and_checks(tmp_path):
    good = make_artifact(tmp_path / "good", b"onnx-bytes")
    sha8 = hashlib.sha256(b"onnx-bytes").hexdigest()[:8]
    result = run([*HELPER, "artifact-prefix", str(good)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"models/2026-12-03-a1b2c3-{sha8}/"
    bad = make_artifact(tmp_path / "bad", b"onnx-bytes", sha="0" * 64)
    result = run([*HELPER, "artifact-prefix", str(bad)])
    assert result.returncode == 1 and "the manifest says 000" in result.stderr


def test_version_key_changes_with_inputs(tmp_path):
    f = tmp_path / "bootstrap"
    f.write_bytes(b"one")
    key = lambda *params: run(
        [*HELPER, "version-key", str(f), "--", *params]
    ).stdout.strip()
    a = key("ModelPrefix=models/a/", "Architecture=x86_64")
    assert len(a) == 16 and a.isalnum()
    assert a == key(
        "Architecture=x86_64", "ModelPrefix=models/a/"
    )  # order does not matter
    assert a != key("ModelPrefix=models/b/", "Architecture=x86_64")
    f.write_bytes(b"two")
    assert a != key("ModelPrefix=models/a/", "Architecture=x86_64")


@pytest.fixture
def moto_env(moto_endpoint):
    return {
        **os.environ,
        **OFFLINE_ENV,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "FRAUDFLOW_POLL_SECONDS": "0.2",
    }


def test_upload_never_overwrites_and_teardown_empties_the_bucket(
    moto_env, moto_endpoint, tmp_path
):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="fraudflow-upload-test")
    s3.put_bucket_versioning(
        Bucket="fraudflow-upload-test", VersioningConfiguration={"Status": "Enabled"}
    )
    art = make_artifact(tmp_path / "a", b"model-a")
    upload = [
        *HELPER,
        "upload-artifact",
        str(art),
        "fraudflow-upload-test",
        "models/x/",
    ]
    first = run(upload, env=moto_env)
    assert first.returncode == 0, first.stderr
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket="fraudflow-upload-test")["Contents"]
    ]
    assert sorted(keys) == [
        "models/x/golden.json",
        "models/x/manifest.json",
        "models/x/model.onnx",
    ]
    again = run(upload, env=moto_env)
    assert again.returncode == 0 and again.stdout.count("already uploaded") == 3
    other = make_artifact(tmp_path / "b", b"model-b")
    clash = run(
        [*HELPER, "upload-artifact", str(other), "fraudflow-upload-test", "models/x/"],
        env=moto_env,
    )
    assert clash.returncode == 1 and "never overwritten" in clash.stderr
    assert (
        s3.get_object(Bucket="fraudflow-upload-test", Key="models/x/model.onnx")[
            "Body"
        ].read()
        == b"model-a"
    )

    s3.delete_object(
        Bucket="fraudflow-upload-test", Key="models/x/golden.json"
    )  # a delete marker
    emptied = run([*HELPER, "empty-bucket", "fraudflow-upload-test"], env=moto_env)
    assert emptied.returncode == 0, emptied.stderr
    versions = s3.list_object_versions(Bucket="fraudflow-upload-test")
    assert (
        versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    )
    s3.delete_bucket(Bucket="fraudflow-upload-test")  # possible only when empty


def test_publish_model_updates_the_stack(moto_env, moto_endpoint):
    def make(service):
        return boto3.client(
            service, endpoint_url=moto_endpoint, region_name="us-east-1"
        )

    # With AlarmEmail: moto's stack update trips over a resource whose condition is false.
    deploy(
        make,
        "fraudflow-publish",
        {
            "ModelPrefix": "models/one/",
            "VersionKey": "1111111111aa",
            "AlarmEmail": "ops@example.com",
        },
    )
    try:
        result = run(
            [*HELPER, "publish-model", "fraudflow-publish", "models/two/"], env=moto_env
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "now serves models/two/" in result.stdout
        stack = make("cloudformation").describe_stacks(StackName="fraudflow-publish")[
            "Stacks"
        ][0]
        params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
        assert params["ModelPrefix"] == "models/two/"
        assert (
            params["VersionKey"] != "1111111111aa" and len(params["VersionKey"]) == 16
        )
        env = make("lambda").get_function_configuration(
            FunctionName="fraudflow-publish-scorer"
        )["Environment"]["Variables"]
        assert env["MODEL_URI"].endswith("/models/two/")
    finally:
        teardown(make, "fraudflow-publish")
