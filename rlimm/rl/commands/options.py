"""The RL commands' compact teacher spec (``--teacher``)."""

from __future__ import annotations

import argparse
from typing import Any

from rlimm.common.command import parse_settings

SAVED_SUFFIXES = {".npz": "file", ".pt": "file", ".zip": "model"}


def parse_teacher_spec(spec: str | None) -> dict[str, Any] | None:
    """A teacher on the command line, as the ``teacher`` section of a config.

    - ``fib``, ``qmdp``, ``induced_optimal`` or ``trained``, optionally with settings:
      ``fib:policy=softmax,temperature=0.5``, ``trained:algo=ppo,timesteps=20000``;
    - a teacher file written by ``rlimm teacher`` (``*.npz``, ``*.pt``);
    - a saved SB3 model acting on the visible part (``*.zip``).
    """
    if spec is None:
        return None
    for suffix, solver in SAVED_SUFFIXES.items():
        if spec.endswith(suffix):
            return {"solver": solver, "path": spec}
    solver, settings = parse_settings(spec, "--teacher")
    return {"solver": solver, **settings}


def parse_induction_spec(spec: str | None) -> dict[str, Any] | None:
    """``--induction knn:k=16`` (or ``exact``, ``marginal:k=8``, ``auto``) as the ``induction`` section."""
    if spec is None:
        return None
    method, settings = parse_settings(spec, "--induction")
    return {"method": method, **settings}


VISIBLE_HELP = (
    "what the teacher sees: factor names of a Discrete observation (the grid: x; Taxi-v4: taxi_row "
    "taxi_col passenger), coordinates of a Box by index or name (CartPole-v1: theta theta_dot, or 2 3), "
    "novel (the RL Zoo's view without velocities), Dict keys, or all (nothing hidden)"
)
INDUCTION_HELP = (
    "how IMM averages over the hidden part: exact, knn[:k=16], marginal[:k=16] or auto (exact when "
    "the hidden part can be enumerated, else knn)"
)


def add_eval_every_option(parser: argparse.ArgumentParser) -> None:
    """``--eval-every N``: the config key ``evaluation.every`` (learning curves in ``curves.csv``)."""
    parser.add_argument(
        "--eval-every",
        # Checked as the config key (its error names 'evaluation.every', as from a file).
        type=int,
        metavar="N",
        help="also evaluate every N environment steps during training, on a separate env with the "
        "final evaluation's protocol and seeds, without changing the training (curves.csv; "
        "eval/mean_reward in TensorBoard); the config key evaluation.every",
    )
