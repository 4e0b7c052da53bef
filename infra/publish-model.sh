#!/usr/bin/env bash
# Publish a new model artifact to a deployed fraudflow stack (see infra/README.md).
#
#   infra/publish-model.sh ARTIFACT_DIR
#
# Checks the artifact (manifest.json, model.onnx with the manifest's sha256, golden.json), uploads
# it to a new prefix models/<model_version>-<sha8>/ of the stack's model bucket (never overwriting),
# then updates the stack's ModelPrefix (same template, same code): a new function version that
# CodeDeploy shifts traffic to by the stack's DeploymentType (canary by default), rolled back
# automatically if the error, p99-duration, fallback-rate or drift alarm fires. Waits for the end.
set -euo pipefail
source "$(dirname "$0")/scripts/common.sh"

[ $# -eq 1 ] && [ "$1" != -h ] && [ "$1" != --help ] || { sed -n '2,11p' "$0"; exit 2; }
MODEL_DIR="$1"

say "Prerequisites"
need python3 "install Python 3.9+ with venv (Debian: apt-get install python3 python3-venv)"
check_missing
[ -d "$MODEL_DIR" ] || die "publish-model.sh: $MODEL_DIR is not a folder"
setup_tools
check_aws
STATUS="$(aws_helper stack-status "$STACK")"
[ "$STATUS" != NONE ] || die "stack $STACK does not exist in $AWS_REGION: run infra/deploy.sh first"
case "$STATUS" in *_IN_PROGRESS) die "stack $STACK is busy ($STATUS): wait for it to finish" ;; esac

PREFIX="$(aws_helper artifact-prefix "$MODEL_DIR")"
BUCKET="$(aws_helper stack-output "$STACK" ModelBucketName)"
say "Upload $MODEL_DIR to s3://$BUCKET/$PREFIX"
aws_helper upload-artifact "$MODEL_DIR" "$BUCKET" "$PREFIX"

say "Point $STACK at $PREFIX"
aws_helper publish-model "$STACK" "$PREFIX"
