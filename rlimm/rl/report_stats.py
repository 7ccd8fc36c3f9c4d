"""Every number ``rlimm report`` prints or draws, as plain data, from the normalised tables of
:mod:`rlimm.rl.report_inputs`: the tasks' table, the aggregate metrics of each algorithm and teacher
(IQM, mean, optimality gap with rliable's stratified bootstrap intervals), the probabilities of
improvement P(X > Y), the performance profiles, the IQM learning curves and the per-task tables with
their paired differences. No drawing and no Markdown here (:mod:`rlimm.rl.report_markdown`,
:mod:`rlimm.rl.report_figures`), so none of this needs matplotlib.

rliable's matrices hold the same number of runs on every task: where an algorithm's tasks differ, its
statistics use the runs of the lowest seeds of each task, and :attr:`ReportStats.truncated` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rlimm.rl import aggregate as agg
from rlimm.rl import per_task
from rlimm.rl.report_curves import PooledCurves, TaskCurves, pooled_curves, task_curves, truncation_note
from rlimm.rl.report_inputs import ReportInputs

#: Thresholds τ of the performance profiles.
TAUS = 101


@dataclass(frozen=True)
class TaskRow:
    """A row of the tasks' table: where a task's runs come from and what normalises them."""

    task: str
    folders: list[str]
    #: The folders' final budgets, each once (sorted as text, as the table prints them).
    budgets: list[int]
    #: Final runs of the task, of every algorithm.
    runs: int
    random: float
    reference: float
    reference_from: str


@dataclass(frozen=True)
class Aggregate:
    """An algorithm's aggregate metrics over the tasks it ran (:data:`rlimm.rl.aggregate.METRICS`)."""

    algorithm: agg.Algorithm
    tasks: int
    runs: int
    metrics: dict[str, agg.Interval]


@dataclass(frozen=True)
class TeacherAggregate:
    """A teacher's aggregate metrics over the tasks it has scores on."""

    teacher: str
    metrics: dict[str, agg.Interval]


@dataclass(frozen=True)
class Improvement:
    """P(X > Y) over the tasks both X and Y ran (``tasks`` of them), with its interval."""

    x: agg.Algorithm
    y: agg.Algorithm
    tasks: int
    probability: agg.Interval


@dataclass
class ReportStats:
    """The numbers of one report."""

    reps: int
    seed: int
    #: Every algorithm of the final runs, in the order of the tables (method, then settings).
    algorithms: list[agg.Algorithm]
    tasks: list[TaskRow]
    #: (folder, runs it lacks): folders still being written (:func:`rlimm.rl.result_folders.missing_runs`).
    left_out: list[tuple[str, str]]
    aggregates: list[Aggregate]
    teachers: list[TeacherAggregate]
    improvements: list[Improvement]
    #: Thresholds of the performance profiles, and each algorithm's profile over them.
    taus: np.ndarray
    profiles: dict[agg.Algorithm, agg.Interval]
    per_task: list[per_task.TaskTable]
    #: The IQM curves (``None`` unless every folder has a curves.csv; :attr:`no_curves` names those
    #: without one).
    curves: PooledCurves | None
    task_curves: list[TaskCurves] | None
    no_curves: list[str]
    #: :func:`rlimm.rl.report_curves.truncation_note` of each set of runs its statistics truncate.
    truncated: list[str]

    def teacher_iqm(self) -> dict[str, float]:
        """Each teacher's IQM (normalised), the level the figures draw it at."""
        return {t.teacher: t.metrics["IQM"].value for t in self.teachers}


def report_stats(inputs: ReportInputs, reps: int = agg.REPS, seed: int = 0) -> ReportStats:
    """The statistics of ``inputs`` with ``reps`` bootstrap resamples seeded by ``seed``."""
    final, teacher = inputs.final, inputs.teacher
    algorithms = sorted(final["algorithm"].unique())
    task_order = [t.label for t in inputs.tasks]
    per_alg = {a: final[final["algorithm"] == a] for a in algorithms}
    truncated: list[str] = []

    def runs(rows: pd.DataFrame, label: str, order: tuple[str, ...] = ("seed", "folder")) -> list:
        arrays = agg.by_task(rows, task_order, order=order)
        note = truncation_note(label, [t for t in task_order if (rows["task"] == t).any()], arrays)
        if note and note not in truncated:
            truncated.append(note)
        return arrays

    alg_runs = {a: runs(per_alg[a], a.label) for a in algorithms}
    aggregates = [
        Aggregate(a, per_alg[a]["task"].nunique(), len(per_alg[a]), _metrics(alg_runs[a], reps, seed))
        for a in algorithms
    ]
    teachers = []
    for label in sorted(teacher["teacher"].unique()) if len(teacher) else []:
        # teacher.json lists the scores in the order of the seeds.
        tr = runs(teacher[teacher["teacher"] == label], f"teacher ({label})", order=())
        teachers.append(TeacherAggregate(label, _metrics(tr, reps, seed)))

    improvements = []
    for x, y in agg.comparisons(algorithms):
        common = [
            t for t in task_order if (per_alg[x]["task"] == t).any() and (per_alg[y]["task"] == t).any()
        ]
        if common:
            xs = runs(per_alg[x][per_alg[x]["task"].isin(common)], x.label)
            ys = runs(per_alg[y][per_alg[y]["task"].isin(common)], y.label)
            improvements.append(Improvement(x, y, len(common), agg.improvement_interval(xs, ys, reps, seed)))

    taus = profile_thresholds(final["normalised"].to_numpy())
    profiles = {a: agg.profile(alg_runs[a], taus, reps, seed) for a in algorithms}

    pooled, by_task = None, None
    if inputs.curves is not None:
        pooled = pooled_curves(inputs.curves, algorithms, reps, seed)
        truncated += [note for note in pooled.notes if note not in truncated]
        by_task = task_curves(inputs.curves, inputs.tasks, algorithms, teacher, reps, seed)
    tables = per_task.task_tables(final, teacher, inputs.tasks, algorithms, reps, seed, inputs.curves)
    return ReportStats(
        reps=reps,
        seed=seed,
        algorithms=algorithms,
        tasks=task_rows(inputs.tasks, final),
        left_out=[(str(f.path), m) for f in inputs.folders for m in f.missing],
        aggregates=aggregates,
        teachers=teachers,
        improvements=improvements,
        taus=taus,
        profiles=profiles,
        per_task=tables,
        curves=pooled,
        task_curves=by_task,
        no_curves=list(inputs.no_curves),
        truncated=truncated,
    )


def _metrics(tasks: list, reps: int, seed: int) -> dict[str, agg.Interval]:
    return {m: agg.interval(m, tasks, reps, seed) for m in agg.METRICS}


def profile_thresholds(scores: np.ndarray) -> np.ndarray:
    """:data:`TAUS` thresholds from below a random policy (−0.1) to above the reference (1.1),
    stretched to every normalised score."""
    return np.linspace(min(-0.1, scores.min()), max(1.1, scores.max()), TAUS)


def task_rows(tasks: list[Any], final: pd.DataFrame) -> list[TaskRow]:
    """A :class:`TaskRow` per task of :mod:`rlimm.rl.report_inputs`."""
    return [
        TaskRow(
            task=t.label,
            folders=[str(f.path) for f in t.folders],
            budgets=sorted({f.budget for f in t.folders}, key=str),
            runs=int((final["task"] == t.label).sum()),
            random=t.random,
            reference=t.reference,
            reference_from=t.reference_from,
        )
        for t in tasks
    ]
