"""Wall time of the paper's full grid table: 30 seeds × 3 budgets × 3 methods (270 runs).

Runs ``rlimm compare configs/grid_paper.yaml`` into a fresh temporary folder with the given number
of worker processes (default: all cores) and prints the wall time against the 10-minute goal, and
the mean time per run.

    .venv/bin/python benchmarks/grid_table_walltime.py [--jobs 2] [--seeds 30]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rlimm.rl.comparison import read_results, run_matrix
from rlimm.rl.config import load_compare_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "grid_paper.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args()
    config = load_compare_config(CONFIG, {"seeds": args.seeds})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = run_matrix(config, tmp, jobs=args.jobs, progress=False)
        wall = time.perf_counter() - start
        rows, _ = read_results(results)
    train = sum(float(r["train_seconds"]) for r in rows)
    print(f"{len(rows)} runs ({args.seeds} seeds x 3 budgets x 3 methods) with {args.jobs} workers")
    print(f"wall time: {wall:.0f} s  (goal: < 600 s; ratio to goal {wall / 600:.2f})")
    print(f"sum of per-run training time: {train:.0f} s; mean per run {train / len(rows):.2f} s")


if __name__ == "__main__":
    main()
