"""Cost of evaluation during training, and the time one run for several budgets saves.

On ``configs/cartpole_cart_hidden.yaml`` (PPO, the pole-only teacher built once), in one process
with one torch thread, as a compare worker:

1. evaluation cost: every (method, seed) trained for the longest budget without and with
   ``evaluation.every`` = 5% of the budget (20 evaluations of ``evaluation.episodes`` episodes,
   played side by side: ``rlimm.rl.evaluation.evaluate_side_by_side``), alternating, ``--repeats``
   times; prints both wall times and their ratio (goal: ≤ 1.15×);
2. multi-budget reuse: budgets 2048 and 6144 from one run per (method, seed) vs one run per budget;
   prints both wall times and their ratio, and checks the scores are equal.

    .venv/bin/python benchmarks/evaluation_cost.py [--seeds 2] [--repeats 1] [--methods none imm]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from rlimm.rl.config import CompareConfig, RunSpec, load_compare_config
from rlimm.rl.runs import run_budgets
from rlimm.rl.teacher_builder import make_teacher

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cartpole_cart_hidden.yaml"
BUDGETS = (2048, 6144)


def _specs(config: CompareConfig, methods: list[str], seeds: int, ratio: float, budget: int) -> list[RunSpec]:
    return [RunSpec(m, budget, s, 0.0 if m == "none" else ratio) for m in methods for s in range(seeds)]


def _timed(fn) -> tuple[float, list]:  # noqa: ANN001
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["none", "naive", "imm"])
    parser.add_argument("--lambda-ratio", type=float, default=0.8)
    parser.add_argument(
        "--teacher-timesteps", type=int, help="the teacher's training steps (default: the config's)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {"lambda_ratio": args.lambda_ratio, "budgets": list(BUDGETS)}
    if args.teacher_timesteps:
        overrides["teacher"] = {"timesteps": args.teacher_timesteps}
    config = load_compare_config(CONFIG, overrides)
    start = time.perf_counter()
    teacher = make_teacher(config)
    print(f"teacher built in {time.perf_counter() - start:.1f} s")

    longest = BUDGETS[-1]
    every = longest // 20
    with_curves = config.model_copy(
        update={"evaluation": config.evaluation.model_copy(update={"every": every})}
    )
    specs = _specs(config, args.methods, args.seeds, args.lambda_ratio, longest)
    plain_s = curves_s = 0.0
    for _ in range(args.repeats):
        for spec in specs:
            t, plain = _timed(lambda spec=spec: run_budgets(config, [spec], teacher=teacher))
            plain_s += t
            t, curved = _timed(lambda spec=spec: run_budgets(with_curves, [spec], teacher=teacher))
            curves_s += t
            assert plain[0]["score"] == curved[0]["score"], "evaluations changed the training"
    runs = len(specs) * args.repeats
    print(
        f"evaluation every {every} steps (5% of {longest}), {config.evaluation.episodes} episodes each, "
        f"{runs} runs ({', '.join(args.methods)} x {args.seeds} seeds x {args.repeats} repeats):"
    )
    print(
        f"  without: {plain_s:.1f} s   with: {curves_s:.1f} s   "
        f"ratio {curves_s / plain_s:.2f}x (goal <= 1.15x)"
    )

    groups = [[RunSpec(s.method, b, s.seed, s.lambda_ratio) for b in BUDGETS] for s in specs]
    reuse_s = separate_s = 0.0
    for _ in range(args.repeats):
        for group in groups:
            t, together = _timed(lambda group=group: run_budgets(config, group, teacher=teacher))
            reuse_s += t
            alone = []
            for spec in group:
                t, rows = _timed(lambda spec=spec: run_budgets(config, [spec], teacher=teacher))
                separate_s += t
                alone += rows
            assert [r["score"] for r in together] == [r["score"] for r in alone], "reuse changed a score"
    print(f"budgets {BUDGETS[0]} and {BUDGETS[1]}, {len(groups) * args.repeats} (method, seed) pairs:")
    print(
        f"  one run per budget: {separate_s:.1f} s   one run for both: {reuse_s:.1f} s   "
        f"ratio {reuse_s / separate_s:.2f}x (saves {separate_s - reuse_s:.1f} s)"
    )


if __name__ == "__main__":
    main()
