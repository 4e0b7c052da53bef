#!/usr/bin/env bash
# Delete the fraudflow stack and everything in it (see infra/README.md).
#
#   infra/teardown.sh [--yes]
#
# Empties the model bucket (every object version: the stack cannot delete a non-empty bucket),
# then deletes the stack (`sam delete`), which removes the function, layer, queues (with any
# messages in them), alarms, log group and role. Asks first unless --yes.
set -euo pipefail
source "$(dirname "$0")/scripts/common.sh"

YES=0
case "${1:-}" in --yes|-y) YES=1 ;; "") ;; *) sed -n '2,9p' "$0"; exit 2 ;; esac

say "Prerequisites"
need python3 "install Python 3.9+ with venv (Debian: apt-get install python3 python3-venv)"
check_missing
setup_tools
check_aws
STATUS="$(aws_helper stack-status "$STACK")"
if [ "$STATUS" = NONE ]; then echo "stack $STACK does not exist in $AWS_REGION: nothing to do"; exit 0; fi

if [ "$YES" != 1 ]; then
  read -r -p "Delete stack $STACK in $AWS_REGION, its model artifacts and queued messages? [y/N] " answer
  [ "$answer" = y ] || [ "$answer" = Y ] || die "kept $STACK"
fi

BUCKET="$(aws_helper stack-output "$STACK" ModelBucketName 2>/dev/null || true)"
if [ -n "$BUCKET" ]; then
  say "Empty s3://$BUCKET"
  aws_helper empty-bucket "$BUCKET"
fi
say "Delete stack $STACK"
sam delete --stack-name "$STACK" --region "$AWS_REGION" --no-prompts
echo "deleted $STACK"
