#!/usr/bin/env bash
# Set up everything (scripts/setup.sh), then run the main job: the demo
# consortium on a local chain with local Kubo nodes. Extra arguments go to
# `merchant-app demo`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/merchant-app" demo "$@"
