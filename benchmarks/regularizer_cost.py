"""Cost of the IMM and naive regularisers relative to the plain algorithm on the paper's grid.

The three variants (none, naive, imm) are timed side by side in one process, interleaved over
repetitions so that machine load affects them alike. For each it prints the median wall time per
update, the environment steps per second, and the ratio to ``none``.

Goals: REINFORCE per-update cost of imm and naive ≤ 1.3× none (issue 2); PPO-IMM throughput
≥ 0.75× plain PPO (issue 3). Hyperparameters are those of configs/grid_<algo>.yaml.

With ``--env`` and ``--visible`` it times PPO (SB3's defaults) on a stock environment instead, the
IMM term by sampled induction (``--induction knn --k 16``) with a teacher that is a policy on the
visible part (untrained: its weights do not change the cost). Goal: imm ≥ 0.7× plain PPO. On a Box
action space (e.g. Pendulum-v1, ``--visible 0 1``) the teacher is Gaussian, the IMM term is the KL to
the Gaussian mixture (``--estimator mc``, m = 16 draws), and ``--algo sac`` times SAC (SB3's defaults)
instead of PPO; goal ≥ 0.7× for both.

    .venv/bin/python benchmarks/regularizer_cost.py --algo reinforce --timesteps 10000 --repeats 5
    .venv/bin/python benchmarks/regularizer_cost.py --algo ppo --timesteps 4000 --repeats 3
    .venv/bin/python benchmarks/regularizer_cost.py --env CartPole-v1 --visible theta theta_dot \
        --timesteps 8192
    .venv/bin/python benchmarks/regularizer_cost.py --env Pendulum-v1 --visible 0 1 --timesteps 8192 \
        --estimator mc quadrature moment
    .venv/bin/python benchmarks/regularizer_cost.py --env Pendulum-v1 --visible 0 1 --algo sac \
        --timesteps 2000
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from rlimm.agents.imm.settings import DEFAULT_INDUCTION
from rlimm.coefficients import ratio_to_lambda
from rlimm.rl.config import load_compare_config
from rlimm.rl.environments import make_env, make_restriction
from rlimm.rl.runs import build_agent
from rlimm.rl.teacher_builder import make_teacher

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=["reinforce", "ppo", "a2c", "sac"], default=None)
    parser.add_argument("--timesteps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--env", help="a stock gymnasium env id (PPO with sampled induction)")
    parser.add_argument("--visible", nargs="+", help="what the teacher sees (with --env)")
    parser.add_argument("--induction", default="knn", choices=["knn", "marginal"])
    parser.add_argument("--k", type=int, default=DEFAULT_INDUCTION.k)
    parser.add_argument(
        "--estimator",
        nargs="+",
        default=["mc"],
        choices=["mc", "quadrature", "moment"],
        help="Box actions: the KL estimator(s) of imm; several are timed side by side",
    )
    parser.add_argument(
        "--imm-batch-size",
        default=None,
        help="SAC: minibatch rows the IMM term is evaluated on (default: SAC's own, 32; 'all': every row)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.env:
        return _stock_env(args)
    args.algo = args.algo or "reinforce"
    if args.algo == "sac":
        parser.error("--algo sac needs --env (a Box-action environment)")

    name = "paper" if args.algo == "reinforce" else args.algo
    config = load_compare_config(CONFIGS / f"grid_{name}.yaml")
    teacher = make_teacher(config)
    per_update = config.algo.steps_per_update()
    seconds: dict[str, list[float]] = {"none": [], "naive": [], "imm": []}
    for rep in range(args.repeats):
        for kind in seconds:
            env = make_env(config.env, config.env.episode_steps)
            model = build_agent(
                config.algo,
                env,
                kind,
                None if kind == "none" else teacher,
                make_restriction(config, env),
                ratio_to_lambda(0.2),
                seed=rep,
            )
            start = time.perf_counter()
            model.learn(args.timesteps)
            seconds[kind].append(time.perf_counter() - start)

    updates = args.timesteps / per_update
    base = statistics.median(seconds["none"])
    print(
        f"{config.algo.name} on the 11x11 grid ({config.name}.yaml settings), {args.timesteps} steps "
        f"= {updates:.0f} updates, {args.repeats} interleaved repeats, 1 thread"
    )
    print(f"{'regularizer':<12}{'ms/update':>11}{'steps/s':>10}{'time ratio':>12}{'throughput ratio':>18}")
    for kind, values in seconds.items():
        med = statistics.median(values)
        print(
            f"{kind:<12}{med / updates * 1000:>11.2f}{args.timesteps / med:>10.0f}{med / base:>11.2f}x"
            f"{base / med:>17.2f}x"
        )


def stock_teacher(env_id: str, visible: list[str], algo: str) -> tuple[Any, Any]:
    """The restriction of ``env_id`` to ``visible`` and an untrained teacher on it (its weights do not
    change the cost): a policy of rlimm's PPO for discrete actions, a Gaussian of the learner's own
    convention for Box actions (SAC's: before the squash)."""
    import gymnasium as gym
    import stable_baselines3 as sb3

    from rlimm.agents.ppo import PPO
    from rlimm.agents.teachers import PolicyTeacher, gaussian_policy_teacher
    from rlimm.envs import VisibleObservation
    from rlimm.envs.restrictions import restriction_for

    env = gym.make(env_id)
    restriction = restriction_for(env, visible)
    visible_env = VisibleObservation(gym.make(env_id), restriction)
    if isinstance(env.action_space, gym.spaces.Box):
        source = (sb3.SAC if algo == "sac" else sb3.PPO)("MlpPolicy", visible_env, seed=0)
        return restriction, gaussian_policy_teacher(source, restriction, env.action_space, "visible")
    policy = PPO("MlpPolicy", visible_env, seed=0).policy
    return restriction, PolicyTeacher(
        policy, restriction.visible_space, int(env.action_space.n), name="visible"
    )


def _stock_env(args: argparse.Namespace) -> None:
    import gymnasium as gym

    from rlimm.agents.ppo import PPO
    from rlimm.agents.sac import SAC

    algo = args.algo or "ppo"
    env = gym.make(args.env)
    box = isinstance(env.action_space, gym.spaces.Box)
    restriction, teacher = stock_teacher(args.env, args.visible, algo)
    cls = SAC if algo == "sac" else PPO
    extra = {}
    if algo == "sac" and args.imm_batch_size is not None:
        extra["imm_batch_size"] = None if args.imm_batch_size == "all" else int(args.imm_batch_size)
    # (label, regulariser, estimator): imm once per estimator on Box actions.
    estimators = args.estimator if box else ["mc"]
    variants = [("none", "none", "mc"), ("naive", "naive", "mc")]
    variants += [(f"imm-{e}" if box else "imm", "imm", e) for e in estimators]
    seconds: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    for rep in range(args.repeats):
        for label, kind, estimator in variants:
            model = cls(
                "MlpPolicy",
                gym.make(args.env),
                regularizer=kind,
                teacher=None if kind == "none" else teacher,
                restriction=None if kind == "none" else restriction,
                teacher_coef=ratio_to_lambda(0.2),
                induction={"method": args.induction, "k": args.k, "estimator": estimator},
                seed=rep,
                **extra,
            )
            start = time.perf_counter()
            model.learn(args.timesteps)
            seconds[label].append(time.perf_counter() - start)
    base = statistics.median(seconds["none"])
    estimator = f", KL by mc with m = {DEFAULT_INDUCTION.samples} draws" if box and "mc" in estimators else ""
    if algo == "sac":
        rows = extra.get("imm_batch_size", inspect.signature(SAC).parameters["imm_batch_size"].default)
        estimator += f", imm on {rows or 'all'} rows of each minibatch"
    print(
        f"{algo} on {args.env}, teacher sees {' '.join(args.visible)}, imm by {args.induction} (k = {args.k}"
        f"{estimator}; exclude {DEFAULT_INDUCTION.exclude}, pool "
        f"{DEFAULT_INDUCTION.pool}), {args.timesteps} steps, {args.repeats} "
        "interleaved repeats, 1 thread"
    )
    print(f"{'regularizer':<16}{'s/run':>9}{'steps/s':>10}{'time ratio':>12}{'throughput ratio':>18}")
    for kind, values in seconds.items():
        med = statistics.median(values)
        print(f"{kind:<16}{med:>9.2f}{args.timesteps / med:>10.0f}{med / base:>11.2f}x{base / med:>17.2f}x")


if __name__ == "__main__":
    main()
