"""Robust aggregate statistics of RL results with ``rliable`` (Agarwal et al., "Deep RL at the Edge of
the Statistical Precipice", NeurIPS 2021): interquartile mean (IQM), mean, optimality gap, probability
of improvement, performance profiles and IQM curves, each with rliable's stratified bootstrap 95%
percentile interval (runs resampled with replacement within each task).

This module is the glue around rliable: it turns per-task runs into the (runs × tasks[× steps])
matrices rliable takes, seeds its bootstrap and returns an :class:`Interval` per statistic. Also
here: the algorithms a report compares (method, schedule, teacher) and the single-task lines of
``compare``'s summary. What is read from ``rlimm compare`` folders, and the per-task normalisation, are
:mod:`rlimm.rl.result_folders`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics

from rlimm.rl.evaluation import preserved_random_state
from rlimm.rl.result_folders import METHOD_ORDER, ordered_methods

#: Bootstrap resamples, as in Agarwal et al.'s tables (rliable's own default is 50 000).
REPS = 2000
#: Coverage of every interval.
CONFIDENCE = 0.95
#: The comparisons a report states as probabilities of improvement, (X, Y) for P(X > Y).
POI_PAIRS = (("imm", "naive"), ("imm", "none"), ("naive", "none"))

#: Per task, an array of per-run values whose first axis is runs (1-D: final scores; 2-D: curves).
TaskArrays = Sequence[np.ndarray]

#: The aggregate metrics of a report, rliable's estimators of a (runs × tasks) matrix.
METRICS: dict[str, Callable[[np.ndarray], float]] = {
    "IQM": metrics.aggregate_iqm,
    "mean": metrics.aggregate_mean,
    "optimality gap": metrics.aggregate_optimality_gap,
}


def common_runs(tasks: TaskArrays) -> int:
    """The number of runs every task has (the fewest of any task)."""
    return min(len(t) for t in tasks)


def runs_matrix(tasks: TaskArrays) -> np.ndarray:
    """The (runs × tasks[× steps]) matrix rliable takes: rliable needs the same number of runs on
    every task, so each task keeps its first :func:`common_runs` runs (callers order runs by seed)."""
    n = common_runs(tasks)
    return np.stack([np.asarray(t, dtype=float)[:n] for t in tasks], axis=1)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval ``[low, high]`` (arrays for curves and profiles)."""

    value: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float

    def cell(self, digits: int = 2) -> str:
        """``value [low, high]`` for a Markdown table."""
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    # rliable 1.2 draws its resamples from numpy's global generator (np.random.choice in
    # StratifiedBootstrap.update_indices) whatever random_state it is given, and
    # create_performance_profile takes none: seed the global generator for the call, then give the
    # caller back its state.
    with preserved_random_state():
        np.random.seed(seed)
        yield


def _estimate(
    scores: np.ndarray | list[np.ndarray], func: Callable[..., np.ndarray], reps: int, seed: int
) -> Interval:
    """``func`` of ``scores`` (one matrix, or a list of matrices resampled independently) and its
    interval, by ``rliable.library.get_interval_estimates``."""
    with _seeded(seed):
        points, intervals = rly.get_interval_estimates(
            {"x": scores}, func, reps=reps, confidence_interval_size=CONFIDENCE
        )
    return _interval(points["x"], intervals["x"])


def _interval(point: np.ndarray, bounds: np.ndarray) -> Interval:
    # rliable returns the point as func returned it and the bounds as an array (2 × func's length).
    point = np.asarray(point, dtype=float)
    if point.size == 1:
        return Interval(float(point.item()), float(bounds[0].item()), float(bounds[1].item()))
    return Interval(point, bounds[0], bounds[1])


def interval(metric: str, tasks: TaskArrays, reps: int = REPS, seed: int = 0) -> Interval:
    """One of :data:`METRICS` (``IQM``, ``mean``, ``optimality gap``) of the runs of ``tasks`` (see
    :func:`runs_matrix`) with its stratified bootstrap interval from ``reps`` resamples."""
    estimator = METRICS[metric]
    return _estimate(runs_matrix(tasks), lambda s: np.array([estimator(s)]), reps, seed)


def improvement_interval(xs: TaskArrays, ys: TaskArrays, reps: int = REPS, seed: int = 0) -> Interval:
    """P(X > Y), ``rliable.metrics.probability_of_improvement`` (per task the Mann–Whitney U of X's
    runs against Y's over ``n·m``: the chance that a run of X scores above a run of Y, ties counting
    half; averaged over tasks), with its interval (X's and Y's runs resampled independently, as
    rliable's README does). ``xs`` and ``ys`` list the same tasks."""

    def poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([metrics.probability_of_improvement(x, y)])

    return _estimate([runs_matrix(xs), runs_matrix(ys)], poi, reps, seed)


def profile(tasks: TaskArrays, taus: np.ndarray, reps: int = REPS, seed: int = 0) -> Interval:
    """Performance profile, ``rliable.library.create_performance_profile``: at each threshold τ, the
    fraction of runs (of all tasks) scoring above τ, with pointwise intervals."""
    with _seeded(seed):
        points, intervals = rly.create_performance_profile(
            {"x": runs_matrix(tasks)}, taus, reps=reps, confidence_interval_size=CONFIDENCE
        )
    return _interval(points["x"], intervals["x"])


def iqm_curve(tasks: TaskArrays, reps: int = REPS, seed: int = 0) -> Interval:
    """IQM at each evaluation step, with pointwise intervals; ``tasks`` holds per task an array
    (runs, steps), and a run's whole curve is one draw of the bootstrap (as in rliable's README)."""

    def per_step(s: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(s[..., step]) for step in range(s.shape[-1])])

    return _estimate(runs_matrix(tasks), per_step, reps, seed)


# ---------------------------------------------------------------- algorithms (method and settings)


@dataclass(frozen=True, order=True)
class Algorithm:
    """What one set of runs trained: a method, and the settings that tell apart several of it."""

    rank: int
    method: str
    lambda_ratio: float | None = None
    lambda_schedule: str | None = None
    algo: str | None = None
    teacher: str | None = None

    @property
    def label(self) -> str:
        parts = [
            f"λ ratio {self.lambda_ratio:g}" if self.lambda_ratio is not None else "",
            self.lambda_schedule or "",
            self.algo or "",
            self.teacher or "",
        ]
        detail = ", ".join(p for p in parts if p)
        return f"{self.method} ({detail})" if detail else self.method

    def matches(self, other: Algorithm) -> bool:
        """Same settings wherever both name one (``none`` has no λ, schedule or teacher)."""
        pairs = [
            (self.lambda_ratio, other.lambda_ratio),
            (self.lambda_schedule, other.lambda_schedule),
            (self.algo, other.algo),
            (self.teacher, other.teacher),
        ]
        return all(a is None or b is None or a == b for a, b in pairs)


def _differ_within_a_task(rows: pd.DataFrame, column: str, by: Sequence[str] = ()) -> bool:
    """Whether some task of ``rows`` (column ``task``; without it, all rows are one task) has runs
    with several values of ``column`` (with ``by``, among runs that also agree in those columns: the
    runs of one method, say)."""
    if rows.empty:
        return False
    keys = (["task"] if "task" in rows.columns else []) + list(by)
    if not keys:
        return rows[column].nunique() > 1
    return bool((rows.groupby(keys)[column].nunique() > 1).any())


def label_algorithms(rows: pd.DataFrame) -> pd.Series:
    """An :class:`Algorithm` per row of ``rows`` (columns method, lambda_ratio, lambda_schedule, algo,
    teacher, folder, and task if several): a setting is part of it only where runs differ in it.

    - λ ratio: when the runs of one regularised method on one task differ in it (a folder's sweep, or
      two folders of the task with different constant ratios); the ratio then labels every
      regularised method, so that ``imm`` and ``naive`` are compared at the same ratio. Tasks of a
      suite that each ran one ratio (each its own) still pool a method over them.
    - λ schedule (``constant``, ``linear_decay``, ``trust``, …): when the regularised runs used
      several, within a task or across tasks; then every regularised method carries its schedule.
    - algorithm or teacher: when one task's folders used several (each task of a suite may have its
      own).

    ``none`` has no λ: it never carries a ratio, schedule or teacher."""
    reg = rows[rows["method"] != "none"]
    several = {
        "lambda_ratio": _differ_within_a_task(reg, "lambda_ratio", by=["method"]),
        # Any two schedules among the regularised runs, on one task or on two (a task run only with
        # `trust` is not pooled with one run only with `constant`).
        "lambda_schedule": reg["lambda_schedule"].nunique() > 1,
        # A suite's tasks may each have their own teacher or algorithm (SAC on one, PPO on another):
        # that tells runs apart only where one task has several.
        "teacher": _differ_within_a_task(reg, "teacher"),
        "algo": _differ_within_a_task(rows, "algo"),
    }
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}

    def one(r: pd.Series) -> Algorithm:
        none = r["method"] == "none"
        return Algorithm(
            rank.get(r["method"], len(rank)),
            r["method"],
            r["lambda_ratio"] if several["lambda_ratio"] and not none else None,
            r["lambda_schedule"] if several["lambda_schedule"] and not none else None,
            r["algo"] if several["algo"] else None,
            r["teacher"] if several["teacher"] and not none else None,
        )

    return rows.apply(one, axis=1)


def by_task(
    rows: pd.DataFrame,
    tasks: Sequence[str],
    value: str = "normalised",
    order: Sequence[str] = ("seed", "folder"),
) -> list[np.ndarray]:
    """Per task of ``tasks`` that ``rows`` has runs of, in that order, the runs' ``value`` sorted by the
    columns ``order`` (by seed, then folder: :func:`runs_matrix` keeps the runs of the lowest seeds)."""
    if order:
        rows = rows.sort_values(list(order), kind="stable")
    return [rows.loc[rows["task"] == t, value].to_numpy() for t in tasks if (rows["task"] == t).any()]


def comparisons(algorithms: Sequence[Algorithm]) -> list[tuple[Algorithm, Algorithm]]:
    """The (X, Y) pairs of :data:`POI_PAIRS` among ``algorithms``, X and Y with matching settings."""
    out = []
    for mx, my in POI_PAIRS:
        for x in algorithms:
            for y in algorithms:
                if x.method == mx and y.method == my and x.matches(y):
                    out.append((x, y))
    return out


def schedule_comparisons(algorithms: Sequence[Algorithm]) -> list[tuple[Algorithm, Algorithm]]:
    """(X, Y) pairs of one regularised method under another λ schedule (X) and under ``constant`` (Y),
    their other settings matching: what a schedule changes, on the same seeds."""
    out = []
    for x in algorithms:
        for y in algorithms:
            same = replace(x, lambda_schedule=None, rank=0) == replace(y, lambda_schedule=None, rank=0)
            if (
                x.method != "none"
                and same
                and y.lambda_schedule == "constant"
                and x.lambda_schedule not in (None, "constant")
            ):
                out.append((x, y))
    return out


# ---------------------------------------------------------------- compare's own summary


def single_task_lines(results: pd.DataFrame, reps: int = REPS, seed: int = 0) -> str:
    """For ``compare``'s ``summary.md``: per budget (and λ ratio, in a sweep), the IQM of each method's
    scores and P(imm > naive), P(imm > none), P(naive > none), with 95% stratified bootstrap intervals
    (one task, so no normalisation: IQM in score units). Empty for an empty table."""
    if results.empty:
        return ""
    df = results.assign(lambda_ratio=results["lambda_ratio"].astype(float).round(4))
    reg = df[df["method"] != "none"]
    sweep = bool(len(reg)) and bool((reg.groupby("budget")["lambda_ratio"].nunique() > 1).any())
    methods = ordered_methods(df["method"].unique())
    pairs = [(x, y) for x, y in POI_PAIRS if x in methods and y in methods]
    head = ["budget"] + (["λ ratio"] if sweep else []) + [f"IQM {m}" for m in methods]
    head += [f"P({x} > {y})" for x, y in pairs]
    lines = [
        "",
        "Robust statistics (Agarwal et al. 2021): IQM = mean of the middle 50% of per-run scores; "
        "P(X > Y) = chance that a run of X scores above a run of Y (ties count half); "
        f"[95% bootstrap interval, {reps} resamples of the runs].",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" for _ in head) + "|",
    ]
    for budget in sorted(df["budget"].unique()):
        at = df[df["budget"] == budget]
        ratios = sorted(at.loc[at["method"] != "none", "lambda_ratio"].unique()) if sweep else [None]
        for ratio in ratios or [None]:

            def runs(method: str, at: pd.DataFrame = at, ratio: float | None = ratio) -> list[np.ndarray]:
                sel = at[at["method"] == method]
                if ratio is not None and method != "none":
                    sel = sel[sel["lambda_ratio"] == ratio]
                return [sel["score"].to_numpy(dtype=float)] if len(sel) else []

            cells = [str(budget)] + ([f"{ratio:g}"] if sweep else [])
            for m in methods:
                r = runs(m)
                cells.append(interval("IQM", r, reps, seed).cell() if r else "–")
            for x, y in pairs:
                rx, ry = runs(x), runs(y)
                cells.append(improvement_interval(rx, ry, reps, seed).cell() if rx and ry else "–")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
