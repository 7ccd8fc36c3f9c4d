"""Exact solvers for small discrete MDPs and POMDPs, in numpy.

Arrays follow one convention: ``transitions[a, s, s']``, ``rewards[s, a]`` (expected immediate
reward of taking ``a`` in ``s``), ``observations[a, s', o]`` (probability of observing ``o`` after
arriving in ``s'`` by ``a``). Solutions are returned as ``(S, A)`` arrays: one α-vector per action
(column), as in the reference file ``grid_fib_alphas.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlimm.errors import RlimmError


@dataclass(frozen=True)
class TabularPOMDP:
    """A discrete POMDP. See the module docstring for the array conventions."""

    transitions: np.ndarray
    rewards: np.ndarray
    observations: np.ndarray
    discount: float

    def __post_init__(self) -> None:
        t, r, o = self.transitions, self.rewards, self.observations
        if t.ndim != 3 or t.shape[1] != t.shape[2]:
            raise RlimmError(f"transitions must be (A, S, S), got {t.shape}")
        n_actions, n_states = t.shape[0], t.shape[1]
        if r.shape != (n_states, n_actions):
            raise RlimmError(f"rewards must be (S, A) = {(n_states, n_actions)}, got {r.shape}")
        if o.ndim != 3 or o.shape[:2] != (n_actions, n_states):
            raise RlimmError(f"observations must be (A, S, O), got {o.shape}")
        if (t < 0).any() or (o < 0).any():
            raise RlimmError("transition and observation probabilities must be non-negative")
        if not np.allclose(t.sum(-1), 1.0) or not np.allclose(o.sum(-1), 1.0):
            raise RlimmError("transition and observation rows must each sum to one")
        if not (0.0 <= self.discount < 1.0):
            raise RlimmError(f"discount must lie in [0, 1), got {self.discount}")

    @property
    def n_states(self) -> int:
        return self.transitions.shape[1]

    @property
    def n_actions(self) -> int:
        return self.transitions.shape[0]

    @classmethod
    def from_restriction(
        cls,
        transitions: np.ndarray,
        rewards: np.ndarray,
        context_of: np.ndarray,
        discount: float,
    ) -> TabularPOMDP:
        """The POMDP in which the agent observes only the context of the state it arrives in."""
        n_actions, n_states = transitions.shape[0], transitions.shape[1]
        obs = np.zeros((n_actions, n_states, int(context_of.max()) + 1))
        obs[:, np.arange(n_states), context_of] = 1.0
        return cls(transitions, rewards, obs, discount)


def _iterate(update, init: np.ndarray, tol: float, max_iter: int, name: str) -> np.ndarray:
    values = init
    for _ in range(max_iter):
        new = update(values)
        if np.max(np.abs(new - values)) < tol:
            return new
        values = new
    raise RlimmError(f"{name} did not converge to {tol} in {max_iter} iterations")


def q_value_iteration(
    transitions: np.ndarray,
    rewards: np.ndarray,
    discount: float,
    tol: float = 1e-10,
    max_iter: int = 100_000,
) -> np.ndarray:
    """Optimal action values ``Q*(s, a)`` of the fully observed MDP, shape ``(S, A)``."""

    def update(q: np.ndarray) -> np.ndarray:
        return rewards + discount * np.einsum("ast,t->sa", transitions, q.max(axis=1))

    return _iterate(update, np.zeros_like(rewards, dtype=float), tol, max_iter, "value iteration")


def qmdp(pomdp: TabularPOMDP, tol: float = 1e-10, max_iter: int = 100_000) -> np.ndarray:
    """QMDP α-vectors: the MDP's Q* (the bound that assumes full observability after one step)."""
    return q_value_iteration(pomdp.transitions, pomdp.rewards, pomdp.discount, tol, max_iter)


def fib(pomdp: TabularPOMDP, tol: float = 1e-10, max_iter: int = 100_000) -> np.ndarray:
    """Fast Informed Bound α-vectors (Hauskrecht 2000), shape ``(S, A)``:

    α_a(s) = R(s, a) + γ Σ_o max_k Σ_s' T(s'|s, a) O(o|s', a) α_k(s').

    Tighter than QMDP: the maximisation happens after each observation, not after each state.
    """
    t, o = pomdp.transitions, pomdp.observations
    # M[a, o, s, s'] = T(s'|s,a) O(o|s',a), built once.
    m = np.einsum("ast,ato->aost", t, o)

    def update(alpha: np.ndarray) -> np.ndarray:
        # future[a, o, s, k] = Σ_s' M[a,o,s,s'] α_k(s'); max over k, sum over o.
        future = np.einsum("aost,tk->aosk", m, alpha).max(axis=-1).sum(axis=1)
        return pomdp.rewards + pomdp.discount * future.T

    return _iterate(update, np.zeros_like(pomdp.rewards, dtype=float), tol, max_iter, "FIB")
