"""The matrix of runs a comparison config describes: :class:`RunSpec` (one run: a method, a budget, a
seed, a λ-ratio), every run of a config with its λ (:func:`runs`), and the groups of runs that one
training gives (:func:`run_groups`). λ is resolved here, once per run, where its budget is known; the
agent's constructor receives it as ``teacher_coef``.

Light: it imports neither stable-baselines3 nor torch, so that loading a config and listing its runs
stays cheap (``rlimm suite``'s estimate, ``rlimm tune``); running the matrix is
:mod:`rlimm.rl.comparison`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlimm.coefficients import check_ratio, paper_grid_ratio, ratio_to_lambda
from rlimm.errors import RlimmError
from rlimm.rl.config_sections import SCHEDULE_KWARGS, LinearRatioRule

if TYPE_CHECKING:
    from rlimm.rl.config import CompareConfig


@dataclass(frozen=True)
class RunSpec:
    """One cell of the comparison matrix: a method trained for a budget from a seed, at a λ-ratio."""

    method: str
    budget: int
    seed: int
    lambda_ratio: float

    @property
    def teacher_coef(self) -> float:
        """λ of this run, as the agent's ``teacher_coef``."""
        return ratio_to_lambda(self.lambda_ratio)

    def key(self) -> tuple[str, int, int, str]:
        return (self.method, self.budget, self.seed, f"{self.lambda_ratio:.4f}")


def lambda_ratios(config: CompareConfig) -> list[float] | None:
    """The ratios to sweep, or ``None`` for a data-size rule."""
    ratio = config.lambda_ratio
    if ratio == "paper_grid" or isinstance(ratio, LinearRatioRule):
        return None
    return list(ratio) if isinstance(ratio, list) else [ratio]


def lambda_ratio_for(config: CompareConfig, method: str, budget: int, ratio: float | None = None) -> float:
    """The λ-ratio of a run: 0 for ``none``, else ``ratio`` (one point of a sweep) or the config's
    data-size rule at ``budget``."""
    if method == "none":
        return 0.0
    if ratio is not None:
        return check_ratio(ratio)
    if isinstance(config.lambda_ratio, LinearRatioRule):
        return config.lambda_ratio.ratio(budget)
    if config.lambda_ratio == "paper_grid":
        return paper_grid_ratio(config.updates_and_timesteps(budget)[0])
    raise RlimmError("'lambda_ratio': a sweep needs a ratio per run")


def runs(config: CompareConfig) -> list[RunSpec]:
    """Every run of the comparison, with its λ; ``none`` runs once per (budget, seed) whatever the λ
    sweep."""
    specs: dict[tuple, RunSpec] = {}
    for budget in config.budgets:
        for method in config.methods:
            for ratio in lambda_ratios(config) or [None]:
                r = lambda_ratio_for(config, method, budget, ratio)
                for seed in range(config.seed_offset, config.seed_offset + config.seeds):
                    spec = RunSpec(method, budget, seed, r)
                    specs.setdefault(spec.key(), spec)
    return list(specs.values())


def budget_independent(config: CompareConfig) -> bool:
    """Whether nothing in a run depends on its budget, so that one run for the longest budget gives
    every shorter one at its checkpoints: λ constant (a number or a sweep, not a rule in the budget)
    and not decayed, no algorithm schedule (a value of ``progress_remaining``, i.e. of the total) and
    no gSDE (it draws noise before a checkpoint could be evaluated)."""
    if lambda_ratios(config) is None or config.lambda_schedule != "constant":
        return False
    kwargs = config.algo.kwargs
    if kwargs.get("use_sde"):
        return False
    return all(kwargs.get(key) is None or isinstance(kwargs[key], int | float) for key in SCHEDULE_KWARGS)


def run_groups(config: CompareConfig, specs: list[RunSpec]) -> list[list[RunSpec]]:
    """``specs`` in groups that one training run gives: runs differing only in their budget, when the
    config is :func:`budget_independent`, else one run per group. Each group is sorted by budget;
    groups come longest first (better balance across workers)."""
    groups: dict[tuple, list[RunSpec]] = {}
    reuse = budget_independent(config)
    for spec in specs:
        key = (spec.method, spec.seed, f"{spec.lambda_ratio:.4f}") + (() if reuse else (spec.budget,))
        groups.setdefault(key, []).append(spec)
    ordered = [sorted(g, key=lambda s: s.budget) for g in groups.values()]
    return sorted(ordered, key=lambda g: -g[-1].budget)
