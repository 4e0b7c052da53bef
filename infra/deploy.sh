#!/usr/bin/env bash
# Build and deploy fraudflow to AWS with SAM (see infra/README.md, "Deploy to AWS").
#
#   infra/deploy.sh [--arch x86_64|arm64] [--model DIR] [--alarm-email ADDRESS]
#                   [--reserved-concurrency N] [--deployment-type TYPE]
#
# 1. checks the prerequisites (python3, cargo, AWS credentials and region, the model artifact);
# 2. builds the ONNX Runtime layer for the architecture and the function (`sam build`, cargo-lambda);
# 3. checks the package against provided.al2023 (glibc, shared libraries, size);
# 4. `sam deploy` with infra/samconfig.toml (stack $FRAUDFLOW_STACK, default "fraudflow");
# 5. uploads the model artifact to models/<version>-<sha8>/ in the stack's bucket.
# On a first deploy the artifact is the bundled one (models/default) unless --model says otherwise;
# on a redeploy the stack keeps the model it serves unless --model is given (then the new model
# is uploaded first and goes live through the canary).
set -euo pipefail
source "$(dirname "$0")/scripts/common.sh"

ARCH=x86_64 MODEL_DIR="" ALARM_EMAIL="" RESERVED="" DEPLOYMENT_TYPE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH="$2"; shift 2 ;;
    --model) MODEL_DIR="$2"; shift 2 ;;
    --alarm-email) ALARM_EMAIL="$2"; shift 2 ;;
    --reserved-concurrency) RESERVED="$2"; shift 2 ;;
    --deployment-type) DEPLOYMENT_TYPE="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "deploy.sh: unknown argument $1 (see --help)" ;;
  esac
done
case "$ARCH" in x86_64|arm64) ;; *) die "deploy.sh: --arch must be x86_64 or arm64" ;; esac

say "Prerequisites"
need python3 "install Python 3.9+ with venv (Debian: apt-get install python3 python3-venv)"
need cargo "install Rust with rustup: https://rustup.rs"
if [ "$ARCH" = arm64 ]; then
  need rustup "install Rust with rustup (needed to add the aarch64-unknown-linux-gnu target)"
fi
check_missing
if [ "$ARCH" = arm64 ] && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  MISSING+=("Rust target aarch64-unknown-linux-gnu: rustup target add aarch64-unknown-linux-gnu")
fi
EXPLICIT_MODEL=1
if [ -z "$MODEL_DIR" ]; then MODEL_DIR="$REPO/models/default"; EXPLICIT_MODEL=0; fi
for f in manifest.json model.onnx golden.json; do
  [ -f "$MODEL_DIR/$f" ] || MISSING+=("model artifact file $MODEL_DIR/$f: build it with model-export (or pass --model DIR)")
done
check_missing
setup_tools
check_aws

say "Build (architecture $ARCH)"
"$INFRA/build-layer.sh" "$ARCH"
(cd "$INFRA" && sam build --template template.yaml --parameter-overrides "Architecture=$ARCH")

say "Package check"
"$INFRA/.venv/bin/python" "$INFRA/check_package.py" --arch "$ARCH"

STATUS="$(aws_helper stack-status "$STACK")"
case "$STATUS" in
  *_IN_PROGRESS) die "stack $STACK is busy ($STATUS): wait for it to finish" ;;
  ROLLBACK_COMPLETE|ROLLBACK_FAILED) die "stack $STACK failed its first deployment ($STATUS): run infra/teardown.sh, then deploy again" ;;
esac
NEW_PREFIX="$(aws_helper artifact-prefix "$MODEL_DIR")"
if [ "$STATUS" = NONE ] || [ "$EXPLICIT_MODEL" = 1 ]; then
  MODEL_PREFIX="$NEW_PREFIX"
else
  MODEL_PREFIX="$(aws_helper stack-param "$STACK" ModelPrefix)"
fi
MEMORY="$(aws_helper stack-param "$STACK" MemorySize 2>/dev/null || echo 1024)"
VERSION_KEY="$(aws_helper version-key "$INFRA/.aws-sam/build/ScorerFunction/bootstrap" \
  "$INFRA/.build/ort-layer/lib/libonnxruntime.so.1.31.1" "$INFRA/template.yaml" -- \
  "ModelPrefix=$MODEL_PREFIX" "Architecture=$ARCH" "MemorySize=$MEMORY")"

OVERRIDES=("Architecture=$ARCH" "ModelPrefix=$MODEL_PREFIX" "VersionKey=$VERSION_KEY" "MemorySize=$MEMORY")
[ -n "$ALARM_EMAIL" ] && OVERRIDES+=("AlarmEmail=$ALARM_EMAIL")
[ -n "$RESERVED" ] && OVERRIDES+=("ReservedConcurrency=$RESERVED")
[ -n "$DEPLOYMENT_TYPE" ] && OVERRIDES+=("DeploymentType=$DEPLOYMENT_TYPE")
# Parameters not given keep their deployed value (or the template default on a first deploy).
if [ "$STATUS" != NONE ]; then
  for p in AlarmEmail ReservedConcurrency DeploymentType P99DurationThresholdMs \
           FallbackRateThreshold DriftThreshold LogRetentionDays; do
    printf '%s\n' "${OVERRIDES[@]}" | grep -q "^$p=" && continue
    value="$(aws_helper stack-param "$STACK" "$p")"
    [ -n "$value" ] && OVERRIDES+=("$p=$value")
  done
fi

if [ "$STATUS" != NONE ] && [ "$EXPLICIT_MODEL" = 1 ]; then
  say "Upload the model artifact (before the update, so the new version finds it)"
  aws_helper upload-artifact "$MODEL_DIR" "$(aws_helper stack-output "$STACK" ModelBucketName)" "$MODEL_PREFIX"
fi

say "Deploy stack $STACK in $AWS_REGION"
(cd "$INFRA" && sam deploy --config-file samconfig.toml --stack-name "$STACK" --region "$AWS_REGION" \
  --parameter-overrides "${OVERRIDES[*]}")

if [ "$STATUS" = NONE ] || [ "$EXPLICIT_MODEL" = 1 ]; then
  say "Upload the model artifact to $MODEL_PREFIX"
  aws_helper upload-artifact "$MODEL_DIR" "$(aws_helper stack-output "$STACK" ModelBucketName)" "$MODEL_PREFIX"
fi

say "Deployed"
for key in FunctionUrl FunctionAliasArn ModelUri TransactionsQueueUrl ResultsQueueUrl; do
  printf '  %-22s %s\n' "$key" "$(aws_helper stack-output "$STACK" "$key")"
done
