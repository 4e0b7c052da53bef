#!/usr/bin/env bash
# Create or update infra/.venv (requirements.txt) and infra/.venv-checkov (requirements-checkov.txt).
# Idempotent and fast when nothing changed: each venv records the hash of the requirements it was
# built from and is rebuilt only when that file changes. Usage: setup-venv.sh [--no-checkov]
set -euo pipefail
INFRA="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup-venv.sh: $PYTHON not found: install Python 3.9 or newer (with venv)" >&2
  exit 2
fi
if ! "$PYTHON" -c 'import sys, venv; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "setup-venv.sh: $PYTHON is older than 3.9 or lacks venv (Debian: apt-get install python3-venv)" >&2
  exit 2
fi

ensure() {  # ensure VENV_DIR REQUIREMENTS
  local venv="$1" req="$2" stamp want
  stamp="$venv/.requirements.sha256"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "== setting up $(basename "$venv") from $(basename "$req")"
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
}

ensure "$INFRA/.venv" "$INFRA/requirements.txt"
if [ "${1:-}" != "--no-checkov" ]; then
  ensure "$INFRA/.venv-checkov" "$INFRA/requirements-checkov.txt"
fi
