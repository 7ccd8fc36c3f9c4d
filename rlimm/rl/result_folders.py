"""What ``rlimm report`` and ``compare``'s summary read of ``rlimm compare`` folders (:func:`load_folder`:
results, teacher scores, measures, learning curves), and the per-task normalisation (a random policy =
0, a reference score = 1) with the random policy's score. The statistics are :mod:`rlimm.rl.aggregate`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from rlimm.errors import RlimmError
from rlimm.rl.config import EnvConfig, EvalConfig
from rlimm.rl.evaluation import CURVE_COLUMNS

METHOD_ORDER = ("none", "naive", "imm")


def ordered_methods(methods) -> list[str]:  # noqa: ANN001 - any iterable of method names
    """``methods`` in the order none, naive, imm, then any other by name."""
    methods = set(methods)
    return [m for m in METHOD_ORDER if m in methods] + sorted(methods - set(METHOD_ORDER))


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
    """Uniform random actions from ``space``, seeded; has SB3's ``predict`` for ``environments.evaluate``."""

    def __init__(self, space: gym.Space, seed: int) -> None:
        self.space = space
        self.space.seed(seed)

    def predict(self, obs, deterministic: bool = False) -> tuple[np.ndarray, None]:  # noqa: ANN001
        return np.asarray(self.space.sample()), None


def random_scores(env: EnvConfig, evaluation: EvalConfig, seeds: Sequence[int]) -> list[float]:
    """A random policy's score per seed, with the learners' evaluation protocol and evaluation seeds
    (those of ``rlimm.rl.runs.run_one`` for a run of that seed)."""
    from rlimm.rl.environments import EVAL_SEED_OFFSET, evaluate, make_env

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
    from rlimm.rl.comparison import TEACHER_SCORES, read_results

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
    from rlimm.rl.comparison import read_measures, row_key
    from rlimm.rl.hidden_part import MEASURES

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
        for method in ordered_methods(df["method"].unique()):
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
