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
exec .venv/bin/python -m pytest "$@"
