"""Per-update cost of the IMM and naive regularisers relative to plain REINFORCE on the paper's grid.

The three variants are timed side by side in one process, interleaved over repetitions so that
machine load affects them alike; the script prints the median milliseconds per update (collection
of the 50-step trajectory + one gradient step) and the ratios to ``none``. Goal: ≤ 1.3×.

    .venv/bin/python benchmarks/regularizer_cost.py [--updates 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import rlimm.envs as E
import torch
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teachers import pomdp_teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    probe = gym.make(E.GRID_ID)
    restriction = E.FactoredRestriction.for_env(probe, ["x"])
    teacher = pomdp_teacher(probe, restriction, "fib")
    times: dict[str, list[float]] = {"none": [], "naive": [], "imm": []}
    for rep in range(args.repeats):
        for kind in times:
            model = REINFORCE(
                "MlpPolicy",
                gym.make(E.GRID_ID, max_episode_steps=50),
                regularizer=kind,
                teacher=None if kind == "none" else teacher,
                restriction=restriction,
                teacher_coef=0.25,
                seed=rep,
            )
            start = time.perf_counter()
            model.learn(args.updates * 50)
            times[kind].append((time.perf_counter() - start) / args.updates * 1000)

    base = statistics.median(times["none"])
    print(f"REINFORCE on the 11x11 grid, {args.updates} updates x {args.repeats} repeats, 1 thread")
    print(f"{'regularizer':<12}{'ms/update':>12}{'ratio to none':>16}")
    for kind, values in times.items():
        med = statistics.median(values)
        print(f"{kind:<12}{med:>12.2f}{med / base:>15.2f}x")
    print("goal: imm and naive <= 1.30x")


if __name__ == "__main__":
    main()
