"""The shape of an ``rlimm`` subcommand, and the command-line pieces every subcommand shares.

A subcommand is a module with two functions:

- ``add_parser(subparsers) -> argparse.ArgumentParser`` declares its flags;
- ``run(args) -> int`` does the work and returns the exit code.

:mod:`rlimm.cli` registers every subcommand the same way. Flags are checked here, by argparse types
(one line, exit 2, before anything runs); library code below the commands names config keys, never
flags.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import yaml

from rlimm.errors import RlimmError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``rlimm train: error: …``) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got '{text}'") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number ≥ 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number ≥ 0."""
    return _whole_number(text, 0)


def add_jobs_option(
    parser: argparse.ArgumentParser, what: str = "worker processes", default: int | None = None
) -> None:
    """``--jobs N`` (N ≥ 1); ``None`` means one per core (see :func:`jobs_or_cores`)."""
    shown = "all cores" if default is None else str(default)
    parser.add_argument("--jobs", type=positive_int, default=default, help=f"{what} (default: {shown})")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` (N ≥ 1): torch CPU threads per process."""
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="torch CPU threads per process (default: 1)"
    )


def jobs_or_cores(jobs: int | None) -> int:
    """``jobs``, or the number of cores when ``None``."""
    return jobs if jobs is not None else os.cpu_count() or 1


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


def parse_dotted(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["induction.k=4", "lambda_schedule=linear_decay"]`` → ``{"induction": {"k": 4},
    "lambda_schedule": "linear_decay"}`` (values read as YAML scalars), to merge into a config."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        parts = key.split(".")
        if not sep or not all(parts):
            raise RlimmError(f"{flag}: expected dotted.key=value, got '{item}'")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RlimmError(f"{flag}: '{key}' sets a key inside a value given before")
        node[parts[-1]] = _value(text)
    return out


def parse_settings(text: str, what: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key=value"`` → ``("name", {"key": value, …})`` (values read as YAML scalars)."""
    name, _, rest = text.partition(":")
    out: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RlimmError(f"{what}: expected NAME[:key=value,...], got '{text}'")
        out[key] = _value(value)
    return name, out
