"""Shared by the tests that drive ``rlimm`` end to end: the real entry point, and config variants."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def rlimm(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m rlimm ARGS`` in a fresh process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "rlimm", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=300,
    )


def run_in_process(*argv: object) -> int:
    """A subcommand in this process, through the real parser (errors raise instead of exiting)."""
    from rlimm.cli import build_parser

    args = build_parser().parse_args([str(a) for a in argv])
    return args.func(args)


def config_variant(base: Path, tmp_path: Path, **changes: object) -> Path:
    """A copy of the YAML config ``base`` in ``tmp_path`` with dotted keys changed (``algo.name=…``)."""
    data = yaml.safe_load(base.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path
