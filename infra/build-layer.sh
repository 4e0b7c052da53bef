#!/usr/bin/env bash
# Build the ONNX Runtime layer content for one architecture:
#   infra/.build/ort-layer/lib/libonnxruntime.so.1.31.1   (lands in /opt/lib in the function)
# from the onnxruntime wheel for that platform on PyPI (manylinux_2_28: glibc 2.28+, so it runs on
# Amazon Linux 2023's glibc 2.34). Usage: infra/build-layer.sh [x86_64|arm64] [OUT_DIR]
# (OUT_DIR defaults to infra/.build/ort-layer, the template's ContentUri).
set -euo pipefail
INFRA="$(cd "$(dirname "$0")" && pwd)"
ARCH="${1:-x86_64}"
ORT_VERSION=1.31.1
case "$ARCH" in
  x86_64) PLATFORM=manylinux_2_28_x86_64 ;;
  arm64) PLATFORM=manylinux_2_28_aarch64 ;;
  *) echo "build-layer.sh: architecture must be x86_64 or arm64, got '$ARCH'" >&2; exit 2 ;;
esac
PY="${INFRA_PYTHON:-$INFRA/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
WHEELS="$INFRA/.cache/wheels"
OUT="${2:-$INFRA/.build/ort-layer}"
mkdir -p "$WHEELS"

WHEEL="$(ls "$WHEELS"/onnxruntime-"$ORT_VERSION"-*-"$PLATFORM".whl 2>/dev/null | head -n1 || true)"
if [ -z "$WHEEL" ]; then
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --platform "$PLATFORM" \
    --python-version 3.12 --dest "$WHEELS" "onnxruntime==$ORT_VERSION"
  WHEEL="$(ls "$WHEELS"/onnxruntime-"$ORT_VERSION"-*-"$PLATFORM".whl | head -n1)"
fi

rm -rf "$OUT"
mkdir -p "$OUT/lib"
"$PY" - "$WHEEL" "$OUT/lib" "$ORT_VERSION" <<'PYEOF'
import sys, zipfile, shutil, os
wheel, dest, version = sys.argv[1:]
member = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(os.path.join(dest, os.path.basename(member)), "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(os.path.join(dest, os.path.basename(member)), 0o755)
PYEOF
echo "$ARCH" > "$OUT.arch"
echo "ONNX Runtime $ORT_VERSION layer for $ARCH: $OUT/lib/libonnxruntime.so.$ORT_VERSION (from $(basename "$WHEEL"))"
