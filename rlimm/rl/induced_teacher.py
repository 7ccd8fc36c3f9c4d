"""What an induced teacher is made from, kept with it (``teacher.about``, saved in teacher files and in
a comparison's ``teacher.json``): the full-state expert's own score and budget, and how much the hidden
part tells of the expert's action.

``hidden_kl`` = E_x[KL(π*(·|x) ‖ P̄(·|x̄))] over the states the expert visits: 0 when the hidden part never
changes the expert's action (then the induced teacher is the expert, and naive regularisation is as
consistent as IMM); large when it decides it (the teacher then averages actions that only the hidden
part tells apart: naive pulls every state to that average, IMM only the average). For
``induced_expert`` it is measured by the fit itself (:func:`~rlimm.agents.teachers.fit_induced_expert`,
Gaussians: against the fitted moment projection); for ``induced_optimal`` exactly, on states the optimal
policy visits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from rlimm.agents.teachers import TabularTeacher, Teacher, categorical_kl
from rlimm.envs.restrictions import PartitionRestriction

#: The expert's evaluation episodes start from this seed (apart from the learners' evaluation seeds).
EXPERT_SEED = 4_000_037
#: Steps the optimal policy is run for to measure ``hidden_kl`` of an ``induced_optimal`` teacher.
OPTIMAL_VISITS = 20_000


def about_of(teacher: Teacher) -> dict[str, Any]:
    """What is known of how ``teacher`` was made (``{}`` for teachers that are not induced ones)."""
    return dict(getattr(teacher, "about", None) or {})


def expert_about(config: Any, model: BaseAlgorithm, fit: dict[str, Any], loaded_from: str | None) -> dict:
    """``teacher.about`` of an ``induced_expert`` teacher: the expert's score on the full env (the
    learners' evaluation protocol, its own seeds) and budget, and the fit's ``hidden_kl``."""
    from rlimm.rl.environments import acting, evaluate, make_env

    ev = config.evaluation
    returns = evaluate(
        acting(model), make_env(config.env), ev.episodes, ev.steps, EXPERT_SEED, ev.deterministic
    )
    expert = {
        "algo": type(model).__name__.lower(),
        "timesteps": int(model.num_timesteps),
        "score": float(returns.mean()),
        "score_std": float(returns.std()),
        "episodes": len(returns),
    }
    if loaded_from:
        expert["path"] = loaded_from
    return {"expert": expert, "hidden_kl": float(fit["hidden_kl"]), "hidden_kl_states": int(fit["states"])}


class _TableActor:
    """A full-state table policy (``(S, A)`` probabilities) with SB3's ``predict``."""

    def __init__(self, table: np.ndarray, seed: int) -> None:
        self.table, self.rng = table, np.random.default_rng(seed)

    def predict(self, obs: Any, deterministic: bool = False) -> tuple[np.ndarray, None]:
        row = self.table[int(obs)]
        action = int(np.argmax(row)) if deterministic else int(self.rng.choice(len(row), p=row))
        return np.asarray(action), None


def optimal_about(
    config: Any, env: Any, restriction: PartitionRestriction, optimal: np.ndarray, teacher: TabularTeacher
) -> dict:
    """``teacher.about`` of an ``induced_optimal`` teacher: the optimal full-state policy ``optimal``
    (``(S, A)``) as its expert — its score (the learners' protocol) and ``hidden_kl`` on
    :data:`OPTIMAL_VISITS` states it visits."""
    from rlimm.rl.environments import evaluate, make_env

    ev = config.evaluation
    actor = _TableActor(optimal / optimal.sum(axis=1, keepdims=True), EXPERT_SEED)
    returns = evaluate(actor, make_env(config.env), ev.episodes, ev.steps, EXPERT_SEED, ev.deterministic)
    states = np.zeros(OPTIMAL_VISITS, np.int64)
    obs, _ = env.reset(seed=EXPERT_SEED)
    for i in range(OPTIMAL_VISITS):
        states[i] = int(obs)
        action, _ = actor.predict(obs)
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            obs, _ = env.reset()
    contexts = restriction.context_of[states]
    expert = {
        "algo": "value_iteration",
        "timesteps": 0,
        "score": float(returns.mean()),
        "score_std": float(returns.std()),
        "episodes": len(returns),
    }
    kl = categorical_kl(actor.table[states], teacher.table[contexts])
    return {"expert": expert, "hidden_kl": kl, "hidden_kl_states": OPTIMAL_VISITS}
