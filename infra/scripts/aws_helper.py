#!/usr/bin/env python3
"""AWS steps of deploy.sh / publish-model.sh / teardown.sh (boto3, from the infra venv).

whoami                              account, caller and region, or what is missing
stack-status STACK                  the stack's status, or NONE
stack-output STACK KEY              an output of the stack
stack-param STACK KEY               a parameter value of the stack
artifact-prefix DIR                 models/<model_version>-<sha8>/ for an artifact folder
upload-artifact DIR BUCKET PREFIX   upload an artifact (manifest.json last); never overwrites
version-key FILE... -- K=V...       VersionKey: a hash of files and parameter values
publish-model STACK PREFIX          point the stack at PREFIX (new version, canary) and wait
empty-bucket BUCKET                 delete every object version (for teardown)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
)

ARTIFACT_FILES = (
    "model.onnx",
    "golden.json",
    "manifest.json",
)  # manifest last: readers start there


def die(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def session() -> boto3.session.Session:
    # boto3 reads AWS_DEFAULT_REGION and the config file; the AWS CLI and SDKs also honour AWS_REGION.
    return boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)


def cmd_whoami(_args: list[str]) -> None:
    s = session()
    problems = []
    if not s.region_name:
        problems.append("no AWS region: set AWS_REGION (or `region` in ~/.aws/config)")
    try:
        if s.region_name:
            me = s.client("sts").get_caller_identity()
            print(f"account {me['Account']} as {me['Arn']} in {s.region_name}")
    except (NoCredentialsError, ClientError) as e:
        problems.append(
            f"no usable AWS credentials ({e}): run `aws configure` or set AWS_PROFILE"
        )
    except NoRegionError:
        pass
    except BotoCoreError as e:
        problems.append(f"cannot reach AWS STS ({e})")
    if problems:
        die("\n".join(problems), 2)


def _stack(name: str) -> dict | None:
    try:
        return (
            session()
            .client("cloudformation")
            .describe_stacks(StackName=name)["Stacks"][0]
        )
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise


def cmd_stack_status(args: list[str]) -> None:
    stack = _stack(args[0])
    print(stack["StackStatus"] if stack else "NONE")


def cmd_stack_output(args: list[str]) -> None:
    stack = _stack(args[0]) or die(
        f"stack {args[0]} does not exist: run infra/deploy.sh first"
    )
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == args[1]:
            print(output["OutputValue"])
            return
    die(f"stack {args[0]} has no output {args[1]}")


def cmd_stack_param(args: list[str]) -> None:
    stack = _stack(args[0]) or die(f"stack {args[0]} does not exist")
    for p in stack.get("Parameters", []):
        if p["ParameterKey"] == args[1]:
            print(p["ParameterValue"])
            return
    die(f"stack {args[0]} has no parameter {args[1]}")


def read_artifact(folder: Path) -> dict:
    missing = [f for f in ARTIFACT_FILES if not (folder / f).is_file()]
    if missing:
        die(f"{folder} is not a model artifact: missing {', '.join(missing)}")
    manifest = json.loads((folder / "manifest.json").read_text())
    model = manifest.get("model", {})
    if model.get("file") != "model.onnx":
        die(
            f"{folder}/manifest.json names model file {model.get('file')!r}, expected 'model.onnx'"
        )
    digest = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    if digest != model.get("sha256"):
        die(
            f"{folder}/model.onnx has sha256 {digest}, the manifest says {model.get('sha256')}"
        )
    return manifest


def artifact_prefix(folder: Path) -> str:
    manifest = read_artifact(folder)
    version = re.sub(r"[^A-Za-z0-9._-]", "-", str(manifest["model_version"]))
    return f"models/{version}-{manifest['model']['sha256'][:8]}/"


def cmd_artifact_prefix(args: list[str]) -> None:
    print(artifact_prefix(Path(args[0])))


def cmd_upload_artifact(args: list[str]) -> None:
    folder, bucket, prefix = Path(args[0]), args[1], args[2]
    read_artifact(folder)
    s3 = session().client("s3")
    for name in ARTIFACT_FILES:
        body = (folder / name).read_bytes()
        key = prefix + name
        try:
            existing = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
            existing = None
        if existing == body:
            print(f"  s3://{bucket}/{key} already uploaded")
            continue
        if existing is not None:
            die(
                f"s3://{bucket}/{key} exists with other content: artifacts are never overwritten"
            )
        content_type = (
            "application/json" if name.endswith(".json") else "application/octet-stream"
        )
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        print(f"  uploaded s3://{bucket}/{key} ({len(body)} B)")


def version_key(files: list[str], params: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(hashlib.sha256(Path(f).read_bytes()).digest())
    for p in sorted(params):
        h.update(p.encode() + b"\0")
    return h.hexdigest()[:16]


def cmd_version_key(args: list[str]) -> None:
    split = args.index("--") if "--" in args else len(args)
    print(version_key(args[:split], args[split + 1 :]))


def cmd_publish_model(args: list[str]) -> None:
    stack_name, prefix = args[0], args[1]
    stack = _stack(stack_name) or die(
        f"stack {stack_name} does not exist: run infra/deploy.sh first"
    )
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    if params.get("ModelPrefix") == prefix:
        print(f"{stack_name} already serves {prefix}")
        return
    new_key = hashlib.sha256(f"{params['VersionKey']}|{prefix}".encode()).hexdigest()[
        :16
    ]
    cf = session().client("cloudformation")
    cf.update_stack(
        StackName=stack_name,
        UsePreviousTemplate=True,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        # Every other parameter keeps its deployed value (none is NoEcho).
        Parameters=[
            {
                "ParameterKey": k,
                "ParameterValue": {"ModelPrefix": prefix, "VersionKey": new_key}.get(
                    k, v
                ),
            }
            for k, v in params.items()
        ],
    )
    print(
        f"updating {stack_name}: ModelPrefix {params.get('ModelPrefix')} -> {prefix}, new version "
        f"through the {params.get('DeploymentType')} deployment (alarms roll it back)"
    )
    started = time.time()
    poll = float(os.environ.get("FRAUDFLOW_POLL_SECONDS", "15"))
    while True:
        time.sleep(poll)
        status = cf.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        print(f"  {int(time.time() - started)}s {status}")
        if status == "UPDATE_COMPLETE":
            print(f"{stack_name} now serves {prefix}")
            return
        if not status.endswith("_IN_PROGRESS"):
            reasons = [
                f"  {e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                for e in cf.describe_stack_events(StackName=stack_name)["StackEvents"][
                    :30
                ]
                if "FAILED" in e["ResourceStatus"] and e.get("ResourceStatusReason")
            ]
            die(
                f"{stack_name}: {status} - the new model was rolled back, "
                f"{params.get('ModelPrefix')} still serves.\n" + "\n".join(reasons)
            )


def cmd_empty_bucket(args: list[str]) -> None:
    bucket = session().resource("s3").Bucket(args[0])
    try:
        deleted = bucket.object_versions.delete()
    except ClientError as e:
        if e.response["Error"]["Code"] == "NoSuchBucket":
            return
        raise
    count = sum(len(batch.get("Deleted", [])) for batch in deleted)
    print(f"  emptied s3://{args[0]} ({count} object versions)")


COMMANDS = {
    "whoami": cmd_whoami,
    "stack-status": cmd_stack_status,
    "stack-output": cmd_stack_output,
    "stack-param": cmd_stack_param,
    "artifact-prefix": cmd_artifact_prefix,
    "upload-artifact": cmd_upload_artifact,
    "version-key": cmd_version_key,
    "publish-model": cmd_publish_model,
    "empty-bucket": cmd_empty_bucket,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        die(__doc__, 2)
    COMMANDS[sys.argv[1]](sys.argv[2:])
