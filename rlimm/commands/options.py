"""Parsing of the command line's compact values: ``key:value`` lists and teacher specs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import yaml

from rlimm.errors import RlimmError

SAVED_SUFFIXES = {".npz": "file", ".zip": "model"}


def _value(text: str) -> Any:
    # YAML scalars: 0.001 → float, 64 → int, true → bool, [64, 64] → list, anything else → str.
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_key_values(items: Sequence[str] | None, flag: str) -> dict[str, Any] | None:
    """``["learning_rate:0.001", "n_steps:64"]`` → ``{"learning_rate": 0.001, "n_steps": 64}``."""
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition(":")
        if not sep or not key:
            raise RlimmError(f"{flag}: expected key:value, got '{item}'")
        out[key] = _value(text)
    return out


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
    solver, _, rest = spec.partition(":")
    out: dict[str, Any] = {"solver": solver}
    for item in filter(None, rest.split(",")):
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise RlimmError(f"--teacher: expected SOLVER[:key=value,...], a .npz or a .zip, got '{spec}'")
        out[key] = _value(text)
    return out


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``rlimm train: error: …``) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
