#!/usr/bin/env bash
# The task suites: configs/suite/suite.yaml (issues 22 and 26) → results/suite/report/report.md, then
# the induced-teacher suite configs/suite/induced.yaml (issue 27) → results/induced/report/report.md;
# set-up with the extras their tasks need (MuJoCo, Box2D, the RL Zoo's settings), every task timed, run
# and reported.
# Resumable: rerun it to finish an interrupted suite. Extra arguments go to `rlimm suite` (e.g. --estimate).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install --quiet -e ".[dev,suite]"
.venv/bin/rlimm suite configs/suite/suite.yaml --out results/suite --jobs "${JOBS:-2}" "$@"
exec .venv/bin/rlimm suite configs/suite/induced.yaml --out results/induced --jobs "${JOBS:-2}" "$@"
