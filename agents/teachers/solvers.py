"""Exact solvers for small discrete MDPs and POMDPs, in numpy.

Arrays follow one convention: ``transitions[a, s, s']``, ``rewards[s, a]`` (expected immediate
reward of taking ``a`` in ``s``), ``observations[a, s', o]`` (probability of observing ``o`` after
arriving in ``s'`` by ``a``). Solutions are returned as ``(S, A)`` arrays: one α-vector per action
(column), as in the reference file ``grid_fib_alphas.csv``.

Episodic tasks: a transition that ends the episode carries no mass in ``transitions`` (its reward is
still in ``rewards``), so a row ``transitions[a, s]`` may sum to less than one; the missing mass is the
probability that the episode ends, after which nothing more is earned. Rows never sum to more than one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlimm.errors import RlimmError

#: How far above one a row of transition probabilities may sum (rounding in the environment's table).
ROW_TOLERANCE = 1e-6


@dataclass(frozen=True)
class TabularPOMDP:
    """A discrete POMDP. See the module docstring for the array conventions; transition rows may sum
    to less than one (the episode ends with the missing probability)."""

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
        if (t.sum(-1) > 1.0 + ROW_TOLERANCE).any():
            raise RlimmError(
                "transition rows must sum to at most one (less than one: the episode may end there)"
            )
        if not np.allclose(o.sum(-1), 1.0):
            raise RlimmError("observation rows must each sum to one")
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


def _informed_terms(pomdp: TabularPOMDP) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The non-zero terms of T(s'|s,a)·O(o|s',a), grouped by (a, s, o).

    :return: ``(weights, arrivals, group_starts, group_rows)``: term ``j`` is ``weights[j]`` times
        α(``arrivals[j]``); the terms of group ``g`` are ``group_starts[g] … group_starts[g+1]-1``, and
        the group belongs to row ``group_rows[g] = a·S + s`` of the result.
    """
    t, o = pomdp.transitions, pomdp.observations
    n_states, n_obs = pomdp.n_states, o.shape[2]
    a_t, s_t, arrive = np.nonzero(t)  # C order: sorted by (a, s, s')
    a_o, s_o, obs = np.nonzero(o)  # sorted by (a, s', o)
    # Join on (a, s'): each transition term repeats once per observation its arrival state can give.
    per_arrival = np.bincount(a_o * n_states + s_o, minlength=o.shape[0] * n_states)
    first = np.concatenate([[0], np.cumsum(per_arrival)[:-1]])
    key = a_t * n_states + arrive
    repeat = per_arrival[key]
    term = np.repeat(np.arange(len(key)), repeat)
    offset = np.arange(len(term)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    o_index = first[key][term] + offset
    weights = t[a_t[term], s_t[term], arrive[term]] * o[a_o[o_index], s_o[o_index], obs[o_index]]
    group = (a_t[term] * n_states + s_t[term]) * n_obs + obs[o_index]
    order = np.argsort(group, kind="stable")
    group, weights, arrivals = group[order], weights[order], arrive[term][order]
    starts = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]])) if len(group) else group
    return weights, arrivals, starts, group[starts] // n_obs


def fib(pomdp: TabularPOMDP, tol: float = 1e-10, max_iter: int = 100_000) -> np.ndarray:
    """Fast Informed Bound α-vectors (Hauskrecht 2000), shape ``(S, A)``:

    α_a(s) = R(s, a) + γ Σ_o max_k Σ_s' T(s'|s, a) O(o|s', a) α_k(s').

    Tighter than QMDP: the maximisation happens after each observation, not after each state.

    Only the non-zero terms of T·O are visited (with a deterministic observation, as for every
    restriction, the inner sum runs over the arrival states of context ``o``), so the cost per
    iteration is (non-zero transitions) × A rather than A·O·S²·A: Taxi (500 states) takes a fraction
    of a second. A group (a, s, o) that no arrival reaches contributes 0, as in the dense sum.
    """
    weights, arrivals, starts, rows = _informed_terms(pomdp)
    n_states, n_actions = pomdp.n_states, pomdp.n_actions

    def update(alpha: np.ndarray) -> np.ndarray:
        if len(starts):
            # best[g] = max_k Σ_{terms j of g} w_j α_k(s'_j); future[a·S + s] = Σ_{groups of (a, s)} best
            best = np.add.reduceat(weights[:, None] * alpha[arrivals], starts, axis=0).max(axis=1)
            future = np.bincount(rows, weights=best, minlength=n_actions * n_states)
        else:
            future = np.zeros(n_actions * n_states)
        return pomdp.rewards + pomdp.discount * future.reshape(n_actions, n_states).T

    return _iterate(update, np.zeros_like(pomdp.rewards, dtype=float), tol, max_iter, "FIB")
