"""The per-task numbers of ``rlimm report``: each task's final scores in its own units (runs, mean,
IQM with its bootstrap interval, mean over the learning curve), its teachers' and random policy's
scores, and the paired differences X − Y of :data:`rlimm.rl.aggregate.POI_PAIRS`.

Paired: runs of two algorithms on one task with the same seed share the environment's seeds, their
evaluation seeds and their initial weights, so the per-seed difference X − Y carries less noise than
the two means; its interval is Student's, mean ± t(0.975, n − 1) · sd / √n over the n seeds both
have (:func:`rlimm.common.stats.paired_difference`, as ``compare``'s summary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rlimm.common.stats import PairedDifference, paired_difference
from rlimm.rl import aggregate as agg


@dataclass(frozen=True)
class AlgorithmScores:
    """An algorithm's final scores on one task (the task's units)."""

    algorithm: agg.Algorithm
    runs: int
    mean: float
    iqm: agg.Interval
    #: The mean over its runs of each run's curve mean (:func:`curve_means`); ``None`` without curves.
    curve_mean: float | None = None


@dataclass(frozen=True)
class TeacherScores:
    """A teacher's scores on one task: how many (one per seed) and their mean."""

    teacher: str
    runs: int
    mean: float


@dataclass(frozen=True)
class Difference:
    """X − Y paired by seed on one task: of the final scores, and of the curve means when known."""

    x: agg.Algorithm
    y: agg.Algorithm
    final: PairedDifference
    curve: PairedDifference | None = None


@dataclass(frozen=True)
class Measures:
    """An algorithm's learners against the teacher at the end (:mod:`rlimm.rl.hidden_part`), means
    over its measured runs."""

    algorithm: agg.Algorithm
    runs: int
    induced_kl: float
    pointwise_kl: float
    hidden_left: float
    #: states measured per run
    states: int


@dataclass(frozen=True)
class TaskTable:
    """One task's table of final scores and its paired differences."""

    task: str
    scores: list[AlgorithmScores]
    teachers: list[TeacherScores]
    random_runs: int
    random: float
    differences: list[Difference]
    #: Whether the task's runs have learning curves (the tables then have a curve-mean column).
    has_curves: bool
    #: An induced teacher's ``about`` (:mod:`rlimm.rl.induced_teacher`): its expert and ``hidden_kl``.
    about: dict | None = None
    measures: list[Measures] = field(default_factory=list)


def task_tables(
    final: pd.DataFrame,
    teacher: pd.DataFrame,
    tasks: Sequence[Any],
    algorithms: Sequence[agg.Algorithm],
    reps: int,
    seed: int,
    curves: pd.DataFrame | None = None,
) -> list[TaskTable]:
    """Per task of ``tasks`` (``label``, ``random``, ``random_scores``): each algorithm's runs, mean
    and IQM [95% bootstrap] of its final scores in ``final`` (columns task, algorithm, seed, score),
    the teachers' and the random policy's scores, then the paired differences of
    :func:`rlimm.rl.aggregate.comparisons` and :func:`~rlimm.rl.aggregate.schedule_comparisons` (a
    method under a λ schedule against itself under constant λ) over the seeds both ran (pairs with
    fewer than two such seeds are left out). With ``curves``, also each run's mean over its learning
    curve (the area under it divided by its length: a measure of how early a method scores) and its
    paired differences."""
    pairs = agg.comparisons(algorithms) + agg.schedule_comparisons(algorithms)
    out = []
    for task in tasks:
        rows = final[final["task"] == task.label]
        means = curve_means(curves, task.label) if curves is not None else None
        scores = []
        for a in algorithms:
            values = rows.loc[rows["algorithm"] == a, "score"].to_numpy(dtype=float)
            if not len(values):
                continue
            curve_mean = None
            if means is not None:
                m = means.loc[means["algorithm"] == a, "score"]
                curve_mean = float(m.mean()) if len(m) else None
            iqm = agg.interval("IQM", [values], reps, seed)
            scores.append(AlgorithmScores(a, len(values), float(values.mean()), iqm, curve_mean))
        taught = teacher[teacher["task"] == task.label] if len(teacher) else teacher
        teachers = [
            TeacherScores(label, len(g), float(g["score"].mean()))
            for label, g in (taught.groupby("teacher") if len(taught) else [])
        ]
        differences = []
        for x, y in pairs:
            d = paired(rows, x, y)
            if d is not None:
                differences.append(Difference(x, y, d, paired(means, x, y) if means is not None else None))
        out.append(
            TaskTable(
                task.label,
                scores,
                teachers,
                len(task.random_scores),
                task.random,
                differences,
                means is not None,
                task_about(task),
                measures_of(rows, algorithms),
            )
        )
    return out


def task_about(task: Any) -> dict | None:
    """The ``about`` of the task's induced teacher, as its first folder's ``teacher.json`` records it."""
    for folder in getattr(task, "folders", ()):
        recorded = getattr(folder, "teacher", None)  # teacher.json
        if recorded and recorded.get("about"):
            return recorded["about"]
    return None


def measures_of(rows: pd.DataFrame, algorithms: Sequence[agg.Algorithm]) -> list[Measures]:
    """Per algorithm with measured runs among ``rows``: the means of their measures."""
    if "induced_kl" not in rows.columns:
        return []
    out = []
    for a in algorithms:
        m = rows[(rows["algorithm"] == a) & rows["induced_kl"].notna()]
        if len(m):
            means = m[["induced_kl", "pointwise_kl", "hidden_left", "states"]].astype(float).mean()
            out.append(
                Measures(
                    a,
                    len(m),
                    float(means["induced_kl"]),
                    float(means["pointwise_kl"]),
                    float(means["hidden_left"]),
                    round(means["states"]),
                )
            )
    return out


def curve_means(curves: pd.DataFrame, task: str) -> pd.DataFrame:
    """Per run of ``task`` (algorithm, seed): the mean of its curve over the evaluation steps every
    run of the task has (so that every run is averaged over the same steps), as column ``score``."""
    sel = curves[curves["task"] == task]
    if sel.empty:
        return pd.DataFrame(columns=["algorithm", "seed", "score"])
    table = sel.pivot_table(index=["algorithm", "seed", "folder"], columns="step", values="score")
    table = table.dropna(axis=1)
    out = table.mean(axis=1).rename("score").reset_index()
    return out[["algorithm", "seed", "score"]]


def paired(rows: pd.DataFrame, x: agg.Algorithm, y: agg.Algorithm) -> PairedDifference | None:
    """X − Y over the seeds both ran on one task's ``rows`` (``None`` with fewer than two). An
    algorithm with several runs of one seed (``none`` in each of two folders of the task that differ
    only in λ ratio) counts their mean once: one pair per seed."""
    sx = rows[rows["algorithm"] == x].groupby("seed")["score"].mean()
    sy = rows[rows["algorithm"] == y].groupby("seed")["score"].mean()
    seeds = sorted(set(sx.index) & set(sy.index))
    if len(seeds) < 2:
        return None
    return paired_difference(sx.loc[seeds].to_numpy(dtype=float), sy.loc[seeds].to_numpy(dtype=float))
