"""Several `rlimm tune` processes on one Optuna storage share the work: a SQLite URL (one machine) and
an Optuna journal file (`--storage journal:PATH`, for a disk shared by several machines)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "grid_quick.yaml"
TRIALS = 3
BUDGETS = (2, 4)
TINY = ["--budgets", *map(str, BUDGETS), "--seeds", "1", "--trials", str(TRIALS), "--jobs", "1"]


def _storage(kind: str, tmp_path: Path) -> tuple[str, object]:
    """The ``--storage`` value, and what Optuna opens it as."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        return url, url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "shared.journal"
    return f"journal:{path}", JournalStorage(JournalFileBackend(str(path)))


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_processes_share_the_studies(tmp_path, kind):
    import optuna

    storage, opened = _storage(kind, tmp_path)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rlimm", "tune", str(QUICK), "--out", str(tmp_path / name)]
            + ["--storage", storage, *TINY, "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert f"studies in {storage}" in err

    workers: Counter = Counter()
    for budget in BUDGETS:
        study = optuna.load_study(study_name=f"grid_quick/imm/b{budget}", storage=opened)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        # Enough complete trials, and at most one extra per process (each may start one while the
        # other finishes the last); nothing left running or failed.
        assert TRIALS <= len(complete) <= TRIALS + len(procs)
        assert len(complete) == len(trials)
        numbers = [t.number for t in complete]
        assert sorted(numbers) == list(range(len(complete)))  # no trial number twice, none lost
        # The trials add up: each was run by exactly one of the two processes ...
        ran_by = [t.user_attrs["worker"] for t in complete]
        workers.update(ran_by)
        # ... and the processes drew different ratios (their samplers are seeded by trial number).
        ratios = [t.params["lambda_ratio"] for t in complete]
        assert len(set(ratios)) == len(ratios)
    assert len(workers) <= len(procs) and sum(workers.values()) >= TRIALS * len(BUDGETS)

    # Each process's trials.csv lists the complete trials it saw, each (budget, trial) once.
    for name in ("a", "b"):
        with open(tmp_path / name / "trials.csv", newline="") as f:
            rows = [(r["budget"], r["trial"]) for r in csv.DictReader(f)]
        assert len(rows) == len(set(rows))
        assert {b for b, _ in rows} == {str(b) for b in BUDGETS}
