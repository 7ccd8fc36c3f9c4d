"""The learning curves of ``rlimm report`` as numbers: the IQM of the normalised score over every task
(curves.png) and, per task, the IQM of the score in the task's units (curves_by_task.png), each at every
evaluation step with rliable's 95% bootstrap band (a run's whole curve is one draw). Also here: the note
a report prints when rliable's (runs × tasks) matrices leave runs out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rlimm.rl import aggregate as agg

#: Points of the shared x axis (fractions of training) when the tasks evaluated at different steps.
FRACTIONS = 21


@dataclass(frozen=True)
class Curve:
    """One algorithm's IQM curve: at each ``x`` the IQM and its band (``iqm.value``, ``low``, ``high``)."""

    algorithm: agg.Algorithm
    x: np.ndarray
    iqm: agg.Interval


@dataclass(frozen=True)
class PooledCurves:
    """The IQM curves of the normalised score over all tasks."""

    #: Whether every task evaluated at the same steps: ``x`` is then environment steps, else each
    #: task's steps as a fraction of its last one.
    shared: bool
    curves: list[Curve]
    #: :func:`truncation_note` of each algorithm whose tasks have different numbers of curves.
    notes: list[str]


@dataclass(frozen=True)
class TaskCurves:
    """One task's IQM curves in its own units, with the levels its figure draws as horizontal lines."""

    task: str
    curves: list[Curve]
    #: (teacher, mean score) of each teacher of the task, by name.
    teachers: list[tuple[str, float]]
    random: float


def truncation_note(label: str, task_labels: Sequence[str], tasks: Sequence[Any]) -> str:
    """A line for report.md when ``tasks`` (per task, the runs of ``label``) differ in their number of
    runs, which rliable's (runs × tasks) matrices cannot hold; empty otherwise."""
    counts = [len(t) for t in tasks]
    if len(set(counts)) <= 1:
        return ""
    where = ", ".join(f"{t}: {n}" for t, n in zip(task_labels, counts, strict=True))
    return (
        f"{label}: the tasks have different numbers of runs ({where}); its statistics use the "
        f"{min(counts)} runs of the lowest seeds of each task."
    )


def pooled_curves(
    curves: pd.DataFrame, algorithms: Sequence[agg.Algorithm], reps: int, seed: int
) -> PooledCurves:
    """Per algorithm with curves, the IQM over tasks of the normalised score at each evaluation step
    (the steps every run has), or at each fraction of training when the tasks' steps differ."""
    grids = {tuple(sorted(g["step"].unique())) for _, g in curves.groupby("task")}
    shared = len(grids) == 1
    frac = np.linspace(0, 1, FRACTIONS)
    out, notes = [], []
    for a in algorithms:
        sel = curves[curves["algorithm"] == a]
        if sel.empty:
            continue
        groups = list(sel.groupby("task", sort=False))
        # Runs by seed (then folder): the IQM keeps the runs of the lowest seeds where tasks differ.
        tables = [
            g.pivot_table(index=["seed", "folder"], columns="step", values="normalised").dropna(axis=1)
            for _, g in groups
        ]
        note = truncation_note(f"{a.label} (curves)", [t for t, _ in groups], tables)
        if note:
            notes.append(note)
        if shared:
            # Runs still being written have fewer steps: keep the steps every run has.
            common = sorted(set.intersection(*(set(t.columns) for t in tables)))
            tasks = [t[common].to_numpy() for t in tables]
            x = np.asarray(common, dtype=float)
        else:
            tasks = []
            for t in tables:
                steps = t.columns.to_numpy(dtype=float)
                tasks.append(np.array([np.interp(frac * steps.max(), steps, r) for r in t.to_numpy()]))
            x = frac
        out.append(Curve(a, x, agg.iqm_curve(tasks, reps, seed)))
    return PooledCurves(shared, out, notes)


def task_curves(
    curves: pd.DataFrame,
    tasks: Sequence[Any],
    algorithms: Sequence[agg.Algorithm],
    teacher: pd.DataFrame,
    reps: int,
    seed: int,
) -> list[TaskCurves]:
    """Per task of ``tasks`` (``label``, ``random``), each algorithm's IQM of the score in the task's
    units at each evaluation step every run of it has; with the teachers' and random policy's levels."""
    out = []
    for task in tasks:
        sel = curves[curves["task"] == task.label]
        drawn = []
        for a in algorithms:
            runs = sel[sel["algorithm"] == a]
            if runs.empty:
                continue
            # Runs still being written have fewer steps: keep the steps every run has.
            table = runs.pivot_table(index=["seed", "folder"], columns="step", values="score").dropna(axis=1)
            if table.shape[1] == 0:
                continue
            x = table.columns.to_numpy(dtype=float)
            drawn.append(Curve(a, x, agg.iqm_curve([table.to_numpy(dtype=float)], reps, seed)))
        taught = teacher[teacher["task"] == task.label] if len(teacher) else teacher
        levels = (
            [(label, float(g["score"].mean())) for label, g in taught.groupby("teacher")]
            if len(taught)
            else []
        )
        out.append(TaskCurves(task.label, drawn, levels, task.random))
    return out
