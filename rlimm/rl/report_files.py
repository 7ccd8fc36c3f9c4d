"""The folder ``rlimm report`` writes: where it may go, the cache of a random policy's scores it keeps
(random.json, reused when the same folder is written again), its per-run table (scores.csv), and
writing it whole or not at all (built next to it, then renamed over it)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from rlimm.errors import RlimmError

#: Where the report caches the random policy's scores.
RANDOM_SCORES = "random.json"
#: The columns of scores.csv, one row per final run.
SCORE_COLUMNS = [
    "task",
    "folder",
    "algorithm",
    "method",
    "budget",
    "lambda_ratio",
    "seed",
    "score",
    "normalised",
]


def check_out(out: Path, folders: Sequence[Path]) -> None:
    """Refuse an ``out`` that overlaps an input folder, is a file, or is a folder holding something
    else than a report (it is replaced whole)."""
    resolved = out.resolve()
    for f in folders:
        f = f.resolve()
        if resolved == f or f.is_relative_to(resolved) or resolved.is_relative_to(f):
            raise RlimmError(
                f"--out {out} overlaps the input folder {f}: a report never writes into its input"
            )
    if out.exists() and not out.is_dir():
        raise RlimmError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.md").exists():
        raise RlimmError(f"--out {out} is a folder that holds something else than a report; choose another")


def read_random_cache(out: Path) -> list[dict]:
    """The random policy's records of a previous report in ``out`` (none when absent or unreadable)."""
    path = out / RANDOM_SCORES
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text())["tasks"])
    except (ValueError, KeyError, TypeError):
        return []  # a cache only: recomputed when unreadable


def write_random(path: Path, records: list[dict]) -> None:
    """random.json: the random policy's scores per task (:func:`rlimm.rl.report_inputs.score_random`)."""
    record = {
        "policy": "uniform random actions from the env's action space, seeded like the learners' evaluation",
        "tasks": records,
    }
    path.write_text(json.dumps(record, indent=1) + "\n")


def write_scores(path: Path, final: pd.DataFrame) -> None:
    """scores.csv: every final run's score and normalised score, its algorithm by label."""
    table = final.assign(algorithm=final["algorithm"].map(lambda a: a.label))
    table[SCORE_COLUMNS].to_csv(path, index=False)


def write_folder(out: Path, fill: Callable[[Path], None]) -> None:
    """Have ``fill`` write the report into an empty folder next to ``out``, then put it in place of
    ``out``; on any error ``out`` stays as it was and nothing else is left behind."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        _replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_folder(tmp: Path, out: Path) -> None:
    # os.replace cannot put a folder over a non-empty one: move the old one aside first.
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    if out.exists():
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old.exists():
            os.replace(old, out)  # the previous report stays as it was
        raise
    shutil.rmtree(old, ignore_errors=True)
