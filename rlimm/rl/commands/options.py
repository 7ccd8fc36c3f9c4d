"""The RL commands' compact teacher spec (``--teacher``)."""

from __future__ import annotations

from typing import Any

from rlimm.common.command import parse_settings

SAVED_SUFFIXES = {".npz": "file", ".zip": "model"}


def parse_teacher_spec(spec: str | None) -> dict[str, Any] | None:
    """A teacher on the command line, as the ``teacher`` section of a config.

    - ``fib``, ``qmdp``, ``induced_optimal`` or ``trained``, optionally with settings:
      ``fib:policy=softmax,temperature=0.5``, ``trained:algo=ppo,timesteps=20000``;
    - a teacher file written by ``rlimm teacher`` (``*.npz``);
    - a saved SB3 model acting on the visible part (``*.zip``).
    """
    if spec is None:
        return None
    for suffix, solver in SAVED_SUFFIXES.items():
        if spec.endswith(suffix):
            return {"solver": solver, "path": spec}
    solver, settings = parse_settings(spec, "--teacher")
    return {"solver": solver, **settings}
