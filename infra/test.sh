#!/usr/bin/env bash
# The infra test suite, offline (no AWS account, no Docker): creates/updates the tool venvs
# (infra/.venv, infra/.venv-checkov; fast when already set up), then runs pytest in infra/tests:
#   - sam validate --lint, cfn-lint, checkov --skip-download (no findings; skips justified);
#   - sam build of the real function (cargo-lambda + zig) and the package check (glibc <= 2.34,
#     shared libraries in provided.al2023 or shipped, zip sizes);
#   - the SAM-expanded template deployed to a local moto server, checked, torn down;
#   - the scripts' prerequisite checks and AWS steps against moto.
# Extra arguments go to pytest (e.g. `infra/test.sh -m "not build"` skips the release build).
set -euo pipefail
INFRA="$(cd "$(dirname "$0")" && pwd)"
"$INFRA/scripts/setup-venv.sh"
# cargo from rustup, cargo-lambda and zig from the infra venv (sam build calls them).
export PATH="$INFRA/.venv/bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_UPDATE_CHECK=1
cd "$INFRA"
exec "$INFRA/.venv/bin/python" -m pytest "$@"
