#!/usr/bin/env bash
# The main job: IMM vs naive vs no teacher on the paper's grid (10 seeds × 3 budgets), with a table
# and a plot in results/grid_quick/. Rerunning resumes and skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/rlimm compare configs/grid_quick.yaml --out results/grid_quick "$@"
