# Shared by deploy.sh, publish-model.sh, teardown.sh (sourced, not run).
INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(dirname "$INFRA")"
export SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_UPDATE_CHECK=1
STACK="${FRAUDFLOW_STACK:-fraudflow}"
MISSING=()

say() { printf '\n== %s\n' "$*"; }
die() { printf '%s\n' "$*" >&2; exit 1; }

# need COMMAND "what to do when it is missing"
need() { command -v "$1" >/dev/null 2>&1 || MISSING+=("$1: $2"); }

# Print every missing prerequisite at once, then stop.
check_missing() {
  if [ "${#MISSING[@]}" -gt 0 ]; then
    printf 'Missing prerequisites:\n' >&2
    printf '  - %s\n' "${MISSING[@]}" >&2
    exit 2
  fi
}

# The infra venv: sam, cargo-lambda (with zig), boto3, pyelftools. Created on first use.
setup_tools() {
  "$INFRA/scripts/setup-venv.sh" --no-checkov
  export PATH="$INFRA/.venv/bin:$PATH"
}

aws_helper() { "$INFRA/.venv/bin/python" "$INFRA/scripts/aws_helper.py" "$@"; }

# Credentials and region, checked with STS; says what is missing.
check_aws() {
  local who
  if ! who="$(aws_helper whoami 2>&1)"; then
    printf 'Missing prerequisites:\n  - AWS access: %s\n' "${who//$'\n'/$'\n  - '}" >&2
    exit 2
  fi
  echo "AWS: $who"
  AWS_REGION="${who##* in }"
  export AWS_REGION AWS_DEFAULT_REGION="$AWS_REGION"
}
