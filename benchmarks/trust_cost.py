"""Cost of the trust λ (``lambda_schedule: trust``) against a constant λ, side by side in one process.

For each regulariser (naive, imm) the same agent — a task config's algorithm, environment, teacher and
induction — is trained with a constant λ and with the trust rule, interleaved over repetitions so
that machine load affects both alike. The trust rule is pinned (threshold and reference out of reach:
its weight never moves), so both variants train the same policy step for step (tested bit for bit in
tests/agents/test_trust_agents.py) and the time difference is the cost of measuring the signal, which
is what the trust schedule adds to every update. Goal (issue 26): ≤ 1.05× the constant-λ run.

    .venv/bin/python benchmarks/trust_cost.py configs/suite/cartpole_cart_hidden.yaml --timesteps 20000
    .venv/bin/python benchmarks/trust_cost.py configs/suite/pendulum_sac_velocity_hidden.yaml \\
        --timesteps 2000
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlimm.rl.config import load_compare_config
from rlimm.rl.runs import build_agent, make_env, make_restriction, make_teacher, make_training_env
from rlimm.trust import Trust


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a compare config (its env, teacher, algorithm and induction)")
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ratio", type=float, default=0.5, help="the λ ratio of both variants")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_compare_config(args.config)
    teacher = make_teacher(config)
    restriction = make_restriction(config, make_env(config.env, config.env.episode_steps))
    lam = args.ratio / (1 - args.ratio)
    seconds: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeats):
        for method in ("naive", "imm"):
            for schedule in ("constant", "trust"):
                coef = lam if schedule == "constant" else Trust(lam, threshold=1e12)  # pinned: never moves
                model = build_agent(
                    config.algo,
                    make_training_env(config, rep),
                    method,
                    teacher,
                    restriction,
                    coef,
                    seed=rep,
                    induction=config.induction,
                )
                start = time.perf_counter()
                model.learn(args.timesteps)
                seconds.setdefault((method, schedule), []).append(time.perf_counter() - start)
                model.get_env().close()
    print(
        f"{config.algo.name} on {config.env.id} ({config.name}), {args.timesteps} steps, {args.repeats} "
        "interleaved repeats, 1 thread; trust pinned (the signal measured every update, λ unchanged)"
    )
    print(f"{'regularizer':<12}{'constant s':>12}{'trust s':>10}{'trust / constant':>18}")
    for method in ("naive", "imm"):
        constant = statistics.median(seconds[(method, "constant")])
        trust = statistics.median(seconds[(method, "trust")])
        print(f"{method:<12}{constant:>12.2f}{trust:>10.2f}{trust / constant:>17.3f}x")


if __name__ == "__main__":
    main()
