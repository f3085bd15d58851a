#!/usr/bin/env bash
# Build the one-folder bundle dist/merchant-app/ from resources/merchant-app.spec.
#
# Needs the "bundle" extra: .venv/bin/pip install -e .[bundle]
# Usage: scripts/build-bundle.sh [DIST_DIR [WORK_DIR]]
#   DIST_DIR  where the bundle folder goes (default: dist)
#   WORK_DIR  PyInstaller's build cache (default: build/pyinstaller)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DIST_DIR="${1:-$ROOT/dist}"
WORK_DIR="${2:-$ROOT/build/pyinstaller}"

if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "PyInstaller is not installed for $PYTHON; run: $PYTHON -m pip install -e '$ROOT[bundle]'" >&2
    exit 1
fi

start=$(date +%s)
# The store's C module (setup.py), built next to its source so that the
# spec's analysis of this checkout finds it.
(cd "$ROOT" && "$PYTHON" setup.py --quiet build_ext --inplace \
    --build-temp "$WORK_DIR/ext")
if ! (cd "$ROOT" && "$PYTHON" -c "import merchant_app.store._rowsource"); then
    echo "the C module merchant_app/store/_rowsource.c did not build" >&2
    exit 1
fi
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST_DIR" --workpath "$WORK_DIR" \
    "$ROOT/resources/merchant-app.spec"
end=$(date +%s)

echo "built $DIST_DIR/merchant-app in $((end - start)) s"
echo "check it with: $DIST_DIR/merchant-app/merchant-app --self-test"
