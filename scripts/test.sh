#!/usr/bin/env bash
# Set up the environment and run the whole test suite (a few minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RLIMM_DATA_DIR="${RLIMM_DATA_DIR:-$(cd .. && pwd)/shared/data}"
# Two workers (pytest-xdist): the suite takes about half the time on the 2-core machine.
.venv/bin/python -m pytest -q -n 2 "$@"
