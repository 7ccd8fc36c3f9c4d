"""Robust aggregate statistics of RL results with ``rliable`` (Agarwal et al., "Deep RL at the Edge of
the Statistical Precipice", NeurIPS 2021): interquartile mean (IQM), mean, optimality gap, probability
of improvement, performance profiles and IQM curves, each with rliable's stratified bootstrap 95%
percentile interval (runs resampled with replacement within each task).

This module is the glue around rliable: it turns per-task runs into the (runs × tasks[× steps])
matrices rliable takes, seeds its bootstrap and returns an :class:`Interval` per statistic. Also
here: what ``rlimm report`` reads from ``rlimm compare`` folders, the per-task normalisation (a
random policy = 0, a reference score = 1), the random policy's score and the single-task lines of
``compare``'s summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from rliable import library as rly
from rliable import metrics

from rlimm.errors import RlimmError
from rlimm.rl.config import EnvConfig, EvalConfig
from rlimm.rl.evaluation import CURVE_COLUMNS, preserved_random_state

#: Bootstrap resamples, as in Agarwal et al.'s tables (rliable's own default is 50 000).
REPS = 2000
#: Coverage of every interval.
CONFIDENCE = 0.95
METHOD_ORDER = ("none", "naive", "imm")
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


# ---------------------------------------------------------------- normalisation


def registered_threshold(env_id: str) -> float | None:
    """The ``reward_threshold`` gymnasium registers for ``env_id`` (``None`` if none, or no such env)."""
    import rlimm.envs  # noqa: F401  (registers rlimm's own envs)

    try:
        return gym.spec(env_id).reward_threshold
    except gym.error.Error:
        return None


def normalise(scores: np.ndarray | float, random: float, reference: float) -> np.ndarray | float:
    """Scores on the scale where a random policy scores 0 and the reference scores 1."""
    return (np.asarray(scores, dtype=float) - random) / (reference - random)


class RandomActor:
    """Uniform random actions from ``space``, seeded; has SB3's ``predict`` for ``runs.evaluate``."""

    def __init__(self, space: gym.Space, seed: int) -> None:
        self.space = space
        self.space.seed(seed)

    def predict(self, obs, deterministic: bool = False) -> tuple[np.ndarray, None]:  # noqa: ANN001
        return np.asarray(self.space.sample()), None


def random_scores(env: EnvConfig, evaluation: EvalConfig, seeds: Sequence[int]) -> list[float]:
    """A random policy's score per seed, with the learners' evaluation protocol and evaluation seeds
    (those of ``rlimm.rl.runs.run_one`` for a run of that seed)."""
    from rlimm.rl.runs import EVAL_SEED_OFFSET, evaluate, make_env

    scores = []
    for seed in seeds:
        eval_env = make_env(env)
        actor = RandomActor(eval_env.action_space, seed)
        returns = evaluate(
            actor,
            eval_env,
            evaluation.episodes,
            evaluation.steps,
            seed + EVAL_SEED_OFFSET,
            evaluation.deterministic,
        )
        scores.append(float(returns.mean()))
    return scores


# ---------------------------------------------------------------- compare folders

#: The columns a ``curves.csv`` must have to be read (:data:`rlimm.rl.evaluation.CURVE_COLUMNS`; files
#: written before ``budget`` existed lack it).
CURVE_NEEDS = [c for c in CURVE_COLUMNS if c != "budget"]


class FolderRecord(BaseModel):
    """What a folder's ``config.json`` says that a report needs (other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")
    env: EnvConfig
    evaluation: EvalConfig = Field(default_factory=EvalConfig)
    lambda_schedule: str = "constant"
    reference_score: float | None = None
    #: what the teacher sees, and the teacher: with the env, what makes a task
    restriction: dict[str, Any] | None = None
    teacher: dict[str, Any] | None = None
    #: how IMM averaged over the hidden part (named in the report's tables; not part of the task)
    induction: dict[str, Any] | None = None


@dataclass
class Folder:
    """One ``rlimm compare`` folder: its config record, its runs at its final (largest) budget, its
    teacher's scores and learning curves when recorded, and the runs it has not finished."""

    path: Path
    record: FolderRecord
    final: pd.DataFrame
    budget: int
    #: Every seed with a finished run, at any budget.
    seeds: list[int] = field(default_factory=list)
    teacher: dict | None = None
    curves: pd.DataFrame | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        """Folders with the same env, restriction, teacher and evaluation protocol are runs of one task
        (CartPole with the cart hidden and CartPole without velocities are two)."""
        record = self.record
        return json.dumps(
            {
                "env": record.env.model_dump(),
                "evaluation": record.evaluation.model_dump(),
                "restriction": record.restriction,
                "teacher": record.teacher,
            },
            sort_keys=True,
        )


def load_folder(path: str | Path) -> Folder:
    """Read a compare folder; raises :class:`RlimmError` unless it holds ``results.csv`` with finished
    runs and ``config.json``."""
    from rlimm.rl.matrix import TEACHER_SCORES, read_results

    path = Path(path)
    if not path.is_dir():
        raise RlimmError(f"{path} is not a folder (give the output folders of `rlimm compare`)")
    if not (path / "results.csv").exists():
        raise RlimmError(f"{path} has no results.csv: give the output folders of `rlimm compare`")
    if not (path / "config.json").exists():
        raise RlimmError(f"{path} has no config.json: give the output folders of `rlimm compare`")
    try:
        record = FolderRecord.model_validate_json((path / "config.json").read_text())
    except ValueError as err:
        first = str(err).splitlines()[0]
        raise RlimmError(f"{path / 'config.json'} is not a compare folder's config: {first}") from None
    rows, _ = read_results(path / "results.csv")
    if not rows:
        raise RlimmError(f"{path / 'results.csv'} has no finished run yet")
    df = pd.DataFrame(rows)
    for col in ("budget", "seed"):
        df[col] = df[col].astype(int)
    for col in ("lambda_ratio", "score"):
        df[col] = df[col].astype(float)
    df["lambda_ratio"] = df["lambda_ratio"].round(4)
    df["teacher"] = df["teacher"].fillna("")
    budget = int(df["budget"].max())
    teacher_path = path / TEACHER_SCORES
    teacher = json.loads(teacher_path.read_text()) if teacher_path.exists() else None
    curves_path = path / "curves.csv"
    curves = read_curves(curves_path) if curves_path.exists() else None
    if curves is not None and "budget" in curves.columns:
        # Newer curves.csv files name the budget a run trained for: keep the final budget's runs.
        curves = curves[curves["budget"].astype(int) == budget].reset_index(drop=True)
    final = with_measures(df[df["budget"] == budget].reset_index(drop=True), path)
    seeds = sorted(int(s) for s in df["seed"].unique())
    return Folder(path, record, final, budget, seeds, teacher, curves, missing_runs(df))


def with_measures(final: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``final`` with the folder's ``measures.csv`` columns (:mod:`rlimm.rl.hidden_part`) per run,
    ``nan`` where a run was not measured (no teacher, or a folder from before the measures)."""
    from rlimm.rl.hidden_part import MEASURES
    from rlimm.rl.matrix import read_measures, row_key

    measured = read_measures(path)
    out = final.copy()
    for column in MEASURES:
        out[column] = [
            measured.get(row_key(row), {}).get(column, float("nan")) for row in final.to_dict("records")
        ]
    return out


def read_curves(path: Path) -> pd.DataFrame:
    """A ``curves.csv``: one row per (run, evaluation step), with at least :data:`CURVE_NEEDS`."""
    df = pd.read_csv(path, keep_default_na=False)
    absent = [c for c in CURVE_NEEDS if c not in df.columns]
    if absent:
        raise RlimmError(f"{path} lacks the columns {', '.join(absent)}")
    df["lambda_ratio"] = df["lambda_ratio"].astype(float).round(4)
    df["seed"] = df["seed"].astype(int)
    return df


def missing_runs(df: pd.DataFrame) -> list[str]:
    """The runs a results table lacks, one line per (method, budget, λ-ratio): the grid of the
    methods, budgets, seeds and (per budget) λ-ratios it holds, less the runs it holds. ``config.json``
    does not record the matrix, so runs of a budget or seed that no finished run has are not named."""
    seeds = sorted(df["seed"].unique())
    out = []
    for budget in sorted(df["budget"].unique()):
        at = df[df["budget"] == budget]
        for method in _ordered(df["method"].unique()):
            runs = at[at["method"] == method]
            if runs.empty:
                out.append(f"method={method} budget={budget}: no run finished")
                continue
            for ratio, g in runs.groupby("lambda_ratio"):
                absent = sorted(set(seeds) - set(g["seed"]))
                if absent:
                    where = f"method={method} budget={budget}" + (
                        f" λ ratio={ratio:g}" if method != "none" else ""
                    )
                    out.append(f"{where}: seeds {', '.join(map(str, absent))}")
    return out


def _ordered(methods) -> list[str]:  # noqa: ANN001 - any iterable of method names
    methods = set(methods)
    return [m for m in METHOD_ORDER if m in methods] + sorted(methods - set(METHOD_ORDER))


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
    methods = _ordered(df["method"].unique())
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
