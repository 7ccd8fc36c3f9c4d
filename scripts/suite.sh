#!/usr/bin/env bash
# The task suite (configs/suite/suite.yaml, issue 22): set-up with the extras its tasks need (MuJoCo,
# Box2D, the RL Zoo's settings), then every task timed, run and reported → results/suite/report/report.md.
# Resumable: rerun it to finish an interrupted suite. Extra arguments go to `rlimm suite` (e.g. --estimate).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install --quiet -e ".[dev,suite]"
exec .venv/bin/rlimm suite configs/suite/suite.yaml --out results/suite --jobs "${JOBS:-2}" "$@"
