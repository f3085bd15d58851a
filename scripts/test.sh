#!/usr/bin/env bash
# Set up everything (scripts/setup.sh), then run the static checks and the
# whole test suite. Extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"

echo "[test] ruff check"
.venv/bin/ruff check merchant_app tests benchmarks ml_model scripts
echo "[test] import rules (core never imports Qt)"
.venv/bin/lint-imports
echo "[test] mypy"
.venv/bin/mypy
echo "[test] pytest"
# The bundle test builds the PyInstaller bundle (about 3 minutes and 3.4 GB
# of temporary space); set MERCHANT_APP_TEST_BUNDLE=0 to skip it.
export MERCHANT_APP_TEST_BUNDLE="${MERCHANT_APP_TEST_BUNDLE:-1}"
exec .venv/bin/python -m pytest "$@"
