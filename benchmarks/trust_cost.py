"""Cost of the trust λ (``lambda_schedule: trust``) against a constant λ, side by side in one process.

For each regulariser (naive, imm) the same agent — a task config's algorithm, environment, teacher and
induction — is trained with a constant λ and with the trust rule, interleaved over repetitions so
that machine load affects both alike. The trust rule is pinned (threshold and reference out of reach:
its weight never moves), so both variants train the same policy step for step (tested bit for bit in
tests/agents/common/test_trust_agents.py) and the time difference is the cost of measuring the signal, which
is what the trust schedule adds to every update. Goal (issue 26): ≤ 1.05× the constant-λ run.

Wall-time ratios of whole runs are as noisy as the machine (a busy 2-core machine moves them by ±10%),
so the trust runs also time the trust code itself — gathering each minibatch's log-probabilities,
the signal, the rule, SAC's critic values — and print its share of the run's wall time, which load
affects alike in numerator and denominator.

    .venv/bin/python benchmarks/trust_cost.py configs/suite/cartpole_cart_hidden.yaml --timesteps 20000
    .venv/bin/python benchmarks/trust_cost.py configs/suite/pendulum_sac_velocity_hidden.yaml \\
        --timesteps 2000
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlimm.agents.common import trust as glue
from rlimm.agents.sac import SAC
from rlimm.rl.config import load_compare_config
from rlimm.rl.environments import make_env, make_restriction, make_training_env
from rlimm.rl.runs import build_agent
from rlimm.rl.teacher_builder import make_teacher
from rlimm.trust import Trust


class Stopwatch:
    """Wall time spent inside the wrapped functions, summed."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, owner: type, name: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(owner, name, timed)


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
    # The trust code: what the rollout hands the rule, the signal, the rule, SAC's critic values.
    watch = Stopwatch()
    for owner, name in (
        (glue.RolloutEvidence, "add"),
        (glue.RolloutEvidence, "evidence"),
        (Trust, "observe"),
        (SAC, "_critic_values"),
    ):
        watch.wrap(owner, name)
    share: dict[str, list[float]] = {}
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
                before = watch.seconds
                start = time.perf_counter()
                model.learn(args.timesteps)
                elapsed = time.perf_counter() - start
                seconds.setdefault((method, schedule), []).append(elapsed)
                if schedule == "trust":
                    share.setdefault(method, []).append((watch.seconds - before) / elapsed)
                model.get_env().close()
    print(
        f"{config.algo.name} on {config.env.id} ({config.name}), {args.timesteps} steps, {args.repeats} "
        "interleaved repeats, 1 thread; trust pinned (the signal measured every update, λ unchanged)"
    )
    print(f"{'regularizer':<12}{'constant s':>12}{'trust s':>10}{'trust / constant':>18}{'trust code':>12}")
    for method in ("naive", "imm"):
        constant = statistics.median(seconds[(method, "constant")])
        trust = statistics.median(seconds[(method, "trust")])
        code = statistics.median(share[method])
        print(f"{method:<12}{constant:>12.2f}{trust:>10.2f}{trust / constant:>17.3f}x{code:>11.1%}")
    print("trust code: the share of a trust run's wall time spent in the trust code (median over repeats)")


if __name__ == "__main__":
    main()
