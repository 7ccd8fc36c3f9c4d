"""A small hand-made set of runs for the tests of ``rlimm report``'s modules: two tasks, three seeds,
``none``, ``naive`` and ``imm``, a teacher, and (optionally) learning curves, as
:func:`rlimm.rl.report_inputs.load_inputs` would build them from compare folders.

Task A: reference 10, task B: reference 20; a random policy scores 0 on both, so a normalised score is
the score / 10 on A and / 20 on B. A run's curve is its final score × 0, ½, 1 at steps 0, 100, 200: its
curve mean is half its final score."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from rlimm.rl import aggregate as agg
from rlimm.rl.report_inputs import ReportInputs, Task

#: Final scores per task and method, by seed 0, 1, 2.
SCORES = {
    "A": {"none": [1.0, 2.0, 3.0], "naive": [2.0, 2.0, 5.0], "imm": [4.0, 3.0, 6.0]},
    "B": {"none": [2.0, 4.0, 6.0], "naive": [4.0, 4.0, 8.0], "imm": [8.0, 10.0, 2.0]},
}
REFERENCES = {"A": 10.0, "B": 20.0}
#: The teacher's scores per task (teacher.json), by seed.
TEACHER = {"A": [8.0, 9.0, 10.0], "B": [16.0, 18.0, 20.0]}
STEPS = (0, 100, 200)


def hand_made_inputs(curves: bool = False, drop: tuple[str, str, int] | None = None) -> ReportInputs:
    """The runs of :data:`SCORES` as a report's inputs; ``drop`` = (task, method, seed) leaves that
    run out (a folder still being written)."""
    tasks, rows, teachers = [], [], []
    for label, methods in SCORES.items():
        record = SimpleNamespace(induction=None)
        folder = SimpleNamespace(path=Path(f"/runs/{label}"), budget=100, missing=[], record=record)
        task = Task(label, [folder], [0, 1, 2], REFERENCES[label], "--reference", 0.0, (0.0, 0.0, 0.0))
        tasks.append(task)
        for method, scores in methods.items():
            for seed, score in enumerate(scores):
                if drop == (label, method, seed):
                    continue
                rows.append(
                    {"method": method, "algo": "ppo", "teacher": "" if method == "none" else "t",
                     "budget": 100, "lambda_ratio": 0.0 if method == "none" else 0.5, "seed": seed,
                     "score": score, "task": label, "folder": str(folder.path),
                     "lambda_schedule": "constant", "normalised": score / REFERENCES[label]}
                )  # fmt: skip
        scores = TEACHER[label]
        teachers.append(
            pd.DataFrame(
                {
                    "task": label,
                    "teacher": "t",
                    "score": scores,
                    "normalised": task.normalise(pd.Series(scores)),
                }
            )
        )
    final = pd.DataFrame(rows)
    final["algorithm"] = agg.label_algorithms(final)
    teacher = pd.concat(teachers, ignore_index=True)
    table = curve_rows(final) if curves else None
    no_curves = [] if curves else [str(t.folders[0].path) for t in tasks]
    return ReportInputs([t.folders[0] for t in tasks], tasks, final, teacher, table, no_curves, [])


def curve_rows(final: pd.DataFrame) -> pd.DataFrame:
    """Each final run's curve: its score × 0, ½, 1 at :data:`STEPS`."""
    rows = []
    for r in final.itertuples():
        for i, step in enumerate(STEPS):
            score = r.score * i / 2
            rows.append(
                {"task": r.task, "folder": r.folder, "algorithm": r.algorithm, "method": r.method,
                 "lambda_ratio": r.lambda_ratio, "seed": r.seed, "step": step, "score": score,
                 "normalised": score / REFERENCES[r.task]}
            )  # fmt: skip
    return pd.DataFrame(rows)


def algorithm(inputs: ReportInputs, method: str) -> agg.Algorithm:
    """The algorithm of ``method`` among ``inputs``' runs."""
    return next(a for a in inputs.final["algorithm"].unique() if a.method == method)
