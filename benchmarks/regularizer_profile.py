"""Where the IMM term's cost goes: the plain algorithm and its IMM run side by side, with wall-clock
timers on the phases of an update.

For PPO (CartPole-v1, the teacher sees theta and theta_dot; SB3's defaults) or SAC (Pendulum-v1, the
teacher sees cos θ and sin θ), with sampled induction by knn (k = 16), it prints the seconds each phase
took in each run, summed over the run, and what IMM adds to each phase:

- ``collect``: SB3's collection (env steps and the policy's actions; with a teacher, PPO's teacher's
  view of the rollout and the pool built from it);
- ``teacher view``: the teacher on the new observations (part of ``collect`` for PPO, of ``train`` for
  SAC);
- ``draws``: sampled induction's knn draws, once per pool (PPO: per rollout; SAC: per minibatch);
- ``imm forward``: the policy at the B × (k − 1) synthetic states;
- ``imm term``: the regulariser's whole computation (draws, forward, KL, diagnostics);
- ``backward``: every ``loss.backward()`` (the IMM term's share of it is its graph over the synthetic
  states);
- ``train``: the whole update.

The timers wrap methods, so their own cost (≈ 1 µs a call) is in every run alike. Runs are interleaved
over repeats; the medians are printed. Goals (issue 28): PPO-IMM ≥ 0.9× plain PPO, SAC-IMM ≥ 0.85×
plain SAC, measured by ``benchmarks/regularizer_cost.py``; this script says where the rest goes.

    .venv/bin/python benchmarks/regularizer_profile.py --algo ppo --timesteps 8192 --repeats 3
    .venv/bin/python benchmarks/regularizer_profile.py --algo sac --timesteps 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from regularizer_cost import stock_teacher
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from rlimm.agents.common.mixin import RegularizedMixin
from rlimm.agents.common.on_policy import OnPolicyRegularizedMixin
from rlimm.agents.common.policies import DistributionReturningPolicy
from rlimm.agents.imm.regularizer import TeacherRegularizer
from rlimm.agents.ppo import PPO
from rlimm.agents.sac import SAC
from rlimm.agents.sac.policies import ParamsReturningSACPolicy
from rlimm.coefficients import ratio_to_lambda

PHASES = ("collect", "teacher view", "draws", "imm forward", "imm term", "backward", "train")


def _timed(owner: Any, name: str, phase: str, seconds: dict[str, float]) -> Callable[[], None]:
    """Time every call of ``owner.name`` into ``seconds[phase]``; returns the undo."""
    original = owner.__dict__[name]

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[phase] += time.perf_counter() - start

    setattr(owner, name, timed)
    return lambda: setattr(owner, name, original)


#: the environment and what the teacher sees, by algorithm
SETTINGS = {"ppo": ("CartPole-v1", ["theta", "theta_dot"]), "sac": ("Pendulum-v1", ["0", "1"])}


def _run(algo: str, kind: str, timesteps: int, seed: int) -> dict[str, float]:
    env_id, visible = SETTINGS[algo]
    restriction, teacher = stock_teacher(env_id, visible, algo)  # regularizer_cost.py's, the same teacher
    cls = SAC if algo == "sac" else PPO
    model = cls(
        "MlpPolicy",
        gym.make(env_id),
        regularizer=kind,
        teacher=None if kind == "none" else teacher,
        restriction=None if kind == "none" else restriction,
        teacher_coef=ratio_to_lambda(0.2),
        induction={"method": "knn", "k": 16},
        seed=seed,
    )
    seconds: dict[str, float] = defaultdict(float)
    policy = ParamsReturningSACPolicy if algo == "sac" else DistributionReturningPolicy
    collect = OffPolicyAlgorithm if algo == "sac" else OnPolicyRegularizedMixin
    undo = [
        _timed(collect, "collect_rollouts", "collect", seconds),
        _timed(RegularizedMixin, "_teacher_view", "teacher view", seconds),
        _timed(type(model), "train", "train", seconds),
        _timed(TeacherRegularizer, "pool_draws", "draws", seconds),
        _timed(TeacherRegularizer, "compute", "imm term", seconds),
        _timed(policy, "action_params", "imm forward", seconds),
        _timed(torch.Tensor, "backward", "backward", seconds),
    ]
    try:
        start = time.perf_counter()
        model.learn(timesteps)
        seconds["total"] = time.perf_counter() - start
    finally:
        for step in reversed(undo):
            step()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=["ppo", "sac"], default="ppo")
    parser.add_argument("--timesteps", type=int, default=None, help="default: 8192 (ppo), 2000 (sac)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    timesteps = args.timesteps or (2000 if args.algo == "sac" else 8192)
    runs: dict[str, list[dict[str, float]]] = {"none": [], "imm": []}
    for rep in range(args.repeats):
        for kind in runs:
            runs[kind].append(_run(args.algo, kind, timesteps, seed=rep))
    med = {
        kind: {phase: statistics.median(r.get(phase, 0.0) for r in rs) for phase in (*PHASES, "total")}
        for kind, rs in runs.items()
    }
    base, imm = med["none"]["total"], med["imm"]["total"]
    env = "Pendulum-v1" if args.algo == "sac" else "CartPole-v1"
    print(
        f"{args.algo} on {env}, imm by knn (k = 16), {timesteps} steps, {args.repeats} interleaved "
        f"repeats, 1 thread; medians in seconds"
    )
    print(f"{'phase':<14}{'none':>9}{'imm':>9}{'imm adds':>10}{'share of what imm adds':>25}")
    for phase in (*PHASES, "total"):
        a, b = med["none"][phase], med["imm"][phase]
        print(f"{phase:<14}{a:>9.2f}{b:>9.2f}{b - a:>10.2f}{(b - a) / (imm - base):>24.0%}")
    print(f"throughput ratio imm / none: {base / imm:.2f}x")


if __name__ == "__main__":
    main()
